/*
 * Private to the op table: the inference functions op.c dispatches to
 * and the helpers they share.
 */
#ifndef GN_COMMON_OP_INTERNAL_H
#define GN_COMMON_OP_INTERNAL_H

#include "op.h"

/* What an infer function is given; `name` is the op's name for errors. */
struct infer_ctx {
	enum gn_op op;
	const char *name;
	const struct gn_tensor_meta *const *in;
	int nin;
	const struct gn_op_attrs *a;
};

typedef int (*gn_infer_fn)(const struct infer_ctx *c,
			   struct gn_tensor_meta *out);

/* Set -EINVAL "<op>: <why>: a is f32[..], b is f32[..]". Returns -EINVAL. */
int gn_infer_fail(const struct infer_ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

int gn_infer_source(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_unary(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_binary(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_compare(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_where(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_cast(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_matmul(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_linear(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_conv2d(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_pool2d(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_global_avgpool(const struct infer_ctx *c,
			    struct gn_tensor_meta *out);
int gn_infer_batchnorm(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_layernorm(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_softmax(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_sdpa(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_reduce(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_argmax(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_embedding(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_embedding_bag(const struct infer_ctx *c,
			   struct gn_tensor_meta *out);
int gn_infer_gather(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_reshape(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_permute(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_slice(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_expand(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_squeeze(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_unsqueeze(const struct infer_ctx *c, struct gn_tensor_meta *out);
int gn_infer_concat(const struct infer_ctx *c, struct gn_tensor_meta *out);

#endif /* GN_COMMON_OP_INTERNAL_H */
