/* SPDX-License-Identifier: MIT */
/* root.c - root lifecycle; see root.h for the reference rules. */
#include "root.h"

#include "assert.h"

int roots_init(struct tdp_roots *r, struct pt_alloc *alloc,
	       struct tdp_lock *mmu_lock)
{
	CDS_INIT_LIST_HEAD(&r->list);
	r->alloc = alloc;
	r->mmu_lock = mmu_lock;
	atomic_init(&r->nr_roots, 0);
	return -pthread_mutex_init(&r->list_lock, NULL);
}

void roots_destroy(struct tdp_roots *r)
{
	TDP_ASSERT_MSG(cds_list_empty(&r->list), "roots left at destroy");
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
	for (int i = 0; i < SPTE_ENT_PER_PAGE; i++) {
		uint64_t s = __atomic_load_n(&root->spt[i], __ATOMIC_RELAXED);

		TDP_ASSERT_MSG(!spte_present(s),
			       "freeing root %p with entry %d present (%#llx)",
			       root->spt, i, (unsigned long long)s);
	}
}

void root_put(struct tdp_roots *r, struct tdp_pt_page *root)
{
	int old = atomic_fetch_sub(&root->refcount, 1);

	TDP_ASSERT_MSG(old > 0, "root refcount underflow");
	if (old != 1)
		return;
	/* The last reference: a valid root always holds the MMU's own. */
	TDP_ASSERT_MSG(root_invalid(root), "last put of a valid root");
	root_assert_empty(root);
	pthread_mutex_lock(&r->list_lock);
	cds_list_del_rcu(&root->link);
	pthread_mutex_unlock(&r->list_lock);
	atomic_fetch_sub(&r->nr_roots, 1);
	pt_free_page_rcu(root);
}

struct tdp_pt_page *root_get_or_alloc(struct tdp_roots *r, unsigned as_id,
				      int level, struct pt_cache *cache)
{
	struct tdp_pt_page *root;

	tdp_assert_held(r->mmu_lock);
	pthread_mutex_lock(&r->list_lock);
	cds_list_for_each_entry(root, &r->list, link) {
		if (root->as_id != as_id || root->level != level ||
		    root_invalid(root))
			continue;
		/* Cannot fail: a valid root holds the MMU's reference, and
		 * invalidation needs mmu_lock for write, which we exclude. */
		TDP_ASSERT(root_get(root));
		goto out;
	}
	root = pt_cache_take(cache);
	root->is_root = true;
	root->level = (int8_t)level;
	root->as_id = (uint8_t)as_id;
	root->gfn = 0;
	atomic_store(&root->refcount, 2);
	cds_list_add_rcu(&root->link, &r->list);
	atomic_fetch_add(&r->nr_roots, 1);
out:
	pthread_mutex_unlock(&r->list_lock);
	return root;
}

int roots_invalidate_all(struct tdp_roots *r)
{
	struct tdp_pt_page *root;
	int n = 0;

	tdp_assert_held_write(r->mmu_lock);
	for_each_root_locked(r, root) {
		if (root_invalid(root))
			continue;
		root->scheduled_to_zap = true;
		atomic_store_explicit(&root->invalid, true,
				      memory_order_release);
		n++;
	}
	return n;
}

static bool root_match(struct tdp_pt_page *root, int as_id, bool only_valid)
{
	if (as_id >= 0 && root->as_id != (unsigned)as_id)
		return false;
	return !(only_valid && root_invalid(root));
}

struct tdp_pt_page *root_next(struct tdp_roots *r, struct tdp_pt_page *prev,
			      int as_id, bool only_valid)
{
	struct tdp_pt_page *next;

	tdp_assert_held(r->mmu_lock);
	tdp_rcu_read_lock();
	if (prev)
		next = cds_list_entry(rcu_dereference(prev->link.next),
				      struct tdp_pt_page, link);
	else
		next = cds_list_entry(rcu_dereference(r->list.next),
				      struct tdp_pt_page, link);
	while (&next->link != &r->list) {
		if (root_match(next, as_id, only_valid) && root_get(next))
			break;
		next = cds_list_entry(rcu_dereference(next->link.next),
				      struct tdp_pt_page, link);
	}
	tdp_rcu_read_unlock();
	if (prev)
		root_put(r, prev);
	return &next->link == &r->list ? NULL : next;
}
