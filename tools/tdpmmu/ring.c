/* SPDX-License-Identifier: MIT */
/*
 * ring.c - the VMM's side of a dirty ring: collect the entries the vCPU
 * published (DIRTY, read with acquire) and give them back (RESET, a
 * release store), as KVM's dirty-ring users do.  See cli.h.
 */
#include "cli.h"
#include "tdpmmu.h"

int cli_ring_collect(struct tdp_vcpu *v, uint32_t *fetch,
		     int (*fn)(void *arg, uint32_t slot, uint64_t offset),
		     void *arg)
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
