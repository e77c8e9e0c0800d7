/*
 * The runtime's request server (see server.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend.h"
#include "clock.h"
#include "executor.h"
#include "frame.h"
#include "genie/control.pb-c.h"
#include "genie/envelope.pb-c.h"
#include "genie/telemetry.pb-c.h"
#include "gn_error.h"
#include "log.h"
#include "plan.h"
#include "plan_cache.h"
#include "pool.h"
#include "server.h"
#include "transport.h"

GN_LOG_REGISTER(runtime)

#define MAX_CONNS 256

struct conn_slot {
	struct gn_server *srv;
	struct gn_conn *conn;
	pthread_t thread;
	int used;
	int done; /* the thread finished; join and reuse the slot */
	uint32_t version;
	struct gn_plan_cache *plans; /* this connection's decoded plans */
};

/* Plans kept per connection; the client remembers as many. */
#define PLANS_PER_CONN 64

struct gn_server {
	struct gn_server_opts opts;
	char name[64];
	struct gn_listener *listener;
	struct gn_backend backend;
	struct gn_pool *pool;	   /* device memory, under exec_lock */
	pthread_mutex_t exec_lock; /* one plan at a time on the backend */
	pthread_mutex_t conns_lock;
	struct conn_slot conns[MAX_CONNS];
	int stop_pipe[2];
	uint64_t start_ns;
	atomic_uint_fast64_t connections, plans, plan_errors, bytes_in,
		bytes_out, exec_ns, cache_hits, cache_misses;
};

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

struct gn_server *gn_server_create(const struct gn_server_opts *opts)
{
	struct gn_transport_opts topts;
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
	pthread_mutex_init(&s->exec_lock, NULL);
	pthread_mutex_init(&s->conns_lock, NULL);
	if (pipe2(s->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		gn_error_set(-errno, "runtime: pipe: %s", strerror(errno));
		goto fail;
	}
	rc = gn_backend_open(s->opts.backend, &s->backend);
	if (rc != 0)
		goto fail;
	{
		struct gn_pool_opts po;

		gn_pool_opts_init(&po, sizeof(po));
		po.name = s->backend.ops->name;
		po.limit_bytes = s->opts.memory_limit;
		s->pool = gn_pool_create(&s->backend, &po);
		if (s->pool == NULL)
			goto fail;
	}
	gn_transport_opts_init(&topts, sizeof(topts));
	topts.limits.max_envelope = s->opts.max_envelope;
	topts.limits.max_payload = s->opts.max_payload;
	rc = gn_listen(s->opts.listen, &topts, &s->listener);
	if (rc != 0)
		goto fail;
	s->start_ns = gn_clock_ns();
	return s;

fail:
	gn_server_destroy(&s);
	return NULL;
}

const char *gn_server_addr(const struct gn_server *s)
{
	return s->listener->addr;
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
	gn_listener_close(&s->listener);
	gn_pool_destroy(&s->pool);
	gn_backend_close(&s->backend);
	if (s->stop_pipe[0] >= 0)
		close(s->stop_pipe[0]);
	if (s->stop_pipe[1] >= 0)
		close(s->stop_pipe[1]);
	pthread_mutex_destroy(&s->exec_lock);
	pthread_mutex_destroy(&s->conns_lock);
	free(s);
	*sp = NULL;
}

/* Pack and send one reply; a failed send closes the connection. */
static int send_msg(struct conn_slot *cs, int type, uint64_t req_id,
		    const ProtobufCMessage *body, const struct iovec *payload,
		    int iovcnt)
{
	uint8_t *env;
	size_t env_len;
	int rc = gn_envelope_pack(type, req_id, body, &env, &env_len);

	if (rc != 0)
		return rc;
	rc = gn_conn_send(cs->conn, env, env_len, payload, iovcnt, 30000);
	free(env);
	return rc;
}

static int send_error(struct conn_slot *cs, uint64_t req_id, int code,
		      const char *msg)
{
	Genie__ErrorReply er = GENIE__ERROR_REPLY__INIT;

	er.code = code;
	er.message = (char *)msg;
	return send_msg(cs, GENIE__MSG_TYPE__MSG_TYPE_ERROR, req_id, &er.base,
			NULL, 0);
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
		send_error(cs, env->request_id, -EPROTONOSUPPORT, msg);
		return -EPROTONOSUPPORT;
	}
	GN_LOG(INFO, runtime, "%s: hello from '%s', schema version %u",
	       cs->conn->peer, h->peer_name, v);
	protobuf_c_message_free_unpacked(&h->base, NULL);
	cs->version = v;
	ack.version = v;
	ack.runtime_name = cs->srv->name;
	ack.backend = (char *)cs->srv->backend.ops->name;
	return send_msg(cs, GENIE__MSG_TYPE__MSG_TYPE_HELLO_ACK,
			env->request_id, &ack.base, NULL, 0);
}

/* Turn the request's payload references into executor inputs. */
static int resolve_inputs(const Genie__ExecRequest *req, const uint8_t *payload,
			  size_t payload_len, struct gn_exec_input *in)
{
	for (size_t i = 0; i < req->n_inputs; i++) {
		const Genie__PayloadRef *r = req->inputs[i];

		if (r == NULL || r->handle.len != GN_HANDLE_SIZE)
			return gn_error_set(-EINVAL,
					    "exec: input %zu: handle of %zu "
					    "bytes, expected %d",
					    i, r ? r->handle.len : 0,
					    GN_HANDLE_SIZE);
		if (r->offset > payload_len ||
		    r->length > payload_len - r->offset)
			return gn_error_set(
				-EINVAL,
				"exec: input %zu: bytes %llu..%llu "
				"outside the %zu-byte payload",
				i, (unsigned long long)r->offset,
				(unsigned long long)(r->offset + r->length),
				payload_len);
		in[i].handle = r->handle.data;
		in[i].data = payload + r->offset;
		in[i].len = r->length;
	}
	return 0;
}

/*
 * The plan a request names: decoded from the request and kept in the
 * connection's cache, or found there by fingerprint, in which case the
 * inputs bind to OP_INPUT nodes by position (their handles are rewritten
 * to the plan's). The cache owns the plan either way.
 */
static int select_plan(struct conn_slot *cs, const Genie__ExecRequest *req,
		       struct gn_exec_input *in, struct gn_plan **out)
{
	struct gn_server *s = cs->srv;
	struct gn_plan *plan;
	uint32_t k = 0;
	int rc;

	if (req->plan != NULL) {
		rc = gn_plan_decode(req->plan, &plan);
		if (rc != 0)
			return rc;
		if (req->plan->fingerprint != 0)
			gn_plan_cache_insert(cs->plans, req->plan->fingerprint,
					     plan);
		else
			gn_plan_cache_insert(cs->plans, 0, plan);
		*out = plan;
		return 0;
	}
	if (req->plan_fingerprint == 0)
		return gn_error_set(-EINVAL, "exec: request carries neither a "
					     "plan nor a plan fingerprint");
	plan = gn_plan_cache_lookup(cs->plans, req->plan_fingerprint);
	if (plan == NULL) {
		atomic_fetch_add(&s->cache_misses, 1);
		return gn_error_set(-ESTALE,
				    "exec: plan %016llx is not cached on this "
				    "connection; send it whole",
				    (unsigned long long)req->plan_fingerprint);
	}
	atomic_fetch_add(&s->cache_hits, 1);
	for (uint32_t i = 0; i < plan->nnodes; i++) {
		if (plan->nodes[i].op != GN_OP_INPUT)
			continue;
		if (k == req->n_inputs)
			break;
		in[k++].handle = plan->nodes[i].handle;
	}
	if (k != req->n_inputs || k != gn_plan_count_inputs(plan))
		return gn_error_set(
			-EINVAL,
			"exec: cached plan %016llx takes %u inputs, "
			"request brings %zu",
			(unsigned long long)req->plan_fingerprint,
			gn_plan_count_inputs(plan), req->n_inputs);
	*out = plan;
	return 0;
}

static int handle_exec(struct conn_slot *cs, const Genie__Envelope *env,
		       const struct gn_msg *msg)
{
	struct gn_server *s = cs->srv;
	Genie__ExecResult er = GENIE__EXEC_RESULT__INIT;
	Genie__ExecRequest *req;
	Genie__TensorMeta *metas = NULL, **metap = NULL;
	Genie__PayloadRef *refs = NULL, **refp = NULL;
	int64_t(*dims)[GN_MAX_DIMS] = NULL;
	struct gn_exec_input *in = NULL;
	struct gn_exec_result res = {0};
	struct gn_plan *plan = NULL;
	struct iovec iov;
	int rc;

	req = (Genie__ExecRequest *)gn_pb_unpack(
		&genie__exec_request__descriptor, env->body.data, env->body.len,
		cs->conn->limits.max_envelope);
	if (req == NULL)
		return send_error(cs, env->request_id, gn_last_error_code(),
				  gn_last_error());
	in = calloc(req->n_inputs + 1, sizeof(*in));
	if (in == NULL) {
		rc = gn_error_set(-ENOMEM, "exec: no memory for %zu inputs",
				  req->n_inputs);
		goto reply_error;
	}
	rc = resolve_inputs(req, msg->payload, msg->payload_len, in);
	if (rc != 0)
		goto reply_error;
	rc = select_plan(cs, req, in, &plan);
	if (rc != 0)
		goto reply_error;
	pthread_mutex_lock(&s->exec_lock);
	rc = gn_exec_run(&s->backend, s->pool, plan, in, req->n_inputs, &res);
	pthread_mutex_unlock(&s->exec_lock);
	if (rc != 0)
		goto reply_error;

	metas = calloc(res.noutputs, sizeof(*metas));
	metap = calloc(res.noutputs, sizeof(*metap));
	refs = calloc(res.noutputs, sizeof(*refs));
	refp = calloc(res.noutputs, sizeof(*refp));
	dims = calloc(res.noutputs, sizeof(*dims));
	if (!metas || !metap || !refs || !refp || !dims) {
		rc = gn_error_set(-ENOMEM, "exec: no memory for %u results",
				  res.noutputs);
		goto reply_error;
	}
	for (uint32_t k = 0; k < res.noutputs; k++) {
		gn_meta_to_pb(&res.metas[k], &metas[k], dims[k]);
		metap[k] = &metas[k];
		genie__payload_ref__init(&refs[k]);
		refs[k].offset = res.offsets[k];
		refs[k].length = gn_meta_nbytes(&res.metas[k]);
		refp[k] = &refs[k];
	}
	er.n_outputs = er.n_payload = res.noutputs;
	er.outputs = metap;
	er.payload = refp;
	er.exec_ns = res.exec_ns;
	er.backend = (char *)s->backend.ops->name;
	iov.iov_base = res.payload;
	iov.iov_len = res.payload_len;
	rc = send_msg(cs, GENIE__MSG_TYPE__MSG_TYPE_EXEC_RESULT,
		      env->request_id, &er.base, &iov, 1);
	atomic_fetch_add(&s->plans, 1);
	atomic_fetch_add(&s->exec_ns, res.exec_ns);
	goto out;

reply_error:
	atomic_fetch_add(&s->plan_errors, 1);
	GN_LOG(NOTICE, runtime, "%s: request %llu refused: %s", cs->conn->peer,
	       (unsigned long long)env->request_id, gn_last_error());
	rc = send_error(cs, env->request_id, rc, gn_last_error());
out:
	free(dims);
	free(refp);
	free(refs);
	free(metap);
	free(metas);
	gn_exec_result_fini(&res);
	free(in);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return rc;
}

static int handle_telemetry(struct conn_slot *cs, const Genie__Envelope *env)
{
	struct gn_server *s = cs->srv;
	Genie__RuntimeTelemetry t = GENIE__RUNTIME_TELEMETRY__INIT;

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
	return send_msg(cs, GENIE__MSG_TYPE__MSG_TYPE_TELEMETRY,
			env->request_id, &t.base, NULL, 0);
}

/*
 * Handle one message. Returns 0 to keep the connection, 1 for a clean
 * goodbye, or a negative errno to close it.
 */
static int dispatch(struct conn_slot *cs, const struct gn_msg *msg)
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
		send_error(cs, env->request_id, rc, gn_last_error());
		goto out;
	}
	if (cs->version != 0 && env->version != cs->version) {
		rc = gn_error_set(-EPROTONOSUPPORT,
				  "message at schema version %u, connection "
				  "negotiated %u",
				  env->version, cs->version);
		send_error(cs, env->request_id, rc, gn_last_error());
		goto out;
	}
	switch (env->type) {
	case GENIE__MSG_TYPE__MSG_TYPE_HELLO:
		rc = cs->version ? gn_error_set(-EPROTO, "second Hello")
				 : handle_hello(cs, env);
		break;
	case GENIE__MSG_TYPE__MSG_TYPE_EXEC_REQUEST:
		rc = handle_exec(cs, env, msg);
		break;
	case GENIE__MSG_TYPE__MSG_TYPE_TELEMETRY:
		rc = handle_telemetry(cs, env);
		break;
	case GENIE__MSG_TYPE__MSG_TYPE_GOODBYE: rc = 1; break;
	default:
		/* Unknown but well-framed: say so and keep the connection. */
		gn_error_set(-EPROTO, "unexpected message type %d",
			     (int)env->type);
		rc = send_error(cs, env->request_id, -EPROTO, gn_last_error());
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
	/* Close here, not at reap time, so the peer sees the close now. */
	gn_plan_cache_destroy(&cs->plans);
	pthread_mutex_lock(&s->conns_lock);
	gn_conn_close(&cs->conn);
	cs->done = 1;
	pthread_mutex_unlock(&s->conns_lock);
	return NULL;
}

/* Join finished threads; with `all`, wake and join every thread. */
static void reap(struct gn_server *s, int all)
{
	for (int i = 0; i < MAX_CONNS; i++) {
		struct conn_slot *cs = &s->conns[i];
		int join;

		pthread_mutex_lock(&s->conns_lock);
		if (cs->used && !cs->done && all)
			/* Unblocks the thread's recv with a clean close. */
			shutdown(cs->conn->ops->conn_fd(cs->conn), SHUT_RDWR);
		join = cs->used && (cs->done || all);
		pthread_mutex_unlock(&s->conns_lock);
		if (!join)
			continue;
		pthread_join(cs->thread, NULL);
		cs->used = cs->done = 0;
	}
}

static void accept_one(struct gn_server *s)
{
	struct gn_conn *c = NULL;
	struct conn_slot *cs = NULL;
	int rc = s->listener->ops->accept(s->listener, 0, &c);

	if (rc != 0) {
		if (rc != -ETIMEDOUT)
			GN_LOG(WARNING, runtime, "accept: %s", gn_last_error());
		return;
	}
	reap(s, 0);
	for (int i = 0; i < MAX_CONNS && cs == NULL; i++)
		if (!s->conns[i].used)
			cs = &s->conns[i];
	if (cs == NULL) {
		GN_LOG(WARNING, runtime, "%s: refused, %d connections open",
		       c->peer, MAX_CONNS);
		gn_conn_close(&c);
		return;
	}
	memset(cs, 0, sizeof(*cs));
	cs->srv = s;
	cs->conn = c;
	cs->plans = gn_plan_cache_create(PLANS_PER_CONN);
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
	GN_LOG(INFO, runtime, "%s: connected", c->peer);
}

int gn_server_run(struct gn_server *s)
{
	struct pollfd p[2] = {
		{.fd = s->listener->ops->listener_fd(s->listener),
		 .events = POLLIN},
		{.fd = s->stop_pipe[0], .events = POLLIN},
	};

	for (;;) {
		/* Blocks until a connection or a stop: no idle spinning. */
		int n = poll(p, 2, -1);

		if (n < 0 && errno != EINTR)
			return gn_error_set(-errno, "runtime: poll: %s",
					    strerror(errno));
		if (n <= 0)
			continue;
		if (p[1].revents)
			break;
		if (p[0].revents)
			accept_one(s);
	}
	GN_LOG(NOTICE, runtime, "stopping: closing %s", gn_server_addr(s));
	reap(s, 1);
	return 0;
}
