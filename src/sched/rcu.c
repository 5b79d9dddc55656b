/* SPDX-License-Identifier: MIT */
/*
 * rcu.c - RCU for a TDP_SCHED build, replacing liburcu (whose grace
 * period sleeps in the kernel until a reader wakes it, and whose
 * callbacks run on a thread nobody schedules).  Same API and guarantees
 * as src/rcu.h states for liburcu:
 *  - read_lock and read_unlock are scheduling points; a thread's nesting
 *    depth and its count of completed sections live in its sthread;
 *  - synchronize snapshots the threads inside a section and waits, in
 *    the scheduler, until each has left that section; readers that start
 *    later are not waited for; calling it inside a section fails;
 *  - call_rcu appends to one FIFO; a controlled thread (the first one
 *    tdp_sched_start creates) takes the whole queue, waits for a grace
 *    period and runs the callbacks in order, so a callback never runs
 *    before a full grace period from its call_rcu, and when it runs is
 *    the schedule's choice like everything else;
 *  - barrier waits until the queue is empty and no batch is running.
 * Before tdp_sched_start and after tdp_sched_stop only one thread runs:
 * synchronize has no reader to wait for and barrier runs the queue
 * itself.
 */
#include "rcu.h"

#include "assert.h"
#include "sched/internal.h"

/* The callback queue outlives a scheduled run (setup and teardown queue
 * callbacks too), so it is not part of S. */
static struct rcu_head *rcu_first, **rcu_tail = &rcu_first;
static unsigned free_nest; /* nesting of the one uncontrolled thread */

struct gp {
	uint64_t qs[SCHED_MAX_THREADS];
	bool in[SCHED_MAX_THREADS];
	unsigned n;
};

void tdp_sched_rcu_read_lock(void)
{
	struct sthread *me = sched_self;

	if (!me) {
		TDP_ASSERT(!S.on);
		free_nest++;
		return;
	}
	sched_point_ra(SK_RCU_LOCK, NULL, __builtin_return_address(0));
	me->rcu_nest++;
}

void tdp_sched_rcu_read_unlock(void)
{
	struct sthread *me = sched_self;

	if (!me) {
		TDP_ASSERT(free_nest > 0);
		free_nest--;
		return;
	}
	TDP_ASSERT(me->rcu_nest > 0);
	if (!--me->rcu_nest)
		me->rcu_qs++;
	sched_point_ra(SK_RCU_UNLOCK, NULL, __builtin_return_address(0));
}

static bool gp_done(void *arg)
{
	struct gp *g = arg;

	for (unsigned i = 0; i < g->n; i++)
		if (g->in[i] && S.th[i]->rcu_nest && S.th[i]->rcu_qs == g->qs[i])
			return false;
	return true;
}

static void grace_period(void)
{
	struct gp g;

	g.n = S.nth;
	for (unsigned i = 0; i < g.n; i++) {
		g.in[i] = S.th[i]->rcu_nest > 0;
		g.qs[i] = S.th[i]->rcu_qs;
	}
	tdp_sched_wait_until(gp_done, &g, SK_RCU_SYNC);
}

static void run_callbacks(struct rcu_head *h)
{
	while (h) {
		struct rcu_head *next = h->next;

		if (sched_ctl())
			sched_point_ra(SK_RCU_CB, h, (const void *)h->func);
		h->func(h);
		h = next;
	}
}

static bool rcu_work(void *arg)
{
	(void)arg;
	return rcu_first || S.rcu_stop;
}

static void *rcu_thread(void *arg)
{
	(void)arg;
	for (;;) {
		struct rcu_head *batch;

		tdp_sched_wait_until(rcu_work, NULL, SK_WAIT);
		if (!rcu_first)
			break; /* stopping, and nothing queued */
		batch = rcu_first;
		rcu_first = NULL;
		rcu_tail = &rcu_first;
		S.rcu_busy = true;
		grace_period();
		run_callbacks(batch);
		S.rcu_busy = false;
	}
	return NULL;
}

void sched_rcu_start(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, rcu_thread, NULL))
		abort();
	S.rcu_thread = sched_find(t);
}

void sched_rcu_stop(void)
{
	tdp_rcu_barrier();
	S.rcu_stop = true;
	pthread_join(S.rcu_thread->pth, NULL);
}

void tdp_call_rcu(struct rcu_head *head, void (*fn)(struct rcu_head *))
{
	head->func = fn;
	head->next = NULL;
	*rcu_tail = head;
	rcu_tail = &head->next;
	if (sched_ctl())
		sched_point_ra(SK_RCU_CB, head, __builtin_return_address(0));
}

void tdp_synchronize_rcu(void)
{
	TDP_ASSERT_MSG(!tdp_rcu_read_held(),
		       "synchronize_rcu inside an RCU read-side section");
	if (sched_ctl())
		grace_period();
}

static bool rcu_idle(void *arg)
{
	(void)arg;
	return !rcu_first && !S.rcu_busy;
}

void tdp_rcu_barrier(void)
{
	struct rcu_head *h;

	TDP_ASSERT(!tdp_rcu_read_held());
	if (sched_ctl()) {
		tdp_sched_wait_until(rcu_idle, NULL, SK_RCU_BARRIER);
		return;
	}
	TDP_ASSERT(!S.on);
	h = rcu_first;
	rcu_first = NULL;
	rcu_tail = &rcu_first;
	run_callbacks(h);
}
