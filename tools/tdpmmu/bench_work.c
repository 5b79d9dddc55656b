/* SPDX-License-Identifier: MIT */
/*
 * bench_work.c - the workloads of `tdpmmu bench`: populate, access,
 * memslot, mmu-stress, translate and dirty-log, written against the
 * framework of bench.h (phases run by the vCPU worker threads and/or the
 * main thread).
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
#include <sched.h>
#include <string.h>
#include <time.h>

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
	bool untimed;  /* no clock read per access: the phase's own time */
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
	return rng_mix(gpa ^ bv->b->o->seed * 0x9e3779b97f4a7c15ull ^
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

		if (ps->untimed) {
			r = bench_access(bv, gpa, &val, w);
		} else {
			t0 = bench_ticks();
			r = bench_access(bv, gpa, &val, w);
			t1 = bench_ticks();
			d = sample_ticks(t0, t1);
			bv->busy_ticks += d;
			hist_add(&bv->lat, (uint64_t)bench_ticks_ns(d));
		}
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

static double phase_extra_val(const struct bench_phase *p, const char *key)
{
	for (unsigned i = 0; i < p->nextra; i++)
		if (!strcmp(p->extra[i].key, key))
			return p->extra[i].val;
	return 0;
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

/* One pass of a steady phase: zap, then the first @active vCPUs fault
 * their memory in again.  The pass's phase slot is given back (the caller
 * adds it up); the returned phase stays readable until the next one. */
static struct bench_phase *steady_pass(struct bench *b, const char *name,
				       unsigned active, uint16_t *gen)
{
	struct pass ps = {.mode = PASS_MIXED,
			  .gen = ++*gen,
			  .wpct = b->o->write_pct,
			  .untimed = true};
	struct bench_phase *p;

	reset_mappings(b);
	b->active = active;
	p = bench_phase_run(b, name, "access", vcpu_pass, &ps, NULL, NULL);
	p->bytes = p->threads * b->o->bytes;
	b->nph--; /* the pass is part of a phase, not one itself */
	return p;
}

/* A steady-state populate with the first @active vCPUs: zap the guest
 * memory and fault it in again (untimed per access), pass after pass,
 * until the passes add up to BENCH_STEADY_NS and there were at least -i of
 * them, after one warm-up pass that is not counted.  Table pages freed by
 * the zap are reused, the host frames stay. */
static void steady_populate(struct bench *b, const char *name, unsigned active,
			    uint16_t *gen)
{
	struct bench_phase acc = {0};
	struct bench_phase *p;
	unsigned n = 0;

	hist_init(&acc.lat);
	/* one pass that is not counted: the first refault after a zap may
	 * still find the zapped tables on their way back to the allocator
	 * (freed after an RCU grace period) and take fresh memory */
	steady_pass(b, name, active, gen);
	do {
		bench_phase_add(&acc, steady_pass(b, name, active, gen));
		n++;
	} while (!atomic_load(&b->errors) && !atomic_load(&b->mismatches) &&
		 (acc.wall_ns < BENCH_STEADY_NS || n < b->o->iters));
	p = bench_phase_new(b, name, "access");
	*p = acc;
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->unit = "access";
	p->lat_what = NULL;
	bench_phase_extra(p, "passes", (double)n);
}

/* populate: the first (cold) populate allocates table pages and touches
 * every table for the first time; it is its own phase.  Then the steady
 * state with all vCPUs and, with more than one, with vCPU 0 alone: its
 * faults per second against the all-vCPU phase's are the scaling. */
int bench_populate(struct bench *b)
{
	uint16_t gen = 1;

	measure_tick_overhead();
	host_prefault(b);
	run_pass(b, "Populate memory", PASS_MIXED, gen, 0);
	steady_populate(b, "Populate memory (steady)", b->o->nvcpu, &gen);
	if (b->o->nvcpu > 1) {
		const struct bench_phase *all = &b->ph[b->nph - 1], *one;
		double r_all, r_one;

		steady_populate(b, "Populate memory, 1 vCPU (steady)", 1, &gen);
		one = &b->ph[b->nph - 1];
		r_all = all->wall_ns ? (double)all->ops / all->wall_ns : 0;
		r_one = one->wall_ns ? (double)one->ops / one->wall_ns : 0;
		if (r_one > 0)
			bench_summary(b, "scaling",
				      "steady populate, accesses/s with all "
				      "vCPUs / with 1",
				      r_all / r_one);
	}
	return finish(b);
}

/* ------------------------------------------------------------------ */
/* vCPUs in the background of a main-thread operation                  */
/* ------------------------------------------------------------------ */

static bool bg_stop(struct bench *b)
{
	return atomic_load_explicit(&b->stop, memory_order_relaxed);
}

/* One background access of page @p of the vCPU's memory: read and verify
 * its word and, on odd pages, write it back unchanged.  0, or the error
 * of the access that failed (reported). */
static int background_page(struct bench_vcpu *bv, uint64_t p)
{
	struct bench *b = bv->b;
	uint64_t gpa = bv->gpa0 + p * BENCH_PAGE + bv->id * 8ull;
	uint64_t want = bench_expect(gpa >> 12, bv->gen[p], bv->id);
	uint64_t val;
	int r = bench_access(bv, gpa, &val, false);

	if (!r && val != want)
		bench_mismatch(b, "guest read (background)", gpa, want, val);
	if (!r && (p & 1))
		r = bench_access(bv, gpa, &want, true);
	if (r) {
		bench_error(b, "guest access (background)", gpa, r);
		return r;
	}
	bv->ops++;
	return 0;
}

/* Read, verify and rewrite the vCPU's memory, round and round, until the
 * main thread is done (access, memslot).  The memory stays mapped, so
 * after the first round the vCPUs hardly fault. */
static void vcpu_background(struct bench_vcpu *bv, void *arg)
{
	for (uint64_t p = 0; !bg_stop(bv->b);
	     p = p + 1 < bv->npages ? p + 1 : 0)
		if (background_page(bv, p))
			return;
}

/* The guest memory a faulting vCPU has zapped at a time: 2 MiB, a host
 * invalidation of one transparent huge page's worth. */
#define REFAULT_CHUNK (2ull << 20)

/* vCPUs that keep faulting (VM designs only): zap a chunk of the vCPU's
 * memory (tdp_vm_zap_gfn_range, under mmu_lock for write as a host
 * invalidation would be), then read, verify and rewrite every page of it,
 * so the first access to each page faults and maps it again (mmu_lock for
 * read in the TDP engine, for write in the legacy engine and with
 * TDP_VM_EXCLUSIVE_FAULTS); then the next chunk, round and round.  At any
 * time all but one chunk per vCPU is mapped. */
static void vcpu_refault(struct bench_vcpu *bv, void *arg)
{
	struct bench *b = bv->b;
	uint64_t step = REFAULT_CHUNK / BENCH_PAGE;

	for (uint64_t c = 0; !bg_stop(b);
	     c = c + step < bv->npages ? c + step : 0) {
		uint64_t n = bv->npages - c < step ? bv->npages - c : step;
		uint64_t gpa = bv->gpa0 + c * BENCH_PAGE;
		int r = tdp_vm_zap_gfn_range(b->vm, 0, gpa, n * BENCH_PAGE);

		if (r) {
			bench_error(b, "zap (refault)", gpa, r);
			return;
		}
		for (uint64_t p = c; p < c + n && !bg_stop(b); p++)
			if (background_page(bv, p))
				return;
	}
}

/* ------------------------------------------------------------------ */
/* access (access_tracking_perf_test)                                  */
/* ------------------------------------------------------------------ */

/* Aging goes through the host (tdp_host_age, the reclaim scan's
 * clear_young), 2 MiB at a time like a page-table walk of the host; a
 * pass covers all guest memory. */
#define AGE_CHUNK (2ull << 20)

struct age_pass {
	uint64_t min_ns; /* keep making passes until this long has passed */
	unsigned min_passes;
	uint64_t young, pages; /* results */
	unsigned passes;
};

/* One aging pass over the guest memory; the young pages it found, or a
 * negative errno. */
static int64_t age_once(struct bench *b, struct bench_phase *p)
{
	int64_t young = 0;

	for (uint64_t off = 0; off < b->size; off += AGE_CHUNK) {
		uint64_t len =
			b->size - off < AGE_CHUNK ? b->size - off : AGE_CHUNK;
		uint64_t t0 = bench_ticks();
		int r = tdp_host_age(b->host, b->hva + off, len, 0, NULL);

		hist_add(&p->lat, (uint64_t)bench_ticks_ns(bench_ticks() - t0));
		if (r < 0) {
			bench_error(b, "tdp_host_age", b->gpa + off, r);
			return r;
		}
		young += r;
		p->ops += len / BENCH_PAGE;
	}
	return young;
}

static int main_age(struct bench *b, struct bench_phase *p, void *arg)
{
	struct age_pass *ap = arg;
	uint64_t t0 = cli_now_ns();

	p->lat_what = "per 2 MiB tdp_host_age call";
	p->bytes = 0;
	ap->young = ap->pages = 0;
	ap->passes = 0;
	do {
		int64_t y = age_once(b, p);

		if (y < 0)
			return (int)y;
		ap->young += (uint64_t)y;
		ap->pages += b->size / BENCH_PAGE;
		ap->passes++;
	} while (ap->passes < ap->min_passes || cli_now_ns() - t0 < ap->min_ns);
	return 0;
}

/* The main thread idles for as long as the aging phase took, while the
 * vCPUs run: their throughput without aging. */
static int main_idle(struct bench *b, struct bench_phase *p, void *arg)
{
	uint64_t ns = *(const uint64_t *)arg, t0 = cli_now_ns();
	struct timespec ts = {.tv_nsec = 1000000};

	while (cli_now_ns() - t0 < ns)
		nanosleep(&ts, NULL);
	return 0;
}

static struct bench_phase *age_phase(struct bench *b, const char *name,
				     bench_vcpu_fn bg, struct age_pass *ap)
{
	struct bench_phase *p;

	p = bench_phase_run(b, name, "page", bg, NULL, main_age, ap);
	bench_phase_extra(p, "young_pages", (double)ap->young / ap->passes);
	bench_phase_extra(p, "young_pct",
			  ap->pages ? 100.0 * ap->young / ap->pages : 0);
	if (ap->passes > 1)
		bench_phase_extra(p, "passes", ap->passes);
	bench_phase_extra(p, "ms_per_pass",
			  (double)p->wall_ns / 1e6 / ap->passes);
	return p;
}

enum access_step_kind {
	STEP_POPULATE,
	STEP_WRITE,
	STEP_READ,
	STEP_AGE,
	STEP_AGE_BUSY,	  /* aging while the vCPUs run */
	STEP_NO_AGE_BUSY, /* the vCPUs run as long, without aging */
};

/* What the vCPUs do in the background of STEP_AGE_BUSY and
 * STEP_NO_AGE_BUSY: run on mapped memory, or keep faulting. */
enum access_bg { BG_RUN, BG_FAULT, BG_KINDS };

static const bench_vcpu_fn access_bg_fn[BG_KINDS] = {
	[BG_RUN] = vcpu_background,
	[BG_FAULT] = vcpu_refault,
};

static const struct access_step {
	const char *name;
	enum access_step_kind kind;
	bool aging; /* needs Accessed bits (not the floor) */
	enum access_bg bg;
} access_steps[] = {
	{"Populating memory", STEP_POPULATE, false, BG_RUN},
	{"Writing to populated memory", STEP_WRITE, false, BG_RUN},
	{"Reading from populated memory", STEP_READ, false, BG_RUN},
	{"Mark memory idle", STEP_AGE, true, BG_RUN},
	{"Writing to idle memory", STEP_WRITE, true, BG_RUN},
	{"Reading from idle memory", STEP_READ, true, BG_RUN},
	{"Mark memory idle again", STEP_AGE, true, BG_RUN},
	{"Aging while vCPUs run", STEP_AGE_BUSY, true, BG_RUN},
	{"vCPUs run without aging", STEP_NO_AGE_BUSY, true, BG_RUN},
	/* seed 002's case: vCPU faults contend with aging for mmu_lock */
	{"Aging while vCPUs fault", STEP_AGE_BUSY, true, BG_FAULT},
	{"vCPUs fault without aging", STEP_NO_AGE_BUSY, true, BG_FAULT},
};

/* Faults per second of the vCPUs over a background phase. */
static void add_fault_rate(struct bench_phase *p)
{
	bench_phase_extra(p, "vcpu_faults_per_s",
			  p->wall_ns ? (double)p->d.pf_fixed * 1e9 /
					       (double)p->wall_ns
				     : 0);
}

int bench_access_run(struct bench *b)
{
	uint16_t gen = 0;
	char name[96];
	struct bench_phase *idle = NULL, *busy[BG_KINDS] = {0},
			   *nobusy[BG_KINDS] = {0};
	uint64_t busy_ns[BG_KINDS] = {0};

	measure_tick_overhead();
	host_prefault(b);
	for (unsigned it = 0; it < b->o->iters; it++) {
		for (size_t s = 0;
		     s < sizeof(access_steps) / sizeof(access_steps[0]); s++) {
			const struct access_step *st = &access_steps[s];
			struct age_pass ap = {.min_passes = 1};
			struct bench_phase *p;

			if (st->kind == STEP_POPULATE && it)
				continue;
			if (st->aging && !b->vm)
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
				p = age_phase(b, name, NULL, &ap);
				if (!idle)
					idle = p;
				break;
			case STEP_AGE_BUSY:
				/* at least 2 passes and 200 ms, so that the
				 * vCPUs are running through whole passes */
				ap.min_passes = 2;
				ap.min_ns = 200000000ull;
				p = age_phase(b, name, access_bg_fn[st->bg],
					      &ap);
				add_fault_rate(p);
				busy_ns[st->bg] = p->wall_ns;
				if (!busy[st->bg])
					busy[st->bg] = p;
				break;
			case STEP_NO_AGE_BUSY:
				p = bench_phase_run(
					b, name, "page", access_bg_fn[st->bg],
					NULL, main_idle, &busy_ns[st->bg]);
				add_fault_rate(p);
				if (!nobusy[st->bg])
					nobusy[st->bg] = p;
				break;
			}
			if (atomic_load(&b->errors) ||
			    atomic_load(&b->mismatches))
				return finish(b);
		}
	}
	if (!b->vm) {
		b->note = "Aging phases: not run (the floor has no Accessed "
			  "bits)";
	} else if (idle && busy[BG_RUN] && nobusy[BG_RUN]) {
		double a = phase_extra_val(busy[BG_RUN], "vcpu_accesses_per_s");
		double z =
			phase_extra_val(nobusy[BG_RUN], "vcpu_accesses_per_s");

		bench_summary(b, "idle_ms", "Mark memory idle, ms per pass",
			      (double)idle->wall_ns / 1e6);
		bench_summary(b, "idle_young_pct",
			      "Mark memory idle, % of pages found young",
			      phase_extra_val(idle, "young_pct"));
		bench_summary(b, "busy_ms_per_pass",
			      "Aging while vCPUs run, ms per pass",
			      phase_extra_val(busy[BG_RUN], "ms_per_pass"));
		bench_summary(b, "vcpu_rate_aging",
			      "vCPU accesses/s during aging", a);
		bench_summary(b, "vcpu_rate_no_aging",
			      "vCPU accesses/s without aging", z);
		bench_summary(b, "vcpu_rate_ratio",
			      "vCPU throughput during aging / without",
			      z > 0 ? a / z : 0);
	}
	if (b->vm && busy[BG_FAULT] && nobusy[BG_FAULT]) {
		const struct bench_phase *fa = busy[BG_FAULT],
					 *fz = nobusy[BG_FAULT];
		double a = phase_extra_val(fa, "vcpu_faults_per_s");
		double z = phase_extra_val(fz, "vcpu_faults_per_s");
		double aa = phase_extra_val(fa, "vcpu_accesses_per_s");
		double za = phase_extra_val(fz, "vcpu_accesses_per_s");

		bench_summary(b, "fault_ms_per_pass",
			      "Aging while vCPUs fault, ms per pass",
			      phase_extra_val(fa, "ms_per_pass"));
		bench_summary(b, "vcpu_faults_aging",
			      "vCPU faults/s during aging", a);
		bench_summary(b, "vcpu_faults_no_aging",
			      "vCPU faults/s without aging", z);
		bench_summary(b, "vcpu_fault_rate_ratio",
			      "vCPU faults/s during aging / without",
			      z > 0 ? a / z : 0);
		bench_summary(b, "fault_vcpu_rate_ratio",
			      "Faulting vCPUs' accesses/s during aging / "
			      "without",
			      za > 0 ? aa / za : 0);
	}
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
#define TR_PATTERNS    4
#define TR_INTERLEAVED TR_PATTERNS

/* TR_DIRECT: the TLB-hit page again, through direct access
 * (tdp_vcpu_map, a load, tdp_vcpu_check_requests: one emulated
 * instruction); the floor has no direct access and reads as for TR_HIT */
enum tr_pattern { TR_HIT, TR_HOT, TR_COLD, TR_DIRECT };

static int direct_read(struct bench_vcpu *bv, uint64_t gpa, uint64_t *val)
{
	void *p;
	int r;

	if (bv->floor)
		return bench_access(bv, gpa, val, false);
	r = tdp_vcpu_map(bv->vcpu, gpa, TDP_PROT_READ, &p);
	if (r < 0)
		return r;
	*val = *(const uint64_t *)p;
	return tdp_vcpu_check_requests(bv->vcpu);
}

/* One batch of TR_BATCH reads of pattern @pat; its mean ns per access. */
static double tr_batch(struct bench_vcpu *bv, unsigned pat, bool count)
{
	struct bench *b = bv->b;
	const uint64_t *g = bv->tr_gpa + (size_t)pat * TR_BATCH;
	uint64_t *out = bv->tr_out;
	uint64_t t0, t1;
	double ns;

	t0 = bench_ticks();
	if (pat == TR_DIRECT) {
		for (unsigned k = 0; k < TR_BATCH; k++)
			if (direct_read(bv, g[k], &out[k]))
				out[k] = ~0ull;
	} else {
		for (unsigned k = 0; k < TR_BATCH; k++)
			if (bench_access(bv, g[k], &out[k], false))
				out[k] = ~0ull;
	}
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
				0, k % 512, cli_rand(&seed) % bv->npages, 0};

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
	translate_phase(b, "TLB hit, direct access", TR_DIRECT);
	/* the walk costs: from the interleaved rounds */
	translate_phase(b, "TLB hit/hot/cold/direct interleaved", TR_INTERLEAVED);
	bench_summary(b, "hit_ns", "TLB hit, ns per access (batch median)",
		      batch_median(b, TR_HIT, -1));
	bench_summary(b, "walk_hot_ns",
		      "TLB-miss walk, hot tables, ns (median of miss - hit)",
		      batch_median(b, TR_HOT, TR_HIT));
	bench_summary(b, "walk_cold_ns",
		      "TLB-miss walk, cold tables, ns (median of miss - hit)",
		      batch_median(b, TR_COLD, TR_HIT));
	bench_summary(b, "direct_hit_ns",
		      "TLB hit through tdp_vcpu_map + check_requests, ns "
		      "(batch median)",
		      batch_median(b, TR_DIRECT, -1));
	bench_summary(b, "direct_minus_read_ns",
		      "direct access minus tdp_vcpu_read, TLB hit, ns (median "
		      "of per-batch differences)",
		      batch_median(b, TR_DIRECT, TR_HIT));
	if (b->vm && hot->nextra > 1 && hot->extra[1].val < 0.99)
		fprintf(stderr,
			"bench translate: warning: the hot-table pattern "
			"missed the TLB on only %.0f%% of accesses (huge "
			"backing?)\n",
			hot->extra[1].val * 100);
	return finish(b);
}

/* ------------------------------------------------------------------ */
/* dirty-log (dirty_log_perf_test)                                     */
/* ------------------------------------------------------------------ */

struct dlog {
	uint64_t **bm;	    /* per slot: the last harvest's bitmap */
	uint64_t *written;  /* all memory: pages written this iteration */
	uint64_t reported;  /* pages the last harvest reported */
	uint64_t pages;	    /* pages of guest memory */
	unsigned log_flags; /* TDP_MEM_LOG_DIRTY or 0 */
	/* dirty rings: the VMM's fetch index per vCPU; entries taken */
	uint32_t fetch[BENCH_MAX_VCPUS];
	uint64_t ring_entries;
};

static uint64_t slot_npages(const struct bench *b, unsigned k);

static bool bench_has_ring(const struct bench *b)
{
	return b->impl->kind == IMPL_VM && (b->impl->ring || b->o->ring);
}

unsigned bench_ring_size(const struct bench *b)
{
	uint64_t want = b->o->bytes / BENCH_PAGE + TDP_DIRTY_RING_RSVD_ENTRIES +
			TDP_DIRTY_RING_PML_ENTRIES;
	unsigned n = TDP_DIRTY_RING_MIN;

	while (n < want && n < TDP_DIRTY_RING_MAX)
		n *= 2;
	return n;
}

/* Dirty rings: every vCPU's DIRTY entries ORed into dl->bm (the VMM's
 * side of the flags protocol), then the reset. */
struct ring_take {
	struct bench *b;
	struct dlog *dl;
};

static int ring_take(void *arg, uint32_t slot, uint64_t offset)
{
	struct ring_take *rt = arg;
	unsigned k = slot & 0xffff;

	if (k >= rt->b->nslots || offset >= slot_npages(rt->b, k))
		return -EIO;
	rt->dl->bm[k][offset / 64] |= 1ull << (offset % 64);
	rt->dl->ring_entries++;
	return 0;
}

static int harvest_rings(struct bench *b, struct dlog *dl)
{
	struct ring_take rt = {b, dl};

	for (unsigned i = 0; i < b->o->nvcpu; i++) {
		int r = ring_collect(b->v[i].vcpu, &dl->fetch[i],
					 ring_take, &rt);

		if (r)
			return r;
	}
	return tdp_vm_reset_dirty_rings(b->vm, NULL);
}

static uint64_t slot_npages(const struct bench *b, unsigned k)
{
	uint64_t first = (uint64_t)k * b->slot_pages;
	uint64_t total = b->size / BENCH_PAGE;

	return total - first < b->slot_pages ? total - first : b->slot_pages;
}

/* Enable or disable dirty logging: a flags-only update of every slot. */
static int main_log_flags(struct bench *b, struct bench_phase *p, void *arg)
{
	const struct dlog *dl = arg;

	p->lat_what = "per memslot update";
	for (unsigned k = 0; k < b->nslots; k++) {
		uint64_t off = (uint64_t)k * b->slot_pages * BENCH_PAGE;
		struct tdp_memslot s = {.slot = k,
					.gpa = b->gpa + off,
					.hva = b->hva + off,
					.size = slot_npages(b, k) * BENCH_PAGE,
					.flags = dl->log_flags};
		uint64_t t0 = bench_ticks();
		int r = tdp_vm_set_memslot(b->vm, &s);

		hist_add(&p->lat, (uint64_t)bench_ticks_ns(bench_ticks() - t0));
		if (r) {
			bench_error(b, "memslot flags update", s.gpa, r);
			return r;
		}
		p->ops++;
	}
	return 0;
}

static int main_get_log(struct bench *b, struct bench_phase *p, void *arg)
{
	struct dlog *dl = arg;

	p->lat_what = "per memslot tdp_vm_get_dirty_log";
	dl->reported = 0;
	for (unsigned k = 0; k < b->nslots; k++) {
		uint64_t n = slot_npages(b, k), t0 = bench_ticks();
		int r = tdp_vm_get_dirty_log(b->vm, 0, k, dl->bm[k]);

		hist_add(&p->lat, (uint64_t)bench_ticks_ns(bench_ticks() - t0));
		if (r) {
			bench_error(b, "tdp_vm_get_dirty_log",
				    b->gpa + k * b->slot_pages * BENCH_PAGE, r);
			return r;
		}
		p->ops += n;
	}
	if (bench_has_ring(b)) {
		uint64_t t0 = bench_ticks();
		int r = harvest_rings(b, dl);

		hist_add(&p->lat, (uint64_t)bench_ticks_ns(bench_ticks() - t0));
		if (r) {
			bench_error(b, "dirty ring harvest", b->gpa, r);
			return r;
		}
	}
	return 0;
}

static int main_clear_log(struct bench *b, struct bench_phase *p, void *arg)
{
	struct dlog *dl = arg;

	p->lat_what = "per memslot tdp_vm_clear_dirty_log";
	for (unsigned k = 0; k < b->nslots; k++) {
		uint64_t n = slot_npages(b, k), t0 = bench_ticks();
		int r = tdp_vm_clear_dirty_log(b->vm, 0, k, 0, n, dl->bm[k]);

		hist_add(&p->lat, (uint64_t)bench_ticks_ns(bench_ticks() - t0));
		if (r) {
			bench_error(b, "tdp_vm_clear_dirty_log",
				    b->gpa + k * b->slot_pages * BENCH_PAGE, r);
			return r;
		}
		p->ops += n;
	}
	return 0;
}

/* Mark in dl->written the pages some vCPU wrote with generation @gen;
 * the number of such pages. */
static uint64_t collect_written(struct bench *b, struct dlog *dl, uint16_t gen)
{
	uint64_t n = 0;

	memset(dl->written, 0, (dl->pages + 63) / 64 * 8);
	for (unsigned i = 0; i < b->o->nvcpu; i++) {
		const struct bench_vcpu *bv = &b->v[i];
		uint64_t base = (bv->gpa0 - b->gpa) / BENCH_PAGE;

		for (uint64_t p = 0; p < bv->npages; p++) {
			uint64_t g = base + p;

			if (bv->gen[p] != gen ||
			    (dl->written[g / 64] >> (g % 64) & 1))
				continue;
			dl->written[g / 64] |= 1ull << (g % 64);
			n++;
		}
	}
	return n;
}

/* Every page written in the iteration must be in the harvest.  Returns
 * the pages reported that were not written (allowed: e.g. with manual
 * protect every page starts out reported). */
static uint64_t verify_harvest(struct bench *b, struct dlog *dl, unsigned it)
{
	uint64_t extra = 0, missing = 0;

	dl->reported = 0;
	for (unsigned k = 0; k < b->nslots; k++) {
		uint64_t n = slot_npages(b, k);

		for (uint64_t j = 0; j < n; j++) {
			uint64_t g = (uint64_t)k * b->slot_pages + j;
			bool rep = dl->bm[k][j / 64] >> (j % 64) & 1;
			bool wr = dl->written[g / 64] >> (g % 64) & 1;

			dl->reported += rep;
			if (rep && !wr)
				extra++;
			if (wr && !rep && missing++ < 5)
				fprintf(stderr,
					"bench: DIRTY LOG MISSED a write: "
					"iteration %u, gpa %#" PRIx64
					" (slot %u page %" PRIu64
					") was written but not reported\n",
					it + 1,
					(uint64_t)(b->gpa + g * BENCH_PAGE), k,
					j);
		}
	}
	if (missing) {
		fprintf(stderr,
			"bench: iteration %u: %" PRIu64
			" written pages not reported\n",
			it + 1, missing);
		atomic_fetch_add(&b->mismatches, missing);
	}
	return extra;
}

int bench_dirty_log(struct bench *b)
{
	const struct bench_opts *o = b->o;
	struct dlog dl = {.pages = b->size / BENCH_PAGE};
	double sum_dirty = 0, sum_get = 0, sum_clear = 0, sum_rate = 0;
	double sum_fast = 0, get_pages = 0;
	struct bench_phase *p;
	char name[96];
	int ret = -1;

	measure_tick_overhead();
	dl.bm = calloc(b->nslots, sizeof(*dl.bm));
	dl.written = calloc((dl.pages + 63) / 64, 8);
	if (!dl.bm || !dl.written)
		goto out;
	for (unsigned k = 0; k < b->nslots; k++) {
		dl.bm[k] = calloc((slot_npages(b, k) + 63) / 64, 8);
		if (!dl.bm[k])
			goto out;
	}
	host_prefault(b);
	run_pass(b, "Populate memory", PASS_WRITE, 1, 0);

	dl.log_flags = TDP_MEM_LOG_DIRTY;
	p = bench_phase_run(b, "Enabling dirty logging", "memslot", NULL, NULL,
			    main_log_flags, &dl);
	bench_phase_extra(p, "eager_splits", (double)p->d.eager_splits);
	bench_summary(b, "enable_ms", "Enabling dirty logging, ms",
		      (double)p->wall_ns / 1e6);

	for (unsigned it = 0; it < o->iters && !atomic_load(&b->errors) &&
			      !atomic_load(&b->mismatches);
	     it++) {
		uint16_t gen = (uint16_t)(it + 2);
		uint64_t nw, extra;

		snprintf(name, sizeof(name), "Iteration %u dirty memory",
			 it + 1);
		p = run_pass(b, name, PASS_MIXED, gen, 0);
		nw = collect_written(b, &dl, gen);
		bench_phase_extra(p, "pages_dirtied", (double)nw);
		bench_phase_extra(p, "pages_dirtied_per_s",
				  p->wall_ns ? nw * 1e9 / p->wall_ns : 0);
		bench_phase_extra(p, "pf_fast", (double)p->d.pf_fast);
		bench_phase_extra(p, "pf_taken", (double)p->d.pf_taken);
		sum_dirty += p->wall_ns / 1e9;
		sum_rate += p->wall_ns ? nw * 1e9 / p->wall_ns : 0;
		sum_fast += (double)p->d.pf_fast;

		snprintf(name, sizeof(name), "Iteration %u get dirty log",
			 it + 1);
		p = bench_phase_run(b, name, "page", NULL, NULL, main_get_log,
				    &dl);
		extra = verify_harvest(b, &dl, it);
		bench_phase_extra(p, "harvest_ns_per_page",
				  dl.pages ? (double)p->wall_ns / dl.pages : 0);
		bench_phase_extra(p, "dirty_pages", (double)dl.reported);
		bench_phase_extra(p, "ns_per_dirty_page",
				  dl.reported ? (double)p->wall_ns / dl.reported
					      : 0);
		bench_phase_extra(p, "reported_not_written", (double)extra);
		sum_get += p->wall_ns / 1e9;
		get_pages += (double)dl.pages;
		if (o->manual) {
			snprintf(name, sizeof(name),
				 "Iteration %u clear dirty log", it + 1);
			p = bench_phase_run(b, name, "page", NULL, NULL,
					    main_clear_log, &dl);
			bench_phase_extra(
				p, "harvest_ns_per_page",
				dl.pages ? (double)p->wall_ns / dl.pages : 0);
			sum_clear += p->wall_ns / 1e9;
		}
	}

	dl.log_flags = 0;
	p = bench_phase_run(b, "Disabling dirty logging", "memslot", NULL, NULL,
			    main_log_flags, &dl);
	bench_phase_extra(p, "huge_recovered", (double)p->d.huge_recovered);
	bench_phase_extra(p, "recover_flushes", (double)p->d.recover_flushes);
	bench_summary(b, "disable_ms", "Disabling dirty logging, ms",
		      (double)p->wall_ns / 1e6);
	if (o->iters) {
		double n = o->iters;

		bench_summary(b, "dirty_ms_avg",
			      "Dirty memory time per iteration, ms",
			      sum_dirty * 1e3 / n);
		bench_summary(b, "pages_dirtied_per_s",
			      "Pages dirtied per second", sum_rate / n);
		bench_summary(b, "get_ms_avg",
			      "Get dirty log time per iteration, ms",
			      sum_get * 1e3 / n);
		bench_summary(b, "harvest_ns_per_page",
			      "Harvest (get + clear) ns per page",
			      get_pages
				      ? (sum_get + sum_clear) * 1e9 / get_pages
				      : 0);
		if (o->manual)
			bench_summary(b, "clear_ms_avg",
				      "Clear dirty log time per iteration, ms",
				      sum_clear * 1e3 / n);
		bench_summary(b, "pf_fast_per_iter",
			      "Fast faults (pf_fast) per iteration",
			      sum_fast / n);
	}
	ret = finish(b);
out:
	for (unsigned k = 0; dl.bm && k < b->nslots; k++)
		free(dl.bm[k]);
	free(dl.bm);
	free(dl.written);
	return ret;
}

/* ------------------------------------------------------------------ */
/* fast-zap (kvm_mmu_zap_all_fast)                                     */
/* ------------------------------------------------------------------ */

/*
 * The main thread zaps all roots -i times while the vCPUs keep reading
 * (and every other page rewriting) their memory.  fz.seq is odd while a
 * tdp_vm_zap_all_fast call is in progress and even otherwise.  A vCPU's
 * reload window runs from the first access it starts after seeing the
 * zap begin (or, if it never saw it, after seeing it end) to its first
 * access after seeing it end, inclusive; the access that loads the new
 * root and refaults lies inside it, so the window's longest access is the
 * vCPU's root reload latency for that zap.  Each vCPU then maps all its
 * memory again (one read per folio) and acknowledges the even sequence
 * number; the main thread waits for every acknowledgement before the next
 * zap, so every zap finds all the memory mapped.
 */
struct fzap {
	atomic_uint seq;
	atomic_uint ack[BENCH_MAX_VCPUS];
};

/* One read of every folio-size chunk of the vCPU's memory: each maps a
 * leaf of that size, so every zap finds all the memory mapped. */
static int fast_zap_remap(struct bench_vcpu *bv)
{
	struct bench *b = bv->b;
	uint64_t step = b->o->backing / BENCH_PAGE;

	for (uint64_t p = 0; p < bv->npages; p += step) {
		uint64_t gpa = bv->gpa0 + p * BENCH_PAGE + bv->id * 8ull;
		uint64_t want = bench_expect(gpa >> 12, bv->gen[p], bv->id);
		uint64_t val;
		int r = bench_access(bv, gpa, &val, false);

		if (r) {
			bench_error(b, "guest read (remap)", gpa, r);
			return r;
		}
		if (val != want)
			bench_mismatch(b, "guest read (remap)", gpa, want, val);
		bv->ops++;
	}
	return 0;
}

static void vcpu_fast_zap(struct bench_vcpu *bv, void *arg)
{
	struct fzap *fz = arg;
	struct bench *b = bv->b;
	/* the last even seq handled: this vCPU's own acknowledgement, not
	 * fz->seq, which the main thread (not held back by the start
	 * barrier's wake-ups) may already have moved past a whole zap */
	unsigned done = atomic_load(&fz->ack[bv->id]);
	bool win = false;
	uint64_t worst = 0;

	for (uint64_t p = 0;
	     !atomic_load_explicit(&b->stop, memory_order_relaxed);
	     p = p + 1 < bv->npages ? p + 1 : 0) {
		unsigned s =
			atomic_load_explicit(&fz->seq, memory_order_acquire);
		uint64_t gpa = bv->gpa0 + p * BENCH_PAGE + bv->id * 8ull;
		uint64_t want = bench_expect(gpa >> 12, bv->gen[p], bv->id);
		uint64_t val, t0, d;
		int r;

		if ((s & 1) && !win) {
			win = true;
			worst = 0;
		}
		t0 = bench_ticks();
		r = bench_access(bv, gpa, &val, false);
		if (!r && (p & 1))
			r = bench_access(bv, gpa, &want, true);
		d = sample_ticks(t0, bench_ticks());
		bv->busy_ticks += d;
		if (r) {
			bench_error(b, "guest access (fast zap)", gpa, r);
			return;
		}
		if (val != want)
			bench_mismatch(b, "guest read (fast zap)", gpa, want,
				       val);
		bv->ops++;
		if (win && d > worst)
			worst = d;
		if (!(s & 1) && s != done) {
			/* the first access after the zap returned */
			if (!win || d > worst)
				worst = d;
			hist_add(&bv->lat, (uint64_t)bench_ticks_ns(worst));
			win = false;
			done = s;
			/* map all its memory again before the next zap */
			if (fast_zap_remap(bv))
				return;
			atomic_store_explicit(&fz->ack[bv->id], s,
					      memory_order_release);
		}
	}
}

static void fast_zap_wait(struct bench *b, struct fzap *fz, unsigned s)
{
	for (unsigned i = 0; i < b->o->nvcpu; i++)
		while (atomic_load_explicit(&fz->ack[i],
					    memory_order_acquire) != s &&
		       !atomic_load(&b->errors) && !atomic_load(&b->mismatches))
			sched_yield();
}

static int main_fast_zap(struct bench *b, struct bench_phase *p, void *arg)
{
	struct fzap *fz = arg;
	unsigned s = atomic_load(&fz->seq);
	/* let the vCPUs run between zaps: they are loading their TLBs */
	const struct timespec ts = {.tv_nsec = 200000};

	p->lat_what = "per zap (caller)";
	for (unsigned it = 0; it < b->o->iters; it++) {
		uint64_t t0;
		int r;

		fast_zap_wait(b, fz, s);
		nanosleep(&ts, NULL);
		if (atomic_load(&b->errors) || atomic_load(&b->mismatches))
			return -1;
		atomic_store_explicit(&fz->seq, ++s, memory_order_release);
		t0 = bench_ticks();
		r = tdp_vm_zap_all_fast(b->vm);
		hist_add(&p->lat, (uint64_t)bench_ticks_ns(bench_ticks() - t0));
		atomic_store_explicit(&fz->seq, ++s, memory_order_release);
		p->ops++;
		if (r) {
			bench_error(b, "fast zap", b->gpa, r);
			return r;
		}
	}
	fast_zap_wait(b, fz, s);
	return 0;
}

int bench_fast_zap(struct bench *b)
{
	struct fzap *fz = calloc(1, sizeof(*fz));
	struct bench_phase *p;
	struct hist *rl;
	uint64_t n;

	if (!fz)
		return -1;
	rl = malloc(sizeof(*rl));
	if (!rl) {
		free(fz);
		return -1;
	}
	hist_init(rl);
	measure_tick_overhead();
	/* every page written once: frames allocated and mapped */
	run_pass(b, "Populate memory", PASS_WRITE, 1, 0);
	if (!atomic_load(&b->errors) && !atomic_load(&b->mismatches)) {
		p = bench_phase_run(b, "Fast zap while vCPUs run", "zap",
				    vcpu_fast_zap, fz, main_fast_zap, fz);
		for (unsigned i = 0; i < b->o->nvcpu; i++)
			hist_merge(rl, &b->v[i].lat);
		n = p->ops ? p->ops : 1;
		bench_phase_extra(p, "zapped_leaves_per_zap",
				  (double)p->d.zapped_leaves / (double)n);
		bench_phase_extra(p, "root_reloads_per_zap",
				  (double)p->d.root_reloads / (double)n);
		bench_phase_extra(p, "reloads_measured", (double)rl->count);
		bench_phase_extra(p, "reload_us_p50",
				  (double)hist_quantile(rl, 0.5) / 1e3);
		bench_phase_extra(p, "reload_us_p99",
				  (double)hist_quantile(rl, 0.99) / 1e3);
		bench_phase_extra(p, "reload_us_max", (double)rl->max / 1e3);
		bench_summary(b, "fast_zap_us_p50",
			      "Fast zap caller latency p50, us",
			      (double)hist_quantile(&p->lat, 0.5) / 1e3);
		bench_summary(b, "fast_zap_us_p99",
			      "Fast zap caller latency p99, us",
			      (double)hist_quantile(&p->lat, 0.99) / 1e3);
		bench_summary(b, "fast_zap_us_max",
			      "Fast zap caller latency max, us",
			      (double)p->lat.max / 1e3);
		bench_summary(b, "reload_us_p50",
			      "vCPU root reload latency p50, us",
			      (double)hist_quantile(rl, 0.5) / 1e3);
		bench_summary(b, "reload_us_p99",
			      "vCPU root reload latency p99, us",
			      (double)hist_quantile(rl, 0.99) / 1e3);
		bench_summary(b, "reload_us_max",
			      "vCPU root reload latency max, us",
			      (double)rl->max / 1e3);
		/* after the zaps every page still holds what was written */
		run_pass(b, "Read memory after zaps", PASS_READ, 1, 0);
	}
	free(rl);
	free(fz);
	return finish(b);
}

/*
 * Passes of the main thread while the vCPUs run (nx-recovery,
 * dirty-harvest): -i passes, period_ns apart; seq is odd while a pass
 * runs; a vCPU samples seq before an access (bg_seq) and counts the
 * access as inside a pass if seq is the same odd value after it
 * (bg_inside), so the two rates compare the vCPUs' progress during the
 * passes with their progress between them.
 */
struct bg_passes {
	atomic_uint seq;
	atomic_ullong pass_ticks; /* sum of pass durations */
	atomic_ullong in_ops;	  /* vCPU accesses inside one pass */
	long period_ns;
	const char *lat_what, *what; /* the latency's and an error's label */
	int (*pass)(struct bench *b, void *arg); /* 0 or an errno */
	void *arg;
};

static unsigned bg_seq(struct bg_passes *bp)
{
	return atomic_load_explicit(&bp->seq, memory_order_acquire);
}

static bool bg_inside(struct bg_passes *bp, unsigned s)
{
	return (s & 1) && bg_seq(bp) == s;
}

static int main_bg_passes(struct bench *b, struct bench_phase *p, void *arg)
{
	struct bg_passes *bp = arg;
	unsigned s = atomic_load(&bp->seq);
	const struct timespec ts = {.tv_nsec = bp->period_ns};

	p->lat_what = bp->lat_what;
	for (unsigned it = 0; it < b->o->iters; it++) {
		uint64_t t0, d;
		int r;

		nanosleep(&ts, NULL); /* the vCPUs run between passes */
		if (atomic_load(&b->errors) || atomic_load(&b->mismatches))
			return -1;
		atomic_store_explicit(&bp->seq, ++s, memory_order_release);
		t0 = bench_ticks();
		r = bp->pass(b, bp->arg);
		d = bench_ticks() - t0;
		atomic_store_explicit(&bp->seq, ++s, memory_order_release);
		atomic_fetch_add(&bp->pass_ticks, d);
		hist_add(&p->lat, (uint64_t)bench_ticks_ns(d));
		p->ops++;
		if (r) {
			bench_error(b, bp->what, b->gpa, r);
			return r;
		}
	}
	return 0;
}

/* After the phase @p of @bp: the passes' total time, and the vCPUs'
 * accesses per ms inside and outside them. */
static void bg_rates(struct bench *b, const struct bench_phase *p,
		     struct bg_passes *bp, double *pass_ns, double *in_rate,
		     double *out_rate)
{
	uint64_t vops = 0, in = atomic_load(&bp->in_ops);
	double out_ns;

	for (unsigned i = 0; i < b->o->nvcpu; i++)
		vops += b->v[i].ops;
	*pass_ns = bench_ticks_ns(atomic_load(&bp->pass_ticks));
	out_ns = (double)p->wall_ns - *pass_ns;
	*in_rate = *pass_ns > 0 ? (double)in / (*pass_ns / 1e6) : 0;
	*out_rate = out_ns > 0 ? (double)(vops - in) / (out_ns / 1e6) : 0;
}

/*
 * NX huge page recovery.  Every vCPU walks its memory 2 MiB page by 2 MiB
 * page: it fetches the first word of the vCPU's own slot in the page (an
 * instruction fetch maps 4 KiB there and makes the table a possible NX
 * huge page) and reads a word 1 MiB further (a data fault maps 4 KiB below
 * that table, KVM's disallowed_hugepage_adjust).  The main thread runs a
 * recovery pass with ratio 1 (zap every such table) -i times, 2 ms apart
 * (struct bg_passes).  With recovery under
 * the read lock they keep faulting through the pass, under the write lock
 * (nx-locked, legacy) they wait for it.
 */
static void vcpu_nx(struct bench_vcpu *bv, void *arg)
{
	struct bg_passes *nx = arg;
	struct bench *b = bv->b;
	uint64_t step = (2ull << 20) / BENCH_PAGE, in_ops = 0;

	for (uint64_t p = 0;
	     !atomic_load_explicit(&b->stop, memory_order_relaxed);
	     p = p + step < bv->npages ? p + step : 0) {
		uint64_t gpa = bv->gpa0 + p * BENCH_PAGE + bv->id * 8ull;
		uint64_t q = p + step / 2 < bv->npages ? p + step / 2 : p;
		uint64_t gpa2 = bv->gpa0 + q * BENCH_PAGE + bv->id * 8ull;
		uint64_t want = bench_expect(gpa >> 12, bv->gen[p], bv->id);
		uint64_t want2 = bench_expect(gpa2 >> 12, bv->gen[q], bv->id);
		unsigned s = bg_seq(nx);
		uint64_t val, val2, t0, d;
		int r;

		t0 = bench_ticks();
		r = tdp_vcpu_fetch(bv->vcpu, gpa, &val, 8);
		if (!r)
			r = bench_access(bv, gpa2, &val2, false);
		d = sample_ticks(t0, bench_ticks());
		bv->busy_ticks += d;
		if (r) {
			bench_error(b, "guest fetch/read (nx)", gpa, r);
			return;
		}
		if (val != want)
			bench_mismatch(b, "guest fetch (nx)", gpa, want, val);
		if (val2 != want2)
			bench_mismatch(b, "guest read (nx)", gpa2, want2, val2);
		bv->ops += 2;
		hist_add(&bv->lat, (uint64_t)bench_ticks_ns(d));
		if (bg_inside(nx, s))
			in_ops += 2;
	}
	atomic_fetch_add(&nx->in_ops, in_ops);
}

static int nx_pass(struct bench *b, void *arg)
{
	uint64_t zapped = 0;

	(void)arg;
	return tdp_vm_recover_nx_huge_pages(b->vm, 1, &zapped);
}

int bench_nx_recovery(struct bench *b)
{
	struct bg_passes *nx = calloc(1, sizeof(*nx));
	struct bench_phase *p;

	if (!nx)
		return -1;
	nx->period_ns = 2000000; /* the vCPUs fetch again */
	nx->lat_what = "per recovery pass (caller)";
	nx->what = "nx recovery";
	nx->pass = nx_pass;
	measure_tick_overhead();
	run_pass(b, "Populate memory", PASS_WRITE, 1, 0);
	if (!atomic_load(&b->errors) && !atomic_load(&b->mismatches)) {
		uint64_t n;
		double pass_ns, in_rate, out_rate;

		p = bench_phase_run(b, "NX recovery while vCPUs fetch",
				    "pass", vcpu_nx, nx, main_bg_passes, nx);
		n = p->ops ? p->ops : 1;
		bg_rates(b, p, nx, &pass_ns, &in_rate, &out_rate);
		bench_phase_extra(p, "zapped_per_pass",
				  (double)p->d.nx_recovered / (double)n);
		bench_phase_extra(p, "vcpu_accesses_per_ms_in_pass", in_rate);
		bench_phase_extra(p, "vcpu_accesses_per_ms_between", out_rate);
		bench_summary(b, "nx_pass_us_p50",
			      "NX recovery pass p50, us",
			      (double)hist_quantile(&p->lat, 0.5) / 1e3);
		bench_summary(b, "nx_pass_us_p99",
			      "NX recovery pass p99, us",
			      (double)hist_quantile(&p->lat, 0.99) / 1e3);
		bench_summary(b, "nx_zapped_per_pass",
			      "Tables zapped per pass",
			      (double)p->d.nx_recovered / (double)n);
		bench_summary(b, "nx_vcpu_rate_in_pass",
			      "vCPU accesses per ms during passes", in_rate);
		bench_summary(b, "nx_vcpu_rate_between",
			      "vCPU accesses per ms between passes", out_rate);
		run_pass(b, "Read memory after recovery", PASS_READ, 1, 0);
	}
	free(nx);
	return finish(b);
}

/* ------------------------------------------------------------------ */
/* dirty-harvest: harvests while the vCPUs write                       */
/* ------------------------------------------------------------------ */

/*
 * Logging on, every vCPU writes the first -w% of its pages in order, over
 * and over, without pause (a write
 * fault per page after each harvest in write-protect mode, a Dirty bit in
 * Dirty-bit modes), while the main thread harvests -i times, 20 ms apart
 * (struct bg_passes): the bitmaps of every slot, and with rings every
 * vCPU's ring (collect, reset).  A write refused at a ring's soft limit
 * is retried (counted: stalls).
 */
struct dharv {
	struct bg_passes bp; /* the harvests */
	struct dlog dl;
	atomic_ullong stalls;
	uint64_t reported;
};

static void vcpu_dharv(struct bench_vcpu *bv, void *arg)
{
	struct dharv *dh = arg;
	struct bench *b = bv->b;
	uint64_t in_ops = 0, stalls = 0;
	uint64_t hot = bv->npages * b->o->write_pct / 100;
	uint16_t gen = 2;

	if (!hot)
		hot = 1;
	for (uint64_t p = 0;
	     !atomic_load_explicit(&b->stop, memory_order_relaxed);) {
		uint64_t gpa = bv->gpa0 + p * BENCH_PAGE + bv->id * 8ull;
		uint64_t val = bench_expect(gpa >> 12, gen, bv->id);
		unsigned s = bg_seq(&dh->bp);
		uint64_t t0 = bench_ticks(), d;
		int r = bench_access(bv, gpa, &val, true);

		d = sample_ticks(t0, bench_ticks());
		if (r == -ENOSPC) {
			stalls++; /* the ring is soft-full: the next harvest */
			sched_yield();
			continue;
		}
		if (r) {
			bench_error(b, "guest write (dirty-harvest)", gpa, r);
			break;
		}
		bv->gen[p] = gen;
		bv->busy_ticks += d;
		bv->ops++;
		hist_add(&bv->lat, (uint64_t)bench_ticks_ns(d));
		if (bg_inside(&dh->bp, s))
			in_ops++;
		if (++p == hot) {
			p = 0;
			gen = gen == 60000 ? 2 : gen + 1;
		}
	}
	atomic_fetch_add(&dh->bp.in_ops, in_ops);
	atomic_fetch_add(&dh->stalls, stalls);
}

/* One harvest of everything: the bitmap of every slot, then the rings. */
static int dharv_once(struct bench *b, void *arg)
{
	struct dharv *dh = arg;

	for (unsigned k = 0; k < b->nslots; k++) {
		int r = tdp_vm_get_dirty_log(b->vm, 0, k, dh->dl.bm[k]);

		if (r)
			return r;
	}
	if (bench_has_ring(b)) {
		int r = harvest_rings(b, &dh->dl);

		if (r)
			return r;
	}
	for (unsigned k = 0; k < b->nslots; k++)
		for (uint64_t w = 0; w < (slot_npages(b, k) + 63) / 64; w++)
			dh->reported +=
				(uint64_t)__builtin_popcountll(dh->dl.bm[k][w]);
	return 0;
}

int bench_dirty_harvest(struct bench *b)
{
	struct dharv *dh = calloc(1, sizeof(*dh));
	struct bench_phase *p;

	if (!dh)
		return -1;
	dh->bp.period_ns = 20000000; /* the vCPUs dirty pages */
	dh->bp.lat_what = "per harvest of all memory (caller)";
	dh->bp.what = "harvest";
	dh->bp.pass = dharv_once;
	dh->bp.arg = dh;
	measure_tick_overhead();
	dh->dl.pages = b->size / BENCH_PAGE;
	dh->dl.bm = calloc(b->nslots, sizeof(*dh->dl.bm));
	for (unsigned k = 0; dh->dl.bm && k < b->nslots; k++)
		if (!(dh->dl.bm[k] = calloc((slot_npages(b, k) + 63) / 64, 8)))
			goto out;
	if (!dh->dl.bm)
		goto out;
	host_prefault(b);
	run_pass(b, "Populate memory", PASS_WRITE, 1, 0);
	dh->dl.log_flags = TDP_MEM_LOG_DIRTY;
	bench_phase_run(b, "Enabling dirty logging", "memslot", NULL, NULL,
			main_log_flags, &dh->dl);
	if (!atomic_load(&b->errors) && !atomic_load(&b->mismatches)) {
		uint64_t n;
		double pass_ns, in_rate, out_rate;

		p = bench_phase_run(b, "Harvests while vCPUs write", "harvest",
				    vcpu_dharv, dh, main_bg_passes, &dh->bp);
		n = p->ops ? p->ops : 1;
		bg_rates(b, p, &dh->bp, &pass_ns, &in_rate, &out_rate);
		bench_phase_extra(p, "dirty_pages_per_harvest",
				  (double)dh->reported / (double)n);
		bench_phase_extra(p, "ring_stalls",
				  (double)atomic_load(&dh->stalls));
		bench_summary(b, "harvest_us_p50", "Harvest p50, us",
			      (double)hist_quantile(&p->lat, 0.5) / 1e3);
		bench_summary(b, "harvest_ns_per_dirty_page",
			      "Harvest ns per dirty page",
			      dh->reported ? pass_ns / (double)dh->reported
					   : 0);
		bench_summary(b, "dirty_pages_per_harvest",
			      "Dirty pages per harvest",
			      (double)dh->reported / (double)n);
		bench_summary(b, "write_rate_in_harvest",
			      "vCPU writes per ms during harvests", in_rate);
		bench_summary(b, "write_rate_between",
			      "vCPU writes per ms between harvests",
			      out_rate);
		dh->dl.log_flags = 0;
		bench_phase_run(b, "Disabling dirty logging", "memslot", NULL,
				NULL, main_log_flags, &dh->dl);
		run_pass(b, "Read memory after the harvests", PASS_READ, 1, 0);
	}
out:
	for (unsigned k = 0; dh->dl.bm && k < b->nslots; k++)
		free(dh->dl.bm[k]);
	free(dh->dl.bm);
	free(dh);
	return finish(b);
}
