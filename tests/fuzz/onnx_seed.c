/*
 * Two small valid ONNX models built with protobuf-c: the fuzz target's
 * seeds, and the base the loader's unit tests mutate. Variant 0 (opset
 * 13): x [1,2,4,4] -> Conv(pads 1) -> Relu -> Reshape [1,-1] -> Softmax
 * -> y [1,48]. Variant 1 (opset 11): the same to Reshape, then MatMul by
 * [48,5] -> Softmax -> y [1,5].
 */
#include <string.h>

#include "fuzz.h"
#include "onnx.pb-c.h"

struct mb {
	Onnx__ModelProto m;
	Onnx__GraphProto g;
	Onnx__OperatorSetIdProto op, *opp;
	Onnx__NodeProto n[8], *np[8];
	Onnx__AttributeProto a[8], *ap[8][2];
	Onnx__TensorProto t[4], *tp[4];
	Onnx__ValueInfoProto io[2], *inp, *outp;
	Onnx__TypeProto ty[2];
	Onnx__TypeProto__Tensor tt[2];
	Onnx__TensorShapeProto sh[2];
	Onnx__TensorShapeProto__Dimension d[2][4], *dp[2][4];
	int nn, na, nt;
};

static void vi(struct mb *b, int k, const char *name, const int64_t *dims,
	       int nd)
{
	onnx__value_info_proto__init(&b->io[k]);
	onnx__type_proto__init(&b->ty[k]);
	onnx__type_proto__tensor__init(&b->tt[k]);
	onnx__tensor_shape_proto__init(&b->sh[k]);
	for (int i = 0; i < nd; i++) {
		onnx__tensor_shape_proto__dimension__init(&b->d[k][i]);
		b->d[k][i].value_case =
			ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
		b->d[k][i].dim_value = dims[i];
		b->dp[k][i] = &b->d[k][i];
	}
	b->sh[k].n_dim = (size_t)nd;
	b->sh[k].dim = b->dp[k];
	b->tt[k].has_elem_type = 1;
	b->tt[k].elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	b->tt[k].shape = &b->sh[k];
	b->ty[k].value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	b->ty[k].tensor_type = &b->tt[k];
	b->io[k].name = (char *)name;
	b->io[k].type = &b->ty[k];
}

static Onnx__NodeProto *node(struct mb *b, const char *op, char **in, int nin,
			     char **out)
{
	Onnx__NodeProto *n = &b->n[b->nn];

	onnx__node_proto__init(n);
	n->op_type = (char *)op;
	n->name = (char *)op;
	n->n_input = (size_t)nin;
	n->input = in;
	n->n_output = 1;
	n->output = out;
	b->np[b->nn] = n;
	b->nn++;
	return n;
}

static void attr_ints(struct mb *b, Onnx__NodeProto *n, const char *name,
		      int64_t *v, int count)
{
	Onnx__AttributeProto *a = &b->a[b->na];

	onnx__attribute_proto__init(a);
	a->name = (char *)name;
	a->has_type = 1;
	a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
	a->n_ints = (size_t)count;
	a->ints = v;
	b->ap[b->na][0] = a;
	n->n_attribute = 1;
	n->attribute = b->ap[b->na];
	b->na++;
}

static void init_f32(struct mb *b, const char *name, const int64_t *dims,
		     int nd, float *v, size_t n)
{
	Onnx__TensorProto *t = &b->t[b->nt];

	onnx__tensor_proto__init(t);
	t->name = (char *)name;
	t->n_dims = (size_t)nd;
	t->dims = (int64_t *)dims;
	t->has_data_type = 1;
	t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	t->n_float_data = n;
	t->float_data = v;
	b->tp[b->nt++] = t;
}

size_t fuzz_seed(uint8_t *out, size_t cap, int variant)
{
	static const int64_t xd[4] = {1, 2, 4, 4}, wd[4] = {3, 2, 3, 3};
	static const int64_t bd[1] = {3}, sd[1] = {2}, yd[2] = {1, 48};
	static const int64_t md[2] = {48, 5}, y2d[2] = {1, 5};
	static int64_t pads[4] = {1, 1, 1, 1}, shape_v[2] = {1, -1};
	static float w[54], bias[3], mw[240];
	static char *x_in[] = {"x", "W", "B"}, *c_out[] = {"c"};
	static char *r_in[] = {"c"}, *r_out[] = {"r"};
	static char *s_in[] = {"r", "shape"}, *s_out[] = {"s"};
	static char *m_in[] = {"s", "M"}, *m_out[] = {"m"};
	static char *f_in[] = {"m"}, *f_out[] = {"y"}, *f2_in[] = {"s"};
	struct mb b;
	Onnx__TensorProto shape_t;
	size_t len;

	memset(&b, 0, sizeof(b));
	for (int i = 0; i < 54; i++)
		w[i] = (float)((i % 7) - 3) / 10.0f;
	for (int i = 0; i < 240; i++)
		mw[i] = (float)((i % 5) - 2) / 20.0f;
	onnx__model_proto__init(&b.m);
	onnx__graph_proto__init(&b.g);
	onnx__operator_set_id_proto__init(&b.op);
	b.op.has_version = 1;
	b.op.version = variant ? 11 : 13;
	b.opp = &b.op;
	b.m.has_ir_version = 1;
	b.m.ir_version = 7;
	b.m.n_opset_import = 1;
	b.m.opset_import = &b.opp;
	b.m.graph = &b.g;
	b.g.name = "seed";
	/* Conv -> Relu -> Reshape -> (Softmax | MatMul -> Softmax). */
	attr_ints(&b, node(&b, "Conv", x_in, 3, c_out), "pads", pads, 4);
	node(&b, "Relu", r_in, 1, r_out);
	node(&b, "Reshape", s_in, 2, s_out);
	if (variant) {
		node(&b, "MatMul", m_in, 2, m_out);
		node(&b, "Softmax", f_in, 1, f_out);
	} else {
		node(&b, "Softmax", f2_in, 1, f_out);
	}
	init_f32(&b, "W", wd, 4, w, 54);
	init_f32(&b, "B", bd, 1, bias, 3);
	onnx__tensor_proto__init(&shape_t);
	shape_t.name = "shape";
	shape_t.n_dims = 1;
	shape_t.dims = (int64_t *)sd;
	shape_t.has_data_type = 1;
	shape_t.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
	shape_t.n_int64_data = 2;
	shape_t.int64_data = shape_v;
	b.tp[b.nt++] = &shape_t;
	if (variant)
		init_f32(&b, "M", md, 2, mw, 240);
	vi(&b, 0, "x", xd, 4);
	vi(&b, 1, "y", variant ? y2d : yd, 2);
	b.inp = &b.io[0];
	b.outp = &b.io[1];
	b.g.n_node = (size_t)b.nn;
	b.g.node = b.np;
	b.g.n_initializer = (size_t)b.nt;
	b.g.initializer = b.tp;
	b.g.n_input = 1;
	b.g.input = &b.inp;
	b.g.n_output = 1;
	b.g.output = &b.outp;
	len = onnx__model_proto__get_packed_size(&b.m);
	if (len > cap)
		return 0;
	return onnx__model_proto__pack(&b.m, out);
}
