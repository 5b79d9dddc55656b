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
 *      and prefetch the line the retried access will touch;
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
 * harvest reads their Dirty bits; with TDP_VM_PML the walker logs the
 * Dirty bits it sets, and a write fault, whose leaf is installed Dirty,
 * logs its page as write-protect mode does.  A page is logged into the
 * vCPU's dirty ring if the VM has rings (dirty_ring.c).
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

/* Start the cache miss of the access that will retry: for a write, the
 * line in exclusive state (PREFETCHW, which -march=x86-64 would not emit
 * for __builtin_prefetch; an x86 CPU without it treats it as a NOP). */
static inline void prefetch_access(const void *p, bool write)
{
#if defined(__x86_64__)
	if (write) {
		__asm__ volatile("prefetchw %0" : : "m"(*(const char *)p));
		return;
	}
#endif
	__builtin_prefetch(p, 0);
}

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
	for_each_tdp_pte(it, root, gfn, gfn + 1)
	{
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

static void install_mmio(struct tdp_vcpu *v, struct tdp_fault *f, uint64_t gen)
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
	struct tdp_vcpu *v;
	const struct memslot *slot;
	uint64_t gfn;
};

static void fast_mark(void *arg)
{
	struct fast_mark *fm = arg;

	mark_page_dirty_in_slot(fm->v, fm->slot, fm->gfn, 1);
}

/* What one fault knows beyond struct tdp_fault (KVM keeps it all in
 * struct kvm_page_fault). */
struct fault_state {
	const struct memslot *slot;
	/* wp_log: write-protect logging; pml_log: the walker logs Dirty
	 * bits, so a leaf installed Dirty must be logged by the fault */
	bool private, logged, wp_log, pml_log;
	uint64_t mmio_gen; /* ~0: no MMIO entry may be made */
	uint64_t mmu_seq;
	struct host_gup g;
};

/* An MMIO entry of the current generation: exit at once (KVM's
 * handle_mmio_page_fault).  Only a misconfiguration exit looks: the walk
 * that exited met an MMIO entry (KVM looks only on EPT_MISCONFIG too), so
 * an ordinary fault does not walk the tables twice.  The entry is looked
 * up again because it may be of an older generation by now. */
static bool mmio_fast(struct tdp_vcpu *v, struct tdp_fault *f,
		      struct fault_state *fs, enum tdp_exit exit)
{
	struct tdp_pt_page *root = v->root[v->as_id];

	fs->mmio_gen = fs->private ? ~0ull : vm_mmio_gen(v->vm);
	if (exit != EXIT_MISCONFIG || fs->mmio_gen == ~0ull || !root ||
	    root_invalid(root) ||
	    !mmio_entry_current(root, f->gfn, fs->mmio_gen))
		return false;
	stat_own_inc(v->st.pf_mmio);
	stat_own_inc(v->st.mmio_fast);
	return true;
}

/* The memslot of the fault allows it: 1, or the fault's result (0 to
 * retry, or an exit's errno). */
static int check_slot(struct tdp_vcpu *v, struct tdp_fault *f,
		      struct fault_state *fs)
{
	const struct memslot *slot = fs->slot;

	if (!slot && fs->private) {
		stat_own_inc(v->st.pf_attr_exit);
		return -EPERM; /* no private memory there */
	}
	if (!slot) {
		stat_own_inc(v->st.pf_mmio);
		if (fs->mmio_gen != ~0ull)
			install_mmio(v, f, fs->mmio_gen);
		return -EFAULT;
	}
	if (slot->invalid) {
		stat_own_inc(v->st.pf_retry);
		sched_yield();
		return 0;
	}
	if (f->write && (slot->flags & TDP_MEM_READONLY)) {
		stat_own_inc(v->st.pf_ro_exit);
		return -EACCES;
	}
	fs->logged = slot->flags & TDP_MEM_LOG_DIRTY;
	fs->wp_log = fs->logged && !(v->vm->cfg.flags & TDP_VM_DIRTY_DBIT);
	fs->pml_log = fs->logged && (v->vm->cfg.flags & TDP_VM_PML) &&
		      !INJECTED(v->vm->mmu.inject, INJ_PML_FAULT_NO_MARK);
	return 1;
}

/* KVM's page_fault_can_be_fast(): only a write to a present leaf
 * (write-protected for the dirty log, or made writable meanwhile) can be
 * fixed without mmu_lock; a not-present fault skips the lockless walk (if
 * a leaf appeared since, the map finds it and counts the fault
 * spurious).  True if the fast path fixed the fault (or found it
 * spurious). */
static bool fast_fault(struct tdp_vcpu *v, struct tdp_fault *f,
		       struct fault_state *fs, bool present)
{
	struct tdp_vm *vm = v->vm;
	struct fast_mark fm = {v, fs->slot, f->gfn};
	struct tdp_pt_page *root;
	int r;

	if (!f->write || !present || fs->private ||
	    (vm->cfg.flags & TDP_VM_NO_FAST_FAULT))
		return false;
	root = v->root[v->as_id];
	if (!root || root_invalid(root))
		return false;
	r = tdp_mmu_fast_fault(&vm->mmu, root, f->gfn, fs->logged,
			       fs->wp_log ? fast_mark : NULL, &fm);
	if (r < 0)
		return false;
	if (r)
		stat_own_inc(v->st.pf_fast);
	else
		stat_own_inc(v->st.pf_spurious);
	return true;
}

/* Drop the frame reference faultin_pfn took. */
static void put_pfn(struct tdp_vcpu *v, struct fault_state *fs)
{
	host_put_frame(v->vm->host, fs->g.ref_pfn);
	stat_own_add(v->st.frame_refs, -1);
}

/* KVM's kvm_faultin_pfn: sample the invalidation sequence, then take a
 * reference on the host frame and fill @f from the host mapping.  1 with
 * the reference held in fs->g, or the fault's result (0 to retry, or an
 * exit's errno) with no reference. */
static int faultin_pfn(struct tdp_vcpu *v, struct tdp_fault *f,
		       struct fault_state *fs)
{
	struct tdp_vm *vm = v->vm;
	const struct memslot *slot = fs->slot;
	int r;

	fs->mmu_seq = mn_seq_sample(&vm->mn);
	if (vm_confidential(vm) &&
	    fs->private != memslot_gfn_private(slot, f->gfn)) {
		stat_own_inc(v->st.pf_attr_exit);
		return -EPERM;
	}
	/* an invalidation of this gfn is under way and would make the fault
	 * retry under mmu_lock anyway: give up before asking the host and
	 * contending for the lock (KVM's early, lockless check) */
	if (mn_retry_gfn_unsafe(&vm->mn, fs->mmu_seq, f->gfn) &&
	    !INJECTED(vm->mmu.inject, INJ_SKIP_INVALIDATE_RETRY)) {
		stat_own_inc(v->st.pf_retry);
		stat_own_inc(v->st.pf_retry_early);
		sched_yield();
		return 0;
	}
	r = host_gup(vm->host,
		     fs->private ? memslot_gfn_to_private_hva(slot, f->gfn)
				 : memslot_gfn_to_hva(slot, f->gfn),
		     f->write, &fs->g);
	if (r)
		return r;
	stat_own_inc(v->st.frame_refs);
	/* I13: a shared access never reaches guest-private memory, nor a
	 * private one ordinary memory (the host may have remapped the hva
	 * since the memslot was checked) */
	if (fs->g.guest_private != fs->private ||
	    (f->exec && !fs->g.executable)) {
		put_pfn(v, fs);
		return -EFAULT;
	}
	if (vm->hooks.fault_after_gup)
		vm->hooks.fault_after_gup(v, f->gfn, vm->hooks.arg);
	f->pfn = fs->g.pfn;
	f->host_writable = fs->g.writable;
	f->map_writable = fs->g.writable && !(slot->flags & TDP_MEM_READONLY);
	f->executable = fs->g.executable;
	f->goal_level = vm_max_mapping_level(vm, slot, f->gfn, fs->g.order);
	if (fs->logged || fs->private) /* mirror roots map 4 KiB only */
		f->goal_level = TDP_LEVEL_4K;
	else if (vm_confidential(vm)) /* never over a private page (I13) */
		f->goal_level =
			memslot_shared_level(slot, f->gfn, f->goal_level);
	/* NX huge pages (KVM's iTLB multihit mitigation): a huge leaf is
	 * never executable; a fetch maps 4 KiB and says what it gave up */
	if (vm->mmu.nx_huge_pages && f->goal_level > TDP_LEVEL_4K) {
		if (f->exec) {
			f->nx_req_level = f->goal_level;
			f->goal_level = TDP_LEVEL_4K;
		} else if (!INJECTED(vm->mmu.inject, INJ_NX_HUGE_EXEC)) {
			/* nx-huge-exec: "only fetches need care" */
			f->executable = false;
		}
	}
	f->wrprot = fs->wp_log && !f->write;
	return 1;
}

/* Under mmu_lock: retry if the vCPU's root went invalid or an
 * invalidation of the gfn began since the sample (I5), else map. */
static void map_locked(struct tdp_vcpu *v, struct tdp_fault *f,
		       struct fault_state *fs)
{
	struct tdp_vm *vm = v->vm;
	struct tdp_mmu *mmu = &vm->mmu;
	bool exclusive = vm_exclusive_faults(vm);
	struct tdp_pt_page *root;
	enum tdp_map_ret ret;

	fault_lock(mmu, exclusive);
	root = vcpu_root(v, fs->private);
	if (!root || root_invalid(root) ||
	    (mn_retry_gfn(&vm->mn, fs->mmu_seq, f->gfn) &&
	     !INJECTED(mmu->inject, INJ_SKIP_INVALIDATE_RETRY)))
		ret = MAP_RETRY;
	else {
		/* in the log before W (or, with PML, a Dirty bit the walker
		 * will not log) exists, and in the same mmu_lock section, so
		 * a harvest or ring reset (write lock) sees both or neither */
		if ((fs->wp_log || fs->pml_log) && f->write &&
		    f->map_writable)
			mark_page_dirty_in_slot(v, fs->slot, f->gfn, 1);
		ret = tdp_mmu_map(mmu, root, f, &v->cache);
	}
	fault_unlock(mmu, exclusive);

	switch (ret) {
	case MAP_FIXED:
		stat_own_inc(v->st.pf_fixed);
		if (fs->private)
			stat_own_inc(v->st.pf_private);
		break;
	case MAP_SPURIOUS:
		stat_own_inc(v->st.pf_spurious);
		break;
	case MAP_RETRY:
		stat_own_inc(v->st.pf_retry);
		break;
	}
}

int tdp_page_fault(struct tdp_vcpu *v, uint64_t gpa, enum tdp_access acc,
		   enum tdp_exit exit, bool prefetch)
{
	struct tdp_vm *vm = v->vm;
	struct tdp_mmu *mmu = &vm->mmu;
	struct fault_state fs = {0};
	const struct memslots *set;
	struct tdp_fault f = {0};
	unsigned srcu_idx;
	int r;

	stat_own_inc(v->st.pf_taken);
	fs.private = vm_gfn_private(vm, gpa >> 12);
	f.gfn = (gpa >> 12) & ~vm->shared_gfn;
	f.as_id = v->as_id;
	f.write = acc == ACC_WRITE;
	f.exec = acc == ACC_FETCH;
	f.prefetch = prefetch;
	if (mmio_fast(v, &f, &fs, exit))
		return -EFAULT;

	/* the MMIO generation was sampled before the set is read: an MMIO
	 * entry made from this lookup carries it or an older one (vm.c) */
	srcu_idx = tdp_srcu_read_lock(&vm->srcu);
	set = vm_memslots(vm, v->as_id);
	fs.slot = memslots_lookup(set, f.gfn);
	r = check_slot(v, &f, &fs);
	if (r <= 0)
		goto out;
	r = 0;
	if (fast_fault(v, &f, &fs, exit == EXIT_VIOLATION_PRESENT))
		goto out;
	r = faultin_pfn(v, &f, &fs);
	if (r <= 0)
		goto out;
	/* the retried access will touch the frame at once: its cache (and
	 * host TLB) miss overlaps the rest of the fault instead of stalling
	 * the first locked instruction after the guest's store (measured:
	 * populate 1 GiB, steady, about 8x -> 5.5x the floor on an Intel VM,
	 * where that store's miss was the largest part of a fault) */
	prefetch_access(host_frame_base(vm->host) + (fs.g.pfn << 12) +
				(gpa & (TDP_PAGE_SIZE - 1)),
			f.write);
	r = pt_cache_topup(&mmu->alloc, &v->cache, mmu->root_level);
	if (!r)
		map_locked(v, &f, &fs);
	put_pfn(v, &fs);
out:
	/* SRCU's promise, checked where it is relied on */
	TDP_ASSERT_MSG(!memslots_retired(set),
		       "memslot set retired inside a read section that "
		       "used it (gfn %#llx)",
		       (unsigned long long)f.gfn);
	tdp_srcu_read_unlock(&vm->srcu, srcu_idx);
	return r;
}
