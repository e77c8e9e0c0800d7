/*
 * Memory pools and the tensor registry: size classes and reuse, the limit
 * with a worded -ENOMEM, capability scoping between sessions, LRU eviction
 * sparing pinned tensors, and no leak over 10,000 sessions. Shared
 * (content-addressed) blocks: content keys and their check, attach by key
 * and meta, reference counts across sessions, cached blocks outliving
 * their sessions, eviction order (cached first, pinned never, a
 * referenced block's handles all gone), the backend's forget() before a
 * block's memory is reused, and no reference leaked over 2,000 sessions.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "backend.h"
#include "gn_error.h"
#include "content_key.h"
#include "pool.h"
#include "registry.h"

static struct gn_backend g_cpu;

static int setup(void **state)
{
	(void)state;
	return gn_backend_open("cpu", &g_cpu);
}

static int teardown(void **state)
{
	(void)state;
	gn_backend_close(&g_cpu);
	return 0;
}

static struct gn_pool *pool(uint64_t limit)
{
	struct gn_pool_opts o;
	struct gn_pool *p;

	gn_pool_opts_init(&o, sizeof(o));
	o.name = "test";
	o.limit_bytes = limit;
	p = gn_pool_create(&g_cpu, &o);
	assert_non_null(p);
	return p;
}

static void test_pool_classes_and_reuse(void **state)
{
	struct gn_pool *p = pool(0);
	struct gn_pool_stats st;
	void *a, *b, *c;

	(void)state;
	a = gn_pool_alloc(p, 1000); /* 1 KiB class */
	assert_non_null(a);
	memset(a, 1, 1000);
	gn_pool_get_stats(p, &st);
	assert_int_equal(st.in_use_bytes, 1024);
	assert_int_equal(st.requested_bytes, 1000);
	assert_true(st.fragmentation > 0.02 && st.fragmentation < 0.03);
	assert_int_equal(gn_pool_free(p, a), 0);
	b = gn_pool_alloc(p, 900); /* same class: the same block again */
	assert_ptr_equal(a, b);
	c = gn_pool_alloc(p, 5000);
	gn_pool_get_stats(p, &st);
	assert_int_equal(st.reuses, 1);
	assert_int_equal(st.device_allocs, 2);
	assert_int_equal(st.peak_in_use_bytes, 1024 + 8192);
	assert_int_equal(gn_pool_free(p, b), 0);
	assert_int_equal(gn_pool_free(p, b), -EINVAL); /* double free */
	assert_int_equal(gn_pool_free(p, (char *)c + 8), -EINVAL);
	gn_pool_destroy(&p); /* c is still live: returned too */
	assert_null(p);
}

static void test_pool_limit(void **state)
{
	struct gn_pool *p = pool(64 * 1024);
	void *blocks[4], *big;

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_non_null(blocks[i] = gn_pool_alloc(p, 16 * 1024));
	big = gn_pool_alloc(p, 1);
	assert_null(big);
	assert_int_equal(gn_last_error_code(), -ENOMEM);
	assert_non_null(strstr(gn_last_error(), "pool 'test'"));
	assert_non_null(strstr(gn_last_error(), "limit"));
	/* Freed blocks of another class are given back to make room. */
	gn_pool_free(p, blocks[0]);
	gn_pool_free(p, blocks[1]);
	assert_non_null(big = gn_pool_alloc(p, 20 * 1024)); /* 32 KiB */
	gn_pool_destroy(&p);
}

static struct gn_tensor_meta vec(int64_t n)
{
	struct gn_tensor_meta m = {.dtype = GN_DTYPE_F32, .ndim = 1};

	m.shape[0] = n;
	return m;
}

static void test_registry_scoping(void **state)
{
	struct gn_pool *p = pool(0);
	struct gn_registry *r = gn_registry_create(p, &g_cpu);
	struct gn_tensor_meta m = vec(4);
	float in[4] = {1, 2, 3, 4}, out[4];
	uint8_t h[GN_HANDLE_SIZE], h2[GN_HANDLE_SIZE];

	(void)state;
	assert_int_equal(gn_registry_upload(r, 1, &m, in, h), 0);
	assert_int_equal(gn_registry_upload(r, 1, &m, in, h2), 0);
	assert_memory_not_equal(h, h2, GN_HANDLE_SIZE);
	assert_int_equal(gn_registry_download(r, 1, h, out, sizeof(out)), 0);
	assert_memory_equal(in, out, sizeof(in));
	/* Session 2 holding session 1's handle reads nothing. */
	assert_null(gn_registry_get(r, 2, h));
	assert_int_equal(gn_last_error_code(), -ENOENT);
	assert_int_equal(gn_registry_download(r, 2, h, out, sizeof(out)),
			 -ENOENT);
	assert_int_equal(gn_registry_free(r, 2, h), -ENOENT);
	assert_non_null(gn_registry_get(r, 1, h)); /* still there */
	assert_int_equal(gn_registry_download(r, 1, h, out, 8), -EINVAL);
	assert_int_equal(gn_registry_free(r, 1, h), 0);
	assert_null(gn_registry_get(r, 1, h));
	assert_int_equal(gn_registry_end_session(r, 1), 1);
	gn_registry_destroy(&r);
	gn_pool_destroy(&p);
}

static void test_registry_eviction(void **state)
{
	/* Room for four 4 KiB tensors. */
	struct gn_pool *p = pool(16 * 1024);
	struct gn_registry *r = gn_registry_create(p, &g_cpu);
	struct gn_tensor_meta m = vec(1024);
	static float buf[1024];
	uint8_t h[6][GN_HANDLE_SIZE];
	struct gn_registry_stats st;

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(gn_registry_upload(r, 7, &m, buf, h[i]), 0);
	assert_int_equal(gn_registry_pin(r, 7, h[0], 1), 0);
	assert_non_null(gn_registry_get(r, 7, h[1])); /* h[1] recently used */
	/* A fifth evicts the least recently used unpinned one: h[2]. */
	assert_int_equal(gn_registry_upload(r, 7, &m, buf, h[4]), 0);
	assert_null(gn_registry_get(r, 7, h[2]));
	assert_non_null(gn_registry_get(r, 7, h[0]));
	assert_non_null(gn_registry_get(r, 7, h[1]));
	assert_non_null(gn_registry_get(r, 7, h[3]));
	gn_registry_get_stats(r, &st);
	assert_int_equal(st.evictions, 1);
	/* Pin everything: nothing can go, so the upload fails with words. */
	assert_int_equal(gn_registry_pin(r, 7, h[1], 1), 0);
	assert_int_equal(gn_registry_pin(r, 7, h[3], 1), 0);
	assert_int_equal(gn_registry_pin(r, 7, h[4], 1), 0);
	assert_int_equal(gn_registry_upload(r, 7, &m, buf, h[5]), -ENOMEM);
	assert_non_null(strstr(gn_last_error(), "cannot allocate"));
	gn_registry_destroy(&r);
	gn_pool_destroy(&p);
}

/*
 * A lent block (a download sent straight from it) is not evicted, and
 * when its handle goes meanwhile it is freed only once given back.
 */
static void test_registry_lend(void **state)
{
	/* Room for two 4 KiB tensors. */
	struct gn_pool *p = pool(8 * 1024);
	struct gn_registry *r = gn_registry_create(p, &g_cpu);
	struct gn_tensor_meta m = vec(1024);
	static float buf[1024] = {3}, out[1024];
	uint8_t h[4][GN_HANDLE_SIZE];
	struct gn_reg_tensor lt;
	struct gn_pool_stats ps;
	void *loan;

	(void)state;
	assert_int_equal(gn_registry_upload(r, 7, &m, buf, h[0]), 0);
	assert_int_equal(gn_registry_upload(r, 7, &m, buf, h[1]), 0);
	assert_null(gn_registry_lend(r, 8, h[0], &lt)); /* not session 8's */
	assert_int_equal(gn_last_error_code(), -ENOENT);
	loan = gn_registry_lend(r, 7, h[0], &lt);
	assert_non_null(loan);
	assert_int_equal(lt.bytes, sizeof(buf));
	assert_memory_equal(lt.dev, buf, sizeof(buf));
	assert_non_null(gn_registry_get(r, 7, h[1])); /* h[0] is the LRU */
	/* A third evicts h[1], not the lent h[0]. */
	assert_int_equal(gn_registry_upload(r, 7, &m, buf, h[2]), 0);
	assert_null(gn_registry_get(r, 7, h[1]));
	assert_non_null(gn_registry_get(r, 7, h[0]));
	/* Its handle goes while lent: the memory stays until given back. */
	assert_int_equal(gn_registry_free(r, 7, h[0]), 0);
	gn_pool_get_stats(p, &ps);
	assert_int_equal(ps.in_use_bytes, 2 * sizeof(buf));
	assert_memory_equal(lt.dev, buf, sizeof(buf));
	gn_registry_unlend(r, loan);
	gn_pool_get_stats(p, &ps);
	assert_int_equal(ps.in_use_bytes, sizeof(buf));
	/* Given back, a block is evictable again. */
	loan = gn_registry_lend(r, 7, h[2], &lt);
	gn_registry_unlend(r, loan);
	assert_int_equal(gn_registry_upload(r, 7, &m, buf, h[3]), 0);
	assert_int_equal(gn_registry_upload(r, 7, &m, buf, h[1]), 0);
	assert_null(gn_registry_get(r, 7, h[2]));
	assert_int_equal(gn_registry_download(r, 7, h[1], out, sizeof(out)), 0);
	gn_registry_destroy(&r);
	gn_pool_destroy(&p);
}

static void test_no_leak_over_sessions(void **state)
{
	struct gn_pool *p = pool(0);
	struct gn_registry *r = gn_registry_create(p, &g_cpu);
	struct gn_tensor_meta m = vec(16);
	struct gn_pool_stats ps;
	struct gn_registry_stats rs;
	float buf[16] = {0};
	uint8_t h[GN_HANDLE_SIZE];

	(void)state;
	for (uint64_t s = 1; s <= 10000; s++) {
		for (int i = 0; i < 3; i++)
			assert_int_equal(gn_registry_upload(r, s, &m, buf, h),
					 0);
		assert_int_equal(gn_registry_end_session(r, s), 3);
	}
	gn_registry_get_stats(r, &rs);
	gn_pool_get_stats(p, &ps);
	assert_int_equal(rs.tensors, 0);
	assert_int_equal(rs.bytes, 0);
	assert_int_equal(ps.in_use_bytes, 0);
	/* Blocks were reused, not taken anew each session. */
	assert_true(ps.device_allocs <= 3);
	gn_registry_destroy(&r);
	gn_pool_destroy(&p);
}

/* --- shared blocks --------------------------------------------------- */

/* The cpu backend with forget() counted. */
static struct gn_backend_ops g_counting_ops;
static struct gn_backend g_counting;
static int g_forgets;

static void counting_forget(void *ctx, const void *ptr)
{
	g_forgets++;
	if (g_cpu.ops->forget != NULL)
		g_cpu.ops->forget(ctx, ptr);
}

static const struct gn_backend *counting(void)
{
	g_counting_ops = *g_cpu.ops;
	g_counting_ops.forget = counting_forget;
	g_counting = g_cpu;
	g_counting.ops = &g_counting_ops;
	g_forgets = 0;
	return &g_counting;
}

static void key_of(const struct gn_tensor_meta *m, const void *bytes,
		   uint8_t key[GN_CONTENT_KEY_SIZE])
{
	assert_int_equal(gn_content_key(m, bytes, key), 0);
}

static void test_content_key(void **state)
{
	struct gn_tensor_meta m = vec(4), m2 = {.dtype = GN_DTYPE_F32,
						.ndim = 2,
						.shape = {2, 2}};
	struct gn_tensor_meta mi = {
		.dtype = GN_DTYPE_I32, .ndim = 1, .shape = {4}};
	float v[4] = {1, 2, 3, 4}, w[4] = {1, 2, 3, 5};
	uint8_t k[GN_CONTENT_KEY_SIZE], k2[GN_CONTENT_KEY_SIZE];
	char hex[17];

	(void)state;
	key_of(&m, v, k);
	key_of(&m, v, k2);
	assert_memory_equal(k, k2, sizeof(k)); /* a function of the value */
	/* Same bytes, other shape or dtype; other bytes: other keys. */
	key_of(&m2, v, k2);
	assert_memory_not_equal(k, k2, sizeof(k));
	key_of(&mi, v, k2);
	assert_memory_not_equal(k, k2, sizeof(k));
	key_of(&m, w, k2);
	assert_memory_not_equal(k, k2, sizeof(k));
	assert_int_equal(gn_content_key_check(&m, v, k, "t"), 0);
	assert_int_equal(gn_content_key_check(&m, w, k, "t"), -EINVAL);
	if (strstr(gn_last_error(), "is not the SHA-256") == NULL ||
	    strstr(gn_last_error(), gn_content_key_hex(k, 8, hex)) == NULL)
		fail_msg("detail: %s", gn_last_error());
	/* An empty tensor has a key too; a bad meta has none. */
	m.shape[0] = 0;
	key_of(&m, NULL, k);
	m.shape[0] = -1;
	assert_int_equal(gn_content_key(&m, v, k), -EINVAL);
}

static void test_shared_attach_and_refs(void **state)
{
	struct gn_pool *p = pool(0);
	struct gn_registry *r = gn_registry_create(p, counting());
	struct gn_tensor_meta m = vec(4), m2 = {.dtype = GN_DTYPE_F32,
						.ndim = 2,
						.shape = {2, 2}};
	float v[4] = {1, 2, 3, 4}, out[4];
	uint8_t key[GN_CONTENT_KEY_SIZE], other[GN_CONTENT_KEY_SIZE];
	uint8_t ha[GN_HANDLE_SIZE], hb[GN_HANDLE_SIZE], hc[GN_HANDLE_SIZE];
	struct gn_reg_tensor *ta, *tb;
	struct gn_registry_stats st;

	(void)state;
	key_of(&m, v, key);
	memcpy(other, key, sizeof(other));
	other[0] ^= 1;
	/* Nothing held yet: a miss. */
	assert_int_equal(gn_registry_attach(r, 1, key, &m, ha), -ENOENT);
	assert_non_null(strstr(gn_last_error(), "not cached"));
	assert_int_equal(gn_registry_upload_shared(r, 1, &m, v, key, ha), 0);
	/* Session 2 attaches: its own handle, the same block. */
	assert_int_equal(gn_registry_attach(r, 2, key, &m, hb), 0);
	assert_memory_not_equal(ha, hb, GN_HANDLE_SIZE);
	ta = gn_registry_get(r, 1, ha);
	tb = gn_registry_get(r, 2, hb);
	assert_non_null(ta);
	assert_non_null(tb);
	assert_ptr_equal(ta->dev, tb->dev);
	assert_true(ta->shared && tb->shared);
	assert_int_equal(gn_registry_download(r, 2, hb, out, sizeof(out)), 0);
	assert_memory_equal(out, v, sizeof(v));
	/* Handles stay capabilities of their session. */
	assert_null(gn_registry_get(r, 2, ha));
	assert_null(gn_registry_get(r, 1, hb));
	assert_int_equal(gn_registry_free(r, 2, ha), -ENOENT);
	/* Another key, or the key with another meta: misses. */
	assert_int_equal(gn_registry_attach(r, 3, other, &m, hc), -ENOENT);
	assert_int_equal(gn_registry_attach(r, 3, key, &m2, hc), -ENOENT);
	gn_registry_get_stats(r, &st);
	assert_int_equal(st.tensors, 2);
	assert_int_equal(st.bytes, sizeof(v));
	assert_int_equal(st.shared_blocks, 1);
	assert_int_equal(st.shared_bytes, sizeof(v));
	assert_int_equal(st.shared_refs, 2);
	assert_int_equal(st.shared_cached, 0);
	assert_int_equal(st.attach_hits, 1);
	assert_int_equal(st.attach_misses, 3);
	assert_int_equal(st.uploads, 1);
	/* Uploading the same content again stores nothing new. */
	assert_int_equal(gn_registry_upload_shared(r, 3, &m, v, key, hc), 0);
	assert_ptr_equal(gn_registry_get(r, 3, hc)->dev, ta->dev);
	assert_int_equal(gn_registry_free(r, 3, hc), 0);

	/* Both sessions leave: the block stays, cached, and is not freed. */
	assert_int_equal(gn_registry_end_session(r, 1), 1);
	assert_int_equal(gn_registry_free(r, 2, hb), 0);
	gn_registry_get_stats(r, &st);
	assert_int_equal(st.tensors, 0);
	assert_int_equal(st.shared_refs, 0);
	assert_int_equal(st.shared_blocks, 1);
	assert_int_equal(st.shared_cached, 1);
	assert_int_equal(st.bytes, sizeof(v));
	assert_int_equal(g_forgets, 0);
	/* A later session attaches to it. */
	assert_int_equal(gn_registry_attach(r, 4, key, &m, hc), 0);
	assert_int_equal(gn_registry_download(r, 4, hc, out, sizeof(out)), 0);
	assert_memory_equal(out, v, sizeof(v));
	gn_registry_get_stats(r, &st);
	assert_int_equal(st.shared_cached, 0);
	assert_int_equal(st.shared_refs, 1);
	/* Destroyed with a handle on it: forget() before its memory goes. */
	gn_registry_destroy(&r);
	assert_int_equal(g_forgets, 1);
	gn_pool_destroy(&p);
}

/*
 * Eviction: a cached shared block goes before any referenced one, even
 * a less recently used one; a shared block pinned through one session's
 * handle stays; evicting a referenced shared block takes every session's
 * handle on it.
 */
static void test_shared_eviction(void **state)
{
	/* Room for four 4 KiB blocks. */
	struct gn_pool *p = pool(16 * 1024);
	struct gn_registry *r = gn_registry_create(p, counting());
	struct gn_tensor_meta m = vec(1024);
	static float v[6][1024];
	uint8_t key[6][GN_CONTENT_KEY_SIZE], h[8][GN_HANDLE_SIZE];
	struct gn_registry_stats st;

	(void)state;
	for (int i = 0; i < 6; i++) {
		for (int j = 0; j < 1024; j++)
			v[i][j] = (float)(i * 1024 + j);
		key_of(&m, v[i], key[i]);
	}
	/* h0: private, least recently used. h1: shared, pinned by session
	 * 1 and referenced unpinned by session 2 (h2). h3: shared, cached
	 * (its only handle freed), the most recently used. */
	assert_int_equal(gn_registry_upload(r, 1, &m, v[0], h[0]), 0);
	assert_int_equal(
		gn_registry_upload_shared(r, 1, &m, v[1], key[1], h[1]), 0);
	assert_int_equal(gn_registry_pin(r, 1, h[1], 1), 0);
	assert_int_equal(gn_registry_attach(r, 2, key[1], &m, h[2]), 0);
	assert_int_equal(
		gn_registry_upload_shared(r, 1, &m, v[2], key[2], h[3]), 0);
	assert_int_equal(
		gn_registry_upload_shared(r, 1, &m, v[3], key[3], h[4]), 0);
	assert_int_equal(gn_registry_free(r, 1, h[4]), 0);
	/* Full; a fifth block evicts the cached one, not private h0. */
	assert_int_equal(gn_registry_upload(r, 2, &m, v[4], h[5]), 0);
	gn_registry_get_stats(r, &st);
	assert_int_equal(st.evictions, 1);
	assert_int_equal(st.shared_cached, 0);
	assert_int_equal(st.shared_blocks, 2);
	assert_int_equal(g_forgets, 1);
	assert_int_equal(gn_registry_attach(r, 3, key[3], &m, h[6]), -ENOENT);
	assert_non_null(gn_registry_get(r, 1, h[0]));
	/* Next the least recently used unpinned referenced block: h3's. */
	assert_non_null(gn_registry_get(r, 1, h[1]));
	assert_int_equal(gn_registry_evict_one(r, NULL, 0), 0);
	assert_null(gn_registry_get(r, 1, h[3]));
	/* Session 2 unpinned its handle, but session 1's pin holds the
	 * block; with h0 and h5 kept by a plan nothing else can go. */
	{
		const void *keep[2] = {gn_registry_get(r, 1, h[0])->dev,
				       gn_registry_get(r, 2, h[5])->dev};

		assert_int_equal(gn_registry_pin(r, 2, h[2], 0), 0);
		assert_int_equal(gn_registry_evict_one(r, keep, 2), -ENOENT);
		/* Unpinned by session 1 too: now it can go, and both
		 * sessions' handles on it go with it. */
		assert_int_equal(gn_registry_pin(r, 1, h[1], 0), 0);
		assert_int_equal(gn_registry_evict_one(r, keep, 2), 0);
	}
	assert_null(gn_registry_get(r, 1, h[1]));
	assert_null(gn_registry_get(r, 2, h[2]));
	assert_int_equal(gn_registry_attach(r, 3, key[1], &m, h[6]), -ENOENT);
	gn_registry_get_stats(r, &st);
	assert_int_equal(st.shared_blocks, 0);
	assert_int_equal(st.shared_refs, 0);
	assert_int_equal(st.tensors, 2);
	assert_int_equal(st.evictions, 3);
	assert_int_equal(g_forgets, 3);
	/* Ending a session whose shared handle is pinned unpins the block. */
	assert_int_equal(
		gn_registry_upload_shared(r, 5, &m, v[5], key[5], h[7]), 0);
	assert_int_equal(gn_registry_pin(r, 5, h[7], 1), 0);
	assert_int_equal(gn_registry_end_session(r, 5), 1);
	gn_registry_get_stats(r, &st);
	assert_int_equal(st.shared_cached, 1);
	assert_int_equal(gn_registry_end_session(r, 1), 1);
	assert_int_equal(gn_registry_end_session(r, 2), 1);
	assert_int_equal(gn_registry_evict_one(r, NULL, 0), 0);
	assert_int_equal(gn_registry_evict_one(r, NULL, 0), -ENOENT);
	gn_registry_get_stats(r, &st);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.shared_blocks, 0);
	gn_registry_destroy(&r);
	assert_int_equal(g_forgets, 6);
	gn_pool_destroy(&p);
}

/* 2,000 sessions attach (one uploads) and leave: no reference remains. */
static void test_shared_no_leak_over_sessions(void **state)
{
	struct gn_pool *p = pool(0);
	struct gn_registry *r = gn_registry_create(p, &g_cpu);
	struct gn_tensor_meta m = vec(64);
	uint8_t key[GN_CONTENT_KEY_SIZE], h[GN_HANDLE_SIZE];
	struct gn_registry_stats rs;
	struct gn_pool_stats ps;
	float v[64];

	(void)state;
	for (int i = 0; i < 64; i++)
		v[i] = (float)i;
	key_of(&m, v, key);
	for (uint64_t s = 1; s <= 2000; s++) {
		if (gn_registry_attach(r, s, key, &m, h) == -ENOENT)
			assert_int_equal(
				gn_registry_upload_shared(r, s, &m, v, key, h),
				0);
		assert_int_equal(gn_registry_pin(r, s, h, s & 1), 0);
		assert_int_equal(gn_registry_attach(r, s, key, &m, h), 0);
		assert_int_equal(gn_registry_end_session(r, s), 2);
	}
	gn_registry_get_stats(r, &rs);
	gn_pool_get_stats(p, &ps);
	assert_int_equal(rs.tensors, 0);
	assert_int_equal(rs.shared_refs, 0);
	assert_int_equal(rs.shared_blocks, 1);
	assert_int_equal(rs.shared_cached, 1);
	assert_int_equal(rs.attach_hits, 2 * 2000 - 1);
	assert_int_equal(rs.attach_misses, 1);
	assert_int_equal(ps.in_use_bytes, 256);
	/* Unpinned, as no handle pins it: evictable. */
	assert_int_equal(gn_registry_evict_one(r, NULL, 0), 0);
	gn_pool_get_stats(p, &ps);
	assert_int_equal(ps.in_use_bytes, 0);
	gn_registry_destroy(&r);
	gn_pool_destroy(&p);
}

/*
 * Adoption: a pool block holding the value becomes the tensor (no copy,
 * counted); a shared one already held under the key keeps its own block
 * and leaves the offered one with the caller.
 */
static void test_registry_adopt(void **state)
{
	struct gn_pool *p = pool(0);
	struct gn_registry *r = gn_registry_create(p, &g_cpu);
	struct gn_tensor_meta m = vec(256);
	uint8_t h[3][GN_HANDLE_SIZE], key[GN_CONTENT_KEY_SIZE];
	struct gn_registry_stats rs;
	struct gn_pool_stats ps;
	struct gn_reg_tensor *t;
	float v[256], out[256];
	float *blk;
	int taken = -1;

	(void)state;
	for (int i = 0; i < 256; i++)
		v[i] = (float)i * 0.5f;
	blk = gn_pool_alloc(p, sizeof(v));
	assert_non_null(blk);
	memcpy(blk, v, sizeof(v));
	assert_int_equal(gn_registry_adopt(r, 4, &m, blk, NULL, h[0], &taken),
			 0);
	assert_int_equal(taken, 1);
	t = gn_registry_get(r, 4, h[0]);
	assert_non_null(t);
	assert_ptr_equal(t->dev, blk);
	assert_int_equal(gn_registry_download(r, 4, h[0], out, sizeof(out)), 0);
	assert_memory_equal(out, v, sizeof(v));
	gn_registry_get_stats(r, &rs);
	assert_int_equal(rs.uploads, 1);
	assert_int_equal(rs.uploads_in_place, 1);

	/* Shared: the first offer is adopted, the second left alone. */
	key_of(&m, v, key);
	blk = gn_pool_alloc(p, sizeof(v));
	memcpy(blk, v, sizeof(v));
	assert_int_equal(gn_registry_adopt(r, 4, &m, blk, key, h[1], &taken),
			 0);
	assert_int_equal(taken, 1);
	blk = gn_pool_alloc(p, sizeof(v));
	memcpy(blk, v, sizeof(v));
	assert_int_equal(gn_registry_adopt(r, 5, &m, blk, key, h[2], &taken),
			 0);
	assert_int_equal(taken, 0);
	assert_ptr_not_equal(gn_registry_get(r, 5, h[2])->dev, blk);
	assert_ptr_equal(gn_registry_get(r, 5, h[2])->dev,
			 gn_registry_get(r, 4, h[1])->dev);
	assert_int_equal(gn_pool_free(p, blk), 0);
	gn_registry_get_stats(r, &rs);
	assert_int_equal(rs.uploads, 3);
	assert_int_equal(rs.uploads_in_place, 2);

	/* An adopted block goes back to the pool with its last handle. */
	assert_int_equal(gn_registry_free(r, 4, h[0]), 0);
	gn_pool_get_stats(p, &ps);
	assert_int_equal(ps.in_use_bytes, sizeof(v));
	gn_registry_destroy(&r);
	gn_pool_destroy(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_classes_and_reuse),
		cmocka_unit_test(test_pool_limit),
		cmocka_unit_test(test_registry_scoping),
		cmocka_unit_test(test_registry_eviction),
		cmocka_unit_test(test_registry_lend),
		cmocka_unit_test(test_registry_adopt),
		cmocka_unit_test(test_no_leak_over_sessions),
		cmocka_unit_test(test_content_key),
		cmocka_unit_test(test_shared_attach_and_refs),
		cmocka_unit_test(test_shared_eviction),
		cmocka_unit_test(test_shared_no_leak_over_sessions),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
