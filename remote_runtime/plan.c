/*
 * Plan decode and validation (see plan.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "frame.h"
#include "gn_error.h"
#include "plan.h"

int gn_meta_from_pb(const Genie__TensorMeta *pb, struct gn_tensor_meta *m,
		    const char *what)
{
	if (pb == NULL)
		return gn_error_set(-EINVAL, "%s: tensor meta missing", what);
	if (pb->n_shape > GN_MAX_DIMS)
		return gn_error_set(-EINVAL,
				    "%s: %zu dims, expected at most %d", what,
				    pb->n_shape, GN_MAX_DIMS);
	memset(m, 0, sizeof(*m));
	m->dtype = (enum gn_dtype)pb->dtype;
	m->ndim = (int)pb->n_shape;
	for (size_t i = 0; i < pb->n_shape; i++)
		m->shape[i] = pb->shape[i];
	return gn_meta_check(m, what);
}

void gn_meta_to_pb(const struct gn_tensor_meta *m, Genie__TensorMeta *pb,
		   int64_t *dims_store)
{
	genie__tensor_meta__init(pb);
	pb->dtype = (Genie__DType)m->dtype;
	pb->n_shape = (size_t)m->ndim;
	memcpy(dims_store, m->shape, sizeof(int64_t) * (size_t)m->ndim);
	pb->shape = dims_store;
}

/* Copy a node's operand list and attributes into the plan's arena. */
static int copy_lists(struct gn_plan *plan, const Genie__Node *n,
		      struct gn_plan_node *pn, const char *what)
{
	uint32_t *in = NULL;
	int64_t *ia = NULL;
	float *fa = NULL;

	if (n->n_iattrs > GN_OP_MAX_IATTRS || n->n_fattrs > GN_OP_MAX_FATTRS)
		return gn_error_set(-EINVAL,
				    "%s: %zu integer / %zu float attributes, "
				    "at most %d / %d",
				    what, n->n_iattrs, n->n_fattrs,
				    GN_OP_MAX_IATTRS, GN_OP_MAX_FATTRS);
	if (n->n_inputs)
		in = gn_arena_alloc(plan->arena, n->n_inputs * sizeof(*in), 4);
	if (n->n_iattrs)
		ia = gn_arena_alloc(plan->arena, n->n_iattrs * sizeof(*ia), 8);
	if (n->n_fattrs)
		fa = gn_arena_alloc(plan->arena, n->n_fattrs * sizeof(*fa), 4);
	if ((n->n_inputs && !in) || (n->n_iattrs && !ia) ||
	    (n->n_fattrs && !fa))
		return gn_last_error_code();
	if (n->n_inputs)
		memcpy(in, n->inputs, n->n_inputs * sizeof(*in));
	if (n->n_iattrs)
		memcpy(ia, n->iattrs, n->n_iattrs * sizeof(*ia));
	if (n->n_fattrs)
		memcpy(fa, n->fattrs, n->n_fattrs * sizeof(*fa));
	pn->nin = (uint32_t)n->n_inputs;
	pn->in = in;
	pn->attrs = (struct gn_op_attrs){ia, fa, (uint32_t)n->n_iattrs,
					 (uint32_t)n->n_fattrs};
	return 0;
}

static int decode_node(const Genie__Plan *pb, uint32_t i, struct gn_plan *plan)
{
	const Genie__Node *n = pb->nodes[i];
	struct gn_plan_node *pn = &plan->nodes[i];
	const struct gn_tensor_meta *in[GN_OP_MAX_INPUTS];
	struct gn_tensor_meta inferred;
	char what[64], s1[400], s2[96];
	int rc;

	if (n == NULL)
		return gn_error_set(-EINVAL, "plan node %u: missing", i);
	snprintf(what, sizeof(what), "plan node %u (%s)", i,
		 gn_op_name((enum gn_op)n->op));
	if (!gn_op_known((enum gn_op)n->op))
		return gn_error_set(-EOPNOTSUPP, "plan node %u: unknown op %d",
				    i, (int)n->op);
	pn->op = (enum gn_op)n->op;
	rc = gn_meta_from_pb(n->out, &pn->meta, what);
	if (rc != 0)
		return rc;
	if ((int)n->n_inputs < gn_op_min_inputs(pn->op) ||
	    (int)n->n_inputs > gn_op_max_inputs(pn->op))
		return gn_error_set(-EINVAL,
				    "%s: %zu operands, expected %d..%d", what,
				    n->n_inputs, gn_op_min_inputs(pn->op),
				    gn_op_max_inputs(pn->op));
	if (pn->op == GN_OP_INPUT) {
		if (n->handle.len != GN_HANDLE_SIZE)
			return gn_error_set(-EINVAL,
					    "%s: handle of %zu bytes, expected "
					    "%d",
					    what, n->handle.len,
					    GN_HANDLE_SIZE);
		memcpy(pn->handle, n->handle.data, GN_HANDLE_SIZE);
		return 0;
	}
	rc = copy_lists(plan, n, pn, what);
	if (rc != 0)
		return rc;
	for (uint32_t k = 0; k < pn->nin; k++) {
		if (pn->in[k] >= i)
			return gn_error_set(-EINVAL,
					    "%s: operand %u names node %u, "
					    "expected an earlier node (< %u)",
					    what, k, pn->in[k], i);
		in[k] = &plan->nodes[pn->in[k]].meta;
	}
	rc = gn_op_infer(pn->op, in, (int)pn->nin, &pn->attrs, &inferred);
	if (rc != 0) {
		snprintf(s1, sizeof(s1), "%s", gn_last_error());
		return gn_error_set(rc, "plan node %u: %s", i, s1);
	}
	if (!gn_meta_equal(&inferred, &pn->meta))
		return gn_error_set(-EINVAL,
				    "%s: recorded output %s, but operands give "
				    "%s",
				    what,
				    gn_meta_format(&pn->meta, s1, sizeof(s1)),
				    gn_meta_format(&inferred, s2, sizeof(s2)));
	return 0;
}

/* Liveness: where each value is last read (see struct gn_plan). */
static int plan_memory(struct gn_plan *plan)
{
	uint32_t n = plan->nnodes;

	plan->last_use = gn_arena_calloc(plan->arena,
					 3 * (size_t)n * sizeof(uint32_t), 4);
	if (plan->last_use == NULL)
		return gn_error_set(-ENOMEM, "plan: no memory to plan %u nodes",
				    n);
	plan->nreaders = plan->last_use + n;
	plan->reader = plan->last_use + 2 * (size_t)n;
	for (uint32_t i = 0; i < n; i++) {
		plan->last_use[i] = i;
		for (uint32_t k = 0; k < plan->nodes[i].nin; k++) {
			uint32_t p = plan->nodes[i].in[k];

			plan->last_use[p] = i;
			plan->reader[p] = i;
			plan->nreaders[p]++;
		}
	}
	for (uint32_t k = 0; k < plan->noutputs; k++)
		plan->last_use[plan->outputs[k]] = UINT32_MAX;
	return 0;
}

int gn_plan_decode(const Genie__Plan *pb, struct gn_plan **out)
{
	struct gn_plan *plan;
	int rc;

	if (pb->schema_version < GN_SCHEMA_VERSION_MIN ||
	    pb->schema_version > GN_SCHEMA_VERSION)
		return gn_error_set(-EPROTONOSUPPORT,
				    "plan: schema version %u, this runtime "
				    "speaks %u..%u",
				    pb->schema_version, GN_SCHEMA_VERSION_MIN,
				    GN_SCHEMA_VERSION);
	if (pb->n_nodes == 0 || pb->n_nodes > GN_PLAN_MAX_NODES)
		return gn_error_set(-EINVAL, "plan: %zu nodes, expected 1..%u",
				    pb->n_nodes, GN_PLAN_MAX_NODES);
	if (pb->n_outputs == 0 || pb->n_outputs > pb->n_nodes)
		return gn_error_set(-EINVAL,
				    "plan: %zu outputs, expected 1..%zu",
				    pb->n_outputs, pb->n_nodes);
	plan = calloc(1, sizeof(*plan));
	if (plan == NULL)
		return gn_error_set(-ENOMEM, "plan: out of memory");
	plan->arena = gn_arena_create(0);
	if (plan->arena == NULL) {
		rc = gn_last_error_code();
		goto fail;
	}
	plan->nodes = gn_arena_calloc(plan->arena,
				      pb->n_nodes * sizeof(*plan->nodes), 8);
	plan->outputs = gn_arena_alloc(
		plan->arena, pb->n_outputs * sizeof(*plan->outputs), 4);
	if (plan->nodes == NULL || plan->outputs == NULL) {
		rc = gn_error_set(-ENOMEM, "plan: no memory for %zu nodes",
				  pb->n_nodes);
		goto fail;
	}
	plan->nnodes = (uint32_t)pb->n_nodes;
	plan->noutputs = (uint32_t)pb->n_outputs;
	plan->fingerprint = pb->fingerprint;
	for (uint32_t i = 0; i < plan->nnodes; i++) {
		rc = decode_node(pb, i, plan);
		if (rc != 0)
			goto fail;
	}
	for (uint32_t i = 0; i < plan->noutputs; i++) {
		if (pb->outputs[i] >= plan->nnodes) {
			rc = gn_error_set(-EINVAL,
					  "plan: output %u names node %u, "
					  "plan has %u nodes",
					  i, pb->outputs[i], plan->nnodes);
			goto fail;
		}
		plan->outputs[i] = pb->outputs[i];
	}
	rc = plan_memory(plan);
	if (rc != 0)
		goto fail;
	*out = plan;
	return 0;

fail:
	gn_plan_free(&plan);
	return rc;
}

uint32_t gn_plan_count_inputs(const struct gn_plan *plan)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < plan->nnodes; i++)
		n += plan->nodes[i].op == GN_OP_INPUT;
	return n;
}

void gn_plan_free(struct gn_plan **plan)
{
	if (plan == NULL || *plan == NULL)
		return;
	gn_arena_destroy(&(*plan)->arena);
	free(*plan);
	*plan = NULL;
}
