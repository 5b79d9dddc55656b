/* SPDX-License-Identifier: MIT */
/*
 * test_levels.c - the level at which a guest access gets mapped, for each
 * combination of host folio size (4K / 2M / 1G), memslot gpa/hva
 * congruence, memslot size and position, and the VM's max_huge; checked
 * through the VM stats after one access, through the data the guest
 * reaches, and through vm_max_mapping_level() (src/vm.h) directly.
 *
 * Memory: the 1 GiB folio mapping is shared by all its cases (each case has
 * its own VM); only its first folio is ever populated.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "helpers.h"
#include "host/host.h"
#include "memslot.h"
#include "vm.h"

#define PG TDP_PAGE_SIZE
#define RW (TDP_PROT_READ | TDP_PROT_WRITE)
#define K4 TDP_PAGE_SIZE
#define M2 TDP_HUGE_2M
#define G1 TDP_HUGE_1G

/* Host layout: a 2 MiB mapping of 4K folios right below a 2 GiB mapping of
 * 1G folios at 8 GiB (both fixed), an 8 MiB mapping of 2M folios and one
 * of 4K folios anywhere. */
#define HUGE_BASE (8 * GiB)

enum mapping { MAP_4K, MAP_2M, MAP_1G };

struct levels_env {
	struct tdp_host *h;
	uint64_t base[3];
};

static void env_init(struct levels_env *e)
{
	uint64_t a;

	memset(e, 0, sizeof(*e));
	/* default pool: 4 GiB */
	assert_int_equal(tdp_host_create(NULL, &e->h), 0);
	a = HUGE_BASE - M2;
	assert_int_equal(tdp_host_mmap(e->h, M2, RW, K4, TDP_MAP_FIXED, &a),
			 0);
	assert_int_equal(a, HUGE_BASE - M2);
	a = HUGE_BASE;
	assert_int_equal(tdp_host_mmap(e->h, 2 * G1, RW, G1, TDP_MAP_FIXED,
				       &a),
			 0);
	e->base[MAP_1G] = HUGE_BASE;
	e->base[MAP_2M] = th_host_map(e->h, 8 * MiB, RW, M2);
	e->base[MAP_4K] = th_host_map(e->h, 8 * MiB, RW, K4);
}

static void env_fini(struct levels_env *e)
{
	/* unmap explicitly (the 1G mapping first), then destroy */
	assert_int_equal(tdp_host_munmap(e->h, HUGE_BASE, 2 * G1), 0);
	assert_int_equal(tdp_host_munmap(e->h, HUGE_BASE - M2, M2), 0);
	assert_int_equal(tdp_host_munmap(e->h, e->base[MAP_2M], 8 * MiB), 0);
	assert_int_equal(tdp_host_munmap(e->h, e->base[MAP_4K], 8 * MiB), 0);
	th_assert_host_empty(e->h);
	tdp_host_destroy(e->h);
}

struct lcase {
	const char *name;
	enum mapping map;
	uint64_t gpa;
	int64_t hva_off;  /* slot hva = base[map] + hva_off */
	uint64_t size;
	uint64_t max_huge;
	uint64_t access;  /* gpa of the one access */
	int level;	  /* expected mapping level */
	unsigned order;	  /* expected host order of the accessed page */
};

static const struct lcase cases[] = {
	/* 1G folios; the first case is also the folio's first touch */
	{ "1G folio, 1G-aligned slot, max 1G", MAP_1G, G1, 0, G1, G1,
	  G1 + 5 * MiB + 123 * PG, 3, 18 },
	{ "1G folio, max 2M", MAP_1G, G1, 0, G1, M2, G1 + 5 * MiB, 2, 18 },
	{ "1G folio, max 4K", MAP_1G, G1, 0, G1, K4, G1 + 5 * MiB, 1, 18 },
	{ "1G folio, default max (0 = 1G)", MAP_1G, 3 * G1, 0, G1, 0,
	  3 * G1 + 700 * MiB, 3, 18 },
	{ "1G folio, congruent mod 2M not 1G", MAP_1G, G1, 2 * MiB, G1, G1,
	  G1 + PG, 2, 18 },
	{ "1G folio, congruent mod 2M not 1G, gpa side", MAP_1G, G1 + M2, 0,
	  2 * G1, G1, 2 * G1 + PG, 2, 18 },
	{ "1G folio, not congruent mod 2M", MAP_1G, G1, PG, G1, G1, G1 + PG, 1,
	  18 },
	{ "1G folio, slot 512M (smaller than folio)", MAP_1G, G1, 0,
	  512 * MiB, G1, G1 + 3 * MiB, 2, 18 },
	{ "1G folio, slot 1G-4K: 1G range leaves slot", MAP_1G, G1, 0, G1 - PG,
	  G1, G1 + PG, 2, 18 },
	{ "1G folio, slot 1G-4K: 2M range leaves slot", MAP_1G, G1, 0, G1 - PG,
	  G1, 2 * G1 - 2 * PG, 1, 18 },
	{ "slot across a 4K and a 1G mapping: 1G part", MAP_1G, G1 - M2,
	  -(int64_t)M2, G1 + M2, G1, G1 + PG, 3, 18 },
	{ "slot across a 4K and a 1G mapping: 4K part", MAP_1G, G1 - M2,
	  -(int64_t)M2, G1 + M2, G1, G1 - MiB, 1, 0 },
	/* 2M folios */
	{ "2M folio, aligned, max 1G", MAP_2M, 0, 0, 8 * MiB, G1,
	  2 * MiB + PG, 2, 9 },
	{ "2M folio, aligned, max 2M", MAP_2M, 0, 0, 8 * MiB, M2,
	  2 * MiB + PG, 2, 9 },
	{ "2M folio, aligned, max 4K", MAP_2M, 0, 0, 8 * MiB, K4,
	  2 * MiB + PG, 1, 9 },
	{ "2M folio, gpa 2M-aligned, hva off by 4K", MAP_2M, 0, PG, 4 * MiB,
	  G1, 2 * MiB + PG, 1, 9 },
	{ "2M folio, hva off by 1M", MAP_2M, 0, MiB, 4 * MiB, G1,
	  2 * MiB + PG, 1, 9 },
	{ "2M folio, gpa off by 4K, hva aligned", MAP_2M, PG, 0, 4 * MiB, G1,
	  2 * MiB + PG, 1, 9 },
	{ "2M folio, both off by 4K (congruent), inside", MAP_2M, PG, PG,
	  6 * MiB, G1, 2 * MiB + PG, 2, 9 },
	{ "2M folio, both off by 4K, 2M range leaves slot start", MAP_2M, PG,
	  PG, 6 * MiB, G1, 2 * PG, 1, 9 },
	{ "2M folio, both off by 1M (congruent)", MAP_2M, 5 * MiB, MiB,
	  4 * MiB, G1, 6 * MiB, 2, 9 },
	{ "2M folio, slot 1M (smaller than folio)", MAP_2M, 0, 0, MiB, G1, PG,
	  1, 9 },
	{ "2M folio, slot 2M-4K", MAP_2M, 0, 0, 2 * MiB - PG, G1, PG, 1, 9 },
	{ "2M folio, slot 3M, access in first 2M", MAP_2M, 0, 0, 3 * MiB, G1,
	  MiB, 2, 9 },
	{ "2M folio, slot 3M, 2M range leaves slot end", MAP_2M, 0, 0, 3 * MiB,
	  G1, 2 * MiB + PG, 1, 9 },
	{ "2M folio, high gpa", MAP_2M, 100 * G1 + 2 * MiB, 0, 8 * MiB, G1,
	  100 * G1 + 6 * MiB, 2, 9 },
	/* 4K folios */
	{ "4K folio, aligned, max 1G", MAP_4K, 0, 0, 8 * MiB, G1, 2 * MiB + PG,
	  1, 0 },
	{ "4K folio, aligned, max 2M", MAP_4K, G1, 0, 8 * MiB, M2,
	  G1 + 4 * MiB, 1, 0 },
	{ "4K folio, aligned, max 4K", MAP_4K, G1, 0, 4 * MiB, K4, G1, 1, 0 },
};

static uint64_t case_hva(const struct levels_env *e, const struct lcase *c)
{
	return (uint64_t)((int64_t)e->base[c->map] + c->hva_off);
}

static void run_case(struct levels_env *e, const struct lcase *c,
		     uint64_t marker)
{
	struct tdp_vm_config cfg = { .max_huge = c->max_huge };
	struct tdp_memslot s = { .gpa = c->gpa, .size = c->size,
				 .hva = case_hva(e, c) };
	uint64_t hva = s.hva + (c->access - c->gpa);
	struct tdp_vm *vm;
	struct tdp_vcpu *v;
	struct tdp_stats st;
	uint64_t x, y, pfn;
	unsigned order, prot;
	char rep[512] = "";
	int r;

	assert_int_equal(tdp_vm_create(e->h, &cfg, &vm), 0);
	assert_int_equal(tdp_vm_set_memslot(vm, &s), 0);
	assert_int_equal(tdp_vcpu_create(vm, 0, &v), 0);

	/* one access */
	assert_int_equal(tdp_vcpu_read(v, c->access, &x, 8), 0);
	tdp_vm_get_stats(vm, &st);
	if (st.pages_4k != (c->level == 1) || st.pages_2m != (c->level == 2) ||
	    st.pages_1g != (c->level == 3))
		fail_msg("%s: want level %d, got 4k %llu 2m %llu 1g %llu",
			 c->name, c->level, (unsigned long long)st.pages_4k,
			 (unsigned long long)st.pages_2m,
			 (unsigned long long)st.pages_1g);
	assert_int_equal(st.pf_fixed, 1);
	/* tables below the root: one per level above the leaf's */
	assert_int_equal(st.pt_pages, 4 - c->level);

	/* the host backs it as expected (else the case tests nothing) */
	assert_int_equal(host_lookup(e->h, hva, &pfn, &order, &prot), 0);
	assert_int_equal(order, c->order);
	/* the guest reached the right byte of the folio */
	assert_int_equal(tdp_host_read(e->h, hva, &y, 8), 0);
	assert_int_equal(x, y);
	assert_int_equal(tdp_vcpu_write(v, c->access, &marker, 8), 0);
	assert_int_equal(tdp_host_read(e->h, hva, &y, 8), 0);
	assert_int_equal(y, marker);
	/* ...and the neighbouring page through the same huge leaf */
	if (c->level > 1) {
		uint64_t nb = c->access ^ PG;

		assert_int_equal(tdp_host_write(e->h, hva ^ PG, &marker, 8), 0);
		assert_int_equal(tdp_vcpu_read(v, nb, &x, 8), 0);
		assert_int_equal(x, marker);
	}
	tdp_vm_get_stats(vm, &st);
	assert_int_equal(st.pf_fixed, 1); /* no refault: the leaf was RW */
	assert_int_equal(st.pages_4k + st.pages_2m + st.pages_1g, 1);

	/* the same answer from vm_max_mapping_level() */
	{
		unsigned idx = tdp_srcu_read_lock(&vm->srcu);
		const struct memslot *slot =
			memslots_lookup(vm_memslots(vm, 0), c->access >> 12);

		assert_non_null(slot);
		assert_int_equal(vm_max_mapping_level(vm, slot,
						      c->access >> 12, order),
				 c->level);
		tdp_srcu_read_unlock(&vm->srcu, idx);
	}

	r = tdp_vm_audit(vm, rep, sizeof(rep));
	if (r)
		fail_msg("%s: audit: %d: %s", c->name, r, rep);
	tdp_vcpu_destroy(v);
	tdp_vm_destroy(vm);
}

/* Single-threaded, and its 1 GiB folio took 20 s under TSan. */
static void test_levels_by_access(void **state)
{
	struct levels_env e;

	(void)state;
	SKIP_UNDER_TSAN();
	env_init(&e);
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* first touch of the 1G folio is done by the first case */
		if (i == 0) {
			uint64_t pfn;
			unsigned order, prot;

			assert_int_equal(host_lookup(e.h, HUGE_BASE, &pfn,
						     &order, &prot),
					 -ENOENT);
		}
		run_case(&e, &cases[i], 0x1000 + i);
	}
	env_fini(&e);
}

/* Two accesses in one VM: the 2M range around the slot edge gets 4K
 * leaves while the interior gets a 2M leaf; both audited. */
static void test_slot_edges_one_vm(void **state)
{
	struct levels_env e;
	struct tdp_vm_config cfg = { 0 };
	struct tdp_vm *vm;
	struct tdp_vcpu *v;
	struct tdp_stats st;
	uint64_t x;
	/* gpa [4K, 6M+4K) on hva base+4K: congruent mod 2M */
	struct tdp_memslot s = { .gpa = PG, .size = 6 * MiB };

	(void)state;
	env_init(&e);
	s.hva = e.base[MAP_2M] + PG;
	assert_int_equal(tdp_vm_create(e.h, &cfg, &vm), 0);
	assert_int_equal(tdp_vm_set_memslot(vm, &s), 0);
	assert_int_equal(tdp_vcpu_create(vm, 0, &v), 0);
	/* first 2M range [0, 2M) starts before the slot: 4K pages */
	for (uint64_t a = PG; a < 2 * MiB; a += 256 * PG)
		assert_int_equal(tdp_vcpu_read(v, a, &x, 8), 0);
	/* interior: 2M each */
	assert_int_equal(tdp_vcpu_read(v, 2 * MiB, &x, 8), 0);
	assert_int_equal(tdp_vcpu_read(v, 4 * MiB + 5 * PG, &x, 8), 0);
	/* last range [6M, 8M) ends after the slot (6M+4K): 4K */
	assert_int_equal(tdp_vcpu_read(v, 6 * MiB, &x, 8), 0);
	assert_int_equal(tdp_vcpu_read(v, 6 * MiB + PG, &x, 8), -EFAULT);
	tdp_vm_get_stats(vm, &st);
	assert_int_equal(st.pages_2m, 2);
	assert_int_equal(st.pages_4k, 2 + 1);
	assert_int_equal(st.pages_1g, 0);
	assert_int_equal(tdp_vm_audit(vm, NULL, 0), 0);
	tdp_vcpu_destroy(v);
	tdp_vm_destroy(vm);
	env_fini(&e);
}

/* Dirty logging makes faults map 4K leaves (and their table); after they
 * are zapped (the table, not wholly covered, stays) and logging is turned
 * off (nothing to recover: the table is empty), the next access maps 2M,
 * replacing the emptied 4K table by a huge leaf. */
static void test_table_replaced_by_huge_leaf(void **state)
{
	struct levels_env e;
	struct tdp_vm *vm;
	struct tdp_vcpu *v[2];
	struct tdp_stats st;
	uint64_t x, pattern = 0x7777777777777777ull;
	struct tdp_memslot s = { .gpa = 0, .size = 4 * MiB,
				 .flags = TDP_MEM_LOG_DIRTY };

	(void)state;
	env_init(&e);
	s.hva = e.base[MAP_2M];
	assert_int_equal(tdp_host_write(e.h, s.hva + 9 * PG, &pattern, 8), 0);
	assert_int_equal(tdp_vm_create(e.h, NULL, &vm), 0);
	assert_int_equal(tdp_vm_set_memslot(vm, &s), 0);
	assert_int_equal(tdp_vcpu_create(vm, 0, &v[0]), 0);
	assert_int_equal(tdp_vcpu_create(vm, 1, &v[1]), 0);
	for (uint64_t a = 0; a < MiB; a += 64 * PG)
		assert_int_equal(tdp_vcpu_read(v[0], a, &x, 8), 0);
	assert_int_equal(tdp_vcpu_read(v[1], 9 * PG, &x, 8), 0);
	assert_int_equal(x, pattern);
	tdp_vm_get_stats(vm, &st);
	assert_int_equal(st.pages_4k, 4 + 1);
	assert_int_equal(st.pages_2m, 0);
	assert_int_equal(st.pt_pages, 3);

	assert_int_equal(tdp_vm_zap_gfn_range(vm, 0, 0, MiB), 0);
	tdp_vm_get_stats(vm, &st);
	assert_int_equal(st.pages_4k, 0);
	assert_int_equal(st.pt_pages, 3); /* the empty tables stay */
	s.flags = 0;
	assert_int_equal(tdp_vm_set_memslot(vm, &s), 0);
	tdp_vm_get_stats(vm, &st);
	assert_int_equal(st.huge_recovered, 0);
	assert_int_equal(st.pt_pages, 3);
	assert_int_equal(tdp_vcpu_read(v[0], 5 * PG, &x, 8), 0);
	tdp_vm_get_stats(vm, &st);
	assert_int_equal(st.pages_2m, 1);
	assert_int_equal(st.pages_4k, 0);
	assert_int_equal(st.pt_pages, 2); /* the 4K table is gone */
	/* the other vCPU (which walked through the old table) sees the data
	 * through the huge leaf */
	assert_int_equal(tdp_vcpu_read(v[1], 9 * PG, &x, 8), 0);
	assert_int_equal(x, pattern);
	pattern++;
	assert_int_equal(tdp_vcpu_write(v[1], 9 * PG, &pattern, 8), 0);
	assert_int_equal(tdp_host_read(e.h, s.hva + 9 * PG, &x, 8), 0);
	assert_int_equal(x, pattern);
	assert_int_equal(tdp_vm_audit(vm, NULL, 0), 0);
	tdp_vcpu_destroy(v[0]);
	tdp_vcpu_destroy(v[1]);
	tdp_vm_destroy(vm);
	env_fini(&e);
}

/* vm_max_mapping_level() over synthetic slots (no access needed). */
struct dcase {
	uint64_t max_huge;
	uint64_t base_gfn, npages, hva;
	uint64_t gfn;
	unsigned order;
	int level;
};

#define GP1 (1ull << 18) /* gfns per 1G */
#define HV (64 * GiB)	 /* a 1G-aligned hva */

static const struct dcase dcases[] = {
	/* host order caps the level; max_huge caps it */
	{ G1, GP1, GP1, HV, GP1 + 5, 18, 3 },
	{ M2, GP1, GP1, HV, GP1 + 5, 18, 2 },
	{ K4, GP1, GP1, HV, GP1 + 5, 18, 1 },
	{ G1, GP1, GP1, HV, GP1 + 5, 9, 2 },
	{ M2, GP1, GP1, HV, GP1 + 5, 9, 2 },
	{ K4, GP1, GP1, HV, GP1 + 5, 9, 1 },
	{ G1, GP1, GP1, HV, GP1 + 5, 0, 1 },
	/* orders between the steps round down */
	{ G1, GP1, GP1, HV, GP1 + 5, 17, 2 },
	{ G1, GP1, GP1, HV, GP1 + 5, 8, 1 },
	/* congruence */
	{ G1, GP1, GP1, HV + M2, GP1 + 5, 18, 2 },
	{ G1, GP1, GP1, HV + PG, GP1 + 5, 18, 1 },
	{ G1, GP1, GP1, HV + 512 * MiB, GP1 + 5, 18, 2 },
	{ G1, GP1, GP1, HV + MiB, GP1 + 5, 18, 1 },
	{ G1, GP1, GP1, HV + 256 * PG, GP1 + 5, 9, 1 },
	{ G1, GP1 + 512, GP1, HV, GP1 + 1024, 18, 2 },
	{ G1, GP1 + 512, GP1, HV + M2, 2 * GP1, 18, 2 },
	{ G1, GP1 + 512, 2 * GP1, HV + M2, 2 * GP1, 18, 3 },
	{ G1, GP1 + 1, 4096, HV + PG, GP1 + 512, 9, 2 },
	{ G1, GP1 + 1, 4096, HV + 2 * PG, GP1 + 512, 9, 1 },
	/* size and position inside the slot */
	{ G1, GP1, GP1 - 1, HV, GP1 + 5, 18, 2 },
	{ G1, GP1, GP1 - 1, HV, 2 * GP1 - 2, 18, 1 },
	{ G1, GP1, 511, HV, GP1, 18, 1 },
	{ G1, GP1, 512, HV, GP1 + 511, 18, 2 },
	{ G1, GP1 + 1, 4096, HV + PG, GP1 + 5, 9, 1 },
	{ G1, GP1 + 1, 4096, HV + PG, GP1 + 4096, 9, 1 },
	{ G1, GP1 + 1, 4096, HV + PG, GP1 + 3584, 9, 2 },
	{ G1, 0, 2 * GP1, HV, GP1 - 1, 18, 3 },
	{ G1, 0, 2 * GP1, HV, GP1, 18, 3 },
};

static void test_max_mapping_level_direct(void **state)
{
	struct tdp_host *h;
	struct tdp_vm *vms[3];
	const uint64_t sizes[3] = { K4, M2, G1 };

	(void)state;
	assert_int_equal(tdp_host_create(NULL, &h), 0);
	for (int i = 0; i < 3; i++) {
		struct tdp_vm_config cfg = { .max_huge = sizes[i] };

		assert_int_equal(tdp_vm_create(h, &cfg, &vms[i]), 0);
	}
	for (unsigned i = 0; i < sizeof(dcases) / sizeof(dcases[0]); i++) {
		const struct dcase *d = &dcases[i];
		struct memslot s = { .base_gfn = d->base_gfn,
				     .npages = d->npages,
				     .hva = d->hva };
		struct tdp_vm *vm = d->max_huge == K4	? vms[0]
				    : d->max_huge == M2 ? vms[1]
							: vms[2];
		int l = vm_max_mapping_level(vm, &s, d->gfn, d->order);

		if (l != d->level)
			fail_msg("dcase %u: want %d got %d", i, d->level, l);
	}
	for (int i = 0; i < 3; i++)
		tdp_vm_destroy(vms[i]);
	tdp_host_destroy(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_levels_by_access),
		cmocka_unit_test(test_slot_edges_one_vm),
		cmocka_unit_test(test_table_replaced_by_huge_leaf),
		cmocka_unit_test(test_max_mapping_level_direct),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
