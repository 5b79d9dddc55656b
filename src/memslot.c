/* SPDX-License-Identifier: MIT */
/* memslot.c - immutable memslot sets; see memslot.h for the protocol. */
#include "memslot.h"

#include <stdlib.h>
#include <string.h>

const struct memslot *memslots_lookup(const struct memslots *set,
				      uint64_t gfn)
{
	unsigned lo = 0, hi = set->n;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		const struct memslot *s = &set->slots[mid];

		if (gfn < s->base_gfn)
			hi = mid;
		else if (gfn >= memslot_end(s))
			lo = mid + 1;
		else
			return s;
	}
	return NULL;
}

const struct memslot *memslots_find_id(const struct memslots *set,
				       unsigned id)
{
	for (unsigned i = 0; i < set->n; i++)
		if (set->slots[i].id == id)
			return &set->slots[i];
	return NULL;
}

bool memslots_overlap(const struct memslots *set, uint64_t gfn,
		      uint64_t npages, unsigned except_id)
{
	for (unsigned i = 0; i < set->n; i++) {
		const struct memslot *s = &set->slots[i];

		if (s->id == except_id)
			continue;
		if (gfn < memslot_end(s) && s->base_gfn < gfn + npages)
			return true;
	}
	return false;
}

struct memslots *memslots_replace(const struct memslots *old,
				  unsigned remove_id, const struct memslot *add)
{
	unsigned n = old ? old->n : 0;
	struct memslots *set;
	unsigned j = 0;

	set = malloc(sizeof(*set) + (n + 1) * sizeof(set->slots[0]));
	if (!set)
		return NULL;
	set->generation = old ? old->generation + 1 : 1;
	atomic_init(&set->retired, 0);
	for (unsigned i = 0; i < n; i++)
		if (old->slots[i].id != remove_id)
			set->slots[j++] = old->slots[i];
	if (add) {
		/* insertion keeps the array sorted by base_gfn */
		unsigned k = j++;

		while (k > 0 && set->slots[k - 1].base_gfn > add->base_gfn) {
			set->slots[k] = set->slots[k - 1];
			k--;
		}
		set->slots[k] = *add;
	}
	set->n = j;
	return set;
}
