/*
 * Tensor registry (see registry.h): handles in an open-addressing table
 * keyed by (session, handle); each handle references a block; blocks sit
 * on one of two LRU lists (live: referenced or private; cached: shared
 * with no handle), and shared blocks also in a chained table by content
 * key.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "gn_error.h"
#include "hash.h"
#include "registry.h"

struct entry;

/* The memory behind one or more handles. */
struct block {
	struct gn_tensor_meta meta;
	void *dev;
	uint64_t bytes;
	struct entry *handles; /* every handle on it, linked by bnext */
	uint32_t refs;	       /* handles on it */
	uint32_t pins;	       /* of which pinned */
	uint32_t lent;	       /* loans out (gn_registry_lend) */
	int shared;
	int cached; /* on the cached list: shared, no handle */
	uint8_t key[GN_CONTENT_KEY_SIZE];
	struct block *prev, *next; /* LRU list: head is most recent */
	struct block *knext;	   /* key table chain (shared blocks) */
};

/* One handle of one session. */
struct entry {
	struct gn_reg_tensor t;
	struct block *blk;
	struct entry *bprev, *bnext; /* the block's handles */
	int used;		     /* 1 live, 2 deleted (tombstone) */
};

struct lru {
	struct block *head, *tail;
};

struct gn_registry {
	struct gn_pool *pool;
	const struct gn_backend *b;
	struct entry **slots;
	size_t cap, n, used;
	struct lru live, cached;
	struct block **keys; /* shared blocks by content key, chained */
	size_t kcap, kn;
	struct gn_registry_stats st;
};

static uint64_t slot_hash(uint64_t session, const uint8_t *h)
{
	return gn_hash64(h, GN_HANDLE_SIZE, session);
}

static uint64_t key_hash(const uint8_t *key)
{
	return gn_hash64(key, GN_CONTENT_KEY_SIZE, 0);
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

/* --- LRU lists of blocks ----------------------------------------------- */

static struct lru *list_of(struct gn_registry *r, const struct block *b)
{
	return b->cached ? &r->cached : &r->live;
}

static void lru_unlink(struct gn_registry *r, struct block *b)
{
	struct lru *l = list_of(r, b);

	if (b->prev)
		b->prev->next = b->next;
	else
		l->head = b->next;
	if (b->next)
		b->next->prev = b->prev;
	else
		l->tail = b->prev;
	b->prev = b->next = NULL;
}

static void lru_front(struct gn_registry *r, struct block *b)
{
	struct lru *l = list_of(r, b);

	b->next = l->head;
	b->prev = NULL;
	if (l->head)
		l->head->prev = b;
	l->head = b;
	if (l->tail == NULL)
		l->tail = b;
}

/* Move `b` to the front of the list `cached` names. */
static void lru_move(struct gn_registry *r, struct block *b, int cached)
{
	lru_unlink(r, b);
	if (cached && !b->cached)
		r->st.shared_cached++;
	else if (!cached && b->cached)
		r->st.shared_cached--;
	b->cached = cached;
	lru_front(r, b);
}

/* --- the content-key table ---------------------------------------------- */

static struct block *key_find(const struct gn_registry *r, const uint8_t *key)
{
	if (r->kcap == 0)
		return NULL;
	for (struct block *b = r->keys[key_hash(key) & (r->kcap - 1)]; b;
	     b = b->knext)
		if (memcmp(b->key, key, GN_CONTENT_KEY_SIZE) == 0)
			return b;
	return NULL;
}

static int key_insert(struct gn_registry *r, struct block *b)
{
	size_t i;

	if (r->kn + 1 > r->kcap) {
		size_t cap = r->kcap ? r->kcap * 2 : 64;
		struct block **nk = calloc(cap, sizeof(*nk));

		if (nk == NULL)
			return gn_error_set(-ENOMEM, "registry: out of memory");
		for (i = 0; i < r->kcap; i++)
			while (r->keys[i]) {
				struct block *m = r->keys[i];
				size_t j = key_hash(m->key) & (cap - 1);

				r->keys[i] = m->knext;
				m->knext = nk[j];
				nk[j] = m;
			}
		free(r->keys);
		r->keys = nk;
		r->kcap = cap;
	}
	i = key_hash(b->key) & (r->kcap - 1);
	b->knext = r->keys[i];
	r->keys[i] = b;
	r->kn++;
	return 0;
}

static void key_remove(struct gn_registry *r, struct block *b)
{
	struct block **p = &r->keys[key_hash(b->key) & (r->kcap - 1)];

	while (*p != b)
		p = &(*p)->knext;
	*p = b->knext;
	r->kn--;
}

/* --- blocks --------------------------------------------------------------- */

/*
 * The backend may keep forms derived from a block's bytes (they stay put
 * until freed); tell it before the memory goes back to the pool.
 */
static void release_dev(struct gn_registry *r, void *dev)
{
	if (r->b->ops->forget != NULL)
		r->b->ops->forget(r->b->ctx, dev);
	gn_pool_free(r->pool, dev);
}

/* Free a block that no handle references any more. */
static void block_free(struct gn_registry *r, struct block *b)
{
	lru_unlink(r, b);
	if (b->shared) {
		key_remove(r, b);
		r->st.shared_blocks--;
		r->st.shared_bytes -= b->bytes;
		if (b->cached)
			r->st.shared_cached--;
	}
	if (b->dev != NULL) /* NULL: adopted memory handed back */
		release_dev(r, b->dev);
	r->st.bytes -= b->bytes;
	free(b);
}

/* Unlink a handle from the table and its block; the block is untouched. */
static void entry_unlink(struct gn_registry *r, struct entry *e)
{
	struct block *b = e->blk;

	if (e->bprev)
		e->bprev->bnext = e->bnext;
	else
		b->handles = e->bnext;
	if (e->bnext)
		e->bnext->bprev = e->bprev;
	b->refs--;
	if (e->t.pinned)
		b->pins--;
	if (b->shared)
		r->st.shared_refs--;
	e->blk = NULL;
	e->used = 2; /* a tombstone until the next rehash */
	r->st.tensors--;
	r->n--;
}

/* Drop a handle: a private block goes, a shared one may stay cached. */
static void entry_drop(struct gn_registry *r, struct entry *e)
{
	struct block *b = e->blk;

	entry_unlink(r, e);
	if (b->refs > 0)
		return;
	if (b->shared)
		lru_move(r, b, 1);
	else if (b->lent == 0)
		block_free(r, b);
	/* else the last loan given back frees it */
}

/* Evict a block: every handle on it goes too. */
static void block_evict(struct gn_registry *r, struct block *b)
{
	while (b->handles)
		entry_unlink(r, b->handles);
	r->st.evictions++;
	block_free(r, b);
}

/*
 * The block to evict next: the least recently used cached one, else the
 * least recently used unpinned referenced one; never one of `keep`.
 */
static struct block *victim(struct gn_registry *r, const void *const *keep,
			    size_t nkeep)
{
	struct block *lists[2] = {r->cached.tail, r->live.tail};

	for (int l = 0; l < 2; l++)
		for (struct block *b = lists[l]; b != NULL; b = b->prev) {
			size_t k;

			if (b->pins > 0 || b->lent > 0)
				continue;
			for (k = 0; k < nkeep && keep[k] != b->dev; k++)
				;
			if (k == nkeep)
				return b;
		}
	return NULL;
}

/*
 * Evict until `need` bytes fit. A request larger than the pool's whole
 * limit can never fit: it evicts nothing and fails with the pool's words.
 */
static void *alloc_evicting(struct gn_registry *r, uint64_t need)
{
	void *dev = gn_pool_alloc(r->pool, need);
	struct gn_pool_stats ps;
	struct block *b;

	gn_pool_get_stats(r->pool, &ps);
	if (dev == NULL && ps.limit_bytes != 0 && need > ps.limit_bytes)
		return NULL;
	while (dev == NULL && (b = victim(r, NULL, 0)) != NULL) {
		block_evict(r, b);
		dev = gn_pool_alloc(r->pool, need);
	}
	return dev;
}

/* A new block holding a copy of `host`, on the live list. */
/* A block holding a copy of `host`, or holding `adopt` itself. */
static struct block *block_new(struct gn_registry *r,
			       const struct gn_tensor_meta *meta,
			       const void *host, void *adopt)
{
	uint64_t bytes = gn_meta_nbytes(meta);
	struct block *b = calloc(1, sizeof(*b));
	int rc;

	if (b == NULL) {
		gn_error_set(-ENOMEM, "registry: out of memory");
		return NULL;
	}
	b->dev = adopt ? adopt : alloc_evicting(r, bytes ? bytes : 1);
	if (b->dev == NULL) {
		free(b);
		return NULL;
	}
	if (bytes && adopt == NULL) {
		rc = r->b->ops->upload(r->b->ctx, b->dev, host, bytes);
		if (rc != 0) {
			release_dev(r, b->dev);
			free(b);
			return NULL;
		}
	}
	b->meta = *meta;
	b->bytes = bytes;
	lru_front(r, b);
	r->st.bytes += bytes;
	return b;
}

/* --- handles -------------------------------------------------------------- */

static size_t find_slot(const struct gn_registry *r, uint64_t session,
			const uint8_t *h)
{
	if (r->cap == 0)
		return SIZE_MAX;
	for (size_t i = slot_hash(session, h) & (r->cap - 1); r->slots[i];
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
		for (j = slot_hash(e->t.session, e->t.handle) & (cap - 1);
		     ns[j]; j = (j + 1) & (cap - 1))
			;
		ns[j] = e;
	}
	free(r->slots);
	r->slots = ns;
	r->cap = cap;
	r->used = r->n;
	return 0;
}

/* Room in the handle table for one more; done before any block is made. */
static int reserve_slot(struct gn_registry *r)
{
	if ((r->used + 1) * 2 <= r->cap)
		return 0;
	return rehash(r, r->cap ? r->cap * 2 : 64);
}

/* A new entry with a fresh random handle, not yet in the table. */
static struct entry *entry_new(void)
{
	struct entry *e = calloc(1, sizeof(*e));

	if (e == NULL) {
		gn_error_set(-ENOMEM, "registry: out of memory");
		return NULL;
	}
	if (getrandom(e->t.handle, GN_HANDLE_SIZE, 0) != GN_HANDLE_SIZE) {
		free(e);
		gn_error_set(-EIO, "registry: getrandom failed");
		return NULL;
	}
	return e;
}

/* Put `e` in the table as `session`'s handle on `b` (after reserve_slot). */
static void entry_add(struct gn_registry *r, struct entry *e, uint64_t session,
		      struct block *b, uint8_t handle[GN_HANDLE_SIZE])
{
	size_t i;

	e->t.session = session;
	e->t.meta = b->meta;
	e->t.dev = b->dev;
	e->t.bytes = b->bytes;
	e->t.shared = b->shared;
	e->blk = b;
	e->used = 1;
	e->bnext = b->handles;
	if (b->handles)
		b->handles->bprev = e;
	b->handles = e;
	b->refs++;
	if (b->shared)
		r->st.shared_refs++;
	lru_move(r, b, 0); /* live now, and just used */
	for (i = slot_hash(session, e->t.handle) & (r->cap - 1); r->slots[i];
	     i = (i + 1) & (r->cap - 1))
		;
	r->slots[i] = e;
	r->used++;
	r->n++;
	r->st.tensors++;
	memcpy(handle, e->t.handle, GN_HANDLE_SIZE);
}

/*
 * Store `host` in a new block (private, or shared under `key`), or make
 * `adopt` the new block (*taken set when it was).
 */
static int upload(struct gn_registry *r, uint64_t session,
		  const struct gn_tensor_meta *meta, const void *host,
		  void *adopt, int *taken, const uint8_t *key,
		  uint8_t handle[GN_HANDLE_SIZE])
{
	struct block *b = NULL;
	struct entry *e;
	int rc;

	if (taken != NULL)
		*taken = 0;
	rc = gn_meta_check(meta, "registry upload");
	if (rc != 0)
		return rc;
	if (key != NULL && (b = key_find(r, key)) != NULL &&
	    !gn_meta_equal(&b->meta, meta))
		return gn_error_set(-EINVAL,
				    "registry upload: content key already "
				    "names a tensor of another meta");
	rc = reserve_slot(r);
	if (rc != 0)
		return rc;
	e = entry_new();
	if (e == NULL)
		return gn_last_error_code();
	if (b == NULL) {
		/* Made before it joins the key table: evicting for it cannot
		 * remove what is not there yet. */
		b = block_new(r, meta, host, adopt);
		if (b == NULL) {
			free(e);
			return gn_last_error_code();
		}
		if (key != NULL) {
			memcpy(b->key, key, GN_CONTENT_KEY_SIZE);
			rc = key_insert(r, b);
			if (rc != 0) {
				free(e);
				if (adopt != NULL) /* still the caller's */
					b->dev = NULL;
				block_free(r, b);
				return rc;
			}
			b->shared = 1;
			r->st.shared_blocks++;
			r->st.shared_bytes += b->bytes;
		}
	}
	entry_add(r, e, session, b, handle);
	r->st.uploads++;
	if (adopt != NULL && b->dev == adopt) {
		*taken = 1;
		r->st.uploads_in_place++;
	}
	return 0;
}

int gn_registry_upload(struct gn_registry *r, uint64_t session,
		       const struct gn_tensor_meta *meta, const void *host,
		       uint8_t handle[GN_HANDLE_SIZE])
{
	return upload(r, session, meta, host, NULL, NULL, NULL, handle);
}

int gn_registry_adopt(struct gn_registry *r, uint64_t session,
		      const struct gn_tensor_meta *meta, void *dev,
		      const uint8_t *key, uint8_t handle[GN_HANDLE_SIZE],
		      int *taken)
{
	return upload(r, session, meta, NULL, dev, taken, key, handle);
}

int gn_registry_upload_shared(struct gn_registry *r, uint64_t session,
			      const struct gn_tensor_meta *meta,
			      const void *host,
			      const uint8_t key[GN_CONTENT_KEY_SIZE],
			      uint8_t handle[GN_HANDLE_SIZE])
{
	return upload(r, session, meta, host, NULL, NULL, key, handle);
}

int gn_registry_attach(struct gn_registry *r, uint64_t session,
		       const uint8_t key[GN_CONTENT_KEY_SIZE],
		       const struct gn_tensor_meta *meta,
		       uint8_t handle[GN_HANDLE_SIZE])
{
	struct block *b = key_find(r, key);
	struct entry *e;
	int rc;

	if (b == NULL || !gn_meta_equal(&b->meta, meta)) {
		r->st.attach_misses++;
		return gn_error_set(-ENOENT,
				    "registry: no shared tensor with that "
				    "content key and meta (not cached)");
	}
	rc = reserve_slot(r);
	if (rc != 0)
		return rc;
	e = entry_new();
	if (e == NULL)
		return gn_last_error_code();
	entry_add(r, e, session, b, handle);
	r->st.attach_hits++;
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
	lru_move(r, e->blk, 0);
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

void *gn_registry_lend(struct gn_registry *r, uint64_t session,
		       const uint8_t handle[GN_HANDLE_SIZE],
		       struct gn_reg_tensor *out)
{
	struct gn_reg_tensor *t = gn_registry_get(r, session, handle);
	struct entry *e;

	if (t == NULL)
		return NULL;
	e = (struct entry *)((char *)t - offsetof(struct entry, t));
	e->blk->lent++;
	*out = *t;
	return e->blk;
}

void gn_registry_unlend(struct gn_registry *r, void *loan)
{
	struct block *b = loan;

	if (b == NULL)
		return;
	b->lent--;
	if (b->lent == 0 && b->refs == 0 && !b->shared)
		block_free(r, b);
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
	entry_drop(r, r->slots[i]);
	return 0;
}

int gn_registry_pin(struct gn_registry *r, uint64_t session,
		    const uint8_t handle[GN_HANDLE_SIZE], int pinned)
{
	struct gn_reg_tensor *t = gn_registry_get(r, session, handle);
	struct entry *e;

	if (t == NULL)
		return -ENOENT;
	e = (struct entry *)((char *)t - offsetof(struct entry, t));
	pinned = pinned != 0;
	if (pinned && !t->pinned)
		e->blk->pins++;
	else if (!pinned && t->pinned)
		e->blk->pins--;
	t->pinned = pinned;
	return 0;
}

int gn_registry_evict_one(struct gn_registry *r, const void *const *keep,
			  size_t nkeep)
{
	struct block *b = victim(r, keep, nkeep);

	if (b == NULL)
		return -ENOENT;
	block_evict(r, b);
	return 0;
}

uint32_t gn_registry_end_session(struct gn_registry *r, uint64_t session)
{
	uint32_t n = 0;

	for (size_t i = 0; i < r->cap; i++) {
		struct entry *e = r->slots[i];

		if (e && e->used == 1 && e->t.session == session) {
			entry_drop(r, e);
			n++;
		}
	}
	/* Many tombstones slow every probe: rebuild when they dominate. */
	if (r->used > 2 * r->n + 64)
		rehash(r, r->cap); /* on failure the old table stays */
	return n;
}

static void free_list(struct gn_registry *r, struct block *b)
{
	while (b != NULL) {
		struct block *next = b->next;

		release_dev(r, b->dev);
		free(b);
		b = next;
	}
}

void gn_registry_destroy(struct gn_registry **rp)
{
	struct gn_registry *r;

	if (rp == NULL || *rp == NULL)
		return;
	r = *rp;
	for (size_t i = 0; i < r->cap; i++)
		free(r->slots[i]);
	free_list(r, r->live.head);
	free_list(r, r->cached.head);
	free(r->slots);
	free(r->keys);
	free(r);
	*rp = NULL;
}

void gn_registry_get_stats(const struct gn_registry *r,
			   struct gn_registry_stats *s)
{
	*s = r->st;
}

size_t gn_registry_shared_keys(const struct gn_registry *r,
			       uint8_t (*keys)[GN_CONTENT_KEY_SIZE], size_t max)
{
	const struct lru *lists[2] = {&r->live, &r->cached};
	size_t n = 0;

	/* Each list runs most recent first; live blocks (in use) lead. */
	for (int l = 0; l < 2; l++)
		for (const struct block *b = lists[l]->head;
		     b != NULL && n < max; b = b->next)
			if (b->shared)
				memcpy(keys[n++], b->key, GN_CONTENT_KEY_SIZE);
	return n;
}
