/*
 * The CUDA backend: device memory from cudaMalloc, matmul through cuBLAS,
 * elementwise ops through the kernels in kernels.cu, all queued on one
 * stream per opened backend.
 *
 * When no GPU is visible, init fails with -ENODEV and says why, and the
 * runtime falls back to the cpu backend. Otherwise it takes the first
 * visible GPU; operators choose which one a runtime gets with
 * CUDA_VISIBLE_DEVICES. Device 0 is also every host thread's default
 * current device, so calls from threads other than the one that ran init
 * land on it without a cudaSetDevice of their own.
 *
 * Caller host memory is pageable, which CUDA can only copy synchronously
 * through its own bounce buffer. Instead, transfers go through two pinned
 * staging chunks owned by the backend: while the DMA engine moves one, the
 * CPU fills or drains the other. A mutex serialises transfers, since the
 * staging chunks are shared by every caller of one opened backend; kernel
 * launches and cuBLAS calls need no lock, as both are safe to issue from
 * several threads onto one stream with one handle whose stream is fixed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backend.h"
#include "cuda_internal.h"
#include "gn_error.h"
#include "log.h"

GN_LOG_REGISTER(cuda)

/* Each of the two staging chunks; large enough to reach full PCIe speed. */
#define STAGING_CHUNK ((size_t)4 << 20)

struct cuda_ctx {
	int device;
	cudaStream_t stream;
	cublasHandle_t blas;
	pthread_mutex_t xfer_lock;
	/* Pinned staging: chunk i is staging + i * STAGING_CHUNK. */
	unsigned char *staging;
	/*
	 * done[i] is recorded after the last copy touching chunk i; pending[i]
	 * says it has not been waited for, so the host must wait before it
	 * writes or reads that chunk again.
	 */
	cudaEvent_t done[2];
	int pending[2];
	char desc[768]; /* fits the longest name cudaDeviceProp holds */
};

/*
 * Turn a failed CUDA runtime call into a negative errno: -ENOMEM for an
 * exhausted device, -EIO for everything else.
 */
static int cuda_fail(cudaError_t e, const char *what, const char *call)
{
	int rc = e == cudaErrorMemoryAllocation ? -ENOMEM : -EIO;

	return gn_error_set(rc, "cuda: %s: %s failed: %s (%s)", what, call,
			    cudaGetErrorName(e), cudaGetErrorString(e));
}

static int blas_fail(cublasStatus_t s, const char *what, const char *call)
{
	int rc = s == CUBLAS_STATUS_ALLOC_FAILED ? -ENOMEM : -EIO;

	return gn_error_set(rc, "cuda: %s: %s failed: %s (%s)", what, call,
			    cublasGetStatusName(s), cublasGetStatusString(s));
}

static void cuda_fini(void *vctx)
{
	struct cuda_ctx *ctx = vctx;

	if (ctx == NULL)
		return;
	/* Nothing may still be copying out of the staging chunks. */
	if (ctx->stream != NULL)
		(void)cudaStreamSynchronize(ctx->stream);
	if (ctx->blas != NULL)
		(void)cublasDestroy(ctx->blas);
	for (int i = 0; i < 2; i++)
		if (ctx->done[i] != NULL)
			(void)cudaEventDestroy(ctx->done[i]);
	if (ctx->staging != NULL)
		(void)cudaFreeHost(ctx->staging);
	if (ctx->stream != NULL)
		(void)cudaStreamDestroy(ctx->stream);
	pthread_mutex_destroy(&ctx->xfer_lock);
	free(ctx);
}

static void describe_device(struct cuda_ctx *ctx)
{
	struct cudaDeviceProp p;
	int rt = 0, drv = 0;

	if (cudaGetDeviceProperties(&p, ctx->device) != cudaSuccess) {
		snprintf(ctx->desc, sizeof(ctx->desc), "CUDA device %d",
			 ctx->device);
		return;
	}
	(void)cudaRuntimeGetVersion(&rt);
	(void)cudaDriverGetVersion(&drv);
	snprintf(ctx->desc, sizeof(ctx->desc),
		 "%s (device %d, sm_%d%d, %d SMs, %.1f GiB), "
		 "CUDA runtime %d.%d, driver %d.%d",
		 p.name, ctx->device, p.major, p.minor, p.multiProcessorCount,
		 (double)p.totalGlobalMem / (double)(1ull << 30), rt / 1000,
		 rt % 1000 / 10, drv / 1000, drv % 1000 / 10);
}

static int cuda_init(void **out)
{
	struct cuda_ctx *ctx;
	cudaError_t e;
	cublasStatus_t s;
	int ndev = 0, rc;

	*out = NULL;
	/*
	 * A missing driver, a driver older than the runtime and an empty
	 * CUDA_VISIBLE_DEVICES all mean the same to the runtime: there is no
	 * GPU to use here, so fall back.
	 */
	e = cudaGetDeviceCount(&ndev);
	if (e != cudaSuccess) {
		(void)cudaGetLastError();
		return gn_error_set(-ENODEV,
				    "no CUDA device visible: "
				    "cudaGetDeviceCount returned %s (%s)",
				    cudaGetErrorName(e), cudaGetErrorString(e));
	}
	if (ndev == 0)
		return gn_error_set(-ENODEV,
				    "no CUDA device visible: "
				    "cudaGetDeviceCount returned 0 devices");

	ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL)
		return gn_error_set(-ENOMEM,
				    "cuda: cannot allocate %zu bytes "
				    "of backend state",
				    sizeof(*ctx));
	pthread_mutex_init(&ctx->xfer_lock, NULL);
	ctx->device = 0;

	e = cudaSetDevice(ctx->device);
	if (e != cudaSuccess) {
		rc = cuda_fail(e, "init", "cudaSetDevice(0)");
		goto fail;
	}
	/*
	 * Non-blocking: the stream must not wait behind work other libraries
	 * in the process queue on the legacy default stream.
	 */
	e = cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking);
	if (e != cudaSuccess) {
		rc = cuda_fail(e, "init", "cudaStreamCreateWithFlags");
		goto fail;
	}
	e = cudaHostAlloc((void **)&ctx->staging, 2 * STAGING_CHUNK,
			  cudaHostAllocDefault);
	if (e != cudaSuccess) {
		ctx->staging = NULL;
		rc = cuda_fail(e, "init",
			       "cudaHostAlloc of the staging buffer");
		goto fail;
	}
	for (int i = 0; i < 2; i++) {
		e = cudaEventCreateWithFlags(&ctx->done[i],
					     cudaEventDisableTiming);
		if (e != cudaSuccess) {
			rc = cuda_fail(e, "init", "cudaEventCreateWithFlags");
			goto fail;
		}
	}
	s = cublasCreate(&ctx->blas);
	if (s != CUBLAS_STATUS_SUCCESS) {
		ctx->blas = NULL;
		rc = blas_fail(s, "init", "cublasCreate");
		goto fail;
	}
	s = cublasSetStream(ctx->blas, ctx->stream);
	if (s != CUBLAS_STATUS_SUCCESS) {
		rc = blas_fail(s, "init", "cublasSetStream");
		goto fail;
	}
	/*
	 * Plain f32 math, no TF32 tensor cores: results must agree with the
	 * cpu backend to f32 rounding, as the client expects results
	 * identical to local execution.
	 */
	s = cublasSetMathMode(ctx->blas, CUBLAS_DEFAULT_MATH);
	if (s != CUBLAS_STATUS_SUCCESS) {
		rc = blas_fail(s, "init", "cublasSetMathMode");
		goto fail;
	}
	describe_device(ctx);
	GN_LOG(INFO, cuda, "opened %s", ctx->desc);
	*out = ctx;
	return 0;

fail:
	cuda_fini(ctx);
	return rc;
}

static const char *cuda_describe(void *vctx)
{
	struct cuda_ctx *ctx = vctx;

	return ctx->desc;
}

static void *cuda_alloc(void *vctx, size_t size)
{
	struct cuda_ctx *ctx = vctx;
	size_t free_b = 0, total_b = 0;
	void *p = NULL;
	cudaError_t e;

	/* cudaMalloc(0) succeeds with NULL, which callers read as failure. */
	e = cudaMalloc(&p, size ? size : 1);
	if (e == cudaSuccess)
		return p;
	/* Out-of-memory is not sticky; clear it so later calls succeed. */
	(void)cudaGetLastError();
	(void)cudaMemGetInfo(&free_b, &total_b);
	gn_error_set(-ENOMEM,
		     "cuda: cudaMalloc of %zu bytes failed: %s (%zu of %zu "
		     "bytes free on device %d)",
		     size, cudaGetErrorString(e), free_b, total_b, ctx->device);
	return NULL;
}

static void cuda_free(void *vctx, void *ptr)
{
	cudaError_t e;

	(void)vctx;
	if (ptr == NULL)
		return;
	/* A free cannot fail in a way the caller could act on; log it. */
	e = cudaFree(ptr);
	if (e != cudaSuccess)
		GN_LOG(ERR, cuda, "cudaFree(%p) failed: %s (%s)", ptr,
		       cudaGetErrorName(e), cudaGetErrorString(e));
}

/* Wait until no copy touches staging chunk i, so the host may use it. */
static int staging_wait(struct cuda_ctx *ctx, int i, const char *what)
{
	cudaError_t e;

	if (!ctx->pending[i])
		return 0;
	e = cudaEventSynchronize(ctx->done[i]);
	if (e != cudaSuccess)
		return cuda_fail(e, what, "cudaEventSynchronize");
	ctx->pending[i] = 0;
	return 0;
}

/* Queue a copy through staging chunk i and mark the chunk busy. */
static int staging_copy(struct cuda_ctx *ctx, int i, void *dst, const void *src,
			size_t len, enum cudaMemcpyKind kind, const char *what)
{
	cudaError_t e;

	e = cudaMemcpyAsync(dst, src, len, kind, ctx->stream);
	if (e != cudaSuccess)
		return cuda_fail(e, what, "cudaMemcpyAsync");
	e = cudaEventRecord(ctx->done[i], ctx->stream);
	if (e != cudaSuccess)
		return cuda_fail(e, what, "cudaEventRecord");
	ctx->pending[i] = 1;
	return 0;
}

/* Bytes of a `size`-byte transfer that the chunk starting at `off` moves. */
static size_t chunk_len(size_t size, size_t off)
{
	return size - off < STAGING_CHUNK ? size - off : STAGING_CHUNK;
}

static int cuda_upload(void *vctx, void *dst_dev, const void *src_host,
		       size_t size)
{
	struct cuda_ctx *ctx = vctx;
	const unsigned char *src = src_host;
	unsigned char *dst = dst_dev;
	cudaError_t e;
	int rc = 0, i = 0;
	char what[64];

	snprintf(what, sizeof(what), "upload of %zu bytes", size);
	pthread_mutex_lock(&ctx->xfer_lock);
	for (size_t off = 0; off < size; off += STAGING_CHUNK, i ^= 1) {
		size_t len = chunk_len(size, off);
		unsigned char *chunk = ctx->staging + i * STAGING_CHUNK;

		/* The copy queued two chunks ago may still be reading it. */
		rc = staging_wait(ctx, i, what);
		if (rc != 0)
			goto out;
		memcpy(chunk, src + off, len);
		rc = staging_copy(ctx, i, dst + off, chunk, len,
				  cudaMemcpyHostToDevice, what);
		if (rc != 0)
			goto out;
	}
	/* The caller may reuse its buffer and read dst as soon as we return. */
	e = cudaStreamSynchronize(ctx->stream);
	if (e != cudaSuccess) {
		rc = cuda_fail(e, what, "cudaStreamSynchronize");
		goto out;
	}
	ctx->pending[0] = ctx->pending[1] = 0;
out:
	pthread_mutex_unlock(&ctx->xfer_lock);
	return rc;
}

static int cuda_download(void *vctx, void *dst_host, const void *src_dev,
			 size_t size)
{
	struct cuda_ctx *ctx = vctx;
	const unsigned char *src = src_dev;
	unsigned char *dst = dst_host;
	size_t nchunks = (size + STAGING_CHUNK - 1) / STAGING_CHUNK;
	int rc = 0;
	char what[64];

	snprintf(what, sizeof(what), "download of %zu bytes", size);
	pthread_mutex_lock(&ctx->xfer_lock);
	/*
	 * Chunk j travels through staging chunk j % 2; the DMA of chunk j + 1
	 * is queued before the host drains chunk j, so the two overlap.
	 */
	for (size_t j = 0; j < nchunks + 1; j++) {
		if (j < nchunks) {
			size_t off = j * STAGING_CHUNK;
			size_t len = chunk_len(size, off);
			int i = (int)(j % 2);

			rc = staging_copy(
				ctx, i, ctx->staging + i * STAGING_CHUNK,
				src + off, len, cudaMemcpyDeviceToHost, what);
			if (rc != 0)
				goto out;
		}
		if (j > 0) {
			size_t off = (j - 1) * STAGING_CHUNK;
			size_t len = chunk_len(size, off);
			int i = (int)((j - 1) % 2);

			rc = staging_wait(ctx, i, what);
			if (rc != 0)
				goto out;
			memcpy(dst + off, ctx->staging + i * STAGING_CHUNK,
			       len);
		}
	}
out:
	pthread_mutex_unlock(&ctx->xfer_lock);
	return rc;
}

static int cuda_sync(void *vctx)
{
	struct cuda_ctx *ctx = vctx;
	cudaError_t e = cudaStreamSynchronize(ctx->stream);

	/*
	 * Errors raised inside kernels surface here. Most of them (an illegal
	 * address, a trap) leave the CUDA context unusable until the process
	 * restarts, so say so where the operator will look.
	 */
	if (e != cudaSuccess) {
		GN_LOG(ERR, cuda, "stream failed: %s (%s)", cudaGetErrorName(e),
		       cudaGetErrorString(e));
		return cuda_fail(e, "sync", "cudaStreamSynchronize");
	}
	return 0;
}

/* "matmul f32[2,3], f32[3,4] -> f32[2,4]", naming a node in errors. */
static const char *call_format(enum gn_op op,
			       const struct gn_tensor_meta *const *im, int nin,
			       const struct gn_tensor_meta *om, char *buf,
			       size_t len)
{
	char m[96];
	int n = snprintf(buf, len, "%s", gn_op_name(op));

	for (int k = 0; k < nin && n >= 0 && (size_t)n < len; k++)
		n += snprintf(buf + n, len - (size_t)n, "%s%s", k ? ", " : " ",
			      gn_meta_format(im[k], m, sizeof(m)));
	if (n >= 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, " -> %s",
			 gn_meta_format(om, m, sizeof(m)));
	return buf;
}

/*
 * Strides in elements of operand `m` seen through an output of `nd` dims
 * (numpy alignment at the trailing dim), 0 where `m` is broadcast.
 */
static void bcast_strides(const struct gn_tensor_meta *m, int nd, int64_t *st)
{
	int64_t s = 1;

	for (int d = nd - 1, k = m->ndim - 1; d >= 0; d--, k--) {
		if (k < 0 || m->shape[k] == 1) {
			st[d] = 0;
		} else {
			st[d] = s;
		}
		if (k >= 0)
			s *= m->shape[k];
	}
}

/*
 * Describe a binary op over output `om` for the broadcast kernel, merging
 * each pair of neighbouring dims that both operands step through as one
 * (a contiguous pair, or a pair both broadcast): [64,128] + [64,128]
 * becomes one flat dim and [8,64,128] + [128] becomes [512,128].
 */
static void bcast_build(const struct gn_tensor_meta *a,
			const struct gn_tensor_meta *b,
			const struct gn_tensor_meta *om,
			struct gn_cuda_bcast *bc)
{
	int64_t sa[GN_MAX_DIMS], sb[GN_MAX_DIMS];
	int nd = 0;

	bcast_strides(a, om->ndim, sa);
	bcast_strides(b, om->ndim, sb);
	for (int d = 0; d < om->ndim; d++) {
		int64_t len = om->shape[d];

		/* Dims of length 1 contribute nothing to any offset. */
		if (len == 1)
			continue;
		if (nd > 0 && bc->stride[0][nd - 1] == sa[d] * len &&
		    bc->stride[1][nd - 1] == sb[d] * len) {
			bc->shape[nd - 1] *= len;
			bc->stride[0][nd - 1] = sa[d];
			bc->stride[1][nd - 1] = sb[d];
			continue;
		}
		bc->shape[nd] = len;
		bc->stride[0][nd] = sa[d];
		bc->stride[1][nd] = sb[d];
		nd++;
	}
	if (nd == 0) {
		/* A single element: one flat dim, both operands contiguous. */
		bc->shape[0] = 1;
		bc->stride[0][0] = 1;
		bc->stride[1][0] = 1;
		nd = 1;
	}
	bc->ndim = nd;
}

static int run_add(struct cuda_ctx *ctx, const struct gn_tensor_meta *const *im,
		   const void *const *in, const struct gn_tensor_meta *om,
		   void *out, const char *what)
{
	struct gn_cuda_bcast bc;
	cudaError_t e;

	bcast_build(im[0], im[1], om, &bc);
	e = gn_cuda_add_f32(in[0], in[1], out, gn_meta_numel(om), &bc,
			    ctx->stream);
	return e == cudaSuccess ? 0 : cuda_fail(e, what, "add kernel launch");
}

static int run_relu(struct cuda_ctx *ctx, const void *in,
		    const struct gn_tensor_meta *om, void *out,
		    const char *what)
{
	cudaError_t e;

	e = gn_cuda_relu_f32(in, out, gn_meta_numel(om), ctx->stream);
	return e == cudaSuccess ? 0 : cuda_fail(e, what, "relu kernel launch");
}

/*
 * Matmul as numpy has it: [..., M, K] x [..., K, N] with broadcast batch
 * dims, and a 1-D operand promoted to a matrix ([K] as [1, K] on the left,
 * [K, 1] on the right) whose added dim the output lacks.
 *
 * cuBLAS is column-major, and a row-major [R, C] matrix read column-major
 * is its [C, R] transpose. So C = A B row-major is computed as
 * C^T = B^T A^T column-major: swap the operands and M with N, and no
 * transposes are needed.
 */
static int run_matmul(struct cuda_ctx *ctx,
		      const struct gn_tensor_meta *const *im,
		      const void *const *in, const struct gn_tensor_meta *om,
		      void *out, const char *what)
{
	const struct gn_tensor_meta *am = im[0], *bm = im[1];
	int a1 = am->ndim == 1, b1 = bm->ndim == 1;
	int64_t m = a1 ? 1 : am->shape[am->ndim - 2];
	int64_t k = am->shape[am->ndim - 1];
	int64_t n = b1 ? 1 : bm->shape[bm->ndim - 1];
	struct gn_tensor_meta ab = *am, bb = *bm, ob = *om;
	int64_t sa[GN_MAX_DIMS], sb[GN_MAX_DIMS], idx[GN_MAX_DIMS] = {0};
	const float *a = in[0], *b = in[1];
	float *c = out;
	const float one = 1.0f, zero = 0.0f;
	uint64_t batches, a_batches, b_batches;
	cublasStatus_t s;

	/* With nothing to sum over, the product is all zeros. */
	if (k == 0) {
		cudaError_t e = cudaMemsetAsync(out, 0, gn_meta_nbytes(om),
						ctx->stream);

		return e == cudaSuccess ? 0
					: cuda_fail(e, what, "cudaMemsetAsync");
	}

	/* Batch dims: everything but the matrix dims of each. */
	ab.ndim = a1 ? 0 : am->ndim - 2;
	bb.ndim = b1 ? 0 : bm->ndim - 2;
	ob.ndim = om->ndim - (a1 ? 0 : 1) - (b1 ? 0 : 1);
	batches = gn_meta_numel(&ob);
	a_batches = gn_meta_numel(&ab);
	b_batches = gn_meta_numel(&bb);

	if (batches == 1) {
		s = cublasSgemm_64(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k,
				   &one, b, n, a, k, &zero, c, n);
		return s == CUBLAS_STATUS_SUCCESS
			       ? 0
			       : blas_fail(s, what, "cublasSgemm_64");
	}
	/*
	 * When each operand either has every batch or one shared matrix, the
	 * batches sit at a fixed stride (0 for the shared one) and one
	 * strided-batched call does them all.
	 */
	if ((a_batches == batches || a_batches == 1) &&
	    (b_batches == batches || b_batches == 1)) {
		s = cublasSgemmStridedBatched_64(
			ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &one, b,
			n, b_batches == 1 ? 0 : k * n, a, k,
			a_batches == 1 ? 0 : m * k, &zero, c, n, m * n,
			(int64_t)batches);
		return s == CUBLAS_STATUS_SUCCESS
			       ? 0
			       : blas_fail(s, what,
					   "cublasSgemmStridedBatched_64");
	}

	/*
	 * Mixed broadcasting ([2,1,M,K] x [1,3,K,N]): walk the output batches
	 * as an odometer, stepping each operand by its broadcast strides, one
	 * gemm each. All are queued on the stream; none waits.
	 */
	bcast_strides(&ab, ob.ndim, sa);
	bcast_strides(&bb, ob.ndim, sb);
	for (uint64_t t = 0, oa = 0, obb = 0; t < batches; t++) {
		s = cublasSgemm_64(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k,
				   &one, b + obb * (uint64_t)(k * n), n,
				   a + oa * (uint64_t)(m * k), k, &zero,
				   c + t * (uint64_t)(m * n), n);
		if (s != CUBLAS_STATUS_SUCCESS)
			return blas_fail(s, what, "cublasSgemm_64");
		for (int d = ob.ndim - 1; d >= 0; d--) {
			oa += (uint64_t)sa[d];
			obb += (uint64_t)sb[d];
			if (++idx[d] < ob.shape[d])
				break;
			oa -= (uint64_t)(sa[d] * ob.shape[d]);
			obb -= (uint64_t)(sb[d] * ob.shape[d]);
			idx[d] = 0;
		}
	}
	return 0;
}

static int cuda_run(void *vctx, enum gn_op op, const struct gn_op_attrs *attrs,
		    const struct gn_tensor_meta *const *im,
		    const void *const *in, int nin,
		    const struct gn_tensor_meta *om, void *out)
{
	struct cuda_ctx *ctx = vctx;
	enum gn_dtype dt = nin > 0 ? im[0]->dtype : om->dtype;
	int f32 = om->dtype == GN_DTYPE_F32;
	char what[400];

	(void)attrs;
	for (int k = 0; k < nin; k++)
		f32 = f32 && im[k]->dtype == GN_DTYPE_F32;
	switch (op) {
	case GN_OP_MATMUL:
		if (!f32 || nin != 2)
			break;
		if (gn_meta_numel(om) == 0)
			return 0; /* nothing to write */
		return run_matmul(
			ctx, im, in, om, out,
			call_format(op, im, nin, om, what, sizeof(what)));
	case GN_OP_ADD:
		if (!f32 || nin != 2)
			break;
		if (gn_meta_numel(om) == 0)
			return 0;
		return run_add(
			ctx, im, in, om, out,
			call_format(op, im, nin, om, what, sizeof(what)));
	case GN_OP_RELU:
		if (!f32 || nin != 1)
			break;
		if (gn_meta_numel(om) == 0)
			return 0;
		return run_relu(
			ctx, in[0], om, out,
			call_format(op, im, nin, om, what, sizeof(what)));
	default: break;
	}
	return gn_error_set(-EOPNOTSUPP,
			    "cuda: no kernel for %s on %s (%s); the cuda "
			    "backend runs matmul, add and relu on f32",
			    gn_op_name(op), gn_dtype_name(dt),
			    call_format(op, im, nin, om, what, sizeof(what)));
}

static const struct gn_backend_ops cuda_backend_ops = {
	.name = "cuda",
	.init = cuda_init,
	.fini = cuda_fini,
	.describe = cuda_describe,
	.alloc = cuda_alloc,
	.free = cuda_free,
	.upload = cuda_upload,
	.download = cuda_download,
	.run = cuda_run,
	.sync = cuda_sync,
};

GN_BACKEND_REGISTER(cuda_backend_ops)
