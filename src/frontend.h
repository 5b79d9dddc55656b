/* SPDX-License-Identifier: MIT */
/*
 * frontend.h - the MMU front end (KVM's arch/x86/kvm/mmu/mmu.c): the one
 * place that knows there are two engines.  The VM (vm.c, dirty_log.c,
 * confidential.c, audit.c) asks for gfn-range operations on one neutral
 * range type, struct gfn_range (KVM's struct kvm_gfn_range); the front
 * end runs them through the const operations table of the VM's engine:
 *  - the TDP engine (mmu.c, dirty.c, age.c): walks of each root over the
 *    range, faults and walks under mmu_lock for read;
 *  - the legacy engine (legacy.c): the memslot's reverse maps, every
 *    entry change under mmu_lock for write.
 * Fault entry is fault.c's; it asks the front end only which lock mode
 * its engine's faults take (vm_exclusive_faults, vm.h).
 *
 * Locking, per operation (as the engines state them):
 *  - mmu_zap_range, mmu_zap_gfns_locked, mmu_clear_bits: mmu_lock held
 *    for write by the caller; the zap may yield; the caller owes the
 *    flush in @ctx before it releases the lock (mmu_zap_gfns_locked
 *    flushes itself);
 *  - mmu_age_range: no mmu_lock (lockless aging) unless @locked, then the
 *    engine takes it for write;
 *  - mmu_zap_invalidated_roots: takes mmu_lock itself (read for the TDP
 *    engine, write for the legacy engine).
 */
#ifndef TDP_FRONTEND_H
#define TDP_FRONTEND_H

#include <stdbool.h>
#include <stdint.h>

#include "memslot.h"
#include "mmu.h"

struct tdp_vm;

/* [start, end) of gfns, inside @slot (address space slot->as_id). */
struct gfn_range {
	const struct memslot *slot;
	uint64_t start, end;
};

typedef void (*mmu_young_fn)(void *arg, uint64_t gfn, uint64_t n);

/* One engine: a const table of these per engine (frontend.c). */
struct mmu_engine {
	const char *name;
	/* every entry change (faults, splits, walks that change entries)
	 * under mmu_lock for write; vCPU root loads too */
	bool exclusive;
	/* memslots carry reverse maps (struct slot_rmaps) */
	bool slot_rmaps;
	void (*zap_range)(struct tdp_mmu *mmu, const struct gfn_range *r,
			  unsigned types, struct tdp_flush_ctx *ctx);
	uint64_t (*age_range)(struct tdp_mmu *mmu, const struct gfn_range *r,
			      bool test_only, bool locked, mmu_young_fn young,
			      void *arg);
	uint64_t (*clear_bits)(struct tdp_mmu *mmu, const struct gfn_range *r,
			       enum tdp_clear_kind k, const uint64_t *mask,
			       uint64_t *found);
};

/* Make @mmu (new, rootless) the engine's (TDP_ENGINE_*), and set *@out
 * to its table.  -EINVAL for an unknown engine, -ENOMEM. */
int mmu_engine_init(struct tdp_mmu *mmu, unsigned engine,
		    const struct mmu_engine **out);

void mmu_zap_range(struct tdp_vm *vm, const struct gfn_range *r,
		   unsigned types, struct tdp_flush_ctx *ctx);
/* Zap [gfn, gfn + npages) of @as_id in the roots of @types (the legacy
 * engine: through the reverse maps of every memslot the range meets, all
 * roots), and flush.  Write lock held (the mirror-zap-shared injection
 * calls it under the read lock: not asserted here). */
void mmu_zap_gfns_locked(struct tdp_vm *vm, unsigned as_id, uint64_t gfn,
			 uint64_t npages, unsigned types);
uint64_t mmu_age_range(struct tdp_vm *vm, const struct gfn_range *r,
		       bool test_only, bool locked, mmu_young_fn young,
		       void *arg);
uint64_t mmu_clear_bits(struct tdp_vm *vm, const struct gfn_range *r,
			enum tdp_clear_kind k, const uint64_t *mask,
			uint64_t *found);
/* Zap the roots a fast zap invalidated, in the engine's lock mode. */
void mmu_zap_invalidated_roots(struct tdp_vm *vm);
/* The audit: entries in the reverse maps of every memslot (SRCU held by
 * the callee), or -1 if the engine keeps none. */
int64_t mmu_rmap_entries(struct tdp_vm *vm);

#endif
