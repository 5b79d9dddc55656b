/* SPDX-License-Identifier: MIT */
/* srcu.c - see srcu.h for the algorithm and the rules. */
#include "srcu.h"

#include <sched.h>

#include "assert.h"
#include "sched/sched.h"

struct srcu_wait {
	struct tdp_srcu *s;
	unsigned idx;
};

static bool srcu_drained(void *arg)
{
	struct srcu_wait *w = arg;

	return atomic_load(&w->s->count[w->idx]) == 0;
}

__thread int tdp_srcu_depth;

void tdp_srcu_init(struct tdp_srcu *s)
{
	atomic_init(&s->count[0], 0);
	atomic_init(&s->count[1], 0);
	atomic_init(&s->idx, 0);
}

unsigned tdp_srcu_read_lock(struct tdp_srcu *s)
{
	for (;;) {
		unsigned i = atomic_load(&s->idx) & 1;

		atomic_fetch_add(&s->count[i], 1);
		/* If the index flipped before our increment became visible,
		 * a synchronize may already have seen our counter at zero:
		 * undo and take the new index. */
		if ((atomic_load(&s->idx) & 1) == i) {
			tdp_srcu_depth++;
			return i;
		}
		atomic_fetch_sub(&s->count[i], 1);
	}
}

void tdp_srcu_read_unlock(struct tdp_srcu *s, unsigned idx)
{
	TDP_ASSERT(tdp_srcu_depth > 0);
	tdp_srcu_depth--;
	TDP_ASSERT(atomic_fetch_sub(&s->count[idx], 1) > 0);
}

void tdp_srcu_synchronize(struct tdp_srcu *s)
{
	unsigned old = atomic_fetch_add(&s->idx, 1) & 1;
	struct srcu_wait w = { s, old };

	TDP_ASSERT_MSG(!tdp_srcu_read_held(),
		       "srcu synchronize inside a read section");

	while (atomic_load(&s->count[old]) != 0) {
		TDP_SCHED_WAIT_UNTIL(srcu_drained, &w, SK_WAIT);
		sched_yield();
	}
}
