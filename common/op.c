/*
 * The op table and the checks every op shares: arity, attribute counts,
 * well-formed operands and dtype classes. The shape rules themselves are
 * in op_infer*.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gn_error.h"
#include "op_internal.h"

/* Which dtypes an op accepts for its first operand. */
enum dtype_class {
	DT_ANY,	    /* every dtype */
	DT_NUMERIC, /* not bool */
	DT_FLOAT,   /* f32, f16, bf16 */
};

/* Attribute counts; -1 means "any number up to the maximum". */
struct op_desc {
	const char *name;
	enum gn_op_kind kind;
	int8_t min_in, max_in;
	int8_t ni, nf;
	enum dtype_class dt;
	gn_infer_fn infer;
};

#define ANY_N -1

static const struct op_desc g_ops[GN_OP_COUNT_] = {
	[GN_OP_INPUT] = {"input", GN_OP_KIND_SOURCE, 0, 0, 0, 0, DT_ANY, NULL},
	[GN_OP_FILL] = {"fill", GN_OP_KIND_SOURCE, 0, 0, ANY_N, 1, DT_ANY,
			gn_infer_source},
	[GN_OP_ARANGE] = {"arange", GN_OP_KIND_SOURCE, 0, 0, 2, 2, DT_ANY,
			  gn_infer_source},
	[GN_OP_RAND_UNIFORM] = {"rand_uniform", GN_OP_KIND_SOURCE, 0, 0, ANY_N,
				2, DT_ANY, gn_infer_source},
	[GN_OP_RAND_NORMAL] = {"rand_normal", GN_OP_KIND_SOURCE, 0, 0, ANY_N, 2,
			       DT_ANY, gn_infer_source},

	[GN_OP_ADD] = {"add", GN_OP_KIND_BINARY, 2, 2, 0, 0, DT_NUMERIC,
		       gn_infer_binary},
	[GN_OP_SUB] = {"sub", GN_OP_KIND_BINARY, 2, 2, 0, 0, DT_NUMERIC,
		       gn_infer_binary},
	[GN_OP_MUL] = {"mul", GN_OP_KIND_BINARY, 2, 2, 0, 0, DT_NUMERIC,
		       gn_infer_binary},
	[GN_OP_DIV] = {"div", GN_OP_KIND_BINARY, 2, 2, 0, 0, DT_NUMERIC,
		       gn_infer_binary},
	[GN_OP_POW] = {"pow", GN_OP_KIND_BINARY, 2, 2, 0, 0, DT_FLOAT,
		       gn_infer_binary},
	[GN_OP_MAXIMUM] = {"maximum", GN_OP_KIND_BINARY, 2, 2, 0, 0, DT_NUMERIC,
			   gn_infer_binary},
	[GN_OP_MINIMUM] = {"minimum", GN_OP_KIND_BINARY, 2, 2, 0, 0, DT_NUMERIC,
			   gn_infer_binary},
	[GN_OP_EQ] = {"eq", GN_OP_KIND_BINARY, 2, 2, 0, 0, DT_ANY,
		      gn_infer_compare},
	[GN_OP_NE] = {"ne", GN_OP_KIND_BINARY, 2, 2, 0, 0, DT_ANY,
		      gn_infer_compare},
	[GN_OP_LT] = {"lt", GN_OP_KIND_BINARY, 2, 2, 0, 0, DT_NUMERIC,
		      gn_infer_compare},
	[GN_OP_LE] = {"le", GN_OP_KIND_BINARY, 2, 2, 0, 0, DT_NUMERIC,
		      gn_infer_compare},
	[GN_OP_GT] = {"gt", GN_OP_KIND_BINARY, 2, 2, 0, 0, DT_NUMERIC,
		      gn_infer_compare},
	[GN_OP_GE] = {"ge", GN_OP_KIND_BINARY, 2, 2, 0, 0, DT_NUMERIC,
		      gn_infer_compare},
	[GN_OP_WHERE] = {"where", GN_OP_KIND_BINARY, 3, 3, 0, 0, DT_ANY,
			 gn_infer_where},

	[GN_OP_RELU] = {"relu", GN_OP_KIND_UNARY, 1, 1, 0, 0, DT_NUMERIC,
			gn_infer_unary},
	[GN_OP_GELU] = {"gelu", GN_OP_KIND_UNARY, 1, 1, 1, 0, DT_FLOAT,
			gn_infer_unary},
	[GN_OP_SILU] = {"silu", GN_OP_KIND_UNARY, 1, 1, 0, 0, DT_FLOAT,
			gn_infer_unary},
	[GN_OP_SIGMOID] = {"sigmoid", GN_OP_KIND_UNARY, 1, 1, 0, 0, DT_FLOAT,
			   gn_infer_unary},
	[GN_OP_TANH] = {"tanh", GN_OP_KIND_UNARY, 1, 1, 0, 0, DT_FLOAT,
			gn_infer_unary},
	[GN_OP_HARDSWISH] = {"hardswish", GN_OP_KIND_UNARY, 1, 1, 0, 0,
			     DT_FLOAT, gn_infer_unary},
	[GN_OP_HARDSIGMOID] = {"hardsigmoid", GN_OP_KIND_UNARY, 1, 1, 0, 2,
			       DT_FLOAT, gn_infer_unary},
	[GN_OP_NEG] = {"neg", GN_OP_KIND_UNARY, 1, 1, 0, 0, DT_NUMERIC,
		       gn_infer_unary},
	[GN_OP_ABS] = {"abs", GN_OP_KIND_UNARY, 1, 1, 0, 0, DT_NUMERIC,
		       gn_infer_unary},
	[GN_OP_EXP] = {"exp", GN_OP_KIND_UNARY, 1, 1, 0, 0, DT_FLOAT,
		       gn_infer_unary},
	[GN_OP_LOG] = {"log", GN_OP_KIND_UNARY, 1, 1, 0, 0, DT_FLOAT,
		       gn_infer_unary},
	[GN_OP_SQRT] = {"sqrt", GN_OP_KIND_UNARY, 1, 1, 0, 0, DT_FLOAT,
			gn_infer_unary},
	[GN_OP_RSQRT] = {"rsqrt", GN_OP_KIND_UNARY, 1, 1, 0, 0, DT_FLOAT,
			 gn_infer_unary},
	[GN_OP_ERF] = {"erf", GN_OP_KIND_UNARY, 1, 1, 0, 0, DT_FLOAT,
		       gn_infer_unary},
	[GN_OP_CLIP] = {"clip", GN_OP_KIND_UNARY, 1, 1, 0, 2, DT_NUMERIC,
			gn_infer_unary},
	[GN_OP_CAST] = {"cast", GN_OP_KIND_UNARY, 1, 1, 1, 0, DT_ANY,
			gn_infer_cast},

	[GN_OP_MATMUL] = {"matmul", GN_OP_KIND_COMPUTE, 2, 2, 0, 0, DT_FLOAT,
			  gn_infer_matmul},
	[GN_OP_LINEAR] = {"linear", GN_OP_KIND_COMPUTE, 2, 3, 0, 0, DT_FLOAT,
			  gn_infer_linear},
	[GN_OP_CONV2D] = {"conv2d", GN_OP_KIND_COMPUTE, 2, 3, 9, 0, DT_FLOAT,
			  gn_infer_conv2d},
	[GN_OP_MAXPOOL2D] = {"maxpool2d", GN_OP_KIND_COMPUTE, 1, 1, 9, 0,
			     DT_NUMERIC, gn_infer_pool2d},
	[GN_OP_AVGPOOL2D] = {"avgpool2d", GN_OP_KIND_COMPUTE, 1, 1, 10, 0,
			     DT_FLOAT, gn_infer_pool2d},
	[GN_OP_GLOBAL_AVGPOOL] = {"global_avgpool", GN_OP_KIND_COMPUTE, 1, 1, 0,
				  0, DT_FLOAT, gn_infer_global_avgpool},
	[GN_OP_BATCHNORM] = {"batchnorm", GN_OP_KIND_COMPUTE, 5, 5, 0, 1,
			     DT_FLOAT, gn_infer_batchnorm},
	[GN_OP_LAYERNORM] = {"layernorm", GN_OP_KIND_COMPUTE, 3, 3, 1, 1,
			     DT_FLOAT, gn_infer_layernorm},
	[GN_OP_SOFTMAX] = {"softmax", GN_OP_KIND_COMPUTE, 1, 1, 1, 0, DT_FLOAT,
			   gn_infer_softmax},
	[GN_OP_LOG_SOFTMAX] = {"log_softmax", GN_OP_KIND_COMPUTE, 1, 1, 1, 0,
			       DT_FLOAT, gn_infer_softmax},
	[GN_OP_SDPA] = {"sdpa", GN_OP_KIND_COMPUTE, 3, 4, 1, 1, DT_FLOAT,
			gn_infer_sdpa},

	[GN_OP_REDUCE_SUM] = {"reduce_sum", GN_OP_KIND_COMPUTE, 1, 1, ANY_N, 0,
			      DT_NUMERIC, gn_infer_reduce},
	[GN_OP_REDUCE_MEAN] = {"reduce_mean", GN_OP_KIND_COMPUTE, 1, 1, ANY_N,
			       0, DT_FLOAT, gn_infer_reduce},
	[GN_OP_REDUCE_MAX] = {"reduce_max", GN_OP_KIND_COMPUTE, 1, 1, ANY_N, 0,
			      DT_NUMERIC, gn_infer_reduce},
	[GN_OP_ARGMAX] = {"argmax", GN_OP_KIND_COMPUTE, 1, 1, 2, 0, DT_NUMERIC,
			  gn_infer_argmax},
	[GN_OP_EMBEDDING] = {"embedding", GN_OP_KIND_COMPUTE, 2, 2, 0, 0,
			     DT_ANY, gn_infer_embedding},
	[GN_OP_EMBEDDING_BAG] = {"embedding_bag", GN_OP_KIND_COMPUTE, 2, 2, 1,
				 0, DT_FLOAT, gn_infer_embedding_bag},
	[GN_OP_GATHER] = {"gather", GN_OP_KIND_COMPUTE, 2, 2, 1, 0, DT_ANY,
			  gn_infer_gather},

	[GN_OP_RESHAPE] = {"reshape", GN_OP_KIND_SHAPE, 1, 1, ANY_N, 0, DT_ANY,
			   gn_infer_reshape},
	[GN_OP_PERMUTE] = {"permute", GN_OP_KIND_SHAPE, 1, 1, ANY_N, 0, DT_ANY,
			   gn_infer_permute},
	[GN_OP_SLICE] = {"slice", GN_OP_KIND_SHAPE, 1, 1, 4, 0, DT_ANY,
			 gn_infer_slice},
	[GN_OP_EXPAND] = {"expand", GN_OP_KIND_SHAPE, 1, 1, ANY_N, 0, DT_ANY,
			  gn_infer_expand},
	[GN_OP_SQUEEZE] = {"squeeze", GN_OP_KIND_SHAPE, 1, 1, ANY_N, 0, DT_ANY,
			   gn_infer_squeeze},
	[GN_OP_UNSQUEEZE] = {"unsqueeze", GN_OP_KIND_SHAPE, 1, 1, 1, 0, DT_ANY,
			     gn_infer_unsqueeze},
	[GN_OP_CONCAT] = {"concat", GN_OP_KIND_SHAPE, 1, GN_OP_MAX_INPUTS, 1, 0,
			  DT_ANY, gn_infer_concat},
};

int gn_op_known(enum gn_op op)
{
	return op > GN_OP_INVALID && op < GN_OP_COUNT_ &&
	       g_ops[op].name != NULL;
}

const char *gn_op_name(enum gn_op op)
{
	return gn_op_known(op) ? g_ops[op].name : "invalid";
}

enum gn_op_kind gn_op_kind(enum gn_op op)
{
	return gn_op_known(op) ? g_ops[op].kind : GN_OP_KIND_COMPUTE;
}

int gn_op_min_inputs(enum gn_op op)
{
	return gn_op_known(op) ? g_ops[op].min_in : -1;
}

int gn_op_max_inputs(enum gn_op op)
{
	return gn_op_known(op) ? g_ops[op].max_in : -1;
}

int gn_op_pure(enum gn_op op)
{
	return gn_op_known(op) && op != GN_OP_INPUT;
}

int gn_infer_fail(const struct infer_ctx *c, const char *fmt, ...)
{
	char why[256], shapes[512] = "", s[96];
	size_t k;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	for (int i = 0; i < c->nin && i < 8; i++) {
		k = strlen(shapes);
		snprintf(shapes + k, sizeof(shapes) - k, "%s%c is %s",
			 i ? ", " : ": ", c->nin <= 26 ? 'a' + i : '?',
			 gn_meta_format(c->in[i], s, sizeof(s)));
	}
	return gn_error_set(-EINVAL, "%s: %s%s", c->name, why, shapes);
}

static int dtype_ok(enum dtype_class dc, enum gn_dtype d)
{
	switch (dc) {
	case DT_FLOAT:
		return d == GN_DTYPE_F32 || d == GN_DTYPE_F16 ||
		       d == GN_DTYPE_BF16;
	case DT_NUMERIC: return d != GN_DTYPE_BOOL;
	default: return 1;
	}
}

static const char *dtype_class_name(enum dtype_class dc)
{
	return dc == DT_FLOAT ? "a float dtype (f32, f16, bf16)"
			      : "a numeric dtype (not bool)";
}

int gn_op_infer(enum gn_op op, const struct gn_tensor_meta *const *in, int nin,
		const struct gn_op_attrs *attrs, struct gn_tensor_meta *out)
{
	static const struct gn_op_attrs none = {0};
	const struct op_desc *d;
	struct infer_ctx c;
	int rc;

	if (!gn_op_known(op) || g_ops[op].infer == NULL)
		return gn_error_set(-EOPNOTSUPP, "op %d (%s) has no inference",
				    (int)op, gn_op_name(op));
	d = &g_ops[op];
	c = (struct infer_ctx){op, d->name, in, nin, attrs ? attrs : &none};
	if (nin < d->min_in || nin > d->max_in) {
		c.nin = 0; /* the operands may not be there to print */
		if (d->min_in == d->max_in)
			return gn_infer_fail(&c, "takes %d operands, got %d",
					     d->min_in, nin);
		return gn_infer_fail(&c, "takes %d to %d operands, got %d",
				     d->min_in, d->max_in, nin);
	}
	if ((d->ni != ANY_N && c.a->ni != (uint32_t)d->ni) ||
	    c.a->ni > GN_OP_MAX_IATTRS)
		return gn_infer_fail(&c, "%u integer attributes, expected %d",
				     c.a->ni,
				     d->ni == ANY_N ? GN_OP_MAX_IATTRS : d->ni);
	if (c.a->nf != (uint32_t)d->nf)
		return gn_infer_fail(&c, "%u float attributes, expected %d",
				     c.a->nf, d->nf);
	if ((c.a->ni && c.a->i == NULL) || (c.a->nf && c.a->f == NULL))
		return gn_infer_fail(&c, "attribute list missing");
	for (int i = 0; i < nin; i++) {
		rc = gn_meta_check(in[i], d->name);
		if (rc != 0)
			return rc;
	}
	if (nin > 0 && !dtype_ok(d->dt, in[0]->dtype))
		return gn_infer_fail(&c, "dtype %s, expected %s",
				     gn_dtype_name(in[0]->dtype),
				     dtype_class_name(d->dt));
	memset(out, 0, sizeof(*out));
	return d->infer(&c, out);
}
