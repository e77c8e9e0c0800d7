/*
 * Arena allocator: many small allocations freed all at once.
 *
 * Graph nodes, plan scratch and decoded messages live as long as the thing
 * that owns them (a session, a request); an arena makes each allocation a
 * pointer bump and the teardown one call. Memory comes in chunks from
 * malloc; an allocation larger than the chunk size gets a chunk of its own.
 * Not thread-safe.
 */
#ifndef GN_COMMON_ARENA_H
#define GN_COMMON_ARENA_H

#include <stddef.h>

struct gn_arena;

/*
 * Make an arena that takes memory in chunks of `chunk_size` bytes (0 for
 * 64 KiB). Returns NULL with -ENOMEM set. Free with gn_arena_destroy().
 */
struct gn_arena *gn_arena_create(size_t chunk_size);

/* Free every chunk and the arena; sets *arena to NULL. NULL is a no-op. */
void gn_arena_destroy(struct gn_arena **arena);

/*
 * `size` bytes aligned to `align` (a power of two, at most 4096), valid
 * until reset or destroy. Returns NULL with -ENOMEM or -EINVAL (bad align)
 * set. Zero-size requests return a unique non-NULL pointer.
 */
void *gn_arena_alloc(struct gn_arena *arena, size_t size, size_t align);

/* gn_arena_alloc() and zero the bytes. */
void *gn_arena_calloc(struct gn_arena *arena, size_t size, size_t align);

/* Copy a NUL-terminated string into the arena. NULL on -ENOMEM. */
char *gn_arena_strdup(struct gn_arena *arena, const char *s);

/*
 * Forget every allocation but keep the first chunk for reuse; other chunks
 * are freed. Pointers from before the reset must not be used.
 */
void gn_arena_reset(struct gn_arena *arena);

struct gn_arena_stats {
	size_t allocated; /* bytes handed out since create/reset */
	size_t reserved;  /* bytes held from malloc, chunks included */
	size_t chunks;
};

void gn_arena_get_stats(const struct gn_arena *arena,
			struct gn_arena_stats *stats);

#endif /* GN_COMMON_ARENA_H */
