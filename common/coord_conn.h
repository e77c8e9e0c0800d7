/*
 * A control-plane connection to genie-coordinator, as a runtime, a client
 * or genie-ctl sees it.
 *
 * Everything that talks to the coordinator goes through here: connect to
 * "HOST:PORT" (or "tcp://HOST:PORT", or "coordinator://HOST:PORT"), offer
 * our schema versions and say who we are (CoordHello{role, peer_name}),
 * prove we hold the shared secret by answering the coordinator's
 * AuthChallenge with gn_auth_mac(), and wait for CoordHelloAck. After that
 * the connection carries request/reply exchanges (gn_coord_call()): one
 * request out, the reply with the same request id back, an ErrorReply
 * turned into its negative errno and the coordinator's words.
 *
 * The wire is the data path's (common/frame.h, common/transport.h): one
 * genie.Envelope per message on a framed TCP stream, message types 17 and
 * up (proto/genie/coord.proto). With TLS files (gn_coord_connect_tls())
 * the stream is the "tls" transport instead (common/transport_tls.c): the
 * coordinator's certificate is checked against the CA and the address,
 * our client certificate is presented, and the secret handshake then runs
 * inside TLS.
 *
 * A connection is used by one thread at a time.
 */
#ifndef GN_COMMON_COORD_CONN_H
#define GN_COMMON_COORD_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "auth.h"
#include "transport.h"

struct gn_coord_conn {
	struct gn_conn *conn;
	char addr[128];		   /* "HOST:PORT" of the coordinator */
	char coordinator_name[64]; /* from CoordHelloAck */
	uint32_t version;	   /* negotiated schema version */
	uint64_t next_request_id;
	int timeout_ms; /* per exchange; -1 waits forever */
};

/*
 * Turn a coordinator address ("HOST:PORT", "tcp://HOST:PORT" or
 * "coordinator://HOST:PORT") into "HOST:PORT" in `out`. Returns 0 or
 * -EINVAL naming the string (another scheme, no port, too long).
 */
int gn_coord_addr(const char *url, char *out, size_t out_len);

/*
 * Connect to the coordinator at `url` as `role` (a genie.PeerRole) named
 * `peer_name`, authenticate with `secret` (NULL: none; a coordinator that
 * asks for one then refuses with -EACCES) and negotiate the schema version.
 * Each exchange waits up to `timeout_ms`.
 *
 * Returns 0 with *out set (free with gn_coord_close()), or:
 *   -EINVAL          bad address or peer name;
 *   -ECONNREFUSED, -ETIMEDOUT, ...  cannot connect (the detail names the
 *                    address);
 *   -EACCES          authentication refused ("wrong secret?"), or the
 *                    coordinator wants a secret and none was given;
 *   -EPROTONOSUPPORT the coordinator refused our schema versions;
 *   -EPROTO          it answered something else.
 */
int gn_coord_connect(const char *url, const struct gn_auth_secret *secret,
		     uint32_t role, const char *peer_name, int timeout_ms,
		     struct gn_coord_conn **out);

/*
 * gn_coord_connect() over TLS when `tls` is not NULL and names a CA or a
 * certificate (else plain TCP, exactly gn_coord_connect()). TLS failures
 * are -EACCES (certificate refused either way, with the reason: "TLS
 * handshake with HOST:PORT failed: its certificate verify failed: ...
 * (self-signed / unknown CA ...)", "... it requires a client certificate
 * and we presented none", "... it refused our certificate (...)"),
 * -EPROTO when the coordinator does not speak TLS, -EINVAL when a file
 * cannot be loaded (the detail names it).
 */
int gn_coord_connect_tls(const char *url, const struct gn_auth_secret *secret,
			 const struct gn_tls_files *tls, uint32_t role,
			 const char *peer_name, int timeout_ms,
			 struct gn_coord_conn **out);

/*
 * Fill the fields of `f` that are NULL or empty from $GENIE_TLS_CA,
 * $GENIE_TLS_CERT and $GENIE_TLS_KEY (left NULL when unset). Returns 1
 * when `f` then names a CA or a certificate (use TLS), else 0.
 */
int gn_coord_tls_from_env(struct gn_tls_files *f);

/*
 * One exchange: send `body` (NULL: empty) as an envelope of `type`, wait
 * for the reply with the same request id, and unpack it as `reply_desc`
 * when its type is `reply_type`. On success the caller frees *reply with
 * protobuf_c_message_free_unpacked(). An ErrorReply returns its code
 * (negative errno) with "coordinator: MESSAGE" as the detail; a transport
 * error returns it, and the connection is then out of step: close it.
 */
int gn_coord_call(struct gn_coord_conn *c, int type,
		  const ProtobufCMessage *body, int reply_type,
		  const ProtobufCMessageDescriptor *reply_desc,
		  ProtobufCMessage **reply);

/* Close and free; sets *c to NULL. NULL is a no-op. */
void gn_coord_close(struct gn_coord_conn **c);

/*
 * Load the secret for a control-plane peer: from `path` when it is not
 * NULL or empty, else from the file named by $GENIE_SECRET_FILE when set.
 * Returns 1 when a secret was loaded, 0 when neither names one (no
 * secret), or a negative errno from gn_auth_load_secret().
 */
int gn_coord_load_secret(const char *path, struct gn_auth_secret *s);

#endif /* GN_COMMON_COORD_CONN_H */
