/*
 * Placement (coordinator/placement.c): filters, each policy, priorities,
 * fair share across tenants, and the circuit breaker flag.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "placement.h"

static const char *const g_ids[] = {"n0", "n1", "n2", "n3"};

static void make_nodes(struct gn_place_node *n, int count)
{
	memset(n, 0, sizeof(*n) * (size_t)count);
	for (int i = 0; i < count; i++) {
		n[i].node_id = g_ids[i];
		n[i].state = GN_PLACE_UP;
		n[i].device_kinds = GN_DEV_CPU;
		n[i].transports = GN_TP_TCP;
		n[i].memory_total = 1000;
		n[i].max_sessions = 10;
	}
}

static void make_req(struct gn_place_request *r, enum gn_place_policy p)
{
	memset(r, 0, sizeof(*r));
	r->tenant = "t";
	r->priority = 100;
	r->policy = p;
	r->active_tenants = 1;
}

static void test_least_loaded(void **state)
{
	struct gn_place_node n[4];
	struct gn_place_request r;
	struct gn_place_result res;

	(void)state;
	make_nodes(n, 4);
	make_req(&r, GN_POLICY_LEAST_LOADED);
	n[0].sessions = 3;
	n[1].sessions = 1;
	n[2].sessions = 1;
	n[3].sessions = 2;
	n[1].queue_depth = 5; /* tie on sessions: lower queue wins */
	assert_int_equal(gn_place(n, 4, &r, &res), 0);
	assert_int_equal(res.node, 2);
	assert_non_null(strstr(res.reason, "least-loaded"));
	n[2].queue_depth = 5;
	n[1].memory_used = 10; /* then lower memory */
	assert_int_equal(gn_place(n, 4, &r, &res), 0);
	assert_int_equal(res.node, 2);
	n[2].memory_used = 10; /* full tie: lower index */
	assert_int_equal(gn_place(n, 4, &r, &res), 0);
	assert_int_equal(res.node, 1);
}

static void test_bin_packing(void **state)
{
	struct gn_place_node n[4];
	struct gn_place_request r;
	struct gn_place_result res;

	(void)state;
	make_nodes(n, 4);
	make_req(&r, GN_POLICY_BIN_PACKING);
	n[0].sessions = 3;
	n[1].sessions = 10; /* full: does not fit */
	n[2].sessions = 7;
	assert_int_equal(gn_place(n, 4, &r, &res), 0);
	assert_int_equal(res.node, 2);
	/* Filling: repeated placement stays on one node until it is full. */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(gn_place(n, 4, &r, &res), 0);
		assert_int_equal(res.node, 2);
		n[2].sessions++;
	}
	assert_int_equal(gn_place(n, 4, &r, &res), 0);
	assert_int_equal(res.node, 0);
}

static void test_model_affinity(void **state)
{
	static const char *const k1[] = {"aa", "bb"};
	static const char *const k2[] = {"bb", "cc", "dd"};
	static const char *const want[] = {"bb", "cc"};
	struct gn_place_node n[4];
	struct gn_place_request r;
	struct gn_place_result res;

	(void)state;
	make_nodes(n, 4);
	make_req(&r, GN_POLICY_MODEL_AFFINITY);
	n[1].resident_keys = k1;
	n[1].n_resident_keys = 2;
	n[3].resident_keys = k2;
	n[3].n_resident_keys = 3;
	n[3].sessions = 5; /* busier, but holds both keys */
	r.model_keys = want;
	r.n_model_keys = 2;
	assert_int_equal(gn_place(n, 4, &r, &res), 0);
	assert_int_equal(res.node, 3);
	assert_non_null(strstr(res.reason, "2 of 2"));
	/* No key anywhere: falls back to least-loaded. */
	static const char *const none[] = {"zz"};
	r.model_keys = none;
	r.n_model_keys = 1;
	n[0].sessions = 2;
	assert_int_equal(gn_place(n, 4, &r, &res), 0);
	assert_int_equal(res.node, 1);
	/* Tie on hits goes to the less loaded. */
	static const char *const b[] = {"bb"};
	r.model_keys = b;
	assert_int_equal(gn_place(n, 4, &r, &res), 0);
	assert_int_equal(res.node, 1);
}

static void test_filters(void **state)
{
	struct gn_place_node n[4];
	struct gn_place_request r;
	struct gn_place_result res;

	(void)state;
	make_nodes(n, 4);
	make_req(&r, GN_POLICY_LEAST_LOADED);
	n[0].state = GN_PLACE_DOWN;
	n[1].state = GN_PLACE_SUSPECT;
	n[2].drained = true;
	n[3].breaker_open = true;
	assert_int_equal(gn_place(n, 4, &r, &res), -EAGAIN);
	assert_int_equal(res.node, -1);
	assert_non_null(strstr(res.reason, "2 not up, 1 drained, 1 with "
					   "breaker open"));
	n[3].breaker_open = false;
	assert_int_equal(gn_place(n, 4, &r, &res), 0);
	assert_int_equal(res.node, 3);

	/* Device kind and transport. */
	make_nodes(n, 4);
	n[2].device_kinds = GN_DEV_CPU | GN_DEV_CUDA;
	n[1].transports = GN_TP_TCP | GN_TP_DPDK;
	n[2].sessions = 5;
	r.device_kind = gn_place_device_bit("cuda");
	assert_int_equal(gn_place(n, 4, &r, &res), 0);
	assert_int_equal(res.node, 2);
	r.transport = gn_place_transport_bit("dpdk");
	assert_int_equal(gn_place(n, 4, &r, &res), -ENODEV);
	assert_non_null(strstr(res.reason, "device kind and the requested "
					   "transport"));
	r.device_kind = 0;
	assert_int_equal(gn_place(n, 4, &r, &res), 0);
	assert_int_equal(res.node, 1);
	r.transport = gn_place_transport_bit("verbs");
	assert_int_equal(gn_place(n, 4, &r, &res), -ENODEV);
	assert_int_equal(gn_place(n, 0, &r, &res), -ENODEV);

	/* Free memory. */
	r.transport = 0;
	for (int i = 0; i < 4; i++)
		n[i].memory_used = 900;
	n[3].memory_used = 100;
	r.min_free_memory = 500;
	assert_int_equal(gn_place(n, 4, &r, &res), 0);
	assert_int_equal(res.node, 3);
	r.min_free_memory = 950;
	assert_int_equal(gn_place(n, 4, &r, &res), -EAGAIN);
	assert_non_null(strstr(res.reason, "4 short of 950 free bytes"));
	/* Full nodes. */
	r.min_free_memory = 0;
	for (int i = 0; i < 4; i++)
		n[i].sessions = 10;
	assert_int_equal(gn_place(n, 4, &r, &res), -EAGAIN);
	assert_non_null(strstr(res.reason, "4 full"));
}

static void test_priority_reserve(void **state)
{
	struct gn_place_node n[4];
	struct gn_place_request r;
	struct gn_place_result res;

	(void)state;
	/* 40 slots; priority 0 keeps 4 free, 50 keeps 2, 100 none. */
	make_nodes(n, 4);
	make_req(&r, GN_POLICY_LEAST_LOADED);
	for (int i = 0; i < 4; i++)
		n[i].sessions = 9;
	n[0].sessions = 8; /* 5 free, so priority 0 may take one (4 left) */
	r.priority = 0;
	assert_int_equal(gn_place(n, 4, &r, &res), 0);
	n[0].sessions = 9; /* 4 free: priority 0 refused */
	assert_int_equal(gn_place(n, 4, &r, &res), -EAGAIN);
	assert_non_null(strstr(res.reason, "priority 0"));
	r.priority = 50;
	assert_int_equal(gn_place(n, 4, &r, &res), 0);
	n[0].sessions = n[1].sessions = 10; /* 2 free: 50 refused */
	assert_int_equal(gn_place(n, 4, &r, &res), -EAGAIN);
	r.priority = 100;
	n[2].sessions = 10; /* the last slot: only priority 100 */
	assert_int_equal(gn_place(n, 4, &r, &res), 0);
	assert_int_equal(res.node, 3);
	r.priority = 1000; /* clamped to 100 */
	assert_int_equal(gn_place(n, 4, &r, &res), 0);
}

static void test_fair_share(void **state)
{
	struct gn_place_node n[4];
	struct gn_place_request r;
	struct gn_place_result res;

	(void)state;
	/* 40 slots, 2 tenants: fair share 20 each. */
	make_nodes(n, 4);
	make_req(&r, GN_POLICY_LEAST_LOADED);
	r.active_tenants = 2;
	for (int i = 0; i < 4; i++)
		n[i].sessions = 6; /* 24 used, 16 free: not short */
	r.tenant = "big";
	r.tenant_sessions = 22; /* over its share, but capacity is fine */
	assert_int_equal(gn_place(n, 4, &r, &res), 0);
	assert_non_null(strstr(res.reason, "over its fair share"));
	for (int i = 0; i < 4; i++)
		n[i].sessions = 8; /* 32 used, 8 free: short (< 10) */
	assert_int_equal(gn_place(n, 4, &r, &res), -EAGAIN);
	assert_non_null(strstr(res.reason, "tenant 'big' holds 22 sessions, "
					   "its fair share is 20"));
	/* A tenant below its share still gets one. */
	r.tenant = "small";
	r.tenant_sessions = 10;
	assert_int_equal(gn_place(n, 4, &r, &res), 0);
	assert_null(strstr(res.reason, "fair share"));
	/* A tenant alone in the cluster: its share is everything. */
	r.tenant = "big";
	r.tenant_sessions = 32;
	r.active_tenants = 1;
	assert_int_equal(gn_place(n, 4, &r, &res), 0);
}

static void test_unlimited_and_names(void **state)
{
	struct gn_place_node n[2];
	struct gn_place_request r;
	struct gn_place_result res;
	enum gn_place_policy p;

	(void)state;
	make_nodes(n, 2);
	n[0].max_sessions = n[1].max_sessions = 0;
	n[0].sessions = 1000000;
	make_req(&r, GN_POLICY_LEAST_LOADED);
	r.priority = 0;
	assert_int_equal(gn_place(n, 2, &r, &res), 0);
	assert_int_equal(res.node, 1);
	assert_int_equal(gn_place_policy_parse("bin-packing", &p), 0);
	assert_int_equal(p, GN_POLICY_BIN_PACKING);
	assert_int_equal(gn_place_policy_parse("random", &p), -EINVAL);
	assert_string_equal(gn_place_policy_name(GN_POLICY_MODEL_AFFINITY),
			    "model-affinity");
	assert_int_equal(gn_place_device_bit(""), 0);
	assert_int_equal(gn_place_device_bit("tpu"), GN_DEV_OTHER);
	assert_int_equal(gn_place_transport_bit("tcp"), GN_TP_TCP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_least_loaded),
		cmocka_unit_test(test_bin_packing),
		cmocka_unit_test(test_model_affinity),
		cmocka_unit_test(test_filters),
		cmocka_unit_test(test_priority_reserve),
		cmocka_unit_test(test_fair_share),
		cmocka_unit_test(test_unlimited_and_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
