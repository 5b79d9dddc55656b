/* SPDX-License-Identifier: MIT */
/* brlock.c - see brlock.h for the algorithm and the rules. */
#define _GNU_SOURCE
#include "brlock.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "assert.h"
#include "inject.h"
#include "sched/sched.h"

__thread unsigned tdp_slot_tls __attribute__((tls_model("initial-exec")));

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* A waiter spins (pause) BR_SPINS times, then yields the CPU until
 * BR_YIELD_NS have passed, and only then sleeps on its futex word: the
 * lock is held for microseconds, and waking a sleeping thread of a
 * virtual machine can take milliseconds. */
#define BR_SPINS    64
#define BR_YIELD_NS 200000ull

struct br_wait {
	unsigned spins;
	uint64_t t0;
};

static uint64_t br_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One step of a wait that has not succeeded yet: spin or yield and
 * return false, or return true when it is time to sleep. */
static bool br_wait_step(struct br_wait *w)
{
	if (w->spins < BR_SPINS) {
		w->spins++;
		cpu_relax();
		return false;
	}
	if (w->spins++ == BR_SPINS)
		w->t0 = br_now();
	if (br_now() - w->t0 < BR_YIELD_NS) {
		sched_yield();
		return false;
	}
	return true;
}


static void futex_wait(atomic_uint *w, unsigned val)
{
	syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake_all(atomic_uint *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static bool injected(const struct tdp_brlock *l, int id)
{
	return l->inject && INJECTED(*l->inject, id);
}

int tdp_brlock_init(struct tdp_brlock *l)
{
	int r;

	atomic_init(&l->writers, 0);
	atomic_init(&l->writer_inside, 0);
	atomic_init(&l->rseq, 0);
	atomic_init(&l->rsleepers, 0);
	atomic_init(&l->drain, 0);
	l->inject = NULL;
	l->read_hook = NULL;
	for (unsigned i = 0; i < TDP_NR_SLOTS; i++)
		atomic_init(&l->slot[i].readers, 0);
	r = pthread_mutex_init(&l->wmutex, NULL);
	return r ? -r : 0;
}

void tdp_brlock_destroy(struct tdp_brlock *l)
{
	pthread_mutex_destroy(&l->wmutex);
}

static bool no_writer(void *arg)
{
	struct tdp_brlock *l = arg;

	return atomic_load(&l->writers) == 0;
}

/* Wait until no writer wants the lock. */
static void wait_no_writer(struct tdp_brlock *l)
{
	struct br_wait bw = { 0 };

	for (;;) {
		unsigned seq = atomic_load(&l->rseq);

		if (atomic_load(&l->writers) == 0)
			return;
		if (TDP_SCHED_CONTROLLED()) {
			TDP_SCHED_WAIT_UNTIL(no_writer, l, SK_WAIT);
			continue;
		}
		if (!br_wait_step(&bw))
			continue;
		atomic_fetch_add(&l->rsleepers, 1);
		/* writers is read after rsleepers is up: the writer reads
		 * rsleepers after writers is down (both seq_cst), so either
		 * we see 0 here or it sees a sleeper and bumps rseq */
		if (atomic_load(&l->writers))
			futex_wait(&l->rseq, seq);
		atomic_fetch_sub(&l->rsleepers, 1);
	}
}

/* A reader left while a writer may be waiting for the slots to drain. */
static void wake_writer(struct tdp_brlock *l)
{
	atomic_fetch_add(&l->drain, 1);
	futex_wake_all(&l->drain);
}

static void reader_in(struct tdp_brlock *l)
{
	TDP_ASSERT_MSG(!atomic_load_explicit(&l->writer_inside,
					     memory_order_relaxed),
		       "brlock: a reader got in while the writer is inside");
}

unsigned tdp_brlock_read_lock(struct tdp_brlock *l)
{
	unsigned s = tdp_this_slot();
	atomic_long *c = &l->slot[s].readers;

	TDP_SCHED_POINT(SK_RDLOCK, l);
	for (;;) {
		if (injected(l, INJ_BRLOCK_CHECK_FIRST)) {
			/* the bug: look for a writer, then count oneself */
			bool free = atomic_load(&l->writers) == 0;

			if (l->read_hook)
				l->read_hook(l->read_hook_arg);
			sched_yield();
			atomic_fetch_add(c, 1);
			if (free)
				break;
		} else {
			atomic_fetch_add(c, 1);
			if (l->read_hook)
				l->read_hook(l->read_hook_arg);
			if (atomic_load(&l->writers) == 0)
				break;
		}
		atomic_fetch_sub(c, 1);
		wake_writer(l);
		wait_no_writer(l);
	}
	reader_in(l);
	return s;
}

int tdp_brlock_read_trylock(struct tdp_brlock *l)
{
	unsigned s = tdp_this_slot();
	atomic_long *c = &l->slot[s].readers;

	TDP_SCHED_POINT(SK_RWLOCK_TRY, l);
	atomic_fetch_add(c, 1);
	if (atomic_load(&l->writers) == 0) {
		reader_in(l);
		return (int)s;
	}
	atomic_fetch_sub(c, 1);
	wake_writer(l);
	return -1;
}

void tdp_brlock_read_unlock(struct tdp_brlock *l, unsigned slot)
{
	TDP_ASSERT(slot < TDP_NR_SLOTS);
	reader_in(l);
	TDP_SCHED_POINT(SK_RWLOCK_UNLOCK, l);
	TDP_ASSERT_MSG(atomic_fetch_sub(&l->slot[slot].readers, 1) > 0,
		       "brlock: read unlock of a slot with no reader");
	if (atomic_load(&l->writers))
		wake_writer(l);
}

static bool drained(void *arg)
{
	struct tdp_brlock *l = arg;

	for (unsigned i = 0; i < TDP_NR_SLOTS; i++)
		if (atomic_load(&l->slot[i].readers))
			return false;
	return true;
}

static void writer_in(struct tdp_brlock *l)
{
	atomic_store_explicit(&l->writer_inside, 1, memory_order_relaxed);
}

void tdp_brlock_write_lock(struct tdp_brlock *l)
{
	TDP_SCHED_POINT(SK_WRLOCK, l);
	atomic_fetch_add(&l->writers, 1);
	pthread_mutex_lock(&l->wmutex);
	for (struct br_wait bw = { 0 };;) {
		unsigned seq = atomic_load(&l->drain);

		if (drained(l))
			break;
		if (TDP_SCHED_CONTROLLED()) {
			TDP_SCHED_WAIT_UNTIL(drained, l, SK_WAIT);
			continue;
		}
		if (br_wait_step(&bw))
			futex_wait(&l->drain, seq);
	}
	writer_in(l);
}

/* Let readers in again after a writer leaves or gives up. */
static void writer_gone(struct tdp_brlock *l)
{
	if (atomic_fetch_sub(&l->writers, 1) == 1 &&
	    atomic_load(&l->rsleepers)) {
		atomic_fetch_add(&l->rseq, 1);
		futex_wake_all(&l->rseq);
	}
}

bool tdp_brlock_write_trylock(struct tdp_brlock *l)
{
	TDP_SCHED_POINT(SK_RWLOCK_TRY, l);
	if (atomic_load(&l->writers))
		return false;
	atomic_fetch_add(&l->writers, 1);
	if (pthread_mutex_trylock(&l->wmutex)) {
		writer_gone(l);
		return false;
	}
	if (!drained(l)) {
		pthread_mutex_unlock(&l->wmutex);
		writer_gone(l);
		return false;
	}
	writer_in(l);
	return true;
}

void tdp_brlock_write_unlock(struct tdp_brlock *l)
{
	atomic_store_explicit(&l->writer_inside, 0, memory_order_relaxed);
	TDP_SCHED_POINT(SK_RWLOCK_UNLOCK, l);
	pthread_mutex_unlock(&l->wmutex);
	writer_gone(l);
}
