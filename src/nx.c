/* SPDX-License-Identifier: MIT */
/*
 * nx.c - NX huge pages (KVM's iTLB-multihit mitigation, nx_huge_pages):
 * the recovery pass and its worker.
 *
 * With TDP_VM_NX_HUGE_PAGES a huge leaf is never executable (fault.c drops
 * X; huge-page recovery after dirty logging too, dirty.c), and an
 * instruction fetch where a huge leaf could be maps 4 KiB: the tables it
 * links in place of that huge leaf are flagged nx_disallowed and counted
 * in mmu->nx_tables (mmu.c), until they are removed by anything (the count
 * drops where every removed table is accounted, handle_removed_pt).  A
 * fault that would map huge over such a table maps below it instead
 * (KVM's disallowed_hugepage_adjust), so fetches and data accesses do not
 * take turns breaking each other's mappings.  Recovery zaps 1/ratio of the
 * flagged tables per pass (KVM's nx_huge_pages_recovery_ratio), so the
 * memory they cover can be mapped huge again; under mmu_lock held for
 * read in the TDP engine (compare-exchanges, KVM since 2025), for write in
 * the legacy engine and with TDP_VM_NX_RECOVER_LOCKED (the baseline).
 *
 * The worker (cfg.nx_recovery_period_ms) runs a pass every period until
 * the VM is destroyed; nx_lock/nx_cond let destroy wake it.  Lifetime: it
 * is joined in tdp_vm_destroy before anything it uses goes.
 */
#include <errno.h>
#include <time.h>

#include "vm.h"

/* The write lock where the engine changes entries only under it (the
 * front end's exclusive engines: legacy) and for the baseline. */
static bool nx_write_locked(const struct tdp_vm *vm)
{
	return vm->engine->exclusive ||
	       (vm->cfg.flags & TDP_VM_NX_RECOVER_LOCKED);
}

static uint64_t nx_pass(struct tdp_vm *vm, unsigned ratio)
{
	long long n = atomic_load(&vm->mmu.nx_tables);
	uint64_t budget, zapped;
	bool wl = nx_write_locked(vm);

	if (n <= 0)
		return 0;
	budget = ((uint64_t)n + ratio - 1) / ratio;
	if (wl)
		tdp_write_lock(&vm->mmu.lock);
	else
		tdp_read_lock(&vm->mmu.lock);
	zapped = tdp_mmu_zap_nx_tables(&vm->mmu, budget);
	if (wl)
		tdp_write_unlock(&vm->mmu.lock);
	else
		tdp_read_unlock(&vm->mmu.lock);
	stat_add(vm->stats.nx_recovered, zapped);
	return zapped;
}

int tdp_vm_recover_nx_huge_pages(struct tdp_vm *vm, unsigned ratio,
				 uint64_t *zapped)
{
	uint64_t z;

	if (zapped)
		*zapped = 0;
	if (!vm || !ratio)
		return -EINVAL;
	if (!(vm->cfg.flags & TDP_VM_NX_HUGE_PAGES))
		return -EOPNOTSUPP;
	z = nx_pass(vm, ratio);
	if (zapped)
		*zapped = z;
	return 0;
}

static void *nx_worker(void *arg)
{
	struct tdp_vm *vm = arg;
	unsigned ms = vm->cfg.nx_recovery_period_ms;

	pthread_mutex_lock(&vm->nx_lock);
	while (!vm->nx_stop) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += ms / 1000;
		ts.tv_nsec += (long)(ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&vm->nx_cond, &vm->nx_lock, &ts);
		if (vm->nx_stop)
			break;
		pthread_mutex_unlock(&vm->nx_lock);
		nx_pass(vm, vm->cfg.nx_recovery_ratio);
		pthread_mutex_lock(&vm->nx_lock);
	}
	pthread_mutex_unlock(&vm->nx_lock);
	return NULL;
}

int vm_nx_worker_start(struct tdp_vm *vm)
{
	pthread_mutex_init(&vm->nx_lock, NULL);
	pthread_cond_init(&vm->nx_cond, NULL);
	if (!(vm->cfg.flags & TDP_VM_NX_HUGE_PAGES) ||
	    !vm->cfg.nx_recovery_period_ms)
		return 0;
	if (pthread_create(&vm->nx_worker, NULL, nx_worker, vm))
		return -ENOMEM;
	vm->nx_worker_running = true;
	return 0;
}

void vm_nx_worker_stop(struct tdp_vm *vm)
{
	if (vm->nx_worker_running) {
		pthread_mutex_lock(&vm->nx_lock);
		vm->nx_stop = true;
		pthread_cond_signal(&vm->nx_cond);
		pthread_mutex_unlock(&vm->nx_lock);
		pthread_join(vm->nx_worker, NULL);
		vm->nx_worker_running = false;
	}
	pthread_mutex_destroy(&vm->nx_lock);
	pthread_cond_destroy(&vm->nx_cond);
}
