/*
 * The CPU backend: host memory as device memory; oneDNN (cpu_dnnl.c) for
 * the heavy f32 ops and fused chains, plain C kernels for every op in the
 * table (cpu_*.c), which also take whatever oneDNN declines and are the
 * reference every other backend is checked against.
 *
 * GENIE_CPU_THREADS sets the kernel thread count (default: online CPUs);
 * GENIE_CPU_DNNL=0 turns oneDNN off (plain C only).
 */
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "cpu_internal.h"
#include "gn_error.h"

struct cpu_ctx {
	struct gn_cpu_dnnl *dnnl; /* NULL: plain C only */
	int chains_on_c; /* GENIE_CPU_CHAINS_ON_C=1: test hook, see below */
	int threads;
	char what[96];
};

static int env_int(const char *name, int dflt)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (v == NULL || *v == '\0')
		return dflt;
	n = strtol(v, &end, 10);
	if (*end != '\0' || n < 0 || n > 4096)
		return -1;
	return (int)n;
}

static int cpu_init(void **ctx)
{
	struct cpu_ctx *c = calloc(1, sizeof(*c));
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int use_dnnl = env_int("GENIE_CPU_DNNL", 1);

	if (c == NULL)
		return gn_error_set(-ENOMEM, "cpu: out of memory");
	c->threads = env_int("GENIE_CPU_THREADS", 0);
	if (c->threads < 0 || use_dnnl < 0) {
		free(c);
		return gn_error_set(-EINVAL,
				    "cpu: GENIE_CPU_THREADS and GENIE_CPU_DNNL "
				    "take a number (0..4096), saw '%s' and "
				    "'%s'",
				    getenv("GENIE_CPU_THREADS")
					    ? getenv("GENIE_CPU_THREADS")
					    : "",
				    getenv("GENIE_CPU_DNNL")
					    ? getenv("GENIE_CPU_DNNL")
					    : "");
	}
	if (c->threads == 0)
		c->threads = ncpu > 0 ? (int)ncpu : 1;
	/* Runs accepted chains through the fallback oneDNN rarely needs. */
	c->chains_on_c = env_int("GENIE_CPU_CHAINS_ON_C", 0) == 1;
	/* OpenMP's pool is per process: the last backend opened sets it. */
	omp_set_num_threads(c->threads);
	if (use_dnnl) {
		c->dnnl = gn_cpu_dnnl_create();
		if (c->dnnl == NULL) {
			free(c);
			return gn_error_set(-ENOMEM, "cpu: cannot open oneDNN");
		}
	}
	snprintf(c->what, sizeof(c->what), "host memory, %s, %d threads",
		 c->dnnl ? "oneDNN + C kernels" : "plain C kernels",
		 c->threads);
	*ctx = c;
	return 0;
}

static void cpu_fini(void *ctx)
{
	struct cpu_ctx *c = ctx;

	if (c == NULL)
		return;
	gn_cpu_dnnl_destroy(c->dnnl);
	free(c);
}

static const char *cpu_describe(void *ctx)
{
	return ((struct cpu_ctx *)ctx)->what;
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

/* The plain C kernel for `c` (the reference). */
static int run_c(const struct cpu_call *c)
{
	switch (gn_op_kind(c->op)) {
	case GN_OP_KIND_UNARY:
	case GN_OP_KIND_BINARY: return gn_cpu_elementwise(c);
	case GN_OP_KIND_SHAPE: return gn_cpu_shape(c);
	case GN_OP_KIND_SOURCE:
		return c->op == GN_OP_INPUT
			       ? gn_cpu_unsupported(c, c->om->dtype)
			       : gn_cpu_source(c);
	default: break;
	}
	switch (c->op) {
	case GN_OP_MATMUL:
	case GN_OP_LINEAR: return gn_cpu_linalg(c);
	case GN_OP_REDUCE_SUM:
	case GN_OP_REDUCE_MEAN:
	case GN_OP_REDUCE_MAX:
	case GN_OP_ARGMAX:
	case GN_OP_EMBEDDING:
	case GN_OP_EMBEDDING_BAG:
	case GN_OP_GATHER: return gn_cpu_reduce_index(c);
	default: return gn_cpu_nn(c);
	}
}

static int cpu_run(void *ctx, enum gn_op op, const struct gn_op_attrs *attrs,
		   const struct gn_tensor_meta *const *im,
		   const void *const *in, int nin,
		   const struct gn_tensor_meta *om, void *out)
{
	const struct cpu_call c = {op, attrs, im, in, nin, om, out};
	struct cpu_ctx *cc = ctx;
	int rc;

	if (gn_meta_numel(om) == 0)
		return 0; /* nothing to write */
	rc = gn_cpu_dnnl_run(cc->dnnl, &c, 0);
	if (rc != GN_CPU_DNNL_DECLINE)
		return rc;
	return run_c(&c);
}

static void *scratch_alloc(const struct gn_tensor_meta *m)
{
	size_t n = gn_meta_nbytes(m);

	return aligned_alloc(64, ((n ? n : 1) + 63) & ~(size_t)63);
}

/*
 * A chain oneDNN accepted and then could not build (a shape its
 * primitives refuse): each node on the C kernels, through temporaries.
 */
static int run_chain_c(const struct gn_fused_call *c)
{
	const struct gn_tensor_meta *im[GN_FUSE_MAX_EXTRA + 1];
	const void *ib[GN_FUSE_MAX_EXTRA + 1];
	void *cur = c->nsteps ? scratch_alloc(c->head_meta) : c->out;
	struct cpu_call call = {c->op,	c->attrs,     c->in_meta, c->in,
				c->nin, c->head_meta, cur};
	int rc;

	if (cur == NULL)
		return gn_error_set(-ENOMEM, "cpu: no memory for a chain");
	rc = gn_meta_numel(c->head_meta) ? run_c(&call) : 0;
	for (int i = 0; rc == 0 && i < c->nsteps; i++) {
		const struct gn_fused_step *s = &c->steps[i];
		int last = i == c->nsteps - 1, e = 0;
		void *next = last ? c->out : scratch_alloc(s->out_meta);

		if (next == NULL) {
			rc = gn_error_set(-ENOMEM, "cpu: no memory for a "
						   "chain");
			break;
		}
		for (int k = 0; k <= s->nextra; k++) {
			if (k == s->chain_pos) {
				im[k] = i ? c->steps[i - 1].out_meta
					  : c->head_meta;
				ib[k] = cur;
			} else {
				im[k] = s->extra_meta[e];
				ib[k] = s->extra[e++];
			}
		}
		call = (struct cpu_call){s->op,		s->attrs,    im,  ib,
					 s->nextra + 1, s->out_meta, next};
		rc = gn_meta_numel(s->out_meta) ? run_c(&call) : 0;
		free(cur);
		cur = next;
	}
	if (cur != c->out)
		free(cur);
	return rc;
}

static int cpu_fusable(void *ctx, const struct gn_fused_call *c,
		       const struct gn_fused_step *s)
{
	return ((struct cpu_ctx *)ctx)->dnnl != NULL &&
	       gn_cpu_dnnl_fusable(c, s);
}

/* A chain on oneDNN, or node by node on the C kernels when it declines. */
static int cpu_run_fused(void *ctx, const struct gn_fused_call *c)
{
	struct cpu_ctx *cc = ctx;
	int rc;

	if (gn_meta_numel(c->out_meta) == 0)
		return 0;
	rc = cc->chains_on_c ? GN_CPU_DNNL_DECLINE
			     : gn_cpu_dnnl_run_fused(cc->dnnl, c);
	return rc == GN_CPU_DNNL_DECLINE ? run_chain_c(c) : rc;
}

static void cpu_forget(void *ctx, const void *ptr)
{
	struct cpu_ctx *cc = ctx;

	if (cc->dnnl != NULL)
		gn_cpu_dnnl_forget(cc->dnnl, ptr);
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
	.fusable = cpu_fusable,
	.run_fused = cpu_run_fused,
	.forget = cpu_forget,
};

GN_BACKEND_REGISTER(cpu_backend_ops)
