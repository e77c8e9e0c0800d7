/*
 * Lazy tensors.
 *
 * Calling an op does not compute anything: it records a node in the
 * session's graph after checking shapes and dtypes, so a mistake fails at
 * the line that makes it. gn_tensor_materialize() turns the graph behind a
 * tensor into a plan, runs it on the session's target and keeps the result;
 * gn_tensor_to_host() copies it out.
 *
 * Ownership: tensors belong to their session and are freed with it. A
 * tensor pointer stays valid until gn_session_destroy(). An op that fails
 * returns NULL, records nothing and sets gn_last_error().
 */
#ifndef GENIE_TENSOR_H
#define GENIE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include <genie/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct gn_session;
struct gn_tensor;

/* Flags for gn_tensor_from_host(). */
enum gn_tensor_flags {
	/* Copy the caller's bytes now; the caller may reuse its buffer. */
	GN_TENSOR_COPY = 0,
	/*
	 * Borrow the caller's buffer: no copy is made, and the caller keeps it
	 * alive and unchanged until the session is destroyed.
	 */
	GN_TENSOR_BORROW = 1,
};

/*
 * A tensor whose value is `data` (row-major, `ndim` dims of `shape`).
 * Returns NULL with -EINVAL for a NULL session/data, an unknown dtype, more
 * than GN_MAX_DIMS dims or a negative dimension; -ENOMEM when out of memory.
 */
struct gn_tensor *gn_tensor_from_host(struct gn_session *session,
				      enum gn_dtype dtype, int ndim,
				      const int64_t *shape, const void *data,
				      enum gn_tensor_flags flags);

/*
 * Record a @ b for 2-D a [M,K] and b [K,N], giving [M,N]. Both f32.
 * Fails with -EINVAL naming both shapes when K differs.
 */
struct gn_tensor *gn_matmul(struct gn_tensor *a, struct gn_tensor *b);

/*
 * Record a + b elementwise with numpy broadcasting. Fails with -EINVAL
 * naming both shapes when they do not broadcast, or when dtypes differ.
 */
struct gn_tensor *gn_add(struct gn_tensor *a, struct gn_tensor *b);

/* Record max(x, 0) elementwise. */
struct gn_tensor *gn_relu(struct gn_tensor *x);

/*
 * Run the work behind `t` on the session's target and keep its value.
 * Returns 0, or a negative errno with gn_last_error() set: -ECONNRESET or
 * -ETIMEDOUT when the runtime went away, the runtime's own code when it
 * refused the plan. A tensor that already has a value returns 0 at once.
 */
int gn_tensor_materialize(struct gn_tensor *t);

/* Most tensors one gn_tensor_materialize_all() call takes. */
#define GN_MATERIALIZE_MAX 256

/*
 * Materialize `n` tensors of one session (0..GN_MATERIALIZE_MAX) as one
 * plan with `n` outputs: work they share runs once and, on a remote
 * target, it is one request. Tensors that already have values are left
 * alone; naming one twice is fine. Returns 0, -EINVAL for a NULL array or
 * tensor, tensors of different sessions or too many, or the errors of
 * gn_tensor_materialize().
 */
int gn_tensor_materialize_all(struct gn_tensor *const *ts, int n);

/*
 * Materialize `t` if needed and copy its value into `dst`, which holds
 * `dst_size` bytes. Returns 0, -EINVAL when dst_size differs from
 * gn_tensor_nbytes(t), or an error from gn_tensor_materialize().
 */
int gn_tensor_to_host(struct gn_tensor *t, void *dst, size_t dst_size);

/* Number of dims; writes up to GN_MAX_DIMS dims into `shape` if not NULL. */
int gn_tensor_shape(const struct gn_tensor *t, int64_t *shape);

/* Element type. */
enum gn_dtype gn_tensor_dtype(const struct gn_tensor *t);

/* Bytes of the value: elements times gn_dtype_size(). */
size_t gn_tensor_nbytes(const struct gn_tensor *t);

#ifdef __cplusplus
}
#endif

#endif /* GENIE_TENSOR_H */
