/* SPDX-License-Identifier: MIT */
/*
 * confidential.c - the VM side of confidential VMs (TDP_VM_CONFIDENTIAL):
 * memory attributes and conversions.
 * The MMU side (mirror entries and the external table) is in mmu.c and
 * ext.c; the vCPU side (two roots) in vcpu.c and hw.c.
 *
 * Memory attributes: one bit per page of a TDP_MEM_PRIVATE slot, set while
 * the page is shared.  A conversion is an invalidation (notifier.h): under
 * mmu_lock held for write it begins an invalidation over the gfns, zaps
 * the mappings of the old kind and flips the bits, and ends it in a later
 * write-locked section.  A fault reads the bit after sampling the
 * invalidation sequence and re-checks the sequence under mmu_lock before
 * it installs anything, so it never installs a mapping of the old kind
 * after the conversion zapped (I5, I13).  Conversions hold slots_lock, so
 * they are serialised with memslot updates and the bitmap cannot be freed
 * under them.
 *
 * The private invalidation path (guest-private host memory, zapped from
 * mirror roots only) is vm.c's notifier with its private side.
 */
#include <errno.h>
#include <stdlib.h>

#include "assert.h"
#include "bitmap.h"
#include "vm.h"

bool memslot_gfn_private(const struct memslot *s, uint64_t gfn)
{
	uint64_t i, w;

	if (!s || !(s->flags & TDP_MEM_PRIVATE))
		return false;
	i = gfn - s->base_gfn;
	w = __atomic_load_n(&s->shared_bitmap[i / 64], __ATOMIC_ACQUIRE);
	return !(w & (1ull << (i % 64)));
}

int memslot_shared_level(const struct memslot *s, uint64_t gfn, int level)
{
	if (!(s->flags & TDP_MEM_PRIVATE))
		return level;
	for (; level > TDP_LEVEL_4K; level--) {
		uint64_t n = level_pages(level);

		if (bitmap_all_set(s->shared_bitmap,
				   (gfn & ~(n - 1)) - s->base_gfn, n))
			break;
	}
	return level;
}

int vm_confidential_init(struct tdp_vm *vm)
{
	return ext_create((int)vm->cfg.root_level, &vm->mmu.ext);
}

void vm_confidential_destroy(struct tdp_vm *vm)
{
	ext_destroy(vm->mmu.ext);
	vm->mmu.ext = NULL;
}

/* ---------------------------------------------------------------- */
/* Conversions                                                       */
/* ---------------------------------------------------------------- */

/* Is every page of [gfn, end) in a TDP_MEM_PRIVATE slot?  slots_lock. */
static bool range_private_slots(const struct memslots *set, uint64_t gfn,
				uint64_t end)
{
	while (gfn < end) {
		const struct memslot *s = memslots_lookup(set, gfn);

		if (!s || !(s->flags & TDP_MEM_PRIVATE))
			return false;
		gfn = memslot_end(s);
	}
	return true;
}

/* Flip the attribute bits of [gfn, end).  mmu_lock held for write. */
static void set_attr_bits(const struct memslots *set, uint64_t gfn,
			  uint64_t end, bool private)
{
	for (; gfn < end; gfn++) {
		const struct memslot *s = memslots_lookup(set, gfn);
		uint64_t i = gfn - s->base_gfn, bit = 1ull << (i % 64);

		if (private)
			__atomic_fetch_and(&s->shared_bitmap[i / 64], ~bit,
					   __ATOMIC_RELEASE);
		else
			__atomic_fetch_or(&s->shared_bitmap[i / 64], bit,
					  __ATOMIC_RELEASE);
	}
}

int tdp_vm_set_memory_attributes(struct tdp_vm *vm, uint64_t gpa,
				 uint64_t size, unsigned attrs)
{
	uint64_t gfn = gpa >> 12, end = (gpa + size) >> 12;
	bool private = attrs & TDP_MEMATTR_PRIVATE, buggy, nomn;
	const struct memslots *set;
	int r = 0;

	if (!vm || !vm_confidential(vm) || !size ||
	    (attrs & ~TDP_MEMATTR_PRIVATE))
		return -EINVAL;
	if ((gpa | size) & (TDP_PAGE_SIZE - 1) || gpa + size < gpa ||
	    gpa + size > vm_max_gpa(vm))
		return -EINVAL;
	/* the injected bug: private mappings zapped under the read lock */
	buggy = !private && INJECTED(vm->mmu.inject, INJ_MIRROR_ZAP_SHARED);
	pthread_mutex_lock(&vm->slots_lock);
	set = vm->memslots[0]; /* stable under slots_lock */
	if (!range_private_slots(set, gfn, end)) {
		r = -EINVAL;
		goto out;
	}
	/* convert-no-invalidate: "the write lock keeps faults out while
	 * the bits flip", but a fault that read the old bit before it waits
	 * for the lock and then installs a mapping of the old kind */
	nomn = INJECTED(vm->mmu.inject, INJ_CONVERT_NO_INVALIDATE);
	tdp_write_lock(&vm->mmu.lock);
	if (!nomn) {
		mn_begin(&vm->mn);
		mn_range_add(&vm->mn, gfn, end);
	}
	/* to private: shared mappings go; to shared: private ones */
	if (!buggy)
		mmu_zap_gfns_locked(vm, 0, gfn, end - gfn,
				   private ? ROOT_DIRECT | ROOT_INVALID
					   : ROOT_MIRROR | ROOT_INVALID);
	set_attr_bits(set, gfn, end, private);
	tdp_write_unlock(&vm->mmu.lock);
	if (buggy) {
		tdp_read_lock(&vm->mmu.lock);
		mmu_zap_gfns_locked(vm, 0, gfn, end - gfn, ROOT_MIRROR);
		tdp_read_unlock(&vm->mmu.lock);
	}
	if (!nomn) {
		tdp_write_lock(&vm->mmu.lock);
		mn_end(&vm->mn);
		tdp_write_unlock(&vm->mmu.lock);
	}
	stat_inc(vm->stats.conversions);
out:
	pthread_mutex_unlock(&vm->slots_lock);
	return r;
}
