/* SPDX-License-Identifier: MIT */
/*
 * fault.c - the fault handler: memslot lookup, host frame lookup, mapping
 * level, and the call into tdp_mmu_map under mmu_lock.
 *
 * Order of steps (KVM's kvm_tdp_mmu_page_fault):
 *   1. enter the memslot srcu section; look up the slot (none: MMIO exit,
 *      -EFAULT; invalid: being deleted/moved, retry; write to a read-only
 *      slot: -EACCES);
 *   2. sample the invalidation sequence (notifier.h), THEN ask the host for
 *      the frame (host_gup takes a reference and may sleep on the host's
 *      mmap lock; mmu_lock is not held here: lock order host -> mmu);
 *   3. top up the table-page cache (no lock held);
 *   4. take mmu_lock; retry if the vCPU's root went invalid or an
 *      invalidation overlapping the gfn began since the sample (I5);
 *      otherwise map;
 *   5. drop mmu_lock, the frame reference and the srcu section.
 *
 * Dirty logging (TDP_MEM_LOG_DIRTY slots): leaves are 4 KiB only.  In
 * write-protect mode a write fault first tries the fast path (dirty.c:
 * no mmu_lock, a compare-exchange that gives W back to a leaf that lost it
 * only to the log); a read fault maps without W (MMU-writable kept), and a
 * write fault marks the page in the log BEFORE the leaf with W is
 * installed (I7).  In Dirty-bit mode leaves are mapped writable and the
 * harvest reads their Dirty bits.
 * The srcu section spans steps 1-5, so a memslot update that waits for it
 * (vm.c) knows every fault that saw the old slot has installed its
 * mapping, which its zap then removes.
 * Every retry returns 0: the access loop re-enters guest mode (processing
 * any pending reload or flush request) and walks again.
 *
 * Confidential VMs: the shared bit of the gpa picks the kind of access and
 * the root (private: the mirror root, mapping the slot's private memory at
 * 4 KiB; shared: the direct root, mapping its hva); memslots are looked up
 * without the bit.  The page's memory attribute is read AFTER the
 * invalidation sequence is sampled, so a conversion racing with the fault
 * makes it retry (a conversion is an invalidation, confidential.c); an
 * access of the wrong kind exits with -EPERM.  Private faults take no
 * fast path, make no MMIO entries and are never dirty-logged.
 *
 * Lock mode: mmu_lock for read, so faults run in parallel (tdp_mmu_map
 * changes entries only by compare-exchange); for write with
 * TDP_VM_EXCLUSIVE_FAULTS, the pre-parallel baseline, and with the legacy
 * engine.
 */
#include <errno.h>
#include <sched.h>

#include "assert.h"
#include "vm.h"

static int order_to_level(unsigned order)
{
	if (order >= HOST_ORDER_1G)
		return TDP_LEVEL_1G;
	if (order >= HOST_ORDER_2M)
		return TDP_LEVEL_2M;
	return TDP_LEVEL_4K;
}

int vm_max_mapping_level(const struct tdp_vm *vm, const struct memslot *slot,
			 uint64_t gfn, unsigned host_order)
{
	int level = order_to_level(host_order);

	if (level > vm->mmu.max_level)
		level = vm->mmu.max_level;
	for (; level > TDP_LEVEL_4K; level--) {
		uint64_t n = level_pages(level);
		uint64_t base = gfn & ~(n - 1);

		if (base < slot->base_gfn || base + n > memslot_end(slot))
			continue;
		if ((slot->base_gfn ^ (slot->hva >> 12)) & (n - 1))
			continue;
		break;
	}
	return level;
}

/* Is the entry for @gfn in @root an MMIO entry of generation @gen?  RCU
 * walk, no lock. */
static bool mmio_entry_current(struct tdp_pt_page *root, uint64_t gfn,
			       uint64_t gen)
{
	struct tdp_iter it;
	bool hit = false;

	tdp_rcu_read_lock();
	for_each_tdp_pte(it, root, gfn, gfn + 1) {
		if (it.level == TDP_LEVEL_4K) {
			hit = spte_is_mmio(it.old_spte) &&
			      spte_mmio_gen(it.old_spte) == gen;
			break;
		}
	}
	tdp_rcu_read_unlock();
	return hit;
}

/* No memslot at f->gfn: leave an MMIO entry so the next access exits
 * without the memslot lookup.  Best effort: on any failure the access
 * still exits as MMIO. */
/* mmu_lock for a fault: read (parallel faults), or write for the
 * TDP_VM_EXCLUSIVE_FAULTS baseline */
static void fault_lock(struct tdp_mmu *mmu, bool exclusive)
{
	if (exclusive)
		tdp_write_lock(&mmu->lock);
	else
		tdp_read_lock(&mmu->lock);
}

static void fault_unlock(struct tdp_mmu *mmu, bool exclusive)
{
	if (exclusive)
		tdp_write_unlock(&mmu->lock);
	else
		tdp_read_unlock(&mmu->lock);
}

static void install_mmio(struct tdp_vcpu *v, struct tdp_fault *f,
			 uint64_t gen)
{
	struct tdp_mmu *mmu = &v->vm->mmu;
	bool exclusive = vm_exclusive_faults(v->vm);
	struct tdp_pt_page *root;

	if (pt_cache_topup(&mmu->alloc, &v->cache, mmu->root_level))
		return;
	f->mmio = true;
	f->mmio_gen = gen;
	f->goal_level = TDP_LEVEL_4K;
	fault_lock(mmu, exclusive);
	root = v->root[v->as_id];
	if (root && !root_invalid(root) &&
	    tdp_mmu_map(mmu, root, f, &v->cache) == MAP_FIXED)
		stat_own_inc(v->st.pf_mmio_spte_created);
	fault_unlock(mmu, exclusive);
}

struct fast_mark {
	const struct memslot *slot;
	uint64_t gfn;
};

static void fast_mark(void *arg)
{
	struct fast_mark *fm = arg;

	memslot_mark_dirty(fm->slot, fm->gfn, 1);
}

int tdp_page_fault(struct tdp_vcpu *v, uint64_t gpa, enum tdp_access acc,
		   bool present)
{
	struct tdp_vm *vm = v->vm;
	struct tdp_mmu *mmu = &vm->mmu;
	bool exclusive = vm_exclusive_faults(vm);
	const struct memslot *slot;
	const struct memslots *set;
	struct tdp_fault f = { 0 };
	enum tdp_map_ret ret;
	struct tdp_pt_page *root;
	struct host_gup g;
	uint64_t mmu_seq;
	unsigned srcu_idx;
	uint64_t mmio_gen;
	bool logged, wp_log, private;
	int r;

	stat_own_inc(v->st.pf_taken);
	private = vm_gfn_private(vm, gpa >> 12);
	f.gfn = (gpa >> 12) & ~vm->shared_gfn;
	f.as_id = v->as_id;
	f.write = acc == ACC_WRITE;
	f.exec = acc == ACC_FETCH;

	/* an MMIO entry of the current generation: exit at once (KVM's
	 * handle_mmio_page_fault) */
	mmio_gen = private ? ~0ull : vm_mmio_gen(vm);
	root = v->root[v->as_id];
	if (mmio_gen != ~0ull && root && !root_invalid(root) &&
	    mmio_entry_current(root, f.gfn, mmio_gen)) {
		stat_own_inc(v->st.pf_mmio);
		stat_own_inc(v->st.mmio_fast);
		return -EFAULT;
	}

	/* sampled before the set is read: an MMIO entry made from this
	 * lookup carries this generation or an older one (vm.c publish) */
	srcu_idx = tdp_srcu_read_lock(&vm->srcu);
	set = vm_memslots(vm, v->as_id);
	slot = memslots_lookup(set, f.gfn);
	if (!slot && private) {
		r = -EPERM; /* no private memory there */
		stat_own_inc(v->st.pf_attr_exit);
		goto out_rcu;
	}
	if (!slot) {
		r = -EFAULT;
		stat_own_inc(v->st.pf_mmio);
		if (mmio_gen != ~0ull)
			install_mmio(v, &f, mmio_gen);
		goto out_rcu;
	}
	if (slot->invalid) {
		r = 0;
		stat_own_inc(v->st.pf_retry);
		sched_yield();
		goto out_rcu;
	}
	if (f.write && (slot->flags & TDP_MEM_READONLY)) {
		r = -EACCES;
		stat_own_inc(v->st.pf_ro_exit);
		goto out_rcu;
	}
	logged = slot->flags & TDP_MEM_LOG_DIRTY;
	wp_log = logged && !(vm->cfg.flags & TDP_VM_DIRTY_DBIT);
	/* KVM's page_fault_can_be_fast(): only a write to a present leaf
	 * (write-protected for the dirty log, or made writable meanwhile)
	 * can be fixed without mmu_lock; a not-present fault skips the
	 * lockless walk (if a leaf appeared since, the map below finds it
	 * and counts the fault spurious). */
	if (f.write && present && !private &&
	    !(vm->cfg.flags & TDP_VM_NO_FAST_FAULT)) {
		struct fast_mark fm = { slot, f.gfn };

		root = v->root[v->as_id];
		if (root && !root_invalid(root)) {
			r = tdp_mmu_fast_fault(mmu, root, f.gfn, logged,
					       wp_log ? fast_mark : NULL, &fm);
			if (r >= 0) {
				if (r)
					stat_own_inc(v->st.pf_fast);
				else
					stat_own_inc(v->st.pf_spurious);
				r = 0;
				goto out_rcu;
			}
		}
	}

	mmu_seq = mn_seq_sample(&vm->mn);
	if (vm_confidential(vm) && private != memslot_gfn_private(slot, f.gfn)) {
		r = -EPERM;
		stat_own_inc(v->st.pf_attr_exit);
		goto out_rcu;
	}
	/* an invalidation of this gfn is under way and would make the fault
	 * retry under mmu_lock anyway: give up before asking the host and
	 * contending for the lock (KVM's early, lockless check) */
	if (mn_retry_gfn_unsafe(&vm->mn, mmu_seq, f.gfn) &&
	    !INJECTED(mmu->inject, INJ_SKIP_INVALIDATE_RETRY)) {
		r = 0;
		stat_own_inc(v->st.pf_retry);
		stat_own_inc(v->st.pf_retry_early);
		sched_yield();
		goto out_rcu;
	}
	r = host_gup(vm->host,
		     private ? memslot_gfn_to_private_hva(slot, f.gfn)
			     : memslot_gfn_to_hva(slot, f.gfn),
		     f.write, &g);
	if (r)
		goto out_rcu;
	stat_own_inc(v->st.frame_refs);
	/* I13: a shared access never reaches guest-private memory, nor a
	 * private one ordinary memory (the host may have remapped the hva
	 * since the memslot was checked) */
	if (g.guest_private != private || (f.exec && !g.executable)) {
		r = -EFAULT;
		goto out_put;
	}
	if (vm->hooks.fault_after_gup)
		vm->hooks.fault_after_gup(v, f.gfn, vm->hooks.arg);

	f.pfn = g.pfn;
	f.host_writable = g.writable;
	f.map_writable = g.writable && !(slot->flags & TDP_MEM_READONLY);
	f.executable = g.executable;
	f.goal_level = vm_max_mapping_level(vm, slot, f.gfn, g.order);
	if (logged || private) /* mirror roots map 4 KiB only */
		f.goal_level = TDP_LEVEL_4K;
	else if (vm_confidential(vm)) /* never over a private page (I13) */
		f.goal_level = memslot_shared_level(slot, f.gfn, f.goal_level);
	f.wrprot = wp_log && !f.write;
	r = pt_cache_topup(&mmu->alloc, &v->cache, mmu->root_level);
	if (r)
		goto out_put;

	fault_lock(mmu, exclusive);
	root = vcpu_root(v, private);
	if (!root || root_invalid(root) ||
	    (mn_retry_gfn(&vm->mn, mmu_seq, f.gfn) &&
	     !INJECTED(mmu->inject, INJ_SKIP_INVALIDATE_RETRY)))
		ret = MAP_RETRY;
	else {
		/* in the log before W exists, and in the same mmu_lock
		 * section, so a harvest (write lock) sees both or neither */
		if (wp_log && f.write && f.map_writable)
			memslot_mark_dirty(slot, f.gfn, 1);
		ret = tdp_mmu_map(mmu, root, &f, &v->cache);
	}
	fault_unlock(mmu, exclusive);

	switch (ret) {
	case MAP_FIXED:
		stat_own_inc(v->st.pf_fixed);
		if (private)
			stat_own_inc(v->st.pf_private);
		break;
	case MAP_SPURIOUS:
		stat_own_inc(v->st.pf_spurious);
		break;
	case MAP_RETRY:
		stat_own_inc(v->st.pf_retry);
		break;
	}
	r = 0;
out_put:
	host_put_frame(vm->host, g.ref_pfn);
	stat_own_add(v->st.frame_refs, -1);
out_rcu:
	/* SRCU's promise, checked where it is relied on */
	TDP_ASSERT_MSG(!memslots_retired(set),
		       "memslot set retired inside a read section that "
		       "used it (gfn %#llx)",
		       (unsigned long long)f.gfn);
	tdp_srcu_read_unlock(&vm->srcu, srcu_idx);
	return r;
}
