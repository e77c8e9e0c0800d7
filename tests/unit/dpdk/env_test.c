/*
 * The DPDK environment for real: the EAL started without hugepages or PCI
 * under a prefix unique to this process, mbuf pools, errors, shutdown.
 *
 * This test belongs to the dpdk layer, so unlike the rest of Genie it may
 * include rte_*.h: it reaches the DPDK pool behind a gn_dpdk_pool by name to
 * take buffers out and check that the Genie counts follow.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <rte_eal.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "dpdk_env.h"
#include "gn_error.h"

#define POOL_N 511
#define POOL_ROOM 2048

static char g_prefix[64];

/* Before the EAL starts: pools are refused, bad options cost nothing. */
static void test_before_init(void **state)
{
	struct gn_dpdk_env_opts o;

	(void)state;
	assert_null(gn_dpdk_pool_create("early", 64, POOL_ROOM));
	assert_int_equal(gn_last_error_code(), -ENODEV);
	assert_non_null(strstr(gn_last_error(), "gn_dpdk_env_init"));

	/* Refused before DPDK runs, so a good start can follow. */
	gn_dpdk_env_opts_init(&o, sizeof(o));
	o.nb_vdevs = -1;
	assert_int_equal(gn_dpdk_env_init(&o), -EINVAL);
	gn_dpdk_env_fini();
}

/*
 * A start DPDK refuses reports its reason and the arguments. It runs in a
 * child so that this process's own start stays untouched.
 */
static void test_init_failure_reported(void **state)
{
	int status = 0;
	pid_t pid;

	(void)state;
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct gn_dpdk_env_opts o;
		char prefix[80];
		int rc, ok;

		/* DPDK prints its whole usage text on bad arguments. */
		if (freopen("/dev/null", "w", stdout) == NULL)
			_exit(2);
		gn_dpdk_env_opts_init(&o, sizeof(o));
		snprintf(prefix, sizeof(prefix), "%s-bad", g_prefix);
		o.file_prefix = prefix;
		/* An lcore mapped to a CPU this machine does not have. */
		o.lcores = "100";
		o.log_level = 1;
		rc = gn_dpdk_env_init(&o);
		ok = rc < 0 && rc != -EALREADY &&
		     strstr(gn_last_error(), "EAL start failed") != NULL &&
		     strstr(gn_last_error(), "--lcores 100") != NULL &&
		     strstr(gn_last_error(), prefix) != NULL;
		if (!ok)
			fprintf(stderr, "child: rc %d, detail '%s'\n", rc,
				gn_last_error());
		_exit(ok ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* The thread that started the EAL keeps the CPUs it had (lcores "0"). */
static cpu_set_t g_cpus_before;

static void test_affinity_kept(void **state)
{
	cpu_set_t now;

	(void)state;
	assert_int_equal(pthread_getaffinity_np(pthread_self(), sizeof(now),
						&now),
			 0);
	print_message("CPUs before EAL init %d, after %d\n",
		      CPU_COUNT(&g_cpus_before), CPU_COUNT(&now));
	assert_true(CPU_EQUAL(&now, &g_cpus_before));
}

static void test_double_init(void **state)
{
	(void)state;
	assert_int_equal(gn_dpdk_env_init(NULL), -EALREADY);
	assert_non_null(strstr(gn_last_error(), "already running"));
}

static void test_pool_alloc_free(void **state)
{
	struct gn_dpdk_pool *p;
	struct rte_mempool *mp;
	struct rte_mbuf *m;
	char *data;

	(void)state;
	p = gn_dpdk_pool_create("unit_pool", POOL_N, POOL_ROOM);
	if (p == NULL)
		fail_msg("pool: %s", gn_last_error());
	assert_int_equal(gn_dpdk_pool_avail(p), POOL_N);
	mp = rte_mempool_lookup("unit_pool");
	assert_non_null(mp);

	m = rte_pktmbuf_alloc(mp);
	assert_non_null(m);
	assert_int_equal(gn_dpdk_pool_avail(p), POOL_N - 1);
	/* The whole data room is there after the headroom, and writable. */
	assert_true(rte_pktmbuf_tailroom(m) >= POOL_ROOM);
	data = rte_pktmbuf_append(m, POOL_ROOM);
	assert_non_null(data);
	memset(data, 0x5a, POOL_ROOM);
	rte_pktmbuf_free(m);
	assert_int_equal(gn_dpdk_pool_avail(p), POOL_N);

	gn_dpdk_pool_destroy(&p);
	assert_null(p);
	assert_null(rte_mempool_lookup("unit_pool"));
	gn_dpdk_pool_destroy(&p);
	gn_dpdk_pool_destroy(NULL);
	assert_int_equal(gn_dpdk_pool_avail(NULL), 0);
}

/* An exhausted pool says so and recovers once buffers come back. */
static void test_pool_exhaustion(void **state)
{
	struct rte_mbuf *all[POOL_N];
	struct gn_dpdk_pool *p;
	struct rte_mempool *mp;

	(void)state;
	p = gn_dpdk_pool_create("unit_small", POOL_N, 256);
	if (p == NULL)
		fail_msg("pool: %s", gn_last_error());
	mp = rte_mempool_lookup("unit_small");
	assert_non_null(mp);
	assert_int_equal(rte_pktmbuf_alloc_bulk(mp, all, POOL_N), 0);
	assert_int_equal(gn_dpdk_pool_avail(p), 0);
	assert_null(rte_pktmbuf_alloc(mp));
	rte_pktmbuf_free_bulk(all, POOL_N);
	assert_int_equal(gn_dpdk_pool_avail(p), POOL_N);
	gn_dpdk_pool_destroy(&p);
}

static void test_pool_errors(void **state)
{
	char long_name[64];
	struct gn_dpdk_pool *p, *dup;

	(void)state;
	p = gn_dpdk_pool_create("unit_dup", 64, 512);
	if (p == NULL)
		fail_msg("pool: %s", gn_last_error());
	dup = gn_dpdk_pool_create("unit_dup", 64, 512);
	assert_null(dup);
	assert_int_equal(gn_last_error_code(), -EEXIST);
	assert_non_null(strstr(gn_last_error(), "unit_dup"));
	gn_dpdk_pool_destroy(&p);

	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_null(gn_dpdk_pool_create(long_name, 64, 512));
	assert_int_equal(gn_last_error_code(), -ENAMETOOLONG);
	assert_null(gn_dpdk_pool_create(NULL, 64, 512));
	assert_int_equal(gn_last_error_code(), -EINVAL);
	assert_null(gn_dpdk_pool_create("", 64, 512));
	assert_int_equal(gn_last_error_code(), -EINVAL);
	assert_null(gn_dpdk_pool_create("unit_empty", 0, 512));
	assert_int_equal(gn_last_error_code(), -EINVAL);
	assert_null(gn_dpdk_pool_create("unit_huge_room", 64, UINT16_MAX));
	assert_int_equal(gn_last_error_code(), -EINVAL);

	/* Far more than the EAL's 64 MiB: refused, and the EAL serves on. */
	assert_null(gn_dpdk_pool_create("unit_too_big", 1u << 20, 8192));
	assert_int_equal(gn_last_error_code(), -ENOMEM);
	p = gn_dpdk_pool_create("unit_after", 64, 512);
	assert_non_null(p);
	gn_dpdk_pool_destroy(&p);
}

/*
 * A runtime directory named as Genie names them, for a process that is
 * gone (a child that exited) and one for a live process (ours' parent):
 * EAL init removes the first, keeps the second.
 */
static char g_stale[300], g_live[300];

static void make_dirs_for_reaping(void)
{
	const char *base = getuid() == 0 ? "/var/run/dpdk" : NULL;
	char f[400];
	pid_t pid = fork();
	FILE *fp;

	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	if (base == NULL)
		return; /* non-root layouts vary; covered where root runs */
	mkdir(base, 0700);
	snprintf(g_stale, sizeof(g_stale), "%s/genie-%ld", base, (long)pid);
	snprintf(g_live, sizeof(g_live), "%s/genie-%ld", base,
		 (long)getppid());
	mkdir(g_stale, 0700);
	mkdir(g_live, 0700);
	snprintf(f, sizeof(f), "%s/config", g_stale);
	fp = fopen(f, "w");
	if (fp)
		fclose(fp);
}

static void test_stale_dirs_reaped(void **state)
{
	(void)state;
	if (g_stale[0] == '\0')
		skip();
	print_message("stale %s, live %s\n", g_stale, g_live);
	assert_int_equal(access(g_stale, F_OK), -1);
	assert_int_equal(access(g_live, F_OK), 0);
	rmdir(g_live);
}

int main(void)
{
	const struct CMUnitTest before[] = {
		cmocka_unit_test(test_before_init),
		cmocka_unit_test(test_init_failure_reported),
	};
	const struct CMUnitTest with_eal[] = {
		cmocka_unit_test(test_affinity_kept),
		cmocka_unit_test(test_stale_dirs_reaped),
		cmocka_unit_test(test_double_init),
		cmocka_unit_test(test_pool_alloc_free),
		cmocka_unit_test(test_pool_exhaustion),
		cmocka_unit_test(test_pool_errors),
	};
	struct gn_dpdk_env_opts o;
	char runtime_dir[4096];
	int failed;

	snprintf(g_prefix, sizeof(g_prefix), "genie-unit-env-%ld",
		 (long)getpid());
	failed = cmocka_run_group_tests_name("before_eal", before, NULL, NULL);

	gn_dpdk_env_opts_init(&o, sizeof(o));
	o.file_prefix = g_prefix;
	o.mem_mb = 64;
	pthread_getaffinity_np(pthread_self(), sizeof(g_cpus_before),
			       &g_cpus_before);
	make_dirs_for_reaping();
	if (gn_dpdk_env_init(&o) != 0) {
		printf("SKIP: the EAL does not start here without hugepages: "
		       "%s\n",
		       gn_last_error());
		return failed ? 1 : 77;
	}
	snprintf(runtime_dir, sizeof(runtime_dir), "%s",
		 rte_eal_get_runtime_dir());
	failed += cmocka_run_group_tests_name("with_eal", with_eal, NULL, NULL);

	gn_dpdk_env_fini();
	/* Nothing is left in /var/run/dpdk, and the EAL does not restart. */
	if (access(runtime_dir, F_OK) == 0) {
		printf("FAIL: %s still exists after gn_dpdk_env_fini()\n",
		       runtime_dir);
		failed++;
	}
	if (gn_dpdk_env_init(&o) != -EALREADY ||
	    strstr(gn_last_error(), "already stopped") == NULL) {
		printf("FAIL: a second start after fini gave '%s'\n",
		       gn_last_error());
		failed++;
	}
	return failed ? 1 : 0;
}
