/*
 * Fuzz target: the data plane's packet parser and protocol (dpdk/rel.c).
 * Any bytes go to an accepting endpoint as a received frame, then the
 * endpoint polls; sessions hostile frames open stay, so later inputs meet
 * established sessions too. Nothing may crash, hang or leak; refused
 * frames are only counted.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gn_error.h"
#include "rel.h"

static struct gn_rel_ep *g_ep;
static uint64_t g_now;
static const struct gn_rel_addr g_self = {
	{2, 0, 0, 0, 0, 1}, 0x0a000002u, 7001};
static const struct gn_rel_addr g_peer = {
	{2, 0, 0, 0, 0, 2}, 0x0a000001u, 7000};

static int tx(void *ctx, const struct gn_rel_pkt *p)
{
	(void)ctx;
	if (p->tx_ref)
		gn_rel_tx_done(g_ep, p->tx_ref);
	return 0;
}

/*
 * Every message longer than one byte is reassembled split at a third of
 * its length, each part an allocation of its own: a piece written past
 * either part is a sanitizer report.
 */
static int rx_buffer(void *ctx, struct gn_rel_session *s, uint64_t id,
		     uint64_t len, const uint8_t *first, uint32_t first_len,
		     struct gn_rel_rx *rx)
{
	(void)ctx;
	(void)s;
	(void)id;
	(void)first;
	(void)first_len;
	rx->split = len > 1 ? len / 3 : len;
	rx->buf = malloc(rx->split ? rx->split : 1);
	rx->tail = len > rx->split ? malloc(len - rx->split) : NULL;
	return 0;
}

static void rx_free(const struct gn_rel_rx *rx)
{
	free(rx->buf);
	free(rx->tail);
}

static void on_message(void *ctx, struct gn_rel_session *s, uint64_t id,
		       const struct gn_rel_rx *rx, uint64_t len)
{
	(void)ctx;
	(void)s;
	(void)id;
	(void)len;
	rx_free(rx);
}

static void rx_abort(void *ctx, struct gn_rel_session *s, uint64_t id,
		     const struct gn_rel_rx *rx)
{
	(void)ctx;
	(void)s;
	(void)id;
	rx_free(rx);
}

static void setup(void)
{
	struct gn_rel_config c;
	struct gn_rel_ops ops = {.tx = tx,
				 .rx_buffer = rx_buffer,
				 .on_message = on_message,
				 .rx_abort = rx_abort};

	gn_rel_config_init(&c, sizeof(c));
	c.accept = true;
	c.max_msg_bytes = 1 << 20; /* hostile lengths stay cheap */
	c.max_sessions = 64;
	g_ep = gn_rel_ep_create(&c, &g_self, &ops);
	if (g_ep == NULL)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (g_ep == NULL)
		setup();
	g_now += 1000;
	gn_error_clear();
	gn_rel_input(g_ep, data, size, g_now);
	/* Timers fire on a clock that jumps: retransmit and expiry paths. */
	gn_rel_poll(g_ep, g_now += 50000000);
	return 0;
}

/* A SYN, and a DATA packet of a 2-packet message, from g_peer. */
size_t fuzz_seed(uint8_t *out, size_t cap, int variant)
{
	struct gn_rel_hdr h = {.magic = GN_REL_MAGIC,
			       .version = GN_REL_VERSION,
			       .session = 0x5eed,
			       .credits = 64};
	uint32_t payload = 0;

	if (variant == 0) {
		h.type = GN_REL_SYN;
		h.msg_len = 1408;
	} else {
		h.type = GN_REL_DATA;
		h.msg_id = 1;
		h.pkt_idx = 1;
		h.pkt_count = 2;
		h.msg_len = 1408 + 100;
		h.payload_len = 100;
		payload = 100;
	}
	if (cap < GN_REL_FRAME_HDR + payload)
		return 0;
	gn_rel_udp_encode(&g_peer, &g_self, GN_REL_HDR_SIZE + payload, out);
	gn_rel_hdr_encode(&h, out + 42);
	memset(out + GN_REL_FRAME_HDR, 0xab, payload);
	return GN_REL_FRAME_HDR + payload;
}
