/* SPDX-License-Identifier: MIT */
/* srcu.c - see srcu.h for the algorithm and the rules. */
#include "srcu.h"

#include <sched.h>
#include <unistd.h>

#include "assert.h"
#include "inject.h"
#include "sched/sched.h"

struct srcu_wait {
	struct tdp_srcu *s;
	unsigned idx;
};

static bool srcu_drained(void *arg)
{
	struct srcu_wait *w = arg;

	for (unsigned i = 0; i < TDP_NR_SLOTS; i++)
		if (atomic_load(&w->s->slot[i].count[w->idx]) != 0)
			return false;
	return true;
}

__thread int tdp_srcu_depth __attribute__((tls_model("initial-exec")));

void tdp_srcu_init(struct tdp_srcu *s)
{
	for (unsigned i = 0; i < TDP_NR_SLOTS; i++) {
		atomic_init(&s->slot[i].count[0], 0);
		atomic_init(&s->slot[i].count[1], 0);
	}
	atomic_init(&s->idx, 0);
	s->inject = NULL;
	s->read_hook = NULL;
}

unsigned tdp_srcu_read_lock(struct tdp_srcu *s)
{
	unsigned slot = tdp_this_slot();
	struct srcu_slot *c = &s->slot[slot];
	bool recheck = !(s->inject && INJECTED(*s->inject, INJ_SRCU_NO_RECHECK));

	for (;;) {
		unsigned i = atomic_load(&s->idx) & 1;

		if (s->read_hook)
			s->read_hook(s->read_hook_arg);
		if (!recheck)
			usleep(50); /* widen the window between the two */
		atomic_fetch_add(&c->count[i], 1);
		/* If the index flipped before our increment became visible,
		 * a synchronize may already have seen our counter at zero:
		 * undo and take the new index. */
		if (!recheck || (atomic_load(&s->idx) & 1) == i) {
			tdp_srcu_depth++;
			return i | slot << 1;
		}
		atomic_fetch_sub(&c->count[i], 1);
	}
}

void tdp_srcu_read_unlock(struct tdp_srcu *s, unsigned cookie)
{
	unsigned i = cookie & 1, slot = cookie >> 1;

	TDP_ASSERT(tdp_srcu_depth > 0 && slot < TDP_NR_SLOTS);
	tdp_srcu_depth--;
	TDP_ASSERT(atomic_fetch_sub(&s->slot[slot].count[i], 1) > 0);
}

void tdp_srcu_synchronize(struct tdp_srcu *s)
{
	unsigned old = atomic_fetch_add(&s->idx, 1) & 1;
	struct srcu_wait w = { s, old };

	TDP_ASSERT_MSG(!tdp_srcu_read_held(),
		       "srcu synchronize inside a read section");

	while (!srcu_drained(&w)) {
		TDP_SCHED_WAIT_UNTIL(srcu_drained, &w, SK_WAIT);
		sched_yield();
	}
}
