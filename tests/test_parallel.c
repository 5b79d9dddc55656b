/* SPDX-License-Identifier: MIT */
/*
 * test_parallel.c - stress of the parallel protocols: vCPU threads fault
 * under the read lock on overlapping gfns (shared pages every vCPU reads)
 * and disjoint gfns (private pages each vCPU rewrites and verifies), while
 * a zapper zaps random ranges and resets the roots and a host thread
 * migrates, swaps out and splits the memory.  No read may ever differ from
 * what was last written; the audit must be clean at the end.  Run under
 * ASan and TSan by `make check`.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "vm.h"

#define SLOT_SIZE (16 * MiB)
#define NPAGES (2 * SLOT_SIZE / 4096) /* two slots */
#define SHARED_EVERY 8		       /* 1 page in 8 is shared */

struct stress {
	struct tdp_host *h;
	struct tdp_vm *vm;
	struct tdp_vcpu *v[4];
	unsigned nvcpu;
	uint64_t hva[2];
	uint32_t gen[NPAGES]; /* private pages: written by the owner only */
	atomic_bool stop;
	atomic_ullong mismatches, accesses, zaps, resets, hostops;
	uint64_t seconds;
};

static bool shared_page(uint64_t p)
{
	return p % SHARED_EVERY == 0;
}

static unsigned owner(struct stress *s, uint64_t p)
{
	return (unsigned)((p / 16) % s->nvcpu); /* 64 KiB chunks interleave */
}

static uint64_t page_hva(struct stress *s, uint64_t p)
{
	uint64_t off = p * 4096;

	return off < SLOT_SIZE ? s->hva[0] + off : s->hva[1] + off - SLOT_SIZE;
}

struct vt {
	struct stress *s;
	unsigned id;
	int err;
};

static void *vcpu_thread(void *arg)
{
	struct vt *t = arg;
	struct stress *s = t->s;
	struct tdp_vcpu *v = s->v[t->id];
	uint64_t seed = 0x1234 + t->id;
	uint8_t buf[4096];

	while (!atomic_load(&s->stop) && !t->err) {
		uint64_t p = th_rand(&seed) % NPAGES;
		bool mine = !shared_page(p) && owner(s, p) == t->id;
		uint64_t gen;

		if (!shared_page(p) && !mine)
			continue; /* another vCPU's private page */
		gen = mine ? s->gen[p] : 0;
		t->err = tdp_vcpu_read(v, p * 4096, buf, sizeof(buf));
		if (t->err)
			break;
		if (th_check_page(buf, p * 4096, gen)) {
			atomic_fetch_add(&s->mismatches, 1);
			fprintf(stderr, "mismatch: vcpu %u gpa %#llx gen %llu\n",
				t->id, (unsigned long long)(p * 4096),
				(unsigned long long)gen);
		}
		if (mine && (th_rand(&seed) & 1)) {
			s->gen[p]++;
			th_fill_page(buf, p * 4096, s->gen[p]);
			t->err = tdp_vcpu_write(v, p * 4096, buf, sizeof(buf));
		}
		atomic_fetch_add(&s->accesses, 1);
	}
	return NULL;
}

static void *zapper_thread(void *arg)
{
	struct stress *s = arg;
	uint64_t seed = 99;

	while (!atomic_load(&s->stop)) {
		uint64_t r = th_rand(&seed);

		if (r % 64 == 0) {
			assert_int_equal(tdp_vm_invalidate_roots(s->vm), 0);
			atomic_fetch_add(&s->resets, 1);
		} else {
			uint64_t len = 4096ull << (r % 11); /* 4K .. 4M */
			uint64_t gpa = (th_rand(&seed) % (2 * SLOT_SIZE)) &
				       ~(len - 1);

			assert_int_equal(tdp_vm_zap_gfn_range(s->vm, 0, gpa,
							      len),
					 0);
			atomic_fetch_add(&s->zaps, 1);
		}
		usleep(200);
	}
	return NULL;
}

static void *host_thread(void *arg)
{
	struct stress *s = arg;
	uint64_t seed = 7;

	while (!atomic_load(&s->stop)) {
		unsigned which = (unsigned)(th_rand(&seed) % 2);
		uint64_t off = th_rand(&seed) % SLOT_SIZE;
		int r;

		switch (th_rand(&seed) % 4) {
		case 0:
			off &= ~(2 * MiB - 1);
			r = tdp_host_migrate(s->h, s->hva[which] + off, 2 * MiB);
			break;
		case 1:
			off &= ~(64 * 1024ull - 1);
			r = tdp_host_swap_out(s->h, s->hva[which] + off,
					      64 * 1024);
			break;
		case 2:
			off &= ~(4096ull - 1);
			r = tdp_host_migrate(s->h, s->hva[which] + off, 4096);
			break;
		default:
			off &= ~(2 * MiB - 1);
			r = tdp_host_split(s->h, s->hva[0] + off, 2 * MiB);
			break;
		}
		assert_int_equal(r, 0);
		atomic_fetch_add(&s->hostops, 1);
		usleep(300);
	}
	return NULL;
}

static void run(unsigned nvcpu, uint64_t seconds)
{
	struct tdp_vm_config vc = { .max_vcpus = 8 };
	struct stress *s = calloc(1, sizeof(*s));
	pthread_t tv[4], tz, th;
	struct vt vt[4];
	uint8_t buf[4096];

	assert_non_null(s);
	s->nvcpu = nvcpu;
	s->seconds = seconds;
	s->h = th_host_new(1 * GiB);
	s->hva[0] = th_host_map(s->h, SLOT_SIZE, TDP_PROT_READ | TDP_PROT_WRITE,
				TDP_HUGE_2M);
	s->hva[1] = th_host_map(s->h, SLOT_SIZE, TDP_PROT_READ | TDP_PROT_WRITE,
				TDP_PAGE_SIZE);
	assert_int_equal(tdp_vm_create(s->h, &vc, &s->vm), 0);
	for (unsigned i = 0; i < 2; i++) {
		struct tdp_memslot ms = { .slot = i, .gpa = i * SLOT_SIZE,
					  .size = SLOT_SIZE,
					  .hva = s->hva[i] };
		assert_int_equal(tdp_vm_set_memslot(s->vm, &ms), 0);
	}
	/* the host fills every page with generation 0 */
	for (uint64_t p = 0; p < NPAGES; p++) {
		th_fill_page(buf, p * 4096, 0);
		assert_int_equal(tdp_host_write(s->h, page_hva(s, p), buf,
						sizeof(buf)),
				 0);
	}
	for (unsigned i = 0; i < nvcpu; i++)
		assert_int_equal(tdp_vcpu_create(s->vm, i, &s->v[i]), 0);

	for (unsigned i = 0; i < nvcpu; i++) {
		vt[i] = (struct vt){ .s = s, .id = i };
		pthread_create(&tv[i], NULL, vcpu_thread, &vt[i]);
	}
	pthread_create(&tz, NULL, zapper_thread, s);
	pthread_create(&th, NULL, host_thread, s);
	sleep((unsigned)seconds);
	atomic_store(&s->stop, true);
	for (unsigned i = 0; i < nvcpu; i++) {
		pthread_join(tv[i], NULL);
		assert_int_equal(vt[i].err, 0);
	}
	pthread_join(tz, NULL);
	pthread_join(th, NULL);

	struct tdp_stats st;
	tdp_vm_get_stats(s->vm, &st);
	print_message("%u vCPUs: %llu accesses, %llu zaps, %llu root resets, "
		      "%llu host ops, %llu faults (%llu retried), %llu "
		      "flushes\n",
		      nvcpu, (unsigned long long)atomic_load(&s->accesses),
		      (unsigned long long)atomic_load(&s->zaps),
		      (unsigned long long)atomic_load(&s->resets),
		      (unsigned long long)atomic_load(&s->hostops),
		      (unsigned long long)st.pf_fixed,
		      (unsigned long long)st.pf_retry,
		      (unsigned long long)st.remote_tlb_flush);
	assert_int_equal(atomic_load(&s->mismatches), 0);
	assert_true(atomic_load(&s->accesses) > 100);
	assert_true(atomic_load(&s->zaps) > 10);
	assert_true(atomic_load(&s->hostops) > 10);

	/* everything still reads back, through the guest and the host */
	for (uint64_t p = 0; p < NPAGES; p++) {
		uint64_t gen = shared_page(p) ? 0 : s->gen[p];

		assert_int_equal(tdp_vcpu_read(s->v[0], p * 4096, buf,
					       sizeof(buf)),
				 0);
		assert_int_equal(th_check_page(buf, p * 4096, gen), 0);
		assert_int_equal(tdp_host_read(s->h, page_hva(s, p), buf,
					       sizeof(buf)),
				 0);
		assert_int_equal(th_check_page(buf, p * 4096, gen), 0);
	}
	th_audit_clean(s->vm);
	for (unsigned i = 0; i < nvcpu; i++)
		tdp_vcpu_destroy(s->v[i]);
	tdp_vm_destroy(s->vm);
	tdp_host_destroy(s->h);
	free(s);
}

static void test_two_vcpus_zapper_host(void **state)
{
	(void)state;
	run(2, 4);
}

static void test_four_vcpus_oversubscribed(void **state)
{
	(void)state;
	run(4, 4); /* 6 threads on 2 cores */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_vcpus_zapper_host),
		cmocka_unit_test(test_four_vcpus_oversubscribed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
