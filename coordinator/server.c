/*
 * The coordinator's connections: the accept loop, one thread per
 * connection, the hello/auth handshake and dispatch by envelope type.
 *
 * Every connection opens with CoordHello -> AuthChallenge{nonce, version}
 * -> AuthResponse{mac} -> CoordHelloAck; anything else, or a wrong MAC,
 * gets an ErrorReply and the connection is closed, logged with the peer's
 * address. A frame over the cap, a truncated frame or bytes that do not
 * unpack close only that connection. Request ids are echoed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "coord_internal.h"
#include "frame.h"
#include "genie/control.pb-c.h"
#include "gn_error.h"

GN_LOG_REGISTER(coord)

/* A peer has this long to finish the handshake. */
#define HANDSHAKE_MS 10000

void gn_coordinator_opts_init(struct gn_coordinator_opts *opts,
			      size_t opts_size)
{
	struct gn_coordinator_opts d = {
		.opts_size = opts_size,
		.listen = "tcp://127.0.0.1:7000",
		.http = NULL,
		.state_path = "genie-coordinator.sqlite",
		.secret_path = NULL,
		.name = "genie-coordinator",
		.heartbeat_ms = 1000,
		.policy = GN_POLICY_LEAST_LOADED,
		.max_sessions_per_node = 64,
		.max_envelope = 1u << 20,
	};

	memcpy(opts, &d, opts_size < sizeof(d) ? opts_size : sizeof(d));
}

static int send_env(struct coord_conn *cs, const uint8_t *env, size_t len)
{
	return gn_conn_send(cs->conn, env, len, NULL, 0, 10000);
}

static int send_msg(struct coord_conn *cs, int type, uint64_t req_id,
		    const ProtobufCMessage *body)
{
	uint8_t *env;
	size_t len;
	int rc = gn_envelope_pack(type, req_id, body, &env, &len);

	if (rc != 0)
		return rc;
	rc = send_env(cs, env, len);
	free(env);
	return rc;
}

static int send_error(struct coord_conn *cs, uint64_t req_id, int code,
		      const char *msg)
{
	Genie__ErrorReply er = GENIE__ERROR_REPLY__INIT;

	er.code = code;
	er.message = (char *)msg;
	return send_msg(cs, GENIE__MSG_TYPE__MSG_TYPE_ERROR, req_id, &er.base);
}

static int send_ack(struct coord_conn *cs, uint64_t req_id, const char *detail)
{
	Genie__CoordAck ack = GENIE__COORD_ACK__INIT;

	ack.detail = (char *)detail;
	return send_msg(cs, GENIE__MSG_TYPE__MSG_TYPE_COORD_ACK, req_id,
			&ack.base);
}

static const char *role_name(int role)
{
	switch (role) {
	case GENIE__PEER_ROLE__PEER_ROLE_RUNTIME: return "runtime";
	case GENIE__PEER_ROLE__PEER_ROLE_CLIENT: return "client";
	case GENIE__PEER_ROLE__PEER_ROLE_ADMIN: return "admin";
	default: return "invalid";
	}
}

static int handle_hello(struct coord_conn *cs, const Genie__Envelope *env)
{
	Genie__AuthChallenge ch = GENIE__AUTH_CHALLENGE__INIT;
	Genie__CoordHello *h;
	char msg[256];
	uint32_t v;
	int rc;

	h = (Genie__CoordHello *)gn_pb_unpack(&genie__coord_hello__descriptor,
					      env->body.data, env->body.len,
					      cs->c->opts.max_envelope);
	if (h == NULL)
		return gn_last_error_code();
	v = h->max_version < GN_SCHEMA_VERSION ? h->max_version
					       : GN_SCHEMA_VERSION;
	if (v < GN_SCHEMA_VERSION_MIN || v < h->min_version) {
		snprintf(msg, sizeof(msg),
			 "schema versions %u..%u offered, this coordinator "
			 "speaks %u..%u",
			 h->min_version, h->max_version, GN_SCHEMA_VERSION_MIN,
			 GN_SCHEMA_VERSION);
		rc = gn_error_set(-EPROTONOSUPPORT, "%s", msg);
		send_error(cs, env->request_id, rc, msg);
		goto out;
	}
	if (h->role < GENIE__PEER_ROLE__PEER_ROLE_RUNTIME ||
	    h->role > GENIE__PEER_ROLE__PEER_ROLE_ADMIN ||
	    strlen(h->peer_name) > GN_AUTH_NAME_MAX) {
		rc = gn_error_set(
			-EINVAL,
			"hello: role %d (expected runtime, client or "
			"admin) with a name of %zu bytes (at most %d)",
			(int)h->role, strlen(h->peer_name), GN_AUTH_NAME_MAX);
		send_error(cs, env->request_id, rc, gn_last_error());
		goto out;
	}
	rc = gn_auth_nonce(cs->nonce);
	if (rc != 0)
		goto out;
	cs->version = v;
	cs->role = h->role;
	snprintf(cs->peer_name, sizeof(cs->peer_name), "%s", h->peer_name);
	ch.nonce.data = cs->nonce;
	ch.nonce.len = sizeof(cs->nonce);
	ch.version = v;
	rc = send_msg(cs, GENIE__MSG_TYPE__MSG_TYPE_AUTH_CHALLENGE,
		      env->request_id, &ch.base);
	cs->stage = 1;
out:
	protobuf_c_message_free_unpacked(&h->base, NULL);
	return rc;
}

static int handle_auth(struct coord_conn *cs, const Genie__Envelope *env)
{
	Genie__CoordHelloAck ack = GENIE__COORD_HELLO_ACK__INIT;
	Genie__AuthResponse *r;
	int rc;

	r = (Genie__AuthResponse *)gn_pb_unpack(
		&genie__auth_response__descriptor, env->body.data,
		env->body.len, cs->c->opts.max_envelope);
	if (r == NULL)
		return gn_last_error_code();
	rc = gn_auth_verify(&cs->c->secret, cs->nonce, (uint32_t)cs->role,
			    cs->peer_name, r->mac.data, r->mac.len);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	if (rc != 0) {
		atomic_fetch_add(&cs->c->auth_failures, 1);
		GN_LOG(WARNING, coord, "%s: %s (role %s)", cs->conn->peer,
		       gn_last_error(), role_name(cs->role));
		send_error(cs, env->request_id, -EACCES, gn_last_error());
		return -EACCES;
	}
	cs->stage = 2;
	GN_LOG(INFO, coord, "%s: '%s' authenticated as %s, schema version %u",
	       cs->conn->peer, cs->peer_name, role_name(cs->role), cs->version);
	ack.version = cs->version;
	ack.coordinator_name = cs->c->name;
	return send_msg(cs, GENIE__MSG_TYPE__MSG_TYPE_COORD_HELLO_ACK,
			env->request_id, &ack.base);
}

/* Unpack `env`'s body as `desc` or answer the error; NULL then. */
static ProtobufCMessage *body_of(struct coord_conn *cs,
				 const Genie__Envelope *env,
				 const ProtobufCMessageDescriptor *desc)
{
	ProtobufCMessage *m = gn_pb_unpack(desc, env->body.data, env->body.len,
					   cs->c->opts.max_envelope);

	if (m == NULL)
		send_error(cs, env->request_id, gn_last_error_code(),
			   gn_last_error());
	return m;
}

static int need_role(struct coord_conn *cs, const Genie__Envelope *env,
		     int role, int role2, const char *what)
{
	if (cs->role == role || cs->role == role2)
		return 0;
	gn_error_set(-EPERM, "role %s may not send %s", role_name(cs->role),
		     what);
	send_error(cs, env->request_id, -EPERM, gn_last_error());
	return -EPERM;
}

/* Send a reply packed by the registry, or the error it set. */
static int reply(struct coord_conn *cs, uint64_t req_id, int rc, uint8_t *env,
		 size_t len)
{
	if (rc != 0)
		return send_error(cs, req_id, rc, gn_last_error());
	rc = send_env(cs, env, len);
	free(env);
	return rc;
}

static int serve(struct coord_conn *cs, const Genie__Envelope *env)
{
	struct gn_coordinator *c = cs->c;
	uint64_t rid = env->request_id;
	uint8_t *out = NULL;
	size_t out_len = 0;
	int rc;

	switch (env->type) {
	case GENIE__MSG_TYPE__MSG_TYPE_REGISTER: {
		Genie__RegisterAck ack = GENIE__REGISTER_ACK__INIT;
		int idx;

		if (need_role(cs, env, GENIE__PEER_ROLE__PEER_ROLE_RUNTIME, -1,
			      "REGISTER"))
			return 0;
		idx = coord_register(c, env->body.data, env->body.len);
		if (idx < 0)
			return send_error(cs, rid, idx, gn_last_error());
		cs->node = idx;
		pthread_mutex_lock(&c->lock);
		ack.node_id = c->nodes[idx].id;
		pthread_mutex_unlock(&c->lock);
		ack.heartbeat_interval_ms = c->opts.heartbeat_ms;
		return send_msg(cs, GENIE__MSG_TYPE__MSG_TYPE_REGISTER_ACK, rid,
				&ack.base);
	}
	case GENIE__MSG_TYPE__MSG_TYPE_HEARTBEAT: {
		Genie__HeartbeatAck ack = GENIE__HEARTBEAT_ACK__INIT;
		Genie__Heartbeat *hb;
		bool drained = false;

		if (need_role(cs, env, GENIE__PEER_ROLE__PEER_ROLE_RUNTIME, -1,
			      "HEARTBEAT"))
			return 0;
		hb = (Genie__Heartbeat *)body_of(cs, env,
						 &genie__heartbeat__descriptor);
		if (hb == NULL)
			return 0;
		if (cs->node < 0) {
			gn_error_set(-ENOENT,
				     "heartbeat from node '%s' before REGISTER "
				     "on this connection",
				     hb->node_id);
			rc = send_error(cs, rid, -ENOENT, gn_last_error());
		} else {
			rc = coord_heartbeat(c, cs->node, hb, &drained);
			if (rc != 0) {
				rc = send_error(cs, rid, rc, gn_last_error());
			} else {
				ack.seq = hb->seq;
				ack.drained = drained;
				rc = send_msg(
					cs,
					GENIE__MSG_TYPE__MSG_TYPE_HEARTBEAT_ACK,
					rid, &ack.base);
			}
		}
		protobuf_c_message_free_unpacked(&hb->base, NULL);
		return rc;
	}
	case GENIE__MSG_TYPE__MSG_TYPE_PLACE: {
		Genie__PlaceRequest *rq;

		if (need_role(cs, env, GENIE__PEER_ROLE__PEER_ROLE_CLIENT,
			      GENIE__PEER_ROLE__PEER_ROLE_ADMIN, "PLACE"))
			return 0;
		rq = (Genie__PlaceRequest *)body_of(
			cs, env, &genie__place_request__descriptor);
		if (rq == NULL)
			return 0;
		rc = coord_place(c, rq, rid, &out, &out_len);
		protobuf_c_message_free_unpacked(&rq->base, NULL);
		if (rc != 0)
			GN_LOG(NOTICE, coord, "%s: %s", cs->conn->peer,
			       gn_last_error());
		return reply(cs, rid, rc, out, out_len);
	}
	case GENIE__MSG_TYPE__MSG_TYPE_RELEASE_SESSION: {
		Genie__ReleaseSession *rs;

		if (need_role(cs, env, GENIE__PEER_ROLE__PEER_ROLE_CLIENT,
			      GENIE__PEER_ROLE__PEER_ROLE_ADMIN,
			      "RELEASE_SESSION"))
			return 0;
		rs = (Genie__ReleaseSession *)body_of(
			cs, env, &genie__release_session__descriptor);
		if (rs == NULL)
			return 0;
		rc = coord_release(c, rs->session_id);
		protobuf_c_message_free_unpacked(&rs->base, NULL);
		if (rc != 0)
			return send_error(cs, rid, rc, gn_last_error());
		return send_ack(cs, rid, "released");
	}
	case GENIE__MSG_TYPE__MSG_TYPE_LIST_NODES:
		if (need_role(cs, env, GENIE__PEER_ROLE__PEER_ROLE_ADMIN, -1,
			      "LIST_NODES"))
			return 0;
		rc = coord_list_nodes(c, NULL, rid, &out, &out_len);
		return reply(cs, rid, rc, out, out_len);
	case GENIE__MSG_TYPE__MSG_TYPE_DESCRIBE_NODE: {
		Genie__DescribeNode *d;

		if (need_role(cs, env, GENIE__PEER_ROLE__PEER_ROLE_ADMIN, -1,
			      "DESCRIBE_NODE"))
			return 0;
		d = (Genie__DescribeNode *)body_of(
			cs, env, &genie__describe_node__descriptor);
		if (d == NULL)
			return 0;
		rc = coord_list_nodes(c, d->node_id, rid, &out, &out_len);
		protobuf_c_message_free_unpacked(&d->base, NULL);
		return reply(cs, rid, rc, out, out_len);
	}
	case GENIE__MSG_TYPE__MSG_TYPE_LIST_SESSIONS:
		if (need_role(cs, env, GENIE__PEER_ROLE__PEER_ROLE_ADMIN, -1,
			      "LIST_SESSIONS"))
			return 0;
		rc = coord_list_sessions(c, rid, &out, &out_len);
		return reply(cs, rid, rc, out, out_len);
	case GENIE__MSG_TYPE__MSG_TYPE_DRAIN: {
		Genie__DrainNode *d;
		char detail[GN_COORD_ID_MAX + 32];

		if (need_role(cs, env, GENIE__PEER_ROLE__PEER_ROLE_ADMIN, -1,
			      "DRAIN"))
			return 0;
		d = (Genie__DrainNode *)body_of(cs, env,
						&genie__drain_node__descriptor);
		if (d == NULL)
			return 0;
		rc = coord_drain(c, d->node_id, d->drain);
		snprintf(detail, sizeof(detail), "node '%.*s' %s",
			 GN_COORD_ID_MAX - 1, d->node_id,
			 d->drain ? "drained" : "undrained");
		protobuf_c_message_free_unpacked(&d->base, NULL);
		if (rc != 0)
			return send_error(cs, rid, rc, gn_last_error());
		return send_ack(cs, rid, detail);
	}
	case GENIE__MSG_TYPE__MSG_TYPE_GOODBYE: return 1;
	default:
		/* Unknown but well-framed: say so and keep the connection. */
		gn_error_set(-EPROTO, "unexpected message type %d",
			     (int)env->type);
		return send_error(cs, rid, -EPROTO, gn_last_error());
	}
}

/* 0 keeps the connection, 1 is a goodbye, <0 closes it. */
static int dispatch(struct coord_conn *cs, const struct gn_msg *msg)
{
	Genie__Envelope *env;
	int rc;

	env = (Genie__Envelope *)gn_pb_unpack(&genie__envelope__descriptor,
					      msg->env, msg->env_len,
					      cs->conn->limits.max_envelope);
	if (env == NULL)
		return gn_last_error_code();
	if (cs->stage == 0 &&
	    env->type != GENIE__MSG_TYPE__MSG_TYPE_COORD_HELLO) {
		rc = gn_error_set(-EACCES,
				  "authentication refused: expected CoordHello "
				  "as the first message, got type %d",
				  (int)env->type);
		atomic_fetch_add(&cs->c->auth_failures, 1);
		send_error(cs, env->request_id, rc, gn_last_error());
		goto out;
	}
	if (cs->stage == 1 &&
	    env->type != GENIE__MSG_TYPE__MSG_TYPE_AUTH_RESPONSE) {
		rc = gn_error_set(-EACCES,
				  "authentication refused: expected "
				  "AuthResponse, got type %d",
				  (int)env->type);
		atomic_fetch_add(&cs->c->auth_failures, 1);
		send_error(cs, env->request_id, rc, gn_last_error());
		goto out;
	}
	if (cs->stage > 0 && env->version != cs->version) {
		rc = gn_error_set(-EPROTONOSUPPORT,
				  "message at schema version %u, connection "
				  "negotiated %u",
				  env->version, cs->version);
		send_error(cs, env->request_id, rc, gn_last_error());
		goto out;
	}
	if (cs->stage == 0)
		rc = handle_hello(cs, env);
	else if (cs->stage == 1)
		rc = handle_auth(cs, env);
	else if (env->type == GENIE__MSG_TYPE__MSG_TYPE_COORD_HELLO ||
		 env->type == GENIE__MSG_TYPE__MSG_TYPE_AUTH_RESPONSE)
		rc = gn_error_set(-EPROTO, "second handshake on a connection");
	else
		rc = serve(cs, env);
out:
	protobuf_c_message_free_unpacked(&env->base, NULL);
	return rc;
}

static void *conn_thread(void *arg)
{
	struct coord_conn *cs = arg;
	struct gn_coordinator *c = cs->c;
	struct gn_msg msg;
	int rc;

	for (;;) {
		rc = gn_conn_recv(cs->conn, &msg,
				  cs->stage < 2 ? HANDSHAKE_MS : -1);
		if (rc != 0)
			break;
		rc = dispatch(cs, &msg);
		gn_msg_release(&msg);
		if (rc != 0)
			break;
	}
	if (rc == 1 || rc == -ECONNRESET) {
		GN_LOG(INFO, coord, "%s: connection closed (%s)",
		       cs->conn->peer, rc == 1 ? "goodbye" : "peer left");
	} else if (rc == -EACCES) {
		/* A TLS refusal arrives here from recv, before any hello. */
		if (cs->stage == 0)
			atomic_fetch_add(&c->auth_failures, 1);
		GN_LOG(WARNING, coord,
		       "%s: closing unauthenticated connection: %s",
		       cs->conn->peer, gn_last_error());
	} else {
		if (rc == -EMSGSIZE || rc == -EBADMSG || rc == -EPROTO)
			atomic_fetch_add(&c->bad_frames, 1);
		GN_LOG(WARNING, coord, "%s: closing connection: %s",
		       cs->conn->peer, gn_last_error());
	}
	if (cs->node >= 0)
		GN_LOG(INFO, coord,
		       "%s: node connection gone; health follows heartbeats",
		       cs->conn->peer);
	pthread_mutex_lock(&c->conns_lock);
	gn_conn_close(&cs->conn);
	cs->done = 1;
	pthread_mutex_unlock(&c->conns_lock);
	return NULL;
}

static void reap(struct gn_coordinator *c, int all)
{
	for (int i = 0; i < GN_COORD_MAX_CONNS; i++) {
		struct coord_conn *cs = &c->conns[i];
		int join;

		pthread_mutex_lock(&c->conns_lock);
		if (cs->used && !cs->done && all)
			shutdown(cs->conn->ops->conn_fd(cs->conn), SHUT_RDWR);
		join = cs->used && (cs->done || all);
		pthread_mutex_unlock(&c->conns_lock);
		if (!join)
			continue;
		pthread_join(cs->thread, NULL);
		cs->used = cs->done = 0;
	}
}

static void accept_one(struct gn_coordinator *c)
{
	struct gn_conn *conn = NULL;
	struct coord_conn *cs = NULL;
	int rc = c->listener->ops->accept(c->listener, 0, &conn);

	if (rc != 0) {
		if (rc != -ETIMEDOUT)
			GN_LOG(WARNING, coord, "accept: %s", gn_last_error());
		return;
	}
	reap(c, 0);
	for (int i = 0; i < GN_COORD_MAX_CONNS && cs == NULL; i++)
		if (!c->conns[i].used)
			cs = &c->conns[i];
	if (cs == NULL) {
		GN_LOG(WARNING, coord, "%s: refused, %d connections open",
		       conn->peer, GN_COORD_MAX_CONNS);
		gn_conn_close(&conn);
		return;
	}
	memset(cs, 0, sizeof(*cs));
	cs->c = c;
	cs->conn = conn;
	cs->node = -1;
	cs->used = 1;
	if (pthread_create(&cs->thread, NULL, conn_thread, cs) != 0) {
		GN_LOG(ERR, coord, "%s: cannot start a thread", conn->peer);
		gn_conn_close(&cs->conn);
		cs->used = 0;
		return;
	}
	atomic_fetch_add(&c->connections, 1);
	GN_LOG(DEBUG, coord, "%s: connected", conn->peer);
}

static void *checker_thread(void *arg)
{
	struct gn_coordinator *c = arg;
	uint32_t period =
		c->opts.heartbeat_ms / 4 ? c->opts.heartbeat_ms / 4 : 1;

	pthread_mutex_lock(&c->stop_lock);
	while (!c->stopping) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)(period % 1000) * 1000000L;
		ts.tv_sec += period / 1000 + ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&c->stop_cond, &c->stop_lock, &ts);
		if (c->stopping)
			break;
		pthread_mutex_unlock(&c->stop_lock);
		coord_check(c);
		pthread_mutex_lock(&c->stop_lock);
	}
	pthread_mutex_unlock(&c->stop_lock);
	return NULL;
}

struct gn_coordinator *
gn_coordinator_create(const struct gn_coordinator_opts *opts)
{
	struct gn_transport_opts topts;
	const char *listen_url;
	char tls_url[300];
	struct gn_coordinator *c;
	int rc;

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		gn_error_set(-ENOMEM, "coordinator: no memory");
		return NULL;
	}
	gn_coordinator_opts_init(&c->opts, sizeof(c->opts));
	memcpy(&c->opts, opts,
	       opts->opts_size < sizeof(c->opts) ? opts->opts_size
						 : sizeof(c->opts));
	snprintf(c->name, sizeof(c->name), "%s", c->opts.name);
	c->stop_pipe[0] = c->stop_pipe[1] = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->conns_lock, NULL);
	pthread_mutex_init(&c->stop_lock, NULL);
	pthread_cond_init(&c->stop_cond, NULL);
	if (c->opts.heartbeat_ms == 0) {
		gn_error_set(-EINVAL, "coordinator: heartbeat interval 0 ms");
		goto fail;
	}
	if (c->opts.secret_path == NULL) {
		gn_error_set(-EINVAL, "coordinator: no --secret file given");
		goto fail;
	}
	if (gn_auth_load_secret(c->opts.secret_path, &c->secret) != 0)
		goto fail;
	if (pipe2(c->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		gn_error_set(-errno, "coordinator: pipe: %s", strerror(errno));
		goto fail;
	}
	if (coord_registry_init(c) != 0)
		goto fail;
	if (gn_coord_state_open(c->opts.state_path, &c->state) != 0)
		goto fail;
	if (coord_load_state(c) != 0)
		goto fail;
	gn_transport_opts_init(&topts, sizeof(topts));
	listen_url = c->opts.listen;
	topts.limits.max_envelope = c->opts.max_envelope;
	topts.limits.max_payload = 0; /* control messages carry no payload */
	if (c->opts.tls_cert != NULL || c->opts.tls_key != NULL ||
	    c->opts.tls_ca != NULL) {
		const char *sep = strstr(c->opts.listen, "://");

		/* The same address, over the "tls" transport. */
		snprintf(tls_url, sizeof(tls_url), "tls://%s",
			 sep != NULL ? sep + 3 : c->opts.listen);
		topts.tls.cert = c->opts.tls_cert;
		topts.tls.key = c->opts.tls_key;
		topts.tls.ca = c->opts.tls_ca;
		listen_url = tls_url;
	}
	rc = gn_listen(listen_url, &topts, &c->listener);
	if (rc != 0)
		goto fail;
	if (c->opts.http != NULL && coord_http_start(c) != 0)
		goto fail;
	if (pthread_create(&c->checker, NULL, checker_thread, c) != 0) {
		gn_error_set(-EAGAIN, "coordinator: cannot start the checker");
		goto fail;
	}
	c->checker_started = 1;
	atomic_store(&c->ready, 1);
	return c;
fail:
	gn_coordinator_destroy(&c);
	return NULL;
}

const char *gn_coordinator_addr(const struct gn_coordinator *c)
{
	return c->listener->addr;
}

int gn_coordinator_http_port(const struct gn_coordinator *c)
{
	return c->http_port;
}

void gn_coordinator_stop(struct gn_coordinator *c)
{
	char b = 1;
	ssize_t rc = write(c->stop_pipe[1], &b, 1);

	(void)rc; /* a full pipe already holds a stop request */
}

int gn_coordinator_run(struct gn_coordinator *c)
{
	struct pollfd p[2] = {
		{.fd = c->listener->ops->listener_fd(c->listener),
		 .events = POLLIN},
		{.fd = c->stop_pipe[0], .events = POLLIN},
	};
	int rc = 0;

	for (;;) {
		int n = poll(p, 2, -1);

		if (n < 0 && errno != EINTR) {
			rc = gn_error_set(-errno, "coordinator: poll: %s",
					  strerror(errno));
			break;
		}
		if (n <= 0)
			continue;
		if (p[1].revents)
			break;
		if (p[0].revents)
			accept_one(c);
	}
	GN_LOG(NOTICE, coord, "stopping: closing %s", gn_coordinator_addr(c));
	atomic_store(&c->ready, 0);
	reap(c, 1);
	return rc;
}

void gn_coordinator_destroy(struct gn_coordinator **cp)
{
	struct gn_coordinator *c;

	if (cp == NULL || *cp == NULL)
		return;
	c = *cp;
	if (c->checker_started) {
		pthread_mutex_lock(&c->stop_lock);
		c->stopping = 1;
		pthread_cond_signal(&c->stop_cond);
		pthread_mutex_unlock(&c->stop_lock);
		pthread_join(c->checker, NULL);
	}
	coord_http_stop(c);
	reap(c, 1);
	gn_listener_close(&c->listener);
	gn_coord_state_close(&c->state);
	if (c->nodes != NULL)
		coord_registry_fini(c);
	if (c->stop_pipe[0] >= 0)
		close(c->stop_pipe[0]);
	if (c->stop_pipe[1] >= 0)
		close(c->stop_pipe[1]);
	pthread_cond_destroy(&c->stop_cond);
	pthread_mutex_destroy(&c->stop_lock);
	pthread_mutex_destroy(&c->conns_lock);
	pthread_mutex_destroy(&c->lock);
	explicit_bzero(&c->secret, sizeof(c->secret));
	free(c);
	*cp = NULL;
}
