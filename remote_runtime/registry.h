/*
 * The tensor registry: tensors that stay on the runtime between requests.
 *
 * Weights are uploaded once and KV caches never leave; each such tensor is
 * named by a 128-bit handle drawn from the kernel's CSPRNG and belongs to
 * one client session. A handle is a capability within its session only: a
 * lookup with another session's id finds nothing, exactly as a handle
 * never issued. Memory comes from a pool; when the pool refuses, the least
 * recently used unpinned tensors (of any session) are evicted until the
 * request fits. Ending a session frees everything it owns. Not
 * thread-safe: the executor thread owns it.
 */
#ifndef GN_RUNTIME_REGISTRY_H
#define GN_RUNTIME_REGISTRY_H

#include <stdint.h>

#include "plan.h"
#include "pool.h"

struct gn_registry;

struct gn_reg_tensor {
	uint8_t handle[GN_HANDLE_SIZE];
	uint64_t session;
	struct gn_tensor_meta meta;
	void *dev; /* pool block holding the value */
	uint64_t bytes;
	int pinned;
};

/* A registry drawing memory from `pool` (which must outlive it). */
struct gn_registry *gn_registry_create(struct gn_pool *pool,
				       const struct gn_backend *b);

/* Free every tensor and the registry; sets *r to NULL. NULL is a no-op. */
void gn_registry_destroy(struct gn_registry **r);

/*
 * Store a copy of `host` (gn_meta_nbytes(meta) bytes) for `session` under
 * a fresh random handle written to `handle`. Evicts unpinned tensors when
 * memory is short. Returns 0, -EINVAL (bad meta), -ENOMEM (still no room:
 * the detail names the request and the pool), -EIO (no randomness).
 */
int gn_registry_upload(struct gn_registry *r, uint64_t session,
		       const struct gn_tensor_meta *meta, const void *host,
		       uint8_t handle[GN_HANDLE_SIZE]);

/*
 * The tensor `handle` names in `session`, marked as just used, or NULL
 * with -ENOENT ("no tensor with that handle in this session": unknown,
 * freed, evicted, or another session's).
 */
struct gn_reg_tensor *gn_registry_get(struct gn_registry *r, uint64_t session,
				      const uint8_t handle[GN_HANDLE_SIZE]);

/* Copy a tensor's value to `host` (exactly t->bytes). 0 or -ENOENT. */
int gn_registry_download(struct gn_registry *r, uint64_t session,
			 const uint8_t handle[GN_HANDLE_SIZE], void *host,
			 uint64_t len);

/* Free one tensor. 0 or -ENOENT. */
int gn_registry_free(struct gn_registry *r, uint64_t session,
		     const uint8_t handle[GN_HANDLE_SIZE]);

/* Pinned tensors are never evicted. 0 or -ENOENT. */
int gn_registry_pin(struct gn_registry *r, uint64_t session,
		    const uint8_t handle[GN_HANDLE_SIZE], int pinned);

/*
 * Make room for something else (a plan's intermediates): evict the least
 * recently used unpinned tensor of any session whose block is none of the
 * `nkeep` blocks in `keep` (the tensors a running plan reads). Returns 0
 * when one was evicted, -ENOENT when none can be.
 */
int gn_registry_evict_one(struct gn_registry *r, const void *const *keep,
			  size_t nkeep);

/* Free every tensor of `session`; returns how many. */
uint32_t gn_registry_end_session(struct gn_registry *r, uint64_t session);

struct gn_registry_stats {
	uint64_t tensors, bytes, evictions, uploads, lookups_refused;
};

void gn_registry_get_stats(const struct gn_registry *r,
			   struct gn_registry_stats *s);

#endif /* GN_RUNTIME_REGISTRY_H */
