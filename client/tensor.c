/*
 * Lazy tensors: recording ops into the session graph (see genie/tensor.h).
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "client_internal.h"
#include "gn_error.h"

int gn_client_new_handle(struct gn_tensor *t)
{
	/* getrandom() on 16 bytes never returns short once the pool is up. */
	if (getrandom(t->handle, sizeof(t->handle), 0) !=
	    (ssize_t)sizeof(t->handle))
		return gn_error_set(-EIO, "tensor: getrandom failed: %s",
				    strerror(errno));
	t->has_handle = 1;
	return 0;
}

static struct gn_tensor *node_new(struct gn_session *s)
{
	struct gn_tensor *t = gn_arena_calloc(s->arena, sizeof(*t),
					      _Alignof(struct gn_tensor));

	if (t != NULL) {
		t->session = s;
		s->nnodes++;
	}
	return t;
}

struct gn_tensor *gn_tensor_from_host(struct gn_session *s, enum gn_dtype dtype,
				      int ndim, const int64_t *shape,
				      const void *data,
				      enum gn_tensor_flags flags)
{
	struct gn_tensor_meta m = {.dtype = dtype, .ndim = ndim};
	struct gn_tensor *t;
	uint64_t bytes;

	if (s == NULL || (data == NULL && ndim != 0) ||
	    (shape == NULL && ndim > 0)) {
		gn_error_set(-EINVAL, "from_host: NULL %s",
			     s == NULL	    ? "session"
			     : data == NULL ? "data"
					    : "shape");
		return NULL;
	}
	if (flags != GN_TENSOR_COPY && flags != GN_TENSOR_BORROW) {
		gn_error_set(-EINVAL,
			     "from_host: flags %d, expected "
			     "GN_TENSOR_COPY or GN_TENSOR_BORROW",
			     (int)flags);
		return NULL;
	}
	if (ndim >= 0 && ndim <= GN_MAX_DIMS)
		memcpy(m.shape, shape, sizeof(int64_t) * (size_t)ndim);
	if (gn_meta_check(&m, "from_host") != 0)
		return NULL;
	t = node_new(s);
	if (t == NULL)
		return NULL;
	t->op = GN_OP_INPUT;
	t->meta = m;
	bytes = gn_meta_nbytes(&m);
	if (flags == GN_TENSOR_BORROW) {
		t->data = (void *)data;
	} else {
		t->data = gn_arena_alloc(s->arena, bytes, 64);
		if (t->data == NULL)
			return NULL;
		if (bytes)
			memcpy(t->data, data, bytes);
	}
	if (gn_client_new_handle(t) != 0)
		return NULL;
	return t;
}

/*
 * Record `op` over `nin` operands: infer the output first, so a bad call
 * records nothing and fails here, naming the op and the shapes.
 */
static struct gn_tensor *record(enum gn_op op, struct gn_tensor **in, int nin)
{
	const struct gn_tensor_meta *metas[GN_MAX_INPUTS];
	struct gn_tensor_meta out;
	struct gn_tensor *t;

	for (int i = 0; i < nin; i++) {
		if (in[i] == NULL) {
			gn_error_set(-EINVAL,
				     "%s: operand %d is NULL "
				     "(did an earlier op fail?)",
				     gn_op_name(op), i);
			return NULL;
		}
		if (in[i]->session != in[0]->session) {
			gn_error_set(-EINVAL,
				     "%s: operands come from different "
				     "sessions",
				     gn_op_name(op));
			return NULL;
		}
		metas[i] = &in[i]->meta;
	}
	if (gn_op_infer(op, metas, nin, NULL, &out) != 0)
		return NULL;
	t = node_new(in[0]->session);
	if (t == NULL)
		return NULL;
	t->op = op;
	t->nin = (uint8_t)nin;
	for (int i = 0; i < nin; i++)
		t->in[i] = in[i];
	t->meta = out;
	return t;
}

struct gn_tensor *gn_matmul(struct gn_tensor *a, struct gn_tensor *b)
{
	struct gn_tensor *in[] = {a, b};

	return record(GN_OP_MATMUL, in, 2);
}

struct gn_tensor *gn_add(struct gn_tensor *a, struct gn_tensor *b)
{
	struct gn_tensor *in[] = {a, b};

	return record(GN_OP_ADD, in, 2);
}

struct gn_tensor *gn_relu(struct gn_tensor *x)
{
	return record(GN_OP_RELU, &x, 1);
}

int gn_tensor_shape(const struct gn_tensor *t, int64_t *shape)
{
	if (t == NULL)
		return gn_error_set(-EINVAL, "tensor_shape: NULL tensor");
	if (shape != NULL)
		memcpy(shape, t->meta.shape,
		       sizeof(int64_t) * (size_t)t->meta.ndim);
	return t->meta.ndim;
}

enum gn_dtype gn_tensor_dtype(const struct gn_tensor *t)
{
	return t ? t->meta.dtype : GN_DTYPE_INVALID;
}

size_t gn_tensor_nbytes(const struct gn_tensor *t)
{
	return t ? (size_t)gn_meta_nbytes(&t->meta) : 0;
}

int gn_tensor_to_host(struct gn_tensor *t, void *dst, size_t dst_size)
{
	int rc;

	if (t == NULL || (dst == NULL && dst_size != 0))
		return gn_error_set(-EINVAL, "to_host: NULL %s",
				    t ? "destination" : "tensor");
	if (dst_size != gn_tensor_nbytes(t))
		return gn_error_set(-EINVAL,
				    "to_host: destination holds %zu bytes, "
				    "tensor has %zu",
				    dst_size, gn_tensor_nbytes(t));
	rc = gn_tensor_materialize(t);
	if (rc != 0)
		return rc;
	if (dst_size)
		memcpy(dst, t->data, dst_size);
	return 0;
}
