/*
 * The runtime's request server.
 *
 * It listens on one transport address, takes a Hello from each client,
 * then answers requests on that connection until the client says goodbye
 * or goes away. Each connection is one client session: the tensors it
 * uploads to the registry (UPLOAD/DOWNLOAD/FREE/PIN, and resident inputs
 * of its ExecRequests) are named by handles valid on that connection
 * only, and are freed when it ends.
 *
 * Threads: the main thread blocks in poll() on the listeners and a stop
 * pipe and accepts. Each connection has a thread that only reads and
 * decodes frames, checks requests, and writes replies, so a slow or
 * hostile peer stalls nobody else. All backend work (plans, registry
 * operations, the device memory pool) runs on one executor worker thread
 * (worker.h), fed by a queue; a connection thread hands its request over
 * and sleeps until it is done. Telemetry is answered from counters and a
 * snapshot the worker refreshes, without waiting behind a plan.
 *
 * A connection that sends a bad frame is closed with the reason logged; a
 * request that fails (bad plan, missing input, unknown handle, no memory)
 * gets an ErrorReply and the connection stays open.
 *
 * Stopping (gn_server_stop(), e.g. on SIGTERM) drains: the running job
 * finishes and its reply is sent, queued and later requests get an
 * ErrorReply with -ESHUTDOWN, every connection is shut down for reading,
 * ends its session and is joined, then the worker is joined.
 */
#ifndef GN_RUNTIME_SERVER_H
#define GN_RUNTIME_SERVER_H

#include <stddef.h>
#include <stdint.h>

struct gn_server;

struct gn_server_opts {
	size_t opts_size;
	const char *listen;  /* "tcp://HOST:PORT"; port 0 picks one */
	const char *backend; /* "auto" (default), "cpu", "cuda" */
	const char *name;    /* reported in HelloAck and telemetry */
	uint32_t max_envelope;
	uint64_t max_payload;
	uint64_t memory_limit; /* device bytes the runtime may hold; 0: none */
	/*
	 * More addresses served at once, e.g. "dpdk://memif:/run/g.sock"
	 * beside a tcp:// listen; n_also_listen entries, at most
	 * GN_SERVER_MAX_LISTENERS - 1. Sessions on every listener share the
	 * backend, the registry and the executor.
	 */
	const char *const *also_listen;
	int n_also_listen;
	/*
	 * Nonzero: no payload placement (transport.h); every upload lands in
	 * a message buffer and is copied into its block, as before placement.
	 */
	int no_placement;
};

#define GN_SERVER_MAX_LISTENERS 4

void gn_server_opts_init(struct gn_server_opts *opts, size_t opts_size);

/*
 * Open the backend and start listening. Returns NULL with the error set
 * (address in use, unknown backend). Free with gn_server_destroy().
 */
struct gn_server *gn_server_create(const struct gn_server_opts *opts);

/* The bound address "HOST:PORT" (with the real port when 0 was asked). */
const char *gn_server_addr(const struct gn_server *s);

/* How many addresses the server listens on (1 + n_also_listen). */
int gn_server_nlisteners(const struct gn_server *s);

/*
 * Listener i's address as a target string ("tcp://127.0.0.1:7070",
 * "dpdk://memif:/run/g.sock") in buf; its scheme in *scheme (may be
 * NULL). Returns buf, or NULL for an i out of range.
 */
const char *gn_server_listener_url(const struct gn_server *s, int i,
				   char *buf, size_t len,
				   const char **scheme);

/* The backend chosen ("cpu", "cuda"). */
const char *gn_server_backend(const struct gn_server *s);

struct Genie__RuntimeTelemetry;

/*
 * Fill `t` (a genie.RuntimeTelemetry) from the server's counters and the
 * worker's last snapshot, as the TELEMETRY request answers. Never waits
 * behind a plan; safe from any thread while the server exists. The
 * strings point into the server.
 */
void gn_server_telemetry(struct gn_server *s,
			 struct Genie__RuntimeTelemetry *t);

/* Most resident keys and latency samples a snapshot keeps. */
#define GN_SERVER_MAX_RESIDENT_KEYS 256
#define GN_SERVER_LATENCY_RING 4096
#define GN_SERVER_KERNEL_RING 16384

/*
 * The content keys (64 hex digits each, NUL-terminated) of the shared
 * resident blocks as of the worker's last snapshot, most recently used
 * first, at most `max` (GN_SERVER_MAX_RESIDENT_KEYS kept). Returns how
 * many. Never waits behind a plan; any thread.
 */
size_t gn_server_resident_keys(struct gn_server *s, char (*hex)[65],
			       size_t max);

/*
 * Hand over the per-plan execution times recorded since the last call
 * (`ns` of each entry; op is GN_OP_COUNT_), oldest first, at most `max`;
 * when more are waiting the newest are kept. The server keeps the last
 * GN_SERVER_LATENCY_RING; *dropped (may be NULL) counts those lost to
 * that bound or to `max`. One reader (the coordinator client); any
 * thread.
 */
struct gn_exec_kernel_time;
size_t gn_server_take_latencies(struct gn_server *s,
				struct gn_exec_kernel_time *out, size_t max,
				uint64_t *dropped);

/*
 * The same for every kernel run (op and time; see struct
 * gn_exec_result's kernels), the last GN_SERVER_KERNEL_RING kept.
 */
size_t gn_server_take_kernel_times(struct gn_server *s,
				   struct gn_exec_kernel_time *out, size_t max,
				   uint64_t *dropped);

/* Connections (client sessions) open now. Any thread. */
uint32_t gn_server_active_sessions(struct gn_server *s);

/* The memory limit the pool was given (0: none). */
uint64_t gn_server_memory_limit(const struct gn_server *s);

/*
 * Serve until gn_server_stop(). Returns 0 after a clean stop, once every
 * connection thread and the worker have finished, or a negative errno if
 * the listener fails.
 */
int gn_server_run(struct gn_server *s);

/* Ask a running server to stop. Async-signal-safe. */
void gn_server_stop(struct gn_server *s);

/*
 * Stop the worker (if gn_server_run() did not), close the listener, free
 * every registry tensor, the pool and the backend; sets *s to NULL. NULL
 * is a no-op. Call it after gn_server_run() returned, or without running.
 */
void gn_server_destroy(struct gn_server **s);

#endif /* GN_RUNTIME_SERVER_H */
