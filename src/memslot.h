/* SPDX-License-Identifier: MIT */
/*
 * memslot.h - memslot sets per address space: gfn -> hva.
 *
 * A set is immutable once published.  Updaters (holding the VM's
 * slots_lock) build a new set, publish it with tdp_rcu_assign_pointer and free
 * the old one after an srcu grace period of the VM's memslot domain
 * (srcu.h); readers (the fault path, notifiers, the audit) look slots up
 * inside tdp_srcu_read_lock() and may keep a slot pointer until they leave.
 *
 * The generation protocol: every published set carries a generation one
 * higher than the previous one.  Deleting or moving a slot first publishes
 * a set in which the old slot is marked invalid (faults on it retry instead
 * of seeing "no memslot"), waits for a grace period so no fault still works
 * from the valid copy, zaps the slot's gfns, then publishes the final set.
 */
#ifndef TDP_MEMSLOT_H
#define TDP_MEMSLOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct slot_rmaps;

struct memslot {
	uint64_t base_gfn;
	uint64_t npages;
	uint64_t hva;
	unsigned id;
	unsigned as_id;
	unsigned flags;	 /* TDP_MEM_* */
	bool invalid;	 /* being deleted or moved: faults retry */
	/* TDP_MEM_LOG_DIRTY: one bit per page, changed with atomic RMW
	 * only; shared by the copies of this slot in successive sets while
	 * logging stays on; freed after the set that drops it is published
	 * (a grace period later, vm.c) */
	uint64_t *dirty_bitmap;
	/* TDP_MEM_PRIVATE: the private memory, and one bit per page, set
	 * while the page is shared (memory attributes; confidential.c).
	 * Changed with atomic RMW under mmu_lock held for write, inside an
	 * invalidation (notifier.h), read by faults after their sample;
	 * shared by the copies of this slot in successive sets, freed with
	 * the slot */
	uint64_t private_hva;
	uint64_t *shared_bitmap;
	/* legacy engine: the reverse maps of the slot's leaves (legacy.h);
	 * shared by the slot's copies, freed with the slot */
	struct slot_rmaps *rmaps;
};

static inline void memslot_mark_dirty(const struct memslot *s, uint64_t gfn,
				      uint64_t n)
{
	for (uint64_t g = gfn; g < gfn + n; g++) {
		uint64_t i = g - s->base_gfn;

		__atomic_fetch_or(&s->dirty_bitmap[i / 64], 1ull << (i % 64),
				  __ATOMIC_ACQ_REL);
	}
}

struct memslots {
	uint64_t generation;
	/* set by the updater once synchronize returned and the set is no
	 * longer anyone's: a reader that finds it set at the end of its
	 * read section was not waited for (vm.c keeps the last few retired
	 * sets unfreed so that the check reads live memory) */
	atomic_int retired;
	unsigned n;
	struct memslot slots[]; /* sorted by base_gfn, non-overlapping */
};

static inline bool memslots_retired(const struct memslots *set)
{
	return atomic_load_explicit(&set->retired, memory_order_relaxed);
}

static inline uint64_t memslot_end(const struct memslot *s)
{
	return s->base_gfn + s->npages;
}

static inline uint64_t memslot_gfn_to_hva(const struct memslot *s,
					  uint64_t gfn)
{
	return s->hva + ((gfn - s->base_gfn) << 12);
}

static inline uint64_t memslot_gfn_to_private_hva(const struct memslot *s,
						  uint64_t gfn)
{
	return s->private_hva + ((gfn - s->base_gfn) << 12);
}

/* The slot containing @gfn, or NULL.  Binary search. */
const struct memslot *memslots_lookup(const struct memslots *set,
				      uint64_t gfn);
/* The slot with id @id, or NULL.  Linear. */
const struct memslot *memslots_find_id(const struct memslots *set,
				       unsigned id);
/* A new set: @old without slot @remove_id (if not ~0u), plus @add (if not
 * NULL), with generation old->generation + 1.  NULL on -ENOMEM. */
struct memslots *memslots_replace(const struct memslots *old,
				  unsigned remove_id, const struct memslot *add);
/* Does [gfn, gfn+npages) overlap a slot other than @except_id? */
bool memslots_overlap(const struct memslots *set, uint64_t gfn,
		      uint64_t npages, unsigned except_id);

#endif
