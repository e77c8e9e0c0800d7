/*
 * The SQLite state store (coordinator/state.c): nodes, sessions,
 * placements and tenants written in transactions come back from a fresh
 * open of the same file; a rolled-back change does not; deletes stick.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "state.h"

struct seen {
	int nodes, sessions;
	char node_ids[8][32];
	uint8_t regs[8][16];
	size_t reg_lens[8];
	bool drained[8];
	uint64_t session_ids[8];
	char session_nodes[8][32];
	char tenants[8][32];
	uint32_t prios[8];
	int64_t created[8];
};

static int on_node(void *arg, const char *id, const uint8_t *reg, size_t len,
		   bool drained)
{
	struct seen *s = arg;

	assert_true(s->nodes < 8 && len <= 16);
	snprintf(s->node_ids[s->nodes], 32, "%s", id);
	memcpy(s->regs[s->nodes], reg, len);
	s->reg_lens[s->nodes] = len;
	s->drained[s->nodes] = drained;
	s->nodes++;
	return 0;
}

static int on_session(void *arg, const struct gn_state_session *ss)
{
	struct seen *s = arg;
	int i = s->sessions++;

	assert_true(i < 8);
	s->session_ids[i] = ss->session_id;
	snprintf(s->session_nodes[i], 32, "%s", ss->node_id);
	snprintf(s->tenants[i], 32, "%s", ss->tenant);
	s->prios[i] = ss->priority;
	s->created[i] = ss->created_ms;
	return 0;
}

static void test_round_trip(void **state)
{
	char dir[] = "/tmp/genie-state-XXXXXX", path[128], cmd[160];
	struct gn_coord_state *st = NULL;
	struct gn_state_loader ld = {.node = on_node, .session = on_session};
	struct seen seen;
	const uint8_t reg_a[] = {1, 2, 3}, reg_b[] = {9, 8, 7, 6};
	struct gn_state_session s1 = {7, "node-a", "alice", 50, 1700000000001};
	struct gn_state_session s2 = {8, "node-b", "bob", 0, 1700000000002};
	struct gn_state_session s3 = {9, "node-b", "carol", 100, 3};

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state.sqlite", dir);
	assert_int_equal(gn_coord_state_open(path, &st), 0);
	assert_int_equal(gn_coord_state_begin(st), 0);
	assert_int_equal(gn_coord_state_put_node(st, "node-a", reg_a, 3, false),
			 0);
	assert_int_equal(gn_coord_state_put_node(st, "node-b", reg_b, 4, false),
			 0);
	assert_int_equal(gn_coord_state_commit(st), 0);
	/* Drain node-b: an update of the same row. */
	assert_int_equal(gn_coord_state_begin(st), 0);
	assert_int_equal(gn_coord_state_put_node(st, "node-b", reg_b, 4, true),
			 0);
	assert_int_equal(gn_coord_state_commit(st), 0);
	for (int i = 0; i < 3; i++) {
		struct gn_state_session *s = i == 0 ? &s1 : i == 1 ? &s2 : &s3;

		assert_int_equal(gn_coord_state_begin(st), 0);
		assert_int_equal(gn_coord_state_put_session(st, s), 0);
		assert_int_equal(gn_coord_state_add_placement(
					 st, s->session_id, s->node_id,
					 s->tenant, "least-loaded", "why", 5),
				 0);
		assert_int_equal(gn_coord_state_put_tenant(st, s->tenant, 1, 1),
				 0);
		assert_int_equal(gn_coord_state_commit(st), 0);
	}
	/* Released: gone. */
	assert_int_equal(gn_coord_state_begin(st), 0);
	assert_int_equal(gn_coord_state_del_session(st, 9), 0);
	assert_int_equal(gn_coord_state_commit(st), 0);
	/* Rolled back: never happened. */
	assert_int_equal(gn_coord_state_begin(st), 0);
	assert_int_equal(gn_coord_state_del_session(st, 7), 0);
	gn_coord_state_rollback(st);
	assert_int_equal(gn_coord_state_placements(st), 3);
	gn_coord_state_close(&st);
	assert_null(st);
	gn_coord_state_close(&st); /* NULL is a no-op */

	assert_int_equal(gn_coord_state_open(path, &st), 0);
	memset(&seen, 0, sizeof(seen));
	ld.arg = &seen;
	assert_int_equal(gn_coord_state_load(st, &ld), 0);
	assert_int_equal(seen.nodes, 2);
	assert_string_equal(seen.node_ids[0], "node-a");
	assert_int_equal(seen.reg_lens[0], 3);
	assert_memory_equal(seen.regs[0], reg_a, 3);
	assert_false(seen.drained[0]);
	assert_string_equal(seen.node_ids[1], "node-b");
	assert_memory_equal(seen.regs[1], reg_b, 4);
	assert_true(seen.drained[1]);
	assert_int_equal(seen.sessions, 2);
	assert_int_equal(seen.session_ids[0], 7);
	assert_string_equal(seen.session_nodes[0], "node-a");
	assert_string_equal(seen.tenants[0], "alice");
	assert_int_equal(seen.prios[0], 50);
	assert_int_equal(seen.created[0], 1700000000001);
	assert_int_equal(seen.session_ids[1], 8);
	assert_string_equal(seen.tenants[1], "bob");
	assert_int_equal(gn_coord_state_placements(st), 3);
	/* Session 9 was released, but its id stays used. */
	assert_int_equal(gn_coord_state_last_session(st), 9);
	gn_coord_state_close(&st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_open_fails_clearly(void **state)
{
	struct gn_coord_state *st = NULL;

	(void)state;
	assert_int_equal(
		gn_coord_state_open("/nonexistent-dir/x/state.sqlite", &st),
		-EIO);
	assert_null(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_open_fails_clearly),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
