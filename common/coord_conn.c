/*
 * Control-plane connections to genie-coordinator (see coord_conn.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord_conn.h"
#include "frame.h"
#include "genie/control.pb-c.h"
#include "genie/coord.pb-c.h"
#include "genie/envelope.pb-c.h"
#include "gn_error.h"

int gn_coord_addr(const char *url, char *out, size_t out_len)
{
	static const char *const schemes[] = {"tcp://", "coordinator://"};
	const char *rest = url;
	char host[128];
	uint16_t port;
	int rc;

	if (url == NULL || *url == '\0')
		return gn_error_set(-EINVAL,
				    "coordinator address is empty, expected "
				    "HOST:PORT");
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strncmp(url, schemes[i], strlen(schemes[i])) == 0)
			rest = url + strlen(schemes[i]);
	if (rest == url && strstr(url, "://") != NULL)
		return gn_error_set(-EINVAL,
				    "coordinator address '%s': expected "
				    "HOST:PORT, tcp://HOST:PORT or "
				    "coordinator://HOST:PORT",
				    url);
	rc = gn_addr_split(rest, host, sizeof(host), &port);
	if (rc != 0)
		return gn_error_set(rc,
				    "coordinator address '%s': expected "
				    "HOST:PORT",
				    url);
	if ((size_t)snprintf(out, out_len, "%s", rest) >= out_len)
		return gn_error_set(
			-EINVAL, "coordinator address '%s' is too long", url);
	return 0;
}

/*
 * Set `rc` with "PREFIX: <the current detail>". The detail is copied
 * first: gn_error_set() writes the buffer gn_last_error() reads.
 */
static int __attribute__((format(printf, 2, 3)))
wrap_error(int rc, const char *fmt, ...)
{
	char prefix[256], detail[512];
	va_list ap;

	snprintf(detail, sizeof(detail), "%s", gn_last_error());
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	return gn_error_set(rc, "%s: %s", prefix, detail);
}

/* Send one envelope of `type`; request id `id`. */
static int send_msg(struct gn_coord_conn *c, int type, uint64_t id,
		    const ProtobufCMessage *body)
{
	uint8_t *buf;
	size_t len;
	int rc;

	rc = gn_envelope_pack(type, id, body, &buf, &len);
	if (rc != 0)
		return rc;
	rc = gn_conn_send(c->conn, buf, len, NULL, 0, c->timeout_ms);
	free(buf);
	return rc;
}

/*
 * Receive one envelope. Returns it (free with
 * protobuf_c_message_free_unpacked()) or NULL with the error set.
 */
static Genie__Envelope *recv_env(struct gn_coord_conn *c, struct gn_msg *msg)
{
	Genie__Envelope *env;
	int rc;

	rc = gn_conn_recv(c->conn, msg, c->timeout_ms);
	if (rc != 0)
		return NULL;
	env = (Genie__Envelope *)gn_pb_unpack(&genie__envelope__descriptor,
					      msg->env, msg->env_len,
					      c->conn->limits.max_envelope);
	if (env == NULL)
		gn_msg_release(msg);
	return env;
}

/* The ErrorReply inside `env` as (code, message); returns the code. */
static int error_of(struct gn_coord_conn *c, const Genie__Envelope *env,
		    char *text, size_t text_len)
{
	Genie__ErrorReply *e;
	int code;

	e = (Genie__ErrorReply *)gn_pb_unpack(&genie__error_reply__descriptor,
					      env->body.data, env->body.len,
					      c->conn->limits.max_envelope);
	if (e == NULL) {
		snprintf(text, text_len, "an ErrorReply that does not unpack");
		return -EPROTO;
	}
	code = e->code < 0 ? e->code : -EPROTO;
	snprintf(text, text_len, "%s", e->message);
	protobuf_c_message_free_unpacked(&e->base, NULL);
	return code;
}

/* Turn a handshake ErrorReply into the error the caller should see. */
static int handshake_error(struct gn_coord_conn *c, const Genie__Envelope *env,
			   int after_auth)
{
	char text[512];
	int code = error_of(c, env, text, sizeof(text));

	if (code == -EACCES || (after_auth && code == -EPERM))
		return gn_error_set(-EACCES,
				    "authentication refused by coordinator "
				    "%s (wrong secret?): %s",
				    c->addr, text);
	if (code == -EPROTONOSUPPORT)
		return gn_error_set(code,
				    "coordinator %s refused schema versions "
				    "%u..%u: %s",
				    c->addr, GN_SCHEMA_VERSION_MIN,
				    GN_SCHEMA_VERSION, text);
	return gn_error_set(code, "coordinator %s refused the connection: %s",
			    c->addr, text);
}

/* Answer the challenge in `env`: AuthResponse{mac}. */
static int answer_challenge(struct gn_coord_conn *c, const Genie__Envelope *env,
			    const struct gn_auth_secret *secret, uint32_t role,
			    const char *peer_name)
{
	Genie__AuthResponse resp = GENIE__AUTH_RESPONSE__INIT;
	Genie__AuthChallenge *ch;
	uint8_t mac[GN_AUTH_MAC_SIZE];
	int rc;

	ch = (Genie__AuthChallenge *)gn_pb_unpack(
		&genie__auth_challenge__descriptor, env->body.data,
		env->body.len, c->conn->limits.max_envelope);
	if (ch == NULL)
		return gn_last_error_code();
	if (ch->nonce.len != GN_AUTH_NONCE_SIZE) {
		rc = gn_error_set(-EPROTO,
				  "coordinator %s: challenge nonce of %zu "
				  "bytes, expected %d",
				  c->addr, ch->nonce.len, GN_AUTH_NONCE_SIZE);
		goto out;
	}
	if (secret == NULL || secret->len == 0) {
		rc = gn_error_set(-EACCES,
				  "coordinator %s requires authentication "
				  "and no secret was given (--secret FILE or "
				  "GENIE_SECRET_FILE)",
				  c->addr);
		goto out;
	}
	rc = gn_auth_mac(secret, ch->nonce.data, role, peer_name, mac);
	if (rc != 0)
		goto out;
	resp.mac.data = mac;
	resp.mac.len = sizeof(mac);
	rc = send_msg(c, GENIE__MSG_TYPE__MSG_TYPE_AUTH_RESPONSE,
		      env->request_id, &resp.base);
out:
	protobuf_c_message_free_unpacked(&ch->base, NULL);
	return rc;
}

static int handshake(struct gn_coord_conn *c,
		     const struct gn_auth_secret *secret, uint32_t role,
		     const char *peer_name)
{
	Genie__CoordHello h = GENIE__COORD_HELLO__INIT;
	int rc, authed = 0;

	h.min_version = GN_SCHEMA_VERSION_MIN;
	h.max_version = GN_SCHEMA_VERSION;
	h.peer_name = (char *)peer_name;
	h.role = (Genie__PeerRole)role;
	rc = send_msg(c, GENIE__MSG_TYPE__MSG_TYPE_COORD_HELLO,
		      c->next_request_id++, &h.base);
	if (rc != 0)
		return wrap_error(rc, "coordinator %s: cannot send hello",
				  c->addr);
	/* Challenge, then ack; a coordinator without a secret acks at once. */
	for (int step = 0; step < 2; step++) {
		Genie__CoordHelloAck *ack;
		Genie__Envelope *env;
		struct gn_msg msg;

		env = recv_env(c, &msg);
		if (env == NULL) {
			rc = gn_last_error_code();
			if (authed && (rc == -ECONNRESET || rc == -EPROTO))
				return gn_error_set(-EACCES,
						    "authentication refused: "
						    "coordinator %s closed the "
						    "connection after our "
						    "answer (wrong secret?)",
						    c->addr);
			if (!authed && rc == -ECONNRESET &&
			    strcmp(c->conn->ops->name, "tcp") == 0)
				return wrap_error(rc,
						  "coordinator %s closed the "
						  "connection before answering "
						  "hello (does it require TLS? "
						  "--tls-ca FILE)",
						  c->addr);
			return wrap_error(rc,
					  "coordinator %s: no answer to hello",
					  c->addr);
		}
		switch (env->type) {
		case GENIE__MSG_TYPE__MSG_TYPE_ERROR:
			rc = handshake_error(c, env, authed);
			break;
		case GENIE__MSG_TYPE__MSG_TYPE_AUTH_CHALLENGE:
			if (authed) {
				rc = gn_error_set(
					-EPROTO,
					"coordinator %s sent a second "
					"challenge",
					c->addr);
				break;
			}
			rc = answer_challenge(c, env, secret, role, peer_name);
			authed = 1;
			break;
		case GENIE__MSG_TYPE__MSG_TYPE_COORD_HELLO_ACK:
			ack = (Genie__CoordHelloAck *)gn_pb_unpack(
				&genie__coord_hello_ack__descriptor,
				env->body.data, env->body.len,
				c->conn->limits.max_envelope);
			if (ack == NULL) {
				rc = gn_last_error_code();
				break;
			}
			if (ack->version < GN_SCHEMA_VERSION_MIN ||
			    ack->version > GN_SCHEMA_VERSION) {
				rc = gn_error_set(-EPROTONOSUPPORT,
						  "coordinator %s chose schema "
						  "version %u, we speak %u..%u",
						  c->addr, ack->version,
						  GN_SCHEMA_VERSION_MIN,
						  GN_SCHEMA_VERSION);
			} else {
				c->version = ack->version;
				snprintf(c->coordinator_name,
					 sizeof(c->coordinator_name), "%s",
					 ack->coordinator_name);
				rc = 1;
			}
			protobuf_c_message_free_unpacked(&ack->base, NULL);
			break;
		default:
			rc = gn_error_set(-EPROTO,
					  "coordinator %s answered hello with "
					  "message type %d (is it a "
					  "genie-coordinator?)",
					  c->addr, (int)env->type);
			break;
		}
		protobuf_c_message_free_unpacked(&env->base, NULL);
		gn_msg_release(&msg);
		if (rc != 0)
			return rc == 1 ? 0 : rc;
	}
	return gn_error_set(-EPROTO, "coordinator %s: no hello ack", c->addr);
}

int gn_coord_connect(const char *url, const struct gn_auth_secret *secret,
		     uint32_t role, const char *peer_name, int timeout_ms,
		     struct gn_coord_conn **out)
{
	return gn_coord_connect_tls(url, secret, NULL, role, peer_name,
				    timeout_ms, out);
}

static const char *env_or(const char *v, const char *name)
{
	const char *e;

	if (v != NULL && *v != '\0')
		return v;
	e = getenv(name);
	return e != NULL && *e != '\0' ? e : NULL;
}

int gn_coord_tls_from_env(struct gn_tls_files *f)
{
	f->ca = env_or(f->ca, "GENIE_TLS_CA");
	f->cert = env_or(f->cert, "GENIE_TLS_CERT");
	f->key = env_or(f->key, "GENIE_TLS_KEY");
	return f->ca != NULL || f->cert != NULL;
}

int gn_coord_connect_tls(const char *url, const struct gn_auth_secret *secret,
			 const struct gn_tls_files *tls, uint32_t role,
			 const char *peer_name, int timeout_ms,
			 struct gn_coord_conn **out)
{
	int use_tls = tls != NULL && ((tls->ca != NULL && *tls->ca) ||
				      (tls->cert != NULL && *tls->cert));
	struct gn_transport_opts topts;
	struct gn_coord_conn *c;
	char tcp[160];
	int rc;

	*out = NULL;
	if (peer_name == NULL || strlen(peer_name) > GN_AUTH_NAME_MAX)
		return gn_error_set(-EINVAL,
				    "coordinator: peer name missing or longer "
				    "than %d bytes",
				    GN_AUTH_NAME_MAX);
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return gn_error_set(-ENOMEM, "coordinator: out of memory");
	c->timeout_ms = timeout_ms;
	c->next_request_id = 1;
	rc = gn_coord_addr(url, c->addr, sizeof(c->addr));
	if (rc != 0)
		goto fail;
	gn_transport_opts_init(&topts, sizeof(topts));
	if (use_tls)
		topts.tls = *tls;
	snprintf(tcp, sizeof(tcp), "%s://%s", use_tls ? "tls" : "tcp", c->addr);
	rc = gn_connect(tcp, &topts, timeout_ms, &c->conn);
	if (rc != 0) {
		wrap_error(rc, "cannot connect to coordinator at %s", c->addr);
		goto fail;
	}
	rc = handshake(c, secret, role, peer_name);
	if (rc != 0)
		goto fail;
	*out = c;
	return 0;

fail:
	gn_coord_close(&c);
	return rc;
}

int gn_coord_call(struct gn_coord_conn *c, int type,
		  const ProtobufCMessage *body, int reply_type,
		  const ProtobufCMessageDescriptor *reply_desc,
		  ProtobufCMessage **reply)
{
	uint64_t id = c->next_request_id++;
	Genie__Envelope *env;
	struct gn_msg msg;
	char text[512];
	int rc;

	*reply = NULL;
	rc = send_msg(c, type, id, body);
	if (rc != 0)
		return wrap_error(rc, "coordinator %s: send", c->addr);
	env = recv_env(c, &msg);
	if (env == NULL)
		return wrap_error(gn_last_error_code(),
				  "coordinator %s: no reply", c->addr);
	if (env->request_id != id) {
		rc = gn_error_set(-EPROTO,
				  "coordinator %s: reply to request %llu, "
				  "expected %llu",
				  c->addr, (unsigned long long)env->request_id,
				  (unsigned long long)id);
	} else if (env->type == GENIE__MSG_TYPE__MSG_TYPE_ERROR) {
		rc = error_of(c, env, text, sizeof(text));
		gn_error_set(rc, "coordinator: %s", text);
	} else if ((int)env->type != reply_type) {
		rc = gn_error_set(-EPROTO,
				  "coordinator %s: expected a %s reply, got "
				  "type %d",
				  c->addr, reply_desc->short_name,
				  (int)env->type);
	} else {
		*reply = gn_pb_unpack(reply_desc, env->body.data, env->body.len,
				      c->conn->limits.max_envelope);
		rc = *reply ? 0 : gn_last_error_code();
	}
	protobuf_c_message_free_unpacked(&env->base, NULL);
	gn_msg_release(&msg);
	return rc;
}

void gn_coord_close(struct gn_coord_conn **cp)
{
	struct gn_coord_conn *c;
	uint8_t *buf;
	size_t len;

	if (cp == NULL || *cp == NULL)
		return;
	c = *cp;
	if (c->conn != NULL && c->version != 0 &&
	    gn_envelope_pack(GENIE__MSG_TYPE__MSG_TYPE_GOODBYE, 0, NULL, &buf,
			     &len) == 0) {
		/* Best effort, short: the coordinator copes with a close. */
		gn_conn_send(c->conn, buf, len, NULL, 0, 200);
		free(buf);
	}
	gn_conn_close(&c->conn);
	free(c);
	*cp = NULL;
}

int gn_coord_load_secret(const char *path, struct gn_auth_secret *s)
{
	int rc;

	if (path == NULL || *path == '\0')
		path = getenv("GENIE_SECRET_FILE");
	if (path == NULL || *path == '\0') {
		memset(s, 0, sizeof(*s));
		return 0;
	}
	rc = gn_auth_load_secret(path, s);
	return rc == 0 ? 1 : rc;
}
