/*
 * Data movement and sources: the strided copy behind permute, slice,
 * expand, linear's bias rows and conv2d's explicit padding, and the fill,
 * arange and seeded random sources.
 */
#include <math.h>
#include <stdint.h>

#include <cuda_runtime.h>

#include "kernels_common.cuh"

template <typename T, typename I>
__global__ void copy_strided_kernel(const T *__restrict__ src,
				    T *__restrict__ dst, I n, gn_cuda_bcast bc)
{
	GN_FOR(I, i, n)
	{
		I off[2];

		gn_bcast_off<I, 2>(i, bc, off);
		dst[off[1]] = src[off[0]];
	}
}

template <typename T>
static void copy_launch(const void *src, void *dst, uint64_t n,
			const gn_cuda_bcast *bc, cudaStream_t stream)
{
	unsigned int grid = gn_grid_for(n);

	if (gn_fits32(n))
		copy_strided_kernel<T, uint32_t><<<grid, GN_BLOCK, 0, stream>>>(
			(const T *)src, (T *)dst, (uint32_t)n, *bc);
	else
		copy_strided_kernel<T, uint64_t><<<grid, GN_BLOCK, 0, stream>>>(
			(const T *)src, (T *)dst, n, *bc);
}

extern "C" cudaError_t gn_cuda_copy_strided(size_t esize, const void *src,
					    void *dst, uint64_t n,
					    const struct gn_cuda_bcast *bc,
					    cudaStream_t stream)
{
	if (n == 0)
		return cudaSuccess;
	switch (esize) {
	case 1: copy_launch<uint8_t>(src, dst, n, bc, stream); break;
	case 2: copy_launch<uint16_t>(src, dst, n, bc, stream); break;
	case 4: copy_launch<uint32_t>(src, dst, n, bc, stream); break;
	case 8: copy_launch<uint64_t>(src, dst, n, bc, stream); break;
	default: return cudaErrorInvalidValue;
	}
	return cudaGetLastError();
}

/*
 * Philox-4x32-10 exactly as backends/cpu/philox.h defines it for Genie:
 * key (seed low, seed high), counter (i low, i high, 0, 0), ten rounds.
 */
__device__ __forceinline__ void philox4x32(uint64_t seed, uint64_t index,
					   uint32_t w[4])
{
	uint32_t c0 = (uint32_t)index, c1 = (uint32_t)(index >> 32), c2 = 0,
		 c3 = 0;
	uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);

	for (int r = 0; r < 10; r++) {
		uint64_t p0 = (uint64_t)0xD2511F53u * c0;
		uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
		uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
		uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;

		c1 = (uint32_t)p1;
		c3 = (uint32_t)p0;
		c0 = n0;
		c2 = n2;
		k0 += 0x9E3779B9u;
		k1 += 0xBB67AE85u;
	}
	w[0] = c0;
	w[1] = c1;
	w[2] = c2;
	w[3] = c3;
}

/*
 * Element i of a source, in double as cpu_source.c computes it. The
 * uniform draw is plain IEEE arithmetic and matches bit for bit; the
 * normal one goes through log, sqrt and cos, where CUDA's double
 * functions may differ from the host's libm in the last bit of a double,
 * which the rounding to the output dtype hides but for rare ties.
 */
__device__ __forceinline__ double source_at(enum gn_op op, uint64_t i, double a,
					    double b, uint64_t seed)
{
	uint32_t w[4];

	switch (op) {
	case GN_OP_FILL: return a;
	case GN_OP_ARANGE: return a + b * (double)i;
	case GN_OP_RAND_UNIFORM:
		philox4x32(seed, i, w);
		return a + (b - a) * ((double)(w[0] >> 8) * 0x1p-24);
	default: {
		double u1, u2;

		philox4x32(seed, i, w);
		u1 = ((double)(w[0] >> 8) + 1.0) * 0x1p-24;
		u2 = (double)(w[1] >> 8) * 0x1p-24;
		return a +
		       b * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
	}
	}
}

template <typename I>
__global__ void source_kernel(enum gn_op op, enum gn_dtype dt, void *out, I n,
			      double a, double b, uint64_t seed)
{
	GN_FOR(I, i, n)
	{
		gn_store(dt, out, i, source_at(op, i, a, b, seed));
	}
}

extern "C" cudaError_t gn_cuda_source(enum gn_op op, enum gn_dtype dt,
				      void *out, uint64_t n, double a, double b,
				      uint64_t seed, cudaStream_t stream)
{
	unsigned int grid = gn_grid_for(n);

	if (n == 0)
		return cudaSuccess;
	if (gn_fits32(n))
		source_kernel<uint32_t><<<grid, GN_BLOCK, 0, stream>>>(
			op, dt, out, (uint32_t)n, a, b, seed);
	else
		source_kernel<uint64_t><<<grid, GN_BLOCK, 0, stream>>>(
			op, dt, out, n, a, b, seed);
	return cudaGetLastError();
}
