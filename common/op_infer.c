/*
 * Shape and dtype rules of every op (docs/OPS.md). op.c has already
 * checked arity, attribute counts, that each operand is well formed, and
 * the first operand's dtype class.
 */
#include <errno.h>
#include <string.h>

#include "gn_error.h"
#include "op_internal.h"

static int is_float(enum gn_dtype d)
{
	return d == GN_DTYPE_F32 || d == GN_DTYPE_F16 || d == GN_DTYPE_BF16;
}

static int is_index(enum gn_dtype d)
{
	return d == GN_DTYPE_I64 || d == GN_DTYPE_I32;
}

/* Operands first..last must share operand `first`'s dtype. */
static int same_dtype(const struct infer_ctx *c, int first, int last)
{
	for (int i = first + 1; i <= last && i < c->nin; i++)
		if (c->in[i]->dtype != c->in[first]->dtype)
			return gn_infer_fail(c,
					     "operand %d is %s, expected %s "
					     "like operand %d",
					     i, gn_dtype_name(c->in[i]->dtype),
					     gn_dtype_name(c->in[first]->dtype),
					     first);
	return 0;
}

/* Broadcast `m` into `out` (numpy rules). */
static int broadcast_into(const struct infer_ctx *c, struct gn_tensor_meta *out,
			  const struct gn_tensor_meta *m)
{
	int nd = out->ndim > m->ndim ? out->ndim : m->ndim;
	int64_t shape[GN_MAX_DIMS];

	for (int i = 0; i < nd; i++) {
		int io = out->ndim - nd + i, im = m->ndim - nd + i;
		int64_t a = io >= 0 ? out->shape[io] : 1;
		int64_t b = im >= 0 ? m->shape[im] : 1;

		if (a != b && a != 1 && b != 1)
			return gn_infer_fail(c,
					     "shapes do not broadcast (dim %d: "
					     "%lld vs %lld)",
					     i, (long long)a, (long long)b);
		shape[i] = a == 1 ? b : a;
	}
	out->ndim = nd;
	memcpy(out->shape, shape, sizeof(int64_t) * (size_t)nd);
	return 0;
}

static int check_shape_attrs(const struct infer_ctx *c, const int64_t *dims,
			     uint32_t n, struct gn_tensor_meta *out)
{
	if (n > GN_MAX_DIMS)
		return gn_infer_fail(c, "%u dims, expected at most %d", n,
				     GN_MAX_DIMS);
	out->ndim = (int)n;
	for (uint32_t i = 0; i < n; i++) {
		if (dims[i] < 0)
			return gn_infer_fail(c, "dim %u is %lld, expected >= 0",
					     i, (long long)dims[i]);
		out->shape[i] = dims[i];
	}
	return gn_meta_check(out, c->name);
}

static int check_dtype_attr(const struct infer_ctx *c, int64_t v,
			    int need_float, enum gn_dtype *d)
{
	if (v <= GN_DTYPE_INVALID || v > GN_DTYPE_BOOL)
		return gn_infer_fail(c, "dtype attribute %lld is not a dtype",
				     (long long)v);
	*d = (enum gn_dtype)v;
	if (need_float && !is_float(*d))
		return gn_infer_fail(c, "dtype %s, expected a float dtype",
				     gn_dtype_name(*d));
	return 0;
}

int gn_infer_source(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	const struct gn_op_attrs *a = c->a;
	int is_rand = c->op == GN_OP_RAND_UNIFORM || c->op == GN_OP_RAND_NORMAL;
	uint32_t first = is_rand ? 2 : 1;
	int rc;

	if (a->ni < first)
		return gn_infer_fail(c,
				     "%u integer attributes, expected at "
				     "least %u",
				     a->ni, first);
	rc = check_dtype_attr(c, a->i[0], is_rand, &out->dtype);
	if (rc != 0)
		return rc;
	if (c->op == GN_OP_ARANGE) {
		if (a->i[1] < 0)
			return gn_infer_fail(c, "count %lld, expected >= 0",
					     (long long)a->i[1]);
		if (out->dtype == GN_DTYPE_BOOL)
			return gn_infer_fail(c, "dtype bool, expected numeric");
		return check_shape_attrs(c, &a->i[1], 1, out);
	}
	if (c->op == GN_OP_RAND_NORMAL && !(a->f[1] >= 0))
		return gn_infer_fail(c, "std %g, expected >= 0", a->f[1]);
	if (c->op == GN_OP_RAND_UNIFORM && !(a->f[0] <= a->f[1]))
		return gn_infer_fail(c, "low %g above high %g", a->f[0],
				     a->f[1]);
	return check_shape_attrs(c, &a->i[first], a->ni - first, out);
}

int gn_infer_unary(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	if (c->op == GN_OP_GELU && c->a->i[0] != 0 && c->a->i[0] != 1)
		return gn_infer_fail(c,
				     "approximation %lld, expected 0 (erf) "
				     "or 1 (tanh)",
				     (long long)c->a->i[0]);
	if (c->op == GN_OP_CLIP && !(c->a->f[0] <= c->a->f[1]))
		return gn_infer_fail(c, "min %g above max %g", c->a->f[0],
				     c->a->f[1]);
	*out = *c->in[0];
	return 0;
}

int gn_infer_cast(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	*out = *c->in[0];
	return check_dtype_attr(c, c->a->i[0], 0, &out->dtype);
}

int gn_infer_binary(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	int rc = same_dtype(c, 0, 1);

	if (rc != 0)
		return rc;
	*out = *c->in[0];
	return broadcast_into(c, out, c->in[1]);
}

int gn_infer_compare(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	int rc = gn_infer_binary(c, out);

	out->dtype = GN_DTYPE_BOOL;
	return rc;
}

int gn_infer_where(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	int rc;

	if (c->in[0]->dtype != GN_DTYPE_BOOL)
		return gn_infer_fail(c, "condition is %s, expected bool",
				     gn_dtype_name(c->in[0]->dtype));
	rc = same_dtype(c, 1, 2);
	if (rc == 0) {
		*out = *c->in[0];
		rc = broadcast_into(c, out, c->in[1]);
	}
	if (rc == 0)
		rc = broadcast_into(c, out, c->in[2]);
	out->dtype = c->in[1]->dtype;
	return rc;
}

int gn_infer_matmul(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	struct gn_tensor_meta a = *c->in[0], b = *c->in[1], ba, bb;
	int a1 = a.ndim == 1, b1 = b.ndim == 1, rc;

	rc = same_dtype(c, 0, 1);
	if (rc != 0)
		return rc;
	if (a.ndim == 0 || b.ndim == 0)
		return gn_infer_fail(c, "operands must have at least 1 dim");
	/* numpy: a 1-D a is a row [1,K], a 1-D b a column [K,1]. */
	if (a1) {
		a.shape[1] = a.shape[0];
		a.shape[0] = 1;
		a.ndim = 2;
	}
	if (b1) {
		b.shape[1] = 1;
		b.ndim = 2;
	}
	if (a.shape[a.ndim - 1] != b.shape[b.ndim - 2])
		return gn_infer_fail(c,
				     "inner dimensions differ (%lld vs %lld)",
				     (long long)a.shape[a.ndim - 1],
				     (long long)b.shape[b.ndim - 2]);
	/* Batch dims broadcast. */
	ba = a;
	ba.ndim -= 2;
	bb = b;
	bb.ndim -= 2;
	rc = broadcast_into(c, &ba, &bb);
	if (rc != 0)
		return rc;
	*out = ba;
	out->dtype = a.dtype;
	if (!a1)
		out->shape[out->ndim++] = a.shape[a.ndim - 2];
	if (!b1)
		out->shape[out->ndim++] = b.shape[b.ndim - 1];
	if (out->ndim > GN_MAX_DIMS)
		return gn_infer_fail(c, "result has more than %d dims",
				     GN_MAX_DIMS);
	return 0;
}

int gn_infer_linear(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *x = c->in[0], *w = c->in[1];
	int rc = same_dtype(c, 0, c->nin - 1);

	if (rc != 0)
		return rc;
	if (x->ndim < 1 || w->ndim != 2)
		return gn_infer_fail(c, "expected x [...,K] and w [N,K]");
	if (x->shape[x->ndim - 1] != w->shape[1])
		return gn_infer_fail(c, "x has %lld features, w expects %lld",
				     (long long)x->shape[x->ndim - 1],
				     (long long)w->shape[1]);
	if (c->nin == 3 &&
	    (c->in[2]->ndim != 1 || c->in[2]->shape[0] != w->shape[0]))
		return gn_infer_fail(c, "bias must be [%lld]",
				     (long long)w->shape[0]);
	*out = *x;
	out->shape[out->ndim - 1] = w->shape[0];
	return 0;
}

/* Output extent of a sliding window; < 1 means the window does not fit. */
static int64_t window_out(int64_t in, int64_t pad, int64_t k, int64_t s,
			  int64_t d, int ceil_mode)
{
	int64_t span = in + pad - d * (k - 1) - 1, o;

	if (span < 0)
		return 0;
	o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
	return o;
}

int gn_infer_conv2d(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *x = c->in[0], *w = c->in[1];
	const int64_t *a = c->a->i;
	int64_t g = a[8], ho, wo;
	int rc = same_dtype(c, 0, c->nin - 1);

	if (rc != 0)
		return rc;
	if (x->ndim != 4 || w->ndim != 4)
		return gn_infer_fail(c, "expected x [N,C,H,W] and w "
					"[O,C/groups,kh,kw]");
	if (a[0] < 1 || a[1] < 1 || a[6] < 1 || a[7] < 1 || g < 1)
		return gn_infer_fail(c, "stride, dilation and groups must be "
					">= 1");
	for (int i = 2; i < 6; i++)
		if (a[i] < 0)
			return gn_infer_fail(c, "padding must be >= 0");
	if (x->shape[1] % g || w->shape[0] % g ||
	    w->shape[1] * g != x->shape[1])
		return gn_infer_fail(c,
				     "%lld input channels, %lld groups and "
				     "w's %lld channels per group disagree",
				     (long long)x->shape[1], (long long)g,
				     (long long)w->shape[1]);
	if (c->nin == 3 &&
	    (c->in[2]->ndim != 1 || c->in[2]->shape[0] != w->shape[0]))
		return gn_infer_fail(c, "bias must be [%lld]",
				     (long long)w->shape[0]);
	ho = window_out(x->shape[2], a[2] + a[4], w->shape[2], a[0], a[6], 0);
	wo = window_out(x->shape[3], a[3] + a[5], w->shape[3], a[1], a[7], 0);
	if (ho < 1 || wo < 1)
		return gn_infer_fail(c, "kernel larger than padded input");
	*out = *x;
	out->shape[1] = w->shape[0];
	out->shape[2] = ho;
	out->shape[3] = wo;
	return 0;
}

int gn_infer_pool2d(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *x = c->in[0];
	const int64_t *a = c->a->i;
	int64_t ho, wo;

	if (x->ndim != 4)
		return gn_infer_fail(c, "expected x [N,C,H,W]");
	if (a[0] < 1 || a[1] < 1 || a[2] < 1 || a[3] < 1)
		return gn_infer_fail(c, "kernel and stride must be >= 1");
	for (int i = 4; i < 8; i++)
		if (a[i] < 0 || 2 * a[i] > a[i & 1 ? 1 : 0])
			return gn_infer_fail(c,
					     "padding %lld must be >= 0 and "
					     "at most half the kernel",
					     (long long)a[i]);
	if (a[8] != 0 && a[8] != 1)
		return gn_infer_fail(c, "ceil_mode must be 0 or 1");
	ho = window_out(x->shape[2], a[4] + a[6], a[0], a[2], 1, (int)a[8]);
	wo = window_out(x->shape[3], a[5] + a[7], a[1], a[3], 1, (int)a[8]);
	/* A last window that starts in the bottom/right padding is dropped. */
	if (a[8] && ho > 1 && (ho - 1) * a[2] >= x->shape[2] + a[4])
		ho--;
	if (a[8] && wo > 1 && (wo - 1) * a[3] >= x->shape[3] + a[5])
		wo--;
	if (ho < 1 || wo < 1)
		return gn_infer_fail(c, "kernel larger than padded input");
	*out = *x;
	out->shape[2] = ho;
	out->shape[3] = wo;
	return 0;
}

int gn_infer_global_avgpool(const struct infer_ctx *c,
			    struct gn_tensor_meta *out)
{
	if (c->in[0]->ndim != 4)
		return gn_infer_fail(c, "expected x [N,C,H,W]");
	*out = *c->in[0];
	out->shape[2] = out->shape[3] = 1;
	return 0;
}

int gn_infer_batchnorm(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *x = c->in[0];
	int rc = same_dtype(c, 0, 4);

	if (rc != 0)
		return rc;
	if (x->ndim < 2)
		return gn_infer_fail(c, "expected x [N,C,...]");
	for (int i = 1; i < 5; i++)
		if (c->in[i]->ndim != 1 || c->in[i]->shape[0] != x->shape[1])
			return gn_infer_fail(c, "operand %d must be [%lld]", i,
					     (long long)x->shape[1]);
	if (!(c->a->f[0] >= 0))
		return gn_infer_fail(c, "eps %g, expected >= 0", c->a->f[0]);
	*out = *x;
	return 0;
}

int gn_infer_layernorm(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *x = c->in[0];
	int64_t k = c->a->i[0];
	int rc = same_dtype(c, 0, 2);

	if (rc != 0)
		return rc;
	if (k < 1 || k > x->ndim)
		return gn_infer_fail(c,
				     "normalises %lld trailing dims of a "
				     "%d-dim tensor",
				     (long long)k, x->ndim);
	for (int p = 1; p < 3; p++) {
		const struct gn_tensor_meta *m = c->in[p];

		if (m->ndim != k || memcmp(m->shape, x->shape + x->ndim - k,
					   sizeof(int64_t) * (size_t)k) != 0)
			return gn_infer_fail(c,
					     "operand %d must have x's last "
					     "%lld dims",
					     p, (long long)k);
	}
	if (!(c->a->f[0] >= 0))
		return gn_infer_fail(c, "eps %g, expected >= 0", c->a->f[0]);
	*out = *x;
	return 0;
}

static int check_axis(const struct infer_ctx *c, int64_t axis, int ndim)
{
	if (axis < 0 || axis >= ndim)
		return gn_infer_fail(c, "axis %lld outside 0..%d",
				     (long long)axis, ndim - 1);
	return 0;
}

int gn_infer_softmax(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	int rc = check_axis(c, c->a->i[0], c->in[0]->ndim);

	*out = *c->in[0];
	return rc;
}

int gn_infer_sdpa(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *q = c->in[0], *k = c->in[1], *v = c->in[2];
	struct gn_tensor_meta batch, kb, vb, scores;
	int rc = same_dtype(c, 0, 2);

	if (rc != 0)
		return rc;
	if (q->ndim < 2 || k->ndim < 2 || v->ndim < 2)
		return gn_infer_fail(c, "q, k and v need at least 2 dims");
	if (q->shape[q->ndim - 1] != k->shape[k->ndim - 1])
		return gn_infer_fail(c, "q and k feature sizes differ");
	if (k->shape[k->ndim - 2] != v->shape[v->ndim - 2])
		return gn_infer_fail(c, "k and v sequence lengths differ");
	if (c->a->i[0] != 0 && c->a->i[0] != 1)
		return gn_infer_fail(c, "causal must be 0 or 1");
	if (!(c->a->f[0] >= 0))
		return gn_infer_fail(c, "scale %g, expected >= 0 (0: default)",
				     c->a->f[0]);
	batch = *q;
	batch.ndim -= 2;
	kb = *k;
	kb.ndim -= 2;
	vb = *v;
	vb.ndim -= 2;
	rc = broadcast_into(c, &batch, &kb);
	if (rc == 0)
		rc = broadcast_into(c, &batch, &vb);
	if (rc != 0)
		return rc;
	if (c->nin == 4) {
		const struct gn_tensor_meta *m = c->in[3];

		if (m->dtype != GN_DTYPE_BOOL && m->dtype != q->dtype)
			return gn_infer_fail(c,
					     "mask is %s, expected bool or "
					     "%s",
					     gn_dtype_name(m->dtype),
					     gn_dtype_name(q->dtype));
		scores = batch;
		scores.shape[scores.ndim++] = q->shape[q->ndim - 2];
		scores.shape[scores.ndim++] = k->shape[k->ndim - 2];
		if (scores.ndim > GN_MAX_DIMS)
			return gn_infer_fail(c, "too many dims");
		/* The mask broadcasts to the scores if it adds nothing. */
		{
			struct gn_tensor_meta t = scores;

			rc = broadcast_into(c, &t, m);
			if (rc != 0)
				return rc;
			if (!gn_meta_equal(&t, &scores))
				return gn_infer_fail(c,
						     "mask does not "
						     "broadcast to the scores");
		}
	}
	*out = batch;
	out->dtype = q->dtype;
	out->shape[out->ndim++] = q->shape[q->ndim - 2];
	out->shape[out->ndim++] = v->shape[v->ndim - 1];
	if (out->ndim > GN_MAX_DIMS)
		return gn_infer_fail(c, "too many dims");
	return 0;
}

/* Mark axes i[first..] in `mask`; they must be distinct and in range. */
static int axes_mask(const struct infer_ctx *c, uint32_t first, int ndim,
		     int *mask)
{
	memset(mask, 0, sizeof(int) * GN_MAX_DIMS);
	for (uint32_t j = first; j < c->a->ni; j++) {
		int64_t ax = c->a->i[j];
		int rc = check_axis(c, ax, ndim);

		if (rc != 0)
			return rc;
		if (mask[ax])
			return gn_infer_fail(c, "axis %lld given twice",
					     (long long)ax);
		mask[ax] = 1;
	}
	return 0;
}

int gn_infer_reduce(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *x = c->in[0];
	int mask[GN_MAX_DIMS], all, rc;
	int64_t keep;

	if (c->a->ni < 1)
		return gn_infer_fail(c, "missing keepdim attribute");
	keep = c->a->i[0];
	if (keep != 0 && keep != 1)
		return gn_infer_fail(c, "keepdim must be 0 or 1");
	rc = axes_mask(c, 1, x->ndim, mask);
	if (rc != 0)
		return rc;
	all = c->a->ni == 1;
	out->dtype = x->dtype;
	out->ndim = 0;
	for (int d = 0; d < x->ndim; d++) {
		if (all || mask[d]) {
			if (keep)
				out->shape[out->ndim++] = 1;
		} else {
			out->shape[out->ndim++] = x->shape[d];
		}
	}
	return 0;
}

int gn_infer_argmax(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *x = c->in[0];
	int64_t axis = c->a->i[0], keep = c->a->i[1];
	int rc = check_axis(c, axis, x->ndim);

	if (rc != 0)
		return rc;
	if (keep != 0 && keep != 1)
		return gn_infer_fail(c, "keepdim must be 0 or 1");
	if (x->shape[axis] == 0)
		return gn_infer_fail(c, "argmax over an empty axis");
	*out = *x;
	out->dtype = GN_DTYPE_I64;
	if (keep) {
		out->shape[axis] = 1;
	} else {
		memmove(out->shape + axis, out->shape + axis + 1,
			sizeof(int64_t) * (size_t)(x->ndim - axis - 1));
		out->ndim--;
	}
	return 0;
}

static int check_index_operand(const struct infer_ctx *c, int i)
{
	if (!is_index(c->in[i]->dtype))
		return gn_infer_fail(c, "indices are %s, expected i64 or i32",
				     gn_dtype_name(c->in[i]->dtype));
	return 0;
}

int gn_infer_embedding(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *t = c->in[0], *idx = c->in[1];
	int rc = check_index_operand(c, 1);

	if (rc != 0)
		return rc;
	if (t->ndim != 2)
		return gn_infer_fail(c, "table must be [V,D]");
	if (idx->ndim + 1 > GN_MAX_DIMS)
		return gn_infer_fail(c, "result has more than %d dims",
				     GN_MAX_DIMS);
	*out = *idx;
	out->dtype = t->dtype;
	out->shape[out->ndim++] = t->shape[1];
	return 0;
}

int gn_infer_embedding_bag(const struct infer_ctx *c,
			   struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *t = c->in[0], *idx = c->in[1];
	int rc = check_index_operand(c, 1);

	if (rc != 0)
		return rc;
	if (t->ndim != 2 || idx->ndim != 2)
		return gn_infer_fail(c, "expected table [V,D] and indices "
					"[B,L]");
	if (c->a->i[0] < 0 || c->a->i[0] > 2)
		return gn_infer_fail(c,
				     "mode %lld, expected 0 (sum), 1 (mean) "
				     "or 2 (max)",
				     (long long)c->a->i[0]);
	out->dtype = t->dtype;
	out->ndim = 2;
	out->shape[0] = idx->shape[0];
	out->shape[1] = t->shape[1];
	return 0;
}

int gn_infer_gather(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *x = c->in[0], *idx = c->in[1];
	int64_t axis = c->a->i[0];
	int rc = check_index_operand(c, 1);

	if (rc == 0)
		rc = check_axis(c, axis, x->ndim);
	if (rc != 0)
		return rc;
	if (x->ndim - 1 + idx->ndim > GN_MAX_DIMS)
		return gn_infer_fail(c, "result has more than %d dims",
				     GN_MAX_DIMS);
	out->dtype = x->dtype;
	out->ndim = 0;
	for (int d = 0; d < axis; d++)
		out->shape[out->ndim++] = x->shape[d];
	for (int d = 0; d < idx->ndim; d++)
		out->shape[out->ndim++] = idx->shape[d];
	for (int d = (int)axis + 1; d < x->ndim; d++)
		out->shape[out->ndim++] = x->shape[d];
	return 0;
}

int gn_infer_reshape(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *x = c->in[0];
	uint64_t known = 1, total = gn_meta_numel(x);
	int infer_at = -1;

	if (c->a->ni > GN_MAX_DIMS)
		return gn_infer_fail(c, "%u dims, expected at most %d",
				     c->a->ni, GN_MAX_DIMS);
	*out = *x;
	out->ndim = (int)c->a->ni;
	for (int d = 0; d < out->ndim; d++) {
		int64_t v = c->a->i[d];

		if (v == -1) {
			if (infer_at >= 0)
				return gn_infer_fail(c, "more than one -1");
			infer_at = d;
			continue;
		}
		if (v == 0) {
			if (d >= x->ndim)
				return gn_infer_fail(c,
						     "0 at dim %d keeps a "
						     "dim the input lacks",
						     d);
			v = x->shape[d];
		}
		if (v < 0)
			return gn_infer_fail(c, "dim %d is %lld", d,
					     (long long)v);
		out->shape[d] = v;
		known *= (uint64_t)v;
	}
	if (infer_at >= 0) {
		if (known == 0 || total % known != 0)
			return gn_infer_fail(c,
					     "cannot infer the -1 dim: %llu "
					     "elements over %llu",
					     (unsigned long long)total,
					     (unsigned long long)known);
		out->shape[infer_at] = (int64_t)(total / known);
		known *= (uint64_t)out->shape[infer_at];
	}
	if (known != total)
		return gn_infer_fail(c,
				     "new shape holds %llu elements, input "
				     "has %llu",
				     (unsigned long long)known,
				     (unsigned long long)total);
	return 0;
}

int gn_infer_permute(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *x = c->in[0];
	int mask[GN_MAX_DIMS], rc;

	if ((int)c->a->ni != x->ndim)
		return gn_infer_fail(c,
				     "permutation of %u axes for a %d-dim "
				     "tensor",
				     c->a->ni, x->ndim);
	rc = axes_mask(c, 0, x->ndim, mask);
	if (rc != 0)
		return rc;
	*out = *x;
	for (int d = 0; d < x->ndim; d++)
		out->shape[d] = x->shape[c->a->i[d]];
	return 0;
}

int gn_infer_slice(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *x = c->in[0];
	const int64_t *a = c->a->i;
	int rc = check_axis(c, a[0], x->ndim);

	if (rc != 0)
		return rc;
	/* Plans carry bounds already clamped as Python clamps them. */
	if (a[3] < 1 || a[1] < 0 || a[1] > x->shape[a[0]] || a[2] < a[1] ||
	    a[2] > x->shape[a[0]])
		return gn_infer_fail(c,
				     "slice %lld:%lld:%lld of a dim of %lld, "
				     "expected 0 <= start <= end <= dim and "
				     "step >= 1",
				     (long long)a[1], (long long)a[2],
				     (long long)a[3],
				     (long long)x->shape[a[0]]);
	*out = *x;
	out->shape[a[0]] = (a[2] - a[1] + a[3] - 1) / a[3];
	return 0;
}

int gn_infer_expand(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *x = c->in[0];
	int nd = (int)c->a->ni;

	if (nd < x->ndim || nd > GN_MAX_DIMS)
		return gn_infer_fail(c, "target of %d dims, expected %d..%d",
				     nd, x->ndim, GN_MAX_DIMS);
	*out = *x;
	out->ndim = nd;
	for (int d = 0; d < nd; d++) {
		int dx = x->ndim - nd + d;
		int64_t have = dx >= 0 ? x->shape[dx] : 1, want = c->a->i[d];

		if (want == -1 && dx >= 0)
			want = have;
		if (want < 0 || (have != 1 && have != want))
			return gn_infer_fail(c,
					     "cannot expand dim %d of size "
					     "%lld to %lld",
					     d, (long long)have,
					     (long long)want);
		out->shape[d] = want;
	}
	return 0;
}

int gn_infer_squeeze(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *x = c->in[0];
	int mask[GN_MAX_DIMS], rc = axes_mask(c, 0, x->ndim, mask);

	if (rc != 0)
		return rc;
	*out = *x;
	out->ndim = 0;
	for (int d = 0; d < x->ndim; d++) {
		int drop = c->a->ni ? mask[d] : x->shape[d] == 1;

		if (drop && x->shape[d] != 1)
			return gn_infer_fail(c, "axis %d has size %lld, not 1",
					     d, (long long)x->shape[d]);
		if (!drop)
			out->shape[out->ndim++] = x->shape[d];
	}
	return 0;
}

int gn_infer_unsqueeze(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *x = c->in[0];
	int64_t axis = c->a->i[0];

	if (x->ndim + 1 > GN_MAX_DIMS)
		return gn_infer_fail(c, "result has more than %d dims",
				     GN_MAX_DIMS);
	if (axis < 0 || axis > x->ndim)
		return gn_infer_fail(c, "axis %lld outside 0..%d",
				     (long long)axis, x->ndim);
	*out = *x;
	memmove(out->shape + axis + 1, out->shape + axis,
		sizeof(int64_t) * (size_t)(x->ndim - axis));
	out->shape[axis] = 1;
	out->ndim++;
	return 0;
}

int gn_infer_concat(const struct infer_ctx *c, struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *x = c->in[0];
	int64_t axis = c->a->i[0];
	int rc = check_axis(c, axis, x->ndim);

	if (rc == 0)
		rc = same_dtype(c, 0, c->nin - 1);
	if (rc != 0)
		return rc;
	*out = *x;
	for (int i = 1; i < c->nin; i++) {
		const struct gn_tensor_meta *m = c->in[i];

		if (m->ndim != x->ndim)
			return gn_infer_fail(c,
					     "operand %d has %d dims, "
					     "expected %d",
					     i, m->ndim, x->ndim);
		for (int d = 0; d < x->ndim; d++)
			if (d != axis && m->shape[d] != x->shape[d])
				return gn_infer_fail(c,
						     "operand %d differs "
						     "in dim %d",
						     i, d);
		out->shape[axis] += m->shape[axis];
	}
	return 0;
}
