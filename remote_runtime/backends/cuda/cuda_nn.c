/*
 * Neural-network ops on the device, f32: conv2d through cuDNN, and
 * pooling, global average pooling, batch norm, layer norm and
 * softmax/log-softmax through the kernels in kernels_nn.cu.
 *
 * Convolution. cuDNN's legacy convolution API takes one padding per
 * spatial dim, applied on both sides; an asymmetric padding is applied
 * explicitly instead, by copying the input into a zeroed, padded scratch
 * buffer and convolving that without padding. The descriptors are made
 * once at init and set per call under work_lock, so a call allocates
 * nothing on the host; the algorithm is cuDNN's heuristic pick, cached per
 * problem, restricted to the GEMM-family and direct algorithms with FMA
 * math: Winograd and FFT trade accuracy for speed, and TF32 tensor cores
 * round operands to 10 bits, both of which would move results further
 * from the cpu backend than the 1e-4 a convolution is held to.
 *
 * cuDNN is optional in the build (meson.build defines GN_HAVE_CUDNN when
 * it is found beside the CUDA Toolkit, or fails to open at run time):
 * without it, conv2d answers -EOPNOTSUPP and runs on the host.
 *
 * Pooling is a kernel rather than cuDNN's: cuDNN pools with symmetric
 * padding and without ceil_mode, and counts padding differently from
 * PyTorch's (and the cpu backend's) average with ceil_mode.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef GN_HAVE_CUDNN
#include <cudnn.h>
#endif

#include "cuda_ctx.h"
#include "gn_error.h"

/* y[n, o, :, :] = bias[o], or 0 without a bias. */
static int conv_bias_only(const struct cuda_call *c)
{
	const struct gn_tensor_meta *om = c->om;
	int64_t plane = om->shape[2] * om->shape[3];
	struct gn_cuda_bcast bc = {
		.ndim = 3,
		.shape = {om->shape[0], om->shape[1], plane},
		.stride = {{0, 1, 0}, {om->shape[1] * plane, plane, 1}}};
	cudaError_t e;

	if (c->nin == 3)
		e = gn_cuda_copy_strided(sizeof(float), c->in[2], c->out,
					 gn_meta_numel(om), &bc,
					 c->ctx->stream);
	else
		e = cudaMemsetAsync(c->out, 0, gn_meta_nbytes(om),
				    c->ctx->stream);
	return e == cudaSuccess ? 0 : gn_cuda_call_fail(c, e, "bias fill");
}

#ifdef GN_HAVE_CUDNN

/* The most workspace a convolution algorithm may ask for. */
#define CONV_WORKSPACE_CAP ((size_t)512 << 20)

/* A conv2d problem and the cuDNN algorithm chosen for it. */
struct conv_algo {
	int valid;
	int key[15];
	cudnnConvolutionFwdAlgo_t algo;
	size_t workspace;
};

#define CONV_CACHE 32

struct cuda_dnn {
	cudnnHandle_t h;
	cudnnTensorDescriptor_t xd, yd, bd;
	cudnnFilterDescriptor_t wd;
	cudnnConvolutionDescriptor_t cd;
	struct conv_algo cache[CONV_CACHE];
	unsigned int next;
};

static int dnn_fail(const struct cuda_call *c, cudnnStatus_t s,
		    const char *step)
{
#if CUDNN_MAJOR >= 9
	int nomem = s == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED ||
		    s == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED;
#else
	int nomem = s == CUDNN_STATUS_ALLOC_FAILED;
#endif
	char what[400];

	return gn_error_set(nomem ? -ENOMEM : -EIO, "cuda: %s: %s failed: %s",
			    gn_cuda_call_format(c, what, sizeof(what)), step,
			    cudnnGetErrorString(s));
}

void gn_cuda_dnn_init(struct cuda_ctx *ctx)
{
	struct cuda_dnn *d = calloc(1, sizeof(*d));
	const char *step = "cudnnCreate";
	cudnnStatus_t s;

	if (d == NULL) {
		snprintf(ctx->dnn_why, sizeof(ctx->dnn_why),
			 "cuDNN unavailable: no memory for its state");
		return;
	}
	ctx->dnn = d;
	s = cudnnCreate(&d->h);
	if (s != CUDNN_STATUS_SUCCESS) {
		d->h = NULL;
		goto fail;
	}
	step = "cudnnSetStream";
	s = cudnnSetStream(d->h, ctx->stream);
	if (s == CUDNN_STATUS_SUCCESS) {
		step = "cudnnCreateTensorDescriptor";
		s = cudnnCreateTensorDescriptor(&d->xd);
	}
	if (s == CUDNN_STATUS_SUCCESS)
		s = cudnnCreateTensorDescriptor(&d->yd);
	if (s == CUDNN_STATUS_SUCCESS)
		s = cudnnCreateTensorDescriptor(&d->bd);
	if (s == CUDNN_STATUS_SUCCESS) {
		step = "cudnnCreateFilterDescriptor";
		s = cudnnCreateFilterDescriptor(&d->wd);
	}
	if (s == CUDNN_STATUS_SUCCESS) {
		step = "cudnnCreateConvolutionDescriptor";
		s = cudnnCreateConvolutionDescriptor(&d->cd);
	}
	if (s == CUDNN_STATUS_SUCCESS)
		return;
fail:
	snprintf(ctx->dnn_why, sizeof(ctx->dnn_why),
		 "cuDNN unavailable: %s failed: %s", step,
		 cudnnGetErrorString(s));
	gn_cuda_dnn_fini(ctx);
}

void gn_cuda_dnn_fini(struct cuda_ctx *ctx)
{
	struct cuda_dnn *d = ctx->dnn;

	if (d == NULL)
		return;
	if (d->cd != NULL)
		(void)cudnnDestroyConvolutionDescriptor(d->cd);
	if (d->wd != NULL)
		(void)cudnnDestroyFilterDescriptor(d->wd);
	if (d->bd != NULL)
		(void)cudnnDestroyTensorDescriptor(d->bd);
	if (d->yd != NULL)
		(void)cudnnDestroyTensorDescriptor(d->yd);
	if (d->xd != NULL)
		(void)cudnnDestroyTensorDescriptor(d->xd);
	if (d->h != NULL)
		(void)cudnnDestroy(d->h);
	free(d);
	ctx->dnn = NULL;
}

/* Algorithms whose f32 results are sums of exact products (see top). */
static int exact_algo(cudnnConvolutionFwdAlgo_t a)
{
	return a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM ||
	       a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
	       a == CUDNN_CONVOLUTION_FWD_ALGO_GEMM ||
	       a == CUDNN_CONVOLUTION_FWD_ALGO_DIRECT;
}

/*
 * With work_lock held and the descriptors set for problem `key`: the
 * algorithm to use and its workspace, from the cache or cuDNN's
 * heuristics. IMPLICIT_GEMM, which needs no workspace and takes every
 * problem, is the fallback.
 */
static int conv_algo(const struct cuda_call *c, const int *key,
		     struct conv_algo **out)
{
	struct cuda_dnn *d = c->ctx->dnn;
	cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
	struct conv_algo *slot;
	int got = 0;
	cudnnStatus_t s;
	size_t ws;

	for (int i = 0; i < CONV_CACHE; i++) {
		slot = &d->cache[i];
		if (slot->valid &&
		    memcmp(slot->key, key, sizeof(slot->key)) == 0) {
			*out = slot;
			return 0;
		}
	}
	slot = &d->cache[d->next++ % CONV_CACHE];
	slot->valid = 0;
	memcpy(slot->key, key, sizeof(slot->key));
	slot->algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
	slot->workspace = 0;
	s = cudnnGetConvolutionForwardAlgorithm_v7(
		d->h, d->xd, d->wd, d->cd, d->yd,
		CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf);
	if (s != CUDNN_STATUS_SUCCESS)
		return dnn_fail(c, s, "cudnnGetConvolutionForwardAlgorithm_v7");
	for (int i = 0; i < got; i++) {
		if (perf[i].status != CUDNN_STATUS_SUCCESS ||
		    !exact_algo(perf[i].algo) ||
		    perf[i].mathType == CUDNN_TENSOR_OP_MATH ||
		    perf[i].mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)
			continue;
		s = cudnnGetConvolutionForwardWorkspaceSize(
			d->h, d->xd, d->wd, d->cd, d->yd, perf[i].algo, &ws);
		if (s != CUDNN_STATUS_SUCCESS || ws > CONV_WORKSPACE_CAP)
			continue;
		slot->algo = perf[i].algo;
		slot->workspace = ws;
		break;
	}
	slot->valid = 1;
	*out = slot;
	return 0;
}

/* The convolution proper, with work_lock held. */
static int conv_locked(const struct cuda_call *c, const int *key, int64_t pt,
		       int64_t pl, int asym)
{
	struct cuda_ctx *ctx = c->ctx;
	struct cuda_dnn *d = ctx->dnn;
	const struct gn_tensor_meta *xm = c->im[0];
	int N = key[0], C = key[1], Hp = key[2], Wp = key[3], O = key[4];
	int Ho = (int)c->om->shape[2], Wo = (int)c->om->shape[3];
	int64_t H = xm->shape[2], W = xm->shape[3];
	const float one = 1.0f, zero = 0.0f;
	struct conv_algo *algo = NULL;
	size_t pad_bytes = 0;
	const void *x = c->in[0];
	unsigned char *scratch = NULL;
	int dims[4];
	cudnnStatus_t s;
	cudaError_t e;
	int rc;

	s = cudnnSetTensor4dDescriptor(d->xd, CUDNN_TENSOR_NCHW,
				       CUDNN_DATA_FLOAT, N, C, Hp, Wp);
	if (s == CUDNN_STATUS_SUCCESS)
		s = cudnnSetFilter4dDescriptor(d->wd, CUDNN_DATA_FLOAT,
					       CUDNN_TENSOR_NCHW, O, key[5],
					       key[6], key[7]);
	if (s == CUDNN_STATUS_SUCCESS)
		s = cudnnSetConvolution2dDescriptor(
			d->cd, key[8], key[9], key[10], key[11], key[12],
			key[13], CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT);
	if (s == CUDNN_STATUS_SUCCESS)
		s = cudnnSetConvolutionGroupCount(d->cd, key[14]);
	if (s == CUDNN_STATUS_SUCCESS)
		s = cudnnSetConvolutionMathType(d->cd, CUDNN_FMA_MATH);
	if (s == CUDNN_STATUS_SUCCESS)
		s = cudnnSetTensor4dDescriptor(d->yd, CUDNN_TENSOR_NCHW,
					       CUDNN_DATA_FLOAT, N, O, Ho, Wo);
	if (s != CUDNN_STATUS_SUCCESS)
		return dnn_fail(c, s, "setting the descriptors");
	s = cudnnGetConvolutionNdForwardOutputDim(d->cd, d->xd, d->wd, 4, dims);
	if (s != CUDNN_STATUS_SUCCESS)
		return dnn_fail(c, s, "cudnnGetConvolutionNdForwardOutputDim");
	if (dims[0] != N || dims[1] != O || dims[2] != Ho || dims[3] != Wo)
		return gn_error_set(-EIO,
				    "cuda: conv2d: cuDNN computes an output "
				    "of [%d,%d,%d,%d], the plan [%d,%d,%d,%d]",
				    dims[0], dims[1], dims[2], dims[3], N, O,
				    Ho, Wo);
	rc = conv_algo(c, key, &algo);
	if (rc != 0)
		return rc;
	if (asym)
		pad_bytes = ((size_t)N * C * Hp * Wp * sizeof(float) + 255) &
			    ~(size_t)255;
	if (pad_bytes + algo->workspace > 0) {
		rc = gn_cuda_scratch(c, pad_bytes + algo->workspace,
				     (void **)&scratch);
		if (rc != 0)
			return rc;
	}
	if (asym) {
		/* x into the middle of a zeroed [N, C, Hp, Wp]. */
		struct gn_cuda_bcast bc = {
			.ndim = 3,
			.shape = {(int64_t)N * C, H, W},
			.stride = {{H * W, W, 1},
				   {(int64_t)Hp * Wp, (int64_t)Wp, 1}}};

		e = cudaMemsetAsync(scratch, 0, pad_bytes, ctx->stream);
		if (e == cudaSuccess)
			e = gn_cuda_copy_strided(
				sizeof(float), c->in[0],
				scratch +
					(size_t)(pt * Wp + pl) * sizeof(float),
				gn_meta_numel(xm), &bc, ctx->stream);
		if (e != cudaSuccess)
			return gn_cuda_call_fail(c, e, "padding the input");
		x = scratch;
	}
	s = cudnnConvolutionForward(
		d->h, &one, d->xd, x, d->wd, c->in[1], d->cd, algo->algo,
		algo->workspace ? scratch + pad_bytes : NULL, algo->workspace,
		&zero, d->yd, c->out);
	if (s != CUDNN_STATUS_SUCCESS &&
	    CUDNN_STATUS_CATEGORY(s) == CUDNN_STATUS_NOT_SUPPORTED &&
	    algo->algo != CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM) {
		/* The heuristic's pick refused: fall back for good. */
		algo->algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
		algo->workspace = 0;
		s = cudnnConvolutionForward(d->h, &one, d->xd, x, d->wd,
					    c->in[1], d->cd, algo->algo, NULL,
					    0, &zero, d->yd, c->out);
	}
	if (s != CUDNN_STATUS_SUCCESS)
		return dnn_fail(c, s, "cudnnConvolutionForward");
	if (c->nin == 3) {
		s = cudnnSetTensor4dDescriptor(d->bd, CUDNN_TENSOR_NCHW,
					       CUDNN_DATA_FLOAT, 1, O, 1, 1);
		if (s == CUDNN_STATUS_SUCCESS)
			s = cudnnAddTensor(d->h, &one, d->bd, c->in[2], &one,
					   d->yd, c->out);
		if (s != CUDNN_STATUS_SUCCESS)
			return dnn_fail(c, s, "cudnnAddTensor (bias)");
	}
	return 0;
}

static int fits_int(int64_t v)
{
	return v >= 0 && v <= INT_MAX;
}

static int run_conv2d(const struct cuda_call *c)
{
	const struct gn_tensor_meta *xm = c->im[0], *wm = c->im[1];
	const int64_t *a = c->a->i;
	int64_t pt = a[2], pl = a[3], pb = a[4], pr = a[5];
	int asym = pt != pb || pl != pr;
	int64_t Hp = xm->shape[2] + (asym ? pt + pb : 0);
	int64_t Wp = xm->shape[3] + (asym ? pl + pr : 0);
	int64_t v[15] = {
		xm->shape[0],  xm->shape[1],  Hp,	    Wp,
		wm->shape[0],  wm->shape[1],  wm->shape[2], wm->shape[3],
		asym ? 0 : pt, asym ? 0 : pl, a[0],	    a[1],
		a[6],	       a[7],	      a[8]};
	int key[15];
	int rc;

	if (!gn_cuda_all_f32(c))
		return gn_cuda_unsupported(c, "conv2d runs on f32");
	if (gn_meta_numel(xm) == 0 || gn_meta_numel(wm) == 0)
		return conv_bias_only(c);
	if (c->ctx->dnn == NULL)
		return gn_cuda_unsupported(c, c->ctx->dnn_why);
	/* cuDNN's legacy descriptors hold int dims and int strides. */
	for (int i = 0; i < 15; i++) {
		if (!fits_int(v[i]))
			return gn_cuda_unsupported(c, "a dim or attribute "
						      "exceeds cuDNN's int");
		key[i] = (int)v[i];
	}
	if (!fits_int(v[0] * v[1] * Hp * Wp) ||
	    !fits_int((int64_t)gn_meta_numel(c->om)) ||
	    !fits_int((int64_t)gn_meta_numel(wm)))
		return gn_cuda_unsupported(c, "a tensor exceeds cuDNN's 2^31 "
					      "elements");
	pthread_mutex_lock(&c->ctx->work_lock);
	rc = conv_locked(c, key, pt, pl, asym);
	pthread_mutex_unlock(&c->ctx->work_lock);
	return rc;
}

#else /* !GN_HAVE_CUDNN */

void gn_cuda_dnn_init(struct cuda_ctx *ctx)
{
	snprintf(ctx->dnn_why, sizeof(ctx->dnn_why),
		 "this build has no cuDNN (it was not found next to the CUDA "
		 "Toolkit)");
}

void gn_cuda_dnn_fini(struct cuda_ctx *ctx)
{
	ctx->dnn = NULL;
}

static int run_conv2d(const struct cuda_call *c)
{
	if (!gn_cuda_all_f32(c))
		return gn_cuda_unsupported(c, "conv2d runs on f32");
	if (gn_meta_numel(c->im[0]) == 0 || gn_meta_numel(c->im[1]) == 0)
		return conv_bias_only(c);
	return gn_cuda_unsupported(c, c->ctx->dnn_why);
}

#endif /* GN_HAVE_CUDNN */

static int launched(const struct cuda_call *c, cudaError_t e)
{
	return e == cudaSuccess ? 0 : gn_cuda_call_fail(c, e, "kernel launch");
}

static int run_pool2d(const struct cuda_call *c)
{
	const struct gn_tensor_meta *xm = c->im[0];
	const int64_t *a = c->a->i;
	struct gn_cuda_pool p = {
		.nc = xm->shape[0] * xm->shape[1],
		.h = xm->shape[2],
		.w = xm->shape[3],
		.ho = c->om->shape[2],
		.wo = c->om->shape[3],
		.kh = a[0],
		.kw = a[1],
		.sh = a[2],
		.sw = a[3],
		.pt = a[4],
		.pl = a[5],
		.pb = a[6],
		.pr = a[7],
		.is_max = c->op == GN_OP_MAXPOOL2D,
		.incl = c->op == GN_OP_AVGPOOL2D && c->a->ni > 9 && a[9] != 0,
	};

	return launched(c,
			gn_cuda_pool2d(c->in[0], c->out, &p, c->ctx->stream));
}

int gn_cuda_run_nn(const struct cuda_call *c)
{
	const struct gn_tensor_meta *xm = c->im[0];
	uint64_t inner = 1, outer = 1, len;
	int64_t ax, k;

	if (!gn_cuda_all_f32(c))
		return gn_cuda_unsupported(c, "runs on f32");
	switch (c->op) {
	case GN_OP_CONV2D: return run_conv2d(c);
	case GN_OP_MAXPOOL2D:
	case GN_OP_AVGPOOL2D: return run_pool2d(c);
	case GN_OP_GLOBAL_AVGPOOL:
		return launched(c,
				gn_cuda_row_mean(
					c->in[0], c->out,
					(uint64_t)(xm->shape[0] * xm->shape[1]),
					(uint64_t)(xm->shape[2] * xm->shape[3]),
					c->ctx->stream));
	case GN_OP_BATCHNORM:
		for (int d = 2; d < xm->ndim; d++)
			inner *= (uint64_t)xm->shape[d];
		return launched(c,
				gn_cuda_batchnorm(c->in[0], c->in[1], c->in[2],
						  c->in[3], c->in[4], c->out,
						  (uint64_t)xm->shape[0],
						  (uint64_t)xm->shape[1], inner,
						  c->a->f[0], c->ctx->stream));
	case GN_OP_LAYERNORM:
		k = c->a->i[0];
		for (int d = xm->ndim - (int)k; d < xm->ndim; d++)
			inner *= (uint64_t)xm->shape[d];
		return launched(c, gn_cuda_layernorm(
					   c->in[0], c->in[1], c->in[2], c->out,
					   gn_meta_numel(xm) / inner, inner,
					   c->a->f[0], c->ctx->stream));
	case GN_OP_SOFTMAX:
	case GN_OP_LOG_SOFTMAX:
		ax = c->a->i[0];
		for (int d = 0; d < ax; d++)
			outer *= (uint64_t)xm->shape[d];
		for (int d = (int)ax + 1; d < xm->ndim; d++)
			inner *= (uint64_t)xm->shape[d];
		len = (uint64_t)xm->shape[ax];
		return launched(c, gn_cuda_softmax(c->in[0], c->out, outer, len,
						   inner,
						   c->op == GN_OP_LOG_SOFTMAX,
						   c->ctx->stream));
	default: return gn_cuda_unsupported(c, "no such kernel");
	}
}
