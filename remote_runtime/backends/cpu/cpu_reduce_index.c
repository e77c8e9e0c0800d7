/*
 * Reductions (sum, mean, max, argmax) and indexing (embedding, embedding
 * bag, gather). Values go through gn_cpu_load/store, so every numeric
 * dtype works; indices may be i64 or i32, negative counting from the end.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"
#include "gn_error.h"

static int reduce(const struct cpu_call *c)
{
	const struct gn_tensor_meta *xm = c->im[0];
	int red[GN_MAX_DIMS] = {0}, all = c->a->ni == 1;
	int64_t ost[GN_MAX_DIMS], idx[GN_MAX_DIMS] = {0}, off = 0, s = 1;
	uint64_t n = gn_meta_numel(xm), on = gn_meta_numel(c->om), cnt;
	double *acc;

	for (uint32_t j = 1; j < c->a->ni; j++)
		red[c->a->i[j]] = 1;
	/* Output offset strides per input dim: 0 on reduced dims. */
	for (int d = xm->ndim - 1; d >= 0; d--) {
		if (all || red[d]) {
			ost[d] = 0;
		} else {
			ost[d] = s;
			s *= xm->shape[d];
		}
	}
	acc = malloc(sizeof(double) * (on ? on : 1));
	if (acc == NULL)
		return gn_error_set(-ENOMEM, "cpu: %s: out of memory",
				    gn_op_name(c->op));
	for (uint64_t i = 0; i < on; i++)
		acc[i] = c->op == GN_OP_REDUCE_MAX ? -INFINITY : 0;
	for (uint64_t i = 0; i < n; i++) {
		double v = gn_cpu_load(xm->dtype, c->in[0], i);

		if (c->op == GN_OP_REDUCE_MAX)
			acc[off] = v > acc[off] || v != v ? v : acc[off];
		else
			acc[off] += v;
		for (int d = xm->ndim - 1; d >= 0; d--) {
			off += ost[d];
			if (++idx[d] < xm->shape[d])
				break;
			off -= ost[d] * xm->shape[d];
			idx[d] = 0;
		}
	}
	cnt = on ? n / on : 0;
	for (uint64_t i = 0; i < on; i++)
		gn_cpu_store(c->om->dtype, c->out, i,
			     c->op == GN_OP_REDUCE_MEAN ? acc[i] / (double)cnt
							: acc[i]);
	free(acc);
	return 0;
}

static int argmax(const struct cpu_call *c)
{
	const struct gn_tensor_meta *xm = c->im[0];
	int64_t ax = c->a->i[0], outer = 1, len = xm->shape[ax], inner = 1;
	int64_t *o = c->out;

	for (int d = 0; d < ax; d++)
		outer *= xm->shape[d];
	for (int d = (int)ax + 1; d < xm->ndim; d++)
		inner *= xm->shape[d];
	for (int64_t a = 0; a < outer; a++)
		for (int64_t b = 0; b < inner; b++) {
			int64_t best = 0;
			double bv = -INFINITY;

			for (int64_t i = 0; i < len; i++) {
				double v =
					gn_cpu_load(xm->dtype, c->in[0],
						    (a * len + i) * inner + b);

				/* First maximum wins; NaN counts as largest. */
				if (i == 0 || v > bv || (v != v && bv == bv)) {
					bv = v;
					best = i;
				}
				if (bv != bv)
					break;
			}
			o[a * inner + b] = best;
		}
	return 0;
}

/* Index `j` of an index tensor, made non-negative and checked. */
static int index_at(const struct cpu_call *c, int k, uint64_t j, int64_t n,
		    int64_t *out)
{
	int64_t v = c->im[k]->dtype == GN_DTYPE_I64
			    ? ((const int64_t *)c->in[k])[j]
			    : ((const int32_t *)c->in[k])[j];

	if (v < -n || v >= n)
		return gn_error_set(-EINVAL,
				    "cpu: %s: index %lld at position %llu is "
				    "outside [-%lld, %lld)",
				    gn_op_name(c->op), (long long)v,
				    (unsigned long long)j, (long long)n,
				    (long long)n);
	*out = v < 0 ? v + n : v;
	return 0;
}

static int embedding(const struct cpu_call *c)
{
	int64_t V = c->im[0]->shape[0], D = c->im[0]->shape[1], row;
	size_t es = gn_dtype_size(c->im[0]->dtype);
	uint64_t n = gn_meta_numel(c->im[1]);
	uint8_t *o = c->out;

	for (uint64_t j = 0; j < n; j++) {
		int rc = index_at(c, 1, j, V, &row);

		if (rc != 0)
			return rc;
		memcpy(o + j * (uint64_t)D * es,
		       (const uint8_t *)c->in[0] + (uint64_t)row * D * es,
		       (size_t)D * es);
	}
	return 0;
}

static int embedding_bag(const struct cpu_call *c)
{
	int64_t V = c->im[0]->shape[0], D = c->im[0]->shape[1];
	int64_t B = c->im[1]->shape[0], L = c->im[1]->shape[1],
		mode = c->a->i[0];
	enum gn_dtype dt = c->om->dtype;

	for (int64_t b = 0; b < B; b++)
		for (int64_t d = 0; d < D; d++) {
			double acc = mode == 2 ? -INFINITY : 0;

			for (int64_t l = 0; l < L; l++) {
				int64_t row;
				int rc = index_at(c, 1, (uint64_t)(b * L + l),
						  V, &row);
				double v;

				if (rc != 0)
					return rc;
				v = gn_cpu_load(dt, c->in[0],
						(uint64_t)(row * D + d));
				acc = mode == 2 ? (v > acc ? v : acc) : acc + v;
			}
			if (mode == 1)
				acc = L ? acc / (double)L : 0;
			if (mode == 2 && L == 0)
				acc = 0;
			gn_cpu_store(dt, c->out, (uint64_t)(b * D + d), acc);
		}
	return 0;
}

static int gather(const struct cpu_call *c)
{
	const struct gn_tensor_meta *xm = c->im[0];
	int64_t ax = c->a->i[0], outer = 1, inner = 1, n = xm->shape[ax], row;
	size_t es = gn_dtype_size(xm->dtype);
	uint64_t ni = gn_meta_numel(c->im[1]);
	uint8_t *o = c->out;
	const uint8_t *x = c->in[0];

	for (int d = 0; d < ax; d++)
		outer *= xm->shape[d];
	for (int d = (int)ax + 1; d < xm->ndim; d++)
		inner *= xm->shape[d];
	for (int64_t a = 0; a < outer; a++)
		for (uint64_t j = 0; j < ni; j++) {
			int rc = index_at(c, 1, j, n, &row);

			if (rc != 0)
				return rc;
			memcpy(o, x + (size_t)((a * n + row) * inner) * es,
			       (size_t)inner * es);
			o += (size_t)inner * es;
		}
	return 0;
}

int gn_cpu_reduce_index(const struct cpu_call *c)
{
	switch (c->op) {
	case GN_OP_REDUCE_SUM:
	case GN_OP_REDUCE_MEAN:
	case GN_OP_REDUCE_MAX: return reduce(c);
	case GN_OP_ARGMAX: return argmax(c);
	case GN_OP_EMBEDDING: return embedding(c);
	case GN_OP_EMBEDDING_BAG: return embedding_bag(c);
	case GN_OP_GATHER: return gather(c);
	default: return gn_cpu_unsupported(c, c->om->dtype);
	}
}
