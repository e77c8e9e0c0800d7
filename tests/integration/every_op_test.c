/*
 * Every op through libgenie on the local target, against PyTorch.
 *
 * tests/models/every_op.py writes inputs and PyTorch's results; this test
 * records the same ops through the public API (genie/ops.h), materializes
 * each result, and checks it within 1e-5 (absolute + relative) of PyTorch.
 *
 *   every_op_test REFERENCE_FILE [TARGET]   (TARGET defaults to "local")
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <genie/genie.h>

struct rec {
	char name[64];
	enum gn_dtype dtype;
	int ndim;
	int64_t shape[GN_MAX_DIMS];
	void *data;
	size_t bytes;
};

static struct rec g_recs[256];
static int g_nrecs, g_failed, g_passed;
static struct gn_session *g_s;

static int load(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint32_t len, dt, nd;

	if (f == NULL) {
		perror(path);
		return -1;
	}
	while (fread(&len, 4, 1, f) == 1 && g_nrecs < 256) {
		struct rec *r = &g_recs[g_nrecs++];
		int64_t n = 1;

		if (len >= sizeof(r->name) ||
		    fread(r->name, 1, len, f) != len ||
		    fread(&dt, 4, 1, f) != 1 || fread(&nd, 4, 1, f) != 1 ||
		    nd > GN_MAX_DIMS || fread(r->shape, 8, nd, f) != nd)
			goto bad;
		r->name[len] = '\0';
		r->dtype = (enum gn_dtype)dt;
		r->ndim = (int)nd;
		for (uint32_t i = 0; i < nd; i++)
			n *= r->shape[i];
		r->bytes = (size_t)n * gn_dtype_size(r->dtype);
		r->data = malloc(r->bytes + 1);
		if (r->data == NULL ||
		    fread(r->data, 1, r->bytes, f) != r->bytes)
			goto bad;
	}
	fclose(f);
	return 0;
bad:
	fprintf(stderr, "%s: malformed record %d\n", path, g_nrecs);
	fclose(f);
	return -1;
}

static struct rec *find(const char *name)
{
	for (int i = 0; i < g_nrecs; i++)
		if (strcmp(g_recs[i].name, name) == 0)
			return &g_recs[i];
	fprintf(stderr, "reference file lacks '%s'\n", name);
	exit(1);
}

/* An input tensor from the reference file, borrowed. */
static struct gn_tensor *in(const char *name)
{
	struct rec *r = find(name);

	return gn_tensor_from_host(g_s, r->dtype, r->ndim, r->shape, r->data,
				   GN_TENSOR_BORROW);
}

/* Materialize `t` and compare it with PyTorch's `name`. */
static void check(const char *name, struct gn_tensor *t)
{
	struct rec *r = find(name);
	int64_t shape[GN_MAX_DIMS];
	double worst = 0;
	void *got;
	int nd, rc;

	if (t == NULL) {
		printf("FAIL %-18s recording failed: %s\n", name,
		       gn_last_error());
		g_failed++;
		return;
	}
	nd = gn_tensor_shape(t, shape);
	if (nd != r->ndim || memcmp(shape, r->shape, sizeof(int64_t) * nd) ||
	    gn_tensor_dtype(t) != r->dtype) {
		printf("FAIL %-18s shape/dtype differs from PyTorch's\n", name);
		g_failed++;
		return;
	}
	got = malloc(r->bytes + 1);
	rc = gn_tensor_to_host(t, got, r->bytes);
	if (rc != 0) {
		printf("FAIL %-18s materialize: %s\n", name, gn_last_error());
		g_failed++;
		free(got);
		return;
	}
	for (size_t i = 0; i < r->bytes / gn_dtype_size(r->dtype); i++) {
		double a, b;

		if (r->dtype == GN_DTYPE_F32) {
			a = ((float *)got)[i];
			b = ((float *)r->data)[i];
		} else if (r->dtype == GN_DTYPE_I64) {
			a = (double)((int64_t *)got)[i];
			b = (double)((int64_t *)r->data)[i];
		} else {
			a = ((uint8_t *)got)[i];
			b = ((uint8_t *)r->data)[i];
		}
		double e = fabs(a - b) / (1.0 + fabs(b));
		if (!(e <= worst))
			worst = isnan(e) ? INFINITY : e;
	}
	free(got);
	if (worst > 1e-5) {
		printf("FAIL %-18s max error %.3g > 1e-5\n", name, worst);
		g_failed++;
	} else {
		printf("ok   %-18s max error %.3g\n", name, worst);
		g_passed++;
	}
}

int main(int argc, char **argv)
{
	struct gn_session_opts o;

	if (argc != 2 && argc != 3) {
		fprintf(stderr, "usage: %s REFERENCE_FILE [TARGET]\n", argv[0]);
		return 2;
	}
	if (load(argv[1]) != 0)
		return 1;
	gn_session_opts_init(&o, sizeof(o));
	o.target = argc == 3 ? argv[2] : "local";
	g_s = gn_session_create(&o);
	if (g_s == NULL) {
		fprintf(stderr, "session: %s\n", gn_last_error());
		return 1;
	}

	struct gn_tensor *x = in("in_x"), *a = in("in_a"), *b = in("in_b");
	struct gn_conv2d_params cp = {.stride = {1, 1},
				      .padding = {1, 1, 1, 1}};
	struct gn_tensor *conv = gn_conv2d(x, in("in_wc"), in("in_bc"), &cp);
	check("conv", conv);
	struct gn_conv2d_params gp = {.stride = {2, 2},
				      .padding = {1, 1, 1, 1},
				      .dilation = {2, 2},
				      .groups = 2};
	check("conv_grouped", gn_conv2d(in("in_xg"), in("in_wg"), NULL, &gp));
	struct gn_tensor *bn =
		gn_batchnorm(conv, in("in_mean"), in("in_var"), in("in_gamma"),
			     in("in_beta"), 1e-5f);
	check("batchnorm", bn);
	struct gn_pool2d_params mp = {
		.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1, 1, 1}};
	check("maxpool", gn_maxpool2d(bn, &mp));
	struct gn_pool2d_params ap = mp;
	ap.ceil_mode = 1;
	check("avgpool", gn_avgpool2d(bn, &ap));
	struct gn_pool2d_params ap2 = {.kernel = {2, 2},
				       .count_include_pad = 1};
	check("avgpool_incl", gn_avgpool2d(bn, &ap2));
	check("global_avgpool", gn_global_avgpool(bn));

	check("relu", gn_relu(a));
	check("gelu", gn_gelu(a, 0));
	check("gelu_tanh", gn_gelu(a, 1));
	check("silu", gn_silu(a));
	check("sigmoid", gn_sigmoid(a));
	check("tanh", gn_tanh(a));
	check("hardswish", gn_hardswish(a));
	check("hardsigmoid", gn_hardsigmoid(a, 1.0f / 6, 0.5f));
	check("neg", gn_neg(a));
	check("abs", gn_abs(a));
	check("exp", gn_exp(a));
	int64_t one[] = {1};
	struct gn_tensor *t1 = gn_ones(g_s, GN_DTYPE_F32, 1, one);
	check("log", gn_log(gn_add(gn_abs(a), t1)));
	check("sqrt", gn_sqrt(gn_abs(a)));
	check("rsqrt", gn_rsqrt(gn_add(gn_abs(a), t1)));
	check("erf", gn_erf(a));
	check("clip", gn_clip(a, -0.5f, 0.7f));
	check("add", gn_add(a, b));
	check("sub", gn_sub(a, b));
	check("mul", gn_mul(a, b));
	check("div", gn_div(a, gn_add(gn_abs(b), t1)));
	struct gn_tensor *half = gn_full(g_s, GN_DTYPE_F32, 0, NULL, 0.5);
	check("pow", gn_pow(gn_add(gn_abs(a), half), b));
	check("maximum", gn_maximum(a, b));
	check("minimum", gn_minimum(a, b));
	check("where_gt", gn_where(gn_gt(a, b), a, b));
	int64_t four[] = {4};
	check("eq_count",
	      gn_reduce_sum(
		      gn_cast(gn_eq(gn_add(gn_mul(a, gn_zeros(g_s, GN_DTYPE_F32,
							      0, NULL)),
					   t1),
				    gn_ones(g_s, GN_DTYPE_F32, 1, four)),
			      GN_DTYPE_F32),
		      0, NULL, 0));
	check("cast_f16", gn_cast(gn_cast(a, GN_DTYPE_F16), GN_DTYPE_F32));

	check("matmul", gn_matmul(in("in_m1"), in("in_m2")));
	check("matmul_vec", gn_matmul(in("in_m1"), in("in_v4")));
	check("linear", gn_linear(a, in("in_wl"), in("in_bl")));
	struct gn_tensor *s = in("in_s");
	check("layernorm",
	      gn_layernorm(s, in("in_ln_g"), in("in_ln_b"), 1, 1e-5f));
	check("softmax", gn_softmax(s, 1));
	check("log_softmax", gn_log_softmax(s, -1));
	struct gn_tensor *q = in("in_q"), *k = in("in_k"), *v = in("in_v");
	check("sdpa_causal", gn_sdpa(q, k, v, NULL, 1, 0));
	check("sdpa_mask", gn_sdpa(q, k, v, in("in_mask"), 0, 0));

	int ax02[] = {0, 2}, ax1[] = {1}, axl[] = {-1};
	check("reduce_sum", gn_reduce_sum(a, 2, ax02, 0));
	check("reduce_mean", gn_reduce_mean(a, 1, ax1, 1));
	check("reduce_max", gn_reduce_max(a, 1, axl, 0));
	check("argmax", gn_argmax(a, 2, 0));
	struct gn_tensor *idx = in("in_idx");
	check("embedding", gn_embedding(in("in_table"), idx));
	check("embedding_bag",
	      gn_embedding_bag(in("in_table"), idx, GN_BAG_MEAN));
	check("gather", gn_gather(a, in("in_gidx"), 1));

	int64_t rs[] = {4, -1}, ex[] = {3, 4};
	int perm[] = {2, 0, 1};
	check("reshape", gn_reshape(a, 2, rs));
	check("permute", gn_permute(a, 3, perm));
	check("transpose", gn_transpose(a, 0, 2));
	check("slice",
	      gn_slice(gn_slice(a, 1, 1, INT64_MAX, 1), 2, 0, INT64_MAX, 2));
	check("expand", gn_expand(b, 2, ex));
	check("squeeze_unsqueeze", gn_squeeze(gn_unsqueeze(a, 1), 1, ax1));
	struct gn_tensor *two = gn_full(g_s, GN_DTYPE_F32, 0, NULL, 2.0);
	struct gn_tensor *cat[] = {a, gn_mul(a, two)};
	check("concat", gn_concat(cat, 2, 1));
	struct gn_tensor *parts[2];
	int64_t sizes[] = {1, 3};
	if (gn_split(a, 2, 2, sizes, parts) != 0)
		parts[1] = NULL;
	check("split1", parts[1]);
	check("arange",
	      gn_add(gn_mul(gn_arange(g_s, GN_DTYPE_F32, 0, 1, 10), half), t1));
	int64_t z[] = {2, 3}, o3[] = {3};
	check("zeros_ones", gn_add(gn_zeros(g_s, GN_DTYPE_F32, 2, z),
				   gn_ones(g_s, GN_DTYPE_F32, 1, o3)));

	gn_session_destroy(&g_s);
	for (int i = 0; i < g_nrecs; i++)
		free(g_recs[i].data);
	printf("every_op (%s): %d passed, %d failed\n", o.target, g_passed,
	       g_failed);
	return g_failed ? 1 : 0;
}
