/* SPDX-License-Identifier: MIT */
/*
 * hist.c - log-linear latency histogram (see hist.h).
 *
 * Threading: none; each histogram is owned by one thread at a time.
 */
#include <string.h>

#include "hist.h"

void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

unsigned hist_bucket(uint64_t v)
{
	unsigned p;

	if (v < HIST_SUB)
		return (unsigned)v;
	p = 63u - (unsigned)__builtin_clzll(v); /* 4..63 */
	return (p - 3) * HIST_SUB + (unsigned)((v >> (p - 4)) & (HIST_SUB - 1));
}

void hist_bucket_bounds(unsigned i, uint64_t *lo, uint64_t *hi)
{
	unsigned p, sub;

	if (i < HIST_SUB) {
		*lo = *hi = i;
		return;
	}
	p = i / HIST_SUB + 3;
	sub = i % HIST_SUB;
	*lo = (uint64_t)(HIST_SUB + sub) << (p - 4);
	*hi = *lo + ((1ull << (p - 4)) - 1);
}

void hist_add_n(struct hist *h, uint64_t v, uint64_t n)
{
	if (!n)
		return;
	h->b[hist_bucket(v)] += n;
	h->count += n;
	h->sum += v * n;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void hist_add(struct hist *h, uint64_t v)
{
	hist_add_n(h, v, 1);
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	if (!src->count)
		return;
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0;

	if (!h->count)
		return 0;
	if (q <= 0)
		return h->min;
	if (q >= 1)
		return h->max;
	/* the rank of the sample at quantile q, 1-based, rounded up */
	want = (uint64_t)(q * (double)h->count);
	if ((double)want < q * (double)h->count)
		want++;
	if (!want)
		want = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			uint64_t lo, hi;

			hist_bucket_bounds(i, &lo, &hi);
			if (hi > h->max)
				hi = h->max;
			if (hi < h->min)
				hi = h->min;
			return hi;
		}
	}
	return h->max;
}
