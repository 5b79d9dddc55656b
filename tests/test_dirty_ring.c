/* SPDX-License-Identifier: MIT */
/*
 * test_dirty_ring.c - the dirty ring (cfg.dirty_ring_size,
 * tdp_vcpu_dirty_ring, tdp_vm_reset_dirty_rings): configuration errors,
 * what a write puts in which vCPU's ring (write-protect mode and PML), the
 * flags protocol (a reset takes harvested entries only, in order, and
 * re-protects exactly their pages), the soft limit (-ENOSPC until a
 * reset), entries a VMM scribbled on, the bitmap beside the ring (what no
 * vCPU wrote), and the ring's form of I7: a slow write fault held at
 * mmu_lock while a reset queues behind it.  Both engines, both host
 * backends.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tools/common/ring.h"
#include "helpers.h"
#include "vm.h"

#define PG	 4096ull
#define SLOT_GPA GiB
#define RING	 TDP_DIRTY_RING_MIN
#define PML	 (TDP_VM_DIRTY_DBIT | TDP_VM_PML)

static void fx_init(struct th_env *f, unsigned flags, uint64_t size)
{
	struct tdp_vm_config c = {
		.max_vcpus = 2, .flags = flags, .dirty_ring_size = RING};

	th_env_init(f, size + 2 * GiB, &c, 2);
	th_maybe_inject(f->vm);
	th_env_slot(f, SLOT_GPA, size, TDP_PAGE_SIZE);
	/* every page mapped and populated, then logging on */
	for (uint64_t p = 0; p < f->npages; p++) {
		uint64_t w = p;

		assert_int_equal(
			tdp_vcpu_write(f->v[0], f->gpa + p * PG, &w, 8), 0);
	}
	th_set_slot(f->vm, 0, 0, f->gpa, f->size, f->hva, TDP_MEM_LOG_DIRTY);
}

static void gwrite(struct th_env *f, unsigned v, uint64_t page, uint64_t w)
{
	assert_int_equal(tdp_vcpu_write(f->v[v], f->gpa + page * PG, &w, 8),
			 0);
}

/* The VMM's side: a fetch index per vCPU. */
struct collector {
	uint32_t fetch[2];
};

struct take {
	uint64_t *out;
	unsigned max, n;
};

static int take_one(void *arg, uint32_t slot, uint64_t offset)
{
	struct take *t = arg;

	assert_int_equal(slot, 0); /* as 0, memslot 0 */
	if (t->out && t->n < t->max)
		t->out[t->n] = offset;
	t->n++;
	return 0;
}

/* Take the DIRTY entries of vCPU @v's ring (the tools' collector): their
 * offsets in @out (if not NULL), each marked RESET.  Returns how many. */
static unsigned collect(struct th_env *f, struct collector *c, unsigned v,
			uint64_t *out, unsigned max)
{
	struct take t = {out, max, 0};

	assert_int_equal(ring_collect(f->v[v], &c->fetch[v], take_one, &t), 0);
	return t.n;
}

static uint64_t reset(struct th_env *f)
{
	uint64_t n = ~0ull;

	assert_int_equal(tdp_vm_reset_dirty_rings(f->vm, &n), 0);
	return n;
}

/* Is @page protected (write-protect: no W; PML: not Dirty)? */
static bool is_protected(struct th_env *f, uint64_t page)
{
	struct tdp_translation t = {0};

	if (tdp_vm_translate(f->vm, 0, f->gpa + page * PG, &t))
		return true; /* not mapped at all */
	if (f->vm->cfg.flags & TDP_VM_PML)
		return !t.dirty;
	return !(t.prot & TDP_PROT_WRITE);
}

static void test_config(void **s)
{
	static const struct {
		unsigned size, flags;
		int r;
	} cases[] = {
		{RING, 0, 0},
		{RING, PML, 0},
		{TDP_DIRTY_RING_MAX, 0, 0},
		{RING / 2, 0, -EINVAL},			/* below the minimum */
		{TDP_DIRTY_RING_MAX * 2, 0, -EINVAL},	/* above the maximum */
		{RING + 1, 0, -EINVAL},			/* not a power of two */
		{RING, TDP_VM_MANUAL_PROTECT, -EINVAL}, /* bitmap-only mode */
		{RING, TDP_VM_DIRTY_DBIT, -EINVAL},	/* D bits without PML */
	};
	struct tdp_host *h = th_host_new(64 * MiB);

	(void)s;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tdp_vm_config c = {.dirty_ring_size = cases[i].size,
					  .flags = cases[i].flags};
		struct tdp_vm *vm = NULL;

		assert_int_equal(tdp_vm_create(h, &c, &vm), cases[i].r);
		tdp_vm_destroy(vm);
	}
	tdp_host_destroy(h);
}

static void test_bad_input(void **s)
{
	struct th_env e;
	struct tdp_dirty_gfn *ring;
	uint32_t size;
	uint64_t n = 5;

	(void)s;
	/* no ring */
	th_env_init(&e, 0, NULL, 1);
	assert_int_equal(tdp_vcpu_dirty_ring(e.v[0], &ring, &size), -ENXIO);
	assert_int_equal(tdp_vm_reset_dirty_rings(e.vm, &n), -ENXIO);
	assert_int_equal(n, 5);
	assert_int_equal(tdp_vm_reset_dirty_rings(NULL, &n), -EINVAL);
	assert_int_equal(tdp_vcpu_dirty_ring(NULL, &ring, &size), -EINVAL);
	assert_int_equal(tdp_vcpu_dirty_ring(e.v[0], NULL, &size), -EINVAL);
	assert_int_equal(tdp_vcpu_dirty_ring(e.v[0], &ring, NULL), -EINVAL);
	th_env_fini_empty(&e);
	/* a ring: the size asked for, empty, and a reset of nothing */
	fx_init(&e, 0, 2 * MiB);
	assert_int_equal(tdp_vcpu_dirty_ring(e.v[1], &ring, &size), 0);
	assert_int_equal(size, RING);
	for (uint32_t i = 0; i < size; i++)
		assert_int_equal(ring[i].flags, 0);
	assert_int_equal(tdp_vm_reset_dirty_rings(e.vm, NULL), 0);
	assert_int_equal(reset(&e), 0);
	th_env_fini_empty(&e);
}

/*
 * Writes go to the writing vCPU's ring, one entry per page made writable
 * (write-protect mode) or per Dirty bit logged (PML); the slot's bitmap
 * stays empty; a reset takes the harvested entries only and re-protects
 * their pages only; a page written again after the reset comes back.
 */
static void entries(unsigned flags)
{
	struct th_env f;
	struct collector c = {{0, 0}};
	uint64_t off[64], *bm;
	struct tdp_stats st;

	fx_init(&f, flags, 2 * MiB);
	bm = th_bm_new(f.nwords);
	/* vCPU 0 writes pages 3, 5, 7; vCPU 1 writes 9 twice */
	gwrite(&f, 0, 3, 1);
	gwrite(&f, 0, 5, 1);
	gwrite(&f, 0, 7, 1);
	gwrite(&f, 1, 9, 1);
	gwrite(&f, 1, 9, 2);
	assert_int_equal(collect(&f, &c, 0, off, 64), 3);
	assert_int_equal(off[0], 3);
	assert_int_equal(off[1], 5);
	assert_int_equal(off[2], 7);
	/* vCPU 1's entries are still DIRTY: a reset takes vCPU 0's only */
	assert_int_equal(reset(&f), 3);
	assert_true(is_protected(&f, 3));
	assert_true(is_protected(&f, 5));
	assert_true(is_protected(&f, 7));
	assert_false(is_protected(&f, 9));
	assert_int_equal(collect(&f, &c, 1, off, 64), 1);
	assert_int_equal(off[0], 9);
	assert_int_equal(reset(&f), 1);
	assert_true(is_protected(&f, 9));
	/* nothing went to the bitmap */
	assert_int_equal(tdp_vm_get_dirty_log(f.vm, 0, 0, bm), 0);
	assert_int_equal(th_bm_count(bm, f.nwords), 0);
	/* written again: a new entry each */
	gwrite(&f, 1, 3, 3);
	gwrite(&f, 1, 5, 3);
	assert_int_equal(collect(&f, &c, 1, off, 64), 2);
	assert_int_equal(off[0], 3);
	assert_int_equal(off[1], 5);
	assert_int_equal(collect(&f, &c, 0, off, 64), 0);
	assert_int_equal(reset(&f), 2);
	st = th_vm_stats(f.vm);
	assert_int_equal(st.ring_pushes, 6);
	assert_int_equal(st.ring_resets, 6);
	assert_int_equal(st.ring_overflows, 0);
	if (flags & TDP_VM_PML)
		assert_int_equal(st.pml_logged, 6);
	free(bm);
	th_env_fini_empty(&f);
}

static void test_entries_wp(void **s)
{
	(void)s;
	entries(0);
}
static void test_entries_pml(void **s)
{
	(void)s;
	entries(PML);
}

/* A reset stops at the first entry not marked RESET, even if later ones
 * are: the ring is freed in order. */
static void test_reset_in_order(void **s)
{
	struct th_env f;
	struct tdp_dirty_gfn *ring;
	uint32_t size;

	(void)s;
	fx_init(&f, 0, 2 * MiB);
	for (uint64_t p = 0; p < 4; p++)
		gwrite(&f, 0, p, 1);
	assert_int_equal(tdp_vcpu_dirty_ring(f.v[0], &ring, &size), 0);
	/* harvest entries 0, 1 and 3, not 2 */
	for (unsigned i = 0; i < 4; i++)
		if (i != 2)
			__atomic_store_n(&ring[i].flags, TDP_DIRTY_GFN_RESET,
					 __ATOMIC_RELEASE);
	assert_int_equal(reset(&f), 2);
	assert_true(is_protected(&f, 0));
	assert_true(is_protected(&f, 1));
	assert_false(is_protected(&f, 2));
	assert_false(is_protected(&f, 3));
	assert_int_equal(ring[0].flags, 0);
	assert_int_equal(ring[3].flags, TDP_DIRTY_GFN_RESET);
	__atomic_store_n(&ring[2].flags, TDP_DIRTY_GFN_RESET, __ATOMIC_RELEASE);
	assert_int_equal(reset(&f), 2);
	assert_true(is_protected(&f, 2));
	assert_true(is_protected(&f, 3));
	th_env_fini_empty(&f);
}

/*
 * The soft limit: the write whose fault puts the (size - 64)th entry not
 * yet reset into the ring stops before its data (the vCPU exits instead
 * of entering again), and from then on every access of the vCPU fails with
 * -ENOSPC, reads too, transferring nothing; the other vCPU goes on; after
 * a harvest and a reset the access works.  Then the ring's entries are
 * reused from its start.
 */
static void test_soft_full(void **s)
{
	struct th_env f;
	struct collector c = {{0, 0}};
	uint64_t limit = RING - TDP_DIRTY_RING_RSVD_ENTRIES, w = 0;
	void *ptr;

	(void)s;
	fx_init(&f, 0, 8 * MiB); /* 2048 pages */
	for (uint64_t p = 0; p < limit - 1; p++)
		gwrite(&f, 0, p, 7);
	w = 0x55;
	/* its fault made the page writable and logged it, then the exit */
	assert_int_equal(
		tdp_vcpu_write(f.v[0], f.gpa + (limit - 1) * PG, &w, 8),
		-ENOSPC);
	assert_int_equal(th_vm_stats(f.vm).ring_pushes, limit);
	assert_int_equal(tdp_vcpu_read(f.v[0], f.gpa, &w, 8), -ENOSPC);
	assert_int_equal(w, 0x55); /* nothing transferred */
	assert_int_equal(tdp_vcpu_map(f.v[0], f.gpa, TDP_PROT_READ, &ptr),
			 -ENOSPC);
	assert_int_equal(tdp_vcpu_read(f.v[1], f.gpa + (limit - 1) * PG, &w, 8),
			 0);
	assert_int_equal(w, limit - 1); /* fx_init's content: not written */
	assert_int_equal(th_vm_stats(f.vm).ring_full_exits, 3);
	/* harvest all and reset: the access works again */
	assert_int_equal(collect(&f, &c, 0, NULL, 0), limit);
	assert_int_equal(reset(&f), limit);
	gwrite(&f, 0, limit - 1, 7);
	for (uint64_t p = limit; p < limit + 200; p++)
		gwrite(&f, 0, p, 7);
	/* the ring wrapped: entries from index RING on are at its start */
	assert_int_equal(collect(&f, &c, 0, NULL, 0), 201);
	assert_int_equal(reset(&f), 201);
	assert_int_equal(th_vm_stats(f.vm).ring_overflows, 0);
	th_env_fini_empty(&f);
}

/* Entries a VMM scribbled on (marked RESET with a memslot or offset that
 * is not there) are freed and change nothing. */
static void test_scribbled(void **s)
{
	struct th_env f;
	struct tdp_dirty_gfn *ring;
	uint32_t size;
	struct tdp_stats s0, s1;

	(void)s;
	fx_init(&f, 0, 2 * MiB);
	for (uint64_t p = 0; p < 5; p++)
		gwrite(&f, 0, p, 1);
	assert_int_equal(tdp_vcpu_dirty_ring(f.v[0], &ring, &size), 0);
	ring[0].slot = 1u << 16;   /* address space 1: the VM has one */
	ring[1].slot = 7;	   /* no memslot 7 */
	ring[2].slot = 0xffff;	   /* beyond any memslot id */
	ring[3].offset = f.npages; /* past the slot's end */
	ring[4].offset = ~0ull;
	for (unsigned i = 0; i < 5; i++)
		__atomic_store_n(&ring[i].flags, TDP_DIRTY_GFN_RESET,
				 __ATOMIC_RELEASE);
	/* and RESET on free entries: the reset stops at the last entry
	 * pushed, and the next push takes the entry back */
	ring[5].flags = TDP_DIRTY_GFN_RESET;
	ring[6].flags = TDP_DIRTY_GFN_DIRTY | TDP_DIRTY_GFN_RESET;
	s0 = th_vm_stats(f.vm);
	assert_int_equal(reset(&f), 5);
	s1 = th_vm_stats(f.vm);
	/* nothing re-protected, so no flush either */
	for (uint64_t p = 0; p < 5; p++)
		assert_false(is_protected(&f, p));
	assert_int_equal(s1.remote_tlb_flush, s0.remote_tlb_flush);
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(ring[i].flags, 0);
	assert_int_equal(reset(&f), 0);
	gwrite(&f, 0, 7, 1);
	assert_int_equal(ring[5].flags, TDP_DIRTY_GFN_DIRTY);
	assert_int_equal(ring[5].offset, 7);
	__atomic_store_n(&ring[5].flags, TDP_DIRTY_GFN_RESET, __ATOMIC_RELEASE);
	assert_int_equal(reset(&f), 1);
	/* the VMM lost track of pages 0-4: they are writable and in no
	 * log now (the audit would say so); take them away */
	assert_int_equal(tdp_vm_zap_gfn_range(f.vm, 0, f.gpa, 5 * PG), 0);
	th_env_fini_empty(&f);
}

/* What no vCPU wrote goes to the bitmap (with-bitmap): tdp_vm_mark_dirty;
 * the bitmap harvest re-protects it as usual. */
static void test_bitmap_beside(void **s)
{
	struct th_env f;
	struct collector c = {{0, 0}};
	uint64_t *bm;

	(void)s;
	fx_init(&f, 0, 2 * MiB);
	bm = th_bm_new(f.nwords);
	assert_int_equal(tdp_vm_mark_dirty(f.vm, 0, f.gpa + 10 * PG, 2 * PG),
			 0);
	gwrite(&f, 0, 20, 1);
	assert_int_equal(tdp_vm_get_dirty_log(f.vm, 0, 0, bm), 0);
	assert_int_equal(th_bm_count(bm, f.nwords), 2);
	assert_true(th_bm_test(bm, 10));
	assert_true(th_bm_test(bm, 11));
	assert_int_equal(collect(&f, &c, 0, NULL, 0), 1);
	assert_int_equal(reset(&f), 1);
	free(bm);
	th_env_fini_empty(&f);
}

/*
 * I7 with a ring: a slow write fault (the page zapped, so no fast path)
 * is held at mmu_lock while a reset queues behind it (the lock prefers
 * writers: the reset runs first).  The fault's entry is pushed in the
 * same read-locked section as its writable leaf, so a VMM that harvests
 * it and resets after the fault has the page re-protected; a write after
 * that reset makes a new entry.
 */
struct race {
	struct th_env *f;
	uint64_t n;
	int r;
};

static void *race_write(void *arg)
{
	struct race *x = arg;

	gwrite(x->f, 0, 0, 2);
	return NULL;
}

static void *race_reset(void *arg)
{
	struct race *x = arg;

	x->r = tdp_vm_reset_dirty_rings(x->f->vm, &x->n);
	return NULL;
}

static void slow_fault_vs_reset(unsigned flags)
{
	struct th_env f;
	struct collector c = {{0, 0}};
	struct race x;
	pthread_t tw, tr;

	fx_init(&f, flags, 2 * MiB);
	assert_int_equal(tdp_vm_zap_gfn_range(f.vm, 0, f.gpa, PG), 0);
	x = (struct race){.f = &f};
	tdp_write_lock(&f.vm->mmu.lock);
	assert_int_equal(pthread_create(&tw, NULL, race_write, &x), 0);
	usleep(100000); /* the fault reaches mmu_lock */
	assert_int_equal(pthread_create(&tr, NULL, race_reset, &x), 0);
	usleep(100000); /* the reset queues behind it */
	tdp_write_unlock(&f.vm->mmu.lock);
	assert_int_equal(pthread_join(tr, NULL), 0);
	assert_int_equal(pthread_join(tw, NULL), 0);
	assert_int_equal(x.r, 0);
	assert_int_equal(x.n, 0); /* nothing was harvested yet */
	/* the fault's entry; harvested and reset: the page is protected */
	assert_int_equal(collect(&f, &c, 0, NULL, 0), 1);
	assert_int_equal(reset(&f), 1);
	assert_true(is_protected(&f, 0));
	gwrite(&f, 1, 0, 3);
	assert_int_equal(collect(&f, &c, 1, NULL, 0), 1);
	assert_int_equal(reset(&f), 1);
	th_env_fini_empty(&f);
}

static void test_slow_fault_vs_reset_wp(void **s)
{
	(void)s;
	slow_fault_vs_reset(0);
}
static void test_slow_fault_vs_reset_pml(void **s)
{
	(void)s;
	slow_fault_vs_reset(PML);
}

/* A destroyed vCPU's ring goes with it, its entries not yet reset to the
 * bitmap (the page stays in the log); the other vCPU's ring stays. */
static void test_vcpu_destroy(void **s)
{
	struct th_env f;
	struct collector c = {{0, 0}};
	uint64_t *bm;

	(void)s;
	fx_init(&f, 0, 2 * MiB);
	bm = th_bm_new(f.nwords);
	gwrite(&f, 0, 1, 1);
	gwrite(&f, 1, 2, 1);
	tdp_vcpu_destroy(f.v[0]);
	assert_int_equal(tdp_vcpu_create(f.vm, 0, &f.v[0]), 0);
	assert_int_equal(collect(&f, &c, 0, NULL, 0), 0);
	assert_int_equal(collect(&f, &c, 1, NULL, 0), 1);
	assert_int_equal(reset(&f), 1);
	assert_int_equal(tdp_vm_get_dirty_log(f.vm, 0, 0, bm), 0);
	assert_int_equal(th_bm_count(bm, f.nwords), 1);
	assert_true(th_bm_test(bm, 1));
	assert_true(is_protected(&f, 1));
	free(bm);
	th_env_fini_empty(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_entries_wp),
		cmocka_unit_test(test_entries_pml),
		cmocka_unit_test(test_reset_in_order),
		cmocka_unit_test(test_soft_full),
		cmocka_unit_test(test_scribbled),
		cmocka_unit_test(test_bitmap_beside),
		cmocka_unit_test(test_slow_fault_vs_reset_wp),
		cmocka_unit_test(test_slow_fault_vs_reset_pml),
		cmocka_unit_test(test_vcpu_destroy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
