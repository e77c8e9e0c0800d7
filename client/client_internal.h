/*
 * libgenie internals: sessions, graph nodes and what materialize needs.
 */
#ifndef GN_CLIENT_INTERNAL_H
#define GN_CLIENT_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <genie/genie.h>

#include "arena.h"
#include "op.h"
#include "backend.h"
#include "plan.h"
#include "tensor_meta.h"
#include "transport.h"

/* Operands kept inside the node; more go to an arena array. */
#define GN_INLINE_INPUTS 2

/*
 * One recorded value: a leaf with bytes (`data` set), a source, or an op
 * over earlier tensors. Lives in the session arena until the session is
 * destroyed; kept small because a model records many (docs/PERFORMANCE.md
 * holds the bytes per node). Shapes and attribute lists are arena arrays,
 * and a node whose shape equals an operand's shares that operand's array.
 * Once materialized, a node keeps its value and is a leaf from then on.
 */
struct gn_tensor {
	struct gn_session *session;
	union {
		struct gn_tensor *in2[GN_INLINE_INPUTS]; /* nin <= 2 */
		struct gn_tensor **inv;			 /* nin > 2 */
	};
	void *data;	      /* host value, or NULL while still lazy */
	const int64_t *shape; /* ndim entries */
	const int64_t *iattrs;
	const float *fattrs;
	uint32_t visit; /* materialize: last walk that saw this node */
	uint32_t index; /* materialize: this node's index in the graph */
	uint8_t op;	/* enum gn_op; GN_OP_INPUT for leaves */
	uint8_t dtype;	/* enum gn_dtype */
	uint8_t ndim;
	uint8_t nin;
	uint8_t ni, nf; /* attribute counts */
	uint8_t has_handle;
	uint8_t resident; /* GN_RESIDENT_* bits (genie/resident.h) */
	uint8_t handle[GN_HANDLE_SIZE];
};

/*
 * gn_tensor.resident: `handle` names the target's copy; it is pinned; the
 * copy is shared by content (gn_tensor_make_resident_shared), so restoring
 * it after an eviction attaches or uploads by content key.
 */
#define GN_RESIDENT_YES 1u
#define GN_RESIDENT_PINNED 2u
#define GN_RESIDENT_SHARED 4u

/* The registry session a "local" target's resident tensors live in. */
#define GN_LOCAL_SESSION 1

/* Operand `k` of `t`. */
static inline struct gn_tensor *gn_tensor_in(const struct gn_tensor *t,
					     uint32_t k)
{
	return t->nin <= GN_INLINE_INPUTS ? t->in2[k] : t->inv[k];
}

/* The node's dtype and shape as a meta, for the op table. */
static inline void gn_tensor_meta_of(const struct gn_tensor *t,
				     struct gn_tensor_meta *m)
{
	m->dtype = (enum gn_dtype)t->dtype;
	m->ndim = t->ndim;
	for (int i = 0; i < t->ndim; i++)
		m->shape[i] = t->shape[i];
}

/*
 * Record `op` over `nin` operands with attributes: infer the output first,
 * so a bad call records nothing and fails here, naming the op and shapes.
 * Returns the new node or NULL with the error set.
 */
struct gn_tensor *gn_client_record(enum gn_op op, struct gn_tensor *const *in,
				   int nin, const int64_t *iattrs, int ni,
				   const float *fattrs, int nf);

/* Record a source op (no operands) in session `s`. */
struct gn_tensor *gn_client_record_source(struct gn_session *s, enum gn_op op,
					  const int64_t *iattrs, int ni,
					  const float *fattrs, int nf);

enum gn_target_kind {
	GN_TARGET_LOCAL,
	GN_TARGET_REMOTE,
};

/*
 * Plans remembered as sent on the connection; the runtime keeps as many
 * per connection, so a remembered one is usually still there.
 */
#define GN_SESSION_PLANS 64

/* Content keys a session remembers for gn_session_shared_keys(). */
#define GN_SESSION_SHARED_KEYS 256

struct gn_pool;
struct gn_registry;
struct gn_coord_conn;
struct gn_auth_secret;

struct gn_session {
	struct gn_arena *arena;
	enum gn_target_kind kind;
	struct gn_backend backend; /* local target */
	/* Local target: resident tensors, made at first use. */
	struct gn_pool *pool;
	struct gn_registry *registry;
	struct gn_conn *conn; /* remote target */
	/*
	 * Payload placement (transport.h) of one awaited reply: armed for a
	 * request id and reply type (gn_client_place_arm), read by the
	 * transport's thread under place_lock; place_given says memory was
	 * handed out for it.
	 */
	struct gn_placement placement;
	pthread_mutex_t place_lock;
	int place_type;	  /* the reply's genie.MsgType; 0: not armed */
	void *place_dst;  /* NULL: a block of the session's arena */
	size_t place_len; /* the payload's exact size */
	uint64_t place_req;
	bool place_given;
	char backend_name[32];
	/* coordinator:// target: where it is, who we are, what it gave us. */
	struct gn_coord_conn *coord; /* open during gn_session_create() */
	char coord_url[160];
	char peer_name[64];
	char node_id[128];
	uint64_t coord_session;
	struct gn_auth_secret *secret;	   /* NULL: none */
	char *tls_ca, *tls_cert, *tls_key; /* owned; NULL: not given */
	/* Keys of the tensors made shared resident, newest first. */
	uint8_t shared_keys[GN_SESSION_SHARED_KEYS][32];
	uint32_t n_shared_keys;
	int timeout_ms;
	uint32_t visit;	      /* materialize walk counter */
	uint64_t nnodes;      /* tensors recorded, bounds any walk */
	uint32_t passes;      /* enum gn_pass_mask run at materialize */
	uint64_t fold_bytes;  /* constant folding result cap */
	const char *dot_path; /* GENIE_DOT: dump graphs here */
	uint64_t sent_plans[GN_SESSION_PLANS]; /* fingerprints, 0: empty */
	uint32_t sent_next;
	uint64_t next_request_id;
	struct gn_session_stats stats;
};

/*
 * One request/reply exchange with the session's runtime: send `body` as an
 * envelope of `type` (a genie.MsgType) with `payload`, receive the reply
 * to it, turn an ErrorReply into its code and message, check the reply is
 * `reply_type`, and unpack its body as `reply_desc`. On success the caller
 * frees *reply with protobuf_c_message_free_unpacked() and releases `msg`,
 * which holds the reply's payload. On error both are empty.
 */
int gn_client_call(struct gn_session *s, int type, const ProtobufCMessage *body,
		   const struct iovec *payload, int iovcnt, int reply_type,
		   const ProtobufCMessageDescriptor *reply_desc,
		   ProtobufCMessage **reply, struct gn_msg *msg);

/*
 * Have armed replies placed (session.c), unless $GENIE_NO_PLACEMENT is
 * set and not empty. After the handshake.
 */
void gn_client_placement_init(struct gn_session *s);

/*
 * Arm placement for the reply to the next request gn_client_call() sends:
 * a reply of type `reply_type` whose payload is exactly `len` bytes (not
 * 0) goes into `dst`, or with `dst` NULL into a new block of the
 * session's arena (64-byte aligned).
 */
void gn_client_place_arm(struct gn_session *s, int reply_type, void *dst,
			 size_t len);

/* Disarm; true when memory was handed out for the armed reply. */
bool gn_client_place_disarm(struct gn_session *s);

/* Give `t` a fresh random handle. Returns 0 or -EIO. */
int gn_client_new_handle(struct gn_tensor *t);

/*
 * Local target: bind resident tensor `t` to executor input `in` (the
 * registry's block, used in place). 0 or -ENOENT.
 */
struct gn_exec_input;
int gn_client_resident_bind_local(struct gn_tensor *t,
				  struct gn_exec_input *in);

/*
 * A plan found resident tensor `t` gone from the target: if the target no
 * longer holds it, make it resident again (same pin state; a shared one
 * attaches to the target's shared copy when there is one, else uploads it
 * shared) under a new handle, written into t->handle in place. 0 or a
 * negative errno.
 */
int gn_client_resident_restore(struct gn_tensor *t);

/*
 * After a transport error on a remote session: when the stream is out of
 * step or gone, close it so later calls fail fast with -ECONNRESET.
 */
void gn_client_check_conn(struct gn_session *s, int rc);

#endif /* GN_CLIENT_INTERNAL_H */
