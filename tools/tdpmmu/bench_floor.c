/* SPDX-License-Identifier: MIT */
/*
 * bench_floor.c - the `floor` baseline of `tdpmmu bench`: a bare 4-level
 * radix table (512 8-byte entries per 4 KiB table page, like the TDP
 * tables) with insert and lookup and nothing else: no locks, no RCU, no
 * accounting, no Accessed/Dirty bits, no TLB.  Tables come from an arena
 * that is touched before the timed phases, so neither malloc nor the
 * kernel's first-touch fault is measured.  It is the speed of light of a
 * guest-physical map on this machine.
 *
 * Entry format: 0 = empty; a table entry is the child's address | 1; a leaf
 * is (pfn << 12) | 1.
 *
 * Threading: a floor table belongs to one thread (each benchmark vCPU
 * thread has its own); nothing here is thread-safe.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"

#define FLOOR_ENTRIES 512
#define FLOOR_PAGE    4096ull

struct floor_table {
	uint64_t *root;
	uint8_t *arena;
	uint64_t arena_pages, used;
};

static uint64_t *floor_new_page(struct floor_table *t)
{
	uint64_t *p;

	if (t->used >= t->arena_pages)
		return NULL;
	p = (uint64_t *)(t->arena + t->used * FLOOR_PAGE);
	t->used++;
	return p;
}

int floor_create(uint64_t max_pages, struct floor_table **out)
{
	struct floor_table *t = calloc(1, sizeof(*t));
	uint64_t len;

	if (!t)
		return -ENOMEM;
	/* leaves need max_pages/512 level-1 tables (+1 for misalignment),
	 * then the levels above: a few more, plus the root */
	t->arena_pages = max_pages / FLOOR_ENTRIES + 2;
	t->arena_pages += t->arena_pages / FLOOR_ENTRIES + 2 + 4;
	len = t->arena_pages * FLOOR_PAGE;
	t->arena = mmap(NULL, len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (t->arena == MAP_FAILED) {
		free(t);
		return -ENOMEM;
	}
	floor_reset(t);
	*out = t;
	return 0;
}

void floor_destroy(struct floor_table *t)
{
	if (!t)
		return;
	munmap(t->arena, t->arena_pages * FLOOR_PAGE);
	free(t);
}

/* Forget every mapping; the arena stays touched. */
void floor_reset(struct floor_table *t)
{
	memset(t->arena, 0, t->used ? t->used * FLOOR_PAGE : FLOOR_PAGE);
	t->used = 0;
	t->root = floor_new_page(t);
}

uint64_t floor_lookup(const struct floor_table *t, uint64_t gfn)
{
	const uint64_t *table = t->root;

	for (int level = 4; level > 1; level--) {
		uint64_t e = table[(gfn >> (9 * (level - 1))) & 511];

		if (!e)
			return FLOOR_NONE;
		table = (const uint64_t *)(uintptr_t)(e & ~1ull);
	}
	if (!table[gfn & 511])
		return FLOOR_NONE;
	return table[gfn & 511] >> 12;
}

int floor_insert(struct floor_table *t, uint64_t gfn, uint64_t pfn)
{
	uint64_t *table = t->root;

	for (int level = 4; level > 1; level--) {
		uint64_t *e = &table[(gfn >> (9 * (level - 1))) & 511];

		if (!*e) {
			uint64_t *child = floor_new_page(t);

			if (!child)
				return -ENOMEM;
			*e = (uint64_t)(uintptr_t)child | 1;
		}
		table = (uint64_t *)(uintptr_t)(*e & ~1ull);
	}
	table[gfn & 511] = (pfn << 12) | 1;
	return 0;
}

int bench_floor_access(struct bench_vcpu *bv, uint64_t gpa, uint64_t *val,
		       bool write)
{
	struct bench *b = bv->b;
	uint64_t gfn = gpa >> 12;
	uint64_t pfn = floor_lookup(bv->floor, gfn);
	uint64_t *p;

	if (pfn == FLOOR_NONE) {
		/* the floor's fault: map the gfn to its page of the buffer */
		if (gpa < b->gpa || gpa - b->gpa >= b->size)
			return -EFAULT;
		pfn = (gpa - b->gpa) >> 12;
		if (floor_insert(bv->floor, gfn, pfn))
			return -ENOMEM;
		bv->faults++;
	}
	p = (uint64_t *)(b->fbuf + (pfn << 12) + (gpa & (BENCH_PAGE - 1)));
	if (write)
		*p = *val;
	else
		*val = *p;
	return 0;
}
