/* SPDX-License-Identifier: MIT */
/*
 * test_process.c - the process backend (TDP_HOST_PROCESS): hvas are
 * pointers into this process, and the pointer keeps seeing the guest's
 * bytes while the host migrates, swaps out, splits and reprotects them.
 * Skips (77) where userfaultfd is unavailable.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers.h"
#include "tdpmmu.h"

#define PG   TDP_PAGE_SIZE
#define M2   TDP_HUGE_2M
#define RW   (TDP_PROT_READ | TDP_PROT_WRITE)
#define GPA0 (1ull << 32)

static struct tdp_host *proc_host(void)
{
	struct tdp_host_config cfg = {.mem_bytes = 1ull << 30,
				      .backend = TDP_HOST_PROCESS};
	struct tdp_host *h = NULL;
	int r = tdp_host_create(&cfg, &h);

	if (r == -EOPNOTSUPP) {
		print_message("no userfaultfd here: skipped\n");
		exit(77);
	}
	assert_int_equal(r, 0);
	return h;
}

/* The pages [p, p + npages) hold th_fill_page's pattern of generation
 * @gen (keyed by the page's own address). */
static void fill(volatile uint64_t *p, uint64_t npages, uint64_t gen)
{
	for (uint64_t pg = 0; pg < npages; pg++)
		th_fill_page((void *)(p + pg * 512), (uintptr_t)(p + pg * 512),
			     gen);
}

static void check(volatile uint64_t *p, uint64_t npages, uint64_t gen)
{
	for (uint64_t pg = 0; pg < npages; pg++)
		assert_int_equal(th_check_page((const void *)(p + pg * 512),
					       (uintptr_t)(p + pg * 512), gen),
				 0);
}

static void test_errors(void **state)
{
	struct tdp_host_config bad = {.backend = 7};
	struct tdp_host *h;
	uint64_t hva, taken;
	void *p;

	(void)state;
	assert_int_equal(tdp_host_create(&bad, &h), -EINVAL);
	h = proc_host();
	/* a fixed range where this process already has memory */
	p = mmap(NULL, 4 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	taken = (uintptr_t)p;
	hva = taken;
	assert_int_equal(tdp_host_mmap(h, PG, RW, PG, TDP_MAP_FIXED, &hva),
			 -EEXIST);
	assert_int_equal(hva, taken);
	munmap(p, 4 * PG);
	/* ... and where it has none */
	assert_int_equal(tdp_host_mmap(h, 4 * PG, RW, PG, TDP_MAP_FIXED, &hva),
			 0);
	assert_int_equal(hva, taken);
	*(volatile uint64_t *)(uintptr_t)hva = 5;
	assert_int_equal(tdp_host_munmap(h, hva, 4 * PG), 0);
	tdp_host_destroy(h);
}

/* The pointer, tdp_host_read/write and a vCPU see the same bytes.  (CTest
 * runs this file with TDPMMU_TEST_HOST=process, so th_env's host is a
 * process host.) */
static void test_pointer_is_guest_ram(void **state)
{
	struct th_env e;
	uint64_t v = 0;
	volatile uint64_t *p;

	(void)state;
	th_env_init(&e, 1ull << 30, NULL, 1);
	th_env_slot(&e, GPA0, 2 * M2, M2);
	p = (volatile uint64_t *)(uintptr_t)e.hva;
	fill(p, 1024, 1);
	check(p, 1024, 1);
	assert_int_equal(tdp_vcpu_read(e.v[0], GPA0 + 5 * PG, &v, 8), 0);
	assert_int_equal(v, th_pattern(e.hva + 5 * PG, 1, 0));
	v = 42;
	assert_int_equal(tdp_vcpu_write(e.v[0], GPA0 + 700 * PG, &v, 8), 0);
	assert_int_equal(p[700 * 512], 42);
	v = 43;
	assert_int_equal(tdp_host_write(e.h, e.hva + 9 * PG, &v, 8), 0);
	assert_int_equal(p[9 * 512], 43);
	/* the vCPU's mapping follows a migration under the pointer */
	assert_int_equal(tdp_host_migrate(e.h, e.hva, 2 * M2), 0);
	p[700 * 512] = 44;
	assert_int_equal(tdp_vcpu_read(e.v[0], GPA0 + 700 * PG, &v, 8), 0);
	assert_int_equal(v, 44);
	th_env_fini_empty(&e);
}

/* Host operations under the pointer: same bytes after each. */
static void test_ops_keep_bytes(void **state)
{
	struct tdp_host *h = proc_host();
	struct tdp_host_stats s;
	uint64_t hva;
	volatile uint64_t *p;

	(void)state;
	hva = th_host_map(h, 2 * M2, RW, M2);
	p = (volatile uint64_t *)(uintptr_t)hva;
	fill(p, 1024, 2);
	assert_int_equal(tdp_host_migrate(h, hva, 2 * M2), 0);
	check(p, 1024, 2);
	assert_int_equal(tdp_host_split(h, hva, M2), 0);
	check(p, 1024, 2);
	assert_int_equal(tdp_host_swap_out(h, hva + 16 * PG, 64 * PG), 0);
	tdp_host_get_stats(h, &s);
	assert_int_equal(s.swapped_pages, 64);
	check(p, 1024, 2); /* touches bring the pages back */
	tdp_host_get_stats(h, &s);
	assert_int_equal(s.swapped_pages, 0);
	assert_int_equal(s.swap_ins, 64);
	assert_int_equal(s.swap_out_clean, 0);
	/* the program's own DONTNEED drops nothing: the mapping is shared */
	assert_int_equal(madvise((void *)(uintptr_t)hva, 2 * M2,
				 MADV_DONTNEED),
			 0);
	check(p, 1024, 2);
	/* a swapped page written through the pointer */
	assert_int_equal(tdp_host_swap_out(h, hva, 2 * M2), 0);
	p[3 * 512] = 77;
	assert_int_equal(p[3 * 512], 77);
	p[3 * 512] = th_pattern(hva + 3 * PG, 2, 0);
	check(p, 1024, 2);
	/* mprotect read-only: reads go on */
	assert_int_equal(tdp_host_mprotect(h, hva, 2 * M2, TDP_PROT_READ), 0);
	check(p, 1024, 2);
	assert_int_equal(tdp_host_munmap(h, hva, 2 * M2), 0);
	tdp_host_destroy(h);
}

static sigjmp_buf segv_jmp;
static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(segv_jmp, 1);
}

/* mprotect and munmap change the real mapping. */
static void test_protection_is_real(void **state)
{
	struct tdp_host *h = proc_host();
	struct sigaction sa = {.sa_handler = on_segv}, old;
	volatile uint64_t *p;
	volatile int faulted = 0;
	uint64_t hva;

	(void)state;
	hva = th_host_map(h, 4 * PG, RW, PG);
	p = (volatile uint64_t *)(uintptr_t)hva;
	p[0] = 1;
	assert_int_equal(tdp_host_mprotect(h, hva, 4 * PG, TDP_PROT_READ), 0);
	sigaction(SIGSEGV, &sa, &old);
	if (!sigsetjmp(segv_jmp, 1))
		p[0] = 2;
	else
		faulted = 1;
	assert_int_equal(faulted, 1);
	assert_int_equal(p[0], 1);
	assert_int_equal(tdp_host_munmap(h, hva, 4 * PG), 0);
	faulted = 0;
	if (!sigsetjmp(segv_jmp, 1))
		(void)p[0];
	else
		faulted = 1;
	sigaction(SIGSEGV, &old, NULL);
	assert_int_equal(faulted, 1);
	tdp_host_destroy(h);
}

/* The program reads and writes its pointer while another thread migrates
 * and swaps the same pages out in a loop: every word it reads is the last
 * one it wrote (touches wait for the operations, never see a half copy). */
struct churn {
	struct tdp_host *h;
	uint64_t hva, len;
	_Atomic int stop;
	_Atomic unsigned ops;
};

static void *churn_fn(void *arg)
{
	struct churn *c = arg;
	uint64_t x = 1;

	while (!atomic_load(&c->stop)) {
		uint64_t off = (x % (c->len / PG)) * PG;
		uint64_t n = (c->len - off) < 16 * PG ? c->len - off : 16 * PG;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		assert_int_equal((x >> 40) & 1
					 ? tdp_host_migrate(c->h, c->hva + off, n)
					 : tdp_host_swap_out(c->h, c->hva + off, n),
				 0);
		atomic_fetch_add(&c->ops, 1);
	}
	return NULL;
}

static void test_touch_under_churn(void **state)
{
	struct churn c = {.h = proc_host(), .len = 256 * PG};
	volatile uint64_t *p;
	pthread_t t;

	(void)state;
	c.hva = th_host_map(c.h, c.len, RW, PG);
	p = (volatile uint64_t *)(uintptr_t)c.hva;
	fill(p, 256, 0);
	assert_int_equal(pthread_create(&t, NULL, churn_fn, &c), 0);
	for (uint64_t gen = 1; gen <= 40 || atomic_load(&c.ops) < 200; gen++) {
		fill(p, 256, gen);
		check(p, 256, gen);
	}
	atomic_store(&c.stop, 1);
	pthread_join(t, NULL);
	print_message("%u host operations under the touches\n", atomic_load(&c.ops));
	tdp_host_destroy(c.h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_pointer_is_guest_ram),
		cmocka_unit_test(test_ops_keep_bytes),
		cmocka_unit_test(test_protection_is_real),
		cmocka_unit_test(test_touch_under_churn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
