/*
 * Tensor metadata (common/tensor_meta.c): dtype sizes and names, checks,
 * formatting; and the inference of the ops every model starts with
 * (matmul, add, relu) whose errors are built from that formatting.
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
#include "tensor_meta.h"

#define F32 GN_DTYPE_F32

/* A meta of `dt` with `nd` dims given after it. */
static struct gn_tensor_meta meta(enum gn_dtype dt, int nd, ...)
{
	struct gn_tensor_meta m;
	va_list ap;

	memset(&m, 0, sizeof(m));
	m.dtype = dt;
	m.ndim = nd;
	va_start(ap, nd);
	for (int i = 0; i < nd && i < GN_MAX_DIMS; i++)
		m.shape[i] = va_arg(ap, int64_t);
	va_end(ap);
	return m;
}

/* gn_meta_format into a static buffer, for comparisons. */
static const char *fmt(const struct gn_tensor_meta *m)
{
	static char buf[4][96];
	static int k;

	k = (k + 1) % 4;
	return gn_meta_format(m, buf[k], sizeof(buf[k]));
}

static void expect_detail(const char *needle)
{
	if (strstr(gn_last_error(), needle) == NULL)
		fail_msg("detail '%s' does not contain '%s'", gn_last_error(),
			 needle);
}

static int infer2(enum gn_op op, struct gn_tensor_meta a,
		  struct gn_tensor_meta b, struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *in[2] = {&a, &b};

	gn_error_clear();
	return gn_op_infer(op, in, 2, NULL, out);
}

static int infer1(enum gn_op op, struct gn_tensor_meta a,
		  struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *in[1] = {&a};

	gn_error_clear();
	return gn_op_infer(op, in, 1, NULL, out);
}

/* Assert `out` formats as `want` ("f32[2,3]"). */
static void expect_meta(const struct gn_tensor_meta *out, const char *want)
{
	assert_string_equal(fmt(out), want);
}

/* ---- Metadata --------------------------------------------------------- */

static void test_dtype_sizes_and_names(void **state)
{
	static const struct {
		enum gn_dtype dt;
		size_t size;
		const char *name;
	} dts[] = {
		{GN_DTYPE_F32, 4, "f32"},   {GN_DTYPE_F16, 2, "f16"},
		{GN_DTYPE_BF16, 2, "bf16"}, {GN_DTYPE_I64, 8, "i64"},
		{GN_DTYPE_I32, 4, "i32"},   {GN_DTYPE_I8, 1, "i8"},
		{GN_DTYPE_U8, 1, "u8"},	    {GN_DTYPE_BOOL, 1, "bool"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(dts) / sizeof(dts[0]); i++) {
		assert_int_equal(gn_dtype_size(dts[i].dt), dts[i].size);
		assert_string_equal(gn_dtype_name(dts[i].dt), dts[i].name);
	}
	assert_int_equal(gn_dtype_size(GN_DTYPE_INVALID), 0);
	assert_int_equal(gn_dtype_size((enum gn_dtype)9), 0);
	assert_int_equal(gn_dtype_size((enum gn_dtype) - 1), 0);
	assert_int_equal(gn_dtype_size((enum gn_dtype)1000), 0);
	assert_string_equal(gn_dtype_name(GN_DTYPE_INVALID), "invalid");
	assert_string_equal(gn_dtype_name((enum gn_dtype)9), "invalid");
	assert_string_equal(gn_dtype_name((enum gn_dtype) - 1), "invalid");
}

static void test_numel_nbytes_format_equal(void **state)
{
	struct gn_tensor_meta s = meta(F32, 0);
	struct gn_tensor_meta m = meta(F32, 2, 2LL, 3LL);
	struct gn_tensor_meta z = meta(GN_DTYPE_BF16, 2, 0LL, 4LL);
	struct gn_tensor_meta l = meta(GN_DTYPE_I64, 3, 5LL, 1LL, 7LL);
	char small[6];

	(void)state;
	assert_int_equal(gn_meta_numel(&s), 1);
	assert_int_equal(gn_meta_nbytes(&s), 4);
	assert_int_equal(gn_meta_numel(&m), 6);
	assert_int_equal(gn_meta_nbytes(&m), 24);
	assert_int_equal(gn_meta_numel(&z), 0);
	assert_int_equal(gn_meta_nbytes(&z), 0);
	assert_int_equal(gn_meta_nbytes(&l), 35 * 8);

	expect_meta(&s, "f32[]");
	expect_meta(&m, "f32[2,3]");
	expect_meta(&z, "bf16[0,4]");
	expect_meta(&l, "i64[5,1,7]");
	/* A short buffer truncates and stays terminated. */
	assert_string_equal(gn_meta_format(&l, small, sizeof(small)), "i64[5");

	assert_true(gn_meta_equal(&m, &m));
	assert_false(gn_meta_equal(&m, &z));
	z = m;
	z.dtype = GN_DTYPE_F16;
	assert_false(gn_meta_equal(&m, &z));
	z = m;
	z.shape[1] = 4;
	assert_false(gn_meta_equal(&m, &z));
	z = m;
	z.shape[5] = 99; /* beyond ndim: not part of the value */
	assert_true(gn_meta_equal(&m, &z));
}

static void test_meta_check(void **state)
{
	struct gn_tensor_meta m;

	(void)state;
	m = meta(F32, 2, 2LL, 3LL);
	assert_int_equal(gn_meta_check(&m, "x"), 0);
	m = meta(F32, 0);
	assert_int_equal(gn_meta_check(&m, "x"), 0);
	m = meta(F32, 8, 1LL, 1LL, 1LL, 1LL, 1LL, 1LL, 1LL, 2LL);
	assert_int_equal(gn_meta_check(&m, "x"), 0);
	m = meta(F32, 2, 0LL, 3LL);
	assert_int_equal(gn_meta_check(&m, "x"), 0);

	/* Unknown dtype. */
	m = meta(GN_DTYPE_INVALID, 1, 2LL);
	assert_int_equal(gn_meta_check(&m, "operand a"), -EINVAL);
	assert_int_equal(gn_last_error_code(), -EINVAL);
	expect_detail("operand a");
	expect_detail("dtype 0");
	m = meta((enum gn_dtype)9, 1, 2LL);
	assert_int_equal(gn_meta_check(&m, "x"), -EINVAL);
	expect_detail("dtype 9");

	/* Too many dims, or fewer than none. */
	m = meta(F32, 1, 2LL);
	m.ndim = 9;
	assert_int_equal(gn_meta_check(&m, "x"), -EINVAL);
	expect_detail("9 dims");
	m.ndim = -1;
	assert_int_equal(gn_meta_check(&m, "x"), -EINVAL);
	expect_detail("-1 dims");

	/* A negative dim, named by position and value. */
	m = meta(F32, 3, 2LL, -2LL, 4LL);
	assert_int_equal(gn_meta_check(&m, "x"), -EINVAL);
	expect_detail("dim 1 is -2");
	m = meta(F32, 1, INT64_MIN);
	assert_int_equal(gn_meta_check(&m, "x"), -EINVAL);

	/* Byte sizes that are absurd or would overflow 64 bits. */
	m = meta(F32, 2, 1LL << 40, 2LL);
	assert_int_equal(gn_meta_check(&m, "x"), -EINVAL);
	expect_detail("bytes");
	m = meta(F32, 1, INT64_MAX);
	assert_int_equal(gn_meta_check(&m, "x"), -EINVAL);
	m = meta(GN_DTYPE_U8, 4, 1LL << 16, 1LL << 16, 1LL << 16, 1LL << 16);
	assert_int_equal(gn_meta_check(&m, "x"), -EINVAL);
	/* 2^32 * 2^32 wraps to 0 in 64 bits: must still be refused. */
	m = meta(GN_DTYPE_U8, 2, 1LL << 32, 1LL << 32);
	assert_int_equal(gn_meta_check(&m, "x"), -EINVAL);
	/* Large but sane is fine: 1 GiB of f32. */
	m = meta(F32, 2, 1LL << 14, 1LL << 14);
	assert_int_equal(gn_meta_check(&m, "x"), 0);
}

/* ---- matmul ----------------------------------------------------------- */

static void test_matmul(void **state)
{
	struct gn_tensor_meta o;

	(void)state;
	assert_int_equal(infer2(GN_OP_MATMUL, meta(F32, 2, 2LL, 3LL),
				meta(F32, 2, 3LL, 4LL), &o),
			 0);
	expect_meta(&o, "f32[2,4]");
	assert_int_equal(infer2(GN_OP_MATMUL, meta(F32, 2, 1LL, 1LL),
				meta(F32, 2, 1LL, 1LL), &o),
			 0);
	expect_meta(&o, "f32[1,1]");
	assert_int_equal(infer2(GN_OP_MATMUL, meta(F32, 2, 0LL, 3LL),
				meta(F32, 2, 3LL, 4LL), &o),
			 0);
	expect_meta(&o, "f32[0,4]");
	assert_int_equal(infer2(GN_OP_MATMUL, meta(GN_DTYPE_F16, 2, 2LL, 3LL),
				meta(GN_DTYPE_F16, 2, 3LL, 4LL), &o),
			 0);
	expect_meta(&o, "f16[2,4]");
}

static void test_matmul_inner_mismatch(void **state)
{
	struct gn_tensor_meta o;

	(void)state;
	assert_int_equal(infer2(GN_OP_MATMUL, meta(F32, 2, 2LL, 3LL),
				meta(F32, 2, 4LL, 5LL), &o),
			 -EINVAL);
	assert_int_equal(gn_last_error_code(), -EINVAL);
	expect_detail("matmul");
	expect_detail("f32[2,3]");
	expect_detail("f32[4,5]");
	expect_detail("3 vs 4");
	/* The transposed mistake, W [N,K] instead of [K,N]. */
	assert_int_equal(infer2(GN_OP_MATMUL, meta(F32, 2, 8LL, 16LL),
				meta(F32, 2, 32LL, 16LL), &o),
			 -EINVAL);
	expect_detail("f32[8,16]");
	expect_detail("f32[32,16]");
}

/* Operands that are not plain matrices follow numpy (docs/OPS.md). */
static void test_matmul_not_2d(void **state)
{
	struct gn_tensor_meta o;

	(void)state;
	/* A scalar has no dims to multiply over. */
	assert_int_equal(
		infer2(GN_OP_MATMUL, meta(F32, 0), meta(F32, 2, 3LL, 4LL), &o),
		-EINVAL);
	expect_detail("f32[]");
	expect_detail("f32[3,4]");
	assert_int_equal(
		infer2(GN_OP_MATMUL, meta(F32, 2, 3LL, 4LL), meta(F32, 0), &o),
		-EINVAL);
	/* 1-D operands are promoted and the added dim dropped. */
	assert_int_equal(infer2(GN_OP_MATMUL, meta(F32, 1, 3LL),
				meta(F32, 2, 3LL, 4LL), &o),
			 0);
	expect_meta(&o, "f32[4]");
	assert_int_equal(infer2(GN_OP_MATMUL, meta(F32, 2, 2LL, 3LL),
				meta(F32, 1, 3LL), &o),
			 0);
	expect_meta(&o, "f32[2]");
	assert_int_equal(
		infer2(GN_OP_MATMUL, meta(F32, 1, 3LL), meta(F32, 1, 3LL), &o),
		0);
	expect_meta(&o, "f32[]");
	assert_int_equal(
		infer2(GN_OP_MATMUL, meta(F32, 1, 3LL), meta(F32, 1, 4LL), &o),
		-EINVAL);
	/* Batch dims broadcast. */
	assert_int_equal(infer2(GN_OP_MATMUL, meta(F32, 3, 5LL, 2LL, 3LL),
				meta(F32, 2, 3LL, 4LL), &o),
			 0);
	expect_meta(&o, "f32[5,2,4]");
	assert_int_equal(infer2(GN_OP_MATMUL, meta(F32, 4, 2LL, 1LL, 2LL, 3LL),
				meta(F32, 3, 4LL, 3LL, 5LL), &o),
			 0);
	expect_meta(&o, "f32[2,4,2,5]");
	assert_int_equal(infer2(GN_OP_MATMUL, meta(F32, 3, 2LL, 2LL, 3LL),
				meta(F32, 3, 3LL, 3LL, 4LL), &o),
			 -EINVAL);
	expect_detail("f32[2,2,3]");
	expect_detail("f32[3,3,4]");
}

/* ---- add -------------------------------------------------------------- */

/* a + b and b + a both give `want`. */
static void expect_add(struct gn_tensor_meta a, struct gn_tensor_meta b,
		       const char *want)
{
	struct gn_tensor_meta o;

	if (infer2(GN_OP_ADD, a, b, &o) != 0)
		fail_msg("%s + %s failed: %s", fmt(&a), fmt(&b),
			 gn_last_error());
	expect_meta(&o, want);
	if (infer2(GN_OP_ADD, b, a, &o) != 0)
		fail_msg("%s + %s failed: %s", fmt(&b), fmt(&a),
			 gn_last_error());
	expect_meta(&o, want);
}

/* a + b fails either way round, naming both shapes. */
static void expect_add_fails(struct gn_tensor_meta a, struct gn_tensor_meta b)
{
	struct gn_tensor_meta o;
	char sa[96], sb[96];

	gn_meta_format(&a, sa, sizeof(sa));
	gn_meta_format(&b, sb, sizeof(sb));
	for (int swap = 0; swap < 2; swap++) {
		int rc = swap ? infer2(GN_OP_ADD, b, a, &o)
			      : infer2(GN_OP_ADD, a, b, &o);

		if (rc != -EINVAL)
			fail_msg("%s + %s gave %d, expected -EINVAL", sa, sb,
				 rc);
		assert_int_equal(gn_last_error_code(), -EINVAL);
		expect_detail("add");
		expect_detail(sa);
		expect_detail(sb);
	}
}

static void test_add_broadcasting(void **state)
{
	(void)state;
	expect_add(meta(F32, 2, 2LL, 3LL), meta(F32, 2, 2LL, 3LL), "f32[2,3]");
	expect_add(meta(F32, 2, 2LL, 3LL), meta(F32, 1, 3LL), "f32[2,3]");
	expect_add(meta(F32, 2, 2LL, 3LL), meta(F32, 2, 1LL, 3LL), "f32[2,3]");
	expect_add(meta(F32, 2, 2LL, 3LL), meta(F32, 2, 2LL, 1LL), "f32[2,3]");
	expect_add(meta(F32, 3, 4LL, 1LL, 3LL), meta(F32, 2, 2LL, 1LL),
		   "f32[4,2,3]");
	expect_add(meta(F32, 2, 5LL, 1LL), meta(F32, 2, 1LL, 6LL), "f32[5,6]");
	expect_add(meta(GN_DTYPE_I64, 1, 7LL), meta(GN_DTYPE_I64, 1, 1LL),
		   "i64[7]");

	expect_add_fails(meta(F32, 2, 2LL, 3LL), meta(F32, 1, 4LL));
	expect_add_fails(meta(F32, 2, 2LL, 3LL), meta(F32, 2, 3LL, 3LL));
	expect_add_fails(meta(F32, 3, 4LL, 2LL, 3LL), meta(F32, 2, 3LL, 3LL));
}

static void test_add_scalars(void **state)
{
	(void)state;
	expect_add(meta(F32, 0), meta(F32, 0), "f32[]");
	expect_add(meta(F32, 0), meta(F32, 2, 2LL, 3LL), "f32[2,3]");
	expect_add(meta(F32, 0), meta(F32, 1, 1LL), "f32[1]");
	expect_add(meta(F32, 0), meta(F32, 1, 0LL), "f32[0]");
}

static void test_add_zero_size(void **state)
{
	(void)state;
	expect_add(meta(F32, 2, 0LL, 3LL), meta(F32, 1, 3LL), "f32[0,3]");
	expect_add(meta(F32, 2, 2LL, 0LL), meta(F32, 2, 2LL, 1LL), "f32[2,0]");
	expect_add(meta(F32, 1, 0LL), meta(F32, 1, 1LL), "f32[0]");
	expect_add(meta(F32, 1, 0LL), meta(F32, 1, 0LL), "f32[0]");
	/* 0 and 2 do not broadcast (numpy agrees). */
	expect_add_fails(meta(F32, 1, 0LL), meta(F32, 1, 2LL));
}

/* ---- relu, arity, dtypes, unknown ops --------------------------------- */

static void test_relu(void **state)
{
	struct gn_tensor_meta o;

	(void)state;
	assert_int_equal(infer1(GN_OP_RELU, meta(F32, 3, 2LL, 0LL, 5LL), &o),
			 0);
	expect_meta(&o, "f32[2,0,5]");
	assert_int_equal(infer1(GN_OP_RELU, meta(F32, 0), &o), 0);
	expect_meta(&o, "f32[]");
	assert_int_equal(infer1(GN_OP_RELU, meta(GN_DTYPE_I32, 1, 4LL), &o), 0);
	expect_meta(&o, "i32[4]");
	assert_int_equal(infer1(GN_OP_RELU, meta(GN_DTYPE_BOOL, 1, 4LL), &o),
			 -EINVAL);
	expect_detail("relu");
	expect_detail("bool");
}

static void test_wrong_arity(void **state)
{
	struct gn_tensor_meta a = meta(F32, 1, 3LL), o;
	const struct gn_tensor_meta *in[3] = {&a, &a, &a};

	(void)state;
	gn_error_clear();
	assert_int_equal(gn_op_infer(GN_OP_ADD, in, 1, NULL, &o), -EINVAL);
	expect_detail("add");
	expect_detail("takes 2 operands, got 1");
	assert_int_equal(gn_op_infer(GN_OP_ADD, in, 3, NULL, &o), -EINVAL);
	expect_detail("got 3");
	assert_int_equal(gn_op_infer(GN_OP_MATMUL, in, 1, NULL, &o), -EINVAL);
	expect_detail("matmul");
	assert_int_equal(gn_op_infer(GN_OP_RELU, in, 2, NULL, &o), -EINVAL);
	expect_detail("relu");
	assert_int_equal(gn_op_infer(GN_OP_RELU, NULL, 0, NULL, &o), -EINVAL);
	expect_detail("got 0");
}

static void test_dtype_mismatch(void **state)
{
	struct gn_tensor_meta o;

	(void)state;
	assert_int_equal(infer2(GN_OP_ADD, meta(F32, 1, 3LL),
				meta(GN_DTYPE_I64, 1, 3LL), &o),
			 -EINVAL);
	expect_detail("add");
	expect_detail("f32[3]");
	expect_detail("i64[3]");
	assert_int_equal(infer2(GN_OP_ADD, meta(GN_DTYPE_F16, 1, 3LL),
				meta(F32, 1, 3LL), &o),
			 -EINVAL);
	expect_detail("f16[3]");
	assert_int_equal(infer2(GN_OP_MATMUL, meta(F32, 2, 2LL, 3LL),
				meta(GN_DTYPE_BF16, 2, 3LL, 4LL), &o),
			 -EINVAL);
	expect_detail("bf16[3,4]");
}

/* matmul takes float operands only; add and relu any numeric one. */
static void test_non_float(void **state)
{
	struct gn_tensor_meta o;

	(void)state;
	assert_int_equal(infer2(GN_OP_MATMUL, meta(GN_DTYPE_I64, 2, 2LL, 3LL),
				meta(GN_DTYPE_I64, 2, 3LL, 4LL), &o),
			 -EINVAL);
	expect_detail("matmul");
	expect_detail("i64");
	expect_detail("float");
	assert_int_equal(infer2(GN_OP_MATMUL, meta(GN_DTYPE_I32, 2, 2LL, 3LL),
				meta(F32, 2, 3LL, 4LL), &o),
			 -EINVAL);
	assert_int_equal(infer2(GN_OP_ADD, meta(GN_DTYPE_BOOL, 1, 3LL),
				meta(GN_DTYPE_BOOL, 1, 3LL), &o),
			 -EINVAL);
	expect_detail("bool");
	assert_int_equal(infer2(GN_OP_ADD, meta(GN_DTYPE_I8, 1, 3LL),
				meta(GN_DTYPE_I8, 1, 3LL), &o),
			 0);
	expect_meta(&o, "i8[3]");
}

/* A malformed operand is refused before the op's own rule runs. */
static void test_malformed_operand(void **state)
{
	struct gn_tensor_meta o, bad = meta(F32, 1, 3LL);

	(void)state;
	bad.ndim = 9;
	assert_int_equal(infer2(GN_OP_ADD, meta(F32, 1, 3LL), bad, &o),
			 -EINVAL);
	expect_detail("9 dims");
	bad = meta(F32, 2, 3LL, -1LL);
	assert_int_equal(infer1(GN_OP_RELU, bad, &o), -EINVAL);
	expect_detail("-1");
	bad = meta((enum gn_dtype)42, 1, 3LL);
	assert_int_equal(infer2(GN_OP_ADD, bad, bad, &o), -EINVAL);
	expect_detail("dtype 42");
}

static void test_unknown_op(void **state)
{
	static const int ops[] = {GN_OP_INVALID, 54,   59,
				  GN_OP_COUNT_,	 1000, -1};
	struct gn_tensor_meta a = meta(F32, 1, 3LL), o;
	const struct gn_tensor_meta *in[2] = {&a, &a};

	(void)state;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		char want[32];

		gn_error_clear();
		assert_int_equal(
			gn_op_infer((enum gn_op)ops[i], in, 2, NULL, &o),
			-EOPNOTSUPP);
		assert_int_equal(gn_last_error_code(), -EOPNOTSUPP);
		snprintf(want, sizeof(want), "op %d", ops[i]);
		expect_detail(want);
	}
	/* An input has no operands to infer from. */
	assert_int_equal(gn_op_infer(GN_OP_INPUT, NULL, 0, NULL, &o),
			 -EOPNOTSUPP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dtype_sizes_and_names),
		cmocka_unit_test(test_numel_nbytes_format_equal),
		cmocka_unit_test(test_meta_check),
		cmocka_unit_test(test_matmul),
		cmocka_unit_test(test_matmul_inner_mismatch),
		cmocka_unit_test(test_matmul_not_2d),
		cmocka_unit_test(test_add_broadcasting),
		cmocka_unit_test(test_add_scalars),
		cmocka_unit_test(test_add_zero_size),
		cmocka_unit_test(test_relu),
		cmocka_unit_test(test_wrong_arity),
		cmocka_unit_test(test_dtype_mismatch),
		cmocka_unit_test(test_non_float),
		cmocka_unit_test(test_malformed_operand),
		cmocka_unit_test(test_unknown_op),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
