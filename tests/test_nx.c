/* SPDX-License-Identifier: MIT */
/*
 * test_nx.c - NX huge pages (TDP_VM_NX_HUGE_PAGES, KVM's nx_huge_pages):
 * huge leaves are never executable, fetches map 4 KiB and record possible
 * NX huge pages, data faults map below those tables, recovery (a pass or
 * the worker) zaps a fraction of them so huge leaves come back; huge-page
 * recovery after dirty logging builds non-executable leaves.  Both engines
 * and both host backends.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helpers.h"

#define PG 4096ull
#define RWX (TDP_PROT_READ | TDP_PROT_WRITE | TDP_PROT_EXEC)
#define GPA (1ull << 30)
#define SIZE (16 * MiB)

struct env {
	struct tdp_host *h;
	struct tdp_vm *vm;
	struct tdp_vcpu *v;
	uint64_t hva;
};

static void env_init(struct env *e, unsigned flags, unsigned period_ms)
{
	struct tdp_vm_config c = {.flags = flags,
				  .nx_recovery_ratio = period_ms ? 1 : 0,
				  .nx_recovery_period_ms = period_ms};

	memset(e, 0, sizeof(*e));
	e->h = th_host_new(GiB);
	assert_int_equal(tdp_vm_create(e->h, &c, &e->vm), 0);
	e->hva = th_host_map(e->h, SIZE, RWX, TDP_HUGE_2M);
	th_set_slot(e->vm, 0, 0, GPA, SIZE, e->hva, 0);
	assert_int_equal(tdp_vcpu_create(e->vm, 0, &e->v), 0);
}

static void env_fini(struct env *e)
{
	th_audit_clean(e->vm);
	tdp_vcpu_destroy(e->v);
	tdp_vm_destroy(e->vm);
	tdp_host_destroy(e->h);
}

/* The leaf that maps @gpa: its size, and whether it is executable. */
static uint64_t leaf(struct env *e, uint64_t gpa, bool *exec)
{
	struct tdp_translation t;

	assert_int_equal(tdp_vm_translate(e->vm, 0, gpa, &t), 0);
	*exec = t.prot & TDP_PROT_EXEC;
	return t.size;
}

static void fetch(struct env *e, uint64_t gpa)
{
	uint8_t b[8];

	assert_int_equal(tdp_vcpu_fetch(e->v, gpa, b, sizeof(b)), 0);
}

static void rd(struct env *e, uint64_t gpa)
{
	uint8_t b[8];

	assert_int_equal(tdp_vcpu_read(e->v, gpa, b, sizeof(b)), 0);
}

static void test_errors(void **state)
{
	struct tdp_vm_config c = {.nx_recovery_ratio = 5};
	struct tdp_host *h = th_host_new(GiB);
	struct tdp_vm *vm;
	uint64_t z = 7;

	(void)state;
	/* the recovery knobs need the flag */
	assert_int_equal(tdp_vm_create(h, &c, &vm), -EINVAL);
	c = (struct tdp_vm_config){.nx_recovery_period_ms = 5};
	assert_int_equal(tdp_vm_create(h, &c, &vm), -EINVAL);
	c = (struct tdp_vm_config){.flags = TDP_VM_NX_RECOVER_LOCKED};
	assert_int_equal(tdp_vm_create(h, &c, &vm), -EINVAL);
	assert_int_equal(tdp_vm_create(h, NULL, &vm), 0);
	assert_int_equal(tdp_vm_recover_nx_huge_pages(vm, 1, &z), -EOPNOTSUPP);
	assert_int_equal(z, 0);
	tdp_vm_destroy(vm);
	c = (struct tdp_vm_config){.flags = TDP_VM_NX_HUGE_PAGES};
	assert_int_equal(tdp_vm_create(h, &c, &vm), 0);
	assert_int_equal(tdp_vm_recover_nx_huge_pages(vm, 0, &z), -EINVAL);
	assert_int_equal(tdp_vm_recover_nx_huge_pages(NULL, 1, &z), -EINVAL);
	assert_int_equal(tdp_vm_recover_nx_huge_pages(vm, 1, NULL), 0);
	tdp_vm_destroy(vm);
	tdp_host_destroy(h);
}

/* Without the flag a fetch maps a huge executable leaf: the control that
 * shows the other tests could fail. */
static void test_off(void **state)
{
	struct env e;
	bool x;

	(void)state;
	env_init(&e, 0, 0);
	fetch(&e, GPA + 5 * PG);
	assert_int_equal(leaf(&e, GPA, &x), 2 * MiB);
	assert_true(x);
	assert_int_equal(th_vm_stats(e.vm).nx_lpage_splits, 0);
	env_fini(&e);
}

static void test_policy(void **state)
{
	struct env e;
	bool x;

	(void)state;
	env_init(&e, TDP_VM_NX_HUGE_PAGES, 0);
	/* a fetch: 4 KiB, executable; its table is a possible NX huge page */
	fetch(&e, GPA + 5 * PG);
	assert_int_equal(leaf(&e, GPA + 5 * PG, &x), PG);
	assert_true(x);
	assert_int_equal(th_vm_stats(e.vm).nx_lpage_splits, 1);
	/* a read beside it maps below that table, not over it */
	rd(&e, GPA + 9 * PG);
	assert_int_equal(leaf(&e, GPA + 9 * PG, &x), PG);
	assert_int_equal(leaf(&e, GPA + 5 * PG, &x), PG); /* still there */
	assert_true(x);
	/* a read elsewhere: huge, not executable */
	rd(&e, GPA + 2 * MiB);
	assert_int_equal(leaf(&e, GPA + 2 * MiB + 7 * PG, &x), 2 * MiB);
	assert_false(x);
	/* a fetch there splits it: 4 KiB executable, the rest stays
	 * mapped (not executable) */
	fetch(&e, GPA + 2 * MiB + 7 * PG);
	assert_int_equal(leaf(&e, GPA + 2 * MiB + 7 * PG, &x), PG);
	assert_true(x);
	assert_int_equal(leaf(&e, GPA + 2 * MiB + 8 * PG, &x), PG);
	assert_false(x);
	assert_int_equal(th_vm_stats(e.vm).nx_lpage_splits, 2);
	assert_int_equal(th_vm_stats(e.vm).pages_2m, 0);
	env_fini(&e);
}

/* Recovery zaps ceil(n / ratio) of them; faults then map huge again. */
static void test_recovery(void **state)
{
	struct tdp_stats s;
	struct env e;
	uint64_t z;
	bool x;

	(void)state;
	env_init(&e, TDP_VM_NX_HUGE_PAGES, 0);
	for (uint64_t i = 0; i < 4; i++)
		fetch(&e, GPA + i * 2 * MiB + 3 * PG);
	assert_int_equal(th_vm_stats(e.vm).nx_lpage_splits, 4);
	assert_int_equal(tdp_vm_recover_nx_huge_pages(e.vm, 3, &z), 0);
	assert_int_equal(z, 2); /* ceil(4 / 3) */
	s = th_vm_stats(e.vm);
	assert_int_equal(s.nx_lpage_splits, 2);
	assert_int_equal(s.nx_recovered, 2);
	assert_int_equal(tdp_vm_recover_nx_huge_pages(e.vm, 1, &z), 0);
	assert_int_equal(z, 2);
	assert_int_equal(th_vm_stats(e.vm).nx_lpage_splits, 0);
	assert_int_equal(tdp_vm_recover_nx_huge_pages(e.vm, 1, &z), 0);
	assert_int_equal(z, 0);
	for (uint64_t i = 0; i < 4; i++) {
		rd(&e, GPA + i * 2 * MiB + 3 * PG);
		assert_int_equal(leaf(&e, GPA + i * 2 * MiB, &x), 2 * MiB);
		assert_false(x);
	}
	/* and a fetch goes back to 4 KiB */
	fetch(&e, GPA + 3 * PG);
	assert_int_equal(leaf(&e, GPA + 3 * PG, &x), PG);
	assert_true(x);
	env_fini(&e);
}

/* A table removed by anything else is no longer counted: a zap of a
 * range that covers it (the TDP engine removes tables a zap covers whole;
 * the legacy engine zaps leaves through its reverse maps and keeps its
 * tables, as KVM's), and the zap of invalidated roots (both). */
static void test_zap_uncounts(void **state)
{
	const char *eng = getenv("TDPMMU_TEST_ENGINE");
	bool legacy = eng && !strcmp(eng, "legacy");
	struct env e;

	(void)state;
	env_init(&e, TDP_VM_NX_HUGE_PAGES, 0);
	fetch(&e, GPA + 3 * PG);
	fetch(&e, GPA + 4 * MiB);
	assert_int_equal(th_vm_stats(e.vm).nx_lpage_splits, 2);
	assert_int_equal(tdp_vm_zap_gfn_range(e.vm, 0, GPA, 2 * MiB), 0);
	assert_int_equal(th_vm_stats(e.vm).nx_lpage_splits, legacy ? 2 : 1);
	assert_int_equal(tdp_vm_invalidate_roots(e.vm), 0);
	rd(&e, GPA + 8 * MiB); /* the vCPU leaves the old root */
	assert_int_equal(th_vm_stats(e.vm).nx_lpage_splits, 0);
	env_fini(&e);
}

/* Huge-page recovery when dirty logging ends builds huge leaves without
 * X, though the 4 KiB leaf it starts from was executable. */
static void test_log_recovery_not_exec(void **state)
{
	struct env e;
	bool x;

	(void)state;
	env_init(&e, TDP_VM_NX_HUGE_PAGES, 0);
	th_set_slot(e.vm, 0, 0, GPA, SIZE, e.hva, TDP_MEM_LOG_DIRTY);
	fetch(&e, GPA + 3 * PG);
	assert_int_equal(leaf(&e, GPA + 3 * PG, &x), PG);
	assert_true(x);
	th_set_slot(e.vm, 0, 0, GPA, SIZE, e.hva, 0);
	assert_int_equal(leaf(&e, GPA + 3 * PG, &x), 2 * MiB);
	assert_false(x);
	fetch(&e, GPA + 3 * PG); /* splits it again */
	assert_int_equal(leaf(&e, GPA + 3 * PG, &x), PG);
	assert_true(x);
	env_fini(&e);
}

/* The worker (period 10 ms, ratio 1) recovers without being asked. */
static void test_worker(void **state)
{
	struct env e;
	uint64_t t0;

	(void)state;
	env_init(&e, TDP_VM_NX_HUGE_PAGES, 10);
	fetch(&e, GPA + 3 * PG);
	t0 = th_now_ns();
	/* generous: a pass every 10 ms; the bound only catches a worker
	 * that never runs */
	while (th_vm_stats(e.vm).nx_recovered < 1 &&
	       th_now_ns() - t0 < 30000000000ull) {
		struct timespec ts = {0, 1000000};

		nanosleep(&ts, NULL);
	}
	assert_int_equal(th_vm_stats(e.vm).nx_recovered, 1);
	assert_int_equal(th_vm_stats(e.vm).nx_lpage_splits, 0);
	env_fini(&e); /* stops and joins the worker */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_off),
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_recovery),
		cmocka_unit_test(test_zap_uncounts),
		cmocka_unit_test(test_log_recovery_not_exec),
		cmocka_unit_test(test_worker),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
