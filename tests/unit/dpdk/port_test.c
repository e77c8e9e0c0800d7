/*
 * The port layer inside one process: option defaults, bad options and
 * missing peers refused with errors that say what was wrong, memory
 * registration, and frame checks on an af_packet port over loopback
 * (skipped without the right to open packet sockets). The two-process
 * tests are in tests/integration/dpdk_port_*.
 */
#include <errno.h>
#include <net/if.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/if_ether.h>

#include <cmocka.h>

#include "dpdk_env.h"
#include "gn_error.h"
#include "port.h"

static char g_prefix[64];
static char g_dir[64];
static int g_done_calls;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void count_done(void *cookie)
{
	(void)cookie;
	g_done_calls++;
}

/* Expect `rc` and an error detail holding `words`. */
static void expect_error(int rc, int want, const char *words)
{
	if (rc != want || strstr(gn_last_error(), words) == NULL)
		printf("got %d '%s', expected %d and '%s'\n", rc,
		       gn_last_error(), want, words);
	assert_int_equal(rc, want);
	assert_non_null(strstr(gn_last_error(), words));
}

static void test_opts_defaults(void **state)
{
	struct gn_dpdk_port_opts o;

	(void)state;
	gn_dpdk_port_opts_init(&o, sizeof(o));
	assert_int_equal(o.opts_size, sizeof(o));
	assert_int_equal(o.kind, GN_DPDK_PORT_NONE);
	assert_int_equal(o.mtu, 1500);
	assert_int_equal(o.rx_ring_size, 1024);
	assert_int_equal(o.tx_ring_size, 1024);
	assert_int_equal(o.pool_size, 4096);
	assert_int_equal(o.link_timeout_ms, 5000);
	assert_int_equal(o.zc_min_payload, 512);
	assert_false(o.tx_copy_only);
	gn_dpdk_port_opts_init(NULL, 0);
}

static void test_before_eal(void **state)
{
	struct gn_dpdk_port_opts o;
	struct gn_dpdk_port *p = (void *)1;
	char buf[64];

	(void)state;
	gn_dpdk_port_opts_init(&o, sizeof(o));
	o.kind = GN_DPDK_PORT_MEMIF;
	o.memif_socket = "/tmp/nowhere.sock";
	expect_error(gn_dpdk_port_open(&o, &p), -ENODEV, "gn_dpdk_env_init");
	assert_null(p);
	expect_error(gn_dpdk_mem_register(buf, sizeof(buf)), -ENODEV,
		     "gn_dpdk_env_init");
}

static void test_start_eal(void **state)
{
	struct gn_dpdk_env_opts o;
	int rc;

	(void)state;
	gn_dpdk_env_opts_init(&o, sizeof(o));
	o.file_prefix = g_prefix;
	rc = gn_dpdk_env_init(&o);
	if (rc != 0)
		printf("EAL: %s\n", gn_last_error());
	assert_int_equal(rc, 0);
}

static void test_bad_options(void **state)
{
	struct gn_dpdk_port_opts o;
	struct gn_dpdk_port *p = NULL;
	char longpath[200];

	(void)state;
	expect_error(gn_dpdk_port_open(NULL, &p), -EINVAL, "NULL");
	gn_dpdk_port_opts_init(&o, sizeof(o));
	expect_error(gn_dpdk_port_open(&o, NULL), -EINVAL, "out is NULL");

	o.opts_size = 0;
	expect_error(gn_dpdk_port_open(&o, &p), -EINVAL, "opts_size");

	gn_dpdk_port_opts_init(&o, sizeof(o));
	expect_error(gn_dpdk_port_open(&o, &p), -EINVAL, "kind 0");
	o.kind = (enum gn_dpdk_port_kind)99;
	expect_error(gn_dpdk_port_open(&o, &p), -EINVAL, "kind 99");

	o.kind = GN_DPDK_PORT_MEMIF;
	expect_error(gn_dpdk_port_open(&o, &p), -EINVAL, "socket path");
	o.memif_socket = "";
	expect_error(gn_dpdk_port_open(&o, &p), -EINVAL, "socket path");
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	o.memif_socket = longpath;
	expect_error(gn_dpdk_port_open(&o, &p), -EINVAL, "at most 107");
	o.memif_socket = "/tmp/a,b";
	expect_error(gn_dpdk_port_open(&o, &p), -EINVAL, "','");
	o.memif_socket = "/tmp/x.sock";
	o.memif_role = (enum gn_dpdk_memif_role)7;
	expect_error(gn_dpdk_port_open(&o, &p), -EINVAL, "memif role 7");
	o.memif_role = GN_DPDK_MEMIF_SERVER;
	o.rx_ring_size = 1000;
	expect_error(gn_dpdk_port_open(&o, &p), -EINVAL, "powers of two");
	o.rx_ring_size = 0; /* the default */
	o.mtu = 16371;	    /* memif frames fill 16 KiB ring buffers, no more */
	expect_error(gn_dpdk_port_open(&o, &p), -EINVAL,
		     "mtu 16371, expected 68..9000 (memif 68..16370)");
	o.mtu = 1500;
	o.pool_size = 10;
	expect_error(gn_dpdk_port_open(&o, &p), -EINVAL, "pool_size 10");

	gn_dpdk_port_opts_init(&o, sizeof(o));
	o.kind = GN_DPDK_PORT_AF_PACKET;
	expect_error(gn_dpdk_port_open(&o, &p), -EINVAL, "interface name");
	o.ifname = "an-interface-name-too-long";
	expect_error(gn_dpdk_port_open(&o, &p), -EINVAL, "not a valid");
	o.ifname = "gnnosuch0";
	o.mtu = 9001; /* a wire's jumbo frames at most */
	expect_error(gn_dpdk_port_open(&o, &p), -EINVAL, "mtu 9001");
	o.mtu = 1500;
	expect_error(gn_dpdk_port_open(&o, &p), -ENODEV,
		     "'gnnosuch0' does not exist");

	gn_dpdk_port_opts_init(&o, sizeof(o));
	o.kind = GN_DPDK_PORT_PCI;
	expect_error(gn_dpdk_port_open(&o, &p), -EINVAL, "address");
	o.pci_addr = "0000:ff:1f.7";
	expect_error(gn_dpdk_port_open(&o, &p), -ENODEV, "0000:ff:1f.7");
	assert_null(p);
}

/* A memif server socket in a directory that does not exist. */
static void test_memif_bad_socket_dir(void **state)
{
	struct gn_dpdk_port_opts o;
	struct gn_dpdk_port *p = NULL;
	int rc;

	(void)state;
	gn_dpdk_port_opts_init(&o, sizeof(o));
	o.kind = GN_DPDK_PORT_MEMIF;
	o.memif_socket = "/nonexistent-gn-dir/memif.sock";
	o.link_timeout_ms = 300;
	rc = gn_dpdk_port_open(&o, &p);
	printf("bad socket dir: %d %s\n", rc, gn_last_error());
	assert_int_equal(rc, -ENOENT);
	assert_null(p);
	assert_non_null(
		strstr(gn_last_error(),
		       "directory '/nonexistent-gn-dir' does not exist"));
}

/*
 * af_packet without CAP_NET_RAW: a child that gave up root is refused
 * with -EPERM and the capability named. Needs root to give it up.
 */
static void test_af_packet_no_permission(void **state)
{
	int status = 0;
	pid_t pid;

	(void)state;
	if (geteuid() != 0) {
		skip();
		return;
	}
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct gn_dpdk_port_opts o;
		struct gn_dpdk_port *p = NULL;
		int rc;

		if (setresgid(65534, 65534, 65534) != 0 ||
		    setresuid(65534, 65534, 65534) != 0)
			_exit(3);
		gn_dpdk_port_opts_init(&o, sizeof(o));
		o.kind = GN_DPDK_PORT_AF_PACKET;
		o.ifname = "lo";
		rc = gn_dpdk_port_open(&o, &p);
		printf("no permission: %d %s\n", rc, gn_last_error());
		fflush(NULL);
		_exit(rc == -EPERM && strstr(gn_last_error(), "CAP_NET_RAW") &&
				      strstr(gn_last_error(), "'lo'")
			      ? 0
			      : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Nobody connects: a bounded wait and an error naming the port. */
static void test_memif_no_peer(void **state)
{
	struct gn_dpdk_port_opts o;
	struct gn_dpdk_port *p = NULL;
	char sock[128];
	double t0;

	(void)state;
	snprintf(sock, sizeof(sock), "%s/lonely.sock", g_dir);
	gn_dpdk_port_opts_init(&o, sizeof(o));
	o.kind = GN_DPDK_PORT_MEMIF;
	o.memif_socket = sock;
	o.link_timeout_ms = 300;
	for (int i = 0; i < 2; i++) {
		/* Twice: a failed open leaves nothing that blocks the next. */
		t0 = now_s();
		expect_error(gn_dpdk_port_open(&o, &p), -ETIMEDOUT,
			     "no memif peer connected within 300 ms");
		assert_non_null(strstr(gn_last_error(), "net_memif"));
		assert_non_null(strstr(gn_last_error(), sock));
		assert_true(now_s() - t0 < 3.0);
		assert_null(p);
	}
	printf("no peer: %s\n", gn_last_error());

	snprintf(sock, sizeof(sock), "%s/no-server.sock", g_dir);
	o.memif_role = GN_DPDK_MEMIF_CLIENT;
	expect_error(gn_dpdk_port_open(&o, &p), -ETIMEDOUT, "did not appear");
	printf("no server: %s\n", gn_last_error());
}

static void test_mem_register(void **state)
{
	size_t len = 1 << 16;
	char *a = aligned_alloc(4096, len);

	(void)state;
	assert_non_null(a);
	expect_error(gn_dpdk_mem_register(NULL, 10), -EINVAL, "expected");
	expect_error(gn_dpdk_mem_register(a, 0), -EINVAL, "expected");
	assert_int_equal(gn_dpdk_mem_register(a, len), 0);
	expect_error(gn_dpdk_mem_register(a + 100, 10), -EEXIST, "overlaps");
	assert_int_equal(gn_dpdk_mem_unregister(a), 0);
	expect_error(gn_dpdk_mem_unregister(a), -ENOENT, "no region");
	/* Unaligned memory is rounded out to pages. */
	assert_int_equal(gn_dpdk_mem_register(a + 10, 5000), 0);
	assert_int_equal(gn_dpdk_mem_unregister(a + 10), 0);
	free(a);
}

static bool can_packet_socket(void)
{
	int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/*
 * An af_packet port on loopback, to reach the frame checks of tx and the
 * tx_done rule without a second process.
 */
static void test_af_packet_lo_frames(void **state)
{
	struct gn_dpdk_port_opts o;
	struct gn_dpdk_port *p = NULL;
	struct gn_dpdk_port_stats st;
	uint8_t hdr[300], *payload;
	struct gn_dpdk_frame f[4];
	struct gn_dpdk_rx rx[8];
	const char *why;
	int rc, n;

	(void)state;
	if (!can_packet_socket()) {
		skip();
		return;
	}
	payload = aligned_alloc(4096, 8192);
	assert_non_null(payload);
	memset(payload, 0x5a, 8192);
	memset(hdr, 0, sizeof(hdr));
	memset(hdr, 0xff, 6);
	hdr[12] = 0x88;
	hdr[13] = 0xb5;
	gn_dpdk_port_opts_init(&o, sizeof(o));
	o.kind = GN_DPDK_PORT_AF_PACKET;
	o.ifname = "lo";
	o.tx_done = count_done;
	o.pool_size = 256;
	rc = gn_dpdk_port_open(&o, &p);
	if (rc != 0)
		printf("open: %s\n", gn_last_error());
	assert_int_equal(rc, 0);
	assert_false(gn_dpdk_port_zero_copy(p, &why));
	printf("af_packet zero copy: no: %s\n", why);
	assert_int_equal(gn_dpdk_port_max_frame(p), 1514);

	/* Bad frames first in the burst: an error, nothing sent. */
	f[0] = (struct gn_dpdk_frame){.hdr = hdr, .hdr_len = 0};
	expect_error(gn_dpdk_port_tx(p, f, 1), -EMSGSIZE, "frame 0");
	f[0] = (struct gn_dpdk_frame){.hdr = hdr, .hdr_len = 257};
	expect_error(gn_dpdk_port_tx(p, f, 1), -EMSGSIZE, "at most 256");
	f[0] = (struct gn_dpdk_frame){.hdr = hdr,
				      .hdr_len = 14,
				      .payload = payload,
				      .payload_len = 1501};
	expect_error(gn_dpdk_port_tx(p, f, 1), -EMSGSIZE, "1..1514");
	expect_error(gn_dpdk_port_tx(p, NULL, 1), -EINVAL, "tx of 1");
	assert_int_equal(gn_dpdk_port_tx(p, f, 0), 0);
	assert_int_equal(g_done_calls, 0);

	/* A good frame, then a bad one: the good one goes, alone. */
	f[0].payload_len = 1000;
	f[1] = f[0];
	f[1].hdr_len = 0;
	f[1].payload_len = 0;
	assert_int_equal(gn_dpdk_port_tx(p, f, 2), 1);
	assert_int_equal(g_done_calls, 1);

	/*
	 * net_af_packet copies by address, so payloads of zc_min bytes and
	 * more are attached from any memory, registered or not; shorter
	 * ones are copied behind their header. tx_done once each.
	 */
	f[1] = f[0];
	f[1].payload = payload + 2048;
	f[2] = (struct gn_dpdk_frame){.payload = payload + 4096,
				      .payload_len = 600};
	memcpy(payload + 4096, hdr, 14);
	f[3] = f[0];
	f[3].payload_len = 100;
	assert_int_equal(gn_dpdk_port_tx(p, f, 4), 4);
	assert_int_equal(g_done_calls, 5);
	assert_int_equal(gn_dpdk_port_stats(p, &st), 0);
	assert_int_equal(st.tx_packets, 5);
	assert_int_equal(st.tx_zero_copy, 4);
	assert_int_equal(st.tx_copied, 1);
	assert_int_equal(st.tx_done, 5);
	assert_int_equal(st.tx_bytes, 3 * 1014 + 600 + 114);

	/* Loopback hands the frames back; rx lends them, release returns. */
	n = 0;
	for (int i = 0; i < 50 && n == 0; i++)
		if (gn_dpdk_port_wait_rx(p, 20000) == 1)
			n = gn_dpdk_port_rx(p, rx, 8);
	assert_true(n > 0);
	assert_true(rx[0].len >= 60);
	gn_dpdk_port_rx_release(p, rx, n);
	assert_int_equal(gn_dpdk_port_wait_rx(NULL, 1), -EINVAL);
	gn_dpdk_port_close(&p);
	assert_null(p);
	gn_dpdk_port_close(&p);
	free(payload);
}

static int group_setup(void **state)
{
	char tmpl[] = "/tmp/gn-port-unit-XXXXXX";

	(void)state;
	if (mkdtemp(tmpl) == NULL)
		return -1;
	snprintf(g_dir, sizeof(g_dir), "%s", tmpl);
	snprintf(g_prefix, sizeof(g_prefix), "gnport-unit-%ld", (long)getpid());
	return 0;
}

static int group_teardown(void **state)
{
	char path[128];

	(void)state;
	gn_dpdk_env_fini();
	snprintf(path, sizeof(path), "%s/lonely.sock", g_dir);
	unlink(path);
	rmdir(g_dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opts_defaults),
		cmocka_unit_test(test_before_eal),
		cmocka_unit_test(test_start_eal),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_memif_no_peer),
		cmocka_unit_test(test_memif_bad_socket_dir),
		cmocka_unit_test(test_af_packet_no_permission),
		cmocka_unit_test(test_mem_register),
		cmocka_unit_test(test_af_packet_lo_frames),
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
