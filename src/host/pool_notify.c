/* SPDX-License-Identifier: MIT */
/* host/pool_notify.c - the embedded host's notifiers: the invalidation calls,
 * registration and the test hook. Locking and lifetime rules: pool_internal.h.
 */
#define _GNU_SOURCE
#include "host/pool_internal.h"

/* ------------------------------------------------------------------ */
/* notifiers                                                           */
/* ------------------------------------------------------------------ */

typedef void (*invalidate_fn)(struct tdp_host_notifier *n, uint64_t start,
			      uint64_t end);

/* Every notifier's invalidate_start, or with @priv its
 * invalidate_private_start; notifiers without the op are skipped. */
void notify_start(struct pool *h, uint64_t start, uint64_t end, bool priv)
{
	for (struct tdp_host_notifier *n = h->notifiers; n; n = n->next) {
		invalidate_fn fn = !n->ops ? NULL
				   : priv  ? n->ops->invalidate_private_start
					   : n->ops->invalidate_start;

		if (!fn)
			continue;
		fn(n, start, end);
		STAT_ADD(h, notifier_calls, 1);
	}
}

/* Every notifier's invalidate_end, or with @priv invalidate_private_end */
void notify_end(struct pool *h, uint64_t start, uint64_t end, bool priv)
{
	for (struct tdp_host_notifier *n = h->notifiers; n; n = n->next) {
		invalidate_fn fn = !n->ops ? NULL
				   : priv  ? n->ops->invalidate_private_end
					   : n->ops->invalidate_end;

		if (fn)
			fn(n, start, end);
	}
}

void call_hook(struct pool *h, uint64_t start, uint64_t end)
{
	if (h->hook_fn)
		h->hook_fn(h->hook_arg, start, end);
}

void pool_notifier_register(struct tdp_host *th, struct tdp_host_notifier *n)
{
	struct pool *h = to_pool(th);
	struct tdp_host_notifier *p;

	if (!h || !n)
		return;
	if (mmap_write_lock(h)) {
		fprintf(stderr, "tdpmmu host: notifier registered from a "
				"notifier callback; ignored\n");
		return;
	}
	for (p = h->notifiers; p && p != n; p = p->next)
		;
	if (!p) {
		n->next = h->notifiers;
		h->notifiers = n;
	}
	mmap_write_unlock(h);
}

void pool_notifier_unregister(struct tdp_host *th, struct tdp_host_notifier *n)
{
	struct pool *h = to_pool(th);
	struct tdp_host_notifier **pp;

	if (!h || !n)
		return;
	if (mmap_write_lock(h)) {
		fprintf(stderr, "tdpmmu host: notifier unregistered from a "
				"notifier callback; ignored\n");
		return;
	}
	for (pp = &h->notifiers; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			n->next = NULL;
			break;
		}
	}
	mmap_write_unlock(h);
}

void pool_set_test_hook(struct tdp_host *th,
			void (*fn)(void *arg, uint64_t start, uint64_t end),
			void *arg)
{
	struct pool *h = to_pool(th);
	bool nested;

	if (!h)
		return;
	nested = in_write_section(h);
	if (!nested)
		mmap_write_lock(h);
	h->hook_fn = fn;
	h->hook_arg = arg;
	if (!nested)
		mmap_write_unlock(h);
}
