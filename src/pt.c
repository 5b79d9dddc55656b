/* SPDX-License-Identifier: MIT */
/* pt.c - table-page allocator; see pt.h for when pages may be freed. */
#include "pt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "assert.h"
#include "inject.h"
#include "sched/sched.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#define pt_poison(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define pt_unpoison(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define pt_poison(p, n) ((void)(p), (void)(n))
#define pt_unpoison(p, n) ((void)(p), (void)(n))
#endif

int pt_alloc_init(struct pt_alloc *a)
{
	memset(a, 0, sizeof(*a));
	atomic_init(&a->allocated, 0);
	return -pthread_mutex_init(&a->lock, NULL);
}

void pt_alloc_destroy(struct pt_alloc *a)
{
	TDP_ASSERT_MSG(atomic_load(&a->allocated) == 0,
		       "%ld table pages leaked", atomic_load(&a->allocated));
	for (size_t i = 0; i < a->nchunks; i++) {
		pt_unpoison(a->chunks[i], PT_CHUNK_SIZE);
		free(a->chunks[i]);
	}
	free(a->chunks);
	pthread_mutex_destroy(&a->lock);
}

/* Only on pages nobody else can reach: before they are linked, or after
 * their grace period (so the controlled scheduler need not switch here). */
static void fill(uint64_t *spt, uint64_t v)
{
	TDP_SCHED_PRIVATE_BEGIN();
	for (int i = 0; i < SPTE_ENT_PER_PAGE; i++)
		__atomic_store_n(&spt[i], v, __ATOMIC_RELAXED);
	TDP_SCHED_PRIVATE_END();
}

/* Called with a->lock held. */
static int grow(struct pt_alloc *a)
{
	struct tdp_pt_page *hdr;
	void *chunk;

	if (a->nchunks == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 8;
		void **n = realloc(a->chunks, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		a->chunks = n;
		a->cap = cap;
	}
	if (posix_memalign(&chunk, PT_CHUNK_SIZE, PT_CHUNK_SIZE))
		return -ENOMEM;
	a->chunks[a->nchunks++] = chunk;
	hdr = chunk;
	memset(hdr, 0, PT_CHUNK_HDR_PAGES * 4096);
	for (int i = PT_CHUNK_PAGES - 1; i >= PT_CHUNK_HDR_PAGES; i--) {
		struct tdp_pt_page *sp = &hdr[i];

		sp->spt = (uint64_t *)((uint8_t *)chunk + (size_t)i * 4096);
		sp->alloc = a;
		fill(sp->spt, PT_POISON);
		pt_poison(sp->spt, 4096);
		sp->next = a->free;
		a->free = sp;
	}
	return 0;
}

struct tdp_pt_page *pt_alloc_page(struct pt_alloc *a)
{
	struct tdp_pt_page *sp;

	pthread_mutex_lock(&a->lock);
	if (!a->free && grow(a)) {
		pthread_mutex_unlock(&a->lock);
		return NULL;
	}
	sp = a->free;
	a->free = sp->next;
	pthread_mutex_unlock(&a->lock);

	TDP_ASSERT(!sp->in_use);
	pt_unpoison(sp->spt, 4096);
	fill(sp->spt, SPTE_NONPRESENT);
	sp->next = NULL;
	sp->ptep = NULL;
	sp->gfn = 0;
	sp->level = 0;
	sp->as_id = 0;
	sp->is_root = false;
	sp->mirror = false;
	sp->nx_disallowed = false;
	sp->hash_next = NULL;
	sp->hash_pprev = NULL;
	atomic_init(&sp->scheduled_to_zap, false);
	atomic_init(&sp->invalid, false);
	atomic_init(&sp->invalid_gen, 0);
	atomic_init(&sp->refcount, 0);
	sp->in_use = 1;
	atomic_fetch_add(&a->allocated, 1);
	return sp;
}

void pt_free_page(struct tdp_pt_page *sp)
{
	struct pt_alloc *a = sp->alloc;

	TDP_ASSERT_MSG(sp->in_use, "double free of table page %p", sp->spt);
	TDP_ASSERT_MSG(!sp->hash_pprev,
		       "table page %p freed while in the shadow-page hash",
		       sp->spt);
	sp->in_use = 0;
	fill(sp->spt, PT_POISON);
	pt_poison(sp->spt, 4096);
	atomic_fetch_sub(&a->allocated, 1);
	pthread_mutex_lock(&a->lock);
	if (TDP_SCHED_AVAILABLE && a->free) {
		/* Under the controlled scheduler a freed page goes to the back
		 * of the list, as a quarantine: a walker that reaches it too
		 * late reads the poison, not a page already in use again.
		 * (Free-running, the page freed last is reused first: it is
		 * warm in the cache.) */
		struct tdp_pt_page *last = a->free;

		while (last->next)
			last = last->next;
		sp->next = NULL;
		last->next = sp;
	} else {
		sp->next = a->free;
		a->free = sp;
	}
	pthread_mutex_unlock(&a->lock);
}

static void pt_free_rcu_cb(struct rcu_head *head)
{
	struct tdp_pt_page *sp = caa_container_of(head, struct tdp_pt_page, rcu);

	tdp_rcu_cb_begin();
	pt_free_page(sp);
	tdp_rcu_cb_end();
}

void pt_free_page_rcu(struct tdp_pt_page *sp)
{
	if (sp->alloc->inject &&
	    INJECTED(*sp->alloc->inject, INJ_FREE_WITHOUT_GRACE)) {
		pt_free_page(sp);
		return;
	}
	tdp_call_rcu(&sp->rcu, pt_free_rcu_cb);
}

int pt_cache_topup(struct pt_alloc *a, struct pt_cache *c, int min)
{
	TDP_ASSERT(min <= PT_CACHE_MAX);
	while (c->n < min) {
		struct tdp_pt_page *sp = pt_alloc_page(a);

		if (!sp)
			return -ENOMEM;
		c->pages[c->n++] = sp;
	}
	return 0;
}

struct tdp_pt_page *pt_cache_take(struct pt_cache *c)
{
	TDP_ASSERT_MSG(c->n > 0, "memory cache not topped up");
	return c->pages[--c->n];
}

void pt_cache_drain(struct pt_cache *c)
{
	while (c->n)
		pt_free_page(c->pages[--c->n]);
}
