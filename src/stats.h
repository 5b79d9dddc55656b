/* SPDX-License-Identifier: MIT */
/*
 * stats.h - VM-wide counters with KVM's names.  Relaxed atomics: they are
 * statistics, never used to make decisions (the audit recounts by walking).
 *
 * The gauges every fault changes (leaves by level, linked tables) are
 * kept per reader slot (percpu.h), like KVM's per-vCPU
 * stats, so vCPUs faulting disjoint memory write no shared line for
 * them; a slot's value may go negative (a leaf mapped on one slot and
 * zapped on another), only the sum over the slots (stat_slot_sum) means
 * anything, and it is exact whenever no update is in flight.
 */
#ifndef TDP_STATS_H
#define TDP_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "percpu.h"

struct vm_stats_slot {
	atomic_llong pages[4]; /* by level: [1] 4k, [2] 2m, [3] 1g */
	atomic_llong pt_pages; /* linked non-root tables */
} __attribute__((aligned(TDP_CACHE_LINE)));

struct vm_stats {
	struct vm_stats_slot slot[TDP_NR_SLOTS];
	atomic_ullong pf_taken, pf_fixed, pf_spurious, pf_retry, pf_mmio,
		pf_ro_exit;
	atomic_ullong remote_tlb_flush, remote_tlb_flush_requests,
		remote_tlb_flush_ns;
	atomic_ullong tlb_hits, tlb_misses;
	atomic_ullong invalidations, zapped_leaves, root_reloads,
		memslot_updates, memslot_waits;
	atomic_ullong zapped_dirty; /* leaves zapped with D set */
	atomic_ullong mmu_yields;   /* walks that dropped mmu_lock */
	atomic_ullong dirty_harvests, dirty_pages, eager_splits,
		huge_recovered, recover_flushes, age_calls, age_young,
		fast_zaps, mmio_gen_wraps;
	atomic_ullong nx_recovered; /* possible NX huge pages zapped */
	/* dirty rings (dirty_ring.c) */
	atomic_ullong ring_overflows, ring_resets;
	atomic_ullong conversions; /* memory attribute changes */
};

#define stat_add(field, n)                                                     \
	atomic_fetch_add_explicit(&(field), (n), memory_order_relaxed)
#define stat_inc(field) stat_add(field, 1)
#define stat_read(field) atomic_load_explicit(&(field), memory_order_relaxed)

/* A counter with a single writer (a vCPU's own, written only by the
 * vCPU's thread: one thread at a time per vCPU, tdpmmu.h): a relaxed load
 * and store, no locked instruction; readers on other threads may see it
 * a step late, never torn. */
#define stat_own_add(field, n)                                                 \
	atomic_store_explicit(                                                 \
		&(field),                                                      \
		atomic_load_explicit(&(field), memory_order_relaxed) + (n),    \
		memory_order_relaxed)
#define stat_own_inc(field) stat_own_add(field, 1)

/* A per-slot gauge of the calling thread's slot, e.g.
 * stat_add(stat_slot(st)->pages[level], 1). */
#define stat_slot(st) (&(st)->slot[tdp_this_slot()])
/* The sum of a per-slot gauge over the slots, e.g.
 * stat_slot_sum(st, pages[level]). */
#define stat_slot_sum(st, member)                                              \
	({                                                                     \
		long long sum_ = 0;                                            \
		for (unsigned i_ = 0; i_ < TDP_NR_SLOTS; i_++)                 \
			sum_ += stat_read((st)->slot[i_].member);              \
		sum_;                                                          \
	})

#endif
