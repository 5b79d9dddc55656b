/* SPDX-License-Identifier: MIT */
/*
 * root.h - roots: the top table of a TDP tree, shared by every vCPU with the
 * same role (address space, level), reference-counted (seeds 000, 001).
 *
 * References:
 *  - A new root starts with 2: the MMU's own, kept until the root is
 *    invalidated, and the allocating vCPU's.
 *  - Each vCPU holds one per root it has loaded; it drops it on reload.
 *  - Root iterators hold one on the root they hand out, so the loop body
 *    may drop mmu_lock and yield; they drop it when moving on.  Leaving the
 *    loop early requires root_iter_break() (or keeping the reference on
 *    purpose, as root allocation does).
 *  - root_get() is increment-unless-zero; readers asking for valid roots
 *    never take a reference on an invalid one (KVM 614f6970aa70).
 *
 * Invalidation (mmu_lock held for write) marks a root invalid and schedules
 * the zap; the zapper zaps the whole tree and only then drops the MMU's
 * reference (mmu.c).  The LAST put (any lock mode, or none) asserts the
 * root is invalid and empty, unlinks it from the RCU list under list_lock
 * and frees it after a grace period.  A valid root can never reach zero.
 *
 * Roles: a root is identified by (address space, level, mirror).  Mirror
 * roots (confidential VMs) mirror the external page table; they are
 * invalidated only at VM teardown, never by a fast zap (I11).
 *
 * Every put runs with mmu_lock held (read or write; vCPUs drop their roots
 * under the read lock, as KVM's kvm_mmu_free_roots does for TDP MMU roots;
 * for write with a shadow-page hash, which the last put leaves), so the
 * root list,
 * an RCU list modified only under list_lock, is stable under the write
 * lock and is walked under RCU otherwise (iterators).
 */
#ifndef TDP_ROOT_H
#define TDP_ROOT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "lock.h"
#include "pt.h"
#include "sp_hash.h"

struct tdp_roots {
	struct tdp_rcu_list list;
	pthread_mutex_t list_lock;
	struct pt_alloc *alloc;
	struct tdp_lock *mmu_lock; /* for assertions */
	atomic_long nr_roots;
	atomic_long nr_mirror;	   /* of them, mirror roots */
	/* invalidations so far (write lock to bump), and the newest of
	 * them every vCPU has acknowledged (roots_mark_acked) */
	atomic_ullong inval_gen, acked_gen;
	/* the legacy engine's shadow-page hash (sp_hash.h), where it finds
	 * roots by role and enters them; NULL for the TDP engine, which
	 * looks them up on the list */
	struct sp_hash *hash;
	const int *inject;	   /* the owning MMU's injection switch */
	/* INJ_UNPINNED_NEXT_ROOT only: the next pointer each root had when an
	 * iterator handed it out, kept without a reference */
	struct {
		struct tdp_pt_page *root, *next;
	} unpinned[8];
	unsigned unpinned_cursor;
};

int roots_init(struct tdp_roots *r, struct pt_alloc *alloc,
	       struct tdp_lock *mmu_lock);
void roots_destroy(struct tdp_roots *r);

/* Which roots a walk or an invalidation covers (KVM's root types): a
 * root matches if its kind (direct or mirror) is in the set and, when it
 * is invalid, ROOT_INVALID is in the set too. */
enum root_types {
	ROOT_DIRECT = 1,
	ROOT_MIRROR = 2,
	ROOT_INVALID = 4,
	ROOTS_VALID = ROOT_DIRECT | ROOT_MIRROR,
	ROOTS_ALL = ROOTS_VALID | ROOT_INVALID,
};

/* Find a valid root of this role and take a reference, or make one (with
 * the MMU's and the caller's references) from @cache.  mmu_lock held;
 * for write with a shadow-page hash. */
struct tdp_pt_page *root_get_or_alloc(struct tdp_roots *r, unsigned as_id,
				      int level, bool mirror,
				      struct pt_cache *cache);

bool root_get(struct tdp_pt_page *root);
void root_put(struct tdp_roots *r, struct tdp_pt_page *root);

static inline bool root_invalid(struct tdp_pt_page *root)
{
	return atomic_load_explicit(&root->invalid, memory_order_acquire);
}

/* Mark every valid root of @types invalid and schedule its zap.  Write
 * lock.  Returns the number of roots invalidated.  With a shadow-page
 * hash, @types must take every valid root, and the whole hash becomes
 * obsolete.  The roots it invalidates carry invalidation generation
 * r->inval_gen (read it in the same write-locked section). */
int roots_invalidate(struct tdp_roots *r, unsigned types);
/* Every vCPU has acknowledged the reload request posted in the
 * write-locked section that invalidated roots of generation @gen (and so
 * of every older one): from now on a vCPU found walking one of them is a
 * bug (hw.c).  No lock: the wait for the acknowledgements may run after
 * mmu_lock is released. */
void roots_mark_acked(struct tdp_roots *r, uint64_t gen);

/* @root is invalid and every vCPU acknowledged its reload request. */
static inline bool root_acked(struct tdp_roots *r, struct tdp_pt_page *root)
{
	uint64_t g = atomic_load(&root->invalid_gen);

	return g && g <= atomic_load(&r->acked_gen);
}

/* as_id < 0: every address space.  @types: enum root_types. */
struct tdp_pt_page *root_next(struct tdp_roots *r, struct tdp_pt_page *prev,
			      int as_id, unsigned types);

#define for_each_root_yield_safe(r, root, as_id, types)                        \
	for ((root) = root_next((r), NULL, (as_id), (types)); (root);          \
	     (root) = root_next((r), (root), (as_id), (types)))

/* Leave a for_each_root_yield_safe loop early, dropping its reference. */
static inline void root_iter_break(struct tdp_roots *r,
				   struct tdp_pt_page *root)
{
	root_put(r, root);
}

static inline struct tdp_pt_page *link_to_root(struct tdp_rcu_list *l)
{
	return caa_container_of(l, struct tdp_pt_page, link);
}

/* Plain walk under RCU only, no references and no mmu_lock (lockless
 * readers: aging, translation): a root met may be invalid or being freed,
 * but its memory stays until the read-side section ends. */
#define for_each_root_rcu(r, root)                                             \
	for ((root) = link_to_root(tdp_rcu_list_next(&(r)->list));             \
	     &(root)->link != &(r)->list;                                      \
	     (root) = link_to_root(tdp_rcu_list_next(&(root)->link)))

/* Plain walk, no references: mmu_lock must be held for write, which
 * excludes every put (they run under mmu_lock), so the list is stable. */
#define for_each_root_locked(r, root)                                          \
	for ((root) = link_to_root((r)->list.next); &(root)->link != &(r)->list; \
	     (root) = link_to_root((root)->link.next))

#endif
