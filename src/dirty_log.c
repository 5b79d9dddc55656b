/* SPDX-License-Identifier: MIT */
/*
 * dirty_log.c - the VM side of dirty logging: per-slot bitmaps, turning
 * logging on (eager split, write-protect or Dirty-bit clear) and off
 * (huge-page recovery), and the harvest calls tdp_vm_get_dirty_log /
 * tdp_vm_clear_dirty_log.  The MMU passes are in dirty.c.
 *
 * Locking and lifetime:
 *  - slots_lock serialises harvests with each other and with memslot
 *    updates, so the slot and its bitmap cannot change or go away during a
 *    harvest; the fault path and the zap callback reach a bitmap through a
 *    slot found under the memslot srcu, and a bitmap is freed only after
 *    the set that dropped it was published and the srcu synchronised.
 *  - bitmap words are changed only with atomic RMW operations.
 *  - write-protect mode: a harvest takes each word with an exchange and
 *    write-protects its pages under mmu_lock held for WRITE.  The slow
 *    fault path marks the log and installs the writable leaf in one
 *    read-locked section, so it is entirely before or after the exchange
 *    (I7).  The lockless fast fault marks before its compare-exchange and
 *    the write-protect pass changes every MMU-writable leaf it visits
 *    (SPTE_LOG_SEQ), so a fast fault that read the leaf before the pass
 *    fails and marks again.
 *  - Dirty-bit mode: a harvest exchanges the words (bits of zapped dirty
 *    leaves), clears Dirty bits, handing each to the host first (I4), and
 *    exchanges the words again (zaps that ran while the pass yielded), all
 *    under mmu_lock held for write: a zap hands a Dirty bit to the log in
 *    the same critical section in which it takes the leaf away, so no bit
 *    is ever in flight during the harvest.  Dirty bits of invalid roots
 *    not yet zapped are harvested too.
 *  - PML (TDP_VM_PML): the walkers log the Dirty bits they set and the
 *    faults log the leaves they install Dirty, so every Dirty bit's page
 *    is in a vCPU's log or past it; a harvest waits until every vCPU's
 *    guest-mode window has ended (each drains its log before its mode
 *    word says so), then exchanges the words and clears the Dirty bits of
 *    the pages it reports, and no others, under mmu_lock held for write.
 *    A Dirty bit set after the wait is logged in a window not waited for
 *    and reported next time; its leaf keeps the bit meanwhile.
 *  - every pass flushes vCPU TLBs before the call returns.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "assert.h"
#include "vm.h"

static uint64_t bitmap_words(const struct memslot *s)
{
	return (s->npages + 63) / 64;
}

uint64_t *vm_log_bitmap_alloc(struct tdp_vm *vm, uint64_t npages)
{
	uint64_t words = (npages + 63) / 64;
	uint64_t *bm = calloc(words ? words : 1, sizeof(*bm));

	if (bm && (vm->cfg.flags & TDP_VM_MANUAL_PROTECT)) {
		/* initially all set: every page counts as written */
		memset(bm, 0xff, words * sizeof(*bm));
		if (npages % 64)
			bm[words - 1] = (1ull << (npages % 64)) - 1;
	}
	return bm;
}

/* Dirty-bit mode: a zapped leaf had D set; record it in its slot's log. */
void vm_mark_gfn_dirty(void *arg, unsigned as_id, uint64_t gfn,
		       uint64_t npages)
{
	struct tdp_vm *vm = arg;
	unsigned idx = tdp_srcu_read_lock(&vm->srcu);

	mark_gfns_dirty(NULL, vm_memslots(vm, as_id), gfn, npages);
	tdp_srcu_read_unlock(&vm->srcu, idx);
}

/* KVM's kvm_vcpu_mark_page_dirty, for a range: the VMM wrote guest memory
 * itself.  All or nothing: every page must be in a memslot. */
int tdp_vm_mark_dirty(struct tdp_vm *vm, unsigned as_id, uint64_t gpa,
		      uint64_t len)
{
	uint64_t first, last;
	struct memslots *set;
	unsigned idx;
	int r = 0;

	if (!vm || as_id >= vm->cfg.nr_as || !len || gpa + len < gpa ||
	    gpa + len > vm_max_gpa(vm))
		return -EINVAL;
	first = gpa >> 12;
	last = (gpa + len - 1) >> 12;
	idx = tdp_srcu_read_lock(&vm->srcu);
	set = vm_memslots(vm, as_id);
	for (uint64_t g = first; g <= last;) {
		const struct memslot *s = memslots_lookup(set, g);

		if (!s) {
			r = -EFAULT;
			break;
		}
		g = memslot_end(s);
	}
	if (!r)
		mark_gfns_dirty(NULL, set, first, last - first + 1);
	tdp_srcu_read_unlock(&vm->srcu, idx);
	return r;
}

static bool dbit_mode(const struct tdp_vm *vm)
{
	return vm->cfg.flags & TDP_VM_DIRTY_DBIT;
}

static bool pml_mode(const struct tdp_vm *vm)
{
	return vm->cfg.flags & TDP_VM_PML;
}

/* Split the huge leaves over pages [first, first+npages) of @s, unless
 * TDP_VM_NO_EAGER_SPLIT; the number split (0 if the table-page cache
 * could not be filled: huge leaves stay, write faults split them). */
static long split_range(struct tdp_vm *vm, const struct memslot *s,
			uint64_t first, uint64_t npages)
{
	struct pt_cache cache = { 0 };
	long n = 0;

	if (vm->cfg.flags & TDP_VM_NO_EAGER_SPLIT)
		return 0;
	if (!pt_cache_topup(&vm->mmu.alloc, &cache, PT_CACHE_MAX)) {
		vm_walk_lock(vm);
		n = tdp_mmu_split_huge_range(&vm->mmu, s->as_id,
					     s->base_gfn + first,
					     s->base_gfn + first + npages,
					     &cache);
		vm_walk_unlock(vm);
	}
	pt_cache_drain(&cache);
	return n;
}

static void eager_split(struct tdp_vm *vm, const struct memslot *s)
{
	long n = split_range(vm, s, 0, s->npages);

	if (n > 0)
		stat_add(vm->stats.eager_splits, (uint64_t)n);
}

/* Write-protect (or clear D on) the slot's pages in @mask (NULL: all);
 * bits of D-bit leaves are ORed into @found.  Flushes. */
static void protect_locked(struct tdp_vm *vm, const struct memslot *s,
			   uint64_t first, uint64_t npages,
			   const uint64_t *mask, uint64_t *found)
{
	uint64_t start = s->base_gfn + first;

	/* write lock: no zap is half done (between taking a dirty leaf away
	 * and handing its bit to the log), no slow fault between its mark
	 * and its writable leaf */
	enum tdp_clear_kind k = dbit_mode(vm) ? CLEAR_D : CLEAR_W;

	tdp_assert_held_write(&vm->mmu.lock);
	struct gfn_range r = { .slot = s, .start = start,
			       .end = start + npages };

	mmu_clear_bits(vm, &r, k, mask, found);
}

/* protect_locked, taking mmu_lock for write */
static void protect(struct tdp_vm *vm, const struct memslot *s,
		    uint64_t first, uint64_t npages, const uint64_t *mask,
		    uint64_t *found)
{
	tdp_write_lock(&vm->mmu.lock);
	protect_locked(vm, s, first, npages, mask, found);
	tdp_write_unlock(&vm->mmu.lock);
}

/* Logging was just turned on for @s (already published). */
void vm_log_enable(struct tdp_vm *vm, const struct memslot *s)
{
	if (vm->cfg.flags & TDP_VM_MANUAL_PROTECT)
		return; /* initially all set: protect at clear time */
	eager_split(vm, s);
	protect(vm, s, 0, s->npages, NULL, NULL);
}

/* ---- huge-page recovery ---- */

struct region_info {
	uint64_t pfn; /* frame of the region's first page, ~0: not mapped */
	unsigned order;
	bool writable;
};

struct recover_ctx {
	struct tdp_vm *vm;
	const struct memslot *slot;
	struct region_info *ri; /* per 2 MiB of gfn space from base */
	uint64_t base;		/* first gfn of ri[0], 2 MiB aligned */
	uint64_t nr;
	uint64_t mmu_seq;
};

static int recover_level_of(void *arg, uint64_t gfn, uint64_t *pfn,
			    bool *writable)
{
	struct recover_ctx *rc = arg;
	uint64_t i = (gfn - rc->base) >> 9;
	const struct region_info *r;

	if (gfn < rc->base || i >= rc->nr)
		return 0;
	r = &rc->ri[i];
	if (r->pfn == ~0ull)
		return 0;
	*pfn = r->pfn;
	*writable = r->writable;
	return vm_max_mapping_level(rc->vm, rc->slot, gfn, r->order);
}

static bool recover_stop(void *arg, uint64_t gfn, uint64_t npages)
{
	struct recover_ctx *rc = arg;

	/* an invalidation of this range began since the host was asked:
	 * the answer may be stale (mn_begin needs the write lock, so the
	 * answer holds until the next yield) */
	return mn_range_changed(&rc->vm->mn, rc->mmu_seq, gfn, gfn + npages);
}

/* Logging was just turned off for @s (published): rebuild huge leaves in
 * place (KVM 6.13's recovery), the host folios looked up first, without
 * mmu_lock (lock order host -> mmu). */
void vm_log_disable(struct tdp_vm *vm, const struct memslot *s)
{
	struct recover_ctx rc = { .vm = vm, .slot = s };
	uint64_t end = memslot_end(s), flushes = 0, built;
	bool late;

	if (vm->mmu.max_level == TDP_LEVEL_4K)
		return;
	rc.base = s->base_gfn & ~511ull;
	rc.nr = (end - rc.base + 511) / 512;
	rc.ri = calloc(rc.nr, sizeof(*rc.ri));
	if (!rc.ri)
		return; /* huge pages come back through faults */
	rc.mmu_seq = mn_seq_sample(&vm->mn);
	late = INJECTED(vm->mmu.inject, INJ_RECOVER_LATE_SEQ);
	for (uint64_t i = 0; i < rc.nr; i++) {
		uint64_t gfn = rc.base + i * 512, pfn;
		unsigned order, prot;

		rc.ri[i].pfn = ~0ull;
		if (gfn < s->base_gfn || gfn + 512 > end)
			continue;
		if (host_lookup(vm->host, memslot_gfn_to_hva(s, gfn), &pfn,
				&order, &prot) ||
		    order < HOST_ORDER_2M)
			continue;
		rc.ri[i] = (struct region_info){
			.pfn = pfn,
			.order = order,
			.writable = (prot & TDP_PROT_WRITE) &&
				    !(s->flags & TDP_MEM_READONLY),
		};
	}
	if (late) {
		/* "the sequence only matters once the lock is near": sampled
		 * after the look-ups, so an invalidation between them and
		 * the lock goes unseen (the sleep widens that window) */
		usleep(500);
		rc.mmu_seq = mn_seq_sample(&vm->mn);
	}
	vm_walk_lock(vm);
	built = tdp_mmu_recover_huge(&vm->mmu, s->as_id, s->base_gfn, end,
				     recover_level_of, recover_stop, &rc,
				     &flushes);
	vm_walk_unlock(vm);
	stat_add(vm->stats.huge_recovered, built);
	stat_add(vm->stats.recover_flushes, flushes);
	free(rc.ri);
}

/* ---- harvest ---- */

static int log_slot(struct tdp_vm *vm, unsigned as_id, unsigned id,
		    const struct memslot **out)
{
	const struct memslot *s;

	s = memslots_find_id(vm->memslots[as_id], id);
	if (!s)
		return -ENOENT;
	if (!(s->flags & TDP_MEM_LOG_DIRTY) || !s->dirty_bitmap)
		return -EINVAL;
	*out = s;
	return 0;
}

static uint64_t popcount_words(const uint64_t *bm, uint64_t n)
{
	uint64_t c = 0;

	for (uint64_t i = 0; i < n; i++)
		c += (uint64_t)__builtin_popcountll(bm[i]);
	return c;
}

/* The slot's words into @bitmap (ORed if @or), each exchanged for 0. */
static void take_words(const struct memslot *s, uint64_t *bitmap, bool or)
{
	for (uint64_t w = 0; w < bitmap_words(s); w++) {
		uint64_t x = __atomic_exchange_n(&s->dirty_bitmap[w], 0,
						 __ATOMIC_ACQ_REL);

		bitmap[w] = or ? bitmap[w] | x : x;
	}
}

int tdp_vm_get_dirty_log(struct tdp_vm *vm, unsigned as_id, unsigned slot,
			 uint64_t *bitmap)
{
	const struct memslot *s;
	uint64_t words;
	int r;

	if (!vm || !bitmap || as_id >= vm->cfg.nr_as ||
	    slot >= TDP_MAX_MEMSLOTS)
		return -EINVAL;
	pthread_mutex_lock(&vm->slots_lock);
	r = log_slot(vm, as_id, slot, &s);
	if (r)
		goto out;
	words = bitmap_words(s);
	/* PML: every Dirty bit set before this point is in a vCPU's log
	 * or, once its guest-mode window ended, in the bitmap (or ring) */
	if (pml_mode(vm))
		vm_wait_guest_exits(vm);
	if (vm->cfg.flags & TDP_VM_MANUAL_PROTECT) {
		/* a snapshot; Dirty bits move into the log first (handed to
		 * the host, so nothing is lost) */
		if (dbit_mode(vm) && !pml_mode(vm)) {
			uint64_t *found = calloc(words, sizeof(*found));

			if (!found) {
				r = -ENOMEM;
				goto out;
			}
			protect(vm, s, 0, s->npages, NULL, found);
			for (uint64_t w = 0; w < words; w++)
				if (found[w])
					__atomic_fetch_or(&s->dirty_bitmap[w],
							  found[w],
							  __ATOMIC_ACQ_REL);
			free(found);
		}
		for (uint64_t w = 0; w < words; w++)
			bitmap[w] = __atomic_load_n(&s->dirty_bitmap[w],
						    __ATOMIC_ACQUIRE);
	} else if (dbit_mode(vm) && !pml_mode(vm)) {
		/* bits of leaves zapped so far, the Dirty bits still in
		 * leaves, then the bits of leaves zapped while the pass
		 * yielded; under the write lock, so no zap is half done */
		tdp_write_lock(&vm->mmu.lock);
		take_words(s, bitmap, false);
		protect_locked(vm, s, 0, s->npages, NULL, bitmap);
		take_words(s, bitmap, true);
		tdp_write_unlock(&vm->mmu.lock);
	} else {
		/* exchange, then write-protect (with PML: clear the Dirty bits
		 * of) the pages taken, in one write-locked section: a slow
		 * fault marks and maps entirely before or after.  With PML the
		 * log told which pages are Dirty, and a zap needs not hand its
		 * Dirty bits over (they were logged when set), so no bit is in
		 * flight outside the log */
		tdp_write_lock(&vm->mmu.lock);
		take_words(s, bitmap, false);
		protect_locked(vm, s, 0, s->npages, bitmap, NULL);
		tdp_write_unlock(&vm->mmu.lock);
	}
	stat_inc(vm->stats.dirty_harvests);
	stat_add(vm->stats.dirty_pages, popcount_words(bitmap, words));
out:
	pthread_mutex_unlock(&vm->slots_lock);
	return r;
}

int tdp_vm_clear_dirty_log(struct tdp_vm *vm, unsigned as_id, unsigned slot,
			   uint64_t first, uint64_t npages,
			   const uint64_t *bitmap)
{
	const struct memslot *s;
	uint64_t words, *mask;
	int r;

	if (!vm || !bitmap || as_id >= vm->cfg.nr_as ||
	    slot >= TDP_MAX_MEMSLOTS ||
	    !(vm->cfg.flags & TDP_VM_MANUAL_PROTECT) || first % 64 || !npages)
		return -EINVAL;
	pthread_mutex_lock(&vm->slots_lock);
	r = log_slot(vm, as_id, slot, &s);
	if (r)
		goto out;
	r = -EINVAL;
	if (first >= s->npages || npages > s->npages - first)
		goto out;
	if (npages % 64 && first + npages != s->npages)
		goto out;
	words = (npages + 63) / 64;
	r = -ENOMEM;
	mask = calloc(words, sizeof(*mask));
	if (!mask)
		goto out;
	memcpy(mask, bitmap, words * sizeof(*mask));
	if (npages % 64)
		mask[words - 1] &= (1ull << (npages % 64)) - 1;
	/* huge leaves first, so only the cleared pages are protected */
	split_range(vm, s, first, npages);
	tdp_write_lock(&vm->mmu.lock);
	for (uint64_t w = 0; w < words; w++)
		__atomic_fetch_and(&s->dirty_bitmap[first / 64 + w], ~mask[w],
				   __ATOMIC_ACQ_REL);
	protect_locked(vm, s, first, npages, mask, NULL);
	tdp_write_unlock(&vm->mmu.lock);
	stat_inc(vm->stats.dirty_harvests);
	free(mask);
	r = 0;
out:
	pthread_mutex_unlock(&vm->slots_lock);
	return r;
}
