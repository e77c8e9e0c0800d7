/*
 * Length-prefixed framing and capped protobuf unpacking (see frame.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "genie/envelope.pb-c.h"
#include "gn_error.h"

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

void gn_frame_hdr_encode(uint8_t out[GN_FRAME_HDR_SIZE], uint32_t env_len,
			 uint64_t payload_len)
{
	put_le32(out, GN_FRAME_MAGIC);
	put_le16(out + 4, GN_FRAME_VERSION);
	put_le16(out + 6, 0);
	put_le32(out + 8, env_len);
	put_le32(out + 12, 0);
	put_le64(out + 16, payload_len);
}

int gn_frame_hdr_decode(const uint8_t *buf, size_t len,
			const struct gn_frame_limits *limits,
			struct gn_frame_hdr *hdr)
{
	uint32_t magic, reserved;
	uint16_t version, flags;

	if (len < GN_FRAME_HDR_SIZE)
		return gn_error_set(-EAGAIN,
				    "frame: header needs %d bytes, have %zu",
				    GN_FRAME_HDR_SIZE, len);
	magic = get_le32(buf);
	version = get_le16(buf + 4);
	flags = get_le16(buf + 6);
	reserved = get_le32(buf + 12);
	if (magic != GN_FRAME_MAGIC)
		return gn_error_set(-EBADMSG,
				    "frame: bad magic 0x%08x, expected 0x%08x "
				    "(peer is not speaking Genie framing)",
				    magic, GN_FRAME_MAGIC);
	if (version != GN_FRAME_VERSION)
		return gn_error_set(-EBADMSG,
				    "frame: header version %u, expected %u",
				    version, GN_FRAME_VERSION);
	if (flags != 0 || reserved != 0)
		return gn_error_set(-EBADMSG,
				    "frame: flags 0x%x / reserved 0x%x set, "
				    "expected 0",
				    flags, reserved);
	hdr->env_len = get_le32(buf + 8);
	hdr->payload_len = get_le64(buf + 16);
	if (hdr->env_len == 0)
		return gn_error_set(-EBADMSG,
				    "frame: envelope length 0, expected at "
				    "least 1 byte");
	if (hdr->env_len > limits->max_envelope)
		return gn_error_set(
			-EMSGSIZE,
			"frame: envelope of %u bytes exceeds cap of "
			"%u bytes",
			hdr->env_len, limits->max_envelope);
	if (hdr->payload_len > limits->max_payload)
		return gn_error_set(-EMSGSIZE,
				    "frame: payload of %llu bytes exceeds cap "
				    "of %llu bytes",
				    (unsigned long long)hdr->payload_len,
				    (unsigned long long)limits->max_payload);
	return 0;
}

int gn_frame_parse(const uint8_t *buf, size_t len,
		   const struct gn_frame_limits *limits,
		   struct gn_frame_view *view)
{
	struct gn_frame_hdr hdr;
	uint64_t total;
	int rc;

	rc = gn_frame_hdr_decode(buf, len, limits, &hdr);
	if (rc != 0)
		return rc;
	/* Both lengths are capped, so this sum cannot overflow 64 bits. */
	total = GN_FRAME_HDR_SIZE + (uint64_t)hdr.env_len + hdr.payload_len;
	if (len < total)
		return gn_error_set(-EAGAIN,
				    "frame: truncated, header announces %llu "
				    "bytes, have %zu",
				    (unsigned long long)total, len);
	view->env = buf + GN_FRAME_HDR_SIZE;
	view->env_len = hdr.env_len;
	view->payload = view->env + hdr.env_len;
	view->payload_len = hdr.payload_len;
	view->frame_len = (size_t)total;
	return 0;
}

ProtobufCMessage *gn_pb_unpack(const ProtobufCMessageDescriptor *desc,
			       const uint8_t *buf, size_t len, size_t cap)
{
	ProtobufCMessage *m;

	if (len > cap) {
		gn_error_set(-EMSGSIZE, "%s: %zu bytes exceed cap of %zu bytes",
			     desc->name, len, cap);
		return NULL;
	}
	m = protobuf_c_message_unpack(desc, NULL, len, buf);
	if (m == NULL)
		gn_error_set(-EBADMSG,
			     "%s: %zu bytes do not unpack (malformed protobuf)",
			     desc->name, len);
	return m;
}

/* A base-128 varint at *p (below end); advances *p. 0 or -EBADMSG. */
static int peek_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (*p == end)
			return -EBADMSG;
		*v |= (uint64_t)(**p & 0x7f) << shift;
		if ((*(*p)++ & 0x80) == 0)
			return 0;
	}
	return -EBADMSG;
}

int gn_envelope_peek(const uint8_t *buf, size_t len,
		     struct gn_envelope_peek *out)
{
	const uint8_t *p = buf, *end = buf + len;

	memset(out, 0, sizeof(*out));
	while (p < end) {
		uint64_t key, v;

		if (peek_varint(&p, end, &key) != 0 || key >> 3 == 0)
			return -EBADMSG; /* cut short, or field number 0 */
		switch (key & 7) {
		case 0: /* varint */
			if (peek_varint(&p, end, &v) != 0)
				return -EBADMSG;
			if (key >> 3 == 1)
				out->type = (int)(int32_t)v;
			else if (key >> 3 == 3)
				out->request_id = v;
			break;
		case 1: /* 64-bit */
		case 5: /* 32-bit */
			if (end - p < ((key & 7) == 1 ? 8 : 4))
				return -EBADMSG;
			p += (key & 7) == 1 ? 8 : 4;
			break;
		case 2: /* length-delimited */
			if (peek_varint(&p, end, &v) != 0 ||
			    v > (uint64_t)(end - p))
				return -EBADMSG;
			if (key >> 3 == 4) {
				out->body = p;
				out->body_len = (size_t)v;
			}
			p += v;
			break;
		default: return -EBADMSG; /* groups, or no wire type */
		}
	}
	return 0;
}

int gn_envelope_pack(int type, uint64_t request_id,
		     const ProtobufCMessage *body, uint8_t **out,
		     size_t *out_len)
{
	Genie__Envelope env = GENIE__ENVELOPE__INIT;
	uint8_t *body_buf = NULL, *buf;
	size_t body_len = 0, len;

	if (body != NULL) {
		body_len = protobuf_c_message_get_packed_size(body);
		body_buf = malloc(body_len ? body_len : 1);
		if (body_buf == NULL)
			goto oom;
		protobuf_c_message_pack(body, body_buf);
	}
	env.type = (Genie__MsgType)type;
	env.version = GN_SCHEMA_VERSION;
	env.request_id = request_id;
	env.body.data = body_buf;
	env.body.len = body_len;
	len = genie__envelope__get_packed_size(&env);
	buf = malloc(len ? len : 1);
	if (buf == NULL)
		goto oom_body;
	genie__envelope__pack(&env, buf);
	free(body_buf);
	*out = buf;
	*out_len = len;
	return 0;

oom_body:
	free(body_buf);
oom:
	return gn_error_set(-ENOMEM, "envelope: cannot allocate %zu bytes",
			    body_len);
}
