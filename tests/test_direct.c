/* SPDX-License-Identifier: MIT */
/*
 * test_direct.c - direct access for emulators (tdp_vcpu_map,
 * tdp_vcpu_check_requests) and the VMM's own dirty marks
 * (tdp_vm_mark_dirty): their semantics and their bad inputs.  Runs with
 * both engines and both host backends (tests/CMakeLists.txt).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"
#include "tdpmmu.h"

#define PG   TDP_PAGE_SIZE
#define GPA0 (1ull << 32)
#define NPG  64ull

static void env(struct th_env *e, unsigned flags)
{
	th_env_init(e, 1ull << 30, NULL, 1);
	e->hva = th_env_map(e, NPG * PG, PG);
	e->gpa = GPA0;
	e->size = NPG * PG;
	e->npages = NPG;
	e->nwords = 1;
	th_set_slot(e->vm, 0, 0, GPA0, NPG * PG, e->hva, flags);
}

/* The pointer is the guest's memory: what it writes a vCPU reads, and the
 * other way round, at the right offset. */
static void test_map_rw(void **state)
{
	struct th_env e;
	uint64_t v = 0;
	void *p;

	(void)state;
	env(&e, 0);
	assert_int_equal(tdp_vcpu_map(e.v[0], GPA0 + 3 * PG + 8,
				      TDP_PROT_READ | TDP_PROT_WRITE, &p),
			 0);
	*(uint64_t *)p = 0x1234;
	assert_int_equal(th_read64(e.v[0], GPA0 + 3 * PG + 8, &v), 0);
	assert_int_equal(v, 0x1234);
	assert_int_equal(th_write64(e.v[0], GPA0 + 5 * PG, 0x5678), 0);
	assert_int_equal(tdp_vcpu_map(e.v[0], GPA0 + 5 * PG, TDP_PROT_READ,
				      &p),
			 0);
	assert_int_equal(*(uint64_t *)p, 0x5678);
	assert_int_equal(tdp_host_read(e.h, e.hva + 3 * PG + 8, &v, 8), 0);
	assert_int_equal(v, 0x1234);
	assert_int_equal(tdp_vcpu_check_requests(e.v[0]), 0);
	th_env_fini_empty(&e);
}

/* Return value: 0 while the window holds, 1 when a fault had to end it. */
static void test_map_window(void **state)
{
	struct th_env e;
	void *a, *b;

	(void)state;
	env(&e, 0);
	/* a new window (nothing before it): 0 even though it faulted */
	assert_int_equal(tdp_vcpu_map(e.v[0], GPA0, TDP_PROT_WRITE, &a), 0);
	/* present already: stays in the window */
	assert_int_equal(tdp_vcpu_map(e.v[0], GPA0 + 8, TDP_PROT_READ, &b),
			 0);
	assert_ptr_equal((char *)a + 8, b);
	/* not mapped yet: the window had to end */
	assert_int_equal(tdp_vcpu_map(e.v[0], GPA0 + 9 * PG, TDP_PROT_READ,
				      &b),
			 1);
	assert_int_equal(tdp_vcpu_check_requests(e.v[0]), 0);
	/* after check_requests, a new window again */
	assert_int_equal(tdp_vcpu_map(e.v[0], GPA0 + 10 * PG, TDP_PROT_READ,
				      &b),
			 0);
	/* an access ends the window */
	assert_int_equal(th_write64(e.v[0], GPA0, 1), 0);
	assert_int_equal(tdp_vcpu_check_requests(e.v[0]), 0);
	th_env_fini_empty(&e);
}

static void test_map_errors(void **state)
{
	struct th_env e;
	void *p = NULL;

	(void)state;
	env(&e, 0);
	assert_int_equal(tdp_vcpu_map(e.v[0], GPA0, 0, &p), -EINVAL);
	assert_int_equal(tdp_vcpu_map(e.v[0], GPA0, 8, &p), -EINVAL);
	assert_int_equal(tdp_vcpu_map(e.v[0], GPA0, TDP_PROT_READ, NULL),
			 -EINVAL);
	assert_int_equal(tdp_vcpu_map(e.v[0], 1ull << 60, TDP_PROT_READ, &p),
			 -EINVAL);
	/* no memslot: an MMIO exit */
	assert_int_equal(tdp_vcpu_map(e.v[0], 0, TDP_PROT_READ, &p), -EFAULT);
	assert_null(p);
	th_set_slot(e.vm, 0, 1, GPA0 + NPG * PG, NPG * PG,
		    th_env_map(&e, NPG * PG, PG), TDP_MEM_READONLY);
	assert_int_equal(tdp_vcpu_map(e.v[0], GPA0 + NPG * PG, TDP_PROT_READ,
				      &p),
			 0);
	assert_int_equal(tdp_vcpu_map(e.v[0], GPA0 + NPG * PG, TDP_PROT_WRITE,
				      &p),
			 -EACCES);
	th_set_slot(e.vm, 0, 1, GPA0 + NPG * PG, 0, 0, 0);
	th_env_fini_empty(&e);
}

/* A write mapping is logged as a write; a read mapping is not. */
static void test_map_dirty_log(void **state)
{
	struct th_env e;
	uint64_t *bm = th_bm_new(1), *want = th_bm_new(1);
	void *p;

	(void)state;
	env(&e, TDP_MEM_LOG_DIRTY);
	assert_int_equal(tdp_vm_get_dirty_log(e.vm, 0, 0, bm), 0);
	assert_int_equal(tdp_vcpu_map(e.v[0], GPA0 + 2 * PG, TDP_PROT_READ,
				      &p),
			 0);
	/* page 7 must be faulted in: the window of page 2 ends (1) */
	assert_int_equal(tdp_vcpu_map(e.v[0], GPA0 + 7 * PG, TDP_PROT_WRITE,
				      &p),
			 1);
	*(uint64_t *)p = 7;
	assert_int_equal(tdp_vcpu_check_requests(e.v[0]), 0);
	assert_int_equal(tdp_vm_get_dirty_log(e.vm, 0, 0, bm), 0);
	th_bm_set(want, 7);
	th_bm_assert_eq(bm, want, NPG, "write mapping logged");
	/* re-protected: the next write mapping is logged again */
	assert_int_equal(tdp_vcpu_map(e.v[0], GPA0 + 7 * PG, TDP_PROT_WRITE,
				      &p),
			 0);
	assert_int_equal(tdp_vcpu_check_requests(e.v[0]), 0);
	assert_int_equal(tdp_vm_get_dirty_log(e.vm, 0, 0, bm), 0);
	th_bm_assert_eq(bm, want, NPG, "logged again after the harvest");
	free(bm);
	free(want);
	th_env_fini_empty(&e);
}

/* A flush waits for the window: a zap that runs while the emulator holds
 * a pointer returns only after check_requests, so the pointer's frame is
 * the guest's until then. */
struct zapper {
	struct tdp_vm *vm;
	_Atomic int started, done;
};

static void *zap_fn(void *arg)
{
	struct zapper *z = arg;

	atomic_store(&z->started, 1);
	assert_int_equal(tdp_vm_zap_gfn_range(z->vm, 0, GPA0, NPG * PG), 0);
	atomic_store(&z->done, 1);
	return NULL;
}

static void test_window_holds_flush(void **state)
{
	struct zapper z = {0};
	struct th_env e;
	pthread_t t;
	uint64_t v;
	void *p;

	(void)state;
	env(&e, 0);
	z.vm = e.vm;
	assert_int_equal(tdp_vcpu_map(e.v[0], GPA0, TDP_PROT_WRITE, &p), 0);
	assert_int_equal(pthread_create(&t, NULL, zap_fn, &z), 0);
	while (!atomic_load(&z.started))
		;
	/* the zap cannot finish while the window is open */
	for (int i = 0; i < 1000; i++) {
		*(volatile uint64_t *)p = (uint64_t)i;
		assert_int_equal(atomic_load(&z.done), 0);
	}
	assert_int_equal(tdp_vcpu_check_requests(e.v[0]), 0);
	pthread_join(t, NULL);
	assert_int_equal(th_read64(e.v[0], GPA0, &v), 0);
	assert_int_equal(v, 999);
	th_env_fini_empty(&e);
}

/* The VMM's own writes reach the dirty log when it marks them. */
static void test_mark_dirty(void **state)
{
	struct th_env e;
	uint64_t *bm = th_bm_new(1), *want = th_bm_new(1), x = 1;

	(void)state;
	env(&e, TDP_MEM_LOG_DIRTY);
	assert_int_equal(tdp_vm_get_dirty_log(e.vm, 0, 0, bm), 0);
	assert_int_equal(tdp_host_write(e.h, e.hva + 4 * PG, &x, 8), 0);
	assert_int_equal(tdp_vm_get_dirty_log(e.vm, 0, 0, bm), 0);
	th_bm_assert_eq(bm, want, NPG, "host write not logged by itself");
	/* unaligned, across a page boundary: pages 4 and 5 */
	assert_int_equal(tdp_vm_mark_dirty(e.vm, 0, GPA0 + 5 * PG - 8, 16),
			 0);
	assert_int_equal(tdp_vm_get_dirty_log(e.vm, 0, 0, bm), 0);
	th_bm_set(want, 4);
	th_bm_set(want, 5);
	th_bm_assert_eq(bm, want, NPG, "marked pages");
	/* errors: nothing marked */
	assert_int_equal(tdp_vm_mark_dirty(e.vm, 0, GPA0 + (NPG - 1) * PG,
					   2 * PG),
			 -EFAULT);
	assert_int_equal(tdp_vm_mark_dirty(e.vm, 0, GPA0, 0), -EINVAL);
	assert_int_equal(tdp_vm_mark_dirty(e.vm, 5, GPA0, PG), -EINVAL);
	assert_int_equal(tdp_vm_mark_dirty(e.vm, 0, ~0ull - 8, 16), -EINVAL);
	assert_int_equal(tdp_vm_mark_dirty(e.vm, 0, 1ull << 60, PG), -EINVAL);
	assert_int_equal(tdp_vm_get_dirty_log(e.vm, 0, 0, bm), 0);
	memset(want, 0, 8);
	th_bm_assert_eq(bm, want, NPG, "failed marks mark nothing");
	free(bm);
	free(want);
	th_env_fini_empty(&e);
}

/* Without logging, a mark is accepted and changes nothing. */
static void test_mark_dirty_unlogged(void **state)
{
	struct th_env e;

	(void)state;
	env(&e, 0);
	assert_int_equal(tdp_vm_mark_dirty(e.vm, 0, GPA0, NPG * PG), 0);
	th_env_fini_empty(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map_rw),
		cmocka_unit_test(test_map_window),
		cmocka_unit_test(test_map_errors),
		cmocka_unit_test(test_map_dirty_log),
		cmocka_unit_test(test_window_holds_flush),
		cmocka_unit_test(test_mark_dirty),
		cmocka_unit_test(test_mark_dirty_unlogged),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
