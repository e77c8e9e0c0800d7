/*
 * The coordinator's decode path for one message, as a pure function: a
 * framed byte buffer -> header checks against the caps -> genie.Envelope
 * -> the body message its type names (coord.proto). The server gets the
 * frame from the transport and unpacks bodies with the same descriptors
 * (gn_coord_body_descriptor); the fuzz target (tests/fuzz/coord_decode_fuzz.c)
 * drives the whole path with arbitrary bytes.
 */
#ifndef GN_COORD_WIRE_H
#define GN_COORD_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "frame.h"
#include "genie/envelope.pb-c.h"

/* The body message of control-plane type `type`, or NULL when the type
 * has none (or is not a control-plane type). */
const ProtobufCMessageDescriptor *gn_coord_body_descriptor(int type);

/*
 * Decode one frame at the start of `buf`. Returns 0 with *env (free with
 * protobuf_c_message_free_unpacked) and *body (NULL when the type has no
 * body message; free likewise); otherwise the frame's or unpack's error
 * (-EAGAIN, -EBADMSG, -EMSGSIZE) with the detail set, and nothing to free.
 */
int gn_coord_decode(const uint8_t *buf, size_t len,
		    const struct gn_frame_limits *limits, Genie__Envelope **env,
		    ProtobufCMessage **body);

#endif /* GN_COORD_WIRE_H */
