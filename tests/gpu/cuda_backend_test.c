/*
 * The cuda backend on a real GPU: opens it through the registry, runs
 * matmul, add and relu on device buffers and checks every element against
 * plain C loops on the host, computed in double; checks transfers, what
 * the backend refuses, and allocation failure. cuda_ops_test.c compares
 * every other op with the cpu backend.
 *
 * Without a visible GPU the backend's init says -ENODEV; the test then
 * prints why and exits 77, which meson reports as SKIP. Everything else
 * that goes wrong prints what was expected and what was seen, and the
 * test exits 1.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "gn_error.h"

#define SKIP_CODE 77

/* f32 results may differ from the double reference by this, relatively. */
#define REL_TOL 1e-5

/* Larger than both staging chunks together, and not a multiple of one. */
#define BIG_N ((uint64_t)3000001)

static const struct gn_backend_ops *g_ops;
static void *g_ctx;
static int g_failures;
static uint32_t g_seed = 12345;

static void die(const char *what, int rc)
{
	fprintf(stderr, "FAIL: %s: %s (%d): %s\n", what, gn_strerror(rc), rc,
		gn_last_error());
	exit(1);
}

static struct gn_tensor_meta meta(int ndim, const int64_t *shape)
{
	struct gn_tensor_meta m = {.dtype = GN_DTYPE_F32, .ndim = ndim};

	for (int d = 0; d < ndim; d++)
		m.shape[d] = shape[d];
	return m;
}

/* Uniform in [-1, 1), from xorshift32 so every run sees the same data. */
static float *random_floats(uint64_t n)
{
	float *p = malloc((n ? n : 1) * sizeof(float));

	if (p == NULL)
		die("malloc", -ENOMEM);
	for (uint64_t i = 0; i < n; i++) {
		g_seed ^= g_seed << 13;
		g_seed ^= g_seed >> 17;
		g_seed ^= g_seed << 5;
		p[i] = (float)((double)g_seed / 2147483648.0 - 1.0);
	}
	return p;
}

static void *to_device(const float *h, uint64_t n)
{
	void *d = g_ops->alloc(g_ctx, n ? n * sizeof(float) : 1);
	int rc;

	if (d == NULL)
		die("alloc", gn_last_error_code());
	rc = g_ops->upload(g_ctx, d, h, n * sizeof(float));
	if (rc != 0)
		die("upload", rc);
	return d;
}

static float *to_host(const void *d, uint64_t n)
{
	float *h = malloc((n ? n : 1) * sizeof(float));
	int rc;

	if (h == NULL)
		die("malloc", -ENOMEM);
	rc = g_ops->download(g_ctx, h, d, n * sizeof(float));
	if (rc != 0)
		die("download", rc);
	return h;
}

/*
 * Offset in operand `m` of the element that output index `oidx` (over
 * `ond` dims) reads, taking only m's first `mdims` dims and numpy's
 * broadcasting: dims align at the right, a dim of 1 always reads index 0.
 */
static uint64_t bcast_offset(const struct gn_tensor_meta *m, int mdims,
			     const int64_t *oidx, int ond)
{
	uint64_t off = 0;

	for (int k = 0; k < mdims; k++) {
		int d = ond - mdims + k;
		int64_t i = m->shape[k] == 1 ? 0 : oidx[d];

		off = off * (uint64_t)m->shape[k] + (uint64_t)i;
	}
	return off;
}

/* Advance a row-major multi-index over `shape`. */
static void index_next(int64_t *idx, const int64_t *shape, int nd)
{
	for (int d = nd - 1; d >= 0; d--) {
		if (++idx[d] < shape[d])
			return;
		idx[d] = 0;
	}
}

/*
 * Compare n results with the reference. An element passes when it is
 * within REL_TOL of the reference relative to `scale` (the sum of the
 * magnitudes of the terms that produced it), or of the reference itself
 * when no scale is given.
 */
static void compare(const char *name, const float *got, const double *want,
		    const double *scale, uint64_t n)
{
	uint64_t bad = 0;
	double worst = 0;

	for (uint64_t i = 0; i < n; i++) {
		double s = scale ? scale[i] : fabs(want[i]);
		double err = fabs((double)got[i] - want[i]);
		double rel = s > 0 ? err / s : err;

		if (!(rel <= REL_TOL)) {
			if (bad < 5)
				fprintf(stderr,
					"FAIL: %s: element %llu is %.9g, "
					"expected %.9g (relative error "
					"%.3g, tolerance %g)\n",
					name, (unsigned long long)i,
					(double)got[i], want[i], rel, REL_TOL);
			bad++;
		}
		if (rel > worst)
			worst = rel;
	}
	if (bad) {
		fprintf(stderr, "FAIL: %s: %llu of %llu elements off\n", name,
			(unsigned long long)bad, (unsigned long long)n);
		g_failures++;
	} else {
		printf("ok   %s: %llu elements, worst relative error %.3g\n",
		       name, (unsigned long long)n, worst);
	}
}

static void print_tensor(const char *label, const float *v,
			 const struct gn_tensor_meta *m)
{
	char buf[96];
	uint64_t n = gn_meta_numel(m);

	printf("     %s %s = [", label, gn_meta_format(m, buf, sizeof(buf)));
	for (uint64_t i = 0; i < n; i++)
		printf("%s%.6g", i ? ", " : "", (double)v[i]);
	printf("]\n");
}

/* Infer the output as the plan decoder does, then run on the device. */
static void *run(enum gn_op op, const struct gn_tensor_meta *const *im,
		 const void *const *in, int nin, struct gn_tensor_meta *om)
{
	void *out;
	int rc;

	rc = gn_op_infer(op, im, nin, NULL, om);
	if (rc != 0)
		die("gn_op_infer", rc);
	out = g_ops->alloc(g_ctx, gn_meta_nbytes(om) ? gn_meta_nbytes(om) : 1);
	if (out == NULL)
		die("alloc", gn_last_error_code());
	rc = g_ops->run(g_ctx, op, NULL, im, in, nin, om, out);
	if (rc != 0)
		die(gn_op_name(op), rc);
	rc = g_ops->sync(g_ctx);
	if (rc != 0)
		die("sync", rc);
	return out;
}

static void check_matmul(int na, const int64_t *ash, int nb, const int64_t *bsh,
			 int show)
{
	struct gn_tensor_meta am = meta(na, ash), bm = meta(nb, bsh), om;
	const struct gn_tensor_meta *im[2] = {&am, &bm};
	float *a = random_floats(gn_meta_numel(&am));
	float *b = random_floats(gn_meta_numel(&bm));
	void *da = to_device(a, gn_meta_numel(&am));
	void *db = to_device(b, gn_meta_numel(&bm));
	const void *in[2] = {da, db};
	void *dout = run(GN_OP_MATMUL, im, in, 2, &om);
	uint64_t n = gn_meta_numel(&om);
	float *got = to_host(dout, n);
	double *want = calloc(n ? n : 1, sizeof(double));
	double *scale = calloc(n ? n : 1, sizeof(double));
	/* Promote 1-D operands to matrices, as numpy does. */
	int a1 = na == 1, b1 = nb == 1;
	int64_t m = a1 ? 1 : ash[na - 2], k = ash[na - 1];
	int64_t nn = b1 ? 1 : bsh[nb - 1];
	int bat = om.ndim - (a1 ? 0 : 1) - (b1 ? 0 : 1);
	int64_t idx[GN_MAX_DIMS] = {0};
	uint64_t batches = n / (uint64_t)(m * nn);
	char name[160], s1[64], s2[64], s3[64];

	if (want == NULL || scale == NULL)
		die("calloc", -ENOMEM);
	for (uint64_t t = 0; t < batches; t++) {
		uint64_t oa = bcast_offset(&am, a1 ? 0 : na - 2, idx, bat);
		uint64_t ob = bcast_offset(&bm, b1 ? 0 : nb - 2, idx, bat);
		const float *ap = a + oa * (uint64_t)(m * k);
		const float *bp = b + ob * (uint64_t)(k * nn);

		for (int64_t i = 0; i < m; i++)
			for (int64_t j = 0; j < nn; j++) {
				uint64_t o = t * (uint64_t)(m * nn) +
					     (uint64_t)(i * nn + j);
				double acc = 0, mag = 0;

				for (int64_t p = 0; p < k; p++) {
					double x = (double)ap[i * k + p] *
						   (double)bp[p * nn + j];

					acc += x;
					mag += fabs(x);
				}
				want[o] = acc;
				scale[o] = mag;
			}
		index_next(idx, om.shape, bat);
	}
	snprintf(name, sizeof(name), "matmul %s x %s -> %s",
		 gn_meta_format(&am, s1, sizeof(s1)),
		 gn_meta_format(&bm, s2, sizeof(s2)),
		 gn_meta_format(&om, s3, sizeof(s3)));
	compare(name, got, want, scale, n);
	if (show) {
		print_tensor("a", a, &am);
		print_tensor("b", b, &bm);
		print_tensor("a @ b", got, &om);
	}
	g_ops->free(g_ctx, da);
	g_ops->free(g_ctx, db);
	g_ops->free(g_ctx, dout);
	free(a);
	free(b);
	free(got);
	free(want);
	free(scale);
}

/* With K = 0 the product is all zeros, whatever the buffer held before. */
static void check_matmul_empty_k(void)
{
	int64_t ash[2] = {3, 0}, bsh[2] = {0, 4};
	struct gn_tensor_meta am = meta(2, ash), bm = meta(2, bsh), om;
	const struct gn_tensor_meta *im[2] = {&am, &bm};
	void *da = to_device(NULL, 0), *db = to_device(NULL, 0);
	const void *in[2] = {da, db};
	float junk[12];
	double want[12] = {0};
	void *dout;
	float *got;
	int rc;

	rc = gn_op_infer(GN_OP_MATMUL, im, 2, NULL, &om);
	if (rc != 0)
		die("gn_op_infer", rc);
	for (int i = 0; i < 12; i++)
		junk[i] = 42.0f;
	dout = to_device(junk, 12);
	rc = g_ops->run(g_ctx, GN_OP_MATMUL, NULL, im, in, 2, &om, dout);
	if (rc != 0)
		die("matmul with K = 0", rc);
	rc = g_ops->sync(g_ctx);
	if (rc != 0)
		die("sync", rc);
	got = to_host(dout, 12);
	compare("matmul f32[3,0] x f32[0,4] -> f32[3,4]", got, want, NULL, 12);
	g_ops->free(g_ctx, da);
	g_ops->free(g_ctx, db);
	g_ops->free(g_ctx, dout);
	free(got);
}

static void check_add(int na, const int64_t *ash, int nb, const int64_t *bsh,
		      int show)
{
	struct gn_tensor_meta am = meta(na, ash), bm = meta(nb, bsh), om;
	const struct gn_tensor_meta *im[2] = {&am, &bm};
	float *a = random_floats(gn_meta_numel(&am));
	float *b = random_floats(gn_meta_numel(&bm));
	void *da = to_device(a, gn_meta_numel(&am));
	void *db = to_device(b, gn_meta_numel(&bm));
	const void *in[2] = {da, db};
	void *dout = run(GN_OP_ADD, im, in, 2, &om);
	uint64_t n = gn_meta_numel(&om);
	float *got = to_host(dout, n);
	double *want = malloc((n ? n : 1) * sizeof(double));
	int64_t idx[GN_MAX_DIMS] = {0};
	char name[160], s1[64], s2[64], s3[64];

	if (want == NULL)
		die("malloc", -ENOMEM);
	for (uint64_t i = 0; i < n; i++) {
		want[i] = (double)a[bcast_offset(&am, na, idx, om.ndim)] +
			  (double)b[bcast_offset(&bm, nb, idx, om.ndim)];
		index_next(idx, om.shape, om.ndim);
	}
	snprintf(name, sizeof(name), "add %s + %s -> %s",
		 gn_meta_format(&am, s1, sizeof(s1)),
		 gn_meta_format(&bm, s2, sizeof(s2)),
		 gn_meta_format(&om, s3, sizeof(s3)));
	compare(name, got, want, NULL, n);
	if (show) {
		print_tensor("a", a, &am);
		print_tensor("b", b, &bm);
		print_tensor("a + b", got, &om);
	}
	g_ops->free(g_ctx, da);
	g_ops->free(g_ctx, db);
	g_ops->free(g_ctx, dout);
	free(a);
	free(b);
	free(got);
	free(want);
}

static void check_relu(int nd, const int64_t *sh, int show)
{
	struct gn_tensor_meta xm = meta(nd, sh), om;
	const struct gn_tensor_meta *im[1] = {&xm};
	uint64_t n = gn_meta_numel(&xm);
	float *x = random_floats(n);
	void *dx = to_device(x, n);
	const void *in[1] = {dx};
	void *dout = run(GN_OP_RELU, im, in, 1, &om);
	float *got = to_host(dout, n);
	double *want = malloc((n ? n : 1) * sizeof(double));
	char name[96], s1[64];

	if (want == NULL)
		die("malloc", -ENOMEM);
	for (uint64_t i = 0; i < n; i++)
		want[i] = x[i] > 0 ? x[i] : 0;
	snprintf(name, sizeof(name), "relu %s",
		 gn_meta_format(&xm, s1, sizeof(s1)));
	compare(name, got, want, NULL, n);
	if (show) {
		print_tensor("x", x, &xm);
		print_tensor("relu(x)", got, &om);
	}
	g_ops->free(g_ctx, dx);
	g_ops->free(g_ctx, dout);
	free(x);
	free(got);
	free(want);
}

/* Bytes survive a round trip that spans several staging chunks. */
static void check_round_trip(void)
{
	float *h = random_floats(BIG_N);
	void *d = to_device(h, BIG_N);
	float *back = to_host(d, BIG_N);

	if (memcmp(h, back, BIG_N * sizeof(float)) != 0) {
		fprintf(stderr,
			"FAIL: upload + download of %llu bytes did not "
			"return the same bytes\n",
			(unsigned long long)(BIG_N * sizeof(float)));
		g_failures++;
	} else {
		printf("ok   upload + download of %llu bytes\n",
		       (unsigned long long)(BIG_N * sizeof(float)));
	}
	g_ops->free(g_ctx, d);
	free(h);
	free(back);
}

/* The error must be -EOPNOTSUPP and its detail name op and dtype. */
static void check_unsupported(enum gn_op op, enum gn_dtype dt)
{
	int64_t sh[1] = {4};
	struct gn_tensor_meta m = meta(1, sh);
	const struct gn_tensor_meta *im[2] = {&m, &m};
	void *d = g_ops->alloc(g_ctx, 64);
	const void *in[2] = {d, d};
	void *out = g_ops->alloc(g_ctx, 64);
	int rc;

	if (d == NULL || out == NULL)
		die("alloc", gn_last_error_code());
	m.dtype = dt;
	rc = g_ops->run(g_ctx, op, NULL, im, in, op == GN_OP_RELU ? 1 : 2, &m,
			out);
	if (rc != -EOPNOTSUPP ||
	    strstr(gn_last_error(), gn_op_name(op)) == NULL ||
	    strstr(gn_last_error(), gn_dtype_name(dt)) == NULL) {
		fprintf(stderr,
			"FAIL: %s on %s: expected -EOPNOTSUPP naming both, "
			"got %d: %s\n",
			gn_op_name(op), gn_dtype_name(dt), rc, gn_last_error());
		g_failures++;
	} else {
		printf("ok   %s on %s refused: %s\n", gn_op_name(op),
		       gn_dtype_name(dt), gn_last_error());
	}
	g_ops->free(g_ctx, d);
	g_ops->free(g_ctx, out);
}

/* More than any GPU holds: NULL with -ENOMEM naming the size. */
static void check_alloc_failure(void)
{
	size_t huge = (size_t)1 << 50;
	void *p = g_ops->alloc(g_ctx, huge);

	if (p != NULL || gn_last_error_code() != -ENOMEM ||
	    strstr(gn_last_error(), "1125899906842624") == NULL) {
		fprintf(stderr,
			"FAIL: alloc of %zu bytes: expected NULL with -ENOMEM "
			"naming the size, got %p, %d: %s\n",
			huge, p, gn_last_error_code(), gn_last_error());
		g_failures++;
		if (p != NULL)
			g_ops->free(g_ctx, p);
	} else {
		printf("ok   alloc of %zu bytes refused: %s\n", huge,
		       gn_last_error());
	}
}

int main(void)
{
	static const int64_t s37x53[] = {37, 53}, s53x29[] = {53, 29};
	static const int64_t s345[] = {3, 4, 5}, s56[] = {5, 6};
	static const int64_t s2145[] = {2, 1, 4, 5}, s1356[] = {1, 3, 5, 6};
	static const int64_t s2356[] = {2, 3, 5, 6}, s5[] = {5};
	static const int64_t s45[] = {4, 5}, s23[] = {2, 3}, s3[] = {3};
	static const int64_t s23a[] = {2, 3}, s34[] = {3, 4};
	static const int64_t s415[] = {4, 1, 5}, s31[] = {3, 1};
	static const int64_t s_big[] = {(int64_t)BIG_N};
	static const int64_t s_rows[] = {1000, 1001}, s_bias[] = {1001};
	int rc;

	g_ops = gn_backend_find("cuda");
	if (g_ops == NULL) {
		fprintf(stderr, "FAIL: backend \"cuda\" is not registered in "
				"this build\n");
		return 1;
	}
	rc = g_ops->init(&g_ctx);
	if (rc == -ENODEV) {
		/* The backend's detail usually says the same words first. */
		if (strncmp(gn_last_error(), "no CUDA device visible", 22) == 0)
			printf("SKIP: %s\n", gn_last_error());
		else
			printf("SKIP: no CUDA device visible (%s)\n",
			       gn_last_error());
		return SKIP_CODE;
	}
	if (rc != 0)
		die("cuda init", rc);
	printf("device: %s\n", g_ops->describe(g_ctx));

	check_matmul(2, s23a, 2, s34, 1);
	check_matmul(2, s37x53, 2, s53x29, 0);
	check_matmul(3, s345, 2, s56, 0);    /* b shared by every batch */
	check_matmul(2, s45, 4, s2356, 0);   /* a shared by every batch */
	check_matmul(4, s2145, 4, s1356, 0); /* batches broadcast both ways */
	check_matmul(1, s5, 2, s56, 0);	     /* 1-D on the left */
	check_matmul(2, s45, 1, s5, 0);	     /* 1-D on the right */
	check_matmul(1, s5, 1, s5, 0);	     /* dot product */
	check_matmul_empty_k();

	check_add(2, s23, 1, s3, 1);
	check_add(3, s415, 2, s31, 0);
	check_add(0, NULL, 2, s23, 0);
	check_add(2, s_rows, 1, s_bias, 0);
	check_add(1, s_big, 1, s_big, 0);

	check_relu(2, s23, 1);
	check_relu(1, s_big, 0);

	check_round_trip();
	/* Left to the host, which reports a zero divisor. */
	check_unsupported(GN_OP_DIV, GN_DTYPE_I32);
	check_unsupported(GN_OP_MATMUL, GN_DTYPE_F16);
	check_alloc_failure();

	g_ops->fini(g_ctx);
	if (g_failures) {
		printf("%d check(s) failed\n", g_failures);
		return 1;
	}
	printf("all checks passed\n");
	return 0;
}
