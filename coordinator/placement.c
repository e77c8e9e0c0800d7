/* Placement decisions (see placement.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "placement.h"

const char *gn_place_policy_name(enum gn_place_policy p)
{
	switch (p) {
	case GN_POLICY_LEAST_LOADED: return "least-loaded";
	case GN_POLICY_BIN_PACKING: return "bin-packing";
	case GN_POLICY_MODEL_AFFINITY: return "model-affinity";
	default: return NULL;
	}
}

int gn_place_policy_parse(const char *name, enum gn_place_policy *out)
{
	for (int p = GN_POLICY_LEAST_LOADED; p <= GN_POLICY_MODEL_AFFINITY;
	     p++) {
		if (strcmp(name, gn_place_policy_name(p)) == 0) {
			*out = (enum gn_place_policy)p;
			return 0;
		}
	}
	return -EINVAL;
}

uint32_t gn_place_device_bit(const char *kind)
{
	if (kind == NULL || kind[0] == '\0')
		return 0;
	if (strcmp(kind, "cpu") == 0)
		return GN_DEV_CPU;
	if (strcmp(kind, "cuda") == 0)
		return GN_DEV_CUDA;
	return GN_DEV_OTHER;
}

uint32_t gn_place_transport_bit(const char *kind)
{
	if (kind == NULL || kind[0] == '\0')
		return 0;
	if (strcmp(kind, "tcp") == 0)
		return GN_TP_TCP;
	if (strcmp(kind, "dpdk") == 0)
		return GN_TP_DPDK;
	if (strcmp(kind, "verbs") == 0)
		return GN_TP_VERBS;
	return GN_TP_OTHER;
}

static uint32_t affinity(const struct gn_place_node *nd,
			 const struct gn_place_request *req)
{
	uint32_t hits = 0;

	for (uint32_t i = 0; i < req->n_model_keys; i++)
		for (uint32_t k = 0; k < nd->n_resident_keys; k++)
			if (strcmp(req->model_keys[i], nd->resident_keys[k]) ==
			    0) {
				hits++;
				break;
			}
	return hits;
}

/* <0 when a is less loaded than b, >0 when more, 0 when equal. */
static int load_cmp(const struct gn_place_node *a,
		    const struct gn_place_node *b)
{
	if (a->sessions != b->sessions)
		return a->sessions < b->sessions ? -1 : 1;
	if (a->queue_depth != b->queue_depth)
		return a->queue_depth < b->queue_depth ? -1 : 1;
	if (a->memory_used != b->memory_used)
		return a->memory_used < b->memory_used ? -1 : 1;
	return 0;
}

/* Is candidate `a` (with affinity ha) better than `b` (hb)? */
static int better(enum gn_place_policy pol, const struct gn_place_node *a,
		  uint32_t ha, const struct gn_place_node *b, uint32_t hb)
{
	switch (pol) {
	case GN_POLICY_BIN_PACKING: return load_cmp(a, b) > 0;
	case GN_POLICY_MODEL_AFFINITY:
		if (ha != hb)
			return ha > hb;
		return load_cmp(a, b) < 0;
	default: return load_cmp(a, b) < 0;
	}
}

int gn_place(const struct gn_place_node *nodes, size_t n,
	     const struct gn_place_request *req, struct gn_place_result *res)
{
	enum gn_place_policy pol = req->policy;
	uint32_t n_kind = 0, n_down = 0, n_drained = 0, n_breaker = 0;
	uint32_t n_full = 0, n_mem = 0, best_hits = 0;
	uint64_t cap = 0, used = 0;
	int unlimited = 0, best = -1, over_share = 0;
	uint32_t prio = req->priority > 100 ? 100 : req->priority;
	const char *tenant =
		req->tenant != NULL && req->tenant[0] ? req->tenant : "-";

	res->node = -1;
	res->reason[0] = '\0';
	if (pol < GN_POLICY_LEAST_LOADED || pol > GN_POLICY_MODEL_AFFINITY)
		pol = GN_POLICY_LEAST_LOADED;
	for (size_t i = 0; i < n; i++) {
		const struct gn_place_node *nd = &nodes[i];
		uint32_t hits = 0;

		if ((req->device_kind &&
		     !(nd->device_kinds & req->device_kind)) ||
		    (req->transport && !(nd->transports & req->transport)))
			continue;
		n_kind++;
		if (nd->state != GN_PLACE_UP) {
			n_down++;
			continue;
		}
		if (nd->drained) {
			n_drained++;
			continue;
		}
		if (nd->breaker_open) {
			n_breaker++;
			continue;
		}
		if (nd->max_sessions == 0)
			unlimited = 1;
		cap += nd->max_sessions;
		used += nd->sessions < nd->max_sessions ? nd->sessions
							: nd->max_sessions;
		if (nd->max_sessions && nd->sessions >= nd->max_sessions) {
			n_full++;
			continue;
		}
		if (req->min_free_memory &&
		    (nd->memory_used > nd->memory_total ||
		     nd->memory_total - nd->memory_used <
			     req->min_free_memory)) {
			n_mem++;
			continue;
		}
		if (pol == GN_POLICY_MODEL_AFFINITY)
			hits = affinity(nd, req);
		if (best < 0 ||
		    better(pol, nd, hits, &nodes[best], best_hits)) {
			best = (int)i;
			best_hits = hits;
		}
	}
	if (n_kind == 0) {
		snprintf(res->reason, sizeof(res->reason),
			 "no node offers%s%s%s%s (%zu nodes known)",
			 req->device_kind ? " the requested device kind" : "",
			 req->device_kind && req->transport ? " and" : "",
			 req->transport ? " the requested transport" : "",
			 req->device_kind || req->transport ? "" : " anything",
			 n);
		return -ENODEV;
	}
	if (best < 0) {
		snprintf(res->reason, sizeof(res->reason),
			 "no node can take a session: of %u matching nodes, "
			 "%u not up, %u drained, %u with breaker open, %u "
			 "full, %u short of %llu free bytes",
			 n_kind, n_down, n_drained, n_breaker, n_full, n_mem,
			 (unsigned long long)req->min_free_memory);
		return -EAGAIN;
	}
	if (!unlimited && cap > 0) {
		uint64_t free_slots = cap - used;
		uint64_t reserve = cap * (100 - prio) / 1000;
		uint32_t tenants =
			req->active_tenants ? req->active_tenants : 1;
		uint64_t share = (cap + tenants - 1) / tenants;

		if (free_slots - 1 < reserve) {
			snprintf(res->reason, sizeof(res->reason),
				 "priority %u may not take one of the last "
				 "%llu of %llu session slots (%llu free)",
				 prio, (unsigned long long)reserve,
				 (unsigned long long)cap,
				 (unsigned long long)free_slots);
			return -EAGAIN;
		}
		if (free_slots * 4 < cap && req->tenant_sessions >= share) {
			snprintf(res->reason, sizeof(res->reason),
				 "tenant '%s' holds %u sessions, its fair "
				 "share is %llu of %llu slots among %u "
				 "tenants, and capacity is short (%llu free)",
				 tenant, req->tenant_sessions,
				 (unsigned long long)share,
				 (unsigned long long)cap, tenants,
				 (unsigned long long)free_slots);
			return -EAGAIN;
		}
		over_share = req->tenant_sessions >= share;
	}
	res->node = best;
	switch (pol) {
	case GN_POLICY_BIN_PACKING:
		snprintf(res->reason, sizeof(res->reason),
			 "bin-packing: fullest node that fits (%u sessions)",
			 nodes[best].sessions);
		break;
	case GN_POLICY_MODEL_AFFINITY:
		snprintf(res->reason, sizeof(res->reason),
			 "model-affinity: %u of %u model keys resident, %u "
			 "sessions",
			 best_hits, req->n_model_keys, nodes[best].sessions);
		break;
	default:
		snprintf(res->reason, sizeof(res->reason),
			 "least-loaded: %u sessions, queue depth %u",
			 nodes[best].sessions, nodes[best].queue_depth);
		break;
	}
	if (over_share) {
		size_t len = strlen(res->reason);

		snprintf(res->reason + len, sizeof(res->reason) - len,
			 "; tenant '%s' is over its fair share", tenant);
	}
	return 0;
}
