/*
 * Device memory pools.
 *
 * A runtime allocates tensor memory for every plan it runs; asking the
 * device (cudaMalloc, the kernel) each time is slow and fragments. A pool
 * keeps freed blocks in power-of-two size classes and hands them out
 * again, keeps the whole footprint under a limit, gives cached blocks back
 * to the device before refusing a request, and counts what it does.
 * Blocks come from a backend's alloc/free, so one pool type serves host
 * memory and GPU memory alike; block sizes are tracked on the side, never
 * written into (possibly device) memory. Thread safe: calls take the
 * pool's lock (a runtime's worker and its transports' placements share
 * one pool).
 */
#ifndef GN_RUNTIME_POOL_H
#define GN_RUNTIME_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

struct gn_pool;

struct gn_pool_opts {
	size_t opts_size;
	const char *name;     /* for errors and stats, e.g. "cpu" */
	uint64_t limit_bytes; /* most bytes held from the device; 0: none */
};

void gn_pool_opts_init(struct gn_pool_opts *opts, size_t opts_size);

/*
 * A pool over backend `b` (which must outlive it). NULL with -ENOMEM set.
 * Free with gn_pool_destroy(), which returns every block to the backend.
 */
struct gn_pool *gn_pool_create(const struct gn_backend *b,
			       const struct gn_pool_opts *opts);
void gn_pool_destroy(struct gn_pool **p);

/*
 * A block of at least `size` bytes. NULL with -ENOMEM and a detail naming
 * the request and the pool's state when the limit (after giving cached
 * blocks back) or the device refuses.
 */
void *gn_pool_alloc(struct gn_pool *p, size_t size);
/* Like gn_pool_alloc(), but a refusal is NULL alone: no error, no count. */
void *gn_pool_try_alloc(struct gn_pool *p, size_t size);

/* Return a block to its class. -EINVAL for a pointer the pool never gave. */
int gn_pool_free(struct gn_pool *p, void *ptr);

/* Give every cached (free) block back to the device. */
void gn_pool_trim(struct gn_pool *p);

struct gn_pool_stats {
	uint64_t in_use_bytes;	  /* rounded sizes of live blocks */
	uint64_t requested_bytes; /* what callers asked for, live blocks */
	uint64_t cached_bytes;	  /* free blocks kept for reuse */
	uint64_t peak_in_use_bytes;
	uint64_t limit_bytes;
	uint64_t allocs, frees, reuses, device_allocs, failures;
	/* Share of in-use bytes lost to rounding up to a class, 0..1. */
	double fragmentation;
};

void gn_pool_get_stats(const struct gn_pool *p, struct gn_pool_stats *s);

#endif /* GN_RUNTIME_POOL_H */
