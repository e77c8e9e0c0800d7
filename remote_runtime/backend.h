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

/*
 * Fusion. The executor finds chains where a compute node (conv2d, linear,
 * matmul) feeds, through values nobody else reads, a few cheap nodes
 * (batchnorm, add, an activation) and asks the backend whether it can take
 * each next step; an accepted chain runs as one call whose only buffer is
 * the last step's output. A step's operands other than the chain value are
 * `extra` (for batchnorm: mean, var, gamma, beta; for a binary op: the
 * other operand, on the side `chain_pos` says the chain value is not).
 */
#define GN_FUSE_MAX_STEPS 4
#define GN_FUSE_MAX_EXTRA 4

struct gn_fused_step {
	enum gn_op op;
	const struct gn_op_attrs *attrs;
	int chain_pos; /* operand index of the chain value in this op */
	int nextra;
	uint32_t extra_stable_mask; /* as gn_fused_call.stable_mask */
	const struct gn_tensor_meta *extra_meta[GN_FUSE_MAX_EXTRA];
	const void *extra[GN_FUSE_MAX_EXTRA];
	const struct gn_tensor_meta *out_meta;
};

struct gn_fused_call {
	enum gn_op op; /* the head node */
	const struct gn_op_attrs *attrs;
	const struct gn_tensor_meta *const *in_meta;
	const void *const *in;
	int nin;
	const struct gn_tensor_meta *head_meta; /* the head's own result */
	/*
	 * Bit k: head operand k keeps the same bytes at the same address
	 * until the backend's forget() is called for it (registry tensors,
	 * a local session's tensors), so derived forms of it may be cached.
	 */
	uint32_t stable_mask;
	int nsteps;
	struct gn_fused_step steps[GN_FUSE_MAX_STEPS];
	const struct gn_tensor_meta *out_meta; /* of the last step */
	void *out;
};

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

	/*
	 * Optional fusion (see struct gn_fused_call). fusable() answers
	 * whether `step` may follow the steps already in `c` (c->nsteps of
	 * them, c->out/out_meta not yet set); run_fused() runs the chain.
	 * Either may be NULL: every node then runs alone.
	 */
	int (*fusable)(void *ctx, const struct gn_fused_call *c,
		       const struct gn_fused_step *step);
	int (*run_fused)(void *ctx, const struct gn_fused_call *c);
	/*
	 * Optional: the buffer at `ptr` is about to be freed or rewritten;
	 * drop anything cached from its bytes.
	 */
	void (*forget)(void *ctx, const void *ptr);
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

/*
 * An opened backend: its ops and state. A backend whose memory is not
 * host memory comes with `host`, an opened cpu backend: a node the device
 * backend answers -EOPNOTSUPP for runs there, its operands downloaded and
 * its result uploaded (slow, but a plan never fails for want of a kernel).
 */
struct gn_backend {
	const struct gn_backend_ops *ops;
	void *ctx;
	struct gn_backend *host;
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
