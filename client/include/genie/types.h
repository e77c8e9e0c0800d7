/*
 * Genie value types shared by the public API: element types and limits.
 */
#ifndef GENIE_TYPES_H
#define GENIE_TYPES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element types. The numbering matches genie.DType on the wire. */
enum gn_dtype {
	GN_DTYPE_INVALID = 0,
	GN_DTYPE_F32 = 1,
	GN_DTYPE_F16 = 2,
	GN_DTYPE_BF16 = 3,
	GN_DTYPE_I64 = 4,
	GN_DTYPE_I32 = 5,
	GN_DTYPE_I8 = 6,
	GN_DTYPE_U8 = 7,
	GN_DTYPE_BOOL = 8,
};

/* Most dimensions a tensor may have. */
#define GN_MAX_DIMS 8

/* Bytes per element of `dtype`, or 0 for an unknown dtype. */
size_t gn_dtype_size(enum gn_dtype dtype);

/* Lower-case name ("f32"), or "invalid" for an unknown dtype. */
const char *gn_dtype_name(enum gn_dtype dtype);

#ifdef __cplusplus
}
#endif

#endif /* GENIE_TYPES_H */
