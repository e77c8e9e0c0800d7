/*
 * genie-ctl: the operator's view of a genie-coordinator.
 *
 * It connects to the coordinator as PEER_ROLE_ADMIN with the shared
 * secret (common/coord_conn.h) and lists nodes and sessions, describes a
 * node, drains and undrains one, refreshes a live view (top), or fetches
 * the coordinator's Prometheus text from its HTTP /metrics. Output is an
 * aligned table for people or, with -o json, one JSON document per
 * command for scripts.
 *
 * Exit status: 0 ok, 1 the command failed (cannot connect, authentication
 * refused, unknown node), 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "coord_conn.h"
#include "genie/coord.pb-c.h"
#include "genie/envelope.pb-c.h"
#include "gn_error.h"
#include "log.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2

#define DEFAULT_COORDINATOR "127.0.0.1:7000"
#define DEFAULT_HTTP "127.0.0.1:9100"

struct ctl {
	const char *coordinator;
	const char *secret;
	struct gn_tls_files tls; /* --tls-*, else $GENIE_TLS_* */
	const char *http;
	bool json;
	long iterations; /* top: 0 until Ctrl-C */
	long interval_ms;
	int timeout_ms;
	struct gn_coord_conn *cc;
};

static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	g_interrupted = 1;
}

static const char usage_text[] =
	"usage: genie-ctl [--coordinator URL] [--secret FILE] [-o table|json] "
	"COMMAND\n"
	"\n"
	"Commands:\n"
	"  nodes                 every node: state, load, sessions, address\n"
	"  describe node ID      one node in full (devices, data planes, "
	"labels)\n"
	"  sessions              every placed session\n"
	"  drain ID              place no new sessions on node ID (running "
	"ones finish)\n"
	"  undrain ID            take node ID back into placement\n"
	"  top                   nodes and sessions, refreshed every second "
	"until\n"
	"                        Ctrl-C (--iterations N: N refreshes)\n"
	"  metrics               the coordinator's Prometheus text from "
	"its HTTP\n"
	"                        /metrics (--http HOST:PORT)\n"
	"\n"
	"Options:\n"
	"  -c, --coordinator URL  HOST:PORT or tcp://HOST:PORT (default: "
	"$GENIE_COORDINATOR,\n"
	"                         else " DEFAULT_COORDINATOR ")\n"
	"  -s, --secret FILE      shared secret (default: "
	"$GENIE_SECRET_FILE)\n"
	"      --tls-ca FILE      talk TLS; verify the coordinator "
	"against this CA\n"
	"                         (default: $GENIE_TLS_CA)\n"
	"      --tls-cert FILE    our client certificate (default: "
	"$GENIE_TLS_CERT)\n"
	"      --tls-key FILE     its key (default: $GENIE_TLS_KEY)\n"
	"  -o, --output FORMAT    table (default) or json\n"
	"      --http URL         HTTP endpoint for metrics (default: "
	"$GENIE_COORDINATOR_HTTP,\n"
	"                         else " DEFAULT_HTTP ")\n"
	"      --iterations N     top: refresh N times, then exit\n"
	"      --interval MS      top: refresh period (default 1000)\n"
	"      --timeout MS       per request (default 5000)\n"
	"  -h, --help             this text\n"
	"\n"
	"Exit status: 0 ok, 1 the command failed, 2 usage error.\n";

static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("genie-ctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(genie-ctl --help for usage)\n", stderr);
	return EXIT_USAGE;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("genie-ctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAIL;
}

/* ---- output helpers ---------------------------------------------------- */

#define TABLE_MAX_COLS 12
#define TABLE_MAX_ROWS 1024

struct table {
	int ncols, nrows;
	char *cell[TABLE_MAX_ROWS + 1][TABLE_MAX_COLS]; /* row 0: header */
};

static void table_init(struct table *t, int ncols, ...)
{
	va_list ap;

	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	va_start(ap, ncols);
	for (int i = 0; i < ncols; i++)
		t->cell[0][i] = strdup(va_arg(ap, const char *));
	va_end(ap);
}

/* Add a row of `ncols` printf'd cells: each argument is one cell. */
static void table_row(struct table *t, ...)
{
	va_list ap;
	int r;

	if (t->nrows >= TABLE_MAX_ROWS)
		return;
	r = ++t->nrows;
	va_start(ap, t);
	for (int i = 0; i < t->ncols; i++)
		t->cell[r][i] = strdup(va_arg(ap, const char *));
	va_end(ap);
}

static void table_print(struct table *t)
{
	size_t w[TABLE_MAX_COLS] = {0};

	for (int r = 0; r <= t->nrows; r++)
		for (int i = 0; i < t->ncols; i++) {
			size_t n = strlen(t->cell[r][i] ? t->cell[r][i] : "");

			if (n > w[i])
				w[i] = n;
		}
	for (int r = 0; r <= t->nrows; r++) {
		for (int i = 0; i < t->ncols; i++) {
			const char *s = t->cell[r][i] ? t->cell[r][i] : "";

			if (i == t->ncols - 1)
				printf("%s", s);
			else
				printf("%-*s  ", (int)w[i], s);
		}
		putchar('\n');
	}
	for (int r = 0; r <= t->nrows; r++)
		for (int i = 0; i < t->ncols; i++)
			free(t->cell[r][i]);
	t->nrows = 0;
}

/* A JSON string literal of `s`. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", f);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static const char *state_name(Genie__NodeState s)
{
	switch (s) {
	case GENIE__NODE_STATE__NODE_STATE_UP: return "UP";
	case GENIE__NODE_STATE__NODE_STATE_SUSPECT: return "SUSPECT";
	case GENIE__NODE_STATE__NODE_STATE_DOWN: return "DOWN";
	case GENIE__NODE_STATE__NODE_STATE_DRAINED: return "DRAINED";
	default: return "UNKNOWN";
	}
}

/* "1.5 GiB": binary units, one decimal. */
static const char *fmt_bytes(char *buf, size_t len, uint64_t b)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)b;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", b);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

/* "850ms", "12.3s", "4m05s", "2h07m". */
static const char *fmt_age(char *buf, size_t len, uint64_t ms)
{
	if (ms < 1000)
		snprintf(buf, len, "%" PRIu64 "ms", ms);
	else if (ms < 60000)
		snprintf(buf, len, "%.1fs", (double)ms / 1000);
	else if (ms < 3600000)
		snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", ms / 60000,
			 ms / 1000 % 60);
	else
		snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m", ms / 3600000,
			 ms / 60000 % 60);
	return buf;
}

static const char *node_address(const Genie__NodeInfo *n)
{
	return n->n_data_planes > 0 ? n->data_planes[0]->address : "-";
}

static const char *node_backend(const Genie__NodeInfo *n)
{
	return n->n_devices > 0 ? n->devices[0]->kind : "-";
}

/* ---- coordinator calls -------------------------------------------------- */

static int connect_coord(struct ctl *c)
{
	struct gn_auth_secret *secret;
	int rc;

	secret = calloc(1, sizeof(*secret));
	if (secret == NULL)
		return fail("out of memory");
	rc = gn_coord_load_secret(c->secret, secret);
	if (rc < 0) {
		free(secret);
		return fail("%s", gn_last_error());
	}
	gn_coord_tls_from_env(&c->tls);
	rc = gn_coord_connect_tls(c->coordinator, rc == 1 ? secret : NULL,
				  &c->tls, GENIE__PEER_ROLE__PEER_ROLE_ADMIN,
				  "genie-ctl", c->timeout_ms, &c->cc);
	explicit_bzero(secret, sizeof(*secret));
	free(secret);
	if (rc != 0)
		return fail("%s", gn_last_error());
	return 0;
}

static int list_nodes(struct ctl *c, Genie__NodeList **out)
{
	Genie__ListNodes req = GENIE__LIST_NODES__INIT;

	return gn_coord_call(c->cc, GENIE__MSG_TYPE__MSG_TYPE_LIST_NODES,
			     &req.base, GENIE__MSG_TYPE__MSG_TYPE_NODE_LIST,
			     &genie__node_list__descriptor,
			     (ProtobufCMessage **)out);
}

static int list_sessions(struct ctl *c, Genie__SessionList **out)
{
	Genie__ListSessions req = GENIE__LIST_SESSIONS__INIT;

	return gn_coord_call(c->cc, GENIE__MSG_TYPE__MSG_TYPE_LIST_SESSIONS,
			     &req.base, GENIE__MSG_TYPE__MSG_TYPE_SESSION_LIST,
			     &genie__session_list__descriptor,
			     (ProtobufCMessage **)out);
}

/* A failed call: name the node for -ENOENT, else the coordinator's words. */
static int call_failed(int rc, const char *node)
{
	if (rc == -ENOENT && node != NULL)
		return fail("unknown node '%s' (genie-ctl nodes lists them)",
			    node);
	return fail("%s (%s)", gn_last_error(), gn_strerror(rc));
}

/* ---- printing ----------------------------------------------------------- */

static void print_nodes_table(const Genie__NodeList *l)
{
	struct table t;
	char mem[64], b1[32], b2[32], age[32], ses[16], act[16], q[16];

	table_init(&t, 10, "NODE", "STATE", "SESSIONS", "ACTIVE", "QUEUE",
		   "MEMORY", "BACKEND", "HEARTBEAT", "BREAKER", "ADDRESS");
	for (size_t i = 0; i < l->n_nodes; i++) {
		const Genie__NodeInfo *n = l->nodes[i];
		const Genie__NodeLoad *ld = n->load;

		snprintf(ses, sizeof(ses), "%u", n->sessions);
		snprintf(act, sizeof(act), "%u", ld ? ld->active_sessions : 0);
		snprintf(q, sizeof(q), "%u", ld ? ld->queue_depth : 0);
		snprintf(mem, sizeof(mem), "%s / %s",
			 fmt_bytes(b1, sizeof(b1),
				   ld ? ld->memory_used_bytes : 0),
			 fmt_bytes(b2, sizeof(b2),
				   ld ? ld->memory_total_bytes : 0));
		fmt_age(age, sizeof(age), n->last_heartbeat_age_ms);
		table_row(&t, n->node_id, state_name(n->state), ses, act, q,
			  mem, node_backend(n), age,
			  n->breaker_open ? "open" : "-", node_address(n));
	}
	table_print(&t);
}

static void json_load(FILE *f, const Genie__NodeLoad *ld)
{
	fprintf(f,
		"{\"active_sessions\": %u, \"queue_depth\": %u, "
		"\"memory_used_bytes\": %" PRIu64
		", \"memory_total_bytes\": %" PRIu64
		", \"device_utilization\": %g}",
		ld ? ld->active_sessions : 0, ld ? ld->queue_depth : 0,
		ld ? ld->memory_used_bytes : 0, ld ? ld->memory_total_bytes : 0,
		ld && isfinite(ld->device_utilization) ? ld->device_utilization
						       : 0.0);
}

static void json_node(FILE *f, const Genie__NodeInfo *n)
{
	fputs("{\"node_id\": ", f);
	json_str(f, n->node_id);
	fputs(", \"state\": ", f);
	json_str(f, state_name(n->state));
	fprintf(f, ", \"sessions\": %u, \"breaker_open\": %s", n->sessions,
		n->breaker_open ? "true" : "false");
	fprintf(f, ", \"last_heartbeat_age_ms\": %" PRIu64,
		n->last_heartbeat_age_ms);
	fputs(", \"load\": ", f);
	json_load(f, n->load);
	fputs(", \"devices\": [", f);
	for (size_t i = 0; i < n->n_devices; i++) {
		fputs(i ? ", {\"kind\": " : "{\"kind\": ", f);
		json_str(f, n->devices[i]->kind);
		fputs(", \"name\": ", f);
		json_str(f, n->devices[i]->name);
		fprintf(f, ", \"memory_bytes\": %" PRIu64 "}",
			n->devices[i]->memory_bytes);
	}
	fputs("], \"data_planes\": [", f);
	for (size_t i = 0; i < n->n_data_planes; i++) {
		fputs(i ? ", {\"kind\": " : "{\"kind\": ", f);
		json_str(f, n->data_planes[i]->kind);
		fputs(", \"address\": ", f);
		json_str(f, n->data_planes[i]->address);
		fputc('}', f);
	}
	fputs("], \"labels\": {", f);
	for (size_t i = 0; i < n->n_labels; i++) {
		if (i)
			fputs(", ", f);
		json_str(f, n->labels[i]->key);
		fputs(": ", f);
		json_str(f, n->labels[i]->value);
	}
	fputs("}}", f);
}

static void print_nodes_json(const Genie__NodeList *l)
{
	fputs("{\"nodes\": [", stdout);
	for (size_t i = 0; i < l->n_nodes; i++) {
		if (i)
			fputs(", ", stdout);
		json_node(stdout, l->nodes[i]);
	}
	fputs("]}\n", stdout);
}

static void print_sessions_table(const Genie__SessionList *l)
{
	struct table t;
	char id[32], prio[16], age[32];

	table_init(&t, 5, "SESSION", "NODE", "TENANT", "PRIORITY", "AGE");
	for (size_t i = 0; i < l->n_sessions; i++) {
		const Genie__SessionInfo *s = l->sessions[i];

		snprintf(id, sizeof(id), "%" PRIu64, s->session_id);
		snprintf(prio, sizeof(prio), "%u", s->priority);
		table_row(&t, id, s->node_id, s->tenant[0] ? s->tenant : "-",
			  prio, fmt_age(age, sizeof(age), s->age_ms));
	}
	table_print(&t);
}

static void print_sessions_json(const Genie__SessionList *l)
{
	fputs("{\"sessions\": [", stdout);
	for (size_t i = 0; i < l->n_sessions; i++) {
		const Genie__SessionInfo *s = l->sessions[i];

		fprintf(stdout, "%s{\"session_id\": %" PRIu64 ", \"node_id\": ",
			i ? ", " : "", s->session_id);
		json_str(stdout, s->node_id);
		fputs(", \"tenant\": ", stdout);
		json_str(stdout, s->tenant);
		fprintf(stdout, ", \"priority\": %u, \"age_ms\": %" PRIu64 "}",
			s->priority, s->age_ms);
	}
	fputs("]}\n", stdout);
}

static void print_node_detail(const Genie__NodeInfo *n)
{
	const Genie__NodeLoad *ld = n->load;
	char b1[32], b2[32], age[32];

	printf("Node:            %s\n", n->node_id);
	printf("State:           %s%s\n", state_name(n->state),
	       n->breaker_open ? " (circuit breaker open)" : "");
	printf("Last heartbeat:  %s ago\n",
	       fmt_age(age, sizeof(age), n->last_heartbeat_age_ms));
	printf("Sessions:        %u placed, %u active on the runtime\n",
	       n->sessions, ld ? ld->active_sessions : 0);
	printf("Queue depth:     %u\n", ld ? ld->queue_depth : 0);
	printf("Memory:          %s used of %s\n",
	       fmt_bytes(b1, sizeof(b1), ld ? ld->memory_used_bytes : 0),
	       fmt_bytes(b2, sizeof(b2), ld ? ld->memory_total_bytes : 0));
	printf("Devices:\n");
	for (size_t i = 0; i < n->n_devices; i++)
		printf("  %-6s %s, %s\n", n->devices[i]->kind,
		       n->devices[i]->name,
		       fmt_bytes(b1, sizeof(b1), n->devices[i]->memory_bytes));
	printf("Data planes:\n");
	for (size_t i = 0; i < n->n_data_planes; i++)
		printf("  %-6s %s\n", n->data_planes[i]->kind,
		       n->data_planes[i]->address);
	if (n->n_labels > 0) {
		printf("Labels:\n");
		for (size_t i = 0; i < n->n_labels; i++)
			printf("  %s=%s\n", n->labels[i]->key,
			       n->labels[i]->value);
	}
}

/* ---- commands ----------------------------------------------------------- */

static int cmd_nodes(struct ctl *c)
{
	Genie__NodeList *l;
	int rc = list_nodes(c, &l);

	if (rc != 0)
		return call_failed(rc, NULL);
	if (c->json)
		print_nodes_json(l);
	else
		print_nodes_table(l);
	protobuf_c_message_free_unpacked(&l->base, NULL);
	return 0;
}

static int cmd_sessions(struct ctl *c)
{
	Genie__SessionList *l;
	int rc = list_sessions(c, &l);

	if (rc != 0)
		return call_failed(rc, NULL);
	if (c->json)
		print_sessions_json(l);
	else
		print_sessions_table(l);
	protobuf_c_message_free_unpacked(&l->base, NULL);
	return 0;
}

static int cmd_describe(struct ctl *c, const char *id)
{
	Genie__DescribeNode req = GENIE__DESCRIBE_NODE__INIT;
	Genie__NodeList *l;
	int rc;

	req.node_id = (char *)id;
	rc = gn_coord_call(c->cc, GENIE__MSG_TYPE__MSG_TYPE_DESCRIBE_NODE,
			   &req.base, GENIE__MSG_TYPE__MSG_TYPE_NODE_LIST,
			   &genie__node_list__descriptor,
			   (ProtobufCMessage **)&l);
	if (rc != 0)
		return call_failed(rc, id);
	if (l->n_nodes == 0) {
		protobuf_c_message_free_unpacked(&l->base, NULL);
		return call_failed(-ENOENT, id);
	}
	if (c->json) {
		json_node(stdout, l->nodes[0]);
		putchar('\n');
	} else {
		print_node_detail(l->nodes[0]);
	}
	protobuf_c_message_free_unpacked(&l->base, NULL);
	return 0;
}

static int cmd_drain(struct ctl *c, const char *id, bool drain)
{
	Genie__DrainNode req = GENIE__DRAIN_NODE__INIT;
	Genie__CoordAck *ack;
	int rc;

	req.node_id = (char *)id;
	req.drain = drain;
	rc = gn_coord_call(c->cc, GENIE__MSG_TYPE__MSG_TYPE_DRAIN, &req.base,
			   GENIE__MSG_TYPE__MSG_TYPE_COORD_ACK,
			   &genie__coord_ack__descriptor,
			   (ProtobufCMessage **)&ack);
	if (rc != 0)
		return call_failed(rc, id);
	if (c->json) {
		fputs("{\"node_id\": ", stdout);
		json_str(stdout, id);
		printf(", \"drained\": %s, \"detail\": ",
		       drain ? "true" : "false");
		json_str(stdout, ack->detail);
		fputs("}\n", stdout);
	} else {
		printf("node %s %s\n", id,
		       drain ? "drained: no new sessions are placed on it"
			     : "undrained: it takes new sessions again");
	}
	protobuf_c_message_free_unpacked(&ack->base, NULL);
	return 0;
}

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	/* A signal (Ctrl-C) cuts it short; the caller checks. */
	nanosleep(&ts, NULL);
}

static int cmd_top(struct ctl *c)
{
	bool tty = isatty(STDOUT_FILENO) && !c->json;
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigaction(SIGINT, &sa, NULL);
	for (long it = 0; !g_interrupted; it++) {
		Genie__NodeList *nl;
		Genie__SessionList *sl;
		uint32_t up = 0, placed = 0;
		time_t now = time(NULL);
		char when[32];
		int rc;

		if (c->iterations > 0 && it >= c->iterations)
			break;
		if (it > 0)
			nap_ms(c->interval_ms);
		if (g_interrupted)
			break;
		rc = list_nodes(c, &nl);
		if (rc != 0 && g_interrupted)
			break; /* Ctrl-C cut the call short */
		if (rc != 0)
			return call_failed(rc, NULL);
		rc = list_sessions(c, &sl);
		if (rc != 0) {
			protobuf_c_message_free_unpacked(&nl->base, NULL);
			return call_failed(rc, NULL);
		}
		if (c->json) {
			/* One object per refresh, one per line. */
			printf("{\"time\": %lld, \"nodes\": [", (long long)now);
			for (size_t i = 0; i < nl->n_nodes; i++) {
				if (i)
					fputs(", ", stdout);
				json_node(stdout, nl->nodes[i]);
			}
			printf("], \"sessions\": %zu}\n", sl->n_sessions);
		} else {
			for (size_t i = 0; i < nl->n_nodes; i++) {
				up += nl->nodes[i]->state ==
				      GENIE__NODE_STATE__NODE_STATE_UP;
				placed += nl->nodes[i]->sessions;
			}
			strftime(when, sizeof(when), "%H:%M:%S",
				 localtime(&now));
			if (tty)
				fputs("\033[H\033[2J", stdout);
			else if (it > 0)
				putchar('\n');
			printf("genie-ctl top - %s - coordinator %s%s%s - "
			       "%zu nodes, %u up, %zu sessions\n\n",
			       when, c->cc->addr,
			       c->cc->coordinator_name[0] ? " " : "",
			       c->cc->coordinator_name, nl->n_nodes, up,
			       sl->n_sessions);
			print_nodes_table(nl);
			(void)placed;
		}
		fflush(stdout);
		protobuf_c_message_free_unpacked(&nl->base, NULL);
		protobuf_c_message_free_unpacked(&sl->base, NULL);
	}
	return 0;
}

/* GET http://HOST:PORT/metrics and print the body. */
static int cmd_metrics(struct ctl *c)
{
	const char *url = c->http;
	char host[128], portstr[8], req[256];
	struct addrinfo hints, *ai = NULL;
	uint16_t port;
	char *buf = NULL, *body;
	size_t len = 0, cap = 0;
	int fd = -1, rc, status = 0;

	if (strncmp(url, "http://", 7) == 0)
		url += 7;
	snprintf(req, sizeof(req), "%s", url);
	if (strchr(req, '/') != NULL)
		*strchr(req, '/') = '\0'; /* a path is ours to choose */
	if (gn_addr_split(req, host, sizeof(host), &port) != 0)
		return usage_error("--http '%s': expected HOST:PORT", c->http);
	snprintf(portstr, sizeof(portstr), "%u", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, portstr, &hints, &ai);
	if (rc != 0)
		return fail("cannot resolve '%s': %s", host, gai_strerror(rc));
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		rc = errno;
		freeaddrinfo(ai);
		if (fd >= 0)
			close(fd);
		return fail("cannot connect to coordinator HTTP endpoint at "
			    "%s:%u: %s",
			    host, port, strerror(rc));
	}
	freeaddrinfo(ai);
	snprintf(req, sizeof(req),
		 "GET /metrics HTTP/1.0\r\nHost: %s:%u\r\nAccept: "
		 "text/plain\r\nConnection: close\r\n\r\n",
		 host, port);
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
		close(fd);
		return fail("%s:%u: cannot send the request: %s", host, port,
			    strerror(errno));
	}
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (len + 4096 + 1 > cap) {
			char *nb = realloc(buf, cap ? cap * 2 : 65536);

			if (nb == NULL) {
				free(buf);
				close(fd);
				return fail("out of memory");
			}
			buf = nb;
			cap = cap ? cap * 2 : 65536;
		}
		if (poll(&p, 1, c->timeout_ms) <= 0) {
			free(buf);
			close(fd);
			return fail("%s:%u: no answer within %d ms", host, port,
				    c->timeout_ms);
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n < 0) {
			free(buf);
			close(fd);
			return fail("%s:%u: %s", host, port, strerror(errno));
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (buf == NULL)
		return fail("%s:%u: empty answer", host, port);
	buf[len] = '\0';
	if (sscanf(buf, "HTTP/%*s %d", &status) != 1 ||
	    (body = strstr(buf, "\r\n\r\n")) == NULL) {
		free(buf);
		return fail("%s:%u: not an HTTP answer", host, port);
	}
	if (status != 200) {
		free(buf);
		return fail("%s:%u/metrics answered HTTP %d", host, port,
			    status);
	}
	body += 4;
	if (c->json) {
		/* Samples as {"name{labels}": value}; comments dropped. */
		bool first = true;

		fputs("{", stdout);
		for (char *line = strtok(body, "\n"); line;
		     line = strtok(NULL, "\n")) {
			char *sp = strrchr(line, ' ');

			if (line[0] == '#' || sp == NULL)
				continue;
			char *end;
			double v;

			*sp = '\0';
			fputs(first ? "" : ", ", stdout);
			json_str(stdout, line);
			/* JSON has no NaN or Inf: those become strings. */
			v = strtod(sp + 1, &end);
			if (*end == '\0' && end != sp + 1 && isfinite(v))
				printf(": %s", sp + 1);
			else {
				fputs(": ", stdout);
				json_str(stdout, sp + 1);
			}
			first = false;
		}
		fputs("}\n", stdout);
	} else {
		fputs(body, stdout);
	}
	free(buf);
	return 0;
}

static int parse_long(const char *opt, const char *s, long min, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || *out < min) {
		usage_error("%s expects a number >= %ld, got '%s'", opt, min,
			    s);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	enum {
		OPT_HTTP = 256,
		OPT_ITER,
		OPT_INTERVAL,
		OPT_TIMEOUT,
		OPT_TLS_CA,
		OPT_TLS_CERT,
		OPT_TLS_KEY,
	};
	static const struct option lo[] = {
		{"coordinator", required_argument, NULL, 'c'},
		{"secret", required_argument, NULL, 's'},
		{"output", required_argument, NULL, 'o'},
		{"http", required_argument, NULL, OPT_HTTP},
		{"iterations", required_argument, NULL, OPT_ITER},
		{"interval", required_argument, NULL, OPT_INTERVAL},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"tls-ca", required_argument, NULL, OPT_TLS_CA},
		{"tls-cert", required_argument, NULL, OPT_TLS_CERT},
		{"tls-key", required_argument, NULL, OPT_TLS_KEY},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct ctl c = {
		.iterations = 0,
		.interval_ms = 1000,
		.timeout_ms = 5000,
	};
	const char *cmd, *arg = NULL;
	long v;
	int opt, rc;

	c.coordinator = getenv("GENIE_COORDINATOR");
	if (c.coordinator == NULL || *c.coordinator == '\0')
		c.coordinator = DEFAULT_COORDINATOR;
	c.http = getenv("GENIE_COORDINATOR_HTTP");
	if (c.http == NULL || *c.http == '\0')
		c.http = DEFAULT_HTTP;
	if (getenv("GENIE_LOG") == NULL)
		gn_log_set_levels("err");
	/* GNU getopt permutes: "top --iterations 3" works as well. */
	while ((opt = getopt_long(argc, argv, "c:s:o:h", lo, NULL)) != -1) {
		switch (opt) {
		case 'c': c.coordinator = optarg; break;
		case 's': c.secret = optarg; break;
		case OPT_TLS_CA: c.tls.ca = optarg; break;
		case OPT_TLS_CERT: c.tls.cert = optarg; break;
		case OPT_TLS_KEY: c.tls.key = optarg; break;
		case 'o':
			if (strcmp(optarg, "json") == 0)
				c.json = true;
			else if (strcmp(optarg, "table") == 0)
				c.json = false;
			else
				return usage_error("-o expects table or json, "
						   "got '%s'",
						   optarg);
			break;
		case OPT_HTTP: c.http = optarg; break;
		case OPT_ITER:
			if (parse_long("--iterations", optarg, 1, &v) != 0)
				return EXIT_USAGE;
			c.iterations = v;
			break;
		case OPT_INTERVAL:
			if (parse_long("--interval", optarg, 10, &v) != 0)
				return EXIT_USAGE;
			c.interval_ms = v;
			break;
		case OPT_TIMEOUT:
			if (parse_long("--timeout", optarg, 1, &v) != 0)
				return EXIT_USAGE;
			c.timeout_ms = (int)v;
			break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return usage_error("no command given (nodes, describe node ID, "
				   "sessions, drain ID, undrain ID, top, "
				   "metrics)");
	cmd = argv[optind++];
	if (strcmp(cmd, "describe") == 0) {
		/* "describe node ID"; "describe ID" is accepted too. */
		if (optind < argc && strcmp(argv[optind], "node") == 0 &&
		    optind + 1 < argc)
			optind++;
		if (optind >= argc)
			return usage_error("describe: expected 'describe node "
					   "ID'");
		arg = argv[optind++];
	} else if (strcmp(cmd, "drain") == 0 || strcmp(cmd, "undrain") == 0) {
		if (optind >= argc)
			return usage_error("%s: expected a node id", cmd);
		arg = argv[optind++];
	} else if (strcmp(cmd, "nodes") != 0 && strcmp(cmd, "sessions") != 0 &&
		   strcmp(cmd, "top") != 0 && strcmp(cmd, "metrics") != 0) {
		return usage_error("unknown command '%s'", cmd);
	}
	if (optind < argc)
		return usage_error("%s: unexpected argument '%s'", cmd,
				   argv[optind]);
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(cmd, "metrics") == 0)
		return cmd_metrics(&c);

	rc = connect_coord(&c);
	if (rc != 0)
		return rc;
	if (strcmp(cmd, "nodes") == 0)
		rc = cmd_nodes(&c);
	else if (strcmp(cmd, "sessions") == 0)
		rc = cmd_sessions(&c);
	else if (strcmp(cmd, "describe") == 0)
		rc = cmd_describe(&c, arg);
	else if (strcmp(cmd, "drain") == 0)
		rc = cmd_drain(&c, arg, true);
	else if (strcmp(cmd, "undrain") == 0)
		rc = cmd_drain(&c, arg, false);
	else
		rc = cmd_top(&c);
	gn_coord_close(&c.cc);
	return rc;
}
