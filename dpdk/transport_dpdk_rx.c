/*
 * What arrives over a dpdk:// connection (transport_dpdk_internal.h):
 * rel's receive callbacks, engine lock held. A message's memory (a
 * message buffer, or the payload placed where the connection's placement
 * says), its lead-in and frame checked (dpdk_msg.h, common/frame.h), and
 * the message queued for the connection's recv.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gn_error.h"
#include "log.h"
#include "transport_dpdk_internal.h"

GN_LOG_EXTERN(dpdk_transport);

/*
 * A message's memory. When its first packet opens it and holds the
 * lead-in (dpdk_msg.h), the frame header and the whole envelope, the
 * connection's placement (transport.h) is asked for the payload: if it
 * gives memory, the lead-in, header and envelope go into a message buffer
 * of their own and the payload straight into that memory (the split is
 * rel's). Otherwise, and for a message whose first packet was lost or
 * overtaken, one message buffer holds it all.
 */
int gn_dpdk_rx_buffer(void *ctx, struct gn_rel_session *s, uint64_t id,
		      uint64_t len, const uint8_t *first, uint32_t first_len,
		      struct gn_rel_rx *rx)
{
	struct engine *e = ctx;
	struct dpdk_conn *c = gn_rel_session_user(s);
	const struct gn_placement *placer;
	struct gn_frame_hdr h;
	uint32_t lead;
	uint64_t head;
	void *placed;

	(void)id;
	/* Refused before anything is allocated, as TCP refuses the header. */
	if (len < 1 + GN_FRAME_HDR_SIZE ||
	    len > GN_DPDK_LEAD_MAX + GN_FRAME_HDR_SIZE +
			    (uint64_t)e->limits.max_envelope +
			    e->limits.max_payload)
		return -1;
	if (c != NULL && first != NULL &&
	    gn_dpdk_msg_lead_get(first, first_len, len, &lead) == 0 &&
	    first_len >= lead + GN_FRAME_HDR_SIZE &&
	    gn_frame_hdr_decode(first + lead, GN_FRAME_HDR_SIZE, &e->limits,
				&h) == 0 &&
	    (head = lead + GN_FRAME_HDR_SIZE + (uint64_t)h.env_len) <=
		    first_len &&
	    head + h.payload_len == len &&
	    (placed = gn_conn_place(&c->base, first + lead + GN_FRAME_HDR_SIZE,
				    h.env_len, h.payload_len, &placer)) !=
		    NULL) {
		rx->buf = gn_msg_buf_alloc(head);
		if (rx->buf == NULL) {
			placer->unplace(placer->arg, placed);
			return -1;
		}
		rx->split = head;
		rx->tail = placed;
		rx->user = (void *)placer;
		return 0;
	}
	rx->buf = gn_msg_buf_alloc(len);
	return rx->buf != NULL ? 0 : -1;
}

/* Give back what rx_buffer took. */
static void rx_free(const struct gn_rel_rx *rx)
{
	const struct gn_placement *placer = rx->user;

	if (placer != NULL)
		placer->unplace(placer->arg, rx->tail);
	gn_msg_buf_free(rx->buf);
}

void gn_dpdk_rx_abort(void *ctx, struct gn_rel_session *s, uint64_t id,
		      const struct gn_rel_rx *rx)
{
	(void)ctx;
	(void)s;
	(void)id;
	rx_free(rx);
}

/* The message rel reassembled into rx, as the transport hands it on. */
static int rx_msg(struct engine *e, const struct gn_rel_rx *rx, uint64_t len,
		  struct gn_msg *m)
{
	struct gn_frame_view v;
	struct gn_frame_hdr h;
	uint32_t lead;

	memset(m, 0, sizeof(*m));
	m->buf = rx->buf;
	/* buf holds rx->split bytes: all len of them unless placed. */
	if (gn_dpdk_msg_lead_get(rx->buf, rx->split, len, &lead) != 0)
		return -1;
	if (rx->user == NULL) {
		if (gn_frame_parse(rx->buf + lead, len - lead, &e->limits,
				   &v) != 0)
			return -1;
		if (v.frame_len != len - lead)
			return gn_error_set(-EBADMSG,
					    "frame of %zu bytes in a message "
					    "of %llu after a %u-byte lead-in",
					    v.frame_len,
					    (unsigned long long)len, lead);
		m->env = v.env;
		m->env_len = v.env_len;
		m->payload = (uint8_t *)v.payload;
		m->payload_len = v.payload_len;
		return 0;
	}
	/* Placed: rx_buffer checked the header against these lengths. */
	if (gn_frame_hdr_decode(rx->buf + lead, GN_FRAME_HDR_SIZE, &e->limits,
				&h) != 0)
		return -1;
	m->env = rx->buf + lead + GN_FRAME_HDR_SIZE;
	m->env_len = h.env_len;
	m->payload = rx->tail;
	m->payload_len = h.payload_len;
	m->placed = rx->tail;
	m->placer = rx->user;
	return 0;
}

void gn_dpdk_on_message(void *ctx, struct gn_rel_session *s, uint64_t id,
			const struct gn_rel_rx *rx, uint64_t len)
{
	struct engine *e = ctx;
	struct dpdk_conn *c = gn_rel_session_user(s);
	struct gn_msg m;

	(void)id;
	if (c == NULL) { /* closed meanwhile */
		rx_free(rx);
		return;
	}
	if (rx_msg(e, rx, len, &m) != 0) {
		GN_LOG(WARNING, dpdk_transport, "dropping a bad message: %s",
		       gn_last_error());
		rx_free(rx);
		return;
	}
	if (c->nq == c->capq) {
		size_t cap = c->capq ? 2 * c->capq : 8;
		struct gn_msg *q = realloc(c->q, cap * sizeof(*q));

		if (q == NULL) {
			gn_msg_release(&m);
			return;
		}
		c->q = q;
		c->capq = cap;
	}
	c->q[c->nq++] = m;
	c->qbytes += m.env_len + m.payload_len;
	if (!c->held && conn_queue_full(c)) {
		c->held = true;
		gn_rel_session_hold(s, true);
	}
	if (c->sleeping) /* else recv spins and finds it: no syscall */
		gn_dpdk_poke(c->fds[1]);
}
