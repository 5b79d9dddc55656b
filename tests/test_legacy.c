/* SPDX-License-Identifier: MIT */
/*
 * test_legacy.c - what is particular to the legacy engine (the rest of its
 * behaviour is checked by running the public-API tests with
 * TDPMMU_TEST_ENGINE=legacy, tests/CMakeLists.txt):
 *  - configuration errors;
 *  - every leaf is in its reverse map and nothing else is, across faults,
 *    splits, huge leaves, zaps, dirty logging, fast zaps and memslot moves
 *    (the audit counts both);
 *  - the shadow-page hash holds every table and root by (gfn, role): vCPUs
 *    find their shared root there, a fast zap makes every page obsolete
 *    at once, and the audit notices a table missing from it;
 *  - aging walks the reverse maps without mmu_lock while zaps run: it never
 *    trips over a zapped entry and never misses a page that stays young;
 *  - the injected bugs (rmap-lockless-assert, rmap-unlocked-update) are
 *    caught through the VM.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "vm.h"

#define PG   TDP_PAGE_SIZE
#define GPA (1ull << 30)
#define SIZE (8 * MiB)

/* One vCPU on a legacy-engine VM; memslot 0: [GPA, GPA + SIZE) of 2 MiB
 * folios. */
static void env_init(struct th_env *e, unsigned flags, uint64_t max_huge,
		     int inject)
{
	struct tdp_vm_config c = {.engine = TDP_ENGINE_LEGACY,
				  .flags = flags,
				  .max_huge = max_huge};

	th_env_init(e, 0, &c, 1);
	assert_true(legacy_enabled(&e->vm->mmu));
	e->vm->mmu.inject = inject;
	th_env_slot(e, GPA, SIZE, TDP_HUGE_2M);
}

static void touch_all(struct th_env *e, uint64_t seed)
{
	for (uint64_t off = 0; off < SIZE; off += PG)
		assert_int_equal(tdp_vcpu_write(e->v[0], GPA + off, &seed, 8),
				 0);
}

static void touch_all_half(struct th_env *e, uint64_t seed)
{
	for (uint64_t off = 0; off < SIZE / 2; off += PG)
		assert_int_equal(tdp_vcpu_write(e->v[0], GPA + off, &seed, 8),
				 0);
}

static uint64_t rmap_entries(struct th_env *e)
{
	const struct memslot *s;
	uint64_t n;
	unsigned idx;

	tdp_read_lock(&e->vm->mmu.lock);
	idx = tdp_srcu_read_lock(&e->vm->srcu);
	s = memslots_find_id(vm_memslots(e->vm, 0), 0);
	n = legacy_rmap_entries(&e->vm->mmu, s->rmaps);
	tdp_srcu_read_unlock(&e->vm->srcu, idx);
	tdp_read_unlock(&e->vm->mmu.lock);
	return n;
}

static void test_config(void **state)
{
	struct tdp_host *h;
	struct tdp_vm *vm;
	struct tdp_vm_config c = {.engine = 2};

	(void)state;
	assert_int_equal(tdp_host_create(NULL, &h), 0);
	assert_int_equal(tdp_vm_create(h, &c, &vm), -EINVAL);
	c = (struct tdp_vm_config){.engine = TDP_ENGINE_LEGACY,
				   .flags = TDP_VM_CONFIDENTIAL};
	assert_int_equal(tdp_vm_create(h, &c, &vm), -EINVAL);
	tdp_host_destroy(h);
}

/* The reverse maps follow every leaf through the life of a VM. */
static void test_rmaps_follow_leaves(void **state)
{
	struct th_env e;
	struct tdp_stats st;
	struct tdp_memslot s = {.gpa = GPA, .size = SIZE, .flags = 0};
	uint64_t bm[SIZE / PG / 64];

	(void)state;
	env_init(&e, 0, 0, 0);
	touch_all(&e, 1);
	tdp_vm_get_stats(e.vm, &st);
	assert_true(st.pages_2m > 0); /* huge leaves, rmapped at level 2 */
	assert_int_equal(rmap_entries(&e), st.pages_4k + st.pages_2m);
	th_audit_clean(e.vm);
	/* dirty logging: eager split under the write lock, then 4K leaves */
	s.hva = e.hva;
	s.flags = TDP_MEM_LOG_DIRTY;
	assert_int_equal(tdp_vm_set_memslot(e.vm, &s), 0);
	tdp_vm_get_stats(e.vm, &st);
	assert_int_equal(st.pages_2m, 0);
	assert_int_equal(rmap_entries(&e), st.pages_4k);
	th_audit_clean(e.vm);
	touch_all(&e, 2);
	assert_int_equal(tdp_vm_get_dirty_log(e.vm, 0, 0, bm), 0);
	for (unsigned i = 0; i < SIZE / PG / 64; i++)
		assert_true(bm[i] == ~0ull);
	th_audit_clean(e.vm);
	/* host invalidation through the reverse maps */
	assert_int_equal(tdp_host_migrate(e.h, e.hva, SIZE / 2), 0);
	th_audit_clean(e.vm);
	s.flags = 0; /* logging off: huge leaves recovered in place */
	assert_int_equal(tdp_vm_set_memslot(e.vm, &s), 0);
	th_audit_clean(e.vm);
	assert_int_equal(tdp_vm_zap_all_fast(e.vm), 0);
	assert_int_equal(rmap_entries(&e), 0);
	touch_all(&e, 3);
	s.gpa = 2 * GPA; /* move: the reverse maps move along, empty */
	assert_int_equal(tdp_vm_set_memslot(e.vm, &s), 0);
	assert_int_equal(rmap_entries(&e), 0);
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

/* ---- the shadow-page hash ---- */

static struct tdp_pt_page *hash_find(struct th_env *e, uint64_t gfn, int level)
{
	struct tdp_pt_page *sp;

	tdp_write_lock(&e->vm->mmu.lock);
	sp = sp_hash_find(&e->vm->mmu.sp_hash, gfn, sp_role(level, 0));
	tdp_write_unlock(&e->vm->mmu.lock);
	return sp;
}

static void test_shadow_page_hash(void **state)
{
	struct th_env e;
	struct sp_hash *h;
	struct tdp_vcpu *v2;
	struct tdp_pt_page *root, *t4k;
	struct tdp_stats st;
	const int rl = 4; /* the default root level */
	uint64_t gfn = GPA / PG, x = 0;
	char rep[2048] = "";

	(void)state;
	env_init(&e, 0, TDP_PAGE_SIZE, 0); /* 4 KiB leaves only */
	h = &e.vm->mmu.sp_hash;
	assert_int_equal(tdp_vcpu_create(e.vm, 1, &v2), 0);
	touch_all(&e, 1);
	assert_int_equal(tdp_vcpu_read(v2, GPA, &x, 8), 0);
	/* one root, found by both vCPUs through the hash */
	root = hash_find(&e, 0, rl);
	assert_non_null(root);
	assert_ptr_equal(e.v[0]->root[0], root);
	assert_ptr_equal(v2->root[0], root);
	/* a table per level on the way to GPA, each under its key */
	t4k = hash_find(&e, gfn, TDP_LEVEL_4K);
	assert_non_null(t4k);
	assert_ptr_equal(sptep_to_sp(t4k->ptep)->level, TDP_LEVEL_2M);
	assert_non_null(hash_find(&e, gfn, TDP_LEVEL_2M));
	assert_non_null(hash_find(&e, 0, TDP_LEVEL_1G));
	assert_null(hash_find(&e, gfn + SIZE / PG, TDP_LEVEL_4K));
	tdp_vm_get_stats(e.vm, &st);
	assert_int_equal(h->count, st.pt_pages + 1);
	th_audit_clean(e.vm);

	/* the audit notices a table the hash has lost */
	tdp_write_lock(&e.vm->mmu.lock);
	sp_hash_del(h, t4k);
	tdp_write_unlock(&e.vm->mmu.lock);
	assert_true(tdp_vm_audit(e.vm, rep, sizeof(rep)) >= 2);
	assert_non_null(strstr(rep, "missing from the shadow-page hash"));
	assert_non_null(strstr(rep, "the shadow-page hash holds"));
	tdp_write_lock(&e.vm->mmu.lock);
	sp_hash_add(h, t4k);
	tdp_write_unlock(&e.vm->mmu.lock);
	th_audit_clean(e.vm);

	/* a fast zap: the old root stays (the vCPUs hold it) but is
	 * obsolete; the first vCPU to reload makes the new one */
	assert_int_equal(tdp_vm_zap_all_fast(e.vm), 0);
	assert_null(hash_find(&e, 0, rl));
	assert_int_equal(h->count, 1);
	assert_int_equal(tdp_vcpu_read(e.v[0], GPA, &x, 8), 0);
	assert_ptr_not_equal(e.v[0]->root[0], root);
	assert_ptr_equal(hash_find(&e, 0, rl), e.v[0]->root[0]);
	assert_int_equal(tdp_vcpu_read(v2, GPA, &x, 8), 0);
	assert_ptr_equal(v2->root[0], e.v[0]->root[0]);
	tdp_vm_get_stats(e.vm, &st);
	assert_int_equal(h->count, st.pt_pages + 1); /* the old root is gone */
	th_audit_clean(e.vm);
	tdp_vcpu_destroy(v2);
	th_env_fini(&e); /* destroying the VM asserts the hash is empty */
}

/* ---- lockless aging against zaps ---- */

struct race {
	struct th_env *e;
	atomic_bool stop;
	int missed;
};

/* Zap and refault the second half of the slot, again and again. */
static void *zapper(void *arg)
{
	struct race *r = arg;

	while (!atomic_load(&r->stop))
		assert_int_equal(tdp_vm_zap_gfn_range(r->e->vm, 0,
						      GPA + SIZE / 2,
						      SIZE / 2), 0);
	return NULL;
}

static void *refaulter(void *arg)
{
	struct race *r = arg;
	struct tdp_vcpu *v;
	uint64_t x = 0;

	assert_int_equal(tdp_vcpu_create(r->e->vm, 1, &v), 0);
	while (!atomic_load(&r->stop))
		for (uint64_t off = SIZE / 2; off < SIZE; off += PG)
			assert_int_equal(tdp_vcpu_read(v, GPA + off, &x, 8),
					 0);
	tdp_vcpu_destroy(v);
	return NULL;
}

static void run_aging_race(struct th_env *e, struct race *r, unsigned rounds)
{
	pthread_t t[2];
	uint64_t young[SIZE / PG / 64];

	r->e = e;
	atomic_store(&r->stop, false);
	pthread_create(&t[0], NULL, zapper, r);
	pthread_create(&t[1], NULL, refaulter, r);
	for (unsigned i = 0; i < rounds; i++) {
		/* the first half is never zapped: touch it, so every page of
		 * it is young, and the aging must say so */
		touch_all_half(e, i);
		memset(young, 0, sizeof(young));
		/* with a flush, so the next touches walk and set A again */
		assert_true(tdp_host_age(e->h, e->hva, SIZE, TDP_AGE_FLUSH,
					 young) >= 0);
		for (unsigned w = 0; w < SIZE / PG / 64 / 2; w++)
			if (young[w] != ~0ull)
				r->missed++;
	}
	atomic_store(&r->stop, true);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
}

static void test_lockless_aging_vs_zaps(void **state)
{
	struct th_env e;
	struct race r = { 0 };

	(void)state;
	env_init(&e, TDP_VM_NO_FAST_FAULT, TDP_PAGE_SIZE, 0);
	touch_all(&e, 1);
	run_aging_race(&e, &r, 200);
	assert_int_equal(r.missed, 0);
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

#if TDP_INJECT_AVAILABLE
/* The aging race with @inject: 42 if aging missed young pages or the
 * audit complained. */
static int aging_race_child(int inject)
{
	struct th_env e;
	struct race r = { 0 };

	env_init(&e, TDP_VM_NO_FAST_FAULT, TDP_PAGE_SIZE, inject);
	touch_all(&e, 1);
	run_aging_race(&e, &r, 5000);
	return r.missed || tdp_vm_audit(e.vm, NULL, 0) ? 42 : 0;
}

/* Caught: the child died, or its oracle said so. */
static bool caught(int inject)
{
	struct th_child c;

	th_run_child(aging_race_child, inject, 60, &c);
	return !th_child_clean(&c);
}

static void test_inject_rmap(void **state)
{
	(void)state;
	assert_false(caught(INJ_NONE));
	assert_true(caught(INJ_RMAP_LOCKLESS_ASSERT));
	assert_true(caught(INJ_RMAP_UNLOCKED_UPDATE));
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config),
#if TDP_INJECT_AVAILABLE
		/* first: the children are forked before this process has
		 * RCU helper threads, which a child would not have */
		cmocka_unit_test(test_inject_rmap),
#endif
		cmocka_unit_test(test_rmaps_follow_leaves),
		cmocka_unit_test(test_shadow_page_hash),
		cmocka_unit_test(test_lockless_aging_vs_zaps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
