/* SPDX-License-Identifier: MIT */
/*
 * brlock.h - a big-reader lock: a reader/writer lock whose read side
 * writes only the reader's own slot (percpu.h), in the manner of Linux's
 * percpu-rwsem.  The lock under mmu_lock (lock.h) and the embedded host's
 * mmap lock (host/pool_internal.h).
 *
 * Algorithm:
 *  - A reader increments its slot's count, then reads `writers`; if no
 *    writer wants the lock it is in.  Otherwise it takes its count back
 *    (waking the writer) and waits until `writers` is 0, then tries again.
 *  - A writer increments `writers` (from then on new readers back off:
 *    writer preference), takes `wmutex` (writers among themselves), and
 *    waits until the count of every slot is 0.
 *  - The reader's increment and the writer's increment are both followed
 *    by a load of the other side's word, all sequentially consistent: a
 *    store-buffering (Dekker) pair, so at least one of the two sees the
 *    other.  Either the reader backs off or the writer waits for it.
 *  - A count goes down with release order and the writer reads it with
 *    acquire; `writers` goes down with release and the reader reads it
 *    with acquire: each critical section happens before the next of the
 *    other kind.
 *  - Waits spin a little, then sleep on a futex word that the other side
 *    bumps before it wakes: readers on `rseq`, the writer on `drain`.  In
 *    the controlled scheduler's build they are scheduler waits.
 *
 * Cost: a read lock is one atomic add on the reader's own line and a load
 * of `writers` (a line only writers change); read unlock one atomic
 * subtract and the same load.  A write lock reads every slot (64 lines).
 *
 * Rules: not recursive (a reader that reads again while a writer waits
 * would wait for itself); read_unlock gets the slot read_lock returned.
 * Readers and writers may sleep while holding it.
 */
#ifndef TDP_BRLOCK_H
#define TDP_BRLOCK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "percpu.h"

struct brlock_slot {
	atomic_long readers;
} __attribute__((aligned(TDP_CACHE_LINE)));

struct tdp_brlock {
	/* writers wanting or holding the lock; read by every reader */
	atomic_int writers;
	/* the writer is inside (between lock and unlock): every reader
	 * checks it is clear when it gets in and when it leaves
	 * (lockdep-style; the same line as writers, written only by
	 * writers, so the check costs readers no shared write) */
	atomic_int writer_inside;
	const int *inject; /* the owner's bug injection state (inject.h) */
	/* tests: runs inside read_lock between counting oneself and looking
	 * for a writer (with brlock-check-first injected: between looking
	 * and counting), so a test can put a writer there */
	void (*read_hook)(void *arg);
	void *read_hook_arg;
	atomic_uint rseq; /* futex: bumped when writers drops to 0 */
	atomic_int rsleepers;
	pthread_mutex_t wmutex; /* writers among themselves */
	/* futex: bumped by a reader leaving while a writer waits */
	atomic_uint drain __attribute__((aligned(TDP_CACHE_LINE)));
	struct brlock_slot slot[TDP_NR_SLOTS];
};

int tdp_brlock_init(struct tdp_brlock *l);
void tdp_brlock_destroy(struct tdp_brlock *l);
/* Return the slot to give to tdp_brlock_read_unlock. */
unsigned tdp_brlock_read_lock(struct tdp_brlock *l);
/* The slot, or -1 if a writer wants or holds the lock. */
int tdp_brlock_read_trylock(struct tdp_brlock *l);
void tdp_brlock_read_unlock(struct tdp_brlock *l, unsigned slot);
void tdp_brlock_write_lock(struct tdp_brlock *l);
/* Fails (false) if any reader or writer holds or wants the lock. */
bool tdp_brlock_write_trylock(struct tdp_brlock *l);
void tdp_brlock_write_unlock(struct tdp_brlock *l);
/* A writer wants or holds the lock (a reader's needbreak). */
static inline bool tdp_brlock_writer_waiting(struct tdp_brlock *l)
{
	return atomic_load_explicit(&l->writers, memory_order_relaxed) > 0;
}

#endif
