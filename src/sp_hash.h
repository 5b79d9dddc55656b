/* SPDX-License-Identifier: MIT */
/*
 * sp_hash.h - the legacy engine's hash table of shadow pages, indexed by
 * (gfn, role), as KVM's mmu_page_hash.  It holds every table page of a
 * legacy VM, roots included, from the moment the page is linked (a root:
 * listed) until it is unlinked (a root: freed).
 *
 * Role: what a page translates besides its gfn, here the level of its
 * entries and the address space (KVM's role.level and role.smm; the
 * other role bits of KVM describe guest page tables, which a direct map
 * has none of).  The key (gfn, role) of a table is that of the range it
 * maps, so a root is (0, root level).
 *
 * Obsolete pages (KVM's mmu_valid_gen): every page carries the hash's
 * generation from when it was added; sp_hash_obsolete_all() (fast zap,
 * teardown: when every root is invalidated) bumps it, which makes every
 * page in the table obsolete at once, however many there are.  Obsolete
 * pages stay in the table until their tree is zapped; lookups skip them.
 * At most one valid page has a given key (sp_hash_add asserts it; the
 * audit checks it): a valid root of a role is shared by every vCPU, and a
 * table is found below its one parent entry.
 *
 * Consumers: root allocation finds the valid root of a role here (KVM's
 * mmu_alloc_root through kvm_mmu_get_shadow_page); every table that is
 * linked is added, so its key cannot be taken twice; the audit checks the
 * table against the trees.  Unlike KVM, an unlinked table is freed with
 * its parent entry (mmu.c), never kept parentless for reuse, so a lookup
 * of a child's key finds nothing valid.
 *
 * Locking: every operation runs with mmu_lock held for WRITE (asserted),
 * as KVM's legacy MMU changes its hash only under the write lock.  The
 * table is sized once (SP_HASH_BUCKETS) and chains pages through their
 * headers (pt.h), so adding cannot fail.
 */
#ifndef TDP_SP_HASH_H
#define TDP_SP_HASH_H

#include <stdbool.h>
#include <stdint.h>

#include "lock.h"
#include "pt.h"

#define SP_HASH_BUCKETS 4096 /* as KVM_NUM_MMU_PAGES */

struct sp_hash {
	struct tdp_pt_page **bucket; /* SP_HASH_BUCKETS chains */
	uint32_t gen;		     /* current generation */
	long count;		     /* pages in the table */
	struct tdp_lock *mmu_lock;   /* for assertions */
};

static inline uint32_t sp_role(int level, unsigned as_id)
{
	return (uint32_t)level | (uint32_t)as_id << 4;
}

static inline uint32_t sp_role_of(const struct tdp_pt_page *sp)
{
	return sp_role(sp->level, sp->as_id);
}

/* -ENOMEM */
int sp_hash_init(struct sp_hash *h, struct tdp_lock *mmu_lock);
/* The table must be empty. */
void sp_hash_destroy(struct sp_hash *h);

/* Add @sp (its gfn, level and as_id set), stamped with the current
 * generation.  No valid page may have its key. */
void sp_hash_add(struct sp_hash *h, struct tdp_pt_page *sp);
/* Remove @sp, which is in the table. */
void sp_hash_del(struct sp_hash *h, struct tdp_pt_page *sp);
/* The valid page of (gfn, role), or NULL. */
struct tdp_pt_page *sp_hash_find(struct sp_hash *h, uint64_t gfn,
				 uint32_t role);
static inline bool sp_hash_obsolete(const struct sp_hash *h,
				    const struct tdp_pt_page *sp)
{
	return sp->hash_gen != h->gen;
}
/* Make every page in the table obsolete. */
void sp_hash_obsolete_all(struct sp_hash *h);
/* Is @sp in the table (for the audit)? */
bool sp_hash_contains(const struct sp_hash *h, const struct tdp_pt_page *sp);

#endif
