/* SPDX-License-Identifier: MIT */
/*
 * notifier.h - the invalidation sequence protocol between host notifiers
 * and faults (KVM's mmu_invalidate_seq / _in_progress / _range_*).
 *
 * I5: a fault installs a frame only if no invalidation overlapping its gfn
 * began after the fault sampled the sequence.  How:
 *  - the fault samples seq (acquire) BEFORE it asks the host for the frame;
 *  - invalidate-start, under mmu_lock held for write, increments
 *    in_progress and widens [range_start, range_end) to cover the gfns it
 *    is about to zap, before zapping them;
 *  - invalidate-end, under mmu_lock held for write, increments seq
 *    (release) and then decrements in_progress;
 *  - the fault, holding mmu_lock (any mode), retries if an invalidation is
 *    in progress over its gfn or seq moved since its sample.
 * Writers hold mmu_lock for write, so a reader holding mmu_lock sees a
 * consistent state; the sample itself is lock-free.
 */
#ifndef TDP_NOTIFIER_H
#define TDP_NOTIFIER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lock.h"

struct mn_state {
	atomic_ullong seq;
	atomic_long in_progress;
	uint64_t range_start, range_end; /* gfns; valid while in_progress */
	struct tdp_lock *mmu_lock;	  /* for assertions */
};

static inline uint64_t mn_seq_sample(struct mn_state *mn)
{
	return atomic_load_explicit(&mn->seq, memory_order_acquire);
}

static inline void mn_begin(struct mn_state *mn)
{
	tdp_assert_held_write(mn->mmu_lock);
	if (atomic_fetch_add(&mn->in_progress, 1) == 0) {
		mn->range_start = UINT64_MAX;
		mn->range_end = 0;
	}
}

static inline void mn_range_add(struct mn_state *mn, uint64_t start,
				uint64_t end)
{
	tdp_assert_held_write(mn->mmu_lock);
	if (start < mn->range_start)
		mn->range_start = start;
	if (end > mn->range_end)
		mn->range_end = end;
}

static inline void mn_end(struct mn_state *mn)
{
	tdp_assert_held_write(mn->mmu_lock);
	atomic_fetch_add_explicit(&mn->seq, 1, memory_order_release);
	TDP_ASSERT(atomic_fetch_sub(&mn->in_progress, 1) > 0);
}

static inline bool mn_retry_gfn(struct mn_state *mn, uint64_t mmu_seq,
				uint64_t gfn)
{
	tdp_assert_held(mn->mmu_lock);
	if (atomic_load(&mn->in_progress) && gfn >= mn->range_start &&
	    gfn < mn->range_end)
		return true;
	return atomic_load(&mn->seq) != mmu_seq;
}

#endif
