/* SPDX-License-Identifier: MIT */
/*
 * test_root.c - roots (src/root.c): reuse by role, reference counts, root
 * iterators and their references, invalidation, the zap of invalidated
 * roots, the last put; and through the public API: roots shared by vCPUs,
 * one per address space, replaced after tdp_vm_invalidate_roots.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "mmu.h"
#include "rcu.h"
#include "root.h"
#include "vm.h"

static int refs(struct tdp_pt_page *root)
{
	return atomic_load(&root->refcount);
}

struct mmu_fixture {
	struct tdp_mmu mmu;
	struct vm_stats stats;
	struct pt_cache cache;
	int flushes;
};

static void count_flush(void *arg)
{
	(*(int *)arg)++;
}

static struct mmu_fixture *fixture_new(int root_level)
{
	struct mmu_fixture *f = calloc(1, sizeof(*f));

	static const struct tdp_mmu_ops ops = {
		.flush_remote_tlbs = count_flush,
	};

	assert_non_null(f);
	assert_int_equal(tdp_mmu_init(&f->mmu, root_level, TDP_LEVEL_1G,
				      &f->stats, &ops, &f->flushes),
			 0);
	assert_int_equal(pt_cache_topup(&f->mmu.alloc, &f->cache,
					 PT_CACHE_MAX),
			 0);
	return f;
}

static void fixture_free(struct mmu_fixture *f)
{
	pt_cache_drain(&f->cache);
	tdp_rcu_barrier();
	assert_int_equal(atomic_load(&f->mmu.alloc.allocated), 0);
	tdp_mmu_destroy(&f->mmu);
	free(f);
}

static struct tdp_pt_page *get_root(struct mmu_fixture *f, unsigned as_id,
				    int level)
{
	struct tdp_pt_page *root;

	assert_int_equal(pt_cache_topup(&f->mmu.alloc, &f->cache, 1), 0);
	tdp_write_lock(&f->mmu.lock);
	root = root_get_or_alloc(&f->mmu.roots, as_id, level, false, &f->cache);
	tdp_write_unlock(&f->mmu.lock);
	assert_non_null(root);
	return root;
}

static long allocated(struct mmu_fixture *f)
{
	return atomic_load(&f->mmu.alloc.allocated);
}

/* Every put runs under mmu_lock (root.h). */
static void put_root(struct mmu_fixture *f, struct tdp_pt_page *r)
{
	tdp_read_lock(&f->mmu.lock);
	root_put(&f->mmu.roots, r);
	tdp_read_unlock(&f->mmu.lock);
}

/* Invalidate everything, drop the MMU's references and wait for frees. */
static void invalidate_and_zap(struct mmu_fixture *f)
{
	tdp_write_lock(&f->mmu.lock);
	tdp_mmu_invalidate_roots(&f->mmu, ROOTS_VALID);
	tdp_write_unlock(&f->mmu.lock);
	tdp_mmu_zap_invalidated_roots(&f->mmu, true);
	tdp_rcu_barrier();
}

/* ------------------------------------------------------------------ */

static void test_reuse_by_role(void **state)
{
	struct mmu_fixture *f = fixture_new(4);
	struct tdp_pt_page *a, *b, *c, *d;

	(void)state;
	a = get_root(f, 0, 4);
	assert_true(a->is_root);
	assert_int_equal(a->level, 4);
	assert_int_equal(a->as_id, 0);
	assert_false(root_invalid(a));
	assert_int_equal(refs(a), 2); /* MMU + caller */
	assert_int_equal(atomic_load(&f->mmu.roots.nr_roots), 1);
	for (int i = 0; i < SPTE_ENT_PER_PAGE; i++)
		assert_int_equal(a->spt[i], SPTE_NONPRESENT);

	b = get_root(f, 0, 4);
	assert_ptr_equal(a, b);
	assert_int_equal(refs(a), 3);
	assert_int_equal(atomic_load(&f->mmu.roots.nr_roots), 1);

	/* another address space: another root */
	c = get_root(f, 1, 4);
	assert_ptr_not_equal(c, a);
	assert_int_equal(c->as_id, 1);
	assert_int_equal(refs(c), 2);
	assert_int_equal(refs(a), 3);
	/* another level: another root */
	d = get_root(f, 0, 5);
	assert_ptr_not_equal(d, a);
	assert_ptr_not_equal(d, c);
	assert_int_equal(d->level, 5);
	assert_int_equal(atomic_load(&f->mmu.roots.nr_roots), 3);

	/* drop the callers' references: the MMU's keep them alive */
	put_root(f, a);
	put_root(f, b);
	put_root(f, c);
	put_root(f, d);
	assert_int_equal(refs(a), 1);
	assert_int_equal(refs(c), 1);
	assert_int_equal(atomic_load(&f->mmu.roots.nr_roots), 3);
	/* a valid root with only the MMU's reference is still reused */
	b = get_root(f, 0, 4);
	assert_ptr_equal(a, b);
	assert_int_equal(refs(a), 2);
	put_root(f, b);

	invalidate_and_zap(f);
	assert_int_equal(atomic_load(&f->mmu.roots.nr_roots), 0);
	fixture_free(f);
}

static void test_invalidate_makes_new_root(void **state)
{
	struct mmu_fixture *f = fixture_new(4);
	struct tdp_pt_page *a, *b, *c;
	long base;

	(void)state;
	a = get_root(f, 0, 4);
	c = get_root(f, 1, 4);
	base = allocated(f);

	tdp_write_lock(&f->mmu.lock);
	assert_int_equal(roots_invalidate(&f->mmu.roots, ROOTS_VALID), 2);
	assert_int_equal(roots_invalidate(&f->mmu.roots, ROOTS_VALID), 0);
	tdp_write_unlock(&f->mmu.lock);
	assert_true(root_invalid(a));
	assert_true(root_invalid(c));
	assert_true(a->scheduled_to_zap);
	/* invalidation drops no reference: the zap does */
	assert_int_equal(refs(a), 2);
	assert_int_equal(refs(c), 2);

	b = get_root(f, 0, 4);
	assert_ptr_not_equal(a, b);
	assert_false(root_invalid(b));
	assert_int_equal(refs(b), 2);
	assert_int_equal(atomic_load(&f->mmu.roots.nr_roots), 3);

	/* the zap drops the MMU's reference of the invalidated roots only */
	tdp_mmu_zap_invalidated_roots(&f->mmu, true);
	assert_int_equal(refs(a), 1);
	assert_int_equal(refs(c), 1);
	assert_int_equal(refs(b), 2);
	assert_false(a->scheduled_to_zap);
	assert_int_equal(atomic_load(&f->mmu.roots.nr_roots), 3);
	/* a second zap does not drop anything again */
	tdp_mmu_zap_invalidated_roots(&f->mmu, true);
	assert_int_equal(refs(a), 1);

	/* root_get on a live invalid root still works (refcount > 0) */
	assert_true(root_get(a));
	assert_int_equal(refs(a), 2);
	put_root(f, a);

	/* the last put unlinks and frees (after a grace period) */
	put_root(f, a);
	assert_int_equal(atomic_load(&f->mmu.roots.nr_roots), 2);
	put_root(f, c);
	assert_int_equal(atomic_load(&f->mmu.roots.nr_roots), 1);
	tdp_rcu_barrier();
	/* b came from the (already counted) cache; a and c are freed */
	assert_int_equal(allocated(f), base - 2);
	/* the list now holds only b */
	tdp_write_lock(&f->mmu.lock);
	{
		struct tdp_pt_page *r;
		int n = 0;

		for_each_root_locked(&f->mmu.roots, r) {
			assert_ptr_equal(r, b);
			n++;
		}
		assert_int_equal(n, 1);
	}
	tdp_write_unlock(&f->mmu.lock);

	put_root(f, b);
	invalidate_and_zap(f);
	assert_int_equal(atomic_load(&f->mmu.roots.nr_roots), 0);
	fixture_free(f);
}

static void test_root_get_zero(void **state)
{
	struct mmu_fixture *f = fixture_new(4);
	struct tdp_pt_page *sp = pt_alloc_page(&f->mmu.alloc);

	(void)state;
	assert_non_null(sp);
	assert_int_equal(refs(sp), 0);
	assert_false(root_get(sp));
	assert_int_equal(refs(sp), 0); /* not incremented from zero */
	atomic_store(&sp->refcount, 1);
	assert_true(root_get(sp));
	assert_int_equal(refs(sp), 2);
	pt_free_page(sp);
	fixture_free(f);
}

/* ------------------------------------------------------------------ */
/* iterators                                                           */
/* ------------------------------------------------------------------ */

static void test_root_iterators(void **state)
{
	struct mmu_fixture *f = fixture_new(4);
	struct tdp_pt_page *r0, *r1, *inv, *root, *seen[8];
	int n;

	(void)state;
	inv = get_root(f, 0, 4);
	tdp_write_lock(&f->mmu.lock);
	roots_invalidate(&f->mmu.roots, ROOTS_VALID);
	tdp_write_unlock(&f->mmu.lock);
	r0 = get_root(f, 0, 4);
	r1 = get_root(f, 1, 4);
	assert_ptr_not_equal(r0, inv);

	/* all roots, valid or not: each handed out with one more reference,
	 * which is dropped when the loop moves on */
	tdp_write_lock(&f->mmu.lock);
	n = 0;
	for_each_root_yield_safe(&f->mmu.roots, root, -1, ROOTS_ALL) {
		assert_true(n < 8);
		seen[n] = root;
		/* each has 2 outside the loop (MMU + caller) */
		assert_int_equal(refs(root), 3);
		n++;
	}
	assert_int_equal(n, 3);
	assert_int_equal(refs(inv), 2);
	assert_int_equal(refs(r0), 2);
	assert_int_equal(refs(r1), 2);
	{
		bool s_inv = false, s_r0 = false, s_r1 = false;

		for (int i = 0; i < n; i++) {
			s_inv |= seen[i] == inv;
			s_r0 |= seen[i] == r0;
			s_r1 |= seen[i] == r1;
		}
		assert_true(s_inv && s_r0 && s_r1);
	}

	/* only valid: the invalid root is skipped (and never referenced) */
	n = 0;
	for_each_root_yield_safe(&f->mmu.roots, root, -1, ROOTS_VALID) {
		assert_ptr_not_equal(root, inv);
		assert_false(root_invalid(root));
		assert_int_equal(refs(root), 3);
		assert_int_equal(refs(inv), 2);
		n++;
	}
	assert_int_equal(n, 2);

	/* by address space */
	n = 0;
	for_each_root_yield_safe(&f->mmu.roots, root, 1, ROOTS_ALL) {
		assert_ptr_equal(root, r1);
		n++;
	}
	assert_int_equal(n, 1);
	n = 0;
	for_each_root_yield_safe(&f->mmu.roots, root, 0, ROOTS_VALID) {
		assert_ptr_equal(root, r0);
		n++;
	}
	assert_int_equal(n, 1);
	n = 0;
	for_each_root_yield_safe(&f->mmu.roots, root, 0, ROOTS_ALL)
		n++;
	assert_int_equal(n, 2);

	/* early exit with root_iter_break drops the reference */
	for_each_root_yield_safe(&f->mmu.roots, root, -1, ROOTS_ALL) {
		assert_int_equal(refs(root), 3);
		root_iter_break(&f->mmu.roots, root);
		break;
	}
	assert_int_equal(refs(inv), 2);
	assert_int_equal(refs(r0), 2);
	assert_int_equal(refs(r1), 2);

	/* early exit keeping the reference on purpose */
	for_each_root_yield_safe(&f->mmu.roots, root, 1, ROOTS_VALID)
		break;
	assert_ptr_equal(root, r1);
	assert_int_equal(refs(r1), 3);
	root_put(&f->mmu.roots, root);
	assert_int_equal(refs(r1), 2);

	/* manual stepping with root_next */
	root = root_next(&f->mmu.roots, NULL, -1, ROOTS_VALID);
	assert_non_null(root);
	assert_int_equal(refs(root), 3);
	{
		struct tdp_pt_page *next = root_next(&f->mmu.roots, root, -1,
						     ROOTS_VALID);

		assert_non_null(next);
		assert_ptr_not_equal(next, root);
		assert_int_equal(refs(root), 2); /* prev put */
		assert_int_equal(refs(next), 3);
		assert_null(root_next(&f->mmu.roots, next, -1, ROOTS_VALID));
		assert_int_equal(refs(next), 2);
	}
	tdp_write_unlock(&f->mmu.lock);

	/* The body may yield mmu_lock while holding the iterator's reference;
	 * a root invalidated and zapped meanwhile stays alive until the
	 * iterator moves on, and its last put (by the iterator) frees it. */
	put_root(f, inv); /* inv: only the MMU's ref left */
	tdp_write_lock(&f->mmu.lock);
	n = 0;
	for_each_root_yield_safe(&f->mmu.roots, root, -1, ROOTS_ALL) {
		if (root != inv) {
			n++;
			continue;
		}
		assert_int_equal(refs(inv), 2);
		tdp_write_unlock(&f->mmu.lock);
		tdp_mmu_zap_invalidated_roots(&f->mmu, true); /* drops MMU ref */
		tdp_write_lock(&f->mmu.lock);
		assert_int_equal(refs(inv), 1); /* only ours */
		assert_int_equal(atomic_load(&f->mmu.roots.nr_roots), 3);
		n++;
	}
	assert_int_equal(n, 3);
	tdp_write_unlock(&f->mmu.lock);
	assert_int_equal(atomic_load(&f->mmu.roots.nr_roots), 2);

	put_root(f, r0);
	put_root(f, r1);
	invalidate_and_zap(f);
	assert_int_equal(atomic_load(&f->mmu.roots.nr_roots), 0);
	fixture_free(f);
}

/* ------------------------------------------------------------------ */
/* zap of invalidated roots, flushes, the last put                     */
/* ------------------------------------------------------------------ */

static enum tdp_map_ret map_one(struct mmu_fixture *f, struct tdp_pt_page *root,
				uint64_t gfn, uint64_t pfn, int level)
{
	struct tdp_fault flt = {
		.gfn = gfn,
		.pfn = pfn,
		.goal_level = level,
		.as_id = root->as_id,
		.map_writable = true,
		.host_writable = true,
	};
	enum tdp_map_ret r;

	assert_int_equal(pt_cache_topup(&f->mmu.alloc, &f->cache,
					 PT_CACHE_MAX),
			 0);
	tdp_write_lock(&f->mmu.lock);
	r = tdp_mmu_map(&f->mmu, root, &flt, &f->cache);
	tdp_write_unlock(&f->mmu.lock);
	return r;
}

static void test_zap_and_last_put(void **state)
{
	struct mmu_fixture *f = fixture_new(4);
	struct tdp_pt_page *a, *b;
	struct tdp_flush_ctx ctx = { 0 };
	long base;

	(void)state;
	base = allocated(f); /* the cache */
	a = get_root(f, 0, 4);
	b = get_root(f, 1, 4);
	assert_int_equal(map_one(f, a, 0x12345, 0x777, TDP_LEVEL_4K),
			 MAP_FIXED);
	assert_int_equal(map_one(f, a, 0x12345, 0x777, TDP_LEVEL_4K),
			 MAP_SPURIOUS);
	assert_int_equal(map_one(f, a, 0x40000, 0x80000, TDP_LEVEL_1G),
			 MAP_FIXED);
	assert_int_equal(map_one(f, b, 0x200, 0x400, TDP_LEVEL_2M), MAP_FIXED);
	assert_int_equal(stat_slot_sum(&f->stats, pages[1]), 1);
	assert_int_equal(stat_slot_sum(&f->stats, pages[2]), 1);
	assert_int_equal(stat_slot_sum(&f->stats, pages[3]), 1);
	/* a: L3, L2, L1 tables; b: L3, L2 */
	assert_int_equal(stat_slot_sum(&f->stats, pt_pages), 5);
	assert_int_equal(f->flushes, 0); /* installing owes no flush */

	/* a zap of valid roots owes a flush, done before unlock */
	tdp_write_lock(&f->mmu.lock);
	tdp_mmu_zap_gfn_range(&f->mmu, 0, 0x12345, 0x12346, ROOTS_VALID, false, &ctx);
	assert_true(ctx.flush);
	tdp_mmu_flush_and_free(&f->mmu, &ctx);
	tdp_write_unlock(&f->mmu.lock);
	assert_int_equal(f->flushes, 1);
	assert_int_equal(stat_slot_sum(&f->stats, pages[1]), 0);
	assert_int_equal(stat_slot_sum(&f->stats, pages[3]), 1);
	/* zapping an empty range: nothing owed */
	tdp_write_lock(&f->mmu.lock);
	tdp_mmu_zap_gfn_range(&f->mmu, 0, 0x12345, 0x12346, ROOTS_VALID, false, &ctx);
	assert_false(ctx.flush);
	tdp_mmu_flush_and_free(&f->mmu, &ctx);
	tdp_write_unlock(&f->mmu.lock);
	assert_int_equal(f->flushes, 1);

	/* the callers drop their references; the MMU's keep the roots */
	put_root(f, a);
	put_root(f, b);
	assert_int_equal(refs(a), 1);
	assert_int_equal(atomic_load(&f->mmu.roots.nr_roots), 2);

	/* invalidate + zap: tables emptied, MMU reference dropped, that was
	 * the last one, so the roots are unlinked and freed after a grace
	 * period.  Zapping invalidated roots needs no flush (mmu.h). */
	tdp_write_lock(&f->mmu.lock);
	assert_int_equal(tdp_mmu_invalidate_roots(&f->mmu, ROOTS_VALID), 2);
	tdp_write_unlock(&f->mmu.lock);
	tdp_mmu_zap_invalidated_roots(&f->mmu, true);
	assert_int_equal(f->flushes, 1);
	assert_int_equal(atomic_load(&f->mmu.roots.nr_roots), 0);
	assert_int_equal(stat_slot_sum(&f->stats, pages[1]), 0);
	assert_int_equal(stat_slot_sum(&f->stats, pages[2]), 0);
	assert_int_equal(stat_slot_sum(&f->stats, pages[3]), 0);
	assert_int_equal(stat_slot_sum(&f->stats, pt_pages), 0);
	tdp_rcu_barrier();
	/* every table and both roots are back; only the cache remains */
	assert_int_equal(allocated(f), f->cache.n);
	assert_true(allocated(f) <= base);
	tdp_write_lock(&f->mmu.lock);
	assert_true(tdp_rcu_list_empty(&f->mmu.roots.list));
	tdp_write_unlock(&f->mmu.lock);
	fixture_free(f);
}

/* A held root survives the zap emptied; the holder's put frees it. */
static void test_held_root_survives_zap(void **state)
{
	struct mmu_fixture *f = fixture_new(4);
	struct tdp_pt_page *a;

	(void)state;
	a = get_root(f, 0, 4);
	assert_int_equal(map_one(f, a, 0x999, 0x123, TDP_LEVEL_4K), MAP_FIXED);
	invalidate_and_zap(f);
	assert_int_equal(refs(a), 1);
	assert_int_equal(atomic_load(&f->mmu.roots.nr_roots), 1);
	for (int i = 0; i < SPTE_ENT_PER_PAGE; i++)
		assert_false(spte_present(a->spt[i]));
	assert_int_equal(stat_slot_sum(&f->stats, pt_pages), 0);
	assert_int_equal(stat_slot_sum(&f->stats, pages[1]), 0);
	put_root(f, a);
	assert_int_equal(atomic_load(&f->mmu.roots.nr_roots), 0);
	fixture_free(f);
}

/* The last put of a VALID root is a bug the library catches (root.h: "A
 * valid root can never reach zero"). */
static int last_put_of_valid_root(int unused)
{
	struct mmu_fixture *f = fixture_new(4);
	struct tdp_pt_page *a = get_root(f, 0, 4);

	(void)unused;
	put_root(f, a);
	put_root(f, a); /* drops the MMU's reference */
	return 0;
}

static void test_last_put_of_valid_root_aborts(void **state)
{
	struct th_child c;

	(void)state;
	th_run_child(last_put_of_valid_root, 0, 10, &c);
	assert_true(th_child_aborted_with(&c, "last put of a valid root"));
}

/* ------------------------------------------------------------------ */
/* through the public API                                              */
/* ------------------------------------------------------------------ */

static void test_public_roots(void **state)
{
	struct tdp_vm_config cfg = { .nr_as = 2 };
	struct tdp_host *h;
	struct tdp_vm *vm;
	struct tdp_vcpu *a, *b, *c;
	uint64_t hva0, hva1, x = 0, y = 0;
	const uint64_t v0 = 0xa5a5a5a5a5a5a5a5ull, v1 = 0x5a5a5a5a5a5a5a5bull;

	(void)state;
	assert_int_equal(tdp_host_create(NULL, &h), 0);
	hva0 = th_host_map(h, 2 * MiB, TDP_PROT_READ | TDP_PROT_WRITE,
			   TDP_PAGE_SIZE);
	hva1 = th_host_map(h, 2 * MiB, TDP_PROT_READ | TDP_PROT_WRITE,
			   TDP_PAGE_SIZE);
	assert_int_equal(tdp_host_write(h, hva0, &v0, 8), 0);
	assert_int_equal(tdp_host_write(h, hva1, &v1, 8), 0);
	assert_int_equal(tdp_vm_create(h, &cfg, &vm), 0);
	/* the same gpa range in both address spaces, different memory */
	struct tdp_memslot s0 = { .as_id = 0, .slot = 0, .gpa = 0,
				  .size = 2 * MiB, .hva = hva0 };
	struct tdp_memslot s1 = { .as_id = 1, .slot = 0, .gpa = 0,
				  .size = 2 * MiB, .hva = hva1 };

	assert_int_equal(tdp_vm_set_memslot(vm, &s0), 0);
	assert_int_equal(tdp_vm_set_memslot(vm, &s1), 0);
	assert_int_equal(tdp_vcpu_create(vm, 0, &a), 0);
	assert_int_equal(tdp_vcpu_create(vm, 1, &b), 0);
	assert_int_equal(tdp_vcpu_create(vm, 2, &c), 0);
	assert_int_equal(th_vm_stats(vm).roots, 0); /* loaded on first entry */

	/* two vCPUs of one address space share one root */
	assert_int_equal(tdp_vcpu_read(a, 0, &x, 8), 0);
	assert_int_equal(x, v0);
	assert_int_equal(th_vm_stats(vm).roots, 1);
	assert_int_equal(tdp_vcpu_read(b, 8, &y, 8), 0);
	assert_int_equal(th_vm_stats(vm).roots, 1);
	assert_ptr_equal(a->root[0], b->root[0]);
	assert_int_equal(refs(a->root[0]), 3); /* MMU + a + b */
	assert_int_equal(th_vm_stats(vm).root_reloads, 2);

	/* a vCPU in address space 1 gets a second root and sees AS 1 */
	assert_int_equal(tdp_vcpu_set_as(c, 1), 0);
	assert_int_equal(tdp_vcpu_set_as(c, 2), -EINVAL);
	assert_int_equal(tdp_vcpu_read(c, 0, &x, 8), 0);
	assert_int_equal(x, v1);
	assert_int_equal(th_vm_stats(vm).roots, 2);
	assert_ptr_not_equal(c->root[1], a->root[0]);
	assert_int_equal(c->root[1]->as_id, 1);
	/* back to address space 0: shares a's root, keeps its AS 1 root */
	assert_int_equal(tdp_vcpu_set_as(c, 0), 0);
	assert_int_equal(tdp_vcpu_read(c, 0, &x, 8), 0);
	assert_int_equal(x, v0);
	assert_ptr_equal(c->root[0], a->root[0]);
	assert_int_equal(th_vm_stats(vm).roots, 2);
	assert_int_equal(tdp_vcpu_set_as(c, 1), 0);
	th_audit_clean(vm);

	struct tdp_pt_page *old0 = a->root[0], *old1 = c->root[1];

	/* invalidate: old roots stay while vCPUs still hold them */
	assert_int_equal(tdp_vm_invalidate_roots(vm), 0);
	assert_true(root_invalid(old0));
	assert_true(root_invalid(old1));
	assert_int_equal(th_vm_stats(vm).roots, 2);
	/* a reloads: a new root; b still holds the old one (and so does c) */
	assert_int_equal(tdp_vcpu_read(a, 0, &x, 8), 0);
	assert_int_equal(x, v0);
	assert_ptr_not_equal(a->root[0], old0);
	assert_false(root_invalid(a->root[0]));
	assert_int_equal(th_vm_stats(vm).roots, 3);
	/* b reloads: shares a's new root */
	assert_int_equal(tdp_vcpu_read(b, 0, &x, 8), 0);
	assert_ptr_equal(b->root[0], a->root[0]);
	assert_int_equal(th_vm_stats(vm).roots, 3); /* c holds old0, old1 */
	/* c (in AS 1) reloads: drops both invalid roots, loads a new AS 1 */
	assert_int_equal(tdp_vcpu_read(c, 0, &x, 8), 0);
	assert_int_equal(x, v1);
	assert_ptr_not_equal(c->root[1], old1);
	assert_null(c->root[0]);
	assert_int_equal(th_vm_stats(vm).roots, 2);
	th_audit_clean(vm);

	/* destroying a vCPU drops its roots; the MMU keeps valid ones */
	tdp_vcpu_destroy(c);
	assert_int_equal(th_vm_stats(vm).roots, 2);
	assert_int_equal(tdp_vm_invalidate_roots(vm), 0);
	/* a and b still hold the AS 0 root; the AS 1 one had only the MMU */
	assert_int_equal(th_vm_stats(vm).roots, 1);
	tdp_vcpu_destroy(a);
	tdp_vcpu_destroy(b);
	assert_int_equal(th_vm_stats(vm).roots, 0);
	tdp_vm_destroy(vm);
	tdp_host_destroy(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reuse_by_role),
		cmocka_unit_test(test_invalidate_makes_new_root),
		cmocka_unit_test(test_root_get_zero),
		cmocka_unit_test(test_root_iterators),
		cmocka_unit_test(test_zap_and_last_put),
		cmocka_unit_test(test_held_root_survives_zap),
		cmocka_unit_test(test_last_put_of_valid_root_aborts),
		cmocka_unit_test(test_public_roots),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
