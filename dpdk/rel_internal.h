/*
 * What the two halves of reliable messaging share (rel.c: endpoints,
 * sessions, receiving, timers; rel_send.c: sending, acks, retransmission,
 * RTT): the session and endpoint state. Private to dpdk/.
 */
#ifndef GN_DPDK_REL_INTERNAL_H
#define GN_DPDK_REL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

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
	struct gn_rel_rx rx;
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
	uint64_t probe_at;   /* no credit, data waiting: probe then (0: none) */
	uint64_t probe_wait; /* between probes: RTO, doubling to rto_max */
	struct slot *slots;
	struct msg_out *pending; /* every unreported message, oldest first */
	struct msg_out *pending_tail;
	struct msg_out *feed; /* first message with unsent packets */
	uint64_t backlog_msgs, backlog_bytes; /* on the pending list */
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
	bool rx_hold;	  /* offer the peer no credit (gn_rel_session_hold) */
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
	uint8_t other_version;	/* the last other rel version seen */
	uint8_t frame[GN_REL_FRAME_HDR];
	/* copies a received payload into its message (rel.c) */
	void *(*copy)(void *dst, const void *src, size_t n);
};

static inline bool seq_lt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

static inline void count(struct gn_rel_session *s, size_t off, uint64_t n)
{
	*(uint64_t *)((char *)&s->st + off) += n;
	*(uint64_t *)((char *)&s->ep->st + off) += n;
}

#define COUNT(s, field, n) count((s), offsetof(struct gn_rel_stats, field), (n))

static inline bool rcv_has(const struct gn_rel_session *s, uint32_t q)
{
	return s->rcv_bits[(q % RCV_WIN) / 8] & (1u << (q % 8));
}

/* A packet's RTO: the session's, doubled for each retransmission. */
static inline uint64_t slot_rto(const struct gn_rel_session *s,
				const struct slot *sl)
{
	uint64_t rto = s->rto;

	for (uint32_t i = 0; i < sl->retries && rto < s->ep->cfg.rto_max_ns;
	     i++)
		rto *= 2;
	return rto < s->ep->cfg.rto_max_ns ? rto : s->ep->cfg.rto_max_ns;
}

/* rel_send.c */

/* Send a control packet (SYN, SYN_ACK, ACK with the whole map, FIN). */
int gn_rel_send_ctl(struct gn_rel_session *s, uint8_t type);
void gn_rel_msg_out_free(struct msg_out *m);
/* Tell the sender about m once it is done and the layer below let go. */
void gn_rel_report(struct gn_rel_session *s, struct msg_out *m);
/* Take the acks (cumulative, 32-bit and whole-map selective) in h. */
void gn_rel_take_acks(struct gn_rel_session *s, const struct gn_rel_hdr *h,
		      const uint8_t *map, uint64_t now);
/*
 * Retransmit (holes acks revealed; with `timers`, also what timed out),
 * then send new packets. False when the ring is full.
 */
bool gn_rel_pump(struct gn_rel_session *s, uint64_t now, bool timers);
/* The q-quantile (0..1) of the session's RTT samples; 0 without any. */
uint64_t gn_rel_rtt_quantile(const struct gn_rel_session *s, double q);

/* rel.c */

/* Fail or close: every pending message ends with `status`. */
void gn_rel_kill_session(struct gn_rel_session *s, int status);

#endif /* GN_DPDK_REL_INTERNAL_H */
