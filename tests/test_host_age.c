/* SPDX-License-Identifier: MIT */
/*
 * test_host_age.c - host-side page aging (tdp_host_age, the per-frame
 * accessed bits, host_mark_accessed and the notifiers' age op), host only:
 * argument errors without state change, young/old through host reads and
 * writes, clearing and TDP_AGE_TEST_ONLY, migration, swap, huge folios with
 * partial ranges and splits, and fake VMs answering through the notifier.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helpers.h"
#include "host/host.h"

#define PG	 4096ull
#define RW	 (TDP_PROT_READ | TDP_PROT_WRITE)
#define SENTINEL 0xa5a5a5a5a5a5a5a5ull

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static void touch_w(struct tdp_host *h, uint64_t hva)
{
	uint64_t v = hva ^ 0x1234;

	assert_int_equal(tdp_host_write(h, hva + 8, &v, sizeof(v)), 0);
}

static void touch_r(struct tdp_host *h, uint64_t hva)
{
	uint64_t v;

	assert_int_equal(tdp_host_read(h, hva, &v, sizeof(v)), 0);
}

/* Age [hva, hva + npages pages) into @bm (npages <= 64 * 16); check that
 * the result equals the popcount of the bitmap and that every word was
 * written (sentinel gone beyond the range). */
static int age(struct tdp_host *h, uint64_t hva, uint64_t npages,
	       unsigned flags, uint64_t *bm)
{
	uint64_t words = (npages + 63) / 64;
	int ret;

	assert_true(words <= 16);
	for (uint64_t w = 0; w < words; w++)
		bm[w] = SENTINEL;
	ret = tdp_host_age(h, hva, npages * PG, flags, bm);
	assert_true(ret >= 0);
	assert_int_equal(ret, th_bm_count(bm, words));
	if (npages % 64)
		assert_int_equal(bm[words - 1] >> (npages % 64), 0);
	return ret;
}

/* Young pages of [hva, hva + npages pages) without clearing; NULL @young
 * must give the same count. */
static int peek(struct tdp_host *h, uint64_t hva, uint64_t npages,
		uint64_t *bm)
{
	int n = age(h, hva, npages, TDP_AGE_TEST_ONLY, bm);

	assert_int_equal(tdp_host_age(h, hva, npages * PG, TDP_AGE_TEST_ONLY,
				      NULL),
			 n);
	return n;
}

/* ------------------------------------------------------------------ */
/* arguments                                                           */
/* ------------------------------------------------------------------ */

static void test_age_args(void **state)
{
	struct tdp_host *h = th_host_new(GiB);
	uint64_t a = th_host_map(h, 8 * PG, RW, TDP_PAGE_SIZE);
	uint64_t b = th_host_map(h, 4 * PG, RW, TDP_PAGE_SIZE);
	uint64_t bm[16], hole;
	struct {
		struct tdp_host *h;
		uint64_t hva, len;
		unsigned flags;
		int err;
	} bad[] = {
		{NULL, a, PG, 0, -EINVAL},
		{h, a + 1, PG, 0, -EINVAL},
		{h, a + 8, PG, 0, -EINVAL},
		{h, a, PG + 1, 0, -EINVAL},
		{h, a, 100, 0, -EINVAL},
		{h, a, 0, 0, -EINVAL},
		{h, a, UINT64_MAX & ~(PG - 1), 0, -EINVAL}, /* wraps */
		{h, UINT64_MAX & ~(PG - 1), 2 * PG, 0, -EINVAL},
		{h, a, PG, 4, -EINVAL},
		{h, a, PG, ~0u, -EINVAL},
		{h, a, PG, TDP_AGE_TEST_ONLY | 0x80, -EINVAL},
		/* more pages than an int can count */
		{h, a, 1ull << 44, 0, -EINVAL},
		{h, 0, PG, 0, -ENOENT},
		{h, a - PG, 2 * PG, 0, -ENOENT},    /* starts before */
		{h, a + 7 * PG, 2 * PG, 0, -ENOENT}, /* runs past the end */
		{h, 1ull << 47, PG, 0, -ENOENT},
	};

	/* a and b are placed one after the other: make a hole between them
	 * by unmapping the last page of a */
	assert_int_equal(tdp_host_munmap(h, a + 7 * PG, PG), 0);
	hole = a + 7 * PG;
	for (uint64_t p = 0; p < 7; p++)
		touch_w(h, a + p * PG);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (unsigned w = 0; w < 16; w++)
			bm[w] = SENTINEL;
		assert_int_equal(tdp_host_age(bad[i].h, bad[i].hva, bad[i].len,
					      bad[i].flags, bm),
				 bad[i].err);
		assert_int_equal(tdp_host_age(bad[i].h, bad[i].hva, bad[i].len,
					      bad[i].flags, NULL),
				 bad[i].err);
		/* nothing written, nothing cleared */
		for (unsigned w = 0; w < 16; w++)
			assert_int_equal(bm[w], SENTINEL);
		assert_int_equal(peek(h, a, 7, bm), 7);
	}
	/* a range across the hole, and the hole alone */
	assert_int_equal(tdp_host_age(h, a, 8 * PG, 0, NULL), -ENOENT);
	assert_int_equal(tdp_host_age(h, hole, PG, 0, NULL), -ENOENT);
	assert_int_equal(tdp_host_age(h, a + 6 * PG, 3 * PG, 0, NULL),
			 -ENOENT);
	assert_int_equal(peek(h, a, 7, bm), 7);

	/* a range across adjacent mappings (a, the refilled hole, b) */
	assert_int_equal(tdp_host_mmap(h, PG, TDP_PROT_READ | TDP_PROT_WRITE,
				       TDP_PAGE_SIZE, TDP_MAP_FIXED, &hole),
			 0);
	assert_int_equal(hole, a + 7 * PG);
	assert_int_equal(b, a + 8 * PG);
	touch_r(h, hole);
	touch_w(h, b + 3 * PG);
	assert_int_equal(peek(h, a, 12, bm), 9);
	assert_true(th_bm_test(bm, 7) && th_bm_test(bm, 11) &&
		    !th_bm_test(bm, 8));
	assert_int_equal(tdp_host_age(h, a, 13 * PG, 0, NULL), -ENOENT);
	/* both flags together are known flags */
	assert_int_equal(age(h, a, 12, TDP_AGE_TEST_ONLY | TDP_AGE_FLUSH, bm),
			 9);
	assert_int_equal(age(h, a, 12, TDP_AGE_FLUSH, bm), 9);
	assert_int_equal(age(h, a, 12, 0, bm), 0);
	tdp_host_destroy(h);
}

/* ------------------------------------------------------------------ */
/* basic young / old                                                   */
/* ------------------------------------------------------------------ */

static void test_age_basic(void **state)
{
	struct tdp_host *h = th_host_new(GiB);
	uint64_t n = 100, a = th_host_map(h, n * PG, RW, TDP_PAGE_SIZE);
	uint64_t bm[16];

	/* never touched: mapped, not populated, old */
	assert_int_equal(age(h, a, n, 0, bm), 0);

	touch_w(h, a);
	touch_w(h, a + 3 * PG);
	touch_r(h, a + 70 * PG);
	/* a write that crosses a page boundary touches both pages */
	{
		uint8_t buf[16] = {1};

		assert_int_equal(tdp_host_write(h, a + 90 * PG - 8, buf, 16),
				 0);
	}
	assert_int_equal(peek(h, a, n, bm), 5);
	assert_true(th_bm_test(bm, 0) && th_bm_test(bm, 3) &&
		    th_bm_test(bm, 70));
	assert_true(th_bm_test(bm, 89) && th_bm_test(bm, 90));
	assert_false(th_bm_test(bm, 1) || th_bm_test(bm, 71));

	/* TEST_ONLY cleared nothing */
	assert_int_equal(peek(h, a, n, bm), 5);
	/* aging reports and clears */
	assert_int_equal(age(h, a, n, 0, bm), 5);
	assert_true(th_bm_test(bm, 0) && th_bm_test(bm, 3) &&
		    th_bm_test(bm, 70) && th_bm_test(bm, 89));
	assert_int_equal(age(h, a, n, 0, bm), 0);
	assert_int_equal(th_bm_count(bm, 2), 0);

	/* a read makes a page young again; NULL @young clears too */
	touch_r(h, a + 3 * PG);
	assert_int_equal(tdp_host_age(h, a, n * PG, 0, NULL), 1);
	assert_int_equal(age(h, a, n, 0, bm), 0);

	/* TDP_AGE_FLUSH clears as well */
	touch_r(h, a + 4 * PG);
	assert_int_equal(age(h, a, n, TDP_AGE_FLUSH, bm), 1);
	assert_true(th_bm_test(bm, 4));
	assert_int_equal(age(h, a, n, 0, bm), 0);

	/* a sub-range reports relative to its start and clears only itself */
	touch_w(h, a + 10 * PG);
	touch_w(h, a + 20 * PG);
	assert_int_equal(age(h, a + 10 * PG, 5, 0, bm), 1);
	assert_true(th_bm_test(bm, 0));
	assert_int_equal(peek(h, a, n, bm), 1);
	assert_true(th_bm_test(bm, 20));
	tdp_host_destroy(h);
}

/* host_gup (a guest fault) does not mark; host_mark_accessed does */
static void test_age_gup_and_mark(void **state)
{
	struct tdp_host *h = th_host_new(GiB);
	uint64_t a = th_host_map(h, 8 * PG, RW, TDP_PAGE_SIZE);
	uint64_t bm[16], pfn;
	struct host_gup g;
	struct tdp_host_stats s;

	assert_int_equal(host_gup(h, a + PG, true, &g), 0);
	host_put_frame(h, g.ref_pfn);
	assert_int_equal(peek(h, a, 8, bm), 0);

	pfn = th_lookup_pfn(h, a + PG, NULL);
	host_mark_accessed(h, pfn, 1);
	assert_int_equal(age(h, a, 8, 0, bm), 1);
	assert_true(th_bm_test(bm, 1));
	assert_int_equal(age(h, a, 8, 0, bm), 0);

	/* bad arguments are ignored */
	tdp_host_get_stats(h, &s);
	host_mark_accessed(NULL, pfn, 1);
	host_mark_accessed(h, s.frames_total, 1);
	host_mark_accessed(h, UINT64_MAX, UINT64_MAX);
	host_mark_accessed(h, s.frames_total - 1, UINT64_MAX);
	host_mark_accessed(h, pfn, 0);
	assert_int_equal(age(h, a, 8, 0, bm), 0);

	/* a mark on a freed frame does not survive its reallocation */
	assert_int_equal(tdp_host_munmap(h, a + PG, PG), 0);
	host_mark_accessed(h, pfn, 1);
	assert_int_equal(tdp_host_mmap(h, PG, TDP_PROT_READ, TDP_PAGE_SIZE,
				       TDP_MAP_FIXED, &(uint64_t){a + PG}),
			 0);
	assert_int_equal(host_gup(h, a + PG, false, &g), 0);
	host_put_frame(h, g.ref_pfn);
	assert_int_equal(peek(h, a, 8, bm), 0);
	tdp_host_destroy(h);
}

/* ------------------------------------------------------------------ */
/* migration, swap, huge folios                                        */
/* ------------------------------------------------------------------ */

static void test_age_migrate(void **state)
{
	struct tdp_host *h = th_host_new(GiB);
	uint64_t a = th_host_map(h, 8 * PG, RW, TDP_PAGE_SIZE);
	uint64_t bm[16], old_pfn;
	struct host_gup g;

	touch_w(h, a + 2 * PG);
	touch_r(h, a + 5 * PG);
	touch_r(h, a + 6 * PG);
	assert_int_equal(age(h, a + 6 * PG, 1, 0, bm), 1); /* 6 is old now */
	old_pfn = th_lookup_pfn(h, a + 2 * PG, NULL);
	assert_int_equal(tdp_host_migrate(h, a, 8 * PG), 0);
	assert_int_not_equal(th_lookup_pfn(h, a + 2 * PG, NULL), old_pfn);
	assert_int_equal(peek(h, a, 8, bm), 2);
	assert_true(th_bm_test(bm, 2) && th_bm_test(bm, 5));
	/* old pages stay old */
	assert_int_equal(age(h, a, 8, 0, bm), 2);
	assert_int_equal(tdp_host_migrate(h, a, 8 * PG), 0);
	assert_int_equal(age(h, a, 8, 0, bm), 0);

	/* a mark by a VM (e.g. from invalidate_start) survives the move */
	assert_int_equal(host_gup(h, a + 7 * PG, false, &g), 0);
	host_put_frame(h, g.ref_pfn);
	assert_int_equal(peek(h, a, 8, bm), 0);
	host_mark_accessed(h, th_lookup_pfn(h, a + 7 * PG, NULL), 1);
	assert_int_equal(tdp_host_migrate(h, a + 7 * PG, PG), 0);
	assert_int_equal(age(h, a, 8, 0, bm), 1);
	assert_true(th_bm_test(bm, 7));
	tdp_host_destroy(h);
}

static void test_age_swap(void **state)
{
	struct tdp_host *h = th_host_new(GiB);
	uint64_t a = th_host_map(h, 8 * PG, RW, TDP_PAGE_SIZE);
	uint64_t bm[16];
	struct host_gup g;

	for (uint64_t p = 0; p < 4; p++)
		touch_w(h, a + p * PG);
	assert_int_equal(tdp_host_swap_out(h, a, 2 * PG), 0);
	/* swapped out: old; still present and young: pages 2, 3 */
	assert_int_equal(peek(h, a, 8, bm), 2);
	assert_true(th_bm_test(bm, 2) && th_bm_test(bm, 3));
	assert_int_equal(age(h, a, 8, 0, bm), 2);

	/* swap-in by a host read: young (the read marks it) */
	touch_r(h, a);
	assert_int_equal(age(h, a, 8, 0, bm), 1);
	assert_true(th_bm_test(bm, 0));
	/* swap-in by host_gup (a guest fault): old on the host side */
	assert_int_equal(host_gup(h, a + PG, false, &g), 0);
	host_put_frame(h, g.ref_pfn);
	assert_int_equal(age(h, a, 8, 0, bm), 0);

	/* young at swap-out time does not come back with the swap-in */
	touch_w(h, a + 3 * PG);
	assert_int_equal(tdp_host_swap_out(h, a + 3 * PG, PG), 0);
	assert_int_equal(host_gup(h, a + 3 * PG, false, &g), 0);
	host_put_frame(h, g.ref_pfn);
	assert_int_equal(peek(h, a, 8, bm), 0);
	assert_int_equal(tdp_host_swap_out(h, a, 8 * PG), 0);
	assert_int_equal(age(h, a, 8, 0, bm), 0);
	tdp_host_destroy(h);
}

static void test_age_huge(void **state)
{
	struct tdp_host *h = th_host_new(GiB);
	uint64_t a =
		th_host_map(h, 4 * MiB, RW, TDP_HUGE_2M); /* two 2M folios */
	uint64_t bm[16], head, pfn;
	unsigned order;

	touch_w(h, a + 1 * PG);
	touch_w(h, a + 300 * PG);
	touch_r(h, a + 511 * PG);
	touch_r(h, a + 512 * PG); /* second folio */
	touch_w(h, a + 600 * PG);
	pfn = th_lookup_pfn(h, a + 300 * PG, &order);
	assert_int_equal(order, HOST_ORDER_2M);
	head = pfn - 300;
	/* every page of a folio ages on its own */
	assert_int_equal(peek(h, a, 1024, bm), 5);
	assert_true(th_bm_test(bm, 1) && th_bm_test(bm, 300) &&
		    th_bm_test(bm, 511) && th_bm_test(bm, 512) &&
		    th_bm_test(bm, 600));

	/* a range across the folio boundary, covering both partly */
	assert_int_equal(age(h, a + 256 * PG, 512, 0, bm), 4);
	assert_true(th_bm_test(bm, 300 - 256) && th_bm_test(bm, 511 - 256) &&
		    th_bm_test(bm, 512 - 256) && th_bm_test(bm, 600 - 256));
	/* only the range was cleared; the folios were not split */
	assert_int_equal(peek(h, a, 1024, bm), 1);
	assert_true(th_bm_test(bm, 1));
	pfn = th_lookup_pfn(h, a + 300 * PG, &order);
	assert_int_equal(order, HOST_ORDER_2M);
	assert_int_equal(pfn, head + 300);

	/* a single page inside a folio */
	assert_int_equal(age(h, a + PG, 1, TDP_AGE_TEST_ONLY, bm), 1);
	assert_int_equal(age(h, a + 2 * PG, 1, 0, bm), 0);
	assert_int_equal(age(h, a + PG, 1, 0, bm), 1);
	assert_int_equal(age(h, a, 1024, 0, bm), 0);

	/* marks on part of a folio's frames */
	host_mark_accessed(h, head + 10, 3);
	assert_int_equal(peek(h, a, 1024, bm), 3);
	assert_true(th_bm_test(bm, 10) && th_bm_test(bm, 11) &&
		    th_bm_test(bm, 12));

	/* split keeps the bits per frame */
	touch_r(h, a + 400 * PG);
	assert_int_equal(tdp_host_split(h, a, 2 * MiB), 0);
	pfn = th_lookup_pfn(h, a + 400 * PG, &order);
	assert_int_equal(order, 0);
	assert_int_equal(pfn, head + 400);
	assert_int_equal(peek(h, a, 1024, bm), 4);
	assert_true(th_bm_test(bm, 10) && th_bm_test(bm, 11) &&
		    th_bm_test(bm, 12) && th_bm_test(bm, 400));
	assert_int_equal(age(h, a, 1024, 0, bm), 4);

	/* whole-folio migration keeps them frame by frame */
	touch_w(h, a + 513 * PG);
	touch_r(h, a + 1023 * PG);
	pfn = th_lookup_pfn(h, a + 513 * PG, NULL);
	assert_int_equal(tdp_host_migrate(h, a + 2 * MiB, 2 * MiB), 0);
	assert_int_not_equal(th_lookup_pfn(h, a + 513 * PG, NULL), pfn);
	pfn = th_lookup_pfn(h, a + 513 * PG, &order);
	assert_int_equal(order, HOST_ORDER_2M);
	assert_int_equal(peek(h, a, 1024, bm), 2);
	assert_true(th_bm_test(bm, 513) && th_bm_test(bm, 1023));

	/* partial migration splits the folio and keeps them too */
	touch_w(h, a + 700 * PG);
	assert_int_equal(tdp_host_migrate(h, a + 512 * PG, 200 * PG), 0);
	pfn = th_lookup_pfn(h, a + 513 * PG, &order);
	assert_int_equal(order, 0);
	assert_int_equal(peek(h, a, 1024, bm), 3);
	assert_true(th_bm_test(bm, 513) && th_bm_test(bm, 700) &&
		    th_bm_test(bm, 1023));

	/* swapping out part of a folio makes that part old */
	assert_int_equal(age(h, a, 1024, 0, bm), 3);
	touch_r(h, a + 1000 * PG);
	touch_r(h, a + 1001 * PG);
	assert_int_equal(tdp_host_swap_out(h, a + 1000 * PG, PG), 0);
	assert_int_equal(age(h, a, 1024, 0, bm), 1);
	assert_true(th_bm_test(bm, 1001));
	tdp_host_destroy(h);
}

/* A long range: many pte leaves, mostly unpopulated. */
static void test_age_large_range(void **state)
{
	struct tdp_host *h = th_host_new(GiB);
	uint64_t len = 512 * MiB, npages = len / PG;
	uint64_t a = th_host_map(h, len, RW, TDP_HUGE_2M);
	uint64_t *bm = calloc((npages + 63) / 64, sizeof(*bm));
	int ret;

	assert_non_null(bm);
	touch_r(h, a);
	touch_r(h, a + len - PG);
	touch_r(h, a + 77 * MiB + 5 * PG);
	ret = tdp_host_age(h, a, len, 0, bm);
	assert_int_equal(ret, 3);
	assert_int_equal(th_bm_count(bm, npages / 64), 3);
	assert_true(th_bm_test(bm, 0) && th_bm_test(bm, npages - 1) &&
		    th_bm_test(bm, 77 * MiB / PG + 5));
	assert_int_equal(tdp_host_age(h, a, len, 0, NULL), 0);
	free(bm);
	tdp_host_destroy(h);
}

/* ------------------------------------------------------------------ */
/* notifiers                                                           */
/* ------------------------------------------------------------------ */

/* A fake VM: reports @report_pages (relative page numbers) young, clears
 * them unless TEST_ONLY, and records what it was called with. */
struct fake_vm {
	struct tdp_host_notifier n;
	struct tdp_host *h;
	uint64_t report[8];
	unsigned nr_report;
	unsigned calls;
	unsigned last_flags;
	uint64_t last_start, last_end;
	uint64_t seen_word0; /* young[0] when called: the host's answer */
	bool locked_check;   /* check the mmap lock state from the op */
	bool reader_ran, writer_blocked;
	pthread_t writer;    /* joined by the test */
	struct lock_probe {
		struct tdp_host *h;
		uint64_t hva;
		int done; /* atomic */
		int ret;
	} w;
};

static void *probe_reader(void *arg)
{
	struct lock_probe *p = arg;

	p->ret = host_lookup(p->h, p->hva, NULL, NULL, NULL);
	__atomic_store_n(&p->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *probe_writer(void *arg)
{
	struct lock_probe *p = arg;

	p->ret = tdp_host_mprotect(p->h, p->hva, PG,
				   TDP_PROT_READ | TDP_PROT_WRITE);
	__atomic_store_n(&p->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* wait up to @ms for *done */
static bool wait_done(int *done, unsigned ms)
{
	for (unsigned i = 0; i < ms; i++) {
		if (__atomic_load_n(done, __ATOMIC_ACQUIRE))
			return true;
		nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	}
	return __atomic_load_n(done, __ATOMIC_ACQUIRE);
}

static void fake_age(struct tdp_host_notifier *n, uint64_t start,
		     uint64_t end, unsigned flags, uint64_t *young)
{
	struct fake_vm *v = (struct fake_vm *)n;
	unsigned kept = 0;

	v->calls++;
	v->last_flags = flags;
	v->last_start = start;
	v->last_end = end;
	v->seen_word0 = young[0];
	for (unsigned i = 0; i < v->nr_report; i++) {
		uint64_t p = v->report[i];

		young[p / 64] |= 1ull << (p % 64);
		if (flags & TDP_AGE_TEST_ONLY)
			v->report[kept++] = p;
	}
	v->nr_report = kept;

	if (v->locked_check) {
		/* held for read: another reader gets in, a writer waits */
		struct lock_probe r = {.h = v->h, .hva = start};
		pthread_t tr;

		pthread_create(&tr, NULL, probe_reader, &r);
		v->reader_ran = wait_done(&r.done, 5000) && r.ret == 0;
		pthread_join(tr, NULL);
		v->w = (struct lock_probe){.h = v->h, .hva = start};
		pthread_create(&v->writer, NULL, probe_writer, &v->w);
		v->writer_blocked = !wait_done(&v->w.done, 100);
		/* the writer finishes once aging has dropped the lock: it is
		 * joined by the test after tdp_host_age returns */
		v->locked_check = false;
	}
}

static const struct tdp_host_notifier_ops fake_ops = {
	.age = fake_age,
};

/* invalidate ops only: age NULL, skipped */
static void noop_range(struct tdp_host_notifier *n, uint64_t s, uint64_t e)
{
}

static const struct tdp_host_notifier_ops noage_ops = {
	.invalidate_start = noop_range,
	.invalidate_end = noop_range,
};

static void test_age_notifier(void **state)
{
	struct tdp_host *h = th_host_new(GiB);
	uint64_t n = 70, a = th_host_map(h, n * PG, RW, TDP_PAGE_SIZE);
	struct fake_vm v1 = {.n.ops = &fake_ops, .h = h};
	struct fake_vm v2 = {.n.ops = &fake_ops, .h = h};
	struct tdp_host_notifier nul = {.ops = &noage_ops};
	struct tdp_host_notifier nops = {.ops = NULL};
	uint64_t bm[16];

	host_notifier_register(h, &nul);
	host_notifier_register(h, &v1.n);
	host_notifier_register(h, &nops);
	host_notifier_register(h, &v2.n);

	/* nothing young anywhere: the VMs are asked all the same */
	assert_int_equal(age(h, a, n, 0, bm), 0);
	assert_int_equal(v1.calls, 1);
	assert_int_equal(v2.calls, 1);
	assert_int_equal(v1.last_start, a);
	assert_int_equal(v1.last_end, a + n * PG);

	/* host young: 0, 3; v1: 3 (overlap), 5, 65 (second word), v2: 69 */
	touch_w(h, a);
	touch_r(h, a + 3 * PG);
	v1.report[0] = 3, v1.report[1] = 5, v1.report[2] = 65;
	v1.nr_report = 3;
	v2.report[0] = 69;
	v2.nr_report = 1;

	assert_int_equal(age(h, a, n, TDP_AGE_TEST_ONLY, bm), 5);
	assert_true(th_bm_test(bm, 0) && th_bm_test(bm, 3) &&
		    th_bm_test(bm, 5) && th_bm_test(bm, 65) &&
		    th_bm_test(bm, 69));
	assert_int_equal(v1.last_flags, TDP_AGE_TEST_ONLY);
	assert_int_equal(v2.last_flags, TDP_AGE_TEST_ONLY);
	/* the VMs are asked first (a mapping zapped while they walk hands
	 * its Accessed bit to the frame before the host reads the frames) */
	assert_int_equal(v1.seen_word0 & 1, 0); /* bit 0: host only */
	assert_int_equal(v2.seen_word0 & 1, 0);
	assert_int_equal(tdp_host_age(h, a, n * PG, TDP_AGE_TEST_ONLY, NULL),
			 5);

	/* flags pass through as given */
	assert_int_equal(age(h, a, n, TDP_AGE_TEST_ONLY | TDP_AGE_FLUSH, bm),
			 5);
	assert_int_equal(v1.last_flags, TDP_AGE_TEST_ONLY | TDP_AGE_FLUSH);
	assert_int_equal(age(h, a, n, TDP_AGE_FLUSH, bm), 5);
	assert_int_equal(v1.last_flags, TDP_AGE_FLUSH);
	assert_int_equal(v2.last_flags, TDP_AGE_FLUSH);
	/* everyone cleared */
	assert_int_equal(age(h, a, n, 0, bm), 0);
	assert_int_equal(v1.last_flags, 0);
	assert_int_equal(v1.calls, 6);
	assert_int_equal(v2.calls, 6);

	/* a VM that reports beyond the range is not counted */
	v1.report[0] = 2;
	v1.report[1] = n + 3; /* still inside word 1 */
	v1.nr_report = 2;
	assert_int_equal(age(h, a, n, 0, bm), 1);
	assert_true(th_bm_test(bm, 2));

	/* a sub-range is passed on as it is */
	assert_int_equal(age(h, a + 64 * PG, 3, 0, bm), 0);
	assert_int_equal(v2.last_start, a + 64 * PG);
	assert_int_equal(v2.last_end, a + 67 * PG);

	/* errors do not reach the VMs */
	assert_int_equal(tdp_host_age(h, a, (n + 1) * PG, 0, bm), -ENOENT);
	assert_int_equal(tdp_host_age(h, a, n * PG, 8, bm), -EINVAL);
	assert_int_equal(v1.calls, 8);

	/* the op runs under the mmap lock held for read */
	v1.locked_check = true;
	assert_int_equal(age(h, a, n, 0, bm), 0);
	pthread_join(v1.writer, NULL);
	assert_int_equal(v1.w.ret, 0);
	assert_true(v1.reader_ran);
	assert_true(v1.writer_blocked);

	/* unregistered: not asked any more */
	host_notifier_unregister(h, &v1.n);
	v1.report[0] = 1;
	v1.nr_report = 1;
	assert_int_equal(age(h, a, n, 0, bm), 0);
	assert_int_equal(v1.calls, 9);
	assert_int_equal(v2.calls, 10);

	host_notifier_unregister(h, &v2.n);
	host_notifier_unregister(h, &nops);
	host_notifier_unregister(h, &nul);
	tdp_host_destroy(h);
}

/* From inside an operation's write section (the test hook, like a
 * notifier callback) aging works under the caller's lock. */
struct hook_age {
	struct tdp_host *h;
	uint64_t hva;
	int ret;
	uint64_t bm;
};

static void hook_age_fn(void *arg, uint64_t start, uint64_t end)
{
	struct hook_age *ha = arg;

	ha->ret = tdp_host_age(ha->h, ha->hva, 4 * PG, TDP_AGE_TEST_ONLY,
			       &ha->bm);
}

static void test_age_in_write_section(void **state)
{
	struct tdp_host *h = th_host_new(GiB);
	uint64_t a = th_host_map(h, 4 * PG, RW, TDP_PAGE_SIZE);
	struct hook_age ha = {.h = h, .hva = a, .ret = -1};
	uint64_t bm[16];

	touch_w(h, a + PG);
	host_set_test_hook(h, hook_age_fn, &ha);
	assert_int_equal(tdp_host_migrate(h, a, 4 * PG), 0);
	host_set_test_hook(h, NULL, NULL);
	assert_int_equal(ha.ret, 1);
	assert_int_equal(ha.bm, 2);
	assert_int_equal(age(h, a, 4, 0, bm), 1);
	tdp_host_destroy(h);
}

/* Aging concurrent with host reads/writes, migration and swap-out (the
 * sanitizers watch): counts stay consistent with the bitmap and in range. */
struct age_stress {
	struct tdp_host *h;
	uint64_t a, npages;
	int stop;
};

static void *stress_toucher(void *arg)
{
	struct age_stress *s = arg;
	uint64_t rng = 0x9e3779b97f4a7c15ull;

	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
		uint64_t p = th_rand(&rng) % s->npages, v = p;

		if (p & 1)
			assert_int_equal(tdp_host_write(s->h, s->a + p * PG, &v,
							sizeof(v)),
					 0);
		else
			assert_int_equal(tdp_host_read(s->h, s->a + p * PG, &v,
						       sizeof(v)),
					 0);
	}
	return NULL;
}

static void *stress_migrator(void *arg)
{
	struct age_stress *s = arg;
	uint64_t rng = 42;

	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
		uint64_t p = th_rand(&rng) % s->npages;

		if (th_rand(&rng) & 1)
			assert_int_equal(tdp_host_migrate(s->h, s->a + p * PG,
							  PG),
					 0);
		else
			assert_int_equal(tdp_host_swap_out(s->h,
							   s->a + p * PG, PG),
					 0);
	}
	return NULL;
}

static void test_age_concurrent(void **state)
{
	struct tdp_host *h = th_host_new(GiB);
	struct age_stress s = {.h = h, .npages = 256};
	pthread_t t[3];
	uint64_t bm[4], t0 = th_now_ns();
	unsigned rounds = 0;

	s.a = th_host_map(h, s.npages * PG, RW, TDP_PAGE_SIZE);
	pthread_create(&t[0], NULL, stress_toucher, &s);
	pthread_create(&t[1], NULL, stress_toucher, &s);
	pthread_create(&t[2], NULL, stress_migrator, &s);
	while (th_now_ns() - t0 < 300000000ull || rounds < 50) {
		int ret;

		for (unsigned w = 0; w < 4; w++)
			bm[w] = SENTINEL;
		unsigned flags = rounds & 1 ? 0 : TDP_AGE_TEST_ONLY;

		ret = tdp_host_age(h, s.a, s.npages * PG, flags, bm);
		assert_true(ret >= 0 && ret <= (int)s.npages);
		assert_int_equal(ret, th_bm_count(bm, 4));
		rounds++;
	}
	__atomic_store_n(&s.stop, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < 3; i++)
		pthread_join(t[i], NULL);

	/* quiescent: one touch, one young page */
	assert_true(tdp_host_age(h, s.a, s.npages * PG, 0, NULL) >= 0);
	touch_r(h, s.a + 17 * PG);
	assert_int_equal(age(h, s.a, s.npages, 0, bm), 1);
	assert_true(th_bm_test(bm, 17));
	tdp_host_destroy(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_age_args),
		cmocka_unit_test(test_age_basic),
		cmocka_unit_test(test_age_gup_and_mark),
		cmocka_unit_test(test_age_migrate),
		cmocka_unit_test(test_age_swap),
		cmocka_unit_test(test_age_huge),
		cmocka_unit_test(test_age_large_range),
		cmocka_unit_test(test_age_notifier),
		cmocka_unit_test(test_age_in_write_section),
		cmocka_unit_test(test_age_concurrent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
