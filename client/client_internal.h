/*
 * libgenie internals: sessions, graph nodes and what materialize needs.
 */
#ifndef GN_CLIENT_INTERNAL_H
#define GN_CLIENT_INTERNAL_H

#include <stdint.h>

#include <genie/genie.h>

#include "arena.h"
#include "backend.h"
#include "plan.h"
#include "tensor_meta.h"
#include "transport.h"

#define GN_MAX_INPUTS 2

/*
 * One recorded value: a leaf with bytes (`data` set) or an op over earlier
 * tensors. Lives in the session arena until the session is destroyed.
 * Once materialized, an op node keeps its value and is a leaf from then on.
 */
struct gn_tensor {
	struct gn_session *session;
	struct gn_tensor *in[GN_MAX_INPUTS];
	void *data;	/* host value, or NULL while still lazy */
	enum gn_op op;	/* GN_OP_INPUT for leaves */
	uint32_t visit; /* materialize: last walk that saw this node */
	uint32_t index; /* materialize: this node's index in the plan */
	uint8_t nin;
	uint8_t has_handle;
	uint8_t handle[GN_HANDLE_SIZE];
	struct gn_tensor_meta meta;
};

enum gn_target_kind {
	GN_TARGET_LOCAL,
	GN_TARGET_REMOTE,
};

struct gn_session {
	struct gn_arena *arena;
	enum gn_target_kind kind;
	struct gn_backend backend; /* local target */
	struct gn_conn *conn;	   /* remote target */
	char backend_name[32];
	int timeout_ms;
	uint32_t visit;	 /* materialize walk counter */
	uint64_t nnodes; /* tensors recorded, bounds any walk */
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

/* Give `t` a fresh random handle. Returns 0 or -EIO. */
int gn_client_new_handle(struct gn_tensor *t);

#endif /* GN_CLIENT_INTERNAL_H */
