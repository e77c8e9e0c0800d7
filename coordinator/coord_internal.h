/*
 * What the coordinator's files share: the registry of nodes and sessions
 * (registry.c), the connection server (server.c) and the HTTP endpoint
 * (http.c). Everything below `lock` is guarded by it; counters are atomic.
 */
#ifndef GN_COORD_INTERNAL_H
#define GN_COORD_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "coordinator.h"
#include "genie/coord.pb-c.h"
#include "genie/envelope.pb-c.h"
#include "log.h"
#include "placement.h"
#include "sketch.h"
#include "state.h"
#include "transport.h"

GN_LOG_EXTERN(coord);

#define GN_COORD_MAX_NODES 1024
#define GN_COORD_MAX_CONNS 1024
#define GN_COORD_ID_MAX 128	       /* node ids are shorter */
#define GN_COORD_TENANT_MAX 64	       /* tenant names are shorter */
#define GN_COORD_MAX_KEYS 64	       /* resident keys kept per node */
#define GN_COORD_FLAPS 3	       /* down->up transitions allowed ... */
#define GN_COORD_FLAP_WINDOW_MS 60000  /* ... within this window */
#define GN_COORD_BREAKER_MS 30000      /* how long a breaker stays open */
#define GN_COORD_RESTORE_GRACE_MS 5000 /* restored nodes: time to return */

struct coord_node {
	char id[GN_COORD_ID_MAX];
	Genie__RegisterNode *reg; /* last registration, owned */
	uint8_t *reg_blob;	  /* the same, packed */
	size_t reg_len;
	enum gn_place_state state;
	bool drained;
	bool breaker_open;
	bool restored; /* loaded from state, not seen since */
	uint64_t breaker_until_ns;
	uint64_t last_hb_ns;
	uint64_t ups_ns[GN_COORD_FLAPS + 1]; /* recent down->up times */
	uint32_t nups;
	uint32_t device_kinds, transports;
	uint32_t sessions; /* placed here and not released */
	uint32_t active_sessions, queue_depth;
	uint64_t mem_used, mem_total;
	double utilization;
	char *keys[GN_COORD_MAX_KEYS];
	uint32_t nkeys;
	uint64_t heartbeats;
	uint64_t bytes_sent, bytes_received; /* runtime's own totals */
	uint64_t plans_executed;
	struct gn_sketch lat;
};

struct coord_session {
	uint64_t id;
	int node;
	char tenant[GN_COORD_TENANT_MAX];
	uint32_t priority;
	int64_t created_ms;
};

/* Sessions held per tenant, for fair share; entries are never removed. */
struct coord_tenant {
	char name[GN_COORD_TENANT_MAX];
	uint32_t sessions;
};

enum coord_fail {
	COORD_FAIL_NO_NODE, /* -ENODEV */
	COORD_FAIL_NO_ROOM, /* -EAGAIN */
	COORD_FAIL_OTHER,
	COORD_FAIL_N,
};

struct coord_conn {
	struct gn_coordinator *c;
	struct gn_conn *conn;
	pthread_t thread;
	int used, done;
	uint32_t version; /* negotiated at CoordHello */
	int stage;	  /* 0: expect hello, 1: expect auth, 2: serving */
	uint8_t nonce[GN_AUTH_NONCE_SIZE];
	char peer_name[GN_AUTH_NAME_MAX + 1];
	int role;
	int node; /* registered on this connection, -1 */
};

#define GN_COORD_MAX_OPS 128

/* One op's kernel times over all runtimes. */
struct coord_op_latency {
	char op[32];
	struct gn_sketch lat;
};

struct gn_coordinator {
	struct gn_coordinator_opts opts;
	char name[128];
	struct gn_auth_secret secret;
	struct gn_listener *listener;
	int stop_pipe[2];
	struct MHD_Daemon *http;
	int http_port;
	atomic_int ready;

	pthread_mutex_t lock;
	struct gn_coord_state *state;
	struct coord_node *nodes; /* GN_COORD_MAX_NODES */
	int nnodes;
	struct coord_session *sessions;
	size_t nsessions, cap_sessions;
	struct coord_tenant *tenants;
	size_t ntenants, cap_tenants;
	uint64_t next_session;
	struct gn_sketch lat_all;
	/* Kernel times by op over all runtimes, GN_COORD_MAX_OPS at most. */
	struct coord_op_latency *op_lat;
	size_t n_op_lat;
	/* Scratch for placement: snapshots and their key pointers. */
	struct gn_place_node *place_nodes; /* GN_COORD_MAX_NODES */
	const char *(*place_keys)[GN_COORD_MAX_KEYS];

	pthread_t checker;
	int checker_started;
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond;
	int stopping;

	pthread_mutex_t conns_lock;
	struct coord_conn conns[GN_COORD_MAX_CONNS];

	atomic_uint_fast64_t placements[4]; /* by policy */
	atomic_uint_fast64_t failures[COORD_FAIL_N];
	atomic_uint_fast64_t heartbeats_total;
	atomic_uint_fast64_t auth_failures;
	atomic_uint_fast64_t bad_frames;
	atomic_uint_fast64_t connections;
	atomic_uint_fast64_t sessions_ended; /* by their node going down */
	atomic_uint_fast64_t releases;
};

/* registry.c; each takes c->lock itself. */
int coord_registry_init(struct gn_coordinator *c);
void coord_registry_fini(struct gn_coordinator *c);
int coord_load_state(struct gn_coordinator *c);
/* Returns the node index or a negative errno (error set). */
int coord_register(struct gn_coordinator *c, const uint8_t *blob, size_t len);
int coord_heartbeat(struct gn_coordinator *c, int node,
		    const Genie__Heartbeat *hb, bool *drained);
/* Health pass: SUSPECT/DOWN, breakers. */
void coord_check(struct gn_coordinator *c);
/* Each packs its reply envelope into *env (malloc'd) on success. */
int coord_place(struct gn_coordinator *c, const Genie__PlaceRequest *rq,
		uint64_t req_id, uint8_t **env, size_t *env_len);
int coord_release(struct gn_coordinator *c, uint64_t session_id);
int coord_list_nodes(struct gn_coordinator *c, const char *only,
		     uint64_t req_id, uint8_t **env, size_t *env_len);
int coord_list_sessions(struct gn_coordinator *c, uint64_t req_id,
			uint8_t **env, size_t *env_len);
int coord_drain(struct gn_coordinator *c, const char *node_id, bool drain);
const char *coord_state_name(enum gn_place_state s, bool drained);

/* http.c */
int coord_http_start(struct gn_coordinator *c);
void coord_http_stop(struct gn_coordinator *c);
/* The /metrics text, malloc'd; NULL on no memory. */
char *coord_metrics_render(struct gn_coordinator *c, size_t *len);

#endif /* GN_COORD_INTERNAL_H */
