/* SPDX-License-Identifier: MIT */
/*
 * buddy.h - the buddy frame allocator of the embedded host.
 *
 * Manages frame numbers (pfn) 0 .. nr_frames-1 in naturally aligned blocks
 * of 2^order frames, order 0 .. BUDDY_MAX_ORDER (4 KiB .. 1 GiB).  It never
 * touches frame memory: all of its state is in side arrays (one state byte
 * and two 32-bit free-list links per frame), reserved with MAP_NORESERVE so
 * that an untouched pool costs (almost) nothing.
 *
 * Locking: one mutex (b->lock) protects the free lists and every state
 * byte.  It is a leaf lock: nothing else is taken under it, and it is never
 * held across a frame copy or fill.  Callers may hold any host lock or none.
 *
 * Lifetime: a block belongs to the caller from buddy_alloc() until
 * buddy_free() of its head.  buddy_split() turns an allocated block into
 * independent order-0 blocks that are then freed one by one.
 */
#ifndef TDP_HOST_BUDDY_H
#define TDP_HOST_BUDDY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define BUDDY_MAX_ORDER 18u
#define BUDDY_NR_ORDERS (BUDDY_MAX_ORDER + 1)

struct buddy_link {
	uint32_t next;
	uint32_t prev;
};

struct buddy {
	pthread_mutex_t lock;
	uint64_t nr_frames;	 /* multiple of 2^BUDDY_MAX_ORDER, <= 2^28 */
	uint8_t *state;		 /* per frame, see buddy.c */
	struct buddy_link *link; /* per frame, valid on free block heads */
	uint32_t head[BUDDY_NR_ORDERS];	   /* free list heads */
	uint64_t nr_free[BUDDY_NR_ORDERS]; /* free blocks per order */
	uint64_t free_frames;
};

/* nr_frames must be a non-zero multiple of 2^BUDDY_MAX_ORDER, at most
 * 2^28.  Returns 0, -EINVAL (bad nr_frames) or -ENOMEM. */
int buddy_init(struct buddy *b, uint64_t nr_frames);
void buddy_fini(struct buddy *b);

/*
 * buddy_alloc - allocate a block of 2^@order frames.  Returns its head pfn
 * (>= 0) or -ENOMEM.  *@dirty is set when some frame of the block has been
 * allocated before (its memory may not be zero); false means every frame
 * is still as the reservation left it (zero).
 */
int64_t buddy_alloc(struct buddy *b, unsigned order, bool *dirty);

/* Free the allocated block whose head is @pfn, at the order it has now.
 * Returns 0, or -EINVAL if @pfn is not the head of an allocated block (the
 * allocator is left unchanged). */
int buddy_free(struct buddy *b, uint64_t pfn);

/* Order of the allocated block headed by @pfn, or -EINVAL. */
int buddy_order(struct buddy *b, uint64_t pfn);

/* Turn the allocated block headed by @pfn into 2^order allocated order-0
 * blocks.  Returns the old order, or -EINVAL. */
int buddy_split(struct buddy *b, uint64_t pfn);

/* Frames currently free. */
uint64_t buddy_free_frames(struct buddy *b);

#endif
