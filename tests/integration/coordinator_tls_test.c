/*
 * genie-coordinator over TLS with client certificates, as real processes.
 *
 * A throwaway CA, a server certificate for IP 127.0.0.1, client
 * certificates (good, expired, from another CA) are made at test time
 * with the openssl command line tool in a temp dir; the test skips with a
 * message when the tool is missing. The coordinator runs with
 * --tls-cert/--tls-key/--tls-ca and a shared secret, and:
 *
 *   - a peer with a good client certificate is accepted: a fake runtime
 *     registers and heartbeats, a client is placed on it, an admin lists
 *     it (gn_coord_connect_tls(), the code libgenie, genie-runtime and
 *     genie-ctl use);
 *   - a peer without a client certificate, with one from another CA, or
 *     with an expired one is refused with -EACCES and words that say so;
 *   - a peer that does not trust the coordinator's CA, or that dialled a
 *     name the certificate does not carry, refuses the coordinator;
 *   - a plain-TCP peer is refused; the wrong secret inside TLS is still
 *     refused as a wrong secret;
 *   - the coordinator keeps serving good peers after every refusal;
 *   - a real genie-runtime with --tls-* and --label registers over TLS,
 *     and genie-ctl with --tls-* lists it and shows its labels; genie-ctl
 *     without them is refused;
 *   - libgenie's coordinator:// over TLS (options or $GENIE_TLS_*) is
 *     placed on that runtime; without a client certificate it is
 *     refused with -EACCES.
 *
 *   coordinator_tls_test PATH/genie-coordinator PATH/genie-ctl
 *                        PATH/genie-runtime
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <genie/genie.h>

#include "coord_conn.h"
#include "genie/coord.pb-c.h"
#include "genie/envelope.pb-c.h"
#include "gn_error.h"
#include "runtime_proc.h"

static const char *g_coord_bin, *g_ctl_bin, *g_rt_bin;
static char g_dir[64];
static char g_secret_path[128];
static struct gn_auth_secret g_secret;
static pid_t g_pid, g_rt_pid;
static int g_port;
static char g_addr[64];

static void nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static const char *path_of(const char *name)
{
	static char bufs[8][160];
	static int next;
	char *b = bufs[next++ % 8];

	snprintf(b, sizeof(bufs[0]), "%s/%s", g_dir, name);
	return b;
}

/* Run a shell command in g_dir, quietly; 0 when it exits 0. */
static int sh(const char *fmt, ...)
{
	char cmd[2048], full[2300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "cd %s && (%s) >>%s/openssl.log 2>&1",
		 g_dir, cmd, g_dir);
	return system(full) == 0 ? 0 : -1;
}

/*
 * A key and a certificate NAME.pem signed by CA (NAME.key), for `ext`
 * (an openssl extension line set) valid for `days` (negative: expired).
 */
static int make_cert(const char *name, const char *ca, const char *ext,
		     int days)
{
	return sh("openssl req -newkey ec -pkeyopt "
		  "ec_paramgen_curve:prime256v1 -nodes -keyout %s.key -out "
		  "%s.csr -subj /CN=%s && printf '%s' > %s.ext && openssl "
		  "x509 -req -in %s.csr -CA %s.pem -CAkey %s.key "
		  "-CAcreateserial -out %s.pem -days %d -extfile %s.ext",
		  name, name, name, ext, name, name, ca, ca, name, days, name);
}

static int make_pki(void)
{
	static const char *const cli_ext =
		"basicConstraints=CA:FALSE\\nextendedKeyUsage=clientAuth\\n";

	if (sh("openssl req -x509 -newkey ec -pkeyopt "
	       "ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out "
	       "ca.pem -days 2 -subj /CN=genie-test-ca") != 0 ||
	    sh("openssl req -x509 -newkey ec -pkeyopt "
	       "ec_paramgen_curve:prime256v1 -nodes -keyout other-ca.key "
	       "-out other-ca.pem -days 2 -subj /CN=other-ca") != 0)
		return -1;
	/* The coordinator's: IP 127.0.0.1 only, so "localhost" mismatches. */
	if (make_cert("coord", "ca",
		      "basicConstraints=CA:FALSE\\nextendedKeyUsage="
		      "serverAuth\\nsubjectAltName=IP:127.0.0.1\\n",
		      2) != 0)
		return -1;
	if (make_cert("client", "ca", cli_ext, 2) != 0 ||
	    make_cert("expired", "ca", cli_ext, -1) != 0 ||
	    make_cert("stranger", "other-ca", cli_ext, 2) != 0)
		return -1;
	return 0;
}

static int coord_start(void)
{
	const char *pf = path_of("port");
	const char *argv[] = {g_coord_bin, "--listen", "127.0.0.1:0",
			      "--state", path_of("state.db"), "--secret",
			      g_secret_path, "--heartbeat-ms", "100",
			      "--port-file", pf, "--tls-cert",
			      path_of("coord.pem"), "--tls-key",
			      path_of("coord.key"), "--tls-ca",
			      path_of("ca.pem"), "--log",
			      "tls=debug,coord=info", NULL};

	unlink(pf);
	g_pid = proc_spawn(argv, NULL);
	if (g_pid < 0)
		return -1;
	g_port = proc_wait_port(pf, g_pid, 10000);
	if (g_port <= 0)
		return -1;
	snprintf(g_addr, sizeof(g_addr), "127.0.0.1:%d", g_port);
	return 0;
}

static int setup(void **state)
{
	FILE *f;

	(void)state;
	if (system("openssl version >/dev/null 2>&1") != 0) {
		fprintf(stderr, "SKIP: the openssl command line tool is not "
				"installed (apt-get install openssl)\n");
		return -1;
	}
	snprintf(g_dir, sizeof(g_dir), "/tmp/genie-tls-XXXXXX");
	if (mkdtemp(g_dir) == NULL)
		return -1;
	if (make_pki() != 0) {
		fprintf(stderr, "cannot make test certificates; see %s\n",
			path_of("openssl.log"));
		return -1;
	}
	snprintf(g_secret_path, sizeof(g_secret_path), "%s/secret", g_dir);
	f = fopen(g_secret_path, "w");
	if (f == NULL)
		return -1;
	fputs("tls-test-secret-0123456789abcdef\n", f);
	fclose(f);
	chmod(g_secret_path, 0600);
	if (gn_auth_load_secret(g_secret_path, &g_secret) != 0)
		return -1;
	return coord_start();
}

static int teardown(void **state)
{
	(void)state;
	proc_stop(&g_rt_pid, SIGTERM, 5000);
	proc_stop(&g_pid, SIGTERM, 5000);
	if (g_dir[0] != '\0' && getenv("GENIE_KEEP_TMP") == NULL)
		sh("rm -rf %s", g_dir);
	return 0;
}

/* Connect with these files; returns the code, the detail in `why`. */
static int try_connect(const char *addr, const char *ca, const char *cert,
		       const char *key, uint32_t role,
		       const struct gn_auth_secret *secret,
		       struct gn_coord_conn **out, char *why, size_t why_len)
{
	struct gn_tls_files f = {
		.ca = ca ? path_of(ca) : NULL,
		.cert = cert ? path_of(cert) : NULL,
		.key = key ? path_of(key) : NULL,
	};
	struct gn_coord_conn *cc = NULL;
	int rc;

	rc = gn_coord_connect_tls(addr, secret, &f, role, "tls-test", 5000,
				  &cc);
	snprintf(why, why_len, "%s", rc ? gn_last_error() : "");
	if (rc != 0)
		fprintf(stderr, "  refused as expected? %d: %s\n", rc, why);
	if (out != NULL)
		*out = cc;
	else
		gn_coord_close(&cc);
	return rc;
}

static struct gn_coord_conn *good_conn(uint32_t role)
{
	struct gn_coord_conn *cc = NULL;
	char why[512];

	assert_int_equal(try_connect(g_addr, "ca.pem", "client.pem",
				     "client.key", role, &g_secret, &cc, why,
				     sizeof(why)),
			 0);
	return cc;
}

/* An admin lists nodes: the coordinator still serves good peers. */
static size_t count_nodes(void)
{
	Genie__ListNodes ln = GENIE__LIST_NODES__INIT;
	struct gn_coord_conn *cc = good_conn(GENIE__PEER_ROLE__PEER_ROLE_ADMIN);
	Genie__NodeList *nl = NULL;
	size_t n;

	assert_int_equal(gn_coord_call(cc, GENIE__MSG_TYPE__MSG_TYPE_LIST_NODES,
				       &ln.base,
				       GENIE__MSG_TYPE__MSG_TYPE_NODE_LIST,
				       &genie__node_list__descriptor,
				       (ProtobufCMessage **)&nl),
			 0);
	n = nl->n_nodes;
	protobuf_c_message_free_unpacked(&nl->base, NULL);
	gn_coord_close(&cc);
	return n;
}

static void test_good_cert_works(void **state)
{
	Genie__RegisterNode r = GENIE__REGISTER_NODE__INIT;
	Genie__Device dev = GENIE__DEVICE__INIT;
	Genie__DataPlane dp = GENIE__DATA_PLANE__INIT;
	Genie__Device *devs[1] = {&dev};
	Genie__DataPlane *dps[1] = {&dp};
	Genie__Heartbeat hb = GENIE__HEARTBEAT__INIT;
	Genie__NodeLoad load = GENIE__NODE_LOAD__INIT;
	Genie__PlaceRequest pr = GENIE__PLACE_REQUEST__INIT;
	Genie__RegisterAck *ack = NULL;
	Genie__HeartbeatAck *hack = NULL;
	Genie__PlaceReply *rep = NULL;
	struct gn_coord_conn *rt, *cl;

	(void)state;
	rt = good_conn(GENIE__PEER_ROLE__PEER_ROLE_RUNTIME);
	assert_string_equal(rt->conn->ops->name, "tls");
	dev.kind = "cpu";
	dev.name = "fake";
	dev.memory_bytes = 1ull << 30;
	dp.kind = "tcp";
	dp.address = "tcp://127.0.0.1:1";
	r.node_id = "tls-rt0";
	r.n_devices = 1;
	r.devices = devs;
	r.n_data_planes = 1;
	r.data_planes = dps;
	assert_int_equal(gn_coord_call(rt, GENIE__MSG_TYPE__MSG_TYPE_REGISTER,
				       &r.base,
				       GENIE__MSG_TYPE__MSG_TYPE_REGISTER_ACK,
				       &genie__register_ack__descriptor,
				       (ProtobufCMessage **)&ack),
			 0);
	protobuf_c_message_free_unpacked(&ack->base, NULL);
	load.memory_total_bytes = 1ull << 30;
	hb.node_id = "tls-rt0";
	hb.seq = 1;
	hb.load = &load;
	assert_int_equal(gn_coord_call(rt, GENIE__MSG_TYPE__MSG_TYPE_HEARTBEAT,
				       &hb.base,
				       GENIE__MSG_TYPE__MSG_TYPE_HEARTBEAT_ACK,
				       &genie__heartbeat_ack__descriptor,
				       (ProtobufCMessage **)&hack),
			 0);
	protobuf_c_message_free_unpacked(&hack->base, NULL);

	cl = good_conn(GENIE__PEER_ROLE__PEER_ROLE_CLIENT);
	pr.tenant = "t";
	assert_int_equal(gn_coord_call(cl, GENIE__MSG_TYPE__MSG_TYPE_PLACE,
				       &pr.base,
				       GENIE__MSG_TYPE__MSG_TYPE_PLACE_REPLY,
				       &genie__place_reply__descriptor,
				       (ProtobufCMessage **)&rep),
			 0);
	assert_string_equal(rep->node_id, "tls-rt0");
	assert_string_equal(rep->address, "tcp://127.0.0.1:1");
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	gn_coord_close(&cl);
	assert_int_equal(count_nodes(), 1);
	gn_coord_close(&rt);
}

static void expect_refused(const char *addr, const char *ca, const char *cert,
			   const char *key, int code, const char *words,
			   const char *words2)
{
	char why[512];
	int rc = try_connect(addr, ca, cert, key,
			     GENIE__PEER_ROLE__PEER_ROLE_CLIENT, &g_secret,
			     NULL, why, sizeof(why));

	assert_int_equal(rc, code);
	if (strstr(why, words) == NULL ||
	    (words2 != NULL && strstr(why, words2) == NULL))
		fail_msg("expected '%s'%s%s in: %s", words,
			 words2 ? " and " : "", words2 ? words2 : "", why);
	/* The coordinator keeps serving good peers. */
	assert_true(count_nodes() >= 1);
}

static void test_no_client_cert_refused(void **state)
{
	(void)state;
	expect_refused(g_addr, "ca.pem", NULL, NULL, -EACCES,
		       "requires a client certificate", NULL);
}

static void test_other_ca_cert_refused(void **state)
{
	(void)state;
	expect_refused(g_addr, "ca.pem", "stranger.pem", "stranger.key",
		       -EACCES, "refused our certificate", "unknown ca");
}

static void test_expired_cert_refused(void **state)
{
	(void)state;
	expect_refused(g_addr, "ca.pem", "expired.pem", "expired.key", -EACCES,
		       "refused our certificate", "expired");
}

static void test_untrusted_coordinator_refused(void **state)
{
	(void)state;
	expect_refused(g_addr, "other-ca.pem", "client.pem", "client.key",
		       -EACCES, "certificate verify failed",
		       "self-signed / unknown CA");
}

static void test_wrong_host_name_refused(void **state)
{
	char addr[64];

	(void)state;
	/* The certificate names IP 127.0.0.1 only. */
	snprintf(addr, sizeof(addr), "localhost:%d", g_port);
	expect_refused(addr, "ca.pem", "client.pem", "client.key", -EACCES,
		       "wrong host name", NULL);
}

static void test_plain_tcp_refused(void **state)
{
	struct gn_coord_conn *cc = NULL;
	int rc;

	(void)state;
	rc = gn_coord_connect(g_addr, &g_secret,
			      GENIE__PEER_ROLE__PEER_ROLE_CLIENT, "plain", 3000,
			      &cc);
	assert_int_not_equal(rc, 0);
	fprintf(stderr, "  plain TCP: %d: %s\n", rc, gn_last_error());
	assert_null(cc);
	assert_true(count_nodes() >= 1);
}

static void test_wrong_secret_inside_tls(void **state)
{
	struct gn_auth_secret bad;
	char why[512];

	(void)state;
	memset(&bad, 0, sizeof(bad));
	memcpy(bad.bytes, "not-the-secret-0123456789", 25);
	bad.len = 25;
	assert_int_equal(try_connect(g_addr, "ca.pem", "client.pem",
				     "client.key",
				     GENIE__PEER_ROLE__PEER_ROLE_CLIENT, &bad,
				     NULL, why, sizeof(why)),
			 -EACCES);
	assert_non_null(strstr(why, "wrong secret"));
	assert_true(count_nodes() >= 1);
}

static void test_bad_files(void **state)
{
	char why[512];

	(void)state;
	assert_int_equal(try_connect(g_addr, "nope.pem", NULL, NULL,
				     GENIE__PEER_ROLE__PEER_ROLE_CLIENT,
				     &g_secret, NULL, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "nope.pem"));
	assert_int_equal(try_connect(g_addr, "ca.pem", "client.pem", NULL,
				     GENIE__PEER_ROLE__PEER_ROLE_CLIENT,
				     &g_secret, NULL, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "--tls-key"));
}

/* Run genie-ctl with `args`; its exit status, stdout in `out`. */
static int ctl(char *out, size_t out_len, const char *args)
{
	char cmd[2048];
	FILE *p;
	size_t n;
	int st;

	snprintf(cmd, sizeof(cmd), "%s --coordinator %s --secret %s %s 2>&1",
		 g_ctl_bin, g_addr, g_secret_path, args);
	p = popen(cmd, "r");
	if (p == NULL)
		return -1;
	n = fread(out, 1, out_len - 1, p);
	out[n] = '\0';
	st = pclose(p);
	fprintf(stderr, "  $ genie-ctl %s\n%s", args, out);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * libgenie's coordinator:// over TLS, with the files in the options and
 * from $GENIE_TLS_*, placed on the real runtime (the fake one is DOWN by
 * now), and refused without a client certificate.
 */
static void libgenie_sessions(void)
{
	struct gn_session_opts o;
	struct gn_session *s;
	char target[96];

	snprintf(target, sizeof(target), "coordinator://%s", g_addr);
	gn_session_opts_init(&o, sizeof(o));
	o.target = target;
	o.secret_file = g_secret_path;
	o.timeout_ms = 5000;
	o.tls_ca = path_of("ca.pem");
	o.tls_cert = path_of("client.pem");
	o.tls_key = path_of("client.key");
	s = gn_session_create(&o);
	if (s == NULL)
		fail_msg("libgenie over TLS: %s", gn_last_error());
	assert_string_equal(gn_session_node(s), "tls-real-rt");
	gn_session_destroy(&s);

	o.tls_cert = o.tls_key = NULL;
	assert_null(gn_session_create(&o));
	fprintf(stderr, "  libgenie without a certificate: %s\n",
		gn_last_error());
	assert_int_equal(gn_last_error_code(), -EACCES);
	assert_non_null(strstr(gn_last_error(), "client certificate"));

	o.tls_ca = NULL;
	setenv("GENIE_TLS_CA", path_of("ca.pem"), 1);
	setenv("GENIE_TLS_CERT", path_of("client.pem"), 1);
	setenv("GENIE_TLS_KEY", path_of("client.key"), 1);
	s = gn_session_create(&o);
	unsetenv("GENIE_TLS_CA");
	unsetenv("GENIE_TLS_CERT");
	unsetenv("GENIE_TLS_KEY");
	if (s == NULL)
		fail_msg("libgenie over TLS from the environment: %s",
			 gn_last_error());
	assert_string_equal(gn_session_node(s), "tls-real-rt");
	gn_session_destroy(&s);
}

static void test_runtime_and_ctl(void **state)
{
	const char *rt_argv[] = {
		g_rt_bin,	       "--listen",	   "tcp://127.0.0.1:0",
		"--coordinator",       g_addr,		   "--secret",
		g_secret_path,	       "--node-id",	   "tls-real-rt",
		"--tls-ca",	       path_of("ca.pem"),  "--tls-cert",
		path_of("client.pem"), "--tls-key",	   path_of("client.key"),
		"--label",	       "rack=r7",	   "--label",
		"zone=eu-1",	       NULL};
	char tls_args[600], args[700], out[8192];
	int up = 0;

	(void)state;
	g_rt_pid = proc_spawn(rt_argv, NULL);
	assert_true(g_rt_pid > 0);
	snprintf(tls_args, sizeof(tls_args),
		 "--tls-ca %s --tls-cert %s --tls-key %s", path_of("ca.pem"),
		 path_of("client.pem"), path_of("client.key"));
	for (int i = 0; i < 100 && !up; i++) {
		snprintf(args, sizeof(args), "%s -o json nodes", tls_args);
		if (ctl(out, sizeof(out), args) == 0 &&
		    strstr(out, "\"tls-real-rt\", \"state\": \"UP\""))
			up = 1;
		else
			nap_ms(100);
	}
	assert_true(up);
	snprintf(args, sizeof(args), "%s describe node tls-real-rt", tls_args);
	assert_int_equal(ctl(out, sizeof(out), args), 0);
	assert_non_null(strstr(out, "rack"));
	assert_non_null(strstr(out, "r7"));
	assert_non_null(strstr(out, "zone"));
	assert_non_null(strstr(out, "eu-1"));
	/* Without a client certificate genie-ctl is refused, with words. */
	snprintf(args, sizeof(args), "--tls-ca %s nodes", path_of("ca.pem"));
	assert_int_equal(ctl(out, sizeof(out), args), 1);
	assert_non_null(strstr(out, "client certificate"));
	/* And with it, it still works. */
	snprintf(args, sizeof(args), "%s -o json nodes", tls_args);
	assert_int_equal(ctl(out, sizeof(out), args), 0);
	libgenie_sessions();
	assert_int_equal(proc_stop(&g_rt_pid, SIGTERM, 5000), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_cert_works),
		cmocka_unit_test(test_no_client_cert_refused),
		cmocka_unit_test(test_other_ca_cert_refused),
		cmocka_unit_test(test_expired_cert_refused),
		cmocka_unit_test(test_untrusted_coordinator_refused),
		cmocka_unit_test(test_wrong_host_name_refused),
		cmocka_unit_test(test_plain_tcp_refused),
		cmocka_unit_test(test_wrong_secret_inside_tls),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_runtime_and_ctl),
	};

	if (argc != 4) {
		fprintf(stderr,
			"usage: %s genie-coordinator genie-ctl genie-runtime\n",
			argv[0]);
		return 2;
	}
	g_coord_bin = argv[1];
	g_ctl_bin = argv[2];
	g_rt_bin = argv[3];
	signal(SIGPIPE, SIG_IGN);
	if (system("openssl version >/dev/null 2>&1") != 0) {
		printf("SKIP: the openssl command line tool is not installed; "
		       "coordinator TLS not tested\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
