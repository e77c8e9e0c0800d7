/*
 * The dpdk:// message lead-in (dpdk_msg.h).
 */
#include <errno.h>
#include <string.h>

#include "dpdk_msg.h"
#include "frame.h"
#include "gn_error.h"
#include "rel.h"

_Static_assert(GN_DPDK_LEAD_MAX <= 255, "the length fits its byte");

uint32_t gn_dpdk_msg_lead(const void *payload, uint32_t env_len)
{
	/*
	 * The payload starts lead + 24 + env_len bytes into the message, so
	 * message offset k * ALIGN sits at payload - (lead + 24 + env_len)
	 * + k * ALIGN; that is to be GN_REL_FRAME_HDR modulo ALIGN.
	 */
	uintptr_t want = (uintptr_t)payload - GN_REL_FRAME_HDR -
			 GN_FRAME_HDR_SIZE - env_len;
	uint32_t lead = (uint32_t)(want % GN_DPDK_MSG_ALIGN);

	return lead != 0 ? lead : GN_DPDK_MSG_ALIGN;
}

void gn_dpdk_msg_lead_put(uint8_t *out, uint32_t lead)
{
	memset(out, 0, lead);
	out[0] = (uint8_t)lead;
}

int gn_dpdk_msg_lead_get(const uint8_t *msg, uint64_t avail, uint64_t len,
			 uint32_t *lead)
{
	uint32_t n;

	if (avail == 0 || len == 0)
		return gn_error_set(-EBADMSG,
				    "dpdk: empty message, expected a lead-in "
				    "and a frame");
	n = msg[0];
	if (n < 1 || n > GN_DPDK_LEAD_MAX)
		return gn_error_set(-EBADMSG,
				    "dpdk: message lead-in of %u bytes, "
				    "expected 1 to %d",
				    n, GN_DPDK_LEAD_MAX);
	if (len < (uint64_t)n + GN_FRAME_HDR_SIZE || avail < n)
		return gn_error_set(-EBADMSG,
				    "dpdk: message of %llu bytes (%llu at "
				    "hand), its %u-byte lead-in and a frame "
				    "header need %u",
				    (unsigned long long)len,
				    (unsigned long long)avail, n,
				    n + GN_FRAME_HDR_SIZE);
	for (uint32_t i = 1; i < n; i++)
		if (msg[i] != 0)
			return gn_error_set(-EBADMSG,
					    "dpdk: lead-in byte %u is 0x%02x, "
					    "expected 0",
					    i, msg[i]);
	*lead = n;
	return 0;
}
