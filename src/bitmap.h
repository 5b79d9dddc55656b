/* SPDX-License-Identifier: MIT */
/*
 * bitmap.h - ranges of bits in uint64_t arrays (bit i is bit i % 64 of
 * word i / 64).  The lowest layer: no locking of its own.  bitmap_set and
 * bitmap_any use plain accesses (the caller owns the bitmap);
 * bitmap_all_set reads with acquire loads, for bitmaps others change with
 * atomic read-modify-writes (memory attributes).
 */
#ifndef TDP_BITMAP_H
#define TDP_BITMAP_H

#include <stdbool.h>
#include <stdint.h>

static inline void bitmap_set(uint64_t *bm, uint64_t first, uint64_t n)
{
	for (uint64_t i = first; i < first + n; i++)
		bm[i / 64] |= 1ull << (i % 64);
}

static inline bool bitmap_any(const uint64_t *bm, uint64_t first, uint64_t n)
{
	for (uint64_t i = first; i < first + n; i++)
		if (bm[i / 64] & (1ull << (i % 64)))
			return true;
	return false;
}

/* Are bits [first, first+n) all set?  A word at a time. */
static inline bool bitmap_all_set(const uint64_t *bm, uint64_t first,
				  uint64_t n)
{
	for (uint64_t i = first; i < first + n;) {
		unsigned off = i % 64;
		uint64_t take = 64 - off < first + n - i ? 64 - off
							 : first + n - i;
		uint64_t mask = (take == 64 ? ~0ull : ((1ull << take) - 1))
				<< off;

		if ((__atomic_load_n(&bm[i / 64], __ATOMIC_ACQUIRE) & mask) !=
		    mask)
			return false;
		i += take;
	}
	return true;
}

#endif
