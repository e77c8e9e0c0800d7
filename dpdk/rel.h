/*
 * Reliable messaging over an unreliable datagram link (Genie's DPDK data
 * plane, pure C: no DPDK header here or in rel.c).
 *
 * Messages of any size (up to a configured cap) travel between two
 * endpoints as Ethernet/IPv4/UDP frames carrying a 64-byte Genie header.
 * A session starts with a SYN/SYN_ACK handshake; each direction numbers
 * its packets; the receiver answers with a cumulative ack plus a 32-packet
 * selective-ack bitmap and a credit (how many packets past the ack it will
 * take); the sender keeps at most min(window, credit) packets in flight,
 * resends when acks show a hole for longer than the reordering window
 * (RACK-like), and has one retransmission timer, on the oldest packet in
 * flight (RTO = srtt + max(4 rttvar, rto_min) as in Linux, doubled on
 * each retry): when it fires,
 * the 16 oldest unacked packets go again; after max_retries of the oldest
 * the session fails and every pending message completes with an error,
 * never retransmitted forever. Each packet says
 * which message and which piece of it it carries, so the receiver writes
 * payload straight into the message's final buffer in any order and needs
 * no per-packet buffering. Duplicates are acked and dropped; packets of
 * unknown sessions, other addresses or bad headers are counted and dropped.
 *
 * Zero copy: rel never copies payload on send; it hands the layer below a
 * header and a slice of the caller's buffer. A slice may still sit in a
 * TX ring when its message is fully acked, so the layer below reports each
 * transmission's completion (gn_rel_tx_done), and a message completes to
 * its sender only once it is acked AND none of its packets is still being
 * transmitted: a buffer is never reused while a NIC may read it.
 *
 * Time is whatever the caller says (gn_rel_poll's `now`): a real monotonic
 * clock in the transport, a simulated one in tests. Not thread-safe: one
 * thread drives an endpoint.
 */
#ifndef GN_DPDK_REL_H
#define GN_DPDK_REL_H

#include <stdbool.h>
#include <sys/uio.h>
#include <stddef.h>
#include <stdint.h>

#define GN_REL_MAGIC 0x31524e47u /* "GNR1" */
/* 2: dpdk:// messages open with a lead-in (dpdk_msg.h); 1 had none. */
#define GN_REL_VERSION 2
#define GN_REL_HDR_SIZE 64
/* Ethernet (14) + IPv4 without options (20) + UDP (8) + Genie header. */
#define GN_REL_FRAME_HDR (14 + 20 + 8 + GN_REL_HDR_SIZE)
/* Most payload bytes a packet carries (a 16 KiB memif frame's worth). */
#define GN_REL_MTU_MAX (16384 - GN_REL_FRAME_HDR)
#define GN_REL_SACK_BITS 32

enum gn_rel_type {
	GN_REL_SYN = 1,
	GN_REL_SYN_ACK = 2,
	GN_REL_DATA = 3,
	GN_REL_ACK = 4,
	GN_REL_FIN = 5,
};

enum gn_rel_flags {
	GN_REL_F_CSUM = 1u << 0, /* csum holds XXH32 of the payload */
	/*
	 * ACK only: the payload is a bitmap of received packets past `ack`
	 * (bit i of byte j: packet ack + 1 + 8j + i), up to the receive
	 * window, so no packet the peer holds is ever resent for want of
	 * news of it.
	 */
	GN_REL_F_SACKMAP = 1u << 1,
	/*
	 * ACK only: the sender has data waiting for credit the peer gave
	 * none of: answer with an ACK (the current credit) at once. A lost
	 * window update thus costs one probe interval, not the session.
	 */
	GN_REL_F_PROBE = 1u << 2,
};

/* The Genie header, decoded (wire: little-endian, 64 bytes). */
struct gn_rel_hdr {
	uint32_t magic;
	uint8_t version;
	uint8_t type;
	uint16_t flags;
	uint64_t session;
	uint64_t msg_id;
	uint32_t seq;	  /* this packet's number in its direction */
	uint32_t ack;	  /* next packet expected from the peer */
	uint32_t sack;	  /* bit i: packet ack + 1 + i was received */
	uint16_t credits; /* packets past `ack` the sender of this may send */
	uint16_t payload_len;
	uint32_t pkt_idx;   /* DATA: which piece of the message */
	uint32_t pkt_count; /* DATA: pieces in the message */
	uint64_t msg_len;   /* DATA: message bytes; SYN: sender's MTU payload */
	uint32_t csum;
};

/* Where an endpoint is: Ethernet address, IPv4 and UDP port (host order). */
struct gn_rel_addr {
	uint8_t mac[6];
	uint32_t ip;
	uint16_t port;
};

/*
 * Encode `h` into 64 bytes. Decode checks magic, version, type and that
 * payload_len fits `avail` payload bytes; returns 0 or -EBADMSG (-EPROTO
 * for another version) with gn_last_error() naming the field.
 */
void gn_rel_hdr_encode(const struct gn_rel_hdr *h, uint8_t *out);
int gn_rel_hdr_decode(const uint8_t *in, size_t avail, struct gn_rel_hdr *h);

/*
 * Write the Ethernet/IPv4/UDP headers for a frame of `payload_len` bytes
 * after them (Genie header included) into `out` (42 bytes), IPv4 header
 * checksum filled, UDP checksum 0 (optional in IPv4; the Genie header has
 * its own). Parse checks every length against `len` and the addresses'
 * protocol fields; returns the offset of the Genie header or -EBADMSG.
 */
void gn_rel_udp_encode(const struct gn_rel_addr *src,
		       const struct gn_rel_addr *dst, uint32_t payload_len,
		       uint8_t *out);
int gn_rel_udp_parse(const uint8_t *frame, size_t len, struct gn_rel_addr *src,
		     struct gn_rel_addr *dst);

struct gn_rel_config {
	size_t opts_size;
	uint16_t mtu_payload;  /* payload bytes per packet, 1..GN_REL_MTU_MAX;
				  1408 default */
	uint16_t window;       /* most packets in flight; 512 */
	uint16_t rx_credits;   /* packets past ack the peer may send; 1024 */
	uint32_t max_retries;  /* of one packet, then the session fails; 16 */
	uint64_t rto_min_ns;   /* least RTO margin over srtt: 200 us */
	uint64_t rto_max_ns;   /* 500 ms */
	uint64_t rto_init_ns;  /* before any RTT sample: 2 ms */
	uint64_t ack_delay_ns; /* longest an ack waits to be coalesced; 20 us */
	uint64_t max_msg_bytes; /* largest message accepted; 1 GiB */
	uint32_t max_sessions;	/* 1024 */
	bool checksum;		/* XXH32 of every payload; default off */
	bool accept;		/* take SYNs (servers); default off */
};

void gn_rel_config_init(struct gn_rel_config *c, size_t opts_size);

struct gn_rel_ep;
struct gn_rel_session;

/* One frame for the layer below: header bytes, then a payload slice. */
struct gn_rel_pkt {
	const uint8_t *hdr; /* GN_REL_FRAME_HDR bytes, valid for the call */
	uint16_t hdr_len;
	const void *payload; /* caller's message memory, or NULL */
	uint32_t payload_len;
	/* Non-NULL: pass to gn_rel_tx_done() once the payload was sent. */
	void *tx_ref;
};

/*
 * Where an incoming message is reassembled (gn_rel_ops.rx_buffer): bytes
 * [0, split) in buf and [split, len) in tail, so that a payload can land
 * in memory its receiver chose while the header before it does not.
 */
struct gn_rel_rx {
	uint8_t *buf;
	uint64_t split; /* the message's length when not split */
	uint8_t *tail;
	void *user; /* rx_buffer's, handed back with the rest */
};

struct gn_rel_ops {
	void *ctx;
	/*
	 * Queue one frame. 0, or -EAGAIN when the ring is full (rel keeps
	 * the packet and tries again later); other errors fail the session.
	 * tx_done for the packet's tx_ref may come from inside tx (copies).
	 */
	int (*tx)(void *ctx, const struct gn_rel_pkt *p);
	/* A peer opened a session (accepting endpoints). */
	void (*on_accept)(void *ctx, struct gn_rel_session *s);
	/*
	 * Memory for an incoming message of `len` bytes, filled into *rx:
	 * rx->buf alone, or split (rx->split < len: bytes from rx->split on
	 * go to rx->tail). `first` is packet 0's payload (first_len bytes)
	 * when that packet opened the message, else NULL. Nonzero refuses
	 * it (its packets are dropped unacked; the sender retries, then
	 * fails).
	 */
	int (*rx_buffer)(void *ctx, struct gn_rel_session *s, uint64_t msg_id,
			 uint64_t len, const uint8_t *first, uint32_t first_len,
			 struct gn_rel_rx *rx);
	/*
	 * A message whose memory rx_buffer gave will never complete (its
	 * session ended first, or gn_rel_session_drop_partial()): that
	 * memory is the caller's again. May be NULL when it needs no
	 * release.
	 */
	void (*rx_abort)(void *ctx, struct gn_rel_session *s, uint64_t msg_id,
			 const struct gn_rel_rx *rx);
	/* Every byte of message `msg_id` is in rx's memory. */
	void (*on_message)(void *ctx, struct gn_rel_session *s, uint64_t msg_id,
			   const struct gn_rel_rx *rx, uint64_t len);
	/*
	 * A message sent with gn_rel_send() is acked (status 0) or failed
	 * (negative errno); its buffer is the caller's again.
	 */
	void (*on_sent)(void *ctx, struct gn_rel_session *s, void *cookie,
			int status);
	/*
	 * The session failed or the peer closed it. Do not use it after
	 * this returns: a later gn_rel_poll() frees it.
	 */
	void (*on_closed)(void *ctx, struct gn_rel_session *s, int status);
};

/* An endpoint at `self`; NULL with the error set. */
struct gn_rel_ep *gn_rel_ep_create(const struct gn_rel_config *cfg,
				   const struct gn_rel_addr *self,
				   const struct gn_rel_ops *ops);
/*
 * Fails every session's pending messages with -ECONNABORTED and frees
 * everything. Call it once the layer below holds no packet of it (its
 * port stopped): a later gn_rel_tx_done() would touch freed memory.
 */
void gn_rel_ep_destroy(struct gn_rel_ep **ep);

/*
 * Open a session to `peer` (SYN). Messages may be queued at once. The
 * peer's Ethernet address may be the broadcast address: the real one is
 * learnt from its answer.
 */
int gn_rel_connect(struct gn_rel_ep *ep, const struct gn_rel_addr *peer,
		   uint64_t now, struct gn_rel_session **out);

/*
 * Send `len` bytes at `buf` as message `msg_id` (unique per session while
 * in flight). The buffer must stay unchanged until on_sent(cookie).
 * Returns 0, -EMSGSIZE over max_msg_bytes, -ENOTCONN on a failed or
 * closed session.
 */
int gn_rel_send(struct gn_rel_session *s, uint64_t msg_id, const void *buf,
		uint64_t len, void *cookie, uint64_t now);

/*
 * The same for a message made of `iovcnt` pieces (their concatenation).
 * Packets point into the pieces where a packet lies within one; the few
 * that span two are gathered into a buffer of the message's own. The
 * pieces must stay unchanged until on_sent(cookie). -EINVAL for a
 * negative count or a piece with bytes at NULL.
 */
int gn_rel_sendv(struct gn_rel_session *s, uint64_t msg_id,
		 const struct iovec *iov, int iovcnt, void *cookie,
		 uint64_t now);

/*
 * Hold (true) or release the session's receive side. While held, every
 * packet this end sends offers the peer no credit, so it sends nothing
 * new (packets already on their way still arrive): for a receiver whose
 * application has fallen behind. Release sends the credit at once. A
 * sender left without credit probes (GN_REL_F_PROBE) after an RTO, then
 * twice as long each time up to rto_max, so a lost update costs one
 * probe; a probe answered with no credit is no failure: the session waits
 * as long as the receiver holds it.
 */
void gn_rel_session_hold(struct gn_rel_session *s, bool hold);

/*
 * Give up the messages the session has partly received: rx_abort for
 * each, now (their packets, if more come, start them anew). For a
 * receiver leaving a session whose memory must not outlive it.
 */
void gn_rel_session_drop_partial(struct gn_rel_session *s);

/* Messages sent and not yet acked or failed (on_sent to come), and bytes. */
void gn_rel_session_backlog(const struct gn_rel_session *s, uint64_t *msgs,
			    uint64_t *bytes);

/* Close: FIN to the peer, pending messages fail with -ECONNABORTED. */
void gn_rel_close(struct gn_rel_session *s, uint64_t now);
/*
 * Fail the session without a word to the peer (it is known gone): pending
 * messages fail with `status`, on_closed reports it.
 */
void gn_rel_abort(struct gn_rel_session *s, int status);

/* Feed one received frame (whole Ethernet frame). Bad ones are counted. */
void gn_rel_input(struct gn_rel_ep *ep, const uint8_t *frame, size_t len,
		  uint64_t now);

/* Transmission of the packet that carried `tx_ref` is complete. */
void gn_rel_tx_done(struct gn_rel_ep *ep, void *tx_ref);

/*
 * Send what windows allow, retransmit what timed out, flush acks. Returns
 * the time of the next deadline (UINT64_MAX: none), for adaptive polling.
 */
uint64_t gn_rel_poll(struct gn_rel_ep *ep, uint64_t now);

/*
 * True while traffic flows: some session awaits its handshake's answer,
 * has packets in flight or waiting to go, a message partly received, or
 * an ack owed. Whoever drives
 * the endpoint should keep polling then rather than sleep to the next
 * deadline (acks would wait, and the peer's window with them).
 */
bool gn_rel_busy(const struct gn_rel_ep *ep);

/* Per-session and endpoint counters. */
struct gn_rel_stats {
	uint64_t pkts_sent, pkts_received, bytes_sent, bytes_received;
	uint64_t retransmits, timeouts, dup_received, acks_sent;
	uint64_t hole_retransmits; /* of retransmits: acks showed a hole */
	uint64_t msgs_sent, msgs_received;
	uint64_t bad_frames, stray_frames, csum_errors, refused_msgs;
	uint64_t bad_version; /* of bad_frames: another rel version's */
	uint64_t srtt_ns, rto_ns;
	/*
	 * Per session only: round trips of packets acked on their first
	 * transmission (a fixed histogram, about 10% resolution), and how
	 * many were measured.
	 */
	uint64_t rtt_samples, rtt_p50_ns, rtt_p90_ns, rtt_p99_ns;
	/* Window probes sent (no credit), and holds of our receive side. */
	uint64_t probes_sent, rx_holds;
};

void gn_rel_session_stats(const struct gn_rel_session *s,
			  struct gn_rel_stats *st);
void gn_rel_ep_stats(const struct gn_rel_ep *ep, struct gn_rel_stats *st);

/*
 * Frames the endpoint dropped for carrying another rel version (a peer
 * built before or after this one), and in *version the last such
 * version seen; cheap enough to ask after every burst.
 */
uint64_t gn_rel_ep_bad_version(const struct gn_rel_ep *ep, unsigned *version);

/* Call `fn` for every session of the endpoint (none may be closed). */
void gn_rel_ep_foreach(struct gn_rel_ep *ep,
		       void (*fn)(void *ctx, struct gn_rel_session *s),
		       void *ctx);

/* The session's id, peer, and whether it is established. */
uint64_t gn_rel_session_id(const struct gn_rel_session *s);
const struct gn_rel_addr *gn_rel_session_peer(const struct gn_rel_session *s);
bool gn_rel_session_up(const struct gn_rel_session *s);
/* User data slot. */
void gn_rel_session_set_user(struct gn_rel_session *s, void *user);
void *gn_rel_session_user(const struct gn_rel_session *s);

#endif /* GN_DPDK_REL_H */
