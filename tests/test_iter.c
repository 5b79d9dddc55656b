/* SPDX-License-Identifier: MIT */
/*
 * test_iter.c - the table iterator (src/iter.c) over hand-built tables:
 * pre-order visiting order, [start, end) bounds, min_level, non-present
 * entries and huge leaves not descended, restart after a yield (also when
 * a table was replaced while the walker was away), 5-level roots.
 *
 * Every walk is compared with a recursive reference walk over the same
 * tables, written independently of the iterator.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "iter.h"
#include "pt.h"
#include "rcu.h"
#include "spte.h"

#define MAX_PAGES 64
#define MAX_VISITS 200000

struct tree {
	struct pt_alloc alloc;
	struct tdp_pt_page *root;
	struct tdp_pt_page *pages[MAX_PAGES];
	int npages;
};

struct visit {
	uint64_t gfn;
	uint64_t *sptep;
	uint64_t spte;
	int level;
};

struct walk {
	struct visit *v;
	size_t n;
};

static struct tdp_pt_page *tree_page(struct tree *t)
{
	struct tdp_pt_page *sp = pt_alloc_page(&t->alloc);

	assert_non_null(sp);
	assert_true(t->npages < MAX_PAGES);
	t->pages[t->npages++] = sp;
	return sp;
}

static void tree_init(struct tree *t, int root_level)
{
	memset(t, 0, sizeof(*t));
	assert_int_equal(pt_alloc_init(&t->alloc), 0);
	t->root = tree_page(t);
	t->root->is_root = true;
	t->root->level = (int8_t)root_level;
	t->root->gfn = 0;
}

/* Drop page @sp from the bookkeeping and free it. */
static void tree_free_page(struct tree *t, struct tdp_pt_page *sp)
{
	for (int i = 0; i < t->npages; i++)
		if (t->pages[i] == sp) {
			t->pages[i] = t->pages[--t->npages];
			pt_free_page(sp);
			return;
		}
	fail_msg("page not in tree");
}

static void tree_destroy(struct tree *t)
{
	while (t->npages)
		pt_free_page(t->pages[--t->npages]);
	assert_int_equal(atomic_load(&t->alloc.allocated), 0);
	pt_alloc_destroy(&t->alloc);
}

/* A new table linked at entry @i of @parent. */
static struct tdp_pt_page *link_table(struct tree *t,
				      struct tdp_pt_page *parent, unsigned i)
{
	struct tdp_pt_page *sp = tree_page(t);

	assert_true(parent->level > TDP_LEVEL_4K);
	sp->level = (int8_t)(parent->level - 1);
	sp->gfn = parent->gfn + (uint64_t)i * level_pages(parent->level);
	sp->ptep = &parent->spt[i];
	sp->as_id = 0;
	__atomic_store_n(&parent->spt[i], make_table_spte(sp->spt),
			 __ATOMIC_RELEASE);
	return sp;
}

static uint64_t leaf_at(struct tdp_pt_page *sp, unsigned i)
{
	uint64_t gfn = sp->gfn + (uint64_t)i * level_pages(sp->level);
	/* a recognisable pfn: derived from the gfn */
	uint64_t pfn = (gfn + 0x100000) & ~(level_pages(sp->level) - 1);
	uint64_t s = make_leaf_spte(pfn, sp->level, true, true, false, false);

	__atomic_store_n(&sp->spt[i], s, __ATOMIC_RELEASE);
	return gfn;
}

/* ---- reference walk: plain recursion over the tables ---- */

static void ref_walk_table(const uint64_t *spt, int level, uint64_t base,
			   int min_level, uint64_t start, uint64_t end,
			   struct walk *w)
{
	for (unsigned i = 0; i < SPTE_ENT_PER_PAGE; i++) {
		uint64_t gfn = base + (uint64_t)i * level_pages(level);
		uint64_t s = spt[i];

		if (gfn + level_pages(level) <= start)
			continue;
		if (gfn >= end)
			return;
		assert_true(w->n < MAX_VISITS);
		w->v[w->n++] = (struct visit){ gfn, (uint64_t *)&spt[i], s,
					       level };
		if (level > min_level && (s & SPTE_MMU_PRESENT) &&
		    !(s & SPTE_LARGE))
			ref_walk_table((const uint64_t *)(uintptr_t)(s &
								    SPTE_PFN_MASK),
				       level - 1, gfn, min_level, start, end,
				       w);
	}
}

static void ref_walk(struct tree *t, int min_level, uint64_t start,
		     uint64_t end, struct walk *w)
{
	w->n = 0;
	if (start >= end)
		return;
	ref_walk_table(t->root->spt, t->root->level, 0, min_level, start, end,
		       w);
}

static void iter_walk(struct tree *t, int min_level, uint64_t start,
		      uint64_t end, struct walk *w)
{
	struct tdp_iter it;

	w->n = 0;
	tdp_rcu_read_lock();
	for_each_tdp_pte_min_level(it, t->root, min_level, start, end) {
		assert_true(w->n < MAX_VISITS);
		assert_ptr_equal(it.sptep,
				 sptep_to_sp(it.sptep)->spt +
					 spte_index(it.gfn, it.level));
		assert_int_equal(it.old_spte, *it.sptep);
		assert_int_equal(tdp_iter_entry_end(&it),
				 it.gfn + level_pages(it.level));
		w->v[w->n++] = (struct visit){ it.gfn, it.sptep, it.old_spte,
					       it.level };
	}
	tdp_rcu_read_unlock();
}

static struct walk walk_new(void)
{
	struct walk w = { calloc(MAX_VISITS, sizeof(struct visit)), 0 };

	assert_non_null(w.v);
	return w;
}

static void assert_walks_equal(const struct walk *a, const struct walk *b)
{
	for (size_t i = 0; i < a->n && i < b->n; i++) {
		if (a->v[i].gfn != b->v[i].gfn ||
		    a->v[i].level != b->v[i].level ||
		    a->v[i].sptep != b->v[i].sptep ||
		    a->v[i].spte != b->v[i].spte)
			fail_msg("visit %zu: iterator (gfn %#llx level %d) "
				 "reference (gfn %#llx level %d)",
				 i, (unsigned long long)a->v[i].gfn,
				 a->v[i].level,
				 (unsigned long long)b->v[i].gfn,
				 b->v[i].level);
	}
	assert_int_equal(a->n, b->n);
}

/*
 * The test tree (root level 4):
 *   root[0] -> T3a (gfn 0)
 *     T3a[0] -> T2a (gfn 0)
 *       T2a[0] -> T1a: 4K leaves at gfn 1, 5, 511
 *       T2a[1] -> T1b: 4K leaves at gfn 512, 700
 *       T2a[2]    non-present value carrying a real table address (T1x,
 *                 which has a leaf): must not be descended
 *       T2a[3]    2M leaf (gfn 1536)
 *     T3a[1]    1G leaf (gfn 2^18)
 *     T3a[2] -> T2b (gfn 2^19): 2M leaf at index 5
 *   root[1] -> T3b (gfn 2^27) -> T2c -> T1c: leaf at 2^27 + 3
 *   root[511] -> T3z -> T2z -> T1z: leaf at the last gfn (2^36 - 1)
 */
struct test_tree {
	struct tree t;
	struct tdp_pt_page *t3a, *t2a, *t1a, *t1b, *t1x, *t2b, *t3b, *t1c,
		*t1z;
};

#define G1 (1ull << 18) /* gfns per 1G */
#define G512 (1ull << 27)
#define GMAX (1ull << 36)

static void build_test_tree(struct test_tree *tt)
{
	struct tree *t = &tt->t;
	struct tdp_pt_page *t2c, *t3z, *t2z;

	tree_init(t, 4);
	tt->t3a = link_table(t, t->root, 0);
	tt->t2a = link_table(t, tt->t3a, 0);
	tt->t1a = link_table(t, tt->t2a, 0);
	leaf_at(tt->t1a, 1);
	leaf_at(tt->t1a, 5);
	leaf_at(tt->t1a, 511);
	tt->t1b = link_table(t, tt->t2a, 1);
	leaf_at(tt->t1b, 0);
	leaf_at(tt->t1b, 700 - 512);
	/* T1x is linked, then its entry loses the present bit */
	tt->t1x = link_table(t, tt->t2a, 2);
	leaf_at(tt->t1x, 7);
	tt->t2a->spt[2] &= ~SPTE_MMU_PRESENT;
	leaf_at(tt->t2a, 3);
	leaf_at(tt->t3a, 1);
	tt->t2b = link_table(t, tt->t3a, 2);
	leaf_at(tt->t2b, 5);
	tt->t3b = link_table(t, t->root, 1);
	t2c = link_table(t, tt->t3b, 0);
	tt->t1c = link_table(t, t2c, 0);
	leaf_at(tt->t1c, 3);
	t3z = link_table(t, t->root, 511);
	t2z = link_table(t, t3z, 511);
	tt->t1z = link_table(t, t2z, 511);
	leaf_at(tt->t1z, 511);
}

static bool is_present_leaf_visit(const struct visit *v)
{
	return spte_is_present_leaf(v->spte, v->level);
}

/* The present leaves of a walk, as (gfn, level). */
static size_t leaves_of(const struct walk *w, uint64_t *gfn, int *level,
			size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < w->n; i++)
		if (is_present_leaf_visit(&w->v[i])) {
			assert_true(n < max);
			gfn[n] = w->v[i].gfn;
			level[n] = w->v[i].level;
			n++;
		}
	return n;
}

/* ------------------------------------------------------------------ */

static void test_preorder_full_walk(void **state)
{
	struct test_tree tt;
	struct walk w = walk_new(), ref = walk_new();
	uint64_t gfn[32];
	int level[32];
	size_t n;

	(void)state;
	build_test_tree(&tt);
	iter_walk(&tt.t, TDP_LEVEL_4K, 0, GMAX, &w);
	ref_walk(&tt.t, TDP_LEVEL_4K, 0, GMAX, &ref);
	assert_walks_equal(&w, &ref);

	/* every entry of every reachable table exactly once: the root and
	 * 11 linked tables (T1x is not reachable) */
	assert_int_equal(w.n, 512u * 12);

	/* pre-order: the first visit is root[0], then straight down */
	assert_int_equal(w.v[0].level, 4);
	assert_int_equal(w.v[0].gfn, 0);
	assert_int_equal(w.v[1].level, 3);
	assert_int_equal(w.v[2].level, 2);
	assert_int_equal(w.v[3].level, 1);
	assert_int_equal(w.v[3].gfn, 0);
	/* gfns never decrease; a level only drops by one (parent first) */
	for (size_t i = 1; i < w.n; i++) {
		assert_true(w.v[i].gfn >= w.v[i - 1].gfn);
		assert_true(w.v[i].level >= w.v[i - 1].level - 1);
		if (w.v[i].level == w.v[i - 1].level - 1) {
			/* a child: first entry of the table of its parent */
			assert_int_equal(w.v[i].gfn, w.v[i - 1].gfn);
			assert_true(spte_is_table(w.v[i - 1].spte,
						  w.v[i - 1].level));
			assert_ptr_equal(sptep_to_sp(w.v[i].sptep)->spt,
					 spte_to_table(w.v[i - 1].spte));
		}
	}

	/* the leaves, in order */
	n = leaves_of(&w, gfn, level, 32);
	const uint64_t exp_gfn[] = { 1, 5, 511, 512, 700, 1536, G1,
				     2 * G1 + 5 * 512, G512 + 3, GMAX - 1 };
	const int exp_level[] = { 1, 1, 1, 1, 1, 2, 3, 2, 1, 1 };

	assert_int_equal(n, 10);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(gfn[i], exp_gfn[i]);
		assert_int_equal(level[i], exp_level[i]);
	}

	/* nothing of T1x (behind a non-present entry) was visited, nor any
	 * entry below a huge leaf */
	for (size_t i = 0; i < w.n; i++) {
		assert_ptr_not_equal(sptep_to_sp(w.v[i].sptep), tt.t1x);
		if (w.v[i].level < 2)
			assert_false(w.v[i].gfn >= 1536 && w.v[i].gfn < 2048);
		if (w.v[i].level < 3)
			assert_false(w.v[i].gfn >= G1 && w.v[i].gfn < 2 * G1);
	}
	/* ...but the non-present entry itself was visited */
	bool seen = false;

	for (size_t i = 0; i < w.n; i++)
		if (w.v[i].sptep == &tt.t2a->spt[2]) {
			seen = true;
			assert_int_equal(w.v[i].level, 2);
			assert_int_equal(w.v[i].gfn, 1024);
			assert_false(spte_present(w.v[i].spte));
		}
	assert_true(seen);

	free(w.v);
	free(ref.v);
	tree_destroy(&tt.t);
}

static void check_bounds(struct test_tree *tt, int min_level, uint64_t start,
			 uint64_t end)
{
	struct walk w = walk_new(), ref = walk_new();

	iter_walk(&tt->t, min_level, start, end, &w);
	ref_walk(&tt->t, min_level, start, end, &ref);
	assert_walks_equal(&w, &ref);
	if (start < end && start < GMAX) {
		assert_true(w.n > 0);
		/* the first visit contains start, at the root level */
		assert_int_equal(w.v[0].level, 4);
		assert_true(w.v[0].gfn <= start);
		assert_true(start < w.v[0].gfn + level_pages(4));
	} else {
		assert_int_equal(w.n, 0);
	}
	for (size_t i = 0; i < w.n; i++) {
		/* intersects [start, end) */
		assert_true(w.v[i].gfn < end);
		assert_true(w.v[i].gfn + level_pages(w.v[i].level) > start);
		assert_true(w.v[i].level >= min_level);
	}
	free(w.v);
	free(ref.v);
}

static void test_bounds(void **state)
{
	struct test_tree tt;
	struct walk w = walk_new();
	uint64_t gfn[32];
	int level[32];

	(void)state;
	build_test_tree(&tt);
	check_bounds(&tt, 1, 0, 1);
	check_bounds(&tt, 1, 1, 2);
	check_bounds(&tt, 1, 5, 6);
	check_bounds(&tt, 1, 2, 5); /* nothing present in range */
	check_bounds(&tt, 1, 511, 513); /* crosses T1a -> T1b */
	check_bounds(&tt, 1, 300, 1600); /* into the 2M leaf */
	check_bounds(&tt, 1, 1537, 1538); /* inside the 2M leaf */
	check_bounds(&tt, 1, G1 - 1, G1 + 1); /* into the 1G leaf */
	check_bounds(&tt, 1, G1 + 100, 2 * G1 + 5 * 512 + 1);
	check_bounds(&tt, 1, G512 - 1, G512 + 4); /* crosses root entries */
	check_bounds(&tt, 1, GMAX - 2, GMAX);
	check_bounds(&tt, 1, 0, GMAX);
	check_bounds(&tt, 1, 5, 5);    /* empty */
	check_bounds(&tt, 1, 700, 5);  /* start > end */
	check_bounds(&tt, 1, GMAX, GMAX + 10); /* beyond the root */

	/* explicit: [511, 513) visits exactly the 4K entries 511 and 512 */
	iter_walk(&tt.t, 1, 511, 513, &w);
	size_t n4k = 0;

	for (size_t i = 0; i < w.n; i++)
		if (w.v[i].level == 1) {
			assert_int_equal(w.v[i].gfn, 511 + n4k);
			n4k++;
		}
	assert_int_equal(n4k, 2);
	assert_int_equal(leaves_of(&w, gfn, level, 32), 2);
	assert_int_equal(gfn[0], 511);
	assert_int_equal(gfn[1], 512);

	/* end is exclusive: [0, 5) does not see the leaf at 5 */
	iter_walk(&tt.t, 1, 0, 5, &w);
	assert_int_equal(leaves_of(&w, gfn, level, 32), 1);
	assert_int_equal(gfn[0], 1);

	/* a range starting inside a huge leaf visits the leaf (at its own
	 * gfn) and nothing below it */
	iter_walk(&tt.t, 1, G1 + 12345, G1 + 12346, &w);
	assert_int_equal(leaves_of(&w, gfn, level, 32), 1);
	assert_int_equal(gfn[0], G1);
	assert_int_equal(level[0], 3);
	assert_int_equal(w.v[w.n - 1].level, 3);

	/* 100 random ranges and min levels against the reference */
	uint64_t seed = 0x1234567;

	for (int i = 0; i < 100; i++) {
		uint64_t a, b;

		switch (i % 3) {
		case 0: /* small ranges in the dense first 2M */
			a = th_rand(&seed) % 2100;
			b = a + th_rand(&seed) % 1200;
			break;
		case 1:
			a = th_rand(&seed) % (3 * G1);
			b = a + th_rand(&seed) % (2 * G1);
			break;
		default:
			a = th_rand(&seed) % GMAX;
			b = a + th_rand(&seed) % (GMAX / 4);
			break;
		}
		check_bounds(&tt, 1 + (int)(th_rand(&seed) % 4), a, b);
	}
	free(w.v);
	tree_destroy(&tt.t);
}

static void test_min_level(void **state)
{
	struct test_tree tt;
	struct walk w = walk_new();

	(void)state;
	build_test_tree(&tt);
	for (int min = 1; min <= 4; min++) {
		check_bounds(&tt, min, 0, GMAX);
		iter_walk(&tt.t, min, 0, GMAX, &w);
		int lowest = 5;

		for (size_t i = 0; i < w.n; i++)
			if (w.v[i].level < lowest)
				lowest = w.v[i].level;
		assert_int_equal(lowest, min);
	}
	/* min_level 2 over the first 2M tables: T2a's 512 entries, with the
	 * table entries of T1a/T1b visited but not descended */
	iter_walk(&tt.t, 2, 0, 4 * 512, &w);
	assert_int_equal(w.n, 1 + 1 + 4); /* root[0], T3a[0], T2a[0..3] */
	assert_true(spte_is_table(w.v[2].spte, 2));
	assert_true(spte_is_table(w.v[3].spte, 2));
	assert_false(spte_present(w.v[4].spte));
	assert_true(spte_is_present_leaf(w.v[5].spte, 2));
	/* min_level 3: the 2M leaf under T2b is not reached */
	iter_walk(&tt.t, 3, G1, 3 * G1, &w);
	for (size_t i = 0; i < w.n; i++)
		assert_true(w.v[i].level >= 3);
	assert_int_equal(w.n, 1 + 2); /* root[0], T3a[1], T3a[2] */
	free(w.v);
	tree_destroy(&tt.t);
}

/* ------------------------------------------------------------------ */
/* yields                                                              */
/* ------------------------------------------------------------------ */

/* What happens while the walker is "away" in a yield. */
typedef void (*away_fn)(struct test_tree *tt, void *arg);

/*
 * Walk [start, end); at the first visit of the entry at (@yield_gfn,
 * @yield_level) yield instead of processing it (as the MMU's
 * cond_resched does: the entry is left for after the restart), run @away
 * outside RCU, and continue.  Records the present leaves processed.
 */
static size_t walk_with_yield(struct test_tree *tt, uint64_t start,
			      uint64_t end, uint64_t yield_gfn,
			      int yield_level, away_fn away, void *arg,
			      struct visit *out, size_t max, int *restarts)
{
	struct tdp_iter it;
	bool yielded = false;
	uint64_t resume = 0;
	size_t n = 0;

	*restarts = 0;
	tdp_rcu_read_lock();
	for_each_tdp_pte(it, tt->t.root, start, end) {
		if (!yielded && it.gfn == yield_gfn &&
		    it.level == yield_level) {
			uint64_t before = it.next_gfn;

			yielded = true;
			resume = it.next_gfn;
			/* the walk resumes where it was: at this entry */
			assert_true(resume >= it.gfn &&
				    resume < tdp_iter_entry_end(&it));
			tdp_rcu_read_unlock();
			if (away)
				away(tt, arg);
			tdp_rcu_read_lock();
			tdp_iter_mark_yielded(&it);
			assert_true(it.yielded);
			assert_int_equal(it.yielded_gfn, before);
			(*restarts)++;
			continue;
		}
		/* after the restart the first visit is at the root level */
		if (yielded && *restarts == 1) {
			assert_int_equal(it.level, it.root_level);
			assert_int_equal(it.next_gfn, resume);
			assert_int_equal(it.gfn,
					 gfn_round_for_level(resume,
							     it.root_level));
			assert_false(it.yielded);
			(*restarts)++;
		}
		if (!spte_is_present_leaf(it.old_spte, it.level))
			continue;
		assert_true(n < max);
		out[n++] = (struct visit){ it.gfn, it.sptep, it.old_spte,
					   it.level };
	}
	tdp_rcu_read_unlock();
	assert_true(yielded);
	return n;
}

static void expect_leaves(const struct visit *v, size_t n,
			  const uint64_t *gfn, const int *level, size_t m)
{
	for (size_t i = 0; i < n && i < m; i++) {
		if (v[i].gfn != gfn[i] || v[i].level != level[i])
			fail_msg("leaf %zu: got gfn %#llx level %d, want "
				 "%#llx level %d",
				 i, (unsigned long long)v[i].gfn, v[i].level,
				 (unsigned long long)gfn[i], level[i]);
	}
	assert_int_equal(n, m);
}

static void test_yield_restart(void **state)
{
	const uint64_t all_gfn[] = { 1, 5, 511, 512, 700, 1536, G1,
				     2 * G1 + 5 * 512, G512 + 3, GMAX - 1 };
	const int all_level[] = { 1, 1, 1, 1, 1, 2, 3, 2, 1, 1 };
	struct test_tree tt;
	struct visit v[64];
	int restarts;
	size_t n;

	(void)state;
	build_test_tree(&tt);

	/* yield at each leaf of the full walk in turn: every leaf is still
	 * processed exactly once, in order */
	for (unsigned y = 0; y < 10; y++) {
		n = walk_with_yield(&tt, 0, GMAX, all_gfn[y], all_level[y],
				    NULL, NULL, v, 64, &restarts);
		assert_int_equal(restarts, 2);
		expect_leaves(v, n, all_gfn, all_level, 10);
	}
	/* yield at a table entry (T2a[1] -> T1b) and at a root entry */
	n = walk_with_yield(&tt, 0, GMAX, 512, 2, NULL, NULL, v, 64,
			    &restarts);
	expect_leaves(v, n, all_gfn, all_level, 10);
	n = walk_with_yield(&tt, 0, GMAX, G512, 4, NULL, NULL, v, 64,
			    &restarts);
	expect_leaves(v, n, all_gfn, all_level, 10);
	/* yield at a non-present 4K entry between leaves */
	n = walk_with_yield(&tt, 0, GMAX, 3, 1, NULL, NULL, v, 64, &restarts);
	expect_leaves(v, n, all_gfn, all_level, 10);

	/* a bounded walk: [5, 2^18 + 1) yielding at 700 */
	n = walk_with_yield(&tt, 5, G1 + 1, 700, 1, NULL, NULL, v, 64,
			    &restarts);
	expect_leaves(v, n, all_gfn + 1, all_level + 1, 6);
	tree_destroy(&tt.t);
}

/* Replace T2a[0] (T1a: 1, 5, 511) by a new table with other leaves. */
struct replace_arg {
	struct tdp_pt_page *old, *new;
	bool huge;
};

static void replace_t1a(struct test_tree *tt, void *p)
{
	struct replace_arg *a = p;

	a->old = tt->t1a;
	if (a->huge) {
		/* a 2M leaf replaces the whole table */
		leaf_at(tt->t2a, 0);
		a->new = NULL;
	} else {
		/* link_table overwrites T2a[0] with the new table */
		a->new = link_table(&tt->t, tt->t2a, 0);
		leaf_at(a->new, 4);
		leaf_at(a->new, 6);
		leaf_at(a->new, 300);
	}
	/* the old table is gone from the tree: poison it as a freed table
	 * would be (kept allocated so a stale walker would read poison, not
	 * freed memory, and be caught by the checks below) */
	for (int i = 0; i < SPTE_ENT_PER_PAGE; i++)
		a->old->spt[i] = PT_POISON;
	tt->t1a = NULL;
}

static void test_yield_table_replaced(void **state)
{
	struct test_tree tt;
	struct replace_arg a = { 0 };
	struct visit v[64];
	int restarts;
	size_t n;

	(void)state;
	/* yield at leaf 5 inside T1a; T1a is replaced by a table with leaves
	 * 4, 6, 300: the walk continues at gfn 5 in the NEW table */
	build_test_tree(&tt);
	n = walk_with_yield(&tt, 0, 2048, 5, 1, replace_t1a, &a, v, 64,
			    &restarts);
	{
		const uint64_t g[] = { 1, 6, 300, 512, 700, 1536 };
		const int l[] = { 1, 1, 1, 1, 1, 2 };

		expect_leaves(v, n, g, l, 6);
	}
	for (size_t i = 1; i < n; i++)
		assert_ptr_not_equal(sptep_to_sp(v[i].sptep), a.old);
	assert_ptr_equal(sptep_to_sp(v[1].sptep), a.new);
	tree_free_page(&tt.t, a.old);
	tree_destroy(&tt.t);

	/* same, but a 2M leaf replaces the table: the walk resumes at the
	 * huge leaf containing gfn 5 and does not descend */
	memset(&a, 0, sizeof(a));
	a.huge = true;
	build_test_tree(&tt);
	n = walk_with_yield(&tt, 0, 2048, 5, 1, replace_t1a, &a, v, 64,
			    &restarts);
	{
		const uint64_t g[] = { 1, 0, 512, 700, 1536 };
		const int l[] = { 1, 2, 1, 1, 2 };

		expect_leaves(v, n, g, l, 5);
	}
	assert_ptr_equal(v[1].sptep, &tt.t2a->spt[0]);
	tree_free_page(&tt.t, a.old);
	tree_destroy(&tt.t);
}

/* A yield that leaves next_gfn where the walk was, followed by a removal
 * of everything: the restart sees an empty tree and ends. */
static void zap_root0(struct test_tree *tt, void *p)
{
	(void)p;
	tt->t.root->spt[0] = SPTE_NONPRESENT;
}

static void test_yield_subtree_zapped(void **state)
{
	struct test_tree tt;
	struct visit v[64];
	int restarts;
	size_t n;

	(void)state;
	build_test_tree(&tt);
	n = walk_with_yield(&tt, 0, GMAX, 511, 1, zap_root0, NULL, v, 64,
			    &restarts);
	{
		const uint64_t g[] = { 1, 5, G512 + 3, GMAX - 1 };
		const int l[] = { 1, 1, 1, 1 };

		expect_leaves(v, n, g, l, 4);
	}
	tree_destroy(&tt.t);
}

/* ------------------------------------------------------------------ */
/* 5-level roots                                                       */
/* ------------------------------------------------------------------ */

static void test_five_level(void **state)
{
	struct tree t;
	struct tdp_pt_page *t4, *t3, *t2, *t1;
	struct walk w = walk_new(), ref = walk_new();
	uint64_t gfn[8];
	int level[8];

	(void)state;
	tree_init(&t, 5);
	t4 = link_table(&t, t.root, 1); /* gfn 2^36 */
	t3 = link_table(&t, t4, 0);
	t2 = link_table(&t, t3, 0);
	t1 = link_table(&t, t2, 0);
	leaf_at(t1, 7);
	leaf_at(t3, 9); /* 1G leaf */

	iter_walk(&t, 1, GMAX, GMAX + 8, &w);
	ref_walk(&t, 1, GMAX, GMAX + 8, &ref);
	assert_walks_equal(&w, &ref);
	assert_int_equal(leaves_of(&w, gfn, level, 8), 1);
	assert_int_equal(gfn[0], GMAX + 7);
	assert_int_equal(w.v[0].level, 5);
	assert_int_equal(w.v[0].gfn, GMAX);

	iter_walk(&t, 1, 0, 1ull << 45, &w);
	ref_walk(&t, 1, 0, 1ull << 45, &ref);
	assert_walks_equal(&w, &ref);
	assert_int_equal(leaves_of(&w, gfn, level, 8), 2);
	assert_int_equal(gfn[1], GMAX + 9 * G1);
	assert_int_equal(level[1], 3);
	/* nothing past the 5-level range */
	iter_walk(&t, 1, 1ull << 45, (1ull << 45) + 100, &w);
	assert_int_equal(w.n, 0);

	free(w.v);
	free(ref.v);
	tree_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_preorder_full_walk),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_min_level),
		cmocka_unit_test(test_yield_restart),
		cmocka_unit_test(test_yield_table_replaced),
		cmocka_unit_test(test_yield_subtree_zapped),
		cmocka_unit_test(test_five_level),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
