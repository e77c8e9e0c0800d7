/*
 * The monotonic clock (common/clock.c): never goes backwards, and the
 * time left to a deadline is 0 once it has passed and rounds up before.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "clock.h"

static void test_monotonic_non_decreasing(void **state)
{
	uint64_t prev = gn_clock_ns(), start = prev;

	(void)state;
	assert_true(prev > 0);
	for (int i = 0; i < 100000; i++) {
		uint64_t now = gn_clock_ns();

		assert_true(now >= prev);
		prev = now;
	}
	/* It moves: 100k reads take well over a nanosecond. */
	assert_true(prev > start);
}

/* The clock is in nanoseconds: a 20 ms sleep reads as about 20e6. */
static void test_counts_nanoseconds(void **state)
{
	struct timespec ts = {0, 20 * 1000 * 1000};
	uint64_t t0, dt;

	(void)state;
	t0 = gn_clock_ns();
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	dt = gn_clock_ns() - t0;
	assert_true(dt >= 20ull * 1000 * 1000);
	assert_true(dt < 5ull * 1000 * 1000 * 1000);
}

static void test_ms_until_past_deadline(void **state)
{
	uint64_t now = gn_clock_ns();

	(void)state;
	assert_int_equal(gn_clock_ms_until(0), 0);
	assert_int_equal(gn_clock_ms_until(1), 0);
	assert_int_equal(gn_clock_ms_until(now), 0);
	assert_int_equal(gn_clock_ms_until(now - 5ull * 1000 * 1000 * 1000), 0);
}

/*
 * A deadline 5 ms away reads as 5 (rounded up from 4.99...), never 4:
 * truncating would wake a poller just before its deadline. The read can
 * only come out 4 if more than 1 ms passes between the two clock reads,
 * so a few tries keep a loaded machine from failing the test.
 */
static void test_ms_until_rounds_up(void **state)
{
	int got = -1;

	(void)state;
	for (int attempt = 0; attempt < 20 && got != 5; attempt++) {
		uint64_t deadline = gn_clock_ns() + 5ull * 1000 * 1000;

		got = gn_clock_ms_until(deadline);
		assert_true(got >= 0 && got <= 5);
	}
	assert_int_equal(got, 5);
	/* Any time left at all is at least 1 ms, not 0. */
	got = -1;
	for (int attempt = 0; attempt < 20 && got != 1; attempt++)
		got = gn_clock_ms_until(gn_clock_ns() + 500 * 1000);
	assert_int_equal(got, 1);
}

static void test_ms_until_clamps(void **state)
{
	(void)state;
	assert_int_equal(gn_clock_ms_until(UINT64_MAX), INT32_MAX);
	assert_int_equal(gn_clock_ms_until(gn_clock_ns() +
					   (uint64_t)INT32_MAX * 1000000 * 2),
			 INT32_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_monotonic_non_decreasing),
		cmocka_unit_test(test_counts_nanoseconds),
		cmocka_unit_test(test_ms_until_past_deadline),
		cmocka_unit_test(test_ms_until_rounds_up),
		cmocka_unit_test(test_ms_until_clamps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
