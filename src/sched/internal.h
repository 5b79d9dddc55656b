/* SPDX-License-Identifier: MIT */
/*
 * sched/internal.h - state shared by the controlled scheduler's parts
 * (sched.c: the core and the strategies; wrap.c: the wrapped pthread,
 * sleep and clock calls; rcu.c: the scheduler-aware RCU; atomics.c: the
 * instrumentation runtime).  See sched.h for the rules.
 *
 * Locking: everything here is read and written only by the thread that
 * holds the baton (sched_self == S.cur), except S.step and S.on, which the
 * real-time watchdog reads atomically.  These files are compiled without
 * the instrumentation, so nothing here is itself a scheduling point.
 */
#ifndef TDP_SCHED_INTERNAL_H
#define TDP_SCHED_INTERNAL_H

#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>

#include "sched/sched.h"

#define SCHED_MAX_THREADS 128

enum st_state { ST_RUN, ST_BLOCKED, ST_WAIT, ST_SLEEP, ST_DONE };

struct sthread {
	unsigned id;		/* creation order; thread 0 started the run */
	sem_t sem;		/* posted when this thread gets the baton */
	enum st_state state;
	const void *obj;	/* ST_BLOCKED: woken by sched_wake(obj) */
	bool (*pred)(void *);	/* ST_WAIT: runnable once pred(arg) */
	void *arg;
	uint64_t wake_ns;	/* ST_SLEEP: runnable once vnow >= wake_ns */
	int64_t prio;		/* PCT: larger runs first */
	uint64_t run_len;	/* steps in a row while others could run */
	uint64_t steps;		/* decisions taken at its points */
	enum tdp_sched_kind kind; /* of its last step, for dumps */
	const void *ra;		  /* code address of its last step */
	unsigned priv;		/* TDP_SCHED_PRIVATE_BEGIN nesting */
	unsigned rcu_nest;	/* RCU read-side nesting */
	uint64_t rcu_qs;	/* read sections completed */
	pthread_t pth;
	void *(*fn)(void *);
	void *fn_arg;
};

struct sched_trace {
	uint64_t step;
	unsigned tid;
	enum tdp_sched_kind kind;
	const void *obj;
	const void *ra;
	const char *note; /* SK_NOTE: a string literal */
};

struct sched_state {
	int on;			/* atomic: scheduling is active */
	struct tdp_sched_config cfg;
	struct sthread *th[SCHED_MAX_THREADS];
	unsigned nth;
	struct sthread *cur;	/* the baton holder */
	uint64_t step;		/* decisions; atomic for the watchdog */
	uint64_t lone;		/* points where one thread could run */
	uint64_t vnow;		/* the virtual clock, ns */
	uint64_t hash;		/* FNV-1a of (thread, kind) per step */
	uint64_t rng[4];	/* the schedule's generator */
	uint64_t change[16];	/* PCT change points, sorted */
	unsigned nchange, next_change;
	int64_t low;		/* PCT: next demoted priority */
	struct sched_trace *ring;
	unsigned ring_len;
	/* rwlocks with writers waiting (writer preference) */
	struct { const void *lock; unsigned n; } ww[32];
	/* RCU */
	bool rcu_busy, rcu_stop;
	struct sthread *rcu_thread;
};

extern struct sched_state S;
extern __thread struct sthread *sched_self;

static inline bool sched_ctl(void)
{
	return __builtin_expect(sched_self != NULL, 0);
}

void sched_point_ra(enum tdp_sched_kind k, const void *obj, const void *ra);
/* Block the caller until sched_wake(@obj). */
void sched_block(enum tdp_sched_kind k, const void *obj, const void *ra);
/* Make every thread blocked on @obj runnable (not a step). */
void sched_wake(const void *obj);
void sched_sleep(uint64_t ns, const void *ra);
void sched_yield_point(const void *ra);
uint64_t sched_vnow(void);
struct sthread *sched_new_thread(void);
struct sthread *sched_find(pthread_t t);
void sched_thread_exit(struct sthread *me);
void sched_ww(const void *lock, int delta);
unsigned sched_ww_count(const void *lock);
/* rcu.c */
void sched_rcu_start(void);
void sched_rcu_stop(void);

#endif
