/*
 * The DPDK environment: EAL arguments, a real EAL start without
 * hugepages or PCI, and an mbuf pool.
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

static int has_arg(char **argv, int argc, const char *a)
{
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], a) == 0)
			return 1;
	return 0;
}

static void test_build_args(void **state)
{
	struct gn_dpdk_env_opts o;
	const char *vdevs[] = {"net_memif0,role=server"};
	char *argv[32], store[1024];
	int argc;

	(void)state;
	gn_dpdk_env_opts_init(&o, sizeof(o));
	o.file_prefix = "unit";
	o.vdevs = vdevs;
	o.nb_vdevs = 1;
	argc = gn_dpdk_env_build_args(&o, argv, 32, store, sizeof(store));
	assert_true(argc > 0);
	assert_null(argv[argc]);
	assert_true(has_arg(argv, argc, "--no-huge"));
	assert_true(has_arg(argv, argc, "--no-pci"));
	/* --in-memory conflicts with --no-huge, so it is left out. */
	assert_false(has_arg(argv, argc, "--in-memory"));
	assert_true(has_arg(argv, argc, "--file-prefix=unit"));
	assert_true(has_arg(argv, argc, "-m"));
	assert_true(has_arg(argv, argc, "256"));
	assert_true(has_arg(argv, argc, "--lcores=0"));
	assert_true(has_arg(argv, argc, "net_memif0,role=server"));
	/* Too small an argv or store is refused, never overrun. */
	assert_int_equal(
		gn_dpdk_env_build_args(&o, argv, 4, store, sizeof(store)),
		-ENOSPC);
	assert_int_equal(gn_dpdk_env_build_args(&o, argv, 32, store, 20),
			 -ENOSPC);
}

static void test_eal_and_pool(void **state)
{
	struct gn_dpdk_env_opts o;
	struct gn_dpdk_pool *p;
	char prefix[64];
	unsigned before;

	(void)state;
	gn_dpdk_env_opts_init(&o, sizeof(o));
	snprintf(prefix, sizeof(prefix), "genie-unit-%ld", (long)getpid());
	o.file_prefix = prefix;
	o.mem_mb = 64;
	assert_null(gn_dpdk_pool_create("early", 64, 2048));
	if (gn_dpdk_env_init(&o) != 0) {
		fail_msg("EAL did not start without hugepages: %s",
			 gn_last_error());
	}
	assert_int_equal(gn_dpdk_env_init(&o), -EALREADY);
	p = gn_dpdk_pool_create("unit_pool", 511, 2048);
	if (p == NULL)
		fail_msg("pool: %s", gn_last_error());
	before = gn_dpdk_pool_avail(p);
	assert_true(before >= 500);
	assert_int_equal(gn_dpdk_pool_check(p), 0);
	assert_int_equal(gn_dpdk_pool_avail(p), before);
	gn_dpdk_pool_destroy(&p);
	assert_null(p);
	gn_dpdk_pool_destroy(&p);
	gn_dpdk_env_fini();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_args),
		cmocka_unit_test(test_eal_and_pool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
