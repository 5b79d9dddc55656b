/* SPDX-License-Identifier: MIT */
/*
 * rng.h - the random numbers of the tools (tools/tdpmmu) and the tests
 * (tests/helpers.h), header-only, in one place: a run with a given seed
 * draws the same sequence wherever these are used (the torture's seeded,
 * controlled-scheduler runs are compared by their trace hashes, so these
 * sequences must never change).
 *
 * No state of their own and no locking: every caller keeps its own
 * generator state (one per thread).
 */
#ifndef TDP_TOOLS_RNG_H
#define TDP_TOOLS_RNG_H

#include <stdint.h>

/* xorshift64*: the next number of the generator whose state is @state
 * (never 0). */
static inline uint64_t rng_next(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* A mixer of 64-bit values (the first rounds of splitmix64's finaliser). */
static inline uint64_t rng_mix(uint64_t x)
{
	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 29;
	return x;
}

/* Word @i of a page's content pattern of generation @gen, the page named
 * by @key (its gfn, say): odd, so never the host's (even) poison word. */
static inline uint64_t rng_pattern(uint64_t key, uint64_t gen, unsigned i)
{
	return rng_mix(key * 0x9e3779b97f4a7c15ull ^ (gen << 40) ^ i) | 1;
}

#endif
