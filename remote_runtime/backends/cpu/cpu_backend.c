/*
 * The first CPU backend: plain C kernels for the skeleton's ops. The
 * oneDNN backend replaces the heavy kernels; this one stays as the
 * reference every other backend is checked against.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "gn_error.h"

static int cpu_init(void **ctx)
{
	*ctx = NULL;
	return 0;
}

static void cpu_fini(void *ctx)
{
	(void)ctx;
}

static const char *cpu_describe(void *ctx)
{
	(void)ctx;
	return "host memory, plain C kernels";
}

static void *cpu_alloc(void *ctx, size_t size)
{
	/* 64-byte alignment suits every vector width the compiler may use. */
	void *p = aligned_alloc(64, (size + 63) & ~(size_t)63);

	(void)ctx;
	if (p == NULL)
		gn_error_set(-ENOMEM, "cpu: cannot allocate %zu bytes", size);
	return p;
}

static void cpu_free(void *ctx, void *ptr)
{
	(void)ctx;
	free(ptr);
}

static int cpu_copy(void *ctx, void *dst, const void *src, size_t size)
{
	(void)ctx;
	memcpy(dst, src, size);
	return 0;
}

static int cpu_sync(void *ctx)
{
	(void)ctx;
	return 0;
}

/* C[M,N] = A[M,K] B[K,N], row-major; i-k-j order streams B and C rows. */
static void matmul_f32(const float *restrict a, const float *restrict b,
		       float *restrict c, int64_t m, int64_t k, int64_t n)
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

/*
 * Strides of `m` seen through the output's `nd` dims: 0 where `m` is
 * broadcast (missing or size 1), so one index walk serves both operands.
 */
static void broadcast_strides(const struct gn_tensor_meta *m, int nd,
			      int64_t *st)
{
	int64_t s = 1;

	for (int i = nd - 1; i >= 0; i--) {
		int im = m->ndim - nd + i;

		if (im < 0 || m->shape[im] == 1) {
			st[i] = 0;
		} else {
			st[i] = s;
			s *= m->shape[im];
		}
	}
}

static void add_f32(const struct gn_tensor_meta *am, const float *a,
		    const struct gn_tensor_meta *bm, const float *b,
		    const struct gn_tensor_meta *om, float *out)
{
	uint64_t total = gn_meta_numel(om);
	int64_t sa[GN_MAX_DIMS], sb[GN_MAX_DIMS], idx[GN_MAX_DIMS] = {0};
	int nd = om->ndim;
	int64_t inner;

	if (gn_meta_equal(am, bm)) {
		for (uint64_t i = 0; i < total; i++)
			out[i] = a[i] + b[i];
		return;
	}
	if (total == 0)
		return;
	broadcast_strides(am, nd, sa);
	broadcast_strides(bm, nd, sb);
	/* Walk rows of the last dim; an odometer carries the outer index. */
	inner = nd ? om->shape[nd - 1] : 1;
	for (uint64_t row = 0; row < total / (uint64_t)inner; row++) {
		int64_t oa = 0, ob = 0;
		int64_t ia = nd ? sa[nd - 1] : 0, ib = nd ? sb[nd - 1] : 0;

		for (int d = 0; d < nd - 1; d++) {
			oa += idx[d] * sa[d];
			ob += idx[d] * sb[d];
		}
		for (int64_t j = 0; j < inner; j++)
			out[row * (uint64_t)inner + (uint64_t)j] =
				a[oa + j * ia] + b[ob + j * ib];
		for (int d = nd - 2; d >= 0; d--) {
			if (++idx[d] < om->shape[d])
				break;
			idx[d] = 0;
		}
	}
}

static int cpu_run(void *ctx, enum gn_op op, const struct gn_op_attrs *attrs,
		   const struct gn_tensor_meta *const *im,
		   const void *const *in, int nin,
		   const struct gn_tensor_meta *om, void *out)
{
	uint64_t n = gn_meta_numel(om);

	(void)ctx;
	(void)nin;
	(void)attrs;
	if (om->dtype != GN_DTYPE_F32)
		return gn_error_set(-EOPNOTSUPP, "cpu: %s on %s not supported",
				    gn_op_name(op), gn_dtype_name(om->dtype));
	switch (op) {
	case GN_OP_MATMUL:
		if (im[0]->ndim != 2 || im[1]->ndim != 2)
			return gn_error_set(-EOPNOTSUPP,
					    "cpu: matmul on %d-D x %d-D not "
					    "supported yet (2-D only)",
					    im[0]->ndim, im[1]->ndim);
		matmul_f32(in[0], in[1], out, im[0]->shape[0], im[0]->shape[1],
			   im[1]->shape[1]);
		return 0;
	case GN_OP_ADD: add_f32(im[0], in[0], im[1], in[1], om, out); return 0;
	case GN_OP_RELU: {
		const float *x = in[0];
		float *y = out;

		for (uint64_t i = 0; i < n; i++)
			y[i] = x[i] > 0.0f ? x[i] : 0.0f;
		return 0;
	}
	default:
		return gn_error_set(-EOPNOTSUPP, "cpu: op %s not supported",
				    gn_op_name(op));
	}
}

static const struct gn_backend_ops cpu_backend_ops = {
	.name = "cpu",
	.init = cpu_init,
	.fini = cpu_fini,
	.describe = cpu_describe,
	.alloc = cpu_alloc,
	.free = cpu_free,
	.upload = cpu_copy,
	.download = cpu_copy,
	.run = cpu_run,
	.sync = cpu_sync,
};

GN_BACKEND_REGISTER(cpu_backend_ops)
