/*
 * The CUDA backend: device memory from cudaMalloc, matmul, linear and
 * attention through cuBLAS, convolution through cuDNN, everything else
 * through the kernels in kernels_*.cu, all queued on one stream per
 * opened backend. This file opens and closes the device, moves bytes and
 * dispatches nodes to the op families (cuda_elementwise.c, cuda_shape.c,
 * cuda_linalg.c, cuda_nn.c, cuda_reduce_index.c).
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
 * What else is shared (scratch memory, cuDNN) has its own lock; see
 * cuda_ctx.h.
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
#include "cuda_ctx.h"
#include "cuda_internal.h"
#include "gn_error.h"
#include "gpu_mem.h"
#include "log.h"

GN_LOG_REGISTER(cuda)

/* Each of the two staging chunks; large enough to reach full PCIe speed. */
#define STAGING_CHUNK ((size_t)4 << 20)

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
	gn_cuda_dnn_fini(ctx);
	if (ctx->blas != NULL)
		(void)cublasDestroy(ctx->blas);
	if (ctx->scratch != NULL)
		(void)cudaFree(ctx->scratch);
	if (ctx->ierr_dev != NULL)
		(void)cudaFree(ctx->ierr_dev);
	if (ctx->ierr_host != NULL)
		(void)cudaFreeHost(ctx->ierr_host);
	for (int i = 0; i < 2; i++)
		if (ctx->done[i] != NULL)
			(void)cudaEventDestroy(ctx->done[i]);
	if (ctx->staging != NULL)
		(void)cudaFreeHost(ctx->staging);
	if (ctx->stream != NULL)
		(void)cudaStreamDestroy(ctx->stream);
	pthread_mutex_destroy(&ctx->work_lock);
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
	pthread_mutex_init(&ctx->work_lock, NULL);
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
	/* Where indexing kernels record an out-of-range index. */
	e = cudaMalloc((void **)&ctx->ierr_dev, sizeof(*ctx->ierr_dev));
	if (e != cudaSuccess) {
		ctx->ierr_dev = NULL;
		rc = cuda_fail(e, "init",
			       "cudaMalloc of the index error record");
		goto fail;
	}
	/*
	 * On our stream, and waited for: a plain cudaMemset goes to the
	 * legacy stream, which a non-blocking stream does not wait behind.
	 */
	e = cudaMemsetAsync(ctx->ierr_dev, 0, sizeof(*ctx->ierr_dev),
			    ctx->stream);
	if (e == cudaSuccess)
		e = cudaStreamSynchronize(ctx->stream);
	if (e != cudaSuccess) {
		rc = cuda_fail(e, "init",
			       "cudaMemset of the index error record");
		goto fail;
	}
	e = cudaHostAlloc((void **)&ctx->ierr_host, sizeof(*ctx->ierr_host),
			  cudaHostAllocDefault);
	if (e != cudaSuccess) {
		ctx->ierr_host = NULL;
		rc = cuda_fail(e, "init",
			       "cudaHostAlloc of the index error record");
		goto fail;
	}
	memset(ctx->ierr_host, 0, sizeof(*ctx->ierr_host));
	/* Without cuDNN the backend still opens; conv2d then runs on cpu. */
	gn_cuda_dnn_init(ctx);
	describe_device(ctx);
	GN_LOG(INFO, cuda, "opened %s", ctx->desc);
	/* So that a download over verbs goes straight from device memory. */
	if (gn_gpu_mem_enable() != 0)
		GN_LOG(INFO, cuda,
		       "%s: downloads are copied to the host before sending",
		       gn_last_error());
	if (ctx->dnn == NULL)
		GN_LOG(WARNING, cuda, "%s; conv2d will run on the host",
		       ctx->dnn_why);
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

void *gn_cuda_alloc(void *vctx, size_t size)
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

/*
 * An indexing kernel met an index out of range since the last sync: clear
 * the record on both sides and fail with what it says.
 */
static int index_error(struct cuda_ctx *ctx)
{
	struct gn_cuda_index_error er = *ctx->ierr_host;
	cudaError_t e;

	memset(ctx->ierr_host, 0, sizeof(*ctx->ierr_host));
	e = cudaMemsetAsync(ctx->ierr_dev, 0, sizeof(*ctx->ierr_dev),
			    ctx->stream);
	if (e == cudaSuccess)
		e = cudaStreamSynchronize(ctx->stream);
	if (e != cudaSuccess)
		return cuda_fail(e, "sync", "resetting the index error record");
	return gn_error_set(-EINVAL,
			    "cuda: %s: index %lld at position %llu is outside "
			    "[-%lld, %lld)",
			    gn_op_name((enum gn_op)er.op), (long long)er.index,
			    (unsigned long long)er.pos, (long long)er.bound,
			    (long long)er.bound);
}

static int cuda_sync(void *vctx)
{
	struct cuda_ctx *ctx = vctx;
	int armed = __atomic_exchange_n(&ctx->ierr_armed, 0, __ATOMIC_ACQ_REL);
	cudaError_t e = cudaSuccess;

	/*
	 * After indexing ops, bring their error record back with the rest of
	 * the stream's work: one small copy into pinned memory, read once the
	 * stream is done.
	 */
	if (armed)
		e = cudaMemcpyAsync(ctx->ierr_host, ctx->ierr_dev,
				    sizeof(*ctx->ierr_host),
				    cudaMemcpyDeviceToHost, ctx->stream);
	if (e != cudaSuccess)
		return cuda_fail(e, "sync", "cudaMemcpyAsync of index errors");
	e = cudaStreamSynchronize(ctx->stream);
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
	if (armed && ctx->ierr_host->flag)
		return index_error(ctx);
	return 0;
}

/* "matmul f32[2,3], f32[3,4] -> f32[2,4]", naming a node in errors. */
const char *gn_cuda_call_format(const struct cuda_call *c, char *buf,
				size_t len)
{
	char m[96];
	int n = snprintf(buf, len, "%s", gn_op_name(c->op));

	for (int k = 0; k < c->nin && n >= 0 && (size_t)n < len; k++)
		n += snprintf(buf + n, len - (size_t)n, "%s%s", k ? ", " : " ",
			      gn_meta_format(c->im[k], m, sizeof(m)));
	if (n >= 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, " -> %s",
			 gn_meta_format(c->om, m, sizeof(m)));
	return buf;
}

int gn_cuda_call_fail(const struct cuda_call *c, cudaError_t e,
		      const char *step)
{
	int rc = e == cudaErrorMemoryAllocation ? -ENOMEM : -EIO;
	char what[400];

	return gn_error_set(rc, "cuda: %s: %s failed: %s (%s)",
			    gn_cuda_call_format(c, what, sizeof(what)), step,
			    cudaGetErrorName(e), cudaGetErrorString(e));
}

int gn_cuda_blas_fail(const struct cuda_call *c, cublasStatus_t s,
		      const char *step)
{
	int rc = s == CUBLAS_STATUS_ALLOC_FAILED ? -ENOMEM : -EIO;
	char what[400];

	return gn_error_set(rc, "cuda: %s: %s failed: %s (%s)",
			    gn_cuda_call_format(c, what, sizeof(what)), step,
			    cublasGetStatusName(s), cublasGetStatusString(s));
}

int gn_cuda_unsupported(const struct cuda_call *c, const char *why)
{
	enum gn_dtype dt = c->nin > 0 ? c->im[0]->dtype : c->om->dtype;
	char what[400];

	return gn_error_set(-EOPNOTSUPP,
			    "cuda: no kernel for %s on %s (%s): %s",
			    gn_op_name(c->op), gn_dtype_name(dt),
			    gn_cuda_call_format(c, what, sizeof(what)), why);
}

int gn_cuda_all_f32(const struct cuda_call *c)
{
	if (c->om->dtype != GN_DTYPE_F32)
		return 0;
	for (int k = 0; k < c->nin; k++)
		if (c->im[k]->dtype != GN_DTYPE_F32)
			return 0;
	return 1;
}

int gn_cuda_scratch(const struct cuda_call *c, size_t size, void **p)
{
	struct cuda_ctx *ctx = c->ctx;
	size_t grow;
	cudaError_t e;
	void *np;

	if (size <= ctx->scratch_size && ctx->scratch != NULL) {
		*p = ctx->scratch;
		return 0;
	}
	/*
	 * Kernels queued earlier may still read the old buffer: wait for
	 * them before it goes. Growing by half again at least keeps a
	 * sequence of slightly larger requests from reallocating each time.
	 */
	e = cudaStreamSynchronize(ctx->stream);
	if (e != cudaSuccess)
		return gn_cuda_call_fail(c, e,
					 "cudaStreamSynchronize before "
					 "growing the scratch buffer");
	grow = ctx->scratch_size + ctx->scratch_size / 2;
	cuda_free(ctx, ctx->scratch);
	ctx->scratch = NULL;
	ctx->scratch_size = 0;
	np = grow > size ? gn_cuda_alloc(ctx, grow) : NULL;
	if (np == NULL) {
		grow = size;
		np = gn_cuda_alloc(ctx, size);
	}
	if (np == NULL) {
		char what[400], why[256];

		snprintf(why, sizeof(why), "%s", gn_last_error());
		return gn_error_set(-ENOMEM, "cuda: %s: no scratch memory: %s",
				    gn_cuda_call_format(c, what, sizeof(what)),
				    why);
	}
	ctx->scratch = np;
	ctx->scratch_size = grow;
	*p = np;
	return 0;
}

static int cuda_run(void *vctx, enum gn_op op, const struct gn_op_attrs *attrs,
		    const struct gn_tensor_meta *const *im,
		    const void *const *in, int nin,
		    const struct gn_tensor_meta *om, void *out)
{
	const struct cuda_call c = {vctx, op, attrs, im, in, nin, om, out};

	if (gn_meta_numel(om) == 0)
		return 0; /* nothing to write */
	switch (gn_op_kind(op)) {
	case GN_OP_KIND_UNARY:
	case GN_OP_KIND_BINARY: return gn_cuda_run_elementwise(&c);
	case GN_OP_KIND_SHAPE: return gn_cuda_run_shape(&c);
	case GN_OP_KIND_SOURCE:
		if (op == GN_OP_INPUT)
			return gn_cuda_unsupported(&c,
						   "an input has no kernel");
		return gn_cuda_run_source(&c);
	default: break;
	}
	switch (op) {
	case GN_OP_MATMUL:
	case GN_OP_LINEAR:
	case GN_OP_SDPA: return gn_cuda_run_linalg(&c);
	case GN_OP_REDUCE_SUM:
	case GN_OP_REDUCE_MEAN:
	case GN_OP_REDUCE_MAX:
	case GN_OP_ARGMAX:
	case GN_OP_EMBEDDING:
	case GN_OP_EMBEDDING_BAG:
	case GN_OP_GATHER: return gn_cuda_run_reduce_index(&c);
	default: return gn_cuda_run_nn(&c);
	}
}

static const struct gn_backend_ops cuda_backend_ops = {
	.name = "cuda",
	.init = cuda_init,
	.fini = cuda_fini,
	.describe = cuda_describe,
	.alloc = gn_cuda_alloc,
	.free = cuda_free,
	.upload = cuda_upload,
	.download = cuda_download,
	.run = cuda_run,
	.sync = cuda_sync,
};

GN_BACKEND_REGISTER(cuda_backend_ops)
