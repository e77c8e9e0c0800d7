/*
 * The transport interface every data path implements.
 *
 * A transport moves messages (one packed genie.Envelope plus an optional
 * payload of tensor bytes) between a client and a runtime. Each transport
 * lives in its own file, fills a struct gn_transport_ops and registers it
 * by name with GN_TRANSPORT_REGISTER(); callers pick one by the scheme of
 * an address ("tcp://127.0.0.1:7070") and never see its internals. The TCP
 * transport is the fallback and the baseline; DPDK and verbs transports
 * plug in the same way.
 *
 * Calls block up to the timeout they are given; a timeout of -1 waits
 * forever. A connection is used by one thread at a time.
 */
#ifndef GN_COMMON_TRANSPORT_H
#define GN_COMMON_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "frame.h"

struct gn_transport_ops;

/*
 * PEM files for the "tls" transport (transport_tls.c); the others ignore
 * them. NULL means not given. A listener needs cert and key; with ca it
 * also requires every peer to present a certificate that chains to it. A
 * connecting end verifies the listener against ca (the system's CAs when
 * NULL) and the host name or IP address it connected to, and presents
 * cert/key when given.
 */
struct gn_tls_files {
	const char *ca;
	const char *cert;
	const char *key;
};

struct gn_transport_opts {
	size_t opts_size;
	struct gn_frame_limits limits; /* caps on what this end accepts */
	struct gn_tls_files tls;       /* for "tls://" only */
};

void gn_transport_opts_init(struct gn_transport_opts *opts, size_t opts_size);

struct gn_transport_stats {
	uint64_t bytes_sent;
	uint64_t bytes_received;
	uint64_t msgs_sent;
	uint64_t msgs_received;
};

/*
 * Payload placement: the receiver says where a message's payload is to
 * land, from its envelope, before the payload is read, so that a tensor
 * is written once, into its final memory (the runtime: a block of its
 * backend's pool; a client: the caller's buffer), instead of into a
 * message buffer and copied again.
 *
 * place() returns payload_len bytes of memory for the message whose
 * envelope it is shown, or NULL to decline (the payload then goes into
 * the message buffer as before). It may run on a transport's own thread
 * (dpdk's engine), so it must not block for long, and it is asked only
 * where the transport can honour it (see each transport). Host memory
 * everywhere; GPU memory only where gn_conn_takes_gpu_memory(c). A
 * transport that cannot use what it was given gives it back (unplace)
 * and uses a message buffer instead. unplace() gives back memory placed
 * for a message that was never delivered, or delivered and released
 * without being taken (gn_msg_take_placed()).
 */
struct gn_conn;
typedef void *(*gn_place_fn)(void *arg, const struct gn_conn *c,
			     const uint8_t *env, size_t env_len,
			     size_t payload_len);
typedef void (*gn_unplace_fn)(void *arg, void *buf);

struct gn_placement {
	gn_place_fn place;
	gn_unplace_fn unplace;
	void *arg;
};

/* Common head of every transport's connection; transports embed it first. */
struct gn_conn {
	const struct gn_transport_ops *ops;
	struct gn_transport_stats stats;
	struct gn_frame_limits limits;
	char peer[64]; /* "HOST:PORT" of the other end, for logs */
	/* gn_conn_set_placement(); used through gn_conn_place() */
	const struct gn_placement *placement;
};

/* Common head of every transport's listener. */
struct gn_listener {
	const struct gn_transport_ops *ops;
	struct gn_transport_opts opts;
	char addr[64]; /* bound "HOST:PORT", the real port when 0 was asked */
};

/*
 * A received message. Owns its buffer; release with gn_msg_release(). The
 * payload follows the envelope in buf, unless it was placed (`placed`,
 * equal to payload): then it lies in memory the connection's placement
 * gave, which release hands back through `placer` unless taken.
 */
struct gn_msg {
	uint8_t *buf; /* one allocation holding envelope then payload */
	const uint8_t *env;
	size_t env_len;
	uint8_t *payload;
	size_t payload_len;
	void *placed;
	const struct gn_placement *placer;
};

void gn_msg_release(struct gn_msg *msg);
/*
 * The placed payload, now the caller's to free as the placement's memory
 * (the runtime: a pool block it adopts); NULL when the payload was not
 * placed. Release then leaves it alone.
 */
void *gn_msg_take_placed(struct gn_msg *msg);

/*
 * Message buffers, for transports: what a gn_msg's buf is allocated with
 * (gn_msg_release() gives it back). Buffers of 1 MiB or more are
 * populated in one call when fresh, and the two largest given back are
 * kept for later messages of at least half their size: a fresh 64 MiB
 * buffer costs a page fault per page, and freeing one an munmap() that
 * stalls every thread's page faults meanwhile. Thread safe. NULL when out
 * of memory.
 */
void *gn_msg_buf_alloc(size_t len);
void gn_msg_buf_free(void *buf);

/* What a transport can do beyond host memory (gn_transport_ops.caps). */
#define GN_TRANSPORT_CAP_GPU_MEMORY 1u /* payload pieces in GPU memory */

struct gn_transport_ops {
	const char *name; /* the address scheme: "tcp" */
	unsigned caps;	  /* GN_TRANSPORT_CAP_* */

	/* Listen on `addr` ("HOST:PORT", port 0 picks one). */
	int (*listen)(const char *addr, const struct gn_transport_opts *opts,
		      struct gn_listener **out);
	/* Accept one connection, waiting up to timeout_ms; -ETIMEDOUT if none.
	 */
	int (*accept)(struct gn_listener *l, int timeout_ms,
		      struct gn_conn **out);
	/* A file descriptor that polls readable when accept would not wait. */
	int (*listener_fd)(const struct gn_listener *l);
	void (*listener_close)(struct gn_listener *l);

	int (*connect)(const char *addr, const struct gn_transport_opts *opts,
		       int timeout_ms, struct gn_conn **out);
	/* Send envelope + payload pieces as one message. */
	int (*send)(struct gn_conn *c, const uint8_t *env, size_t env_len,
		    const struct iovec *payload, int iovcnt, int timeout_ms);
	/*
	 * Receive one message. -ECONNRESET when the peer closed between
	 * messages; -EPROTO when it closed inside one (truncated frame);
	 * -EBADMSG/-EMSGSIZE for a bad header; -ETIMEDOUT. After any error
	 * but a timeout before the first byte, the stream is out of step:
	 * close the connection.
	 */
	int (*recv)(struct gn_conn *c, struct gn_msg *msg, int timeout_ms);
	/*
	 * A socket whose shutdown() wakes a recv blocked on this connection
	 * (with -ECONNRESET or an error saying it was shut down): how the
	 * runtime and the coordinator stop a session from another thread.
	 * For tcp and tls it is the connection's socket and polls readable
	 * when data arrives; for dpdk, a socketpair end the engine writes
	 * to when a message arrives for a sleeping recv; for verbs, the TCP
	 * setup socket, readable only when the peer goes (verbs waits on its
	 * completion channel inside recv).
	 */
	int (*conn_fd)(const struct gn_conn *c);
	void (*close)(struct gn_conn *c);
};

/* Register a transport; called by GN_TRANSPORT_REGISTER at load time. */
void gn_transport_register(const struct gn_transport_ops *ops);

#define GN_TRANSPORT_REGISTER(ops)                                            \
	__attribute__((constructor)) static void gn_transport_reg_##ops(void) \
	{                                                                     \
		gn_transport_register(&(ops));                                \
	}

/*
 * For byte-stream transports (transport_stream.c): tcp and tls share
 * these and differ only in how bytes move.
 */
#define GN_STREAM_MAX_PIECES 62 /* payload pieces in one send */

/* The absolute deadline (gn_clock_ns()) timeout_ms from now; <0: none. */
uint64_t gn_stream_deadline(int timeout_ms);
/* Wait for `events` on fd until the deadline. 0, -ETIMEDOUT or -errno. */
int gn_stream_wait_fd(int fd, short events, uint64_t deadline);
/*
 * Check a message against the connection's caps and encode its frame
 * header; *payload_len is the payload's total. 0, -EINVAL or -EMSGSIZE.
 */
int gn_stream_frame_hdr(struct gn_conn *c, size_t env_len,
			const struct iovec *payload, int iovcnt,
			uint8_t hdr[GN_FRAME_HDR_SIZE], uint64_t *payload_len);
/*
 * Read exactly len bytes by the deadline; *got counts what arrived.
 * Returns 0, -ECONNRESET when the peer closed (no error text needed), or
 * another negative code with the error text already set.
 */
typedef int (*gn_stream_read_fn)(struct gn_conn *c, uint8_t *buf, size_t len,
				 uint64_t deadline, size_t *got);
/* Receive one framed message with read_full (see the recv op). */
int gn_stream_recv(struct gn_conn *c, gn_stream_read_fn read_full,
		   uint64_t deadline, struct gn_msg *msg);

/* The transport registered under `name`, or NULL. */
const struct gn_transport_ops *gn_transport_find(const char *name);

/*
 * Split "SCHEME://REST" into a transport and REST. Returns 0, -EINVAL for a
 * string without "://", -EPROTONOSUPPORT for an unregistered scheme (the
 * detail lists the registered ones). *rest points into `url`.
 */
int gn_transport_resolve(const char *url, const struct gn_transport_ops **ops,
			 const char **rest);

/* Split "HOST:PORT" into parts. -EINVAL naming the string when malformed. */
int gn_addr_split(const char *addr, char *host, size_t host_len,
		  uint16_t *port);

/*
 * Dispatching wrappers; see struct gn_transport_ops. `opts` may be NULL
 * (defaults) or an older, shorter struct: its opts_size is honoured.
 */
int gn_listen(const char *url, const struct gn_transport_opts *opts,
	      struct gn_listener **out);
int gn_connect(const char *url, const struct gn_transport_opts *opts,
	       int timeout_ms, struct gn_conn **out);
/*
 * Payload pieces may lie in GPU memory (gpu_mem.h) only where
 * gn_conn_takes_gpu_memory() says so; elsewhere such a piece is refused
 * with -EINVAL before anything is sent.
 */
int gn_conn_send(struct gn_conn *c, const uint8_t *env, size_t env_len,
		 const struct iovec *payload, int iovcnt, int timeout_ms);
int gn_conn_takes_gpu_memory(const struct gn_conn *c);
/*
 * Have c's payloads placed by `p` (NULL: no more), which must stay valid
 * until the connection is closed. Any time: messages already arriving
 * when it is set land in message buffers.
 */
void gn_conn_set_placement(struct gn_conn *c, const struct gn_placement *p);
/*
 * For transports: ask c's placement for a message's payload. Returns the
 * memory (and *placer, to give it back with) or NULL when none is set or
 * it declined; never for an empty payload.
 */
void *gn_conn_place(const struct gn_conn *c, const uint8_t *env, size_t env_len,
		    size_t payload_len, const struct gn_placement **placer);
int gn_conn_recv(struct gn_conn *c, struct gn_msg *msg, int timeout_ms);
/* Close and free; sets *c to NULL. NULL is a no-op. */
void gn_conn_close(struct gn_conn **c);
void gn_listener_close(struct gn_listener **l);

#endif /* GN_COMMON_TRANSPORT_H */
