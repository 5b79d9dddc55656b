/* SPDX-License-Identifier: MIT */
/*
 * clock.h - the monotonic clock of the tools (tools/tdpmmu) and the tests
 * (tests/helpers.h), header-only.  In the controlled-scheduler build the
 * tool's clock_gettime() is wrapped (src/sched): time is then virtual.
 * Callable from any thread.
 */
#ifndef TDP_TOOLS_CLOCK_H
#define TDP_TOOLS_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC, in nanoseconds. */
static inline uint64_t mono_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
