/*
 * Shape kernels. Every buffer is contiguous row-major, so each op is a
 * strided copy: walk the output in order and read the source at an offset
 * its own strides give (permuted, stepped, or zero where broadcast).
 */
#include <string.h>

#include "cpu_internal.h"

/* Copy `om`-shaped output from `src` read with strides `sst` + `base`. */
static void strided_copy(const struct gn_tensor_meta *om, void *out,
			 const void *src, const int64_t *sst, int64_t base)
{
	size_t es = gn_dtype_size(om->dtype);
	int nd = om->ndim;
	int64_t idx[GN_MAX_DIMS] = {0}, inner, off = base;
	uint64_t total = gn_meta_numel(om), rows;
	uint8_t *o = out;
	const uint8_t *s = src;

	if (total == 0)
		return;
	if (nd == 0) {
		memcpy(o, s + base * (int64_t)es, es);
		return;
	}
	inner = om->shape[nd - 1];
	rows = total / (uint64_t)inner;
	for (uint64_t r = 0; r < rows; r++) {
		if (sst[nd - 1] == 1) {
			memcpy(o, s + off * (int64_t)es, (size_t)inner * es);
			o += (size_t)inner * es;
		} else {
			for (int64_t j = 0; j < inner; j++, o += es)
				memcpy(o,
				       s + (off + j * sst[nd - 1]) *
						       (int64_t)es,
				       es);
		}
		for (int d = nd - 2; d >= 0; d--) {
			off += sst[d];
			if (++idx[d] < om->shape[d])
				break;
			off -= sst[d] * om->shape[d];
			idx[d] = 0;
		}
	}
}

int gn_cpu_shape(const struct cpu_call *c)
{
	const struct gn_tensor_meta *x = c->im[0];
	size_t es = gn_dtype_size(c->om->dtype);
	int64_t st[GN_MAX_DIMS], sst[GN_MAX_DIMS];

	switch (c->op) {
	case GN_OP_RESHAPE:
	case GN_OP_SQUEEZE:
	case GN_OP_UNSQUEEZE:
		/* Same bytes, other dims. */
		memcpy(c->out, c->in[0], gn_meta_nbytes(c->om));
		return 0;
	case GN_OP_PERMUTE:
		gn_cpu_strides(x, st);
		for (int d = 0; d < x->ndim; d++)
			sst[d] = st[c->a->i[d]];
		strided_copy(c->om, c->out, c->in[0], sst, 0);
		return 0;
	case GN_OP_SLICE: {
		int64_t ax = c->a->i[0];

		gn_cpu_strides(x, st);
		memcpy(sst, st, sizeof(st));
		sst[ax] = st[ax] * c->a->i[3];
		strided_copy(c->om, c->out, c->in[0], sst, c->a->i[1] * st[ax]);
		return 0;
	}
	case GN_OP_EXPAND:
		gn_cpu_bstrides(x, c->om->ndim, sst);
		strided_copy(c->om, c->out, c->in[0], sst, 0);
		return 0;
	case GN_OP_CONCAT: {
		int64_t ax = c->a->i[0], outer = 1, at = 0;
		int64_t out_row, inner = 1;
		uint8_t *o = c->out;

		for (int d = 0; d < ax; d++)
			outer *= c->om->shape[d];
		for (int d = (int)ax + 1; d < c->om->ndim; d++)
			inner *= c->om->shape[d];
		out_row = c->om->shape[ax] * inner;
		/* Each operand fills a band of every outer row. */
		for (int k = 0; k < c->nin; k++) {
			int64_t band = c->im[k]->shape[ax] * inner;
			const uint8_t *s = c->in[k];

			for (int64_t r = 0; r < outer; r++)
				memcpy(o + (size_t)((r * out_row + at) *
						    (int64_t)es),
				       s + (size_t)(r * band * (int64_t)es),
				       (size_t)(band * (int64_t)es));
			at += band;
		}
		return 0;
	}
	default: return gn_cpu_unsupported(c, c->om->dtype);
	}
}
