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
 * the two edges our code relies on, and the wrapper annotates them:
 *  - grace period: every read-side unlock, and tdp_call_rcu() itself,
 *    release tdp_rcu_tsan_sync; a callback (tdp_rcu_cb_begin) and the
 *    return of tdp_synchronize_rcu() acquire it, so accesses made inside
 *    any earlier section, or by the thread that queued the callback,
 *    happen before the free;
 *  - barrier: a callback ends with tdp_rcu_cb_end(), releasing
 *    tdp_rcu_tsan_done; tdp_rcu_barrier() acquires it on return, so
 *    everything the callbacks did happens before the caller continues
 *    (e.g. destroying the allocator they freed into).
 * Every callback passed to tdp_call_rcu() must call both.
 */
#ifndef TDP_RCU_H
#define TDP_RCU_H

#include <stdbool.h>

#ifdef TDP_SCHED
/* The controlled scheduler's RCU (src/sched/rcu.c) replaces liburcu. */
#include <stddef.h>

struct rcu_head {
	struct rcu_head *next;
	void (*func)(struct rcu_head *head);
};
#define caa_container_of(ptr, type, member)                                    \
	((type *)((char *)(ptr) - offsetof(type, member)))
void tdp_sched_rcu_read_lock(void);
void tdp_sched_rcu_read_unlock(void);
#else
#define RCU_MEMBARRIER
#include <urcu/urcu-memb.h>
#include <urcu/rculist.h>
#endif

void tdp_rcu_register_slow(void);
extern __thread bool tdp_rcu_registered
	__attribute__((tls_model("initial-exec")));
extern __thread int tdp_rcu_depth __attribute__((tls_model("initial-exec")));

/* The sync objects of the TSan annotations. */
extern char tdp_rcu_tsan_sync, tdp_rcu_tsan_done;
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
#ifdef TDP_SCHED
	tdp_sched_rcu_read_lock();
#else
	urcu_memb_read_lock();
#endif
}

static inline void tdp_rcu_read_unlock(void)
{
#ifdef TDP_TSAN
	tdp_tsan_release(&tdp_rcu_tsan_sync);
#endif
	tdp_rcu_depth--;
#ifdef TDP_SCHED
	tdp_sched_rcu_read_unlock();
#else
	urcu_memb_read_unlock();
#endif
}

/* lockdep-style: is the calling thread inside a read-side section? */
static inline bool tdp_rcu_read_held(void)
{
	return tdp_rcu_depth > 0;
}

static inline void tdp_rcu_cb_begin(void)
{
	tdp_tsan_acquire(&tdp_rcu_tsan_sync);
}

static inline void tdp_rcu_cb_end(void)
{
	tdp_tsan_release(&tdp_rcu_tsan_done);
}

/* Publish / read an RCU-protected pointer (C11 release / acquire, visible
 * to TSan, unlike liburcu's volatile rcu_assign_pointer/rcu_dereference). */
#define tdp_rcu_assign_pointer(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)
#define tdp_rcu_dereference(p) __atomic_load_n(&(p), __ATOMIC_ACQUIRE)

/*
 * A minimal RCU list, written with C11 atomics so that ThreadSanitizer sees
 * the publication (liburcu's cds_list_*_rcu use volatile accesses it cannot
 * see).  Writers serialise on a lock of their own; readers walk ->next with
 * tdp_rcu_list_next() inside tdp_rcu_read_lock().  A deleted node keeps its
 * ->next, so a reader standing on it can still move on.  ->prev is for
 * writers only.
 */
struct tdp_rcu_list {
	struct tdp_rcu_list *next, *prev;
};

static inline void tdp_rcu_list_init(struct tdp_rcu_list *head)
{
	head->next = head->prev = head;
}

static inline bool tdp_rcu_list_empty(const struct tdp_rcu_list *head)
{
	return __atomic_load_n(&head->next, __ATOMIC_ACQUIRE) == head;
}

static inline struct tdp_rcu_list *
tdp_rcu_list_next(const struct tdp_rcu_list *n)
{
	return __atomic_load_n(&n->next, __ATOMIC_ACQUIRE);
}

/* Insert @n first.  Writer lock held. */
static inline void tdp_rcu_list_add(struct tdp_rcu_list *n,
				    struct tdp_rcu_list *head)
{
	struct tdp_rcu_list *first = head->next;

	__atomic_store_n(&n->next, first, __ATOMIC_RELAXED);
	n->prev = head;
	first->prev = n;
	__atomic_store_n(&head->next, n, __ATOMIC_RELEASE);
}

/* Unlink @n.  Writer lock held; free @n only after a grace period. */
static inline void tdp_rcu_list_del(struct tdp_rcu_list *n)
{
	n->next->prev = n->prev;
	__atomic_store_n(&n->prev->next, n->next, __ATOMIC_RELEASE);
}

/* Defer @fn(@head) until every current reader has left its section. */
void tdp_call_rcu(struct rcu_head *head, void (*fn)(struct rcu_head *));
/* Wait for a grace period.  Must not be called inside a read section. */
void tdp_synchronize_rcu(void);
/* Wait until every callback queued so far has run. */
void tdp_rcu_barrier(void);

#endif
