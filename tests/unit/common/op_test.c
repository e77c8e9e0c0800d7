/*
 * Shape and dtype inference of every op (common/op_infer.c against
 * docs/OPS.md), including the error each op gives for bad input.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gn_error.h"
#include "op.h"

/* Build a meta from a dtype and up to 8 dims listed after the count. */
static struct gn_tensor_meta M(enum gn_dtype dt, int nd, ...) {
	struct gn_tensor_meta m = {.dtype = dt, .ndim = nd};
	va_list ap;

	va_start(ap, nd);
	for (int i = 0; i < nd; i++)
		m.shape[i] = va_arg(ap, int64_t);
	va_end(ap);
	return m;
}

#define F32 GN_DTYPE_F32
#define I64 GN_DTYPE_I64

/* Infer with up to 5 operands; returns rc, output in *out. */
static int
infer(enum gn_op op, struct gn_tensor_meta *out, int nin,
      const struct gn_tensor_meta *ins, const int64_t *ia, int ni,
      const float *fa, int nf)
{
	const struct gn_tensor_meta *p[8];
	struct gn_op_attrs a = {ia, fa, (uint32_t)ni, (uint32_t)nf};

	for (int i = 0; i < nin; i++)
		p[i] = &ins[i];
	gn_error_clear();
	return gn_op_infer(op, p, nin, &a, out);
}

static void expect_shape(const struct gn_tensor_meta *m, enum gn_dtype dt,
			 int nd, const int64_t *shape)
{
	assert_int_equal(m->dtype, dt);
	assert_int_equal(m->ndim, nd);
	for (int i = 0; i < nd; i++)
		assert_int_equal(m->shape[i], shape[i]);
}

/* The error must be -EINVAL and mention every needle. */
static void expect_error(int rc, const char *n1, const char *n2)
{
	assert_int_equal(rc, -EINVAL);
	if (n1 && !strstr(gn_last_error(), n1))
		fail_msg("'%s' lacks '%s'", gn_last_error(), n1);
	if (n2 && !strstr(gn_last_error(), n2))
		fail_msg("'%s' lacks '%s'", gn_last_error(), n2);
}

static void test_elementwise(void **state)
{
	struct gn_tensor_meta o, in[3];
	float clip[2] = {-1, 1}, badclip[2] = {1, -1};
	int64_t gelu1 = 1, gelu9 = 9, cast = GN_DTYPE_F16;

	(void)state;
	in[0] = M(F32, 3, 4LL, 1LL, 3LL);
	in[1] = M(F32, 2, 2LL, 1LL);
	assert_int_equal(infer(GN_OP_ADD, &o, 2, in, NULL, 0, NULL, 0), 0);
	expect_shape(&o, F32, 3, (int64_t[]){4, 2, 3});
	for (int op = GN_OP_SUB; op <= GN_OP_MINIMUM; op++)
		assert_int_equal(infer(op, &o, 2, in, NULL, 0, NULL, 0), 0);
	for (int op = GN_OP_EQ; op <= GN_OP_GE; op++) {
		assert_int_equal(infer(op, &o, 2, in, NULL, 0, NULL, 0), 0);
		assert_int_equal(o.dtype, GN_DTYPE_BOOL);
	}
	in[1] = M(F32, 1, 4LL);
	expect_error(infer(GN_OP_ADD, &o, 2, in, NULL, 0, NULL, 0),
		     "f32[4,1,3]", "f32[4]");
	in[1] = M(I64, 1, 3LL);
	expect_error(infer(GN_OP_MUL, &o, 2, in, NULL, 0, NULL, 0), "i64",
		     NULL);
	/* where: bool condition, three-way broadcast. */
	in[0] = M(GN_DTYPE_BOOL, 2, 2LL, 1LL);
	in[1] = M(F32, 1, 3LL);
	in[2] = M(F32, 0);
	assert_int_equal(infer(GN_OP_WHERE, &o, 3, in, NULL, 0, NULL, 0), 0);
	expect_shape(&o, F32, 2, (int64_t[]){2, 3});
	in[0] = M(F32, 1, 3LL);
	expect_error(infer(GN_OP_WHERE, &o, 3, in, NULL, 0, NULL, 0),
		     "expected bool", NULL);
	/* Unary ops keep the shape; float-only ones refuse integers. */
	in[0] = M(F32, 2, 2LL, 5LL);
	for (int op = GN_OP_SILU; op <= GN_OP_ERF; op++) {
		if (op == GN_OP_HARDSIGMOID)
			continue;
		assert_int_equal(infer(op, &o, 1, in, NULL, 0, NULL, 0), 0);
		expect_shape(&o, F32, 2, (int64_t[]){2, 5});
	}
	assert_int_equal(infer(GN_OP_GELU, &o, 1, in, &gelu1, 1, NULL, 0), 0);
	expect_error(infer(GN_OP_GELU, &o, 1, in, &gelu9, 1, NULL, 0),
		     "approximation", NULL);
	assert_int_equal(infer(GN_OP_HARDSIGMOID, &o, 1, in, NULL, 0, clip, 2),
			 0);
	assert_int_equal(infer(GN_OP_CLIP, &o, 1, in, NULL, 0, clip, 2), 0);
	expect_error(infer(GN_OP_CLIP, &o, 1, in, NULL, 0, badclip, 2), "min",
		     NULL);
	assert_int_equal(infer(GN_OP_CAST, &o, 1, in, &cast, 1, NULL, 0), 0);
	assert_int_equal(o.dtype, GN_DTYPE_F16);
	in[0] = M(I64, 1, 3LL);
	expect_error(infer(GN_OP_EXP, &o, 1, in, NULL, 0, NULL, 0),
		     "float dtype", NULL);
	assert_int_equal(infer(GN_OP_RELU, &o, 1, in, NULL, 0, NULL, 0), 0);
	/* Wrong arity and attribute counts. */
	expect_error(infer(GN_OP_RELU, &o, 2, in, NULL, 0, NULL, 0),
		     "takes 1 operands", NULL);
	expect_error(infer(GN_OP_RELU, &o, 1, in, &gelu1, 1, NULL, 0),
		     "integer attributes", NULL);
	assert_int_equal(infer(GN_OP_INVALID, &o, 0, in, NULL, 0, NULL, 0),
			 -EOPNOTSUPP);
	assert_int_equal(infer((enum gn_op)57, &o, 0, in, NULL, 0, NULL, 0),
			 -EOPNOTSUPP);
}

static void test_matmul_linear(void **state)
{
	struct gn_tensor_meta o, in[3];

	(void)state;
	in[0] = M(F32, 3, 5LL, 2LL, 3LL);
	in[1] = M(F32, 2, 3LL, 4LL);
	assert_int_equal(infer(GN_OP_MATMUL, &o, 2, in, NULL, 0, NULL, 0), 0);
	expect_shape(&o, F32, 3, (int64_t[]){5, 2, 4});
	in[1] = M(F32, 1, 3LL);
	assert_int_equal(infer(GN_OP_MATMUL, &o, 2, in, NULL, 0, NULL, 0), 0);
	expect_shape(&o, F32, 2, (int64_t[]){5, 2});
	in[0] = M(F32, 1, 3LL);
	assert_int_equal(infer(GN_OP_MATMUL, &o, 2, in, NULL, 0, NULL, 0), 0);
	expect_shape(&o, F32, 0, NULL);
	in[0] = M(F32, 2, 2LL, 3LL);
	in[1] = M(F32, 2, 4LL, 5LL);
	expect_error(infer(GN_OP_MATMUL, &o, 2, in, NULL, 0, NULL, 0),
		     "f32[2,3]", "f32[4,5]");
	in[0] = M(F32, 3, 2LL, 7LL, 3LL);
	in[1] = M(F32, 3, 3LL, 3LL, 5LL);
	expect_error(infer(GN_OP_MATMUL, &o, 2, in, NULL, 0, NULL, 0),
		     "broadcast", NULL);
	in[0] = M(F32, 3, 2LL, 7LL, 4LL);
	in[1] = M(F32, 2, 6LL, 4LL);
	in[2] = M(F32, 1, 6LL);
	assert_int_equal(infer(GN_OP_LINEAR, &o, 3, in, NULL, 0, NULL, 0), 0);
	expect_shape(&o, F32, 3, (int64_t[]){2, 7, 6});
	in[2] = M(F32, 1, 5LL);
	expect_error(infer(GN_OP_LINEAR, &o, 3, in, NULL, 0, NULL, 0), "bias",
		     NULL);
}

static void test_conv_pool(void **state)
{
	struct gn_tensor_meta o, in[3];
	int64_t conv[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
	int64_t grp[9] = {2, 2, 1, 1, 1, 1, 2, 2, 2};
	int64_t mp[9] = {3, 3, 2, 2, 1, 1, 1, 1, 0};
	int64_t ap[10] = {3, 3, 2, 2, 1, 1, 1, 1, 1, 0};

	(void)state;
	in[0] = M(F32, 4, 2LL, 3LL, 8LL, 8LL);
	in[1] = M(F32, 4, 4LL, 3LL, 3LL, 3LL);
	in[2] = M(F32, 1, 4LL);
	assert_int_equal(infer(GN_OP_CONV2D, &o, 3, in, conv, 9, NULL, 0), 0);
	expect_shape(&o, F32, 4, (int64_t[]){2, 4, 8, 8});
	/* groups 2, dilation 2, stride 2 on 9x9: (9+2-4-1)/2+1 = 4 */
	in[0] = M(F32, 4, 1LL, 4LL, 9LL, 9LL);
	in[1] = M(F32, 4, 6LL, 2LL, 3LL, 3LL);
	assert_int_equal(infer(GN_OP_CONV2D, &o, 2, in, grp, 9, NULL, 0), 0);
	expect_shape(&o, F32, 4, (int64_t[]){1, 6, 4, 4});
	in[1] = M(F32, 4, 6LL, 3LL, 3LL, 3LL);
	expect_error(infer(GN_OP_CONV2D, &o, 2, in, grp, 9, NULL, 0),
		     "channels", NULL);
	in[0] = M(F32, 4, 2LL, 4LL, 8LL, 8LL);
	assert_int_equal(infer(GN_OP_MAXPOOL2D, &o, 1, in, mp, 9, NULL, 0), 0);
	expect_shape(&o, F32, 4, (int64_t[]){2, 4, 4, 4});
	/* ceil mode: (8+2-3)/2 rounded up + 1 = 5, last window starts at 8
	 * which is inside the padded input (8 < 8+1), so it stays. */
	assert_int_equal(infer(GN_OP_AVGPOOL2D, &o, 1, in, ap, 10, NULL, 0), 0);
	expect_shape(&o, F32, 4, (int64_t[]){2, 4, 5, 5});
	mp[4] = 2; /* pad 2 > kernel/2 */
	expect_error(infer(GN_OP_MAXPOOL2D, &o, 1, in, mp, 9, NULL, 0),
		     "padding", NULL);
	assert_int_equal(
		infer(GN_OP_GLOBAL_AVGPOOL, &o, 1, in, NULL, 0, NULL, 0), 0);
	expect_shape(&o, F32, 4, (int64_t[]){2, 4, 1, 1});
	in[0] = M(F32, 2, 2LL, 4LL);
	expect_error(infer(GN_OP_GLOBAL_AVGPOOL, &o, 1, in, NULL, 0, NULL, 0),
		     "N,C,H,W", NULL);
}

static void test_norm_softmax_sdpa(void **state)
{
	struct gn_tensor_meta o, in[5];
	float eps = 1e-5f, scale = 0;
	int64_t one = 1, two = 2, ax = 1, bad = 3, causal = 1;

	(void)state;
	in[0] = M(F32, 4, 2LL, 3LL, 4LL, 4LL);
	for (int i = 1; i < 5; i++)
		in[i] = M(F32, 1, 3LL);
	assert_int_equal(infer(GN_OP_BATCHNORM, &o, 5, in, NULL, 0, &eps, 1),
			 0);
	in[4] = M(F32, 1, 4LL);
	expect_error(infer(GN_OP_BATCHNORM, &o, 5, in, NULL, 0, &eps, 1),
		     "operand 4", NULL);
	in[0] = M(F32, 3, 2LL, 5LL, 8LL);
	in[1] = in[2] = M(F32, 1, 8LL);
	assert_int_equal(infer(GN_OP_LAYERNORM, &o, 3, in, &one, 1, &eps, 1),
			 0);
	expect_error(infer(GN_OP_LAYERNORM, &o, 3, in, &two, 1, &eps, 1),
		     "last 2 dims", NULL);
	assert_int_equal(infer(GN_OP_SOFTMAX, &o, 1, in, &ax, 1, NULL, 0), 0);
	expect_error(infer(GN_OP_LOG_SOFTMAX, &o, 1, in, &bad, 1, NULL, 0),
		     "axis 3", NULL);
	in[0] = M(F32, 4, 2LL, 2LL, 5LL, 8LL);
	in[1] = M(F32, 4, 2LL, 2LL, 6LL, 8LL);
	in[2] = M(F32, 4, 2LL, 2LL, 6LL, 3LL);
	in[3] = M(GN_DTYPE_BOOL, 2, 5LL, 6LL);
	assert_int_equal(infer(GN_OP_SDPA, &o, 4, in, &causal, 1, &scale, 1),
			 0);
	expect_shape(&o, F32, 4, (int64_t[]){2, 2, 5, 3});
	in[3] = M(GN_DTYPE_BOOL, 2, 6LL, 6LL);
	expect_error(infer(GN_OP_SDPA, &o, 4, in, &causal, 1, &scale, 1),
		     "d is bool[6,6]", NULL);
	in[1] = M(F32, 4, 2LL, 2LL, 6LL, 7LL);
	expect_error(infer(GN_OP_SDPA, &o, 3, in, &causal, 1, &scale, 1),
		     "feature", NULL);
}

static void test_reduce_index(void **state)
{
	struct gn_tensor_meta o, in[2];
	int64_t r[3] = {0, 0, 2}, rk[2] = {1, 1}, rdup[3] = {0, 1, 1};
	int64_t am[2] = {2, 0}, mode = 1, badmode = 5, axis = 1;

	(void)state;
	in[0] = M(F32, 3, 2LL, 3LL, 4LL);
	assert_int_equal(infer(GN_OP_REDUCE_SUM, &o, 1, in, r, 3, NULL, 0), 0);
	expect_shape(&o, F32, 1, (int64_t[]){3});
	assert_int_equal(infer(GN_OP_REDUCE_MEAN, &o, 1, in, rk, 2, NULL, 0),
			 0);
	expect_shape(&o, F32, 3, (int64_t[]){2, 1, 4});
	assert_int_equal(infer(GN_OP_REDUCE_MAX, &o, 1, in, rk, 1, NULL, 0), 0);
	expect_shape(&o, F32, 3, (int64_t[]){1, 1, 1});
	expect_error(infer(GN_OP_REDUCE_SUM, &o, 1, in, rdup, 3, NULL, 0),
		     "twice", NULL);
	assert_int_equal(infer(GN_OP_ARGMAX, &o, 1, in, am, 2, NULL, 0), 0);
	expect_shape(&o, I64, 2, (int64_t[]){2, 3});
	in[0] = M(F32, 2, 10LL, 6LL);
	in[1] = M(I64, 2, 2LL, 3LL);
	assert_int_equal(infer(GN_OP_EMBEDDING, &o, 2, in, NULL, 0, NULL, 0),
			 0);
	expect_shape(&o, F32, 3, (int64_t[]){2, 3, 6});
	assert_int_equal(
		infer(GN_OP_EMBEDDING_BAG, &o, 2, in, &mode, 1, NULL, 0), 0);
	expect_shape(&o, F32, 2, (int64_t[]){2, 6});
	expect_error(
		infer(GN_OP_EMBEDDING_BAG, &o, 2, in, &badmode, 1, NULL, 0),
		"mode", NULL);
	assert_int_equal(infer(GN_OP_GATHER, &o, 2, in, &axis, 1, NULL, 0), 0);
	expect_shape(&o, F32, 3, (int64_t[]){10, 2, 3});
	in[1] = M(F32, 1, 3LL);
	expect_error(infer(GN_OP_GATHER, &o, 2, in, &axis, 1, NULL, 0),
		     "i64 or i32", NULL);
}

static void test_shape_ops(void **state)
{
	struct gn_tensor_meta o, in[3];
	int64_t rs[2] = {4, -1}, rs0[3] = {0, -1, 2}, rsbad[2] = {5, -1};
	int64_t perm[3] = {2, 0, 1}, permbad[3] = {0, 0, 1};
	int64_t sl[4] = {1, 1, 3, 1}, slbad[4] = {1, 2, 9, 1};
	int64_t ex[3] = {5, -1, 4}, exbad[2] = {3, 5}, sq[1] = {1}, us = 3;
	int64_t cat = 1;

	(void)state;
	in[0] = M(F32, 3, 2LL, 3LL, 4LL);
	assert_int_equal(infer(GN_OP_RESHAPE, &o, 1, in, rs, 2, NULL, 0), 0);
	expect_shape(&o, F32, 2, (int64_t[]){4, 6});
	assert_int_equal(infer(GN_OP_RESHAPE, &o, 1, in, rs0, 3, NULL, 0), 0);
	expect_shape(&o, F32, 3, (int64_t[]){2, 6, 2});
	expect_error(infer(GN_OP_RESHAPE, &o, 1, in, rsbad, 2, NULL, 0), "-1",
		     NULL);
	assert_int_equal(infer(GN_OP_PERMUTE, &o, 1, in, perm, 3, NULL, 0), 0);
	expect_shape(&o, F32, 3, (int64_t[]){4, 2, 3});
	expect_error(infer(GN_OP_PERMUTE, &o, 1, in, permbad, 3, NULL, 0),
		     "twice", NULL);
	assert_int_equal(infer(GN_OP_SLICE, &o, 1, in, sl, 4, NULL, 0), 0);
	expect_shape(&o, F32, 3, (int64_t[]){2, 2, 4});
	expect_error(infer(GN_OP_SLICE, &o, 1, in, slbad, 4, NULL, 0), "slice",
		     NULL);
	in[0] = M(F32, 2, 1LL, 4LL);
	assert_int_equal(infer(GN_OP_EXPAND, &o, 1, in, ex, 3, NULL, 0), 0);
	expect_shape(&o, F32, 3, (int64_t[]){5, 1, 4});
	expect_error(infer(GN_OP_EXPAND, &o, 1, in, exbad, 2, NULL, 0),
		     "expand", NULL);
	in[0] = M(F32, 3, 2LL, 1LL, 4LL);
	assert_int_equal(infer(GN_OP_SQUEEZE, &o, 1, in, sq, 1, NULL, 0), 0);
	expect_shape(&o, F32, 2, (int64_t[]){2, 4});
	sq[0] = 0;
	expect_error(infer(GN_OP_SQUEEZE, &o, 1, in, sq, 1, NULL, 0), "size 2",
		     NULL);
	assert_int_equal(infer(GN_OP_UNSQUEEZE, &o, 1, in, &us, 1, NULL, 0), 0);
	expect_shape(&o, F32, 4, (int64_t[]){2, 1, 4, 1});
	in[1] = M(F32, 3, 2LL, 5LL, 4LL);
	in[2] = M(F32, 3, 2LL, 2LL, 4LL);
	assert_int_equal(infer(GN_OP_CONCAT, &o, 3, in, &cat, 1, NULL, 0), 0);
	expect_shape(&o, F32, 3, (int64_t[]){2, 8, 4});
	in[2] = M(F32, 3, 3LL, 2LL, 4LL);
	expect_error(infer(GN_OP_CONCAT, &o, 3, in, &cat, 1, NULL, 0),
		     "operand 2", NULL);
}

static void test_sources(void **state)
{
	struct gn_tensor_meta o;
	int64_t fill[3] = {GN_DTYPE_F32, 2, 3}, ar[2] = {GN_DTYPE_I64, 10};
	int64_t rnd[4] = {GN_DTYPE_F32, 42, 4, 4},
		rndi[3] = {GN_DTYPE_I32, 1, 4};
	float v = 1, two[2] = {0, 1}, neg[2] = {0, -1};

	(void)state;
	assert_int_equal(infer(GN_OP_FILL, &o, 0, NULL, fill, 3, &v, 1), 0);
	expect_shape(&o, F32, 2, (int64_t[]){2, 3});
	assert_int_equal(infer(GN_OP_ARANGE, &o, 0, NULL, ar, 2, two, 2), 0);
	expect_shape(&o, I64, 1, (int64_t[]){10});
	assert_int_equal(infer(GN_OP_RAND_NORMAL, &o, 0, NULL, rnd, 4, two, 2),
			 0);
	expect_shape(&o, F32, 2, (int64_t[]){4, 4});
	expect_error(infer(GN_OP_RAND_NORMAL, &o, 0, NULL, rnd, 4, neg, 2),
		     "std", NULL);
	expect_error(infer(GN_OP_RAND_UNIFORM, &o, 0, NULL, rndi, 3, two, 2),
		     "float dtype", NULL);
	fill[0] = 99;
	expect_error(infer(GN_OP_FILL, &o, 0, NULL, fill, 3, &v, 1), "dtype",
		     NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_elementwise),
		cmocka_unit_test(test_matmul_linear),
		cmocka_unit_test(test_conv_pool),
		cmocka_unit_test(test_norm_softmax_sdpa),
		cmocka_unit_test(test_reduce_index),
		cmocka_unit_test(test_shape_ops),
		cmocka_unit_test(test_sources),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
