/* SPDX-License-Identifier: MIT */
/*
 * lock.h - mmu_lock: a reader/writer lock that can tell its holder that
 * another thread is waiting (for yielding), plus lockdep-style assertions.
 *
 * Who takes it how (as KVM divides them; callers assert the mode):
 *  - read: faults (tdp_mmu_map changes entries only by compare-exchange),
 *    root allocation, root puts (every put, including a vCPU dropping its
 *    roots), the zap of invalidated roots;
 *  - write: host-notifier unmaps, zaps of valid roots (memslot updates,
 *    tdp_vm_zap_gfn_range), root invalidation, faults of a VM created with
 *    TDP_VM_EXCLUSIVE_FAULTS (the pre-parallel baseline), the audit;
 *  - not at all: the simulated hardware (TLB, page walker), which relies on
 *    atomic entries and on remote TLB flushes instead.
 *
 * The lock is a big-reader lock (brlock.h): taking it for read writes
 * only the reader's own slot, so vCPUs faulting in parallel share no
 * written line through it.  It is writer-preferring so a stream of
 * readers cannot starve a notifier (I9): once a writer wants it, new
 * readers wait.  tdp_lock_needbreak() reports a waiting thread of either
 * kind; long walks use it to yield (see mmu.c).
 *
 * Held-state tracking is per thread (a small thread-local table), so
 * assertions are exact for the calling thread, as lockdep's are.
 */
#ifndef TDP_LOCK_H
#define TDP_LOCK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "assert.h"
#include "brlock.h"

struct tdp_lock {
	struct tdp_brlock br;
	/* threads blocked in an acquisition or away in tdp_lock_yield;
	 * written only on those slow paths */
	atomic_int waiters __attribute__((aligned(TDP_CACHE_LINE)));
};

enum tdp_lock_mode { TDP_UNLOCKED = 0, TDP_READ = 1, TDP_WRITE = 2 };

int tdp_lock_init(struct tdp_lock *l);
void tdp_lock_destroy(struct tdp_lock *l);
void tdp_read_lock(struct tdp_lock *l);
void tdp_read_unlock(struct tdp_lock *l);
void tdp_write_lock(struct tdp_lock *l);
void tdp_write_unlock(struct tdp_lock *l);

enum tdp_lock_mode tdp_lock_held_mode(const struct tdp_lock *l);

/* Someone is waiting for the lock, as seen by a holder in @mode (a
 * writer counts itself among the brlock's writers): the cheap form for
 * walks that know their mode. */
static inline bool tdp_lock_needbreak_held(struct tdp_lock *l,
					   enum tdp_lock_mode mode)
{
	int others = mode == TDP_WRITE ? 1 : 0;

	return atomic_load_explicit(&l->waiters, memory_order_relaxed) > 0 ||
	       atomic_load_explicit(&l->br.writers, memory_order_relaxed) >
		       others;
}

/* Someone is waiting for the lock (the caller holds it). */
static inline bool tdp_lock_needbreak(struct tdp_lock *l)
{
	return tdp_lock_needbreak_held(l, tdp_lock_held_mode(l));
}

/*
 * Drop @l (held in @mode), let others run, take it again in the same mode
 * (KVM's cond_resched_rwlock_*).  While away the caller counts as a waiter,
 * so a thread that took the lock meanwhile sees tdp_lock_needbreak() and
 * hands it back in turn: two walkers alternate instead of one starving the
 * other.  This is why walks must yield only after progress (mmu.c): two
 * walkers that yield at the same place would hand the lock to each other
 * forever.  @away, if not NULL, runs while the lock is dropped (test hooks);
 * otherwise the thread just yields the CPU.
 */
void tdp_lock_yield(struct tdp_lock *l, enum tdp_lock_mode mode,
		    void (*away)(void *arg), void *arg);

/*
 * I6 bookkeeping: a thread that changed an entry so that a TLB flush is
 * owed calls tdp_lock_owe_flush(); the flush calls tdp_lock_paid_flush().
 * Releasing or yielding the lock with a flush still owed is a bug (another
 * thread could see the entry gone while vCPUs still use it), and every
 * unlock asserts it, as lockdep asserts lock rules.
 */
void tdp_lock_owe_flush(struct tdp_lock *l);
void tdp_lock_paid_flush(struct tdp_lock *l);

/* How the calling thread holds @l. */
enum tdp_lock_mode tdp_lock_held_mode(const struct tdp_lock *l);

#define tdp_assert_held_write(l) TDP_ASSERT(tdp_lock_held_mode(l) == TDP_WRITE)
#define tdp_assert_held(l) TDP_ASSERT(tdp_lock_held_mode(l) != TDP_UNLOCKED)
#define tdp_assert_held_read(l) TDP_ASSERT(tdp_lock_held_mode(l) == TDP_READ)
#define tdp_assert_not_held(l)                                                 \
	TDP_ASSERT(tdp_lock_held_mode(l) == TDP_UNLOCKED)

#endif
