/*
 * The op table: what every op takes and what it gives.
 *
 * The client infers an op's output when it records it, and the runtime
 * infers it again from the operands when it decodes a plan; one table
 * serves both so they cannot disagree. docs/OPS.md is the prose form of
 * this table: operands, attribute layouts, shape and dtype rules.
 */
#ifndef GN_COMMON_OP_H
#define GN_COMMON_OP_H

#include <stdint.h>

#include "tensor_meta.h"

/* Ops; the numbering matches genie.OpType on the wire. */
enum gn_op {
	GN_OP_INVALID = 0,
	GN_OP_INPUT = 1,
	GN_OP_MATMUL = 2,
	GN_OP_ADD = 3,
	GN_OP_RELU = 4,
	GN_OP_SUB = 5,
	GN_OP_MUL = 6,
	GN_OP_DIV = 7,
	GN_OP_POW = 8,
	GN_OP_MAXIMUM = 9,
	GN_OP_MINIMUM = 10,
	GN_OP_EQ = 11,
	GN_OP_NE = 12,
	GN_OP_LT = 13,
	GN_OP_LE = 14,
	GN_OP_GT = 15,
	GN_OP_GE = 16,
	GN_OP_WHERE = 17,
	GN_OP_GELU = 18,
	GN_OP_SILU = 19,
	GN_OP_SIGMOID = 20,
	GN_OP_TANH = 21,
	GN_OP_HARDSWISH = 22,
	GN_OP_HARDSIGMOID = 23,
	GN_OP_NEG = 24,
	GN_OP_ABS = 25,
	GN_OP_EXP = 26,
	GN_OP_LOG = 27,
	GN_OP_SQRT = 28,
	GN_OP_RSQRT = 29,
	GN_OP_ERF = 30,
	GN_OP_CLIP = 31,
	GN_OP_CAST = 32,
	GN_OP_LINEAR = 33,
	GN_OP_CONV2D = 34,
	GN_OP_MAXPOOL2D = 35,
	GN_OP_AVGPOOL2D = 36,
	GN_OP_GLOBAL_AVGPOOL = 37,
	GN_OP_BATCHNORM = 38,
	GN_OP_LAYERNORM = 39,
	GN_OP_SOFTMAX = 40,
	GN_OP_LOG_SOFTMAX = 41,
	GN_OP_SDPA = 42,
	GN_OP_REDUCE_SUM = 43,
	GN_OP_REDUCE_MEAN = 44,
	GN_OP_REDUCE_MAX = 45,
	GN_OP_ARGMAX = 46,
	GN_OP_EMBEDDING = 47,
	GN_OP_EMBEDDING_BAG = 48,
	GN_OP_GATHER = 49,
	GN_OP_FILL = 50,
	GN_OP_ARANGE = 51,
	GN_OP_RAND_UNIFORM = 52,
	GN_OP_RAND_NORMAL = 53,
	GN_OP_RESHAPE = 60,
	GN_OP_PERMUTE = 61,
	GN_OP_SLICE = 62,
	GN_OP_EXPAND = 63,
	GN_OP_SQUEEZE = 64,
	GN_OP_UNSQUEEZE = 65,
	GN_OP_CONCAT = 66,
	GN_OP_COUNT_,
};

/* Most operands any op takes (concat). */
#define GN_OP_MAX_INPUTS 64
/* Most integer / float attributes any op carries. */
#define GN_OP_MAX_IATTRS 16
#define GN_OP_MAX_FATTRS 4

/* An op's attributes: two flat lists whose layout docs/OPS.md gives. */
struct gn_op_attrs {
	const int64_t *i;
	const float *f;
	uint32_t ni;
	uint32_t nf;
};

/* What kind of op it is, for passes that treat kinds alike. */
enum gn_op_kind {
	GN_OP_KIND_SOURCE,  /* no operands: input, fill, arange, rand */
	GN_OP_KIND_UNARY,   /* elementwise over one operand */
	GN_OP_KIND_BINARY,  /* elementwise with broadcasting */
	GN_OP_KIND_SHAPE,   /* moves or views data: reshape, permute... */
	GN_OP_KIND_COMPUTE, /* everything else */
};

/* "matmul", or "invalid" for an op outside the table. */
const char *gn_op_name(enum gn_op op);

/* The op's kind; GN_OP_KIND_COMPUTE for an op outside the table. */
enum gn_op_kind gn_op_kind(enum gn_op op);

/* True for an op in the table. */
int gn_op_known(enum gn_op op);

/*
 * Fewest and most operands the op takes (-1 for an op outside the table).
 */
int gn_op_min_inputs(enum gn_op op);
int gn_op_max_inputs(enum gn_op op);

/*
 * True when the op's output is a deterministic function of its operands
 * and attributes (every op but input), so equal nodes may be merged.
 */
int gn_op_pure(enum gn_op op);

/*
 * Infer the output of `op` applied to `nin` operand metas with `attrs`
 * (NULL for none). Returns 0, or -EINVAL with a detail naming the op and
 * every operand shape (wrong arity, dtype mismatch, shapes that do not
 * fit, malformed attributes), or -EOPNOTSUPP for an op outside the table
 * and for GN_OP_INPUT (which has no operands to infer from).
 */
int gn_op_infer(enum gn_op op, const struct gn_tensor_meta *const *in, int nin,
		const struct gn_op_attrs *attrs, struct gn_tensor_meta *out);

#endif /* GN_COMMON_OP_H */
