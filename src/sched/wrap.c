/* SPDX-License-Identifier: MIT */
/*
 * wrap.c - the calls a controlled thread must not make to the kernel
 * directly, wrapped with -Wl,--wrap=NAME when the tool is linked in a
 * TDP_SCHED build (CMakeLists.txt lists them).  For an uncontrolled
 * thread each wrapper is the real call.  For a controlled one:
 *  - lock and trylock are scheduling points; a lock that is taken blocks
 *    the thread in the scheduler until an unlock of the same object;
 *    rwlocks prefer writers (a reader waits while a writer waits), as
 *    mmu_lock and the host's mmap lock do in normal builds;
 *  - unlock releases, wakes the object's waiters and is a point;
 *  - thread create and join are points; a created thread is controlled
 *    and starts only when the scheduler picks it;
 *  - sched_yield is a yield point (PCT demotes the yielder);
 *  - usleep and nanosleep sleep on the virtual clock;
 *  - clock_gettime(CLOCK_MONOTONIC*) reads the virtual clock.
 * Rules in sched.h.
 */
#define _GNU_SOURCE
#include "sched/internal.h"

#include <errno.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#define RA __builtin_return_address(0)

int __real_pthread_mutex_lock(pthread_mutex_t *m);
int __real_pthread_mutex_trylock(pthread_mutex_t *m);
int __real_pthread_mutex_unlock(pthread_mutex_t *m);
int __real_pthread_rwlock_rdlock(pthread_rwlock_t *l);
int __real_pthread_rwlock_wrlock(pthread_rwlock_t *l);
int __real_pthread_rwlock_tryrdlock(pthread_rwlock_t *l);
int __real_pthread_rwlock_trywrlock(pthread_rwlock_t *l);
int __real_pthread_rwlock_unlock(pthread_rwlock_t *l);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *a,
			  void *(*fn)(void *), void *arg);
int __real_pthread_join(pthread_t t, void **ret);
int __real_sched_yield(void);
int __real_usleep(useconds_t us);
int __real_nanosleep(const struct timespec *req, struct timespec *rem);
int __real_clock_gettime(clockid_t c, struct timespec *ts);

int __wrap_pthread_mutex_lock(pthread_mutex_t *m);
int __wrap_pthread_mutex_trylock(pthread_mutex_t *m);
int __wrap_pthread_mutex_unlock(pthread_mutex_t *m);
int __wrap_pthread_rwlock_rdlock(pthread_rwlock_t *l);
int __wrap_pthread_rwlock_wrlock(pthread_rwlock_t *l);
int __wrap_pthread_rwlock_tryrdlock(pthread_rwlock_t *l);
int __wrap_pthread_rwlock_trywrlock(pthread_rwlock_t *l);
int __wrap_pthread_rwlock_unlock(pthread_rwlock_t *l);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a,
			  void *(*fn)(void *), void *arg);
int __wrap_pthread_join(pthread_t t, void **ret);
int __wrap_sched_yield(void);
int __wrap_usleep(useconds_t us);
int __wrap_nanosleep(const struct timespec *req, struct timespec *rem);
int __wrap_clock_gettime(clockid_t c, struct timespec *ts);

int __wrap_pthread_mutex_lock(pthread_mutex_t *m)
{
	if (!sched_ctl())
		return __real_pthread_mutex_lock(m);
	sched_point_ra(SK_MUTEX, m, RA);
	while (__real_pthread_mutex_trylock(m) == EBUSY)
		sched_block(SK_MUTEX, m, RA);
	return 0;
}

int __wrap_pthread_mutex_trylock(pthread_mutex_t *m)
{
	if (sched_ctl())
		sched_point_ra(SK_MUTEX_TRY, m, RA);
	return __real_pthread_mutex_trylock(m);
}

int __wrap_pthread_mutex_unlock(pthread_mutex_t *m)
{
	int r = __real_pthread_mutex_unlock(m);

	if (sched_ctl()) {
		sched_wake(m);
		sched_point_ra(SK_MUTEX_UNLOCK, m, RA);
	}
	return r;
}

int __wrap_pthread_rwlock_rdlock(pthread_rwlock_t *l)
{
	if (!sched_ctl())
		return __real_pthread_rwlock_rdlock(l);
	sched_point_ra(SK_RDLOCK, l, RA);
	while (sched_ww_count(l) || __real_pthread_rwlock_tryrdlock(l))
		sched_block(SK_RDLOCK, l, RA);
	return 0;
}

int __wrap_pthread_rwlock_wrlock(pthread_rwlock_t *l)
{
	if (!sched_ctl())
		return __real_pthread_rwlock_wrlock(l);
	sched_point_ra(SK_WRLOCK, l, RA);
	while (__real_pthread_rwlock_trywrlock(l)) {
		sched_ww(l, 1);
		sched_block(SK_WRLOCK, l, RA);
		sched_ww(l, -1);
	}
	return 0;
}

int __wrap_pthread_rwlock_tryrdlock(pthread_rwlock_t *l)
{
	if (sched_ctl())
		sched_point_ra(SK_RWLOCK_TRY, l, RA);
	return __real_pthread_rwlock_tryrdlock(l);
}

int __wrap_pthread_rwlock_trywrlock(pthread_rwlock_t *l)
{
	if (sched_ctl())
		sched_point_ra(SK_RWLOCK_TRY, l, RA);
	return __real_pthread_rwlock_trywrlock(l);
}

int __wrap_pthread_rwlock_unlock(pthread_rwlock_t *l)
{
	int r = __real_pthread_rwlock_unlock(l);

	if (sched_ctl()) {
		sched_wake(l);
		sched_point_ra(SK_RWLOCK_UNLOCK, l, RA);
	}
	return r;
}

static void *trampoline(void *p)
{
	struct sthread *me = p;
	void *ret;

	while (sem_wait(&me->sem))
		;
	sched_self = me;
	ret = me->fn(me->fn_arg);
	sched_thread_exit(me);
	return ret;
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a,
			  void *(*fn)(void *), void *arg)
{
	struct sthread *st;
	int r;

	if (!sched_ctl())
		return __real_pthread_create(t, a, fn, arg);
	st = sched_new_thread();
	st->fn = fn;
	st->fn_arg = arg;
	r = __real_pthread_create(&st->pth, a, trampoline, st);
	if (r) {
		st->state = ST_DONE;
		return r;
	}
	*t = st->pth;
	sched_point_ra(SK_CREATE, st, RA);
	return 0;
}

int __wrap_pthread_join(pthread_t t, void **ret)
{
	struct sthread *st;

	if (sched_ctl() && (st = sched_find(t))) {
		sched_point_ra(SK_JOIN, st, RA);
		while (st->state != ST_DONE)
			sched_block(SK_JOIN, st, RA);
	}
	/* the thread has handed the baton on and is leaving */
	return __real_pthread_join(t, ret);
}

int __wrap_sched_yield(void)
{
	if (!sched_ctl())
		return __real_sched_yield();
	sched_yield_point(RA);
	return 0;
}

int __wrap_usleep(useconds_t us)
{
	if (!sched_ctl())
		return __real_usleep(us);
	sched_sleep((uint64_t)us * 1000, RA);
	return 0;
}

int __wrap_nanosleep(const struct timespec *req, struct timespec *rem)
{
	if (!sched_ctl())
		return __real_nanosleep(req, rem);
	sched_sleep((uint64_t)req->tv_sec * 1000000000ull +
			    (uint64_t)req->tv_nsec,
		    RA);
	if (rem)
		rem->tv_sec = rem->tv_nsec = 0;
	return 0;
}

int __wrap_clock_gettime(clockid_t c, struct timespec *ts)
{
	uint64_t v;

	if (!sched_ctl() || (c != CLOCK_MONOTONIC && c != CLOCK_MONOTONIC_RAW &&
			     c != CLOCK_MONOTONIC_COARSE))
		return __real_clock_gettime(c, ts);
	v = sched_vnow();
	ts->tv_sec = (time_t)(v / 1000000000ull);
	ts->tv_nsec = (long)(v % 1000000000ull);
	return 0;
}
