/* SPDX-License-Identifier: MIT */
/*
 * test_age.c - tdp_host_age (Linux's clear_young / test_young /
 * clear_flush_young through the notifier):
 *  - with TDP_AGE_FLUSH, exactly the pages touched since the last aging
 *    are young on one vCPU: guest reads and writes (also through
 *    translations still in the TLB, which the flush must have dropped),
 *    host reads and writes, and touched pages zapped since (the zap hands
 *    Accessed to the host); 2 MiB leaves make all their pages young;
 *  - TDP_AGE_TEST_ONLY clears nothing; a second VM on the same memory is
 *    asked too; the return value is the popcount of the bitmap;
 *  - lockless aging and TDP_VM_LOCKED_AGING give the same answers;
 *  - aging never loses a Dirty bit: vCPUs write clean (swapped-in) pages
 *    while another thread ages and the host swaps out; every last write
 *    survives the host's reclaim, which drops pages it believes clean;
 *  - errors change nothing.
 * TDP_TEST_INJECT=aging-loses-dirty (Debug builds) puts the bug back: the
 * keeps-dirty tests then fail in most runs (a race, 2 s each).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "vm.h"

#define PG	 4096ull
#define RW	 (TDP_PROT_READ | TDP_PROT_WRITE)
#define NV	 2
#define SLOT_GPA GiB

/* NV vCPUs; memslot 0: @size bytes of @folio folios at SLOT_GPA. */
static void fx_init(struct th_env *f, unsigned vmflags, uint64_t size,
		    uint64_t folio)
{
	struct tdp_vm_config vc = {.max_vcpus = NV, .flags = vmflags};

	th_env_init(f, size + GiB, &vc, NV);
	th_maybe_inject(f->vm);
	th_env_slot(f, SLOT_GPA, size, folio);
}

/* Age the whole slot; the return value is the bitmap's popcount. */
static int age(struct th_env *f, unsigned flags, uint64_t *bm)
{
	int r;

	memset(bm, 0xa5, f->nwords * 8);
	r = tdp_host_age(f->h, f->hva, f->size, flags, bm);
	assert_true(r >= 0);
	assert_int_equal((uint64_t)r, th_bm_count(bm, f->nwords));
	return r;
}

static void touch(struct th_env *f, unsigned v, uint64_t page, bool write)
{
	uint64_t x = page;

	if (write)
		assert_int_equal(tdp_vcpu_write(f->v[v], f->gpa + page * PG,
						&x, 8),
				 0);
	else
		assert_int_equal(tdp_vcpu_read(f->v[v], f->gpa + page * PG,
					       &x, 8),
				 0);
}

/* ------------------------------------------------------------------ */
/* exact answers on one vCPU                                           */
/* ------------------------------------------------------------------ */

/* A record of every answer, to compare lockless and locked aging. */
struct answers {
	int ret[64];
	uint64_t bm[64][16];
	unsigned n;
};

static void record(struct answers *a, int r, const uint64_t *bm)
{
	assert_true(a->n < 64);
	a->ret[a->n] = r;
	memcpy(a->bm[a->n], bm, sizeof(a->bm[0]));
	a->n++;
}

static void age_script(unsigned vmflags, struct answers *ans)
{
	struct th_env f;
	uint64_t *bm, *want, seed = 31;
	struct tdp_stats s0, s1;
	int r;

	fx_init(&f, vmflags, 4 * MiB, TDP_PAGE_SIZE); /* 1024 pages */
	assert_true(f.nwords <= 16);
	bm = th_bm_new(f.nwords);
	want = th_bm_new(f.nwords);
	memset(ans, 0, sizeof(*ans));
	for (uint64_t p = 0; p < f.npages; p++)
		touch(&f, 0, p, true);

	/* everything was used; then nothing */
	r = age(&f, TDP_AGE_FLUSH, bm);
	record(ans, r, bm);
	assert_int_equal(r, f.npages);
	r = age(&f, TDP_AGE_FLUSH, bm);
	record(ans, r, bm);
	assert_int_equal(r, 0);
	assert_int_equal(age(&f, TDP_AGE_TEST_ONLY, bm), 0);
	assert_int_equal(tdp_host_age(f.h, f.hva, f.size, 0, NULL), 0);

	for (unsigned round = 0; round < 3; round++) {
		/* a random subset, read or written */
		memset(want, 0, f.nwords * 8);
		for (unsigned i = 0; i < 150; i++) {
			uint64_t p = th_rand(&seed) % f.npages;

			touch(&f, 0, p, i & 1);
			th_bm_set(want, p);
		}
		/* test-only: young, and still young */
		r = age(&f, TDP_AGE_TEST_ONLY, bm);
		record(ans, r, bm);
		th_bm_assert_eq(bm, want, f.npages, "test-only");
		r = age(&f, TDP_AGE_TEST_ONLY, bm);
		th_bm_assert_eq(bm, want, f.npages, "test-only again");
		assert_int_equal(tdp_host_age(f.h, f.hva, f.size,
					      TDP_AGE_TEST_ONLY, NULL),
				 r);
		tdp_vm_get_stats(f.vm, &s0);
		r = age(&f, TDP_AGE_FLUSH, bm);
		record(ans, r, bm);
		th_bm_assert_eq(bm, want, f.npages, "clear-flush");
		tdp_vm_get_stats(f.vm, &s1);
		assert_true(s1.age_calls > s0.age_calls);
		assert_int_equal(s1.age_young - s0.age_young, (uint64_t)r);

		/* the same pages again: their translations were in the TLB
		 * before the flush; the flush dropped them, so the walker
		 * sets Accessed again */
		for (uint64_t p = 0; p < f.npages; p++)
			if (th_bm_test(want, p))
				touch(&f, 0, p, p & 1);
		r = age(&f, TDP_AGE_FLUSH, bm);
		record(ans, r, bm);
		th_bm_assert_eq(bm, want, f.npages,
				"touched again after flush");
		assert_int_equal(age(&f, 0, bm), 0);
	}

	/* the host's own accesses */
	memset(want, 0, f.nwords * 8);
	for (uint64_t p = 7; p < f.npages; p += 101) {
		uint64_t x = 0;

		if (p & 1)
			assert_int_equal(
				tdp_host_read(f.h, f.hva + p * PG, &x, 8), 0);
		else
			assert_int_equal(
				tdp_host_write(f.h, f.hva + p * PG, &x, 8), 0);
		th_bm_set(want, p);
	}
	touch(&f, 1, 3, false);
	th_bm_set(want, 3);
	r = age(&f, TDP_AGE_FLUSH, bm);
	record(ans, r, bm);
	th_bm_assert_eq(bm, want, f.npages, "host accesses");

	/* zapped after being touched: still young; zapped untouched: old */
	memset(want, 0, f.nwords * 8);
	for (uint64_t p = 512; p < 640; p += 5) {
		touch(&f, 1, p, p & 1);
		th_bm_set(want, p);
	}
	touch(&f, 1, 900, false);
	th_bm_set(want, 900);
	assert_int_equal(
		tdp_vm_zap_gfn_range(f.vm, 0, f.gpa + 512 * PG, 128 * PG), 0);
	r = age(&f, TDP_AGE_FLUSH, bm);
	record(ans, r, bm);
	th_bm_assert_eq(bm, want, f.npages, "zapped after touch");
	assert_int_equal(age(&f, TDP_AGE_FLUSH, bm), 0);

	/* a sub-range: bits relative to its start */
	touch(&f, 0, 70, false);
	touch(&f, 0, 200, true);
	uint64_t sub[2];

	memset(sub, 0xa5, sizeof(sub));
	r = tdp_host_age(f.h, f.hva + 64 * PG, 128 * PG, TDP_AGE_FLUSH, sub);
	assert_int_equal(r, 1);
	assert_int_equal(sub[0], 1ull << 6);
	assert_int_equal(sub[1], 0);
	memset(want, 0, f.nwords * 8);
	th_bm_set(want, 200);
	r = age(&f, TDP_AGE_FLUSH, bm);
	record(ans, r, bm);
	th_bm_assert_eq(bm, want, f.npages, "outside the sub-range");

	free(bm);
	free(want);
	th_env_fini_empty(&f);
}

static void test_age_exact_and_locked_same(void **state)
{
	struct answers *a = calloc(2, sizeof(*a));

	(void)state;
	assert_non_null(a);
	age_script(0, &a[0]);
	age_script(TDP_VM_LOCKED_AGING, &a[1]);
	assert_int_equal(a[0].n, a[1].n);
	for (unsigned i = 0; i < a[0].n; i++) {
		assert_int_equal(a[0].ret[i], a[1].ret[i]);
		assert_memory_equal(a[0].bm[i], a[1].bm[i], sizeof(a->bm[0]));
	}
	free(a);
}

/* 2 MiB leaves: one Accessed bit per leaf, so all its pages are young. */
static void test_age_huge(void **state)
{
	struct th_env f;
	uint64_t *bm, *want;

	(void)state;
	fx_init(&f, 0, 8 * MiB, TDP_HUGE_2M);
	bm = th_bm_new(f.nwords);
	want = th_bm_new(f.nwords);
	for (uint64_t p = 0; p < f.npages; p += 512)
		touch(&f, 0, p, true);
	assert_int_equal(age(&f, TDP_AGE_FLUSH, bm), f.npages);
	assert_int_equal(age(&f, 0, bm), 0);
	touch(&f, 0, 512 + 100, false);
	touch(&f, 1, 3 * 512 + 511, true);
	for (uint64_t p = 512; p < 1024; p++)
		th_bm_set(want, p);
	for (uint64_t p = 3 * 512; p < 4 * 512; p++)
		th_bm_set(want, p);
	age(&f, TDP_AGE_FLUSH, bm);
	th_bm_assert_eq(bm, want, f.npages, "2 MiB leaves");
	assert_int_equal(age(&f, 0, bm), 0);
	free(bm);
	free(want);
	th_env_fini_empty(&f);
}

/* Two VMs map the same host memory: an access by either makes it young. */
static void test_age_two_vms(void **state)
{
	struct th_env f;
	struct tdp_vm *vm2;
	struct tdp_vcpu *v2;
	uint64_t *bm, *want, x = 0;

	(void)state;
	fx_init(&f, 0, 2 * MiB, TDP_PAGE_SIZE);
	bm = th_bm_new(f.nwords);
	want = th_bm_new(f.nwords);
	assert_int_equal(tdp_vm_create(f.h, NULL, &vm2), 0);
	struct tdp_memslot s = {
		.slot = 3, .gpa = 0x200000, .size = f.size, .hva = f.hva};
	assert_int_equal(tdp_vm_set_memslot(vm2, &s), 0);
	assert_int_equal(tdp_vcpu_create(vm2, 0, &v2), 0);
	for (uint64_t p = 0; p < f.npages; p++)
		touch(&f, 0, p, false);
	age(&f, TDP_AGE_FLUSH, bm);
	for (uint64_t p = 0; p < f.npages; p += 9) {
		assert_int_equal(tdp_vcpu_read(v2, 0x200000 + p * PG, &x, 8),
				 0);
		th_bm_set(want, p);
	}
	age(&f, TDP_AGE_FLUSH, bm);
	th_bm_assert_eq(bm, want, f.npages, "second VM");
	/* and again through its TLB after the flush */
	for (uint64_t p = 0; p < f.npages; p += 9)
		assert_int_equal(tdp_vcpu_read(v2, 0x200000 + p * PG, &x, 8),
				 0);
	age(&f, TDP_AGE_FLUSH, bm);
	th_bm_assert_eq(bm, want, f.npages, "second VM, again");
	th_audit_clean(vm2);
	tdp_vcpu_destroy(v2);
	tdp_vm_destroy(vm2);
	free(bm);
	free(want);
	th_env_fini_empty(&f);
}

/* ------------------------------------------------------------------ */
/* errors                                                              */
/* ------------------------------------------------------------------ */

static void test_age_errors(void **state)
{
	struct th_env f;
	uint64_t *bm, *want, hole;

	(void)state;
	fx_init(&f, 0, 2 * MiB, TDP_PAGE_SIZE);
	bm = th_bm_new(f.nwords);
	want = th_bm_new(f.nwords);
	/* a hole: mapped, then unmapped again */
	hole = th_host_map(f.h, 64 * PG, RW, PG);
	assert_int_equal(tdp_host_munmap(f.h, hole, 64 * PG), 0);
	for (uint64_t p = 0; p < f.npages; p++)
		touch(&f, 0, p, false);
	age(&f, TDP_AGE_FLUSH, bm);
	for (uint64_t p = 1; p < f.npages; p += 2) {
		touch(&f, 0, p, true);
		th_bm_set(want, p);
	}

	memset(bm, 0xa5, f.nwords * 8);
	assert_int_equal(tdp_host_age(f.h, f.hva + 1, f.size - PG, 0, bm),
			 -EINVAL);
	assert_int_equal(tdp_host_age(f.h, f.hva + 2048, PG, 0, bm), -EINVAL);
	assert_int_equal(tdp_host_age(f.h, f.hva, 100, 0, bm), -EINVAL);
	assert_int_equal(tdp_host_age(f.h, f.hva, PG + 1, 0, bm), -EINVAL);
	assert_int_equal(tdp_host_age(f.h, f.hva, 0, 0, bm), -EINVAL);
	assert_int_equal(tdp_host_age(f.h, f.hva, f.size, 4, bm), -EINVAL);
	assert_int_equal(tdp_host_age(f.h, f.hva, f.size, 0x80000000u, bm),
			 -EINVAL);
	assert_int_equal(tdp_host_age(f.h, ~0ull & ~(PG - 1), 2 * PG, 0, bm),
			 -EINVAL); /* overflow */
	/* part of the range not mapped: the mapped part is not aged */
	assert_int_equal(tdp_host_age(f.h, f.hva, f.size + PG, 0, bm),
			 -ENOENT);
	assert_int_equal(tdp_host_age(f.h, f.hva - PG, 2 * PG, 0, bm),
			 -ENOENT);
	assert_int_equal(tdp_host_age(f.h, hole, 64 * PG, 0, bm), -ENOENT);
	assert_int_equal(tdp_host_age(f.h, hole, PG, TDP_AGE_FLUSH, bm),
			 -ENOENT);
	for (uint64_t i = 0; i < f.nwords; i++)
		assert_int_equal(bm[i], 0xa5a5a5a5a5a5a5a5ull);
	/* nothing was cleared */
	age(&f, TDP_AGE_TEST_ONLY, bm);
	th_bm_assert_eq(bm, want, f.npages, "after failed calls");
	age(&f, 0, bm);
	th_bm_assert_eq(bm, want, f.npages, "after failed calls, clear");
	free(bm);
	free(want);
	th_env_fini_empty(&f);
}

/* ------------------------------------------------------------------ */
/* aging never loses a Dirty bit                                       */
/* ------------------------------------------------------------------ */

#define DK_SIZE (1 * MiB)

struct dk {
	struct th_env f;
	uint64_t *model; /* last value written per page (owner only) */
	atomic_bool stop;
	atomic_ullong writes, ages, young, mismatches;
	uint64_t first_bad_page, first_bad_want, first_bad_got;
};

struct dkw {
	struct dk *d;
	unsigned id;
	int err;
};

/*
 * vCPU: read a page of its own (after a swap-out this swaps it in clean
 * and maps it writable: the host keeps the swap copy), check it holds the
 * last value written, then write a new value: only the leaf's Dirty bit
 * records that write until a zap hands it to the host.
 */
static void *dk_vcpu(void *arg)
{
	struct dkw *w = arg;
	struct dk *d = w->d;
	struct th_env *f = &d->f;
	uint64_t seed = 1000 + w->id, per = f->npages / NV;

	while (!atomic_load_explicit(&d->stop, memory_order_relaxed)) {
		uint64_t p = w->id * per + th_rand(&seed) % per;
		uint64_t gpa = f->gpa + p * PG, x[2], y[2];

		w->err = tdp_vcpu_read(f->v[w->id], gpa, x, sizeof(x));
		if (w->err)
			break;
		if (x[0] != d->model[p] &&
		    !atomic_fetch_add(&d->mismatches, 1)) {
			d->first_bad_page = p;
			d->first_bad_want = d->model[p];
			d->first_bad_got = x[0];
		}
		/* half of the visits only read: those pages stay clean (the
		 * next reclaim drops them) with Accessed set and Dirty clear,
		 * and a later visit's write sets Dirty under a concurrent
		 * aging */
		if (th_rand(&seed) & 1)
			continue;
		y[0] = d->model[p] + 1;
		y[1] = p;
		w->err = tdp_vcpu_write(f->v[w->id], gpa, y, sizeof(y));
		if (w->err)
			break;
		d->model[p] = y[0];
		atomic_fetch_add_explicit(&d->writes, 1, memory_order_relaxed);
	}
	return NULL;
}

static void *dk_ager(void *arg)
{
	struct dk *d = arg;
	unsigned n = 0;

	while (!atomic_load_explicit(&d->stop, memory_order_relaxed)) {
		/* the whole slot, or one 64 KiB piece of it */
		uint64_t off = (n % 4) ? (n * 16 % (d->f.npages - 16)) * PG : 0;
		uint64_t len = (n % 4) ? 16 * PG : d->f.size;
		int r = tdp_host_age(d->f.h, d->f.hva + off, len,
				     n % 8 == 5 ? TDP_AGE_TEST_ONLY : 0, NULL);

		if (r < 0) {
			atomic_fetch_add(&d->mismatches, 1000000);
			break;
		}
		atomic_fetch_add(&d->young, (unsigned)r);
		atomic_fetch_add(&d->ages, 1);
		n++;
	}
	return NULL;
}

static void dirty_survives(unsigned vmflags)
{
	struct dk *d = calloc(1, sizeof(*d));
	struct dkw w[NV];
	pthread_t tv[NV], ta;
	struct tdp_host_stats hs;
	uint64_t end, swaps = 0;

	assert_non_null(d);
	fx_init(&d->f, vmflags, DK_SIZE, TDP_PAGE_SIZE);
	struct th_env *f = &d->f;
	d->model = calloc(f->npages, sizeof(*d->model));
	assert_non_null(d->model);
	for (uint64_t p = 0; p < f->npages; p++) {
		uint64_t y[2] = {0, p};

		assert_int_equal(tdp_host_write(f->h, f->hva + p * PG, y, 16),
				 0);
	}
	assert_int_equal(tdp_host_swap_out(f->h, f->hva, f->size), 0);

	for (unsigned i = 0; i < NV; i++) {
		w[i] = (struct dkw){.d = d, .id = i};
		assert_int_equal(pthread_create(&tv[i], NULL, dk_vcpu, &w[i]),
				 0);
	}
	assert_int_equal(pthread_create(&ta, NULL, dk_ager, d), 0);
	end = th_now_ns() + 2000000000ull;
	while (th_now_ns() < end) {
		usleep(5000);
		/* reclaim: pages the host believes clean are dropped */
		assert_int_equal(tdp_host_swap_out(f->h, f->hva, f->size), 0);
		swaps++;
	}
	atomic_store(&d->stop, true);
	for (unsigned i = 0; i < NV; i++) {
		assert_int_equal(pthread_join(tv[i], NULL), 0);
		assert_int_equal(w[i].err, 0);
	}
	assert_int_equal(pthread_join(ta, NULL), 0);

	/* the last reclaim, then every last write through the host */
	assert_int_equal(tdp_host_swap_out(f->h, f->hva, f->size), 0);
	for (uint64_t p = 0; p < f->npages; p++) {
		uint64_t x[2];

		assert_int_equal(tdp_host_read(f->h, f->hva + p * PG, x, 16),
				 0);
		if (x[0] != d->model[p] &&
		    !atomic_fetch_add(&d->mismatches, 1)) {
			d->first_bad_page = p;
			d->first_bad_want = d->model[p];
			d->first_bad_got = x[0];
		}
	}
	tdp_host_get_stats(f->h, &hs);
	print_message("%llu writes, %llu agings (%llu young), %" PRIu64
		      " swap-outs (%" PRIu64 " pages, %" PRIu64
		      " clean drops), %llu mismatches\n",
		      (unsigned long long)atomic_load(&d->writes),
		      (unsigned long long)atomic_load(&d->ages),
		      (unsigned long long)atomic_load(&d->young), swaps,
		      hs.swap_outs, hs.swap_out_clean,
		      (unsigned long long)atomic_load(&d->mismatches));
	if (atomic_load(&d->mismatches))
		fprintf(stderr,
			"page %" PRIu64 ": last write %" PRIu64
			", found %" PRIu64 "\n",
			d->first_bad_page, d->first_bad_want,
			d->first_bad_got);
	assert_int_equal(atomic_load(&d->mismatches), 0);
	/* the scenario happened: clean pages were dropped (never on the
	 * process backend, whose pages are all dirty), agings ran and
	 * found young pages, many writes */
	assert_true(th_process_host() ? hs.swap_out_clean == 0
				      : hs.swap_out_clean > 0);
	assert_true(atomic_load(&d->ages) > 10);
	assert_true(atomic_load(&d->young) > 0);
	assert_true(atomic_load(&d->writes) > 1000);
	free(d->model);
	th_env_fini_empty(f);
	free(d);
}

static void test_age_keeps_dirty(void **s)
{
	(void)s;
	dirty_survives(0);
}

static void test_age_keeps_dirty_locked(void **s)
{
	(void)s;
	dirty_survives(TDP_VM_LOCKED_AGING);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_age_exact_and_locked_same),
		cmocka_unit_test(test_age_huge),
		cmocka_unit_test(test_age_two_vms),
		cmocka_unit_test(test_age_errors),
		cmocka_unit_test(test_age_keeps_dirty),
		cmocka_unit_test(test_age_keeps_dirty_locked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
