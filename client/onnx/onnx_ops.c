/*
 * ONNX op types onto Genie ops (opsets 11 to 17). Each mapping reads its
 * operands (lazy tensors, or host values for shape-like operands), checks
 * the attributes Genie cannot honour, and records Genie ops through the
 * public API, whose own checks name shapes and dtypes. docs/MODELS.md
 * lists what is mapped and what is refused.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gn_error.h"
#include "onnx_internal.h"

#define L(c, k) gn_onnx_lazy((c), (k))

/* Set output 0, or wrap the failed op's error with the node's name. */
static int ret1(struct gn_onnx_ctx *c, struct gn_tensor *t)
{
	c->out[0] = t;
	if (t != NULL)
		return 0;
	return gn_onnx_err(
		c, gn_last_error_code() ? gn_last_error_code() : -EINVAL, "%s",
		gn_last_error());
}

/* Largest tensor a shape-making op (ConstantOfShape, Range) may make. */
#define GN_ONNX_MAX_ELEMS (1ll << 32)

static int has_in(const struct gn_onnx_ctx *c, int k)
{
	return k < c->nin && c->in[k] != NULL;
}

/* The static shape of operand k (lazy or host); its rank, or -1. */
static int in_shape(struct gn_onnx_ctx *c, int k, int64_t *shape)
{
	struct gn_onnx_value *v = has_in(c, k) ? c->in[k] : NULL;

	if (v == NULL)
		return -1;
	if (v->h != NULL) {
		memcpy(shape, v->h->shape, sizeof(int64_t) * GN_MAX_DIMS);
		return v->h->ndim;
	}
	return v->t ? gn_tensor_shape(v->t, shape) : -1;
}

static enum gn_dtype in_dtype(const struct gn_onnx_ctx *c, int k)
{
	const struct gn_onnx_value *v = has_in(c, k) ? c->in[k] : NULL;

	if (v == NULL)
		return GN_DTYPE_INVALID;
	return v->h ? v->h->dtype : gn_tensor_dtype(v->t);
}

static int norm_axis(int64_t a, int rank)
{
	return (int)(a < 0 ? a + rank : a);
}

/* auto_pad SAME_UPPER/SAME_LOWER/VALID into explicit pads (2-D). */
static int auto_pads(struct gn_onnx_ctx *c, const int64_t *in_hw,
		     const int64_t *k, const int64_t *s, const int64_t *d,
		     int64_t *pads)
{
	const Onnx__AttributeProto *a = gn_onnx_attr(c, "auto_pad");
	const char *mode = a && a->has_s ? (const char *)a->s.data : NULL;
	size_t len = a && a->has_s ? a->s.len : 0;

	if (mode == NULL || (len == 6 && memcmp(mode, "NOTSET", 6) == 0))
		return 0;
	if (len == 5 && memcmp(mode, "VALID", 5) == 0) {
		memset(pads, 0, 4 * sizeof(int64_t));
		return 0;
	}
	if (len == 10 && (memcmp(mode, "SAME_UPPER", 10) == 0 ||
			  memcmp(mode, "SAME_LOWER", 10) == 0)) {
		for (int i = 0; i < 2; i++) {
			int64_t out = (in_hw[i] + s[i] - 1) / s[i];
			int64_t need = (out - 1) * s[i] + d[i] * (k[i] - 1) +
				       1 - in_hw[i];
			int64_t total = need > 0 ? need : 0;
			int64_t small = total / 2, big = total - small;
			int upper = mode[5] == 'U';

			pads[i] = upper ? small : big;
			pads[i + 2] = upper ? big : small;
		}
		return 0;
	}
	return gn_onnx_err(c, -EOPNOTSUPP, "auto_pad '%.*s' is not known",
			   (int)len, mode);
}

/* ---- elementwise ----------------------------------------------------------
 */

static int map_binary(struct gn_onnx_ctx *c)
{
	const char *t = c->node->op_type;
	struct gn_tensor *a = L(c, 0), *b = L(c, 1);

	if (a == NULL || b == NULL)
		return ret1(c, NULL);
	if (strcmp(t, "Add") == 0)
		return ret1(c, gn_add(a, b));
	if (strcmp(t, "Sub") == 0)
		return ret1(c, gn_sub(a, b));
	if (strcmp(t, "Mul") == 0)
		return ret1(c, gn_mul(a, b));
	if (strcmp(t, "Div") == 0)
		return ret1(c, gn_div(a, b));
	return ret1(c, gn_eq(a, b));
}

static int map_pow(struct gn_onnx_ctx *c)
{
	struct gn_tensor *a = L(c, 0), *b;
	double e;

	if (a == NULL)
		return ret1(c, NULL);
	/* The exponents exporters write most: no pow kernel needed. */
	if (c->in[1] && c->in[1]->h && gn_onnx_host_float(c, 1, &e) == 0) {
		if (e == 1.0)
			return ret1(c, a);
		if (e == 2.0)
			return ret1(c, gn_mul(a, a));
		if (e == 0.5)
			return ret1(c, gn_sqrt(a));
	}
	b = L(c, 1);
	if (b != NULL && gn_tensor_dtype(b) != gn_tensor_dtype(a))
		b = gn_cast(b, gn_tensor_dtype(a));
	return ret1(c, b ? gn_pow(a, b) : NULL);
}

static int map_unary(struct gn_onnx_ctx *c)
{
	const char *t = c->node->op_type;
	struct gn_tensor *x = L(c, 0);

	if (x == NULL)
		return ret1(c, NULL);
	if (strcmp(t, "Relu") == 0)
		return ret1(c, gn_relu(x));
	if (strcmp(t, "Sigmoid") == 0)
		return ret1(c, gn_sigmoid(x));
	if (strcmp(t, "Tanh") == 0)
		return ret1(c, gn_tanh(x));
	if (strcmp(t, "Erf") == 0)
		return ret1(c, gn_erf(x));
	if (strcmp(t, "Sqrt") == 0)
		return ret1(c, gn_sqrt(x));
	if (strcmp(t, "HardSwish") == 0)
		return ret1(c, gn_hardswish(x));
	if (strcmp(t, "HardSigmoid") == 0)
		return ret1(c,
			    gn_hardsigmoid(x, gn_onnx_attr_f(c, "alpha", 0.2f),
					   gn_onnx_attr_f(c, "beta", 0.5f)));
	if (strcmp(t, "Gelu") == 0) {
		const Onnx__AttributeProto *a = gn_onnx_attr(c, "approximate");
		int tanh_form = a && a->has_s && a->s.len == 4 &&
				memcmp(a->s.data, "tanh", 4) == 0;

		return ret1(c, gn_gelu(x, tanh_form));
	}
	return gn_onnx_err(c, -EOPNOTSUPP, "no unary mapping");
}

/* Identity, and Dropout in inference (its mask output is refused). */
static int map_identity(struct gn_onnx_ctx *c)
{
	if (strcmp(c->node->op_type, "Dropout") == 0 && c->nout > 1 &&
	    c->node->output[1] && *c->node->output[1])
		return gn_onnx_err(c, -EOPNOTSUPP,
				   "the mask output of Dropout is not "
				   "supported (inference only)");
	return ret1(c, L(c, 0));
}

static int map_clip(struct gn_onnx_ctx *c)
{
	struct gn_tensor *x = L(c, 0), *y = x;
	double lo = -FLT_MAX, hi = FLT_MAX;
	int lazy_lo = 0, lazy_hi = 0;

	if (x == NULL)
		return ret1(c, NULL);
	if (has_in(c, 1)) {
		if (c->in[1]->h)
			gn_onnx_host_float(c, 1, &lo);
		else
			lazy_lo = 1;
	}
	if (has_in(c, 2)) {
		if (c->in[2]->h)
			gn_onnx_host_float(c, 2, &hi);
		else
			lazy_hi = 1;
	}
	if (!lazy_lo && !lazy_hi)
		return ret1(c, gn_clip(x, (float)lo, (float)hi));
	if (lazy_lo)
		y = gn_maximum(y, L(c, 1));
	if (lazy_hi)
		y = gn_minimum(y, L(c, 2));
	if (!lazy_lo && lo > -FLT_MAX)
		y = gn_clip(y, (float)lo, FLT_MAX);
	if (!lazy_hi && hi < FLT_MAX)
		y = gn_clip(y, -FLT_MAX, (float)hi);
	return ret1(c, y);
}

static int map_where(struct gn_onnx_ctx *c)
{
	struct gn_tensor *cond = L(c, 0), *a = L(c, 1), *b = L(c, 2);

	return ret1(c, cond && a && b ? gn_where(cond, a, b) : NULL);
}

static int map_cast(struct gn_onnx_ctx *c)
{
	int64_t to = gn_onnx_attr_i(c, "to", 0);
	enum gn_dtype dt = gn_onnx_dtype((int32_t)to);
	struct gn_tensor *x = L(c, 0);

	if (dt == GN_DTYPE_INVALID)
		return gn_onnx_err(c, -EOPNOTSUPP,
				   "cast to ONNX type %lld is not supported",
				   (long long)to);
	if (x == NULL)
		return ret1(c, NULL);
	if (gn_tensor_dtype(x) == dt)
		return ret1(c, x);
	return ret1(c, gn_cast(x, dt));
}

/* ---- linear algebra and convolution ---------------------------------------
 */

static int map_matmul(struct gn_onnx_ctx *c)
{
	struct gn_tensor *a = L(c, 0), *b = L(c, 1);

	return ret1(c, a && b ? gn_matmul(a, b) : NULL);
}

/* Y = alpha * A' B' + beta * C, A' and B' transposed when asked. */
static int map_gemm(struct gn_onnx_ctx *c)
{
	float alpha = gn_onnx_attr_f(c, "alpha", 1.0f);
	float beta = gn_onnx_attr_f(c, "beta", 1.0f);
	int ta = (int)gn_onnx_attr_i(c, "transA", 0);
	int tb = (int)gn_onnx_attr_i(c, "transB", 0);
	struct gn_tensor *a = L(c, 0), *b = L(c, 1), *y, *bias = NULL;
	int64_t cs[GN_MAX_DIMS], bs[GN_MAX_DIMS];

	if (a == NULL || b == NULL)
		return ret1(c, NULL);
	if (has_in(c, 2)) {
		bias = L(c, 2);
		if (bias == NULL)
			return ret1(c, NULL);
	}
	if (ta)
		a = gn_transpose(a, 0, 1);
	/* x W^T + b with a 1-D bias is exactly linear. */
	if (tb && alpha == 1.0f && (bias == NULL || beta == 1.0f) &&
	    (bias == NULL || (gn_tensor_shape(bias, cs) == 1 &&
			      gn_tensor_shape(b, bs) == 2 && cs[0] == bs[0])))
		return ret1(c, gn_linear(a, b, bias));
	if (tb)
		b = gn_transpose(b, 0, 1);
	y = gn_matmul(a, b);
	if (alpha != 1.0f && y != NULL)
		y = gn_mul(y, gn_full(c->s, GN_DTYPE_F32, 0, NULL, alpha));
	if (bias != NULL && beta != 0.0f) {
		if (beta != 1.0f)
			bias = gn_mul(bias, gn_full(c->s, GN_DTYPE_F32, 0, NULL,
						    beta));
		y = gn_add(y, bias);
	}
	return ret1(c, y);
}

static int map_conv(struct gn_onnx_ctx *c)
{
	int64_t xs[GN_MAX_DIMS], ws[GN_MAX_DIMS], k[2], s[2] = {1, 1},
							d[2] = {1, 1};
	int64_t pads[4] = {0, 0, 0, 0}, v[8];
	struct gn_conv2d_params p = {0};
	struct gn_tensor *x = L(c, 0), *w = L(c, 1), *b = NULL;
	int n;

	if (x == NULL || w == NULL)
		return ret1(c, NULL);
	if (gn_tensor_shape(x, xs) != 4 || gn_tensor_shape(w, ws) != 4)
		return gn_onnx_err(c, -EOPNOTSUPP,
				   "only 2-D convolution (4-D input and "
				   "weights) is supported");
	k[0] = ws[2], k[1] = ws[3];
	if ((n = gn_onnx_attr_ints(c, "kernel_shape", v, 8)) > 0 &&
	    (n != 2 || v[0] != k[0] || v[1] != k[1]))
		return gn_onnx_err(c, -EINVAL,
				   "kernel_shape does not match the weights");
	if ((n = gn_onnx_attr_ints(c, "strides", v, 8)) == 2)
		s[0] = v[0], s[1] = v[1];
	if ((n = gn_onnx_attr_ints(c, "dilations", v, 8)) == 2)
		d[0] = v[0], d[1] = v[1];
	if ((n = gn_onnx_attr_ints(c, "pads", v, 8)) == 4)
		memcpy(pads, v, sizeof(pads));
	else if (n != 0)
		return gn_onnx_err(c, -EINVAL, "pads has %d values, expected 4",
				   n);
	if (auto_pads(c, &xs[2], k, s, d, pads) != 0)
		return -EOPNOTSUPP;
	if (has_in(c, 2) && (b = L(c, 2)) == NULL)
		return ret1(c, NULL);
	p.stride[0] = s[0], p.stride[1] = s[1];
	memcpy(p.padding, pads, sizeof(pads));
	p.dilation[0] = d[0], p.dilation[1] = d[1];
	p.groups = gn_onnx_attr_i(c, "group", 1);
	return ret1(c, gn_conv2d(x, w, b, &p));
}

static int map_pool(struct gn_onnx_ctx *c)
{
	int is_max = strcmp(c->node->op_type, "MaxPool") == 0;
	int64_t xs[GN_MAX_DIMS], v[8], d[2] = {1, 1};
	struct gn_pool2d_params p = {0};
	struct gn_tensor *x = L(c, 0);
	int n;

	if (x == NULL)
		return ret1(c, NULL);
	if (is_max && c->nout > 1 && c->node->output[1] && *c->node->output[1])
		return gn_onnx_err(c, -EOPNOTSUPP,
				   "the Indices output of MaxPool is not "
				   "supported");
	if (gn_tensor_shape(x, xs) != 4 ||
	    gn_onnx_attr_ints(c, "kernel_shape", v, 8) != 2)
		return gn_onnx_err(c, -EOPNOTSUPP,
				   "only 2-D pooling (4-D input, 2 kernel "
				   "dims) is supported");
	p.kernel[0] = v[0], p.kernel[1] = v[1];
	p.stride[0] = p.stride[1] = 1;
	if (gn_onnx_attr_ints(c, "strides", v, 8) == 2)
		p.stride[0] = v[0], p.stride[1] = v[1];
	if ((n = gn_onnx_attr_ints(c, "dilations", v, 8)) > 0 &&
	    (n != 2 || v[0] != 1 || v[1] != 1))
		return gn_onnx_err(c, -EOPNOTSUPP,
				   "dilated pooling is not supported");
	if (gn_onnx_attr_i(c, "storage_order", 0) != 0)
		return gn_onnx_err(c, -EOPNOTSUPP,
				   "storage_order 1 is not supported");
	if ((n = gn_onnx_attr_ints(c, "pads", v, 8)) == 4)
		memcpy(p.padding, v, sizeof(p.padding));
	else if (n != 0)
		return gn_onnx_err(c, -EINVAL, "pads has %d values, expected 4",
				   n);
	if (auto_pads(c, &xs[2], p.kernel, p.stride, d, p.padding) != 0)
		return -EOPNOTSUPP;
	p.ceil_mode = (int)gn_onnx_attr_i(c, "ceil_mode", 0);
	if (is_max)
		return ret1(c, gn_maxpool2d(x, &p));
	p.count_include_pad = (int)gn_onnx_attr_i(c, "count_include_pad", 0);
	return ret1(c, gn_avgpool2d(x, &p));
}

static int map_global_avgpool(struct gn_onnx_ctx *c)
{
	struct gn_tensor *x = L(c, 0);

	return ret1(c, x ? gn_global_avgpool(x) : NULL);
}

/* ---- normalisation ------------------------------------------------------- */

static int map_batchnorm(struct gn_onnx_ctx *c)
{
	struct gn_tensor *x = L(c, 0), *g = L(c, 1), *b = L(c, 2);
	struct gn_tensor *mean = L(c, 3), *var = L(c, 4);

	if (gn_onnx_attr_i(c, "training_mode", 0) != 0)
		return gn_onnx_err(c, -EOPNOTSUPP,
				   "training_mode 1 is not supported "
				   "(inference only)");
	for (int k = 1; k < c->nout; k++)
		if (c->node->output[k] && *c->node->output[k])
			return gn_onnx_err(c, -EOPNOTSUPP,
					   "running-statistics outputs are not "
					   "supported (inference only)");
	if (!x || !g || !b || !mean || !var)
		return ret1(c, NULL);
	return ret1(c, gn_batchnorm(x, mean, var, g, b,
				    gn_onnx_attr_f(c, "epsilon", 1e-5f)));
}

static int map_layernorm(struct gn_onnx_ctx *c)
{
	int64_t xs[GN_MAX_DIMS], trail[GN_MAX_DIMS];
	struct gn_tensor *x = L(c, 0), *g = L(c, 1), *b = NULL;
	int rank, axis, nn;

	if (x == NULL || g == NULL)
		return ret1(c, NULL);
	for (int k = 1; k < c->nout; k++)
		if (c->node->output[k] && *c->node->output[k])
			return gn_onnx_err(c, -EOPNOTSUPP,
					   "the Mean and InvStdDev outputs are "
					   "not supported");
	rank = gn_tensor_shape(x, xs);
	axis = norm_axis(gn_onnx_attr_i(c, "axis", -1), rank);
	if (axis < 0 || axis >= rank)
		return gn_onnx_err(c, -EINVAL, "axis out of range for rank %d",
				   rank);
	nn = rank - axis;
	memcpy(trail, &xs[axis], sizeof(int64_t) * (size_t)nn);
	/* Scale and bias may broadcast over the normalised dims. */
	g = gn_expand(g, nn, trail);
	if (has_in(c, 2))
		b = gn_expand(L(c, 2), nn, trail);
	else
		b = gn_zeros(c->s, gn_tensor_dtype(x), nn, trail);
	if (g == NULL || b == NULL)
		return ret1(c, NULL);
	return ret1(c, gn_layernorm(x, g, b, nn,
				    gn_onnx_attr_f(c, "epsilon", 1e-5f)));
}

static int map_softmax(struct gn_onnx_ctx *c)
{
	int64_t xs[GN_MAX_DIMS], two[2] = {1, 1};
	struct gn_tensor *x = L(c, 0), *y;
	int rank, axis;

	if (x == NULL)
		return ret1(c, NULL);
	rank = gn_tensor_shape(x, xs);
	axis = norm_axis(gn_onnx_attr_i(c, "axis", c->opset >= 13 ? -1 : 1),
			 rank);
	if (axis < 0 || axis >= (rank ? rank : 1))
		return gn_onnx_err(c, -EINVAL, "axis out of range for rank %d",
				   rank);
	if (c->opset >= 13 || axis == rank - 1)
		return ret1(c, gn_softmax(x, axis));
	/* Opsets 11-12: softmax over the dims from axis on, as one. */
	for (int i = 0; i < rank; i++)
		two[i < axis ? 0 : 1] *= xs[i];
	y = gn_softmax(gn_reshape(x, 2, two), 1);
	return ret1(c, y ? gn_reshape(y, rank, xs) : NULL);
}

/* ---- reductions ------------------------------------------------------------
 */

static int map_reduce(struct gn_onnx_ctx *c)
{
	int is_sum = strcmp(c->node->op_type, "ReduceSum") == 0;
	int64_t axes64[GN_MAX_DIMS], xs[GN_MAX_DIMS];
	int axes[GN_MAX_DIMS], n = 0, keep, rank;
	struct gn_tensor *x = L(c, 0);

	if (x == NULL)
		return ret1(c, NULL);
	rank = gn_tensor_shape(x, xs);
	if (is_sum && c->opset >= 13) {
		if (has_in(c, 1)) {
			n = gn_onnx_host_ints(c, 1, axes64, GN_MAX_DIMS);
			if (n < 0)
				return n;
		}
		if (n == 0 && gn_onnx_attr_i(c, "noop_with_empty_axes", 0))
			return ret1(c, x);
	} else {
		n = gn_onnx_attr_ints(c, "axes", axes64, GN_MAX_DIMS);
		if (n < 0)
			return gn_onnx_err(c, -EINVAL, "too many axes");
	}
	for (int i = 0; i < n; i++)
		axes[i] = norm_axis(axes64[i], rank);
	keep = (int)gn_onnx_attr_i(c, "keepdims", 1);
	return ret1(c, is_sum ? gn_reduce_sum(x, n, axes, keep)
			      : gn_reduce_mean(x, n, axes, keep));
}

/* ---- shapes
 * ------------------------------------------------------------------ */

static int map_reshape(struct gn_onnx_ctx *c)
{
	int64_t shape[GN_MAX_DIMS];
	struct gn_tensor *x;
	int n = gn_onnx_host_ints(c, 1, shape, GN_MAX_DIMS);

	if (n < 0)
		return n;
	if (gn_onnx_attr_i(c, "allowzero", 0))
		for (int i = 0; i < n; i++)
			if (shape[i] == 0)
				return gn_onnx_err(c, -EOPNOTSUPP,
						   "allowzero with a 0 in the "
						   "shape is not supported");
	x = L(c, 0);
	return ret1(c, x ? gn_reshape(x, n, shape) : NULL);
}

static int map_flatten(struct gn_onnx_ctx *c)
{
	int64_t xs[GN_MAX_DIMS], two[2] = {1, 1};
	struct gn_tensor *x = L(c, 0);
	int rank, axis;

	if (x == NULL)
		return ret1(c, NULL);
	rank = gn_tensor_shape(x, xs);
	axis = norm_axis(gn_onnx_attr_i(c, "axis", 1), rank);
	if (axis < 0 || axis > rank)
		return gn_onnx_err(c, -EINVAL, "axis out of range for rank %d",
				   rank);
	for (int i = 0; i < rank; i++)
		two[i < axis ? 0 : 1] *= xs[i];
	return ret1(c, gn_reshape(x, 2, two));
}

static int map_transpose(struct gn_onnx_ctx *c)
{
	int64_t xs[GN_MAX_DIMS], p64[GN_MAX_DIMS];
	int perm[GN_MAX_DIMS], rank, n;
	struct gn_tensor *x = L(c, 0);

	if (x == NULL)
		return ret1(c, NULL);
	rank = gn_tensor_shape(x, xs);
	n = gn_onnx_attr_ints(c, "perm", p64, GN_MAX_DIMS);
	if (n == 0)
		for (int i = 0; i < rank; i++)
			p64[i] = rank - 1 - i;
	else if (n != rank)
		return gn_onnx_err(c, -EINVAL,
				   "perm has %d entries for rank %d", n, rank);
	for (int i = 0; i < rank; i++)
		perm[i] = norm_axis(p64[i], rank);
	return ret1(c, gn_permute(x, rank, perm));
}

/* Axes from the attribute (opsets < 13) or operand 1 (13 on). */
static int axes_of(struct gn_onnx_ctx *c, int64_t *axes)
{
	if (c->opset >= 13)
		return has_in(c, 1) ? gn_onnx_host_ints(c, 1, axes, GN_MAX_DIMS)
				    : 0;
	return gn_onnx_attr_ints(c, "axes", axes, GN_MAX_DIMS);
}

static int map_squeeze(struct gn_onnx_ctx *c)
{
	int64_t a64[GN_MAX_DIMS], xs[GN_MAX_DIMS];
	int axes[GN_MAX_DIMS], n = axes_of(c, a64), rank;
	struct gn_tensor *x = L(c, 0);

	if (n < 0)
		return n;
	if (x == NULL)
		return ret1(c, NULL);
	rank = gn_tensor_shape(x, xs);
	for (int i = 0; i < n; i++)
		axes[i] = norm_axis(a64[i], rank);
	return ret1(c, gn_squeeze(x, n, axes));
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int map_unsqueeze(struct gn_onnx_ctx *c)
{
	int64_t a64[GN_MAX_DIMS], xs[GN_MAX_DIMS];
	int n = axes_of(c, a64), rank;
	struct gn_tensor *x = L(c, 0);

	if (n < 0)
		return n;
	if (x == NULL)
		return ret1(c, NULL);
	rank = gn_tensor_shape(x, xs);
	/* Axes count in the output's rank; insert from the lowest up. */
	for (int i = 0; i < n; i++)
		a64[i] = norm_axis(a64[i], rank + n);
	qsort(a64, (size_t)n, sizeof(int64_t), cmp_i64);
	for (int i = 0; i < n && x != NULL; i++)
		x = gn_unsqueeze(x, (int)a64[i]);
	return ret1(c, x);
}

static int map_concat(struct gn_onnx_ctx *c)
{
	struct gn_tensor *xs[16];
	int64_t shape[GN_MAX_DIMS];
	int n = 0;

	for (int k = 0; k < c->nin; k++) {
		if (!has_in(c, k))
			continue;
		xs[n] = L(c, k);
		if (xs[n] == NULL)
			return ret1(c, NULL);
		n++;
	}
	if (n == 0)
		return gn_onnx_err(c, -EINVAL, "no inputs");
	return ret1(c, gn_concat(xs, n,
				 norm_axis(gn_onnx_attr_i(c, "axis", 0),
					   gn_tensor_shape(xs[0], shape))));
}

static int map_split(struct gn_onnx_ctx *c)
{
	int64_t xs[GN_MAX_DIMS], sizes[16];
	struct gn_tensor *x = L(c, 0);
	int rank, axis, n, rc;

	if (x == NULL)
		return ret1(c, NULL);
	rank = gn_tensor_shape(x, xs);
	axis = norm_axis(gn_onnx_attr_i(c, "axis", 0), rank);
	if (axis < 0 || axis >= rank)
		return gn_onnx_err(c, -EINVAL, "axis out of range for rank %d",
				   rank);
	if (c->opset >= 13)
		n = has_in(c, 1) ? gn_onnx_host_ints(c, 1, sizes, 16) : 0;
	else
		n = gn_onnx_attr_ints(c, "split", sizes, 16);
	if (n < 0)
		return n;
	if (n == 0) {
		/* Equal pieces, one per output. */
		n = c->nout;
		if (n <= 0 || xs[axis] % n != 0)
			return gn_onnx_err(c, -EINVAL,
					   "dim %lld does not split into %d "
					   "equal pieces",
					   (long long)xs[axis], n);
		for (int i = 0; i < n; i++)
			sizes[i] = xs[axis] / n;
	}
	if (n != c->nout)
		return gn_onnx_err(c, -EINVAL, "%d split sizes for %d outputs",
				   n, c->nout);
	rc = gn_split(x, axis, n, sizes, c->out);
	return rc == 0 ? 0 : gn_onnx_err(c, rc, "%s", gn_last_error());
}

static int map_slice(struct gn_onnx_ctx *c)
{
	int64_t st[GN_MAX_DIMS], en[GN_MAX_DIMS], ax[GN_MAX_DIMS],
		sp[GN_MAX_DIMS], xs[GN_MAX_DIMS];
	struct gn_tensor *x;
	int n, na, ns, rank;

	n = gn_onnx_host_ints(c, 1, st, GN_MAX_DIMS);
	if (n < 0)
		return n;
	if (gn_onnx_host_ints(c, 2, en, GN_MAX_DIMS) != n)
		return gn_onnx_err(c, -EINVAL,
				   "starts and ends differ in length");
	x = L(c, 0);
	if (x == NULL)
		return ret1(c, NULL);
	rank = gn_tensor_shape(x, xs);
	na = has_in(c, 3) ? gn_onnx_host_ints(c, 3, ax, GN_MAX_DIMS) : -2;
	ns = has_in(c, 4) ? gn_onnx_host_ints(c, 4, sp, GN_MAX_DIMS) : -2;
	if (na == -2)
		for (na = 0; na < n; na++)
			ax[na] = na;
	if (ns == -2)
		for (ns = 0; ns < n; ns++)
			sp[ns] = 1;
	if (na != n || ns != n)
		return gn_onnx_err(c, -EINVAL,
				   "starts, ends, axes and steps differ in "
				   "length");
	for (int i = 0; i < n && x != NULL; i++) {
		int a = norm_axis(ax[i], rank);

		if (sp[i] <= 0)
			return gn_onnx_err(c, -EOPNOTSUPP,
					   "step %lld: only positive steps are "
					   "supported",
					   (long long)sp[i]);
		if (a < 0 || a >= rank)
			return gn_onnx_err(c, -EINVAL,
					   "axis %lld out of range for rank "
					   "%d",
					   (long long)ax[i], rank);
		x = gn_slice(x, a, st[i], en[i], sp[i]);
	}
	return ret1(c, x);
}

static int map_gather(struct gn_onnx_ctx *c)
{
	struct gn_tensor *x = L(c, 0), *idx = L(c, 1);
	int64_t xs[GN_MAX_DIMS];

	if (x == NULL || idx == NULL)
		return ret1(c, NULL);
	return ret1(c, gn_gather(x, idx,
				 norm_axis(gn_onnx_attr_i(c, "axis", 0),
					   gn_tensor_shape(x, xs))));
}

static int map_shape(struct gn_onnx_ctx *c)
{
	int64_t xs[GN_MAX_DIMS];
	int rank = in_shape(c, 0, xs), start, end;

	if (rank < 0)
		return gn_onnx_err(c, -EINVAL, "operand has no shape");
	start = norm_axis(gn_onnx_attr_i(c, "start", 0), rank);
	end = norm_axis(gn_onnx_attr_i(c, "end", rank), rank);
	start = start < 0 ? 0 : start > rank ? rank : start;
	end = end < start ? start : end > rank ? rank : end;
	c->hout[0] = gn_onnx_host_i64(xs + start, end - start);
	return c->hout[0] ? 0 : -ENOMEM;
}

static int map_expand(struct gn_onnx_ctx *c)
{
	int64_t want[GN_MAX_DIMS], xs[GN_MAX_DIMS], out[GN_MAX_DIMS];
	int n = gn_onnx_host_ints(c, 1, want, GN_MAX_DIMS), rank, nd;
	struct gn_tensor *x;

	if (n < 0)
		return n;
	x = L(c, 0);
	if (x == NULL)
		return ret1(c, NULL);
	rank = gn_tensor_shape(x, xs);
	nd = n > rank ? n : rank;
	/* Bidirectional broadcast: a 1 on either side takes the other. */
	for (int i = 0; i < nd; i++) {
		int64_t a = i - (nd - rank) >= 0 ? xs[i - (nd - rank)] : 1;
		int64_t b = i - (nd - n) >= 0 ? want[i - (nd - n)] : 1;

		if (a != b && a != 1 && b != 1)
			return gn_onnx_err(c, -EINVAL,
					   "dim %d: %lld does not broadcast "
					   "with %lld",
					   i, (long long)a, (long long)b);
		out[i] = a == 1 ? b : a;
	}
	return ret1(c, gn_expand(x, nd, out));
}

static int map_constant_of_shape(struct gn_onnx_ctx *c)
{
	const Onnx__AttributeProto *a = gn_onnx_attr(c, "value");
	int64_t shape[GN_MAX_DIMS];
	struct gn_onnx_host *h = NULL;
	enum gn_dtype dt = GN_DTYPE_F32;
	double value = 0;
	int n = gn_onnx_host_ints(c, 0, shape, GN_MAX_DIMS), rc;

	if (n < 0)
		return n;
	for (int i = 0, total = 1; i < n; i++) {
		if (shape[i] < 0 ||
		    (shape[i] && total > GN_ONNX_MAX_ELEMS / shape[i]))
			return gn_onnx_err(c, -EINVAL,
					   "shape dim %d is %lld: negative or "
					   "too large",
					   i, (long long)shape[i]);
		total *= shape[i];
	}
	if (a != NULL && a->t != NULL) {
		rc = gn_onnx_tensor_to_host(a->t, "ConstantOfShape value", &h);
		if (rc != 0)
			return rc;
		dt = h->dtype;
		switch (dt) {
		case GN_DTYPE_F32: value = *(float *)h->data; break;
		case GN_DTYPE_I64: value = (double)*(int64_t *)h->data; break;
		case GN_DTYPE_I32: value = *(int32_t *)h->data; break;
		case GN_DTYPE_U8:
		case GN_DTYPE_BOOL: value = *(uint8_t *)h->data; break;
		default:
			free(h->data);
			free(h);
			return gn_onnx_err(c, -EOPNOTSUPP,
					   "value of type %s is not supported",
					   gn_dtype_name(dt));
		}
		free(h->data);
		free(h);
	}
	return ret1(c, gn_full(c->s, dt, n, shape, value));
}

static int map_range(struct gn_onnx_ctx *c)
{
	double start, limit, delta;
	int64_t count;

	if (gn_onnx_host_float(c, 0, &start) != 0 ||
	    gn_onnx_host_float(c, 1, &limit) != 0 ||
	    gn_onnx_host_float(c, 2, &delta) != 0)
		return -EOPNOTSUPP;
	if (delta == 0)
		return gn_onnx_err(c, -EINVAL, "delta is 0");
	if (!isfinite((limit - start) / delta) ||
	    fabs((limit - start) / delta) > (double)GN_ONNX_MAX_ELEMS)
		return gn_onnx_err(c, -EINVAL,
				   "range %g..%g step %g is too long", start,
				   limit, delta);
	count = (int64_t)ceil((limit - start) / delta);
	return ret1(c, gn_arange(c->s, in_dtype(c, 0), start, delta,
				 count > 0 ? count : 0));
}

static int map_constant(struct gn_onnx_ctx *c)
{
	const Onnx__AttributeProto *a;
	struct gn_onnx_host *h;

	if ((a = gn_onnx_attr(c, "value")) != NULL && a->t != NULL) {
		int rc = gn_onnx_tensor_to_host(a->t, "Constant value",
						&c->hout[0]);

		return rc == 0 ? 0 : gn_onnx_err(c, rc, "%s", gn_last_error());
	}
	if ((a = gn_onnx_attr(c, "value_ints")) != NULL) {
		c->hout[0] = gn_onnx_host_i64(a->ints, (int)a->n_ints);
		return c->hout[0] ? 0 : -ENOMEM;
	}
	if ((a = gn_onnx_attr(c, "value_int")) != NULL && a->has_i) {
		c->hout[0] = h = gn_onnx_host_i64(&a->i, 1);
		if (h != NULL)
			h->ndim = 0;
		return h ? 0 : -ENOMEM;
	}
	if ((a = gn_onnx_attr(c, "value_float")) != NULL ||
	    (a = gn_onnx_attr(c, "value_floats")) != NULL) {
		int scalar = a->has_f;
		int n = scalar ? 1 : (int)a->n_floats;

		h = gn_onnx_host_i64(NULL, 0);
		if (h == NULL)
			return -ENOMEM;
		free(h->data);
		h->data = malloc(sizeof(float) * (size_t)(n ? n : 1));
		if (h->data == NULL) {
			free(h);
			return gn_error_set(-ENOMEM, "onnx: out of memory");
		}
		h->dtype = GN_DTYPE_F32;
		h->ndim = scalar ? 0 : 1;
		h->shape[0] = n;
		if (n > 0)
			memcpy(h->data, scalar ? &a->f : a->floats,
			       sizeof(float) * (size_t)n);
		c->hout[0] = h;
		return 0;
	}
	return gn_onnx_err(c, -EOPNOTSUPP,
			   "only value, value_int(s) and value_float(s) "
			   "constants are supported");
}

static const struct gn_onnx_op g_ops[] = {
	{"Add", map_binary, 1},
	{"Sub", map_binary, 1},
	{"Mul", map_binary, 1},
	{"Div", map_binary, 1},
	{"Equal", map_binary, 1},
	{"Pow", map_pow, 1},
	{"Relu", map_unary, 1},
	{"Sigmoid", map_unary, 1},
	{"Tanh", map_unary, 1},
	{"Erf", map_unary, 1},
	{"Gelu", map_unary, 1},
	{"Sqrt", map_unary, 1},
	{"HardSwish", map_unary, 1},
	{"HardSigmoid", map_unary, 1},
	{"Clip", map_clip, 1},
	{"Where", map_where, 1},
	{"Cast", map_cast, 1},
	{"Identity", map_identity, 1},
	{"Dropout", map_identity, 1},
	{"MatMul", map_matmul, 1},
	{"Gemm", map_gemm, 1},
	{"Conv", map_conv, 1},
	{"MaxPool", map_pool, 1},
	{"AveragePool", map_pool, 1},
	{"GlobalAveragePool", map_global_avgpool, 1},
	{"BatchNormalization", map_batchnorm, 1},
	{"LayerNormalization", map_layernorm, 1},
	{"Softmax", map_softmax, 1},
	{"ReduceMean", map_reduce, 1},
	{"ReduceSum", map_reduce, 1},
	{"Reshape", map_reshape, 1},
	{"Flatten", map_flatten, 1},
	{"Transpose", map_transpose, 1},
	{"Squeeze", map_squeeze, 1},
	{"Unsqueeze", map_unsqueeze, 1},
	{"Concat", map_concat, 1},
	{"Split", map_split, 1},
	{"Slice", map_slice, 1},
	{"Gather", map_gather, 1},
	{"Shape", map_shape, 1},
	{"Expand", map_expand, 1},
	{"ConstantOfShape", map_constant_of_shape, 1},
	{"Range", map_range, 1},
	{"Constant", map_constant, 1},
};

const struct gn_onnx_op *gn_onnx_find_op(const char *type)
{
	for (size_t i = 0; i < sizeof(g_ops) / sizeof(g_ops[0]); i++)
		if (strcmp(g_ops[i].type, type) == 0)
			return &g_ops[i];
	return NULL;
}
