/* SPDX-License-Identifier: MIT */
/*
 * hist.h - a log-linear latency histogram for the benchmarks.
 *
 * Values (nanoseconds, or any unsigned quantity) below 16 have a bucket
 * each; above, every power of two [2^p, 2^(p+1)) is split into 16 linear
 * sub-buckets, so a reported percentile is within 1/16 (6.25 %) of the true
 * value, from 1 ns up to 2^64.  Percentiles report the upper bound of the
 * bucket that holds them, clamped to the exact minimum and maximum.
 *
 * Threading: a histogram belongs to one thread while it records (no
 * atomics); merge per-thread histograms after joining (hist_merge).
 */
#ifndef TDP_HIST_H
#define TDP_HIST_H

#include <stdint.h>

#define HIST_SUB     16
#define HIST_BUCKETS ((64 - 4 + 1) * HIST_SUB) /* 976 */

struct hist {
	uint64_t count, sum, min, max;
	uint64_t b[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_add(struct hist *h, uint64_t v);
/* Add @n samples of value @v. */
void hist_add_n(struct hist *h, uint64_t v, uint64_t n);
void hist_merge(struct hist *dst, const struct hist *src);
/* The value at quantile @q (0..1): the smallest bucket bound below which at
 * least q of the samples lie.  0 for an empty histogram. */
uint64_t hist_quantile(const struct hist *h, double q);
/* Bucket index of @v and the inclusive bounds of bucket @i (for tests). */
unsigned hist_bucket(uint64_t v);
void hist_bucket_bounds(unsigned i, uint64_t *lo, uint64_t *hi);

#endif
