/*
 * A small cluster of real processes: one genie-coordinator, four
 * genie-runtime processes registering with it, clients placed through
 * "coordinator://", and genie-ctl.
 *
 * In order (the tests share the cluster): every runtime registers and is
 * UP; sessions spread over the nodes (least loaded) and run plans
 * correctly on the runtime they were placed on; genie-ctl's tables and
 * JSON parse and name what is wrong; a runtime killed with SIGKILL is DOWN
 * within three heartbeats and gets no new sessions; a drained node gets
 * none either and its runtime hears of it; a coordinator killed with
 * SIGKILL and restarted shows the same nodes and sessions, and the
 * runtimes register again by themselves; a client or runtime with the
 * wrong secret is refused with a clear error; refused schema versions and
 * an address nobody listens on are named as such; a node whose advertised
 * address cannot be reached is named, and the session is released; a
 * node holding a weight is chosen by model-affinity placement for
 * sessions that name the weight's content key, and each plan's time
 * reaches the coordinator's latency sketch.
 *
 * argv: genie-coordinator genie-runtime genie-ctl.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <genie/genie.h>

#include <pthread.h>

#include "clock.h"
#include "coord_conn.h"
#include "frame.h"
#include "genie/control.pb-c.h"
#include "genie/coord.pb-c.h"
#include "genie/envelope.pb-c.h"
#include "runtime_proc.h"

#define NRT 4
#define HEARTBEAT_MS 100

static const char *g_coord_bin, *g_rt_bin, *g_ctl_bin;
static char g_dir[64], g_secret[128], g_bad_secret[128], g_state[128];
static char g_coord_addr[64], g_http_addr[64];
static pid_t g_coord_pid;
static pid_t g_rt_pid[NRT];
static struct gn_auth_secret g_auth;

/* Sessions kept open across tests (placed on rt0..rt3 in test 2). */
static struct gn_session *g_sess[NRT];

static void nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static uint64_t now_ms(void)
{
	return gn_clock_ns() / 1000000;
}

/* A loopback port nobody listens on right now. */
static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0)
		return -1;
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, 0600);
}

/* Does `path` contain `needle`? */
static int file_has(const char *path, const char *needle)
{
	char buf[65536];
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

static struct gn_coord_conn *admin(void)
{
	struct gn_coord_conn *cc = NULL;

	if (gn_coord_connect(g_coord_addr, &g_auth,
			     GENIE__PEER_ROLE__PEER_ROLE_ADMIN, "cluster-test",
			     5000, &cc) != 0)
		return NULL;
	return cc;
}

static Genie__NodeList *list_nodes(void)
{
	Genie__ListNodes req = GENIE__LIST_NODES__INIT;
	struct gn_coord_conn *cc = admin();
	Genie__NodeList *l = NULL;

	if (cc == NULL)
		return NULL;
	if (gn_coord_call(cc, GENIE__MSG_TYPE__MSG_TYPE_LIST_NODES, &req.base,
			  GENIE__MSG_TYPE__MSG_TYPE_NODE_LIST,
			  &genie__node_list__descriptor,
			  (ProtobufCMessage **)&l) != 0)
		l = NULL;
	gn_coord_close(&cc);
	return l;
}

static Genie__SessionList *list_sessions(void)
{
	Genie__ListSessions req = GENIE__LIST_SESSIONS__INIT;
	struct gn_coord_conn *cc = admin();
	Genie__SessionList *l = NULL;

	if (cc == NULL)
		return NULL;
	if (gn_coord_call(cc, GENIE__MSG_TYPE__MSG_TYPE_LIST_SESSIONS,
			  &req.base, GENIE__MSG_TYPE__MSG_TYPE_SESSION_LIST,
			  &genie__session_list__descriptor,
			  (ProtobufCMessage **)&l) != 0)
		l = NULL;
	gn_coord_close(&cc);
	return l;
}

/* The state of node `id` now; 0 when unknown or unreachable. */
static int node_state(const char *id)
{
	Genie__NodeList *l = list_nodes();
	int st = 0;

	if (l == NULL)
		return 0;
	for (size_t i = 0; i < l->n_nodes; i++)
		if (strcmp(l->nodes[i]->node_id, id) == 0)
			st = l->nodes[i]->state;
	protobuf_c_message_free_unpacked(&l->base, NULL);
	return st;
}

/* Wait up to `ms` for node `id` to be in `state`; the time taken or -1. */
static long wait_state(const char *id, int state, int ms)
{
	uint64_t t0 = now_ms();

	while (now_ms() - t0 <= (uint64_t)ms) {
		if (node_state(id) == state)
			return (long)(now_ms() - t0);
		nap_ms(20);
	}
	return -1;
}

static void start_coordinator(void)
{
	char listen[80], log[128];
	const char *argv[] = {g_coord_bin,	"--listen",  listen,
			      "--http",		g_http_addr, "--state",
			      g_state,		"--secret",  g_secret,
			      "--heartbeat-ms", "100",	     NULL};
	uint64_t t0 = now_ms();

	snprintf(listen, sizeof(listen), "tcp://%s", g_coord_addr);
	snprintf(log, sizeof(log), "%s/coordinator.log", g_dir);
	g_coord_pid = proc_spawn(argv, log);
	assert_true(g_coord_pid > 0);
	for (;;) {
		struct gn_coord_conn *cc = admin();

		if (cc != NULL) {
			gn_coord_close(&cc);
			return;
		}
		if (now_ms() - t0 > 10000)
			fail_msg("genie-coordinator not answering on %s after "
				 "10 s (log: %s)",
				 g_coord_addr, log);
		nap_ms(30);
	}
}

/* Start a runtime registering as `id` with `secret`; returns its pid. */
/*
 * Start a runtime registering as `id` with `secret`, advertising
 * `advertise` (NULL: its listen address); returns its pid.
 */
static pid_t start_runtime_adv(const char *id, const char *secret,
			       const char *advertise)
{
	char port_file[128], log[128];
	const char *argv[] = {g_rt_bin,
			      "--listen",
			      "tcp://127.0.0.1:0",
			      "--port-file",
			      port_file,
			      "--backend",
			      "cpu",
			      "--threads",
			      "1",
			      "--coordinator",
			      g_coord_addr,
			      "--secret",
			      secret,
			      "--node-id",
			      id,
			      NULL,
			      NULL,
			      NULL};
	pid_t pid;

	if (advertise != NULL) {
		argv[15] = "--advertise";
		argv[16] = advertise;
	}
	snprintf(port_file, sizeof(port_file), "%s/%s.port", g_dir, id);
	snprintf(log, sizeof(log), "%s/%s.log", g_dir, id);
	pid = proc_spawn(argv, log);
	assert_true(pid > 0);
	assert_true(proc_wait_port(port_file, pid, 10000) > 0);
	return pid;
}

static pid_t start_runtime(const char *id, const char *secret)
{
	return start_runtime_adv(id, secret, NULL);
}

static struct gn_session *open_session(const char *secret_file,
				       const char *tenant)
{
	char target[96];
	struct gn_session_opts o;

	snprintf(target, sizeof(target), "coordinator://%s", g_coord_addr);
	gn_session_opts_init(&o, sizeof(o));
	o.target = target;
	o.timeout_ms = 10000;
	o.secret_file = secret_file;
	o.tenant = tenant;
	o.name = "cluster-test";
	return gn_session_create(&o);
}

/* relu(x @ w) on the session's runtime against plain loops. */
static void check_plan(struct gn_session *s)
{
	enum { M = 4, K = 8, N = 3 };
	float x[M * K], w[K * N], y[M * N];
	int64_t xs[] = {M, K}, ws[] = {K, N};
	struct gn_tensor *t;

	for (int i = 0; i < M * K; i++)
		x[i] = (float)((i * 7) % 11) - 5.0f;
	for (int i = 0; i < K * N; i++)
		w[i] = (float)((i * 5) % 9) * 0.25f - 1.0f;
	t = gn_relu(
		gn_matmul(gn_tensor_from_host(s, GN_DTYPE_F32, 2, xs, x, 0),
			  gn_tensor_from_host(s, GN_DTYPE_F32, 2, ws, w, 0)));
	assert_non_null(t);
	if (gn_tensor_to_host(t, y, sizeof(y)) != 0)
		fail_msg("plan on node %s: %s", gn_session_node(s),
			 gn_last_error());
	for (int i = 0; i < M; i++)
		for (int j = 0; j < N; j++) {
			float acc = 0;

			for (int k = 0; k < K; k++)
				acc += x[i * K + k] * w[k * N + j];
			assert_true(fabsf(y[i * N + j] - fmaxf(acc, 0)) <
				    1e-4f);
		}
}

/* Run genie-ctl with `args`; its stdout in `out`, exit status returned. */
static int run_ctl(char *out, size_t out_len, const char *args)
{
	char cmd[1024];
	size_t n = 0;
	FILE *p;
	int st;

	snprintf(cmd, sizeof(cmd),
		 "%s --coordinator %s --secret %s --http %s %s 2>%s/ctl.err",
		 g_ctl_bin, g_coord_addr, g_secret, g_http_addr, args, g_dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (n + 1 < out_len && !feof(p)) {
		size_t k = fread(out + n, 1, out_len - n - 1, p);

		if (k == 0)
			break;
		n += k;
	}
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Pipe `text` into a python3 check; skip quietly without python3. */
static int python_check(const char *text, const char *code)
{
	char path[128], cmd[1024];
	int st;

	if (system("python3 -c '' 2>/dev/null") != 0)
		return 0;
	snprintf(path, sizeof(path), "%s/check.json", g_dir);
	write_file(path, text);
	snprintf(cmd, sizeof(cmd),
		 "python3 -c 'import json,sys; d=json.load(open(\"%s\")); "
		 "%s' ",
		 path, code);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- the tests, in order ------------------------------------------------ */

static void test_runtimes_register(void **state)
{
	char id[16];

	(void)state;
	for (int i = 0; i < NRT; i++) {
		snprintf(id, sizeof(id), "rt%d", i);
		g_rt_pid[i] = start_runtime(id, g_secret);
	}
	for (int i = 0; i < NRT; i++) {
		snprintf(id, sizeof(id), "rt%d", i);
		if (wait_state(id, GENIE__NODE_STATE__NODE_STATE_UP, 5000) < 0)
			fail_msg("%s not UP within 5 s", id);
	}
}

static void test_placement_spreads(void **state)
{
	struct gn_session *by_node[NRT] = {NULL};
	Genie__SessionList *sl;
	int seen[NRT] = {0};

	(void)state;
	for (int i = 0; i < NRT; i++) {
		const char *node;

		g_sess[i] = open_session(g_secret, "tenant-a");
		if (g_sess[i] == NULL)
			fail_msg("session %d: %s", i, gn_last_error());
		node = gn_session_node(g_sess[i]);
		assert_true(node[0] == 'r' && node[1] == 't');
		assert_true(node[2] >= '0' && node[2] < '0' + NRT);
		seen[node[2] - '0']++;
		check_plan(g_sess[i]);
	}
	/* Least loaded: four sessions on four idle nodes, one each. */
	for (int i = 0; i < NRT; i++)
		if (seen[i] != 1)
			fail_msg("rt%d got %d of the first %d sessions", i,
				 seen[i], NRT);
	/* Keep g_sess[i] on rt<i>, so later tests know which is where. */
	for (int i = 0; i < NRT; i++)
		by_node[gn_session_node(g_sess[i])[2] - '0'] = g_sess[i];
	memcpy(g_sess, by_node, sizeof(g_sess));
	sl = list_sessions();

	assert_non_null(sl);
	assert_int_equal(sl->n_sessions, NRT);
	protobuf_c_message_free_unpacked(&sl->base, NULL);
}

static void test_ctl_output(void **state)
{
	static char out[65536];
	char path[128];
	int rows = 0;

	(void)state;
	/* The table: a header, then one aligned row per node. */
	assert_int_equal(run_ctl(out, sizeof(out), "nodes"), 0);
	assert_true(strncmp(out, "NODE ", 5) == 0);
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		char id[32], st[32];

		if (strncmp(line, "NODE ", 5) == 0)
			continue;
		assert_int_equal(sscanf(line, "%31s %31s", id, st), 2);
		assert_string_equal(st, "UP");
		rows++;
	}
	assert_int_equal(rows, NRT);

	assert_int_equal(run_ctl(out, sizeof(out), "-o json nodes"), 0);
	assert_int_equal(
		python_check(out, "assert sorted(n[\"node_id\"] for n in "
				  "d[\"nodes\"]) == [\"rt0\",\"rt1\",\"rt2\","
				  "\"rt3\"]; assert all(n[\"state\"] == "
				  "\"UP\" for n in d[\"nodes\"])"),
		0);
	assert_int_equal(run_ctl(out, sizeof(out), "-o json sessions"), 0);
	assert_int_equal(python_check(out, "assert len(d[\"sessions\"]) == 4"),
			 0);
	assert_int_equal(run_ctl(out, sizeof(out), "sessions"), 0);
	assert_true(strncmp(out, "SESSION ", 8) == 0);
	assert_non_null(strstr(out, "tenant-a"));

	assert_int_equal(run_ctl(out, sizeof(out), "describe node rt1"), 0);
	assert_non_null(strstr(out, "Node:            rt1"));
	assert_non_null(strstr(out, "tcp://127.0.0.1:"));
	assert_int_equal(run_ctl(out, sizeof(out), "-o json describe node rt1"),
			 0);
	assert_int_equal(python_check(out, "assert d[\"node_id\"] == \"rt1\""),
			 0);
	assert_int_equal(run_ctl(out, sizeof(out),
				 "top --iterations 2 "
				 "--interval 50"),
			 0);
	assert_non_null(strstr(out, "genie-ctl top"));

	/* Errors name the problem; 1 for a failure, 2 for usage. */
	snprintf(path, sizeof(path), "%s/ctl.err", g_dir);
	assert_int_equal(run_ctl(out, sizeof(out), "describe node nope"), 1);
	assert_true(file_has(path, "unknown node 'nope'"));
	assert_int_equal(run_ctl(out, sizeof(out), "drain nope"), 1);
	assert_true(file_has(path, "unknown node 'nope'"));
	assert_int_equal(run_ctl(out, sizeof(out), "frobnicate"), 2);
	assert_int_equal(run_ctl(out, sizeof(out), "-o yaml nodes"), 2);
	assert_int_equal(run_ctl(out, sizeof(out), "drain"), 2);
}

static void test_metrics(void **state)
{
	static char out[262144];

	(void)state;
	assert_int_equal(run_ctl(out, sizeof(out), "metrics"), 0);
	assert_non_null(strstr(out, "genie_"));
	assert_int_equal(run_ctl(out, sizeof(out), "-o json metrics"), 0);
	assert_int_equal(python_check(out, "assert len(d) > 0"), 0);
}

/* Open `n` sessions, check none lands on `avoid`, run a plan, close. */
static void sessions_avoid(int n, const char *avoid)
{
	for (int i = 0; i < n; i++) {
		struct gn_session *s = open_session(g_secret, "tenant-b");

		if (s == NULL)
			fail_msg("session: %s", gn_last_error());
		if (strcmp(gn_session_node(s), avoid) == 0)
			fail_msg("session placed on %s", avoid);
		check_plan(s);
		gn_session_destroy(&s);
	}
}

static void test_killed_runtime_goes_down(void **state)
{
	long ms;

	(void)state;
	assert_int_equal(proc_stop(&g_rt_pid[3], SIGKILL, 5000), 128 + SIGKILL);
	ms = wait_state("rt3", GENIE__NODE_STATE__NODE_STATE_DOWN, 3000);
	if (ms < 0)
		fail_msg("rt3 not DOWN 3 s after SIGKILL");
	print_message("rt3 DOWN %ld ms after SIGKILL (heartbeat %d ms)\n", ms,
		      HEARTBEAT_MS);
	/* Three missed heartbeats, plus one interval of the checker and
	 * slack for a loaded 2-core machine. */
	assert_true(ms <= 5 * HEARTBEAT_MS + 300);
	/* Its session's runtime is gone; destroying it must not hang. */
	gn_session_destroy(&g_sess[3]);
	sessions_avoid(6, "rt3");
}

static void test_drained_node_gets_nothing(void **state)
{
	static char out[16384];
	char log[128];

	(void)state;
	assert_int_equal(run_ctl(out, sizeof(out), "drain rt2"), 0);
	assert_int_equal(node_state("rt2"),
			 GENIE__NODE_STATE__NODE_STATE_DRAINED);
	sessions_avoid(6, "rt2");
	/* Its runtime hears of it with the next heartbeat. */
	snprintf(log, sizeof(log), "%s/rt2.log", g_dir);
	for (int i = 0; i < 100 && !file_has(log, "drained"); i++)
		nap_ms(20);
	assert_true(file_has(log, "drained"));
	/* The session already there keeps working. */
	check_plan(g_sess[2]);
	assert_int_equal(run_ctl(out, sizeof(out), "-o json undrain rt2"), 0);
	assert_true(wait_state("rt2", GENIE__NODE_STATE__NODE_STATE_UP, 2000) >=
		    0);
}

static void test_coordinator_restart(void **state)
{
	Genie__SessionList *before, *after;
	Genie__NodeList *nl;
	char id[16];

	(void)state;
	before = list_sessions();
	assert_non_null(before);
	assert_int_equal(before->n_sessions, 3); /* g_sess[0..2] */
	assert_int_equal(proc_stop(&g_coord_pid, SIGKILL, 5000), 128 + SIGKILL);
	start_coordinator();

	/* Straight from the state file: the same nodes and sessions. */
	nl = list_nodes();
	assert_non_null(nl);
	assert_int_equal(nl->n_nodes, NRT);
	protobuf_c_message_free_unpacked(&nl->base, NULL);
	after = list_sessions();
	assert_non_null(after);
	assert_int_equal(after->n_sessions, before->n_sessions);
	for (size_t i = 0; i < before->n_sessions; i++) {
		int found = 0;

		for (size_t j = 0; j < after->n_sessions; j++)
			found |= after->sessions[j]->session_id ==
					 before->sessions[i]->session_id &&
				 strcmp(after->sessions[j]->node_id,
					before->sessions[i]->node_id) == 0;
		assert_true(found);
	}
	protobuf_c_message_free_unpacked(&before->base, NULL);
	protobuf_c_message_free_unpacked(&after->base, NULL);

	/* The live runtimes come back by themselves (backoff starts at 1 s). */
	for (int i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "rt%d", i);
		if (wait_state(id, GENIE__NODE_STATE__NODE_STATE_UP, 8000) < 0)
			fail_msg("%s did not re-register within 8 s", id);
	}
	/* The data path never noticed. */
	for (int i = 0; i < 3; i++)
		check_plan(g_sess[i]);
	/* Closing them releases them, over a fresh coordinator connection. */
	for (int i = 0; i < 3; i++)
		gn_session_destroy(&g_sess[i]);
	after = list_sessions();
	assert_non_null(after);
	assert_int_equal(after->n_sessions, 0);
	protobuf_c_message_free_unpacked(&after->base, NULL);
}

static void test_wrong_secret_refused(void **state)
{
	struct gn_session *s;
	char log[128];
	pid_t bad;

	(void)state;
	s = open_session(g_bad_secret, "intruder");
	assert_null(s);
	print_message("wrong secret: %s\n", gn_last_error());
	assert_int_equal(gn_last_error_code(), -EACCES);
	assert_non_null(strstr(gn_last_error(), "wrong secret"));

	bad = start_runtime("rt-bad", g_bad_secret);
	snprintf(log, sizeof(log), "%s/rt-bad.log", g_dir);
	for (int i = 0; i < 150 && !file_has(log, "authentication refused");
	     i++)
		nap_ms(20);
	assert_true(file_has(log, "authentication refused"));
	assert_true(file_has(log, "wrong secret"));
	assert_int_equal(node_state("rt-bad"), 0);
	/* It still serves, and stops cleanly. */
	assert_int_equal(proc_stop(&bad, SIGTERM, 10000), 0);
}

/* A fake coordinator that refuses every hello's schema versions. */
static void *refuse_versions(void *arg)
{
	struct gn_listener *l = arg;
	Genie__ErrorReply e = GENIE__ERROR_REPLY__INIT;
	struct gn_conn *c = NULL;
	struct gn_msg msg;
	uint8_t *buf;
	size_t len;

	if (l->ops->accept(l, 5000, &c) != 0)
		return NULL;
	if (gn_conn_recv(c, &msg, 5000) == 0) {
		gn_msg_release(&msg);
		e.code = -EPROTONOSUPPORT;
		e.message = "schema versions 1..1 offered, this coordinator "
			    "speaks 7..7";
		if (gn_envelope_pack(GENIE__MSG_TYPE__MSG_TYPE_ERROR, 1,
				     &e.base, &buf, &len) == 0) {
			gn_conn_send(c, buf, len, NULL, 0, 5000);
			free(buf);
		}
	}
	gn_conn_close(&c);
	return NULL;
}

static void test_connect_errors(void **state)
{
	struct gn_listener *l = NULL;
	struct gn_coord_conn *cc = NULL;
	struct gn_session_opts o;
	char target[96];
	pthread_t t;
	int rc;

	(void)state;
	/* Version refused: said so, with the coordinator's words. */
	assert_int_equal(gn_listen("tcp://127.0.0.1:0", NULL, &l), 0);
	assert_int_equal(pthread_create(&t, NULL, refuse_versions, l), 0);
	rc = gn_coord_connect(l->addr, &g_auth,
			      GENIE__PEER_ROLE__PEER_ROLE_ADMIN, "cluster-test",
			      5000, &cc);
	pthread_join(t, NULL);
	gn_listener_close(&l);
	assert_int_equal(rc, -EPROTONOSUPPORT);
	assert_non_null(strstr(gn_last_error(), "refused schema versions"));
	assert_non_null(strstr(gn_last_error(), "speaks 7..7"));

	/* Nobody there: the address is named. */
	snprintf(target, sizeof(target), "coordinator://127.0.0.1:%d",
		 free_port());
	gn_session_opts_init(&o, sizeof(o));
	o.target = target;
	o.secret_file = g_secret;
	assert_null(gn_session_create(&o));
	assert_int_equal(gn_last_error_code(), -ECONNREFUSED);
	assert_non_null(strstr(gn_last_error(),
			       "cannot connect to coordinator at "
			       "127.0.0.1:"));
	/* A malformed address. */
	assert_int_equal(gn_coord_connect("udp://x:1", NULL, 1, "t", 1000, &cc),
			 -EINVAL);
	assert_int_equal(gn_coord_connect("nohost", NULL, 1, "t", 1000, &cc),
			 -EINVAL);
}

static void drain(const char *id, int on)
{
	Genie__DrainNode req = GENIE__DRAIN_NODE__INIT;
	struct gn_coord_conn *cc = admin();
	ProtobufCMessage *ack = NULL;

	assert_non_null(cc);
	req.node_id = (char *)id;
	req.drain = on;
	assert_int_equal(gn_coord_call(cc, GENIE__MSG_TYPE__MSG_TYPE_DRAIN,
				       &req.base,
				       GENIE__MSG_TYPE__MSG_TYPE_COORD_ACK,
				       &genie__coord_ack__descriptor, &ack),
			 0);
	protobuf_c_message_free_unpacked(ack, NULL);
	gn_coord_close(&cc);
}

/*
 * The only node on offer advertises an address nobody listens on: the
 * client says which node and address failed, and the session it was
 * given is released again.
 */
static void test_unreachable_node(void **state)
{
	char adv[64];
	Genie__SessionList *sl;
	struct gn_session *s;
	pid_t pid;

	(void)state;
	snprintf(adv, sizeof(adv), "tcp://127.0.0.1:%d", free_port());
	for (int i = 0; i < 3; i++) {
		char id[16];

		snprintf(id, sizeof(id), "rt%d", i);
		drain(id, 1);
	}
	pid = start_runtime_adv("rt-adv", g_secret, adv);
	assert_true(wait_state("rt-adv", GENIE__NODE_STATE__NODE_STATE_UP,
			       5000) >= 0);
	s = open_session(g_secret, "tenant-c");
	assert_null(s);
	print_message("unreachable node: %s\n", gn_last_error());
	assert_int_equal(gn_last_error_code(), -ECONNREFUSED);
	assert_non_null(strstr(gn_last_error(), "node 'rt-adv'"));
	assert_non_null(strstr(gn_last_error(), adv));
	sl = list_sessions();
	assert_non_null(sl);
	assert_int_equal(sl->n_sessions, 0);
	protobuf_c_message_free_unpacked(&sl->base, NULL);
	assert_int_equal(proc_stop(&pid, SIGTERM, 10000), 0);
	for (int i = 0; i < 3; i++) {
		char id[16];

		snprintf(id, sizeof(id), "rt%d", i);
		drain(id, 0);
	}
}

/* The value of `series` (name and labels) in /metrics; -1 if absent. */
static double metric_of(const char *series)
{
	static char out[262144];
	char key[240];
	const char *p;

	if (run_ctl(out, sizeof(out), "metrics") != 0)
		return -1;
	snprintf(key, sizeof(key), "\n%s ", series);
	p = strstr(out, key);
	return p ? strtod(p + strlen(key), NULL) : -1;
}

/* genie_node_plan_latency_seconds_count of `node` from /metrics; -1. */
static long latency_count(const char *node)
{
	char key[200];

	snprintf(key, sizeof(key),
		 "genie_node_plan_latency_seconds_count{node=\"%s\"}", node);
	return (long)metric_of(key);
}

/*
 * Model affinity end to end: a session makes a weight resident by content
 * on its node; the runtime's heartbeat carries the weight's content key;
 * sessions asking for model-affinity with that key (as genie-run does for
 * a model's weights) are all placed on that node, though least-loaded
 * would spread them.
 */
static void test_model_affinity(void **state)
{
	enum { N = 16384 };
	static float w[N];
	int64_t shape[] = {N};
	struct gn_session *a, *b[3];
	struct gn_session_opts o;
	char keys[4][65], target[96], node[128];
	const char *kp[1];
	struct gn_tensor *t;
	int n;

	(void)state;
	a = open_session(g_secret, "tenant-m");
	if (a == NULL)
		fail_msg("session: %s", gn_last_error());
	snprintf(node, sizeof(node), "%s", gn_session_node(a));
	for (int i = 0; i < N; i++)
		w[i] = (float)(i % 97) * 0.5f + 0.125f; /* this test's own */
	t = gn_tensor_from_host(a, GN_DTYPE_F32, 1, shape, w, 0);
	assert_non_null(t);
	if (gn_tensor_make_resident_shared(t, 0) != 0)
		fail_msg("make_resident_shared: %s", gn_last_error());
	n = gn_session_shared_keys(a, keys, 4);
	assert_int_equal(n, 1);
	assert_int_equal(strlen(keys[0]), 64);
	print_message("weight %.16s... resident on %s\n", keys[0], node);
	/* The next heartbeats carry the key (every 100 ms). */
	nap_ms(5 * HEARTBEAT_MS);

	kp[0] = keys[0];
	snprintf(target, sizeof(target), "coordinator://%s", g_coord_addr);
	for (int i = 0; i < 3; i++) {
		gn_session_opts_init(&o, sizeof(o));
		o.target = target;
		o.timeout_ms = 10000;
		o.secret_file = g_secret;
		o.tenant = "tenant-m";
		o.name = "cluster-test";
		o.model_keys = kp;
		o.n_model_keys = 1;
		o.policy = "model-affinity";
		b[i] = gn_session_create(&o);
		if (b[i] == NULL)
			fail_msg("affinity session %d: %s", i, gn_last_error());
		print_message("affinity session %d on %s\n", i,
			      gn_session_node(b[i]));
		assert_string_equal(gn_session_node(b[i]), node);
	}
	/* Every plan's own time reaches the coordinator's sketch. */
	{
		const char *mm = "genie_op_latency_seconds_count{op=\"matmul\"}";
		long before = latency_count(node), after = -1;
		double mm_before = metric_of(mm), util = 0;

		assert_true(before >= 0);
		for (int i = 0; i < 5; i++)
			check_plan(b[0]);
		for (int i = 0; i < 50 && after != before + 5; i++) {
			nap_ms(HEARTBEAT_MS);
			after = latency_count(node);
		}
		assert_int_equal(after, before + 5);
		/* And each plan's kernel (matmul with relu fused) by op. */
		assert_true(metric_of(mm) >= mm_before + 5);
		/* The executor was busy part of that time: utilization moved. */
		for (int i = 0; i < 20 && util <= 0; i++) {
			char key[200];

			for (int k = 0; k < 20; k++)
				check_plan(b[0]);
			snprintf(key, sizeof(key),
				 "genie_node_utilization_ratio{node=\"%s\"}",
				 node);
			nap_ms(HEARTBEAT_MS);
			util = metric_of(key);
		}
		print_message("utilization of %s while busy: %g\n", node, util);
		assert_true(util > 0 && util <= 1);
	}
	/* A bad policy name is refused with words. */
	o.policy = "nearest";
	assert_null(gn_session_create(&o));
	assert_int_equal(gn_last_error_code(), -EINVAL);
	assert_non_null(strstr(gn_last_error(), "nearest"));
	for (int i = 0; i < 3; i++)
		gn_session_destroy(&b[i]);
	gn_session_destroy(&a);
}

static int setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/genie-cluster-XXXXXX");
	if (mkdtemp(g_dir) == NULL)
		return -1;
	snprintf(g_secret, sizeof(g_secret), "%s/secret", g_dir);
	snprintf(g_bad_secret, sizeof(g_bad_secret), "%s/bad-secret", g_dir);
	snprintf(g_state, sizeof(g_state), "%s/state.db", g_dir);
	write_file(g_secret, "cluster-test-secret-0123456789abcdef\n");
	write_file(g_bad_secret, "not-the-cluster-secret-at-all-42\n");
	if (gn_auth_load_secret(g_secret, &g_auth) != 0)
		return -1;
	snprintf(g_coord_addr, sizeof(g_coord_addr), "127.0.0.1:%d",
		 free_port());
	snprintf(g_http_addr, sizeof(g_http_addr), "127.0.0.1:%d", free_port());
	start_coordinator();
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	int bad = 0;

	(void)state;
	for (int i = 0; i < NRT; i++)
		gn_session_destroy(&g_sess[i]);
	for (int i = 0; i < NRT; i++)
		if (g_rt_pid[i] > 0 &&
		    proc_stop(&g_rt_pid[i], SIGTERM, 10000) != 0) {
			fprintf(stderr, "rt%d did not stop cleanly\n", i);
			bad = 1;
		}
	if (g_coord_pid > 0 && proc_stop(&g_coord_pid, SIGTERM, 10000) != 0) {
		fprintf(stderr, "genie-coordinator did not stop cleanly\n");
		bad = 1;
	}
	if (getenv("GENIE_KEEP_TEST_DIR") == NULL) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
		if (system(cmd) != 0)
			bad = 1;
	} else {
		fprintf(stderr, "logs kept in %s\n", g_dir);
	}
	return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_runtimes_register),
		cmocka_unit_test(test_placement_spreads),
		cmocka_unit_test(test_ctl_output),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test(test_killed_runtime_goes_down),
		cmocka_unit_test(test_drained_node_gets_nothing),
		cmocka_unit_test(test_coordinator_restart),
		cmocka_unit_test(test_wrong_secret_refused),
		cmocka_unit_test(test_connect_errors),
		cmocka_unit_test(test_unreachable_node),
		cmocka_unit_test(test_model_affinity),
	};

	if (argc != 4) {
		fprintf(stderr,
			"usage: %s genie-coordinator genie-runtime genie-ctl\n",
			argv[0]);
		return 2;
	}
	g_coord_bin = argv[1];
	g_rt_bin = argv[2];
	g_ctl_bin = argv[3];
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
