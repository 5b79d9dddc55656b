/* SPDX-License-Identifier: MIT */
/*
 * pt.h - page-table pages: the 4 KiB table, its header (role, base gfn,
 * parent entry, RCU head) and per-caller memory caches.
 *
 * Memory: table pages come from 2 MiB chunks owned by one VM's allocator.
 * The first 64 KiB of a chunk hold the headers of the chunk's pages, so the
 * header of any table (or of the table holding any entry) is found from the
 * address alone (sptep_to_sp), as KVM finds it through page_private.
 *
 * When a page may be freed (I2): only when it is unreachable from every
 * root AND a remote TLB flush covering it has completed AND an RCU grace
 * period has passed since it was unlinked.  pt_free_page_rcu() provides the
 * grace period; the caller provides the first two (see mmu.c).  A freed
 * page is filled with PT_POISON (and, under ASan, poisoned), so a walker
 * that reaches it late sees a value no live table holds.
 *
 * Caches: a fault tops up its cache BEFORE taking mmu_lock (allocation may
 * take the allocator mutex and grow memory); under mmu_lock it only takes
 * pages from the cache, which cannot fail.
 */
#ifndef TDP_PT_H
#define TDP_PT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "rcu.h"
#include "spte.h"

/* The value every entry of a freed table holds (not present). */
#define PT_POISON (SPTE_SUPPRESS_VE | 0xdead000ull)

struct pt_alloc;

struct tdp_pt_page {
	uint64_t *spt;		/* the table: 512 entries */
	uint64_t gfn;		/* lowest gfn mapped by this table */
	uint64_t *ptep;		/* parent entry linking it; NULL for roots */
	int8_t level;		/* level of the entries in spt */
	uint8_t as_id;
	bool is_root;
	bool mirror;		/* in a mirror tree (confidential VMs): every
				   change goes to the external table too */
	bool nx_disallowed;	/* linked by a fetch where a huge leaf could
				   be: a possible NX huge page (nx.c) */
	atomic_bool scheduled_to_zap; /* root: invalidated, zap owed */
	atomic_bool invalid;	/* root: obsolete (set under mmu_lock write) */
	/* root: the roots' invalidation generation that made it invalid
	 * (root.h: roots_mark_acked) */
	atomic_ullong invalid_gen;
	atomic_int refcount;	/* root: references (root.c) */
	struct tdp_rcu_list link; /* root: on mmu->roots (RCU list) */
	struct rcu_head rcu;
	struct tdp_pt_page *next; /* free list / deferred-free list */
	/* legacy engine: the shadow-page hash chain (sp_hash.h) */
	struct tdp_pt_page *hash_next, **hash_pprev;
	uint32_t hash_gen;
	struct pt_alloc *alloc;
	uint8_t in_use;		/* 1 allocated, 0 free (debug) */
};

#define PT_CHUNK_SIZE (2ull << 20)
#define PT_CHUNK_HDR_PAGES 16
#define PT_CHUNK_PAGES 512

_Static_assert(sizeof(struct tdp_pt_page) * PT_CHUNK_PAGES <=
		       PT_CHUNK_HDR_PAGES * 4096,
	       "headers do not fit the chunk header area");

struct pt_alloc {
	pthread_mutex_t lock;
	struct tdp_pt_page *free;
	void **chunks;
	size_t nchunks, cap;
	atomic_long allocated; /* pages handed out and not yet freed */
	const int *inject;     /* the owning MMU's injection switch */
};

int pt_alloc_init(struct pt_alloc *a);
/* Frees every chunk; every page must have been freed. */
void pt_alloc_destroy(struct pt_alloc *a);
/* A page whose entries are all SPTE_NONPRESENT; NULL on -ENOMEM. */
struct tdp_pt_page *pt_alloc_page(struct pt_alloc *a);
/* Free now.  Only for pages that were never reachable, or at the end of a
 * grace period (the RCU callback). */
void pt_free_page(struct tdp_pt_page *sp);
/* Free after an RCU grace period (the caller has done the TLB flush). */
void pt_free_page_rcu(struct tdp_pt_page *sp);

static inline struct tdp_pt_page *sptep_to_sp(const uint64_t *sptep)
{
	uintptr_t a = (uintptr_t)sptep;
	uintptr_t base = a & ~(uintptr_t)(PT_CHUNK_SIZE - 1);
	struct tdp_pt_page *hdr = (struct tdp_pt_page *)base;

	return &hdr[(a - base) >> 12];
}

#define PT_CACHE_MAX 8

struct pt_cache {
	struct tdp_pt_page *pages[PT_CACHE_MAX];
	int n;
};

/* Fill @c to at least @min pages.  Call without mmu_lock.  -ENOMEM. */
int pt_cache_topup(struct pt_alloc *a, struct pt_cache *c, int min);
/* Take one page; the cache must have been topped up. */
struct tdp_pt_page *pt_cache_take(struct pt_cache *c);
void pt_cache_drain(struct pt_cache *c);

#endif
