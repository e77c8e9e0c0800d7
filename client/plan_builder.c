/*
 * Graph to genie.Plan: the message a runtime (or the local executor)
 * decodes. Tensor bytes are never inlined; inputs carry handles.
 */
#include "frame.h"
#include "genie/plan.pb-c.h"
#include "gn_error.h"
#include "graph.h"
#include "plan.h"

/* Build the plan message; everything it points to lives in `a`. */
int gn_plan_from_graph(const struct gn_graph *g, struct gn_arena *a,
		       Genie__Plan *plan)
{
	Genie__Node *nodes, **nodep;
	Genie__TensorMeta *metas;

	nodes = gn_arena_alloc(a, g->n * sizeof(*nodes), 8);
	nodep = gn_arena_alloc(a, g->n * sizeof(*nodep), 8);
	metas = gn_arena_alloc(a, g->n * sizeof(*metas), 8);
	if (!nodes || !nodep || !metas)
		return gn_last_error_code();
	for (uint32_t i = 0; i < g->n; i++) {
		const struct gn_graph_node *gn = &g->nodes[i];
		Genie__Node *n = &nodes[i];

		genie__node__init(n);
		genie__tensor_meta__init(&metas[i]);
		metas[i].dtype = (Genie__DType)gn->meta.dtype;
		metas[i].n_shape = (size_t)gn->meta.ndim;
		metas[i].shape = (int64_t *)gn->meta.shape;
		n->out = &metas[i];
		n->op = (Genie__OpType)gn->op;
		if (gn->op == GN_OP_INPUT) {
			n->handle.data = (uint8_t *)gn->handle;
			n->handle.len = GN_HANDLE_SIZE;
		}
		n->n_inputs = gn->nin;
		n->inputs = gn->in;
		n->n_iattrs = gn->attrs.ni;
		n->iattrs = (int64_t *)gn->attrs.i;
		n->n_fattrs = gn->attrs.nf;
		n->fattrs = (float *)gn->attrs.f;
		nodep[i] = n;
	}
	genie__plan__init(plan);
	plan->schema_version = GN_SCHEMA_VERSION;
	plan->n_nodes = g->n;
	plan->nodes = nodep;
	plan->n_outputs = g->noutputs;
	plan->outputs = g->outputs;
	plan->fingerprint = gn_graph_fingerprint(g);
	return 0;
}
