/* SPDX-License-Identifier: MIT */
/*
 * stats.h - VM-wide counters with KVM's names.  Relaxed atomics: they are
 * statistics, never used to make decisions (the audit recounts by walking).
 */
#ifndef TDP_STATS_H
#define TDP_STATS_H

#include <stdatomic.h>
#include <stdint.h>

struct vm_stats {
	atomic_ullong pf_taken, pf_fixed, pf_spurious, pf_retry, pf_mmio,
		pf_ro_exit;
	atomic_llong pages[4]; /* by level: [1] 4k, [2] 2m, [3] 1g */
	atomic_llong pt_pages; /* linked non-root tables */
	atomic_llong frame_refs;
	atomic_ullong remote_tlb_flush, remote_tlb_flush_requests,
		remote_tlb_flush_ns;
	atomic_ullong tlb_hits, tlb_misses;
	atomic_ullong invalidations, zapped_leaves, root_reloads,
		memslot_updates;
	atomic_ullong zapped_dirty; /* leaves zapped with D set */
	atomic_ullong mmu_yields;   /* walks that dropped mmu_lock */
	atomic_ullong dirty_harvests, dirty_pages, eager_splits,
		huge_recovered, recover_flushes, age_calls, age_young,
		fast_zaps, mmio_gen_wraps;
	atomic_ullong conversions; /* memory attribute changes */
};

#define stat_add(field, n)                                                     \
	atomic_fetch_add_explicit(&(field), (n), memory_order_relaxed)
#define stat_inc(field) stat_add(field, 1)
#define stat_read(field) atomic_load_explicit(&(field), memory_order_relaxed)

#endif
