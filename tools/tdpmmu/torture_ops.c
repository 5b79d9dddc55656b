/* SPDX-License-Identifier: MIT */
/*
 * torture_ops.c - `tdpmmu torture`: the operations of the host, zapper,
 * memslot and tracker threads, and the loop every thread runs
 * (thread_main).
 *
 *   host       migrate, swap-out, split, mprotect, munmap + mmap again (of
 *              the ordinary, shared memory); in confidential mode hole
 *              punches in the guest-private memory;
 *   zappers    two of them: zap gfn ranges, invalidate and reload roots,
 *              fast zaps, nested notifier invalidations (notify_op);
 *   memslots   delete + re-add, move, read-only toggle, dirty logging
 *              toggle;
 *   tracker    dirty-log harvests (I7), aging (I8); in confidential mode
 *              conversions between private and shared.
 *
 * Threads and locking: munmap + mmap takes its region's lock for write;
 * memslot churn its slot's lock for write, and the slot's regions' locks
 * for read (a memslot needs all of its host memory mapped); logging off
 * holds its slot's lock for read.  Conversions and hole punches take the
 * region's plock for write (conversions also their slot's lock for read: a
 * memslot re-add makes every page private again).  Everything else
 * (migrate, swap-out, split, mprotect, zaps, root resets, fast zaps, nested
 * invalidations, harvests, aging) holds region or slot locks for read at
 * most, and races with the accesses.  Root resets, fast zaps and memslot
 * changes count themselves in resets_active and resets_done, and the
 * dirty and aging checks step aside meanwhile.  Each of these operations
 * counts itself in ops_active and ops_gen (thread_main), for the TLB
 * promises.  The tracker's arrays (reported, last_aged, ...) are its own.
 * Every thread draws its operations from its own generator, seeded with
 * (--seed, thread), and parks at checkpoints (park).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "torture.h"

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
static void random_range(struct torture *t, struct thread *th, uint64_t *first,
			 uint64_t *n)
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

void host_check(struct torture *t, const char *what, int r)
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
		   tdp_host_mmap(t->h, REGION,
				 host_prot(t, TDP_PROT_READ | TDP_PROT_WRITE),
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
		   tdp_host_mprotect(t->h, hva, REGION,
				     host_prot(t, TDP_PROT_READ)));
	atomic_fetch_add(&rg->prot_seq, 1); /* 4k+2: RO in force */
	log_range(t, first, REGION / PAGE, OP_MPROTECT, th->id);
	usleep(200);
	atomic_fetch_add(&rg->prot_seq, 1); /* 4k+3: RW asked */
	host_check(t, "mprotect RW",
		   tdp_host_mprotect(t->h, hva, REGION,
				     host_prot(t, TDP_PROT_READ |
						      TDP_PROT_WRITE)));
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
		host_check(
			t, "migrate",
			tdp_host_migrate(t->h, page_hva(t, first), n * PAGE));
		break;
	case OP_SWAPOUT:
		for (uint64_t q = first; q < first + n; q++) {
			atomic_store(&t->swap_start[q], now_ms(t));
			atomic_fetch_add(&t->evict[q], 1);
		}
		host_check(
			t, "swap-out",
			tdp_host_swap_out(t->h, page_hva(t, first), n * PAGE));
		for (uint64_t q = first; q < first + n; q++) {
			atomic_store(&t->swap_end[q], now_ms(t));
			atomic_fetch_add(&t->evict[q], 1);
		}
		break;
	default:
		host_check(t, "split",
			   tdp_host_split(t->h, page_hva(t, first), n * PAGE));
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
	struct region *rg = &t->regions[r];

	/* no munmap underneath.  Memslot churn runs on: an update waits for
	 * the invalidations to end (slots-during-invalidate), so no slot
	 * appears at new gfns inside the window, where the check below would
	 * find what a fault there mapped (the memslot thread reads a page of
	 * the slot right after each update) */
	pthread_rwlock_rdlock(&rg->lock);
	vm_notifier_ops.invalidate_start(hn, hva, hva + len);
	vm_notifier_ops.invalidate_start(hn, hva2, hva2 + PAGE);
	usleep(100); /* faults come and retry */
	expect_unmapped(t, first, len / PAGE);
	vm_notifier_ops.invalidate_end(hn, hva2, hva2 + PAGE);
	vm_notifier_ops.invalidate_end(hn, hva, hva + len);
	pthread_rwlock_unlock(&rg->lock);
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
	uint64_t gpa =
		cli_rand(&th->seed) % 2
			? page_gpa(t, pick_page(t, th))
			: cli_rand(&th->seed) % (2 * NSLOTS * t->slot_size);

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

int set_slot(struct torture *t, unsigned i, unsigned as, uint64_t size,
	     unsigned flags)
{
	struct slot *s = &t->slots[i];
	struct tdp_memslot ms = {
		.as_id = as,
		.slot = i,
		.gpa = s->gpa[atomic_load(&s->where)],
		.size = size,
		.hva = s->hva,
		.flags = flags | (size && t->log_mode != LOG_OFF && !s->log_off
					  ? TDP_MEM_LOG_DIRTY
					  : 0)};

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
			    log_mode_flags(t->log_mode) & TDP_VM_DIRTY_DBIT
				    ? TLB_DIRTY_WRITE
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
		expect_mmio_exit(t, th, old_gpa,
				 "after its memslot moved away");
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
		    pthread_rwlock_tryrdlock(
			    &t->regions[page_region(p)].lock) == 0) {
			r = tdp_vcpu_write(th->vcpu, page_gpa(t, p), &b, 8);
			if (r != -EACCES)
				fail(t, "isolation (I13)",
				     "write to gpa %#" PRIx64 " in a read-only "
				     "memslot returned %d",
				     page_gpa(t, p), r);
			pthread_rwlock_unlock(&t->regions[page_region(p)].lock);
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
/* Tracker: dirty-log harvests, aging, conversions                     */
/* ------------------------------------------------------------------ */

/*
 * I7: harvest every slot of every address space (one round, number j);
 * then every write that began after round s ended and ended before round
 * c + 1 began (wpair) must have been reported by a round after s.  wpair
 * holds the page's oldest write not yet seen reported, so later writes
 * cannot hide a lost one.
 */
/* Dirty rings: take every vCPU's DIRTY entries (the VMM's side of the
 * flags protocol, tdp_vcpu_dirty_ring) into round @j, then reset: the
 * round reports what the rings held when it began. */
struct ring_take {
	struct torture *t;
	uint32_t j, *fetch;
	unsigned vcpu;
};

static int ring_take(void *arg, uint32_t slot, uint64_t offset)
{
	struct ring_take *rt = arg;
	struct torture *t = rt->t;
	uint64_t slot_pages = t->slot_size / PAGE;
	uint32_t id = slot & 0xffff;

	if (id >= NSLOTS || offset >= slot_pages) {
		fail(t, "dirty log (I7)",
		     "vCPU %u's ring entry %u names slot %#x offset %#" PRIx64
		     ": no such page",
		     rt->vcpu, *rt->fetch, slot, offset);
		return -EIO;
	}
	t->reported[id * slot_pages + offset] = rt->j;
	t->harvested_pages++;
	t->ring_entries++;
	return 0;
}

static void harvest_rings(struct torture *t, uint32_t j)
{
	struct tdp_vcpu *vs[MAX_VCPUS + 4];
	unsigned n = 0;
	int r;

	for (unsigned i = 0; i < t->nthreads; i++)
		if (t->threads[i].vcpu)
			vs[n++] = t->threads[i].vcpu;
	if (t->ckpt_vcpu)
		vs[n++] = t->ckpt_vcpu;
	for (unsigned k = 0; k < n; k++) {
		struct ring_take rt = {t, j, &t->ring_fetch[vs[k]->id],
				       vs[k]->id};

		r = ring_collect(vs[k], rt.fetch, ring_take, &rt);
		if (r == -EIO)
			return; /* ring_take failed the run */
		if (r) {
			fail(t, "dirty log (I7)", "tdp_vcpu_dirty_ring: %d", r);
			return;
		}
	}
	r = tdp_vm_reset_dirty_rings(t->vm, NULL);
	if (r)
		fail(t, "dirty log (I7)", "tdp_vm_reset_dirty_rings: %d", r);
}

static void harvest_op(struct torture *t, struct thread *th)
{
	uint64_t slot_pages = t->slot_size / PAGE,
		 words = (slot_pages + 63) / 64;
	uint32_t j;

	if (t->log_mode == LOG_OFF)
		return;
	j = atomic_fetch_add(&t->h_started, 1) + 1;
	if (log_mode_ring(t->log_mode))
		harvest_rings(t, j);
	/* the bitmaps (with rings: what no vCPU wrote, overflows) */
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
					uint64_t q =
						first + w * 64 +
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
			struct tdp_translation tr = {0};
			char log[512];
			int tr_r =
				tdp_vm_translate(t->vm, 0, page_gpa(t, p), &tr);

			describe_log(t, p, log, sizeof(log));
			fail(t, "dirty log (I7)",
			     "page %" PRIu64 " (gpa %#" PRIx64 ") was written "
			     "after harvest %u and before harvest %u began, "
			     "but no harvest since reported it (last report: "
			     "harvest %u; now in as0: %d, D %d, W %d); recent "
			     "operations on the page: %s",
			     p, page_gpa(t, p), s, c + 1, t->reported[p], tr_r,
			     tr.dirty, !!(tr.prot & TDP_PROT_WRITE), log);
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
	unsigned flags = kind == 0   ? TDP_AGE_TEST_ONLY
			 : kind == 1 ? 0
				     : TDP_AGE_FLUSH;
	unsigned resets = atomic_load(&t->resets_done);
	uint32_t k;
	int r;

	/* the region stays mapped (no munmap) while it is aged */
	pthread_rwlock_rdlock(&t->regions[page_region(first)].lock);
	k = flags == TDP_AGE_FLUSH ? atomic_fetch_add(&t->a_started, 1) + 1 : 0;
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
				struct tdp_translation tr[2] = {0};
				int tres[2] = {-1, -1};
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
				     "last %u) reported it old (access %u..%u; "
				     "now as0 %d A%d size "
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
		     first + n - 1, to_private ? "private" : "shared", r,
		     strerror(-r));
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

/* --nx: an NX huge page recovery pass with a ratio of 1 to 8, racing
 * the vCPUs' faults and fetches; it never fails.  What it zaps is the NX
 * oracle's business (no executable huge leaf appears) and the content
 * oracles' (the vCPUs fault again and read what they wrote). */
static void nx_recover_op(struct torture *t, struct thread *th)
{
	unsigned ratio = 1 + (unsigned)(cli_rand(&th->seed) % 8);
	int r = tdp_vm_recover_nx_huge_pages(t->vm, ratio, NULL);

	if (r)
		fail(t, "access result", "tdp_vm_recover_nx_huge_pages: %d",
		     r);
}

static void track_op(struct torture *t, struct thread *th, enum op op)
{
	if (op == OP_HARVEST)
		harvest_op(t, th);
	else if (op == OP_CONVERT)
		convert_op(t, th);
	else if (op == OP_NX_RECOVER)
		nx_recover_op(t, th);
	else
		age_op(t, th);
}

/* ------------------------------------------------------------------ */
/* Threads                                                             */
/* ------------------------------------------------------------------ */

static const enum op kind_first[T_KINDS] = {OP_READ, OP_MIGRATE, OP_ZAP,
					    OP_SLOT_DELETE, OP_HARVEST};
static const enum op kind_end[T_KINDS] = {OP_MIGRATE, OP_ZAP, OP_SLOT_DELETE,
					  OP_HARVEST, OP_COUNT};

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

void *thread_main(void *arg)
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
			usleep(th->kind == T_SLOTS   ? 500
			       : th->kind == T_TRACK ? 200
						     : 100);
		}
		th->ops[op]++;
		atomic_fetch_add(&th->progress, 1);
	}
	return NULL;
}
