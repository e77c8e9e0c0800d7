/*
 * What the dpdk:// transport's files share: the engine
 * (transport_dpdk_engine.c: EAL, ports, reliable messaging, the thread
 * that drives them; transport_dpdk_rx.c: what arrives) and the transport
 * ops (transport_dpdk.c). Private to dpdk/; no rte_*.h.
 */
#ifndef GN_DPDK_TRANSPORT_DPDK_INTERNAL_H
#define GN_DPDK_TRANSPORT_DPDK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dpdk_msg.h"
#include "fault.h"
#include "frame.h"
#include "port.h"
#include "rel.h"
#include "target.h"
#include "transport.h"

#define RX_BURST 64
/* How long a waiting recv or send spins after the last packet arrived. */
#define SPIN_NS 200000ull
#define ACCEPT_MAX 64
/* The engine's nap while traffic flows but nothing arrived. */
#define BUSY_NAP_US 20
/* Its nap while an application thread drives the port. */
#define DRIVEN_NAP_US 1000
/*
 * Received messages a connection queues for recv before it holds its
 * session (gn_rel_session_hold()): the peer then sends nothing new until
 * recv takes messages, as a full TCP socket buffer stops a TCP sender.
 */
#define QUEUE_MAX 64
#define QUEUE_BYTES ((size_t)256 << 20)
/*
 * Messages (or bytes) sent and not yet acked past which a send waits for
 * the peer: it holds its session while its application is behind.
 */
#define SEND_BACKLOG_MSGS 256
#define SEND_BACKLOG_BYTES ((uint64_t)64 << 20)
/* Payloads sent from the caller's buffers, the send waiting for the ack. */
#define SEND_ZC_MIN (256u << 10)

struct dpdk_conn {
	struct gn_conn base; /* first: the generic code casts */
	struct engine *e;
	struct gn_rel_session *s;
	int fds[2];	  /* [0]: polled by recv; [1]: written by the engine */
	struct gn_msg *q; /* received messages */
	size_t nq, capq;
	size_t qbytes; /* their envelope and payload bytes */
	bool held;     /* the session's receive side is held (queue full) */
	int closed;    /* 0 open, else the session's end status */
	bool sleeping; /* recv waits in poll(): poke it on a message */

	uint64_t next_id;
	bool up;
};

struct dpdk_listener {
	struct gn_listener base;
	struct engine *e;
	int fds[2];
	struct dpdk_conn *acc[ACCEPT_MAX];
	int nacc;
};

struct engine {
	struct gn_dpdk_target t;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* session up or closed */
	pthread_t thread;
	atomic_bool stop;
	/* Application threads driving the port (in recv or wait_sent). */
	atomic_int drivers;

	char spec[256];
	bool server;
	/*
	 * The ports, added under the lock and kept until the engine stops.
	 * A memif listener has one per client id (memif is point to point):
	 * it opens id 0 at once and more as clients claim them, up to
	 * GN_DPDK_MEMIF_CLIENTS (memif_grow()); every other engine has one.
	 */
	struct gn_dpdk_port *ports[GN_DPDK_MEMIF_CLIENTS];
	int nports;
	uint64_t next_slot_check; /* memif listener: when to look again */
	uint64_t next_link_check; /* memif listener: clients' links */
	bool link_up[GN_DPDK_MEMIF_CLIENTS]; /* as last seen */
	uint64_t memif_key;		     /* memif: the socket's claims */
	int claim_probe;   /* memif listener: for reading claims */
	int memif_claim;   /* memif connector: its id claim, or -1 */
	uint32_t memif_id; /* memif connector: the id it claimed */
	struct gn_rel_ep *ep;
	struct dpdk_listener *listener;
	struct gn_frame_limits limits;
	int users;
	/* GENIE_DPDK_FAULT: frames we send go through a lossy link first. */
	struct gn_fault *fault;
	uint64_t fault_after; /* frames sent before faults start */
	uint64_t frames_sent;
	/* Frames of another rel version last logged, and when (ns). */
	uint64_t bad_version_told, bad_version_told_ns;
	uint8_t fault_buf[16384];
};

/*
 * What a sent message's cookie points to, at the start of the buffer that
 * holds the message (gathered) or its frame header and envelope (payload
 * sent from the caller's buffers, the sender waiting for on_sent).
 */
struct send_ctx {
	bool wait; /* a sender waits for the end and frees the buffer */
	bool done;
	int status;
};

/* The connection's queue for recv is at a cap: its session is held. */
static inline bool conn_queue_full(const struct dpdk_conn *c)
{
	return c->nq >= QUEUE_MAX || c->qbytes >= QUEUE_BYTES;
}

extern const struct gn_transport_ops gn_dpdk_transport_ops;

/*
 * The process's engine for `spec` as listener (`server`, with its
 * listener `l`) or connector, started on first use; later calls must
 * name the same target and role (one DPDK port per process) and count
 * one more user. Returns 0 or a negative errno with the error set.
 */
int gn_dpdk_engine_get(const char *spec, bool server,
		       const struct gn_transport_opts *opts,
		       struct dpdk_listener *l, struct engine **out);

/*
 * Take what the ports received into the protocol and run its timers.
 * Engine lock held. Returns the frames taken; *next gets the protocol's
 * next deadline.
 */
int gn_dpdk_engine_drive(struct engine *e, uint64_t *next, uint64_t *now);

/* A connection for session `s` (engine lock held); NULL when out of memory. */
struct dpdk_conn *gn_dpdk_conn_new(struct engine *e, struct gn_rel_session *s);
/* Wake a recv asleep in poll() (the connection's fds[1]). */
void gn_dpdk_poke(int fd);
/* rel's receive callbacks (transport_dpdk_rx.c), engine lock held. */
int gn_dpdk_rx_buffer(void *ctx, struct gn_rel_session *s, uint64_t id,
		      uint64_t len, const uint8_t *first, uint32_t first_len,
		      struct gn_rel_rx *rx);
void gn_dpdk_rx_abort(void *ctx, struct gn_rel_session *s, uint64_t id,
		      const struct gn_rel_rx *rx);
void gn_dpdk_on_message(void *ctx, struct gn_rel_session *s, uint64_t id,
			const struct gn_rel_rx *rx, uint64_t len);

/* Sleep `us` microseconds. */
void gn_dpdk_nap_us(uint32_t us);

#endif /* GN_DPDK_TRANSPORT_DPDK_INTERNAL_H */
