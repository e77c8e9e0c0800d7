/*
 * Tensor metadata (dtype and shape) and the op table shared by the client,
 * which infers shapes when it records an op, and the runtime, which infers
 * them again to validate a plan. One table serves both so they cannot
 * disagree.
 */
#ifndef GN_COMMON_TENSOR_META_H
#define GN_COMMON_TENSOR_META_H

#include <stddef.h>
#include <stdint.h>

#include <genie/types.h>

struct gn_tensor_meta {
	enum gn_dtype dtype;
	int ndim;
	int64_t shape[GN_MAX_DIMS];
};

/* Ops; the numbering matches genie.OpType on the wire. */
enum gn_op {
	GN_OP_INVALID = 0,
	GN_OP_INPUT = 1,
	GN_OP_MATMUL = 2,
	GN_OP_ADD = 3,
	GN_OP_RELU = 4,
	GN_OP_COUNT_,
};

/* Elements in the tensor (1 for a scalar, ndim == 0). */
uint64_t gn_meta_numel(const struct gn_tensor_meta *m);

/* Bytes of the tensor's value. */
uint64_t gn_meta_nbytes(const struct gn_tensor_meta *m);

/*
 * Check a meta is well formed: known dtype, 0 <= ndim <= GN_MAX_DIMS, no
 * negative dim, byte size representable. Returns 0 or -EINVAL with detail
 * prefixed by `what`.
 */
int gn_meta_check(const struct gn_tensor_meta *m, const char *what);

/* Write "f32[2,3]" into buf; returns buf. */
const char *gn_meta_format(const struct gn_tensor_meta *m, char *buf,
			   size_t len);

/* True when dtype and shape are equal. */
int gn_meta_equal(const struct gn_tensor_meta *a,
		  const struct gn_tensor_meta *b);

/* "matmul", or "invalid" for an op outside the table. */
const char *gn_op_name(enum gn_op op);

/* Operands the op takes, or -1 for an op outside the table. */
int gn_op_arity(enum gn_op op);

/*
 * Infer the output of `op` applied to `nin` operand metas. Returns 0, or
 * -EINVAL with a detail naming the op and every operand shape (wrong
 * arity, dtype mismatch, shapes that do not fit), or -EOPNOTSUPP for an op
 * outside the table or GN_OP_INPUT (which has no operands to infer from).
 */
int gn_op_infer(enum gn_op op, const struct gn_tensor_meta *const *in, int nin,
		struct gn_tensor_meta *out);

#endif /* GN_COMMON_TENSOR_META_H */
