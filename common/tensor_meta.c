/*
 * Element types and tensor metadata.
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
	for (int i = 0; i < m->ndim; i++)
		if (m->shape[i] < 0)
			return gn_error_set(-EINVAL,
					    "%s: dim %d is %lld, expected >= 0",
					    what, i, (long long)m->shape[i]);
	/* A zero dim anywhere makes the tensor empty, whatever the others. */
	for (int i = 0; i < m->ndim; i++)
		if (m->shape[i] == 0)
			return 0;
	bytes = gn_dtype_size(m->dtype);
	for (int i = 0; i < m->ndim; i++) {
		if (bytes > GN_MAX_TENSOR_BYTES / (uint64_t)m->shape[i])
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
