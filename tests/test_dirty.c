/* SPDX-License-Identifier: MIT */
/*
 * test_dirty.c - dirty logging (TDP_MEM_LOG_DIRTY, tdp_vm_get_dirty_log,
 * tdp_vm_clear_dirty_log) in write-protect mode, TDP_VM_DIRTY_DBIT mode,
 * with and without the fast page fault, and with TDP_VM_MANUAL_PROTECT:
 *  - exactness on one thread: a harvest reports exactly the pages written
 *    since the previous one (reads, read faults, zaps and host migration do
 *    not add or lose pages), and a page rewritten while its translation is
 *    still in the vCPU's TLB is reported again (the harvest flushed);
 *  - no false negatives under concurrency: two vCPU threads write while
 *    the main thread harvests; every write is found in a harvest of the
 *    window the header allows (the strict form: a write that begins after
 *    harvest k returned and completes before harvest k+1 begins is in
 *    harvest k+1);
 *  - enabling logging splits huge leaves (2 MiB, 1 GiB) eagerly, keeping
 *    frames and data; TDP_VM_NO_EAGER_SPLIT leaves them to the write
 *    faults; disabling logging rebuilds huge leaves with batched flushes;
 *  - a harvest that runs while a slow write fault is between its log mark
 *    and its map (forced by holding mmu_lock) loses nothing;
 *  - the fast path counters; manual protect; harvests never lose a Dirty
 *    bit the host needs for reclaim; errors change nothing.
 * Every test ends with a clean audit and a teardown whose counters return
 * to zero.  TDP_TEST_INJECT=<name> runs the tests with a bug of inject.h
 * put back (dirty-clear-without-flush, fast-fault-huge-writable must make
 * some of them fail).
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
#define NV	 2
#define SLOT_GPA GiB /* 1 GiB aligned: gfn % 64 == page index % 64 */

#define WP	0u
#define DBIT	TDP_VM_DIRTY_DBIT
#define NOFAST	TDP_VM_NO_FAST_FAULT
#define MANUAL	TDP_VM_MANUAL_PROTECT
#define NOEAGER TDP_VM_NO_EAGER_SPLIT
/* Dirty bits logged by the walkers (page-modification logging) */
#define PML	(TDP_VM_DIRTY_DBIT | TDP_VM_PML)

/* ------------------------------------------------------------------ */
/* fixture                                                             */
/* ------------------------------------------------------------------ */

/* NV vCPUs; memslot 0: @size bytes of @folio folios at SLOT_GPA. */
static void fx_init_cfg(struct th_env *f, unsigned vmflags, uint64_t size,
			uint64_t folio, uint64_t max_huge)
{
	struct tdp_vm_config vc = {
		.max_vcpus = NV, .max_huge = max_huge, .flags = vmflags};

	th_env_init(f, size + 2 * GiB, &vc, NV);
	th_maybe_inject(f->vm);
	th_env_slot(f, SLOT_GPA, size, folio);
}

static void fx_init(struct th_env *f, unsigned vmflags, uint64_t size,
		    uint64_t folio)
{
	fx_init_cfg(f, vmflags, size, folio, 0);
}

/* Turn logging of slot 0 on or off (a flags-only update). */
static void fx_log(struct th_env *f, bool on)
{
	th_set_slot(f->vm, 0, 0, f->gpa, f->size, f->hva,
		    on ? TDP_MEM_LOG_DIRTY : 0);
}

/* ---- harvests ---- */

/* Harvest slot 0 into @bm; asserts success, returns the page count. */
static uint64_t harvest(struct th_env *f, uint64_t *bm)
{
	memset(bm, 0xa5, f->nwords * 8);
	assert_int_equal(tdp_vm_get_dirty_log(f->vm, 0, 0, bm), 0);
	return th_bm_count(bm, f->nwords);
}

/* Harvest and, with manual protect, clear what was reported. */
static uint64_t harvest_clear(struct th_env *f, uint64_t *bm)
{
	uint64_t n = harvest(f, bm);

	if (f->vm->cfg.flags & MANUAL)
		assert_int_equal(
			tdp_vm_clear_dirty_log(f->vm, 0, 0, 0, f->npages, bm),
			0);
	return n;
}

/* ---- guest accesses: a 16-byte header {gpa, gen} at the page start ---- */

static void gwrite(struct th_env *f, unsigned v, uint64_t page, uint64_t gen)
{
	uint64_t w[2] = {f->gpa + page * PG, gen};

	assert_int_equal(
		tdp_vcpu_write(f->v[v], f->gpa + page * PG, w, sizeof(w)), 0);
}

static void gread_check(struct th_env *f, unsigned v, uint64_t page,
			uint64_t gen)
{
	uint64_t w[2] = {0, 0};

	assert_int_equal(
		tdp_vcpu_read(f->v[v], f->gpa + page * PG, w, sizeof(w)), 0);
	if (w[0] != f->gpa + page * PG || w[1] != gen)
		fprintf(stderr,
			"page %" PRIu64 ": found {%#" PRIx64 ", %" PRIu64
			"}, expected {%#" PRIx64 ", %" PRIu64 "}\n",
			page, w[0], w[1], (uint64_t)(f->gpa + page * PG), gen);
	assert_int_equal(w[0], f->gpa + page * PG);
	assert_int_equal(w[1], gen);
}

static void gread(struct th_env *f, unsigned v, uint64_t page)
{
	uint64_t w[2];

	assert_int_equal(
		tdp_vcpu_read(f->v[v], f->gpa + page * PG, w, sizeof(w)), 0);
}

static void hread_check(struct th_env *f, uint64_t page, uint64_t gen)
{
	uint64_t w[2] = {0, 0};

	assert_int_equal(tdp_host_read(f->h, f->hva + page * PG, w, sizeof(w)),
			 0);
	assert_int_equal(w[0], f->gpa + page * PG);
	assert_int_equal(w[1], gen);
}

/* Write every page (generation @gen) with vCPU 0; maps the slot. */
static void populate(struct th_env *f, uint64_t *gens, uint64_t gen)
{
	for (uint64_t p = 0; p < f->npages; p++) {
		gwrite(f, 0, p, gen);
		if (gens)
			gens[p] = gen;
	}
}

static struct tdp_translation xlate(struct th_env *f, uint64_t page, int *ret)
{
	struct tdp_translation t;

	memset(&t, 0, sizeof(t));
	*ret = tdp_vm_translate(f->vm, 0, f->gpa + page * PG, &t);
	return t;
}

/* ------------------------------------------------------------------ */
/* errors                                                              */
/* ------------------------------------------------------------------ */

static bool all_sentinel(const uint64_t *b, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (b[i] != 0xa5a5a5a5a5a5a5a5ull)
			return false;
	return true;
}

/* Errors of tdp_vm_get_dirty_log and of clear without manual protect: the
 * return codes, the bitmap left alone, and no report consumed. */
static void test_errors_get(void **state)
{
	struct th_env f;
	uint64_t hva1, *bm, *want;

	(void)state;
	fx_init(&f, WP, 4 * MiB, TDP_HUGE_2M);
	bm = th_bm_new(f.nwords);
	want = th_bm_new(f.nwords);
	/* slot 1: not logged */
	hva1 = th_env_map(&f, 2 * MiB, TDP_HUGE_2M);
	th_set_slot(f.vm, 0, 1, 4 * GiB, 2 * MiB, hva1, 0);
	populate(&f, NULL, 1);

	/* logging not on yet */
	memset(bm, 0xa5, f.nwords * 8);
	assert_int_equal(tdp_vm_get_dirty_log(f.vm, 0, 0, bm), -EINVAL);
	assert_true(all_sentinel(bm, f.nwords));
	fx_log(&f, true);
	for (uint64_t p = 3; p < f.npages; p += 97) {
		gwrite(&f, 0, p, 2);
		th_bm_set(want, p);
	}

	memset(bm, 0xa5, f.nwords * 8);
	assert_int_equal(tdp_vm_get_dirty_log(f.vm, 0, 1, bm), -EINVAL);
	assert_int_equal(tdp_vm_get_dirty_log(f.vm, 0, 2, bm), -ENOENT);
	assert_int_equal(tdp_vm_get_dirty_log(f.vm, 0, 511, bm), -ENOENT);
	assert_int_equal(tdp_vm_get_dirty_log(f.vm, 0, TDP_MAX_MEMSLOTS, bm),
			 -EINVAL);
	assert_int_equal(tdp_vm_get_dirty_log(f.vm, 1, 0, bm), -EINVAL);
	assert_int_equal(tdp_vm_get_dirty_log(f.vm, 2, 0, bm), -EINVAL);
	assert_int_equal(tdp_vm_get_dirty_log(f.vm, 0, 0, NULL), -EINVAL);
	assert_true(all_sentinel(bm, f.nwords));
	/* clear_dirty_log needs manual protect */
	memset(bm, 0xff, f.nwords * 8);
	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 0, 0, 0, f.npages, bm),
			 -EINVAL);
	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 0, 0, 0, 64, bm),
			 -EINVAL);

	/* nothing was consumed or re-protected: the writes are still there,
	 * exactly */
	harvest(&f, bm);
	th_bm_assert_eq(bm, want, f.npages, "after failed calls");
	assert_int_equal(harvest(&f, bm), 0);

	/* logging off again: -EINVAL again */
	fx_log(&f, false);
	assert_int_equal(tdp_vm_get_dirty_log(f.vm, 0, 0, bm), -EINVAL);
	/* a deleted slot: -ENOENT */
	th_set_slot(f.vm, 0, 1, 4 * GiB, 0, hva1, 0);
	assert_int_equal(tdp_vm_get_dirty_log(f.vm, 0, 1, bm), -ENOENT);
	free(bm);
	free(want);
	th_env_fini_empty(&f);
}

/* Errors of tdp_vm_clear_dirty_log with manual protect, and the tail of
 * a slot whose page count is not a multiple of 64. */
static void test_errors_clear(void **state)
{
	struct th_env f;
	uint64_t hva1, *bm, *snap, *ones;
	const uint64_t n1 = 100; /* pages of slot 1 */

	(void)state;
	fx_init(&f, MANUAL, 4 * MiB, TDP_HUGE_2M);
	bm = th_bm_new(f.nwords);
	snap = th_bm_new(f.nwords);
	ones = th_bm_new(f.nwords);
	memset(ones, 0xff, f.nwords * 8);
	hva1 = th_env_map(&f, n1 * PG, TDP_PAGE_SIZE);
	th_set_slot(f.vm, 0, 1, 4 * GiB, n1 * PG, hva1, 0);
	populate(&f, NULL, 1);

	/* the slot is not logged yet */
	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 0, 0, 0, 64, ones),
			 -EINVAL);
	fx_log(&f, true);
	th_set_slot(f.vm, 0, 1, 4 * GiB, n1 * PG, hva1, TDP_MEM_LOG_DIRTY);
	/* forget the first 512 pages, keep the rest reported */
	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 0, 0, 0, 512, ones), 0);
	assert_int_equal(harvest(&f, snap), f.npages - 512);

	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 0, 0, 1, 64, ones),
			 -EINVAL); /* first not a multiple of 64 */
	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 0, 0, 32, 64, ones),
			 -EINVAL);
	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 0, 0, 512, 0, ones),
			 -EINVAL); /* npages 0 */
	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 0, 0, 512, 1, ones),
			 -EINVAL); /* not a multiple of 64, not at the end */
	assert_int_equal(
		tdp_vm_clear_dirty_log(f.vm, 0, 0, 512, f.npages, ones),
		-EINVAL); /* beyond the slot */
	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 0, 0, f.npages, 64, ones),
			 -EINVAL); /* starts at the end */
	assert_int_equal(
		tdp_vm_clear_dirty_log(f.vm, 0, 0, 512, 1ull << 62, ones),
		-EINVAL); /* huge npages */
	assert_int_equal(
		tdp_vm_clear_dirty_log(f.vm, 0, 0, ~0ull - 63, 64, ones),
		-EINVAL); /* first + npages overflows */
	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 0, 0, 512, 64, NULL),
			 -EINVAL);
	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 1, 0, 512, 64, ones),
			 -EINVAL); /* bad as_id */
	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 0, TDP_MAX_MEMSLOTS, 512,
						64, ones),
			 -EINVAL);
	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 0, 9, 512, 64, ones),
			 -ENOENT);
	/* nothing forgotten by the failed calls */
	harvest(&f, bm);
	th_bm_assert_eq(bm, snap, f.npages, "after failed clears");

	/* slot 1: 100 pages; the bitmap's tail bits are written as zero */
	uint64_t b1[2];

	memset(b1, 0xa5, sizeof(b1));
	assert_int_equal(tdp_vm_get_dirty_log(f.vm, 0, 1, b1), 0);
	assert_int_equal(b1[0], ~0ull); /* initially all set */
	assert_int_equal(b1[1], (1ull << (n1 - 64)) - 1);
	/* a range not a multiple of 64 that ends at the slot's end is fine,
	 * one that does not is not */
	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 0, 1, 0, 36, ones),
			 -EINVAL);
	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 0, 1, 64, 37, ones),
			 -EINVAL);
	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 0, 1, 128, 64, ones),
			 -EINVAL);
	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 0, 1, 64, 36, ones), 0);
	memset(b1, 0xa5, sizeof(b1));
	assert_int_equal(tdp_vm_get_dirty_log(f.vm, 0, 1, b1), 0);
	assert_int_equal(b1[0], ~0ull);
	assert_int_equal(b1[1], 0);
	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 0, 1, 0, n1, ones), 0);
	assert_int_equal(tdp_vm_get_dirty_log(f.vm, 0, 1, b1), 0);
	assert_int_equal(b1[0] | b1[1], 0);

	free(bm);
	free(snap);
	free(ones);
	th_env_fini_empty(&f);
}

/* ------------------------------------------------------------------ */
/* single-threaded exactness                                           */
/* ------------------------------------------------------------------ */

static void exact(unsigned vmflags)
{
	struct th_env f;
	uint64_t *bm, *want, seed = 0x1234 + vmflags, *gens;
	struct tdp_translation t;
	int r;

	fx_init(&f, vmflags, 16 * MiB, TDP_HUGE_2M);
	bm = th_bm_new(f.nwords);
	want = th_bm_new(f.nwords);
	gens = calloc(f.npages, sizeof(*gens));
	assert_non_null(gens);
	populate(&f, gens, 1);
	assert_true(th_vm_stats(f.vm).pages_2m == 8);
	fx_log(&f, true);

	/* nothing written since logging began */
	assert_int_equal(harvest(&f, bm), 0);

	/* reads (and read faults after a zap) report nothing */
	for (unsigned i = 0; i < 200; i++)
		gread(&f, i & 1, th_rand(&seed) % f.npages);
	assert_int_equal(tdp_vm_zap_gfn_range(f.vm, 0, f.gpa, 2 * MiB), 0);
	for (uint64_t p = 0; p < 512; p += 3)
		gread_check(&f, 1, p, 1);
	assert_int_equal(harvest(&f, bm), 0);
	if (!(vmflags & DBIT)) {
		/* a read fault does not map a logged page writable */
		t = xlate(&f, 3, &r);
		assert_int_equal(r, 0);
		assert_int_equal(t.size, PG);
		assert_false(t.prot & TDP_PROT_WRITE);
	}

	/* random writes from both vCPUs, some pages several times */
	memset(want, 0, f.nwords * 8);
	for (unsigned i = 0; i < 300; i++) {
		uint64_t p = th_rand(&seed) % f.npages;

		gwrite(&f, i & 1, p, ++gens[p]);
		th_bm_set(want, p);
		if (i % 3 == 0)
			gwrite(&f, i & 1, p, ++gens[p]);
	}
	harvest(&f, bm);
	th_bm_assert_eq(bm, want, f.npages, "random writes");
	assert_int_equal(harvest(&f, bm), 0);

	/* a page rewritten while its translation is in the TLB: 32 pages
	 * in distinct TLB sets, written, harvested, rewritten at once; the
	 * harvest must have flushed the writable/dirty translations */
	for (unsigned round = 0; round < 4; round++) {
		uint64_t base = 64 * (th_rand(&seed) % (f.npages / 64));

		memset(want, 0, f.nwords * 8);
		for (uint64_t p = base; p < base + 32; p++) {
			gwrite(&f, 0, p, ++gens[p]);
			th_bm_set(want, p);
		}
		harvest(&f, bm);
		th_bm_assert_eq(bm, want, f.npages, "hot pages");
		for (uint64_t p = base; p < base + 32; p++)
			gwrite(&f, 0, p, ++gens[p]);
		harvest(&f, bm);
		th_bm_assert_eq(bm, want, f.npages, "hot pages rewritten");
		/* reading them back reports nothing */
		for (uint64_t p = base; p < base + 32; p++)
			gread_check(&f, 0, p, gens[p]);
		assert_int_equal(harvest(&f, bm), 0);
	}

	/* a zap between the write and the harvest loses nothing (the Dirty
	 * bit of a zapped leaf is logged) */
	memset(want, 0, f.nwords * 8);
	for (unsigned i = 0; i < 64; i++) {
		uint64_t p = th_rand(&seed) % f.npages;

		gwrite(&f, 1, p, ++gens[p]);
		th_bm_set(want, p);
	}
	assert_int_equal(tdp_vm_zap_gfn_range(f.vm, 0, f.gpa, f.size), 0);
	harvest(&f, bm);
	th_bm_assert_eq(bm, want, f.npages, "writes then zap");
	/* refaults while logging map 4 KiB leaves */
	memset(want, 0, f.nwords * 8);
	for (uint64_t p = 700; p < 720; p++) {
		gwrite(&f, 0, p, ++gens[p]);
		th_bm_set(want, p);
		t = xlate(&f, p, &r);
		assert_int_equal(r, 0);
		assert_int_equal(t.size, PG);
		assert_true(t.dirty);
	}
	harvest(&f, bm);
	th_bm_assert_eq(bm, want, f.npages, "writes after zap");

	/* host migration of written pages loses nothing either */
	memset(want, 0, f.nwords * 8);
	for (unsigned i = 0; i < 64; i++) {
		uint64_t p = 1024 + th_rand(&seed) % 1024; /* 4..8 MiB */

		gwrite(&f, 0, p, ++gens[p]);
		th_bm_set(want, p);
	}
	assert_int_equal(tdp_host_migrate(f.h, f.hva + 4 * MiB, 4 * MiB), 0);
	harvest(&f, bm);
	th_bm_assert_eq(bm, want, f.npages, "writes then host migrate");
	assert_int_equal(harvest(&f, bm), 0);

	/* everything the guest wrote is there */
	for (uint64_t p = 0; p < f.npages; p++)
		hread_check(&f, p, gens[p]);
	fx_log(&f, false);
	free(gens);
	free(bm);
	free(want);
	th_env_fini_empty(&f);
}

static void test_exact_wp(void **s)
{
	(void)s;
	exact(WP);
}
static void test_exact_wp_nofast(void **s)
{
	(void)s;
	exact(WP | NOFAST);
}
static void test_exact_dbit(void **s)
{
	(void)s;
	exact(DBIT);
}
static void test_exact_pml(void **s)
{
	(void)s;
	exact(PML);
}

/* ------------------------------------------------------------------ */
/* no false negatives under concurrency                                */
/* ------------------------------------------------------------------ */

#define CC_SIZE (16 * MiB)
#define CC_MAXH 20000u
/* The run lasts until the oracle has enough to check, however slow the
 * build or busy the machine (a wall-clock bound made it fail by chance
 * under TSan): this many harvests, writes, and writes strictly between
 * two harvests. */
#define CC_MINH	     60u
#define CC_MINWRITES 100000u
#define CC_MINSTRICT 1000u
#define CC_LOGCAP    (1u << 21)

struct wrec {
	uint32_t page;
	uint32_t k; /* harvests completed when the write began */
	uint32_t e; /* harvests begun when the write had completed */
};

struct cc;

struct cwork {
	struct cc *c;
	unsigned id;
	uint64_t seed;
	struct wrec *log;
	size_t n;
	int err;
};

struct cc {
	struct th_env f;
	uint64_t *gens; /* per page, written only by the page's owner */
	atomic_uint started, done;
	atomic_bool stop;
	atomic_uint finished; /* writers that stopped (log full) */
	atomic_uint strict;   /* writes strictly between two harvests */
	atomic_uint writes;   /* writes logged */
};

/* Pages are owned in blocks of 64 by vCPU (block % NV); each vCPU's first
 * block is its hot set (32 pages in distinct TLB sets, so they stay in
 * its TLB across harvests). */
static uint64_t cc_pick(struct cc *c, unsigned id, uint64_t *seed)
{
	uint64_t r = th_rand(seed);
	uint64_t nblocks = c->f.npages / 64 / NV;

	if (r & 1)
		return id * 64 + (r >> 1) % 32;
	return ((r >> 8) % nblocks * NV + id) * 64 + (r >> 40) % 64;
}

static void *cc_vcpu(void *arg)
{
	struct cwork *w = arg;
	struct cc *c = w->c;
	struct th_env *f = &c->f;

	while (!atomic_load_explicit(&c->stop, memory_order_relaxed) &&
	       w->n < CC_LOGCAP) {
		uint64_t p = cc_pick(c, w->id, &w->seed);
		uint64_t buf[2] = {f->gpa + p * PG, c->gens[p] + 1};
		unsigned k, e;
		int r;

		k = atomic_load_explicit(&c->done, memory_order_acquire);
		r = tdp_vcpu_write(f->v[w->id], f->gpa + p * PG, buf,
				   sizeof(buf));
		/* the write's effects (Dirty bit, fault) before the load of
		 * `started`; pairs with the fence after the harvester's
		 * store (store-buffering) */
		atomic_thread_fence(memory_order_seq_cst);
		e = atomic_load_explicit(&c->started, memory_order_relaxed);
		if (r) {
			w->err = r;
			break;
		}
		c->gens[p]++;
		w->log[w->n++] = (struct wrec){(uint32_t)p, k, e};
		atomic_fetch_add_explicit(&c->writes, 1, memory_order_relaxed);
		if (e == k)
			atomic_fetch_add_explicit(&c->strict, 1,
						  memory_order_relaxed);
		/* leave the harvester some of the two CPUs */
		if (w->n % 16 == 0)
			usleep(20);
	}
	atomic_fetch_add(&c->finished, 1);
	return NULL;
}

static void cc_harvest(struct cc *c, uint64_t *bm)
{
	struct th_env *f = &c->f;

	assert_int_equal(tdp_vm_get_dirty_log(f->vm, 0, 0, bm), 0);
	if (f->vm->cfg.flags & MANUAL)
		assert_int_equal(
			tdp_vm_clear_dirty_log(f->vm, 0, 0, 0, f->npages, bm),
			0);
}

static void concurrent(unsigned vmflags)
{
	struct cc *c = calloc(1, sizeof(*c));
	struct cwork w[NV];
	pthread_t th[NV];
	uint64_t *bms, seed = 99 + vmflags;
	unsigned h;

	assert_non_null(c);
	fx_init(&c->f, vmflags, CC_SIZE, TDP_HUGE_2M);
	struct th_env *f = &c->f;
	c->gens = calloc(f->npages, sizeof(*c->gens));
	bms = calloc((size_t)(CC_MAXH + 2) * f->nwords, 8);
	assert_non_null(c->gens);
	assert_non_null(bms);
	populate(f, c->gens, 0);
	fx_log(f, true);
	if (vmflags & MANUAL) /* initially all set: start from clean */
		cc_harvest(c, bms);

	for (unsigned i = 0; i < NV; i++) {
		w[i] = (struct cwork){.c = c, .id = i, .seed = 7 + i};
		w[i].log = malloc(CC_LOGCAP * sizeof(struct wrec));
		assert_non_null(w[i].log);
		assert_int_equal(pthread_create(&th[i], NULL, cc_vcpu, &w[i]),
				 0);
	}
	/* harvest k (1-based) goes to bms[k] */
	for (h = 1; h <= CC_MAXH &&
		    (h <= CC_MINH || atomic_load(&c->strict) <= CC_MINSTRICT ||
		     atomic_load(&c->writes) < CC_MINWRITES) &&
		    atomic_load(&c->finished) < NV;
	     h++) {
		atomic_store(&c->started, h);
		atomic_thread_fence(memory_order_seq_cst);
		cc_harvest(c, bms + (size_t)h * f->nwords);
		atomic_store_explicit(&c->done, h, memory_order_release);
		/* half back to back (harvests racing faults), half with a
		 * pause (writes strictly between two harvests) */
		uint64_t r = th_rand(&seed);

		if (r & 1)
			usleep((useconds_t)(r >> 1) % 400);
	}
	atomic_store(&c->stop, true);
	for (unsigned i = 0; i < NV; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].err, 0);
	}
	/* the final harvest, after every write completed */
	atomic_store(&c->started, h);
	cc_harvest(c, bms + (size_t)h * f->nwords);

	/* every write is reported by a harvest in [k+1, e+1] */
	uint64_t writes = 0, strict = 0, lost = 0;

	for (unsigned i = 0; i < NV; i++) {
		for (size_t j = 0; j < w[i].n; j++) {
			const struct wrec *x = &w[i].log[j];
			bool found = false;

			assert_true(x->e >= x->k && x->e + 1 <= h);
			for (unsigned k = x->k + 1; k <= x->e + 1 && !found;
			     k++)
				found = th_bm_test(bms + (size_t)k * f->nwords,
						   x->page);
			writes++;
			strict += x->e == x->k;
			if (!found && lost++ < 3)
				fprintf(stderr,
					"vCPU %u write #%zu to page %u "
					"(harvests done at its start %u, "
					"begun at its end %u) not reported "
					"by harvests %u..%u\n",
					i, j, x->page, x->k, x->e, x->k + 1,
					x->e + 1);
		}
	}
	print_message("%u harvests, %" PRIu64 " writes (%" PRIu64
		      " strictly between two harvests), %" PRIu64 " lost\n",
		      h, writes, strict, lost);
	assert_int_equal(lost, 0);
	/* the oracle had something to check */
	assert_true(h > CC_MINH);
	assert_true(writes >= CC_MINWRITES);
	assert_true(strict > CC_MINSTRICT);
	/* and the last harvest reported everything it had to: nothing
	 * more */
	cc_harvest(c, bms);
	assert_int_equal(th_bm_count(bms, f->nwords), 0);
	for (uint64_t p = 0; p < f->npages; p++)
		hread_check(f, p, c->gens[p]);
	for (unsigned i = 0; i < NV; i++)
		free(w[i].log);
	free(bms);
	free(c->gens);
	th_env_fini_empty(f);
	free(c);
}

static void test_concurrent_wp(void **s)
{
	(void)s;
	concurrent(WP);
}
static void test_concurrent_wp_nofast(void **s)
{
	(void)s;
	concurrent(WP | NOFAST);
}
static void test_concurrent_dbit(void **s)
{
	(void)s;
	concurrent(DBIT);
}
static void test_concurrent_manual(void **s)
{
	(void)s;
	concurrent(MANUAL);
}
static void test_concurrent_manual_dbit(void **s)
{
	(void)s;
	concurrent(MANUAL | DBIT);
}
static void test_concurrent_manual_pml(void **s)
{
	(void)s;
	concurrent(MANUAL | PML);
}
static void test_concurrent_pml(void **s)
{
	(void)s;
	concurrent(PML);
}

/* ------------------------------------------------------------------ */
/* eager split and huge-page recovery                                  */
/* ------------------------------------------------------------------ */

/* Enable logging on a slot mapped with @huge leaves: every page ends up
 * on a 4 KiB leaf of the same frame (write-protected, or with a clear
 * Dirty bit), no huge leaf is left, the data is unchanged. */
static void eager_split(unsigned vmflags, uint64_t huge)
{
	struct th_env f;
	uint64_t size = huge == TDP_HUGE_1G ? GiB : 16 * MiB;
	uint64_t step = huge == TDP_HUGE_1G ? 509 : 1; /* pages written */
	uint64_t *pfn, *bm;
	struct tdp_stats s0, s1;
	struct tdp_translation t;
	int r;

	fx_init_cfg(&f, vmflags, size, huge, TDP_HUGE_1G);
	pfn = calloc(f.npages, sizeof(*pfn));
	bm = th_bm_new(f.nwords);
	assert_non_null(pfn);
	for (uint64_t p = 0; p < f.npages; p += step)
		gwrite(&f, p & 1, p, 1);
	s0 = th_vm_stats(f.vm);
	if (huge == TDP_HUGE_1G) {
		assert_int_equal(s0.pages_1g, 1);
		assert_int_equal(s0.pages_2m + s0.pages_4k, 0);
	} else {
		assert_int_equal(s0.pages_2m, size / TDP_HUGE_2M);
		assert_int_equal(s0.pages_1g + s0.pages_4k, 0);
	}
	for (uint64_t p = 0; p < f.npages; p++) {
		t = xlate(&f, p, &r);
		assert_int_equal(r, 0);
		assert_int_equal(t.size, huge);
		pfn[p] = t.pfn;
	}

	fx_log(&f, true);
	s1 = th_vm_stats(f.vm);
	assert_true(s1.eager_splits - s0.eager_splits >=
		    (huge == TDP_HUGE_1G ? 1 : size / TDP_HUGE_2M));
	assert_int_equal(s1.pages_2m, 0);
	assert_int_equal(s1.pages_1g, 0);
	assert_int_equal(s1.pages_4k, f.npages); /* split, not zapped */
	for (uint64_t p = 0; p < f.npages; p++) {
		t = xlate(&f, p, &r);
		assert_int_equal(r, 0);
		assert_int_equal(t.size, PG);
		assert_int_equal(t.pfn, pfn[p]);
		if (vmflags & DBIT) {
			assert_true(t.prot & TDP_PROT_WRITE);
			assert_false(t.dirty);
		} else {
			assert_false(t.prot & TDP_PROT_WRITE);
		}
	}
	th_audit_clean(f.vm);
	/* no fault needed to read any of it, and the data is unchanged */
	uint64_t taken = th_vm_stats(f.vm).pf_taken;

	for (uint64_t p = 0; p < f.npages; p += step)
		gread_check(&f, p & 1, p, 1);
	assert_int_equal(th_vm_stats(f.vm).pf_taken, taken);
	assert_int_equal(harvest(&f, bm), 0);
	/* writes are logged and stay on 4 KiB leaves */
	gwrite(&f, 0, 5, 2);
	assert_int_equal(harvest(&f, bm), 1);
	assert_true(th_bm_test(bm, 5));
	assert_int_equal(th_vm_stats(f.vm).pages_4k, f.npages);
	free(pfn);
	free(bm);
	th_env_fini_empty(&f);
}

static void test_eager_split_2m_wp(void **s)
{
	(void)s;
	eager_split(WP, TDP_HUGE_2M);
}
static void test_eager_split_2m_dbit(void **s)
{
	(void)s;
	eager_split(DBIT, TDP_HUGE_2M);
}
/* The 1 GiB cases run single-threaded (their only other thread is the
 * RCU callback thread) over 1 GiB of guest memory: about 100 s under TSan
 * on 2 cores, a third of the TSan suite's time budget, for no race that
 * the 2 MiB cases (run under TSan too) do not have.  The ASan build runs
 * them (SKIP_UNDER_TSAN, helpers.h). */

static void test_eager_split_1g_wp(void **s)
{
	(void)s;
	SKIP_UNDER_TSAN();
	eager_split(WP, TDP_HUGE_1G);
}
static void test_eager_split_1g_dbit(void **s)
{
	(void)s;
	SKIP_UNDER_TSAN();
	eager_split(DBIT, TDP_HUGE_1G);
}
static void test_eager_split_2m_pml(void **s)
{
	(void)s;
	eager_split(PML, TDP_HUGE_2M);
}

/* TDP_VM_NO_EAGER_SPLIT: huge leaves stay after enabling logging; the
 * first write to each splits it, maps the written page 4 KiB and is
 * logged, exactly. */
static void no_eager_split(unsigned vmflags)
{
	struct th_env f;
	uint64_t *bm, *want;
	struct tdp_stats s0, s1;
	struct tdp_translation t;
	int r;

	fx_init(&f, vmflags | NOEAGER, 16 * MiB, TDP_HUGE_2M);
	bm = th_bm_new(f.nwords);
	want = th_bm_new(f.nwords);
	populate(&f, NULL, 1);
	s0 = th_vm_stats(f.vm);
	assert_int_equal(s0.pages_2m, 8);
	fx_log(&f, true);
	s1 = th_vm_stats(f.vm);
	assert_int_equal(s1.eager_splits, s0.eager_splits);
	assert_int_equal(s1.pages_2m, 8);
	t = xlate(&f, 700, &r);
	assert_int_equal(r, 0);
	assert_int_equal(t.size, TDP_HUGE_2M);
	assert_int_equal(harvest(&f, bm), 0);
	/* reads through the huge leaves are fine and log nothing */
	for (uint64_t p = 0; p < f.npages; p += 37)
		gread_check(&f, 1, p, 1);
	assert_int_equal(harvest(&f, bm), 0);

	/* one write in each of 2 MiB regions 0..3, two in region 4 */
	static const uint64_t pages[] = {1,	     512 + 77, 1024 + 511,
					 1536 + 256, 2048 + 3, 2048 + 400};
	const unsigned nw = sizeof(pages) / sizeof(pages[0]);

	struct tdp_translation tw[6];
	int rw[6];

	for (unsigned i = 0; i < nw; i++) {
		gwrite(&f, i & 1, pages[i], 2);
		th_bm_set(want, pages[i]);
		tw[i] = xlate(&f, pages[i], &rw[i]);
	}
	harvest(&f, bm);
	/* first: nothing lost */
	for (unsigned i = 0; i < nw; i++)
		assert_true(th_bm_test(bm, pages[i]));
	if (vmflags & DBIT) {
		/* Dirty-bit mode: no write fault; the huge leaves stay
		 * writable and each dirty one reports all of its pages */
		for (uint64_t p = 0; p < 5 * 512; p++)
			th_bm_set(want, p);
		th_bm_assert_eq(bm, want, f.npages, "dirty huge leaves");
		assert_int_equal(th_vm_stats(f.vm).pages_2m, 8);
		for (unsigned i = 0; i < nw; i++) {
			assert_int_equal(rw[i], 0);
			assert_int_equal(tw[i].size, TDP_HUGE_2M);
			assert_true(tw[i].dirty);
		}
		/* their Dirty bits were harvested: nothing more */
		assert_int_equal(harvest(&f, bm), 0);
		for (unsigned i = 0; i < nw; i++)
			gread_check(&f, 0, pages[i], 2);
		free(bm);
		free(want);
		th_env_fini_empty(&f);
		return;
	}
	/* then: the write faults split the huge leaves, the written page
	 * was on a writable 4 KiB leaf, and nothing else was reported */
	for (unsigned i = 0; i < nw; i++) {
		assert_int_equal(rw[i], 0);
		assert_int_equal(tw[i].size, PG);
		assert_true(tw[i].prot & TDP_PROT_WRITE);
	}
	th_bm_assert_eq(bm, want, f.npages, "writes through huge leaves");
	s1 = th_vm_stats(f.vm);
	assert_int_equal(s1.pages_2m, 3); /* regions 5..7 */
	for (uint64_t p = 0; p < 5 * 512; p++) {
		t = xlate(&f, p, &r);
		assert_true(r == -ENOENT || (r == 0 && t.size == PG));
	}
	t = xlate(&f, 6 * 512 + 9, &r);
	assert_int_equal(r, 0);
	assert_int_equal(t.size, TDP_HUGE_2M);
	/* the data of the split regions is intact */
	for (uint64_t p = 0; p < f.npages; p++) {
		bool w = false;

		for (unsigned i = 0; i < nw; i++)
			w |= pages[i] == p;
		if (p % 7 == 0 || w)
			gread_check(&f, 0, p, w ? 2 : 1);
	}
	assert_int_equal(harvest(&f, bm), 0);
	free(bm);
	free(want);
	th_env_fini_empty(&f);
}

static void test_no_eager_split_wp(void **s)
{
	(void)s;
	no_eager_split(WP);
}
static void test_no_eager_split_dbit(void **s)
{
	(void)s;
	no_eager_split(DBIT);
}
static void test_no_eager_split_pml(void **s)
{
	(void)s;
	no_eager_split(PML);
}

/* Disabling logging rebuilds huge leaves where folio and alignment allow,
 * with few TLB flushes, and keeps the data; a slot whose gpa and hva are
 * not congruent modulo 2 MiB stays on 4 KiB leaves. */
static void recovery_2m(unsigned vmflags)
{
	struct th_env f;
	const uint64_t size1 = 4 * MiB, gpa1 = 8 * GiB + PG;
	uint64_t hva1, *gens, *bm, seed = 5;
	struct tdp_stats s0, s1;
	struct tdp_translation t;
	int r;

	fx_init(&f, vmflags, 64 * MiB, TDP_HUGE_2M);
	gens = calloc(f.npages, sizeof(*gens));
	bm = th_bm_new(f.nwords);
	assert_non_null(gens);
	/* slot 1: 2 MiB folios, but gpa off by 4 KiB */
	hva1 = th_env_map(&f, size1, TDP_HUGE_2M);
	th_set_slot(f.vm, 0, 1, gpa1, size1, hva1, 0);
	populate(&f, gens, 1);
	for (uint64_t off = 0; off < size1; off += PG)
		assert_int_equal(tdp_vcpu_write(f.v[1], gpa1 + off, &off, 8),
				 0);
	s0 = th_vm_stats(f.vm);
	assert_int_equal(s0.pages_2m, 32);
	assert_int_equal(s0.pages_4k, size1 / PG);

	fx_log(&f, true);
	th_set_slot(f.vm, 0, 1, gpa1, size1, hva1, TDP_MEM_LOG_DIRTY);
	assert_int_equal(th_vm_stats(f.vm).pages_2m, 0);
	for (unsigned i = 0; i < 500; i++) {
		uint64_t p = th_rand(&seed) % f.npages;

		gwrite(&f, i & 1, p, ++gens[p]);
	}
	harvest(&f, bm);
	for (unsigned i = 0; i < 100; i++) {
		uint64_t p = th_rand(&seed) % f.npages;

		gwrite(&f, i & 1, p, ++gens[p]);
	}

	s0 = th_vm_stats(f.vm);
	fx_log(&f, false);
	th_set_slot(f.vm, 0, 1, gpa1, size1, hva1, 0);
	s1 = th_vm_stats(f.vm);
	uint64_t rec = s1.huge_recovered - s0.huge_recovered;
	uint64_t fl = s1.recover_flushes - s0.recover_flushes;

	print_message("recovered %" PRIu64 " huge leaves with %" PRIu64
		      " flushes\n",
		      rec, fl);
	assert_true(rec >= 32);
	assert_true(fl > 0);
	assert_true(fl <= 1 + rec / 8);
	assert_int_equal(s1.pages_2m, 32);
	assert_int_equal(s1.pages_4k, size1 / PG); /* slot 1 only */
	for (uint64_t p = 0; p < f.npages; p++) {
		t = xlate(&f, p, &r);
		assert_int_equal(r, 0);
		assert_int_equal(t.size, TDP_HUGE_2M);
	}
	for (uint64_t off = 0; off < size1; off += PG) {
		assert_int_equal(tdp_vm_translate(f.vm, 0, gpa1 + off, &t), 0);
		assert_int_equal(t.size, PG);
	}
	th_audit_clean(f.vm);
	/* data unchanged; writes work and do not split anything */
	for (uint64_t p = 0; p < f.npages; p++)
		gread_check(&f, p & 1, p, gens[p]);
	for (unsigned i = 0; i < 100; i++) {
		uint64_t p = th_rand(&seed) % f.npages;

		gwrite(&f, 0, p, ++gens[p]);
	}
	for (uint64_t off = 0; off < size1; off += PG) {
		uint64_t x = 0;

		assert_int_equal(tdp_vcpu_read(f.v[0], gpa1 + off, &x, 8), 0);
		assert_int_equal(x, off);
	}
	assert_int_equal(th_vm_stats(f.vm).pages_2m, 32);
	for (uint64_t p = 0; p < f.npages; p++)
		hread_check(&f, p, gens[p]);
	free(gens);
	free(bm);
	th_env_fini_empty(&f);
}

static void test_recovery_2m_wp(void **s)
{
	(void)s;
	recovery_2m(WP);
}
static void test_recovery_2m_dbit(void **s)
{
	(void)s;
	recovery_2m(DBIT);
}
static void test_recovery_2m_pml(void **s)
{
	(void)s;
	recovery_2m(PML);
}

static void test_recovery_1g(void **s)
{
	struct th_env f;
	struct tdp_stats s0, s1;
	struct tdp_translation t;
	int r;

	SKIP_UNDER_TSAN();
	(void)s;
	fx_init_cfg(&f, WP, GiB, TDP_HUGE_1G, TDP_HUGE_1G);
	for (uint64_t p = 0; p < f.npages; p += 1021)
		gwrite(&f, 0, p, 1);
	assert_int_equal(th_vm_stats(f.vm).pages_1g, 1);
	fx_log(&f, true);
	assert_int_equal(th_vm_stats(f.vm).pages_4k, f.npages);
	for (uint64_t p = 3; p < f.npages; p += 4093)
		gwrite(&f, 1, p, 2);
	s0 = th_vm_stats(f.vm);
	fx_log(&f, false);
	s1 = th_vm_stats(f.vm);
	uint64_t rec = s1.huge_recovered - s0.huge_recovered;
	uint64_t fl = s1.recover_flushes - s0.recover_flushes;

	print_message("recovered %" PRIu64 " huge leaves with %" PRIu64
		      " flushes\n",
		      rec, fl);
	assert_true(rec >= 1);
	assert_true(fl > 0 && fl <= 1 + rec / 8);
	assert_int_equal(s1.pages_1g, 1);
	assert_int_equal(s1.pages_2m + s1.pages_4k, 0);
	for (uint64_t p = 0; p < f.npages; p += 511) {
		t = xlate(&f, p, &r);
		assert_int_equal(r, 0);
		assert_int_equal(t.size, TDP_HUGE_1G);
	}
	th_audit_clean(f.vm);
	for (uint64_t p = 0; p < f.npages; p += 1021)
		gread_check(&f, 1, p, p % 4093 == 3 ? 2 : 1);
	for (uint64_t p = 3; p < f.npages; p += 4093)
		gread_check(&f, 0, p, 2);
	th_env_fini_empty(&f);
}

/* ------------------------------------------------------------------ */
/* fast faults and fault counts                                        */
/* ------------------------------------------------------------------ */

static void fault_counts(unsigned vmflags)
{
	struct th_env f;
	uint64_t *bm, *want, gen = 1;
	struct tdp_stats s0, s1;

	fx_init(&f, vmflags, 8 * MiB, TDP_HUGE_2M);
	bm = th_bm_new(f.nwords);
	want = th_bm_new(f.nwords);
	populate(&f, NULL, gen);
	fx_log(&f, true);
	assert_int_equal(harvest(&f, bm), 0);
	/* 64 pages spread over the slot */
	for (uint64_t i = 0; i < 64; i++)
		th_bm_set(want, i * 31 + 5);
	for (unsigned cycle = 0; cycle < 6; cycle++) {
		gen++;
		s0 = th_vm_stats(f.vm);
		for (uint64_t i = 0; i < 64; i++)
			gwrite(&f, cycle & 1, i * 31 + 5, gen);
		s1 = th_vm_stats(f.vm);
		if (vmflags & DBIT) {
			/* leaves stay writable: no fault at all */
			assert_int_equal(s1.pf_taken, s0.pf_taken);
			/* with PML, the walkers logged each Dirty bit */
			assert_int_equal(s1.pml_logged - s0.pml_logged,
					 vmflags & TDP_VM_PML ? 64 : 0);
		} else {
			/* one write fault per page, fixed without mmu_lock
			 * unless the fast path is disabled */
			assert_int_equal(s1.pf_taken - s0.pf_taken, 64);
			assert_int_equal(s1.pf_fast - s0.pf_fast,
					 vmflags & NOFAST ? 0 : 64);
		}
		harvest(&f, bm);
		th_bm_assert_eq(bm, want, f.npages, "rewrite cycle");
		assert_int_equal(th_vm_stats(f.vm).dirty_harvests -
					 s0.dirty_harvests,
				 1);
		assert_int_equal(th_vm_stats(f.vm).dirty_pages - s0.dirty_pages,
				 64);
	}
	s1 = th_vm_stats(f.vm);
	if (vmflags & NOFAST)
		assert_int_equal(s1.pf_fast, 0);
	else if (!(vmflags & DBIT))
		assert_true(s1.pf_fast >= 6 * 64);
	for (uint64_t i = 0; i < 64; i++)
		gread_check(&f, 0, i * 31 + 5, gen);
	free(bm);
	free(want);
	th_env_fini_empty(&f);
}

static void test_faults_wp(void **s)
{
	(void)s;
	fault_counts(WP);
}
static void test_faults_wp_nofast(void **s)
{
	(void)s;
	fault_counts(WP | NOFAST);
}
static void test_faults_dbit(void **s)
{
	(void)s;
	fault_counts(DBIT);
}
static void test_faults_pml(void **s)
{
	(void)s;
	fault_counts(PML);
}

/* ------------------------------------------------------------------ */
/* manual protect                                                      */
/* ------------------------------------------------------------------ */

static void manual(unsigned vmflags)
{
	struct th_env f;
	uint64_t *bm, *bm2, *want, *ones, *gens, seed = 77;
	struct tdp_translation t;
	struct tdp_stats s0;
	int r;

	fx_init(&f, vmflags | MANUAL, 16 * MiB, TDP_HUGE_2M);
	bm = th_bm_new(f.nwords);
	bm2 = th_bm_new(f.nwords);
	want = th_bm_new(f.nwords);
	ones = th_bm_new(f.nwords);
	gens = calloc(f.npages, sizeof(*gens));
	assert_non_null(gens);
	memset(ones, 0xff, f.nwords * 8);
	populate(&f, gens, 1);
	s0 = th_vm_stats(f.vm);
	fx_log(&f, true);
	/* initially all set; nothing split or protected yet */
	assert_int_equal(harvest(&f, bm), f.npages);
	assert_int_equal(harvest(&f, bm2), f.npages);
	assert_int_equal(th_vm_stats(f.vm).pages_2m, 8);
	assert_int_equal(th_vm_stats(f.vm).eager_splits, s0.eager_splits);
	t = xlate(&f, 100, &r);
	assert_int_equal(r, 0);
	assert_int_equal(t.size, TDP_HUGE_2M);
	assert_true(t.prot & TDP_PROT_WRITE);
	/* writes before any clear: no fault needed */
	uint64_t taken = th_vm_stats(f.vm).pf_taken;

	gwrite(&f, 0, 100, ++gens[100]);
	assert_int_equal(th_vm_stats(f.vm).pf_taken, taken);

	/* clear the first 4 MiB: its huge leaves are split (and only
	 * those), its pages no longer reported */
	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 0, 0, 0, 1024, ones), 0);
	assert_int_equal(th_vm_stats(f.vm).pages_2m, 6);
	t = xlate(&f, 100, &r);
	assert_int_equal(r, 0);
	assert_int_equal(t.size, PG);
	if (vmflags & DBIT)
		assert_false(t.dirty);
	else
		assert_false(t.prot & TDP_PROT_WRITE);
	memset(want, 0, f.nwords * 8);
	for (uint64_t p = 1024; p < f.npages; p++)
		th_bm_set(want, p);
	harvest(&f, bm);
	th_bm_assert_eq(bm, want, f.npages, "after clearing 4 MiB");
	harvest(&f, bm);
	th_bm_assert_eq(bm, want, f.npages, "snapshot again");

	/* writes after the clear are reported */
	for (unsigned i = 0; i < 40; i++) {
		uint64_t p = th_rand(&seed) % 1024;

		gwrite(&f, i & 1, p, ++gens[p]);
		th_bm_set(want, p);
	}
	harvest(&f, bm);
	th_bm_assert_eq(bm, want, f.npages, "writes after clear");

	/* clear only some bits: only those are forgotten */
	memset(bm2, 0, f.nwords * 8);
	for (uint64_t p = 1024; p < f.npages; p += 3)
		th_bm_set(bm2, p);
	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 0, 0, 1024,
						f.npages - 1024,
						bm2 + 1024 / 64),
			 0);
	for (uint64_t p = 1024; p < f.npages; p += 3)
		want[p / 64] &= ~(1ull << (p % 64));
	harvest(&f, bm);
	th_bm_assert_eq(bm, want, f.npages, "partial clear");

	/* clear everything; then get, clear, write cycles with pages kept
	 * in the TLB: a clear that forgot to flush misses the rewrites */
	assert_int_equal(tdp_vm_clear_dirty_log(f.vm, 0, 0, 0, f.npages, ones),
			 0);
	assert_int_equal(harvest(&f, bm), 0);
	assert_int_equal(th_vm_stats(f.vm).pages_2m, 0);
	for (unsigned round = 0; round < 4; round++) {
		uint64_t base = 64 * (th_rand(&seed) % (f.npages / 64));

		memset(want, 0, f.nwords * 8);
		for (uint64_t p = base; p < base + 32; p++) {
			gwrite(&f, 1, p, ++gens[p]);
			th_bm_set(want, p);
		}
		harvest(&f, bm);
		th_bm_assert_eq(bm, want, f.npages, "manual hot pages");
		assert_int_equal(
			tdp_vm_clear_dirty_log(f.vm, 0, 0, 0, f.npages, bm), 0);
		for (uint64_t p = base; p < base + 32; p++)
			gwrite(&f, 1, p, ++gens[p]);
		harvest(&f, bm);
		th_bm_assert_eq(bm, want, f.npages,
				"manual hot pages rewritten");
		assert_int_equal(
			tdp_vm_clear_dirty_log(f.vm, 0, 0, 0, f.npages, bm), 0);
		assert_int_equal(harvest(&f, bm), 0);
	}
	for (uint64_t p = 0; p < f.npages; p++)
		hread_check(&f, p, gens[p]);
	free(bm);
	free(bm2);
	free(want);
	free(ones);
	free(gens);
	th_env_fini_empty(&f);
}

static void test_manual_wp(void **s)
{
	(void)s;
	manual(WP);
}
static void test_manual_dbit(void **s)
{
	(void)s;
	manual(DBIT);
}
static void test_manual_pml(void **s)
{
	(void)s;
	manual(PML);
}

/* ------------------------------------------------------------------ */
/* harvests never lose what reclaim needs                              */
/* ------------------------------------------------------------------ */

/*
 * 4 KiB folios swapped out and read back in are clean: the host keeps
 * their swap copy and will drop them on the next swap-out unless it
 * learns they were written.  A guest write that sets only the leaf's
 * Dirty bit (the read fault mapped the page writable, or a harvest in
 * DBIT mode cleared D) must reach the host before a harvest clears or
 * write-protects the leaf; otherwise the next swap-out brings back the
 * old contents.
 */
static void reclaim_after_harvest(unsigned vmflags)
{
	struct th_env f;
	uint64_t *bm, *want, *gens;

	fx_init(&f, vmflags, 2 * MiB, TDP_PAGE_SIZE);
	bm = th_bm_new(f.nwords);
	want = th_bm_new(f.nwords);
	gens = calloc(f.npages, sizeof(*gens));
	assert_non_null(gens);
	populate(&f, gens, 1);
	fx_log(&f, true);
	for (unsigned round = 0; round < 3; round++) {
		/* clean pages: swap out, read back in through the guest */
		assert_int_equal(tdp_host_swap_out(f.h, f.hva, f.size), 0);
		for (uint64_t p = 0; p < f.npages; p++)
			gread_check(&f, p & 1, p, gens[p]);
		harvest_clear(&f, bm); /* whatever earlier rounds left */
		memset(want, 0, f.nwords * 8);
		for (uint64_t p = round; p < f.npages; p += 5) {
			gwrite(&f, p & 1, p, ++gens[p]);
			th_bm_set(want, p);
		}
		harvest_clear(&f, bm);
		th_bm_assert_eq(bm, want, f.npages, "writes to clean pages");
		/* the harvest cleared D or write-protected: now reclaim */
		assert_int_equal(tdp_host_swap_out(f.h, f.hva, f.size), 0);
		for (uint64_t p = 0; p < f.npages; p++)
			hread_check(&f, p, gens[p]);
	}
	free(bm);
	free(want);
	free(gens);
	th_env_fini_empty(&f);
}

static void test_reclaim_wp(void **s)
{
	(void)s;
	reclaim_after_harvest(WP);
}
static void test_reclaim_dbit(void **s)
{
	(void)s;
	reclaim_after_harvest(DBIT);
}
static void test_reclaim_manual_dbit(void **s)
{
	(void)s;
	reclaim_after_harvest(DBIT | MANUAL);
}
static void test_reclaim_pml(void **s)
{
	(void)s;
	reclaim_after_harvest(PML);
}

/* ------------------------------------------------------------------ */
/* a harvest inside a slow write fault                                 */
/* ------------------------------------------------------------------ */

/*
 * Deterministic form of the race the concurrent test looks for: a slow
 * write fault (no fast path, or the page not mapped) is held at mmu_lock
 * while a harvest queues behind the lock; the lock is writer-preferring,
 * so the harvest runs first, then the fault maps.  Whatever the order, a
 * write that starts after the following harvest returned must be in the
 * harvest after that.
 */
struct sf {
	struct th_env *f;
	uint64_t *bm;
	int r;
};

static void *sf_write(void *arg)
{
	struct sf *x = arg;

	gwrite(x->f, 0, 0, 2);
	return NULL;
}

static void *sf_harvest(void *arg)
{
	struct sf *x = arg;

	x->r = tdp_vm_get_dirty_log(x->f->vm, 0, 0, x->bm);
	return NULL;
}

static void slow_fault_vs_harvest(unsigned vmflags, bool unmapped)
{
	struct th_env f;
	uint64_t *bm, *bm2;
	pthread_t tw, th;
	struct sf x;

	fx_init(&f, vmflags, 2 * MiB, TDP_PAGE_SIZE);
	bm = th_bm_new(f.nwords);
	bm2 = th_bm_new(f.nwords);
	populate(&f, NULL, 1);
	fx_log(&f, true);
	if (unmapped)
		assert_int_equal(tdp_vm_zap_gfn_range(f.vm, 0, f.gpa, PG), 0);
	x = (struct sf){.f = &f, .bm = bm};
	tdp_write_lock(&f.vm->mmu.lock);
	assert_int_equal(pthread_create(&tw, NULL, sf_write, &x), 0);
	usleep(100000); /* the fault reaches mmu_lock */
	assert_int_equal(pthread_create(&th, NULL, sf_harvest, &x), 0);
	usleep(100000); /* the harvest queues behind it */
	tdp_write_unlock(&f.vm->mmu.lock);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(pthread_join(tw, NULL), 0);
	assert_int_equal(x.r, 0);
	harvest(&f, bm2);
	/* the overlapping write: in one of the two */
	assert_true(th_bm_test(bm, 0) || th_bm_test(bm2, 0));
	/* a write after that: in the next one */
	gwrite(&f, 1, 0, 3);
	assert_int_equal(harvest(&f, bm), 1);
	assert_true(th_bm_test(bm, 0));
	gread_check(&f, 0, 0, 3);
	free(bm);
	free(bm2);
	th_env_fini_empty(&f);
}

static void test_slow_fault_vs_harvest_nofast(void **s)
{
	(void)s;
	slow_fault_vs_harvest(WP | NOFAST, false);
}
static void test_slow_fault_vs_harvest_unmapped(void **s)
{
	(void)s;
	slow_fault_vs_harvest(WP, true);
}
static void test_slow_fault_vs_harvest_dbit(void **s)
{
	(void)s;
	slow_fault_vs_harvest(DBIT, true);
}
static void test_slow_fault_vs_harvest_pml(void **s)
{
	(void)s;
	slow_fault_vs_harvest(PML, true);
}

/* ------------------------------------------------------------------ */
/* page-modification logging                                           */
/* ------------------------------------------------------------------ */

/* TDP_VM_PML only with Dirty-bit logging. */
static void test_pml_config(void **s)
{
	struct tdp_host *h = th_host_new(64 * MiB);
	struct tdp_vm_config c = {.flags = TDP_VM_PML};
	struct tdp_vm *vm = NULL;

	(void)s;
	assert_int_equal(tdp_vm_create(h, &c, &vm), -EINVAL);
	assert_null(vm);
	c.flags = TDP_VM_PML | TDP_VM_DIRTY_DBIT;
	assert_int_equal(tdp_vm_create(h, &c, &vm), 0);
	tdp_vm_destroy(vm);
	tdp_host_destroy(h);
}

/*
 * More Dirty bits in one guest-mode window than the log holds: the 513th
 * write exits before it sets its Dirty bit (a direct-access window is one
 * long stay in guest mode), the exit drains the log, and the write goes
 * on; the harvest reports all 600 pages, each logged once.
 */
static void test_pml_full_log(void **s)
{
	struct th_env f;
	uint64_t *bm, *want;
	struct tdp_stats s0, s1;

	(void)s;
	fx_init(&f, PML, 4 * MiB, TDP_PAGE_SIZE);
	bm = th_bm_new(f.nwords);
	want = th_bm_new(f.nwords);
	populate(&f, NULL, 1);
	fx_log(&f, true);
	for (uint64_t p = 0; p < 600; p++) {
		gread(&f, 0, p); /* TLB and leaves: writable, not Dirty */
		th_bm_set(want, p);
	}
	assert_int_equal(harvest(&f, bm), 0);
	s0 = th_vm_stats(f.vm);
	for (uint64_t p = 0; p < 600; p++) {
		void *ptr;
		int r = tdp_vcpu_map(f.v[0], f.gpa + p * PG, TDP_PROT_WRITE,
				     &ptr);

		/* the window is left once, at the full log */
		assert_int_equal(r, p == 512);
		((uint64_t *)ptr)[1] = 2;
	}
	assert_int_equal(tdp_vcpu_check_requests(f.v[0]), 0);
	s1 = th_vm_stats(f.vm);
	assert_int_equal(s1.pml_full_exits - s0.pml_full_exits, 1);
	assert_int_equal(s1.pml_logged - s0.pml_logged, 600);
	assert_int_equal(s1.pf_taken - s0.pf_taken, 0);
	assert_int_equal(harvest(&f, bm), 600);
	th_bm_assert_eq(bm, want, f.npages, "600 pages through one window");
	assert_int_equal(harvest(&f, bm), 0);
	free(bm);
	free(want);
	th_env_fini_empty(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors_get),
		cmocka_unit_test(test_errors_clear),
		cmocka_unit_test(test_exact_wp),
		cmocka_unit_test(test_exact_wp_nofast),
		cmocka_unit_test(test_exact_dbit),
		cmocka_unit_test(test_slow_fault_vs_harvest_nofast),
		cmocka_unit_test(test_slow_fault_vs_harvest_unmapped),
		cmocka_unit_test(test_slow_fault_vs_harvest_dbit),
		cmocka_unit_test(test_concurrent_wp),
		cmocka_unit_test(test_concurrent_wp_nofast),
		cmocka_unit_test(test_concurrent_dbit),
		cmocka_unit_test(test_concurrent_manual),
		cmocka_unit_test(test_concurrent_manual_dbit),
		cmocka_unit_test(test_eager_split_2m_wp),
		cmocka_unit_test(test_eager_split_2m_dbit),
		cmocka_unit_test(test_eager_split_1g_wp),
		cmocka_unit_test(test_eager_split_1g_dbit),
		cmocka_unit_test(test_no_eager_split_wp),
		cmocka_unit_test(test_no_eager_split_dbit),
		cmocka_unit_test(test_recovery_2m_wp),
		cmocka_unit_test(test_recovery_2m_dbit),
		cmocka_unit_test(test_recovery_1g),
		cmocka_unit_test(test_faults_wp),
		cmocka_unit_test(test_faults_wp_nofast),
		cmocka_unit_test(test_faults_dbit),
		cmocka_unit_test(test_manual_wp),
		cmocka_unit_test(test_manual_dbit),
		cmocka_unit_test(test_reclaim_wp),
		cmocka_unit_test(test_reclaim_dbit),
		cmocka_unit_test(test_reclaim_manual_dbit),
		cmocka_unit_test(test_pml_config),
		cmocka_unit_test(test_pml_full_log),
		cmocka_unit_test(test_exact_pml),
		cmocka_unit_test(test_slow_fault_vs_harvest_pml),
		cmocka_unit_test(test_concurrent_pml),
		cmocka_unit_test(test_concurrent_manual_pml),
		cmocka_unit_test(test_eager_split_2m_pml),
		cmocka_unit_test(test_no_eager_split_pml),
		cmocka_unit_test(test_recovery_2m_pml),
		cmocka_unit_test(test_faults_pml),
		cmocka_unit_test(test_manual_pml),
		cmocka_unit_test(test_reclaim_pml),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
