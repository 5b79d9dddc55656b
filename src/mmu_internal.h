/* SPDX-License-Identifier: MIT */
/*
 * mmu_internal.h - the entry-update primitives of mmu.c shared with the
 * other files of the MMU layer (dirty.c, age.c).  Same rules as mmu.c:
 * tdp_mmu_set_spte_atomic under mmu_lock in either mode (compare-exchange
 * against the iterator snapshot), handle_changed_spte as the one place
 * that accounts a change, tdp_mmu_iter_cond_resched as the one way a walk
 * yields (flush and frees first, forward progress required).
 */
#ifndef TDP_MMU_INTERNAL_H
#define TDP_MMU_INTERNAL_H

#include "mmu.h"

struct yield_state {
	uint64_t since_ns;
	unsigned steps;
	bool shared;
	bool must;		 /* yield at the next chance (e.g. to refill) */
	void (*away)(void *arg); /* runs with mmu_lock dropped */
	void *away_arg;
};

void yield_init(struct yield_state *y, bool shared);
bool tdp_mmu_iter_cond_resched(struct tdp_mmu *mmu, struct tdp_iter *it,
			       struct tdp_flush_ctx *ctx,
			       struct yield_state *y);
int tdp_mmu_set_spte_atomic(struct tdp_mmu *mmu, struct tdp_iter *it,
			    unsigned as_id, uint64_t new,
			    struct tdp_flush_ctx *ctx);
void handle_changed_spte(struct tdp_mmu *mmu, unsigned as_id,
			 uint64_t *sptep, uint64_t gfn, uint64_t old,
			 uint64_t new, int level, struct tdp_flush_ctx *ctx);
void owe_flush(struct tdp_mmu *mmu, struct tdp_flush_ctx *ctx);
void account_leaf(struct tdp_mmu *mmu, int level, long delta);
/* Table @sp was just linked: count it, and enter it in the shadow-page
 * hash (legacy engine; write lock). */
void account_new_table(struct tdp_mmu *mmu, struct tdp_pt_page *sp);
/* A huge leaf became table @sp (just linked) with the same translation
 * in its children: account them. */
void account_split(struct tdp_mmu *mmu, struct tdp_pt_page *sp);
/* Compare-exchange *@sptep from *@old to @new (any lock mode), accounted;
 * -EBUSY with *@old refreshed if it changed.  Not for mirror entries. */
int tdp_mmu_set_sptep_atomic(struct tdp_mmu *mmu, unsigned as_id,
			     uint64_t *sptep, uint64_t gfn, int level,
			     uint64_t *old, uint64_t new,
			     struct tdp_flush_ctx *ctx);
/* Clear Accessed by compare-exchange against *@old (age.c); false if the
 * entry stopped being a present leaf with Accessed. */
bool clear_accessed(struct tdp_mmu *mmu, uint64_t *sptep, uint64_t *old,
		    int level);

/* One leaf of a tdp_mmu_clear_bits pass (dirty.c): clear W or D on the
 * leaf at @sptep (snapshot *@old) if it intersects [start, end) and
 * @mask.  1 changed, 0 nothing to do, -EBUSY lost a race (*@old
 * refreshed: try again). */
int clear_leaf_bit(struct tdp_mmu *mmu, unsigned as_id, uint64_t *sptep,
		   uint64_t gfn, int level, uint64_t *old, uint64_t start,
		   uint64_t end, enum tdp_clear_kind k, const uint64_t *mask,
		   uint64_t *found, struct tdp_flush_ctx *ctx);

#endif
