/*
 * Private to the CUDA backend: what the kernels (kernels_*.cu, compiled by
 * nvcc) export to the host side (cuda_*.c, compiled by the C compiler).
 *
 * Each kernel family has a small extern "C" launch wrapper that queues it
 * on the caller's stream and returns the launch status; errors raised
 * while a kernel runs surface at the next synchronising call on that
 * stream. The wrappers do not allocate and do not synchronise. They trust
 * their arguments: the host side has checked ops, dtypes and shapes (the
 * plan decoder checked them before that), and refuses what the kernels
 * do not take.
 *
 * Semantics are those of the cpu backend's plain C kernels
 * (backends/cpu/cpu_*.c), the reference: the same formulas, the same
 * order of float operations where it matters, the same NaN rules, and the
 * same conversions (gn_cpu_load/gn_cpu_store) for dtypes other than f32.
 */
#ifndef GN_CUDA_INTERNAL_H
#define GN_CUDA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "tensor_meta.h"

/*
 * An elementwise op seen from its output: the output shape, and for each
 * operand (up to three: where) the distance in elements between
 * neighbours along every dim, 0 where the operand is broadcast along it.
 * The host collapses dims that are contiguous in the output and every
 * operand before launching, so most calls index over one or two dims.
 * Strided copies use the same struct: stride[0] for the source, stride[1]
 * for the destination.
 */
struct gn_cuda_bcast {
	int ndim;
	int64_t shape[GN_MAX_DIMS];
	int64_t stride[3][GN_MAX_DIMS];
};

/* One operand walked over a shape: element k's offset from its coords. */
struct gn_cuda_index {
	int ndim;
	int64_t shape[GN_MAX_DIMS];
	int64_t stride[GN_MAX_DIMS];
};

/* Attributes an elementwise unary op reads (hardsigmoid, clip, gelu). */
struct gn_cuda_unary_attrs {
	float f0, f1;
	int gelu_tanh;
};

/*
 * The first out-of-range index an indexing kernel met since the last
 * reset; `flag` is nonzero once one was met. Lives in device memory; the
 * host copies it back at sync (see cuda_sync).
 */
struct gn_cuda_index_error {
	int32_t flag;
	int32_t op;
	int64_t index;
	int64_t bound;
	uint64_t pos;
};

/* Elementwise (kernels_elementwise.cu). */

/*
 * y = op(x) over n elements: x of dtype `dt`, y of `odt` (equal but for
 * cast). f32 to f32 computes in float; every other pair goes through
 * double as gn_cpu_load/gn_cpu_store do.
 */
cudaError_t gn_cuda_unary(enum gn_op op, enum gn_dtype dt, enum gn_dtype odt,
			  const void *x, void *y, uint64_t n,
			  const struct gn_cuda_unary_attrs *at,
			  cudaStream_t stream);

/*
 * out = a op b with broadcasting (bc.stride[0] for a, [1] for b): a and b
 * of dtype `dt`, out of `odt` (bool for comparisons). Integer dtypes with
 * odt == dt compute in int64 (wrapping), but not div, which the host
 * refuses; the rest compute in double, f32 add..minimum in float.
 */
cudaError_t gn_cuda_binary(enum gn_op op, enum gn_dtype dt, enum gn_dtype odt,
			   const void *a, const void *b, void *out, uint64_t n,
			   const struct gn_cuda_bcast *bc, cudaStream_t stream);

/* out = cond ? a : b, elements of `esize` bytes (1, 2, 4 or 8). */
cudaError_t gn_cuda_where(size_t esize, const uint8_t *cond, const void *a,
			  const void *b, void *out, uint64_t n,
			  const struct gn_cuda_bcast *bc, cudaStream_t stream);

/* Shape and source (kernels_shape.cu). */

/*
 * Copy n elements of `esize` bytes (1, 2, 4 or 8): element k of the shape
 * in `bc` is read at src + off(stride[0]) and written at dst +
 * off(stride[1]).
 */
cudaError_t gn_cuda_copy_strided(size_t esize, const void *src, void *dst,
				 uint64_t n, const struct gn_cuda_bcast *bc,
				 cudaStream_t stream);

/*
 * Sources, stored as gn_cpu_store does: fill (value a), arange (a + b * i),
 * rand_uniform (low a, high b) and rand_normal (mean a, std b) from the
 * Philox generator of backends/cpu/philox.h with `seed`.
 */
cudaError_t gn_cuda_source(enum gn_op op, enum gn_dtype dt, void *out,
			   uint64_t n, double a, double b, uint64_t seed,
			   cudaStream_t stream);

/* Neural-network kernels (kernels_nn.cu), all f32. */

/*
 * Max or average 2-D pooling over nc planes of h x w, to ho x wo:
 * kernel kh x kw, stride sh x sw, padding top/left/bottom/right, average
 * counting padding (but not the ceil_mode overhang) when `incl`.
 */
struct gn_cuda_pool {
	int64_t nc, h, w, ho, wo, kh, kw, sh, sw, pt, pl, pb, pr;
	int is_max, incl;
};
cudaError_t gn_cuda_pool2d(const float *x, float *y,
			   const struct gn_cuda_pool *p, cudaStream_t stream);

/* y[r] = mean of row r (len elements) for rows r; NaN for len 0. */
cudaError_t gn_cuda_row_mean(const float *x, float *y, uint64_t rows,
			     uint64_t len, cudaStream_t stream);

/*
 * Inference batch norm: x is [n, c, inner]; per channel
 * s = gamma / sqrt(var + eps), y = x * s + (beta - mean * s), in double.
 */
cudaError_t gn_cuda_batchnorm(const float *x, const float *mean,
			      const float *var, const float *gamma,
			      const float *beta, float *y, uint64_t n,
			      uint64_t c, uint64_t inner, float eps,
			      cudaStream_t stream);

/* Layer norm over rows of `len`, gamma and beta of `len`. */
cudaError_t gn_cuda_layernorm(const float *x, const float *gamma,
			      const float *beta, float *y, uint64_t rows,
			      uint64_t len, float eps, cudaStream_t stream);

/*
 * Softmax or log-softmax along the middle dim of x viewed as
 * [outer, len, inner].
 */
cudaError_t gn_cuda_softmax(const float *x, float *y, uint64_t outer,
			    uint64_t len, uint64_t inner, int log_softmax,
			    cudaStream_t stream);

/*
 * The attention softmax, in place over `rows` rows of `s` scores (already
 * scaled): row r is query i = (row0 + r) % l of batch (row0 + r) / l.
 * With `causal`, score j > i becomes -inf; with a mask (NULL for none),
 * a bool mask keeps where true and a float mask is added. The mask is
 * read through `mix`, whose shape is [batch..., l, s].
 */
struct gn_cuda_attn_mask {
	const void *mask; /* NULL: none */
	int is_bool;
	struct gn_cuda_index mix;
};
cudaError_t gn_cuda_attn_softmax(float *scores, uint64_t rows, uint64_t row0,
				 uint64_t l, uint64_t s, int causal,
				 const struct gn_cuda_attn_mask *m,
				 cudaStream_t stream);

/* Reductions and indexing (kernels_reduce.cu). */

/*
 * reduce_sum, reduce_mean or reduce_max of x (dtype dt) into out (odt):
 * output element o reads the elements at off(kept, o) + off(red, k) for
 * the `nred` elements k of `red`; mean divides by `count`.
 */
cudaError_t gn_cuda_reduce(enum gn_op op, enum gn_dtype dt, enum gn_dtype odt,
			   const void *x, void *out, uint64_t nout,
			   const struct gn_cuda_index *kept,
			   const struct gn_cuda_index *red, uint64_t nred,
			   uint64_t count, cudaStream_t stream);

/* Argmax along the middle dim of x ([outer, len, inner]) as i64. */
cudaError_t gn_cuda_argmax(enum gn_dtype dt, const void *x, int64_t *out,
			   uint64_t outer, uint64_t len, uint64_t inner,
			   cudaStream_t stream);

/*
 * Gather rows: out[a, j, :] = x[a, idx[j], :] with x [outer, n, inner] of
 * `esize`-byte elements and `nidx` indices (i64, or i32 when idx32).
 * Embedding is the case outer = 1. An index outside [-n, n) writes zeros
 * and is recorded in `err` (with `op`).
 */
cudaError_t gn_cuda_gather(enum gn_op op, size_t esize, const void *x,
			   const void *idx, int idx32, void *out,
			   uint64_t outer, uint64_t n, uint64_t inner,
			   uint64_t nidx, struct gn_cuda_index_error *err,
			   cudaStream_t stream);

/*
 * Embedding bag: table [v, d] of dtype dt, idx [b, l]; mode 0 sum, 1 mean,
 * 2 max, in double as the cpu backend does.
 */
cudaError_t gn_cuda_embedding_bag(enum gn_dtype dt, const void *table,
				  const void *idx, int idx32, void *out,
				  uint64_t v, uint64_t d, uint64_t b,
				  uint64_t l, int mode,
				  struct gn_cuda_index_error *err,
				  cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* GN_CUDA_INTERNAL_H */
