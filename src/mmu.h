/* SPDX-License-Identifier: MIT */
/*
 * mmu.h - the TDP MMU operations: map (the fault's table work), zap a gfn
 * range, zap a root, invalidate roots; handle_changed_spte() is the single
 * place that accounts every entry change.
 *
 * Per operation (lock mode / may it yield / who flushes):
 *  - tdp_mmu_map:            read (or write for the exclusive baseline),
 *                            held by the caller; every change is a
 *                            compare-exchange / no yield / flushes itself
 *                            when it replaces a table by a huge leaf,
 *                            before leaving its RCU section.
 *  - tdp_mmu_zap_gfn_range:  write / yields if asked, flushing first /
 *                            returns with ctx->flush owed: the caller
 *                            flushes (tdp_mmu_flush_and_free) before it
 *                            releases mmu_lock (I6).
 *  - tdp_mmu_zap_invalidated_roots: takes mmu_lock itself, for read
 *                            (compare-exchange, freezing) or for write at
 *                            VM teardown / yields / no flush: vCPUs already
 *                            dropped the roots and flushed (vcpu.c);
 *                            tables are still freed through RCU.
 *  - tdp_mmu_invalidate_roots: write / no yield / the caller sends the
 *                            vCPU reload request in the same section.
 *
 * Table removal: a table leaves a tree when its parent entry goes from
 * table to non-present or to a huge leaf.  handle_removed_pt() freezes
 * every child (exchange with SPTE_FROZEN, retrying while another thread
 * holds it frozen), accounts what the children mapped, and queues the page
 * on ctx->removed.  Queued pages are freed by tdp_mmu_flush_and_free():
 * remote TLB flush first, then call_rcu (I2), and always before the RCU
 * section that unlinked them ends, also at yield points.
 */
#ifndef TDP_MMU_H
#define TDP_MMU_H

#include <stdbool.h>
#include <stdint.h>

#include "inject.h"
#include "iter.h"
#include "lock.h"
#include "pt.h"
#include "root.h"
#include "stats.h"

/*
 * Test hooks: let tests stop a protocol at a chosen point to force a race
 * deterministically.  NULL in normal use; each call site costs one
 * predictable branch.
 */
struct tdp_mmu_hooks {
	/* walks: return true to yield now (if progress allows) */
	bool (*force_yield)(void *arg);
	/* called during a yield, with mmu_lock and RCU dropped */
	void (*in_yield)(void *arg);
	/* handle_removed_pt: child @i of @sp has just been frozen */
	void (*child_frozen)(void *arg, struct tdp_pt_page *sp, unsigned i);
	/* tdp_mmu_map: the target entry was read, before it is written */
	void (*map_before_set)(void *arg, uint64_t *sptep);
	/* write-locked zap: entry snapshot taken, before it is written */
	void (*zap_before_write)(void *arg, uint64_t *sptep);
	void *arg;
};

struct tdp_mmu {
	struct tdp_lock lock; /* mmu_lock */
	struct tdp_mmu_hooks hooks;
	int inject;	      /* enum tdp_inject_id; INJ_NONE normally */
	uint64_t max_slot_gfn; /* highest memslot end (inject only) */
	struct tdp_roots roots;
	struct pt_alloc alloc;
	struct vm_stats *stats;
	int root_level;
	int max_level; /* largest leaf level allowed */
	/* Remote TLB flush with wait for acknowledgement (vcpu.c). */
	void (*flush_remote_tlbs)(void *arg);
	void *flush_arg;
	/* A leaf with the Dirty bit set went away: tell the host its frames
	 * were written (KVM's kvm_set_pfn_dirty; host.h host_mark_dirty). */
	void (*mark_dirty)(void *arg, uint64_t pfn, uint64_t npages);
	void *mark_dirty_arg;
};

/* What a walk owes before mmu_lock is released or yielded. */
struct tdp_flush_ctx {
	bool flush;			/* a leaf lost permission or frame */
	bool no_flush;			/* zapping invalid roots: vCPUs have
					   dropped them and flushed already */
	struct tdp_pt_page *removed;	/* unlinked tables awaiting free */
};

enum tdp_map_ret { MAP_FIXED = 0, MAP_SPURIOUS, MAP_RETRY };

/* What the fault path learned, for tdp_mmu_map. */
struct tdp_fault {
	uint64_t gfn;
	uint64_t pfn;	    /* 4 KiB frame for gfn */
	int goal_level;	    /* level of the leaf to install */
	unsigned as_id;
	bool write, exec;   /* the access */
	bool map_writable;  /* slot and host allow writes */
	bool host_writable; /* host mapping allows writes */
	bool executable;
};

int tdp_mmu_init(struct tdp_mmu *mmu, int root_level, int max_level,
		 struct vm_stats *stats, void (*flush)(void *), void *arg);
/* All roots must be gone (tdp_mmu_teardown first). */
void tdp_mmu_destroy(struct tdp_mmu *mmu);

/* Flush owed TLB entries and free removed tables (after the flush).
 * mmu_lock held; call before releasing it or leaving RCU. */
void tdp_mmu_flush_and_free(struct tdp_mmu *mmu, struct tdp_flush_ctx *ctx);

enum tdp_map_ret tdp_mmu_map(struct tdp_mmu *mmu, struct tdp_pt_page *root,
			     const struct tdp_fault *f, struct pt_cache *cache);

/* Zap [start, end) in every root of @as_id (-1: all), valid ones or
 * (@include_invalid) all: leaves intersecting it and tables wholly inside
 * it.  Write lock. */
void tdp_mmu_zap_gfn_range(struct tdp_mmu *mmu, int as_id, uint64_t start,
			   uint64_t end, bool include_invalid, bool can_yield,
			   struct tdp_flush_ctx *ctx);

/* Invalidate every valid root.  Write lock.  Returns how many. */
int tdp_mmu_invalidate_roots(struct tdp_mmu *mmu);
/* Zap every root scheduled by invalidation, then drop the MMU's reference.
 * Takes mmu_lock itself: for read if @shared, else for write. */
void tdp_mmu_zap_invalidated_roots(struct tdp_mmu *mmu, bool shared);

/* Highest gfn + 1 a root of this MMU can map. */
static inline uint64_t tdp_mmu_max_gfn(const struct tdp_mmu *mmu)
{
	return 1ull << (9u * (unsigned)mmu->root_level);
}

#endif
