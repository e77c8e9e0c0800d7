/*
 * The graph IR the compiler passes work on.
 *
 * Materialize copies the lazy nodes a result depends on into a gn_graph:
 * a flat array of nodes whose operands are indices into the same array.
 * Passes rewrite it (dead-code elimination, common-subexpression
 * elimination, constant folding, elementwise fusion grouping), the
 * fingerprint hashes its structure, and the plan builder emits it. An
 * imported graph (ONNX, a decoded plan) may list nodes in any order:
 * gn_graph_toposort() orders it and finds cycles.
 *
 * Everything a graph points to lives in its arena or is borrowed from the
 * session (leaf bytes, handles) for the graph's lifetime. Not thread-safe.
 */
#ifndef GN_CLIENT_GRAPH_H
#define GN_CLIENT_GRAPH_H

#include <stdint.h>
#include <stdio.h>

#include "arena.h"
#include "op.h"
#include "tensor_meta.h"

#define GN_GRAPH_NONE UINT32_MAX

enum gn_graph_node_flags {
	GN_NODE_DEAD = 1u << 0,	    /* removed by a pass; skipped by emitters */
	GN_NODE_CONSTANT = 1u << 1, /* value known on the client (data set) */
	GN_NODE_OUTPUT = 1u << 2,   /* listed in outputs */
};

struct gn_graph_node {
	enum gn_op op;
	uint32_t nin;
	uint32_t *in;		  /* operand indices; arena-owned */
	struct gn_op_attrs attrs; /* arena-owned copies */
	struct gn_tensor_meta meta;
	/*
	 * For GN_OP_INPUT: the bytes (borrowed, gn_meta_nbytes(&meta) long)
	 * and the 16-byte handle that names them on the wire. Constant
	 * folding turns a node into an input whose bytes live in the arena.
	 */
	const void *data;
	const uint8_t *handle;
	uint32_t flags;
	uint32_t group; /* fusion region id; 0 = not in a region */
	void *user;	/* the caller's back-pointer (the lazy tensor) */
};

struct gn_graph {
	struct gn_arena *arena;
	struct gn_graph_node *nodes;
	uint32_t n, cap;
	uint32_t *outputs;
	uint32_t noutputs, outputs_cap;
};

/* Make an empty graph. NULL with -ENOMEM set. Free with gn_graph_destroy. */
struct gn_graph *gn_graph_create(void);
void gn_graph_destroy(struct gn_graph **g);

/*
 * Append a node; copies `in` and the attribute lists into the arena.
 * Returns its index, or GN_GRAPH_NONE with -ENOMEM / -EINVAL (operand
 * index out of range) set. Operands may name any node already added or,
 * for imported graphs, a later one; gn_graph_toposort() sorts that out.
 */
uint32_t gn_graph_add(struct gn_graph *g, enum gn_op op, const uint32_t *in,
		      uint32_t nin, const struct gn_op_attrs *attrs,
		      const struct gn_tensor_meta *meta);

/* Mark node `idx` as a graph output. Returns 0, -EINVAL or -ENOMEM. */
int gn_graph_add_output(struct gn_graph *g, uint32_t idx);

/*
 * Reorder nodes so that every operand precedes its user (Kahn's algorithm,
 * stable for already ordered graphs) and rewrite operand and output
 * indices. Returns 0, or -EINVAL naming a node on a cycle, or an operand
 * index >= n.
 */
int gn_graph_toposort(struct gn_graph *g);

/* Drop nodes flagged GN_NODE_DEAD, rewriting indices. 0 or -ENOMEM. */
int gn_graph_compact(struct gn_graph *g);

/* Passes, each returning 0 or a negative errno; `changed` counts rewrites
 * when not NULL. */

/* Mark nodes no output depends on as dead, then compact the array. */
int gn_pass_dce(struct gn_graph *g, uint32_t *changed);
/*
 * Merge nodes with the same pure op, operands (after merging), attributes
 * and meta; inputs merge only when they share a handle. Users and outputs
 * are rewired to the first copy; the rest become dead.
 */
int gn_pass_cse(struct gn_graph *g, uint32_t *changed);
/*
 * Evaluate every pure op whose operands are all constants (sources such as
 * fill, arange and seeded random, or values folding made) and whose result
 * is at most `max_bytes`, on the local CPU backend, turning it into an
 * input with its value (and a fresh handle). Inputs the caller supplied
 * are not constants: work on them belongs to the target. Large results are
 * left to the target, so folding never grows what crosses the wire by more
 * than `max_bytes` per node.
 */
int gn_pass_fold_constants(struct gn_graph *g, uint64_t max_bytes,
			   uint32_t *changed);
/*
 * Group maximal chains of elementwise nodes (unary and binary kinds, same
 * output shape as the chain) whose intermediate values have no other user
 * into fusion regions: nodes of one region share a non-zero `group` id.
 */
int gn_pass_group_elementwise(struct gn_graph *g, uint32_t *nregions);

/*
 * Structural fingerprint: ops, operand indices, attributes, dtypes and
 * shapes of live nodes and the outputs; never tensor values or handles.
 * The plan-cache key.
 */
uint64_t gn_graph_fingerprint(const struct gn_graph *g);

/* Write the live graph as Graphviz DOT (ops, shapes, fusion regions). */
int gn_graph_write_dot(const struct gn_graph *g, FILE *f);

/* Which passes gn_graph_optimize runs. */
enum gn_pass_mask {
	GN_PASS_DCE = 1u << 0,
	GN_PASS_CSE = 1u << 1,
	GN_PASS_FOLD = 1u << 2,
	GN_PASS_FUSE = 1u << 3,
	GN_PASS_ALL = 0xfu,
};

/*
 * Run the passes in `mask` in order CSE, fold, DCE, fuse. Nodes CSE merged
 * away are always dropped; DCE also drops what no output needs.
 */
int gn_graph_optimize(struct gn_graph *g, uint32_t mask, uint64_t fold_bytes);

struct Genie__Plan;

/*
 * Emit the live graph as a genie.Plan at the current schema version, with
 * its fingerprint. Everything the message points to lives in `a` or in the
 * graph, so it stays valid while both do. Returns 0 or -ENOMEM.
 */
int gn_plan_from_graph(const struct gn_graph *g, struct gn_arena *a,
		       struct Genie__Plan *plan);

#endif /* GN_CLIENT_GRAPH_H */
