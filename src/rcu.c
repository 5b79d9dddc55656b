/* SPDX-License-Identifier: MIT */
/* rcu.c - see rcu.h for what RCU protects and the registration rules. */
#include "rcu.h"

#include <pthread.h>
#include <stdlib.h>

#include "assert.h"

__thread bool tdp_rcu_registered __attribute__((tls_model("initial-exec")));
__thread int tdp_rcu_depth __attribute__((tls_model("initial-exec")));
char tdp_rcu_tsan_sync, tdp_rcu_tsan_done;

#ifdef TDP_SCHED
/* call_rcu, synchronize and barrier are src/sched/rcu.c's */
void tdp_rcu_register_slow(void)
{
	tdp_rcu_registered = true;
}
#else

static pthread_key_t rcu_key;
static pthread_once_t rcu_once = PTHREAD_ONCE_INIT;

static void rcu_thread_exit(void *arg)
{
	(void)arg;
	if (tdp_rcu_registered) {
		urcu_memb_unregister_thread();
		tdp_rcu_registered = false;
	}
}

static void rcu_key_init(void)
{
	if (pthread_key_create(&rcu_key, rcu_thread_exit))
		abort();
}

void tdp_rcu_register_slow(void)
{
	pthread_once(&rcu_once, rcu_key_init);
	urcu_memb_register_thread();
	tdp_rcu_registered = true;
	/* any non-NULL value makes the destructor run at thread exit */
	pthread_setspecific(rcu_key, (void *)1);
}

void tdp_call_rcu(struct rcu_head *head, void (*fn)(struct rcu_head *))
{
	/* what this thread did to the object happens before the callback */
	tdp_tsan_release(&tdp_rcu_tsan_sync);
	tdp_rcu_ensure_registered();
	urcu_memb_call_rcu(head, fn);
}

void tdp_synchronize_rcu(void)
{
	TDP_ASSERT(!tdp_rcu_read_held());
	tdp_rcu_ensure_registered();
	urcu_memb_synchronize_rcu();
	tdp_tsan_acquire(&tdp_rcu_tsan_sync);
}

void tdp_rcu_barrier(void)
{
	TDP_ASSERT(!tdp_rcu_read_held());
	tdp_rcu_ensure_registered();
	urcu_memb_barrier();
	tdp_tsan_acquire(&tdp_rcu_tsan_done);
}
#endif
