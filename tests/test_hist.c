/* SPDX-License-Identifier: MIT */
/*
 * test_hist.c - the benchmarks' log-linear latency histogram
 * (tools/tdpmmu/hist.c): bucket bounds, percentiles of known
 * distributions, the empty histogram, max, merging.
 *
 * Threading: single-threaded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "hist.h"

static struct hist *new_hist(void)
{
	struct hist *h = malloc(sizeof(*h));

	assert_non_null(h);
	hist_init(h);
	return h;
}

/* a reported quantile is within one sub-bucket (1/16) above the truth */
static void assert_close(uint64_t got, uint64_t want)
{
	assert_true(got >= want);
	assert_true(got <= want + want / 16 + 1);
}

static void test_empty(void **state)
{
	struct hist *h = new_hist();

	assert_int_equal(h->count, 0);
	assert_int_equal(hist_quantile(h, 0.5), 0);
	assert_int_equal(hist_quantile(h, 0.99), 0);
	assert_int_equal(hist_quantile(h, 1.0), 0);
	assert_int_equal(h->max, 0);
	free(h);
}

static void test_buckets(void **state)
{
	uint64_t lo, hi, prev_hi = 0;

	/* exact below 16, contiguous and ordered above */
	for (uint64_t v = 0; v < 16; v++) {
		hist_bucket_bounds(hist_bucket(v), &lo, &hi);
		assert_int_equal(lo, v);
		assert_int_equal(hi, v);
	}
	for (unsigned i = 1; i < HIST_BUCKETS; i++) {
		hist_bucket_bounds(i, &lo, &hi);
		assert_int_equal(lo, prev_hi + 1);
		assert_true(hi >= lo);
		assert_int_equal(hist_bucket(lo), i);
		assert_int_equal(hist_bucket(hi), i);
		prev_hi = hi;
		if (hi == UINT64_MAX)
			break;
	}
	assert_int_equal(prev_hi, UINT64_MAX);
	assert_int_equal(hist_bucket(UINT64_MAX), HIST_BUCKETS - 1);
	/* relative width of a bucket never exceeds 1/16 */
	for (uint64_t v = 16; v < (1ull << 40); v = v * 3 + 7) {
		hist_bucket_bounds(hist_bucket(v), &lo, &hi);
		assert_true(hi - lo + 1 <= lo / 16 + 1);
	}
}

static void test_single_value(void **state)
{
	struct hist *h = new_hist();

	hist_add(h, 1234);
	assert_int_equal(h->count, 1);
	assert_int_equal(h->min, 1234);
	assert_int_equal(h->max, 1234);
	/* clamped to the exact min and max */
	assert_int_equal(hist_quantile(h, 0.5), 1234);
	assert_int_equal(hist_quantile(h, 0.999), 1234);
	free(h);
}

static void test_uniform(void **state)
{
	struct hist *h = new_hist();

	for (uint64_t v = 1; v <= 100000; v++)
		hist_add(h, v);
	assert_int_equal(h->count, 100000);
	assert_int_equal(h->max, 100000);
	assert_int_equal(h->min, 1);
	assert_close(hist_quantile(h, 0.5), 50000);
	assert_close(hist_quantile(h, 0.99), 99000);
	assert_close(hist_quantile(h, 0.999), 99900);
	assert_int_equal(hist_quantile(h, 1.0), 100000);
	assert_int_equal(h->sum, 100000ull * 100001 / 2);
	free(h);
}

static void test_small_exact(void **state)
{
	struct hist *h = new_hist();

	/* 1..10 ten times each: every quantile exact */
	for (int r = 0; r < 10; r++)
		for (uint64_t v = 1; v <= 10; v++)
			hist_add(h, v);
	assert_int_equal(hist_quantile(h, 0.5), 5);
	assert_int_equal(hist_quantile(h, 0.51), 6);
	assert_int_equal(hist_quantile(h, 0.99), 10);
	assert_int_equal(hist_quantile(h, 0.1), 1);
	free(h);
}

static void test_tail(void **state)
{
	struct hist *h = new_hist();

	/* 99.8 % at 100 ns, 0.2 % at 1 ms: p99 is fast, p99.9 is slow */
	hist_add_n(h, 100, 9980);
	hist_add_n(h, 1000000, 20);
	assert_close(hist_quantile(h, 0.5), 100);
	assert_close(hist_quantile(h, 0.99), 100);
	assert_close(hist_quantile(h, 0.999), 1000000);
	assert_int_equal(h->max, 1000000);
	free(h);
}

static void test_merge(void **state)
{
	struct hist *a = new_hist(), *b = new_hist(), *e = new_hist();

	for (uint64_t v = 1; v <= 1000; v++)
		hist_add(v & 1 ? a : b, v * 10);
	hist_add(b, 77777);
	hist_merge(a, e); /* merging an empty one changes nothing */
	assert_int_equal(a->count, 500);
	hist_merge(a, b);
	assert_int_equal(a->count, 1001);
	assert_int_equal(a->max, 77777);
	assert_int_equal(a->min, 10);
	assert_close(hist_quantile(a, 0.5), 5010);
	hist_merge(e, a); /* into an empty one: a copy */
	assert_int_equal(e->min, 10);
	assert_int_equal(hist_quantile(e, 0.99), hist_quantile(a, 0.99));
	free(a);
	free(b);
	free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_single_value),
		cmocka_unit_test(test_uniform),
		cmocka_unit_test(test_small_exact),
		cmocka_unit_test(test_tail),
		cmocka_unit_test(test_merge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
