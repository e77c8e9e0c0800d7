/*
 * Decoded, validated plans.
 *
 * gn_plan_decode() turns a genie.Plan into a flat array the executor walks
 * without further checks: every operand index points backwards, every op is
 * known, every recorded shape equals the one the shared op table infers,
 * and every output index is in range. A plan that fails any of these is
 * refused with an error naming the node, its op and the shapes involved.
 */
#ifndef GN_RUNTIME_PLAN_H
#define GN_RUNTIME_PLAN_H

#include <stdint.h>

#include "genie/plan.pb-c.h"
#include "tensor_meta.h"

#define GN_HANDLE_SIZE 16
/* Refuse plans larger than this many nodes before allocating anything. */
#define GN_PLAN_MAX_NODES (1u << 20)

struct gn_arena;

/* One node; its operand list and attributes live in the plan's arena. */
struct gn_plan_node {
	enum gn_op op;
	uint32_t nin;
	const uint32_t *in;
	struct gn_op_attrs attrs;
	struct gn_tensor_meta meta;
	uint8_t handle[GN_HANDLE_SIZE]; /* GN_OP_INPUT only */
};

struct gn_plan {
	uint32_t nnodes;
	uint32_t noutputs;
	uint64_t fingerprint;
	struct gn_plan_node *nodes;
	uint32_t *outputs;
	/*
	 * The memory plan, made once at decode (a cached plan skips it):
	 * per node, the last node that reads it (UINT32_MAX for outputs,
	 * which outlive the run; its own index when nothing reads it), how
	 * many operand slots name it, and the last node naming it.
	 */
	uint32_t *last_use;
	uint32_t *nreaders;
	uint32_t *reader;
	struct gn_arena *arena; /* owns everything above */
};

/*
 * Validate `pb` and build a plan. Returns 0 and *out (free with
 * gn_plan_free()), or -EINVAL / -EOPNOTSUPP / -EPROTONOSUPPORT (schema
 * version) / -ENOMEM with gn_last_error() naming the offending node.
 */
int gn_plan_decode(const Genie__Plan *pb, struct gn_plan **out);

/* Number of OP_INPUT nodes. */
uint32_t gn_plan_count_inputs(const struct gn_plan *plan);

/* Free a plan; sets *plan to NULL. NULL is a no-op. */
void gn_plan_free(struct gn_plan **plan);

/* Meta conversions between the wire and Genie types. */
int gn_meta_from_pb(const Genie__TensorMeta *pb, struct gn_tensor_meta *m,
		    const char *what);
/* Fill `pb` pointing at `dims_store` (GN_MAX_DIMS entries) for the shape. */
void gn_meta_to_pb(const struct gn_tensor_meta *m, Genie__TensorMeta *pb,
		   int64_t *dims_store);

#endif /* GN_RUNTIME_PLAN_H */
