/* SPDX-License-Identifier: MIT */
/*
 * test_memslot.c - tdp_vm_set_memslot: every documented error (exact errno,
 * and the memslot set left unchanged), create / read / move / read-only
 * toggle / delete, slots in two address spaces, 5-level gpa width; and the
 * memslot set helpers of src/memslot.h (lookup, find_id, replace, overlap).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "memslot.h"
#include "vm.h"

#define PG TDP_PAGE_SIZE
#define RW (TDP_PROT_READ | TDP_PROT_WRITE)

struct env {
	struct tdp_host *h;
	struct tdp_vm *vm;
	struct tdp_vcpu *v[2];
	uint64_t hva; /* a 16 MiB mapping of 4 KiB folios */
};

/* The tag stored at the start of the host page at @hva. */
static uint64_t tag(uint64_t hva)
{
	return (hva * 0x9e3779b97f4a7c15ull) | 1;
}

static void env_init(struct env *e, const struct tdp_vm_config *cfg)
{
	memset(e, 0, sizeof(*e));
	assert_int_equal(tdp_host_create(NULL, &e->h), 0);
	e->hva = th_host_map(e->h, 16 * MiB, RW, PG);
	/* tag every page */
	for (uint64_t off = 0; off < 16 * MiB; off += PG) {
		uint64_t t = tag(e->hva + off);

		assert_int_equal(tdp_host_write(e->h, e->hva + off, &t, 8), 0);
	}
	assert_int_equal(tdp_vm_create(e->h, cfg, &e->vm), 0);
	assert_int_equal(tdp_vcpu_create(e->vm, 0, &e->v[0]), 0);
	if (cfg && cfg->nr_as == 2) {
		assert_int_equal(tdp_vcpu_create(e->vm, 1, &e->v[1]), 0);
		assert_int_equal(tdp_vcpu_set_as(e->v[1], 1), 0);
	}
}

static void env_fini(struct env *e)
{
	th_audit_clean(e->vm);
	tdp_vcpu_destroy(e->v[0]);
	tdp_vcpu_destroy(e->v[1]);
	tdp_vm_destroy(e->vm);
	tdp_host_destroy(e->h);
}

/* The guest sees host page @hva at @gpa. */
static void expect_maps(struct tdp_vcpu *v, uint64_t gpa, uint64_t hva)
{
	uint64_t x;

	assert_int_equal(th_read64(v, gpa, &x), 0);
	assert_int_equal(x, tag(hva));
}

static void expect_unmapped(struct tdp_vcpu *v, uint64_t gpa)
{
	uint64_t x;

	assert_int_equal(th_read64(v, gpa, &x), -EFAULT);
	assert_int_equal(th_write64(v, gpa, 1), -EFAULT);
}

/* ---- snapshots of the published memslot sets ---- */

struct snap {
	uint64_t generation;
	unsigned n;
	struct memslot slots[64];
	uint64_t updates;
};

static void snapshot(struct env *e, unsigned as, struct snap *s)
{
	struct memslots *set;
	unsigned idx;

	memset(s, 0, sizeof(*s));
	idx = tdp_srcu_read_lock(&e->vm->srcu);
	set = vm_memslots(e->vm, as);
	s->generation = set->generation;
	s->n = set->n;
	assert_true(set->n <= 64);
	memcpy(s->slots, set->slots, set->n * sizeof(set->slots[0]));
	tdp_srcu_read_unlock(&e->vm->srcu, idx);
	s->updates = th_vm_stats(e->vm).memslot_updates;
}

static void expect_unchanged(struct env *e, unsigned as,
			     const struct snap *before)
{
	struct snap now;

	snapshot(e, as, &now);
	assert_int_equal(now.generation, before->generation);
	assert_int_equal(now.n, before->n);
	assert_memory_equal(now.slots, before->slots,
			    before->n * sizeof(before->slots[0]));
	assert_int_equal(now.updates, before->updates);
}

/* A call that must fail with @err and change nothing. */
static void expect_err(struct env *e, const struct tdp_memslot *s, int err)
{
	struct snap before[2];

	for (unsigned a = 0; a < e->vm->cfg.nr_as; a++)
		snapshot(e, a, &before[a]);
	assert_int_equal(tdp_vm_set_memslot(e->vm, s), err);
	for (unsigned a = 0; a < e->vm->cfg.nr_as; a++)
		expect_unchanged(e, a, &before[a]);
}

static void expect_set_err(struct env *e, unsigned as, unsigned id,
			   uint64_t gpa, uint64_t size, uint64_t hva,
			   unsigned flags, int err)
{
	struct tdp_memslot s = {.as_id = as,
				.slot = id,
				.gpa = gpa,
				.size = size,
				.hva = hva,
				.flags = flags};

	expect_err(e, &s, err);
}

/* ------------------------------------------------------------------ */
/* errors                                                              */
/* ------------------------------------------------------------------ */

static void test_errors_einval(void **state)
{
	struct env e;
	const uint64_t top = 1ull << 48;
	uint64_t x;

	(void)state;
	env_init(&e, NULL);
	/* a baseline slot: gpa [0, 1M) */
	th_set_slot(e.vm, 0, 0, 0, MiB, e.hva, 0);
	expect_maps(e.v[0], 0, e.hva);

	expect_err(&e, NULL, -EINVAL);
	assert_int_equal(
		tdp_vm_set_memslot(
			NULL, &(struct tdp_memslot){.size = PG, .hva = e.hva}),
		-EINVAL);
	/* as_id >= nr_as (1), also for a delete */
	expect_set_err(&e, 1, 1, 2 * MiB, MiB, e.hva, 0, -EINVAL);
	expect_set_err(&e, 1, 0, 0, 0, 0, 0, -EINVAL);
	expect_set_err(&e, ~0u, 1, 2 * MiB, MiB, e.hva, 0, -EINVAL);
	/* slot id out of range, also for a delete */
	expect_set_err(&e, 0, TDP_MAX_MEMSLOTS, 2 * MiB, MiB, e.hva, 0,
		       -EINVAL);
	expect_set_err(&e, 0, ~0u, 2 * MiB, MiB, e.hva, 0, -EINVAL);
	expect_set_err(&e, 0, TDP_MAX_MEMSLOTS, 0, 0, 0, 0, -EINVAL);
	/* unknown flags, also on an existing slot and for a delete */
	expect_set_err(&e, 0, 1, 2 * MiB, MiB, e.hva, 16, -EINVAL);
	expect_set_err(&e, 0, 1, 2 * MiB, MiB, e.hva, 1u << 31, -EINVAL);
	expect_set_err(&e, 0, 0, 0, MiB, e.hva, TDP_MEM_READONLY | 4, -EINVAL);
	expect_set_err(&e, 0, 0, 0, 0, 0, 8, -EINVAL);
	/* unaligned gpa / size / hva */
	expect_set_err(&e, 0, 1, 2 * MiB + 512, MiB, e.hva, 0, -EINVAL);
	expect_set_err(&e, 0, 1, 2 * MiB + 1, MiB, e.hva, 0, -EINVAL);
	expect_set_err(&e, 0, 1, 2 * MiB, MiB + 8, e.hva, 0, -EINVAL);
	expect_set_err(&e, 0, 1, 2 * MiB, PG - 1, e.hva, 0, -EINVAL);
	expect_set_err(&e, 0, 1, 2 * MiB, MiB, e.hva + 8, 0, -EINVAL);
	expect_set_err(&e, 0, 1, 2 * MiB, MiB, e.hva + 2048, 0, -EINVAL);
	/* gpa + size overflows */
	expect_set_err(&e, 0, 1, ~0ull - PG + 1, 2 * PG, e.hva, 0, -EINVAL);
	expect_set_err(&e, 0, 1, ~0ull - PG + 1, PG, e.hva, 0, -EINVAL);
	expect_set_err(&e, 0, 1, 1ull << 63, 1ull << 63, e.hva, 0, -EINVAL);
	/* beyond the gpa width of a 4-level root (2^48) */
	expect_set_err(&e, 0, 1, top, PG, e.hva, 0, -EINVAL);
	expect_set_err(&e, 0, 1, top - PG, 2 * PG, e.hva, 0, -EINVAL);
	expect_set_err(&e, 0, 1, 1ull << 52, MiB, e.hva, 0, -EINVAL);
	/* hva + size overflows */
	expect_set_err(&e, 0, 1, 2 * MiB, 2 * PG, ~0ull - PG + 1, 0, -EINVAL);
	expect_set_err(&e, 0, 1, 2 * MiB, 1ull << 63, 1ull << 63, 0, -EINVAL);
	/* ...or leaves the 2^47 hva space of the host */
	expect_set_err(&e, 0, 1, 2 * MiB, 2 * PG, (1ull << 47) - PG, 0,
		       -EINVAL);

	/* nothing of that created anything */
	expect_unmapped(e.v[0], 2 * MiB);
	expect_unmapped(e.v[0], top - PG);
	expect_maps(e.v[0], 0, e.hva);
	expect_maps(e.v[0], MiB - PG, e.hva + MiB - PG);
	assert_int_equal(th_read64(e.v[0], MiB, &x), -EFAULT);

	/* the boundaries themselves are fine: the last page below 2^48 and
	 * the last slot id */
	th_set_slot(e.vm, 0, TDP_MAX_MEMSLOTS - 1, top - PG, PG, e.hva + PG, 0);
	expect_maps(e.v[0], top - PG, e.hva + PG);
	assert_int_equal(th_write64(e.v[0], top - 8, 0x1234), 0);
	assert_int_equal(th_read64(e.v[0], top - 8, &x), 0);
	assert_int_equal(x, 0x1234);
	assert_int_equal(tdp_host_read(e.h, e.hva + 2 * PG - 8, &x, 8), 0);
	assert_int_equal(x, 0x1234);
	env_fini(&e);
}

static void test_errors_overlap(void **state)
{
	struct env e;
	const uint64_t A = 4 * MiB, AEND = 8 * MiB;

	(void)state;
	env_init(&e, NULL);
	th_set_slot(e.vm, 0, 1, A, AEND - A, e.hva, 0);
	th_set_slot(e.vm, 0, 3, 12 * MiB, MiB, e.hva + 4 * MiB, 0);

	/* partial overlap at the front, at the back, superset, subset, same
	 * range, one page at each end */
	expect_set_err(&e, 0, 2, 3 * MiB, MiB + PG, e.hva, 0, -EEXIST);
	expect_set_err(&e, 0, 2, A - PG, 2 * PG, e.hva, 0, -EEXIST);
	expect_set_err(&e, 0, 2, AEND - PG, MiB, e.hva, 0, -EEXIST);
	expect_set_err(&e, 0, 2, AEND - PG, PG, e.hva, 0, -EEXIST);
	expect_set_err(&e, 0, 2, 2 * MiB, 8 * MiB, e.hva, 0, -EEXIST);
	expect_set_err(&e, 0, 2, 5 * MiB, MiB, e.hva, 0, -EEXIST);
	expect_set_err(&e, 0, 2, A, AEND - A, e.hva + 8 * MiB, 0, -EEXIST);
	/* covering two slots */
	expect_set_err(&e, 0, 2, 7 * MiB, 6 * MiB, e.hva, 0, -EEXIST);
	/* moving an existing slot onto another */
	expect_set_err(&e, 0, 3, AEND - PG, MiB, e.hva + 4 * MiB, 0, -EEXIST);
	expect_set_err(&e, 0, 3, 3 * MiB + PG, MiB, e.hva + 4 * MiB, 0,
		       -EEXIST);
	expect_maps(e.v[0], 12 * MiB, e.hva + 4 * MiB);
	expect_unmapped(e.v[0], 3 * MiB);
	expect_unmapped(e.v[0], AEND);

	/* adjacent at both ends is fine */
	th_set_slot(e.vm, 0, 2, 3 * MiB, MiB, e.hva + 3 * MiB, 0);
	th_set_slot(e.vm, 0, 4, AEND, MiB, e.hva + 2 * MiB, 0);
	expect_maps(e.v[0], A - PG, e.hva + 4 * MiB - PG);
	expect_maps(e.v[0], A, e.hva);
	expect_maps(e.v[0], AEND - PG, e.hva + 4 * MiB - PG);
	expect_maps(e.v[0], AEND, e.hva + 2 * MiB);
	/* a slot may move onto (part of) its own old range */
	th_set_slot(e.vm, 0, 3, 12 * MiB + 512 * 1024, MiB, e.hva + 4 * MiB, 0);
	expect_maps(e.v[0], 12 * MiB + 512 * 1024, e.hva + 4 * MiB);
	expect_unmapped(e.v[0], 12 * MiB);
	/* several slots may share host memory (hva ranges may overlap) */
	th_set_slot(e.vm, 0, 5, 32 * MiB, MiB, e.hva, 0);
	expect_maps(e.v[0], 32 * MiB + PG, e.hva + PG);
	env_fini(&e);
}

static void test_errors_existing(void **state)
{
	struct env e;

	(void)state;
	env_init(&e, NULL);
	th_set_slot(e.vm, 0, 7, 2 * MiB, MiB, e.hva, 0);

	/* deleting a slot that does not exist */
	expect_set_err(&e, 0, 8, 0, 0, 0, 0, -ENOENT);
	expect_set_err(&e, 0, 6, 2 * MiB, 0, e.hva, 0, -ENOENT);
	/* changing size or hva of an existing slot, with or without a move */
	expect_set_err(&e, 0, 7, 2 * MiB, 2 * MiB, e.hva, 0, -EINVAL);
	expect_set_err(&e, 0, 7, 2 * MiB, MiB - PG, e.hva, 0, -EINVAL);
	expect_set_err(&e, 0, 7, 2 * MiB, MiB, e.hva + PG, 0, -EINVAL);
	expect_set_err(&e, 0, 7, 8 * MiB, 2 * MiB, e.hva, 0, -EINVAL);
	expect_set_err(&e, 0, 7, 8 * MiB, MiB, e.hva + MiB, 0, -EINVAL);
	expect_set_err(&e, 0, 7, 2 * MiB, MiB, e.hva + MiB, TDP_MEM_READONLY,
		       -EINVAL);
	expect_maps(e.v[0], 2 * MiB, e.hva);
	expect_maps(e.v[0], 3 * MiB - PG, e.hva + MiB - PG);
	expect_unmapped(e.v[0], 3 * MiB);
	expect_unmapped(e.v[0], 8 * MiB);

	/* delete, then the same delete again */
	th_set_slot(e.vm, 0, 7, 0, 0, 0, 0);
	expect_unmapped(e.v[0], 2 * MiB);
	expect_set_err(&e, 0, 7, 0, 0, 0, 0, -ENOENT);
	/* the id is free again, with any size */
	th_set_slot(e.vm, 0, 7, 2 * MiB, 2 * MiB, e.hva + MiB, 0);
	expect_maps(e.v[0], 2 * MiB, e.hva + MiB);
	env_fini(&e);
}

static void test_errors_efault(void **state)
{
	struct env e;
	uint64_t m, gone;

	(void)state;
	env_init(&e, NULL);
	/* a range that was mapped and is not any more */
	gone = th_host_map(e.h, MiB, RW, PG);
	assert_int_equal(tdp_host_munmap(e.h, gone, MiB), 0);
	expect_set_err(&e, 0, 1, 0, MiB, gone, 0, -EFAULT);
	expect_set_err(&e, 0, 1, 0, PG, gone + MiB - PG, 0, -EFAULT);

	/* four pages, the second and the fourth unmapped: m+PG and m+3PG
	 * are holes */
	m = th_host_map(e.h, 4 * PG, RW, PG);
	assert_int_equal(tdp_host_munmap(e.h, m + PG, PG), 0);
	assert_int_equal(tdp_host_munmap(e.h, m + 3 * PG, PG), 0);
	expect_set_err(&e, 0, 1, 0, 3 * PG, m, 0, -EFAULT);
	expect_set_err(&e, 0, 1, 0, 2 * PG, m, 0, -EFAULT);
	/* starting in a hole, running off the end into a hole */
	expect_set_err(&e, 0, 1, 0, 2 * PG, m + PG, 0, -EFAULT);
	expect_set_err(&e, 0, 1, 0, 2 * PG, m + 2 * PG, 0, -EFAULT);
	expect_set_err(&e, 0, 1, 0, PG, m + 3 * PG, 0, -EFAULT);
	expect_unmapped(e.v[0], 0);

	/* the mapped parts alone are fine */
	th_set_slot(e.vm, 0, 1, 0, PG, m, 0);
	th_set_slot(e.vm, 0, 2, PG, PG, m + 2 * PG, 0);
	assert_int_equal(th_write64(e.v[0], 0, 11), 0);
	assert_int_equal(th_write64(e.v[0], PG, 22), 0);
	expect_unmapped(e.v[0], 2 * PG);
	{
		uint64_t a, b;

		assert_int_equal(tdp_host_read(e.h, m, &a, 8), 0);
		assert_int_equal(tdp_host_read(e.h, m + 2 * PG, &b, 8), 0);
		assert_int_equal(a, 11);
		assert_int_equal(b, 22);
	}
	/* a delete does not need the hva to be mapped */
	th_set_slot(e.vm, 0, 1, 0, 0, gone, 0);
	expect_unmapped(e.v[0], 0);
	env_fini(&e);
}

/* ------------------------------------------------------------------ */
/* successful updates                                                  */
/* ------------------------------------------------------------------ */

static void test_create_move_delete(void **state)
{
	struct env e;
	struct snap s0, s1;
	uint64_t x;

	(void)state;
	env_init(&e, NULL);
	snapshot(&e, 0, &s0);
	assert_int_equal(s0.n, 0);

	/* create */
	th_set_slot(e.vm, 0, 0, MiB, 2 * MiB, e.hva, 0);
	snapshot(&e, 0, &s1);
	assert_int_equal(s1.generation, s0.generation + 1);
	assert_int_equal(s1.updates, s0.updates + 1);
	assert_int_equal(s1.n, 1);
	assert_int_equal(s1.slots[0].base_gfn, MiB >> 12);
	assert_int_equal(s1.slots[0].npages, 512);
	assert_int_equal(s1.slots[0].hva, e.hva);
	assert_false(s1.slots[0].invalid);
	for (uint64_t off = 0; off < 2 * MiB; off += 64 * PG)
		expect_maps(e.v[0], MiB + off, e.hva + off);
	expect_unmapped(e.v[0], 0);
	expect_unmapped(e.v[0], 3 * MiB);
	/* a guest write lands in host memory */
	assert_int_equal(th_write64(e.v[0], MiB + 8, 0xfeed), 0);
	assert_int_equal(tdp_host_read(e.h, e.hva + 8, &x, 8), 0);
	assert_int_equal(x, 0xfeed);
	assert_true(th_vm_stats(e.vm).pages_4k > 0);

	/* setting the same slot again changes nothing */
	th_set_slot(e.vm, 0, 0, MiB, 2 * MiB, e.hva, 0);
	expect_maps(e.v[0], MiB, e.hva);

	/* move: the old gpa is gone, the new one shows the same memory */
	snapshot(&e, 0, &s0);
	th_set_slot(e.vm, 0, 0, 64 * MiB, 2 * MiB, e.hva, 0);
	snapshot(&e, 0, &s1);
	/* an invalid set, then the final one (memslot.h) */
	assert_int_equal(s1.generation, s0.generation + 2);
	assert_int_equal(s1.n, 1);
	assert_int_equal(s1.slots[0].base_gfn, (64 * MiB) >> 12);
	assert_false(s1.slots[0].invalid);
	/* old mappings zapped */
	assert_int_equal(th_vm_stats(e.vm).pages_4k, 0);
	expect_unmapped(e.v[0], MiB);
	expect_unmapped(e.v[0], 3 * MiB - PG);
	expect_maps(e.v[0], 64 * MiB + PG, e.hva + PG);
	assert_int_equal(th_read64(e.v[0], 64 * MiB + 8, &x), 0);
	assert_int_equal(x, 0xfeed);
	assert_int_equal(th_write64(e.v[0], 64 * MiB + 16, 0xbeef), 0);
	assert_int_equal(tdp_host_read(e.h, e.hva + 16, &x, 8), 0);
	assert_int_equal(x, 0xbeef);
	th_audit_clean(e.vm);

	/* move back, by less than its size (overlapping its old range) */
	th_set_slot(e.vm, 0, 0, 65 * MiB, 2 * MiB, e.hva, 0);
	expect_unmapped(e.v[0], 64 * MiB);
	expect_maps(e.v[0], 65 * MiB, e.hva);
	expect_maps(e.v[0], 66 * MiB, e.hva + MiB);
	assert_int_equal(th_read64(e.v[0], 65 * MiB + 16, &x), 0);
	assert_int_equal(x, 0xbeef);
	th_audit_clean(e.vm);

	/* delete: access faults, mappings are gone */
	snapshot(&e, 0, &s0);
	th_set_slot(e.vm, 0, 0, 0, 0, 0, 0);
	snapshot(&e, 0, &s1);
	assert_int_equal(s1.generation, s0.generation + 2);
	assert_int_equal(s1.n, 0);
	assert_int_equal(s1.updates, s0.updates + 1);
	expect_unmapped(e.v[0], 65 * MiB);
	expect_unmapped(e.v[0], 66 * MiB);
	assert_int_equal(th_vm_stats(e.vm).pages_4k, 0);
	assert_int_equal(th_vm_stats(e.vm).frame_refs, 0);
	/* host memory is untouched by the delete */
	assert_int_equal(tdp_host_read(e.h, e.hva + 16, &x, 8), 0);
	assert_int_equal(x, 0xbeef);
	env_fini(&e);
}

static void test_readonly_toggle(void **state)
{
	struct env e;
	struct tdp_stats st;
	uint64_t x;

	(void)state;
	env_init(&e, NULL);
	th_set_slot(e.vm, 0, 0, 0, MiB, e.hva, 0);
	/* write first, so the TLB holds a writable, dirty translation */
	assert_int_equal(th_write64(e.v[0], 0, 1), 0);
	assert_int_equal(th_write64(e.v[0], 0, 2), 0);

	/* gain read-only: writes exit with -EACCES and change nothing */
	th_set_slot(e.vm, 0, 0, 0, MiB, e.hva, TDP_MEM_READONLY);
	st = th_vm_stats(e.vm);
	assert_int_equal(th_write64(e.v[0], 0, 3), -EACCES);
	assert_int_equal(th_write64(e.v[0], PG * 5, 3), -EACCES);
	assert_int_equal(th_vm_stats(e.vm).pf_ro_exit, st.pf_ro_exit + 2);
	assert_int_equal(tdp_host_read(e.h, e.hva, &x, 8), 0);
	assert_int_equal(x, 2);
	expect_maps(e.v[0], PG * 5, e.hva + PG * 5);
	assert_int_equal(th_read64(e.v[0], 0, &x), 0);
	assert_int_equal(x, 2);
	/* still read-only after the read mapped it */
	assert_int_equal(th_write64(e.v[0], 0, 4), -EACCES);
	assert_int_equal(th_read64(e.v[0], 0, &x), 0);
	assert_int_equal(x, 2);
	th_audit_clean(e.vm);

	/* lose read-only: writes work again */
	th_set_slot(e.vm, 0, 0, 0, MiB, e.hva, 0);
	assert_int_equal(th_write64(e.v[0], 0, 5), 0);
	assert_int_equal(th_read64(e.v[0], 0, &x), 0);
	assert_int_equal(x, 5);
	assert_int_equal(tdp_host_read(e.h, e.hva, &x, 8), 0);
	assert_int_equal(x, 5);
	th_audit_clean(e.vm);

	/* read-only together with a move */
	th_set_slot(e.vm, 0, 0, 8 * MiB, MiB, e.hva, TDP_MEM_READONLY);
	expect_unmapped(e.v[0], 0);
	assert_int_equal(th_read64(e.v[0], 8 * MiB, &x), 0);
	assert_int_equal(x, 5);
	assert_int_equal(th_write64(e.v[0], 8 * MiB, 6), -EACCES);

	/* a slot created read-only */
	th_set_slot(e.vm, 0, 1, 0, MiB, e.hva + MiB, TDP_MEM_READONLY);
	expect_maps(e.v[0], 0, e.hva + MiB);
	assert_int_equal(th_write64(e.v[0], 0, 7), -EACCES);
	assert_int_equal(tdp_host_read(e.h, e.hva + MiB, &x, 8), 0);
	assert_int_equal(x, tag(e.hva + MiB));
	env_fini(&e);
}

static void test_two_address_spaces(void **state)
{
	struct tdp_vm_config cfg = {.nr_as = 2};
	struct env e;
	uint64_t x;

	(void)state;
	env_init(&e, &cfg);
	/* overlapping slots (even the same id) in different address spaces */
	th_set_slot(e.vm, 0, 0, 0, 2 * MiB, e.hva, 0);
	th_set_slot(e.vm, 1, 0, MiB, 2 * MiB, e.hva + 2 * MiB, 0);
	th_set_slot(e.vm, 1, 1, 0, MiB, e.hva + MiB, 0);
	expect_set_err(&e, 2, 0, 0, MiB, e.hva, 0, -EINVAL);
	/* ...but not within one */
	expect_set_err(&e, 1, 2, 2 * MiB, MiB, e.hva, 0, -EEXIST);
	expect_set_err(&e, 0, 2, MiB, MiB, e.hva, 0, -EEXIST);

	expect_maps(e.v[0], 0, e.hva);
	expect_maps(e.v[0], MiB, e.hva + MiB);
	expect_unmapped(e.v[0], 2 * MiB);
	expect_maps(e.v[1], 0, e.hva + MiB);
	expect_maps(e.v[1], MiB, e.hva + 2 * MiB);
	expect_maps(e.v[1], 2 * MiB, e.hva + 3 * MiB);
	expect_unmapped(e.v[1], 3 * MiB);

	/* deleting in one space leaves the other alone */
	th_set_slot(e.vm, 1, 0, 0, 0, 0, 0);
	expect_unmapped(e.v[1], MiB);
	expect_maps(e.v[1], 0, e.hva + MiB);
	expect_maps(e.v[0], MiB, e.hva + MiB);
	/* and ids are per address space */
	expect_set_err(&e, 1, 0, 0, 0, 0, 0, -ENOENT);
	assert_int_equal(th_read64(e.v[0], 0, &x), 0);
	env_fini(&e);
}

static void test_five_level_width(void **state)
{
	struct tdp_vm_config cfg = {.root_level = 5};
	struct env e;
	const uint64_t top = 1ull << 57;
	uint64_t x;

	(void)state;
	env_init(&e, &cfg);
	/* above 2^48 is fine now */
	th_set_slot(e.vm, 0, 0, 1ull << 48, MiB, e.hva, 0);
	expect_maps(e.v[0], (1ull << 48) + PG, e.hva + PG);
	th_set_slot(e.vm, 0, 1, top - MiB, MiB, e.hva + MiB, 0);
	expect_maps(e.v[0], top - PG, e.hva + 2 * MiB - PG);
	assert_int_equal(th_write64(e.v[0], top - 8, 99), 0);
	assert_int_equal(th_read64(e.v[0], top - 8, &x), 0);
	assert_int_equal(x, 99);
	/* 2^57 is the limit */
	expect_set_err(&e, 0, 2, top, PG, e.hva, 0, -EINVAL);
	expect_set_err(&e, 0, 2, top - PG, 2 * PG, e.hva, 0, -EINVAL);
	env_fini(&e);
}

/* Many slots: the published set stays sorted and lookups find each. */
static void test_many_slots(void **state)
{
	struct env e;
	struct snap s;
	uint64_t seed = 42;
	unsigned order[64];

	(void)state;
	env_init(&e, NULL);
	for (unsigned i = 0; i < 64; i++)
		order[i] = i;
	for (unsigned i = 63; i > 0; i--) {
		unsigned j = (unsigned)(th_rand(&seed) % (i + 1)), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	/* slot k: gpa k * 2M, 64K, hva page k; ids scattered */
	for (unsigned i = 0; i < 64; i++) {
		unsigned k = order[i];

		th_set_slot(e.vm, 0, (k * 37) % TDP_MAX_MEMSLOTS,
			    (uint64_t)k * 2 * MiB, 16 * PG, e.hva + k * PG, 0);
	}
	snapshot(&e, 0, &s);
	assert_int_equal(s.n, 64);
	for (unsigned i = 1; i < s.n; i++)
		assert_true(s.slots[i - 1].base_gfn < s.slots[i].base_gfn);
	for (unsigned k = 0; k < 64; k += 7) {
		expect_maps(e.v[0], (uint64_t)k * 2 * MiB, e.hva + k * PG);
		expect_unmapped(e.v[0], (uint64_t)k * 2 * MiB + 16 * PG);
	}
	/* delete every other one */
	for (unsigned k = 0; k < 64; k += 2)
		th_set_slot(e.vm, 0, (k * 37) % TDP_MAX_MEMSLOTS, 0, 0, 0, 0);
	snapshot(&e, 0, &s);
	assert_int_equal(s.n, 32);
	for (unsigned i = 0; i < s.n; i++)
		assert_int_equal(s.slots[i].base_gfn,
				 (uint64_t)(2 * i + 1) * 512);
	expect_unmapped(e.v[0], 4 * MiB);
	expect_maps(e.v[0], 6 * MiB, e.hva + 3 * PG);
	env_fini(&e);
}

/* ------------------------------------------------------------------ */
/* the set helpers                                                     */
/* ------------------------------------------------------------------ */

static struct memslot ms(unsigned id, uint64_t gfn, uint64_t npages)
{
	return (struct memslot){.base_gfn = gfn,
				.npages = npages,
				.hva = 0x100000 + gfn * 4096,
				.id = id};
}

static void test_set_helpers(void **state)
{
	struct memslots *s0, *s1, *s2, *s3, *s4, *s5;
	struct memslot a = ms(1, 100, 10), b = ms(2, 0, 50), c = ms(3, 200, 1),
		       d = ms(4, 50, 50);

	(void)state;
	s0 = memslots_replace(NULL, ~0u, NULL);
	assert_non_null(s0);
	assert_int_equal(s0->n, 0);
	assert_int_equal(s0->generation, 1);
	assert_null(memslots_lookup(s0, 0));
	assert_null(memslots_find_id(s0, 0));
	assert_false(memslots_overlap(s0, 0, ~0ull >> 1, ~0u));

	/* insert out of order: kept sorted by base_gfn */
	s1 = memslots_replace(s0, ~0u, &a);
	s2 = memslots_replace(s1, ~0u, &c);
	s3 = memslots_replace(s2, ~0u, &b);
	s4 = memslots_replace(s3, ~0u, &d);
	assert_non_null(s4);
	assert_int_equal(s1->generation, 2);
	assert_int_equal(s4->generation, 5);
	assert_int_equal(s4->n, 4);
	assert_int_equal(s4->slots[0].id, 2);
	assert_int_equal(s4->slots[1].id, 4);
	assert_int_equal(s4->slots[2].id, 1);
	assert_int_equal(s4->slots[3].id, 3);
	/* older sets are untouched (immutable once published) */
	assert_int_equal(s1->n, 1);
	assert_int_equal(s2->n, 2);
	assert_int_equal(s2->slots[0].id, 1);
	assert_int_equal(s2->slots[1].id, 3);
	assert_int_equal(s0->n, 0);

	/* lookup: first, last, one past, gaps */
	assert_ptr_equal(memslots_lookup(s4, 0), &s4->slots[0]);
	assert_ptr_equal(memslots_lookup(s4, 49), &s4->slots[0]);
	assert_ptr_equal(memslots_lookup(s4, 50), &s4->slots[1]);
	assert_ptr_equal(memslots_lookup(s4, 99), &s4->slots[1]);
	assert_ptr_equal(memslots_lookup(s4, 100), &s4->slots[2]);
	assert_ptr_equal(memslots_lookup(s4, 109), &s4->slots[2]);
	assert_null(memslots_lookup(s4, 110));
	assert_null(memslots_lookup(s4, 199));
	assert_ptr_equal(memslots_lookup(s4, 200), &s4->slots[3]);
	assert_null(memslots_lookup(s4, 201));
	assert_null(memslots_lookup(s4, ~0ull));
	assert_null(memslots_lookup(s3, 60));
	for (uint64_t g = 0; g < 220; g++) {
		const struct memslot *m = memslots_lookup(s4, g);
		const struct memslot *want = NULL;

		for (unsigned i = 0; i < s4->n; i++)
			if (g >= s4->slots[i].base_gfn &&
			    g < memslot_end(&s4->slots[i]))
				want = &s4->slots[i];
		assert_ptr_equal(m, want);
		if (m)
			assert_int_equal(memslot_gfn_to_hva(m, g),
					 0x100000 + g * 4096);
	}

	/* find by id */
	assert_ptr_equal(memslots_find_id(s4, 3), &s4->slots[3]);
	assert_ptr_equal(memslots_find_id(s4, 4), &s4->slots[1]);
	assert_null(memslots_find_id(s4, 5));

	/* overlap: half-open ranges, except_id */
	assert_true(memslots_overlap(s4, 109, 1, ~0u));
	assert_false(memslots_overlap(s4, 110, 90, ~0u));
	assert_true(memslots_overlap(s4, 110, 91, ~0u));
	assert_true(memslots_overlap(s4, 95, 10, ~0u));
	assert_true(memslots_overlap(s4, 95, 10, 1));	/* still overlaps 4 */
	assert_false(memslots_overlap(s4, 100, 10, 1)); /* only its own */
	assert_true(memslots_overlap(s4, 0, 1000, 1));
	assert_false(memslots_overlap(s4, 201, 1000, ~0u));

	/* replace: remove + add (a move), sorted again */
	struct memslot a2 = ms(1, 300, 10);

	s5 = memslots_replace(s4, 1, &a2);
	assert_non_null(s5);
	assert_int_equal(s5->generation, 6);
	assert_int_equal(s5->n, 4);
	assert_int_equal(s5->slots[0].id, 2);
	assert_int_equal(s5->slots[1].id, 4);
	assert_int_equal(s5->slots[2].id, 3);
	assert_int_equal(s5->slots[3].id, 1);
	assert_null(memslots_lookup(s5, 105));
	assert_ptr_equal(memslots_lookup(s5, 305), &s5->slots[3]);
	free(s1);
	free(s2);
	free(s3);
	/* remove only */
	s1 = memslots_replace(s5, 4, NULL);
	assert_int_equal(s1->n, 3);
	assert_int_equal(s1->generation, 7);
	assert_null(memslots_find_id(s1, 4));
	assert_null(memslots_lookup(s1, 60));
	/* removing an unknown id copies the set */
	s2 = memslots_replace(s1, 77, NULL);
	assert_int_equal(s2->n, 3);
	assert_int_equal(s2->generation, 8);
	assert_memory_equal(s2->slots, s1->slots, 3 * sizeof(s1->slots[0]));
	/* insert at the front of a non-empty set */
	struct memslot z = ms(9, 0, 1);
	s3 = memslots_replace(s2, 2, &z);
	assert_int_equal(s3->slots[0].id, 9);
	free(s0);
	free(s1);
	free(s2);
	free(s3);
	free(s4);
	free(s5);
}

/* A host invalidation over several memslots (here two slots mapping
 * adjacent parts of one hva range) flushes the vCPU
 * TLBs once for the whole notifier call, as KVM does, not once per slot;
 * and the guest then sees the change in every slot. */
static void test_invalidation_flushes_once(void **state)
{
	struct env e;
	uint64_t before, x;

	(void)state;
	env_init(&e, NULL);
	/* slot 1 maps the first MiB at gpa 0, slot 2 the second at 8 MiB */
	th_set_slot(e.vm, 0, 1, 0, MiB, e.hva, 0);
	th_set_slot(e.vm, 0, 2, 8 * MiB, MiB, e.hva + MiB, 0);
	expect_maps(e.v[0], 0, e.hva);
	expect_maps(e.v[0], 8 * MiB, e.hva + MiB);
	before = th_vm_stats(e.vm).remote_tlb_flush;
	/* one notifier call over both slots' pages */
	assert_int_equal(tdp_host_mprotect(e.h, e.hva, 2 * MiB, TDP_PROT_READ),
			 0);
	assert_int_equal(th_vm_stats(e.vm).remote_tlb_flush, before + 1);
	/* both read-only now (the write faults and is refused) */
	x = 7;
	assert_int_equal(tdp_vcpu_write(e.v[0], 0, &x, 8), -EFAULT);
	assert_int_equal(tdp_vcpu_write(e.v[0], 8 * MiB, &x, 8), -EFAULT);
	expect_maps(e.v[0], 0, e.hva);
	expect_maps(e.v[0], 8 * MiB, e.hva + MiB);
	env_fini(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors_einval),
		cmocka_unit_test(test_errors_overlap),
		cmocka_unit_test(test_errors_existing),
		cmocka_unit_test(test_errors_efault),
		cmocka_unit_test(test_create_move_delete),
		cmocka_unit_test(test_readonly_toggle),
		cmocka_unit_test(test_two_address_spaces),
		cmocka_unit_test(test_five_level_width),
		cmocka_unit_test(test_many_slots),
		cmocka_unit_test(test_set_helpers),
		cmocka_unit_test(test_invalidation_flushes_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
