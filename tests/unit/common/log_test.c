/*
 * Per-component logging (common/log.c): level names, level specs, the
 * GENIE_LOG variable, and what reaches stderr.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gn_error.h"
#include "log.h"

GN_LOG_REGISTER(unittest)
/* The TCP transport's component, registered inside gn_common. */
GN_LOG_EXTERN(tcp);

#define ON(comp, lvl) \
	gn_log_enabled(&GN_LOG_COMPONENT(comp), GN_LOG_LEVEL_##lvl)

/* Runs first: main() put a spec in GENIE_LOG before anything logged. */
static void test_env_spec_read_at_first_use(void **state)
{
	(void)state;
	assert_true(ON(unittest, INFO));
	assert_false(ON(unittest, DEBUG));
	/* Components the spec does not name get its "*" entry. */
	assert_true(ON(tcp, WARNING));
	assert_false(ON(tcp, NOTICE));
}

static void test_level_parse(void **state)
{
	static const struct {
		const char *name;
		int level;
	} good[] = {
		{"err", GN_LOG_LEVEL_ERR},
		{"error", GN_LOG_LEVEL_ERR},
		{"warning", GN_LOG_LEVEL_WARNING},
		{"warn", GN_LOG_LEVEL_WARNING},
		{"notice", GN_LOG_LEVEL_NOTICE},
		{"info", GN_LOG_LEVEL_INFO},
		{"debug", GN_LOG_LEVEL_DEBUG},
		{"DEBUG", GN_LOG_LEVEL_DEBUG},
		{"Info", GN_LOG_LEVEL_INFO},
	};
	static const char *const bad[] = {"loud", "", "debug2", "5", "deb"};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(gn_log_level_parse(good[i].name),
				 good[i].level);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char quoted[32];

		gn_error_clear();
		assert_int_equal(gn_log_level_parse(bad[i]), -EINVAL);
		assert_int_equal(gn_last_error_code(), -EINVAL);
		snprintf(quoted, sizeof(quoted), "'%s'", bad[i]);
		assert_non_null(strstr(gn_last_error(), quoted));
	}
}

static void test_set_levels_global(void **state)
{
	(void)state;
	assert_int_equal(gn_log_set_levels("debug"), 0);
	assert_true(ON(unittest, DEBUG));
	assert_true(ON(tcp, DEBUG));
	assert_int_equal(gn_log_set_levels("err"), 0);
	assert_true(ON(unittest, ERR));
	assert_false(ON(unittest, WARNING));
	assert_false(ON(tcp, WARNING));
	/* An empty spec gives every component the default, notice. */
	assert_int_equal(gn_log_set_levels(""), 0);
	assert_true(ON(unittest, NOTICE));
	assert_false(ON(unittest, INFO));
}

/* A bad spec is refused whole: nothing from it is applied. */
static void test_set_levels_bad_spec(void **state)
{
	static const char *const bad[] = {
		"unittest=loud",
		"unittest=debug,*=nope",
		"unittest=",
		"debug,verbose",
	};

	(void)state;
	assert_int_equal(gn_log_set_levels("warning"), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		gn_error_clear();
		assert_int_equal(gn_log_set_levels(bad[i]), -EINVAL);
		assert_int_equal(gn_last_error_code(), -EINVAL);
		assert_true(strlen(gn_last_error()) > 0);
		/* Levels are as before the bad spec. */
		assert_true(ON(unittest, WARNING));
		assert_false(ON(unittest, NOTICE));
		assert_true(ON(tcp, WARNING));
		assert_false(ON(tcp, NOTICE));
	}
	gn_log_set_levels("unittest=loud");
	assert_non_null(strstr(gn_last_error(), "loud"));
}

/*
 * "name=debug,*=err": the named component logs debug, every other one
 * only errors (the form log.h documents, "tcp=debug,*=warning").
 */
static void test_set_levels_per_component(void **state)
{
	(void)state;
	assert_int_equal(gn_log_set_levels("unittest=debug,*=err"), 0);
	assert_true(ON(unittest, DEBUG));
	assert_true(ON(tcp, ERR));
	assert_false(ON(tcp, WARNING));

	assert_int_equal(gn_log_set_levels("*=err,unittest=debug"), 0);
	assert_true(ON(unittest, DEBUG));
	assert_true(ON(tcp, ERR));
	assert_false(ON(tcp, WARNING));

	assert_int_equal(gn_log_set_levels("tcp=info"), 0);
	assert_true(ON(tcp, INFO));
	assert_false(ON(tcp, DEBUG));
	/* Not named: the default, notice. */
	assert_true(ON(unittest, NOTICE));
	assert_false(ON(unittest, INFO));
}

/* A component registered after the spec was set still gets its level. */
static void test_late_registration(void **state)
{
	static struct gn_log_component late = {"latecomer", -1, NULL};

	(void)state;
	assert_int_equal(gn_log_set_levels("latecomer=info,unittest=err"), 0);
	gn_log_component_register(&late);
	assert_true(gn_log_enabled(&late, GN_LOG_LEVEL_INFO));
	assert_false(gn_log_enabled(&late, GN_LOG_LEVEL_DEBUG));
	assert_false(ON(unittest, WARNING));
}

/* Run `fn` with stderr going to a file; return what it wrote. */
static char *capture_stderr(void (*fn)(void))
{
	FILE *tmp = tmpfile();
	int saved;
	long n;
	char *out;

	assert_non_null(tmp);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
	fn();
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	/* stderr shared the file's offset: its end is what was written. */
	n = (long)lseek(fileno(tmp), 0, SEEK_END);
	assert_true(n >= 0);
	out = calloc(1, (size_t)n + 1);
	assert_non_null(out);
	assert_int_equal(pread(fileno(tmp), out, (size_t)n, 0), n);
	fclose(tmp);
	return out;
}

static void log_some(void)
{
	GN_LOG(ERR, unittest, "peer sent %zu bytes, cap is %d", (size_t)9, 4);
	GN_LOG(DEBUG, unittest, "this one is filtered");
	GN_LOG(WARNING, unittest, "second %s", "line");
}

static void test_write_format(void **state)
{
	const char *l1, *l2, *lvl;
	char *out;

	(void)state;
	assert_int_equal(gn_log_set_levels("unittest=warning"), 0);
	out = capture_stderr(log_some);
	/* "TIME LEVEL component: message", one line each. */
	l1 = strstr(out, "unittest: peer sent 9 bytes, cap is 4\n");
	l2 = strstr(out, "unittest: second line\n");
	assert_non_null(l1);
	assert_non_null(l2);
	assert_true(l1 < l2);
	lvl = strstr(out, " err ");
	assert_true(lvl != NULL && lvl < l1);
	lvl = strstr(l1, " warning ");
	assert_true(lvl != NULL && lvl < l2);
	assert_null(strstr(out, "filtered"));
	/* Exactly two lines: the filtered one wrote nothing at all. */
	{
		int lines = 0;

		for (const char *p = out; *p != '\0'; p++)
			lines += *p == '\n';
		assert_int_equal(lines, 2);
	}
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_env_spec_read_at_first_use),
		cmocka_unit_test(test_level_parse),
		cmocka_unit_test(test_set_levels_global),
		cmocka_unit_test(test_set_levels_bad_spec),
		cmocka_unit_test(test_set_levels_per_component),
		cmocka_unit_test(test_late_registration),
		cmocka_unit_test(test_write_format),
	};

	/* Before anything logs, so the first use reads it. */
	setenv("GENIE_LOG", "*=warning,unittest=info", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
