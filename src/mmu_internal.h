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
void handle_changed_spte(struct tdp_mmu *mmu, unsigned as_id, bool mirror,
			 uint64_t gfn, uint64_t old, uint64_t new, int level,
			 struct tdp_flush_ctx *ctx);
void owe_flush(struct tdp_mmu *mmu, struct tdp_flush_ctx *ctx);
void account_leaf(struct tdp_mmu *mmu, int level, long delta);

#endif
