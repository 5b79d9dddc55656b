/* SPDX-License-Identifier: MIT */
/*
 * torture_check.c - `tdpmmu torture`: the oracles.  fail(), where every
 * oracle reports; the content checks of a page read against the model;
 * the reports of guest accesses that failed, or reached what they must
 * not (I5, I11, I13); the TLB promises (I6); the check that no guest write
 * goes unrecorded (I4); and the checkpoint's full content check and audit
 * (I11, and the library's own invariant checks).
 *
 * Threads and locking: fail() may be called from any thread; the first
 * failure wins (fail_lock), stops the run, and under --sched prints at
 * once the decisions that led there.  A content check runs in the thread
 * that read the page, which holds what makes the model exact for it: the
 * page's slot and region locks (and plock, confidential) for read, as a
 * vCPU access does (access_begin), or the checkpoint's parked threads.
 * The TLB promises: promise_begin() and promise_end() run in the thread of
 * an operation that takes translations away, which has counted itself in
 * ops_active and ops_gen; a promise is recorded, under promise_lock, only
 * when the operation ran alone among the non-vCPU threads.  Each vCPU
 * checks the promises made to it in its own thread (promise_check: the TLB
 * is its thread's).  The dirty-recording check runs in a vCPU thread for
 * its recent writes, with zaps in flight (it looks again, and steps aside
 * across root resets), and at checkpoints in the main thread with every
 * other thread parked; verify_all() and audit() run in the main thread
 * with the others parked, or joined at the end.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "torture.h"

/* ------------------------------------------------------------------ */
/* Failures                                                            */
/* ------------------------------------------------------------------ */

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

/* First failure wins; the rest of the run stops. */
__attribute__((format(printf, 3, 4))) void
fail(struct torture *t, const char *oracle, const char *fmt, ...)
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
	fail(t,
	     found == HOST_POISON_WORD ? "content (poisoned frame)" : "content",
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
void check_owned(struct torture *t, const char *who, uint64_t p, enum backing b,
		 const uint64_t *buf, unsigned first, unsigned n)
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
void check_common(struct torture *t, const char *who, uint64_t p,
		  enum backing b, const uint64_t *buf, const uint32_t *before,
		  const uint32_t *after)
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
void common_snap(struct torture *t, uint64_t p, enum backing b, bool issued,
		 uint32_t *out)
{
	for (unsigned w = 0; w < t->nvcpu; w++) {
		struct shared_word *sw = shared_word(t, p, b, w);

		out[w] = atomic_load(issued ? &sw->issued : &sw->committed);
	}
}

/* ------------------------------------------------------------------ */
/* Access results, isolation (I5, I11, I13)                            */
/* ------------------------------------------------------------------ */

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
void access_failed(struct torture *t, const char *who, const char *op,
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

/* I5: no page of [first, first + n) is mapped in any address space. */
void expect_unmapped(struct torture *t, uint64_t first, uint64_t n)
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

/* I13: @gpa must no longer reach memory: an access is an MMIO exit (in
 * confidential mode, a shared access). */
void expect_mmio_exit(struct torture *t, struct thread *th, uint64_t gpa,
		      const char *why)
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
void expect_no_private(struct torture *t, struct thread *th, uint64_t gpa,
		       const char *why)
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

/* ------------------------------------------------------------------ */
/* TLB promises (see struct promise)                                   */
/* ------------------------------------------------------------------ */

/* Before an operation that takes translations away; the operation has
 * counted itself in ops_active already (thread_main). */
void promise_begin(struct torture *t, struct promise_mark *m)
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
void promise_end(struct torture *t, const struct promise_mark *m, unsigned as,
		 uint64_t gpa, uint64_t size, unsigned forbid, const char *what)
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
		pr->check[i] =
			!req && atomic_load(&v->tlb.flushes) == m->flushes[i];
	}
	atomic_store(&t->promises_made, no + 1);
	pthread_mutex_unlock(&t->promise_lock);
}

/* A vCPU, between accesses: the promises made since its last check. */
void promise_check(struct torture *t, struct thread *th)
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
		bad = vcpu_tlb_check(v, pr->fills[th->id], pr->gfn, pr->npages,
				     pr->forbid, why, sizeof(why));
		if (bad)
			fail(t, "TLB flush (I6)",
			     "%s of gfns %#" PRIx64 "+%#" PRIx64 " returned "
			     "with no flush done or pending for vCPU %u, "
			     "and %s (%u such entries)",
			     pr->what, pr->gfn, pr->npages, th->id, why, bad);
	}
}

/* ------------------------------------------------------------------ */
/* Dirty recording (I4)                                                */
/* ------------------------------------------------------------------ */

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
		struct tdp_translation tr[2] = {0};
		int tres[2] = {-1, -1};
		uint64_t pfn = 0;
		unsigned order = 0, prot = 0;

		for (unsigned as = 0; as < t->nr_as; as++)
			tres[as] = tdp_vm_translate(
				t->vm, as, page_gpa(t, p) | t->shared_mask,
				&tr[as]);
		host_lookup(t->h, page_hva(t, p), &pfn, &order, &prot);

		fail(t, "dirty tracking (I4)",
		     "page %" PRIu64 " (gpa %#" PRIx64
		     ") was written at %.3f s "
		     "but neither a leaf nor the host records it dirty: the "
		     "next swap-out would drop the write (as0: %d pfn %#" PRIx64
		     " d%d, as1: %d pfn %#" PRIx64 " d%d, host pfn %#" PRIx64
		     " dirty %d); %s",
		     p, page_gpa(t, p), w / 1000.0, tres[0], tr[0].pfn,
		     tr[0].dirty, tres[1], tr[1].pfn, tr[1].dirty, pfn,
		     host_page_dirty(t->h, page_hva(t, p)), log);
	}
}

void check_dirty_recorded(struct torture *t)
{
	for (uint64_t p = 0; p < t->npages && !atomic_load(&t->failed); p++)
		dirty_recorded(t, p, atomic_load(&t->last_write[p]), true);
}

/* A vCPU re-checks the pages it wrote, ~2 ms later: a lost Dirty bit is
 * short-lived (the next write fault dirties the page again), so look soon. */
void recheck_recent_writes(struct torture *t, struct thread *th)
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

void remember_write(struct torture *t, struct thread *th, uint64_t p,
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

/* ------------------------------------------------------------------ */
/* Checkpoints                                                         */
/* ------------------------------------------------------------------ */

/* Every page's hva, through the host, against the model; in confidential
 * mode also the guest-private memory of every private page, by guest
 * reads from the main thread's vCPU (the host may not read it).  Threads
 * are parked. */
void verify_all(struct torture *t)
{
	uint64_t buf[PAGE / 8];
	uint32_t c[MAX_VCPUS];

	for (uint64_t p = 0; p < t->npages && !atomic_load(&t->failed); p++) {
		int r = tdp_host_read(t->h, page_hva(t, p), buf, PAGE);

		if (r) {
			fail(t, "host operation",
			     "host read of page %" PRIu64 " failed: %d", p, r);
			return;
		}
		if (page_common(p)) {
			common_snap(t, p, B_HVA, false, c);
			check_common(t, "checkpoint host read", p, B_HVA, buf,
				     c, c);
		} else {
			check_owned(t, "checkpoint host read", p, B_HVA, buf, 0,
				    PAGE / 8);
		}
		t->verified_pages++;
	}
	for (uint64_t p = 0;
	     t->confidential && p < t->npages && !atomic_load(&t->failed);
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
			check_common(t, "checkpoint guest read", p, B_PRIV, buf,
				     c, c);
		} else {
			check_owned(t, "checkpoint guest read", p, B_PRIV, buf,
				    0, PAGE / 8);
		}
		t->private_verified++;
	}
}

void audit(struct torture *t, const char *when)
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
