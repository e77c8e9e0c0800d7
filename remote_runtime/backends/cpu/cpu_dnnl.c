/*
 * oneDNN kernels for the CPU backend's heavy f32 ops: convolution (with
 * batchnorm folded into the weights, a residual add and an activation
 * fused as post-ops), matmul and linear (bias, residual add, activation
 * fused), pooling, batch and layer norm, softmax, attention, elementwise
 * activations and broadcasting binary ops.
 *
 * Tensors stay row-major (nchw) between nodes, as every other kernel
 * expects; a primitive that runs faster on a blocked layout gets its
 * operands reordered into ctx scratch and its result reordered back, as
 * PyTorch's CPU path does. Weights that cannot change (stable operands)
 * are reordered once and cached until the backend's forget(). Primitives
 * are built once per distinct (op, shapes, attributes) and kept in a
 * small hash table. One context serves one thread at a time (the
 * executor's worker); kernels themselves use the backend's OpenMP threads.
 *
 * Each entry point returns 0, a negative errno with detail, or
 * GN_CPU_DNNL_DECLINE when the case is not one oneDNN handles; the caller
 * then runs the plain C kernel.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>
#include <xxhash.h>

#include "cpu_internal.h"
#include "gn_error.h"
#include "log.h"

GN_LOG_REGISTER(cpu)

#define PRIM_SLOTS 1024 /* power of two */
#define WCACHE_MAX 512
/* Prepared weights kept at most; least recently used go first. */
#define WCACHE_MAX_BYTES (1ull << 30)
#define KEY_WORDS 64

enum { S_SRC, S_WEI, S_DST, S_AUX, S_NUM };

struct prim {
	dnnl_primitive_t main, src_r, wei_r, dst_r, res_r;
	dnnl_memory_desc_t src_md, wei_md, dst_md, bias_md;
	/* Plain forms of the operands, as they lie in our buffers. */
	dnnl_memory_desc_t src_plain, wei_plain, dst_plain;
	size_t scratch_bytes;
	int fold_bn, sum, nbin;
	/* Last: a build zeroes everything above. */
	int used;
	uint32_t nkey;
	uint64_t key[KEY_WORDS];
};

struct wcache {
	const void *w, *bn[4];
	uint64_t md_hash;
	void *buf;
	size_t bytes;
	uint64_t last_use;
};

struct gn_cpu_dnnl {
	dnnl_engine_t eng;
	dnnl_stream_t strm;
	struct prim *prims; /* PRIM_SLOTS, open addressing */
	struct wcache wc[WCACHE_MAX];
	uint32_t nwc;
	uint64_t wc_bytes;
	uint64_t tick;
	void *scratch[S_NUM];
	size_t scratch_size[S_NUM];
	float *fold; /* folded BN scales and bias, grows */
	size_t fold_n;
	dnnl_memory_t lib_scratch;
	void *lib_scratch_buf;
	size_t lib_scratch_size;
};

/* ---- helpers ------------------------------------------------------- */

static int dnnl_fail(dnnl_status_t st, const char *what)
{
	return gn_error_set(st == dnnl_out_of_memory ? -ENOMEM : -EIO,
			    "oneDNN: %s failed (status %d)", what, (int)st);
}

/*
 * Building a descriptor or primitive: oneDNN refusing (unimplemented,
 * shapes it does not take) means the C kernels run it instead.
 */
#define CKD(call, what)                                       \
	do {                                                  \
		dnnl_status_t st_ = (call);                   \
		if (st_ != dnnl_success) {                    \
			GN_LOG(DEBUG, cpu,                    \
			       "oneDNN declines: %s (status " \
			       "%d)",                         \
			       what, (int)st_);               \
			return GN_CPU_DNNL_DECLINE;           \
		}                                             \
	} while (0)

#define CK(call, what)                               \
	do {                                         \
		dnnl_status_t st_ = (call);          \
		if (st_ != dnnl_success)             \
			return dnnl_fail(st_, what); \
	} while (0)

static void *scratch(struct gn_cpu_dnnl *d, int slot, size_t bytes)
{
	if (bytes <= d->scratch_size[slot])
		return d->scratch[slot];
	free(d->scratch[slot]);
	d->scratch_size[slot] = 0;
	d->scratch[slot] = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
	if (d->scratch[slot] == NULL) {
		gn_error_set(-ENOMEM, "cpu: no memory for %zu bytes of scratch",
			     bytes);
		return NULL;
	}
	d->scratch_size[slot] = bytes;
	return d->scratch[slot];
}

static void md_plain(dnnl_memory_desc_t *md, int nd, const int64_t *dims)
{
	dnnl_dims_t dd;

	for (int i = 0; i < nd; i++)
		dd[i] = dims[i];
	dnnl_memory_desc_init_by_tag(md, nd, dd, dnnl_f32,
				     nd == 1   ? dnnl_a
				     : nd == 2 ? dnnl_ab
				     : nd == 3 ? dnnl_abc
				     : nd == 4 ? dnnl_abcd
				     : nd == 5 ? dnnl_abcde
					       : dnnl_abcdef);
}

static void md_any(dnnl_memory_desc_t *md, int nd, const int64_t *dims)
{
	dnnl_dims_t dd;

	for (int i = 0; i < nd; i++)
		dd[i] = dims[i];
	dnnl_memory_desc_init_by_tag(md, nd, dd, dnnl_f32, dnnl_format_tag_any);
}

static int all_f32(const struct cpu_call *c)
{
	if (c->om->dtype != GN_DTYPE_F32)
		return 0;
	for (int k = 0; k < c->nin; k++)
		if (c->im[k]->dtype != GN_DTYPE_F32)
			return 0;
	return 1;
}

/* Run `p` with `n` (arg, memory) pairs. */
static int exec(struct gn_cpu_dnnl *d, dnnl_primitive_t p, int n,
		const dnnl_exec_arg_t *args)
{
	CK(dnnl_primitive_execute(p, d->strm, n, args), "execute");
	return 0;
}

/* A memory object over `ptr` described by `md`; NULL on failure. */
static dnnl_memory_t mem(struct gn_cpu_dnnl *d, const dnnl_memory_desc_t *md,
			 const void *ptr)
{
	dnnl_memory_t m = NULL;

	if (dnnl_memory_create(&m, md, d->eng, (void *)ptr) != dnnl_success) {
		gn_error_set(-ENOMEM, "oneDNN: cannot wrap a buffer");
		return NULL;
	}
	return m;
}

static int reorder_prim(struct gn_cpu_dnnl *d, const dnnl_memory_desc_t *from,
			const dnnl_memory_desc_t *to,
			const_dnnl_primitive_attr_t attr, dnnl_primitive_t *out)
{
	dnnl_primitive_desc_t pd;

	*out = NULL;
	CKD(dnnl_reorder_primitive_desc_create(&pd, from, d->eng, to, d->eng,
					       attr),
	    "reorder descriptor");
	dnnl_status_t st = dnnl_primitive_create(out, pd);

	dnnl_primitive_desc_destroy(pd);
	if (st != dnnl_success)
		return dnnl_fail(st, "reorder primitive");
	return 0;
}

/* Run reorder `r` from `src` to `dst` (described by `from` and `to`). */
static int run_reorder(struct gn_cpu_dnnl *d, dnnl_primitive_t r,
		       const dnnl_memory_desc_t *from, const void *src,
		       const dnnl_memory_desc_t *to, void *dst)
{
	dnnl_memory_t ms = mem(d, from, src), md = mem(d, to, dst);
	int rc = -ENOMEM;

	if (ms != NULL && md != NULL) {
		dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, ms}, {DNNL_ARG_TO, md}};

		rc = exec(d, r, 2, a);
	}
	if (ms != NULL)
		dnnl_memory_destroy(ms);
	if (md != NULL)
		dnnl_memory_destroy(md);
	return rc;
}

/* ---- primitive cache ----------------------------------------------- */

struct key {
	uint64_t w[KEY_WORDS];
	uint32_t n;
};

static void key_add(struct key *k, int64_t v)
{
	if (k->n < KEY_WORDS)
		k->w[k->n] = (uint64_t)v;
	k->n++;
}

static void key_meta(struct key *k, const struct gn_tensor_meta *m)
{
	key_add(k, m->ndim);
	for (int i = 0; i < m->ndim; i++)
		key_add(k, m->shape[i]);
}

static void key_attrs(struct key *k, const struct gn_op_attrs *a)
{
	key_add(k, a->ni);
	for (uint32_t i = 0; i < a->ni; i++)
		key_add(k, a->i[i]);
	key_add(k, a->nf);
	for (uint32_t i = 0; i < a->nf; i++) {
		uint32_t u;

		memcpy(&u, &a->f[i], sizeof(u));
		key_add(k, u);
	}
}

/*
 * The cached entry for `k`, or a fresh slot to fill (used == 0), or NULL
 * when the key is too long to cache (the caller builds and destroys).
 */
static struct prim *prim_slot(struct gn_cpu_dnnl *d, const struct key *k)
{
	uint64_t h;

	if (k->n > KEY_WORDS)
		return NULL;
	h = XXH3_64bits(k->w, k->n * sizeof(uint64_t));
	for (uint32_t probe = 0; probe < 16; probe++) {
		struct prim *p = &d->prims[(h + probe) & (PRIM_SLOTS - 1)];

		if (!p->used) {
			memcpy(p->key, k->w, k->n * sizeof(uint64_t));
			p->nkey = k->n;
			return p;
		}
		if (p->nkey == k->n &&
		    memcmp(p->key, k->w, k->n * sizeof(uint64_t)) == 0)
			return p;
	}
	return NULL;
}

static void prim_clear(struct prim *p)
{
	dnnl_primitive_t *all[] = {&p->main, &p->src_r, &p->wei_r, &p->dst_r,
				   &p->res_r};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (*all[i] != NULL) {
			dnnl_primitive_destroy(*all[i]);
			*all[i] = NULL;
		}
	p->used = 0;
}

static int make_prim(struct gn_cpu_dnnl *d, const_dnnl_op_desc_t desc,
		     const_dnnl_primitive_attr_t attr, dnnl_primitive_t *out,
		     dnnl_primitive_desc_t *pd_out)
{
	dnnl_primitive_desc_t pd;

	CKD(dnnl_primitive_desc_create(&pd, desc, attr, d->eng, NULL),
	    "primitive descriptor");
	dnnl_status_t st = dnnl_primitive_create(out, pd);

	if (st != dnnl_success) {
		dnnl_primitive_desc_destroy(pd);
		return dnnl_fail(st, "primitive");
	}
	*pd_out = pd;
	return 0;
}

/* Library scratchpad (user mode), sized for the largest primitive. */
static void lib_scratch_for(dnnl_primitive_desc_t pd, size_t *bytes)
{
	const dnnl_memory_desc_t *md =
		dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);

	*bytes = md ? dnnl_memory_desc_get_size(md) : 0;
}

static int bind_lib_scratch(struct gn_cpu_dnnl *d, size_t bytes,
			    dnnl_memory_t *m)
{
	dnnl_memory_desc_t md;
	dnnl_dims_t dims = {(dnnl_dim_t)(bytes ? bytes : 1)};

	*m = NULL;
	if (bytes > d->lib_scratch_size) {
		free(d->lib_scratch_buf);
		d->lib_scratch_size = 0;
		d->lib_scratch_buf = aligned_alloc(64, (bytes + 63) & ~63UL);
		if (d->lib_scratch_buf == NULL)
			return gn_error_set(-ENOMEM,
					    "cpu: no memory for %zu bytes of "
					    "oneDNN scratchpad",
					    bytes);
		d->lib_scratch_size = bytes;
	}
	dnnl_memory_desc_init_by_tag(&md, 1, dims, dnnl_u8, dnnl_a);
	*m = mem(d, &md, d->lib_scratch_buf);
	return *m ? 0 : -ENOMEM;
}

static dnnl_primitive_attr_t new_attr(void)
{
	dnnl_primitive_attr_t a = NULL;

	if (dnnl_primitive_attr_create(&a) != dnnl_success)
		return NULL;
	dnnl_primitive_attr_set_scratchpad_mode(a, dnnl_scratchpad_mode_user);
	return a;
}

/* ---- activations ---------------------------------------------------- */

/*
 * The oneDNN eltwise algorithm for a unary op, with alpha and beta; 0 when
 * oneDNN has none that matches the op's definition. Left to the C kernels
 * because oneDNN treats NaN otherwise than PyTorch and the reference: exp
 * (exp(NaN) = inf), clip and binary max/min (NaN dropped).
 */
static int eltwise_alg(enum gn_op op, const struct gn_op_attrs *a,
		       dnnl_alg_kind_t *alg, float *alpha, float *beta)
{
	*alpha = 0;
	*beta = 0;
	switch (op) {
	case GN_OP_RELU: *alg = dnnl_eltwise_relu; return 1;
	case GN_OP_GELU:
		*alg = a->ni > 0 && a->i[0] ? dnnl_eltwise_gelu_tanh
					    : dnnl_eltwise_gelu_erf;
		return 1;
	case GN_OP_SILU:
		*alg = dnnl_eltwise_swish;
		*alpha = 1;
		return 1;
	case GN_OP_SIGMOID: *alg = dnnl_eltwise_logistic; return 1;
	case GN_OP_TANH: *alg = dnnl_eltwise_tanh; return 1;
	case GN_OP_HARDSWISH: *alg = dnnl_eltwise_hardswish; return 1;
	case GN_OP_LOG: *alg = dnnl_eltwise_log; return 1;
	case GN_OP_SQRT: *alg = dnnl_eltwise_sqrt; return 1;
	case GN_OP_ABS: *alg = dnnl_eltwise_abs; return 1;
	case GN_OP_NEG:
		*alg = dnnl_eltwise_linear;
		*alpha = -1;
		return 1;
	case GN_OP_RSQRT:
		*alg = dnnl_eltwise_pow;
		*alpha = 1;
		*beta = -0.5f;
		return 1;
	default: return 0;
	}
}

static int binary_alg(enum gn_op op, dnnl_alg_kind_t *alg)
{
	switch (op) {
	case GN_OP_ADD: *alg = dnnl_binary_add; return 1;
	case GN_OP_SUB: *alg = dnnl_binary_sub; return 1;
	case GN_OP_MUL: *alg = dnnl_binary_mul; return 1;
	case GN_OP_DIV: *alg = dnnl_binary_div; return 1;
	default: return 0;
	}
}

static int same_shape(const struct gn_tensor_meta *a,
		      const struct gn_tensor_meta *b)
{
	if (a->ndim != b->ndim)
		return 0;
	for (int i = 0; i < a->ndim; i++)
		if (a->shape[i] != b->shape[i])
			return 0;
	return 1;
}

/* ---- fusion ---------------------------------------------------------- */

/* Whether run_fused takes this head op with these operands. */
static int head_ok(const struct gn_fused_call *c)
{
	const struct gn_tensor_meta *a = c->in_meta[0], *b = c->in_meta[1];

	if (c->nin < 2 || gn_meta_numel(a) == 0 || gn_meta_numel(b) == 0)
		return 0;
	switch (c->op) {
	case GN_OP_CONV2D: return a->ndim == 4 && c->attrs->ni >= 9;
	case GN_OP_LINEAR: return a->ndim >= 1;
	case GN_OP_MATMUL:
		return a->ndim >= 2 && b->ndim >= 2 &&
		       a->ndim <= DNNL_MAX_NDIMS && b->ndim <= DNNL_MAX_NDIMS;
	default: return 0;
	}
}

static int step_is_act(const struct gn_fused_step *s)
{
	dnnl_alg_kind_t alg;
	float al, be;

	return s->nextra == 0 && eltwise_alg(s->op, s->attrs, &alg, &al, &be);
}

int gn_cpu_dnnl_fusable(const struct gn_fused_call *c,
			const struct gn_fused_step *s)
{
	int has_add = 0, has_act = 0;

	if (s->out_meta->dtype != GN_DTYPE_F32)
		return 0;
	for (int k = 0; k < c->nin; k++)
		if (c->in_meta[k]->dtype != GN_DTYPE_F32)
			return 0;
	for (int i = 0; i < c->nsteps; i++) {
		if (c->steps[i].op == GN_OP_ADD)
			has_add = 1;
		else if (c->steps[i].op != GN_OP_BATCHNORM)
			has_act = 1;
	}
	/* Every step keeps the head's shape: one buffer, one layout. */
	if (!head_ok(c) || !same_shape(s->out_meta, c->head_meta))
		return 0;
	if (s->op == GN_OP_BATCHNORM)
		/* Folded into the weights: only straight after a conv. */
		return c->op == GN_OP_CONV2D && c->nsteps == 0 &&
		       s->chain_pos == 0 && s->nextra == 4;
	if (s->op == GN_OP_ADD)
		/* A residual of the result's own shape, before activation. */
		return !has_add && !has_act && s->nextra == 1 &&
		       s->extra_meta[0]->dtype == GN_DTYPE_F32 &&
		       same_shape(s->extra_meta[0], s->out_meta);
	return step_is_act(s) && !has_act;
}

/* Post-ops for a chain's add and activation steps. */
static int chain_post_ops(const struct gn_fused_call *c, int sum_first,
			  dnnl_primitive_attr_t attr,
			  const dnnl_memory_desc_t *bin_md, int *nbin)
{
	dnnl_post_ops_t po;

	*nbin = 0;
	CK(dnnl_post_ops_create(&po), "post-ops");
	for (int i = 0; i < c->nsteps; i++) {
		const struct gn_fused_step *s = &c->steps[i];
		dnnl_alg_kind_t alg;
		float al, be;

		if (s->op == GN_OP_BATCHNORM)
			continue;
		if (s->op == GN_OP_ADD) {
			if (sum_first)
				dnnl_post_ops_append_sum(po, 1.0f);
			else {
				dnnl_post_ops_append_binary(po, dnnl_binary_add,
							    bin_md);
				(*nbin)++;
			}
			continue;
		}
		eltwise_alg(s->op, s->attrs, &alg, &al, &be);
		dnnl_post_ops_append_eltwise(po, 1.0f, alg, al, be);
	}
	dnnl_status_t st = dnnl_primitive_attr_set_post_ops(attr, po);

	dnnl_post_ops_destroy(po);
	if (st != dnnl_success)
		return dnnl_fail(st, "set post-ops");
	return 0;
}

static const struct gn_fused_step *chain_find(const struct gn_fused_call *c,
					      enum gn_op op)
{
	for (int i = 0; i < c->nsteps; i++)
		if (c->steps[i].op == op)
			return &c->steps[i];
	return NULL;
}

/* ---- weight cache ----------------------------------------------------- */

static struct wcache *wc_find(struct gn_cpu_dnnl *d, const void *w,
			      const void *const *bn, uint64_t mdh)
{
	for (uint32_t i = 0; i < d->nwc; i++) {
		struct wcache *e = &d->wc[i];

		if (e->w == w && e->md_hash == mdh &&
		    memcmp(e->bn, bn, sizeof(e->bn)) == 0) {
			e->last_use = ++d->tick;
			return e;
		}
	}
	return NULL;
}

static void wc_drop(struct gn_cpu_dnnl *d, uint32_t i)
{
	d->wc_bytes -= d->wc[i].bytes;
	free(d->wc[i].buf);
	d->wc[i] = d->wc[--d->nwc];
}

static struct wcache *wc_add(struct gn_cpu_dnnl *d, const void *w,
			     const void *const *bn, uint64_t mdh, size_t bytes)
{
	struct wcache *e;

	if (bytes > WCACHE_MAX_BYTES)
		return NULL; /* the caller prepares into scratch */
	while (d->nwc > 0 && (d->nwc == WCACHE_MAX ||
			      d->wc_bytes + bytes > WCACHE_MAX_BYTES)) {
		uint32_t old = 0;

		for (uint32_t i = 1; i < d->nwc; i++)
			if (d->wc[i].last_use < d->wc[old].last_use)
				old = i;
		wc_drop(d, old);
	}
	e = &d->wc[d->nwc];
	e->buf = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
	if (e->buf == NULL)
		return NULL;
	d->nwc++;
	d->wc_bytes += bytes;
	e->w = w;
	memcpy(e->bn, bn, sizeof(e->bn));
	e->md_hash = mdh;
	e->bytes = bytes;
	e->last_use = ++d->tick;
	return e;
}

void gn_cpu_dnnl_forget(struct gn_cpu_dnnl *d, const void *ptr)
{
	for (uint32_t i = 0; i < d->nwc;) {
		struct wcache *e = &d->wc[i];
		int hit = e->w == ptr;

		for (int k = 0; k < 4; k++)
			hit |= e->bn[k] == ptr;
		if (hit)
			wc_drop(d, i);
		else
			i++;
	}
}

/* ---- convolution ------------------------------------------------------ */

/*
 * Per-output-channel scale and bias that fold inference batchnorm into
 * the convolution: y = (conv(x) + b - mean) * g / sqrt(var + eps) + beta.
 */
static float *fold_bn(struct gn_cpu_dnnl *d, const struct gn_fused_step *bn,
		      const float *bias, int64_t o)
{
	const float *mean = bn->extra[0], *var = bn->extra[1];
	const float *g = bn->extra[2], *beta = bn->extra[3];
	float eps = bn->attrs->nf > 0 ? bn->attrs->f[0] : 1e-5f;

	if ((size_t)(2 * o) > d->fold_n) {
		float *f = realloc(d->fold, sizeof(float) * 2 * (size_t)o);

		if (f == NULL) {
			gn_error_set(-ENOMEM, "cpu: no memory to fold "
					      "batchnorm");
			return NULL;
		}
		d->fold = f;
		d->fold_n = (size_t)(2 * o);
	}
	for (int64_t c = 0; c < o; c++) {
		float s = g[c] / sqrtf(var[c] + eps);

		d->fold[c] = s;
		d->fold[o + c] =
			((bias ? bias[c] : 0.0f) - mean[c]) * s + beta[c];
	}
	return d->fold;
}

static int conv_build(struct gn_cpu_dnnl *d, const struct gn_fused_call *c,
		      const struct gn_fused_step *bn, int has_bias,
		      struct prim *p)
{
	const struct gn_tensor_meta *x = c->in_meta[0], *w = c->in_meta[1];
	const int64_t *ia = c->attrs->i;
	int64_t g = ia[8], o = w->shape[0];
	dnnl_memory_desc_t src_any, wei_any, dst_any, bias_md;
	dnnl_convolution_desc_t cd;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_primitive_attr_t attr;
	dnnl_dims_t st = {ia[0], ia[1]}, dil = {ia[6] - 1, ia[7] - 1},
		    pl = {ia[2], ia[3]}, pr = {ia[4], ia[5]};
	int64_t wd[5];
	int nbin, rc;

	memset(p, 0, offsetof(struct prim, used));
	md_plain(&p->src_plain, 4, x->shape);
	md_plain(&p->dst_plain, 4, c->out_meta->shape);
	if (g == 1) {
		md_plain(&p->wei_plain, 4, w->shape);
		md_any(&wei_any, 4, w->shape);
	} else {
		wd[0] = g;
		wd[1] = o / g;
		memcpy(&wd[2], &w->shape[1], 3 * sizeof(int64_t));
		md_plain(&p->wei_plain, 5, wd);
		md_any(&wei_any, 5, wd);
	}
	md_any(&src_any, 4, x->shape);
	md_any(&dst_any, 4, c->out_meta->shape);
	md_plain(&bias_md, 1, &o);
	p->fold_bn = bn != NULL;
	p->sum = chain_find(c, GN_OP_ADD) != NULL;
	CKD(dnnl_dilated_convolution_forward_desc_init(
		    &cd, dnnl_forward_inference, dnnl_convolution_direct,
		    &src_any, &wei_any, has_bias || bn ? &bias_md : NULL,
		    &dst_any, st, dil, pl, pr),
	    "convolution descriptor");
	attr = new_attr();
	if (attr == NULL)
		return gn_error_set(-ENOMEM, "oneDNN: no attributes");
	rc = chain_post_ops(c, 1, attr, NULL, &nbin);
	if (rc == 0)
		rc = make_prim(d, &cd, attr, &p->main, &pd);
	dnnl_primitive_attr_destroy(attr);
	if (rc != 0)
		return rc;
	p->src_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
	p->wei_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
	p->dst_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
	p->bias_md = bias_md;
	lib_scratch_for(pd, &p->scratch_bytes);
	dnnl_primitive_desc_destroy(pd);
	if (!dnnl_memory_desc_equal(&p->src_md, &p->src_plain))
		rc = reorder_prim(d, &p->src_plain, &p->src_md, NULL,
				  &p->src_r);
	if (rc == 0 && !dnnl_memory_desc_equal(&p->dst_md, &p->dst_plain)) {
		rc = reorder_prim(d, &p->dst_md, &p->dst_plain, NULL,
				  &p->dst_r);
		if (rc == 0 && p->sum)
			rc = reorder_prim(d, &p->dst_plain, &p->dst_md, NULL,
					  &p->res_r);
	}
	if (rc == 0 && !dnnl_memory_desc_equal(&p->wei_md, &p->wei_plain))
		rc = reorder_prim(d, &p->wei_plain, &p->wei_md, NULL,
				  &p->wei_r);
	if (rc == 0)
		p->used = 1;
	return rc;
}

/*
 * The weights the convolution reads, written to `dst` (wei_md): scaled
 * per output channel by `scales` when batchnorm is folded in, then
 * reordered to the primitive's layout.
 */
static int wei_prepare(struct gn_cpu_dnnl *d, struct prim *p, const float *w,
		       void *dst, const float *scales, int64_t o)
{
	size_t plain = dnnl_memory_desc_get_size(&p->wei_plain);
	size_t per = plain / sizeof(float) / (size_t)o;

	if (scales != NULL) {
		float *t = p->wei_r ? scratch(d, S_AUX, plain) : dst;

		if (t == NULL)
			return -ENOMEM;
		for (int64_t oc = 0; oc < o; oc++)
			for (size_t j = 0; j < per; j++)
				t[(size_t)oc * per + j] =
					w[(size_t)oc * per + j] * scales[oc];
		w = t;
	}
	if (p->wei_r != NULL)
		return run_reorder(d, p->wei_r, &p->wei_plain, w, &p->wei_md,
				   dst);
	if (w != dst)
		memcpy(dst, w, plain);
	return 0;
}

static int conv_run(struct gn_cpu_dnnl *d, const struct gn_fused_call *c)
{
	const struct gn_fused_step *bn = chain_find(c, GN_OP_BATCHNORM);
	const struct gn_fused_step *add = chain_find(c, GN_OP_ADD);
	const struct gn_tensor_meta *w = c->in_meta[1];
	const float *bias = c->nin > 2 ? c->in[2] : NULL;
	int64_t o = w->shape[0];
	const void *src = c->in[0], *wei = c->in[1], *bptr = bias;
	const float *scales = NULL;
	void *dst = c->out;
	struct prim tmp, *p;
	struct key k = {.n = 0};
	dnnl_memory_t ms = NULL, mw = NULL, mb = NULL, md = NULL, msp = NULL;
	int rc = 0;

	key_add(&k, GN_OP_CONV2D);
	key_meta(&k, c->in_meta[0]);
	key_meta(&k, w);
	key_add(&k, c->nin);
	key_attrs(&k, c->attrs);
	for (int i = 0; i < c->nsteps; i++) {
		key_add(&k, c->steps[i].op);
		key_attrs(&k, c->steps[i].attrs);
	}
	p = prim_slot(d, &k);
	if (p == NULL) {
		p = &tmp;
		p->used = 0;
	}
	if (!p->used) {
		rc = conv_build(d, c, bn, bias != NULL, p);
		if (rc != 0) {
			prim_clear(p);
			return rc;
		}
	}
	if (bn != NULL) {
		float *f = fold_bn(d, bn, bias, o);

		if (f == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		scales = f;
		bptr = f + o;
	}
	/* Weights: cached when stable, else prepared into scratch. */
	if (p->wei_r != NULL || bn != NULL) {
		const void *bnp[4] = {0};
		uint64_t mdh = XXH3_64bits(&p->wei_md, sizeof(p->wei_md));
		int stable = (c->stable_mask & 2) != 0;
		struct wcache *e = NULL;

		if (bn != NULL) {
			for (int i = 0; i < 4; i++)
				bnp[i] = bn->extra[i];
			stable &= (bn->extra_stable_mask & 0xf) == 0xf;
		}
		if (stable)
			e = wc_find(d, wei, bnp, mdh);
		if (e == NULL) {
			size_t sz = dnnl_memory_desc_get_size(&p->wei_md);
			void *buf;

			/* Too big or no memory to cache: scratch. */
			if (stable)
				e = wc_add(d, wei, bnp, mdh, sz);
			buf = e ? e->buf : scratch(d, S_WEI, sz);
			if (buf == NULL) {
				rc = -ENOMEM;
				goto out;
			}
			rc = wei_prepare(d, p, wei, buf, scales, o);
			if (rc != 0) {
				if (e != NULL)
					wc_drop(d, (uint32_t)(e - d->wc));
				goto out;
			}
			wei = buf;
		} else {
			wei = e->buf;
		}
	}
	if (p->src_r != NULL) {
		void *buf = scratch(d, S_SRC,
				    dnnl_memory_desc_get_size(&p->src_md));

		if (buf == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		rc = run_reorder(d, p->src_r, &p->src_plain, src, &p->src_md,
				 buf);
		if (rc != 0)
			goto out;
		src = buf;
	}
	if (p->dst_r != NULL) {
		dst = scratch(d, S_DST, dnnl_memory_desc_get_size(&p->dst_md));
		if (dst == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		if (add != NULL)
			rc = run_reorder(d, p->res_r, &p->dst_plain,
					 add->extra[0], &p->dst_md, dst);
	} else if (add != NULL) {
		memcpy(dst, add->extra[0], gn_meta_nbytes(c->out_meta));
	}
	if (rc != 0)
		goto out;
	ms = mem(d, &p->src_md, src);
	mw = mem(d, &p->wei_md, wei);
	md = mem(d, &p->dst_md, dst);
	if (bptr != NULL)
		mb = mem(d, &p->bias_md, bptr);
	rc = bind_lib_scratch(d, p->scratch_bytes, &msp);
	if (rc == 0 && ms && mw && md && (bptr == NULL || mb)) {
		dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, ms},
					{DNNL_ARG_WEIGHTS, mw},
					{DNNL_ARG_DST, md},
					{DNNL_ARG_SCRATCHPAD, msp},
					{DNNL_ARG_BIAS, mb}};

		rc = exec(d, p->main, bptr ? 5 : 4, a);
	} else if (rc == 0) {
		rc = -ENOMEM;
	}
	if (rc == 0 && p->dst_r != NULL)
		rc = run_reorder(d, p->dst_r, &p->dst_md, dst, &p->dst_plain,
				 c->out);
out:
	if (ms)
		dnnl_memory_destroy(ms);
	if (mw)
		dnnl_memory_destroy(mw);
	if (mb)
		dnnl_memory_destroy(mb);
	if (md)
		dnnl_memory_destroy(md);
	if (msp)
		dnnl_memory_destroy(msp);
	if (p == &tmp)
		prim_clear(p);
	return rc;
}

/* ---- matmul and linear --------------------------------------------------- */

/*
 * dst[b..., M, N] = a[b..., M, K] x b[b..., K, N] (+ bias[N]) with the
 * chain's post-ops; `a` and `b` are described by dims and strides (so a
 * transposed operand costs nothing); batch dims of size 1 broadcast.
 */
struct mm_desc {
	int nd;
	int64_t ad[DNNL_MAX_NDIMS], as[DNNL_MAX_NDIMS];
	int64_t bd[DNNL_MAX_NDIMS], bs[DNNL_MAX_NDIMS];
	int64_t od[DNNL_MAX_NDIMS];
	int has_bias;
	float scale; /* 1: none */
};

static int mm_build(struct gn_cpu_dnnl *d, const struct mm_desc *m,
		    const struct gn_fused_call *c, struct prim *p)
{
	dnnl_memory_desc_t bias_md;
	dnnl_matmul_desc_t md;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_primitive_attr_t attr;
	dnnl_dims_t dims, strides, bdims;
	int nbin = 0, rc;

	memset(p, 0, offsetof(struct prim, used));
	for (int i = 0; i < m->nd; i++) {
		dims[i] = m->ad[i];
		strides[i] = m->as[i];
	}
	CKD(dnnl_memory_desc_init_by_strides(&p->src_md, m->nd, dims, dnnl_f32,
					     strides),
	    "matmul source");
	for (int i = 0; i < m->nd; i++) {
		dims[i] = m->bd[i];
		strides[i] = m->bs[i];
	}
	CKD(dnnl_memory_desc_init_by_strides(&p->wei_md, m->nd, dims, dnnl_f32,
					     strides),
	    "matmul weights");
	md_plain(&p->dst_md, m->nd, m->od);
	for (int i = 0; i < m->nd; i++)
		bdims[i] = 1;
	bdims[m->nd - 1] = m->od[m->nd - 1];
	dnnl_memory_desc_init_by_tag(&bias_md, m->nd, bdims, dnnl_f32,
				     m->nd == 2	  ? dnnl_ab
				     : m->nd == 3 ? dnnl_abc
				     : m->nd == 4 ? dnnl_abcd
						  : dnnl_abcde);
	p->bias_md = bias_md;
	CKD(dnnl_matmul_desc_init(&md, &p->src_md, &p->wei_md,
				  m->has_bias ? &bias_md : NULL, &p->dst_md),
	    "matmul descriptor");
	attr = new_attr();
	if (attr == NULL)
		return gn_error_set(-ENOMEM, "oneDNN: no attributes");
	if (m->scale != 1.0f)
		dnnl_primitive_attr_set_output_scales(attr, 1, 0, &m->scale);
	rc = c ? chain_post_ops(c, 0, attr, &p->dst_md, &nbin) : 0;
	p->nbin = nbin;
	if (rc == 0)
		rc = make_prim(d, &md, attr, &p->main, &pd);
	dnnl_primitive_attr_destroy(attr);
	if (rc != 0)
		return rc;
	lib_scratch_for(pd, &p->scratch_bytes);
	dnnl_primitive_desc_destroy(pd);
	p->used = 1;
	return 0;
}

static void key_mm(struct key *k, const struct mm_desc *m)
{
	key_add(k, m->nd);
	for (int i = 0; i < m->nd; i++) {
		key_add(k, m->ad[i]);
		key_add(k, m->as[i]);
		key_add(k, m->bd[i]);
		key_add(k, m->bs[i]);
	}
	key_add(k, m->has_bias);
	uint32_t u;

	memcpy(&u, &m->scale, sizeof(u));
	key_add(k, u);
}

static int mm_exec(struct gn_cpu_dnnl *d, const struct mm_desc *m,
		   const struct gn_fused_call *c, const void *a, const void *b,
		   const void *bias, void *out)
{
	struct prim tmp, *p;
	struct key k = {.n = 0};
	dnnl_memory_t ma, mb, mo, mbias = NULL, msp = NULL, mres = NULL;
	const struct gn_fused_step *add = c ? chain_find(c, GN_OP_ADD) : NULL;
	int rc;

	key_add(&k, GN_OP_MATMUL);
	key_mm(&k, m);
	for (int i = 0; c && i < c->nsteps; i++) {
		key_add(&k, c->steps[i].op);
		key_attrs(&k, c->steps[i].attrs);
	}
	p = prim_slot(d, &k);
	if (p == NULL) {
		p = &tmp;
		p->used = 0;
	}
	if (!p->used) {
		rc = mm_build(d, m, c, p);
		if (rc != 0) {
			prim_clear(p);
			return rc;
		}
	}
	ma = mem(d, &p->src_md, a);
	mb = mem(d, &p->wei_md, b);
	mo = mem(d, &p->dst_md, out);
	if (bias != NULL)
		mbias = mem(d, &p->bias_md, bias);
	if (add != NULL)
		mres = mem(d, &p->dst_md, add->extra[0]);
	rc = bind_lib_scratch(d, p->scratch_bytes, &msp);
	if (rc == 0 && ma && mb && mo && (!bias || mbias) && (!add || mres)) {
		dnnl_exec_arg_t args[6] = {{DNNL_ARG_SRC, ma},
					   {DNNL_ARG_WEIGHTS, mb},
					   {DNNL_ARG_DST, mo},
					   {DNNL_ARG_SCRATCHPAD, msp}};
		int n = 4, pos = 0;

		if (bias != NULL)
			args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mbias};
		if (add != NULL) {
			/* Post-op index of the binary add in the chain. */
			for (int i = 0; i < c->nsteps; i++) {
				if (c->steps[i].op == GN_OP_ADD)
					break;
				pos++;
			}
			args[n++] = (dnnl_exec_arg_t){
				DNNL_ARG_ATTR_MULTIPLE_POST_OP(pos) |
					DNNL_ARG_SRC_1,
				mres};
		}
		rc = exec(d, p->main, n, args);
	} else if (rc == 0) {
		rc = -ENOMEM;
	}
	dnnl_memory_t all[] = {ma, mb, mo, mbias, msp, mres};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (all[i] != NULL)
			dnnl_memory_destroy(all[i]);
	if (p == &tmp)
		prim_clear(p);
	return rc;
}

static void row_major(int nd, const int64_t *dims, int64_t *st)
{
	int64_t s = 1;

	for (int i = nd - 1; i >= 0; i--) {
		st[i] = s;
		s *= dims[i];
	}
}

/* linear: x [..., K], w [N, K], bias [N]: a 2-D matmul with w transposed. */
static int linear_run(struct gn_cpu_dnnl *d, const struct gn_fused_call *c)
{
	const struct gn_tensor_meta *x = c->in_meta[0], *w = c->in_meta[1];
	int64_t K = x->shape[x->ndim - 1], N = w->shape[0];
	struct mm_desc m = {.nd = 2, .scale = 1.0f};

	m.ad[0] = K ? (int64_t)(gn_meta_numel(x) / (uint64_t)K) : 0;
	m.ad[1] = K;
	m.as[0] = K;
	m.as[1] = 1;
	m.bd[0] = K;
	m.bd[1] = N;
	m.bs[0] = 1;
	m.bs[1] = K;
	m.od[0] = m.ad[0];
	m.od[1] = N;
	m.has_bias = c->nin > 2;
	if (m.ad[0] == 0 || K == 0)
		return GN_CPU_DNNL_DECLINE;
	return mm_exec(d, &m, c, c->in[0], c->in[1],
		       c->nin > 2 ? c->in[2] : NULL, c->out);
}

/* matmul of two operands of 2 or more dims, batch dims broadcasting. */
static int matmul_run(struct gn_cpu_dnnl *d, const struct gn_fused_call *c)
{
	const struct gn_tensor_meta *a = c->in_meta[0], *b = c->in_meta[1];
	const struct gn_tensor_meta *o = c->out_meta;
	struct mm_desc m = {.scale = 1.0f};
	int nd = o->ndim;

	if (a->ndim < 2 || b->ndim < 2 || nd > DNNL_MAX_NDIMS ||
	    gn_meta_numel(a) == 0 || gn_meta_numel(b) == 0)
		return GN_CPU_DNNL_DECLINE;
	m.nd = nd;
	for (int i = 0; i < nd; i++) {
		int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);

		m.ad[i] = ia >= 0 ? a->shape[ia] : 1;
		m.bd[i] = ib >= 0 ? b->shape[ib] : 1;
		m.od[i] = o->shape[i];
	}
	row_major(nd, m.ad, m.as);
	row_major(nd, m.bd, m.bs);
	return mm_exec(d, &m, c, c->in[0], c->in[1], NULL, c->out);
}

/* ---- attention ------------------------------------------------------------
 */

static int simple_exec(struct gn_cpu_dnnl *d, struct prim *p, int n,
		       dnnl_exec_arg_t *args);

static int softmax_rows(struct gn_cpu_dnnl *d, float *x, int64_t rows,
			int64_t cols, int logsm);

/*
 * softmax(q k^T * scale) v per batch, with the causal mask applied to the
 * scores; masks given as operands go to the plain C kernel.
 */
static int sdpa_run(struct gn_cpu_dnnl *d, const struct cpu_call *c)
{
	const struct gn_tensor_meta *q = c->im[0], *k = c->im[1], *v = c->im[2];
	int nd = q->ndim;
	int64_t L = q->shape[nd - 2], E = q->shape[nd - 1];
	int64_t S = k->shape[nd - 2], Ev = v->shape[nd - 1], B = 1;
	float scale = c->a->f[0] > 0 ? c->a->f[0] : 1.0f / sqrtf((float)E);
	struct mm_desc m1 = {.nd = 3, .scale = scale},
		       m2 = {.nd = 3, .scale = 1.0f};
	float *sc;
	int rc;

	if (c->nin > 3 || k->ndim != nd || v->ndim != nd || L == 0 || S == 0 ||
	    E == 0)
		return GN_CPU_DNNL_DECLINE;
	for (int i = 0; i < nd - 2; i++) {
		if (k->shape[i] != q->shape[i] || v->shape[i] != q->shape[i])
			return GN_CPU_DNNL_DECLINE;
		B *= q->shape[i];
	}
	sc = scratch(d, S_AUX, sizeof(float) * (size_t)(B * L * S));
	if (sc == NULL)
		return -ENOMEM;
	/* scores[b, L, S] = q[b, L, E] x k[b, S, E]^T */
	m1.ad[0] = B, m1.ad[1] = L, m1.ad[2] = E;
	row_major(3, m1.ad, m1.as);
	m1.bd[0] = B, m1.bd[1] = E, m1.bd[2] = S;
	m1.bs[0] = S * E, m1.bs[1] = 1, m1.bs[2] = E;
	m1.od[0] = B, m1.od[1] = L, m1.od[2] = S;
	rc = mm_exec(d, &m1, NULL, c->in[0], c->in[1], NULL, sc);
	if (rc != 0)
		return rc;
	if (c->a->ni > 0 && c->a->i[0])
		for (int64_t b = 0; b < B; b++)
			for (int64_t i = 0; i < L; i++)
				for (int64_t j = i + 1; j < S; j++)
					sc[(b * L + i) * S + j] = -INFINITY;
	rc = softmax_rows(d, sc, B * L, S, 0);
	if (rc != 0)
		return rc;
	m2.ad[0] = B, m2.ad[1] = L, m2.ad[2] = S;
	row_major(3, m2.ad, m2.as);
	m2.bd[0] = B, m2.bd[1] = S, m2.bd[2] = Ev;
	row_major(3, m2.bd, m2.bs);
	m2.od[0] = B, m2.od[1] = L, m2.od[2] = Ev;
	return mm_exec(d, &m2, NULL, sc, c->in[2], NULL, c->out);
}

/* ---- single-primitive ops ---------------------------------------------- */

static int simple_exec(struct gn_cpu_dnnl *d, struct prim *p, int n,
		       dnnl_exec_arg_t *args)
{
	dnnl_memory_t msp = NULL;
	int rc = bind_lib_scratch(d, p->scratch_bytes, &msp);

	if (rc == 0) {
		args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, msp};
		rc = exec(d, p->main, n, args);
	}
	if (msp)
		dnnl_memory_destroy(msp);
	for (int i = 0; i < n; i++)
		if (args[i].memory != NULL && args[i].memory != msp)
			dnnl_memory_destroy(args[i].memory);
	return rc;
}

/* Find or build the primitive for `k` from `desc`. */
static struct prim *simple_prim(struct gn_cpu_dnnl *d, const struct key *k,
				const_dnnl_op_desc_t desc, struct prim *tmp,
				int *rc)
{
	struct prim *p = prim_slot(d, k);
	dnnl_primitive_desc_t pd = NULL;
	dnnl_primitive_attr_t attr;

	*rc = 0;
	if (p == NULL) {
		p = tmp;
		p->used = 0;
	}
	if (p->used)
		return p;
	memset(p, 0, offsetof(struct prim, used));
	attr = new_attr();
	if (attr == NULL) {
		*rc = gn_error_set(-ENOMEM, "oneDNN: no attributes");
		return NULL;
	}
	*rc = make_prim(d, desc, attr, &p->main, &pd);
	dnnl_primitive_attr_destroy(attr);
	if (*rc != 0)
		return NULL;
	lib_scratch_for(pd, &p->scratch_bytes);
	dnnl_primitive_desc_destroy(pd);
	p->used = 1;
	return p;
}

/* One operand of a single-primitive op: its argument, layout and bytes. */
struct sarg {
	int arg;
	const dnnl_memory_desc_t *md;
	const void *ptr;
};

/*
 * Run the primitive for `desc`, found or built under key `k`, on the
 * operands `sa`: what every single-primitive op below ends with.
 */
static int simple_run(struct gn_cpu_dnnl *d, const struct key *k,
		      const_dnnl_op_desc_t desc, const struct sarg *sa, int n)
{
	dnnl_exec_arg_t a[8];
	struct prim tmp, *p;
	int rc;

	p = simple_prim(d, k, desc, &tmp, &rc);
	if (p == NULL)
		return rc;
	for (int i = 0; i < n; i++) {
		a[i].arg = sa[i].arg;
		a[i].memory = mem(d, sa[i].md, sa[i].ptr);
		if (a[i].memory == NULL) {
			while (i-- > 0)
				dnnl_memory_destroy(a[i].memory);
			rc = -ENOMEM;
			goto out;
		}
	}
	rc = simple_exec(d, p, n, a);
out:
	if (p == &tmp)
		prim_clear(p);
	return rc;
}

static int softmax_rows(struct gn_cpu_dnnl *d, float *x, int64_t rows,
			int64_t cols, int logsm)
{
	int64_t dims[2] = {rows, cols};
	dnnl_memory_desc_t md;
	dnnl_softmax_v2_desc_t sd;
	struct key k = {.n = 0};

	md_plain(&md, 2, dims);
	CKD(dnnl_softmax_v2_forward_desc_init(&sd, dnnl_forward_inference,
					      logsm ? dnnl_softmax_log
						    : dnnl_softmax_accurate,
					      &md, &md, 1),
	    "softmax descriptor");
	key_add(&k, GN_OP_SOFTMAX);
	key_add(&k, logsm);
	key_add(&k, rows);
	key_add(&k, cols);
	const struct sarg sa[] = {
		{DNNL_ARG_SRC, &md, x},
		{DNNL_ARG_DST, &md, x},
	};

	return simple_run(d, &k, &sd, sa, (int)(sizeof(sa) / sizeof(sa[0])));
}

static int softmax_run(struct gn_cpu_dnnl *d, const struct cpu_call *c)
{
	const struct gn_tensor_meta *x = c->im[0];
	int axis = (int)c->a->i[0], nd = x->ndim;
	int64_t dims[3] = {1, x->shape[axis < 0 ? axis + nd : axis], 1};
	dnnl_memory_desc_t md;
	dnnl_softmax_v2_desc_t sd;
	struct key k = {.n = 0};

	if (axis < 0)
		axis += nd;
	for (int i = 0; i < axis; i++)
		dims[0] *= x->shape[i];
	for (int i = axis + 1; i < nd; i++)
		dims[2] *= x->shape[i];
	md_plain(&md, 3, dims);
	CKD(dnnl_softmax_v2_forward_desc_init(&sd, dnnl_forward_inference,
					      c->op == GN_OP_LOG_SOFTMAX
						      ? dnnl_softmax_log
						      : dnnl_softmax_accurate,
					      &md, &md, 1),
	    "softmax descriptor");
	key_add(&k, c->op);
	key_add(&k, dims[0]);
	key_add(&k, dims[1]);
	key_add(&k, dims[2]);
	const struct sarg sa[] = {
		{DNNL_ARG_SRC, &md, c->in[0]},
		{DNNL_ARG_DST, &md, c->out},
	};

	return simple_run(d, &k, &sd, sa, (int)(sizeof(sa) / sizeof(sa[0])));
}

static int pool_run(struct gn_cpu_dnnl *d, const struct cpu_call *c)
{
	const struct gn_tensor_meta *x = c->im[0], *o = c->om;
	const int64_t *ia = c->a->i;
	dnnl_memory_desc_t sm, dm;
	dnnl_pooling_v2_desc_t pd;
	dnnl_dims_t kern, st, dil = {0, 0}, pl, pr;
	dnnl_alg_kind_t alg;
	struct key k = {.n = 0};

	if (x->ndim != 4)
		return GN_CPU_DNNL_DECLINE;
	if (c->op == GN_OP_GLOBAL_AVGPOOL) {
		kern[0] = x->shape[2], kern[1] = x->shape[3];
		st[0] = st[1] = 1;
		pl[0] = pl[1] = pr[0] = pr[1] = 0;
		alg = dnnl_pooling_avg_exclude_padding;
	} else {
		if (c->a->ni < 9 || ia[8] /* ceil_mode: torch's edges */)
			return GN_CPU_DNNL_DECLINE;
		kern[0] = ia[0], kern[1] = ia[1];
		st[0] = ia[2], st[1] = ia[3];
		pl[0] = ia[4], pl[1] = ia[5], pr[0] = ia[6], pr[1] = ia[7];
		if (c->op == GN_OP_MAXPOOL2D)
			alg = dnnl_pooling_max;
		else
			alg = c->a->ni > 9 && ia[9]
				      ? dnnl_pooling_avg_include_padding
				      : dnnl_pooling_avg_exclude_padding;
	}
	if (kern[0] == 0 || kern[1] == 0)
		return GN_CPU_DNNL_DECLINE;
	md_plain(&sm, 4, x->shape);
	md_plain(&dm, 4, o->shape);
	CKD(dnnl_pooling_v2_forward_desc_init(&pd, dnnl_forward_inference, alg,
					      &sm, &dm, st, kern, dil, pl, pr),
	    "pooling descriptor");
	key_add(&k, c->op);
	key_meta(&k, x);
	key_attrs(&k, c->a);
	const struct sarg sa[] = {
		{DNNL_ARG_SRC, &sm, c->in[0]},
		{DNNL_ARG_DST, &dm, c->out},
	};

	return simple_run(d, &k, &pd, sa, (int)(sizeof(sa) / sizeof(sa[0])));
}

/* Inference batchnorm over x [N, C, ...] with per-channel parameters. */
static int bnorm_run(struct gn_cpu_dnnl *d, const struct cpu_call *c)
{
	const struct gn_tensor_meta *x = c->im[0];
	int64_t dims[5], C = x->shape[1];
	dnnl_memory_desc_t xm, cm;
	dnnl_batch_normalization_desc_t bd;
	float eps = c->a->nf > 0 ? c->a->f[0] : 1e-5f;
	struct key k = {.n = 0};
	int nd = x->ndim;

	if (nd < 2 || nd > 5)
		return GN_CPU_DNNL_DECLINE;
	for (int i = 0; i < nd; i++)
		dims[i] = x->shape[i];
	md_plain(&xm, nd, dims);
	md_plain(&cm, 1, &C);
	CKD(dnnl_batch_normalization_forward_desc_init(
		    &bd, dnnl_forward_inference, &xm, eps,
		    dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift),
	    "batchnorm descriptor");
	key_add(&k, c->op);
	key_meta(&k, x);
	key_attrs(&k, c->a);
	const struct sarg sa[] = {
		{DNNL_ARG_SRC, &xm, c->in[0]},
		{DNNL_ARG_MEAN, &cm, c->in[1]},
		{DNNL_ARG_VARIANCE, &cm, c->in[2]},
		{DNNL_ARG_SCALE, &cm, c->in[3]},
		{DNNL_ARG_SHIFT, &cm, c->in[4]},
		{DNNL_ARG_DST, &xm, c->out},
	};

	return simple_run(d, &k, &bd, sa, (int)(sizeof(sa) / sizeof(sa[0])));
}

/* Layer norm over the trailing i[0] dims, collapsed into one. */
static int lnorm_run(struct gn_cpu_dnnl *d, const struct cpu_call *c)
{
	const struct gn_tensor_meta *x = c->im[0];
	int64_t n = c->a->ni > 0 ? c->a->i[0] : 1, dims[2] = {1, 1};
	dnnl_memory_desc_t xm, gm;
	dnnl_layer_normalization_desc_t ld;
	float eps = c->a->nf > 0 ? c->a->f[0] : 1e-5f;
	struct key k = {.n = 0};

	if (n < 1 || n > x->ndim || c->nin != 3)
		return GN_CPU_DNNL_DECLINE;
	for (int i = 0; i < x->ndim; i++)
		dims[i < x->ndim - n ? 0 : 1] *= x->shape[i];
	md_plain(&xm, 2, dims);
	md_plain(&gm, 1, &dims[1]);
	CKD(dnnl_layer_normalization_forward_desc_init(
		    &ld, dnnl_forward_inference, &xm, NULL, eps,
		    dnnl_use_scale | dnnl_use_shift),
	    "layernorm descriptor");
	key_add(&k, c->op);
	key_add(&k, dims[0]);
	key_add(&k, dims[1]);
	key_attrs(&k, c->a);
	const struct sarg sa[] = {
		{DNNL_ARG_SRC, &xm, c->in[0]},
		{DNNL_ARG_SCALE, &gm, c->in[1]},
		{DNNL_ARG_SHIFT, &gm, c->in[2]},
		{DNNL_ARG_DST, &xm, c->out},
	};

	return simple_run(d, &k, &ld, sa, (int)(sizeof(sa) / sizeof(sa[0])));
}

static int eltwise_run(struct gn_cpu_dnnl *d, const struct cpu_call *c)
{
	int64_t n = (int64_t)gn_meta_numel(c->om);
	dnnl_memory_desc_t md;
	dnnl_eltwise_desc_t ed;
	dnnl_alg_kind_t alg;
	float al, be;
	struct key k = {.n = 0};

	if (!eltwise_alg(c->op, c->a, &alg, &al, &be))
		return GN_CPU_DNNL_DECLINE;
	md_plain(&md, 1, &n);
	CKD(dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_inference, alg,
					   &md, al, be),
	    "eltwise descriptor");
	key_add(&k, c->op);
	key_add(&k, n);
	key_attrs(&k, c->a);
	const struct sarg sa[] = {
		{DNNL_ARG_SRC, &md, c->in[0]},
		{DNNL_ARG_DST, &md, c->out},
	};

	return simple_run(d, &k, &ed, sa, (int)(sizeof(sa) / sizeof(sa[0])));
}

/*
 * a (op) b where the result has a's shape and b broadcasts into it (or,
 * for commutative ops, the other way round).
 */
static int binary_run(struct gn_cpu_dnnl *d, const struct cpu_call *c)
{
	const struct gn_tensor_meta *a = c->im[0], *b = c->im[1], *o = c->om;
	const void *pa = c->in[0], *pb = c->in[1];
	int64_t ad[DNNL_MAX_NDIMS], bd[DNNL_MAX_NDIMS];
	dnnl_memory_desc_t am, bm, om;
	dnnl_binary_desc_t bdsc;
	dnnl_alg_kind_t alg;
	struct key k = {.n = 0};
	int nd = o->ndim;

	if (!binary_alg(c->op, &alg) || nd < 1 || nd > 6)
		return GN_CPU_DNNL_DECLINE;
	if (!same_shape(a, o)) {
		if (!same_shape(b, o) ||
		    (c->op != GN_OP_ADD && c->op != GN_OP_MUL &&
		     c->op != GN_OP_MAXIMUM && c->op != GN_OP_MINIMUM))
			return GN_CPU_DNNL_DECLINE;
		const struct gn_tensor_meta *t = a;
		a = b, b = t;
		pa = c->in[1], pb = c->in[0];
	}
	for (int i = 0; i < nd; i++) {
		int ib = i - (nd - b->ndim);

		ad[i] = a->shape[i];
		bd[i] = ib >= 0 ? b->shape[ib] : 1;
	}
	md_plain(&am, nd, ad);
	md_plain(&bm, nd, bd);
	md_plain(&om, nd, ad);
	CKD(dnnl_binary_desc_init(&bdsc, alg, &am, &bm, &om),
	    "binary descriptor");
	key_add(&k, c->op);
	key_add(&k, nd);
	for (int i = 0; i < nd; i++) {
		key_add(&k, ad[i]);
		key_add(&k, bd[i]);
	}
	const struct sarg sa[] = {
		{DNNL_ARG_SRC_0, &am, pa},
		{DNNL_ARG_SRC_1, &bm, pb},
		{DNNL_ARG_DST, &om, c->out},
	};

	return simple_run(d, &k, &bdsc, sa, (int)(sizeof(sa) / sizeof(sa[0])));
}

/* ---- entry points ------------------------------------------------------ */

int gn_cpu_dnnl_run_fused(struct gn_cpu_dnnl *d, const struct gn_fused_call *c)
{
	if (d == NULL || !head_ok(c))
		return GN_CPU_DNNL_DECLINE;
	switch (c->op) {
	case GN_OP_CONV2D: return conv_run(d, c);
	case GN_OP_LINEAR: return linear_run(d, c);
	case GN_OP_MATMUL: return matmul_run(d, c);
	default: return GN_CPU_DNNL_DECLINE;
	}
}

int gn_cpu_dnnl_run(struct gn_cpu_dnnl *d, const struct cpu_call *c,
		    uint32_t stable_mask)
{
	if (d == NULL || !all_f32(c))
		return GN_CPU_DNNL_DECLINE;
	switch (c->op) {
	case GN_OP_CONV2D:
	case GN_OP_LINEAR:
	case GN_OP_MATMUL: {
		struct gn_fused_call f = {
			.op = c->op,
			.attrs = c->a,
			.in_meta = c->im,
			.in = c->in,
			.nin = c->nin,
			.head_meta = c->om,
			.stable_mask = stable_mask,
			.out_meta = c->om,
			.out = c->out,
		};

		return gn_cpu_dnnl_run_fused(d, &f);
	}
	case GN_OP_SDPA: return sdpa_run(d, c);
	case GN_OP_SOFTMAX:
	case GN_OP_LOG_SOFTMAX: return softmax_run(d, c);
	case GN_OP_MAXPOOL2D:
	case GN_OP_AVGPOOL2D:
	case GN_OP_GLOBAL_AVGPOOL: return pool_run(d, c);
	case GN_OP_BATCHNORM: return bnorm_run(d, c);
	case GN_OP_LAYERNORM: return lnorm_run(d, c);
	default: break;
	}
	if (gn_op_kind(c->op) == GN_OP_KIND_UNARY)
		return eltwise_run(d, c);
	if (gn_op_kind(c->op) == GN_OP_KIND_BINARY && c->nin == 2)
		return binary_run(d, c);
	return GN_CPU_DNNL_DECLINE;
}

struct gn_cpu_dnnl *gn_cpu_dnnl_create(void)
{
	struct gn_cpu_dnnl *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	d->prims = calloc(PRIM_SLOTS, sizeof(*d->prims));
	if (d->prims == NULL ||
	    dnnl_engine_create(&d->eng, dnnl_cpu, 0) != dnnl_success ||
	    dnnl_stream_create(&d->strm, d->eng, dnnl_stream_default_flags) !=
		    dnnl_success) {
		gn_cpu_dnnl_destroy(d);
		return NULL;
	}
	return d;
}

void gn_cpu_dnnl_destroy(struct gn_cpu_dnnl *d)
{
	if (d == NULL)
		return;
	for (uint32_t i = 0; d->prims != NULL && i < PRIM_SLOTS; i++)
		if (d->prims[i].used)
			prim_clear(&d->prims[i]);
	while (d->nwc > 0)
		wc_drop(d, d->nwc - 1);
	for (int i = 0; i < S_NUM; i++)
		free(d->scratch[i]);
	free(d->fold);
	free(d->lib_scratch_buf);
	free(d->prims);
	if (d->strm)
		dnnl_stream_destroy(d->strm);
	if (d->eng)
		dnnl_engine_destroy(d->eng);
	free(d);
}
