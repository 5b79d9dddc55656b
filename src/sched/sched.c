/* SPDX-License-Identifier: MIT */
/*
 * sched.c - the controlled scheduler's core: baton passing between real
 * threads, the strategies (random walk and PCT), the virtual clock, the
 * trace and its hash, deadlock and livelock detection, and the real-time
 * watchdog.  Rules in sched.h and internal.h.
 *
 * Baton: every controlled thread parks on its own semaphore.  At a
 * scheduling point the holder picks the next thread; if that is another
 * one, it posts the other's semaphore and waits on its own.  Exactly one
 * controlled thread runs at any time, so the state below needs no lock.
 *
 * PCT (Burckhardt et al., ASPLOS 2010): each thread gets a random
 * priority when it is created, above every value a demotion gives; d-1
 * change points are drawn uniformly from the expected run length; the
 * thread that executes a change-point step is demoted below everyone.
 * The highest-priority runnable thread always runs.  As in shuttle and
 * Coyote, an explicit yield demotes the yielder too, and a thread that
 * ran FAIR_STEPS steps in a row while others could run is demoted (a
 * spinning thread must not starve the one it waits for).
 *
 * Random walk: a uniform choice among the runnable threads at every
 * decision.  That alone never keeps one thread away for long, and most
 * of the seeds' races need exactly that: a walker stopped between two
 * loads while a zapper unlinks, empties and frees the table it stands
 * on (hundreds of points).  So, as an OS preempts a thread for a time
 * slice and as rr's chaos mode starves one, at one decision in
 * PREEMPT_ONE_IN the running thread is put to sleep for a random time
 * of up to PREEMPT_MAX_NS.  The choice is the schedule's generator's,
 * so the run stays a function of the seed.
 */
#define _GNU_SOURCE
#include "sched/internal.h"

#include <dlfcn.h>
#include <signal.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FAIR_STEPS 20000u
/* random: one decision in PREEMPT_ONE_IN takes the running thread off for
 * up to PREEMPT_MAX_NS of virtual time, as an OS's preemption would */
#define PREEMPT_ONE_IN 512u
#define PREEMPT_MAX_NS (8192u * TDP_SCHED_STEP_NS)
#define WATCHDOG_S 60

struct sched_state S;
__thread struct sthread *sched_self;

static const char *const kind_names[SK_COUNT] = {
	[SK_LOAD] = "load", [SK_STORE] = "store", [SK_RMW] = "rmw",
	[SK_CAS] = "cas", [SK_FENCE] = "fence", [SK_MUTEX] = "mutex-lock",
	[SK_MUTEX_TRY] = "mutex-trylock", [SK_MUTEX_UNLOCK] = "mutex-unlock",
	[SK_RDLOCK] = "read-lock", [SK_WRLOCK] = "write-lock",
	[SK_RWLOCK_TRY] = "rwlock-trylock", [SK_RWLOCK_UNLOCK] = "rwlock-unlock",
	[SK_RCU_LOCK] = "rcu-read-lock", [SK_RCU_UNLOCK] = "rcu-read-unlock",
	[SK_RCU_SYNC] = "rcu-synchronize", [SK_RCU_CB] = "rcu-callback",
	[SK_RCU_BARRIER] = "rcu-barrier", [SK_YIELD] = "yield",
	[SK_SLEEP] = "sleep", [SK_CREATE] = "thread-create",
	[SK_JOIN] = "thread-join", [SK_EXIT] = "thread-exit",
	[SK_WAIT] = "wait", [SK_GUEST_ENTER] = "guest-enter",
	[SK_GUEST_EXIT] = "guest-exit", [SK_FLUSH_REQ] = "flush-request",
	[SK_FLUSH_ACK] = "flush-ack", [SK_NOTE] = "op",
};

static const char *const state_names[] = { "runnable", "blocked", "waiting",
					   "sleeping", "finished" };

/* ------------------------------------------------------------------ */
/* Generator: splitmix64 seeds xoshiro256**                            */
/* ------------------------------------------------------------------ */

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
	uint64_t *s = S.rng, r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

/* uniform in [0, n) */
static uint64_t rng_below(uint64_t n)
{
	return n ? rng_next() % n : 0;
}

/* ------------------------------------------------------------------ */
/* Output that is safe in a signal handler                             */
/* ------------------------------------------------------------------ */

struct out {
	char buf[512];
	size_t n;
	int fd;
};

static void out_flush(struct out *o)
{
	size_t done = 0;

	while (done < o->n) {
		ssize_t w = write(o->fd, o->buf + done, o->n - done);

		if (w <= 0)
			break;
		done += (size_t)w;
	}
	o->n = 0;
}

static void out_s(struct out *o, const char *s)
{
	while (*s) {
		if (o->n == sizeof(o->buf))
			out_flush(o);
		o->buf[o->n++] = *s++;
	}
}

static void out_u(struct out *o, uint64_t v, unsigned base)
{
	char tmp[24];
	int i = 0;

	do {
		tmp[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (i)
		out_s(o, (char[]){ tmp[--i], 0 });
}

static void out_code(struct out *o, const void *ra)
{
	Dl_info di;

	if (!ra) {
		out_s(o, "-");
		return;
	}
	if (dladdr(ra, &di) && di.dli_sname) {
		out_s(o, di.dli_sname);
		out_s(o, "+0x");
		out_u(o, (uint64_t)((const char *)ra - (const char *)di.dli_saddr),
		      16);
	} else if (dladdr(ra, &di) && di.dli_fbase) {
		out_s(o, "0x");
		out_u(o, (uint64_t)((const char *)ra - (const char *)di.dli_fbase),
		      16);
	} else {
		out_s(o, "?");
	}
}

void tdp_sched_dump(int fd, unsigned k)
{
	struct out o = { .fd = fd };
	uint64_t first;

	if (!S.ring_len)
		return;
	if (k > S.ring_len)
		k = S.ring_len;
	out_s(&o, "sched: step ");
	out_u(&o, S.step, 10);
	out_s(&o, ", trace=");
	{
		/* zero-padded like the verdict's */
		char hex[17];

		for (int i = 15; i >= 0; i--)
			hex[15 - i] = "0123456789abcdef"[(S.hash >> (4 * i)) & 15];
		hex[16] = 0;
		out_s(&o, hex);
	}
	out_s(&o, ", thread states:\n");
	for (unsigned i = 0; i < S.nth; i++) {
		struct sthread *t = S.th[i];

		out_s(&o, "  thread ");
		out_u(&o, t->id, 10);
		out_s(&o, t == S.cur ? " (running) " : " ");
		out_s(&o, state_names[t->state]);
		if (t->state == ST_SLEEP) {
			out_s(&o, " until +");
			out_u(&o, t->wake_ns > S.vnow ? t->wake_ns - S.vnow : 0,
			      10);
			out_s(&o, " ns");
		}
		out_s(&o, ", ");
		out_u(&o, t->steps, 10);
		out_s(&o, " steps, last ");
		out_s(&o, kind_names[t->kind]);
		out_s(&o, " at ");
		out_code(&o, t->ra);
		if (S.cfg.strategy == TDP_SCHED_PCT) {
			out_s(&o, ", priority ");
			if (t->prio < 0) {
				out_s(&o, "-");
				out_u(&o, (uint64_t)-t->prio, 10);
			} else {
				out_u(&o, (uint64_t)t->prio, 10);
			}
		}
		out_s(&o, "\n");
	}
	first = S.step > k ? S.step - k : 0;
	out_s(&o, "sched: the last decisions (step thread kind object code):\n");
	for (uint64_t s = first + 1; s <= S.step; s++) {
		const struct sched_trace *e = &S.ring[s % S.ring_len];

		if (e->step != s)
			continue;
		out_s(&o, "  ");
		out_u(&o, e->step, 10);
		out_s(&o, " t");
		out_u(&o, e->tid, 10);
		out_s(&o, " ");
		out_s(&o, kind_names[e->kind]);
		if (e->note) {
			out_s(&o, " ");
			out_s(&o, e->note);
			out_s(&o, " ");
			out_u(&o, (uint64_t)(uintptr_t)e->obj, 10);
		} else {
			out_s(&o, " 0x");
			out_u(&o, (uint64_t)(uintptr_t)e->obj, 16);
			out_s(&o, " ");
			out_code(&o, e->ra);
		}
		out_s(&o, "\n");
	}
	out_flush(&o);
}

static void sched_fail(const char *why)
{
	struct out o = { .fd = STDERR_FILENO };

	out_s(&o, "sched: ");
	out_s(&o, why);
	out_s(&o, "\n");
	out_flush(&o);
	tdp_sched_dump(STDERR_FILENO, S.cfg.trace ? S.cfg.trace : 32);
	abort();
}

/* ------------------------------------------------------------------ */
/* The core                                                            */
/* ------------------------------------------------------------------ */

static void trace_add(struct sthread *t, enum tdp_sched_kind k,
		      const void *obj, const void *ra, const char *note)
{
	struct sched_trace *e;

	if (!S.ring_len)
		return;
	e = &S.ring[S.step % S.ring_len];
	e->step = S.step;
	e->tid = t->id;
	e->kind = k;
	e->obj = obj;
	e->ra = ra;
	e->note = note;
}

static void hash_add(uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		S.hash ^= (v >> (8 * i)) & 0xff;
		S.hash *= 0x100000001b3ull;
	}
}

static int64_t demoted(void)
{
	return S.low--;
}

/* A waiter's predicate, evaluated by whichever thread holds the baton:
 * its atomics (it may live in instrumented code) must not be points. */
static bool eval_pred(struct sthread *t)
{
	struct sthread *me = sched_self;
	bool r;

	if (me)
		me->priv++;
	r = t->pred(t->arg);
	if (me)
		me->priv--;
	return r;
}

/* The runnable threads into @cand; returns how many.  May advance the
 * virtual clock past sleepers; fails the run when nothing can ever run
 * again. */
static unsigned runnable(struct sthread **cand)
{
	unsigned n;

	for (;;) {
		uint64_t min_wake = UINT64_MAX;

		n = 0;
		for (unsigned i = 0; i < S.nth; i++) {
			struct sthread *t = S.th[i];

			if (t->state == ST_WAIT && eval_pred(t))
				t->state = ST_RUN;
			if (t->state == ST_SLEEP) {
				if (S.vnow >= t->wake_ns)
					t->state = ST_RUN;
				else if (t->wake_ns < min_wake)
					min_wake = t->wake_ns;
			}
			if (t->state == ST_RUN)
				cand[n++] = t;
		}
		if (n)
			break;
		if (min_wake == UINT64_MAX)
			sched_fail("deadlock: no thread can run");
		S.vnow = min_wake;
	}
	return n;
}

/* The thread to run next, of the @n runnable ones. */
static struct sthread *pick(struct sthread *me, struct sthread **cand,
			    unsigned n)
{
	if (n == 1)
		return cand[0];
	if (me->state == ST_RUN && ++me->run_len > FAIR_STEPS &&
	    S.cfg.strategy == TDP_SCHED_PCT) {
		me->prio = demoted();
		me->run_len = 0;
	}
	if (S.cfg.strategy == TDP_SCHED_RANDOM)
		return cand[rng_below(n)];
	{
		struct sthread *best = cand[0];

		for (unsigned i = 1; i < n; i++)
			if (cand[i]->prio > best->prio)
				best = cand[i];
		return best;
	}
}

/*
 * A scheduling point of @me: pick the next thread, hand it the baton and
 * wait until it comes back.  A point where @me is the only thread that
 * can run is no decision: it is not counted as a step, traced or hashed
 * (a thread checking every page alone at a checkpoint costs no steps and
 * PCT's change points fall where choices exist).  The virtual clock
 * advances at every point, so sleepers wake while one thread runs alone.
 */
static void run_next(struct sthread *me, enum tdp_sched_kind k,
		     const void *obj, const void *ra)
{
	struct sthread *cand[SCHED_MAX_THREADS], *next;
	unsigned n = runnable(cand);

	me->kind = k;
	me->ra = ra;
	S.vnow += TDP_SCHED_STEP_NS;
	if (n == 1 && cand[0] == me) {
		S.lone++;
		return;
	}
	if (S.step >= S.cfg.max_steps)
		sched_fail("livelock: the step bound was reached "
			   "(raise it with --max-steps)");
	S.step++;
	me->steps++;
	trace_add(me, k, obj, ra, NULL);
	if (S.cfg.strategy == TDP_SCHED_PCT && S.next_change < S.nchange &&
	    S.change[S.next_change] == S.step) {
		me->prio = demoted();
		S.next_change++;
	}
	if (S.cfg.strategy == TDP_SCHED_RANDOM && me->state == ST_RUN &&
	    n > 1 && rng_below(PREEMPT_ONE_IN) == 0) {
		unsigned j = 0;

		me->state = ST_SLEEP;
		me->wake_ns = S.vnow + 1 + rng_below(PREEMPT_MAX_NS);
		for (unsigned i = 0; i < n; i++)
			if (cand[i] != me)
				cand[j++] = cand[i];
		n = j;
	}
	next = pick(me, cand, n);
	hash_add((uint64_t)next->id << 8 | (uint64_t)k);
	if (next == me)
		return;
	if (next->state == ST_RUN)
		next->run_len = 0;
	S.cur = next;
	if (sem_post(&next->sem))
		sched_fail("sem_post failed");
	if (me->state == ST_DONE)
		return;
	while (sem_wait(&me->sem))
		if (errno != EINTR)
			sched_fail("sem_wait failed");
}

static void step(struct sthread *me, enum tdp_sched_kind k, const void *obj,
		 const void *ra)
{
	run_next(me, k, obj, ra);
}

void sched_point_ra(enum tdp_sched_kind k, const void *obj, const void *ra)
{
	struct sthread *me = sched_self;

	if (!me)
		return;
	step(me, k, obj, ra);
}

void tdp_sched_point(enum tdp_sched_kind k, const void *obj)
{
	sched_point_ra(k, obj, __builtin_return_address(0));
}

void tdp_sched_private(int delta)
{
	struct sthread *me = sched_self;

	if (me)
		me->priv += (unsigned)delta;
}

void tdp_sched_note(const char *what, uint64_t arg)
{
	struct sthread *me = sched_self;

	if (me)
		trace_add(me, SK_NOTE, (const void *)(uintptr_t)arg, NULL,
			  what);
}

void sched_block(enum tdp_sched_kind k, const void *obj, const void *ra)
{
	struct sthread *me = sched_self;

	me->state = ST_BLOCKED;
	me->obj = obj;
	step(me, k, obj, ra);
}

void sched_wake(const void *obj)
{
	for (unsigned i = 0; i < S.nth; i++)
		if (S.th[i]->state == ST_BLOCKED && S.th[i]->obj == obj)
			S.th[i]->state = ST_RUN;
}

void tdp_sched_wait_until(bool (*pred)(void *), void *arg,
			  enum tdp_sched_kind k)
{
	struct sthread *me = sched_self;

	if (!me) {
		while (!pred(arg))
			sched_yield();
		return;
	}
	me->priv++;
	if (pred(arg)) {
		me->priv--;
		step(me, k, arg, __builtin_return_address(0));
		return;
	}
	me->priv--;
	me->state = ST_WAIT;
	me->pred = pred;
	me->arg = arg;
	step(me, k, arg, __builtin_return_address(0));
}

void sched_sleep(uint64_t ns, const void *ra)
{
	struct sthread *me = sched_self;

	me->state = ST_SLEEP;
	me->wake_ns = S.vnow + (ns ? ns : 1);
	step(me, SK_SLEEP, NULL, ra);
}

void sched_yield_point(const void *ra)
{
	struct sthread *me = sched_self;

	if (S.cfg.strategy == TDP_SCHED_PCT)
		me->prio = demoted();
	step(me, SK_YIELD, NULL, ra);
}

uint64_t sched_vnow(void)
{
	return S.vnow;
}

void sched_ww(const void *lock, int delta)
{
	unsigned free_i = ~0u;

	for (unsigned i = 0; i < sizeof(S.ww) / sizeof(S.ww[0]); i++) {
		if (S.ww[i].lock == lock) {
			S.ww[i].n += (unsigned)delta;
			if (!S.ww[i].n)
				S.ww[i].lock = NULL;
			return;
		}
		if (!S.ww[i].lock && free_i == ~0u)
			free_i = i;
	}
	if (delta <= 0 || free_i == ~0u)
		sched_fail("too many rwlocks with waiting writers");
	S.ww[free_i].lock = lock;
	S.ww[free_i].n = (unsigned)delta;
}

unsigned sched_ww_count(const void *lock)
{
	for (unsigned i = 0; i < sizeof(S.ww) / sizeof(S.ww[0]); i++)
		if (S.ww[i].lock == lock)
			return S.ww[i].n;
	return 0;
}

/* A new thread's priority: a random place among the initial ones, all
 * above every demoted value (<= 0) and the change points' values. */
struct sthread *sched_new_thread(void)
{
	struct sthread *t;

	if (S.nth == SCHED_MAX_THREADS)
		sched_fail("too many threads");
	t = calloc(1, sizeof(*t));
	if (!t || sem_init(&t->sem, 0, 0))
		sched_fail("out of memory");
	t->id = S.nth;
	t->state = ST_RUN;
	t->prio = (int64_t)(1 + rng_below(1ull << 40));
	S.th[S.nth++] = t;
	return t;
}

struct sthread *sched_find(pthread_t p)
{
	for (unsigned i = 1; i < S.nth; i++)
		if (pthread_equal(S.th[i]->pth, p))
			return S.th[i];
	return NULL;
}

void sched_thread_exit(struct sthread *me)
{
	me->state = ST_DONE;
	sched_wake(me);
	sched_self = NULL;
	run_next(me, SK_EXIT, me, NULL);
}

/* ------------------------------------------------------------------ */
/* Start, stop, watchdog                                               */
/* ------------------------------------------------------------------ */

static pthread_t watchdog_th;
static int watchdog_stop;

static uint64_t real_ns(void)
{
	struct timespec ts;

	/* the wrapper gives real time: the watchdog is uncontrolled */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *watchdog(void *arg)
{
	uint64_t last = ~0ull, since = real_ns();

	(void)arg;
	while (!__atomic_load_n(&watchdog_stop, __ATOMIC_ACQUIRE)) {
		uint64_t s = __atomic_load_n(&S.step, __ATOMIC_RELAXED) +
			     __atomic_load_n(&S.lone, __ATOMIC_RELAXED);
		struct timespec d = { 0, 100 * 1000 * 1000 };

		if (s != last) {
			last = s;
			since = real_ns();
		} else if (real_ns() - since > WATCHDOG_S * 1000000000ull) {
			sched_fail("watchdog: no scheduling point for 60 s of "
				   "real time; the running thread is blocked "
				   "outside the scheduler");
		}
		nanosleep(&d, NULL);
	}
	return NULL;
}

int tdp_sched_start(const struct tdp_sched_config *c)
{
	struct sthread *me;
	uint64_t x;
	struct timespec ts;

	if (S.on)
		return -EBUSY;
	if (c->strategy != TDP_SCHED_RANDOM && c->strategy != TDP_SCHED_PCT)
		return -EINVAL;
	if (c->strategy == TDP_SCHED_PCT &&
	    (c->depth < 1 || c->depth > 16 || !c->steps))
		return -EINVAL;
	memset(&S, 0, sizeof(S));
	S.cfg = *c;
	if (!S.cfg.max_steps)
		S.cfg.max_steps = ~0ull;
	x = c->seed;
	for (int i = 0; i < 4; i++)
		S.rng[i] = splitmix(&x);
	S.hash = 0xcbf29ce484222325ull;
	S.low = 0;
	if (c->strategy == TDP_SCHED_PCT) {
		S.nchange = c->depth - 1;
		for (unsigned i = 0; i < S.nchange; i++)
			S.change[i] = 1 + rng_below(c->steps);
		/* sorted, so the run meets them in order */
		for (unsigned i = 1; i < S.nchange; i++)
			for (unsigned j = i; j && S.change[j - 1] > S.change[j];
			     j--) {
				uint64_t tmp = S.change[j];

				S.change[j] = S.change[j - 1];
				S.change[j - 1] = tmp;
			}
	}
	S.ring_len = c->trace > 64 ? c->trace : 64;
	S.ring = calloc(S.ring_len, sizeof(*S.ring));
	if (!S.ring)
		return -ENOMEM;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	S.vnow = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	me = sched_new_thread();
	me->pth = pthread_self();
	S.cur = me;
	__atomic_store_n(&S.on, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&watchdog_stop, 0, __ATOMIC_RELAXED);
	sched_self = me;
	sched_rcu_start();
	{
		/* uncontrolled: created while the baton holder is not
		 * marked, see wrap.c */
		struct sthread *saved = sched_self;
		sigset_t all, old;

		sched_self = NULL;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		pthread_create(&watchdog_th, NULL, watchdog, NULL);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		sched_self = saved;
	}
	return 0;
}

void tdp_sched_stop(void)
{
	struct sthread *me = sched_self;

	if (!me || me->id != 0)
		sched_fail("tdp_sched_stop: not called by thread 0");
	sched_rcu_stop();
	for (unsigned i = 1; i < S.nth; i++)
		if (S.th[i]->state != ST_DONE)
			sched_fail("tdp_sched_stop: a thread is still running");
	sched_self = NULL;
	__atomic_store_n(&S.on, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&watchdog_stop, 1, __ATOMIC_RELEASE);
	pthread_join(watchdog_th, NULL);
}

bool tdp_sched_controlled(void)
{
	return sched_self != NULL;
}

uint64_t tdp_sched_steps(void)
{
	return __atomic_load_n(&S.step, __ATOMIC_RELAXED);
}

uint64_t tdp_sched_hash(void)
{
	return S.hash;
}
