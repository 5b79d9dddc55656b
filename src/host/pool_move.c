/* SPDX-License-Identifier: MIT */
/* host/pool_move.c - the embedded host's the operations that move memory:
 * population, splitting, mmap/munmap/mprotect/split, migration and swap-out.
 * Locking and lifetime rules: pool_internal.h. */
#define _GNU_SOURCE
#include "host/pool_internal.h"

/* ------------------------------------------------------------------ */
/* splitting huge folios                                               */
/* ------------------------------------------------------------------ */

/* Split the huge folio that maps @hva (if any) into order-0 frames. */
static void split_folio(struct pool *h, uint64_t hva)
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
static void split_partial(struct pool *h, uint64_t start, uint64_t end)
{
	uint64_t e = pte_get(h, start);

	if (pte_present(e) && start % folio_bytes(pte_order(e)))
		split_folio(h, start);
	e = pte_get(h, end - PAGE_SIZE_);
	if (pte_present(e) && end % folio_bytes(pte_order(e)))
		split_folio(h, end - PAGE_SIZE_);
}

static int split_cb(struct pool *h, uint64_t hva, uint64_t *pte, void *arg)
{
	if (pte_present(*pte) && pte_order(*pte))
		split_folio(h, hva);
	return 0;
}

/* Split every huge folio that intersects [start, end). */
static void split_all(struct pool *h, uint64_t start, uint64_t end)
{
	pte_walk(h, start, end, split_cb, NULL);
}

/* Widen [*start, *end) to the folios it covers partly: the range whose
 * mapping level changes when they are split. */
static void widen_to_folios(struct pool *h, uint64_t *start, uint64_t *end)
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

/* A missing page: its content from the fill function, straight into a
 * new frame. */
static int fill_in(struct pool *h, const struct host_vma *v, uint64_t hva,
		   uint64_t *pte)
{
	int64_t pfn = frame_alloc(h, 0, false);
	int r;

	if (pfn < 0)
		return -ENOMEM;
	r = h->fill_fn(h->fill_arg, hva, frame_ptr(h, (uint64_t)pfn));
	if (r) {
		frame_unalloc(h, (uint64_t)pfn, 0);
		return r < 0 ? r : -EIO;
	}
	pte_set(pte, pte_mk_present((uint64_t)pfn, 0, vma_attrs(v)));
	STAT_ADD(h, missing_filled, 1);
	return 0;
}

static int swap_in(struct pool *h, const struct host_vma *v, uint64_t hva,
		   uint64_t *pte)
{
	void *copy = pte_swap_copy(*pte);
	int64_t pfn;

	if (pte_missing(*pte))
		return fill_in(h, v, hva, pte);
	pfn = frame_alloc(h, 0, false);
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
static int populate_folio(struct pool *h, const struct host_vma *v, uint64_t fs)
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
static bool folio_fits(struct pool *h, const struct host_vma *v, uint64_t hva)
{
	uint64_t size = folio_bytes(v->order);
	uint64_t fs = ALIGN_DOWN(hva, size);

	if (!v->order || fs < v->start || fs + size > v->end)
		return false;
	return range_empty(h, fs, fs + size);
}

/* Fault in the page at @hva of @v.  Write lock held. */
static int populate_one(struct pool *h, const struct host_vma *v, uint64_t hva,
			uint64_t *size)
{
	uint64_t *pte = pte_alloc(h, hva);
	int64_t pfn;

	*size = PAGE_SIZE_;
	if (!pte)
		return -ENOMEM;
	if (pte_swapped(*pte))
		return swap_in(h, v, hva, pte);
	if (pte_present(*pte))
		return 0;
	if (folio_fits(h, v, hva) &&
	    !populate_folio(h, v, ALIGN_DOWN(hva, folio_bytes(v->order)))) {
		*size = folio_bytes(v->order);
		return 0;
	}
	/* fall back to a small frame, as THP does */
	pfn = frame_alloc(h, 0, true);
	if (pfn < 0)
		return -ENOMEM;
	pte_set(pte_lookup(h, hva),
		pte_mk_present((uint64_t)pfn, 0, vma_attrs(v)));
	return 0;
}

/* ... and show it to the process (the process backend's mirror) */
int populate_page(struct pool *h, const struct host_vma *v, uint64_t hva)
{
	uint64_t size;
	int ret = populate_one(h, v, hva, &size);

	if (!ret) {
		uint64_t s = ALIGN_DOWN(hva, size);

		mirror_sync(h, s, s + size, false);
	}
	return ret;
}

/* Fault in every page of the covered range [start, end). */
int populate_range(struct pool *h, uint64_t start, uint64_t end)
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
/* mmap / munmap / mprotect / split                                    */
/* ------------------------------------------------------------------ */

int pool_mmap(struct tdp_host *th, uint64_t len, unsigned prot,
	      uint64_t folio_size, unsigned flags, uint64_t *hva)
{
	struct pool *h = to_pool(th);
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
	if (h->mirror) {
		/* the process's address space decides where, and whether */
		ret = h->mirror->reserve(h, len, folio_size,
					 flags & TDP_MAP_FIXED, &a);
		if (!ret && !range_unmapped(h, a, a + len)) {
			h->mirror->unreserve(h, a, len);
			ret = -EEXIST;
		}
	} else if (flags & TDP_MAP_FIXED) {
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
	mirror_sync(h, a, a + len, false);
	if (!(flags & TDP_MAP_FIXED))
		h->mmap_cursor = a + len;
	*hva = a;
out:
	mmap_write_unlock(h);
	return ret;
}

/* A pte that was just replaced held no frame: it was missing, or swapped
 * out (its copy is freed here).  false if it may hold a frame. */
static bool drop_frameless(struct pool *h, uint64_t e)
{
	if (pte_missing(e))
		return true;
	if (pte_swapped(e)) {
		free(pte_swap_copy(e));
		STAT_SUB(h, swapped_pages, 1);
		return true;
	}
	return false;
}

static int unmap_cb(struct pool *h, uint64_t hva, uint64_t *pte, void *arg)
{
	uint64_t e = *pte;

	pte_set(pte, 0);
	if (drop_frameless(h, e))
		return 0;
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
static int lock_covered(struct pool *h, uint64_t hva, uint64_t len,
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

int pool_munmap(struct tdp_host *th, uint64_t hva, uint64_t len)
{
	struct pool *h = to_pool(th);
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
	if (h->mirror)
		h->mirror->unmap(h, hva, end);
	if (priv)
		notify_end(h, s, e, true);
	notify_end(h, s, e, false);
out:
	mmap_write_unlock(h);
	return ret;
}

/* punch_hole: unmap_cb on a guest-private page, which the host never
 * swaps (swap_out refuses it): so it has no swap pte or retained copy. */
static int punch_cb(struct pool *h, uint64_t hva, uint64_t *pte, void *arg)
{
	TDP_ASSERT_MSG(pte_present(*pte) &&
			       (pte_order(*pte) || !h->swapc[pte_pfn(*pte)]),
		       "guest-private page at hva %#llx was swapped",
		       (unsigned long long)hva);
	return unmap_cb(h, hva, pte, arg);
}

int pool_punch_hole(struct tdp_host *th, uint64_t hva, uint64_t len)
{
	struct pool *h = to_pool(th);
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
static bool prot_removed(struct pool *h, uint64_t start, uint64_t end,
			 unsigned prot)
{
	for (size_t i = vma_lower(h, start);
	     i < h->nr_vmas && h->vmas[i].start < end; i++)
		if (h->vmas[i].prot & ~prot)
			return true;
	return false;
}

/* mprotect: the present ptes carry the new protection */
static int reprot_cb(struct pool *h, uint64_t hva, uint64_t *pte, void *arg)
{
	uint64_t e = *pte;

	if (pte_present(e))
		pte_set(pte, (e & ~(7ull << PTE_PROT_SHIFT)) |
				     ((uint64_t) * (const unsigned *)arg
				      << PTE_PROT_SHIFT));
	return 0;
}

int pool_mprotect(struct tdp_host *th, uint64_t hva, uint64_t len,
		  unsigned prot)
{
	struct pool *h = to_pool(th);
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
	mirror_sync(h, hva, end, false);
	if (notify)
		notify_end(h, s, e, false);
out:
	mmap_write_unlock(h);
	return ret;
}

int pool_split(struct tdp_host *th, uint64_t hva, uint64_t len)
{
	struct pool *h = to_pool(th);
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
static int plan_cb(struct pool *h, uint64_t hva, uint64_t *pte, void *arg)
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
static int plan_build(struct pool *h, struct plan *pl, uint64_t start,
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

static void plan_drop_old(struct pool *h, struct plan *pl)
{
	for (size_t i = 0; i < pl->n; i++)
		frame_put(h, pl->m[i].old_pfn);
}

/* Allocate the new folios of a migration, all or nothing. */
static int migrate_alloc(struct pool *h, struct plan *pl)
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

static void migrate_one(struct pool *h, const struct move *m)
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

int pool_migrate(struct tdp_host *th, uint64_t hva, uint64_t len)
{
	struct pool *h = to_pool(th);
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
	/* the process's touches wait until the copies are done */
	mirror_sync(h, hva, end, true);
	split_partial(h, hva, end);
	for (size_t i = 0; i < pl.n; i++)
		migrate_one(h, &pl.m[i]);
	mirror_sync(h, hva, end, false);
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
static void swap_out_one(struct pool *h, const struct move *m)
{
	uint64_t *pte = pte_lookup(h, m->hva);
	bool clean;

	/* split already: the page is an order-0 folio at old_pfn */
	TDP_ASSERT(pte_present(*pte) && !pte_order(*pte) &&
		   pte_pfn(*pte) == m->old_pfn);
	clean = !page_dirty(h, *pte);

	if (m->cached) {
		h->swapc[m->old_pfn] = NULL;
		STAT_SUB(h, swap_cached, 1);
	}
	if (clean)
		STAT_ADD(h, swap_out_clean, 1);
	else
		wordcopy_from_frame(m->copy, frame_ptr(h, m->old_pfn),
				    PAGE_SIZE_);
	pte_set(pte, pte_mk_swap(m->copy));
}

int pool_swap_out(struct tdp_host *th, uint64_t hva, uint64_t len)
{
	struct pool *h = to_pool(th);
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
	mirror_sync(h, hva, end, true);
	split_all(h, hva, end);
	for (size_t i = 0; i < pl.n; i++)
		swap_out_one(h, &pl.m[i]);
	mirror_sync(h, hva, end, false);
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
/* missing pages (post-copy)                                           */
/* ------------------------------------------------------------------ */

/* Make the page missing; collect the frame it had (to drop after the
 * invalidation ends, as swap-out does). */
static int missing_cb(struct pool *h, uint64_t hva, uint64_t *pte, void *arg)
{
	struct plan *pl = arg;
	uint64_t e = *pte;

	pte_set(pte, PTE_MISSING);
	if (drop_frameless(h, e))
		return 0;
	if (pte_present(e)) {
		/* split already: an order-0 folio */
		swapc_drop(h, e);
		pl->m[pl->n++].old_pfn = pte_pfn(e);
	}
	return 0;
}

int pool_set_missing(struct tdp_host *th, uint64_t hva, uint64_t len,
		     tdp_host_fill_fn fn, void *arg)
{
	struct pool *h = to_pool(th);
	uint64_t end = hva + len, s = hva, e = end;
	struct plan pl;
	int ret;

	if (!fn)
		return -EINVAL;
	ret = lock_covered(h, hva, len, REFUSE_PRIVATE);
	if (ret)
		return ret;
	/* a pte for every page, and room for every frame to drop */
	for (uint64_t p = hva; p < end; p += PAGE_SIZE_)
		if (!pte_alloc(h, p)) {
			ret = -ENOMEM;
			goto out;
		}
	pl = (struct plan){.start = hva, .end = end};
	pl.m = calloc(len / PAGE_SIZE_, sizeof(*pl.m));
	if (!pl.m) {
		ret = -ENOMEM;
		goto out;
	}
	h->fill_fn = fn;
	h->fill_arg = arg;
	widen_to_folios(h, &s, &e);
	notify_start(h, s, e, false);
	call_hook(h, s, e);
	split_all(h, hva, end);
	for (uint64_t p = hva; p < end; p += PAGE_SIZE_)
		missing_cb(h, p, pte_lookup(h, p), &pl);
	mirror_sync(h, hva, end, false);
	notify_end(h, s, e, false);
	plan_drop_old(h, &pl);
	free(pl.m);
out:
	mmap_write_unlock(h);
	return ret;
}
