/*
 * An emulated CUDA device for tests/gpu/emu/run.sh: the runtime calls the
 * cuda backend makes (device memory is host memory, every call completes
 * before it returns), kernel launches (blocks one after another; threads
 * one after another, or as host threads meeting at a barrier for kernels
 * that synchronise), and cuBLAS's sgemm and cuDNN's forward convolution
 * as plain loops that check their arguments as the libraries do.
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mutex>
#include <thread>
#include <vector>

dim3 emu_block_idx, emu_block_dim, emu_grid_dim;
thread_local unsigned int emu_thread_x;

static pthread_barrier_t g_bar;
static double g_slots[1024];
static bool g_in_sync_kernel;
static std::mutex g_atomic;

/*
 * Kernels that synchronise must be listed in prep.py's SYNC, so that
 * their threads run concurrently; anything else is a bug in the list.
 */
void __syncthreads(void)
{
	if (!g_in_sync_kernel) {
		fprintf(stderr, "emu: __syncthreads in a kernel prep.py does "
				"not list in SYNC\n");
		abort();
	}
	pthread_barrier_wait(&g_bar);
}

double emu_shfl_xor(double v, int o)
{
	g_slots[emu_thread_x] = v;
	__syncthreads();
	double r = g_slots[emu_thread_x ^ (unsigned)o];
	__syncthreads();
	return r;
}

int atomicCAS(int *p, int cmp, int val)
{
	std::lock_guard<std::mutex> l(g_atomic);
	int old = *p;
	if (old == cmp)
		*p = val;
	return old;
}

void emu_run(unsigned grid, unsigned block, bool sync,
	     const std::function<void()> &body)
{
	if (grid == 0 || block == 0 || grid > 65536u * 32768u || block > 1024) {
		fprintf(stderr, "emu: bad launch %u x %u\n", grid, block);
		abort();
	}
	emu_grid_dim = dim3{grid, 1, 1};
	emu_block_dim = dim3{block, 1, 1};
	for (unsigned b = 0; b < grid; b++) {
		emu_block_idx = dim3{b, 1, 1};
		if (!sync) {
			for (unsigned t = 0; t < block; t++) {
				emu_thread_x = t;
				body();
			}
			continue;
		}
		pthread_barrier_init(&g_bar, NULL, block);
		g_in_sync_kernel = true;
		std::vector<std::thread> th;
		for (unsigned t = 0; t < block; t++)
			th.emplace_back([t, &body]() {
				emu_thread_x = t;
				body();
			});
		for (auto &x : th)
			x.join();
		g_in_sync_kernel = false;
		pthread_barrier_destroy(&g_bar);
	}
}

extern "C" {
cudaError_t cudaGetDeviceCount(int *n)
{
	*n = getenv("EMU_NO_GPU") ? 0 : 1;
	return cudaSuccess;
}
cudaError_t cudaSetDevice(int)
{
	return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int)
{
	memset(p, 0, sizeof(*p));
	strcpy(p->name, "Emulated GPU");
	p->major = 9;
	p->multiProcessorCount = 1;
	p->totalGlobalMem = (size_t)1 << 30;
	return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int *v)
{
	*v = 13000;
	return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int *v)
{
	*v = 13000;
	return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int)
{
	*s = (cudaStream_t)malloc(1);
	return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s)
{
	free(s);
	return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t)
{
	return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int)
{
	*e = (cudaEvent_t)malloc(1);
	return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e)
{
	free(e);
	return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t)
{
	return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t)
{
	return cudaSuccess;
}
cudaError_t cudaMalloc(void **p, size_t n)
{
	if (n > ((size_t)1 << 40)) {
		*p = NULL;
		return cudaErrorMemoryAllocation;
	}
	*p = malloc(n);
	if (*p == NULL)
		return cudaErrorMemoryAllocation;
	memset(*p, 0xff, n); /* NaN garbage, as uninitialised memory may be */
	return cudaSuccess;
}
cudaError_t cudaFree(void *p)
{
	free(p);
	return cudaSuccess;
}
cudaError_t cudaHostAlloc(void **p, size_t n, unsigned int)
{
	*p = malloc(n);
	return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFreeHost(void *p)
{
	free(p);
	return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *f, size_t *t)
{
	*f = *t = (size_t)1 << 30;
	return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n,
			    enum cudaMemcpyKind, cudaStream_t)
{
	if (n)
		memmove(d, s, n);
	return cudaSuccess;
}
cudaError_t cudaMemset(void *d, int v, size_t n)
{
	memset(d, v, n);
	return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t)
{
	memset(d, v, n);
	return cudaSuccess;
}
cudaError_t cudaGetLastError(void)
{
	return cudaSuccess;
}
const char *cudaGetErrorName(cudaError_t)
{
	return "cudaErrorEmu";
}
const char *cudaGetErrorString(cudaError_t)
{
	return "emulated error";
}

/* cuBLAS */
cublasStatus_t cublasCreate(cublasHandle_t *h)
{
	*h = (cublasHandle_t)malloc(1);
	return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h)
{
	free(h);
	return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t)
{
	return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t)
{
	return CUBLAS_STATUS_SUCCESS;
}
const char *cublasGetStatusName(cublasStatus_t)
{
	return "CUBLAS_EMU";
}
const char *cublasGetStatusString(cublasStatus_t)
{
	return "emulated";
}

static cublasStatus_t gemm(cublasOperation_t ta, cublasOperation_t tb,
			   int64_t m, int64_t n, int64_t k, float alpha,
			   const float *a, int64_t lda, const float *b,
			   int64_t ldb, float beta, float *c, int64_t ldc)
{
	if (m < 0 || n < 0 || k < 0 ||
	    lda < (ta == CUBLAS_OP_N ? (m > 1 ? m : 1) : (k > 1 ? k : 1)) ||
	    ldb < (tb == CUBLAS_OP_N ? (k > 1 ? k : 1) : (n > 1 ? n : 1)) ||
	    ldc < (m > 1 ? m : 1)) {
		fprintf(stderr,
			"emu: cublas gemm bad args m %ld n %ld k %ld lda %ld "
			"ldb %ld ldc %ld ta %d tb %d\n",
			(long)m, (long)n, (long)k, (long)lda, (long)ldb,
			(long)ldc, ta, tb);
		return CUBLAS_STATUS_INVALID_VALUE;
	}
	for (int64_t j = 0; j < n; j++)
		for (int64_t i = 0; i < m; i++) {
			double acc = 0;
			for (int64_t p = 0; p < k; p++) {
				float av = ta == CUBLAS_OP_N ? a[i + p * lda]
							     : a[p + i * lda];
				float bv = tb == CUBLAS_OP_N ? b[p + j * ldb]
							     : b[j + p * ldb];
				acc += (double)av * bv;
			}
			float r = (float)(alpha * acc);
			c[i + j * ldc] =
				beta == 0.0f ? r : r + beta * c[i + j * ldc];
		}
	return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSgemm_64(cublasHandle_t, cublasOperation_t ta,
			      cublasOperation_t tb, int64_t m, int64_t n,
			      int64_t k, const float *alpha, const float *a,
			      int64_t lda, const float *b, int64_t ldb,
			      const float *beta, float *c, int64_t ldc)
{
	return gemm(ta, tb, m, n, k, *alpha, a, lda, b, ldb, *beta, c, ldc);
}
cublasStatus_t cublasSgemmStridedBatched_64(
	cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int64_t m,
	int64_t n, int64_t k, const float *alpha, const float *a, int64_t lda,
	long long sa, const float *b, int64_t ldb, long long sb,
	const float *beta, float *c, int64_t ldc, long long sc, int64_t count)
{
	for (int64_t t = 0; t < count; t++) {
		cublasStatus_t s =
			gemm(ta, tb, m, n, k, *alpha, a + t * sa, lda,
			     b + t * sb, ldb, *beta, c + t * sc, ldc);
		if (s)
			return s;
	}
	return CUBLAS_STATUS_SUCCESS;
}
} /* extern "C" */

/* cuDNN */
struct emu_tensor {
	int n, c, h, w;
};
struct emu_filter {
	int k, c, h, w;
};
struct emu_conv {
	int ph, pw, u, v, dh, dw, groups, mode, math;
};
extern "C" {
const char *cudnnGetErrorString(cudnnStatus_t)
{
	return "CUDNN_EMU";
}
cudnnStatus_t cudnnCreate(cudnnHandle_t *h)
{
	if (getenv("EMU_NO_CUDNN"))
		return CUDNN_STATUS_NOT_SUPPORTED;
	*h = (cudnnHandle_t)malloc(1);
	return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t h)
{
	free(h);
	return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t, cudaStream_t)
{
	return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *d)
{
	*d = (cudnnTensorDescriptor_t)calloc(1, sizeof(emu_tensor));
	return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d)
{
	free(d);
	return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *d)
{
	*d = (cudnnFilterDescriptor_t)calloc(1, sizeof(emu_filter));
	return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d)
{
	free(d);
	return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *d)
{
	*d = (cudnnConvolutionDescriptor_t)calloc(1, sizeof(emu_conv));
	return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d)
{
	free(d);
	return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d,
					 cudnnTensorFormat_t, cudnnDataType_t,
					 int n, int c, int h, int w)
{
	if (n < 1 || c < 1 || h < 1 || w < 1)
		return CUDNN_STATUS_BAD_PARAM;
	*d = emu_tensor{n, c, h, w};
	return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d,
					 cudnnDataType_t, cudnnTensorFormat_t,
					 int k, int c, int h, int w)
{
	if (k < 1 || c < 1 || h < 1 || w < 1)
		return CUDNN_STATUS_BAD_PARAM;
	*d = emu_filter{k, c, h, w};
	return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d,
					      int ph, int pw, int u, int v,
					      int dh, int dw,
					      cudnnConvolutionMode_t m,
					      cudnnDataType_t)
{
	if (ph < 0 || pw < 0 || u < 1 || v < 1 || dh < 1 || dw < 1)
		return CUDNN_STATUS_BAD_PARAM;
	d->ph = ph;
	d->pw = pw;
	d->u = u;
	d->v = v;
	d->dh = dh;
	d->dw = dw;
	d->mode = m;
	if (d->groups == 0)
		d->groups = 1;
	return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t d,
					    int g)
{
	d->groups = g;
	return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d,
					  cudnnMathType_t m)
{
	d->math = m;
	return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionNdForwardOutputDim(
	cudnnConvolutionDescriptor_t d, cudnnTensorDescriptor_t x,
	cudnnFilterDescriptor_t w, int nb, int *dims)
{
	if (nb != 4 || x->c != w->c * d->groups)
		return CUDNN_STATUS_BAD_PARAM;
	dims[0] = x->n;
	dims[1] = w->k;
	dims[2] = (x->h + 2 * d->ph - ((w->h - 1) * d->dh + 1)) / d->u + 1;
	dims[3] = (x->w + 2 * d->pw - ((w->w - 1) * d->dw + 1)) / d->v + 1;
	return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(
	cudnnHandle_t, cudnnTensorDescriptor_t, cudnnFilterDescriptor_t,
	cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t, int req,
	int *got, cudnnConvolutionFwdAlgoPerf_t *perf)
{
	cudnnConvolutionFwdAlgo_t order[4] = {
		CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD,
		CUDNN_CONVOLUTION_FWD_ALGO_FFT,
		CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
		CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM};
	if (c->math != CUDNN_FMA_MATH) {
		fprintf(stderr, "emu: conv math type is not FMA\n");
		abort();
	}
	*got = req < 4 ? req : 4;
	for (int i = 0; i < *got; i++) {
		memset(&perf[i], 0, sizeof(perf[i]));
		perf[i].algo = order[i];
		perf[i].status = CUDNN_STATUS_SUCCESS;
		perf[i].mathType =
			i == 0 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
	}
	return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(
	cudnnHandle_t, cudnnTensorDescriptor_t, cudnnFilterDescriptor_t,
	cudnnConvolutionDescriptor_t, cudnnTensorDescriptor_t,
	cudnnConvolutionFwdAlgo_t a, size_t *size)
{
	*size = a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM ? 0 : 4096;
	return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnConvolutionForward(
	cudnnHandle_t, const void *alpha, cudnnTensorDescriptor_t xd,
	const void *xv, cudnnFilterDescriptor_t wd, const void *wv,
	cudnnConvolutionDescriptor_t cd, cudnnConvolutionFwdAlgo_t a, void *ws,
	size_t wss, const void *beta, cudnnTensorDescriptor_t yd, void *yv)
{
	size_t need = a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM ? 0 : 4096;
	const float *x = (const float *)xv, *w = (const float *)wv;
	float *y = (float *)yv;
	int dims[4];
	if (wss < need || (need && ws == NULL) ||
	    cd->mode != CUDNN_CROSS_CORRELATION)
		return CUDNN_STATUS_BAD_PARAM;
	if (need)
		memset(ws, 0x5a, wss); /* touch the whole workspace */
	if (cudnnGetConvolutionNdForwardOutputDim(cd, xd, wd, 4, dims) ||
	    dims[0] != yd->n || dims[1] != yd->c || dims[2] != yd->h ||
	    dims[3] != yd->w)
		return CUDNN_STATUS_BAD_PARAM;
	int G = cd->groups, Og = wd->k / G, Cg = wd->c;
	for (int n = 0; n < yd->n; n++)
		for (int o = 0; o < yd->c; o++)
			for (int oy = 0; oy < yd->h; oy++)
				for (int ox = 0; ox < yd->w; ox++) {
					double acc = 0;
					int g = o / Og;
					for (int ci = 0; ci < Cg; ci++)
						for (int ky = 0; ky < wd->h;
						     ky++)
							for (int kx = 0;
							     kx < wd->w; kx++) {
								int iy =
									oy * cd->u -
									cd->ph +
									ky * cd->dh;
								int ix =
									ox * cd->v -
									cd->pw +
									kx * cd->dw;
								if (iy < 0 ||
								    iy >= xd->h ||
								    ix < 0 ||
								    ix >= xd->w)
									continue;
								acc += (double)x
									       [(((size_t)n *
											  xd->c +
										  g * Cg +
										  ci) *
											 xd->h +
										 iy) *
											xd->w +
										ix] *
								       w[(((size_t)o *
										   Cg +
									   ci) *
										  wd->h +
									  ky) *
										 wd->w +
									 kx];
							}
					size_t yi = (((size_t)n * yd->c + o) *
							     yd->h +
						     oy) * yd->w +
						    ox;
					float b = *(const float *)beta;
					y[yi] = (float)(*(const float *)alpha *
							acc) +
						(b == 0 ? 0 : b * y[yi]);
				}
	return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnAddTensor(cudnnHandle_t, const void *alpha,
			     cudnnTensorDescriptor_t ad, const void *av,
			     const void *beta, cudnnTensorDescriptor_t cd,
			     void *cv)
{
	const float *a = (const float *)av;
	float *c = (float *)cv;
	float al = *(const float *)alpha, be = *(const float *)beta;
	if (ad->n != 1 || ad->h != 1 || ad->w != 1 || ad->c != cd->c)
		return CUDNN_STATUS_NOT_SUPPORTED;
	for (int n = 0; n < cd->n; n++)
		for (int ch = 0; ch < cd->c; ch++)
			for (int i = 0; i < cd->h * cd->w; i++) {
				size_t k = ((size_t)n * cd->c + ch) * cd->h *
						   cd->w +
					   i;
				c[k] = al * a[ch] + be * c[k];
			}
	return CUDNN_STATUS_SUCCESS;
}
} /* extern "C" */
