/* SPDX-License-Identifier: MIT */
/*
 * bench_work.c - the workloads of `tdpmmu bench`: populate, access,
 * memslot, mmu-stress and translate, written against the framework of
 * bench.h (phases run by the vCPU worker threads and/or the main thread).
 *
 * Content and verification: word `id` of every 4 KiB guest page belongs to
 * vCPU `id` and holds bench_expect(gfn, generation, id); each vCPU keeps
 * the generation of each of its words, checks every read, and after the
 * run the host's view of every word is checked (bench_verify_host).  The
 * memslot benchmark's test slots hold word 0 of each page, keyed by the
 * page's host address, so their content survives moves.
 *
 * Threading: vCPU functions touch only their struct bench_vcpu and their
 * own words; main-thread functions only the VM, the host and the phase
 * passed to them (see bench.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"

/* ------------------------------------------------------------------ */
/* Passes over a vCPU's pages                                          */
/* ------------------------------------------------------------------ */

enum pass_mode { PASS_MIXED, PASS_WRITE, PASS_READ, PASS_REFUSED };

struct pass {
	enum pass_mode mode;
	uint16_t gen;  /* generation written */
	unsigned wpct; /* PASS_MIXED: percent of writes */
	int want_err;  /* PASS_REFUSED: the error every write must get */
};

static uint64_t tick_overhead;

static void measure_tick_overhead(void)
{
	uint64_t best = ~0ull;

	for (int i = 0; i < 1000; i++) {
		uint64_t a = bench_ticks(), z = bench_ticks();

		if (z - a < best)
			best = z - a;
	}
	tick_overhead = best;
}

static uint64_t sample_ticks(uint64_t t0, uint64_t t1)
{
	uint64_t d = t1 - t0;

	return d > tick_overhead ? d - tick_overhead : 0;
}

static bool pass_writes(const struct bench_vcpu *bv, const struct pass *ps,
			uint64_t gpa)
{
	if (ps->mode == PASS_WRITE || ps->mode == PASS_REFUSED)
		return true;
	if (ps->mode == PASS_READ)
		return false;
	return bench_mix(gpa ^ bv->b->o->seed * 0x9e3779b97f4a7c15ull ^
			 (uint64_t)ps->gen << 48) %
		       100 <
	       ps->wpct;
}

static void vcpu_pass(struct bench_vcpu *bv, void *arg)
{
	const struct pass *ps = arg;
	struct bench *b = bv->b;

	for (uint64_t i = 0; i < bv->npages; i++) {
		uint64_t p = bv->order ? bv->order[i] : i;
		uint64_t gpa = bv->gpa0 + p * BENCH_PAGE + bv->id * 8ull;
		bool w = pass_writes(bv, ps, gpa);
		uint64_t val = w ? bench_expect(gpa >> 12, ps->gen, bv->id) : 0;
		uint64_t t0, t1, d;
		int r;

		t0 = bench_ticks();
		r = bench_access(bv, gpa, &val, w);
		t1 = bench_ticks();
		d = sample_ticks(t0, t1);
		bv->busy_ticks += d;
		hist_add(&bv->lat, (uint64_t)bench_ticks_ns(d));
		bv->ops++;
		if (ps->mode == PASS_REFUSED) {
			if (r != ps->want_err &&
			    atomic_fetch_add(&b->mismatches, 1) < 5)
				fprintf(stderr,
					"bench: write to read-only memory at "
					"gpa %#" PRIx64 " returned %d (%s), "
					"expected %d\n",
					gpa, r, r ? strerror(-r) : "success",
					ps->want_err);
			continue;
		}
		if (r) {
			bench_error(b, w ? "guest write" : "guest read", gpa,
				    r);
			return;
		}
		if (w) {
			bv->gen[p] = ps->gen;
		} else {
			uint64_t want =
				bench_expect(gpa >> 12, bv->gen[p], bv->id);

			if (val != want)
				bench_mismatch(b, "guest read", gpa, want, val);
		}
	}
}

static struct bench_phase *run_pass(struct bench *b, const char *name,
				    enum pass_mode mode, uint16_t gen,
				    int want_err)
{
	struct pass ps = {.mode = mode,
			  .gen = gen,
			  .wpct = b->o->write_pct,
			  .want_err = want_err};
	struct bench_phase *p;

	p = bench_phase_run(b, name, "access", vcpu_pass, &ps, NULL, NULL);
	p->bytes = b->size;
	return p;
}

/* The host writes generation 0 of every word a vCPU owns: the frames are
 * allocated here, outside the timed guest phases. */
static int main_host_prefault(struct bench *b, struct bench_phase *p, void *arg)
{
	const struct bench_opts *o = b->o;
	uint64_t pages = b->size / BENCH_PAGE;
	uint64_t per = o->bytes / BENCH_PAGE;

	p->lat_what = "per page (host first touch)";
	for (uint64_t pg = 0; pg < pages; pg++) {
		uint64_t gpa = b->gpa + pg * BENCH_PAGE;
		unsigned lo = o->overlap ? 0 : (unsigned)(pg / per);
		unsigned hi = o->overlap ? o->nvcpu : lo + 1;
		uint64_t t0 = bench_ticks(), t1;

		for (unsigned id = lo; id < hi; id++) {
			uint64_t val = bench_expect(gpa >> 12, 0, id);
			int r = bench_host_word(b, gpa + id * 8ull, &val, true);

			if (r) {
				bench_error(b, "host write", gpa, r);
				return r;
			}
		}
		t1 = bench_ticks();
		hist_add(&p->lat, (uint64_t)bench_ticks_ns(t1 - t0));
		p->ops++;
	}
	p->bytes = b->size;
	return 0;
}

static void host_prefault(struct bench *b)
{
	bench_phase_run(b, "Populate host memory", "page", NULL, NULL,
			main_host_prefault, NULL);
}

static void reset_mappings(struct bench *b)
{
	if (b->vm) {
		int r = tdp_vm_zap_gfn_range(b->vm, 0, b->gpa, b->size);

		if (r)
			bench_error(b, "zap", b->gpa, r);
	}
	for (unsigned i = 0; i < b->o->nvcpu; i++)
		if (b->v[i].floor)
			floor_reset(b->v[i].floor);
}

static int finish(struct bench *b)
{
	if (!atomic_load(&b->errors) && bench_verify_host(b))
		return -1;
	return atomic_load(&b->errors) || atomic_load(&b->mismatches) ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* populate                                                            */
/* ------------------------------------------------------------------ */

int bench_populate(struct bench *b)
{
	char name[64];

	measure_tick_overhead();
	host_prefault(b);
	for (unsigned it = 0; it < b->o->iters; it++) {
		if (it) {
			reset_mappings(b);
			snprintf(name, sizeof(name),
				 "Populate memory (iteration %u)", it + 1);
		} else {
			snprintf(name, sizeof(name), "Populate memory");
		}
		run_pass(b, name, PASS_MIXED, (uint16_t)(it + 1), 0);
	}
	return finish(b);
}

/* ------------------------------------------------------------------ */
/* access (access_tracking_perf_test)                                  */
/* ------------------------------------------------------------------ */

enum access_step_kind { STEP_POPULATE, STEP_WRITE, STEP_READ, STEP_AGE };

static const struct access_step {
	const char *name;
	enum access_step_kind kind;
	bool aging; /* needs the aging API (BENCH_HAVE_AGING) */
} access_steps[] = {
	{"Populating memory", STEP_POPULATE, false},
	{"Writing to populated memory", STEP_WRITE, false},
	{"Reading from populated memory", STEP_READ, false},
	{"Mark memory idle", STEP_AGE, true},
	{"Writing to idle memory", STEP_WRITE, true},
	{"Reading from idle memory", STEP_READ, true},
};

int bench_access_run(struct bench *b)
{
	uint16_t gen = 0;
	char name[96];

	measure_tick_overhead();
	host_prefault(b);
	for (unsigned it = 0; it < b->o->iters; it++) {
		for (size_t s = 0;
		     s < sizeof(access_steps) / sizeof(access_steps[0]); s++) {
			const struct access_step *st = &access_steps[s];

			if (st->kind == STEP_POPULATE && it)
				continue;
			if (st->aging && !BENCH_HAVE_AGING)
				continue;
			if (it)
				snprintf(name, sizeof(name),
					 "%s (iteration %u)", st->name, it + 1);
			else
				snprintf(name, sizeof(name), "%s", st->name);
			switch (st->kind) {
			case STEP_POPULATE:
				run_pass(b, name, PASS_MIXED, ++gen, 0);
				break;
			case STEP_WRITE:
				run_pass(b, name, PASS_WRITE, ++gen, 0);
				break;
			case STEP_READ:
				run_pass(b, name, PASS_READ, gen, 0);
				break;
			case STEP_AGE:
				/* the aging API call goes here */
				break;
			}
		}
	}
	if (!BENCH_HAVE_AGING)
		b->note = "Aging phases (mark idle, write/read idle memory): "
			  "not run; they arrive with the aging API";
	return finish(b);
}

/* ------------------------------------------------------------------ */
/* mmu-stress (mmu_stress_test)                                        */
/* ------------------------------------------------------------------ */

static int main_reset_mmu(struct bench *b, struct bench_phase *p, void *arg)
{
	uint64_t t0 = bench_ticks();
	int r = tdp_vm_invalidate_roots(b->vm);

	hist_add(&p->lat, (uint64_t)bench_ticks_ns(bench_ticks() - t0));
	p->ops = 1;
	p->lat_what = "per reset";
	if (r)
		bench_error(b, "invalidate roots", 0, r);
	return r;
}

static int main_mprotect(struct bench *b, struct bench_phase *p, void *arg)
{
	unsigned prot = *(const unsigned *)arg;
	uint64_t t0 = bench_ticks();
	int r = tdp_host_mprotect(b->host, b->hva, b->map_size, prot);

	hist_add(&p->lat, (uint64_t)bench_ticks_ns(bench_ticks() - t0));
	p->ops = 1;
	p->bytes = b->map_size;
	p->lat_what = "per mprotect";
	if (r)
		bench_error(b, "mprotect", b->gpa, r);
	return r;
}

int bench_mmu_stress(struct bench *b)
{
	static const unsigned ro = TDP_PROT_READ,
			      rw = TDP_PROT_READ | TDP_PROT_WRITE;
	uint16_t gen = 0;
	char name[96];

	measure_tick_overhead();
	host_prefault(b);
	for (unsigned it = 0; it < b->o->iters; it++) {
		char sfx[32] = "";

		if (it)
			snprintf(sfx, sizeof(sfx), " (iteration %u)", it + 1);
#define NAME(s) (snprintf(name, sizeof(name), "%s%s", s, sfx), name)
		run_pass(b, NAME("Write all memory"), PASS_WRITE, ++gen, 0);
		bench_phase_run(b, NAME("Reset MMU"), "reset", NULL, NULL,
				main_reset_mmu, NULL);
		run_pass(b, NAME("Rewrite memory"), PASS_WRITE, ++gen, 0);
		bench_phase_run(b, NAME("Make memory read-only"), "mprotect",
				NULL, NULL, main_mprotect, (void *)&ro);
		/* tdp_vcpu_write: -EFAULT when the host memory is not
		 * accessible (include/tdpmmu.h) */
		run_pass(b, NAME("Write read-only memory (refused)"),
			 PASS_REFUSED, gen, -EFAULT);
		/* and the refused writes changed nothing */
		run_pass(b, NAME("Read read-only memory"), PASS_READ, gen, 0);
		bench_phase_run(b, NAME("Make memory read-write"), "mprotect",
				NULL, NULL, main_mprotect, (void *)&rw);
		run_pass(b, NAME("Write read-write memory"), PASS_WRITE, ++gen,
			 0);
		run_pass(b, NAME("Read read-write memory"), PASS_READ, gen, 0);
#undef NAME
		if (atomic_load(&b->errors) || atomic_load(&b->mismatches))
			break;
	}
	return finish(b);
}

/* ------------------------------------------------------------------ */
/* memslot (memslot_perf_test, memslot_modification_stress_test)       */
/* ------------------------------------------------------------------ */

#define TSLOT_SIZE  (2ull << 20)
#define TSLOT_GPA_A (64ull << 30)
#define TSLOT_GPA_B (96ull << 30)
#define SPARE_GPA   (128ull << 30)

struct mslots {
	unsigned n;
	uint64_t *gpa; /* current gpa of test slot k (id k + 1) */
};

static uint64_t tkey(uint64_t page)
{
	return (1ull << 36) + page;
}

static int set_slot(struct bench *b, unsigned id, uint64_t gpa, uint64_t hva,
		    uint64_t size)
{
	struct tdp_memslot s = {
		.slot = id, .gpa = gpa, .hva = hva, .size = size};

	return tdp_vm_set_memslot(b->vm, &s);
}

/* vCPUs in the background: read, verify and rewrite their base memory
 * until the main thread is done. */
static void vcpu_background(struct bench_vcpu *bv, void *arg)
{
	struct bench *b = bv->b;

	for (uint64_t p = 0;
	     !atomic_load_explicit(&b->stop, memory_order_relaxed);
	     p = p + 1 < bv->npages ? p + 1 : 0) {
		uint64_t gpa = bv->gpa0 + p * BENCH_PAGE + bv->id * 8ull;
		uint64_t want = bench_expect(gpa >> 12, bv->gen[p], bv->id);
		uint64_t val;
		int r = bench_access(bv, gpa, &val, false);

		if (!r && val != want)
			bench_mismatch(b, "guest read (background)", gpa, want,
				       val);
		if (!r && (p & 1))
			r = bench_access(bv, gpa, &want, true);
		if (r) {
			bench_error(b, "guest access (background)", gpa, r);
			return;
		}
		bv->ops++;
	}
}

static int main_create(struct bench *b, struct bench_phase *p, void *arg)
{
	struct mslots *ms = arg;

	p->lat_what = "per memslot create";
	for (unsigned k = 0; k < ms->n; k++) {
		uint64_t t0 = bench_ticks();
		int r = set_slot(b, k + 1, ms->gpa[k],
				 b->test_hva + k * TSLOT_SIZE, TSLOT_SIZE);

		hist_add(&p->lat, (uint64_t)bench_ticks_ns(bench_ticks() - t0));
		if (r) {
			bench_error(b, "memslot create", ms->gpa[k], r);
			return r;
		}
		p->ops++;
	}
	return 0;
}

static int main_move(struct bench *b, struct bench_phase *p, void *arg)
{
	struct mslots *ms = arg;

	p->lat_what = "per memslot move";
	for (unsigned round = 0; round < b->o->iters; round++)
		for (unsigned k = 0; k < ms->n; k++) {
			uint64_t to = ms->gpa[k] == TSLOT_GPA_A + k * TSLOT_SIZE
					      ? TSLOT_GPA_B + k * TSLOT_SIZE
					      : TSLOT_GPA_A + k * TSLOT_SIZE;
			uint64_t t0 = bench_ticks();
			int r = set_slot(b, k + 1, to,
					 b->test_hva + k * TSLOT_SIZE,
					 TSLOT_SIZE);

			hist_add(&p->lat,
				 (uint64_t)bench_ticks_ns(bench_ticks() - t0));
			if (r) {
				bench_error(b, "memslot move", to, r);
				return r;
			}
			ms->gpa[k] = to;
			p->ops++;
		}
	return 0;
}

static int main_pairs(struct bench *b, struct bench_phase *p, void *arg)
{
	struct mslots *ms = arg;
	uint64_t n = (uint64_t)b->o->iters * ms->n;

	p->lat_what = "per create+delete pair";
	for (uint64_t i = 0; i < n; i++) {
		uint64_t t0 = bench_ticks();
		int r = set_slot(b, ms->n + 1, SPARE_GPA, b->spare_hva,
				 TSLOT_SIZE);

		if (!r)
			r = set_slot(b, ms->n + 1, SPARE_GPA, b->spare_hva, 0);
		hist_add(&p->lat, (uint64_t)bench_ticks_ns(bench_ticks() - t0));
		if (r) {
			bench_error(b, "memslot create/delete", SPARE_GPA, r);
			return r;
		}
		p->ops++;
	}
	return 0;
}

static int main_delete(struct bench *b, struct bench_phase *p, void *arg)
{
	struct mslots *ms = arg;

	p->lat_what = "per memslot delete";
	for (unsigned k = 0; k < ms->n; k++) {
		uint64_t t0 = bench_ticks();
		int r = set_slot(b, k + 1, ms->gpa[k],
				 b->test_hva + k * TSLOT_SIZE, 0);

		hist_add(&p->lat, (uint64_t)bench_ticks_ns(bench_ticks() - t0));
		if (r) {
			bench_error(b, "memslot delete", ms->gpa[k], r);
			return r;
		}
		p->ops++;
	}
	return 0;
}

/* vCPU i writes (gen 1) or reads back every page of test slots
 * k = i, i + n, ... at their current gpa. */
static void vcpu_tslots(struct bench_vcpu *bv, void *arg)
{
	struct mslots *ms = arg;
	struct bench *b = bv->b;
	bool write = !ms->gpa[ms->n]; /* gpa[n]: 0 = map (write), 1 = read */

	for (unsigned k = bv->id; k < ms->n; k += b->o->nvcpu)
		for (uint64_t pg = 0; pg < TSLOT_SIZE / BENCH_PAGE; pg++) {
			uint64_t gpa = ms->gpa[k] + pg * BENCH_PAGE;
			uint64_t key = tkey(k * (TSLOT_SIZE / BENCH_PAGE) + pg);
			uint64_t want = bench_expect(key, 1, 0);
			uint64_t val = want, t0, d;
			int r;

			t0 = bench_ticks();
			r = bench_access(bv, gpa, &val, write);
			d = sample_ticks(t0, bench_ticks());
			bv->busy_ticks += d;
			hist_add(&bv->lat, (uint64_t)bench_ticks_ns(d));
			if (r) {
				bench_error(b, "guest access (memslot)", gpa,
					    r);
				return;
			}
			if (!write && val != want)
				bench_mismatch(b, "guest read (memslot)", gpa,
					       want, val);
			bv->ops++;
		}
}

int bench_memslot(struct bench *b)
{
	unsigned n = b->o->slots;
	uint64_t folio =
		b->o->backing > TSLOT_SIZE ? TSLOT_SIZE : b->o->backing;
	uint64_t tpages = n * (TSLOT_SIZE / BENCH_PAGE);
	struct mslots ms = {.n = n};
	struct bench_phase *p;
	int r;

	measure_tick_overhead();
	ms.gpa = calloc(n + 1, sizeof(*ms.gpa));
	if (!ms.gpa)
		return -1;
	for (unsigned k = 0; k < n; k++)
		ms.gpa[k] = TSLOT_GPA_A + k * TSLOT_SIZE;
	r = tdp_host_mmap(b->host, n * TSLOT_SIZE,
			  TDP_PROT_READ | TDP_PROT_WRITE, folio, 0,
			  &b->test_hva);
	if (!r)
		r = tdp_host_mmap(b->host, TSLOT_SIZE,
				  TDP_PROT_READ | TDP_PROT_WRITE, folio, 0,
				  &b->spare_hva);
	for (uint64_t pg = 0; !r && pg < tpages; pg++) {
		uint64_t val = bench_expect(tkey(pg), 0, 0);

		r = tdp_host_write(b->host, b->test_hva + pg * BENCH_PAGE, &val,
				   8);
	}
	if (r) {
		bench_error(b, "test memory set-up", 0, r);
		free(ms.gpa);
		return -1;
	}
	host_prefault(b);
	run_pass(b, "Populate memory", PASS_WRITE, 1, 0);
	bench_phase_run(b, "Create memslots", "create", vcpu_background, NULL,
			main_create, &ms);
	ms.gpa[n] = 0;
	p = bench_phase_run(b, "Map memslots", "access", vcpu_tslots, &ms, NULL,
			    NULL);
	p->bytes = n * TSLOT_SIZE;
	bench_phase_run(b, "Move memslots", "move", vcpu_background, NULL,
			main_move, &ms);
	ms.gpa[n] = 1;
	p = bench_phase_run(b, "Refault moved memslots", "access", vcpu_tslots,
			    &ms, NULL, NULL);
	p->bytes = n * TSLOT_SIZE;
	bench_phase_run(b, "Create+delete memslot pairs", "pair",
			vcpu_background, NULL, main_pairs, &ms);
	bench_phase_run(b, "Delete memslots", "delete", vcpu_background, NULL,
			main_delete, &ms);
	for (uint64_t pg = 0; !atomic_load(&b->errors) && pg < tpages; pg++) {
		uint64_t val, want = bench_expect(tkey(pg), 1, 0);

		r = tdp_host_read(b->host, b->test_hva + pg * BENCH_PAGE, &val,
				  8);
		if (r || val != want) {
			bench_mismatch(b, "host (memslot)", pg * BENCH_PAGE,
				       want, val);
			break;
		}
	}
	free(ms.gpa);
	return finish(b);
}

/* ------------------------------------------------------------------ */
/* translate                                                           */
/* ------------------------------------------------------------------ */

#define TR_BATCH       4096
#define TR_PATTERNS    3
#define TR_INTERLEAVED TR_PATTERNS

enum tr_pattern { TR_HIT, TR_HOT, TR_COLD };

/* One batch of TR_BATCH reads of pattern @pat; its mean ns per access. */
static double tr_batch(struct bench_vcpu *bv, unsigned pat, bool count)
{
	struct bench *b = bv->b;
	const uint64_t *g = bv->tr_gpa + (size_t)pat * TR_BATCH;
	uint64_t *out = bv->tr_out;
	uint64_t t0, t1;
	double ns;

	t0 = bench_ticks();
	for (unsigned k = 0; k < TR_BATCH; k++)
		if (bench_access(bv, g[k], &out[k], false))
			out[k] = ~0ull;
	t1 = bench_ticks();
	ns = bench_ticks_ns(t1 - t0) / TR_BATCH;
	if (count) {
		bv->busy_ticks += t1 - t0;
		hist_add(&bv->lat, (uint64_t)ns);
		bv->ops += TR_BATCH;
	}
	for (unsigned k = 0; k < TR_BATCH; k++) {
		uint64_t p = (g[k] - bv->gpa0) >> 12;
		uint64_t want = bench_expect(g[k] >> 12, bv->gen[p], bv->id);

		if (out[k] != want) {
			bench_mismatch(b, "guest read (translate)", g[k], want,
				       out[k]);
			break;
		}
	}
	return ns;
}

/* @arg: the pattern, or TR_INTERLEAVED: hit, hot and cold batches in
 * turn, so that each round's differences are taken under the same
 * conditions (the machine may be shared).  Batch 0 only warms up. */
static void vcpu_translate(struct bench_vcpu *bv, void *arg)
{
	unsigned mode = *(const unsigned *)arg, n = bv->b->o->iters;

	for (unsigned batch = 0; batch <= n; batch++)
		for (unsigned pat = 0; pat < TR_PATTERNS; pat++) {
			double ns;

			if (mode != TR_INTERLEAVED && pat != mode)
				continue;
			ns = tr_batch(bv, pat, batch > 0);
			if (batch)
				bv->tr_batch_ns[(size_t)pat * n + batch - 1] =
					ns;
		}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median over every vCPU's batches of ns[pat] - ns[minus] (minus < 0:
 * of ns[pat] alone); a batch that lost the CPU does not move it. */
static double batch_median(struct bench *b, unsigned pat, int minus)
{
	unsigned n = b->o->iters, nv = b->o->nvcpu;
	double *all = malloc(sizeof(double) * n * nv), m;

	if (!all)
		return 0;
	for (unsigned i = 0; i < nv; i++)
		for (unsigned j = 0; j < n; j++) {
			const double *ns = b->v[i].tr_batch_ns;

			all[(size_t)i * n + j] =
				ns[(size_t)pat * n + j] -
				(minus < 0 ? 0 : ns[(size_t)minus * n + j]);
		}
	qsort(all, (size_t)n * nv, sizeof(double), cmp_double);
	m = all[(size_t)n * nv / 2];
	free(all);
	return m;
}

static struct bench_phase *translate_phase(struct bench *b, const char *name,
					   unsigned mode)
{
	struct bench_phase *p;
	double total;

	p = bench_phase_run(b, name, "access", vcpu_translate, &mode, NULL,
			    NULL);
	p->lat_what = "per access (means of 4096-access batches)";
	if (mode != TR_INTERLEAVED)
		bench_phase_extra(p, "batch_median_ns",
				  batch_median(b, mode, -1));
	/* the warm-up batches are in the counters too */
	total = (double)p->ops * (b->o->iters + 1) / b->o->iters;
	if (b->vm) {
		bench_phase_extra(p, "tlb_misses_per_access",
				  (double)p->d.tlb_misses / total);
		bench_phase_extra(p, "tlb_hits_per_access",
				  (double)p->d.tlb_hits / total);
	}
	return p;
}

int bench_translate(struct bench *b)
{
	struct bench_phase *hot;
	uint64_t seed = b->o->seed * 7 + 3;

	measure_tick_overhead();
	for (unsigned i = 0; i < b->o->nvcpu; i++) {
		struct bench_vcpu *bv = &b->v[i];

		bv->tr_gpa = calloc(TR_PATTERNS * TR_BATCH, sizeof(uint64_t));
		bv->tr_out = calloc(TR_BATCH, sizeof(uint64_t));
		bv->tr_batch_ns = calloc((size_t)TR_PATTERNS * b->o->iters,
					 sizeof(double));
		if (!bv->tr_gpa || !bv->tr_out || !bv->tr_batch_ns)
			return -1;
		for (unsigned k = 0; k < TR_BATCH; k++) {
			/* hit: one page; hot: a 4 KiB stride through one
			 * 2 MiB region (512 pages > 64 TLB sets, one
			 * paging-structure-cache entry); cold: random pages */
			uint64_t pg[TR_PATTERNS] = {
				0, k % 512, cli_rand(&seed) % bv->npages};

			for (unsigned t = 0; t < TR_PATTERNS; t++)
				bv->tr_gpa[(size_t)t * TR_BATCH + k] =
					bv->gpa0 + pg[t] * BENCH_PAGE +
					i * 8ull;
		}
	}
	host_prefault(b);
	run_pass(b, "Populate memory", PASS_WRITE, 1, 0);
	translate_phase(b, "TLB hit", TR_HIT);
	hot = translate_phase(b, "TLB miss, hot tables", TR_HOT);
	translate_phase(b, "TLB miss, cold tables", TR_COLD);
	/* the walk costs: from the interleaved rounds */
	translate_phase(b, "TLB hit/hot/cold interleaved", TR_INTERLEAVED);
	bench_summary(b, "hit_ns", "TLB hit, ns per access (batch median)",
		      batch_median(b, TR_HIT, -1));
	bench_summary(b, "walk_hot_ns",
		      "TLB-miss walk, hot tables, ns (median of miss - hit)",
		      batch_median(b, TR_HOT, TR_HIT));
	bench_summary(b, "walk_cold_ns",
		      "TLB-miss walk, cold tables, ns (median of miss - hit)",
		      batch_median(b, TR_COLD, TR_HIT));
	if (b->vm && hot->nextra > 1 && hot->extra[1].val < 0.99)
		fprintf(stderr,
			"bench translate: warning: the hot-table pattern "
			"missed the TLB on only %.0f%% of accesses (huge "
			"backing?)\n",
			hot->extra[1].val * 100);
	return finish(b);
}
