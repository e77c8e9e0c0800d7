/*
 * Reliable messaging over datagrams (see rel.h): endpoints, sessions,
 * receiving and timers here; sending in rel_send.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <xxhash.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/*
 * Received payloads go into their message with 32-byte loads and stores
 * where the CPU has AVX2: for copies of a packet's size glibc's memcpy
 * takes `rep movsb` here, and this loop moved 64 MiB messages over memif
 * 5-9% faster (docs/PERFORMANCE.md).
 */
__attribute__((target("avx2"))) static void *
copy_avx2(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;

	for (; n >= 128; n -= 128, d += 128, s += 128) {
		const __m256i *sv = (const __m256i *)(const void *)s;
		__m256i *dv = (__m256i *)(void *)d;
		__m256i a = _mm256_loadu_si256(sv),
			b = _mm256_loadu_si256(sv + 1),
			c = _mm256_loadu_si256(sv + 2),
			e = _mm256_loadu_si256(sv + 3);

		_mm256_storeu_si256(dv, a);
		_mm256_storeu_si256(dv + 1, b);
		_mm256_storeu_si256(dv + 2, c);
		_mm256_storeu_si256(dv + 3, e);
	}
	memcpy(d, s, n);
	return dst;
}

static void *(*payload_copy(void))(void *, const void *, size_t)
{
	return __builtin_cpu_supports("avx2") ? copy_avx2 : memcpy;
}
#else
static void *(*payload_copy(void))(void *, const void *, size_t)
{
	return memcpy;
}
#endif

#include "gn_error.h"
#include "rel_internal.h"

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

/*
 * A session's peer is its IPv4 address and UDP port; its Ethernet address
 * is learnt from what it sends (a client may start with the broadcast
 * address, knowing only the server's IP and port).
 */
static bool addr_eq(const struct gn_rel_addr *a, const struct gn_rel_addr *b)
{
	return a->ip == b->ip && a->port == b->port;
}

static struct gn_rel_session *find(struct gn_rel_ep *ep, uint64_t id)
{
	struct gn_rel_session *s = ep->buckets[id % HASH_BUCKETS];

	while (s != NULL && s->id != id)
		s = s->hnext;
	return s;
}

static void free_session(struct gn_rel_session *s);

/* Fail or close: every pending message ends with `status`. */
void gn_rel_kill_session(struct gn_rel_session *s, int status)
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
		gn_rel_report(s, m);
	}
	if (!s->closed_reported) {
		s->closed_reported = true;
		if (ep->ops.on_closed)
			ep->ops.on_closed(ep->ops.ctx, s, status);
	}
	/* Freed by gn_rel_poll once the layer below holds none of it. */
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
	gn_rel_session_drop_partial(s);
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
	    c.mtu_payload == 0 || c.mtu_payload > GN_REL_MTU_MAX ||
	    c.window == 0 || c.window >= SLOTS || c.rx_credits == 0 ||
	    c.rx_credits > RCV_WIN - GN_REL_SACK_BITS || c.rto_min_ns == 0 ||
	    c.rto_max_ns < c.rto_min_ns || c.max_sessions == 0) {
		gn_error_set(-EINVAL,
			     "rel: bad configuration (mtu_payload 1..%d, "
			     "window 1..%d, rx_credits 1..%d, rto_min > 0 <= "
			     "rto_max, ops->tx set)",
			     GN_REL_MTU_MAX, SLOTS - 1,
			     RCV_WIN - GN_REL_SACK_BITS);
		return NULL;
	}
	ep = calloc(1, sizeof(*ep));
	if (ep == NULL) {
		gn_error_set(-ENOMEM, "rel: out of memory");
		return NULL;
	}
	ep->cfg = c;
	ep->self = *self;
	ep->copy = payload_copy();
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

		gn_rel_kill_session(s, -ECONNABORTED);
		/* Messages still held by the layer below: dropped now. */
		while (s->pending != NULL) {
			struct msg_out *m = s->pending;

			s->pending = m->next;
			gn_rel_msg_out_free(m);
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
	gn_rel_send_ctl(s, GN_REL_SYN);
	*out = s;
	return 0;
}

void gn_rel_session_drop_partial(struct gn_rel_session *s)
{
	struct gn_rel_ep *ep = s->ep;

	while (s->in != NULL) {
		struct msg_in *mi = s->in;

		s->in = mi->next;
		if (ep->ops.rx_abort)
			ep->ops.rx_abort(ep->ops.ctx, s, mi->msg_id, &mi->rx);
		free(mi->bits);
		free(mi);
	}
}

void gn_rel_session_hold(struct gn_rel_session *s, bool hold)
{
	if (s->rx_hold == hold)
		return;
	s->rx_hold = hold;
	if (hold) {
		COUNT(s, rx_holds, 1);
		return;
	}
	/* The credit at once; when the ring is full, at the next poll. */
	if (s->state == S_UP && gn_rel_send_ctl(s, GN_REL_ACK) != 0)
		s->ack_now = true;
}

void gn_rel_session_backlog(const struct gn_rel_session *s, uint64_t *msgs,
			    uint64_t *bytes)
{
	*msgs = s->backlog_msgs;
	*bytes = s->backlog_bytes;
}

void gn_rel_close(struct gn_rel_session *s, uint64_t now)
{
	(void)now;
	if (s->state != S_DEAD)
		gn_rel_send_ctl(s, GN_REL_FIN);
	gn_rel_kill_session(s, -ECONNABORTED);
}

void gn_rel_abort(struct gn_rel_session *s, int status)
{
	gn_rel_kill_session(s, status);
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

/* Write a piece at message offset `off`, on either side of rx's split. */
static void put(struct gn_rel_ep *ep, const struct gn_rel_rx *rx, uint64_t off,
		const uint8_t *payload, uint32_t n)
{
	uint32_t head = off >= rx->split       ? 0
			: off + n <= rx->split ? n
					       : (uint32_t)(rx->split - off);

	if (head)
		ep->copy(rx->buf + off, payload, head);
	if (n > head)
		ep->copy(rx->tail + (off + head - rx->split), payload + head,
			 n - head);
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
		if (mi != NULL) {
			mi->bits = calloc((pkts + 7) / 8, 1);
			mi->rx.split = h->msg_len;
		}
		if (mi == NULL || mi->bits == NULL ||
		    ep->ops.rx_buffer == NULL ||
		    ep->ops.rx_buffer(ep->ops.ctx, s, h->msg_id, h->msg_len,
				      h->pkt_idx == 0 ? payload : NULL,
				      h->payload_len, &mi->rx) != 0) {
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
			put(ep, &mi->rx, (uint64_t)h->pkt_idx * mtu, payload,
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
			ep->ops.on_message(ep->ops.ctx, s, mi->msg_id, &mi->rx,
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
	int rc =
		off < 0 ? off
			: gn_rel_hdr_decode(frame + off, len - (size_t)off, &h);

	if (rc != 0) {
		ep->st.bad_frames++;
		if (rc == -EPROTO) { /* the header decoded: version differs */
			ep->st.bad_version++;
			ep->other_version = h.version;
		}
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
			    h.msg_len > GN_REL_MTU_MAX) {
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
			gn_rel_send_ctl(s, GN_REL_SYN_ACK);
			if (ep->ops.on_accept)
				ep->ops.on_accept(ep->ops.ctx, s);
		} else if (s->state == S_UP) {
			gn_rel_send_ctl(
				s, GN_REL_SYN_ACK); /* our answer was lost */
		}
		return;
	}
	if (s == NULL || s->state == S_DEAD) {
		ep->st.stray_frames++;
		return;
	}
	if (h.type == GN_REL_SYN_ACK) {
		if (s->state == S_SYN_SENT) {
			if (h.msg_len == 0 || h.msg_len > GN_REL_MTU_MAX) {
				ep->st.bad_frames++;
				return;
			}
			s->state = S_UP;
			s->peer_mtu = (uint16_t)h.msg_len;
			s->peer_credits = h.credits;
			s->peer_ack = h.ack;
			gn_rel_pump(s, now, false);
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
		gn_rel_kill_session(s, -ECONNRESET);
		return;
	}
	gn_rel_take_acks(s, &h,
			 h.type == GN_REL_ACK && (h.flags & GN_REL_F_SACKMAP)
				 ? frame + off + GN_REL_HDR_SIZE
				 : NULL,
			 now);
	if (s->state == S_DEAD)
		return;
	if (h.type == GN_REL_DATA)
		take_data(s, &h, frame + off + GN_REL_HDR_SIZE, now);
	else if (h.type == GN_REL_ACK && (h.flags & GN_REL_F_PROBE))
		want_ack(s, true, now); /* the credit we give, at once */
	gn_rel_pump(s, now, false);
}

void gn_rel_tx_done(struct gn_rel_ep *ep, void *tx_ref)
{
	struct msg_out *m = tx_ref;
	struct gn_rel_session *s = m->s;

	(void)ep;
	if (m->tx_pending > 0)
		m->tx_pending--;
	gn_rel_report(s, m);
}

bool gn_rel_busy(const struct gn_rel_ep *ep)
{
	for (const struct gn_rel_session *s = ep->sessions; s != NULL;
	     s = s->next)
		if (s->state == S_SYN_SENT ||
		    (s->state == S_UP &&
		     (s->snd_una != s->snd_next ||
		      (s->feed != NULL && s->probe_at == 0) || s->in != NULL ||
		      s->ack_now || s->ack_due != 0)))
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
					gn_rel_kill_session(s, -ETIMEDOUT);
					continue;
				}
				s->syn_at = now;
				gn_rel_send_ctl(s, GN_REL_SYN);
			}
			if (s->syn_at + rto < next)
				next = s->syn_at + rto;
			continue;
		}
		if (s->state != S_UP)
			continue;
		if (!gn_rel_pump(s, now, true)) {
			next = now; /* ring full: come back at once */
			continue;
		}
		if (s->state != S_UP)
			continue;
		if (s->ack_now || (s->ack_due && now >= s->ack_due))
			gn_rel_send_ctl(s, GN_REL_ACK);
		if (s->ack_due && s->ack_due < next)
			next = s->ack_due;
		if (s->probe_at && s->probe_at < next)
			next = s->probe_at;
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
	st->rtt_p50_ns = gn_rel_rtt_quantile(s, 0.50);
	st->rtt_p90_ns = gn_rel_rtt_quantile(s, 0.90);
	st->rtt_p99_ns = gn_rel_rtt_quantile(s, 0.99);
}

uint64_t gn_rel_ep_bad_version(const struct gn_rel_ep *ep, unsigned *version)
{
	*version = ep->other_version;
	return ep->st.bad_version;
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
