/* SPDX-License-Identifier: MIT */
/* legacy.c - the legacy engine's reverse-map operations; see legacy.h. */
#include "legacy.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "assert.h"
#include "mmu_internal.h"

struct slot_rmaps *slot_rmaps_alloc(uint64_t npages)
{
	struct slot_rmaps *rm = calloc(1, sizeof(*rm));

	if (!rm)
		return NULL;
	for (int l = TDP_LEVEL_4K; l <= TDP_LEVEL_1G; l++) {
		/* any alignment of the base: one more head at each end */
		rm->n[l] = ((npages - 1) >> level_shift(l)) + 2;
		rm->head[l] = calloc(rm->n[l], sizeof(struct rmap_head));
		if (!rm->head[l]) {
			slot_rmaps_free(rm);
			return NULL;
		}
	}
	return rm;
}

void slot_rmaps_free(struct slot_rmaps *rm)
{
	if (!rm)
		return;
	for (int l = TDP_LEVEL_4K; l <= TDP_LEVEL_1G; l++) {
		for (uint64_t i = 0; rm->head[l] && i < rm->n[l]; i++)
			TDP_ASSERT_MSG(!atomic_load(&rm->head[l][i].val),
				       "reverse map of a deleted memslot still "
				       "holds entries (level %d, head %llu)",
				       l, (unsigned long long)i);
		free(rm->head[l]);
	}
	free(rm);
}

/* The entry-change reports of mmu.c (struct tdp_mmu_entry_ops): the
 * shadow-page hash follows tables, the reverse maps follow leaves. */
static void legacy_leaf_changed(struct tdp_mmu *mmu, unsigned as_id,
				uint64_t *sptep, uint64_t gfn, int level,
				bool present)
{
	struct rmap_head *head =
		tdp_mmu_op(mmu, rmap_of, as_id, gfn_round_for_level(gfn, level),
			   level);

	TDP_ASSERT_MSG(head, "leaf of gfn %#llx outside every memslot",
		       (unsigned long long)gfn);
	if (!present) {
		rmap_remove(&mmu->rmap, head, sptep);
		return;
	}
	/* KVM's pte_list_add cannot fail either: its descriptors come from a
	 * cache topped up before mmu_lock is taken */
	TDP_ASSERT_MSG(rmap_add(&mmu->rmap, head, sptep) >= 0,
		       "out of memory for a reverse-map descriptor");
}

static void legacy_table_linked(struct tdp_mmu *mmu, struct tdp_pt_page *sp)
{
	sp_hash_add(&mmu->sp_hash, sp);
}

static void legacy_table_unlinked(struct tdp_mmu *mmu, struct tdp_pt_page *sp)
{
	sp_hash_del(&mmu->sp_hash, sp);
}

static void legacy_destroy(struct tdp_mmu *mmu)
{
	sp_hash_destroy(&mmu->sp_hash);
}

static const struct tdp_mmu_entry_ops legacy_entry_ops = {
	.table_linked = legacy_table_linked,
	.table_unlinked = legacy_table_unlinked,
	.leaf_changed = legacy_leaf_changed,
	.destroy = legacy_destroy,
};

int legacy_enable(struct tdp_mmu *mmu)
{
	int r;

	TDP_ASSERT(!atomic_load(&mmu->roots.nr_roots));
	TDP_ASSERT_MSG(tdp_mmu_has_op(mmu, rmap_of),
		       "the legacy engine needs the rmap_of upcall");
	r = sp_hash_init(&mmu->sp_hash, &mmu->lock);
	if (r)
		return r;
	mmu->eops = &legacy_entry_ops;
	mmu->roots.hash = &mmu->sp_hash;
	return 0;
}

bool legacy_enabled(const struct tdp_mmu *mmu)
{
	return mmu->eops == &legacy_entry_ops;
}

static int max_level(struct tdp_mmu *mmu)
{
	return mmu->max_level < TDP_LEVEL_1G ? mmu->max_level : TDP_LEVEL_1G;
}

/* Every reverse-map head of the range: at each level a leaf can have, the
 * head of each block of that level's size (first gfn @g) that intersects
 * the range. */
#define for_each_range_head(mmu, r, level, g, head)                            \
	for ((level) = TDP_LEVEL_4K; (level) <= max_level(mmu); (level)++)     \
		for ((g) = gfn_round_for_level((r)->start, (level));           \
		     (g) < (r)->end &&                                         \
		     ((head) = slot_rmap((r)->rm, (r)->base_gfn, (g),          \
					 (level)));                            \
		     (g) += level_pages(level))

void legacy_zap_range(struct tdp_mmu *mmu, const struct legacy_range *r,
		      struct tdp_flush_ctx *ctx)
{
	struct rmap_head *head;
	struct rmap_iter it;
	uint64_t g, *sptep;
	int level;

	tdp_assert_held_write(&mmu->lock);
	for_each_range_head(mmu, r, level, g, head) {
		/* each zap takes the entry out of this rmap
		 * (handle_changed_spte), so start over each time */
		while ((sptep = rmap_locked_first(&mmu->rmap, head, &it))) {
			uint64_t old = __atomic_exchange_n(
				sptep, SPTE_NONPRESENT, __ATOMIC_ACQ_REL);

			/* widen the window in which a lockless walker meets
			 * the cleared entry (inject.h) */
			if (INJECTED(mmu->inject, INJ_RMAP_LOCKLESS_ASSERT))
				usleep(20);
			handle_changed_spte(mmu, r->as_id, sptep, g, old,
					    SPTE_NONPRESENT, level, ctx);
		}
	}
}

uint64_t legacy_clear_bits(struct tdp_mmu *mmu, const struct legacy_range *r,
			   enum tdp_clear_kind k, const uint64_t *mask,
			   uint64_t *found)
{
	struct tdp_flush_ctx ctx = { 0 };
	struct rmap_head *head;
	struct rmap_iter it;
	uint64_t g, *sptep, changed = 0;
	int level;

	tdp_assert_held_write(&mmu->lock);
	for_each_range_head(mmu, r, level, g, head) {
		for_each_rmap_spte(&mmu->rmap, head, &it, sptep) {
			uint64_t old = __atomic_load_n(sptep, __ATOMIC_ACQUIRE);
			int res;

			/* the hardware walker may set A or D meanwhile:
			 * retry on a lost exchange */
			while ((res = clear_leaf_bit(mmu, r->as_id, sptep, g,
						     level, &old, r->start,
						     r->end, k, mask, found,
						     &ctx)) < 0)
				;
			changed += (uint64_t)res;
		}
	}
	tdp_mmu_flush_and_free(mmu, &ctx);
	return changed;
}

struct age_walk {
	struct tdp_mmu *mmu;
	const struct legacy_range *r;
	uint64_t g;
	int level;
	bool test_only;
	void (*young)(void *arg, uint64_t gfn, uint64_t n);
	void *arg;
	uint64_t n;
};

static bool age_one(uint64_t *sptep, uint64_t spte, void *arg)
{
	struct age_walk *w = arg;
	uint64_t a, b, end = w->g + level_pages(w->level);

	if (!spte_is_present_leaf(spte, w->level) || !spte_accessed(spte))
		return false;
	if (!w->test_only &&
	    !clear_accessed(w->mmu, sptep, &spte, w->level))
		return false;
	a = w->g > w->r->start ? w->g : w->r->start;
	b = end < w->r->end ? end : w->r->end;
	w->young(w->arg, a, b - a);
	w->n++;
	return false;
}

uint64_t legacy_age_range(struct tdp_mmu *mmu, const struct legacy_range *r,
			  bool test_only, bool locked,
			  void (*young)(void *arg, uint64_t gfn, uint64_t n),
			  void *arg)
{
	struct age_walk w = { mmu, r, 0, 0, test_only, young, arg, 0 };
	struct rmap_head *head;
	struct rmap_iter it;
	uint64_t *sptep;

	if (locked)
		tdp_write_lock(&mmu->lock);
	for_each_range_head(mmu, r, w.level, w.g, head) {
		if (!locked) {
			/* seed 002: no mmu_lock, the head locked read-only;
			 * zapped entries are skipped */
			rmap_walk_lockless(&mmu->rmap, head, age_one, &w);
			continue;
		}
		for_each_rmap_spte(&mmu->rmap, head, &it, sptep)
			age_one(sptep, __atomic_load_n(sptep, __ATOMIC_ACQUIRE),
				&w);
	}
	if (locked)
		tdp_write_unlock(&mmu->lock);
	return w.n;
}

uint64_t legacy_rmap_entries(struct tdp_mmu *mmu, struct slot_rmaps *rm)
{
	uint64_t n = 0;

	for (int l = TDP_LEVEL_4K; l <= TDP_LEVEL_1G; l++)
		for (uint64_t i = 0; i < rm->n[l]; i++)
			n += rmap_count(&mmu->rmap, &rm->head[l][i]);
	return n;
}
