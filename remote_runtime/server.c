/*
 * The runtime's request server (see server.h): the listener, connection
 * threads, dispatch by envelope type, Hello and telemetry. ExecRequest
 * lives in server_exec.c, the registry messages in server_tensor.c, and
 * the executor thread in worker.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "frame.h"
#include "genie/control.pb-c.h"
#include "genie/telemetry.pb-c.h"
#include "gn_error.h"
#include "server_internal.h"

GN_LOG_REGISTER(runtime)

/* Replies: 30 s, plus their bytes at 4 MB/s (256 MiB: 97 s in all). */
#define SEND_TIMEOUT_MS 30000u
#define SEND_MIN_BYTES_PER_MS 4000u

void gn_server_opts_init(struct gn_server_opts *opts, size_t opts_size)
{
	struct gn_server_opts d = {
		.opts_size = opts_size,
		.listen = "tcp://127.0.0.1:7070",
		.backend = "auto",
		.name = "genie-runtime",
		.max_envelope = GN_DEFAULT_MAX_ENVELOPE,
		.max_payload = GN_DEFAULT_MAX_PAYLOAD,
	};

	memcpy(opts, &d, opts_size < sizeof(d) ? opts_size : sizeof(d));
}

/* On the worker thread after every job: what telemetry reports. */
static void snapshot(void *arg)
{
	struct gn_server *s = arg;
	struct gn_registry_stats rs;
	struct gn_pool_stats ps;

	size_t nkeys = 0;
	int keys_moved;

	gn_registry_get_stats(s->registry, &rs);
	gn_pool_get_stats(s->pool, &ps);
	/*
	 * Walk the registry for its keys only when it changed (a plan that
	 * merely reads resident tensors leaves the set as it was); the order
	 * may then lag by the reads since, which affinity does not mind.
	 */
	keys_moved = rs.uploads != s->reg_snap.uploads ||
		     rs.evictions != s->reg_snap.evictions ||
		     rs.shared_blocks != s->reg_snap.shared_blocks ||
		     rs.shared_refs != s->reg_snap.shared_refs ||
		     rs.shared_cached != s->reg_snap.shared_cached ||
		     rs.attach_hits != s->reg_snap.attach_hits;
	if (keys_moved)
		nkeys = gn_registry_shared_keys(s->registry, s->key_scratch,
						GN_SERVER_MAX_RESIDENT_KEYS);
	pthread_mutex_lock(&s->snap_lock);
	s->reg_snap = rs;
	s->pool_snap = ps;
	if (keys_moved) {
		memcpy(s->key_snap, s->key_scratch,
		       nkeys * GN_CONTENT_KEY_SIZE);
		s->n_key_snap = nkeys;
	}
	pthread_mutex_unlock(&s->snap_lock);
}

size_t gn_server_resident_keys(struct gn_server *s, char (*hex)[65], size_t max)
{
	size_t n;

	pthread_mutex_lock(&s->snap_lock);
	n = s->n_key_snap < max ? s->n_key_snap : max;
	for (size_t i = 0; i < n; i++)
		gn_content_key_hex(s->key_snap[i], GN_CONTENT_KEY_SIZE, hex[i]);
	pthread_mutex_unlock(&s->snap_lock);
	return n;
}

static void ring_put(struct time_ring *r, uint32_t op, uint64_t ns)
{
	r->at[r->head % r->size] = (struct gn_exec_kernel_time){op, ns};
	r->head++;
}

/* The newest `max` at most of what came since the last take, in order. */
static size_t ring_take(struct time_ring *r, struct gn_exec_kernel_time *out,
			size_t max, uint64_t *dropped)
{
	uint64_t avail = r->head - r->taken, from, lost = 0;
	size_t n;

	if (avail > r->size) {
		lost = avail - r->size;
		avail = r->size;
	}
	n = avail < max ? (size_t)avail : max;
	lost += avail - n;
	from = r->head - n;
	for (size_t i = 0; i < n; i++)
		out[i] = r->at[(from + i) % r->size];
	r->taken = r->head;
	if (dropped != NULL)
		*dropped = lost;
	return n;
}

void gn_server_note_latency(struct gn_server *s,
			    const struct gn_exec_result *res)
{
	pthread_mutex_lock(&s->snap_lock);
	ring_put(&s->plan_ring, GN_OP_COUNT_, res->exec_ns);
	for (uint32_t i = 0; i < res->n_kernels; i++)
		ring_put(&s->kernel_ring, res->kernels[i].op,
			 res->kernels[i].ns);
	pthread_mutex_unlock(&s->snap_lock);
}

size_t gn_server_take_latencies(struct gn_server *s,
				struct gn_exec_kernel_time *out, size_t max,
				uint64_t *dropped)
{
	size_t n;

	pthread_mutex_lock(&s->snap_lock);
	n = ring_take(&s->plan_ring, out, max, dropped);
	pthread_mutex_unlock(&s->snap_lock);
	return n;
}

size_t gn_server_take_kernel_times(struct gn_server *s,
				   struct gn_exec_kernel_time *out, size_t max,
				   uint64_t *dropped)
{
	size_t n;

	pthread_mutex_lock(&s->snap_lock);
	n = ring_take(&s->kernel_ring, out, max, dropped);
	pthread_mutex_unlock(&s->snap_lock);
	return n;
}

struct gn_server *gn_server_create(const struct gn_server_opts *opts)
{
	struct gn_transport_opts topts;
	struct gn_pool_opts po;
	struct gn_server *s;
	int rc;

	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		gn_error_set(-ENOMEM, "runtime: no memory for the server");
		return NULL;
	}
	gn_server_opts_init(&s->opts, sizeof(s->opts));
	memcpy(&s->opts, opts,
	       opts->opts_size < sizeof(s->opts) ? opts->opts_size
						 : sizeof(s->opts));
	snprintf(s->name, sizeof(s->name), "%s", s->opts.name);
	s->opts.name = s->name;
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
	pthread_mutex_init(&s->conns_lock, NULL);
	pthread_mutex_init(&s->snap_lock, NULL);
	s->plan_ring = (struct time_ring){.at = s->plan_times,
					  .size = GN_SERVER_LATENCY_RING};
	s->kernel_ring = (struct time_ring){.at = s->kernel_times,
					    .size = GN_SERVER_KERNEL_RING};
	if (pipe2(s->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		gn_error_set(-errno, "runtime: pipe: %s", strerror(errno));
		goto fail;
	}
	rc = gn_backend_open(s->opts.backend, &s->backend);
	if (rc != 0)
		goto fail;
	gn_pool_opts_init(&po, sizeof(po));
	po.name = s->backend.ops->name;
	po.limit_bytes = s->opts.memory_limit;
	s->pool = gn_pool_create(&s->backend, &po);
	if (s->pool == NULL)
		goto fail;
	s->registry = gn_registry_create(s->pool, &s->backend);
	if (s->registry == NULL)
		goto fail;
	snapshot(s);
	s->placement = (struct gn_placement){.place = gn_server_place,
					     .unplace = gn_server_unplace,
					     .arg = s};
	gn_transport_opts_init(&topts, sizeof(topts));
	topts.limits.max_envelope = s->opts.max_envelope;
	topts.limits.max_payload = s->opts.max_payload;
	if (s->opts.n_also_listen < 0 ||
	    s->opts.n_also_listen >= GN_SERVER_MAX_LISTENERS ||
	    (s->opts.n_also_listen > 0 && s->opts.also_listen == NULL)) {
		gn_error_set(-EINVAL,
			     "runtime: %d more addresses to listen on, at "
			     "most %d",
			     s->opts.n_also_listen,
			     GN_SERVER_MAX_LISTENERS - 1);
		goto fail;
	}
	for (int i = 0; i <= s->opts.n_also_listen; i++) {
		const char *url =
			i == 0 ? s->opts.listen : s->opts.also_listen[i - 1];

		rc = gn_listen(url, &topts, &s->listeners[i]);
		if (rc != 0)
			goto fail;
		s->nlisteners++;
	}
	/* Last: from here on only the worker touches backend, pool, registry.
	 */
	s->worker = gn_worker_create(snapshot, s);
	if (s->worker == NULL)
		goto fail;
	s->start_ns = gn_clock_ns();
	return s;

fail:
	gn_server_destroy(&s);
	return NULL;
}

const char *gn_server_addr(const struct gn_server *s)
{
	return s->listeners[0]->addr;
}

int gn_server_nlisteners(const struct gn_server *s)
{
	return s->nlisteners;
}

const char *gn_server_listener_url(const struct gn_server *s, int i, char *buf,
				   size_t len, const char **scheme)
{
	const struct gn_listener *l;

	if (i < 0 || i >= s->nlisteners)
		return NULL;
	l = s->listeners[i];
	if (scheme != NULL)
		*scheme = l->ops->name;
	snprintf(buf, len, "%s://%s", l->ops->name, l->addr);
	return buf;
}

const char *gn_server_backend(const struct gn_server *s)
{
	return s->backend.ops->name;
}

void gn_server_stop(struct gn_server *s)
{
	char b = 1;
	ssize_t rc = write(s->stop_pipe[1], &b, 1);

	(void)rc; /* a full pipe already holds a stop request */
}

void gn_server_destroy(struct gn_server **sp)
{
	struct gn_server *s;

	if (sp == NULL || *sp == NULL)
		return;
	s = *sp;
	/* No connection threads remain: gn_server_run joined them. */
	gn_worker_destroy(&s->worker);
	for (int i = 0; i < s->nlisteners; i++)
		gn_listener_close(&s->listeners[i]);
	gn_registry_destroy(&s->registry);
	gn_pool_destroy(&s->pool);
	gn_backend_close(&s->backend);
	if (s->stop_pipe[0] >= 0)
		close(s->stop_pipe[0]);
	if (s->stop_pipe[1] >= 0)
		close(s->stop_pipe[1]);
	pthread_mutex_destroy(&s->snap_lock);
	pthread_mutex_destroy(&s->conns_lock);
	free(s);
	*sp = NULL;
}

int gn_server_send(struct conn_slot *cs, int type, uint64_t req_id,
		   const ProtobufCMessage *body, const struct iovec *payload,
		   int iovcnt)
{
	uint8_t *env;
	size_t env_len;
	uint64_t bytes = 0, ms;
	int rc = gn_envelope_pack(type, req_id, body, &env, &env_len);

	if (rc != 0)
		return rc;
	/*
	 * A reply gets SEND_TIMEOUT_MS plus the time it takes at the
	 * slowest rate we accept, so a large result over a slow or lossy
	 * link is not cut off while it still moves.
	 */
	for (int i = 0; i < iovcnt; i++)
		bytes += payload[i].iov_len;
	ms = SEND_TIMEOUT_MS + bytes / SEND_MIN_BYTES_PER_MS;
	rc = gn_conn_send(cs->conn, env, env_len, payload, iovcnt,
			  ms > INT_MAX ? INT_MAX : (int)ms);
	free(env);
	return rc;
}

int gn_server_send_error(struct conn_slot *cs, uint64_t req_id, int code,
			 const char *msg)
{
	Genie__ErrorReply er = GENIE__ERROR_REPLY__INIT;

	er.code = code;
	er.message = (char *)msg;
	return gn_server_send(cs, GENIE__MSG_TYPE__MSG_TYPE_ERROR, req_id,
			      &er.base, NULL, 0);
}

static int handle_hello(struct conn_slot *cs, const Genie__Envelope *env)
{
	Genie__HelloAck ack = GENIE__HELLO_ACK__INIT;
	Genie__Hello *h;
	char msg[256];
	uint32_t v;

	h = (Genie__Hello *)gn_pb_unpack(&genie__hello__descriptor,
					 env->body.data, env->body.len,
					 cs->conn->limits.max_envelope);
	if (h == NULL)
		return gn_last_error_code();
	v = h->max_version < GN_SCHEMA_VERSION ? h->max_version
					       : GN_SCHEMA_VERSION;
	if (v < GN_SCHEMA_VERSION_MIN || v < h->min_version) {
		snprintf(msg, sizeof(msg),
			 "schema versions %u..%u offered, this runtime speaks "
			 "%u..%u",
			 h->min_version, h->max_version, GN_SCHEMA_VERSION_MIN,
			 GN_SCHEMA_VERSION);
		GN_LOG(WARNING, runtime, "%s: %s", cs->conn->peer, msg);
		protobuf_c_message_free_unpacked(&h->base, NULL);
		gn_server_send_error(cs, env->request_id, -EPROTONOSUPPORT,
				     msg);
		return -EPROTONOSUPPORT;
	}
	GN_LOG(INFO, runtime, "%s: hello from '%s', schema version %u",
	       cs->conn->peer, h->peer_name, v);
	protobuf_c_message_free_unpacked(&h->base, NULL);
	cs->version = v;
	if (!cs->srv->opts.no_placement)
		gn_conn_set_placement(cs->conn, &cs->srv->placement);
	ack.version = v;
	ack.runtime_name = cs->srv->name;
	ack.backend = (char *)cs->srv->backend.ops->name;
	return gn_server_send(cs, GENIE__MSG_TYPE__MSG_TYPE_HELLO_ACK,
			      env->request_id, &ack.base, NULL, 0);
}

void gn_server_telemetry(struct gn_server *s, Genie__RuntimeTelemetry *tp)
{
	Genie__RuntimeTelemetry t = GENIE__RUNTIME_TELEMETRY__INIT;
	struct gn_registry_stats rs;
	struct gn_pool_stats ps;
	uint32_t depth;

	/* The worker goes away under snap_lock (gn_server_run), so a
	 * heartbeat thread asking while the server stops reads 0. */
	pthread_mutex_lock(&s->snap_lock);
	rs = s->reg_snap;
	ps = s->pool_snap;
	depth = s->worker ? gn_worker_depth(s->worker) : 0;
	pthread_mutex_unlock(&s->snap_lock);
	t.runtime_name = s->name;
	t.backend = (char *)s->backend.ops->name;
	t.uptime_ns = gn_clock_ns() - s->start_ns;
	t.connections_total = atomic_load(&s->connections);
	t.plans_executed_total = atomic_load(&s->plans);
	t.plan_errors_total = atomic_load(&s->plan_errors);
	t.bytes_received_total = atomic_load(&s->bytes_in);
	t.bytes_sent_total = atomic_load(&s->bytes_out);
	t.exec_ns_total = atomic_load(&s->exec_ns);
	t.plan_cache_hits_total = atomic_load(&s->cache_hits);
	t.plan_cache_misses_total = atomic_load(&s->cache_misses);
	t.registry_tensors = rs.tensors;
	t.registry_bytes = rs.bytes;
	t.registry_evictions_total = rs.evictions;
	t.registry_uploads_total = rs.uploads;
	t.registry_uploads_in_place_total = rs.uploads_in_place;
	t.registry_lookups_refused_total = rs.lookups_refused;
	t.pool_in_use_bytes = ps.in_use_bytes;
	t.pool_peak_in_use_bytes = ps.peak_in_use_bytes;
	t.pool_cached_bytes = ps.cached_bytes;
	t.pool_limit_bytes = ps.limit_bytes;
	t.pool_failures_total = ps.failures;
	t.pool_fragmentation = ps.fragmentation;
	t.exec_queue_depth = depth;
	t.tensor_requests_total = atomic_load(&s->tensor_requests);
	t.tensor_errors_total = atomic_load(&s->tensor_errors);
	t.registry_shared_blocks = rs.shared_blocks;
	t.registry_shared_bytes = rs.shared_bytes;
	t.registry_shared_references = rs.shared_refs;
	t.registry_shared_cached_blocks = rs.shared_cached;
	t.registry_attach_hits_total = rs.attach_hits;
	t.registry_attach_misses_total = rs.attach_misses;
	t.registry_hash_mismatches_total = atomic_load(&s->hash_mismatches);
	*tp = t;
}

uint32_t gn_server_active_sessions(struct gn_server *s)
{
	uint32_t n = 0;

	pthread_mutex_lock(&s->conns_lock);
	for (int i = 0; i < GN_SERVER_MAX_CONNS; i++)
		n += s->conns[i].used && !s->conns[i].done;
	pthread_mutex_unlock(&s->conns_lock);
	return n;
}

/* Answered from counters and the worker's snapshot: never waits on it. */
static int handle_telemetry(struct conn_slot *cs, const Genie__Envelope *env)
{
	Genie__RuntimeTelemetry t;

	gn_server_telemetry(cs->srv, &t);
	return gn_server_send(cs, GENIE__MSG_TYPE__MSG_TYPE_TELEMETRY,
			      env->request_id, &t.base, NULL, 0);
}

/*
 * Handle one message. Returns 0 to keep the connection, 1 for a clean
 * goodbye, or a negative errno to close it.
 */
static int dispatch(struct conn_slot *cs, struct gn_msg *msg)
{
	Genie__Envelope *env;
	int rc;

	env = (Genie__Envelope *)gn_pb_unpack(&genie__envelope__descriptor,
					      msg->env, msg->env_len,
					      cs->conn->limits.max_envelope);
	if (env == NULL)
		return gn_last_error_code();
	if (cs->version == 0 && env->type != GENIE__MSG_TYPE__MSG_TYPE_HELLO) {
		rc = gn_error_set(-EPROTO,
				  "expected Hello as the first message, got "
				  "type %d",
				  (int)env->type);
		gn_server_send_error(cs, env->request_id, rc, gn_last_error());
		goto out;
	}
	if (cs->version != 0 && env->version != cs->version) {
		rc = gn_error_set(-EPROTONOSUPPORT,
				  "message at schema version %u, connection "
				  "negotiated %u",
				  env->version, cs->version);
		gn_server_send_error(cs, env->request_id, rc, gn_last_error());
		goto out;
	}
	switch (env->type) {
	case GENIE__MSG_TYPE__MSG_TYPE_HELLO:
		rc = cs->version ? gn_error_set(-EPROTO, "second Hello")
				 : handle_hello(cs, env);
		break;
	case GENIE__MSG_TYPE__MSG_TYPE_EXEC_REQUEST:
		rc = gn_server_handle_exec(cs, env, msg);
		break;
	case GENIE__MSG_TYPE__MSG_TYPE_UPLOAD:
		rc = gn_server_handle_upload(cs, env, msg);
		break;
	case GENIE__MSG_TYPE__MSG_TYPE_ATTACH:
		rc = gn_server_handle_attach(cs, env);
		break;
	case GENIE__MSG_TYPE__MSG_TYPE_DOWNLOAD:
		rc = gn_server_handle_download(cs, env);
		break;
	case GENIE__MSG_TYPE__MSG_TYPE_FREE:
		rc = gn_server_handle_free(cs, env);
		break;
	case GENIE__MSG_TYPE__MSG_TYPE_PIN:
		rc = gn_server_handle_pin(cs, env);
		break;
	case GENIE__MSG_TYPE__MSG_TYPE_TELEMETRY:
		rc = handle_telemetry(cs, env);
		break;
	case GENIE__MSG_TYPE__MSG_TYPE_GOODBYE: rc = 1; break;
	default:
		/* Unknown but well-framed: say so and keep the connection. */
		gn_error_set(-EPROTO, "unexpected message type %d",
			     (int)env->type);
		rc = gn_server_send_error(cs, env->request_id, -EPROTO,
					  gn_last_error());
		break;
	}
out:
	protobuf_c_message_free_unpacked(&env->base, NULL);
	return rc;
}

static void *conn_thread(void *arg)
{
	struct conn_slot *cs = arg;
	struct gn_server *s = cs->srv;
	struct gn_msg msg;
	int rc;

	for (;;) {
		uint64_t in0 = cs->conn->stats.bytes_received;
		uint64_t out0 = cs->conn->stats.bytes_sent;

		rc = gn_conn_recv(cs->conn, &msg, -1);
		if (rc != 0)
			break;
		rc = dispatch(cs, &msg);
		gn_msg_release(&msg);
		atomic_fetch_add(&s->bytes_in,
				 cs->conn->stats.bytes_received - in0);
		atomic_fetch_add(&s->bytes_out,
				 cs->conn->stats.bytes_sent - out0);
		if (rc != 0)
			break;
	}
	if (rc == 1 || rc == -ECONNRESET)
		GN_LOG(INFO, runtime, "%s: connection closed (%s)",
		       cs->conn->peer, rc == 1 ? "goodbye" : "peer left");
	else
		GN_LOG(WARNING, runtime, "%s: closing connection: %s",
		       cs->conn->peer, gn_last_error());
	/* The session ends with its connection: its tensors go now. */
	gn_server_end_session(cs);
	/* Close here, not at reap time, so the peer sees the close now. */
	gn_plan_cache_destroy(&cs->plans);
	pthread_mutex_lock(&s->conns_lock);
	gn_conn_close(&cs->conn);
	cs->done = 1;
	pthread_mutex_unlock(&s->conns_lock);
	return NULL;
}

/*
 * Join finished threads; with `all`, wake and join every thread. Waking
 * shuts down only the reading side: a thread whose request is running
 * still sends its reply, then reads end-of-stream and leaves.
 */
static void reap(struct gn_server *s, int all)
{
	for (int i = 0; i < GN_SERVER_MAX_CONNS; i++) {
		struct conn_slot *cs = &s->conns[i];
		int join;

		pthread_mutex_lock(&s->conns_lock);
		if (cs->used && !cs->done && all)
			shutdown(cs->conn->ops->conn_fd(cs->conn), SHUT_RD);
		join = cs->used && (cs->done || all);
		pthread_mutex_unlock(&s->conns_lock);
		if (!join)
			continue;
		pthread_join(cs->thread, NULL);
		cs->used = cs->done = 0;
	}
}

static void accept_one(struct gn_server *s, struct gn_listener *l)
{
	struct gn_conn *c = NULL;
	struct conn_slot *cs = NULL;
	int rc = l->ops->accept(l, 0, &c);

	if (rc != 0) {
		if (rc != -ETIMEDOUT)
			GN_LOG(WARNING, runtime, "accept: %s", gn_last_error());
		return;
	}
	reap(s, 0);
	for (int i = 0; i < GN_SERVER_MAX_CONNS && cs == NULL; i++)
		if (!s->conns[i].used)
			cs = &s->conns[i];
	if (cs == NULL) {
		GN_LOG(WARNING, runtime, "%s: refused, %d connections open",
		       c->peer, GN_SERVER_MAX_CONNS);
		gn_conn_close(&c);
		return;
	}
	memset(cs, 0, sizeof(*cs));
	cs->srv = s;
	cs->conn = c;
	cs->session = ++s->next_session;
	cs->plans = gn_plan_cache_create(GN_SERVER_PLANS_PER_CONN);
	if (cs->plans == NULL) {
		GN_LOG(ERR, runtime, "%s: no memory for a plan cache", c->peer);
		gn_conn_close(&cs->conn);
		return;
	}
	cs->used = 1;
	if (pthread_create(&cs->thread, NULL, conn_thread, cs) != 0) {
		GN_LOG(ERR, runtime, "%s: cannot start a thread", c->peer);
		gn_plan_cache_destroy(&cs->plans);
		gn_conn_close(&cs->conn);
		cs->used = 0;
		return;
	}
	atomic_fetch_add(&s->connections, 1);
	GN_LOG(INFO, runtime, "%s: connected, session %llu", c->peer,
	       (unsigned long long)cs->session);
}

int gn_server_run(struct gn_server *s)
{
	struct pollfd p[GN_SERVER_MAX_LISTENERS + 1];
	int np = s->nlisteners + 1;
	struct gn_worker *w;
	int rc = 0;

	for (int i = 0; i < s->nlisteners; i++)
		p[i] = (struct pollfd){.fd = s->listeners[i]->ops->listener_fd(
					       s->listeners[i]),
				       .events = POLLIN};
	p[s->nlisteners] =
		(struct pollfd){.fd = s->stop_pipe[0], .events = POLLIN};
	for (;;) {
		/* Blocks until a connection or a stop: no idle spinning. */
		int n = poll(p, (nfds_t)np, -1);

		if (n < 0 && errno != EINTR) {
			rc = gn_error_set(-errno, "runtime: poll: %s",
					  strerror(errno));
			break;
		}
		if (n <= 0)
			continue;
		if (p[s->nlisteners].revents)
			break;
		for (int i = 0; i < s->nlisteners; i++)
			if (p[i].revents)
				accept_one(s, s->listeners[i]);
	}
	GN_LOG(NOTICE, runtime, "stopping: closing %s%s", gn_server_addr(s),
	       rc ? " after a listener failure" : "");
	/*
	 * Drain: the running job finishes and its connection sends the
	 * reply; queued and later requests get -ESHUTDOWN; then every
	 * connection is woken, ends its session (teardown jobs still run)
	 * and is joined; the worker is joined last.
	 */
	gn_worker_drain(s->worker);
	reap(s, 1);
	pthread_mutex_lock(&s->snap_lock);
	w = s->worker;
	s->worker = NULL;
	pthread_mutex_unlock(&s->snap_lock);
	gn_worker_destroy(&w);
	GN_LOG(NOTICE, runtime,
	       "stopped: %llu connections, %llu plans, %llu uploads (%llu "
	       "written in place), %llu bytes in, %llu out",
	       (unsigned long long)atomic_load(&s->connections),
	       (unsigned long long)atomic_load(&s->plans),
	       (unsigned long long)s->reg_snap.uploads,
	       (unsigned long long)s->reg_snap.uploads_in_place,
	       (unsigned long long)atomic_load(&s->bytes_in),
	       (unsigned long long)atomic_load(&s->bytes_out));
	return rc;
}

uint64_t gn_server_memory_limit(const struct gn_server *s)
{
	return s->opts.memory_limit;
}
