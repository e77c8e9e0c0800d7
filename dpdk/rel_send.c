/*
 * Reliable messaging, the sending half (see rel.h and rel_internal.h):
 * packets out of messages, acks in, retransmission, RTT.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "gn_error.h"
#include "rel_internal.h"

/*
 * RTT histogram buckets: 4 an octave (a quarter octave is 19%, so a
 * quantile read from a bucket's middle is within about 10%). Bucket
 * 4e + k holds values whose leading bit is bit e and whose next two bits
 * are k; values under 4 ns share the first buckets.
 */
static unsigned rtt_bucket(uint64_t ns)
{
	unsigned e, k, b;

	if (ns < 4)
		return (unsigned)ns;
	e = 63u - (unsigned)__builtin_clzll(ns);
	k = (unsigned)(ns >> (e - 2)) & 3u;
	b = 4 * e + k;
	return b < RTT_BUCKETS ? b : RTT_BUCKETS - 1;
}

/* The middle of bucket b, in ns. */
static uint64_t rtt_bucket_mid(unsigned b)
{
	unsigned e = b / 4, k = b % 4;
	uint64_t lo, width;

	if (b < 8)
		return b; /* exact below 8 ns, near enough */
	lo = (uint64_t)(4 + k) << (e - 2);
	width = (uint64_t)1 << (e - 2);
	return lo + width / 2;
}

/* The q-quantile (0..1) of the session's RTT samples; 0 without any. */
uint64_t gn_rel_rtt_quantile(const struct gn_rel_session *s, double q)
{
	uint64_t rank, seen = 0;

	if (s->rtt_samples == 0)
		return 0;
	rank = (uint64_t)(q * (double)(s->rtt_samples - 1));
	for (unsigned b = 0; b < RTT_BUCKETS; b++) {
		seen += s->rtt_hist[b];
		if (seen > rank)
			return rtt_bucket_mid(b);
	}
	return rtt_bucket_mid(RTT_BUCKETS - 1);
}

/* ---- sending ----------------------------------------------------------------
 */

static int emit(struct gn_rel_session *s, struct gn_rel_hdr *h,
		const void *payload, struct msg_out *m)
{
	struct gn_rel_ep *ep = s->ep;
	struct gn_rel_pkt p = {
		.hdr = ep->frame,
		.hdr_len = GN_REL_FRAME_HDR,
		.payload = payload,
		.payload_len = h->payload_len,
		.tx_ref = m,
	};
	int rc;

	h->magic = GN_REL_MAGIC;
	h->version = GN_REL_VERSION;
	h->session = s->id;
	/* Every packet carries the receive state: acks piggyback. */
	h->ack = s->rcv_next;
	h->sack = 0;
	for (uint32_t i = 0; i < GN_REL_SACK_BITS; i++) {
		uint32_t q = s->rcv_next + 1 + i;

		if (s->rcv_bits[(q % RCV_WIN) / 8] & (1u << (q % 8)))
			h->sack |= 1u << i;
	}
	h->credits = s->rx_hold ? 0 : ep->cfg.rx_credits;
	if (payload != NULL && h->type == GN_REL_DATA && ep->cfg.checksum) {
		h->flags |= GN_REL_F_CSUM;
		h->csum = XXH32(payload, h->payload_len, 0);
	}
	gn_rel_udp_encode(&ep->self, &s->peer,
			  GN_REL_HDR_SIZE + (uint32_t)h->payload_len,
			  ep->frame);
	gn_rel_hdr_encode(h, ep->frame + 42);
	if (m != NULL)
		m->tx_pending++;
	rc = ep->ops.tx(ep->ops.ctx, &p);
	if (rc != 0) {
		if (m != NULL)
			m->tx_pending--;
		return rc;
	}
	s->ack_now = false;
	s->ack_due = 0;
	s->unacked = 0;
	COUNT(s, pkts_sent, 1);
	COUNT(s, bytes_sent, h->payload_len);
	return 0;
}

int gn_rel_send_ctl(struct gn_rel_session *s, uint8_t type)
{
	struct gn_rel_hdr h = {.type = type};
	uint32_t span;

	if (type == GN_REL_SYN || type == GN_REL_SYN_ACK)
		h.msg_len = s->ep->cfg.mtu_payload;
	if (type != GN_REL_ACK)
		return emit(s, &h, NULL, NULL);
	COUNT(s, acks_sent, 1);
	/* Past the 32 bits every header carries: the whole map. */
	span = seq_lt(s->rcv_next + 1, s->rcv_high)
		       ? s->rcv_high - (s->rcv_next + 1)
		       : 0;
	if (span > GN_REL_SACK_BITS) {
		uint32_t bytes = (span + 7) / 8;

		if (bytes > sizeof(s->sackmap))
			bytes = sizeof(s->sackmap);
		memset(s->sackmap, 0, bytes);
		for (uint32_t i = 0; i < bytes * 8; i++)
			if (rcv_has(s, s->rcv_next + 1 + i))
				s->sackmap[i / 8] |= (uint8_t)(1u << (i % 8));
		h.flags = GN_REL_F_SACKMAP;
		h.payload_len = (uint16_t)bytes;
		return emit(s, &h, s->sackmap, NULL);
	}
	return emit(s, &h, NULL, NULL);
}

/*
 * Where packet bytes [off, off + len) of m are: inside one piece, or
 * gathered into the bounce slot of the first boundary they cross.
 */
static const uint8_t *pkt_bytes(struct msg_out *m, uint64_t off, uint32_t len,
				uint32_t mtu)
{
	int lo = 0, hi = m->niov - 1;
	uint8_t *dst;
	uint64_t left;

	if (len == 0)
		return NULL;
	while (lo < hi) { /* the last piece starting at or before off */
		int mid = (lo + hi + 1) / 2;

		if (m->at[mid] <= off)
			lo = mid;
		else
			hi = mid - 1;
	}
	if (off + len <= m->at[lo] + m->iov[lo].iov_len)
		return (const uint8_t *)m->iov[lo].iov_base + (off - m->at[lo]);
	dst = m->bounce + (size_t)lo * mtu;
	left = len;
	for (int j = lo; left > 0; j++) {
		uint64_t from = off > m->at[j] ? off - m->at[j] : 0;
		uint64_t n = m->iov[j].iov_len - from;

		if (n > left)
			n = left;
		memcpy(dst + (len - left),
		       (const uint8_t *)m->iov[j].iov_base + from, n);
		left -= n;
	}
	return dst;
}

void gn_rel_msg_out_free(struct msg_out *m)
{
	free(m->iov);
	free(m->at);
	free(m->bounce);
	free(m);
}

static int send_pkt(struct gn_rel_session *s, struct slot *sl)
{
	struct msg_out *m = sl->m;
	uint32_t mtu = s->ep->cfg.mtu_payload;
	uint64_t off = (uint64_t)sl->pkt_idx * mtu;
	struct gn_rel_hdr h = {
		.type = GN_REL_DATA,
		.msg_id = m->msg_id,
		.seq = sl->seq,
		.pkt_idx = sl->pkt_idx,
		.pkt_count = m->pkt_count,
		.msg_len = m->len,
		.payload_len =
			(uint16_t)(m->len - off < mtu ? m->len - off : mtu),
	};

	return emit(s, &h, pkt_bytes(m, off, h.payload_len, mtu), m);
}

void gn_rel_report(struct gn_rel_session *s, struct msg_out *m)
{
	struct gn_rel_ep *ep = s->ep;

	if (m->reported || m->status == 1 || m->tx_pending > 0)
		return;
	m->reported = true;
	s->backlog_msgs--;
	s->backlog_bytes -= m->len;
	if (m->prev)
		m->prev->next = m->next;
	else
		s->pending = m->next;
	if (m->next)
		m->next->prev = m->prev;
	else
		s->pending_tail = m->prev;
	if (s->feed == m)
		s->feed = m->next;
	if (m->status == 0)
		COUNT(s, msgs_sent, 1);
	if (ep->ops.on_sent)
		ep->ops.on_sent(ep->ops.ctx, s, m->cookie, m->status);
	gn_rel_msg_out_free(m);
}

/* Mark packet `seq` acked; an RTT sample when it was sent once. */
static void ack_one(struct gn_rel_session *s, uint32_t seq, uint64_t now)
{
	struct slot *sl = &s->slots[seq % SLOTS];
	struct gn_rel_config *cfg = &s->ep->cfg;

	if (!sl->used || sl->acked || sl->seq != seq)
		return;
	sl->acked = true;
	if (sl->resend) {
		sl->resend = false;
		s->nresend--;
	}
	if (sl->retries == 0 && now >= sl->sent_at) {
		uint64_t r = now - sl->sent_at;

		s->rtt_hist[rtt_bucket(r)]++;
		s->rtt_samples++;
		if (s->srtt == 0) {
			s->srtt = r;
			s->rttvar = r / 2;
		} else {
			uint64_t d = r > s->srtt ? r - s->srtt : s->srtt - r;

			s->rttvar = (3 * s->rttvar + d) / 4;
			s->srtt = (7 * s->srtt + r) / 8;
		}
		/*
		 * rto_min bounds the variance term, as Linux does, not the
		 * RTO: with a deep window the RTT grows with the queue while
		 * its variance stays small, and srtt + 4 * rttvar alone would
		 * fire on every wobble.
		 */
		s->rto = s->srtt + (4 * s->rttvar > cfg->rto_min_ns
					    ? 4 * s->rttvar
					    : cfg->rto_min_ns);
		if (s->rto > cfg->rto_max_ns)
			s->rto = cfg->rto_max_ns;
	}
	if (++sl->m->acked == sl->m->pkt_count) {
		sl->m->status = 0;
		gn_rel_report(s, sl->m);
	}
}

static uint64_t reo_window(const struct gn_rel_session *s)
{
	uint64_t w = s->srtt / 4 > s->rttvar ? s->srtt / 4 : s->rttvar;

	return w + s->ep->cfg.ack_delay_ns;
}

void gn_rel_take_acks(struct gn_rel_session *s, const struct gn_rel_hdr *h,
		      const uint8_t *map, uint64_t now)
{
	uint32_t top = h->ack;

	/* An ack past what was sent is a lie or a stray: ignore it. */
	if (seq_lt(s->snd_next, h->ack))
		return;
	if (seq_lt(s->peer_ack, h->ack) || h->ack == s->peer_ack)
		s->peer_ack = h->ack;
	s->peer_credits = h->credits;
	for (uint32_t q = s->snd_una; seq_lt(q, h->ack); q++)
		ack_one(s, q, now);
	for (uint32_t i = 0; i < GN_REL_SACK_BITS; i++)
		if (h->sack & (1u << i)) {
			ack_one(s, h->ack + 1 + i, now);
			top = h->ack + 1 + i;
		}
	for (uint32_t i = 0; map != NULL && i < 8u * h->payload_len; i++)
		if (map[i / 8] & (1u << (i % 8))) {
			uint32_t q = h->ack + 1 + i;

			if (seq_lt(q, s->snd_next)) {
				ack_one(s, q, now);
				top = q;
			}
		}
	/* A hole below a selectively acked packet: resend it soon. */
	for (uint32_t q = h->ack; seq_lt(q, top); q++) {
		struct slot *sl = &s->slots[q % SLOTS];

		if (!sl->used || sl->acked || sl->resend || sl->seq != q)
			continue;
		/* Reordering looks like loss at first: wait for more. */
		if (sl->holes < HOLE_THRESHOLD)
			sl->holes++;
		/*
		 * ... and for as long as an ack could still be on its way
		 * (RACK's reordering window: a quarter RTT or the RTT's
		 * variation, plus the receiver's ack delay).
		 */
		if (sl->holes >= HOLE_THRESHOLD &&
		    now - sl->sent_at > s->srtt + reo_window(s)) {
			sl->resend = true;
			sl->holes = 0;
			s->nresend++;
		}
	}
	while (s->snd_una != s->snd_next) {
		struct slot *sl = &s->slots[s->snd_una % SLOTS];

		if (sl->used && !sl->acked)
			break;
		sl->used = false;
		s->snd_una++;
	}
}

/*
 * Retransmit (holes acks revealed; with `timers`, also what timed out),
 * then send new packets. False when the ring is full.
 */
bool gn_rel_pump(struct gn_rel_session *s, uint64_t now, bool timers)
{
	struct gn_rel_config *cfg = &s->ep->cfg;
	uint32_t limit, burst = 0;

	if (s->state != S_UP)
		return true;
	/*
	 * One retransmission timer, on the oldest packet in flight, as TCP
	 * has. When it fires, the oldest RTO_BURST unacked packets go again
	 * (the oldest's retries count towards the limit); everything else
	 * waits for acks, whose holes say what else was lost. Resending the
	 * whole window on every timeout would flood a peer whose acks are
	 * merely late.
	 */
	if (timers && s->snd_una != s->snd_next) {
		struct slot *old = &s->slots[s->snd_una % SLOTS];

		if (old->used && !old->acked && old->seq == s->snd_una &&
		    now - old->sent_at >= slot_rto(s, old)) {
			if (old->retries >= cfg->max_retries) {
				COUNT(s, timeouts, 1);
				gn_error_set(-ETIMEDOUT,
					     "rel: session %016llx: packet %u "
					     "not acked after %u "
					     "retransmissions",
					     (unsigned long long)s->id,
					     s->snd_una, old->retries);
				gn_rel_kill_session(s, -ETIMEDOUT);
				return true;
			}
			burst = RTO_BURST;
		}
	}
	for (uint32_t q = s->snd_una;
	     (burst > 0 || s->nresend > 0) && q != s->snd_next; q++) {
		struct slot *sl = &s->slots[q % SLOTS];

		if (!sl->used || sl->acked || sl->seq != q)
			continue;
		if (!sl->resend && burst == 0)
			continue;
		if (send_pkt(s, sl) != 0)
			return false;
		if (sl->resend) {
			sl->resend = false;
			s->nresend--;
			COUNT(s, hole_retransmits, 1);
		} else {
			burst--;
		}
		sl->retries++;
		sl->sent_at = now;
		COUNT(s, retransmits, 1);
	}
	/* New packets, within our window and the peer's credit. */
	limit = cfg->window < s->peer_credits ? cfg->window : s->peer_credits;
	while (s->feed != NULL) {
		struct msg_out *m = s->feed;
		struct slot *sl;

		if (m->next_pkt == m->pkt_count) {
			s->feed = m->next;
			continue;
		}
		if (s->snd_next - s->snd_una >= limit ||
		    !seq_lt(s->snd_next, s->peer_ack + s->peer_credits))
			break;
		sl = &s->slots[s->snd_next % SLOTS];
		*sl = (struct slot){.m = m,
				    .seq = s->snd_next,
				    .pkt_idx = m->next_pkt,
				    .sent_at = now,
				    .used = true};
		if (send_pkt(s, sl) != 0) {
			sl->used = false;
			return false;
		}
		m->next_pkt++;
		s->snd_next++;
	}
	/*
	 * Data waiting, nothing in flight and no credit: the peer holds its
	 * receive side. Ask what credit it gives now, after an RTO and then
	 * twice as long each time up to rto_max (as TCP's persist timer), so
	 * a lost window update costs one probe (gn_rel_session_hold()).
	 */
	if (s->feed != NULL && s->snd_una == s->snd_next &&
	    !seq_lt(s->snd_next, s->peer_ack + s->peer_credits)) {
		if (s->probe_at == 0) {
			s->probe_wait = s->rto;
			s->probe_at = now + s->probe_wait;
		} else if (timers && now >= s->probe_at) {
			struct gn_rel_hdr h = {.type = GN_REL_ACK,
					       .flags = GN_REL_F_PROBE};

			if (emit(s, &h, NULL, NULL) != 0)
				return false;
			COUNT(s, probes_sent, 1);
			s->probe_wait = 2 * s->probe_wait < cfg->rto_max_ns
						? 2 * s->probe_wait
						: cfg->rto_max_ns;
			s->probe_at = now + s->probe_wait;
		}
	} else {
		s->probe_at = 0;
	}
	return true;
}

int gn_rel_sendv(struct gn_rel_session *s, uint64_t msg_id,
		 const struct iovec *iov, int iovcnt, void *cookie,
		 uint64_t now)
{
	uint32_t mtu = s->ep->cfg.mtu_payload;
	struct msg_out *m;
	uint64_t len = 0;

	if (iovcnt < 0 || (iovcnt > 0 && iov == NULL))
		return gn_error_set(-EINVAL,
				    "rel: %d pieces at %p, expected 0 or more "
				    "pieces",
				    iovcnt, (const void *)iov);
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len && iov[i].iov_base == NULL)
			return gn_error_set(-EINVAL,
					    "rel: piece %d has %zu bytes at "
					    "NULL",
					    i, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	if (s->state == S_DEAD)
		return gn_error_set(-ENOTCONN,
				    "rel: session %016llx is closed (%s)",
				    (unsigned long long)s->id,
				    gn_strerror(s->close_status));
	if (len > s->ep->cfg.max_msg_bytes)
		return gn_error_set(
			-EMSGSIZE, "rel: message of %llu bytes, at most %llu",
			(unsigned long long)len,
			(unsigned long long)s->ep->cfg.max_msg_bytes);
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return gn_error_set(-ENOMEM, "rel: out of memory");
	m->iov = calloc(iovcnt ? (size_t)iovcnt : 1, sizeof(*m->iov));
	m->at = calloc(iovcnt ? (size_t)iovcnt : 1, sizeof(*m->at));
	if (m->iov == NULL || m->at == NULL) {
		gn_rel_msg_out_free(m);
		return gn_error_set(-ENOMEM, "rel: out of memory");
	}
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len == 0)
			continue;
		m->iov[m->niov] = iov[i];
		m->at[m->niov] = m->len;
		m->len += iov[i].iov_len;
		m->niov++;
	}
	if (m->niov > 1) {
		m->bounce = malloc((size_t)(m->niov - 1) * mtu);
		if (m->bounce == NULL) {
			gn_rel_msg_out_free(m);
			return gn_error_set(-ENOMEM, "rel: out of memory");
		}
	}
	m->s = s;
	m->msg_id = msg_id;
	m->cookie = cookie;
	m->status = 1;
	m->pkt_count = len ? (uint32_t)((len + mtu - 1) / mtu) : 1;
	m->prev = s->pending_tail;
	if (s->pending_tail)
		s->pending_tail->next = m;
	else
		s->pending = m;
	s->pending_tail = m;
	s->backlog_msgs++;
	s->backlog_bytes += m->len;
	if (s->feed == NULL)
		s->feed = m;
	gn_rel_pump(s, now, false);
	return 0;
}

int gn_rel_send(struct gn_rel_session *s, uint64_t msg_id, const void *buf,
		uint64_t len, void *cookie, uint64_t now)
{
	struct iovec iov = {(void *)(uintptr_t)buf, (size_t)len};

	if (len > SIZE_MAX)
		return gn_error_set(-EMSGSIZE, "rel: message of %llu bytes",
				    (unsigned long long)len);
	return gn_rel_sendv(s, msg_id, &iov, len ? 1 : 0, cookie, now);
}
