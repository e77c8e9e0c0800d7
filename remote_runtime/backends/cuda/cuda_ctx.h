/*
 * Private to the CUDA backend's host side (cuda_*.c): the state of one
 * opened backend, the call every op family receives, error helpers, and
 * the scratch buffer.
 *
 * Locking. Transfers hold xfer_lock (the staging chunks are shared).
 * Kernel launches and cuBLAS calls need no lock: all go onto one stream,
 * in the order they are issued. What is shared beyond the stream, the
 * scratch buffer, the cuDNN handle and its descriptors, and the conv
 * algorithm cache, is held under work_lock from before the first launch
 * that uses it until after the last one is queued; stream order then
 * keeps a later holder's launches behind the earlier holder's kernels.
 */
#ifndef GN_CUDA_CTX_H
#define GN_CUDA_CTX_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backend.h"
#include "cuda_internal.h"

/* cuDNN's state (cuda_nn.c): handle, descriptors, algorithm cache. */
struct cuda_dnn;

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

	pthread_mutex_t work_lock;
	/* Device scratch, grown on demand through the backend's alloc. */
	void *scratch;
	size_t scratch_size;
	/*
	 * NULL when cuDNN could not be opened or the build has none; dnn_why
	 * says which.
	 */
	struct cuda_dnn *dnn;
	char dnn_why[192];

	/*
	 * Index errors: the kernels record into ierr_dev; sync copies it to
	 * ierr_host (pinned) when ierr_armed says an indexing op ran.
	 */
	struct gn_cuda_index_error *ierr_dev;
	struct gn_cuda_index_error *ierr_host;
	int ierr_armed;

	char desc[768]; /* fits the longest name cudaDeviceProp holds */
};

/* One node to run, as the backend's run() received it. */
struct cuda_call {
	struct cuda_ctx *ctx;
	enum gn_op op;
	const struct gn_op_attrs *a;
	const struct gn_tensor_meta *const *im;
	const void *const *in;
	int nin;
	const struct gn_tensor_meta *om;
	void *out;
};

/*
 * Errors, each naming the call ("conv2d f32[1,3,8,8], ... -> ...") and
 * the step that failed. A CUDA error is -ENOMEM for an exhausted device
 * and -EIO otherwise; cuBLAS and cuDNN likewise.
 */
int gn_cuda_call_fail(const struct cuda_call *c, cudaError_t e,
		      const char *step);
int gn_cuda_blas_fail(const struct cuda_call *c, cublasStatus_t s,
		      const char *step);
/* "conv2d f32[1,3,8,8], f32[4,3,3,3] -> f32[1,4,6,6]" into buf. */
const char *gn_cuda_call_format(const struct cuda_call *c, char *buf,
				size_t len);
/* -EOPNOTSUPP naming the op, the operand dtype, the call and why. */
int gn_cuda_unsupported(const struct cuda_call *c, const char *why);

/*
 * With work_lock held: make the scratch buffer at least `size` bytes and
 * return it in *p. Growing waits for the stream (the old buffer may still
 * be read), frees it and allocates anew through the backend's alloc.
 */
int gn_cuda_scratch(const struct cuda_call *c, size_t size, void **p);

/* Bytes of device memory allocated through the backend; NULL on error. */
void *gn_cuda_alloc(void *ctx, size_t size);

/*
 * Row-major strides of `m` seen through an output of `nd` dims (numpy
 * alignment at the trailing dim), 0 where `m` is broadcast.
 */
void gn_cuda_bstrides(const struct gn_tensor_meta *m, int nd, int64_t *st);

/* Row-major strides of `m`. */
void gn_cuda_strides(const struct gn_tensor_meta *m, int64_t *st);

/*
 * Describe an elementwise op over output `om` with `nops` operands for the
 * kernels, merging each pair of neighbouring dims that every operand
 * steps through as one (see struct gn_cuda_bcast). st[k] are operand k's
 * strides over om's dims.
 */
void gn_cuda_bcast_build(const struct gn_tensor_meta *om, int nops,
			 int64_t st[][GN_MAX_DIMS], struct gn_cuda_bcast *bc);

/* Op families; each returns 0 or a negative errno with detail. */
int gn_cuda_run_elementwise(const struct cuda_call *c);
int gn_cuda_run_shape(const struct cuda_call *c);
int gn_cuda_run_source(const struct cuda_call *c);
int gn_cuda_run_linalg(const struct cuda_call *c);
int gn_cuda_run_nn(const struct cuda_call *c);
int gn_cuda_run_reduce_index(const struct cuda_call *c);

/*
 * cuDNN's part of init and fini (cuda_nn.c). Init never fails the open:
 * without cuDNN, ctx->dnn stays NULL and conv2d runs on the host.
 */
void gn_cuda_dnn_init(struct cuda_ctx *ctx);
void gn_cuda_dnn_fini(struct cuda_ctx *ctx);

/* True when every operand and the output are f32. */
int gn_cuda_all_f32(const struct cuda_call *c);

#endif /* GN_CUDA_CTX_H */
