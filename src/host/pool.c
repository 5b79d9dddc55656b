/* SPDX-License-Identifier: MIT */
/*
 * pool.c - the embedded host: a frame pool, a host virtual address space
 * (hva -> pfn, folios of 4 KiB / 2 MiB / 1 GiB) and the operations that
 * move memory under the guest (munmap, mprotect, migrate, swap-out, split,
 * and punch-hole for guest-private memory).
 *
 * Data:
 *  - The pool is one MAP_NORESERVE reservation, 1 GiB aligned; pfn N lives
 *    at pool + N * 4096.  Frames come from the buddy allocator (buddy.c).
 *  - h->refs[pfn] is the reference count of the folio headed by pfn (tail
 *    frames of a huge folio have count 0 until the folio is split).
 *  - VMAs (start, end, folio order, prot, guest_private) live in a sorted
 *    array, looked up by binary search.  Per-page state lives in a 4-level
 *    radix tree keyed by hva (h->root, 512 entries a node, leaves of 512
 *    ptes = 2 MiB): a pte is 0 (not populated), present (pfn, folio order)
 *    or swapped (pointer to a malloc'd 4 KiB copy).  The tree only has
 *    entries inside VMAs.
 *  - Dirty state, per frame (so that host_mark_dirty() needs no hva):
 *    h->swapc[pfn] is the retained swap copy ("swap cache") of the page
 *    that frame pfn backs, or NULL; h->fdirty is a bitmap with one bit per
 *    frame, set when the page may differ from its retained copy.  A present
 *    page is CLEAN iff its frame has a retained copy and its dirty bit is
 *    clear; otherwise it is DIRTY.  Swap-in stores the copy in swapc[] and
 *    clears the bit; tdp_host_write, host_gup(write) and host_mark_dirty
 *    set it; migration moves both to the new frame.  A dirty page's copy
 *    is stale but kept as the buffer of its next swap-out, so there is at
 *    most one copy per page.  Only order-0 folios ever have a retained copy
 *    (swap-in allocates order-0 frames; huge folios are born zero-filled
 *    and dirty, and their tails start without copies when split).
 *  - Accessed state, per frame (so that host_mark_accessed() needs no hva):
 *    h->faccessed is a bitmap with one bit per 4 KiB frame, huge folios
 *    included (each frame of a folio has its own bit), set when the page
 *    was accessed since it was last aged.  tdp_host_read/write set it for
 *    every page they touch, host_mark_accessed sets it for the frames a VM
 *    names; tdp_host_age reports it (young) and clears it unless
 *    TDP_AGE_TEST_ONLY.  Like the dirty bits it is cleared when a folio is
 *    allocated and when it is freed, so a swapped-out page is old and a
 *    swapped-in or newly populated one starts old (the host read/write that
 *    faulted it in marks it right after); migration ORs the bits of the old
 *    folio into the new one frame by frame (for every order, unlike dirty
 *    bits); splitting keeps them per frame.
 *  - Guest-private memory (TDP_MAP_GUEST_PRIVATE, the VMA's guest_private
 *    flag, fixed for the VMA's life): populated and pinned like any other
 *    (host_gup, host_lookup), but the host itself never touches it.  Every
 *    operation but munmap and punch_hole refuses a range that has a page
 *    of it (-EPERM, after the argument and "mapped" checks, before
 *    anything changes), so its pages are never swapped, migrated or split
 *    except by punch_hole's and munmap's partial splits, and never have a
 *    swap pte or a retained copy (punch_cb asserts it).
 *
 * Locking:
 *  - h->mmap_lock, a writer-preferring big-reader lock (brlock.h: its
 *    read side writes only the reader's slot), protects the VMA array, the
 *    radix tree, the pte values, the notifier list and the test hook.
 *    Lookups (host_gup when gup-fast falls back, host_lookup, the
 *    host_range_* queries, the copy of tdp_host_read/write) take it for
 *    read.
 *  - gup-fast (host_gup's common path) takes no lock: it walks the radix
 *    tree inside an RCU read section with atomic loads.  So every pte
 *    store is atomic (pte_set), a node is published with a release store
 *    after it is zeroed, and an unlinked node is freed after a grace
 *    period (tdp_call_rcu).  Present ptes carry their VMA's protection
 *    and guest_private flag (pte_mk_present; mprotect rewrites them), so
 *    gup-fast needs no VMA.  See gup_fast() for why its pin is as good as
 *    the locked one.  Every operation
 *    that changes hva -> pfn (munmap, mprotect, migrate, swap-out, split,
 *    punch-hole, populate) holds it for write from start to end, notifier
 *    calls included.  h->wr_owner records the writer so that host_lookup,
 *    the host_range_* queries and tdp_host_age work from inside notifier
 *    callbacks and the test hook (they then run under the caller's write
 *    lock); any call that would have to take the lock again from there
 *    fails with -EDEADLK.
 *  - The buddy allocator has its own leaf mutex; frame reference counts and
 *    the statistics are atomics.  host_put_frame() takes no host lock.
 *  - h->swapc[] is read and written only under mmap_lock (written only
 *    with it held for write, so readers under the read lock are safe).
 *  - h->fdirty and h->faccessed bits are only changed with atomic RMW ops
 *    (set, test-and-clear, or clear of a partial word) or atomic stores of
 *    whole words that belong to one folio being allocated or freed.
 *    host_mark_dirty() takes no lock at all, so it may be called under the
 *    write lock from invalidate_start or with no host lock held.  Setting a bit needs no lock because
 *    reclaim reads it only after invalidate_start has returned, and every
 *    legitimate mark (by a VM that still maps the frame, or the host's own
 *    writers under the mmap lock) happens before that.  host_mark_accessed()
 *    is lock-free the same way.  tdp_host_age holds the mmap lock for
 *    read: the hva -> pfn mapping of the range stays fixed while it tests
 *    and clears the accessed bits and while the notifiers' age ops run,
 *    but accesses (tdp_host_read/write, guests) go on; an access that
 *    races with the clear is seen by this aging or the next.
 *
 * Lifetime of frames:
 *  - A mapping holds one reference on the head of each folio it maps; a
 *    host_gup() pin holds one more until host_put_frame().
 *  - An operation that changes the mapping of [start, end) calls every
 *    notifier's invalidate_start(), then the test hook, then changes the
 *    ptes (copying frame contents only now: guests may write until
 *    invalidate_start returns), then invalidate_end(), and only then drops
 *    the mapping references of the old frames; munmap, like punch_hole,
 *    drops them as it clears the ptes, before invalidate_end.  Every pte
 *    change is inside the invalidation: gup-fast reads ptes, so a pte
 *    changed after invalidate_end could be pinned by a fault that has
 *    nothing left to retry for.
 *  - The private path (host.h): munmap of a range with a guest-private
 *    page calls invalidate_private_start() right after invalidate_start()
 *    and invalidate_private_end() right before invalidate_end(), all over
 *    the same range.  punch_hole calls only the private pair, with the
 *    test hook after the start; its VMA stays, so clearing the ptes is the
 *    change, and like guest_memfd's truncation it drops the mapping
 *    references as it clears them, before invalidate_private_end().
 *  - When a head's count reaches 0 the whole folio is filled with
 *    HOST_POISON_WORD, its dirty and accessed bits are cleared and it is
 *    returned to the buddy allocator, by whoever dropped the last reference
 *    (with or without the mmap lock).  frame_alloc() clears the bits
 *    again.
 *  - Retained copies live from swap-in until the page is swapped out again
 *    (the copy becomes the swapped pte's, rewritten first if dirty), its
 *    frame is unmapped (freed before the mapping reference is dropped, so a
 *    frame that outlives its mapping through a pin has none) or the host
 *    is destroyed.  swapc[pfn] is therefore NULL whenever pfn is free.
 *  - Splitting keeps frames and contents: the head keeps its count, each
 *    tail frame becomes an order-0 folio with count 1 (its mapping ref).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "assert.h"
#include "brlock.h"
#include "host/buddy.h"
#include "inject.h"
#include "rcu.h"
#include "host/host.h"
#include "wordcopy.h"

#define PAGE_SIZE_   (1ull << HOST_PAGE_SHIFT)
#define HVA_LIMIT    (1ull << 47)
#define HVA_FIRST    (1ull << 30)
#define POOL_ALIGN   (1ull << 30)
#define POOL_MAX     (1ull << 40)
#define POOL_DEFAULT (4ull << 30)
#define PROT_ALL     (TDP_PROT_READ | TDP_PROT_WRITE | TDP_PROT_EXEC)

#define ALIGN_DOWN(x, a) ((x) & ~((a)-1))
#define ALIGN_UP(x, a)	 (((x) + (a)-1) & ~((a)-1))

/* pte encoding */
#define PTE_PRESENT	1ull
#define PTE_SWAP	2ull
#define PTE_ORDER_SHIFT 2
#define PTE_ORDER_MASK	0x1full
/* present ptes only: the VMA's protection and guest_private flag, kept in
 * the pte so that the lockless lookup (gup_fast) needs no VMA */
#define PTE_PROT_SHIFT 7 /* TDP_PROT_READ/WRITE/EXEC, 3 bits */
#define PTE_PRIVATE    (1ull << 10)
#define PTE_ATTRS      ((7ull << PTE_PROT_SHIFT) | PTE_PRIVATE)

/* radix tree: 4 levels of 512, covering 2^48 bytes of hva */
#define RADIX_BITS	 9
#define RADIX_FANOUT	 (1u << RADIX_BITS)
#define RADIX_LEVELS	 4
#define RADIX_LEAF_SHIFT (HOST_PAGE_SHIFT + RADIX_BITS) /* 2 MiB */

struct rnode {
	union {
		struct rnode *child[RADIX_FANOUT]; /* atomic */
		uint64_t pte[RADIX_FANOUT];	   /* atomic */
	};
	struct rcu_head rcu; /* freed after a grace period (gup_fast) */
};

struct host_vma {
	uint64_t start;
	uint64_t end;
	unsigned order; /* folio order: 0, 9 or 18 */
	unsigned prot;
	bool guest_private; /* TDP_MAP_GUEST_PRIVATE */
};

struct host_stats {
	uint64_t frames_used;
	uint64_t swapped_pages;
	uint64_t migrations;
	uint64_t swap_outs;
	uint64_t swap_ins;
	uint64_t splits;
	uint64_t notifier_calls;
	uint64_t swap_out_clean;
	uint64_t swap_cached; /* retained copies (non-NULL swapc[]) */
};

struct tdp_host {
	struct tdp_brlock mmap_lock;
	pthread_t wr_owner; /* atomic; 0 when not write-locked */

	uint8_t *pool;
	uint64_t pool_bytes;
	uint64_t nr_frames;
	uint32_t *refs;	  /* atomic, per frame */
	uint64_t *fdirty; /* atomic bitmap, one dirty bit per frame */
	uint64_t *faccessed; /* atomic bitmap, one accessed bit per frame */
	void **swapc;	  /* per frame: retained swap copy; under mmap_lock */
	struct buddy buddy;

	/* under mmap_lock */
	struct host_vma *vmas;
	size_t nr_vmas;
	size_t cap_vmas;
	uint64_t mmap_cursor;
	struct rnode *root;
	struct tdp_host_notifier *notifiers;
	void (*hook_fn)(void *arg, uint64_t start, uint64_t end);
	void *hook_arg;

	struct host_stats st; /* atomics */
	int inject; /* tdp_host_set_inject (inject.h): gup-fast's bug */
	/* one past the highest frame ever allocated (atomic, only grows):
	 * tdp_host_get_stats sums the counts below it */
	uint64_t frames_hwm;
	/* mapping references per reader slot (percpu.h): a slot's value
	 * may go negative, the sum is exact when no update is in flight.
	 * Pins are not counted here: they are the rest of the frames'
	 * reference counts (tdp_host_get_stats), so a pin costs no locked
	 * instruction beyond the frame's own count. */
	struct {
		int64_t frame_refs;
	} __attribute__((aligned(TDP_CACHE_LINE))) slot_st[TDP_NR_SLOTS];
};

#define STAT_ADD(h, f, v) __atomic_add_fetch(&(h)->st.f, (v), __ATOMIC_RELAXED)
#define STAT_SUB(h, f, v) __atomic_sub_fetch(&(h)->st.f, (v), __ATOMIC_RELAXED)
#define STAT_GET(h, f)	  __atomic_load_n(&(h)->st.f, __ATOMIC_RELAXED)
#define SLOT_ADD(h, f, v)                                                      \
	__atomic_add_fetch(&(h)->slot_st[tdp_this_slot()].f, (int64_t)(v),    \
			   __ATOMIC_RELAXED)

static uint64_t slot_sum(const struct tdp_host *h, size_t off)
{
	int64_t sum = 0;

	for (unsigned i = 0; i < TDP_NR_SLOTS; i++)
		sum += __atomic_load_n(
			(const int64_t *)((const char *)&h->slot_st[i] + off),
			__ATOMIC_RELAXED);
	return (uint64_t)sum;
}
#define SLOT_GET(h, f) slot_sum((h), offsetof(__typeof__((h)->slot_st[0]), f))

/* ------------------------------------------------------------------ */
/* small helpers                                                       */
/* ------------------------------------------------------------------ */

static uint64_t folio_bytes(unsigned order)
{
	return PAGE_SIZE_ << order;
}

static int folio_order_of(uint64_t folio_size)
{
	if (folio_size == TDP_PAGE_SIZE)
		return HOST_ORDER_4K;
	if (folio_size == TDP_HUGE_2M)
		return HOST_ORDER_2M;
	if (folio_size == TDP_HUGE_1G)
		return HOST_ORDER_1G;
	return -1;
}

static uint8_t *frame_ptr(struct tdp_host *h, uint64_t pfn)
{
	return h->pool + (pfn << HOST_PAGE_SHIFT);
}

static uint64_t pte_mk_present(uint64_t pfn, unsigned order, uint64_t attrs)
{
	return (pfn << HOST_PAGE_SHIFT) | ((uint64_t)order << PTE_ORDER_SHIFT) |
	       (attrs & PTE_ATTRS) | PTE_PRESENT;
}

/* The pte attributes of the pages of @v */
static uint64_t vma_attrs(const struct host_vma *v)
{
	return ((uint64_t)v->prot << PTE_PROT_SHIFT) |
	       (v->guest_private ? PTE_PRIVATE : 0);
}

static unsigned pte_prot(uint64_t e)
{
	return (unsigned)(e >> PTE_PROT_SHIFT) & 7;
}

/* Every pte store: the lockless lookup reads ptes concurrently. */
static void pte_set(uint64_t *pte, uint64_t e)
{
	__atomic_store_n(pte, e, __ATOMIC_RELEASE);
}

static uint64_t pte_mk_swap(void *copy)
{
	return (uint64_t)(uintptr_t)copy | PTE_SWAP;
}

static bool pte_present(uint64_t e)
{
	return e & PTE_PRESENT;
}

static bool pte_swapped(uint64_t e)
{
	return e & PTE_SWAP;
}

static uint64_t pte_pfn(uint64_t e)
{
	return e >> HOST_PAGE_SHIFT;
}

static unsigned pte_order(uint64_t e)
{
	return (e >> PTE_ORDER_SHIFT) & PTE_ORDER_MASK;
}

static void *pte_swap_copy(uint64_t e)
{
	return (void *)(uintptr_t)(e & ~PTE_SWAP);
}

/* pfn of the head of the folio that maps the page at @hva through @e */
static uint64_t pte_head_pfn(uint64_t e, uint64_t hva)
{
	uint64_t fs = ALIGN_DOWN(hva, folio_bytes(pte_order(e)));

	return pte_pfn(e) - ((hva - fs) >> HOST_PAGE_SHIFT);
}

/* -EINVAL for a bad page range of munmap & co, else 0 */
static int check_page_range(struct tdp_host *h, uint64_t hva, uint64_t len)
{
	if (!h || !len || (hva | len) & (PAGE_SIZE_ - 1))
		return -EINVAL;
	if (len > UINT64_MAX - hva)
		return -EINVAL;
	return 0;
}

/* ------------------------------------------------------------------ */
/* mmap lock                                                           */
/* ------------------------------------------------------------------ */

static bool in_write_section(struct tdp_host *h)
{
	pthread_t owner = __atomic_load_n(&h->wr_owner, __ATOMIC_RELAXED);

	return owner && pthread_equal(owner, pthread_self());
}

static int mmap_write_lock(struct tdp_host *h)
{
	if (in_write_section(h))
		return -EDEADLK;
	tdp_brlock_write_lock(&h->mmap_lock);
	__atomic_store_n(&h->wr_owner, pthread_self(), __ATOMIC_RELAXED);
	return 0;
}

static void mmap_write_unlock(struct tdp_host *h)
{
	__atomic_store_n(&h->wr_owner, (pthread_t)0, __ATOMIC_RELAXED);
	tdp_brlock_write_unlock(&h->mmap_lock);
}

/* Returns the brlock slot to give back, or -1 if the caller already holds
 * the lock for write (inside a notifier callback or the test hook):
 * nothing is taken then. */
static int mmap_read_lock(struct tdp_host *h)
{
	if (in_write_section(h))
		return -1;
	return (int)tdp_brlock_read_lock(&h->mmap_lock);
}

static void mmap_read_unlock(struct tdp_host *h, int taken)
{
	if (taken >= 0)
		tdp_brlock_read_unlock(&h->mmap_lock, (unsigned)taken);
}

/* ------------------------------------------------------------------ */
/* per-frame bitmaps: dirty and accessed bits                          */
/* ------------------------------------------------------------------ */

static uint64_t bits_mask(uint64_t first, uint64_t n)
{
	return (n >= 64 ? ~0ull : (1ull << n) - 1) << first;
}

/* Set the bits of frames [pfn, pfn + n), all < nr_frames, in @map. */
static void fbits_set(uint64_t *map, uint64_t pfn, uint64_t n)
{
	/* whole words (a huge folio: 4096 of them for 1 GiB), the common
	 * case already set: a tight loop of plain-speed atomic loads */
	if (!(pfn & 63) && n >= 64) {
		uint64_t *w = &map[pfn >> 6], *e = w + (n >> 6);

		for (; w < e; w++)
			if (__atomic_load_n(w, __ATOMIC_RELAXED) != ~0ull)
				__atomic_fetch_or(w, ~0ull, __ATOMIC_RELAXED);
		pfn += n & ~63ull;
		n &= 63;
	}
	while (n) {
		uint64_t bit = pfn & 63;
		uint64_t c = 64 - bit < n ? 64 - bit : n;

		uint64_t m = bits_mask(bit, c);

		/* already set: no locked instruction (the common case on the
		 * fault path); a racing clear is ordered after this set */
		if ((__atomic_load_n(&map[pfn >> 6], __ATOMIC_RELAXED) & m) != m)
			__atomic_fetch_or(&map[pfn >> 6], m, __ATOMIC_RELAXED);
		pfn += c;
		n -= c;
	}
}

static bool fbits_test(const uint64_t *map, uint64_t pfn)
{
	return __atomic_load_n(&map[pfn >> 6], __ATOMIC_RELAXED) &
	       (1ull << (pfn & 63));
}

/* Clear the bit of frame @pfn in @map; returns whether it was set. */
static bool fbits_test_and_clear(uint64_t *map, uint64_t pfn)
{
	uint64_t bit = 1ull << (pfn & 63);

	/* a plain load first: aging mostly finds old pages, and a clear
	 * would dirty the bitmap's cache line for nothing */
	if (!(__atomic_load_n(&map[pfn >> 6], __ATOMIC_RELAXED) & bit))
		return false;
	return __atomic_fetch_and(&map[pfn >> 6], ~bit, __ATOMIC_RELAXED) &
	       bit;
}

/* Clear the bits of the folio [pfn, pfn + 2^order) in @map, naturally
 * aligned: whole words belong to it alone. */
static void fbits_clear_folio(uint64_t *map, uint64_t pfn, unsigned order)
{
	uint64_t n = 1ull << order;

	if (n < 64) {
		__atomic_fetch_and(&map[pfn >> 6], ~bits_mask(pfn & 63, n),
				   __ATOMIC_RELAXED);
		return;
	}
	/* skip zero words: an untouched bitmap page stays untouched */
	for (uint64_t w = pfn >> 6; w < (pfn + n) >> 6; w++)
		if (__atomic_load_n(&map[w], __ATOMIC_RELAXED))
			__atomic_store_n(&map[w], 0, __ATOMIC_RELAXED);
}

/* OR the bits of folio [from, from + 2^order) into those of the folio
 * [to, to + 2^order) (both naturally aligned), frame by frame. */
static void fbits_copy_folio(uint64_t *map, uint64_t from, uint64_t to,
			     unsigned order)
{
	uint64_t n = 1ull << order;

	if (n < 64) {
		uint64_t v = __atomic_load_n(&map[from >> 6], __ATOMIC_RELAXED) >>
			     (from & 63) & bits_mask(0, n);

		if (v)
			__atomic_fetch_or(&map[to >> 6], v << (to & 63),
					  __ATOMIC_RELAXED);
		return;
	}
	for (uint64_t w = 0; w < n >> 6; w++) {
		uint64_t v = __atomic_load_n(&map[(from >> 6) + w],
					     __ATOMIC_RELAXED);

		if (v)
			__atomic_fetch_or(&map[(to >> 6) + w], v,
					  __ATOMIC_RELAXED);
	}
}

static void frame_set_dirty(struct tdp_host *h, uint64_t pfn, uint64_t n)
{
	fbits_set(h->fdirty, pfn, n);
}

static bool frame_test_dirty(struct tdp_host *h, uint64_t pfn)
{
	return fbits_test(h->fdirty, pfn);
}

static void frame_set_accessed(struct tdp_host *h, uint64_t pfn, uint64_t n)
{
	fbits_set(h->faccessed, pfn, n);
}

/* A folio is born and dies with all its dirty and accessed bits clear. */
static void frame_clear_state(struct tdp_host *h, uint64_t pfn, unsigned order)
{
	fbits_clear_folio(h->fdirty, pfn, order);
	fbits_clear_folio(h->faccessed, pfn, order);
}

/* ------------------------------------------------------------------ */
/* frames and references                                               */
/* ------------------------------------------------------------------ */

static void frame_zero(struct tdp_host *h, uint64_t pfn, unsigned order)
{
	uint8_t *p = frame_ptr(h, pfn);
	uint64_t n = folio_bytes(order);

	/* huge blocks: hand the memory back, it reads as zero afterwards */
	if (order >= HOST_ORDER_2M && !madvise(p, n, MADV_DONTNEED))
		return;
	wordfill_frame(p, 0, n);
}

/* Allocate a folio with one reference.  Returns its pfn or -ENOMEM. */
static int64_t frame_alloc(struct tdp_host *h, unsigned order, bool zero)
{
	bool dirty;
	int64_t pfn = buddy_alloc(&h->buddy, order, &dirty);

	if (pfn < 0)
		return pfn;
	if (zero && dirty)
		frame_zero(h, (uint64_t)pfn, order);
	{
		uint64_t end = (uint64_t)pfn + (1ull << order);
		uint64_t cur = __atomic_load_n(&h->frames_hwm, __ATOMIC_RELAXED);

		while (cur < end &&
		       !__atomic_compare_exchange_n(&h->frames_hwm, &cur, end,
						    false, __ATOMIC_RELAXED,
						    __ATOMIC_RELAXED))
			;
	}
	frame_clear_state(h, (uint64_t)pfn, order);
	/* release: a gup-fast that takes a reference on the new folio sees
	 * every pte change made before the frame was freed (its re-read of
	 * the pte then fails) */
	__atomic_store_n(&h->refs[pfn], 1, __ATOMIC_RELEASE);
	STAT_ADD(h, frames_used, 1ull << order);
	SLOT_ADD(h, frame_refs, 1);
	return pfn;
}

/* Give back a folio from frame_alloc() that was never mapped. */
static void frame_put(struct tdp_host *h, uint64_t head);

/* Give back a folio from frame_alloc() that was never mapped.  Its count
 * is dropped like any other reference, never overwritten: gup-fast may
 * hold a speculative reference on it (taken through a pte that mapped
 * the frame before it was freed and allocated again), and then the last
 * of the two frees it. */
static void frame_unalloc(struct tdp_host *h, uint64_t pfn, unsigned order)
{
	(void)order;
	frame_put(h, pfn);
}

/* The last reference is gone: poison the folio and free it. */
static void frame_release(struct tdp_host *h, uint64_t head)
{
	int order = buddy_order(&h->buddy, head);

	TDP_ASSERT_MSG(order >= 0, "host: pfn %#llx freed but not allocated",
		       (unsigned long long)head);
	wordfill_frame(frame_ptr(h, head), HOST_POISON_WORD,
		       folio_bytes((unsigned)order));
	frame_clear_state(h, head, (unsigned)order);
	STAT_SUB(h, frames_used, 1ull << order);
	buddy_free(&h->buddy, head);
}

static void frame_put_ref(struct tdp_host *h, uint64_t head);

static void frame_put(struct tdp_host *h, uint64_t head)
{
	SLOT_ADD(h, frame_refs, -1);
	frame_put_ref(h, head);
}

/* Drop a reference without counting it in the mapping references (a
 * pin: tdp_host_get_stats counts pins as the rest of the frames'
 * counts). */
static void frame_put_ref(struct tdp_host *h, uint64_t head)
{
	uint32_t *ref = &h->refs[head];
	uint32_t old = __atomic_load_n(ref, __ATOMIC_RELAXED);

	do {
		if (!old) {
			fprintf(stderr,
				"tdpmmu host: reference underflow on pfn "
				"%#llx\n",
				(unsigned long long)head);
			return;
		}
	} while (!__atomic_compare_exchange_n(
		ref, &old, old - 1, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
	if (old == 1)
		frame_release(h, head);
}

/* ------------------------------------------------------------------ */
/* retained swap copies (swap cache)                                   */
/* ------------------------------------------------------------------ */

/* Is the present page @e (mapping some hva) dirty?  mmap lock held. */
static bool page_dirty(struct tdp_host *h, uint64_t e)
{
	uint64_t pfn = pte_pfn(e);

	return pte_order(e) || !h->swapc[pfn] || frame_test_dirty(h, pfn);
}

/* Free the retained copy of the present page @e, if any.  Write lock. */
static void swapc_drop(struct tdp_host *h, uint64_t e)
{
	void **slot;

	if (pte_order(e)) /* huge folios never have copies */
		return;
	slot = &h->swapc[pte_pfn(e)];
	if (!*slot)
		return;
	free(*slot);
	*slot = NULL;
	STAT_SUB(h, swap_cached, 1);
}

/* ------------------------------------------------------------------ */
/* radix tree of ptes                                                  */
/* ------------------------------------------------------------------ */

static unsigned level_shift(unsigned level)
{
	return HOST_PAGE_SHIFT + RADIX_BITS * (RADIX_LEVELS - 1 - level);
}

static unsigned radix_index(uint64_t hva, unsigned level)
{
	return (hva >> level_shift(level)) & (RADIX_FANOUT - 1);
}

/*
 * The leaf covering @hva, or NULL.  *@next is set to the first hva after
 * the region the returned leaf (or the missing subtree) covers.
 */
static uint64_t *leaf_find(struct tdp_host *h, uint64_t hva, uint64_t *next)
{
	struct rnode *n = h->root;

	for (unsigned level = 0; level < RADIX_LEVELS - 1; level++) {
		n = n->child[radix_index(hva, level)];
		if (!n) {
			*next = (hva | ((1ull << level_shift(level)) - 1)) + 1;
			return NULL;
		}
	}
	*next = (hva | ((1ull << RADIX_LEAF_SHIFT) - 1)) + 1;
	return n->pte;
}

static uint64_t *pte_lookup(struct tdp_host *h, uint64_t hva)
{
	uint64_t next;
	uint64_t *leaf = leaf_find(h, hva, &next);

	return leaf ? &leaf[radix_index(hva, RADIX_LEVELS - 1)] : NULL;
}

static uint64_t pte_get(struct tdp_host *h, uint64_t hva)
{
	uint64_t *pte = pte_lookup(h, hva);

	return pte ? __atomic_load_n(pte, __ATOMIC_RELAXED) : 0;
}

/* Like pte_lookup, allocating missing nodes.  NULL on -ENOMEM. */
static uint64_t *pte_alloc(struct tdp_host *h, uint64_t hva)
{
	struct rnode *n = h->root;

	for (unsigned level = 0; level < RADIX_LEVELS - 1; level++) {
		struct rnode **slot = &n->child[radix_index(hva, level)];

		if (!*slot) {
			struct rnode *c = calloc(1, sizeof(struct rnode));

			if (!c)
				return NULL;
			/* zeroed before it is reachable (gup_fast) */
			__atomic_store_n(slot, c, __ATOMIC_RELEASE);
		}
		n = *slot;
	}
	return &n->pte[radix_index(hva, RADIX_LEVELS - 1)];
}

static bool node_empty(const struct rnode *n)
{
	for (unsigned i = 0; i < RADIX_FANOUT; i++)
		if (n->pte[i])
			return false;
	return true;
}

static void rnode_free_rcu(struct rcu_head *head)
{
	tdp_rcu_cb_begin();
	free(caa_container_of(head, struct rnode, rcu));
	tdp_rcu_cb_end();
}

/* Free the empty nodes below @n (at @level) that intersect [start, end);
 * returns true if @n is empty afterwards. */
static bool radix_prune(struct rnode *n, unsigned level, uint64_t start,
			uint64_t end)
{
	uint64_t span, next;

	if (level == RADIX_LEVELS - 1)
		return node_empty(n);
	span = 1ull << level_shift(level);
	for (uint64_t a = start; a < end; a = next) {
		unsigned i = radix_index(a, level);

		next = (a | (span - 1)) + 1;
		if (next > end)
			next = end;
		if (n->child[i] &&
		    radix_prune(n->child[i], level + 1, a, next)) {
			struct rnode *c = n->child[i];

			__atomic_store_n(&n->child[i], NULL, __ATOMIC_RELEASE);
			/* a lockless lookup may stand on it */
			tdp_call_rcu(&c->rcu, rnode_free_rcu);
		}
	}
	return node_empty(n);
}

static void radix_free_all(struct rnode *n, unsigned level)
{
	if (level < RADIX_LEVELS - 1)
		for (unsigned i = 0; i < RADIX_FANOUT; i++)
			if (n->child[i])
				radix_free_all(n->child[i], level + 1);
	free(n);
}

typedef int (*pte_fn)(struct tdp_host *h, uint64_t hva, uint64_t *pte,
		      void *arg);

/* Call @fn on every non-zero pte of [start, end), in address order.  @fn
 * may change ptes (also ptes ahead of it).  Stops at the first non-zero
 * return and returns it. */
static int pte_walk(struct tdp_host *h, uint64_t start, uint64_t end, pte_fn fn,
		    void *arg)
{
	uint64_t next;

	for (uint64_t a = start; a < end; a = next) {
		uint64_t *leaf = leaf_find(h, a, &next);

		if (next > end)
			next = end;
		if (!leaf)
			continue;
		for (uint64_t p = a; p < next; p += PAGE_SIZE_) {
			uint64_t *pte = &leaf[radix_index(p, RADIX_LEVELS - 1)];
			int ret;

			if (!*pte)
				continue;
			ret = fn(h, p, pte, arg);
			if (ret)
				return ret;
		}
	}
	return 0;
}

static int pte_any(struct tdp_host *h, uint64_t hva, uint64_t *pte, void *arg)
{
	return 1;
}

/* true if no page of [start, end) is populated or swapped */
static bool range_empty(struct tdp_host *h, uint64_t start, uint64_t end)
{
	return !pte_walk(h, start, end, pte_any, NULL);
}

/* true if every page of [start, end) is present */
static bool range_present(struct tdp_host *h, uint64_t start, uint64_t end)
{
	uint64_t next;

	for (uint64_t a = start; a < end; a = next) {
		if (!leaf_find(h, a, &next))
			return false;
		if (next > end)
			next = end;
		for (uint64_t p = a; p < next; p += PAGE_SIZE_)
			if (!pte_present(pte_get(h, p)))
				return false;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* VMAs                                                                */
/* ------------------------------------------------------------------ */

/* index of the first VMA that ends above @hva (nr_vmas if none) */
static size_t vma_lower(struct tdp_host *h, uint64_t hva)
{
	size_t lo = 0, hi = h->nr_vmas;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (h->vmas[mid].end <= hva)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct host_vma *vma_find(struct tdp_host *h, uint64_t hva)
{
	size_t i = vma_lower(h, hva);

	if (i < h->nr_vmas && h->vmas[i].start <= hva)
		return &h->vmas[i];
	return NULL;
}

/* true if every page of [start, end) is in some VMA */
static bool range_covered(struct tdp_host *h, uint64_t start, uint64_t end)
{
	size_t i = vma_lower(h, start);

	for (uint64_t a = start; a < end; i++) {
		if (i >= h->nr_vmas || h->vmas[i].start > a)
			return false;
		a = h->vmas[i].end;
	}
	return true;
}

/* true if no VMA intersects [start, end) */
static bool range_unmapped(struct tdp_host *h, uint64_t start, uint64_t end)
{
	size_t i = vma_lower(h, start);

	return i == h->nr_vmas || h->vmas[i].start >= end;
}

/* true if some VMA that intersects [start, end) has guest_private ==
 * @guest_private */
static bool range_has(struct tdp_host *h, uint64_t start, uint64_t end,
		      bool guest_private)
{
	for (size_t i = vma_lower(h, start);
	     i < h->nr_vmas && h->vmas[i].start < end; i++)
		if (h->vmas[i].guest_private == guest_private)
			return true;
	return false;
}

static int vma_reserve(struct tdp_host *h, size_t extra)
{
	size_t cap = h->cap_vmas ? h->cap_vmas : 16;
	struct host_vma *v;

	if (h->nr_vmas + extra <= h->cap_vmas)
		return 0;
	while (cap < h->nr_vmas + extra)
		cap *= 2;
	v = realloc(h->vmas, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	h->vmas = v;
	h->cap_vmas = cap;
	return 0;
}

/* Insert at index @i; capacity must have been reserved. */
static void vma_insert(struct tdp_host *h, size_t i, const struct host_vma *v)
{
	memmove(&h->vmas[i + 1], &h->vmas[i],
		(h->nr_vmas - i) * sizeof(*h->vmas));
	h->vmas[i] = *v;
	h->nr_vmas++;
}

/* Make @addr a VMA boundary; capacity for one more must be reserved. */
static void vma_split_at(struct tdp_host *h, uint64_t addr)
{
	size_t i = vma_lower(h, addr);
	struct host_vma upper;

	if (i == h->nr_vmas || h->vmas[i].start >= addr)
		return;
	upper = h->vmas[i];
	upper.start = addr;
	h->vmas[i].end = addr;
	vma_insert(h, i + 1, &upper);
}

/* Remove the covered range [start, end); capacity for 2 more reserved. */
static void vma_remove_range(struct tdp_host *h, uint64_t start, uint64_t end)
{
	size_t i, j;

	vma_split_at(h, start);
	vma_split_at(h, end);
	i = vma_lower(h, start);
	for (j = i; j < h->nr_vmas && h->vmas[j].end <= end; j++)
		;
	memmove(&h->vmas[i], &h->vmas[j], (h->nr_vmas - j) * sizeof(*h->vmas));
	h->nr_vmas -= j - i;
}

/* First hva >= @from, aligned to @align, with [hva, hva+len) free and
 * below HVA_LIMIT.  Returns false if there is none. */
static bool find_gap(struct tdp_host *h, uint64_t from, uint64_t len,
		     uint64_t align, uint64_t *out)
{
	uint64_t a = ALIGN_UP(from, align);
	size_t i = vma_lower(h, a);

	for (;;) {
		if (a > HVA_LIMIT || len > HVA_LIMIT - a)
			return false;
		if (i == h->nr_vmas || h->vmas[i].start >= a + len) {
			*out = a;
			return true;
		}
		a = ALIGN_UP(h->vmas[i].end, align);
		while (i < h->nr_vmas && h->vmas[i].end <= a)
			i++;
	}
}

/* ------------------------------------------------------------------ */
/* notifiers                                                           */
/* ------------------------------------------------------------------ */

typedef void (*invalidate_fn)(struct tdp_host_notifier *n, uint64_t start,
			      uint64_t end);

/* Every notifier's invalidate_start, or with @priv its
 * invalidate_private_start; notifiers without the op are skipped. */
static void notify_start(struct tdp_host *h, uint64_t start, uint64_t end,
			 bool priv)
{
	for (struct tdp_host_notifier *n = h->notifiers; n; n = n->next) {
		invalidate_fn fn = !n->ops ? NULL
				   : priv  ? n->ops->invalidate_private_start
					   : n->ops->invalidate_start;

		if (!fn)
			continue;
		fn(n, start, end);
		STAT_ADD(h, notifier_calls, 1);
	}
}

/* Every notifier's invalidate_end, or with @priv invalidate_private_end */
static void notify_end(struct tdp_host *h, uint64_t start, uint64_t end,
		       bool priv)
{
	for (struct tdp_host_notifier *n = h->notifiers; n; n = n->next) {
		invalidate_fn fn = !n->ops ? NULL
				   : priv  ? n->ops->invalidate_private_end
					   : n->ops->invalidate_end;

		if (fn)
			fn(n, start, end);
	}
}

static void call_hook(struct tdp_host *h, uint64_t start, uint64_t end)
{
	if (h->hook_fn)
		h->hook_fn(h->hook_arg, start, end);
}

/* ------------------------------------------------------------------ */
/* splitting huge folios                                               */
/* ------------------------------------------------------------------ */

/* Split the huge folio that maps @hva (if any) into order-0 frames. */
static void split_folio(struct tdp_host *h, uint64_t hva)
{
	uint64_t e = pte_get(h, hva);
	unsigned order = pte_order(e);
	uint64_t n, fs, head;

	if (!pte_present(e) || !order)
		return;
	n = 1ull << order;
	fs = ALIGN_DOWN(hva, folio_bytes(order));
	head = pte_head_pfn(e, hva);
	buddy_split(&h->buddy, head);
	for (uint64_t i = 1; i < n; i++)
		__atomic_store_n(&h->refs[head + i], 1, __ATOMIC_RELEASE);
	SLOT_ADD(h, frame_refs, n - 1);
	STAT_ADD(h, splits, 1);
	for (uint64_t i = 0; i < n; i++)
		pte_set(pte_lookup(h, fs + (i << HOST_PAGE_SHIFT)),
			pte_mk_present(head + i, 0, e));
}

/* Split the huge folios that [start, end) covers only partly. */
static void split_partial(struct tdp_host *h, uint64_t start, uint64_t end)
{
	uint64_t e = pte_get(h, start);

	if (pte_present(e) && start % folio_bytes(pte_order(e)))
		split_folio(h, start);
	e = pte_get(h, end - PAGE_SIZE_);
	if (pte_present(e) && end % folio_bytes(pte_order(e)))
		split_folio(h, end - PAGE_SIZE_);
}

static int split_cb(struct tdp_host *h, uint64_t hva, uint64_t *pte, void *arg)
{
	if (pte_present(*pte) && pte_order(*pte))
		split_folio(h, hva);
	return 0;
}

/* Split every huge folio that intersects [start, end). */
static void split_all(struct tdp_host *h, uint64_t start, uint64_t end)
{
	pte_walk(h, start, end, split_cb, NULL);
}

/* Widen [*start, *end) to the folios it covers partly: the range whose
 * mapping level changes when they are split. */
static void widen_to_folios(struct tdp_host *h, uint64_t *start, uint64_t *end)
{
	uint64_t e = pte_get(h, *start);

	if (pte_present(e))
		*start = ALIGN_DOWN(*start, folio_bytes(pte_order(e)));
	e = pte_get(h, *end - PAGE_SIZE_);
	if (pte_present(e))
		*end = ALIGN_UP(*end, folio_bytes(pte_order(e)));
}

/* ------------------------------------------------------------------ */
/* population                                                          */
/* ------------------------------------------------------------------ */

static int swap_in(struct tdp_host *h, const struct host_vma *v,
		   uint64_t *pte)
{
	void *copy = pte_swap_copy(*pte);
	int64_t pfn = frame_alloc(h, 0, false);

	if (pfn < 0)
		return -ENOMEM;
	wordcopy_to_frame(frame_ptr(h, (uint64_t)pfn), copy, PAGE_SIZE_);
	/* keep the copy: the page is clean (frame_alloc cleared its bit) */
	h->swapc[pfn] = copy;
	pte_set(pte, pte_mk_present((uint64_t)pfn, 0, vma_attrs(v)));
	STAT_SUB(h, swapped_pages, 1);
	STAT_ADD(h, swap_ins, 1);
	STAT_ADD(h, swap_cached, 1);
	return 0;
}

/* Map a new zeroed huge folio at @fs (inside @v, all pages unpopulated). */
static int populate_folio(struct tdp_host *h, const struct host_vma *v,
			  uint64_t fs)
{
	uint64_t size = folio_bytes(v->order);
	int64_t pfn;

	for (uint64_t a = fs; a < fs + size; a += 1ull << RADIX_LEAF_SHIFT)
		if (!pte_alloc(h, a))
			return -ENOMEM;
	pfn = frame_alloc(h, v->order, true);
	if (pfn < 0)
		return -ENOMEM;
	for (uint64_t i = 0; i < size >> HOST_PAGE_SHIFT; i++)
		pte_set(pte_lookup(h, fs + (i << HOST_PAGE_SHIFT)),
			pte_mk_present((uint64_t)pfn + i, v->order,
				       vma_attrs(v)));
	return 0;
}

/* Can the page at @hva be populated with a huge folio of @v? */
static bool folio_fits(struct tdp_host *h, const struct host_vma *v,
		       uint64_t hva)
{
	uint64_t size = folio_bytes(v->order);
	uint64_t fs = ALIGN_DOWN(hva, size);

	if (!v->order || fs < v->start || fs + size > v->end)
		return false;
	return range_empty(h, fs, fs + size);
}

/* Fault in the page at @hva of @v.  Write lock held. */
static int populate_page(struct tdp_host *h, const struct host_vma *v,
			 uint64_t hva)
{
	uint64_t *pte = pte_alloc(h, hva);
	int64_t pfn;

	if (!pte)
		return -ENOMEM;
	if (pte_swapped(*pte))
		return swap_in(h, v, pte);
	if (pte_present(*pte))
		return 0;
	if (folio_fits(h, v, hva) &&
	    !populate_folio(h, v, ALIGN_DOWN(hva, folio_bytes(v->order))))
		return 0;
	/* fall back to a small frame, as THP does */
	pfn = frame_alloc(h, 0, true);
	if (pfn < 0)
		return -ENOMEM;
	pte_set(pte_lookup(h, hva),
		pte_mk_present((uint64_t)pfn, 0, vma_attrs(v)));
	return 0;
}

/* Fault in every page of the covered range [start, end). */
static int populate_range(struct tdp_host *h, uint64_t start, uint64_t end)
{
	for (uint64_t p = start; p < end; p += PAGE_SIZE_) {
		int ret;

		if (pte_present(pte_get(h, p)))
			continue;
		ret = populate_page(h, vma_find(h, p), p);
		if (ret)
			return ret;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* create / destroy / stats                                            */
/* ------------------------------------------------------------------ */

static int pool_reserve(struct tdp_host *h, uint64_t bytes)
{
	uint64_t len = bytes + POOL_ALIGN;
	uint8_t *p, *base;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	base = (uint8_t *)ALIGN_UP((uintptr_t)p, POOL_ALIGN);
	if (base > p)
		munmap(p, base - p);
	if (p + len > base + bytes)
		munmap(base + bytes, p + len - (base + bytes));
	h->pool = base;
	h->pool_bytes = bytes;
	h->nr_frames = bytes >> HOST_PAGE_SHIFT;
	return 0;
}

/* bytes of a per-frame bitmap (fdirty, faccessed) */
static size_t fbits_len(const struct tdp_host *h)
{
	return (h->nr_frames + 63) / 64 * sizeof(uint64_t);
}

static size_t swapc_len(const struct tdp_host *h)
{
	return h->nr_frames * sizeof(*h->swapc);
}

int tdp_host_create(const struct tdp_host_config *cfg, struct tdp_host **out)
{
	uint64_t bytes = cfg ? cfg->mem_bytes : 0;
	size_t refs_len;
	struct tdp_host *h;
	int ret = -ENOMEM;

	if (!out || bytes > POOL_MAX)
		return -EINVAL;
	bytes = bytes ? ALIGN_UP(bytes, POOL_ALIGN) : POOL_DEFAULT;
	/* per-slot members (percpu.h) are cache-line aligned */
	h = aligned_alloc(_Alignof(struct tdp_host),
			  (sizeof(*h) + _Alignof(struct tdp_host) - 1) &
				  ~(_Alignof(struct tdp_host) - 1));
	if (!h)
		return -ENOMEM;
	memset(h, 0, sizeof(*h));
	if (pool_reserve(h, bytes))
		goto free_host;
	refs_len = h->nr_frames * sizeof(*h->refs);
	h->refs = mmap(NULL, refs_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (h->refs == MAP_FAILED)
		goto free_pool;
	h->fdirty = mmap(NULL, fbits_len(h), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (h->fdirty == MAP_FAILED)
		goto free_refs;
	h->faccessed = mmap(NULL, fbits_len(h), PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (h->faccessed == MAP_FAILED)
		goto free_fdirty;
	h->swapc = mmap(NULL, swapc_len(h), PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (h->swapc == MAP_FAILED)
		goto free_faccessed;
	if (buddy_init(&h->buddy, h->nr_frames))
		goto free_swapc;
	h->root = calloc(1, sizeof(*h->root));
	if (!h->root)
		goto free_buddy;
	if (tdp_brlock_init(&h->mmap_lock))
		goto free_root;
	h->mmap_cursor = HVA_FIRST;
	*out = h;
	return 0;

free_root:
	free(h->root);
free_buddy:
	buddy_fini(&h->buddy);
free_swapc:
	munmap(h->swapc, swapc_len(h));
free_faccessed:
	munmap(h->faccessed, fbits_len(h));
free_fdirty:
	munmap(h->fdirty, fbits_len(h));
free_refs:
	munmap(h->refs, refs_len);
free_pool:
	munmap(h->pool, h->pool_bytes);
free_host:
	free(h);
	return ret;
}

static int free_swap_cb(struct tdp_host *h, uint64_t hva, uint64_t *pte,
			void *arg)
{
	if (pte_swapped(*pte))
		free(pte_swap_copy(*pte));
	else
		swapc_drop(h, *pte);
	return 0;
}

void tdp_host_destroy(struct tdp_host *h)
{
	unsigned nr = 0;

	if (!h)
		return;
	for (struct tdp_host_notifier *n = h->notifiers; n; n = n->next)
		nr++;
	if (nr) {
		fprintf(stderr,
			"tdp_host_destroy: %u notifier(s) still registered on "
			"host %p: destroy every VM before its host\n",
			nr, (void *)h);
		abort();
	}
	pte_walk(h, 0, HVA_LIMIT, free_swap_cb, NULL);
	radix_free_all(h->root, 0);
	/* the nodes munmap unlinked: freed by their RCU callbacks */
	tdp_rcu_barrier();
	free(h->vmas);
	tdp_brlock_destroy(&h->mmap_lock);
	buddy_fini(&h->buddy);
	munmap(h->swapc, swapc_len(h));
	munmap(h->faccessed, fbits_len(h));
	munmap(h->fdirty, fbits_len(h));
	munmap(h->refs, h->nr_frames * sizeof(*h->refs));
	munmap(h->pool, h->pool_bytes);
	free(h);
}

void tdp_host_get_stats(struct tdp_host *h, struct tdp_host_stats *out)
{
	if (!h || !out)
		return;
	memset(out, 0, sizeof(*out));
	out->frames_total = h->nr_frames;
	out->frames_used = STAT_GET(h, frames_used);
	{
		/* every reference, summed over the frames (heads carry a
		 * folio's): mapping references plus pins */
		uint64_t all = 0;
		uint64_t hwm = __atomic_load_n(&h->frames_hwm, __ATOMIC_RELAXED);

		for (uint64_t i = 0; i < hwm && i < h->nr_frames; i++)
			all += __atomic_load_n(&h->refs[i], __ATOMIC_RELAXED);
		out->frame_refs = all;
		out->pinned_refs = all - SLOT_GET(h, frame_refs);
	}
	out->swapped_pages = STAT_GET(h, swapped_pages);
	out->migrations = STAT_GET(h, migrations);
	out->swap_outs = STAT_GET(h, swap_outs);
	out->swap_ins = STAT_GET(h, swap_ins);
	out->splits = STAT_GET(h, splits);
	out->notifier_calls = STAT_GET(h, notifier_calls);
	out->swap_out_clean = STAT_GET(h, swap_out_clean);
}

/* ------------------------------------------------------------------ */
/* mmap / munmap / mprotect / split                                    */
/* ------------------------------------------------------------------ */

int tdp_host_mmap(struct tdp_host *h, uint64_t len, unsigned prot,
		  uint64_t folio_size, unsigned flags, uint64_t *hva)
{
	int order = folio_order_of(folio_size);
	struct host_vma v;
	uint64_t a = 0;
	int ret;

	if (!h || !hva || !len || order < 0 || len % folio_size)
		return -EINVAL;
	if ((prot & ~PROT_ALL) ||
	    (flags & ~(TDP_MAP_FIXED | TDP_MAP_GUEST_PRIVATE)))
		return -EINVAL;
	if (flags & TDP_MAP_FIXED) {
		a = *hva;
		if (a % folio_size || a > HVA_LIMIT || len > HVA_LIMIT - a)
			return -EINVAL;
	} else if (len > HVA_LIMIT - HVA_FIRST) {
		return -ENOMEM;
	}
	ret = mmap_write_lock(h);
	if (ret)
		return ret;
	ret = vma_reserve(h, 1);
	if (ret)
		goto out;
	if (flags & TDP_MAP_FIXED) {
		if (!range_unmapped(h, a, a + len))
			ret = -EEXIST;
	} else if (!find_gap(h, h->mmap_cursor, len, folio_size, &a) &&
		   !find_gap(h, HVA_FIRST, len, folio_size, &a)) {
		ret = -ENOMEM;
	}
	if (ret)
		goto out;
	v = (struct host_vma){.start = a,
			      .end = a + len,
			      .order = (unsigned)order,
			      .prot = prot,
			      .guest_private = flags & TDP_MAP_GUEST_PRIVATE};
	vma_insert(h, vma_lower(h, a), &v);
	if (!(flags & TDP_MAP_FIXED))
		h->mmap_cursor = a + len;
	*hva = a;
out:
	mmap_write_unlock(h);
	return ret;
}

static int unmap_cb(struct tdp_host *h, uint64_t hva, uint64_t *pte, void *arg)
{
	uint64_t e = *pte;

	pte_set(pte, 0);
	if (pte_swapped(e)) {
		free(pte_swap_copy(e));
		STAT_SUB(h, swapped_pages, 1);
		return 0;
	}
	swapc_drop(h, e);
	/* huge folios are wholly inside the range: drop at the head */
	if (hva % folio_bytes(pte_order(e)) == 0)
		frame_put(h, pte_pfn(e));
	return 0;
}

/* The pages a range operation refuses with -EPERM */
enum refuse {
	REFUSE_NONE,	/* munmap */
	REFUSE_PRIVATE, /* the host's own operations: guest-private pages */
	REFUSE_NORMAL,	/* punch_hole: pages that are not guest-private */
};

/* Check that [hva, hva+len) is a page range (-EINVAL), write-lock @h and
 * check that the range is mapped (-ENOENT) and has no page that @refuse
 * names (-EPERM).  On error the lock is not held. */
static int lock_covered(struct tdp_host *h, uint64_t hva, uint64_t len,
			enum refuse refuse)
{
	int ret = check_page_range(h, hva, len);

	if (ret)
		return ret;
	ret = mmap_write_lock(h);
	if (ret)
		return ret;
	if (!range_covered(h, hva, hva + len))
		ret = -ENOENT;
	else if (refuse != REFUSE_NONE &&
		 range_has(h, hva, hva + len, refuse == REFUSE_PRIVATE))
		ret = -EPERM;
	if (ret)
		mmap_write_unlock(h);
	return ret;
}

int tdp_host_munmap(struct tdp_host *h, uint64_t hva, uint64_t len)
{
	uint64_t end = hva + len, s = hva, e = end;
	bool priv;
	int ret = lock_covered(h, hva, len, REFUSE_NONE);
	if (ret)
		return ret;
	ret = vma_reserve(h, 2);
	if (ret)
		goto out;
	priv = range_has(h, hva, end, true);
	widen_to_folios(h, &s, &e);
	notify_start(h, s, e, false);
	if (priv)
		notify_start(h, s, e, true);
	call_hook(h, s, e);
	split_partial(h, hva, end);
	vma_remove_range(h, hva, end);
	/* The ptes go inside the invalidation, before invalidate_end: gup-fast
	 * reads ptes, not VMAs, and a fault that pinned through a pte still
	 * present after invalidate_end would find nothing to retry for.  The
	 * mapping references go with them (as punch_hole's do): every VM has
	 * dropped its translations since invalidate_start returned, and a
	 * fault's pin keeps its frame until it is put. */
	pte_walk(h, hva, end, unmap_cb, NULL);
	radix_prune(h->root, 0, hva, end);
	if (priv)
		notify_end(h, s, e, true);
	notify_end(h, s, e, false);
out:
	mmap_write_unlock(h);
	return ret;
}

/* punch_hole: unmap_cb on a guest-private page, which the host never
 * swaps (swap_out refuses it): so it has no swap pte or retained copy. */
static int punch_cb(struct tdp_host *h, uint64_t hva, uint64_t *pte, void *arg)
{
	TDP_ASSERT_MSG(pte_present(*pte) &&
			       (pte_order(*pte) || !h->swapc[pte_pfn(*pte)]),
		       "guest-private page at hva %#llx was swapped",
		       (unsigned long long)hva);
	return unmap_cb(h, hva, pte, arg);
}

int tdp_host_punch_hole(struct tdp_host *h, uint64_t hva, uint64_t len)
{
	uint64_t end = hva + len, s = hva, e = end;
	int ret = lock_covered(h, hva, len, REFUSE_NORMAL);
	if (ret)
		return ret;
	widen_to_folios(h, &s, &e);
	notify_start(h, s, e, true);
	call_hook(h, s, e);
	split_partial(h, hva, end);
	/* the VMA stays: the next touch populates zero-filled frames */
	pte_walk(h, hva, end, punch_cb, NULL);
	radix_prune(h->root, 0, hva, end);
	notify_end(h, s, e, true);
	mmap_write_unlock(h);
	return 0;
}

/* true if some VMA in the covered range [start, end) has a bit that
 * @prot lacks */
static bool prot_removed(struct tdp_host *h, uint64_t start, uint64_t end,
			 unsigned prot)
{
	for (size_t i = vma_lower(h, start);
	     i < h->nr_vmas && h->vmas[i].start < end; i++)
		if (h->vmas[i].prot & ~prot)
			return true;
	return false;
}

/* mprotect: the present ptes carry the new protection */
static int reprot_cb(struct tdp_host *h, uint64_t hva, uint64_t *pte,
		     void *arg)
{
	uint64_t e = *pte;

	if (pte_present(e))
		pte_set(pte, (e & ~(7ull << PTE_PROT_SHIFT)) |
				     ((uint64_t)*(const unsigned *)arg
				      << PTE_PROT_SHIFT));
	return 0;
}

int tdp_host_mprotect(struct tdp_host *h, uint64_t hva, uint64_t len,
		      unsigned prot)
{
	uint64_t end = hva + len, s = hva, e = end;
	bool notify;
	int ret;

	if (prot & ~PROT_ALL)
		return -EINVAL;
	ret = lock_covered(h, hva, len, REFUSE_PRIVATE);
	if (ret)
		return ret;
	ret = vma_reserve(h, 2);
	if (ret)
		goto out;
	widen_to_folios(h, &s, &e);
	/* notify when a permission goes or a huge folio must be split */
	notify = prot_removed(h, hva, end, prot) || s != hva || e != end;
	if (notify)
		notify_start(h, s, e, false);
	call_hook(h, s, e);
	split_partial(h, hva, end);
	vma_split_at(h, hva);
	vma_split_at(h, end);
	for (size_t i = vma_lower(h, hva);
	     i < h->nr_vmas && h->vmas[i].start < end; i++)
		h->vmas[i].prot = prot;
	pte_walk(h, hva, end, reprot_cb, &prot);
	if (notify)
		notify_end(h, s, e, false);
out:
	mmap_write_unlock(h);
	return ret;
}

int tdp_host_split(struct tdp_host *h, uint64_t hva, uint64_t len)
{
	uint64_t end = hva + len, s = hva, e = end;
	int ret = lock_covered(h, hva, len, REFUSE_PRIVATE);
	if (ret)
		return ret;
	widen_to_folios(h, &s, &e);
	notify_start(h, s, e, false);
	call_hook(h, s, e);
	split_all(h, hva, end);
	notify_end(h, s, e, false);
	mmap_write_unlock(h);
	return 0;
}

/* ------------------------------------------------------------------ */
/* migrate / swap-out                                                  */
/* ------------------------------------------------------------------ */

/* One folio to move (migrate) or one page to swap out. */
struct move {
	uint64_t hva;	  /* first page */
	uint64_t old_pfn; /* head of the old folio (after partial splits) */
	uint64_t new_pfn; /* migrate: new folio */
	void *copy;	  /* swap-out: the 4 KiB copy */
	unsigned order;
	bool cached; /* copy is the page's retained copy (else malloc'd) */
};

struct plan {
	uint64_t start, end;
	struct move *m;
	size_t n;
	bool whole; /* keep whole huge folios (migrate) or not (swap-out) */
};

/*
 * Record the folio or page at @hva.  Whole huge folios inside the range are
 * one move of their order (seen at their head); pages of huge folios that
 * the range covers partly, or of any folio when !whole, are order-0 moves
 * of their own frame (which they will be once split).
 */
static int plan_cb(struct tdp_host *h, uint64_t hva, uint64_t *pte, void *arg)
{
	struct plan *pl = arg;
	uint64_t e = *pte;
	unsigned order = pte_order(e);
	uint64_t size = folio_bytes(order);
	uint64_t fs = ALIGN_DOWN(hva, size);

	if (!pte_present(e))
		return 0;
	if (order && pl->whole && fs >= pl->start && fs + size <= pl->end) {
		if (hva != fs)
			return 0;
	} else {
		order = 0;
	}
	if (pl->m) {
		/* only order-0 folios have retained copies */
		void *copy = pte_order(e) ? NULL : h->swapc[pte_pfn(e)];

		pl->m[pl->n] = (struct move){.hva = hva,
					     .old_pfn = pte_pfn(e),
					     .order = order,
					     .copy = copy,
					     .cached = copy != NULL};
	}
	pl->n++;
	return 0;
}

/* Build the list of moves of [start, end).  -ENOMEM on failure. */
static int plan_build(struct tdp_host *h, struct plan *pl, uint64_t start,
		      uint64_t end, bool whole)
{
	*pl = (struct plan){.start = start, .end = end, .whole = whole};
	pte_walk(h, start, end, plan_cb, pl);
	if (!pl->n)
		return 0;
	pl->m = calloc(pl->n, sizeof(*pl->m));
	if (!pl->m)
		return -ENOMEM;
	pl->n = 0;
	pte_walk(h, start, end, plan_cb, pl);
	return 0;
}

static void plan_drop_old(struct tdp_host *h, struct plan *pl)
{
	for (size_t i = 0; i < pl->n; i++)
		frame_put(h, pl->m[i].old_pfn);
}

/* Allocate the new folios of a migration, all or nothing. */
static int migrate_alloc(struct tdp_host *h, struct plan *pl)
{
	size_t i;

	for (i = 0; i < pl->n; i++) {
		int64_t pfn = frame_alloc(h, pl->m[i].order, false);

		if (pfn < 0)
			goto undo;
		pl->m[i].new_pfn = (uint64_t)pfn;
	}
	return 0;
undo:
	while (i--)
		frame_unalloc(h, pl->m[i].new_pfn, pl->m[i].order);
	return -ENOMEM;
}

static void migrate_one(struct tdp_host *h, const struct move *m)
{
	uint64_t n = 1ull << m->order;

	wordcopy_frame_to_frame(frame_ptr(h, m->new_pfn),
				frame_ptr(h, m->old_pfn),
				folio_bytes(m->order));
	/* same content, same state: the retained copy and the dirty bit (as
	 * the VMs left it in invalidate_start) go with it.  Huge folios have
	 * no copies and are dirty whatever their bits say. */
	if (m->cached) {
		h->swapc[m->new_pfn] = m->copy;
		h->swapc[m->old_pfn] = NULL;
		if (frame_test_dirty(h, m->old_pfn))
			frame_set_dirty(h, m->new_pfn, 1);
	}
	/* accessed bits are per 4 KiB frame for every folio order: the new
	 * folio (born with clear bits) takes them frame by frame */
	fbits_copy_folio(h->faccessed, m->old_pfn, m->new_pfn, m->order);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t *pte = pte_lookup(h, m->hva + (i << HOST_PAGE_SHIFT));

		pte_set(pte, pte_mk_present(m->new_pfn + i, m->order, *pte));
	}
	STAT_ADD(h, migrations, n);
}

int tdp_host_migrate(struct tdp_host *h, uint64_t hva, uint64_t len)
{
	uint64_t end = hva + len, s = hva, e = end;
	struct plan pl;
	int ret = lock_covered(h, hva, len, REFUSE_PRIVATE);
	if (ret)
		return ret;
	ret = plan_build(h, &pl, hva, end, true);
	if (ret)
		goto out;
	ret = migrate_alloc(h, &pl);
	if (ret)
		goto free_plan;
	widen_to_folios(h, &s, &e);
	notify_start(h, s, e, false);
	call_hook(h, s, e);
	split_partial(h, hva, end);
	for (size_t i = 0; i < pl.n; i++)
		migrate_one(h, &pl.m[i]);
	notify_end(h, s, e, false);
	plan_drop_old(h, &pl);
free_plan:
	free(pl.m);
out:
	mmap_write_unlock(h);
	return ret;
}

/* Allocate the swap copies of the pages without a retained one, all or
 * nothing. */
static int swap_alloc(struct plan *pl)
{
	size_t i;

	for (i = 0; i < pl->n; i++) {
		if (pl->m[i].cached)
			continue;
		pl->m[i].copy = malloc(PAGE_SIZE_);
		if (!pl->m[i].copy)
			goto undo;
	}
	return 0;
undo:
	while (i--)
		if (!pl->m[i].cached)
			free(pl->m[i].copy);
	return -ENOMEM;
}

/* After invalidate_start: the VMs have reported their Dirty bits.  A clean
 * page gives its retained copy to the swap pte as it is; anything else is
 * copied (into its stale retained copy if it has one). */
static void swap_out_one(struct tdp_host *h, const struct move *m)
{
	if (m->cached) {
		h->swapc[m->old_pfn] = NULL;
		STAT_SUB(h, swap_cached, 1);
	}
	if (m->cached && !frame_test_dirty(h, m->old_pfn))
		STAT_ADD(h, swap_out_clean, 1);
	else
		wordcopy_from_frame(m->copy, frame_ptr(h, m->old_pfn),
				    PAGE_SIZE_);
	pte_set(pte_lookup(h, m->hva), pte_mk_swap(m->copy));
}

int tdp_host_swap_out(struct tdp_host *h, uint64_t hva, uint64_t len)
{
	uint64_t end = hva + len, s = hva, e = end;
	struct plan pl;
	int ret = lock_covered(h, hva, len, REFUSE_PRIVATE);
	if (ret)
		return ret;
	ret = plan_build(h, &pl, hva, end, false);
	if (ret)
		goto out;
	ret = swap_alloc(&pl);
	if (ret)
		goto free_plan;
	widen_to_folios(h, &s, &e);
	notify_start(h, s, e, false);
	call_hook(h, s, e);
	split_all(h, hva, end);
	for (size_t i = 0; i < pl.n; i++)
		swap_out_one(h, &pl.m[i]);
	notify_end(h, s, e, false);
	plan_drop_old(h, &pl);
	STAT_ADD(h, swapped_pages, pl.n);
	STAT_ADD(h, swap_outs, pl.n);
free_plan:
	free(pl.m);
out:
	mmap_write_unlock(h);
	return ret;
}

/* ------------------------------------------------------------------ */
/* read / write                                                        */
/* ------------------------------------------------------------------ */

/* 0, -EFAULT or -EACCES for an access to [start, end); the first problem
 * in address order wins.  An access that passes is -EPERM if the range has
 * a guest-private page. */
static int access_check(struct tdp_host *h, uint64_t start, uint64_t end,
			unsigned need)
{
	size_t i = vma_lower(h, start);

	for (uint64_t a = start; a < end; i++) {
		if (i >= h->nr_vmas || h->vmas[i].start > a)
			return -EFAULT;
		if (!(h->vmas[i].prot & need))
			return -EACCES;
		a = h->vmas[i].end;
	}
	return range_has(h, start, end, true) ? -EPERM : 0;
}

static void access_copy(struct tdp_host *h, uint64_t hva, uint8_t *buf,
			uint64_t len, bool write)
{
	while (len) {
		uint64_t off = hva & (PAGE_SIZE_ - 1);
		uint64_t n = PAGE_SIZE_ - off < len ? PAGE_SIZE_ - off : len;
		uint64_t pfn = pte_pfn(pte_get(h, hva));
		uint8_t *frame = frame_ptr(h, pfn) + off;

		frame_set_accessed(h, pfn, 1);
		if (write) {
			frame_set_dirty(h, pfn, 1);
			wordcopy_to_frame(frame, buf, n);
		} else {
			wordcopy_from_frame(buf, frame, n);
		}
		hva += n;
		buf += n;
		len -= n;
	}
}

static int host_access(struct tdp_host *h, uint64_t hva, uint8_t *buf,
		       uint64_t len, bool write)
{
	unsigned need = write ? TDP_PROT_WRITE : TDP_PROT_READ;
	uint64_t ps, pe;
	int ret;

	if (!h || (!buf && len) || len > UINT64_MAX - hva)
		return -EINVAL;
	if (!len)
		return 0;
	ps = ALIGN_DOWN(hva, PAGE_SIZE_);
	pe = ALIGN_UP(hva + len, PAGE_SIZE_);
	for (unsigned tries = 0;; tries++) {
		int taken = mmap_read_lock(h);
		bool present = false;

		ret = access_check(h, hva, hva + len, need);
		if (!ret)
			present = range_present(h, ps, pe);
		if (!ret && present)
			access_copy(h, hva, buf, len, write);
		mmap_read_unlock(h, taken);
		if (ret || present)
			return ret;
		if (taken < 0)
			return -EDEADLK;

		/* fault the range in, then copy under the read lock again;
		 * after a few lost races copy under the write lock */
		mmap_write_lock(h);
		ret = access_check(h, hva, hva + len, need);
		if (!ret)
			ret = populate_range(h, ps, pe);
		if (!ret && tries >= 2) {
			access_copy(h, hva, buf, len, write);
			mmap_write_unlock(h);
			return 0;
		}
		mmap_write_unlock(h);
		if (ret)
			return ret;
	}
}

int tdp_host_read(struct tdp_host *h, uint64_t hva, void *buf, uint64_t len)
{
	return host_access(h, hva, buf, len, false);
}

int tdp_host_write(struct tdp_host *h, uint64_t hva, const void *buf,
		   uint64_t len)
{
	return host_access(h, hva, (uint8_t *)buf, len, true);
}

/* ------------------------------------------------------------------ */
/* aging                                                               */
/* ------------------------------------------------------------------ */

#define AGE_FLAGS (TDP_AGE_TEST_ONLY | TDP_AGE_FLUSH)

struct age_walk {
	uint64_t start;
	uint64_t *bitmap;
	bool clear;
};

/* Host side of aging: the present page at @hva is young if its frame's
 * accessed bit is set; clear it unless testing only. */
static int age_cb(struct tdp_host *h, uint64_t hva, uint64_t *pte, void *arg)
{
	struct age_walk *aw = arg;
	uint64_t pfn, i;
	bool young;

	if (!pte_present(*pte))
		return 0; /* swapped out: old, unless a VM says otherwise */
	pfn = pte_pfn(*pte);
	young = aw->clear ? fbits_test_and_clear(h->faccessed, pfn)
			  : fbits_test(h->faccessed, pfn);
	if (young) {
		i = (hva - aw->start) >> HOST_PAGE_SHIFT;
		aw->bitmap[i >> 6] |= 1ull << (i & 63);
	}
	return 0;
}

static void notify_age(struct tdp_host *h, uint64_t start, uint64_t end,
		       unsigned flags, uint64_t *young)
{
	for (struct tdp_host_notifier *n = h->notifiers; n; n = n->next)
		if (n->ops && n->ops->age)
			n->ops->age(n, start, end, flags, young);
}

int tdp_host_age(struct tdp_host *h, uint64_t hva, uint64_t len,
		 unsigned flags, uint64_t *young)
{
	uint64_t end = hva + len, npages, words, count = 0;
	struct age_walk aw;
	uint64_t *bm;
	int taken;
	int ret = check_page_range(h, hva, len);

	if (ret)
		return ret;
	if (flags & ~AGE_FLAGS)
		return -EINVAL;
	npages = len >> HOST_PAGE_SHIFT;
	words = (npages + 63) / 64;
	/* the count must fit the int result (and the bitmap a size_t) */
	if (npages > (uint64_t)INT_MAX || words > SIZE_MAX / sizeof(*bm))
		return -EINVAL;
	/* From inside a notifier callback or the test hook the caller's
	 * write lock covers us (as for host_lookup). */
	taken = mmap_read_lock(h);
	if (!range_covered(h, hva, end)) {
		ret = -ENOENT;
		goto out;
	}
	if (range_has(h, hva, end, true)) {
		ret = -EPERM;
		goto out;
	}
	if (young) {
		bm = young;
		memset(bm, 0, words * sizeof(*bm));
	} else {
		bm = calloc(words, sizeof(*bm));
		if (!bm) {
			ret = -ENOMEM;
			goto out;
		}
	}
	/* The mmap read lock keeps the mapping of the range fixed while the
	 * VMs OR in what their mappings say (and clear it).  VMs first: a
	 * mapping zapped while they walk hands its Accessed bit to the frame
	 * (host_mark_accessed) before the frames are read below, so no
	 * access falls between the two (I8). */
	notify_age(h, hva, end, flags, bm);
	aw = (struct age_walk){
		.start = hva, .bitmap = bm, .clear = !(flags & TDP_AGE_TEST_ONLY)};
	pte_walk(h, hva, end, age_cb, &aw);
	/* a VM must not report beyond the range; do not count it if it did */
	if (npages & 63)
		bm[words - 1] &= bits_mask(0, npages & 63);
	for (uint64_t w = 0; w < words; w++)
		count += (uint64_t)__builtin_popcountll(bm[w]);
	if (!young)
		free(bm);
	ret = (int)count;
out:
	mmap_read_unlock(h, taken);
	return ret;
}

/* ------------------------------------------------------------------ */
/* internal interface (host.h)                                         */
/* ------------------------------------------------------------------ */

/* Pin the present page at @hva; -EAGAIN if it must be faulted in first
 * (only when !populate). */
static int gup_locked(struct tdp_host *h, uint64_t hva, bool write,
		      bool populate, struct host_gup *out)
{
	struct host_vma *v = vma_find(h, hva);
	uint64_t e, head;
	int ret;

	if (!v || !(v->prot & TDP_PROT_READ))
		return -EFAULT;
	if (write && !(v->prot & TDP_PROT_WRITE))
		return -EFAULT;
	e = pte_get(h, hva);
	if (!pte_present(e)) {
		if (!populate)
			return -EAGAIN;
		ret = populate_page(h, v, hva);
		if (ret)
			return ret;
		e = pte_get(h, hva);
	}
	head = pte_head_pfn(e, hva);
	/* a pin: the frame's count only (tdp_host_get_stats) */
	__atomic_add_fetch(&h->refs[head], 1, __ATOMIC_RELAXED);
	/* Linux GUP for write dirties the page: the caller is going to write */
	if (write)
		frame_set_dirty(h, pte_pfn(e), 1);
	*out = (struct host_gup){
		.pfn = pte_pfn(e),
		.ref_pfn = head,
		.order = pte_order(e),
		.writable = v->prot & TDP_PROT_WRITE,
		.executable = v->prot & TDP_PROT_EXEC,
		.guest_private = v->guest_private,
	};
	return 0;
}

/* The pte of @hva without the mmap lock: atomic loads from the root down,
 * inside an RCU read section (nodes are freed after a grace period).  0 if
 * there is none. */
static uint64_t pte_get_lockless(struct tdp_host *h, uint64_t hva)
{
	struct rnode *n = h->root;

	for (unsigned level = 0; level < RADIX_LEVELS - 1; level++) {
		n = __atomic_load_n(&n->child[radix_index(hva, level)],
				    __ATOMIC_ACQUIRE);
		if (!n)
			return 0;
	}
	return __atomic_load_n(&n->pte[radix_index(hva, RADIX_LEVELS - 1)],
			       __ATOMIC_ACQUIRE);
}

/*
 * gup-fast: pin the page at @hva without the mmap lock, as Linux's
 * get_user_pages_fast walks the page tables locklessly.  Only a present
 * pte whose protection allows the access qualifies; anything else (not
 * populated, swapped, refused, or a race) returns -EAGAIN for the locked
 * path, which decides.  The reference is taken only if the folio's count
 * is not 0 (a frame being freed is never revived), and then the pte is
 * read again: if it changed, the mapping that made the frame reachable
 * may be gone, and the pin is given back.  If it did not, the frame was
 * mapped at @hva at a moment after the pin was taken, which is all the
 * locked lookup promises too: the caller's invalidation sequence (sampled
 * before the lookup, checked after it under mmu_lock) covers a change of
 * the pte after that moment, exactly as it covers one after the locked
 * lookup drops the lock.
 */
static int gup_fast(struct tdp_host *h, uint64_t hva, bool write,
		    struct host_gup *out)
{
	uint32_t *ref, old;
	uint64_t e, head;

	tdp_rcu_read_lock();
	e = pte_get_lockless(h, hva);
	if (!pte_present(e) || !(pte_prot(e) & TDP_PROT_READ) ||
	    (write && !(pte_prot(e) & TDP_PROT_WRITE)))
		goto slow;
	head = pte_head_pfn(e, hva);
	ref = &h->refs[head];
	if (INJECTED(h->inject, INJ_GUP_FAST_GET_FREED)) {
		/* the bug: a plain increment, as if the count could not be
		 * 0, so a frame being freed gets a reference back */
		sched_yield();
		__atomic_add_fetch(ref, 1, __ATOMIC_SEQ_CST);
	} else {
		old = __atomic_load_n(ref, __ATOMIC_RELAXED);
		do {
			if (!old)
				goto slow;
		} while (!__atomic_compare_exchange_n(ref, &old, old + 1, false,
						      __ATOMIC_SEQ_CST,
						      __ATOMIC_RELAXED));
	}
	if (pte_get_lockless(h, hva) != e) {
		frame_put_ref(h, head);
		goto slow;
	}
	tdp_rcu_read_unlock();
	if (write)
		frame_set_dirty(h, pte_pfn(e), 1);
	*out = (struct host_gup){
		.pfn = pte_pfn(e),
		.ref_pfn = head,
		.order = pte_order(e),
		.writable = pte_prot(e) & TDP_PROT_WRITE,
		.executable = pte_prot(e) & TDP_PROT_EXEC,
		.guest_private = e & PTE_PRIVATE,
	};
	return 0;
slow:
	tdp_rcu_read_unlock();
	return -EAGAIN;
}

int host_gup(struct tdp_host *h, uint64_t hva, bool write, struct host_gup *out)
{
	int taken;
	int ret;

	if (!h || !out)
		return -EINVAL;
	hva = ALIGN_DOWN(hva, PAGE_SIZE_);
	/* inside a notifier callback or the test hook the caller holds the
	 * lock for write and the locked path knows what it may see */
	if (!in_write_section(h) && !gup_fast(h, hva, write, out))
		return 0;
	taken = mmap_read_lock(h);
	ret = gup_locked(h, hva, write, false, out);
	mmap_read_unlock(h, taken);
	if (ret != -EAGAIN)
		return ret;
	if (taken < 0)
		return -EDEADLK;
	mmap_write_lock(h);
	ret = gup_locked(h, hva, write, true, out);
	mmap_write_unlock(h);
	return ret;
}

void host_set_inject(struct tdp_host *h, int id)
{
	if (h)
		h->inject = id;
}

void host_put_frame(struct tdp_host *h, uint64_t ref_pfn)
{
	if (!h || ref_pfn >= h->nr_frames) {
		fprintf(stderr, "tdpmmu host: put of bad pfn %#llx\n",
			(unsigned long long)ref_pfn);
		return;
	}
	frame_put_ref(h, ref_pfn);
}

void host_mark_dirty(struct tdp_host *h, uint64_t pfn, uint64_t npages)
{
	if (!h || pfn >= h->nr_frames)
		return;
	if (npages > h->nr_frames - pfn)
		npages = h->nr_frames - pfn;
	frame_set_dirty(h, pfn, npages);
}

void host_mark_accessed(struct tdp_host *h, uint64_t pfn, uint64_t npages)
{
	if (!h || pfn >= h->nr_frames)
		return;
	if (npages > h->nr_frames - pfn)
		npages = h->nr_frames - pfn;
	frame_set_accessed(h, pfn, npages);
}

int host_page_dirty(struct tdp_host *h, uint64_t hva)
{
	int taken;
	uint64_t e;
	int ret;

	if (!h)
		return -EINVAL;
	hva = ALIGN_DOWN(hva, PAGE_SIZE_);
	taken = mmap_read_lock(h);
	if (!vma_find(h, hva)) {
		ret = -EFAULT;
	} else {
		e = pte_get(h, hva);
		ret = pte_present(e) ? page_dirty(h, e) : -ENOENT;
	}
	mmap_read_unlock(h, taken);
	return ret;
}

uint64_t host_swap_cached(struct tdp_host *h)
{
	return h ? STAT_GET(h, swap_cached) : 0;
}

uint8_t *host_frame_base(struct tdp_host *h)
{
	return h ? h->pool : NULL;
}

int host_lookup(struct tdp_host *h, uint64_t hva, uint64_t *pfn,
		unsigned *order, unsigned *prot)
{
	struct host_vma *v;
	int taken;
	uint64_t e;
	int ret = 0;

	if (!h)
		return -EINVAL;
	hva = ALIGN_DOWN(hva, PAGE_SIZE_);
	taken = mmap_read_lock(h);
	v = vma_find(h, hva);
	e = v ? pte_get(h, hva) : 0;
	if (!v) {
		ret = -EFAULT;
	} else if (!pte_present(e)) {
		ret = -ENOENT;
	} else {
		if (pfn)
			*pfn = pte_pfn(e);
		if (order)
			*order = pte_order(e);
		if (prot)
			*prot = v->prot;
	}
	mmap_read_unlock(h, taken);
	return ret;
}

bool host_range_mapped(struct tdp_host *h, uint64_t hva, uint64_t len)
{
	int taken;
	bool ret;

	if (!h || len > UINT64_MAX - hva)
		return false;
	if (!len)
		return true;
	taken = mmap_read_lock(h);
	ret = range_covered(h, ALIGN_DOWN(hva, PAGE_SIZE_), hva + len);
	mmap_read_unlock(h, taken);
	return ret;
}

bool host_range_private(struct tdp_host *h, uint64_t hva, uint64_t len)
{
	uint64_t start;
	int taken;
	bool ret;

	if (!h || len > UINT64_MAX - hva)
		return false;
	if (!len)
		return true;
	start = ALIGN_DOWN(hva, PAGE_SIZE_);
	taken = mmap_read_lock(h);
	ret = range_covered(h, start, hva + len) &&
	      !range_has(h, start, hva + len, false);
	mmap_read_unlock(h, taken);
	return ret;
}

bool host_range_has_private(struct tdp_host *h, uint64_t hva, uint64_t len)
{
	int taken;
	bool ret;

	if (!h || !len || len > UINT64_MAX - hva)
		return false;
	taken = mmap_read_lock(h);
	ret = range_has(h, ALIGN_DOWN(hva, PAGE_SIZE_), hva + len, true);
	mmap_read_unlock(h, taken);
	return ret;
}

void host_notifier_register(struct tdp_host *h, struct tdp_host_notifier *n)
{
	struct tdp_host_notifier *p;

	if (!h || !n)
		return;
	if (mmap_write_lock(h)) {
		fprintf(stderr, "tdpmmu host: notifier registered from a "
				"notifier callback; ignored\n");
		return;
	}
	for (p = h->notifiers; p && p != n; p = p->next)
		;
	if (!p) {
		n->next = h->notifiers;
		h->notifiers = n;
	}
	mmap_write_unlock(h);
}

void host_notifier_unregister(struct tdp_host *h, struct tdp_host_notifier *n)
{
	struct tdp_host_notifier **pp;

	if (!h || !n)
		return;
	if (mmap_write_lock(h)) {
		fprintf(stderr, "tdpmmu host: notifier unregistered from a "
				"notifier callback; ignored\n");
		return;
	}
	for (pp = &h->notifiers; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			n->next = NULL;
			break;
		}
	}
	mmap_write_unlock(h);
}

void host_set_test_hook(struct tdp_host *h,
			void (*fn)(void *arg, uint64_t start, uint64_t end),
			void *arg)
{
	bool nested;

	if (!h)
		return;
	nested = in_write_section(h);
	if (!nested)
		mmap_write_lock(h);
	h->hook_fn = fn;
	h->hook_arg = arg;
	if (!nested)
		mmap_write_unlock(h);
}
