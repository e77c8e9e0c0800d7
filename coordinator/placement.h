/*
 * Placement: which runtime gets a new client session.
 *
 * Pure functions over an array of node snapshots, so the decision can be
 * unit-tested and benchmarked without a coordinator around it. The
 * coordinator fills one struct gn_place_node per known runtime under its
 * registry lock and calls gn_place(); nothing here allocates, locks or
 * logs.
 *
 * A decision has two steps:
 *
 *  1. Filter. A node is a candidate when it is UP, not drained, its
 *     circuit breaker is closed, it has a device of the requested kind,
 *     a data plane of the requested transport, at least the requested free
 *     memory, and a free session slot (sessions < max_sessions; 0 means no
 *     limit).
 *
 *  2. Admission, then policy.
 *     - Priority (0..100) decides how deep into the cluster's free session
 *       slots a request may reach: after placing it, at least
 *       capacity * (100 - priority) / 1000 slots must stay free, so
 *       priority 0 keeps a 10% reserve free and priority 100 may take the
 *       last slot. (Only with finite capacity, i.e. every candidate has a
 *       max_sessions.)
 *     - Fair share: with T tenants holding sessions (the requester
 *       counted), a tenant's fair share is ceil(capacity / T). Capacity is
 *       short when fewer than a quarter of the slots are free; then a
 *       tenant at or above its fair share is refused (-EAGAIN), so the
 *       remaining slots go to tenants below theirs. When capacity is not
 *       short such a tenant is still placed, and the reason says it is
 *       over its share.
 *     - Policy among the candidates:
 *       least-loaded: fewest sessions, then lowest queue depth, then
 *       lowest memory use;
 *       bin-packing: the most sessions (then most memory used) that still
 *       fits, filling nodes one by one;
 *       model-affinity: most of the request's model keys among the node's
 *       resident keys; ties (and zero matches) fall back to least-loaded.
 *     Remaining ties go to the lower array index (stable, deterministic).
 */
#ifndef GN_COORD_PLACEMENT_H
#define GN_COORD_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gn_place_state {
	GN_PLACE_UP = 1,
	GN_PLACE_SUSPECT = 2,
	GN_PLACE_DOWN = 3,
};

enum gn_place_policy {
	GN_POLICY_DEFAULT = 0, /* the caller's configured policy */
	GN_POLICY_LEAST_LOADED = 1,
	GN_POLICY_BIN_PACKING = 2,
	GN_POLICY_MODEL_AFFINITY = 3,
};

/* Device kinds and transports as bits. */
#define GN_DEV_CPU 0x1u
#define GN_DEV_CUDA 0x2u
#define GN_DEV_OTHER 0x4u
#define GN_TP_TCP 0x1u
#define GN_TP_DPDK 0x2u
#define GN_TP_VERBS 0x4u
#define GN_TP_OTHER 0x8u

/* One runtime as placement sees it. Pointers belong to the caller. */
struct gn_place_node {
	const char *node_id;
	enum gn_place_state state;
	bool drained;
	bool breaker_open;
	uint32_t device_kinds; /* GN_DEV_* bits */
	uint32_t transports;   /* GN_TP_* bits */
	uint32_t sessions;     /* sessions the coordinator placed there */
	uint32_t max_sessions; /* 0: no limit */
	uint32_t queue_depth;
	uint64_t memory_total;
	uint64_t memory_used;
	const char *const *resident_keys;
	uint32_t n_resident_keys;
};

struct gn_place_request {
	const char *tenant;   /* "" or NULL: the anonymous tenant */
	uint32_t priority;    /* 0..100; larger values are clamped */
	uint32_t device_kind; /* GN_DEV_* bit, 0: any */
	uint32_t transport;   /* GN_TP_* bit, 0: any */
	uint64_t min_free_memory;
	const char *const *model_keys;
	uint32_t n_model_keys;
	enum gn_place_policy policy; /* GN_POLICY_DEFAULT not allowed here */
	/* Tenancy, counted by the caller over its sessions. */
	uint32_t tenant_sessions; /* sessions the requester holds now */
	uint32_t active_tenants; /* tenants holding sessions, requester incl. */
};

struct gn_place_result {
	int node;	  /* index into the node array, -1 on failure */
	char reason[256]; /* why this node, or why none */
};

/*
 * Choose a node for `req` among `nodes[0..n)`. Returns 0 with res->node
 * set; -ENODEV when no node has the requested device kind or transport (or
 * there are no nodes); -EAGAIN when such nodes exist but none can take a
 * session now (down, drained, breaker open, full, short of memory) or when
 * priority or fair share holds the request back. res->reason says which,
 * with counts, in either case. Never allocates.
 */
int gn_place(const struct gn_place_node *nodes, size_t n,
	     const struct gn_place_request *req, struct gn_place_result *res);

/* "least-loaded", "bin-packing", "model-affinity"; NULL for others. */
const char *gn_place_policy_name(enum gn_place_policy p);

/* The policy named `name`; -EINVAL for an unknown name. */
int gn_place_policy_parse(const char *name, enum gn_place_policy *out);

/* GN_DEV_* bit for "cpu"/"cuda", GN_DEV_OTHER for other non-empty names,
 * 0 for "" or NULL. */
uint32_t gn_place_device_bit(const char *kind);

/* GN_TP_* bit for "tcp"/"dpdk"/"verbs", GN_TP_OTHER otherwise, 0 for ""
 * or NULL. */
uint32_t gn_place_transport_bit(const char *kind);

#endif /* GN_COORD_PLACEMENT_H */
