/*
 * ResNet-18 and a transformer encoder block for the backend benchmark:
 * deterministic weights, the file the PyTorch side reads, and the Genie
 * graphs. See backend_models.h for the file layout.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_models.h"

/* xorshift64*: small, fast and the same on every machine. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [lo, hi) from the top 24 bits. */
static float rng_uniform(uint64_t *s, float lo, float hi)
{
	float u = (float)(rng_next(s) >> 40) * (1.0f / 16777216.0f);

	return lo + (hi - lo) * u;
}

void bench_fill_input(float *x, size_t n, uint64_t seed)
{
	uint64_t s = seed ? seed : 1;

	for (size_t i = 0; i < n; i++)
		x[i] = rng_uniform(&s, -1.0f, 1.0f);
}

/*
 * Append a parameter of `shape` drawn uniformly from [lo, hi). Returns its
 * index, or -1 when out of memory or parameter slots.
 */
static int add_param(struct bench_model *m, uint64_t *rng, int ndim,
		     const int64_t *shape, float lo, float hi)
{
	struct bench_param *p;
	size_t n = 1;

	if (m->nparams < 0 || m->nparams >= BENCH_MAX_PARAMS)
		return -1;
	for (int i = 0; i < ndim; i++)
		n *= (size_t)shape[i];
	if (m->count + n > m->cap) {
		size_t cap = m->cap ? m->cap : (size_t)1 << 20;
		float *d;

		while (cap < m->count + n)
			cap *= 2;
		d = realloc(m->data, cap * sizeof(float));
		if (d == NULL)
			return -1;
		m->data = d;
		m->cap = cap;
	}
	p = &m->params[m->nparams];
	p->off = m->count;
	p->ndim = ndim;
	memcpy(p->shape, shape, sizeof(int64_t) * (size_t)ndim);
	p->t = NULL;
	for (size_t i = 0; i < n; i++)
		m->data[m->count + i] = rng_uniform(rng, lo, hi);
	m->count += n;
	return m->nparams++;
}

/*
 * Conv weight [out,in,k,k] with He-uniform scale, then batch norm
 * weight, bias, running_mean, running_var: the state_dict order. The
 * statistics are deliberately not 0/1 so the normalisation does work.
 */
static int add_conv_bn(struct bench_model *m, uint64_t *rng,
		       struct bench_conv_bn *c, int64_t out, int64_t in,
		       int64_t k, int64_t stride, int64_t pad)
{
	int64_t ws[4] = {out, in, k, k}, cs[1] = {out};
	float bound = sqrtf(6.0f / (float)(in * k * k));

	c->w = add_param(m, rng, 4, ws, -bound, bound);
	c->gamma = add_param(m, rng, 1, cs, 0.4f, 0.9f);
	c->beta = add_param(m, rng, 1, cs, -0.1f, 0.1f);
	c->mean = add_param(m, rng, 1, cs, -0.1f, 0.1f);
	c->var = add_param(m, rng, 1, cs, 0.5f, 1.5f);
	c->stride = stride;
	c->pad = pad;
	return c->w < 0 || c->gamma < 0 || c->beta < 0 || c->mean < 0 ||
			       c->var < 0
		       ? -1
		       : 0;
}

static int init_resnet18(struct bench_model *m, uint64_t *rng)
{
	int64_t in = 64, fw[2] = {1000, 512}, fb[1] = {1000};
	float fbound = 1.0f / sqrtf(512.0f);
	int rc;

	rc = add_conv_bn(m, rng, &m->u.rn.stem, 64, 3, 7, 2, 3);
	for (int stage = 0; stage < 4 && rc == 0; stage++) {
		int64_t planes = (int64_t)64 << stage;

		for (int b = 0; b < 2 && rc == 0; b++) {
			struct bench_basic_block *blk =
				&m->u.rn.blk[stage * 2 + b];
			int64_t stride = stage > 0 && b == 0 ? 2 : 1;

			rc = add_conv_bn(m, rng, &blk->c1, planes, in, 3,
					 stride, 1);
			if (rc == 0)
				rc = add_conv_bn(m, rng, &blk->c2, planes,
						 planes, 3, 1, 1);
			blk->has_down = stage > 0 && b == 0;
			if (rc == 0 && blk->has_down)
				rc = add_conv_bn(m, rng, &blk->down, planes, in,
						 1, 2, 0);
			in = planes;
		}
	}
	if (rc != 0)
		return -ENOMEM;
	m->u.rn.fc_w = add_param(m, rng, 2, fw, -fbound, fbound);
	m->u.rn.fc_b = add_param(m, rng, 1, fb, -fbound, fbound);
	return m->u.rn.fc_b < 0 || m->u.rn.fc_w < 0 ? -ENOMEM : 0;
}

/* nn.Linear's default scale: uniform within 1/sqrt(fan_in). */
static int add_linear(struct bench_model *m, uint64_t *rng, int *w, int *b,
		      int64_t out, int64_t in)
{
	int64_t ws[2] = {out, in}, bs[1] = {out};
	float bound = 1.0f / sqrtf((float)in);

	*w = add_param(m, rng, 2, ws, -bound, bound);
	*b = add_param(m, rng, 1, bs, -bound, bound);
	return *w < 0 || *b < 0 ? -1 : 0;
}

static int init_transformer(struct bench_model *m, uint64_t *rng)
{
	int64_t d[1] = {BENCH_TF_DMODEL};
	int rc = 0;

	m->u.tf.ln1_g = add_param(m, rng, 1, d, 0.8f, 1.2f);
	m->u.tf.ln1_b = add_param(m, rng, 1, d, -0.1f, 0.1f);
	rc |= add_linear(m, rng, &m->u.tf.wq, &m->u.tf.bq, BENCH_TF_DMODEL,
			 BENCH_TF_DMODEL);
	rc |= add_linear(m, rng, &m->u.tf.wk, &m->u.tf.bk, BENCH_TF_DMODEL,
			 BENCH_TF_DMODEL);
	rc |= add_linear(m, rng, &m->u.tf.wv, &m->u.tf.bv, BENCH_TF_DMODEL,
			 BENCH_TF_DMODEL);
	rc |= add_linear(m, rng, &m->u.tf.wo, &m->u.tf.bo, BENCH_TF_DMODEL,
			 BENCH_TF_DMODEL);
	m->u.tf.ln2_g = add_param(m, rng, 1, d, 0.8f, 1.2f);
	m->u.tf.ln2_b = add_param(m, rng, 1, d, -0.1f, 0.1f);
	rc |= add_linear(m, rng, &m->u.tf.w1, &m->u.tf.b1, BENCH_TF_MLP,
			 BENCH_TF_DMODEL);
	rc |= add_linear(m, rng, &m->u.tf.w2, &m->u.tf.b2, BENCH_TF_DMODEL,
			 BENCH_TF_MLP);
	if (rc != 0 || m->u.tf.ln1_g < 0 || m->u.tf.ln1_b < 0 ||
	    m->u.tf.ln2_g < 0 || m->u.tf.ln2_b < 0)
		return -ENOMEM;
	return 0;
}

int bench_model_init(struct bench_model *m, enum bench_model_kind kind,
		     uint64_t seed)
{
	uint64_t rng = seed ? seed : 1;
	int rc;

	memset(m, 0, sizeof(*m));
	m->kind = kind;
	rc = kind == BENCH_RESNET18 ? init_resnet18(m, &rng)
				    : init_transformer(m, &rng);
	if (rc != 0)
		bench_model_free(m);
	return rc;
}

void bench_model_free(struct bench_model *m)
{
	free(m->data);
	m->data = NULL;
	m->count = m->cap = 0;
	m->nparams = 0;
}

int bench_model_input_shape(const struct bench_model *m, int batch,
			    int64_t *shape)
{
	if (m->kind == BENCH_RESNET18) {
		shape[0] = batch;
		shape[1] = 3;
		shape[2] = 224;
		shape[3] = 224;
		return 4;
	}
	shape[0] = 1;
	shape[1] = BENCH_TF_SEQ;
	shape[2] = BENCH_TF_DMODEL;
	return 3;
}

int bench_model_output_shape(const struct bench_model *m, int batch,
			     int64_t *shape)
{
	if (m->kind == BENCH_RESNET18) {
		shape[0] = batch;
		shape[1] = 1000;
		return 2;
	}
	return bench_model_input_shape(m, batch, shape);
}

int bench_model_write(const struct bench_model *m, const float *input,
		      size_t nin, const char *path)
{
	FILE *f = fopen(path, "wb");
	int rc = 0;

	if (f == NULL)
		return -errno;
	/* x86-64 and aarch64 Linux are little-endian: the bytes are f32 LE. */
	if (fwrite(input, sizeof(float), nin, f) != nin ||
	    fwrite(m->data, sizeof(float), m->count, f) != m->count)
		rc = -EIO;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

int bench_model_bind(struct bench_model *m, struct gn_session *s, int resident)
{
	for (int i = 0; i < m->nparams; i++) {
		struct bench_param *p = &m->params[i];

		p->t = gn_tensor_from_host(s, GN_DTYPE_F32, p->ndim, p->shape,
					   m->data + p->off, GN_TENSOR_BORROW);
		if (p->t == NULL)
			return gn_last_error_code() ? gn_last_error_code()
						    : -ENOMEM;
		if (resident && gn_tensor_make_resident(p->t, 1) != 0)
			return gn_last_error_code();
	}
	return 0;
}

static struct gn_tensor *T(const struct bench_model *m, int idx)
{
	return m->params[idx].t;
}

static struct gn_tensor *conv_bn(const struct bench_model *m,
				 struct gn_tensor *x,
				 const struct bench_conv_bn *c, int relu)
{
	struct gn_conv2d_params cp = {
		.stride = {c->stride, c->stride},
		.padding = {c->pad, c->pad, c->pad, c->pad},
	};
	struct gn_tensor *y;

	y = gn_conv2d(x, T(m, c->w), NULL, &cp);
	y = gn_batchnorm(y, T(m, c->mean), T(m, c->var), T(m, c->gamma),
			 T(m, c->beta), 1e-5f);
	return relu ? gn_relu(y) : y;
}

static struct gn_tensor *resnet18_forward(const struct bench_model *m,
					  struct gn_tensor *x)
{
	struct gn_pool2d_params mp = {
		.kernel = {3, 3},
		.stride = {2, 2},
		.padding = {1, 1, 1, 1},
	};

	x = conv_bn(m, x, &m->u.rn.stem, 1);
	x = gn_maxpool2d(x, &mp);
	for (int i = 0; i < 8; i++) {
		const struct bench_basic_block *b = &m->u.rn.blk[i];
		struct gn_tensor *h, *idt = x;

		h = conv_bn(m, x, &b->c1, 1);
		h = conv_bn(m, h, &b->c2, 0);
		if (b->has_down)
			idt = conv_bn(m, x, &b->down, 0);
		x = gn_relu(gn_add(h, idt));
	}
	x = gn_flatten(gn_global_avgpool(x), 1);
	return gn_linear(x, T(m, m->u.rn.fc_w), T(m, m->u.rn.fc_b));
}

/* [1,S,D] -> [1,H,S,D/H] for gn_sdpa, which attends over the last two. */
static struct gn_tensor *split_heads(struct gn_tensor *x)
{
	static const int64_t shp[4] = {1, BENCH_TF_SEQ, BENCH_TF_HEADS,
				       BENCH_TF_DMODEL / BENCH_TF_HEADS};
	static const int perm[4] = {0, 2, 1, 3};

	return gn_permute(gn_reshape(x, 4, shp), 4, perm);
}

static struct gn_tensor *transformer_forward(const struct bench_model *m,
					     struct gn_tensor *x)
{
	static const int64_t merged[3] = {1, BENCH_TF_SEQ, BENCH_TF_DMODEL};
	static const int perm[4] = {0, 2, 1, 3};
	struct gn_tensor *h, *q, *k, *v, *a;

	h = gn_layernorm(x, T(m, m->u.tf.ln1_g), T(m, m->u.tf.ln1_b), 1, 1e-5f);
	q = split_heads(gn_linear(h, T(m, m->u.tf.wq), T(m, m->u.tf.bq)));
	k = split_heads(gn_linear(h, T(m, m->u.tf.wk), T(m, m->u.tf.bk)));
	v = split_heads(gn_linear(h, T(m, m->u.tf.wv), T(m, m->u.tf.bv)));
	a = gn_sdpa(q, k, v, NULL, 0, 0.0f);
	a = gn_reshape(gn_permute(a, 4, perm), 3, merged);
	x = gn_add(x, gn_linear(a, T(m, m->u.tf.wo), T(m, m->u.tf.bo)));
	h = gn_layernorm(x, T(m, m->u.tf.ln2_g), T(m, m->u.tf.ln2_b), 1, 1e-5f);
	h = gn_gelu(gn_linear(h, T(m, m->u.tf.w1), T(m, m->u.tf.b1)), 0);
	return gn_add(x, gn_linear(h, T(m, m->u.tf.w2), T(m, m->u.tf.b2)));
}

struct gn_tensor *bench_model_forward(const struct bench_model *m,
				      struct gn_tensor *x)
{
	return m->kind == BENCH_RESNET18 ? resnet18_forward(m, x)
					 : transformer_forward(m, x);
}
