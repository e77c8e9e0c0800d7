/*
 * Sessions: where a client's work runs (see genie/session.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "coord_conn.h"
#include "frame.h"
#include "genie/control.pb-c.h"
#include "genie/coord.pb-c.h"
#include "genie/envelope.pb-c.h"
#include "gn_error.h"
#include "graph.h"
#include "pool.h"
#include "registry.h"

void gn_session_opts_init(struct gn_session_opts *opts, size_t opts_size)
{
	struct gn_session_opts d = {
		.opts_size = opts_size,
		.target = "local",
		.timeout_ms = 30000,
		.max_frame_size = GN_DEFAULT_MAX_PAYLOAD,
		.name = "genie-client",
	};

	if (opts == NULL)
		return;
	memcpy(opts, &d, opts_size < sizeof(d) ? opts_size : sizeof(d));
}

/*
 * Payload placement (transport.h): the armed reply, of the awaited type
 * and request id, lands in memory chosen before it is read: the caller's
 * buffer for a fetch, the session's arena for a plan's results. Asked on
 * the transport's thread (dpdk's engine), while the session's own thread
 * waits inside gn_client_call() and touches neither.
 */
static void *place_reply(void *arg, const struct gn_conn *c, const uint8_t *env,
			 size_t env_len, size_t payload_len)
{
	struct gn_session *s = arg;
	struct gn_envelope_peek e;
	void *dst = NULL;

	(void)c;
	pthread_mutex_lock(&s->place_lock);
	if (s->place_type != 0 && payload_len == s->place_len &&
	    gn_envelope_peek(env, env_len, &e) == 0 &&
	    e.type == s->place_type && e.request_id == s->place_req) {
		dst = s->place_dst ? s->place_dst
				   : gn_arena_alloc(s->arena, payload_len, 64);
		s->place_given = dst != NULL;
	}
	pthread_mutex_unlock(&s->place_lock);
	return dst;
}

/* The caller's buffer or the arena's: nothing to give back. */
static void unplace_reply(void *arg, void *buf)
{
	(void)arg;
	(void)buf;
}

void gn_client_placement_init(struct gn_session *s)
{
	const char *off = getenv("GENIE_NO_PLACEMENT");

	if (off != NULL && off[0] != '\0')
		return;
	s->placement = (struct gn_placement){place_reply, unplace_reply, s};
	gn_conn_set_placement(s->conn, &s->placement);
}

void gn_client_place_arm(struct gn_session *s, int reply_type, void *dst,
			 size_t len)
{
	pthread_mutex_lock(&s->place_lock);
	/* A payload of no bytes takes nothing: not armed. */
	s->place_type = len == 0 ? 0 : reply_type;
	s->place_dst = dst;
	s->place_len = len;
	s->place_req = s->next_request_id; /* what gn_client_call sends */
	s->place_given = false;
	pthread_mutex_unlock(&s->place_lock);
}

bool gn_client_place_disarm(struct gn_session *s)
{
	bool given;

	pthread_mutex_lock(&s->place_lock);
	given = s->place_given;
	s->place_type = 0;
	s->place_dst = NULL;
	s->place_given = false;
	pthread_mutex_unlock(&s->place_lock);
	return given;
}

int gn_client_call(struct gn_session *s, int type, const ProtobufCMessage *body,
		   const struct iovec *payload, int iovcnt, int reply_type,
		   const ProtobufCMessageDescriptor *reply_desc,
		   ProtobufCMessage **reply, struct gn_msg *msg)
{
	size_t cap = s->conn->limits.max_envelope;
	uint64_t req_id = s->next_request_id++;
	Genie__Envelope *env = NULL;
	uint8_t *buf;
	size_t len;
	int rc;

	*reply = NULL;
	memset(msg, 0, sizeof(*msg));
	rc = gn_envelope_pack(type, req_id, body, &buf, &len);
	if (rc != 0)
		return rc;
	rc = gn_conn_send(s->conn, buf, len, payload, iovcnt, s->timeout_ms);
	free(buf);
	if (rc != 0)
		return rc;
	rc = gn_conn_recv(s->conn, msg, s->timeout_ms);
	if (rc != 0)
		return rc;
	env = (Genie__Envelope *)gn_pb_unpack(&genie__envelope__descriptor,
					      msg->env, msg->env_len, cap);
	if (env == NULL) {
		rc = gn_last_error_code();
		goto fail;
	}
	if (env->request_id != req_id) {
		rc = gn_error_set(-EPROTO,
				  "reply to request %llu, expected %llu",
				  (unsigned long long)env->request_id,
				  (unsigned long long)req_id);
		goto fail;
	}
	if (env->type == GENIE__MSG_TYPE__MSG_TYPE_ERROR) {
		Genie__ErrorReply *e = (Genie__ErrorReply *)gn_pb_unpack(
			&genie__error_reply__descriptor, env->body.data,
			env->body.len, cap);

		rc = e ? gn_error_set(e->code < 0 ? e->code : -EPROTO,
				      "runtime: %s", e->message)
		       : gn_last_error_code();
		if (e)
			protobuf_c_message_free_unpacked(&e->base, NULL);
		goto fail;
	}
	if ((int)env->type != reply_type) {
		rc = gn_error_set(-EPROTO, "expected a %s reply, got type %d",
				  reply_desc->short_name, (int)env->type);
		goto fail;
	}
	*reply = gn_pb_unpack(reply_desc, env->body.data, env->body.len, cap);
	if (*reply == NULL) {
		rc = gn_last_error_code();
		goto fail;
	}
	protobuf_c_message_free_unpacked(&env->base, NULL);
	return 0;

fail:
	if (env)
		protobuf_c_message_free_unpacked(&env->base, NULL);
	gn_msg_release(msg);
	return rc;
}

/* Offer our schema versions and learn the runtime's backend. */
static int handshake(struct gn_session *s, const char *name)
{
	Genie__Hello h = GENIE__HELLO__INIT;
	Genie__HelloAck *ack;
	struct gn_msg msg;
	int rc;

	h.min_version = GN_SCHEMA_VERSION_MIN;
	h.max_version = GN_SCHEMA_VERSION;
	h.peer_name = (char *)name;
	rc = gn_client_call(s, GENIE__MSG_TYPE__MSG_TYPE_HELLO, &h.base, NULL,
			    0, GENIE__MSG_TYPE__MSG_TYPE_HELLO_ACK,
			    &genie__hello_ack__descriptor,
			    (ProtobufCMessage **)&ack, &msg);
	if (rc != 0)
		return rc;
	snprintf(s->backend_name, sizeof(s->backend_name), "%s", ack->backend);
	protobuf_c_message_free_unpacked(&ack->base, NULL);
	gn_msg_release(&msg);
	return 0;
}

static const char k_coord_scheme[] = "coordinator://";

/* Connect to the session's coordinator, over TLS when it has TLS files. */
static int coord_connect(struct gn_session *s, int timeout_ms)
{
	struct gn_tls_files f = {s->tls_ca, s->tls_cert, s->tls_key};

	return gn_coord_connect_tls(s->coord_url, s->secret, &f,
				    GENIE__PEER_ROLE__PEER_ROLE_CLIENT,
				    s->peer_name, timeout_ms, &s->coord);
}

/* strdup() of a non-empty string; NULL for NULL. -ENOMEM via *rc. */
static char *dup_opt(const char *v, int *rc)
{
	char *d;

	if (v == NULL)
		return NULL;
	d = strdup(v);
	if (d == NULL)
		*rc = -ENOMEM;
	return d;
}

/*
 * coordinator:// target: authenticate, PLACE, remember the session id
 * and node, and leave the runtime's target in `target`.
 */
static int coord_place(struct gn_session *s, const struct gn_session_opts *o,
		       char *target, size_t target_len)
{
	Genie__PlaceRequest req = GENIE__PLACE_REQUEST__INIT;
	Genie__PlaceReply *rep;
	int rc;

	snprintf(s->coord_url, sizeof(s->coord_url), "%s", o->target);
	snprintf(s->peer_name, sizeof(s->peer_name), "%s",
		 o->name ? o->name : "genie-client");
	s->secret = calloc(1, sizeof(*s->secret));
	if (s->secret == NULL)
		return gn_error_set(-ENOMEM, "session: out of memory");
	rc = gn_coord_load_secret(o->secret_file, s->secret);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		free(s->secret);
		s->secret = NULL;
	}
	{
		struct gn_tls_files f = {o->tls_ca, o->tls_cert, o->tls_key};

		rc = 0;
		gn_coord_tls_from_env(&f);
		s->tls_ca = dup_opt(f.ca, &rc);
		s->tls_cert = dup_opt(f.cert, &rc);
		s->tls_key = dup_opt(f.key, &rc);
		if (rc != 0)
			return gn_error_set(rc, "session: out of memory");
	}
	if (o->n_model_keys < 0 ||
	    (o->n_model_keys > 0 && o->model_keys == NULL))
		return gn_error_set(-EINVAL,
				    "session: %d model keys and keys %p",
				    o->n_model_keys, (void *)o->model_keys);
	if (o->policy == NULL || *o->policy == '\0') {
		req.policy = GENIE__PLACEMENT_POLICY__PLACEMENT_POLICY_DEFAULT;
	} else if (strcmp(o->policy, "least-loaded") == 0) {
		req.policy =
			GENIE__PLACEMENT_POLICY__PLACEMENT_POLICY_LEAST_LOADED;
	} else if (strcmp(o->policy, "bin-packing") == 0) {
		req.policy =
			GENIE__PLACEMENT_POLICY__PLACEMENT_POLICY_BIN_PACKING;
	} else if (strcmp(o->policy, "model-affinity") == 0) {
		req.policy =
			GENIE__PLACEMENT_POLICY__PLACEMENT_POLICY_MODEL_AFFINITY;
	} else {
		return gn_error_set(-EINVAL,
				    "session: placement policy '%s': expected "
				    "least-loaded, bin-packing or "
				    "model-affinity",
				    o->policy);
	}
	rc = coord_connect(s, s->timeout_ms);
	if (rc != 0)
		return rc;
	req.n_model_keys = (size_t)o->n_model_keys;
	req.model_keys = (char **)o->model_keys;
	req.tenant = (char *)(o->tenant ? o->tenant : "");
	req.priority = o->priority;
	req.device_kind = (char *)(o->device_kind ? o->device_kind : "");
	req.transport = (char *)(o->transport ? o->transport : "");
	rc = gn_coord_call(s->coord, GENIE__MSG_TYPE__MSG_TYPE_PLACE, &req.base,
			   GENIE__MSG_TYPE__MSG_TYPE_PLACE_REPLY,
			   &genie__place_reply__descriptor,
			   (ProtobufCMessage **)&rep);
	if (rc != 0)
		return rc;
	s->coord_session = rep->session_id;
	snprintf(s->node_id, sizeof(s->node_id), "%s", rep->node_id);
	if (strstr(rep->address, "://") != NULL)
		snprintf(target, target_len, "%s", rep->address);
	else
		snprintf(target, target_len, "tcp://%s", rep->address);
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	return 0;
}

/*
 * Tell the coordinator the session ended, on the connection PLACE used if
 * it is still open (a failed create), else on a fresh one; once more if
 * that one turns out dead.
 */
static void coord_release(struct gn_session *s)
{
	Genie__ReleaseSession r = GENIE__RELEASE_SESSION__INIT;
	ProtobufCMessage *ack = NULL;
	int rc = -ENOTCONN, saved_rc = gn_last_error_code();
	char saved[512];

	/* A failed create reports why it failed, not how the release went. */
	snprintf(saved, sizeof(saved), "%s", gn_last_error());
	r.session_id = s->coord_session;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (s->coord == NULL && coord_connect(s, 2000) != 0)
			break;
		rc = gn_coord_call(s->coord,
				   GENIE__MSG_TYPE__MSG_TYPE_RELEASE_SESSION,
				   &r.base, GENIE__MSG_TYPE__MSG_TYPE_COORD_ACK,
				   &genie__coord_ack__descriptor, &ack);
		if (rc == 0 || rc == -ENOENT || rc == -EINVAL)
			break;
		/* The connection died (coordinator restarted): once more. */
		gn_coord_close(&s->coord);
	}
	if (ack != NULL)
		protobuf_c_message_free_unpacked(ack, NULL);
	s->coord_session = 0;
	if (saved_rc != 0)
		gn_error_set(saved_rc, "%s", saved);
	else
		gn_error_clear();
}

struct gn_session *gn_session_create(const struct gn_session_opts *user)
{
	char placed[256];
	struct gn_session_opts opts;
	struct gn_transport_opts topts;
	struct gn_session *s;
	int rc;

	gn_session_opts_init(&opts, sizeof(opts));
	if (user != NULL) {
		if (user->opts_size == 0 || user->opts_size > sizeof(opts)) {
			gn_error_set(-EINVAL,
				     "session: opts_size %zu, expected 1..%zu "
				     "(call gn_session_opts_init)",
				     user->opts_size, sizeof(opts));
			return NULL;
		}
		memcpy(&opts, user, user->opts_size);
	}
	if (opts.target == NULL)
		opts.target = "local";
	if (opts.timeout_ms == 0)
		opts.timeout_ms = 30000; /* 0 would fail every wait at once */
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		gn_error_set(-ENOMEM, "session: out of memory");
		return NULL;
	}
	pthread_mutex_init(&s->place_lock, NULL);
	s->timeout_ms = opts.timeout_ms;
	s->passes = GN_PASS_ALL;
	s->fold_bytes = 64 * 1024;
	s->dot_path = getenv("GENIE_DOT");
	s->next_request_id = 1;
	s->arena = gn_arena_create(0);
	if (s->arena == NULL)
		goto fail;

	if (strcmp(opts.target, "local") == 0) {
		s->kind = GN_TARGET_LOCAL;
		rc = gn_backend_open("cpu", &s->backend);
		if (rc != 0)
			goto fail;
		snprintf(s->backend_name, sizeof(s->backend_name), "%s",
			 s->backend.ops->name);
		return s;
	}
	s->kind = GN_TARGET_REMOTE;
	if (strncmp(opts.target, k_coord_scheme, strlen(k_coord_scheme)) == 0) {
		rc = coord_place(s, &opts, placed, sizeof(placed));
		if (rc != 0)
			goto fail;
		opts.target = placed;
	}
	gn_transport_opts_init(&topts, sizeof(topts));
	topts.limits.max_payload = opts.max_frame_size;
	rc = gn_connect(opts.target, &topts, opts.timeout_ms, &s->conn);
	if (rc != 0) {
		if (rc == -EINVAL && strstr(opts.target, "://") == NULL)
			gn_error_set(
				rc,
				"session: target '%s', expected \"local\", "
				"\"tcp://HOST:PORT\" or "
				"\"coordinator://HOST:PORT\"",
				opts.target);
		else if (s->node_id[0] != '\0') {
			char why[256];

			snprintf(why, sizeof(why), "%s", gn_last_error());
			gn_error_set(rc,
				     "session: coordinator placed it on node "
				     "'%s' at %s, which cannot be reached: %s",
				     s->node_id, opts.target, why);
		}
		goto fail;
	}
	rc = handshake(s, opts.name ? opts.name : "genie-client");
	if (rc != 0)
		goto fail;
	gn_client_placement_init(s);
	/*
	 * The coordinator serves a bounded number of connections and does not
	 * tie sessions to them: hang up now, say goodbye on a fresh one.
	 */
	gn_coord_close(&s->coord);
	return s;

fail:
	gn_session_destroy(&s);
	return NULL;
}

void gn_session_destroy(struct gn_session **sp)
{
	struct gn_session *s;
	uint8_t *buf;
	size_t len;

	if (sp == NULL || *sp == NULL)
		return;
	s = *sp;
	if (s->conn != NULL) {
		/* Best effort: the runtime also copes with a silent close. */
		if (gn_envelope_pack(GENIE__MSG_TYPE__MSG_TYPE_GOODBYE, 0, NULL,
				     &buf, &len) == 0) {
			gn_conn_send(s->conn, buf, len, NULL, 0, 1000);
			free(buf);
		}
		gn_conn_close(&s->conn);
	}
	if (s->coord_session != 0)
		coord_release(s);
	gn_coord_close(&s->coord);
	if (s->secret != NULL)
		explicit_bzero(s->secret, sizeof(*s->secret));
	free(s->secret);
	free(s->tls_ca);
	free(s->tls_cert);
	free(s->tls_key);
	/* A local session's resident tensors go before their backend. */
	gn_registry_destroy(&s->registry);
	gn_pool_destroy(&s->pool);
	pthread_mutex_destroy(&s->place_lock);
	gn_backend_close(&s->backend);
	gn_arena_destroy(&s->arena);
	free(s);
	*sp = NULL;
}

int gn_session_get_stats(const struct gn_session *s,
			 struct gn_session_stats *stats)
{
	if (s == NULL || stats == NULL)
		return gn_error_set(-EINVAL, "session stats: NULL argument");
	*stats = s->stats;
	if (s->conn != NULL) {
		stats->bytes_sent = s->conn->stats.bytes_sent;
		stats->bytes_received = s->conn->stats.bytes_received;
	}
	return 0;
}

const char *gn_session_backend(const struct gn_session *s)
{
	return s ? s->backend_name : "";
}

const char *gn_session_node(const struct gn_session *s)
{
	return s ? s->node_id : "";
}

int gn_session_shared_keys(const struct gn_session *s, char (*keys)[65],
			   int max)
{
	static const char hex[] = "0123456789abcdef";
	int n;

	if (s == NULL || max < 0 || (max > 0 && keys == NULL))
		return gn_error_set(-EINVAL,
				    "shared_keys: NULL session or keys, or "
				    "max %d",
				    max);
	n = (int)s->n_shared_keys < max ? (int)s->n_shared_keys : max;
	for (int i = 0; i < n; i++) {
		for (int b = 0; b < 32; b++) {
			keys[i][2 * b] = hex[s->shared_keys[i][b] >> 4];
			keys[i][2 * b + 1] = hex[s->shared_keys[i][b] & 15];
		}
		keys[i][64] = '\0';
	}
	return n;
}
