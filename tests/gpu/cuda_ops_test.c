/*
 * Every op the cuda backend has a kernel for, checked against the cpu
 * backend's plain C kernels (the reference implementation): the same
 * seeded random operands go to both, and the results must agree. One line
 * per case says how far apart they were.
 *
 * Agreement: float results within a tolerance relative to the largest
 * magnitude in the reference (1e-5 for most ops, 1e-4 for convolution and
 * the matrix products, whose sums cuBLAS and cuDNN order differently),
 * with NaN where the reference has NaN and equal infinities; cases marked
 * exact (casts, integer ops, indexing and shape ops) must agree bit for
 * bit; integer and bool results always must.
 *
 * Without a visible GPU the cuda backend's init says -ENODEV and the test
 * exits 77 (SKIP); without cuDNN, the conv2d cases say "skip" and the
 * rest still run. GENIE_GPU_TEST_BACKEND=cpu runs the same cases on the
 * cpu backend with oneDNN against the plain C kernels, which checks the
 * harness itself on a machine without a GPU.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backends/cpu/cpu_internal.h"
#include "gn_error.h"

#define SKIP_CODE 77
#define MAX_IN 5

/* Relative tolerances, of the largest reference magnitude. */
#define TOL 1e-5
#define TOL_MM 1e-4
#define EXACT 0.0

enum gen {
	G_UNIT,	   /* uniform in [-1, 1) */
	G_POS,	   /* uniform in [0.1, 2.1) */
	G_SPECIAL, /* G_UNIT with NaN, +inf and -inf sprinkled in */
	G_INT,	   /* integers in [lo, hi) */
	G_BOOL,	   /* 0 or 1 */
};

struct operand {
	enum gn_dtype dt;
	int ndim;
	int64_t shape[GN_MAX_DIMS];
	enum gen gen;
	int64_t lo, hi;
};

struct op_case {
	enum gn_op op;
	int nin;
	struct operand in[MAX_IN];
	int ni, nf;
	int64_t i[16];
	float f[4];
	double tol;
};

static const struct gn_backend_ops *g_dev, *g_ref;
static void *g_dev_ctx, *g_ref_ctx;
static int g_failures, g_cases, g_skipped;
static uint32_t g_seed = 2024;

static void die(const char *what, int rc)
{
	fprintf(stderr, "FAIL: %s: %s (%d): %s\n", what, gn_strerror(rc), rc,
		gn_last_error());
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);

	if (p == NULL)
		die("calloc", -ENOMEM);
	return p;
}

/* xorshift32 in [0, 1), so every run sees the same data. */
static double rnd(void)
{
	g_seed ^= g_seed << 13;
	g_seed ^= g_seed >> 17;
	g_seed ^= g_seed << 5;
	return (double)g_seed / 4294967296.0;
}

static struct gn_tensor_meta meta_of(const struct operand *o)
{
	struct gn_tensor_meta m = {.dtype = o->dt, .ndim = o->ndim};

	memcpy(m.shape, o->shape, sizeof(m.shape));
	return m;
}

static void fill(const struct operand *o, void *p, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		double v;

		switch (o->gen) {
		case G_POS: v = 0.1 + 2 * rnd(); break;
		case G_INT:
			v = (double)o->lo +
			    floor(rnd() * (double)(o->hi - o->lo));
			break;
		case G_BOOL: v = rnd() < 0.5; break;
		case G_SPECIAL:
			v = 2 * rnd() - 1;
			if (i % 11 == 3)
				v = NAN;
			else if (i % 13 == 7)
				v = INFINITY;
			else if (i % 17 == 5)
				v = -INFINITY;
			break;
		default: v = 2 * rnd() - 1; break;
		}
		gn_cpu_store(o->dt, p, i, v);
	}
}

static int is_float(enum gn_dtype d)
{
	return d == GN_DTYPE_F32 || d == GN_DTYPE_F16 || d == GN_DTYPE_BF16;
}

static const char *describe(enum gn_op op, const struct gn_tensor_meta *im,
			    int nin, const struct gn_tensor_meta *om, char *buf,
			    size_t len)
{
	char m[96];
	int n = snprintf(buf, len, "%s", gn_op_name(op));

	for (int k = 0; k < nin && n >= 0 && (size_t)n < len; k++)
		n += snprintf(buf + n, len - (size_t)n, "%s%s", k ? ", " : " ",
			      gn_meta_format(&im[k], m, sizeof(m)));
	if (n >= 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, " -> %s",
			 gn_meta_format(om, m, sizeof(m)));
	return buf;
}

/*
 * Compare n elements of dtype dt; returns the number that disagree and
 * prints the first few.
 */
static uint64_t compare(const char *name, enum gn_dtype dt, const void *got,
			const void *want, uint64_t n, double tol, double *worst,
			double *scale)
{
	size_t es = gn_dtype_size(dt);
	double mag = 0;
	uint64_t bad = 0;

	for (uint64_t i = 0; i < n; i++) {
		double w = gn_cpu_load(dt, want, i);

		if (isfinite(w) && fabs(w) > mag)
			mag = fabs(w);
	}
	*scale = mag;
	*worst = 0;
	for (uint64_t i = 0; i < n; i++) {
		double g = gn_cpu_load(dt, got, i),
		       w = gn_cpu_load(dt, want, i);
		int ok;

		if (!is_float(dt) || tol == EXACT) {
			ok = memcmp((const char *)got + i * es,
				    (const char *)want + i * es, es) == 0 ||
			     (isnan(g) && isnan(w));
		} else if (isnan(w) || isnan(g) || isinf(w) || isinf(g)) {
			ok = (isnan(w) && isnan(g)) || g == w;
		} else {
			double err = fabs(g - w);

			ok = err <= tol * (mag > 0 ? mag : 1);
			if (err > *worst)
				*worst = err;
		}
		if (!ok) {
			if (bad < 5)
				fprintf(stderr,
					"FAIL: %s: element %llu is %.9g, "
					"the cpu backend has %.9g\n",
					name, (unsigned long long)i, g, w);
			bad++;
		}
	}
	return bad;
}

static void *dev_copy(const void *h, size_t bytes)
{
	void *d = g_dev->alloc(g_dev_ctx, bytes ? bytes : 1);
	int rc;

	if (d == NULL)
		die("device alloc", gn_last_error_code());
	rc = g_dev->upload(g_dev_ctx, d, h, bytes);
	if (rc != 0)
		die("upload", rc);
	return d;
}

static void run_case(const struct op_case *t)
{
	struct gn_op_attrs attrs = {t->i, t->f, (uint32_t)t->ni,
				    (uint32_t)t->nf};
	struct gn_tensor_meta im[MAX_IN], om;
	const struct gn_tensor_meta *imp[MAX_IN];
	void *host[MAX_IN], *dev[MAX_IN], *ref, *got, *dout;
	uint64_t n, bad;
	double worst, scale;
	char name[512];
	int rc;

	for (int k = 0; k < t->nin; k++) {
		im[k] = meta_of(&t->in[k]);
		imp[k] = &im[k];
	}
	rc = gn_op_infer(t->op, imp, t->nin, &attrs, &om);
	if (rc != 0)
		die("gn_op_infer (a bad test case)", rc);
	describe(t->op, im, t->nin, &om, name, sizeof(name));
	for (int k = 0; k < t->nin; k++) {
		host[k] = xmalloc(gn_meta_nbytes(&im[k]));
		fill(&t->in[k], host[k], gn_meta_numel(&im[k]));
		dev[k] = dev_copy(host[k], gn_meta_nbytes(&im[k]));
	}
	n = gn_meta_numel(&om);
	ref = xmalloc(gn_meta_nbytes(&om));
	got = xmalloc(gn_meta_nbytes(&om));
	dout = g_dev->alloc(g_dev_ctx, gn_meta_nbytes(&om) ?: 1);
	if (dout == NULL)
		die("device alloc", gn_last_error_code());
	rc = g_ref->run(g_ref_ctx, t->op, &attrs, imp,
			(const void *const *)host, t->nin, &om, ref);
	if (rc != 0)
		die(name, rc);
	rc = g_dev->run(g_dev_ctx, t->op, &attrs, imp, (const void *const *)dev,
			t->nin, &om, dout);
	if (rc == 0)
		rc = g_dev->sync(g_dev_ctx);
	if (rc == 0)
		rc = g_dev->download(g_dev_ctx, got, dout, gn_meta_nbytes(&om));
	g_cases++;
	if (rc == -EOPNOTSUPP && strstr(gn_last_error(), "cuDNN") != NULL) {
		/* A build or machine without cuDNN: conv2d runs on the host. */
		printf("skip %s: %s\n", name, gn_last_error());
		g_skipped++;
	} else if (rc != 0) {
		fprintf(stderr, "FAIL: %s: %s (%d): %s\n", name,
			gn_strerror(rc), rc, gn_last_error());
		g_failures++;
	} else {
		bad = compare(name, om.dtype, got, ref, n, t->tol, &worst,
			      &scale);
		if (bad) {
			fprintf(stderr, "FAIL: %s: %llu of %llu elements off\n",
				name, (unsigned long long)bad,
				(unsigned long long)n);
			g_failures++;
		} else if (!is_float(om.dtype) || t->tol == EXACT) {
			printf("ok   %s: %llu elements, identical\n", name,
			       (unsigned long long)n);
		} else {
			printf("ok   %s: %llu elements, max error %.3g of "
			       "%.3g (tol %.0e)\n",
			       name, (unsigned long long)n, worst, scale,
			       t->tol);
		}
	}
	for (int k = 0; k < t->nin; k++) {
		g_dev->free(g_dev_ctx, dev[k]);
		free(host[k]);
	}
	g_dev->free(g_dev_ctx, dout);
	free(ref);
	free(got);
}

/* Shorthands for operands and cases (kept on one line each). */
/* clang-format off */
#define NDIMS(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
#define TYP(dt, g, ...) {dt, NDIMS(__VA_ARGS__), {__VA_ARGS__}, g, 0, 0}
#define F32(...) TYP(GN_DTYPE_F32, G_UNIT, __VA_ARGS__)
#define F32P(...) TYP(GN_DTYPE_F32, G_POS, __VA_ARGS__)
#define F32S(...) TYP(GN_DTYPE_F32, G_SPECIAL, __VA_ARGS__)
#define BOOL(...) TYP(GN_DTYPE_BOOL, G_BOOL, __VA_ARGS__)
#define INT(dt, lo, hi, ...) {dt, NDIMS(__VA_ARGS__), {__VA_ARGS__}, G_INT, lo, hi}
#define SCALAR_F32 {GN_DTYPE_F32, 0, {0}, G_UNIT, 0, 0}
#define IA(...) .ni = NDIMS(__VA_ARGS__), .i = {__VA_ARGS__}
#define FA(...) .nf = (int)(sizeof((float[]){__VA_ARGS__}) / sizeof(float)), .f = {__VA_ARGS__}
#define UN(o, x, t) {.op = o, .nin = 1, .in = {x}, .tol = t}
#define BIN(o, a, b, t) {.op = o, .nin = 2, .in = {a, b}, .tol = t}
/* clang-format on */

static const struct op_case g_elementwise[] = {
	UN(GN_OP_RELU, F32S(3, 5, 7), EXACT),
	UN(GN_OP_NEG, F32S(3, 5, 7), EXACT),
	UN(GN_OP_ABS, F32S(3, 5, 7), EXACT),
	UN(GN_OP_EXP, F32S(3, 5, 7), TOL),
	UN(GN_OP_LOG, F32P(3, 5, 7), TOL),
	UN(GN_OP_LOG, F32S(3, 5, 7), TOL), /* NaN for negatives */
	UN(GN_OP_SQRT, F32P(3, 5, 7), EXACT),
	UN(GN_OP_RSQRT, F32P(3, 5, 7), EXACT),
	UN(GN_OP_ERF, F32S(3, 5, 7), TOL),
	UN(GN_OP_TANH, F32S(3, 5, 7), TOL),
	UN(GN_OP_SIGMOID, F32S(3, 5, 7), TOL),
	UN(GN_OP_SILU, F32(3, 5, 7), TOL),
	UN(GN_OP_HARDSWISH, F32S(3, 5, 7), EXACT),
	{GN_OP_HARDSIGMOID,
	 1,
	 {F32S(3, 5, 7)},
	 FA(0.1666667f, 0.5f),
	 .tol = EXACT},
	{GN_OP_HARDSIGMOID, 1, {F32(64)}, FA(0.2f, 0.5f), .tol = EXACT},
	{GN_OP_GELU, 1, {F32(3, 5, 7)}, IA(0), .tol = TOL},
	{GN_OP_GELU, 1, {F32(3, 5, 7)}, IA(1), .tol = TOL},
	{GN_OP_GELU, 1, {F32(2049, 1025)}, IA(0), .tol = TOL},
	{GN_OP_CLIP, 1, {F32S(3, 5, 7)}, FA(-0.3f, 0.5f), .tol = EXACT},
	UN(GN_OP_EXP, TYP(GN_DTYPE_F16, G_UNIT, 4, 33), 1e-3),
	UN(GN_OP_SILU, TYP(GN_DTYPE_BF16, G_UNIT, 4, 33), 1e-2),
	UN(GN_OP_RELU, INT(GN_DTYPE_I32, -50, 50, 6, 7), EXACT),
	UN(GN_OP_NEG, INT(GN_DTYPE_I64, -1000, 1000, 6, 7), EXACT),
	UN(GN_OP_ABS, INT(GN_DTYPE_I8, -128, 128, 6, 7), EXACT),
	{GN_OP_CLIP,
	 1,
	 {INT(GN_DTYPE_I32, -9, 9, 6, 7)},
	 FA(-3.5f, 7.2f),
	 .tol = EXACT},
	{GN_OP_CAST, 1, {F32S(5, 9)}, IA(GN_DTYPE_I32), .tol = EXACT},
	{GN_OP_CAST, 1, {F32S(5, 9)}, IA(GN_DTYPE_F16), .tol = EXACT},
	{GN_OP_CAST, 1, {F32S(5, 9)}, IA(GN_DTYPE_BF16), .tol = EXACT},
	{GN_OP_CAST, 1, {F32S(5, 9)}, IA(GN_DTYPE_BOOL), .tol = EXACT},
	{GN_OP_CAST, 1, {F32S(5, 9)}, IA(GN_DTYPE_U8), .tol = EXACT},
	{GN_OP_CAST,
	 1,
	 {INT(GN_DTYPE_I64, -100000, 100000, 45)},
	 IA(GN_DTYPE_F32),
	 .tol = EXACT},
	{GN_OP_CAST,
	 1,
	 {INT(GN_DTYPE_I32, -1000, 1000, 45)},
	 IA(GN_DTYPE_I8),
	 .tol = EXACT},
	{GN_OP_CAST,
	 1,
	 {TYP(GN_DTYPE_F16, G_UNIT, 45)},
	 IA(GN_DTYPE_F32),
	 .tol = EXACT},
	{GN_OP_CAST, 1, {BOOL(45)}, IA(GN_DTYPE_F32), .tol = EXACT},
	{GN_OP_CAST, 1, {F32(45)}, IA(GN_DTYPE_F32), .tol = EXACT},

	BIN(GN_OP_ADD, F32(4, 1, 5), F32(3, 1), EXACT),
	BIN(GN_OP_SUB, F32(2, 3, 4), F32(4), EXACT),
	BIN(GN_OP_MUL, F32(1000, 1001), F32(1001), EXACT),
	BIN(GN_OP_DIV, F32(4, 1, 5), F32P(3, 1), EXACT),
	BIN(GN_OP_POW, F32P(3, 4), F32(4), TOL),
	BIN(GN_OP_MAXIMUM, F32S(6, 7), F32S(6, 7), EXACT),
	BIN(GN_OP_MINIMUM, F32S(6, 7), F32S(7), EXACT),
	BIN(GN_OP_ADD, SCALAR_F32, F32(2, 3), EXACT),
	BIN(GN_OP_EQ, INT(GN_DTYPE_F32, 0, 3, 2, 3, 4),
	    INT(GN_DTYPE_F32, 0, 3, 4), EXACT),
	BIN(GN_OP_NE, F32S(2, 3, 4), F32S(2, 3, 4), EXACT),
	BIN(GN_OP_LT, F32(2, 3, 4), F32(3, 1), EXACT),
	BIN(GN_OP_LE, INT(GN_DTYPE_I32, 0, 3, 2, 3, 4),
	    INT(GN_DTYPE_I32, 0, 3, 4), EXACT),
	BIN(GN_OP_GT, F32S(2, 3, 4), F32(4), EXACT),
	BIN(GN_OP_GE, INT(GN_DTYPE_I64, 0, 3, 5, 4),
	    INT(GN_DTYPE_I64, 0, 3, 5, 1), EXACT),
	BIN(GN_OP_EQ, BOOL(3, 4), BOOL(4), EXACT),
	BIN(GN_OP_ADD, INT(GN_DTYPE_I32, -100, 100, 3, 4),
	    INT(GN_DTYPE_I32, -100, 100, 4), EXACT),
	BIN(GN_OP_SUB, INT(GN_DTYPE_I64, -100, 100, 3, 4),
	    INT(GN_DTYPE_I64, -100, 100, 3, 1), EXACT),
	BIN(GN_OP_MUL, INT(GN_DTYPE_I8, -100, 100, 3, 4),
	    INT(GN_DTYPE_I8, -100, 100, 3, 4), EXACT), /* wraps */
	BIN(GN_OP_MAXIMUM, INT(GN_DTYPE_U8, 0, 255, 3, 4),
	    INT(GN_DTYPE_U8, 0, 255, 4), EXACT),
	BIN(GN_OP_ADD, TYP(GN_DTYPE_F16, G_UNIT, 3, 4),
	    TYP(GN_DTYPE_F16, G_UNIT, 4), EXACT),
	{GN_OP_WHERE,
	 3,
	 {BOOL(3, 1, 5), F32(4, 5), F32(3, 4, 1)},
	 .tol = EXACT},
	{GN_OP_WHERE,
	 3,
	 {BOOL(7), INT(GN_DTYPE_I64, -9, 9, 2, 7), INT(GN_DTYPE_I64, -9, 9, 1)},
	 .tol = EXACT},
};

static const struct op_case g_shape[] = {
	{GN_OP_RESHAPE, 1, {F32(2, 3, 4)}, IA(4, 6), .tol = EXACT},
	{GN_OP_PERMUTE, 1, {F32(2, 3, 4, 5)}, IA(0, 2, 3, 1), .tol = EXACT},
	{GN_OP_PERMUTE,
	 1,
	 {INT(GN_DTYPE_I64, -9, 9, 2, 3, 4, 5)},
	 IA(3, 2, 1, 0),
	 .tol = EXACT},
	{GN_OP_PERMUTE,
	 1,
	 {INT(GN_DTYPE_U8, 0, 200, 33, 65)},
	 IA(1, 0),
	 .tol = EXACT},
	{GN_OP_PERMUTE,
	 1,
	 {TYP(GN_DTYPE_F16, G_UNIT, 3, 8, 5)},
	 IA(0, 2, 1),
	 .tol = EXACT},
	{GN_OP_SLICE, 1, {F32(3, 8, 5)}, IA(1, 1, 7, 2), .tol = EXACT},
	{GN_OP_SLICE, 1, {F32(9, 4)}, IA(0, 2, 9, 1), .tol = EXACT},
	{GN_OP_EXPAND, 1, {F32(3, 1, 5)}, IA(2, 3, 4, 5), .tol = EXACT},
	{GN_OP_SQUEEZE, 1, {F32(3, 1, 5)}, IA(1), .tol = EXACT},
	{GN_OP_UNSQUEEZE, 1, {F32(3, 5)}, IA(1), .tol = EXACT},
	{GN_OP_CONCAT,
	 3,
	 {F32(2, 3, 4), F32(2, 1, 4), F32(2, 5, 4)},
	 IA(1),
	 .tol = EXACT},
	{GN_OP_CONCAT, 2, {F32(2, 3), F32(4, 3)}, IA(0), .tol = EXACT},
	{GN_OP_CONCAT,
	 2,
	 {INT(GN_DTYPE_I32, -9, 9, 3, 2), INT(GN_DTYPE_I32, -9, 9, 3, 5)},
	 IA(1),
	 .tol = EXACT},
};

/* conv2d attrs: stride h,w; pad t,l,b,r; dilation h,w; groups. */
static const struct op_case g_nn[] = {
	{GN_OP_CONV2D,
	 3,
	 {F32(2, 3, 8, 8), F32(4, 3, 3, 3), F32(4)},
	 IA(1, 1, 1, 1, 1, 1, 1, 1, 1),
	 .tol = TOL_MM},
	{GN_OP_CONV2D,
	 2,
	 {F32(1, 4, 11, 9), F32(6, 4, 3, 3)},
	 IA(2, 2, 2, 2, 2, 2, 2, 2, 1),
	 .tol = TOL_MM},
	{GN_OP_CONV2D,
	 3,
	 {F32(2, 4, 7, 7), F32(6, 2, 3, 3), F32(6)},
	 IA(1, 1, 1, 1, 1, 1, 1, 1, 2),
	 .tol = TOL_MM},
	{GN_OP_CONV2D,
	 3,
	 {F32(2, 8, 9, 9), F32(8, 1, 3, 3), F32(8)},
	 IA(2, 2, 1, 1, 1, 1, 1, 1, 8),
	 .tol = TOL_MM},
	{GN_OP_CONV2D,
	 3,
	 {F32(2, 3, 8, 7), F32(5, 3, 3, 2), F32(5)},
	 IA(1, 2, 0, 1, 2, 0, 1, 1, 1),
	 .tol = TOL_MM}, /* asymmetric */
	{GN_OP_CONV2D,
	 2,
	 {F32(1, 16, 5, 5), F32(8, 16, 1, 1)},
	 IA(1, 1, 0, 0, 0, 0, 1, 1, 1),
	 .tol = TOL_MM},
	{GN_OP_CONV2D,
	 3,
	 {F32(1, 3, 32, 32), F32(8, 3, 7, 7), F32(8)},
	 IA(2, 2, 3, 3, 3, 3, 1, 1, 1),
	 .tol = TOL_MM},
	/* pool attrs: kernel h,w; stride h,w; pad t,l,b,r; ceil; incl. */
	{GN_OP_MAXPOOL2D,
	 1,
	 {F32S(2, 3, 9, 9)},
	 IA(3, 3, 2, 2, 1, 1, 1, 1, 0),
	 .tol = EXACT},
	{GN_OP_MAXPOOL2D,
	 1,
	 {F32(1, 2, 8, 8)},
	 IA(3, 3, 2, 2, 0, 0, 0, 0, 1),
	 .tol = EXACT},
	{GN_OP_MAXPOOL2D,
	 1,
	 {F32(1, 2, 7, 6)},
	 IA(2, 2, 2, 1, 1, 0, 0, 1, 0),
	 .tol = EXACT},
	{GN_OP_AVGPOOL2D,
	 1,
	 {F32(2, 3, 9, 9)},
	 IA(3, 3, 2, 2, 1, 1, 1, 1, 0, 1),
	 .tol = EXACT},
	{GN_OP_AVGPOOL2D,
	 1,
	 {F32(2, 3, 8, 8)},
	 IA(3, 3, 2, 2, 1, 1, 1, 1, 1, 0),
	 .tol = EXACT},
	{GN_OP_AVGPOOL2D,
	 1,
	 {F32(1, 2, 8, 8)},
	 IA(3, 3, 2, 2, 1, 1, 1, 1, 1, 1),
	 .tol = EXACT},
	UN(GN_OP_GLOBAL_AVGPOOL, F32(2, 5, 7, 7), TOL),
	{GN_OP_BATCHNORM,
	 5,
	 {F32(2, 4, 5, 5), F32(4), F32P(4), F32(4), F32(4)},
	 FA(1e-5f),
	 .tol = TOL},
	{GN_OP_BATCHNORM,
	 5,
	 {F32(8, 4), F32(4), F32P(4), F32(4), F32(4)},
	 FA(1e-3f),
	 .tol = TOL},
	{GN_OP_LAYERNORM,
	 3,
	 {F32(4, 6, 32), F32(32), F32(32)},
	 IA(1),
	 FA(1e-5f),
	 .tol = TOL},
	{GN_OP_LAYERNORM,
	 3,
	 {F32(3, 4, 5), F32(4, 5), F32(4, 5)},
	 IA(2),
	 FA(1e-5f),
	 .tol = TOL},
	{GN_OP_LAYERNORM,
	 3,
	 {F32(2, 3000), F32(3000), F32(3000)},
	 IA(1),
	 FA(1e-6f),
	 .tol = TOL},
	{GN_OP_SOFTMAX, 1, {F32(4, 7, 33)}, IA(2), .tol = TOL},
	{GN_OP_SOFTMAX, 1, {F32(4, 7, 33)}, IA(1), .tol = TOL},
	{GN_OP_SOFTMAX, 1, {F32(4, 7, 33)}, IA(0), .tol = TOL},
	{GN_OP_SOFTMAX, 1, {F32(2, 5000)}, IA(1), .tol = TOL},
	{GN_OP_SOFTMAX, 1, {F32S(3, 40)}, IA(1), .tol = TOL},
	{GN_OP_LOG_SOFTMAX, 1, {F32(4, 7, 33)}, IA(2), .tol = TOL},
	{GN_OP_LOG_SOFTMAX, 1, {F32(4, 7, 33)}, IA(1), .tol = TOL},
};

static const struct op_case g_linalg[] = {
	BIN(GN_OP_MATMUL, F32(37, 53), F32(53, 29), TOL_MM),
	BIN(GN_OP_MATMUL, F32(3, 4, 5), F32(5, 6), TOL_MM),
	BIN(GN_OP_MATMUL, F32(2, 1, 4, 5), F32(1, 3, 5, 6), TOL_MM),
	BIN(GN_OP_MATMUL, F32(5), F32(2, 5, 6), TOL_MM),
	{GN_OP_LINEAR, 3, {F32(5, 7, 32), F32(16, 32), F32(16)}, .tol = TOL_MM},
	{GN_OP_LINEAR, 2, {F32(5, 32), F32(16, 32)}, .tol = TOL_MM},
	{GN_OP_LINEAR, 3, {F32(32), F32(10, 32), F32(10)}, .tol = TOL_MM},
	/* sdpa: i[0] causal, f[0] scale (0: 1/sqrt(E)). */
	{GN_OP_SDPA,
	 3,
	 {F32(2, 3, 5, 8), F32(2, 3, 7, 8), F32(2, 3, 7, 6)},
	 IA(0),
	 FA(0),
	 .tol = TOL_MM},
	{GN_OP_SDPA,
	 3,
	 {F32(2, 6, 16), F32(2, 6, 16), F32(2, 6, 16)},
	 IA(1),
	 FA(0),
	 .tol = TOL_MM},
	{GN_OP_SDPA,
	 3,
	 {F32(2, 3, 5, 8), F32(1, 3, 7, 8), F32(2, 1, 7, 6)},
	 IA(0),
	 FA(0.3f),
	 .tol = TOL_MM}, /* mixed batch broadcasting */
	{GN_OP_SDPA,
	 4,
	 {F32(2, 3, 5, 8), F32(2, 3, 7, 8), F32(2, 3, 7, 6), BOOL(5, 7)},
	 IA(0),
	 FA(0),
	 .tol = TOL_MM},
	{GN_OP_SDPA,
	 4,
	 {F32(2, 3, 5, 8), F32(2, 3, 7, 8), F32(2, 3, 7, 6), F32(2, 1, 5, 7)},
	 IA(1),
	 FA(0),
	 .tol = TOL_MM},
	{GN_OP_SDPA,
	 3,
	 {F32(1, 2, 300, 64), F32(1, 2, 300, 64), F32(1, 2, 300, 64)},
	 IA(1),
	 FA(0),
	 .tol = TOL_MM},
};

static const struct op_case g_reduce_index[] = {
	/* reduce: i[0] keepdim, i[1..] axes (none: all). */
	{GN_OP_REDUCE_SUM, 1, {F32(3, 4, 5)}, IA(0, 1), .tol = TOL},
	{GN_OP_REDUCE_MEAN, 1, {F32(3, 4, 5)}, IA(1, 0, 2), .tol = TOL},
	{GN_OP_REDUCE_MAX, 1, {F32(3, 4, 5)}, IA(0), .tol = EXACT},
	{GN_OP_REDUCE_MAX, 1, {F32S(6, 50)}, IA(0, 1), .tol = EXACT},
	{GN_OP_REDUCE_SUM, 1, {F32(3, 100000)}, IA(0, 1), .tol = TOL},
	{GN_OP_REDUCE_SUM, 1, {F32(4000, 3)}, IA(0, 1), .tol = TOL},
	{GN_OP_REDUCE_SUM,
	 1,
	 {INT(GN_DTYPE_I32, -50, 50, 3, 4, 5)},
	 IA(0, 1),
	 .tol = EXACT},
	{GN_OP_REDUCE_MAX,
	 1,
	 {INT(GN_DTYPE_I64, -50, 50, 3, 4, 5)},
	 IA(1, 0, 2),
	 .tol = EXACT},
	/* argmax: i[0] axis, i[1] keepdim. */
	{GN_OP_ARGMAX, 1, {F32(4, 7, 5)}, IA(1, 0), .tol = EXACT},
	{GN_OP_ARGMAX, 1, {F32(3, 5000)}, IA(1, 1), .tol = EXACT},
	{GN_OP_ARGMAX, 1, {F32S(3, 5000)}, IA(1, 0), .tol = EXACT},
	{GN_OP_ARGMAX,
	 1,
	 {INT(GN_DTYPE_I32, 0, 4, 6, 9)},
	 IA(1, 0),
	 .tol = EXACT}, /* ties: the first wins */
	{GN_OP_EMBEDDING,
	 2,
	 {F32(10, 6), INT(GN_DTYPE_I64, -10, 10, 3, 4)},
	 .tol = EXACT},
	{GN_OP_EMBEDDING,
	 2,
	 {INT(GN_DTYPE_I64, -99, 99, 10, 6), INT(GN_DTYPE_I32, 0, 10, 5)},
	 .tol = EXACT},
	{GN_OP_EMBEDDING_BAG,
	 2,
	 {F32(10, 6), INT(GN_DTYPE_I64, 0, 10, 4, 3)},
	 IA(0),
	 .tol = TOL},
	{GN_OP_EMBEDDING_BAG,
	 2,
	 {F32(10, 6), INT(GN_DTYPE_I32, 0, 10, 4, 3)},
	 IA(1),
	 .tol = TOL},
	{GN_OP_EMBEDDING_BAG,
	 2,
	 {F32(10, 6), INT(GN_DTYPE_I64, 0, 10, 4, 3)},
	 IA(2),
	 .tol = EXACT},
	{GN_OP_GATHER,
	 2,
	 {F32(3, 7, 4), INT(GN_DTYPE_I64, -7, 7, 2, 5)},
	 IA(1),
	 .tol = EXACT},
	{GN_OP_GATHER,
	 2,
	 {F32(7, 4), INT(GN_DTYPE_I32, 0, 7, 9)},
	 IA(0),
	 .tol = EXACT},
};

/* fill: f[0] value, i[0] dtype, i[1..] shape; arange: start, step, count. */
static const struct op_case g_source[] = {
	{GN_OP_FILL, 0, {{0}}, IA(GN_DTYPE_F32, 3, 4), FA(2.5f), .tol = EXACT},
	{GN_OP_FILL, 0, {{0}}, IA(GN_DTYPE_I32, 7), FA(-3.7f), .tol = EXACT},
	{GN_OP_ARANGE,
	 0,
	 {{0}},
	 IA(GN_DTYPE_F32, 17),
	 FA(-2.0f, 0.25f),
	 .tol = EXACT},
	{GN_OP_ARANGE,
	 0,
	 {{0}},
	 IA(GN_DTYPE_I64, 9),
	 FA(3.0f, 2.0f),
	 .tol = EXACT},
	{GN_OP_RAND_UNIFORM,
	 0,
	 {{0}},
	 IA(GN_DTYPE_F32, 42, 1000),
	 FA(-1.0f, 3.0f),
	 .tol = EXACT},
	{GN_OP_RAND_UNIFORM,
	 0,
	 {{0}},
	 IA(GN_DTYPE_BF16, 7, 5, 7),
	 FA(0.0f, 1.0f),
	 .tol = EXACT},
	{GN_OP_RAND_NORMAL,
	 0,
	 {{0}},
	 IA(GN_DTYPE_F32, 7, 1000),
	 FA(0.5f, 2.0f),
	 .tol = TOL},
};

#define RUN_ALL(tab)                                              \
	for (size_t k = 0; k < sizeof(tab) / sizeof(tab[0]); k++) \
	run_case(&tab[k])

/*
 * An index out of range fails the node with -EINVAL naming the op and the
 * index: at run on the cpu backend, at the next sync on the cuda backend.
 */
static void check_index_error(void)
{
	int64_t tsh[2] = {4, 3}, ish[1] = {3};
	struct gn_tensor_meta tm = {.dtype = GN_DTYPE_F32, .ndim = 2},
			      xm = {.dtype = GN_DTYPE_I64, .ndim = 1}, om;
	const struct gn_tensor_meta *im[2] = {&tm, &xm};
	float table[12] = {0};
	int64_t idx[3] = {1, 9, 2};
	void *dt, *di, *dout;
	const void *in[2];
	int rc;

	memcpy(tm.shape, tsh, sizeof(tsh));
	memcpy(xm.shape, ish, sizeof(ish));
	rc = gn_op_infer(GN_OP_EMBEDDING, im, 2, NULL, &om);
	if (rc != 0)
		die("gn_op_infer", rc);
	dt = dev_copy(table, sizeof(table));
	di = dev_copy(idx, sizeof(idx));
	dout = g_dev->alloc(g_dev_ctx, gn_meta_nbytes(&om));
	if (dout == NULL)
		die("device alloc", gn_last_error_code());
	in[0] = dt;
	in[1] = di;
	rc = g_dev->run(g_dev_ctx, GN_OP_EMBEDDING, NULL, im, in, 2, &om, dout);
	if (rc == 0)
		rc = g_dev->sync(g_dev_ctx);
	g_cases++;
	if (rc != -EINVAL || strstr(gn_last_error(), "embedding") == NULL ||
	    strstr(gn_last_error(), "index 9") == NULL) {
		fprintf(stderr,
			"FAIL: embedding with index 9 of 4 rows: expected "
			"-EINVAL naming op and index, got %d: %s\n",
			rc, gn_last_error());
		g_failures++;
	} else {
		printf("ok   embedding with index 9 of 4 rows refused: %s\n",
		       gn_last_error());
	}
	/* The error is reported once; the backend goes on working. */
	rc = g_dev->sync(g_dev_ctx);
	if (rc != 0) {
		fprintf(stderr, "FAIL: sync after an index error: %d: %s\n", rc,
			gn_last_error());
		g_failures++;
	}
	g_dev->free(g_dev_ctx, dt);
	g_dev->free(g_dev_ctx, di);
	g_dev->free(g_dev_ctx, dout);
}

int main(void)
{
	const char *name = getenv("GENIE_GPU_TEST_BACKEND");
	int rc;

	if (name == NULL || *name == '\0')
		name = "cuda";
	/* The reference: the cpu backend's plain C kernels, not oneDNN. */
	g_ref = gn_backend_find("cpu");
	g_dev = gn_backend_find(name);
	if (g_ref == NULL || g_dev == NULL) {
		fprintf(stderr,
			"FAIL: backend \"%s\" is not registered in "
			"this build\n",
			g_dev ? "cpu" : name);
		return 1;
	}
	rc = g_dev->init(&g_dev_ctx);
	if (rc == -ENODEV) {
		if (strncmp(gn_last_error(), "no CUDA device visible", 22) == 0)
			printf("SKIP: %s\n", gn_last_error());
		else
			printf("SKIP: no CUDA device visible (%s)\n",
			       gn_last_error());
		return SKIP_CODE;
	}
	if (rc != 0)
		die("device backend init", rc);
	setenv("GENIE_CPU_DNNL", "0", 1);
	rc = g_ref->init(&g_ref_ctx);
	if (rc != 0)
		die("cpu backend init", rc);
	printf("device: %s\nreference: %s\n", g_dev->describe(g_dev_ctx),
	       g_ref->describe(g_ref_ctx));

	RUN_ALL(g_elementwise);
	RUN_ALL(g_shape);
	RUN_ALL(g_nn);
	RUN_ALL(g_linalg);
	RUN_ALL(g_reduce_index);
	RUN_ALL(g_source);
	check_index_error();

	g_ref->fini(g_ref_ctx);
	g_dev->fini(g_dev_ctx);
	if (g_failures) {
		printf("%d of %d case(s) failed\n", g_failures, g_cases);
		return 1;
	}
	printf("all %d cases agree with the cpu backend", g_cases - g_skipped);
	if (g_skipped)
		printf(" (%d skipped: no cuDNN)", g_skipped);
	printf("\n");
	return 0;
}
