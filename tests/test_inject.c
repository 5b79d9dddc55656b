/* SPDX-License-Identifier: MIT */
/*
 * test_inject.c - the protocol tests can fail: each deterministic scenario
 * is run with one historical bug put back (src/inject.h) in a forked
 * child, and must be detected there: by an explicit oracle (the child
 * exits with DETECTED), an assertion of the library (abort), a sanitizer,
 * or a time limit (livelock).  The same scenario without the injection
 * must run clean (exit CLEAN).  Skipped in builds without TDP_INJECT.
 *
 * put-dec-not-one needs a real race and is left to the torture test.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "vm.h"

#define CLEAN 0
#define DETECTED 42

struct fx {
	struct tdp_host *h;
	struct tdp_vm *vm;
	struct tdp_vcpu *v, *v2;
	uint64_t hva;
};

/* Inside the child, failures of setup are plain aborts. */
#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c))                                                      \
			abort();                                               \
	} while (0)

/* @vm_flags: TDP_VM_*; @prot: the host mapping's */
static void fx_init_flags(struct fx *f, int inject, uint64_t size,
			  uint64_t folio, unsigned nr_as, unsigned vm_flags,
			  unsigned prot)
{
	struct tdp_host_config hc = { .mem_bytes = 1 * GiB };
	struct tdp_vm_config vc = { .max_vcpus = 4, .nr_as = nr_as,
				    .flags = vm_flags };

	memset(f, 0, sizeof(*f));
	CHECK(!tdp_host_create(&hc, &f->h));
	CHECK(!tdp_host_mmap(f->h, size, prot, folio, 0, &f->hva));
	CHECK(!tdp_vm_create(f->h, &vc, &f->vm));
	f->vm->mmu.inject = inject;
	for (unsigned as = 0; as < nr_as; as++) {
		struct tdp_memslot s = { .as_id = as, .slot = 0, .gpa = 0,
					 .size = size, .hva = f->hva };
		CHECK(!tdp_vm_set_memslot(f->vm, &s));
	}
	CHECK(!tdp_vcpu_create(f->vm, 0, &f->v));
}

static void fx_init(struct fx *f, int inject, uint64_t size, uint64_t folio,
		    unsigned nr_as)
{
	fx_init_flags(f, inject, size, folio, nr_as, 0,
		      TDP_PROT_READ | TDP_PROT_WRITE);
}

static int fx_fini(struct fx *f)
{
	char report[512];
	int problems = 0;

	if (f->v)
		problems = tdp_vm_audit(f->vm, report, sizeof(report));
	tdp_vcpu_destroy(f->v);
	tdp_vcpu_destroy(f->v2);
	tdp_vm_destroy(f->vm);
	tdp_host_destroy(f->h);
	return problems ? DETECTED : CLEAN;
}

static void touch(struct tdp_vcpu *v, uint64_t gpa)
{
	uint8_t b[8] = { 1 };

	CHECK(!tdp_vcpu_write(v, gpa, b, sizeof(b)));
}

/* Run @fn(@inject) in a child: CLEAN only for a clean exit; anything
 * else (our oracle's code, a sanitizer's exit code, a signal, the time
 * limit: a livelock is a detection too) is DETECTED. */
static int run_child(int (*fn)(int), int inject)
{
	struct th_child c;

	th_run_child(fn, inject, 8, &c);
	if (th_child_clean(&c))
		return CLEAN;
	if (inject == INJ_NONE)
		th_child_describe("without an injection", &c);
	return DETECTED;
}

static void expect(int (*fn)(int), const char *name)
{
	int id = tdp_inject_lookup(name);

	assert_true(id > 0);
	assert_int_equal(run_child(fn, INJ_NONE), CLEAN);
	assert_int_equal(run_child(fn, id), DETECTED);
}

/* ---- yield-without-flush: a yield with a zap's flush still owed ---- */

struct yctx {
	struct fx *f;
	unsigned calls;
	bool missed_flush;
	uint64_t flushes;
};

static bool every_32(void *arg)
{
	return ++((struct yctx *)arg)->calls % 32 == 0;
}

static void check_flushed(void *arg)
{
	struct yctx *y = arg;
	uint64_t now = th_vm_stats(y->f->vm).remote_tlb_flush;

	if (now <= y->flushes)
		y->missed_flush = true;
	y->flushes = now;
}

static int sc_yield_flush(int inject)
{
	struct fx f;
	struct yctx y = { .f = &f };

	fx_init(&f, inject, 4 * MiB, TDP_PAGE_SIZE, 1);
	for (uint64_t p = 0; p < 1024; p++)
		touch(f.v, p * 4096);
	y.flushes = th_vm_stats(f.vm).remote_tlb_flush;
	f.vm->mmu.hooks = (struct tdp_mmu_hooks){ .force_yield = every_32,
						  .in_yield = check_flushed,
						  .arg = &y };
	/* not wholly covering a table: leaf zaps, whose flush is owed */
	CHECK(!tdp_vm_zap_gfn_range(f.vm, 0, 4096, 4 * MiB - 8192));
	memset(&f.vm->mmu.hooks, 0, sizeof(f.vm->mmu.hooks));
	if (y.missed_flush)
		return DETECTED;
	return fx_fini(&f);
}

static void test_yield_without_flush(void **s)
{
	(void)s;
	expect(sc_yield_flush, "yield-without-flush");
}

/* ---- yield-without-progress: yielding at the same gfn forever ---- */

static bool always(void *arg)
{
	(void)arg;
	return true;
}

static int sc_progress(int inject)
{
	struct fx f;

	fx_init(&f, inject, 2 * MiB, TDP_PAGE_SIZE, 1);
	for (uint64_t p = 0; p < 64; p++)
		touch(f.v, p * 4096);
	f.vm->mmu.hooks.force_yield = always;
	CHECK(!tdp_vm_zap_gfn_range(f.vm, 0, 0, 2 * MiB));
	memset(&f.vm->mmu.hooks, 0, sizeof(f.vm->mmu.hooks));
	return fx_fini(&f);
}

static void test_yield_without_progress(void **s)
{
	(void)s;
	expect(sc_progress, "yield-without-progress");
}

/* ---- plain-store-loses-dirty ---- */

static int sc_dirty(int inject)
{
	struct fx f;
	uint8_t b[8];

	fx_init(&f, inject, 2 * MiB, TDP_PAGE_SIZE, 1);
	CHECK(!tdp_vcpu_read(f.v, 0, b, sizeof(b)));
	f.vm->mmu.hooks.zap_before_write = th_hw_sets_dirty;
	CHECK(!tdp_vm_zap_gfn_range(f.vm, 0, 0, 4096));
	memset(&f.vm->mmu.hooks, 0, sizeof(f.vm->mmu.hooks));
	if (stat_read(f.vm->stats.zapped_dirty) != 1)
		return DETECTED;
	return fx_fini(&f);
}

static void test_plain_store_loses_dirty(void **s)
{
	(void)s;
	expect(sc_dirty, "plain-store-loses-dirty");
}

/* ---- root-leak-after-yield: the iterator's last put never frees ---- */

static int sc_root_leak(int inject)
{
	struct tdp_mmu *mmu;
	struct tdp_pt_page *root;
	struct fx f;

	fx_init(&f, inject, 2 * MiB, TDP_PAGE_SIZE, 1);
	mmu = &f.vm->mmu;
	touch(f.v, 0);
	tdp_vcpu_destroy(f.v);
	f.v = NULL;
	tdp_read_lock(&mmu->lock);
	root = root_next(&mmu->roots, NULL, -1, ROOTS_VALID);
	tdp_read_unlock(&mmu->lock);
	CHECK(!tdp_vm_invalidate_roots(f.vm));
	tdp_read_lock(&mmu->lock);
	CHECK(!root_next(&mmu->roots, root, -1, ROOTS_VALID));
	tdp_read_unlock(&mmu->lock);
	/* the audit's root accounting is the oracle */
	if (tdp_vm_audit(f.vm, NULL, 0) || th_vm_stats(f.vm).roots)
		return DETECTED;
	return fx_fini(&f);
}

static void test_root_leak_after_yield(void **s)
{
	(void)s;
	expect(sc_root_leak, "root-leak-after-yield");
}

/* ---- unpinned-next-root: the saved next root is freed meanwhile ---- */

static int sc_unpinned(int inject)
{
	struct tdp_mmu *mmu;
	struct tdp_pt_page *root;
	struct fx f;

	fx_init(&f, inject, 2 * MiB, TDP_PAGE_SIZE, 2);
	mmu = &f.vm->mmu;
	CHECK(!tdp_vcpu_create(f.vm, 1, &f.v2));
	touch(f.v, 0);
	CHECK(!tdp_vcpu_set_as(f.v2, 1));
	touch(f.v2, 0); /* a second root, after the first on the list */
	/* roots are listed newest first: the iterator takes v2's root and
	 * (with the bug) remembers v's, unpinned */
	tdp_read_lock(&mmu->lock);
	root = root_next(&mmu->roots, NULL, -1, ROOTS_ALL);
	tdp_read_unlock(&mmu->lock);
	CHECK(root == f.v2->root[1]);
	/* while the iterator "yields", the other root goes away */
	tdp_vcpu_destroy(f.v);
	f.v = NULL;
	CHECK(!tdp_vm_invalidate_roots(f.vm));
	tdp_rcu_barrier();
	tdp_read_lock(&mmu->lock);
	while ((root = root_next(&mmu->roots, root, -1, ROOTS_ALL)))
		;
	tdp_read_unlock(&mmu->lock);
	return fx_fini(&f);
}

static void test_unpinned_next_root(void **s)
{
	(void)s;
	expect(sc_unpinned, "unpinned-next-root");
}

/* ---- ref-invalid-root: a vCPU reloads onto an invalid root ---- */

static int sc_ref_invalid(int inject)
{
	struct fx f;

	fx_init(&f, inject, 2 * MiB, TDP_PAGE_SIZE, 1);
	CHECK(!tdp_vcpu_create(f.vm, 1, &f.v2));
	touch(f.v, 0);
	touch(f.v2, 4096);
	/* v2 keeps its (now invalid) root: it does not run again */
	CHECK(!tdp_vm_invalidate_roots(f.vm));
	touch(f.v, 8192); /* reload must pick a valid root */
	if (root_invalid(f.v->root[0]))
		return DETECTED;
	return fx_fini(&f);
}

static void test_ref_invalid_root(void **s)
{
	(void)s;
	expect(sc_ref_invalid, "ref-invalid-root");
}

/* ---- teardown-below-max-gfn: teardown must visit every entry ---- */

static int sc_teardown(int inject)
{
	struct fx f;

	fx_init(&f, inject, 2 * MiB, TDP_PAGE_SIZE, 1);
	touch(f.v, 0);
	/* VM destroy zaps the roots; a root left non-empty aborts */
	return fx_fini(&f);
}

static void test_teardown_below_max_gfn(void **s)
{
	(void)s;
	expect(sc_teardown, "teardown-below-max-gfn");
}

/* ---- skip-invalidate-retry: the fault installs a frame the host took */

static void migrate_in_window(struct tdp_vcpu *v, uint64_t gfn, void *arg)
{
	struct fx *f = arg;
	static int once;

	(void)v;
	if (once++)
		return;
	CHECK(!tdp_host_migrate(f->h, f->hva + gfn * 4096, 4096));
}

static int sc_retry(int inject)
{
	struct fx f;
	uint8_t b[8] = { 7 };

	fx_init(&f, inject, 2 * MiB, TDP_PAGE_SIZE, 1);
	CHECK(!tdp_host_write(f.h, f.hva, b, sizeof(b)));
	f.vm->hooks.fault_after_gup = migrate_in_window;
	f.vm->hooks.arg = &f;
	CHECK(!tdp_vcpu_read(f.v, 0, b, sizeof(b)));
	f.vm->hooks.fault_after_gup = NULL;
	/* the audit compares every leaf with the host's current frame */
	return fx_fini(&f);
}

static void test_skip_invalidate_retry(void **s)
{
	(void)s;
	expect(sc_retry, "skip-invalidate-retry");
}

/* ---- nested-range-reset: a fault retries against every invalidation in
 * progress, including the outer one of two nested over different ranges
 * (I5; blind spot 3).  A host that runs invalidations concurrently (Linux
 * calls invalidate_range_start under the mmap lock held for read, or
 * none) nests them; this one serialises its own, so the scenario plays
 * that host: after the fault got its frame, invalidation A over the
 * fault's page begins, then B over another page; the fault must retry
 * until both ended. ---- */

struct nest {
	struct fx *f;
	unsigned calls;
	uint64_t retries; /* the vCPU's pf_retry when A began */
	bool open, retried;
};

static void nest_end(struct nest *n)
{
	struct tdp_host_notifier *hn = &n->f->vm->hn;

	if (!n->open)
		return;
	vm_notifier_ops.invalidate_end(hn, n->f->hva + 5 * 4096,
				       n->f->hva + 6 * 4096);
	vm_notifier_ops.invalidate_end(hn, n->f->hva, n->f->hva + 4096);
	n->open = false;
}

static void nest_in_window(struct tdp_vcpu *v, uint64_t gfn, void *arg)
{
	struct nest *n = arg;
	struct tdp_host_notifier *hn = &n->f->vm->hn;

	(void)gfn;
	if (n->calls++)
		return;
	n->retries = stat_read(v->st.pf_retry);
	vm_notifier_ops.invalidate_start(hn, n->f->hva, n->f->hva + 4096);
	vm_notifier_ops.invalidate_start(hn, n->f->hva + 5 * 4096,
					 n->f->hva + 6 * 4096);
	n->open = true;
}

/* Back in guest mode after the fault: it retried, or it mapped. */
static void nest_reentered(struct tdp_vcpu *v, uint64_t gpa, void *arg)
{
	struct nest *n = arg;

	(void)gpa;
	if (!n->open)
		return;
	n->retried = stat_read(v->st.pf_retry) > n->retries;
	nest_end(n);
}

static int sc_nested(int inject)
{
	struct nest n = { 0 };
	struct fx f;
	uint8_t b[8] = { 7 };
	int r;

	fx_init(&f, inject, 2 * MiB, TDP_PAGE_SIZE, 1);
	n.f = &f;
	CHECK(!tdp_host_write(f.h, f.hva, b, sizeof(b)));
	f.vm->hooks.fault_after_gup = nest_in_window;
	f.vm->hooks.guest_entered = nest_reentered;
	f.vm->hooks.arg = &n;
	CHECK(!tdp_vcpu_read(f.v, 0, b, sizeof(b)));
	f.vm->hooks.fault_after_gup = NULL;
	f.vm->hooks.guest_entered = NULL;
	nest_end(&n); /* the fault mapped inside A's window */
	r = fx_fini(&f);
	return n.retried ? r : DETECTED;
}

static void test_nested_range_reset(void **s)
{
	(void)s;
	expect(sc_nested, "nested-range-reset");
}

/* ---- slots-during-invalidate: a memslot published while a host
 * invalidation is in progress (I5; KVM's "Block memslot updates across
 * range_start() and range_end()").  The invalidation found the slots of
 * its hva range when it began; a slot created over the same hva after
 * that is not in its range, so a fault there would map the frame the
 * host is about to free without retrying.  The scenario plays the host:
 * it begins invalidating a page, another thread creates a second slot
 * over it, and the update must wait until the invalidation ends; if it
 * lands inside, a fault through the new slot maps the page inside the
 * window, which is what the torture saw as a read of a freed frame. ---- */

struct sdi {
	struct fx *f;
	atomic_bool done;
	int r;
};

#define SDI_GPA (8 * MiB)

static void *sdi_create(void *arg)
{
	struct sdi *d = arg;
	struct tdp_memslot s = { .slot = 1, .gpa = SDI_GPA, .size = 2 * MiB,
				 .hva = d->f->hva };

	d->r = tdp_vm_set_memslot(d->f->vm, &s);
	atomic_store(&d->done, true);
	return NULL;
}

static int sc_slots_inval(int inject)
{
	struct sdi d = { 0 };
	struct tdp_host_notifier *hn;
	bool mapped_inside = false;
	uint8_t b[8] = { 9 };
	pthread_t t;
	struct fx f;
	int level, r;

	fx_init(&f, inject, 2 * MiB, TDP_PAGE_SIZE, 1);
	d.f = &f;
	hn = &f.vm->hn;
	CHECK(!tdp_host_write(f.h, f.hva, b, sizeof(b)));
	vm_notifier_ops.invalidate_start(hn, f.hva, f.hva + 4096);
	CHECK(!pthread_create(&t, NULL, sdi_create, &d));
	/* the update either waits or lands inside the invalidation */
	while (!atomic_load(&d.done) && !th_vm_stats(f.vm).memslot_waits)
		sched_yield();
	if (atomic_load(&d.done)) {
		CHECK(!tdp_vcpu_read(f.v, SDI_GPA, b, sizeof(b)));
		mapped_inside =
			th_leaf_pfn(f.v, SDI_GPA >> 12, &level) != ~0ull;
	}
	vm_notifier_ops.invalidate_end(hn, f.hva, f.hva + 4096);
	CHECK(!pthread_join(t, NULL));
	CHECK(d.r == 0);
	if (!mapped_inside) {
		/* after the end, the new slot works and waited exactly once */
		CHECK(th_vm_stats(f.vm).memslot_waits == 1);
		CHECK(!tdp_vcpu_read(f.v, SDI_GPA, b, sizeof(b)) && b[0] == 9);
	}
	r = fx_fini(&f);
	return mapped_inside ? DETECTED : r;
}

static void test_slots_during_invalidate(void **s)
{
	(void)s;
	expect(sc_slots_inval, "slots-during-invalidate");
}

/* ---- prefault-no-reload: pre-faulting without KVM's kvm_mmu_reload.
 * After the roots were invalidated, a vCPU that does not enter guest mode
 * keeps its invalid root: every fault retries (I3: nothing is mapped into
 * an invalid root) and the call never ends.  The fault hook asks for a
 * stop at the 100th attempt (a correct call makes 4), so the bug shows as
 * -EINTR instead of a hang. ---- */

static void stop_at_100(struct tdp_vcpu *v, uint64_t gfn, void *arg)
{
	unsigned *calls = arg;

	(void)gfn;
	if (++*calls == 100)
		tdp_vcpu_request_stop(v);
}

static int sc_prefault_reload(int inject)
{
	unsigned calls = 0;
	uint64_t m = 0;
	struct fx f;
	int r;

	fx_init(&f, inject, 2 * MiB, TDP_PAGE_SIZE, 1);
	touch(f.v, 0); /* a root loaded */
	CHECK(!tdp_vm_invalidate_roots(f.vm));
	f.vm->hooks.fault_after_gup = stop_at_100;
	f.vm->hooks.arg = &calls;
	r = tdp_vcpu_pre_fault_memory(f.v, 8 * 4096, 4 * 4096, 0, &m);
	f.vm->hooks.fault_after_gup = NULL;
	if (r || m != 4 * 4096)
		return DETECTED;
	return fx_fini(&f);
}

static void test_prefault_no_reload(void **s)
{
	(void)s;
	expect(sc_prefault_reload, "prefault-no-reload");
}

/* ---- nx-huge-exec: with NX huge pages, only fetches were taken care
 * of; a read of memory backed by a 2 MiB folio maps an executable huge
 * leaf. ---- */

static int sc_nx_exec(int inject)
{
	struct tdp_translation t;
	uint8_t b[8];
	struct fx f;
	int r;

	fx_init_flags(&f, inject, 2 * MiB, TDP_HUGE_2M, 1,
		      TDP_VM_NX_HUGE_PAGES,
		      TDP_PROT_READ | TDP_PROT_WRITE | TDP_PROT_EXEC);
	CHECK(!tdp_vcpu_read(f.v, 4096, b, sizeof(b)));
	CHECK(!tdp_vm_translate(f.vm, 0, 4096, &t));
	CHECK(t.size == 2 * MiB); /* the folio is mapped huge either way */
	r = fx_fini(&f);
	return (t.prot & TDP_PROT_EXEC) ? DETECTED : r;
}

static void test_nx_huge_exec(void **s)
{
	(void)s;
	expect(sc_nx_exec, "nx-huge-exec");
}

/* ---- free-without-grace: a software walker inside RCU ---- */

struct walker {
	uint64_t *table;
	struct event ready, leave;
	uint64_t seen;
};

static void *walker(void *arg)
{
	struct walker *w = arg;

	tdp_rcu_read_lock();
	ev_set(&w->ready);
	ev_wait(&w->leave);
	w->seen = tdp_iter_load(&w->table[0]); /* asserts on freed tables */
	tdp_rcu_read_unlock();
	return NULL;
}

static uint64_t *level1_table(struct tdp_pt_page *root, uint64_t gfn)
{
	uint64_t *t = root->spt;

	for (int l = root->level; l > TDP_LEVEL_4K; l--)
		t = spte_to_table(t[spte_index(gfn, l)]);
	return t;
}

static int sc_grace(int inject)
{
	struct walker w = { 0 };
	pthread_t th;
	struct fx f;

	fx_init(&f, inject, 2 * MiB, TDP_PAGE_SIZE, 1);
	touch(f.v, 0);
	w.table = level1_table(f.v->root[0], 0);
	pthread_create(&th, NULL, walker, &w);
	ev_wait(&w.ready);
	CHECK(!tdp_vm_invalidate_roots(f.vm));
	ev_set(&w.leave);
	pthread_join(th, NULL);
	if (w.seen != SPTE_FROZEN)
		return DETECTED;
	return fx_fini(&f);
}

static void test_free_without_grace(void **s)
{
	(void)s;
	expect(sc_grace, "free-without-grace");
}

/* ---- free-before-flush / rcu-exit-before-flush: a vCPU with a cached
 * pointer to a table that a zap removes walks it before the flush ---- */

struct stale {
	struct fx *f;
	struct th_pause p; /* after guest entry */
};

static void *zapper(void *arg)
{
	struct stale *s = arg;

	/* the whole 2 MiB region: its level-1 table is removed */
	CHECK(!tdp_vm_zap_gfn_range(s->f->vm, 0, 0, 2 * MiB));
	return NULL;
}

static void *vcpu_read_8192(void *arg)
{
	struct stale *s = arg;
	uint8_t b[8];

	CHECK(!tdp_vcpu_read(s->f->v, 8192, b, sizeof(b)));
	return NULL;
}

static int sc_stale_psc(int inject)
{
	struct stale s = { 0 };
	pthread_t tz, tv;
	struct fx f;

	fx_init(&f, inject, 2 * MiB, TDP_PAGE_SIZE, 1);
	s.f = &f;
	touch(f.v, 0);
	touch(f.v, 4096); /* now the PSC caches the level-1 table */
	f.vm->hooks.guest_entered = th_pause_hook;
	f.vm->hooks.arg = &s.p;
	th_pause_arm(&s.p);
	/* the vCPU enters guest mode for gpa 8192 (a TLB miss) and stops
	 * before its walk */
	pthread_create(&tv, NULL, vcpu_read_8192, &s);
	ev_wait(&s.p.reached);
	/* the zap removes the table; it must not be freed before the flush,
	 * which waits for this guest-mode window to end */
	pthread_create(&tz, NULL, zapper, &s);
	usleep(200 * 1000);
	ev_set(&s.p.release); /* the vCPU walks through its cached pointer */
	pthread_join(tv, NULL);
	pthread_join(tz, NULL);
	f.vm->hooks.guest_entered = NULL;
	return fx_fini(&f);
}

static void test_free_before_flush(void **s)
{
	(void)s;
	expect(sc_stale_psc, "free-before-flush");
}

static void test_rcu_exit_before_flush(void **s)
{
	(void)s;
	expect(sc_stale_psc, "rcu-exit-before-flush");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_yield_without_flush),
		cmocka_unit_test(test_yield_without_progress),
		cmocka_unit_test(test_plain_store_loses_dirty),
		cmocka_unit_test(test_root_leak_after_yield),
		cmocka_unit_test(test_unpinned_next_root),
		cmocka_unit_test(test_ref_invalid_root),
		cmocka_unit_test(test_teardown_below_max_gfn),
		cmocka_unit_test(test_skip_invalidate_retry),
		cmocka_unit_test(test_nested_range_reset),
		cmocka_unit_test(test_slots_during_invalidate),
		cmocka_unit_test(test_prefault_no_reload),
		cmocka_unit_test(test_nx_huge_exec),
		cmocka_unit_test(test_free_without_grace),
		cmocka_unit_test(test_free_before_flush),
		cmocka_unit_test(test_rcu_exit_before_flush),
	};

	if (!TDP_INJECT_AVAILABLE) {
		print_message("bug injection not compiled in: skipped\n");
		return 0;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
