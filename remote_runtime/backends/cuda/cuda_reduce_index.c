/*
 * Reductions (sum, mean, max, argmax) and indexing (embedding, embedding
 * bag, gather) on the device, for every dtype the op table allows.
 *
 * A reduction is described to the kernel as two index spaces over the
 * input: the kept dims, in order (output element o sits at offset
 * off(kept, o)), and the reduced dims (the values of o are at off(kept, o)
 * + off(red, k)), each with neighbouring contiguous dims merged.
 *
 * Indexing ops check their indices on the device; an index out of range
 * fails the plan at the next sync with -EINVAL naming the op, the index
 * and the bound (see cuda_sync).
 */
#include <errno.h>
#include <string.h>

#include "cuda_ctx.h"
#include "gn_error.h"

/* Append dim (len, stride) to ix, merging with the last if contiguous. */
static void index_push(struct gn_cuda_index *ix, int64_t len, int64_t stride)
{
	if (len == 1)
		return;
	if (ix->ndim > 0 && ix->stride[ix->ndim - 1] == stride * len) {
		ix->shape[ix->ndim - 1] *= len;
		ix->stride[ix->ndim - 1] = stride;
		return;
	}
	ix->shape[ix->ndim] = len;
	ix->stride[ix->ndim] = stride;
	ix->ndim++;
}

static int launched(const struct cuda_call *c, cudaError_t e)
{
	return e == cudaSuccess ? 0 : gn_cuda_call_fail(c, e, "kernel launch");
}

static int numeric(enum gn_dtype d)
{
	return d >= GN_DTYPE_F32 && d <= GN_DTYPE_U8;
}

static int run_reduce(const struct cuda_call *c)
{
	const struct gn_tensor_meta *xm = c->im[0];
	int red[GN_MAX_DIMS] = {0}, all = c->a->ni <= 1;
	struct gn_cuda_index kept, rix;
	int64_t st[GN_MAX_DIMS];
	uint64_t nred = 1, nout = gn_meta_numel(c->om);

	if (!numeric(xm->dtype) || !numeric(c->om->dtype))
		return gn_cuda_unsupported(c, "reductions take numeric dtypes");
	for (uint32_t j = 1; j < c->a->ni; j++)
		red[c->a->i[j]] = 1;
	memset(&kept, 0, sizeof(kept));
	memset(&rix, 0, sizeof(rix));
	gn_cuda_strides(xm, st);
	for (int d = 0; d < xm->ndim; d++) {
		if (all || red[d]) {
			index_push(&rix, xm->shape[d], st[d]);
			nred *= (uint64_t)xm->shape[d];
		} else {
			index_push(&kept, xm->shape[d], st[d]);
		}
	}
	return launched(c, gn_cuda_reduce(c->op, xm->dtype, c->om->dtype,
					  c->in[0], c->out, nout, &kept, &rix,
					  nred, gn_meta_numel(xm) / nout,
					  c->ctx->stream));
}

/* x viewed as [outer, x.shape[ax], inner]. */
static void split_at(const struct gn_tensor_meta *xm, int64_t ax,
		     uint64_t *outer, uint64_t *inner)
{
	*outer = *inner = 1;
	for (int d = 0; d < ax; d++)
		*outer *= (uint64_t)xm->shape[d];
	for (int d = (int)ax + 1; d < xm->ndim; d++)
		*inner *= (uint64_t)xm->shape[d];
}

static int index_dtype_ok(const struct cuda_call *c)
{
	enum gn_dtype d = c->im[1]->dtype;

	return d == GN_DTYPE_I64 || d == GN_DTYPE_I32;
}

static void arm_index_errors(struct cuda_ctx *ctx)
{
	__atomic_store_n(&ctx->ierr_armed, 1, __ATOMIC_RELEASE);
}

int gn_cuda_run_reduce_index(const struct cuda_call *c)
{
	const struct gn_tensor_meta *xm = c->im[0];
	size_t es = gn_dtype_size(xm->dtype);
	uint64_t outer, inner;
	cudaError_t e;

	switch (c->op) {
	case GN_OP_REDUCE_SUM:
	case GN_OP_REDUCE_MEAN:
	case GN_OP_REDUCE_MAX: return run_reduce(c);
	case GN_OP_ARGMAX:
		if (!numeric(xm->dtype) || c->om->dtype != GN_DTYPE_I64)
			return gn_cuda_unsupported(c, "argmax takes numeric "
						      "dtypes");
		split_at(xm, c->a->i[0], &outer, &inner);
		return launched(
			c, gn_cuda_argmax(xm->dtype, c->in[0], c->out, outer,
					  (uint64_t)xm->shape[c->a->i[0]],
					  inner, c->ctx->stream));
	default: break;
	}
	if (!index_dtype_ok(c) || (es != 1 && es != 2 && es != 4 && es != 8))
		return gn_cuda_unsupported(c, "indices must be i64 or i32");
	arm_index_errors(c->ctx);
	switch (c->op) {
	case GN_OP_EMBEDDING:
		e = gn_cuda_gather(c->op, es, c->in[0], c->in[1],
				   c->im[1]->dtype == GN_DTYPE_I32, c->out, 1,
				   (uint64_t)xm->shape[0],
				   (uint64_t)xm->shape[1],
				   gn_meta_numel(c->im[1]), c->ctx->ierr_dev,
				   c->ctx->stream);
		return launched(c, e);
	case GN_OP_GATHER:
		split_at(xm, c->a->i[0], &outer, &inner);
		e = gn_cuda_gather(c->op, es, c->in[0], c->in[1],
				   c->im[1]->dtype == GN_DTYPE_I32, c->out,
				   outer, (uint64_t)xm->shape[c->a->i[0]],
				   inner, gn_meta_numel(c->im[1]),
				   c->ctx->ierr_dev, c->ctx->stream);
		return launched(c, e);
	case GN_OP_EMBEDDING_BAG:
		if (!numeric(xm->dtype))
			return gn_cuda_unsupported(c, "embedding_bag takes "
						      "numeric tables");
		e = gn_cuda_embedding_bag(
			xm->dtype, c->in[0], c->in[1],
			c->im[1]->dtype == GN_DTYPE_I32, c->out,
			(uint64_t)xm->shape[0], (uint64_t)xm->shape[1],
			(uint64_t)c->im[1]->shape[0],
			(uint64_t)c->im[1]->shape[1], (int)c->a->i[0],
			c->ctx->ierr_dev, c->ctx->stream);
		return launched(c, e);
	default: return gn_cuda_unsupported(c, "no such kernel");
	}
}
