/*
 * genie-coordinator as a real process, driven by fake runtimes, clients
 * and an admin written here against the wire protocol (a small protocol
 * client below, independent of libgenie's):
 *
 *   - 4 runtimes register and heartbeat (a thread, every 30 ms);
 *   - placement follows each policy (least-loaded spreads, bin-packing
 *     fills, model-affinity finds the resident key, device kind and
 *     transport filter, the address is the matching data plane);
 *   - a runtime that stops heartbeating is DOWN within 3 intervals
 *     (--heartbeat-ms 100), its sessions end and new ones go elsewhere;
 *   - a drained runtime gets no sessions and learns it from HeartbeatAck;
 *   - fair share: with capacity short, a tenant over its share is
 *     refused while one under it is placed;
 *   - a runtime that flaps (DOWN->UP 4 times in 60 s) gets its circuit
 *     breaker opened and no new sessions;
 *   - SIGKILL + restart on the same state keeps nodes (SUSPECT until they
 *     return) and sessions;
 *   - a wrong secret gets -EACCES with a clear message and a closed
 *     connection while others keep working; roles are enforced;
 *   - oversized, truncated and garbage frames close only their connection;
 *   - bad options fail with words; --config is read, the command line
 *     wins over it;
 *   - GET /metrics has the key series and they move; promtool checks it
 *     when installed; /healthz and /readyz answer 200.
 *
 *   coordinator_test PATH/TO/genie-coordinator
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth.h"
#include "frame.h"
#include "genie/control.pb-c.h"
#include "genie/coord.pb-c.h"
#include "genie/envelope.pb-c.h"
#include "transport.h"

#define HB_MS 100
#define NRT 4

static const char *g_bin;
static char g_dir[64];
static char g_secret_path[128], g_state_path[128];
static struct gn_auth_secret g_secret;

static void nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the coordinator process ---- */

static pid_t g_pid;
static int g_port, g_http_port;

static int read_port(const char *path)
{
	FILE *f = fopen(path, "r");
	int port = 0;

	if (f == NULL)
		return 0;
	if (fscanf(f, "%d", &port) != 1)
		port = 0;
	fclose(f);
	return port;
}

static int coord_start(void)
{
	char pf[128], hpf[128], hb[16];

	snprintf(pf, sizeof(pf), "%s/port", g_dir);
	snprintf(hpf, sizeof(hpf), "%s/http-port", g_dir);
	unlink(pf);
	unlink(hpf);
	snprintf(hb, sizeof(hb), "%d", HB_MS);
	g_pid = fork();
	if (g_pid < 0)
		return -1;
	if (g_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(g_bin, g_bin, "--listen", "127.0.0.1:0", "--http",
		      "127.0.0.1:0", "--state", g_state_path, "--secret",
		      g_secret_path, "--heartbeat-ms", hb, "--port-file", pf,
		      "--http-port-file", hpf, "--max-sessions", "16",
		      (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", g_bin, strerror(errno));
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		int st;

		g_port = read_port(pf);
		g_http_port = read_port(hpf);
		if (g_port > 0 && g_http_port > 0)
			return 0;
		if (waitpid(g_pid, &st, WNOHANG) == g_pid) {
			fprintf(stderr,
				"genie-coordinator exited early (0x%x)\n", st);
			g_pid = 0;
			return -1;
		}
		nap_ms(50);
	}
	fprintf(stderr, "genie-coordinator wrote no ports within 10 s\n");
	return -1;
}

/* SIGTERM; the exit status (0: clean), -1 when killed or by a signal. */
static int coord_stop(int sig)
{
	int st;

	if (g_pid <= 0)
		return -1;
	kill(g_pid, sig);
	for (int i = 0; i < 200; i++) {
		if (waitpid(g_pid, &st, WNOHANG) == g_pid) {
			g_pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		}
		nap_ms(50);
	}
	kill(g_pid, SIGKILL);
	waitpid(g_pid, NULL, 0);
	g_pid = 0;
	return -1;
}

/* ---- a small protocol client ---- */

struct pc {
	struct gn_conn *conn;
	uint64_t next_id;
	int err;       /* last ErrorReply code */
	char msg[512]; /* and its message */
};

static int pc_send(struct pc *p, int type, const ProtobufCMessage *body,
		   uint64_t rid)
{
	uint8_t *env;
	size_t len;
	int rc = gn_envelope_pack(type, rid, body, &env, &len);

	if (rc != 0)
		return rc;
	rc = gn_conn_send(p->conn, env, len, NULL, 0, 5000);
	free(env);
	return rc;
}

/*
 * Send and wait for the reply with the same request id. Returns 0 with
 * *out unpacked as `desc` when the reply is `want`; the ErrorReply's code
 * (message in p->msg); or a transport error.
 */
static int pc_call(struct pc *p, int type, const ProtobufCMessage *body,
		   int want, const ProtobufCMessageDescriptor *desc,
		   ProtobufCMessage **out)
{
	uint64_t rid = ++p->next_id;
	Genie__Envelope *env;
	struct gn_msg m;
	int rc = pc_send(p, type, body, rid);

	if (out != NULL)
		*out = NULL;
	p->err = 0;
	p->msg[0] = '\0';
	if (rc != 0)
		return rc;
	rc = gn_conn_recv(p->conn, &m, 5000);
	if (rc != 0)
		return rc;
	env = (Genie__Envelope *)gn_pb_unpack(&genie__envelope__descriptor,
					      m.env, m.env_len, 1 << 20);
	gn_msg_release(&m);
	if (env == NULL)
		return -EBADMSG;
	if (env->request_id != rid) {
		fprintf(stderr, "reply to request %llu carries id %llu\n",
			(unsigned long long)rid,
			(unsigned long long)env->request_id);
		rc = -EPROTO;
	} else if (env->type == GENIE__MSG_TYPE__MSG_TYPE_ERROR) {
		Genie__ErrorReply *er = (Genie__ErrorReply *)gn_pb_unpack(
			&genie__error_reply__descriptor, env->body.data,
			env->body.len, 1 << 20);

		rc = er ? er->code : -EBADMSG;
		if (er != NULL) {
			snprintf(p->msg, sizeof(p->msg), "%s", er->message);
			protobuf_c_message_free_unpacked(&er->base, NULL);
		}
		p->err = rc;
	} else if ((int)env->type != want) {
		rc = -EPROTO;
	} else if (out != NULL) {
		*out = gn_pb_unpack(desc, env->body.data, env->body.len,
				    1 << 20);
		rc = *out ? 0 : -EBADMSG;
	}
	protobuf_c_message_free_unpacked(&env->base, NULL);
	return rc;
}

static void pc_close(struct pc **pp)
{
	if (*pp == NULL)
		return;
	gn_conn_close(&(*pp)->conn);
	free(*pp);
	*pp = NULL;
}

/* Connect and authenticate; 0, or the refusal's code (message in msg). */
static int pc_open(int role, const char *name,
		   const struct gn_auth_secret *secret, struct pc **out,
		   char *msg, size_t msg_len)
{
	Genie__CoordHello h = GENIE__COORD_HELLO__INIT;
	Genie__AuthResponse ar = GENIE__AUTH_RESPONSE__INIT;
	Genie__AuthChallenge *ch = NULL;
	Genie__CoordHelloAck *ack = NULL;
	uint8_t mac[GN_AUTH_MAC_SIZE];
	char url[64];
	struct pc *p = calloc(1, sizeof(*p));
	int rc;

	*out = NULL;
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", g_port);
	rc = gn_connect(url, NULL, 2000, &p->conn);
	if (rc != 0) {
		free(p);
		return rc;
	}
	h.min_version = GN_SCHEMA_VERSION_MIN;
	h.max_version = GN_SCHEMA_VERSION;
	h.peer_name = (char *)name;
	h.role = role;
	rc = pc_call(p, GENIE__MSG_TYPE__MSG_TYPE_COORD_HELLO, &h.base,
		     GENIE__MSG_TYPE__MSG_TYPE_AUTH_CHALLENGE,
		     &genie__auth_challenge__descriptor,
		     (ProtobufCMessage **)&ch);
	if (rc != 0)
		goto fail;
	if (ch->nonce.len != GN_AUTH_NONCE_SIZE || ch->version == 0) {
		rc = -EPROTO;
		goto fail;
	}
	gn_auth_mac(secret, ch->nonce.data, (uint32_t)role, name, mac);
	ar.mac.data = mac;
	ar.mac.len = sizeof(mac);
	rc = pc_call(p, GENIE__MSG_TYPE__MSG_TYPE_AUTH_RESPONSE, &ar.base,
		     GENIE__MSG_TYPE__MSG_TYPE_COORD_HELLO_ACK,
		     &genie__coord_hello_ack__descriptor,
		     (ProtobufCMessage **)&ack);
	if (rc != 0)
		goto fail;
	protobuf_c_message_free_unpacked(&ch->base, NULL);
	protobuf_c_message_free_unpacked(&ack->base, NULL);
	*out = p;
	return 0;
fail:
	if (msg != NULL)
		snprintf(msg, msg_len, "%s", p->msg);
	if (ch != NULL)
		protobuf_c_message_free_unpacked(&ch->base, NULL);
	/* Leave the connection to the caller on refusal: it checks the close.
	 */
	if (p->err != 0 && msg_len == 0) {
		*out = p;
		return rc;
	}
	pc_close(&p);
	return rc;
}

static struct pc *admin(void)
{
	struct pc *p;
	int rc = pc_open(GENIE__PEER_ROLE__PEER_ROLE_ADMIN, "test-admin",
			 &g_secret, &p, NULL, 0);

	if (rc != 0)
		fail_msg("admin connection: %d", rc);
	return p;
}

static struct pc *client(void)
{
	struct pc *p;
	int rc = pc_open(GENIE__PEER_ROLE__PEER_ROLE_CLIENT, "test-client",
			 &g_secret, &p, NULL, 0);

	if (rc != 0)
		fail_msg("client connection: %d", rc);
	return p;
}

/* ---- fake runtimes ---- */

struct fake_rt {
	char id[16];
	struct pc *pc;
	bool paused;
	bool drained; /* from the last HeartbeatAck */
	uint64_t seq;
	uint64_t acks;
};

static struct fake_rt g_rt[NRT];
static pthread_mutex_t g_rt_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t g_hb_thread;
static atomic_int g_hb_stop;

static int rt_register(struct fake_rt *r, int i)
{
	Genie__RegisterNode reg = GENIE__REGISTER_NODE__INIT;
	Genie__Device cpu = GENIE__DEVICE__INIT, gpu = GENIE__DEVICE__INIT;
	Genie__Device *devs[2] = {&cpu, &gpu};
	Genie__DataPlane tcp = GENIE__DATA_PLANE__INIT,
			 dpdk = GENIE__DATA_PLANE__INIT;
	Genie__DataPlane *dps[2] = {&tcp, &dpdk};
	Genie__RegisterAck *ack = NULL;
	char tcp_addr[64], dpdk_addr[64];
	char *backends[] = {"cpu"};
	int rc;

	if (r->pc == NULL && pc_open(GENIE__PEER_ROLE__PEER_ROLE_RUNTIME, r->id,
				     &g_secret, &r->pc, NULL, 0) != 0)
		return -1;
	cpu.kind = "cpu";
	cpu.name = "host memory";
	cpu.memory_bytes = 8ull << 30;
	gpu.kind = "cuda";
	gpu.name = "fake GPU";
	gpu.memory_bytes = 16ull << 30;
	snprintf(tcp_addr, sizeof(tcp_addr), "tcp://127.0.0.1:%d", 7100 + i);
	snprintf(dpdk_addr, sizeof(dpdk_addr), "dpdk://memif-%d", i);
	tcp.kind = "tcp";
	tcp.address = tcp_addr;
	dpdk.kind = "dpdk";
	dpdk.address = dpdk_addr;
	reg.node_id = r->id;
	/* rt-0 has a GPU; rt-1 has a DPDK data plane (listed second). */
	reg.n_devices = i == 0 ? 2 : 1;
	reg.devices = devs;
	reg.n_backends = 1;
	reg.backends = backends;
	if (i == 1) {
		dps[0] = &tcp;
		dps[1] = &dpdk;
	}
	reg.n_data_planes = i == 1 ? 2 : 1;
	reg.data_planes = dps;
	rc = pc_call(r->pc, GENIE__MSG_TYPE__MSG_TYPE_REGISTER, &reg.base,
		     GENIE__MSG_TYPE__MSG_TYPE_REGISTER_ACK,
		     &genie__register_ack__descriptor,
		     (ProtobufCMessage **)&ack);
	if (rc != 0) {
		pc_close(&r->pc);
		return -1;
	}
	if (ack->heartbeat_interval_ms != HB_MS || strcmp(ack->node_id, r->id))
		fprintf(stderr, "register ack: interval %u, node '%s'\n",
			ack->heartbeat_interval_ms, ack->node_id);
	protobuf_c_message_free_unpacked(&ack->base, NULL);
	return 0;
}

static void rt_heartbeat(struct fake_rt *r, int i)
{
	Genie__Heartbeat hb = GENIE__HEARTBEAT__INIT;
	Genie__NodeLoad load = GENIE__NODE_LOAD__INIT;
	Genie__RuntimeTelemetry tel = GENIE__RUNTIME_TELEMETRY__INIT;
	Genie__HeartbeatAck *ack = NULL;
	char *keys[] = {"k-model-a", "k-model-b"};
	uint64_t lat[3] = {150000 + (uint64_t)i * 1000, 2000000, 40000000};
	uint64_t conv_ns[2] = {1000000, 3000000}, relu_ns[1] = {20000};
	Genie__OpLatency ol[3], *olp[3] = {&ol[0], &ol[1], &ol[2]};
	int rc;

	hb.node_id = r->id;
	hb.seq = ++r->seq;
	load.memory_used_bytes = (uint64_t)i << 30; /* rt-3 uses the most */
	load.memory_total_bytes = 8ull << 30;
	load.device_utilization = 0.25 * i;
	hb.load = &load;
	tel.bytes_sent_total = 1000 * r->seq;
	tel.bytes_received_total = 500 * r->seq;
	hb.telemetry = &tel;
	if (i == 2) { /* rt-2 holds model a's weights */
		hb.n_resident_keys = 2;
		hb.resident_keys = keys;
	}
	hb.n_plan_latency_ns = 3;
	hb.plan_latency_ns = lat;
	/* Kernel times: two ops, and a name no op has (not kept). */
	for (int k = 0; k < 3; k++)
		genie__op_latency__init(&ol[k]);
	ol[0].op = "conv2d";
	ol[0].n_ns = 2;
	ol[0].ns = conv_ns;
	ol[1].op = "relu";
	ol[1].n_ns = 1;
	ol[1].ns = relu_ns;
	ol[2].op = "bad\"} name";
	ol[2].n_ns = 1;
	ol[2].ns = relu_ns;
	hb.n_op_latency = 3;
	hb.op_latency = olp;
	rc = pc_call(r->pc, GENIE__MSG_TYPE__MSG_TYPE_HEARTBEAT, &hb.base,
		     GENIE__MSG_TYPE__MSG_TYPE_HEARTBEAT_ACK,
		     &genie__heartbeat_ack__descriptor,
		     (ProtobufCMessage **)&ack);
	if (rc != 0) {
		pc_close(&r->pc); /* reconnect and register next round */
		return;
	}
	if (ack->seq != hb.seq)
		fprintf(stderr, "heartbeat ack seq %llu for %llu\n",
			(unsigned long long)ack->seq,
			(unsigned long long)hb.seq);
	r->drained = ack->drained;
	r->acks++;
	protobuf_c_message_free_unpacked(&ack->base, NULL);
}

static void *hb_thread(void *arg)
{
	(void)arg;
	while (!atomic_load(&g_hb_stop)) {
		pthread_mutex_lock(&g_rt_lock);
		for (int i = 0; i < NRT; i++) {
			struct fake_rt *r = &g_rt[i];

			if (r->paused)
				continue;
			if (r->pc == NULL && rt_register(r, i) != 0)
				continue;
			rt_heartbeat(r, i);
		}
		pthread_mutex_unlock(&g_rt_lock);
		nap_ms(30);
	}
	return NULL;
}

static void rt_pause(int i, bool paused)
{
	pthread_mutex_lock(&g_rt_lock);
	g_rt[i].paused = paused;
	pthread_mutex_unlock(&g_rt_lock);
}

/* ---- admin views ---- */

static Genie__NodeList *list_nodes(struct pc *a)
{
	Genie__ListNodes ln = GENIE__LIST_NODES__INIT;
	Genie__NodeList *nl = NULL;
	int rc = pc_call(a, GENIE__MSG_TYPE__MSG_TYPE_LIST_NODES, &ln.base,
			 GENIE__MSG_TYPE__MSG_TYPE_NODE_LIST,
			 &genie__node_list__descriptor,
			 (ProtobufCMessage **)&nl);

	if (rc != 0)
		fail_msg("LIST_NODES: %d %s", rc, a->msg);
	return nl;
}

static int node_state(struct pc *a, const char *id)
{
	Genie__NodeList *nl = list_nodes(a);
	int st = -1;

	for (size_t i = 0; i < nl->n_nodes; i++)
		if (strcmp(nl->nodes[i]->node_id, id) == 0)
			st = nl->nodes[i]->state;
	protobuf_c_message_free_unpacked(&nl->base, NULL);
	return st;
}

static int count_state(struct pc *a, int state)
{
	Genie__NodeList *nl = list_nodes(a);
	int n = 0;

	for (size_t i = 0; i < nl->n_nodes; i++)
		n += (int)nl->nodes[i]->state == state;
	protobuf_c_message_free_unpacked(&nl->base, NULL);
	return n;
}

static void wait_state(struct pc *a, const char *id, int state, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	while (node_state(a, id) != state) {
		if (now_ms() > end)
			fail_msg(
				"node %s not in state %d within %d ms (now %d)",
				id, state, ms, node_state(a, id));
		nap_ms(10);
	}
}

static Genie__SessionList *list_sessions(struct pc *a)
{
	Genie__ListSessions ls = GENIE__LIST_SESSIONS__INIT;
	Genie__SessionList *sl = NULL;
	int rc = pc_call(a, GENIE__MSG_TYPE__MSG_TYPE_LIST_SESSIONS, &ls.base,
			 GENIE__MSG_TYPE__MSG_TYPE_SESSION_LIST,
			 &genie__session_list__descriptor,
			 (ProtobufCMessage **)&sl);

	if (rc != 0)
		fail_msg("LIST_SESSIONS: %d %s", rc, a->msg);
	return sl;
}

static bool has_session(struct pc *a, uint64_t id)
{
	Genie__SessionList *sl = list_sessions(a);
	bool found = false;

	for (size_t i = 0; i < sl->n_sessions; i++)
		found |= sl->sessions[i]->session_id == id;
	protobuf_c_message_free_unpacked(&sl->base, NULL);
	return found;
}

/* PLACE; returns 0 and fills node/address/session, or the error code. */
struct placed {
	char node[32];
	char address[64];
	uint64_t session;
};

static int place_as(struct pc *c, const char *tenant,
		    Genie__PlacementPolicy pol, const char *kind,
		    const char *transport, const char *model_key,
		    struct placed *out)
{
	Genie__PlaceRequest rq = GENIE__PLACE_REQUEST__INIT;
	Genie__PlaceReply *rep = NULL;
	char *keys[1] = {(char *)model_key};
	int rc;

	rq.tenant = (char *)tenant;
	rq.priority = 100;
	rq.policy = pol;
	rq.device_kind = (char *)(kind ? kind : "");
	rq.transport = (char *)(transport ? transport : "");
	if (model_key != NULL) {
		rq.n_model_keys = 1;
		rq.model_keys = keys;
	}
	rc = pc_call(c, GENIE__MSG_TYPE__MSG_TYPE_PLACE, &rq.base,
		     GENIE__MSG_TYPE__MSG_TYPE_PLACE_REPLY,
		     &genie__place_reply__descriptor,
		     (ProtobufCMessage **)&rep);
	if (rc != 0)
		return rc;
	snprintf(out->node, sizeof(out->node), "%s", rep->node_id);
	snprintf(out->address, sizeof(out->address), "%s", rep->address);
	out->session = rep->session_id;
	assert_true(rep->reason[0] != '\0');
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	return 0;
}

static int place(struct pc *c, Genie__PlacementPolicy pol, const char *kind,
		 const char *transport, const char *model_key,
		 struct placed *out)
{
	return place_as(c, "tenant-a", pol, kind, transport, model_key, out);
}

static void release(struct pc *c, uint64_t id)
{
	Genie__ReleaseSession rs = GENIE__RELEASE_SESSION__INIT;
	Genie__CoordAck *ack = NULL;

	rs.session_id = id;
	assert_int_equal(pc_call(c, GENIE__MSG_TYPE__MSG_TYPE_RELEASE_SESSION,
				 &rs.base, GENIE__MSG_TYPE__MSG_TYPE_COORD_ACK,
				 &genie__coord_ack__descriptor,
				 (ProtobufCMessage **)&ack),
			 0);
	protobuf_c_message_free_unpacked(&ack->base, NULL);
}

static void release_all(struct pc *a)
{
	Genie__SessionList *sl = list_sessions(a);

	for (size_t i = 0; i < sl->n_sessions; i++)
		release(a, sl->sessions[i]->session_id);
	protobuf_c_message_free_unpacked(&sl->base, NULL);
}

static int drain(struct pc *a, const char *id, bool on)
{
	Genie__DrainNode d = GENIE__DRAIN_NODE__INIT;
	Genie__CoordAck *ack = NULL;
	int rc;

	d.node_id = (char *)id;
	d.drain = on;
	rc = pc_call(a, GENIE__MSG_TYPE__MSG_TYPE_DRAIN, &d.base,
		     GENIE__MSG_TYPE__MSG_TYPE_COORD_ACK,
		     &genie__coord_ack__descriptor, (ProtobufCMessage **)&ack);
	if (ack != NULL)
		protobuf_c_message_free_unpacked(&ack->base, NULL);
	return rc;
}

/* ---- HTTP ---- */

/* GET `path`; the body in a malloc'd string, status in *status. */
static char *http_get(const char *path, int *status)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	char req[256];
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap), *body;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ssize_t n;

	sa.sin_port = htons((uint16_t)g_http_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		fail_msg("http connect: %s", strerror(errno));
	snprintf(req, sizeof(req),
		 "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: "
		 "close\r\n\r\n",
		 path);
	assert_true(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
	while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (cap - len < 1024) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
	}
	close(fd);
	buf[len] = '\0';
	*status = 0;
	sscanf(buf, "HTTP/1.%*d %d", status);
	body = strstr(buf, "\r\n\r\n");
	body = strdup(body ? body + 4 : "");
	free(buf);
	return body;
}

/* The value of the sample line starting with `series ` (-1 if none). */
static double metric(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; p && *p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	}
	return -1;
}

/* ---- tests ---- */

static void test_register_and_roles(void **state)
{
	struct pc *a = admin(), *c = client();
	Genie__DescribeNode d = GENIE__DESCRIBE_NODE__INIT;
	Genie__NodeList *nl = NULL;
	struct placed pl;
	uint64_t end = now_ms() + 5000;

	(void)state;
	while (count_state(a, GENIE__NODE_STATE__NODE_STATE_UP) != NRT) {
		if (now_ms() > end)
			fail_msg("4 runtimes not up within 5 s");
		nap_ms(20);
	}
	d.node_id = "rt-0";
	assert_int_equal(pc_call(a, GENIE__MSG_TYPE__MSG_TYPE_DESCRIBE_NODE,
				 &d.base, GENIE__MSG_TYPE__MSG_TYPE_NODE_LIST,
				 &genie__node_list__descriptor,
				 (ProtobufCMessage **)&nl),
			 0);
	assert_int_equal(nl->n_nodes, 1);
	assert_string_equal(nl->nodes[0]->node_id, "rt-0");
	assert_int_equal(nl->nodes[0]->n_devices, 2);
	assert_string_equal(nl->nodes[0]->devices[1]->kind, "cuda");
	assert_true(nl->nodes[0]->last_heartbeat_age_ms < 1000);
	protobuf_c_message_free_unpacked(&nl->base, NULL);
	d.node_id = "nope";
	assert_int_equal(pc_call(a, GENIE__MSG_TYPE__MSG_TYPE_DESCRIBE_NODE,
				 &d.base, GENIE__MSG_TYPE__MSG_TYPE_NODE_LIST,
				 &genie__node_list__descriptor,
				 (ProtobufCMessage **)&nl),
			 -ENOENT);
	assert_string_equal(a->msg, "no node 'nope'");
	/* Roles: a client may not list nodes or drain, an admin may. */
	assert_int_equal(pc_call(c, GENIE__MSG_TYPE__MSG_TYPE_LIST_NODES, NULL,
				 GENIE__MSG_TYPE__MSG_TYPE_NODE_LIST,
				 &genie__node_list__descriptor,
				 (ProtobufCMessage **)&nl),
			 -EPERM);
	assert_non_null(strstr(c->msg, "role client may not send LIST_NODES"));
	assert_int_equal(drain(c, "rt-0", true), -EPERM);
	/* A client may not register a node. */
	assert_int_equal(pc_call(c, GENIE__MSG_TYPE__MSG_TYPE_REGISTER, NULL,
				 GENIE__MSG_TYPE__MSG_TYPE_REGISTER_ACK,
				 &genie__register_ack__descriptor, NULL),
			 -EPERM);
	/* The connection survives refusals. */
	assert_int_equal(
		place(c, GENIE__PLACEMENT_POLICY__PLACEMENT_POLICY_DEFAULT,
		      NULL, NULL, NULL, &pl),
		0);
	release(c, pl.session);
	/* Unknown but well-framed message types get -EPROTO, no close. */
	assert_int_equal(pc_call(c, GENIE__MSG_TYPE__MSG_TYPE_EXEC_REQUEST,
				 NULL, 0, NULL, NULL),
			 -EPROTO);
	assert_int_equal(pc_call(c, GENIE__MSG_TYPE__MSG_TYPE_RELEASE_SESSION,
				 NULL, GENIE__MSG_TYPE__MSG_TYPE_COORD_ACK,
				 &genie__coord_ack__descriptor, NULL),
			 -ENOENT); /* session 0 */
	pc_close(&a);
	pc_close(&c);
}

static void test_policies(void **state)
{
	struct pc *c = client(), *a = admin();
	struct placed pl[4], p;
	bool seen[NRT] = {false};

	(void)state;
	/* least-loaded spreads 4 sessions over the 4 runtimes. */
	for (int i = 0; i < 4; i++) {
		assert_int_equal(
			place(c,
			      GENIE__PLACEMENT_POLICY__PLACEMENT_POLICY_LEAST_LOADED,
			      NULL, NULL, NULL, &pl[i]),
			0);
		seen[pl[i].node[3] - '0'] = true;
	}
	for (int i = 0; i < NRT; i++)
		assert_true(seen[i]);
	/* bin-packing fills the busiest that fits: equal sessions, so the
	 * one using most memory (rt-3), and it stays there. */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(
			place(c,
			      GENIE__PLACEMENT_POLICY__PLACEMENT_POLICY_BIN_PACKING,
			      NULL, NULL, NULL, &p),
			0);
		assert_string_equal(p.node, "rt-3");
	}
	/* model-affinity finds the runtime holding the key. */
	assert_int_equal(
		place(c,
		      GENIE__PLACEMENT_POLICY__PLACEMENT_POLICY_MODEL_AFFINITY,
		      NULL, NULL, "k-model-a", &p),
		0);
	assert_string_equal(p.node, "rt-2");
	assert_string_equal(p.address, "tcp://127.0.0.1:7102");
	/* Device kind and transport filter; the address matches. */
	assert_int_equal(place(c, 0, "cuda", NULL, NULL, &p), 0);
	assert_string_equal(p.node, "rt-0");
	assert_int_equal(place(c, 0, NULL, "dpdk", NULL, &p), 0);
	assert_string_equal(p.node, "rt-1");
	assert_string_equal(p.address, "dpdk://memif-1");
	assert_int_equal(place(c, 0, "tpu", NULL, NULL, &p), -ENODEV);
	assert_non_null(strstr(c->msg, "no node offers"));
	assert_int_equal(place(c, 0, "cuda", "dpdk", NULL, &p), -ENODEV);
	/* Each placement is listed; releasing empties the list. */
	assert_true(has_session(a, pl[0].session));
	release_all(a);
	assert_false(has_session(a, pl[0].session));
	pc_close(&a);
	pc_close(&c);
}

static void test_drain(void **state)
{
	struct pc *c = client(), *a = admin();
	struct placed p;
	uint64_t end;

	(void)state;
	assert_int_equal(drain(a, "rt-0", true), 0);
	assert_int_equal(drain(a, "ghost", true), -ENOENT);
	assert_int_equal(node_state(a, "rt-0"),
			 GENIE__NODE_STATE__NODE_STATE_DRAINED);
	end = now_ms() + 2000;
	for (;;) { /* the runtime hears it in its HeartbeatAck */
		bool d;

		pthread_mutex_lock(&g_rt_lock);
		d = g_rt[0].drained;
		pthread_mutex_unlock(&g_rt_lock);
		if (d)
			break;
		if (now_ms() > end)
			fail_msg("rt-0 never saw drained in a HeartbeatAck");
		nap_ms(10);
	}
	for (int i = 0; i < 9; i++) {
		assert_int_equal(place(c, 0, NULL, NULL, NULL, &p), 0);
		assert_string_not_equal(p.node, "rt-0");
	}
	/* Only rt-0 has a GPU: a drained GPU is busy, not missing. */
	assert_int_equal(place(c, 0, "cuda", NULL, NULL, &p), -EAGAIN);
	assert_non_null(strstr(c->msg, "1 drained"));
	assert_int_equal(drain(a, "rt-0", false), 0);
	assert_int_equal(place(c, 0, "cuda", NULL, NULL, &p), 0);
	assert_string_equal(p.node, "rt-0");
	release_all(a);
	pc_close(&a);
	pc_close(&c);
}

static void test_down_and_back(void **state)
{
	struct pc *c = client(), *a = admin();
	struct placed p, on3 = {0};
	uint64_t t0, took;

	(void)state;
	for (int i = 0; i < 4; i++) {
		assert_int_equal(place(c, 0, NULL, NULL, NULL, &p), 0);
		if (strcmp(p.node, "rt-3") == 0)
			on3 = p;
	}
	assert_true(on3.session != 0);
	rt_pause(3, true);
	t0 = now_ms();
	wait_state(a, "rt-3", GENIE__NODE_STATE__NODE_STATE_DOWN, 2000);
	took = now_ms() - t0;
	/* 3 intervals, plus the checker's period and scheduling slack. */
	printf("rt-3 went down %llu ms after its last heartbeat (3 intervals "
	       "= %d ms)\n",
	       (unsigned long long)took, 3 * HB_MS);
	assert_true(took <= 3 * HB_MS + 250);
	assert_false(has_session(a, on3.session)); /* ended with its node */
	for (int i = 0; i < 8; i++) {
		assert_int_equal(place(c, 0, NULL, NULL, NULL, &p), 0);
		assert_string_not_equal(p.node, "rt-3");
	}
	rt_pause(3, false);
	wait_state(a, "rt-3", GENIE__NODE_STATE__NODE_STATE_UP, 2000);
	release_all(a);
	pc_close(&a);
	pc_close(&c);
}

/* 4 runtimes x --max-sessions 16 = 64 slots. With two tenants holding
 * sessions each one's fair share is 32; once fewer than 16 slots are free
 * a tenant at or over its share is refused, the other is not. */
static void test_fair_share(void **state)
{
	struct pc *c = client(), *a = admin();
	struct placed p;
	int hog = 0, rc;

	(void)state;
	assert_int_equal(place_as(c, "small", 0, NULL, NULL, NULL, &p), 0);
	while ((rc = place_as(c, "hog", 0, NULL, NULL, NULL, &p)) == 0)
		hog++;
	assert_int_equal(rc, -EAGAIN);
	printf("hog placed %d sessions before: %s\n", hog, c->msg);
	assert_int_equal(hog, 48);
	assert_non_null(strstr(c->msg, "tenant 'hog' holds 48 sessions, its "
				       "fair share is 32"));
	/* The tenant below its share still gets one. */
	assert_int_equal(place_as(c, "small", 0, NULL, NULL, NULL, &p), 0);
	release_all(a);
	pc_close(&a);
	pc_close(&c);
}

/* A runtime that comes back from DOWN 4 times within 60 s flaps: its
 * breaker opens for 30 s and placement avoids it though it is UP. */
static void test_breaker(void **state)
{
	struct pc *c = client(), *a = admin();
	Genie__DescribeNode d = GENIE__DESCRIBE_NODE__INIT;
	Genie__NodeList *nl = NULL;
	struct placed p;
	char *m;
	int status;

	(void)state;
	for (int i = 0; i < 4; i++) {
		rt_pause(1, true);
		wait_state(a, "rt-1", GENIE__NODE_STATE__NODE_STATE_DOWN, 2000);
		rt_pause(1, false);
		wait_state(a, "rt-1", GENIE__NODE_STATE__NODE_STATE_UP, 2000);
	}
	d.node_id = "rt-1";
	assert_int_equal(pc_call(a, GENIE__MSG_TYPE__MSG_TYPE_DESCRIBE_NODE,
				 &d.base, GENIE__MSG_TYPE__MSG_TYPE_NODE_LIST,
				 &genie__node_list__descriptor,
				 (ProtobufCMessage **)&nl),
			 0);
	assert_true(nl->nodes[0]->breaker_open);
	protobuf_c_message_free_unpacked(&nl->base, NULL);
	/* rt-1 is the only DPDK runtime: up, but its breaker is open. */
	assert_int_equal(place(c, 0, NULL, "dpdk", NULL, &p), -EAGAIN);
	assert_non_null(strstr(c->msg, "1 with breaker open"));
	for (int i = 0; i < 6; i++) {
		assert_int_equal(place(c, 0, NULL, NULL, NULL, &p), 0);
		assert_string_not_equal(p.node, "rt-1");
	}
	m = http_get("/metrics", &status);
	assert_true(metric(m, "genie_node_breaker_open{node=\"rt-1\"}") == 1);
	free(m);
	release_all(a);
	pc_close(&a);
	pc_close(&c);
}

/* Run the binary with `args` (after argv[0]), stdout+stderr to `out`;
 * wait up to 10 s; its exit status, or -1. */
static int run_cli(const char *const *args, const char *out)
{
	const char *argv[16];
	int n = 0, st;
	pid_t pid;

	argv[n++] = g_bin;
	for (int i = 0; args[i] != NULL && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid = fork();
	if (pid == 0) {
		FILE *f = freopen(out, "w", stdout);

		if (f == NULL || dup2(fileno(stdout), 2) < 0)
			_exit(126);
		execv(g_bin, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		nap_ms(50);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static bool file_has(const char *path, const char *needle)
{
	char buf[4096];
	size_t n;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (strstr(buf, needle) == NULL) {
		fprintf(stderr, "%s lacks '%s':\n%s\n", path, needle, buf);
		return false;
	}
	return true;
}

/* Bad options fail fast with words; a config file is read and the
 * command line wins over it. */
static void test_cli_and_config(void **state)
{
	char out[128], conf[128], st2[128], pf[128];
	const char *bad_policy[] = {"--secret", g_secret_path, "--policy",
				    "random", NULL};
	const char *no_secret[] = {"--state", st2, "--secret",
				   "/nonexistent/secret", NULL};
	const char *bad_conf[] = {"--config", conf, "--secret", g_secret_path,
				  NULL};
	FILE *f;
	pid_t pid;
	int st;

	(void)state;
	snprintf(out, sizeof(out), "%s/cli.out", g_dir);
	snprintf(conf, sizeof(conf), "%s/coord.conf", g_dir);
	snprintf(st2, sizeof(st2), "%s/other.sqlite", g_dir);
	snprintf(pf, sizeof(pf), "%s/cli.port", g_dir);
	assert_int_equal(run_cli(bad_policy, out), 2);
	assert_true(file_has(out, "policy 'random': expected least-loaded, "
				  "bin-packing or model-affinity"));
	assert_int_equal(run_cli(no_secret, out), 1);
	assert_true(file_has(out, "/nonexistent/secret"));
	f = fopen(conf, "w");
	assert_non_null(f);
	fputs("# comment\npolicy = bin-packing\nthis line is wrong\n", f);
	fclose(f);
	assert_int_equal(run_cli(bad_conf, out), 2);
	assert_true(file_has(out, "coord.conf:3: expected 'key = value'"));
	/* A good file; --heartbeat-ms on the command line overrides it. */
	f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f,
		"listen = 127.0.0.1:0   # any port\npolicy = model-affinity\n"
		"heartbeat_ms = 999\nstate = %s\nsecret = %s\n",
		st2, g_secret_path);
	fclose(f);
	unlink(pf);
	pid = fork();
	if (pid == 0) {
		if (freopen(out, "w", stdout) == NULL)
			_exit(126);
		execl(g_bin, g_bin, "--config", conf, "--heartbeat-ms", "250",
		      "--port-file", pf, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200 && read_port(pf) == 0; i++)
		nap_ms(50);
	assert_true(read_port(pf) > 0);
	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(file_has(out, "policy model-affinity, heartbeat 250 ms"));
	assert_true(file_has(out, "stopped cleanly"));
}

static void test_restart_keeps_state(void **state)
{
	struct pc *c = client(), *a;
	struct placed p[3];
	Genie__SessionList *sl;
	int rc;

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_int_equal(place(c, 0, NULL, NULL, NULL, &p[i]), 0);
	pc_close(&c);
	/* Runtimes hold off, so the restored state is seen as restored. */
	for (int i = 0; i < NRT; i++)
		rt_pause(i, true);
	assert_int_equal(coord_stop(SIGKILL), -1);
	assert_int_equal(coord_start(), 0);
	a = admin();
	assert_int_equal(count_state(a, GENIE__NODE_STATE__NODE_STATE_SUSPECT),
			 NRT);
	sl = list_sessions(a);
	assert_int_equal(sl->n_sessions, 3);
	protobuf_c_message_free_unpacked(&sl->base, NULL);
	for (int i = 0; i < 3; i++)
		assert_true(has_session(a, p[i].session));
	/* They come back: re-register (same ids) and heartbeat. */
	pthread_mutex_lock(&g_rt_lock);
	for (int i = 0; i < NRT; i++) {
		pc_close(&g_rt[i].pc);
		g_rt[i].paused = false;
	}
	pthread_mutex_unlock(&g_rt_lock);
	for (int i = 0; i < NRT; i++) {
		char id[16];

		snprintf(id, sizeof(id), "rt-%d", i);
		wait_state(a, id, GENIE__NODE_STATE__NODE_STATE_UP, 3000);
	}
	/* New sessions do not reuse restored ids. */
	c = client();
	{
		struct placed q;

		rc = place(c, 0, NULL, NULL, NULL, &q);
		assert_int_equal(rc, 0);
		for (int i = 0; i < 3; i++)
			assert_true(q.session != p[i].session);
	}
	release_all(a);
	pc_close(&a);
	pc_close(&c);
}

static void test_wrong_secret(void **state)
{
	struct gn_auth_secret bad = g_secret;
	struct pc *p = NULL, *a;
	struct gn_msg m;
	int rc;

	(void)state;
	bad.bytes[0] ^= 0xff;
	rc = pc_open(GENIE__PEER_ROLE__PEER_ROLE_CLIENT, "intruder", &bad, &p,
		     NULL, 0);
	assert_int_equal(rc, -EACCES);
	assert_non_null(p);
	printf("wrong secret: %s\n", p->msg);
	assert_non_null(strstr(p->msg, "authentication refused"));
	assert_non_null(strstr(p->msg, "intruder"));
	/* And the coordinator closed the connection. */
	rc = gn_conn_recv(p->conn, &m, 2000);
	assert_int_equal(rc, -ECONNRESET);
	pc_close(&p);
	/* Skipping the handshake is refused the same way. */
	{
		char url[64];
		struct pc raw = {0};

		snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", g_port);
		assert_int_equal(gn_connect(url, NULL, 2000, &raw.conn), 0);
		assert_int_equal(
			pc_call(&raw, GENIE__MSG_TYPE__MSG_TYPE_LIST_NODES,
				NULL, GENIE__MSG_TYPE__MSG_TYPE_NODE_LIST,
				&genie__node_list__descriptor, NULL),
			-EACCES);
		assert_int_equal(gn_conn_recv(raw.conn, &m, 2000), -ECONNRESET);
		gn_conn_close(&raw.conn);
	}
	/* Everyone else keeps working. */
	a = admin();
	assert_int_equal(count_state(a, GENIE__NODE_STATE__NODE_STATE_UP), NRT);
	pc_close(&a);
}

static int raw_connect(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_port = htons((uint16_t)g_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		fail_msg("connect: %s", strerror(errno));
	return fd;
}

/* The coordinator closes `fd` within 3 s (EOF or reset). */
static void expect_closed(int fd, const char *what)
{
	struct timeval tv = {3, 0};
	char b[256];
	ssize_t n;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	do {
		n = read(fd, b, sizeof(b)); /* an ErrorReply may come first */
	} while (n > 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		fail_msg("%s: connection still open after 3 s", what);
	close(fd);
}

static void test_bad_frames(void **state)
{
	uint8_t hdr[GN_FRAME_HDR_SIZE], junk[64];
	struct pc *a = admin();
	int fd;

	(void)state;
	/* Oversized: 8 MiB envelope announced, the cap is 1 MiB. */
	fd = raw_connect();
	gn_frame_hdr_encode(hdr, 8u << 20, 0);
	assert_int_equal(write(fd, hdr, sizeof(hdr)), sizeof(hdr));
	expect_closed(fd, "oversized frame");
	/* A payload on a control connection: over its cap of 0. */
	fd = raw_connect();
	gn_frame_hdr_encode(hdr, 10, 1 << 20);
	assert_int_equal(write(fd, hdr, sizeof(hdr)), sizeof(hdr));
	expect_closed(fd, "frame with payload");
	/* Truncated: 100 bytes announced, 10 sent, then the writer stops. */
	fd = raw_connect();
	gn_frame_hdr_encode(hdr, 100, 0);
	assert_int_equal(write(fd, hdr, sizeof(hdr)), sizeof(hdr));
	memset(junk, 0x11, sizeof(junk));
	assert_int_equal(write(fd, junk, 10), 10);
	shutdown(fd, SHUT_WR);
	expect_closed(fd, "truncated frame");
	/* Garbage bytes: no magic. */
	fd = raw_connect();
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 37 + 11);
	assert_int_equal(write(fd, junk, sizeof(junk)), sizeof(junk));
	expect_closed(fd, "garbage");
	/* A good frame around an envelope that does not unpack. */
	fd = raw_connect();
	gn_frame_hdr_encode(hdr, 16, 0);
	assert_int_equal(write(fd, hdr, sizeof(hdr)), sizeof(hdr));
	memset(junk, 0xff, 16);
	assert_int_equal(write(fd, junk, 16), 16);
	expect_closed(fd, "garbage envelope");
	/* The admin connection opened before all this still works. */
	assert_int_equal(count_state(a, GENIE__NODE_STATE__NODE_STATE_UP), NRT);
	pc_close(&a);
}

static void test_metrics(void **state)
{
	struct pc *c = client();
	struct placed p;
	char *m1, *m2, *b;
	char path[128], cmd[256];
	int status;
	FILE *f;

	(void)state;
	b = http_get("/healthz", &status);
	assert_int_equal(status, 200);
	free(b);
	b = http_get("/readyz", &status);
	assert_int_equal(status, 200);
	free(b);
	b = http_get("/nothing", &status);
	assert_int_equal(status, 404);
	free(b);
	m1 = http_get("/metrics", &status);
	assert_int_equal(status, 200);
	assert_int_equal(
		place(c, GENIE__PLACEMENT_POLICY__PLACEMENT_POLICY_LEAST_LOADED,
		      NULL, NULL, NULL, &p),
		0);
	assert_int_equal(place(c, 0, "tpu", NULL, NULL, &p), -ENODEV);
	nap_ms(3 * 30 + 20); /* a few heartbeats */
	m2 = http_get("/metrics", &status);
	assert_int_equal(status, 200);
	assert_true(metric(m2, "genie_nodes{state=\"up\"}") == NRT);
	assert_true(metric(m2, "genie_sessions") >= 1);
	assert_true(
		metric(m2, "genie_placements_total{policy=\"least-loaded\"}") ==
		metric(m1, "genie_placements_total{policy=\"least-loaded\"}") +
			1);
	assert_true(
		metric(m2,
		       "genie_placement_failures_total{reason=\"no_node\"}") >
		metric(m1,
		       "genie_placement_failures_total{reason=\"no_node\"}"));
	assert_true(metric(m2, "genie_heartbeats_total") >
		    metric(m1, "genie_heartbeats_total"));
	assert_true(metric(m2, "genie_auth_failures_total") >= 2);
	assert_true(metric(m2, "genie_bad_frames_total") >= 3);
	assert_true(metric(m2, "genie_plan_latency_seconds_count") > 0);
	assert_true(
		metric(m2, "genie_plan_latency_seconds_bucket{le=\"+Inf\"}") ==
		metric(m2, "genie_plan_latency_seconds_count"));
	/* 150 us samples under 250 us, 2 ms under 2.5 ms: a third each. */
	assert_true(
		metric(m2,
		       "genie_plan_latency_seconds_bucket{le=\"0.00025\"}") *
			3 ==
		metric(m2, "genie_plan_latency_seconds_count"));
	assert_true(metric(m2, "genie_node_memory_used_bytes{node=\"rt-3\"}") ==
		    3.0 * (1 << 30));
	assert_true(metric(m2, "genie_bytes_sent_total{node=\"rt-0\"}") >
		    metric(m1, "genie_bytes_sent_total{node=\"rt-0\"}"));
	assert_non_null(strstr(m2, "# TYPE genie_plan_latency_seconds "
				   "histogram"));
	assert_non_null(strstr(m2,
			       "genie_node_plan_latency_seconds{node=\"rt-1\","
			       "quantile=\"0.5\"}"));
	/* Kernel times by op: conv2d's median between its 1 and 3 ms. */
	assert_true(metric(m2, "genie_op_latency_seconds_count{op=\"conv2d\"}") >
		    metric(m1, "genie_op_latency_seconds_count{op=\"conv2d\"}"));
	assert_true(metric(m2, "genie_op_latency_seconds_count{op=\"conv2d\"}") ==
		    2 * metric(m2, "genie_op_latency_seconds_count{op=\"relu\"}"));
	assert_true(metric(m2, "genie_op_latency_seconds{op=\"conv2d\","
			       "quantile=\"0.99\"}") > 0.0029);
	assert_true(metric(m2, "genie_op_latency_seconds{op=\"relu\","
			       "quantile=\"0.5\"}") < 0.0001);
	assert_null(strstr(m2, "op=\"bad"));
	assert_true(metric(m2, "genie_node_utilization_ratio{node=\"rt-2\"}") ==
		    0.5);
	if (system("command -v promtool >/dev/null 2>&1") == 0) {
		snprintf(path, sizeof(path), "%s/metrics.txt", g_dir);
		f = fopen(path, "w");
		assert_non_null(f);
		fputs(m2, f);
		fclose(f);
		snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
		assert_int_equal(system(cmd), 0);
		printf("promtool check metrics: ok\n");
		unlink(path);
	} else {
		printf("promtool not on PATH (Debian package prometheus): "
		       "skipping the exposition-format check\n");
	}
	free(m1);
	free(m2);
	release(c, p.session);
	pc_close(&c);
}

static int setup(void **state)
{
	FILE *f;

	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/genie-coord-test-XXXXXX");
	if (mkdtemp(g_dir) == NULL)
		return -1;
	snprintf(g_secret_path, sizeof(g_secret_path), "%s/secret", g_dir);
	snprintf(g_state_path, sizeof(g_state_path), "%s/state.sqlite", g_dir);
	f = fopen(g_secret_path, "w");
	if (f == NULL)
		return -1;
	fputs("integration-test-secret-0123456789\n", f);
	fclose(f);
	chmod(g_secret_path, 0600);
	if (gn_auth_load_secret(g_secret_path, &g_secret) != 0)
		return -1;
	if (coord_start() != 0)
		return -1;
	for (int i = 0; i < NRT; i++)
		snprintf(g_rt[i].id, sizeof(g_rt[i].id), "rt-%d", i);
	return pthread_create(&g_hb_thread, NULL, hb_thread, NULL) ? -1 : 0;
}

static int teardown(void **state)
{
	char cmd[128];
	int rc;

	(void)state;
	atomic_store(&g_hb_stop, 1);
	pthread_join(g_hb_thread, NULL);
	for (int i = 0; i < NRT; i++)
		pc_close(&g_rt[i].pc);
	rc = coord_stop(SIGTERM);
	if (rc != 0)
		fprintf(stderr, "genie-coordinator did not stop cleanly: %d\n",
			rc);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", g_dir);
	return rc == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_and_roles),
		cmocka_unit_test(test_policies),
		cmocka_unit_test(test_drain),
		cmocka_unit_test(test_down_and_back),
		cmocka_unit_test(test_wrong_secret),
		cmocka_unit_test(test_bad_frames),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test(test_fair_share),
		cmocka_unit_test(test_breaker),
		cmocka_unit_test(test_cli_and_config),
		cmocka_unit_test(test_restart_keeps_state),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: %s PATH/TO/genie-coordinator\n",
			argv[0]);
		return 2;
	}
	g_bin = argv[1];
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests(tests, setup, teardown);
}
