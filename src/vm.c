/* SPDX-License-Identifier: MIT */
/*
 * vm.c - VM lifecycle, memslot updates, host-notifier callbacks, public
 * zap/invalidate calls and stats.  Lock order and lifetimes: vm.h.
 *
 * Memslot update protocol (see memslot.h):
 *   slots_lock held throughout;
 *   delete / move / gaining read-only:
 *     publish a set with the old slot marked invalid -> srcu synchronize
 *     (no fault still uses the valid copy) -> delete and move: fast zap
 *     of every root (vm_zap_all_fast); gaining read-only: zap the old
 *     gfns in every root, flush (mmu_lock write) -> publish the final
 *     set -> srcu synchronize -> free the old sets;
 *   create / losing read-only: publish -> srcu synchronize -> free.
 * Every publish moves the memslot generation (odd while in progress) that
 * MMIO entries are stamped with; see publish().  No set is published while
 * a host invalidation is in progress (store_memslots()).
 * Both new sets are allocated before anything is published, so -ENOMEM
 * changes nothing.
 *
 * Notifier protocol (notifier.h): invalidate_start, under mmu_lock write,
 * begins the invalidation, adds each affected slot's gfn range and zaps it
 * in every direct root of the address space (valid or not, so roots being
 * torn down are reached too), then flushes before unlocking (I1, I6).
 * Guest-private memory is invalidated through its own pair of callbacks
 * (invalidate_private_start/end), the same protocol on mirror roots.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "assert.h"
#include "bitmap.h"
#include "sched/sched.h"
#include "vm.h"

#define MAX_HVA (1ull << 47)

static struct tdp_vm *hn_to_vm(struct tdp_host_notifier *n)
{
	return caa_container_of(n, struct tdp_vm, hn);
}

void vm_zap_slot_locked(struct tdp_vm *vm, const struct memslot *s, uint64_t a,
			uint64_t b, unsigned types)
{
	struct tdp_flush_ctx ctx = {0};
	struct gfn_range r = {.slot = s, .start = a, .end = b};

	mmu_zap_range(vm, &r, types, &ctx);
	tdp_mmu_flush_and_free(&vm->mmu, &ctx);
}

void for_each_slot_in_hva(struct tdp_vm *vm, uint64_t start, uint64_t end,
			  bool private_side,
			  void (*fn)(struct tdp_vm *vm, unsigned as,
				     const struct memslot *s, uint64_t a,
				     uint64_t b, void *arg),
			  void *arg)
{
	for (unsigned as = 0; as < vm->cfg.nr_as; as++) {
		struct memslots *set = vm_memslots(vm, as);

		for (unsigned i = 0; set && i < set->n; i++) {
			const struct memslot *s = &set->slots[i];
			uint64_t hs = private_side ? s->private_hva : s->hva;
			uint64_t he = hs + (s->npages << 12);

			if (private_side && !(s->flags & TDP_MEM_PRIVATE))
				continue;
			if (end <= hs || he <= start)
				continue;
			fn(vm, as, s,
			   s->base_gfn +
				   (((start > hs ? start : hs) - hs) >> 12),
			   s->base_gfn + (((end < he ? end : he) - hs) >> 12),
			   arg);
		}
	}
}

/* One host invalidation: the roots it zaps in, and the flush it owes
 * (one for the whole call, as KVM's kvm_handle_hva_range, not one per
 * memslot; a zap that yields flushes what it owes first). */
struct inval_ctx {
	unsigned types;
	struct tdp_flush_ctx flush;
};

static void invalidate_slot(struct tdp_vm *vm, unsigned as,
			    const struct memslot *s, uint64_t a, uint64_t b,
			    void *arg)
{
	struct inval_ctx *ic = arg;
	struct gfn_range r = {.slot = s, .start = a, .end = b};

	(void)as; /* s->as_id */
	mn_range_add(&vm->mn, a, b);
	mmu_zap_range(vm, &r, ic->types, &ic->flush);
}

static void invalidate_start(struct tdp_vm *vm, uint64_t start, uint64_t end,
			     bool private_side)
{
	/* hva mappings live in direct roots only, guest-private memory in
	 * mirror roots only: each side has its own notifier path */
	struct inval_ctx ic = {
		.types = (private_side ? ROOT_MIRROR : ROOT_DIRECT) |
			 ROOT_INVALID,
	};
	unsigned idx;

	stat_inc(vm->stats.invalidations);
	tdp_write_lock(&vm->mmu.lock);
	mn_begin(&vm->mn);
	if (INJECTED(vm->mmu.inject, INJ_NESTED_RANGE_RESET)) {
		/* "the range is this invalidation's own": one that nests
		 * inside another forgets the outer one's range, so faults
		 * there stop retrying before it ends */
		atomic_store(&vm->mn.range_start, UINT64_MAX);
		atomic_store(&vm->mn.range_end, 0);
	}
	idx = tdp_srcu_read_lock(&vm->srcu);
	for_each_slot_in_hva(vm, start, end, private_side, invalidate_slot,
			     &ic);
	tdp_srcu_read_unlock(&vm->srcu, idx);
	tdp_mmu_flush_and_free(&vm->mmu, &ic.flush);
	tdp_write_unlock(&vm->mmu.lock);
	/* slots-during-invalidate (inject.h): widen the window, as a host
	 * slow to finish what it began (a migration waiting on a page lock) */
	if (INJECTED(vm->mmu.inject, INJ_SLOTS_DURING_INVALIDATE)) {
		sched_yield();
		usleep(1000);
	}
}

static void vm_invalidate_start(struct tdp_host_notifier *n, uint64_t start,
				uint64_t end)
{
	invalidate_start(hn_to_vm(n), start, end, false);
}

/* Guest-private memory (punch hole, munmap): zaps mirror roots under the
 * write lock, as the external table requires (I11). */
static void vm_private_invalidate_start(struct tdp_host_notifier *n,
					uint64_t start, uint64_t end)
{
	invalidate_start(hn_to_vm(n), start, end, true);
}

static void vm_invalidate_end(struct tdp_host_notifier *n, uint64_t start,
			      uint64_t end)
{
	struct tdp_vm *vm = hn_to_vm(n);

	tdp_write_lock(&vm->mmu.lock);
	mn_end(&vm->mn);
	tdp_write_unlock(&vm->mmu.lock);
}

struct age_ctx {
	const struct memslot *slot;
	uint64_t start; /* hva of bit 0 */
	uint64_t *young;
	uint64_t pages;
	bool test_only;
};

static void age_young(void *arg, uint64_t gfn, uint64_t n)
{
	struct age_ctx *ac = arg;
	uint64_t first = (memslot_gfn_to_hva(ac->slot, gfn) - ac->start) >> 12;

	bitmap_set(ac->young, first, n);
	ac->pages += n;
}

static void age_slot(struct tdp_vm *vm, unsigned as, const struct memslot *s,
		     uint64_t a, uint64_t b, void *arg)
{
	struct age_ctx *ac = arg;
	bool locked = vm->cfg.flags & TDP_VM_LOCKED_AGING;

	struct gfn_range r = {.slot = s, .start = a, .end = b};

	ac->slot = s;
	mmu_age_range(vm, &r, ac->test_only, locked, age_young, ac);
}

/* The host's reclaim scan: clear (or test) the young state of the hva
 * range in every address space.  Lockless unless TDP_VM_LOCKED_AGING
 * (age.c); called with the host mmap lock held for read. */
static void vm_age(struct tdp_host_notifier *n, uint64_t start, uint64_t end,
		   unsigned flags, uint64_t *young)
{
	struct tdp_vm *vm = hn_to_vm(n);
	bool test_only = flags & TDP_AGE_TEST_ONLY;
	struct age_ctx ac = {
		.start = start, .young = young, .test_only = test_only};
	unsigned idx;

	stat_inc(vm->stats.age_calls);
	idx = tdp_srcu_read_lock(&vm->srcu);
	for_each_slot_in_hva(vm, start, end, false, age_slot, &ac);
	tdp_srcu_read_unlock(&vm->srcu, idx);
	stat_add(vm->stats.age_young, ac.pages);
	/* clear_flush_young: accesses through TLB entries made before the
	 * clear would not set Accessed again */
	if ((flags & TDP_AGE_FLUSH) && !test_only)
		vm_flush_remote_tlbs(vm);
}

const struct tdp_host_notifier_ops vm_notifier_ops = {
	.invalidate_start = vm_invalidate_start,
	.invalidate_end = vm_invalidate_end,
	.age = vm_age,
	.invalidate_private_start = vm_private_invalidate_start,
	.invalidate_private_end = vm_invalidate_end,
};

static void vm_mark_dirty(void *arg, uint64_t pfn, uint64_t npages)
{
	struct tdp_vm *vm = arg;

	host_mark_dirty(vm->host, pfn, npages);
}

static void vm_mark_accessed(void *arg, uint64_t pfn, uint64_t npages)
{
	struct tdp_vm *vm = arg;

	host_mark_accessed(vm->host, pfn, npages);
}

/* Legacy engine: the reverse map of a leaf.  Every leaf lies in a slot of
 * the current set (or of the set with that slot marked invalid, while a
 * delete or move zaps it): zaps finish before a slot leaves the set.
 * The slot found last is remembered with the memslot generation it was
 * found in: while the generation is the same, the set is the same, the
 * slot is in it and its reverse maps live (they are freed only after the
 * slot left the set), so most entry changes search no memslot. */
static struct rmap_head *vm_rmap_of(void *arg, unsigned as_id, uint64_t gfn,
				    int level)
{
	struct tdp_vm *vm = arg;
	struct rmap_cache *c = &vm->rmap_cache;
	uint64_t gen = atomic_load(&vm->slots_gen);
	struct rmap_head *head = NULL;
	const struct memslot *s;
	unsigned idx;

	/* the cache's lock: the legacy engine changes entries only under
	 * mmu_lock held for write */
	tdp_assert_held_write(&vm->mmu.lock);
	if (c->rm && c->gen == gen && c->as_id == as_id &&
	    gfn - c->base_gfn < c->npages)
		return slot_rmap(c->rm, c->base_gfn, gfn, level);
	idx = tdp_srcu_read_lock(&vm->srcu);
	s = memslots_lookup(vm_memslots(vm, as_id), gfn);
	if (s) {
		head = slot_rmap(s->rmaps, s->base_gfn, gfn, level);
		/* not while an update is under way (odd generation) */
		if (!(gen & 1))
			*c = (struct rmap_cache){ gen, as_id, s->base_gfn,
						  s->npages, s->rmaps };
	}
	tdp_srcu_read_unlock(&vm->srcu, idx);
	return head;
}

/* The MMU's calls upward (struct tdp_mmu_ops); with Dirty-bit logging a
 * dirty leaf that goes is recorded in the dirty log too (not with PML,
 * which logged it when its Dirty bit was set). */
static const struct tdp_mmu_ops vm_mmu_ops = {
	.flush_remote_tlbs = vm_flush_remote_tlbs,
	.mark_dirty = vm_mark_dirty,
	.mark_accessed = vm_mark_accessed,
	.rmap_of = vm_rmap_of,
};

static const struct tdp_mmu_ops vm_mmu_ops_dbit = {
	.flush_remote_tlbs = vm_flush_remote_tlbs,
	.mark_dirty = vm_mark_dirty,
	.mark_accessed = vm_mark_accessed,
	.mark_gfn_dirty = vm_mark_gfn_dirty,
	.rmap_of = vm_rmap_of,
};

static int vm_config_normalize(const struct tdp_vm_config *in,
			       struct tdp_vm_config *out)
{
	struct tdp_vm_config c = {0};

	if (in)
		c = *in;
	if (!c.root_level)
		c.root_level = 4;
	if (!c.nr_as)
		c.nr_as = 1;
	if (!c.max_vcpus)
		c.max_vcpus = 64;
	if (!c.max_huge)
		c.max_huge = TDP_HUGE_1G;
	if (c.root_level != 4 && c.root_level != 5)
		return -EINVAL;
	if (c.nr_as > 2 || c.max_vcpus > TDP_MAX_VCPUS)
		return -EINVAL;
	if (c.flags & ~(TDP_VM_EXCLUSIVE_FAULTS | TDP_VM_DIRTY_DBIT |
			TDP_VM_MANUAL_PROTECT | TDP_VM_LOCKED_AGING |
			TDP_VM_NO_FAST_FAULT | TDP_VM_NO_EAGER_SPLIT |
			TDP_VM_CONFIDENTIAL | TDP_VM_NX_HUGE_PAGES |
			TDP_VM_NX_RECOVER_LOCKED | TDP_VM_PML))
		return -EINVAL;
	if ((c.flags & TDP_VM_PML) && !(c.flags & TDP_VM_DIRTY_DBIT))
		return -EINVAL;
	if (c.dirty_ring_size &&
	    (c.dirty_ring_size < TDP_DIRTY_RING_MIN ||
	     c.dirty_ring_size > TDP_DIRTY_RING_MAX ||
	     (c.dirty_ring_size & (c.dirty_ring_size - 1)) ||
	     (c.flags & TDP_VM_MANUAL_PROTECT) ||
	     ((c.flags & TDP_VM_DIRTY_DBIT) && !(c.flags & TDP_VM_PML))))
		return -EINVAL;
	if (c.flags & TDP_VM_NX_HUGE_PAGES) {
		if (!c.nx_recovery_ratio)
			c.nx_recovery_ratio = 60; /* KVM's default */
	} else if (c.nx_recovery_ratio || c.nx_recovery_period_ms ||
		   (c.flags & TDP_VM_NX_RECOVER_LOCKED)) {
		return -EINVAL;
	}
	if (c.flags & TDP_VM_CONFIDENTIAL) {
		unsigned width = 12 + 9 * c.root_level;

		if (!c.shared_bit)
			c.shared_bit = width - 1;
		if (c.shared_bit < 30 || c.shared_bit >= width || c.nr_as != 1)
			return -EINVAL;
	} else if (c.shared_bit) {
		return -EINVAL;
	}
	if (c.engine > TDP_ENGINE_LEGACY ||
	    (c.engine == TDP_ENGINE_LEGACY && (c.flags & TDP_VM_CONFIDENTIAL)))
		return -EINVAL;
	if (c.max_huge != TDP_PAGE_SIZE && c.max_huge != TDP_HUGE_2M &&
	    c.max_huge != TDP_HUGE_1G)
		return -EINVAL;
	if (!c.mmio_gen_bits)
		c.mmio_gen_bits = 18;
	if (c.mmio_gen_bits > 30)
		return -EINVAL;
	*out = c;
	return 0;
}

static int huge_to_level(uint64_t sz)
{
	return sz == TDP_HUGE_1G   ? TDP_LEVEL_1G
	       : sz == TDP_HUGE_2M ? TDP_LEVEL_2M
				   : TDP_LEVEL_4K;
}

int tdp_vm_create(struct tdp_host *h, const struct tdp_vm_config *cfg,
		  struct tdp_vm **out)
{
	struct tdp_vm *vm;
	int r;

	if (!h || !out)
		return -EINVAL;
	/* per-slot members (percpu.h) are cache-line aligned */
	vm = aligned_alloc(_Alignof(struct tdp_vm),
			   (sizeof(*vm) + _Alignof(struct tdp_vm) - 1) &
				   ~(_Alignof(struct tdp_vm) - 1));
	if (!vm)
		return -ENOMEM;
	memset(vm, 0, sizeof(*vm));
	r = vm_config_normalize(cfg, &vm->cfg);
	if (r)
		goto err_free;
	r = -ENOMEM;
	vm->vcpus = calloc(vm->cfg.max_vcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		goto err_free;
	for (unsigned as = 0; as < vm->cfg.nr_as; as++) {
		vm->memslots[as] = memslots_replace(NULL, ~0u, NULL);
		if (!vm->memslots[as])
			goto err_slots;
	}
	r = tdp_mmu_init(&vm->mmu, (int)vm->cfg.root_level,
			 huge_to_level(vm->cfg.max_huge), &vm->stats,
			 (vm->cfg.flags & (TDP_VM_DIRTY_DBIT | TDP_VM_PML)) ==
					 TDP_VM_DIRTY_DBIT
				 ? &vm_mmu_ops_dbit
				 : &vm_mmu_ops,
			 vm);
	if (r)
		goto err_slots;
	vm->mn.mmu_lock = &vm->mmu.lock;
	vm->mmu.nx_huge_pages = vm->cfg.flags & TDP_VM_NX_HUGE_PAGES;
	r = mmu_engine_init(&vm->mmu, vm->cfg.engine, &vm->engine);
	if (r)
		goto err_mmu;
	if (vm->cfg.flags & TDP_VM_CONFIDENTIAL) {
		vm->shared_gfn = 1ull << (vm->cfg.shared_bit - 12);
		r = vm_confidential_init(vm);
		if (r)
			goto err_mmu;
	}
	vm->mmio_gen_mask = (1ull << vm->cfg.mmio_gen_bits) - 1;
	tdp_srcu_init(&vm->srcu);
	vm->srcu.inject = &vm->mmu.inject;
	pthread_mutex_init(&vm->slots_lock, NULL);
	pthread_rwlock_init(&vm->vcpus_lock, NULL);
	vm->host = h;
	vm->hn.ops = &vm_notifier_ops;
	host_notifier_register(h, &vm->hn);
	r = vm_nx_worker_start(vm);
	if (r) {
		host_notifier_unregister(h, &vm->hn);
		vm_nx_worker_stop(vm);
		goto err_mmu;
	}
	*out = vm;
	return 0;
err_mmu:
	tdp_mmu_destroy(&vm->mmu);
err_slots:
	for (unsigned as = 0; as < 2; as++)
		free(vm->memslots[as]);
	free(vm->vcpus);
err_free:
	free(vm);
	return r;
}

void tdp_vm_destroy(struct tdp_vm *vm)
{
	if (!vm)
		return;
	for (unsigned i = 0; i < vm->cfg.max_vcpus; i++)
		TDP_ASSERT_MSG(!atomic_load(&vm->vcpus[i]),
			       "tdp_vm_destroy with vCPU %u still alive", i);
	vm_nx_worker_stop(vm);
	/* No notifier runs once this returns. */
	host_notifier_unregister(vm->host, &vm->hn);
	/* every root, mirror roots too, zapped under the write lock (the
	 * external table accepts removals only then) */
	tdp_write_lock(&vm->mmu.lock);
	tdp_mmu_invalidate_roots(&vm->mmu, ROOTS_VALID);
	tdp_write_unlock(&vm->mmu.lock);
	tdp_mmu_zap_invalidated_roots(&vm->mmu, false);
	/* Every deferred table and root free has run after this. */
	tdp_rcu_barrier();
	vm_confidential_destroy(vm);
	for (unsigned as = 0; as < 2; as++) {
		struct memslots *set = vm->memslots[as];

		for (unsigned i = 0; set && i < set->n; i++) {
			free(set->slots[i].dirty_bitmap);
			free(set->slots[i].shared_bitmap);
			slot_rmaps_free(set->slots[i].rmaps);
		}
		free(set);
	}
	for (unsigned i = 0; i < VM_QUARANTINE; i++)
		free(vm->quarantine[i]);
	tdp_mmu_destroy(&vm->mmu);
	pthread_mutex_destroy(&vm->slots_lock);
	pthread_rwlock_destroy(&vm->vcpus_lock);
	free(vm->vcpus);
	free(vm);
}

/* ---------------------------------------------------------------- */
/* Memslots                                                          */
/* ---------------------------------------------------------------- */

static int memslot_check_args(struct tdp_vm *vm, const struct tdp_memslot *s)
{
	if (!s || s->as_id >= vm->cfg.nr_as || s->slot >= TDP_MAX_MEMSLOTS)
		return -EINVAL;
	if (s->flags &
	    ~(TDP_MEM_READONLY | TDP_MEM_LOG_DIRTY | TDP_MEM_PRIVATE))
		return -EINVAL;
	if (!s->size)
		return 0;
	if ((s->gpa | s->size | s->hva) & (TDP_PAGE_SIZE - 1))
		return -EINVAL;
	if (s->gpa + s->size < s->gpa || s->gpa + s->size > vm_max_gpa(vm))
		return -EINVAL;
	if (s->hva + s->size < s->hva || s->hva + s->size > MAX_HVA)
		return -EINVAL;
	if (vm_confidential(vm) && s->gpa + s->size > vm->shared_gfn << 12)
		return -EINVAL; /* memslots lie below the shared bit */
	if (!(s->flags & TDP_MEM_PRIVATE))
		return 0;
	if (!vm_confidential(vm) ||
	    (s->flags & (TDP_MEM_READONLY | TDP_MEM_LOG_DIRTY)))
		return -EINVAL;
	if ((s->private_hva & (TDP_PAGE_SIZE - 1)) ||
	    s->private_hva + s->size < s->private_hva ||
	    s->private_hva + s->size > MAX_HVA)
		return -EINVAL;
	return 0;
}

static bool no_invalidation(void *arg)
{
	struct tdp_vm *vm = arg;

	return !atomic_load(&vm->mn.in_progress);
}

/*
 * Store the new set, but never while a host invalidation is between its
 * start and end (KVM's mn_active_invalidate_count and
 * mn_memslots_update_rcuwait).  An invalidation finds the slots its hva
 * range backs in the sets of its start, and only their gfns make faults
 * retry (notifier.h): a slot published after the start (created, or
 * moved to new gfns) would let a fault there take the frame the host is
 * about to free, pass the retry check and map it (I5).  invalidate_start
 * counts itself in in_progress under mmu_lock (write) before it reads
 * the sets, and the pointer is stored under the same lock with the count
 * at 0: an invalidation either began first (and the store waits for its
 * end) or reads the new set.  Conversions count there too but run under
 * slots_lock, which the caller holds, so they are never waited for.  The
 * caller must not be inside an invalidation (a host notifier or test
 * hook): it would wait for itself.  slots_lock held.
 */
static void store_memslots(struct tdp_vm *vm, unsigned as_id,
			   struct memslots *set)
{
	bool waited = false;

	for (;;) {
		tdp_write_lock(&vm->mmu.lock);
		if (no_invalidation(vm) ||
		    INJECTED(vm->mmu.inject, INJ_SLOTS_DURING_INVALIDATE))
			break;
		tdp_write_unlock(&vm->mmu.lock);
		if (!waited)
			stat_inc(vm->stats.memslot_waits);
		waited = true;
		/* (under the controlled scheduler the wait returns with the
		 * condition true: no yield, which would demote the updater) */
		while (!no_invalidation(vm)) {
			TDP_SCHED_WAIT_UNTIL(no_invalidation, vm, SK_WAIT);
			if (!no_invalidation(vm))
				sched_yield();
		}
	}
	tdp_rcu_assign_pointer(vm->memslots[as_id], set);
	tdp_write_unlock(&vm->mmu.lock);
}

/*
 * Publish a new memslot set.  The generation goes odd first, so no MMIO
 * entry matches while faults may still see either set, and even again
 * after the srcu grace period (every fault that saw the old set is done);
 * an MMIO entry made by a fault that sampled the even generation before
 * reading a set is therefore stamped with the generation of that set or
 * an older one (I10).  If the generation kept in MMIO entries wraps, old
 * entries could match again: every root is fast-zapped before the
 * generation becomes even.
 */
static void publish(struct tdp_vm *vm, unsigned as_id, struct memslots *set)
{
	struct memslots *old = vm->memslots[as_id];
	uint64_t g;

	if (set->n &&
	    memslot_end(&set->slots[set->n - 1]) > vm->mmu.max_slot_gfn)
		vm->mmu.max_slot_gfn = memslot_end(&set->slots[set->n - 1]);
	g = atomic_fetch_add(&vm->slots_gen, 1) + 1; /* odd */
	store_memslots(vm, as_id, set);
	tdp_srcu_synchronize(&vm->srcu);
	if (old) {
		struct memslots **q =
			&vm->quarantine[vm->quarantine_next++ % VM_QUARANTINE];

		atomic_store(&old->retired, 1);
		free(*q);
		*q = old;
	}
	if ((((g + 1) >> 1) & vm->mmio_gen_mask) == 0) {
		stat_inc(vm->stats.mmio_gen_wraps);
		vm_zap_all_fast(vm);
	}
	atomic_fetch_add(&vm->slots_gen, 1); /* even */
}

/* The arguments of a memslot update against the current set: 0 to go
 * on, 1 if nothing changes, or the errno.  slots_lock held. */
static int check_update(struct tdp_vm *vm, const struct tdp_memslot *s,
			const struct memslots *cur, const struct memslot *old,
			const struct memslot *new)
{
	if (!s->size)
		return old ? 0 : -ENOENT;
	if (old && (old->npages != new->npages || old->hva != new->hva ||
		    old->private_hva != new->private_hva ||
		    ((old->flags ^ new->flags) & TDP_MEM_PRIVATE)))
		return -EINVAL;
	if (old && old->base_gfn == new->base_gfn && old->flags == new->flags)
		return 1; /* nothing changes */
	if (memslots_overlap(cur, new->base_gfn, new->npages, s->slot))
		return -EEXIST;
	if (!host_range_mapped(vm->host, s->hva, s->size) ||
	    host_range_has_private(vm->host, s->hva, s->size) ||
	    ((new->flags &TDP_MEM_PRIVATE) &&
	     !host_range_private(vm->host, new->private_hva, s->size)))
		return -EFAULT;
	return 0;
}

/* What a memslot update allocates for the new slot, and what it frees
 * once the old one is gone. */
struct slot_mem {
	uint64_t *new_bm, *free_bm;	     /* dirty log */
	uint64_t *new_attr, *free_attr;	     /* memory attributes */
	struct slot_rmaps *new_rm, *free_rm; /* legacy engine */
};

/* Give @new its dirty bitmap (while logging stays on: @log_on, @was_on
 * as the caller computed them), attribute bitmap
 * (moves with the slot) and reverse maps (kept across moves, empty by
 * then), taking @old's or allocating.  -ENOMEM with nothing allocated
 * left. */
static int slot_mem_get(struct tdp_vm *vm, const struct memslot *old,
			struct memslot *new, bool deleting, bool log_on,
			bool was_on, struct slot_mem *m)
{
	if (log_on && was_on) {
		new->dirty_bitmap = old->dirty_bitmap;
	} else if (log_on) {
		m->new_bm = vm_log_bitmap_alloc(vm, new->npages);
		if (!m->new_bm)
			goto nomem;
		new->dirty_bitmap = m->new_bm;
	}
	if (was_on && !log_on)
		m->free_bm = old->dirty_bitmap;
	if (old && !deleting) {
		new->shared_bitmap = old->shared_bitmap;
	} else if (!deleting && (new->flags &TDP_MEM_PRIVATE)) {
		m->new_attr = calloc((new->npages + 63) / 64, sizeof(uint64_t));
		if (!m->new_attr)
			goto nomem;
		new->shared_bitmap = m->new_attr;
	}
	if (old && deleting)
		m->free_attr = old->shared_bitmap;
	if (old && !deleting) {
		new->rmaps = old->rmaps;
	} else if (!deleting && vm->engine->slot_rmaps) {
		m->new_rm = slot_rmaps_alloc(new->npages);
		if (!m->new_rm)
			goto nomem;
		new->rmaps = m->new_rm;
	}
	if (old && deleting)
		m->free_rm = old->rmaps;
	return 0;
nomem:
	free(m->new_bm);
	free(m->new_attr);
	return -ENOMEM;
}

/* The old slot @inv is published invalid: zap what maps it.  A delete or
 * a move is KVM's kvm_mmu_zap_all_fast, which leaves mirror roots alone
 * (their private mappings of the slot go under the write lock); a slot
 * turning read-only zaps its range. */
static void zap_old_slot(struct tdp_vm *vm, const struct memslot *inv,
			 bool fast)
{
	if (fast)
		vm_zap_all_fast(vm);
	if (!fast && INJECTED(vm->mmu.inject, INJ_READONLY_NO_FLUSH)) {
		/* "the slot's vCPUs fault anyway once it is read-only": the
		 * zap borrows no_flush from the zap of invalid roots, which
		 * vCPUs have already left, and flushes only for removed
		 * tables (I2) */
		struct tdp_flush_ctx ctx = {.no_flush = true};
		struct gfn_range gr = {.slot = inv,
				       .start = inv->base_gfn,
				       .end = memslot_end(inv)};

		tdp_write_lock(&vm->mmu.lock);
		mmu_zap_range(vm, &gr, ROOTS_ALL, &ctx);
		ctx.no_flush = ctx.removed == NULL;
		tdp_mmu_flush_and_free(&vm->mmu, &ctx);
		tdp_write_unlock(&vm->mmu.lock);
	} else if (!fast || (inv->flags & TDP_MEM_PRIVATE)) {
		tdp_write_lock(&vm->mmu.lock);
		vm_zap_slot_locked(vm, inv, inv->base_gfn, memslot_end(inv),
				   fast ? ROOT_MIRROR : ROOTS_ALL);
		tdp_write_unlock(&vm->mmu.lock);
	}
}

int tdp_vm_set_memslot(struct tdp_vm *vm, const struct tdp_memslot *s)
{
	struct memslots *cur, *set_inv = NULL, *set_final = NULL;
	const struct memslot *old;
	struct memslot new, inv;
	struct slot_mem m = {0};
	bool zap, log_on, was_on;
	int r;

	if (!vm)
		return -EINVAL;
	r = memslot_check_args(vm, s);
	if (r)
		return r;
	pthread_mutex_lock(&vm->slots_lock);
	cur = vm->memslots[s->as_id];
	old = memslots_find_id(cur, s->slot);
	new = (struct memslot){
		.base_gfn = s->gpa >> 12,
		.npages = s->size >> 12,
		.hva = s->hva,
		.id = s->slot,
		.as_id = s->as_id,
		.flags = s->flags,
		.private_hva = s->flags & TDP_MEM_PRIVATE ? s->private_hva : 0};
	r = check_update(vm, s, cur, old, &new);
	if (r)
		goto out;
	zap = old && (!s->size || old->base_gfn != new.base_gfn ||
		      (new.flags & ~old->flags &TDP_MEM_READONLY));
	log_on = s->size && (new.flags &TDP_MEM_LOG_DIRTY);
	was_on = old && (old->flags & TDP_MEM_LOG_DIRTY);
	r = slot_mem_get(vm, old, &new, !s->size, log_on, was_on, &m);
	if (r)
		goto out;
	r = -ENOMEM;
	if (zap) {
		inv = *old;
		inv.invalid = true;
		set_inv = memslots_replace(cur, s->slot, &inv);
		if (!set_inv)
			goto out_mem;
	}
	set_final = memslots_replace(set_inv ? set_inv : cur, s->slot,
				     s->size ? &new : NULL);
	if (!set_final) {
		free(set_inv);
		goto out_mem;
	}
	if (zap) {
		publish(vm, s->as_id, set_inv); /* @old lives in the set
						 * publish() frees */
		zap_old_slot(vm, &inv,
			     !s->size || inv.base_gfn != new.base_gfn);
	}
	publish(vm, s->as_id, set_final);
	/* publish() waited for every fault that saw the old slot: from here
	 * on, faults log (or stop logging) */
	if (log_on && !was_on && old)
		vm_log_enable(vm, memslots_find_id(set_final, s->slot));
	else if (was_on && !log_on && s->size)
		vm_log_disable(vm, memslots_find_id(set_final, s->slot));
	free(m.free_bm);
	free(m.free_attr);
	slot_rmaps_free(m.free_rm); /* the zap above emptied them */
	stat_inc(vm->stats.memslot_updates);
	r = 0;
	goto out;
out_mem:
	free(m.new_bm);
	free(m.new_attr);
	slot_rmaps_free(m.new_rm);
out:
	pthread_mutex_unlock(&vm->slots_lock);
	return r == 1 ? 0 : r;
}

/* ---------------------------------------------------------------- */
/* Zaps, stats                                                       */
/* ---------------------------------------------------------------- */

int tdp_vm_zap_gfn_range(struct tdp_vm *vm, unsigned as_id, uint64_t gpa,
			 uint64_t size)
{
	if (!vm || as_id >= vm->cfg.nr_as || !size)
		return -EINVAL;
	if ((gpa | size) & (TDP_PAGE_SIZE - 1))
		return -EINVAL;
	if (gpa + size < gpa || gpa + size > vm_max_gpa(vm))
		return -EINVAL;
	tdp_write_lock(&vm->mmu.lock);
	mmu_zap_gfns_locked(vm, as_id, gpa >> 12, size >> 12, ROOTS_ALL);
	tdp_write_unlock(&vm->mmu.lock);
	return 0;
}

/* Invalidate every direct root and post the reload requests (write lock,
 * short: no wait in it), then wait for the vCPUs' acknowledgements with
 * no lock held, then zap the invalidated roots under the read lock in
 * this thread, yielding (KVM 0df9dab891ff), and drop the MMU's
 * references.  Mirror roots cannot be zapped under the read lock, nor
 * rebuilt without the firmware's help: they are left alone (I11).
 *
 * Why the wait may run after the write lock is gone (docs/protocols.md,
 * "Fast zap"): the requests are posted in the section that invalidates,
 * so a vCPU that enters guest mode after it sees them and reloads (I3);
 * a vCPU still in a window that began earlier may go on walking the
 * invalid root, as it could while the writer waited, until the window
 * ends, and the wait covers exactly those windows.  Nothing else the
 * write lock excluded depends on the wait: vCPUs that reload meanwhile
 * take mmu_lock for read and find a valid root or make one, and the
 * invalid roots' tables are freed only by the zap below, after the wait
 * (its no-flush rule needs every vCPU to have flushed: it has). */
static void invalidate_and_zap(struct tdp_vm *vm)
{
	uint64_t gen;

	tdp_write_lock(&vm->mmu.lock);
	tdp_mmu_invalidate_roots(&vm->mmu,
				 INJECTED(vm->mmu.inject, INJ_FAST_ZAP_MIRROR)
					 ? ROOTS_VALID
					 : ROOT_DIRECT);
	gen = atomic_load(&vm->mmu.roots.inval_gen);
	/* Same critical section: no vCPU can enter guest mode on an invalid
	 * root without seeing the request first (vcpu.c). */
	vm_request_all(vm, REQ_RELOAD_ROOTS | REQ_TLB_FLUSH);
	tdp_write_unlock(&vm->mmu.lock);
	vm_wait_guest_exits(vm);
	roots_mark_acked(&vm->mmu.roots, gen);
	mmu_zap_invalidated_roots(vm);
}

int tdp_vm_invalidate_roots(struct tdp_vm *vm)
{
	if (!vm)
		return -EINVAL;
	invalidate_and_zap(vm);
	return 0;
}

void vm_zap_all_fast(struct tdp_vm *vm)
{
	stat_inc(vm->stats.fast_zaps);
	invalidate_and_zap(vm);
}

int tdp_vm_zap_all_fast(struct tdp_vm *vm)
{
	if (!vm)
		return -EINVAL;
	vm_zap_all_fast(vm);
	return 0;
}

void tdp_vm_get_stats(struct tdp_vm *vm, struct tdp_stats *o)
{
	struct vcpu_stats vs;
	struct vm_stats *s;
	long long nx_tables;

	if (!vm || !o)
		return;
	s = &vm->stats;
	nx_tables = atomic_load(&vm->mmu.nx_tables);
	memset(o, 0, sizeof(*o));
	vcpu_stats_sum(vm, &vs);
	o->pf_taken = stat_read(vs.pf_taken);
	o->pf_fixed = stat_read(vs.pf_fixed);
	o->pf_spurious = stat_read(vs.pf_spurious);
	o->pf_retry = stat_read(vs.pf_retry);
	o->pf_mmio = stat_read(vs.pf_mmio);
	o->pf_ro_exit = stat_read(vs.pf_ro_exit);
	o->tlb_hits = stat_read(vs.tlb_hits);
	o->tlb_misses = stat_read(vs.tlb_misses);
	o->pages_4k = (uint64_t)stat_slot_sum(s, pages[TDP_LEVEL_4K]);
	o->pages_2m = (uint64_t)stat_slot_sum(s, pages[TDP_LEVEL_2M]);
	o->pages_1g = (uint64_t)stat_slot_sum(s, pages[TDP_LEVEL_1G]);
	o->pt_pages = (uint64_t)stat_slot_sum(s, pt_pages);
	o->pt_pages_alloc = (uint64_t)atomic_load(&vm->mmu.alloc.allocated);
	o->roots = (uint64_t)atomic_load(&vm->mmu.roots.nr_roots);
	o->frame_refs = stat_read(vs.frame_refs);
	o->remote_tlb_flush = stat_read(s->remote_tlb_flush);
	o->remote_tlb_flush_requests = stat_read(s->remote_tlb_flush_requests);
	o->remote_tlb_flush_ns = stat_read(s->remote_tlb_flush_ns);
	o->invalidations = stat_read(s->invalidations);
	o->zapped_leaves = stat_read(s->zapped_leaves);
	o->root_reloads = stat_read(s->root_reloads);
	o->memslot_updates = stat_read(s->memslot_updates);
	o->memslot_waits = stat_read(s->memslot_waits);
	/* a removal racing a link's count may take it below 0 a moment */
	o->nx_lpage_splits =
		(uint64_t)(nx_tables > 0 ? nx_tables : 0);
	o->nx_recovered = stat_read(s->nx_recovered);
	o->ring_overflows = stat_read(s->ring_overflows);
	o->ring_resets = stat_read(s->ring_resets);
	o->pf_fast = stat_read(vs.pf_fast);
	o->dirty_harvests = stat_read(s->dirty_harvests);
	o->dirty_pages = stat_read(s->dirty_pages);
	o->eager_splits = stat_read(s->eager_splits);
	o->huge_recovered = stat_read(s->huge_recovered);
	o->recover_flushes = stat_read(s->recover_flushes);
	o->age_calls = stat_read(s->age_calls);
	o->age_young = stat_read(s->age_young);
	o->pf_mmio_spte_created = stat_read(vs.pf_mmio_spte_created);
	o->mmio_fast = stat_read(vs.mmio_fast);
	o->fast_zaps = stat_read(s->fast_zaps);
	o->mmio_gen_wraps = stat_read(s->mmio_gen_wraps);
	o->conversions = stat_read(s->conversions);
	o->pf_private = stat_read(vs.pf_private);
	o->pf_attr_exit = stat_read(vs.pf_attr_exit);
	o->pf_retry_early = stat_read(vs.pf_retry_early);
	o->pml_logged = stat_read(vs.pml_logged);
	o->pml_full_exits = stat_read(vs.pml_full_exits);
	o->ring_pushes = stat_read(vs.ring_pushes);
	o->ring_full_exits = stat_read(vs.ring_full_exits);
	o->mirror_roots = (uint64_t)atomic_load(&vm->mmu.roots.nr_mirror);
	if (vm->mmu.ext) {
		struct ext_counts c;

		ext_get_counts(vm->mmu.ext, &c);
		o->ext_ops = c.ops;
		o->ext_errors = c.rejects;
	}
}
