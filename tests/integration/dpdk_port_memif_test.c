/*
 * memif ports between two processes: this test is the memif server, a
 * dpdk_port_peer process (argv[1]) the client, each with its own EAL and
 * file prefix, no hugepages, no PCI, the socket in a fresh temp dir.
 *
 * Checks: the link comes up; 10,000 frames of 60..1514 bytes each way
 * arrive intact and in order with tx_done once per frame and the counters
 * adding up; the same copying every payload; 9000-byte MTU frames; a peer
 * killed mid-session shows as link down and -ENETDOWN, not a hang, from
 * either end (this test as server, then as client).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dpdk_env.h"
#include "dpdk_port_common.h"
#include "gn_error.h"
#include "port.h"

#define MAX_PEERS 8

static const char *g_peer_bin;
static char g_dir[64];
static char g_prefix[32];
static pid_t g_peers[MAX_PEERS];
static char g_peer_prefix[MAX_PEERS][80];
static int g_nb_peers;
static int g_seq;
/* The port a test has open, closed by the teardown if the test fails. */
static struct gn_dpdk_port *g_port;

static void rm_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(path);
}

/* A peer killed by a signal leaves its EAL runtime directory behind. */
static void rm_runtime_dir(const char *prefix)
{
	char path[256];
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	snprintf(path, sizeof(path), "/var/run/dpdk/%s", prefix);
	rm_dir(path);
	if (xdg != NULL) {
		snprintf(path, sizeof(path), "%s/dpdk/%s", xdg, prefix);
		rm_dir(path);
	}
	snprintf(path, sizeof(path), "/tmp/dpdk/%s", prefix);
	rm_dir(path);
}

static int test_teardown(void **state)
{
	(void)state;
	gn_dpdk_port_close(&g_port);
	return 0;
}

static void cleanup(void)
{
	for (int i = 0; i < g_nb_peers; i++) {
		if (g_peers[i] > 0) {
			kill(g_peers[i], SIGKILL);
			waitpid(g_peers[i], NULL, 0);
			g_peers[i] = 0;
		}
		rm_runtime_dir(g_peer_prefix[i]);
	}
	if (g_dir[0] != '\0') {
		rm_dir(g_dir);
		g_dir[0] = '\0';
	}
}

/* Start a peer with `args` (NULL-terminated) after the common ones. */
static int spawn_peer(const char *const *args, char *out_path, size_t len)
{
	const char *argv[48];
	int argc = 0, i = g_nb_peers;
	pid_t pid;

	assert_true(i < MAX_PEERS);
	snprintf(g_peer_prefix[i], sizeof(g_peer_prefix[i]), "%s-peer%d",
		 g_prefix, g_seq);
	snprintf(out_path, len, "%s/peer%d.out", g_dir, g_seq++);
	argv[argc++] = g_peer_bin;
	argv[argc++] = "--prefix";
	argv[argc++] = g_peer_prefix[i];
	argv[argc++] = "--lcores";
	argv[argc++] = "1";
	while (*args != NULL && argc < 46)
		argv[argc++] = *args++;
	argv[argc] = NULL;
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		FILE *f = freopen(out_path, "w", stdout);

		if (f == NULL)
			_exit(126);
		execv(g_peer_bin, (char *const *)argv);
		_exit(127);
	}
	g_peers[i] = pid;
	g_nb_peers++;
	return i;
}

/* Wait for peer i; kill it after timeout_ms. Returns its exit status. */
static int wait_peer(int i, int timeout_ms)
{
	int status = 0;

	for (int t = 0; t < timeout_ms; t += 10) {
		if (waitpid(g_peers[i], &status, WNOHANG) == g_peers[i]) {
			g_peers[i] = 0;
			return status;
		}
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
	kill(g_peers[i], SIGKILL);
	waitpid(g_peers[i], &status, 0);
	g_peers[i] = 0;
	return -1;
}

static void show_file(const char *path)
{
	char line[1024];
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
		printf("  peer: %s", line);
	fclose(f);
}

static int open_server(const char *sock, uint32_t mtu, bool copy,
		       struct gn_dpdk_port **port)
{
	struct gn_dpdk_port_opts o;

	gn_dpdk_port_opts_init(&o, sizeof(o));
	o.kind = GN_DPDK_PORT_MEMIF;
	o.memif_role = GN_DPDK_MEMIF_SERVER;
	o.memif_socket = sock;
	o.mtu = mtu;
	o.tx_copy_only = copy;
	o.link_timeout_ms = 15000;
	o.tx_done = xchg_tx_done;
	return gn_dpdk_port_open(&o, port);
}

static void check_stats(struct gn_dpdk_port *port, const struct xchg_result *r)
{
	struct gn_dpdk_port_stats st;

	assert_int_equal(gn_dpdk_port_stats(port, &st), 0);
	/* Data frames plus hellos and the FIN. */
	assert_true(st.tx_packets >= r->sent);
	assert_int_equal(st.tx_packets - r->sent, r->done_ctl);
	assert_int_equal(st.tx_done, st.tx_packets);
	assert_int_equal(st.tx_zero_copy + st.tx_copied, st.tx_packets);
	assert_int_equal(st.dev_tx_packets, st.tx_packets);
	assert_int_equal(st.dev_rx_packets, st.rx_packets);
	assert_true(st.rx_packets >= r->recvd);
	assert_int_equal(st.rx_dropped, 0);
}

static void run_exchange(uint32_t mtu, uint32_t frames, bool copy)
{
	char sock[128], out[128], mtu_s[16], n_s[16], max_s[16];
	const char *args[24];
	struct gn_dpdk_port **pp = &g_port, *port;
	struct xchg_opts xo;
	struct xchg_result xr;
	int a = 0, i, rc, status;

	snprintf(sock, sizeof(sock), "%s/memif%d.sock", g_dir, g_seq);
	snprintf(mtu_s, sizeof(mtu_s), "%u", mtu);
	snprintf(n_s, sizeof(n_s), "%u", frames);
	snprintf(max_s, sizeof(max_s), "%u", mtu + 14);
	args[a++] = "--kind";
	args[a++] = "memif";
	args[a++] = "--role";
	args[a++] = "client";
	args[a++] = "--socket";
	args[a++] = sock;
	args[a++] = "--mtu";
	args[a++] = mtu_s;
	args[a++] = "--frames";
	args[a++] = n_s;
	args[a++] = "--max-size";
	args[a++] = max_s;
	args[a++] = "--fin";
	args[a++] = "wait";
	args[a++] = "--linger"; /* until we have read our counters */
	if (copy)
		args[a++] = "--copy";
	args[a] = NULL;
	/* The client waits for the socket, so it may start first. */
	i = spawn_peer(args, out, sizeof(out));
	rc = open_server(sock, mtu, copy, pp);
	if (rc != 0)
		printf("open: %s\n", gn_last_error());
	assert_int_equal(rc, 0);
	port = *pp;
	assert_true(gn_dpdk_port_link_up(port));

	xchg_opts_init(&xo);
	xo.frames = frames;
	xo.max_size = mtu + 14;
	xo.send_fin = true;
	rc = xchg_run(port, &xo, &xr);
	xchg_print("server", port, &xr);
	/* Counters first: memif forgets its own once the peer leaves. */
	check_stats(port, &xr);
	kill(g_peers[i], SIGTERM);
	status = wait_peer(i, 20000);
	show_file(out);
	assert_int_equal(rc, 0);
	assert_int_equal(xr.sent, frames);
	assert_int_equal(xr.recvd, frames);
	assert_int_equal(xr.bad, 0);
	assert_int_equal(xr.out_of_order, 0);
	assert_int_equal(xr.lost, 0);
	assert_int_equal(xr.done_missing, 0);
	assert_int_equal(xr.done_twice, 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	gn_dpdk_port_close(pp);
	assert_null(g_port);
}

static void test_memif_1500(void **state)
{
	(void)state;
	run_exchange(1500, 10000, false);
}

static void test_memif_1500_copy(void **state)
{
	(void)state;
	run_exchange(1500, 10000, true);
}

static void test_memif_9000(void **state)
{
	(void)state;
	run_exchange(9000, 2000, false);
}

/*
 * With a peer that sends nothing: zero copy reported as "no" with its
 * reason, an idle wait that sleeps, then the peer killed.
 */
static void test_memif_idle_then_peer_killed(void **state)
{
	char sock[128], out[128];
	const char *args[] = {"--kind", "memif",    "--role",
			      "client", "--socket", sock,
			      "--mode", "hold",	    NULL};
	struct gn_dpdk_port *port;
	const char *why = NULL;
	int i, status;

	(void)state;
	snprintf(sock, sizeof(sock), "%s/memif%d.sock", g_dir, g_seq);
	i = spawn_peer(args, out, sizeof(out));
	assert_int_equal(open_server(sock, 1500, false, &g_port), 0);
	port = g_port;
	assert_false(gn_dpdk_port_zero_copy(port, &why));
	assert_non_null(strstr(why, "memif"));
	printf("memif zero copy: no: %s\n", why);

	/* An idle port: wait_rx sleeps instead of spinning. */
	{
		struct timespec w0, w1, c0, c1;
		double wall, cpu;

		clock_gettime(CLOCK_MONOTONIC, &w0);
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
		assert_int_equal(gn_dpdk_port_wait_rx(port, 300000), 0);
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
		clock_gettime(CLOCK_MONOTONIC, &w1);
		wall = (w1.tv_sec - w0.tv_sec) +
		       (w1.tv_nsec - w0.tv_nsec) / 1e9;
		cpu = (c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) / 1e9;
		printf("idle wait_rx: %.0f ms wall, %.1f ms CPU\n", wall * 1e3,
		       cpu * 1e3);
		assert_true(wall >= 0.29 && wall < 2.0);
		assert_true(cpu < 0.2 * wall);
	}

	/* The peer dies: link down and -ENETDOWN within seconds. */
	kill(g_peers[i], SIGKILL);
	status = wait_peer(i, 5000);
	(void)status;
	rm_runtime_dir(g_peer_prefix[i]);
	{
		struct timespec t0, t1;
		uint8_t f[64] = {0};
		struct gn_dpdk_frame fr = {.hdr = f, .hdr_len = sizeof(f)};
		int rc = 0;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (int k = 0; k < 10 && rc == 0; k++)
			rc = gn_dpdk_port_wait_rx(port, 500000);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		printf("peer killed: wait_rx -> %d after %.0f ms: %s\n", rc,
		       (t1.tv_sec - t0.tv_sec) * 1e3 +
			       (t1.tv_nsec - t0.tv_nsec) / 1e6,
		       gn_last_error());
		assert_int_equal(rc, -ENETDOWN);
		assert_non_null(
			strstr(gn_last_error(), gn_dpdk_port_name(port)));
		assert_false(gn_dpdk_port_link_up(port));
		rc = gn_dpdk_port_tx(port, &fr, 1);
		assert_int_equal(rc, -ENETDOWN);
	}
	gn_dpdk_port_close(&g_port);
}

/*
 * The peer sends frames up to 9014 bytes to a port opened for 1500: those
 * that do not fit one receive buffer arrive as chains, which the port
 * drops and counts; the rest arrive intact and in order.
 */
static void test_memif_oversized_rx_dropped(void **state)
{
	char sock[128], out[128];
	const char *args[] = {
		"--kind",     "memif", "--role",	  "client",
		"--socket",   sock,    "--mtu",		  "9000",
		"--max-size", "9014",  "--peer-max-size", "1514",
		"--frames",   "500",   "--fin",		  "wait",
		NULL};
	struct gn_dpdk_port_stats st;
	struct xchg_opts xo;
	struct xchg_result xr;
	int i, rc, status;

	(void)state;
	snprintf(sock, sizeof(sock), "%s/memif%d.sock", g_dir, g_seq);
	i = spawn_peer(args, out, sizeof(out));
	assert_int_equal(open_server(sock, 1500, false, &g_port), 0);
	xchg_opts_init(&xo);
	xo.frames = 500;
	xo.max_size = 1514;
	xo.peer_max_size = 9014;
	xo.send_fin = true;
	xo.idle_ms = 500;
	rc = xchg_run(g_port, &xo, &xr);
	xchg_print("server", g_port, &xr);
	assert_int_equal(gn_dpdk_port_stats(g_port, &st), 0);
	status = wait_peer(i, 20000);
	show_file(out);
	printf("oversized: %u of 500 frames received, %" PRIu64
	       " multi-buffer frames dropped\n",
	       xr.recvd, st.rx_multiseg_dropped);
	assert_int_equal(rc, 0);
	assert_int_equal(xr.bad, 0);
	assert_int_equal(xr.out_of_order, 0);
	assert_true(xr.recvd > 0);
	assert_true(st.rx_multiseg_dropped > 0);
	assert_int_equal(xr.recvd + st.rx_multiseg_dropped, 500);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	gn_dpdk_port_close(&g_port);
}

/* Roles swapped: the peer is the server and dies; this client sees it. */
static void test_memif_server_killed(void **state)
{
	char sock[128], out[128];
	const char *args[] = {"--kind", "memif",    "--role",
			      "server", "--socket", sock,
			      "--mode", "hold",	    NULL};
	struct gn_dpdk_port_opts o;
	int i, rc = 0;

	(void)state;
	snprintf(sock, sizeof(sock), "%s/memif%d.sock", g_dir, g_seq);
	i = spawn_peer(args, out, sizeof(out));
	gn_dpdk_port_opts_init(&o, sizeof(o));
	o.kind = GN_DPDK_PORT_MEMIF;
	o.memif_role = GN_DPDK_MEMIF_CLIENT;
	o.memif_socket = sock;
	o.link_timeout_ms = 15000;
	rc = gn_dpdk_port_open(&o, &g_port);
	if (rc != 0)
		printf("open: %s\n", gn_last_error());
	assert_int_equal(rc, 0);
	assert_true(gn_dpdk_port_link_up(g_port));
	kill(g_peers[i], SIGKILL);
	(void)wait_peer(i, 5000);
	rm_runtime_dir(g_peer_prefix[i]);
	for (int k = 0; k < 10 && rc == 0; k++)
		rc = gn_dpdk_port_wait_rx(g_port, 500000);
	printf("server killed: wait_rx -> %d: %s\n", rc, gn_last_error());
	assert_int_equal(rc, -ENETDOWN);
	assert_false(gn_dpdk_port_link_up(g_port));
	gn_dpdk_port_close(&g_port);
}

static int group_setup(void **state)
{
	struct gn_dpdk_env_opts o;
	char tmpl[] = "/tmp/gn-port-XXXXXX";
	int rc;

	(void)state;
	if (mkdtemp(tmpl) == NULL)
		return -1;
	snprintf(g_dir, sizeof(g_dir), "%s", tmpl);
	snprintf(g_prefix, sizeof(g_prefix), "gnport-%ld", (long)getpid());
	atexit(cleanup);
	gn_dpdk_env_opts_init(&o, sizeof(o));
	o.file_prefix = g_prefix;
	rc = gn_dpdk_env_init(&o);
	if (rc != 0) {
		fprintf(stderr, "EAL: %s\n", gn_last_error());
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	cleanup();
	gn_dpdk_env_fini();
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_memif_1500, test_teardown),
		cmocka_unit_test_teardown(test_memif_1500_copy, test_teardown),
		cmocka_unit_test_teardown(test_memif_9000, test_teardown),
		cmocka_unit_test_teardown(test_memif_oversized_rx_dropped,
					  test_teardown),
		cmocka_unit_test_teardown(test_memif_idle_then_peer_killed,
					  test_teardown),
		cmocka_unit_test_teardown(test_memif_server_killed,
					  test_teardown),
	};

	if (argc < 2) {
		fprintf(stderr, "usage: %s PATH-TO-dpdk_port_peer\n", argv[0]);
		return 2;
	}
	g_peer_bin = argv[1];
	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
