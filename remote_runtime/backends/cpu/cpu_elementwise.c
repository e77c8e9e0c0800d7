/*
 * Elementwise kernels: unary maps, broadcasting binary ops, comparisons,
 * where and cast. f32 takes a direct path; every other dtype goes through
 * gn_cpu_load/store in double, which is exact for the integer ranges and
 * rounds once for the float ones.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>

#include "cpu_internal.h"
#include "gn_error.h"

static double unary(enum gn_op op, double x, const struct gn_op_attrs *a)
{
	switch (op) {
	case GN_OP_RELU: return x > 0 ? x : 0;
	case GN_OP_NEG: return -x;
	case GN_OP_ABS: return fabs(x);
	case GN_OP_EXP: return exp(x);
	case GN_OP_LOG: return log(x);
	case GN_OP_SQRT: return sqrt(x);
	case GN_OP_RSQRT: return 1.0 / sqrt(x);
	case GN_OP_ERF: return erf(x);
	case GN_OP_TANH: return tanh(x);
	case GN_OP_SIGMOID: return 1.0 / (1.0 + exp(-x));
	case GN_OP_SILU: return x / (1.0 + exp(-x));
	case GN_OP_HARDSWISH: {
		double r6 = x + 3 < 0 ? 0 : x + 3 > 6 ? 6 : x + 3;

		return x * r6 / 6;
	}
	case GN_OP_HARDSIGMOID: {
		double y = a->f[0] * x + a->f[1];

		return y < 0 ? 0 : y > 1 ? 1 : y;
	}
	case GN_OP_GELU:
		if (a->i[0])
			return 0.5 * x *
			       (1 + tanh(0.7978845608028654 *
					 (x + 0.044715 * x * x * x)));
		return 0.5 * x * (1 + erf(x / 1.4142135623730951));
	case GN_OP_CLIP: {
		double lo = a->f[0], hi = a->f[1];

		return x < lo ? lo : x > hi ? hi : x;
	}
	default: return x; /* cast */
	}
}

static int is_int(enum gn_dtype d)
{
	return d == GN_DTYPE_I64 || d == GN_DTYPE_I32 || d == GN_DTYPE_I8 ||
	       d == GN_DTYPE_U8;
}

/* Integer binary ops in int64, so large i64 values stay exact. */
static int binary_int(enum gn_op op, int64_t x, int64_t y, int64_t *r)
{
	switch (op) {
	case GN_OP_ADD: *r = (int64_t)((uint64_t)x + (uint64_t)y); return 0;
	case GN_OP_SUB: *r = (int64_t)((uint64_t)x - (uint64_t)y); return 0;
	case GN_OP_MUL: *r = (int64_t)((uint64_t)x * (uint64_t)y); return 0;
	case GN_OP_DIV:
		if (y == 0)
			return -EINVAL;
		*r = (x == INT64_MIN && y == -1) ? x : x / y;
		return 0;
	case GN_OP_MAXIMUM: *r = x > y ? x : y; return 0;
	case GN_OP_MINIMUM: *r = x < y ? x : y; return 0;
	default: *r = 0; return 0;
	}
}

static double binary(enum gn_op op, double x, double y)
{
	switch (op) {
	case GN_OP_ADD: return x + y;
	case GN_OP_SUB: return x - y;
	case GN_OP_MUL: return x * y;
	case GN_OP_DIV: return x / y;
	case GN_OP_POW: return pow(x, y);
	case GN_OP_MAXIMUM: return x > y || x != x ? x : y;
	case GN_OP_MINIMUM: return x < y || x != x ? x : y;
	case GN_OP_EQ: return x == y;
	case GN_OP_NE: return x != y;
	case GN_OP_LT: return x < y;
	case GN_OP_LE: return x <= y;
	case GN_OP_GT: return x > y;
	case GN_OP_GE: return x >= y;
	default: return 0;
	}
}

static int64_t load_i64(enum gn_dtype dt, const void *p, int64_t i)
{
	switch (dt) {
	case GN_DTYPE_I64: return ((const int64_t *)p)[i];
	case GN_DTYPE_I32: return ((const int32_t *)p)[i];
	case GN_DTYPE_I8: return ((const int8_t *)p)[i];
	default: return ((const uint8_t *)p)[i];
	}
}

static void store_i64(enum gn_dtype dt, void *p, uint64_t i, int64_t v)
{
	switch (dt) {
	case GN_DTYPE_I64: ((int64_t *)p)[i] = v; break;
	case GN_DTYPE_I32: ((int32_t *)p)[i] = (int32_t)v; break;
	case GN_DTYPE_I8: ((int8_t *)p)[i] = (int8_t)v; break;
	default: ((uint8_t *)p)[i] = (uint8_t)v; break;
	}
}

/*
 * Walk the output in row-major order with an odometer, keeping each
 * operand's offset from its broadcast strides.
 */
struct bcast {
	int nd, nin;
	int64_t st[3][GN_MAX_DIMS];
	int64_t idx[GN_MAX_DIMS];
	int64_t off[3];
	const int64_t *shape;
};

static void bcast_init(struct bcast *b, const struct cpu_call *c)
{
	b->nd = c->om->ndim;
	b->nin = c->nin;
	b->shape = c->om->shape;
	for (int k = 0; k < c->nin; k++) {
		gn_cpu_bstrides(c->im[k], b->nd, b->st[k]);
		b->off[k] = 0;
	}
	for (int d = 0; d < b->nd; d++)
		b->idx[d] = 0;
}

static void bcast_next(struct bcast *b)
{
	for (int d = b->nd - 1; d >= 0; d--) {
		for (int k = 0; k < b->nin; k++)
			b->off[k] += b->st[k][d];
		if (++b->idx[d] < b->shape[d])
			return;
		for (int k = 0; k < b->nin; k++)
			b->off[k] -= b->st[k][d] * b->shape[d];
		b->idx[d] = 0;
	}
}

static int run_binary(const struct cpu_call *c)
{
	enum gn_dtype dt = c->im[0]->dtype, odt = c->om->dtype;
	uint64_t n = gn_meta_numel(c->om);
	struct bcast b;

	bcast_init(&b, c);
	if (dt == GN_DTYPE_F32 && odt == GN_DTYPE_F32 && c->op != GN_OP_POW) {
		const float *x = c->in[0], *y = c->in[1];
		float *o = c->out;

		for (uint64_t i = 0; i < n; i++, bcast_next(&b))
			o[i] = (float)binary(c->op, x[b.off[0]], y[b.off[1]]);
		return 0;
	}
	if (is_int(dt) && odt == dt) {
		for (uint64_t i = 0; i < n; i++, bcast_next(&b)) {
			int64_t r;

			if (binary_int(c->op, load_i64(dt, c->in[0], b.off[0]),
				       load_i64(dt, c->in[1], b.off[1]),
				       &r) != 0)
				return gn_error_set(-EINVAL,
						    "cpu: %s: integer division "
						    "by zero at element %llu",
						    gn_op_name(c->op),
						    (unsigned long long)i);
			store_i64(odt, c->out, i, r);
		}
		return 0;
	}
	for (uint64_t i = 0; i < n; i++, bcast_next(&b))
		gn_cpu_store(odt, c->out, i,
			     binary(c->op, gn_cpu_load(dt, c->in[0], b.off[0]),
				    gn_cpu_load(dt, c->in[1], b.off[1])));
	return 0;
}

static int run_where(const struct cpu_call *c)
{
	enum gn_dtype dt = c->om->dtype;
	uint64_t n = gn_meta_numel(c->om);
	const uint8_t *cond = c->in[0];
	struct bcast b;

	bcast_init(&b, c);
	for (uint64_t i = 0; i < n; i++, bcast_next(&b)) {
		int k = cond[b.off[0]] ? 1 : 2;

		gn_cpu_store(dt, c->out, i,
			     gn_cpu_load(dt, c->in[k], b.off[k]));
	}
	return 0;
}

static int run_unary(const struct cpu_call *c)
{
	enum gn_dtype dt = c->im[0]->dtype, odt = c->om->dtype;
	uint64_t n = gn_meta_numel(c->om);

	if (dt == GN_DTYPE_F32 && odt == GN_DTYPE_F32) {
		const float *x = c->in[0];
		float *o = c->out;

		if (c->op == GN_OP_RELU) {
			for (uint64_t i = 0; i < n; i++)
				o[i] = x[i] > 0.0f ? x[i] : 0.0f;
			return 0;
		}
		for (uint64_t i = 0; i < n; i++)
			o[i] = (float)unary(c->op, x[i], c->a);
		return 0;
	}
	if (is_int(dt) && odt == dt &&
	    (c->op == GN_OP_NEG || c->op == GN_OP_ABS)) {
		for (uint64_t i = 0; i < n; i++) {
			int64_t v = load_i64(dt, c->in[0], (int64_t)i);

			v = c->op == GN_OP_NEG ? -v : v < 0 ? -v : v;
			store_i64(odt, c->out, i, v);
		}
		return 0;
	}
	for (uint64_t i = 0; i < n; i++)
		gn_cpu_store(odt, c->out, i,
			     unary(c->op, gn_cpu_load(dt, c->in[0], i), c->a));
	return 0;
}

int gn_cpu_elementwise(const struct cpu_call *c)
{
	if (c->op == GN_OP_WHERE)
		return run_where(c);
	if (gn_op_kind(c->op) == GN_OP_KIND_BINARY)
		return run_binary(c);
	return run_unary(c);
}
