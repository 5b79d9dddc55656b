/* SPDX-License-Identifier: MIT */
/* frontend.c - the MMU front end: the engine choice behind one const
 * table per engine; see frontend.h for the locking of each operation. */
#include "frontend.h"

#include <errno.h>

#include "assert.h"
#include "legacy.h"
#include "vm.h"

/* ---- the TDP engine: walks of each root over the range ---- */

static void tdp_zap_range(struct tdp_mmu *mmu, const struct gfn_range *r,
			  unsigned types, struct tdp_flush_ctx *ctx)
{
	tdp_mmu_zap_gfn_range(mmu, (int)r->slot->as_id, r->start, r->end,
			      types, true, ctx);
}

static uint64_t tdp_age_range(struct tdp_mmu *mmu, const struct gfn_range *r,
			      bool test_only, bool locked, mmu_young_fn young,
			      void *arg)
{
	return tdp_mmu_age_range(mmu, r->slot->as_id, r->start, r->end,
				 test_only, locked, young, arg);
}

static uint64_t tdp_clear_bits(struct tdp_mmu *mmu, const struct gfn_range *r,
			       enum tdp_clear_kind k, const uint64_t *mask,
			       uint64_t *found)
{
	return tdp_mmu_clear_bits(mmu, r->slot->as_id, r->start, r->end, k,
				  mask, found);
}

static const struct mmu_engine tdp_engine = {
	.name = "tdp",
	.zap_range = tdp_zap_range,
	.age_range = tdp_age_range,
	.clear_bits = tdp_clear_bits,
};

/* ---- the legacy engine: the memslot's reverse maps (every root) ---- */

static struct legacy_range legacy_range_of(const struct gfn_range *r)
{
	const struct memslot *s = r->slot;

	return (struct legacy_range){ s->rmaps, s->base_gfn, s->as_id,
				      r->start, r->end };
}

static void legacy_zap(struct tdp_mmu *mmu, const struct gfn_range *r,
		       unsigned types, struct tdp_flush_ctx *ctx)
{
	struct legacy_range lr = legacy_range_of(r);

	legacy_zap_range(mmu, &lr, ctx);
}

static uint64_t legacy_age(struct tdp_mmu *mmu, const struct gfn_range *r,
			   bool test_only, bool locked, mmu_young_fn young,
			   void *arg)
{
	struct legacy_range lr = legacy_range_of(r);

	return legacy_age_range(mmu, &lr, test_only, locked, young, arg);
}

static uint64_t legacy_clear(struct tdp_mmu *mmu, const struct gfn_range *r,
			     enum tdp_clear_kind k, const uint64_t *mask,
			     uint64_t *found)
{
	struct legacy_range lr = legacy_range_of(r);

	return legacy_clear_bits(mmu, &lr, k, mask, found);
}

static const struct mmu_engine legacy_engine = {
	.name = "legacy",
	.exclusive = true,
	.slot_rmaps = true,
	.zap_range = legacy_zap,
	.age_range = legacy_age,
	.clear_bits = legacy_clear,
};

/* ---- the front end ---- */

int mmu_engine_init(struct tdp_mmu *mmu, unsigned engine,
		    const struct mmu_engine **out)
{
	int r;

	switch (engine) {
	case TDP_ENGINE_TDP:
		*out = &tdp_engine;
		return 0;
	case TDP_ENGINE_LEGACY:
		r = legacy_enable(mmu);
		if (!r)
			*out = &legacy_engine;
		return r;
	}
	return -EINVAL;
}

void mmu_zap_range(struct tdp_vm *vm, const struct gfn_range *r,
		   unsigned types, struct tdp_flush_ctx *ctx)
{
	vm->engine->zap_range(&vm->mmu, r, types, ctx);
}

void mmu_zap_gfns_locked(struct tdp_vm *vm, unsigned as_id, uint64_t gfn,
			 uint64_t npages, unsigned types)
{
	struct tdp_flush_ctx ctx = { 0 };
	uint64_t end = gfn + npages;

	/* no assertion of the lock mode here: mirror-zap-shared (inject.h)
	 * calls this under the read lock, and the engines check what they
	 * rely on (the external table refuses a mirror removal) */
	if (!vm->engine->slot_rmaps) {
		tdp_mmu_zap_gfn_range(&vm->mmu, (int)as_id, gfn, end, types,
				      true, &ctx);
	} else {
		/* the reverse maps of every slot the range meets */
		unsigned idx = tdp_srcu_read_lock(&vm->srcu);
		struct memslots *set = vm_memslots(vm, as_id);

		for (unsigned i = 0; i < set->n; i++) {
			const struct memslot *s = &set->slots[i];
			struct gfn_range r = {
				.slot = s,
				.start = gfn > s->base_gfn ? gfn : s->base_gfn,
				.end = end < memslot_end(s) ? end
							    : memslot_end(s),
			};

			if (r.start < r.end)
				mmu_zap_range(vm, &r, ROOTS_ALL, &ctx);
		}
		tdp_srcu_read_unlock(&vm->srcu, idx);
	}
	tdp_mmu_flush_and_free(&vm->mmu, &ctx);
}

uint64_t mmu_age_range(struct tdp_vm *vm, const struct gfn_range *r,
		       bool test_only, bool locked, mmu_young_fn young,
		       void *arg)
{
	return vm->engine->age_range(&vm->mmu, r, test_only, locked, young,
				     arg);
}

uint64_t mmu_clear_bits(struct tdp_vm *vm, const struct gfn_range *r,
			enum tdp_clear_kind k, const uint64_t *mask,
			uint64_t *found)
{
	tdp_assert_held_write(&vm->mmu.lock);
	return vm->engine->clear_bits(&vm->mmu, r, k, mask, found);
}

void mmu_zap_invalidated_roots(struct tdp_vm *vm)
{
	/* an exclusive engine changes entries under the write lock only */
	tdp_mmu_zap_invalidated_roots(&vm->mmu, !vm->engine->exclusive);
}

int64_t mmu_rmap_entries(struct tdp_vm *vm)
{
	uint64_t n = 0;
	unsigned idx;

	if (!vm->engine->slot_rmaps)
		return -1;
	idx = tdp_srcu_read_lock(&vm->srcu);
	for (unsigned as = 0; as < vm->cfg.nr_as; as++) {
		struct memslots *set = vm_memslots(vm, as);

		for (unsigned i = 0; i < set->n; i++)
			n += legacy_rmap_entries(&vm->mmu,
						 set->slots[i].rmaps);
	}
	tdp_srcu_read_unlock(&vm->srcu, idx);
	return (int64_t)n;
}
