/* SPDX-License-Identifier: MIT */
/*
 * test_mmio.c - MMIO entries stamped with the memslot generation, the
 * generation wrap (I10) and tdp_vm_zap_all_fast:
 *  - an access with no memslot installs one MMIO entry; later accesses to
 *    that gpa exit through it (mmio_fast) until a memslot update makes its
 *    generation old;
 *  - a memslot created over a gpa that has an MMIO entry is reached at once,
 *    never a stale MMIO exit, also with 1- and 2-bit generations that wrap
 *    all the time, and with vCPU threads running while the slot comes and
 *    goes;
 *  - tdp_vm_zap_all_fast: nothing mapped before it is reachable, vCPUs
 *    reload roots and see the same data, nothing leaks; memslot delete and
 *    move use it;
 *  - two address spaces (SMM) with different memory at one gpa;
 *  - errors: mmio_gen_bits out of range, NULL vm.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "host/host.h"

#define PG TDP_PAGE_SIZE
#define RW (TDP_PROT_READ | TDP_PROT_WRITE)

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static void slot_del(struct th_env *e, unsigned as, unsigned id)
{
	th_set_slot(e->vm, as, id, 0, 0, 0, 0);
}

/* The tag kept in the first word of the host page at @hva in round @gen. */
static uint64_t tag(uint64_t hva, uint64_t gen)
{
	return th_pattern(hva, gen + 0x5a5a, 0);
}

/* Write the round-@gen tags into the @n pages at @hva (host side). */
static void tag_pages(struct th_env *e, uint64_t hva, unsigned n, uint64_t gen)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t t = tag(hva + i * PG, gen);

		assert_int_equal(tdp_host_write(e->h, hva + i * PG, &t, 8), 0);
	}
}

/* The guest reads @want at @gpa. */
static void expect_val(struct tdp_vcpu *v, uint64_t gpa, uint64_t want)
{
	uint64_t x;
	int r = th_read64(v, gpa, &x);

	if (r != 0 || x != want)
		fail_msg("read of gpa %#llx: ret %d value %#llx, expected 0 "
			 "and %#llx",
			 (unsigned long long)gpa, r, (unsigned long long)x,
			 (unsigned long long)want);
}

static void expect_mmio_read(struct tdp_vcpu *v, uint64_t gpa)
{
	uint64_t x;
	int r = th_read64(v, gpa, &x);

	if (r != -EFAULT)
		fail_msg("read of gpa %#llx: ret %d (value %#llx), expected "
			 "-EFAULT (MMIO)",
			 (unsigned long long)gpa, r, (unsigned long long)x);
}

static void expect_mmio_write(struct tdp_vcpu *v, uint64_t gpa)
{
	int r = th_write64(v, gpa, 0x1234567);

	if (r != -EFAULT)
		fail_msg("write of gpa %#llx: ret %d, expected -EFAULT (MMIO)",
			 (unsigned long long)gpa, r);
}

/* ------------------------------------------------------------------ */
/* 1. MMIO entries and the fast MMIO exit                              */
/* ------------------------------------------------------------------ */

static void test_mmio_entry(void **state)
{
	/* two gpas under different root entries (512 GiB apart), so they
	 * can never share one MMIO entry whatever its level */
	const uint64_t x1 = 3 * GiB + 5 * PG, x2 = (1ull << 40) + 7 * PG;
	struct tdp_translation tr;
	struct th_env e;
	struct tdp_stats s0, s;
	uint64_t hva, buf[4];
	unsigned nacc = 0;

	(void)state;
	th_env_init(&e, 4 * GiB, NULL, 1);
	hva = th_host_map(e.h, MiB, RW, PG);
	tag_pages(&e, hva, 256, 1);
	th_set_slot(e.vm, 0, 0, 0, MiB, hva, 0);
	expect_val(e.v[0], 0, tag(hva, 1));

	s0 = th_vm_stats(e.vm);
	assert_int_equal(s0.pf_mmio_spte_created, 0);
	assert_int_equal(s0.mmio_fast, 0);

	/* first access: the slow path installs one entry */
	expect_mmio_read(e.v[0], x1);
	nacc++;
	s = th_vm_stats(e.vm);
	assert_int_equal(s.pf_mmio_spte_created, 1);
	assert_int_equal(s.mmio_fast, 0);
	/* an MMIO entry is not a mapping */
	assert_int_equal(tdp_vm_translate(e.vm, 0, x1, &tr), -ENOENT);

	/* 10 more reads: served by the entry, no new entry */
	for (unsigned i = 0; i < 10; i++, nacc++)
		expect_mmio_read(e.v[0], x1 + (i % 2) * 8);
	s = th_vm_stats(e.vm);
	assert_int_equal(s.pf_mmio_spte_created, 1);
	assert_true(s.mmio_fast >= 10);
	/* writes and fetches too */
	for (unsigned i = 0; i < 10; i++, nacc++)
		expect_mmio_write(e.v[0], x1);
	assert_int_equal(tdp_vcpu_fetch(e.v[0], x1, buf, 8), -EFAULT);
	nacc++;
	s = th_vm_stats(e.vm);
	assert_int_equal(s.pf_mmio_spte_created, 1);
	assert_true(s.mmio_fast >= 21);
	/* every one of them was an MMIO exit */
	assert_int_equal(s.pf_mmio, s0.pf_mmio + nacc);

	/* a write first, at another gpa: a second entry */
	expect_mmio_write(e.v[0], x2);
	nacc++;
	s = th_vm_stats(e.vm);
	assert_int_equal(s.pf_mmio_spte_created, 2);
	assert_true(s.mmio_fast >= 21);
	uint64_t f = s.mmio_fast;

	for (unsigned i = 0; i < 5; i++, nacc++)
		expect_mmio_read(e.v[0], x2);
	s = th_vm_stats(e.vm);
	assert_int_equal(s.pf_mmio_spte_created, 2);
	assert_true(s.mmio_fast >= f + 5);
	assert_int_equal(s.pf_mmio, s0.pf_mmio + nacc);

	/* the memory next to it is unaffected */
	expect_val(e.v[0], 0, tag(hva, 1));
	th_audit_clean(e.vm);

	/* a memslot update elsewhere changes the generation: the old entry
	 * is a miss (slow path), a new entry may be installed */
	uint64_t hva2 = th_host_map(e.h, 16 * PG, RW, PG);

	tag_pages(&e, hva2, 16, 2);
	th_set_slot(e.vm, 0, 1, 8 * MiB, 16 * PG, hva2, 0);
	s0 = th_vm_stats(e.vm);
	expect_mmio_read(e.v[0], x1);
	s = th_vm_stats(e.vm);
	if (s.mmio_fast != s0.mmio_fast)
		fail_msg("an MMIO entry of the previous memslot generation "
			 "was used as current (mmio_fast %llu -> %llu)",
			 (unsigned long long)s0.mmio_fast,
			 (unsigned long long)s.mmio_fast);
	assert_int_equal(s.pf_mmio, s0.pf_mmio + 1);
	if (s.pf_mmio_spte_created > s0.pf_mmio_spte_created) {
		/* a new current entry: the next access uses it */
		expect_mmio_read(e.v[0], x1);
		assert_int_equal(th_vm_stats(e.vm).mmio_fast, s.mmio_fast + 1);
	}
	/* x2's entry is old too */
	s0 = th_vm_stats(e.vm);
	expect_mmio_write(e.v[0], x2);
	assert_int_equal(th_vm_stats(e.vm).mmio_fast, s0.mmio_fast);
	expect_val(e.v[0], 8 * MiB + 3 * PG, tag(hva2 + 3 * PG, 2));
	expect_val(e.v[0], PG, tag(hva + PG, 1));
	assert_int_equal(tdp_vm_translate(e.vm, 0, x1, &tr), -ENOENT);
	assert_int_equal(tdp_vm_translate(e.vm, 0, x2, &tr), -ENOENT);
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

/* ------------------------------------------------------------------ */
/* 2. a stale MMIO entry is never used (single thread, wrapping gens)  */
/* ------------------------------------------------------------------ */

static void stale_mmio_loop(unsigned bits)
{
	struct tdp_vm_config cfg = {.mmio_gen_bits = bits};
	const uint64_t xbase = 0x40000000ull + 0x200000ull, x = xbase + PG;
	const uint64_t ugpa = 0x10000000ull;
	struct th_env e;
	uint64_t ha, hb, hu, val;
	unsigned deletes = 0, ro = 0;
	struct tdp_stats s0, s;

	th_env_init(&e, 4 * GiB, &cfg, 1);
	ha = th_host_map(e.h, 4 * PG, RW, PG);
	hb = th_host_map(e.h, 4 * PG, RW, PG);
	hu = th_host_map(e.h, 4 * PG, RW, PG);
	tag_pages(&e, hu, 4, 77);
	/* an unrelated slot whose flags we toggle: generation changes
	 * without a fast zap */
	th_set_slot(e.vm, 0, 2, ugpa, 4 * PG, hu, 0);

	for (unsigned it = 0; it < 50; it++) {
		const uint64_t hx = it % 2 ? hb : ha, hy = it % 2 ? ha : hb;
		const unsigned extra = it % 4;

		tag_pages(&e, ha, 4, 2 * it);
		tag_pages(&e, hb, 4, 2 * it + 1);

		/* X is MMIO, and has a current MMIO entry */
		s0 = th_vm_stats(e.vm);
		expect_mmio_read(e.v[0], x);
		expect_mmio_write(e.v[0], x);
		expect_mmio_read(e.v[0], x);
		s = th_vm_stats(e.vm);
		if (s.mmio_fast < s0.mmio_fast + 2)
			fail_msg("gen_bits %u iter %u: repeated MMIO accesses "
				 "not served by an MMIO entry (mmio_fast %llu "
				 "-> %llu)",
				 bits, it, (unsigned long long)s0.mmio_fast,
				 (unsigned long long)s.mmio_fast);
		/* a few more generations, an access in each */
		for (unsigned k = 0; k < extra; k++) {
			th_set_slot(e.vm, 0, 2, ugpa, 4 * PG, hu,
				    (++ro % 2) ? TDP_MEM_READONLY : 0);
			expect_mmio_read(e.v[0], x);
			expect_mmio_read(e.v[0], x);
		}

		/* a slot over X: the guest reaches memory at once */
		th_set_slot(e.vm, 0, 1, xbase, 4 * PG, hx, 0);
		expect_val(e.v[0], x, tag(hx + PG, it % 2 ? 2 * it + 1
							   : 2 * it));
		expect_val(e.v[0], xbase, tag(hx, it % 2 ? 2 * it + 1
							 : 2 * it));
		assert_int_equal(th_write64(e.v[0], x + 8, 0xabc0000ull + it),
				 0);
		assert_int_equal(th_read64(e.v[0], x + 8, &val), 0);
		assert_int_equal(val, 0xabc0000ull + it);
		assert_int_equal(tdp_host_read(e.h, hx + PG + 8, &val, 8), 0);
		assert_int_equal(val, 0xabc0000ull + it);

		/* deleted: MMIO again */
		slot_del(&e, 0, 1);
		deletes++;
		expect_mmio_read(e.v[0], x);
		expect_mmio_write(e.v[0], x);
		expect_mmio_read(e.v[0], xbase + 3 * PG);
		for (unsigned k = 0; k < extra; k++) {
			th_set_slot(e.vm, 0, 2, ugpa, 4 * PG, hu,
				    (++ro % 2) ? TDP_MEM_READONLY : 0);
			expect_mmio_read(e.v[0], x);
		}

		/* re-created over other memory: the new content */
		th_set_slot(e.vm, 0, 1, xbase, 4 * PG, hy, 0);
		expect_val(e.v[0], x, tag(hy + PG, it % 2 ? 2 * it
							   : 2 * it + 1));
		expect_val(e.v[0], xbase + 3 * PG,
			   tag(hy + 3 * PG, it % 2 ? 2 * it : 2 * it + 1));
		slot_del(&e, 0, 1);
		deletes++;
		expect_mmio_read(e.v[0], x);
		/* the unrelated slot is still fine */
		expect_val(e.v[0], ugpa + 2 * PG, tag(hu + 2 * PG, 77));
	}
	s = th_vm_stats(e.vm);
	fprintf(stderr,
		"gen_bits %u: %u deletes, fast_zaps %llu, mmio_gen_wraps %llu, "
		"mmio entries %llu, mmio_fast %llu\n",
		bits, deletes, (unsigned long long)s.fast_zaps,
		(unsigned long long)s.mmio_gen_wraps,
		(unsigned long long)s.pf_mmio_spte_created,
		(unsigned long long)s.mmio_fast);
	assert_true(s.fast_zaps >= deletes);
	if (bits && bits <= 2) {
		assert_true(s.mmio_gen_wraps > 0);
		assert_true(s.fast_zaps >= s.mmio_gen_wraps);
	} else {
		/* 18 bits: a few hundred updates never wrap */
		assert_int_equal(s.mmio_gen_wraps, 0);
	}
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

static void test_stale_mmio_bits1(void **state)
{
	(void)state;
	stale_mmio_loop(1);
}

static void test_stale_mmio_bits2(void **state)
{
	(void)state;
	stale_mmio_loop(2);
}

static void test_stale_mmio_default(void **state)
{
	(void)state;
	stale_mmio_loop(0);
}

/* ------------------------------------------------------------------ */
/* 3. churn: vCPU threads while a slot comes and goes                  */
/* ------------------------------------------------------------------ */

#define CH_NV	    2
#define CH_PAGES    16		   /* permanent pages per vCPU */
#define CH_TGPA	    0x4000000ull   /* the toggled slot (4 pages) */
#define CH_MMIO	    0x8000000ull   /* never a slot */
#define CH_UGPA	    0xc000000ull   /* an unrelated slot, flags toggled */
#define CH_NS	    2000000000ull  /* 2 s */

struct churn {
	struct th_env *e;
	uint64_t hperm, ha, hb;
	/* even: stable; phase / 2 = state number; state % 6: 0 absent,
	 * 1 absent (an unrelated slot's flags changed: one more generation
	 * with MMIO entries at the gpa), 2 slot over ha, 3 absent, 4 absent
	 * (flags again), 5 slot over hb */
	_Atomic uint64_t phase;
	atomic_bool stop;
};

struct churn_cpu {
	struct churn *c;
	unsigned id;
	uint64_t shadow[CH_PAGES];
	uint64_t checked_present, checked_absent, unchecked, ops;
	char err[256];
};

static void *churn_main(void *arg)
{
	struct churn_cpu *cc = arg;
	struct churn *c = cc->c;
	struct tdp_vcpu *v = c->e->v[cc->id];
	const uint64_t pbase = (uint64_t)cc->id * CH_PAGES * PG;
	uint64_t seed = 0x1234567ull + cc->id, x;
	int r;

	for (uint64_t it = 1; !atomic_load(&c->stop); it++) {
		unsigned p = th_rand(&seed) % CH_PAGES;
		unsigned q = th_rand(&seed) % CH_PAGES;
		uint64_t val = ((uint64_t)cc->id << 56) | (it << 8) | p;

		/* own pages in the permanent slot */
		r = th_write64(v, pbase + p * PG, val);
		if (r) {
			snprintf(cc->err, sizeof(cc->err),
				 "vcpu %u: write perm page %u: %d", cc->id, p,
				 r);
			break;
		}
		cc->shadow[p] = val;
		r = th_read64(v, pbase + q * PG, &x);
		if (r || x != cc->shadow[q]) {
			snprintf(cc->err, sizeof(cc->err),
				 "vcpu %u: perm page %u: ret %d value %#llx, "
				 "expected %#llx",
				 cc->id, q, r, (unsigned long long)x,
				 (unsigned long long)cc->shadow[q]);
			break;
		}

		/* the toggled slot, with an exact expectation if no update
		 * overlapped the access */
		unsigned tp = th_rand(&seed) % 4;
		uint64_t p1 = atomic_load(&c->phase);

		r = th_read64(v, CH_TGPA + tp * PG, &x);
		uint64_t p2 = atomic_load(&c->phase);
		uint64_t ea = tag(c->ha + tp * PG, 1),
			 eb = tag(c->hb + tp * PG, 2);

		if (p1 == p2 && !(p1 & 1)) {
			unsigned st = (p1 / 2) % 6;
			uint64_t want = st == 2 ? ea : eb;

			if (st != 2 && st != 5) {
				cc->checked_absent++;
				if (r != -EFAULT) {
					snprintf(cc->err, sizeof(cc->err),
						 "vcpu %u: phase %llu (slot "
						 "absent): read ret %d value "
						 "%#llx, expected -EFAULT",
						 cc->id,
						 (unsigned long long)p1, r,
						 (unsigned long long)x);
					break;
				}
			} else {
				cc->checked_present++;
				if (r != 0 || x != want) {
					snprintf(cc->err, sizeof(cc->err),
						 "vcpu %u: phase %llu (slot "
						 "over %s): read ret %d value "
						 "%#llx, expected 0 and %#llx",
						 cc->id,
						 (unsigned long long)p1,
						 st == 2 ? "A" : "B", r,
						 (unsigned long long)x,
						 (unsigned long long)want);
					break;
				}
			}
		} else {
			cc->unchecked++;
			if (!(r == -EFAULT || (r == 0 && (x == ea || x == eb)))) {
				snprintf(cc->err, sizeof(cc->err),
					 "vcpu %u: during an update: read ret "
					 "%d value %#llx",
					 cc->id, r, (unsigned long long)x);
				break;
			}
		}

		/* a gpa that is always MMIO */
		r = th_read64(v, CH_MMIO + (it % 3) * PG, &x);
		if (r != -EFAULT) {
			snprintf(cc->err, sizeof(cc->err),
				 "vcpu %u: MMIO gpa read ret %d value %#llx",
				 cc->id, r, (unsigned long long)x);
			break;
		}
		cc->ops++;
	}
	return NULL;
}

static void test_churn_threads(void **state)
{
	struct tdp_vm_config cfg = {.mmio_gen_bits = 1, .max_vcpus = 4};
	struct th_env e;
	struct churn c;
	struct churn_cpu cc[CH_NV];
	pthread_t t[CH_NV];
	unsigned creates = 0, deletes = 0, toggles = 0;
	uint64_t start, hu;

	(void)state;
	th_env_init(&e, 4 * GiB, &cfg, CH_NV);
	memset(&c, 0, sizeof(c));
	c.e = &e;
	c.hperm = th_host_map(e.h, CH_NV * CH_PAGES * PG, RW, PG);
	c.ha = th_host_map(e.h, 4 * PG, RW, PG);
	c.hb = th_host_map(e.h, 4 * PG, RW, PG);
	tag_pages(&e, c.ha, 4, 1);
	tag_pages(&e, c.hb, 4, 2);
	th_set_slot(e.vm, 0, 0, 0, CH_NV * CH_PAGES * PG, c.hperm, 0);
	hu = th_host_map(e.h, PG, RW, PG);
	th_set_slot(e.vm, 0, 2, CH_UGPA, PG, hu, 0);
	atomic_init(&c.phase, 0);
	atomic_init(&c.stop, false);

	for (unsigned i = 0; i < CH_NV; i++) {
		memset(&cc[i], 0, sizeof(cc[i]));
		cc[i].c = &c;
		cc[i].id = i;
		assert_int_equal(pthread_create(&t[i], NULL, churn_main, &cc[i]),
				 0);
	}
	start = th_now_ns();
	while (th_now_ns() - start < CH_NS) {
		uint64_t ph = atomic_load(&c.phase);
		unsigned next = (ph / 2 + 1) % 6;
		int r;

		usleep(300);
		atomic_store(&c.phase, ph + 1); /* update in progress */
		if (next == 0 || next == 3) {
			r = th_try_set_slot(e.vm, 0, 1, 0, 0, 0, 0);
			deletes++;
		} else if (next == 1 || next == 4) {
			r = th_try_set_slot(e.vm, 0, 2, CH_UGPA, PG, hu,
					    ++toggles % 2 ? TDP_MEM_READONLY
							  : 0);
		} else {
			r = th_try_set_slot(e.vm, 0, 1, CH_TGPA, 4 * PG,
					    next == 2 ? c.ha : c.hb, 0);
			creates++;
		}
		atomic_store(&c.phase, ph + 2); /* done */
		if (r) {
			atomic_store(&c.stop, true);
			for (unsigned i = 0; i < CH_NV; i++)
				pthread_join(t[i], NULL);
			fail_msg("memslot update to state %u: %d", next, r);
		}
		bool failed = false;

		for (unsigned i = 0; i < CH_NV; i++)
			failed |= cc[i].err[0] != 0;
		if (failed)
			break;
	}
	atomic_store(&c.stop, true);
	for (unsigned i = 0; i < CH_NV; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);

	struct tdp_stats s = th_vm_stats(e.vm);
	uint64_t present = 0, absent = 0;

	for (unsigned i = 0; i < CH_NV; i++) {
		if (cc[i].err[0])
			fail_msg("%s (after %u creates, %u deletes)", cc[i].err,
				 creates, deletes);
		present += cc[i].checked_present;
		absent += cc[i].checked_absent;
		fprintf(stderr,
			"vcpu %u: %llu ops, %llu present / %llu absent "
			"checked, %llu during updates\n",
			i, (unsigned long long)cc[i].ops,
			(unsigned long long)cc[i].checked_present,
			(unsigned long long)cc[i].checked_absent,
			(unsigned long long)cc[i].unchecked);
	}
	fprintf(stderr,
		"%u creates, %u deletes, %u flag toggles; fast_zaps %llu, "
		"mmio_gen_wraps %llu, mmio entries %llu, mmio_fast %llu, "
		"root_reloads %llu\n",
		creates, deletes, toggles, (unsigned long long)s.fast_zaps,
		(unsigned long long)s.mmio_gen_wraps,
		(unsigned long long)s.pf_mmio_spte_created,
		(unsigned long long)s.mmio_fast,
		(unsigned long long)s.root_reloads);
	assert_true(present > 0);
	assert_true(absent > 0);
	assert_true(deletes > 10);
	assert_true(s.fast_zaps >= deletes);
	assert_true(s.mmio_gen_wraps > 0);
	assert_true(s.pf_mmio_spte_created > 0);
	assert_true(s.mmio_fast > 0);

	/* the permanent slot holds exactly what the vCPUs last wrote */
	for (unsigned i = 0; i < CH_NV; i++)
		for (unsigned p = 0; p < CH_PAGES; p++) {
			uint64_t x;

			assert_int_equal(
				tdp_host_read(e.h,
					      c.hperm + (i * CH_PAGES + p) * PG,
					      &x, 8),
				0);
			assert_int_equal(x, cc[i].shadow[p]);
		}
	/* the toggled slot's memory was never written */
	for (unsigned p = 0; p < 4; p++) {
		uint64_t x;

		assert_int_equal(tdp_host_read(e.h, c.ha + p * PG, &x, 8), 0);
		assert_int_equal(x, tag(c.ha + p * PG, 1));
		assert_int_equal(tdp_host_read(e.h, c.hb + p * PG, &x, 8), 0);
		assert_int_equal(x, tag(c.hb + p * PG, 2));
	}
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

/* ------------------------------------------------------------------ */
/* 4. tdp_vm_zap_all_fast                                              */
/* ------------------------------------------------------------------ */

#define ZF_GPA	 (64 * MiB)
#define ZF_SIZE	 (64 * MiB)
#define ZF_PAGES (ZF_SIZE / PG)

static void test_zap_all_fast(void **state)
{
	struct th_env e;
	struct tdp_translation tr;
	struct tdp_stats s0, s;
	uint64_t *pfn;
	unsigned enoent = 0, bad = 0;

	(void)state;
	th_env_init(&e, 4 * GiB, NULL, 1);
	th_env_slot(&e, ZF_GPA, ZF_SIZE, TDP_HUGE_2M);
	pfn = calloc(ZF_PAGES, sizeof(*pfn));
	assert_non_null(pfn);

	for (uint64_t i = 0; i < ZF_PAGES; i++)
		assert_int_equal(th_write64(e.v[0], ZF_GPA + i * PG,
					    tag(ZF_GPA + i * PG, 3)),
				 0);
	for (uint64_t i = 0; i < ZF_PAGES; i++) {
		assert_int_equal(tdp_vm_translate(e.vm, 0, ZF_GPA + i * PG, &tr),
				 0);
		assert_int_equal(tr.size, TDP_HUGE_2M);
		pfn[i] = tr.pfn;
	}
	s0 = th_vm_stats(e.vm);
	assert_int_equal(s0.pages_2m, ZF_SIZE / TDP_HUGE_2M);
	assert_int_equal(s0.fast_zaps, 0);
	th_audit_clean(e.vm);

	assert_int_equal(tdp_vm_zap_all_fast(e.vm), 0);
	s = th_vm_stats(e.vm);
	assert_int_equal(s.fast_zaps, 1);
	/* the old roots were zapped in this thread */
	assert_int_equal(s.pages_4k + s.pages_2m + s.pages_1g, 0);
	assert_true(s.zapped_leaves >= s0.zapped_leaves + s0.pages_2m);
	/* nothing mapped before is reachable */
	for (uint64_t i = 0; i < ZF_PAGES; i++) {
		int r = tdp_vm_translate(e.vm, 0, ZF_GPA + i * PG, &tr);

		if (r == -ENOENT)
			enoent++;
		else if (!bad++)
			fprintf(stderr,
				"gpa %#llx still translates after "
				"zap_all_fast: ret %d pfn %#llx\n",
				(unsigned long long)(ZF_GPA + i * PG), r,
				(unsigned long long)tr.pfn);
	}
	assert_int_equal(bad, 0);
	assert_int_equal(enoent, ZF_PAGES);

	/* the vCPU goes on: a new root, the same data, the same frames */
	for (uint64_t i = 0; i < ZF_PAGES; i++)
		expect_val(e.v[0], ZF_GPA + i * PG, tag(ZF_GPA + i * PG, 3));
	s = th_vm_stats(e.vm);
	assert_true(s.root_reloads > s0.root_reloads);
	assert_int_equal(s.fast_zaps, 1);
	assert_int_equal(s.pages_2m, ZF_SIZE / TDP_HUGE_2M);
	for (uint64_t i = 0; i < ZF_PAGES; i += 97) {
		assert_int_equal(tdp_vm_translate(e.vm, 0, ZF_GPA + i * PG, &tr),
				 0);
		assert_int_equal(tr.pfn, pfn[i]);
	}
	th_audit_clean(e.vm);

	/* a second one, with the vCPU idle since */
	assert_int_equal(tdp_vm_zap_all_fast(e.vm), 0);
	assert_int_equal(th_vm_stats(e.vm).fast_zaps, 2);
	assert_int_equal(tdp_vm_translate(e.vm, 0, ZF_GPA, &tr), -ENOENT);
	/* teardown: nothing left behind */
	th_env_fini_empty(&e);
	free(pfn);
}

/* zap_all_fast while vCPU threads run: they reload and go on. */
#define ZT_NV	 2
#define ZT_PAGES 64

struct zt_cpu {
	struct th_env *e;
	unsigned id;
	atomic_bool *stop;
	atomic_ullong ops;
	atomic_bool done;
	char err[200];
};

static void *zt_main(void *arg)
{
	struct zt_cpu *z = arg;
	struct tdp_vcpu *v = z->e->v[z->id];
	const uint64_t base = (uint64_t)z->id * ZT_PAGES * PG;
	uint64_t shadow[ZT_PAGES] = {0}, seed = 99 + z->id, x;

	for (uint64_t it = 1; !atomic_load(z->stop); it++) {
		unsigned p = th_rand(&seed) % ZT_PAGES;
		unsigned q = th_rand(&seed) % ZT_PAGES;
		uint64_t val = ((uint64_t)(z->id + 1) << 48) | it;
		int r = th_write64(v, base + p * PG, val);

		if (r) {
			snprintf(z->err, sizeof(z->err), "vcpu %u write: %d",
				 z->id, r);
			break;
		}
		shadow[p] = val;
		r = th_read64(v, base + q * PG, &x);
		if (r || x != shadow[q]) {
			snprintf(z->err, sizeof(z->err),
				 "vcpu %u page %u: ret %d value %#llx, "
				 "expected %#llx",
				 z->id, q, r, (unsigned long long)x,
				 (unsigned long long)shadow[q]);
			break;
		}
		atomic_fetch_add(&z->ops, 1);
	}
	atomic_store(&z->done, true);
	return NULL;
}

/* Wait until every vCPU of @z finished two more operations than @before,
 * sampled after the caller's zap returned (the second began after the
 * first ended, so after the zap: it entered guest mode with the zap's
 * reload request pending), or stopped; a minute bounds a hang. */
static void zt_wait_ops(struct zt_cpu *z, const uint64_t *before)
{
	uint64_t t0 = th_now_ns();

	for (unsigned i = 0; i < ZT_NV; i++)
		while (atomic_load(&z[i].ops) < before[i] + 2 &&
		       !atomic_load(&z[i].done)) {
			assert_true(th_now_ns() - t0 < 60000000000ull);
			sched_yield();
		}
}

static void test_zap_all_fast_running(void **state)
{
	struct th_env e;
	struct zt_cpu z[ZT_NV];
	pthread_t t[ZT_NV];
	atomic_bool stop;
	struct tdp_stats s0, s;
	uint64_t hva;
	const unsigned nzap = 200;

	(void)state;
	th_env_init(&e, 4 * GiB, NULL, ZT_NV);
	hva = th_host_map(e.h, 2 * MiB, RW, TDP_HUGE_2M);
	th_set_slot(e.vm, 0, 0, 0, ZT_NV * ZT_PAGES * PG, hva, 0);
	atomic_init(&stop, false);
	s0 = th_vm_stats(e.vm);
	for (unsigned i = 0; i < ZT_NV; i++) {
		z[i] = (struct zt_cpu){.e = &e, .id = i, .stop = &stop};
		atomic_init(&z[i].ops, 0);
		atomic_init(&z[i].done, false);
		assert_int_equal(pthread_create(&t[i], NULL, zt_main, &z[i]), 0);
	}
	/* each zap is followed by accesses of every vCPU: each reloads
	 * its root once per zap at least, whatever the scheduling */
	for (unsigned n = 0; n < nzap; n++) {
		uint64_t before[ZT_NV];

		assert_int_equal(tdp_vm_zap_all_fast(e.vm), 0);
		for (unsigned i = 0; i < ZT_NV; i++)
			before[i] = atomic_load(&z[i].ops);
		zt_wait_ops(z, before);
	}
	atomic_store(&stop, true);
	for (unsigned i = 0; i < ZT_NV; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (z[i].err[0])
			fail_msg("%s", z[i].err);
		assert_true(z[i].ops > 0);
	}
	s = th_vm_stats(e.vm);
	assert_int_equal(s.fast_zaps, s0.fast_zaps + nzap);
	assert_true(s.root_reloads >= s0.root_reloads + ZT_NV * nzap);
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

/* ------------------------------------------------------------------ */
/* 5. memslot delete and move use the fast zap                         */
/* ------------------------------------------------------------------ */

static void test_delete_move_fast_zap(void **state)
{
	const uint64_t perm = 0, g1 = 16 * MiB, g2 = 32 * MiB + 8 * PG;
	const unsigned np = 16;
	struct th_env e;
	struct tdp_translation tr;
	struct tdp_stats s0, s;
	uint64_t hp, hs;

	(void)state;
	th_env_init(&e, 4 * GiB, NULL, 1);
	hp = th_host_map(e.h, 2 * MiB, RW, TDP_HUGE_2M);
	hs = th_host_map(e.h, np * PG, RW, PG);
	tag_pages(&e, hp, 4, 5);
	tag_pages(&e, hs, np, 6);
	th_set_slot(e.vm, 0, 0, perm, 2 * MiB, hp, 0);
	th_set_slot(e.vm, 0, 1, g1, np * PG, hs, 0);
	for (unsigned i = 0; i < np; i++)
		expect_val(e.v[0], g1 + i * PG, tag(hs + i * PG, 6));
	expect_val(e.v[0], perm + PG, tag(hp + PG, 5));

	/* delete */
	s0 = th_vm_stats(e.vm);
	slot_del(&e, 0, 1);
	s = th_vm_stats(e.vm);
	assert_true(s.fast_zaps >= s0.fast_zaps + 1);
	assert_int_equal(tdp_vm_translate(e.vm, 0, g1, &tr), -ENOENT);
	assert_int_equal(tdp_vm_translate(e.vm, 0, perm, &tr), -ENOENT);
	expect_mmio_read(e.v[0], g1);
	expect_mmio_write(e.v[0], g1 + (np - 1) * PG);
	expect_val(e.v[0], perm + PG, tag(hp + PG, 5));
	assert_true(th_vm_stats(e.vm).root_reloads > s0.root_reloads);

	/* back, then moved back and forth */
	th_set_slot(e.vm, 0, 1, g1, np * PG, hs, 0);
	for (unsigned i = 0; i < np; i++)
		assert_int_equal(th_write64(e.v[0], g1 + i * PG + 16, 1000 + i),
				 0);
	uint64_t from = g1, to = g2;

	for (unsigned m = 0; m < 10; m++) {
		uint64_t x;

		/* the old place is mapped and has a current MMIO entry
		 * next to it... */
		expect_val(e.v[0], from, tag(hs, 6));
		expect_mmio_read(e.v[0], to);
		expect_mmio_read(e.v[0], to);
		s0 = th_vm_stats(e.vm);
		th_set_slot(e.vm, 0, 1, to, np * PG, hs, 0);
		s = th_vm_stats(e.vm);
		if (s.fast_zaps < s0.fast_zaps + 1)
			fail_msg("move %u: fast_zaps %llu -> %llu", m,
				 (unsigned long long)s0.fast_zaps,
				 (unsigned long long)s.fast_zaps);
		/* nothing of the old place is reachable */
		assert_int_equal(tdp_vm_translate(e.vm, 0, from, &tr), -ENOENT);
		/* ... the new place shows the same memory, the old is MMIO */
		for (unsigned i = 0; i < np; i++) {
			expect_val(e.v[0], to + i * PG, tag(hs + i * PG, 6));
			assert_int_equal(
				th_read64(e.v[0], to + i * PG + 16, &x), 0);
			assert_int_equal(x, 1000 + i + m);
			assert_int_equal(th_write64(e.v[0], to + i * PG + 16,
						    1000 + i + m + 1),
					 0);
		}
		expect_mmio_read(e.v[0], from);
		expect_mmio_read(e.v[0], from + (np - 1) * PG);
		expect_mmio_write(e.v[0], from + 3 * PG);
		assert_int_equal(tdp_vm_translate(e.vm, 0, from, &tr), -ENOENT);
		assert_int_equal(tdp_vm_translate(e.vm, 0, to, &tr), 0);
		expect_val(e.v[0], perm + PG, tag(hp + PG, 5));
		from = to;
		to = to == g1 ? g2 : g1;
	}
	for (unsigned i = 0; i < np; i++) {
		uint64_t x;

		assert_int_equal(tdp_host_read(e.h, hs + i * PG + 16, &x, 8), 0);
		assert_int_equal(x, 1000 + i + 10);
	}
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

/* ------------------------------------------------------------------ */
/* 6. two address spaces                                               */
/* ------------------------------------------------------------------ */

static uint64_t host_pfn(struct th_env *e, uint64_t hva)
{
	uint64_t pfn = ~0ull;
	unsigned order = 0, prot = 0;

	assert_int_equal(host_lookup(e->h, hva, &pfn, &order, &prot), 0);
	return pfn;
}

static void test_smm_address_spaces(void **state)
{
	struct tdp_vm_config cfg = {.nr_as = 2};
	const uint64_t g = 0x300000, gsmm = 0x900000, gnorm = 0xa00000;
	struct th_env e;
	struct tdp_translation t0, t1;
	uint64_t ha, hb, hsm, hn, x;

	(void)state;
	th_env_init(&e, 4 * GiB, &cfg, 1);
	ha = th_host_map(e.h, 8 * PG, RW, PG);
	hb = th_host_map(e.h, 8 * PG, RW, PG);
	hsm = th_host_map(e.h, PG, RW, PG);
	hn = th_host_map(e.h, PG, RW, PG);
	tag_pages(&e, ha, 8, 10);
	tag_pages(&e, hb, 8, 11);
	tag_pages(&e, hsm, 1, 12);
	tag_pages(&e, hn, 1, 13);
	th_set_slot(e.vm, 0, 0, g, 8 * PG, ha, 0);
	th_set_slot(e.vm, 1, 0, g, 8 * PG, hb, 0);

	/* MMIO entries first, in each space, at the gpas that only the
	 * other space has memory at (the slots come after) */
	expect_mmio_read(e.v[0], gsmm);
	expect_mmio_read(e.v[0], gsmm);
	assert_int_equal(tdp_vcpu_set_as(e.v[0], 1), 0);
	expect_mmio_read(e.v[0], gnorm);
	expect_mmio_read(e.v[0], gnorm);
	assert_int_equal(tdp_vcpu_set_as(e.v[0], 0), 0);
	th_set_slot(e.vm, 1, 1, gsmm, PG, hsm, 0); /* SMM only */
	th_set_slot(e.vm, 0, 1, gnorm, PG, hn, 0); /* normal only */

	/* as 0 sees A, as 1 sees B */
	expect_val(e.v[0], g + 2 * PG, tag(ha + 2 * PG, 10));
	expect_mmio_read(e.v[0], gsmm);
	expect_val(e.v[0], gnorm, tag(hn, 13));
	assert_int_equal(tdp_vcpu_set_as(e.v[0], 1), 0);
	expect_val(e.v[0], g + 2 * PG, tag(hb + 2 * PG, 11));
	expect_val(e.v[0], gsmm, tag(hsm, 12));
	expect_mmio_read(e.v[0], gnorm);
	expect_mmio_write(e.v[0], gnorm);

	/* writes stay in their space */
	assert_int_equal(th_write64(e.v[0], g + 2 * PG + 8, 0x1111), 0);
	assert_int_equal(tdp_vcpu_set_as(e.v[0], 0), 0);
	assert_int_equal(th_read64(e.v[0], g + 2 * PG + 8, &x), 0);
	assert_int_equal(x, 0);
	assert_int_equal(th_write64(e.v[0], g + 2 * PG + 8, 0x2222), 0);
	assert_int_equal(tdp_vcpu_set_as(e.v[0], 1), 0);
	assert_int_equal(th_read64(e.v[0], g + 2 * PG + 8, &x), 0);
	assert_int_equal(x, 0x1111);
	assert_int_equal(tdp_host_read(e.h, ha + 2 * PG + 8, &x, 8), 0);
	assert_int_equal(x, 0x2222);
	assert_int_equal(tdp_host_read(e.h, hb + 2 * PG + 8, &x, 8), 0);
	assert_int_equal(x, 0x1111);

	/* the translations differ, each the frame of its own memory */
	assert_int_equal(tdp_vm_translate(e.vm, 0, g + 2 * PG, &t0), 0);
	assert_int_equal(tdp_vm_translate(e.vm, 1, g + 2 * PG, &t1), 0);
	assert_int_not_equal(t0.pfn, t1.pfn);
	assert_int_equal(t0.pfn, host_pfn(&e, ha + 2 * PG));
	assert_int_equal(t1.pfn, host_pfn(&e, hb + 2 * PG));
	assert_int_equal(tdp_vm_translate(e.vm, 0, gsmm, &t0), -ENOENT);
	assert_int_equal(tdp_vm_translate(e.vm, 1, gsmm, &t1), 0);
	assert_int_equal(t1.pfn, host_pfn(&e, hsm));
	assert_int_equal(tdp_vm_translate(e.vm, 1, gnorm, &t1), -ENOENT);

	/* deleting the SMM-only slot (a fast zap of every root): MMIO in
	 * as 1 too now, as 0 memory unaffected */
	slot_del(&e, 1, 1);
	expect_mmio_read(e.v[0], gsmm);
	expect_val(e.v[0], g, tag(hb, 11));
	assert_int_equal(tdp_vcpu_set_as(e.v[0], 0), 0);
	expect_val(e.v[0], g + 2 * PG + 8, 0x2222);
	expect_val(e.v[0], gnorm, tag(hn, 13));
	expect_mmio_read(e.v[0], gsmm);
	/* zap_all_fast covers both spaces */
	assert_int_equal(tdp_vm_zap_all_fast(e.vm), 0);
	assert_int_equal(tdp_vm_translate(e.vm, 0, g, &t0), -ENOENT);
	assert_int_equal(tdp_vm_translate(e.vm, 1, g, &t1), -ENOENT);
	expect_val(e.v[0], g, tag(ha, 10));
	assert_int_equal(tdp_vcpu_set_as(e.v[0], 1), 0);
	expect_val(e.v[0], g, tag(hb, 11));
	th_audit_clean(e.vm);
	th_env_fini(&e);
}

/* ------------------------------------------------------------------ */
/* 7. errors                                                           */
/* ------------------------------------------------------------------ */

static void test_errors(void **state)
{
	static const unsigned bad[] = {31, 32, 64, 1000, ~0u};
	static const unsigned good[] = {1, 2, 17, 18, 30};
	struct tdp_host *h;
	struct tdp_vm *vm;
	struct tdp_stats s;

	(void)state;
	assert_int_equal(tdp_host_create(NULL, &h), 0);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tdp_vm_config cfg = {.mmio_gen_bits = bad[i]};

		vm = NULL;
		assert_int_equal(tdp_vm_create(h, &cfg, &vm), -EINVAL);
		assert_null(vm);
	}
	for (unsigned i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct tdp_vm_config cfg = {.mmio_gen_bits = good[i]};

		assert_int_equal(tdp_vm_create(h, &cfg, &vm), 0);
		tdp_vm_destroy(vm);
	}
	assert_int_equal(tdp_vm_zap_all_fast(NULL), -EINVAL);

	/* on a VM with no root at all: fine, and counted */
	assert_int_equal(tdp_vm_create(h, NULL, &vm), 0);
	assert_int_equal(tdp_vm_zap_all_fast(vm), 0);
	tdp_vm_get_stats(vm, &s);
	assert_int_equal(s.fast_zaps, 1);
	assert_int_equal(s.roots, 0);
	assert_int_equal(s.mmio_gen_wraps, 0);
	assert_int_equal(tdp_vm_audit(vm, NULL, 0), 0);
	tdp_vm_destroy(vm);
	tdp_host_destroy(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mmio_entry),
		cmocka_unit_test(test_stale_mmio_bits1),
		cmocka_unit_test(test_stale_mmio_bits2),
		cmocka_unit_test(test_stale_mmio_default),
		cmocka_unit_test(test_churn_threads),
		cmocka_unit_test(test_zap_all_fast),
		cmocka_unit_test(test_zap_all_fast_running),
		cmocka_unit_test(test_delete_move_fast_zap),
		cmocka_unit_test(test_smm_address_spaces),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
