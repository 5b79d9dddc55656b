/* SPDX-License-Identifier: MIT */
/*
 * test_ext.c - the external page table (src/ext.c): building a path
 * root -> L3 -> L2 -> L1 and mapping, looking up and removing leaves; every
 * ordering rule, each broken on purpose and rejected with its errno and no
 * state change; argument checks (levels, alignment, range); 5-level trees;
 * the counts; concurrent callers on disjoint and shared entries; freeing a
 * non-empty tree (the ASan build checks nothing leaks).
 *
 * "No state change" is checked against a full dump of the tree taken with
 * ext_lookup alone (every present entry of every reachable table), and the
 * counts, before and after each rejected call.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ext.h"
#include "helpers.h"

/* Entry sizes in gfns. */
#define L1_PAGES 1ull
#define L2_PAGES (1ull << 9)
#define L3_PAGES (1ull << 18)
#define L4_PAGES (1ull << 27)
#define L5_PAGES (1ull << 36)

/* The path most tests build: indexes 3 (L4), 5 (L3), 7 (L2) in a 4-level
 * tree, so the leaves live at P .. P+511. */
#define P  ((3ull << 27) | (5ull << 18) | (7ull << 9))
#define P4 (P & ~(L4_PAGES - 1)) /* the root entry on the path */
#define P3 (P & ~(L3_PAGES - 1)) /* the L3 table's entry */
#define P2 P			 /* the L2 table's entry */

/* ------------------------------------------------------------------ */
/* a dump of the tree through ext_lookup                               */
/* ------------------------------------------------------------------ */

struct dent {
	uint64_t gfn;
	uint64_t pfn;
	int level;
	enum ext_kind kind;
};

struct dump {
	struct dent *e;
	size_t n, cap;
	uint64_t tables, leaves;
};

static void dump_add(struct dump *d, uint64_t gfn, int level, enum ext_kind k,
		     uint64_t pfn)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 256;
		d->e = realloc(d->e, d->cap * sizeof(*d->e));
		assert_non_null(d->e);
	}
	d->e[d->n++] = (struct dent){gfn, pfn, level, k};
	if (k == EXT_TABLE)
		d->tables++;
	else
		d->leaves++;
}

/* Every present entry of the table whose entries are at @level and start
 * at @base, recursively. */
static void dump_table(struct ext_table *x, struct dump *d, uint64_t base,
		       int level)
{
	uint64_t size = ext_level_pages(level);

	for (uint64_t i = 0; i < 512; i++) {
		uint64_t gfn = base + i * size, pfn = ~0ull;
		enum ext_kind k = ext_lookup(x, gfn, level, &pfn);

		if (k == EXT_NONE) {
			assert_int_equal(pfn, ~0ull);
			continue;
		}
		assert_true(k == EXT_TABLE || k == EXT_LEAF);
		/* leaves at level 1 only, tables at 2 and above only */
		assert_int_equal(k == EXT_LEAF, level == 1);
		if (k == EXT_TABLE)
			assert_int_equal(pfn, ~0ull);
		dump_add(d, gfn, level, k, k == EXT_LEAF ? pfn : 0);
		if (k == EXT_TABLE)
			dump_table(x, d, gfn, level - 1);
	}
}

static void dump_tree(struct ext_table *x, int root_level, struct dump *d)
{
	memset(d, 0, sizeof(*d));
	dump_table(x, d, 0, root_level);
}

static void dump_free(struct dump *d)
{
	free(d->e);
	memset(d, 0, sizeof(*d));
}

static void assert_dump_equal(const struct dump *a, const struct dump *b)
{
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		assert_int_equal(a->e[i].gfn, b->e[i].gfn);
		assert_int_equal(a->e[i].level, b->e[i].level);
		assert_int_equal(a->e[i].kind, b->e[i].kind);
		assert_int_equal(a->e[i].pfn, b->e[i].pfn);
	}
}

/* The counts agree with what the tree holds. */
static void check_counts_match_tree(struct ext_table *x, int root_level)
{
	struct ext_counts c;
	struct dump d;

	dump_tree(x, root_level, &d);
	ext_get_counts(x, &c);
	assert_int_equal(c.tables, d.tables);
	assert_int_equal(c.leaves, d.leaves);
	dump_free(&d);
}

/* @call must return @err, count one reject, and change nothing else. */
#define EXPECT_REJECT(x, root_level, err, call)                                \
	do {                                                                   \
		struct ext_counts cb_, ca_;                                    \
		struct dump db_, da_;                                          \
		dump_tree((x), (root_level), &db_);                            \
		ext_get_counts((x), &cb_);                                     \
		assert_int_equal((call), (err));                               \
		ext_get_counts((x), &ca_);                                     \
		dump_tree((x), (root_level), &da_);                            \
		assert_dump_equal(&db_, &da_);                                 \
		assert_int_equal(ca_.tables, cb_.tables);                      \
		assert_int_equal(ca_.leaves, cb_.leaves);                      \
		assert_int_equal(ca_.ops, cb_.ops);                            \
		assert_int_equal(ca_.rejects, cb_.rejects + 1);                \
		dump_free(&db_);                                               \
		dump_free(&da_);                                               \
	} while (0)

/* @call must succeed and count one op, and no reject. */
#define EXPECT_OK(x, call)                                                     \
	do {                                                                   \
		struct ext_counts cb_, ca_;                                    \
		ext_get_counts((x), &cb_);                                     \
		assert_int_equal((call), 0);                                   \
		ext_get_counts((x), &ca_);                                     \
		assert_int_equal(ca_.ops, cb_.ops + 1);                        \
		assert_int_equal(ca_.rejects, cb_.rejects);                    \
	} while (0)

static struct ext_table *make(int root_level)
{
	struct ext_table *x = NULL;

	assert_int_equal(ext_create(root_level, &x), 0);
	assert_non_null(x);
	return x;
}

/* root -> L3 -> L2 -> L1 for P. */
static void build_path(struct ext_table *x)
{
	EXPECT_OK(x, ext_link_table(x, P4, 4));
	assert_int_equal(ext_lookup(x, P4, 4, NULL), EXT_TABLE);
	EXPECT_OK(x, ext_link_table(x, P3, 3));
	assert_int_equal(ext_lookup(x, P3, 3, NULL), EXT_TABLE);
	EXPECT_OK(x, ext_link_table(x, P2, 2));
	assert_int_equal(ext_lookup(x, P2, 2, NULL), EXT_TABLE);
}

static uint64_t pfn_of(uint64_t gfn)
{
	return 0x100000 + gfn * 3;
}

/* ------------------------------------------------------------------ */
/* creation                                                            */
/* ------------------------------------------------------------------ */

static void test_create(void **state)
{
	struct ext_table *x = (struct ext_table *)0x1;
	struct ext_counts c;

	(void)state;
	for (int bad = -1; bad <= 6; bad++) {
		if (bad == 4 || bad == 5)
			continue;
		x = (struct ext_table *)0x1;
		assert_int_equal(ext_create(bad, &x), -EINVAL);
		assert_ptr_equal(x, (struct ext_table *)0x1);
	}
	assert_int_equal(ext_create(4, NULL), -EINVAL);

	for (int rl = 4; rl <= 5; rl++) {
		x = make(rl);
		ext_get_counts(x, &c);
		assert_int_equal(c.tables, 0);
		assert_int_equal(c.leaves, 0);
		assert_int_equal(c.ops, 0);
		assert_int_equal(c.rejects, 0);
		/* the root exists and is empty */
		for (uint64_t i = 0; i < 512; i++)
			assert_int_equal(ext_lookup(x, i * ext_level_pages(rl),
						    rl, NULL),
					 EXT_NONE);
		ext_destroy(x);
	}
	ext_destroy(NULL);
}

/* ------------------------------------------------------------------ */
/* the path and its leaves                                             */
/* ------------------------------------------------------------------ */

static void test_path_and_leaves(void **state)
{
	struct ext_table *x = make(4);
	struct ext_counts c;
	uint64_t pfn;

	(void)state;
	build_path(x);
	/* the entries below a fresh table are empty */
	for (uint64_t i = 0; i < 512; i++)
		assert_int_equal(ext_lookup(x, P + i, 1, NULL), EXT_NONE);
	/* entries beside the path are untouched */
	assert_int_equal(ext_lookup(x, P4 + L4_PAGES, 4, NULL), EXT_NONE);
	assert_int_equal(ext_lookup(x, P3 + L3_PAGES, 3, NULL), EXT_NONE);
	assert_int_equal(ext_lookup(x, P2 + L2_PAGES, 2, NULL), EXT_NONE);

	for (uint64_t i = 0; i < 512; i += 3)
		EXPECT_OK(x, ext_set_leaf(x, P + i, 1, pfn_of(P + i)));
	for (uint64_t i = 0; i < 512; i++) {
		pfn = ~0ull;
		if (i % 3 == 0) {
			assert_int_equal(ext_lookup(x, P + i, 1, &pfn),
					 EXT_LEAF);
			assert_int_equal(pfn, pfn_of(P + i));
			/* pfn may be NULL */
			assert_int_equal(ext_lookup(x, P + i, 1, NULL),
					 EXT_LEAF);
		} else {
			assert_int_equal(ext_lookup(x, P + i, 1, &pfn),
					 EXT_NONE);
			assert_int_equal(pfn, ~0ull);
		}
	}
	ext_get_counts(x, &c);
	assert_int_equal(c.tables, 3);
	assert_int_equal(c.leaves, 171);
	assert_int_equal(c.ops, 3 + 171);
	assert_int_equal(c.rejects, 0);
	check_counts_match_tree(x, 4);

	/* pfn 0 and a huge pfn are just values */
	EXPECT_OK(x, ext_set_leaf(x, P + 1, 1, 0));
	EXPECT_OK(x, ext_set_leaf(x, P + 2, 1, ~0ull));
	assert_int_equal(ext_lookup(x, P + 1, 1, &pfn), EXT_LEAF);
	assert_int_equal(pfn, 0);
	assert_int_equal(ext_lookup(x, P + 2, 1, &pfn), EXT_LEAF);
	assert_int_equal(pfn, ~0ull);
	EXPECT_OK(x, ext_remove_leaf(x, P + 1, 1, 0, true));
	EXPECT_OK(x, ext_remove_leaf(x, P + 2, 1, ~0ull, true));

	/* tear down bottom-up */
	for (uint64_t i = 0; i < 512; i += 3) {
		EXPECT_OK(x, ext_remove_leaf(x, P + i, 1, pfn_of(P + i), true));
		assert_int_equal(ext_lookup(x, P + i, 1, NULL), EXT_NONE);
	}
	EXPECT_OK(x, ext_free_table(x, P2, 2, true));
	assert_int_equal(ext_lookup(x, P2, 2, NULL), EXT_NONE);
	assert_int_equal(ext_lookup(x, P, 1, NULL), EXT_NONE);
	EXPECT_OK(x, ext_free_table(x, P3, 3, true));
	assert_int_equal(ext_lookup(x, P3, 3, NULL), EXT_NONE);
	EXPECT_OK(x, ext_free_table(x, P4, 4, true));
	assert_int_equal(ext_lookup(x, P4, 4, NULL), EXT_NONE);

	ext_get_counts(x, &c);
	assert_int_equal(c.tables, 0);
	assert_int_equal(c.leaves, 0);
	assert_int_equal(c.ops, 3 + 171 + 4 + 171 + 3);
	assert_int_equal(c.rejects, 0);
	check_counts_match_tree(x, 4);

	/* and it can be built again: a freed table comes back empty */
	build_path(x);
	for (uint64_t i = 0; i < 512; i++)
		assert_int_equal(ext_lookup(x, P + i, 1, NULL), EXT_NONE);
	EXPECT_OK(x, ext_set_leaf(x, P + 9, 1, 42));
	assert_int_equal(ext_lookup(x, P + 9, 1, &pfn), EXT_LEAF);
	assert_int_equal(pfn, 42);
	check_counts_match_tree(x, 4);
	ext_destroy(x);
}

/* The first and last gfn of the range, reached through index 0 and 511 at
 * every level. */
static void test_range_edges(void **state)
{
	struct ext_table *x = make(4);
	uint64_t last = 512ull * 512 * 512 * 512 - 1, pfn;

	(void)state;
	for (int l = 4; l >= 2; l--) {
		uint64_t m = ext_level_pages(l) - 1;

		EXPECT_OK(x, ext_link_table(x, 0, l));
		EXPECT_OK(x, ext_link_table(x, last & ~m, l));
	}
	EXPECT_OK(x, ext_set_leaf(x, 0, 1, 11));
	EXPECT_OK(x, ext_set_leaf(x, last, 1, 22));
	assert_int_equal(ext_lookup(x, 0, 1, &pfn), EXT_LEAF);
	assert_int_equal(pfn, 11);
	assert_int_equal(ext_lookup(x, last, 1, &pfn), EXT_LEAF);
	assert_int_equal(pfn, 22);
	/* one past the end is out of range */
	EXPECT_REJECT(x, 4, -EINVAL, ext_set_leaf(x, last + 1, 1, 33));
	check_counts_match_tree(x, 4);
	ext_destroy(x);
}

/* ------------------------------------------------------------------ */
/* ordering rules                                                      */
/* ------------------------------------------------------------------ */

/* A leaf before its table, at every depth of a missing path. */
static void test_leaf_before_table(void **state)
{
	struct ext_table *x = make(4);

	(void)state;
	EXPECT_REJECT(x, 4, -ENOENT, ext_set_leaf(x, P, 1, 1));
	EXPECT_OK(x, ext_link_table(x, P4, 4));
	EXPECT_REJECT(x, 4, -ENOENT, ext_set_leaf(x, P, 1, 1));
	EXPECT_OK(x, ext_link_table(x, P3, 3));
	EXPECT_REJECT(x, 4, -ENOENT, ext_set_leaf(x, P + 5, 1, 1));
	/* another L1 table beside the path does not help */
	EXPECT_OK(x, ext_link_table(x, P2 + L2_PAGES, 2));
	EXPECT_REJECT(x, 4, -ENOENT, ext_set_leaf(x, P + 5, 1, 1));
	EXPECT_OK(x, ext_link_table(x, P2, 2));
	EXPECT_OK(x, ext_set_leaf(x, P + 5, 1, 1));
	assert_int_equal(ext_lookup(x, P + 5, 1, NULL), EXT_LEAF);
	check_counts_match_tree(x, 4);
	ext_destroy(x);
}

/* A table before its parent table. */
static void test_table_before_parent(void **state)
{
	struct ext_table *x = make(4);

	(void)state;
	EXPECT_REJECT(x, 4, -ENOENT, ext_link_table(x, P3, 3));
	EXPECT_REJECT(x, 4, -ENOENT, ext_link_table(x, P2, 2));
	EXPECT_OK(x, ext_link_table(x, P4, 4));
	EXPECT_REJECT(x, 4, -ENOENT, ext_link_table(x, P2, 2));
	/* an L3 table elsewhere under the same root entry does not help */
	EXPECT_OK(x, ext_link_table(x, P3 + L3_PAGES, 3));
	EXPECT_REJECT(x, 4, -ENOENT, ext_link_table(x, P2, 2));
	EXPECT_OK(x, ext_link_table(x, P3, 3));
	EXPECT_OK(x, ext_link_table(x, P2, 2));
	check_counts_match_tree(x, 4);
	ext_destroy(x);
}

/* Linking over a present entry. */
static void test_link_over_existing(void **state)
{
	struct ext_table *x = make(4);

	(void)state;
	build_path(x);
	EXPECT_OK(x, ext_set_leaf(x, P, 1, 7));
	EXPECT_REJECT(x, 4, -EEXIST, ext_link_table(x, P4, 4));
	EXPECT_REJECT(x, 4, -EEXIST, ext_link_table(x, P3, 3));
	EXPECT_REJECT(x, 4, -EEXIST, ext_link_table(x, P2, 2));
	/* over a leaf: leaves are at level 1, where no table may be linked,
	 * so the level is what is refused, and the leaf stays */
	EXPECT_REJECT(x, 4, -EINVAL, ext_link_table(x, P, 1));
	/* and the tables still hold what they held */
	assert_int_equal(ext_lookup(x, P, 1, NULL), EXT_LEAF);
	check_counts_match_tree(x, 4);
	ext_destroy(x);
}

/* Setting over a present leaf, with the same pfn or another. */
static void test_set_over_leaf(void **state)
{
	struct ext_table *x = make(4);
	uint64_t pfn;

	(void)state;
	build_path(x);
	EXPECT_OK(x, ext_set_leaf(x, P + 3, 1, 100));
	EXPECT_REJECT(x, 4, -EEXIST, ext_set_leaf(x, P + 3, 1, 200));
	EXPECT_REJECT(x, 4, -EEXIST, ext_set_leaf(x, P + 3, 1, 100));
	assert_int_equal(ext_lookup(x, P + 3, 1, &pfn), EXT_LEAF);
	assert_int_equal(pfn, 100);
	ext_destroy(x);
}

/* Removing a leaf that is not there. */
static void test_remove_missing(void **state)
{
	struct ext_table *x = make(4);

	(void)state;
	/* path missing entirely, then partly */
	EXPECT_REJECT(x, 4, -ENOENT, ext_remove_leaf(x, P, 1, 0, true));
	EXPECT_OK(x, ext_link_table(x, P4, 4));
	EXPECT_OK(x, ext_link_table(x, P3, 3));
	EXPECT_REJECT(x, 4, -ENOENT, ext_remove_leaf(x, P, 1, 0, true));
	EXPECT_OK(x, ext_link_table(x, P2, 2));
	/* the table is there, the leaf is not */
	EXPECT_REJECT(x, 4, -ENOENT, ext_remove_leaf(x, P, 1, 0, true));
	EXPECT_OK(x, ext_set_leaf(x, P + 1, 1, 5));
	EXPECT_REJECT(x, 4, -ENOENT, ext_remove_leaf(x, P, 1, 5, true));
	/* removed twice */
	EXPECT_OK(x, ext_remove_leaf(x, P + 1, 1, 5, true));
	EXPECT_REJECT(x, 4, -ENOENT, ext_remove_leaf(x, P + 1, 1, 5, true));
	check_counts_match_tree(x, 4);
	ext_destroy(x);
}

static void test_remove_wrong_pfn(void **state)
{
	struct ext_table *x = make(4);
	uint64_t pfn;

	(void)state;
	build_path(x);
	EXPECT_OK(x, ext_set_leaf(x, P + 8, 1, 0x1234));
	EXPECT_REJECT(x, 4, -EINVAL,
		      ext_remove_leaf(x, P + 8, 1, 0x1235, true));
	EXPECT_REJECT(x, 4, -EINVAL, ext_remove_leaf(x, P + 8, 1, 0, true));
	assert_int_equal(ext_lookup(x, P + 8, 1, &pfn), EXT_LEAF);
	assert_int_equal(pfn, 0x1234);
	EXPECT_OK(x, ext_remove_leaf(x, P + 8, 1, 0x1234, true));
	ext_destroy(x);
}

/* Removals need the write lock; the argument checks come first, the lock
 * check before the entry is looked at. */
static void test_remove_unlocked(void **state)
{
	struct ext_table *x = make(4);

	(void)state;
	build_path(x);
	EXPECT_OK(x, ext_set_leaf(x, P + 2, 1, 9));
	EXPECT_REJECT(x, 4, -EPERM, ext_remove_leaf(x, P + 2, 1, 9, false));
	assert_int_equal(ext_lookup(x, P + 2, 1, NULL), EXT_LEAF);
	/* before the entry: a missing leaf, a wrong pfn, a missing path */
	EXPECT_REJECT(x, 4, -EPERM, ext_remove_leaf(x, P + 3, 1, 9, false));
	EXPECT_REJECT(x, 4, -EPERM, ext_remove_leaf(x, P + 2, 1, 8, false));
	EXPECT_REJECT(x, 4, -EPERM, ext_remove_leaf(x, 0, 1, 9, false));
	/* after the arguments */
	EXPECT_REJECT(x, 4, -EINVAL, ext_remove_leaf(x, P, 2, 9, false));
	EXPECT_REJECT(x, 4, -EINVAL,
		      ext_remove_leaf(x, L4_PAGES * 512, 1, 9, false));
	EXPECT_OK(x, ext_remove_leaf(x, P + 2, 1, 9, true));
	ext_destroy(x);
}

/* Freeing a table that still maps leaves. */
static void test_free_with_leaves(void **state)
{
	struct ext_table *x = make(4);

	(void)state;
	build_path(x);
	EXPECT_OK(x, ext_set_leaf(x, P + 511, 1, 3));
	EXPECT_OK(x, ext_set_leaf(x, P, 1, 4));
	EXPECT_REJECT(x, 4, -EBUSY, ext_free_table(x, P2, 2, true));
	EXPECT_OK(x, ext_remove_leaf(x, P, 1, 4, true));
	/* one leaf left is enough */
	EXPECT_REJECT(x, 4, -EBUSY, ext_free_table(x, P2, 2, true));
	assert_int_equal(ext_lookup(x, P + 511, 1, NULL), EXT_LEAF);
	EXPECT_OK(x, ext_remove_leaf(x, P + 511, 1, 3, true));
	EXPECT_OK(x, ext_free_table(x, P2, 2, true));
	check_counts_match_tree(x, 4);
	ext_destroy(x);
}

/* Freeing a table that still holds tables. */
static void test_free_with_tables(void **state)
{
	struct ext_table *x = make(4);

	(void)state;
	build_path(x);
	EXPECT_REJECT(x, 4, -EBUSY, ext_free_table(x, P4, 4, true));
	EXPECT_REJECT(x, 4, -EBUSY, ext_free_table(x, P3, 3, true));
	/* an empty L1 table still counts as present in its L2 table */
	EXPECT_OK(x, ext_link_table(x, P2 + L2_PAGES, 2));
	EXPECT_OK(x, ext_free_table(x, P2, 2, true));
	EXPECT_REJECT(x, 4, -EBUSY, ext_free_table(x, P3, 3, true));
	EXPECT_OK(x, ext_free_table(x, P2 + L2_PAGES, 2, true));
	EXPECT_REJECT(x, 4, -EBUSY, ext_free_table(x, P4, 4, true));
	EXPECT_OK(x, ext_free_table(x, P3, 3, true));
	EXPECT_OK(x, ext_free_table(x, P4, 4, true));
	check_counts_match_tree(x, 4);
	ext_destroy(x);
}

/* Freeing a table that is not there. */
static void test_free_missing(void **state)
{
	struct ext_table *x = make(4);

	(void)state;
	EXPECT_REJECT(x, 4, -ENOENT, ext_free_table(x, P4, 4, true));
	EXPECT_REJECT(x, 4, -ENOENT, ext_free_table(x, P2, 2, true));
	build_path(x);
	/* beside the path, at each level */
	EXPECT_REJECT(x, 4, -ENOENT, ext_free_table(x, P4 + L4_PAGES, 4, true));
	EXPECT_REJECT(x, 4, -ENOENT, ext_free_table(x, P3 + L3_PAGES, 3, true));
	EXPECT_REJECT(x, 4, -ENOENT, ext_free_table(x, P2 + L2_PAGES, 2, true));
	/* freed twice */
	EXPECT_OK(x, ext_free_table(x, P2, 2, true));
	EXPECT_REJECT(x, 4, -ENOENT, ext_free_table(x, P2, 2, true));
	/* a leaf entry is never a table: level 1 is refused */
	EXPECT_OK(x, ext_link_table(x, P2, 2));
	EXPECT_OK(x, ext_set_leaf(x, P, 1, 1));
	EXPECT_REJECT(x, 4, -EINVAL, ext_free_table(x, P, 1, true));
	check_counts_match_tree(x, 4);
	ext_destroy(x);
}

static void test_free_unlocked(void **state)
{
	struct ext_table *x = make(4);

	(void)state;
	build_path(x);
	/* an empty table that could be freed */
	EXPECT_REJECT(x, 4, -EPERM, ext_free_table(x, P2, 2, false));
	assert_int_equal(ext_lookup(x, P2, 2, NULL), EXT_TABLE);
	/* before the entry: busy, missing */
	EXPECT_REJECT(x, 4, -EPERM, ext_free_table(x, P3, 3, false));
	EXPECT_REJECT(x, 4, -EPERM, ext_free_table(x, P2 + L2_PAGES, 2, false));
	/* after the arguments */
	EXPECT_REJECT(x, 4, -EINVAL, ext_free_table(x, P, 1, false));
	EXPECT_REJECT(x, 4, -EINVAL, ext_free_table(x, P2 + 1, 2, false));
	EXPECT_OK(x, ext_free_table(x, P2, 2, true));
	ext_destroy(x);
}

/* ------------------------------------------------------------------ */
/* argument checks                                                     */
/* ------------------------------------------------------------------ */

static void test_bad_levels(void **state)
{
	struct ext_table *x = make(4);
	static const int bad_link[] = {-1, 0, 1, 5, 6, 100};
	static const int bad_leaf[] = {-1, 0, 2, 3, 4, 5};

	(void)state;
	build_path(x);
	EXPECT_OK(x, ext_set_leaf(x, P, 1, 1));
	for (unsigned i = 0; i < sizeof(bad_link) / sizeof(bad_link[0]); i++) {
		int l = bad_link[i];

		/* gfn 0 is aligned for every level */
		EXPECT_REJECT(x, 4, -EINVAL, ext_link_table(x, 0, l));
		EXPECT_REJECT(x, 4, -EINVAL, ext_free_table(x, 0, l, true));
		assert_int_equal(ext_lookup(x, 0, l, NULL), EXT_NONE);
	}
	for (unsigned i = 0; i < sizeof(bad_leaf) / sizeof(bad_leaf[0]); i++) {
		int l = bad_leaf[i];

		EXPECT_REJECT(x, 4, -EINVAL, ext_set_leaf(x, 0, l, 1));
		EXPECT_REJECT(x, 4, -EINVAL, ext_remove_leaf(x, 0, l, 1, true));
		/* also where the entry at that level is a linked table */
		if (l >= 2 && l <= 4) {
			uint64_t g = l == 4 ? P4 : l == 3 ? P3 : P2;

			EXPECT_REJECT(x, 4, -EINVAL, ext_set_leaf(x, g, l, 1));
			EXPECT_REJECT(x, 4, -EINVAL,
				      ext_remove_leaf(x, g, l, 1, true));
		}
	}
	/* a leaf at level 2 in an empty entry next to the path */
	EXPECT_REJECT(x, 4, -EINVAL, ext_set_leaf(x, P2 + L2_PAGES, 2, 1));
	/* level 5 in a 4-level tree names no entry, even at gfn 0 */
	assert_int_equal(ext_lookup(x, P4, 4, NULL), EXT_TABLE);
	assert_int_equal(ext_lookup(x, 0, 5, NULL), EXT_NONE);
	check_counts_match_tree(x, 4);
	ext_destroy(x);
}

static void test_misaligned(void **state)
{
	struct ext_table *x = make(4);

	(void)state;
	build_path(x);
	/* an entry at level L is named by a gfn aligned to 512^(L-1) */
	EXPECT_REJECT(x, 4, -EINVAL, ext_link_table(x, P4 + L3_PAGES, 4));
	EXPECT_REJECT(x, 4, -EINVAL, ext_link_table(x, P4 + 1, 4));
	EXPECT_REJECT(x, 4, -EINVAL, ext_link_table(x, P3 + L2_PAGES, 3));
	EXPECT_REJECT(x, 4, -EINVAL, ext_link_table(x, P2 + L2_PAGES + 1, 2));
	EXPECT_REJECT(x, 4, -EINVAL, ext_link_table(x, P2 + L2_PAGES + 256, 2));
	EXPECT_REJECT(x, 4, -EINVAL, ext_free_table(x, P2 + 1, 2, true));
	EXPECT_REJECT(x, 4, -EINVAL, ext_free_table(x, P3 + 512, 3, true));
	EXPECT_REJECT(x, 4, -EINVAL, ext_free_table(x, P4 + L3_PAGES, 4, true));
	/* a misaligned lookup names no entry, though the one containing the
	 * gfn is a table */
	assert_int_equal(ext_lookup(x, P2 + 1, 2, NULL), EXT_NONE);
	assert_int_equal(ext_lookup(x, P3 + L2_PAGES, 3, NULL), EXT_NONE);
	assert_int_equal(ext_lookup(x, P4 + 1, 4, NULL), EXT_NONE);
	check_counts_match_tree(x, 4);
	ext_destroy(x);
}

static void test_out_of_range(void **state)
{
	struct ext_table *x = make(4);
	uint64_t end = 512 * L4_PAGES; /* 512^4 */

	(void)state;
	build_path(x);
	EXPECT_REJECT(x, 4, -EINVAL, ext_link_table(x, end, 4));
	EXPECT_REJECT(x, 4, -EINVAL, ext_link_table(x, end + P4, 4));
	EXPECT_REJECT(x, 4, -EINVAL, ext_link_table(x, end | P3, 3));
	EXPECT_REJECT(x, 4, -EINVAL, ext_free_table(x, end | P4, 4, true));
	/* a gfn that aliases the path modulo 512^4 */
	EXPECT_REJECT(x, 4, -EINVAL, ext_set_leaf(x, end | P, 1, 1));
	EXPECT_REJECT(x, 4, -EINVAL, ext_set_leaf(x, ~0ull, 1, 1));
	EXPECT_OK(x, ext_set_leaf(x, P, 1, 1));
	EXPECT_REJECT(x, 4, -EINVAL, ext_remove_leaf(x, end | P, 1, 1, true));
	assert_int_equal(ext_lookup(x, end | P, 1, NULL), EXT_NONE);
	assert_int_equal(ext_lookup(x, end | P4, 4, NULL), EXT_NONE);
	assert_int_equal(ext_lookup(x, P, 1, NULL), EXT_LEAF);
	check_counts_match_tree(x, 4);
	ext_destroy(x);
}

/* ------------------------------------------------------------------ */
/* 5 levels                                                            */
/* ------------------------------------------------------------------ */

static void test_root_level5(void **state)
{
	struct ext_table *x = make(5);
	/* above 512^4: out of range for a 4-level tree */
	uint64_t g = (300ull << 36) | P;
	uint64_t g5 = g & ~(L5_PAGES - 1), g4 = g & ~(L4_PAGES - 1),
		 g3 = g & ~(L3_PAGES - 1), g2 = g & ~(L2_PAGES - 1), pfn;
	struct ext_counts c;

	(void)state;
	EXPECT_REJECT(x, 5, -ENOENT, ext_link_table(x, g4, 4));
	EXPECT_OK(x, ext_link_table(x, g5, 5));
	EXPECT_OK(x, ext_link_table(x, g4, 4));
	EXPECT_OK(x, ext_link_table(x, g3, 3));
	EXPECT_REJECT(x, 5, -ENOENT, ext_set_leaf(x, g, 1, 5));
	EXPECT_OK(x, ext_link_table(x, g2, 2));
	EXPECT_OK(x, ext_set_leaf(x, g, 1, 5));
	assert_int_equal(ext_lookup(x, g, 1, &pfn), EXT_LEAF);
	assert_int_equal(pfn, 5);
	/* the same low bits under root entry 0 are another entry */
	assert_int_equal(ext_lookup(x, P, 1, NULL), EXT_NONE);
	EXPECT_REJECT(x, 5, -EINVAL, ext_link_table(x, 0, 6));
	EXPECT_REJECT(x, 5, -EINVAL, ext_link_table(x, 512 * L5_PAGES, 5));
	EXPECT_REJECT(x, 5, -EINVAL, ext_link_table(x, g5 + L4_PAGES, 5));
	EXPECT_REJECT(x, 5, -EBUSY, ext_free_table(x, g5, 5, true));
	check_counts_match_tree(x, 5);
	ext_get_counts(x, &c);
	assert_int_equal(c.tables, 4);
	assert_int_equal(c.leaves, 1);
	assert_int_equal(c.ops, 5);
	assert_int_equal(c.rejects, 6);

	EXPECT_OK(x, ext_remove_leaf(x, g, 1, 5, true));
	EXPECT_OK(x, ext_free_table(x, g2, 2, true));
	EXPECT_OK(x, ext_free_table(x, g3, 3, true));
	EXPECT_OK(x, ext_free_table(x, g4, 4, true));
	EXPECT_OK(x, ext_free_table(x, g5, 5, true));
	check_counts_match_tree(x, 5);
	ext_destroy(x);
}

/* ------------------------------------------------------------------ */
/* counts                                                              */
/* ------------------------------------------------------------------ */

static void test_counts(void **state)
{
	struct ext_table *x = make(4);
	struct ext_counts c;
	uint64_t ops = 0, rej = 0;
#define OK_(call)                                                              \
	do {                                                                   \
		assert_int_equal((call), 0);                                   \
		ops++;                                                         \
	} while (0)
#define REJ_(call, err)                                                        \
	do {                                                                   \
		assert_int_equal((call), (err));                               \
		rej++;                                                         \
	} while (0)

	(void)state;
	OK_(ext_link_table(x, P4, 4));
	REJ_(ext_link_table(x, P4, 4), -EEXIST);
	OK_(ext_link_table(x, P3, 3));
	OK_(ext_link_table(x, P2, 2));
	OK_(ext_link_table(x, P2 + L2_PAGES, 2));
	for (uint64_t i = 0; i < 20; i++)
		OK_(ext_set_leaf(x, P + i, 1, i));
	REJ_(ext_set_leaf(x, P, 1, 0), -EEXIST);
	REJ_(ext_set_leaf(x, P, 2, 0), -EINVAL);
	REJ_(ext_remove_leaf(x, P, 1, 0, false), -EPERM);
	REJ_(ext_remove_leaf(x, P, 1, 1, true), -EINVAL);
	REJ_(ext_free_table(x, P2, 2, true), -EBUSY);
	REJ_(ext_free_table(x, P2, 2, false), -EPERM);
	/* lookups and count reads are not operations */
	for (uint64_t i = 0; i < 600; i++)
		(void)ext_lookup(x, P + i, 1, NULL);
	(void)ext_lookup(x, 1, 4, NULL);
	(void)ext_lookup(x, 0, 9, NULL);

	ext_get_counts(x, &c);
	assert_int_equal(c.tables, 4);
	assert_int_equal(c.leaves, 20);
	assert_int_equal(c.ops, ops);
	assert_int_equal(c.rejects, rej);

	for (uint64_t i = 0; i < 10; i++)
		OK_(ext_remove_leaf(x, P + i, 1, i, true));
	OK_(ext_free_table(x, P2 + L2_PAGES, 2, true));
	ext_get_counts(x, &c);
	assert_int_equal(c.tables, 3);
	assert_int_equal(c.leaves, 10);
	assert_int_equal(c.ops, ops);
	assert_int_equal(c.rejects, rej);
	check_counts_match_tree(x, 4);
	ext_destroy(x);
#undef OK_
#undef REJ_
}

/* ------------------------------------------------------------------ */
/* teardown                                                            */
/* ------------------------------------------------------------------ */

/* Destroying a populated tree frees every table (ASan's leak check). */
static void test_destroy_nonempty(void **state)
{
	(void)state;
	for (int rl = 4; rl <= 5; rl++) {
		struct ext_table *x = make(rl);
		struct ext_counts c;
		uint64_t top = rl == 5 ? (7ull << 36) : 0;

		if (rl == 5)
			assert_int_equal(ext_link_table(x, top, 5), 0);
		for (uint64_t a = 0; a < 3; a++) {
			uint64_t g4 = top + a * L4_PAGES;

			assert_int_equal(ext_link_table(x, g4, 4), 0);
			for (uint64_t b = 0; b < 3; b++) {
				uint64_t g3 = g4 + b * L3_PAGES;

				assert_int_equal(ext_link_table(x, g3, 3), 0);
				for (uint64_t d = 0; d < 4; d++) {
					uint64_t g2 = g3 + d * L2_PAGES;

					assert_int_equal(
						ext_link_table(x, g2, 2), 0);
					for (uint64_t i = 0; i < 512; i += 17)
						assert_int_equal(
							ext_set_leaf(x, g2 + i,
								     1, i),
							0);
				}
			}
		}
		ext_get_counts(x, &c);
		assert_int_equal(c.tables, (rl == 5) + 3 + 9 + 36);
		assert_int_equal(c.leaves, 36 * 31);
		ext_destroy(x);
	}
}

/* ------------------------------------------------------------------ */
/* concurrency                                                         */
/* ------------------------------------------------------------------ */

#define NTHREADS      8
#define ROUNDS	      12
#define L1_PER_THREAD 4
#define LEAVES_PER_L1 64

struct worker {
	struct ext_table *x;
	pthread_barrier_t *start;
	int id;
	uint64_t ok, rejected, bad; /* this thread's view */
};

/* cmocka's asserts are for the main thread: workers count mismatches. */
#define W_EXPECT(w, call, want)                                                \
	do {                                                                   \
		int r_ = (call);                                               \
		if (r_ != (want))                                              \
			(w)->bad++;                                            \
		if (r_ == 0)                                                   \
			(w)->ok++;                                             \
		else                                                           \
			(w)->rejected++;                                       \
	} while (0)

/* Each worker owns root entry id+1 and builds, fills, empties and frees
 * its subtree ROUNDS times, keeping the last round's tables and half its
 * leaves.  The root table is shared: links and frees of its entries by
 * different threads interleave. */
static void *worker_disjoint(void *arg)
{
	struct worker *w = arg;
	struct ext_table *x = w->x;
	uint64_t g4 = (uint64_t)(w->id + 1) * L4_PAGES, g3 = g4 + 9 * L3_PAGES;

	pthread_barrier_wait(w->start);
	for (int r = 0; r < ROUNDS; r++) {
		bool last = r == ROUNDS - 1;

		W_EXPECT(w, ext_link_table(x, g4, 4), 0);
		W_EXPECT(w, ext_link_table(x, g3, 3), 0);
		for (uint64_t t = 0; t < L1_PER_THREAD; t++) {
			uint64_t g2 = g3 + t * 2 * L2_PAGES;

			W_EXPECT(w, ext_link_table(x, g2, 2), 0);
			for (uint64_t i = 0; i < LEAVES_PER_L1; i++)
				W_EXPECT(w,
					 ext_set_leaf(x, g2 + i * 7, 1,
						      g2 + i + r),
					 0);
			/* a few rejects of its own */
			W_EXPECT(w, ext_set_leaf(x, g2, 1, 1), -EEXIST);
			W_EXPECT(w, ext_remove_leaf(x, g2, 1, g2 + r, false),
				 -EPERM);
			W_EXPECT(w, ext_free_table(x, g2, 2, true), -EBUSY);
		}
		for (uint64_t t = 0; t < L1_PER_THREAD; t++) {
			uint64_t g2 = g3 + t * 2 * L2_PAGES;
			uint64_t pfn;

			for (uint64_t i = 0; i < LEAVES_PER_L1; i++) {
				if (last && i % 2)
					continue;
				if (ext_lookup(x, g2 + i * 7, 1, &pfn) !=
					    EXT_LEAF ||
				    pfn != g2 + i + r)
					w->bad++;
				W_EXPECT(w,
					 ext_remove_leaf(x, g2 + i * 7, 1,
							 g2 + i + r, true),
					 0);
			}
			if (!last)
				W_EXPECT(w, ext_free_table(x, g2, 2, true), 0);
		}
		if (!last) {
			W_EXPECT(w, ext_free_table(x, g3, 3, true), 0);
			W_EXPECT(w, ext_free_table(x, g4, 4, true), 0);
		}
	}
	return NULL;
}

struct reader {
	struct ext_table *x;
	pthread_barrier_t *start;
	int stop; /* atomic */
	uint64_t bad, reads;
};

/* Snapshots while the workers run: never more than the workers can have
 * built, and a leaf seen anywhere has its pfn from some round. */
static void *reader_fn(void *arg)
{
	struct reader *rd = arg;

	pthread_barrier_wait(rd->start);
	while (!__atomic_load_n(&rd->stop, __ATOMIC_ACQUIRE)) {
		struct ext_counts c;
		uint64_t pfn;

		ext_get_counts(rd->x, &c);
		if (c.tables > NTHREADS * (2 + L1_PER_THREAD) ||
		    c.leaves > NTHREADS * L1_PER_THREAD * LEAVES_PER_L1)
			rd->bad++;
		for (int t = 0; t < NTHREADS; t++) {
			uint64_t g2 =
				(uint64_t)(t + 1) * L4_PAGES + 9 * L3_PAGES;

			if (ext_lookup(rd->x, g2 + 7, 1, &pfn) == EXT_LEAF &&
			    (pfn < g2 + 1 || pfn >= g2 + 1 + ROUNDS))
				rd->bad++;
		}
		rd->reads++;
	}
	return NULL;
}

static void test_concurrent_disjoint(void **state)
{
	struct ext_table *x = make(4);
	pthread_t th[NTHREADS], rth;
	struct worker w[NTHREADS];
	struct reader rd = {0};
	pthread_barrier_t start;
	struct ext_counts c;
	uint64_t ok = 0, rej = 0;
	uint64_t per_round_ok, per_round_rej;

	(void)state;
	pthread_barrier_init(&start, NULL, NTHREADS + 1);
	rd.x = x;
	rd.start = &start;
	assert_int_equal(pthread_create(&rth, NULL, reader_fn, &rd), 0);
	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){.x = x, .start = &start, .id = i};
		assert_int_equal(
			pthread_create(&th[i], NULL, worker_disjoint, &w[i]),
			0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].bad, 0);
		ok += w[i].ok;
		rej += w[i].rejected;
	}
	__atomic_store_n(&rd.stop, 1, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(rth, NULL), 0);
	assert_int_equal(rd.bad, 0);
	pthread_barrier_destroy(&start);

	/* full rounds: 2 + 4 links, 256 sets, 256 removes, 4 + 2 frees;
	 * the last: the links and sets, half the removes, no frees */
	per_round_ok =
		2 * (2 + L1_PER_THREAD) + 2 * L1_PER_THREAD * LEAVES_PER_L1;
	per_round_rej = 3 * L1_PER_THREAD;
	ext_get_counts(x, &c);
	assert_int_equal(c.ops, ok);
	assert_int_equal(c.rejects, rej);
	assert_int_equal(c.ops,
			 NTHREADS * ((ROUNDS - 1) * per_round_ok +
				     (2 + L1_PER_THREAD) +
				     L1_PER_THREAD * LEAVES_PER_L1 * 3 / 2));
	assert_int_equal(c.rejects, NTHREADS * ROUNDS * per_round_rej);
	assert_int_equal(c.tables, NTHREADS * (2 + L1_PER_THREAD));
	assert_int_equal(c.leaves,
			 NTHREADS * L1_PER_THREAD * LEAVES_PER_L1 / 2);
	check_counts_match_tree(x, 4);
	/* the survivors are the odd leaves of the last round */
	for (int t = 0; t < NTHREADS; t++) {
		uint64_t g3 = (uint64_t)(t + 1) * L4_PAGES + 9 * L3_PAGES;

		for (uint64_t i = 0; i < LEAVES_PER_L1; i++) {
			uint64_t pfn = 0;
			enum ext_kind k = ext_lookup(x, g3 + i * 7, 1, &pfn);

			assert_int_equal(k, i % 2 ? EXT_LEAF : EXT_NONE);
			if (k == EXT_LEAF)
				assert_int_equal(pfn, g3 + i + ROUNDS - 1);
		}
	}
	/* non-empty at destroy: nothing leaks */
	ext_destroy(x);
}

struct racer {
	struct ext_table *x;
	pthread_barrier_t *start;
	int id;
	int rc_l4, rc_l3, rc_l2;
	uint64_t bad;
};

/* Parallel faults on the same entries: every thread tries to link the
 * shared root entry and L3 entry (one wins each, the rest see -EEXIST or,
 * for the L3 entry before the L4 link landed, -ENOENT and retry), then
 * fills its own L1 table in the shared L2 table. */
static void *racer_fn(void *arg)
{
	struct racer *rc = arg;
	uint64_t g2 = (uint64_t)rc->id * L2_PAGES;
	int r;

	pthread_barrier_wait(rc->start);
	rc->rc_l4 = ext_link_table(rc->x, 0, 4);
	while ((r = ext_link_table(rc->x, 0, 3)) == -ENOENT)
		sched_yield();
	rc->rc_l3 = r;
	rc->rc_l2 = ext_link_table(rc->x, g2, 2);
	for (uint64_t i = 0; i < 512; i++)
		if (ext_set_leaf(rc->x, g2 + i, 1, g2 + i) != 0)
			rc->bad++;
	for (uint64_t i = 0; i < 512; i += 2)
		if (ext_remove_leaf(rc->x, g2 + i, 1, g2 + i, true) != 0)
			rc->bad++;
	return NULL;
}

static void test_concurrent_shared(void **state)
{
	struct ext_table *x = make(4);
	pthread_t th[NTHREADS];
	struct racer rc[NTHREADS];
	pthread_barrier_t start;
	struct ext_counts c;
	int won4 = 0, won3 = 0;

	(void)state;
	pthread_barrier_init(&start, NULL, NTHREADS);
	for (int i = 0; i < NTHREADS; i++) {
		rc[i] = (struct racer){.x = x, .start = &start, .id = i};
		assert_int_equal(pthread_create(&th[i], NULL, racer_fn, &rc[i]),
				 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(rc[i].bad, 0);
		assert_int_equal(rc[i].rc_l2, 0);
		assert_true(rc[i].rc_l4 == 0 || rc[i].rc_l4 == -EEXIST);
		assert_true(rc[i].rc_l3 == 0 || rc[i].rc_l3 == -EEXIST);
		won4 += rc[i].rc_l4 == 0;
		won3 += rc[i].rc_l3 == 0;
	}
	pthread_barrier_destroy(&start);
	assert_int_equal(won4, 1);
	assert_int_equal(won3, 1);

	ext_get_counts(x, &c);
	assert_int_equal(c.tables, 2 + NTHREADS);
	assert_int_equal(c.leaves, NTHREADS * 256);
	assert_int_equal(c.ops, 2 + NTHREADS * (1 + 512 + 256));
	/* 2 (N-1) -EEXIST, plus any -ENOENT retries */
	assert_true(c.rejects >= 2 * (NTHREADS - 1));
	check_counts_match_tree(x, 4);
	ext_destroy(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_path_and_leaves),
		cmocka_unit_test(test_range_edges),
		cmocka_unit_test(test_leaf_before_table),
		cmocka_unit_test(test_table_before_parent),
		cmocka_unit_test(test_link_over_existing),
		cmocka_unit_test(test_set_over_leaf),
		cmocka_unit_test(test_remove_missing),
		cmocka_unit_test(test_remove_wrong_pfn),
		cmocka_unit_test(test_remove_unlocked),
		cmocka_unit_test(test_free_with_leaves),
		cmocka_unit_test(test_free_with_tables),
		cmocka_unit_test(test_free_missing),
		cmocka_unit_test(test_free_unlocked),
		cmocka_unit_test(test_bad_levels),
		cmocka_unit_test(test_misaligned),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_root_level5),
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_destroy_nonempty),
		cmocka_unit_test(test_concurrent_disjoint),
		cmocka_unit_test(test_concurrent_shared),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
