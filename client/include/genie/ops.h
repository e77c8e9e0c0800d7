/*
 * Genie ops: everything a model records.
 *
 * Each function records one node in the session graph of its operands and
 * returns the new lazy tensor; nothing is computed until a tensor is
 * materialized. Shapes and dtypes are checked here, at the line that makes
 * the mistake: a call that fails returns NULL, records nothing, and sets
 * gn_last_error() to a message naming the op and every operand shape. A
 * NULL operand (from an earlier failed call) makes the call fail too, so a
 * chain of calls can be checked once at its end.
 *
 * docs/OPS.md gives the exact rules of every op. Axes may be negative
 * (counting from the end). Tensors belong to their session; see tensor.h.
 */
#ifndef GENIE_OPS_H
#define GENIE_OPS_H

#include <stddef.h>
#include <stdint.h>

#include <genie/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct gn_session;
struct gn_tensor;

/* ---- Sources --------------------------------------------------------- */

/* A tensor of `shape` with every element `value`. */
struct gn_tensor *gn_full(struct gn_session *s, enum gn_dtype dtype, int ndim,
			  const int64_t *shape, double value);
struct gn_tensor *gn_zeros(struct gn_session *s, enum gn_dtype dtype, int ndim,
			   const int64_t *shape);
struct gn_tensor *gn_ones(struct gn_session *s, enum gn_dtype dtype, int ndim,
			  const int64_t *shape);
/* [count] elements start, start + step, ... */
struct gn_tensor *gn_arange(struct gn_session *s, enum gn_dtype dtype,
			    double start, double step, int64_t count);
/* Seeded random values; the same seed gives the same values everywhere. */
struct gn_tensor *gn_rand_uniform(struct gn_session *s, enum gn_dtype dtype,
				  int ndim, const int64_t *shape, uint64_t seed,
				  double low, double high);
struct gn_tensor *gn_rand_normal(struct gn_session *s, enum gn_dtype dtype,
				 int ndim, const int64_t *shape, uint64_t seed,
				 double mean, double std);

/* ---- Elementwise (numpy broadcasting) -------------------------------- */

struct gn_tensor *gn_sub(struct gn_tensor *a, struct gn_tensor *b);
struct gn_tensor *gn_mul(struct gn_tensor *a, struct gn_tensor *b);
struct gn_tensor *gn_div(struct gn_tensor *a, struct gn_tensor *b);
struct gn_tensor *gn_pow(struct gn_tensor *a, struct gn_tensor *b);
struct gn_tensor *gn_maximum(struct gn_tensor *a, struct gn_tensor *b);
struct gn_tensor *gn_minimum(struct gn_tensor *a, struct gn_tensor *b);
/* Comparisons give bool tensors. */
struct gn_tensor *gn_eq(struct gn_tensor *a, struct gn_tensor *b);
struct gn_tensor *gn_ne(struct gn_tensor *a, struct gn_tensor *b);
struct gn_tensor *gn_lt(struct gn_tensor *a, struct gn_tensor *b);
struct gn_tensor *gn_le(struct gn_tensor *a, struct gn_tensor *b);
struct gn_tensor *gn_gt(struct gn_tensor *a, struct gn_tensor *b);
struct gn_tensor *gn_ge(struct gn_tensor *a, struct gn_tensor *b);
/* cond ? a : b, with cond a bool tensor. */
struct gn_tensor *gn_where(struct gn_tensor *cond, struct gn_tensor *a,
			   struct gn_tensor *b);

/* gelu: exact (erf) form, or the tanh approximation when `tanh_approx`. */
struct gn_tensor *gn_gelu(struct gn_tensor *x, int tanh_approx);
struct gn_tensor *gn_silu(struct gn_tensor *x);
struct gn_tensor *gn_sigmoid(struct gn_tensor *x);
struct gn_tensor *gn_tanh(struct gn_tensor *x);
struct gn_tensor *gn_hardswish(struct gn_tensor *x);
struct gn_tensor *gn_hardsigmoid(struct gn_tensor *x, float alpha, float beta);
struct gn_tensor *gn_neg(struct gn_tensor *x);
struct gn_tensor *gn_abs(struct gn_tensor *x);
struct gn_tensor *gn_exp(struct gn_tensor *x);
struct gn_tensor *gn_log(struct gn_tensor *x);
struct gn_tensor *gn_sqrt(struct gn_tensor *x);
struct gn_tensor *gn_rsqrt(struct gn_tensor *x);
struct gn_tensor *gn_erf(struct gn_tensor *x);
struct gn_tensor *gn_clip(struct gn_tensor *x, float min, float max);
struct gn_tensor *gn_cast(struct gn_tensor *x, enum gn_dtype dtype);

/* ---- Linear algebra, convolution, normalisation ---------------------- */

/* x [..., K] times w [N, K] transposed, plus bias [N] when not NULL. */
struct gn_tensor *gn_linear(struct gn_tensor *x, struct gn_tensor *w,
			    struct gn_tensor *bias);

struct gn_conv2d_params {
	int64_t stride[2];   /* h, w; 0 means 1 */
	int64_t padding[4];  /* top, left, bottom, right */
	int64_t dilation[2]; /* h, w; 0 means 1 */
	int64_t groups;      /* 0 means 1 */
};
/* x [N,C,H,W], w [O,C/groups,kh,kw], bias [O] or NULL; p NULL: defaults. */
struct gn_tensor *gn_conv2d(struct gn_tensor *x, struct gn_tensor *w,
			    struct gn_tensor *bias,
			    const struct gn_conv2d_params *p);

struct gn_pool2d_params {
	int64_t kernel[2];
	int64_t stride[2];  /* 0 means the kernel size */
	int64_t padding[4]; /* top, left, bottom, right */
	int ceil_mode;
	int count_include_pad; /* avg only */
};
struct gn_tensor *gn_maxpool2d(struct gn_tensor *x,
			       const struct gn_pool2d_params *p);
struct gn_tensor *gn_avgpool2d(struct gn_tensor *x,
			       const struct gn_pool2d_params *p);
/* [N,C,H,W] -> [N,C,1,1] */
struct gn_tensor *gn_global_avgpool(struct gn_tensor *x);

/* Inference batch norm over dim 1 with per-channel statistics. */
struct gn_tensor *gn_batchnorm(struct gn_tensor *x, struct gn_tensor *mean,
			       struct gn_tensor *var, struct gn_tensor *gamma,
			       struct gn_tensor *beta, float eps);
/* Normalise over the trailing `nnorm` dims; gamma, beta have those dims. */
struct gn_tensor *gn_layernorm(struct gn_tensor *x, struct gn_tensor *gamma,
			       struct gn_tensor *beta, int nnorm, float eps);
struct gn_tensor *gn_softmax(struct gn_tensor *x, int axis);
struct gn_tensor *gn_log_softmax(struct gn_tensor *x, int axis);

/*
 * Scaled dot-product attention: softmax(q k^T * scale + mask) v.
 * mask may be NULL; causal masks keys after each query; scale 0 means
 * 1/sqrt(E).
 */
struct gn_tensor *gn_sdpa(struct gn_tensor *q, struct gn_tensor *k,
			  struct gn_tensor *v, struct gn_tensor *mask,
			  int causal, float scale);

/* ---- Reductions and indexing ----------------------------------------- */

/* Reduce over `naxes` axes (0: all). */
struct gn_tensor *gn_reduce_sum(struct gn_tensor *x, int naxes,
				const int *axes, int keepdim);
struct gn_tensor *gn_reduce_mean(struct gn_tensor *x, int naxes,
				 const int *axes, int keepdim);
struct gn_tensor *gn_reduce_max(struct gn_tensor *x, int naxes,
				const int *axes, int keepdim);
struct gn_tensor *gn_argmax(struct gn_tensor *x, int axis, int keepdim);

struct gn_tensor *gn_embedding(struct gn_tensor *table, struct gn_tensor *idx);
enum gn_bag_mode { GN_BAG_SUM = 0, GN_BAG_MEAN = 1, GN_BAG_MAX = 2 };
/* idx [B, L] -> [B, D], pooling each bag of L rows of table [V, D]. */
struct gn_tensor *gn_embedding_bag(struct gn_tensor *table,
				   struct gn_tensor *idx, enum gn_bag_mode mode);
/* numpy take(x, idx, axis). */
struct gn_tensor *gn_gather(struct gn_tensor *x, struct gn_tensor *idx,
			    int axis);

/* ---- Shapes ----------------------------------------------------------- */

/* One dim may be -1 (inferred); 0 keeps the input's dim. */
struct gn_tensor *gn_reshape(struct gn_tensor *x, int ndim,
			     const int64_t *shape);
struct gn_tensor *gn_view(struct gn_tensor *x, int ndim, const int64_t *shape);
/* Collapse dims from `axis` on into one. */
struct gn_tensor *gn_flatten(struct gn_tensor *x, int axis);
struct gn_tensor *gn_permute(struct gn_tensor *x, int ndim, const int *perm);
struct gn_tensor *gn_transpose(struct gn_tensor *x, int dim0, int dim1);
/* Python-style x[start:end:step] along `axis` (step > 0). */
struct gn_tensor *gn_slice(struct gn_tensor *x, int axis, int64_t start,
			   int64_t end, int64_t step);
/* Broadcast to `shape`; -1 keeps the input's dim. */
struct gn_tensor *gn_expand(struct gn_tensor *x, int ndim,
			    const int64_t *shape);
/* Remove the given size-1 axes (naxes 0: every size-1 axis). */
struct gn_tensor *gn_squeeze(struct gn_tensor *x, int naxes, const int *axes);
struct gn_tensor *gn_unsqueeze(struct gn_tensor *x, int axis);
/* Join `n` tensors (1..64) along `axis`. */
struct gn_tensor *gn_concat(struct gn_tensor *const *xs, int n, int axis);
/*
 * Split along `axis` into `n` pieces of `sizes[i]`; writes the pieces to
 * out[0..n-1]. Returns 0 or a negative errno (sizes must add up).
 */
int gn_split(struct gn_tensor *x, int axis, int n, const int64_t *sizes,
	     struct gn_tensor **out);

/* ---- In place (recorded functionally; *x is rebound) ------------------- */

/* Each returns 0, or a negative errno leaving *x unchanged. */
int gn_add_(struct gn_tensor **x, struct gn_tensor *b);
int gn_sub_(struct gn_tensor **x, struct gn_tensor *b);
int gn_mul_(struct gn_tensor **x, struct gn_tensor *b);
int gn_div_(struct gn_tensor **x, struct gn_tensor *b);
int gn_relu_(struct gn_tensor **x);
int gn_clip_(struct gn_tensor **x, float min, float max);

#ifdef __cplusplus
}
#endif

#endif /* GENIE_OPS_H */
