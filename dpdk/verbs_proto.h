/*
 * The verbs transport's protocol engine: Genie messages over one reliable
 * connected (RC) queue pair, without including a single ibverbs header.
 *
 * transport_verbs.c owns the rdma-core objects (device, PD, CQ, QP,
 * completion channel) and hands this engine a table of operations on them
 * (struct gn_vp_ops): post a SEND, an RDMA WRITE (optionally with
 * immediate data) or a receive, poll completions, register memory, arm
 * the CQ and sleep. The unit test drives the same engine through a fake
 * queue pair that lives in memory, so everything below is tested on hosts
 * without an RDMA device.
 *
 * Protocol, per connection and per direction:
 *
 *  - Each side posts `nrecv` receive buffers of `buf_size` bytes, carved
 *    from one registered region, and reposts a buffer as soon as its
 *    contents are copied out.
 *  - Credits: a side may have at most as many SENDs (and RDMA WRITEs with
 *    immediate, which also consume a receive) outstanding as the peer has
 *    receives posted. It starts with the peer's `nrecv` credits. Every
 *    control message carries the credits its sender owes back (receives
 *    it reposted since its last message); when it owes at least half of
 *    its receives and nothing else goes out, it sends an explicit CREDIT
 *    message. Ordinary messages keep one credit in reserve, which only
 *    CREDIT and ERROR messages may use, so two sides that both run low
 *    can always hand credits back to each other.
 *  - Every control message starts with a 24-byte header, little endian:
 *        magic u32 "GNV1" | version u8 | type u8 | flags u16 (0) |
 *        credits u32 | msg_id u32 | len u32 (bytes after the header) |
 *        reserved u32 (0)
 *  - EAGER: when header + 24-byte Genie frame header (frame.h) + envelope
 *    + payload fit the peer's receive buffer, the message goes as one
 *    SEND, copied into a registered send buffer (a ring of them, each
 *    reused after its send completion). The send call returns once the
 *    SEND is posted.
 *  - Rendezvous for larger ones: the sender SENDs RTS {frame header, the
 *    first bytes of the envelope inline}; the receiver checks the frame
 *    header against its caps (oversized: an ERROR to the peer, -EMSGSIZE
 *    to both callers), allocates the message with gn_msg_buf_alloc(),
 *    registers what the RTS did not carry and SENDs CTS {addr u64, rkey
 *    u32, len u64}. The sender registers each piece (the rest of the
 *    envelope, each payload iovec; GPU memory too where the glue can:
 *    GPUDirect RDMA) or, when a registration fails, copies (ops.copy_in)
 *    through a registered staging ring (pinned-host staging), posts RDMA
 *    WRITEs of at most `max_write` bytes, the last one WRITE_WITH_IMM
 *    carrying the message id, and returns once every write completed. The
 *    receive completion with that immediate completes the message at the
 *    receiver (RC places writes in order, so all bytes are there). Both
 *    sides deregister only after the completions that used the memory.
 *  - When the receiver cannot register the message buffer (a locked-
 *    memory limit, typically) it stages too: it answers the RTS with
 *    CTS_PART {addr u64, rkey u32, len u64, off u64} grants, each for the
 *    next part of at most half its own registered staging ring, two at a
 *    time. The sender WRITEs each part where granted, the part's last
 *    WRITE carrying the immediate; the receiver copies the landed part
 *    into the message and grants that half again for the next part. The
 *    last part's immediate completes the message.
 *  - Message ids count from 1 per direction, one per EAGER or RTS; a
 *    receiver accepts only the next one, so an id is never reused.
 *  - Backpressure: while queue_max messages or queue_bytes bytes wait
 *    for recv, reposted receives are not credited to the peer; recv
 *    hands the held credits back once the queue is below both again.
 *  - A thread waiting in send (for credits, a send buffer, the CTS or its
 *    writes) serves everything that arrives: complete messages are queued
 *    for recv, an RTS is answered with a CTS. Both sides may therefore
 *    send large messages at once. recv likewise progresses sends.
 *  - A completion with an error status, a malformed or hostile message
 *    (wrong magic or version, lengths beyond the buffer, an unexpected
 *    id, a CTS or an immediate for no message), an ERROR from the peer, or
 *    the peer's death fails the connection: every later call returns the
 *    same code and text (recv still hands out messages completed before).
 *
 * One thread uses a connection at a time (as for every transport); the
 * engine takes no locks.
 *
 * Unverified: the engine is tested only against the fake queue pair in
 * tests/unit/dpdk/verbs_proto_test.c, which delivers in order, never
 * drops, and completes every work request at once. Real-NIC timing
 * (completions arriving late, in other orders between send and receive
 * queues, RNR retries) has not been exercised on hardware.
 */
#ifndef GN_DPDK_VERBS_PROTO_H
#define GN_DPDK_VERBS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "frame.h"
#include "transport.h"

#define GN_VP_MAGIC 0x31564e47u /* "GNV1" little-endian */
#define GN_VP_VERSION 1
#define GN_VP_HDR_SIZE 24
/* Largest RDMA WRITE the engine posts (an SGE length is 32 bits). */
#define GN_VP_MAX_WRITE (1u << 30)
/* Payload pieces in one send, as for the stream transports. */
#define GN_VP_MAX_PIECES 62

enum gn_vp_type {
	GN_VP_EAGER = 1,
	GN_VP_RTS = 2,
	GN_VP_CTS = 3,
	GN_VP_CREDIT = 4,
	GN_VP_ERROR = 5,
	GN_VP_CTS_PART = 6,
};

enum gn_vp_wc_op {
	GN_VP_WC_SEND,	   /* a SEND of ours completed */
	GN_VP_WC_WRITE,	   /* an RDMA WRITE of ours completed */
	GN_VP_WC_RECV,	   /* a SEND of the peer's arrived */
	GN_VP_WC_RECV_IMM, /* a WRITE_WITH_IMM of the peer's completed */
};

/* What a registration allows beyond local reads. */
#define GN_VP_ACCESS_LOCAL_WRITE 1u  /* receives land in it */
#define GN_VP_ACCESS_REMOTE_WRITE 2u /* the peer WRITEs into it (rkey) */

/* One work completion, as the queue pair reports it. */
struct gn_vp_wc {
	uint64_t wr_id;
	int status;		/* 0: success; else the provider's status */
	const char *status_str; /* words for a failed status */
	enum gn_vp_wc_op op;	/* meaningful when status is 0 */
	uint32_t byte_len;	/* GN_VP_WC_RECV: bytes received */
	uint32_t imm;		/* GN_VP_WC_RECV_IMM: the immediate */
};

/*
 * What the engine needs from a queue pair. `ctx` is the glue's. Post
 * functions return 0 or -errno; a posted request always completes later
 * (successfully, with an error, or flushed after qp_error()). `mr` is a
 * handle reg_mr() returned for memory that holds the buffer.
 */
struct gn_vp_ops {
	int (*post_send)(void *ctx, uint64_t wr_id, const void *buf,
			 uint32_t len, void *mr);
	int (*post_write)(void *ctx, uint64_t wr_id, const void *buf,
			  uint32_t len, void *mr, uint64_t raddr, uint32_t rkey,
			  bool with_imm, uint32_t imm);
	int (*post_recv)(void *ctx, uint64_t wr_id, void *buf, uint32_t len,
			 void *mr);
	/* Up to `max` completions into wc; returns how many or -errno. */
	int (*poll)(void *ctx, struct gn_vp_wc *wc, int max);
	/* Register with GN_VP_ACCESS_* flags (0: the NIC only reads it). */
	int (*reg_mr)(void *ctx, void *addr, size_t len, unsigned access,
		      void **mr, uint32_t *rkey);
	void (*dereg_mr)(void *ctx, void *mr);
	/* Ask for a wake-up at the next completion (ibv_req_notify_cq). */
	int (*arm)(void *ctx);
	/*
	 * Sleep until a completion may have arrived (after arm), the
	 * absolute deadline (gn_clock_ns(); UINT64_MAX: none) passes, or the
	 * peer is gone. 0 (maybe spurious), -ETIMEDOUT, or -ECONNRESET /
	 * another -errno with the error text set.
	 */
	int (*wait)(void *ctx, uint64_t deadline);
	/* Move the QP to the error state: every posted request flushes. */
	void (*qp_error)(void *ctx);
	/*
	 * Copy len bytes of a payload piece handed to send (host memory, or
	 * GPU memory where the glue takes it) into host memory: into an
	 * EAGER message or the staging ring. NULL: memcpy. 0, or -errno with
	 * the error text set.
	 */
	int (*copy_in)(void *ctx, void *dst, const void *src, size_t len);
};

struct gn_vp_params {
	uint32_t nrecv, buf_size;	    /* our receive buffers */
	uint32_t peer_nrecv, peer_buf_size; /* the peer's, from setup */
	uint32_t sq_depth;	/* send-queue requests in flight, at most */
	uint32_t max_write;	/* bytes per RDMA WRITE; 0: GN_VP_MAX_WRITE */
	size_t staging_size;	/* pinned-host staging ring, bytes */
	uint32_t staging_slots; /* pieces it is cut into */
	struct gn_frame_limits limits; /* caps on what we accept */
	const char *peer;	       /* "HOST:PORT", for messages */
	/*
	 * Received messages waiting for recv, at most: past either cap the
	 * engine stops returning credits, so the peer's sends wait (as a
	 * full TCP socket buffer makes them) until recv takes messages.
	 */
	uint32_t queue_max;
	size_t queue_bytes;
};

/*
 * Defaults: 32 x 64 KiB receives, 4 MiB staging in 4 slots, 64 queued
 * messages or 256 MiB.
 */
void gn_vp_params_init(struct gn_vp_params *p);

struct gn_vp_conn;

/*
 * Create the engine over a connected queue pair: registers the receive
 * and send rings and posts every receive. NULL with the error set
 * (-EINVAL for bad parameters, -ENOMEM, or the failing op's code). The
 * ops and ctx must outlive the engine.
 */
struct gn_vp_conn *gn_vp_conn_create(const struct gn_vp_ops *ops, void *ctx,
				     const struct gn_vp_params *p);

/*
 * Send one message (see the protocol above), waiting up to timeout_ms
 * (-1: forever). 0; -EMSGSIZE for an envelope over our cap or a message
 * over the peer's; -ETIMEDOUT (the connection stays usable when nothing
 * was sent, and fails otherwise); or the connection's failure.
 */
int gn_vp_send(struct gn_vp_conn *c, const uint8_t *env, size_t env_len,
	       const struct iovec *payload, int iovcnt, int timeout_ms);

/*
 * Receive one message into msg (owned by the caller: gn_msg_release()).
 * 0, -ETIMEDOUT (connection intact), or the connection's failure once the
 * messages completed before it are handed out.
 */
int gn_vp_recv(struct gn_vp_conn *c, struct gn_msg *msg, int timeout_ms);

/*
 * Place payloads through `owner`'s placement (gn_conn_place(); NULL:
 * none). It is asked at an RTS that carried the whole envelope; the peer
 * then WRITEs the payload straight into the memory it gave, which reg_mr
 * registers (GPU memory too, where the glue can: GPUDirect RDMA). Memory
 * reg_mr refuses is given back and the message lands in a message buffer.
 */
void gn_vp_conn_set_owner(struct gn_vp_conn *c, const struct gn_conn *owner);

/* 0 while healthy, else the failure's code (text in *why when non-NULL). */
int gn_vp_conn_error(const struct gn_vp_conn *c, const char **why);

/*
 * Let outstanding SENDs finish (a short while), move the QP to the error
 * state, wait for the flushes, deregister and free everything. The glue
 * destroys the QP afterwards. Sets *c to NULL; NULL is a no-op.
 */
void gn_vp_conn_destroy(struct gn_vp_conn **c);

#endif /* GN_DPDK_VERBS_PROTO_H */
