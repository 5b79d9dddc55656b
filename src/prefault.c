/* SPDX-License-Identifier: MIT */
/*
 * prefault.c - tdp_vcpu_pre_fault_memory (KVM_PRE_FAULT_MEMORY): map a gpa
 * range ahead of the first access, as read faults of the vCPU would.
 *
 * Each step is one fault through the ordinary handler (fault.c), so every
 * protocol of a fault holds as it is: the memslot SRCU section, the
 * invalidation retry (I5), mapping only into a valid root (I3), the
 * private/shared rules of confidential VMs (I13), dirty logging (a read
 * fault maps without W in write-protect mode).  Like KVM's kvm_mmu_reload,
 * each step first enters and leaves guest mode, which handles pending
 * requests and loads a valid root; the step then faults, and reads from
 * the vCPU's root, with a lockless walk (RCU; the vCPU's reference keeps
 * the root), whether a leaf now covers the page and at which level: the
 * step advances to the end of that leaf, as KVM's does.  New leaves are not
 * Accessed: only the walker sets A, and no walk ran (KVM: "does not mark
 * any newly created stage-2 PTE as Accessed").
 *
 * A step that did not map retries unless an invalidation covering the
 * page is in progress or ended since the step began: then the call stops
 * with what it mapped (-EAGAIN if nothing), instead of spinning while
 * the host works.  A stop request (tdp_vcpu_request_stop, any thread)
 * ends the call at the next step (-EINTR if nothing was mapped yet).
 *
 * Locking: nothing is held across steps; the vCPU's thread only, like
 * every vCPU call (tdpmmu.h).
 */
#include <errno.h>
#include <sched.h>

#include "assert.h"
#include "inject.h"
#include "percpu.h"
#include "vm.h"

/* The level of the present leaf that maps @gfn in @root, or 0; 0 for an
 * invalid root too (what it still maps is being zapped: the next step
 * loads a valid one). */
static int leaf_level(struct tdp_pt_page *root, uint64_t gfn)
{
	struct tdp_iter it;
	int level = 0;

	if (!root || root_invalid(root))
		return 0;
	tdp_rcu_read_lock();
	for_each_tdp_pte(it, root, gfn, gfn + 1) {
		if (spte_is_present_leaf(it.old_spte, it.level)) {
			level = it.level;
			break;
		}
	}
	tdp_rcu_read_unlock();
	return level;
}

/* Is the page private now (confidential VMs): the kind a vCPU access of
 * it would have to be (KVM's kvm_mem_is_private).  -ENOENT without a
 * memslot. */
static int page_kind(struct tdp_vcpu *v, uint64_t gfn, bool *private)
{
	struct tdp_vm *vm = v->vm;
	const struct memslot *slot;
	unsigned idx;
	int r = 0;

	idx = tdp_srcu_read_lock(&vm->srcu);
	slot = memslots_lookup(vm_memslots(vm, v->as_id), gfn);
	if (!slot)
		r = -ENOENT;
	else
		*private = vm_confidential(vm) &&
			   memslot_gfn_private(slot, gfn);
	tdp_srcu_read_unlock(&vm->srcu, idx);
	return r;
}

/* One step at @gfn: 0 with the bytes a leaf now maps from @gfn on (up to
 * @left), or an errno: the handler's, -ENOENT (no memslot), -EAGAIN (an
 * invalidation of the page), -EINTR (a stop request). */
static int pre_fault_step(struct tdp_vcpu *v, uint64_t gfn, uint64_t left,
			  uint64_t *done)
{
	struct tdp_vm *vm = v->vm;

	for (;;) {
		uint64_t seq, gpa = gfn << 12;
		bool private = false;
		int level, r;

		if (atomic_exchange(&v->stop_request, false))
			return -EINTR;
		r = page_kind(v, gfn, &private);
		if (r)
			return r;
		if (vm_confidential(vm) && !private)
			gpa |= vm->shared_gfn << 12;
		/* kvm_mmu_reload: requests handled, a valid root loaded */
		if (!INJECTED(vm->mmu.inject, INJ_PREFAULT_NO_RELOAD)) {
			r = vcpu_enter_guest(v);
			if (r)
				return r;
			vcpu_exit_guest(v);
		}
		seq = mn_seq_sample(&vm->mn);
		r = tdp_page_fault(v, gpa, ACC_READ, EXIT_VIOLATION, true);
		if (r == -EPERM)
			continue; /* converted since page_kind: again */
		if (r)
			return r;
		level = leaf_level(vcpu_root(v, private), gfn);
		if (level) {
			uint64_t n = level_pages(level);
			uint64_t end = ((gfn & ~(n - 1)) + n - gfn) << 12;

			*done = end < left ? end : left;
			return 0;
		}
		if (mn_retry_gfn_unsafe(&vm->mn, seq, gfn))
			return -EAGAIN;
		sched_yield(); /* a lost race or a reload: again */
	}
}

static int pre_fault(struct tdp_vcpu *v, uint64_t gpa, uint64_t size,
		     uint64_t *mapped)
{
	int r = 0;

	while (*mapped < size) {
		uint64_t done = 0;

		r = pre_fault_step(v, (gpa + *mapped) >> 12, size - *mapped,
				   &done);
		if (r)
			break;
		TDP_ASSERT(done && !(done & (TDP_PAGE_SIZE - 1)));
		*mapped += done;
	}
	/* KVM: an error only if nothing was mapped */
	return *mapped ? 0 : r;
}

int tdp_vcpu_pre_fault_memory(struct tdp_vcpu *v, uint64_t gpa, uint64_t size,
			      unsigned flags, uint64_t *mapped)
{
	uint64_t limit;
	unsigned old;
	int r;

	if (mapped)
		*mapped = 0;
	if (!v || !mapped || flags || !size ||
	    ((gpa | size) & (TDP_PAGE_SIZE - 1)) || gpa + size < gpa)
		return -EINVAL;
	/* gfns of the memslots: below the shared bit of a confidential VM */
	limit = vm_confidential(v->vm) ? v->vm->shared_gfn << 12
				       : vm_max_gpa(v->vm);
	if (gpa + size > limit)
		return -EINVAL;
	vcpu_close_window(v);
	old = tdp_swap_slot(tdp_vcpu_slot(v->id));
	r = pre_fault(v, gpa, size, mapped);
	tdp_set_slot(old);
	return r;
}

int tdp_vcpu_request_stop(struct tdp_vcpu *v)
{
	if (!v)
		return -EINVAL;
	atomic_store(&v->stop_request, true);
	return 0;
}
