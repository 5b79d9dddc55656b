/* SPDX-License-Identifier: MIT */
/*
 * test_spte.c - the entry encoding (src/spte.h): leaf/table/small-entry
 * round trips, predicates, the non-present values (zapped, frozen, freed
 * table poison), index/level helpers, the flush rule and the writable-bit
 * invariant.
 */
#include <stdbool.h>
#include <stdint.h>

#include "helpers.h"
#include "pt.h"
#include "spte.h"

static const uint64_t pfns[] = { 0, 1, 0x1ff, 0x200, 0x12345, 0x3ffff,
				 0x40000, 0xfffffffull, (1ull << 40) - 1 };

/* ------------------------------------------------------------------ */
/* leaves                                                              */
/* ------------------------------------------------------------------ */

static void check_leaf(uint64_t s, uint64_t pfn, int level, bool w,
		       bool host_w, bool x, bool dirty)
{
	bool wr = w && host_w;

	assert_true(spte_present(s));
	assert_false(spte_frozen(s));
	assert_true(spte_is_leaf(s, level));
	assert_true(spte_is_present_leaf(s, level));
	assert_false(spte_is_table(s, level));
	assert_int_equal(spte_pfn(s), pfn);
	assert_int_equal(!!(s & SPTE_LARGE), level > TDP_LEVEL_4K);
	assert_true(s & SPTE_R);
	assert_int_equal(!!(s & SPTE_W), wr);
	assert_int_equal(spte_writable(s), wr);
	assert_int_equal(!!(s & SPTE_X), x);
	assert_true(s & SPTE_A);
	/* D only for a write fault that got a writable entry */
	assert_int_equal(!!(s & SPTE_D), dirty && wr);
	assert_int_equal(!!(s & SPTE_HOST_WRITABLE), host_w);
	/* MMU-writable exactly when the slot and host allow writes */
	assert_int_equal(!!(s & SPTE_MMU_WRITABLE), wr);
	assert_int_equal(s & (7ull << 3), SPTE_MT_WB);
	assert_true(s & SPTE_IPAT);
	assert_false(s & SPTE_SUPPRESS_VE);
	assert_true(spte_writable_ok(s));
	/* nothing outside the documented bits */
	assert_int_equal(s & ~(SPTE_RWX | (7ull << 3) | SPTE_IPAT | SPTE_LARGE |
			       SPTE_A | SPTE_D | SPTE_MMU_PRESENT |
			       SPTE_PFN_MASK | SPTE_HOST_WRITABLE |
			       SPTE_MMU_WRITABLE),
			 0);
}

static void test_leaf_round_trip(void **state)
{
	(void)state;
	for (unsigned p = 0; p < sizeof(pfns) / sizeof(pfns[0]); p++)
		for (int level = TDP_LEVEL_4K; level <= TDP_LEVEL_1G; level++)
			for (unsigned m = 0; m < 16; m++) {
				bool w = m & 1, hw = m & 2, x = m & 4,
				     d = m & 8;
				uint64_t s = make_leaf_spte(pfns[p], level, w,
							    hw, x, d);

				check_leaf(s, pfns[p], level, w, hw, x, d);
			}
}

/* A large leaf is a leaf at 2M/1G; the same bits without LARGE at 2M would
 * be a table entry, at 4K the level alone makes it a leaf. */
static void test_leaf_level_semantics(void **state)
{
	uint64_t huge = make_leaf_spte(0x200, TDP_LEVEL_2M, true, true, true,
				       false);
	uint64_t small = make_leaf_spte(0x200, TDP_LEVEL_4K, true, true, true,
					false);

	(void)state;
	assert_true(huge & SPTE_LARGE);
	assert_false(small & SPTE_LARGE);
	assert_true(spte_is_leaf(small, TDP_LEVEL_4K));
	assert_false(spte_is_leaf(small, TDP_LEVEL_2M));
	assert_true(spte_is_table(small, TDP_LEVEL_2M));
	assert_true(spte_is_leaf(huge, TDP_LEVEL_2M));
	assert_true(spte_is_leaf(huge, TDP_LEVEL_1G));
	assert_false(spte_is_table(huge, TDP_LEVEL_1G));
	/* same entry minus the present bit: no longer a present leaf */
	assert_false(spte_is_present_leaf(huge & ~SPTE_MMU_PRESENT,
					  TDP_LEVEL_2M));
	assert_false(spte_is_table(small & ~SPTE_MMU_PRESENT, TDP_LEVEL_2M));
}

/* ------------------------------------------------------------------ */
/* tables                                                              */
/* ------------------------------------------------------------------ */

static void test_table_round_trip(void **state)
{
	struct pt_alloc a;
	struct tdp_pt_page *sp[3];

	(void)state;
	assert_int_equal(pt_alloc_init(&a), 0);
	for (int i = 0; i < 3; i++) {
		sp[i] = pt_alloc_page(&a);
		assert_non_null(sp[i]);
	}
	for (int i = 0; i < 3; i++) {
		uint64_t s = make_table_spte(sp[i]->spt);

		assert_true(spte_present(s));
		assert_false(spte_frozen(s));
		assert_int_equal(s & SPTE_RWX, SPTE_RWX);
		assert_false(s & SPTE_LARGE);
		assert_false(s & SPTE_SUPPRESS_VE);
		assert_ptr_equal(spte_to_table(s), sp[i]->spt);
		assert_int_equal(spte_pfn(s), (uintptr_t)sp[i]->spt >> 12);
		assert_ptr_equal(sptep_to_sp(spte_to_table(s)), sp[i]);
		assert_ptr_equal(sptep_to_sp(&sp[i]->spt[511]), sp[i]);
		for (int level = TDP_LEVEL_2M; level <= TDP_MAX_LEVEL;
		     level++) {
			assert_true(spte_is_table(s, level));
			assert_false(spte_is_leaf(s, level));
			assert_false(spte_is_present_leaf(s, level));
		}
		/* at 4K there are no tables: the level makes it a leaf */
		assert_false(spte_is_table(s, TDP_LEVEL_4K));
		assert_true(spte_is_leaf(s, TDP_LEVEL_4K));
	}
	/* a new page is all SPTE_NONPRESENT */
	for (int i = 0; i < SPTE_ENT_PER_PAGE; i++)
		assert_int_equal(sp[0]->spt[i], SPTE_NONPRESENT);
	for (int i = 0; i < 3; i++)
		pt_free_page(sp[i]);
	pt_alloc_destroy(&a);
}

/* ------------------------------------------------------------------ */
/* splitting a huge leaf                                               */
/* ------------------------------------------------------------------ */

static void check_small_of(uint64_t huge, int huge_level)
{
	int child = huge_level - 1;

	for (unsigned i = 0; i < SPTE_ENT_PER_PAGE; i++) {
		uint64_t s = make_small_spte(huge, huge_level, i);

		assert_int_equal(spte_pfn(s),
				 spte_pfn(huge) + i * level_pages(child));
		assert_true(spte_is_present_leaf(s, child));
		assert_int_equal(!!(s & SPTE_LARGE), child > TDP_LEVEL_4K);
		/* every other bit is inherited: permissions, A/D, software */
		assert_int_equal(s & ~(SPTE_PFN_MASK | SPTE_LARGE),
				 huge & ~(SPTE_PFN_MASK | SPTE_LARGE));
		assert_int_equal(spte_writable_ok(s), spte_writable_ok(huge));
	}
}

static void test_small_spte(void **state)
{
	(void)state;
	for (unsigned m = 0; m < 16; m++) {
		bool w = m & 1, hw = m & 2, x = m & 4, d = m & 8;
		uint64_t h2 = make_leaf_spte(0x400, TDP_LEVEL_2M, w, hw, x, d);
		uint64_t h1 = make_leaf_spte(0x40000, TDP_LEVEL_1G, w, hw, x,
					     d);

		check_small_of(h2, TDP_LEVEL_2M);
		check_small_of(h1, TDP_LEVEL_1G);
		/* D set by hardware later must survive the split */
		check_small_of(h2 | SPTE_D, TDP_LEVEL_2M);
		check_small_of(h1 & ~SPTE_A, TDP_LEVEL_1G);
	}
	/* explicit values */
	uint64_t h = make_leaf_spte(0x80000, TDP_LEVEL_1G, true, true, false,
				    true);
	uint64_t s = make_small_spte(h, TDP_LEVEL_1G, 3);

	assert_int_equal(spte_pfn(s), 0x80000 + 3 * 512);
	assert_true(s & SPTE_LARGE);
	assert_true(s & SPTE_D);
	assert_true(s & SPTE_W);
	s = make_small_spte(make_leaf_spte(0x600, TDP_LEVEL_2M, false, true,
					   true, false),
			    TDP_LEVEL_2M, 511);
	assert_int_equal(spte_pfn(s), 0x600 + 511);
	assert_false(s & SPTE_LARGE);
	assert_false(s & SPTE_W);
	assert_true(s & SPTE_X);
	assert_true(s & SPTE_HOST_WRITABLE);
}

/* ------------------------------------------------------------------ */
/* non-present values                                                  */
/* ------------------------------------------------------------------ */

static void test_nonpresent_values(void **state)
{
	const uint64_t vals[] = { SPTE_NONPRESENT, SPTE_FROZEN, PT_POISON };

	(void)state;
	for (unsigned v = 0; v < 3; v++) {
		uint64_t s = vals[v];

		assert_false(spte_present(s));
		assert_int_equal(s & SPTE_RWX, 0); /* hardware ignores it */
		assert_true(s & SPTE_SUPPRESS_VE);
		assert_false(spte_writable(s));
		for (int level = TDP_LEVEL_4K; level <= TDP_MAX_LEVEL;
		     level++) {
			assert_false(spte_is_present_leaf(s, level));
			assert_false(spte_is_table(s, level));
		}
		assert_int_equal(spte_frozen(s), s == SPTE_FROZEN);
		/* replacing a non-present value never owes a flush */
		assert_false(leaf_change_needs_flush(
			s, make_leaf_spte(1, 1, true, true, true, true)));
		assert_false(leaf_change_needs_flush(s, SPTE_NONPRESENT));
	}
	/* the three are distinct, so a walker can tell them apart */
	assert_true(SPTE_NONPRESENT != SPTE_FROZEN);
	assert_true(SPTE_NONPRESENT != PT_POISON);
	assert_true(SPTE_FROZEN != PT_POISON);
	/* and no present entry is ever equal to one of them */
	assert_false(spte_frozen(make_leaf_spte(0, 1, false, false, false,
						false)));
	assert_false(spte_frozen(SPTE_FROZEN & ~SPTE_SUPPRESS_VE));
	assert_false(spte_frozen(SPTE_FROZEN | SPTE_MMU_PRESENT));
}

/* ------------------------------------------------------------------ */
/* index and level helpers                                             */
/* ------------------------------------------------------------------ */

static void test_index_level(void **state)
{
	(void)state;
	assert_int_equal(level_shift(1), 0);
	assert_int_equal(level_shift(2), 9);
	assert_int_equal(level_shift(3), 18);
	assert_int_equal(level_shift(4), 27);
	assert_int_equal(level_shift(5), 36);
	assert_int_equal(level_pages(1), 1);
	assert_int_equal(level_pages(2), 512);
	assert_int_equal(level_pages(3), 512 * 512);
	assert_int_equal(level_pages(TDP_LEVEL_2M) << 12, TDP_HUGE_2M);
	assert_int_equal(level_pages(TDP_LEVEL_1G) << 12, TDP_HUGE_1G);

	/* a gfn built from known indices at each level */
	uint64_t idx[6] = { 0, 0x1a3, 0x0f0, 0x1ff, 0x001, 0x155 };
	uint64_t gfn = 0;

	for (int l = 1; l <= 5; l++)
		gfn |= idx[l] << level_shift(l);
	for (int l = 1; l <= 5; l++)
		assert_int_equal(spte_index(gfn, l), idx[l]);
	/* bits above the 5-level range do not leak into the index */
	assert_int_equal(spte_index(gfn | (1ull << 45), 5), idx[5]);

	assert_int_equal(gfn_round_for_level(gfn, 1), gfn);
	assert_int_equal(gfn_round_for_level(gfn, 2), gfn & ~511ull);
	assert_int_equal(gfn_round_for_level(gfn, 3), gfn & ~0x3ffffull);
	assert_int_equal(gfn_round_for_level(gfn, 4),
			 gfn & ~((1ull << 27) - 1));
	assert_int_equal(gfn_round_for_level(0x3ffff, 3), 0);
	assert_int_equal(gfn_round_for_level(0x40000, 3), 0x40000);
	assert_int_equal(spte_index(511, 1), 511);
	assert_int_equal(spte_index(512, 1), 0);
	assert_int_equal(spte_index(512, 2), 1);
}

/* ------------------------------------------------------------------ */
/* flush rule and writable invariant                                   */
/* ------------------------------------------------------------------ */

static void test_leaf_change_needs_flush(void **state)
{
	uint64_t rwx = make_leaf_spte(0x100, 1, true, true, true, false);
	uint64_t rx = make_leaf_spte(0x100, 1, false, true, true, false);
	uint64_t rw = make_leaf_spte(0x100, 1, true, true, false, false);
	uint64_t r = make_leaf_spte(0x100, 1, false, true, false, false);
	uint64_t other = make_leaf_spte(0x101, 1, true, true, true, false);

	(void)state;
	/* same entry, or only A/D/software bits changed: no flush */
	assert_false(leaf_change_needs_flush(rwx, rwx));
	assert_false(leaf_change_needs_flush(rwx, rwx | SPTE_D));
	assert_false(leaf_change_needs_flush(rwx | SPTE_D, rwx));
	assert_false(leaf_change_needs_flush(rwx, rwx & ~SPTE_A));
	assert_false(leaf_change_needs_flush(rwx, rwx & ~SPTE_HOST_WRITABLE));
	/* adding permissions: no flush */
	assert_false(leaf_change_needs_flush(r, rwx));
	assert_false(leaf_change_needs_flush(rx, rwx));
	assert_false(leaf_change_needs_flush(r, rw));
	/* removing a permission: flush */
	assert_true(leaf_change_needs_flush(rwx, rx));
	assert_true(leaf_change_needs_flush(rwx, rw));
	assert_true(leaf_change_needs_flush(rw, r));
	assert_true(leaf_change_needs_flush(rwx, rwx & ~SPTE_R));
	/* trading one permission for another: flush */
	assert_true(leaf_change_needs_flush(rw, rx));
	/* frame change, even with more permission: flush */
	assert_true(leaf_change_needs_flush(r, other));
	assert_true(leaf_change_needs_flush(rwx, other));
	/* zap / freeze: flush */
	assert_true(leaf_change_needs_flush(rwx, SPTE_NONPRESENT));
	assert_true(leaf_change_needs_flush(r, SPTE_FROZEN));
	assert_true(leaf_change_needs_flush(r, PT_POISON));
	/* huge leaves follow the same rule */
	uint64_t h = make_leaf_spte(0x200, 2, true, true, false, true);

	assert_true(leaf_change_needs_flush(h, h & ~SPTE_W));
	assert_false(leaf_change_needs_flush(h & ~SPTE_W, h));
	/* non-present old value: never */
	assert_false(leaf_change_needs_flush(SPTE_NONPRESENT, rwx));
}

static void test_writable_ok(void **state)
{
	uint64_t base = SPTE_MMU_PRESENT | SPTE_R | SPTE_A | (5ull << 12);

	(void)state;
	assert_true(spte_writable_ok(base));
	assert_true(spte_writable_ok(base | SPTE_HOST_WRITABLE));
	assert_true(spte_writable_ok(base | SPTE_MMU_WRITABLE));
	assert_false(spte_writable_ok(base | SPTE_W));
	assert_false(spte_writable_ok(base | SPTE_W | SPTE_HOST_WRITABLE));
	assert_false(spte_writable_ok(base | SPTE_W | SPTE_MMU_WRITABLE));
	assert_true(spte_writable_ok(base | SPTE_W | SPTE_MMU_WRITABLE |
				     SPTE_HOST_WRITABLE));
	/* make_leaf_spte never produces W without host-writable */
	for (int level = 1; level <= 3; level++) {
		uint64_t s = make_leaf_spte(7, level, true, false, true, true);

		assert_false(s & SPTE_W);
		assert_false(s & SPTE_D);
		assert_false(s & SPTE_HOST_WRITABLE);
		assert_true(spte_writable_ok(s));
		assert_false(spte_writable_ok(s | SPTE_W));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_leaf_round_trip),
		cmocka_unit_test(test_leaf_level_semantics),
		cmocka_unit_test(test_table_round_trip),
		cmocka_unit_test(test_small_spte),
		cmocka_unit_test(test_nonpresent_values),
		cmocka_unit_test(test_index_level),
		cmocka_unit_test(test_leaf_change_needs_flush),
		cmocka_unit_test(test_writable_ok),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
