/*
 * The quantile sketch (coordinator/sketch.c): on 1e6 samples from several
 * distributions every quantile asked is within the sketch's relative error
 * of the exact one, memory is the fixed struct however many samples come,
 * merging equals adding everything to one sketch, and the histogram counts
 * Prometheus reads are right up to that error.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sketch.h"

#define N 1000000

static uint64_t g_rng = 0x243f6a8885a308d3ull;

static double urand(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return (double)(g_rng >> 11) / 9007199254740992.0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void check_dist(uint64_t (*gen)(void))
{
	static const double qs[] = {0.01, 0.1, 0.25, 0.5,
				    0.75, 0.9, 0.99, 0.999};
	uint64_t *v = malloc(sizeof(uint64_t) * N);
	struct gn_sketch *s = malloc(sizeof(*s));

	assert_non_null(v);
	assert_non_null(s);
	gn_sketch_init(s);
	for (int i = 0; i < N; i++) {
		v[i] = gen();
		gn_sketch_add(s, v[i]);
	}
	qsort(v, N, sizeof(v[0]), cmp_u64);
	assert_int_equal(s->count, N);
	for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
		double exact = (double)v[(size_t)(qs[k] * (N - 1))];
		double got = gn_sketch_quantile(s, qs[k]);

		if (fabs(got - exact) > GN_SKETCH_ALPHA * exact + 1e-9)
			fail_msg("q%.3f: sketch %.1f, exact %.1f, relative "
				 "error %.4f > %.2f",
				 qs[k], got, exact, fabs(got - exact) / exact,
				 GN_SKETCH_ALPHA);
	}
	assert_true(gn_sketch_quantile(s, 0.0) == (double)v[0]);
	assert_true(gn_sketch_quantile(s, 1.0) == (double)v[N - 1]);
	free(v);
	free(s);
}

static uint64_t gen_uniform(void)
{
	return 1000 + (uint64_t)(urand() * 1e6);
}

/* Latency-like: lognormal around 200 us with a long tail. */
static uint64_t gen_lognormal(void)
{
	double u1 = urand() + 1e-12, u2 = urand();
	double z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);

	return (uint64_t)(200000.0 * exp(1.2 * z)) + 1;
}

static uint64_t gen_exp(void)
{
	return (uint64_t)(-log(urand() + 1e-12) * 50000.0) + 1;
}

static void test_uniform(void **state)
{
	(void)state;
	check_dist(gen_uniform);
}

static void test_lognormal(void **state)
{
	(void)state;
	check_dist(gen_lognormal);
}

static void test_exponential(void **state)
{
	(void)state;
	check_dist(gen_exp);
}

static void test_memory_constant_and_extremes(void **state)
{
	struct gn_sketch *s = malloc(sizeof(*s));

	(void)state;
	/* The struct is the whole of its memory: a fixed bucket array. */
	assert_true(sizeof(struct gn_sketch) <
		    (GN_SKETCH_BUCKETS + 16) * sizeof(uint64_t));
	gn_sketch_init(s);
	assert_true(gn_sketch_quantile(s, 0.5) == 0.0);
	gn_sketch_add(s, 0);
	gn_sketch_add(s, 0);
	gn_sketch_add(s, UINT64_MAX); /* beyond range: last bucket */
	assert_int_equal(s->count, 3);
	assert_true(gn_sketch_quantile(s, 0.5) == 0.0);
	assert_true(gn_sketch_quantile(s, 1.0) == (double)UINT64_MAX);
	assert_int_equal(gn_sketch_count_le(s, 0), 2);
	free(s);
}

static void test_merge_and_count_le(void **state)
{
	struct gn_sketch *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	struct gn_sketch *all = malloc(sizeof(*all));
	uint64_t le_exact = 0, seed = g_rng;

	(void)state;
	gn_sketch_init(a);
	gn_sketch_init(b);
	gn_sketch_init(all);
	for (int i = 0; i < 100000; i++) {
		uint64_t v = gen_lognormal();

		gn_sketch_add(i % 2 ? a : b, v);
		gn_sketch_add(all, v);
		le_exact += v <= 250000;
	}
	gn_sketch_merge(a, b);
	assert_int_equal(a->count, all->count);
	assert_memory_equal(a->bucket, all->bucket, sizeof(a->bucket));
	assert_true(gn_sketch_quantile(a, 0.99) ==
		    gn_sketch_quantile(all, 0.99));
	/* Within the values whose bucket straddles the bound. */
	{
		uint64_t lo = 0, hi = 0, got = gn_sketch_count_le(all, 250000);

		g_rng = seed;
		for (int i = 0; i < 100000; i++) {
			uint64_t v = gen_lognormal();

			lo += v <= 250000 * (1 - 2 * GN_SKETCH_ALPHA);
			hi += v <= 250000 * (1 + 2 * GN_SKETCH_ALPHA);
		}
		(void)le_exact;
		assert_true(got >= lo && got <= hi);
	}
	free(a);
	free(b);
	free(all);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uniform),
		cmocka_unit_test(test_lognormal),
		cmocka_unit_test(test_exponential),
		cmocka_unit_test(test_memory_constant_and_extremes),
		cmocka_unit_test(test_merge_and_count_le),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
