/* SPDX-License-Identifier: MIT */
/*
 * srcu.h - a small sleepable RCU domain for memslot sets (KVM's
 * kvm->srcu), separate from the RCU that frees page tables.
 *
 * Why a second domain: a fault holds the memslot read side from its slot
 * lookup until its mapping is installed, including while it waits for
 * mmu_lock.  If that were the table-freeing RCU, every fault queued behind
 * a writer would hold off every grace period, and tables removed by that
 * writer could not be freed until it let go: harmless, but it hides any
 * bug that frees a table too early (the torture test could not see one).
 *
 * Algorithm: readers increment the counter of the current index (and
 * retry if the index flipped under them), so a reader that proceeds was
 * counted before any flip it could have missed; synchronize flips the
 * index and waits for the old counter to drain.  All sequentially
 * consistent atomics: visible to ThreadSanitizer.
 *
 * Rules: read sections nest and may block (take locks, wait on the host);
 * synchronize must not be called inside a read section of the same
 * domain; callers of synchronize serialise among themselves (slots_lock).
 */
#ifndef TDP_SRCU_H
#define TDP_SRCU_H

#include <stdatomic.h>
#include <stdbool.h>

struct tdp_srcu {
	atomic_long count[2];
	atomic_uint idx;
};

/* Per-thread nesting depth for assertions (any srcu domain). */
extern __thread int tdp_srcu_depth;

void tdp_srcu_init(struct tdp_srcu *s);
/* Returns the index to pass to tdp_srcu_read_unlock. */
unsigned tdp_srcu_read_lock(struct tdp_srcu *s);
void tdp_srcu_read_unlock(struct tdp_srcu *s, unsigned idx);
/* Wait until every read section that began before the call has ended. */
void tdp_srcu_synchronize(struct tdp_srcu *s);

static inline bool tdp_srcu_read_held(void)
{
	return tdp_srcu_depth > 0;
}

#endif
