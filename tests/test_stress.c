/* SPDX-License-Identifier: MIT */
/*
 * test_stress.c - multi-threaded stress with host chaos.
 *
 *  - test_private: two vCPU threads, each on its own memory (2 MiB and
 *    4 KiB folios), write random data at random offsets and lengths and
 *    verify every read against a private shadow copy, while a third thread
 *    migrates, swaps out, splits and zaps those pages, and now and then
 *    invalidates every root, for 5 seconds.  Zero
 *    mismatches; afterwards the host's copy equals the shadows and the
 *    audit is clean.
 *  - test_shared: both vCPUs read the same pages (static contents) while
 *    the host churns them.
 * In both, the host's test hook checks I1 inside every host operation: once
 * invalidate_start has returned, no table entry maps the range.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helpers.h"
#include "host/host.h"
#include "vm.h"

#define PG     4096ull
#define RW     (TDP_PROT_READ | TDP_PROT_WRITE)
#define MAXLEN (3 * PG + 17)

/* One guest region: a 2 MiB-folio part followed by an adjacent memslot of
 * 4 KiB folios, so accesses also cross slots and folio kinds. */
struct region {
	uint64_t gpa, size;
	uint64_t huge_hva, huge_size;	/* slot A: 2 MiB folios */
	uint64_t small_hva, small_size; /* slot B: 4 KiB folios, right after */
};

/* chaos operations */
enum { C_MIGRATE, C_SWAP, C_SPLIT, C_ZAP, C_MIGRATE_BIG, C_INVALIDATE, C_NR };

struct shared;

struct worker {
	struct shared *sh;
	struct tdp_vcpu *v;
	struct region *rg;
	unsigned id;
	uint8_t *shadow; /* private test only */
	uint64_t seed;
	atomic_ulong ops, writes, reads, mismatches, errors;
	uint64_t first_bad;
	int first_err;
};

struct shared {
	struct tdp_host *h;
	struct tdp_vm *vm;
	atomic_bool stop;
	bool read_only; /* shared test: verify th_pattern gen 1 */
	struct region *rg[2];
	unsigned nrg;
	/* chaos */
	uint64_t chaos_seed;
	atomic_ulong nops[C_NR];
	atomic_int chaos_err;
	int chaos_first_err, chaos_first_op;
	uint64_t chaos_sleep_mask;
	/* I1 oracle (host test hook) */
	atomic_ulong hook_calls, hook_gfns_checked, stale_leaves;
	uint64_t first_stale_gfn;
};

/*
 * The host's test hook runs inside every host operation after every
 * notifier's invalidate_start returned and before the mapping changes.
 * From then on (I1, I5) no table entry may map any gfn backed by the
 * range: invalidate_start zapped them, and faults that got a frame from
 * host_gup earlier must see the invalidation and retry.  Walk every root
 * for every such gfn under mmu_lock (read; lock order host -> mmu).
 */
static void check_range(struct shared *sh, uint64_t hva, uint64_t size,
			uint64_t gpa, uint64_t start, uint64_t end)
{
	uint64_t a = start > hva ? start : hva;
	uint64_t b = end < hva + size ? end : hva + size;
	struct tdp_pt_page *root;

	if (a >= b)
		return;
	/* lock order mmu_lock -> list_lock, as root allocation; list_lock
	 * keeps every root on the list alive and the list stable */
	tdp_read_lock(&sh->vm->mmu.lock);
	tdp_rcu_read_lock();
	pthread_mutex_lock(&sh->vm->mmu.roots.list_lock);
	for (uint64_t x = a; x < b; x += PG) {
		uint64_t gfn = (gpa + (x - hva)) >> 12;

		atomic_fetch_add(&sh->hook_gfns_checked, 1);
		cds_list_for_each_entry(root, &sh->vm->mmu.roots.list, link)
		{
			if (th_root_leaf_pfn(root, gfn, NULL) != ~0ull &&
			    !atomic_fetch_add(&sh->stale_leaves, 1))
				sh->first_stale_gfn = gfn;
		}
	}
	pthread_mutex_unlock(&sh->vm->mmu.roots.list_lock);
	tdp_rcu_read_unlock();
	tdp_read_unlock(&sh->vm->mmu.lock);
}

static void i1_hook(void *arg, uint64_t start, uint64_t end)
{
	struct shared *sh = arg;

	atomic_fetch_add(&sh->hook_calls, 1);
	for (unsigned i = 0; i < sh->nrg; i++) {
		const struct region *rg = sh->rg[i];

		check_range(sh, rg->huge_hva, rg->huge_size, rg->gpa, start,
			    end);
		check_range(sh, rg->small_hva, rg->small_size,
			    rg->gpa + rg->huge_size, start, end);
	}
}

/* deterministic data of one page for the shared test */
static void expect_range(uint8_t *dst, uint64_t gpa, uint64_t len)
{
	uint64_t page[512];

	while (len) {
		uint64_t base = gpa & ~(PG - 1), off = gpa - base;
		uint64_t n = PG - off < len ? PG - off : len;

		th_fill_page(page, base, 1);
		memcpy(dst, (uint8_t *)page + off, n);
		dst += n;
		gpa += n;
		len -= n;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	uint8_t *buf = malloc(MAXLEN), *exp = malloc(MAXLEN);
	uint64_t rs = w->seed;

	if (!buf || !exp) {
		atomic_fetch_add(&w->errors, 1);
		goto out;
	}
	while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
		struct region *rg =
			sh->read_only ? sh->rg[th_rand(&rs) % sh->nrg] : w->rg;
		uint64_t len = 1 + th_rand(&rs) % MAXLEN;
		uint64_t off, r = th_rand(&rs);
		bool write = !sh->read_only && (r & 3) == 0;
		int ret;

		/* half of the accesses full aligned pages, half odd */
		if (r & 4) {
			len = PG;
			off = (th_rand(&rs) % (rg->size / PG)) * PG;
		} else {
			off = th_rand(&rs) % (rg->size - len + 1);
		}
		if (write) {
			uint64_t tag = th_rand(&rs);

			for (uint64_t i = 0; i < len; i += 8) {
				uint64_t x = (tag + i) * 0x9e3779b97f4a7c15ull;

				memcpy(buf + i, &x, len - i < 8 ? len - i : 8);
			}
			ret = tdp_vcpu_write(w->v, rg->gpa + off, buf, len);
			if (!ret) {
				memcpy(w->shadow + off, buf, len);
				atomic_fetch_add(&w->writes, 1);
				/* and read it straight back */
				memset(buf, 0, len);
				ret = tdp_vcpu_read(w->v, rg->gpa + off, buf,
						    len);
				if (!ret && memcmp(buf, w->shadow + off, len) &&
				    !atomic_fetch_add(&w->mismatches, 1))
					w->first_bad = rg->gpa + off;
			}
		} else {
			memset(buf, 0xa5, len);
			ret = tdp_vcpu_read(w->v, rg->gpa + off, buf, len);
			if (!ret) {
				const uint8_t *want;

				if (sh->read_only) {
					expect_range(exp, rg->gpa + off, len);
					want = exp;
				} else {
					want = w->shadow + off;
				}
				if (memcmp(buf, want, len) &&
				    !atomic_fetch_add(&w->mismatches, 1))
					w->first_bad = rg->gpa + off;
				atomic_fetch_add(&w->reads, 1);
			}
		}
		if (ret && !atomic_fetch_add(&w->errors, 1))
			w->first_err = ret;
		atomic_fetch_add(&w->ops, 1);
	}
out:
	free(buf);
	free(exp);
	return NULL;
}

static void *chaos_main(void *arg)
{
	struct shared *sh = arg;
	uint64_t rs = sh->chaos_seed;

	while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
		struct region *rg = sh->rg[th_rand(&rs) % sh->nrg];
		unsigned kind = (unsigned)(th_rand(&rs) % 100);
		bool huge = th_rand(&rs) % 3 != 0;
		uint64_t hva, len, gpa;
		unsigned op;
		int ret;

		if (huge) {
			uint64_t nf = rg->huge_size / TDP_HUGE_2M;
			uint64_t f = th_rand(&rs) % nf;

			hva = rg->huge_hva + f * TDP_HUGE_2M;
			gpa = rg->gpa + f * TDP_HUGE_2M;
			len = TDP_HUGE_2M;
			if (kind >= 10 && th_rand(&rs) % 2) {
				/* a few pages inside the folio */
				uint64_t p = th_rand(&rs) % 504;

				hva += p * PG;
				gpa += p * PG;
				len = (1 + th_rand(&rs) % 8) * PG;
			}
		} else {
			uint64_t np = rg->small_size / PG;
			uint64_t p = th_rand(&rs) % (np - 7);

			hva = rg->small_hva + p * PG;
			gpa = rg->gpa + rg->huge_size + p * PG;
			len = (1 + th_rand(&rs) % 8) * PG;
		}
		if (kind < 4) {
			op = C_SPLIT;
			ret = tdp_host_split(sh->h, hva, len);
		} else if (kind < 6) {
			/* every root obsolete: the vCPUs reload */
			op = C_INVALIDATE;
			ret = tdp_vm_invalidate_roots(sh->vm);
		} else if (kind < 12) {
			op = C_ZAP;
			ret = tdp_vm_zap_gfn_range(sh->vm, 0, gpa, len);
		} else if (kind < 50) {
			op = len == TDP_HUGE_2M ? C_MIGRATE_BIG : C_MIGRATE;
			ret = tdp_host_migrate(sh->h, hva, len);
		} else {
			op = C_SWAP;
			ret = tdp_host_swap_out(sh->h, hva, len);
		}
		if (ret && !atomic_fetch_add(&sh->chaos_err, 1)) {
			sh->chaos_first_err = ret;
			sh->chaos_first_op = (int)op;
		}
		atomic_fetch_add(&sh->nops[op], 1);
		/* let the vCPUs run between host operations now and then */
		if (!(th_rand(&rs) & sh->chaos_sleep_mask))
			sched_yield();
	}
	return NULL;
}

struct setup {
	struct tdp_host *h;
	struct tdp_vm *vm;
	struct tdp_vcpu *v[2];
	struct region rg[2];
};

static void setup_init(struct setup *s, unsigned nrg)
{
	struct tdp_vm_config vc = {.max_vcpus = 4};

	memset(s, 0, sizeof(*s));
	s->h = th_host_new(GiB);
	assert_int_equal(tdp_vm_create(s->h, &vc, &s->vm), 0);
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(tdp_vcpu_create(s->vm, i, &s->v[i]), 0);
	for (unsigned i = 0; i < nrg; i++) {
		struct region *rg = &s->rg[i];
		struct tdp_memslot m = {0};

		rg->gpa = (uint64_t)(i + 1) * 64 * MiB;
		rg->huge_size = 4 * TDP_HUGE_2M;
		rg->small_size = 256 * PG;
		rg->size = rg->huge_size + rg->small_size;
		rg->huge_hva =
			th_host_map(s->h, rg->huge_size, RW, TDP_HUGE_2M);
		rg->small_hva = th_host_map(s->h, rg->small_size, RW, PG);
		m = (struct tdp_memslot){.slot = 2 * i,
					 .gpa = rg->gpa,
					 .size = rg->huge_size,
					 .hva = rg->huge_hva};
		assert_int_equal(tdp_vm_set_memslot(s->vm, &m), 0);
		m = (struct tdp_memslot){.slot = 2 * i + 1,
					 .gpa = rg->gpa + rg->huge_size,
					 .size = rg->small_size,
					 .hva = rg->small_hva};
		assert_int_equal(tdp_vm_set_memslot(s->vm, &m), 0);
	}
}

static void setup_fini(struct setup *s, unsigned nrg)
{
	for (unsigned i = 0; i < 2; i++)
		tdp_vcpu_destroy(s->v[i]);
	tdp_vm_destroy(s->vm);
	assert_int_equal(th_host_stats(s->h).pinned_refs, 0);
	for (unsigned i = 0; i < nrg; i++) {
		assert_int_equal(tdp_host_munmap(s->h, s->rg[i].huge_hva,
						 s->rg[i].huge_size),
				 0);
		assert_int_equal(tdp_host_munmap(s->h, s->rg[i].small_hva,
						 s->rg[i].small_size),
				 0);
	}
	th_assert_host_empty(s->h);
	tdp_host_destroy(s->h);
}

/* Host copy of the region, both slots. */
static void region_host_read(struct tdp_host *h, const struct region *rg,
			     uint8_t *dst)
{
	assert_int_equal(tdp_host_read(h, rg->huge_hva, dst, rg->huge_size), 0);
	assert_int_equal(tdp_host_read(h, rg->small_hva, dst + rg->huge_size,
				       rg->small_size),
			 0);
}

#define MIN_READS  1000
#define MIN_WRITES 1000

static bool progress_ok(struct shared *sh, struct worker *w)
{
	for (unsigned i = 0; i < 2; i++) {
		if (atomic_load(&w[i].reads) < MIN_READS)
			return false;
		if (!sh->read_only && atomic_load(&w[i].writes) < MIN_WRITES)
			return false;
	}
	for (unsigned op = 0; op < C_NR; op++)
		if (atomic_load(&sh->nops[op]) < 3)
			return false;
	return true;
}

static void run(struct shared *sh, struct worker *w, uint64_t ns)
{
	pthread_t tw[2], tc;

	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(
			pthread_create(&tw[i], NULL, worker_main, &w[i]), 0);
	host_set_test_hook(sh->h, i1_hook, sh);
	assert_int_equal(pthread_create(&tc, NULL, chaos_main, sh), 0);
	uint64_t t0 = th_now_ns();

	/* @ns, or longer (at most 4x) until every thread made the progress
	 * check_run() demands, so a loaded machine does not fail the test */
	for (;;) {
		struct timespec ts = {0, 20 * 1000 * 1000};
		uint64_t el = th_now_ns() - t0;

		if (el >= 4 * ns || (el >= ns && progress_ok(sh, w)))
			break;
		nanosleep(&ts, NULL);
	}
	atomic_store(&sh->stop, true);
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(pthread_join(tw[i], NULL), 0);
	assert_int_equal(pthread_join(tc, NULL), 0);
	host_set_test_hook(sh->h, NULL, NULL);
}

static void report(const char *name, struct shared *sh, struct worker *w,
		   struct tdp_vm *vm, struct tdp_host *h)
{
	struct tdp_stats vs;
	struct tdp_host_stats hs;

	tdp_vm_get_stats(vm, &vs);
	tdp_host_get_stats(h, &hs);
	fprintf(stderr,
		"  %s: vcpu ops %lu/%lu (writes %lu/%lu), chaos migrate %lu "
		"(2M %lu) swap %lu split %lu zap %lu invalidate-roots %lu\n"
		"  faults %llu fixed %llu retry %llu spurious %llu, "
		"invalidations %llu, tlb flushes %llu, root reloads %llu, "
		"migrations %llu "
		"swap-ins %llu splits %llu\n",
		name, atomic_load(&w[0].ops), atomic_load(&w[1].ops),
		atomic_load(&w[0].writes), atomic_load(&w[1].writes),
		atomic_load(&sh->nops[C_MIGRATE]),
		atomic_load(&sh->nops[C_MIGRATE_BIG]),
		atomic_load(&sh->nops[C_SWAP]), atomic_load(&sh->nops[C_SPLIT]),
		atomic_load(&sh->nops[C_ZAP]),
		atomic_load(&sh->nops[C_INVALIDATE]),
		(unsigned long long)vs.pf_taken,
		(unsigned long long)vs.pf_fixed,
		(unsigned long long)vs.pf_retry,
		(unsigned long long)vs.pf_spurious,
		(unsigned long long)vs.invalidations,
		(unsigned long long)vs.remote_tlb_flush,
		(unsigned long long)vs.root_reloads,
		(unsigned long long)hs.migrations,
		(unsigned long long)hs.swap_ins, (unsigned long long)hs.splits);
	for (unsigned i = 0; i < 2; i++) {
		if (atomic_load(&w[i].mismatches))
			fprintf(stderr, "  vcpu %u: first mismatch at %#llx\n",
				i, (unsigned long long)w[i].first_bad);
		if (atomic_load(&w[i].errors))
			fprintf(stderr, "  vcpu %u: first error %d\n", i,
				w[i].first_err);
	}
	fprintf(stderr,
		"  I1 hook: %lu host ops, %lu gfns checked, %lu "
		"stale leaves\n",
		atomic_load(&sh->hook_calls),
		atomic_load(&sh->hook_gfns_checked),
		atomic_load(&sh->stale_leaves));
	if (atomic_load(&sh->stale_leaves))
		fprintf(stderr, "  first stale leaf: gfn %#llx\n",
			(unsigned long long)sh->first_stale_gfn);
	if (atomic_load(&sh->chaos_err))
		fprintf(stderr, "  chaos: first error %d (op %d)\n",
			sh->chaos_first_err, sh->chaos_first_op);
}

static void check_run(struct shared *sh, struct worker *w)
{
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(atomic_load(&w[i].mismatches), 0);
		assert_int_equal(atomic_load(&w[i].errors), 0);
	}
	assert_int_equal(atomic_load(&sh->chaos_err), 0);
	/* the I1 oracle ran and found nothing */
	assert_int_equal(atomic_load(&sh->stale_leaves), 0);
	assert_true(atomic_load(&sh->hook_calls) > 0);
	assert_true(atomic_load(&sh->hook_gfns_checked) > 0);
	/* the vCPUs and the chaos really ran concurrently */
	assert_true(progress_ok(sh, w));
}

static void test_private(void **state)
{
	struct setup s;
	struct shared sh = {0};
	struct worker w[2];
	struct tdp_host_stats hs0, hs1;

	setup_init(&s, 2);
	sh.h = s.h;
	sh.vm = s.vm;
	sh.nrg = 2;
	sh.rg[0] = &s.rg[0];
	sh.rg[1] = &s.rg[1];
	sh.chaos_seed = 0xc4a05;
	sh.chaos_sleep_mask = 1;
	memset(w, 0, sizeof(w));
	for (unsigned i = 0; i < 2; i++) {
		w[i].sh = &sh;
		w[i].v = s.v[i];
		w[i].rg = &s.rg[i];
		w[i].id = i;
		w[i].seed = 0x1000 + i * 0x77;
		w[i].shadow = calloc(1, s.rg[i].size);
		assert_non_null(w[i].shadow);
		/* the guest maps it all (2 MiB leaves) before the churn */
		assert_int_equal(tdp_vcpu_write(s.v[i], s.rg[i].gpa,
						w[i].shadow, s.rg[i].size),
				 0);
	}
	tdp_host_get_stats(s.h, &hs0);

	run(&sh, w, 5000000000ull);
	report("private", &sh, w, s.vm, s.h);
	check_run(&sh, w);
	tdp_host_get_stats(s.h, &hs1);
	assert_true(hs1.migrations > hs0.migrations);
	assert_true(hs1.swap_ins > hs0.swap_ins);
	assert_true(hs1.splits > hs0.splits);

	th_audit_clean(s.vm);
	/* no write was lost or misplaced: the host has exactly the shadows,
	 * and so does each guest */
	for (unsigned i = 0; i < 2; i++) {
		uint8_t *copy = malloc(s.rg[i].size);

		assert_non_null(copy);
		region_host_read(s.h, &s.rg[i], copy);
		assert_memory_equal(copy, w[i].shadow, s.rg[i].size);
		memset(copy, 0, s.rg[i].size);
		assert_int_equal(
			tdp_vcpu_read(s.v[i], s.rg[i].gpa, copy, s.rg[i].size),
			0);
		assert_memory_equal(copy, w[i].shadow, s.rg[i].size);
		free(copy);
		free(w[i].shadow);
	}
	th_audit_clean(s.vm);
	setup_fini(&s, 2);
}

static void test_shared(void **state)
{
	struct setup s;
	struct shared sh = {0};
	struct worker w[2];
	uint64_t page[512];

	setup_init(&s, 1);
	sh.h = s.h;
	sh.vm = s.vm;
	sh.nrg = 1;
	sh.rg[0] = &s.rg[0];
	sh.read_only = true;
	sh.chaos_seed = 0x5a4ed;
	sh.chaos_sleep_mask = 1;
	for (uint64_t off = 0; off < s.rg[0].size; off += PG) {
		uint64_t hva =
			off < s.rg[0].huge_size
				? s.rg[0].huge_hva + off
				: s.rg[0].small_hva + off - s.rg[0].huge_size;

		th_fill_page(page, s.rg[0].gpa + off, 1);
		assert_int_equal(tdp_host_write(s.h, hva, page, PG), 0);
	}
	memset(w, 0, sizeof(w));
	for (unsigned i = 0; i < 2; i++) {
		w[i].sh = &sh;
		w[i].v = s.v[i];
		w[i].rg = &s.rg[0];
		w[i].id = i;
		w[i].seed = 0x2000 + i * 0x31;
	}
	run(&sh, w, 2500000000ull);
	report("shared", &sh, w, s.vm, s.h);
	check_run(&sh, w);
	th_audit_clean(s.vm);
	for (uint64_t off = 0; off < s.rg[0].size; off += PG) {
		for (unsigned i = 0; i < 2; i++) {
			memset(page, 0, sizeof(page));
			assert_int_equal(tdp_vcpu_read(s.v[i],
						       s.rg[0].gpa + off, page,
						       PG),
					 0);
			assert_int_equal(
				th_check_page(page, s.rg[0].gpa + off, 1), 0);
		}
	}
	th_audit_clean(s.vm);
	setup_fini(&s, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_private),
		cmocka_unit_test(test_shared),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
