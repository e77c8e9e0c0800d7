/*
 * The graph IR: building, ordering, fingerprinting and printing (see
 * graph.h). Passes live in passes.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "gn_error.h"
#include "hash.h"

struct gn_graph *gn_graph_create(void)
{
	struct gn_graph *g = calloc(1, sizeof(*g));

	if (g == NULL) {
		gn_error_set(-ENOMEM, "graph: out of memory");
		return NULL;
	}
	g->arena = gn_arena_create(0);
	if (g->arena == NULL) {
		free(g);
		return NULL;
	}
	return g;
}

void gn_graph_destroy(struct gn_graph **gp)
{
	if (gp == NULL || *gp == NULL)
		return;
	gn_arena_destroy(&(*gp)->arena);
	free((*gp)->nodes);
	free((*gp)->outputs);
	free(*gp);
	*gp = NULL;
}

static void *arena_copy(struct gn_arena *a, const void *src, size_t bytes)
{
	void *p;

	if (bytes == 0)
		return NULL;
	p = gn_arena_alloc(a, bytes, 8);
	if (p != NULL)
		memcpy(p, src, bytes);
	return p;
}

uint32_t gn_graph_add(struct gn_graph *g, enum gn_op op, const uint32_t *in,
		      uint32_t nin, const struct gn_op_attrs *attrs,
		      const struct gn_tensor_meta *meta)
{
	struct gn_graph_node *n;

	if (g->n == g->cap) {
		uint32_t cap = g->cap ? 2 * g->cap : 64;
		void *p = realloc(g->nodes, cap * sizeof(*g->nodes));

		if (p == NULL) {
			gn_error_set(-ENOMEM, "graph: no memory for %u nodes",
				     cap);
			return GN_GRAPH_NONE;
		}
		g->nodes = p;
		g->cap = cap;
	}
	n = &g->nodes[g->n];
	memset(n, 0, sizeof(*n));
	n->op = op;
	n->nin = nin;
	n->meta = *meta;
	n->in = arena_copy(g->arena, in, nin * sizeof(*in));
	if (attrs != NULL) {
		n->attrs.ni = attrs->ni;
		n->attrs.nf = attrs->nf;
		n->attrs.i = arena_copy(g->arena, attrs->i,
					attrs->ni * sizeof(*attrs->i));
		n->attrs.f = arena_copy(g->arena, attrs->f,
					attrs->nf * sizeof(*attrs->f));
		if ((attrs->ni && !n->attrs.i) || (attrs->nf && !n->attrs.f))
			return GN_GRAPH_NONE;
	}
	if (nin && n->in == NULL)
		return GN_GRAPH_NONE;
	return g->n++;
}

int gn_graph_add_output(struct gn_graph *g, uint32_t idx)
{
	if (idx >= g->n)
		return gn_error_set(-EINVAL,
				    "graph: output %u, graph has %u "
				    "nodes",
				    idx, g->n);
	if (g->noutputs == g->outputs_cap) {
		uint32_t cap = g->outputs_cap ? 2 * g->outputs_cap : 4;
		void *p = realloc(g->outputs, cap * sizeof(*g->outputs));

		if (p == NULL)
			return gn_error_set(-ENOMEM, "graph: out of memory");
		g->outputs = p;
		g->outputs_cap = cap;
	}
	g->outputs[g->noutputs++] = idx;
	g->nodes[idx].flags |= GN_NODE_OUTPUT;
	return 0;
}

/*
 * Keep the nodes for which keep[i] is set, in the order `order` gives,
 * rewriting operand and output indices. `order` lists old indices.
 */
static int renumber(struct gn_graph *g, const uint32_t *order, uint32_t n)
{
	struct gn_graph_node *nodes = malloc((n ? n : 1) * sizeof(*nodes));
	uint32_t *map = malloc((g->n ? g->n : 1) * sizeof(*map));

	if (nodes == NULL || map == NULL) {
		free(nodes);
		free(map);
		return gn_error_set(-ENOMEM, "graph: out of memory");
	}
	for (uint32_t i = 0; i < g->n; i++)
		map[i] = GN_GRAPH_NONE;
	for (uint32_t i = 0; i < n; i++)
		map[order[i]] = i;
	for (uint32_t i = 0; i < n; i++) {
		nodes[i] = g->nodes[order[i]];
		for (uint32_t k = 0; k < nodes[i].nin; k++)
			nodes[i].in[k] = map[nodes[i].in[k]];
	}
	for (uint32_t i = 0; i < g->noutputs; i++)
		g->outputs[i] = map[g->outputs[i]];
	free(g->nodes);
	free(map);
	g->nodes = nodes;
	g->n = g->cap = n;
	return 0;
}

int gn_graph_toposort(struct gn_graph *g)
{
	uint32_t *indeg, *order, *users_at, *users, n = g->n, head = 0,
						    tail = 0;
	int rc = 0;

	indeg = calloc(n + 1, sizeof(*indeg));
	order = malloc((n + 1) * sizeof(*order));
	users_at = calloc(n + 2, sizeof(*users_at));
	if (!indeg || !order || !users_at) {
		rc = gn_error_set(-ENOMEM, "graph: out of memory");
		goto out;
	}
	/* Count users per node (CSR), checking operand indices. */
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t k = 0; k < g->nodes[i].nin; k++) {
			uint32_t p = g->nodes[i].in[k];

			if (p >= n) {
				rc = gn_error_set(-EINVAL,
						  "graph: node %u (%s) operand "
						  "%u names node %u of %u",
						  i, gn_op_name(g->nodes[i].op),
						  k, p, n);
				goto out;
			}
			users_at[p + 1]++;
			indeg[i]++;
		}
	for (uint32_t i = 0; i < n; i++)
		users_at[i + 1] += users_at[i];
	users = malloc((users_at[n] + 1) * sizeof(*users));
	if (users == NULL) {
		rc = gn_error_set(-ENOMEM, "graph: out of memory");
		goto out;
	}
	{
		uint32_t *fill = calloc(n + 1, sizeof(*fill));

		if (fill == NULL) {
			free(users);
			rc = gn_error_set(-ENOMEM, "graph: out of memory");
			goto out;
		}
		for (uint32_t i = 0; i < n; i++)
			for (uint32_t k = 0; k < g->nodes[i].nin; k++) {
				uint32_t p = g->nodes[i].in[k];

				users[users_at[p] + fill[p]++] = i;
			}
		free(fill);
	}
	/* Kahn's algorithm; a FIFO seeded in index order keeps it stable. */
	for (uint32_t i = 0; i < n; i++)
		if (indeg[i] == 0)
			order[tail++] = i;
	while (head < tail) {
		uint32_t v = order[head++];

		for (uint32_t u = users_at[v]; u < users_at[v + 1]; u++)
			if (--indeg[users[u]] == 0)
				order[tail++] = users[u];
	}
	free(users);
	if (tail != n) {
		for (uint32_t i = 0; i < n; i++)
			if (indeg[i] != 0) {
				rc = gn_error_set(
					-EINVAL,
					"graph: cycle through node %u "
					"(%s)",
					i, gn_op_name(g->nodes[i].op));
				goto out;
			}
	}
	rc = renumber(g, order, n);
out:
	free(indeg);
	free(order);
	free(users_at);
	return rc;
}

/* Keep the nodes `keep` marks, in order. */
static int keep_marked(struct gn_graph *g, const uint8_t *keep,
		       uint32_t *dropped)
{
	uint32_t *order = malloc((g->n + 1) * sizeof(*order)), n = 0;
	int rc;

	if (order == NULL)
		return gn_error_set(-ENOMEM, "graph: out of memory");
	for (uint32_t i = 0; i < g->n; i++)
		if (keep[i])
			order[n++] = i;
	if (dropped)
		*dropped = g->n - n;
	rc = n == g->n ? 0 : renumber(g, order, n);
	free(order);
	return rc;
}

int gn_graph_compact(struct gn_graph *g)
{
	uint8_t *keep = malloc(g->n + 1);
	int rc;

	if (keep == NULL)
		return gn_error_set(-ENOMEM, "graph: out of memory");
	for (uint32_t i = 0; i < g->n; i++)
		keep[i] = !(g->nodes[i].flags & GN_NODE_DEAD);
	rc = keep_marked(g, keep, NULL);
	free(keep);
	return rc;
}

int gn_pass_dce(struct gn_graph *g, uint32_t *changed)
{
	uint8_t *live = calloc(g->n + 1, 1);
	int rc;

	if (live == NULL)
		return gn_error_set(-ENOMEM, "graph: out of memory");
	for (uint32_t i = 0; i < g->noutputs; i++)
		live[g->outputs[i]] = 1;
	/* Operands precede users, so one backward sweep finds all. */
	for (uint32_t i = g->n; i-- > 0;) {
		if (!live[i] || (g->nodes[i].flags & GN_NODE_DEAD)) {
			live[i] = 0;
			continue;
		}
		for (uint32_t k = 0; k < g->nodes[i].nin; k++)
			live[g->nodes[i].in[k]] = 1;
	}
	rc = keep_marked(g, live, changed);
	free(live);
	return rc;
}

uint64_t gn_graph_fingerprint(const struct gn_graph *g)
{
	struct gn_hasher h;
	uint64_t fp;

	if (gn_hasher_init(&h, 0x67656e6965ull) != 0)
		return 0;
	for (uint32_t i = 0; i < g->n; i++) {
		const struct gn_graph_node *n = &g->nodes[i];
		uint32_t head[6] = {(uint32_t)n->op,
				    n->nin,
				    n->attrs.ni,
				    n->attrs.nf,
				    (uint32_t)n->meta.dtype,
				    (uint32_t)n->meta.ndim};

		if (n->flags & GN_NODE_DEAD)
			continue;
		gn_hasher_update(&h, head, sizeof(head));
		gn_hasher_update(&h, n->in, n->nin * sizeof(*n->in));
		gn_hasher_update(&h, n->attrs.i, n->attrs.ni * sizeof(int64_t));
		gn_hasher_update(&h, n->attrs.f, n->attrs.nf * sizeof(float));
		gn_hasher_update(&h, n->meta.shape,
				 sizeof(int64_t) * (size_t)n->meta.ndim);
	}
	gn_hasher_update(&h, g->outputs, g->noutputs * sizeof(*g->outputs));
	fp = gn_hasher_digest(&h);
	gn_hasher_fini(&h);
	return fp;
}

int gn_graph_write_dot(const struct gn_graph *g, FILE *f)
{
	char s[96];

	fprintf(f, "digraph genie {\n  node [shape=box fontname=monospace];\n");
	for (uint32_t i = 0; i < g->n; i++) {
		const struct gn_graph_node *n = &g->nodes[i];

		if (n->flags & GN_NODE_DEAD)
			continue;
		if (n->group)
			fprintf(f,
				"  subgraph cluster_%u { label=\"fused %u\"; ",
				n->group, n->group);
		fprintf(f, "  n%u [label=\"%u: %s %s\"%s];", i, i,
			gn_op_name(n->op),
			gn_meta_format(&n->meta, s, sizeof(s)),
			n->flags & GN_NODE_OUTPUT ? " peripheries=2" : "");
		fprintf(f, n->group ? " }\n" : "\n");
		for (uint32_t k = 0; k < n->nin; k++)
			fprintf(f, "  n%u -> n%u;\n", n->in[k], i);
	}
	fprintf(f, "}\n");
	return ferror(f) ? gn_error_set(-EIO, "graph: writing DOT failed") : 0;
}
