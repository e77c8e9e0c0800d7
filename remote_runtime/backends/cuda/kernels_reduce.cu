/*
 * Reductions (sum, mean, max, argmax) and indexing (gather, embedding,
 * embedding bag), ports of backends/cpu/cpu_reduce_index.c: values go
 * through gn_load/gn_store in double, so every numeric dtype works.
 *
 * An index outside [-n, n) cannot fail the launch that meets it; the
 * kernel writes zeros in its place and records the first such index in a
 * device-side gn_cuda_index_error, which the host reads at sync and turns
 * into -EINVAL (see cuda_backend.c).
 */
#include <math.h>
#include <stdint.h>

#include <cuda_runtime.h>

#include "kernels_common.cuh"

/*
 * Reduced values of output o, from element k0 in steps of `step`: a sum,
 * or the NaN-propagating max.
 */
__device__ __forceinline__ double
reduce_part(bool is_max, enum gn_dtype dt, const void *x, uint64_t base,
	    const gn_cuda_index &red, uint64_t nred, uint64_t k0, uint64_t step)
{
	double acc = is_max ? -INFINITY : 0;

	for (uint64_t k = k0; k < nred; k += step) {
		double v =
			gn_load(dt, x, base + gn_index_off<uint64_t>(k, red));

		acc = is_max ? gn_max_nan(acc, v) : acc + v;
	}
	return acc;
}

__device__ __forceinline__ void reduce_store(enum gn_op op, enum gn_dtype odt,
					     void *out, uint64_t o, double acc,
					     uint64_t count)
{
	gn_store(odt, out, o,
		 op == GN_OP_REDUCE_MEAN ? acc / (double)count : acc);
}

/* Many short reductions: one thread per output element. */
__global__ void reduce_thread_kernel(enum gn_op op, enum gn_dtype dt,
				     enum gn_dtype odt, const void *x,
				     void *out, uint64_t nout,
				     gn_cuda_index kept, gn_cuda_index red,
				     uint64_t nred, uint64_t count)
{
	bool is_max = op == GN_OP_REDUCE_MAX;

	GN_FOR(uint64_t, o, nout)
	{
		uint64_t base = gn_index_off<uint64_t>(o, kept);

		reduce_store(op, odt, out, o,
			     reduce_part(is_max, dt, x, base, red, nred, 0, 1),
			     count);
	}
}

/* Long reductions: one block per output element. */
__global__ void reduce_block_kernel(enum gn_op op, enum gn_dtype dt,
				    enum gn_dtype odt, const void *x, void *out,
				    uint64_t nout, gn_cuda_index kept,
				    gn_cuda_index red, uint64_t nred,
				    uint64_t count)
{
	__shared__ double sh[GN_BLOCK / 32];
	bool is_max = op == GN_OP_REDUCE_MAX;

	for (uint64_t o = blockIdx.x; o < nout; o += gridDim.x) {
		uint64_t base = gn_index_off<uint64_t>(o, kept);
		double acc = reduce_part(is_max, dt, x, base, red, nred,
					 threadIdx.x, GN_BLOCK);

		acc = is_max ? gn_block_max(acc, sh) : gn_block_sum(acc, sh);
		if (threadIdx.x == 0)
			reduce_store(op, odt, out, o, acc, count);
	}
}

extern "C" cudaError_t gn_cuda_reduce(enum gn_op op, enum gn_dtype dt,
				      enum gn_dtype odt, const void *x,
				      void *out, uint64_t nout,
				      const struct gn_cuda_index *kept,
				      const struct gn_cuda_index *red,
				      uint64_t nred, uint64_t count,
				      cudaStream_t stream)
{
	if (nout == 0)
		return cudaSuccess;
	/*
	 * A block per output pays off once a reduction is long enough to
	 * keep its threads busy, or when there are too few outputs to fill
	 * the GPU with one thread each.
	 */
	if (nred >= 512 || (nred >= 32 && nout < 8192))
		reduce_block_kernel<<<gn_grid_items(nout), GN_BLOCK, 0,
				      stream>>>(op, dt, odt, x, out, nout,
						*kept, *red, nred, count);
	else
		reduce_thread_kernel<<<gn_grid_for(nout), GN_BLOCK, 0,
				       stream>>>(op, dt, odt, x, out, nout,
						 *kept, *red, nred, count);
	return cudaGetLastError();
}

/*
 * Argmax candidates (value, index): the first maximum wins and NaN counts
 * as the largest value, the first NaN winning, as in cpu_reduce_index.c.
 */
__device__ __forceinline__ bool arg_better(double v, uint64_t i, double bv,
					   uint64_t bi)
{
	bool vn = v != v, bn = bv != bv;

	if (vn != bn)
		return vn;
	if (!vn && v != bv)
		return v > bv;
	return i < bi;
}

/* Many short rows or strided columns: one thread per output. */
__global__ void argmax_thread_kernel(enum gn_dtype dt, const void *x,
				     int64_t *out, uint64_t outer, uint64_t len,
				     uint64_t inner)
{
	GN_FOR(uint64_t, t, outer * inner)
	{
		uint64_t a = t / inner, b = t % inner, best = 0;
		double bv = -INFINITY;

		for (uint64_t i = 0; i < len; i++) {
			double v = gn_load(dt, x, (a * len + i) * inner + b);

			if (i == 0 || v > bv || (v != v && bv == bv)) {
				bv = v;
				best = i;
			}
			if (bv != bv)
				break;
		}
		out[t] = (int64_t)best;
	}
}

/* Long contiguous rows (inner == 1): one block per row. */
__global__ void argmax_block_kernel(enum gn_dtype dt, const void *x,
				    int64_t *out, uint64_t outer, uint64_t len)
{
	__shared__ double shv[GN_BLOCK];
	__shared__ uint64_t shi[GN_BLOCK];

	for (uint64_t a = blockIdx.x; a < outer; a += gridDim.x) {
		double bv = 0;
		uint64_t bi = UINT64_MAX;

		for (uint64_t i = threadIdx.x; i < len; i += GN_BLOCK) {
			double v = gn_load(dt, x, a * len + i);

			if (bi == UINT64_MAX || arg_better(v, i, bv, bi)) {
				bv = v;
				bi = i;
			}
		}
		shv[threadIdx.x] = bv;
		shi[threadIdx.x] = bi;
		__syncthreads();
		for (unsigned int h = GN_BLOCK / 2; h > 0; h >>= 1) {
			if (threadIdx.x < h) {
				double v = shv[threadIdx.x + h];
				uint64_t i = shi[threadIdx.x + h];

				if (i != UINT64_MAX &&
				    (shi[threadIdx.x] == UINT64_MAX ||
				     arg_better(v, i, shv[threadIdx.x],
						shi[threadIdx.x]))) {
					shv[threadIdx.x] = v;
					shi[threadIdx.x] = i;
				}
			}
			__syncthreads();
		}
		if (threadIdx.x == 0)
			out[a] = shi[0] == UINT64_MAX ? 0 : (int64_t)shi[0];
		__syncthreads();
	}
}

extern "C" cudaError_t gn_cuda_argmax(enum gn_dtype dt, const void *x,
				      int64_t *out, uint64_t outer,
				      uint64_t len, uint64_t inner,
				      cudaStream_t stream)
{
	if (outer == 0 || inner == 0)
		return cudaSuccess;
	if (inner == 1 && len >= 1024)
		argmax_block_kernel<<<gn_grid_items(outer), GN_BLOCK, 0,
				      stream>>>(dt, x, out, outer, len);
	else
		argmax_thread_kernel<<<gn_grid_for(outer * inner), GN_BLOCK, 0,
				       stream>>>(dt, x, out, outer, len, inner);
	return cudaGetLastError();
}

/*
 * Index j of an index tensor made non-negative, or -1 (recorded in err)
 * when outside [-n, n).
 */
__device__ __forceinline__ int64_t index_at(const void *idx, int idx32,
					    uint64_t j, uint64_t n, int op,
					    gn_cuda_index_error *err)
{
	int64_t v =
		idx32 ? ((const int32_t *)idx)[j] : ((const int64_t *)idx)[j];
	int64_t sn = (int64_t)n;

	if (v < -sn || v >= sn) {
		if (atomicCAS(&err->flag, 0, 1) == 0) {
			err->op = op;
			err->index = v;
			err->bound = sn;
			err->pos = j;
		}
		return -1;
	}
	return v < 0 ? v + sn : v;
}

/* One thread per output element: out[a, j, k] = x[a, idx[j], k]. */
template <typename T>
__global__ void
gather_kernel(int op, const T *__restrict__ x, const void *__restrict__ idx,
	      int idx32, T *__restrict__ out, uint64_t outer, uint64_t n,
	      uint64_t inner, uint64_t nidx, gn_cuda_index_error *err)
{
	GN_FOR(uint64_t, t, outer * nidx * inner)
	{
		uint64_t k = t % inner, j = t / inner % nidx,
			 a = t / inner / nidx;
		int64_t row = index_at(idx, idx32, j, n, op, err);

		out[t] =
			row < 0 ? (T)0 : x[(a * n + (uint64_t)row) * inner + k];
	}
}

template <typename T>
static void gather_launch(int op, const void *x, const void *idx, int idx32,
			  void *out, uint64_t outer, uint64_t n, uint64_t inner,
			  uint64_t nidx, gn_cuda_index_error *err,
			  cudaStream_t stream)
{
	gather_kernel<T>
		<<<gn_grid_for(outer * nidx * inner), GN_BLOCK, 0, stream>>>(
			op, (const T *)x, idx, idx32, (T *)out, outer, n, inner,
			nidx, err);
}

extern "C" cudaError_t gn_cuda_gather(enum gn_op op, size_t esize,
				      const void *x, const void *idx, int idx32,
				      void *out, uint64_t outer, uint64_t n,
				      uint64_t inner, uint64_t nidx,
				      struct gn_cuda_index_error *err,
				      cudaStream_t stream)
{
	if (outer * nidx * inner == 0)
		return cudaSuccess;
	switch (esize) {
	case 1:
		gather_launch<uint8_t>((int)op, x, idx, idx32, out, outer, n,
				       inner, nidx, err, stream);
		break;
	case 2:
		gather_launch<uint16_t>((int)op, x, idx, idx32, out, outer, n,
					inner, nidx, err, stream);
		break;
	case 4:
		gather_launch<uint32_t>((int)op, x, idx, idx32, out, outer, n,
					inner, nidx, err, stream);
		break;
	case 8:
		gather_launch<uint64_t>((int)op, x, idx, idx32, out, outer, n,
					inner, nidx, err, stream);
		break;
	default: return cudaErrorInvalidValue;
	}
	return cudaGetLastError();
}

/* One thread per output element (bag, column), as cpu_reduce_index.c. */
__global__ void embedding_bag_kernel(enum gn_dtype dt, const void *table,
				     const void *idx, int idx32, void *out,
				     uint64_t v, uint64_t d, uint64_t b,
				     uint64_t l, int mode,
				     gn_cuda_index_error *err)
{
	GN_FOR(uint64_t, t, b * d)
	{
		uint64_t bag = t / d, col = t % d;
		double acc = mode == 2 ? -INFINITY : 0;

		for (uint64_t k = 0; k < l; k++) {
			int64_t row = index_at(idx, idx32, bag * l + k, v,
					       GN_OP_EMBEDDING_BAG, err);
			double x;

			if (row < 0)
				continue;
			x = gn_load(dt, table, (uint64_t)row * d + col);
			acc = mode == 2 ? (x > acc ? x : acc) : acc + x;
		}
		if (mode == 1)
			acc = l ? acc / (double)l : 0;
		if (mode == 2 && l == 0)
			acc = 0;
		gn_store(dt, out, t, acc);
	}
}

extern "C" cudaError_t
gn_cuda_embedding_bag(enum gn_dtype dt, const void *table, const void *idx,
		      int idx32, void *out, uint64_t v, uint64_t d, uint64_t b,
		      uint64_t l, int mode, struct gn_cuda_index_error *err,
		      cudaStream_t stream)
{
	if (b * d == 0)
		return cudaSuccess;
	embedding_bag_kernel<<<gn_grid_for(b * d), GN_BLOCK, 0, stream>>>(
		dt, table, idx, idx32, out, v, d, b, l, mode, err);
	return cudaGetLastError();
}
