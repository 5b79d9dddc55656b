/* SPDX-License-Identifier: MIT */
/* host/pool_tree.c - the embedded host's the mapping tree: the radix tree of
 * ptes and the VMA array. Locking and lifetime rules: pool_internal.h. */
#define _GNU_SOURCE
#include "host/pool_internal.h"

/* ------------------------------------------------------------------ */
/* radix tree of ptes                                                  */
/* ------------------------------------------------------------------ */

/*
 * The leaf covering @hva, or NULL.  *@next is set to the first hva after
 * the region the returned leaf (or the missing subtree) covers.
 */
static uint64_t *leaf_find(struct pool *h, uint64_t hva, uint64_t *next)
{
	struct rnode *n = h->root;

	for (unsigned level = 0; level < RADIX_LEVELS - 1; level++) {
		n = n->child[radix_index(hva, level)];
		if (!n) {
			*next = (hva | ((1ull << radix_shift(level)) - 1)) + 1;
			return NULL;
		}
	}
	*next = (hva | ((1ull << RADIX_LEAF_SHIFT) - 1)) + 1;
	return n->pte;
}

uint64_t *pte_lookup(struct pool *h, uint64_t hva)
{
	uint64_t next;
	uint64_t *leaf = leaf_find(h, hva, &next);

	return leaf ? &leaf[radix_index(hva, RADIX_LEVELS - 1)] : NULL;
}

uint64_t pte_get(struct pool *h, uint64_t hva)
{
	uint64_t *pte = pte_lookup(h, hva);

	return pte ? __atomic_load_n(pte, __ATOMIC_RELAXED) : 0;
}

/* Like pte_lookup, allocating missing nodes.  NULL on -ENOMEM. */
uint64_t *pte_alloc(struct pool *h, uint64_t hva)
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
bool radix_prune(struct rnode *n, unsigned level, uint64_t start, uint64_t end)
{
	uint64_t span, next;

	if (level == RADIX_LEVELS - 1)
		return node_empty(n);
	span = 1ull << radix_shift(level);
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

void radix_free_all(struct rnode *n, unsigned level)
{
	if (level < RADIX_LEVELS - 1)
		for (unsigned i = 0; i < RADIX_FANOUT; i++)
			if (n->child[i])
				radix_free_all(n->child[i], level + 1);
	free(n);
}

/* Call @fn on every non-zero pte of [start, end), in address order.  @fn
 * may change ptes (also ptes ahead of it).  Stops at the first non-zero
 * return and returns it. */
int pte_walk(struct pool *h, uint64_t start, uint64_t end, pte_fn fn, void *arg)
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

static int pte_any(struct pool *h, uint64_t hva, uint64_t *pte, void *arg)
{
	return 1;
}

/* true if no page of [start, end) is populated or swapped */
bool range_empty(struct pool *h, uint64_t start, uint64_t end)
{
	return !pte_walk(h, start, end, pte_any, NULL);
}

/* true if every page of [start, end) is present */
bool range_present(struct pool *h, uint64_t start, uint64_t end)
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
size_t vma_lower(struct pool *h, uint64_t hva)
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

struct host_vma *vma_find(struct pool *h, uint64_t hva)
{
	size_t i = vma_lower(h, hva);

	if (i < h->nr_vmas && h->vmas[i].start <= hva)
		return &h->vmas[i];
	return NULL;
}

/* true if every page of [start, end) is in some VMA */
bool range_covered(struct pool *h, uint64_t start, uint64_t end)
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
bool range_unmapped(struct pool *h, uint64_t start, uint64_t end)
{
	size_t i = vma_lower(h, start);

	return i == h->nr_vmas || h->vmas[i].start >= end;
}

/* true if some VMA that intersects [start, end) has guest_private ==
 * @guest_private */
bool range_has(struct pool *h, uint64_t start, uint64_t end, bool guest_private)
{
	for (size_t i = vma_lower(h, start);
	     i < h->nr_vmas && h->vmas[i].start < end; i++)
		if (h->vmas[i].guest_private == guest_private)
			return true;
	return false;
}

int vma_reserve(struct pool *h, size_t extra)
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
void vma_insert(struct pool *h, size_t i, const struct host_vma *v)
{
	memmove(&h->vmas[i + 1], &h->vmas[i],
		(h->nr_vmas - i) * sizeof(*h->vmas));
	h->vmas[i] = *v;
	h->nr_vmas++;
}

/* Make @addr a VMA boundary; capacity for one more must be reserved. */
void vma_split_at(struct pool *h, uint64_t addr)
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
void vma_remove_range(struct pool *h, uint64_t start, uint64_t end)
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
bool find_gap(struct pool *h, uint64_t from, uint64_t len, uint64_t align,
	      uint64_t *out)
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
