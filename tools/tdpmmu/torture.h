/* SPDX-License-Identifier: MIT */
/*
 * torture.h - `tdpmmu torture`, shared by its files (the list, and the
 * whole design, are in torture.c's header comment): the constants, the
 * operations and thread kinds, the state (struct torture, struct thread,
 * the TLB promises), where a page is (inline), and the functions that one
 * file calls in another.
 *
 * Locking: operations that legitimately change what a page holds (munmap +
 * mmap, memslot churn) take a per-region (struct region.lock) or per-slot
 * (struct slot.lock) rwlock for write; vCPUs take them for read (trylock,
 * skipping busy ones).  Conversions and hole punches take a third
 * per-region rwlock, plock, for write (conversions also their slot's lock
 * for read: a memslot re-add makes every page private again).  Everything
 * else races with the accesses.  The page accessors below take no lock:
 * page_gpa() follows memslot moves (stable while the caller holds the
 * slot's lock for read), page_backing() follows conversions (stable as its
 * comment says).  The first failure wins (fail()), and the run stops.
 */
#ifndef TDP_TORTURE_H
#define TDP_TORTURE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/host.h"
#include "sched/sched.h"
#include "vm.h"

#define PAGE	    4096ull
#define REGION	    (2ull << 20)
#define CHUNK_PAGES 16
#define NSLOTS	    4
#define MAX_VCPUS   64
#define WARM	    4 /* regions in a vCPU working set */
#define LOG_DEPTH   8
#define WATCHDOG_S  10

/* ------------------------------------------------------------------ */
/* Operations                                                          */
/* ------------------------------------------------------------------ */

enum op {
	OP_READ,
	OP_WRITE,
	OP_TRANSLATE,
	OP_ASSWITCH,
	OP_WRONG, /* vCPUs */
	OP_PROBE,
	OP_PREFAULT,
	OP_FETCH, /* --nx only */
	OP_MIGRATE,
	OP_SWAPOUT,
	OP_SPLIT,
	OP_MPROTECT,
	OP_UNMAP, /* host */
	OP_PUNCH,
	OP_ZAP,
	OP_RESET,
	OP_FASTZAP,
	OP_NOTIFY, /* zapper */
	OP_SLOT_DELETE,
	OP_SLOT_MOVE,
	OP_SLOT_RO,
	OP_SLOT_LOG, /* memslots */
	OP_HARVEST,
	OP_AGE,
	OP_CONVERT, /* tracker */
	OP_NX_RECOVER, /* --nx only */
	OP_COUNT
};

enum thread_kind { T_VCPU, T_HOST, T_ZAPPER, T_SLOTS, T_TRACK, T_KINDS };

/* Dirty logging of every memslot (--log): write-protect, write-protect
 * without eager split, Dirty bits logged by PML, Dirty bits found by a
 * walk (no PML), and dirty rings fed by write-protect faults or PML. */
enum log_mode {
	LOG_OFF,
	LOG_WP,
	LOG_WP_LAZY,
	LOG_DBIT,
	LOG_DBIT_WALK,
	LOG_RING,
	LOG_RING_PML,
	LOG_MODES
};

/* The VM flags and ring size of a log mode. */
static inline unsigned log_mode_flags(enum log_mode m)
{
	switch (m) {
	case LOG_WP_LAZY:
		return TDP_VM_NO_EAGER_SPLIT;
	case LOG_DBIT:
	case LOG_RING_PML:
		return TDP_VM_DIRTY_DBIT | TDP_VM_PML;
	case LOG_DBIT_WALK:
		return TDP_VM_DIRTY_DBIT;
	default:
		return 0;
	}
}

static inline bool log_mode_ring(enum log_mode m)
{
	return m == LOG_RING || m == LOG_RING_PML;
}

/* ------------------------------------------------------------------ */
/* State                                                               */
/* ------------------------------------------------------------------ */

struct slot {
	uint64_t hva, size, folio;
	uint64_t phva;	       /* confidential: its guest-private memory */
	uint64_t gpa[2];       /* its two possible places */
	atomic_int where;      /* index into gpa[] */
	pthread_rwlock_t lock; /* write: memslot churn */
	bool log_off;	       /* logging paused (slot-log); lock */
};

struct region {
	pthread_rwlock_t lock; /* write: munmap + mmap (contents reset) */
	/* confidential: write: a conversion (attributes change) or a hole
	 * punch (private contents reset) of pages of the region */
	pthread_rwlock_t plock;
	atomic_uint prot_seq; /* 4k+1 RO asked, +2 RO done, +3 RW asked */
};

struct shared_word {
	atomic_uint issued, committed;
};

/* Which memory an access of a page reaches: the memslot's hva (always,
 * outside confidential mode; the shared side of a confidential VM) or its
 * guest-private memory (the private side). */
enum backing { B_HVA, B_PRIV, B_COUNT };

struct thread {
	struct torture *t;
	enum thread_kind kind;
	unsigned id;	       /* vCPU id for vCPU threads */
	uint32_t acc_h, acc_a; /* vCPUs: harvests / agings done before
				  the current access began */
	struct tdp_vcpu *vcpu; /* checker vCPU for host/slot threads */
	uint64_t seed;
	uint64_t hot, hot_left; /* vCPUs: current working 2 MiB region */
	uint64_t window;	/* vCPUs: first page of a 64-page window in
				   it, or ~0: the whole region */
	/* vCPUs: pages written recently, re-checked a little later */
	struct {
		uint64_t page;
		uint64_t at_ns;
		uint32_t ms;
	} recent[8];
	unsigned recent_head, recent_n;
	atomic_ullong progress;
	pthread_t th;
	uint64_t ops[OP_COUNT];
	uint64_t promise_seen; /* vCPUs: promises checked up to here */
};

/*
 * TLB promises (blind spot 6).  An operation that takes translations away
 * (a gfn-range zap, a memslot made read-only) must have flushed every vCPU
 * before it returns: each vCPU has either flushed since the operation
 * began or has a flush request pending.  Later flushes by other
 * operations would hide a missing one from the checkpoints, so the
 * promise is checked at once: when it returns, the operation records for
 * each vCPU that has neither flushed since it began nor a request pending
 * what that vCPU's TLB may no longer hold (entries filled before the
 * operation began, of its range, of a kind: any, writable, or letting
 * writes skip the Dirty bit), and the vCPU checks its own TLB before its
 * next access (the TLB is its thread's), unless it has flushed since.
 * A promise is recorded only when the operation ran alone among the
 * non-vCPU threads (ops_active, ops_gen), so that no other operation can
 * owe a flush for what it removed; vCPU faults only remove tables under
 * a huge leaf that the operation then zaps and flushes itself.
 */
#define PROMISES 64

struct promise {
	unsigned as, forbid; /* as ~0u: every address space */
	uint64_t gfn, npages;
	const char *what;
	uint64_t fills[MAX_VCPUS], flushes[MAX_VCPUS];
	bool check[MAX_VCPUS];
};

struct promise_mark {
	uint64_t gen;
	bool alone;
	uint64_t fills[MAX_VCPUS], flushes[MAX_VCPUS];
};

struct torture {
	/* configuration */
	uint64_t duration_s, seed, mem;
	unsigned nvcpu, nr_as, weights[OP_COUNT];
	int inject;
	bool quiet, json, progress_tty;
	/* --sched: the controlled scheduler (TDP_SCHED builds) */
	struct tdp_sched_config sched;
	uint64_t sched_checkpoint_steps;
	char cmdline[1024];
	uint64_t sched_steps, sched_hash; /* at the end of the run */
	uint64_t t_end; /* --sched: the virtual clock at the end */
	/* machine */
	struct tdp_host *h;
	struct tdp_vm *vm;
	struct slot slots[NSLOTS];
	uint64_t slot_size, npages, nregions;
	struct region *regions;
	/* the model, per backing (B_PRIV in confidential mode only) */
	uint32_t *gen[B_COUNT];		     /* owned pages, owner only */
	struct shared_word *shared[B_COUNT]; /* [npages / CHUNK_PAGES][nvcpu] */
	unsigned engine;		     /* TDP_ENGINE_* (--engine) */
	unsigned host_backend;		     /* TDP_HOST_* (--host) */
	/* confidential mode */
	bool confidential;
	bool nx; /* --nx: TDP_VM_NX_HUGE_PAGES, executable host memory */
	uint64_t shared_mask;	   /* the VM's shared gpa bit, or 0 */
	atomic_uchar *attr_shared; /* 1: the page is shared now */
	/* per page, odd while a conversion or hole punch of it runs (probes
	 * race both, holding neither plock nor the slot's write side) */
	atomic_uint *pchange;
	struct tdp_vcpu *ckpt_vcpu; /* the main thread's, checkpoints */
	uint64_t private_verified;
	_Atomic uint64_t *log; /* [npages][LOG_DEPTH] */
	atomic_uint *log_pos;
	/* ms since start, 0 = never: when the newest successful write of a
	 * page began, and when the newest swap-out / replacement of it began
	 * and ended */
	atomic_uint *last_write, *swap_start, *swap_end;
	/* root resets running now (two zappers may overlap), and done */
	atomic_uint resets_active, resets_done;
	/* dirty log (I7) and aging (I8) oracles: a vCPU's successful access
	 * of page p stores (harvests/agings done before it began) << 32 |
	 * (harvests/agings begun when it ended) in wpair[p] / apair[p];
	 * evict[p] is odd while a swap-out or munmap of p runs */
	enum log_mode log_mode;
	/* dirty rings: the tracker's fetch index per vCPU id (tracker
	 * only), entries collected, accesses refused at the soft limit */
	uint32_t ring_fetch[MAX_VCPUS + 3];
	uint64_t ring_entries;
	atomic_ullong ring_full;
	_Atomic uint64_t *wpair, *apair;
	atomic_uint *evict;
	atomic_uint h_started, h_done, a_started, a_done;
	uint32_t *reported, *last_aged, *evict_snap; /* tracker only */
	uint8_t *owed_a;			     /* tracker only */
	uint64_t *checked_a, *hbm;		     /* tracker only */
	uint64_t harvests, agings, harvested_pages, young_pages;
	/* threads */
	struct thread *threads;
	unsigned nthreads;
	/* TLB promises (promise_begin): what an operation that ran alone
	 * left each vCPU's TLB, checked by the vCPU at its next operation */
	pthread_mutex_t promise_lock;
	struct promise promises[PROMISES];
	atomic_ullong promises_made, promises_checked;
	atomic_uint ops_active; /* host/zapper/memslot/tracker ops now */
	atomic_ullong ops_gen;	/* +1 when one of those starts or ends */
	/* each vCPU's working set: its current 2 MiB region (slot 0) and
	 * the regions it worked in before (slots 1..WARM-1) */
	atomic_ullong hot[MAX_VCPUS][WARM];
	atomic_bool stop, pause;
	atomic_uint parked;
	/* outcome */
	atomic_bool failed;
	pthread_mutex_t fail_lock;
	char oracle[64], message[4096];
	double fail_at;
	uint64_t t0, checkpoints, verified_pages;
	struct tdp_stats final; /* taken before teardown */
	uint64_t yields, zapped_dirty;
};

/* ------------------------------------------------------------------ */
/* Pages: where a page is                                              */
/* ------------------------------------------------------------------ */

static inline unsigned page_slot(struct torture *t, uint64_t p)
{
	return (unsigned)(p * PAGE / t->slot_size);
}

static inline uint64_t page_off(struct torture *t, uint64_t p)
{
	return p * PAGE % t->slot_size;
}

static inline uint64_t page_hva(struct torture *t, uint64_t p)
{
	return t->slots[page_slot(t, p)].hva + page_off(t, p);
}

static inline uint64_t page_region(uint64_t p)
{
	return p * PAGE / REGION;
}

static inline bool page_common(uint64_t p)
{
	return p % CHUNK_PAGES == 0;
}

static inline unsigned page_owner(struct torture *t, uint64_t p)
{
	return (unsigned)((p / CHUNK_PAGES) % t->nvcpu);
}

static inline struct shared_word *shared_word(struct torture *t, uint64_t p,
					      enum backing b, unsigned w)
{
	return &t->shared[b][(p / CHUNK_PAGES) * t->nvcpu + w];
}

/* Which memory an access of @p reaches now.  Stable while the caller
 * holds the page's plock (or its slot's lock) for read. */
static inline enum backing page_backing(struct torture *t, uint64_t p)
{
	return t->confidential && !atomic_load_explicit(&t->attr_shared[p],
							memory_order_relaxed)
		       ? B_PRIV
		       : B_HVA;
}

static inline uint64_t page_private_hva(struct torture *t, uint64_t p)
{
	return t->slots[page_slot(t, p)].phva + page_off(t, p);
}

/* The address of @p's memory in backing @b, for reports. */
static inline uint64_t backing_hva(struct torture *t, uint64_t p,
				   enum backing b)
{
	return b == B_PRIV ? page_private_hva(t, p) : page_hva(t, p);
}

/* The gpa of @p, without the shared bit. */
static inline uint64_t page_gpa(struct torture *t, uint64_t p)
{
	struct slot *s = &t->slots[page_slot(t, p)];

	return s->gpa[atomic_load(&s->where)] + page_off(t, p);
}

/* The gpa that reaches backing @b of @p (the shared bit for the hva of a
 * confidential VM). */
static inline uint64_t backing_gpa(struct torture *t, uint64_t p,
				   enum backing b)
{
	return page_gpa(t, p) | (b == B_HVA ? t->shared_mask : 0);
}

/* The gpa of an access of @p of the right kind (attribute stable). */
static inline uint64_t access_gpa(struct torture *t, uint64_t p)
{
	return backing_gpa(t, p, page_backing(t, p));
}

/* ------------------------------------------------------------------ */
/* Functions of one file called in another                             */
/* ------------------------------------------------------------------ */

/* The protection of the ordinary (shared) host memory: @prot, and
 * executable with --nx (where vCPUs fetch). */
static inline unsigned host_prot(const struct torture *t, unsigned prot)
{
	return t->nx ? prot | TDP_PROT_EXEC : prot;
}

/* torture.c: the operations' names (OP_*) */
extern const char *const op_names[OP_COUNT];

/* torture_model.c: the clock, the model of the pages' contents, the
 * attributes' change counts and the per-page log */
double elapsed(struct torture *t);
uint32_t now_ms(struct torture *t);
uint64_t common_enc(uint64_t p, enum backing b, unsigned w, uint32_t seq);
uint64_t owned_word(uint64_t p, enum backing b, uint32_t gen, unsigned i);
void pchange_bump(struct torture *t, uint64_t first, uint64_t n);
void page_log(struct torture *t, uint64_t p, enum op op, unsigned tid,
	      uint32_t aux);
void log_range(struct torture *t, uint64_t first, uint64_t n, enum op op,
	       unsigned tid);
size_t describe_log(struct torture *t, uint64_t p, char *buf, size_t len);

/* torture_check.c: the oracles */
__attribute__((format(printf, 3, 4))) void
fail(struct torture *t, const char *oracle, const char *fmt, ...);
void check_owned(struct torture *t, const char *who, uint64_t p, enum backing b,
		 const uint64_t *buf, unsigned first, unsigned n);
void check_common(struct torture *t, const char *who, uint64_t p,
		  enum backing b, const uint64_t *buf, const uint32_t *before,
		  const uint32_t *after);
void common_snap(struct torture *t, uint64_t p, enum backing b, bool issued,
		 uint32_t *out);
void access_failed(struct torture *t, const char *who, const char *op,
		   uint64_t gpa, uint64_t p, int r);
void expect_unmapped(struct torture *t, uint64_t first, uint64_t n);
void expect_mmio_exit(struct torture *t, struct thread *th, uint64_t gpa,
		      const char *why);
void expect_no_private(struct torture *t, struct thread *th, uint64_t gpa,
		       const char *why);
void promise_begin(struct torture *t, struct promise_mark *m);
void promise_end(struct torture *t, const struct promise_mark *m, unsigned as,
		 uint64_t gpa, uint64_t size, unsigned forbid,
		 const char *what);
void promise_check(struct torture *t, struct thread *th);
void recheck_recent_writes(struct torture *t, struct thread *th);
void remember_write(struct torture *t, struct thread *th, uint64_t p,
		    uint32_t ms);
void check_dirty_recorded(struct torture *t);
void verify_all(struct torture *t);
void audit(struct torture *t, const char *when);

/* torture_vcpu.c: one operation of a vCPU thread */
void vcpu_op(struct torture *t, struct thread *th, enum op op);

/* torture_ops.c: the other threads' operations, every thread's loop */
void host_check(struct torture *t, const char *what, int r);
int set_slot(struct torture *t, unsigned i, unsigned as, uint64_t size,
	     unsigned flags);
void *thread_main(void *arg);

#endif
