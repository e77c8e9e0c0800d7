/*
 * Placement throughput and latency: 16 runtimes holding 1,000 sessions,
 * each policy deciding through coordinator/placement.c directly (the same
 * code genie-coordinator runs under its lock). Every decision places a
 * session on the node chosen and releases a random older one, so the
 * cluster stays at 1,000 sessions across 8 tenants; nodes carry resident
 * model keys and requests name two.
 *
 *   placement [--quick] [--json]
 *
 * Prints a table per policy; with --json, one JSON object as the last
 * line: per-policy figures, and decisions_per_s / p50_us / p99_us of the
 * slowest policy. decisions_per_s is decisions over the time spent inside
 * gn_place() (clock reads included); wall_decisions_per_s also counts the
 * bench's own session bookkeeping around each call. Targets: >= 100,000
 * decisions/s, p99 <= 100 us.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "placement.h"

#define NODES 16
#define SESSIONS 1000
#define TENANTS 8
#define KEYS_PER_NODE 8

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return (uint32_t)(g_rng >> 11);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct result {
	double per_s, wall_per_s, p50_us, p99_us, max_us;
	long failures;
};

static char g_ids[NODES][16];
static char g_keys[64][72];
static const char *g_node_keys[NODES][KEYS_PER_NODE];

static void run(enum gn_place_policy pol, long n, struct result *out)
{
	struct gn_place_node nodes[NODES];
	static int sess_node[SESSIONS], sess_tenant[SESSIONS];
	static const char *tenant_names[TENANTS] = {"t0", "t1", "t2", "t3",
						    "t4", "t5", "t6", "t7"};
	uint32_t tenant_count[TENANTS] = {0};
	uint64_t *lat = malloc(sizeof(uint64_t) * (size_t)n);
	uint64_t t0, total = 0, start;
	long fails = 0;

	memset(nodes, 0, sizeof(nodes));
	for (int i = 0; i < NODES; i++) {
		nodes[i].node_id = g_ids[i];
		nodes[i].state = GN_PLACE_UP;
		nodes[i].device_kinds =
			i % 4 == 0 ? GN_DEV_CPU | GN_DEV_CUDA : GN_DEV_CPU;
		nodes[i].transports = GN_TP_TCP | (i % 2 ? GN_TP_DPDK : 0);
		nodes[i].max_sessions = 128;
		nodes[i].memory_total = 80ull << 30;
		nodes[i].memory_used = (uint64_t)(rnd() % 40) << 30;
		nodes[i].queue_depth = rnd() % 8;
		nodes[i].resident_keys = g_node_keys[i];
		nodes[i].n_resident_keys = KEYS_PER_NODE;
	}
	/* Start with 1,000 sessions spread evenly. */
	for (int s = 0; s < SESSIONS; s++) {
		sess_node[s] = s % NODES;
		sess_tenant[s] = s % TENANTS;
		nodes[s % NODES].sessions++;
		tenant_count[s % TENANTS]++;
	}
	start = now_ns();
	for (long i = 0; i < n; i++) {
		struct gn_place_request req = {0};
		struct gn_place_result res;
		const char *want[2];
		int t = (int)(rnd() % TENANTS);
		int victim = (int)(rnd() % SESSIONS);
		uint64_t d;
		int rc;

		/* Release one session to make room for the new one. */
		nodes[sess_node[victim]].sessions--;
		tenant_count[sess_tenant[victim]]--;
		want[0] = g_keys[rnd() % 64];
		want[1] = g_keys[rnd() % 64];
		req.tenant = tenant_names[t];
		req.priority = rnd() % 101;
		req.policy = pol;
		req.model_keys = want;
		req.n_model_keys = 2;
		req.min_free_memory = 1ull << 30;
		req.transport = i % 8 == 0 ? GN_TP_DPDK : 0;
		req.tenant_sessions = tenant_count[t];
		req.active_tenants = TENANTS;
		t0 = now_ns();
		rc = gn_place(nodes, NODES, &req, &res);
		d = now_ns() - t0;
		lat[i] = d;
		total += d;
		if (rc != 0) {
			fails++;
			/* Put the released session back where it was. */
			nodes[sess_node[victim]].sessions++;
			tenant_count[sess_tenant[victim]]++;
			continue;
		}
		nodes[res.node].sessions++;
		sess_node[victim] = res.node;
		sess_tenant[victim] = t;
		tenant_count[t]++;
	}
	out->wall_per_s = (double)n / ((double)(now_ns() - start) / 1e9);
	qsort(lat, (size_t)n, sizeof(lat[0]), cmp_u64);
	out->per_s = (double)n / ((double)total / 1e9);
	out->p50_us = (double)lat[n / 2] / 1e3;
	out->p99_us = (double)lat[(size_t)((double)n * 0.99)] / 1e3;
	out->max_us = (double)lat[n - 1] / 1e3;
	out->failures = fails;
	free(lat);
}

int main(int argc, char **argv)
{
	static const enum gn_place_policy pols[] = {GN_POLICY_LEAST_LOADED,
						    GN_POLICY_BIN_PACKING,
						    GN_POLICY_MODEL_AFFINITY};
	struct result r[3];
	int json = 0, quick = 0;
	long n;
	double worst_rate = 0, worst_p50 = 0, worst_p99 = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else if (strcmp(argv[i], "--quick") == 0) {
			quick = 1;
		} else {
			fprintf(stderr,
				"usage: placement [--quick] [--json]\n");
			return 2;
		}
	}
	n = quick ? 100000 : 1000000;
	for (int i = 0; i < NODES; i++)
		snprintf(g_ids[i], sizeof(g_ids[i]), "runtime-%02d", i);
	for (int k = 0; k < 64; k++)
		snprintf(g_keys[k], sizeof(g_keys[k]), "%064x", k * 7919);
	for (int i = 0; i < NODES; i++)
		for (int k = 0; k < KEYS_PER_NODE; k++)
			g_node_keys[i][k] = g_keys[(i * 5 + k) % 64];

	printf("placement: %d runtimes, %d sessions, %d tenants, %ld "
	       "decisions per policy\n",
	       NODES, SESSIONS, TENANTS, n);
	printf("%-16s %14s %14s %10s %10s %10s %9s\n", "policy", "decisions/s",
	       "with bookkeep", "p50 us", "p99 us", "max us", "refused");
	for (int p = 0; p < 3; p++) {
		run(pols[p], n, &r[p]);
		printf("%-16s %14.0f %14.0f %10.3f %10.3f %10.3f %9ld\n",
		       gn_place_policy_name(pols[p]), r[p].per_s,
		       r[p].wall_per_s, r[p].p50_us, r[p].p99_us, r[p].max_us,
		       r[p].failures);
		if (p == 0 || r[p].per_s < worst_rate)
			worst_rate = r[p].per_s;
		if (r[p].p50_us > worst_p50)
			worst_p50 = r[p].p50_us;
		if (r[p].p99_us > worst_p99)
			worst_p99 = r[p].p99_us;
	}
	printf("targets: >= 100000 decisions/s (worst policy %.0f: %s), p99 "
	       "<= 100 us (worst %.3f: %s)\n",
	       worst_rate, worst_rate >= 100000 ? "met" : "MISSED", worst_p99,
	       worst_p99 <= 100 ? "met" : "MISSED");
	if (json) {
		printf("{\"bench\":\"placement\",\"runtimes\":%d,\"sessions\":"
		       "%d,\"decisions\":%ld",
		       NODES, SESSIONS, n);
		for (int p = 0; p < 3; p++)
			printf(",\"%s\":{\"decisions_per_s\":%.0f,"
			       "\"wall_decisions_per_s\":%.0f,\"p50_us\":"
			       "%.3f,\"p99_us\":%.3f,\"refused\":%ld}",
			       gn_place_policy_name(pols[p]), r[p].per_s,
			       r[p].wall_per_s, r[p].p50_us, r[p].p99_us,
			       r[p].failures);
		printf(",\"decisions_per_s\":%.0f,\"p50_us\":%.3f,\"p99_us\":"
		       "%.3f}\n",
		       worst_rate, worst_p50, worst_p99);
	}
	return 0;
}
