/* SPDX-License-Identifier: MIT */
/*
 * rmap.h - reverse maps for the legacy (shadow) MMU engine: for one gfn, at
 * one level, in one memslot, every entry (sptep, a pointer to a uint64_t in
 * a page table) that maps it.  A lower layer: it knows entries only through
 * spte_present(), and mmu_lock only through the lock.h assertions.
 *
 * Encoding.  A head is one atomic word, a tagged pointer (entry and
 * descriptor pointers are 8-byte aligned, so bits 0-2 are free):
 *   0                      empty;
 *   sptep                  exactly one entry (bit RMAP_MANY clear);
 *   desc | RMAP_MANY       a list of descriptors, two entries or more;
 *   ... | RMAP_LOCKED      the head is locked (by a writer or a lockless
 *                          reader); the rest of the word is unchanged.
 * Every value this module returns or hands to a caller has RMAP_LOCKED
 * clear.  A list starts at its head descriptor, the only one that may be
 * partly used (1..RMAP_DESC_CAP entries, sptes[0..count-1]); every
 * descriptor after it (->more) is full, so the total is
 * head->count + head->tail and an add or a remove touches the head
 * descriptor only: an add goes into the head descriptor, or into a new one
 * put in front of it when it is full; a remove fills the hole with the
 * head descriptor's last entry, and frees the head descriptor when that
 * empties it.  When the total drops to one, the last descriptor is freed
 * and the head goes back to the bare sptep; at zero the head is 0.
 *
 * Locking.  Who holds what:
 *  - Writers (rmap_add, rmap_remove, rmap_zap_all) hold mmu_lock for WRITE
 *    (asserted), so writers of one head never race each other; they also
 *    lock the head itself (compare-exchange setting RMAP_LOCKED, spinning
 *    while someone else has it), only to exclude lockless readers, and
 *    unlock it by a release store of the new value.  An empty head is not
 *    locked (there is nothing a reader could be walking), as in KVM.
 *  - Locked readers (for_each_rmap_spte, rmap_count) hold mmu_lock, read
 *    or write (asserted), and do not lock the head: no writer can run.
 *  - Lockless readers (aging: rmap_walk_lockless, or rmap_lock_readonly +
 *    for_each_rmap_spte_lockless + rmap_unlock_readonly) hold no mmu_lock.
 *    They take the head's lock in read-only mode: the same RMAP_LOCKED
 *    bit, so writers of this head (and other lockless readers of it) wait;
 *    they never change the value and unlock by storing back what they
 *    locked.  An empty head is not locked and has nothing to walk.
 * A head lock is a spin lock held for one walk or one update: its holder
 * must not block, take mmu_lock, or lock another head meanwhile (a writer
 * spinning on the head holds mmu_lock for write).
 *
 * Lifetime of descriptors.  Allocated by rmap_add (malloc, before the head
 * is locked), freed (poisoned, then free) by the writer that unlinked
 * them, after it unlocked the head.  Freeing at once is safe because a
 * descriptor is reachable only through its head: a lockless reader walks
 * only while it holds the head lock, so no reader is inside a list while a
 * writer changes it, and once the writer's new value is published nobody
 * can reach the unlinked descriptors.  Every walker checks the magic of
 * each descriptor it enters and the alignment of each sptep, so a walk of
 * a freed descriptor (a broken protocol) aborts instead of wandering.
 * Likewise the page tables holding the entries: an entry stays in its rmap
 * until removed, which needs the head lock, so a table cannot be freed
 * under a lockless reader that holds the lock (the caller's rule: remove
 * every entry of a table from its rmap before freeing the table).
 *
 * Present entries.  The zap protocol is: clear the entry (store a
 * non-present value), then remove it from its rmap, both within one
 * write-locked section of mmu_lock (rmap_zap_all clears entries through
 * its callback with the head locked).  Hence the two walkers differ
 * (seed 002):
 *  - Under mmu_lock no zap is halfway, so every entry in an rmap is
 *    present, and for_each_rmap_spte asserts it (acquire load +
 *    spte_present; TDP_ASSERT_MSG aborts): a non-present entry means a
 *    writer dropped mmu_lock with a zapped entry still in the rmap.
 *  - A lockless reader can lock the head between the two steps of a zap
 *    (the zapper clears the entry, then spins on the head the reader
 *    holds), and so meets entries that are already cleared but not yet
 *    removed.  That is legitimate: it skips them (counted in
 *    ctx->lockless_skipped).  What it returns is a snapshot of a present
 *    entry; the entry may be zapped the moment after, so a lockless user
 *    changes it only by compare-exchange against the snapshot (which then
 *    fails), never by a plain store.
 *
 * Bug injection (inject.h): INJ_RMAP_LOCKLESS_ASSERT makes
 * rmap_walk_lockless use the asserting walker (the state before seed 002's
 * split; a concurrent zap trips it); INJ_RMAP_UNLOCKED_UPDATE makes writers
 * update the head with a plain store, without taking RMAP_LOCKED.
 */
#ifndef TDP_RMAP_H
#define TDP_RMAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lock.h"
#include "spte.h"

#define RMAP_MANY   1ul
#define RMAP_LOCKED 2ul
#define RMAP_TAGS   (RMAP_MANY | RMAP_LOCKED)

struct rmap_head {
	atomic_ulong val;
};

/* 13 slots make a descriptor 128 bytes. */
#define RMAP_DESC_CAP 13

struct rmap_desc {
	uint64_t magic;		/* RMAP_DESC_MAGIC while linked */
	struct rmap_desc *more; /* the next descriptor, always full */
	uint32_t count;		/* used slots: sptes[0 .. count-1] */
	uint32_t tail;		/* entries in the descriptors after this one */
	uint64_t *sptes[RMAP_DESC_CAP];
};

#define RMAP_DESC_MAGIC	 0x726d6170646573ull /* "rmapdes" */
#define RMAP_DESC_POISON 0x6b6b6b6b6b6b6b6bull

struct rmap_ctx {
	struct tdp_lock *mmu_lock;     /* for the assertions */
	const int *inject;	       /* the owner's injection switch */
	atomic_long nr_desc;	       /* descriptors allocated now */
	atomic_ulong desc_allocs;      /* descriptors allocated ever */
	atomic_ulong max_size;	       /* largest rmap size an add made */
	atomic_ulong lockless_skipped; /* non-present entries lockless walks
					* skipped (zaps caught halfway) */
};

/* @inject may be NULL (no injection). */
void rmap_ctx_init(struct rmap_ctx *ctx, struct tdp_lock *mmu_lock,
		   const int *inject);

static inline void rmap_head_init(struct rmap_head *head)
{
	atomic_init(&head->val, 0);
}

/* ---- writers: mmu_lock held for write ---------------------------- */

/* Add @sptep (8-byte aligned, present) to @head.  Returns the number of
 * entries before the add, or -ENOMEM (nothing changed). */
int rmap_add(struct rmap_ctx *ctx, struct rmap_head *head, uint64_t *sptep);

/* Remove @sptep from @head, which must hold it (asserted). */
void rmap_remove(struct rmap_ctx *ctx, struct rmap_head *head, uint64_t *sptep);

/* Empty @head: with the head locked, call @zap (if not NULL) on every
 * entry (it clears the entry; it must not call back into this head), then
 * free the descriptors.  Returns the number of entries removed. */
size_t rmap_zap_all(struct rmap_ctx *ctx, struct rmap_head *head,
		    void (*zap)(uint64_t *sptep, void *arg), void *arg);

/* ---- locked readers: mmu_lock held, read or write ------------------ */

/* The number of entries. */
size_t rmap_count(struct rmap_ctx *ctx, struct rmap_head *head);

/* Raw iteration over a head value @val (RMAP_LOCKED clear) that the caller
 * keeps stable (mmu_lock, or the head lock): no present check.  Checks each
 * descriptor's magic and each sptep's alignment.  @head is for messages. */
struct rmap_iter {
	const struct rmap_head *head;
	struct rmap_desc *desc; /* NULL: a single entry, already returned */
	unsigned pos;
};

uint64_t *rmap_iter_first(struct rmap_iter *it, const struct rmap_head *head,
			  unsigned long val);
uint64_t *rmap_iter_next(struct rmap_iter *it);

/* Asserting steps of for_each_rmap_spte. */
uint64_t *rmap_locked_first(struct rmap_ctx *ctx, struct rmap_head *head,
			    struct rmap_iter *it);
uint64_t *rmap_locked_next(struct rmap_iter *it);

/*
 * Every entry of @head, with mmu_lock held (asserted): @sptep takes each
 * entry's address; the walker aborts on a non-present entry.  The body may
 * change the entries (keeping them present) but not the rmap.
 */
#define for_each_rmap_spte(ctx, head, it, sptep)                               \
	for ((sptep) = rmap_locked_first((ctx), (head), (it)); (sptep);        \
	     (sptep) = rmap_locked_next(it))

/* ---- lockless readers: no mmu_lock --------------------------------- */

/* Lock @head read-only: returns its value (RMAP_LOCKED clear), 0 if it is
 * empty, in which case it is not locked.  Spins while it is locked. */
unsigned long rmap_lock_readonly(struct rmap_ctx *ctx, struct rmap_head *head);
/* Unlock a head locked by rmap_lock_readonly, which returned @val (no-op
 * for 0).  Asserts nobody changed the head meanwhile. */
void rmap_unlock_readonly(struct rmap_ctx *ctx, struct rmap_head *head,
			  unsigned long val);

/* Load the entry at @sptep into *@spte; false (counted as skipped) if it
 * is not present. */
static inline bool rmap_lockless_load(struct rmap_ctx *ctx, uint64_t *sptep,
				      uint64_t *spte)
{
	*spte = __atomic_load_n(sptep, __ATOMIC_ACQUIRE);
	if (spte_present(*spte))
		return true;
	atomic_fetch_add_explicit(&ctx->lockless_skipped, 1,
				  memory_order_relaxed);
	return false;
}

/*
 * The present entries of a head locked read-only, @val being what
 * rmap_lock_readonly returned; @sptep takes each address and @spte its
 * snapshot.  Non-present entries (zaps caught halfway) are skipped:
 *
 *	unsigned long v = rmap_lock_readonly(ctx, head);
 *	for_each_rmap_spte_lockless(ctx, head, v, &it, sptep, spte)
 *		...;  (may break out)
 *	rmap_unlock_readonly(ctx, head, v);
 */
#define for_each_rmap_spte_lockless(ctx, head, val, it, sptep, spte)           \
	for ((sptep) = rmap_iter_first((it), (head), (val)); (sptep);          \
	     (sptep) = rmap_iter_next(it))                                     \
		if (!rmap_lockless_load((ctx), (sptep), &(spte))) {            \
		} else

/*
 * The same as a callback walk with the locking done: @fn is called on each
 * present entry with its snapshot, with @head locked read-only; it returns
 * true to stop the walk.  Returns the number of calls.
 */
typedef bool (*rmap_spte_fn)(uint64_t *sptep, uint64_t spte, void *arg);
size_t rmap_walk_lockless(struct rmap_ctx *ctx, struct rmap_head *head,
			  rmap_spte_fn fn, void *arg);

#endif
