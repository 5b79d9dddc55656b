/* SPDX-License-Identifier: MIT */
/* rmap.c - reverse maps with a per-head lock bit (see rmap.h). */
#include "rmap.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "assert.h"
#include "inject.h"

static const int no_inject;

void rmap_ctx_init(struct rmap_ctx *ctx, struct tdp_lock *mmu_lock,
		   const int *inject)
{
	ctx->mmu_lock = mmu_lock;
	ctx->inject = inject ? inject : &no_inject;
	atomic_init(&ctx->nr_desc, 0);
	atomic_init(&ctx->desc_allocs, 0);
	atomic_init(&ctx->max_size, 0);
	atomic_init(&ctx->lockless_skipped, 0);
}

static inline struct rmap_desc *to_desc(unsigned long val)
{
	return (struct rmap_desc *)(val & ~RMAP_MANY);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* ---- descriptors -------------------------------------------------- */

static struct rmap_desc *desc_alloc(struct rmap_ctx *ctx)
{
	struct rmap_desc *d = malloc(sizeof(*d));

	if (!d)
		return NULL;
	TDP_ASSERT(!((uintptr_t)d & (RMAP_TAGS | 4))); /* room for the tags */
	memset(d, 0, sizeof(*d));
	d->magic = RMAP_DESC_MAGIC;
	atomic_fetch_add_explicit(&ctx->nr_desc, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&ctx->desc_allocs, 1, memory_order_relaxed);
	return d;
}

/* Poisoned first: a walker that enters it anyway (a broken protocol) fails
 * its magic check, or its alignment check on the (odd) slots. */
static void desc_free(struct rmap_ctx *ctx, struct rmap_desc *d)
{
	memset(d, 0x6b, sizeof(*d));
	free(d);
	atomic_fetch_sub_explicit(&ctx->nr_desc, 1, memory_order_relaxed);
}

_Static_assert(sizeof(struct rmap_desc) == 128, "descriptor size");
_Static_assert((RMAP_DESC_POISON & RMAP_DESC_MAGIC) != RMAP_DESC_MAGIC,
	       "poison must not look live");

static void desc_check(const struct rmap_head *head, const struct rmap_desc *d,
		       bool tail)
{
	TDP_ASSERT_MSG(d->magic == RMAP_DESC_MAGIC && d->count >= 1 &&
			       d->count <= RMAP_DESC_CAP &&
			       (!tail || d->count == RMAP_DESC_CAP),
		       "rmap %p: descriptor %p is not live or malformed (magic "
		       "%#llx, count %u%s): freed under a walker?",
		       (const void *)head, (const void *)d,
		       (unsigned long long)d->magic, d->count,
		       tail ? ", not head" : "");
}

static uint64_t *sptep_check(const struct rmap_iter *it, uint64_t *sptep)
{
	TDP_ASSERT_MSG(sptep && !((uintptr_t)sptep & 7),
		       "rmap %p: bad entry pointer %p", (const void *)it->head,
		       (void *)sptep);
	return sptep;
}

/* ---- the head lock ------------------------------------------------ */

/*
 * Lock @head: set RMAP_LOCKED by compare-exchange (acquire: the list is
 * read after the lock is held), waiting while someone else has it.  An
 * empty head is returned as 0 and not locked: only writers, who exclude
 * each other by mmu_lock, make it non-empty, and a reader has nothing to
 * walk.  The empty check is redone after each wait, since the holder may
 * have emptied it.
 */
static unsigned long head_lock(struct rmap_head *head)
{
	unsigned long old =
		atomic_load_explicit(&head->val, memory_order_relaxed);
	unsigned spins = 0;

	for (;;) {
		while (old & RMAP_LOCKED) {
			if (++spins % 128 == 0)
				sched_yield(); /* the holder may be preempted */
			else
				cpu_relax();
			old = atomic_load_explicit(&head->val,
						   memory_order_relaxed);
		}
		if (!old)
			return 0;
		if (atomic_compare_exchange_weak_explicit(
			    &head->val, &old, old | RMAP_LOCKED,
			    memory_order_acquire, memory_order_relaxed))
			return old;
	}
}

static unsigned long write_lock(struct rmap_ctx *ctx, struct rmap_head *head)
{
	tdp_assert_held_write(ctx->mmu_lock);
	if (INJECTED(*ctx->inject, INJ_RMAP_UNLOCKED_UPDATE))
		/* the bug: "mmu_lock is held for write, nobody else can
		 * change this head", forgetting the lockless readers */
		return atomic_load_explicit(&head->val, memory_order_relaxed) &
		       ~RMAP_LOCKED;
	return head_lock(head);
}

/* Publish @val and unlock (release: the list is complete before a reader
 * can lock it).  Also used on an empty head that write_lock left
 * unlocked. */
static void write_unlock(struct rmap_ctx *ctx, struct rmap_head *head,
			 unsigned long val)
{
	TDP_ASSERT_MSG(!(val & RMAP_LOCKED), "rmap %p: unlock with %#lx",
		       (void *)head, val);
	if (INJECTED(*ctx->inject, INJ_RMAP_UNLOCKED_UPDATE)) {
		usleep(10); /* widen: a reader may lock and walk meanwhile */
		atomic_store_explicit(&head->val, val, memory_order_relaxed);
		return;
	}
	atomic_store_explicit(&head->val, val, memory_order_release);
}

unsigned long rmap_lock_readonly(struct rmap_ctx *ctx, struct rmap_head *head)
{
	(void)ctx;
	return head_lock(head);
}

void rmap_unlock_readonly(struct rmap_ctx *ctx, struct rmap_head *head,
			  unsigned long val)
{
	unsigned long now;

	(void)ctx;
	if (!val)
		return;
	now = atomic_load_explicit(&head->val, memory_order_relaxed);
	TDP_ASSERT_MSG(now == (val | RMAP_LOCKED),
		       "rmap %p changed while locked read-only: %#lx, locked "
		       "%#lx: a writer did not take the head lock",
		       (void *)head, now, val);
	/* release: the walk is over before a writer may free the list */
	atomic_store_explicit(&head->val, val, memory_order_release);
}

/* ---- writers ------------------------------------------------------ */

static void note_size(struct rmap_ctx *ctx, unsigned long size)
{
	unsigned long max =
		atomic_load_explicit(&ctx->max_size, memory_order_relaxed);

	while (size > max &&
	       !atomic_compare_exchange_weak_explicit(
		       &ctx->max_size, &max, size, memory_order_relaxed,
		       memory_order_relaxed))
		;
}

int rmap_add(struct rmap_ctx *ctx, struct rmap_head *head, uint64_t *sptep)
{
	struct rmap_desc *fresh = NULL, *d;
	unsigned long peek, val, new;
	unsigned long n;

	tdp_assert_held_write(ctx->mmu_lock);
	TDP_ASSERT_MSG(sptep && !((uintptr_t)sptep & 7),
		       "rmap %p: adding bad entry pointer %p", (void *)head,
		       (void *)sptep);
	/* Under mmu_lock for write only we change the head and its list, so
	 * it can be read before locking, to allocate outside the lock. */
	peek = atomic_load_explicit(&head->val, memory_order_relaxed) &
	       ~RMAP_LOCKED;
	if (peek &&
	    (!(peek & RMAP_MANY) || to_desc(peek)->count == RMAP_DESC_CAP)) {
		fresh = desc_alloc(ctx);
		if (!fresh)
			return -ENOMEM;
	}

	val = write_lock(ctx, head);
	TDP_ASSERT_MSG(val == peek,
		       "rmap %p changed under mmu_lock for write: %#lx -> %#lx",
		       (void *)head, peek, val);
	if (!val) {
		n = 0;
		new = (unsigned long)sptep;
	} else if (!(val & RMAP_MANY)) {
		n = 1;
		fresh->sptes[0] = (uint64_t *)val;
		fresh->sptes[1] = sptep;
		fresh->count = 2;
		new = (unsigned long)fresh | RMAP_MANY;
	} else {
		d = to_desc(val);
		desc_check(head, d, false);
		n = d->count + d->tail;
		if (d->count < RMAP_DESC_CAP) {
			d->sptes[d->count++] = sptep;
			new = val;
		} else {
			/* a new head descriptor in front of the full one */
			fresh->sptes[0] = sptep;
			fresh->count = 1;
			fresh->more = d;
			fresh->tail = (uint32_t)n;
			new = (unsigned long)fresh | RMAP_MANY;
		}
	}
	write_unlock(ctx, head, new);
	note_size(ctx, n + 1);
	return (int)n;
}

void rmap_remove(struct rmap_ctx *ctx, struct rmap_head *head, uint64_t *sptep)
{
	struct rmap_desc *h, *d, *gone = NULL;
	unsigned long val, new;
	unsigned i = 0, last;

	val = write_lock(ctx, head); /* asserts mmu_lock for write */
	TDP_ASSERT_MSG(val, "rmap %p: removing %p from an empty rmap",
		       (void *)head, (void *)sptep);
	if (!(val & RMAP_MANY)) {
		TDP_ASSERT_MSG((uint64_t *)val == sptep,
			       "rmap %p: removing %p, which holds only %p",
			       (void *)head, (void *)sptep, (void *)val);
		new = 0;
		goto out;
	}

	h = to_desc(val);
	for (d = h; d; d = d->more) {
		desc_check(head, d, d != h);
		for (i = 0; i < d->count; i++)
			if (d->sptes[i] == sptep)
				goto found;
	}
	TDP_ASSERT_MSG(d, "rmap %p: removing %p, which it does not hold",
		       (void *)head, (void *)sptep);
found:
	/* Fill the hole with the head descriptor's last entry, so every
	 * descriptor but the head one stays full. */
	last = --h->count;
	d->sptes[i] = h->sptes[last];
	h->sptes[last] = NULL;
	new = val;
	if (!h->count) {
		TDP_ASSERT(h->more); /* a list holds two entries or more */
		gone = h;
		new = (unsigned long)h->more | RMAP_MANY;
	} else if (h->count == 1 && !h->more) {
		gone = h; /* back to a single entry */
		new = (unsigned long)h->sptes[0];
	}
out:
	write_unlock(ctx, head, new);
	/* unreachable from the head now, and no reader is inside the list:
	 * readers walk it only with the head locked */
	if (gone)
		desc_free(ctx, gone);
}

size_t rmap_zap_all(struct rmap_ctx *ctx, struct rmap_head *head,
		    void (*zap)(uint64_t *sptep, void *arg), void *arg)
{
	struct rmap_desc *d, *next;
	struct rmap_iter it;
	unsigned long val;
	uint64_t *sptep;
	size_t n = 0;

	val = write_lock(ctx, head); /* asserts mmu_lock for write */
	if (!val)
		return 0; /* an empty head is not locked */
	/* Cleared with the head locked: no lockless reader sees these
	 * entries non-present. */
	for (sptep = rmap_iter_first(&it, head, val); sptep;
	     sptep = rmap_iter_next(&it)) {
		if (zap)
			zap(sptep, arg);
		n++;
	}
	write_unlock(ctx, head, 0);
	for (d = (val & RMAP_MANY) ? to_desc(val) : NULL; d; d = next) {
		next = d->more;
		desc_free(ctx, d);
	}
	return n;
}

/* ---- walkers ------------------------------------------------------ */

uint64_t *rmap_iter_first(struct rmap_iter *it, const struct rmap_head *head,
			  unsigned long val)
{
	it->head = head;
	it->desc = NULL;
	it->pos = 0;
	TDP_ASSERT_MSG(!(val & RMAP_LOCKED), "rmap %p: walking %#lx",
		       (const void *)head, val);
	if (!val)
		return NULL;
	if (!(val & RMAP_MANY))
		return sptep_check(it, (uint64_t *)val);
	it->desc = to_desc(val);
	desc_check(head, it->desc, false);
	return sptep_check(it, it->desc->sptes[0]);
}

uint64_t *rmap_iter_next(struct rmap_iter *it)
{
	if (!it->desc)
		return NULL;
	if (++it->pos < it->desc->count)
		return sptep_check(it, it->desc->sptes[it->pos]);
	it->desc = it->desc->more;
	it->pos = 0;
	if (!it->desc)
		return NULL;
	desc_check(it->head, it->desc, true);
	return sptep_check(it, it->desc->sptes[0]);
}

static uint64_t *assert_present(const struct rmap_iter *it, uint64_t *sptep)
{
	uint64_t spte;

	if (!sptep)
		return NULL;
	spte = __atomic_load_n(sptep, __ATOMIC_ACQUIRE);
	TDP_ASSERT_MSG(spte_present(spte),
		       "rmap %p: entry %p is not present (%#llx) in a walk "
		       "under mmu_lock: zapped but not removed from its rmap",
		       (const void *)it->head, (void *)sptep,
		       (unsigned long long)spte);
	return sptep;
}

uint64_t *rmap_locked_first(struct rmap_ctx *ctx, struct rmap_head *head,
			    struct rmap_iter *it)
{
	unsigned long val;

	tdp_assert_held(ctx->mmu_lock);
	/* a lockless reader may hold the head: its bit is not ours */
	val = atomic_load_explicit(&head->val, memory_order_acquire) &
	      ~RMAP_LOCKED;
	return assert_present(it, rmap_iter_first(it, head, val));
}

uint64_t *rmap_locked_next(struct rmap_iter *it)
{
	return assert_present(it, rmap_iter_next(it));
}

size_t rmap_count(struct rmap_ctx *ctx, struct rmap_head *head)
{
	unsigned long val;
	struct rmap_desc *d;

	tdp_assert_held(ctx->mmu_lock);
	val = atomic_load_explicit(&head->val, memory_order_acquire) &
	      ~RMAP_LOCKED;
	if (!val)
		return 0;
	if (!(val & RMAP_MANY))
		return 1;
	d = to_desc(val);
	desc_check(head, d, false);
	return (size_t)d->count + d->tail;
}

/* rmap-lockless-assert (inject.h), seed 002 before the split: the walk
 * meant for mmu_lock holders, asserting that every entry is present. */
TDP_INJECT_FN size_t inj_rmap_lockless_assert(struct rmap_head *head,
					      unsigned long val,
					      rmap_spte_fn fn, void *arg)
{
	struct rmap_iter it;
	uint64_t *sptep;
	size_t n = 0;

	for (sptep = assert_present(&it, rmap_iter_first(&it, head, val));
	     sptep; sptep = assert_present(&it, rmap_iter_next(&it))) {
		n++;
		if (fn(sptep, __atomic_load_n(sptep, __ATOMIC_ACQUIRE), arg))
			break;
	}
	return n;
}

size_t rmap_walk_lockless(struct rmap_ctx *ctx, struct rmap_head *head,
			  rmap_spte_fn fn, void *arg)
{
	unsigned long val = rmap_lock_readonly(ctx, head);
	struct rmap_iter it;
	uint64_t *sptep, spte;
	size_t n = 0;

	if (!val)
		return 0;
	if (INJECTED(*ctx->inject, INJ_RMAP_UNLOCKED_UPDATE))
		usleep(20); /* widen: hold the head while writers ignore it */
	if (INJECTED(*ctx->inject, INJ_RMAP_LOCKLESS_ASSERT)) {
		n = inj_rmap_lockless_assert(head, val, fn, arg);
	} else {
		for_each_rmap_spte_lockless(ctx, head, val, &it, sptep, spte)
		{
			n++;
			if (fn(sptep, spte, arg))
				break;
		}
	}
	rmap_unlock_readonly(ctx, head, val);
	return n;
}
