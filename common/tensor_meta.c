/*
 * Element types, tensor metadata and the op table (shape and dtype
 * inference) that the client and the runtime share.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gn_error.h"
#include "tensor_meta.h"

/* Largest tensor accepted: keeps byte counts far from overflow. */
#define GN_MAX_TENSOR_BYTES (1ull << 40)

static const struct {
	const char *name;
	size_t size;
} g_dtypes[] = {
	[GN_DTYPE_F32] = {"f32", 4},   [GN_DTYPE_F16] = {"f16", 2},
	[GN_DTYPE_BF16] = {"bf16", 2}, [GN_DTYPE_I64] = {"i64", 8},
	[GN_DTYPE_I32] = {"i32", 4},   [GN_DTYPE_I8] = {"i8", 1},
	[GN_DTYPE_U8] = {"u8", 1},     [GN_DTYPE_BOOL] = {"bool", 1},
};

static int dtype_known(enum gn_dtype d)
{
	return d > GN_DTYPE_INVALID && d <= GN_DTYPE_BOOL;
}

size_t gn_dtype_size(enum gn_dtype dtype)
{
	return dtype_known(dtype) ? g_dtypes[dtype].size : 0;
}

const char *gn_dtype_name(enum gn_dtype dtype)
{
	return dtype_known(dtype) ? g_dtypes[dtype].name : "invalid";
}

uint64_t gn_meta_numel(const struct gn_tensor_meta *m)
{
	uint64_t n = 1;

	for (int i = 0; i < m->ndim; i++)
		n *= (uint64_t)m->shape[i];
	return n;
}

uint64_t gn_meta_nbytes(const struct gn_tensor_meta *m)
{
	return gn_meta_numel(m) * gn_dtype_size(m->dtype);
}

const char *gn_meta_format(const struct gn_tensor_meta *m, char *buf,
			   size_t len)
{
	size_t k;
	int nd = m->ndim < 0		 ? 0
		 : m->ndim > GN_MAX_DIMS ? GN_MAX_DIMS
					 : m->ndim;

	snprintf(buf, len, "%s[", gn_dtype_name(m->dtype));
	for (int i = 0; i < nd; i++) {
		k = strlen(buf);
		snprintf(buf + k, len - k, "%s%lld", i ? "," : "",
			 (long long)m->shape[i]);
	}
	k = strlen(buf);
	snprintf(buf + k, len - k, "]");
	return buf;
}

int gn_meta_check(const struct gn_tensor_meta *m, const char *what)
{
	uint64_t bytes;

	if (!dtype_known(m->dtype))
		return gn_error_set(-EINVAL, "%s: unknown dtype %d", what,
				    (int)m->dtype);
	if (m->ndim < 0 || m->ndim > GN_MAX_DIMS)
		return gn_error_set(-EINVAL, "%s: %d dims, expected 0..%d",
				    what, m->ndim, GN_MAX_DIMS);
	bytes = gn_dtype_size(m->dtype);
	for (int i = 0; i < m->ndim; i++) {
		if (m->shape[i] < 0)
			return gn_error_set(-EINVAL,
					    "%s: dim %d is %lld, expected >= 0",
					    what, i, (long long)m->shape[i]);
		if (m->shape[i] != 0 &&
		    bytes > GN_MAX_TENSOR_BYTES / (uint64_t)m->shape[i])
			return gn_error_set(-EINVAL, "%s: more than %llu bytes",
					    what, GN_MAX_TENSOR_BYTES);
		bytes *= (uint64_t)m->shape[i];
	}
	return 0;
}

int gn_meta_equal(const struct gn_tensor_meta *a,
		  const struct gn_tensor_meta *b)
{
	if (a->dtype != b->dtype || a->ndim != b->ndim)
		return 0;
	for (int i = 0; i < a->ndim; i++)
		if (a->shape[i] != b->shape[i])
			return 0;
	return 1;
}

typedef int (*infer_fn)(const char *name,
			const struct gn_tensor_meta *const *in,
			struct gn_tensor_meta *out);

static int infer_matmul(const char *name,
			const struct gn_tensor_meta *const *in,
			struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *a = in[0], *b = in[1];
	char sa[96], sb[96];

	if (a->ndim != 2 || b->ndim != 2)
		return gn_error_set(
			-EINVAL, "%s: expected 2-D operands, a is %s, b is %s",
			name, gn_meta_format(a, sa, sizeof(sa)),
			gn_meta_format(b, sb, sizeof(sb)));
	if (a->shape[1] != b->shape[0])
		return gn_error_set(
			-EINVAL,
			"%s: inner dimensions differ (%lld vs %lld): "
			"a is %s, b is %s",
			name, (long long)a->shape[1], (long long)b->shape[0],
			gn_meta_format(a, sa, sizeof(sa)),
			gn_meta_format(b, sb, sizeof(sb)));
	out->dtype = a->dtype;
	out->ndim = 2;
	out->shape[0] = a->shape[0];
	out->shape[1] = b->shape[1];
	return 0;
}

/* Numpy broadcasting: align trailing dims; each pair equal or one is 1. */
static int infer_broadcast(const char *name,
			   const struct gn_tensor_meta *const *in,
			   struct gn_tensor_meta *out)
{
	const struct gn_tensor_meta *a = in[0], *b = in[1];
	int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
	char sa[96], sb[96];

	for (int i = 0; i < nd; i++) {
		int ia = a->ndim - nd + i, ib = b->ndim - nd + i;
		int64_t da = ia >= 0 ? a->shape[ia] : 1;
		int64_t db = ib >= 0 ? b->shape[ib] : 1;

		if (da != db && da != 1 && db != 1)
			return gn_error_set(
				-EINVAL,
				"%s: shapes do not broadcast (dim %d: %lld vs "
				"%lld): a is %s, b is %s",
				name, i, (long long)da, (long long)db,
				gn_meta_format(a, sa, sizeof(sa)),
				gn_meta_format(b, sb, sizeof(sb)));
		out->shape[i] = da == 1 ? db : da;
	}
	out->dtype = a->dtype;
	out->ndim = nd;
	return 0;
}

static int infer_same(const char *name, const struct gn_tensor_meta *const *in,
		      struct gn_tensor_meta *out)
{
	(void)name;
	*out = *in[0];
	return 0;
}

static const struct {
	const char *name;
	int arity;
	int float_only;
	infer_fn infer;
} g_ops[GN_OP_COUNT_] = {
	[GN_OP_INPUT] = {"input", 0, 0, NULL},
	[GN_OP_MATMUL] = {"matmul", 2, 1, infer_matmul},
	[GN_OP_ADD] = {"add", 2, 1, infer_broadcast},
	[GN_OP_RELU] = {"relu", 1, 1, infer_same},
};

static int op_known(enum gn_op op)
{
	return op > GN_OP_INVALID && op < GN_OP_COUNT_;
}

const char *gn_op_name(enum gn_op op)
{
	return op_known(op) ? g_ops[op].name : "invalid";
}

int gn_op_arity(enum gn_op op)
{
	return op_known(op) ? g_ops[op].arity : -1;
}

int gn_op_infer(enum gn_op op, const struct gn_tensor_meta *const *in, int nin,
		struct gn_tensor_meta *out)
{
	const char *name;
	char sa[96], sb[96];
	int rc;

	if (!op_known(op) || g_ops[op].infer == NULL)
		return gn_error_set(-EOPNOTSUPP, "op %d (%s) has no inference",
				    (int)op, gn_op_name(op));
	name = g_ops[op].name;
	if (nin != g_ops[op].arity)
		return gn_error_set(-EINVAL, "%s: takes %d operands, got %d",
				    name, g_ops[op].arity, nin);
	for (int i = 0; i < nin; i++) {
		rc = gn_meta_check(in[i], name);
		if (rc != 0)
			return rc;
		if (in[i]->dtype != in[0]->dtype)
			return gn_error_set(
				-EINVAL, "%s: dtypes differ: a is %s, b is %s",
				name, gn_meta_format(in[0], sa, sizeof(sa)),
				gn_meta_format(in[i], sb, sizeof(sb)));
	}
	/* f16/bf16 arithmetic arrives with the full op set; f32 for now. */
	if (g_ops[op].float_only && in[0]->dtype != GN_DTYPE_F32)
		return gn_error_set(-EINVAL, "%s: dtype %s, expected f32", name,
				    gn_dtype_name(in[0]->dtype));
	memset(out, 0, sizeof(*out));
	return g_ops[op].infer(name, in, out);
}
