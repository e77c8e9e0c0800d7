/* Source kernels: fill, arange and seeded random (philox.h). */
#include "cpu_internal.h"
#include "philox.h"

int gn_cpu_source(const struct cpu_call *c)
{
	enum gn_dtype dt = c->om->dtype;
	uint64_t n = gn_meta_numel(c->om);
	uint64_t seed = (uint64_t)(c->op == GN_OP_RAND_UNIFORM ||
						   c->op == GN_OP_RAND_NORMAL
					   ? c->a->i[1]
					   : 0);

	for (uint64_t i = 0; i < n; i++) {
		double v;

		switch (c->op) {
		case GN_OP_FILL: v = c->a->f[0]; break;
		case GN_OP_ARANGE:
			v = (double)c->a->f[0] + (double)c->a->f[1] * (double)i;
			break;
		case GN_OP_RAND_UNIFORM:
			v = gn_philox_uniform(seed, i, c->a->f[0], c->a->f[1]);
			break;
		default:
			v = gn_philox_normal(seed, i, c->a->f[0], c->a->f[1]);
			break;
		}
		gn_cpu_store(dt, c->out, i, v);
	}
	return 0;
}
