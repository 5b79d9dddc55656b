/* SPDX-License-Identifier: MIT */
/*
 * dirty.c - the MMU side of dirty logging: write-protect and Dirty-bit
 * harvest passes, eager splitting of huge leaves, huge-page recovery, and
 * the fast page fault.  KVM: kvm_tdp_mmu_wrprot_slot,
 * kvm_tdp_mmu_clear_dirty_slot / _pt_masked, tdp_mmu_split_huge_pages,
 * kvm_tdp_mmu_recover_huge_pages, fast_page_fault.
 *
 * Locking and lifetime (per function in mmu.h):
 *  - the passes run with mmu_lock held for read by the caller, change
 *    entries only by compare-exchange (a lost exchange re-reads the entry
 *    and tries again), and yield through tdp_mmu_iter_cond_resched, which
 *    flushes what they owe first;
 *  - the fast fault holds no lock at all, only RCU: the leaf it changes
 *    may be zapped, frozen or replaced concurrently, and the exchange
 *    fails then;
 *  - a Dirty bit is handed to the host BEFORE it is cleared (I4): between
 *    the two a reclaim of the page sees it dirty either way;
 *  - the dirty log is marked BEFORE W is granted (I7): no write can go
 *    through a writable leaf whose page is not yet in the log;
 *  - direct roots only: private memory (mirror roots) is never logged,
 *    split or recovered (TDX does not support it), and the fast fault
 *    never touches a mirror entry (it would bypass the external table).
 */
#include <errno.h>

#include "assert.h"
#include "bitmap.h"
#include "mmu_internal.h"

int clear_leaf_bit(struct tdp_mmu *mmu, unsigned as_id, uint64_t *sptep,
		   uint64_t gfn, int level, uint64_t *old, uint64_t start,
		   uint64_t end, enum tdp_clear_kind k, const uint64_t *mask,
		   uint64_t *found, struct tdp_flush_ctx *ctx)
{
	uint64_t a = gfn > start ? gfn : start;
	uint64_t b = gfn + level_pages(level) < end ? gfn + level_pages(level)
						    : end;
	uint64_t new;

	if (!spte_is_present_leaf(*old, level))
		return 0;
	/* write-protect: also an MMU-writable leaf without W, which a fast
	 * fault may be about to make writable */
	if (k == CLEAR_W ? !spte_writable(*old) && !spte_mmu_writable(*old)
			 : !spte_dirty(*old))
		return 0;
	if (mask && !bitmap_any(mask, a - start, b - a))
		return 0;
	if (k == CLEAR_D && tdp_mmu_has_op(mmu, mark_dirty))
		tdp_mmu_op(mmu, mark_dirty, spte_pfn(*old), level_pages(level));
	new = k == CLEAR_W ? spte_log_wrprot(*old) : spte_mkclean(*old);
	if (tdp_mmu_set_sptep_atomic(mmu, as_id, sptep, gfn, level, old, new,
				     ctx))
		return -EBUSY;
	if (k == CLEAR_D) {
		/* a TLB entry may still allow writes without setting D
		 * again: flush before returning */
		if (!INJECTED(mmu->inject, INJ_DIRTY_CLEAR_NO_FLUSH))
			owe_flush(mmu, ctx);
		if (found)
			bitmap_set(found, a - start, b - a);
	}
	return 1;
}

/* The next run [*a, *b) of gfns from *@a on whose mask words (bit i is
 * gfn @start + i) are non-zero, within @end; false if there is none. */
static bool mask_run(const uint64_t *mask, uint64_t start, uint64_t end,
		     uint64_t *a, uint64_t *b)
{
	uint64_t w = (*a - start) / 64, nw = (end - start + 63) / 64;

	while (w < nw && !mask[w])
		w++;
	if (w == nw)
		return false;
	*a = start + w * 64;
	while (w < nw && mask[w])
		w++;
	*b = start + w * 64 < end ? start + w * 64 : end;
	return true;
}

uint64_t tdp_mmu_clear_bits(struct tdp_mmu *mmu, unsigned as_id,
			    uint64_t start, uint64_t end, enum tdp_clear_kind k,
			    const uint64_t *mask, uint64_t *found)
{
	struct tdp_flush_ctx ctx = { 0 };
	struct tdp_pt_page *root;
	uint64_t changed = 0;

	bool shared = tdp_lock_held_mode(&mmu->lock) == TDP_READ;

	tdp_assert_held(&mmu->lock);
	/* Dirty bits in an invalid root not yet zapped are records of writes
	 * too (its zap would hand them to the log later): visit it.  W needs
	 * only the valid roots: no vCPU writes through an invalid one. */
	for_each_root_yield_safe(&mmu->roots, root, (int)as_id,
				 k == CLEAR_W ? ROOT_DIRECT
					      : ROOT_DIRECT | ROOT_INVALID) {
		struct yield_state y;
		struct tdp_iter it;

		yield_init(&y, shared);
		tdp_rcu_read_lock();
		/* with a mask, only the runs of its non-zero words (KVM's
		 * clear_dirty_pt_masked walks per word too): a harvest fed
		 * by the log (PML, rings) visits the dirty pages, not all */
		for (uint64_t a = start, b; a < end; a = b) {
			b = end;
			if (mask && !mask_run(mask, start, end, &a, &b))
				break;
			for_each_tdp_pte(it, root, a, b) {
				int r;
retry:
				if (tdp_mmu_iter_cond_resched(mmu, &it, &ctx,
							      &y))
					continue;
				r = clear_leaf_bit(mmu, as_id, it.sptep,
						   it.gfn, it.level,
						   &it.old_spte, start, end, k,
						   mask, found, &ctx);
				if (r < 0)
					goto retry;
				changed += (uint64_t)r;
			}
		}
		if (ctx.flush || ctx.removed)
			tdp_mmu_flush_and_free(mmu, &ctx);
		tdp_rcu_read_unlock();
	}
	return changed;
}

/* ---------------------------------------------------------------- */
/* Eager split                                                       */
/* ---------------------------------------------------------------- */

struct refill {
	struct tdp_mmu *mmu;
	struct pt_cache *cache;
	int r;
};

static void refill_away(void *arg)
{
	struct refill *rf = arg;

	rf->r = pt_cache_topup(&rf->mmu->alloc, rf->cache, PT_CACHE_MAX);
}

/* The cache is empty: drop the lock (after the flush owed), allocate, and
 * take the lock again; the walk restarts at the current entry.  This is
 * progress by itself: the next split cannot run out. */
static int split_refill(struct tdp_mmu *mmu, struct tdp_iter *it,
			struct tdp_flush_ctx *ctx, struct pt_cache *cache)
{
	struct refill rf = { mmu, cache, 0 };

	if (ctx->flush || ctx->removed)
		tdp_mmu_flush_and_free(mmu, ctx);
	tdp_rcu_read_unlock();
	tdp_lock_yield(&mmu->lock, tdp_lock_held_mode(&mmu->lock), refill_away,
		       &rf);
	tdp_rcu_read_lock();
	tdp_iter_mark_yielded(it);
	return rf.r;
}

long tdp_mmu_split_huge_range(struct tdp_mmu *mmu, unsigned as_id,
			      uint64_t start, uint64_t end,
			      struct pt_cache *cache)
{
	struct tdp_flush_ctx ctx = { 0 };
	struct tdp_pt_page *root;
	long split = 0;

	/* read lock; write lock for the legacy engine */
	tdp_assert_held(&mmu->lock);
	for_each_root_yield_safe(&mmu->roots, root, (int)as_id, ROOT_DIRECT) {
		struct yield_state y;
		struct tdp_iter it;

		yield_init(&y, tdp_lock_held_mode(&mmu->lock) == TDP_READ);
		tdp_rcu_read_lock();
		for_each_tdp_pte_min_level(it, root, TDP_LEVEL_2M, start, end) {
			struct tdp_pt_page *sp;
retry:
			if (tdp_mmu_iter_cond_resched(mmu, &it, &ctx, &y))
				continue;
			/* a fast zap may have invalidated the root while the
			 * walk yielded (or refilled): no vCPU uses it now, and
			 * a table linked into it would twin one a vCPU built
			 * in the new root (the legacy engine's hash allows
			 * one valid page per key).  Stable while the lock is
			 * held: invalidation takes it for write. */
			if (root_invalid(root))
				break;
			if (it.level == TDP_LEVEL_4K ||
			    !spte_is_present_leaf(it.old_spte, it.level))
				continue;
			if (!cache->n) {
				if (split_refill(mmu, &it, &ctx, cache)) {
					tdp_rcu_read_unlock();
					root_iter_break(&mmu->roots, root);
					return -ENOMEM;
				}
				continue;
			}
			sp = pt_cache_take(cache);
			sp->gfn = it.gfn;
			sp->level = (int8_t)(it.level - 1);
			sp->as_id = (uint8_t)as_id;
			sp->ptep = it.sptep;
			/* children keep W, A and D: the log stays exact */
			for (unsigned i = 0; i < SPTE_ENT_PER_PAGE; i++)
				sp->spt[i] = make_small_spte(it.old_spte,
							     it.level, i);
			if (tdp_mmu_set_spte_atomic(mmu, &it, as_id,
						    make_table_spte(sp->spt),
						    &ctx)) {
				pt_free_page(sp); /* never reachable */
				goto retry;
			}
			account_new_table(mmu, sp);
			account_split(mmu, sp);
			split++;
			/* the walk now descends into the new table, so a
			 * 1 GiB leaf goes to 2 MiB and on to 4 KiB */
		}
		if (ctx.flush || ctx.removed)
			tdp_mmu_flush_and_free(mmu, &ctx);
		tdp_rcu_read_unlock();
	}
	return split;
}

/* ---------------------------------------------------------------- */
/* Huge-page recovery                                                */
/* ---------------------------------------------------------------- */

/* Any present leaf below the table entry @spte at @level, or 0. */
static uint64_t leaf_below(uint64_t spte, int level, uint64_t *leaf_index)
{
	uint64_t idx = 0;

	while (level > TDP_LEVEL_4K && spte_is_table(spte, level)) {
		const uint64_t *t = spte_to_table(spte);
		uint64_t found = 0;
		unsigned i;

		level--;
		for (i = 0; i < SPTE_ENT_PER_PAGE; i++) {
			uint64_t s = tdp_iter_load(&t[i]);

			if (spte_present(s)) {
				found = s;
				break;
			}
		}
		if (!found)
			return 0;
		idx = idx * SPTE_ENT_PER_PAGE + i;
		spte = found;
		if (spte_is_leaf(spte, level))
			break;
	}
	if (!spte_is_present_leaf(spte, level))
		return 0;
	*leaf_index = idx * level_pages(level); /* gfn offset of that leaf */
	return spte;
}

uint64_t tdp_mmu_recover_huge(struct tdp_mmu *mmu, unsigned as_id,
			      uint64_t start, uint64_t end,
			      int (*level_of)(void *arg, uint64_t gfn,
					      uint64_t *pfn, bool *writable),
			      bool (*stop)(void *arg, uint64_t gfn,
					   uint64_t npages),
			      void *arg,
			      uint64_t *flushes)
{
	struct tdp_flush_ctx ctx = { 0 };
	struct tdp_pt_page *root;
	uint64_t built = 0;
	uint64_t f0 = stat_read(mmu->stats->remote_tlb_flush);

	/* read lock; write lock for the legacy engine */
	tdp_assert_held(&mmu->lock);
	for_each_root_yield_safe(&mmu->roots, root, (int)as_id, ROOT_DIRECT) {
		struct yield_state y;
		struct tdp_iter it;

		yield_init(&y, tdp_lock_held_mode(&mmu->lock) == TDP_READ);
		tdp_rcu_read_lock();
		for_each_tdp_pte_min_level(it, root, TDP_LEVEL_2M, start, end) {
			uint64_t pfn, leaf, off, new;
			int max;
			bool w;
retry:
			if (tdp_mmu_iter_cond_resched(mmu, &it, &ctx, &y))
				continue;
			if (it.level > TDP_LEVEL_1G ||
			    !spte_is_table(it.old_spte, it.level) ||
			    it.gfn < start || tdp_iter_entry_end(&it) > end)
				continue;
			max = level_of(arg, it.gfn, &pfn, &w);
			if (max < it.level)
				continue;
			leaf = leaf_below(it.old_spte, it.level, &off);
			if (!leaf)
				continue;
			/* the leaf below must map the frame the host folio
			 * puts there; otherwise leave it to the faults */
			if (spte_pfn(leaf) != pfn + off)
				continue;
			if (stop(arg, it.gfn, level_pages(it.level)))
				continue;
			/* NX huge pages: a huge leaf is never executable */
			new = make_leaf_spte(pfn, it.level, w,
					     spte_host_writable(leaf),
					     spte_executable(leaf) &&
						     !mmu->nx_huge_pages,
					     false);
			if (tdp_mmu_set_spte_atomic(mmu, &it, as_id, new,
						    &ctx))
				goto retry;
			built++;
		}
		if (ctx.flush || ctx.removed)
			tdp_mmu_flush_and_free(mmu, &ctx);
		tdp_rcu_read_unlock();
	}
	if (flushes)
		*flushes = stat_read(mmu->stats->remote_tlb_flush) - f0;
	return built;
}

/* ---------------------------------------------------------------- */
/* Fast page fault                                                   */
/* ---------------------------------------------------------------- */

int tdp_mmu_fast_fault(struct tdp_mmu *mmu, struct tdp_pt_page *root,
		       uint64_t gfn, bool logged, void (*mark)(void *arg),
		       void *arg)
{
	struct tdp_iter it;
	int r = -EAGAIN;

	TDP_ASSERT(!root->mirror); /* would bypass the external table */
	tdp_rcu_read_lock();
	for_each_tdp_pte(it, root, gfn, gfn + 1) {
		uint64_t s = it.old_spte;

		if (!spte_is_present_leaf(s, it.level))
			continue;
		if (spte_writable(s)) {
			r = 0;
			break;
		}
		if (!spte_mmu_writable(s) || !spte_host_writable(s))
			break;
		/* one huge leaf made writable would log only one page */
		if (logged && it.level > TDP_LEVEL_4K &&
		    !INJECTED(mmu->inject, INJ_FAST_FAULT_HUGE_WRITABLE))
			break;
		if (mark)
			mark(arg);
		if (__atomic_compare_exchange_n(it.sptep, &s, spte_mkwrite(s),
						false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			r = 1;
		break;
	}
	tdp_rcu_read_unlock();
	return r;
}
