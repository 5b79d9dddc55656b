/* SPDX-License-Identifier: MIT */
/*
 * buddy.c - binary buddy allocator over the frame numbers of the pool.
 *
 * Locking and lifetime rules:
 *  - b->lock (a plain mutex) protects everything in struct buddy: the free
 *    lists, the per-order counters and every per-frame state byte.  It is a
 *    leaf lock, taken with or without host locks held, never held while
 *    frame memory is copied or filled (the allocator never touches frame
 *    memory at all).
 *  - A block is on a free list iff its head's state has ST_FREE; it is
 *    owned by the caller iff its head has ST_ALLOC.  Frames inside a block
 *    (not the head) have neither flag.
 *  - Freeing coalesces with the buddy as long as the buddy is a free block
 *    of the same order, up to BUDDY_MAX_ORDER.
 *  - buddy_split() makes every frame of an allocated block an allocated
 *    order-0 block, so the caller can free them one at a time.
 *
 * Per-frame metadata: one state byte (order, ST_FREE, ST_ALLOC, ST_USED)
 * and one free-list link (two uint32), both in MAP_NORESERVE anonymous
 * memory: only the entries of frames that are actually used get touched.
 * ST_USED is set on every frame of a freed block and never cleared: a
 * frame without it has never been handed out and freed, so its memory is
 * still the zero page of the reservation.
 */
#include "buddy.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#define ST_ORDER_MASK 0x1fu
#define ST_FREE	      0x20u
#define ST_ALLOC      0x40u
#define ST_USED	      0x80u

#define LINK_NONE	 UINT32_MAX
#define BUDDY_MAX_FRAMES (1ull << 28)

static void *meta_alloc(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void meta_free(void *p, size_t bytes)
{
	if (p)
		munmap(p, bytes);
}

static unsigned st_order(uint8_t st)
{
	return st & ST_ORDER_MASK;
}

static void list_push(struct buddy *b, unsigned order, uint32_t pfn)
{
	uint32_t old = b->head[order];

	b->link[pfn].next = old;
	b->link[pfn].prev = LINK_NONE;
	if (old != LINK_NONE)
		b->link[old].prev = pfn;
	b->head[order] = pfn;
	b->state[pfn] = (b->state[pfn] & ST_USED) | ST_FREE | order;
	b->nr_free[order]++;
	b->free_frames += 1ull << order;
}

static void list_del(struct buddy *b, unsigned order, uint32_t pfn)
{
	struct buddy_link *l = &b->link[pfn];

	if (l->prev != LINK_NONE)
		b->link[l->prev].next = l->next;
	else
		b->head[order] = l->next;
	if (l->next != LINK_NONE)
		b->link[l->next].prev = l->prev;
	b->state[pfn] &= ST_USED;
	b->nr_free[order]--;
	b->free_frames -= 1ull << order;
}

int buddy_init(struct buddy *b, uint64_t nr_frames)
{
	uint64_t blk = 1ull << BUDDY_MAX_ORDER;

	memset(b, 0, sizeof(*b));
	if (!nr_frames || nr_frames % blk || nr_frames > BUDDY_MAX_FRAMES)
		return -EINVAL;
	b->nr_frames = nr_frames;
	b->state = meta_alloc(nr_frames);
	b->link = meta_alloc(nr_frames * sizeof(*b->link));
	if (!b->state || !b->link)
		goto fail;
	if (pthread_mutex_init(&b->lock, NULL))
		goto fail;
	for (unsigned o = 0; o < BUDDY_NR_ORDERS; o++)
		b->head[o] = LINK_NONE;
	/* push in reverse so that low pfns are handed out first */
	for (uint64_t pfn = nr_frames; pfn; pfn -= blk)
		list_push(b, BUDDY_MAX_ORDER, (uint32_t)(pfn - blk));
	return 0;
fail:
	meta_free(b->state, nr_frames);
	meta_free(b->link, nr_frames * sizeof(*b->link));
	b->state = NULL;
	b->link = NULL;
	return -ENOMEM;
}

void buddy_fini(struct buddy *b)
{
	if (!b->state)
		return;
	pthread_mutex_destroy(&b->lock);
	meta_free(b->state, b->nr_frames);
	meta_free(b->link, b->nr_frames * sizeof(*b->link));
	b->state = NULL;
	b->link = NULL;
}

/* true if some frame of the block [pfn, pfn + 2^order) has ST_USED */
static bool block_dirty(const struct buddy *b, uint64_t pfn, unsigned order)
{
	for (uint64_t i = 0; i < (1ull << order); i++)
		if (b->state[pfn + i] & ST_USED)
			return true;
	return false;
}

int64_t buddy_alloc(struct buddy *b, unsigned order, bool *dirty)
{
	unsigned o;
	uint32_t pfn;

	if (order > BUDDY_MAX_ORDER)
		return -EINVAL;
	pthread_mutex_lock(&b->lock);
	for (o = order; o < BUDDY_NR_ORDERS; o++)
		if (b->head[o] != LINK_NONE)
			break;
	if (o == BUDDY_NR_ORDERS) {
		pthread_mutex_unlock(&b->lock);
		return -ENOMEM;
	}
	pfn = b->head[o];
	list_del(b, o, pfn);
	while (o > order) {
		o--;
		list_push(b, o, pfn + (1u << o));
	}
	b->state[pfn] = (b->state[pfn] & ST_USED) | ST_ALLOC | order;
	if (dirty)
		*dirty = block_dirty(b, pfn, order);
	pthread_mutex_unlock(&b->lock);
	return pfn;
}

static bool is_alloc_head(const struct buddy *b, uint64_t pfn)
{
	return pfn < b->nr_frames && (b->state[pfn] & ST_ALLOC);
}

int buddy_free(struct buddy *b, uint64_t pfn)
{
	unsigned order;

	pthread_mutex_lock(&b->lock);
	if (!is_alloc_head(b, pfn)) {
		pthread_mutex_unlock(&b->lock);
		return -EINVAL;
	}
	order = st_order(b->state[pfn]);
	for (uint64_t i = 0; i < (1ull << order); i++)
		b->state[pfn + i] = ST_USED;
	while (order < BUDDY_MAX_ORDER) {
		uint64_t bud = pfn ^ (1ull << order);
		uint8_t st = b->state[bud];

		if (!(st & ST_FREE) || st_order(st) != order)
			break;
		list_del(b, order, (uint32_t)bud);
		pfn &= ~(1ull << order);
		order++;
	}
	list_push(b, order, (uint32_t)pfn);
	pthread_mutex_unlock(&b->lock);
	return 0;
}

int buddy_order(struct buddy *b, uint64_t pfn)
{
	int ret = -EINVAL;

	pthread_mutex_lock(&b->lock);
	if (is_alloc_head(b, pfn))
		ret = (int)st_order(b->state[pfn]);
	pthread_mutex_unlock(&b->lock);
	return ret;
}

int buddy_split(struct buddy *b, uint64_t pfn)
{
	unsigned order;

	pthread_mutex_lock(&b->lock);
	if (!is_alloc_head(b, pfn)) {
		pthread_mutex_unlock(&b->lock);
		return -EINVAL;
	}
	order = st_order(b->state[pfn]);
	for (uint64_t i = 0; i < (1ull << order); i++)
		b->state[pfn + i] = (b->state[pfn + i] & ST_USED) | ST_ALLOC;
	pthread_mutex_unlock(&b->lock);
	return (int)order;
}

uint64_t buddy_free_frames(struct buddy *b)
{
	uint64_t n;

	pthread_mutex_lock(&b->lock);
	n = b->free_frames;
	pthread_mutex_unlock(&b->lock);
	return n;
}
