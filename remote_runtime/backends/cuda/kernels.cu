/*
 * CUDA kernels of the cuda backend and their extern "C" launch wrappers
 * (declared in cuda_internal.h). Matmul goes to cuBLAS; what is here are
 * the elementwise ops, written as grid-stride loops so one launch shape
 * serves any element count.
 */
#include <stdint.h>

#include <cuda_runtime.h>

#include "cuda_internal.h"

/* 256 threads a block keeps every SM generation from sm_75 up busy. */
static const unsigned int k_block = 256;
static const unsigned int k_max_grid = 65536;

/*
 * Enough blocks to cover n, capped: past a few blocks per SM more blocks
 * add scheduling work without adding bandwidth, and the grid-stride loop
 * covers the rest.
 */
static unsigned int grid_for(uint64_t n)
{
	uint64_t blocks = (n + k_block - 1) / k_block;

	return blocks > k_max_grid ? k_max_grid : (unsigned int)blocks;
}

/*
 * Index types: 32-bit division is several times cheaper than 64-bit on
 * every GPU, so tensors whose element count fits in 32 bits take a 32-bit
 * instantiation.
 */
template <typename I>
__global__ void add_flat_f32(const float *__restrict__ a,
			     const float *__restrict__ b,
			     float *__restrict__ out, I n)
{
	for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n;
	     i += (I)gridDim.x * blockDim.x)
		out[i] = a[i] + b[i];
}

template <typename I>
__global__ void
add_bcast_f32(const float *__restrict__ a, const float *__restrict__ b,
	      float *__restrict__ out, I n, struct gn_cuda_bcast bc)
{
	for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n;
	     i += (I)gridDim.x * blockDim.x) {
		I rem = i, ia = 0, ib = 0;

		/* Peel coordinates off from the innermost dim outwards. */
		for (int d = bc.ndim - 1; d >= 0; d--) {
			I dim = (I)bc.shape[d];
			I c = rem % dim;

			rem /= dim;
			ia += c * (I)bc.stride[0][d];
			ib += c * (I)bc.stride[1][d];
		}
		out[i] = a[ia] + b[ib];
	}
}

template <typename I>
__global__ void relu_f32(const float *__restrict__ x, float *__restrict__ y,
			 I n)
{
	for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n;
	     i += (I)gridDim.x * blockDim.x) {
		float v = x[i];

		y[i] = v > 0.0f ? v : 0.0f;
	}
}

/*
 * True when 32-bit indices suffice: every offset the kernels form is below
 * n (an operand never has more elements than the output it broadcasts
 * to), and the grid-stride step must not wrap past the last index.
 */
static bool fits32(uint64_t n)
{
	return n <= UINT32_MAX - (uint64_t)k_max_grid * k_block;
}

extern "C" cudaError_t gn_cuda_add_f32(const float *a, const float *b,
				       float *out, uint64_t n,
				       const struct gn_cuda_bcast *bc,
				       cudaStream_t stream)
{
	bool flat =
		bc->ndim == 1 && bc->stride[0][0] == 1 && bc->stride[1][0] == 1;
	unsigned int grid = grid_for(n);

	if (n == 0)
		return cudaSuccess;
	if (flat && fits32(n))
		add_flat_f32<uint32_t>
			<<<grid, k_block, 0, stream>>>(a, b, out, (uint32_t)n);
	else if (flat)
		add_flat_f32<uint64_t>
			<<<grid, k_block, 0, stream>>>(a, b, out, n);
	else if (fits32(n))
		add_bcast_f32<uint32_t><<<grid, k_block, 0, stream>>>(
			a, b, out, (uint32_t)n, *bc);
	else
		add_bcast_f32<uint64_t>
			<<<grid, k_block, 0, stream>>>(a, b, out, n, *bc);
	return cudaGetLastError();
}

extern "C" cudaError_t gn_cuda_relu_f32(const float *x, float *y, uint64_t n,
					cudaStream_t stream)
{
	unsigned int grid = grid_for(n);

	if (n == 0)
		return cudaSuccess;
	if (fits32(n))
		relu_f32<uint32_t>
			<<<grid, k_block, 0, stream>>>(x, y, (uint32_t)n);
	else
		relu_f32<uint64_t><<<grid, k_block, 0, stream>>>(x, y, n);
	return cudaGetLastError();
}
