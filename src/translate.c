/* SPDX-License-Identifier: MIT */
/*
 * translate.c - tdp_vm_translate: a lockless software walk (KVM's
 * kvm_tdp_mmu_get_walk).  No mmu_lock: everything it reads is protected by
 * RCU alone.  Roots and tables are freed only after a grace period, so
 * inside one read-side section the walk may find them unlinked or frozen,
 * never freed (I2; tdp_iter_load asserts it).  No reference is taken on
 * the root: the section is enough for a read.
 */
#include <errno.h>

#include "vm.h"

static struct tdp_pt_page *valid_root_rcu(struct tdp_mmu *mmu, unsigned as_id,
					  bool mirror)
{
	struct tdp_pt_page *root;

	TDP_ASSERT(tdp_rcu_read_held());
	for_each_root_rcu(&mmu->roots, root) {
		if (root->as_id == as_id && root->mirror == mirror &&
		    !root_invalid(root))
			return root;
	}
	return NULL;
}

int tdp_vm_translate(struct tdp_vm *vm, unsigned as_id, uint64_t gpa,
		     struct tdp_translation *out)
{
	struct tdp_pt_page *root;
	struct tdp_iter it;
	uint64_t gfn;
	bool mirror;
	int r = -ENOENT;

	if (!vm || !out || as_id >= vm->cfg.nr_as || gpa >= vm_max_gpa(vm))
		return -EINVAL;
	gfn = (gpa >> 12) & ~vm->shared_gfn;
	mirror = vm_gfn_private(vm, gpa >> 12);
	tdp_rcu_read_lock();
	root = valid_root_rcu(&vm->mmu, as_id, mirror);
	if (!root)
		goto out;
	for_each_tdp_pte(it, root, gfn, gfn + 1) {
		uint64_t s = it.old_spte;

		if (!spte_is_present_leaf(s, it.level))
			continue; /* descends into tables, else ends */
		out->size = TDP_PAGE_SIZE << level_shift(it.level);
		out->pfn = spte_pfn(s) + (gfn & (level_pages(it.level) - 1));
		out->prot = (spte_readable(s) ? TDP_PROT_READ : 0) |
			    (spte_writable(s) ? TDP_PROT_WRITE : 0) |
			    (spte_executable(s) ? TDP_PROT_EXEC : 0);
		out->accessed = spte_accessed(s);
		out->dirty = spte_dirty(s);
		r = 0;
		break;
	}
out:
	tdp_rcu_read_unlock();
	return r;
}
