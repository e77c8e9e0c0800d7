/*
 * The tensor registry: tensors that stay on the runtime between requests.
 *
 * Weights are uploaded once and KV caches never leave; each such tensor is
 * named by a 128-bit handle drawn from the kernel's CSPRNG and belongs to
 * one client session. A handle is a capability within its session only: a
 * lookup with another session's id finds nothing, exactly as a handle
 * never issued.
 *
 * A handle names a block, the memory holding the value. A private block
 * (gn_registry_upload) has exactly one handle and goes with it. A shared
 * block (gn_registry_upload_shared) is content-addressed: it is found by
 * its content key (content_key.h) and meta, any session may attach a
 * handle of its own to it (gn_registry_attach), it counts the handles
 * that reference it, and when the last one goes it stays cached, so a
 * later session attaches without sending the bytes again. A block is
 * pinned while any handle on it is pinned.
 *
 * Memory comes from a pool; when the pool refuses, unpinned blocks are
 * evicted until the request fits: cached shared blocks (no handle) least
 * recently used first, then referenced blocks of any session, least
 * recently used first. Evicting a referenced block drops every handle on
 * it: each then answers -ENOENT, as a freed one. Ending a session drops
 * its handles; shared blocks stay cached. The backend's forget() is
 * called before a block's memory goes back to the pool. Not thread-safe:
 * the executor thread owns it.
 */
#ifndef GN_RUNTIME_REGISTRY_H
#define GN_RUNTIME_REGISTRY_H

#include <stdint.h>

#include "content_key.h"
#include "plan.h"
#include "pool.h"

struct gn_registry;

/* What a handle names, as its session sees it. */
struct gn_reg_tensor {
	uint8_t handle[GN_HANDLE_SIZE];
	uint64_t session;
	struct gn_tensor_meta meta;
	void *dev; /* pool block holding the value (shared ones included) */
	uint64_t bytes;
	int pinned; /* this handle's pin; the block is pinned if any is */
	int shared; /* the block is content-addressed and may have others */
};

/* A registry drawing memory from `pool` (which must outlive it). */
struct gn_registry *gn_registry_create(struct gn_pool *pool,
				       const struct gn_backend *b);

/* Free every block and handle and the registry; sets *r to NULL. NULL is
 * a no-op. */
void gn_registry_destroy(struct gn_registry **r);

/*
 * Store a copy of `host` (gn_meta_nbytes(meta) bytes) for `session` in a
 * private block under a fresh random handle written to `handle`. Evicts
 * unpinned blocks when memory is short. Returns 0, -EINVAL (bad meta),
 * -ENOMEM (still no room: the detail names the request and the pool),
 * -EIO (no randomness).
 */
int gn_registry_upload(struct gn_registry *r, uint64_t session,
		       const struct gn_tensor_meta *meta, const void *host,
		       uint8_t handle[GN_HANDLE_SIZE]);

/*
 * Like gn_registry_upload(), into a shared block found by `key`, which
 * must be gn_content_key(meta, host) computed by the caller from these very
 * bytes (a runtime checks a key a peer claims with gn_content_key_check()
 * first): the registry trusts it. When a shared block with that key and
 * meta is already held, the bytes are not copied and the new handle
 * references it. Errors as for gn_registry_upload().
 */
int gn_registry_upload_shared(struct gn_registry *r, uint64_t session,
			      const struct gn_tensor_meta *meta,
			      const void *host,
			      const uint8_t key[GN_CONTENT_KEY_SIZE],
			      uint8_t handle[GN_HANDLE_SIZE]);

/*
 * Like gn_registry_upload() (`key` NULL) or gn_registry_upload_shared(),
 * for a value already in a block of the registry's pool (`dev`, from
 * gn_pool_alloc() on that pool, holding the value's bytes: a payload a
 * transport placed there): the new block is `dev` itself, not a copy.
 * *taken says whether it was; when not (a shared block with that key was
 * already held, or an error), `dev` is still the caller's to free.
 */
int gn_registry_adopt(struct gn_registry *r, uint64_t session,
		      const struct gn_tensor_meta *meta, void *dev,
		      const uint8_t *key, uint8_t handle[GN_HANDLE_SIZE],
		      int *taken);

/*
 * Give `session` a fresh handle on the shared block held under `key` with
 * meta `meta` (counted as an attach hit), written to `handle`. Returns 0;
 * -ENOENT when no such block is held (never uploaded, or evicted: an
 * attach miss); -ENOMEM or -EIO as for gn_registry_upload().
 */
int gn_registry_attach(struct gn_registry *r, uint64_t session,
		       const uint8_t key[GN_CONTENT_KEY_SIZE],
		       const struct gn_tensor_meta *meta,
		       uint8_t handle[GN_HANDLE_SIZE]);

/*
 * The tensor `handle` names in `session`, its block marked as just used,
 * or NULL with -ENOENT ("no tensor with that handle in this session":
 * unknown, freed, evicted, or another session's). Valid until the next
 * call that may free or evict.
 */
struct gn_reg_tensor *gn_registry_get(struct gn_registry *r, uint64_t session,
				      const uint8_t handle[GN_HANDLE_SIZE]);

/* Copy a tensor's value to `host` (exactly t->bytes). 0, -ENOENT, or
 * -EINVAL for another length. */
int gn_registry_download(struct gn_registry *r, uint64_t session,
			 const uint8_t handle[GN_HANDLE_SIZE], void *host,
			 uint64_t len);

/*
 * Lend a tensor's memory to a reader outside the worker (a download sent
 * straight from it): until gn_registry_unlend(loan) its block is neither
 * evicted nor freed, even when its last handle goes meanwhile (the loan
 * given back frees it then). *out gets the tensor (out->dev: where the
 * bytes are). Returns the loan, or NULL with -ENOENT as gn_registry_get().
 */
void *gn_registry_lend(struct gn_registry *r, uint64_t session,
		       const uint8_t handle[GN_HANDLE_SIZE],
		       struct gn_reg_tensor *out);
void gn_registry_unlend(struct gn_registry *r, void *loan);

/*
 * Drop one handle. A private block goes with it; a shared block loses a
 * reference and, at none, stays cached. 0 or -ENOENT.
 */
int gn_registry_free(struct gn_registry *r, uint64_t session,
		     const uint8_t handle[GN_HANDLE_SIZE]);

/* Pin or unpin one handle; a block with a pinned handle is never
 * evicted. 0 or -ENOENT. */
int gn_registry_pin(struct gn_registry *r, uint64_t session,
		    const uint8_t handle[GN_HANDLE_SIZE], int pinned);

/*
 * Make room for something else (a plan's intermediates): evict the least
 * recently used unpinned block, cached shared blocks first, that is none
 * of the `nkeep` blocks in `keep` (the tensors a running plan reads).
 * Returns 0 when one was evicted, -ENOENT when none can be.
 */
int gn_registry_evict_one(struct gn_registry *r, const void *const *keep,
			  size_t nkeep);

/* Drop every handle of `session`; returns how many. */
uint32_t gn_registry_end_session(struct gn_registry *r, uint64_t session);

struct gn_registry_stats {
	/* Live handles of every session, and the bytes of every block held
	 * (a shared block once, cached ones included). */
	uint64_t tensors, bytes;
	uint64_t evictions;	   /* blocks evicted */
	uint64_t uploads;	   /* uploads stored, shared ones included */
	uint64_t uploads_in_place; /* of which adopted (gn_registry_adopt) */
	uint64_t lookups_refused;
	/* Shared blocks held, their bytes, the handles referencing them,
	 * and those with no handle (cached). */
	uint64_t shared_blocks, shared_bytes, shared_refs, shared_cached;
	/* Attaches answered with a handle, and refused -ENOENT. */
	uint64_t attach_hits, attach_misses;
};

void gn_registry_get_stats(const struct gn_registry *r,
			   struct gn_registry_stats *s);

/*
 * Copy the content keys of the shared blocks held, at most `max`, into
 * `keys`: blocks some session uses first, then cached ones, each group
 * most recently used first. Returns how many. The coordinator's
 * model-affinity placement reads them from heartbeats (via the server's
 * snapshot, never from another thread than the registry's).
 */
size_t gn_registry_shared_keys(const struct gn_registry *r,
			       uint8_t (*keys)[GN_CONTENT_KEY_SIZE],
			       size_t max);

#endif /* GN_RUNTIME_REGISTRY_H */
