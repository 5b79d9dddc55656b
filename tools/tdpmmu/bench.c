/* SPDX-License-Identifier: MIT */
/*
 * bench.c - `tdpmmu bench`: options, the table of designs (the TDP MMU and
 * its baselines), the benchmark machine (host, VM, memslots, vCPU worker
 * threads), phases, verification and output (selftest-style text or JSON,
 * with a ratio table for --compare).
 *
 * Threading: see bench.h.  The main thread owns struct bench; workers are
 * created once per run and released phase by phase through the start/done
 * barriers, so thread creation and liburcu registration stay outside the
 * timed phases.  A main-thread operation loop (memslot changes, mprotect,
 * MMU reset) runs between the barriers while the workers do their part.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "cli.h"

/* ------------------------------------------------------------------ */
/* Designs.  A baseline is one entry here.                             */
/* ------------------------------------------------------------------ */

static const struct bench_impl bench_impls[] = {
	{"tdp", "the TDP MMU: faults in parallel under mmu_lock for read",
	 IMPL_VM, 0, BENCH_ALL, TDP_ENGINE_TDP, false},
	{"exclusive",
	 "every fault under mmu_lock for write (TDP_VM_EXCLUSIVE_FAULTS)",
	 IMPL_VM, TDP_VM_EXCLUSIVE_FAULTS, BENCH_ALL, TDP_ENGINE_TDP, false},
	{"floor",
	 "a bare 4-level radix table, no locks/RCU/accounting: the speed "
	 "of light",
	 IMPL_FLOOR, 0,
	 BENCH_BIT(BENCH_POPULATE) | BENCH_BIT(BENCH_ACCESS) |
		 BENCH_BIT(BENCH_TRANSLATE),
	 TDP_ENGINE_TDP, false},
	{"nofast",
	 "write faults on dirty-logged pages always take mmu_lock "
	 "(TDP_VM_NO_FAST_FAULT)",
	 IMPL_VM, TDP_VM_NO_FAST_FAULT, BENCH_BIT(BENCH_DIRTY_LOG),
	 TDP_ENGINE_TDP, false},
	{"nosplit",
	 "no eager split of huge leaves when logging starts "
	 "(TDP_VM_NO_EAGER_SPLIT)",
	 IMPL_VM, TDP_VM_NO_EAGER_SPLIT, BENCH_BIT(BENCH_DIRTY_LOG),
	 TDP_ENGINE_TDP, false},
	{"locked-aging",
	 "age under mmu_lock held for write (TDP_VM_LOCKED_AGING)", IMPL_VM,
	 TDP_VM_LOCKED_AGING, BENCH_BIT(BENCH_ACCESS), TDP_ENGINE_TDP, false},
	{"legacy",
	 "the legacy engine: every change under mmu_lock for write, leaves "
	 "in reverse maps, lockless rmap aging (TDP_ENGINE_LEGACY)",
	 IMPL_VM, 0, BENCH_ALL & ~BENCH_BIT(BENCH_TRANSLATE),
	 TDP_ENGINE_LEGACY, false},
	{"nx-locked",
	 "NX huge page recovery under mmu_lock held for write "
	 "(TDP_VM_NX_RECOVER_LOCKED; KVM before 2025)",
	 IMPL_VM, TDP_VM_NX_RECOVER_LOCKED, BENCH_BIT(BENCH_NX_RECOVERY),
	 TDP_ENGINE_TDP, false},
	{"dbit",
	 "dirty logging by Dirty bits, harvested by a walk of every leaf "
	 "(TDP_VM_DIRTY_DBIT)",
	 IMPL_VM, TDP_VM_DIRTY_DBIT, BENCH_BIT(BENCH_DIRTY_HARVEST),
	 TDP_ENGINE_TDP, false},
	{"pml",
	 "Dirty bits logged by the simulated hardware (TDP_VM_PML): the "
	 "harvest clears only the reported pages",
	 IMPL_VM, TDP_VM_DIRTY_DBIT | TDP_VM_PML,
	 BENCH_BIT(BENCH_DIRTY_HARVEST), TDP_ENGINE_TDP, false},
	{"ring",
	 "dirty rings fed by write-protect faults, collected and reset "
	 "(cfg.dirty_ring_size)",
	 IMPL_VM, 0, BENCH_BIT(BENCH_DIRTY_HARVEST), TDP_ENGINE_TDP, true},
	{"ring-pml", "dirty rings fed by PML, collected and reset",
	 IMPL_VM, TDP_VM_DIRTY_DBIT | TDP_VM_PML,
	 BENCH_BIT(BENCH_DIRTY_HARVEST), TDP_ENGINE_TDP, true},
	{"legacy-locked-aging",
	 "the legacy engine aging its reverse maps under mmu_lock held for "
	 "write (KVM before seed 002)",
	 IMPL_VM, TDP_VM_LOCKED_AGING, BENCH_BIT(BENCH_ACCESS),
	 TDP_ENGINE_LEGACY, false},
};
#define NR_IMPLS (sizeof(bench_impls) / sizeof(bench_impls[0]))

static const char *const bench_names[BENCH_KINDS] = {
	[BENCH_POPULATE] = "populate",	 [BENCH_ACCESS] = "access",
	[BENCH_MEMSLOT] = "memslot",	 [BENCH_MMU_STRESS] = "mmu-stress",
	[BENCH_DIRTY_LOG] = "dirty-log", [BENCH_TRANSLATE] = "translate",
	[BENCH_FAST_ZAP] = "fast-zap",	 [BENCH_NX_RECOVERY] = "nx-recovery",
	[BENCH_DIRTY_HARVEST] = "dirty-harvest",
};

static const char *const bench_help[BENCH_KINDS] = {
	[BENCH_POPULATE] = "fault in guest memory (demand_paging_test, "
			   "dirty_log_perf_test populate)",
	[BENCH_ACCESS] = "populate, write and read populated memory, age it, "
			 "write and read idle memory, aging while vCPUs run "
			 "and while they fault (each zaps and refaults 2 MiB "
			 "at a time) (access_tracking_perf_test)",
	[BENCH_MEMSLOT] = "create, map, move, delete memslots while vCPUs run "
			  "(memslot_perf_test, memslot_modification_stress)",
	[BENCH_MMU_STRESS] = "write, reset the MMU, rewrite, read-only with "
			     "writes refused, read-write (mmu_stress_test)",
	[BENCH_DIRTY_LOG] = "populate, enable dirty logging, write and "
			    "harvest N times, disable (dirty_log_perf_test)",
	[BENCH_TRANSLATE] = "TLB hit and miss latency, hot and cold tables",
	[BENCH_FAST_ZAP] = "populate, then zap all roots fast N times while "
			   "vCPUs run: caller and vCPU root reload latency",
	[BENCH_DIRTY_HARVEST] = "dirty logging on, vCPUs write the first "
				"-w% of their memory over and over while "
				"the main thread harvests N times (bitmap, "
				"or rings with the ring baselines): harvest "
				"time per dirty page and the vCPUs' write "
				"rate during harvests and between them",
	[BENCH_NX_RECOVERY] = "NX huge pages: vCPUs fetch from every 2 MiB page "
			      "(mapping it 4 KiB) and read it, while an NX "
			      "recovery pass (ratio 1) runs N times: pass time "
			      "and the vCPUs' access and fault rates during "
			      "passes and between them",
};

/* ------------------------------------------------------------------ */
/* Clock: the TSC where there is one, calibrated against CLOCK_MONOTONIC */
/* ------------------------------------------------------------------ */

static double ns_per_tick = 1.0;

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
uint64_t bench_ticks(void)
{
	return __rdtsc();
}

static void calibrate(void)
{
	uint64_t n0 = cli_now_ns(), t0 = bench_ticks(), n1, t1;

	do {
		n1 = cli_now_ns();
	} while (n1 - n0 < 20000000ull);
	t1 = bench_ticks();
	ns_per_tick = (double)(n1 - n0) / (double)(t1 - t0);
}
#else
uint64_t bench_ticks(void)
{
	return cli_now_ns();
}

static void calibrate(void)
{
}
#endif

double bench_ticks_ns(uint64_t ticks)
{
	return (double)ticks * ns_per_tick;
}

/* ------------------------------------------------------------------ */
/* Helpers for the workloads                                          */
/* ------------------------------------------------------------------ */

uint64_t bench_expect(uint64_t gfn, uint64_t gen, unsigned vcpu)
{
	return cli_pattern(gfn, gen, vcpu);
}

void bench_mismatch(struct bench *b, const char *who, uint64_t gpa,
		    uint64_t want, uint64_t got)
{
	if (atomic_fetch_add(&b->mismatches, 1) < 5)
		fprintf(stderr,
			"bench: MISMATCH (%s) gpa %#" PRIx64
			": expected %#" PRIx64 " found %#" PRIx64 "\n",
			who, gpa, want, got);
}

void bench_error(struct bench *b, const char *who, uint64_t gpa, int err)
{
	if (atomic_fetch_add(&b->errors, 1) < 5)
		fprintf(stderr, "bench: %s at gpa %#" PRIx64 " failed: %s\n",
			who, gpa, strerror(-err));
}

void bench_phase_extra(struct bench_phase *p, const char *key, double val)
{
	if (p->nextra < BENCH_MAX_EXTRA) {
		p->extra[p->nextra].key = key;
		p->extra[p->nextra].val = val;
		p->nextra++;
	}
}

void bench_summary(struct bench *b, const char *key, const char *label,
		   double val)
{
	if (b->nsum < BENCH_MAX_SUMMARY) {
		b->sum[b->nsum].key = key;
		b->sum[b->nsum].label = label;
		b->sum[b->nsum].val = val;
		b->nsum++;
	}
}

/* Read or write the 8-byte word at guest address @gpa of the benchmark's
 * guest memory the way the host sees it. */
int bench_host_word(struct bench *b, uint64_t gpa, uint64_t *val, bool write)
{
	uint64_t off = gpa - b->gpa;

	if (b->fbuf) {
		uint64_t *p = (uint64_t *)(b->fbuf + off);

		if (write)
			*p = *val;
		else
			*val = *p;
		return 0;
	}
	return write ? tdp_host_write(b->host, b->hva + off, val, 8)
		     : tdp_host_read(b->host, b->hva + off, val, 8);
}

/* Every word a vCPU owns holds what it last wrote, as the host sees it. */
int bench_verify_host(struct bench *b)
{
	for (unsigned i = 0; i < b->o->nvcpu; i++) {
		struct bench_vcpu *bv = &b->v[i];

		for (uint64_t p = 0; p < bv->npages; p++) {
			uint64_t gpa = bv->gpa0 + p * BENCH_PAGE + i * 8ull;
			uint64_t val, want;
			int r = bench_host_word(b, gpa, &val, false);

			if (r) {
				bench_error(b, "host read", gpa, r);
				return -1;
			}
			want = bench_expect(gpa >> 12, bv->gen[p], i);
			if (val != want) {
				bench_mismatch(b, "host", gpa, want, val);
				return -1;
			}
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Phases                                                              */
/* ------------------------------------------------------------------ */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Arrive at the start of a phase and spin until every participant has. */
static void spin_start(struct bench *b)
{
	atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel);
	while (atomic_load_explicit(&b->arrived, memory_order_acquire) <
	       b->participants)
		cpu_relax();
}

static void *worker(void *arg)
{
	struct bench_vcpu *bv = arg;
	struct bench *b = bv->b;
	char name[16];

	/* "vcpuN": profiles can keep the vCPU threads apart (perf --comm) */
	snprintf(name, sizeof(name), "vcpu%u", bv->id);
	pthread_setname_np(pthread_self(), name);
	if (b->o->ncpus) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(b->o->cpus[bv->id], &set);
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	for (;;) {
		pthread_barrier_wait(&b->start);
		if (atomic_load(&b->quit))
			break;
		if (b->fn && bv->id < b->active) {
			spin_start(b);
			bv->t0 = bench_ticks();
			b->fn(bv, b->arg);
			bv->t1 = bench_ticks();
		}
		pthread_barrier_wait(&b->done);
	}
	return NULL;
}

static void get_stats(struct bench *b, struct tdp_stats *st)
{
	if (b->vm)
		tdp_vm_get_stats(b->vm, st);
	else
		memset(st, 0, sizeof(*st));
}

static void stats_delta(struct tdp_stats *d, const struct tdp_stats *a,
			const struct tdp_stats *z)
{
	const uint64_t *pa = (const uint64_t *)a, *pz = (const uint64_t *)z;
	uint64_t *pd = (uint64_t *)d;

	for (size_t i = 0; i < sizeof(*d) / sizeof(uint64_t); i++)
		pd[i] = pz[i] - pa[i];
}

struct bench_phase *bench_phase_run(struct bench *b, const char *name,
				    const char *unit, bench_vcpu_fn fn,
				    void *arg, bench_main_fn mfn, void *marg)
{
	struct bench_phase *p =
		&b->ph[b->nph < BENCH_MAX_PHASES - 1 ? b->nph++ : b->nph];
	struct tdp_stats s0, s1;
	uint64_t t0, t1, vfaults = 0, vops = 0;

	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->unit = unit;
	hist_init(&p->lat);
	for (unsigned i = 0; i < b->o->nvcpu; i++) {
		struct bench_vcpu *bv = &b->v[i];

		bv->ops = bv->faults = bv->busy_ticks = 0;
		bv->t0 = bv->t1 = 0;
		hist_init(&bv->lat);
	}
	if (!b->active || b->active > b->o->nvcpu)
		b->active = b->o->nvcpu;
	b->fn = fn;
	b->arg = arg;
	b->participants = (fn ? b->active : 0) + (mfn && fn ? 1 : 0);
	atomic_store(&b->arrived, 0);
	atomic_store(&b->stop, false);
	get_stats(b, &s0);
	pthread_barrier_wait(&b->start);
	/* Wall time runs from the first participant's start to the last
	 * one's end, on the participants' own clocks, and everybody starts
	 * from a spin once all are awake: the barrier's wake-ups (slow on a
	 * virtual machine) are not part of the phase. */
	t0 = ~0ull;
	t1 = 0;
	if (mfn) {
		if (fn)
			spin_start(b);
		t0 = bench_ticks();
		mfn(b, p, marg);
		t1 = bench_ticks();
		atomic_store(&b->stop, true);
	}
	pthread_barrier_wait(&b->done);
	for (unsigned i = 0; fn && i < b->active; i++) {
		if (!mfn && b->v[i].t0 < t0)
			t0 = b->v[i].t0;
		if (b->v[i].t1 > t1)
			t1 = b->v[i].t1;
	}
	get_stats(b, &s1);
	stats_delta(&p->d, &s0, &s1);
	p->wall_ns = t1 > t0 ? (uint64_t)bench_ticks_ns(t1 - t0) : 0;
	for (unsigned i = 0; fn && i < b->active; i++) {
		struct bench_vcpu *bv = &b->v[i];

		vops += bv->ops;
		vfaults += bv->faults;
		if (!mfn) {
			hist_merge(&p->lat, &bv->lat);
			p->busy_ns += (uint64_t)bench_ticks_ns(
				bv->busy_ticks ? bv->busy_ticks
					       : bv->t1 - bv->t0);
		}
	}
	if (mfn) {
		/* the main thread's operations are the subject; the vCPUs
		 * ran in the background */
		p->threads = 1;
		if (!p->busy_ns)
			p->busy_ns = p->wall_ns;
		if (fn) {
			double rate = 0;

			for (unsigned i = 0; i < b->active; i++) {
				struct bench_vcpu *bv = &b->v[i];

				if (bv->t1 > bv->t0)
					rate += (double)bv->ops * 1e9 /
						bench_ticks_ns(bv->t1 - bv->t0);
			}
			bench_phase_extra(p, "vcpu_accesses_per_s", rate);
		}
	} else {
		p->threads = b->active;
		p->ops = vops;
		p->faults = b->vm ? p->d.pf_fixed : vfaults;
		p->lat_what = "per access";
	}
	b->active = b->o->nvcpu;
	return p;
}

struct bench_phase *bench_phase_new(struct bench *b, const char *name,
				    const char *unit)
{
	struct bench_phase *p =
		&b->ph[b->nph < BENCH_MAX_PHASES - 1 ? b->nph++ : b->nph];

	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->unit = unit;
	hist_init(&p->lat);
	return p;
}

void bench_phase_add(struct bench_phase *dst, const struct bench_phase *src)
{
	uint64_t *pd = (uint64_t *)&dst->d;
	const uint64_t *ps = (const uint64_t *)&src->d;

	dst->wall_ns += src->wall_ns;
	dst->busy_ns += src->busy_ns;
	dst->ops += src->ops;
	dst->faults += src->faults;
	dst->bytes += src->bytes;
	dst->threads = src->threads;
	if (!dst->lat_what)
		dst->lat_what = src->lat_what;
	hist_merge(&dst->lat, &src->lat);
	for (size_t i = 0; i < sizeof(dst->d) / sizeof(uint64_t); i++)
		pd[i] += ps[i];
}

/* ------------------------------------------------------------------ */
/* Set-up and teardown of the benchmark machine                        */
/* ------------------------------------------------------------------ */

static uint64_t round_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

static void shuffle(uint32_t *a, uint64_t n, uint64_t *seed)
{
	for (uint64_t i = 0; i < n; i++)
		a[i] = (uint32_t)i;
	for (uint64_t i = n - 1; i > 0 && n; i--) {
		uint64_t j = cli_rand(seed) % (i + 1);
		uint32_t t = a[i];

		a[i] = a[j];
		a[j] = t;
	}
}

static int add_slots(struct bench *b)
{
	unsigned x = b->o->kind == BENCH_MEMSLOT ? 1 : b->o->slots;
	uint64_t piece = round_up(b->size / x, BENCH_PAGE);

	b->nslots = 0;
	b->slot_pages = piece / BENCH_PAGE;
	for (unsigned k = 0; k < x; k++) {
		struct tdp_memslot s = {.slot = k,
					.gpa = b->gpa + k * piece,
					.hva = b->hva + k * piece,
					.size = piece};
		int r;

		if (k * piece >= b->size)
			break;
		if (k == x - 1 || (k + 1) * piece > b->size)
			s.size = b->size - k * piece;
		r = tdp_vm_set_memslot(b->vm, &s);
		if (r)
			return r;
		b->nslots = k + 1;
	}
	return 0;
}

static void teardown(struct bench *b)
{
	if (b->threads_up) {
		atomic_store(&b->quit, true);
		pthread_barrier_wait(&b->start);
		for (unsigned i = 0; i < b->o->nvcpu; i++)
			pthread_join(b->v[i].th, NULL);
		pthread_barrier_destroy(&b->start);
		pthread_barrier_destroy(&b->done);
		b->threads_up = false;
	}
	for (unsigned i = 0; b->v && i < b->o->nvcpu; i++) {
		tdp_vcpu_destroy(b->v[i].vcpu);
		floor_destroy(b->v[i].floor);
		free(b->v[i].gen);
		free(b->v[i].order);
		free(b->v[i].tr_gpa);
		free(b->v[i].tr_out);
		free(b->v[i].tr_batch_ns);
	}
	free(b->v);
	b->v = NULL;
	tdp_vm_destroy(b->vm);
	b->vm = NULL;
	tdp_host_destroy(b->host);
	b->host = NULL;
	free(b->fbuf);
	b->fbuf = NULL;
}

static int setup(struct bench *b)
{
	const struct bench_opts *o = b->o;
	uint64_t per = o->bytes, seed = o->seed;
	int r = -ENOMEM;

	b->gpa = BENCH_GPA_BASE;
	b->size = o->overlap ? per : per * o->nvcpu;
	b->map_size = round_up(b->size, o->backing);
	b->v = aligned_alloc(_Alignof(struct bench_vcpu),
			     o->nvcpu * sizeof(*b->v));
	if (!b->v)
		return -ENOMEM;
	memset(b->v, 0, o->nvcpu * sizeof(*b->v));
	if (b->impl->kind == IMPL_FLOOR) {
		b->fbuf = aligned_alloc(BENCH_PAGE, b->map_size);
		if (!b->fbuf)
			return -ENOMEM;
	} else {
		struct tdp_host_config hc = {
			.mem_bytes = b->map_size + (1ull << 30) +
				     (o->kind == BENCH_MEMSLOT
					      ? (o->slots + 1) * (2ull << 20)
					      : 0),
		};
		struct tdp_vm_config vc = {
			.max_vcpus = o->nvcpu,
			.engine = b->impl->engine,
			.dirty_ring_size = b->impl->ring || o->ring
						   ? bench_ring_size(b)
						   : 0,
			.flags = b->impl->vm_flags |
				 (o->dbit ? TDP_VM_DIRTY_DBIT : 0) |
				 (o->pml ? TDP_VM_DIRTY_DBIT | TDP_VM_PML : 0) |
				 (o->manual ? TDP_VM_MANUAL_PROTECT : 0) |
				 (o->kind == BENCH_NX_RECOVERY
					  ? TDP_VM_NX_HUGE_PAGES
					  : 0)};

		r = tdp_host_create(&hc, &b->host);
		if (!r)
			r = tdp_host_mmap(b->host, b->map_size,
					  TDP_PROT_READ | TDP_PROT_WRITE |
						  (o->kind == BENCH_NX_RECOVERY
							   ? TDP_PROT_EXEC
							   : 0),
					  o->backing, 0, &b->hva);
		if (!r)
			r = tdp_vm_create(b->host, &vc, &b->vm);
		if (!r)
			r = add_slots(b);
		if (r)
			return r;
	}
	for (unsigned i = 0; i < o->nvcpu; i++) {
		struct bench_vcpu *bv = &b->v[i];

		bv->b = b;
		bv->id = i;
		bv->gpa0 = b->gpa + (o->overlap ? 0 : i * per);
		bv->npages = per / BENCH_PAGE;
		bv->gen = calloc(bv->npages, sizeof(*bv->gen));
		if (!bv->gen)
			return -ENOMEM;
		if (o->random) {
			bv->order = malloc(bv->npages * sizeof(*bv->order));
			if (!bv->order)
				return -ENOMEM;
			shuffle(bv->order, bv->npages, &seed);
		}
		if (b->vm)
			r = tdp_vcpu_create(b->vm, i, &bv->vcpu);
		else
			r = floor_create(bv->npages, &bv->floor);
		if (r)
			return r;
	}
	pthread_barrier_init(&b->start, NULL, o->nvcpu + 1);
	pthread_barrier_init(&b->done, NULL, o->nvcpu + 1);
	for (unsigned i = 0; i < o->nvcpu; i++) {
		r = pthread_create(&b->v[i].th, NULL, worker, &b->v[i]);
		if (r) {
			/* the barrier would never fill: give up loudly */
			fprintf(stderr, "bench: pthread_create: %s\n",
				strerror(r));
			exit(1);
		}
	}
	b->threads_up = true;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Output                                                              */
/* ------------------------------------------------------------------ */

static double ns_per_op(const struct bench_phase *p)
{
	return p->ops ? (double)p->busy_ns / (double)p->ops : 0;
}

static double ns_per_fault(const struct bench_phase *p)
{
	return p->faults ? (double)p->busy_ns / (double)p->faults : 0;
}

static double per_s(uint64_t n, uint64_t ns)
{
	return ns ? (double)n * 1e9 / (double)ns : 0;
}

static double gib_s(const struct bench_phase *p)
{
	return p->wall_ns ? (double)p->bytes / (1ull << 30) * 1e9 /
				    (double)p->wall_ns
			  : 0;
}

static void fmt_ns(char *buf, size_t n, uint64_t ns)
{
	if (ns < 10000)
		snprintf(buf, n, "%" PRIu64 "ns", ns);
	else if (ns < 10000000)
		snprintf(buf, n, "%.1fus", (double)ns / 1e3);
	else
		snprintf(buf, n, "%.1fms", (double)ns / 1e6);
}

static const char *plural(const char *unit)
{
	size_t n = strlen(unit);

	return n && unit[n - 1] == 's' ? "es" : "s";
}

static void print_phase(const struct bench_phase *p)
{
	char a[32], c[32], d[32], e[32];

	printf("%s time: %" PRIu64 ".%09" PRIu64 "s\n", p->name,
	       p->wall_ns / UINT64_C(1000000000),
	       p->wall_ns % UINT64_C(1000000000));
	if (!p->ops)
		return;
	printf("    %" PRIu64 " %s%s, %.4g %s%s/s, %.1f ns/%s", p->ops, p->unit,
	       plural(p->unit), per_s(p->ops, p->wall_ns), p->unit,
	       plural(p->unit), ns_per_op(p), p->unit);
	if (p->faults)
		printf("; %" PRIu64 " faults, %.4g faults/s, %.1f ns/fault",
		       p->faults, per_s(p->faults, p->wall_ns),
		       ns_per_fault(p));
	if (p->bytes)
		printf("; %.3f GiB/s", gib_s(p));
	printf("\n");
	if (p->lat.count) {
		fmt_ns(a, sizeof(a), hist_quantile(&p->lat, 0.5));
		fmt_ns(c, sizeof(c), hist_quantile(&p->lat, 0.99));
		fmt_ns(d, sizeof(d), hist_quantile(&p->lat, 0.999));
		fmt_ns(e, sizeof(e), p->lat.max);
		printf("    latency %s: p50 %s p99 %s p99.9 %s max %s\n",
		       p->lat_what ? p->lat_what : "", a, c, d, e);
	}
	for (unsigned i = 0; i < p->nextra; i++)
		printf("    %s: %.4g\n", p->extra[i].key, p->extra[i].val);
}

static void json_phase(const struct bench_phase *p)
{
	printf("{\"name\":\"%s\",\"unit\":\"%s\",\"seconds\":%.9f,"
	       "\"ops\":%" PRIu64 ",\"faults\":%" PRIu64 ",\"bytes\":%" PRIu64
	       ",\"threads\":%u,\"ops_per_s\":%.6g,\"ns_per_op\":%.3f,"
	       "\"faults_per_s\":%.6g,\"ns_per_fault\":%.3f,\"gib_per_s\":%.6g",
	       p->name, p->unit, (double)p->wall_ns / 1e9, p->ops, p->faults,
	       p->bytes, p->threads, per_s(p->ops, p->wall_ns), ns_per_op(p),
	       per_s(p->faults, p->wall_ns), ns_per_fault(p), gib_s(p));
	printf(",\"latency_ns\":{\"what\":\"%s\",\"count\":%" PRIu64
	       ",\"p50\":%" PRIu64 ",\"p99\":%" PRIu64 ",\"p999\":%" PRIu64
	       ",\"max\":%" PRIu64 "}",
	       p->lat_what ? p->lat_what : "", p->lat.count,
	       hist_quantile(&p->lat, 0.5), hist_quantile(&p->lat, 0.99),
	       hist_quantile(&p->lat, 0.999), p->lat.max);
	printf(",\"stats\":{\"pf_fixed\":%" PRIu64 ",\"pf_spurious\":%" PRIu64
	       ",\"pf_retry\":%" PRIu64 ",\"tlb_hits\":%" PRIu64
	       ",\"tlb_misses\":%" PRIu64 ",\"remote_tlb_flush\":%" PRIu64
	       ",\"zapped_leaves\":%" PRIu64 ",\"pf_fast\":%" PRIu64
	       ",\"dirty_harvests\":%" PRIu64 ",\"dirty_pages\":%" PRIu64
	       ",\"eager_splits\":%" PRIu64 ",\"huge_recovered\":%" PRIu64
	       ",\"recover_flushes\":%" PRIu64 ",\"age_calls\":%" PRIu64
	       ",\"age_young\":%" PRIu64 "}",
	       p->d.pf_fixed, p->d.pf_spurious, p->d.pf_retry, p->d.tlb_hits,
	       p->d.tlb_misses, p->d.remote_tlb_flush, p->d.zapped_leaves,
	       p->d.pf_fast, p->d.dirty_harvests, p->d.dirty_pages,
	       p->d.eager_splits, p->d.huge_recovered, p->d.recover_flushes,
	       p->d.age_calls, p->d.age_young);
	printf(",\"extra\":{");
	for (unsigned i = 0; i < p->nextra; i++)
		printf("%s\"%s\":%.6g", i ? "," : "", p->extra[i].key,
		       p->extra[i].val);
	printf("}}");
}

static void print_run_text(const struct bench *b)
{
	printf("== %s ==\n", b->impl->name);
	for (unsigned i = 0; i < b->nph; i++)
		print_phase(&b->ph[i]);
	for (unsigned i = 0; i < b->nsum; i++)
		printf("%s: %.2f\n", b->sum[i].label, b->sum[i].val);
	if (b->note)
		printf("%s\n", b->note);
}

static const struct bench_phase *find_phase(const struct bench *b,
					    const char *name)
{
	for (unsigned i = 0; i < b->nph; i++)
		if (!strcmp(b->ph[i].name, name))
			return &b->ph[i];
	return NULL;
}

/* ratio of the measured design's ns/op to a baseline's, per phase */
static double phase_ratio(const struct bench_phase *p,
			  const struct bench_phase *q)
{
	double a = ns_per_op(p), z = q ? ns_per_op(q) : 0;

	return z > 0 ? a / z : 0;
}

/* The value of extra @key of phase @p, or -1 if it has none. */
static double phase_extra(const struct bench_phase *p, const char *key)
{
	for (unsigned i = 0; p && i < p->nextra; i++)
		if (!strcmp(p->extra[i].key, key))
			return p->extra[i].val;
	return -1;
}

/* vCPU throughput in the phases where the vCPUs ran in the background of
 * a main-thread operation (aging, memslot changes), by extra @key
 * (vCPU accesses or faults per second): the baseline's rate divided into
 * tdp's (above 1: the vCPUs got more done under tdp).  Phases where tdp's
 * rate is 0 (vCPUs that did not fault) are left out. */
static void print_vcpu_rates_text(struct bench *runs, unsigned n,
				  const char *key, const char *what)
{
	bool any = false;

	for (unsigned i = 0; i < runs[0].nph; i++) {
		const struct bench_phase *p = &runs[0].ph[i];
		double a = phase_extra(p, key);

		if (a <= 0)
			continue;
		if (!any) {
			printf("== vCPU %s/s in the background; ratio = "
			       "%s / baseline ==\n",
			       what, runs[0].impl->name);
			printf("%-36s %12s", "phase", runs[0].impl->name);
			for (unsigned k = 1; k < n; k++)
				printf(" %12s %9s", runs[k].impl->name,
				       "ratio");
			printf("\n");
			any = true;
		}
		printf("%-36.36s %12.4g", p->name, a);
		for (unsigned k = 1; k < n; k++) {
			double z =
				phase_extra(find_phase(&runs[k], p->name), key);

			if (z > 0)
				printf(" %12.4g %8.2fx", z, a / z);
			else
				printf(" %12s %9s", "-", "-");
		}
		printf("\n");
	}
}

static void print_compare_text(struct bench *runs, unsigned n)
{
	printf("== comparison: ns per op; ratio = %s / baseline ==\n",
	       runs[0].impl->name);
	printf("%-36s %12s", "phase", runs[0].impl->name);
	for (unsigned k = 1; k < n; k++)
		printf(" %12s %9s", runs[k].impl->name, "ratio");
	printf("\n");
	for (unsigned i = 0; i < runs[0].nph; i++) {
		const struct bench_phase *p = &runs[0].ph[i];

		if (!p->ops)
			continue;
		printf("%-36.36s %12.1f", p->name, ns_per_op(p));
		for (unsigned k = 1; k < n; k++) {
			const struct bench_phase *q =
				find_phase(&runs[k], p->name);

			if (q && q->ops)
				printf(" %12.1f %8.2fx", ns_per_op(q),
				       phase_ratio(p, q));
			else
				printf(" %12s %9s", "-", "-");
		}
		printf("\n");
	}
	print_vcpu_rates_text(runs, n, "vcpu_accesses_per_s", "accesses");
	print_vcpu_rates_text(runs, n, "vcpu_faults_per_s", "faults");
}

/* "phase":ratio members, tdp's extra @key over baseline @k's, for the
 * phases where both are positive. */
static void json_extra_ratios(struct bench *runs, unsigned k, const char *key)
{
	bool first = true;

	for (unsigned i = 0; i < runs[0].nph; i++) {
		const struct bench_phase *p = &runs[0].ph[i];
		double a = phase_extra(p, key);
		double z = phase_extra(find_phase(&runs[k], p->name), key);

		if (a <= 0 || z <= 0)
			continue;
		printf("%s\"%s\":%.6g", first ? "" : ",", p->name, a / z);
		first = false;
	}
}

/* ------------------------------------------------------------------ */
/* Rounds (--rounds): every design runs once per round, in an order     */
/* rotated from round to round; figures are medians over the rounds and */
/* a ratio is the median of the per-round ratios, with their spread.    */
/* ------------------------------------------------------------------ */

struct spread {
	double med, min, max;
	unsigned n;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* median and range of the positive values among v[0..n) */
static struct spread spread_of(double *v, unsigned n)
{
	struct spread s = {0};
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++)
		if (v[i] > 0)
			v[k++] = v[i];
	if (!k)
		return s;
	qsort(v, k, sizeof(*v), cmp_double);
	s.n = k;
	s.min = v[0];
	s.max = v[k - 1];
	s.med = k & 1 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
	return s;
}

static double summary_val(const struct bench *b, const char *key)
{
	for (unsigned i = 0; i < b->nsum; i++)
		if (!strcmp(b->sum[i].key, key))
			return b->sum[i].val;
	return -1;
}

/* What one run gives for a phase or summary: ns/op, faults/s, or a
 * summary value. */
enum round_what { RW_NS_PER_OP, RW_FAULTS_PER_S, RW_SUMMARY };

static double round_val(const struct bench *b, enum round_what w,
			const char *name)
{
	const struct bench_phase *p;

	if (w == RW_SUMMARY)
		return summary_val(b, name);
	p = find_phase(b, name);
	if (!p || !p->ops)
		return -1;
	return w == RW_NS_PER_OP ? ns_per_op(p) : per_s(p->faults, p->wall_ns);
}

/* runs[r * nimpl + k]: round r, design k.  Design k's value over the
 * rounds (@ratio_to < 0), or the per-round ratio of design k's value to
 * design @ratio_to's. */
static struct spread round_spread(struct bench *runs, unsigned nimpl,
				  unsigned rounds, unsigned k, int ratio_to,
				  enum round_what w, const char *name)
{
	double v[rounds];

	for (unsigned r = 0; r < rounds; r++) {
		double a = round_val(&runs[r * nimpl + k], w, name), z = 1;

		if (ratio_to >= 0)
			z = round_val(&runs[r * nimpl + (unsigned)ratio_to], w,
				      name);
		v[r] = a > 0 && z > 0 ? a / z : -1;
	}
	return spread_of(v, rounds);
}

static void print_rounds_text(struct bench *runs, unsigned nimpl,
			      unsigned rounds)
{
	const struct bench *b0 = &runs[0];

	printf("== %u rounds, designs interleaved; medians over the rounds; "
	       "a ratio is the median of the per-round ratios [min-max] ==\n",
	       rounds);
	printf("%-36s", "phase: ns/op");
	for (unsigned k = 0; k < nimpl; k++)
		printf(" %12s", runs[k].impl->name);
	for (unsigned k = 1; k < nimpl; k++)
		printf(" %24s", runs[k].impl->name);
	printf("\n");
	for (unsigned i = 0; i < b0->nph; i++) {
		const char *name = b0->ph[i].name;

		if (!b0->ph[i].ops)
			continue;
		printf("%-36.36s", name);
		for (unsigned k = 0; k < nimpl; k++) {
			struct spread s = round_spread(runs, nimpl, rounds, k,
						       -1, RW_NS_PER_OP, name);

			if (s.n)
				printf(" %12.1f", s.med);
			else
				printf(" %12s", "-");
		}
		for (unsigned k = 1; k < nimpl; k++) {
			struct spread s =
				round_spread(runs, nimpl, rounds, 0, (int)k,
					     RW_NS_PER_OP, name);

			if (s.n)
				printf("   %6.2fx [%5.2f-%5.2f]", s.med, s.min,
				       s.max);
			else
				printf(" %24s", "-");
		}
		printf("\n");
	}
	for (unsigned j = 0; j < b0->nsum; j++) {
		const char *key = b0->sum[j].key;

		printf("%s:\n", b0->sum[j].label);
		for (unsigned k = 0; k < nimpl; k++) {
			struct spread s = round_spread(runs, nimpl, rounds, k,
						       -1, RW_SUMMARY, key);

			printf("    %-12s %.3f [%.3f-%.3f]", runs[k].impl->name,
			       s.med, s.min, s.max);
			if (k) {
				struct spread q =
					round_spread(runs, nimpl, rounds, 0,
						     (int)k, RW_SUMMARY, key);

				printf("; %s / %s per round %.3f "
				       "[%.3f-%.3f]",
				       runs[0].impl->name, runs[k].impl->name,
				       q.med, q.min, q.max);
			}
			printf("\n");
		}
	}
}

static void json_spread(const char *key, struct spread s, bool *first)
{
	if (!s.n)
		return;
	printf("%s\"%s\":{\"median\":%.6g,\"min\":%.6g,\"max\":%.6g,"
	       "\"n\":%u}",
	       *first ? "" : ",", key, s.med, s.min, s.max, s.n);
	*first = false;
}

/* ,"@key":{name:spread,...}: design @k's value (@ratio_to < 0) or its
 * per-round ratio to design @ratio_to's, for every phase of the first run
 * (@w a phase measure) or every summary (@w == RW_SUMMARY) */
static void json_spread_map(struct bench *runs, unsigned nimpl, unsigned rounds,
			    const char *key, unsigned k, int ratio_to,
			    enum round_what w)
{
	const struct bench *b0 = &runs[0];
	unsigned n = w == RW_SUMMARY ? b0->nsum : b0->nph;
	bool first = true;

	printf(",\"%s\":{", key);
	for (unsigned i = 0; i < n; i++) {
		const char *name =
			w == RW_SUMMARY ? b0->sum[i].key : b0->ph[i].name;

		json_spread(
			name,
			round_spread(runs, nimpl, rounds, k, ratio_to, w, name),
			&first);
	}
	printf("}");
}

/* "rounds": per design, its medians; per baseline, the per-round ratios */
static void json_rounds(struct bench *runs, unsigned nimpl, unsigned rounds)
{
	printf(",\"rounds\":{\"n\":%u,\"designs\":[", rounds);
	for (unsigned k = 0; k < nimpl; k++) {
		printf("%s{\"impl\":\"%s\"", k ? "," : "", runs[k].impl->name);
		json_spread_map(runs, nimpl, rounds, "ns_per_op", k, -1,
				RW_NS_PER_OP);
		json_spread_map(runs, nimpl, rounds, "faults_per_s", k, -1,
				RW_FAULTS_PER_S);
		json_spread_map(runs, nimpl, rounds, "summary", k, -1,
				RW_SUMMARY);
		if (k) {
			/* tdp's over this design's, round by round */
			json_spread_map(runs, nimpl, rounds, "ratio_ns_per_op",
					0, (int)k, RW_NS_PER_OP);
			json_spread_map(runs, nimpl, rounds, "ratio_summary", 0,
					(int)k, RW_SUMMARY);
		}
		printf("}");
	}
	printf("]}");
}

static void print_json(struct bench *runs, unsigned n, unsigned rounds, bool ok)
{
	const struct bench_opts *o = runs[0].o;

	printf("{\"bench\":\"%s\",\"result\":\"%s\",\"options\":{\"vcpus\":%u,"
	       "\"bytes_per_vcpu\":%" PRIu64 ",\"backing\":%" PRIu64
	       ",\"iterations\":%u,\"write_pct\":%u,\"random\":%s,"
	       "\"overlap\":%s,\"slots\":%u,\"pinned\":%s,"
	       "\"dirty_mode\":\"%s\",\"manual_protect\":%s},\"runs\":[",
	       bench_names[o->kind], ok ? "pass" : "fail", o->nvcpu, o->bytes,
	       o->backing, o->iters, o->write_pct, o->random ? "true" : "false",
	       o->overlap ? "true" : "false", o->slots,
	       o->ncpus ? "true" : "false",
	       o->ring ? (o->pml ? "ring-pml" : "ring")
	       : o->pml ? "pml"
	       : o->dbit ? "dbit" : "wp",
	       o->manual ? "true" : "false");
	for (unsigned k = 0; k < n * rounds; k++) {
		const struct bench *b = &runs[k];

		printf("%s{\"impl\":\"%s\",\"round\":%u,\"mismatches\":%llu,"
		       "\"errors\":%llu,\"phases\":[",
		       k ? "," : "", b->impl->name, k / n + 1,
		       (unsigned long long)atomic_load(&runs[k].mismatches),
		       (unsigned long long)atomic_load(&runs[k].errors));
		for (unsigned i = 0; i < b->nph; i++) {
			if (i)
				printf(",");
			json_phase(&b->ph[i]);
		}
		printf("],\"summary\":{");
		for (unsigned i = 0; i < b->nsum; i++)
			printf("%s\"%s\":%.6g", i ? "," : "", b->sum[i].key,
			       b->sum[i].val);
		printf("}}");
	}
	printf("],\"compare\":[");
	for (unsigned k = 1; k < n; k++) {
		bool first = true;

		printf("%s{\"baseline\":\"%s\",\"ratios\":{", k > 1 ? "," : "",
		       runs[k].impl->name);
		for (unsigned i = 0; i < runs[0].nph; i++) {
			const struct bench_phase *p = &runs[0].ph[i];
			const struct bench_phase *q =
				find_phase(&runs[k], p->name);

			struct spread sp;

			if (!p->ops || !q || !q->ops)
				continue;
			sp = round_spread(runs, n, rounds, 0, (int)k,
					  RW_NS_PER_OP, p->name);
			printf("%s\"%s\":%.6g", first ? "" : ",", p->name,
			       sp.n ? sp.med : phase_ratio(p, q));
			first = false;
		}
		printf("},\"vcpu_rate_ratios\":{");
		json_extra_ratios(runs, k, "vcpu_accesses_per_s");
		printf("},\"vcpu_fault_rate_ratios\":{");
		json_extra_ratios(runs, k, "vcpu_faults_per_s");
		printf("}}");
	}
	printf("]");
	if (rounds > 1)
		json_rounds(runs, n, rounds);
	printf("}\n");
}

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f, "usage: tdpmmu bench <subcommand> [options]\n"
		   "subcommands:\n");
	for (int k = 0; k < BENCH_KINDS; k++)
		fprintf(f, "  %-11s %s\n", bench_names[k], bench_help[k]);
	fprintf(f,
		"options:\n"
		"  -v N         vCPU threads, 1..%d (default 1)\n"
		"  -b SIZE      guest memory per vCPU, 4K multiple (default "
		"1G; "
		"memslot 64M, translate 256M)\n"
		"  -s BACKING   host folio size: 4k, 2m or 1g (default 4k; "
		"fast-zap 1g)\n"
		"  -i N         iterations (default 1; memslot 10, translate "
		"200 batches,\n"
		"               dirty-log 2, fast-zap 20)\n"
		"  -w PCT       percent of populate accesses that write "
		"(default 100; dirty-harvest:\n"
		"               the share of its memory each vCPU keeps "
		"writing, default 10)\n"
		"  -a           random access order instead of sequential\n"
		"  -o           all vCPUs share (overlap) one region instead "
		"of "
		"partitions\n"
		"  -x N         memslots the memory is split into (default 1; "
		"memslot: test slots, default 64)\n"
		"  -c LIST      pin vCPU i to the i-th cpu of LIST (e.g. 0,1 "
		"or "
		"0-1); one extra\n"
		"               entry pins the main thread\n"
		"  -r SEED      random seed (default 1)\n"
		"  -m MODE      dirty-log: wp (write-protect, default), dbit "
		"(Dirty bits) or pml\n"
		"               (Dirty bits logged by PML)\n"
		"  --ring       dirty-log: dirty rings, collected and reset "
		"at each harvest\n"
		"               (each vCPU's writes of an iteration must fit "
		"its ring: -b 252M at most)\n"
		"  -M           dirty-log: manual protect (get, then clear; "
		"KVM's -g)\n"
		"  --baseline NAME[,NAME]  measure NAME instead of tdp (with "
		"--compare: also)\n"
		"  --compare    run tdp and the baseline(s) in one process; "
		"print ratios\n"
		"  --rounds N   run every design N times, interleaved (round r "
		"starts with\n"
		"               design r); report medians and the median of "
		"per-round\n"
		"               ratios with their range (default 1)\n"
		"  --json       one JSON object instead of text\n"
		"baselines:\n",
		BENCH_MAX_VCPUS);
	for (size_t i = 0; i < NR_IMPLS; i++) {
		fprintf(f, "  %-12s %s (", bench_impls[i].name,
			bench_impls[i].help);
		for (int k = 0, first = 1; k < BENCH_KINDS; k++)
			if (bench_impls[i].benches & BENCH_BIT(k)) {
				fprintf(f, "%s%s", first ? "" : " ",
					bench_names[k]);
				first = 0;
			}
		fprintf(f, ")\n");
	}
	fprintf(f, "exit status: 0 verified, 1 data mismatch or failure, 2 bad "
		   "usage\n");
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int bad(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "tdpmmu bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nRun 'tdpmmu bench --help' for the options.\n");
	return 2;
}

static int parse_cpus(struct bench_opts *o, const char *arg)
{
	char *copy = strdup(arg), *save = NULL;
	cpu_set_t online;
	int r = 0;

	if (!copy)
		return -1;
	if (sched_getaffinity(0, sizeof(online), &online))
		CPU_ZERO(&online);
	o->ncpus = 0;
	for (char *tok = strtok_r(copy, ",", &save); tok && !r;
	     tok = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(tok, '-');
		uint64_t lo, hi;

		if (dash)
			*dash = 0;
		if (cli_parse_u64(tok, 10, CPU_SETSIZE - 1, &lo) ||
		    cli_parse_u64(dash ? dash + 1 : tok, 10, CPU_SETSIZE - 1,
				  &hi) ||
		    hi < lo) {
			r = -1;
			break;
		}
		for (unsigned long long c = lo; c <= hi; c++) {
			if (!CPU_ISSET(c, &online) ||
			    o->ncpus >= BENCH_MAX_VCPUS + 1) {
				r = -1;
				break;
			}
			o->cpus[o->ncpus++] = (int)c;
		}
	}
	if (!o->ncpus)
		r = -1;
	free(copy);
	return r;
}

static const struct bench_impl *find_impl(const char *name)
{
	for (size_t i = 0; i < NR_IMPLS; i++)
		if (!strcmp(bench_impls[i].name, name))
			return &bench_impls[i];
	return NULL;
}

static int parse_baselines(struct bench_opts *o, const char *arg,
			   const struct bench_impl **list, unsigned *n)
{
	char *copy = strdup(arg), *save = NULL;

	if (!copy)
		return 2;
	for (char *tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		const struct bench_impl *im = find_impl(tok);

		if (!im) {
			fprintf(stderr,
				"tdpmmu bench: unknown baseline '%s'; "
				"known:",
				tok);
			for (size_t i = 0; i < NR_IMPLS; i++)
				fprintf(stderr, " %s", bench_impls[i].name);
			fprintf(stderr, "\n");
			free(copy);
			return 2;
		}
		if (*n >= BENCH_MAX_IMPLS - 1) {
			free(copy);
			return bad("too many baselines");
		}
		list[(*n)++] = im;
	}
	free(copy);
	return 0;
}

static int run_one(struct bench *b)
{
	int r = setup(b);

	if (r) {
		fprintf(stderr, "tdpmmu bench: set-up failed: %s\n",
			strerror(-r));
		return -1;
	}
	switch (b->o->kind) {
	case BENCH_POPULATE:
		r = bench_populate(b);
		break;
	case BENCH_ACCESS:
		r = bench_access_run(b);
		break;
	case BENCH_MEMSLOT:
		r = bench_memslot(b);
		break;
	case BENCH_MMU_STRESS:
		r = bench_mmu_stress(b);
		break;
	case BENCH_TRANSLATE:
		r = bench_translate(b);
		break;
	case BENCH_DIRTY_LOG:
		r = bench_dirty_log(b);
		break;
	case BENCH_FAST_ZAP:
		r = bench_fast_zap(b);
		break;
	case BENCH_NX_RECOVERY:
		r = bench_nx_recovery(b);
		break;
	case BENCH_DIRTY_HARVEST:
		r = bench_dirty_harvest(b);
		break;
	default:
		r = -1;
	}
	if (!r && b->vm && !atomic_load(&b->errors) &&
	    !atomic_load(&b->mismatches)) {
		char rep[512];
		int a = tdp_vm_audit(b->vm, rep, sizeof(rep));

		if (a) {
			fprintf(stderr, "tdpmmu bench: audit: %d: %s\n", a,
				rep);
			r = -1;
		}
	}
	if (atomic_load(&b->errors) || atomic_load(&b->mismatches))
		r = -1;
	return r;
}

int cmd_bench(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'J'},
		{"baseline", required_argument, NULL, 'B'},
		{"compare", no_argument, NULL, 'C'},
		{"rounds", required_argument, NULL, 'R'},
		{"ring", no_argument, NULL, 'G'},
		{"help", no_argument, NULL, 'h'},
		{0}};
	struct bench_opts o = {
		.nvcpu = 1, .backing = BENCH_PAGE, .write_pct = 100, .seed = 1};
	const struct bench_impl *base[BENCH_MAX_IMPLS];
	unsigned nbase = 0;
	bool have_b = false, have_i = false, have_x = false, have_m = false;
	bool have_s = false, have_w = false;
	uint64_t u;
	struct bench *runs;
	const char *dlmode = "";
	bool ok = true;
	int c, k;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (k = 0; k < BENCH_KINDS; k++)
		if (!strcmp(argv[1], bench_names[k]))
			break;
	if (k == BENCH_KINDS)
		return bad("unknown subcommand '%s'", argv[1]);
	o.kind = (enum bench_kind)k;
	argc--;
	argv++;
	optind = 1;
	while ((c = getopt_long(argc, argv, "v:b:s:i:w:ax:c:or:m:Mh", opts,
				NULL)) != -1) {
		switch (c) {
		case 'v':
			if (cli_parse_u64(optarg, 10, BENCH_MAX_VCPUS, &u) ||
			    !u)
				return bad("-v wants 1..512 vCPUs, not '%s'",
					   optarg);
			o.nvcpu = (unsigned)u;
			break;
		case 'b':
			if (cli_parse_size_in(optarg, BENCH_PAGE, 64ull << 30,
					      &o.bytes))
				return bad("-b wants a 4K multiple up to 64G, "
					   "not '%s'",
					   optarg);
			have_b = true;
			break;
		case 's':
			if (!strcasecmp(optarg, "4k"))
				o.backing = BENCH_PAGE;
			else if (!strcasecmp(optarg, "2m"))
				o.backing = TDP_HUGE_2M;
			else if (!strcasecmp(optarg, "1g"))
				o.backing = TDP_HUGE_1G;
			else
				return bad("-s wants 4k, 2m or 1g, not '%s'",
					   optarg);
			have_s = true;
			break;
		case 'i':
			if (cli_parse_u64(optarg, 10, 1000000, &u) || !u)
				return bad("-i wants 1..1000000, not '%s'",
					   optarg);
			o.iters = (unsigned)u;
			have_i = true;
			break;
		case 'w':
			if (cli_parse_u64(optarg, 10, 100, &u))
				return bad("-w wants a percentage 0..100, not "
					   "'%s'",
					   optarg);
			o.write_pct = (unsigned)u;
			have_w = true;
			break;
		case 'a':
			o.random = true;
			break;
		case 'o':
			o.overlap = true;
			break;
		case 'x':
			if (cli_parse_u64(optarg, 10, TDP_MAX_MEMSLOTS - 2,
					  &u) ||
			    !u)
				return bad("-x wants 1..510 memslots, not '%s'",
					   optarg);
			o.slots = (unsigned)u;
			have_x = true;
			break;
		case 'c':
			if (parse_cpus(&o, optarg))
				return bad("-c wants a list of online cpus "
					   "such as 0,1 or 0-1, not '%s'",
					   optarg);
			break;
		case 'r':
			if (cli_parse_u64(optarg, 10, UINT64_MAX, &u) || !u)
				return bad("-r wants a non-zero seed, not '%s'",
					   optarg);
			o.seed = u;
			break;
		case 'm':
			o.dbit = o.pml = false;
			if (!strcmp(optarg, "dbit"))
				o.dbit = true;
			else if (!strcmp(optarg, "pml"))
				o.pml = true;
			else if (strcmp(optarg, "wp"))
				return bad("-m wants wp, dbit or pml, not '%s'",
					   optarg);
			have_m = true;
			break;
		case 'M':
			o.manual = true;
			have_m = true;
			break;
		case 'J':
			o.json = true;
			break;
		case 'G':
			o.ring = true;
			have_m = true;
			break;
		case 'C':
			o.compare = true;
			break;
		case 'R':
			if (cli_parse_u64(optarg, 10, 1000, &u) || !u)
				return bad("--rounds wants 1..1000, not '%s'",
					   optarg);
			o.rounds = (unsigned)u;
			break;
		case 'B':
			if (parse_baselines(&o, optarg, base, &nbase))
				return 2;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "Run 'tdpmmu bench --help' for the "
					"options.\n");
			return 2;
		}
	}
	if (optind < argc)
		return bad("unexpected argument '%s'", argv[optind]);
	if (have_m && o.kind != BENCH_DIRTY_LOG)
		return bad("-m, -M and --ring are options of dirty-log "
			   "(dirty-harvest compares modes as baselines)");
	if (o.ring && (o.manual || o.dbit))
		return bad("--ring goes with -m wp or -m pml (a ring takes "
			   "Dirty bits from PML), not -M");
	/* dirty-log tells written pages by their generation (16 bits) */
	if (o.kind == BENCH_DIRTY_LOG && have_i && o.iters > 60000)
		return bad("dirty-log: -i wants 1..60000");
	if (!have_b)
		o.bytes = o.kind == BENCH_MEMSLOT     ? 64ull << 20
			  : o.kind == BENCH_TRANSLATE ? 256ull << 20
			  : o.ring || o.kind == BENCH_DIRTY_HARVEST
				  ? 128ull << 20
				  : 1ull << 30;
	/* a vCPU's writes between two harvests must fit its ring */
	if ((o.ring || o.kind == BENCH_DIRTY_HARVEST) &&
	    o.bytes / BENCH_PAGE + TDP_DIRTY_RING_RSVD_ENTRIES +
			    TDP_DIRTY_RING_PML_ENTRIES >
		    TDP_DIRTY_RING_MAX)
		return bad("%s: -b 252M at most (each vCPU's writes between "
			   "harvests fit its dirty ring)",
			   o.ring ? "--ring" : "dirty-harvest");
	if (!have_i)
		o.iters = o.kind == BENCH_MEMSLOT     ? 10
			  : o.kind == BENCH_TRANSLATE ? 200
			  : o.kind == BENCH_DIRTY_LOG ? 2
			  : o.kind == BENCH_FAST_ZAP  ? 20
			  : o.kind == BENCH_NX_RECOVERY ? 20
			  : o.kind == BENCH_DIRTY_HARVEST ? 20
						      : 1;
	/* dirty-harvest: -w is the share of its memory a vCPU keeps
	 * writing (its first pages) */
	if (!have_w && o.kind == BENCH_DIRTY_HARVEST)
		o.write_pct = 10;
	if (o.kind == BENCH_DIRTY_HARVEST && !o.write_pct)
		return bad("dirty-harvest: -w wants 1..100");
	if (!have_s && o.kind == BENCH_FAST_ZAP)
		o.backing = TDP_HUGE_1G;
	if (!have_s && o.kind == BENCH_NX_RECOVERY)
		o.backing = TDP_HUGE_2M;
	if (!have_x)
		o.slots = o.kind == BENCH_MEMSLOT ? 64 : 1;
	if (o.kind != BENCH_MEMSLOT &&
	    o.bytes * (o.overlap ? 1 : o.nvcpu) / o.slots < BENCH_PAGE)
		return bad("-x splits the memory into slots smaller than 4K");
	if (o.kind == BENCH_TRANSLATE && o.bytes < (2ull << 20))
		return bad("translate needs -b of at least 2M");
	if ((o.overlap ? 1 : o.nvcpu) * o.bytes > (64ull << 30))
		return bad("-b: more than 64G of guest memory in total");
	if (o.ncpus && (o.ncpus < o.nvcpu || o.ncpus > o.nvcpu + 1))
		return bad("-c wants one cpu per vCPU plus an optional one "
			   "for the main thread");
	if (o.compare && !nbase)
		return bad("--compare needs --baseline NAME");
	if (o.compare) {
		o.impls[o.nimpl++] = find_impl("tdp");
		for (unsigned i = 0; i < nbase; i++)
			if (base[i] != o.impls[0])
				o.impls[o.nimpl++] = base[i];
	} else {
		if (nbase > 1)
			return bad("more than one baseline needs --compare");
		o.impls[o.nimpl++] = nbase ? base[0] : find_impl("tdp");
	}
	for (unsigned i = 0; i < o.nimpl; i++)
		if (!(o.impls[i]->benches & BENCH_BIT(o.kind))) {
			fprintf(stderr,
				"tdpmmu bench: baseline '%s' has no %s "
				"benchmark\n",
				o.impls[i]->name, bench_names[o.kind]);
			return 2;
		}
	if (o.ncpus > o.nvcpu) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(o.cpus[o.nvcpu], &set);
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	if (!o.rounds)
		o.rounds = 1;
	calibrate();
	runs = calloc((size_t)o.nimpl * o.rounds, sizeof(*runs));
	if (!runs)
		return 1;
	if (o.kind == BENCH_DIRTY_LOG)
		dlmode = o.ring ? (o.pml ? ", dirty rings fed by PML"
					 : ", dirty rings, write protection")
			 : o.pml ? ", dirty log by Dirty bits logged by PML"
			 : o.dbit ? ", dirty log by Dirty bits"
				  : ", dirty log by write protection";
	if (!o.json)
		printf("Testing %s: %u vCPU%s, %" PRIu64
		       " MiB per vCPU (%s), %s backing, %s access, %u "
		       "memslot%s%s%s\n",
		       bench_names[o.kind], o.nvcpu, o.nvcpu > 1 ? "s" : "",
		       o.bytes >> 20, o.overlap ? "overlapping" : "partitioned",
		       o.backing == BENCH_PAGE	  ? "4k"
		       : o.backing == TDP_HUGE_2M ? "2m"
						  : "1g",
		       o.random ? "random" : "sequential", o.slots,
		       o.slots > 1 ? "s" : "", dlmode,
		       o.kind == BENCH_DIRTY_LOG && o.manual
			       ? ", manual protect"
			       : "");
	/* Round r runs the designs starting from design r mod nimpl, so no
	 * design always runs first (fresh machine) or last. */
	for (unsigned r = 0; r < o.rounds; r++) {
		for (unsigned j = 0; j < o.nimpl; j++) {
			unsigned i = (j + r) % o.nimpl;
			struct bench *b = &runs[r * o.nimpl + i];

			b->o = &o;
			b->impl = o.impls[i];
			if (run_one(b))
				ok = false;
			teardown(b);
			if (!o.json && o.rounds == 1)
				print_run_text(b);
		}
	}
	if (!o.json && o.rounds > 1) {
		for (unsigned i = 0; i < o.nimpl; i++) {
			printf("-- round 1 --\n");
			print_run_text(&runs[i]);
		}
		print_rounds_text(runs, o.nimpl, o.rounds);
	} else if (!o.json && o.nimpl > 1) {
		print_compare_text(runs, o.nimpl);
	}
	if (o.json)
		print_json(runs, o.nimpl, o.rounds, ok);
	else
		printf("bench %s: %s\n", bench_names[o.kind],
		       ok ? "verified" : "FAILED");
	free(runs);
	return ok ? 0 : 1;
}
