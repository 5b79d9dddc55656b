/* SPDX-License-Identifier: MIT */
/*
 * test_access.c - integration tests of the guest <-> host data paths and
 * the exit codes of tdp_vcpu_read/write/fetch:
 *  - data written by the guest is what the host reads at the slot's hva and
 *    vice versa, for accesses crossing pages, 2 MiB and 1 GiB folios and two
 *    adjacent memslots, at odd offsets and lengths (random ops against a
 *    shadow copy);
 *  - fetch needs TDP_PROT_EXEC; -EFAULT with no memslot (bytes before the
 *    faulting page transferred), or with the host range unmapped; -EACCES
 *    for writes to read-only slots; host mprotect; -EINVAL;
 *  - contents survive migrate / swap-out / split while a vCPU thread reads
 *    them, and after a migrate the leaf follows the host's new frame.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "vm.h"

#define PG 4096ull
#define RW (TDP_PROT_READ | TDP_PROT_WRITE)

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

/* Byte @i of a deterministic stream tagged @tag (for odd-length data). */
static uint8_t pat_byte(uint64_t tag, uint64_t i)
{
	uint64_t x = (tag + i / 8) * 0x9e3779b97f4a7c15ull;

	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 32;
	return (uint8_t)(x >> (8 * (i % 8)));
}

static void pat_fill(uint8_t *buf, uint64_t len, uint64_t tag)
{
	for (uint64_t i = 0; i < len; i++)
		buf[i] = pat_byte(tag, i);
}

/* ------------------------------------------------------------------ */
/* data paths: random guest/host accesses against a shadow copy        */
/* ------------------------------------------------------------------ */

/* A region of guest-physical space made of adjacent memslots. */
struct region {
	uint64_t gpa, size;
	unsigned n;
	struct {
		uint64_t gpa, size, hva;
	} s[4];
};

/* Host access to [gpa, gpa+len) of the region, split at slot boundaries. */
static void host_rw_gpa(struct th_env *e, const struct region *r, uint64_t gpa,
			uint8_t *buf, uint64_t len, bool write)
{
	while (len) {
		unsigned i;

		for (i = 0; i < r->n; i++)
			if (gpa >= r->s[i].gpa &&
			    gpa < r->s[i].gpa + r->s[i].size)
				break;
		assert_true(i < r->n);
		uint64_t off = gpa - r->s[i].gpa;
		uint64_t n =
			r->s[i].size - off < len ? r->s[i].size - off : len;
		uint64_t hva = r->s[i].hva + off;

		if (write)
			assert_int_equal(tdp_host_write(e->h, hva, buf, n), 0);
		else
			assert_int_equal(tdp_host_read(e->h, hva, buf, n), 0);
		gpa += n;
		buf += n;
		len -= n;
	}
}

/*
 * @iters random operations on the region: guest or host writes of random
 * data at random offsets and lengths (up to ~3 pages, odd on purpose), and
 * guest or host reads compared with the shadow.  Some operations are aimed
 * at the boundaries listed in @hot (slot and folio edges) so that crossing
 * them is not left to chance.
 */
static void shadow_run(struct th_env *e, const struct region *r,
		       const uint64_t *hot, unsigned nhot, unsigned iters,
		       uint64_t seed)
{
	uint8_t *shadow = calloc(1, r->size);
	uint8_t *buf = malloc(3 * PG + 64);
	uint64_t rs = seed;
	unsigned counts[4] = {0};

	assert_non_null(shadow);
	assert_non_null(buf);
	for (unsigned it = 0; it < iters; it++) {
		uint64_t len = 1 + th_rand(&rs) % (3 * PG + 37);
		uint64_t off;
		unsigned op = (unsigned)(th_rand(&rs) % 4);

		if (len > r->size)
			len = r->size;
		if (nhot && th_rand(&rs) % 2) {
			/* straddle a hot boundary */
			uint64_t b = hot[th_rand(&rs) % nhot] - r->gpa;
			uint64_t back = 1 + th_rand(&rs) % len;

			if (back >= len)
				back = len - 1;
			off = b >= back ? b - back : 0;
		} else {
			off = th_rand(&rs) % (r->size - len + 1);
		}
		if (off + len > r->size)
			off = r->size - len;
		counts[op]++;
		switch (op) {
		case 0: /* guest write */
			pat_fill(buf, len, th_rand(&rs));
			assert_int_equal(
				tdp_vcpu_write(e->v[0], r->gpa + off, buf, len),
				0);
			memcpy(shadow + off, buf, len);
			break;
		case 1: /* host write */
			pat_fill(buf, len, th_rand(&rs));
			host_rw_gpa(e, r, r->gpa + off, buf, len, true);
			memcpy(shadow + off, buf, len);
			break;
		case 2: /* guest read */
			memset(buf, 0xa5, len);
			assert_int_equal(
				tdp_vcpu_read(e->v[0], r->gpa + off, buf, len),
				0);
			assert_memory_equal(buf, shadow + off, len);
			break;
		default: /* host read */
			memset(buf, 0x5a, len);
			host_rw_gpa(e, r, r->gpa + off, buf, len, false);
			assert_memory_equal(buf, shadow + off, len);
			break;
		}
	}
	for (unsigned i = 0; i < 4; i++)
		assert_true(counts[i] > 0);

	/* Whole region both ways. */
	uint8_t *all = malloc(r->size);

	assert_non_null(all);
	memset(all, 0xa5, r->size);
	assert_int_equal(tdp_vcpu_read(e->v[0], r->gpa, all, r->size), 0);
	assert_memory_equal(all, shadow, r->size);
	memset(all, 0x5a, r->size);
	host_rw_gpa(e, r, r->gpa, all, r->size, false);
	assert_memory_equal(all, shadow, r->size);
	free(all);
	free(buf);
	free(shadow);
}

/* 4 KiB folios, several pages, one slot. */
static void test_rw_pages(void **state)
{
	struct th_env e;
	struct region r = {.gpa = 0x100000, .size = 16 * PG, .n = 1};
	uint8_t buf[3 * 4096 + 200], back[sizeof(buf)];

	th_env_init(&e, 4 * GiB, NULL, 1);
	r.s[0].gpa = r.gpa;
	r.s[0].size = r.size;
	r.s[0].hva = th_host_map(e.h, r.size, RW, PG);
	th_set_slot(e.vm, 0, 0, r.gpa, r.size, r.s[0].hva, 0);

	/* One fixed odd access first: guest write -> host read. */
	pat_fill(buf, sizeof(buf), 1);
	assert_int_equal(
		tdp_vcpu_write(e.v[0], r.gpa + 0x7ff, buf, 3 * PG + 123), 0);
	memset(back, 0, sizeof(back));
	assert_int_equal(
		tdp_host_read(e.h, r.s[0].hva + 0x7ff, back, 3 * PG + 123), 0);
	assert_memory_equal(back, buf, 3 * PG + 123);
	/* the bytes around it are untouched (still zero) */
	assert_int_equal(tdp_host_read(e.h, r.s[0].hva + 0x7fe, back, 1), 0);
	assert_int_equal(back[0], 0);
	assert_int_equal(
		tdp_host_read(e.h, r.s[0].hva + 0x7ff + 3 * PG + 123, back, 1),
		0);
	assert_int_equal(back[0], 0);
	/* host write -> guest read, odd offset/length, 3 pages touched */
	pat_fill(buf, sizeof(buf), 2);
	assert_int_equal(
		tdp_host_write(e.h, r.s[0].hva + 5 * PG - 3, buf, 2 * PG + 7),
		0);
	memset(back, 0, sizeof(back));
	assert_int_equal(
		tdp_vcpu_read(e.v[0], r.gpa + 5 * PG - 3, back, 2 * PG + 7), 0);
	assert_memory_equal(back, buf, 2 * PG + 7);
	/* the guest now has these pages in its TLB: host writes must still
	 * be seen (same frame) */
	pat_fill(buf, sizeof(buf), 3);
	assert_int_equal(
		tdp_host_write(e.h, r.s[0].hva + 5 * PG - 3, buf, 2 * PG + 7),
		0);
	assert_int_equal(
		tdp_vcpu_read(e.v[0], r.gpa + 5 * PG - 3, back, 2 * PG + 7), 0);
	assert_memory_equal(back, buf, 2 * PG + 7);
	/* and reading one byte, zero bytes */
	assert_int_equal(tdp_vcpu_read(e.v[0], r.gpa + 5 * PG - 3, back, 1), 0);
	assert_int_equal(back[0], buf[0]);
	assert_int_equal(tdp_vcpu_read(e.v[0], r.gpa, back, 0), 0);

	/* Random ops against a shadow; the fixed accesses above are not in
	 * the shadow, so start from a known state. */
	memset(buf, 0, sizeof(buf));
	for (uint64_t o = 0; o < r.size; o += PG)
		assert_int_equal(tdp_host_write(e.h, r.s[0].hva + o, buf, PG),
				 0);
	uint64_t hot[] = {r.gpa + PG, r.gpa + 8 * PG};

	shadow_run(&e, &r, hot, 2, 1500, 0x1234567);
	assert_true(th_vm_stats(e.vm).pages_4k > 0);
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

/*
 * Two adjacent memslots over unrelated host mappings: 6 pages of 4 KiB
 * folios ending at gpa 2 MiB, then 4 MiB of 2 MiB folios; accesses cross
 * the slot boundary and the 2 MiB folio boundary at 4 MiB.
 */
static void test_rw_slots_and_2m(void **state)
{
	struct th_env e;
	struct region r = {
		.gpa = 2 * MiB - 6 * PG, .size = 6 * PG + 4 * MiB, .n = 2};
	uint8_t buf[8192], back[8192];

	th_env_init(&e, 4 * GiB, NULL, 1);
	r.s[0].gpa = r.gpa;
	r.s[0].size = 6 * PG;
	r.s[0].hva = th_host_map(e.h, 6 * PG, RW, PG);
	/* a gap in hva, so that the two slots are not contiguous there */
	uint64_t spacer = th_host_map(e.h, 2 * MiB, TDP_PROT_READ, TDP_HUGE_2M);
	r.s[1].gpa = 2 * MiB;
	r.s[1].size = 4 * MiB;
	r.s[1].hva = th_host_map(e.h, 4 * MiB, RW, TDP_HUGE_2M);
	assert_true(r.s[1].hva != r.s[0].hva + 6 * PG);
	th_set_slot(e.vm, 0, 3, r.s[0].gpa, r.s[0].size, r.s[0].hva, 0);
	th_set_slot(e.vm, 0, 7, r.s[1].gpa, r.s[1].size, r.s[1].hva, 0);

	/* one access spanning both slots: guest write, host reads each side */
	pat_fill(buf, sizeof(buf), 11);
	uint64_t at = 2 * MiB - 1001;

	assert_int_equal(tdp_vcpu_write(e.v[0], at, buf, 5001), 0);
	memset(back, 0, sizeof(back));
	assert_int_equal(
		tdp_host_read(e.h, r.s[0].hva + 6 * PG - 1001, back, 1001), 0);
	assert_int_equal(tdp_host_read(e.h, r.s[1].hva, back + 1001, 4000), 0);
	assert_memory_equal(back, buf, 5001);
	/* host writes each side, one guest read spanning both */
	pat_fill(buf, sizeof(buf), 12);
	assert_int_equal(tdp_host_write(e.h, r.s[0].hva + 6 * PG - 77, buf, 77),
			 0);
	assert_int_equal(tdp_host_write(e.h, r.s[1].hva, buf + 77, 6000), 0);
	memset(back, 0, sizeof(back));
	assert_int_equal(tdp_vcpu_read(e.v[0], 2 * MiB - 77, back, 6077), 0);
	assert_memory_equal(back, buf, 6077);

	/* across the 2 MiB folio boundary at gpa 4 MiB */
	pat_fill(buf, sizeof(buf), 13);
	assert_int_equal(tdp_vcpu_write(e.v[0], 4 * MiB - 4097, buf, 8191), 0);
	assert_int_equal(
		tdp_host_read(e.h, r.s[1].hva + 2 * MiB - 4097, back, 8191), 0);
	assert_memory_equal(back, buf, 8191);
	/* the 2 MiB folios are mapped by 2 MiB leaves */
	assert_int_equal(th_vm_stats(e.vm).pages_2m, 2);
	int level;

	assert_int_equal(th_leaf_pfn(e.v[0], (4 * MiB) >> 12, &level),
			 th_lookup_pfn(e.h, r.s[1].hva + 2 * MiB, NULL));
	assert_int_equal(level, TDP_LEVEL_2M);
	th_audit_clean(e.vm);

	/* random ops: reset to zero first */
	uint8_t *z = calloc(1, r.size);

	assert_non_null(z);
	host_rw_gpa(&e, &r, r.gpa, z, r.size, true);
	free(z);
	uint64_t hot[] = {2 * MiB, 4 * MiB, 2 * MiB - 3 * PG};

	shadow_run(&e, &r, hot, 3, 2000, 0xfeedbeef);
	assert_int_equal(th_vm_stats(e.vm).pages_2m, 2);
	th_audit_clean(e.vm);
	assert_int_equal(tdp_host_munmap(e.h, spacer, 2 * MiB), 0);
	th_env_fini(&e);
}

/* 2 GiB of 1 GiB folios; accesses across the 1 GiB boundary. */
static void test_rw_1g(void **state)
{
	struct th_env e;
	struct region r = {.gpa = GiB, .size = 2 * GiB, .n = 1};
	uint8_t buf[10000], back[10000];
	int level;

	th_env_init(&e, 4 * GiB, NULL, 1);
	r.s[0].gpa = r.gpa;
	r.s[0].size = r.size;
	r.s[0].hva = th_host_map(e.h, 2 * GiB, RW, TDP_HUGE_1G);
	th_set_slot(e.vm, 0, 1, r.gpa, r.size, r.s[0].hva, 0);

	pat_fill(buf, sizeof(buf), 21);
	assert_int_equal(tdp_vcpu_write(e.v[0], 2 * GiB - 3001, buf, 9999), 0);
	memset(back, 0, sizeof(back));
	assert_int_equal(
		tdp_host_read(e.h, r.s[0].hva + GiB - 3001, back, 9999), 0);
	assert_memory_equal(back, buf, 9999);
	pat_fill(buf, sizeof(buf), 22);
	assert_int_equal(tdp_host_write(e.h, r.s[0].hva + GiB - 5, buf, 10000),
			 0);
	memset(back, 0, sizeof(back));
	assert_int_equal(tdp_vcpu_read(e.v[0], 2 * GiB - 5, back, 10000), 0);
	assert_memory_equal(back, buf, 10000);
	assert_int_equal(th_vm_stats(e.vm).pages_1g, 2);
	assert_int_equal(th_leaf_pfn(e.v[0], (2 * GiB + 5 * PG) >> 12, &level),
			 th_lookup_pfn(e.h, r.s[0].hva + GiB + 5 * PG, NULL));
	assert_int_equal(level, TDP_LEVEL_1G);
	/* far ends of the slot */
	assert_int_equal(tdp_vcpu_write(e.v[0], GiB, buf, 3), 0);
	assert_int_equal(tdp_vcpu_write(e.v[0], 3 * GiB - 3, buf + 3, 3), 0);
	assert_int_equal(tdp_host_read(e.h, r.s[0].hva, back, 3), 0);
	assert_int_equal(
		tdp_host_read(e.h, r.s[0].hva + 2 * GiB - 3, back + 3, 3), 0);
	assert_memory_equal(back, buf, 6);

	/* random ops near the boundary only (the shadow would be 2 GiB):
	 * a 64 KiB window around it as its own region */
	struct region w = {
		.gpa = 2 * GiB - 32 * 1024, .size = 64 * 1024, .n = 1};

	w.s[0].gpa = w.gpa;
	w.s[0].size = w.size;
	w.s[0].hva = r.s[0].hva + GiB - 32 * 1024;
	uint8_t *z = calloc(1, w.size);

	assert_non_null(z);
	host_rw_gpa(&e, &w, w.gpa, z, w.size, true);
	free(z);
	uint64_t hot[] = {2 * GiB};

	shadow_run(&e, &w, hot, 1, 800, 0xabcdef);
	assert_int_equal(th_vm_stats(e.vm).pages_1g, 2);
	th_audit_clean(e.vm);

	/* one 4 KiB page migrated out of the second 1 GiB folio: the folio
	 * is split, its 1 GiB leaf goes, the data stays */
	uint64_t page = r.s[0].hva + GiB + 77 * PG, old_pfn, new_pfn;
	unsigned order;

	pat_fill(buf, PG, 23);
	assert_int_equal(tdp_vcpu_write(e.v[0], 2 * GiB + 77 * PG, buf, PG), 0);
	old_pfn = th_lookup_pfn(e.h, page, &order);
	assert_int_equal(order, HOST_ORDER_1G);
	assert_int_equal(tdp_host_migrate(e.h, page, PG), 0);
	new_pfn = th_lookup_pfn(e.h, page, &order);
	assert_int_equal(order, 0);
	assert_true(new_pfn != old_pfn);
	assert_true(th_frame_poisoned(e.h, old_pfn));
	assert_int_equal(th_vm_stats(e.vm).pages_1g, 1);
	th_audit_clean(e.vm);
	memset(back, 0, sizeof(back));
	assert_int_equal(tdp_vcpu_read(e.v[0], 2 * GiB + 77 * PG, back, PG), 0);
	assert_memory_equal(back, buf, PG);
	assert_int_equal(th_leaf_pfn(e.v[0], (2 * GiB >> 12) + 77, &level),
			 new_pfn);
	assert_int_equal(level, TDP_LEVEL_4K);
	/* the neighbours, now 4 KiB folios of the split 1 GiB one */
	assert_int_equal(
		tdp_vcpu_read(e.v[0], 2 * GiB + 76 * PG + 3, back, 10000), 0);
	assert_int_equal(
		tdp_host_read(e.h, r.s[0].hva + GiB + 76 * PG + 3, buf, 10000),
		0);
	assert_memory_equal(back, buf, 10000);
	assert_int_equal(tdp_host_read(e.h, page, buf, PG), 0);
	assert_memory_equal(buf, back + PG - 3, PG);
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

/* ------------------------------------------------------------------ */
/* exits                                                               */
/* ------------------------------------------------------------------ */

static void test_fetch(void **state)
{
	struct th_env e;
	uint8_t buf[3 * 4096], back[3 * 4096];
	uint64_t hx, hn;
	int level;

	th_env_init(&e, 4 * GiB, NULL, 1);
	/* slot 0: executable, 4 pages at gpa 0; slot 1: not executable,
	 * adjacent, 4 pages */
	hx = th_host_map(e.h, 4 * PG, RW | TDP_PROT_EXEC, PG);
	hn = th_host_map(e.h, 4 * PG, RW, PG);
	th_set_slot(e.vm, 0, 0, 0, 4 * PG, hx, 0);
	th_set_slot(e.vm, 0, 1, 4 * PG, 4 * PG, hn, 0);
	pat_fill(buf, sizeof(buf), 31);
	assert_int_equal(tdp_host_write(e.h, hx + 100, buf, 2 * PG), 0);
	assert_int_equal(tdp_host_write(e.h, hn, buf, 3 * PG), 0);

	memset(back, 0, sizeof(back));
	assert_int_equal(tdp_vcpu_fetch(e.v[0], 100, back, 2 * PG), 0);
	assert_memory_equal(back, buf, 2 * PG);
	assert_true(th_leaf_pfn(e.v[0], 0, &level) != ~0ull);

	/* not executable: -EFAULT, before and after a read mapped it */
	struct tdp_stats s0 = th_vm_stats(e.vm);

	assert_int_equal(tdp_vcpu_fetch(e.v[0], 4 * PG + 8, back, 16), -EFAULT);
	assert_int_equal(tdp_vcpu_read(e.v[0], 4 * PG, back, PG), 0);
	assert_memory_equal(back, buf, PG);
	assert_true(th_leaf_pfn(e.v[0], 4, &level) != ~0ull);
	assert_int_equal(tdp_vcpu_fetch(e.v[0], 4 * PG + 8, back, 16), -EFAULT);
	/* a write mapping (D set, in the TLB) does not allow fetch either */
	assert_int_equal(tdp_vcpu_write(e.v[0], 4 * PG + 8, buf, 16), 0);
	assert_int_equal(tdp_vcpu_fetch(e.v[0], 4 * PG + 8, back, 16), -EFAULT);
	assert_true(th_vm_stats(e.vm).pf_taken > s0.pf_taken);

	/* fetch spanning the executable slot into the other: -EFAULT, the
	 * executable part transferred */
	memset(back, 0xee, sizeof(back));
	assert_int_equal(tdp_host_write(e.h, hx + 3 * PG, buf + 5, PG), 0);
	assert_int_equal(tdp_vcpu_fetch(e.v[0], 3 * PG, back, 2 * PG), -EFAULT);
	assert_memory_equal(back, buf + 5, PG);

	/* host drops EXEC: fetch fails, reads work; restoring it works */
	assert_int_equal(tdp_host_mprotect(e.h, hx, 4 * PG,
					   TDP_PROT_READ | TDP_PROT_WRITE),
			 0);
	assert_int_equal(tdp_vcpu_fetch(e.v[0], 100, back, 64), -EFAULT);
	assert_int_equal(tdp_vcpu_read(e.v[0], 100, back, 64), 0);
	assert_memory_equal(back, buf, 64);
	assert_int_equal(tdp_host_mprotect(e.h, hx, 4 * PG,
					   TDP_PROT_READ | TDP_PROT_WRITE |
						   TDP_PROT_EXEC),
			 0);
	memset(back, 0, sizeof(back));
	assert_int_equal(tdp_vcpu_fetch(e.v[0], 100, back, 64), 0);
	assert_memory_equal(back, buf, 64);
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

static void test_no_memslot(void **state)
{
	struct th_env e;
	uint8_t buf[3 * 4096], back[3 * 4096];
	uint64_t hva;
	const uint64_t base = 0x200000, end = base + 2 * PG;

	th_env_init(&e, 4 * GiB, NULL, 1);
	hva = th_host_map(e.h, 2 * PG, RW, PG);
	th_set_slot(e.vm, 0, 0, base, 2 * PG, hva, 0);
	/* a second slot after a one-page hole */
	uint64_t hva2 = th_host_map(e.h, PG, RW, PG);

	th_set_slot(e.vm, 0, 1, end + PG, PG, hva2, 0);

	struct tdp_stats s0 = th_vm_stats(e.vm);

	assert_int_equal(tdp_vcpu_read(e.v[0], 0x100000, back, 8), -EFAULT);
	assert_int_equal(tdp_vcpu_write(e.v[0], 0x100000, buf, 8), -EFAULT);
	assert_int_equal(tdp_vcpu_fetch(e.v[0], 0x100000, back, 8), -EFAULT);
	assert_int_equal(tdp_vcpu_read(e.v[0], end, back, 1), -EFAULT);
	assert_int_equal(tdp_vcpu_read(e.v[0], (1ull << 48) - 8, back, 8),
			 -EFAULT);
	assert_int_equal(th_vm_stats(e.vm).pf_mmio, s0.pf_mmio + 5);

	/* write from inside the slot into the hole: the bytes before the
	 * faulting page are written, the call returns -EFAULT */
	pat_fill(buf, sizeof(buf), 41);
	assert_int_equal(tdp_vcpu_write(e.v[0], end - 100, buf, 300), -EFAULT);
	memset(back, 0, sizeof(back));
	assert_int_equal(tdp_host_read(e.h, hva + 2 * PG - 100, back, 100), 0);
	assert_memory_equal(back, buf, 100);
	/* over two pages */
	pat_fill(buf, sizeof(buf), 42);
	assert_int_equal(tdp_vcpu_write(e.v[0], base + 5, buf, 2 * PG + 50),
			 -EFAULT);
	assert_int_equal(tdp_host_read(e.h, hva + 5, back, 2 * PG - 5), 0);
	assert_memory_equal(back, buf, 2 * PG - 5);
	/* the slot after the hole was not written */
	assert_int_equal(tdp_host_read(e.h, hva2, back, PG), 0);
	for (unsigned i = 0; i < PG; i++)
		assert_int_equal(back[i], 0);

	/* read from inside the slot into the hole: prefix transferred */
	memset(back, 0xcc, sizeof(back));
	assert_int_equal(tdp_vcpu_read(e.v[0], base + 5, back, 3 * PG),
			 -EFAULT);
	assert_memory_equal(back, buf, 2 * PG - 5);
	/* starting in the hole: nothing transferred */
	memset(back, 0xcc, sizeof(back));
	assert_int_equal(tdp_vcpu_read(e.v[0], end + 10, back, 2 * PG),
			 -EFAULT);
	assert_int_equal(back[0], 0xcc);
	assert_int_equal(back[PG], 0xcc);
	/* the pages around the hole still work */
	assert_int_equal(tdp_vcpu_write(e.v[0], end + PG, buf, 16), 0);
	assert_int_equal(tdp_vcpu_read(e.v[0], end - 16, back, 16), 0);
	assert_memory_equal(back, buf + 2 * PG - 16 - 5, 16);
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

static void test_munmapped_slot(void **state)
{
	struct th_env e;
	uint8_t buf[4096], back[4096];
	uint64_t hva;
	const uint64_t gpa = 0x40000;

	th_env_init(&e, 4 * GiB, NULL, 1);
	hva = th_host_map(e.h, 4 * PG, RW, PG);
	th_set_slot(e.vm, 0, 0, gpa, 4 * PG, hva, 0);

	/* never accessed, then unmapped */
	assert_int_equal(tdp_host_munmap(e.h, hva + 3 * PG, PG), 0);
	assert_int_equal(tdp_vcpu_read(e.v[0], gpa + 3 * PG, back, 8), -EFAULT);
	assert_int_equal(tdp_vcpu_write(e.v[0], gpa + 3 * PG, buf, 8), -EFAULT);

	/* mapped by the guest (leaf + TLB), then unmapped */
	pat_fill(buf, sizeof(buf), 51);
	for (unsigned p = 0; p < 3; p++)
		assert_int_equal(tdp_vcpu_write(e.v[0], gpa + p * PG, buf, PG),
				 0);
	assert_int_equal(tdp_vcpu_read(e.v[0], gpa + PG, back, 8), 0);
	assert_int_equal(tdp_host_munmap(e.h, hva, 2 * PG), 0);
	assert_int_equal(tdp_vcpu_read(e.v[0], gpa, back, 8), -EFAULT);
	assert_int_equal(tdp_vcpu_write(e.v[0], gpa + PG, buf, 8), -EFAULT);
	assert_int_equal(tdp_vcpu_fetch(e.v[0], gpa, back, 8), -EFAULT);
	/* page 2 is still mapped; an access from it into page 3 transfers
	 * the page-2 part only */
	memset(back, 0, sizeof(back));
	assert_int_equal(tdp_vcpu_read(e.v[0], gpa + 2 * PG + 4000, back, 200),
			 -EFAULT);
	assert_int_equal(tdp_host_read(e.h, hva + 2 * PG + 4000, buf, 96), 0);
	assert_memory_equal(back, buf, 96);
	/* no leaf survives for unmapped memory */
	th_audit_clean(e.vm);

	/* new memory at the same hva: zero, not the old contents */
	uint64_t fixed = hva;

	assert_int_equal(tdp_host_mmap(e.h, 2 * PG,
				       TDP_PROT_READ | TDP_PROT_WRITE, PG,
				       TDP_MAP_FIXED, &fixed),
			 0);
	memset(back, 0xff, sizeof(back));
	assert_int_equal(tdp_vcpu_read(e.v[0], gpa, back, PG), 0);
	for (unsigned i = 0; i < PG; i++)
		assert_int_equal(back[i], 0);
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

static void test_readonly_slot(void **state)
{
	struct th_env e;
	uint8_t buf[2 * 4096], back[2 * 4096];
	uint64_t hrw, hro;
	const uint64_t gpa = 0x10000;

	th_env_init(&e, 4 * GiB, NULL, 1);
	hrw = th_host_map(e.h, 2 * PG, RW, PG);
	hro = th_host_map(e.h, 2 * PG, RW, PG);
	th_set_slot(e.vm, 0, 0, gpa, 2 * PG, hrw, 0);
	th_set_slot(e.vm, 0, 1, gpa + 2 * PG, 2 * PG, hro, TDP_MEM_READONLY);
	pat_fill(buf, sizeof(buf), 61);
	assert_int_equal(tdp_host_write(e.h, hro, buf, 2 * PG), 0);

	struct tdp_stats s0 = th_vm_stats(e.vm);

	memset(back, 0, sizeof(back));
	assert_int_equal(tdp_vcpu_read(e.v[0], gpa + 2 * PG, back, 2 * PG), 0);
	assert_memory_equal(back, buf, 2 * PG);
	assert_int_equal(tdp_vcpu_write(e.v[0], gpa + 2 * PG + 1, buf + 7, 10),
			 -EACCES);
	assert_int_equal(th_vm_stats(e.vm).pf_ro_exit, s0.pf_ro_exit + 1);
	/* a write starting in the writable slot: its part lands */
	uint8_t w[300];

	pat_fill(w, sizeof(w), 62);
	assert_int_equal(tdp_vcpu_write(e.v[0], gpa + 2 * PG - 100, w, 300),
			 -EACCES);
	assert_int_equal(tdp_host_read(e.h, hrw + 2 * PG - 100, back, 100), 0);
	assert_memory_equal(back, w, 100);
	/* the read-only memory is unchanged */
	assert_int_equal(tdp_host_read(e.h, hro, back, 2 * PG), 0);
	assert_memory_equal(back, buf, 2 * PG);
	/* reads still work */
	assert_int_equal(tdp_vcpu_read(e.v[0], gpa + 2 * PG + 1, back, 10), 0);
	assert_memory_equal(back, buf + 1, 10);
	th_audit_clean(e.vm);

	/* a writable slot (with a dirty TLB entry) that becomes read-only */
	assert_int_equal(tdp_vcpu_write(e.v[0], gpa, w, 8), 0);
	th_set_slot(e.vm, 0, 0, gpa, 2 * PG, hrw, TDP_MEM_READONLY);
	assert_int_equal(tdp_vcpu_write(e.v[0], gpa, w + 8, 8), -EACCES);
	assert_int_equal(tdp_vcpu_read(e.v[0], gpa, back, 8), 0);
	assert_memory_equal(back, w, 8);
	th_audit_clean(e.vm);
	/* and writable again */
	th_set_slot(e.vm, 0, 0, gpa, 2 * PG, hrw, 0);
	assert_int_equal(tdp_vcpu_write(e.v[0], gpa, w + 8, 8), 0);
	assert_int_equal(tdp_host_read(e.h, hrw, back, 8), 0);
	assert_memory_equal(back, w + 8, 8);
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

static void test_mprotect(void **state)
{
	struct th_env e;
	uint8_t buf[4 * 4096], back[4 * 4096];
	uint64_t hva, h2;
	const uint64_t gpa = 0x80000;
	const unsigned rw = TDP_PROT_READ | TDP_PROT_WRITE;

	th_env_init(&e, 4 * GiB, NULL, 1);
	hva = th_host_map(e.h, 4 * PG, rw, PG);
	th_set_slot(e.vm, 0, 0, gpa, 4 * PG, hva, 0);
	pat_fill(buf, sizeof(buf), 71);
	/* writable leaves, dirty TLB entries */
	assert_int_equal(tdp_vcpu_write(e.v[0], gpa, buf, 4 * PG), 0);

	assert_int_equal(tdp_host_mprotect(e.h, hva, 4 * PG, TDP_PROT_READ), 0);
	assert_int_equal(tdp_vcpu_write(e.v[0], gpa + 10, back, 1), -EFAULT);
	assert_int_equal(tdp_vcpu_write(e.v[0], gpa + 3 * PG, back, PG),
			 -EFAULT);
	memset(back, 0, sizeof(back));
	assert_int_equal(tdp_vcpu_read(e.v[0], gpa, back, 4 * PG), 0);
	assert_memory_equal(back, buf, 4 * PG);
	/* the failed writes changed nothing */
	assert_int_equal(tdp_host_read(e.h, hva, back, 4 * PG), 0);
	assert_memory_equal(back, buf, 4 * PG);
	th_audit_clean(e.vm);

	assert_int_equal(tdp_host_mprotect(e.h, hva, 4 * PG, rw), 0);
	pat_fill(buf, sizeof(buf), 72);
	assert_int_equal(tdp_vcpu_write(e.v[0], gpa + 1, buf, 4 * PG - 2), 0);
	assert_int_equal(tdp_host_read(e.h, hva + 1, back, 4 * PG - 2), 0);
	assert_memory_equal(back, buf, 4 * PG - 2);
	th_audit_clean(e.vm);

	/* part of a 2 MiB folio (mapped by a 2 MiB leaf) goes read-only */
	h2 = th_host_map(e.h, 2 * MiB, rw, TDP_HUGE_2M);
	th_set_slot(e.vm, 0, 1, 2 * MiB, 2 * MiB, h2, 0);
	assert_int_equal(tdp_vcpu_write(e.v[0], 2 * MiB + 5 * PG, buf, 3 * PG),
			 0);
	assert_int_equal(th_vm_stats(e.vm).pages_2m, 1);
	assert_int_equal(tdp_host_mprotect(e.h, h2 + 6 * PG, PG, TDP_PROT_READ),
			 0);
	assert_int_equal(tdp_vcpu_write(e.v[0], 2 * MiB + 6 * PG + 9, back, 1),
			 -EFAULT);
	assert_int_equal(tdp_vcpu_write(e.v[0], 2 * MiB + 5 * PG, buf + 1, 8),
			 0);
	assert_int_equal(tdp_vcpu_write(e.v[0], 2 * MiB + 7 * PG, buf + 2, 8),
			 0);
	memset(back, 0, sizeof(back));
	assert_int_equal(tdp_vcpu_read(e.v[0], 2 * MiB + 6 * PG, back, PG), 0);
	assert_memory_equal(back, buf + PG, PG);
	assert_int_equal(tdp_host_read(e.h, h2 + 5 * PG, back, 8), 0);
	assert_memory_equal(back, buf + 1, 8);
	assert_int_equal(th_vm_stats(e.vm).pages_2m, 0);
	th_audit_clean(e.vm);
	/* PROT_NONE: reads fail too */
	assert_int_equal(tdp_host_mprotect(e.h, h2 + 6 * PG, PG, TDP_PROT_NONE),
			 0);
	assert_int_equal(tdp_vcpu_read(e.v[0], 2 * MiB + 6 * PG, back, 1),
			 -EFAULT);
	assert_int_equal(tdp_host_mprotect(e.h, h2 + 6 * PG, PG, rw), 0);
	assert_int_equal(tdp_vcpu_write(e.v[0], 2 * MiB + 6 * PG + 9, buf, 1),
			 0);
	assert_int_equal(tdp_host_read(e.h, h2 + 6 * PG + 9, back, 1), 0);
	assert_int_equal(back[0], buf[0]);
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

static void test_einval(void **state)
{
	struct th_env e;
	uint8_t buf[16];
	uint64_t hva;

	th_env_init(&e, 4 * GiB, NULL, 1);
	hva = th_host_map(e.h, PG, RW | TDP_PROT_EXEC, PG);
	th_set_slot(e.vm, 0, 0, 0, PG, hva, 0);

	struct tdp_stats s0 = th_vm_stats(e.vm);

	assert_int_equal(tdp_vcpu_read(e.v[0], 0, NULL, 1), -EINVAL);
	assert_int_equal(tdp_vcpu_write(e.v[0], 0, NULL, 1), -EINVAL);
	assert_int_equal(tdp_vcpu_fetch(e.v[0], 0, NULL, 1), -EINVAL);
	/* NULL with zero length is a no-op */
	assert_int_equal(tdp_vcpu_read(e.v[0], 0, NULL, 0), 0);
	assert_int_equal(tdp_vcpu_write(e.v[0], 0, NULL, 0), 0);
	/* overflow of gpa + len */
	assert_int_equal(tdp_vcpu_read(e.v[0], UINT64_MAX - 7, buf, 16),
			 -EINVAL);
	assert_int_equal(tdp_vcpu_write(e.v[0], UINT64_MAX, buf, 2), -EINVAL);
	assert_int_equal(tdp_vcpu_read(e.v[0], 8, buf, UINT64_MAX), -EINVAL);
	/* beyond the 48-bit gpa width of a 4-level VM */
	assert_int_equal(tdp_vcpu_read(e.v[0], (1ull << 48) - 8, buf, 16),
			 -EINVAL);
	assert_int_equal(tdp_vcpu_write(e.v[0], 1ull << 48, buf, 1), -EINVAL);
	assert_int_equal(tdp_vcpu_fetch(e.v[0], 1ull << 52, buf, 1), -EINVAL);
	/* nothing reached the fault handler */
	assert_int_equal(th_vm_stats(e.vm).pf_taken, s0.pf_taken);
	/* the last bytes below the width are a plain MMIO exit */
	assert_int_equal(tdp_vcpu_read(e.v[0], (1ull << 48) - 8, buf, 8),
			 -EFAULT);
	th_env_fini(&e);

	/* 5-level: 57 bits */
	struct tdp_vm_config cfg = {.root_level = 5};

	th_env_init(&e, 4 * GiB, &cfg, 1);
	assert_int_equal(tdp_vcpu_read(e.v[0], 1ull << 48, buf, 8), -EFAULT);
	assert_int_equal(tdp_vcpu_read(e.v[0], (1ull << 57) - 4, buf, 8),
			 -EINVAL);
	hva = th_host_map(e.h, PG, RW, PG);
	th_set_slot(e.vm, 0, 0, (1ull << 57) - PG, PG, hva, 0);
	assert_int_equal(
		tdp_vcpu_write(e.v[0], (1ull << 57) - 8, "abcdefgh", 8), 0);
	assert_int_equal(tdp_host_read(e.h, hva + PG - 8, buf, 8), 0);
	assert_memory_equal(buf, "abcdefgh", 8);
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

/* ------------------------------------------------------------------ */
/* mapping levels, address spaces, -ENOMEM                             */
/* ------------------------------------------------------------------ */

/*
 * Huge folios are mapped huge only where the memslot allows it: a slot
 * whose gpa and hva are not congruent modulo 2 MiB, or that covers only
 * part of a folio, gets 4 KiB leaves; data is right either way.
 */
static void test_huge_alignment(void **state)
{
	struct th_env e;
	uint64_t h2, buf[512];
	int level;

	th_env_init(&e, 4 * GiB, NULL, 1);
	h2 = th_host_map(e.h, 8 * MiB, RW, TDP_HUGE_2M);
	/* slot 0: gpa 2 MiB-aligned, hva 4 KiB into a folio */
	th_set_slot(e.vm, 0, 0, 2 * MiB, 2 * MiB, h2 + PG, 0);
	/* slot 1: the second half of a folio only */
	th_set_slot(e.vm, 0, 1, 16 * MiB, MiB, h2 + 2 * MiB + MiB, 0);
	/* slot 2: congruent and whole: huge */
	th_set_slot(e.vm, 0, 2, 32 * MiB, 4 * MiB, h2 + 4 * MiB, 0);
	for (unsigned p = 0; p < 512; p += 37) {
		th_fill_page(buf, 2 * MiB + p * PG, 1);
		assert_int_equal(
			tdp_vcpu_write(e.v[0], 2 * MiB + p * PG, buf, PG), 0);
	}
	for (unsigned p = 0; p < 256; p += 29) {
		th_fill_page(buf, 16 * MiB + p * PG, 1);
		assert_int_equal(
			tdp_vcpu_write(e.v[0], 16 * MiB + p * PG, buf, PG), 0);
	}
	assert_int_equal(th_vm_stats(e.vm).pages_2m, 0);
	assert_true(th_vm_stats(e.vm).pages_4k > 0);
	assert_int_equal(th_leaf_pfn(e.v[0], (2 * MiB >> 12) + 37, &level),
			 th_lookup_pfn(e.h, h2 + PG + 37 * PG, NULL));
	assert_int_equal(level, TDP_LEVEL_4K);
	for (unsigned p = 0; p < 512; p += 37) {
		assert_int_equal(tdp_host_read(e.h, h2 + PG + p * PG, buf, PG),
				 0);
		assert_int_equal(th_check_page(buf, 2 * MiB + p * PG, 1), 0);
	}
	for (unsigned p = 0; p < 256; p += 29) {
		assert_int_equal(
			tdp_host_read(e.h, h2 + 3 * MiB + p * PG, buf, PG), 0);
		assert_int_equal(th_check_page(buf, 16 * MiB + p * PG, 1), 0);
	}
	assert_int_equal(tdp_vcpu_read(e.v[0], 32 * MiB + 3 * MiB, buf, 8), 0);
	assert_int_equal(th_vm_stats(e.vm).pages_2m, 1);
	assert_int_equal(th_leaf_pfn(e.v[0], (35 * MiB) >> 12, &level),
			 th_lookup_pfn(e.h, h2 + 7 * MiB, NULL));
	assert_int_equal(level, TDP_LEVEL_2M);
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

/*
 * A 2 MiB folio split by the host (4 KiB leaves under a table), then
 * unmapped and mapped again as a fresh 2 MiB folio: the next fault puts a
 * 2 MiB leaf where the table was (the table is removed and freed after a
 * flush, I2).  The vCPU had that table in its paging-structure cache.
 */
static void test_huge_replaces_table(void **state)
{
	struct th_env e;
	uint64_t h2, fixed, buf[512];
	const uint64_t gpa = 8 * MiB;
	struct tdp_stats s0, s1;
	int level;

	th_env_init(&e, 4 * GiB, NULL, 1);
	h2 = th_host_map(e.h, 2 * MiB, RW, TDP_HUGE_2M);
	th_set_slot(e.vm, 0, 0, gpa, 2 * MiB, h2, 0);
	th_fill_page(buf, gpa + 3 * PG, 1);
	assert_int_equal(tdp_vcpu_write(e.v[0], gpa + 3 * PG, buf, PG), 0);
	assert_int_equal(th_vm_stats(e.vm).pages_2m, 1);
	assert_int_equal(tdp_host_split(e.h, h2, 2 * MiB), 0);
	for (unsigned p = 0; p < 512; p += 5) {
		assert_int_equal(tdp_vcpu_read(e.v[0], gpa + p * PG, buf, 64),
				 0);
	}
	s0 = th_vm_stats(e.vm);
	assert_int_equal(s0.pages_2m, 0);
	assert_int_equal(s0.pages_4k, 103);
	th_audit_clean(e.vm);

	assert_int_equal(tdp_host_munmap(e.h, h2, 2 * MiB), 0);
	fixed = h2;
	assert_int_equal(tdp_host_mmap(e.h, 2 * MiB,
				       TDP_PROT_READ | TDP_PROT_WRITE,
				       TDP_HUGE_2M, TDP_MAP_FIXED, &fixed),
			 0);
	th_fill_page(buf, gpa + 5 * PG, 2);
	assert_int_equal(tdp_host_write(e.h, h2 + 5 * PG, buf, PG), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(tdp_vcpu_read(e.v[0], gpa + 5 * PG, buf, PG), 0);
	assert_int_equal(th_check_page(buf, gpa + 5 * PG, 2), 0);
	s1 = th_vm_stats(e.vm);
	assert_int_equal(s1.pages_2m, 1);
	assert_int_equal(s1.pages_4k, 0);
	assert_int_equal(s1.pt_pages, s0.pt_pages - 1);
	assert_int_equal(th_leaf_pfn(e.v[0], (gpa >> 12) + 10, &level),
			 th_lookup_pfn(e.h, h2 + 10 * PG, NULL));
	assert_int_equal(level, TDP_LEVEL_2M);
	/* pages behind the cached table: zero (fresh folio), not stale */
	for (unsigned p = 0; p < 512; p += 5) {
		memset(buf, 0xff, 64);
		assert_int_equal(tdp_vcpu_read(e.v[0], gpa + p * PG, buf, 64),
				 0);
		for (unsigned i = 0; i < 8; i++)
			assert_int_equal(buf[i],
					 p == 5 ? th_pattern(gpa + 5 * PG, 2, i)
						: 0);
	}
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

/* max_huge caps the leaf size below the folio size. */
static void test_max_huge(void **state)
{
	const uint64_t caps[] = {TDP_HUGE_2M, TDP_PAGE_SIZE};

	for (unsigned c = 0; c < 2; c++) {
		struct tdp_vm_config cfg = {.max_huge = caps[c]};
		struct th_env e;
		uint64_t h1;
		uint8_t buf[5000], back[5000];
		int level;
		struct tdp_stats s;

		th_env_init(&e, 4 * GiB, &cfg, 1);
		h1 = th_host_map(e.h, GiB, RW, TDP_HUGE_1G);
		th_set_slot(e.vm, 0, 0, GiB, GiB, h1, 0);
		pat_fill(buf, sizeof(buf), 81 + c);
		assert_int_equal(tdp_vcpu_write(e.v[0], GiB + 2 * MiB - 2000,
						buf, sizeof(buf)),
				 0);
		assert_int_equal(tdp_host_read(e.h, h1 + 2 * MiB - 2000, back,
					       sizeof(back)),
				 0);
		assert_memory_equal(back, buf, sizeof(buf));
		s = th_vm_stats(e.vm);
		assert_int_equal(s.pages_1g, 0);
		if (caps[c] == TDP_HUGE_2M) {
			assert_int_equal(s.pages_2m, 2);
			assert_int_equal(s.pages_4k, 0);
		} else {
			assert_int_equal(s.pages_2m, 0);
			assert_int_equal(s.pages_4k, 2);
		}
		assert_int_equal(
			th_leaf_pfn(e.v[0], (GiB + 2 * MiB) >> 12, &level),
			th_lookup_pfn(e.h, h1 + 2 * MiB, NULL));
		assert_int_equal(level, caps[c] == TDP_HUGE_2M ? TDP_LEVEL_2M
							       : TDP_LEVEL_4K);
		th_audit_clean(e.vm);
		th_env_fini(&e);
	}
}

/* Two address spaces: the same gpa reaches different memory, a slot of
 * one space is invisible from the other. */
static void test_address_spaces(void **state)
{
	struct tdp_vm_config cfg = {.nr_as = 2};
	struct th_env e;
	uint64_t h0, h1, hs, buf[512];

	th_env_init(&e, 4 * GiB, &cfg, 1);
	h0 = th_host_map(e.h, 4 * PG, RW, PG);
	h1 = th_host_map(e.h, 4 * PG, RW, PG);
	hs = th_host_map(e.h, PG, RW, PG);
	th_set_slot(e.vm, 0, 0, 0x30000, 4 * PG, h0, 0);
	th_set_slot(e.vm, 1, 0, 0x30000, 4 * PG, h1, 0);
	th_set_slot(e.vm, 1, 1, 0x90000, PG, hs, 0); /* SMM only */
	assert_int_equal(tdp_vcpu_set_as(e.v[0], 2), -EINVAL);

	th_fill_page(buf, 0x30000, 100);
	assert_int_equal(tdp_vcpu_write(e.v[0], 0x30000, buf, PG), 0);
	assert_int_equal(tdp_vcpu_read(e.v[0], 0x90000, buf, 8), -EFAULT);
	assert_int_equal(tdp_vcpu_set_as(e.v[0], 1), 0);
	/* the AS1 page is still zero, though AS0's is in the TLB */
	assert_int_equal(tdp_vcpu_read(e.v[0], 0x30000, buf, PG), 0);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(buf[i], 0);
	th_fill_page(buf, 0x30000, 101);
	assert_int_equal(tdp_vcpu_write(e.v[0], 0x30000, buf, PG), 0);
	assert_int_equal(tdp_vcpu_write(e.v[0], 0x90000, buf, 16), 0);
	assert_int_equal(tdp_vcpu_set_as(e.v[0], 0), 0);
	assert_int_equal(tdp_vcpu_read(e.v[0], 0x30000, buf, PG), 0);
	assert_int_equal(th_check_page(buf, 0x30000, 100), 0);
	assert_int_equal(tdp_vcpu_read(e.v[0], 0x90000, buf, 8), -EFAULT);
	assert_int_equal(tdp_host_read(e.h, h1, buf, PG), 0);
	assert_int_equal(th_check_page(buf, 0x30000, 101), 0);
	assert_int_equal(th_vm_stats(e.vm).roots, 2);
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

/* No free frame: -ENOMEM, and the vCPU works again once memory is back. */
/* Single-threaded, and its 1 GiB folio took 26 s under TSan. */
static void test_enomem(void **state)
{
	struct th_env e;
	uint64_t h1, h2, buf[512];

	SKIP_UNDER_TSAN();
	th_env_init(&e, GiB, NULL, 1);
	h1 = th_host_map(e.h, GiB, RW, TDP_HUGE_1G);
	h2 = th_host_map(e.h, 4 * PG, RW, PG);
	th_set_slot(e.vm, 0, 0, GiB, GiB, h1, 0);
	th_set_slot(e.vm, 0, 1, 0x10000, 4 * PG, h2, 0);
	/* the 1 GiB folio takes the whole pool */
	th_fill_page(buf, GiB, 1);
	assert_int_equal(tdp_vcpu_write(e.v[0], GiB, buf, PG), 0);
	assert_int_equal(tdp_vcpu_read(e.v[0], 0x10000, buf, 8), -ENOMEM);
	assert_int_equal(tdp_vcpu_write(e.v[0], 0x10000, buf, 8), -ENOMEM);
	/* the mapped memory is still fine */
	assert_int_equal(tdp_vcpu_read(e.v[0], GiB, buf, PG), 0);
	assert_int_equal(th_check_page(buf, GiB, 1), 0);
	th_audit_clean(e.vm);
	/* give the memory back: the other slot works */
	assert_int_equal(tdp_host_munmap(e.h, h1, GiB), 0);
	th_fill_page(buf, 0x10000, 2);
	assert_int_equal(tdp_vcpu_write(e.v[0], 0x10000, buf, PG), 0);
	assert_int_equal(tdp_vcpu_read(e.v[0], GiB, buf, 8), -EFAULT);
	assert_int_equal(tdp_host_read(e.h, h2, buf, PG), 0);
	assert_int_equal(th_check_page(buf, 0x10000, 2), 0);
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

/* ------------------------------------------------------------------ */
/* host operations under a reading vCPU                                */
/* ------------------------------------------------------------------ */

/* After a migrate the guest follows the new frame; nothing stale. */
static void test_migrate_new_pfn(void **state)
{
	struct th_env e;
	uint64_t buf[512];
	uint64_t hva, pfn1, pfn2;
	unsigned order;
	int level;
	const uint64_t gpa = 4 * MiB;

	th_env_init(&e, 4 * GiB, NULL, 1);
	hva = th_host_map(e.h, 2 * MiB, RW, TDP_HUGE_2M);
	th_set_slot(e.vm, 0, 0, gpa, 2 * MiB, hva, 0);
	for (unsigned p = 0; p < 8; p++) {
		th_fill_page(buf, gpa + p * PG, 1);
		assert_int_equal(tdp_vcpu_write(e.v[0], gpa + p * PG, buf, PG),
				 0);
	}

	/* one 4 KiB page out of the 2 MiB folio */
	pfn1 = th_lookup_pfn(e.h, hva + 3 * PG, &order);
	assert_int_equal(order, HOST_ORDER_2M);
	assert_int_equal(th_leaf_pfn(e.v[0], (gpa >> 12) + 3, &level), pfn1);
	assert_int_equal(level, TDP_LEVEL_2M);
	assert_int_equal(tdp_host_migrate(e.h, hva + 3 * PG, PG), 0);
	pfn2 = th_lookup_pfn(e.h, hva + 3 * PG, &order);
	assert_true(pfn2 != pfn1);
	assert_int_equal(order, 0);
	/* the old frame was freed (the guest holds no reference on it) */
	assert_true(th_frame_poisoned(e.h, pfn1));
	/* no leaf left for the old frame */
	assert_int_equal(th_leaf_pfn(e.v[0], (gpa >> 12) + 3, &level), ~0ull);
	th_audit_clean(e.vm);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(tdp_vcpu_read(e.v[0], gpa + 3 * PG, buf, PG), 0);
	assert_int_equal(th_check_page(buf, gpa + 3 * PG, 1), 0);
	assert_int_equal(th_leaf_pfn(e.v[0], (gpa >> 12) + 3, &level), pfn2);
	assert_int_equal(level, TDP_LEVEL_4K);
	/* a write now lands in the new frame */
	th_fill_page(buf, gpa + 3 * PG, 2);
	assert_int_equal(tdp_vcpu_write(e.v[0], gpa + 3 * PG, buf, PG), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(tdp_host_read(e.h, hva + 3 * PG, buf, PG), 0);
	assert_int_equal(th_check_page(buf, gpa + 3 * PG, 2), 0);
	assert_true(th_frame_poisoned(e.h, pfn1));
	th_audit_clean(e.vm);

	/* a whole 4 KiB-folio mapping, after the guest has it in its TLB */
	uint64_t h4 = th_host_map(e.h, 4 * PG, RW, PG);

	th_set_slot(e.vm, 0, 1, 0x1000000, 4 * PG, h4, 0);
	for (unsigned p = 0; p < 4; p++) {
		th_fill_page(buf, 0x1000000 + p * PG, 5);
		assert_int_equal(
			tdp_vcpu_write(e.v[0], 0x1000000 + p * PG, buf, PG), 0);
	}
	uint64_t old[4];

	for (unsigned p = 0; p < 4; p++)
		old[p] = th_lookup_pfn(e.h, h4 + p * PG, NULL);
	assert_int_equal(tdp_host_migrate(e.h, h4, 4 * PG), 0);
	for (unsigned p = 0; p < 4; p++) {
		uint64_t n = th_lookup_pfn(e.h, h4 + p * PG, NULL);

		for (unsigned q = 0; q < 4; q++)
			assert_true(n != old[q]);
		assert_true(th_frame_poisoned(e.h, old[p]));
		memset(buf, 0, sizeof(buf));
		assert_int_equal(
			tdp_vcpu_read(e.v[0], 0x1000000 + p * PG, buf, PG), 0);
		assert_int_equal(th_check_page(buf, 0x1000000 + p * PG, 5), 0);
		assert_int_equal(
			th_leaf_pfn(e.v[0], (0x1000000 >> 12) + p, &level), n);
	}
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

/* The reading vCPU thread. */
struct reader {
	struct tdp_vcpu *v;
	const uint64_t *gpas; /* page gpas to read */
	unsigned npages;
	atomic_bool stop;
	atomic_ulong reads, mismatches, errors;
	uint64_t first_bad_gpa;
	int first_err;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	uint64_t rs = 0x9876543210ull;
	uint64_t *buf = malloc(2 * PG);
	uint64_t *exp = malloc(2 * PG);

	if (!buf || !exp) {
		atomic_fetch_add(&r->errors, 1);
		goto out;
	}
	while (!atomic_load(&r->stop)) {
		unsigned p = (unsigned)(th_rand(&rs) % r->npages);
		uint64_t gpa = r->gpas[p];
		bool cross = p + 1 < r->npages && r->gpas[p + 1] == gpa + PG &&
			     th_rand(&rs) % 4 == 0;
		int ret;

		if (cross) {
			/* a piece of this page and of the next, odd offset */
			uint64_t off = 1 + th_rand(&rs) % (PG - 1);

			th_fill_page(exp, gpa, 1);
			th_fill_page(exp + 512, gpa + PG, 1);
			ret = tdp_vcpu_read(r->v, gpa + off, buf, PG);
			if (!ret && memcmp(buf, (uint8_t *)exp + off, PG)) {
				if (!atomic_fetch_add(&r->mismatches, 1))
					r->first_bad_gpa = gpa + off;
			}
		} else {
			ret = tdp_vcpu_read(r->v, gpa, buf, PG);
			if (!ret && th_check_page(buf, gpa, 1)) {
				if (!atomic_fetch_add(&r->mismatches, 1))
					r->first_bad_gpa = gpa;
			}
		}
		if (ret) {
			if (!atomic_fetch_add(&r->errors, 1))
				r->first_err = ret;
		}
		atomic_fetch_add(&r->reads, 1);
	}
out:
	free(buf);
	free(exp);
	return NULL;
}

static void test_contents_under_host_ops(void **state)
{
	struct th_env e;
	const unsigned rw = TDP_PROT_READ | TDP_PROT_WRITE;
	const uint64_t g2 = 16 * MiB, n2 = 8;  /* 8 folios of 2 MiB */
	const uint64_t g4 = 64 * MiB, n4 = 64; /* 64 pages of 4 KiB */
	uint64_t h2, h4, buf[512];
	unsigned npages = (unsigned)(n2 * 512 + n4);
	uint64_t *gpas = calloc(npages, sizeof(*gpas));
	struct reader rd = {0};
	pthread_t t;
	uint64_t rs = 0x5eed;
	unsigned nops[3] = {0};
	struct tdp_host_stats hs0, hs1;

	assert_non_null(gpas);
	th_env_init(&e, 4 * GiB, NULL, 1);
	h2 = th_host_map(e.h, n2 * TDP_HUGE_2M, rw, TDP_HUGE_2M);
	h4 = th_host_map(e.h, n4 * PG, rw, PG);
	th_set_slot(e.vm, 0, 0, g2, n2 * TDP_HUGE_2M, h2, 0);
	th_set_slot(e.vm, 0, 1, g4, n4 * PG, h4, 0);
	for (unsigned i = 0; i < npages; i++) {
		gpas[i] = i < n2 * 512 ? g2 + i * PG : g4 + (i - n2 * 512) * PG;
		uint64_t hva =
			i < n2 * 512 ? h2 + i * PG : h4 + (i - n2 * 512) * PG;

		th_fill_page(buf, gpas[i], 1);
		assert_int_equal(tdp_host_write(e.h, hva, buf, PG), 0);
	}
	/* the guest sees it all before the churn starts, with huge leaves */
	for (unsigned i = 0; i < npages; i++) {
		assert_int_equal(tdp_vcpu_read(e.v[0], gpas[i], buf, PG), 0);
		assert_int_equal(th_check_page(buf, gpas[i], 1), 0);
	}
	assert_int_equal(th_vm_stats(e.vm).pages_2m, n2);
	tdp_host_get_stats(e.h, &hs0);

	rd.v = e.v[0];
	rd.gpas = gpas;
	rd.npages = npages;
	assert_int_equal(pthread_create(&t, NULL, reader_main, &rd), 0);
	uint64_t t0 = th_now_ns();
	int bad_ret = 0;

	/* ~1 s, longer if the machine is so loaded that too little happened
	 * (at most 20 s) */
	for (;;) {
		uint64_t el = th_now_ns() - t0;
		bool enough = atomic_load(&rd.reads) >= 500 && nops[0] >= 10 &&
			      nops[1] >= 10 && nops[2] >= 3;

		if (el >= 20000000000ull || (el >= 1000000000ull && enough))
			break;
		unsigned op = (unsigned)(th_rand(&rs) % 3);
		bool huge = th_rand(&rs) % 2;
		uint64_t hva, len;
		int ret;

		if (huge) {
			uint64_t f = th_rand(&rs) % n2;

			hva = h2 + f * TDP_HUGE_2M;
			/* a whole folio, or a few pages out of it */
			if (th_rand(&rs) % 2) {
				len = TDP_HUGE_2M;
			} else {
				hva += (th_rand(&rs) % 500) * PG;
				len = (1 + th_rand(&rs) % 8) * PG;
			}
		} else {
			uint64_t p = th_rand(&rs) % (n4 - 4);

			hva = h4 + p * PG;
			len = (1 + th_rand(&rs) % 4) * PG;
		}
		switch (op) {
		case 0:
			ret = tdp_host_migrate(e.h, hva, len);
			break;
		case 1:
			ret = tdp_host_swap_out(e.h, hva, len);
			break;
		default:
			/* split rarely: it is one-way */
			if (th_rand(&rs) % 8)
				ret = tdp_host_migrate(e.h, hva, len), op = 0;
			else
				ret = tdp_host_split(e.h, hva, len);
			break;
		}
		if (ret && !bad_ret)
			bad_ret = ret;
		nops[op]++;
		/* leave the guest room: back-to-back host operations hold the
		 * writer-preferring mmap lock so often that the reader's
		 * faults starve on a slow (TSan) build; contents, not lock
		 * fairness, are what this test checks */
		usleep(50);
	}
	atomic_store(&rd.stop, true);
	assert_int_equal(pthread_join(t, NULL), 0);
	tdp_host_get_stats(e.h, &hs1);
	fprintf(stderr, "  reads %lu, migrate %u swap %u split %u\n",
		atomic_load(&rd.reads), nops[0], nops[1], nops[2]);
	if (rd.mismatches)
		fprintf(stderr, "first mismatch at gpa %#llx\n",
			(unsigned long long)rd.first_bad_gpa);
	if (rd.errors)
		fprintf(stderr, "first error %d\n", rd.first_err);
	assert_int_equal(bad_ret, 0);
	assert_int_equal(atomic_load(&rd.mismatches), 0);
	assert_int_equal(atomic_load(&rd.errors), 0);
	assert_true(atomic_load(&rd.reads) >= 500);
	assert_true(nops[0] >= 10 && nops[1] >= 10 && nops[2] >= 3);
	assert_true(hs1.migrations > hs0.migrations);
	assert_true(hs1.swap_outs > hs0.swap_outs);
	assert_true(hs1.swap_ins > hs0.swap_ins);
	assert_true(hs1.splits > hs0.splits);

	/* quiescent: nothing stale, everything intact both ways */
	th_audit_clean(e.vm);
	for (unsigned i = 0; i < npages; i++) {
		assert_int_equal(tdp_vcpu_read(e.v[0], gpas[i], buf, PG), 0);
		assert_int_equal(th_check_page(buf, gpas[i], 1), 0);
	}
	for (unsigned i = 0; i < n4; i++) {
		assert_int_equal(tdp_host_read(e.h, h4 + i * PG, buf, PG), 0);
		assert_int_equal(th_check_page(buf, g4 + i * PG, 1), 0);
	}
	th_audit_clean(e.vm);
	free(gpas);
	th_env_fini(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rw_pages),
		cmocka_unit_test(test_rw_slots_and_2m),
		cmocka_unit_test(test_rw_1g),
		cmocka_unit_test(test_fetch),
		cmocka_unit_test(test_no_memslot),
		cmocka_unit_test(test_munmapped_slot),
		cmocka_unit_test(test_readonly_slot),
		cmocka_unit_test(test_mprotect),
		cmocka_unit_test(test_einval),
		cmocka_unit_test(test_huge_alignment),
		cmocka_unit_test(test_huge_replaces_table),
		cmocka_unit_test(test_max_huge),
		cmocka_unit_test(test_address_spaces),
		cmocka_unit_test(test_enomem),
		cmocka_unit_test(test_migrate_new_pfn),
		cmocka_unit_test(test_contents_under_host_ops),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
