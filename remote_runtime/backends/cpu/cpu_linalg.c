/*
 * Matrix products: batched matmul with numpy broadcasting and 1-D
 * promotion, and linear (x w^T + b). f32, accumulating in the i-k-j order
 * that streams rows of b and c.
 */
#include <string.h>

#include "cpu_internal.h"

static void gemm(const float *a, const float *b, float *c, int64_t m, int64_t k,
		 int64_t n)
{
	for (int64_t i = 0; i < m; i++) {
		float *ci = c + i * n;

		memset(ci, 0, sizeof(float) * (size_t)n);
		for (int64_t p = 0; p < k; p++) {
			const float av = a[i * k + p];
			const float *bp = b + p * n;

			for (int64_t j = 0; j < n; j++)
				ci[j] += av * bp[j];
		}
	}
}

static int matmul(const struct cpu_call *c)
{
	const struct gn_tensor_meta *am = c->im[0], *bm = c->im[1];
	int a1 = am->ndim == 1, b1 = bm->ndim == 1;
	int64_t m = a1 ? 1 : am->shape[am->ndim - 2];
	int64_t k = am->shape[am->ndim - 1];
	int64_t n = b1 ? 1 : bm->shape[bm->ndim - 1];
	struct gn_tensor_meta ab = *am, bb = *bm, ob = *c->om;
	int64_t sa[GN_MAX_DIMS], sb[GN_MAX_DIMS], idx[GN_MAX_DIMS] = {0};
	uint64_t batches;
	int64_t oa = 0, obo = 0;

	/* Batch dims: everything but the matrix dims of each. */
	ab.ndim = a1 ? 0 : am->ndim - 2;
	bb.ndim = b1 ? 0 : bm->ndim - 2;
	ob.ndim = c->om->ndim - (a1 ? 0 : 1) - (b1 ? 0 : 1);
	gn_cpu_bstrides(&ab, ob.ndim, sa);
	gn_cpu_bstrides(&bb, ob.ndim, sb);
	batches = gn_meta_numel(&ob);
	for (uint64_t t = 0; t < batches; t++) {
		gemm((const float *)c->in[0] + oa * m * k,
		     (const float *)c->in[1] + obo * k * n,
		     (float *)c->out + (int64_t)t * m * n, m, k, n);
		for (int d = ob.ndim - 1; d >= 0; d--) {
			oa += sa[d];
			obo += sb[d];
			if (++idx[d] < ob.shape[d])
				break;
			oa -= sa[d] * ob.shape[d];
			obo -= sb[d] * ob.shape[d];
			idx[d] = 0;
		}
	}
	return 0;
}

static int linear(const struct cpu_call *c)
{
	const struct gn_tensor_meta *xm = c->im[0], *wm = c->im[1];
	int64_t k = xm->shape[xm->ndim - 1], n = wm->shape[0];
	uint64_t rows = k ? gn_meta_numel(xm) / (uint64_t)k : 0;
	const float *x = c->in[0], *w = c->in[1];
	const float *bias = c->nin == 3 ? c->in[2] : NULL;
	float *o = c->out;

	if (k == 0)
		rows = gn_meta_numel(c->om) / (uint64_t)(n ? n : 1);
	for (uint64_t r = 0; r < rows; r++)
		for (int64_t j = 0; j < n; j++) {
			const float *xr = x + r * (uint64_t)k, *wr = w + j * k;
			float acc = 0;

			for (int64_t p = 0; p < k; p++)
				acc += xr[p] * wr[p];
			o[r * (uint64_t)n + (uint64_t)j] =
				acc + (bias ? bias[j] : 0.0f);
		}
	return 0;
}

int gn_cpu_linalg(const struct cpu_call *c)
{
	if (c->om->dtype != GN_DTYPE_F32)
		return gn_cpu_unsupported(c, c->om->dtype);
	return c->op == GN_OP_MATMUL ? matmul(c) : linear(c);
}
