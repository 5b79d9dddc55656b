/* SPDX-License-Identifier: MIT */
/*
 * host.c - the public host API (tdpmmu.h tdp_host_*), backend-neutral:
 * each call goes to the host's backend through its ops (host.h).  The
 * configuration picks the backend: the embedded pool or the process
 * backend (proc.c).
 * Locking and lifetime: the backend's (pool_internal.h).  A NULL host
 * fails with -EINVAL (destroy and get_stats: nothing done).
 */
#include <errno.h>

#include "host/host.h"

int tdp_host_create(const struct tdp_host_config *cfg, struct tdp_host **out)
{
	unsigned backend = cfg ? cfg->backend : TDP_HOST_POOL;

	if (backend == TDP_HOST_PROCESS)
		return proc_host_create(cfg, out);
	if (backend != TDP_HOST_POOL)
		return -EINVAL;
	return pool_host_create(cfg, out);
}

void tdp_host_destroy(struct tdp_host *h)
{
	if (h)
		h->ops->destroy(h);
}

void tdp_host_get_stats(struct tdp_host *h, struct tdp_host_stats *out)
{
	if (h)
		h->ops->get_stats(h, out);
}

int tdp_host_mmap(struct tdp_host *h, uint64_t len, unsigned prot,
		  uint64_t folio_size, unsigned flags, uint64_t *hva)
{
	return h ? h->ops->mmap(h, len, prot, folio_size, flags, hva) : -EINVAL;
}

int tdp_host_munmap(struct tdp_host *h, uint64_t hva, uint64_t len)
{
	return h ? h->ops->munmap(h, hva, len) : -EINVAL;
}

int tdp_host_punch_hole(struct tdp_host *h, uint64_t hva, uint64_t len)
{
	return h ? h->ops->punch_hole(h, hva, len) : -EINVAL;
}

int tdp_host_mprotect(struct tdp_host *h, uint64_t hva, uint64_t len,
		      unsigned prot)
{
	return h ? h->ops->mprotect(h, hva, len, prot) : -EINVAL;
}

int tdp_host_migrate(struct tdp_host *h, uint64_t hva, uint64_t len)
{
	return h ? h->ops->migrate(h, hva, len) : -EINVAL;
}

int tdp_host_swap_out(struct tdp_host *h, uint64_t hva, uint64_t len)
{
	return h ? h->ops->swap_out(h, hva, len) : -EINVAL;
}

int tdp_host_split(struct tdp_host *h, uint64_t hva, uint64_t len)
{
	return h ? h->ops->split(h, hva, len) : -EINVAL;
}

int tdp_host_read(struct tdp_host *h, uint64_t hva, void *buf, uint64_t len)
{
	return h ? h->ops->read(h, hva, buf, len) : -EINVAL;
}

int tdp_host_write(struct tdp_host *h, uint64_t hva, const void *buf,
		   uint64_t len)
{
	return h ? h->ops->write(h, hva, buf, len) : -EINVAL;
}

int tdp_host_age(struct tdp_host *h, uint64_t hva, uint64_t len, unsigned flags,
		 uint64_t *young)
{
	return h ? h->ops->age(h, hva, len, flags, young) : -EINVAL;
}

int tdp_host_set_missing(struct tdp_host *h, uint64_t hva, uint64_t len,
			 tdp_host_fill_fn fn, void *arg)
{
	return h ? h->ops->set_missing(h, hva, len, fn, arg) : -EINVAL;
}
