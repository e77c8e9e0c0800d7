/*
 * A lossy link for tests: frames offered to it come out later, or twice,
 * or out of order, or never, as seeded random choices decide. The reliable
 * messaging tests run two endpoints over a pair of these with a simulated
 * clock; the DPDK transport's test builds put one in front of the port.
 * Pure C; not thread-safe.
 */
#ifndef GN_DPDK_FAULT_H
#define GN_DPDK_FAULT_H

#include <stddef.h>
#include <stdint.h>

struct gn_fault_opts {
	size_t opts_size;
	uint64_t seed;
	double drop;		 /* probability a frame is lost, 0..1 */
	double dup;		 /* probability it is delivered twice */
	double reorder;		 /* probability it is held back past others */
	uint64_t delay_ns;	 /* base one-way delay */
	uint64_t jitter_ns;	 /* plus up to this much, uniformly */
	uint64_t burst_every_ns; /* every so often ... */
	uint64_t burst_len_ns;	 /* ... drop everything for this long */
};

void gn_fault_opts_init(struct gn_fault_opts *o, size_t opts_size);

/*
 * Parse "drop=0.05,dup=0.01,reorder=0.02,delay_us=20,burst_ms=100,
 * every_ms=1000,seed=7,after=0" (GENIE_DPDK_FAULT) into *o, initialised
 * here; `after` (may be NULL) gets the frames to let through before
 * faults start. Returns 0 or -EINVAL naming the expected form.
 */
int gn_fault_opts_parse(const char *spec, struct gn_fault_opts *o,
			uint64_t *after);

struct gn_fault;

struct gn_fault_stats {
	uint64_t offered, dropped, burst_dropped, duplicated, reordered,
		delivered;
};

/* NULL with the error set (-EINVAL for probabilities outside 0..1). */
struct gn_fault *gn_fault_create(const struct gn_fault_opts *o);
void gn_fault_destroy(struct gn_fault **f);

/* Offer one frame at time `now` (copied). */
int gn_fault_offer(struct gn_fault *f, const void *frame, size_t len,
		   uint64_t now);

/* Hand every frame due by `now` to `deliver`, in delivery order. */
void gn_fault_deliver(struct gn_fault *f, uint64_t now,
		      void (*deliver)(void *ctx, const uint8_t *frame,
				      size_t len),
		      void *ctx);

/* When the next frame is due (UINT64_MAX: none queued). */
uint64_t gn_fault_next_due(const struct gn_fault *f);

void gn_fault_get_stats(const struct gn_fault *f, struct gn_fault_stats *s);

#endif /* GN_DPDK_FAULT_H */
