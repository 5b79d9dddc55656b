/* SPDX-License-Identifier: MIT */
/*
 * test_host.c - the embedded host (src/host/pool.c, src/host/buddy.c):
 * argument errors, mappings, folios, read/write, munmap, mprotect, migrate,
 * swap, split, dirty state and the swap cache (host_mark_dirty, clean
 * swap-out, lost Dirty bits), notifiers, pins and concurrent stresses.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "host/buddy.h"
#include "host/host.h"
#include "wordcopy.h"

#define PG	4096ull
#define HVA_TOP (1ull << 47)

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static void check_page(struct tdp_host *h, uint64_t hva, uint64_t gen)
{
	uint64_t buf[512];

	assert_int_equal(tdp_host_read(h, hva, buf, PG), 0);
	assert_int_equal(th_check_page(buf, hva, gen), 0);
}

/* Recording notifier: checks from inside the callbacks what the host maps
 * at @probe. */
struct rec {
	struct tdp_host_notifier n;
	struct tdp_host *h;
	uint64_t probe;
	int starts, ends, hooks;
	uint64_t start, end;
	int start_ret, end_ret, hook_ret;
	uint64_t start_pfn, end_pfn, hook_pfn;
	unsigned start_order, end_order;
	bool in_window;
	bool bad_order; /* end before start, or nested */
};

static int probe(struct rec *r, uint64_t *pfn, unsigned *order)
{
	unsigned prot;

	return host_lookup(r->h, r->probe, pfn, order, &prot);
}

static void rec_start(struct tdp_host_notifier *n, uint64_t start, uint64_t end)
{
	struct rec *r = (struct rec *)n;

	if (r->in_window)
		r->bad_order = true;
	r->in_window = true;
	r->starts++;
	r->start = start;
	r->end = end;
	r->start_ret = probe(r, &r->start_pfn, &r->start_order);
}

static void rec_end(struct tdp_host_notifier *n, uint64_t start, uint64_t end)
{
	struct rec *r = (struct rec *)n;

	if (!r->in_window || start != r->start || end != r->end)
		r->bad_order = true;
	r->in_window = false;
	r->ends++;
	r->end_ret = probe(r, &r->end_pfn, &r->end_order);
}

static const struct tdp_host_notifier_ops rec_ops = {
	.invalidate_start = rec_start,
	.invalidate_end = rec_end,
};

static void rec_hook(void *arg, uint64_t start, uint64_t end)
{
	struct rec *r = arg;
	unsigned order;

	r->hooks++;
	r->hook_ret = probe(r, &r->hook_pfn, &order);
}

static void rec_init(struct rec *r, struct tdp_host *h)
{
	memset(r, 0, sizeof(*r));
	r->n.ops = &rec_ops;
	r->h = h;
	host_notifier_register(h, &r->n);
	host_set_test_hook(h, rec_hook, r);
}

static void rec_fini(struct rec *r)
{
	host_set_test_hook(r->h, NULL, NULL);
	host_notifier_unregister(r->h, &r->n);
	assert_false(r->bad_order);
	assert_false(r->in_window);
}

static long rss_kib(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
		rss = -1;
	fclose(f);
	return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ------------------------------------------------------------------ */
/* buddy allocator                                                     */
/* ------------------------------------------------------------------ */

static void test_buddy(void **state)
{
	struct buddy b;
	uint64_t n = 2ull << BUDDY_MAX_ORDER;
	int64_t p[4];
	bool dirty = true;

	assert_int_equal(buddy_init(&b, 0), -EINVAL);
	assert_int_equal(buddy_init(&b, 1000), -EINVAL);
	assert_int_equal(buddy_init(&b, n), 0);
	assert_int_equal(buddy_free_frames(&b), n);
	assert_int_equal(buddy_alloc(&b, BUDDY_MAX_ORDER + 1, NULL), -EINVAL);

	p[0] = buddy_alloc(&b, 0, &dirty);
	assert_int_equal(p[0], 0);
	assert_false(dirty);
	p[1] = buddy_alloc(&b, 9, &dirty);
	assert_true(p[1] > 0);
	assert_int_equal(p[1] % 512, 0);
	p[2] = buddy_alloc(&b, 18, NULL);
	assert_int_equal(p[2], 1ull << 18);
	assert_int_equal(buddy_alloc(&b, 18, NULL), -ENOMEM);
	assert_int_equal(buddy_order(&b, p[1]), 9);
	assert_int_equal(buddy_order(&b, p[1] + 1), -EINVAL);
	assert_int_equal(buddy_free(&b, p[1] + 1), -EINVAL);
	assert_int_equal(buddy_free_frames(&b), n - 1 - 512 - (1u << 18));

	/* split a 2M block and free it frame by frame: it coalesces */
	assert_int_equal(buddy_split(&b, p[1]), 9);
	assert_int_equal(buddy_order(&b, p[1]), 0);
	assert_int_equal(buddy_order(&b, p[1] + 7), 0);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(buddy_free(&b, p[1] + i), 0);
	assert_int_equal(buddy_free(&b, p[1]), -EINVAL); /* double free */
	assert_int_equal(buddy_free(&b, p[0]), 0);
	assert_int_equal(buddy_free(&b, p[2]), 0);
	assert_int_equal(buddy_free_frames(&b), n);
	/* everything coalesced back into two 1 GiB blocks */
	p[0] = buddy_alloc(&b, 18, &dirty);
	assert_true(dirty); /* frames of it were handed out before */
	p[3] = buddy_alloc(&b, 18, &dirty);
	assert_true(p[0] >= 0 && p[3] >= 0);
	assert_int_equal(buddy_alloc(&b, 0, NULL), -ENOMEM);
	buddy_fini(&b);
}

/* ------------------------------------------------------------------ */
/* create / mmap                                                       */
/* ------------------------------------------------------------------ */

static void test_create(void **state)
{
	struct tdp_host_config cfg = {.mem_bytes = (1ull << 40) + 1};
	struct tdp_host *h = (void *)0x1;
	long before;
	int ret;

	assert_int_equal(tdp_host_create(&cfg, &h), -EINVAL);
	assert_ptr_equal(h, (void *)0x1);
	assert_int_equal(tdp_host_create(NULL, NULL), -EINVAL);

	/* defaults: 4 GiB, and reserving it costs (almost) nothing */
	before = rss_kib();
	assert_int_equal(tdp_host_create(NULL, &h), 0);
	assert_int_equal(th_host_stats(h).frames_total, (4ull << 30) / PG);
	if (before > 0)
		assert_true(rss_kib() - before < 8 * 1024);
	assert_int_equal((uintptr_t)host_frame_base(h) % (1ull << 30), 0);
	th_assert_host_empty(h);
	tdp_host_destroy(h);

	cfg.mem_bytes = 1; /* rounded up to 1 GiB */
	assert_int_equal(tdp_host_create(&cfg, &h), 0);
	assert_int_equal(th_host_stats(h).frames_total, (1ull << 30) / PG);
	tdp_host_destroy(h);

	cfg.mem_bytes = 1ull << 40; /* the largest pool */
	ret = tdp_host_create(&cfg, &h);
#ifdef TDP_TSAN
	/* TSan only maps application memory in a few 1.5 TiB windows */
	if (ret == -ENOMEM)
		return;
#endif
	assert_int_equal(ret, 0);
	assert_int_equal(th_host_stats(h).frames_total, (1ull << 40) / PG);
	tdp_host_destroy(h);
	tdp_host_destroy(NULL);
}

static void test_mmap_args(void **state)
{
	struct tdp_host *h = th_host_new(1ull << 30);
	uint64_t hva = 0, fixed = 16ull << 30;

	assert_int_equal(tdp_host_mmap(NULL, PG, 3, PG, 0, &hva), -EINVAL);
	assert_int_equal(tdp_host_mmap(h, 0, 3, PG, 0, &hva), -EINVAL);
	assert_int_equal(tdp_host_mmap(h, PG + 1, 3, PG, 0, &hva), -EINVAL);
	assert_int_equal(tdp_host_mmap(h, PG, 3, TDP_HUGE_2M, 0, &hva),
			 -EINVAL);
	assert_int_equal(tdp_host_mmap(h, TDP_HUGE_2M, 3, TDP_HUGE_1G, 0, &hva),
			 -EINVAL);
	assert_int_equal(tdp_host_mmap(h, 8 * PG, 3, 8 * PG, 0, &hva), -EINVAL);
	assert_int_equal(tdp_host_mmap(h, PG, 3, 0, 0, &hva), -EINVAL);
	assert_int_equal(tdp_host_mmap(h, PG, 8, PG, 0, &hva), -EINVAL);
	assert_int_equal(tdp_host_mmap(h, PG, 3, PG, 4, &hva), -EINVAL);
	assert_int_equal(tdp_host_mmap(h, PG, 3, PG, 0, NULL), -EINVAL);
	hva = fixed + PG;
	assert_int_equal(tdp_host_mmap(h, TDP_HUGE_2M, 3, TDP_HUGE_2M,
				       TDP_MAP_FIXED, &hva),
			 -EINVAL);
	hva = HVA_TOP;
	assert_int_equal(tdp_host_mmap(h, PG, 3, PG, TDP_MAP_FIXED, &hva),
			 -EINVAL);
	hva = HVA_TOP - PG;
	assert_int_equal(tdp_host_mmap(h, 2 * PG, 3, PG, TDP_MAP_FIXED, &hva),
			 -EINVAL);
	hva = ~0ull & ~(PG - 1);
	assert_int_equal(tdp_host_mmap(h, 2 * PG, 3, PG, TDP_MAP_FIXED, &hva),
			 -EINVAL);
	assert_int_equal(tdp_host_mmap(h, HVA_TOP, 3, PG, 0, &hva), -ENOMEM);
	assert_int_equal(hva, ~0ull & ~(PG - 1)); /* untouched on error */
	/* nothing got mapped */
	assert_false(host_range_mapped(h, 0, HVA_TOP));
	assert_int_equal(host_lookup(h, 1ull << 30, NULL, NULL, NULL), -EFAULT);

	/* the last page below 2^47 can be mapped */
	hva = HVA_TOP - PG;
	assert_int_equal(tdp_host_mmap(h, PG, 3, PG, TDP_MAP_FIXED, &hva), 0);
	assert_int_equal(hva, HVA_TOP - PG);
	assert_true(host_range_mapped(h, hva, PG));
	assert_int_equal(tdp_host_munmap(h, hva, PG), 0);

	/* non-fixed mappings are aligned and do not overlap */
	{
		uint64_t a = th_host_map(h, 3 * PG, 3, PG);
		uint64_t b = th_host_map(h, 2 * TDP_HUGE_2M, 3, TDP_HUGE_2M);
		uint64_t c = th_host_map(h, TDP_HUGE_1G, 3, TDP_HUGE_1G);

		assert_true(a >= (1ull << 30) && a + 3 * PG <= HVA_TOP);
		assert_true(b >= a + 3 * PG || b + 2 * TDP_HUGE_2M <= a);
		assert_true(c >= b + 2 * TDP_HUGE_2M || c + TDP_HUGE_1G <= b);
		assert_true(c >= a + 3 * PG || c + TDP_HUGE_1G <= a);
		assert_true(host_range_mapped(h, a, 3 * PG));
		assert_false(host_range_mapped(h, a, 4 * PG));
		assert_int_equal(tdp_host_munmap(h, a, 3 * PG), 0);
		assert_int_equal(tdp_host_munmap(h, b, 2 * TDP_HUGE_2M), 0);
		assert_int_equal(tdp_host_munmap(h, c, TDP_HUGE_1G), 0);
	}
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

static void test_mmap_fixed(void **state)
{
	struct tdp_host *h = th_host_new(1ull << 30);
	uint64_t base = 64ull << 30, hva;

	hva = base;
	assert_int_equal(tdp_host_mmap(h, TDP_HUGE_2M, 3, TDP_HUGE_2M,
				       TDP_MAP_FIXED, &hva),
			 0);
	assert_int_equal(hva, base);
	th_host_put_page(h, base + 5 * PG, 1);

	/* any overlap: -EEXIST, and the old mapping is untouched */
	hva = base + TDP_HUGE_2M - PG;
	assert_int_equal(tdp_host_mmap(h, 2 * PG, 3, PG, TDP_MAP_FIXED, &hva),
			 -EEXIST);
	hva = base - TDP_HUGE_2M;
	assert_int_equal(tdp_host_mmap(h, 4 * TDP_HUGE_2M, 3, TDP_HUGE_2M,
				       TDP_MAP_FIXED, &hva),
			 -EEXIST);
	hva = base;
	assert_int_equal(tdp_host_mmap(h, PG, 3, PG, TDP_MAP_FIXED, &hva),
			 -EEXIST);
	check_page(h, base + 5 * PG, 1);
	assert_false(host_range_mapped(h, base + TDP_HUGE_2M, PG));

	/* adjacent on both sides is fine */
	hva = base + TDP_HUGE_2M;
	assert_int_equal(tdp_host_mmap(h, PG, 3, PG, TDP_MAP_FIXED, &hva), 0);
	hva = base - PG;
	assert_int_equal(tdp_host_mmap(h, PG, 1, PG, TDP_MAP_FIXED, &hva), 0);
	assert_true(host_range_mapped(h, base - PG, TDP_HUGE_2M + 2 * PG));

	/* after munmap the range can be mapped again, and is zero */
	assert_int_equal(tdp_host_munmap(h, base, TDP_HUGE_2M), 0);
	hva = base;
	assert_int_equal(
		tdp_host_mmap(h, TDP_HUGE_2M, 3, PG, TDP_MAP_FIXED, &hva), 0);
	{
		uint64_t buf[512];

		assert_int_equal(tdp_host_read(h, base + 5 * PG, buf, PG), 0);
		for (unsigned i = 0; i < 512; i++)
			assert_int_equal(buf[i], 0);
	}
	assert_int_equal(tdp_host_munmap(h, base - PG, TDP_HUGE_2M + 2 * PG),
			 0);
	assert_false(host_range_mapped(h, base - PG, PG));
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

/* ------------------------------------------------------------------ */
/* argument errors of the range operations                             */
/* ------------------------------------------------------------------ */

typedef int (*range_op)(struct tdp_host *h, uint64_t hva, uint64_t len);

static int op_mprotect_ro(struct tdp_host *h, uint64_t hva, uint64_t len)
{
	return tdp_host_mprotect(h, hva, len, TDP_PROT_READ);
}

static void test_range_args(void **state)
{
	static const range_op ops[] = {
		tdp_host_munmap,   op_mprotect_ro, tdp_host_migrate,
		tdp_host_swap_out, tdp_host_split,
	};
	struct tdp_host *h = th_host_new(1ull << 30);
	uint64_t a = th_host_map(h, 2 * TDP_HUGE_2M, 3, TDP_HUGE_2M);
	struct tdp_host_stats s0;
	uint64_t pfn, pfn1 = 0;
	unsigned order, prot;
	struct rec r;

	th_host_put_page(h, a, 7);
	pfn = th_lookup_pfn(h, a, &order);
	assert_int_equal(order, 9);
	rec_init(&r, h);
	s0 = th_host_stats(h);
	for (unsigned i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		range_op op = ops[i];

		assert_int_equal(op(NULL, a, PG), -EINVAL);
		assert_int_equal(op(h, a + 1, PG), -EINVAL);
		assert_int_equal(op(h, a, PG + 1), -EINVAL);
		assert_int_equal(op(h, a, 0), -EINVAL);
		assert_int_equal(op(h, a, ~0ull & ~(PG - 1)), -EINVAL);
		assert_int_equal(op(h, ~0ull & ~(PG - 1), 2 * PG), -EINVAL);
		/* not mapped, wholly or partly */
		assert_int_equal(op(h, 4096 * PG, PG), -ENOENT);
		assert_int_equal(op(h, a - PG, 2 * PG), -ENOENT);
		assert_int_equal(op(h, a, 2 * TDP_HUGE_2M + PG), -ENOENT);
		assert_int_equal(op(h, HVA_TOP, PG), -ENOENT);
	}
	assert_int_equal(tdp_host_mprotect(h, a, PG, 8), -EINVAL);
	assert_int_equal(tdp_host_mprotect(h, a, PG, ~0u), -EINVAL);

	/* nothing changed, nobody was told */
	assert_int_equal(r.starts, 0);
	assert_int_equal(r.hooks, 0);
	assert_int_equal(host_lookup(h, a + PG, &pfn1, &order, &prot), 0);
	assert_int_equal(pfn1, pfn + 1);
	assert_int_equal(order, 9);
	assert_int_equal(prot, 3);
	s0 = th_host_stats(h);
	assert_int_equal(s0.frames_used, 512);
	assert_int_equal(s0.frame_refs, 1);
	assert_int_equal(s0.splits + s0.migrations + s0.swap_outs, 0);
	check_page(h, a, 7);
	rec_fini(&r);
	assert_int_equal(tdp_host_munmap(h, a, 2 * TDP_HUGE_2M), 0);
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

/* ------------------------------------------------------------------ */
/* read / write                                                        */
/* ------------------------------------------------------------------ */

static void test_rw_args(void **state)
{
	struct tdp_host *h = th_host_new(1ull << 30);
	uint64_t a = th_host_map(h, 4 * PG, 3, PG);
	uint8_t buf[2 * PG], zero[2 * PG];

	memset(buf, 0x5a, sizeof(buf));
	memset(zero, 0, sizeof(zero));
	assert_int_equal(tdp_host_read(NULL, a, buf, 8), -EINVAL);
	assert_int_equal(tdp_host_write(NULL, a, buf, 8), -EINVAL);
	assert_int_equal(tdp_host_read(h, a, NULL, 8), -EINVAL);
	assert_int_equal(tdp_host_write(h, a, NULL, 8), -EINVAL);
	assert_int_equal(tdp_host_read(h, ~0ull - 4, buf, 8), -EINVAL);
	assert_int_equal(tdp_host_write(h, ~0ull - 4, buf, 8), -EINVAL);
	assert_int_equal(tdp_host_read(h, a, NULL, 0), 0);
	assert_int_equal(tdp_host_write(h, 12345, buf, 0), 0);
	assert_int_equal(tdp_host_read(h, HVA_TOP - 8, buf, 16), -EFAULT);

	/* partly unmapped: -EFAULT and nothing copied or faulted in */
	assert_int_equal(tdp_host_write(h, a + 3 * PG, buf, 2 * PG), -EFAULT);
	assert_int_equal(tdp_host_write(h, a - 8, buf, 16), -EFAULT);
	assert_int_equal(th_host_stats(h).frames_used, 0);
	assert_int_equal(host_lookup(h, a + 3 * PG, NULL, NULL, NULL), -ENOENT);
	assert_int_equal(tdp_host_read(h, a + 3 * PG, buf, 2 * PG), -EFAULT);
	assert_int_equal(buf[0], 0x5a);
	assert_int_equal(buf[2 * PG - 1], 0x5a);
	assert_int_equal(tdp_host_read(h, a + 3 * PG, buf, PG), 0);
	assert_memory_equal(buf, zero, PG);
	assert_int_equal(th_host_stats(h).frames_used, 1);
	assert_int_equal(tdp_host_munmap(h, a, 4 * PG), 0);
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

/* write a pattern over [hva, hva+len) at an odd offset, read it back */
static void rw_span(struct tdp_host *h, uint64_t hva, uint64_t len,
		    uint64_t seed)
{
	uint8_t *w = malloc(len), *r = malloc(len);
	uint64_t st = seed | 1;

	assert_non_null(w);
	assert_non_null(r);
	for (uint64_t i = 0; i < len; i++)
		w[i] = (uint8_t)th_rand(&st);
	assert_int_equal(tdp_host_write(h, hva, w, len), 0);
	memset(r, 0, len);
	assert_int_equal(tdp_host_read(h, hva, r, len), 0);
	assert_memory_equal(w, r, len);
	/* and byte by byte at a few places */
	for (uint64_t i = 0; i < len; i += len / 7 + 1) {
		uint8_t c;

		assert_int_equal(tdp_host_read(h, hva + i, &c, 1), 0);
		assert_int_equal(c, w[i]);
	}
	free(w);
	free(r);
}

static void test_rw_folios(void **state)
{
	struct tdp_host *h = th_host_new(2ull << 30);
	uint64_t a4 = th_host_map(h, 8 * PG, 3, PG);
	uint64_t a2 = th_host_map(h, 2 * TDP_HUGE_2M, 3, TDP_HUGE_2M);
	uint64_t a1 = th_host_map(h, TDP_HUGE_1G, 3, TDP_HUGE_1G);
	uint64_t pfn, pfn2;
	unsigned order;

	/* 4 KiB: unaligned span across pages */
	rw_span(h, a4 + 100, 5 * PG + 17, 1);
	pfn = th_lookup_pfn(h, a4 + PG, &order);
	assert_int_equal(order, 0);
	assert_int_equal(th_host_stats(h).frames_used, 6);

	/* 2 MiB: the first touch populates the whole folio */
	rw_span(h, a2 + TDP_HUGE_2M - 3 * PG - 5, 6 * PG + 11, 2);
	pfn = th_lookup_pfn(h, a2, &order);
	assert_int_equal(order, 9);
	assert_int_equal(pfn % 512, 0);
	assert_int_equal(th_lookup_pfn(h, a2 + 77 * PG, NULL), pfn + 77);
	pfn2 = th_lookup_pfn(h, a2 + TDP_HUGE_2M, &order);
	assert_int_equal(order, 9);
	assert_int_equal(pfn2 % 512, 0);
	assert_int_equal(th_host_stats(h).frames_used, 6 + 1024);
	assert_int_equal(th_host_stats(h).frame_refs, 6 + 2);

	/* 1 GiB */
	rw_span(h, a1 + TDP_HUGE_1G / 2 - 9, 3 * PG, 3);
	pfn = th_lookup_pfn(h, a1 + TDP_HUGE_1G / 2, &order);
	assert_int_equal(order, 18);
	assert_int_equal((pfn - 131072) % (1u << 18), 0);
	assert_int_equal(th_lookup_pfn(h, a1, NULL) % (1u << 18), 0);
	assert_int_equal(th_host_stats(h).frames_used, 6 + 1024 + (1u << 18));
	/* untouched parts read as zero */
	{
		uint64_t buf[512];

		assert_int_equal(
			tdp_host_read(h, a1 + TDP_HUGE_1G - PG, buf, PG), 0);
		for (unsigned i = 0; i < 512; i++)
			assert_int_equal(buf[i], 0);
	}
	assert_int_equal(tdp_host_munmap(h, a4, 8 * PG), 0);
	assert_int_equal(tdp_host_munmap(h, a2, 2 * TDP_HUGE_2M), 0);
	assert_int_equal(th_host_stats(h).frames_used, 1u << 18);
	assert_int_equal(th_host_stats(h).frame_refs, 1);
	/* destroy with the 1 GiB folio mapped (no 1 GiB poison fill) */
	tdp_host_destroy(h);
}

static void test_rw_adjacent(void **state)
{
	struct tdp_host *h = th_host_new(1ull << 30);
	uint64_t base = 8ull << 30, hva;

	/* 4K mapping | 2M mapping | 4K mapping, back to back */
	hva = base - 2 * PG;
	assert_int_equal(tdp_host_mmap(h, 2 * PG, 3, PG, TDP_MAP_FIXED, &hva),
			 0);
	hva = base;
	assert_int_equal(tdp_host_mmap(h, TDP_HUGE_2M, 3, TDP_HUGE_2M,
				       TDP_MAP_FIXED, &hva),
			 0);
	hva = base + TDP_HUGE_2M;
	assert_int_equal(tdp_host_mmap(h, 2 * PG, 3, PG, TDP_MAP_FIXED, &hva),
			 0);
	rw_span(h, base - PG - 3, PG + 6, 4);
	rw_span(h, base + TDP_HUGE_2M - 5, PG + 9, 5);
	rw_span(h, base - 2 * PG, TDP_HUGE_2M + 4 * PG, 6);
	/* read-only neighbour: writing across it fails, reading works */
	assert_int_equal(
		tdp_host_mprotect(h, base + TDP_HUGE_2M, 2 * PG, TDP_PROT_READ),
		0);
	{
		uint8_t b[32], c[32];

		memset(b, 0xee, sizeof(b));
		assert_int_equal(
			tdp_host_read(h, base + TDP_HUGE_2M - 16, c, 32), 0);
		assert_int_equal(
			tdp_host_write(h, base + TDP_HUGE_2M - 16, b, 32),
			-EACCES);
		/* nothing written, not even the writable first half */
		assert_int_equal(
			tdp_host_read(h, base + TDP_HUGE_2M - 16, b, 32), 0);
		assert_memory_equal(b, c, 32);
	}
	assert_int_equal(
		tdp_host_munmap(h, base - 2 * PG, TDP_HUGE_2M + 4 * PG), 0);
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

/* ------------------------------------------------------------------ */
/* munmap / mprotect                                                   */
/* ------------------------------------------------------------------ */

static void test_munmap(void **state)
{
	struct tdp_host *h = th_host_new(1ull << 30);
	uint64_t a = th_host_map(h, 8 * PG, 3, PG);
	uint64_t b = th_host_map(h, 2 * TDP_HUGE_2M, 3, TDP_HUGE_2M);
	uint64_t pfn, x, buf[1024];
	unsigned order;

	for (unsigned i = 0; i < 8; i++)
		th_host_put_page(h, a + i * PG, i);
	pfn = th_lookup_pfn(h, a + 3 * PG, NULL);
	/* hole in the middle */
	assert_int_equal(tdp_host_munmap(h, a + 2 * PG, 3 * PG), 0);
	assert_true(th_frame_poisoned(h, pfn));
	assert_int_equal(tdp_host_read(h, a + 3 * PG, &x, 8), -EFAULT);
	assert_int_equal(tdp_host_read(h, a + PG, buf, 2 * PG), -EFAULT);
	assert_int_equal(host_lookup(h, a + 2 * PG, NULL, NULL, NULL), -EFAULT);
	assert_int_equal(tdp_host_munmap(h, a, 8 * PG), -ENOENT);
	check_page(h, a + PG, 1);
	check_page(h, a + 5 * PG, 5);
	assert_int_equal(th_host_stats(h).frames_used, 5);

	/* partial munmap of a 2 MiB folio splits it; the rest stays */
	th_host_put_page(h, b + 10 * PG, 10);
	th_host_put_page(h, b + 300 * PG, 300);
	pfn = th_lookup_pfn(h, b, &order);
	assert_int_equal(order, 9);
	assert_int_equal(tdp_host_munmap(h, b + 256 * PG, 16 * PG), 0);
	assert_int_equal(th_host_stats(h).splits, 1);
	assert_int_equal(th_lookup_pfn(h, b + 10 * PG, &order), pfn + 10);
	assert_int_equal(order, 0);
	assert_int_equal(th_lookup_pfn(h, b + 300 * PG, &order), pfn + 300);
	check_page(h, b + 10 * PG, 10);
	check_page(h, b + 300 * PG, 300);
	assert_true(th_frame_poisoned(h, pfn + 260));
	assert_false(th_frame_poisoned(h, pfn + 255));
	assert_int_equal(th_host_stats(h).frames_used, 5 + 512 - 16);
	assert_int_equal(th_host_stats(h).frame_refs, 5 + 512 - 16);
	/* the untouched second folio is still populated huge on touch */
	th_host_put_page(h, b + TDP_HUGE_2M, 1);
	th_lookup_pfn(h, b + TDP_HUGE_2M + PG, &order);
	assert_int_equal(order, 9);

	/* one munmap over several mappings (and the hole is refused) */
	assert_int_equal(tdp_host_munmap(h, b, 2 * TDP_HUGE_2M), -ENOENT);
	assert_int_equal(tdp_host_munmap(h, b, 256 * PG), 0);
	assert_int_equal(
		tdp_host_munmap(h, b + 272 * PG, 2 * TDP_HUGE_2M - 272 * PG),
		0);
	assert_int_equal(tdp_host_munmap(h, a, 2 * PG), 0);
	assert_int_equal(tdp_host_munmap(h, a + 5 * PG, 3 * PG), 0);
	assert_false(host_range_mapped(h, a, 8 * PG));
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

static void test_mprotect(void **state)
{
	struct tdp_host *h = th_host_new(1ull << 30);
	uint64_t a = th_host_map(h, 4 * PG, 3, PG);
	uint64_t b = th_host_map(h, TDP_HUGE_2M, 3, TDP_HUGE_2M);
	uint64_t x = 0, pfn;
	unsigned order, prot;
	struct rec r;

	th_host_put_page(h, a + PG, 1);
	rec_init(&r, h);
	r.probe = a + PG;

	/* adding a permission: no notifier */
	assert_int_equal(tdp_host_mprotect(h, a, 4 * PG, 7), 0);
	assert_int_equal(r.starts, 0);
	assert_int_equal(r.hooks, 1);

	/* read-only: write -EACCES (nothing written), read ok */
	assert_int_equal(tdp_host_mprotect(h, a + PG, PG, TDP_PROT_READ), 0);
	assert_int_equal(r.starts, 1);
	assert_int_equal(r.start, a + PG);
	assert_int_equal(r.end, a + 2 * PG);
	assert_int_equal(th_host_stats(h).notifier_calls, 1);
	th_host_put_page(h, a, 3); /* neighbours keep their prot */
	{
		uint64_t buf[512];

		th_fill_page(buf, a + PG, 9);
		assert_int_equal(tdp_host_write(h, a + PG, buf, PG), -EACCES);
	}
	check_page(h, a + PG, 1);
	assert_int_equal(host_lookup(h, a + PG, &pfn, &order, &prot), 0);
	assert_int_equal(prot, TDP_PROT_READ);
	assert_int_equal(host_lookup(h, a + 2 * PG, NULL, NULL, &prot),
			 -ENOENT);

	/* no access at all: read -EACCES too */
	assert_int_equal(tdp_host_mprotect(h, a + PG, PG, TDP_PROT_NONE), 0);
	assert_int_equal(tdp_host_read(h, a + PG, &x, 8), -EACCES);
	assert_int_equal(tdp_host_read(h, a + PG - 8, &x, 16), -EACCES);
	/* write-only is not readable either */
	assert_int_equal(tdp_host_mprotect(h, a + PG, PG, TDP_PROT_WRITE), 0);
	assert_int_equal(tdp_host_read(h, a + PG, &x, 8), -EACCES);
	assert_int_equal(tdp_host_write(h, a + PG, &x, 8), 0);
	/* and back */
	assert_int_equal(tdp_host_mprotect(h, a, 4 * PG, 3), 0);
	assert_int_equal(tdp_host_read(h, a + PG, &x, 8), 0);
	assert_int_equal(x, 0);

	/* partial mprotect of a populated 2 MiB folio splits it */
	th_host_put_page(h, b + 20 * PG, 20);
	pfn = th_lookup_pfn(h, b, &order);
	assert_int_equal(order, 9);
	r.probe = b + 20 * PG;
	r.starts = 0;
	assert_int_equal(tdp_host_mprotect(h, b + 16 * PG, 32 * PG, 7), 0);
	assert_int_equal(r.starts, 1); /* the mapping level changed */
	assert_int_equal(r.start, b);
	assert_int_equal(r.end, b + TDP_HUGE_2M);
	assert_int_equal(r.start_order, 9);
	assert_int_equal(r.end_order, 0);
	assert_int_equal(th_lookup_pfn(h, b + 20 * PG, &order), pfn + 20);
	assert_int_equal(order, 0);
	check_page(h, b + 20 * PG, 20);
	rec_fini(&r);
	assert_int_equal(tdp_host_munmap(h, a, 4 * PG), 0);
	assert_int_equal(tdp_host_munmap(h, b, TDP_HUGE_2M), 0);
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

/* ------------------------------------------------------------------ */
/* migrate / swap / split                                              */
/* ------------------------------------------------------------------ */

static void test_migrate(void **state)
{
	struct tdp_host *h = th_host_new(1ull << 30);
	uint64_t a = th_host_map(h, 4 * PG, 3, PG);
	uint64_t b = th_host_map(h, 2 * TDP_HUGE_2M, 3, TDP_HUGE_2M);
	uint64_t old, nw, oldb;
	unsigned order;
	struct rec r;

	for (unsigned i = 0; i < 3; i++) /* page 3 stays unpopulated */
		th_host_put_page(h, a + i * PG, 10 + i);
	old = th_lookup_pfn(h, a + PG, NULL);
	rec_init(&r, h);
	r.probe = a + PG;
	assert_int_equal(tdp_host_migrate(h, a, 4 * PG), 0);
	nw = th_lookup_pfn(h, a + PG, &order);
	assert_true(nw != old);
	assert_int_equal(order, 0);
	assert_true(th_frame_poisoned(h, old));
	for (unsigned i = 0; i < 3; i++)
		check_page(h, a + i * PG, 10 + i);
	assert_int_equal(host_lookup(h, a + 3 * PG, NULL, NULL, NULL), -ENOENT);
	assert_int_equal(th_host_stats(h).migrations, 3);
	assert_int_equal(th_host_stats(h).frames_used, 3);
	/* the notifier saw the old frame at start and the new at end */
	assert_int_equal(r.starts, 1);
	assert_int_equal(r.ends, 1);
	assert_int_equal(r.start, a);
	assert_int_equal(r.end, a + 4 * PG);
	assert_int_equal(r.start_ret, 0);
	assert_int_equal(r.start_pfn, old);
	assert_int_equal(r.hook_ret, 0);
	assert_int_equal(r.hook_pfn, old);
	assert_int_equal(r.end_ret, 0);
	assert_int_equal(r.end_pfn, nw);

	/* a whole 2 MiB folio moves as a folio */
	th_host_put_page(h, b + 33 * PG, 33);
	th_host_put_page(h, b + TDP_HUGE_2M + 7 * PG, 7);
	oldb = th_lookup_pfn(h, b, NULL);
	r.probe = b + 33 * PG;
	assert_int_equal(tdp_host_migrate(h, b, TDP_HUGE_2M), 0);
	nw = th_lookup_pfn(h, b, &order);
	assert_int_equal(order, 9);
	assert_true(nw != oldb);
	assert_int_equal(nw % 512, 0);
	assert_int_equal(r.start_pfn, oldb + 33);
	assert_int_equal(r.start_order, 9);
	assert_int_equal(r.end_pfn, nw + 33);
	assert_int_equal(r.end_order, 9);
	assert_true(th_frame_poisoned(h, oldb));
	assert_true(th_frame_poisoned(h, oldb + 511));
	check_page(h, b + 33 * PG, 33);
	assert_int_equal(th_host_stats(h).migrations, 3 + 512);
	assert_int_equal(th_host_stats(h).splits, 0);

	/* part of a folio: split first, only the range moves */
	oldb = th_lookup_pfn(h, b + TDP_HUGE_2M, NULL);
	r.probe = b + TDP_HUGE_2M + 7 * PG;
	assert_int_equal(tdp_host_migrate(h, b + TDP_HUGE_2M + 4 * PG, 8 * PG),
			 0);
	assert_int_equal(r.start, b + TDP_HUGE_2M); /* widened to the folio */
	assert_int_equal(r.end, b + 2 * TDP_HUGE_2M);
	assert_int_equal(th_host_stats(h).splits, 1);
	assert_int_equal(th_host_stats(h).migrations, 3 + 512 + 8);
	nw = th_lookup_pfn(h, b + TDP_HUGE_2M + 7 * PG, &order);
	assert_int_equal(order, 0);
	assert_true(nw != oldb + 7);
	assert_true(th_frame_poisoned(h, oldb + 7));
	assert_int_equal(th_lookup_pfn(h, b + TDP_HUGE_2M + 3 * PG, &order),
			 oldb + 3);
	assert_int_equal(order, 0);
	check_page(h, b + TDP_HUGE_2M + 7 * PG, 7);
	assert_int_equal(th_host_stats(h).frames_used, 3 + 1024);
	rec_fini(&r);
	assert_int_equal(tdp_host_munmap(h, a, 4 * PG), 0);
	assert_int_equal(tdp_host_munmap(h, b, 2 * TDP_HUGE_2M), 0);
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

static void test_migrate_enomem(void **state)
{
	struct tdp_host *h = th_host_new(1ull << 30);
	uint64_t big = th_host_map(h, TDP_HUGE_1G, 3, TDP_HUGE_1G);
	uint64_t a, pfn, x = 1;
	struct tdp_host_stats s0, s1;
	struct rec r;
	unsigned order;

	/* the 1 GiB folio takes the whole pool */
	th_host_put_page(h, big + 12345 * PG, 5);
	pfn = th_lookup_pfn(h, big, &order);
	assert_int_equal(order, 18);
	a = th_host_map(h, PG, 3, PG);
	assert_int_equal(tdp_host_write(h, a, &x, 8), -ENOMEM);
	assert_int_equal(tdp_host_read(h, a, &x, 8), -ENOMEM);
	{
		struct host_gup g;

		assert_int_equal(host_gup(h, a, false, &g), -ENOMEM);
	}
	rec_init(&r, h);
	s0 = th_host_stats(h);
	assert_int_equal(tdp_host_migrate(h, big, TDP_HUGE_1G), -ENOMEM);
	assert_int_equal(tdp_host_migrate(h, big + PG, PG), -ENOMEM);
	s1 = th_host_stats(h);
	assert_memory_equal(&s0, &s1, sizeof(s0));
	assert_int_equal(r.starts, 0);
	assert_int_equal(th_lookup_pfn(h, big + 3 * PG, &order), pfn + 3);
	assert_int_equal(order, 18);
	check_page(h, big + 12345 * PG, 5);
	rec_fini(&r);
	/* swap-out of one page splits the folio and frees the frame */
	assert_int_equal(tdp_host_swap_out(h, big + PG, PG), 0);
	assert_int_equal(th_host_stats(h).frames_used, (1u << 18) - 1);
	assert_int_equal(tdp_host_write(h, a, &x, 8), 0);
	assert_int_equal(tdp_host_munmap(h, a, PG), 0);
	assert_int_equal(tdp_host_munmap(h, big, 16 * PG), 0);
	assert_int_equal(th_host_stats(h).frames_used, (1u << 18) - 16);
	assert_int_equal(th_host_stats(h).frame_refs, (1u << 18) - 16);
	assert_int_equal(th_host_stats(h).swapped_pages, 0);
	tdp_host_destroy(h);
}

static void test_swap(void **state)
{
	struct tdp_host *h = th_host_new(1ull << 30);
	uint64_t a = th_host_map(h, 4 * PG, 3, PG);
	uint64_t b = th_host_map(h, TDP_HUGE_2M, 3, TDP_HUGE_2M);
	uint64_t pfn;
	unsigned order;
	struct tdp_host_stats s;
	struct rec r;

	for (unsigned i = 0; i < 3; i++)
		th_host_put_page(h, a + i * PG, 20 + i);
	pfn = th_lookup_pfn(h, a + PG, NULL);
	rec_init(&r, h);
	r.probe = a + PG;
	assert_int_equal(tdp_host_swap_out(h, a, 4 * PG), 0);
	assert_int_equal(r.start_ret, 0);
	assert_int_equal(r.start_pfn, pfn);
	assert_int_equal(r.end_ret, -ENOENT);
	s = th_host_stats(h);
	assert_int_equal(s.frames_used, 0);
	assert_int_equal(s.frame_refs, 0);
	assert_int_equal(s.swapped_pages, 3);
	assert_int_equal(s.swap_outs, 3);
	assert_true(th_frame_poisoned(h, pfn));
	assert_int_equal(host_lookup(h, a + PG, NULL, NULL, NULL), -ENOENT);
	/* swapping out again does nothing more */
	assert_int_equal(tdp_host_swap_out(h, a, 4 * PG), 0);
	assert_int_equal(th_host_stats(h).swap_outs, 3);
	check_page(h, a + PG, 21);
	s = th_host_stats(h);
	assert_int_equal(s.swap_ins, 1);
	assert_int_equal(s.swapped_pages, 2);
	assert_int_equal(s.frames_used, 1);
	check_page(h, a, 20);
	check_page(h, a + 2 * PG, 22);
	assert_int_equal(th_host_stats(h).swap_ins, 3);
	assert_int_equal(th_host_stats(h).swapped_pages, 0);

	/* a huge folio is split, its pages come back as 4 KiB frames */
	th_host_put_page(h, b + 5 * PG, 5);
	th_host_put_page(h, b + 500 * PG, 500);
	assert_int_equal(tdp_host_swap_out(h, b, TDP_HUGE_2M), 0);
	assert_int_equal(th_host_stats(h).splits, 1);
	assert_int_equal(th_host_stats(h).swapped_pages, 512);
	assert_int_equal(th_host_stats(h).frames_used, 3);
	check_page(h, b + 500 * PG, 500);
	th_lookup_pfn(h, b + 500 * PG, &order);
	assert_int_equal(order, 0);
	assert_int_equal(host_lookup(h, b + 5 * PG, NULL, NULL, NULL), -ENOENT);
	/* munmap frees swapped copies */
	assert_int_equal(tdp_host_munmap(h, b, TDP_HUGE_2M), 0);
	assert_int_equal(th_host_stats(h).swapped_pages, 0);
	rec_fini(&r);
	assert_int_equal(tdp_host_munmap(h, a, 4 * PG), 0);
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

/* Single-threaded, and its 1 GiB folio took 17 s under TSan. */
static void test_split(void **state)
{
	SKIP_UNDER_TSAN();
	struct tdp_host *h = th_host_new(2ull << 30);
	uint64_t b = th_host_map(h, 2 * TDP_HUGE_2M, 3, TDP_HUGE_2M);
	uint64_t g = th_host_map(h, TDP_HUGE_1G, 3, TDP_HUGE_1G);
	uint64_t pfn, pfn1;
	unsigned order;
	struct rec r;

	th_host_put_page(h, b + 3 * PG, 3);
	th_host_put_page(h, b + TDP_HUGE_2M + 3 * PG, 4);
	pfn = th_lookup_pfn(h, b + 3 * PG, NULL);
	pfn1 = th_lookup_pfn(h, b + TDP_HUGE_2M + 3 * PG, NULL);
	rec_init(&r, h);
	r.probe = b + 3 * PG;
	/* one page of the first folio: the whole folio is split */
	assert_int_equal(tdp_host_split(h, b + 8 * PG, PG), 0);
	assert_int_equal(r.start, b);
	assert_int_equal(r.end, b + TDP_HUGE_2M);
	assert_int_equal(r.start_pfn, pfn);
	assert_int_equal(r.start_order, 9);
	assert_int_equal(r.end_pfn, pfn);
	assert_int_equal(r.end_order, 0);
	assert_int_equal(th_lookup_pfn(h, b + 3 * PG, &order), pfn);
	assert_int_equal(order, 0);
	th_lookup_pfn(h, b + TDP_HUGE_2M, &order);
	assert_int_equal(order, 9);
	check_page(h, b + 3 * PG, 3);
	assert_int_equal(th_host_stats(h).splits, 1);
	assert_int_equal(th_host_stats(h).frame_refs, 512 + 1);
	assert_int_equal(th_host_stats(h).frames_used, 1024);
	/* splitting split pages again changes nothing */
	assert_int_equal(tdp_host_split(h, b, TDP_HUGE_2M), 0);
	assert_int_equal(th_host_stats(h).splits, 1);
	/* 1 GiB folio */
	th_host_put_page(h, g + 1000 * PG, 1000);
	pfn = th_lookup_pfn(h, g + 1000 * PG, &order);
	assert_int_equal(order, 18);
	assert_int_equal(tdp_host_split(h, g, TDP_HUGE_1G), 0);
	assert_int_equal(th_lookup_pfn(h, g + 1000 * PG, &order), pfn);
	assert_int_equal(order, 0);
	check_page(h, g + 1000 * PG, 1000);
	assert_int_equal(th_host_stats(h).splits, 2);
	/* the split frames are freed one by one */
	assert_int_equal(tdp_host_munmap(h, g, TDP_HUGE_1G / 2), 0);
	assert_true(th_frame_poisoned(h, pfn));
	assert_int_equal(th_host_stats(h).frames_used, 1024 + (1u << 17));
	assert_int_equal(
		tdp_host_munmap(h, g + TDP_HUGE_1G / 2, TDP_HUGE_1G / 2), 0);
	check_page(h, b + TDP_HUGE_2M + 3 * PG, 4);
	assert_int_equal(th_lookup_pfn(h, b + TDP_HUGE_2M + 3 * PG, NULL),
			 pfn1);
	rec_fini(&r);
	assert_int_equal(tdp_host_munmap(h, b, 2 * TDP_HUGE_2M), 0);
	th_assert_host_empty(h);
	/* the freed frames coalesced: a 1 GiB folio can be had again */
	g = th_host_map(h, 2 * TDP_HUGE_1G, 3, TDP_HUGE_1G);
	th_host_put_page(h, g, 1);
	th_host_put_page(h, g + TDP_HUGE_1G, 1);
	th_lookup_pfn(h, g, &order);
	assert_int_equal(order, 18);
	th_lookup_pfn(h, g + TDP_HUGE_1G, &order);
	assert_int_equal(order, 18);
	/* destroy with memory populated and swapped (LSan checks that the
	 * swap copies are freed); skips poisoning 2 GiB */
	assert_int_equal(tdp_host_swap_out(h, g + 5 * PG, PG), 0);
	assert_int_equal(th_host_stats(h).swapped_pages, 1);
	tdp_host_destroy(h);
}

/* ------------------------------------------------------------------ */
/* dirty state and the swap cache                                      */
/* ------------------------------------------------------------------ */

/* Write generation @gen of the page at @hva straight into its frame, as a
 * guest store through a writable VM mapping does: the host does not see
 * it, only a Dirty bit that the VM may report (or lose). */
static void frame_write(struct tdp_host *h, uint64_t hva, uint64_t gen)
{
	uint64_t buf[512];

	th_fill_page(buf, hva, gen);
	wordcopy_to_frame(host_frame_base(h) + th_lookup_pfn(h, hva, NULL) * PG,
			  buf, PG);
}

/* Swap out [hva, hva+len) and return how many clean pages it reused. */
static uint64_t swap_out_clean(struct tdp_host *h, uint64_t hva, uint64_t len)
{
	uint64_t before = th_host_stats(h).swap_out_clean;

	assert_int_equal(tdp_host_swap_out(h, hva, len), 0);
	return th_host_stats(h).swap_out_clean - before;
}

/* A "guest" with a writable mapping of the page at @hva: in
 * invalidate_start (the VM zaps its mapping) it makes a last write of
 * generation @gen, whose Dirty bit it reports or, with !report, loses. */
struct marker {
	struct tdp_host_notifier n;
	struct tdp_host *h;
	uint64_t hva, gen;
	bool report;
	int calls;
};

static void marker_start(struct tdp_host_notifier *n, uint64_t start,
			 uint64_t end)
{
	struct marker *m = (struct marker *)n;
	uint64_t pfn;
	unsigned order, prot;
	uint64_t buf[512];

	if (m->hva < start || m->hva >= end ||
	    host_lookup(m->h, m->hva, &pfn, &order, &prot))
		return;
	m->calls++;
	th_fill_page(buf, m->hva, m->gen);
	wordcopy_to_frame(host_frame_base(m->h) + pfn * PG, buf, PG);
	if (m->report) /* the host holds its mmap lock for write now */
		host_mark_dirty(m->h, pfn, 1);
}

static const struct tdp_host_notifier_ops marker_ops = {
	.invalidate_start = marker_start,
};

static void marker_init(struct marker *m, struct tdp_host *h, uint64_t hva,
			uint64_t gen, bool report)
{
	memset(m, 0, sizeof(*m));
	m->n.ops = &marker_ops;
	m->h = h;
	m->hva = hva;
	m->gen = gen;
	m->report = report;
	host_notifier_register(h, &m->n);
}

static void test_swapcache_clean(void **state)
{
	struct tdp_host *h = th_host_new(1ull << 30);
	uint64_t a = th_host_map(h, 4 * PG, 3, PG);
	uint64_t pfn;
	struct host_gup g;
	struct tdp_host_stats s;

	assert_int_equal(host_page_dirty(NULL, a), -EINVAL);
	th_host_put_page(h, a, 1);
	th_host_put_page(h, a + PG, 2);
	assert_int_equal(host_page_dirty(h, a), 1); /* new: no copy */
	assert_int_equal(host_page_dirty(h, a + 2 * PG), -ENOENT);
	assert_int_equal(host_page_dirty(h, a + 4 * PG), -EFAULT);
	assert_int_equal(swap_out_clean(h, a, 4 * PG), 0);
	s = th_host_stats(h);
	assert_int_equal(s.swap_outs, 2);
	assert_int_equal(s.swap_out_clean, 0);
	assert_int_equal(host_swap_cached(h), 0);
	assert_int_equal(host_page_dirty(h, a), -ENOENT);

	/* swap-in by read: the page is clean and keeps its copy */
	check_page(h, a, 1);
	assert_int_equal(host_page_dirty(h, a), 0);
	s = th_host_stats(h);
	assert_int_equal(s.swap_ins, 1);
	assert_int_equal(s.swapped_pages, 1);
	assert_int_equal(s.frames_used, 1);
	assert_int_equal(host_swap_cached(h), 1);
	/* reading and pinning for read leave it clean */
	check_page(h, a, 1);
	assert_int_equal(host_gup(h, a, false, &g), 0);
	host_put_frame(h, g.ref_pfn);
	assert_int_equal(host_page_dirty(h, a), 0);

	/* swap-out reuses the copy: the frame goes without being copied */
	pfn = th_lookup_pfn(h, a, NULL);
	assert_int_equal(swap_out_clean(h, a, 4 * PG), 1);
	s = th_host_stats(h);
	assert_int_equal(s.swap_outs, 3);
	assert_int_equal(s.swapped_pages, 2);
	assert_int_equal(s.frames_used, 0);
	assert_int_equal(host_swap_cached(h), 0);
	assert_true(th_frame_poisoned(h, pfn));
	check_page(h, a, 1);
	check_page(h, a + PG, 2);
	assert_int_equal(host_swap_cached(h), 2);
	/* both clean now; swap-in by host_gup(read) is clean too */
	assert_int_equal(swap_out_clean(h, a, 4 * PG), 2);
	assert_int_equal(host_gup(h, a + PG, false, &g), 0);
	host_put_frame(h, g.ref_pfn);
	assert_int_equal(host_page_dirty(h, a + PG), 0);
	assert_int_equal(swap_out_clean(h, a, 4 * PG), 1);
	check_page(h, a, 1);
	check_page(h, a + PG, 2);
	s = th_host_stats(h);
	assert_int_equal(s.swap_outs, 6);
	assert_int_equal(s.swap_out_clean, 4);
	assert_int_equal(s.swap_ins, 6);
	assert_int_equal(tdp_host_munmap(h, a, 4 * PG), 0);
	assert_int_equal(host_swap_cached(h), 0);
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

/* Each way of dirtying a clean page makes swap-out write it again. */
static void test_swapcache_dirty(void **state)
{
	struct tdp_host *h = th_host_new(1ull << 30);
	uint64_t a = th_host_map(h, 8 * PG, 3, PG), x = 0x1234;
	uint64_t buf[512];
	struct host_gup g;

	for (unsigned i = 0; i < 8; i++)
		th_host_put_page(h, a + i * PG, 10 + i);
	assert_int_equal(swap_out_clean(h, a, 8 * PG), 0);
	for (unsigned i = 0; i < 8; i++)
		check_page(h, a + i * PG, 10 + i); /* clean */
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(host_page_dirty(h, a + i * PG), 0);
	assert_int_equal(host_swap_cached(h), 8);

	/* 0: tdp_host_write of the whole page; 1: of 8 bytes */
	th_host_put_page(h, a, 20);
	assert_int_equal(tdp_host_write(h, a + PG + 16, &x, 8), 0);
	/* 2: host_gup for write, the pinner writes the frame */
	assert_int_equal(host_gup(h, a + 2 * PG, true, &g), 0);
	assert_int_equal(host_page_dirty(h, a + 2 * PG), 1);
	th_fill_page(buf, a + 2 * PG, 22);
	wordcopy_to_frame(host_frame_base(h) + g.pfn * PG, buf, PG);
	host_put_frame(h, g.ref_pfn);
	/* 3: a guest store whose Dirty bit the VM reports */
	frame_write(h, a + 3 * PG, 23);
	host_mark_dirty(h, th_lookup_pfn(h, a + 3 * PG, NULL), 1);
	/* 4: host_mark_dirty alone (the VM saw D, content unchanged) */
	host_mark_dirty(h, th_lookup_pfn(h, a + 4 * PG, NULL), 1);
	/* 5, 6, 7: untouched, clean */
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(host_page_dirty(h, a + i * PG), 1);
	for (unsigned i = 5; i < 8; i++)
		assert_int_equal(host_page_dirty(h, a + i * PG), 0);
	assert_int_equal(host_swap_cached(h), 8); /* stale copies are kept */
	assert_int_equal(swap_out_clean(h, a, 8 * PG), 3);
	assert_int_equal(th_host_stats(h).swapped_pages, 8);
	assert_int_equal(host_swap_cached(h), 0);

	check_page(h, a, 20);
	assert_int_equal(tdp_host_read(h, a + PG, buf, PG), 0);
	assert_int_equal(buf[2], x);
	buf[2] = th_pattern(a + PG, 11, 2);
	assert_int_equal(th_check_page(buf, a + PG, 11), 0);
	check_page(h, a + 2 * PG, 22);
	check_page(h, a + 3 * PG, 23);
	for (unsigned i = 4; i < 8; i++)
		check_page(h, a + i * PG, 10 + i);

	/* swap-in by host_gup(write) is dirty at once */
	assert_int_equal(swap_out_clean(h, a, 8 * PG), 8);
	assert_int_equal(host_gup(h, a + 6 * PG, true, &g), 0);
	assert_int_equal(host_page_dirty(h, a + 6 * PG), 1);
	th_fill_page(buf, a + 6 * PG, 26);
	wordcopy_to_frame(host_frame_base(h) + g.pfn * PG, buf, PG);
	host_put_frame(h, g.ref_pfn);
	/* so is swap-in by tdp_host_write */
	th_host_put_page(h, a + 7 * PG, 27);
	assert_int_equal(host_page_dirty(h, a + 7 * PG), 1);
	assert_int_equal(swap_out_clean(h, a, 8 * PG), 0);
	check_page(h, a + 6 * PG, 26);
	check_page(h, a + 7 * PG, 27);
	assert_int_equal(tdp_host_munmap(h, a, 8 * PG), 0);
	th_assert_host_empty(h);
	assert_int_equal(host_swap_cached(h), 0);
	tdp_host_destroy(h);
}

/* The model has teeth: a guest write whose Dirty bit nobody reports is
 * lost at the next swap-out, exactly as in Linux. */
static void test_swapcache_lost_dirty(void **state)
{
	struct tdp_host *h = th_host_new(1ull << 30);
	uint64_t a = th_host_map(h, 4 * PG, 3, PG);
	struct marker m;

	th_host_put_page(h, a, 1);
	assert_int_equal(swap_out_clean(h, a, PG), 0);
	check_page(h, a, 1);  /* clean, copy retained */
	frame_write(h, a, 2); /* the guest writes, D is lost */
	check_page(h, a, 2);  /* the frame has it ... */
	assert_int_equal(host_page_dirty(h, a), 0);
	assert_int_equal(swap_out_clean(h, a, PG), 1);
	check_page(h, a, 1); /* ... but reclaim threw it away */

	/* a VM that writes the clean page and reports the Dirty bit from
	 * invalidate_start: the write is kept */
	th_host_put_page(h, a + PG, 4);
	assert_int_equal(swap_out_clean(h, a + PG, PG), 0);
	check_page(h, a + PG, 4); /* clean */
	marker_init(&m, h, a + PG, 5, true);
	assert_int_equal(swap_out_clean(h, a + PG, PG), 0);
	assert_int_equal(m.calls, 1);
	check_page(h, a + PG, 5); /* clean again */
	/* the same VM losing the bit: its last write is gone */
	m.report = false;
	m.gen = 6;
	assert_int_equal(swap_out_clean(h, a + PG, PG), 1);
	assert_int_equal(m.calls, 2);
	check_page(h, a + PG, 5);
	host_notifier_unregister(h, &m.n);
	assert_int_equal(tdp_host_munmap(h, a, 4 * PG), 0);
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

static struct tdp_host *hook_mark_host;
static uint64_t hook_mark_hva;

static void hook_mark(void *arg, uint64_t start, uint64_t end)
{
	uint64_t pfn;
	unsigned order, prot;

	if (!host_lookup(hook_mark_host, hook_mark_hva, &pfn, &order, &prot))
		host_mark_dirty(hook_mark_host, pfn, 1);
}

static void test_swapcache_migrate(void **state)
{
	struct tdp_host *h = th_host_new(1ull << 30);
	uint64_t a = th_host_map(h, 4 * PG, 3, PG);
	uint64_t old, nw;
	struct marker m;

	for (unsigned i = 0; i < 4; i++)
		th_host_put_page(h, a + i * PG, 30 + i);
	assert_int_equal(swap_out_clean(h, a, 4 * PG), 0);
	for (unsigned i = 0; i < 4; i++)
		check_page(h, a + i * PG, 30 + i);

	/* page 0: clean, and the copy goes with it */
	old = th_lookup_pfn(h, a, NULL);
	assert_int_equal(tdp_host_migrate(h, a, PG), 0);
	nw = th_lookup_pfn(h, a, NULL);
	assert_true(nw != old);
	assert_int_equal(host_page_dirty(h, a), 0);
	assert_int_equal(host_swap_cached(h), 4);
	/* a late mark of the old frame does not touch the page */
	host_mark_dirty(h, old, 1);
	assert_int_equal(host_page_dirty(h, a), 0);
	check_page(h, a, 30);

	/* page 1: dirty before the migration, dirty after */
	host_mark_dirty(h, th_lookup_pfn(h, a + PG, NULL), 1);
	assert_int_equal(tdp_host_migrate(h, a + PG, PG), 0);
	assert_int_equal(host_page_dirty(h, a + PG), 1);

	/* page 2: the VM reports D in invalidate_start of the migration;
	 * the write it made then is copied and the page stays dirty */
	marker_init(&m, h, a + 2 * PG, 42, true);
	assert_int_equal(tdp_host_migrate(h, a + 2 * PG, PG), 0);
	host_notifier_unregister(h, &m.n);
	assert_int_equal(m.calls, 1);
	assert_int_equal(host_page_dirty(h, a + 2 * PG), 1);
	check_page(h, a + 2 * PG, 42);

	/* page 3: marked from the test hook (after invalidate_start) */
	hook_mark_host = h;
	hook_mark_hva = a + 3 * PG;
	host_set_test_hook(h, hook_mark, NULL);
	assert_int_equal(tdp_host_migrate(h, a + 3 * PG, PG), 0);
	host_set_test_hook(h, NULL, NULL);
	assert_int_equal(host_page_dirty(h, a + 3 * PG), 1);

	/* swap-out: only page 0 is clean; all contents right */
	assert_int_equal(swap_out_clean(h, a, 4 * PG), 1);
	check_page(h, a, 30);
	check_page(h, a + PG, 31);
	check_page(h, a + 2 * PG, 42);
	check_page(h, a + 3 * PG, 33);

	/* a lost Dirty bit before a migration still loses the write: the
	 * frame's content moves, the stale copy with it */
	frame_write(h, a, 50);
	assert_int_equal(tdp_host_migrate(h, a, 4 * PG), 0);
	check_page(h, a, 50);
	assert_int_equal(host_page_dirty(h, a), 0);
	assert_int_equal(swap_out_clean(h, a, PG), 1);
	check_page(h, a, 30);
	assert_int_equal(tdp_host_munmap(h, a, 4 * PG), 0);
	th_assert_host_empty(h);
	assert_int_equal(host_swap_cached(h), 0);
	tdp_host_destroy(h);
}

static void test_swapcache_huge(void **state)
{
	struct tdp_host *h = th_host_new(1ull << 30);
	uint64_t b = th_host_map(h, TDP_HUGE_2M, 3, TDP_HUGE_2M);
	unsigned order;

	th_host_put_page(h, b + 5 * PG, 5);
	th_host_put_page(h, b + 7 * PG, 7);
	th_lookup_pfn(h, b, &order);
	assert_int_equal(order, 9);
	assert_int_equal(host_page_dirty(h, b + 5 * PG), 1);
	assert_int_equal(host_page_dirty(h, b + 6 * PG), 1); /* zero, new */
	/* marks on a huge folio change nothing: it has no copies */
	host_mark_dirty(h, th_lookup_pfn(h, b, NULL), 512);
	assert_int_equal(swap_out_clean(h, b, TDP_HUGE_2M), 0);
	assert_int_equal(th_host_stats(h).swapped_pages, 512);
	/* pages come back one by one, as clean 4 KiB pages */
	check_page(h, b + 5 * PG, 5);
	check_page(h, b + 7 * PG, 7);
	th_lookup_pfn(h, b + 5 * PG, &order);
	assert_int_equal(order, 0);
	assert_int_equal(host_page_dirty(h, b + 5 * PG), 0);
	assert_int_equal(host_page_dirty(h, b + 7 * PG), 0);
	th_host_put_page(h, b + 7 * PG, 8);
	assert_int_equal(host_page_dirty(h, b + 7 * PG), 1);
	assert_int_equal(swap_out_clean(h, b, TDP_HUGE_2M), 1);
	assert_int_equal(th_host_stats(h).swapped_pages, 512);
	check_page(h, b + 5 * PG, 5);
	check_page(h, b + 7 * PG, 8);
	assert_int_equal(tdp_host_munmap(h, b, TDP_HUGE_2M), 0);
	th_assert_host_empty(h);
	assert_int_equal(host_swap_cached(h), 0);
	tdp_host_destroy(h);
}

/* Retained copies go with the mapping (LSan checks that they are freed). */
static void test_swapcache_unmap(void **state)
{
	struct tdp_host *h = th_host_new(1ull << 30);
	uint64_t a = th_host_map(h, 8 * PG, 3, PG);
	struct host_gup g;

	for (unsigned i = 0; i < 8; i++)
		th_host_put_page(h, a + i * PG, 60 + i);
	assert_int_equal(swap_out_clean(h, a, 8 * PG), 0);
	for (unsigned i = 0; i < 8; i++)
		check_page(h, a + i * PG, 60 + i);
	assert_int_equal(host_swap_cached(h), 8);
	th_host_put_page(h, a + PG, 70); /* dirty: its stale copy is kept too */
	assert_int_equal(host_swap_cached(h), 8);

	/* munmap of part of the range frees those copies */
	assert_int_equal(tdp_host_munmap(h, a, 2 * PG), 0);
	assert_int_equal(host_swap_cached(h), 6);
	/* a pinned page loses its copy with its mapping; the frame stays */
	assert_int_equal(host_gup(h, a + 2 * PG, false, &g), 0);
	assert_int_equal(tdp_host_munmap(h, a + 2 * PG, 2 * PG), 0);
	assert_int_equal(host_swap_cached(h), 4);
	assert_int_equal(th_host_stats(h).frames_used, 5);
	assert_int_equal(th_check_page(th_frame(h, g.pfn), a + 2 * PG, 62), 0);
	host_mark_dirty(h, g.pfn, 1); /* unmapped: ignored */
	host_put_frame(h, g.ref_pfn);
	assert_true(th_frame_poisoned(h, g.pfn));
	assert_int_equal(th_host_stats(h).frames_used, 4);
	/* destroy with retained copies (and a swapped page) left */
	assert_int_equal(swap_out_clean(h, a + 4 * PG, PG), 1);
	tdp_host_destroy(h);
}

static void test_mark_dirty_args(void **state)
{
	struct tdp_host *h = th_host_new(1ull << 30);
	uint64_t n = th_host_stats(h).frames_total;
	uint64_t a = th_host_map(h, 2 * PG, 3, PG), pfn;
	uint64_t c = th_host_map(h, 80 * PG, 3, PG), lo = UINT64_MAX, hi = 0;

	/* out of range: ignored, never a crash (ASan checks the bitmap) */
	host_mark_dirty(NULL, 0, 1);
	host_mark_dirty(h, n, 1);
	host_mark_dirty(h, UINT64_MAX, UINT64_MAX);
	host_mark_dirty(h, n - 1, UINT64_MAX);
	host_mark_dirty(h, 0, 0);
	host_mark_dirty(h, 0, UINT64_MAX); /* every frame */
	assert_int_equal(host_swap_cached(NULL), 0);

	/* bits set on free frames do not survive allocation */
	th_host_put_page(h, a, 1);
	pfn = th_lookup_pfn(h, a, NULL);
	assert_int_equal(swap_out_clean(h, a, PG), 0);
	host_mark_dirty(h, pfn, 1); /* a stale mark of the freed frame */
	host_mark_dirty(h, 0, n);
	check_page(h, a, 1);
	assert_int_equal(th_lookup_pfn(h, a, NULL), pfn); /* the same frame */
	assert_int_equal(host_page_dirty(h, a), 0);
	/* marking a neighbour frame leaves the page clean */
	th_host_put_page(h, a + PG, 2);
	assert_true(th_lookup_pfn(h, a + PG, NULL) != pfn);
	host_mark_dirty(h, th_lookup_pfn(h, a + PG, NULL), 1);
	assert_int_equal(host_page_dirty(h, a), 0);
	host_mark_dirty(h, pfn, 1);
	assert_int_equal(host_page_dirty(h, a), 1);

	/* a range mark reaches every frame of it, across bitmap words, and
	 * no further */
	for (unsigned i = 0; i < 80; i++)
		th_host_put_page(h, c + i * PG, i);
	assert_int_equal(swap_out_clean(h, c, 80 * PG), 0);
	for (unsigned i = 0; i < 80; i++) {
		uint64_t p;

		check_page(h, c + i * PG, i);
		p = th_lookup_pfn(h, c + i * PG, NULL);
		lo = p < lo ? p : lo;
		hi = p > hi ? p : hi;
	}
	for (unsigned i = 0; i < 80; i++)
		assert_int_equal(host_page_dirty(h, c + i * PG), 0);
	host_mark_dirty(h, lo + 1, hi - lo - 1);
	for (unsigned i = 0; i < 80; i++) {
		uint64_t p = th_lookup_pfn(h, c + i * PG, NULL);

		assert_int_equal(host_page_dirty(h, c + i * PG),
				 p != lo && p != hi);
	}
	/* frames allocated and freed next to dirty ones leave their bits:
	 * page a is dirty, its neighbours come and go */
	assert_int_equal(host_page_dirty(h, a), 1);
	assert_int_equal(tdp_host_munmap(h, a + PG, PG), 0);
	assert_int_equal(tdp_host_migrate(h, c, 80 * PG), 0);
	assert_int_equal(swap_out_clean(h, c, 80 * PG), 2);
	for (unsigned i = 0; i < 80; i++)
		th_host_put_page(h, c + i * PG, 100 + i);
	assert_int_equal(host_page_dirty(h, a), 1);
	assert_int_equal(swap_out_clean(h, a, PG), 0);
	check_page(h, a, 1);
	assert_int_equal(tdp_host_munmap(h, a, PG), 0);
	assert_int_equal(tdp_host_munmap(h, c, 80 * PG), 0);
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

/* A minimal VM on 512 pages: mappings installed after host_gup with the
 * notifier sequence check, guest stores through them setting a Dirty bit,
 * invalidate_start zaps and reports D with host_mark_dirty (from inside
 * the callback, under the host's write lock).  Runs against swap-out,
 * migrate, split and host reads; every read must see the last write. */
#define MV_PAGES 512

struct mvm {
	struct tdp_host_notifier n;
	struct tdp_host *h;
	pthread_mutex_t lock;
	uint64_t base;
	uint64_t pfn[MV_PAGES];
	bool mapped[MV_PAGES], dirty[MV_PAGES];
	unsigned in_progress;
	uint64_t seq;
	uint64_t stop_ns;
	int stop;
	uint64_t mismatches, rounds, retries, marks; /* guest */
	uint64_t errors, ops;			     /* mover */
};

static void mv_start(struct tdp_host_notifier *n, uint64_t start, uint64_t end)
{
	struct mvm *v = (struct mvm *)n;

	pthread_mutex_lock(&v->lock);
	v->in_progress++;
	for (unsigned i = 0; i < MV_PAGES; i++) {
		uint64_t hva = v->base + i * PG;

		if (hva < start || hva >= end || !v->mapped[i])
			continue;
		if (v->dirty[i]) {
			host_mark_dirty(v->h, v->pfn[i], 1);
			v->marks++;
		}
		v->mapped[i] = false;
	}
	pthread_mutex_unlock(&v->lock);
}

static void mv_end(struct tdp_host_notifier *n, uint64_t start, uint64_t end)
{
	struct mvm *v = (struct mvm *)n;

	pthread_mutex_lock(&v->lock);
	v->in_progress--;
	v->seq++;
	pthread_mutex_unlock(&v->lock);
}

static const struct tdp_host_notifier_ops mv_ops = {
	.invalidate_start = mv_start,
	.invalidate_end = mv_end,
};

/* One guest access to page @i through the VM's mapping (faulting it in:
 * host_gup for write only on a write fault, but mapped writable always,
 * as KVM does).  Returns with v->lock held and page i mapped. */
static void mv_map(struct mvm *v, unsigned i, bool write)
{
	for (;;) {
		struct host_gup g;
		uint64_t seq;

		pthread_mutex_lock(&v->lock);
		if (v->mapped[i])
			return;
		seq = v->seq;
		pthread_mutex_unlock(&v->lock);
		if (host_gup(v->h, v->base + i * PG, write, &g)) {
			v->mismatches++;
			continue;
		}
		pthread_mutex_lock(&v->lock);
		if (!v->in_progress && v->seq == seq) {
			v->mapped[i] = true;
			v->dirty[i] = false;
			v->pfn[i] = g.pfn;
			host_put_frame(v->h, g.ref_pfn);
			return;
		}
		pthread_mutex_unlock(&v->lock);
		host_put_frame(v->h, g.ref_pfn);
		v->retries++;
	}
}

static void *mv_guest(void *arg)
{
	struct mvm *v = arg;
	uint64_t gen[MV_PAGES] = {0}, buf[512], st = 5;

	while (!__atomic_load_n(&v->stop, __ATOMIC_ACQUIRE)) {
		uint64_t r = th_rand(&st);
		unsigned i = r % MV_PAGES;
		uint64_t hva = v->base + i * PG;
		bool write = (r >> 16) & 1;
		uint8_t *frame;

		mv_map(v, i, write);
		frame = host_frame_base(v->h) + v->pfn[i] * PG;
		if (write) {
			gen[i]++;
			th_fill_page(buf, hva, gen[i]);
			wordcopy_to_frame(frame, buf, PG);
			v->dirty[i] = true; /* the hardware sets D */
		} else {
			wordcopy_from_frame(buf, frame, PG);
			if (th_check_page(buf, hva, gen[i]))
				v->mismatches++;
		}
		pthread_mutex_unlock(&v->lock);
		v->rounds++;
	}
	return NULL;
}

static void *mv_mover(void *arg)
{
	struct mvm *v = arg;
	uint64_t st = 11, buf[512];

	while (th_now_ns() < v->stop_ns) {
		uint64_t r = th_rand(&st);
		uint64_t off = (r >> 8) % MV_PAGES * PG;
		uint64_t len = ((r >> 24) % 32 + 1) * PG;
		int ret = 0;

		if (off + len > MV_PAGES * PG)
			len = MV_PAGES * PG - off;
		switch ((r >> 4) % 4) {
		case 0:
			ret = tdp_host_swap_out(v->h, v->base + off, len);
			break;
		case 1:
			ret = tdp_host_migrate(v->h, v->base + off, len);
			break;
		case 2: /* out, in clean behind the guest's back, out
			 * again: mostly clean, unless the guest wrote */
			ret = tdp_host_swap_out(v->h, v->base + off, len);
			for (uint64_t p = 0; p < len && !ret; p += PG)
				ret = tdp_host_read(v->h, v->base + off + p,
						    buf, PG);
			if (!ret)
				ret = tdp_host_swap_out(v->h, v->base + off,
							len);
			break;
		default:
			ret = tdp_host_split(v->h, v->base + off, len);
			break;
		}
		if (ret)
			v->errors++;
		v->ops++;
		sched_yield();
	}
	__atomic_store_n(&v->stop, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_swapcache_concurrent(void **state)
{
	static struct mvm v;
	pthread_t t[2];
	struct tdp_host_stats s;

	memset(&v, 0, sizeof(v));
	v.h = th_host_new(1ull << 30);
	v.base = th_host_map(v.h, MV_PAGES * PG, 3, TDP_HUGE_2M);
	for (unsigned i = 0; i < MV_PAGES; i++)
		th_host_put_page(v.h, v.base + i * PG, 0);
	assert_int_equal(pthread_mutex_init(&v.lock, NULL), 0);
	v.n.ops = &mv_ops;
	host_notifier_register(v.h, &v.n);
	v.stop_ns = th_now_ns() + 1500000000ull;
	assert_int_equal(pthread_create(&t[0], NULL, mv_guest, &v), 0);
	assert_int_equal(pthread_create(&t[1], NULL, mv_mover, &v), 0);
	pthread_join(t[1], NULL);
	pthread_join(t[0], NULL);
	host_notifier_unregister(v.h, &v.n);
	s = th_host_stats(v.h);
	print_message("swap cache: %llu guest accesses, %llu host ops, %llu "
		      "marks, %llu swap-outs of which %llu clean\n",
		      (unsigned long long)v.rounds, (unsigned long long)v.ops,
		      (unsigned long long)v.marks,
		      (unsigned long long)s.swap_outs,
		      (unsigned long long)s.swap_out_clean);
	assert_int_equal(v.mismatches, 0);
	assert_int_equal(v.errors, 0);
	assert_true(v.rounds > 100);
	assert_true(v.marks > 0);
	assert_true(s.swap_out_clean > 0);
	assert_true(s.swap_out_clean < s.swap_outs);
	assert_int_equal(tdp_host_munmap(v.h, v.base, MV_PAGES * PG), 0);
	th_assert_host_empty(v.h);
	assert_int_equal(host_swap_cached(v.h), 0);
	pthread_mutex_destroy(&v.lock);
	tdp_host_destroy(v.h);
}

/* ------------------------------------------------------------------ */
/* notifiers and pins                                                  */
/* ------------------------------------------------------------------ */

static void test_notifier(void **state)
{
	struct tdp_host *h = th_host_new(1ull << 30);
	uint64_t a = th_host_map(h, 4 * PG, 3, PG);
	struct rec r, r2;

	th_host_put_page(h, a, 1);
	rec_init(&r, h);
	memset(&r2, 0, sizeof(r2));
	r2.n.ops = &rec_ops;
	r2.h = h;
	host_notifier_register(h, &r2.n);
	host_notifier_register(h, &r2.n); /* twice: still one subscription */
	r.probe = r2.probe = a;

	/* munmap: mapped at start and in the hook, gone at end */
	assert_int_equal(tdp_host_munmap(h, a, PG), 0);
	assert_int_equal(r.starts, 1);
	assert_int_equal(r2.starts, 1);
	assert_int_equal(r.hooks, 1);
	assert_int_equal(r.start_ret, 0);
	assert_int_equal(r.hook_ret, 0);
	assert_int_equal(r.end_ret, -EFAULT);
	assert_int_equal(r2.end_ret, -EFAULT);
	assert_int_equal(th_host_stats(h).notifier_calls, 2);

	host_notifier_unregister(h, &r2.n);
	assert_int_equal(tdp_host_split(h, a + PG, PG), 0);
	assert_int_equal(r.starts, 2);
	assert_int_equal(r2.starts, 1);
	assert_int_equal(th_host_stats(h).notifier_calls, 3);
	assert_int_equal(r.start_ret, -EFAULT); /* probe is unmapped */
	rec_fini(&r);
	assert_int_equal(tdp_host_munmap(h, a + PG, 3 * PG), 0);
	assert_int_equal(r.starts, 2);
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

static struct tdp_host *reentry_host;
static int reentry_ret[4];

static void reentry_hook(void *arg, uint64_t start, uint64_t end)
{
	struct host_gup g;
	uint64_t x;

	reentry_ret[0] = tdp_host_munmap(reentry_host, start, PG);
	reentry_ret[1] = tdp_host_read(reentry_host, start, &x, 8);
	reentry_ret[2] = host_gup(reentry_host, start + PG, false, &g);
	reentry_ret[3] = host_range_mapped(reentry_host, start, PG);
	if (!reentry_ret[2])
		host_put_frame(reentry_host, g.ref_pfn);
}

static void test_reentry(void **state)
{
	struct tdp_host *h = th_host_new(1ull << 30);
	uint64_t a = th_host_map(h, 2 * PG, 3, PG), x = 42;

	assert_int_equal(tdp_host_write(h, a, &x, 8), 0);
	reentry_host = h;
	host_set_test_hook(h, reentry_hook, NULL);
	assert_int_equal(tdp_host_migrate(h, a, PG), 0);
	host_set_test_hook(h, NULL, NULL);
	assert_int_equal(reentry_ret[0], -EDEADLK);
	assert_int_equal(reentry_ret[1], 0);	    /* present: fine */
	assert_int_equal(reentry_ret[2], -EDEADLK); /* would populate */
	assert_int_equal(reentry_ret[3], 1);
	x = 0;
	assert_int_equal(tdp_host_read(h, a, &x, 8), 0);
	assert_int_equal(x, 42);
	assert_int_equal(tdp_host_munmap(h, a, 2 * PG), 0);
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

static void test_gup(void **state)
{
	struct tdp_host *h = th_host_new(1ull << 30);
	uint64_t a = th_host_map(h, 2 * PG, 3, PG);
	uint64_t ro = th_host_map(h, PG, TDP_PROT_READ | TDP_PROT_EXEC, PG);
	uint64_t no = th_host_map(h, PG, TDP_PROT_NONE, PG);
	uint64_t b = th_host_map(h, TDP_HUGE_2M, 3, TDP_HUGE_2M);
	struct host_gup g, g2;
	struct tdp_host_stats s;

	assert_int_equal(host_gup(NULL, a, false, &g), -EINVAL);
	assert_int_equal(host_gup(h, a, false, NULL), -EINVAL);
	assert_int_equal(host_gup(h, 4096 * PG, false, &g), -EFAULT);
	assert_int_equal(host_gup(h, ro, true, &g), -EFAULT);
	assert_int_equal(host_gup(h, no, false, &g), -EFAULT);
	assert_int_equal(th_host_stats(h).frames_used, 0);

	assert_int_equal(host_gup(h, ro + 100, false, &g), 0);
	assert_false(g.writable);
	assert_true(g.executable);
	assert_int_equal(g.order, 0);
	assert_int_equal(g.pfn, g.ref_pfn);
	host_put_frame(h, g.ref_pfn);

	/* pin: the frame outlives munmap, un-poisoned, until the put */
	th_host_put_page(h, a, 77);
	assert_int_equal(host_gup(h, a + 8, true, &g), 0);
	assert_true(g.writable);
	assert_false(g.executable);
	assert_int_equal(g.pfn, th_lookup_pfn(h, a, NULL));
	assert_int_equal(g.ref_pfn, g.pfn);
	s = th_host_stats(h);
	assert_int_equal(s.pinned_refs, 1);
	assert_int_equal(s.frame_refs, 3); /* a, ro and the pin */
	assert_int_equal(tdp_host_munmap(h, a, 2 * PG), 0);
	s = th_host_stats(h);
	assert_int_equal(s.pinned_refs, 1);
	assert_int_equal(s.frame_refs, 2);
	assert_int_equal(s.frames_used, 2);
	assert_false(th_frame_poisoned(h, g.pfn));
	assert_int_equal(th_check_page(th_frame(h, g.pfn), a, 77), 0);
	host_put_frame(h, g.ref_pfn);
	assert_true(th_frame_poisoned(h, g.pfn));
	s = th_host_stats(h);
	assert_int_equal(s.pinned_refs, 0);
	assert_int_equal(s.frames_used, 1);

	/* huge folio: the head holds the pins; split keeps them there */
	assert_int_equal(host_gup(h, b + 5 * PG + 1, true, &g), 0);
	assert_int_equal(g.order, 9);
	assert_int_equal(g.ref_pfn % 512, 0);
	assert_int_equal(g.pfn, g.ref_pfn + 5);
	assert_int_equal(host_gup(h, b, false, &g2), 0);
	assert_int_equal(g2.pfn, g.ref_pfn);
	assert_int_equal(th_host_stats(h).frame_refs, 1 + 3);
	assert_int_equal(tdp_host_split(h, b, PG), 0);
	assert_int_equal(th_host_stats(h).frame_refs, 1 + 3 + 511);
	assert_int_equal(tdp_host_munmap(h, b, TDP_HUGE_2M), 0);
	/* the tails went with the mapping, the pinned head stays */
	assert_int_equal(th_host_stats(h).frames_used, 1 + 1);
	assert_true(th_frame_poisoned(h, g.pfn));
	assert_false(th_frame_poisoned(h, g.ref_pfn));
	host_put_frame(h, g.ref_pfn);
	assert_false(th_frame_poisoned(h, g.ref_pfn));
	host_put_frame(h, g2.ref_pfn);
	assert_true(th_frame_poisoned(h, g.ref_pfn));
	assert_int_equal(tdp_host_munmap(h, ro, PG), 0);
	assert_int_equal(tdp_host_munmap(h, no, PG), 0);
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

static int destroy_with_notifier(int unused)
{
	struct tdp_host *h = NULL;
	static struct rec r;

	(void)unused;
	if (tdp_host_create(NULL, &h))
		return 3;
	r.n.ops = &rec_ops;
	host_notifier_register(h, &r.n);
	tdp_host_destroy(h); /* must abort */
	return 0;
}

static void test_destroy_with_notifier(void **state)
{
	struct th_child c;

	(void)state;
	th_run_child(destroy_with_notifier, 0, 10, &c);
	if (!WIFSIGNALED(c.status) || WTERMSIG(c.status) != SIGABRT)
		th_child_describe("destroy with a notifier", &c);
	assert_true(WIFSIGNALED(c.status));
	assert_int_equal(WTERMSIG(c.status), SIGABRT);
}

/* ------------------------------------------------------------------ */
/* concurrency                                                         */
/* ------------------------------------------------------------------ */

#define CC_PAGES 1024 /* 2 folios of 2 MiB + 512 4 KiB pages */

struct cc {
	struct tdp_host *h;
	uint64_t huge, small;
	uint64_t stop_ns;
	volatile int stop;
	uint64_t mismatches, rounds; /* access thread */
	uint64_t errors, ops;	     /* mover thread */
};

static uint64_t cc_hva(struct cc *c, unsigned i)
{
	return i < 512 ? c->huge + i * 2 * PG : c->small + (i - 512) * PG;
}

static void *cc_access(void *arg)
{
	struct cc *c = arg;
	uint64_t gen[CC_PAGES] = {0}, buf[512], st = 99;

	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		unsigned i = th_rand(&st) % CC_PAGES;
		uint64_t hva = cc_hva(c, i);

		if (tdp_host_read(c->h, hva, buf, PG) ||
		    th_check_page(buf, hva, gen[i]))
			c->mismatches++;
		gen[i]++;
		th_fill_page(buf, hva, gen[i]);
		if (tdp_host_write(c->h, hva, buf, PG))
			c->mismatches++;
		c->rounds++;
	}
	return NULL;
}

static void *cc_mover(void *arg)
{
	struct cc *c = arg;
	uint64_t st = 7;

	while (th_now_ns() < c->stop_ns) {
		uint64_t r = th_rand(&st);
		uint64_t base = r & 1 ? c->huge : c->small;
		uint64_t size = r & 1 ? 2 * TDP_HUGE_2M : 512 * PG;
		uint64_t off = (r >> 8) % (size / PG) * PG;
		uint64_t len = ((r >> 24) % 64 + 1) * PG;
		int ret;

		if (off + len > size)
			len = size - off;
		switch ((r >> 4) % 4) {
		case 0:
		case 1:
			ret = tdp_host_migrate(c->h, base + off, len);
			break;
		case 2:
			ret = tdp_host_swap_out(c->h, base + off, len);
			break;
		default:
			ret = tdp_host_split(c->h, base + off, len);
			break;
		}
		if (ret)
			c->errors++;
		c->ops++;
		sched_yield();
	}
	__atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_concurrent(void **state)
{
	struct cc c = {0};
	pthread_t t[2];
	struct rec r;

	c.h = th_host_new(1ull << 30);
	c.huge = th_host_map(c.h, 2 * TDP_HUGE_2M, 3, TDP_HUGE_2M);
	c.small = th_host_map(c.h, 512 * PG, 3, PG);
	/* generation 0: the pattern of gen 0, written before the start */
	for (unsigned i = 0; i < CC_PAGES; i++) {
		uint64_t buf[512];

		th_fill_page(buf, cc_hva(&c, i), 0);
		assert_int_equal(tdp_host_write(c.h, cc_hva(&c, i), buf, PG),
				 0);
	}
	rec_init(&r, c.h);
	host_set_test_hook(c.h, NULL, NULL);
	c.stop_ns = th_now_ns() + 2000000000ull;
	assert_int_equal(pthread_create(&t[0], NULL, cc_access, &c), 0);
	assert_int_equal(pthread_create(&t[1], NULL, cc_mover, &c), 0);
	pthread_join(t[1], NULL);
	pthread_join(t[0], NULL);
	assert_int_equal(c.mismatches, 0);
	assert_int_equal(c.errors, 0);
	assert_true(c.rounds > 100);
	assert_true(c.ops > 10);
	assert_int_equal(r.starts, (int)c.ops);
	assert_int_equal(th_host_stats(c.h).notifier_calls, c.ops);
	host_notifier_unregister(c.h, &r.n);
	{
		struct tdp_host_stats s = th_host_stats(c.h);

		print_message(
			"concurrent: %llu accesses, %llu host ops: %llu pages "
			"migrated, %llu swapped out, %llu in, %llu splits\n",
			(unsigned long long)c.rounds, (unsigned long long)c.ops,
			(unsigned long long)s.migrations,
			(unsigned long long)s.swap_outs,
			(unsigned long long)s.swap_ins,
			(unsigned long long)s.splits);
		assert_true(s.migrations > 0);
		assert_true(s.swap_ins > 0);
	}
	assert_int_equal(tdp_host_munmap(c.h, c.huge, 2 * TDP_HUGE_2M), 0);
	assert_int_equal(tdp_host_munmap(c.h, c.small, 512 * PG), 0);
	th_assert_host_empty(c.h);
	tdp_host_destroy(c.h);
}

/* gup-fast: a present page is pinned without the mmap lock (here while
 * another thread holds it for write, stopped in the test hook of a
 * migration elsewhere), with the protection its pte carries after
 * mprotect; a page that is not populated, or refused, goes to the locked
 * path; pins are counted exactly either way. */
struct gup_fast_ctx {
	struct tdp_host *h;
	uint64_t mig;
	struct event in_hook, release;
	atomic_int done;
	uint64_t hva;
	int ret;
	struct host_gup g;
};

static void gup_fast_hook(void *arg, uint64_t start, uint64_t end)
{
	struct gup_fast_ctx *c = arg;

	ev_set(&c->in_hook);
	ev_wait(&c->release);
}

static void *gup_fast_migrate(void *arg)
{
	struct gup_fast_ctx *c = arg;

	assert_int_equal(tdp_host_migrate(c->h, c->mig, PG), 0);
	return NULL;
}

static void *gup_fast_pin(void *arg)
{
	struct gup_fast_ctx *c = arg;

	c->ret = host_gup(c->h, c->hva, true, &c->g);
	atomic_store(&c->done, 1);
	return NULL;
}

static void test_gup_fast(void **state)
{
	struct gup_fast_ctx c;
	struct host_gup g;
	pthread_t tm, tp;
	uint64_t a, t0, pfn;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.h = th_host_new(1ull << 30);
	a = th_host_map(c.h, 2 * PG, 3, PG);
	c.mig = th_host_map(c.h, PG, 3, PG);
	th_host_put_page(c.h, a, 5);
	th_host_put_page(c.h, c.mig, 6);
	pfn = th_lookup_pfn(c.h, a, NULL);
	host_set_test_hook(c.h, gup_fast_hook, &c);
	pthread_create(&tm, NULL, gup_fast_migrate, &c);
	ev_wait(&c.in_hook); /* the migration holds the mmap lock for write */
	c.hva = a + 8;
	pthread_create(&tp, NULL, gup_fast_pin, &c);
	t0 = th_now_ns();
	while (!atomic_load(&c.done) && th_now_ns() - t0 < 60000000000ull)
		usleep(1000);
	/* pinned while the lock is held: the lockless path */
	assert_int_equal(atomic_load(&c.done), 1);
	assert_int_equal(c.ret, 0);
	assert_int_equal(c.g.pfn, pfn);
	assert_true(c.g.writable);
	ev_set(&c.release);
	pthread_join(tm, NULL);
	pthread_join(tp, NULL);
	host_set_test_hook(c.h, NULL, NULL);
	assert_int_equal(th_host_stats(c.h).pinned_refs, 1);
	assert_int_equal(th_host_stats(c.h).frame_refs, 3);

	/* the pte carries the protection mprotect set */
	assert_int_equal(tdp_host_mprotect(c.h, a, 2 * PG, TDP_PROT_READ), 0);
	assert_int_equal(host_gup(c.h, a, true, &g), -EFAULT);
	assert_int_equal(host_gup(c.h, a, false, &g), 0);
	assert_false(g.writable);
	assert_false(g.executable);
	assert_int_equal(g.pfn, c.g.pfn);
	host_put_frame(c.h, g.ref_pfn);
	assert_int_equal(tdp_host_mprotect(c.h, a, 2 * PG, 7), 0);
	assert_int_equal(host_gup(c.h, a, true, &g), 0);
	assert_true(g.writable && g.executable);
	host_put_frame(c.h, g.ref_pfn);
	/* not populated: the locked path populates it */
	assert_int_equal(host_gup(c.h, a + PG, false, &g), 0);
	assert_int_equal(g.pfn, th_lookup_pfn(c.h, a + PG, NULL));
	host_put_frame(c.h, g.ref_pfn);
	host_put_frame(c.h, c.g.ref_pfn);
	assert_int_equal(th_host_stats(c.h).pinned_refs, 0);
	assert_int_equal(th_host_stats(c.h).frame_refs, 3);
	/* unmapped: refused by the locked path */
	assert_int_equal(tdp_host_munmap(c.h, a, 2 * PG), 0);
	assert_int_equal(host_gup(c.h, a, false, &g), -EFAULT);
	tdp_host_destroy(c.h);
}

/* Every pte change is inside its invalidation: once munmap's
 * invalidate_end runs, gup-fast finds nothing in the range, and a pin
 * taken then goes through the locked path, which waits for the munmap
 * and refuses the hva (-EFAULT).  Had the ptes been cleared after
 * invalidate_end (as before gup-fast existed), a fault starting after
 * invalidate_end would pin the frame being unmapped and map it. */
struct end_stop {
	struct tdp_host_notifier n;
	struct tdp_host *h;
	uint64_t hva;
	struct event in_end, release;
	atomic_int done;
	int ret;
};

static void end_stop_start(struct tdp_host_notifier *n, uint64_t s, uint64_t e)
{
}

static void end_stop_end(struct tdp_host_notifier *n, uint64_t s, uint64_t e)
{
	struct end_stop *x = (struct end_stop *)n;

	ev_set(&x->in_end);
	ev_wait(&x->release);
}

static const struct tdp_host_notifier_ops end_stop_ops = {
	.invalidate_start = end_stop_start,
	.invalidate_end = end_stop_end,
};

static void *end_stop_munmap(void *arg)
{
	struct end_stop *x = arg;

	assert_int_equal(tdp_host_munmap(x->h, x->hva, 2 * PG), 0);
	return NULL;
}

static void *end_stop_pin(void *arg)
{
	struct end_stop *x = arg;
	struct host_gup g;

	x->ret = host_gup(x->h, x->hva + PG, false, &g);
	if (!x->ret)
		host_put_frame(x->h, g.ref_pfn);
	atomic_store(&x->done, 1);
	return NULL;
}

static void test_gup_fast_munmap_end(void **state)
{
	struct end_stop x;
	pthread_t tm, tp;
	uint64_t t0;
	int early;

	(void)state;
	memset(&x, 0, sizeof(x));
	x.h = th_host_new(1ull << 30);
	x.hva = th_host_map(x.h, 2 * PG, 3, PG);
	th_host_put_page(x.h, x.hva, 1);
	th_host_put_page(x.h, x.hva + PG, 2);
	x.n.ops = &end_stop_ops;
	host_notifier_register(x.h, &x.n);
	pthread_create(&tm, NULL, end_stop_munmap, &x);
	ev_wait(&x.in_end);
	pthread_create(&tp, NULL, end_stop_pin, &x);
	t0 = th_now_ns();
	while (!atomic_load(&x.done) && th_now_ns() - t0 < 200000000ull)
		usleep(1000);
	early = atomic_load(&x.done);
	ev_set(&x.release);
	pthread_join(tm, NULL);
	pthread_join(tp, NULL);
	assert_int_equal(early, 0);	  /* it waited for the munmap */
	assert_int_equal(x.ret, -EFAULT); /* and found nothing there */
	host_notifier_unregister(x.h, &x.n);
	assert_int_equal(th_host_stats(x.h).frame_refs, 0);
	tdp_host_destroy(x.h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buddy),
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_mmap_args),
		cmocka_unit_test(test_mmap_fixed),
		cmocka_unit_test(test_range_args),
		cmocka_unit_test(test_rw_args),
		cmocka_unit_test(test_rw_folios),
		cmocka_unit_test(test_rw_adjacent),
		cmocka_unit_test(test_munmap),
		cmocka_unit_test(test_mprotect),
		cmocka_unit_test(test_migrate),
		cmocka_unit_test(test_migrate_enomem),
		cmocka_unit_test(test_swap),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_swapcache_clean),
		cmocka_unit_test(test_swapcache_dirty),
		cmocka_unit_test(test_swapcache_lost_dirty),
		cmocka_unit_test(test_swapcache_migrate),
		cmocka_unit_test(test_swapcache_huge),
		cmocka_unit_test(test_swapcache_unmap),
		cmocka_unit_test(test_mark_dirty_args),
		cmocka_unit_test(test_swapcache_concurrent),
		cmocka_unit_test(test_notifier),
		cmocka_unit_test(test_reentry),
		cmocka_unit_test(test_gup),
		cmocka_unit_test(test_gup_fast),
		cmocka_unit_test(test_gup_fast_munmap_end),
		cmocka_unit_test(test_destroy_with_notifier),
		cmocka_unit_test(test_concurrent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
