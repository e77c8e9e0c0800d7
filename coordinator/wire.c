/* The coordinator's message decode path (see wire.h). */
#include <errno.h>
#include <stdlib.h>

#include "genie/control.pb-c.h"
#include "genie/coord.pb-c.h"
#include "gn_error.h"
#include "wire.h"

const ProtobufCMessageDescriptor *gn_coord_body_descriptor(int type)
{
	switch (type) {
	case GENIE__MSG_TYPE__MSG_TYPE_ERROR:
		return &genie__error_reply__descriptor;
	case GENIE__MSG_TYPE__MSG_TYPE_COORD_HELLO:
		return &genie__coord_hello__descriptor;
	case GENIE__MSG_TYPE__MSG_TYPE_AUTH_CHALLENGE:
		return &genie__auth_challenge__descriptor;
	case GENIE__MSG_TYPE__MSG_TYPE_AUTH_RESPONSE:
		return &genie__auth_response__descriptor;
	case GENIE__MSG_TYPE__MSG_TYPE_COORD_HELLO_ACK:
		return &genie__coord_hello_ack__descriptor;
	case GENIE__MSG_TYPE__MSG_TYPE_REGISTER:
		return &genie__register_node__descriptor;
	case GENIE__MSG_TYPE__MSG_TYPE_REGISTER_ACK:
		return &genie__register_ack__descriptor;
	case GENIE__MSG_TYPE__MSG_TYPE_HEARTBEAT:
		return &genie__heartbeat__descriptor;
	case GENIE__MSG_TYPE__MSG_TYPE_HEARTBEAT_ACK:
		return &genie__heartbeat_ack__descriptor;
	case GENIE__MSG_TYPE__MSG_TYPE_PLACE:
		return &genie__place_request__descriptor;
	case GENIE__MSG_TYPE__MSG_TYPE_PLACE_REPLY:
		return &genie__place_reply__descriptor;
	case GENIE__MSG_TYPE__MSG_TYPE_RELEASE_SESSION:
		return &genie__release_session__descriptor;
	case GENIE__MSG_TYPE__MSG_TYPE_LIST_NODES:
		return &genie__list_nodes__descriptor;
	case GENIE__MSG_TYPE__MSG_TYPE_NODE_LIST:
		return &genie__node_list__descriptor;
	case GENIE__MSG_TYPE__MSG_TYPE_DESCRIBE_NODE:
		return &genie__describe_node__descriptor;
	case GENIE__MSG_TYPE__MSG_TYPE_LIST_SESSIONS:
		return &genie__list_sessions__descriptor;
	case GENIE__MSG_TYPE__MSG_TYPE_SESSION_LIST:
		return &genie__session_list__descriptor;
	case GENIE__MSG_TYPE__MSG_TYPE_DRAIN:
		return &genie__drain_node__descriptor;
	case GENIE__MSG_TYPE__MSG_TYPE_COORD_ACK:
		return &genie__coord_ack__descriptor;
	default: return NULL;
	}
}

int gn_coord_decode(const uint8_t *buf, size_t len,
		    const struct gn_frame_limits *limits, Genie__Envelope **env,
		    ProtobufCMessage **body)
{
	const ProtobufCMessageDescriptor *desc;
	struct gn_frame_view v;
	int rc;

	*env = NULL;
	*body = NULL;
	rc = gn_frame_parse(buf, len, limits, &v);
	if (rc != 0)
		return rc;
	*env = (Genie__Envelope *)gn_pb_unpack(&genie__envelope__descriptor,
					       v.env, v.env_len,
					       limits->max_envelope);
	if (*env == NULL)
		return gn_last_error_code();
	desc = gn_coord_body_descriptor((int)(*env)->type);
	if (desc == NULL)
		return 0;
	*body = gn_pb_unpack(desc, (*env)->body.data, (*env)->body.len,
			     limits->max_envelope);
	if (*body == NULL) {
		rc = gn_last_error_code();
		protobuf_c_message_free_unpacked(&(*env)->base, NULL);
		*env = NULL;
		return rc;
	}
	return 0;
}
