/* SPDX-License-Identifier: MIT */
/* inject.c - names of the bug-injection switches (see inject.h). */
#include "inject.h"

#include <string.h>

static const char *const names[INJ_COUNT] = {
	[INJ_NONE] = "none",
	[INJ_ROOT_LEAK_AFTER_YIELD] = "root-leak-after-yield",
	[INJ_UNPINNED_NEXT_ROOT] = "unpinned-next-root",
	[INJ_PUT_DEC_NOT_ONE] = "put-dec-not-one",
	[INJ_FREE_WITHOUT_GRACE] = "free-without-grace",
	[INJ_YIELD_WITHOUT_FLUSH] = "yield-without-flush",
	[INJ_FREE_BEFORE_FLUSH] = "free-before-flush",
	[INJ_SKIP_INVALIDATE_RETRY] = "skip-invalidate-retry",
	[INJ_PLAIN_STORE_LOSES_DIRTY] = "plain-store-loses-dirty",
	[INJ_YIELD_WITHOUT_PROGRESS] = "yield-without-progress",
	[INJ_TEARDOWN_BELOW_MAX_GFN] = "teardown-below-max-gfn",
	[INJ_REF_INVALID_ROOT] = "ref-invalid-root",
	[INJ_RCU_EXIT_BEFORE_FLUSH] = "rcu-exit-before-flush",
	[INJ_DIRTY_CLEAR_NO_FLUSH] = "dirty-clear-without-flush",
	[INJ_AGING_LOSES_DIRTY] = "aging-loses-dirty",
	[INJ_FAST_FAULT_HUGE_WRITABLE] = "fast-fault-huge-writable",
	[INJ_MIRROR_RELOAD_WITH_DIRECT] = "mirror-reload-with-direct",
	[INJ_FAST_ZAP_MIRROR] = "fast-zap-mirror",
	[INJ_MIRROR_ZAP_SHARED] = "mirror-zap-shared",
	[INJ_RMAP_LOCKLESS_ASSERT] = "rmap-lockless-assert",
	[INJ_RMAP_UNLOCKED_UPDATE] = "rmap-unlocked-update",
	[INJ_ZAP_TAKE_LOAD_STORE] = "zap-take-load-store",
	[INJ_REMOVAL_LOAD_STORE] = "removal-load-store",
	[INJ_READONLY_NO_FLUSH] = "readonly-no-flush",
	[INJ_CONVERT_NO_INVALIDATE] = "convert-no-invalidate",
	[INJ_RECOVER_LATE_SEQ] = "recover-late-seq",
	[INJ_BRLOCK_CHECK_FIRST] = "brlock-check-first",
	[INJ_SRCU_NO_RECHECK] = "srcu-no-recheck",
	[INJ_GUP_FAST_GET_FREED] = "gup-fast-get-freed",
	[INJ_SLOTS_DURING_INVALIDATE] = "slots-during-invalidate",
	[INJ_PREFAULT_NO_RELOAD] = "prefault-no-reload",
	[INJ_NX_HUGE_EXEC] = "nx-huge-exec",
	[INJ_PML_FAULT_NO_MARK] = "pml-fault-no-mark",
	[INJ_RING_RESET_UNHARVESTED] = "ring-reset-unharvested",
	[INJ_NESTED_RANGE_RESET] = "nested-range-reset",
};

const char *tdp_inject_name(int id)
{
	return id >= 0 && id < INJ_COUNT ? names[id] : NULL;
}

int tdp_inject_lookup(const char *name)
{
	for (int i = 0; i < INJ_COUNT; i++)
		if (!strcmp(names[i], name))
			return i;
	return -1;
}
