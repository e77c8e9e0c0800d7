/*
 * Length-prefixed framing of Genie messages on a byte stream.
 *
 * A message is one packed genie.Envelope plus an optional payload of raw
 * tensor bytes that the envelope's body refers to by offset. On a stream
 * (TCP) it travels as
 *
 *     +---------+---------+-------+----------+-----------+-------------+
 *     | magic   | version | flags | env_len  | reserved  | payload_len |
 *     | u32 LE  | u16 LE  | u16   | u32 LE   | u32 (0)   | u64 LE      |
 *     +---------+---------+-------+----------+-----------+-------------+
 *     | env_len bytes of Envelope | payload_len bytes of payload      |
 *
 * A reader checks magic, version and both lengths against its caps before
 * it allocates or unpacks anything, so a hostile length prefix costs it
 * nothing. Protobuf unpacks go through gn_pb_unpack(), which checks the size
 * cap first and NULL-checks the result.
 */
#ifndef GN_COMMON_FRAME_H
#define GN_COMMON_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#define GN_FRAME_MAGIC 0x31464e47u /* "GNF1" little-endian */
#define GN_FRAME_VERSION 1
#define GN_FRAME_HDR_SIZE 24

/* Genie's current plan/control schema version, negotiated at connect. */
#define GN_SCHEMA_VERSION 1
#define GN_SCHEMA_VERSION_MIN 1

/* Default caps: an envelope is metadata; payloads carry tensors. */
#define GN_DEFAULT_MAX_ENVELOPE (16u << 20)
#define GN_DEFAULT_MAX_PAYLOAD (1ull << 30)

struct gn_frame_limits {
	uint32_t max_envelope;
	uint64_t max_payload;
};

struct gn_frame_hdr {
	uint32_t env_len;
	uint64_t payload_len;
};

/* A whole frame found in a buffer; pointers point into that buffer. */
struct gn_frame_view {
	const uint8_t *env;
	uint32_t env_len;
	const uint8_t *payload;
	uint64_t payload_len;
	size_t frame_len; /* header + envelope + payload */
};

/* Write the header for a frame of `env_len` + `payload_len` bytes. */
void gn_frame_hdr_encode(uint8_t out[GN_FRAME_HDR_SIZE], uint32_t env_len,
			 uint64_t payload_len);

/*
 * Check and decode a header from the first `len` bytes of `buf`.
 * Returns 0; -EAGAIN when `len` is shorter than a header (read more);
 * -EBADMSG for a wrong magic, version or reserved field; -EMSGSIZE when a
 * length exceeds `limits`. Errors set gn_last_error() with both values.
 */
int gn_frame_hdr_decode(const uint8_t *buf, size_t len,
			const struct gn_frame_limits *limits,
			struct gn_frame_hdr *hdr);

/*
 * Find one whole frame at the start of `buf`. Returns 0 and fills `view`;
 * -EAGAIN when the bytes end before the frame does (the detail says how
 * many of how many arrived); otherwise as gn_frame_hdr_decode().
 */
int gn_frame_parse(const uint8_t *buf, size_t len,
		   const struct gn_frame_limits *limits,
		   struct gn_frame_view *view);

/*
 * Unpack a protobuf message of type `desc` from `len` bytes, refusing more
 * than `cap` bytes before unpacking. Returns the message (free it with
 * protobuf_c_message_free_unpacked()) or NULL with -EMSGSIZE or -EBADMSG
 * set, naming the message type.
 */
ProtobufCMessage *gn_pb_unpack(const ProtobufCMessageDescriptor *desc,
			       const uint8_t *buf, size_t len, size_t cap);

/*
 * Read a packed genie.Envelope's type, request id and body without
 * unpacking it (no allocation, no copy of the body): for a transport's
 * thread deciding where a payload goes (payload placement), where a plan
 * of hundreds of KiB in the body would otherwise be copied to learn the
 * type. Scans the top-level fields only; the last of a repeated scalar
 * wins, as in protobuf. *body points into buf. 0, or -EBADMSG for bytes
 * that are no protobuf message (its fields are not checked further).
 */
struct gn_envelope_peek {
	int type;
	uint64_t request_id;
	const uint8_t *body;
	size_t body_len;
};

int gn_envelope_peek(const uint8_t *buf, size_t len,
		     struct gn_envelope_peek *out);

/*
 * Pack `body` into a genie.Envelope of `type` (a genie.MsgType) at the
 * current schema version. On success *out is a malloc'd buffer of *out_len
 * bytes that the caller frees. `body` may be NULL for an empty body.
 * Returns 0 or -ENOMEM.
 */
int gn_envelope_pack(int type, uint64_t request_id,
		     const ProtobufCMessage *body, uint8_t **out,
		     size_t *out_len);

#endif /* GN_COMMON_FRAME_H */
