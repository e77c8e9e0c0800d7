/*
 * Fuzz target: the coordinator's decode path (coordinator/wire.c). Any
 * bytes go through the frame header checks with the coordinator's caps
 * (1 MiB envelopes, no payload), the capped Envelope unpack and the unpack
 * of the body its type names; the only acceptable outcomes are a decoded
 * message or a negative errno with words. Built with driver.c as a
 * fixed-seed test in every build.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "fuzz.h"
#include "genie/coord.pb-c.h"
#include "gn_error.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gn_frame_limits lim = {.max_envelope = 1u << 20,
				      .max_payload = 0};
	ProtobufCMessage *body;
	Genie__Envelope *env;
	int rc = gn_coord_decode(data, size, &lim, &env, &body);

	if (rc != 0) {
		if (rc > 0 || gn_last_error()[0] == '\0' || env != NULL ||
		    body != NULL)
			abort(); /* an error without words is a bug */
		return 0;
	}
	if (env == NULL)
		abort();
	/* A body is there exactly when the type names one. */
	if ((body != NULL) !=
	    (gn_coord_body_descriptor((int)env->type) != NULL))
		abort();
	if (body != NULL)
		protobuf_c_message_free_unpacked(body, NULL);
	protobuf_c_message_free_unpacked(&env->base, NULL);
	return 0;
}

/* A framed message: header, then the envelope around `body`. */
static size_t frame(uint8_t *out, size_t cap, int type,
		    const ProtobufCMessage *body)
{
	uint8_t *env;
	size_t len;

	if (gn_envelope_pack(type, 42, body, &env, &len) != 0 ||
	    GN_FRAME_HDR_SIZE + len > cap)
		abort();
	gn_frame_hdr_encode(out, (uint32_t)len, 0);
	memcpy(out + GN_FRAME_HDR_SIZE, env, len);
	free(env);
	return GN_FRAME_HDR_SIZE + len;
}

/* 0: a PlaceRequest with every field; 1: a Heartbeat with load,
 * telemetry, resident keys and latency samples. */
size_t fuzz_seed(uint8_t *out, size_t cap, int variant)
{
	char *keys[] = {"0123456789abcdef", "fedcba9876543210"};

	if (variant == 0) {
		Genie__PlaceRequest rq = GENIE__PLACE_REQUEST__INIT;

		rq.tenant = "tenant-a";
		rq.priority = 70;
		rq.device_kind = "cuda";
		rq.min_free_memory_bytes = 1u << 30;
		rq.transport = "tcp";
		rq.n_model_keys = 2;
		rq.model_keys = keys;
		rq.policy =
			GENIE__PLACEMENT_POLICY__PLACEMENT_POLICY_MODEL_AFFINITY;
		return frame(out, cap, GENIE__MSG_TYPE__MSG_TYPE_PLACE,
			     &rq.base);
	} else {
		Genie__Heartbeat hb = GENIE__HEARTBEAT__INIT;
		Genie__NodeLoad load = GENIE__NODE_LOAD__INIT;
		Genie__RuntimeTelemetry tel = GENIE__RUNTIME_TELEMETRY__INIT;
		uint64_t lat[] = {1000, 250000, 3000000};

		hb.node_id = "runtime-07";
		hb.seq = 1234;
		load.active_sessions = 3;
		load.queue_depth = 2;
		load.memory_used_bytes = 1u << 28;
		load.memory_total_bytes = 1u << 30;
		load.device_utilization = 0.5;
		hb.load = &load;
		tel.runtime_name = "rt";
		tel.bytes_sent_total = 999;
		hb.telemetry = &tel;
		hb.n_resident_keys = 2;
		hb.resident_keys = keys;
		hb.n_plan_latency_ns = 3;
		hb.plan_latency_ns = lat;
		return frame(out, cap, GENIE__MSG_TYPE__MSG_TYPE_HEARTBEAT,
			     &hb.base);
	}
}
