/* SPDX-License-Identifier: MIT */
/* sp_hash.c - the shadow-page hash; see sp_hash.h. */
#include "sp_hash.h"

#include <errno.h>
#include <stdlib.h>

#include "assert.h"

int sp_hash_init(struct sp_hash *h, struct tdp_lock *mmu_lock)
{
	h->bucket = calloc(SP_HASH_BUCKETS, sizeof(*h->bucket));
	h->gen = 0;
	h->count = 0;
	h->mmu_lock = mmu_lock;
	return h->bucket ? 0 : -ENOMEM;
}

void sp_hash_destroy(struct sp_hash *h)
{
	TDP_ASSERT_MSG(!h->count, "%ld shadow pages left in the hash",
		       h->count);
	free(h->bucket);
	h->bucket = NULL;
}

static struct tdp_pt_page **bucket_of(struct sp_hash *h, uint64_t gfn,
				      uint32_t role)
{
	/* tables of one level have gfns 512^level apart: mix the high bits
	 * down (Fibonacci hashing) */
	uint64_t k = (gfn ^ (uint64_t)role << 56) * 0x9e3779b97f4a7c15ull;

	return &h->bucket[k >> (64 - 12)];
}

_Static_assert(SP_HASH_BUCKETS == 1 << 12, "bucket_of takes 12 bits");

static bool matches(const struct tdp_pt_page *sp, uint64_t gfn, uint32_t role)
{
	return sp->gfn == gfn && sp_role_of(sp) == role;
}

struct tdp_pt_page *sp_hash_find(struct sp_hash *h, uint64_t gfn,
				 uint32_t role)
{
	tdp_assert_held_write(h->mmu_lock);
	for (struct tdp_pt_page *sp = *bucket_of(h, gfn, role); sp;
	     sp = sp->hash_next)
		if (matches(sp, gfn, role) && !sp_hash_obsolete(h, sp))
			return sp;
	return NULL;
}

void sp_hash_add(struct sp_hash *h, struct tdp_pt_page *sp)
{
	struct tdp_pt_page **b = bucket_of(h, sp->gfn, sp_role_of(sp));

	TDP_ASSERT(!sp->hash_pprev);
	TDP_ASSERT_MSG(!sp_hash_find(h, sp->gfn, sp_role_of(sp)),
		       "a second valid shadow page for gfn %#llx level %d "
		       "as %u",
		       (unsigned long long)sp->gfn, sp->level, sp->as_id);
	sp->hash_gen = h->gen;
	sp->hash_next = *b;
	if (*b)
		(*b)->hash_pprev = &sp->hash_next;
	sp->hash_pprev = b;
	*b = sp;
	h->count++;
}

void sp_hash_del(struct sp_hash *h, struct tdp_pt_page *sp)
{
	tdp_assert_held_write(h->mmu_lock);
	TDP_ASSERT_MSG(sp->hash_pprev, "shadow page %p is not in the hash",
		       (void *)sp->spt);
	*sp->hash_pprev = sp->hash_next;
	if (sp->hash_next)
		sp->hash_next->hash_pprev = sp->hash_pprev;
	sp->hash_next = NULL;
	sp->hash_pprev = NULL;
	h->count--;
}

void sp_hash_obsolete_all(struct sp_hash *h)
{
	tdp_assert_held_write(h->mmu_lock);
	h->gen++;
}

bool sp_hash_contains(const struct sp_hash *h, const struct tdp_pt_page *sp)
{
	tdp_assert_held_write(h->mmu_lock);
	return sp->hash_pprev != NULL;
}
