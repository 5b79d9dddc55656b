/* SPDX-License-Identifier: MIT */
/*
 * iter.h - pre-order walk of one root over a gfn range.
 *
 * The iterator visits, in gfn order, every entry whose range intersects
 * [start, end) at levels root_level..min_level, stepping down into present
 * tables, sideways, and up.  It reads entries with acquire loads and keeps
 * a snapshot in old_spte.
 *
 * Rules:
 *  - Walk inside tdp_rcu_read_lock(): tables reached through the iterator
 *    may be unlinked concurrently and are freed only after a grace period.
 *  - After a yield (tdp_iter_mark_yielded) every pointer and value the
 *    iterator holds is stale: the next tdp_iter_next() restarts from the
 *    root at next_gfn, so the remaining range is still visited, once.
 *    Yield BEFORE processing the current entry (as the callers' `continue`
 *    does): the restart visits that entry again, and the upper-level
 *    entries on its path, but nothing below next_gfn.
 *  - old_spte is a snapshot; writers compare-exchange against it (and
 *    refresh it on failure) or exchange and use the returned value.
 */
#ifndef TDP_ITER_H
#define TDP_ITER_H

#include <stdbool.h>
#include <stdint.h>

#include "assert.h"
#include "pt.h"
#include "spte.h"

struct tdp_iter {
	uint64_t next_gfn;    /* where a restart resumes */
	uint64_t yielded_gfn; /* next_gfn at the last yield (progress check) */
	uint64_t *pt_path[TDP_MAX_LEVEL + 1];
	uint64_t *sptep;
	uint64_t old_spte;
	uint64_t gfn;	      /* first gfn of the current entry */
	uint64_t end;
	int level, min_level, root_level;
	bool valid, yielded;
};

/* A software walk never reaches a freed table (I2): RCU guarantees it. */
static inline uint64_t tdp_iter_load(const uint64_t *sptep)
{
	uint64_t s = __atomic_load_n(sptep, __ATOMIC_ACQUIRE);

	TDP_ASSERT_MSG(s != PT_POISON, "software walk read freed table %p",
		       (const void *)sptep);
	return s;
}

void tdp_iter_start(struct tdp_iter *it, struct tdp_pt_page *root,
		    int min_level, uint64_t start, uint64_t end);
void tdp_iter_next(struct tdp_iter *it);
void tdp_iter_restart(struct tdp_iter *it);
/* At an entry equal to SPTE_NONPRESENT: move sideways over the empty
 * entries after it in the same table, stopping at the first other entry,
 * the table's last entry, or the last entry that starts below it->end
 * (a walk that skips empty entries in a tight loop, without its per-entry
 * yield check: at most one table's worth). */
void tdp_iter_skip_empty(struct tdp_iter *it);

static inline void tdp_iter_mark_yielded(struct tdp_iter *it)
{
	it->yielded = true;
	it->yielded_gfn = it->next_gfn;
}

/* The gfn after the last one of the current entry. */
static inline uint64_t tdp_iter_entry_end(const struct tdp_iter *it)
{
	return it->gfn + level_pages(it->level);
}

#define for_each_tdp_pte_min_level(_it, _root, _min, _start, _end)            \
	for (tdp_iter_start(&(_it), (_root), (_min), (_start), (_end));        \
	     (_it).valid && (_it).gfn < (_it).end; tdp_iter_next(&(_it)))

#define for_each_tdp_pte(_it, _root, _start, _end)                             \
	for_each_tdp_pte_min_level(_it, _root, TDP_LEVEL_4K, _start, _end)

#endif
