/*
 * Private to the CUDA backend: what kernels.cu (compiled by nvcc) exports
 * to cuda_backend.c (compiled by the C compiler).
 *
 * Each kernel has a small extern "C" launch wrapper that queues it on the
 * caller's stream and returns the launch status; errors raised while the
 * kernel runs surface at the next synchronising call on that stream. The
 * wrappers do not allocate and do not synchronise.
 */
#ifndef GN_CUDA_INTERNAL_H
#define GN_CUDA_INTERNAL_H

#include <stdint.h>

#include <cuda_runtime_api.h>
#include <genie/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A binary elementwise op seen from its output: the output shape, and for
 * each operand the distance in elements between neighbours along every
 * dim, 0 where the operand is broadcast along it. The host collapses dims
 * that are contiguous in the output and both operands before launching,
 * so most calls index over one or two dims.
 */
struct gn_cuda_bcast {
	int ndim;
	int64_t shape[GN_MAX_DIMS];
	int64_t stride[2][GN_MAX_DIMS];
};

/*
 * out[i] = a[i'] + b[i''] for the n output elements, f32, with the operand
 * offsets taken from `bc` (passed by value to the kernel). A `bc` whose
 * single dim has stride 1 for both operands takes the flat path.
 */
cudaError_t gn_cuda_add_f32(const float *a, const float *b, float *out,
			    uint64_t n, const struct gn_cuda_bcast *bc,
			    cudaStream_t stream);

/* y[i] = x[i] > 0 ? x[i] : 0 for n f32 elements (NaN gives 0, as on cpu). */
cudaError_t gn_cuda_relu_f32(const float *x, float *y, uint64_t n,
			     cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* GN_CUDA_INTERNAL_H */
