/* SPDX-License-Identifier: MIT */
/*
 * rcu.h - thin wrapper over liburcu (memb flavour).
 *
 * What RCU protects here:
 *  - software walks of TDP tables: a table unlinked from a root is freed
 *    with tdp_call_rcu(), so a walker inside tdp_rcu_read_lock() never sees
 *    it freed;
 *  - the root list (cds_list_*_rcu) and the memslot sets (published with
 *    rcu_assign_pointer, freed after tdp_synchronize_rcu()).
 * What it does NOT protect: vCPU TLBs and paging-structure caches.  Those
 * are covered by remote TLB flushes, which must complete before the RCU
 * read-side section that unlinked a table ends (DESIGN.md I2).
 *
 * Threads: liburcu needs every reader thread registered.  The wrapper
 * registers the calling thread on first use and unregisters it when the
 * thread exits (pthread key destructor), so callers never see it.
 *
 * ThreadSanitizer: liburcu 0.13 is not instrumented, so TSan cannot see
 * that a grace period orders a reader's accesses before the callback's
 * free.  tdp_call_rcu() and tdp_synchronize_rcu() annotate the edges:
 * every read-side unlock releases a per-process sync object, and the
 * callback / the return of synchronize acquires it.
 */
#ifndef TDP_RCU_H
#define TDP_RCU_H

#include <stdbool.h>

#define RCU_MEMBARRIER
#include <urcu/urcu-memb.h>
#include <urcu/rculist.h>

void tdp_rcu_register_slow(void);
extern __thread bool tdp_rcu_registered;
extern __thread int tdp_rcu_depth;

/* The sync object of the TSan grace-period annotation. */
extern char tdp_rcu_tsan_sync;
#ifdef TDP_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define tdp_tsan_release(a) __tsan_release(a)
#define tdp_tsan_acquire(a) __tsan_acquire(a)
#else
#define tdp_tsan_release(a) ((void)(a))
#define tdp_tsan_acquire(a) ((void)(a))
#endif

static inline void tdp_rcu_ensure_registered(void)
{
	if (__builtin_expect(!tdp_rcu_registered, 0))
		tdp_rcu_register_slow();
}

static inline void tdp_rcu_read_lock(void)
{
	tdp_rcu_ensure_registered();
	tdp_rcu_depth++;
	urcu_memb_read_lock();
}

static inline void tdp_rcu_read_unlock(void)
{
#ifdef TDP_TSAN
	tdp_tsan_release(&tdp_rcu_tsan_sync);
#endif
	tdp_rcu_depth--;
	urcu_memb_read_unlock();
}

/* lockdep-style: is the calling thread inside a read-side section? */
static inline bool tdp_rcu_read_held(void)
{
	return tdp_rcu_depth > 0;
}

/* Defer @fn(@head) until every current reader has left its section. */
void tdp_call_rcu(struct rcu_head *head, void (*fn)(struct rcu_head *));
/* Wait for a grace period.  Must not be called inside a read section. */
void tdp_synchronize_rcu(void);
/* Wait until every callback queued so far has run. */
void tdp_rcu_barrier(void);

#endif
