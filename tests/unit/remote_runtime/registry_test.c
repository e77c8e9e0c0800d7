/*
 * Memory pools and the tensor registry: size classes and reuse, the limit
 * with a worded -ENOMEM, capability scoping between sessions, LRU eviction
 * sparing pinned tensors, and no leak over 10,000 sessions.
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_classes_and_reuse),
		cmocka_unit_test(test_pool_limit),
		cmocka_unit_test(test_registry_scoping),
		cmocka_unit_test(test_registry_eviction),
		cmocka_unit_test(test_no_leak_over_sessions),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
