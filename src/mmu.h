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
 *  - tdp_mmu_zap_gfn_range:  write (or read, not for mirror roots) /
 *                            yields if asked, flushing first /
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
 *
 * Mirror entries (confidential VMs, I11): every change of an entry in a
 * mirror tree is made in the external table (ext.h) too.  A mirror entry
 * becomes present only by compare-exchange under the read lock, in three
 * steps: freeze it, make the external change (link a table, set a leaf),
 * then store the new value, or restore the old one if the external table
 * refused.  Other threads treat the frozen entry as busy and retry.  A
 * mirror leaf or table is removed only under the write lock (the external
 * table refuses otherwise): leaves first, then their table.  A refusal is
 * a bug (KVM_BUG_ON): it is counted, and the VM is dead (tdp_mmu_dead).
 * Mirror trees have 4 KiB leaves only and are never split, recovered,
 * write-protected or aged.
 */
#ifndef TDP_MMU_H
#define TDP_MMU_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ext.h"
#include "inject.h"
#include "iter.h"
#include "lock.h"
#include "pt.h"
#include "rmap.h"
#include "root.h"
#include "stats.h"

/*
 * The MMU's calls upward, into the VM that owns it: one table, fixed at
 * VM creation (vm.c), every function called with tdp_mmu.ops_arg.  All are
 * callable in any lock mode and inside an RCU read section; none may take
 * mmu_lock.  A NULL member is not called.
 */
struct rmap_head;
struct tdp_mmu_ops {
	/* Remote TLB flush, returning when every vCPU has acknowledged it
	 * (vcpu.c); tdp_mmu_flush_and_free calls it before freeing tables. */
	void (*flush_remote_tlbs)(void *arg);
	/* A leaf with the Dirty bit set went away or lost its Dirty bit: the
	 * host's frames were written (KVM's kvm_set_pfn_dirty). */
	void (*mark_dirty)(void *arg, uint64_t pfn, uint64_t npages);
	/* A leaf with the Accessed bit set went away (kvm_set_pfn_accessed). */
	void (*mark_accessed)(void *arg, uint64_t pfn, uint64_t npages);
	/* Dirty-bit logging: a leaf with the Dirty bit set went away; record
	 * its gfns in the dirty log. */
	void (*mark_gfn_dirty)(void *arg, unsigned as_id, uint64_t gfn,
			       uint64_t npages);
	/* The legacy engine's only: the reverse-map head of @gfn (a leaf of
	 * @level) in its memslot, or NULL outside every memslot. */
	struct rmap_head *(*rmap_of)(void *arg, unsigned as_id, uint64_t gfn,
				     int level);
};

/* Whether the MMU has the upward call @fn. */
#define tdp_mmu_has_op(mmu, fn) ((mmu)->ops && (mmu)->ops->fn)
#define tdp_mmu_op(mmu, fn, ...) (mmu)->ops->fn((mmu)->ops_arg, __VA_ARGS__)

/*
 * How an engine other than the TDP MMU follows the changes mmu.c makes:
 * the shared code (handle_changed_spte and the table accounting) reports
 * each change here, and only here.  The legacy engine's table (legacy.c)
 * keeps the shadow-page hash and the reverse maps; the TDP engine has
 * none (tdp_mmu.eops NULL).  Called with mmu_lock held as the change was
 * made (for write, in the legacy engine).
 */
struct tdp_mmu;
struct tdp_mmu_entry_ops {
	/* @sp was linked into a tree / is leaving it */
	void (*table_linked)(struct tdp_mmu *mmu, struct tdp_pt_page *sp);
	void (*table_unlinked)(struct tdp_mmu *mmu, struct tdp_pt_page *sp);
	/* a present leaf at @sptep appeared (@present) or went */
	void (*leaf_changed)(struct tdp_mmu *mmu, unsigned as_id,
			     uint64_t *sptep, uint64_t gfn, int level,
			     bool present);
	/* tdp_mmu_destroy: free the engine's state */
	void (*destroy)(struct tdp_mmu *mmu);
};

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
	struct ext_table *ext; /* confidential VMs: what mirror roots mirror */
	/* An engine that follows entry changes (the legacy engine:
	 * legacy_enable) or NULL (the TDP engine). */
	const struct tdp_mmu_entry_ops *eops;
	/* the legacy engine's: tables in the shadow-page hash, leaves in
	 * reverse maps found through ops->rmap_of */
	struct sp_hash sp_hash;
	struct rmap_ctx rmap;
	atomic_bool dead;      /* the external table refused an operation */
	/* NX huge pages (TDP_VM_NX_HUGE_PAGES): huge leaves are never
	 * executable; tables linked by a fetch in place of a huge mapping
	 * are flagged (tdp_pt_page.nx_disallowed) and counted here until
	 * they are removed (nx.c) */
	bool nx_huge_pages;
	atomic_llong nx_tables;
	struct vm_stats *stats;
	int root_level;
	int max_level; /* largest leaf level allowed */
	/* what the MMU asks of the VM above it (NULL: nothing) */
	const struct tdp_mmu_ops *ops;
	void *ops_arg;
	/* Test instrumentation (NULL normally): per 4 KiB frame, Dirty bits
	 * set on leaves mapping it (by the hardware walker or a fault) minus
	 * Dirty bits taken off leaves with a report to the host or the log.
	 * At a quiescent point each entry equals the number of leaves with D
	 * that map the frame, or a Dirty bit was lost (the audit checks). */
	atomic_int *dirty_ledger;
	uint64_t ledger_frames;
};

static inline void dirty_ledger_add(struct tdp_mmu *mmu, uint64_t pfn,
				    uint64_t n, int d)
{
	if (!mmu->dirty_ledger)
		return;
	for (uint64_t f = pfn; f < pfn + n && f < mmu->ledger_frames; f++)
		atomic_fetch_add_explicit(&mmu->dirty_ledger[f], d,
					  memory_order_relaxed);
}

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
	bool wrprot;	    /* map without W, keeping MMU-writable (dirty
			       log, write-protect mode, read fault) */
	bool prefetch;	    /* pre-fault: the leaf is not Accessed */
	/* NX huge pages: an instruction fetch mapped at 4 KiB that could
	 * have been mapped at this level (0: none); tables it creates at or
	 * below it are possible NX huge pages (nx.c) */
	int nx_req_level;
	bool mmio;	    /* no memslot: install an MMIO entry */
	uint64_t mmio_gen;  /* its generation */
};

/* @ops (may be NULL) and @ops_arg: the calls upward (struct
 * tdp_mmu_ops). */
int tdp_mmu_init(struct tdp_mmu *mmu, int root_level, int max_level,
		 struct vm_stats *stats, const struct tdp_mmu_ops *ops,
		 void *ops_arg);
/* All roots must be gone (tdp_mmu_teardown first). */
void tdp_mmu_destroy(struct tdp_mmu *mmu);

/* Flush owed TLB entries and free removed tables (after the flush).
 * mmu_lock held; call before releasing it or leaving RCU. */
void tdp_mmu_flush_and_free(struct tdp_mmu *mmu, struct tdp_flush_ctx *ctx);

enum tdp_map_ret tdp_mmu_map(struct tdp_mmu *mmu, struct tdp_pt_page *root,
			     const struct tdp_fault *f, struct pt_cache *cache);

/* NX huge page recovery: zap up to @budget tables linked by fetches in
 * place of huge leaves (mmu.c).  Read or write lock. */
uint64_t tdp_mmu_zap_nx_tables(struct tdp_mmu *mmu, uint64_t budget);
/* Zap [start, end) in every root of @as_id (-1: all) that matches @types
 * (enum root_types): leaves intersecting it and tables wholly inside it.
 * Write lock; or read lock (compare-exchanges), but never for mirror
 * roots: the external table accepts removals only under the write lock. */
void tdp_mmu_zap_gfn_range(struct tdp_mmu *mmu, int as_id, uint64_t start,
			   uint64_t end, unsigned types, bool can_yield,
			   struct tdp_flush_ctx *ctx);

/* Invalidate every valid root of @types.  Write lock.  Returns how many. */
int tdp_mmu_invalidate_roots(struct tdp_mmu *mmu, unsigned types);

/* The external table refused an operation: the VM must not run on. */
static inline bool tdp_mmu_dead(struct tdp_mmu *mmu)
{
	return atomic_load_explicit(&mmu->dead, memory_order_acquire);
}
/* Zap every root scheduled by invalidation, then drop the MMU's reference.
 * Takes mmu_lock itself: for read if @shared, else for write. */
void tdp_mmu_zap_invalidated_roots(struct tdp_mmu *mmu, bool shared);

/* ---- accessed and dirty tracking (dirty.c, age.c) ---- */

/* Which bit a tdp_mmu_clear_bits pass clears. */
enum tdp_clear_kind {
	CLEAR_W, /* write-protect (dirty log, write-protect mode) */
	CLEAR_D, /* harvest Dirty bits (dirty log, Dirty-bit mode) */
};

/*
 * For every valid root of @as_id, clear W or D on the present leaves that
 * intersect [start, end) and, if @mask is not NULL, a page whose bit is
 * set in @mask (bit i = gfn start + i).  CLEAR_D hands each Dirty bit to
 * the host before clearing it (never lost, I4) and sets the bits of the
 * leaf's pages in @found (relative to start; may be NULL).  mmu_lock
 * held by the caller, either mode (yields in that mode); compare-
 * exchange.  Returns with the flush
 * done (I6/I7: after this returns no vCPU writes without W / without
 * setting D again).  Returns the number of leaves changed.
 */
uint64_t tdp_mmu_clear_bits(struct tdp_mmu *mmu, unsigned as_id,
			    uint64_t start, uint64_t end, enum tdp_clear_kind k,
			    const uint64_t *mask, uint64_t *found);

/* Split every huge leaf intersecting [start, end) of @as_id down to 4 KiB
 * (eager split).  Read lock held by the caller (write lock for the legacy
 * engine); table pages come from
 * @cache, topped up with the lock dropped; yields; no flush needed (same
 * translation).  Returns the number of huge leaves split or -ENOMEM. */
long tdp_mmu_split_huge_range(struct tdp_mmu *mmu, unsigned as_id,
			      uint64_t start, uint64_t end,
			      struct pt_cache *cache);

/* Huge-page recovery: @level_of(arg, gfn) gives the largest leaf level
 * host folio and slot alignment allow for the huge page containing gfn
 * (and the frame it must map, in *pfn), or 0 to leave it.  For every
 * table entry at level >= 2M in [start, end) of @as_id's valid roots
 * whose level is allowed, build the huge leaf from a present leaf below it
 * and install it in place (the old subtree is removed and flushed, with
 * flushes batched to one per yield and one at the end).  @stop(arg, gfn,
 * n): true when an invalidation of that range raced with the lookups
 * behind @level_of (checked under the lock before each install; the entry
 * is left alone).
 * Read lock held by the caller (write lock for the legacy engine).
 * Returns huge leaves built; *flushes gets
 * the number of TLB flushes done. */
uint64_t tdp_mmu_recover_huge(struct tdp_mmu *mmu, unsigned as_id,
			      uint64_t start, uint64_t end,
			      int (*level_of)(void *arg, uint64_t gfn,
					      uint64_t *pfn, bool *writable),
			      bool (*stop)(void *arg, uint64_t gfn,
					   uint64_t npages),
			      void *arg,
			      uint64_t *flushes);

/* Fast page fault: under RCU only, make the 4 KiB (or, if !@logged, any)
 * leaf of @gfn in @root writable again if it lost W only for dirty
 * logging (MMU-writable and host-writable still set), with a compare-
 * exchange.  @mark(arg) runs before the exchange (the dirty log must have
 * the page before any write can go through).  Returns 1 fixed, 0 already
 * writable (spurious), -EAGAIN not fixable here (take the slow path). */
int tdp_mmu_fast_fault(struct tdp_mmu *mmu, struct tdp_pt_page *root,
		       uint64_t gfn, bool logged, void (*mark)(void *arg),
		       void *arg);

/* Aging of [start, end) of @as_id: for every present leaf with Accessed
 * set, call @young(arg, gfn, npages) for its pages in the range and clear
 * Accessed (unless @test_only) with a compare-exchange, so a concurrent
 * Dirty bit is never lost (I8).  Lockless (RCU, valid roots, no yield, no
 * flush) unless @locked (mmu_lock for write, the baseline).  Returns the
 * number of young leaves. */
uint64_t tdp_mmu_age_range(struct tdp_mmu *mmu, unsigned as_id,
			   uint64_t start, uint64_t end, bool test_only,
			   bool locked,
			   void (*young)(void *arg, uint64_t gfn, uint64_t n),
			   void *arg);

/* Highest gfn + 1 a root of this MMU can map. */
static inline uint64_t tdp_mmu_max_gfn(const struct tdp_mmu *mmu)
{
	return 1ull << (9u * (unsigned)mmu->root_level);
}

#endif
