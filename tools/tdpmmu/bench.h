/* SPDX-License-Identifier: MIT */
/*
 * bench.h - `tdpmmu bench`: the benchmark framework shared by the
 * subcommands (bench.c: options, baselines, vCPU threads, phases, output;
 * bench_work.c: the workloads; bench_floor.c: the `floor` baseline).
 *
 * Threading: one main thread drives a run; each benchmark vCPU has its
 * own worker thread, released phase by phase through two barriers (start,
 * done).  The start barrier only wakes the workers: the timed part of a
 * phase begins from a spin (bench.arrived), once every participant is
 * awake, because waking an idle thread of a virtual machine takes
 * milliseconds.  Between the barriers a worker touches only its struct
 * bench_vcpu and the guest memory words it owns (word `id` of each page), the
 * main thread only its main-operation results; everything else is read after
 * the done barrier.  stop, mismatches and errors are atomics.
 */
#ifndef TDP_BENCH_H
#define TDP_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "hist.h"
#include "tdpmmu.h"

#define BENCH_MAX_VCPUS	  512 /* one 8-byte word per vCPU in a page */
#define BENCH_MAX_PHASES  64
#define BENCH_MAX_IMPLS	  8
#define BENCH_MAX_EXTRA	  8
#define BENCH_MAX_SUMMARY 12
#define BENCH_PAGE	  4096ull
#define BENCH_GPA_BASE	  (4ull << 30)
#define FLOOR_NONE	  (~0ull)

enum bench_kind {
	BENCH_POPULATE,
	BENCH_ACCESS,
	BENCH_MEMSLOT,
	BENCH_MMU_STRESS,
	BENCH_DIRTY_LOG,
	BENCH_TRANSLATE,
	BENCH_FAST_ZAP,
	BENCH_NX_RECOVERY,
	BENCH_DIRTY_HARVEST,
	BENCH_KINDS
};
#define BENCH_BIT(k) (1u << (k))
#define BENCH_ALL    ((1u << BENCH_KINDS) - 1)

enum impl_kind { IMPL_VM, IMPL_FLOOR };

/* A design to measure: the TDP MMU or a baseline (bench.c: bench_impls). */
struct bench_impl {
	const char *name;
	const char *help;
	enum impl_kind kind;
	unsigned vm_flags; /* IMPL_VM: tdp_vm_config.flags */
	unsigned benches;  /* BENCH_BIT()s of the subcommands it supports */
	unsigned engine;   /* IMPL_VM: tdp_vm_config.engine (0: TDP) */
	bool ring;	   /* IMPL_VM: dirty rings (bench_ring_size) */
};

struct bench_opts {
	enum bench_kind kind;
	unsigned nvcpu;
	uint64_t bytes;	  /* per vCPU (-b) */
	uint64_t backing; /* folio size (-s) */
	unsigned iters;	  /* -i */
	unsigned write_pct;
	bool random, overlap, json, compare;
	unsigned slots; /* -x */
	bool dbit;	/* dirty-log -m dbit: TDP_VM_DIRTY_DBIT */
	bool manual;	/* dirty-log -M: TDP_VM_MANUAL_PROTECT */
	bool pml;	/* dirty-log -m pml: TDP_VM_DIRTY_DBIT | TDP_VM_PML */
	bool ring;	/* dirty-log --ring: dirty rings */
	int cpus[BENCH_MAX_VCPUS + 1];
	unsigned ncpus;
	uint64_t seed;
	unsigned rounds; /* --rounds: runs of every design, interleaved */
	const struct bench_impl *impls[BENCH_MAX_IMPLS]; /* [0] is measured */
	unsigned nimpl;
};

struct bench_phase {
	char name[64];
	const char *unit; /* what one op is: "access", "move", ... */
	const char *lat_what;
	uint64_t wall_ns; /* start barrier to done barrier (main clock) */
	uint64_t busy_ns; /* sum of per-thread time inside the ops */
	uint64_t ops, faults, bytes;
	unsigned threads;
	struct hist lat;
	struct tdp_stats d; /* VM counter deltas over the phase */
	unsigned nextra;
	struct {
		const char *key;
		double val;
	} extra[BENCH_MAX_EXTRA];
};

struct bench;

struct bench_vcpu {
	struct bench *b;
	unsigned id;
	pthread_t th;
	struct tdp_vcpu *vcpu;
	struct floor_table *floor;
	uint64_t gpa0, npages;	   /* its region */
	uint16_t *gen;		   /* per page: generation of its word */
	uint32_t *order;	   /* -a: page visiting order, else NULL */
	uint64_t *tr_gpa, *tr_out; /* translate batches */
	double *tr_batch_ns;	   /* translate: mean ns of each batch */
	/* per phase, written by the worker */
	uint64_t t0, t1; /* ticks */
	uint64_t ops, faults, busy_ticks;
	struct hist lat;
} __attribute__((aligned(64))); /* workers write their own: no shared line */

typedef void (*bench_vcpu_fn)(struct bench_vcpu *bv, void *arg);
/* A main-thread operation loop; records ops and latencies in @p. */
typedef int (*bench_main_fn)(struct bench *b, struct bench_phase *p, void *arg);

struct bench {
	const struct bench_opts *o;
	const struct bench_impl *impl;
	struct tdp_host *host;
	struct tdp_vm *vm;
	uint64_t hva, gpa, size, map_size; /* guest memory (all vCPUs) */
	uint8_t *fbuf;			   /* floor: the guest memory */
	struct bench_vcpu *v;
	pthread_barrier_t start, done;
	bool threads_up;
	bench_vcpu_fn fn;
	void *arg;
	/* vCPUs taking part in the next phase: 0 .. active - 1 (set by the
	 * workload between phases; bench_phase_run resets it to all) */
	unsigned active;
	/* the spin start of a phase: each participant (the active workers,
	 * and the main thread when it has an operation loop) adds one, then
	 * spins until all have: nobody starts while another is still being
	 * woken from the barrier */
	atomic_uint arrived;
	unsigned participants;
	atomic_bool stop, quit;
	atomic_ullong mismatches, errors;
	struct bench_phase ph[BENCH_MAX_PHASES];
	unsigned nph;
	unsigned nsum;
	struct {
		const char *key;
		const char *label;
		double val;
	} sum[BENCH_MAX_SUMMARY];
	const char *note; /* one line printed after the phases */
	/* the memslots of the guest memory (-x): slot k covers pages
	 * [k * slot_pages, min((k + 1) * slot_pages, size / 4K)) */
	unsigned nslots;
	uint64_t slot_pages;
	/* memslot benchmark's extra memory */
	uint64_t test_hva, spare_hva;
};

/* bench.c */
uint64_t bench_ticks(void);
double bench_ticks_ns(uint64_t ticks);
uint64_t bench_expect(uint64_t gfn, uint64_t gen, unsigned vcpu);
void bench_mismatch(struct bench *b, const char *who, uint64_t gpa,
		    uint64_t want, uint64_t got);
void bench_error(struct bench *b, const char *who, uint64_t gpa, int err);
struct bench_phase *bench_phase_run(struct bench *b, const char *name,
				    const char *unit, bench_vcpu_fn fn,
				    void *arg, bench_main_fn mfn, void *marg);
void bench_phase_extra(struct bench_phase *p, const char *key, double val);
/* Add phase @src's times, counts, latencies and counter deltas to @dst
 * (the passes of one steady-state phase). */
void bench_phase_add(struct bench_phase *dst, const struct bench_phase *src);
/* A phase slot for a result assembled by the workload (bench_phase_add). */
struct bench_phase *bench_phase_new(struct bench *b, const char *name,
				    const char *unit);
/* Steady-state phases last at least this long (summed over passes). */
#define BENCH_STEADY_NS (50ull * 1000 * 1000)
void bench_summary(struct bench *b, const char *key, const char *label,
		   double val);
int bench_host_word(struct bench *b, uint64_t gpa, uint64_t *val, bool write);
int bench_verify_host(struct bench *b);

/* bench_floor.c */
struct floor_table;
int floor_create(uint64_t max_pages, struct floor_table **out);
void floor_destroy(struct floor_table *t);
void floor_reset(struct floor_table *t);
uint64_t floor_lookup(const struct floor_table *t, uint64_t gfn);
int floor_insert(struct floor_table *t, uint64_t gfn, uint64_t pfn);
int bench_floor_access(struct bench_vcpu *bv, uint64_t gpa, uint64_t *val,
		       bool write);

/* One 8-byte guest access by benchmark vCPU @bv: through the vCPU for the
 * VM designs; a lookup (an insert on a miss: the floor's "fault") and a
 * plain load or store for the floor. */
static inline int bench_access(struct bench_vcpu *bv, uint64_t gpa,
			       uint64_t *val, bool write)
{
	if (!bv->floor)
		return write ? tdp_vcpu_write(bv->vcpu, gpa, val, 8)
			     : tdp_vcpu_read(bv->vcpu, gpa, val, 8);
	return bench_floor_access(bv, gpa, val, write);
}

/* bench_work.c: the subcommands */
int bench_populate(struct bench *b);
int bench_access_run(struct bench *b);
int bench_memslot(struct bench *b);
int bench_mmu_stress(struct bench *b);
int bench_translate(struct bench *b);
int bench_dirty_log(struct bench *b);
int bench_dirty_harvest(struct bench *b);
/* The dirty ring size of a run with rings: room for every page of a
 * vCPU's region above the soft limit, up to TDP_DIRTY_RING_MAX. */
unsigned bench_ring_size(const struct bench *b);
int bench_fast_zap(struct bench *b);
int bench_nx_recovery(struct bench *b);

#endif
