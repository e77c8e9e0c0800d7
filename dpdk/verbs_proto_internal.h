/*
 * Private to the verbs protocol engine (verbs_proto.c, posting, progress
 * and life of a connection; verbs_proto_recv.c, what arrives;
 * verbs_proto_send.c, the send side): the connection's state and the
 * helpers they share. Nothing outside dpdk/verbs_proto*.c includes it.
 */
#ifndef GN_DPDK_VERBS_PROTO_INTERNAL_H
#define GN_DPDK_VERBS_PROTO_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "log.h"
#include "verbs_proto.h"

GN_LOG_EXTERN(verbs);

/* wr_id: the kind in the top byte, a slot index below. */
#define WR_SHIFT 56
enum { WR_RECV = 1, WR_SEND = 2, WR_WRITE = 3, WR_STAGE = 4 };
#define WR(kind, idx) (((uint64_t)(kind) << WR_SHIFT) | (uint64_t)(idx))

#define POLL_BURST 16
#define CTS_BODY 20	 /* addr u64, rkey u32, len u64 */
#define CTS_PART_BODY 28 /* addr u64, rkey u32, len u64, off u64 */
#define MAX_GRANTS 4	 /* CTS_PART grants a sender holds at once */
#define LINGER_MS 500	 /* destroy: how long outstanding SENDs may take */
#define DRAIN_MS 2000	 /* destroy: how long flushes may take */

enum { OUT_NONE, OUT_WAIT_CTS, OUT_GOT_CTS, OUT_PARTS };

/* Where the receiver lets us WRITE (a CTS: all the message; a CTS_PART). */
struct grant {
	uint64_t raddr, off, len;
	uint32_t rkey;
};

struct seg {
	const uint8_t *p;
	size_t len;
	void *mr;
};

struct gn_vp_conn {
	const struct gn_vp_ops *ops;
	void *ctx;
	const struct gn_conn *owner; /* whose placement payloads take */
	struct gn_vp_params p;
	char peer[64];
	int err;       /* 0, or the failure every later call returns */
	char why[384]; /* its text */
	bool tell;     /* an ERROR for the peer is still to be posted */

	uint8_t *rx; /* nrecv receive buffers of buf_size */
	void *rx_mr;
	uint8_t *tx; /* ntx send buffers of peer_buf_size */
	void *tx_mr;
	uint8_t *tx_busy;
	uint32_t ntx, tx_free;
	uint8_t *stage; /* staging ring, registered at first use */
	void *stage_mr;
	uint8_t *stage_busy;
	uint32_t stage_free;
	size_t slot_size;

	uint32_t credits; /* SENDs we may post: the peer's free receives */
	uint32_t owed;	  /* receives reposted, not yet told to the peer */
	uint32_t held;	  /* reposted, credit kept while the queue is full */
	uint32_t sq_out;  /* send-queue requests posted, not completed */
	uint32_t rq_out;  /* receives posted, not completed */
	uint32_t writes_out;
	uint32_t next_send_id, next_recv_id;

	/* the receiver's staging ring, registered when a buffer cannot be */
	uint8_t *rstage;
	void *rstage_mr;
	uint32_t rstage_rkey;

	struct { /* the message arriving by rendezvous */
		bool active, cts_pending;
		bool staged; /* through rstage in parts: see CTS_PART */
		uint32_t id, rkey;
		uint8_t *buf;
		void *placed; /* the payload's placed memory, or NULL */
		const struct gn_placement *placer;
		size_t env_len, payload_len, inl;
		uint64_t granted, landed; /* staged: bytes offered, copied */
		void *mr;
	} in;
	struct { /* ours, waiting for its CTS or CTS_PART grants */
		int state;
		uint32_t id;
		uint64_t want;
		uint64_t offered; /* bytes the grants so far cover */
		struct grant g[MAX_GRANTS];
		uint32_t gh, gn; /* grant ring: head, count */
	} out;

	struct gn_msg *q; /* complete messages for recv: a ring */
	size_t qhead, qn, qcap;
	size_t qbytes; /* envelope and payload bytes queued */
	bool said_zc, said_staged, said_rstaged, said_unplaced;
};

static inline void gn_vp_put32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static inline void gn_vp_put64(uint8_t *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t gn_vp_get32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

static inline uint64_t gn_vp_get64(const uint8_t *b)
{
	return (uint64_t)gn_vp_get32(b) | (uint64_t)gn_vp_get32(b + 4) << 32;
}

/* The connection's failure again: its code, its text in the error slot. */
int gn_vp_sticky(const struct gn_vp_conn *c);
/* Fail the connection (the first failure wins) and return its code. */
int gn_vp_fail(struct gn_vp_conn *c, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * What to add to a registration failure's text: when rc is -ENOMEM or
 * -EPERM and the locked-memory limit is finite, the limit and how to raise
 * it; else "". The text lives until the thread's next call.
 */
const char *gn_vp_reg_hint(int rc);

/* The same, and tell the peer why in an ERROR message. */
#define fail_tell(c, ...)                     \
	({                                    \
		if ((c)->err == 0)            \
			(c)->tell = true;     \
		gn_vp_fail((c), __VA_ARGS__); \
	})

/* Post receive buffer `slot` again; 0 or the connection's error. */
int gn_vp_repost(struct gn_vp_conn *c, uint32_t slot);
/* Act on one completion: a receive, or the end of a send or write. */
void gn_vp_handle_wc(struct gn_vp_conn *c, const struct gn_vp_wc *wc);

/* A send buffer, credits (min_credits) and send-queue room are there. */
bool gn_vp_tx_can(const struct gn_vp_conn *c, uint32_t min_credits);
/* Take a free send buffer (gn_vp_tx_can() said there is one). */
uint32_t gn_vp_tx_take(struct gn_vp_conn *c);
uint8_t *gn_vp_tx_buf(const struct gn_vp_conn *c, uint32_t slot);
/* Post slot's message: header here, `len` body bytes already in place. */
int gn_vp_tx_post(struct gn_vp_conn *c, uint32_t slot, int type, uint32_t id,
		  uint32_t len);

typedef bool (*gn_vp_cond_fn)(const struct gn_vp_conn *c);
/*
 * Progress until ok(c), the deadline (-ETIMEDOUT, no text), or unless
 * draining a failure (its code). Arms the CQ and re-polls before
 * sleeping, so a completion that lands in between is not missed.
 */
int gn_vp_wait_for(struct gn_vp_conn *c, gn_vp_cond_fn ok, uint64_t deadline,
		   bool drain);
/* gn_clock_ns() timeout_ms from now; UINT64_MAX when timeout_ms < 0. */
uint64_t gn_vp_deadline(int timeout_ms);

#endif /* GN_DPDK_VERBS_PROTO_INTERNAL_H */
