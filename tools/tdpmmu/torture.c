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
 *
 * Files: this one is the command line (options, setup and teardown of the
 * machine, the run: checkpoints and watchdog in the main thread, and the
 * report); torture.h the state shared by the others; torture_model.c the
 * model of what every page holds and the per-page log; torture_check.c
 * the oracles (content checks, failure reports, TLB promises, the dirty-
 * recording check, the audit); torture_vcpu.c the vCPU threads;
 * torture_ops.c the host, zapper, memslot and tracker threads and the
 * loop every thread runs.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "host/host.h"
#include "inject.h"
#include "sched/sched.h"
#include "torture.h"
#include "vm.h"

/* ------------------------------------------------------------------ */
/* Operations                                                          */
/* ------------------------------------------------------------------ */

static const char *const log_mode_names[LOG_MODES] = {
	[LOG_OFF] = "off",	     [LOG_WP] = "wp",
	[LOG_WP_LAZY] = "wp-lazy",   [LOG_DBIT] = "dbit",
	[LOG_DBIT_WALK] = "dbit-walk", [LOG_RING] = "ring",
	[LOG_RING_PML] = "ring-pml",
};

const char *const op_names[OP_COUNT] = {
	"read",	   "write",	  "translate", "asswitch", "wrong-kind",
	"probe",   "prefault",	  "fetch",     "migrate",  "swapout",
	"split",   "mprotect",
	"unmap",   "punch",	  "zap",       "reset",	   "fast-zap",
	"notify",  "slot-delete", "slot-move", "slot-ro",  "slot-log",
	"harvest", "age",	  "convert",   "nx-recover",
};

/* Operations at weight 0 change nothing in a run: the default mode keeps
 * its choices (a seed replays what it did before fast-zap, wrong-kind,
 * punch and convert existed). */
static const unsigned op_default_weight[OP_COUNT] = {
	[OP_READ] = 6,	      [OP_WRITE] = 6,	  [OP_TRANSLATE] = 3,
	[OP_ASSWITCH] = 1,    [OP_MIGRATE] = 4,	  [OP_SWAPOUT] = 4,
	[OP_SPLIT] = 1,	      [OP_MPROTECT] = 1,  [OP_UNMAP] = 2,
	[OP_ZAP] = 6,	      [OP_RESET] = 2,	  [OP_NOTIFY] = 2,
	[OP_SLOT_DELETE] = 1, [OP_SLOT_MOVE] = 1, [OP_SLOT_RO] = 1,
	[OP_SLOT_LOG] = 2,    [OP_HARVEST] = 3,	  [OP_AGE] = 3,
	[OP_PREFAULT] = 1,
};

/* --confidential: no second address space, no read-only or dirty-logged
 * (private) slots; wrong-kind accesses, hole punches, fast zaps and
 * conversions instead. */
static const unsigned op_confidential_weight[OP_COUNT] = {
	[OP_READ] = 6,	      [OP_WRITE] = 6,	  [OP_TRANSLATE] = 3,
	[OP_WRONG] = 1,	      [OP_PROBE] = 2,	  [OP_MIGRATE] = 4,
	[OP_SWAPOUT] = 4,     [OP_SPLIT] = 1,	  [OP_MPROTECT] = 1,
	[OP_UNMAP] = 2,	      [OP_PUNCH] = 2,	  [OP_ZAP] = 6,
	[OP_RESET] = 2,	      [OP_FASTZAP] = 2,	  [OP_NOTIFY] = 2,
	[OP_SLOT_DELETE] = 1, [OP_SLOT_MOVE] = 1, [OP_AGE] = 3,
	[OP_CONVERT] = 6,     [OP_PREFAULT] = 1,
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
	       o == OP_HARVEST || o == OP_FETCH || o == OP_NX_RECOVER;
}

/* Operations only --nx runs (weight 0 otherwise, so default seeds keep
 * their choices), and its weights for them. */
static bool op_nx_only(enum op o)
{
	return o == OP_FETCH || o == OP_NX_RECOVER;
}

static const unsigned op_nx_weight[OP_COUNT] = {
	[OP_FETCH] = 3,
	[OP_NX_RECOVER] = 2,
};

static struct torture *g_torture; /* for the SIGABRT reporter only */

/* ------------------------------------------------------------------ */
/* Checkpoints, watchdog                                               */
/* ------------------------------------------------------------------ */

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
	static const char *const n[T_KINDS] = {"vCPU", "host", "zapper",
					       "memslot", "tracker"};

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
	while (!atomic_load(&t->stop) && cli_now_ns() < end && !sched_done(t)) {
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

/* The model and the oracles' per-page state, the regions' locks. */
static int setup_model(struct torture *t)
{
	uint64_t chunks;

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
	if (!t->regions || !t->log || !t->log_pos || !t->last_write ||
	    !t->swap_start || !t->swap_end || !t->wpair || !t->apair ||
	    !t->evict || !t->reported || !t->last_aged || !t->evict_snap ||
	    !t->owed_a || !t->checked_a || !t->hbm)
		return -ENOMEM;
	for (uint64_t i = 0; i < t->nregions; i++) {
		pthread_rwlock_init(&t->regions[i].lock, NULL);
		pthread_rwlock_init(&t->regions[i].plock, NULL);
	}
	return 0;
}

/* The threads, each vCPU thread's vCPU and the host and memslot
 * threads' checker vCPUs. */
static int setup_threads(struct torture *t)
{
	int r;

	t->nthreads = t->nvcpu + 5; /* + host, 2 zappers, memslots, tracker */
	t->threads = calloc(t->nthreads, sizeof(*t->threads));
	if (!t->threads)
		return -ENOMEM;
	for (unsigned i = 0; i < t->nthreads; i++) {
		struct thread *th = &t->threads[i];

		th->t = t;
		/* two zappers: yielding walkers must also yield to each
		 * other without livelock (I9) */
		th->kind = i < t->nvcpu	       ? T_VCPU
			   : i == t->nvcpu     ? T_HOST
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
	return 0;
}

/* The machine: host, VM, memslots, threads and their vCPUs. */
static int setup(struct torture *t)
{
	/* guest memory (plus, confidential, as much guest-private memory),
	 * and room for migration copies */
	struct tdp_host_config hc = {
		.mem_bytes = (t->confidential ? 3 : 2) * t->mem + (1ull << 30),
		.backend = t->host_backend};
	struct tdp_vm_config vc = {
		.nr_as = t->nr_as,
		.max_vcpus = t->nvcpu + 3,
		.engine = t->engine,
		.flags = log_mode_flags(t->log_mode),
		/* the smallest: vCPUs meet the soft limit often */
		.dirty_ring_size =
			log_mode_ring(t->log_mode) ? TDP_DIRTY_RING_MIN : 0};
	int r;

	r = setup_model(t);
	if (r)
		return r;
	if (t->confidential)
		vc.flags |= TDP_VM_CONFIDENTIAL;
	if (t->nx)
		vc.flags |= TDP_VM_NX_HUGE_PAGES;
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
		t->vm->mmu.dirty_ledger = calloc(
			hs.frames_total, sizeof(*t->vm->mmu.dirty_ledger));
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
		r = tdp_host_mmap(t->h, s->size,
				  host_prot(t, TDP_PROT_READ | TDP_PROT_WRITE),
				  s->folio, 0, &s->hva);
		/* its guest-private memory, 4 KiB folios */
		if (!r && t->confidential)
			r = tdp_host_mmap(
				t->h, s->size, TDP_PROT_READ | TDP_PROT_WRITE,
				TDP_PAGE_SIZE, TDP_MAP_GUEST_PRIVATE, &s->phva);
		for (unsigned as = 0; !r && as < t->nr_as; as++)
			r = set_slot(t, i, as, s->size, 0);
		if (r)
			return r;
	}
	r = setup_threads(t);
	if (r)
		return r;
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
			     "with every vCPU gone and the roots reset: "
			     "%" PRIu64 " roots (%" PRIu64 " mirror), %" PRIu64
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

/* --json: the summary as one object. */
static void print_json(struct torture *t, const uint64_t *ops, bool ok)
{
	struct tdp_stats st = t->final;

	printf("{\"result\":\"%s\",\"seed\":%" PRIu64
	       ",\"duration_s\":%.3f,\"vcpus\":%u,\"mem\":%" PRIu64
	       ",\"inject\":\"%s\",\"confidential\":%s,"
	       "\"engine\":\"%s\"",
	       ok ? "pass" : "fail", t->seed, elapsed(t), t->nvcpu, t->mem,
	       tdp_inject_name(t->inject), t->confidential ? "true" : "false",
	       t->engine == TDP_ENGINE_LEGACY ? "legacy" : "tdp");
	if (!ok) {
		printf(",\"oracle\":\"%s\",\"detected_after_s\":%.3f,"
		       "\"message\":\"",
		       t->oracle, t->fail_at);
		for (const char *c = t->message; *c; c++)
			printf(*c == '"' || *c == '\\' ? "\\%c" : "%c", *c);
		printf("\"");
	}
	if (t->sched.strategy)
		printf(",\"sched\":\"%s\",\"depth\":%u,\"steps\":"
		       "%" PRIu64 ",\"trace\":\"%016" PRIx64 "\"",
		       t->sched.strategy == TDP_SCHED_PCT ? "pct" : "random",
		       t->sched.depth, t->sched_steps, t->sched_hash);
	printf(",\"checkpoints\":%" PRIu64 ",\"ops\":{", t->checkpoints);
	for (int o = 0; o < OP_COUNT; o++)
		printf("%s\"%s\":%" PRIu64, o ? "," : "", op_names[o], ops[o]);
	printf("},\"stats\":{\"pf_fixed\":%" PRIu64 ",\"pf_retry\":%" PRIu64
	       ",\"remote_tlb_flush\":%" PRIu64 ",\"invalidations\":%" PRIu64
	       ",\"root_reloads\":%" PRIu64 ",\"fast_zaps\":%" PRIu64
	       ",\"conversions\":%" PRIu64 ",\"punches\":%" PRIu64
	       ",\"pf_private\":%" PRIu64 ",\"pf_attr_exit\":%" PRIu64
	       ",\"ext_ops\":%" PRIu64 ",\"ext_errors\":%" PRIu64
	       ",\"mirror_roots\":%" PRIu64
	       ",\"private_pages_verified\":%" PRIu64 "}}\n",
	       st.pf_fixed, st.pf_retry, st.remote_tlb_flush, st.invalidations,
	       st.root_reloads, st.fast_zaps, st.conversions, ops[OP_PUNCH],
	       st.pf_private, st.pf_attr_exit, st.ext_ops, st.ext_errors,
	       st.mirror_roots, t->private_verified);
}

static void print_summary(struct torture *t)
{
	struct tdp_stats st = t->final;
	uint64_t ops[OP_COUNT] = {0};
	bool ok = !atomic_load(&t->failed);

	for (unsigned i = 0; t->threads && i < t->nthreads; i++)
		for (int o = 0; o < OP_COUNT; o++)
			ops[o] += t->threads[i].ops[o];
	if (t->json) {
		print_json(t, ops, ok);
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
		       log_mode_names[t->log_mode],
		       t->harvests, t->harvested_pages, st.pf_fast,
		       st.eager_splits, st.huge_recovered, t->agings,
		       t->young_pages);
		if (t->log_mode == LOG_DBIT || t->log_mode == LOG_RING_PML)
			printf("  PML: %" PRIu64 " Dirty bits logged, %" PRIu64
			       " full-log exits\n",
			       st.pml_logged, st.pml_full_exits);
		if (log_mode_ring(t->log_mode))
			printf("  dirty rings: %" PRIu64 " entries pushed, %" PRIu64
			       " collected, %" PRIu64 " reset; %" PRIu64
			       " accesses refused at the soft limit, %" PRIu64
			       " overflows\n",
			       st.ring_pushes, t->ring_entries, st.ring_resets,
			       (uint64_t)atomic_load(&t->ring_full),
			       st.ring_overflows);
		if (t->confidential)
			printf("  confidential: %" PRIu64
			       " conversions, %" PRIu64
			       " holes punched, %" PRIu64 " fast zaps, %" PRIu64
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

/* ------------------------------------------------------------------ */
/* Command line                                                        */
/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tdpmmu torture [options]\n"
		"  --duration SECONDS  how long to run (default 10)\n"
		"  --seed N            random seed; replays the same choice of "
		"operations (default 1)\n"
		"  --vcpus N           vCPU threads, 1..%d (default 2)\n"
		"  --mem SIZE          guest memory, multiple of 8M (default "
		"32M)\n"
		"  --as N              address spaces, 1 or 2 (default 2)\n"
		"  --ops LIST          operation weights, e.g. "
		"'zap=0,unmap=5'; 0 disables\n"
		"  --inject NAME       put back a historical bug (test "
		"builds)\n"
		"  --log MODE          dirty logging of every memslot: wp "
		"(write-protect, default), wp-lazy (no eager split),\n"
		"                      dbit (Dirty bits, logged by PML), "
		"dbit-walk (Dirty bits, no PML),\n"
		"                      ring (dirty rings, write-protect), "
		"ring-pml (dirty rings fed by PML) or off\n"
		"  --confidential      a confidential VM (TDX-like): private "
		"memslots, conversions,\n"
		"                      hole punches; one address space, "
		"--log off\n"
		"  --engine NAME       tdp (default) or legacy "
		"(TDP_ENGINE_LEGACY; not with --confidential)\n"
		"  --nx                NX huge pages (TDP_VM_NX_HUGE_PAGES): "
		"executable memory,\n"
		"                      vCPU fetches and recovery passes in "
		"the mix; not with --confidential\n"
		"  --host BACKEND      pool (the embedded host, default) or "
		"process (guest RAM in\n"
		"                      a memfd of this process, "
		"userfaultfd; not with --sched)\n"
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
			fprintf(f, " %s=%u", op_names[o], op_default_weight[o]);
	fprintf(f, "\noperations with --nx, besides:");
	for (int o = 0; o < OP_COUNT; o++)
		if (op_nx_only((enum op)o))
			fprintf(f, " %s=%u", op_names[o], op_nx_weight[o]);
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

/* Options that take effect only once all of them are known. */
struct torture_args {
	char *ops_args[16]; /* --ops, over the mode's default weights */
	unsigned nops_args;
	bool as_given, log_given;
};

static const struct option torture_options[] = {
	{"duration", required_argument, NULL, 'd'},
	{"seed", required_argument, NULL, 's'},
	{"vcpus", required_argument, NULL, 'v'},
	{"mem", required_argument, NULL, 'm'},
	{"as", required_argument, NULL, 'a'},
	{"ops", required_argument, NULL, 'o'},
	{"inject", required_argument, NULL, 'i'},
	{"log", required_argument, NULL, 'l'},
	{"confidential", no_argument, NULL, 'c'},
	{"nx", no_argument, NULL, 'X'},
	{"engine", required_argument, NULL, 'e'},
	{"host", required_argument, NULL, 'H'},
	{"quiet", no_argument, NULL, 'q'},
	{"sched", required_argument, NULL, 'S'},
	{"steps", required_argument, NULL, 'N'},
	{"depth", required_argument, NULL, 'D'},
	{"max-steps", required_argument, NULL, 'M'},
	{"checkpoint-steps", required_argument, NULL, 'C'},
	{"trace", required_argument, NULL, 'T'},
	{"json", no_argument, NULL, 'j'},
	{"help", no_argument, NULL, 'h'},
	{0}};

/* The defaults, the locks, and the command line for replays. */
static void torture_init(struct torture *t, int argc, char **argv)
{
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
}

/* The options into @t and @a: -1 to go on, else the exit status (0 after
 * --help, 2 on bad usage). */
static int parse_args(struct torture *t, struct torture_args *a, int argc,
		      char **argv)
{
	int c;

	while ((c = getopt_long(argc, argv, "", torture_options, NULL)) != -1) {
		switch (c) {
		case 'd':
			t->duration_s = strtoull(optarg, NULL, 0);
			break;
		case 's':
			t->seed = strtoull(optarg, NULL, 0);
			break;
		case 'v':
			t->nvcpu = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 'a':
			t->nr_as = (unsigned)strtoul(optarg, NULL, 0);
			a->as_given = true;
			break;
		case 'm':
			if (cli_parse_size(optarg, &t->mem))
				t->mem = 0;
			break;
		case 'o':
			/* applied over the mode's default weights in
			 * check_args */
			if (a->nops_args ==
			    sizeof(a->ops_args) / sizeof(a->ops_args[0])) {
				fprintf(stderr, "torture: too many --ops\n");
				return 2;
			}
			a->ops_args[a->nops_args++] = optarg;
			break;
		case 'i':
			t->inject = tdp_inject_lookup(optarg);
			if (t->inject < 0) {
				fprintf(stderr,
					"torture: unknown injection "
					"'%s'\n",
					optarg);
				usage(stderr);
				return 2;
			}
			if (t->inject && !TDP_INJECT_AVAILABLE) {
				fprintf(stderr,
					"torture: bug injection is not "
					"compiled into this build "
					"(configure with -DTDP_INJECT=ON)\n");
				return 2;
			}
			break;
		case 'l':
			a->log_given = true;
			t->log_mode = LOG_MODES;
			for (unsigned m = 0; m < LOG_MODES; m++)
				if (!strcmp(optarg, log_mode_names[m]))
					t->log_mode = m;
			if (t->log_mode == LOG_MODES) {
				fprintf(stderr,
					"tdpmmu torture: --log must be wp, "
					"wp-lazy, dbit, dbit-walk, ring, "
					"ring-pml or off\n");
				return 2;
			}
			break;
		case 'c':
			t->confidential = true;
			break;
		case 'X':
			t->nx = true;
			break;
		case 'e':
			if (cli_parse_engine(optarg, &t->engine)) {
				fprintf(stderr, "tdpmmu torture: --engine must "
						"be tdp or legacy\n");
				return 2;
			}
			break;
		case 'H':
			if (cli_parse_host(optarg, &t->host_backend)) {
				fprintf(stderr, "tdpmmu torture: --host must "
						"be pool or process\n");
				return 2;
			}
			break;
		case 'q':
			t->quiet = true;
			break;
		case 'S':
			if (!strcmp(optarg, "random"))
				t->sched.strategy = TDP_SCHED_RANDOM;
			else if (!strcmp(optarg, "pct"))
				t->sched.strategy = TDP_SCHED_PCT;
			else {
				fprintf(stderr, "torture: --sched must be "
						"random or pct\n");
				return 2;
			}
			break;
		case 'N':
			t->sched.steps = strtoull(optarg, NULL, 0);
			break;
		case 'D':
			t->sched.depth = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 'M':
			t->sched.max_steps = strtoull(optarg, NULL, 0);
			break;
		case 'C':
			t->sched_checkpoint_steps = strtoull(optarg, NULL, 0);
			break;
		case 'T':
			t->sched.trace = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 'j':
			t->json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	return -1;
}

/* The options together, and what depends on several: -1 to go on, or 2 on
 * bad usage. */
static int check_args(struct torture *t, const struct torture_args *a)
{
	if (!t->nvcpu || t->nvcpu > MAX_VCPUS || !t->mem ||
	    t->mem % (NSLOTS * REGION) || t->mem > (64ull << 30) ||
	    !t->duration_s || t->duration_s > 86400 ||
	    (t->nr_as != 1 && t->nr_as != 2)) {
		fprintf(stderr, "torture: bad --vcpus, --mem, --as or "
				"--duration\n");
		usage(stderr);
		return 2;
	}
	if (t->sched.strategy && !TDP_SCHED_AVAILABLE) {
		fprintf(stderr, "torture: --sched needs a build configured "
				"with -DTDP_SCHED=ON (make check-sched builds "
				"one in build/sched)\n");
		return 2;
	}
	if (!t->sched.strategy && TDP_SCHED_AVAILABLE) {
		fprintf(stderr, "torture: this controlled-scheduler build "
				"runs only with --sched random|pct\n");
		return 2;
	}
	if (t->sched.strategy &&
	    (!t->sched.steps || t->sched.steps > (1ull << 40) ||
	     !t->sched.depth || t->sched.depth > 16 ||
	     t->sched_checkpoint_steps < 1000 || t->sched.trace > 1000000 ||
	     (t->sched.max_steps && t->sched.max_steps < t->sched.steps))) {
		fprintf(stderr, "torture: bad --steps, --depth (1..16), "
				"--max-steps (>= --steps), --checkpoint-steps "
				"(>= 1000) or --trace\n");
		return 2;
	}
	if (!t->sched.max_steps)
		t->sched.max_steps = 2 * t->sched.steps + 1000000;
	t->sched.seed = t->seed ^ 0x5c4ed51de5eedull;
	/* confidential: one address space (no SMM), and private memslots
	 * can be neither dirty-logged nor read-only */
	/* the process backend's own threads (userfaultfd) run outside the
	 * controlled scheduler */
	if (t->host_backend == TDP_HOST_PROCESS && t->sched.strategy) {
		fprintf(stderr, "torture: --host process cannot run under "
				"--sched\n");
		return 2;
	}
	if (t->confidential && t->engine == TDP_ENGINE_LEGACY) {
		fprintf(stderr, "torture: --confidential needs the tdp "
				"engine\n");
		return 2;
	}
	if (t->confidential) {
		if ((a->as_given && t->nr_as != 1) ||
		    (a->log_given && t->log_mode != LOG_OFF)) {
			fprintf(stderr,
				"torture: --confidential needs --as 1 and "
				"--log off (the defaults with it)\n");
			return 2;
		}
		t->nr_as = 1;
		t->log_mode = LOG_OFF;
	}
	if (t->nx && t->confidential) {
		fprintf(stderr, "torture: --nx and --confidential do not "
				"go together\n");
		return 2;
	}
	memcpy(t->weights,
	       t->confidential ? op_confidential_weight : op_default_weight,
	       sizeof(t->weights));
	if (t->nx)
		for (int o = 0; o < OP_COUNT; o++)
			if (op_nx_only((enum op)o))
				t->weights[o] = op_nx_weight[o];
	for (unsigned i = 0; i < a->nops_args; i++)
		if (parse_ops(t, a->ops_args[i])) {
			fprintf(stderr, "torture: bad --ops entry\n");
			usage(stderr);
			return 2;
		}
	for (int o = 0; o < OP_COUNT; o++)
		if (t->weights[o] && !t->nx && op_nx_only((enum op)o)) {
			fprintf(stderr, "torture: operation %s needs --nx\n",
				op_names[o]);
			return 2;
		}
	for (int o = 0; o < OP_COUNT; o++)
		if (t->weights[o] &&
		    (t->confidential ? op_not_confidential((enum op)o)
				     : op_confidential_only((enum op)o))) {
			fprintf(stderr,
				"torture: operation %s needs %s"
				"--confidential\n",
				op_names[o], t->confidential ? "no " : "");
			return 2;
		}
	return -1;
}

/* Set up, run, check and report; the exit status. */
static int run(struct torture *t)
{
	int r;
	bool ok;

	t->progress_tty = !t->quiet && !t->json && isatty(STDERR_FILENO);
	g_torture = t;
	signal(SIGABRT, on_abort);
	signal(SIGSEGV, on_abort);
	signal(SIGBUS, on_abort);
	t->t0 = cli_now_ns();
	r = setup(t);
	if (r == -EOPNOTSUPP && t->host_backend == TDP_HOST_PROCESS) {
		printf("torture: SKIPPED: no process backend here "
		       "(userfaultfd unavailable)\n");
		free(t);
		return 77;
	}
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
}

int cmd_torture(int argc, char **argv)
{
	struct torture *t = calloc(1, sizeof(*t));
	struct torture_args a = {.nops_args = 0};
	int r;

	if (!t)
		return 1;
	torture_init(t, argc, argv);
	r = parse_args(t, &a, argc, argv);
	if (r < 0)
		r = check_args(t, &a);
	if (r < 0)
		return run(t);
	pthread_mutex_destroy(&t->fail_lock);
	pthread_mutex_destroy(&t->promise_lock);
	free(t);
	return r;
}
