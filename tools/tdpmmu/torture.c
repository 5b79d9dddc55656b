/* SPDX-License-Identifier: MIT */
/*
 * torture.c - `tdpmmu torture`: random operations from many threads for a
 * set time, with oracles for the invariants of DESIGN.md, in the spirit of
 * Linux's rcutorture.  Its value is that it fails, by itself and quickly,
 * when one of the historical bugs (src/inject.h) is put back.
 *
 * Threads
 *   vCPUs      random reads and writes of owned and common pages, lockless
 *              translations, address-space switches; in confidential mode
 *              accesses of the wrong kind, which must exit with -EPERM,
 *              and probes racing conversions (vcpu_probe);
 *   host       migrate, swap-out, split, mprotect, munmap + mmap again (of
 *              the ordinary, shared memory); in confidential mode hole
 *              punches in the guest-private memory;
 *   zappers    two of them: zap gfn ranges, invalidate and reload roots,
 *              fast zaps, nested notifier invalidations (notify_op);
 *   memslots   delete + re-add, move, read-only toggle, dirty logging
 *              toggle;
 *   tracker    dirty-log harvests, aging; in confidential mode conversions
 *              between private and shared;
 *   main       checkpoints (audit, full content check, dirty-recording
 *              check), watchdog, progress.
 *
 * Keeping the oracle exact while the MMU races freely: operations that
 * legitimately change what a page holds (munmap + mmap, memslot churn)
 * take a per-region or per-slot rwlock for write; vCPUs take them for read
 * (trylock, skipping busy ones).  Conversions and hole punches take a third
 * per-region rwlock, plock, for write (conversions also their slot's lock
 * for read: a memslot re-add makes every page private again).  Everything
 * else (migrate, swap-out, split, mprotect, zaps, root resets, fast zaps,
 * other vCPUs, and host operations racing with conversions) races with
 * the accesses.  Logging off holds its slot's lock for read (slots_op).
 * Operations that take translations away check, as they return, that no
 * vCPU TLB kept what they removed (struct promise).
 *
 * Content: in every 64 KiB chunk, page 0 is common (every vCPU writes it)
 * and pages 1..15 are owned by one vCPU.  An owned page holds a full-page
 * pattern of its generation (0 = zeroes).  In a common page, word w
 * belongs to vCPU w and holds (page, w, seq); a reader requires
 * committed-before <= seq <= issued-after for every word, so stale
 * frames, poison and lost writes all show.
 *
 * Confidential mode (--confidential): the VM is a TDP_VM_CONFIDENTIAL one
 * and every memslot is TDP_MEM_PRIVATE, with guest-private memory of its
 * own (4 KiB folios) besides its ordinary hva.  Every page has an
 * attribute, private (as every page starts, and again after a memslot
 * re-add) or shared; vCPUs access a private page at its gpa and a shared
 * one at its gpa with the VM's shared bit set.  The two kinds reach
 * different memory, so the model above is kept per (page, backing), with
 * patterns that differ between the backings: reading the wrong memory
 * shows.  An access returning -EPERM (wrong kind) or -EIO (the external
 * table refused an operation, I11) fails the run; deliberate accesses of
 * the wrong kind must return -EPERM (I13).  Checkpoints also require
 * ext_errors == 0 and at most one mirror root; the private memory, which
 * the host may not read, is verified there by guest reads of every
 * private page from a vCPU of the main thread (the private memory of
 * shared pages is unreachable until they are converted back, and is then
 * checked by the vCPUs' reads).  Dirty logging (private slots cannot log),
 * read-only slots and the second address space are off.
 *
 * Determinism: each thread draws its operations from its own generator
 * seeded with (--seed, thread), so a seed replays the same choices; the
 * interleaving is the machine's.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "host/host.h"
#include "inject.h"
#include "sched/sched.h"
#include "vm.h"

#define PAGE 4096ull
#define REGION (2ull << 20)
#define CHUNK_PAGES 16
#define NSLOTS 4
#define MAX_VCPUS 64
#define WARM 4 /* regions in a vCPU working set */
#define LOG_DEPTH 8
#define WATCHDOG_S 10

/* ------------------------------------------------------------------ */
/* Operations                                                          */
/* ------------------------------------------------------------------ */

enum op {
	OP_READ, OP_WRITE, OP_TRANSLATE, OP_ASSWITCH, OP_WRONG,	  /* vCPUs */
	OP_PROBE,
	OP_MIGRATE, OP_SWAPOUT, OP_SPLIT, OP_MPROTECT, OP_UNMAP, /* host */
	OP_PUNCH,
	OP_ZAP, OP_RESET, OP_FASTZAP, OP_NOTIFY,		  /* zapper */
	OP_SLOT_DELETE, OP_SLOT_MOVE, OP_SLOT_RO, OP_SLOT_LOG,	  /* memslots */
	OP_HARVEST, OP_AGE, OP_CONVERT,				  /* tracker */
	OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
	"read", "write", "translate", "asswitch", "wrong-kind", "probe",
	"migrate", "swapout", "split", "mprotect", "unmap", "punch", "zap",
	"reset", "fast-zap", "notify", "slot-delete", "slot-move", "slot-ro",
	"slot-log", "harvest", "age", "convert",
};

/* Operations at weight 0 change nothing in a run: the default mode keeps
 * its choices (a seed replays what it did before fast-zap, wrong-kind,
 * punch and convert existed). */
static const unsigned op_default_weight[OP_COUNT] = {
	[OP_READ] = 6, [OP_WRITE] = 6, [OP_TRANSLATE] = 3, [OP_ASSWITCH] = 1,
	[OP_MIGRATE] = 4, [OP_SWAPOUT] = 4, [OP_SPLIT] = 1, [OP_MPROTECT] = 1,
	[OP_UNMAP] = 2, [OP_ZAP] = 6, [OP_RESET] = 2, [OP_NOTIFY] = 2,
	[OP_SLOT_DELETE] = 1,
	[OP_SLOT_MOVE] = 1, [OP_SLOT_RO] = 1, [OP_SLOT_LOG] = 2,
	[OP_HARVEST] = 3, [OP_AGE] = 3,
};

/* --confidential: no second address space, no read-only or dirty-logged
 * (private) slots; wrong-kind accesses, hole punches, fast zaps and
 * conversions instead. */
static const unsigned op_confidential_weight[OP_COUNT] = {
	[OP_READ] = 6, [OP_WRITE] = 6, [OP_TRANSLATE] = 3, [OP_WRONG] = 1,
	[OP_PROBE] = 2, [OP_MIGRATE] = 4, [OP_SWAPOUT] = 4, [OP_SPLIT] = 1,
	[OP_MPROTECT] = 1,
	[OP_UNMAP] = 2, [OP_PUNCH] = 2, [OP_ZAP] = 6, [OP_RESET] = 2,
	[OP_FASTZAP] = 2, [OP_NOTIFY] = 2, [OP_SLOT_DELETE] = 1,
	[OP_SLOT_MOVE] = 1,
	[OP_AGE] = 3, [OP_CONVERT] = 6,
};

/* Operations only one of the modes can run. */
static bool op_confidential_only(enum op o)
{
	return o == OP_WRONG || o == OP_PROBE || o == OP_PUNCH ||
	       o == OP_CONVERT;
}

static bool op_not_confidential(enum op o)
{
	return o == OP_ASSWITCH || o == OP_SLOT_RO || o == OP_SLOT_LOG ||
	       o == OP_HARVEST;
}

enum thread_kind { T_VCPU, T_HOST, T_ZAPPER, T_SLOTS, T_TRACK, T_KINDS };
static const enum op kind_first[T_KINDS] = { OP_READ, OP_MIGRATE, OP_ZAP,
					     OP_SLOT_DELETE, OP_HARVEST };
static const enum op kind_end[T_KINDS] = { OP_MIGRATE, OP_ZAP, OP_SLOT_DELETE,
					   OP_HARVEST, OP_COUNT };

/* Dirty logging of every memslot (--log). */
enum log_mode { LOG_OFF, LOG_WP, LOG_WP_LAZY, LOG_DBIT };

/* ------------------------------------------------------------------ */
/* State                                                               */
/* ------------------------------------------------------------------ */

struct slot {
	uint64_t hva, size, folio;
	uint64_t phva;		/* confidential: its guest-private memory */
	uint64_t gpa[2];	/* its two possible places */
	atomic_int where;	/* index into gpa[] */
	pthread_rwlock_t lock;	/* write: memslot churn */
	bool log_off;		/* logging paused (slot-log); lock */
};

struct region {
	pthread_rwlock_t lock;	/* write: munmap + mmap (contents reset) */
	/* confidential: write: a conversion (attributes change) or a hole
	 * punch (private contents reset) of pages of the region */
	pthread_rwlock_t plock;
	atomic_uint prot_seq;	/* 4k+1 RO asked, +2 RO done, +3 RW asked */
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
	unsigned id;		/* vCPU id for vCPU threads */
	uint32_t acc_h, acc_a;	/* vCPUs: harvests / agings done before
				   the current access began */
	struct tdp_vcpu *vcpu;	/* checker vCPU for host/slot threads */
	uint64_t seed;
	uint64_t hot, hot_left;	/* vCPUs: current working 2 MiB region */
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
	uint32_t *gen[B_COUNT];		  /* owned pages, owner only */
	struct shared_word *shared[B_COUNT]; /* [npages / CHUNK_PAGES][nvcpu] */
	unsigned engine;		/* TDP_ENGINE_* (--engine) */
	/* confidential mode */
	bool confidential;
	uint64_t shared_mask;		/* the VM's shared gpa bit, or 0 */
	atomic_uchar *attr_shared;	/* 1: the page is shared now */
	/* per page, odd while a conversion or hole punch of it runs (probes
	 * race both, holding neither plock nor the slot's write side) */
	atomic_uint *pchange;
	struct tdp_vcpu *ckpt_vcpu;	/* the main thread's, checkpoints */
	uint64_t private_verified;
	_Atomic uint64_t *log;		/* [npages][LOG_DEPTH] */
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
	_Atomic uint64_t *wpair, *apair;
	atomic_uint *evict;
	atomic_uint h_started, h_done, a_started, a_done;
	uint32_t *reported, *last_aged, *evict_snap; /* tracker only */
	uint8_t *owed_a;			      /* tracker only */
	uint64_t *checked_a, *hbm;		      /* tracker only */
	uint64_t harvests, agings, harvested_pages, young_pages;
	/* threads */
	struct thread *threads;
	unsigned nthreads;
	/* TLB promises (promise_begin): what an operation that ran alone
	 * left each vCPU's TLB, checked by the vCPU at its next operation */
	pthread_mutex_t promise_lock;
	struct promise promises[PROMISES];
	atomic_ullong promises_made, promises_checked;
	atomic_uint ops_active;	  /* host/zapper/memslot/tracker ops now */
	atomic_ullong ops_gen;	  /* +1 when one of those starts or ends */
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

static struct torture *g_torture; /* for the SIGABRT reporter only */

static void recheck_recent_writes(struct torture *t, struct thread *th);
static void expect_mmio_exit(struct torture *t, struct thread *th,
			     uint64_t gpa, const char *why);
static void remember_write(struct torture *t, struct thread *th, uint64_t p,
			   uint32_t ms);

/* Under --sched: the decisions that led here, and how to replay them;
 * printed where the failure is seen, before anything else runs. */
static void sched_report_failure(struct torture *t)
{
#if TDP_SCHED_AVAILABLE
	if (!t->sched.strategy)
		return;
	fflush(stdout);
	if (t->sched.trace)
		tdp_sched_dump(STDOUT_FILENO, t->sched.trace);
	dprintf(STDOUT_FILENO, "torture: replay: %s\n", t->cmdline);
#else
	(void)t;
#endif
}

/* Seconds since the start: virtual under --sched (frozen at its end). */
static double elapsed(struct torture *t)
{
	return ((t->t_end ? t->t_end : cli_now_ns()) - t->t0) / 1e9;
}

static uint32_t now_ms(struct torture *t)
{
	return (uint32_t)((cli_now_ns() - t->t0) / 1000000) + 1;
}

/* First failure wins; the rest of the run stops. */
__attribute__((format(printf, 3, 4))) static void fail(struct torture *t,
						       const char *oracle,
						       const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&t->fail_lock);
	if (!atomic_load(&t->failed)) {
		snprintf(t->oracle, sizeof(t->oracle), "%s", oracle);
		va_start(ap, fmt);
		vsnprintf(t->message, sizeof(t->message), fmt, ap);
		va_end(ap);
		t->fail_at = elapsed(t);
		atomic_store(&t->failed, true);
		atomic_store(&t->stop, true);
		sched_report_failure(t);
	}
	pthread_mutex_unlock(&t->fail_lock);
}

/* ------------------------------------------------------------------ */
/* Pages                                                               */
/* ------------------------------------------------------------------ */

static unsigned page_slot(struct torture *t, uint64_t p)
{
	return (unsigned)(p * PAGE / t->slot_size);
}

static uint64_t page_off(struct torture *t, uint64_t p)
{
	return p * PAGE % t->slot_size;
}

static uint64_t page_hva(struct torture *t, uint64_t p)
{
	return t->slots[page_slot(t, p)].hva + page_off(t, p);
}

static uint64_t page_region(uint64_t p)
{
	return p * PAGE / REGION;
}

static bool page_common(uint64_t p)
{
	return p % CHUNK_PAGES == 0;
}

static unsigned page_owner(struct torture *t, uint64_t p)
{
	return (unsigned)((p / CHUNK_PAGES) % t->nvcpu);
}

static struct shared_word *shared_word(struct torture *t, uint64_t p,
				       enum backing b, unsigned w)
{
	return &t->shared[b][(p / CHUNK_PAGES) * t->nvcpu + w];
}

/* A common page's word: bit 63 set, never the host poison word; bit 39
 * tells the private memory from the hva. */
static uint64_t common_enc(uint64_t p, enum backing b, unsigned w,
			   uint32_t seq)
{
	return (1ull << 63) | ((p & 0x7fffffull) << 40) |
	       ((uint64_t)b << 39) | ((uint64_t)w << 32) | seq;
}

/* An owned page's word; the private memory has its own patterns. */
static uint64_t owned_word(uint64_t p, enum backing b, uint32_t gen,
			   unsigned i)
{
	return gen ? cli_pattern(b == B_PRIV ? p | 1ull << 40 : p, gen, i) : 0;
}

/* ---- confidential mode: attributes ---- */

/* A conversion or hole punch of pages [first, first + n) begins or ends
 * (pchange is odd in between; vcpu_probe). */
static void pchange_bump(struct torture *t, uint64_t first, uint64_t n)
{
	for (uint64_t p = first; p < first + n; p++)
		atomic_fetch_add(&t->pchange[p], 1);
}

/* Which memory an access of @p reaches now.  Stable while the caller
 * holds the page's plock (or its slot's lock) for read. */
static enum backing page_backing(struct torture *t, uint64_t p)
{
	return t->confidential && !atomic_load_explicit(&t->attr_shared[p],
							memory_order_relaxed)
		       ? B_PRIV
		       : B_HVA;
}

static uint64_t page_private_hva(struct torture *t, uint64_t p)
{
	return t->slots[page_slot(t, p)].phva + page_off(t, p);
}

/* The address of @p's memory in backing @b, for reports. */
static uint64_t backing_hva(struct torture *t, uint64_t p, enum backing b)
{
	return b == B_PRIV ? page_private_hva(t, p) : page_hva(t, p);
}

/* ---- per-page recent-operation log, for failure reports ---- */

static void page_log(struct torture *t, uint64_t p, enum op op, unsigned tid,
		     uint32_t aux)
{
	unsigned pos = atomic_fetch_add_explicit(&t->log_pos[p], 1,
						 memory_order_relaxed);
	uint64_t ms = (uint64_t)(elapsed(t) * 1000.0);
	uint64_t e = (ms << 32) | ((uint64_t)op << 24) |
		     ((uint64_t)(tid & 0xff) << 16) | (aux & 0xffff);

	atomic_store_explicit(&t->log[p * LOG_DEPTH + pos % LOG_DEPTH], e,
			      memory_order_relaxed);
}

static void log_range(struct torture *t, uint64_t first, uint64_t n,
		      enum op op, unsigned tid)
{
	for (uint64_t p = first; p < first + n && p < t->npages; p++)
		page_log(t, p, op, tid, 0);
}

static size_t describe_log(struct torture *t, uint64_t p, char *buf,
			   size_t len)
{
	size_t used = 0;

	used += (size_t)snprintf(buf, len, "recent operations on the page:");
	for (unsigned i = 0; i < LOG_DEPTH && used < len; i++) {
		uint64_t e = atomic_load(&t->log[p * LOG_DEPTH + i]);

		if (!e)
			continue;
		used += (size_t)snprintf(buf + used, len - used,
					 " [%.3fs %s by thread %u aux %u]",
					 (e >> 32) / 1000.0,
					 op_names[(e >> 24) & 0xff],
					 (unsigned)((e >> 16) & 0xff),
					 (unsigned)(e & 0xffff));
	}
	return used;
}

/* ------------------------------------------------------------------ */
/* Checks                                                              */
/* ------------------------------------------------------------------ */

static void report_mismatch(struct torture *t, const char *who, uint64_t p,
			    enum backing b, unsigned word, uint64_t want,
			    uint64_t found, const char *what)
{
	char log[1024];
	unsigned s = page_slot(t, p);
	uint64_t gpa = t->slots[s].gpa[atomic_load(&t->slots[s].where)] +
		       page_off(t, p) + word * 8;

	if (t->confidential && b == B_HVA)
		gpa |= t->shared_mask;
	describe_log(t, p, log, sizeof(log));
	fail(t, found == HOST_POISON_WORD ? "content (poisoned frame)"
					   : "content",
	     "%s read gpa %#" PRIx64 " (%s %#" PRIx64 ", %s page %" PRIu64
	     " word %u): expected %s%#" PRIx64 ", found %#" PRIx64 "%s; %s",
	     who, gpa, b == B_PRIV ? "guest-private memory at hva" : "hva",
	     backing_hva(t, p, b) + word * 8,
	     page_common(p) ? "common" : "owned", p, word, what, want, found,
	     found == HOST_POISON_WORD ? " (the host's poison: a freed frame)"
				       : "",
	     log);
}

/* Check words [first, first+n) of owned page @p (backing @b) read into
 * @buf. */
static void check_owned(struct torture *t, const char *who, uint64_t p,
			enum backing b, const uint64_t *buf, unsigned first,
			unsigned n)
{
	uint32_t gen = t->gen[b][p];

	for (unsigned i = 0; i < n; i++) {
		uint64_t want = owned_word(p, b, gen, first + i);

		if (buf[i] != want) {
			report_mismatch(t, who, p, b, first + i, want, buf[i],
					"");
			return;
		}
	}
}

/* Check a whole common page against [before, after] snapshots. */
static void check_common(struct torture *t, const char *who, uint64_t p,
			 enum backing b, const uint64_t *buf,
			 const uint32_t *before, const uint32_t *after)
{
	for (unsigned w = 0; w < PAGE / 8; w++) {
		uint64_t v = buf[w];

		if (w >= t->nvcpu) {
			if (v)
				report_mismatch(t, who, p, b, w, 0, v, "");
			if (v)
				return;
			continue;
		}
		if (!v && !before[w])
			continue;
		if (!v || (v >> 32) != (common_enc(p, b, w, 0) >> 32) ||
		    (uint32_t)v < before[w] || (uint32_t)v > after[w]) {
			report_mismatch(t, who, p, b, w,
					common_enc(p, b, w, before[w]), v,
					"at least ");
			return;
		}
	}
}

/* Snapshot the committed (or issued) sequence numbers of common page @p. */
static void common_snap(struct torture *t, uint64_t p, enum backing b,
			bool issued, uint32_t *out)
{
	for (unsigned w = 0; w < t->nvcpu; w++) {
		struct shared_word *sw = shared_word(t, p, b, w);

		out[w] = atomic_load(issued ? &sw->issued : &sw->committed);
	}
}

/* ------------------------------------------------------------------ */
/* vCPU operations                                                     */
/* ------------------------------------------------------------------ */

/* Lock what an access to page @p needs; false if busy. */
static bool access_begin(struct torture *t, uint64_t p)
{
	struct slot *s = &t->slots[page_slot(t, p)];
	struct region *rg = &t->regions[page_region(p)];

	if (pthread_rwlock_tryrdlock(&s->lock))
		return false;
	if (pthread_rwlock_tryrdlock(&rg->lock)) {
		pthread_rwlock_unlock(&s->lock);
		return false;
	}
	if (t->confidential && pthread_rwlock_tryrdlock(&rg->plock)) {
		pthread_rwlock_unlock(&rg->lock);
		pthread_rwlock_unlock(&s->lock);
		return false;
	}
	return true;
}

static void access_end(struct torture *t, uint64_t p)
{
	struct region *rg = &t->regions[page_region(p)];

	if (t->confidential)
		pthread_rwlock_unlock(&rg->plock);
	pthread_rwlock_unlock(&rg->lock);
	pthread_rwlock_unlock(&t->slots[page_slot(t, p)].lock);
}

/* The gpa of @p, without the shared bit. */
static uint64_t page_gpa(struct torture *t, uint64_t p)
{
	struct slot *s = &t->slots[page_slot(t, p)];

	return s->gpa[atomic_load(&s->where)] + page_off(t, p);
}

/* The gpa that reaches backing @b of @p (the shared bit for the hva of a
 * confidential VM). */
static uint64_t backing_gpa(struct torture *t, uint64_t p, enum backing b)
{
	return page_gpa(t, p) | (b == B_HVA ? t->shared_mask : 0);
}

/* The gpa of an access of @p of the right kind (attribute stable). */
static uint64_t access_gpa(struct torture *t, uint64_t p)
{
	return backing_gpa(t, p, page_backing(t, p));
}

/* A guest access returned -EIO: the external table refused an operation
 * (KVM_BUG_ON) and the VM is dead (I11). */
static void vm_dead(struct torture *t, const char *who, const char *op,
		    uint64_t gpa)
{
	fail(t, "external table (I11)",
	     "external table refused an operation (I11): %s: %s of gpa "
	     "%#" PRIx64 " returned -EIO, the VM is dead",
	     who, op, gpa);
}

/* A guest access that must have succeeded did not. */
static void access_failed(struct torture *t, const char *who, const char *op,
			  uint64_t gpa, uint64_t p, int r)
{
	if (r == -EIO)
		vm_dead(t, who, op, gpa);
	else if (r == -EPERM)
		fail(t, "memory attributes (I13)",
		     "%s: %s of gpa %#" PRIx64 " (page %" PRIu64 ", %s as far "
		     "as the torture knows) returned -EPERM: the VM took it "
		     "for an access of the wrong kind",
		     who, op, gpa, p,
		     page_backing(t, p) == B_PRIV ? "private" : "shared");
	else
		fail(t, "access result",
		     "%s: %s of gpa %#" PRIx64 " (page %" PRIu64
		     ") returned %d (%s) although its memslot and %s memory "
		     "are present and accessible",
		     who, op, gpa, p, r, strerror(-r),
		     t->confidential && page_backing(t, p) == B_PRIV
			     ? "guest-private"
			     : "host");
}

static void unexpected(struct torture *t, struct thread *th, const char *op,
		       uint64_t p, int r)
{
	char who[32];

	snprintf(who, sizeof(who), "vCPU %u", th->id);
	access_failed(t, who, op, access_gpa(t, p), p, r);
}

/* A successful access of @p by a vCPU: what the dirty-log and aging
 * oracles need (see struct torture).  They are about host memory: an
 * access of guest-private memory is none of their business. */
static void note_access(struct torture *t, struct thread *th, uint64_t p,
			bool write)
{
	if (page_backing(t, p) != B_HVA)
		return;
	/* the page's oldest write not yet seen reported: a later write
	 * must not hide a lost one */
	if (write && !t->slots[page_slot(t, p)].log_off) {
		uint64_t none = 0;

		atomic_compare_exchange_strong(
			&t->wpair[p], &none,
			(uint64_t)th->acc_h << 32 | atomic_load(&t->h_started));
	}
	atomic_store(&t->apair[p],
		     (uint64_t)th->acc_a << 32 | atomic_load(&t->a_started));
}

/* For the page log: the vCPU's address space, or in confidential mode
 * 2 for an access of the private side. */
static unsigned log_side(struct thread *th, enum backing b)
{
	return b == B_PRIV ? 2 : th->vcpu->as_id;
}

static void vcpu_read(struct torture *t, struct thread *th, uint64_t p)
{
	uint64_t buf[2 * PAGE / 8];
	uint32_t before[MAX_VCPUS], after[MAX_VCPUS];
	enum backing b = page_backing(t, p);
	uint64_t gpa = access_gpa(t, p);
	char who[32];
	int r;

	snprintf(who, sizeof(who), "vCPU %u", th->id);
	if (page_common(p)) {
		common_snap(t, p, b, false, before);
		r = tdp_vcpu_read(th->vcpu, gpa, buf, PAGE);
		common_snap(t, p, b, true, after);
		if (r)
			unexpected(t, th, "read", p, r);
		else
			check_common(t, who, p, b, buf, before, after);
		if (!r)
			note_access(t, th, p, false);
		return;
	}
	/* an owned page: a random word range, sometimes two pages (of the
	 * same kind: an access crossing into a page of the other kind would
	 * be of the wrong kind there) */
	unsigned first = (unsigned)(cli_rand(&th->seed) % (PAGE / 8));
	unsigned n = 1 + (unsigned)(cli_rand(&th->seed) % (PAGE / 8 - first));
	bool two = (p + 1) % CHUNK_PAGES != 0 &&
		   (cli_rand(&th->seed) & 3) == 0 &&
		   page_backing(t, p + 1) == b;

	if (two) {
		r = tdp_vcpu_read(th->vcpu, gpa, buf, 2 * PAGE);
		if (r)
			return unexpected(t, th, "read", p, r);
		check_owned(t, who, p, b, buf, 0, PAGE / 8);
		check_owned(t, who, p + 1, b, buf + PAGE / 8, 0, PAGE / 8);
		note_access(t, th, p, false);
		note_access(t, th, p + 1, false);
		return;
	}
	r = tdp_vcpu_read(th->vcpu, gpa + first * 8, buf, n * 8);
	page_log(t, p, OP_READ, th->id, 1000 + log_side(th, b));
	if (r)
		return unexpected(t, th, "read", p, r);
	check_owned(t, who, p, b, buf, first, n);
	note_access(t, th, p, false);
}

static void vcpu_write(struct torture *t, struct thread *th, uint64_t p)
{
	struct region *rg = &t->regions[page_region(p)];
	unsigned s1 = atomic_load(&rg->prot_seq), s2;
	uint32_t start = now_ms(t); /* the write lands after this */
	enum backing b = page_backing(t, p);
	uint64_t gpa = access_gpa(t, p);
	uint64_t buf[PAGE / 8];
	int r;

	if (page_common(p)) {
		struct shared_word *sw = shared_word(t, p, b, th->id);
		uint32_t seq = atomic_load(&sw->issued) + 1;
		uint64_t v = common_enc(p, b, th->id, seq);

		atomic_store(&sw->issued, seq);
		r = tdp_vcpu_write(th->vcpu, gpa + th->id * 8, &v, 8);
		s2 = atomic_load(&rg->prot_seq);
		if (!r) {
			note_access(t, th, p, true);
			atomic_store(&sw->committed, seq);
		} else {
			atomic_store(&sw->issued, seq - 1);
		}
	} else {
		uint32_t gen = t->gen[b][p] + 1;

		for (unsigned i = 0; i < PAGE / 8; i++)
			buf[i] = owned_word(p, b, gen, i);
		r = tdp_vcpu_write(th->vcpu, gpa, buf, PAGE);
		s2 = atomic_load(&rg->prot_seq);
		if (!r) {
			note_access(t, th, p, true);
			t->gen[b][p] = gen;
			page_log(t, p, OP_WRITE, th->id,
				 gen * 10 + log_side(th, b));
		}
	}
	/* the dirty-tracking oracle (I4) is about host memory: the private
	 * memory is never swapped */
	if (!r && b == B_HVA) {
		atomic_store(&t->last_write[p], start);
		remember_write(t, th, p, start);
	}
	/* -EFAULT is right only while an mprotect window overlapped us (of
	 * the hva: guest-private memory is never reprotected) */
	if (r == -EFAULT && b == B_HVA && !(s1 == s2 && s1 % 4 == 0))
		return;
	if (!r && b == B_HVA && s1 == s2 && s1 % 4 == 2)
		fail(t, "isolation (I13)",
		     "vCPU %u wrote gpa %#" PRIx64 " while its host memory was "
		     "read-only for the whole access",
		     th->id, gpa);
	else if (r)
		unexpected(t, th, "write", p, r);
}

/* Confidential mode: an access of the wrong kind (a private gpa for a
 * shared page or the reverse), attribute stable: it must exit with -EPERM
 * and change nothing (I13).  A write carries a value the content oracle
 * would notice. */
static void vcpu_wrong_kind(struct torture *t, struct thread *th, uint64_t p)
{
	enum backing b = page_backing(t, p);
	uint64_t gpa = backing_gpa(t, p, b == B_PRIV ? B_HVA : B_PRIV);
	uint64_t buf[8] = { 0 };
	bool write = cli_rand(&th->seed) & 1;
	unsigned off = (unsigned)(cli_rand(&th->seed) % (PAGE / 64)) * 64;
	int r;

	if (write) {
		for (unsigned i = 0; i < 8; i++)
			buf[i] = 0xbadc0ffee0000000ull | i;
		r = tdp_vcpu_write(th->vcpu, gpa + off, buf, sizeof(buf));
	} else {
		r = tdp_vcpu_read(th->vcpu, gpa + off, buf, sizeof(buf));
	}
	page_log(t, p, OP_WRONG, th->id, write);
	if (r == -EIO) {
		unexpected(t, th, write ? "wrong-kind write" : "wrong-kind read",
			   p, r);
	} else if (r != -EPERM) {
		char log[512];

		describe_log(t, p, log, sizeof(log));
		fail(t, "memory attributes (I13)",
		     "vCPU %u: %s of gpa %#" PRIx64 " (page %" PRIu64 ", %s) "
		     "returned %d, not -EPERM: an access of the wrong kind "
		     "%s; %s",
		     th->id, write ? "write" : "read", gpa + off, p,
		     b == B_PRIV ? "private" : "shared", r,
		     r ? "failed otherwise" : "reached memory", log);
	}
}

/*
 * Confidential mode (blind spot 4): a read of @p of either kind that
 * races conversions and hole punches of it.  It holds the slot's and the
 * region's locks for read (no memslot churn, no munmap) but not plock,
 * which conversions and punches hold for write.  When neither ran while
 * it did (pchange even and unchanged), the outcome is exact: the right
 * kind reaches memory, the wrong kind exits with -EPERM; a mapping of
 * the old kind that a racing fault installed after a conversion shows
 * here.  Otherwise any outcome but another error is allowed; contents
 * are the ordinary accesses' business.
 */
static void vcpu_probe(struct torture *t, struct thread *th, uint64_t p)
{
	struct slot *s = &t->slots[page_slot(t, p)];
	struct region *rg = &t->regions[page_region(p)];
	bool right = cli_rand(&th->seed) & 1;
	unsigned c0, c1;
	enum backing b;
	uint64_t w;
	int r;

	if (pthread_rwlock_tryrdlock(&s->lock))
		return;
	if (pthread_rwlock_tryrdlock(&rg->lock)) {
		pthread_rwlock_unlock(&s->lock);
		return;
	}
	c0 = atomic_load(&t->pchange[p]);
	b = page_backing(t, p);
	if (!right)
		b = b == B_PRIV ? B_HVA : B_PRIV;
	r = tdp_vcpu_read(th->vcpu, backing_gpa(t, p, b), &w, sizeof(w));
	c1 = atomic_load(&t->pchange[p]);
	if (r == -EIO)
		unexpected(t, th, "probe", p, r);
	else if (r && r != -EPERM)
		fail(t, "memory attributes (I13)",
		     "vCPU %u: probe of page %" PRIu64 " (%s) returned %d",
		     th->id, p, b == B_PRIV ? "private" : "shared", r);
	else if (c0 == c1 && !(c0 & 1) && (r == -EPERM) == right) {
		char log[512];

		describe_log(t, p, log, sizeof(log));
		fail(t, "memory attributes (I13)",
		     "vCPU %u: a %s read of page %" PRIu64 ", which is %s and "
		     "was not being converted, returned %d; %s",
		     th->id, b == B_PRIV ? "private" : "shared", p,
		     right == (b == B_PRIV) ? "private" : "shared", r, log);
	}
	page_log(t, p, OP_PROBE, th->id, right);
	pthread_rwlock_unlock(&rg->lock);
	pthread_rwlock_unlock(&s->lock);
}

/* ------------------------------------------------------------------ */
/* TLB promises (see struct promise)                                   */
/* ------------------------------------------------------------------ */

/* Before an operation that takes translations away; the operation has
 * counted itself in ops_active already (thread_main). */
static void promise_begin(struct torture *t, struct promise_mark *m)
{
	m->gen = atomic_load(&t->ops_gen);
	m->alone = atomic_load(&t->ops_active) == 1;
	for (unsigned i = 0; i < t->nvcpu; i++) {
		struct tdp_tlb *tlb = &t->threads[i].vcpu->tlb;

		m->flushes[i] = atomic_load(&tlb->flushes);
		m->fills[i] = atomic_load(&tlb->fills);
	}
}

/* It returned: what the vCPUs' TLBs may no longer hold. */
static void promise_end(struct torture *t, const struct promise_mark *m,
			unsigned as, uint64_t gpa, uint64_t size,
			unsigned forbid, const char *what)
{
	struct promise *pr;
	uint64_t no;

	if (!m->alone || atomic_load(&t->ops_active) != 1 ||
	    atomic_load(&t->ops_gen) != m->gen)
		return; /* another operation may owe a flush */
	pthread_mutex_lock(&t->promise_lock);
	no = atomic_load(&t->promises_made);
	pr = &t->promises[no % PROMISES];
	pr->as = as;
	pr->forbid = forbid;
	pr->gfn = gpa / PAGE;
	pr->npages = size / PAGE;
	pr->what = what;
	for (unsigned i = 0; i < t->nvcpu; i++) {
		struct tdp_vcpu *v = t->threads[i].vcpu;

		/* requests first: the vCPU clears them, then flushes */
		unsigned req = atomic_load(&v->requests);

		pr->fills[i] = m->fills[i];
		pr->flushes[i] = m->flushes[i];
		pr->check[i] = !req &&
			       atomic_load(&v->tlb.flushes) == m->flushes[i];
	}
	atomic_store(&t->promises_made, no + 1);
	pthread_mutex_unlock(&t->promise_lock);
}

/* A vCPU, between accesses: the promises made since its last check. */
static void promise_check(struct torture *t, struct thread *th)
{
	struct tdp_vcpu *v = th->vcpu;
	struct promise mine[PROMISES];
	unsigned n = 0;
	char why[256];

	if (atomic_load(&t->promises_made) == th->promise_seen)
		return;
	pthread_mutex_lock(&t->promise_lock);
	uint64_t made = atomic_load(&t->promises_made);

	if (made - th->promise_seen > PROMISES)
		th->promise_seen = made - PROMISES; /* overwritten */
	for (; th->promise_seen < made; th->promise_seen++) {
		const struct promise *pr =
			&t->promises[th->promise_seen % PROMISES];

		if (pr->check[th->id])
			mine[n++] = *pr;
	}
	pthread_mutex_unlock(&t->promise_lock);
	for (unsigned k = 0; k < n; k++) {
		const struct promise *pr = &mine[k];
		unsigned bad;

		if (atomic_load(&v->tlb.flushes) != pr->flushes[th->id] ||
		    (pr->as != ~0u && pr->as != v->as_id))
			continue; /* flushed since: nothing left to see */
		atomic_fetch_add(&t->promises_checked, 1);
		bad = vcpu_tlb_check(v, pr->fills[th->id], pr->gfn,
				     pr->npages, pr->forbid, why, sizeof(why));
		if (bad)
			fail(t, "TLB flush (I6)",
			     "%s of gfns %#" PRIx64 "+%#" PRIx64 " returned "
			     "with no flush done or pending for vCPU %u, "
			     "and %s (%u such entries)",
			     pr->what, pr->gfn, pr->npages, th->id, why, bad);
	}
}

static void vcpu_op(struct torture *t, struct thread *th, enum op op)
{
	uint64_t p;

	promise_check(t, th);
	/* Locality, as real guests have: bursts of accesses within one
	 * 2 MiB region, more pages than the TLB holds, so TLBs hold
	 * translations that zaps must flush and walks go through cached
	 * table pointers that table removal must flush. */
	if (!th->hot_left) {
		for (unsigned w = WARM - 1; w > 0; w--)
			atomic_store(&t->hot[th->id][w],
				     atomic_load(&t->hot[th->id][w - 1]));
		th->hot = cli_rand(&th->seed) % t->nregions;
		th->hot_left = 1 + cli_rand(&th->seed) % 1024;
		/* half the bursts stay in a window the TLB holds whole, so
		 * writes hit cached translations that a protection change
		 * must flush */
		th->window = cli_rand(&th->seed) & 1
				     ? (cli_rand(&th->seed) % 8) * 64
				     : ~0ull;
		atomic_store(&t->hot[th->id][0], th->hot);
	}
	th->hot_left--;
	/* one access in eight away from the burst: mostly back to a region
	 * of the working set (whose table pointer the vCPU may still cache;
	 * table removal there must flush it), sometimes anywhere */
	if (cli_rand(&th->seed) % 8 == 0) {
		if (cli_rand(&th->seed) % 4)
			p = atomic_load(&t->hot[th->id][1 + cli_rand(&th->seed) %
							      (WARM - 1)]) *
				    (REGION / PAGE) +
			    cli_rand(&th->seed) % (REGION / PAGE);
		else
			p = cli_rand(&th->seed) % t->npages;
	} else if (th->window != ~0ull) {
		p = th->hot * (REGION / PAGE) + th->window +
		    cli_rand(&th->seed) % 64;
	} else {
		p = th->hot * (REGION / PAGE) +
		    cli_rand(&th->seed) % (REGION / PAGE);
	}

	switch (op) {
	case OP_ASSWITCH:
		tdp_vcpu_set_as(th->vcpu,
				(unsigned)(cli_rand(&th->seed) % t->nr_as));
		return;
	case OP_TRANSLATE: {
		/* a burst of lockless walks, mostly where vCPUs work: a walk
		 * racing table removal is what RCU is for; in confidential
		 * mode of either root (mirror or direct) */
		struct tdp_translation tr;
		unsigned as = (unsigned)(cli_rand(&th->seed) % t->nr_as);
		uint64_t first = cli_rand(&th->seed) % 4
					 ? th->hot * (REGION / PAGE) +
						   cli_rand(&th->seed) %
							   (REGION / PAGE - 32)
					 : cli_rand(&th->seed) % (t->npages - 32);
		uint64_t kind = t->confidential && (cli_rand(&th->seed) & 1)
					? t->shared_mask
					: 0;

		for (unsigned i = 0; i < 32; i++) {
			int r = tdp_vm_translate(t->vm, as,
						 page_gpa(t, first + i) | kind,
						 &tr);

			if (r && r != -ENOENT)
				fail(t, "access result",
				     "tdp_vm_translate: %d", r);
		}
		return;
	}
	case OP_PROBE:
		vcpu_probe(t, th, p);
		return;
	default:
		break;
	}
	/* reads and writes: another vCPU's owned page becomes ours to read
	 * only through the common page of its chunk */
	if (!page_common(p) && page_owner(t, p) != th->id)
		p -= p % CHUNK_PAGES; /* its chunk's common page */
	recheck_recent_writes(t, th);
	if (!access_begin(t, p))
		return;
	th->acc_h = atomic_load(&t->h_done);
	th->acc_a = atomic_load(&t->a_done);
	if (op == OP_READ)
		vcpu_read(t, th, p);
	else if (op == OP_WRONG)
		vcpu_wrong_kind(t, th, p);
	else
		vcpu_write(t, th, p);
	access_end(t, p);
}

/* ------------------------------------------------------------------ */
/* Host operations                                                     */
/* ------------------------------------------------------------------ */

/* Half the time, in some vCPU's working set: races need company. */
static uint64_t pick_page(struct torture *t, struct thread *th)
{
	if (cli_rand(&th->seed) & 1) {
		unsigned v = (unsigned)(cli_rand(&th->seed) % t->nvcpu);
		unsigned w = cli_rand(&th->seed) & 1
				     ? 0
				     : (unsigned)(cli_rand(&th->seed) % WARM);

		return atomic_load(&t->hot[v][w]) * (REGION / PAGE) +
		       cli_rand(&th->seed) % (REGION / PAGE);
	}
	return cli_rand(&th->seed) % t->npages;
}

/* A page-aligned range inside one region: 4K, 64K or the region. */
static void random_range(struct torture *t, struct thread *th,
			 uint64_t *first, uint64_t *n)
{
	uint64_t r = page_region(pick_page(t, th));
	uint64_t base = r * REGION / PAGE;

	switch (cli_rand(&th->seed) % 3) {
	case 0:
		*first = base + cli_rand(&th->seed) % (REGION / PAGE);
		*n = 1;
		break;
	case 1:
		*first = base + (cli_rand(&th->seed) % 32) * 16;
		*n = 16;
		break;
	default:
		*first = base;
		*n = REGION / PAGE;
		break;
	}
}

static void host_check(struct torture *t, const char *what, int r)
{
	if (r)
		fail(t, "host operation", "%s failed: %d (%s)", what, r,
		     strerror(-r));
}

static void host_unmap(struct torture *t, struct thread *th)
{
	uint64_t r = cli_rand(&th->seed) % t->nregions;
	uint64_t first = r * REGION / PAGE;
	struct slot *s = &t->slots[page_slot(t, first)];
	uint64_t hva = page_hva(t, first), at = hva;

	pthread_rwlock_wrlock(&t->regions[r].lock);
	for (uint64_t p = first; p < first + REGION / PAGE; p++) {
		atomic_store(&t->swap_start[p], now_ms(t));
		atomic_fetch_add(&t->evict[p], 1);
	}
	host_check(t, "munmap", tdp_host_munmap(t->h, hva, REGION));
	/* I13: the guest cannot reach memory the host no longer maps (in
	 * confidential mode: through a page that is shared now; a private
	 * one keeps its guest-private memory) */
	if (pthread_rwlock_tryrdlock(&s->lock) == 0) {
		uint64_t q = first, end = first + REGION / PAGE;
		bool locked = !t->confidential ||
			      !pthread_rwlock_tryrdlock(&t->regions[r].plock);

		while (locked && q < end && page_backing(t, q) != B_HVA)
			q++;
		if (locked && q < end)
			expect_mmio_exit(t, th, page_gpa(t, q),
					 "after its host memory was unmapped");
		if (locked && t->confidential)
			pthread_rwlock_unlock(&t->regions[r].plock);
		pthread_rwlock_unlock(&s->lock);
	}
	host_check(t, "mmap",
		   tdp_host_mmap(t->h, REGION, TDP_PROT_READ | TDP_PROT_WRITE,
				 s->folio, TDP_MAP_FIXED, &at));
	/* fresh memory: every page reads as zeroes */
	for (uint64_t p = first; p < first + REGION / PAGE; p++) {
		t->gen[B_HVA][p] = 0;
		if (page_common(p))
			for (unsigned w = 0; w < t->nvcpu; w++) {
				struct shared_word *sw =
					shared_word(t, p, B_HVA, w);

				atomic_store(&sw->issued, 0);
				atomic_store(&sw->committed, 0);
			}
		atomic_store(&t->swap_end[p], now_ms(t));
		atomic_fetch_add(&t->evict[p], 1);
		page_log(t, p, OP_UNMAP, th->id, 0);
	}
	pthread_rwlock_unlock(&t->regions[r].lock);
}

static void host_mprotect(struct torture *t, struct thread *th)
{
	uint64_t r = cli_rand(&th->seed) % t->nregions;
	uint64_t first = r * REGION / PAGE, hva = page_hva(t, first);
	struct region *rg = &t->regions[r];

	/* region lock for read: no munmap underneath us */
	pthread_rwlock_rdlock(&rg->lock);
	atomic_fetch_add(&rg->prot_seq, 1); /* 4k+1: RO asked */
	host_check(t, "mprotect RO",
		   tdp_host_mprotect(t->h, hva, REGION, TDP_PROT_READ));
	atomic_fetch_add(&rg->prot_seq, 1); /* 4k+2: RO in force */
	log_range(t, first, REGION / PAGE, OP_MPROTECT, th->id);
	usleep(200);
	atomic_fetch_add(&rg->prot_seq, 1); /* 4k+3: RW asked */
	host_check(t, "mprotect RW",
		   tdp_host_mprotect(t->h, hva, REGION,
				     TDP_PROT_READ | TDP_PROT_WRITE));
	atomic_fetch_add(&rg->prot_seq, 1); /* 4k+4: RW in force */
	pthread_rwlock_unlock(&rg->lock);
}

/*
 * Confidential mode: punch a hole in the guest-private memory of a range
 * (the pages' private contents become zeroes, generation 0), with the
 * range's plock held for write.  Then ask the host for one of the
 * operations it must refuse on guest-private memory: -EPERM, and nothing
 * changes (the content oracle would see it).
 */
static void host_punch(struct torture *t, struct thread *th)
{
	uint64_t first, n, hva, young[REGION / PAGE / 64], buf[8];
	struct region *rg;
	int r = 0;
	const char *what = "";

	random_range(t, th, &first, &n);
	rg = &t->regions[page_region(first)];
	hva = page_private_hva(t, first);
	pthread_rwlock_wrlock(&rg->plock);
	pchange_bump(t, first, n);
	host_check(t, "punch hole", tdp_host_punch_hole(t->h, hva, n * PAGE));
	for (uint64_t p = first; p < first + n; p++) {
		t->gen[B_PRIV][p] = 0;
		if (page_common(p))
			for (unsigned w = 0; w < t->nvcpu; w++) {
				struct shared_word *sw =
					shared_word(t, p, B_PRIV, w);

				atomic_store(&sw->issued, 0);
				atomic_store(&sw->committed, 0);
			}
		page_log(t, p, OP_PUNCH, th->id, 0);
	}
	switch (cli_rand(&th->seed) % 6) {
	case 0:
		what = "migrate";
		r = tdp_host_migrate(t->h, hva, n * PAGE);
		break;
	case 1:
		what = "swap-out";
		r = tdp_host_swap_out(t->h, hva, n * PAGE);
		break;
	case 2:
		what = "split";
		r = tdp_host_split(t->h, hva, n * PAGE);
		break;
	case 3:
		what = "mprotect";
		r = tdp_host_mprotect(t->h, hva, n * PAGE, TDP_PROT_READ);
		break;
	case 4:
		what = "age";
		r = tdp_host_age(t->h, hva, n * PAGE, 0, young);
		break;
	default:
		what = "read";
		r = tdp_host_read(t->h, hva, buf, sizeof(buf));
		break;
	}
	if (r != -EPERM)
		fail(t, "isolation (I13)",
		     "host %s of guest-private memory at hva %#" PRIx64
		     " (page %" PRIu64 ") returned %d, not -EPERM",
		     what, hva, first, r);
	pchange_bump(t, first, n);
	pthread_rwlock_unlock(&rg->plock);
}

static void host_op(struct torture *t, struct thread *th, enum op op)
{
	uint64_t first, n;

	if (op == OP_UNMAP)
		return host_unmap(t, th);
	if (op == OP_PUNCH)
		return host_punch(t, th);
	if (op == OP_MPROTECT)
		return host_mprotect(t, th);
	random_range(t, th, &first, &n);
	/* region lock for read: the range stays mapped */
	pthread_rwlock_rdlock(&t->regions[page_region(first)].lock);
	log_range(t, first, n, op, th->id);
	switch (op) {
	case OP_MIGRATE:
		host_check(t, "migrate", tdp_host_migrate(t->h,
							  page_hva(t, first),
							  n * PAGE));
		break;
	case OP_SWAPOUT:
		for (uint64_t q = first; q < first + n; q++) {
			atomic_store(&t->swap_start[q], now_ms(t));
			atomic_fetch_add(&t->evict[q], 1);
		}
		host_check(t, "swap-out",
			   tdp_host_swap_out(t->h, page_hva(t, first),
					     n * PAGE));
		for (uint64_t q = first; q < first + n; q++) {
			atomic_store(&t->swap_end[q], now_ms(t));
			atomic_fetch_add(&t->evict[q], 1);
		}
		break;
	default:
		host_check(t, "split", tdp_host_split(t->h, page_hva(t, first),
						      n * PAGE));
		break;
	}
	pthread_rwlock_unlock(&t->regions[page_region(first)].lock);
}

/* ------------------------------------------------------------------ */
/* Zapper and memslot churn                                            */
/* ------------------------------------------------------------------ */

/*
 * A host that runs invalidations concurrently (Linux calls
 * invalidate_range_start under the mmap lock held for read, or none;
 * blind spot 3): two nested invalidations that change nothing, called
 * straight into the VM's notifier, the outer over a region, the
 * inner over a different part of the guest, both also nesting with the
 * host thread's own (which this host serialises) and with conversions.
 * I5: while the outer one is in progress, faults in its range retry, so
 * no leaf maps it, whatever began since.
 */
/* I5: no page of [first, first + n) is mapped in any address space. */
static void expect_unmapped(struct torture *t, uint64_t first, uint64_t n)
{
	struct tdp_translation tr;
	char log[512];

	for (uint64_t p = first; p < first + n; p++)
		for (unsigned as = 0; as < t->nr_as; as++) {
			if (tdp_vm_translate(t->vm, as,
					     page_gpa(t, p) | t->shared_mask,
					     &tr))
				continue;
			describe_log(t, p, log, sizeof(log));
			fail(t, "invalidation (I5)",
			     "as %u gpa %#" PRIx64 " (page %" PRIu64 ") is "
			     "mapped (leaf %" PRIu64 " KiB) while an "
			     "invalidation of it is in progress (another "
			     "began inside it); %s",
			     as, page_gpa(t, p), p, tr.size >> 10, log);
			return;
		}
}

static void notify_op(struct torture *t, struct thread *th)
{
	uint64_t r = cli_rand(&th->seed) % t->nregions;
	/* a whole region: a host invalidates all of a huge mapping before
	 * it changes part of it (Linux splits the PMD first), so faults
	 * elsewhere in it may map it whole only when no part is changing */
	uint64_t len = REGION, first = r * REGION / PAGE;
	uint64_t other = (first + t->npages / 2) % t->npages;
	uint64_t hva = page_hva(t, first), hva2 = page_hva(t, other);
	struct tdp_host_notifier *hn = &t->vm->hn;
	struct slot *s = &t->slots[page_slot(t, first)];
	struct region *rg = &t->regions[r];

	/* no munmap, no memslot churn underneath */
	pthread_rwlock_rdlock(&s->lock);
	pthread_rwlock_rdlock(&rg->lock);
	vm_notifier_ops.invalidate_start(hn, hva, hva + len);
	vm_notifier_ops.invalidate_start(hn, hva2, hva2 + PAGE);
	usleep(100); /* faults come and retry */
	expect_unmapped(t, first, len / PAGE);
	vm_notifier_ops.invalidate_end(hn, hva2, hva2 + PAGE);
	vm_notifier_ops.invalidate_end(hn, hva, hva + len);
	pthread_rwlock_unlock(&rg->lock);
	pthread_rwlock_unlock(&s->lock);
}

static void zapper_op(struct torture *t, struct thread *th, enum op op)
{
	if (op == OP_NOTIFY)
		return notify_op(t, th);
	if (op == OP_RESET || op == OP_FASTZAP) {
		/* until the old roots are zapped, their Dirty bits are the
		 * only record of some writes: the dirty check steps aside.
		 * Both leave mirror roots alone (I11). */
		atomic_fetch_add(&t->resets_active, 1);
		if (op == OP_RESET)
			host_check(t, "invalidate roots",
				   tdp_vm_invalidate_roots(t->vm));
		else
			host_check(t, "fast zap", tdp_vm_zap_all_fast(t->vm));
		atomic_fetch_add(&t->resets_done, 1);
		atomic_fetch_sub(&t->resets_active, 1);
		return;
	}
	uint64_t len = PAGE << (cli_rand(&th->seed) % 11); /* 4K .. 4M */
	uint64_t gpa = cli_rand(&th->seed) % 2 ? page_gpa(t, pick_page(t, th))
					       : cli_rand(&th->seed) %
							 (2 * NSLOTS *
							  t->slot_size);

	if (cli_rand(&th->seed) % 64 == 0) { /* now and then, everything */
		gpa = 0;
		len = 2 * NSLOTS * t->slot_size;
	}
	gpa &= ~(len - 1);
	unsigned as = (unsigned)(cli_rand(&th->seed) % t->nr_as);

	struct promise_mark m;

	promise_begin(t, &m);
	host_check(t, "zap", tdp_vm_zap_gfn_range(t->vm, as, gpa, len));
	promise_end(t, &m, as, gpa, len, TLB_ANY, "a gfn-range zap");
	for (uint64_t q = 0; q < t->npages; q++) {
		uint64_t g = page_gpa(t, q);
		if (g >= gpa && g < gpa + len)
			page_log(t, q, OP_ZAP, th->id, as);
	}
}

static int set_slot(struct torture *t, unsigned i, unsigned as, uint64_t size,
		    unsigned flags)
{
	struct slot *s = &t->slots[i];
	struct tdp_memslot ms = { .as_id = as, .slot = i,
				  .gpa = s->gpa[atomic_load(&s->where)],
				  .size = size, .hva = s->hva,
				  .flags = flags | (size && t->log_mode != LOG_OFF &&
							    !s->log_off
						    ? TDP_MEM_LOG_DIRTY
						    : 0) };

	/* confidential: always the same guest-private memory, so private
	 * contents survive delete + re-add and moves */
	if (t->confidential && size) {
		ms.flags |= TDP_MEM_PRIVATE;
		ms.private_hva = s->phva;
	}
	return tdp_vm_set_memslot(t->vm, &ms);
}

/* The same memslot change in every address space. */
static void set_slot_all(struct torture *t, unsigned i, uint64_t size,
			 unsigned flags, const char *what)
{
	for (unsigned as = 0; as < t->nr_as; as++)
		host_check(t, what, set_slot(t, i, as, size, flags));
}

/* I13: @gpa must no longer reach memory: an access is an MMIO exit (in
 * confidential mode, a shared access). */
static void expect_mmio_exit(struct torture *t, struct thread *th,
			     uint64_t gpa, const char *why)
{
	uint64_t b;
	int r;

	gpa |= t->shared_mask;
	r = tdp_vcpu_read(th->vcpu, gpa, &b, 8);
	if (r == -EIO)
		vm_dead(t, "checker vCPU", "read", gpa);
	else if (r != -EFAULT)
		fail(t, "isolation (I13)",
		     "read of gpa %#" PRIx64 " %s returned %d, not -EFAULT",
		     gpa, why, r);
}

/* Confidential mode, I13: no memslot at @gpa: a private access has no
 * private memory to reach and exits with -EPERM. */
static void expect_no_private(struct torture *t, struct thread *th,
			      uint64_t gpa, const char *why)
{
	uint64_t b;
	int r;

	if (!t->confidential)
		return;
	r = tdp_vcpu_read(th->vcpu, gpa, &b, 8);
	if (r == -EIO)
		vm_dead(t, "checker vCPU", "private read", gpa);
	else if (r != -EPERM)
		fail(t, "isolation (I13)",
		     "private read of gpa %#" PRIx64 " %s returned %d, not "
		     "-EPERM",
		     gpa, why, r);
}

/* With the slot locked for write: check one page reads as expected. */
static void slot_check_page(struct torture *t, struct thread *th, uint64_t p)
{
	struct region *rg = &t->regions[page_region(p)];
	uint64_t buf[PAGE / 8];
	uint32_t before[MAX_VCPUS];
	enum backing b;
	int r;

	if (pthread_rwlock_tryrdlock(&rg->lock))
		return;
	/* no hole punch under us */
	if (t->confidential && pthread_rwlock_tryrdlock(&rg->plock)) {
		pthread_rwlock_unlock(&rg->lock);
		return;
	}
	b = page_backing(t, p);
	r = tdp_vcpu_read(th->vcpu, access_gpa(t, p), buf, PAGE);
	if (r)
		access_failed(t, "memslot checker",
			      "read after a memslot change", access_gpa(t, p),
			      p, r);
	else if (page_common(p)) {
		common_snap(t, p, b, false, before);
		check_common(t, "memslot checker", p, b, buf, before, before);
	} else {
		check_owned(t, "memslot checker", p, b, buf, 0, PAGE / 8);
	}
	if (t->confidential)
		pthread_rwlock_unlock(&rg->plock);
	pthread_rwlock_unlock(&rg->lock);
}

static void slots_op(struct torture *t, struct thread *th, enum op op)
{
	unsigned i = (unsigned)(cli_rand(&th->seed) % NSLOTS);
	struct slot *s = &t->slots[i];
	uint64_t first = i * t->slot_size / PAGE;
	uint64_t p = first + cli_rand(&th->seed) % (t->slot_size / PAGE);
	uint64_t old_gpa, b = 0;
	struct promise_mark m;
	int r;

	uint64_t r0 = first * PAGE / REGION, nr = t->slot_size / REGION;

	tdp_vcpu_set_as(th->vcpu, 0);
	/* delete and move fast-zap every root: until the old roots are
	 * zapped, their Dirty and Accessed bits are the only record of some
	 * accesses, as with a root reset (the dirty and aging checks step
	 * aside) */
	atomic_fetch_add(&t->resets_active, 1);
	pthread_rwlock_wrlock(&s->lock);
	/* Logging off runs with the slot's vCPUs faulting (blind spot 2):
	 * huge-page recovery removes tables under the read lock while
	 * faults, fast faults and the walkers' A/D updates reach into them.
	 * log_off is set first, under the write lock, so no write racing
	 * the change is owed to the dirty log. */
	bool live = op == OP_SLOT_LOG && t->log_mode != LOG_OFF && !s->log_off;
	if (live) {
		s->log_off = true;
		for (uint64_t q = first; q < first + t->slot_size / PAGE; q++)
			atomic_store(&t->wpair[q], 0);
		pthread_rwlock_unlock(&s->lock);
		pthread_rwlock_rdlock(&s->lock);
	}
	/* a memslot needs all of its host memory mapped (-EFAULT otherwise):
	 * hold the slot's regions against munmap */
	for (uint64_t k = 0; k < nr; k++)
		pthread_rwlock_rdlock(&t->regions[r0 + k].lock);
	log_range(t, p, 1, op, th->id);
	switch (op) {
	case OP_SLOT_DELETE:
		set_slot_all(t, i, 0, 0, "memslot delete");
		expect_mmio_exit(t, th, page_gpa(t, p), "in a deleted memslot");
		expect_no_private(t, th, page_gpa(t, p),
				  "in a deleted memslot");
		set_slot_all(t, i, t->slot_size, 0, "memslot re-add");
		/* a new slot has a new dirty log: older writes are gone; and
		 * new memory attributes: every page is private again */
		for (uint64_t q = first; q < first + t->slot_size / PAGE; q++) {
			atomic_store(&t->wpair[q], 0);
			if (t->confidential)
				atomic_store_explicit(&t->attr_shared[q], 0,
						      memory_order_relaxed);
		}
		break;
	case OP_SLOT_LOG:
		/* logging off (huge pages recovered in place; faults may map
		 * huge pages while it stays off) or on again (eager split or,
		 * lazily, write-protected huge leaves) */
		if (t->log_mode == LOG_OFF)
			break;
		if (live) {
			/* its writes stopped being owed with log_off, above */
			set_slot_all(t, i, t->slot_size, 0,
				     "memslot logging off");
			break;
		}
		s->log_off = false;
		promise_begin(t, &m);
		set_slot_all(t, i, t->slot_size, 0, "memslot logging on");
		/* every leaf write-protected, or its Dirty bit cleared */
		promise_end(t, &m, ~0u, s->gpa[atomic_load(&s->where)],
			    t->slot_size,
			    t->log_mode == LOG_DBIT ? TLB_DIRTY_WRITE
						    : TLB_WRITABLE,
			    "turning dirty logging on");
		/* writes before logging (re)started are not owed */
		for (uint64_t q = first; q < first + t->slot_size / PAGE; q++)
			atomic_store(&t->wpair[q], 0);
		break;
	case OP_SLOT_MOVE:
		old_gpa = page_gpa(t, p);
		atomic_store(&s->where, !atomic_load(&s->where));
		set_slot_all(t, i, t->slot_size, 0, "memslot move");
		expect_mmio_exit(t, th, old_gpa, "after its memslot moved away");
		expect_no_private(t, th, old_gpa,
				  "after its memslot moved away");
		break;
	default: /* read-only toggle */
		promise_begin(t, &m);
		set_slot_all(t, i, t->slot_size, TDP_MEM_READONLY,
			     "memslot read-only");
		promise_end(t, &m, ~0u, s->gpa[atomic_load(&s->where)],
			    t->slot_size, TLB_WRITABLE,
			    "making a memslot read-only");
		b = 0x1234;
		if (!page_common(p) &&
		    pthread_rwlock_tryrdlock(&t->regions[page_region(p)].lock) ==
			    0) {
			r = tdp_vcpu_write(th->vcpu, page_gpa(t, p), &b, 8);
			if (r != -EACCES)
				fail(t, "isolation (I13)",
				     "write to gpa %#" PRIx64 " in a read-only "
				     "memslot returned %d",
				     page_gpa(t, p), r);
			pthread_rwlock_unlock(
				&t->regions[page_region(p)].lock);
		}
		set_slot_all(t, i, t->slot_size, 0, "memslot read-write");
		break;
	}
	slot_check_page(t, th, p);
	for (uint64_t k = 0; k < nr; k++)
		pthread_rwlock_unlock(&t->regions[r0 + k].lock);
	pthread_rwlock_unlock(&s->lock);
	atomic_fetch_add(&t->resets_done, 1);
	atomic_fetch_sub(&t->resets_active, 1);
}

/* ------------------------------------------------------------------ */
/* Threads                                                             */
/* ------------------------------------------------------------------ */

/* ------------------------------------------------------------------ */
/* Tracker: dirty-log harvests, aging, conversions                     */
/* ------------------------------------------------------------------ */

/*
 * I7: harvest every slot of every address space (one round, number j);
 * then every write that began after round s ended and ended before round
 * c + 1 began (wpair) must have been reported by a round after s.  wpair
 * holds the page's oldest write not yet seen reported, so later writes
 * cannot hide a lost one.
 */
static void harvest_op(struct torture *t, struct thread *th)
{
	uint64_t slot_pages = t->slot_size / PAGE, words = (slot_pages + 63) / 64;
	uint32_t j;

	if (t->log_mode == LOG_OFF)
		return;
	j = atomic_fetch_add(&t->h_started, 1) + 1;
	for (unsigned i = 0; i < NSLOTS; i++) {
		uint64_t first = i * slot_pages;

		pthread_rwlock_rdlock(&t->slots[i].lock);
		for (unsigned as = 0; !t->slots[i].log_off && as < t->nr_as;
		     as++) {
			int r = tdp_vm_get_dirty_log(t->vm, as, i, t->hbm);

			if (r) {
				fail(t, "dirty log (I7)",
				     "tdp_vm_get_dirty_log(as %u, slot %u): %d",
				     as, i, r);
				break;
			}
			for (uint64_t w = 0; w < words; w++)
				for (uint64_t b = t->hbm[w]; b; b &= b - 1) {
					uint64_t q = first + w * 64 +
						     (uint64_t)__builtin_ctzll(b);

					t->reported[q] = j;
					t->harvested_pages++;
				}
		}
		pthread_rwlock_unlock(&t->slots[i].lock);
	}
	atomic_store(&t->h_done, j);
	t->harvests++;
	for (uint64_t p = 0; p < t->npages && !atomic_load(&t->failed); p++) {
		uint64_t pair = atomic_load(&t->wpair[p]);
		uint32_t s = (uint32_t)(pair >> 32), c = (uint32_t)pair;

		if (!pair || c + 1 > j)
			continue;
		if (t->reported[p] > s) {
			/* reported: the next write starts a new check */
			atomic_compare_exchange_strong(&t->wpair[p], &pair, 0);
		} else {
			struct tdp_translation tr = { 0 };
			char log[512];
			int tr_r = tdp_vm_translate(t->vm, 0, page_gpa(t, p),
						    &tr);

			describe_log(t, p, log, sizeof(log));
			fail(t, "dirty log (I7)",
			     "page %" PRIu64 " (gpa %#" PRIx64 ") was written "
			     "after harvest %u and before harvest %u began, "
			     "but no harvest since reported it (last report: "
			     "harvest %u; now in as0: %d, D %d, W %d); recent "
			     "operations on the page: %s",
			     p, page_gpa(t, p), s, c + 1, t->reported[p],
			     tr_r, tr.dirty, !!(tr.prot & TDP_PROT_WRITE),
			     log);
		}
	}
	(void)th;
}

/*
 * I8: age one region, clearing with a TLB flush (clear_flush_young) or
 * without one, or only testing.  After a flushing aging of a page returned,
 * every access of it that ended before the next flushing aging began must
 * make that aging report it young, unless the page was evicted meanwhile
 * (swap-out or munmap takes its young state with it) or roots were reset
 * (lockless aging skips invalid roots, as KVM's does).  A zap that runs
 * with the lockless walk may hand the Accessed bit to the host just after
 * the host read it: the next flushing aging must then see it, so a page
 * fails only when two in a row miss an access.  Non-flushing agings only
 * have to keep every Dirty bit (the Dirty-bit ledger in the audit checks).
 */
static void age_op(struct torture *t, struct thread *th)
{
	uint64_t first = page_region(pick_page(t, th)) * (REGION / PAGE);
	uint64_t young[REGION / PAGE / 64];
	unsigned kind = (unsigned)(cli_rand(&th->seed) % 4);
	unsigned flags = kind == 0 ? TDP_AGE_TEST_ONLY
			 : kind == 1 ? 0
				     : TDP_AGE_FLUSH;
	unsigned resets = atomic_load(&t->resets_done);
	uint32_t k;
	int r;

	/* the region stays mapped (no munmap) while it is aged */
	pthread_rwlock_rdlock(&t->regions[page_region(first)].lock);
	k = flags == TDP_AGE_FLUSH ? atomic_fetch_add(&t->a_started, 1) + 1
				   : 0;
	r = tdp_host_age(t->h, page_hva(t, first), REGION, flags, young);
	if (r < 0)
		fail(t, "aging (I8)", "tdp_host_age: %d", r);
	t->agings++;
	t->young_pages += r > 0 ? (uint64_t)r : 0;
	if (k && r >= 0) {
		bool reliable = !atomic_load(&t->resets_active) &&
				atomic_load(&t->resets_done) == resets;

		for (uint64_t i = 0; i < REGION / PAGE; i++) {
			uint64_t p = first + i;
			uint64_t pair = atomic_load(&t->apair[p]);
			uint32_t s = (uint32_t)(pair >> 32), c = (uint32_t)pair;
			unsigned ev = atomic_load(&t->evict[p]);
			bool ok_page = reliable && !(ev & 1) &&
				       ev == t->evict_snap[p] &&
				       t->last_aged[p];

			bool is_young = young[i / 64] & (1ull << (i % 64));
			bool due = ok_page && pair && pair != t->checked_a[p] &&
				   s >= t->last_aged[p] && c < k;
			/* A zap running with the lockless walk may still be
			 * handing the Accessed bit to the host when the host
			 * reads it: then the next aging must see it. */
			bool late = ok_page && t->owed_a[p];

			t->owed_a[p] = due && !is_young && !late;
			if (late && !is_young) {
				struct tdp_translation tr[2] = { 0 };
				int tres[2] = { -1, -1 };
				char log[512];

				for (unsigned as = 0; as < t->nr_as; as++)
					tres[as] = tdp_vm_translate(
						t->vm, as,
						page_gpa(t, p) | t->shared_mask,
						&tr[as]);
				describe_log(t, p, log, sizeof(log));
				fail(t, "aging (I8)",
				     "page %" PRIu64 " (gpa %#" PRIx64 ") was "
				     "accessed after a flushing aging of it "
				     "returned; the next two (up to aging %u, "
				     "last %u) reported it old (access %u..%u; now as0 %d A%d size "
				     "%" PRIu64 ", as1 %d A%d size %" PRIu64
				     ", host test-young %d, evict %u); recent "
				     "operations on the page: %s",
				     p, page_gpa(t, p), k, t->last_aged[p], s,
				     c, tres[0], tr[0].accessed, tr[0].size,
				     tres[1], tr[1].accessed, tr[1].size,
				     tdp_host_age(t->h, page_hva(t, p), PAGE,
						  TDP_AGE_TEST_ONLY, NULL),
				     ev, log);
				break;
			}
			if (pair)
				t->checked_a[p] = pair;
			t->last_aged[p] = k;
			if (!ok_page)
				t->owed_a[p] = 0;
			t->evict_snap[p] = ev;
		}
		atomic_store(&t->a_done, k);
	} else if (flags == 0 && r >= 0) {
		/* cleared without a flush: TLB hits may go unseen until the
		 * next flushing aging, so nothing is owed before it */
		for (uint64_t i = 0; i < REGION / PAGE; i++) {
			t->last_aged[first + i] = 0;
			t->owed_a[first + i] = 0;
		}
	}
	pthread_rwlock_unlock(&t->regions[page_region(first)].lock);
}

/*
 * Confidential mode: convert a range inside one region (a page, a chunk or
 * the whole region; half the time where vCPUs work) to the attribute the
 * first page of it does not have, with the region's plock held for write
 * (and the slot's lock for read: a memslot re-add makes every page private
 * again).  It races with accesses elsewhere, fast zaps, root resets, zaps,
 * memslot churn of the other slots, and host operations on the same
 * region's hva (migrate, swap-out, split, mprotect, munmap).
 */
static void convert_op(struct torture *t, struct thread *th)
{
	uint64_t first, n;
	struct slot *s;
	struct region *rg;
	bool to_private;
	int r;

	random_range(t, th, &first, &n);
	s = &t->slots[page_slot(t, first)];
	rg = &t->regions[page_region(first)];
	pthread_rwlock_rdlock(&s->lock);
	pthread_rwlock_wrlock(&rg->plock);
	pchange_bump(t, first, n);
	to_private = page_backing(t, first) == B_HVA;
	r = tdp_vm_set_memory_attributes(t->vm, page_gpa(t, first), n * PAGE,
					 to_private ? TDP_MEMATTR_PRIVATE : 0);
	if (r)
		fail(t, "memory attributes (I13)",
		     "converting gpa %#" PRIx64 "+%#" PRIx64 " (pages %" PRIu64
		     "..%" PRIu64 ") to %s failed: %d (%s)",
		     page_gpa(t, first), (uint64_t)(n * PAGE), first,
		     first + n - 1,
		     to_private ? "private" : "shared", r, strerror(-r));
	else
		for (uint64_t q = first; q < first + n; q++) {
			atomic_store_explicit(&t->attr_shared[q], !to_private,
					      memory_order_relaxed);
			page_log(t, q, OP_CONVERT, th->id, to_private);
		}
	pchange_bump(t, first, n);
	pthread_rwlock_unlock(&rg->plock);
	pthread_rwlock_unlock(&s->lock);
}

static void track_op(struct torture *t, struct thread *th, enum op op)
{
	if (op == OP_HARVEST)
		harvest_op(t, th);
	else if (op == OP_CONVERT)
		convert_op(t, th);
	else
		age_op(t, th);
}

static enum op pick_op(struct torture *t, struct thread *th)
{
	unsigned total = 0, x;
	enum op first = kind_first[th->kind], end = kind_end[th->kind];

	for (enum op o = first; o < end; o++)
		total += t->weights[o];
	if (!total)
		return OP_COUNT;
	x = (unsigned)(cli_rand(&th->seed) % total);
	for (enum op o = first; o < end; o++) {
		if (x < t->weights[o])
			return o;
		x -= t->weights[o];
	}
	return OP_COUNT;
}

static bool unpaused(void *arg)
{
	struct torture *t = arg;

	return !atomic_load(&t->pause) || atomic_load(&t->stop);
}

static void park(struct torture *t, struct thread *th)
{
	atomic_fetch_add(&t->parked, 1);
#if TDP_SCHED_AVAILABLE
	/* under the scheduler, wait in it: the checkpoint runs alone */
	tdp_sched_wait_until(unpaused, t, SK_WAIT);
#endif
	while (!unpaused(t))
		usleep(200);
	atomic_fetch_sub(&t->parked, 1);
	(void)th;
}

static void *thread_main(void *arg)
{
	struct thread *th = arg;
	struct torture *t = th->t;

	while (!atomic_load(&t->stop)) {
		enum op op;

		if (atomic_load(&t->pause)) {
			park(t, th);
			continue;
		}
		op = pick_op(t, th);
#if TDP_SCHED_AVAILABLE
		if (op != OP_COUNT)
			tdp_sched_note(op_names[op], th->id);
#endif
		if (op == OP_COUNT) { /* nothing enabled for this thread */
			usleep(1000);
			atomic_fetch_add(&th->progress, 1);
			continue;
		}
		if (th->kind != T_VCPU) {
			atomic_fetch_add(&t->ops_active, 1);
			atomic_fetch_add(&t->ops_gen, 1);
		}
		switch (th->kind) {
		case T_VCPU:
			vcpu_op(t, th, op);
			break;
		case T_HOST:
			host_op(t, th, op);
			break;
		case T_ZAPPER:
			zapper_op(t, th, op);
			break;
		case T_SLOTS:
			slots_op(t, th, op);
			break;
		default:
			track_op(t, th, op);
			break;
		}
		if (th->kind != T_VCPU) {
			atomic_fetch_add(&t->ops_gen, 1);
			atomic_fetch_sub(&t->ops_active, 1);
			usleep(th->kind == T_SLOTS	    ? 500
			       : th->kind == T_TRACK ? 200
						     : 100);
		}
		th->ops[op]++;
		atomic_fetch_add(&th->progress, 1);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Checkpoints, watchdog                                               */
/* ------------------------------------------------------------------ */

/* Every page's hva, through the host, against the model; in confidential
 * mode also the guest-private memory of every private page, by guest
 * reads from the main thread's vCPU (the host may not read it).  Threads
 * are parked. */
static void verify_all(struct torture *t)
{
	uint64_t buf[PAGE / 8];
	uint32_t c[MAX_VCPUS];

	for (uint64_t p = 0; p < t->npages && !atomic_load(&t->failed); p++) {
		int r = tdp_host_read(t->h, page_hva(t, p), buf, PAGE);

		if (r) {
			fail(t, "host operation", "host read of page %" PRIu64
			     " failed: %d", p, r);
			return;
		}
		if (page_common(p)) {
			common_snap(t, p, B_HVA, false, c);
			check_common(t, "checkpoint host read", p, B_HVA, buf,
				     c, c);
		} else {
			check_owned(t, "checkpoint host read", p, B_HVA, buf,
				    0, PAGE / 8);
		}
		t->verified_pages++;
	}
	for (uint64_t p = 0; t->confidential && p < t->npages &&
			     !atomic_load(&t->failed);
	     p++) {
		uint64_t gpa = page_gpa(t, p);
		int r;

		if (page_backing(t, p) != B_PRIV)
			continue;
		r = tdp_vcpu_read(t->ckpt_vcpu, gpa, buf, PAGE);
		if (r) {
			access_failed(t, "checkpoint vCPU", "read", gpa, p, r);
			return;
		}
		if (page_common(p)) {
			common_snap(t, p, B_PRIV, false, c);
			check_common(t, "checkpoint guest read", p, B_PRIV,
				     buf, c, c);
		} else {
			check_owned(t, "checkpoint guest read", p, B_PRIV,
				    buf, 0, PAGE / 8);
		}
		t->private_verified++;
	}
}

/*
 * No guest write goes unrecorded (I4): a page written after it was last
 * swapped out or replaced must still show the write somewhere: a Dirty bit
 * in a leaf that maps it, or the host's dirty state (the MMU reports D when
 * it zaps a leaf; the host keeps it until the next swap-out).  Otherwise
 * reclaim would throw the write away.  Threads are parked.
 */
/* Is the write of page @p at @w recorded dirty somewhere? */
static bool dirty_seen(struct torture *t, uint64_t p, uint32_t w)
{
	struct tdp_translation tr;
	int d;

	/* Only a write that began after the newest swap-out (or
	 * replacement) of the page had ended must still be recorded: one
	 * that overlapped it may have landed before its copy, legitimately
	 * clean afterwards. */
	if (!w || atomic_load(&t->swap_start[p]) >= w ||
	    atomic_load(&t->swap_end[p]) >= w ||
	    atomic_load(&t->last_write[p]) != w)
		return true;
	for (unsigned as = 0; as < t->nr_as; as++)
		if (tdp_vm_translate(t->vm, as, page_gpa(t, p) | t->shared_mask,
				     &tr) == 0 &&
		    tr.dirty)
			return true;
	d = host_page_dirty(t->h, page_hva(t, p));
	/* -ENOENT: swapped out (the content check covers it); -EFAULT:
	 * being unmapped and replaced right now */
	return d != 0 || atomic_load(&t->swap_start[p]) >= w;
}

/* @quiescent: threads are parked (checkpoint).  Otherwise zaps may be in
 * flight: a leaf exchanged away is reported to the host a moment later,
 * and a root reset keeps Dirty bits in invalid roots until it zaps them;
 * so a suspected loss is looked at again, and skipped across a reset. */
static void dirty_recorded(struct torture *t, uint64_t p, uint32_t w,
			   bool quiescent)
{
	unsigned done = atomic_load(&t->resets_done);
	bool active = atomic_load(&t->resets_active);
	char log[1024];

	if (dirty_seen(t, p, w))
		return;
	if (!quiescent) {
		if (active)
			return;
		usleep(1000);
		if (atomic_load(&t->resets_active) ||
		    atomic_load(&t->resets_done) != done || dirty_seen(t, p, w))
			return;
	}
	describe_log(t, p, log, sizeof(log));
	{
		struct tdp_translation tr[2] = { 0 };
		int tres[2] = { -1, -1 };
		uint64_t pfn = 0;
		unsigned order = 0, prot = 0;

		for (unsigned as = 0; as < t->nr_as; as++)
			tres[as] = tdp_vm_translate(t->vm, as,
						    page_gpa(t, p) |
							    t->shared_mask,
						    &tr[as]);
		host_lookup(t->h, page_hva(t, p), &pfn, &order, &prot);

		fail(t, "dirty tracking (I4)",
		     "page %" PRIu64 " (gpa %#" PRIx64 ") was written at %.3f s "
		     "but neither a leaf nor the host records it dirty: the "
		     "next swap-out would drop the write (as0: %d pfn %#" PRIx64
		     " d%d, as1: %d pfn %#" PRIx64 " d%d, host pfn %#" PRIx64
		     " dirty %d); %s",
		     p, page_gpa(t, p), w / 1000.0, tres[0], tr[0].pfn,
		     tr[0].dirty, tres[1], tr[1].pfn, tr[1].dirty, pfn,
		     host_page_dirty(t->h, page_hva(t, p)), log);
	}
}

static void check_dirty_recorded(struct torture *t)
{
	for (uint64_t p = 0; p < t->npages && !atomic_load(&t->failed); p++)
		dirty_recorded(t, p, atomic_load(&t->last_write[p]), true);
}

/* A vCPU re-checks the pages it wrote, ~2 ms later: a lost Dirty bit is
 * short-lived (the next write fault dirties the page again), so look soon. */
static void recheck_recent_writes(struct torture *t, struct thread *th)
{
	uint64_t now = cli_now_ns();

	while (th->recent_n) {
		unsigned i = (th->recent_head + 8 - th->recent_n) % 8;

		if (now - th->recent[i].at_ns < 2000000)
			break;
		/* only the page's newest write counts */
		dirty_recorded(t, th->recent[i].page, th->recent[i].ms, false);
		th->recent_n--;
	}
}

static void remember_write(struct torture *t, struct thread *th, uint64_t p,
			   uint32_t ms)
{
	unsigned i = th->recent_head;

	th->recent[i].page = p;
	th->recent[i].at_ns = cli_now_ns();
	th->recent[i].ms = ms;
	th->recent_head = (i + 1) % 8;
	if (th->recent_n < 8)
		th->recent_n++;
	(void)t;
}

static void audit(struct torture *t, const char *when)
{
	char report[2048];
	int n = tdp_vm_audit(t->vm, report, sizeof(report));

	if (n > 0)
		fail(t, "audit", "%s: %d problem(s): %s", when, n, report);
	else if (n < 0)
		fail(t, "audit", "%s: audit failed: %d", when, n);
	if (t->confidential && !atomic_load(&t->failed)) {
		struct tdp_stats st;

		/* I11: the external table never refused anything, and the
		 * one mirror root is never duplicated (nor leaked) */
		tdp_vm_get_stats(t->vm, &st);
		if (st.ext_errors)
			fail(t, "external table (I11)",
			     "%s: external table refused an operation (I11): "
			     "%" PRIu64 " refused of %" PRIu64 " operations",
			     when, st.ext_errors, st.ext_ops);
		else if (st.mirror_roots > 1)
			fail(t, "external table (I11)",
			     "%s: %" PRIu64 " mirror roots allocated, at most "
			     "one may exist",
			     when, st.mirror_roots);
	}
}

/* Park every thread, audit, check all content, resume.  false if the
 * threads did not park within the watchdog time. */
static bool checkpoint(struct torture *t)
{
	uint64_t deadline = cli_now_ns() + WATCHDOG_S * 1000000000ull;

	atomic_store(&t->pause, true);
	while (atomic_load(&t->parked) < t->nthreads) {
		if (atomic_load(&t->stop))
			break;
		if (cli_now_ns() > deadline) {
			fail(t, "watchdog",
			     "threads did not reach the checkpoint within "
			     "%d s (%u of %u parked): a thread is stuck",
			     WATCHDOG_S, atomic_load(&t->parked), t->nthreads);
			return false;
		}
		usleep(500);
	}
	if (!atomic_load(&t->stop)) {
		audit(t, "checkpoint");
		verify_all(t);
		check_dirty_recorded(t);
		t->checkpoints++;
	}
	atomic_store(&t->pause, false);
	return true;
}

static const char *kind_name(enum thread_kind k)
{
	static const char *const n[T_KINDS] = { "vCPU", "host", "zapper",
						"memslot", "tracker" };

	return n[k];
}

/* Under --sched: has the run made its --steps? */
static bool sched_done(struct torture *t)
{
#if TDP_SCHED_AVAILABLE
	return t->sched.strategy && tdp_sched_steps() >= t->sched.steps;
#else
	(void)t;
	return false;
#endif
}

/* Runs the clock; returns when time is up or something failed. */
static void supervise(struct torture *t)
{
	uint64_t *seen = calloc(t->nthreads, sizeof(*seen));
	uint64_t *since = calloc(t->nthreads, sizeof(*since));
	uint64_t end = t->t0 + t->duration_s * 1000000000ull;
	uint64_t cp_ns = 1000000000ull, tick_us = 100 * 1000;
	uint64_t next_cp = cli_now_ns() + 2 * cp_ns;
	uint64_t next_line = 0;

	if (t->sched.strategy) {
		/* time is virtual (TDP_SCHED_STEP_NS a step): run for
		 * --steps, checkpoint every sched_checkpoint_steps */
		cp_ns = t->sched_checkpoint_steps * TDP_SCHED_STEP_NS;
		tick_us = cp_ns / 20000;
		next_cp = cli_now_ns() + cp_ns;
		end = UINT64_MAX;
	}
	for (unsigned i = 0; i < t->nthreads; i++)
		since[i] = cli_now_ns();
	while (!atomic_load(&t->stop) && cli_now_ns() < end &&
	       !sched_done(t)) {
		uint64_t now = cli_now_ns();

		usleep((useconds_t)tick_us);
		for (unsigned i = 0; i < t->nthreads; i++) {
			uint64_t pr = atomic_load(&t->threads[i].progress);

			if (pr != seen[i]) {
				seen[i] = pr;
				since[i] = now;
			} else if (now - since[i] >
				   WATCHDOG_S * 1000000000ull) {
				fail(t, "watchdog",
				     "%s thread %u made no progress for %d s",
				     kind_name(t->threads[i].kind),
				     t->threads[i].id, WATCHDOG_S);
			}
		}
		if (now >= next_cp && now + cp_ns < end) {
			if (!checkpoint(t))
				break;
			now = cli_now_ns();
			for (unsigned i = 0; i < t->nthreads; i++)
				since[i] = now;
			next_cp = now + cp_ns;
		}
		if (t->progress_tty && now >= next_line) {
			struct tdp_stats st;

			tdp_vm_get_stats(t->vm, &st);
			fprintf(stderr,
				"\r[%5.1fs/%" PRIu64 "s] faults %" PRIu64
				"  retries %" PRIu64 "  flushes %" PRIu64
				"  checkpoints %" PRIu64 "   ",
				elapsed(t), t->duration_s, st.pf_fixed,
				st.pf_retry, st.remote_tlb_flush,
				t->checkpoints);
			next_line = now + 1000000000ull;
		}
	}
	if (t->progress_tty)
		fputc('\n', stderr);
	free(seen);
	free(since);
}

/* ------------------------------------------------------------------ */
/* Setup, teardown, reporting                                          */
/* ------------------------------------------------------------------ */

static int setup(struct torture *t)
{
	/* guest memory (plus, confidential, as much guest-private memory),
	 * and room for migration copies */
	struct tdp_host_config hc = { .mem_bytes = (t->confidential ? 3 : 2) *
							   t->mem +
						   (1ull << 30) };
	struct tdp_vm_config vc = { .nr_as = t->nr_as,
				    .max_vcpus = t->nvcpu + 3,
				    .engine = t->engine,
				    .flags = t->log_mode == LOG_DBIT
						     ? TDP_VM_DIRTY_DBIT
						     : t->log_mode == LOG_WP_LAZY
							       ? TDP_VM_NO_EAGER_SPLIT
							       : 0 };
	uint64_t chunks;
	int r;

	t->slot_size = t->mem / NSLOTS;
	t->npages = t->mem / PAGE;
	t->nregions = t->mem / REGION;
	chunks = t->npages / CHUNK_PAGES;
	t->regions = calloc(t->nregions, sizeof(*t->regions));
	for (enum backing b = B_HVA; b < (t->confidential ? B_COUNT : B_PRIV);
	     b++) {
		t->gen[b] = calloc(t->npages, sizeof(*t->gen[b]));
		t->shared[b] = calloc(chunks * t->nvcpu, sizeof(*t->shared[b]));
		if (!t->gen[b] || !t->shared[b])
			return -ENOMEM;
	}
	if (t->confidential) {
		/* every page starts private */
		t->attr_shared = calloc(t->npages, sizeof(*t->attr_shared));
		t->pchange = calloc(t->npages, sizeof(*t->pchange));
		if (!t->attr_shared || !t->pchange)
			return -ENOMEM;
		vc.flags |= TDP_VM_CONFIDENTIAL;
	}
	t->log = calloc(t->npages * LOG_DEPTH, sizeof(*t->log));
	t->log_pos = calloc(t->npages, sizeof(*t->log_pos));
	t->last_write = calloc(t->npages, sizeof(*t->last_write));
	t->swap_start = calloc(t->npages, sizeof(*t->swap_start));
	t->swap_end = calloc(t->npages, sizeof(*t->swap_end));
	t->wpair = calloc(t->npages, sizeof(*t->wpair));
	t->apair = calloc(t->npages, sizeof(*t->apair));
	t->evict = calloc(t->npages, sizeof(*t->evict));
	t->reported = calloc(t->npages, sizeof(*t->reported));
	t->last_aged = calloc(t->npages, sizeof(*t->last_aged));
	t->evict_snap = calloc(t->npages, sizeof(*t->evict_snap));
	t->owed_a = calloc(t->npages, sizeof(*t->owed_a));
	t->checked_a = calloc(t->npages, sizeof(*t->checked_a));
	t->hbm = calloc(t->slot_size / PAGE / 64 + 1, sizeof(*t->hbm));
	if (!t->regions || !t->log || !t->log_pos ||
	    !t->last_write || !t->swap_start || !t->swap_end || !t->wpair ||
	    !t->apair || !t->evict || !t->reported || !t->last_aged ||
	    !t->evict_snap || !t->owed_a || !t->checked_a || !t->hbm)
		return -ENOMEM;
	for (uint64_t i = 0; i < t->nregions; i++) {
		pthread_rwlock_init(&t->regions[i].lock, NULL);
		pthread_rwlock_init(&t->regions[i].plock, NULL);
	}
	r = tdp_host_create(&hc, &t->h);
	if (r)
		return r;
	r = tdp_vm_create(t->h, &vc, &t->vm);
	if (r)
		return r;
	t->vm->mmu.inject = t->inject;
	host_set_inject(t->h, t->inject);
	/* the shared bit the VM chose (the top gpa bit by default) */
	if (t->confidential)
		t->shared_mask = 1ull << t->vm->cfg.shared_bit;
	/* the Dirty-bit ledger: the audit then proves no Dirty bit is lost */
	{
		struct tdp_host_stats hs;

		tdp_host_get_stats(t->h, &hs);
		t->vm->mmu.ledger_frames = hs.frames_total;
		t->vm->mmu.dirty_ledger =
			calloc(hs.frames_total, sizeof(*t->vm->mmu.dirty_ledger));
		if (!t->vm->mmu.dirty_ledger)
			return -ENOMEM;
	}
	for (unsigned i = 0; i < NSLOTS; i++) {
		struct slot *s = &t->slots[i];

		s->size = t->slot_size;
		s->folio = i % 2 ? TDP_PAGE_SIZE : TDP_HUGE_2M;
		s->gpa[0] = 2ull * i * t->slot_size;
		s->gpa[1] = s->gpa[0] + t->slot_size;
		pthread_rwlock_init(&s->lock, NULL);
		r = tdp_host_mmap(t->h, s->size, TDP_PROT_READ | TDP_PROT_WRITE,
				  s->folio, 0, &s->hva);
		/* its guest-private memory, 4 KiB folios */
		if (!r && t->confidential)
			r = tdp_host_mmap(t->h, s->size,
					  TDP_PROT_READ | TDP_PROT_WRITE,
					  TDP_PAGE_SIZE, TDP_MAP_GUEST_PRIVATE,
					  &s->phva);
		for (unsigned as = 0; !r && as < t->nr_as; as++)
			r = set_slot(t, i, as, s->size, 0);
		if (r)
			return r;
	}
	t->nthreads = t->nvcpu + 5; /* + host, 2 zappers, memslots, tracker */
	t->threads = calloc(t->nthreads, sizeof(*t->threads));
	if (!t->threads)
		return -ENOMEM;
	for (unsigned i = 0; i < t->nthreads; i++) {
		struct thread *th = &t->threads[i];

		th->t = t;
		/* two zappers: yielding walkers must also yield to each
		 * other without livelock (I9) */
		th->kind = i < t->nvcpu		 ? T_VCPU
			   : i == t->nvcpu	 ? T_HOST
			   : i <= t->nvcpu + 2 ? T_ZAPPER
			   : i == t->nvcpu + 3 ? T_SLOTS
					       : T_TRACK;
		th->id = i;
		th->seed = t->seed * 0x9e3779b97f4a7c15ull + i + 1;
		/* host and memslot threads own a checker vCPU */
		if (th->kind == T_VCPU || th->kind == T_HOST ||
		    th->kind == T_SLOTS) {
			unsigned vid = th->kind == T_VCPU   ? i
				       : th->kind == T_HOST ? t->nvcpu
							    : t->nvcpu + 1;
			r = tdp_vcpu_create(t->vm, vid, &th->vcpu);
			if (r)
				return r;
		}
	}
	/* confidential: the main thread reads private memory at checkpoints
	 * through a vCPU of its own */
	if (t->confidential)
		return tdp_vcpu_create(t->vm, t->nvcpu + 2, &t->ckpt_vcpu);
	return 0;
}

/* Everything back to zero: roots, tables, frame references (I12). */
static void teardown(struct torture *t)
{
	struct tdp_host_stats hs;

	for (unsigned i = 0; t->threads && i < t->nthreads; i++)
		tdp_vcpu_destroy(t->threads[i].vcpu);
	tdp_vcpu_destroy(t->ckpt_vcpu);
	if (t->vm && !atomic_load(&t->failed)) {
		struct tdp_stats st;

		tdp_vm_invalidate_roots(t->vm);
		/* confidential: the reset leaves the mirror root alone (only
		 * the VM's destruction takes it); zap everything below the
		 * shared bit, under the write lock, so only its root page is
		 * left */
		if (t->confidential)
			host_check(t, "zap at teardown",
				   tdp_vm_zap_gfn_range(t->vm, 0, 0,
							t->shared_mask));
		tdp_rcu_barrier();
		tdp_vm_get_stats(t->vm, &st);
		if (st.roots != st.mirror_roots || st.mirror_roots > 1 ||
		    st.pt_pages || st.pt_pages_alloc != st.mirror_roots ||
		    st.frame_refs || st.pages_4k || st.pages_2m || st.pages_1g)
			fail(t, "accounting (I12)",
			     "with every vCPU gone and the roots reset: %" PRIu64
			     " roots (%" PRIu64 " mirror), %" PRIu64
			     " table pages (%" PRIu64 " allocated), %" PRIu64
			     " frame references, %" PRIu64 "/%" PRIu64
			     "/%" PRIu64 " leaves",
			     st.roots, st.mirror_roots, st.pt_pages,
			     st.pt_pages_alloc, st.frame_refs, st.pages_4k,
			     st.pages_2m, st.pages_1g);
	}
	{
		atomic_int *ledger = t->vm ? t->vm->mmu.dirty_ledger : NULL;

		tdp_vm_destroy(t->vm); /* asserts nothing is left */
		free(ledger);
	}
	for (unsigned i = 0; t->h && i < NSLOTS; i++) {
		if (t->slots[i].hva)
			tdp_host_munmap(t->h, t->slots[i].hva, t->slot_size);
		if (t->slots[i].phva)
			tdp_host_munmap(t->h, t->slots[i].phva, t->slot_size);
	}
	if (t->h) {
		tdp_host_get_stats(t->h, &hs);
		if (!atomic_load(&t->failed) &&
		    (hs.frames_used || hs.frame_refs || hs.pinned_refs))
			fail(t, "accounting (I12)",
			     "after the VM and every mapping are gone: %" PRIu64
			     " frames used, %" PRIu64 " references, %" PRIu64
			     " pinned",
			     hs.frames_used, hs.frame_refs, hs.pinned_refs);
		tdp_host_destroy(t->h);
	}
	for (uint64_t i = 0; t->regions && i < t->nregions; i++) {
		pthread_rwlock_destroy(&t->regions[i].lock);
		pthread_rwlock_destroy(&t->regions[i].plock);
	}
	free(t->regions);
	for (enum backing b = B_HVA; b < B_COUNT; b++) {
		free(t->gen[b]);
		free(t->shared[b]);
	}
	free(t->attr_shared);
	free(t->pchange);
	free((void *)t->log);
	free(t->log_pos);
	free(t->last_write);
	free(t->swap_start);
	free(t->swap_end);
	free(t->wpair);
	free(t->apair);
	free(t->evict);
	free(t->reported);
	free(t->last_aged);
	free(t->evict_snap);
	free(t->owed_a);
	free(t->checked_a);
	free(t->hbm);
}

static void print_summary(struct torture *t)
{
	struct tdp_stats st = t->final;
	uint64_t ops[OP_COUNT] = { 0 };
	bool ok = !atomic_load(&t->failed);

	for (unsigned i = 0; t->threads && i < t->nthreads; i++)
		for (int o = 0; o < OP_COUNT; o++)
			ops[o] += t->threads[i].ops[o];
	if (t->json) {
		printf("{\"result\":\"%s\",\"seed\":%" PRIu64
		       ",\"duration_s\":%.3f,\"vcpus\":%u,\"mem\":%" PRIu64
		       ",\"inject\":\"%s\",\"confidential\":%s,"
		       "\"engine\":\"%s\"",
		       ok ? "pass" : "fail", t->seed, elapsed(t), t->nvcpu,
		       t->mem, tdp_inject_name(t->inject),
		       t->confidential ? "true" : "false",
		       t->engine == TDP_ENGINE_LEGACY ? "legacy" : "tdp");
		if (!ok) {
			printf(",\"oracle\":\"%s\",\"detected_after_s\":%.3f,"
			       "\"message\":\"",
			       t->oracle, t->fail_at);
			for (const char *c = t->message; *c; c++)
				printf(*c == '"' || *c == '\\' ? "\\%c" : "%c",
				       *c);
			printf("\"");
		}
		if (t->sched.strategy)
			printf(",\"sched\":\"%s\",\"depth\":%u,\"steps\":%" PRIu64
			       ",\"trace\":\"%016" PRIx64 "\"",
			       t->sched.strategy == TDP_SCHED_PCT ? "pct"
								   : "random",
			       t->sched.depth, t->sched_steps, t->sched_hash);
		printf(",\"checkpoints\":%" PRIu64 ",\"ops\":{", t->checkpoints);
		for (int o = 0; o < OP_COUNT; o++)
			printf("%s\"%s\":%" PRIu64, o ? "," : "", op_names[o],
			       ops[o]);
		printf("},\"stats\":{\"pf_fixed\":%" PRIu64
		       ",\"pf_retry\":%" PRIu64 ",\"remote_tlb_flush\":%" PRIu64
		       ",\"invalidations\":%" PRIu64 ",\"root_reloads\":%" PRIu64
		       ",\"fast_zaps\":%" PRIu64 ",\"conversions\":%" PRIu64
		       ",\"punches\":%" PRIu64 ",\"pf_private\":%" PRIu64
		       ",\"pf_attr_exit\":%" PRIu64 ",\"ext_ops\":%" PRIu64
		       ",\"ext_errors\":%" PRIu64 ",\"mirror_roots\":%" PRIu64
		       ",\"private_pages_verified\":%" PRIu64 "}}\n",
		       st.pf_fixed, st.pf_retry, st.remote_tlb_flush,
		       st.invalidations, st.root_reloads, st.fast_zaps,
		       st.conversions, ops[OP_PUNCH], st.pf_private,
		       st.pf_attr_exit, st.ext_ops, st.ext_errors,
		       st.mirror_roots, t->private_verified);
		return;
	}
	if (!t->quiet) {
		printf("torture: %.1f s, seed %" PRIu64 ", %u vCPUs, %" PRIu64
		       " MiB, %u address space(s), injection %s\n",
		       elapsed(t), t->seed, t->nvcpu, t->mem >> 20, t->nr_as,
		       tdp_inject_name(t->inject));
		printf("  ops:");
		for (int o = 0; o < OP_COUNT; o++)
			printf(" %s %" PRIu64, op_names[o], ops[o]);
		printf("\n  checkpoints %" PRIu64 " (%" PRIu64
		       " pages verified), faults %" PRIu64 ", retries %" PRIu64
		       ", flushes %" PRIu64 ", invalidations %" PRIu64
		       ", root reloads %" PRIu64 ", walk yields %" PRIu64
		       ", dirty leaves zapped %" PRIu64
		       ", TLB promises checked %" PRIu64 " of %" PRIu64 "\n",
		       t->checkpoints, t->verified_pages, st.pf_fixed,
		       st.pf_retry, st.remote_tlb_flush, st.invalidations,
		       st.root_reloads, t->yields, t->zapped_dirty,
		       (uint64_t)atomic_load(&t->promises_checked),
		       (uint64_t)atomic_load(&t->promises_made));
		printf("  dirty log %s: %" PRIu64 " harvests reported %" PRIu64
		       " pages, fast faults %" PRIu64 ", eager splits %" PRIu64
		       ", huge pages recovered %" PRIu64 "; aging: %" PRIu64
		       " calls found %" PRIu64 " young pages\n",
		       (const char *[]){ "off", "wp", "wp-lazy",
					 "dbit" }[t->log_mode],
		       t->harvests, t->harvested_pages, st.pf_fast,
		       st.eager_splits, st.huge_recovered, t->agings,
		       t->young_pages);
		if (t->confidential)
			printf("  confidential: %" PRIu64
			       " conversions, %" PRIu64 " holes punched, %" PRIu64
			       " fast zaps, %" PRIu64
			       " private faults, %" PRIu64 " wrong-kind exits, "
			       "external table %" PRIu64 " ops %" PRIu64
			       " errors, %" PRIu64 " mirror root(s), %" PRIu64
			       " private pages verified by guest reads\n",
			       st.conversions, ops[OP_PUNCH], st.fast_zaps,
			       st.pf_private, st.pf_attr_exit, st.ext_ops,
			       st.ext_errors, st.mirror_roots,
			       t->private_verified);
	}
	if (ok)
		printf("torture: PASSED (every oracle held)\n");
	else
		printf("torture: FAILED: oracle=%s at %.3f s (seed %" PRIu64
		       "): %s\n",
		       t->oracle, t->fail_at, t->seed, t->message);
	if (t->sched.strategy) {
		if (!ok)
			printf("torture: replay: %s\n", t->cmdline);
		printf("torture: sched %s depth %u: %" PRIu64
		       " steps, trace=%016" PRIx64 "\n",
		       t->sched.strategy == TDP_SCHED_PCT ? "pct" : "random",
		       t->sched.depth, t->sched_steps, t->sched_hash);
	}
}

/* A library assertion or a sanitizer aborts the process, a use of freed
 * memory may crash it: say which and when. */
static void on_abort(int sig)
{
	char buf[200];
	struct torture *t = g_torture;
	int n;

	if (t) {
		n = snprintf(buf, sizeof(buf),
			     "torture: FAILED: oracle=%s at %.3f s (seed "
			     "%" PRIu64 ")\n",
			     sig == SIGABRT ? "assertion (library invariant "
					      "check or sanitizer)"
					    : "crash (memory fault)",
			     elapsed(t), t->seed);
		if (n > 0 && write(STDOUT_FILENO, buf, (size_t)n) < 0)
			n = 0;
		if (t->sched.strategy) {
#if TDP_SCHED_AVAILABLE
			tdp_sched_dump(STDOUT_FILENO,
				       t->sched.trace ? t->sched.trace : 32);
#endif
			n = snprintf(buf, sizeof(buf), "torture: replay: %s\n",
				     t->cmdline);
			if (n > 0 && write(STDOUT_FILENO, buf, (size_t)n) < 0)
				n = 0;
		}
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tdpmmu torture [options]\n"
		"  --duration SECONDS  how long to run (default 10)\n"
		"  --seed N            random seed; replays the same choice of "
		"operations (default 1)\n"
		"  --vcpus N           vCPU threads, 1..%d (default 2)\n"
		"  --mem SIZE          guest memory, multiple of 8M (default 32M)\n"
		"  --as N              address spaces, 1 or 2 (default 2)\n"
		"  --ops LIST          operation weights, e.g. "
		"'zap=0,unmap=5'; 0 disables\n"
		"  --inject NAME       put back a historical bug (test builds)\n"
		"  --log MODE          dirty logging of every memslot: wp "
		"(write-protect, default), wp-lazy (no eager split),\n"
		"                      dbit (Dirty bits) or off\n"
		"  --confidential      a confidential VM (TDX-like): private "
		"memslots, conversions,\n"
		"                      hole punches; one address space, "
		"--log off\n"
		"  --engine NAME       tdp (default) or legacy "
		"(TDP_ENGINE_LEGACY; not with --confidential)\n"
		"  --sched STRATEGY    run one thread at a time under the "
		"controlled scheduler\n"
		"                      (random or pct; builds configured "
		"with -DTDP_SCHED=ON):\n"
		"                      a switch can happen at every atomic, "
		"lock, RCU, sleep and\n"
		"                      thread operation; the run is a "
		"function of --seed and the\n"
		"                      options and ends after --steps "
		"scheduling points\n"
		"  --steps N           points in a --sched run (default "
		"2000000)\n"
		"  --depth D           pct: bug depth, D-1 priority change "
		"points (default 3)\n"
		"  --max-steps N       fail as a livelock past N points "
		"(default 2 x --steps + 10^6)\n"
		"  --checkpoint-steps N  points between checkpoints under "
		"--sched (default 200000)\n"
		"  --trace K           on a failure under --sched, print the "
		"last K decisions\n"
		"  --quiet             only the verdict line\n"
		"  --json              a JSON summary instead of text\n"
		"operations:",
		MAX_VCPUS);
	for (int o = 0; o < OP_COUNT; o++)
		if (!op_confidential_only((enum op)o))
			fprintf(f, " %s=%u", op_names[o],
				op_default_weight[o]);
	fprintf(f, "\noperations with --confidential:");
	for (int o = 0; o < OP_COUNT; o++)
		if (!op_not_confidential((enum op)o))
			fprintf(f, " %s=%u", op_names[o],
				op_confidential_weight[o]);
	fprintf(f, "\ninjections%s:",
		TDP_INJECT_AVAILABLE ? "" : " (not compiled into this build)");
	for (int i = 1; i < INJ_COUNT; i++)
		fprintf(f, " %s", tdp_inject_name(i));
	fprintf(f, "\nexit status: 0 when every oracle held, 1 when one "
		   "failed, 2 on bad usage\n");
}

static int parse_ops(struct torture *t, char *list)
{
	for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
		char *eq = strchr(tok, '=');
		int o;

		if (!eq)
			return -1;
		*eq = 0;
		for (o = 0; o < OP_COUNT; o++)
			if (!strcmp(op_names[o], tok))
				break;
		if (o == OP_COUNT)
			return -1;
		t->weights[o] = (unsigned)strtoul(eq + 1, NULL, 0);
	}
	return 0;
}

int cmd_torture(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "duration", required_argument, NULL, 'd' },
		{ "seed", required_argument, NULL, 's' },
		{ "vcpus", required_argument, NULL, 'v' },
		{ "mem", required_argument, NULL, 'm' },
		{ "as", required_argument, NULL, 'a' },
		{ "ops", required_argument, NULL, 'o' },
		{ "inject", required_argument, NULL, 'i' },
		{ "log", required_argument, NULL, 'l' },
		{ "confidential", no_argument, NULL, 'c' },
		{ "engine", required_argument, NULL, 'e' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "sched", required_argument, NULL, 'S' },
		{ "steps", required_argument, NULL, 'N' },
		{ "depth", required_argument, NULL, 'D' },
		{ "max-steps", required_argument, NULL, 'M' },
		{ "checkpoint-steps", required_argument, NULL, 'C' },
		{ "trace", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 } };
	struct torture *t = calloc(1, sizeof(*t));
	char *ops_args[16];
	unsigned nops_args = 0;
	bool as_given = false, log_given = false;
	int c, r;
	bool ok;

	if (!t)
		return 1;
	t->duration_s = 10;
	t->seed = 1;
	t->nvcpu = 2;
	t->mem = 32ull << 20;
	t->nr_as = 2;
	t->log_mode = LOG_WP;
	t->sched.steps = 2000000;
	t->sched.depth = 3;
	t->sched_checkpoint_steps = 200000;
	pthread_mutex_init(&t->fail_lock, NULL);
	pthread_mutex_init(&t->promise_lock, NULL);
	{
		size_t n = (size_t)snprintf(t->cmdline, sizeof(t->cmdline),
					    "tdpmmu");

		for (int i = 0; i < argc && n < sizeof(t->cmdline); i++)
			n += (size_t)snprintf(t->cmdline + n,
					      sizeof(t->cmdline) - n, " %s",
					      argv[i]);
	}
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': t->duration_s = strtoull(optarg, NULL, 0); break;
		case 's': t->seed = strtoull(optarg, NULL, 0); break;
		case 'v': t->nvcpu = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'a':
			t->nr_as = (unsigned)strtoul(optarg, NULL, 0);
			as_given = true;
			break;
		case 'm':
			if (cli_parse_size(optarg, &t->mem))
				t->mem = 0;
			break;
		case 'o':
			/* applied over the mode's default weights below */
			if (nops_args ==
			    sizeof(ops_args) / sizeof(ops_args[0])) {
				fprintf(stderr, "torture: too many --ops\n");
				goto bad;
			}
			ops_args[nops_args++] = optarg;
			break;
		case 'i':
			t->inject = tdp_inject_lookup(optarg);
			if (t->inject < 0) {
				fprintf(stderr, "torture: unknown injection "
						"'%s'\n", optarg);
				usage(stderr);
				goto bad;
			}
			if (t->inject && !TDP_INJECT_AVAILABLE) {
				fprintf(stderr, "torture: bug injection is not "
						"compiled into this build "
						"(configure with -DTDP_INJECT=ON)\n");
				goto bad;
			}
			break;
		case 'l':
			log_given = true;
			if (!strcmp(optarg, "wp"))
				t->log_mode = LOG_WP;
			else if (!strcmp(optarg, "wp-lazy"))
				t->log_mode = LOG_WP_LAZY;
			else if (!strcmp(optarg, "dbit"))
				t->log_mode = LOG_DBIT;
			else if (!strcmp(optarg, "off"))
				t->log_mode = LOG_OFF;
			else {
				fprintf(stderr, "tdpmmu torture: --log must "
						"be wp, wp-lazy, dbit or off\n");
				goto bad;
			}
			break;
		case 'c': t->confidential = true; break;
		case 'e':
			if (cli_parse_engine(optarg, &t->engine)) {
				fprintf(stderr, "tdpmmu torture: --engine must "
						"be tdp or legacy\n");
				goto bad;
			}
			break;
		case 'q': t->quiet = true; break;
		case 'S':
			if (!strcmp(optarg, "random"))
				t->sched.strategy = TDP_SCHED_RANDOM;
			else if (!strcmp(optarg, "pct"))
				t->sched.strategy = TDP_SCHED_PCT;
			else {
				fprintf(stderr, "torture: --sched must be "
						"random or pct\n");
				goto bad;
			}
			break;
		case 'N': t->sched.steps = strtoull(optarg, NULL, 0); break;
		case 'D':
			t->sched.depth = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 'M':
			t->sched.max_steps = strtoull(optarg, NULL, 0);
			break;
		case 'C':
			t->sched_checkpoint_steps =
				strtoull(optarg, NULL, 0);
			break;
		case 'T':
			t->sched.trace = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 'j': t->json = true; break;
		case 'h': usage(stdout); goto help;
		default: usage(stderr); goto bad;
		}
	}
	if (!t->nvcpu || t->nvcpu > MAX_VCPUS || !t->mem ||
	    t->mem % (NSLOTS * REGION) || t->mem > (64ull << 30) ||
	    !t->duration_s || t->duration_s > 86400 ||
	    (t->nr_as != 1 && t->nr_as != 2)) {
		fprintf(stderr, "torture: bad --vcpus, --mem, --as or "
				"--duration\n");
		usage(stderr);
		goto bad;
	}
	if (t->sched.strategy && !TDP_SCHED_AVAILABLE) {
		fprintf(stderr, "torture: --sched needs a build configured "
				"with -DTDP_SCHED=ON (make check-sched builds "
				"one in build/sched)\n");
		goto bad;
	}
	if (!t->sched.strategy && TDP_SCHED_AVAILABLE) {
		fprintf(stderr, "torture: this controlled-scheduler build "
				"runs only with --sched random|pct\n");
		goto bad;
	}
	if (t->sched.strategy &&
	    (!t->sched.steps || t->sched.steps > (1ull << 40) ||
	     !t->sched.depth || t->sched.depth > 16 ||
	     t->sched_checkpoint_steps < 1000 ||
	     t->sched.trace > 1000000 ||
	     (t->sched.max_steps && t->sched.max_steps < t->sched.steps))) {
		fprintf(stderr, "torture: bad --steps, --depth (1..16), "
				"--max-steps (>= --steps), --checkpoint-steps "
				"(>= 1000) or --trace\n");
		goto bad;
	}
	if (!t->sched.max_steps)
		t->sched.max_steps = 2 * t->sched.steps + 1000000;
	t->sched.seed = t->seed ^ 0x5c4ed51de5eedull;
	/* confidential: one address space (no SMM), and private memslots
	 * can be neither dirty-logged nor read-only */
	if (t->confidential && t->engine == TDP_ENGINE_LEGACY) {
		fprintf(stderr, "torture: --confidential needs the tdp "
				"engine\n");
		goto bad;
	}
	if (t->confidential) {
		if ((as_given && t->nr_as != 1) ||
		    (log_given && t->log_mode != LOG_OFF)) {
			fprintf(stderr,
				"torture: --confidential needs --as 1 and "
				"--log off (the defaults with it)\n");
			goto bad;
		}
		t->nr_as = 1;
		t->log_mode = LOG_OFF;
	}
	memcpy(t->weights,
	       t->confidential ? op_confidential_weight : op_default_weight,
	       sizeof(t->weights));
	for (unsigned i = 0; i < nops_args; i++)
		if (parse_ops(t, ops_args[i])) {
			fprintf(stderr, "torture: bad --ops entry\n");
			usage(stderr);
			goto bad;
		}
	for (int o = 0; o < OP_COUNT; o++)
		if (t->weights[o] &&
		    (t->confidential ? op_not_confidential((enum op)o)
				     : op_confidential_only((enum op)o))) {
			fprintf(stderr, "torture: operation %s needs %s"
					"--confidential\n",
				op_names[o], t->confidential ? "no " : "");
			goto bad;
		}
	t->progress_tty = !t->quiet && !t->json && isatty(STDERR_FILENO);
	g_torture = t;
	signal(SIGABRT, on_abort);
	signal(SIGSEGV, on_abort);
	signal(SIGBUS, on_abort);
	t->t0 = cli_now_ns();
	r = setup(t);
	if (r) {
		fprintf(stderr, "torture: setup failed: %s\n", strerror(-r));
		free(t);
		return 1;
	}
#if TDP_SCHED_AVAILABLE
	r = tdp_sched_start(&t->sched);
	if (r) {
		fprintf(stderr, "torture: scheduler: %s\n", strerror(-r));
		return 1;
	}
	t->t0 = cli_now_ns(); /* virtual from here on */
#endif
	for (unsigned i = 0; i < t->nthreads; i++)
		pthread_create(&t->threads[i].th, NULL, thread_main,
			       &t->threads[i]);
	supervise(t);
	atomic_store(&t->stop, true);
	atomic_store(&t->pause, false);
	if (atomic_load(&t->failed) && !strcmp(t->oracle, "watchdog")) {
		/* threads may be stuck for good: report and leave */
#if TDP_SCHED_AVAILABLE
		t->t_end = cli_now_ns();
		t->sched_steps = tdp_sched_steps();
		t->sched_hash = tdp_sched_hash();
#endif
		tdp_vm_get_stats(t->vm, &t->final);
		print_summary(t);
		fflush(stdout);
		_exit(1);
	}
	for (unsigned i = 0; i < t->nthreads; i++)
		pthread_join(t->threads[i].th, NULL);
#if TDP_SCHED_AVAILABLE
	t->t_end = cli_now_ns();
	t->sched_steps = tdp_sched_steps();
	t->sched_hash = tdp_sched_hash();
	tdp_sched_stop();
#endif
	if (!atomic_load(&t->failed)) {
		audit(t, "end");
		verify_all(t);
	}
	tdp_vm_get_stats(t->vm, &t->final);
	t->yields = stat_read(t->vm->stats.mmu_yields);
	t->zapped_dirty = stat_read(t->vm->stats.zapped_dirty);
	if (atomic_load(&t->failed)) {
		/* report first: teardown of a broken VM may abort */
		print_summary(t);
		fflush(stdout);
		g_torture = NULL;
		teardown(t);
	} else {
		teardown(t);
		print_summary(t);
	}
	ok = !atomic_load(&t->failed);
	g_torture = NULL;
	pthread_mutex_destroy(&t->fail_lock);
	pthread_mutex_destroy(&t->promise_lock);
	free(t->threads);
	free(t);
	return ok ? 0 : 1;
help:
	pthread_mutex_destroy(&t->fail_lock);
	pthread_mutex_destroy(&t->promise_lock);
	free(t);
	return 0;
bad:
	pthread_mutex_destroy(&t->fail_lock);
	pthread_mutex_destroy(&t->promise_lock);
	free(t);
	return 2;
}
