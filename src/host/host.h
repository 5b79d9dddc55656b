/* SPDX-License-Identifier: MIT */
/*
 * host.h - the host memory backend as the VM side sees it.
 *
 * The host owns host-physical frames and a host virtual address space (hva
 * -> pfn with folio sizes 4 KiB / 2 MiB / 1 GiB).  The embedded backend
 * (pool*.c) keeps all frames in one large reservation, so the frame of pfn
 * N lives at host_frame_base(h) + N * 4096 for all of the host's life.
 *
 * Locking:
 *  - The host's mmap lock (a writer-preferring rwlock inside the host)
 *    serialises every operation that changes hva -> pfn (munmap, mprotect,
 *    migrate, swap-out, split, punch-hole, fault-in).  host_gup() and
 *    tdp_host_read/write take it for read (for write only to populate a
 *    page).
 *  - Notifier callbacks run with the mmap lock held for WRITE, except
 *    age(), which runs with it held for READ (tdp_host_age).  They may
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
 *    invalidate_end() after (for guest-private pages also, or for
 *    tdp_host_punch_hole only, invalidate_private_start/end: see the ops);
 *    frames are freed only after the start callbacks have returned, so a
 *    VM that honours the protocol never reads a freed frame.
 *
 * Dirty state (Linux reclaim's use of PG_dirty and the swap cache):
 *  - Every present 4 KiB page is CLEAN or DIRTY.  A page swapped back in
 *    keeps its swap copy (the "retained copy", at most one per page) and is
 *    clean: its content equals the copy.  It becomes dirty when
 *    tdp_host_write() writes it, when host_gup(write=true) returns it, or
 *    when host_mark_dirty() names its frame.  Newly allocated (zero-filled)
 *    pages have no copy and are dirty; migration keeps state and copy.
 *  - tdp_host_swap_out() decides after invalidate_start has returned: a
 *    clean page's frame is dropped WITHOUT copying and its retained copy
 *    becomes the swapped page (stat swap_out_clean); a dirty page is copied
 *    as before.  So a write that bypasses the host (a guest store through
 *    a writable VM mapping) survives reclaim only if the VM reports it:
 *    a VM that removes or write-protects a mapping whose Dirty bit is set
 *    must call host_mark_dirty() (KVM's kvm_set_pfn_dirty) on its frames,
 *    at the latest from inside invalidate_start.  A lost Dirty bit loses
 *    the guest's data at the next swap-out.
 *  - Frames are marked dirty lock-free (one bit per frame); the copies are
 *    managed under the mmap lock.
 *
 * Accessed state (Linux's PG_referenced / page aging):
 *  - Every present 4 KiB page is OLD or YOUNG on the host side.  It becomes
 *    young when tdp_host_read() or tdp_host_write() touches it, or when
 *    host_mark_accessed() names its frame; tdp_host_age() reports it and,
 *    unless TDP_AGE_TEST_ONLY, makes it old again.  A page is also young if
 *    some VM's mapping of it has its Accessed bit set: tdp_host_age() asks
 *    every VM through the age() notifier op.  So a VM that removes a
 *    mapping whose Accessed bit is set should call host_mark_accessed()
 *    (KVM's kvm_set_pfn_accessed), or the access goes unseen by the next
 *    aging (a lost Accessed bit only makes reclaim pick a worse page; no
 *    data is lost).
 *  - The state is one bit per 4 KiB frame, also inside huge folios.  It is
 *    cleared when a folio is allocated and when it is freed (so newly
 *    populated and swapped-in pages start old unless the access that
 *    faulted them in was a host read/write), moves with the page on
 *    migration and stays per frame when a huge folio is split.  Swapped
 *    out pages are old on the host side.  host_gup() does not mark: a
 *    guest access is recorded by the Accessed bit of the VM's mapping.
 */
#ifndef TDP_HOST_HOST_H
#define TDP_HOST_HOST_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tdpmmu.h"

#define HOST_PAGE_SHIFT 12
#define HOST_ORDER_4K	0u
#define HOST_ORDER_2M	9u
#define HOST_ORDER_1G	18u
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
	/* Optional (NULL: the VM is skipped).  Page aging (tdp_host_age):
	 * [start, end) is an hva range, page aligned.  OR into @young, where
	 * bit i (bit i % 64 of word i / 64) stands for the page at
	 * start + i * 4096, the pages that the VM's mappings report young
	 * (Accessed bit set), and clear that Accessed state unless @flags has
	 * TDP_AGE_TEST_ONLY; with TDP_AGE_FLUSH, flush the VM's vCPU TLBs
	 * after clearing.  Never clear a bit of @young, never set one at or
	 * beyond (end - start) / 4096, never lose a Dirty bit.  Called with
	 * the host mmap lock held for READ, so the mapping of the range
	 * cannot change during the call, but other age() calls, host_gup()
	 * and tdp_host_read/write may run concurrently.  Must not take the
	 * mmap lock (no host_gup, no tdp_host_* calls that take it);
	 * host_mark_dirty/host_mark_accessed are fine. */
	void (*age)(struct tdp_host_notifier *n, uint64_t start, uint64_t end,
		    unsigned flags, uint64_t *young);
	/* Optional (NULL: skipped).  The private invalidation path: the
	 * guest-private pages (TDP_MAP_GUEST_PRIVATE) of [start, end) are
	 * about to lose their frames (tdp_host_punch_hole, or
	 * tdp_host_munmap of a range that includes guest-private pages).
	 * Same locking and contract as invalidate_start/end.  munmap calls,
	 * in order: invalidate_start, invalidate_private_start, (change),
	 * invalidate_private_end, invalidate_end, all over the whole range;
	 * punch_hole calls only the private pair.  No other host operation
	 * calls them (the others refuse guest-private memory with -EPERM). */
	void (*invalidate_private_start)(struct tdp_host_notifier *n,
					 uint64_t start, uint64_t end);
	void (*invalidate_private_end)(struct tdp_host_notifier *n,
				       uint64_t start, uint64_t end);
};

struct tdp_host_notifier {
	const struct tdp_host_notifier_ops *ops;
	struct tdp_host_notifier *next; /* owned by the host */
};

struct host_gup {
	uint64_t pfn;	  /* the 4 KiB frame that backs the hva */
	uint64_t ref_pfn; /* the frame holding the reference; for host_put_frame
			   */
	unsigned order;	  /* host mapping level of the folio: 0, 9 or 18 */
	bool writable;	  /* the mapping allows writes */
	bool executable;  /* the mapping allows instruction fetch */
	bool guest_private; /* the mapping is TDP_MAP_GUEST_PRIVATE */
};

/*
 * The backend interface: what the VM side needs of a host, one const
 * table per backend.  A backend's host begins with struct tdp_host, whose
 * ops point at its table; the VM calls only the host_* wrappers below.
 * The embedded pool (pool*.c, pool_backend_ops) implements it; the
 * process backend (proc.c) is the pool with a mirror (pool_internal.h).
 * The contract of each operation is the comment of its wrapper.
 */
struct host_backend_ops {
	const char *name;
	/* the public API (tdpmmu.h tdp_host_*), dispatched by host.c; the
	 * contract of each is its comment there */
	void (*destroy)(struct tdp_host *h);
	void (*get_stats)(struct tdp_host *h, struct tdp_host_stats *out);
	int (*mmap)(struct tdp_host *h, uint64_t len, unsigned prot,
		    uint64_t folio_size, unsigned flags, uint64_t *hva);
	int (*munmap)(struct tdp_host *h, uint64_t hva, uint64_t len);
	int (*punch_hole)(struct tdp_host *h, uint64_t hva, uint64_t len);
	int (*mprotect)(struct tdp_host *h, uint64_t hva, uint64_t len,
			unsigned prot);
	int (*migrate)(struct tdp_host *h, uint64_t hva, uint64_t len);
	int (*swap_out)(struct tdp_host *h, uint64_t hva, uint64_t len);
	int (*split)(struct tdp_host *h, uint64_t hva, uint64_t len);
	int (*set_missing)(struct tdp_host *h, uint64_t hva, uint64_t len,
			   tdp_host_fill_fn fn, void *arg);
	int (*read)(struct tdp_host *h, uint64_t hva, void *buf, uint64_t len);
	int (*write)(struct tdp_host *h, uint64_t hva, const void *buf,
		     uint64_t len);
	int (*age)(struct tdp_host *h, uint64_t hva, uint64_t len,
		   unsigned flags, uint64_t *young);
	/* what the VM side needs */
	int (*gup)(struct tdp_host *h, uint64_t hva, bool write,
		   struct host_gup *out);
	void (*put_frame)(struct tdp_host *h, uint64_t ref_pfn);
	void (*mark_dirty)(struct tdp_host *h, uint64_t pfn, uint64_t npages);
	void (*mark_accessed)(struct tdp_host *h, uint64_t pfn,
			      uint64_t npages);
	uint8_t *(*frame_base)(struct tdp_host *h);
	int (*lookup)(struct tdp_host *h, uint64_t hva, uint64_t *pfn,
		      unsigned *order, unsigned *prot);
	int (*page_dirty)(struct tdp_host *h, uint64_t hva);
	uint64_t (*swap_cached)(struct tdp_host *h);
	bool (*range_mapped)(struct tdp_host *h, uint64_t hva, uint64_t len);
	bool (*range_private)(struct tdp_host *h, uint64_t hva, uint64_t len);
	bool (*range_has_private)(struct tdp_host *h, uint64_t hva,
				  uint64_t len);
	void (*notifier_register)(struct tdp_host *h,
				  struct tdp_host_notifier *n);
	void (*notifier_unregister)(struct tdp_host *h,
				    struct tdp_host_notifier *n);
	void (*set_inject)(struct tdp_host *h, int id);
	void (*set_test_hook)(struct tdp_host *h,
			      void (*fn)(void *arg, uint64_t start,
					 uint64_t end),
			      void *arg);
};

struct tdp_host {
	const struct host_backend_ops *ops;
};

/* The backends' constructors (tdp_host_create picks one): the embedded
 * pool (pool.c) and the process backend (proc.c, the pool with its frames
 * in a memfd and its mapping mirrored into the process). */
int pool_host_create(const struct tdp_host_config *cfg, struct tdp_host **out);
int proc_host_create(const struct tdp_host_config *cfg, struct tdp_host **out);

/* Every wrapper below refuses a NULL host as the backends did: -EINVAL,
 * false, 0, NULL, or nothing done. */

/* Subscribe / unsubscribe.  Both take the mmap lock for write, so when
 * unregister returns no callback of @n is running or will run. */
static inline void host_notifier_register(struct tdp_host *h,
					  struct tdp_host_notifier *n)
{
	if (!h)
		return;
	h->ops->notifier_register(h, n);
}
static inline void host_notifier_unregister(struct tdp_host *h,
					    struct tdp_host_notifier *n)
{
	if (!h)
		return;
	h->ops->notifier_unregister(h, n);
}

/*
 * host_gup - look up (faulting in: allocate or swap in) the frame that
 * backs @hva and take a reference on it.  @write: the caller wants to
 * write; fails if the mapping is not writable.
 * Returns 0, -EFAULT (not mapped, or prot lacks READ, or lacks WRITE when
 * @write), or -ENOMEM.  A present page whose protection allows the access
 * is found without the mmap lock (gup-fast, pool.c); otherwise takes the
 * mmap lock (read; write to populate).
 */
static inline int host_gup(struct tdp_host *h, uint64_t hva, bool write,
			   struct host_gup *out)
{
	if (!h)
		return -EINVAL;
	return h->ops->gup(h, hva, write, out);
}

/* Bug injection (inject.h) for the host's own code (gup-fast); set before
 * the host is used, like a VM's. */
static inline void host_set_inject(struct tdp_host *h, int id)
{
	if (!h)
		return;
	h->ops->set_inject(h, id);
}

/* Drop the reference host_gup() took (pass out->ref_pfn).  Lock-free. */
static inline void host_put_frame(struct tdp_host *h, uint64_t ref_pfn)
{
	if (!h)
		return;
	h->ops->put_frame(h, ref_pfn);
}

/*
 * host_mark_dirty - the VM saw a Dirty bit on a mapping of frames
 * [pfn, pfn+npages) when it removed or write-protected that mapping: mark
 * those pages dirty (KVM's kvm_set_pfn_dirty).  Called from inside
 * invalidate_start callbacks (the host's mmap lock is then held for write
 * by the calling host operation) or with no host lock held at all; must
 * not deadlock in either case.  Frames not mapped (anymore) are ignored.
 * Lock-free: atomic bit operations only.  Marks on frames that are free,
 * or freed and allocated again since, have no effect that matters (a
 * frame's bit is cleared when it is allocated and when it is freed, and a
 * newly allocated page is dirty anyway); at worst a page is written to
 * swap that did not need to be.
 */
static inline void host_mark_dirty(struct tdp_host *h, uint64_t pfn,
				   uint64_t npages)
{
	if (!h)
		return;
	h->ops->mark_dirty(h, pfn, npages);
}

/*
 * host_mark_accessed - the VM saw an Accessed bit on a mapping of frames
 * [pfn, pfn+npages) when it removed that mapping: mark those pages young
 * for the next tdp_host_age() (KVM's kvm_set_pfn_accessed).  Same rules as
 * host_mark_dirty(): callable from inside invalidate_start callbacks or
 * with no host lock held, lock-free (atomic bit operations), frames out of
 * range are ignored, and marks on frames that are free or were reallocated
 * since only make one page look young once.
 */
static inline void host_mark_accessed(struct tdp_host *h, uint64_t pfn,
				      uint64_t npages)
{
	if (!h)
		return;
	h->ops->mark_accessed(h, pfn, npages);
}

/*
 * host_page_dirty - without faulting anything in, report the reclaim state
 * of the page at @hva: 1 if it is present and dirty (swap-out must write
 * it), 0 if it is present and clean (swap-out reuses its retained copy),
 * -ENOENT if it is mapped but not present, -EFAULT if not mapped.  Takes
 * the mmap lock for read (works from notifier callbacks).  For tests and
 * audits.
 */
static inline int host_page_dirty(struct tdp_host *h, uint64_t hva)
{
	if (!h)
		return -EINVAL;
	return h->ops->page_dirty(h, hva);
}

/* Swap copies retained by present pages (the swap cache; swapped-out pages
 * are counted by tdp_host_stats.swapped_pages).  Lock-free. */
static inline uint64_t host_swap_cached(struct tdp_host *h)
{
	if (!h)
		return 0;
	return h->ops->swap_cached(h);
}

/* Base of the frame pool: frame pfn lives at base + (pfn << 12). */
static inline uint8_t *host_frame_base(struct tdp_host *h)
{
	if (!h)
		return NULL;
	return h->ops->frame_base(h);
}

/*
 * host_lookup - without faulting anything in, report what backs @hva now.
 * Returns 0 and fills pfn/order/prot if the page is populated; -ENOENT if
 * it is mapped but not populated (never touched or swapped out); -EFAULT if
 * not mapped.  Takes the mmap lock for read.  Used by the audit.
 */
static inline int host_lookup(struct tdp_host *h, uint64_t hva, uint64_t *pfn,
			      unsigned *order, unsigned *prot)
{
	if (!h)
		return -EINVAL;
	return h->ops->lookup(h, hva, pfn, order, prot);
}

/* true if every page of [hva, hva+len) is mapped (any prot).  Read lock. */
static inline bool host_range_mapped(struct tdp_host *h, uint64_t hva,
				     uint64_t len)
{
	if (!h)
		return false;
	return h->ops->range_mapped(h, hva, len);
}
/* true if every page of [hva, hva+len) is mapped TDP_MAP_GUEST_PRIVATE.
 * Read lock. */
static inline bool host_range_private(struct tdp_host *h, uint64_t hva,
				      uint64_t len)
{
	if (!h)
		return false;
	return h->ops->range_private(h, hva, len);
}
/* true if some page of [hva, hva+len) is mapped TDP_MAP_GUEST_PRIVATE.
 * Read lock. */
static inline bool host_range_has_private(struct tdp_host *h, uint64_t hva,
					  uint64_t len)
{
	if (!h)
		return false;
	return h->ops->range_has_private(h, hva, len);
}

/* Test hook: when set, called by every host operation after
 * invalidate_start returned and before the mapping changes. */
static inline void host_set_test_hook(struct tdp_host *h,
				      void (*fn)(void *arg, uint64_t start,
						 uint64_t end),
				      void *arg)
{
	if (!h)
		return;
	h->ops->set_test_hook(h, fn, arg);
}

#endif
