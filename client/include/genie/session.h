/*
 * Genie sessions.
 *
 * A session is a client's connection to where its tensor work runs: the
 * in-process CPU backend ("local"), a remote genie-runtime
 * ("tcp://HOST:PORT"), or whichever runtime a genie-coordinator picks
 * ("coordinator://HOST:PORT"). Tensors belong to the session that made
 * them; code that records work runs unchanged whichever target the
 * session has.
 *
 * With "coordinator://HOST:PORT" the session connects to the coordinator,
 * authenticates with the shared secret (opts.secret_file, else the file
 * named by $GENIE_SECRET_FILE), asks it to place the session (PLACE, with
 * opts.tenant, opts.priority and opts.device_kind), then connects to the
 * runtime it names exactly like a "tcp://" target. gn_session_node() says
 * which node was chosen. The coordinator connection is closed once the
 * session is open; gn_session_destroy() connects again to tell the
 * coordinator the session ended (ReleaseSession, waiting at most 2 s for
 * it). The coordinator being gone by then does not make destroy fail.
 *
 * A session is not thread-safe: use one per thread, or lock around it.
 */
#ifndef GENIE_SESSION_H
#define GENIE_SESSION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct gn_session;

/*
 * Options for gn_session_create(). Fill with gn_session_opts_init() first,
 * then change what you need; new fields are only ever added at the end.
 */
struct gn_session_opts {
	size_t opts_size;      /* sizeof(struct gn_session_opts) as compiled */
	const char *target;    /* "local" (default) or "tcp://HOST:PORT" */
	int timeout_ms;	       /* per request; 0: 30000, -1: wait forever */
	size_t max_frame_size; /* largest message accepted, default 1 GiB */
	const char *name; /* shown in runtime logs, default "genie-client" */
	/* coordinator:// targets only (see above); NULL/0: defaults. */
	const char *secret_file; /* default: $GENIE_SECRET_FILE */
	const char *tenant;	 /* for placement and genie-ctl sessions */
	uint32_t priority;	 /* 0..100 */
	const char *device_kind; /* "" or NULL: any; "cpu", "cuda" */
	/*
	 * coordinator:// over TLS (PEM files; NULL: $GENIE_TLS_CA,
	 * $GENIE_TLS_CERT, $GENIE_TLS_KEY; none of them: plain TCP). tls_ca
	 * verifies the coordinator; tls_cert and tls_key are our client
	 * certificate, for a coordinator that requires one.
	 */
	const char *tls_ca;
	const char *tls_cert;
	const char *tls_key;
	/*
	 * coordinator:// only: content keys (64 hex digits, SHA-256; see
	 * gn_session_shared_keys()) of the shared resident
	 * tensors the session will use, so a model-affinity coordinator can
	 * place it on a runtime that already holds them (see
	 * gn_session_shared_keys()). Copied into the request; NULL/0: none.
	 */
	const char *const *model_keys;
	int n_model_keys;
	/*
	 * coordinator:// only: the placement policy for this session, ""
	 * or NULL for the coordinator's own (--policy); "least-loaded",
	 * "bin-packing" or "model-affinity".
	 */
	const char *policy;
	/*
	 * coordinator:// only: the data plane to use, "" or NULL for any
	 * (the runtime's first); "tcp" or "dpdk" places the session only on
	 * a runtime serving that transport and connects through it.
	 */
	const char *transport;
};

/* Set `opts` to defaults. `opts_size` is sizeof(*opts) at the caller. */
void gn_session_opts_init(struct gn_session_opts *opts, size_t opts_size);

/*
 * Open a session. For a remote target this connects and negotiates the
 * schema version. Returns NULL on failure with gn_last_error() set (bad
 * target string, cannot connect, version refused; for coordinator://
 * also -EACCES when the coordinator refuses the secret, -EAGAIN or
 * -ENODEV when it has no node to place the session on, with its reason). The
 * caller owns the session and frees it with gn_session_destroy(). `opts` may be
 * NULL for defaults; its strings are copied.
 */
struct gn_session *gn_session_create(const struct gn_session_opts *opts);

/*
 * Close the session and free every tensor it made. Sets *session to NULL;
 * NULL or *session == NULL is a no-op.
 */
void gn_session_destroy(struct gn_session **session);

/* What a session has moved and how long its last round trip took. */
struct gn_session_stats {
	uint64_t bytes_sent;
	uint64_t bytes_received;
	uint64_t requests;
	uint64_t last_latency_ns; /* last materialize, send to result */
	uint64_t last_exec_ns;	  /* of which the backend spent executing */
	/* Requests that named a plan the runtime had cached (no plan sent). */
	uint64_t plans_by_fingerprint;
	/* Of those, the runtime had dropped it and it was sent again. */
	uint64_t plans_resent;
	/*
	 * Resident tensors (genie/resident.h) of this session as far as the
	 * client knows (an eviction on the runtime is seen at next use), their
	 * bytes, every byte ever uploaded to residency, and resident inputs a
	 * plan found evicted and uploaded again.
	 */
	uint64_t resident_tensors;
	uint64_t resident_bytes;
	uint64_t resident_bytes_uploaded;
	uint64_t resident_reuploads;
	/*
	 * gn_tensor_make_resident_shared() calls (and restores after an
	 * eviction) that found the value already on the target and attached
	 * to it, and the bytes they did not have to send.
	 */
	uint64_t resident_attach_hits;
	uint64_t resident_bytes_attached;
};

/* Copy the session's counters into `stats`. Returns 0 or -EINVAL. */
int gn_session_get_stats(const struct gn_session *session,
			 struct gn_session_stats *stats);

/* The backend that executes this session's plans ("cpu", "cuda"), or "". */
const char *gn_session_backend(const struct gn_session *session);

/*
 * For a coordinator:// session, the id of the node the coordinator placed
 * it on ("rt0"); "" for other targets or NULL. Valid while the session
 * lives.
 */
const char *gn_session_node(const struct gn_session *session);

/*
 * The content keys of the tensors this session made resident by content
 * (gn_tensor_make_resident_shared(), which gn_model_load() uses for
 * weights), newest first, each as 64 hex digits and a NUL in keys[i], at
 * most `max` (the session remembers the last 256). Returns how many, or
 * -EINVAL for a NULL session or a negative max.
 *
 * This is how a client learns a model's keys for the model_keys option:
 * load the model into a "local" session (which hashes the weights and
 * sends nothing anywhere), read the keys, then open the coordinator://
 * session with them.
 */
int gn_session_shared_keys(const struct gn_session *session, char (*keys)[65],
			   int max);

#ifdef __cplusplus
}
#endif

#endif /* GENIE_SESSION_H */
