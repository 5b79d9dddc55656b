/* SPDX-License-Identifier: MIT */
/*
 * host.h - the host memory backend as the VM side sees it.
 *
 * The host owns host-physical frames and a host virtual address space (hva
 * -> pfn with folio sizes 4 KiB / 2 MiB / 1 GiB).  The embedded backend
 * (pool.c) keeps all frames in one large reservation, so the frame of pfn
 * N lives at host_frame_base(h) + N * 4096 for all of the host's life.
 *
 * Locking:
 *  - The host's mmap lock (a writer-preferring rwlock inside the host)
 *    serialises every operation that changes hva -> pfn (munmap, mprotect,
 *    migrate, swap-out, split, fault-in).  host_gup() and tdp_host_read/
 *    write take it for read (for write only to populate a page).
 *  - Notifier callbacks run with the mmap lock held for WRITE.  They may
 *    take a VM's mmu_lock and wait for vCPUs to acknowledge TLB flushes.
 *    Lock order is therefore: host mmap lock -> VM mmu_lock.  Code that
 *    holds an mmu_lock must never call into the host (host_gup, host_put
 *    are called by the fault path before/after, never under, mmu_lock).
 *
 * Lifetime of frames:
 *  - Each mapped 4 KiB page of an hva range holds one reference on its
 *    frame; a huge folio is one unit: its head frame (first pfn) carries
 *    the references of the whole folio (one for the mapping).
 *  - host_gup() takes one extra reference on the folio's head (ref_pfn)
 *    and host_put_frame() drops it.  A frame is freed when its count
 *    reaches zero; freed frames are filled with HOST_POISON_WORD.
 *  - An operation that makes frames unreachable through an hva calls every
 *    notifier's invalidate_start() before it changes the mapping and
 *    invalidate_end() after; frames are freed only after invalidate_start
 *    has returned, so a VM that honours the protocol never reads a freed
 *    frame.
 */
#ifndef TDP_HOST_HOST_H
#define TDP_HOST_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include "tdpmmu.h"

#define HOST_PAGE_SHIFT 12
#define HOST_ORDER_4K 0u
#define HOST_ORDER_2M 9u
#define HOST_ORDER_1G 18u
/* Freed frames are filled with this 64-bit word. */
#define HOST_POISON_WORD 0x6b6b5a5adeadf00dull

struct tdp_host_notifier;

struct tdp_host_notifier_ops {
	/* [start, end) is an hva range, page aligned.  Called with the host
	 * mmap lock held for write, before the mapping of the range changes.
	 * When it returns, no VM mapping of the range may be usable. */
	void (*invalidate_start)(struct tdp_host_notifier *n, uint64_t start,
				 uint64_t end);
	/* Called after the mapping changed, still under the mmap lock. */
	void (*invalidate_end)(struct tdp_host_notifier *n, uint64_t start,
			       uint64_t end);
};

struct tdp_host_notifier {
	const struct tdp_host_notifier_ops *ops;
	struct tdp_host_notifier *next; /* owned by the host */
};

/* Subscribe / unsubscribe.  Both take the mmap lock for write, so when
 * unregister returns no callback of @n is running or will run. */
void host_notifier_register(struct tdp_host *h, struct tdp_host_notifier *n);
void host_notifier_unregister(struct tdp_host *h, struct tdp_host_notifier *n);

struct host_gup {
	uint64_t pfn;	  /* the 4 KiB frame that backs the hva */
	uint64_t ref_pfn; /* the frame holding the reference; for host_put_frame */
	unsigned order;	  /* host mapping level of the folio: 0, 9 or 18 */
	bool writable;	  /* the mapping allows writes */
	bool executable;  /* the mapping allows instruction fetch */
};

/*
 * host_gup - look up (faulting in: allocate or swap in) the frame that
 * backs @hva and take a reference on it.  @write: the caller wants to
 * write; fails if the mapping is not writable.
 * Returns 0, -EFAULT (not mapped, or prot lacks READ, or lacks WRITE when
 * @write), or -ENOMEM.  Takes the mmap lock (read; write to populate).
 */
int host_gup(struct tdp_host *h, uint64_t hva, bool write,
	     struct host_gup *out);

/* Drop the reference host_gup() took (pass out->ref_pfn).  Lock-free. */
void host_put_frame(struct tdp_host *h, uint64_t ref_pfn);

/* Base of the frame pool: frame pfn lives at base + (pfn << 12). */
uint8_t *host_frame_base(struct tdp_host *h);

/*
 * host_lookup - without faulting anything in, report what backs @hva now.
 * Returns 0 and fills pfn/order/prot if the page is populated; -ENOENT if
 * it is mapped but not populated (never touched or swapped out); -EFAULT if
 * not mapped.  Takes the mmap lock for read.  Used by the audit.
 */
int host_lookup(struct tdp_host *h, uint64_t hva, uint64_t *pfn,
		unsigned *order, unsigned *prot);

/* true if every page of [hva, hva+len) is mapped (any prot).  Read lock. */
bool host_range_mapped(struct tdp_host *h, uint64_t hva, uint64_t len);

/* Test hook: when set, called by every host operation after
 * invalidate_start returned and before the mapping changes. */
void host_set_test_hook(struct tdp_host *h,
			void (*fn)(void *arg, uint64_t start, uint64_t end),
			void *arg);

#endif
