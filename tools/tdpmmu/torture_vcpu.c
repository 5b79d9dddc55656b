/* SPDX-License-Identifier: MIT */
/*
 * torture_vcpu.c - `tdpmmu torture`: the vCPU threads.  Random reads and
 * writes of owned and common pages, with the locality of real guests (a
 * working set of 2 MiB regions), lockless translations, address-space
 * switches; in confidential mode accesses of the wrong kind, which must
 * exit with -EPERM (I13), and probes racing conversions (vcpu_probe).
 *
 * Threads and locking: each vCPU thread has its own struct tdp_vcpu and
 * its own random generator, seeded with (--seed, thread).  An access of a
 * page takes the page's slot lock and region lock, and in confidential
 * mode the region's plock, for read with trylock, and skips the access
 * when one is busy (access_begin): the operations that change what a page
 * holds hold one of them for write.  A vCPU writes only its own owned pages
 * and its own word of common pages, so it alone moves their model on (the
 * operations that reset it hold one of those locks for write).
 * Probes hold the slot and region locks but not plock: they race
 * conversions and hole punches on purpose.  Before an access a vCPU checks
 * the TLB promises made to it (promise_check) and that its recent writes
 * are still recorded dirty (recheck_recent_writes).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "cli.h"
#include "torture.h"

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

static void unexpected(struct torture *t, struct thread *th, const char *op,
		       uint64_t p, int r)
{
	char who[32];

	/* the vCPU's dirty ring is soft-full: the access did nothing on
	 * the page where it stopped, and the tracker's next harvest frees
	 * the ring (the oracles count only accesses that succeeded) */
	if (r == -ENOSPC && log_mode_ring(t->log_mode)) {
		atomic_fetch_add(&t->ring_full, 1);
		return;
	}
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
	uint64_t buf[8] = {0};
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
		unexpected(t, th,
			   write ? "wrong-kind write" : "wrong-kind read", p,
			   r);
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

/* --nx: no huge leaf is ever executable (TDP_VM_NX_HUGE_PAGES). */
static void check_nx(struct torture *t, unsigned as, uint64_t gpa,
		     const struct tdp_translation *tr)
{
	if (t->nx && tr->size > PAGE && (tr->prot & TDP_PROT_EXEC))
		fail(t, "NX huge pages",
		     "as %u gpa %#" PRIx64 " is mapped by an executable %" PRIu64
		     " KiB leaf", as, gpa, tr->size >> 10);
}

/* --nx: an instruction fetch of a word of @p (its memory is executable
 * and stays so: mprotect keeps X), then the leaf that maps it now, which
 * another fault may have replaced since: huge or executable, never both. */
static void vcpu_fetch(struct torture *t, struct thread *th, uint64_t p)
{
	struct tdp_translation tr;
	uint64_t gpa = access_gpa(t, p), w;
	int r;

	if (!access_begin(t, p))
		return;
	r = tdp_vcpu_fetch(th->vcpu, gpa, &w, sizeof(w));
	if (r)
		unexpected(t, th, "fetch", p, r);
	else if (!tdp_vm_translate(t->vm, th->vcpu->as_id, gpa, &tr))
		check_nx(t, th->vcpu->as_id, gpa, &tr);
	access_end(t, p);
}

/*
 * Pre-fault some pages of @p's chunk (tdp_vcpu_pre_fault_memory), then
 * read its common page through what it mapped.  The slot and the region
 * are locked for read (no memslot churn, no munmap), so the result is
 * exact but for the host: progress (0 with 1..n pages mapped) or, with
 * nothing mapped, -EAGAIN (a host invalidation of the first page in
 * progress).  One call in eight asks first for a stop of its own vCPU:
 * then -EINTR with nothing mapped, and the request is consumed.  In
 * confidential mode the gpa is without the shared bit and each page is
 * mapped as its attribute says (conversions hold plock, which
 * access_begin takes).
 */
static void vcpu_prefault(struct torture *t, struct thread *th, uint64_t p)
{
	uint64_t first = p - p % CHUNK_PAGES, m = 77;
	unsigned n = 1 + (unsigned)(cli_rand(&th->seed) % CHUNK_PAGES);
	bool stop = (cli_rand(&th->seed) & 7) == 0;
	uint64_t gpa = page_gpa(t, first);
	int r;

	if (!access_begin(t, first))
		return;
	if (stop)
		tdp_vcpu_request_stop(th->vcpu);
	r = tdp_vcpu_pre_fault_memory(th->vcpu, gpa, n * PAGE, 0, &m);
	page_log(t, first, OP_PREFAULT, th->id, n);
	if (stop ? r != -EINTR || m
		 : r == -EAGAIN ? m != 0
				: r || !m || m > n * PAGE || m % PAGE) {
		char log[512];

		describe_log(t, first, log, sizeof(log));
		fail(t, "access result",
		     "vCPU %u: pre-fault of gpa %#" PRIx64 ", %u pages%s, "
		     "returned %d having mapped %#" PRIx64 " bytes; %s",
		     th->id, gpa, n, stop ? " after a stop request" : "", r, m,
		     log);
	} else {
		th->acc_h = atomic_load(&t->h_done);
		th->acc_a = atomic_load(&t->a_done);
		vcpu_read(t, th, first);
	}
	access_end(t, first);
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

void vcpu_op(struct torture *t, struct thread *th, enum op op)
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
			p = atomic_load(
				    &t->hot[th->id][1 + cli_rand(&th->seed) %
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
		uint64_t first =
			cli_rand(&th->seed) % 4
				? th->hot * (REGION / PAGE) +
					  cli_rand(&th->seed) %
						  (REGION / PAGE - 32)
				: cli_rand(&th->seed) % (t->npages - 32);
		uint64_t kind = t->confidential && (cli_rand(&th->seed) & 1)
					? t->shared_mask
					: 0;

		for (unsigned i = 0; i < 32; i++) {
			int r = tdp_vm_translate(
				t->vm, as, page_gpa(t, first + i) | kind, &tr);

			if (r && r != -ENOENT)
				fail(t, "access result", "tdp_vm_translate: %d",
				     r);
			if (!r)
				check_nx(t, as, page_gpa(t, first + i), &tr);
		}
		return;
	}
	case OP_PROBE:
		vcpu_probe(t, th, p);
		return;
	case OP_PREFAULT:
		vcpu_prefault(t, th, p);
		return;
	case OP_FETCH:
		vcpu_fetch(t, th, p);
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
