/*
 * The public op functions (genie/ops.h): each turns its arguments into an
 * op, operands and attribute lists (layouts in docs/OPS.md), normalising
 * negative axes, and records it. The op table checks everything else.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "client_internal.h"
#include "gn_error.h"

#define REC(op, in, nin, ia, ni, fa, nf) \
	gn_client_record(op, in, nin, ia, ni, fa, nf)

/* Map a possibly negative axis into 0..ndim-1 (0..ndim when `extra`). */
static int64_t norm_axis(int64_t axis, int ndim, int extra)
{
	return axis < 0 ? axis + ndim + extra : axis;
}

static int ndim_of(const struct gn_tensor *t)
{
	return t ? t->ndim : 0;
}

/*
 * Check a caller's list of `n` dims or axes: 0..GN_MAX_DIMS entries and
 * not NULL when any. Returns 0 or -EINVAL naming the op and the list.
 */
static int list_ok(enum gn_op op, const char *what, int n, const void *list)
{
	if (n < 0 || n > GN_MAX_DIMS || (n > 0 && list == NULL))
		return gn_error_set(-EINVAL, "%s: %d %s, expected 0..%d%s",
				    gn_op_name(op), n, what, GN_MAX_DIMS,
				    n > 0 && list == NULL ? " (list is NULL)"
							  : "");
	return 0;
}

/* ---- Sources ---------------------------------------------------------- */

static int shape_attrs(int64_t *ia, int first, int ndim, const int64_t *shape)
{
	if (list_ok(GN_OP_FILL, "dims", ndim, shape) != 0)
		return -EINVAL;
	if (ndim > 0)
		memcpy(ia + first, shape, sizeof(int64_t) * (size_t)ndim);
	return 0;
}

struct gn_tensor *gn_full(struct gn_session *s, enum gn_dtype dtype, int ndim,
			  const int64_t *shape, double value)
{
	int64_t ia[1 + GN_MAX_DIMS] = {dtype};
	float fa[1] = {(float)value};

	if (shape_attrs(ia, 1, ndim, shape) != 0)
		return NULL;
	return gn_client_record_source(s, GN_OP_FILL, ia, 1 + ndim, fa, 1);
}

struct gn_tensor *gn_zeros(struct gn_session *s, enum gn_dtype dtype, int ndim,
			   const int64_t *shape)
{
	return gn_full(s, dtype, ndim, shape, 0.0);
}

struct gn_tensor *gn_ones(struct gn_session *s, enum gn_dtype dtype, int ndim,
			  const int64_t *shape)
{
	return gn_full(s, dtype, ndim, shape, 1.0);
}

struct gn_tensor *gn_arange(struct gn_session *s, enum gn_dtype dtype,
			    double start, double step, int64_t count)
{
	int64_t ia[2] = {dtype, count};
	float fa[2] = {(float)start, (float)step};

	return gn_client_record_source(s, GN_OP_ARANGE, ia, 2, fa, 2);
}

static struct gn_tensor *rand_src(struct gn_session *s, enum gn_op op,
				  enum gn_dtype dtype, int ndim,
				  const int64_t *shape, uint64_t seed,
				  double p0, double p1)
{
	int64_t ia[2 + GN_MAX_DIMS] = {dtype, (int64_t)seed};
	float fa[2] = {(float)p0, (float)p1};

	if (shape_attrs(ia, 2, ndim, shape) != 0)
		return NULL;
	return gn_client_record_source(s, op, ia, 2 + ndim, fa, 2);
}

struct gn_tensor *gn_rand_uniform(struct gn_session *s, enum gn_dtype dtype,
				  int ndim, const int64_t *shape, uint64_t seed,
				  double low, double high)
{
	return rand_src(s, GN_OP_RAND_UNIFORM, dtype, ndim, shape, seed, low,
			high);
}

struct gn_tensor *gn_rand_normal(struct gn_session *s, enum gn_dtype dtype,
				 int ndim, const int64_t *shape, uint64_t seed,
				 double mean, double std)
{
	return rand_src(s, GN_OP_RAND_NORMAL, dtype, ndim, shape, seed, mean,
			std);
}

/* ---- Elementwise ------------------------------------------------------ */

#define BINARY(fn, op)                                                 \
	struct gn_tensor *fn(struct gn_tensor *a, struct gn_tensor *b) \
	{                                                              \
		struct gn_tensor *in[] = {a, b};                       \
		return REC(op, in, 2, NULL, 0, NULL, 0);               \
	}

BINARY(gn_sub, GN_OP_SUB)
BINARY(gn_mul, GN_OP_MUL)
BINARY(gn_div, GN_OP_DIV)
BINARY(gn_pow, GN_OP_POW)
BINARY(gn_maximum, GN_OP_MAXIMUM)
BINARY(gn_minimum, GN_OP_MINIMUM)
BINARY(gn_eq, GN_OP_EQ)
BINARY(gn_ne, GN_OP_NE)
BINARY(gn_lt, GN_OP_LT)
BINARY(gn_le, GN_OP_LE)
BINARY(gn_gt, GN_OP_GT)
BINARY(gn_ge, GN_OP_GE)

#define UNARY(fn, op)                                    \
	struct gn_tensor *fn(struct gn_tensor *x)        \
	{                                                \
		return REC(op, &x, 1, NULL, 0, NULL, 0); \
	}

UNARY(gn_silu, GN_OP_SILU)
UNARY(gn_sigmoid, GN_OP_SIGMOID)
UNARY(gn_tanh, GN_OP_TANH)
UNARY(gn_hardswish, GN_OP_HARDSWISH)
UNARY(gn_neg, GN_OP_NEG)
UNARY(gn_abs, GN_OP_ABS)
UNARY(gn_exp, GN_OP_EXP)
UNARY(gn_log, GN_OP_LOG)
UNARY(gn_sqrt, GN_OP_SQRT)
UNARY(gn_rsqrt, GN_OP_RSQRT)
UNARY(gn_erf, GN_OP_ERF)

struct gn_tensor *gn_where(struct gn_tensor *cond, struct gn_tensor *a,
			   struct gn_tensor *b)
{
	struct gn_tensor *in[] = {cond, a, b};

	return REC(GN_OP_WHERE, in, 3, NULL, 0, NULL, 0);
}

struct gn_tensor *gn_gelu(struct gn_tensor *x, int tanh_approx)
{
	int64_t ia[1] = {tanh_approx ? 1 : 0};

	return REC(GN_OP_GELU, &x, 1, ia, 1, NULL, 0);
}

struct gn_tensor *gn_hardsigmoid(struct gn_tensor *x, float alpha, float beta)
{
	float fa[2] = {alpha, beta};

	return REC(GN_OP_HARDSIGMOID, &x, 1, NULL, 0, fa, 2);
}

struct gn_tensor *gn_clip(struct gn_tensor *x, float min, float max)
{
	float fa[2] = {min, max};

	return REC(GN_OP_CLIP, &x, 1, NULL, 0, fa, 2);
}

struct gn_tensor *gn_cast(struct gn_tensor *x, enum gn_dtype dtype)
{
	int64_t ia[1] = {dtype};

	return REC(GN_OP_CAST, &x, 1, ia, 1, NULL, 0);
}

/* ---- Linear algebra, convolution, normalisation ----------------------- */

struct gn_tensor *gn_linear(struct gn_tensor *x, struct gn_tensor *w,
			    struct gn_tensor *bias)
{
	struct gn_tensor *in[] = {x, w, bias};

	return REC(GN_OP_LINEAR, in, bias ? 3 : 2, NULL, 0, NULL, 0);
}

static int64_t or1(int64_t v)
{
	return v ? v : 1;
}

struct gn_tensor *gn_conv2d(struct gn_tensor *x, struct gn_tensor *w,
			    struct gn_tensor *bias,
			    const struct gn_conv2d_params *p)
{
	static const struct gn_conv2d_params defaults = {0};
	struct gn_tensor *in[] = {x, w, bias};
	int64_t ia[9];

	if (p == NULL)
		p = &defaults;
	ia[0] = or1(p->stride[0]);
	ia[1] = or1(p->stride[1]);
	memcpy(ia + 2, p->padding, sizeof(p->padding));
	ia[6] = or1(p->dilation[0]);
	ia[7] = or1(p->dilation[1]);
	ia[8] = or1(p->groups);
	return REC(GN_OP_CONV2D, in, bias ? 3 : 2, ia, 9, NULL, 0);
}

static struct gn_tensor *pool(enum gn_op op, struct gn_tensor *x,
			      const struct gn_pool2d_params *p)
{
	int64_t ia[10];

	if (p == NULL) {
		gn_error_set(-EINVAL,
			     "%s: NULL parameters (kernel size needed)",
			     gn_op_name(op));
		return NULL;
	}
	ia[0] = p->kernel[0];
	ia[1] = p->kernel[1];
	ia[2] = p->stride[0] ? p->stride[0] : p->kernel[0];
	ia[3] = p->stride[1] ? p->stride[1] : p->kernel[1];
	memcpy(ia + 4, p->padding, sizeof(p->padding));
	ia[8] = p->ceil_mode ? 1 : 0;
	ia[9] = p->count_include_pad ? 1 : 0;
	return REC(op, &x, 1, ia, op == GN_OP_AVGPOOL2D ? 10 : 9, NULL, 0);
}

struct gn_tensor *gn_maxpool2d(struct gn_tensor *x,
			       const struct gn_pool2d_params *p)
{
	return pool(GN_OP_MAXPOOL2D, x, p);
}

struct gn_tensor *gn_avgpool2d(struct gn_tensor *x,
			       const struct gn_pool2d_params *p)
{
	return pool(GN_OP_AVGPOOL2D, x, p);
}

UNARY(gn_global_avgpool, GN_OP_GLOBAL_AVGPOOL)

struct gn_tensor *gn_batchnorm(struct gn_tensor *x, struct gn_tensor *mean,
			       struct gn_tensor *var, struct gn_tensor *gamma,
			       struct gn_tensor *beta, float eps)
{
	struct gn_tensor *in[] = {x, mean, var, gamma, beta};

	return REC(GN_OP_BATCHNORM, in, 5, NULL, 0, &eps, 1);
}

struct gn_tensor *gn_layernorm(struct gn_tensor *x, struct gn_tensor *gamma,
			       struct gn_tensor *beta, int nnorm, float eps)
{
	struct gn_tensor *in[] = {x, gamma, beta};
	int64_t ia[1] = {nnorm};

	return REC(GN_OP_LAYERNORM, in, 3, ia, 1, &eps, 1);
}

struct gn_tensor *gn_softmax(struct gn_tensor *x, int axis)
{
	int64_t ia[1] = {norm_axis(axis, ndim_of(x), 0)};

	return REC(GN_OP_SOFTMAX, &x, 1, ia, 1, NULL, 0);
}

struct gn_tensor *gn_log_softmax(struct gn_tensor *x, int axis)
{
	int64_t ia[1] = {norm_axis(axis, ndim_of(x), 0)};

	return REC(GN_OP_LOG_SOFTMAX, &x, 1, ia, 1, NULL, 0);
}

struct gn_tensor *gn_sdpa(struct gn_tensor *q, struct gn_tensor *k,
			  struct gn_tensor *v, struct gn_tensor *mask,
			  int causal, float scale)
{
	struct gn_tensor *in[] = {q, k, v, mask};
	int64_t ia[1] = {causal ? 1 : 0};

	return REC(GN_OP_SDPA, in, mask ? 4 : 3, ia, 1, &scale, 1);
}

/* ---- Reductions and indexing ------------------------------------------ */

static struct gn_tensor *reduce(enum gn_op op, struct gn_tensor *x, int naxes,
				const int *axes, int keepdim)
{
	int64_t ia[1 + GN_MAX_DIMS] = {keepdim ? 1 : 0};

	if (list_ok(op, "axes", naxes, axes) != 0)
		return NULL;
	for (int i = 0; i < naxes; i++)
		ia[1 + i] = norm_axis(axes[i], ndim_of(x), 0);
	return REC(op, &x, 1, ia, 1 + naxes, NULL, 0);
}

struct gn_tensor *gn_reduce_sum(struct gn_tensor *x, int naxes, const int *axes,
				int keepdim)
{
	return reduce(GN_OP_REDUCE_SUM, x, naxes, axes, keepdim);
}

struct gn_tensor *gn_reduce_mean(struct gn_tensor *x, int naxes,
				 const int *axes, int keepdim)
{
	return reduce(GN_OP_REDUCE_MEAN, x, naxes, axes, keepdim);
}

struct gn_tensor *gn_reduce_max(struct gn_tensor *x, int naxes, const int *axes,
				int keepdim)
{
	return reduce(GN_OP_REDUCE_MAX, x, naxes, axes, keepdim);
}

struct gn_tensor *gn_argmax(struct gn_tensor *x, int axis, int keepdim)
{
	int64_t ia[2] = {norm_axis(axis, ndim_of(x), 0), keepdim ? 1 : 0};

	return REC(GN_OP_ARGMAX, &x, 1, ia, 2, NULL, 0);
}

struct gn_tensor *gn_embedding(struct gn_tensor *table, struct gn_tensor *idx)
{
	struct gn_tensor *in[] = {table, idx};

	return REC(GN_OP_EMBEDDING, in, 2, NULL, 0, NULL, 0);
}

struct gn_tensor *gn_embedding_bag(struct gn_tensor *table,
				   struct gn_tensor *idx, enum gn_bag_mode mode)
{
	struct gn_tensor *in[] = {table, idx};
	int64_t ia[1] = {mode};

	return REC(GN_OP_EMBEDDING_BAG, in, 2, ia, 1, NULL, 0);
}

struct gn_tensor *gn_gather(struct gn_tensor *x, struct gn_tensor *idx,
			    int axis)
{
	struct gn_tensor *in[] = {x, idx};
	int64_t ia[1] = {norm_axis(axis, ndim_of(x), 0)};

	return REC(GN_OP_GATHER, in, 2, ia, 1, NULL, 0);
}

/* ---- Shapes ----------------------------------------------------------- */

struct gn_tensor *gn_reshape(struct gn_tensor *x, int ndim,
			     const int64_t *shape)
{
	if (list_ok(GN_OP_RESHAPE, "dims", ndim, shape) != 0)
		return NULL;
	return REC(GN_OP_RESHAPE, &x, 1, shape, ndim, NULL, 0);
}

struct gn_tensor *gn_view(struct gn_tensor *x, int ndim, const int64_t *shape)
{
	return gn_reshape(x, ndim, shape);
}

struct gn_tensor *gn_flatten(struct gn_tensor *x, int axis)
{
	int64_t shape[GN_MAX_DIMS];
	int nd = ndim_of(x), a = (int)norm_axis(axis, nd, 0);

	if (x == NULL)
		return REC(GN_OP_RESHAPE, &x, 1, NULL, 0, NULL, 0);
	if (a < 0 || a > nd || (a == nd && nd > 0)) {
		gn_error_set(-EINVAL, "flatten: axis %d outside 0..%d", axis,
			     nd ? nd - 1 : 0);
		return NULL;
	}
	for (int d = 0; d < a; d++)
		shape[d] = x->shape[d];
	shape[a] = -1;
	return gn_reshape(x, a + 1, shape);
}

struct gn_tensor *gn_permute(struct gn_tensor *x, int ndim, const int *perm)
{
	int64_t ia[GN_MAX_DIMS];

	if (list_ok(GN_OP_PERMUTE, "axes", ndim, perm) != 0)
		return NULL;
	for (int i = 0; i < ndim; i++)
		ia[i] = norm_axis(perm[i], ndim_of(x), 0);
	return REC(GN_OP_PERMUTE, &x, 1, ia, ndim, NULL, 0);
}

struct gn_tensor *gn_transpose(struct gn_tensor *x, int dim0, int dim1)
{
	int perm[GN_MAX_DIMS], nd = ndim_of(x);
	int a = (int)norm_axis(dim0, nd, 0), b = (int)norm_axis(dim1, nd, 0);

	if (x != NULL && (a < 0 || a >= nd || b < 0 || b >= nd)) {
		gn_error_set(-EINVAL,
			     "transpose: dims %d and %d of a %d-dim tensor",
			     dim0, dim1, nd);
		return NULL;
	}
	for (int i = 0; i < nd; i++)
		perm[i] = i;
	if (x != NULL) {
		perm[a] = b;
		perm[b] = a;
	}
	return gn_permute(x, nd, perm);
}

struct gn_tensor *gn_slice(struct gn_tensor *x, int axis, int64_t start,
			   int64_t end, int64_t step)
{
	int64_t ia[4], dim;
	int nd = ndim_of(x);

	ia[0] = norm_axis(axis, nd, 0);
	ia[3] = step;
	if (x != NULL && ia[0] >= 0 && ia[0] < nd) {
		/* Clamp the way Python clamps x[start:end]. */
		dim = x->shape[ia[0]];
		if (start < 0)
			start += dim;
		if (end < 0)
			end += dim;
		start = start < 0 ? 0 : start > dim ? dim : start;
		end = end < 0 ? 0 : end > dim ? dim : end;
		if (end < start)
			end = start;
	}
	ia[1] = start;
	ia[2] = end;
	return REC(GN_OP_SLICE, &x, 1, ia, 4, NULL, 0);
}

struct gn_tensor *gn_expand(struct gn_tensor *x, int ndim, const int64_t *shape)
{
	if (list_ok(GN_OP_EXPAND, "dims", ndim, shape) != 0)
		return NULL;
	return REC(GN_OP_EXPAND, &x, 1, shape, ndim, NULL, 0);
}

struct gn_tensor *gn_squeeze(struct gn_tensor *x, int naxes, const int *axes)
{
	int64_t ia[GN_MAX_DIMS];

	if (list_ok(GN_OP_SQUEEZE, "axes", naxes, axes) != 0)
		return NULL;
	for (int i = 0; i < naxes; i++)
		ia[i] = norm_axis(axes[i], ndim_of(x), 0);
	return REC(GN_OP_SQUEEZE, &x, 1, ia, naxes, NULL, 0);
}

struct gn_tensor *gn_unsqueeze(struct gn_tensor *x, int axis)
{
	int64_t ia[1] = {norm_axis(axis, ndim_of(x), 1)};

	return REC(GN_OP_UNSQUEEZE, &x, 1, ia, 1, NULL, 0);
}

struct gn_tensor *gn_concat(struct gn_tensor *const *xs, int n, int axis)
{
	int64_t ia[1];

	if (xs == NULL || n < 1 || n > GN_OP_MAX_INPUTS) {
		gn_error_set(-EINVAL, "concat: %d tensors, expected 1..%d", n,
			     GN_OP_MAX_INPUTS);
		return NULL;
	}
	ia[0] = norm_axis(axis, ndim_of(xs[0]), 0);
	return REC(GN_OP_CONCAT, xs, n, ia, 1, NULL, 0);
}

int gn_split(struct gn_tensor *x, int axis, int n, const int64_t *sizes,
	     struct gn_tensor **out)
{
	int64_t at = 0, total = 0;
	int nd = ndim_of(x), a = (int)norm_axis(axis, nd, 0);

	if (x == NULL || sizes == NULL || out == NULL || n < 1)
		return gn_error_set(-EINVAL, "split: NULL argument or n < 1");
	if (a < 0 || a >= nd)
		return gn_error_set(
			-EINVAL, "split: axis %d of a %d-dim tensor", axis, nd);
	for (int i = 0; i < n; i++) {
		if (sizes[i] < 0)
			return gn_error_set(-EINVAL, "split: size %d is %lld",
					    i, (long long)sizes[i]);
		total += sizes[i];
	}
	if (total != x->shape[a])
		return gn_error_set(-EINVAL,
				    "split: sizes add up to %lld, axis %d has "
				    "%lld",
				    (long long)total, a,
				    (long long)x->shape[a]);
	for (int i = 0; i < n; i++) {
		out[i] = gn_slice(x, a, at, at + sizes[i], 1);
		if (out[i] == NULL)
			return gn_last_error_code();
		at += sizes[i];
	}
	return 0;
}

/* ---- In place ---------------------------------------------------------- */

/* Rebind *x to `t` when recording worked. */
static int rebind(struct gn_tensor **x, struct gn_tensor *t)
{
	if (t == NULL)
		return gn_last_error_code();
	*x = t;
	return 0;
}

int gn_add_(struct gn_tensor **x, struct gn_tensor *b)
{
	return x ? rebind(x, gn_add(*x, b))
		 : gn_error_set(-EINVAL, "add_: NULL tensor pointer");
}

int gn_sub_(struct gn_tensor **x, struct gn_tensor *b)
{
	return x ? rebind(x, gn_sub(*x, b))
		 : gn_error_set(-EINVAL, "sub_: NULL tensor pointer");
}

int gn_mul_(struct gn_tensor **x, struct gn_tensor *b)
{
	return x ? rebind(x, gn_mul(*x, b))
		 : gn_error_set(-EINVAL, "mul_: NULL tensor pointer");
}

int gn_div_(struct gn_tensor **x, struct gn_tensor *b)
{
	return x ? rebind(x, gn_div(*x, b))
		 : gn_error_set(-EINVAL, "div_: NULL tensor pointer");
}

int gn_relu_(struct gn_tensor **x)
{
	return x ? rebind(x, gn_relu(*x))
		 : gn_error_set(-EINVAL, "relu_: NULL tensor pointer");
}

int gn_clip_(struct gn_tensor **x, float min, float max)
{
	return x ? rebind(x, gn_clip(*x, min, max))
		 : gn_error_set(-EINVAL, "clip_: NULL tensor pointer");
}
