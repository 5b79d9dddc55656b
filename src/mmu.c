/* SPDX-License-Identifier: MIT */
/*
 * mmu.c - TDP MMU operations.  The rules per operation are in mmu.h; the
 * rules for entries (I4) are:
 *  - under the read lock every change is a compare-exchange against the
 *    iterator's snapshot; failure means someone else changed the entry and
 *    the caller retries;
 *  - a frozen entry is written only by the thread that froze it;
 *  - under the write lock a present leaf is still changed with an atomic
 *    exchange, because the hardware walker sets A/D on it without the lock;
 *    the exchange returns the real old value, which is what gets accounted.
 */
#include "mmu.h"
#include "mmu_internal.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "assert.h"

int tdp_mmu_init(struct tdp_mmu *mmu, int root_level, int max_level,
		 struct vm_stats *stats, const struct tdp_mmu_ops *ops,
		 void *ops_arg)
{
	int r;

	memset(mmu, 0, sizeof(*mmu));
	mmu->root_level = root_level;
	mmu->max_level = max_level;
	mmu->stats = stats;
	mmu->ops = ops;
	mmu->ops_arg = ops_arg;
	r = tdp_lock_init(&mmu->lock);
	if (r)
		return r;
	r = pt_alloc_init(&mmu->alloc);
	if (r)
		goto err_lock;
	r = roots_init(&mmu->roots, &mmu->alloc, &mmu->lock);
	if (r)
		goto err_alloc;
	mmu->alloc.inject = &mmu->inject;
	mmu->roots.inject = &mmu->inject;
	mmu->lock.br.inject = &mmu->inject;
	rmap_ctx_init(&mmu->rmap, &mmu->lock, &mmu->inject);
	return 0;
err_alloc:
	pt_alloc_destroy(&mmu->alloc);
err_lock:
	tdp_lock_destroy(&mmu->lock);
	return r;
}

void tdp_mmu_destroy(struct tdp_mmu *mmu)
{
	if (mmu->eops)
		mmu->eops->destroy(mmu);
	roots_destroy(&mmu->roots);
	pt_alloc_destroy(&mmu->alloc);
	tdp_lock_destroy(&mmu->lock);
}

/* free-before-flush, rcu-exit-before-flush (inject.h): the removed
 * tables go back to the allocator at once. */
TDP_INJECT_FN void inj_free_removed_now(struct tdp_flush_ctx *ctx)
{
	struct tdp_pt_page *sp, *next;

	for (sp = ctx->removed; sp; sp = next) {
		next = sp->next;
		pt_free_page(sp);
	}
	ctx->removed = NULL;
}

void tdp_mmu_flush_and_free(struct tdp_mmu *mmu, struct tdp_flush_ctx *ctx)
{
	struct tdp_pt_page *sp, *next;

	tdp_assert_held(&mmu->lock);
	/* free-before-flush: the tables go back to the allocator before any
	 * vCPU has dropped its cached pointers to them */
	if (INJECTED(mmu->inject, INJ_FREE_BEFORE_FLUSH))
		inj_free_removed_now(ctx);
	if ((ctx->flush || ctx->removed) && !ctx->no_flush) {
		if (tdp_mmu_has_op(mmu, flush_remote_tlbs))
			mmu->ops->flush_remote_tlbs(mmu->ops_arg);
		tdp_lock_paid_flush(&mmu->lock);
	}
	ctx->flush = false;
	for (sp = ctx->removed; sp; sp = next) {
		next = sp->next;
		sp->next = NULL;
		pt_free_page_rcu(sp);
	}
	ctx->removed = NULL;
}

/* ---------------------------------------------------------------- */
/* Entry writes                                                      */
/* ---------------------------------------------------------------- */

/* Can bits of this entry change without mmu_lock? (spte.h) */
static bool spte_needs_atomic_write(uint64_t spte, int level)
{
	return spte_is_present_leaf(spte, level);
}

/* Write lock: set *sptep from @old to @new; returns the real old value. */
static uint64_t write_spte(struct tdp_mmu *mmu, uint64_t *sptep, uint64_t old,
			   uint64_t new, int level)
{
	if (spte_needs_atomic_write(old, level)) {
		if (!INJECTED(mmu->inject, INJ_PLAIN_STORE_LOSES_DIRTY))
			return __atomic_exchange_n(sptep, new,
						   __ATOMIC_ACQ_REL);
		if (!spte_dirty(old))
			usleep(200); /* widen: hardware may set D now */
	}
	__atomic_store_n(sptep, new, __ATOMIC_RELEASE);
	return old;
}

/* Write-locked update through an iterator, accounted. */
static void tdp_mmu_iter_set_spte(struct tdp_mmu *mmu, struct tdp_iter *it,
				  unsigned as_id, uint64_t new,
				  struct tdp_flush_ctx *ctx)
{
	tdp_assert_held_write(&mmu->lock);
	TDP_ASSERT(!spte_frozen(it->old_spte) && !spte_frozen(new));
	if (mmu->hooks.zap_before_write)
		mmu->hooks.zap_before_write(mmu->hooks.arg, it->sptep);
	it->old_spte = write_spte(mmu, it->sptep, it->old_spte, new, it->level);
	handle_changed_spte(mmu, as_id, it->sptep, it->gfn, it->old_spte, new,
			    it->level, ctx);
	it->old_spte = new;
}

/* ---------------------------------------------------------------- */
/* Mirror entries (mmu.h; I11)                                       */
/* ---------------------------------------------------------------- */

/* The external table refused: KVM_BUG_ON.  Counted by the table; the VM
 * is dead from now on (vCPU accesses fail with -EIO). */
static void ext_refused(struct tdp_mmu *mmu, int err, const char *op,
			uint64_t gfn, int level)
{
	if (!atomic_exchange(&mmu->dead, true))
		fprintf(stderr,
			"tdpmmu: external table refused %s of gfn %#llx "
			"level %d (%d): the VM is dead\n",
			op, (unsigned long long)gfn, level, err);
}

/*
 * A mirror entry goes from not present to present (a table or a leaf):
 * freeze it, make the change in the external table, then publish the new
 * value, or put the old one back if the table refused.  Read lock or
 * write lock; -EBUSY if the freeze lost a race (it->old_spte refreshed).
 */
static int set_mirror_present(struct tdp_mmu *mmu, struct tdp_iter *it,
			      uint64_t new)
{
	uint64_t old = it->old_spte;
	int r;

	if (!__atomic_compare_exchange_n(it->sptep, &it->old_spte, SPTE_FROZEN,
					 false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return -EBUSY;
	if (spte_is_leaf(new, it->level))
		r = ext_set_leaf(mmu->ext, it->gfn, it->level, spte_pfn(new));
	else
		r = ext_link_table(mmu->ext, it->gfn, it->level);
	if (r) {
		__atomic_store_n(it->sptep, old, __ATOMIC_RELEASE);
		it->old_spte = old;
		ext_refused(mmu, r, "install", it->gfn, it->level);
		return -EBUSY;
	}
	__atomic_store_n(it->sptep, new, __ATOMIC_RELEASE);
	return 0;
}

/* A mirror leaf went away: remove it from the external table, which
 * refuses unless mmu_lock is held for write. */
static void remove_mirror_leaf(struct tdp_mmu *mmu, uint64_t gfn, uint64_t old,
			       int level)
{
	bool wl = tdp_lock_held_mode(&mmu->lock) == TDP_WRITE;
	int r = ext_remove_leaf(mmu->ext, gfn, level, spte_pfn(old), wl);

	if (r)
		ext_refused(mmu, r, "leaf removal", gfn, level);
}

int tdp_mmu_set_sptep_atomic(struct tdp_mmu *mmu, unsigned as_id,
			     uint64_t *sptep, uint64_t gfn, int level,
			     uint64_t *old, uint64_t new,
			     struct tdp_flush_ctx *ctx)
{
	uint64_t was = *old;

	tdp_assert_held(&mmu->lock);
	TDP_ASSERT(!spte_frozen(was));
	if (!__atomic_compare_exchange_n(sptep, old, new, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return -EBUSY;
	handle_changed_spte(mmu, as_id, sptep, gfn, was, new, level, ctx);
	*old = new;
	return 0;
}

/* Compare-exchange update (any lock mode).  On failure returns -EBUSY and
 * refreshes it->old_spte. */
int tdp_mmu_set_spte_atomic(struct tdp_mmu *mmu, struct tdp_iter *it,
			    unsigned as_id, uint64_t new,
			    struct tdp_flush_ctx *ctx)
{
	uint64_t old = it->old_spte;

	if (!sptep_to_sp(it->sptep)->mirror || spte_present(old) ||
	    !spte_present(new))
		return tdp_mmu_set_sptep_atomic(mmu, as_id, it->sptep, it->gfn,
						it->level, &it->old_spte, new,
						ctx);
	tdp_assert_held(&mmu->lock);
	TDP_ASSERT(!spte_frozen(old));
	if (set_mirror_present(mmu, it, new))
		return -EBUSY;
	handle_changed_spte(mmu, as_id, it->sptep, it->gfn, old, new, it->level,
			    ctx);
	it->old_spte = new;
	return 0;
}

/* ---------------------------------------------------------------- */
/* Accounting                                                        */
/* ---------------------------------------------------------------- */

/* A leaf lost a permission or its frame: a flush is owed before the lock
 * is released (I6; checked by the lock layer).  Not for invalid roots,
 * which no vCPU can use any more. */
void owe_flush(struct tdp_mmu *mmu, struct tdp_flush_ctx *ctx)
{
	if (!ctx->flush && !ctx->no_flush)
		tdp_lock_owe_flush(&mmu->lock);
	ctx->flush = true;
}

void account_leaf(struct tdp_mmu *mmu, int level, long delta)
{
	if (level <= TDP_LEVEL_1G)
		stat_add(stat_slot(mmu->stats)->pages[level], delta);
}

/* The root above the linked table @sp. */
static struct tdp_pt_page *root_of(struct tdp_pt_page *sp)
{
	while (!sp->is_root)
		sp = sptep_to_sp(sp->ptep);
	return sp;
}

void account_new_table(struct tdp_mmu *mmu, struct tdp_pt_page *sp)
{
	/* faults and splits check under mmu_lock that their root is valid:
	 * a table in an invalid root is wasted, and in the legacy engine a
	 * twin of a valid shadow page (sp_hash.h) */
	TDP_ASSERT_MSG(!root_invalid(root_of(sp)),
		       "table for gfn %#llx level %d linked into an invalid "
		       "root",
		       (unsigned long long)sp->gfn, sp->level);
	stat_inc(stat_slot(mmu->stats)->pt_pages);
	if (mmu->eops)
		mmu->eops->table_linked(mmu, sp);
}

void account_split(struct tdp_mmu *mmu, struct tdp_pt_page *sp)
{
	account_leaf(mmu, sp->level, SPTE_ENT_PER_PAGE);
	if (mmu->eops)
		for (unsigned i = 0; i < SPTE_ENT_PER_PAGE; i++)
			mmu->eops->leaf_changed(
				mmu, sp->as_id, &sp->spt[i],
				sp->gfn + i * level_pages(sp->level), sp->level,
				true);
}

/* @sp was unlinked by this thread: freeze and account its children. */
/* plain-store-loses-dirty: the removed table as it was read, before the
 * children are written; the window is held open while a present leaf
 * without D is in it (hardware may set D meanwhile), or always when
 * @shared (under the read lock faults may write any child). */
static uint64_t *plain_store_snapshot(struct tdp_pt_page *sp, bool shared)
{
	uint64_t *snap = malloc(SPTE_ENT_PER_PAGE * sizeof(*snap));
	bool window = shared;

	if (!snap)
		return NULL;
	for (int i = 0; i < SPTE_ENT_PER_PAGE; i++) {
		snap[i] = __atomic_load_n(&sp->spt[i], __ATOMIC_ACQUIRE);
		if (spte_frozen(snap[i])) {
			free(snap); /* another thread holds one: no window */
			return NULL;
		}
		window |= spte_is_present_leaf(snap[i], sp->level) &&
			  !spte_dirty(snap[i]);
	}
	if (window)
		usleep(shared ? 2000 : 500);
	return snap;
}

static void handle_removed_pt(struct tdp_mmu *mmu, struct tdp_pt_page *sp,
			      struct tdp_flush_ctx *ctx)
{
	int level = sp->level;
	uint64_t *snap = NULL;

	if (INJECTED(mmu->inject, INJ_PLAIN_STORE_LOSES_DIRTY) &&
	    tdp_lock_held_mode(&mmu->lock) == TDP_WRITE)
		snap = plain_store_snapshot(sp, false);
	if (INJECTED(mmu->inject, INJ_REMOVAL_LOAD_STORE) &&
	    tdp_lock_held_mode(&mmu->lock) == TDP_READ)
		snap = plain_store_snapshot(sp, true);
	for (int i = 0; i < SPTE_ENT_PER_PAGE; i++) {
		uint64_t *sptep = &sp->spt[i];
		uint64_t gfn = sp->gfn + (uint64_t)i * level_pages(level);
		uint64_t old;

		/* Another thread may hold the child frozen for a moment
		 * (read-lock protocol); wait until it lets go, then take it. */
		if (snap) {
			/* KVM before ba3a6120a4e7: "we own the removed table
			 * under the write lock": what was read is written
			 * over with a plain store.  removal-load-store: the
			 * same under the read lock, where faults, fast faults
			 * and aging that walked in before the unlink write
			 * too (blind spot 2) */
			old = snap[i];
			__atomic_store_n(sptep, SPTE_FROZEN, __ATOMIC_RELEASE);
		} else
			for (;;) {
				old = __atomic_exchange_n(sptep, SPTE_FROZEN,
							  __ATOMIC_ACQ_REL);
				if (!spte_frozen(old))
					break;
				sched_yield();
			}
		if (mmu->hooks.child_frozen)
			mmu->hooks.child_frozen(mmu->hooks.arg, sp,
						(unsigned)i);
		handle_changed_spte(mmu, sp->as_id, sptep, gfn, old,
				    SPTE_FROZEN, level, ctx);
	}
	free(snap);
	if (sp->mirror) {
		/* its leaves are gone from the external table: the table
		 * itself goes now (write lock, or the table refuses) */
		int r = ext_free_table(mmu->ext, sp->gfn, level + 1,
				       tdp_lock_held_mode(&mmu->lock) ==
					       TDP_WRITE);

		if (r)
			ext_refused(mmu, r, "table free", sp->gfn, level + 1);
	}
	stat_add(stat_slot(mmu->stats)->pt_pages, -1);
	if (sp->nx_disallowed)
		atomic_fetch_sub(&mmu->nx_tables, 1);
	if (mmu->eops)
		mmu->eops->table_unlinked(mmu, sp);
	sp->next = ctx->removed;
	ctx->removed = sp;
}

/*
 * The one place every entry change is accounted: leaf counts per level,
 * removed tables, flush owed.  A table is removed iff the entry was a
 * present table and is now not present or a leaf (KVM c8e5a0d0e9bc).
 */
void handle_changed_spte(struct tdp_mmu *mmu, unsigned as_id, uint64_t *sptep,
			 uint64_t gfn, uint64_t old, uint64_t new, int level,
			 struct tdp_flush_ctx *ctx)
{
	bool was_leaf = spte_is_present_leaf(old, level);
	bool is_leaf = spte_is_present_leaf(new, level);

	if (old == new)
		return;
	/* the legacy engine's reverse maps follow every leaf (legacy.c) */
	if (mmu->eops && was_leaf != is_leaf)
		mmu->eops->leaf_changed(mmu, as_id, sptep, gfn, level, is_leaf);
	TDP_ASSERT_MSG(!(was_leaf && is_leaf && spte_pfn(old) != spte_pfn(new)),
		       "leaf of gfn %#llx changed frame %#llx -> %#llx without "
		       "a zap (missed invalidation)",
		       (unsigned long long)gfn,
		       (unsigned long long)spte_pfn(old),
		       (unsigned long long)spte_pfn(new));
	TDP_ASSERT_MSG(
		!(spte_is_table(old, level) && spte_is_table(new, level)),
		"table entry of gfn %#llx replaced by another table",
		(unsigned long long)gfn);
	if (is_leaf)
		TDP_ASSERT(spte_writable_ok(new));

	/* the Dirty-bit ledger (test instrumentation, mmu.h): a split
	 * moves D to the children, which carry it on */
	if (!(was_leaf && spte_is_table(new, level))) {
		bool was_d = was_leaf && spte_dirty(old);
		bool is_d = is_leaf && spte_dirty(new);

		if (was_d && !is_d)
			dirty_ledger_add(mmu, spte_pfn(old), level_pages(level),
					 -1);
		else if (is_d && !was_d)
			dirty_ledger_add(mmu, spte_pfn(new), level_pages(level),
					 1);
	}
	if (was_leaf && spte_is_table(new, level)) {
		/* A split: the caller filled the table with the same
		 * translation (and accounts the children); no flush owed. */
		account_leaf(mmu, level, -1);
	} else if (was_leaf && !is_leaf) {
		/* the table's header, read only here: every change of an
		 * entry comes through this function */
		if (sptep_to_sp(sptep)->mirror)
			remove_mirror_leaf(mmu, gfn, old, level);
		account_leaf(mmu, level, -1);
		stat_inc(mmu->stats->zapped_leaves);
		if (spte_dirty(old)) {
			/* the only record that the guest wrote these frames
			 * is about to go: hand it to the host (I4) and, when
			 * Dirty bits are the dirty log, to the log (I7) */
			stat_inc(mmu->stats->zapped_dirty);
			if (tdp_mmu_has_op(mmu, mark_dirty))
				tdp_mmu_op(mmu, mark_dirty, spte_pfn(old),
					   level_pages(level));
			if (tdp_mmu_has_op(mmu, mark_gfn_dirty))
				tdp_mmu_op(mmu, mark_gfn_dirty, as_id,
					   gfn_round_for_level(gfn, level),
					   level_pages(level));
		}
		if (spte_accessed(old) && tdp_mmu_has_op(mmu, mark_accessed))
			/* and the record that it was used (I8) */
			tdp_mmu_op(mmu, mark_accessed, spte_pfn(old),
				   level_pages(level));
		owe_flush(mmu, ctx);
	} else if (!was_leaf && is_leaf) {
		account_leaf(mmu, level, 1);
	} else if (was_leaf && leaf_change_needs_flush(old, new)) {
		owe_flush(mmu, ctx);
	}
	if (spte_is_table(old, level))
		handle_removed_pt(mmu, sptep_to_sp(spte_to_table(old)), ctx);
}

/* ---------------------------------------------------------------- */
/* Yielding                                                          */
/* ---------------------------------------------------------------- */

/* A walk yields when a thread waits for mmu_lock, or when it has held the
 * lock for longer than this (checked every YIELD_CHECK_STEPS entries). */
#define YIELD_BUDGET_NS	  1000000ull
#define YIELD_CHECK_STEPS 64

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void yield_init(struct yield_state *y, bool shared)
{
	y->since_ns = mono_ns();
	y->steps = 0;
	y->shared = shared;
	y->must = false;
	y->away = NULL;
	y->away_arg = NULL;
}

static bool yield_wanted(struct tdp_mmu *mmu, struct yield_state *y)
{
	if (mmu->hooks.force_yield && mmu->hooks.force_yield(mmu->hooks.arg))
		return true;
	if (tdp_lock_needbreak_held(&mmu->lock,
				    y->shared ? TDP_READ : TDP_WRITE))
		return true;
	if (++y->steps < YIELD_CHECK_STEPS)
		return false;
	y->steps = 0;
	return mono_ns() - y->since_ns > YIELD_BUDGET_NS;
}

/* Runs while a walk has mmu_lock dropped: the test hook, or a widened
 * window for the yield-without-flush bug (inject.h). */
static void yield_away(void *arg)
{
	struct tdp_mmu *mmu = arg;

	if (mmu->hooks.in_yield)
		mmu->hooks.in_yield(mmu->hooks.arg);
	else
		usleep(200);
}

/*
 * Yield mmu_lock if someone waits for it or the time budget is spent, but
 * only after forward progress since the last yield (I9; KVM's yielded_gfn),
 * and only after doing the flush and frees the walk owes, while still
 * inside the RCU section (I2, I6; KVM a835429cda91).  Returns true if it
 * yielded: the caller must `continue` so the iterator restarts from the
 * root.
 */
bool tdp_mmu_iter_cond_resched(struct tdp_mmu *mmu, struct tdp_iter *it,
			       struct tdp_flush_ctx *ctx, struct yield_state *y)
{
	if (it->next_gfn == it->yielded_gfn &&
	    !INJECTED(mmu->inject, INJ_YIELD_WITHOUT_PROGRESS))
		return false;
	if (!yield_wanted(mmu, y) && !y->must)
		return false;
	/* checked where it matters, when the lock is dropped (not on every
	 * step: a walk of a sparse root takes thousands of them) */
	TDP_ASSERT(tdp_lock_held_mode(&mmu->lock) ==
		   (y->shared ? TDP_READ : TDP_WRITE));
	y->must = false;
	if (!INJECTED(mmu->inject, INJ_YIELD_WITHOUT_FLUSH) || ctx->removed)
		tdp_mmu_flush_and_free(mmu, ctx);
	tdp_rcu_read_unlock();
	stat_inc(mmu->stats->mmu_yields);
	if (y->away)
		tdp_lock_yield(&mmu->lock, y->shared ? TDP_READ : TDP_WRITE,
			       y->away, y->away_arg);
	else
		tdp_lock_yield(&mmu->lock, y->shared ? TDP_READ : TDP_WRITE,
			       mmu->hooks.in_yield ||
					       INJECTED(mmu->inject,
							INJ_YIELD_WITHOUT_FLUSH)
				       ? yield_away
				       : NULL,
			       mmu);
	tdp_rcu_read_lock();
	tdp_iter_mark_yielded(it);
	y->since_ns = mono_ns();
	y->steps = 0;
	return true;
}

/* ---------------------------------------------------------------- */
/* Map                                                               */
/* ---------------------------------------------------------------- */

static bool leaf_allows(uint64_t spte, const struct tdp_fault *f)
{
	if (f->write && !spte_writable(spte))
		return false;
	if (f->exec && !spte_executable(spte))
		return false;
	return spte_readable(spte);
}

static enum tdp_map_ret map_target_level(struct tdp_mmu *mmu,
					 struct tdp_iter *it,
					 const struct tdp_fault *f,
					 struct tdp_flush_ctx *ctx)
{
	uint64_t pfn = f->pfn & ~(level_pages(it->level) - 1);
	uint64_t new =
		make_leaf_spte(pfn, it->level, f->map_writable,
			       f->host_writable, f->executable, f->write);

	if (f->mmio) {
		new = make_mmio_spte(f->mmio_gen);
		if (it->old_spte == new)
			return MAP_SPURIOUS;
		if (tdp_mmu_set_spte_atomic(mmu, it, f->as_id, new, ctx))
			return MAP_RETRY;
		return MAP_FIXED;
	}

	if (f->prefetch) /* no access yet (KVM's prefetch) */
		new = spte_mkold(new);
	if (f->wrprot)
		new = spte_mkreadonly(new);

	if (mmu->hooks.map_before_set)
		mmu->hooks.map_before_set(mmu->hooks.arg, it->sptep);
	if (spte_is_present_leaf(it->old_spte, it->level)) {
		TDP_ASSERT_MSG(spte_pfn(it->old_spte) == pfn,
			       "gfn %#llx mapped to frame %#llx, fault wants "
			       "%#llx: missed invalidation",
			       (unsigned long long)it->gfn,
			       (unsigned long long)spte_pfn(it->old_spte),
			       (unsigned long long)pfn);
		if (leaf_allows(it->old_spte, f))
			return MAP_SPURIOUS;
		/* Permission upgrade: keep what hardware recorded. */
		new = spte_keep_ad(new, it->old_spte);
	}
	if (tdp_mmu_set_spte_atomic(mmu, it, f->as_id, new, ctx))
		return MAP_RETRY;
	return MAP_FIXED;
}

enum tdp_map_ret tdp_mmu_map(struct tdp_mmu *mmu, struct tdp_pt_page *root,
			     const struct tdp_fault *f, struct pt_cache *cache)
{
	struct tdp_flush_ctx ctx = {0};
	enum tdp_map_ret ret = MAP_RETRY;
	int goal = f->goal_level; /* lowered below an NX table */
	struct tdp_iter it;

	tdp_assert_held(&mmu->lock);
	TDP_ASSERT(!root_invalid(root));
	TDP_ASSERT(
		!(root->mirror && (f->goal_level != TDP_LEVEL_4K || f->mmio)));
	tdp_rcu_read_lock();
	for_each_tdp_pte(it, root, f->gfn, f->gfn + 1)
	{
		struct tdp_pt_page *sp;
		bool split;

		if (spte_frozen(it.old_spte))
			break;
		/* KVM's disallowed_hugepage_adjust: a table that a fetch put
		 * where a huge leaf could be stays; the fault maps below it,
		 * rather than zap the executable leaves and meet the fetch
		 * again (recovery takes such tables away, nx.c) */
		if (it.level == goal && it.level > TDP_LEVEL_4K &&
		    spte_is_table(it.old_spte, it.level) &&
		    sptep_to_sp(spte_to_table(it.old_spte))->nx_disallowed) {
			goal--;
			continue;
		}
		if (it.level == goal) {
			ret = map_target_level(mmu, &it, f, &ctx);
			break;
		}
		if (spte_is_table(it.old_spte, it.level))
			continue;

		/* Need a table here: the entry is empty, or a huge leaf that
		 * must be split for a smaller mapping (same translation, so
		 * no flush is owed). */
		split = spte_is_present_leaf(it.old_spte, it.level);
		sp = pt_cache_take(cache);
		sp->gfn = gfn_round_for_level(f->gfn, it.level);
		sp->level = (int8_t)(it.level - 1);
		sp->as_id = (uint8_t)f->as_id;
		sp->mirror = root->mirror;
		sp->ptep = it.sptep;
		sp->nx_disallowed = f->nx_req_level >= it.level;
		/* mirror trees map 4 KiB only: never split there */
		TDP_ASSERT(!(root->mirror && split));
		if (split)
			for (unsigned i = 0; i < SPTE_ENT_PER_PAGE; i++)
				sp->spt[i] = make_small_spte(it.old_spte,
							     it.level, i);
		if (tdp_mmu_set_spte_atomic(mmu, &it, f->as_id,
					    make_table_spte(sp->spt), &ctx)) {
			pt_free_page(sp); /* never reachable */
			break;
		}
		account_new_table(mmu, sp);
		if (sp->nx_disallowed)
			atomic_fetch_add(&mmu->nx_tables, 1);
		if (split)
			account_split(mmu, sp);
	}
	/* A huge leaf that replaced a table: flush before the removed
	 * tables can be freed, inside this RCU section (I2). */
	if (ctx.flush || ctx.removed)
		tdp_mmu_flush_and_free(mmu, &ctx);
	tdp_rcu_read_unlock();
	return ret;
}
/* rcu-exit-before-flush (inject.h): leave the RCU section with the flush
 * still owed; the frees run when the grace period ends, which here is at
 * once (no reader is left to wait for), and the flush comes later, from
 * the caller. */
TDP_INJECT_FN void inj_rcu_exit_before_flush(struct tdp_mmu *mmu,
					     struct tdp_flush_ctx *ctx)
{
	owe_flush(mmu, ctx);
	tdp_rcu_read_unlock();
	tdp_synchronize_rcu();
	inj_free_removed_now(ctx);
	usleep(2000); /* widen the window before the late flush */
}

/* ---------------------------------------------------------------- */
/* Zap                                                               */
/* ---------------------------------------------------------------- */

/* Zap the entry at @it: a store under the write lock, a compare-exchange
 * under the read lock (@shared).  false if the exchange lost (it->old_spte
 * re-read): the caller retries the entry. */
static bool zap_spte(struct tdp_mmu *mmu, struct tdp_iter *it,
		     unsigned as_id, bool shared, struct tdp_flush_ctx *ctx)
{
	if (!shared) {
		tdp_mmu_iter_set_spte(mmu, it, as_id, SPTE_NONPRESENT, ctx);
		return true;
	}
	return !tdp_mmu_set_spte_atomic(mmu, it, as_id, SPTE_NONPRESENT, ctx);
}

/*
 * Zap [start, end) in one root: every leaf that intersects the range, and
 * every table whose whole range lies inside it (so unmapping a large range
 * also gives its tables back).  Write lock, or read lock with
 * compare-exchanges (a lost one re-reads the entry and tries again).
 * Removed tables are flushed and freed before this root's RCU section
 * ends (seed 004: one section per root; I2).
 */
static void zap_range_root(struct tdp_mmu *mmu, struct tdp_pt_page *root,
			   uint64_t start, uint64_t end, bool can_yield,
			   struct tdp_flush_ctx *ctx)
{
	bool shared = tdp_lock_held_mode(&mmu->lock) == TDP_READ;
	struct yield_state y;
	struct tdp_iter it;

	yield_init(&y, shared);
	tdp_rcu_read_lock();
	for_each_tdp_pte(it, root, start, end)
	{
	retry:
		if (can_yield && tdp_mmu_iter_cond_resched(mmu, &it, ctx, &y))
			continue;
		if (!spte_present(it.old_spte))
			continue;
		if (!spte_is_leaf(it.old_spte, it.level) &&
		    (it.gfn < start || tdp_iter_entry_end(&it) > end))
			continue; /* partly covered table: descend */
		if (!zap_spte(mmu, &it, root->as_id, shared, ctx))
			goto retry;
	}
	if (ctx->removed && INJECTED(mmu->inject, INJ_RCU_EXIT_BEFORE_FLUSH)) {
		inj_rcu_exit_before_flush(mmu, ctx);
		return;
	}
	if (ctx->removed)
		tdp_mmu_flush_and_free(mmu, ctx);
	tdp_rcu_read_unlock();
}

/*
 * NX huge page recovery (KVM's kvm_recover_nx_huge_pages): zap the entries
 * that link up to @budget tables flagged nx_disallowed, in every valid
 * direct root, so that the next faults there may map huge (non-executable)
 * leaves again.  Read lock (compare-exchanges, as KVM since 2025) or write
 * lock (the legacy engine).  Yields; flushes what it zapped before
 * returning.  Returns how many it zapped.
 */
uint64_t tdp_mmu_zap_nx_tables(struct tdp_mmu *mmu, uint64_t budget)
{
	bool shared = tdp_lock_held_mode(&mmu->lock) == TDP_READ;
	struct tdp_flush_ctx ctx = {0};
	struct tdp_pt_page *root;
	uint64_t zapped = 0;

	tdp_assert_held(&mmu->lock);
	for_each_root_yield_safe(&mmu->roots, root, -1, ROOT_DIRECT) {
		uint64_t end = tdp_mmu_max_gfn(mmu);
		struct yield_state y;
		struct tdp_iter it;

		if (zapped >= budget) {
			root_iter_break(&mmu->roots, root);
			break;
		}
		yield_init(&y, shared);
		tdp_rcu_read_lock();
		for_each_tdp_pte_min_level(it, root, TDP_LEVEL_2M, 0, end)
		{
		retry:
			if (zapped >= budget)
				break;
			if (tdp_mmu_iter_cond_resched(mmu, &it, &ctx, &y))
				continue;
			if (it.old_spte == SPTE_NONPRESENT)
				tdp_iter_skip_empty(&it);
			if (!spte_is_table(it.old_spte, it.level) ||
			    !sptep_to_sp(spte_to_table(it.old_spte))
				     ->nx_disallowed)
				continue;
			if (!zap_spte(mmu, &it, root->as_id, shared, &ctx))
				goto retry;
			zapped++;
		}
		if (ctx.removed || ctx.flush)
			tdp_mmu_flush_and_free(mmu, &ctx);
		tdp_rcu_read_unlock();
	}
	return zapped;
}

void tdp_mmu_zap_gfn_range(struct tdp_mmu *mmu, int as_id, uint64_t start,
			   uint64_t end, unsigned types, bool can_yield,
			   struct tdp_flush_ctx *ctx)
{
	struct tdp_pt_page *root;

	tdp_assert_held(&mmu->lock);
	for_each_root_yield_safe(&mmu->roots, root, as_id, types)
		zap_range_root(mmu, root, start, end, can_yield, ctx);
}

/*
 * Zap a whole root: first every entry at 1 GiB level, then every top-level
 * entry, so that the walk reaches a yield point between 1 GiB subtrees
 * (KVM's multi-pass tdp_mmu_zap_root).  The walk is not bounded by any
 * memslot: it visits every entry of the root (KVM 524a1e4e381f).
 * @shared: mmu_lock is held for read, so entries are compare-exchanged and
 * removed tables frozen child by child (a lost exchange re-reads and
 * retries the same entry).
 */
static void zap_root(struct tdp_mmu *mmu, struct tdp_pt_page *root, bool shared,
		     struct tdp_flush_ctx *ctx)
{
	int passes[2] = {TDP_LEVEL_1G, root->level};
	uint64_t end = tdp_mmu_max_gfn(mmu);
	bool bounded = INJECTED(mmu->inject, INJ_TEARDOWN_BELOW_MAX_GFN);

	TDP_ASSERT(root_invalid(root) && ctx->no_flush);
	if (bounded) /* KVM 524a1e4e381f: bounded by the memslots */
		end = mmu->max_slot_gfn;
	for (int p = 0; p < 2; p++) {
		int zap_level = passes[p];
		struct yield_state y;
		struct tdp_iter it;

		yield_init(&y, shared);
		tdp_rcu_read_lock();
		for_each_tdp_pte_min_level(it, root, zap_level, 0, end)
		{
		retry:
			if (tdp_mmu_iter_cond_resched(mmu, &it, ctx, &y))
				continue;
			/* a sparse root is mostly empty entries */
			if (it.old_spte == SPTE_NONPRESENT)
				tdp_iter_skip_empty(&it);
			if (!spte_present(it.old_spte) || it.level > zap_level)
				continue;
			if (bounded && tdp_iter_entry_end(&it) > end)
				continue; /* "only entries wholly in range" */
			if (!zap_spte(mmu, &it, root->as_id, shared, ctx))
				goto retry;
		}
		if (ctx->removed || ctx->flush)
			tdp_mmu_flush_and_free(mmu, ctx);
		tdp_rcu_read_unlock();
	}
}

int tdp_mmu_invalidate_roots(struct tdp_mmu *mmu, unsigned types)
{
	return roots_invalidate(&mmu->roots, types);
}

/* zap-take-load-store (inject.h): check-then-act (seed 001's subject),
 * the exchange written as a load and a store, so two zappers of the same
 * invalidated root may both take it and both drop the MMU's reference. */
TDP_INJECT_FN bool inj_zap_take_load_store(struct tdp_pt_page *root)
{
	if (!atomic_load(&root->scheduled_to_zap))
		return false;
	atomic_store(&root->scheduled_to_zap, false);
	return true;
}

void tdp_mmu_zap_invalidated_roots(struct tdp_mmu *mmu, bool shared)
{
	struct tdp_flush_ctx ctx = {.no_flush = true};
	struct tdp_pt_page *root;

	if (shared)
		tdp_read_lock(&mmu->lock);
	else
		tdp_write_lock(&mmu->lock);
	for_each_root_yield_safe(&mmu->roots, root, -1, ROOTS_ALL)
	{
		/* Exactly one zapper takes each scheduled root. */
		if (INJECTED(mmu->inject, INJ_ZAP_TAKE_LOAD_STORE)) {
			if (!inj_zap_take_load_store(root))
				continue;
		} else if (!atomic_exchange(&root->scheduled_to_zap, false)) {
			continue;
		}
		zap_root(mmu, root, shared, &ctx);
		/* Only now may the MMU's own reference go (root.h). */
		root_put(&mmu->roots, root);
	}
	tdp_mmu_flush_and_free(mmu, &ctx);
	if (shared)
		tdp_read_unlock(&mmu->lock);
	else
		tdp_write_unlock(&mmu->lock);
}
