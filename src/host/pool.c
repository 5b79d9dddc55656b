/* SPDX-License-Identifier: MIT */
/* host/pool.c - the embedded host: creation, destruction and statistics,
 * the copies of tdp_host_read/write, aging, and the interface the VM side
 * uses (host.h: gup with its lockless gup-fast, put, marks, lookups).
 * Locking and lifetime rules: pool_internal.h. */
#define _GNU_SOURCE
#include "host/pool_internal.h"

/* ------------------------------------------------------------------ */
/* create / destroy / stats                                            */
/* ------------------------------------------------------------------ */

static int pool_reserve(struct pool *h, uint64_t bytes, int memfd)
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
	/* the process backend: the frames are the memfd's pages, pfn N at
	 * offset N * 4096, mapped shared over the aligned reservation */
	if (memfd >= 0 &&
	    mmap(base, bytes, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED | MAP_NORESERVE, memfd,
		 0) == MAP_FAILED) {
		munmap(base, bytes);
		return -ENOMEM;
	}
	h->pool = base;
	h->pool_bytes = bytes;
	h->nr_frames = bytes >> HOST_PAGE_SHIFT;
	h->memfd = memfd;
	return 0;
}

/* bytes of a per-frame bitmap (fdirty, faccessed) */
static size_t fbits_len(const struct pool *h)
{
	return (h->nr_frames + 63) / 64 * sizeof(uint64_t);
}

static size_t swapc_len(const struct pool *h)
{
	return h->nr_frames * sizeof(*h->swapc);
}

int pool_host_create(const struct tdp_host_config *cfg, struct tdp_host **out)
{
	uint64_t bytes = cfg ? cfg->mem_bytes : 0;
	struct pool *h;
	int ret;

	if (!out || bytes > POOL_MAX)
		return -EINVAL;
	/* per-slot members (percpu.h) are cache-line aligned */
	h = aligned_alloc(_Alignof(struct pool),
			  (sizeof(*h) + _Alignof(struct pool) - 1) &
				  ~(_Alignof(struct pool) - 1));
	if (!h)
		return -ENOMEM;
	memset(h, 0, sizeof(*h));
	ret = pool_init(h, bytes ? ALIGN_UP(bytes, POOL_ALIGN) : POOL_DEFAULT,
			-1);
	if (ret) {
		free(h);
		return ret;
	}
	*out = &h->host;
	return 0;
}

int pool_init(struct pool *h, uint64_t bytes, int memfd)
{
	size_t refs_len;
	int ret = -ENOMEM;

	if (pool_reserve(h, bytes, memfd))
		return ret;
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
	h->host.ops = &pool_backend_ops;
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
	return ret;
}

static int free_swap_cb(struct pool *h, uint64_t hva, uint64_t *pte, void *arg)
{
	if (pte_swapped(*pte))
		free(pte_swap_copy(*pte)); /* NULL if missing */
	else
		swapc_drop(h, *pte);
	return 0;
}

static void pool_destroy(struct tdp_host *th)
{
	struct pool *h = to_pool(th);
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
	if (h->mirror)
		h->mirror->fini(h);
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
	if (h->memfd >= 0)
		close(h->memfd);
	free(h);
}

static void pool_get_stats(struct tdp_host *th, struct tdp_host_stats *out)
{
	struct pool *h = to_pool(th);

	if (!h || !out)
		return;
	memset(out, 0, sizeof(*out));
	out->frames_total = h->nr_frames;
	out->frames_used = STAT_GET(h, frames_used);
	{
		/* every reference, summed over the frames (heads carry a
		 * folio's): mapping references plus pins */
		uint64_t all = 0;
		uint64_t hwm =
			__atomic_load_n(&h->frames_hwm, __ATOMIC_RELAXED);

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
	out->missing_filled = STAT_GET(h, missing_filled);
}

/* ------------------------------------------------------------------ */
/* read / write                                                        */
/* ------------------------------------------------------------------ */

/* 0, -EFAULT or -EACCES for an access to [start, end); the first problem
 * in address order wins.  An access that passes is -EPERM if the range has
 * a guest-private page. */
static int access_check(struct pool *h, uint64_t start, uint64_t end,
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

static void access_copy(struct pool *h, uint64_t hva, uint8_t *buf,
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

static int host_access(struct pool *h, uint64_t hva, uint8_t *buf, uint64_t len,
		       bool write)
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

static int pool_read(struct tdp_host *th, uint64_t hva, void *buf, uint64_t len)
{
	struct pool *h = to_pool(th);

	return host_access(h, hva, buf, len, false);
}

static int pool_write(struct tdp_host *th, uint64_t hva, const void *buf,
		      uint64_t len)
{
	struct pool *h = to_pool(th);

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
static int age_cb(struct pool *h, uint64_t hva, uint64_t *pte, void *arg)
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

static void notify_age(struct pool *h, uint64_t start, uint64_t end,
		       unsigned flags, uint64_t *young)
{
	for (struct tdp_host_notifier *n = h->notifiers; n; n = n->next)
		if (n->ops && n->ops->age)
			n->ops->age(n, start, end, flags, young);
}

static int pool_age(struct tdp_host *th, uint64_t hva, uint64_t len,
		    unsigned flags, uint64_t *young)
{
	struct pool *h = to_pool(th);
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
	aw = (struct age_walk){.start = hva,
			       .bitmap = bm,
			       .clear = !(flags & TDP_AGE_TEST_ONLY)};
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
static int gup_locked(struct pool *h, uint64_t hva, bool write, bool populate,
		      struct host_gup *out)
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

/* The pte slot of @hva without the mmap lock, or NULL if there is none:
 * atomic loads from the root down, inside an RCU read section (nodes are
 * freed after a grace period, so the slot's node stays allocated until
 * the section ends; pool_tree.c). */
static uint64_t *pte_lookup_lockless(struct pool *h, uint64_t hva)
{
	struct rnode *n = h->root;

	for (unsigned level = 0; level < RADIX_LEVELS - 1; level++) {
		n = __atomic_load_n(&n->child[radix_index(hva, level)],
				    __ATOMIC_ACQUIRE);
		if (!n)
			return NULL;
	}
	return &n->pte[radix_index(hva, RADIX_LEVELS - 1)];
}

/* gup-fast-get-freed (inject.h): a plain increment, as if the count
 * could not be 0, so a frame being freed gets a reference back. */
TDP_INJECT_FN void inj_gup_fast_get_freed(uint32_t *ref)
{
	sched_yield();
	__atomic_add_fetch(ref, 1, __ATOMIC_SEQ_CST);
}

/*
 * gup-fast: pin the page at @hva without the mmap lock, as Linux's
 * get_user_pages_fast walks the page tables locklessly.  Only a present
 * pte whose protection allows the access qualifies; anything else (not
 * populated, swapped, refused, or a race) returns -EAGAIN for the locked
 * path, which decides.  The reference is taken only if the folio's count
 * is not 0 (a frame being freed is never revived), and then the pte is
 * read again, through the slot found by the first read (Linux's recheck
 * of ptep: only an empty leaf node is ever unlinked, so a slot whose node
 * was unlinked reads 0 and fails the check).  If it changed, the mapping
 * that made the frame reachable may be gone, and the pin is given back.
 * If it did not, the frame was mapped at @hva at a moment after the pin
 * was taken, which is all the locked lookup promises too: the caller's
 * invalidation sequence (sampled before the lookup, checked after it
 * under mmu_lock) covers a change of the pte after that moment, exactly as
 * it covers one after the locked lookup drops the lock.
 */
int gup_fast(struct pool *h, uint64_t hva, bool write, struct host_gup *out)
{
	uint32_t *ref, old;
	uint64_t e, head, *ptep;

	tdp_rcu_read_lock();
	ptep = pte_lookup_lockless(h, hva);
	e = ptep ? __atomic_load_n(ptep, __ATOMIC_ACQUIRE) : 0;
	if (!pte_present(e) || !(pte_prot(e) & TDP_PROT_READ) ||
	    (write && !(pte_prot(e) & TDP_PROT_WRITE)))
		goto slow;
	head = pte_head_pfn(e, hva);
	ref = &h->refs[head];
	if (INJECTED(h->inject, INJ_GUP_FAST_GET_FREED)) {
		inj_gup_fast_get_freed(ref);
	} else {
		old = __atomic_load_n(ref, __ATOMIC_RELAXED);
		do {
			if (!old)
				goto slow;
		} while (!__atomic_compare_exchange_n(ref, &old, old + 1, false,
						      __ATOMIC_SEQ_CST,
						      __ATOMIC_RELAXED));
	}
	if (__atomic_load_n(ptep, __ATOMIC_ACQUIRE) != e) {
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

static int pool_gup(struct tdp_host *th, uint64_t hva, bool write,
		    struct host_gup *out)
{
	struct pool *h = to_pool(th);
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

static void pool_set_inject(struct tdp_host *th, int id)
{
	struct pool *h = to_pool(th);

	if (h)
		h->inject = id;
}

static void pool_put_frame(struct tdp_host *th, uint64_t ref_pfn)
{
	struct pool *h = to_pool(th);

	if (!h || ref_pfn >= h->nr_frames) {
		fprintf(stderr, "tdpmmu host: put of bad pfn %#llx\n",
			(unsigned long long)ref_pfn);
		return;
	}
	frame_put_ref(h, ref_pfn);
}

static void pool_mark_dirty(struct tdp_host *th, uint64_t pfn, uint64_t npages)
{
	struct pool *h = to_pool(th);

	if (!h || pfn >= h->nr_frames)
		return;
	if (npages > h->nr_frames - pfn)
		npages = h->nr_frames - pfn;
	frame_set_dirty(h, pfn, npages);
}

static void pool_mark_accessed(struct tdp_host *th, uint64_t pfn,
			       uint64_t npages)
{
	struct pool *h = to_pool(th);

	if (!h || pfn >= h->nr_frames)
		return;
	if (npages > h->nr_frames - pfn)
		npages = h->nr_frames - pfn;
	frame_set_accessed(h, pfn, npages);
}

static int pool_page_dirty(struct tdp_host *th, uint64_t hva)
{
	struct pool *h = to_pool(th);
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

static uint64_t pool_swap_cached(struct tdp_host *th)
{
	struct pool *h = to_pool(th);

	return h ? STAT_GET(h, swap_cached) : 0;
}

static uint8_t *pool_frame_base(struct tdp_host *th)
{
	struct pool *h = to_pool(th);

	return h ? h->pool : NULL;
}

static int pool_lookup(struct tdp_host *th, uint64_t hva, uint64_t *pfn,
		       unsigned *order, unsigned *prot)
{
	struct pool *h = to_pool(th);
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

static bool pool_range_mapped(struct tdp_host *th, uint64_t hva, uint64_t len)
{
	struct pool *h = to_pool(th);
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

static bool pool_range_private(struct tdp_host *th, uint64_t hva, uint64_t len)
{
	struct pool *h = to_pool(th);
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

static bool pool_range_has_private(struct tdp_host *th, uint64_t hva,
				   uint64_t len)
{
	struct pool *h = to_pool(th);
	int taken;
	bool ret;

	if (!h || !len || len > UINT64_MAX - hva)
		return false;
	taken = mmap_read_lock(h);
	ret = range_has(h, ALIGN_DOWN(hva, PAGE_SIZE_), hva + len, true);
	mmap_read_unlock(h, taken);
	return ret;
}

/* The embedded pool as a host backend (host.h). */
const struct host_backend_ops pool_backend_ops = {
	.name = "pool",
	.gup = pool_gup,
	.put_frame = pool_put_frame,
	.mark_dirty = pool_mark_dirty,
	.mark_accessed = pool_mark_accessed,
	.frame_base = pool_frame_base,
	.lookup = pool_lookup,
	.page_dirty = pool_page_dirty,
	.swap_cached = pool_swap_cached,
	.range_mapped = pool_range_mapped,
	.range_private = pool_range_private,
	.range_has_private = pool_range_has_private,
	.notifier_register = pool_notifier_register,
	.notifier_unregister = pool_notifier_unregister,
	.set_inject = pool_set_inject,
	.set_test_hook = pool_set_test_hook,
	.destroy = pool_destroy,
	.get_stats = pool_get_stats,
	.mmap = pool_mmap,
	.munmap = pool_munmap,
	.punch_hole = pool_punch_hole,
	.mprotect = pool_mprotect,
	.migrate = pool_migrate,
	.swap_out = pool_swap_out,
	.split = pool_split,
	.set_missing = pool_set_missing,
	.read = pool_read,
	.write = pool_write,
	.age = pool_age,
};
