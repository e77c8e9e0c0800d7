/*
 * Neural-network kernels in f32: pooling, global average pooling, batch
 * and layer norm, softmax along any axis, and the masked softmax of
 * attention. Convolution and the matrix products go to cuDNN and cuBLAS
 * (cuda_nn.c, cuda_linalg.c).
 *
 * Ports of backends/cpu/cpu_nn.c: where the cpu backend accumulates in
 * double, so do these (with a tree order instead of a sequential one,
 * which moves a double sum by a few double ulps, invisible in the f32
 * result).
 */
#include <math.h>
#include <stdint.h>

#include <cuda_runtime.h>

#include "kernels_common.cuh"

/*
 * One thread per output element, the window loop of cpu_nn.c's pool2d:
 * max lets NaN win; average divides by the window clipped to the input,
 * or with count_include_pad by the window clipped to the padded input
 * (PyTorch counts padding, not the ceil_mode overhang).
 */
__global__ void pool2d_kernel(const float *__restrict__ x,
			      float *__restrict__ y, gn_cuda_pool p)
{
	uint64_t n = (uint64_t)p.nc * p.ho * p.wo;

	GN_FOR(uint64_t, i, n)
	{
		int64_t ox = (int64_t)(i % (uint64_t)p.wo);
		int64_t oy = (int64_t)(i / (uint64_t)p.wo % (uint64_t)p.ho);
		int64_t plane = (int64_t)(i / ((uint64_t)p.wo * p.ho));
		int64_t hs = oy * p.sh - p.pt, ws = ox * p.sw - p.pl;
		int64_t he = hs + p.kh, we = ws + p.kw;
		int64_t hp = he < p.h + p.pb ? he : p.h + p.pb;
		int64_t wp = we < p.w + p.pr ? we : p.w + p.pr;
		int64_t area = (hp - hs) * (wp - ws);
		double acc = p.is_max ? -INFINITY : 0;
		int64_t cnt = 0;
		const float *xp = x + plane * p.h * p.w;

		hs = hs < 0 ? 0 : hs;
		ws = ws < 0 ? 0 : ws;
		he = he > p.h ? p.h : he;
		we = we > p.w ? p.w : we;
		for (int64_t iy = hs; iy < he; iy++)
			for (int64_t ix = ws; ix < we; ix++) {
				float v = xp[iy * p.w + ix];

				if (p.is_max)
					acc = v > acc || v != v ? v : acc;
				else
					acc += v;
				cnt++;
			}
		if (!p.is_max)
			acc /= (double)(p.incl ? area : cnt);
		y[i] = (float)acc;
	}
}

extern "C" cudaError_t gn_cuda_pool2d(const float *x, float *y,
				      const struct gn_cuda_pool *p,
				      cudaStream_t stream)
{
	uint64_t n = (uint64_t)p->nc * p->ho * p->wo;

	if (n == 0)
		return cudaSuccess;
	pool2d_kernel<<<gn_grid_for(n), GN_BLOCK, 0, stream>>>(x, y, *p);
	return cudaGetLastError();
}

/* One block per row (grid-stride over rows). */
__global__ void row_mean_kernel(const float *__restrict__ x,
				float *__restrict__ y, uint64_t rows,
				uint64_t len)
{
	__shared__ double sh[GN_BLOCK / 32];

	for (uint64_t r = blockIdx.x; r < rows; r += gridDim.x) {
		const float *xr = x + r * len;
		double s = 0;

		for (uint64_t i = threadIdx.x; i < len; i += GN_BLOCK)
			s += xr[i];
		s = gn_block_sum(s, sh);
		if (threadIdx.x == 0)
			y[r] = len ? (float)(s / (double)len) : NAN;
	}
}

extern "C" cudaError_t gn_cuda_row_mean(const float *x, float *y, uint64_t rows,
					uint64_t len, cudaStream_t stream)
{
	if (rows == 0)
		return cudaSuccess;
	row_mean_kernel<<<gn_grid_items(rows), GN_BLOCK, 0, stream>>>(
		x, y, rows, len);
	return cudaGetLastError();
}

/*
 * One block per (image, channel) plane, so each thread derives the
 * channel's scale and shift once rather than once per element.
 */
__global__ void
batchnorm_kernel(const float *__restrict__ x, const float *__restrict__ mean,
		 const float *__restrict__ var, const float *__restrict__ gamma,
		 const float *__restrict__ beta, float *__restrict__ y,
		 uint64_t planes, uint64_t c, uint64_t inner, float eps)
{
	for (uint64_t p = blockIdx.x; p < planes; p += gridDim.x) {
		uint64_t ch = p % c;
		double s = gamma[ch] / sqrt((double)var[ch] + eps);
		double sh = beta[ch] - mean[ch] * s;
		const float *xs = x + p * inner;
		float *ys = y + p * inner;

		for (uint64_t i = threadIdx.x; i < inner; i += GN_BLOCK)
			ys[i] = (float)(xs[i] * s + sh);
	}
}

extern "C" cudaError_t gn_cuda_batchnorm(const float *x, const float *mean,
					 const float *var, const float *gamma,
					 const float *beta, float *y,
					 uint64_t n, uint64_t c, uint64_t inner,
					 float eps, cudaStream_t stream)
{
	uint64_t planes = n * c;

	if (planes == 0 || inner == 0)
		return cudaSuccess;
	batchnorm_kernel<<<gn_grid_items(planes), GN_BLOCK, 0, stream>>>(
		x, mean, var, gamma, beta, y, planes, c, inner, eps);
	return cudaGetLastError();
}

/* One block per row: mean, then the variance about it, then the output. */
__global__ void layernorm_kernel(const float *__restrict__ x,
				 const float *__restrict__ gamma,
				 const float *__restrict__ beta,
				 float *__restrict__ y, uint64_t rows,
				 uint64_t len, float eps)
{
	__shared__ double sh[GN_BLOCK / 32];

	for (uint64_t r = blockIdx.x; r < rows; r += gridDim.x) {
		const float *xr = x + r * len;
		float *yr = y + r * len;
		double mean = 0, var = 0, inv;

		for (uint64_t i = threadIdx.x; i < len; i += GN_BLOCK)
			mean += xr[i];
		mean = gn_block_sum(mean, sh) / (double)len;
		for (uint64_t i = threadIdx.x; i < len; i += GN_BLOCK)
			var += (xr[i] - mean) * (xr[i] - mean);
		var = gn_block_sum(var, sh) / (double)len;
		inv = 1.0 / sqrt(var + eps);
		for (uint64_t i = threadIdx.x; i < len; i += GN_BLOCK)
			yr[i] = (float)((xr[i] - mean) * inv * gamma[i] +
					beta[i]);
	}
}

extern "C" cudaError_t gn_cuda_layernorm(const float *x, const float *gamma,
					 const float *beta, float *y,
					 uint64_t rows, uint64_t len, float eps,
					 cudaStream_t stream)
{
	if (rows == 0 || len == 0)
		return cudaSuccess;
	layernorm_kernel<<<gn_grid_items(rows), GN_BLOCK, 0, stream>>>(
		x, gamma, beta, y, rows, len, eps);
	return cudaGetLastError();
}

/*
 * Softmax of one slice given its max and sum of exponentials: as
 * cpu_nn.c, log-softmax is x - max - log(sum) and softmax exp(x - max) /
 * sum. exp runs in float on (x - max), which is within a few float ulps
 * of the double the cpu backend exponentiates.
 */
__device__ __forceinline__ float softmax_out(float v, float mx, double sum,
					     int log_softmax)
{
	if (log_softmax)
		return (float)((double)v - (double)mx - log(sum));
	return (float)((double)expf(v - mx) / sum);
}

/* inner == 1: one block per contiguous row. */
__global__ void softmax_rows_kernel(const float *__restrict__ x,
				    float *__restrict__ y, uint64_t rows,
				    uint64_t len, int log_softmax)
{
	__shared__ double sh[GN_BLOCK / 32];

	for (uint64_t r = blockIdx.x; r < rows; r += gridDim.x) {
		const float *xr = x + r * len;
		float *yr = y + r * len;
		double mx = -INFINITY, sum = 0;
		float fmx;

		/* Plain max, as cpu_nn.c: a NaN does not win here. */
		for (uint64_t i = threadIdx.x; i < len; i += GN_BLOCK)
			mx = xr[i] > mx ? xr[i] : mx;
		mx = gn_block_max_plain(mx, sh);
		fmx = (float)mx;
		for (uint64_t i = threadIdx.x; i < len; i += GN_BLOCK)
			sum += expf(xr[i] - fmx);
		sum = gn_block_sum(sum, sh);
		for (uint64_t i = threadIdx.x; i < len; i += GN_BLOCK)
			yr[i] = softmax_out(xr[i], fmx, sum, log_softmax);
	}
}

/* inner > 1: one thread per (outer, inner) column, coalesced on inner. */
__global__ void softmax_cols_kernel(const float *__restrict__ x,
				    float *__restrict__ y, uint64_t outer,
				    uint64_t len, uint64_t inner,
				    int log_softmax)
{
	GN_FOR(uint64_t, t, outer * inner)
	{
		uint64_t o = t / inner, in = t % inner;
		const float *xs = x + o * len * inner + in;
		float *ys = y + o * len * inner + in;
		float mx = -INFINITY;
		double sum = 0;

		for (uint64_t i = 0; i < len; i++)
			mx = xs[i * inner] > mx ? xs[i * inner] : mx;
		for (uint64_t i = 0; i < len; i++)
			sum += expf(xs[i * inner] - mx);
		for (uint64_t i = 0; i < len; i++)
			ys[i * inner] = softmax_out(xs[i * inner], mx, sum,
						    log_softmax);
	}
}

extern "C" cudaError_t gn_cuda_softmax(const float *x, float *y, uint64_t outer,
				       uint64_t len, uint64_t inner,
				       int log_softmax, cudaStream_t stream)
{
	if (outer == 0 || len == 0 || inner == 0)
		return cudaSuccess;
	if (inner == 1)
		softmax_rows_kernel<<<gn_grid_items(outer), GN_BLOCK, 0,
				      stream>>>(x, y, outer, len, log_softmax);
	else
		softmax_cols_kernel<<<gn_grid_for(outer * inner), GN_BLOCK, 0,
				      stream>>>(x, y, outer, len, inner,
						log_softmax);
	return cudaGetLastError();
}

/* Score j of row r after the causal rule and the mask, as cpu_nn.c. */
__device__ __forceinline__ float attn_score(float s, uint64_t i, uint64_t j,
					    int causal, const void *mask,
					    int is_bool, uint64_t mbase,
					    int64_t mstride_j)
{
	if (causal && j > i)
		s = -INFINITY;
	if (mask != NULL) {
		uint64_t mo = mbase + j * (uint64_t)mstride_j;

		if (is_bool)
			s = ((const uint8_t *)mask)[mo] ? s : -INFINITY;
		else
			s += ((const float *)mask)[mo];
	}
	return s;
}

/*
 * One block per score row: mask in place, then max, sum of exponentials
 * and the normalised probabilities. A row with every score masked gives
 * NaN, as on the cpu backend (exp(-inf - -inf)).
 */
__global__ void attn_softmax_kernel(float *__restrict__ scores, uint64_t rows,
				    uint64_t row0, uint64_t l, uint64_t s,
				    int causal, gn_cuda_attn_mask m)
{
	__shared__ double sh[GN_BLOCK / 32];
	int nd = m.mix.ndim;

	for (uint64_t r = blockIdx.x; r < rows; r += gridDim.x) {
		float *row = scores + r * s;
		uint64_t gr = row0 + r, i = gr % l, mbase = 0;
		double mx = -INFINITY, sum = 0;
		float fmx;

		if (m.mask != NULL) {
			/* The row's offset: coords over [batch..., l]. */
			uint64_t rem = gr;

			for (int d = nd - 2; d >= 0; d--) {
				uint64_t dim = (uint64_t)m.mix.shape[d];

				mbase += rem % dim * (uint64_t)m.mix.stride[d];
				rem /= dim;
			}
		}
		for (uint64_t j = threadIdx.x; j < s; j += GN_BLOCK) {
			float v = attn_score(row[j], i, j, causal, m.mask,
					     m.is_bool, mbase,
					     m.mask ? m.mix.stride[nd - 1] : 0);

			row[j] = v;
			mx = v > mx ? v : mx;
		}
		mx = gn_block_max_plain(mx, sh);
		fmx = (float)mx;
		for (uint64_t j = threadIdx.x; j < s; j += GN_BLOCK)
			sum += expf(row[j] - fmx);
		sum = gn_block_sum(sum, sh);
		for (uint64_t j = threadIdx.x; j < s; j += GN_BLOCK)
			row[j] = (float)((double)expf(row[j] - fmx) / sum);
	}
}

extern "C" cudaError_t gn_cuda_attn_softmax(float *scores, uint64_t rows,
					    uint64_t row0, uint64_t l,
					    uint64_t s, int causal,
					    const struct gn_cuda_attn_mask *m,
					    cudaStream_t stream)
{
	if (rows == 0 || s == 0 || l == 0)
		return cudaSuccess;
	attn_softmax_kernel<<<gn_grid_items(rows), GN_BLOCK, 0, stream>>>(
		scores, rows, row0, l, s, causal, *m);
	return cudaGetLastError();
}
