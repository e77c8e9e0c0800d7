/*
 * Monotonic time in nanoseconds, for latencies and timeouts. Never goes
 * backwards; unrelated to wall-clock time.
 */
#ifndef GN_COMMON_CLOCK_H
#define GN_COMMON_CLOCK_H

#include <stdint.h>

/* Nanoseconds since an arbitrary fixed point (CLOCK_MONOTONIC). */
uint64_t gn_clock_ns(void);

/* Milliseconds left until `deadline_ns`, clamped to [0, INT32_MAX]. */
int gn_clock_ms_until(uint64_t deadline_ns);

#endif /* GN_COMMON_CLOCK_H */
