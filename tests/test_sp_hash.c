/* SPDX-License-Identifier: MIT */
/*
 * test_sp_hash.c - the legacy engine's shadow-page hash (sp_hash.h) on its
 * own: lookups by (gfn, role) across thousands of pages sharing buckets,
 * removal from any chain position, obsolescence by generation, and the
 * rules it asserts (each checked in a forked child that must abort with
 * the rule's message): one valid page per key, the write lock, no free of
 * a page still in the hash, no destroy of a non-empty hash.
 */
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "lock.h"
#include "pt.h"
#include "sp_hash.h"

#define NPAGES 3000 /* more than SP_HASH_BUCKETS / 2: chains form */

struct env {
	struct tdp_lock lock;
	struct pt_alloc alloc;
	struct sp_hash h;
	struct tdp_pt_page *sp[NPAGES];
};

static struct tdp_pt_page *page(struct env *e, uint64_t gfn, int level,
				unsigned as_id)
{
	struct tdp_pt_page *sp = pt_alloc_page(&e->alloc);

	assert_non_null(sp);
	sp->gfn = gfn;
	sp->level = (int8_t)level;
	sp->as_id = (uint8_t)as_id;
	return sp;
}

static void env_init(struct env *e)
{
	memset(e, 0, sizeof(*e));
	assert_int_equal(tdp_lock_init(&e->lock), 0);
	assert_int_equal(pt_alloc_init(&e->alloc), 0);
	assert_int_equal(sp_hash_init(&e->h, &e->lock), 0);
	tdp_write_lock(&e->lock);
}

static void env_fini(struct env *e)
{
	tdp_write_unlock(&e->lock);
	sp_hash_destroy(&e->h);
	pt_alloc_destroy(&e->alloc);
	tdp_lock_destroy(&e->lock);
}

/* Page i: one of three roles over a range of gfns, so equal gfns with
 * different roles and equal roles with different gfns both occur. */
static void key_of(unsigned i, uint64_t *gfn, int *level, unsigned *as_id)
{
	*level = 1 + (int)(i % 3);
	*as_id = (i / 3) % 2;
	*gfn = (uint64_t)(i / 6) << (9 * (unsigned)*level);
}

static void test_find_and_delete(void **state)
{
	struct env *e = malloc(sizeof(*e));
	uint64_t gfn;
	unsigned as;
	int level;

	(void)state;
	env_init(e);
	for (unsigned i = 0; i < NPAGES; i++) {
		key_of(i, &gfn, &level, &as);
		assert_null(sp_hash_find(&e->h, gfn, sp_role(level, as)));
		e->sp[i] = page(e, gfn, level, as);
		sp_hash_add(&e->h, e->sp[i]);
		assert_true(sp_hash_contains(&e->h, e->sp[i]));
	}
	assert_int_equal(e->h.count, NPAGES);
	for (unsigned i = 0; i < NPAGES; i++) {
		key_of(i, &gfn, &level, &as);
		assert_ptr_equal(sp_hash_find(&e->h, gfn, sp_role(level, as)),
				 e->sp[i]);
		/* a neighbouring gfn of the same role is another key */
		assert_ptr_not_equal(sp_hash_find(&e->h, gfn + 1,
						  sp_role(level, as)),
				     e->sp[i]);
	}
	/* every third page, wherever it sits in its chain */
	for (unsigned i = 0; i < NPAGES; i += 3) {
		sp_hash_del(&e->h, e->sp[i]);
		assert_false(sp_hash_contains(&e->h, e->sp[i]));
	}
	for (unsigned i = 0; i < NPAGES; i++) {
		struct tdp_pt_page *f;

		key_of(i, &gfn, &level, &as);
		f = sp_hash_find(&e->h, gfn, sp_role(level, as));
		assert_ptr_equal(f, i % 3 ? e->sp[i] : NULL);
	}
	for (unsigned i = 0; i < NPAGES; i++) {
		if (i % 3)
			sp_hash_del(&e->h, e->sp[i]);
		pt_free_page(e->sp[i]);
	}
	assert_int_equal(e->h.count, 0);
	env_fini(e);
	free(e);
}

/* One generation bump makes every page obsolete: lookups skip them, and
 * a new page may take the key while the old one is still in the hash. */
static void test_obsolete(void **state)
{
	struct env *e = malloc(sizeof(*e));
	struct tdp_pt_page *old, *old2, *new;

	(void)state;
	env_init(e);
	old = page(e, 0, 4, 0);
	old2 = page(e, 512, 1, 0);
	sp_hash_add(&e->h, old);
	sp_hash_add(&e->h, old2);
	assert_false(sp_hash_obsolete(&e->h, old));
	sp_hash_obsolete_all(&e->h);
	assert_true(sp_hash_obsolete(&e->h, old));
	assert_true(sp_hash_obsolete(&e->h, old2));
	assert_null(sp_hash_find(&e->h, 0, sp_role(4, 0)));
	assert_null(sp_hash_find(&e->h, 512, sp_role(1, 0)));
	new = page(e, 0, 4, 0);
	sp_hash_add(&e->h, new);
	assert_false(sp_hash_obsolete(&e->h, new));
	assert_ptr_equal(sp_hash_find(&e->h, 0, sp_role(4, 0)), new);
	assert_true(sp_hash_contains(&e->h, old));
	assert_int_equal(e->h.count, 3);
	sp_hash_del(&e->h, old);
	assert_ptr_equal(sp_hash_find(&e->h, 0, sp_role(4, 0)), new);
	sp_hash_del(&e->h, new);
	sp_hash_del(&e->h, old2);
	pt_free_page(old);
	pt_free_page(old2);
	pt_free_page(new);
	env_fini(e);
	free(e);
}

/* ---- rules, each broken in a forked child ---- */

enum rule { TWO_VALID, READ_LOCKED_FIND, FREE_IN_HASH, DESTROY_NONEMPTY };

/* The child: returns only if the rule held. */
static int break_rule(int r)
{
	struct env *e = malloc(sizeof(*e));
	struct tdp_pt_page *sp;

	env_init(e);
	sp = page(e, 1024, 1, 1);
	sp_hash_add(&e->h, sp);
	switch ((enum rule)r) {
	case TWO_VALID:
		sp_hash_add(&e->h, page(e, 1024, 1, 1));
		break;
	case READ_LOCKED_FIND:
		tdp_write_unlock(&e->lock);
		tdp_read_lock(&e->lock);
		sp_hash_find(&e->h, 1024, sp_role(1, 1));
		break;
	case FREE_IN_HASH:
		pt_free_page(sp);
		break;
	case DESTROY_NONEMPTY:
		tdp_write_unlock(&e->lock);
		sp_hash_destroy(&e->h);
		break;
	}
	return 0;
}

static void expect_abort(enum rule r, const char *msg)
{
	struct th_child c;

	th_run_child(break_rule, r, 10, &c);
	if (!th_child_aborted_with(&c, msg)) {
		th_child_describe("rule", &c);
		fail_msg("rule %d: expected an abort with \"%s\"", r, msg);
	}
}

static void test_rules(void **state)
{
	(void)state;
	expect_abort(TWO_VALID, "a second valid shadow page for gfn 0x400");
	expect_abort(READ_LOCKED_FIND, "tdp_lock_held_mode");
	expect_abort(FREE_IN_HASH, "freed while in the shadow-page hash");
	expect_abort(DESTROY_NONEMPTY, "1 shadow pages left in the hash");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_find_and_delete),
		cmocka_unit_test(test_obsolete),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
