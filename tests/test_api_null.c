/* SPDX-License-Identifier: MIT */
/*
 * test_api_null.c - the Conventions of include/tdpmmu.h for NULL objects:
 * every function that returns int fails with -EINVAL on a NULL host, VM
 * or vCPU (or a NULL out parameter of a constructor), the destroy
 * functions ignore NULL, and the stats functions write nothing.  Never a
 * crash.
 */
#include <errno.h>
#include <string.h>

#include "helpers.h"

static void test_null_host(void **state)
{
	struct tdp_host_stats hs;
	uint64_t hva = 0, young = 0;
	uint8_t buf[8] = { 0 };

	(void)state;
	assert_int_equal(tdp_host_create(NULL, NULL), -EINVAL);
	tdp_host_destroy(NULL);
	assert_int_equal(tdp_host_mmap(NULL, 4096, TDP_PROT_READ, 4096, 0,
				       &hva),
			 -EINVAL);
	assert_int_equal(tdp_host_munmap(NULL, 0, 4096), -EINVAL);
	assert_int_equal(tdp_host_punch_hole(NULL, 0, 4096), -EINVAL);
	assert_int_equal(tdp_host_mprotect(NULL, 0, 4096, TDP_PROT_READ),
			 -EINVAL);
	assert_int_equal(tdp_host_migrate(NULL, 0, 4096), -EINVAL);
	assert_int_equal(tdp_host_swap_out(NULL, 0, 4096), -EINVAL);
	assert_int_equal(tdp_host_split(NULL, 0, 4096), -EINVAL);
	assert_int_equal(tdp_host_set_missing(NULL, 0, 4096, NULL, NULL),
			 -EINVAL);
	assert_int_equal(tdp_host_read(NULL, 0, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(tdp_host_write(NULL, 0, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(tdp_host_age(NULL, 0, 4096, 0, &young), -EINVAL);
	memset(&hs, 0xa5, sizeof(hs));
	tdp_host_get_stats(NULL, &hs);
	for (size_t i = 0; i < sizeof(hs); i++)
		assert_int_equal(((uint8_t *)&hs)[i], 0xa5);
}

static void test_null_vm_and_vcpu(void **state)
{
	struct tdp_memslot slot = { .size = 4096 };
	struct tdp_translation t;
	struct tdp_host *h;
	struct tdp_stats st;
	uint64_t bm[1] = { 0 };
	uint8_t buf[8] = { 0 };
	char report[64];

	(void)state;
	assert_int_equal(tdp_host_create(NULL, &h), 0);
	assert_int_equal(tdp_vm_create(NULL, NULL, &(struct tdp_vm *){ 0 }),
			 -EINVAL);
	assert_int_equal(tdp_vm_create(h, NULL, NULL), -EINVAL);
	tdp_vm_destroy(NULL);
	assert_int_equal(tdp_vm_set_memslot(NULL, &slot), -EINVAL);
	assert_int_equal(tdp_vm_set_memory_attributes(NULL, 0, 4096, 0),
			 -EINVAL);
	assert_int_equal(tdp_vm_zap_gfn_range(NULL, 0, 0, 4096), -EINVAL);
	assert_int_equal(tdp_vm_invalidate_roots(NULL), -EINVAL);
	assert_int_equal(tdp_vm_zap_all_fast(NULL), -EINVAL);
	assert_int_equal(tdp_vm_get_dirty_log(NULL, 0, 0, bm), -EINVAL);
	assert_int_equal(tdp_vm_clear_dirty_log(NULL, 0, 0, 0, 1, bm),
			 -EINVAL);
	assert_int_equal(tdp_vm_translate(NULL, 0, 0, &t), -EINVAL);
	memset(&st, 0xa5, sizeof(st));
	tdp_vm_get_stats(NULL, &st);
	for (size_t i = 0; i < sizeof(st); i++)
		assert_int_equal(((uint8_t *)&st)[i], 0xa5);
	assert_int_equal(tdp_vm_audit(NULL, report, sizeof(report)), -EINVAL);
	assert_int_equal(tdp_vcpu_create(NULL, 0, &(struct tdp_vcpu *){ 0 }),
			 -EINVAL);
	tdp_vcpu_destroy(NULL);
	assert_int_equal(tdp_vcpu_read(NULL, 0, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(tdp_vcpu_write(NULL, 0, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(tdp_vcpu_fetch(NULL, 0, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(tdp_vcpu_set_as(NULL, 0), -EINVAL);
	assert_int_equal(tdp_vcpu_map(NULL, 0, TDP_PROT_READ, &(void *){ 0 }),
			 -EINVAL);
	assert_int_equal(tdp_vcpu_check_requests(NULL), -EINVAL);
	assert_int_equal(tdp_vm_mark_dirty(NULL, 0, 0, 4096), -EINVAL);
	tdp_host_destroy(h);
}

/* A VM's out-pointer checks: stats with a NULL @out write nothing. */
static void test_null_out(void **state)
{
	struct tdp_host *h;
	struct tdp_vm *vm;

	(void)state;
	assert_int_equal(tdp_host_create(NULL, &h), 0);
	assert_int_equal(tdp_vm_create(h, NULL, &vm), 0);
	tdp_vm_get_stats(vm, NULL);
	tdp_host_get_stats(h, NULL);
	assert_int_equal(tdp_vcpu_create(vm, 0, NULL), -EINVAL);
	tdp_vm_destroy(vm);
	tdp_host_destroy(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_null_host),
		cmocka_unit_test(test_null_vm_and_vcpu),
		cmocka_unit_test(test_null_out),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
