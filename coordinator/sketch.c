/* Log-bucketed quantile sketch (see sketch.h). */
#include <math.h>
#include <string.h>

#include "sketch.h"

static double gamma_(void)
{
	return (1.0 + GN_SKETCH_ALPHA) / (1.0 - GN_SKETCH_ALPHA);
}

/* Bucket i holds (gamma^(i-1), gamma^i]; values >= 1. */
static int bucket_of(uint64_t v)
{
	/* A constant the compiler folds. */
	double idx = ceil(log((double)v) / log(gamma_()));

	if (idx < 0)
		idx = 0;
	if (idx >= GN_SKETCH_BUCKETS)
		idx = GN_SKETCH_BUCKETS - 1;
	return (int)idx;
}

static double bucket_mid(int i)
{
	double g = gamma_();

	if (i == 0)
		return 1.0;
	return 2.0 * pow(g, i) / (g + 1.0);
}

void gn_sketch_init(struct gn_sketch *s)
{
	memset(s, 0, sizeof(*s));
	s->min = UINT64_MAX;
}

void gn_sketch_add(struct gn_sketch *s, uint64_t v)
{
	s->count++;
	s->sum += (double)v;
	if (v < s->min)
		s->min = v;
	if (v > s->max)
		s->max = v;
	if (v == 0)
		s->zero++;
	else
		s->bucket[bucket_of(v)]++;
}

void gn_sketch_merge(struct gn_sketch *into, const struct gn_sketch *from)
{
	into->count += from->count;
	into->zero += from->zero;
	into->sum += from->sum;
	if (from->min < into->min)
		into->min = from->min;
	if (from->max > into->max)
		into->max = from->max;
	for (int i = 0; i < GN_SKETCH_BUCKETS; i++)
		into->bucket[i] += from->bucket[i];
}

double gn_sketch_quantile(const struct gn_sketch *s, double q)
{
	uint64_t rank, seen;

	if (s->count == 0)
		return 0.0;
	if (q <= 0.0)
		return (double)s->min;
	if (q >= 1.0)
		return (double)s->max;
	rank = (uint64_t)(q * (double)(s->count - 1));
	seen = s->zero;
	if (rank < seen)
		return 0.0;
	for (int i = 0; i < GN_SKETCH_BUCKETS; i++) {
		seen += s->bucket[i];
		if (rank < seen) {
			double m = bucket_mid(i);

			/* Never answer outside what was seen. */
			if (m < (double)s->min)
				m = (double)s->min;
			if (m > (double)s->max)
				m = (double)s->max;
			return m;
		}
	}
	return (double)s->max;
}

uint64_t gn_sketch_count_le(const struct gn_sketch *s, double v)
{
	uint64_t n;

	if (v < 0)
		return 0;
	n = s->zero;
	for (int i = 0; i < GN_SKETCH_BUCKETS; i++) {
		if (bucket_mid(i) > v)
			break;
		n += s->bucket[i];
	}
	return n;
}
