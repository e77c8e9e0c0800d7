/*
 * Elementwise kernels: unary maps, broadcasting binary ops, comparisons,
 * where and cast, written as grid-stride loops so one launch shape serves
 * any element count. The op is a kernel argument, not a template
 * parameter: every thread of a launch takes the same branch, which costs
 * next to nothing beside the memory traffic, and keeps the number of
 * instantiations (and the build time) small.
 *
 * Ports of backends/cpu/cpu_elementwise.c: f32 takes a float path, every
 * other dtype the cpu backend's double path (or its int64 path for
 * integer arithmetic), so results agree with the reference.
 */
#include <math.h>
#include <stdint.h>

#include <cuda_runtime.h>

#include "kernels_common.cuh"

/* cpu_elementwise.c's unary(), in double. */
__device__ __forceinline__ double unary_d(enum gn_op op, double x,
					  const gn_cuda_unary_attrs &a)
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
		double y = (double)a.f0 * x + (double)a.f1;

		return y < 0 ? 0 : y > 1 ? 1 : y;
	}
	case GN_OP_GELU:
		if (a.gelu_tanh)
			return 0.5 * x *
			       (1 + tanh(0.7978845608028654 *
					 (x + 0.044715 * x * x * x)));
		return 0.5 * x * (1 + erf(x / 1.4142135623730951));
	case GN_OP_CLIP: {
		double lo = a.f0, hi = a.f1;

		return x < lo ? lo : x > hi ? hi : x;
	}
	default: return x; /* cast */
	}
}

/*
 * The f32 path. The cpu backend computes in double and rounds once; the
 * transcendental functions here are float (within 2 ulp of it, far inside
 * the 1e-5 the backends are held to) so that the common activations do
 * not pay for double math, while the piecewise-linear and algebraic ops
 * go through double and come out bit-identical.
 */
__device__ __forceinline__ float unary_f(enum gn_op op, float x,
					 const gn_cuda_unary_attrs &a)
{
	switch (op) {
	case GN_OP_RELU: return x > 0.0f ? x : 0.0f;
	case GN_OP_NEG: return -x;
	case GN_OP_ABS: return fabsf(x);
	case GN_OP_EXP: return expf(x);
	case GN_OP_LOG: return logf(x);
	case GN_OP_ERF: return erff(x);
	case GN_OP_TANH: return tanhf(x);
	case GN_OP_SIGMOID: return 1.0f / (1.0f + expf(-x));
	case GN_OP_SILU: return x / (1.0f + expf(-x));
	case GN_OP_GELU:
		if (a.gelu_tanh)
			return 0.5f * x *
			       (1.0f + tanhf(0.7978845608f *
					     (x + 0.044715f * x * x * x)));
		return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
	default: return (float)unary_d(op, (double)x, a);
	}
}

template <typename I>
__global__ void unary_f32_kernel(enum gn_op op, const float *__restrict__ x,
				 float *__restrict__ y, I n,
				 gn_cuda_unary_attrs a)
{
	GN_FOR(I, i, n)
	{
		y[i] = unary_f(op, x[i], a);
	}
}

template <typename I>
__global__ void unary_any_kernel(enum gn_op op, enum gn_dtype dt,
				 enum gn_dtype odt, const void *__restrict__ x,
				 void *__restrict__ y, I n,
				 gn_cuda_unary_attrs a)
{
	/* Integer neg and abs stay in int64, as on the cpu backend. */
	bool exact = gn_is_int(dt) && odt == dt &&
		     (op == GN_OP_NEG || op == GN_OP_ABS);

	GN_FOR(I, i, n)
	{
		if (exact) {
			int64_t v = gn_load_i64(dt, x, i);
			uint64_t u = (uint64_t)v;

			/* Two's complement negation, wrapping at INT64_MIN. */
			if (op == GN_OP_NEG || v < 0)
				u = 0 - u;
			gn_store_i64(odt, y, i, (int64_t)u);
		} else {
			gn_store(odt, y, i, unary_d(op, gn_load(dt, x, i), a));
		}
	}
}

extern "C" cudaError_t gn_cuda_unary(enum gn_op op, enum gn_dtype dt,
				     enum gn_dtype odt, const void *x, void *y,
				     uint64_t n,
				     const struct gn_cuda_unary_attrs *at,
				     cudaStream_t stream)
{
	unsigned int grid = gn_grid_for(n);
	bool f32 = dt == GN_DTYPE_F32 && odt == GN_DTYPE_F32;

	if (n == 0)
		return cudaSuccess;
	if (f32 && gn_fits32(n))
		unary_f32_kernel<uint32_t><<<grid, GN_BLOCK, 0, stream>>>(
			op, (const float *)x, (float *)y, (uint32_t)n, *at);
	else if (f32)
		unary_f32_kernel<uint64_t><<<grid, GN_BLOCK, 0, stream>>>(
			op, (const float *)x, (float *)y, n, *at);
	else if (gn_fits32(n))
		unary_any_kernel<uint32_t><<<grid, GN_BLOCK, 0, stream>>>(
			op, dt, odt, x, y, (uint32_t)n, *at);
	else
		unary_any_kernel<uint64_t><<<grid, GN_BLOCK, 0, stream>>>(
			op, dt, odt, x, y, n, *at);
	return cudaGetLastError();
}

/*
 * f32 arithmetic in float. The cpu backend computes these in double and
 * rounds to float; for +, -, *, / of two floats that double rounding
 * gives the correctly rounded float result, which is what float
 * arithmetic gives directly, so both agree bit for bit.
 */
__device__ __forceinline__ float binary_f(enum gn_op op, float x, float y)
{
	switch (op) {
	case GN_OP_ADD: return x + y;
	case GN_OP_SUB: return x - y;
	case GN_OP_MUL: return x * y;
	case GN_OP_DIV: return x / y;
	case GN_OP_MAXIMUM: return x > y || x != x ? x : y;
	case GN_OP_MINIMUM: return x < y || x != x ? x : y;
	default: return 0.0f;
	}
}

/* cpu_elementwise.c's binary(), in double. */
__device__ __forceinline__ double binary_d(enum gn_op op, double x, double y)
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

/* cpu_elementwise.c's binary_int(), wrapping; div never reaches here. */
__device__ __forceinline__ int64_t binary_i(enum gn_op op, int64_t x, int64_t y)
{
	switch (op) {
	case GN_OP_ADD: return (int64_t)((uint64_t)x + (uint64_t)y);
	case GN_OP_SUB: return (int64_t)((uint64_t)x - (uint64_t)y);
	case GN_OP_MUL: return (int64_t)((uint64_t)x * (uint64_t)y);
	case GN_OP_MAXIMUM: return x > y ? x : y;
	case GN_OP_MINIMUM: return x < y ? x : y;
	default: return 0;
	}
}

template <typename I>
__global__ void binary_f32_flat(enum gn_op op, const float *__restrict__ a,
				const float *__restrict__ b,
				float *__restrict__ out, I n)
{
	GN_FOR(I, i, n)
	{
		out[i] = binary_f(op, a[i], b[i]);
	}
}

template <typename I>
__global__ void binary_f32_bcast(enum gn_op op, const float *__restrict__ a,
				 const float *__restrict__ b,
				 float *__restrict__ out, I n, gn_cuda_bcast bc)
{
	GN_FOR(I, i, n)
	{
		I off[2];

		gn_bcast_off<I, 2>(i, bc, off);
		out[i] = binary_f(op, a[off[0]], b[off[1]]);
	}
}

template <typename I>
__global__ void binary_any_kernel(enum gn_op op, enum gn_dtype dt,
				  enum gn_dtype odt, const void *__restrict__ a,
				  const void *__restrict__ b,
				  void *__restrict__ out, I n, gn_cuda_bcast bc)
{
	bool int_path = gn_is_int(dt) && odt == dt;

	GN_FOR(I, i, n)
	{
		I off[2];

		gn_bcast_off<I, 2>(i, bc, off);
		if (int_path)
			gn_store_i64(odt, out, i,
				     binary_i(op, gn_load_i64(dt, a, off[0]),
					      gn_load_i64(dt, b, off[1])));
		else
			gn_store(odt, out, i,
				 binary_d(op, gn_load(dt, a, off[0]),
					  gn_load(dt, b, off[1])));
	}
}

/* The ops binary_f computes (the cpu backend's f32 fast path). */
static bool f32_path(enum gn_op op, enum gn_dtype dt, enum gn_dtype odt)
{
	return dt == GN_DTYPE_F32 && odt == GN_DTYPE_F32 &&
	       (op == GN_OP_ADD || op == GN_OP_SUB || op == GN_OP_MUL ||
		op == GN_OP_DIV || op == GN_OP_MAXIMUM || op == GN_OP_MINIMUM);
}

extern "C" cudaError_t gn_cuda_binary(enum gn_op op, enum gn_dtype dt,
				      enum gn_dtype odt, const void *a,
				      const void *b, void *out, uint64_t n,
				      const struct gn_cuda_bcast *bc,
				      cudaStream_t stream)
{
	bool flat =
		bc->ndim == 1 && bc->stride[0][0] == 1 && bc->stride[1][0] == 1;
	unsigned int grid = gn_grid_for(n);
	const float *fa = (const float *)a, *fb = (const float *)b;
	float *fo = (float *)out;

	if (n == 0)
		return cudaSuccess;
	if (f32_path(op, dt, odt)) {
		if (flat && gn_fits32(n))
			binary_f32_flat<uint32_t>
				<<<grid, GN_BLOCK, 0, stream>>>(op, fa, fb, fo,
								(uint32_t)n);
		else if (flat)
			binary_f32_flat<uint64_t>
				<<<grid, GN_BLOCK, 0, stream>>>(op, fa, fb, fo,
								n);
		else if (gn_fits32(n))
			binary_f32_bcast<uint32_t>
				<<<grid, GN_BLOCK, 0, stream>>>(
					op, fa, fb, fo, (uint32_t)n, *bc);
		else
			binary_f32_bcast<uint64_t>
				<<<grid, GN_BLOCK, 0, stream>>>(op, fa, fb, fo,
								n, *bc);
	} else if (gn_fits32(n)) {
		binary_any_kernel<uint32_t><<<grid, GN_BLOCK, 0, stream>>>(
			op, dt, odt, a, b, out, (uint32_t)n, *bc);
	} else {
		binary_any_kernel<uint64_t><<<grid, GN_BLOCK, 0, stream>>>(
			op, dt, odt, a, b, out, n, *bc);
	}
	return cudaGetLastError();
}

/*
 * Where copies elements as raw bits of their size: the value chosen is
 * the operand's own, whatever its dtype.
 */
template <typename T, typename I>
__global__ void where_kernel(const uint8_t *__restrict__ cond,
			     const T *__restrict__ a, const T *__restrict__ b,
			     T *__restrict__ out, I n, gn_cuda_bcast bc)
{
	GN_FOR(I, i, n)
	{
		I off[3];

		gn_bcast_off<I, 3>(i, bc, off);
		out[i] = cond[off[0]] ? a[off[1]] : b[off[2]];
	}
}

template <typename T>
static void where_launch(const uint8_t *cond, const void *a, const void *b,
			 void *out, uint64_t n, const gn_cuda_bcast *bc,
			 cudaStream_t stream)
{
	unsigned int grid = gn_grid_for(n);

	if (gn_fits32(n))
		where_kernel<T, uint32_t><<<grid, GN_BLOCK, 0, stream>>>(
			cond, (const T *)a, (const T *)b, (T *)out, (uint32_t)n,
			*bc);
	else
		where_kernel<T, uint64_t><<<grid, GN_BLOCK, 0, stream>>>(
			cond, (const T *)a, (const T *)b, (T *)out, n, *bc);
}

extern "C" cudaError_t gn_cuda_where(size_t esize, const uint8_t *cond,
				     const void *a, const void *b, void *out,
				     uint64_t n, const struct gn_cuda_bcast *bc,
				     cudaStream_t stream)
{
	if (n == 0)
		return cudaSuccess;
	switch (esize) {
	case 1: where_launch<uint8_t>(cond, a, b, out, n, bc, stream); break;
	case 2: where_launch<uint16_t>(cond, a, b, out, n, bc, stream); break;
	case 4: where_launch<uint32_t>(cond, a, b, out, n, bc, stream); break;
	case 8: where_launch<uint64_t>(cond, a, b, out, n, bc, stream); break;
	default: return cudaErrorInvalidValue;
	}
	return cudaGetLastError();
}
