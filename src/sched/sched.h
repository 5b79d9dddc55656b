/* SPDX-License-Identifier: MIT */
/*
 * sched/sched.h - the controlled scheduler of the test build (TDP_SCHED).
 *
 * In a build configured with -DTDP_SCHED=ON the library is compiled with
 * the compiler's ThreadSanitizer instrumentation but linked against our
 * own runtime (atomics.c beside this file), so every atomic operation the library
 * makes calls tdp_sched_point() first.  The tool is linked with
 * -Wl,--wrap for the pthread lock, thread, sleep and clock calls
 * (wrap.c), and RCU is replaced by a scheduler-aware one
 * (rcu.c).  Once tdp_sched_start() has run, the calling thread
 * and every thread it creates run one at a time: the thread holding the
 * baton runs until its next scheduling point, where the strategy picks
 * who runs next.  Nothing else decides, so a run is a function of the
 * binary, the workload's seed and (strategy, depth, seed): it replays
 * exactly and its trace hash says so.
 *
 * Rules:
 *  - Only controlled threads (thread 0, the one that called
 *    tdp_sched_start(), and threads created by controlled threads) are
 *    scheduled; any other thread runs freely and its atomics are plain.
 *  - A controlled thread must never block in the kernel on something
 *    another controlled thread must do: every such wait goes through the
 *    scheduler (the wrapped locks, joins and sleeps, tdp_sched_wait_until,
 *    the RCU grace period).  A watchdog of real time reports the thread
 *    that holds the baton for too long.
 *  - Time: CLOCK_MONOTONIC read by a controlled thread is virtual: it
 *    advances by TDP_SCHED_STEP_NS per scheduling point, and a sleep
 *    blocks the sleeper until the virtual clock passes its deadline (when
 *    every thread sleeps or waits, the clock jumps).
 *  - State of the scheduler is touched only by the baton holder.
 *
 * In other builds this header gives only TDP_SCHED_POINT(), which is
 * empty.
 */
#ifndef TDP_SCHED_H
#define TDP_SCHED_H

#include <stdbool.h>
#include <stdint.h>

enum tdp_sched_kind {
	SK_LOAD, SK_STORE, SK_RMW, SK_CAS, SK_FENCE,
	SK_MUTEX, SK_MUTEX_TRY, SK_MUTEX_UNLOCK,
	SK_RDLOCK, SK_WRLOCK, SK_RWLOCK_TRY, SK_RWLOCK_UNLOCK,
	SK_RCU_LOCK, SK_RCU_UNLOCK, SK_RCU_SYNC, SK_RCU_CB, SK_RCU_BARRIER,
	SK_YIELD, SK_SLEEP, SK_CREATE, SK_JOIN, SK_EXIT, SK_WAIT,
	SK_GUEST_ENTER, SK_GUEST_EXIT, SK_FLUSH_REQ, SK_FLUSH_ACK,
	SK_NOTE,
	SK_COUNT
};

enum tdp_sched_strategy { TDP_SCHED_NONE, TDP_SCHED_RANDOM, TDP_SCHED_PCT };

struct tdp_sched_config {
	enum tdp_sched_strategy strategy;
	unsigned depth;	   /* PCT: bug depth d (d-1 change points) */
	uint64_t steps;	   /* expected length of a run, for PCT */
	uint64_t max_steps; /* hard bound: fail as a livelock past it */
	uint64_t seed;	   /* the schedule's seed */
	unsigned trace;	   /* decisions kept for tdp_sched_dump() */
};

#define TDP_SCHED_STEP_NS 10ull

#ifdef TDP_SCHED
#define TDP_SCHED_AVAILABLE 1
/* Make the calling thread thread 0 and start scheduling.  0, or -EINVAL
 * for a bad configuration, -EBUSY if already started. */
int tdp_sched_start(const struct tdp_sched_config *c);
/* Stop scheduling; every other controlled thread must have finished. */
void tdp_sched_stop(void);
bool tdp_sched_controlled(void);
uint64_t tdp_sched_steps(void);
uint64_t tdp_sched_hash(void);
/* A scheduling point of the calling thread (no-op when uncontrolled). */
void tdp_sched_point(enum tdp_sched_kind k, const void *obj);
/* Record @what (a string literal) in the trace without a switch. */
void tdp_sched_note(const char *what, uint64_t arg);
/* Block until @pred(@arg) holds; @pred is evaluated by the scheduler,
 * between steps, and must only read memory (its atomics are not points).
 * Uncontrolled, it spins with sched_yield(). */
void tdp_sched_wait_until(bool (*pred)(void *), void *arg,
			  enum tdp_sched_kind k);
/* Print the last @k decisions and each thread's state to @fd (also from
 * a signal handler: no allocation, no stdio). */
void tdp_sched_dump(int fd, unsigned k);
/* Between these, the calling thread's atomics are not scheduling points:
 * only for memory no other thread can reach (a table page being filled
 * before it is linked or after its grace period).  Nest. */
void tdp_sched_private(int delta);
#define TDP_SCHED_POINT(k, o) tdp_sched_point((k), (o))
#define TDP_SCHED_CONTROLLED() tdp_sched_controlled()
/* A spin-wait: block in the scheduler until @pred(@arg); compiled out in
 * other builds, where the caller's own loop spins. */
#define TDP_SCHED_WAIT_UNTIL(pred, arg, k)                                     \
	do {                                                                   \
		if (tdp_sched_controlled())                                    \
			tdp_sched_wait_until((pred), (arg), (k));              \
	} while (0)
#define TDP_SCHED_PRIVATE_BEGIN() tdp_sched_private(1)
#define TDP_SCHED_PRIVATE_END() tdp_sched_private(-1)
#else
#define TDP_SCHED_AVAILABLE 0
#define TDP_SCHED_POINT(k, o) ((void)(o))
#define TDP_SCHED_CONTROLLED() false
#define TDP_SCHED_WAIT_UNTIL(pred, arg, k) ((void)(pred), (void)(arg))
#define TDP_SCHED_PRIVATE_BEGIN() ((void)0)
#define TDP_SCHED_PRIVATE_END() ((void)0)
#endif

#endif
