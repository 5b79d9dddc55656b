/* SPDX-License-Identifier: MIT */
/*
 * test_missing.c - tdp_host_set_missing, post-copy's missing-page path:
 * missing pages are filled by the host's fill function on their first
 * fault-in, by whoever faults them in, exactly once.  Runs with both
 * engines and both host backends (tests/CMakeLists.txt).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"
#include "tdpmmu.h"

#define PG   TDP_PAGE_SIZE
#define GPA0 (1ull << 32)
#define NPG  1024ull /* 4 MiB: two 2 MiB folios */

struct filler {
	uint64_t base;
	/* atomic: with the process backend a touch's fill runs in the
	 * backend's thread, ordered before the touch by the kernel
	 * (userfaultfd), which TSan cannot see */
	_Atomic uint64_t calls;
	uint8_t seen[NPG];
	int fail_page; /* this page's fill fails (-EIO), or -1 */
};

static int fill(void *arg, uint64_t hva, void *page)
{
	struct filler *f = arg;
	uint64_t i = (hva - f->base) / PG;

	assert_true(hva >= f->base && i < NPG && hva % PG == 0);
	if ((int)i == f->fail_page)
		return -EIO;
	assert_int_equal(f->seen[i]++, 0); /* once per page */
	f->calls++;
	th_fill_page(page, hva, 7);
	return 0;
}

static void test_filled_on_fault(void **state)
{
	struct filler f = {.fail_page = -1};
	struct tdp_host_stats s;
	uint8_t buf[PG];
	struct th_env e;
	uint64_t v;

	(void)state;
	th_env_init(&e, 1ull << 30, NULL, 1);
	th_env_slot(&e, GPA0, NPG * PG, TDP_HUGE_2M);
	f.base = e.hva;
	/* present content that the missing state replaces */
	for (uint64_t i = 0; i < NPG; i += 100)
		assert_int_equal(th_write64(e.v[0], GPA0 + i * PG, 1), 0);
	assert_int_equal(tdp_host_set_missing(e.h, e.hva, NPG * PG, fill, &f),
			 0);
	/* a vCPU access fills its page */
	assert_int_equal(th_read64(e.v[0], GPA0 + 5 * PG + 8, &v), 0);
	assert_int_equal(v, th_pattern(e.hva + 5 * PG, 7, 1));
	/* a host read fills its pages */
	assert_int_equal(tdp_host_read(e.h, e.hva + 300 * PG, buf, PG), 0);
	assert_int_equal(th_check_page(buf, e.hva + 300 * PG, 7), 0);
	assert_int_equal(f.calls, 2);
	/* every page, once */
	for (uint64_t i = 0; i < NPG; i++) {
		assert_int_equal(tdp_host_read(e.h, e.hva + i * PG, buf, PG), 0);
		assert_int_equal(th_check_page(buf, e.hva + i * PG, 7), 0);
	}
	assert_int_equal(f.calls, NPG);
	tdp_host_get_stats(e.h, &s);
	assert_int_equal(s.missing_filled, NPG);
	th_env_fini_empty(&e);
}

static void test_fill_error(void **state)
{
	struct filler f = {.fail_page = 3};
	struct th_env e;
	uint64_t v;

	(void)state;
	th_env_init(&e, 1ull << 30, NULL, 1);
	th_env_slot(&e, GPA0, NPG * PG, PG);
	f.base = e.hva;
	assert_int_equal(tdp_host_set_missing(e.h, e.hva, 8 * PG, fill, &f),
			 0);
	assert_int_equal(th_read64(e.v[0], GPA0 + 3 * PG, &v), -EIO);
	assert_int_equal(tdp_host_read(e.h, e.hva + 3 * PG, &v, 8), -EIO);
	/* still missing: filled once the source can */
	f.fail_page = -1;
	assert_int_equal(th_read64(e.v[0], GPA0 + 3 * PG, &v), 0);
	assert_int_equal(v, th_pattern(e.hva + 3 * PG, 7, 0));
	/* pages beyond the range were never missing: zero */
	assert_int_equal(th_read64(e.v[0], GPA0 + 9 * PG, &v), 0);
	assert_int_equal(v, 0);
	th_env_fini_empty(&e);
}

static void test_errors(void **state)
{
	struct filler f = {.fail_page = -1};
	struct th_env e;

	(void)state;
	th_env_init(&e, 1ull << 30, NULL, 1);
	th_env_slot(&e, GPA0, NPG * PG, PG);
	f.base = e.hva;
	assert_int_equal(tdp_host_set_missing(e.h, e.hva, PG, NULL, &f),
			 -EINVAL);
	assert_int_equal(tdp_host_set_missing(e.h, e.hva + 1, PG, fill, &f),
			 -EINVAL);
	assert_int_equal(tdp_host_set_missing(e.h, e.hva, 0, fill, &f),
			 -EINVAL);
	assert_int_equal(tdp_host_set_missing(e.h, e.hva, (NPG + 1) * PG,
					      fill, &f),
			 -ENOENT);
	assert_int_equal(tdp_host_set_missing(NULL, e.hva, PG, fill, &f),
			 -EINVAL);
	assert_int_equal(f.calls, 0);
	/* unmapping missing pages calls nothing and leaks nothing */
	assert_int_equal(tdp_host_set_missing(e.h, e.hva, NPG * PG, fill, &f),
			 0);
	th_env_fini_empty(&e);
	assert_int_equal(f.calls, 0);
}

/* The process backend: a touch through the pointer fills the page too. */
static void test_process_touch(void **state)
{
	struct filler f = {.fail_page = -1};
	struct th_env e;

	(void)state;
	if (!th_process_host())
		skip();
	th_env_init(&e, 1ull << 30, NULL, 1);
	th_env_slot(&e, GPA0, NPG * PG, PG);
	f.base = e.hva;
	assert_int_equal(tdp_host_set_missing(e.h, e.hva, NPG * PG, fill, &f),
			 0);
	assert_int_equal(th_check_page((void *)(uintptr_t)(e.hva + 17 * PG),
				       e.hva + 17 * PG, 7),
			 0);
	assert_int_equal(f.calls, 1);
	th_env_fini_empty(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_filled_on_fault),
		cmocka_unit_test(test_fill_error),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_process_touch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
