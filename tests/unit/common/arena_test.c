/*
 * The arena allocator (common/arena.c): alignment, growth across chunks,
 * zero-size and oversized requests, reset, stats and ownership.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arena.h"
#include "gn_error.h"

static struct gn_arena_stats stats_of(const struct gn_arena *a)
{
	struct gn_arena_stats st;

	memset(&st, 0xa5, sizeof(st));
	gn_arena_get_stats(a, &st);
	return st;
}

static void test_alignment_powers_of_two(void **state)
{
	struct gn_arena *a = gn_arena_create(256);

	(void)state;
	assert_non_null(a);
	/* Twice round, so each alignment also follows a misaligning one. */
	for (int round = 0; round < 2; round++)
		for (size_t al = 1; al <= 4096; al <<= 1) {
			uint8_t *p = gn_arena_alloc(a, 3, al);

			assert_non_null(p);
			assert_int_equal((uintptr_t)p % al, 0);
			memset(p, 0x5a, 3);
			/* Knock the bump pointer off any alignment. */
			assert_non_null(gn_arena_alloc(a, 1, 1));
		}
	gn_arena_destroy(&a);
	assert_null(a);
}

static void test_bad_alignment(void **state)
{
	static const size_t bad[] = {0, 3, 6, 12, 8192, 1u << 20, SIZE_MAX};
	struct gn_arena *a = gn_arena_create(0);
	struct gn_arena_stats before, after;

	(void)state;
	assert_non_null(a);
	before = stats_of(a);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		gn_error_clear();
		assert_null(gn_arena_alloc(a, 8, bad[i]));
		assert_int_equal(gn_last_error_code(), -EINVAL);
		assert_non_null(strstr(gn_last_error(), "alignment"));
		assert_null(gn_arena_calloc(a, 8, bad[i]));
		assert_int_equal(gn_last_error_code(), -EINVAL);
	}
	/* The detail names the alignment it was given. */
	assert_null(gn_arena_alloc(a, 1, 3));
	assert_non_null(strstr(gn_last_error(), "got 3"));
	/* Nothing was handed out, and the arena still works. */
	after = stats_of(a);
	assert_int_equal(after.allocated, before.allocated);
	assert_int_equal(after.chunks, before.chunks);
	assert_non_null(gn_arena_alloc(a, 8, 8));
	gn_arena_destroy(&a);
}

/* Many small allocations across many chunks never overlap. */
static void test_no_overlap_across_chunks(void **state)
{
	enum { N = 3000 };
	struct gn_arena *a = gn_arena_create(1000);
	struct gn_arena_stats st;
	uint8_t **ptrs = calloc(N, sizeof(*ptrs));
	size_t *sizes = calloc(N, sizeof(*sizes));
	size_t total = 0;

	(void)state;
	assert_non_null(a);
	assert_non_null(ptrs);
	assert_non_null(sizes);
	for (int i = 0; i < N; i++) {
		size_t al = (size_t)1 << (i % 7);

		sizes[i] = (size_t)(i % 97) + 1;
		ptrs[i] = gn_arena_alloc(a, sizes[i], al);
		assert_non_null(ptrs[i]);
		assert_int_equal((uintptr_t)ptrs[i] % al, 0);
		for (size_t k = 0; k < sizes[i]; k++)
			ptrs[i][k] = (uint8_t)(i * 31 + k);
		total += sizes[i];
	}
	/* A later allocation over an earlier one would have changed it. */
	for (int i = 0; i < N; i++)
		for (size_t k = 0; k < sizes[i]; k++)
			assert_int_equal(ptrs[i][k], (uint8_t)(i * 31 + k));
	st = stats_of(a);
	assert_true(st.chunks > 1);
	assert_int_equal(st.allocated, total);
	assert_true(st.reserved >= total);
	free(sizes);
	free(ptrs);
	gn_arena_destroy(&a);
}

/* A request larger than a chunk gets a chunk of its own. */
static void test_larger_than_chunk(void **state)
{
	static const size_t big_sizes[] = {1000, 100000, 3u << 20};
	struct gn_arena *a = gn_arena_create(64);

	(void)state;
	assert_non_null(a);
	for (size_t i = 0; i < sizeof(big_sizes) / sizeof(big_sizes[0]); i++) {
		struct gn_arena_stats before = stats_of(a), after;
		size_t n = big_sizes[i];
		uint8_t *small = gn_arena_alloc(a, 16, 1);
		uint8_t *big;

		assert_non_null(small);
		memset(small, 0x11, 16);
		big = gn_arena_alloc(a, n, 4096);
		assert_non_null(big);
		assert_int_equal((uintptr_t)big % 4096, 0);
		memset(big, 0xab, n);
		after = stats_of(a);
		assert_true(after.chunks > before.chunks);
		assert_true(after.reserved >= before.reserved + n);
		assert_int_equal(after.allocated, before.allocated + 16 + n);
		/* The small one before it survived the big write. */
		for (int k = 0; k < 16; k++)
			assert_int_equal(small[k], 0x11);
		assert_int_equal(big[0], 0xab);
		assert_int_equal(big[n - 1], 0xab);
	}
	gn_arena_destroy(&a);
}

/* A request that cannot be represented fails cleanly instead of wrapping. */
static void test_overflowing_size(void **state)
{
	struct gn_arena *a = gn_arena_create(64);

	(void)state;
	assert_non_null(a);
	gn_error_clear();
	assert_null(gn_arena_alloc(a, SIZE_MAX, 8));
	assert_int_equal(gn_last_error_code(), -ENOMEM);
	assert_null(gn_arena_alloc(a, SIZE_MAX - 16, 4096));
	assert_int_equal(gn_last_error_code(), -ENOMEM);
	assert_non_null(gn_arena_alloc(a, 8, 8));
	gn_arena_destroy(&a);
}

static int cmp_ptr(const void *x, const void *y)
{
	uintptr_t a = (uintptr_t) * (void *const *)x;
	uintptr_t b = (uintptr_t) * (void *const *)y;

	return a < b ? -1 : a > b;
}

static void test_zero_size_unique(void **state)
{
	enum { N = 1000 };
	struct gn_arena *a = gn_arena_create(128);
	void *p[N + 1];

	(void)state;
	assert_non_null(a);
	for (int i = 0; i < N; i++) {
		p[i] = gn_arena_alloc(a, 0, 1 + (i % 2) * 7);
		assert_non_null(p[i]);
	}
	p[N] = gn_arena_alloc(a, 4, 1);
	assert_non_null(p[N]);
	qsort(p, N + 1, sizeof(p[0]), cmp_ptr);
	for (int i = 0; i < N; i++)
		assert_ptr_not_equal(p[i], p[i + 1]);
	gn_arena_destroy(&a);
}

static void test_stats(void **state)
{
	struct gn_arena *a = gn_arena_create(256);
	struct gn_arena_stats st;
	size_t reserved0;

	(void)state;
	assert_non_null(a);
	st = stats_of(a);
	assert_int_equal(st.allocated, 0);
	assert_int_equal(st.chunks, 1);
	assert_true(st.reserved >= 256);
	reserved0 = st.reserved;

	assert_non_null(gn_arena_alloc(a, 100, 1));
	st = stats_of(a);
	assert_int_equal(st.allocated, 100);
	assert_int_equal(st.chunks, 1);
	assert_int_equal(st.reserved, reserved0);

	assert_non_null(gn_arena_alloc(a, 100, 1));
	st = stats_of(a);
	assert_int_equal(st.allocated, 200);
	assert_int_equal(st.chunks, 1);

	/* 56 bytes left: the next 100 take a second chunk. */
	assert_non_null(gn_arena_alloc(a, 100, 1));
	st = stats_of(a);
	assert_int_equal(st.allocated, 300);
	assert_int_equal(st.chunks, 2);
	assert_true(st.reserved > reserved0);
	gn_arena_destroy(&a);
}

static void test_reset_keeps_one_chunk(void **state)
{
	struct gn_arena *a = gn_arena_create(128);
	struct gn_arena_stats st;
	size_t reserved0;
	uint8_t *first, *again, *z;

	(void)state;
	assert_non_null(a);
	reserved0 = stats_of(a).reserved;
	first = gn_arena_alloc(a, 64, 8);
	assert_non_null(first);
	memset(first, 0xff, 64);
	for (int i = 0; i < 100; i++)
		assert_non_null(gn_arena_alloc(a, 100, 8));
	assert_non_null(gn_arena_alloc(a, 1 << 20, 8));
	assert_true(stats_of(a).chunks > 2);

	gn_arena_reset(a);
	st = stats_of(a);
	assert_int_equal(st.chunks, 1);
	assert_int_equal(st.allocated, 0);
	assert_int_equal(st.reserved, reserved0);
	/* The kept chunk is reused from its start. */
	again = gn_arena_alloc(a, 16, 8);
	assert_ptr_equal(first, again);
	/* calloc zeroes bytes that held data before the reset. */
	gn_arena_reset(a);
	z = gn_arena_calloc(a, 64, 8);
	assert_ptr_equal(z, first);
	for (int i = 0; i < 64; i++)
		assert_int_equal(z[i], 0);
	/* And it grows again after a reset. */
	for (int i = 0; i < 100; i++)
		assert_non_null(gn_arena_alloc(a, 100, 8));
	assert_true(stats_of(a).chunks > 1);
	gn_arena_destroy(&a);
}

static void test_strdup_and_calloc(void **state)
{
	struct gn_arena *a = gn_arena_create(64);
	char longer[300];
	char *s, *t, *e;
	uint8_t *z;

	(void)state;
	assert_non_null(a);
	s = gn_arena_strdup(a, "genie");
	assert_non_null(s);
	assert_string_equal(s, "genie");
	e = gn_arena_strdup(a, "");
	assert_non_null(e);
	assert_string_equal(e, "");
	assert_ptr_not_equal(e, s);
	/* A string longer than a chunk. */
	memset(longer, 'q', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	t = gn_arena_strdup(a, longer);
	assert_non_null(t);
	assert_ptr_not_equal(t, longer);
	assert_string_equal(t, longer);
	assert_string_equal(s, "genie");

	z = gn_arena_calloc(a, 1000, 64);
	assert_non_null(z);
	assert_int_equal((uintptr_t)z % 64, 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(z[i], 0);
	gn_arena_destroy(&a);
}

static void test_destroy_null(void **state)
{
	struct gn_arena *none = NULL, *a = gn_arena_create(0);

	(void)state;
	gn_arena_destroy(NULL);
	gn_arena_destroy(&none);
	assert_null(none);
	assert_non_null(a);
	gn_arena_destroy(&a);
	assert_null(a);
	/* A second destroy through the same (now NULL) pointer is a no-op. */
	gn_arena_destroy(&a);
	assert_null(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alignment_powers_of_two),
		cmocka_unit_test(test_bad_alignment),
		cmocka_unit_test(test_no_overlap_across_chunks),
		cmocka_unit_test(test_larger_than_chunk),
		cmocka_unit_test(test_overflowing_size),
		cmocka_unit_test(test_zero_size_unique),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_reset_keeps_one_chunk),
		cmocka_unit_test(test_strdup_and_calloc),
		cmocka_unit_test(test_destroy_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
