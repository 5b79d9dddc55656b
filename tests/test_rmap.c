/* SPDX-License-Identifier: MIT */
/*
 * test_rmap.c - reverse maps (src/rmap.c): head transitions empty -> one
 * -> many descriptors and back, removals in every order, with the exact
 * set of entries and the descriptor count checked after each step; zap of
 * a whole rmap; the locked walker's present assertion (in a forked child,
 * which must abort); the lockless walker racing a zapper for about a
 * second (it must skip zapped entries, never abort, never hand out a
 * LOCKED bit or a foreign pointer, and report every stable young entry
 * every time); and the two injected bugs, each caught in a forked child
 * (builds with TDP_INJECT only).
 *
 * The fake page table is an aligned array of entries, every present one
 * a leaf for pfn PFN0 + its index, so a pointer or a value that is not
 * one of ours is recognised.  Entries are accessed with __atomic builtins
 * only, as the walkers and the simulated hardware do (TSan-clean).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "inject.h"
#include "lock.h"
#include "rmap.h"
#include "spte.h"

#define NENT 96
#define PFN0 1000u
#define CAP  RMAP_DESC_CAP

static uint64_t tbl[NENT] __attribute__((aligned(4096)));

static uint64_t present_val(unsigned i)
{
	/* make_leaf_spte sets A: every present entry starts young */
	return make_leaf_spte(PFN0 + i, TDP_LEVEL_4K, true, true, false, false);
}

static void set_present(unsigned i)
{
	__atomic_store_n(&tbl[i], present_val(i), __ATOMIC_RELEASE);
}

static uint64_t zap_entry(unsigned i)
{
	return __atomic_exchange_n(&tbl[i], SPTE_NONPRESENT, __ATOMIC_ACQ_REL);
}

/* The index of @sptep in tbl, or -1. */
static int idx_of(const uint64_t *sptep)
{
	uintptr_t p = (uintptr_t)sptep, b = (uintptr_t)tbl;

	if (p < b || p >= b + sizeof(tbl) || (p - b) % sizeof(uint64_t))
		return -1;
	return (int)((p - b) / sizeof(uint64_t));
}

static unsigned long head_raw(struct rmap_head *h)
{
	return atomic_load(&h->val);
}

struct env {
	struct tdp_lock lock;
	struct rmap_ctx ctx;
	int inject;
};

static void env_init(struct env *e, int inject)
{
	memset(tbl, 0, sizeof(tbl));
	for (unsigned i = 0; i < NENT; i++)
		set_present(i);
	assert_int_equal(tdp_lock_init(&e->lock), 0);
	e->inject = inject;
	rmap_ctx_init(&e->ctx, &e->lock, &e->inject);
}

static void env_fini(struct env *e)
{
	tdp_lock_destroy(&e->lock);
}

/* Descriptors a list of @n entries has: none for 0 or 1. */
static long descs_for(unsigned n)
{
	return n < 2 ? 0 : (long)((n + CAP - 1) / CAP);
}

/*
 * Check @head holds exactly the entries marked in @in (mmu_lock held):
 * the locked walker and the lockless walker each visit every one of them
 * once and nothing else; the count, the encoding and the number of live
 * descriptors match.
 */
static void check_set(struct env *e, struct rmap_head *head, const bool *in)
{
	unsigned seen[NENT] = {0}, lseen[NENT] = {0}, n = 0, ln = 0;
	unsigned want = 0, only = 0;
	struct rmap_iter it;
	uint64_t *sptep, spte;
	unsigned long v;

	for (unsigned i = 0; i < NENT; i++)
		if (in[i]) {
			want++;
			only = i;
		}
	for_each_rmap_spte(&e->ctx, head, &it, sptep)
	{
		int i = idx_of(sptep);

		assert_true(i >= 0);
		seen[i]++;
		n++;
	}
	v = rmap_lock_readonly(&e->ctx, head);
	assert_false(v & RMAP_LOCKED);
	if (v)
		assert_int_equal(head_raw(head), v | RMAP_LOCKED);
	for_each_rmap_spte_lockless(&e->ctx, head, v, &it, sptep, spte)
	{
		int i = idx_of(sptep);

		assert_true(i >= 0);
		assert_int_equal(spte, present_val((unsigned)i));
		lseen[i]++;
		ln++;
	}
	rmap_unlock_readonly(&e->ctx, head, v);
	assert_int_equal(head_raw(head), v);

	for (unsigned i = 0; i < NENT; i++) {
		assert_int_equal(seen[i], in[i] ? 1 : 0);
		assert_int_equal(lseen[i], in[i] ? 1 : 0);
	}
	assert_int_equal(n, want);
	assert_int_equal(ln, want);
	assert_int_equal(rmap_count(&e->ctx, head), want);
	assert_int_equal(atomic_load(&e->ctx.nr_desc), descs_for(want));
	v = head_raw(head);
	assert_false(v & RMAP_LOCKED);
	if (want == 0)
		assert_int_equal(v, 0);
	else if (want == 1)
		assert_ptr_equal((void *)v, &tbl[only]);
	else
		assert_true(v & RMAP_MANY);
}

/* Fill @head with tbl[0 .. n-1] in order, checking each step. */
static void fill(struct env *e, struct rmap_head *head, bool *in, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(rmap_add(&e->ctx, head, &tbl[i]), (int)i);
		in[i] = true;
		check_set(e, head, in);
	}
}

static void remove_one(struct env *e, struct rmap_head *head, bool *in,
		       unsigned i)
{
	rmap_remove(&e->ctx, head, &tbl[i]);
	in[i] = false;
	check_set(e, head, in);
}

/* ---- head transitions, removal orders ------------------------------ */

enum order { FORWARD, BACKWARD, MIDDLE_OUT, FIRST_MID_LAST, RANDOM };

static void run_order(enum order o, unsigned n, uint64_t seed)
{
	struct env e;
	struct rmap_head head;
	bool in[NENT] = {false};
	unsigned idx[NENT];

	assert_true(n <= NENT);
	env_init(&e, INJ_NONE);
	rmap_head_init(&head);
	tdp_write_lock(&e.lock);
	check_set(&e, &head, in);
	fill(&e, &head, in, n);
	assert_int_equal(atomic_load(&e.ctx.max_size), n);

	for (unsigned i = 0; i < n; i++)
		idx[i] = i;
	switch (o) {
	case FORWARD:
		break;
	case BACKWARD:
		for (unsigned i = 0; i < n; i++)
			idx[i] = n - 1 - i;
		break;
	case MIDDLE_OUT:
		for (unsigned i = 0; i < n; i++)
			idx[i] =
				(n / 2 + (i % 2 ? (i + 1) / 2 : n - i / 2)) % n;
		break;
	case FIRST_MID_LAST:
		/* the first added (a tail descriptor), one in the middle, the
		 * last added (the head descriptor), then forward */
		idx[0] = 0;
		idx[1] = n / 2;
		idx[2] = n - 1;
		for (unsigned i = 3, j = 1; i < n; j++)
			if (j != n / 2 && j != n - 1)
				idx[i++] = j;
		break;
	case RANDOM:
		for (unsigned i = n - 1; i > 0; i--) {
			unsigned j = (unsigned)(th_rand(&seed) % (i + 1)), t;

			t = idx[i];
			idx[i] = idx[j];
			idx[j] = t;
		}
		break;
	}
	for (unsigned i = 0; i < n; i++) {
		assert_true(in[idx[i]]); /* the order is a permutation */
		remove_one(&e, &head, in, idx[i]);
	}
	assert_int_equal(head_raw(&head), 0);
	assert_int_equal(atomic_load(&e.ctx.nr_desc), 0);
	assert_true(atomic_load(&e.ctx.desc_allocs) >=
		    (unsigned long)descs_for(n));
	assert_int_equal(atomic_load(&e.ctx.lockless_skipped), 0);
	tdp_write_unlock(&e.lock);
	env_fini(&e);
}

static void test_transitions(void **s)
{
	/* several descriptors: more than twice the capacity */
	unsigned n = 3 * CAP + 4;

	(void)s;

	run_order(FORWARD, n, 0);
	run_order(BACKWARD, n, 0);
	run_order(MIDDLE_OUT, n, 0);
	run_order(FIRST_MID_LAST, n, 0);
	for (uint64_t seed = 1; seed <= 8; seed++)
		run_order(RANDOM, n, seed);
	/* around descriptor boundaries */
	for (unsigned m = 1; m <= 2 * CAP + 2; m++) {
		run_order(FORWARD, m, 0);
		run_order(BACKWARD, m, 0);
		run_order(RANDOM, m, m);
	}
}

/* empty -> one -> many -> one -> empty, again and again, and a list
 * that grows and shrinks across descriptor boundaries repeatedly */
static void test_cycles(void **s)
{
	struct env e;
	struct rmap_head head;
	bool in[NENT] = {false};
	uint64_t seed = 42;

	(void)s;
	env_init(&e, INJ_NONE);
	rmap_head_init(&head);
	tdp_write_lock(&e.lock);
	for (int round = 0; round < 3; round++) {
		fill(&e, &head, in, 3);
		remove_one(&e, &head, in, 1);
		remove_one(&e, &head, in, 0); /* many -> one (tbl[2]) */
		assert_ptr_equal((void *)head_raw(&head), &tbl[2]);
		assert_int_equal(rmap_add(&e.ctx, &head, &tbl[0]), 1);
		in[0] = true;
		check_set(&e, &head, in);
		remove_one(&e, &head, in, 2);
		remove_one(&e, &head, in, 0);
	}
	for (int step = 0; step < 2000; step++) {
		unsigned i = (unsigned)(th_rand(&seed) % (2 * CAP + 3));

		if (in[i]) {
			remove_one(&e, &head, in, i);
		} else {
			unsigned before = (unsigned)rmap_count(&e.ctx, &head);

			assert_int_equal(rmap_add(&e.ctx, &head, &tbl[i]),
					 (int)before);
			in[i] = true;
			check_set(&e, &head, in);
		}
	}
	rmap_zap_all(&e.ctx, &head, NULL, NULL);
	assert_int_equal(atomic_load(&e.ctx.nr_desc), 0);
	tdp_write_unlock(&e.lock);
	env_fini(&e);
}

/* ---- zap of a whole rmap ------------------------------------------- */

static void zap_cb(uint64_t *sptep, void *arg)
{
	unsigned *calls = arg;
	int i = idx_of(sptep);

	assert_true(i >= 0);
	assert_true(spte_present(zap_entry((unsigned)i)));
	(*calls)++;
}

static void test_zap_all(void **s)
{
	unsigned sizes[] = {0, 1, 2, CAP, CAP + 1, 2 * CAP + 1, 5 * CAP};
	struct env e;

	(void)s;
	env_init(&e, INJ_NONE);
	tdp_write_lock(&e.lock);
	for (unsigned k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct rmap_head head;
		bool in[NENT] = {false};
		unsigned calls = 0;

		rmap_head_init(&head);
		fill(&e, &head, in, sizes[k]);
		assert_int_equal(rmap_zap_all(&e.ctx, &head, zap_cb, &calls),
				 sizes[k]);
		assert_int_equal(calls, sizes[k]);
		assert_int_equal(head_raw(&head), 0);
		assert_int_equal(atomic_load(&e.ctx.nr_desc), 0);
		for (unsigned i = 0; i < NENT; i++) {
			assert_int_equal(spte_present(tbl[i]), i >= sizes[k]);
			set_present(i);
		}
		memset(in, 0, sizeof(in));
		check_set(&e, &head, in);
	}
	tdp_write_unlock(&e.lock);
	env_fini(&e);
}

/* ---- the lockless walker skips what the locked one asserts on ------ */

static bool count_cb(uint64_t *sptep, uint64_t spte, void *arg)
{
	unsigned *seen = arg;
	int i = idx_of(sptep);

	assert_true(i >= 0);
	assert_true(spte_present(spte));
	seen[i]++;
	return false;
}

static bool stop_cb(uint64_t *sptep, uint64_t spte, void *arg)
{
	(void)sptep;
	(void)spte;
	(void)arg;
	return true;
}

static void test_lockless_skips(void **s)
{
	unsigned sizes[] = {1, 2, 2 * CAP + 3};
	struct env e;

	(void)s;
	env_init(&e, INJ_NONE);
	for (unsigned k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		unsigned n = sizes[k], seen[NENT] = {0};
		struct rmap_head head;
		bool in[NENT] = {false};
		unsigned long skipped = atomic_load(&e.ctx.lockless_skipped);

		rmap_head_init(&head);
		tdp_write_lock(&e.lock);
		fill(&e, &head, in, n);
		tdp_write_unlock(&e.lock);
		/* zapped, not yet removed: no mmu_lock here */
		zap_entry(0);
		zap_entry(n - 1);
		assert_int_equal(
			rmap_walk_lockless(&e.ctx, &head, count_cb, seen),
			n > 2 ? n - 2 : 0);
		for (unsigned i = 0; i < NENT; i++)
			assert_int_equal(seen[i], i > 0 && i + 1 < n ? 1 : 0);
		assert_int_equal(atomic_load(&e.ctx.lockless_skipped),
				 skipped + (n > 1 ? 2 : 1));
		assert_int_equal(head_raw(&head) & RMAP_LOCKED, 0);
		if (n > 2)
			assert_int_equal(rmap_walk_lockless(&e.ctx, &head,
							    stop_cb, NULL),
					 1);
		/* unlocked after a stopped walk too */
		assert_int_equal(head_raw(&head) & RMAP_LOCKED, 0);
		tdp_write_lock(&e.lock);
		rmap_remove(&e.ctx, &head, &tbl[0]);
		in[0] = false;
		if (n > 1) {
			rmap_remove(&e.ctx, &head, &tbl[n - 1]);
			in[n - 1] = false;
		}
		set_present(0);
		set_present(n - 1);
		check_set(&e, &head, in);
		rmap_zap_all(&e.ctx, &head, NULL, NULL);
		tdp_write_unlock(&e.lock);
	}
	/* an empty head is not locked by a lockless walk */
	{
		struct rmap_head head;

		rmap_head_init(&head);
		assert_int_equal(rmap_lock_readonly(&e.ctx, &head), 0);
		assert_int_equal(head_raw(&head), 0);
		assert_int_equal(
			rmap_walk_lockless(&e.ctx, &head, count_cb, NULL), 0);
	}
	assert_int_equal(atomic_load(&e.ctx.nr_desc), 0);
	env_fini(&e);
}

/* ---- a writer waits for a read-only holder -------------------------- */

struct waiter {
	struct env *e;
	struct rmap_head *head;
	atomic_int done;
};

static void *remove_thread(void *arg)
{
	struct waiter *w = arg;

	tdp_write_lock(&w->e->lock);
	rmap_remove(&w->e->ctx, w->head, &tbl[0]); /* frees a descriptor */
	tdp_write_unlock(&w->e->lock);
	atomic_store(&w->done, 1);
	return NULL;
}

static void test_writer_waits_for_reader(void **s)
{
	unsigned sizes[] = {1, 2, CAP + 1};
	struct env e;

	(void)s;
	env_init(&e, INJ_NONE);
	for (unsigned k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct rmap_head head;
		struct waiter w = {&e, &head, 0};
		struct rmap_iter it;
		uint64_t *sptep, spte;
		unsigned long v;
		pthread_t th;
		unsigned n = 0;

		rmap_head_init(&head);
		tdp_write_lock(&e.lock);
		for (unsigned i = 0; i < sizes[k]; i++)
			assert_int_equal(rmap_add(&e.ctx, &head, &tbl[i]),
					 (int)i);
		tdp_write_unlock(&e.lock);

		v = rmap_lock_readonly(&e.ctx, &head);
		assert_int_equal(head_raw(&head), v | RMAP_LOCKED);
		assert_int_equal(pthread_create(&th, NULL, remove_thread, &w),
				 0);
		usleep(50000);
		/* the writer spins on the head: the list is intact */
		assert_int_equal(atomic_load(&w.done), 0);
		assert_int_equal(head_raw(&head), v | RMAP_LOCKED);
		for_each_rmap_spte_lockless(&e.ctx, &head, v, &it, sptep, spte)
			n++;
		assert_int_equal(n, sizes[k]);
		rmap_unlock_readonly(&e.ctx, &head, v);
		assert_int_equal(pthread_join(th, NULL), 0);
		assert_int_equal(atomic_load(&w.done), 1);

		tdp_write_lock(&e.lock);
		assert_int_equal(rmap_count(&e.ctx, &head), sizes[k] - 1);
		rmap_zap_all(&e.ctx, &head, NULL, NULL);
		tdp_write_unlock(&e.lock);
	}
	assert_int_equal(atomic_load(&e.ctx.nr_desc), 0);
	env_fini(&e);
}

/* ---- forked children ------------------------------------------------ */

#define CLEAN	 0
#define DETECTED 42

/* ---- the locked walker asserts that entries are present ------------ */

/* @arg: bits 0-7 the rmap size, bit 8: zap one entry first. */
static int sc_locked_walk(int arg)
{
	unsigned n = (unsigned)arg & 0xff, visits = 0;
	bool zap = arg & 0x100;
	struct env e;
	struct rmap_head head;
	struct rmap_iter it;
	uint64_t *sptep;

	memset(tbl, 0, sizeof(tbl));
	for (unsigned i = 0; i < NENT; i++)
		set_present(i);
	if (tdp_lock_init(&e.lock))
		return 1;
	rmap_ctx_init(&e.ctx, &e.lock, NULL);
	rmap_head_init(&head);
	tdp_write_lock(&e.lock);
	for (unsigned i = 0; i < n; i++)
		if (rmap_add(&e.ctx, &head, &tbl[i]) != (int)i)
			return 1;
	/* a writer that zaps without removing the entry from the rmap */
	if (zap)
		zap_entry(n / 2);
	tdp_write_unlock(&e.lock);
	tdp_read_lock(&e.lock);
	for_each_rmap_spte(&e.ctx, &head, &it, sptep)
	{
		visits++;
	}
	tdp_read_unlock(&e.lock);
	tdp_write_lock(&e.lock);
	rmap_zap_all(&e.ctx, &head, NULL, NULL);
	tdp_write_unlock(&e.lock);
	tdp_lock_destroy(&e.lock);
	return visits == n ? CLEAN : 1;
}

static void test_locked_walker_asserts(void **s)
{
	unsigned sizes[] = {1, 2, CAP + 1, 3 * CAP};
	struct th_child r;

	(void)s;
	for (unsigned k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		th_run_child(sc_locked_walk, (int)sizes[k], 10, &r);
		if (!th_child_clean(&r))
			th_child_describe("control", &r);
		assert_true(th_child_clean(&r));
		th_run_child(sc_locked_walk, (int)sizes[k] | 0x100, 10, &r);
		if (!th_child_aborted_with(&r, "is not present"))
			th_child_describe("zapped entry", &r);
		assert_true(th_child_aborted_with(&r, "is not present"));
	}
}

/* ---- the lockless walker against a zapper --------------------------- */

/*
 * Head A: STABLE entries that are never touched (present and young
 * throughout) and AVICT victims; head B: BVICT victims only, so it goes
 * through empty, one and many.  The zapper (mmu_lock for write, released
 * between rounds) zaps a batch of victims (exchange to non-present), lets
 * the CPU go, removes them from their rmaps, checks with the locked walker
 * that everything left is present, and re-adds them present; every fourth
 * round it first zaps B whole.  The aging thread (no mmu_lock) walks A with the
 * callback walker and B with the macro, clears A bits of victims by
 * compare-exchange against the snapshot, and checks every walk.
 */
#define STABLE 20
#define AVICT  16
#define BVICT  5
#define A0     0	     /* tbl[A0 .. A0+STABLE-1]: stable */
#define AV0    (A0 + STABLE) /* A's victims */
#define BV0    (AV0 + AVICT) /* B's victims */
#define NUSED  (BV0 + BVICT)

struct race {
	struct env e;
	struct rmap_head a, b;
	atomic_int stop;
	atomic_int failed; /* an oracle of the aging thread failed */
	atomic_ulong walks;
	char why[160];
};

struct walk_seen {
	unsigned seen[NENT];
	bool bad;
};

static void race_fail(struct race *r, const char *why, int i)
{
	if (atomic_exchange(&r->failed, 1) == 0)
		snprintf(r->why, sizeof(r->why), "%s (entry %d)", why, i);
}

static bool age_one(struct race *r, struct walk_seen *w, uint64_t *sptep,
		    uint64_t spte)
{
	int i = idx_of(sptep);

	if (i < 0 || i >= NUSED) {
		race_fail(r, "walk returned a foreign pointer", i);
		return true;
	}
	if (!spte_present(spte) ||
	    (spte & ~SPTE_A) != (present_val((unsigned)i) & ~SPTE_A)) {
		race_fail(r, "walk returned a bad snapshot", i);
		return true;
	}
	if (i < AV0 && !(spte & SPTE_A)) {
		race_fail(r, "stable entry reported not young", i);
		return true;
	}
	w->seen[i]++;
	/* aging: clear A by compare-exchange against the snapshot only (a
	 * zap since the snapshot makes it fail); stable ones stay young */
	if (i >= AV0 && (spte & SPTE_A))
		__atomic_compare_exchange_n(sptep, &spte, spte & ~SPTE_A, false,
					    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
	return false;
}

struct age_arg {
	struct race *r;
	struct walk_seen *w;
};

static bool age_cb(uint64_t *sptep, uint64_t spte, void *arg)
{
	struct age_arg *a = arg;

	return age_one(a->r, a->w, sptep, spte);
}

static void *ager(void *arg)
{
	struct race *r = arg;

	while (!atomic_load(&r->stop) && !atomic_load(&r->failed)) {
		struct walk_seen w;
		struct age_arg aa = {r, &w};
		struct rmap_iter it;
		uint64_t *sptep, spte;
		unsigned long v;

		memset(&w, 0, sizeof(w));
		rmap_walk_lockless(&r->e.ctx, &r->a, age_cb, &aa);
		for (int i = A0; i < A0 + STABLE; i++)
			if (w.seen[i] != 1) {
				race_fail(r,
					  w.seen[i] ? "stable entry seen twice"
						    : "stable entry missed",
					  i);
				break;
			}

		v = rmap_lock_readonly(&r->e.ctx, &r->b);
		if (v & RMAP_LOCKED)
			race_fail(r, "LOCKED bit in a returned value", -1);
		for_each_rmap_spte_lockless(&r->e.ctx, &r->b, v, &it, sptep,
					    spte)
		{
			int i = idx_of(sptep);

			if (i >= 0 && i < BV0)
				race_fail(r, "A's entry in B", i);
			else if (age_one(r, &w, sptep, spte))
				break;
		}
		rmap_unlock_readonly(&r->e.ctx, &r->b, v);
		for (int i = AV0; i < NUSED; i++)
			if (w.seen[i] > 1)
				race_fail(r, "victim seen twice", i);
		atomic_fetch_add(&r->walks, 1);
	}
	return NULL;
}

/* With mmu_lock for write: everything in A and B is present and where it
 * belongs, and A holds all its stable entries. */
static bool locked_check(struct race *r, const bool *in)
{
	unsigned seen[NENT] = {0}, na = 0, nb = 0;
	struct rmap_iter it;
	uint64_t *sptep;

	for_each_rmap_spte(&r->e.ctx, &r->a, &it, sptep)
	{
		int i = idx_of(sptep);

		if (i < A0 || i >= BV0)
			return false;
		seen[i]++;
		na++;
	}
	for_each_rmap_spte(&r->e.ctx, &r->b, &it, sptep)
	{
		int i = idx_of(sptep);

		if (i < BV0 || i >= NUSED)
			return false;
		seen[i]++;
		nb++;
	}
	for (int i = 0; i < NUSED; i++)
		if (seen[i] != (unsigned)in[i])
			return false;
	return na == rmap_count(&r->e.ctx, &r->a) &&
	       nb == rmap_count(&r->e.ctx, &r->b);
}

static struct rmap_head *head_of(struct race *r, int i)
{
	return i < BV0 ? &r->a : &r->b;
}

/* The race for at least @min_ns, until the lockless walks have skipped a
 * zapped entry (at most 5 s).  Returns CLEAN or DETECTED (an oracle
 * failed; the reason is printed). */
static int race_run(int inject, uint64_t min_ns)
{
	static struct race r; /* big; one at a time */
	bool in[NENT] = {false};
	uint64_t seed = 7, t0 = th_now_ns(), rounds = 0;
	pthread_t th;
	int ret = CLEAN;

	memset(&r, 0, sizeof(r));
	env_init(&r.e, inject);
	rmap_head_init(&r.a);
	rmap_head_init(&r.b);
	tdp_write_lock(&r.e.lock);
	for (int i = 0; i < NUSED; i++) {
		if (rmap_add(&r.e.ctx, head_of(&r, i), &tbl[i]) < 0)
			abort();
		in[i] = true;
	}
	tdp_write_unlock(&r.e.lock);
	if (pthread_create(&th, NULL, ager, &r))
		abort();

	for (;;) {
		uint64_t el = th_now_ns() - t0;
		int batch[8], nb = 0;

		if (atomic_load(&r.failed) || el > 5000000000ull ||
		    (el >= min_ns &&
		     atomic_load(&r.e.ctx.lockless_skipped) > 0 &&
		     atomic_load(&r.walks) > 100))
			break;
		tdp_write_lock(&r.e.lock);
		rounds++;
		if (rounds % 4 == 0) {
			/* B zapped whole, then rebuilt */
			rmap_zap_all(&r.e.ctx, &r.b, NULL, NULL);
			for (int i = BV0; i < NUSED; i++)
				in[i] = false;
		}
		/* a batch of distinct victims of A and B (some of B's may
		 * be out already) */
		for (int k = 0; k < 6; k++) {
			int i = AV0 + (int)(th_rand(&seed) % (AVICT + BVICT));
			bool dup = false;

			for (int j = 0; j < nb; j++)
				dup |= batch[j] == i;
			if (!dup && in[i])
				batch[nb++] = i;
		}
		/* every victim in an rmap is present */
		for (int j = 0; j < nb; j++)
			if (!spte_present(zap_entry((unsigned)batch[j])))
				ret = DETECTED;
		sched_yield(); /* the zapped-not-removed window */
		for (int j = 0; j < nb; j++) {
			rmap_remove(&r.e.ctx, head_of(&r, batch[j]),
				    &tbl[batch[j]]);
			in[batch[j]] = false;
			/* aging must not resurrect a zapped entry */
			if (spte_present(__atomic_load_n(&tbl[batch[j]],
							 __ATOMIC_ACQUIRE)))
				ret = DETECTED;
		}
		if (!locked_check(&r, in))
			ret = DETECTED;
		/* re-add every victim that is out: present first */
		for (int i = AV0; i < NUSED; i++)
			if (!in[i]) {
				set_present((unsigned)i);
				if (rmap_add(&r.e.ctx, head_of(&r, i),
					     &tbl[i]) < 0)
					abort();
				in[i] = true;
			}
		tdp_write_unlock(&r.e.lock);
		if (ret != CLEAN) {
			snprintf(r.why, sizeof(r.why), "zapper's oracle");
			break;
		}
	}
	atomic_store(&r.stop, 1);
	pthread_join(th, NULL);
	if (atomic_load(&r.failed))
		ret = DETECTED;

	print_message("race: %llu rounds, %lu walks, %lu skipped, %.2f s%s%s\n",
		      (unsigned long long)rounds, atomic_load(&r.walks),
		      atomic_load(&r.e.ctx.lockless_skipped),
		      (double)(th_now_ns() - t0) / 1e9, ret ? ": " : "",
		      ret ? r.why : "");
	if (ret == CLEAN && atomic_load(&r.e.ctx.lockless_skipped) == 0) {
		print_message("race: no zap was ever caught halfway\n");
		ret = DETECTED;
	}
	tdp_write_lock(&r.e.lock);
	rmap_zap_all(&r.e.ctx, &r.a, NULL, NULL);
	rmap_zap_all(&r.e.ctx, &r.b, NULL, NULL);
	tdp_write_unlock(&r.e.lock);
	if (atomic_load(&r.e.ctx.nr_desc) != 0)
		ret = DETECTED;
	env_fini(&r.e);
	return ret;
}

static void test_lockless_vs_zaps(void **s)
{
	(void)s;
	assert_int_equal(race_run(INJ_NONE, 1000000000ull), CLEAN);
}

/* ---- the injected bugs are caught ----------------------------------- */

static int sc_race(int inject)
{
	return race_run(inject, 1000000000ull);
}

static void test_inject_lockless_assert(void **s)
{
	struct th_child r;

	(void)s;
	if (!TDP_INJECT_AVAILABLE) {
		print_message("bug injection not compiled in: skipped\n");
		return;
	}
	th_run_child(sc_race, INJ_RMAP_LOCKLESS_ASSERT, 20, &r);
	th_child_describe("rmap-lockless-assert", &r);
	assert_true(th_child_aborted_with(&r, "is not present"));
}

static void test_inject_unlocked_update(void **s)
{
	struct th_child r;
	bool caught;

	(void)s;
	if (!TDP_INJECT_AVAILABLE) {
		print_message("bug injection not compiled in: skipped\n");
		return;
	}
	th_run_child(sc_race, INJ_RMAP_UNLOCKED_UPDATE, 20, &r);
	th_child_describe("rmap-unlocked-update", &r);
	/* an assertion of the walkers (head changed under the read-only
	 * lock, a freed descriptor, a garbage pointer), a fault, or the
	 * aging thread's oracle; not a time-out */
	caught = (WIFSIGNALED(r.status) && (WTERMSIG(r.status) == SIGABRT ||
					    WTERMSIG(r.status) == SIGSEGV ||
					    WTERMSIG(r.status) == SIGBUS)) ||
		 (WIFEXITED(r.status) && WEXITSTATUS(r.status) == DETECTED) ||
		 th_child_asan_report(&r);
	assert_true(caught);
}

/*
 * Deterministic, one thread: a lockless walk is inside a list (a head
 * descriptor holding one entry, in front of a full one) when a writer
 * that does not take the head lock removes that entry, freeing the head
 * descriptor.  Without the bug the writer would wait for the walker
 * forever, so only the injected build runs it; the walker's next step
 * must meet the poisoned descriptor and abort.  (A use after free: not
 * for sanitizer builds, which have no injection anyway.)
 */
static int sc_walk_freed(int inject)
{
	struct env e;
	struct rmap_head head;
	struct rmap_iter it;
	uint64_t *sptep, spte;
	unsigned long v;
	unsigned n = 0;

	env_init(&e, inject);
	rmap_head_init(&head);
	tdp_write_lock(&e.lock);
	for (unsigned i = 0; i < CAP + 1; i++)
		rmap_add(&e.ctx, &head, &tbl[i]);
	tdp_write_unlock(&e.lock);
	v = rmap_lock_readonly(&e.ctx, &head);
	for_each_rmap_spte_lockless(&e.ctx, &head, v, &it, sptep, spte)
	{
		if (n++ == 0) {
			tdp_write_lock(&e.lock);
			rmap_remove(&e.ctx, &head, &tbl[CAP]);
			tdp_write_unlock(&e.lock);
		}
	}
	rmap_unlock_readonly(&e.ctx, &head, v);
	return n == CAP + 1 ? CLEAN : DETECTED;
}

static void test_inject_unlocked_update_walk(void **s)
{
	struct th_child r;

	(void)s;
	if (!TDP_INJECT_AVAILABLE) {
		print_message("bug injection not compiled in: skipped\n");
		return;
	}
	th_run_child(sc_walk_freed, INJ_RMAP_UNLOCKED_UPDATE, 10, &r);
	th_child_describe("rmap-unlocked-update (walk a freed descriptor)", &r);
	assert_true(th_child_aborted_with(&r, "rmap") || th_child_asan_report(&r));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transitions),
		cmocka_unit_test(test_cycles),
		cmocka_unit_test(test_zap_all),
		cmocka_unit_test(test_lockless_skips),
		cmocka_unit_test(test_writer_waits_for_reader),
		cmocka_unit_test(test_locked_walker_asserts),
		cmocka_unit_test(test_lockless_vs_zaps),
		cmocka_unit_test(test_inject_lockless_assert),
		cmocka_unit_test(test_inject_unlocked_update),
		cmocka_unit_test(test_inject_unlocked_update_walk),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
