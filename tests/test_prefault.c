/* SPDX-License-Identifier: MIT */
/*
 * test_prefault.c - tdp_vcpu_pre_fault_memory and tdp_vcpu_request_stop
 * (KVM_PRE_FAULT_MEMORY): what gets mapped (as read faults would, huge
 * where allowed, not Accessed), the progress count, where it stops early
 * (no memslot, an invalidation, a stop request) and bad input.  Runs with
 * both engines and both host backends.  Confidential VMs: test_confidential.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "vm.h"

#define PG 4096ull
#define GPA (64 * MiB)

static struct tdp_translation translate(struct th_env *e, uint64_t gpa,
					int *r)
{
	struct tdp_translation t = {0};

	*r = tdp_vm_translate(e->vm, 0, gpa, &t);
	return t;
}

static bool is_mapped(struct th_env *e, uint64_t gpa)
{
	int r;

	translate(e, gpa, &r);
	return r == 0;
}

static void env(struct th_env *e, uint64_t size, uint64_t folio)
{
	th_env_init(e, 0, NULL, 2);
	th_env_slot(e, GPA, size, folio);
}

static void test_bad_input(void **state)
{
	struct th_env e;
	uint64_t m = 77;

	(void)state;
	env(&e, 2 * MiB, PG);
	assert_int_equal(tdp_vcpu_pre_fault_memory(NULL, GPA, PG, 0, &m),
			 -EINVAL);
	assert_int_equal(m, 0); /* always set */
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], GPA, PG, 0, NULL),
			 -EINVAL);
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], GPA, PG, 1, &m),
			 -EINVAL);
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], GPA + 8, PG, 0, &m),
			 -EINVAL);
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], GPA, 100, 0, &m),
			 -EINVAL);
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], GPA, 0, 0, &m),
			 -EINVAL);
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], -PG, 2 * PG, 0, &m),
			 -EINVAL); /* wraps */
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], 1ull << 48, PG, 0,
						   &m),
			 -EINVAL); /* beyond a 4-level VM's gpa width */
	assert_int_equal(tdp_vcpu_request_stop(NULL), -EINVAL);
	/* nothing was mapped by any of them */
	assert_false(is_mapped(&e, GPA));
	assert_int_equal(th_vm_stats(e.vm).pf_taken, 0);
	th_env_fini_empty(&e);
}

/* 4 KiB folios: every page of the range mapped at 4 KiB, readable and
 * writable (no logging), not Accessed, by one fault each; the next
 * accesses take no fault and see the host's content. */
static void test_maps_range(void **state)
{
	struct th_env e;
	uint64_t m, x, n = 64;
	struct tdp_stats s0, s1;

	(void)state;
	env(&e, 2 * MiB, PG);
	for (uint64_t i = 0; i < n; i++)
		th_host_put_page(e.h, e.hva + i * PG, 5);
	s0 = th_vm_stats(e.vm);
	assert_int_equal(
		tdp_vcpu_pre_fault_memory(e.v[0], GPA, n * PG, 0, &m), 0);
	assert_int_equal(m, n * PG);
	s1 = th_vm_stats(e.vm);
	assert_int_equal(s1.pf_fixed - s0.pf_fixed, n);
	assert_int_equal(s1.pages_4k, n);
	for (uint64_t i = 0; i < n; i++) {
		int r;
		struct tdp_translation t = translate(&e, GPA + i * PG, &r);

		assert_int_equal(r, 0);
		assert_int_equal(t.size, PG);
		assert_false(t.accessed);
		assert_true(t.prot & TDP_PROT_READ);
	}
	assert_false(is_mapped(&e, GPA + n * PG)); /* nothing beyond */
	/* another vCPU shares the tables: no fault for it either */
	s0 = th_vm_stats(e.vm);
	for (uint64_t i = 0; i < n; i++) {
		uint8_t buf[PG];

		assert_int_equal(tdp_vcpu_read(e.v[1], GPA + i * PG, buf, PG),
				 0);
		assert_int_equal(th_check_page(buf, e.hva + i * PG, 5), 0);
	}
	s1 = th_vm_stats(e.vm);
	assert_int_equal(s1.pf_taken - s0.pf_taken, 0);
	/* already mapped: spurious faults, still the whole range */
	assert_int_equal(
		tdp_vcpu_pre_fault_memory(e.v[0], GPA, n * PG, 0, &m), 0);
	assert_int_equal(m, n * PG);
	assert_int_equal(th_read64(e.v[0], GPA, &x), 0);
	th_audit_clean(e.vm);
	th_env_fini_empty(&e);
}

/* 2 MiB folios: one fault maps a 2 MiB leaf, which counts from @gpa to
 * the leaf's end (KVM: min(size, end - gpa)). */
static void test_huge(void **state)
{
	struct th_env e;
	uint64_t m;
	struct tdp_stats s0, s1;
	int r;

	(void)state;
	env(&e, 8 * MiB, TDP_HUGE_2M);
	s0 = th_vm_stats(e.vm);
	/* one page in the middle of a 2 MiB page: the leaf covers all of it */
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], GPA + 3 * PG, PG, 0,
						   &m),
			 0);
	assert_int_equal(m, PG);
	assert_int_equal(translate(&e, GPA, &r).size, 2 * MiB);
	assert_int_equal(r, 0);
	/* from inside the first 2 MiB page to inside the third: 3 leaves */
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], GPA + 4 * PG,
						   4 * MiB, 0, &m),
			 0);
	assert_int_equal(m, 4 * MiB);
	s1 = th_vm_stats(e.vm);
	assert_int_equal(s1.pages_2m, 3);
	assert_int_equal(s1.pages_4k, 0);
	/* 1 fault + 1 spurious (the first leaf again) + 2 */
	assert_int_equal(s1.pf_fixed - s0.pf_fixed, 3);
	assert_false(is_mapped(&e, GPA + 6 * MiB));
	th_audit_clean(e.vm);
	th_env_fini_empty(&e);
}

/* No memslot at @gpa: -ENOENT and nothing mapped; a range that runs out
 * of the slot stops at its end with the count. */
static void test_no_memslot(void **state)
{
	struct th_env e;
	uint64_t m;

	(void)state;
	env(&e, 2 * MiB, PG);
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], GPA - 4 * PG, 8 * PG,
						   0, &m),
			 -ENOENT);
	assert_int_equal(m, 0);
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], GPA + 2 * MiB - 2 * PG,
						   8 * PG, 0, &m),
			 0);
	assert_int_equal(m, 2 * PG);
	assert_true(is_mapped(&e, GPA + 2 * MiB - PG));
	/* no MMIO entry was left behind by the call */
	assert_int_equal(th_vm_stats(e.vm).pf_mmio_spte_created, 0);
	th_env_fini_empty(&e);
}

/* Write-protect dirty logging: mapped without W (a read fault), nothing
 * logged; a read-only slot: mapped read-only. */
static void test_logging_and_readonly(void **state)
{
	struct th_env e;
	uint64_t m, *bm;
	int r;

	(void)state;
	env(&e, 2 * MiB, TDP_HUGE_2M);
	th_set_slot(e.vm, 0, 0, GPA, 2 * MiB, e.hva, TDP_MEM_LOG_DIRTY);
	assert_int_equal(
		tdp_vcpu_pre_fault_memory(e.v[0], GPA, 16 * PG, 0, &m), 0);
	assert_int_equal(m, 16 * PG);
	assert_int_equal(translate(&e, GPA, &r).size, PG); /* logged: 4 KiB */
	assert_false(translate(&e, GPA, &r).prot & TDP_PROT_WRITE);
	bm = th_bm_new(e.nwords);
	assert_int_equal(tdp_vm_get_dirty_log(e.vm, 0, 0, bm), 0);
	assert_int_equal(th_bm_count(bm, e.nwords), 0);
	free(bm);
	th_set_slot(e.vm, 0, 0, GPA, 2 * MiB, e.hva, TDP_MEM_READONLY);
	assert_int_equal(
		tdp_vcpu_pre_fault_memory(e.v[0], GPA, 2 * MiB, 0, &m), 0);
	assert_int_equal(m, 2 * MiB);
	assert_true(translate(&e, GPA, &r).prot & TDP_PROT_READ);
	assert_false(translate(&e, GPA, &r).prot & TDP_PROT_WRITE);
	th_env_fini_empty(&e);
}

/* A stop request: pending before the call, it makes the call return
 * -EINTR at once and is consumed; made during the call (here by the
 * fault hook at the third page), the call stops there with the count. */
struct stopper {
	unsigned calls, at;
};

static void stop_hook(struct tdp_vcpu *v, uint64_t gfn, void *arg)
{
	struct stopper *st = arg;

	(void)gfn;
	if (++st->calls == st->at)
		assert_int_equal(tdp_vcpu_request_stop(v), 0);
}

static void test_stop_request(void **state)
{
	struct stopper st = {.at = 3};
	struct th_env e;
	uint64_t m;

	(void)state;
	env(&e, 2 * MiB, PG);
	assert_int_equal(tdp_vcpu_request_stop(e.v[0]), 0);
	assert_int_equal(tdp_vcpu_request_stop(e.v[0]), 0); /* one pending */
	/* another vCPU's request is its own */
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[1], GPA, PG, 0, &m), 0);
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], GPA + PG, 8 * PG, 0,
						   &m),
			 -EINTR);
	assert_int_equal(m, 0);
	assert_false(is_mapped(&e, GPA + PG));
	/* consumed: the next call runs */
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], GPA + PG, PG, 0, &m),
			 0);
	assert_int_equal(m, PG);
	e.vm->hooks.fault_after_gup = stop_hook;
	e.vm->hooks.arg = &st;
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], GPA + 16 * PG,
						   16 * PG, 0, &m),
			 0);
	e.vm->hooks.fault_after_gup = NULL;
	assert_int_equal(m, 3 * PG); /* the third page was mapped, then stop */
	assert_true(is_mapped(&e, GPA + 18 * PG));
	assert_false(is_mapped(&e, GPA + 19 * PG));
	th_env_fini_empty(&e);
}

/* An invalidation in progress over the page being pre-faulted: the call
 * stops there (-EAGAIN with nothing mapped yet) rather than spinning
 * while the host works; after the end it maps. */
static void test_invalidation_stops(void **state)
{
	struct tdp_host_notifier *hn;
	struct th_env e;
	uint64_t m;

	(void)state;
	env(&e, 2 * MiB, PG);
	hn = &e.vm->hn;
	vm_notifier_ops.invalidate_start(hn, e.hva + 5 * PG, e.hva + 6 * PG);
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], GPA + 5 * PG, 4 * PG,
						   0, &m),
			 -EAGAIN);
	assert_int_equal(m, 0);
	assert_false(is_mapped(&e, GPA + 5 * PG));
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], GPA, 16 * PG, 0, &m),
			 0);
	assert_int_equal(m, 5 * PG); /* up to the invalidated page */
	assert_false(is_mapped(&e, GPA + 5 * PG));
	vm_notifier_ops.invalidate_end(hn, e.hva + 5 * PG, e.hva + 6 * PG);
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], GPA + m, 16 * PG - m,
						   0, &m),
			 0);
	assert_int_equal(m, 11 * PG);
	assert_true(is_mapped(&e, GPA + 5 * PG));
	th_audit_clean(e.vm);
	th_env_fini_empty(&e);
}

/* After the roots were invalidated (KVM: a memslot update, a reset), the
 * call loads a valid root, as KVM's kvm_mmu_reload, and maps there; a
 * vCPU that never ran maps too. */
static void test_reloads_root(void **state)
{
	struct th_env e;
	uint64_t m;

	(void)state;
	env(&e, 2 * MiB, PG);
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], GPA, 4 * PG, 0, &m),
			 0);
	assert_int_equal(tdp_vm_invalidate_roots(e.vm), 0);
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], GPA, 4 * PG, 0, &m),
			 0);
	assert_int_equal(m, 4 * PG);
	assert_true(is_mapped(&e, GPA + 3 * PG));
	th_audit_clean(e.vm);
	th_env_fini_empty(&e);
}

/* vCPUs pre-faulting the same range at once: each reports all of it, the
 * tables hold each page once. */
struct par {
	struct tdp_vcpu *v;
	atomic_int *go;
	uint64_t m;
	int r;
};

static void *par_fn(void *arg)
{
	struct par *p = arg;

	while (!atomic_load(p->go))
		;
	p->r = tdp_vcpu_pre_fault_memory(p->v, GPA, 2 * MiB, 0, &p->m);
	return NULL;
}

static void test_parallel(void **state)
{
	atomic_int go = 0;
	struct par p[2];
	pthread_t t[2];
	struct th_env e;

	(void)state;
	env(&e, 2 * MiB, PG);
	for (int i = 0; i < 2; i++) {
		p[i] = (struct par){.v = e.v[i], .go = &go};
		assert_int_equal(pthread_create(&t[i], NULL, par_fn, &p[i]), 0);
	}
	atomic_store(&go, 1);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(p[i].r, 0);
		assert_int_equal(p[i].m, 2 * MiB);
	}
	assert_int_equal(th_vm_stats(e.vm).pages_4k, 512);
	th_audit_clean(e.vm);
	th_env_fini_empty(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_maps_range),
		cmocka_unit_test(test_huge),
		cmocka_unit_test(test_no_memslot),
		cmocka_unit_test(test_logging_and_readonly),
		cmocka_unit_test(test_stop_request),
		cmocka_unit_test(test_invalidation_stops),
		cmocka_unit_test(test_reloads_root),
		cmocka_unit_test(test_parallel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
