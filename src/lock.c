/* SPDX-License-Identifier: MIT */
/* lock.c - see lock.h for the rules. */
#include "lock.h"

#include <errno.h>
#include <sched.h>

#define HELD_MAX 8

struct held {
	const struct tdp_lock *lock;
	enum tdp_lock_mode mode;
	int flush_owed;
};

static __thread struct held held[HELD_MAX];

enum tdp_lock_mode tdp_lock_held_mode(const struct tdp_lock *l)
{
	for (int i = 0; i < HELD_MAX; i++)
		if (held[i].lock == l)
			return held[i].mode;
	return TDP_UNLOCKED;
}

static void held_add(const struct tdp_lock *l, enum tdp_lock_mode m)
{
	TDP_ASSERT_MSG(tdp_lock_held_mode(l) == TDP_UNLOCKED,
		       "recursive mmu_lock acquisition");
	for (int i = 0; i < HELD_MAX; i++) {
		if (!held[i].lock) {
			held[i].lock = l;
			held[i].mode = m;
			held[i].flush_owed = 0;
			return;
		}
	}
	TDP_ASSERT_MSG(0, "too many locks held");
}

static struct held *held_find(const struct tdp_lock *l)
{
	for (int i = 0; i < HELD_MAX; i++)
		if (held[i].lock == l)
			return &held[i];
	return NULL;
}

void tdp_lock_owe_flush(struct tdp_lock *l)
{
	struct held *h = held_find(l);

	TDP_ASSERT_MSG(h, "a flush is owed without holding mmu_lock");
	h->flush_owed++;
}

void tdp_lock_paid_flush(struct tdp_lock *l)
{
	struct held *h = held_find(l);

	if (h)
		h->flush_owed = 0;
}

static void held_del(const struct tdp_lock *l, enum tdp_lock_mode m)
{
	for (int i = 0; i < HELD_MAX; i++) {
		if (held[i].lock == l) {
			TDP_ASSERT_MSG(held[i].mode == m,
				       "unlock mode differs from lock mode");
			TDP_ASSERT_MSG(!held[i].flush_owed,
				       "I6: mmu_lock released or yielded with "
				       "a TLB flush still owed");
			held[i].lock = NULL;
			held[i].mode = TDP_UNLOCKED;
			return;
		}
	}
	TDP_ASSERT_MSG(0, "unlock of a lock not held");
}

int tdp_lock_init(struct tdp_lock *l)
{
	pthread_rwlockattr_t a;
	int r;

	atomic_init(&l->waiters, 0);
	if (pthread_rwlockattr_init(&a))
		return -ENOMEM;
	pthread_rwlockattr_setkind_np(&a,
				      PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	r = pthread_rwlock_init(&l->rw, &a);
	pthread_rwlockattr_destroy(&a);
	return r ? -r : 0;
}

void tdp_lock_destroy(struct tdp_lock *l)
{
	pthread_rwlock_destroy(&l->rw);
}

void tdp_read_lock(struct tdp_lock *l)
{
	if (pthread_rwlock_tryrdlock(&l->rw)) {
		atomic_fetch_add_explicit(&l->waiters, 1, memory_order_relaxed);
		pthread_rwlock_rdlock(&l->rw);
		atomic_fetch_sub_explicit(&l->waiters, 1, memory_order_relaxed);
	}
	held_add(l, TDP_READ);
}

void tdp_read_unlock(struct tdp_lock *l)
{
	held_del(l, TDP_READ);
	pthread_rwlock_unlock(&l->rw);
}

void tdp_write_lock(struct tdp_lock *l)
{
	if (pthread_rwlock_trywrlock(&l->rw)) {
		atomic_fetch_add_explicit(&l->waiters, 1, memory_order_relaxed);
		pthread_rwlock_wrlock(&l->rw);
		atomic_fetch_sub_explicit(&l->waiters, 1, memory_order_relaxed);
	}
	held_add(l, TDP_WRITE);
}

void tdp_lock_yield(struct tdp_lock *l, enum tdp_lock_mode mode,
		    void (*away)(void *arg), void *arg)
{
	TDP_ASSERT(tdp_lock_held_mode(l) == mode && mode != TDP_UNLOCKED);
	atomic_fetch_add_explicit(&l->waiters, 1, memory_order_relaxed);
	held_del(l, mode);
	pthread_rwlock_unlock(&l->rw);
	if (away)
		away(arg);
	else
		sched_yield();
	if (mode == TDP_READ)
		pthread_rwlock_rdlock(&l->rw);
	else
		pthread_rwlock_wrlock(&l->rw);
	held_add(l, mode);
	atomic_fetch_sub_explicit(&l->waiters, 1, memory_order_relaxed);
}

void tdp_write_unlock(struct tdp_lock *l)
{
	held_del(l, TDP_WRITE);
	pthread_rwlock_unlock(&l->rw);
}
