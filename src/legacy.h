/* SPDX-License-Identifier: MIT */
/*
 * legacy.h - the legacy engine (TDP_ENGINE_LEGACY): KVM's other MMU, the
 * one that reaches entries through per-memslot reverse maps (KVM with
 * tdp_mmu=N).  It shares the table format, the roots, the hardware walker
 * and handle_changed_spte with the TDP engine; what differs:
 *  - every change of an entry runs with mmu_lock held for WRITE (faults,
 *    splits, huge-page recovery and the zap of invalidated roots too), as
 *    in KVM's legacy MMU;
 *  - every table and root is in the shadow-page hash, indexed by (gfn,
 *    role) (sp_hash.h), where vCPUs find their roots;
 *  - each present leaf is in the reverse map of its memslot, level and
 *    gfn (rmap.h), kept by handle_changed_spte (add when a leaf appears,
 *    remove when it goes, in the same write-locked section);
 *  - host invalidations, zaps of gfn ranges, dirty-log write-protection
 *    and Dirty-bit harvests, and aging reach leaves through the reverse
 *    maps instead of walking the trees; aging walks them without mmu_lock
 *    (seed 002), tolerating entries a concurrent zap has cleared.
 * Tables emptied by reverse-map zaps stay linked until their root is
 * zapped (fast zap, teardown), as in KVM.
 *
 * Lifetime: a slot's reverse maps (struct slot_rmaps) are allocated with
 * the slot, shared by its copies in successive memslot sets, and freed
 * after the slot is deleted, when every leaf in them has been zapped
 * (asserted).  They are sized so a slot can move to a gpa of any
 * alignment.
 */
#ifndef TDP_LEGACY_H
#define TDP_LEGACY_H

#include "mmu.h"
#include "rmap.h"

struct slot_rmaps {
	uint64_t n[TDP_LEVEL_1G + 1];		  /* heads per level */
	struct rmap_head *head[TDP_LEVEL_1G + 1]; /* [level][i] */
};

/* Make this (new, rootless) MMU the legacy engine's: its tables go in a
 * shadow-page hash, where roots are found, and its leaves in the reverse
 * maps that the rmap_of upcall finds (struct tdp_mmu_ops).  -ENOMEM. */
int legacy_enable(struct tdp_mmu *mmu);
/* Whether legacy_enable() made @mmu the legacy engine's. */
bool legacy_enabled(const struct tdp_mmu *mmu);

/* NULL on -ENOMEM. */
struct slot_rmaps *slot_rmaps_alloc(uint64_t npages);
/* Every head must be empty. */
void slot_rmaps_free(struct slot_rmaps *rm);

/* The head of @gfn at @level in a slot starting at @base_gfn. */
static inline struct rmap_head *slot_rmap(struct slot_rmaps *rm,
					  uint64_t base_gfn, uint64_t gfn,
					  int level)
{
	uint64_t i = (gfn >> level_shift(level)) -
		     (base_gfn >> level_shift(level));

	TDP_ASSERT(i < rm->n[level]);
	return &rm->head[level][i];
}

/* One memslot's part of an operation: its reverse maps and where it
 * starts; [start, end) lies inside the slot. */
struct legacy_range {
	struct slot_rmaps *rm;
	uint64_t base_gfn;
	unsigned as_id;
	uint64_t start, end;
};

/* Zap every leaf that maps a gfn of the range.  Write lock; the caller
 * flushes what @ctx owes before releasing it. */
void legacy_zap_range(struct tdp_mmu *mmu, const struct legacy_range *r,
		      struct tdp_flush_ctx *ctx);
/* tdp_mmu_clear_bits through the reverse maps.  Write lock. */
uint64_t legacy_clear_bits(struct tdp_mmu *mmu, const struct legacy_range *r,
			   enum tdp_clear_kind k, const uint64_t *mask,
			   uint64_t *found);
/* tdp_mmu_age_range through the reverse maps: without mmu_lock (lockless
 * rmap walks), or under it for write if @locked. */
uint64_t legacy_age_range(struct tdp_mmu *mmu, const struct legacy_range *r,
			  bool test_only, bool locked,
			  void (*young)(void *arg, uint64_t gfn, uint64_t n),
			  void *arg);
/* Entries in the reverse maps of @rm (for the audit).  mmu_lock held. */
uint64_t legacy_rmap_entries(struct tdp_mmu *mmu, struct slot_rmaps *rm);

#endif
