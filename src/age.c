/* SPDX-License-Identifier: MIT */
/*
 * age.c - accessed-bit aging for the host's reclaim scan (KVM's
 * kvm_tdp_mmu_age_gfn_range / kvm_tdp_mmu_test_age_gfn).
 *
 * Locking and lifetime: no mmu_lock (seed 002's idea, KVM 2025).  The walk
 * runs inside one RCU read-side section over the valid roots on the root
 * list: roots and tables are freed only after a grace period, so nothing
 * it reaches is freed under it (I2); it takes no root reference, never
 * yields and never flushes.  Accessed is cleared with a compare-exchange
 * against the value read, so a Dirty bit set by hardware in between is
 * never lost (I8): a lost exchange re-reads the entry.  An entry that
 * stops being a present leaf (zapped, frozen, replaced by a table) is left
 * alone: whoever changed it accounted its Accessed bit.
 * Mirror roots are skipped: private memory is not aged (the host cannot
 * reclaim guest-private memory).
 * With TDP_VM_LOCKED_AGING (the baseline) the same walk runs under
 * mmu_lock held for write, as KVM's aging did before.
 */
#include <unistd.h>

#include "assert.h"
#include "mmu_internal.h"

/* aging-loses-dirty (inject.h), "only A changes": read, then store the
 * value with A cleared, losing a Dirty bit set in between. */
TDP_INJECT_FN bool inj_aging_loses_dirty(uint64_t *sptep, uint64_t s)
{
	if (!spte_dirty(s))
		usleep(200); /* widen: hardware may set D now */
	__atomic_store_n(sptep, spte_mkold(s), __ATOMIC_RELEASE);
	return true;
}

bool clear_accessed(struct tdp_mmu *mmu, uint64_t *sptep, uint64_t *old,
		    int level)
{
	if (INJECTED(mmu->inject, INJ_AGING_LOSES_DIRTY))
		return inj_aging_loses_dirty(sptep, *old);
	for (;;) {
		if (__atomic_compare_exchange_n(sptep, old, spte_mkold(*old),
						false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			return true;
		if (!spte_is_present_leaf(*old, level) || !spte_accessed(*old))
			return false;
	}
}

static uint64_t age_root(struct tdp_mmu *mmu, struct tdp_pt_page *root,
			 uint64_t start, uint64_t end, bool test_only,
			 void (*young)(void *, uint64_t, uint64_t), void *arg)
{
	uint64_t n = 0;
	struct tdp_iter it;

	for_each_tdp_pte(it, root, start, end)
	{
		uint64_t a, b;

		if (!spte_is_present_leaf(it.old_spte, it.level) ||
		    !spte_accessed(it.old_spte))
			continue;
		if (!test_only &&
		    !clear_accessed(mmu, it.sptep, &it.old_spte, it.level))
			continue;
		a = it.gfn > start ? it.gfn : start;
		b = tdp_iter_entry_end(&it) < end ? tdp_iter_entry_end(&it)
						  : end;
		young(arg, a, b - a);
		n++;
	}
	return n;
}

uint64_t tdp_mmu_age_range(struct tdp_mmu *mmu, unsigned as_id, uint64_t start,
			   uint64_t end, bool test_only, bool locked,
			   void (*young)(void *arg, uint64_t gfn, uint64_t n),
			   void *arg)
{
	struct tdp_pt_page *root;
	uint64_t n = 0;

	if (locked)
		tdp_write_lock(&mmu->lock);
	tdp_rcu_read_lock();
	for_each_root_rcu(&mmu->roots, root)
	{
		if (root->as_id != as_id || root_invalid(root) || root->mirror)
			continue;
		n += age_root(mmu, root, start, end, test_only, young, arg);
	}
	tdp_rcu_read_unlock();
	if (locked)
		tdp_write_unlock(&mmu->lock);
	return n;
}
