/* SPDX-License-Identifier: MIT */
/*
 * inject.h - bug injection for the torture test and the protocol tests.
 *
 * Each switch puts back, at the place where it lived, one historical bug
 * from the seeds or KVM's history (docs/torture.md lists them).  They exist
 * only in builds configured with TDP_INJECT (the Debug build `make check`
 * uses); in other builds INJECTED() is the constant false and the code is
 * gone.  The state is per VM (struct tdp_mmu.inject), never global, and is
 * set before the VM runs.  Nothing here reports that a bug was injected:
 * detection must come from the oracles.  A switch may widen its own race
 * window (yield the CPU or sleep inside it) so that a torture run meets
 * the bug in seconds rather than days, as the real bugs were met under
 * production load; that changes timing only, never what the code does.
 */
#ifndef TDP_INJECT_H
#define TDP_INJECT_H

enum tdp_inject_id {
	INJ_NONE = 0,
	INJ_ROOT_LEAK_AFTER_YIELD,
	INJ_UNPINNED_NEXT_ROOT,
	INJ_PUT_DEC_NOT_ONE,
	INJ_FREE_WITHOUT_GRACE,
	INJ_YIELD_WITHOUT_FLUSH,
	INJ_FREE_BEFORE_FLUSH,
	INJ_SKIP_INVALIDATE_RETRY,
	INJ_PLAIN_STORE_LOSES_DIRTY,
	INJ_YIELD_WITHOUT_PROGRESS,
	INJ_TEARDOWN_BELOW_MAX_GFN,
	INJ_REF_INVALID_ROOT,
	INJ_RCU_EXIT_BEFORE_FLUSH,
	INJ_DIRTY_CLEAR_NO_FLUSH,
	INJ_AGING_LOSES_DIRTY,
	INJ_FAST_FAULT_HUGE_WRITABLE,
	INJ_MIRROR_RELOAD_WITH_DIRECT,
	INJ_FAST_ZAP_MIRROR,
	INJ_MIRROR_ZAP_SHARED,
	INJ_RMAP_LOCKLESS_ASSERT,
	INJ_RMAP_UNLOCKED_UPDATE,
	INJ_ZAP_TAKE_LOAD_STORE,
	INJ_REMOVAL_LOAD_STORE,
	INJ_READONLY_NO_FLUSH,
	INJ_CONVERT_NO_INVALIDATE,
	INJ_RECOVER_LATE_SEQ,
	INJ_NESTED_RANGE_RESET,
	INJ_BRLOCK_CHECK_FIRST,
	INJ_SRCU_NO_RECHECK,
	INJ_GUP_FAST_GET_FREED,
	INJ_SLOTS_DURING_INVALIDATE,
	INJ_PREFAULT_NO_RELOAD,
	INJ_NX_HUGE_EXEC,
	INJ_PML_FAULT_NO_MARK,
	INJ_RING_RESET_UNHARVESTED,
	INJ_COUNT
};

/* The name used by `tdpmmu torture --inject`, or NULL. */
const char *tdp_inject_name(int id);
/* The id of @name, or -1. */
int tdp_inject_lookup(const char *name);

/* The body of an injected bug, kept out of the hot path's own: a cold
 * function the path calls under INJECTED().  Without TDP_INJECT the call
 * is dead code, and the function, unused, is dropped. */
#define TDP_INJECT_FN static __attribute__((cold, noinline, unused))

#ifdef TDP_INJECT
#define TDP_INJECT_AVAILABLE 1
#define INJECTED(state, id)  __builtin_expect((state) == (id), 0)
#else
#define TDP_INJECT_AVAILABLE 0
#define INJECTED(state, id)  ((void)(state), 0)
#endif

#endif
