/*
 * What every kernels_*.cu shares: launch shapes, index arithmetic, element
 * loads and stores for every dtype, and block reductions.
 *
 * Element access ports backends/cpu/cpu_dtype.c to the device bit for
 * bit (half and bfloat16 conversions, saturating integer stores), so that
 * dtypes other than f32 give what the cpu backend gives. The kernels are
 * compiled with -fmad=false (see meson.build) for the same reason: the
 * cpu backend's double arithmetic is never contracted into FMAs on x86-64,
 * and neither may ours be.
 */
#ifndef GN_CUDA_KERNELS_COMMON_CUH
#define GN_CUDA_KERNELS_COMMON_CUH

#include <math.h>
#include <stdint.h>

#include <cuda_runtime.h>

#include "cuda_internal.h"

/* 256 threads a block keeps every SM generation from sm_75 up busy. */
#define GN_BLOCK 256u
#define GN_MAX_GRID 65536u

/*
 * Enough blocks to cover n, capped: past a few blocks per SM more blocks
 * add scheduling work without adding bandwidth, and the grid-stride loops
 * cover the rest.
 */
static inline unsigned int gn_grid_for(uint64_t n)
{
	uint64_t blocks = (n + GN_BLOCK - 1) / GN_BLOCK;

	if (blocks == 0)
		return 1;
	return blocks > GN_MAX_GRID ? GN_MAX_GRID : (unsigned int)blocks;
}

/* Blocks for one block per item, capped the same way. */
static inline unsigned int gn_grid_items(uint64_t items)
{
	if (items == 0)
		return 1;
	return items > GN_MAX_GRID ? GN_MAX_GRID : (unsigned int)items;
}

/*
 * True when 32-bit indices suffice for a grid-stride loop over n: 32-bit
 * division is several times cheaper than 64-bit on every GPU. Every
 * offset a kernel forms is below its largest tensor's element count, and
 * the grid-stride step must not wrap past the last index.
 */
static inline bool gn_fits32(uint64_t n)
{
	return n <= UINT32_MAX - (uint64_t)GN_MAX_GRID * GN_BLOCK;
}

/* Grid-stride loop over [0, n) with index type I. */
#define GN_FOR(I, i, n)                                               \
	for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
	     i += (I)gridDim.x * blockDim.x)

/* Offset of element i of an index space (row-major over ix.shape). */
template <typename I>
__device__ __forceinline__ I gn_index_off(I i, const gn_cuda_index &ix)
{
	I off = 0;

	for (int d = ix.ndim - 1; d >= 0; d--) {
		I dim = (I)ix.shape[d];
		I c = i % dim;

		i /= dim;
		off += c * (I)ix.stride[d];
	}
	return off;
}

/* Offsets of output element i in each of `nops` operands of `bc`. */
template <typename I, int NOPS>
__device__ __forceinline__ void gn_bcast_off(I i, const gn_cuda_bcast &bc,
					     I *off)
{
	for (int k = 0; k < NOPS; k++)
		off[k] = 0;
	for (int d = bc.ndim - 1; d >= 0; d--) {
		I dim = (I)bc.shape[d];
		I c = i % dim;

		i /= dim;
		for (int k = 0; k < NOPS; k++)
			off[k] += c * (I)bc.stride[k][d];
	}
}

/* Half and bfloat16, as backends/cpu/cpu_dtype.c converts them. */
__device__ __forceinline__ float gn_f16_to_f32_dev(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f,
		 man = h & 0x3ff, bits;

	if (exp == 0) {
		float f = ldexpf((float)man, -24);

		return sign ? -f : f;
	}
	if (exp == 31)
		bits = sign | 0x7f800000u | (man << 13);
	else
		bits = sign | ((exp + 112) << 23) | (man << 13);
	return __uint_as_float(bits);
}

__device__ __forceinline__ uint16_t gn_f32_to_f16_dev(float f)
{
	uint32_t x = __float_as_uint(f), sign, man;
	int32_t exp;

	sign = (x >> 16) & 0x8000;
	exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
	man = x & 0x7fffff;
	if (((x >> 23) & 0xff) == 0xff)
		return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
	if (exp >= 31)
		return (uint16_t)(sign | 0x7c00);
	if (exp <= 0) {
		if (exp < -10)
			return (uint16_t)sign;
		man |= 0x800000;
		uint32_t shift = (uint32_t)(14 - exp);
		uint32_t half = man >> shift, rem = man & ((1u << shift) - 1);
		uint32_t mid = 1u << (shift - 1);

		if (rem > mid || (rem == mid && (half & 1)))
			half++;
		return (uint16_t)(sign | half);
	}
	uint32_t h = sign | ((uint32_t)exp << 10) | (man >> 13);
	uint32_t rem = man & 0x1fff;

	if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
		h++;
	return (uint16_t)h;
}

__device__ __forceinline__ float gn_bf16_to_f32_dev(uint16_t h)
{
	return __uint_as_float((uint32_t)h << 16);
}

__device__ __forceinline__ uint16_t gn_f32_to_bf16_dev(float f)
{
	uint32_t x = __float_as_uint(f);

	if ((x & 0x7f800000u) == 0x7f800000u && (x & 0x7fffff))
		return (uint16_t)((x >> 16) | 0x40);
	x += 0x7fff + ((x >> 16) & 1);
	return (uint16_t)(x >> 16);
}

/* gn_cpu_load: element i of a dt buffer as a double. */
__device__ __forceinline__ double gn_load(enum gn_dtype dt, const void *p,
					  uint64_t i)
{
	switch (dt) {
	case GN_DTYPE_F32: return ((const float *)p)[i];
	case GN_DTYPE_F16: return gn_f16_to_f32_dev(((const uint16_t *)p)[i]);
	case GN_DTYPE_BF16: return gn_bf16_to_f32_dev(((const uint16_t *)p)[i]);
	case GN_DTYPE_I64: return (double)((const int64_t *)p)[i];
	case GN_DTYPE_I32: return ((const int32_t *)p)[i];
	case GN_DTYPE_I8: return ((const int8_t *)p)[i];
	case GN_DTYPE_U8: return ((const uint8_t *)p)[i];
	case GN_DTYPE_BOOL: return ((const uint8_t *)p)[i] != 0;
	default: return 0;
	}
}

/* Integers saturate, NaN gives 0, as cpu_dtype.c's to_int. */
__device__ __forceinline__ int64_t gn_to_int(double v, double lo, double hi)
{
	if (v != v)
		return 0;
	if (v < lo)
		return (int64_t)lo;
	if (v > hi)
		return (int64_t)hi;
	return (int64_t)v;
}

/* gn_cpu_store: v into element i of a dt buffer. */
__device__ __forceinline__ void gn_store(enum gn_dtype dt, void *p, uint64_t i,
					 double v)
{
	switch (dt) {
	case GN_DTYPE_F32: ((float *)p)[i] = (float)v; break;
	case GN_DTYPE_F16:
		((uint16_t *)p)[i] = gn_f32_to_f16_dev((float)v);
		break;
	case GN_DTYPE_BF16:
		((uint16_t *)p)[i] = gn_f32_to_bf16_dev((float)v);
		break;
	case GN_DTYPE_I64:
		((int64_t *)p)[i] = gn_to_int(v, -9.2233720368547758e18,
					      9.2233720368547748e18);
		break;
	case GN_DTYPE_I32:
		((int32_t *)p)[i] =
			(int32_t)gn_to_int(v, -2147483648.0, 2147483647.0);
		break;
	case GN_DTYPE_I8:
		((int8_t *)p)[i] = (int8_t)gn_to_int(v, -128.0, 127.0);
		break;
	case GN_DTYPE_U8:
		((uint8_t *)p)[i] = (uint8_t)gn_to_int(v, 0.0, 255.0);
		break;
	case GN_DTYPE_BOOL: ((uint8_t *)p)[i] = v != 0; break;
	default: break;
	}
}

/* Integer element access, as cpu_elementwise.c's load_i64/store_i64. */
__device__ __forceinline__ int64_t gn_load_i64(enum gn_dtype dt, const void *p,
					       uint64_t i)
{
	switch (dt) {
	case GN_DTYPE_I64: return ((const int64_t *)p)[i];
	case GN_DTYPE_I32: return ((const int32_t *)p)[i];
	case GN_DTYPE_I8: return ((const int8_t *)p)[i];
	default: return ((const uint8_t *)p)[i];
	}
}

__device__ __forceinline__ void gn_store_i64(enum gn_dtype dt, void *p,
					     uint64_t i, int64_t v)
{
	switch (dt) {
	case GN_DTYPE_I64: ((int64_t *)p)[i] = v; break;
	case GN_DTYPE_I32: ((int32_t *)p)[i] = (int32_t)v; break;
	case GN_DTYPE_I8: ((int8_t *)p)[i] = (int8_t)v; break;
	default: ((uint8_t *)p)[i] = (uint8_t)v; break;
	}
}

__host__ __device__ __forceinline__ bool gn_is_int(enum gn_dtype d)
{
	return d == GN_DTYPE_I64 || d == GN_DTYPE_I32 || d == GN_DTYPE_I8 ||
	       d == GN_DTYPE_U8;
}

/* The NaN-propagating maximum of the cpu backend: NaN wins, then larger. */
__device__ __forceinline__ double gn_max_nan(double acc, double v)
{
	return v > acc || v != v ? v : acc;
}

/*
 * Block-wide reductions over GN_BLOCK threads: every thread passes its
 * partial and every thread gets the total. `sh` is shared scratch of
 * GN_BLOCK / 32 doubles; the call ends with a barrier so `sh` may be
 * reused at once.
 */
__device__ __forceinline__ double gn_warp_sum(double v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

__device__ __forceinline__ double gn_warp_max(double v)
{
	for (int o = 16; o > 0; o >>= 1)
		v = gn_max_nan(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

__device__ __forceinline__ double gn_block_sum(double v, double *sh)
{
	unsigned int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

	v = gn_warp_sum(v);
	if (lane == 0)
		sh[warp] = v;
	__syncthreads();
	v = lane < GN_BLOCK / 32 ? sh[lane] : 0.0;
	v = gn_warp_sum(v);
	__syncthreads();
	return v;
}

__device__ __forceinline__ double gn_block_max(double v, double *sh)
{
	unsigned int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

	v = gn_warp_max(v);
	if (lane == 0)
		sh[warp] = v;
	__syncthreads();
	v = lane < GN_BLOCK / 32 ? sh[lane] : -INFINITY;
	v = gn_warp_max(v);
	__syncthreads();
	return v;
}

/*
 * The plain maximum softmax takes (cpu_nn.c: `x > mx ? x : mx`, so a NaN
 * never becomes the maximum; it still poisons the sum that follows).
 */
__device__ __forceinline__ double gn_block_max_plain(double v, double *sh)
{
	unsigned int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

	for (int o = 16; o > 0; o >>= 1) {
		double t = __shfl_xor_sync(0xffffffffu, v, o);

		v = t > v ? t : v;
	}
	if (lane == 0)
		sh[warp] = v;
	__syncthreads();
	v = -INFINITY;
	for (unsigned int w = 0; w < GN_BLOCK / 32; w++)
		v = sh[w] > v ? sh[w] : v;
	__syncthreads();
	return v;
}

#endif /* GN_CUDA_KERNELS_COMMON_CUH */
