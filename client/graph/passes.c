/*
 * Graph passes: common-subexpression elimination, constant folding and
 * elementwise fusion grouping, and the pipeline that runs them (see
 * graph.h). Dead-code elimination is in graph.c with the renumbering it
 * shares with toposort.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "backend.h"
#include "graph.h"
#include "gn_error.h"
#include "hash.h"

static int commutative(enum gn_op op)
{
	return op == GN_OP_ADD || op == GN_OP_MUL || op == GN_OP_MAXIMUM ||
	       op == GN_OP_MINIMUM || op == GN_OP_EQ || op == GN_OP_NE;
}

static uint64_t node_hash(const struct gn_graph_node *n)
{
	uint64_t h = gn_hash64(&n->op, sizeof(n->op), n->nin);

	h = gn_hash64(n->in, n->nin * sizeof(*n->in), h);
	h = gn_hash64(n->attrs.i, n->attrs.ni * sizeof(int64_t), h);
	h = gn_hash64(n->attrs.f, n->attrs.nf * sizeof(float), h);
	h = gn_hash64(n->meta.shape, sizeof(int64_t) * (size_t)n->meta.ndim,
		      h ^ (uint64_t)n->meta.dtype);
	if (n->op == GN_OP_INPUT && n->handle != NULL)
		h = gn_hash64(n->handle, 16, h);
	return h;
}

static int same_node(const struct gn_graph_node *a,
		     const struct gn_graph_node *b)
{
	if (a->op != b->op || a->nin != b->nin || a->attrs.ni != b->attrs.ni ||
	    a->attrs.nf != b->attrs.nf || !gn_meta_equal(&a->meta, &b->meta))
		return 0;
	if (a->op == GN_OP_INPUT)
		return a->handle && b->handle &&
		       memcmp(a->handle, b->handle, 16) == 0;
	return (a->nin == 0 ||
		memcmp(a->in, b->in, a->nin * sizeof(*a->in)) == 0) &&
	       (a->attrs.ni == 0 ||
		memcmp(a->attrs.i, b->attrs.i, a->attrs.ni * 8) == 0) &&
	       (a->attrs.nf == 0 ||
		memcmp(a->attrs.f, b->attrs.f, a->attrs.nf * 4) == 0);
}

int gn_pass_cse(struct gn_graph *g, uint32_t *changed)
{
	uint32_t cap = 16, merged = 0, *table, *fwd;

	while (cap < 2 * g->n)
		cap <<= 1;
	table = malloc(cap * sizeof(*table));
	fwd = malloc((g->n + 1) * sizeof(*fwd));
	if (table == NULL || fwd == NULL) {
		free(table);
		free(fwd);
		return gn_error_set(-ENOMEM, "cse: out of memory");
	}
	memset(table, 0xff, cap * sizeof(*table));
	for (uint32_t i = 0; i < g->n; i++) {
		struct gn_graph_node *n = &g->nodes[i];
		uint32_t slot;

		fwd[i] = i;
		for (uint32_t k = 0; k < n->nin; k++)
			n->in[k] = fwd[n->in[k]];
		if (commutative(n->op) && n->nin == 2 && n->in[0] > n->in[1]) {
			uint32_t t = n->in[0];

			n->in[0] = n->in[1];
			n->in[1] = t;
		}
		if ((n->flags & GN_NODE_DEAD) ||
		    (!gn_op_pure(n->op) && n->op != GN_OP_INPUT))
			continue;
		for (slot = (uint32_t)node_hash(n) & (cap - 1);
		     table[slot] != GN_GRAPH_NONE;
		     slot = (slot + 1) & (cap - 1))
			if (same_node(&g->nodes[table[slot]], n))
				break;
		if (table[slot] == GN_GRAPH_NONE) {
			table[slot] = i;
			continue;
		}
		fwd[i] = table[slot];
		n->flags |= GN_NODE_DEAD;
		merged++;
	}
	for (uint32_t i = 0; i < g->noutputs; i++) {
		g->outputs[i] = fwd[g->outputs[i]];
		g->nodes[g->outputs[i]].flags |= GN_NODE_OUTPUT;
	}
	free(table);
	free(fwd);
	if (changed)
		*changed = merged;
	return 0;
}

static int is_source(enum gn_op op)
{
	return op == GN_OP_FILL || op == GN_OP_ARANGE ||
	       op == GN_OP_RAND_UNIFORM || op == GN_OP_RAND_NORMAL;
}

/* Run one node on the CPU backend, whose buffers are host memory. */
static int fold_one(const struct gn_backend_ops *cpu, void *ctx,
		    struct gn_graph *g, uint32_t i)
{
	struct gn_graph_node *n = &g->nodes[i];
	const struct gn_tensor_meta *im[GN_OP_MAX_INPUTS];
	const void *ib[GN_OP_MAX_INPUTS];
	uint64_t bytes = gn_meta_nbytes(&n->meta);
	uint8_t *handle;
	void *out, *val;
	int rc;

	for (uint32_t k = 0; k < n->nin; k++) {
		im[k] = &g->nodes[n->in[k]].meta;
		ib[k] = g->nodes[n->in[k]].data;
	}
	out = cpu->alloc(ctx, bytes ? bytes : 1);
	if (out == NULL)
		return gn_last_error_code();
	rc = cpu->run(ctx, n->op, &n->attrs, im, ib, (int)n->nin, &n->meta,
		      out);
	if (rc != 0) {
		cpu->free(ctx, out);
		return rc;
	}
	val = gn_arena_alloc(g->arena, bytes ? bytes : 1, 64);
	handle = gn_arena_alloc(g->arena, 16, 8);
	if (val == NULL || handle == NULL) {
		cpu->free(ctx, out);
		return gn_last_error_code();
	}
	memcpy(val, out, bytes);
	cpu->free(ctx, out);
	if (getrandom(handle, 16, 0) != 16)
		return gn_error_set(-EIO, "fold: getrandom failed");
	n->op = GN_OP_INPUT;
	n->nin = 0;
	n->attrs = (struct gn_op_attrs){0};
	n->data = val;
	n->handle = handle;
	n->flags |= GN_NODE_CONSTANT;
	return 0;
}

/* Fold `i` when every operand has (or, being a small source, can get) a
 * value. Returns 1 when folded, 0 when left lazy, or a negative errno. */
static int try_fold(const struct gn_backend_ops *cpu, void *ctx,
		    struct gn_graph *g, const uint8_t *cst, uint32_t i,
		    uint64_t max_bytes)
{
	struct gn_graph_node *n = &g->nodes[i];
	int rc;

	if (n->nin == 0 || !gn_op_pure(n->op) ||
	    gn_meta_nbytes(&n->meta) > max_bytes)
		return 0;
	for (uint32_t k = 0; k < n->nin; k++)
		if (!cst[n->in[k]] ||
		    gn_meta_nbytes(&g->nodes[n->in[k]].meta) > max_bytes)
			return 0;
	for (uint32_t k = 0; k < n->nin; k++) {
		if (g->nodes[n->in[k]].data != NULL)
			continue;
		rc = fold_one(cpu, ctx, g, n->in[k]);
		if (rc != 0)
			return rc;
	}
	rc = fold_one(cpu, ctx, g, i);
	return rc == 0 ? 1 : rc;
}

int gn_pass_fold_constants(struct gn_graph *g, uint64_t max_bytes,
			   uint32_t *changed)
{
	const struct gn_backend_ops *cpu = gn_backend_find("cpu");
	uint8_t *cst = calloc(g->n + 1, 1);
	uint32_t folded = 0;
	void *ctx = NULL;
	int rc = 0;

	if (cst == NULL)
		return gn_error_set(-ENOMEM, "fold: out of memory");
	if (cpu == NULL || cpu->init(&ctx) != 0) {
		free(cst);
		return gn_error_set(-ENODEV, "fold: no cpu backend to fold on");
	}
	/*
	 * Constant: a source (fill, arange, seeded random), an input that
	 * folding made, or a pure op over constants. Inputs the caller
	 * supplied are not constants: work on them belongs to the target.
	 */
	for (uint32_t i = 0; i < g->n && rc == 0; i++) {
		struct gn_graph_node *n = &g->nodes[i];

		if (n->flags & GN_NODE_DEAD)
			continue;
		if (is_source(n->op) || (n->flags & GN_NODE_CONSTANT)) {
			cst[i] = 1;
			continue;
		}
		rc = try_fold(cpu, ctx, g, cst, i, max_bytes);
		if (rc == 1) {
			cst[i] = 1;
			folded++;
			rc = 0;
		} else if (rc == -EOPNOTSUPP || rc == -EINVAL) {
			/* The target may still run it; leave it lazy. */
			rc = 0;
		}
	}
	cpu->fini(ctx);
	free(cst);
	if (changed)
		*changed = folded;
	return rc;
}

static uint32_t uf_find(uint32_t *parent, uint32_t x)
{
	while (parent[x] != x) {
		parent[x] = parent[parent[x]];
		x = parent[x];
	}
	return x;
}

static int elementwise(enum gn_op op)
{
	enum gn_op_kind k = gn_op_kind(op);

	return k == GN_OP_KIND_UNARY || k == GN_OP_KIND_BINARY;
}

int gn_pass_group_elementwise(struct gn_graph *g, uint32_t *nregions)
{
	uint32_t *parent = malloc((g->n + 1) * sizeof(*parent));
	uint32_t *users = calloc(g->n + 1, sizeof(*users));
	uint32_t *size = calloc(g->n + 1, sizeof(*size));
	uint32_t *id = calloc(g->n + 1, sizeof(*id));
	uint32_t regions = 0;

	if (!parent || !users || !size || !id) {
		free(parent);
		free(users);
		free(size);
		free(id);
		return gn_error_set(-ENOMEM, "fuse: out of memory");
	}
	for (uint32_t i = 0; i < g->n; i++) {
		parent[i] = i;
		g->nodes[i].group = 0;
		if (g->nodes[i].flags & GN_NODE_DEAD)
			continue;
		for (uint32_t k = 0; k < g->nodes[i].nin; k++)
			users[g->nodes[i].in[k]]++;
	}
	for (uint32_t i = 0; i < g->n; i++) {
		const struct gn_graph_node *n = &g->nodes[i];

		if ((n->flags & GN_NODE_DEAD) || !elementwise(n->op))
			continue;
		for (uint32_t k = 0; k < n->nin; k++) {
			uint32_t p = n->in[k];
			const struct gn_graph_node *pn = &g->nodes[p];

			/* Fusing keeps p's value inside the region, so no
			 * one else may need it. */
			if (elementwise(pn->op) && users[p] == 1 &&
			    !(pn->flags & GN_NODE_OUTPUT) &&
			    gn_meta_equal(&pn->meta, &n->meta))
				parent[uf_find(parent, p)] = uf_find(parent, i);
		}
	}
	for (uint32_t i = 0; i < g->n; i++)
		size[uf_find(parent, i)]++;
	for (uint32_t i = 0; i < g->n; i++) {
		uint32_t r = uf_find(parent, i);

		if (size[r] < 2)
			continue;
		if (id[r] == 0)
			id[r] = ++regions;
		g->nodes[i].group = id[r];
	}
	free(parent);
	free(users);
	free(size);
	free(id);
	if (nregions)
		*nregions = regions;
	return 0;
}

int gn_graph_optimize(struct gn_graph *g, uint32_t mask, uint64_t fold_bytes)
{
	int rc = 0;

	if (mask & GN_PASS_CSE)
		rc = gn_pass_cse(g, NULL);
	if (rc == 0 && (mask & GN_PASS_FOLD))
		rc = gn_pass_fold_constants(g, fold_bytes, NULL);
	/* Drop merged duplicates; with DCE, also what nothing needs. */
	if (rc == 0)
		rc = (mask & GN_PASS_DCE) ? gn_pass_dce(g, NULL)
					  : gn_graph_compact(g);
	if (rc == 0 && (mask & GN_PASS_FUSE))
		rc = gn_pass_group_elementwise(g, NULL);
	return rc;
}
