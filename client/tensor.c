/*
 * Lazy tensors: recording nodes into the session graph (see genie/tensor.h
 * and genie/ops.h). This is the hot path of a client: one inference call,
 * one arena allocation for the node and one or two for its lists.
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

/* Copy `n` items of `size` into the arena; NULL for n == 0 or no memory. */
static void *arena_dup(struct gn_arena *a, const void *src, size_t n,
		       size_t size, int *rc)
{
	void *p;

	if (n == 0)
		return NULL;
	p = gn_arena_alloc(a, n * size, 8);
	if (p == NULL)
		*rc = gn_last_error_code();
	else
		memcpy(p, src, n * size);
	return p;
}

/*
 * Give `t` the shape in `m`: share an operand's array when equal (most
 * elementwise results), else copy it into the arena.
 */
static int set_shape(struct gn_tensor *t, const struct gn_tensor_meta *m,
		     struct gn_tensor *const *in, int nin)
{
	int rc = 0;

	t->dtype = (uint8_t)m->dtype;
	t->ndim = (uint8_t)m->ndim;
	if (m->ndim == 0) {
		t->shape = NULL; /* a scalar has no dims to store */
		return 0;
	}
	for (int i = 0; i < nin; i++)
		if (in[i]->ndim == m->ndim &&
		    memcmp(in[i]->shape, m->shape,
			   sizeof(int64_t) * (size_t)m->ndim) == 0) {
			t->shape = in[i]->shape;
			return 0;
		}
	t->shape = arena_dup(t->session->arena, m->shape, (size_t)m->ndim,
			     sizeof(int64_t), &rc);
	return rc;
}

static struct gn_tensor *finish(struct gn_session *s, enum gn_op op,
				struct gn_tensor *const *in, int nin,
				const struct gn_tensor_meta *out,
				const int64_t *iattrs, int ni,
				const float *fattrs, int nf)
{
	struct gn_tensor *t = node_new(s);
	int rc = 0;

	if (t == NULL)
		return NULL;
	t->op = (uint8_t)op;
	t->nin = (uint8_t)nin;
	if (nin <= GN_INLINE_INPUTS) {
		for (int i = 0; i < nin; i++)
			t->in2[i] = in[i];
	} else {
		t->inv = arena_dup(s->arena, in, (size_t)nin, sizeof(*in), &rc);
	}
	t->ni = (uint8_t)ni;
	t->nf = (uint8_t)nf;
	t->iattrs =
		arena_dup(s->arena, iattrs, (size_t)ni, sizeof(*iattrs), &rc);
	t->fattrs =
		arena_dup(s->arena, fattrs, (size_t)nf, sizeof(*fattrs), &rc);
	if (rc == 0)
		rc = set_shape(t, out, in, nin);
	/* The node stays in the arena but nothing points to it. */
	return rc == 0 ? t : NULL;
}

struct gn_tensor *gn_client_record(enum gn_op op, struct gn_tensor *const *in,
				   int nin, const int64_t *iattrs, int ni,
				   const float *fattrs, int nf)
{
	struct gn_tensor_meta metas[GN_OP_MAX_INPUTS];
	const struct gn_tensor_meta *mp[GN_OP_MAX_INPUTS];
	struct gn_op_attrs attrs = {iattrs, fattrs, (uint32_t)ni, (uint32_t)nf};
	struct gn_tensor_meta out;

	if (nin < 1 || nin > GN_OP_MAX_INPUTS) {
		gn_error_set(-EINVAL, "%s: %d operands, expected 1..%d",
			     gn_op_name(op), nin, GN_OP_MAX_INPUTS);
		return NULL;
	}
	for (int i = 0; i < nin; i++) {
		if (in[i] == NULL) {
			gn_error_set(-EINVAL,
				     "%s: operand %d is NULL (did an earlier "
				     "op fail?)",
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
		gn_tensor_meta_of(in[i], &metas[i]);
		mp[i] = &metas[i];
	}
	if (gn_op_infer(op, mp, nin, &attrs, &out) != 0)
		return NULL;
	return finish(in[0]->session, op, in, nin, &out, iattrs, ni, fattrs,
		      nf);
}

struct gn_tensor *gn_client_record_source(struct gn_session *s, enum gn_op op,
					  const int64_t *iattrs, int ni,
					  const float *fattrs, int nf)
{
	struct gn_op_attrs attrs = {iattrs, fattrs, (uint32_t)ni, (uint32_t)nf};
	struct gn_tensor_meta out;

	if (s == NULL) {
		gn_error_set(-EINVAL, "%s: NULL session", gn_op_name(op));
		return NULL;
	}
	if (gn_op_infer(op, NULL, 0, &attrs, &out) != 0)
		return NULL;
	return finish(s, op, NULL, 0, &out, iattrs, ni, fattrs, nf);
}

struct gn_tensor *gn_tensor_from_host(struct gn_session *s, enum gn_dtype dtype,
				      int ndim, const int64_t *shape,
				      const void *data,
				      enum gn_tensor_flags flags)
{
	struct gn_tensor_meta m = {.dtype = dtype, .ndim = ndim};
	struct gn_tensor *t;
	uint64_t bytes;

	if (s == NULL || data == NULL || (shape == NULL && ndim > 0)) {
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
	if (ndim > 0 && ndim <= GN_MAX_DIMS)
		memcpy(m.shape, shape, sizeof(int64_t) * (size_t)ndim);
	if (gn_meta_check(&m, "from_host") != 0)
		return NULL;
	t = finish(s, GN_OP_INPUT, NULL, 0, &m, NULL, 0, NULL, 0);
	if (t == NULL)
		return NULL;
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

struct gn_tensor *gn_matmul(struct gn_tensor *a, struct gn_tensor *b)
{
	struct gn_tensor *in[] = {a, b};

	return gn_client_record(GN_OP_MATMUL, in, 2, NULL, 0, NULL, 0);
}

struct gn_tensor *gn_add(struct gn_tensor *a, struct gn_tensor *b)
{
	struct gn_tensor *in[] = {a, b};

	return gn_client_record(GN_OP_ADD, in, 2, NULL, 0, NULL, 0);
}

struct gn_tensor *gn_relu(struct gn_tensor *x)
{
	return gn_client_record(GN_OP_RELU, &x, 1, NULL, 0, NULL, 0);
}

int gn_tensor_shape(const struct gn_tensor *t, int64_t *shape)
{
	if (t == NULL)
		return gn_error_set(-EINVAL, "tensor_shape: NULL tensor");
	if (shape != NULL && t->ndim > 0)
		memcpy(shape, t->shape, sizeof(int64_t) * t->ndim);
	return t->ndim;
}

enum gn_dtype gn_tensor_dtype(const struct gn_tensor *t)
{
	return t ? (enum gn_dtype)t->dtype : GN_DTYPE_INVALID;
}

size_t gn_tensor_nbytes(const struct gn_tensor *t)
{
	struct gn_tensor_meta m;

	if (t == NULL)
		return 0;
	gn_tensor_meta_of(t, &m);
	return (size_t)gn_meta_nbytes(&m);
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
