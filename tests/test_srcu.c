/* SPDX-License-Identifier: MIT */
/*
 * test_srcu.c - the memslot SRCU (srcu.h) on its own: synchronize waits
 * for readers on every slot, the cookie gives the count back to the slot
 * it came from, nesting, and the interleaving that the index re-check
 * exists for (a reader that read the index before one flip and counts
 * itself after it, then a second flip): with the re-check the second
 * synchronize waits for the reader; with srcu-no-recheck injected it
 * returns while the reader is inside, every time.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "inject.h"
#include "percpu.h"
#include "srcu.h"

static struct tdp_srcu *new_srcu(void)
{
	struct tdp_srcu *s = aligned_alloc(_Alignof(struct tdp_srcu),
					   sizeof(struct tdp_srcu));

	assert_non_null(s);
	tdp_srcu_init(s);
	return s;
}

struct sync_arg {
	struct tdp_srcu *s;
	atomic_int done;
};

static void *sync_once(void *p)
{
	struct sync_arg *a = p;

	tdp_srcu_synchronize(a->s);
	atomic_store(&a->done, 1);
	return NULL;
}

/* Start a synchronize in a thread; return once it has flipped the index
 * and then had 50 ms to finish (it finishes in microseconds unless it
 * waits for a reader). */
static void sync_start(struct sync_arg *a, pthread_t *t)
{
	unsigned idx = atomic_load(&a->s->idx);

	pthread_create(t, NULL, sync_once, a);
	while (atomic_load(&a->s->idx) == idx)
		sched_yield();
	usleep(50 * 1000);
}

static void test_waits_for_every_slot(void **state)
{
	struct tdp_srcu *s = new_srcu();
	struct sync_arg a = { .s = s };
	unsigned c0, c7, inner;
	pthread_t t;

	(void)state;
	tdp_set_slot(0);
	c0 = tdp_srcu_read_lock(s);
	tdp_set_slot(7);
	c7 = tdp_srcu_read_lock(s);
	inner = tdp_srcu_read_lock(s); /* nests */
	assert_true(tdp_srcu_read_held());
	assert_int_equal(atomic_load(&s->slot[7].count[c7 & 1]), 2);
	sync_start(&a, &t);
	assert_int_equal(atomic_load(&a.done), 0);
	tdp_srcu_read_unlock(s, inner);
	tdp_set_slot(3); /* gives back to slot 7 all the same */
	tdp_srcu_read_unlock(s, c7);
	usleep(20 * 1000);
	assert_int_equal(atomic_load(&a.done), 0); /* slot 0 still reads */
	tdp_srcu_read_unlock(s, c0);
	pthread_join(t, NULL);
	assert_int_equal(atomic_load(&a.done), 1);
	assert_false(tdp_srcu_read_held());
	for (unsigned i = 0; i < TDP_NR_SLOTS; i++)
		assert_int_equal(atomic_load(&s->slot[i].count[0]) +
					 atomic_load(&s->slot[i].count[1]),
				 0);
	tdp_set_slot(0);
	free(s);
}

struct hook_state {
	atomic_int armed;
	struct event reached, release;
};

static void pause_once(void *arg)
{
	struct hook_state *h = arg;

	if (atomic_exchange(&h->armed, 0)) {
		ev_set(&h->reached);
		ev_wait(&h->release);
	}
}

struct reader_arg {
	struct tdp_srcu *s;
	struct event in, out;
};

static void *reader(void *p)
{
	struct reader_arg *r = p;
	unsigned c;

	tdp_set_slot(11);
	c = tdp_srcu_read_lock(r->s);
	ev_set(&r->in);
	ev_wait(&r->out);
	tdp_srcu_read_unlock(r->s, c);
	return NULL;
}

/* Returns whether the second synchronize waited for the reader. */
static bool recheck_scenario(int inject)
{
	struct tdp_srcu *s = new_srcu();
	struct hook_state h;
	struct reader_arg r;
	struct sync_arg a = { .s = s };
	pthread_t tr, ts;
	int inj = inject;
	bool waited;

	memset(&h, 0, sizeof(h));
	memset(&r, 0, sizeof(r));
	atomic_store(&h.armed, 1);
	r.s = s;
	s->inject = &inj;
	s->read_hook = pause_once;
	s->read_hook_arg = &h;
	pthread_create(&tr, NULL, reader, &r);
	ev_wait(&h.reached);	/* the reader has read index 0 */
	tdp_srcu_synchronize(s); /* flips to 1; nobody counted in 0 */
	ev_set(&h.release);
	ev_wait(&r.in);		 /* the reader is inside */
	sync_start(&a, &ts);	 /* flips back to 0, waits for 1's readers */
	waited = !atomic_load(&a.done);
	ev_set(&r.out);
	pthread_join(tr, NULL);
	pthread_join(ts, NULL);
	free(s);
	return waited;
}

static void test_index_recheck(void **state)
{
	(void)state;
	assert_true(recheck_scenario(INJ_NONE));
	if (!TDP_INJECT_AVAILABLE)
		skip();
	/* the bug: the reader counts itself in index 0, which the second
	 * synchronize does not wait for */
	assert_false(recheck_scenario(INJ_SRCU_NO_RECHECK));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_waits_for_every_slot),
		cmocka_unit_test(test_index_recheck),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
