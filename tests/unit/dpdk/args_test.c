/*
 * The EAL argument vector built from Genie options. Pure: no EAL starts
 * here, so these checks run anywhere, sanitizers included.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dpdk_env.h"
#include "gn_error.h"

#define MAX_ARGS 32

/* Index of `a` in argv, or -1. */
static int find_arg(char **argv, int argc, const char *a)
{
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], a) == 0)
			return i;
	return -1;
}

/* The argument after option `a`, which must be present with a value. */
static const char *value_of(char **argv, int argc, const char *a)
{
	int i = find_arg(argv, argc, a);

	assert_true(i >= 0);
	assert_true(i + 1 < argc);
	return argv[i + 1];
}

static void test_defaults(void **state)
{
	struct gn_dpdk_env_opts o;
	char *argv[MAX_ARGS], store[1024], prefix[64];
	int argc;

	(void)state;
	gn_dpdk_env_opts_init(&o, sizeof(o));
	assert_int_equal(o.opts_size, sizeof(o));
	argc = gn_dpdk_env_build_args(&o, argv, MAX_ARGS, store, sizeof(store));
	assert_true(argc > 1);
	assert_null(argv[argc]);
	assert_string_equal(argv[0], "genie");
	assert_true(find_arg(argv, argc, "--no-huge") > 0);
	assert_true(find_arg(argv, argc, "--no-pci") > 0);
	assert_true(find_arg(argv, argc, "--no-shconf") > 0);
	assert_int_equal(find_arg(argv, argc, "--in-memory"), -1);
	assert_string_equal(value_of(argv, argc, "-m"), "256");
	assert_string_equal(value_of(argv, argc, "--lcores"), "0");
	assert_true(find_arg(argv, argc, "--log-level=4") > 0);
	assert_int_equal(find_arg(argv, argc, "--vdev"), -1);
	/* Without a prefix of its own the process gets one by pid. */
	snprintf(prefix, sizeof(prefix), "genie-%ld", (long)getpid());
	assert_string_equal(value_of(argv, argc, "--file-prefix"), prefix);

	/* NULL options are the defaults. */
	assert_int_equal(gn_dpdk_env_build_args(NULL, argv, MAX_ARGS, store,
						sizeof(store)),
			 argc);
}

static void test_options(void **state)
{
	const char *vdevs[] = {
		"net_memif0,role=server,socket=/tmp/genie-x/memif.sock",
		"net_af_packet0,iface=veth0",
	};
	struct gn_dpdk_env_opts o;
	char *argv[MAX_ARGS], store[1024];
	int argc, first;

	(void)state;
	gn_dpdk_env_opts_init(&o, sizeof(o));
	o.file_prefix = "unit";
	o.lcores = "0-1";
	o.mem_mb = 64;
	o.vdevs = vdevs;
	o.nb_vdevs = 2;
	o.log_level = 8;
	argc = gn_dpdk_env_build_args(&o, argv, MAX_ARGS, store, sizeof(store));
	assert_true(argc > 0);
	assert_string_equal(value_of(argv, argc, "--file-prefix"), "unit");
	assert_string_equal(value_of(argv, argc, "--lcores"), "0-1");
	assert_string_equal(value_of(argv, argc, "-m"), "64");
	assert_true(find_arg(argv, argc, "--log-level=8") > 0);
	/* Each vdev follows its own --vdev, in the caller's order. */
	first = find_arg(argv, argc, "--vdev");
	assert_true(first > 0);
	assert_true(first + 3 < argc);
	assert_string_equal(argv[first + 1], vdevs[0]);
	assert_string_equal(argv[first + 2], "--vdev");
	assert_string_equal(argv[first + 3], vdevs[1]);

	/* Production: hugepages, PCI, shared config, DPDK's log levels. */
	o.no_huge = false;
	o.no_pci = false;
	o.no_shconf = false;
	o.lcores = NULL;
	o.log_level = 0;
	o.nb_vdevs = 0;
	argc = gn_dpdk_env_build_args(&o, argv, MAX_ARGS, store, sizeof(store));
	assert_int_equal(argc, 3);
	assert_string_equal(argv[1], "--file-prefix");
	assert_string_equal(argv[2], "unit");
	assert_null(argv[3]);

	/* -m is DPDK's default when mem_mb is 0. */
	o.no_huge = true;
	o.mem_mb = 0;
	argc = gn_dpdk_env_build_args(&o, argv, MAX_ARGS, store, sizeof(store));
	assert_true(find_arg(argv, argc, "--no-huge") > 0);
	assert_int_equal(find_arg(argv, argc, "-m"), -1);
}

static void test_too_small(void **state)
{
	const char *vdevs[] = {"net_memif0,role=client"};
	struct gn_dpdk_env_opts o;
	char *argv[MAX_ARGS], store[1024];
	size_t need = 0;
	int argc;

	(void)state;
	gn_dpdk_env_opts_init(&o, sizeof(o));
	o.vdevs = vdevs;
	o.nb_vdevs = 1;
	argc = gn_dpdk_env_build_args(&o, argv, MAX_ARGS, store, sizeof(store));
	assert_true(argc > 0);
	for (int i = 0; i < argc; i++)
		need += strlen(argv[i]) + 1;

	/* Exactly enough room works; one less of either does not. */
	assert_int_equal(
		gn_dpdk_env_build_args(&o, argv, argc + 1, store, need), argc);
	assert_int_equal(
		gn_dpdk_env_build_args(&o, argv, argc, store, sizeof(store)),
		-ENOSPC);
	assert_non_null(strstr(gn_last_error(), "argv"));
	assert_int_equal(
		gn_dpdk_env_build_args(&o, argv, argc + 1, store, need - 1),
		-ENOSPC);
	assert_non_null(strstr(gn_last_error(), "store"));
	assert_int_equal(gn_dpdk_env_build_args(&o, argv, 0, store, need),
			 -ENOSPC);
	assert_int_equal(gn_dpdk_env_build_args(&o, argv, 4, store, 0),
			 -ENOSPC);
}

static void test_bad_options(void **state)
{
	const char *vdevs[] = {"net_memif0", ""};
	struct gn_dpdk_env_opts o;
	char *argv[MAX_ARGS], store[1024];

	(void)state;
	assert_int_equal(gn_dpdk_env_build_args(NULL, NULL, MAX_ARGS, store,
						sizeof(store)),
			 -EINVAL);
	assert_int_equal(gn_dpdk_env_build_args(NULL, argv, MAX_ARGS, NULL,
						sizeof(store)),
			 -EINVAL);

	gn_dpdk_env_opts_init(&o, sizeof(o));
	o.nb_vdevs = -1;
	assert_int_equal(gn_dpdk_env_build_args(&o, argv, MAX_ARGS, store,
						sizeof(store)),
			 -EINVAL);
	o.nb_vdevs = 1;
	assert_int_equal(gn_dpdk_env_build_args(&o, argv, MAX_ARGS, store,
						sizeof(store)),
			 -EINVAL);
	assert_non_null(strstr(gn_last_error(), "vdevs NULL"));
	o.vdevs = vdevs;
	o.nb_vdevs = 2;
	assert_int_equal(gn_dpdk_env_build_args(&o, argv, MAX_ARGS, store,
						sizeof(store)),
			 -EINVAL);
	assert_non_null(strstr(gn_last_error(), "vdevs[1] is empty"));

	gn_dpdk_env_opts_init(&o, sizeof(o));
	o.log_level = 9;
	assert_int_equal(gn_dpdk_env_build_args(&o, argv, MAX_ARGS, store,
						sizeof(store)),
			 -EINVAL);
	assert_non_null(strstr(gn_last_error(), "log_level 9"));

	gn_dpdk_env_opts_init(&o, sizeof(o));
	o.file_prefix = "a/b";
	assert_int_equal(gn_dpdk_env_build_args(&o, argv, MAX_ARGS, store,
						sizeof(store)),
			 -EINVAL);
	o.file_prefix = "";
	assert_int_equal(gn_dpdk_env_build_args(&o, argv, MAX_ARGS, store,
						sizeof(store)),
			 -EINVAL);

	gn_dpdk_env_opts_init(&o, sizeof(o));
	o.lcores = "";
	assert_int_equal(gn_dpdk_env_build_args(&o, argv, MAX_ARGS, store,
						sizeof(store)),
			 -EINVAL);

	gn_dpdk_env_opts_init(&o, sizeof(o));
	o.opts_size = 0;
	assert_int_equal(gn_dpdk_env_build_args(&o, argv, MAX_ARGS, store,
						sizeof(store)),
			 -EINVAL);
	assert_non_null(strstr(gn_last_error(), "opts_size"));
}

/*
 * A caller compiled against an older, shorter struct: fields past its
 * opts_size are never read and take their defaults.
 */
static void test_older_caller(void **state)
{
	const char *vdevs[] = {"net_memif0"};
	struct gn_dpdk_env_opts o;
	char *argv[MAX_ARGS], store[1024];
	int argc;

	(void)state;
	gn_dpdk_env_opts_init(&o, sizeof(o));
	o.file_prefix = "old";
	o.no_shconf = false;
	o.vdevs = vdevs;
	o.nb_vdevs = 1;
	o.opts_size = offsetof(struct gn_dpdk_env_opts, vdevs);
	argc = gn_dpdk_env_build_args(&o, argv, MAX_ARGS, store, sizeof(store));
	assert_true(argc > 0);
	assert_string_equal(value_of(argv, argc, "--file-prefix"), "old");
	assert_int_equal(find_arg(argv, argc, "--vdev"), -1);
	assert_true(find_arg(argv, argc, "--no-shconf") > 0);
}

/* Initialising a shorter struct writes nothing past its size. */
static void test_opts_init_size(void **state)
{
	union {
		struct gn_dpdk_env_opts o;
		unsigned char bytes[sizeof(struct gn_dpdk_env_opts) + 8];
	} u;
	size_t small = offsetof(struct gn_dpdk_env_opts, no_huge);

	(void)state;
	memset(&u, 0xa5, sizeof(u));
	gn_dpdk_env_opts_init(&u.o, small);
	assert_int_equal(u.o.opts_size, small);
	assert_null(u.o.file_prefix);
	for (size_t i = small; i < sizeof(u.bytes); i++)
		assert_int_equal(u.bytes[i], 0xa5);
	gn_dpdk_env_opts_init(NULL, sizeof(u.o));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_too_small),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_older_caller),
		cmocka_unit_test(test_opts_init_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
