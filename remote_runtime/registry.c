/*
 * Tensor registry (see registry.h): an open-addressing table keyed by
 * (session, handle) plus an intrusive LRU list for eviction.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "gn_error.h"
#include "hash.h"
#include "registry.h"

struct entry {
	struct gn_reg_tensor t;
	struct entry *prev, *next; /* LRU: head is most recent */
	int used;		   /* 1 live, 2 deleted (tombstone) */
};

struct gn_registry {
	struct gn_pool *pool;
	const struct gn_backend *b;
	struct entry **slots;
	size_t cap, n, used;
	struct entry *head, *tail;
	struct gn_registry_stats st;
};

static uint64_t key_hash(uint64_t session, const uint8_t *h)
{
	return gn_hash64(h, GN_HANDLE_SIZE, session);
}

struct gn_registry *gn_registry_create(struct gn_pool *pool,
				       const struct gn_backend *b)
{
	struct gn_registry *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		gn_error_set(-ENOMEM, "registry: out of memory");
		return NULL;
	}
	r->pool = pool;
	r->b = b;
	return r;
}

static void lru_unlink(struct gn_registry *r, struct entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		r->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		r->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_front(struct gn_registry *r, struct entry *e)
{
	e->next = r->head;
	e->prev = NULL;
	if (r->head)
		r->head->prev = e;
	r->head = e;
	if (r->tail == NULL)
		r->tail = e;
}

static size_t find_slot(const struct gn_registry *r, uint64_t session,
			const uint8_t *h)
{
	if (r->cap == 0)
		return SIZE_MAX;
	for (size_t i = key_hash(session, h) & (r->cap - 1); r->slots[i];
	     i = (i + 1) & (r->cap - 1)) {
		struct entry *e = r->slots[i];

		if (e->used == 1 && e->t.session == session &&
		    memcmp(e->t.handle, h, GN_HANDLE_SIZE) == 0)
			return i;
	}
	return SIZE_MAX;
}

/* Move live entries into a table of `cap` slots; tombstones are freed. */
static int rehash(struct gn_registry *r, size_t cap)
{
	struct entry **ns = calloc(cap, sizeof(*ns));

	if (ns == NULL)
		return gn_error_set(-ENOMEM, "registry: out of memory");
	for (size_t i = 0; i < r->cap; i++) {
		struct entry *e = r->slots[i];
		size_t j;

		if (e == NULL)
			continue;
		if (e->used != 1) {
			free(e); /* tombstones end here */
			continue;
		}
		for (j = key_hash(e->t.session, e->t.handle) & (cap - 1); ns[j];
		     j = (j + 1) & (cap - 1))
			;
		ns[j] = e;
	}
	free(r->slots);
	r->slots = ns;
	r->cap = cap;
	r->used = r->n;
	return 0;
}

static int grow(struct gn_registry *r)
{
	return rehash(r, r->cap ? r->cap * 2 : 64);
}

/*
 * The backend may keep forms derived from a registry tensor's bytes (they
 * stay put until freed); tell it before the block goes back to the pool.
 */
static void release_block(struct gn_registry *r, void *dev)
{
	if (r->b->ops->forget != NULL)
		r->b->ops->forget(r->b->ctx, dev);
	gn_pool_free(r->pool, dev);
}

/* Drop an entry: memory back to the pool, slot becomes a tombstone. */
static void drop(struct gn_registry *r, struct entry *e)
{
	lru_unlink(r, e);
	release_block(r, e->t.dev);
	r->st.bytes -= e->t.bytes;
	r->st.tensors--;
	r->n--;
	e->used = 2;
}

/*
 * Evict least recently used unpinned tensors until `need` bytes fit. A
 * request larger than the pool's whole limit can never fit: it evicts
 * nothing and fails with the pool's words.
 */
static void *alloc_evicting(struct gn_registry *r, uint64_t need)
{
	void *dev = gn_pool_alloc(r->pool, need);
	struct entry *e = r->tail;
	struct gn_pool_stats ps;

	gn_pool_get_stats(r->pool, &ps);
	if (dev == NULL && ps.limit_bytes != 0 && need > ps.limit_bytes)
		return NULL;

	while (dev == NULL && e != NULL) {
		struct entry *prev = e->prev;

		if (!e->t.pinned) {
			drop(r, e);
			r->st.evictions++;
			dev = gn_pool_alloc(r->pool, need);
		}
		e = prev;
	}
	return dev;
}

int gn_registry_upload(struct gn_registry *r, uint64_t session,
		       const struct gn_tensor_meta *meta, const void *host,
		       uint8_t handle[GN_HANDLE_SIZE])
{
	uint64_t bytes;
	struct entry *e;
	size_t i;
	int rc;

	rc = gn_meta_check(meta, "registry upload");
	if (rc != 0)
		return rc;
	bytes = gn_meta_nbytes(meta);
	if ((r->used + 1) * 2 > r->cap && (rc = grow(r)) != 0)
		return rc;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return gn_error_set(-ENOMEM, "registry: out of memory");
	if (getrandom(e->t.handle, GN_HANDLE_SIZE, 0) != GN_HANDLE_SIZE) {
		free(e);
		return gn_error_set(-EIO, "registry: getrandom failed");
	}
	e->t.dev = alloc_evicting(r, bytes ? bytes : 1);
	if (e->t.dev == NULL) {
		free(e);
		return gn_last_error_code();
	}
	if (bytes) {
		rc = r->b->ops->upload(r->b->ctx, e->t.dev, host, bytes);
		if (rc != 0) {
			release_block(r, e->t.dev);
			free(e);
			return rc;
		}
	}
	e->t.session = session;
	e->t.meta = *meta;
	e->t.bytes = bytes;
	e->used = 1;
	for (i = key_hash(session, e->t.handle) & (r->cap - 1); r->slots[i];
	     i = (i + 1) & (r->cap - 1))
		;
	r->slots[i] = e;
	r->used++;
	r->n++;
	lru_front(r, e);
	r->st.tensors++;
	r->st.bytes += bytes;
	r->st.uploads++;
	memcpy(handle, e->t.handle, GN_HANDLE_SIZE);
	return 0;
}

struct gn_reg_tensor *gn_registry_get(struct gn_registry *r, uint64_t session,
				      const uint8_t handle[GN_HANDLE_SIZE])
{
	size_t i = find_slot(r, session, handle);
	struct entry *e;

	if (i == SIZE_MAX) {
		r->st.lookups_refused++;
		gn_error_set(-ENOENT,
			     "registry: no tensor with that handle in session "
			     "%llu (unknown, freed, evicted or another "
			     "session's)",
			     (unsigned long long)session);
		return NULL;
	}
	e = r->slots[i];
	lru_unlink(r, e);
	lru_front(r, e);
	return &e->t;
}

int gn_registry_download(struct gn_registry *r, uint64_t session,
			 const uint8_t handle[GN_HANDLE_SIZE], void *host,
			 uint64_t len)
{
	struct gn_reg_tensor *t = gn_registry_get(r, session, handle);

	if (t == NULL)
		return -ENOENT;
	if (len != t->bytes)
		return gn_error_set(-EINVAL,
				    "registry: download into %llu bytes, "
				    "tensor has %llu",
				    (unsigned long long)len,
				    (unsigned long long)t->bytes);
	return len ? r->b->ops->download(r->b->ctx, host, t->dev, len) : 0;
}

int gn_registry_free(struct gn_registry *r, uint64_t session,
		     const uint8_t handle[GN_HANDLE_SIZE])
{
	size_t i = find_slot(r, session, handle);

	if (i == SIZE_MAX)
		return gn_error_set(-ENOENT,
				    "registry: no tensor with that "
				    "handle in session %llu",
				    (unsigned long long)session);
	drop(r, r->slots[i]);
	return 0;
}

int gn_registry_pin(struct gn_registry *r, uint64_t session,
		    const uint8_t handle[GN_HANDLE_SIZE], int pinned)
{
	struct gn_reg_tensor *t = gn_registry_get(r, session, handle);

	if (t == NULL)
		return -ENOENT;
	t->pinned = pinned != 0;
	return 0;
}

int gn_registry_evict_one(struct gn_registry *r, const void *const *keep,
			  size_t nkeep)
{
	for (struct entry *e = r->tail; e != NULL; e = e->prev) {
		size_t k;

		if (e->t.pinned)
			continue;
		for (k = 0; k < nkeep && keep[k] != e->t.dev; k++)
			;
		if (k < nkeep)
			continue;
		drop(r, e);
		r->st.evictions++;
		return 0;
	}
	return -ENOENT;
}

uint32_t gn_registry_end_session(struct gn_registry *r, uint64_t session)
{
	uint32_t n = 0;

	for (size_t i = 0; i < r->cap; i++) {
		struct entry *e = r->slots[i];

		if (e && e->used == 1 && e->t.session == session) {
			drop(r, e);
			n++;
		}
	}
	/* Many tombstones slow every probe: rebuild when they dominate. */
	if (r->used > 2 * r->n + 64)
		rehash(r, r->cap); /* on failure the old table stays */
	return n;
}

void gn_registry_destroy(struct gn_registry **rp)
{
	struct gn_registry *r;

	if (rp == NULL || *rp == NULL)
		return;
	r = *rp;
	for (size_t i = 0; i < r->cap; i++) {
		struct entry *e = r->slots[i];

		if (e == NULL)
			continue;
		if (e->used == 1)
			release_block(r, e->t.dev);
		free(e);
	}
	free(r->slots);
	free(r);
	*rp = NULL;
}

void gn_registry_get_stats(const struct gn_registry *r,
			   struct gn_registry_stats *s)
{
	*s = r->st;
}
