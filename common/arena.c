/*
 * Arena allocator: a list of malloc'd chunks with a bump pointer in the
 * newest one.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "arena.h"
#include "gn_error.h"

#define ARENA_DEFAULT_CHUNK (64u * 1024)
#define ARENA_MAX_ALIGN 4096u
/*
 * An arena that keeps growing takes chunks twice as large each time, up
 * to this size. From 2 MiB on, chunks are 2 MiB aligned and advised as
 * transparent huge pages: a session recording a million nodes then takes
 * tens of page faults instead of tens of thousands, which on a virtual
 * machine cost more than the recording itself.
 */
#define ARENA_MAX_GROWTH (32u << 20)
#define ARENA_HUGE (2u << 20)

struct arena_chunk {
	struct arena_chunk *next; /* older chunk */
	size_t size;		  /* usable bytes in data[] */
	size_t used;
	_Alignas(16) unsigned char data[];
};

struct gn_arena {
	struct arena_chunk *head; /* newest; allocations come from here */
	size_t chunk_size;
	size_t next_size; /* size of the next regular chunk */
	size_t allocated;
	size_t reserved;
	size_t nchunks;
};

static struct arena_chunk *chunk_new(struct gn_arena *a, size_t size)
{
	struct arena_chunk *c;
	size_t total = sizeof(*c) + size;

	if (total >= ARENA_HUGE) {
		void *p = NULL;

		total = (total + ARENA_HUGE - 1) & ~(size_t)(ARENA_HUGE - 1);
		if (posix_memalign(&p, ARENA_HUGE, total) != 0)
			return NULL;
		/* Only advice: without THP the kernel uses small pages. */
		madvise(p, total, MADV_HUGEPAGE);
		c = p;
		size = total - sizeof(*c);
	} else {
		c = malloc(total);
		if (c == NULL)
			return NULL;
	}
	c->size = size;
	c->used = 0;
	a->reserved += sizeof(*c) + size;
	a->nchunks++;
	return c;
}

struct gn_arena *gn_arena_create(size_t chunk_size)
{
	struct gn_arena *a = calloc(1, sizeof(*a));

	if (a == NULL)
		goto oom;
	a->chunk_size = chunk_size ? chunk_size : ARENA_DEFAULT_CHUNK;
	a->next_size = a->chunk_size;
	a->reserved = sizeof(*a);
	a->head = chunk_new(a, a->chunk_size);
	if (a->head == NULL)
		goto oom_free;
	a->head->next = NULL;
	return a;

oom_free:
	free(a);
oom:
	gn_error_set(-ENOMEM, "arena: cannot allocate first chunk of %zu bytes",
		     chunk_size ? chunk_size : ARENA_DEFAULT_CHUNK);
	return NULL;
}

void gn_arena_destroy(struct gn_arena **arena)
{
	struct arena_chunk *c, *next;

	if (arena == NULL || *arena == NULL)
		return;
	for (c = (*arena)->head; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	free(*arena);
	*arena = NULL;
}

void *gn_arena_alloc(struct gn_arena *a, size_t size, size_t align)
{
	struct arena_chunk *c = a->head;
	uintptr_t base, p;
	size_t need;

	if (align == 0 || (align & (align - 1)) != 0 ||
	    align > ARENA_MAX_ALIGN) {
		gn_error_set(-EINVAL,
			     "arena: alignment must be a power of two <= %u, "
			     "got %zu",
			     ARENA_MAX_ALIGN, align);
		return NULL;
	}
	if (size == 0)
		size = 1; /* a unique pointer, as promised */

	base = (uintptr_t)c->data;
	p = (base + c->used + align - 1) & ~(uintptr_t)(align - 1);
	if (p - base <= c->size && size <= c->size - (p - base)) {
		c->used = p + size - base;
		a->allocated += size;
		return (void *)p;
	}

	/* Does not fit: start a new chunk big enough for this request. */
	if (size > SIZE_MAX - align - sizeof(*c)) {
		gn_error_set(-ENOMEM, "arena: request of %zu bytes overflows",
			     size);
		return NULL;
	}
	need = size + align - 1;
	if (a->next_size < ARENA_MAX_GROWTH)
		a->next_size *= 2;
	c = chunk_new(a, need > a->next_size ? need : a->next_size);
	if (c == NULL) {
		gn_error_set(-ENOMEM,
			     "arena: cannot allocate a chunk for %zu bytes "
			     "(%zu reserved in %zu chunks)",
			     size, a->reserved, a->nchunks);
		return NULL;
	}
	c->next = a->head;
	a->head = c;
	base = (uintptr_t)c->data;
	p = (base + align - 1) & ~(uintptr_t)(align - 1);
	c->used = p + size - base;
	a->allocated += size;
	return (void *)p;
}

void *gn_arena_calloc(struct gn_arena *a, size_t size, size_t align)
{
	void *p = gn_arena_alloc(a, size, align);

	if (p != NULL)
		memset(p, 0, size);
	return p;
}

char *gn_arena_strdup(struct gn_arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = gn_arena_alloc(a, n, 1);

	if (p != NULL)
		memcpy(p, s, n);
	return p;
}

void gn_arena_reset(struct gn_arena *a)
{
	struct arena_chunk *c = a->head, *next;

	/* Keep the oldest chunk (the one of the default size). */
	while (c->next != NULL) {
		next = c->next;
		a->reserved -= sizeof(*c) + c->size;
		a->nchunks--;
		free(c);
		c = next;
	}
	c->used = 0;
	a->head = c;
	a->allocated = 0;
	a->next_size = a->chunk_size;
}

void gn_arena_get_stats(const struct gn_arena *a, struct gn_arena_stats *s)
{
	s->allocated = a->allocated;
	s->reserved = a->reserved;
	s->chunks = a->nchunks;
}
