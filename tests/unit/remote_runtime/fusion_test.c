/*
 * oneDNN kernels and fused chains against the plain C kernels.
 *
 * Two local sessions record the same work: one whose CPU backend uses
 * oneDNN (and fuses conv/linear/matmul chains), one with GENIE_CPU_DNNL=0
 * (plain C, every node alone). Results must agree within 1e-5 of the
 * largest output magnitude. Chains run twice, so the second run takes the
 * cached primitives and reordered (batchnorm-folded) weights, and once
 * more with other batchnorm statistics, which must not hit that cache.
 * The whole suite runs twice: the second time fused chains take the C
 * fallback used when oneDNN declines to build one.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <genie/genie.h>

struct pair {
	struct gn_session *s[2]; /* [0] oneDNN, [1] plain C */
	uint32_t seed;
};

/* Set for the second pass: chains take the C fallback. */
static int g_chains_on_c;

static struct gn_session *open_local(int dnnl)
{
	struct gn_session *s;

	setenv("GENIE_CPU_DNNL", dnnl ? "1" : "0", 1);
	if (dnnl && g_chains_on_c)
		setenv("GENIE_CPU_CHAINS_ON_C", "1", 1);
	s = gn_session_create(NULL);
	unsetenv("GENIE_CPU_DNNL");
	unsetenv("GENIE_CPU_CHAINS_ON_C");
	if (s == NULL)
		fail_msg("session: %s", gn_last_error());
	return s;
}

static int setup(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));

	p->s[0] = open_local(1);
	p->s[1] = open_local(0);
	p->seed = 12345;
	*state = p;
	return 0;
}

static int teardown(void **state)
{
	struct pair *p = *state;

	gn_session_destroy(&p->s[0]);
	gn_session_destroy(&p->s[1]);
	free(p);
	return 0;
}

/* Values in [lo, hi) from a fixed LCG, in a buffer kept for the test. */
static float *values(struct pair *p, size_t n, float lo, float hi)
{
	float *v = malloc(n * sizeof(float));

	for (size_t i = 0; i < n; i++) {
		p->seed = p->seed * 1664525u + 1013904223u;
		v[i] = lo + (hi - lo) * (float)(p->seed >> 8) / 16777216.0f;
	}
	return v;
}

/* One operand in both sessions. */
struct in2 {
	struct gn_tensor *t[2];
	float *data;
};

static struct in2 tensor(struct pair *p, int nd, const int64_t *shape, float lo,
			 float hi)
{
	struct in2 r;
	size_t n = 1;

	for (int i = 0; i < nd; i++)
		n *= (size_t)shape[i];
	r.data = values(p, n, lo, hi);
	for (int k = 0; k < 2; k++) {
		r.t[k] = gn_tensor_from_host(p->s[k], GN_DTYPE_F32, nd, shape,
					     r.data, GN_TENSOR_COPY);
		assert_non_null(r.t[k]);
	}
	free(r.data);
	r.data = NULL;
	return r;
}

/* Materialize both and compare; returns the worst relative error. */
static double compare(struct gn_tensor *a, struct gn_tensor *b,
		      const char *what)
{
	size_t n = gn_tensor_nbytes(a);
	float *x = malloc(n ? n : 1), *y = malloc(n ? n : 1);
	double worst = 0, big = 0;

	if (gn_tensor_to_host(a, x, n) != 0 || gn_tensor_to_host(b, y, n) != 0)
		fail_msg("%s: %s", what, gn_last_error());
	for (size_t i = 0; i < n / 4; i++)
		big = fabs(y[i]) > big ? fabs(y[i]) : big;
	for (size_t i = 0; i < n / 4; i++) {
		double e = fabs((double)x[i] - y[i]) / (big > 1 ? big : 1);

		if (isnan(x[i]) != isnan(y[i]))
			fail_msg("%s: element %zu: %g vs %g", what, i, x[i],
				 y[i]);
		worst = e > worst ? e : worst;
	}
	free(x);
	free(y);
	if (worst > 1e-5)
		fail_msg("%s: oneDNN vs plain C: relative error %g", what,
			 worst);
	return worst;
}

struct bn {
	struct in2 mean, var, gamma, beta;
};

static struct bn bn_params(struct pair *p, int64_t c)
{
	struct bn b = {
		tensor(p, 1, &c, -0.5f, 0.5f),
		tensor(p, 1, &c, 0.5f, 2.0f),
		tensor(p, 1, &c, 0.5f, 1.5f),
		tensor(p, 1, &c, -0.3f, 0.3f),
	};
	return b;
}

/* relu(bn(conv(x)) [+ res]) with the given conv parameters. */
static void conv_chain(struct pair *p, int64_t n, int64_t c, int64_t h,
		       int64_t o, int64_t k, const struct gn_conv2d_params *cp,
		       int with_bias, int with_bn, int with_res, int act,
		       const char *what)
{
	int64_t g = cp && cp->groups ? cp->groups : 1;
	int64_t xs[4] = {n, c, h, h}, ws[4] = {o, c / g, k, k};
	struct in2 x = tensor(p, 4, xs, -1, 1),
		   w = tensor(p, 4, ws, -0.3f, 0.3f);
	struct in2 b = tensor(p, 1, &o, -0.2f, 0.2f);
	struct gn_tensor *y[2];

	for (int round = 0; round < 3; round++) {
		struct bn bn = bn_params(p, o);
		struct in2 res = {{NULL, NULL}, NULL};

		for (int s = 0; s < 2; s++) {
			y[s] = gn_conv2d(x.t[s], w.t[s],
					 with_bias ? b.t[s] : NULL, cp);
			if (with_bn)
				y[s] = gn_batchnorm(y[s], bn.mean.t[s],
						    bn.var.t[s], bn.gamma.t[s],
						    bn.beta.t[s], 1e-5f);
			if (with_res && s == 0) {
				int64_t rs[4];

				gn_tensor_shape(y[0], rs);
				res = tensor(p, 4, rs, -1, 1);
			}
			if (with_res)
				y[s] = gn_add(y[s], res.t[s]);
			if (act == 1)
				y[s] = gn_relu(y[s]);
			else if (act == 2)
				y[s] = gn_silu(y[s]);
			if (y[s] == NULL)
				fail_msg("%s: record: %s", what,
					 gn_last_error());
		}
		compare(y[0], y[1], what);
	}
}

static void test_conv_chains(void **state)
{
	struct pair *p = *state;
	struct gn_conv2d_params s2 = {.stride = {2, 2},
				      .padding = {1, 1, 1, 1}};
	struct gn_conv2d_params pad = {.padding = {1, 1, 1, 1}};
	struct gn_conv2d_params odd = {
		.stride = {1, 2}, .padding = {0, 1, 2, 0}, .dilation = {2, 1}};
	struct gn_conv2d_params grp = {.padding = {1, 1, 1, 1}, .groups = 4};
	struct gn_conv2d_params dw = {.padding = {1, 1, 1, 1}, .groups = 16};

	conv_chain(p, 1, 3, 32, 16, 7, &s2, 0, 1, 0, 1, "stem conv+bn+relu");
	conv_chain(p, 2, 16, 14, 16, 3, &pad, 0, 1, 1, 1, "conv+bn+add+relu");
	conv_chain(p, 1, 16, 14, 32, 1, &s2, 0, 1, 0, 0, "1x1/2 conv+bn");
	conv_chain(p, 1, 8, 11, 12, 3, &odd, 1, 0, 0, 2,
		   "dilated asymmetric conv+bias+silu");
	conv_chain(p, 2, 16, 9, 32, 3, &grp, 1, 1, 1, 1,
		   "grouped conv+bias+bn+add+relu");
	conv_chain(p, 1, 16, 9, 16, 3, &dw, 0, 1, 0, 1,
		   "depthwise conv+bn+relu");
	conv_chain(p, 1, 8, 10, 8, 3, NULL, 1, 0, 0, 0, "plain conv+bias");

	/* An add that broadcasts the conv result up is not fused. */
	int64_t xs[4] = {1, 4, 3, 3}, ws[4] = {4, 4, 3, 3};
	struct in2 x = tensor(p, 4, xs, -1, 1), w = tensor(p, 4, ws, -1, 1);
	struct gn_tensor *y[2];

	for (int s = 0; s < 2; s++) {
		y[s] = gn_relu(
			gn_add(gn_conv2d(x.t[s], w.t[s], NULL, NULL), x.t[s]));
		assert_non_null(y[s]);
	}
	compare(y[0], y[1], "conv [1,4,1,1] + x [1,4,3,3]");
}

static void test_linear_matmul_chains(void **state)
{
	struct pair *p = *state;
	int64_t xs[3] = {2, 7, 48}, ws[2] = {40, 48}, bs = 40,
		rs[3] = {2, 7, 40};
	int64_t as[4] = {2, 3, 5, 6}, bms[3] = {1, 6, 4}, b2[2] = {6, 4};
	struct in2 x = tensor(p, 3, xs, -1, 1),
		   w = tensor(p, 2, ws, -0.2f, 0.2f);
	struct in2 b = tensor(p, 1, &bs, -0.1f, 0.1f),
		   r = tensor(p, 3, rs, -1, 1);
	struct in2 a = tensor(p, 4, as, -1, 1), bm = tensor(p, 3, bms, -1, 1);
	struct in2 bb = tensor(p, 2, b2, -1, 1);
	struct gn_tensor *y[2], *z[2], *u[2], *v[2];

	for (int s = 0; s < 2; s++) {
		y[s] = gn_gelu(gn_linear(x.t[s], w.t[s], b.t[s]), 0);
		z[s] = gn_add(gn_linear(x.t[s], w.t[s], NULL), r.t[s]);
		u[s] = gn_relu(gn_matmul(a.t[s], bm.t[s]));
		v[s] = gn_tanh(gn_matmul(a.t[s], bb.t[s]));
		assert_non_null(y[s]);
		assert_non_null(z[s]);
		assert_non_null(u[s]);
		assert_non_null(v[s]);
	}
	compare(y[0], y[1], "linear+bias+gelu");
	compare(z[0], z[1], "linear+residual");
	compare(u[0], u[1], "broadcast batched matmul+relu");
	compare(v[0], v[1], "4-D x 2-D matmul+tanh");
}

static void test_single_ops(void **state)
{
	struct pair *p = *state;
	int64_t xs[4] = {2, 8, 13, 13}, qs[4] = {1, 3, 9, 16},
		ks[4] = {1, 3, 11, 16};
	int64_t vs[4] = {1, 3, 11, 8}, ls[3] = {2, 5, 24}, g[1] = {24};
	int64_t c8 = 8, row[4] = {1, 8, 1, 1};
	struct in2 x = tensor(p, 4, xs, -2, 2), q = tensor(p, 4, qs, -1, 1);
	struct in2 k = tensor(p, 4, ks, -1, 1), v = tensor(p, 4, vs, -1, 1);
	struct in2 l = tensor(p, 3, ls, -3, 3),
		   gm = tensor(p, 1, g, 0.5f, 1.5f);
	struct in2 bt = tensor(p, 1, g, -0.5f, 0.5f);
	struct in2 ch = tensor(p, 4, row, 0.5f, 1.5f);
	struct bn bn = bn_params(p, c8);
	struct gn_pool2d_params mp = {
		.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1, 1, 1}};
	struct gn_pool2d_params ap = {
		.kernel = {2, 3}, .stride = {2, 1}, .padding = {1, 1, 1, 1}};
	struct gn_pool2d_params ap_inc = ap;
	struct gn_tensor *y[16][2];
	const char *names[16];
	int n = 0;

	ap_inc.count_include_pad = 1;
	for (int s = 0; s < 2; s++) {
		n = 0;
		names[n] = "maxpool";
		y[n++][s] = gn_maxpool2d(x.t[s], &mp);
		names[n] = "avgpool exclude pad";
		y[n++][s] = gn_avgpool2d(x.t[s], &ap);
		names[n] = "avgpool include pad";
		y[n++][s] = gn_avgpool2d(x.t[s], &ap_inc);
		names[n] = "global avgpool";
		y[n++][s] = gn_global_avgpool(x.t[s]);
		names[n] = "batchnorm";
		y[n++][s] = gn_batchnorm(x.t[s], bn.mean.t[s], bn.var.t[s],
					 bn.gamma.t[s], bn.beta.t[s], 1e-3f);
		names[n] = "layernorm";
		y[n++][s] = gn_layernorm(l.t[s], gm.t[s], bt.t[s], 1, 1e-5f);
		names[n] = "softmax axis 1";
		y[n++][s] = gn_softmax(x.t[s], 1);
		names[n] = "log_softmax last axis";
		y[n++][s] = gn_log_softmax(l.t[s], -1);
		names[n] = "sdpa";
		y[n++][s] = gn_sdpa(q.t[s], k.t[s], v.t[s], NULL, 0, 0);
		names[n] = "sdpa causal, scale";
		y[n++][s] = gn_sdpa(q.t[s], k.t[s], v.t[s], NULL, 1, 0.3f);
		names[n] = "broadcast mul";
		y[n++][s] = gn_mul(x.t[s], ch.t[s]);
		names[n] = "broadcast add, small side first";
		y[n++][s] = gn_add(ch.t[s], x.t[s]);
		names[n] = "broadcast sub";
		y[n++][s] = gn_sub(x.t[s], ch.t[s]);
		names[n] = "gelu tanh";
		y[n++][s] = gn_gelu(x.t[s], 1);
		names[n] = "hardswish";
		y[n++][s] = gn_hardswish(x.t[s]);
		names[n] = "clip";
		y[n++][s] = gn_clip(x.t[s], -0.5f, 0.7f);
	}
	for (int i = 0; i < n; i++) {
		if (y[i][0] == NULL || y[i][1] == NULL)
			fail_msg("%s: record: %s", names[i], gn_last_error());
		compare(y[i][0], y[i][1], names[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_conv_chains, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_linear_matmul_chains,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_single_ops, setup,
						teardown),
	};

	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	/*
	 * Again with every fused chain sent down the path taken when oneDNN
	 * cannot build an accepted chain: node by node on the C kernels.
	 */
	g_chains_on_c = 1;
	return rc | cmocka_run_group_tests(tests, NULL, NULL);
}
