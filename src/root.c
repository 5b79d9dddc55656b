/* SPDX-License-Identifier: MIT */
/* root.c - root lifecycle; see root.h for the reference rules. */
#include "root.h"

#include "assert.h"
#include "inject.h"
#include "sched/sched.h"

#include <unistd.h>

int roots_init(struct tdp_roots *r, struct pt_alloc *alloc,
	       struct tdp_lock *mmu_lock)
{
	tdp_rcu_list_init(&r->list);
	r->alloc = alloc;
	r->mmu_lock = mmu_lock;
	atomic_init(&r->nr_roots, 0);
	atomic_init(&r->inval_gen, 0);
	atomic_init(&r->acked_gen, 0);
	atomic_init(&r->nr_mirror, 0);
	return -pthread_mutex_init(&r->list_lock, NULL);
}

void roots_destroy(struct tdp_roots *r)
{
	TDP_ASSERT_MSG(tdp_rcu_list_empty(&r->list), "roots left at destroy");
	pthread_mutex_destroy(&r->list_lock);
}

bool root_get(struct tdp_pt_page *root)
{
	int c = atomic_load(&root->refcount);

	do {
		if (c == 0)
			return false;
	} while (!atomic_compare_exchange_weak(&root->refcount, &c, c + 1));
	return true;
}

static void root_assert_empty(struct tdp_pt_page *root)
{
	/* a check of a root nobody can reach any more: no switches in it */
	TDP_SCHED_PRIVATE_BEGIN();
	for (int i = 0; i < SPTE_ENT_PER_PAGE; i++) {
		uint64_t s = __atomic_load_n(&root->spt[i], __ATOMIC_RELAXED);

		TDP_ASSERT_MSG(!spte_present(s),
			       "freeing root %p with entry %d present (%#llx)",
			       root->spt, i, (unsigned long long)s);
	}
	TDP_SCHED_PRIVATE_END();
}

static void root_free(struct tdp_roots *r, struct tdp_pt_page *root)
{
	/* The last reference: a valid root always holds the MMU's own. */
	TDP_ASSERT_MSG(root_invalid(root), "last put of a valid root");
	root_assert_empty(root);
	if (r->hash)
		sp_hash_del(r->hash, root); /* asserts the write lock */
	pthread_mutex_lock(&r->list_lock);
	tdp_rcu_list_del(&root->link);
	pthread_mutex_unlock(&r->list_lock);
	atomic_fetch_sub(&r->nr_roots, 1);
	if (root->mirror)
		atomic_fetch_sub(&r->nr_mirror, 1);
	pt_free_page_rcu(root);
}

/* Seed 001's rejected idea: decrement unless the count is one, and if it
 * was one, set it to zero.  Between the two, root_get() can take a
 * reference that the store then wipes out. */
static bool put_dec_not_one_buggy(struct tdp_pt_page *root)
{
	int c = atomic_load(&root->refcount);

	while (c != 1)
		if (atomic_compare_exchange_weak(&root->refcount, &c, c - 1))
			return false;
	usleep(1000); /* widen the window (inject.h) */
	atomic_store(&root->refcount, 0);
	return true;
}

void root_put(struct tdp_roots *r, struct tdp_pt_page *root)
{
	int old;

	TDP_ASSERT_MSG(root->in_use, "put of a freed root %p", (void *)root);
	tdp_assert_held(r->mmu_lock);
	if (INJECTED(*r->inject, INJ_PUT_DEC_NOT_ONE)) {
		if (put_dec_not_one_buggy(root))
			root_free(r, root);
		return;
	}
	old = atomic_fetch_sub(&root->refcount, 1);
	TDP_ASSERT_MSG(old > 0, "root refcount underflow");
	if (old == 1)
		root_free(r, root);
}

/* The valid root of this role, with a reference taken, or NULL.  Cannot
 * fail to take it: a valid root holds the MMU's reference, and
 * invalidation needs mmu_lock for write, which the caller excludes. */
static struct tdp_pt_page *get_valid_root(struct tdp_roots *r, unsigned as_id,
					  int level, bool mirror)
{
	struct tdp_pt_page *root;

	if (r->hash) {
		TDP_ASSERT(!mirror); /* the legacy engine has none */
		root = sp_hash_find(r->hash, 0, sp_role(level, as_id));
		TDP_ASSERT(!root || (root->is_root && root_get(root)));
		return root;
	}
	for_each_root_locked(r, root) {
		if (root->as_id != as_id || root->level != level ||
		    root->mirror != mirror)
			continue;
		if (root_invalid(root) &&
		    !INJECTED(*r->inject, INJ_REF_INVALID_ROOT))
			continue;
		if (root_get(root))
			return root;
		TDP_ASSERT(INJECTED(*r->inject, INJ_REF_INVALID_ROOT));
	}
	return NULL;
}

struct tdp_pt_page *root_get_or_alloc(struct tdp_roots *r, unsigned as_id,
				      int level, bool mirror,
				      struct pt_cache *cache)
{
	struct tdp_pt_page *root;

	tdp_assert_held(r->mmu_lock);
	pthread_mutex_lock(&r->list_lock);
	root = get_valid_root(r, as_id, level, mirror);
	if (root)
		goto out;
	root = pt_cache_take(cache);
	root->is_root = true;
	root->level = (int8_t)level;
	root->as_id = (uint8_t)as_id;
	root->mirror = mirror;
	root->gfn = 0;
	atomic_store(&root->refcount, 2);
	tdp_rcu_list_add(&root->link, &r->list);
	atomic_fetch_add(&r->nr_roots, 1);
	if (mirror)
		atomic_fetch_add(&r->nr_mirror, 1);
	if (r->hash)
		sp_hash_add(r->hash, root);
out:
	pthread_mutex_unlock(&r->list_lock);
	return root;
}

static bool root_match(struct tdp_roots *r, struct tdp_pt_page *root,
		       int as_id, unsigned types)
{
	if (as_id >= 0 && root->as_id != (unsigned)as_id)
		return false;
	if (INJECTED(*r->inject, INJ_REF_INVALID_ROOT))
		types |= ROOT_INVALID;
	if (root_invalid(root) && !(types & ROOT_INVALID))
		return false;
	return types & (root->mirror ? ROOT_MIRROR : ROOT_DIRECT);
}

int roots_invalidate(struct tdp_roots *r, unsigned types)
{
	struct tdp_pt_page *root;
	uint64_t gen;
	int n = 0;

	tdp_assert_held_write(r->mmu_lock);
	gen = atomic_fetch_add(&r->inval_gen, 1) + 1;
	for_each_root_locked(r, root) {
		if (root_invalid(root) || !root_match(r, root, -1, types))
			continue;
		atomic_store(&root->invalid_gen, gen);
		atomic_store(&root->scheduled_to_zap, true);
		atomic_store_explicit(&root->invalid, true,
				      memory_order_release);
		n++;
	}
	if (r->hash) {
		TDP_ASSERT(types & ROOT_DIRECT);
		sp_hash_obsolete_all(r->hash);
	}
	return n;
}

void roots_mark_acked(struct tdp_roots *r, uint64_t gen)
{
	uint64_t cur = atomic_load(&r->acked_gen);

	while (cur < gen && !atomic_compare_exchange_weak(&r->acked_gen, &cur,
							  gen))
		;
}

/* The entry saved for @root, or 8. */
static unsigned unpinned_slot(struct tdp_roots *r, struct tdp_pt_page *root)
{
	unsigned i = 0;

	while (i < 8 && r->unpinned[i].root != root)
		i++;
	return i;
}

static struct tdp_pt_page *unpinned_lookup(struct tdp_roots *r,
					   struct tdp_pt_page *root)
{
	unsigned i = unpinned_slot(r, root);

	return i < 8 ? r->unpinned[i].next : NULL;
}

static void unpinned_save(struct tdp_roots *r, struct tdp_pt_page *root,
			  struct tdp_pt_page *next)
{
	unsigned slot = unpinned_slot(r, root);

	/* this root's entry, else the oldest one (round robin) */
	if (slot == 8)
		slot = r->unpinned_cursor;
	if (slot == r->unpinned_cursor)
		r->unpinned_cursor = (r->unpinned_cursor + 1) % 8;
	r->unpinned[slot].root = root;
	r->unpinned[slot].next = next;
}

/*
 * Move from @prev to the next matching root, taking a reference on it
 * BEFORE dropping @prev's: prev's link stays valid while we hold prev, and
 * RCU keeps it readable even if another thread is unlinking it.  Roots
 * whose count already reached zero are being freed and are skipped.
 */
struct tdp_pt_page *root_next(struct tdp_roots *r, struct tdp_pt_page *prev,
			      int as_id, unsigned types)
{
	struct tdp_pt_page *next;

	tdp_assert_held(r->mmu_lock);
	tdp_rcu_read_lock();
	if (prev && INJECTED(*r->inject, INJ_UNPINNED_NEXT_ROOT) &&
	    (next = unpinned_lookup(r, prev)))
		; /* seed 000: the pointer saved when prev was handed out,
		   * not pinned, used after the lock was dropped */
	else if (prev)
		next = link_to_root(tdp_rcu_list_next(&prev->link));
	else
		next = link_to_root(tdp_rcu_list_next(&r->list));
	while (&next->link != &r->list) {
		TDP_ASSERT_MSG(next->in_use, "freed root %p on the root list",
			       (void *)next);
		if (root_match(r, next, as_id, types) && root_get(next))
			break;
		next = link_to_root(tdp_rcu_list_next(&next->link));
	}
	if (INJECTED(*r->inject, INJ_UNPINNED_NEXT_ROOT) &&
	    &next->link != &r->list)
		unpinned_save(r, next,
			      link_to_root(tdp_rcu_list_next(&next->link)));
	tdp_rcu_read_unlock();
	if (prev) {
		if (INJECTED(*r->inject, INJ_ROOT_LEAK_AFTER_YIELD))
			/* seed 000: the iterator's put never frees */
			atomic_fetch_sub(&prev->refcount, 1);
		else
			root_put(r, prev);
	}
	return &next->link == &r->list ? NULL : next;
}
