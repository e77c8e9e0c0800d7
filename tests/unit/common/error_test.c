/*
 * Error codes, their words, and the per-thread detail (common/error.c).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gn_error.h"

/* Every errno Genie returns. */
static const int g_codes[] = {
	EINVAL,		 ENOMEM,       EMSGSIZE,   EBADMSG,   EPROTO,
	EPROTONOSUPPORT, ECONNREFUSED, ECONNRESET, ETIMEDOUT, EOPNOTSUPP,
	ENODEV,		 ENOENT,       EALREADY,   ENOSPC,
};
#define NCODES (sizeof(g_codes) / sizeof(g_codes[0]))

static void test_strerror_success(void **state)
{
	(void)state;
	assert_non_null(gn_strerror(0));
	assert_string_equal(gn_strerror(0), "success");
}

static void test_strerror_known_codes(void **state)
{
	(void)state;
	for (size_t i = 0; i < NCODES; i++) {
		const char *neg = gn_strerror(-g_codes[i]);
		const char *pos = gn_strerror(g_codes[i]);

		assert_non_null(neg);
		assert_non_null(pos);
		assert_true(strlen(neg) > 0);
		/* Positive and negative forms say the same. */
		assert_string_equal(neg, pos);
		/* Not the words for success. */
		assert_string_not_equal(neg, gn_strerror(0));
	}
	/* Each code has its own words: no two Genie codes read alike. */
	for (size_t i = 0; i < NCODES; i++)
		for (size_t j = i + 1; j < NCODES; j++)
			assert_string_not_equal(gn_strerror(-g_codes[i]),
						gn_strerror(-g_codes[j]));
	/* The words say what the code means in Genie's terms. */
	assert_non_null(strstr(gn_strerror(-EMSGSIZE), "cap"));
	assert_non_null(strstr(gn_strerror(-ECONNRESET), "closed"));
	assert_non_null(strstr(gn_strerror(-ETIMEDOUT), "timed out"));
}

static void test_strerror_unknown_code(void **state)
{
	(void)state;
	assert_non_null(gn_strerror(-4095));
	assert_non_null(gn_strerror(4095));
	assert_non_null(gn_strerror(123456));
	assert_non_null(gn_strerror(-123456));
	assert_true(strlen(gn_strerror(-123456)) > 0);
}

static void test_set_returns_code_and_detail(void **state)
{
	(void)state;
	gn_error_clear();
	assert_string_equal(gn_last_error(), "");
	assert_int_equal(gn_last_error_code(), 0);

	assert_int_equal(gn_error_set(-EINVAL, "shape %d vs %d", 3, 4),
			 -EINVAL);
	assert_string_equal(gn_last_error(), "shape 3 vs 4");
	assert_int_equal(gn_last_error_code(), -EINVAL);

	/* A later error replaces the earlier one entirely. */
	assert_int_equal(gn_error_set(-EPROTO, "%s", "x"), -EPROTO);
	assert_string_equal(gn_last_error(), "x");
	assert_int_equal(gn_last_error_code(), -EPROTO);

	gn_error_clear();
	assert_string_equal(gn_last_error(), "");
	assert_int_equal(gn_last_error_code(), 0);
}

struct thread_result {
	char seen_at_start[64];
	int code_at_start;
	char seen_after_set[64];
	int code_after_set;
};

static void *other_thread(void *arg)
{
	struct thread_result *r = arg;

	snprintf(r->seen_at_start, sizeof(r->seen_at_start), "%s",
		 gn_last_error());
	r->code_at_start = gn_last_error_code();
	gn_error_set(-ENOMEM, "thread detail %d", 7);
	snprintf(r->seen_after_set, sizeof(r->seen_after_set), "%s",
		 gn_last_error());
	r->code_after_set = gn_last_error_code();
	return NULL;
}

static void test_detail_is_per_thread(void **state)
{
	struct thread_result r;
	pthread_t t;

	(void)state;
	memset(&r, 0, sizeof(r));
	gn_error_set(-EPROTO, "main detail");
	assert_int_equal(pthread_create(&t, NULL, other_thread, &r), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	/* The new thread started clean and saw its own detail. */
	assert_string_equal(r.seen_at_start, "");
	assert_int_equal(r.code_at_start, 0);
	assert_string_equal(r.seen_after_set, "thread detail 7");
	assert_int_equal(r.code_after_set, -ENOMEM);
	/* Its error did not leak into this thread. */
	assert_string_equal(gn_last_error(), "main detail");
	assert_int_equal(gn_last_error_code(), -EPROTO);
}

static void test_long_detail_truncates(void **state)
{
	char big[2000];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(gn_error_set(-EINVAL, "%s", big), -EINVAL);
	/* Cut to the buffer, still a terminated prefix of what was set. */
	assert_true(strlen(gn_last_error()) < sizeof(big) - 1);
	assert_true(strlen(gn_last_error()) > 100);
	assert_int_equal(strspn(gn_last_error(), "x"), strlen(gn_last_error()));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strerror_success),
		cmocka_unit_test(test_strerror_known_codes),
		cmocka_unit_test(test_strerror_unknown_code),
		cmocka_unit_test(test_set_returns_code_and_detail),
		cmocka_unit_test(test_detail_is_per_thread),
		cmocka_unit_test(test_long_detail_truncates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
