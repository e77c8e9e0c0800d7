/* Monotonic clock. */
#include <stdint.h>
#include <time.h>

#include "clock.h"

uint64_t gn_clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int gn_clock_ms_until(uint64_t deadline_ns)
{
	uint64_t now = gn_clock_ns();
	uint64_t ms;

	if (deadline_ns <= now)
		return 0;
	/* Round up so a caller polling with this never wakes just early. */
	ms = (deadline_ns - now + 999999) / 1000000;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}
