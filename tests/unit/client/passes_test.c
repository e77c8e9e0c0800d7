/*
 * The graph IR and its passes (client/graph/): each pass has a test that
 * fails if the pass is left out of gn_graph_optimize(); plus ordering,
 * cycles, fingerprints, DOT and the plan round trip.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"
#include "genie/plan.pb-c.h"
#include "gn_error.h"
#include "graph.h"
#include "plan.h"

static struct gn_tensor_meta vec(int64_t n)
{
	struct gn_tensor_meta m = {.dtype = GN_DTYPE_F32, .ndim = 1};

	m.shape[0] = n;
	return m;
}

static uint8_t g_h1[16] = {1}, g_h2[16] = {2};
static float g_x[4] = {1, -2, 3, -4}, g_y[4] = {5, 6, 7, 8};

static uint32_t input(struct gn_graph *g, const uint8_t *h, const float *d)
{
	struct gn_tensor_meta m = vec(4);
	uint32_t i = gn_graph_add(g, GN_OP_INPUT, NULL, 0, NULL, &m);

	g->nodes[i].handle = h;
	g->nodes[i].data = d;
	return i;
}

static uint32_t op(struct gn_graph *g, enum gn_op o, uint32_t a, uint32_t b)
{
	struct gn_tensor_meta m = vec(4);
	uint32_t in[2] = {a, b};

	return gn_graph_add(g, o, in, b == GN_GRAPH_NONE ? 1 : 2, NULL, &m);
}

static uint32_t fill(struct gn_graph *g, float v)
{
	struct gn_tensor_meta m = vec(4);
	int64_t ia[2] = {GN_DTYPE_F32, 4};
	struct gn_op_attrs a = {ia, &v, 2, 1};

	return gn_graph_add(g, GN_OP_FILL, NULL, 0, &a, &m);
}

static uint32_t count_op(const struct gn_graph *g, enum gn_op o)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < g->n; i++)
		n += g->nodes[i].op == o && !(g->nodes[i].flags & GN_NODE_DEAD);
	return n;
}

static void test_toposort_and_cycles(void **state)
{
	struct gn_graph *g = gn_graph_create();
	struct gn_tensor_meta m = vec(4);
	uint32_t in_relu[1] = {2}, in_add[2] = {0, 2};

	(void)state;
	/* Listed users first: add(x, relu(x)) with x last. */
	gn_graph_add(g, GN_OP_ADD, in_add, 2, NULL, &m); /* 0: add(1?, 2) */
	g->nodes[0].in[0] = 1;
	gn_graph_add(g, GN_OP_RELU, in_relu, 1, NULL, &m); /* 1: relu(2) */
	input(g, g_h1, g_x);				   /* 2: x */
	gn_graph_add_output(g, 0);
	assert_int_equal(gn_graph_toposort(g), 0);
	assert_int_equal(g->nodes[0].op, GN_OP_INPUT);
	assert_int_equal(g->nodes[1].op, GN_OP_RELU);
	assert_int_equal(g->nodes[2].op, GN_OP_ADD);
	assert_int_equal(g->outputs[0], 2);
	for (uint32_t i = 0; i < g->n; i++)
		for (uint32_t k = 0; k < g->nodes[i].nin; k++)
			assert_true(g->nodes[i].in[k] < i);
	/* A cycle: relu(add), add(relu, x). */
	g->nodes[1].in[0] = 2;
	assert_int_equal(gn_graph_toposort(g), -EINVAL);
	assert_non_null(strstr(gn_last_error(), "cycle"));
	gn_graph_destroy(&g);
	assert_null(g);
}

static void test_dce(void **state)
{
	for (int on = 0; on < 2; on++) {
		struct gn_graph *g = gn_graph_create();
		uint32_t x = input(g, g_h1, g_x);

		(void)state;
		op(g, GN_OP_EXP, x, GN_GRAPH_NONE); /* unused */
		gn_graph_add_output(g, op(g, GN_OP_RELU, x, GN_GRAPH_NONE));
		assert_int_equal(gn_graph_optimize(g, on ? GN_PASS_DCE : 0, 0),
				 0);
		assert_int_equal(count_op(g, GN_OP_EXP), on ? 0 : 1);
		assert_int_equal(g->n, on ? 2u : 3u);
		/* Indices were rewritten: the output is the relu. */
		assert_int_equal(g->nodes[g->outputs[0]].op, GN_OP_RELU);
		gn_graph_destroy(&g);
	}
}

static void test_cse(void **state)
{
	for (int on = 0; on < 2; on++) {
		struct gn_graph *g = gn_graph_create();
		uint32_t x = input(g, g_h1, g_x), x2 = input(g, g_h1, g_x);
		uint32_t y = input(g, g_h2, g_y);
		uint32_t r1 = op(g, GN_OP_RELU, x, GN_GRAPH_NONE);
		uint32_t r2 = op(g, GN_OP_RELU, x2, GN_GRAPH_NONE);
		uint32_t a1 = op(g, GN_OP_ADD, r1, y);
		uint32_t a2 = op(g, GN_OP_ADD, y, r2); /* commuted */
		uint32_t ry = op(g, GN_OP_RELU, y, GN_GRAPH_NONE);

		(void)state;
		gn_graph_add_output(g, op(g, GN_OP_MUL, a1, a2));
		gn_graph_add_output(g, ry);
		assert_int_equal(gn_graph_optimize(g, on ? GN_PASS_CSE : 0, 0),
				 0);
		/* Same handle merges; relu(x) and relu(y) stay distinct. */
		assert_int_equal(count_op(g, GN_OP_INPUT), on ? 2 : 3);
		assert_int_equal(count_op(g, GN_OP_RELU), on ? 2 : 3);
		assert_int_equal(count_op(g, GN_OP_ADD), on ? 1 : 2);
		gn_graph_destroy(&g);
	}
}

static void test_cse_keeps_different_attrs(void **state)
{
	struct gn_graph *g = gn_graph_create();

	(void)state;
	gn_graph_add_output(g, op(g, GN_OP_ADD, fill(g, 1), fill(g, 2)));
	assert_int_equal(gn_graph_optimize(g, GN_PASS_CSE, 0), 0);
	assert_int_equal(count_op(g, GN_OP_FILL), 2);
	gn_graph_destroy(&g);
}

static void test_constant_folding(void **state)
{
	for (int on = 0; on < 2; on++) {
		struct gn_graph *g = gn_graph_create();
		uint32_t x = input(g, g_h1, g_x);
		uint32_t c = op(g, GN_OP_ADD, fill(g, 2), fill(g, 3));
		const float *v;

		(void)state;
		gn_graph_add_output(g, op(g, GN_OP_ADD, x, c));
		/* User inputs are not constants: relu(x) stays lazy. */
		gn_graph_add_output(g, op(g, GN_OP_RELU, x, GN_GRAPH_NONE));
		assert_int_equal(
			gn_graph_optimize(g,
					  on ? GN_PASS_FOLD | GN_PASS_DCE
					     : GN_PASS_DCE,
					  1024),
			0);
		assert_int_equal(count_op(g, GN_OP_FILL), on ? 0 : 2);
		assert_int_equal(count_op(g, GN_OP_ADD), on ? 1 : 2);
		assert_int_equal(count_op(g, GN_OP_RELU), 1);
		if (on) {
			/* The folded constant is an input holding 5s. */
			const struct gn_graph_node *add =
				&g->nodes[g->outputs[0]];
			const struct gn_graph_node *k = &g->nodes[add->in[1]];

			assert_int_equal(k->op, GN_OP_INPUT);
			assert_true(k->flags & GN_NODE_CONSTANT);
			assert_non_null(k->handle);
			v = k->data;
			for (int i = 0; i < 4; i++)
				assert_true(v[i] == 5.0f);
		}
		gn_graph_destroy(&g);
	}
}

static void test_folding_respects_max_bytes(void **state)
{
	struct gn_graph *g = gn_graph_create();

	(void)state;
	gn_graph_add_output(g, op(g, GN_OP_ADD, fill(g, 2), fill(g, 3)));
	/* 16 bytes of result, cap 8: left to the target. */
	assert_int_equal(gn_graph_optimize(g, GN_PASS_FOLD | GN_PASS_DCE, 8),
			 0);
	assert_int_equal(count_op(g, GN_OP_ADD), 1);
	assert_int_equal(count_op(g, GN_OP_FILL), 2);
	gn_graph_destroy(&g);
}

static void test_elementwise_grouping(void **state)
{
	for (int on = 0; on < 2; on++) {
		struct gn_graph *g = gn_graph_create();
		uint32_t x = input(g, g_h1, g_x), y = input(g, g_h2, g_y);
		uint32_t a = op(g, GN_OP_ADD, x, y);
		uint32_t r = op(g, GN_OP_RELU, a, GN_GRAPH_NONE);
		uint32_t e = op(g, GN_OP_EXP, y, GN_GRAPH_NONE); /* 2 users */
		uint32_t s1 = op(g, GN_OP_SIGMOID, e, GN_GRAPH_NONE);
		uint32_t s2 = op(g, GN_OP_TANH, e, GN_GRAPH_NONE);
		uint32_t n;

		(void)state;
		gn_graph_add_output(g, r);
		gn_graph_add_output(g, s1);
		gn_graph_add_output(g, s2);
		assert_int_equal(gn_graph_optimize(g, on ? GN_PASS_FUSE : 0, 0),
				 0);
		assert_int_equal(g->nodes[a].group != 0, on);
		assert_int_equal(g->nodes[a].group, g->nodes[r].group);
		/* exp has two users: nothing fuses across it. */
		assert_int_equal(g->nodes[e].group, 0);
		assert_int_equal(g->nodes[s1].group, 0);
		assert_int_equal(gn_pass_group_elementwise(g, &n), 0);
		assert_int_equal(n, 1);
		gn_graph_destroy(&g);
	}
}

/* relu(x + c) with a given size, handle, data and fill value. */
static uint64_t fp_of(int64_t n, const uint8_t *h, const float *d, float c,
		      enum gn_op last)
{
	struct gn_graph *g = gn_graph_create();
	struct gn_tensor_meta m = vec(n);
	int64_t ia[2] = {GN_DTYPE_F32, n};
	struct gn_op_attrs a = {ia, &c, 2, 1};
	uint32_t x = gn_graph_add(g, GN_OP_INPUT, NULL, 0, NULL, &m);
	uint32_t f = gn_graph_add(g, GN_OP_FILL, NULL, 0, &a, &m);
	uint32_t in[2] = {x, f}, s;
	uint64_t fp;

	g->nodes[x].handle = h;
	g->nodes[x].data = d;
	s = gn_graph_add(g, GN_OP_ADD, in, 2, NULL, &m);
	gn_graph_add_output(g, gn_graph_add(g, last, &s, 1, NULL, &m));
	fp = gn_graph_fingerprint(g);
	gn_graph_destroy(&g);
	return fp;
}

static void test_fingerprint(void **state)
{
	uint64_t base = fp_of(4, g_h1, g_x, 1, GN_OP_RELU);

	(void)state;
	/* Other values and handles: same key. */
	assert_true(fp_of(4, g_h2, g_y, 1, GN_OP_RELU) == base);
	/* Other shape, attribute or op: other key. */
	assert_true(fp_of(5, g_h1, g_x, 1, GN_OP_RELU) != base);
	assert_true(fp_of(4, g_h1, g_x, 2, GN_OP_RELU) != base);
	assert_true(fp_of(4, g_h1, g_x, 1, GN_OP_EXP) != base);
}

static void test_dot(void **state)
{
	struct gn_graph *g = gn_graph_create();
	uint32_t x = input(g, g_h1, g_x), y = input(g, g_h2, g_y);
	char buf[4096] = "";
	FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");

	(void)state;
	gn_graph_add_output(
		g, op(g, GN_OP_RELU, op(g, GN_OP_ADD, x, y), GN_GRAPH_NONE));
	assert_int_equal(gn_graph_optimize(g, GN_PASS_ALL, 0), 0);
	assert_int_equal(gn_graph_write_dot(g, f), 0);
	fclose(f);
	assert_non_null(strstr(buf, "digraph genie"));
	assert_non_null(strstr(buf, "relu f32[4]"));
	assert_non_null(strstr(buf, "n2 -> n3"));
	assert_non_null(strstr(buf, "cluster_1"));
	gn_graph_destroy(&g);
}

static void test_plan_round_trip(void **state)
{
	struct gn_graph *g = gn_graph_create();
	struct gn_arena *a = gn_arena_create(0);
	uint32_t x = input(g, g_h1, g_x), y = input(g, g_h2, g_y);
	Genie__Plan plan, *back;
	struct gn_plan *dec = NULL;
	uint8_t *buf;
	size_t len;

	(void)state;
	gn_graph_add_output(
		g, op(g, GN_OP_MUL, op(g, GN_OP_ADD, x, y), fill(g, 0.5f)));
	assert_int_equal(gn_plan_from_graph(g, a, &plan), 0);
	assert_int_equal(plan.fingerprint, gn_graph_fingerprint(g));
	len = genie__plan__get_packed_size(&plan);
	buf = malloc(len);
	genie__plan__pack(&plan, buf);
	back = (Genie__Plan *)gn_pb_unpack(&genie__plan__descriptor, buf, len,
					   1 << 20);
	assert_non_null(back);
	assert_int_equal(gn_plan_decode(back, &dec), 0);
	assert_int_equal(dec->nnodes, g->n);
	assert_int_equal(dec->fingerprint, plan.fingerprint);
	for (uint32_t i = 0; i < g->n; i++) {
		assert_int_equal(dec->nodes[i].op, g->nodes[i].op);
		assert_int_equal(dec->nodes[i].nin, g->nodes[i].nin);
		assert_true(
			gn_meta_equal(&dec->nodes[i].meta, &g->nodes[i].meta));
		assert_int_equal(dec->nodes[i].attrs.ni, g->nodes[i].attrs.ni);
		if (g->nodes[i].op == GN_OP_INPUT)
			assert_memory_equal(dec->nodes[i].handle,
					    g->nodes[i].handle, 16);
	}
	/* Corrupt the packed plan in every byte: never a crash, always a
	 * clean result or a worded error. */
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			struct gn_plan *p = NULL;
			Genie__Plan *m;

			buf[i] ^= (uint8_t)(1u << bit);
			gn_error_clear();
			m = (Genie__Plan *)gn_pb_unpack(
				&genie__plan__descriptor, buf, len, 1 << 20);
			if (m != NULL) {
				int rc = gn_plan_decode(m, &p);

				if (rc != 0)
					assert_true(strlen(gn_last_error()) >
						    0);
				gn_plan_free(&p);
				protobuf_c_message_free_unpacked(&m->base,
								 NULL);
			} else {
				assert_true(strlen(gn_last_error()) > 0);
			}
			buf[i] ^= (uint8_t)(1u << bit);
		}
	}
	gn_plan_free(&dec);
	protobuf_c_message_free_unpacked(&back->base, NULL);
	free(buf);
	gn_arena_destroy(&a);
	gn_graph_destroy(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_toposort_and_cycles),
		cmocka_unit_test(test_dce),
		cmocka_unit_test(test_cse),
		cmocka_unit_test(test_cse_keeps_different_attrs),
		cmocka_unit_test(test_constant_folding),
		cmocka_unit_test(test_folding_respects_max_bytes),
		cmocka_unit_test(test_elementwise_grouping),
		cmocka_unit_test(test_fingerprint),
		cmocka_unit_test(test_dot),
		cmocka_unit_test(test_plan_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
