/*
 * Private to the ONNX loader (client/onnx/): the model, its values and the
 * node mapping shared by onnx_model.c (load, run) and onnx_ops.c (one
 * mapping per ONNX op type).
 *
 * During a run each ONNX value is a lazy tensor, a host value (a small
 * array known while recording: constants, shapes and the arithmetic
 * exporters do on them), or both. Host values come from Constant nodes,
 * initializers, Shape, and nodes whose operands are all host values and
 * whose result is small: those run right away on a private local session
 * (the same kernels as everything else) and, as they depend only on
 * constants and the input shapes, are kept for the next run with the same
 * input shapes.
 */
#ifndef GN_CLIENT_ONNX_INTERNAL_H
#define GN_CLIENT_ONNX_INTERNAL_H

#include <stdint.h>

#include <genie/genie.h>
#include <genie/onnx.h>

#include "onnx.pb-c.h"

/* Host values up to this many elements are computed while recording. */
#define GN_ONNX_HOST_MAX 65536

struct gn_onnx_host {
	enum gn_dtype dtype;
	int ndim;
	int64_t shape[GN_MAX_DIMS];
	void *data; /* owned (malloc) unless `borrowed` */
	int borrowed;
};

struct gn_onnx_value {
	const char *name;
	struct gn_tensor *t;	/* lazy, in the model's session */
	struct gn_onnx_host *h; /* known while recording */
	int is_init;		/* initializer: both, for the model's life */
	int is_input;		/* a graph input the caller feeds */
	int node_host;		/* h made by a node: kept across runs */
};

/* What a node mapping sees: its operands and where results go. */
struct gn_onnx_ctx {
	struct gn_model *m;
	struct gn_session *s; /* where lazy results are recorded */
	const Onnx__NodeProto *node;
	int64_t opset;
	int nin;
	struct gn_onnx_value *in[16]; /* NULL for an omitted optional */
	int nout;
	struct gn_tensor *out[16]; /* results */
	/* Or results known now (Shape, Constant): owned by the value after. */
	struct gn_onnx_host *hout[16];
};

/* One ONNX op type: its mapping and the opsets it covers. */
struct gn_onnx_op {
	const char *type;
	int (*map)(struct gn_onnx_ctx *c);
	/* Result is computed on the host when operands are host values. */
	int host_ok;
};

/* The table (onnx_ops.c), and lookup by name; NULL when unmapped. */
const struct gn_onnx_op *gn_onnx_find_op(const char *type);

/* Attribute lookup on the current node (NULL / default when absent). */
const Onnx__AttributeProto *gn_onnx_attr(const struct gn_onnx_ctx *c,
					 const char *name);
int64_t gn_onnx_attr_i(const struct gn_onnx_ctx *c, const char *name,
		       int64_t dflt);
float gn_onnx_attr_f(const struct gn_onnx_ctx *c, const char *name, float dflt);
/* Repeated ints: count (0 when absent), copied into v[max]. */
int gn_onnx_attr_ints(const struct gn_onnx_ctx *c, const char *name, int64_t *v,
		      int max);

/* Operand k as a lazy tensor of the context's session (made on demand). */
struct gn_tensor *gn_onnx_lazy(struct gn_onnx_ctx *c, int k);

/*
 * Operand k as host int64 values (an int or float array known while
 * recording), at most `max`; returns the count or a negative errno naming
 * the node and operand when it is only known at run time.
 */
int gn_onnx_host_ints(struct gn_onnx_ctx *c, int k, int64_t *v, int max);
/* Operand k as one host float (scalar or 1-element), into *v. */
int gn_onnx_host_float(struct gn_onnx_ctx *c, int k, double *v);

/* Error helper: -code with "<op> node '<name>' (opset N): <detail>". */
int gn_onnx_err(const struct gn_onnx_ctx *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A host value from a TensorProto (initializer, Constant attribute). */
int gn_onnx_tensor_to_host(const Onnx__TensorProto *t, const char *what,
			   struct gn_onnx_host **out);

/* A new host i64 vector of n values (NULL with -ENOMEM set). */
struct gn_onnx_host *gn_onnx_host_i64(const int64_t *v, int n);

/* ONNX TensorProto.DataType to Genie, GN_DTYPE_INVALID when unmapped. */
enum gn_dtype gn_onnx_dtype(int32_t onnx_type);

#endif /* GN_CLIENT_ONNX_INTERNAL_H */
