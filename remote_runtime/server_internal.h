/*
 * What the runtime server's files share (server.c: connections, dispatch,
 * hello and telemetry; server_exec.c: ExecRequest; server_tensor.c: the
 * registry messages). Private to the server.
 */
#ifndef GN_RUNTIME_SERVER_INTERNAL_H
#define GN_RUNTIME_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "backend.h"
#include "executor.h"
#include "genie/envelope.pb-c.h"
#include "log.h"
#include "plan_cache.h"
#include "pool.h"
#include "registry.h"
#include "server.h"
#include "transport.h"
#include "worker.h"

GN_LOG_EXTERN(runtime);

#define GN_SERVER_MAX_CONNS 256

/* Plans kept per connection; the client remembers as many. */
#define GN_SERVER_PLANS_PER_CONN 64
/*
 * Uploads of this many payload bytes or more are placed (transport.h):
 * below it a copy costs less than asking.
 */
#define GN_SERVER_PLACE_MIN (64u << 10)

/*
 * One connection: a client session. Only its own thread touches it after
 * accept, except `conn`'s socket, which the stopping server shuts down.
 */
struct conn_slot {
	struct gn_server *srv;
	struct gn_conn *conn;
	pthread_t thread;
	int used;
	int done; /* the thread finished; join and reuse the slot */
	uint32_t version;
	uint64_t session;	     /* registry session: one per connection */
	struct gn_plan_cache *plans; /* this connection's decoded plans */
};

/* A ring of times over an array: written at head, read up to taken. */
struct time_ring {
	struct gn_exec_kernel_time *at;
	uint64_t size, head, taken;
};

struct gn_server {
	struct gn_server_opts opts;
	char name[64];
	struct gn_listener *listeners[GN_SERVER_MAX_LISTENERS];
	int nlisteners;
	/* Touched only on the worker thread once the server runs. */
	struct gn_backend backend;
	struct gn_pool *pool;
	struct gn_registry *registry;
	struct gn_worker *worker;
	/* Every connection's payload placement, set once it said Hello. */
	struct gn_placement placement;
	pthread_mutex_t conns_lock;
	struct conn_slot conns[GN_SERVER_MAX_CONNS];
	uint64_t next_session; /* the accepting thread's */
	int stop_pipe[2];
	uint64_t start_ns;
	/* What the worker last saw of the registry and pool, for telemetry
	 * without waiting behind a long plan. */
	pthread_mutex_t snap_lock;
	struct gn_registry_stats reg_snap;
	struct gn_pool_stats pool_snap;
	/* Content keys of the shared blocks, most recent first (heartbeats
	 * carry them for model affinity); refreshed when the registry's
	 * counters moved. key_scratch is the worker's. */
	uint8_t key_snap[GN_SERVER_MAX_RESIDENT_KEYS][GN_CONTENT_KEY_SIZE];
	size_t n_key_snap;
	uint8_t key_scratch[GN_SERVER_MAX_RESIDENT_KEYS][GN_CONTENT_KEY_SIZE];
	/* Per-plan and per-kernel execution times since the telemetry
	 * reader last took them: rings, the newest kept when one overflows
	 * (under snap_lock). */
	struct gn_exec_kernel_time plan_times[GN_SERVER_LATENCY_RING];
	struct gn_exec_kernel_time kernel_times[GN_SERVER_KERNEL_RING];
	struct time_ring plan_ring, kernel_ring;
	atomic_uint_fast64_t connections, plans, plan_errors, bytes_in,
		bytes_out, exec_ns, cache_hits, cache_misses, tensor_requests,
		tensor_errors, hash_mismatches;
};

/* Record a plan's time and its kernels' for the next heartbeat. Any thread. */
void gn_server_note_latency(struct gn_server *s,
			    const struct gn_exec_result *res);

/* Pack and send one reply; a failed send closes the connection. */
int gn_server_send(struct conn_slot *cs, int type, uint64_t req_id,
		   const ProtobufCMessage *body, const struct iovec *payload,
		   int iovcnt);

/* Send an ErrorReply{code, msg}. */
int gn_server_send_error(struct conn_slot *cs, uint64_t req_id, int code,
			 const char *msg);

/*
 * Request handlers, on the connection's thread: decode, hand the backend
 * part to the worker, reply. Each returns 0 when the connection may go on
 * (a refused request got its ErrorReply) or a negative errno to close it.
 */
int gn_server_handle_exec(struct conn_slot *cs, const Genie__Envelope *env,
			  const struct gn_msg *msg);
/* An upload whose payload was placed takes it (gn_msg_take_placed()). */
int gn_server_handle_upload(struct conn_slot *cs, const Genie__Envelope *env,
			    struct gn_msg *msg);
/* The server's placement (struct gn_placement's place and unplace). */
void *gn_server_place(void *arg, const struct gn_conn *c, const uint8_t *env,
		      size_t env_len, size_t payload_len);
void gn_server_unplace(void *arg, void *buf);
int gn_server_handle_attach(struct conn_slot *cs, const Genie__Envelope *env);
int gn_server_handle_download(struct conn_slot *cs, const Genie__Envelope *env);
int gn_server_handle_free(struct conn_slot *cs, const Genie__Envelope *env);
int gn_server_handle_pin(struct conn_slot *cs, const Genie__Envelope *env);

/* Drop every registry handle of the connection's session (on the worker). */
void gn_server_end_session(struct conn_slot *cs);

/* The one wording for a handle the session does not hold. */
#define GN_SERVER_NO_TENSOR                                            \
	"no tensor with that handle in this session (unknown, freed, " \
	"evicted or another session's)"

/* The one wording for an ATTACH whose content the runtime does not hold. */
#define GN_SERVER_NOT_CACHED                                               \
	"attach: no shared tensor with that content key and meta on this " \
	"runtime (not cached: never uploaded, or evicted); upload it "     \
	"shared"

#endif /* GN_RUNTIME_SERVER_INTERNAL_H */
