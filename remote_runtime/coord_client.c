/*
 * Registration and heartbeats to genie-coordinator (see coord_client.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "coord_client.h"
#include "coord_conn.h"
#include "executor.h"
#include "genie/coord.pb-c.h"
#include "genie/envelope.pb-c.h"
#include "genie/telemetry.pb-c.h"
#include "gn_error.h"
#include "log.h"
#include "op.h"
#include "server.h"

GN_LOG_REGISTER(coordclient)

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 10000
#define CALL_TIMEOUT_MS 5000
#define GN_COORD_MAX_LABELS 32

struct gn_coord_client {
	struct gn_server *srv;
	char coordinator[160];
	char node_id[128];
	char advertise[192];
	uint64_t memory_bytes;
	struct gn_auth_secret secret;
	int have_secret;
	char tls_ca[512], tls_cert[512], tls_key[512];
	struct gn_tls_files tls; /* points into the arrays above */
	char label_key[GN_COORD_MAX_LABELS][128];
	char label_value[GN_COORD_MAX_LABELS][256];
	int n_labels;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stop;		  /* under lock */
	struct gn_coord_conn *cc; /* under lock for stop's shutdown */
	uint32_t interval_ms;
	uint64_t seq;
	int drained;
	/* A heartbeat's samples and keys (the thread's own). */
	struct gn_exec_kernel_time times[GN_SERVER_KERNEL_RING];
	uint64_t lat[GN_SERVER_LATENCY_RING];
	uint64_t kern_ns[GN_SERVER_KERNEL_RING]; /* grouped by op */
	Genie__OpLatency op_lat[GN_OP_COUNT_];
	Genie__OpLatency *op_lat_ptr[GN_OP_COUNT_];
	/* The executor's busy time at the last heartbeat, for utilization. */
	uint64_t last_exec_ns, last_hb_ns;
	char key_hex[GN_SERVER_MAX_RESIDENT_KEYS][65];
	char *key_ptr[GN_SERVER_MAX_RESIDENT_KEYS];
};

void gn_coord_client_opts_init(struct gn_coord_client_opts *opts,
			       size_t opts_size)
{
	struct gn_coord_client_opts d = {.opts_size = opts_size};

	memcpy(opts, &d, opts_size < sizeof(d) ? opts_size : sizeof(d));
}

/* Sleep up to `ms` or until stop; returns nonzero when stopping. */
static int wait_ms(struct gn_coord_client *c, uint32_t ms)
{
	struct timespec ts;
	int stop;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&c->lock);
	while (!c->stop &&
	       pthread_cond_timedwait(&c->cond, &c->lock, &ts) != ETIMEDOUT)
		;
	stop = c->stop;
	pthread_mutex_unlock(&c->lock);
	return stop;
}

static int stopping(struct gn_coord_client *c)
{
	int stop;

	pthread_mutex_lock(&c->lock);
	stop = c->stop;
	pthread_mutex_unlock(&c->lock);
	return stop;
}

static uint64_t host_memory(void)
{
	long pages = sysconf(_SC_PHYS_PAGES);
	long page = sysconf(_SC_PAGESIZE);

	return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

static int do_register(struct gn_coord_client *c, struct gn_coord_conn *cc)
{
	Genie__RegisterNode r = GENIE__REGISTER_NODE__INIT;
	Genie__Device dev = GENIE__DEVICE__INIT;
	Genie__DataPlane dp[GN_SERVER_MAX_LISTENERS];
	Genie__DataPlane *dps[GN_SERVER_MAX_LISTENERS];
	char urls[GN_SERVER_MAX_LISTENERS][300];
	Genie__Device *devs[1] = {&dev};
	bool advertised = false;
	int ndp = gn_server_nlisteners(c->srv);
	const char *backend = gn_server_backend(c->srv);
	char *backends[1] = {(char *)backend};
	Genie__RegisterNode__LabelsEntry lab[GN_COORD_MAX_LABELS];
	Genie__RegisterNode__LabelsEntry *labs[GN_COORD_MAX_LABELS];
	Genie__RegisterAck *ack;
	int rc;

	for (int i = 0; i < c->n_labels; i++) {
		genie__register_node__labels_entry__init(&lab[i]);
		lab[i].key = c->label_key[i];
		lab[i].value = c->label_value[i];
		labs[i] = &lab[i];
	}
	r.n_labels = (size_t)c->n_labels;
	r.labels = labs;
	dev.kind = (char *)backend;
	dev.name = strcmp(backend, "cpu") == 0 ? "host CPU, oneDNN"
					       : (char *)backend;
	dev.memory_bytes = c->memory_bytes;
	/*
	 * One data plane per listener, named by its scheme; --advertise
	 * replaces the address of the first listener of its scheme (a
	 * runtime behind NAT, or listening on 0.0.0.0).
	 */
	for (int i = 0; i < ndp; i++) {
		const char *scheme;
		size_t sl;

		genie__data_plane__init(&dp[i]);
		gn_server_listener_url(c->srv, i, urls[i], sizeof(urls[i]),
				       &scheme);
		sl = strlen(scheme);
		dp[i].kind = (char *)scheme;
		dp[i].address = urls[i];
		if (!advertised && c->advertise[0] != '\0' &&
		    strncmp(c->advertise, scheme, sl) == 0 &&
		    strncmp(c->advertise + sl, "://", 3) == 0) {
			dp[i].address = c->advertise;
			advertised = true;
		}
		dps[i] = &dp[i];
	}
	r.node_id = c->node_id;
	r.n_devices = 1;
	r.devices = devs;
	r.n_backends = 1;
	r.backends = backends;
	r.n_data_planes = (size_t)ndp;
	r.data_planes = dps;
	rc = gn_coord_call(cc, GENIE__MSG_TYPE__MSG_TYPE_REGISTER, &r.base,
			   GENIE__MSG_TYPE__MSG_TYPE_REGISTER_ACK,
			   &genie__register_ack__descriptor,
			   (ProtobufCMessage **)&ack);
	if (rc != 0)
		return rc;
	c->interval_ms =
		ack->heartbeat_interval_ms ? ack->heartbeat_interval_ms : 1000;
	protobuf_c_message_free_unpacked(&ack->base, NULL);
	return 0;
}

/*
 * The kernels run since the last heartbeat, grouped by op into
 * c->op_lat (their times in c->kern_ns). Returns how many ops.
 */
static size_t take_kernel_times(struct gn_coord_client *c)
{
	size_t n = gn_server_take_kernel_times(c->srv, c->times,
					       GN_SERVER_KERNEL_RING, NULL);
	size_t count[GN_OP_COUNT_] = {0}, at[GN_OP_COUNT_], nops = 0, off = 0;

	for (size_t i = 0; i < n; i++)
		if (c->times[i].op < GN_OP_COUNT_)
			count[c->times[i].op]++;
	for (uint32_t op = 0; op < GN_OP_COUNT_; op++) {
		at[op] = off;
		if (count[op] == 0)
			continue;
		genie__op_latency__init(&c->op_lat[nops]);
		c->op_lat[nops].op = (char *)gn_op_name((enum gn_op)op);
		c->op_lat[nops].n_ns = count[op];
		c->op_lat[nops].ns = c->kern_ns + off;
		c->op_lat_ptr[nops] = &c->op_lat[nops];
		nops++;
		off += count[op];
	}
	for (size_t i = 0; i < n; i++)
		if (c->times[i].op < GN_OP_COUNT_)
			c->kern_ns[at[c->times[i].op]++] = c->times[i].ns;
	return nops;
}

/*
 * The share of wall time the executor spent running plans since the last
 * heartbeat, 0..1: the device's busy ratio as the runtime sees it (one
 * executor thread drives the device).
 */
static double utilization(struct gn_coord_client *c, uint64_t exec_ns_total)
{
	uint64_t now = gn_clock_ns();
	double u = 0;

	if (c->last_hb_ns != 0 && now > c->last_hb_ns &&
	    exec_ns_total >= c->last_exec_ns)
		u = (double)(exec_ns_total - c->last_exec_ns) /
		    (double)(now - c->last_hb_ns);
	c->last_hb_ns = now;
	c->last_exec_ns = exec_ns_total;
	return u > 1 ? 1 : u;
}

static int do_heartbeat(struct gn_coord_client *c, struct gn_coord_conn *cc)
{
	Genie__Heartbeat hb = GENIE__HEARTBEAT__INIT;
	Genie__NodeLoad load = GENIE__NODE_LOAD__INIT;
	Genie__RuntimeTelemetry t;
	Genie__HeartbeatAck *ack;
	int rc;

	gn_server_telemetry(c->srv, &t);
	/*
	 * The real per-plan times since the last heartbeat (the server keeps
	 * the last GN_SERVER_LATENCY_RING), and the content keys of the
	 * shared blocks held, most recent first, for model affinity. Both
	 * come from the server's snapshot, never from the registry itself.
	 */
	hb.n_plan_latency_ns = gn_server_take_latencies(
		c->srv, c->times, GN_SERVER_LATENCY_RING, NULL);
	for (size_t i = 0; i < hb.n_plan_latency_ns; i++)
		c->lat[i] = c->times[i].ns;
	hb.plan_latency_ns = c->lat;
	hb.n_op_latency = take_kernel_times(c);
	hb.op_latency = c->op_lat_ptr;
	hb.n_resident_keys = gn_server_resident_keys(
		c->srv, c->key_hex, GN_SERVER_MAX_RESIDENT_KEYS);
	for (size_t i = 0; i < hb.n_resident_keys; i++)
		c->key_ptr[i] = c->key_hex[i];
	hb.resident_keys = c->key_ptr;
	load.active_sessions = gn_server_active_sessions(c->srv);
	load.queue_depth = (uint32_t)t.exec_queue_depth;
	load.memory_used_bytes = t.pool_in_use_bytes;
	load.memory_total_bytes =
		t.pool_limit_bytes ? t.pool_limit_bytes : c->memory_bytes;
	load.device_utilization = utilization(c, t.exec_ns_total);
	hb.node_id = c->node_id;
	hb.seq = ++c->seq;
	hb.load = &load;
	hb.telemetry = &t;
	rc = gn_coord_call(cc, GENIE__MSG_TYPE__MSG_TYPE_HEARTBEAT, &hb.base,
			   GENIE__MSG_TYPE__MSG_TYPE_HEARTBEAT_ACK,
			   &genie__heartbeat_ack__descriptor,
			   (ProtobufCMessage **)&ack);
	if (rc != 0)
		return rc;
	if (ack->drained != c->drained)
		GN_LOG(NOTICE, coordclient,
		       "node '%s' %s by the coordinator: %s", c->node_id,
		       ack->drained ? "drained" : "undrained",
		       ack->drained ? "finishing its sessions, getting no new "
				      "ones"
				    : "taking new sessions again");
	c->drained = ack->drained;
	protobuf_c_message_free_unpacked(&ack->base, NULL);
	return 0;
}

static void set_conn(struct gn_coord_client *c, struct gn_coord_conn *cc)
{
	pthread_mutex_lock(&c->lock);
	c->cc = cc;
	pthread_mutex_unlock(&c->lock);
}

static void *coord_thread(void *arg)
{
	struct gn_coord_client *c = arg;
	uint32_t backoff = BACKOFF_MIN_MS;
	int last_rc = 0;

	while (!stopping(c)) {
		struct gn_coord_conn *cc = NULL;
		int rc;

		rc = gn_coord_connect_tls(
			c->coordinator, c->have_secret ? &c->secret : NULL,
			&c->tls, GENIE__PEER_ROLE__PEER_ROLE_RUNTIME,
			c->node_id, CALL_TIMEOUT_MS, &cc);
		if (rc == 0) {
			set_conn(c, cc);
			rc = do_register(c, cc);
		}
		if (rc == 0) {
			GN_LOG(NOTICE, coordclient,
			       "registered as '%s' with coordinator %s "
			       "(advertising %s, heartbeat every %u ms)",
			       c->node_id, cc->addr,
			       c->advertise[0] ? c->advertise
					       : "its listen addresses",
			       c->interval_ms);
			backoff = BACKOFF_MIN_MS;
			last_rc = 0;
			while (rc == 0 && !wait_ms(c, c->interval_ms))
				rc = do_heartbeat(c, cc);
		}
		if (stopping(c)) {
			set_conn(c, NULL);
			gn_coord_close(&cc);
			break;
		}
		/* Say it once per kind of failure, not every retry. */
		if (rc == -EACCES)
			GN_LOG(ERR, coordclient, "%s; retrying in %u ms",
			       gn_last_error(), backoff);
		else if (rc != last_rc)
			GN_LOG(WARNING, coordclient, "%s; retrying in %u ms",
			       gn_last_error(), backoff);
		last_rc = rc;
		set_conn(c, NULL);
		gn_coord_close(&cc);
		if (wait_ms(c, backoff))
			break;
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
						       : backoff * 2;
	}
	return NULL;
}

struct gn_coord_client *
gn_coord_client_start(struct gn_server *srv,
		      const struct gn_coord_client_opts *user)
{
	struct gn_coord_client_opts o;
	struct gn_coord_client *c;
	pthread_condattr_t ca;
	char host[96];
	int rc;

	gn_coord_client_opts_init(&o, sizeof(o));
	memcpy(&o, user,
	       user->opts_size < sizeof(o) ? user->opts_size : sizeof(o));
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		gn_error_set(-ENOMEM, "coordinator client: out of memory");
		return NULL;
	}
	c->srv = srv;
	if (gn_coord_addr(o.coordinator, c->coordinator,
			  sizeof(c->coordinator)) != 0)
		goto fail_free;
	rc = gn_coord_load_secret(o.secret_file, &c->secret);
	if (rc < 0)
		goto fail_free;
	c->have_secret = rc == 1;
	{
		struct gn_tls_files f = {o.tls_ca, o.tls_cert, o.tls_key};

		gn_coord_tls_from_env(&f);
		if ((f.ca && strlen(f.ca) >= sizeof(c->tls_ca)) ||
		    (f.cert && strlen(f.cert) >= sizeof(c->tls_cert)) ||
		    (f.key && strlen(f.key) >= sizeof(c->tls_key))) {
			gn_error_set(-ENAMETOOLONG,
				     "--tls-ca/--tls-cert/--tls-key: a path "
				     "of %zu bytes or more",
				     sizeof(c->tls_ca));
			goto fail_free;
		}
		snprintf(c->tls_ca, sizeof(c->tls_ca), "%s", f.ca ? f.ca : "");
		snprintf(c->tls_cert, sizeof(c->tls_cert), "%s",
			 f.cert ? f.cert : "");
		snprintf(c->tls_key, sizeof(c->tls_key), "%s",
			 f.key ? f.key : "");
		c->tls.ca = f.ca ? c->tls_ca : NULL;
		c->tls.cert = f.cert ? c->tls_cert : NULL;
		c->tls.key = f.key ? c->tls_key : NULL;
	}
	if (o.n_labels > GN_COORD_MAX_LABELS) {
		gn_error_set(-EINVAL, "%d labels, at most %d", o.n_labels,
			     GN_COORD_MAX_LABELS);
		goto fail_free;
	}
	for (int i = 0; i < o.n_labels; i++) {
		const char *eq = strchr(o.labels[i], '=');

		if (eq == NULL || eq == o.labels[i] ||
		    (size_t)(eq - o.labels[i]) >= sizeof(c->label_key[0]) ||
		    strlen(eq + 1) >= sizeof(c->label_value[0])) {
			gn_error_set(-EINVAL,
				     "label '%s': expected KEY=VALUE (key "
				     "under 128 bytes, value under 256)",
				     o.labels[i]);
			goto fail_free;
		}
		snprintf(c->label_key[i], sizeof(c->label_key[i]), "%.*s",
			 (int)(eq - o.labels[i]), o.labels[i]);
		snprintf(c->label_value[i], sizeof(c->label_value[i]), "%s",
			 eq + 1);
	}
	c->n_labels = o.n_labels;
	if (o.node_id != NULL && *o.node_id != '\0') {
		if (strlen(o.node_id) >= sizeof(c->node_id)) {
			gn_error_set(-EINVAL,
				     "--node-id '%s' is longer than %zu "
				     "bytes",
				     o.node_id, sizeof(c->node_id) - 1);
			goto fail_free;
		}
		snprintf(c->node_id, sizeof(c->node_id), "%s", o.node_id);
	} else {
		/* HOSTNAME-PORT of the first tcp:// listener, else -SCHEME. */
		const char *suffix = NULL, *scheme, *colon;
		char u[300];

		for (int i = 0; i < gn_server_nlisteners(srv) && !suffix; i++)
			if (gn_server_listener_url(srv, i, u, sizeof(u),
						   &scheme) &&
			    strcmp(scheme, "tcp") == 0 &&
			    (colon = strrchr(u, ':')) != NULL)
				suffix = colon + 1;
		if (suffix == NULL) {
			gn_server_listener_url(srv, 0, u, sizeof(u), &scheme);
			suffix = scheme;
		}
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "runtime");
		host[sizeof(host) - 1] = '\0';
		snprintf(c->node_id, sizeof(c->node_id), "%s-%s", host,
			 suffix);
	}
	if (o.advertise != NULL && *o.advertise != '\0')
		snprintf(c->advertise, sizeof(c->advertise), "%s%s",
			 strstr(o.advertise, "://") ? "" : "tcp://",
			 o.advertise);
	c->memory_bytes = o.memory_bytes ? o.memory_bytes
			  : gn_server_memory_limit(srv)
				  ? gn_server_memory_limit(srv)
				  : host_memory();
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&c->thread, NULL, coord_thread, c) != 0) {
		gn_error_set(-EAGAIN, "coordinator client: cannot start a "
				      "thread");
		pthread_cond_destroy(&c->cond);
		pthread_mutex_destroy(&c->lock);
		goto fail_free;
	}
	return c;

fail_free:
	memset(&c->secret, 0, sizeof(c->secret));
	free(c);
	return NULL;
}

void gn_coord_client_stop(struct gn_coord_client **cp)
{
	struct gn_coord_client *c;

	if (cp == NULL || *cp == NULL)
		return;
	c = *cp;
	pthread_mutex_lock(&c->lock);
	c->stop = 1;
	/* Cut a call in flight short: its recv sees the shutdown at once. */
	if (c->cc != NULL && c->cc->conn != NULL)
		shutdown(c->cc->conn->ops->conn_fd(c->cc->conn), SHUT_RDWR);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	memset(&c->secret, 0, sizeof(c->secret));
	free(c);
	*cp = NULL;
}
