/*
 * What a dpdk:// message looks like inside one rel message (pure C):
 *
 *     +--------------------------+----------------------------------------+
 *     | lead-in: 1..16 bytes,    | frame (common/frame.h): 24-byte header,|
 *     | byte 0 = its length,     | envelope, payload                      |
 *     | the rest zero            |                                        |
 *     +--------------------------+----------------------------------------+
 *
 * Why the lead-in: rel cuts a message into packets of mtu_payload bytes
 * (a multiple of GN_DPDK_MSG_ALIGN, transport_dpdk_engine.c), and a port
 * copies each packet's share of a payload sent from the caller's buffer
 * into a frame buffer, GN_REL_FRAME_HDR bytes behind its start (net_memif
 * into its ring, with the SSE rte_memcpy of Debian's build). That copy
 * runs its aligned loop only when source and destination agree modulo 16;
 * otherwise it shifts every 16 bytes it moves. The sender sizes the
 * lead-in so that they agree for every packet after the first (64 MiB
 * over memif 5-8% faster at the median of interleaved runs,
 * docs/PERFORMANCE.md).
 */
#ifndef GN_DPDK_DPDK_MSG_H
#define GN_DPDK_DPDK_MSG_H

#include <stdint.h>

#define GN_DPDK_MSG_ALIGN 16
#define GN_DPDK_LEAD_MAX GN_DPDK_MSG_ALIGN

/*
 * The lead-in (1..GN_DPDK_LEAD_MAX bytes) for a message whose envelope
 * has env_len bytes and whose payload starts at `payload`: payload bytes
 * at message offsets that are multiples of GN_DPDK_MSG_ALIGN then lie at
 * addresses congruent to GN_REL_FRAME_HDR modulo GN_DPDK_MSG_ALIGN.
 */
uint32_t gn_dpdk_msg_lead(const void *payload, uint32_t env_len);

/*
 * Write the lead-in of `lead` bytes at out (1..GN_DPDK_LEAD_MAX).
 */
void gn_dpdk_msg_lead_put(uint8_t *out, uint32_t lead);

/*
 * Read and check the lead-in of a message of `len` bytes whose first
 * `avail` bytes are at msg: 0 and *lead, or -EBADMSG (gn_last_error()
 * says what was expected and what came) for a length outside
 * 1..GN_DPDK_LEAD_MAX, nonzero filler, or a message too short for its
 * lead-in and a frame header.
 */
int gn_dpdk_msg_lead_get(const uint8_t *msg, uint64_t avail, uint64_t len,
			 uint32_t *lead);

#endif /* GN_DPDK_DPDK_MSG_H */
