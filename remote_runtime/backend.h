/*
 * Backends: what executes a plan's nodes on a device.
 *
 * A backend is a vtable registered by name (SPDK's bdev modules, DPDK's
 * mempool ops): "cpu" always, "cuda" when the build found nvcc. The
 * executor owns the plan walk; a backend owns device memory and kernels.
 * Buffers are opaque device pointers: host memory for cpu, device memory
 * for cuda. Every call returns 0 or a negative errno and sets
 * gn_last_error() with a detail naming the op and shapes involved.
 */
#ifndef GN_RUNTIME_BACKEND_H
#define GN_RUNTIME_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "tensor_meta.h"

struct gn_backend;

struct gn_backend_ops {
	const char *name;
	/* Buffers are plain host memory: kernels may read host bytes in place.
	 */
	int host_memory;
	/*
	 * Open the backend. -ENODEV when its device is absent (the runtime
	 * then falls back to another backend); *ctx is the backend's state.
	 */
	int (*init)(void **ctx);
	void (*fini)(void *ctx);
	/* A line describing the device for logs ("NVIDIA H100, 80 GiB"). */
	const char *(*describe)(void *ctx);

	/* Device memory. alloc returns NULL with -ENOMEM set. */
	void *(*alloc)(void *ctx, size_t size);
	void (*free)(void *ctx, void *ptr);
	int (*upload)(void *ctx, void *dst_dev, const void *src_host,
		      size_t size);
	int (*download)(void *ctx, void *dst_host, const void *src_dev,
			size_t size);

	/*
	 * Run one node: `op` with `attrs` (docs/OPS.md) on `nin` inputs whose
	 * metas and device buffers are given, writing `out` (already
	 * allocated, out_meta sized). The plan decoder has checked shapes,
	 * dtypes and attributes. Returns -EOPNOTSUPP naming op and dtype when
	 * the backend lacks it.
	 */
	int (*run)(void *ctx, enum gn_op op, const struct gn_op_attrs *attrs,
		   const struct gn_tensor_meta *const *in_meta,
		   const void *const *in, int nin,
		   const struct gn_tensor_meta *out_meta, void *out);

	/* Wait until all work queued on the device is done. */
	int (*sync)(void *ctx);
};

/* Register a backend; called by GN_BACKEND_REGISTER at load time. */
void gn_backend_register(const struct gn_backend_ops *ops);

#define GN_BACKEND_REGISTER(ops)                                            \
	__attribute__((constructor)) static void gn_backend_reg_##ops(void) \
	{                                                                   \
		gn_backend_register(&(ops));                                \
	}

/* The backend registered under `name`, or NULL. */
const struct gn_backend_ops *gn_backend_find(const char *name);

/* An opened backend: its ops and state. */
struct gn_backend {
	const struct gn_backend_ops *ops;
	void *ctx;
};

/*
 * Open backend `name`, or with name "auto" the first that initialises of
 * "cuda" then "cpu", logging which was chosen and why the others were not.
 * Returns 0 or a negative errno (-ENOENT for an unknown name, -ENODEV when
 * the named device is absent).
 */
int gn_backend_open(const char *name, struct gn_backend *out);
void gn_backend_close(struct gn_backend *b);

#endif /* GN_RUNTIME_BACKEND_H */
