/* SPDX-License-Identifier: MIT */
/*
 * test_brlock.c - the big-reader lock (brlock.h) on its own, and through
 * mmu_lock (lock.h): exclusion each way, readers on different slots,
 * writer preference, the slot a reader gives back, needbreak, a stress
 * run whose writers check they are alone and whose readers check no
 * writer is in (a data race on plain memory for ThreadSanitizer if the
 * lock fails), and the injected bug brlock-check-first (a reader that
 * looks for a writer before counting itself) put in its window by the
 * test hook: the reader's own assertion catches it every time.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brlock.h"
#include "helpers.h"
#include "inject.h"
#include "lock.h"
#include "percpu.h"

static struct tdp_brlock *new_lock(void)
{
	struct tdp_brlock *l = aligned_alloc(_Alignof(struct tdp_brlock),
					     sizeof(struct tdp_brlock));

	assert_non_null(l);
	assert_int_equal(tdp_brlock_init(l), 0);
	return l;
}

static void free_lock(struct tdp_brlock *l)
{
	tdp_brlock_destroy(l);
	free(l);
}

/* ---- a forked child for the injected bug (runs first: no RCU threads) */

struct hook_state {
	struct event reached, release;
};

static void pause_hook(void *arg)
{
	struct hook_state *h = arg;

	ev_set(&h->reached);
	ev_wait(&h->release);
}

struct reader_arg {
	struct tdp_brlock *l;
	atomic_int in;
};

static void *reader_once(void *p)
{
	struct reader_arg *a = p;
	unsigned s = tdp_brlock_read_lock(a->l);

	atomic_store(&a->in, 1);
	tdp_brlock_read_unlock(a->l, s);
	return NULL;
}

/* A reader stopped inside read_lock at the hook; a writer tries the lock
 * there.  Correct: the reader is counted already, the writer fails, and
 * the reader gets in afterwards.  With the bug the writer gets in and the
 * reader, released, gets in too: its check aborts.  Returns 0 if the
 * writer failed and the reader got in. */
static int check_first_scenario(int inject)
{
	struct tdp_brlock *l = new_lock();
	struct hook_state h;
	struct reader_arg a = { .l = l };
	int inj = inject;
	pthread_t t;
	bool got;

	memset(&h, 0, sizeof(h));
	l->inject = &inj;
	l->read_hook = pause_hook;
	l->read_hook_arg = &h;
	pthread_create(&t, NULL, reader_once, &a);
	ev_wait(&h.reached);
	got = tdp_brlock_write_trylock(l);
	ev_set(&h.release);
	if (got) {
		/* the reader must not get in while we are inside */
		usleep(20 * 1000);
		if (atomic_load(&a.in))
			return 3; /* not reached: its assertion fired */
		tdp_brlock_write_unlock(l);
	}
	pthread_join(t, NULL);
	free_lock(l);
	return got ? 2 : 0;
}

static void test_check_first_injected(void **state)
{
	struct th_child c;

	(void)state;
	th_run_child(check_first_scenario, INJ_NONE, 30, &c);
	if (!th_child_clean(&c)) {
		th_child_describe("correct brlock", &c);
		fail();
	}
	if (!TDP_INJECT_AVAILABLE)
		skip();
	th_run_child(check_first_scenario, INJ_BRLOCK_CHECK_FIRST, 30, &c);
	if (!th_child_aborted_with(&c, "brlock: a reader got in while the "
				       "writer is inside")) {
		th_child_describe("brlock-check-first", &c);
		fail();
	}
}

/* ---- exclusion, slots, preference ---------------------------------- */

static void test_exclusion(void **state)
{
	struct tdp_brlock *l = new_lock();
	unsigned s0, s5;

	(void)state;
	/* readers on two slots */
	tdp_set_slot(0);
	s0 = tdp_brlock_read_lock(l);
	tdp_set_slot(5);
	s5 = tdp_brlock_read_lock(l);
	assert_int_equal(s0, 0);
	assert_int_equal(s5, 5);
	assert_false(tdp_brlock_write_trylock(l));
	/* the slot given back is the one taken, not the thread's current */
	tdp_set_slot(9);
	tdp_brlock_read_unlock(l, s0);
	assert_false(tdp_brlock_write_trylock(l));
	tdp_brlock_read_unlock(l, s5);
	assert_int_equal(atomic_load(&l->slot[0].readers), 0);
	assert_int_equal(atomic_load(&l->slot[5].readers), 0);
	assert_int_equal(atomic_load(&l->slot[9].readers), 0);
	/* a writer excludes readers and writers */
	assert_true(tdp_brlock_write_trylock(l));
	assert_int_equal(tdp_brlock_read_trylock(l), -1);
	assert_false(tdp_brlock_write_trylock(l));
	tdp_brlock_write_unlock(l);
	assert_int_equal(tdp_brlock_read_trylock(l), 9);
	tdp_brlock_read_unlock(l, 9);
	tdp_set_slot(0);
	free_lock(l);
}

struct writer_arg {
	struct tdp_brlock *l;
	atomic_int state; /* 1 inside, 2 done */
};

static void *writer_once(void *p)
{
	struct writer_arg *w = p;

	tdp_brlock_write_lock(w->l);
	atomic_store(&w->state, 1);
	usleep(10 * 1000);
	atomic_store(&w->state, 2);
	tdp_brlock_write_unlock(w->l);
	return NULL;
}

/* A writer that waits for a reader keeps new readers out (writer
 * preference, I9), and gets in once the reader leaves. */
static void test_writer_preference(void **state)
{
	struct tdp_brlock *l = new_lock();
	struct writer_arg w = { .l = l };
	pthread_t t;
	unsigned s;
	int r;

	(void)state;
	s = tdp_brlock_read_lock(l);
	pthread_create(&t, NULL, writer_once, &w);
	while (!tdp_brlock_writer_waiting(l))
		sched_yield();
	/* the writer announced itself: a new reader stays out */
	assert_int_equal(tdp_brlock_read_trylock(l), -1);
	assert_int_equal(atomic_load(&w.state), 0);
	tdp_brlock_read_unlock(l, s);
	/* the writer gets in; a reader waits until it is out */
	s = tdp_brlock_read_lock(l);
	r = atomic_load(&w.state);
	tdp_brlock_read_unlock(l, s);
	pthread_join(t, NULL);
	assert_int_equal(r, 2);
	free_lock(l);
}

/* mmu_lock's needbreak: a reader learns that a writer waits; a writer
 * does not count itself. */
static void test_needbreak(void **state)
{
	struct tdp_lock *m = aligned_alloc(_Alignof(struct tdp_lock),
					   sizeof(struct tdp_lock));
	struct writer_arg w;
	pthread_t t;

	(void)state;
	assert_int_equal(tdp_lock_init(m), 0);
	tdp_write_lock(m);
	assert_false(tdp_lock_needbreak(m));
	tdp_write_unlock(m);
	tdp_read_lock(m);
	assert_false(tdp_lock_needbreak(m));
	memset(&w, 0, sizeof(w));
	w.l = &m->br;
	pthread_create(&t, NULL, writer_once, &w);
	while (!tdp_lock_needbreak(m))
		sched_yield();
	tdp_lock_yield(m, TDP_READ, NULL, NULL);
	/* yielded: the writer ran to the end before we got back in */
	assert_int_equal(atomic_load(&w.state), 2);
	tdp_read_unlock(m);
	pthread_join(t, NULL);
	tdp_lock_destroy(m);
	free(m);
}

/* ---- stress -------------------------------------------------------- */

#define STRESS_THREADS 4
#define STRESS_OPS     20000

struct stress {
	struct tdp_brlock *l;
	long plain;	      /* written under the write lock only */
	int writer_in;	      /* plain: set by writers, read by readers */
	atomic_long reads_ok;
};

struct stress_arg {
	struct stress *st;
	unsigned id;
};

/* cmocka's assertions belong to the main thread */
static void stress_fail(const char *what)
{
	fprintf(stderr, "test_brlock stress: %s\n", what);
	abort();
}

static void *stress_thread(void *p)
{
	struct stress_arg *a = p;
	struct stress *st = a->st;
	uint64_t rng = a->id + 1;

	tdp_set_slot(a->id); /* threads 0 and 3 share no slot, 0 is shared */
	for (unsigned i = 0; i < STRESS_OPS; i++) {
		if (th_rand(&rng) % 8 == 0) {
			tdp_brlock_write_lock(st->l);
			if (st->writer_in)
				stress_fail("two writers inside");
			st->writer_in = 1;
			st->plain++;
			st->writer_in = 0;
			tdp_brlock_write_unlock(st->l);
		} else {
			unsigned s = tdp_brlock_read_lock(st->l);
			long v = st->plain;

			if (st->writer_in || st->plain != v)
				stress_fail("a reader saw a writer");
			tdp_brlock_read_unlock(st->l, s);
			atomic_fetch_add(&st->reads_ok, 1);
		}
	}
	return NULL;
}

static void test_stress(void **state)
{
	struct stress st = { .l = new_lock() };
	struct stress_arg a[STRESS_THREADS];
	pthread_t t[STRESS_THREADS];
	long writes = 0;

	(void)state;
	for (unsigned i = 0; i < STRESS_THREADS; i++) {
		a[i] = (struct stress_arg){ &st, i };
		pthread_create(&t[i], NULL, stress_thread, &a[i]);
	}
	for (unsigned i = 0; i < STRESS_THREADS; i++)
		pthread_join(t[i], NULL);
	for (unsigned i = 0; i < STRESS_THREADS; i++) {
		uint64_t rng = i + 1;

		for (unsigned k = 0; k < STRESS_OPS; k++)
			writes += th_rand(&rng) % 8 == 0;
	}
	assert_int_equal(st.plain, writes);
	assert_int_equal(atomic_load(&st.reads_ok),
			 STRESS_THREADS * STRESS_OPS - writes);
	for (unsigned i = 0; i < TDP_NR_SLOTS; i++)
		assert_int_equal(atomic_load(&st.l->slot[i].readers), 0);
	assert_int_equal(atomic_load(&st.l->writers), 0);
	free_lock(st.l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_first_injected),
		cmocka_unit_test(test_exclusion),
		cmocka_unit_test(test_writer_preference),
		cmocka_unit_test(test_needbreak),
		cmocka_unit_test(test_stress),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
