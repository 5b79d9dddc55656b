/* SPDX-License-Identifier: MIT */
/*
 * ring.h - the VMM's side of a dirty ring, for the tools (torture,
 * migrate, bench) and the tests (test_dirty_ring), header-only so that
 * both use the one loop: collect the entries the vCPU published (DIRTY,
 * read with acquire) and give them back (RESET, a release store), as
 * KVM's dirty-ring users do.  Only the public API (tdpmmu.h).
 *
 * Locking: the vCPU's ring, not its thread: any thread may collect, one
 * collector per ring at a time (*@fetch is the collector's own).
 */
#ifndef TDP_TOOLS_RING_H
#define TDP_TOOLS_RING_H

#include <stdint.h>

#include "tdpmmu.h"

/* Collect @v's harvested entries from *@fetch on, in order: @fn gets each
 * entry's slot and offset and returns 0 to take it (the entry is marked
 * reset and *@fetch moves on) or a value to stop with (the entry stays,
 * *@fetch on it).  The caller resets the rings afterwards
 * (tdp_vm_reset_dirty_rings).  Returns 0, @fn's value, or
 * tdp_vcpu_dirty_ring's error. */
static inline int
ring_collect(struct tdp_vcpu *v, uint32_t *fetch,
	     int (*fn)(void *arg, uint32_t slot, uint64_t offset), void *arg)
{
	struct tdp_dirty_gfn *ring;
	uint32_t size;
	int r = tdp_vcpu_dirty_ring(v, &ring, &size);

	if (r)
		return r;
	for (;; (*fetch)++) {
		struct tdp_dirty_gfn *e = &ring[*fetch & (size - 1)];

		if (!(__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) &
		      TDP_DIRTY_GFN_DIRTY))
			return 0;
		r = fn(arg, e->slot, e->offset);
		if (r)
			return r;
		__atomic_store_n(&e->flags, TDP_DIRTY_GFN_RESET,
				 __ATOMIC_RELEASE);
	}
}

#endif
