/* SPDX-License-Identifier: MIT */
/*
 * test_host_private.c - guest-private host memory (TDP_MAP_GUEST_PRIVATE,
 * src/host/pool.c): mapping and faulting it in (host_gup's guest_private,
 * host_lookup), the host operations that refuse it (-EPERM, and nothing
 * changed), munmap's private invalidation, tdp_host_punch_hole (its errors,
 * its notifier calls, freed frames, huge folios) and the
 * host_range_private / host_range_has_private queries.
 *
 * The host's own memory is only touched through frames (host_gup,
 * host_lookup and host_frame_base), as a VM would: tdp_host_read/write
 * refuse guest-private memory.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "helpers.h"
#include "host/host.h"
#include "wordcopy.h"

#define PG  4096ull
#define M2  TDP_HUGE_2M
#define RW  (TDP_PROT_READ | TDP_PROT_WRITE)
#define PRV TDP_MAP_GUEST_PRIVATE

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

/* Map [hva, hva+len) with TDP_MAP_FIXED | @flags. */
static void map_at(struct tdp_host *h, uint64_t hva, uint64_t len,
		   unsigned prot, uint64_t folio, unsigned flags)
{
	uint64_t a = hva;

	assert_int_equal(
		tdp_host_mmap(h, len, prot, folio, TDP_MAP_FIXED | flags, &a),
		0);
	assert_int_equal(a, hva);
}

/* Write generation @gen of the page at @hva as a VM would: through the
 * frame that host_gup returns. */
static void fill_frame(struct tdp_host *h, uint64_t hva, uint64_t gen)
{
	uint64_t buf[512];
	struct host_gup g;

	assert_int_equal(host_gup(h, hva, true, &g), 0);
	th_fill_page(buf, hva, gen);
	wordcopy_to_frame((uint8_t *)th_frame(h, g.pfn), buf, PG);
	host_put_frame(h, g.ref_pfn);
}

/* The page at @hva is populated and holds generation @gen (no fault-in). */
static void check_frame(struct tdp_host *h, uint64_t hva, uint64_t gen)
{
	assert_int_equal(th_check_page(th_frame(h, th_lookup_pfn(h, hva, NULL)),
				       hva, gen),
			 0);
}

/* ------------------------------------------------------------------ */
/* recording notifiers                                                 */
/* ------------------------------------------------------------------ */

enum op { OP_START, OP_END, OP_PSTART, OP_PEND, OP_HOOK, OP_AGE };

struct call {
	int who; /* notifier id (1, 2); 0 for the test hook */
	enum op op;
	uint64_t start, end;
	int probe_ret;	    /* host_lookup of log->probe during the call */
	bool poisoned;	    /* frame log->watch was poisoned then */
	bool range_private; /* host_range_private(start, end) then */
};

/* One log shared by the notifiers of a test and the test hook. */
struct log {
	struct tdp_host *h;
	uint64_t probe; /* hva */
	uint64_t watch; /* pfn, or ~0 */
	struct call c[64];
	int n;
};

struct rec {
	struct tdp_host_notifier n;
	struct log *log;
	int id;
};

static void log_call(struct log *l, int who, enum op op, uint64_t start,
		     uint64_t end)
{
	struct call *c;

	assert_true(l->n < (int)(sizeof(l->c) / sizeof(l->c[0])));
	c = &l->c[l->n++];
	*c = (struct call){.who = who, .op = op, .start = start, .end = end};
	/* the host holds its mmap lock for write (read for age): these
	 * lookups must work from here */
	c->probe_ret = host_lookup(l->h, l->probe, NULL, NULL, NULL);
	c->poisoned = l->watch != ~0ull && th_frame_poisoned(l->h, l->watch);
	c->range_private = host_range_private(l->h, start, end - start);
}

static void rec_start(struct tdp_host_notifier *n, uint64_t s, uint64_t e)
{
	struct rec *r = (struct rec *)n;

	log_call(r->log, r->id, OP_START, s, e);
}

static void rec_end(struct tdp_host_notifier *n, uint64_t s, uint64_t e)
{
	struct rec *r = (struct rec *)n;

	log_call(r->log, r->id, OP_END, s, e);
}

static void rec_pstart(struct tdp_host_notifier *n, uint64_t s, uint64_t e)
{
	struct rec *r = (struct rec *)n;

	log_call(r->log, r->id, OP_PSTART, s, e);
}

static void rec_pend(struct tdp_host_notifier *n, uint64_t s, uint64_t e)
{
	struct rec *r = (struct rec *)n;

	log_call(r->log, r->id, OP_PEND, s, e);
}

static void rec_age(struct tdp_host_notifier *n, uint64_t s, uint64_t e,
		    unsigned flags, uint64_t *young)
{
	struct rec *r = (struct rec *)n;

	log_call(r->log, r->id, OP_AGE, s, e);
}

static void rec_hook(void *arg, uint64_t s, uint64_t e)
{
	log_call(arg, 0, OP_HOOK, s, e);
}

/* A VM with the private invalidation path... */
static const struct tdp_host_notifier_ops full_ops = {
	.invalidate_start = rec_start,
	.invalidate_end = rec_end,
	.age = rec_age,
	.invalidate_private_start = rec_pstart,
	.invalidate_private_end = rec_pend,
};

/* ...and one without (no private memslots): its private ops are NULL. */
static const struct tdp_host_notifier_ops shared_ops = {
	.invalidate_start = rec_start,
	.invalidate_end = rec_end,
};

/* Register notifiers 1 (full_ops) and 2 (shared_ops) and the test hook. */
static void log_init(struct log *l, struct rec r[2], struct tdp_host *h)
{
	memset(l, 0, sizeof(*l));
	l->h = h;
	l->watch = ~0ull;
	for (int i = 0; i < 2; i++) {
		r[i] = (struct rec){.n.ops = i ? &shared_ops : &full_ops,
				    .log = l,
				    .id = i + 1};
		host_notifier_register(h, &r[i].n);
	}
	host_set_test_hook(h, rec_hook, l);
}

static void log_fini(struct log *l, struct rec r[2])
{
	host_set_test_hook(l->h, NULL, NULL);
	for (int i = 0; i < 2; i++)
		host_notifier_unregister(l->h, &r[i].n);
}

/* The log holds exactly the @n ops of @want, in that order, each over
 * [start, end); the calls of each op kind are one per notifier that has
 * the op (two for start/end, one for the private pair and the hook). */
static void expect_seq(const struct log *l, uint64_t start, uint64_t end,
		       const enum op *want, int n)
{
	int seen[6][3] = {{0}};

	assert_int_equal(l->n, n);
	for (int i = 0; i < n; i++) {
		const struct call *c = &l->c[i];

		assert_int_equal(c->op, want[i]);
		assert_int_equal(c->start, start);
		assert_int_equal(c->end, end);
		seen[c->op][c->who]++;
	}
	for (int op = OP_START; op <= OP_PEND; op++) {
		bool any = false;

		for (int i = 0; i < n; i++)
			any |= want[i] == (enum op)op;
		if (!any)
			continue;
		/* notifier 1 has every op; notifier 2 only start/end */
		assert_int_equal(seen[op][1], 1);
		assert_int_equal(seen[op][2], op == OP_START || op == OP_END);
	}
}

/* ------------------------------------------------------------------ */
/* mapping and faulting in                                             */
/* ------------------------------------------------------------------ */

static void test_mmap_gup(void **state)
{
	struct tdp_host *h = th_host_new(GiB);
	uint64_t base = 64ull << 30, a = 0, b = base, n = 0;
	unsigned order, prot;
	struct host_gup g;
	uint64_t pfn;

	/* the flag is known, alone and with TDP_MAP_FIXED; others are not */
	assert_int_equal(tdp_host_mmap(h, PG, RW, PG, 4, &a), -EINVAL);
	assert_int_equal(tdp_host_mmap(h, PG, RW, PG, PRV | 4, &a), -EINVAL);
	assert_int_equal(tdp_host_mmap(h, 4 * PG, RW, PG, PRV, &a), 0);
	assert_int_equal(
		tdp_host_mmap(h, 2 * M2, RW, M2, PRV | TDP_MAP_FIXED, &b), 0);
	assert_int_equal(b, base);
	assert_int_equal(tdp_host_mmap(h, PG, RW, PG, 0, &n), 0);
	assert_true(host_range_private(h, a, 4 * PG));
	assert_true(host_range_private(h, b, 2 * M2));
	assert_false(host_range_private(h, n, PG));
	assert_int_equal(th_host_stats(h).frames_used, 0);

	/* first touch allocates a zero-filled frame, as for normal memory */
	assert_int_equal(host_lookup(h, a + PG, NULL, NULL, NULL), -ENOENT);
	assert_int_equal(host_gup(h, a + PG + 8, false, &g), 0);
	assert_true(g.guest_private);
	assert_true(g.writable);
	assert_false(g.executable);
	assert_int_equal(g.order, 0);
	assert_int_equal(th_host_stats(h).frames_used, 1);
	assert_true(th_frame_all(h, g.pfn, 0));
	assert_int_equal(host_lookup(h, a + PG, &pfn, &order, &prot), 0);
	assert_int_equal(pfn, g.pfn);
	assert_int_equal(order, 0);
	assert_int_equal(prot, RW);
	host_put_frame(h, g.ref_pfn);

	/* huge folios too */
	assert_int_equal(host_gup(h, b + 5 * PG, true, &g), 0);
	assert_true(g.guest_private);
	assert_int_equal(g.order, 9);
	assert_int_equal(g.pfn, g.ref_pfn + 5);
	assert_int_equal(th_host_stats(h).frames_used, 1 + 512);
	assert_true(th_frame_all(h, g.pfn, 0));
	host_put_frame(h, g.ref_pfn);
	assert_int_equal(th_lookup_pfn(h, b + 7 * PG, &order), g.ref_pfn + 7);
	assert_int_equal(order, 9);

	/* normal memory says so */
	assert_int_equal(host_gup(h, n, false, &g), 0);
	assert_false(g.guest_private);
	host_put_frame(h, g.ref_pfn);

	/* the flag survives splitting the VMA (partial munmap) */
	assert_int_equal(tdp_host_munmap(h, a + PG, PG), 0);
	assert_true(host_range_private(h, a, PG));
	assert_true(host_range_private(h, a + 2 * PG, 2 * PG));
	assert_int_equal(host_gup(h, a + 3 * PG, false, &g), 0);
	assert_true(g.guest_private);
	host_put_frame(h, g.ref_pfn);

	assert_int_equal(tdp_host_munmap(h, a, PG), 0);
	assert_int_equal(tdp_host_munmap(h, a + 2 * PG, 2 * PG), 0);
	assert_int_equal(tdp_host_munmap(h, b, 2 * M2), 0);
	assert_int_equal(tdp_host_munmap(h, n, PG), 0);
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

/* ------------------------------------------------------------------ */
/* the host's own operations refuse guest-private memory               */
/* ------------------------------------------------------------------ */

typedef int (*range_op)(struct tdp_host *h, uint64_t hva, uint64_t len);

static int op_mprotect(struct tdp_host *h, uint64_t hva, uint64_t len)
{
	return tdp_host_mprotect(h, hva, len, TDP_PROT_READ);
}

static int op_age(struct tdp_host *h, uint64_t hva, uint64_t len)
{
	return tdp_host_age(h, hva, len, 0, NULL);
}

static int op_age_test(struct tdp_host *h, uint64_t hva, uint64_t len)
{
	return tdp_host_age(h, hva, len, TDP_AGE_TEST_ONLY, NULL);
}

static const range_op refusing_ops[] = {
	op_mprotect,	tdp_host_migrate, tdp_host_swap_out,
	tdp_host_split, op_age,		  op_age_test,
};
#define NR_REFUSING (sizeof(refusing_ops) / sizeof(refusing_ops[0]))

static void test_refused(void **state)
{
	struct tdp_host *h = th_host_new(GiB);
	/* normal 4 pages [n, n+4PG), then private 2 x 2 MiB [p, p+4M) */
	uint64_t p = 64ull << 30, n = p - 4 * PG, ro = p + 4 * M2;
	uint64_t npfn, ppfn, young[2] = {0x1234, 0x5678};
	uint8_t buf[4 * PG], orig[4 * PG];
	struct tdp_host_stats s0, s1;
	unsigned order, prot;
	struct rec r[2];
	struct log l;

	map_at(h, n, 4 * PG, RW, PG, 0);
	map_at(h, p, 2 * M2, RW, M2, PRV);
	map_at(h, ro, PG, TDP_PROT_READ, PG, PRV);
	th_host_put_page(h, n + 3 * PG,
			 3); /* n, n+PG, n+2PG stay unpopulated */
	fill_frame(h, p, 10);
	fill_frame(h, p + PG, 11);
	npfn = th_lookup_pfn(h, n + 3 * PG, NULL);
	ppfn = th_lookup_pfn(h, p, &order);
	assert_int_equal(order, 9);
	log_init(&l, r, h);
	s0 = th_host_stats(h);
	memset(buf, 0x5a, sizeof(buf));
	memcpy(orig, buf, sizeof(buf));

	/* read / write: private, mixed (populated normal page + private),
	 * and mixed from an unpopulated normal page, at odd offsets */
	assert_int_equal(tdp_host_read(h, p, buf, PG), -EPERM);
	assert_int_equal(tdp_host_read(h, p + 100, buf, 8), -EPERM);
	assert_int_equal(tdp_host_read(h, n + 3 * PG + 8, buf, PG), -EPERM);
	assert_int_equal(tdp_host_read(h, n + 8, buf, 4 * PG), -EPERM);
	assert_memory_equal(buf, orig, sizeof(buf)); /* nothing copied */
	th_fill_page(buf, 0, 99);
	assert_int_equal(tdp_host_write(h, p, buf, PG), -EPERM);
	assert_int_equal(tdp_host_write(h, p + M2 - 8, buf, 16), -EPERM);
	assert_int_equal(tdp_host_write(h, n + 3 * PG, buf, 2 * PG), -EPERM);
	assert_int_equal(tdp_host_write(h, n + 8, buf, 4 * PG), -EPERM);
	check_frame(h, n + 3 * PG, 3);
	check_frame(h, p, 10);
	check_frame(h, p + PG, 11);
	/* nothing faulted in */
	assert_int_equal(host_lookup(h, n, NULL, NULL, NULL), -ENOENT);
	assert_int_equal(host_lookup(h, n + PG, NULL, NULL, NULL), -ENOENT);
	assert_int_equal(host_lookup(h, p + M2, NULL, NULL, NULL), -ENOENT);

	/* the range operations: private (one page, a whole folio, all) and
	 * mixed (a normal page and one private, or everything) */
	for (unsigned i = 0; i < NR_REFUSING; i++) {
		range_op op = refusing_ops[i];

		assert_int_equal(op(h, p, PG), -EPERM);
		assert_int_equal(op(h, p + 5 * PG, 3 * PG), -EPERM);
		assert_int_equal(op(h, p, M2), -EPERM);
		assert_int_equal(op(h, p + M2, M2), -EPERM); /* unpopulated */
		assert_int_equal(op(h, p, 2 * M2), -EPERM);
		assert_int_equal(op(h, n + 3 * PG, 2 * PG), -EPERM);
		assert_int_equal(op(h, n, 4 * PG + 2 * M2), -EPERM);
	}
	/* a refused age leaves the caller's bitmap alone */
	assert_int_equal(tdp_host_age(h, n + 3 * PG, 2 * PG, 0, young), -EPERM);
	assert_int_equal(young[0], 0x1234);
	assert_int_equal(young[1], 0x5678);

	/* nothing changed, nobody was told, no VM was asked to age */
	assert_int_equal(l.n, 0);
	s1 = th_host_stats(h);
	assert_int_equal(s1.frames_used, s0.frames_used);
	assert_int_equal(s1.frame_refs, s0.frame_refs);
	assert_int_equal(s1.notifier_calls, s0.notifier_calls);
	assert_int_equal(s1.splits, 0);
	assert_int_equal(s1.migrations, 0);
	assert_int_equal(s1.swap_outs, 0);
	assert_int_equal(s1.swapped_pages, 0);
	assert_int_equal(th_lookup_pfn(h, p + PG, &order), ppfn + 1);
	assert_int_equal(order, 9);
	assert_int_equal(host_lookup(h, p, NULL, NULL, &prot), 0);
	assert_int_equal(prot, RW);
	assert_int_equal(host_lookup(h, n + 3 * PG, NULL, NULL, &prot), 0);
	assert_int_equal(prot, RW);
	assert_int_equal(th_lookup_pfn(h, n + 3 * PG, NULL), npfn);
	check_frame(h, n + 3 * PG, 3);
	check_frame(h, p, 10);
	check_frame(h, p + PG, 11);
	/* the refused agings cleared no accessed bit: the written normal
	 * page is still young */
	assert_int_equal(tdp_host_age(h, n + 3 * PG, PG, 0, NULL), 1);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.c[0].op, OP_AGE);
	l.n = 0;

	/* precedence: argument errors first */
	for (unsigned i = 0; i < NR_REFUSING; i++) {
		range_op op = refusing_ops[i];

		assert_int_equal(op(NULL, p, PG), -EINVAL);
		assert_int_equal(op(h, p + 1, PG), -EINVAL);
		assert_int_equal(op(h, p, PG + 1), -EINVAL);
		assert_int_equal(op(h, p, 0), -EINVAL);
		assert_int_equal(op(h, p, ~0ull & ~(PG - 1)), -EINVAL);
	}
	assert_int_equal(tdp_host_mprotect(h, p, PG, 8), -EINVAL);
	assert_int_equal(tdp_host_age(h, p, PG, 4, NULL), -EINVAL);
	assert_int_equal(tdp_host_read(h, p, NULL, 8), -EINVAL);
	assert_int_equal(tdp_host_write(h, ~0ull - 4, buf, 8), -EINVAL);
	/* then unmapped parts */
	for (unsigned i = 0; i < NR_REFUSING; i++) {
		range_op op = refusing_ops[i];

		assert_int_equal(op(h, p + 2 * M2 - PG, 2 * PG), -ENOENT);
		assert_int_equal(op(h, n - PG, 2 * PG), -ENOENT);
	}
	assert_int_equal(tdp_host_read(h, p + 2 * M2 - 8, buf, 16), -EFAULT);
	assert_int_equal(tdp_host_write(h, n - 8, buf, 4 * PG), -EFAULT);
	/* -EPERM only for an otherwise allowed access: a write to read-only
	 * private memory lacks the permission first */
	assert_int_equal(tdp_host_write(h, ro, buf, 8), -EACCES);
	assert_int_equal(tdp_host_read(h, ro, buf, 8), -EPERM);
	assert_int_equal(l.n, 0);
	assert_int_equal(th_host_stats(h).notifier_calls, s0.notifier_calls);

	/* normal memory alone is served as before */
	assert_int_equal(tdp_host_read(h, n + 3 * PG, buf, PG), 0);
	assert_int_equal(th_check_page(buf, n + 3 * PG, 3), 0);
	assert_int_equal(tdp_host_migrate(h, n + 3 * PG, PG), 0);
	assert_int_equal(th_host_stats(h).migrations, 1);
	assert_int_equal(tdp_host_swap_out(h, n, 4 * PG), 0);
	assert_int_equal(th_host_stats(h).swap_outs, 1);

	log_fini(&l, r);
	assert_int_equal(tdp_host_munmap(h, n, 4 * PG + 2 * M2), 0);
	assert_int_equal(tdp_host_munmap(h, ro, PG), 0);
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

/* ------------------------------------------------------------------ */
/* munmap                                                              */
/* ------------------------------------------------------------------ */

static void test_munmap_private(void **state)
{
	/* private 2 x 2 MiB [p, p+4M), then normal 4 pages [n, n+4PG) */
	uint64_t p = 64ull << 30, n = p + 2 * M2;
	static const enum op plain[] = {OP_START, OP_START, OP_HOOK, OP_END,
					OP_END};
	static const enum op both[] = {OP_START, OP_START, OP_PSTART, OP_HOOK,
				       OP_PEND,	 OP_END,   OP_END};
	struct tdp_host *h = th_host_new(GiB);
	uint64_t pfn, calls;
	unsigned order;
	struct rec r[2];
	struct log l;

	map_at(h, p, 2 * M2, RW, M2, PRV);
	map_at(h, n, 4 * PG, RW, PG, 0);
	fill_frame(h, p + 10 * PG, 10);
	fill_frame(h, p + 300 * PG, 300);
	fill_frame(h, p + M2 + 7 * PG, 7);
	for (unsigned i = 0; i < 4; i++)
		th_host_put_page(h, n + i * PG, i);
	pfn = th_lookup_pfn(h, p, &order);
	assert_int_equal(order, 9);
	log_init(&l, r, h);

	/* normal memory only: exactly as before, no private calls */
	calls = th_host_stats(h).notifier_calls;
	l.probe = n + 2 * PG;
	l.watch = th_lookup_pfn(h, n + 2 * PG, NULL);
	assert_int_equal(tdp_host_munmap(h, n + 2 * PG, PG), 0);
	expect_seq(&l, n + 2 * PG, n + 3 * PG, plain, 5);
	assert_int_equal(th_host_stats(h).notifier_calls, calls + 2);
	assert_false(l.c[0].poisoned);
	assert_true(th_frame_poisoned(h, l.watch));
	l.n = 0;

	/* part of a private huge folio: start, private start, hook, private
	 * end, end, all over the folio (it is split) */
	calls = th_host_stats(h).notifier_calls;
	l.probe = p + 260 * PG;
	l.watch = pfn + 260;
	assert_int_equal(tdp_host_munmap(h, p + 256 * PG, 16 * PG), 0);
	expect_seq(&l, p, p + M2, both, 7);
	assert_int_equal(th_host_stats(h).notifier_calls, calls + 3);
	/* the frames were there for the start callbacks and the hook */
	for (int i = 0; i < 4; i++) {
		assert_int_equal(l.c[i].probe_ret, 0);
		assert_false(l.c[i].poisoned);
	}
	assert_int_equal(l.c[6].probe_ret, -EFAULT); /* unmapped at the end */
	assert_true(th_frame_poisoned(h, pfn + 260));
	assert_false(th_frame_poisoned(h, pfn + 255));
	assert_int_equal(th_host_stats(h).splits, 1);
	assert_int_equal(th_host_stats(h).frames_used, 1024 - 16 + 3);
	assert_int_equal(th_lookup_pfn(h, p + 10 * PG, &order), pfn + 10);
	assert_int_equal(order, 0);
	check_frame(h, p + 10 * PG, 10);
	check_frame(h, p + 300 * PG, 300);
	assert_true(host_range_private(h, p, 256 * PG));
	assert_true(host_range_private(h, p + 272 * PG, 2 * M2 - 272 * PG));
	l.n = 0;

	/* private and normal in one range: the private pair over the whole
	 * (widened) range */
	calls = th_host_stats(h).notifier_calls;
	l.probe = p + M2 + 7 * PG;
	l.watch = th_lookup_pfn(h, p + M2 + 7 * PG, NULL);
	assert_int_equal(tdp_host_munmap(h, p + 2 * M2 - PG, 2 * PG), 0);
	expect_seq(&l, p + M2, n + PG, both, 7);
	assert_int_equal(th_host_stats(h).notifier_calls, calls + 3);
	assert_false(l.c[0].range_private); /* mixed */
	for (int i = 0; i < 4; i++)
		assert_false(l.c[i].poisoned);
	assert_false(th_frame_poisoned(h, l.watch)); /* split, still mapped */
	check_frame(h, p + M2 + 7 * PG, 7);
	assert_int_equal(th_host_stats(h).splits, 2);
	l.n = 0;

	log_fini(&l, r);
	assert_int_equal(tdp_host_munmap(h, p, 256 * PG), 0);
	assert_int_equal(
		tdp_host_munmap(h, p + 272 * PG, 2 * M2 - 272 * PG - PG), 0);
	assert_int_equal(tdp_host_munmap(h, n + PG, PG), 0);
	assert_int_equal(tdp_host_munmap(h, n + 3 * PG, PG), 0);
	assert_false(host_range_has_private(h, p, 2 * M2 + 4 * PG));
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

/* ------------------------------------------------------------------ */
/* punch_hole                                                          */
/* ------------------------------------------------------------------ */

static void test_punch_hole(void **state)
{
	static const enum op priv[] = {OP_PSTART, OP_HOOK, OP_PEND};
	struct tdp_host *h = th_host_new(GiB);
	uint64_t q = 64ull << 30, calls;
	struct tdp_host_stats s;
	struct host_gup g;
	struct rec r[2];
	struct log l;

	map_at(h, q, 8 * PG, RW, PG, PRV);
	for (unsigned i = 0; i < 8; i++)
		fill_frame(h, q + i * PG, i);
	assert_int_equal(th_host_stats(h).frames_used, 8);
	log_init(&l, r, h);

	/* only the private pair, and the hook between them */
	calls = th_host_stats(h).notifier_calls;
	l.probe = q + 3 * PG;
	l.watch = th_lookup_pfn(h, q + 3 * PG, NULL);
	assert_int_equal(tdp_host_punch_hole(h, q + 2 * PG, 3 * PG), 0);
	expect_seq(&l, q + 2 * PG, q + 5 * PG, priv, 3);
	assert_int_equal(l.c[0].who, 1);
	assert_int_equal(th_host_stats(h).notifier_calls, calls + 1);
	/* frames present and intact for the start and the hook, freed
	 * (poisoned) by the end; the range is still private memory */
	assert_int_equal(l.c[0].probe_ret, 0);
	assert_false(l.c[0].poisoned);
	assert_int_equal(l.c[1].probe_ret, 0);
	assert_false(l.c[1].poisoned);
	assert_int_equal(l.c[2].probe_ret, -ENOENT);
	assert_true(l.c[2].poisoned);
	assert_true(l.c[0].range_private);
	assert_true(l.c[2].range_private);
	l.n = 0;

	/* the frames are gone, the mapping and the other pages stay */
	assert_int_equal(th_host_stats(h).frames_used, 5);
	assert_int_equal(th_host_stats(h).frame_refs, 5);
	for (unsigned i = 2; i < 5; i++)
		assert_int_equal(host_lookup(h, q + i * PG, NULL, NULL, NULL),
				 -ENOENT);
	for (unsigned i = 0; i < 8; i++)
		if (i < 2 || i >= 5)
			check_frame(h, q + i * PG, i);
	assert_true(host_range_mapped(h, q, 8 * PG));
	assert_true(host_range_private(h, q, 8 * PG));

	/* the next touch gets a zero-filled frame */
	assert_int_equal(host_gup(h, q + 3 * PG, false, &g), 0);
	assert_true(g.guest_private);
	assert_int_equal(g.order, 0);
	assert_true(th_frame_all(h, g.pfn, 0));
	host_put_frame(h, g.ref_pfn);
	assert_int_equal(th_host_stats(h).frames_used, 6);

	/* a pinned frame outlives the hole until the pin goes */
	assert_int_equal(host_gup(h, q + 7 * PG, true, &g), 0);
	assert_int_equal(tdp_host_punch_hole(h, q + 7 * PG, PG), 0);
	assert_int_equal(host_lookup(h, q + 7 * PG, NULL, NULL, NULL), -ENOENT);
	s = th_host_stats(h);
	assert_int_equal(s.frames_used, 6);
	assert_int_equal(s.pinned_refs, 1);
	assert_false(th_frame_poisoned(h, g.pfn));
	assert_int_equal(th_check_page(th_frame(h, g.pfn), q + 7 * PG, 7), 0);
	host_put_frame(h, g.ref_pfn);
	assert_true(th_frame_poisoned(h, g.pfn));
	assert_int_equal(th_host_stats(h).frames_used, 5);
	l.n = 0;

	/* an unpopulated range: still the private pair, nothing freed */
	calls = th_host_stats(h).notifier_calls;
	assert_int_equal(tdp_host_punch_hole(h, q + 2 * PG, PG), 0);
	expect_seq(&l, q + 2 * PG, q + 3 * PG, priv, 3);
	assert_int_equal(th_host_stats(h).notifier_calls, calls + 1);
	assert_int_equal(th_host_stats(h).frames_used, 5);
	l.n = 0;

	/* the whole mapping */
	assert_int_equal(tdp_host_punch_hole(h, q, 8 * PG), 0);
	assert_int_equal(th_host_stats(h).frames_used, 0);
	log_fini(&l, r);
	assert_int_equal(tdp_host_munmap(h, q, 8 * PG), 0);
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

static void test_punch_errors(void **state)
{
	struct tdp_host *h = th_host_new(GiB);
	/* private 4 pages [q, q+4PG), normal 4 pages after, then a hole */
	uint64_t q = 64ull << 30, n = q + 4 * PG;
	struct tdp_host_stats s0, s1;
	struct rec r[2];
	struct log l;

	map_at(h, q, 4 * PG, RW, PG, PRV);
	map_at(h, n, 4 * PG, RW, PG, 0);
	for (unsigned i = 0; i < 4; i++) {
		fill_frame(h, q + i * PG, i);
		th_host_put_page(h, n + i * PG, 10 + i);
	}
	log_init(&l, r, h);
	s0 = th_host_stats(h);

	/* -EINVAL: as munmap */
	assert_int_equal(tdp_host_punch_hole(NULL, q, PG), -EINVAL);
	assert_int_equal(tdp_host_punch_hole(h, q + 1, PG), -EINVAL);
	assert_int_equal(tdp_host_punch_hole(h, q, PG + 1), -EINVAL);
	assert_int_equal(tdp_host_punch_hole(h, q, PG - 1), -EINVAL);
	assert_int_equal(tdp_host_punch_hole(h, q, 0), -EINVAL);
	assert_int_equal(tdp_host_punch_hole(h, q, ~0ull & ~(PG - 1)), -EINVAL);
	assert_int_equal(tdp_host_punch_hole(h, ~0ull & ~(PG - 1), 2 * PG),
			 -EINVAL);
	/* -ENOENT: not mapped, wholly or partly (before -EPERM) */
	assert_int_equal(tdp_host_punch_hole(h, 4096 * PG, PG), -ENOENT);
	assert_int_equal(tdp_host_punch_hole(h, q - PG, 2 * PG), -ENOENT);
	assert_int_equal(tdp_host_punch_hole(h, q, 9 * PG), -ENOENT);
	assert_int_equal(tdp_host_punch_hole(h, n + 3 * PG, 2 * PG), -ENOENT);
	assert_int_equal(tdp_host_punch_hole(h, 1ull << 47, PG), -ENOENT);
	/* -EPERM: normal memory, alone or with private memory */
	assert_int_equal(tdp_host_punch_hole(h, n, PG), -EPERM);
	assert_int_equal(tdp_host_punch_hole(h, n, 4 * PG), -EPERM);
	assert_int_equal(tdp_host_punch_hole(h, q + 3 * PG, 2 * PG), -EPERM);
	assert_int_equal(tdp_host_punch_hole(h, q, 8 * PG), -EPERM);

	/* nothing changed, nobody was told */
	assert_int_equal(l.n, 0);
	s1 = th_host_stats(h);
	assert_int_equal(s1.frames_used, s0.frames_used);
	assert_int_equal(s1.frame_refs, s0.frame_refs);
	assert_int_equal(s1.notifier_calls, s0.notifier_calls);
	for (unsigned i = 0; i < 4; i++) {
		check_frame(h, q + i * PG, i);
		check_frame(h, n + i * PG, 10 + i);
	}
	log_fini(&l, r);
	assert_int_equal(tdp_host_munmap(h, q, 8 * PG), 0);
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

static void test_punch_huge(void **state)
{
	static const enum op priv[] = {OP_PSTART, OP_HOOK, OP_PEND};
	struct tdp_host *h = th_host_new(GiB);
	uint64_t q = 64ull << 30, pfn, pfn2;
	struct host_gup g;
	unsigned order;
	struct rec r[2];
	struct log l;

	map_at(h, q, 2 * M2, RW, M2, PRV);
	fill_frame(h, q + 10 * PG, 10);
	fill_frame(h, q + 300 * PG, 300);
	fill_frame(h, q + M2 + 5 * PG, 5);
	pfn = th_lookup_pfn(h, q, &order);
	assert_int_equal(order, 9);
	pfn2 = th_lookup_pfn(h, q + M2, &order);
	assert_int_equal(order, 9);
	assert_int_equal(th_host_stats(h).frames_used, 1024);
	log_init(&l, r, h);

	/* part of a folio: it is split, and the notifiers are told about
	 * the whole folio (its mapping level changes) */
	l.probe = q + 10 * PG;
	assert_int_equal(tdp_host_punch_hole(h, q + 256 * PG, 16 * PG), 0);
	expect_seq(&l, q, q + M2, priv, 3);
	assert_int_equal(l.c[0].probe_ret, 0);
	assert_int_equal(th_host_stats(h).splits, 1);
	assert_int_equal(th_lookup_pfn(h, q + 10 * PG, &order), pfn + 10);
	assert_int_equal(order, 0);
	assert_int_equal(th_lookup_pfn(h, q + 300 * PG, &order), pfn + 300);
	assert_int_equal(order, 0);
	check_frame(h, q + 10 * PG, 10);
	check_frame(h, q + 300 * PG, 300);
	assert_int_equal(host_lookup(h, q + 260 * PG, NULL, NULL, NULL),
			 -ENOENT);
	assert_true(th_frame_poisoned(h, pfn + 256));
	assert_true(th_frame_poisoned(h, pfn + 271));
	assert_false(th_frame_poisoned(h, pfn + 255));
	assert_false(th_frame_poisoned(h, pfn + 272));
	assert_int_equal(th_host_stats(h).frames_used, 1024 - 16);
	assert_int_equal(th_host_stats(h).frame_refs, 1 + 512 - 16);
	/* the other folio is untouched */
	assert_int_equal(th_lookup_pfn(h, q + M2 + PG, &order), pfn2 + 1);
	assert_int_equal(order, 9);
	l.n = 0;

	/* a whole folio: freed as one, no split */
	assert_int_equal(tdp_host_punch_hole(h, q + M2, M2), 0);
	expect_seq(&l, q + M2, q + 2 * M2, priv, 3);
	assert_int_equal(th_host_stats(h).splits, 1);
	assert_int_equal(th_host_stats(h).frames_used, 512 - 16);
	assert_true(th_frame_poisoned(h, pfn2));
	assert_true(th_frame_poisoned(h, pfn2 + 511));
	l.n = 0;

	/* refaults: a huge zero-filled folio where the whole folio is empty,
	 * a small one inside the split folio */
	assert_int_equal(host_gup(h, q + M2 + 5 * PG, false, &g), 0);
	assert_int_equal(g.order, 9);
	assert_true(g.guest_private);
	assert_true(th_frame_all(h, g.pfn, 0));
	host_put_frame(h, g.ref_pfn);
	assert_int_equal(host_gup(h, q + 260 * PG, false, &g), 0);
	assert_int_equal(g.order, 0);
	assert_true(th_frame_all(h, g.pfn, 0));
	host_put_frame(h, g.ref_pfn);
	assert_int_equal(th_host_stats(h).frames_used, 512 - 16 + 512 + 1);

	log_fini(&l, r);
	assert_int_equal(tdp_host_munmap(h, q, 2 * M2), 0);
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

/* ------------------------------------------------------------------ */
/* host_range_private / host_range_has_private                          */
/* ------------------------------------------------------------------ */

static void test_range_queries(void **state)
{
	struct tdp_host *h = th_host_new(GiB);
	/* private [p, p+4PG), normal [p+4PG, p+8PG), hole, private 2 MiB */
	uint64_t p = 64ull << 30, n = p + 4 * PG, hole = p + 8 * PG;
	uint64_t b = p + M2;

	map_at(h, p, 4 * PG, RW, PG, PRV);
	map_at(h, n, 4 * PG, RW, PG, 0);
	map_at(h, b, M2, TDP_PROT_NONE, M2, PRV); /* prot does not matter */

	/*                       range               private  has_private */
	assert_true(host_range_private(h, p, 4 * PG));
	assert_true(host_range_has_private(h, p, 4 * PG));
	assert_true(host_range_private(h, p + PG, PG));
	assert_true(host_range_has_private(h, p + PG, PG));
	assert_true(host_range_private(h, p + 5, 3 * PG)); /* unaligned */
	assert_true(host_range_has_private(h, p + 4 * PG - 1, 1));
	assert_true(host_range_private(h, b, M2));
	assert_true(host_range_has_private(h, b + M2 - PG, PG));

	assert_false(host_range_private(h, n, 4 * PG)); /* normal */
	assert_false(host_range_has_private(h, n, 4 * PG));
	assert_false(host_range_private(h, n + 5, 8));
	assert_false(host_range_has_private(h, n + 5, 8));

	assert_false(host_range_private(h, p, 8 * PG)); /* mixed */
	assert_true(host_range_has_private(h, p, 8 * PG));
	assert_false(host_range_private(h, p + 3 * PG, 2 * PG));
	assert_true(host_range_has_private(h, p + 3 * PG, 2 * PG));
	assert_false(host_range_private(h, p + 4 * PG - 1, 2));
	assert_true(host_range_has_private(h, p + 4 * PG - 1, 2));
	assert_true(host_range_has_private(h, n - 1, PG));
	assert_false(host_range_has_private(h, n, PG));

	assert_false(host_range_private(h, hole, PG)); /* not mapped */
	assert_false(host_range_has_private(h, hole, PG));
	assert_false(host_range_private(h, p - PG, 2 * PG));
	assert_true(host_range_has_private(h, p - PG, 2 * PG));
	assert_false(host_range_private(h, b - PG, 2 * PG));
	assert_true(host_range_has_private(h, b - PG, 2 * PG));
	assert_false(host_range_has_private(h, hole, b - hole));
	assert_true(host_range_has_private(h, hole, b - hole + 1));
	assert_false(host_range_private(h, p, b + M2 - p)); /* everything */
	assert_true(host_range_has_private(h, p, b + M2 - p));

	/* empty ranges, overflow, no host */
	assert_true(host_range_private(h, hole, 0));
	assert_false(host_range_has_private(h, p, 0));
	assert_false(host_range_private(h, p, ~0ull));
	assert_false(host_range_has_private(h, p, ~0ull));
	assert_false(host_range_private(NULL, p, PG));
	assert_false(host_range_has_private(NULL, p, PG));

	/* a hole punched keeps the mapping: still private */
	fill_frame(h, p, 1);
	assert_int_equal(tdp_host_punch_hole(h, p, 4 * PG), 0);
	assert_true(host_range_private(h, p, 4 * PG));
	/* after munmap the range is gone */
	assert_int_equal(tdp_host_munmap(h, p + PG, PG), 0);
	assert_false(host_range_private(h, p, 4 * PG));
	assert_true(host_range_has_private(h, p, 4 * PG));
	assert_false(host_range_has_private(h, p + PG, PG));
	assert_true(host_range_private(h, p + 2 * PG, 2 * PG));

	assert_int_equal(tdp_host_munmap(h, p, PG), 0);
	assert_int_equal(tdp_host_munmap(h, p + 2 * PG, 6 * PG), 0);
	assert_int_equal(tdp_host_munmap(h, b, M2), 0);
	assert_false(host_range_has_private(h, p, b + M2 - p));
	th_assert_host_empty(h);
	tdp_host_destroy(h);
}

/* Destroying a host with populated guest-private memory (and a hole in
 * it) frees everything: the sanitizer builds check for leaks. */
static void test_destroy(void **state)
{
	struct tdp_host *h = th_host_new(GiB);
	uint64_t q = 64ull << 30;

	map_at(h, q, 2 * M2, RW, M2, PRV);
	map_at(h, q + 2 * M2, 4 * PG, RW, PG, PRV);
	fill_frame(h, q, 1);
	fill_frame(h, q + M2, 2);
	fill_frame(h, q + 2 * M2 + PG, 3);
	assert_int_equal(tdp_host_punch_hole(h, q + 8 * PG, PG), 0);
	assert_int_equal(th_host_stats(h).frames_used, 1024 - 1 + 1);
	tdp_host_destroy(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mmap_gup),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_munmap_private),
		cmocka_unit_test(test_punch_hole),
		cmocka_unit_test(test_punch_errors),
		cmocka_unit_test(test_punch_huge),
		cmocka_unit_test(test_range_queries),
		cmocka_unit_test(test_destroy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
