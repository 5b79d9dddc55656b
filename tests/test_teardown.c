/* SPDX-License-Identifier: MIT */
/*
 * test_teardown.c - DESIGN.md I12: destroying a VM frees every root and
 * table page and drops every frame reference, and the counters prove it.
 *
 * A VM with two address spaces, memslots over 4 KiB / 2 MiB / 1 GiB folios
 * (mapped at every leaf level, aliases across address spaces), several
 * vCPUs driven from their own threads, host operations and a root
 * invalidation on the way.  Then: vCPUs destroyed, tdp_vm_invalidate_roots,
 * tdp_rcu_barrier -> every MMU counter is zero; tdp_vm_destroy (which
 * asserts nothing leaked); munmap -> every host counter is zero.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "host/host.h"
#include "vm.h"

#define PG    4096ull
#define RW    (TDP_PROT_READ | TDP_PROT_WRITE)
#define NVCPU 4

struct map {
	uint64_t hva, len;
};

struct world {
	struct tdp_host *h;
	struct tdp_vm *vm;
	struct tdp_vcpu *v[NVCPU];
	struct map m[8];
	unsigned nm;
};

/* gpa layout */
#define AS0_4K 0x100000ull /* 64 KiB, 4 KiB folios */
#define AS0_2M (4 * MiB)   /* 4 MiB, 2 MiB folios */
#define AS0_1G GiB	   /* 1 GiB, 1 GiB folio */
#define AS1_4K 0x100000ull /* 64 KiB, other 4 KiB folios */
#define AS1_2M (16 * MiB)  /* alias of the AS0 2 MiB memory */
#define AS1_1G (2 * GiB)   /* alias of the AS0 1 GiB memory */

static uint64_t wmap(struct world *w, uint64_t len, uint64_t folio)
{
	uint64_t hva = th_host_map(w->h, len, RW, folio);

	w->m[w->nm++] = (struct map){hva, len};
	return hva;
}

static void world_init(struct world *w)
{
	struct tdp_vm_config vc = {.nr_as = 2, .max_vcpus = 8};
	uint64_t h4a, h4b, h2, h1;

	memset(w, 0, sizeof(*w));
	w->h = th_host_new(4 * GiB);
	assert_int_equal(tdp_vm_create(w->h, &vc, &w->vm), 0);
	h4a = wmap(w, 16 * PG, PG);
	h4b = wmap(w, 16 * PG, PG);
	h2 = wmap(w, 4 * MiB, TDP_HUGE_2M);
	h1 = wmap(w, GiB, TDP_HUGE_1G);
	th_set_slot(w->vm, 0, 0, AS0_4K, 16 * PG, h4a, 0);
	th_set_slot(w->vm, 0, 1, AS0_2M, 4 * MiB, h2, 0);
	th_set_slot(w->vm, 0, 2, AS0_1G, GiB, h1, 0);
	th_set_slot(w->vm, 1, 0, AS1_4K, 16 * PG, h4b, 0);
	th_set_slot(w->vm, 1, 1, AS1_2M, 4 * MiB, h2, 0);
	th_set_slot(w->vm, 1, 2, AS1_1G, GiB, h1, 0);
	for (unsigned i = 0; i < NVCPU; i++)
		assert_int_equal(tdp_vcpu_create(w->vm, i * 2, &w->v[i]), 0);
}

/* One vCPU thread's work: write then verify a few pages in every slot of
 * the address spaces it is told to use. */
struct job {
	struct world *w;
	unsigned idx;
	uint64_t gen;
	int err;      /* first failing return code */
	int mismatch; /* pages that read back wrong */
};

static const struct {
	unsigned as;
	uint64_t gpa, size;
} slots[] = {
	{0, AS0_4K, 16 * PG}, {0, AS0_2M, 4 * MiB}, {0, AS0_1G, GiB},
	{1, AS1_4K, 16 * PG}, {1, AS1_2M, 4 * MiB}, {1, AS1_1G, GiB},
};

static void job_as(struct job *j, unsigned as)
{
	struct tdp_vcpu *v = j->w->v[j->idx];
	uint64_t buf[512];
	int r;

	r = tdp_vcpu_set_as(v, as);
	if (r && !j->err)
		j->err = r;
	for (unsigned s = 0; s < sizeof(slots) / sizeof(slots[0]); s++) {
		if (slots[s].as != as)
			continue;
		/* pages private to this vCPU (and address space) */
		for (unsigned k = 0; k < 3; k++) {
			uint64_t off = ((uint64_t)(j->idx * 3 + k) *
					(slots[s].size / (NVCPU * 3 + 1))) &
				       ~(PG - 1);
			uint64_t gpa = slots[s].gpa + off;

			/* the aliases share memory with AS0: write only
			 * in the slots that own it (4K ones and AS0) */
			if (as == 0 || s == 3) {
				th_fill_page(buf, gpa, j->gen);
				r = tdp_vcpu_write(v, gpa, buf, PG);
				if (r && !j->err)
					j->err = r;
			}
			memset(buf, 0, sizeof(buf));
			r = tdp_vcpu_read(v, gpa, buf, PG);
			if (r && !j->err)
				j->err = r;
			if (!r && (as == 0 || s == 3) &&
			    th_check_page(buf, gpa, j->gen))
				j->mismatch++;
		}
	}
}

static void *job_main(void *arg)
{
	struct job *j = arg;

	/* vCPU 0, 1: normal; 2: SMM; 3: both */
	if (j->idx != 2)
		job_as(j, 0);
	if (j->idx >= 2)
		job_as(j, 1);
	if (j->idx == 3)
		job_as(j, 0);
	return NULL;
}

static void run_jobs(struct world *w, uint64_t gen)
{
	pthread_t t[NVCPU];
	struct job j[NVCPU];

	for (unsigned i = 0; i < NVCPU; i++) {
		j[i] = (struct job){.w = w, .idx = i, .gen = gen};
		assert_int_equal(pthread_create(&t[i], NULL, job_main, &j[i]),
				 0);
	}
	for (unsigned i = 0; i < NVCPU; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(j[i].err, 0);
		assert_int_equal(j[i].mismatch, 0);
	}
}

static void test_teardown_counts(void **state)
{
	struct world w;
	struct tdp_stats s;

	world_init(&w);
	run_jobs(&w, 1);
	s = th_vm_stats(w.vm);
	/* mappings at every level, roots for both address spaces */
	assert_true(s.pages_4k > 0);
	assert_true(s.pages_2m > 0);
	assert_true(s.pages_1g > 0);
	assert_int_equal(s.roots, 2);
	assert_true(s.pt_pages > 0);
	assert_true(s.pt_pages_alloc >= s.pt_pages + s.roots);
	th_audit_clean(w.vm);

	/* invalidate roots under live vCPUs; they reload and go on */
	assert_int_equal(tdp_vm_invalidate_roots(w.vm), 0);
	run_jobs(&w, 2);
	s = th_vm_stats(w.vm);
	assert_true(s.pages_1g > 0 && s.pages_2m > 0 && s.pages_4k > 0);
	th_audit_clean(w.vm);

	/* host operations leave swapped, migrated and split memory */
	assert_int_equal(tdp_host_swap_out(w.h, w.m[0].hva, 4 * PG), 0);
	assert_int_equal(tdp_host_migrate(w.h, w.m[1].hva, 16 * PG), 0);
	assert_int_equal(tdp_host_split(w.h, w.m[2].hva, 2 * MiB), 0);
	run_jobs(&w, 3);
	assert_true(th_host_stats(w.h).swap_ins > 0);
	s = th_vm_stats(w.vm);
	assert_true(s.pages_1g > 0 && s.pages_2m > 0 && s.pages_4k > 0);
	assert_true(s.roots >= 2);
	th_audit_clean(w.vm);
	assert_true(th_host_stats(w.h).frames_used > 0);

	/* a vCPU that never ran, destroyed with the others */
	struct tdp_vcpu *idle;

	assert_int_equal(tdp_vcpu_create(w.vm, 7, &idle), 0);

	/* tear down, counting as we go */
	tdp_vcpu_destroy(idle);
	th_drain_mmu(w.vm, w.v, NVCPU);
	/* the pool frames are the host's, the VM holds no reference: the
	 * same frames are still in use by the host mappings */
	assert_true(th_host_stats(w.h).frames_used > 0);
	assert_int_equal(th_host_stats(w.h).pinned_refs, 0);
	tdp_vm_destroy(w.vm);
	for (unsigned i = 0; i < w.nm; i++)
		assert_int_equal(tdp_host_munmap(w.h, w.m[i].hva, w.m[i].len),
				 0);
	th_assert_host_empty(w.h);
	tdp_host_destroy(w.h);
}

/* tdp_vm_destroy alone does the whole teardown (roots still valid and
 * referenced by no vCPU, deferred frees pending). */
static void test_destroy_direct(void **state)
{
	struct world w;

	world_init(&w);
	run_jobs(&w, 1);
	assert_int_equal(tdp_host_swap_out(w.h, w.m[2].hva, 2 * MiB), 0);
	run_jobs(&w, 2);
	assert_true(th_vm_stats(w.vm).roots == 2);
	for (unsigned i = 0; i < NVCPU; i++)
		tdp_vcpu_destroy(w.v[i]);
	/* roots survive their vCPUs (the MMU's reference) */
	assert_int_equal(th_vm_stats(w.vm).roots, 2);
	th_audit_clean(w.vm);
	tdp_vm_destroy(w.vm);
	/* the host never noticed a leftover pin */
	assert_int_equal(th_host_stats(w.h).pinned_refs, 0);
	for (unsigned i = 0; i < w.nm; i++)
		assert_int_equal(tdp_host_munmap(w.h, w.m[i].hva, w.m[i].len),
				 0);
	th_assert_host_empty(w.h);
	tdp_host_destroy(w.h);
}

/* Repeated VM lifetimes on one host: nothing accumulates. */
static void test_repeat(void **state)
{
	struct tdp_host *h;
	uint64_t hva, buf[512];

	h = th_host_new(GiB);
	hva = th_host_map(h, 4 * MiB, RW, TDP_HUGE_2M);
	for (unsigned round = 0; round < 8; round++) {
		struct tdp_vm *vm;
		struct tdp_vcpu *v[2];
		struct tdp_memslot s = {
			.slot = 0, .gpa = 2 * MiB, .size = 4 * MiB, .hva = hva};

		assert_int_equal(tdp_vm_create(h, NULL, &vm), 0);
		assert_int_equal(tdp_vm_set_memslot(vm, &s), 0);
		for (unsigned i = 0; i < 2; i++)
			assert_int_equal(tdp_vcpu_create(vm, i, &v[i]), 0);
		for (unsigned p = 0; p < 8; p++) {
			uint64_t gpa = 2 * MiB + p * 127 * PG;

			if (round) {
				assert_int_equal(
					tdp_vcpu_read(v[p % 2], gpa, buf, PG),
					0);
				assert_int_equal(th_check_page(buf, gpa, round),
						 0);
			}
			th_fill_page(buf, gpa, round + 1);
			assert_int_equal(tdp_vcpu_write(v[p % 2], gpa, buf, PG),
					 0);
		}
		if (round % 2)
			assert_int_equal(
				tdp_host_split(h, hva + round * PG, PG), 0);
		th_drain_mmu(vm, v, 2);
		tdp_vm_destroy(vm);
	}
	assert_int_equal(tdp_host_munmap(h, hva, 4 * MiB), 0);
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_teardown_counts),
		cmocka_unit_test(test_destroy_direct),
		cmocka_unit_test(test_repeat),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
