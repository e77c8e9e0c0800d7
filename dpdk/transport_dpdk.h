/*
 * What the dpdk:// transport shows about itself (for telemetry): the
 * process has one engine at most (transport_dpdk.c).
 */
#ifndef GN_DPDK_TRANSPORT_DPDK_H
#define GN_DPDK_TRANSPORT_DPDK_H

#include <stddef.h>
#include <stdint.h>

#include "rel.h"

/*
 * The engine's target and endpoint totals. Returns 0, or -ENODEV when the
 * process has no dpdk:// engine (yet).
 */
int gn_dpdk_transport_stats(char *spec, size_t spec_len,
			    struct gn_rel_stats *st);

/* Call `fn` for every session with its id, state and counters. */
int gn_dpdk_transport_sessions(void (*fn)(void *ctx, uint64_t id, int up,
					  const struct gn_rel_stats *st),
			       void *ctx);

/* Register /genie/transport/stats and /genie/transport/sessions with
 * DPDK's telemetry (telemetry.c). Idempotent. */
void gn_dpdk_telemetry_register(void);

#endif /* GN_DPDK_TRANSPORT_DPDK_H */
