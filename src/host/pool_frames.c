/* SPDX-License-Identifier: MIT */
/* host/pool_frames.c - the embedded host's frames: per-frame dirty/accessed
 * bits, reference counts, allocation and release, retained swap copies. Locking
 * and lifetime rules: pool_internal.h. */
#define _GNU_SOURCE
#include "host/pool_internal.h"

/* ------------------------------------------------------------------ */
/* per-frame bitmaps: dirty and accessed bits                          */
/* ------------------------------------------------------------------ */

uint64_t bits_mask(uint64_t first, uint64_t n)
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
		if ((__atomic_load_n(&map[pfn >> 6], __ATOMIC_RELAXED) & m) !=
		    m)
			__atomic_fetch_or(&map[pfn >> 6], m, __ATOMIC_RELAXED);
		pfn += c;
		n -= c;
	}
}

bool fbits_test(const uint64_t *map, uint64_t pfn)
{
	return __atomic_load_n(&map[pfn >> 6], __ATOMIC_RELAXED) &
	       (1ull << (pfn & 63));
}

/* Clear the bit of frame @pfn in @map; returns whether it was set. */
bool fbits_test_and_clear(uint64_t *map, uint64_t pfn)
{
	uint64_t bit = 1ull << (pfn & 63);

	/* a plain load first: aging mostly finds old pages, and a clear
	 * would dirty the bitmap's cache line for nothing */
	if (!(__atomic_load_n(&map[pfn >> 6], __ATOMIC_RELAXED) & bit))
		return false;
	return __atomic_fetch_and(&map[pfn >> 6], ~bit, __ATOMIC_RELAXED) & bit;
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
void fbits_copy_folio(uint64_t *map, uint64_t from, uint64_t to, unsigned order)
{
	uint64_t n = 1ull << order;

	if (n < 64) {
		uint64_t v =
			__atomic_load_n(&map[from >> 6], __ATOMIC_RELAXED) >>
				(from & 63) &
			bits_mask(0, n);

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

void frame_set_dirty(struct pool *h, uint64_t pfn, uint64_t n)
{
	fbits_set(h->fdirty, pfn, n);
}

bool frame_test_dirty(struct pool *h, uint64_t pfn)
{
	return fbits_test(h->fdirty, pfn);
}

void frame_set_accessed(struct pool *h, uint64_t pfn, uint64_t n)
{
	fbits_set(h->faccessed, pfn, n);
}

/* A folio is born and dies with all its dirty and accessed bits clear. */
static void frame_clear_state(struct pool *h, uint64_t pfn, unsigned order)
{
	fbits_clear_folio(h->fdirty, pfn, order);
	fbits_clear_folio(h->faccessed, pfn, order);
}

/* ------------------------------------------------------------------ */
/* frames and references                                               */
/* ------------------------------------------------------------------ */

static void frame_zero(struct pool *h, uint64_t pfn, unsigned order)
{
	uint8_t *p = frame_ptr(h, pfn);
	uint64_t n = folio_bytes(order);

	/* the process backend: punch the memfd's pages out (madvise would
	 * only drop this mapping of them) */
	if (h->memfd >= 0 &&
	    !fallocate(h->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		       (off_t)(pfn << HOST_PAGE_SHIFT), (off_t)n))
		return;
	/* huge blocks: hand the memory back, it reads as zero afterwards */
	if (order >= HOST_ORDER_2M && !madvise(p, n, MADV_DONTNEED))
		return;
	wordfill_frame(p, 0, n);
}

/* Allocate a folio with one reference.  Returns its pfn or -ENOMEM. */
int64_t frame_alloc(struct pool *h, unsigned order, bool zero)
{
	bool dirty;
	int64_t pfn = buddy_alloc(&h->buddy, order, &dirty);

	if (pfn < 0)
		return pfn;
	if (zero && dirty)
		frame_zero(h, (uint64_t)pfn, order);
	{
		uint64_t end = (uint64_t)pfn + (1ull << order);
		uint64_t cur =
			__atomic_load_n(&h->frames_hwm, __ATOMIC_RELAXED);

		while (cur < end && !__atomic_compare_exchange_n(
					    &h->frames_hwm, &cur, end, false,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
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

/* Give back a folio from frame_alloc() that was never mapped.  Its count
 * is dropped like any other reference, never overwritten: gup-fast may
 * hold a speculative reference on it (taken through a pte that mapped
 * the frame before it was freed and allocated again), and then the last
 * of the two frees it. */
void frame_unalloc(struct pool *h, uint64_t pfn, unsigned order)
{
	(void)order;
	frame_put(h, pfn);
}

/* The last reference is gone: poison the folio and free it (in both
 * backends: a stale access finds poison, which tests and the torture
 * look for; the process backend's memfd keeps the page until the frame is
 * allocated again and zeroed by a punch). */
static void frame_release(struct pool *h, uint64_t head)
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

void frame_put(struct pool *h, uint64_t head)
{
	SLOT_ADD(h, frame_refs, -1);
	frame_put_ref(h, head);
}

/* Drop a reference without counting it in the mapping references (a
 * pin: tdp_host_get_stats counts pins as the rest of the frames'
 * counts). */
void frame_put_ref(struct pool *h, uint64_t head)
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

/* Is the present page @e (mapping some hva) dirty?  mmap lock held.  In
 * the process backend always: the program writes through its pointers
 * without the host seeing it. */
bool page_dirty(struct pool *h, uint64_t e)
{
	uint64_t pfn = pte_pfn(e);

	return h->memfd >= 0 || pte_order(e) || !h->swapc[pfn] ||
	       frame_test_dirty(h, pfn);
}

/* Free the retained copy of the present page @e, if any.  Write lock. */
void swapc_drop(struct pool *h, uint64_t e)
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
