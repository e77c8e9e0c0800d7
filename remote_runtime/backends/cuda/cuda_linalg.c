/*
 * Matrix products on cuBLAS: matmul (numpy batching and 1-D promotion),
 * linear (x w^T + bias) and scaled dot-product attention (two batched
 * gemms around the masked softmax kernel), all f32 with plain FMA math
 * (no TF32, see cuda_init), so results stay within f32 rounding of the
 * cpu backend.
 *
 * cuBLAS is column-major, and a row-major [R, C] matrix read column-major
 * is its [C, R] transpose. So C = A B row-major is computed as
 * C^T = B^T A^T column-major: swap the operands and M with N, and no
 * transposes are needed; a row-major operand used transposed (w in
 * linear, k in attention) becomes CUBLAS_OP_T.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "cuda_ctx.h"
#include "gn_error.h"

/*
 * Scores of at most this many bytes are computed per batch chunk (a build
 * may lower it to exercise the chunking on small problems).
 */
#ifndef SDPA_SCRATCH_CAP
#define SDPA_SCRATCH_CAP ((size_t)256 << 20)
#endif

/*
 * One operand of a batched gemm: base pointer, leading dimension and
 * elements per matrix, and its batch dims (`bm`), broadcast against the
 * output's; bm NULL means one matrix per batch of the current chunk,
 * starting at `p`.
 */
struct gemm_operand {
	const float *p;
	int64_t ld, mat;
	const struct gn_tensor_meta *bm;
	int64_t bst[GN_MAX_DIMS];
	int all, one; /* a matrix per batch / one shared by every batch */
};

struct gemm_desc {
	cublasOperation_t ta, tb;
	int64_t m, n, k;
	float alpha;
	struct gemm_operand a, b;
	float *c;
	int64_t ldc, c_mat;
	const struct gn_tensor_meta *ob; /* the output's batch dims */
};

static void operand_prepare(struct gemm_operand *o,
			    const struct gn_tensor_meta *ob, uint64_t batches)
{
	uint64_t nb;

	if (o->bm == NULL) {
		o->all = 1;
		o->one = 0;
		return;
	}
	nb = gn_meta_numel(o->bm);
	/*
	 * Broadcastable to ob with as many elements: every dim matches (up to
	 * leading ones), so batch t is matrix t.
	 */
	o->all = nb == batches;
	o->one = nb == 1;
	gn_cuda_bstrides(o->bm, ob->ndim, o->bst);
}

/* Matrix offset (in matrices) of operand `o` for global batch t. */
static uint64_t operand_batch(const struct gemm_operand *o,
			      const struct gn_tensor_meta *ob, uint64_t t,
			      uint64_t t0)
{
	uint64_t off = 0;

	if (o->bm == NULL)
		return t - t0;
	for (int d = ob->ndim - 1; d >= 0; d--) {
		uint64_t dim = (uint64_t)ob->shape[d];

		off += t % dim * (uint64_t)o->bst[d];
		t /= dim;
	}
	return off;
}

/*
 * Run batches [t0, t0 + nb) of g: one strided-batched call when each
 * operand has a matrix per batch or one shared matrix, otherwise one gemm
 * per batch (mixed broadcasting like [2,1,M,K] x [1,3,K,N]). All are
 * queued on the stream; none waits. g->c points at batch t0's output.
 */
static int gemm_run(const struct cuda_call *c, struct gemm_desc *g, uint64_t t0,
		    uint64_t nb)
{
	cublasHandle_t h = c->ctx->blas;
	const float zero = 0.0f;
	cublasStatus_t s;

	if (nb == 1) {
		const float *pa = g->a.p + operand_batch(&g->a, g->ob, t0, t0) *
						   (uint64_t)g->a.mat;
		const float *pb = g->b.p + operand_batch(&g->b, g->ob, t0, t0) *
						   (uint64_t)g->b.mat;

		s = cublasSgemm_64(h, g->ta, g->tb, g->m, g->n, g->k, &g->alpha,
				   pa, g->a.ld, pb, g->b.ld, &zero, g->c,
				   g->ldc);
		return s == CUBLAS_STATUS_SUCCESS
			       ? 0
			       : gn_cuda_blas_fail(c, s, "cublasSgemm_64");
	}
	if ((g->a.all || g->a.one) && (g->b.all || g->b.one)) {
		/* Operands with a matrix per batch start at batch t0's. */
		const float *pa = g->a.p, *pb = g->b.p;

		if (g->a.bm != NULL && g->a.all)
			pa += t0 * (uint64_t)g->a.mat;
		if (g->b.bm != NULL && g->b.all)
			pb += t0 * (uint64_t)g->b.mat;
		s = cublasSgemmStridedBatched_64(
			h, g->ta, g->tb, g->m, g->n, g->k, &g->alpha, pa,
			g->a.ld, g->a.one ? 0 : g->a.mat, pb, g->b.ld,
			g->b.one ? 0 : g->b.mat, &zero, g->c, g->ldc, g->c_mat,
			(int64_t)nb);
		return s == CUBLAS_STATUS_SUCCESS
			       ? 0
			       : gn_cuda_blas_fail(
					 c, s, "cublasSgemmStridedBatched_64");
	}
	for (uint64_t t = t0; t < t0 + nb; t++) {
		const float *pa = g->a.p + operand_batch(&g->a, g->ob, t, t0) *
						   (uint64_t)g->a.mat;
		const float *pb = g->b.p + operand_batch(&g->b, g->ob, t, t0) *
						   (uint64_t)g->b.mat;

		s = cublasSgemm_64(h, g->ta, g->tb, g->m, g->n, g->k, &g->alpha,
				   pa, g->a.ld, pb, g->b.ld, &zero,
				   g->c + (t - t0) * (uint64_t)g->c_mat,
				   g->ldc);
		if (s != CUBLAS_STATUS_SUCCESS)
			return gn_cuda_blas_fail(c, s, "cublasSgemm_64");
	}
	return 0;
}

static int memset_out(const struct cuda_call *c)
{
	cudaError_t e = cudaMemsetAsync(c->out, 0, gn_meta_nbytes(c->om),
					c->ctx->stream);

	return e == cudaSuccess ? 0
				: gn_cuda_call_fail(c, e, "cudaMemsetAsync");
}

/*
 * Matmul as numpy has it: [..., M, K] x [..., K, N] with broadcast batch
 * dims, and a 1-D operand promoted to a matrix ([K] as [1, K] on the left,
 * [K, 1] on the right) whose added dim the output lacks.
 */
static int run_matmul(const struct cuda_call *c)
{
	const struct gn_tensor_meta *am = c->im[0], *bm = c->im[1];
	int a1 = am->ndim == 1, b1 = bm->ndim == 1;
	int64_t m = a1 ? 1 : am->shape[am->ndim - 2];
	int64_t k = am->shape[am->ndim - 1];
	int64_t n = b1 ? 1 : bm->shape[bm->ndim - 1];
	struct gn_tensor_meta ab = *am, bb = *bm, ob = *c->om;
	struct gemm_desc g;
	uint64_t batches;

	/* With nothing to sum over, the product is all zeros. */
	if (k == 0)
		return memset_out(c);
	/* Batch dims: everything but the matrix dims of each. */
	ab.ndim = a1 ? 0 : am->ndim - 2;
	bb.ndim = b1 ? 0 : bm->ndim - 2;
	ob.ndim = c->om->ndim - (a1 ? 0 : 1) - (b1 ? 0 : 1);
	batches = gn_meta_numel(&ob);
	memset(&g, 0, sizeof(g));
	g.ta = g.tb = CUBLAS_OP_N;
	g.m = n;
	g.n = m;
	g.k = k;
	g.alpha = 1.0f;
	g.a = (struct gemm_operand){
		.p = c->in[1], .ld = n, .mat = k * n, .bm = &bb};
	g.b = (struct gemm_operand){
		.p = c->in[0], .ld = k, .mat = m * k, .bm = &ab};
	g.c = c->out;
	g.ldc = n;
	g.c_mat = m * n;
	g.ob = &ob;
	operand_prepare(&g.a, &ob, batches);
	operand_prepare(&g.b, &ob, batches);
	return gemm_run(c, &g, 0, batches);
}

/*
 * Linear: out[r, j] = sum_p x[r, p] w[j, p] + bias[j]. Column-major, out^T
 * (N x rows) = w (w^T's transpose) times x^T, with the bias rows written
 * first and accumulated onto (beta = 1).
 */
static int run_linear(const struct cuda_call *c)
{
	const struct gn_tensor_meta *xm = c->im[0], *wm = c->im[1];
	int64_t k = xm->shape[xm->ndim - 1], n = wm->shape[0];
	uint64_t rows = gn_meta_numel(c->om) / (uint64_t)n;
	const float one = 1.0f, zero = 0.0f;
	cublasStatus_t s;
	cudaError_t e;

	if (c->nin == 3) {
		struct gn_cuda_bcast bc = {.ndim = 2,
					   .shape = {(int64_t)rows, n},
					   .stride = {{0, 1}, {n, 1}}};

		e = gn_cuda_copy_strided(sizeof(float), c->in[2], c->out,
					 rows * (uint64_t)n, &bc,
					 c->ctx->stream);
		if (e != cudaSuccess)
			return gn_cuda_call_fail(c, e, "bias rows");
	} else if (k == 0) {
		return memset_out(c);
	}
	if (k == 0)
		return 0;
	s = cublasSgemm_64(c->ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, n,
			   (int64_t)rows, k, &one, c->in[1], k, c->in[0], k,
			   c->nin == 3 ? &one : &zero, c->out, n);
	return s == CUBLAS_STATUS_SUCCESS
		       ? 0
		       : gn_cuda_blas_fail(c, s, "cublasSgemm_64");
}

/*
 * Attention: scores = scale q k^T, the masked softmax along each row of
 * scores, out = probabilities v; batch dims broadcast among q, k, v (and
 * the mask). The scores live in scratch memory, a chunk of batches at a
 * time so that long sequences do not need L * S floats for every batch
 * at once.
 */
static int run_sdpa(const struct cuda_call *c)
{
	const struct gn_tensor_meta *qm = c->im[0], *km = c->im[1],
				    *vm = c->im[2];
	const struct gn_tensor_meta *mm = c->nin == 4 ? c->im[3] : NULL;
	int64_t L = qm->shape[qm->ndim - 2], E = qm->shape[qm->ndim - 1];
	int64_t S = km->shape[km->ndim - 2], Ev = vm->shape[vm->ndim - 1];
	struct gn_tensor_meta ob = *c->om, qb = *qm, kb = *km, vb = *vm;
	struct gn_cuda_attn_mask mask;
	struct gemm_desc g1, g2;
	uint64_t batches, chunk;
	size_t mat_bytes;
	float scale;
	void *scratch;
	int rc = 0;

	if (!gn_cuda_all_f32(c) &&
	    !(mm != NULL && mm->dtype == GN_DTYPE_BOOL &&
	      qm->dtype == GN_DTYPE_F32 && km->dtype == GN_DTYPE_F32 &&
	      vm->dtype == GN_DTYPE_F32 && c->om->dtype == GN_DTYPE_F32))
		return gn_cuda_unsupported(c, "sdpa runs on f32 (with a bool "
					      "or f32 mask)");
	/* Empty sums (E or S of 0) give NaN on the reference; leave them. */
	if (E == 0 || S == 0)
		return gn_cuda_unsupported(c,
					   "empty feature or key dims run on "
					   "the host");
	ob.ndim -= 2;
	qb.ndim -= 2;
	kb.ndim -= 2;
	vb.ndim -= 2;
	batches = gn_meta_numel(&ob);
	scale = c->a->f[0] > 0 ? c->a->f[0] : (float)(1.0 / sqrt((double)E));

	memset(&mask, 0, sizeof(mask));
	if (mm != NULL) {
		mask.mask = c->in[3];
		mask.is_bool = mm->dtype == GN_DTYPE_BOOL;
		mask.mix.ndim = ob.ndim + 2;
		memcpy(mask.mix.shape, ob.shape, sizeof(int64_t) * ob.ndim);
		mask.mix.shape[ob.ndim] = L;
		mask.mix.shape[ob.ndim + 1] = S;
		gn_cuda_bstrides(mm, mask.mix.ndim, mask.mix.stride);
	}

	/* scores^T (S x L per batch) = k (as T) x q^T, scaled. */
	memset(&g1, 0, sizeof(g1));
	g1.ta = CUBLAS_OP_T;
	g1.tb = CUBLAS_OP_N;
	g1.m = S;
	g1.n = L;
	g1.k = E;
	g1.alpha = scale;
	g1.a = (struct gemm_operand){
		.p = c->in[1], .ld = E, .mat = S * E, .bm = &kb};
	g1.b = (struct gemm_operand){
		.p = c->in[0], .ld = E, .mat = L * E, .bm = &qb};
	g1.ldc = S;
	g1.c_mat = L * S;
	g1.ob = &ob;
	operand_prepare(&g1.a, &ob, batches);
	operand_prepare(&g1.b, &ob, batches);
	/* out^T (Ev x L per batch) = v^T x p^T. */
	memset(&g2, 0, sizeof(g2));
	g2.ta = g2.tb = CUBLAS_OP_N;
	g2.m = Ev;
	g2.n = L;
	g2.k = S;
	g2.alpha = 1.0f;
	g2.a = (struct gemm_operand){
		.p = c->in[2], .ld = Ev, .mat = S * Ev, .bm = &vb};
	g2.b = (struct gemm_operand){.ld = S, .mat = L * S, .bm = NULL};
	g2.ldc = Ev;
	g2.c_mat = L * Ev;
	g2.ob = &ob;
	operand_prepare(&g2.a, &ob, batches);
	operand_prepare(&g2.b, &ob, batches);

	mat_bytes = (size_t)L * (size_t)S * sizeof(float);
	chunk = SDPA_SCRATCH_CAP / mat_bytes;
	chunk = chunk < 1 ? 1 : chunk > batches ? batches : chunk;

	pthread_mutex_lock(&c->ctx->work_lock);
	rc = gn_cuda_scratch(c, chunk * mat_bytes, &scratch);
	for (uint64_t t0 = 0; rc == 0 && t0 < batches; t0 += chunk) {
		uint64_t nb = batches - t0 < chunk ? batches - t0 : chunk;
		cudaError_t e;

		g1.c = scratch;
		rc = gemm_run(c, &g1, t0, nb);
		if (rc != 0)
			break;
		e = gn_cuda_attn_softmax(scratch, nb * (uint64_t)L,
					 t0 * (uint64_t)L, (uint64_t)L,
					 (uint64_t)S, (int)c->a->i[0], &mask,
					 c->ctx->stream);
		if (e != cudaSuccess) {
			rc = gn_cuda_call_fail(c, e, "softmax kernel launch");
			break;
		}
		g2.b.p = scratch;
		g2.c = (float *)c->out + t0 * (uint64_t)(L * Ev);
		rc = gemm_run(c, &g2, t0, nb);
	}
	pthread_mutex_unlock(&c->ctx->work_lock);
	return rc;
}

int gn_cuda_run_linalg(const struct cuda_call *c)
{
	switch (c->op) {
	case GN_OP_MATMUL:
		if (!gn_cuda_all_f32(c) || c->nin != 2)
			return gn_cuda_unsupported(c, "matmul runs on f32");
		return run_matmul(c);
	case GN_OP_LINEAR:
		if (!gn_cuda_all_f32(c))
			return gn_cuda_unsupported(c, "linear runs on f32");
		return run_linear(c);
	case GN_OP_SDPA: return run_sdpa(c);
	default: return gn_cuda_unsupported(c, "not a matrix product");
	}
}
