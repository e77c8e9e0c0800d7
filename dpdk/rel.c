/*
 * Reliable messaging over datagrams (see rel.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <xxhash.h>

#include "gn_error.h"
#include "rel.h"

#define SLOTS 4096   /* in-flight ring; window is capped below it */
#define RCV_WIN 4096 /* receive bitmap; rx_credits is capped below it */
#define HASH_BUCKETS 1024
#define RTT_BUCKETS 168 /* up to 2^42 ns, 4 buckets an octave */
#define ACK_EVERY 16	/* packets received before an ack goes at once */

enum state { S_SYN_SENT, S_UP, S_DEAD };

struct msg_out {
	struct msg_out *next, *prev; /* session's pending list */
	struct gn_rel_session *s;
	uint64_t msg_id, len;
	/*
	 * The caller's pieces (empty ones left out) and where each starts
	 * in the message. A packet that spans pieces is gathered into
	 * bounce[j * mtu], j the first piece boundary it crosses (one
	 * packet crosses each boundary); most packets point into a piece.
	 */
	struct iovec *iov;
	uint64_t *at;
	int niov;
	uint8_t *bounce;
	void *cookie;
	uint32_t pkt_count, next_pkt, acked;
	uint32_t tx_pending; /* transmissions the layer below still holds */
	int status;	     /* 1 while pending; then 0 or -errno */
	bool reported;
};

struct slot {
	struct msg_out *m;
	uint64_t sent_at;
	uint32_t seq, pkt_idx, retries;
	uint8_t holes; /* acks that showed it missing below a later one */
	bool used, acked, resend;
};

/* Packets resent when the retransmission timer fires. */
#define RTO_BURST 16

/* Acks showing a hole before it is resent (TCP's duplicate-ack rule). */
#define HOLE_THRESHOLD 3

struct msg_in {
	struct msg_in *next;
	uint64_t msg_id, len;
	uint8_t *buf;
	uint32_t pkt_count, got;
	uint8_t *bits;
};

struct gn_rel_session {
	struct gn_rel_ep *ep;
	struct gn_rel_session *next, *hnext;
	uint64_t id;
	struct gn_rel_addr peer;
	enum state state;
	int close_status;
	bool closed_reported, fin_pending;
	uint16_t peer_mtu;
	/* send side */
	uint32_t snd_next, snd_una, peer_ack;
	uint16_t peer_credits;
	struct slot *slots;
	struct msg_out *pending; /* every unreported message, oldest first */
	struct msg_out *pending_tail;
	struct msg_out *feed; /* first message with unsent packets */
	uint64_t srtt, rttvar, rto;
	/* RTT samples by size: 4 buckets an octave (see rtt_bucket()). */
	uint32_t rtt_hist[RTT_BUCKETS];
	uint64_t rtt_samples;
	uint64_t syn_at;
	uint32_t syn_retries;
	uint32_t nresend; /* slots flagged for resend */
	/* receive side */
	uint32_t rcv_next, rcv_high; /* rcv_high: past the highest received */
	uint8_t rcv_bits[RCV_WIN / 8];
	uint8_t sackmap[RCV_WIN / 8];
	struct msg_in *in;
	bool ack_now;
	uint64_t ack_due; /* 0: none */
	uint32_t unacked;
	struct gn_rel_stats st;
	void *user;
};

struct gn_rel_ep {
	struct gn_rel_config cfg;
	struct gn_rel_addr self;
	struct gn_rel_ops ops;
	struct gn_rel_session *sessions;
	struct gn_rel_session *buckets[HASH_BUCKETS];
	uint32_t nsessions;
	struct gn_rel_stats st; /* endpoint totals */
	uint8_t frame[GN_REL_FRAME_HDR];
};

/* ---- helpers ------------------------------------------------------------- */

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
static uint64_t rtt_quantile(const struct gn_rel_session *s, double q)
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

void gn_rel_config_init(struct gn_rel_config *c, size_t opts_size)
{
	struct gn_rel_config d = {
		.opts_size = sizeof(d),
		.mtu_payload = 1514 - GN_REL_FRAME_HDR,
		.window = 512,
		.rx_credits = 1024,
		.max_retries = 16,
		.rto_min_ns = 200000,
		.rto_max_ns = 500000000,
		.rto_init_ns = 2000000,
		.ack_delay_ns = 20000,
		.max_msg_bytes = 1ull << 30,
		.max_sessions = 1024,
	};

	if (c == NULL)
		return;
	memset(c, 0, opts_size);
	memcpy(c, &d, opts_size < sizeof(d) ? opts_size : sizeof(d));
	c->opts_size = opts_size;
}

static bool seq_lt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

/*
 * A session's peer is its IPv4 address and UDP port; its Ethernet address
 * is learnt from what it sends (a client may start with the broadcast
 * address, knowing only the server's IP and port).
 */
static bool addr_eq(const struct gn_rel_addr *a, const struct gn_rel_addr *b)
{
	return a->ip == b->ip && a->port == b->port;
}

static void count(struct gn_rel_session *s, size_t off, uint64_t n)
{
	*(uint64_t *)((char *)&s->st + off) += n;
	*(uint64_t *)((char *)&s->ep->st + off) += n;
}

#define COUNT(s, field, n) count((s), offsetof(struct gn_rel_stats, field), (n))

static struct gn_rel_session *find(struct gn_rel_ep *ep, uint64_t id)
{
	struct gn_rel_session *s = ep->buckets[id % HASH_BUCKETS];

	while (s != NULL && s->id != id)
		s = s->hnext;
	return s;
}

static bool rcv_has(const struct gn_rel_session *s, uint32_t q)
{
	return s->rcv_bits[(q % RCV_WIN) / 8] & (1u << (q % 8));
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
	h->credits = ep->cfg.rx_credits;
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

static int send_ctl(struct gn_rel_session *s, uint8_t type)
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

static void msg_out_free(struct msg_out *m)
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

static void report(struct gn_rel_session *s, struct msg_out *m)
{
	struct gn_rel_ep *ep = s->ep;

	if (m->reported || m->status == 1 || m->tx_pending > 0)
		return;
	m->reported = true;
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
	msg_out_free(m);
}

static void free_session(struct gn_rel_session *s);

/* Fail or close: every pending message ends with `status`. */
static void kill_session(struct gn_rel_session *s, int status)
{
	struct gn_rel_ep *ep = s->ep;

	if (s->state == S_DEAD)
		return;
	s->state = S_DEAD;
	s->close_status = status;
	for (struct msg_out *m = s->pending; m != NULL; m = m->next)
		if (m->status == 1)
			m->status = status;
	/* Slots point at messages: drop them before messages go. */
	memset(s->slots, 0, sizeof(*s->slots) * SLOTS);
	s->nresend = 0;
	for (struct msg_out *m = s->pending, *n; m != NULL; m = n) {
		n = m->next;
		report(s, m);
	}
	if (!s->closed_reported) {
		s->closed_reported = true;
		if (ep->ops.on_closed)
			ep->ops.on_closed(ep->ops.ctx, s, status);
	}
	/* Freed by gn_rel_poll once the layer below holds none of it. */
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
		report(s, sl->m);
	}
}

static uint64_t reo_window(const struct gn_rel_session *s)
{
	uint64_t w = s->srtt / 4 > s->rttvar ? s->srtt / 4 : s->rttvar;

	return w + s->ep->cfg.ack_delay_ns;
}

static void take_acks(struct gn_rel_session *s, const struct gn_rel_hdr *h,
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

static uint64_t slot_rto(const struct gn_rel_session *s, const struct slot *sl)
{
	uint64_t rto = s->rto;

	for (uint32_t i = 0; i < sl->retries && rto < s->ep->cfg.rto_max_ns;
	     i++)
		rto *= 2;
	return rto < s->ep->cfg.rto_max_ns ? rto : s->ep->cfg.rto_max_ns;
}

/*
 * Retransmit (holes acks revealed; with `timers`, also what timed out),
 * then send new packets. False when the ring is full.
 */
static bool pump(struct gn_rel_session *s, uint64_t now, bool timers)
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
				kill_session(s, -ETIMEDOUT);
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
	return true;
}

/* ---- sessions -------------------------------------------------------------
 */

static struct gn_rel_session *new_session(struct gn_rel_ep *ep, uint64_t id,
					  const struct gn_rel_addr *peer)
{
	struct gn_rel_session *s;

	if (ep->nsessions >= ep->cfg.max_sessions) {
		gn_error_set(-EMFILE, "rel: %u sessions, the most allowed",
			     ep->nsessions);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s != NULL)
		s->slots = calloc(SLOTS, sizeof(*s->slots));
	if (s == NULL || s->slots == NULL) {
		free(s);
		gn_error_set(-ENOMEM, "rel: out of memory for a session");
		return NULL;
	}
	s->ep = ep;
	s->id = id;
	s->peer = *peer;
	s->rto = ep->cfg.rto_init_ns;
	s->peer_credits = 1; /* until the peer says more */
	s->next = ep->sessions;
	ep->sessions = s;
	s->hnext = ep->buckets[id % HASH_BUCKETS];
	ep->buckets[id % HASH_BUCKETS] = s;
	ep->nsessions++;
	return s;
}

static void free_session(struct gn_rel_session *s)
{
	struct gn_rel_ep *ep = s->ep;
	struct gn_rel_session **pp;

	for (pp = &ep->sessions; *pp != NULL; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	for (pp = &ep->buckets[s->id % HASH_BUCKETS]; *pp != NULL;
	     pp = &(*pp)->hnext)
		if (*pp == s) {
			*pp = s->hnext;
			break;
		}
	ep->nsessions--;
	while (s->in != NULL) {
		struct msg_in *mi = s->in;

		s->in = mi->next;
		if (ep->ops.rx_abort)
			ep->ops.rx_abort(ep->ops.ctx, s, mi->msg_id, mi->buf);
		free(mi->bits);
		free(mi);
	}
	free(s->slots);
	free(s);
}

struct gn_rel_ep *gn_rel_ep_create(const struct gn_rel_config *cfg,
				   const struct gn_rel_addr *self,
				   const struct gn_rel_ops *ops)
{
	struct gn_rel_ep *ep;
	struct gn_rel_config c;

	gn_rel_config_init(&c, sizeof(c));
	if (cfg != NULL)
		memcpy(&c, cfg,
		       cfg->opts_size < sizeof(c) ? cfg->opts_size : sizeof(c));
	if (self == NULL || ops == NULL || ops->tx == NULL ||
	    c.mtu_payload == 0 || c.mtu_payload > 9000 || c.window == 0 ||
	    c.window >= SLOTS || c.rx_credits == 0 ||
	    c.rx_credits > RCV_WIN - GN_REL_SACK_BITS || c.rto_min_ns == 0 ||
	    c.rto_max_ns < c.rto_min_ns || c.max_sessions == 0) {
		gn_error_set(-EINVAL,
			     "rel: bad configuration (mtu_payload 1..9000, "
			     "window 1..%d, rx_credits 1..%d, rto_min > 0 <= "
			     "rto_max, ops->tx set)",
			     SLOTS - 1, RCV_WIN - GN_REL_SACK_BITS);
		return NULL;
	}
	ep = calloc(1, sizeof(*ep));
	if (ep == NULL) {
		gn_error_set(-ENOMEM, "rel: out of memory");
		return NULL;
	}
	ep->cfg = c;
	ep->self = *self;
	ep->ops = *ops;
	return ep;
}

void gn_rel_ep_destroy(struct gn_rel_ep **epp)
{
	struct gn_rel_ep *ep = epp ? *epp : NULL;

	if (ep == NULL)
		return;
	while (ep->sessions != NULL) {
		struct gn_rel_session *s = ep->sessions;

		kill_session(s, -ECONNABORTED);
		/* Messages still held by the layer below: dropped now. */
		while (s->pending != NULL) {
			struct msg_out *m = s->pending;

			s->pending = m->next;
			msg_out_free(m);
		}
		free_session(s);
	}
	free(ep);
	*epp = NULL;
}

static uint64_t random_id(void)
{
	uint64_t id = 0;

	while (id == 0)
		if (getrandom(&id, sizeof(id), 0) != sizeof(id))
			return 0;
	return id;
}

int gn_rel_connect(struct gn_rel_ep *ep, const struct gn_rel_addr *peer,
		   uint64_t now, struct gn_rel_session **out)
{
	uint64_t id = random_id();
	struct gn_rel_session *s;

	if (id == 0)
		return gn_error_set(-EIO,
				    "rel: no randomness for a session id");
	s = new_session(ep, id, peer);
	if (s == NULL)
		return gn_last_error_code();
	s->state = S_SYN_SENT;
	s->syn_at = now;
	send_ctl(s, GN_REL_SYN);
	*out = s;
	return 0;
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
		msg_out_free(m);
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
			msg_out_free(m);
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
	if (s->feed == NULL)
		s->feed = m;
	pump(s, now, false);
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

void gn_rel_close(struct gn_rel_session *s, uint64_t now)
{
	(void)now;
	if (s->state != S_DEAD)
		send_ctl(s, GN_REL_FIN);
	kill_session(s, -ECONNABORTED);
}

/* ---- receiving ---------------------------------------------------------- */

static void rcv_set(struct gn_rel_session *s, uint32_t q)
{
	s->rcv_bits[(q % RCV_WIN) / 8] |= (uint8_t)(1u << (q % 8));
	if (!seq_lt(q, s->rcv_high))
		s->rcv_high = q + 1;
	while (rcv_has(s, s->rcv_next)) {
		s->rcv_bits[(s->rcv_next % RCV_WIN) / 8] &=
			(uint8_t) ~(1u << (s->rcv_next % 8));
		s->rcv_next++;
	}
}

static void want_ack(struct gn_rel_session *s, bool now_, uint64_t now)
{
	if (now_ || ++s->unacked >= ACK_EVERY)
		s->ack_now = true;
	else if (s->ack_due == 0)
		s->ack_due = now + s->ep->cfg.ack_delay_ns;
}

static void take_data(struct gn_rel_session *s, const struct gn_rel_hdr *h,
		      const uint8_t *payload, uint64_t now)
{
	struct gn_rel_ep *ep = s->ep;
	uint32_t mtu = s->peer_mtu, expect;
	struct msg_in *mi, **pp;

	if (h->flags & GN_REL_F_CSUM &&
	    XXH32(payload, h->payload_len, 0) != h->csum) {
		COUNT(s, csum_errors, 1);
		return; /* never acked: the sender resends it */
	}
	if (seq_lt(h->seq, s->rcv_next) ||
	    (h->seq - s->rcv_next < RCV_WIN && rcv_has(s, h->seq))) {
		COUNT(s, dup_received, 1);
		want_ack(s, true, now);
		return;
	}
	if (h->seq - s->rcv_next >= ep->cfg.rx_credits)
		return; /* beyond the credit we gave: the sender overran */
	for (pp = &s->in; *pp != NULL && (*pp)->msg_id != h->msg_id;
	     pp = &(*pp)->next)
		;
	mi = *pp;
	if (mi == NULL) {
		uint64_t pkts = h->msg_len ? (h->msg_len + mtu - 1) / mtu : 1;

		if (h->msg_len > ep->cfg.max_msg_bytes ||
		    pkts != h->pkt_count) {
			COUNT(s, bad_frames, 1);
			return;
		}
		mi = calloc(1, sizeof(*mi));
		if (mi != NULL)
			mi->bits = calloc((pkts + 7) / 8, 1);
		if (mi == NULL || mi->bits == NULL ||
		    ep->ops.rx_buffer == NULL ||
		    (mi->buf = ep->ops.rx_buffer(ep->ops.ctx, s, h->msg_id,
						 h->msg_len)) == NULL) {
			if (mi != NULL)
				free(mi->bits);
			free(mi);
			COUNT(s, refused_msgs, 1);
			return;
		}
		mi->msg_id = h->msg_id;
		mi->len = h->msg_len;
		mi->pkt_count = h->pkt_count;
		mi->next = s->in;
		s->in = mi;
	}
	expect = h->pkt_idx + 1 < mi->pkt_count
			 ? mtu
			 : (uint32_t)(mi->len - (uint64_t)h->pkt_idx * mtu);
	if (h->pkt_idx >= mi->pkt_count || h->pkt_count != mi->pkt_count ||
	    h->msg_len != mi->len || h->payload_len != expect) {
		COUNT(s, bad_frames, 1);
		return;
	}
	if (!(mi->bits[h->pkt_idx / 8] & (1u << (h->pkt_idx % 8)))) {
		mi->bits[h->pkt_idx / 8] |= (uint8_t)(1u << (h->pkt_idx % 8));
		if (h->payload_len)
			memcpy(mi->buf + (uint64_t)h->pkt_idx * mtu, payload,
			       h->payload_len);
		mi->got++;
	}
	rcv_set(s, h->seq);
	COUNT(s, pkts_received, 1);
	COUNT(s, bytes_received, h->payload_len);
	want_ack(s, mi->got == mi->pkt_count, now);
	if (mi->got == mi->pkt_count) {
		for (pp = &s->in; *pp != mi; pp = &(*pp)->next)
			;
		*pp = mi->next;
		COUNT(s, msgs_received, 1);
		if (ep->ops.on_message)
			ep->ops.on_message(ep->ops.ctx, s, mi->msg_id, mi->buf,
					   mi->len);
		free(mi->bits);
		free(mi);
	}
}

void gn_rel_input(struct gn_rel_ep *ep, const uint8_t *frame, size_t len,
		  uint64_t now)
{
	struct gn_rel_addr src, dst;
	struct gn_rel_hdr h;
	struct gn_rel_session *s;
	int off = gn_rel_udp_parse(frame, len, &src, &dst);

	if (off < 0 || gn_rel_hdr_decode(frame + off, len - (size_t)off, &h)) {
		ep->st.bad_frames++;
		return;
	}
	if (dst.ip != ep->self.ip || dst.port != ep->self.port) {
		ep->st.stray_frames++;
		return;
	}
	s = find(ep, h.session);
	if (s != NULL && !addr_eq(&s->peer, &src)) {
		ep->st.stray_frames++; /* someone else's id: not theirs */
		return;
	}
	if (s != NULL)
		memcpy(s->peer.mac, src.mac, 6);
	if (h.type == GN_REL_SYN) {
		if (s == NULL) {
			if (!ep->cfg.accept || h.msg_len == 0 ||
			    h.msg_len > 9000) {
				ep->st.stray_frames++;
				return;
			}
			s = new_session(ep, h.session, &src);
			if (s == NULL) {
				ep->st.refused_msgs++;
				return;
			}
			s->state = S_UP;
			s->peer_mtu = (uint16_t)h.msg_len;
			s->peer_credits = h.credits;
			send_ctl(s, GN_REL_SYN_ACK);
			if (ep->ops.on_accept)
				ep->ops.on_accept(ep->ops.ctx, s);
		} else if (s->state == S_UP) {
			send_ctl(s, GN_REL_SYN_ACK); /* our answer was lost */
		}
		return;
	}
	if (s == NULL || s->state == S_DEAD) {
		ep->st.stray_frames++;
		return;
	}
	if (h.type == GN_REL_SYN_ACK) {
		if (s->state == S_SYN_SENT) {
			if (h.msg_len == 0 || h.msg_len > 9000) {
				ep->st.bad_frames++;
				return;
			}
			s->state = S_UP;
			s->peer_mtu = (uint16_t)h.msg_len;
			s->peer_credits = h.credits;
			s->peer_ack = h.ack;
			pump(s, now, false);
		}
		return;
	}
	if (s->state != S_UP) {
		ep->st.stray_frames++;
		return;
	}
	if (h.type == GN_REL_FIN) {
		gn_error_set(-ECONNRESET,
			     "rel: the peer closed session %016llx",
			     (unsigned long long)s->id);
		kill_session(s, -ECONNRESET);
		return;
	}
	take_acks(s, &h,
		  h.type == GN_REL_ACK && (h.flags & GN_REL_F_SACKMAP)
			  ? frame + off + GN_REL_HDR_SIZE
			  : NULL,
		  now);
	if (s->state == S_DEAD)
		return;
	if (h.type == GN_REL_DATA)
		take_data(s, &h, frame + off + GN_REL_HDR_SIZE, now);
	pump(s, now, false);
}

void gn_rel_tx_done(struct gn_rel_ep *ep, void *tx_ref)
{
	struct msg_out *m = tx_ref;
	struct gn_rel_session *s = m->s;

	(void)ep;
	if (m->tx_pending > 0)
		m->tx_pending--;
	report(s, m);
}

bool gn_rel_busy(const struct gn_rel_ep *ep)
{
	for (const struct gn_rel_session *s = ep->sessions; s != NULL;
	     s = s->next)
		if (s->state == S_SYN_SENT ||
		    (s->state == S_UP &&
		     (s->snd_una != s->snd_next || s->feed != NULL ||
		      s->in != NULL || s->ack_now || s->ack_due != 0)))
			return true;
	return false;
}

uint64_t gn_rel_poll(struct gn_rel_ep *ep, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	for (struct gn_rel_session *s = ep->sessions, *n; s != NULL; s = n) {
		n = s->next;
		if (s->state == S_DEAD && s->pending == NULL) {
			free_session(s);
			continue;
		}
		if (s->state == S_SYN_SENT) {
			uint64_t rto =
				s->rto
				<< (s->syn_retries < 10 ? s->syn_retries : 10);

			if (now - s->syn_at >= rto) {
				if (++s->syn_retries > ep->cfg.max_retries) {
					COUNT(s, timeouts, 1);
					gn_error_set(-ETIMEDOUT,
						     "rel: no answer to the "
						     "handshake after %u tries",
						     s->syn_retries);
					kill_session(s, -ETIMEDOUT);
					continue;
				}
				s->syn_at = now;
				send_ctl(s, GN_REL_SYN);
			}
			if (s->syn_at + rto < next)
				next = s->syn_at + rto;
			continue;
		}
		if (s->state != S_UP)
			continue;
		if (!pump(s, now, true)) {
			next = now; /* ring full: come back at once */
			continue;
		}
		if (s->state != S_UP)
			continue;
		if (s->ack_now || (s->ack_due && now >= s->ack_due))
			send_ctl(s, GN_REL_ACK);
		if (s->ack_due && s->ack_due < next)
			next = s->ack_due;
		/* The one retransmission timer: the oldest packet's. */
		if (s->snd_una != s->snd_next) {
			struct slot *sl = &s->slots[s->snd_una % SLOTS];

			if (sl->used && !sl->acked &&
			    sl->sent_at + slot_rto(s, sl) < next)
				next = sl->sent_at + slot_rto(s, sl);
		}
	}
	return next;
}

/* ---- introspection ---------------------------------------------------------
 */

void gn_rel_session_stats(const struct gn_rel_session *s,
			  struct gn_rel_stats *st)
{
	*st = s->st;
	st->srtt_ns = s->srtt;
	st->rto_ns = s->rto;
	st->rtt_samples = s->rtt_samples;
	st->rtt_p50_ns = rtt_quantile(s, 0.50);
	st->rtt_p90_ns = rtt_quantile(s, 0.90);
	st->rtt_p99_ns = rtt_quantile(s, 0.99);
}

void gn_rel_ep_stats(const struct gn_rel_ep *ep, struct gn_rel_stats *st)
{
	*st = ep->st;
}

void gn_rel_ep_foreach(struct gn_rel_ep *ep,
		       void (*fn)(void *ctx, struct gn_rel_session *s),
		       void *ctx)
{
	for (struct gn_rel_session *s = ep->sessions; s != NULL; s = s->next)
		fn(ctx, s);
}

uint64_t gn_rel_session_id(const struct gn_rel_session *s)
{
	return s->id;
}

const struct gn_rel_addr *gn_rel_session_peer(const struct gn_rel_session *s)
{
	return &s->peer;
}

bool gn_rel_session_up(const struct gn_rel_session *s)
{
	return s->state == S_UP;
}

void gn_rel_session_set_user(struct gn_rel_session *s, void *user)
{
	s->user = user;
}

void *gn_rel_session_user(const struct gn_rel_session *s)
{
	return s->user;
}
