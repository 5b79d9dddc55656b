/* SPDX-License-Identifier: MIT */
/*
 * test_protocols.c - deterministic tests of the concurrency protocols of
 * issue [2]: each test stops one thread at a chosen point with a test hook
 * (src/mmu.h struct tdp_mmu_hooks, src/vm.h struct vm_test_hooks) and
 * checks what another thread may and may not do meanwhile.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "vm.h"

/* One vCPU; memslot 0 at gpa 0. */
static void fx_init(struct th_env *f, uint64_t size, uint64_t folio)
{
	struct tdp_vm_config vc = { .max_vcpus = 4 };

	th_env_init(f, 1 * GiB, &vc, 1);
	th_env_slot(f, 0, size, folio);
}

/* The audit is clean unless the test dropped the vCPU. */
static void fx_fini(struct th_env *f)
{
	if (f->v[0])
		th_audit_clean(f->vm);
	th_env_fini(f);
}

static void write_pages(struct th_env *f, uint64_t first, uint64_t n,
			uint64_t gen)
{
	uint8_t buf[4096];

	for (uint64_t p = first; p < first + n; p++) {
		th_fill_page(buf, p * 4096, gen);
		assert_int_equal(tdp_vcpu_write(f->v[0], p * 4096, buf, 4096),
				 0);
	}
}

/* ------------------------------------------------------------------ */
/* A zap that yields restarts from the root: every leaf present when it  */
/* started is zapped exactly once, a leaf re-created behind the walk     */
/* while it yielded is not revisited, and every yield first did the TLB  */
/* flush the walk owed (I6, I9).                                         */
/* ------------------------------------------------------------------ */

struct yield_ctx {
	struct th_env *f;
	unsigned calls, yields, writes;
	uint64_t last_gfn, behind_gfn;
	uint64_t flushes_at_yield;
	bool flush_pending_ok;
};

static bool force_every_16(void *arg)
{
	struct yield_ctx *y = arg;

	return ++y->calls % 16 == 0;
}

static void count_zap(void *arg, uint64_t *sptep)
{
	struct yield_ctx *y = arg;
	struct tdp_pt_page *sp = sptep_to_sp(sptep);

	y->writes++;
	y->last_gfn = sp->gfn + (uint64_t)(sptep - sp->spt);
}

static void during_yield(void *arg)
{
	struct yield_ctx *y = arg;
	struct tdp_stats s = th_vm_stats(y->f->vm);
	uint8_t buf[64];

	y->yields++;
	/* The walk zapped leaves before yielding: the flush it owed must
	 * have been done, and the (idle) vCPU must have the request. */
	if (s.remote_tlb_flush <= y->flushes_at_yield ||
	    !(atomic_load(&y->f->v[0]->requests) & REQ_TLB_FLUSH))
		y->flush_pending_ok = false;
	y->flushes_at_yield = s.remote_tlb_flush;
	/* Re-create a leaf behind the walk (lock is dropped now). */
	if (y->yields == 3) {
		y->behind_gfn = y->last_gfn;
		assert_int_equal(tdp_vcpu_read(y->f->v[0], y->behind_gfn * 4096,
					       buf, sizeof(buf)),
				 0);
	}
}

static void test_zap_yield_restart(void **state)
{
	struct yield_ctx y = { .flush_pending_ok = true };
	struct th_env f;
	uint8_t buf[4096];

	(void)state;
	fx_init(&f, 2 * MiB, TDP_PAGE_SIZE);
	y.f = &f;
	write_pages(&f, 0, 512, 1);
	assert_int_equal(th_vm_stats(f.vm).pages_4k, 512);

	y.flushes_at_yield = th_vm_stats(f.vm).remote_tlb_flush;
	f.vm->mmu.hooks = (struct tdp_mmu_hooks){
		.force_yield = force_every_16,
		.in_yield = during_yield,
		.zap_before_write = count_zap,
		.arg = &y,
	};
	/* [1, 511): the table is not wholly covered, so every leaf is
	 * zapped one by one */
	assert_int_equal(tdp_vm_zap_gfn_range(f.vm, 0, 4096, 2 * MiB - 8192),
			 0);
	memset(&f.vm->mmu.hooks, 0, sizeof(f.vm->mmu.hooks));

	assert_true(y.yields >= 20);
	assert_true(y.flush_pending_ok);
	/* every original leaf written exactly once; the re-created one was
	 * behind the restart point and stays, as do the two edges */
	assert_int_equal(y.writes, 510);
	assert_int_equal(th_vm_stats(f.vm).pages_4k, 3);
	/* data survives the zap (refault) */
	for (uint64_t p = 0; p < 512; p += 7) {
		assert_int_equal(tdp_vcpu_read(f.v[0], p * 4096, buf, 4096), 0);
		assert_int_equal(th_check_page(buf, p * 4096, 1), 0);
	}
	fx_fini(&f);
}


/* ------------------------------------------------------------------ */
/* A root invalidated while an iterator holds it is freed only after the */
/* iterator lets go, and exactly once (seed 000, I3).                    */
/* ------------------------------------------------------------------ */

static void test_root_freed_after_iterator(void **state)
{
	struct tdp_mmu *mmu;
	struct tdp_pt_page *root, *next;
	struct th_env f;

	(void)state;
	fx_init(&f, 2 * MiB, TDP_PAGE_SIZE);
	mmu = &f.vm->mmu;
	write_pages(&f, 0, 4, 1);
	tdp_vcpu_destroy(f.v[0]); /* drops the vCPU's reference: MMU's left */
	f.v[0] = NULL;

	tdp_read_lock(&mmu->lock);
	root = root_next(&mmu->roots, NULL, -1, ROOTS_VALID);
	assert_non_null(root);
	assert_int_equal(atomic_load(&root->refcount), 2);
	tdp_read_unlock(&mmu->lock); /* "yield" holding the reference */

	assert_int_equal(tdp_vm_invalidate_roots(f.vm), 0);
	/* zapped, MMU reference gone, but the iterator's keeps it alive */
	assert_true(root_invalid(root));
	assert_int_equal(atomic_load(&root->refcount), 1);
	assert_int_equal(th_vm_stats(f.vm).roots, 1);
	assert_int_equal(th_vm_stats(f.vm).pt_pages, 0);
	assert_true(root->in_use);

	tdp_read_lock(&mmu->lock);
	next = root_next(&mmu->roots, root, -1, ROOTS_VALID); /* lets go: last put */
	tdp_read_unlock(&mmu->lock);
	assert_null(next);
	assert_int_equal(th_vm_stats(f.vm).roots, 0);
	tdp_rcu_barrier();
	assert_false(root->in_use); /* freed, once: a second free asserts */
	assert_int_equal(th_vm_stats(f.vm).pt_pages_alloc, 0);
	fx_fini(&f);
}

/* The break helper drops the iterator's reference (seed 000). */
static void test_root_iter_break(void **state)
{
	struct tdp_mmu *mmu;
	struct tdp_pt_page *root, *seen = NULL;
	struct th_env f;
	int inside = 0;

	(void)state;
	fx_init(&f, 2 * MiB, TDP_PAGE_SIZE);
	mmu = &f.vm->mmu;
	write_pages(&f, 0, 1, 1);
	tdp_read_lock(&mmu->lock);
	for_each_root_yield_safe(&mmu->roots, root, 0, ROOTS_VALID) {
		seen = root;
		inside = atomic_load(&root->refcount);
		root_iter_break(&mmu->roots, root);
		break;
	}
	tdp_read_unlock(&mmu->lock);
	assert_non_null(seen);
	assert_int_equal(inside, 3); /* MMU + vCPU + iterator */
	assert_int_equal(atomic_load(&seen->refcount), 2);
	fx_fini(&f);
}

/* ------------------------------------------------------------------ */
/* A table unlinked while another thread walks it under RCU is freed     */
/* only after that walker leaves its read-side section (I2).            */
/* ------------------------------------------------------------------ */

struct walker {
	uint64_t *table;
	struct event ready, leave;
	uint64_t seen;
};

static void *rcu_walker(void *arg)
{
	struct walker *w = arg;

	tdp_rcu_read_lock();
	ev_set(&w->ready);
	ev_wait(&w->leave);
	w->seen = __atomic_load_n(&w->table[0], __ATOMIC_ACQUIRE);
	tdp_rcu_read_unlock();
	return NULL;
}

static uint64_t *find_table(struct tdp_pt_page *root, uint64_t gfn, int level)
{
	uint64_t *t = root->spt;

	for (int l = root->level; l > level; l--) {
		uint64_t s = t[spte_index(gfn, l)];

		assert_true(spte_is_table(s, l));
		t = spte_to_table(s);
	}
	return t;
}

static void test_rcu_defers_table_free(void **state)
{
	struct walker w = { 0 };
	struct tdp_pt_page *sp;
	pthread_t th;
	struct th_env f;

	(void)state;
	fx_init(&f, 2 * MiB, TDP_PAGE_SIZE);
	write_pages(&f, 0, 1, 1);
	w.table = find_table(f.v[0]->root[0], 0, TDP_LEVEL_4K);
	sp = sptep_to_sp(w.table);
	assert_true(sp->in_use);

	pthread_create(&th, NULL, rcu_walker, &w);
	ev_wait(&w.ready);
	/* unlinks every table of the root (zap under the read lock) */
	assert_int_equal(tdp_vm_invalidate_roots(f.vm), 0);
	assert_int_equal(th_vm_stats(f.vm).pt_pages, 0);
	usleep(100 * 1000);
	assert_true(sp->in_use); /* the walker is still inside */
	ev_set(&w.leave);
	pthread_join(th, NULL);
	assert_true(w.seen == SPTE_FROZEN); /* unlinked, not yet freed */
	tdp_rcu_barrier();
	assert_false(sp->in_use);
	fx_fini(&f);
}

/* ------------------------------------------------------------------ */
/* A frozen entry is never overwritten by another thread (I4): fault B   */
/* has read a 4 KiB entry and is about to install a leaf when fault A    */
/* replaces the whole table by a 2 MiB leaf, freezing B's entry.         */
/* ------------------------------------------------------------------ */

struct race_ab {
	struct th_env *f;
	struct tdp_pt_page *root;
	uint64_t pfn;
	pthread_t b;
	struct event b_at_point, a_done;
	enum tdp_map_ret ret_b;
	uint64_t b_entry_during;
	uint64_t *b_sptep;
};

static void b_before_set(void *arg, uint64_t *sptep)
{
	struct race_ab *r = arg;

	if (!pthread_equal(pthread_self(), r->b))
		return; /* A passes straight through */
	r->b_sptep = sptep;
	ev_set(&r->b_at_point);
	ev_wait(&r->a_done);
	r->b_entry_during = __atomic_load_n(sptep, __ATOMIC_ACQUIRE);
}

static struct tdp_fault mkfault(uint64_t gfn, uint64_t pfn, int level)
{
	return (struct tdp_fault){ .gfn = gfn, .pfn = pfn, .goal_level = level,
				   .map_writable = true,
				   .host_writable = true };
}

static void *fault_b(void *arg)
{
	struct race_ab *r = arg;
	struct tdp_mmu *mmu = &r->f->vm->mmu;
	struct pt_cache c = { 0 };
	struct tdp_fault fb = mkfault(5, r->pfn + 5, TDP_LEVEL_4K);

	assert_int_equal(pt_cache_topup(&mmu->alloc, &c, 4), 0);
	tdp_read_lock(&mmu->lock);
	r->ret_b = tdp_mmu_map(mmu, r->root, &fb, &c);
	tdp_read_unlock(&mmu->lock);
	pt_cache_drain(&c);
	return NULL;
}

static void test_frozen_entry_not_overwritten(void **state)
{
	struct race_ab r = { 0 };
	struct pt_cache c = { 0 };
	struct tdp_mmu *mmu;
	struct th_env f;
	unsigned order, prot;
	uint8_t buf[64] = { 1 };

	(void)state;
	fx_init(&f, 4 * MiB, TDP_HUGE_2M);
	mmu = &f.vm->mmu;
	r.f = &f;
	/* populate the first folio in the host, load a root through an
	 * access to the second one */
	assert_int_equal(tdp_host_write(f.h, f.hva, buf, sizeof(buf)), 0);
	assert_int_equal(tdp_vcpu_read(f.v[0], 2 * MiB, buf, sizeof(buf)), 0);
	assert_int_equal(host_lookup(f.h, f.hva, &r.pfn, &order, &prot), 0);
	assert_int_equal(order, HOST_ORDER_2M);
	r.root = f.v[0]->root[0];

	/* a 4 KiB mapping puts a table under the first 2 MiB entry */
	struct tdp_fault f4 = mkfault(0, r.pfn, TDP_LEVEL_4K);
	assert_int_equal(pt_cache_topup(&mmu->alloc, &c, 4), 0);
	tdp_read_lock(&mmu->lock);
	assert_int_equal(tdp_mmu_map(mmu, r.root, &f4, &c), MAP_FIXED);
	tdp_read_unlock(&mmu->lock);
	assert_int_equal(th_vm_stats(f.vm).pages_4k, 1);

	mmu->hooks = (struct tdp_mmu_hooks){ .map_before_set = b_before_set,
					     .arg = &r };
	pthread_create(&r.b, NULL, fault_b, &r);
	ev_wait(&r.b_at_point);
	/* A: both hold the read lock; A replaces the table by a 2M leaf */
	struct tdp_fault f2 = mkfault(0, r.pfn, TDP_LEVEL_2M);
	tdp_read_lock(&mmu->lock);
	assert_int_equal(tdp_mmu_map(mmu, r.root, &f2, &c), MAP_FIXED);
	tdp_read_unlock(&mmu->lock);
	ev_set(&r.a_done);
	pthread_join(r.b, NULL);
	memset(&mmu->hooks, 0, sizeof(mmu->hooks));
	pt_cache_drain(&c);

	assert_true(r.b_entry_during == SPTE_FROZEN);
	assert_int_equal(r.ret_b, MAP_RETRY); /* B's exchange failed */
	assert_int_equal(th_vm_stats(f.vm).pages_4k, 0);
	assert_int_equal(th_vm_stats(f.vm).pages_2m, 2);
	fx_fini(&f); /* audit: counters equal the walk, no stray leaf */
}

/* ------------------------------------------------------------------ */
/* A Dirty bit set by hardware while a write-locked zap is between its   */
/* snapshot and its write is not lost (I4; KVM ba3a6120a4e7).            */
/* ------------------------------------------------------------------ */

static void test_dirty_bit_survives_zap(void **state)
{
	struct th_env f;
	uint8_t buf[64];

	(void)state;
	fx_init(&f, 2 * MiB, TDP_PAGE_SIZE);
	assert_int_equal(tdp_vcpu_read(f.v[0], 0, buf, sizeof(buf)), 0);
	uint64_t *t = find_table(f.v[0]->root[0], 0, TDP_LEVEL_4K);
	assert_false(t[0] & SPTE_D); /* a read fault maps it clean */

	f.vm->mmu.hooks.zap_before_write = th_hw_sets_dirty;
	assert_int_equal(tdp_vm_zap_gfn_range(f.vm, 0, 0, 4096), 0);
	memset(&f.vm->mmu.hooks, 0, sizeof(f.vm->mmu.hooks));
	assert_int_equal(stat_read(f.vm->stats.zapped_dirty), 1);
	assert_int_equal(th_vm_stats(f.vm).pages_4k, 0);
	fx_fini(&f);
}

/* ------------------------------------------------------------------ */
/* A vCPU in guest mode holds off the invalidation's request wait, and    */
/* after it the vCPU never walks the invalid root (I3).                  */
/* ------------------------------------------------------------------ */

struct vaccess {
	struct th_env *f;
};

static void *vcpu_read_once(void *arg)
{
	struct vaccess *a = arg;
	uint8_t buf[64];

	assert_int_equal(tdp_vcpu_read(a->f->v[0], 0, buf, sizeof(buf)), 0);
	return NULL;
}

struct inval {
	struct th_env *f;
	atomic_int done;
};

static void *invalidate(void *arg)
{
	struct inval *i = arg;

	assert_int_equal(tdp_vm_invalidate_roots(i->f->vm), 0);
	atomic_store(&i->done, 1);
	return NULL;
}

static void test_vcpu_never_on_invalid_root(void **state)
{
	struct th_pause g = {0};
	struct vaccess a;
	struct inval inv = { 0 };
	struct tdp_pt_page *old_root;
	pthread_t tv, ti;
	uint64_t reloads;
	struct th_env f;
	uint8_t buf[64];

	(void)state;
	fx_init(&f, 2 * MiB, TDP_PAGE_SIZE);
	a.f = &f;
	inv.f = &f;
	assert_int_equal(tdp_vcpu_read(f.v[0], 0, buf, sizeof(buf)), 0);
	old_root = f.v[0]->root[0];
	reloads = th_vm_stats(f.vm).root_reloads;

	f.vm->hooks.in_guest = th_pause_hook;
	f.vm->hooks.arg = &g;
	th_pause_arm(&g);
	pthread_create(&tv, NULL, vcpu_read_once, &a);
	ev_wait(&g.reached);
	pthread_create(&ti, NULL, invalidate, &inv);
	usleep(100 * 1000);
	/* marked invalid, but the request wait cannot end while the vCPU
	 * is still in its guest-mode window */
	assert_true(root_invalid(old_root));
	assert_false(root_acked(&f.vm->mmu.roots, old_root));
	assert_int_equal(atomic_load(&inv.done), 0);
	ev_set(&g.release);
	pthread_join(tv, NULL);
	pthread_join(ti, NULL);
	assert_int_equal(atomic_load(&inv.done), 1);
	assert_true(root_acked(&f.vm->mmu.roots, old_root));
	f.vm->hooks.in_guest = NULL;

	/* the next access reloads (the walker asserts it never walks an
	 * acknowledged invalid root) */
	assert_int_equal(tdp_vcpu_read(f.v[0], 0, buf, sizeof(buf)), 0);
	assert_ptr_not_equal(f.v[0]->root[0], old_root);
	assert_int_equal(th_vm_stats(f.vm).root_reloads, reloads + 1);
	assert_int_equal(th_vm_stats(f.vm).roots, 1); /* the old one is gone */
	fx_fini(&f);
}

/* ------------------------------------------------------------------ */
/* A huge-page split that yields while a fast zap invalidates the roots  */
/* stops at the invalid root: it splits nothing more there (a vCPU has   */
/* meanwhile built the same tables in the new root; in the legacy engine */
/* a second valid shadow page of one key breaks the hash, sp_hash.h).    */
/* Both engines: the split is the same code (dirty.c).                   */
/* ------------------------------------------------------------------ */

struct split_race {
	struct th_env *f;
	struct tdp_pt_page *old_root;
	int yields;
};

static bool yield_always(void *arg)
{
	(void)arg;
	return true;
}

/* The first half of a fast zap (vm.c invalidate_and_zap), then a write
 * to the last 2 MiB region, whose 4 KiB table the vCPU builds in the new
 * root.  The invalid root stays unzapped until the test zaps it. */
static void invalidate_then_fault(void *arg)
{
	struct split_race *r = arg;
	struct tdp_vm *vm = r->f->vm;
	uint8_t buf[64] = { 1 };
	uint64_t gen;

	if (r->yields++)
		return;
	tdp_write_lock(&vm->mmu.lock);
	r->old_root = r->f->v[0]->root[0];
	assert_true(root_get(r->old_root)); /* the test inspects it later */
	tdp_mmu_invalidate_roots(&vm->mmu, ROOT_DIRECT);
	gen = atomic_load(&vm->mmu.roots.inval_gen);
	vm_request_all(vm, REQ_RELOAD_ROOTS | REQ_TLB_FLUSH);
	tdp_write_unlock(&vm->mmu.lock);
	vm_wait_guest_exits(vm);
	roots_mark_acked(&vm->mmu.roots, gen);
	assert_int_equal(tdp_vcpu_write(r->f->v[0], 6 * MiB, buf, sizeof(buf)),
			 0);
	assert_ptr_not_equal(r->f->v[0]->root[0], r->old_root);
}

static void split_stops_at_invalid_root(unsigned engine)
{
	struct tdp_vm_config vc = { .max_vcpus = 4, .engine = engine };
	struct split_race r = { 0 };
	struct tdp_mmu *mmu;
	uint8_t buf[64] = { 1 };
	struct th_env f;
	uint64_t *pmd;

	th_env_init(&f, 1 * GiB, &vc, 1);
	th_env_slot(&f, 0, 8 * MiB, 2 * MiB);
	mmu = &f.vm->mmu;
	r.f = &f;
	for (uint64_t gpa = 0; gpa < 8 * MiB; gpa += 2 * MiB)
		assert_int_equal(tdp_vcpu_write(f.v[0], gpa, buf, sizeof(buf)),
				 0);
	assert_int_equal(th_vm_stats(f.vm).pages_2m, 4);

	mmu->hooks = (struct tdp_mmu_hooks){
		.force_yield = yield_always,
		.in_yield = invalidate_then_fault,
		.arg = &r,
	};
	th_set_slot(f.vm, 0, 0, f.gpa, f.size, f.hva, TDP_MEM_LOG_DIRTY);
	memset(&mmu->hooks, 0, sizeof(mmu->hooks));
	assert_true(r.yields >= 1);

	/* the region the split had not reached when the root went invalid
	 * is still one 2 MiB leaf there */
	assert_true(root_invalid(r.old_root));
	pmd = find_table(r.old_root, 0, TDP_LEVEL_2M);
	assert_true(spte_is_present_leaf(pmd[3], TDP_LEVEL_2M));

	tdp_read_lock(&mmu->lock);
	root_put(&mmu->roots, r.old_root);
	tdp_read_unlock(&mmu->lock);
	mmu_zap_invalidated_roots(f.vm);
	fx_fini(&f);
}

static void test_split_stops_at_invalid_root(void **state)
{
	(void)state;
	split_stops_at_invalid_root(TDP_ENGINE_TDP);
}

static void test_split_stops_at_invalid_root_legacy(void **state)
{
	(void)state;
	split_stops_at_invalid_root(TDP_ENGINE_LEGACY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zap_yield_restart),
		cmocka_unit_test(test_root_freed_after_iterator),
		cmocka_unit_test(test_root_iter_break),
		cmocka_unit_test(test_rcu_defers_table_free),
		cmocka_unit_test(test_frozen_entry_not_overwritten),
		cmocka_unit_test(test_dirty_bit_survives_zap),
		cmocka_unit_test(test_vcpu_never_on_invalid_root),
		cmocka_unit_test(test_split_stops_at_invalid_root),
		cmocka_unit_test(test_split_stops_at_invalid_root_legacy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
