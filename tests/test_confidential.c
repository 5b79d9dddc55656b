/* SPDX-License-Identifier: MIT */
/*
 * test_confidential.c - confidential VMs (TDP_VM_CONFIDENTIAL, I11, I13):
 *  - configuration and memslot errors;
 *  - private and shared accesses reach different memory through different
 *    roots; an access of the wrong kind exits with -EPERM; conversions
 *    zap the old kind of mapping and keep the memory;
 *  - the host never touches guest-private memory; punching a hole zaps
 *    private mappings through the private invalidation path;
 *  - the fast zap leaves the mirror root alone; memslot delete and move
 *    zap the slot's private mappings; the audit compares the external
 *    table with the mirror root;
 *  - seed 003: memslot churn until the generation wraps, vCPUs running:
 *    every vCPU ends with a valid direct and mirror root, references exact;
 *  - the three injected bugs (Debug builds with TDP_INJECT) are caught.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "vm.h"

#define PG TDP_PAGE_SIZE
#define RW (TDP_PROT_READ | TDP_PROT_WRITE)
#define SHARED (1ull << 47) /* the default shared bit of a 4-level VM */
#define SLOT_GPA (1ull << 30)
#define SLOT_SIZE (4 * MiB)

struct env {
	struct tdp_host *h;
	struct tdp_vm *vm;
	struct tdp_vcpu *v[2];
	unsigned nv;
	uint64_t hva, phva; /* shared and private backing of slot 0 */
};

static void env_init_cfg(struct env *e, struct tdp_vm_config *cfg,
			 unsigned nv, int inject)
{
	struct tdp_memslot s = {.slot = 0,
				.gpa = SLOT_GPA,
				.size = SLOT_SIZE,
				.flags = TDP_MEM_PRIVATE};

	memset(e, 0, sizeof(*e));
	cfg->flags |= TDP_VM_CONFIDENTIAL;
	e->h = th_host_new(2 * GiB);
	assert_int_equal(tdp_vm_create(e->h, cfg, &e->vm), 0);
	e->vm->mmu.inject = inject;
	e->hva = th_host_map(e->h, SLOT_SIZE, RW, TDP_HUGE_2M);
	assert_int_equal(tdp_host_mmap(e->h, SLOT_SIZE, RW, PG,
				       TDP_MAP_GUEST_PRIVATE, &e->phva), 0);
	s.hva = e->hva;
	s.private_hva = e->phva;
	assert_int_equal(tdp_vm_set_memslot(e->vm, &s), 0);
	for (unsigned i = 0; i < nv; i++)
		assert_int_equal(tdp_vcpu_create(e->vm, i, &e->v[i]), 0);
	e->nv = nv;
}

static void env_init(struct env *e)
{
	struct tdp_vm_config cfg = { 0 };

	env_init_cfg(e, &cfg, 1, 0);
}

static void env_fini(struct env *e)
{
	for (unsigned i = 0; i < e->nv; i++)
		tdp_vcpu_destroy(e->v[i]);
	tdp_vm_destroy(e->vm);
	tdp_host_destroy(e->h);
}

static uint64_t rd_ok(struct tdp_vcpu *v, uint64_t gpa)
{
	uint64_t x = 0;

	assert_int_equal(tdp_vcpu_read(v, gpa, &x, 8), 0);
	return x;
}

static int convert(struct env *e, uint64_t gpa, uint64_t size, bool private)
{
	return tdp_vm_set_memory_attributes(e->vm, gpa, size,
					    private ? TDP_MEMATTR_PRIVATE : 0);
}

static bool mapped(struct env *e, uint64_t gpa)
{
	struct tdp_translation t;

	return tdp_vm_translate(e->vm, 0, gpa, &t) == 0;
}

/* ------------------------------------------------------------------ */
/* errors                                                              */
/* ------------------------------------------------------------------ */

static void test_config_errors(void **state)
{
	struct tdp_host *h;
	struct tdp_vm *vm;
	struct tdp_vm_config c = {.flags = TDP_VM_CONFIDENTIAL, .nr_as = 2};

	(void)state;
	assert_int_equal(tdp_host_create(NULL, &h), 0);
	assert_int_equal(tdp_vm_create(h, &c, &vm), -EINVAL); /* no SMM */
	c = (struct tdp_vm_config){.flags = TDP_VM_CONFIDENTIAL,
				   .shared_bit = 29};
	assert_int_equal(tdp_vm_create(h, &c, &vm), -EINVAL);
	c.shared_bit = 48; /* beyond a 48-bit gpa */
	assert_int_equal(tdp_vm_create(h, &c, &vm), -EINVAL);
	c = (struct tdp_vm_config){.shared_bit = 40}; /* not confidential */
	assert_int_equal(tdp_vm_create(h, &c, &vm), -EINVAL);
	c = (struct tdp_vm_config){.flags = TDP_VM_CONFIDENTIAL,
				   .root_level = 5,
				   .shared_bit = 56};
	assert_int_equal(tdp_vm_create(h, &c, &vm), 0);
	tdp_vm_destroy(vm);
	tdp_host_destroy(h);
}

static void test_memslot_errors(void **state)
{
	struct env e;
	struct tdp_memslot s;
	uint64_t other, phva2;
	struct tdp_host *h;
	struct tdp_vm *plain;

	(void)state;
	env_init(&e);
	other = th_host_map(e.h, SLOT_SIZE, RW, PG);
	assert_int_equal(tdp_host_mmap(e.h, SLOT_SIZE, RW, PG,
				       TDP_MAP_GUEST_PRIVATE, &phva2), 0);
	s = (struct tdp_memslot){.slot = 1, .gpa = 2 * GiB, .size = SLOT_SIZE,
				 .hva = other, .private_hva = phva2,
				 .flags = TDP_MEM_PRIVATE};
	s.flags |= TDP_MEM_READONLY;
	assert_int_equal(tdp_vm_set_memslot(e.vm, &s), -EINVAL);
	s.flags = TDP_MEM_PRIVATE | TDP_MEM_LOG_DIRTY;
	assert_int_equal(tdp_vm_set_memslot(e.vm, &s), -EINVAL);
	s.flags = TDP_MEM_PRIVATE;
	s.private_hva = phva2 + 8;
	assert_int_equal(tdp_vm_set_memslot(e.vm, &s), -EINVAL);
	s.private_hva = other; /* not guest-private */
	assert_int_equal(tdp_vm_set_memslot(e.vm, &s), -EFAULT);
	s.private_hva = phva2;
	s.hva = phva2; /* shared side in guest-private memory */
	assert_int_equal(tdp_vm_set_memslot(e.vm, &s), -EFAULT);
	s.hva = other;
	s.gpa = SHARED - SLOT_SIZE / 2; /* reaches the shared bit */
	assert_int_equal(tdp_vm_set_memslot(e.vm, &s), -EINVAL);
	s.gpa = 2 * GiB;
	assert_int_equal(tdp_vm_set_memslot(e.vm, &s), 0);
	/* an existing slot keeps its private memory and its kind */
	s.private_hva = e.phva;
	assert_int_equal(tdp_vm_set_memslot(e.vm, &s), -EINVAL);
	s.private_hva = phva2;
	s.flags = 0;
	assert_int_equal(tdp_vm_set_memslot(e.vm, &s), -EINVAL);
	/* conversions: only inside private slots, aligned, known bits */
	assert_int_equal(convert(&e, 0, PG, false), -EINVAL);
	assert_int_equal(convert(&e, SLOT_GPA + 1, PG, false), -EINVAL);
	assert_int_equal(convert(&e, SLOT_GPA, 0, false), -EINVAL);
	assert_int_equal(convert(&e, SLOT_GPA, SLOT_SIZE + PG, false),
			 -EINVAL);
	assert_int_equal(tdp_vm_set_memory_attributes(e.vm, SLOT_GPA, PG, 2),
			 -EINVAL);
	assert_int_equal(th_vm_stats(e.vm).conversions, 0);
	/* and not in a plain VM; TDP_MEM_PRIVATE neither */
	assert_int_equal(tdp_host_create(NULL, &h), 0);
	assert_int_equal(tdp_vm_create(h, NULL, &plain), 0);
	assert_int_equal(tdp_vm_set_memory_attributes(plain, SLOT_GPA, PG, 0),
			 -EINVAL);
	tdp_vm_destroy(plain);
	tdp_host_destroy(h);
	th_audit_clean(e.vm);
	env_fini(&e);
}

/* ------------------------------------------------------------------ */
/* accesses and conversions                                            */
/* ------------------------------------------------------------------ */

static void test_private_and_shared(void **state)
{
	struct env e;
	struct tdp_translation t;
	uint64_t x = 0, gpa = SLOT_GPA + 5 * PG;
	struct tdp_stats st;

	(void)state;
	env_init(&e);
	/* every page starts private */
	assert_int_equal(th_write64(e.v[0], gpa, 0x1111), 0);
	assert_int_equal(rd_ok(e.v[0], gpa), 0x1111);
	assert_int_equal(tdp_vcpu_read(e.v[0], gpa | SHARED, &x, 8), -EPERM);
	/* the host may not look at private memory */
	assert_int_equal(tdp_host_read(e.h, e.phva + 5 * PG, &x, 8), -EPERM);
	assert_int_equal(tdp_vm_translate(e.vm, 0, gpa, &t), 0);
	assert_int_equal(t.size, PG);
	assert_int_equal(tdp_vm_translate(e.vm, 0, gpa | SHARED, &t),
			 -ENOENT);
	st = th_vm_stats(e.vm);
	assert_int_equal(st.pf_private, 1);
	assert_int_equal(st.pf_attr_exit, 1);
	assert_int_equal(st.mirror_roots, 1);
	assert_true(st.ext_ops >= 2); /* tables and the leaf */
	assert_int_equal(st.ext_errors, 0);
	th_audit_clean(e.vm);

	/* to shared: the private mapping goes, the memory stays */
	assert_int_equal(convert(&e, gpa, PG, false), 0);
	assert_false(mapped(&e, gpa));
	assert_int_equal(tdp_vcpu_read(e.v[0], gpa, &x, 8), -EPERM);
	assert_int_equal(th_write64(e.v[0], gpa | SHARED, 0x2222), 0);
	assert_int_equal(tdp_host_read(e.h, e.hva + 5 * PG, &x, 8), 0);
	assert_int_equal(x, 0x2222);
	assert_true(mapped(&e, gpa | SHARED));
	th_audit_clean(e.vm);

	/* back to private: the shared mapping goes, private data is back */
	assert_int_equal(convert(&e, gpa, PG, true), 0);
	assert_false(mapped(&e, gpa | SHARED));
	assert_int_equal(tdp_vcpu_read(e.v[0], gpa | SHARED, &x, 8), -EPERM);
	assert_int_equal(rd_ok(e.v[0], gpa), 0x1111);
	assert_int_equal(th_vm_stats(e.vm).conversions, 2);
	th_audit_clean(e.vm);

	/* a private access with no private memory there: -EPERM, and a
	 * shared access with no memslot is MMIO */
	assert_int_equal(tdp_vcpu_read(e.v[0], 8 * GiB, &x, 8), -EPERM);
	assert_int_equal(tdp_vcpu_read(e.v[0], (8 * GiB) | SHARED, &x, 8),
			 -EFAULT);
	th_audit_clean(e.vm);
	env_fini(&e);
}

/* The TLB keeps the whole gpa: a private and a shared translation of
 * the same page never stand in for each other. */
static void test_tlb_keeps_kinds_apart(void **state)
{
	struct env e;
	uint64_t a = SLOT_GPA, b = SLOT_GPA + PG, x;

	(void)state;
	env_init(&e);
	assert_int_equal(convert(&e, b, PG, false), 0);
	assert_int_equal(th_write64(e.v[0], a, 0xaaaa), 0);
	assert_int_equal(th_write64(e.v[0], b | SHARED, 0xbbbb), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rd_ok(e.v[0], a), 0xaaaa);
		assert_int_equal(rd_ok(e.v[0], b | SHARED), 0xbbbb);
		assert_int_equal(tdp_vcpu_read(e.v[0], a | SHARED, &x, 8),
				 -EPERM);
		assert_int_equal(tdp_vcpu_read(e.v[0], b, &x, 8), -EPERM);
	}
	th_audit_clean(e.vm);
	env_fini(&e);
}

static void test_punch_hole(void **state)
{
	struct env e;
	struct tdp_host_stats hs0, hs1;

	(void)state;
	env_init(&e);
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(
			th_write64(e.v[0], SLOT_GPA + i * PG, 0x100 + i), 0);
	tdp_host_get_stats(e.h, &hs0);
	assert_int_equal(tdp_host_punch_hole(e.h, e.phva, 4 * PG), 0);
	tdp_host_get_stats(e.h, &hs1);
	assert_true(hs1.frames_used < hs0.frames_used);
	for (unsigned i = 0; i < 4; i++)
		assert_false(mapped(&e, SLOT_GPA + i * PG));
	assert_true(mapped(&e, SLOT_GPA + 4 * PG));
	th_audit_clean(e.vm);
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(rd_ok(e.v[0], SLOT_GPA + i * PG),
				 i < 4 ? 0 : 0x100 + i);
	th_audit_clean(e.vm);
	env_fini(&e);
}

/* The host remaps a backing with the other kind of memory after the
 * memslot was checked: accesses exit with -EFAULT, nothing is mapped. */
static void test_remapped_backing(void **state)
{
	struct env e;
	uint64_t x, hva;

	(void)state;
	env_init(&e);
	assert_int_equal(convert(&e, SLOT_GPA, PG, false), 0);
	assert_int_equal(tdp_host_munmap(e.h, e.hva, SLOT_SIZE), 0);
	hva = e.hva;
	assert_int_equal(tdp_host_mmap(e.h, SLOT_SIZE, RW, PG,
				       TDP_MAP_FIXED | TDP_MAP_GUEST_PRIVATE,
				       &hva), 0);
	assert_int_equal(tdp_vcpu_read(e.v[0], SLOT_GPA | SHARED, &x, 8),
			 -EFAULT);
	assert_int_equal(tdp_host_munmap(e.h, e.phva, SLOT_SIZE), 0);
	hva = e.phva;
	assert_int_equal(tdp_host_mmap(e.h, SLOT_SIZE, RW, PG, TDP_MAP_FIXED,
				       &hva), 0);
	assert_int_equal(tdp_vcpu_read(e.v[0], SLOT_GPA + PG, &x, 8),
			 -EFAULT);
	assert_false(mapped(&e, SLOT_GPA | SHARED));
	assert_false(mapped(&e, SLOT_GPA + PG));
	assert_int_equal(th_vm_stats(e.vm).frame_refs, 0);
	env_fini(&e);
}

/* Fast zap: direct roots only.  Memslot delete: the slot's private
 * mappings go under the write lock, the mirror root stays. */
static void test_fast_zap_and_delete(void **state)
{
	struct env e;
	struct tdp_stats st0, st;
	uint64_t p = SLOT_GPA, s = SLOT_GPA + PG;
	struct tdp_memslot del = {.slot = 0};

	(void)state;
	env_init(&e);
	assert_int_equal(convert(&e, s, PG, false), 0);
	assert_int_equal(th_write64(e.v[0], p, 1), 0);
	assert_int_equal(th_write64(e.v[0], s | SHARED, 2), 0);
	st0 = th_vm_stats(e.vm);
	assert_int_equal(tdp_vm_zap_all_fast(e.vm), 0);
	assert_true(mapped(&e, p));
	assert_false(mapped(&e, s | SHARED));
	st = th_vm_stats(e.vm);
	assert_int_equal(st.mirror_roots, 1);
	assert_int_equal(st.ext_ops, st0.ext_ops); /* untouched */
	th_audit_clean(e.vm);
	assert_int_equal(rd_ok(e.v[0], p), 1);
	assert_int_equal(rd_ok(e.v[0], s | SHARED), 2);
	th_audit_clean(e.vm);

	assert_int_equal(tdp_vm_set_memslot(e.vm, &del), 0);
	assert_false(mapped(&e, p));
	st = th_vm_stats(e.vm);
	assert_int_equal(st.mirror_roots, 1);
	assert_int_equal(st.ext_errors, 0);
	th_audit_clean(e.vm); /* the external table is empty again, too */
	env_fini(&e);
}

/* Moving a private slot: its private memory moves with it, attributes
 * too, and nothing stays mapped at the old gpa. */
static void test_move(void **state)
{
	struct env e;
	struct tdp_memslot mv = {.slot = 0, .gpa = 3 * GiB, .size = SLOT_SIZE,
				 .flags = TDP_MEM_PRIVATE};

	(void)state;
	env_init(&e);
	mv.hva = e.hva;
	mv.private_hva = e.phva;
	assert_int_equal(convert(&e, SLOT_GPA + PG, PG, false), 0);
	assert_int_equal(th_write64(e.v[0], SLOT_GPA, 7), 0);
	assert_int_equal(th_write64(e.v[0], (SLOT_GPA + PG) | SHARED, 8), 0);
	assert_int_equal(tdp_vm_set_memslot(e.vm, &mv), 0);
	assert_false(mapped(&e, SLOT_GPA));
	assert_int_equal(rd_ok(e.v[0], 3 * GiB), 7);
	assert_int_equal(rd_ok(e.v[0], (3 * GiB + PG) | SHARED), 8);
	th_audit_clean(e.vm);
	env_fini(&e);
}

/* ------------------------------------------------------------------ */
/* seed 003: generation wraps with vCPUs running                        */
/* ------------------------------------------------------------------ */

struct runner {
	struct env *e;
	unsigned id;
	atomic_bool *stop;
	int err;
};

static void *vcpu_loop(void *arg)
{
	struct runner *r = arg;
	struct tdp_vcpu *v = r->e->v[r->id];
	uint64_t n = 0;

	/* page 2*id private, 2*id+1 shared (converted by the main thread
	 * before start) */
	while (!atomic_load(r->stop)) {
		uint64_t p = SLOT_GPA + 2 * r->id * PG;
		uint64_t s = (p + PG) | SHARED, x = 0;

		if (th_write64(v, p, n) || tdp_vcpu_read(v, p, &x, 8) ||
		    x != n || th_write64(v, s, ~n) ||
		    tdp_vcpu_read(v, s, &x, 8) || x != ~n) {
			r->err = 1;
			break;
		}
		n++;
	}
	return NULL;
}

static void run_generation_wraps(struct env *e, unsigned min_wraps)
{
	pthread_t t[2];
	struct runner r[2];
	atomic_bool stop = false;
	uint64_t other;
	struct tdp_memslot s = {.slot = 9, .gpa = 6 * GiB, .size = 64 * PG};

	other = th_host_map(e->h, 64 * PG, RW, PG);
	s.hva = other;
	assert_int_equal(convert(e, SLOT_GPA + PG, PG, false), 0);
	assert_int_equal(convert(e, SLOT_GPA + 3 * PG, PG, false), 0);
	for (unsigned i = 0; i < 2; i++) {
		r[i] = (struct runner){ e, i, &stop, 0 };
		pthread_create(&t[i], NULL, vcpu_loop, &r[i]);
	}
	while (th_vm_stats(e->vm).mmio_gen_wraps < min_wraps) {
		s.size = 64 * PG;
		assert_int_equal(tdp_vm_set_memslot(e->vm, &s), 0);
		s.size = 0;
		assert_int_equal(tdp_vm_set_memslot(e->vm, &s), 0);
	}
	atomic_store(&stop, true);
	for (unsigned i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(r[i].err, 0);
	}
}

static void test_seed003_generation_wrap(void **state)
{
	struct env e;
	struct tdp_vm_config cfg = {.mmio_gen_bits = 1};
	struct tdp_stats st;

	(void)state;
	env_init_cfg(&e, &cfg, 2, 0);
	run_generation_wraps(&e, 20);
	/* let each vCPU take its pending reload, then check its roots */
	for (unsigned i = 0; i < 2; i++) {
		(void)rd_ok(e.v[i], SLOT_GPA + 2 * i * PG);
		assert_non_null(e.v[i]->root[0]);
		assert_non_null(e.v[i]->mirror_root);
		assert_false(root_invalid(e.v[i]->root[0]));
		assert_false(root_invalid(e.v[i]->mirror_root));
	}
	st = th_vm_stats(e.vm);
	assert_true(st.fast_zaps >= 20);
	assert_int_equal(st.mirror_roots, 1);
	assert_int_equal(st.ext_errors, 0);
	th_audit_clean(e.vm); /* exact root references (I3, I11) */
	env_fini(&e);
}

/* ------------------------------------------------------------------ */
/* the injected bugs are caught                                        */
/* ------------------------------------------------------------------ */

#if TDP_INJECT_AVAILABLE
/* The audit's problem count; its report in @rep, printed too. */
static int audit(struct env *e, char *rep, size_t len)
{
	int n = tdp_vm_audit(e->vm, rep, len);

	if (n)
		fprintf(stderr, "audit: %d problem(s):\n%s", n, rep);
	return n;
}

/* Seed 003 before the fix: the mirror root is loaded again whenever the
 * direct root is missing, taking a second reference; the audit's exact
 * reference count catches it. */
/* Pre-faulting (tdp_vcpu_pre_fault_memory): the gpa is given without the
 * shared bit and each page is mapped as its attribute says, private pages
 * in the mirror root, shared ones through the shared alias; a gpa with
 * the shared bit is outside the memslots' gfns. */
static void test_prefault(void **state)
{
	struct tdp_translation t;
	struct env e;
	uint64_t m;

	(void)state;
	env_init(&e);
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], SLOT_GPA | SHARED,
						   PG, 0, &m),
			 -EINVAL);
	assert_int_equal(convert(&e, SLOT_GPA + 8 * PG, 8 * PG, false), 0);
	assert_int_equal(tdp_vcpu_pre_fault_memory(e.v[0], SLOT_GPA, 16 * PG,
						   0, &m),
			 0);
	assert_int_equal(m, 16 * PG);
	for (uint64_t i = 0; i < 16; i++) {
		uint64_t gpa = SLOT_GPA + i * PG;

		if (i < 8) { /* private: the mirror root, never huge */
			assert_int_equal(tdp_vm_translate(e.vm, 0, gpa, &t), 0);
			assert_int_equal(t.size, PG);
			assert_false(mapped(&e, gpa | SHARED));
		} else {
			assert_true(mapped(&e, gpa | SHARED));
			assert_false(mapped(&e, gpa));
		}
	}
	/* the pages read as mapped: no fault */
	struct tdp_stats s0 = th_vm_stats(e.vm);

	rd_ok(e.v[0], SLOT_GPA);
	rd_ok(e.v[0], (SLOT_GPA + 8 * PG) | SHARED);
	assert_int_equal(th_vm_stats(e.vm).pf_taken, s0.pf_taken);
	th_audit_clean(e.vm);
	env_fini(&e);
}

static void test_inject_mirror_reload(void **state)
{
	struct env e;
	struct tdp_vm_config cfg = { 0 };
	char rep[2048] = "";

	(void)state;
	env_init_cfg(&e, &cfg, 1, INJ_MIRROR_RELOAD_WITH_DIRECT);
	assert_int_equal(th_write64(e.v[0], SLOT_GPA, 1), 0);
	assert_int_equal(tdp_vm_zap_all_fast(e.vm), 0);
	assert_int_equal(rd_ok(e.v[0], SLOT_GPA), 1);
	assert_true(audit(&e, rep, sizeof(rep)) > 0);
	assert_non_null(strstr(rep, "refcount"));
	/* let teardown succeed: drop the leaked reference */
	atomic_fetch_sub(&e.v[0]->mirror_root->refcount, 1);
	env_fini(&e);
}

/* Run @inject: map a private page, then @trigger; the external table
 * must have refused, the VM be dead (-EIO at @gpa), the audit say so. */
static void expect_dead(int inject, void (*trigger)(struct env *e),
			uint64_t gpa)
{
	struct env e;
	struct tdp_vm_config cfg = { 0 };
	char rep[2048] = "";
	uint64_t x;

	env_init_cfg(&e, &cfg, 1, inject);
	assert_int_equal(th_write64(e.v[0], SLOT_GPA, 1), 0);
	trigger(&e);
	assert_true(th_vm_stats(e.vm).ext_errors > 0);
	assert_int_equal(tdp_vcpu_read(e.v[0], gpa, &x, 8), -EIO);
	assert_true(audit(&e, rep, sizeof(rep)) > 0);
	assert_non_null(strstr(rep, "external table"));
	env_fini(&e);
}

static void fast_zap(struct env *e)
{
	assert_int_equal(tdp_vm_zap_all_fast(e->vm), 0);
}

static void to_shared(struct env *e)
{
	assert_int_equal(convert(e, SLOT_GPA, PG, false), 0);
}

/* A fast zap that takes the mirror root too zaps it under the read lock:
 * the external table refuses, the VM is dead. */
static void test_inject_fast_zap_mirror(void **state)
{
	(void)state;
	expect_dead(INJ_FAST_ZAP_MIRROR, fast_zap, SLOT_GPA);
}

/* A conversion that zaps private leaves under the read lock. */
static void test_inject_mirror_zap_shared(void **state)
{
	(void)state;
	expect_dead(INJ_MIRROR_ZAP_SHARED, to_shared, SLOT_GPA | SHARED);
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_memslot_errors),
		cmocka_unit_test(test_private_and_shared),
		cmocka_unit_test(test_tlb_keeps_kinds_apart),
		cmocka_unit_test(test_punch_hole),
		cmocka_unit_test(test_remapped_backing),
		cmocka_unit_test(test_fast_zap_and_delete),
		cmocka_unit_test(test_move),
		cmocka_unit_test(test_seed003_generation_wrap),
#if TDP_INJECT_AVAILABLE
		cmocka_unit_test(test_prefault),
		cmocka_unit_test(test_inject_mirror_reload),
		cmocka_unit_test(test_inject_fast_zap_mirror),
		cmocka_unit_test(test_inject_mirror_zap_shared),
#endif
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
