/*
 * ONNX models.
 *
 * gn_model_load() parses an .onnx file (opsets 11 to 17), checks that
 * every node is an op Genie maps (docs/MODELS.md lists them), folds the
 * shape arithmetic ONNX exporters emit (Shape, Gather on shapes, Concat of
 * dims...) at load time, and turns the initializers into tensors of the
 * session. gn_model_run() then records one forward pass on the session's
 * lazy graph, like any other Genie code: the outputs are lazy tensors to
 * materialize or copy out.
 *
 * Weights: by default every initializer of 1 KiB or more is made resident
 * on the session's target at load (smaller ones when a plan first reads
 * them), keyed by its content, so plans carry only the inputs and a second
 * session loading the same model sends no weight bytes.
 *
 * A model belongs to the session it was loaded in and must be freed
 * before it. Not thread-safe, like its session.
 */
#ifndef GENIE_ONNX_H
#define GENIE_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include <genie/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct gn_session;
struct gn_tensor;
struct gn_model;

/* Options for gn_model_load(); fill with gn_model_opts_init() first. */
struct gn_model_opts {
	size_t opts_size; /* sizeof(struct gn_model_opts) as compiled */
	/*
	 * 1 (default): initializers become resident on the target, shared by
	 * content with other sessions; 0: their bytes travel with each plan.
	 */
	int resident_weights;
};

void gn_model_opts_init(struct gn_model_opts *opts, size_t opts_size);

/*
 * Load the model at `path` into session `s` (`opts` may be NULL). Returns
 * NULL with gn_last_error() set: -ENOENT or -EIO when the file cannot be
 * read; -EBADMSG when it is not a valid ONNX ModelProto (truncated,
 * garbage); -EOPNOTSUPP for an op, opset, attribute or dtype Genie does not
 * map (the detail names the op type, the node name and the opset);
 * -EINVAL for an inconsistent graph (a value used before it is made,
 * shapes that do not fit); -ENOMEM; any error of making weights resident.
 */
struct gn_model *gn_model_load(struct gn_session *s, const char *path,
			       const struct gn_model_opts *opts);

/* As gn_model_load() from `len` bytes at `data` (copied as needed). */
struct gn_model *gn_model_load_buffer(struct gn_session *s, const void *data,
				      size_t len,
				      const struct gn_model_opts *opts);

/* Free the model (not its session's tensors); sets *m to NULL. */
void gn_model_free(struct gn_model **m);

/* A graph input or output. */
struct gn_model_io {
	const char *name; /* valid while the model lives */
	enum gn_dtype dtype;
	int ndim;
	int64_t shape[GN_MAX_DIMS]; /* -1 where the model leaves a dim open */
};

/* Inputs the caller feeds (graph inputs that are not initializers). */
int gn_model_num_inputs(const struct gn_model *m);
int gn_model_num_outputs(const struct gn_model *m);

/* Input or output `i`, or NULL when out of range. */
const struct gn_model_io *gn_model_input(const struct gn_model *m, int i);
const struct gn_model_io *gn_model_output(const struct gn_model *m, int i);

/* Index of the input or output called `name`, or -1. */
int gn_model_input_index(const struct gn_model *m, const char *name);
int gn_model_output_index(const struct gn_model *m, const char *name);

/*
 * Record one forward pass. `inputs` holds gn_model_num_inputs() tensors of
 * the model's session in input order; each must have the input's dtype and
 * a shape that fits it. Writes gn_model_num_outputs() lazy tensors to
 * `outputs`. Returns 0, or -EINVAL naming the input whose dtype or shape
 * does not fit, or the node whose op refused its operands (with the op's
 * own message); nodes recorded before a failure are read by nothing and
 * never run.
 */
int gn_model_run(struct gn_model *m, struct gn_tensor *const *inputs,
		 struct gn_tensor **outputs);

#ifdef __cplusplus
}
#endif

#endif /* GENIE_ONNX_H */
