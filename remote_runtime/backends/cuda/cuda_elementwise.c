/*
 * Elementwise ops on the device: unary maps, broadcasting binary ops,
 * comparisons, where and cast, for every dtype the op table allows. The
 * host side builds the broadcast description (merging dims so most calls
 * index over one or two) and picks the kernel; kernels_elementwise.cu
 * computes as the cpu backend does.
 *
 * Integer division is the one case left to the host: a zero divisor must
 * fail the node with a message naming the element, which the cpu backend
 * gives and a kernel cannot without a round trip.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "cuda_ctx.h"
#include "gn_error.h"

void gn_cuda_bstrides(const struct gn_tensor_meta *m, int nd, int64_t *st)
{
	int64_t s = 1;

	for (int d = nd - 1, k = m->ndim - 1; d >= 0; d--, k--) {
		if (k < 0 || m->shape[k] == 1)
			st[d] = 0;
		else
			st[d] = s;
		if (k >= 0)
			s *= m->shape[k];
	}
}

void gn_cuda_strides(const struct gn_tensor_meta *m, int64_t *st)
{
	int64_t s = 1;

	for (int d = m->ndim - 1; d >= 0; d--) {
		st[d] = s;
		s *= m->shape[d];
	}
}

/*
 * Merge each pair of neighbouring dims that every operand steps through
 * as one (a contiguous pair, or a pair an operand is broadcast along
 * both): [64,128] + [64,128] becomes one flat dim and [8,64,128] + [128]
 * becomes [512,128].
 */
void gn_cuda_bcast_build(const struct gn_tensor_meta *om, int nops,
			 int64_t st[][GN_MAX_DIMS], struct gn_cuda_bcast *bc)
{
	int nd = 0;

	memset(bc, 0, sizeof(*bc));
	for (int d = 0; d < om->ndim; d++) {
		int64_t len = om->shape[d];
		int merge = nd > 0;

		/* Dims of length 1 contribute nothing to any offset. */
		if (len == 1)
			continue;
		for (int k = 0; k < nops && merge; k++)
			merge = bc->stride[k][nd - 1] == st[k][d] * len;
		if (merge) {
			bc->shape[nd - 1] *= len;
			for (int k = 0; k < nops; k++)
				bc->stride[k][nd - 1] = st[k][d];
			continue;
		}
		bc->shape[nd] = len;
		for (int k = 0; k < nops; k++)
			bc->stride[k][nd] = st[k][d];
		nd++;
	}
	if (nd == 0) {
		/* A single element: one flat dim, every operand contiguous. */
		bc->shape[0] = 1;
		for (int k = 0; k < nops; k++)
			bc->stride[k][0] = 1;
		nd = 1;
	}
	bc->ndim = nd;
}

/* Broadcast description of the call's operands against its output. */
static void bcast_of_call(const struct cuda_call *c, struct gn_cuda_bcast *bc)
{
	int64_t st[3][GN_MAX_DIMS];

	for (int k = 0; k < c->nin && k < 3; k++)
		gn_cuda_bstrides(c->im[k], c->om->ndim, st[k]);
	gn_cuda_bcast_build(c->om, c->nin, st, bc);
}

static int is_int(enum gn_dtype d)
{
	return d == GN_DTYPE_I64 || d == GN_DTYPE_I32 || d == GN_DTYPE_I8 ||
	       d == GN_DTYPE_U8;
}

static int known_dtype(enum gn_dtype d)
{
	return d >= GN_DTYPE_F32 && d <= GN_DTYPE_BOOL;
}

/* Attribute k, or `dflt` where the node carries fewer. */
static float fattr(const struct cuda_call *c, uint32_t k, float dflt)
{
	return c->a != NULL && c->a->nf > k ? c->a->f[k] : dflt;
}

static int run_unary(const struct cuda_call *c)
{
	enum gn_dtype dt = c->im[0]->dtype, odt = c->om->dtype;
	struct gn_cuda_unary_attrs at = {0};
	cudaError_t e;

	if (!known_dtype(dt) || !known_dtype(odt))
		return gn_cuda_unsupported(c, "unknown dtype");
	if (c->op == GN_OP_CAST && dt == odt) {
		e = cudaMemcpyAsync(c->out, c->in[0], gn_meta_nbytes(c->om),
				    cudaMemcpyDeviceToDevice, c->ctx->stream);
		return e == cudaSuccess
			       ? 0
			       : gn_cuda_call_fail(c, e, "cudaMemcpyAsync");
	}
	if (c->op != GN_OP_CAST && odt != dt)
		return gn_cuda_unsupported(c,
					   "output dtype differs from input");
	switch (c->op) {
	case GN_OP_HARDSIGMOID:
		at.f0 = fattr(c, 0, 1.0f / 6.0f);
		at.f1 = fattr(c, 1, 0.5f);
		break;
	case GN_OP_CLIP:
		at.f0 = fattr(c, 0, -INFINITY);
		at.f1 = fattr(c, 1, INFINITY);
		break;
	case GN_OP_GELU:
		at.gelu_tanh = c->a != NULL && c->a->ni > 0 && c->a->i[0] != 0;
		break;
	default: break;
	}
	e = gn_cuda_unary(c->op, dt, odt, c->in[0], c->out,
			  gn_meta_numel(c->om), &at, c->ctx->stream);
	return e == cudaSuccess ? 0 : gn_cuda_call_fail(c, e, "kernel launch");
}

static int run_binary(const struct cuda_call *c)
{
	enum gn_dtype dt = c->im[0]->dtype, odt = c->om->dtype;
	struct gn_cuda_bcast bc;
	cudaError_t e;

	if (c->nin != 2 || c->im[1]->dtype != dt)
		return gn_cuda_unsupported(c, "expected two operands of one "
					      "dtype");
	if (!known_dtype(dt) || !known_dtype(odt))
		return gn_cuda_unsupported(c, "unknown dtype");
	if (c->op == GN_OP_DIV && is_int(dt))
		return gn_cuda_unsupported(c,
					   "integer division runs on the host, "
					   "which reports a zero divisor");
	bcast_of_call(c, &bc);
	e = gn_cuda_binary(c->op, dt, odt, c->in[0], c->in[1], c->out,
			   gn_meta_numel(c->om), &bc, c->ctx->stream);
	return e == cudaSuccess ? 0 : gn_cuda_call_fail(c, e, "kernel launch");
}

static int run_where(const struct cuda_call *c)
{
	size_t es = gn_dtype_size(c->om->dtype);
	struct gn_cuda_bcast bc;
	cudaError_t e;

	if (c->nin != 3 || c->im[0]->dtype != GN_DTYPE_BOOL ||
	    c->im[1]->dtype != c->om->dtype || c->im[2]->dtype != c->om->dtype)
		return gn_cuda_unsupported(c, "expected a bool condition and "
					      "two operands of the output's "
					      "dtype");
	if (es != 1 && es != 2 && es != 4 && es != 8)
		return gn_cuda_unsupported(c, "unknown dtype");
	bcast_of_call(c, &bc);
	e = gn_cuda_where(es, c->in[0], c->in[1], c->in[2], c->out,
			  gn_meta_numel(c->om), &bc, c->ctx->stream);
	return e == cudaSuccess ? 0 : gn_cuda_call_fail(c, e, "kernel launch");
}

int gn_cuda_run_elementwise(const struct cuda_call *c)
{
	if (c->op == GN_OP_WHERE)
		return run_where(c);
	if (gn_op_kind(c->op) == GN_OP_KIND_BINARY)
		return run_binary(c);
	if (c->nin != 1)
		return gn_cuda_unsupported(c, "expected one operand");
	return run_unary(c);
}
