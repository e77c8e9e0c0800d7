/* The arena allocator: alignment, growth, reset, stats, ownership. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "arena.h"
#include "gn_error.h"

static void test_alignment(void **state)
{
	struct gn_arena *a = gn_arena_create(256);

	(void)state;
	assert_non_null(a);
	for (size_t al = 1; al <= 4096; al <<= 1) {
		void *p = gn_arena_alloc(a, 3, al);

		assert_non_null(p);
		assert_int_equal((uintptr_t)p % al, 0);
	}
	assert_null(gn_arena_alloc(a, 8, 0));
	assert_int_equal(gn_last_error_code(), -EINVAL);
	assert_null(gn_arena_alloc(a, 8, 3));
	assert_null(gn_arena_alloc(a, 8, 8192));
	gn_arena_destroy(&a);
	assert_null(a);
}

/* Many allocations across chunks never overlap. */
static void test_no_overlap_across_chunks(void **state)
{
	struct gn_arena *a = gn_arena_create(1000);
	struct gn_arena_stats st;
	uint8_t *ptrs[500];
	size_t sizes[500];

	(void)state;
	for (int i = 0; i < 500; i++) {
		sizes[i] = (size_t)(i % 37) + 1;
		ptrs[i] = gn_arena_alloc(a, sizes[i], 1 + (i % 4 == 0) * 7);
		assert_non_null(ptrs[i]);
		memset(ptrs[i], i & 0xff, sizes[i]);
	}
	for (int i = 0; i < 500; i++)
		for (size_t k = 0; k < sizes[i]; k++)
			assert_int_equal(ptrs[i][k], i & 0xff);
	gn_arena_get_stats(a, &st);
	assert_true(st.chunks > 1);
	assert_true(st.allocated >= 500);
	assert_true(st.reserved > st.allocated);
	gn_arena_destroy(&a);
}

static void test_large_and_zero_size(void **state)
{
	struct gn_arena *a = gn_arena_create(64);
	struct gn_arena_stats st;
	uint8_t *big, *z1, *z2;

	(void)state;
	big = gn_arena_alloc(a, 100000, 64);
	assert_non_null(big);
	memset(big, 0xab, 100000);
	z1 = gn_arena_alloc(a, 0, 1);
	z2 = gn_arena_alloc(a, 0, 1);
	assert_non_null(z1);
	assert_non_null(z2);
	assert_ptr_not_equal(z1, z2);
	gn_arena_get_stats(a, &st);
	assert_true(st.reserved >= 100000);
	gn_arena_destroy(&a);
}

static void test_reset_keeps_one_chunk(void **state)
{
	struct gn_arena *a = gn_arena_create(128);
	struct gn_arena_stats st;
	void *first, *again;

	(void)state;
	first = gn_arena_alloc(a, 16, 8);
	for (int i = 0; i < 100; i++)
		assert_non_null(gn_arena_alloc(a, 100, 8));
	gn_arena_reset(a);
	gn_arena_get_stats(a, &st);
	assert_int_equal(st.chunks, 1);
	assert_int_equal(st.allocated, 0);
	again = gn_arena_alloc(a, 16, 8);
	assert_ptr_equal(first, again);
	gn_arena_destroy(&a);
}

static void test_calloc_strdup_and_null_destroy(void **state)
{
	struct gn_arena *a = gn_arena_create(0), *none = NULL;
	uint8_t *z;
	char *s;

	(void)state;
	z = gn_arena_calloc(a, 64, 8);
	for (int i = 0; i < 64; i++)
		assert_int_equal(z[i], 0);
	s = gn_arena_strdup(a, "genie");
	assert_string_equal(s, "genie");
	gn_arena_destroy(&a);
	gn_arena_destroy(&none);
	gn_arena_destroy(NULL);
	assert_null(none);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alignment),
		cmocka_unit_test(test_no_overlap_across_chunks),
		cmocka_unit_test(test_large_and_zero_size),
		cmocka_unit_test(test_reset_keeps_one_chunk),
		cmocka_unit_test(test_calloc_strdup_and_null_destroy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
