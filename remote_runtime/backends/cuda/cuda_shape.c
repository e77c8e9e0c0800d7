/*
 * Shape ops and sources on the device. Every buffer is contiguous
 * row-major, so reshape, squeeze and unsqueeze are a plain copy and the
 * rest are strided copies (kernels_shape.cu): walk the output in order
 * and read the source at the offset its own strides give (permuted,
 * stepped, zero where broadcast). Concat copies each operand into its
 * band of every outer row. Sources fill in place, the random ones with
 * the Philox generator every backend shares.
 */
#include <errno.h>
#include <string.h>

#include "cuda_ctx.h"
#include "gn_error.h"

/* Queue a copy of om-shaped elements read from src at strides `sst`. */
static int copy_strided(const struct cuda_call *c, const void *src,
			const int64_t *sst, void *dst,
			const struct gn_tensor_meta *om)
{
	int64_t st[2][GN_MAX_DIMS];
	struct gn_cuda_bcast bc;
	cudaError_t e;

	memcpy(st[0], sst, sizeof(st[0]));
	gn_cuda_strides(om, st[1]);
	gn_cuda_bcast_build(om, 2, st, &bc);
	if (bc.ndim == 1 && bc.stride[0][0] == 1 && bc.stride[1][0] == 1)
		e = cudaMemcpyAsync(dst, src, gn_meta_nbytes(om),
				    cudaMemcpyDeviceToDevice, c->ctx->stream);
	else
		e = gn_cuda_copy_strided(gn_dtype_size(om->dtype), src, dst,
					 gn_meta_numel(om), &bc,
					 c->ctx->stream);
	return e == cudaSuccess ? 0 : gn_cuda_call_fail(c, e, "strided copy");
}

static int run_concat(const struct cuda_call *c)
{
	const struct gn_tensor_meta *om = c->om;
	int64_t ax = c->a->i[0], outer = 1, inner = 1, at = 0, out_row;
	size_t es = gn_dtype_size(om->dtype);
	unsigned char *o = c->out;

	for (int d = 0; d < ax; d++)
		outer *= om->shape[d];
	for (int d = (int)ax + 1; d < om->ndim; d++)
		inner *= om->shape[d];
	out_row = om->shape[ax] * inner;
	for (int k = 0; k < c->nin; k++) {
		int64_t band = c->im[k]->shape[ax] * inner;
		/* The operand as [outer, band], written at row stride out_row.
		 */
		struct gn_tensor_meta bm = {
			.dtype = om->dtype, .ndim = 2, .shape = {outer, band}};
		struct gn_cuda_bcast bc = {.ndim = 2,
					   .shape = {outer, band},
					   .stride = {{band, 1}, {out_row, 1}}};
		cudaError_t e;

		if (band == 0 || outer == 0)
			continue;
		if (c->im[k]->dtype != om->dtype)
			return gn_cuda_unsupported(c, "operand dtypes differ");
		if (outer == 1)
			e = cudaMemcpyAsync(o + (size_t)at * es, c->in[k],
					    gn_meta_nbytes(&bm),
					    cudaMemcpyDeviceToDevice,
					    c->ctx->stream);
		else
			e = gn_cuda_copy_strided(
				es, c->in[k], o + (size_t)at * es,
				gn_meta_numel(&bm), &bc, c->ctx->stream);
		if (e != cudaSuccess)
			return gn_cuda_call_fail(c, e, "concat copy");
		at += band;
	}
	return 0;
}

int gn_cuda_run_shape(const struct cuda_call *c)
{
	const struct gn_tensor_meta *x = c->im[0];
	size_t es = gn_dtype_size(c->om->dtype);
	int64_t st[GN_MAX_DIMS], sst[GN_MAX_DIMS];
	cudaError_t e;

	if (es != 1 && es != 2 && es != 4 && es != 8)
		return gn_cuda_unsupported(c, "unknown dtype");
	if (c->op != GN_OP_CONCAT && x->dtype != c->om->dtype)
		return gn_cuda_unsupported(c,
					   "output dtype differs from input");
	switch (c->op) {
	case GN_OP_RESHAPE:
	case GN_OP_SQUEEZE:
	case GN_OP_UNSQUEEZE:
		/* Same bytes, other dims. */
		if (c->out == c->in[0])
			return 0;
		e = cudaMemcpyAsync(c->out, c->in[0], gn_meta_nbytes(c->om),
				    cudaMemcpyDeviceToDevice, c->ctx->stream);
		return e == cudaSuccess
			       ? 0
			       : gn_cuda_call_fail(c, e, "cudaMemcpyAsync");
	case GN_OP_PERMUTE:
		gn_cuda_strides(x, st);
		for (int d = 0; d < x->ndim; d++)
			sst[d] = st[c->a->i[d]];
		return copy_strided(c, c->in[0], sst, c->out, c->om);
	case GN_OP_SLICE: {
		int64_t ax = c->a->i[0];
		const unsigned char *src = c->in[0];

		gn_cuda_strides(x, st);
		memcpy(sst, st, sizeof(st));
		sst[ax] = st[ax] * c->a->i[3];
		return copy_strided(c, src + (size_t)(c->a->i[1] * st[ax]) * es,
				    sst, c->out, c->om);
	}
	case GN_OP_EXPAND:
		gn_cuda_bstrides(x, c->om->ndim, sst);
		return copy_strided(c, c->in[0], sst, c->out, c->om);
	case GN_OP_CONCAT: return run_concat(c);
	default: return gn_cuda_unsupported(c, "not a shape op");
	}
}

int gn_cuda_run_source(const struct cuda_call *c)
{
	enum gn_dtype dt = c->om->dtype;
	double a = c->a->nf > 0 ? (double)c->a->f[0] : 0;
	double b = c->a->nf > 1 ? (double)c->a->f[1] : 0;
	uint64_t seed = 0;
	cudaError_t e;

	if (dt < GN_DTYPE_F32 || dt > GN_DTYPE_BOOL)
		return gn_cuda_unsupported(c, "unknown dtype");
	if (c->op == GN_OP_RAND_UNIFORM || c->op == GN_OP_RAND_NORMAL)
		seed = (uint64_t)c->a->i[1];
	e = gn_cuda_source(c->op, dt, c->out, gn_meta_numel(c->om), a, b, seed,
			   c->ctx->stream);
	return e == cudaSuccess ? 0 : gn_cuda_call_fail(c, e, "kernel launch");
}
