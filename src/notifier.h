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
 *
 * Long operations (huge-page recovery) that sampled seq long ago use a
 * finer test: invalidate-end also records the range it covered under its
 * new seq in a small history, so mn_range_changed() can tell whether an
 * invalidation since the sample touched a given range; if the history no
 * longer reaches back to the sample, the answer is "changed".
 */
#ifndef TDP_NOTIFIER_H
#define TDP_NOTIFIER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lock.h"

#define MN_HIST 64

struct mn_state {
	atomic_ullong seq;
	atomic_long in_progress;
	/* gfns; valid while in_progress; written under mmu_lock (write),
	 * atomics only for mn_retry_gfn_unsafe's lockless hint */
	_Atomic uint64_t range_start, range_end;
	struct tdp_lock *mmu_lock;	  /* for assertions */
	struct {
		uint64_t seq, start, end;
	} hist[MN_HIST];		  /* mmu_lock (write to change) */
};

static inline uint64_t mn_seq_sample(struct mn_state *mn)
{
	return atomic_load_explicit(&mn->seq, memory_order_acquire);
}

static inline void mn_begin(struct mn_state *mn)
{
	tdp_assert_held_write(mn->mmu_lock);
	if (atomic_fetch_add(&mn->in_progress, 1) == 0) {
		atomic_store_explicit(&mn->range_start, UINT64_MAX,
				      memory_order_relaxed);
		atomic_store_explicit(&mn->range_end, 0, memory_order_relaxed);
	}
}

static inline void mn_range_add(struct mn_state *mn, uint64_t start,
				uint64_t end)
{
	tdp_assert_held_write(mn->mmu_lock);
	if (start < atomic_load_explicit(&mn->range_start, memory_order_relaxed))
		atomic_store_explicit(&mn->range_start, start,
				      memory_order_relaxed);
	if (end > atomic_load_explicit(&mn->range_end, memory_order_relaxed))
		atomic_store_explicit(&mn->range_end, end,
				      memory_order_relaxed);
}

static inline void mn_end(struct mn_state *mn)
{
	uint64_t s;

	tdp_assert_held_write(mn->mmu_lock);
	s = atomic_load(&mn->seq) + 1;
	mn->hist[s % MN_HIST].seq = s;
	mn->hist[s % MN_HIST].start =
		atomic_load_explicit(&mn->range_start, memory_order_relaxed);
	mn->hist[s % MN_HIST].end =
		atomic_load_explicit(&mn->range_end, memory_order_relaxed);
	atomic_fetch_add_explicit(&mn->seq, 1, memory_order_release);
	TDP_ASSERT(atomic_fetch_sub(&mn->in_progress, 1) > 0);
}

static inline bool mn_gfn_in_progress(struct mn_state *mn, uint64_t gfn)
{
	return atomic_load(&mn->in_progress) &&
	       gfn >= atomic_load_explicit(&mn->range_start,
					   memory_order_relaxed) &&
	       gfn < atomic_load_explicit(&mn->range_end, memory_order_relaxed);
}

static inline bool mn_retry_gfn(struct mn_state *mn, uint64_t mmu_seq,
				uint64_t gfn)
{
	tdp_assert_held(mn->mmu_lock);
	if (mn_gfn_in_progress(mn, gfn))
		return true;
	return atomic_load(&mn->seq) != mmu_seq;
}

/* The same without mmu_lock: only a hint (KVM's
 * mmu_invalidate_retry_gfn_unsafe), for a fault to give up early, before
 * it asks the host for the frame and takes mmu_lock, instead of
 * contending for the lock with the invalidation that will make it retry
 * anyway.  A false "no" is caught by mn_retry_gfn under the lock. */
static inline bool mn_retry_gfn_unsafe(struct mn_state *mn, uint64_t mmu_seq,
				       uint64_t gfn)
{
	return mn_gfn_in_progress(mn, gfn) ||
	       atomic_load(&mn->seq) != mmu_seq;
}

/* Did an invalidation overlapping [start, end) begin since @mmu_seq was
 * sampled?  mmu_lock held (any mode).  May say yes when unsure. */
static inline bool mn_range_changed(struct mn_state *mn, uint64_t mmu_seq,
				    uint64_t start, uint64_t end)
{
	uint64_t cur;

	tdp_assert_held(mn->mmu_lock);
	if (atomic_load(&mn->in_progress) &&
	    start < atomic_load_explicit(&mn->range_end, memory_order_relaxed) &&
	    atomic_load_explicit(&mn->range_start, memory_order_relaxed) < end)
		return true;
	cur = atomic_load(&mn->seq);
	if (cur - mmu_seq >= MN_HIST)
		return true;
	for (uint64_t s = mmu_seq + 1; s <= cur; s++)
		if (mn->hist[s % MN_HIST].seq != s ||
		    (start < mn->hist[s % MN_HIST].end &&
		     mn->hist[s % MN_HIST].start < end))
			return true;
	return false;
}

#endif
