/* Error codes, their words, and the per-thread detail. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gn_error.h"

static void test_strerror_known_codes(void **state)
{
	static const int codes[] = {EINVAL,	  ENOMEM,     EMSGSIZE,
				    EBADMSG,	  EPROTO,     EPROTONOSUPPORT,
				    ECONNREFUSED, ECONNRESET, ETIMEDOUT,
				    EOPNOTSUPP,	  ENODEV,     ENOENT,
				    EALREADY,	  ENOSPC};

	(void)state;
	assert_string_equal(gn_strerror(0), "success");
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		const char *neg = gn_strerror(-codes[i]);

		assert_non_null(neg);
		assert_true(strlen(neg) > 5);
		/* Positive and negative forms say the same. */
		assert_string_equal(neg, gn_strerror(codes[i]));
	}
	assert_non_null(strstr(gn_strerror(-EMSGSIZE), "cap"));
	assert_non_null(gn_strerror(-4095));
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
	gn_error_clear();
	assert_string_equal(gn_last_error(), "");
}

static void *other_thread(void *arg)
{
	(void)arg;
	/* A new thread starts with no error, and its own does not leak. */
	if (gn_last_error()[0] != '\0')
		return (void *)1;
	gn_error_set(-ENOMEM, "thread detail");
	return NULL;
}

static void test_detail_is_per_thread(void **state)
{
	pthread_t t;
	void *ret;

	(void)state;
	gn_error_set(-EPROTO, "main detail");
	assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
	assert_int_equal(pthread_join(t, &ret), 0);
	assert_null(ret);
	assert_string_equal(gn_last_error(), "main detail");
	assert_int_equal(gn_last_error_code(), -EPROTO);
}

static void test_long_detail_truncates(void **state)
{
	char big[2000];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	gn_error_set(-EINVAL, "%s", big);
	assert_true(strlen(gn_last_error()) < sizeof(big) - 1);
	assert_true(strlen(gn_last_error()) > 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strerror_known_codes),
		cmocka_unit_test(test_set_returns_code_and_detail),
		cmocka_unit_test(test_detail_is_per_thread),
		cmocka_unit_test(test_long_detail_truncates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
