/*
 * A streaming quantile sketch with bounded memory (after DDSketch).
 *
 * Values (latencies in nanoseconds) fall into logarithmic buckets whose
 * bounds grow by gamma = (1 + a) / (1 - a), a = GN_SKETCH_ALPHA; a
 * quantile is answered with the midpoint of its bucket, so any quantile is
 * within a relative error of a of a value of the stream at that rank. The
 * bucket array is fixed (values from 1 ns to about 18 minutes; larger ones
 * count in the last bucket, 0 in a zero bucket), so memory is constant
 * however many samples arrive: sizeof(struct gn_sketch), no allocation.
 *
 * Not thread-safe: the coordinator updates and reads it under its lock.
 */
#ifndef GN_COORD_SKETCH_H
#define GN_COORD_SKETCH_H

#include <stdint.h>

#define GN_SKETCH_ALPHA 0.01
#define GN_SKETCH_BUCKETS 1400

struct gn_sketch {
	uint64_t count;
	uint64_t zero; /* samples equal to 0 */
	double sum;
	uint64_t min, max;
	uint64_t bucket[GN_SKETCH_BUCKETS];
};

/* Empty the sketch. */
void gn_sketch_init(struct gn_sketch *s);

/* Count one value. */
void gn_sketch_add(struct gn_sketch *s, uint64_t v);

/* Fold `from` into `into`. */
void gn_sketch_merge(struct gn_sketch *into, const struct gn_sketch *from);

/* The q-quantile (0..1) of what was added; 0 for an empty sketch. */
double gn_sketch_quantile(const struct gn_sketch *s, double q);

/*
 * How many values were at most `v` (a bucket straddling `v` counts when
 * its midpoint is at most `v`, so the answer is exact up to the relative
 * error). For Prometheus histogram buckets.
 */
uint64_t gn_sketch_count_le(const struct gn_sketch *s, double v);

#endif /* GN_COORD_SKETCH_H */
