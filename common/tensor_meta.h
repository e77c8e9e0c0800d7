/*
 * Tensor metadata: dtype and shape, with the checks and formatting every
 * component uses. The op table (op.h) works on these.
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

#include "op.h"

#endif /* GN_COMMON_TENSOR_META_H */
