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
 * Algorithm (KVM's SRCU, with a counter pair per reader slot instead of
 * per CPU, percpu.h): a reader increments count[idx] of its own slot for
 * the current index and then reads the index again; if it flipped under
 * it, it takes the increment back and starts over, so a reader that
 * proceeds was counted before any flip it could have missed.
 * synchronize flips the index and waits until count[old] of every slot
 * is 0.  A slot's counts never go below 0 (a reader gives back to the
 * slot it took), so "every slot is 0" is what "no old reader" means even
 * though the slots are read one after another: an old reader's count
 * stays until it leaves.  All sequentially consistent atomics: visible
 * to ThreadSanitizer; the read side writes only the reader's own line.
 *
 * Rules: read sections nest and may block (take locks, wait on the host);
 * synchronize must not be called inside a read section of the same
 * domain; callers of synchronize serialise among themselves (slots_lock).
 * The value read_lock returns goes back to read_unlock unchanged.
 */
#ifndef TDP_SRCU_H
#define TDP_SRCU_H

#include <stdatomic.h>
#include <stdbool.h>

#include "percpu.h"

struct srcu_slot {
	atomic_long count[2];
} __attribute__((aligned(TDP_CACHE_LINE)));

struct tdp_srcu {
	atomic_uint idx; /* written by synchronize only */
	const int *inject; /* the owner's bug injection state (inject.h) */
	/* tests: runs inside read_lock between reading the index and
	 * counting oneself in it */
	void (*read_hook)(void *arg);
	void *read_hook_arg;
	struct srcu_slot slot[TDP_NR_SLOTS];
};

/* Per-thread nesting depth for assertions (any srcu domain). */
extern __thread int tdp_srcu_depth __attribute__((tls_model("initial-exec")));

void tdp_srcu_init(struct tdp_srcu *s);
/* Returns the cookie (index and slot) to pass to tdp_srcu_read_unlock. */
unsigned tdp_srcu_read_lock(struct tdp_srcu *s);
void tdp_srcu_read_unlock(struct tdp_srcu *s, unsigned cookie);
/* Wait until every read section that began before the call has ended. */
void tdp_srcu_synchronize(struct tdp_srcu *s);

static inline bool tdp_srcu_read_held(void)
{
	return tdp_srcu_depth > 0;
}

#endif
