/*
 * The CPU backend: plain C kernels for every op in the table (cpu_*.c),
 * host memory as device memory. The oneDNN kernels will take over the
 * heavy ops; these stay as the reference every other backend is checked
 * against.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu_internal.h"
#include "gn_error.h"

static int cpu_init(void **ctx)
{
	*ctx = NULL;
	return 0;
}

static void cpu_fini(void *ctx)
{
	(void)ctx;
}

static const char *cpu_describe(void *ctx)
{
	(void)ctx;
	return "host memory, plain C kernels";
}

static void *cpu_alloc(void *ctx, size_t size)
{
	/* 64-byte alignment suits every vector width the compiler may use. */
	void *p = aligned_alloc(64, (size + 63) & ~(size_t)63);

	(void)ctx;
	if (p == NULL)
		gn_error_set(-ENOMEM, "cpu: cannot allocate %zu bytes", size);
	return p;
}

static void cpu_free(void *ctx, void *ptr)
{
	(void)ctx;
	free(ptr);
}

static int cpu_copy(void *ctx, void *dst, const void *src, size_t size)
{
	(void)ctx;
	memcpy(dst, src, size);
	return 0;
}

static int cpu_sync(void *ctx)
{
	(void)ctx;
	return 0;
}

static int cpu_run(void *ctx, enum gn_op op, const struct gn_op_attrs *attrs,
		   const struct gn_tensor_meta *const *im,
		   const void *const *in, int nin,
		   const struct gn_tensor_meta *om, void *out)
{
	const struct cpu_call c = {op, attrs, im, in, nin, om, out};

	(void)ctx;
	if (gn_meta_numel(om) == 0)
		return 0; /* nothing to write */
	switch (gn_op_kind(op)) {
	case GN_OP_KIND_UNARY:
	case GN_OP_KIND_BINARY: return gn_cpu_elementwise(&c);
	case GN_OP_KIND_SHAPE: return gn_cpu_shape(&c);
	case GN_OP_KIND_SOURCE:
		return op == GN_OP_INPUT ? gn_cpu_unsupported(&c, om->dtype)
					 : gn_cpu_source(&c);
	default: break;
	}
	switch (op) {
	case GN_OP_MATMUL:
	case GN_OP_LINEAR: return gn_cpu_linalg(&c);
	case GN_OP_REDUCE_SUM:
	case GN_OP_REDUCE_MEAN:
	case GN_OP_REDUCE_MAX:
	case GN_OP_ARGMAX:
	case GN_OP_EMBEDDING:
	case GN_OP_EMBEDDING_BAG:
	case GN_OP_GATHER: return gn_cpu_reduce_index(&c);
	default: return gn_cpu_nn(&c);
	}
}

static const struct gn_backend_ops cpu_backend_ops = {
	.name = "cpu",
	.host_memory = 1,
	.init = cpu_init,
	.fini = cpu_fini,
	.describe = cpu_describe,
	.alloc = cpu_alloc,
	.free = cpu_free,
	.upload = cpu_copy,
	.download = cpu_copy,
	.run = cpu_run,
	.sync = cpu_sync,
};

GN_BACKEND_REGISTER(cpu_backend_ops)
