/*
 * The coordinator's HTTP endpoint (libmicrohttpd, its own thread pool):
 * GET /metrics in the Prometheus text exposition format (prefix genie_,
 * base units, counters ending in _total, latencies as histograms),
 * /healthz (200 while the process serves) and /readyz (200 once the state
 * is loaded and the control listener is up).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "clock.h"
#include "coord_internal.h"
#include "gn_error.h"

/* A growing text buffer; on no memory it stops growing and says so. */
struct buf {
	char *p;
	size_t len, cap;
	int oom;
};

static void __attribute__((format(printf, 2, 3)))
put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = 2 * b->cap + (size_t)n + 1;
		char *np = realloc(b->p, cap);

		if (np == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
}

/* Latency histogram bounds, seconds. */
static const double k_le[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
			      0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
			      1,      2.5,     5,      10};

/* One labelled series of a summary: quantiles, _sum and _count. */
static void summary(struct buf *b, const char *name, const char *label,
		    const char *value, const struct gn_sketch *sk)
{
	static const double qs[] = {0.5, 0.9, 0.99};

	for (int q = 0; q < 3; q++)
		put(b, "%s{%s=\"%s\",quantile=\"%g\"} %.9f\n", name, label,
		    value, qs[q], gn_sketch_quantile(sk, qs[q]) / 1e9);
	put(b, "%s_sum{%s=\"%s\"} %.9f\n", name, label, value, sk->sum / 1e9);
	put(b, "%s_count{%s=\"%s\"} %llu\n", name, label, value,
	    (unsigned long long)sk->count);
}

static void family(struct buf *b, const char *name, const char *type,
		   const char *help)
{
	put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

char *coord_metrics_render(struct gn_coordinator *c, size_t *len)
{
	struct buf b = {.cap = 16384};
	uint32_t states[4] = {0}; /* up, suspect, down, drained */
	const char *const state_names[4] = {"up", "suspect", "down", "drained"};
	const char *const fail_names[COORD_FAIL_N] = {"no_node", "no_room",
						      "other"};

	b.p = malloc(b.cap);
	if (b.p == NULL)
		return NULL;
	b.p[0] = '\0';
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < c->nnodes; i++) {
		const struct coord_node *n = &c->nodes[i];

		if (n->drained && n->state == GN_PLACE_UP)
			states[3]++;
		else
			states[n->state - 1]++;
	}
	family(&b, "genie_nodes", "gauge", "Runtimes known, by state.");
	for (int i = 0; i < 4; i++)
		put(&b, "genie_nodes{state=\"%s\"} %u\n", state_names[i],
		    states[i]);
	family(&b, "genie_sessions", "gauge",
	       "Client sessions placed and not yet released or ended.");
	put(&b, "genie_sessions %zu\n", c->nsessions);
	family(&b, "genie_plan_latency_seconds", "histogram",
	       "Plan latency reported by runtimes in heartbeats.");
	for (size_t i = 0; i < sizeof(k_le) / sizeof(k_le[0]); i++)
		put(&b, "genie_plan_latency_seconds_bucket{le=\"%g\"} %llu\n",
		    k_le[i],
		    (unsigned long long)gn_sketch_count_le(&c->lat_all,
							   k_le[i] * 1e9));
	put(&b, "genie_plan_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
	    (unsigned long long)c->lat_all.count);
	put(&b, "genie_plan_latency_seconds_sum %.9f\n", c->lat_all.sum / 1e9);
	put(&b, "genie_plan_latency_seconds_count %llu\n",
	    (unsigned long long)c->lat_all.count);

	family(&b, "genie_node_plan_latency_seconds", "summary",
	       "Per-runtime plan latency quantiles (sketch, 1% relative "
	       "error).");
	for (int i = 0; i < c->nnodes; i++)
		summary(&b, "genie_node_plan_latency_seconds", "node",
			c->nodes[i].id, &c->nodes[i].lat);
	family(&b, "genie_op_latency_seconds", "summary",
	       "Kernel latency by op over all runtimes (sketch, 1% relative "
	       "error; a fused chain counts under its first op).");
	for (size_t i = 0; i < c->n_op_lat; i++)
		summary(&b, "genie_op_latency_seconds", "op", c->op_lat[i].op,
			&c->op_lat[i].lat);
#define PER_NODE(name, type, help, fmt, expr)                                 \
	do {                                                                  \
		family(&b, name, type, help);                                 \
		for (int i = 0; i < c->nnodes; i++) {                         \
			const struct coord_node *n = &c->nodes[i];            \
			put(&b, name "{node=\"%s\"} " fmt "\n", n->id, expr); \
		}                                                             \
	} while (0)
	PER_NODE("genie_node_up", "gauge",
		 "1 when the runtime is up (heartbeating), else 0.", "%d",
		 n->state == GN_PLACE_UP);
	PER_NODE("genie_node_sessions", "gauge",
		 "Sessions placed on the runtime.", "%u", n->sessions);
	PER_NODE("genie_node_queue_depth", "gauge",
		 "Requests queued on the runtime.", "%u", n->queue_depth);
	PER_NODE("genie_node_memory_used_bytes", "gauge",
		 "Device memory in use on the runtime.", "%llu",
		 (unsigned long long)n->mem_used);
	PER_NODE("genie_node_memory_total_bytes", "gauge",
		 "Device memory of the runtime.", "%llu",
		 (unsigned long long)n->mem_total);
	PER_NODE("genie_node_utilization_ratio", "gauge",
		 "Device utilization over the last interval, 0..1.", "%g",
		 n->utilization);
	PER_NODE("genie_node_breaker_open", "gauge",
		 "1 while the runtime's circuit breaker is open.", "%d",
		 n->breaker_open);
	PER_NODE("genie_node_heartbeats_total", "counter",
		 "Heartbeats received from the runtime.", "%llu",
		 (unsigned long long)n->heartbeats);
	PER_NODE("genie_bytes_sent_total", "counter",
		 "Bytes the runtime sent, as it reports.", "%llu",
		 (unsigned long long)n->bytes_sent);
	PER_NODE("genie_bytes_received_total", "counter",
		 "Bytes the runtime received, as it reports.", "%llu",
		 (unsigned long long)n->bytes_received);
	PER_NODE("genie_node_plans_executed_total", "counter",
		 "Plans the runtime executed, as it reports.", "%llu",
		 (unsigned long long)n->plans_executed);
#undef PER_NODE
	pthread_mutex_unlock(&c->lock);

	family(&b, "genie_placements_total", "counter",
	       "Sessions placed, by policy.");
	for (int p = GN_POLICY_LEAST_LOADED; p <= GN_POLICY_MODEL_AFFINITY; p++)
		put(&b, "genie_placements_total{policy=\"%s\"} %llu\n",
		    gn_place_policy_name(p),
		    (unsigned long long)atomic_load(&c->placements[p]));
	family(&b, "genie_placement_failures_total", "counter",
	       "Placement requests refused, by reason.");
	for (int i = 0; i < COORD_FAIL_N; i++)
		put(&b, "genie_placement_failures_total{reason=\"%s\"} %llu\n",
		    fail_names[i],
		    (unsigned long long)atomic_load(&c->failures[i]));
#define COUNTER(name, help, field)                               \
	do {                                                     \
		family(&b, name, "counter", help);               \
		put(&b, name " %llu\n",                          \
		    (unsigned long long)atomic_load(&c->field)); \
	} while (0)
	COUNTER("genie_heartbeats_total", "Heartbeats received.",
		heartbeats_total);
	COUNTER("genie_auth_failures_total",
		"Connections refused at authentication.", auth_failures);
	COUNTER("genie_bad_frames_total",
		"Connections closed for an oversized, truncated or garbage "
		"frame.",
		bad_frames);
	COUNTER("genie_connections_total", "Control connections accepted.",
		connections);
	COUNTER("genie_sessions_released_total", "Sessions released.",
		releases);
	COUNTER("genie_sessions_ended_total",
		"Sessions ended because their runtime went down.",
		sessions_ended);
#undef COUNTER
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status,
			       const char *type, char *body, size_t len,
			       enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result ret;

	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn,
				    unsigned status, const char *msg)
{
	return respond(conn, status, "text/plain; charset=utf-8", (char *)msg,
		       strlen(msg), MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_len, void **con_cls)
{
	struct gn_coordinator *c = cls;

	(void)version;
	(void)upload;
	(void)upload_len;
	(void)con_cls;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
				    "only GET\n");
	if (strcmp(url, "/metrics") == 0) {
		size_t len;
		char *body = coord_metrics_render(c, &len);

		if (body == NULL)
			return respond_text(conn,
					    MHD_HTTP_INTERNAL_SERVER_ERROR,
					    "no memory\n");
		return respond(conn, MHD_HTTP_OK,
			       "text/plain; version=0.0.4; charset=utf-8", body,
			       len, MHD_RESPMEM_MUST_FREE);
	}
	if (strcmp(url, "/healthz") == 0)
		return respond_text(conn, MHD_HTTP_OK, "ok\n");
	if (strcmp(url, "/readyz") == 0) {
		if (atomic_load(&c->ready))
			return respond_text(conn, MHD_HTTP_OK, "ready\n");
		return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				    "not ready\n");
	}
	return respond_text(conn, MHD_HTTP_NOT_FOUND,
			    "not found: try /metrics, /healthz, /readyz\n");
}

int coord_http_start(struct gn_coordinator *c)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	char host[64];
	uint16_t port;
	const union MHD_DaemonInfo *info;
	int rc = gn_addr_split(c->opts.http, host, sizeof(host), &port);

	if (rc != 0)
		return rc;
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return gn_error_set(-EINVAL,
				    "http: '%s' is not an IPv4 address", host);
	sa.sin_port = htons(port);
	c->http = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, port, NULL,
		NULL, on_request, c, MHD_OPTION_SOCK_ADDR, &sa,
		MHD_OPTION_THREAD_POOL_SIZE, 2, MHD_OPTION_CONNECTION_TIMEOUT,
		10, MHD_OPTION_END);
	if (c->http == NULL)
		return gn_error_set(-EADDRINUSE,
				    "http: cannot listen on %s (in use, or "
				    "not an address of this host)",
				    c->opts.http);
	info = MHD_get_daemon_info(c->http, MHD_DAEMON_INFO_BIND_PORT);
	c->http_port = info != NULL ? info->port : port;
	GN_LOG(INFO, coord, "http: serving /metrics on %s:%d", host,
	       c->http_port);
	return 0;
}

void coord_http_stop(struct gn_coordinator *c)
{
	if (c->http != NULL)
		MHD_stop_daemon(c->http);
	c->http = NULL;
}
