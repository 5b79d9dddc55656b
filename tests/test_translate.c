/* SPDX-License-Identifier: MIT */
/* test_translate.c - tdp_vm_translate: results, errors, and lockless walks
 * racing zaps that remove tables. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "helpers.h"
#include "host/host.h"
#include "vm.h"

static void test_translate_results(void **state)
{
	struct tdp_vm_config vc = { .nr_as = 2 };
	struct tdp_translation t;
	struct th_env e;
	struct tdp_vm *vm;
	struct tdp_vcpu *v;
	uint64_t pfn;
	unsigned order, prot;
	uint8_t b[8] = { 1 };

	(void)state;
	th_env_init(&e, 1 * GiB, &vc, 1);
	th_env_slot(&e, 0, 4 * MiB, TDP_HUGE_2M);
	vm = e.vm;
	v = e.v[0];

	/* errors */
	assert_int_equal(tdp_vm_translate(NULL, 0, 0, &t), -EINVAL);
	assert_int_equal(tdp_vm_translate(vm, 2, 0, &t), -EINVAL);
	assert_int_equal(tdp_vm_translate(vm, 0, 1ull << 48, &t), -EINVAL);
	assert_int_equal(tdp_vm_translate(vm, 0, 0, NULL), -EINVAL);
	/* no root yet */
	assert_int_equal(tdp_vm_translate(vm, 0, 0, &t), -ENOENT);

	assert_int_equal(tdp_vcpu_read(v, 0x1000, b, sizeof(b)), 0);
	assert_int_equal(tdp_vm_translate(vm, 0, 0x3000, &t), 0);
	assert_int_equal(host_lookup(e.h, e.hva + 0x3000, &pfn, &order, &prot),
			 0);
	assert_int_equal(t.pfn, pfn);
	assert_int_equal(t.size, TDP_HUGE_2M);
	assert_int_equal(t.prot, TDP_PROT_READ | TDP_PROT_WRITE); /* no EXEC on the host mapping */
	assert_true(t.accessed);
	assert_false(t.dirty);
	assert_int_equal(tdp_vcpu_write(v, 0x1000, b, sizeof(b)), 0);
	assert_int_equal(tdp_vm_translate(vm, 0, 0x1000, &t), 0);
	assert_true(t.dirty);
	/* other half not mapped; other address space has no root */
	assert_int_equal(tdp_vm_translate(vm, 0, 2 * MiB, &t), -ENOENT);
	assert_int_equal(tdp_vm_translate(vm, 1, 0x1000, &t), -ENOENT);
	/* zapped: gone */
	assert_int_equal(tdp_vm_zap_gfn_range(vm, 0, 0, 2 * MiB), 0);
	assert_int_equal(tdp_vm_translate(vm, 0, 0x1000, &t), -ENOENT);
	th_env_fini(&e);
}

struct race {
	struct tdp_vm *vm;
	atomic_bool stop;
	atomic_ullong walks, hits;
};

static void *translator(void *arg)
{
	struct race *r = arg;
	uint64_t seed = 5;

	while (!atomic_load(&r->stop)) {
		struct tdp_translation t;
		uint64_t gpa = (th_rand(&seed) % (8 * MiB)) & ~4095ull;

		if (tdp_vm_translate(r->vm, 0, gpa, &t) == 0)
			atomic_fetch_add(&r->hits, 1);
		atomic_fetch_add(&r->walks, 1);
	}
	return NULL;
}

/* Lockless walks while zaps remove whole tables (munmap of 2 MiB chunks)
 * and faults rebuild them: the walk never reads a freed table (the
 * library asserts it), and finds mappings. */
static void test_translate_races_table_removal(void **state)
{
	struct race r = { 0 };
	struct th_env e;
	struct tdp_host *h;
	struct tdp_vcpu *v;
	pthread_t th[2];
	uint64_t hva;
	uint8_t b[8] = { 1 };
	uint64_t end = th_now_ns() + 2000000000ull;

	(void)state;
	th_env_init(&e, 1 * GiB, NULL, 1);
	th_env_slot(&e, 0, 8 * MiB, TDP_PAGE_SIZE);
	h = e.h;
	hva = e.hva;
	r.vm = e.vm;
	v = e.v[0];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, translator, &r);
	for (unsigned round = 0; th_now_ns() < end; round++) {
		uint64_t chunk = (round % 4) * 2 * MiB;

		for (uint64_t off = 0; off < 2 * MiB; off += 64 * 1024)
			assert_int_equal(tdp_vcpu_write(v, chunk + off, b,
							sizeof(b)),
					 0);
		assert_int_equal(tdp_host_munmap(h, hva + chunk, 2 * MiB), 0);
		uint64_t at = hva + chunk;
		assert_int_equal(tdp_host_mmap(h, 2 * MiB,
					       TDP_PROT_READ | TDP_PROT_WRITE,
					       TDP_PAGE_SIZE, TDP_MAP_FIXED,
					       &at),
				 0);
	}
	atomic_store(&r.stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	print_message("%llu walks, %llu found mapped\n",
		      (unsigned long long)atomic_load(&r.walks),
		      (unsigned long long)atomic_load(&r.hits));
	assert_true(atomic_load(&r.hits) > 0);
	th_env_fini(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_translate_results),
		cmocka_unit_test(test_translate_races_table_removal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
