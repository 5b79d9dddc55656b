/* SPDX-License-Identifier: MIT */
/* iter.c - see iter.h for the rules. */
#include "iter.h"

#include "assert.h"

static void iter_load(struct tdp_iter *it)
{
	it->sptep = it->pt_path[it->level] + spte_index(it->gfn, it->level);
	it->old_spte = tdp_iter_load(it->sptep);
}

void tdp_iter_restart(struct tdp_iter *it)
{
	it->yielded = false;
	it->level = it->root_level;
	it->gfn = gfn_round_for_level(it->next_gfn, it->level);
	it->valid = it->next_gfn < it->end &&
		    (it->next_gfn >> level_shift(it->root_level + 1)) == 0;
	if (it->valid)
		iter_load(it);
}

void tdp_iter_start(struct tdp_iter *it, struct tdp_pt_page *root,
		    int min_level, uint64_t start, uint64_t end)
{
	TDP_ASSERT(root && root->is_root);
	TDP_ASSERT(min_level >= TDP_LEVEL_4K && min_level <= root->level);
	it->root_level = root->level;
	it->min_level = min_level;
	it->pt_path[root->level] = root->spt;
	it->next_gfn = start;
	it->yielded_gfn = start;
	it->end = end;
	tdp_iter_restart(it);
}

static bool try_step_down(struct tdp_iter *it)
{
	if (it->level == it->min_level)
		return false;
	/* Re-read: the entry may have changed since the caller looked. */
	it->old_spte = tdp_iter_load(it->sptep);
	if (!spte_is_table(it->old_spte, it->level))
		return false;
	it->level--;
	it->pt_path[it->level] = spte_to_table(it->old_spte);
	it->gfn = gfn_round_for_level(it->next_gfn, it->level);
	iter_load(it);
	return true;
}

static bool try_step_side(struct tdp_iter *it)
{
	if (spte_index(it->gfn, it->level) == SPTE_ENT_PER_PAGE - 1)
		return false;
	it->gfn += level_pages(it->level);
	it->next_gfn = it->gfn;
	it->sptep++;
	it->old_spte = tdp_iter_load(it->sptep);
	return true;
}

static bool try_step_up(struct tdp_iter *it)
{
	if (it->level == it->root_level)
		return false;
	it->level++;
	it->gfn = gfn_round_for_level(it->gfn, it->level);
	it->sptep = it->pt_path[it->level] + spte_index(it->gfn, it->level);
	return true;
}

void tdp_iter_skip_empty(struct tdp_iter *it)
{
	while (it->old_spte == SPTE_NONPRESENT &&
	       spte_index(it->gfn, it->level) != SPTE_ENT_PER_PAGE - 1 &&
	       it->gfn + level_pages(it->level) < it->end) {
		uint64_t s = tdp_iter_load(it->sptep + 1);

		it->gfn += level_pages(it->level);
		it->next_gfn = it->gfn;
		it->sptep++;
		it->old_spte = s;
	}
}

void tdp_iter_next(struct tdp_iter *it)
{
	if (it->yielded) {
		tdp_iter_restart(it);
		return;
	}
	if (try_step_down(it))
		return;
	do {
		if (try_step_side(it))
			return;
	} while (try_step_up(it));
	it->valid = false;
}
