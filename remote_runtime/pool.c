/*
 * Size-class memory pool (see pool.h). Classes are powers of two from
 * 256 B to 4 GiB; each keeps a stack of free blocks. Live blocks are in an
 * open-addressing table keyed by address, which gives their class on free.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gn_error.h"
#include "pool.h"

#define MIN_SHIFT 8
#define NCLASSES 25 /* 2^8 .. 2^32 */

struct live {
	void *ptr; /* NULL: empty slot; TOMB: deleted */
	size_t requested;
	uint8_t cls;
};

static char g_tomb;
#define TOMB ((void *)&g_tomb)

struct gn_pool {
	const struct gn_backend *b;
	char name[32];
	uint64_t limit;
	void **free_blocks[NCLASSES];
	uint32_t nfree[NCLASSES], capfree[NCLASSES];
	struct live *live;
	size_t live_cap, live_n, live_used; /* used counts tombstones too */
	struct gn_pool_stats st;
	/* One runtime pool is used by its worker and by placements made on
	 * transport threads (server_tensor.c). */
	pthread_mutex_t lock;
};

void gn_pool_opts_init(struct gn_pool_opts *opts, size_t opts_size)
{
	struct gn_pool_opts d = {.opts_size = opts_size, .name = "pool"};

	memcpy(opts, &d, opts_size < sizeof(d) ? opts_size : sizeof(d));
}

static int class_of(size_t size, uint8_t *cls)
{
	int c = 0;

	while (c < NCLASSES && ((size_t)1 << (c + MIN_SHIFT)) < size)
		c++;
	if (c == NCLASSES)
		return -1;
	*cls = (uint8_t)c;
	return 0;
}

static size_t class_size(uint8_t cls)
{
	return (size_t)1 << (cls + MIN_SHIFT);
}

static size_t hash_ptr(const void *p, size_t cap)
{
	uintptr_t x = (uintptr_t)p;

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (size_t)x & (cap - 1);
}

static int live_grow(struct gn_pool *p)
{
	size_t cap = p->live_cap ? p->live_cap * 2 : 256;
	struct live *nl = calloc(cap, sizeof(*nl)), *old = p->live;

	if (nl == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < p->live_cap; i++) {
		size_t h;

		if (old[i].ptr == NULL || old[i].ptr == TOMB)
			continue;
		for (h = hash_ptr(old[i].ptr, cap); nl[h].ptr;
		     h = (h + 1) & (cap - 1))
			;
		nl[h] = old[i];
	}
	free(old);
	p->live = nl;
	p->live_cap = cap;
	p->live_used = p->live_n;
	return 0;
}

static int live_add(struct gn_pool *p, void *ptr, size_t req, uint8_t cls)
{
	size_t h;

	if ((p->live_used + 1) * 2 > p->live_cap && live_grow(p) != 0)
		return -ENOMEM;
	for (h = hash_ptr(ptr, p->live_cap);
	     p->live[h].ptr && p->live[h].ptr != TOMB;
	     h = (h + 1) & (p->live_cap - 1))
		;
	if (p->live[h].ptr == NULL)
		p->live_used++;
	p->live[h] = (struct live){ptr, req, cls};
	p->live_n++;
	return 0;
}

static struct live *live_find(struct gn_pool *p, const void *ptr)
{
	if (p->live_cap == 0)
		return NULL;
	for (size_t h = hash_ptr(ptr, p->live_cap); p->live[h].ptr;
	     h = (h + 1) & (p->live_cap - 1))
		if (p->live[h].ptr == ptr)
			return &p->live[h];
	return NULL;
}

struct gn_pool *gn_pool_create(const struct gn_backend *b,
			       const struct gn_pool_opts *opts)
{
	struct gn_pool *p = calloc(1, sizeof(*p));
	struct gn_pool_opts o;

	if (p == NULL) {
		gn_error_set(-ENOMEM, "pool: out of memory");
		return NULL;
	}
	gn_pool_opts_init(&o, sizeof(o));
	if (opts != NULL)
		memcpy(&o, opts,
		       opts->opts_size < sizeof(o) ? opts->opts_size
						   : sizeof(o));
	pthread_mutex_init(&p->lock, NULL);
	p->b = b;
	snprintf(p->name, sizeof(p->name), "%s", o.name ? o.name : "pool");
	p->limit = o.limit_bytes;
	p->st.limit_bytes = o.limit_bytes;
	return p;
}

static void trim(struct gn_pool *p)
{
	for (int c = 0; c < NCLASSES; c++) {
		while (p->nfree[c] > 0) {
			void *blk = p->free_blocks[c][--p->nfree[c]];

			p->b->ops->free(p->b->ctx, blk);
			p->st.cached_bytes -= class_size((uint8_t)c);
		}
	}
}

void gn_pool_destroy(struct gn_pool **pp)
{
	struct gn_pool *p;

	if (pp == NULL || *pp == NULL)
		return;
	p = *pp;
	trim(p);
	/* Blocks still live go back too: the pool owns device memory. */
	for (size_t i = 0; i < p->live_cap; i++)
		if (p->live[i].ptr && p->live[i].ptr != TOMB)
			p->b->ops->free(p->b->ctx, p->live[i].ptr);
	for (int c = 0; c < NCLASSES; c++)
		free(p->free_blocks[c]);
	free(p->live);
	pthread_mutex_destroy(&p->lock);
	free(p);
	*pp = NULL;
}

static void mib(uint64_t b, char *buf, size_t len)
{
	snprintf(buf, len, "%.1f MiB", (double)b / (1024.0 * 1024.0));
}

static void *fail(struct gn_pool *p, size_t size, const char *why)
{
	char a[32], b[32], c[32], d[32];

	p->st.failures++;
	mib(size, a, sizeof(a));
	mib(p->st.in_use_bytes, b, sizeof(b));
	mib(p->limit, c, sizeof(c));
	mib(p->st.peak_in_use_bytes, d, sizeof(d));
	gn_error_set(-ENOMEM,
		     "pool '%s': cannot allocate %s (%zu bytes): %s; %s in "
		     "use of a %s limit, peak %s, %llu live blocks",
		     p->name, a, size, why, b, p->limit ? c : "unlimited", d,
		     (unsigned long long)p->live_n);
	return NULL;
}

static void *pool_alloc(struct gn_pool *p, size_t size, int quiet)
{
	uint8_t cls;
	size_t csize;
	void *blk;

	if (class_of(size ? size : 1, &cls) != 0)
		return quiet ? NULL
			     : fail(p, size,
				    "larger than the largest size class");
	csize = class_size(cls);
	if (p->nfree[cls] > 0) {
		blk = p->free_blocks[cls][--p->nfree[cls]];
		p->st.cached_bytes -= csize;
		p->st.reuses++;
	} else {
		if (p->limit &&
		    p->st.in_use_bytes + p->st.cached_bytes + csize >
			    p->limit) {
			/* Cached blocks of other classes go back first. */
			trim(p);
			if (p->st.in_use_bytes + csize > p->limit)
				return quiet ? NULL
					     : fail(p, size,
						    "the pool limit is "
						    "reached");
		}
		blk = p->b->ops->alloc(p->b->ctx, csize);
		if (blk == NULL) {
			trim(p);
			blk = p->b->ops->alloc(p->b->ctx, csize);
		}
		if (blk == NULL)
			return quiet ? NULL
				     : fail(p, size, "the device refused");
		p->st.device_allocs++;
	}
	if (live_add(p, blk, size, cls) != 0) {
		p->b->ops->free(p->b->ctx, blk);
		return quiet ? NULL
			     : fail(p, size, "no host memory for bookkeeping");
	}
	p->st.allocs++;
	p->st.in_use_bytes += csize;
	p->st.requested_bytes += size;
	if (p->st.in_use_bytes > p->st.peak_in_use_bytes)
		p->st.peak_in_use_bytes = p->st.in_use_bytes;
	return blk;
}

static int pool_free(struct gn_pool *p, void *ptr)
{
	struct live *l = ptr ? live_find(p, ptr) : NULL;
	uint8_t cls;

	if (l == NULL)
		return gn_error_set(-EINVAL,
				    "pool '%s': free of %p, which this pool "
				    "did not hand out (or freed already)",
				    p->name, ptr);
	cls = l->cls;
	p->st.in_use_bytes -= class_size(cls);
	p->st.requested_bytes -= l->requested;
	l->ptr = TOMB;
	p->live_n--;
	p->st.frees++;
	if (p->nfree[cls] == p->capfree[cls]) {
		uint32_t cap = p->capfree[cls] ? 2 * p->capfree[cls] : 8;
		void **nb = realloc(p->free_blocks[cls], cap * sizeof(void *));

		if (nb == NULL) {
			/* Cannot cache it: give it straight back. */
			p->b->ops->free(p->b->ctx, ptr);
			return 0;
		}
		p->free_blocks[cls] = nb;
		p->capfree[cls] = cap;
	}
	p->free_blocks[cls][p->nfree[cls]++] = ptr;
	p->st.cached_bytes += class_size(cls);
	return 0;
}

void *gn_pool_alloc(struct gn_pool *p, size_t size)
{
	void *blk;

	pthread_mutex_lock(&p->lock);
	blk = pool_alloc(p, size, 0);
	pthread_mutex_unlock(&p->lock);
	return blk;
}

void *gn_pool_try_alloc(struct gn_pool *p, size_t size)
{
	void *blk;

	pthread_mutex_lock(&p->lock);
	blk = pool_alloc(p, size, 1);
	pthread_mutex_unlock(&p->lock);
	return blk;
}

int gn_pool_free(struct gn_pool *p, void *ptr)
{
	int rc;

	pthread_mutex_lock(&p->lock);
	rc = pool_free(p, ptr);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

void gn_pool_trim(struct gn_pool *p)
{
	pthread_mutex_lock(&p->lock);
	trim(p);
	pthread_mutex_unlock(&p->lock);
}

void gn_pool_get_stats(const struct gn_pool *p, struct gn_pool_stats *s)
{
	pthread_mutex_t *lock = (pthread_mutex_t *)&p->lock;

	pthread_mutex_lock(lock);
	*s = p->st;
	pthread_mutex_unlock(lock);
	s->fragmentation = s->in_use_bytes
				   ? 1.0 - (double)s->requested_bytes /
						     (double)s->in_use_bytes
				   : 0.0;
}
