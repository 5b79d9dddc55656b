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
	unsigned slot; /* TDP_READ: the brlock slot to give back */
};

/* The thread's held locks: held[0 .. nheld - 1], packed (an unlock
 * moves the last entry into the hole), so a lookup reads as many entries
 * as the thread holds locks, usually one: it runs several times per
 * fault. */
static __thread struct held held[HELD_MAX]
	__attribute__((tls_model("initial-exec")));
static __thread int nheld __attribute__((tls_model("initial-exec")));

static struct held *held_find(const struct tdp_lock *l)
{
	for (int i = 0; i < nheld; i++)
		if (held[i].lock == l)
			return &held[i];
	return NULL;
}

enum tdp_lock_mode tdp_lock_held_mode(const struct tdp_lock *l)
{
	struct held *h = held_find(l);

	return h ? h->mode : TDP_UNLOCKED;
}

static void held_add(const struct tdp_lock *l, enum tdp_lock_mode m,
		     unsigned slot)
{
	TDP_ASSERT_MSG(!held_find(l), "recursive mmu_lock acquisition");
	TDP_ASSERT_MSG(nheld < HELD_MAX, "too many locks held");
	held[nheld++] = (struct held){
		.lock = l, .mode = m, .flush_owed = 0, .slot = slot};
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

/* Returns the slot recorded by held_add. */
static unsigned held_del(const struct tdp_lock *l, enum tdp_lock_mode m)
{
	struct held *h = held_find(l);
	unsigned slot;

	TDP_ASSERT_MSG(h, "unlock of a lock not held");
	TDP_ASSERT_MSG(h->mode == m, "unlock mode differs from lock mode");
	TDP_ASSERT_MSG(!h->flush_owed,
		       "I6: mmu_lock released or yielded with a TLB flush "
		       "still owed");
	slot = h->slot;
	*h = held[--nheld];
	return slot;
}

int tdp_lock_init(struct tdp_lock *l)
{
	atomic_init(&l->waiters, 0);
	return tdp_brlock_init(&l->br);
}

void tdp_lock_destroy(struct tdp_lock *l)
{
	tdp_brlock_destroy(&l->br);
}

void tdp_read_lock(struct tdp_lock *l)
{
	int s = tdp_brlock_read_trylock(&l->br);

	if (s < 0) {
		atomic_fetch_add_explicit(&l->waiters, 1, memory_order_relaxed);
		s = (int)tdp_brlock_read_lock(&l->br);
		atomic_fetch_sub_explicit(&l->waiters, 1, memory_order_relaxed);
	}
	held_add(l, TDP_READ, (unsigned)s);
}

void tdp_read_unlock(struct tdp_lock *l)
{
	tdp_brlock_read_unlock(&l->br, held_del(l, TDP_READ));
}

void tdp_write_lock(struct tdp_lock *l)
{
	if (!tdp_brlock_write_trylock(&l->br)) {
		atomic_fetch_add_explicit(&l->waiters, 1, memory_order_relaxed);
		tdp_brlock_write_lock(&l->br);
		atomic_fetch_sub_explicit(&l->waiters, 1, memory_order_relaxed);
	}
	held_add(l, TDP_WRITE, 0);
}

void tdp_lock_yield(struct tdp_lock *l, enum tdp_lock_mode mode,
		    void (*away)(void *arg), void *arg)
{
	unsigned s;

	TDP_ASSERT(tdp_lock_held_mode(l) == mode && mode != TDP_UNLOCKED);
	atomic_fetch_add_explicit(&l->waiters, 1, memory_order_relaxed);
	s = held_del(l, mode);
	if (mode == TDP_READ)
		tdp_brlock_read_unlock(&l->br, s);
	else
		tdp_brlock_write_unlock(&l->br);
	if (away)
		away(arg);
	else
		sched_yield();
	if (mode == TDP_READ) {
		s = tdp_brlock_read_lock(&l->br);
	} else {
		tdp_brlock_write_lock(&l->br);
		s = 0;
	}
	held_add(l, mode, s);
	atomic_fetch_sub_explicit(&l->waiters, 1, memory_order_relaxed);
}

void tdp_write_unlock(struct tdp_lock *l)
{
	held_del(l, TDP_WRITE);
	tdp_brlock_write_unlock(&l->br);
}
