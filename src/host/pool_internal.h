/* SPDX-License-Identifier: MIT */
/*
 * pool_internal.h - the embedded host (src/host/pool*.c): a frame pool, a host
 * virtual address space (hva -> pfn, folios of 4 KiB / 2 MiB / 1 GiB) and the
 * operations that move memory under the guest (munmap, mprotect, migrate,
 * swap-out, split, and punch-hole for guest-private memory).
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
 *    write lock from invalidate_start or with no host lock held.  Setting a bit
 * needs no lock because reclaim reads it only after invalidate_start has
 * returned, and every legitimate mark (by a VM that still maps the frame, or
 * the host's own writers under the mmap lock) happens before that.
 * host_mark_accessed() is lock-free the same way.  tdp_host_age holds the mmap
 * lock for read: the hva -> pfn mapping of the range stays fixed while it tests
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
#ifndef TDP_HOST_POOL_INTERNAL_H
#define TDP_HOST_POOL_INTERNAL_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "assert.h"
#include "brlock.h"
#include "host/buddy.h"
#include "inject.h"
#include "rcu.h"
#include "stats.h"
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
	uint64_t missing_filled;
};

struct pool;

/*
 * The process backend (proc.c) is this pool with its frames in a memfd
 * and its hva -> pfn mapping mirrored into the real address space of the
 * process, so that an hva is a pointer.  The pool calls these at the
 * points where that mapping changes, all with the mmap lock held for
 * write; NULL for the embedded pool.
 */
struct pool_mirror_ops {
	/* tdp_host_mmap: reserve [*hva, *hva+len) of the process's address
	 * space (at *hva with TDP_MAP_FIXED, else anywhere, aligned to
	 * @align).  -EEXIST (fixed range in use) or -ENOMEM. */
	int (*reserve)(struct pool *h, uint64_t len, uint64_t align,
		       bool fixed, uint64_t *hva);
	/* a reservation that the pool could not use */
	void (*unreserve)(struct pool *h, uint64_t hva, uint64_t len);
	/* make the real mapping of [start, end) agree with the ptes;
	 * @block: as if no page were present (touches wait for the lock) */
	void (*sync)(struct pool *h, uint64_t start, uint64_t end, bool block);
	/* munmap: the VMAs of [start, end) are gone */
	void (*unmap)(struct pool *h, uint64_t start, uint64_t end);
	/* tdp_host_destroy, before the pool's memory goes */
	void (*fini)(struct pool *h);
};

/* The embedded host: struct tdp_host (host.h) is its first member. */
struct pool {
	struct tdp_host host; /* .ops = &pool_backend_ops */
	struct tdp_brlock mmap_lock;
	pthread_t wr_owner; /* atomic; 0 when not write-locked */

	uint8_t *pool;
	uint64_t pool_bytes;
	/* the process backend: the memfd that holds the frames (pool maps
	 * it shared), and the mirror; -1 and NULL for the embedded pool */
	int memfd;
	const struct pool_mirror_ops *mirror;
	uint64_t nr_frames;
	uint32_t *refs;	     /* atomic, per frame */
	uint64_t *fdirty;    /* atomic bitmap, one dirty bit per frame */
	uint64_t *faccessed; /* atomic bitmap, one accessed bit per frame */
	void **swapc; /* per frame: retained swap copy; under mmap_lock */
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

	/* tdp_host_set_missing: fills a missing page; under mmap_lock */
	tdp_host_fill_fn fill_fn;
	void *fill_arg;

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
		atomic_llong frame_refs;
	} __attribute__((aligned(TDP_CACHE_LINE))) slot[TDP_NR_SLOTS];
};

#define STAT_ADD(h, f, v) __atomic_add_fetch(&(h)->st.f, (v), __ATOMIC_RELAXED)
#define STAT_SUB(h, f, v) __atomic_sub_fetch(&(h)->st.f, (v), __ATOMIC_RELAXED)
#define STAT_GET(h, f)	  __atomic_load_n(&(h)->st.f, __ATOMIC_RELAXED)
/* the per-slot counters, as the VM's (stats.h) */
#define SLOT_ADD(h, f, v) stat_add(stat_slot(h)->f, (int64_t)(v))
#define SLOT_GET(h, f)	  ((uint64_t)stat_slot_sum((h), f))

/* ------------------------------------------------------------------ */
/* small helpers                                                       */
/* ------------------------------------------------------------------ */

static inline uint64_t folio_bytes(unsigned order)
{
	return PAGE_SIZE_ << order;
}

static inline int folio_order_of(uint64_t folio_size)
{
	if (folio_size == TDP_PAGE_SIZE)
		return HOST_ORDER_4K;
	if (folio_size == TDP_HUGE_2M)
		return HOST_ORDER_2M;
	if (folio_size == TDP_HUGE_1G)
		return HOST_ORDER_1G;
	return -1;
}

static inline uint8_t *frame_ptr(struct pool *h, uint64_t pfn)
{
	return h->pool + (pfn << HOST_PAGE_SHIFT);
}

static inline uint64_t pte_mk_present(uint64_t pfn, unsigned order,
				      uint64_t attrs)
{
	return (pfn << HOST_PAGE_SHIFT) | ((uint64_t)order << PTE_ORDER_SHIFT) |
	       (attrs & PTE_ATTRS) | PTE_PRESENT;
}

/* The pte attributes of the pages of @v */
static inline uint64_t vma_attrs(const struct host_vma *v)
{
	return ((uint64_t)v->prot << PTE_PROT_SHIFT) |
	       (v->guest_private ? PTE_PRIVATE : 0);
}

static inline unsigned pte_prot(uint64_t e)
{
	return (unsigned)(e >> PTE_PROT_SHIFT) & 7;
}

/* Every pte store: the lockless lookup reads ptes concurrently. */
static inline void pte_set(uint64_t *pte, uint64_t e)
{
	__atomic_store_n(pte, e, __ATOMIC_RELEASE);
}

static inline uint64_t pte_mk_swap(void *copy)
{
	return (uint64_t)(uintptr_t)copy | PTE_SWAP;
}

static inline bool pte_present(uint64_t e)
{
	return e & PTE_PRESENT;
}

static inline bool pte_swapped(uint64_t e)
{
	return e & PTE_SWAP;
}

static inline uint64_t pte_pfn(uint64_t e)
{
	return e >> HOST_PAGE_SHIFT;
}

static inline unsigned pte_order(uint64_t e)
{
	return (e >> PTE_ORDER_SHIFT) & PTE_ORDER_MASK;
}

static inline void *pte_swap_copy(uint64_t e)
{
	return (void *)(uintptr_t)(e & ~PTE_SWAP);
}

/* A missing page (tdp_host_set_missing): a swap pte without a copy; its
 * content comes from the host's fill function when it is faulted in. */
#define PTE_MISSING PTE_SWAP

static inline bool pte_missing(uint64_t e)
{
	return e == PTE_MISSING;
}

/* pfn of the head of the folio that maps the page at @hva through @e */
static inline uint64_t pte_head_pfn(uint64_t e, uint64_t hva)
{
	uint64_t fs = ALIGN_DOWN(hva, folio_bytes(pte_order(e)));

	return pte_pfn(e) - ((hva - fs) >> HOST_PAGE_SHIFT);
}

/* -EINVAL for a bad page range of munmap & co, else 0 */
static inline int check_page_range(struct pool *h, uint64_t hva, uint64_t len)
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

static inline bool in_write_section(struct pool *h)
{
	pthread_t owner = __atomic_load_n(&h->wr_owner, __ATOMIC_RELAXED);

	return owner && pthread_equal(owner, pthread_self());
}

static inline int mmap_write_lock(struct pool *h)
{
	if (in_write_section(h))
		return -EDEADLK;
	tdp_brlock_write_lock(&h->mmap_lock);
	__atomic_store_n(&h->wr_owner, pthread_self(), __ATOMIC_RELAXED);
	return 0;
}

static inline void mmap_write_unlock(struct pool *h)
{
	__atomic_store_n(&h->wr_owner, (pthread_t)0, __ATOMIC_RELAXED);
	tdp_brlock_write_unlock(&h->mmap_lock);
}

/* Returns the brlock slot to give back, or -1 if the caller already holds
 * the lock for write (inside a notifier callback or the test hook):
 * nothing is taken then. */
static inline int mmap_read_lock(struct pool *h)
{
	if (in_write_section(h))
		return -1;
	return (int)tdp_brlock_read_lock(&h->mmap_lock);
}

static inline void mmap_read_unlock(struct pool *h, int taken)
{
	if (taken >= 0)
		tdp_brlock_read_unlock(&h->mmap_lock, (unsigned)taken);
}

_Static_assert(offsetof(struct pool, host) == 0,
	       "to_pool keeps NULL NULL: the host is the pool's first member");

static inline struct pool *to_pool(struct tdp_host *h)
{
	return (struct pool *)h;
}

extern const struct host_backend_ops pool_backend_ops;

/* ---- functions shared between the pool's files ---- */

/* pool.c: set up @h (zeroed by the caller) with a frame pool of @bytes
 * (a multiple of POOL_ALIGN), in @memfd if it is not -1; undone by
 * pool_destroy (the backend op), which frees @h. */
int pool_init(struct pool *h, uint64_t bytes, int memfd);

static inline void mirror_sync(struct pool *h, uint64_t start, uint64_t end,
			       bool block)
{
	if (h->mirror)
		h->mirror->sync(h, start, end, block);
}

/* pool_move.c: the backend ops of the operations that move memory */
int pool_mmap(struct tdp_host *th, uint64_t len, unsigned prot,
	      uint64_t folio_size, unsigned flags, uint64_t *hva);
int pool_munmap(struct tdp_host *th, uint64_t hva, uint64_t len);
int pool_punch_hole(struct tdp_host *th, uint64_t hva, uint64_t len);
int pool_mprotect(struct tdp_host *th, uint64_t hva, uint64_t len,
		  unsigned prot);
int pool_migrate(struct tdp_host *th, uint64_t hva, uint64_t len);
int pool_swap_out(struct tdp_host *th, uint64_t hva, uint64_t len);
int pool_split(struct tdp_host *th, uint64_t hva, uint64_t len);
int pool_set_missing(struct tdp_host *th, uint64_t hva, uint64_t len,
		     tdp_host_fill_fn fn, void *arg);

/* pool_notify.c: the backend ops of the notifier list and the test hook */
void pool_notifier_register(struct tdp_host *th, struct tdp_host_notifier *n);
void pool_notifier_unregister(struct tdp_host *th, struct tdp_host_notifier *n);
void pool_set_test_hook(struct tdp_host *th,
			void (*fn)(void *arg, uint64_t start, uint64_t end),
			void *arg);

/* pte_walk's callback */
typedef int (*pte_fn)(struct pool *h, uint64_t hva, uint64_t *pte, void *arg);

/* pool.c */
int gup_fast(struct pool *h, uint64_t hva, bool write, struct host_gup *out);

/* pool_frames.c */
uint64_t bits_mask(uint64_t first, uint64_t n);
bool fbits_test(const uint64_t *map, uint64_t pfn);
bool fbits_test_and_clear(uint64_t *map, uint64_t pfn);
void fbits_copy_folio(uint64_t *map, uint64_t from, uint64_t to,
		      unsigned order);
void frame_set_dirty(struct pool *h, uint64_t pfn, uint64_t n);
bool frame_test_dirty(struct pool *h, uint64_t pfn);
void frame_set_accessed(struct pool *h, uint64_t pfn, uint64_t n);
int64_t frame_alloc(struct pool *h, unsigned order, bool zero);
void frame_unalloc(struct pool *h, uint64_t pfn, unsigned order);
void frame_put(struct pool *h, uint64_t head);
void frame_put_ref(struct pool *h, uint64_t head);
bool page_dirty(struct pool *h, uint64_t e);
void swapc_drop(struct pool *h, uint64_t e);

/* pool_move.c */
int populate_page(struct pool *h, const struct host_vma *v, uint64_t hva);
int populate_range(struct pool *h, uint64_t start, uint64_t end);

/* pool_notify.c */
void notify_start(struct pool *h, uint64_t start, uint64_t end, bool priv);
void notify_end(struct pool *h, uint64_t start, uint64_t end, bool priv);
void call_hook(struct pool *h, uint64_t start, uint64_t end);

/* pool_tree.c */
/* log2 of the bytes an entry of a node of @level (0: the root) covers */
static inline unsigned radix_shift(unsigned level)
{
	return HOST_PAGE_SHIFT + RADIX_BITS * (RADIX_LEVELS - 1 - level);
}

/* The index of @hva in a node of @level */
static inline unsigned radix_index(uint64_t hva, unsigned level)
{
	return (hva >> radix_shift(level)) & (RADIX_FANOUT - 1);
}
uint64_t *pte_lookup(struct pool *h, uint64_t hva);
uint64_t pte_get(struct pool *h, uint64_t hva);
uint64_t *pte_alloc(struct pool *h, uint64_t hva);
bool radix_prune(struct rnode *n, unsigned level, uint64_t start, uint64_t end);
void radix_free_all(struct rnode *n, unsigned level);
int pte_walk(struct pool *h, uint64_t start, uint64_t end, pte_fn fn,
	     void *arg);
bool range_empty(struct pool *h, uint64_t start, uint64_t end);
bool range_present(struct pool *h, uint64_t start, uint64_t end);
size_t vma_lower(struct pool *h, uint64_t hva);
struct host_vma *vma_find(struct pool *h, uint64_t hva);
bool range_covered(struct pool *h, uint64_t start, uint64_t end);
bool range_unmapped(struct pool *h, uint64_t start, uint64_t end);
bool range_has(struct pool *h, uint64_t start, uint64_t end,
	       bool guest_private);
int vma_reserve(struct pool *h, size_t extra);
void vma_insert(struct pool *h, size_t i, const struct host_vma *v);
void vma_split_at(struct pool *h, uint64_t addr);
void vma_remove_range(struct pool *h, uint64_t start, uint64_t end);
bool find_gap(struct pool *h, uint64_t from, uint64_t len, uint64_t align,
	      uint64_t *out);

#endif
