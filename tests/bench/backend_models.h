/*
 * Models for the backend benchmark: ResNet-18 and one pre-LayerNorm
 * transformer encoder block, with deterministic weights.
 *
 * A model owns one flat f32 array holding every parameter in the order
 * PyTorch's state_dict() lists them (torchvision's resnet18 without the
 * num_batches_tracked counters; for the transformer block the order of
 * TRANSFORMER_PARAMS in backend_torch.py). bench_model_write() saves the
 * input followed by that array as raw little-endian f32, so the PyTorch side
 * loads exactly the same numbers by walking its own state_dict.
 *
 * bench_model_bind() makes the parameters Genie tensors once (borrowed, so
 * the model must outlive the session), resident and pinned on the target
 * when asked; bench_model_forward() records one
 * forward pass afresh, as a user's code would each call.
 */
#ifndef GENIE_BENCH_BACKEND_MODELS_H
#define GENIE_BENCH_BACKEND_MODELS_H

#include <stddef.h>
#include <stdint.h>

#include <genie/genie.h>

#define BENCH_MAX_PARAMS 128

enum bench_model_kind {
	BENCH_RESNET18,
	BENCH_TRANSFORMER,
};

/* One parameter: where it lies in the flat array and its shape. */
struct bench_param {
	size_t off;
	int ndim;
	int64_t shape[4];
	struct gn_tensor *t; /* set by bench_model_bind() */
};

/* A convolution without bias followed by inference batch norm. */
struct bench_conv_bn {
	int w, gamma, beta, mean, var; /* parameter indices */
	int64_t stride, pad;
};

struct bench_basic_block {
	struct bench_conv_bn c1, c2, down;
	int has_down;
};

struct bench_model {
	enum bench_model_kind kind;
	float *data; /* every parameter, state_dict order */
	size_t count, cap;
	struct bench_param params[BENCH_MAX_PARAMS];
	int nparams;
	union {
		struct {
			struct bench_conv_bn stem;
			struct bench_basic_block blk[8];
			int fc_w, fc_b;
		} rn;
		struct {
			int ln1_g, ln1_b, wq, bq, wk, bk, wv, bv, wo, bo;
			int ln2_g, ln2_b, w1, b1, w2, b2;
		} tf;
	} u;
};

/* Transformer block dimensions (batch 1). */
#define BENCH_TF_SEQ 128
#define BENCH_TF_DMODEL 768
#define BENCH_TF_HEADS 12
#define BENCH_TF_MLP 3072

/*
 * Fill `m` with the model's parameters drawn from `seed`. Returns 0 or
 * -ENOMEM. Free with bench_model_free().
 */
int bench_model_init(struct bench_model *m, enum bench_model_kind kind,
		     uint64_t seed);
void bench_model_free(struct bench_model *m);

/* Input shape for `batch` (ResNet-18: [batch,3,224,224]; transformer:
 * [1,128,768] whatever the batch). Returns ndim. */
int bench_model_input_shape(const struct bench_model *m, int batch,
			    int64_t *shape);
/* Output shape likewise ([batch,1000] or [1,128,768]). Returns ndim. */
int bench_model_output_shape(const struct bench_model *m, int batch,
			     int64_t *shape);

/* `n` deterministic inputs in [-1, 1) from `seed`. */
void bench_fill_input(float *x, size_t n, uint64_t seed);

/*
 * Write `input` (`nin` floats) then every parameter to `path` as raw
 * little-endian f32. Returns 0 or -errno.
 */
int bench_model_write(const struct bench_model *m, const float *input,
		      size_t nin, const char *path);

/*
 * Make every parameter a Genie tensor of `s`, borrowing m->data. Returns 0,
 * or a negative errno with gn_last_error() set.
 */
int bench_model_bind(struct bench_model *m, struct gn_session *s, int resident);

/*
 * Record one forward pass of `x`; returns the lazy output, or NULL with
 * gn_last_error() naming the op that failed.
 */
struct gn_tensor *bench_model_forward(const struct bench_model *m,
				      struct gn_tensor *x);

#endif /* GENIE_BENCH_BACKEND_MODELS_H */
