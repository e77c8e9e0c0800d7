/*
 * ONNX models (genie/onnx.h): parse and check at load, record at run.
 * See onnx_internal.h for how values are kept.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <xxhash.h>

#include "client_internal.h"
#include "gn_error.h"
#include "onnx_internal.h"

/* Initializers this large are made resident at load, smaller on use. */
#define GN_ONNX_EAGER 1024

/* Largest .onnx accepted (protobuf's own limit is 2 GiB). */
#define GN_ONNX_MAX_BYTES (2047ull << 20)

struct gn_model {
	struct gn_session *s;
	struct gn_session *host; /* private local session for host values */
	Onnx__ModelProto *pb;
	int64_t opset;
	int resident;
	/* Every named value, and a hash index over the names. */
	struct gn_onnx_value *vals;
	uint32_t nvals;
	uint32_t *index; /* nslots entries, value index + 1, 0 free */
	uint32_t nslots;
	/* Per node: its op and the value indices of its operands/results. */
	const struct gn_onnx_op **ops;
	int32_t **node_in, **node_out; /* -1 for an omitted optional */
	struct gn_model_io *ins, *outs;
	uint32_t *in_val, *out_val;
	int nins, nouts;
	/* Input shapes the kept host values were computed for. */
	int64_t *sig;
	int have_sig;
};

/* ---- errors and small helpers ------------------------------------------ */

int gn_onnx_err(const struct gn_onnx_ctx *c, int code, const char *fmt, ...)
{
	char detail[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	return gn_error_set(
		code, "onnx: %s node '%s' (opset %lld): %s", c->node->op_type,
		c->node->name && *c->node->name ? c->node->name : "(unnamed)",
		(long long)c->opset, detail);
}

enum gn_dtype gn_onnx_dtype(int32_t t)
{
	switch (t) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: return GN_DTYPE_F32;
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: return GN_DTYPE_F16;
	case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: return GN_DTYPE_BF16;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return GN_DTYPE_I64;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: return GN_DTYPE_I32;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: return GN_DTYPE_I8;
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: return GN_DTYPE_U8;
	case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return GN_DTYPE_BOOL;
	default: return GN_DTYPE_INVALID;
	}
}

const Onnx__AttributeProto *gn_onnx_attr(const struct gn_onnx_ctx *c,
					 const char *name)
{
	for (size_t i = 0; i < c->node->n_attribute; i++)
		if (c->node->attribute[i]->name &&
		    strcmp(c->node->attribute[i]->name, name) == 0)
			return c->node->attribute[i];
	return NULL;
}

int64_t gn_onnx_attr_i(const struct gn_onnx_ctx *c, const char *name,
		       int64_t dflt)
{
	const Onnx__AttributeProto *a = gn_onnx_attr(c, name);

	return a && a->has_i ? a->i : dflt;
}

float gn_onnx_attr_f(const struct gn_onnx_ctx *c, const char *name, float dflt)
{
	const Onnx__AttributeProto *a = gn_onnx_attr(c, name);

	return a && a->has_f ? a->f : dflt;
}

int gn_onnx_attr_ints(const struct gn_onnx_ctx *c, const char *name, int64_t *v,
		      int max)
{
	const Onnx__AttributeProto *a = gn_onnx_attr(c, name);
	int n;

	if (a == NULL)
		return 0;
	n = a->n_ints > (size_t)max ? max : (int)a->n_ints;
	if (n > 0)
		memcpy(v, a->ints, sizeof(int64_t) * (size_t)n);
	return a->n_ints > (size_t)max ? -E2BIG : n;
}

static uint64_t numel(int ndim, const int64_t *shape)
{
	uint64_t n = 1;

	for (int i = 0; i < ndim; i++)
		n *= (uint64_t)shape[i];
	return n;
}

static void host_free(struct gn_onnx_host **hp)
{
	if (*hp == NULL)
		return;
	if (!(*hp)->borrowed)
		free((*hp)->data);
	free(*hp);
	*hp = NULL;
}

/* ---- the value index ------------------------------------------------------
 */

static uint32_t name_hash(const char *s)
{
	return (uint32_t)XXH3_64bits(s, strlen(s));
}

static int32_t find_val(const struct gn_model *m, const char *name)
{
	uint32_t h = name_hash(name);

	for (uint32_t p = 0; p < m->nslots; p++) {
		uint32_t slot = m->index[(h + p) & (m->nslots - 1)];

		if (slot == 0)
			return -1;
		if (strcmp(m->vals[slot - 1].name, name) == 0)
			return (int32_t)(slot - 1);
	}
	return -1;
}

/* The value called `name`, added when new; -1 when out of room. */
static int32_t add_val(struct gn_model *m, const char *name, uint32_t cap)
{
	int32_t i = find_val(m, name);
	uint32_t h = name_hash(name);

	if (i >= 0)
		return i;
	if (m->nvals >= cap)
		return -1;
	for (uint32_t p = 0; p < m->nslots; p++) {
		uint32_t *slot = &m->index[(h + p) & (m->nslots - 1)];

		if (*slot == 0) {
			m->vals[m->nvals].name = name;
			*slot = ++m->nvals;
			return (int32_t)(m->nvals - 1);
		}
	}
	return -1;
}

/* ---- initializers -----------------------------------------------------------
 */

/* Copy a TensorProto's elements into `dst` (numel elements of dt). */
static int tensor_bytes(const Onnx__TensorProto *t, enum gn_dtype dt,
			uint64_t n, void *dst, const char *what)
{
	size_t es = gn_dtype_size(dt);

	if (t->has_data_location &&
	    t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
		return gn_error_set(-EOPNOTSUPP,
				    "onnx: %s '%s' keeps its data in an "
				    "external file, which Genie does not read; "
				    "save the model with the data inside",
				    what, t->name ? t->name : "");
	if (t->has_raw_data) {
		if (t->raw_data.len != n * es)
			return gn_error_set(-EINVAL,
					    "onnx: %s '%s': %zu bytes of data, "
					    "%s[%llu] needs %llu",
					    what, t->name ? t->name : "",
					    t->raw_data.len, gn_dtype_name(dt),
					    (unsigned long long)n,
					    (unsigned long long)(n * es));
		if (n > 0)
			memcpy(dst, t->raw_data.data, n * es);
		return 0;
	}
	switch (dt) {
	case GN_DTYPE_F32:
		if (t->n_float_data != n)
			break;
		if (n > 0)
			memcpy(dst, t->float_data, n * 4);
		return 0;
	case GN_DTYPE_I64:
		if (t->n_int64_data != n)
			break;
		if (n > 0)
			memcpy(dst, t->int64_data, n * 8);
		return 0;
	default:
		/* int32_data carries i32, i8, u8, bool, f16 and bf16 bits. */
		if (t->n_int32_data != n)
			break;
		for (uint64_t i = 0; i < n; i++) {
			int32_t v = t->int32_data[i];

			if (es == 4)
				memcpy((char *)dst + 4 * i, &v, 4);
			else if (es == 2)
				((uint16_t *)dst)[i] = (uint16_t)v;
			else
				((uint8_t *)dst)[i] = (uint8_t)v;
		}
		return 0;
	}
	return gn_error_set(-EINVAL,
			    "onnx: %s '%s': data has the wrong element count "
			    "for %s[%llu]",
			    what, t->name ? t->name : "", gn_dtype_name(dt),
			    (unsigned long long)n);
}

struct gn_onnx_host *gn_onnx_host_i64(const int64_t *v, int n)
{
	struct gn_onnx_host *h = calloc(1, sizeof(*h));

	if (h != NULL)
		h->data = malloc(n ? sizeof(int64_t) * (size_t)n : 1);
	if (h == NULL || h->data == NULL) {
		free(h);
		gn_error_set(-ENOMEM, "onnx: out of memory");
		return NULL;
	}
	h->dtype = GN_DTYPE_I64;
	h->ndim = 1;
	h->shape[0] = n;
	if (n)
		memcpy(h->data, v, sizeof(int64_t) * (size_t)n);
	return h;
}

int gn_onnx_tensor_to_host(const Onnx__TensorProto *t, const char *what,
			   struct gn_onnx_host **out)
{
	enum gn_dtype dt = gn_onnx_dtype(t->data_type);
	struct gn_onnx_host *h;
	uint64_t n;
	int rc;

	*out = NULL;
	if (dt == GN_DTYPE_INVALID)
		return gn_error_set(-EOPNOTSUPP,
				    "onnx: %s '%s' has ONNX data type %d, "
				    "which Genie does not map (expected float, "
				    "float16, bfloat16, int64, int32, int8, "
				    "uint8 or bool)",
				    what, t->name ? t->name : "", t->data_type);
	if (t->n_dims > GN_MAX_DIMS)
		return gn_error_set(-EOPNOTSUPP,
				    "onnx: %s '%s' has %zu dims, Genie takes "
				    "at most %d",
				    what, t->name ? t->name : "", t->n_dims,
				    GN_MAX_DIMS);
	for (size_t i = 0; i < t->n_dims; i++)
		if (t->dims[i] < 0 || t->dims[i] > (1ll << 40))
			return gn_error_set(-EINVAL,
					    "onnx: %s '%s': dim %zu is %lld",
					    what, t->name ? t->name : "", i,
					    (long long)t->dims[i]);
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return gn_error_set(-ENOMEM, "onnx: out of memory");
	h->dtype = dt;
	h->ndim = (int)t->n_dims;
	if (t->n_dims > 0)
		memcpy(h->shape, t->dims, sizeof(int64_t) * t->n_dims);
	n = numel(h->ndim, h->shape);
	if (n > (GN_ONNX_MAX_BYTES / gn_dtype_size(dt))) {
		free(h);
		return gn_error_set(-EINVAL, "onnx: %s '%s' is too large", what,
				    t->name ? t->name : "");
	}
	h->data = malloc(n ? n * gn_dtype_size(dt) : 1);
	if (h->data == NULL) {
		free(h);
		return gn_error_set(-ENOMEM, "onnx: out of memory for '%s'",
				    t->name ? t->name : "");
	}
	rc = tensor_bytes(t, dt, n, h->data, what);
	if (rc != 0) {
		host_free(&h);
		return rc;
	}
	*out = h;
	return 0;
}

/* ---- load -------------------------------------------------------------------
 */

void gn_model_opts_init(struct gn_model_opts *o, size_t opts_size)
{
	struct gn_model_opts d = {.opts_size = sizeof(d),
				  .resident_weights = 1};

	if (o == NULL)
		return;
	memset(o, 0, opts_size);
	memcpy(o, &d, opts_size < sizeof(d) ? opts_size : sizeof(d));
	o->opts_size = opts_size;
}

static int io_from_info(const Onnx__ValueInfoProto *vi, struct gn_model_io *io,
			const char *what)
{
	const Onnx__TypeProto__Tensor *tt;

	io->name = vi->name ? vi->name : "";
	if (vi->type == NULL ||
	    vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
	    vi->type->tensor_type == NULL)
		return gn_error_set(-EOPNOTSUPP,
				    "onnx: graph %s '%s' is not a tensor "
				    "(sequences, maps and optionals are not "
				    "supported)",
				    what, io->name);
	tt = vi->type->tensor_type;
	io->dtype = gn_onnx_dtype(tt->elem_type);
	if (io->dtype == GN_DTYPE_INVALID)
		return gn_error_set(-EOPNOTSUPP,
				    "onnx: graph %s '%s' has ONNX element type "
				    "%d, which Genie does not map",
				    what, io->name, tt->elem_type);
	io->ndim = -1; /* unknown rank */
	if (tt->shape == NULL)
		return 0;
	if (tt->shape->n_dim > GN_MAX_DIMS)
		return gn_error_set(-EOPNOTSUPP,
				    "onnx: graph %s '%s' has %zu dims, Genie "
				    "takes at most %d",
				    what, io->name, tt->shape->n_dim,
				    GN_MAX_DIMS);
	io->ndim = (int)tt->shape->n_dim;
	for (int i = 0; i < io->ndim; i++) {
		const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];

		io->shape[i] =
			d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
				? d->dim_value
				: -1;
	}
	return 0;
}

static void model_free(struct gn_model *m)
{
	if (m == NULL)
		return;
	for (uint32_t i = 0; m->vals && i < m->nvals; i++)
		host_free(&m->vals[i].h);
	for (size_t i = 0; m->pb && m->pb->graph && i < m->pb->graph->n_node;
	     i++) {
		if (m->node_in)
			free(m->node_in[i]);
		if (m->node_out)
			free(m->node_out[i]);
	}
	free(m->node_in);
	free(m->node_out);
	free(m->ops);
	free(m->vals);
	free(m->index);
	free(m->ins);
	free(m->outs);
	free(m->in_val);
	free(m->out_val);
	free(m->sig);
	if (m->pb)
		onnx__model_proto__free_unpacked(m->pb, NULL);
	gn_session_destroy(&m->host);
	free(m);
}

static int model_opset(struct gn_model *m)
{
	const Onnx__ModelProto *pb = m->pb;

	m->opset = -1;
	for (size_t i = 0; i < pb->n_opset_import; i++) {
		const Onnx__OperatorSetIdProto *o = pb->opset_import[i];

		if (o->domain == NULL || *o->domain == '\0' ||
		    strcmp(o->domain, "ai.onnx") == 0)
			m->opset = o->has_version ? o->version : -1;
	}
	if (m->opset < 11 || m->opset > 17)
		return gn_error_set(
			-EOPNOTSUPP,
			"onnx: the model imports opset %lld of the "
			"default domain; Genie maps opsets 11 to 17",
			(long long)m->opset);
	return 0;
}

/* Check every node and index every value; initializers become tensors. */
static int model_index(struct gn_model *m)
{
	const Onnx__GraphProto *g = m->pb->graph;
	uint32_t cap = (uint32_t)(g->n_input + g->n_initializer + 1);
	int rc;

	for (size_t i = 0; i < g->n_node; i++)
		cap += (uint32_t)g->node[i]->n_output;
	for (m->nslots = 16; m->nslots < 2 * cap; m->nslots *= 2)
		;
	m->vals = calloc(cap, sizeof(*m->vals));
	m->index = calloc(m->nslots, sizeof(*m->index));
	m->ops = calloc(g->n_node + 1, sizeof(*m->ops));
	m->node_in = calloc(g->n_node + 1, sizeof(*m->node_in));
	m->node_out = calloc(g->n_node + 1, sizeof(*m->node_out));
	if (!m->vals || !m->index || !m->ops || !m->node_in || !m->node_out)
		return gn_error_set(-ENOMEM, "onnx: out of memory");

	for (size_t i = 0; i < g->n_initializer; i++) {
		const Onnx__TensorProto *t = g->initializer[i];
		struct gn_onnx_value *v;
		struct gn_onnx_host *h;
		int32_t k;

		if (t->name == NULL || *t->name == '\0')
			return gn_error_set(-EINVAL,
					    "onnx: initializer %zu has no name",
					    i);
		k = add_val(m, t->name, cap);
		if (k < 0)
			return gn_error_set(-ENOMEM, "onnx: value table full");
		rc = gn_onnx_tensor_to_host(t, "initializer", &h);
		if (rc != 0)
			return rc;
		v = &m->vals[k];
		/* One copy, in the session: the host view borrows it. */
		v->t = gn_tensor_from_host(m->s, h->dtype, h->ndim, h->shape,
					   h->data, GN_TENSOR_COPY);
		if (v->t == NULL) {
			host_free(&h);
			return gn_last_error_code();
		}
		free(h->data);
		h->data = v->t->data;
		h->borrowed = 1;
		host_free(&v->h);
		v->h = h;
		v->is_init = 1;
		/*
		 * Weights go to the target now; small initializers (shape
		 * constants, mostly) when a plan first reads one, if ever.
		 */
		if (m->resident && gn_tensor_nbytes(v->t) >= GN_ONNX_EAGER &&
		    gn_tensor_make_resident_shared(v->t, 0) != 0)
			return gn_last_error_code();
	}
	for (size_t i = 0; i < g->n_input; i++) {
		const char *name = g->input[i]->name ? g->input[i]->name : "";
		int32_t k = find_val(m, name);

		if (k >= 0 && m->vals[k].is_init)
			continue; /* an input with a default: the weight */
		m->nins++;
	}
	m->ins = calloc((size_t)m->nins + 1, sizeof(*m->ins));
	m->in_val = calloc((size_t)m->nins + 1, sizeof(*m->in_val));
	m->sig = calloc((size_t)m->nins * GN_MAX_DIMS + 1, sizeof(*m->sig));
	if (!m->ins || !m->in_val || !m->sig)
		return gn_error_set(-ENOMEM, "onnx: out of memory");
	m->nins = 0;
	for (size_t i = 0; i < g->n_input; i++) {
		const char *name = g->input[i]->name ? g->input[i]->name : "";
		int32_t k = find_val(m, name);

		if (k >= 0 && m->vals[k].is_init)
			continue;
		if (k >= 0)
			return gn_error_set(-EINVAL,
					    "onnx: graph input '%s' is listed "
					    "twice",
					    name);
		rc = io_from_info(g->input[i], &m->ins[m->nins], "input");
		if (rc != 0)
			return rc;
		k = add_val(m, name, cap);
		if (k < 0)
			return gn_error_set(-ENOMEM, "onnx: value table full");
		m->vals[k].is_input = 1;
		m->in_val[m->nins++] = (uint32_t)k;
	}

	for (size_t i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto *n = g->node[i];
		struct gn_onnx_ctx c = {.m = m, .node = n, .opset = m->opset};

		if (n->op_type == NULL)
			return gn_error_set(-EINVAL,
					    "onnx: node %zu has no op type", i);
		if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx"))
			return gn_onnx_err(&c, -EOPNOTSUPP,
					   "op domain '%s' is not supported "
					   "(only the default ONNX domain)",
					   n->domain);
		m->ops[i] = gn_onnx_find_op(n->op_type);
		if (m->ops[i] == NULL)
			return gn_onnx_err(&c, -EOPNOTSUPP,
					   "op type '%s' is not supported "
					   "(docs/MODELS.md lists the ONNX ops "
					   "Genie maps)",
					   n->op_type);
		if (n->n_input > 16 || n->n_output > 16)
			return gn_onnx_err(&c, -EOPNOTSUPP,
					   "%zu inputs and %zu outputs; Genie "
					   "maps at most 16 of each",
					   n->n_input, n->n_output);
		m->node_in[i] = calloc(n->n_input + 1, sizeof(int32_t));
		m->node_out[i] = calloc(n->n_output + 1, sizeof(int32_t));
		if (!m->node_in[i] || !m->node_out[i])
			return gn_error_set(-ENOMEM, "onnx: out of memory");
		for (size_t k = 0; k < n->n_input; k++) {
			const char *in = n->input[k] ? n->input[k] : "";

			m->node_in[i][k] = *in ? find_val(m, in) : -1;
			if (*in && m->node_in[i][k] < 0)
				return gn_onnx_err(&c, -EINVAL,
						   "input %zu '%s' is not made "
						   "by any earlier node, "
						   "initializer or graph input",
						   k, in);
		}
		for (size_t k = 0; k < n->n_output; k++) {
			const char *out = n->output[k] ? n->output[k] : "";

			m->node_out[i][k] = -1;
			if (*out == '\0')
				continue;
			if (find_val(m, out) >= 0)
				return gn_onnx_err(&c, -EINVAL,
						   "output '%s' is already "
						   "defined (ONNX graphs are "
						   "single assignment)",
						   out);
			m->node_out[i][k] = add_val(m, out, cap);
			if (m->node_out[i][k] < 0)
				return gn_error_set(-ENOMEM,
						    "onnx: value table full");
		}
	}

	m->nouts = (int)g->n_output;
	m->outs = calloc((size_t)m->nouts + 1, sizeof(*m->outs));
	m->out_val = calloc((size_t)m->nouts + 1, sizeof(*m->out_val));
	if (!m->outs || !m->out_val)
		return gn_error_set(-ENOMEM, "onnx: out of memory");
	for (int i = 0; i < m->nouts; i++) {
		int32_t k;

		rc = io_from_info(g->output[i], &m->outs[i], "output");
		if (rc != 0)
			return rc;
		k = find_val(m, m->outs[i].name);
		if (k < 0)
			return gn_error_set(-EINVAL,
					    "onnx: graph output '%s' is not "
					    "made by any node",
					    m->outs[i].name);
		m->out_val[i] = (uint32_t)k;
	}
	return 0;
}

struct gn_model *gn_model_load_buffer(struct gn_session *s, const void *data,
				      size_t len,
				      const struct gn_model_opts *opts)
{
	struct gn_model_opts o;
	struct gn_model *m;
	int rc;

	gn_model_opts_init(&o, sizeof(o));
	if (opts != NULL)
		memcpy(&o, opts,
		       opts->opts_size < sizeof(o) ? opts->opts_size
						   : sizeof(o));
	if (s == NULL || (data == NULL && len > 0)) {
		gn_error_set(-EINVAL, "onnx: NULL session or data");
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		gn_error_set(-ENOMEM, "onnx: out of memory");
		return NULL;
	}
	m->s = s;
	m->resident = o.resident_weights;
	m->pb = onnx__model_proto__unpack(NULL, len, data);
	if (m->pb == NULL || m->pb->graph == NULL) {
		gn_error_set(-EBADMSG,
			     "onnx: %zu bytes are not an ONNX model (%s)", len,
			     m->pb ? "no graph in the ModelProto"
				   : "protobuf did not parse: truncated or "
				     "not ONNX");
		model_free(m);
		return NULL;
	}
	rc = model_opset(m);
	if (rc == 0)
		rc = model_index(m);
	if (rc != 0) {
		model_free(m);
		return NULL;
	}
	return m;
}

struct gn_model *gn_model_load(struct gn_session *s, const char *path,
			       const struct gn_model_opts *opts)
{
	struct gn_model *m;
	struct stat st;
	FILE *f;
	void *buf;

	if (path == NULL) {
		gn_error_set(-EINVAL, "onnx: NULL path");
		return NULL;
	}
	f = fopen(path, "rb");
	if (f == NULL) {
		gn_error_set(-errno, "onnx: '%s': cannot open: %s", path,
			     strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > GN_ONNX_MAX_BYTES) {
		gn_error_set(S_ISREG(st.st_mode) ? -EFBIG : -EINVAL,
			     "onnx: '%s': not a regular file of at most "
			     "%llu bytes",
			     path, (unsigned long long)GN_ONNX_MAX_BYTES);
		fclose(f);
		return NULL;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (buf == NULL ||
	    fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		gn_error_set(buf ? -EIO : -ENOMEM, "onnx: '%s': cannot read",
			     path);
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	m = gn_model_load_buffer(s, buf, (size_t)st.st_size, opts);
	free(buf);
	if (m == NULL) {
		/* "onnx: 'PATH': <what the loader said>", as for open errors.
		 */
		const char *why = gn_last_error();
		char copy[480];

		snprintf(copy, sizeof(copy), "%s",
			 strncmp(why, "onnx: ", 6) == 0 ? why + 6 : why);
		gn_error_set(gn_last_error_code(), "onnx: '%s': %s", path,
			     copy);
	}
	return m;
}

void gn_model_free(struct gn_model **m)
{
	if (m == NULL)
		return;
	model_free(*m);
	*m = NULL;
}

int gn_model_num_inputs(const struct gn_model *m)
{
	return m ? m->nins : 0;
}

int gn_model_num_outputs(const struct gn_model *m)
{
	return m ? m->nouts : 0;
}

const struct gn_model_io *gn_model_input(const struct gn_model *m, int i)
{
	return m && i >= 0 && i < m->nins ? &m->ins[i] : NULL;
}

const struct gn_model_io *gn_model_output(const struct gn_model *m, int i)
{
	return m && i >= 0 && i < m->nouts ? &m->outs[i] : NULL;
}

int gn_model_input_index(const struct gn_model *m, const char *name)
{
	for (int i = 0; m && name && i < m->nins; i++)
		if (strcmp(m->ins[i].name, name) == 0)
			return i;
	return -1;
}

int gn_model_output_index(const struct gn_model *m, const char *name)
{
	for (int i = 0; m && name && i < m->nouts; i++)
		if (strcmp(m->outs[i].name, name) == 0)
			return i;
	return -1;
}

/* ---- operands
 * ---------------------------------------------------------------- */

struct gn_tensor *gn_onnx_lazy(struct gn_onnx_ctx *c, int k)
{
	struct gn_onnx_value *v = k < c->nin ? c->in[k] : NULL;
	struct gn_onnx_host *h;
	struct gn_tensor *t;

	if (v == NULL) {
		gn_onnx_err(c, -EINVAL, "operand %d is missing", k);
		return NULL;
	}
	h = v->h;
	if (c->s == c->m->s) {
		if (v->t == NULL && h != NULL)
			v->t = gn_tensor_from_host(c->s, h->dtype, h->ndim,
						   h->shape, h->data,
						   GN_TENSOR_COPY);
		if (v->t != NULL && v->is_init && c->m->resident &&
		    !gn_tensor_is_resident(v->t) && gn_tensor_nbytes(v->t) &&
		    gn_tensor_make_resident_shared(v->t, 0) != 0)
			return NULL;
		return v->t;
	}
	/* The host session: a view of the host value for this call. */
	if (h == NULL) {
		gn_onnx_err(c, -EINVAL, "operand %d has no host value", k);
		return NULL;
	}
	t = gn_tensor_from_host(c->s, h->dtype, h->ndim, h->shape, h->data,
				GN_TENSOR_BORROW);
	return t;
}

int gn_onnx_host_ints(struct gn_onnx_ctx *c, int k, int64_t *v, int max)
{
	struct gn_onnx_value *val = k < c->nin ? c->in[k] : NULL;
	const struct gn_onnx_host *h = val ? val->h : NULL;
	uint64_t n;

	if (val == NULL)
		return gn_onnx_err(c, -EINVAL, "operand %d is missing", k);
	if (h == NULL)
		return gn_onnx_err(c, -EOPNOTSUPP,
				   "operand %d ('%s') is computed at run time; "
				   "Genie needs it known when the graph is "
				   "recorded (static shapes)",
				   k, val->name);
	n = numel(h->ndim, h->shape);
	if (n > (uint64_t)max)
		return gn_onnx_err(c, -EINVAL,
				   "operand %d ('%s') has %llu values, "
				   "expected at most %d",
				   k, val->name, (unsigned long long)n, max);
	for (uint64_t i = 0; i < n; i++) {
		switch (h->dtype) {
		case GN_DTYPE_I64: v[i] = ((const int64_t *)h->data)[i]; break;
		case GN_DTYPE_I32: v[i] = ((const int32_t *)h->data)[i]; break;
		case GN_DTYPE_F32:
			v[i] = (int64_t)((const float *)h->data)[i];
			break;
		case GN_DTYPE_U8:
		case GN_DTYPE_BOOL: v[i] = ((const uint8_t *)h->data)[i]; break;
		case GN_DTYPE_I8: v[i] = ((const int8_t *)h->data)[i]; break;
		default:
			return gn_onnx_err(c, -EOPNOTSUPP,
					   "operand %d ('%s') is %s, expected "
					   "integers",
					   k, val->name,
					   gn_dtype_name(h->dtype));
		}
	}
	return (int)n;
}

int gn_onnx_host_float(struct gn_onnx_ctx *c, int k, double *v)
{
	struct gn_onnx_value *val = k < c->nin ? c->in[k] : NULL;
	const struct gn_onnx_host *h = val ? val->h : NULL;

	if (h == NULL || numel(h->ndim, h->shape) != 1)
		return gn_onnx_err(c, -EOPNOTSUPP,
				   "operand %d must be one value known when "
				   "the graph is recorded",
				   k);
	switch (h->dtype) {
	case GN_DTYPE_F32: *v = *(const float *)h->data; return 0;
	case GN_DTYPE_I64: *v = (double)*(const int64_t *)h->data; return 0;
	case GN_DTYPE_I32: *v = *(const int32_t *)h->data; return 0;
	default:
		return gn_onnx_err(c, -EOPNOTSUPP,
				   "operand %d is %s, expected a number", k,
				   gn_dtype_name(h->dtype));
	}
}

/* ---- run
 * ---------------------------------------------------------------------- */

/* A host value holding the materialized `t` (of the host session). */
static int host_of(struct gn_tensor *t, struct gn_onnx_host **out)
{
	struct gn_onnx_host *h = calloc(1, sizeof(*h));
	size_t n = gn_tensor_nbytes(t);
	int rc;

	if (h == NULL)
		return gn_error_set(-ENOMEM, "onnx: out of memory");
	h->dtype = gn_tensor_dtype(t);
	h->ndim = gn_tensor_shape(t, h->shape);
	h->data = malloc(n ? n : 1);
	if (h->data == NULL) {
		free(h);
		return gn_error_set(-ENOMEM, "onnx: out of memory");
	}
	rc = gn_tensor_to_host(t, h->data, n);
	if (rc != 0) {
		host_free(&h);
		return rc;
	}
	*out = h;
	return 0;
}

/* Whether node i can run on the host: all its operands are host values. */
static int host_ready(const struct gn_model *m, size_t i)
{
	const Onnx__NodeProto *n = m->pb->graph->node[i];

	if (!m->ops[i]->host_ok)
		return 0;
	for (size_t k = 0; k < n->n_input; k++) {
		int32_t v = m->node_in[i][k];

		if (v >= 0 && (m->vals[v].h == NULL ||
			       numel(m->vals[v].h->ndim, m->vals[v].h->shape) >
				       GN_ONNX_HOST_MAX))
			return 0;
	}
	return 1;
}

static int run_node(struct gn_model *m, size_t i)
{
	const Onnx__NodeProto *n = m->pb->graph->node[i];
	struct gn_onnx_ctx c = {.m = m, .node = n, .opset = m->opset};
	int host = host_ready(m, i), rc;

	/* Results kept from an earlier run with the same input shapes. */
	if (host && n->n_output > 0) {
		int kept = 1;

		for (size_t k = 0; k < n->n_output; k++)
			if (m->node_out[i][k] >= 0 &&
			    !m->vals[m->node_out[i][k]].node_host)
				kept = 0;
		if (kept)
			return 0;
	}
	if (host && m->host == NULL) {
		/* Made on first need: most runs after the first need none. */
		struct gn_session_opts so;

		gn_session_opts_init(&so, sizeof(so));
		so.target = "local";
		so.name = "genie-onnx-host";
		m->host = gn_session_create(&so);
		if (m->host == NULL)
			return gn_onnx_err(&c, gn_last_error_code(),
					   "no local session for values known "
					   "while recording: %s",
					   gn_last_error());
	}
	c.s = host ? m->host : m->s;
	c.nin = (int)n->n_input;
	c.nout = (int)n->n_output;
	for (size_t k = 0; k < n->n_input; k++)
		c.in[k] = m->node_in[i][k] >= 0 ? &m->vals[m->node_in[i][k]]
						: NULL;
	rc = m->ops[i]->map(&c);
	for (size_t k = 0; rc != 0 && k < n->n_output; k++)
		host_free(&c.hout[k]);
	if (rc != 0)
		return rc;
	for (size_t k = 0; k < n->n_output; k++) {
		struct gn_onnx_value *v;

		if (m->node_out[i][k] < 0) {
			host_free(&c.hout[k]);
			continue;
		}
		v = &m->vals[m->node_out[i][k]];
		if (c.hout[k] != NULL) {
			/* Known now; depends on shapes only: kept. */
			host_free(&v->h);
			v->h = c.hout[k];
			v->t = NULL;
			v->node_host = 1;
			continue;
		}
		if (c.out[k] == NULL)
			return gn_onnx_err(&c, -EOPNOTSUPP,
					   "output %zu ('%s') is not produced "
					   "by Genie's mapping of this op",
					   k, v->name);
		if (!host) {
			v->t = c.out[k];
			continue;
		}
		host_free(&v->h);
		v->t = NULL;
		rc = host_of(c.out[k], &v->h);
		if (rc != 0)
			return gn_onnx_err(&c, rc, "computing it at load: %s",
					   gn_last_error());
		v->node_host = 1;
	}
	return 0;
}

/* Check the inputs and note their shapes; drop host values made for others. */
static int bind_inputs(struct gn_model *m, struct gn_tensor *const *inputs)
{
	int64_t sig[GN_MAX_DIMS];
	int same = m->have_sig;

	for (int i = 0; i < m->nins; i++) {
		const struct gn_model_io *io = &m->ins[i];
		struct gn_tensor *t = inputs ? inputs[i] : NULL;
		int nd;

		if (t == NULL || t->session != m->s)
			return gn_error_set(-EINVAL, "onnx: input '%s': %s",
					    io->name,
					    t ? "tensor of another session"
					      : "missing (NULL)");
		nd = gn_tensor_shape(t, sig);
		if (gn_tensor_dtype(t) != io->dtype ||
		    (io->ndim >= 0 && nd != io->ndim))
			return gn_error_set(
				-EINVAL,
				"onnx: input '%s': expected %s with "
				"%d dims, got %s with %d",
				io->name, gn_dtype_name(io->dtype), io->ndim,
				gn_dtype_name(gn_tensor_dtype(t)), nd);
		for (int d = 0; io->ndim >= 0 && d < nd; d++)
			if (io->shape[d] >= 0 && io->shape[d] != sig[d])
				return gn_error_set(
					-EINVAL,
					"onnx: input '%s': dim %d is %lld, "
					"the model fixes it at %lld",
					io->name, d, (long long)sig[d],
					(long long)io->shape[d]);
		for (int d = 0; d < GN_MAX_DIMS; d++) {
			int64_t want = d < nd ? sig[d] : -1 - nd;

			if (m->sig[i * GN_MAX_DIMS + d] != want)
				same = 0;
			m->sig[i * GN_MAX_DIMS + d] = want;
		}
	}
	if (!same)
		for (uint32_t v = 0; v < m->nvals; v++)
			if (m->vals[v].node_host) {
				host_free(&m->vals[v].h);
				m->vals[v].t = NULL;
				m->vals[v].node_host = 0;
			}
	m->have_sig = 1;
	for (int i = 0; i < m->nins; i++)
		m->vals[m->in_val[i]].t = inputs[i];
	return 0;
}

int gn_model_run(struct gn_model *m, struct gn_tensor *const *inputs,
		 struct gn_tensor **outputs)
{
	const Onnx__GraphProto *g;
	int rc;

	if (m == NULL || outputs == NULL || (m->nins > 0 && inputs == NULL))
		return gn_error_set(-EINVAL, "onnx: NULL model, inputs or "
					     "outputs");
	g = m->pb->graph;
	/* Values made by nodes last run are stale, except kept host ones. */
	for (uint32_t v = 0; v < m->nvals; v++)
		if (!m->vals[v].is_init && !m->vals[v].node_host) {
			m->vals[v].t = NULL;
			host_free(&m->vals[v].h);
		}
	rc = bind_inputs(m, inputs);
	for (size_t i = 0; rc == 0 && i < g->n_node; i++)
		rc = run_node(m, i);
	for (int i = 0; rc == 0 && i < m->nouts; i++) {
		struct gn_onnx_value *v = &m->vals[m->out_val[i]];
		struct gn_onnx_ctx c = {.m = m,
					.s = m->s,
					.nin = 1,
					.in = {v},
					.opset = m->opset};
		static const Onnx__NodeProto out_node = {
			.op_type = (char *)"output", .name = (char *)""};

		c.node = &out_node;
		outputs[i] = gn_onnx_lazy(&c, 0);
		if (outputs[i] == NULL)
			rc = gn_last_error_code();
	}
	return rc;
}
