/*
 * Private to the CPU backend: the call every kernel receives, element
 * loads and stores for every dtype, and broadcast iteration.
 */
#ifndef GN_CPU_INTERNAL_H
#define GN_CPU_INTERNAL_H

#include <stdint.h>

#include "backend.h"

struct cpu_call {
	enum gn_op op;
	const struct gn_op_attrs *a;
	const struct gn_tensor_meta *const *im;
	const void *const *in;
	int nin;
	const struct gn_tensor_meta *om;
	void *out;
};

/* Element `i` of a `dt` buffer as a double, and back (rounding as C). */
double gn_cpu_load(enum gn_dtype dt, const void *p, uint64_t i);
void gn_cpu_store(enum gn_dtype dt, void *p, uint64_t i, double v);

/* IEEE half and bfloat16 from and to f32, round to nearest even. */
float gn_f16_to_f32(uint16_t h);
uint16_t gn_f32_to_f16(float f);
float gn_bf16_to_f32(uint16_t h);
uint16_t gn_f32_to_bf16(float f);

/*
 * Strides (in elements) of `m` seen through an output of `nd` dims, 0
 * where `m` is broadcast.
 */
void gn_cpu_bstrides(const struct gn_tensor_meta *m, int nd, int64_t *st);

/* Row-major strides of `m`. */
void gn_cpu_strides(const struct gn_tensor_meta *m, int64_t *st);

/* Kernel families; each returns 0 or a negative errno with detail. */
int gn_cpu_elementwise(const struct cpu_call *c);
int gn_cpu_source(const struct cpu_call *c);
int gn_cpu_shape(const struct cpu_call *c);
int gn_cpu_linalg(const struct cpu_call *c);
int gn_cpu_nn(const struct cpu_call *c);
int gn_cpu_reduce_index(const struct cpu_call *c);

/*
 * oneDNN kernels (cpu_dnnl.c): one context per backend instance. The run
 * functions return GN_CPU_DNNL_DECLINE for cases oneDNN does not take
 * (other dtypes, shapes, attributes); the plain C kernel runs those.
 */
#define GN_CPU_DNNL_DECLINE 1
struct gn_cpu_dnnl;
struct gn_cpu_dnnl *gn_cpu_dnnl_create(void);
void gn_cpu_dnnl_destroy(struct gn_cpu_dnnl *d);
int gn_cpu_dnnl_run(struct gn_cpu_dnnl *d, const struct cpu_call *c,
		    uint32_t stable_mask);
int gn_cpu_dnnl_fusable(const struct gn_fused_call *c,
			const struct gn_fused_step *s);
int gn_cpu_dnnl_run_fused(struct gn_cpu_dnnl *d, const struct gn_fused_call *c);
void gn_cpu_dnnl_forget(struct gn_cpu_dnnl *d, const void *ptr);

/* Error for a dtype the kernel does not handle. */
int gn_cpu_unsupported(const struct cpu_call *c, enum gn_dtype dt);

#endif /* GN_CPU_INTERNAL_H */
