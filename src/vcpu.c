/* SPDX-License-Identifier: MIT */
/*
 * vcpu.c - vCPU mode, requests, kicks with acknowledgement, root loading,
 * and the run loop of a guest access: enter guest mode, translate through
 * the simulated hardware (hw.c), copy, exit; on a violation exit, handle
 * the fault (fault.c) and enter again.
 *
 * The request/mode ordering (a Dekker pair, both sides sequentially
 * consistent):
 *   vCPU:       mode = (epoch << 1) | 1;   then read requests
 *   requester:  requests |= req;           then read mode
 * Either the vCPU sees the request before it touches its TLB, or the
 * requester sees the vCPU in guest mode and waits until that guest-mode
 * window ends (the mode word changes).  So when vm_kick_all() returns,
 * every vCPU has either processed the request or will before its next
 * guest access.  Guest-mode windows never block, so the wait is short.
 *
 * Roots: a vCPU holds a reference on each root it loaded.  Roots are
 * invalidated under mmu_lock (write) and REQ_RELOAD_ROOTS is posted in the
 * same critical section; the wait for the guest-mode windows then runs
 * after the lock is released (vm.c, invalidate_and_zap); the vCPU drops
 * invalid roots and
 * loads a valid one (under mmu_lock, so it cannot pick an invalid one)
 * before it enters guest mode, and flushes its TLB.  So a vCPU never
 * enters guest mode on an invalid root (I3).  In a confidential VM it also
 * holds the mirror root, loaded with the first direct root and kept until
 * the vCPU is destroyed (mirror roots are never invalidated while the VM
 * lives); the reload loads whichever of the two is missing (I11).
 *
 * Dirty tracking at the edges of guest mode (dirty_ring.c): every exit
 * drains the vCPU's page-modification log before its mode store, so a
 * harvest that waited for the window to end sees the pages; a write that
 * found the log full exits without a fault and walks again; with dirty
 * rings, a vCPU whose ring is soft-full does not enter guest mode at all
 * (-ENOSPC, KVM_EXIT_DIRTY_RING_FULL) until a reset frees entries.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "assert.h"
#include "percpu.h"
#include "sched/sched.h"
#include "vm.h"
#include "wordcopy.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct mode_wait {
	struct tdp_vcpu *v;
	uint64_t w;
};

/* The vCPU has left the guest-mode window it was in. */
static bool mode_changed(void *arg)
{
	struct mode_wait *mw = arg;

	return atomic_load(&mw->v->mode) != mw->w;
}

void vm_request_all(struct tdp_vm *vm, unsigned req)
{
	unsigned n = vm->cfg.max_vcpus;

	pthread_rwlock_rdlock(&vm->vcpus_lock);
	for (unsigned i = 0; i < n; i++) {
		struct tdp_vcpu *v = atomic_load(&vm->vcpus[i]);

		if (v) {
			atomic_fetch_or(&v->requests, req);
			stat_inc(vm->stats.remote_tlb_flush_requests);
		}
	}
	pthread_rwlock_unlock(&vm->vcpus_lock);
}

void vm_wait_guest_exits(struct tdp_vm *vm)
{
	unsigned n = vm->cfg.max_vcpus;

	pthread_rwlock_rdlock(&vm->vcpus_lock);
	for (unsigned i = 0; i < n; i++) {
		struct tdp_vcpu *v = atomic_load(&vm->vcpus[i]);
		uint64_t w;

		if (!v)
			continue;
		w = atomic_load(&v->mode);
		if (!(w & 1))
			continue;
		while (atomic_load(&v->mode) == w) {
			struct mode_wait mw = { v, w };

			TDP_SCHED_WAIT_UNTIL(mode_changed, &mw, SK_FLUSH_ACK);
			sched_yield();
		}
	}
	pthread_rwlock_unlock(&vm->vcpus_lock);
}

void vm_kick_all(struct tdp_vm *vm, unsigned req)
{
	vm_request_all(vm, req);
	vm_wait_guest_exits(vm);
}

void vm_flush_remote_tlbs(void *arg)
{
	struct tdp_vm *vm = arg;
	uint64_t t0 = now_ns();

	vm_kick_all(vm, REQ_TLB_FLUSH);
	stat_inc(vm->stats.remote_tlb_flush);
	stat_add(vm->stats.remote_tlb_flush_ns, now_ns() - t0);
}

static bool vcpu_roots_loaded(struct tdp_vcpu *v)
{
	return v->root[v->as_id] &&
	       (!vm_confidential(v->vm) || v->mirror_root);
}

/*
 * Load whichever root is missing: the direct root of the current address
 * space and, in a confidential VM, the mirror root (seed 003: a fast zap
 * or a generation wrap drops only the direct root; loading the mirror
 * root "with" the direct one would take a second reference on the mirror
 * root the vCPU already holds, and never reload a mirror root that went
 * alone).  Outside guest mode.
 */
static int vcpu_load_roots(struct tdp_vcpu *v)
{
	struct tdp_mmu *mmu = &v->vm->mmu;
	struct tdp_pt_page **direct = &v->root[v->as_id];
	bool mirror_missing = !v->mirror_root;
	int r;

	r = pt_cache_topup(&mmu->alloc, &v->cache, 2);
	if (r)
		return r;
	if (INJECTED(mmu->inject, INJ_MIRROR_RELOAD_WITH_DIRECT))
		mirror_missing = !*direct; /* KVM before Yan Zhao's fix */
	/* the write lock for the legacy engine, whose shadow-page hash
	 * holds its roots (KVM's mmu_alloc_direct_roots) */
	vm_walk_lock(v->vm);
	/* mirror first, as KVM does */
	if (vm_confidential(v->vm) && mirror_missing)
		v->mirror_root = root_get_or_alloc(&mmu->roots, 0,
						   mmu->root_level, true,
						   &v->cache);
	if (!*direct)
		*direct = root_get_or_alloc(&mmu->roots, v->as_id,
					    mmu->root_level, false, &v->cache);
	TDP_ASSERT(!root_invalid(*direct));
	vm_walk_unlock(v->vm);
	stat_inc(v->vm->stats.root_reloads);
	/* A new root may reuse memory the TLB has seen: flush locally. */
	tlb_flush_all(&v->tlb);
	return 0;
}

static void vcpu_drop_roots(struct tdp_vcpu *v, bool only_invalid)
{
	struct tdp_pt_page **roots[3] = { &v->root[0], &v->root[1],
					  &v->mirror_root };

	vm_walk_lock(v->vm); /* a last put frees; see vcpu_load_roots */
	for (unsigned i = 0; i < 3; i++) {
		struct tdp_pt_page *root = *roots[i];

		if (!root || (only_invalid && !root_invalid(root)))
			continue;
		root_put(&v->vm->mmu.roots, root);
		*roots[i] = NULL;
	}
	vm_walk_unlock(v->vm);
}

static int vcpu_handle_requests(struct tdp_vcpu *v)
{
	unsigned req = atomic_exchange(&v->requests, 0);

	if (req & REQ_RELOAD_ROOTS)
		vcpu_drop_roots(v, true);
	if (req & REQ_TLB_FLUSH)
		tlb_flush_all(&v->tlb);
	if (!vcpu_roots_loaded(v))
		return vcpu_load_roots(v);
	return 0;
}

int vcpu_enter_guest(struct tdp_vcpu *v)
{
	for (;;) {
		int r;

		/* KVM_BUG_ON: the external table refused an operation */
		if (tdp_mmu_dead(&v->vm->mmu))
			return -EIO;
		v->epoch++;
		atomic_store(&v->mode, (v->epoch << 1) | 1);
		if (!atomic_load(&v->requests) && vcpu_roots_loaded(v))
			return 0;
		atomic_store(&v->mode, v->epoch << 1);
		r = vcpu_handle_requests(v);
		if (r)
			return r;
	}
}

/* The log is drained before the mode says the window ended: a harvest
 * that saw the window end (vm_wait_guest_exits) sees what it logged.
 * Inlined into the run loop even under link-time optimisation, which
 * otherwise keeps it out of line (a call per guest access: a TLB hit took
 * 19.7 ns instead of 18.6). */
__attribute__((always_inline)) inline void vcpu_exit_guest(struct tdp_vcpu *v)
{
	if (v->pml_n)
		vcpu_flush_pml(v);
	atomic_store_explicit(&v->mode, v->epoch << 1, memory_order_release);
}

int tdp_vcpu_create(struct tdp_vm *vm, unsigned id, struct tdp_vcpu **out)
{
	struct tdp_vcpu *v;
	int r = 0;

	if (!vm || !out)
		return -EINVAL;
	if (id >= vm->cfg.max_vcpus)
		return -EINVAL;
	/* its own cache lines: the vCPU's thread writes its mode, TLB and
	 * stats on every access, and two vCPUs allocated back to back must
	 * not share a line (measured: populate with 2 vCPUs at 700-1000 ns
	 * per fault instead of 160-270, depending on where malloc put them) */
	v = aligned_alloc(TDP_CACHE_LINE, sizeof(*v));
	if (!v)
		return -ENOMEM;
	memset(v, 0, sizeof(*v));
	v->vm = vm;
	v->id = id;
	atomic_init(&v->mode, 0);
	atomic_init(&v->requests, 0);
	atomic_init(&v->stop_request, false);
	atomic_init(&v->dirty_index, 0);
	atomic_init(&v->reset_index, 0);
	if (vcpu_dirty_alloc(v)) {
		free(v);
		return -ENOMEM;
	}
	pthread_rwlock_wrlock(&vm->vcpus_lock);
	if (atomic_load(&vm->vcpus[id]))
		r = -EEXIST;
	else
		atomic_store(&vm->vcpus[id], v);
	pthread_rwlock_unlock(&vm->vcpus_lock);
	if (r) {
		vcpu_dirty_free(v);
		free(v);
		return r;
	}
	*out = v;
	return 0;
}

static void vcpu_stats_add(struct vcpu_stats *dst, struct vcpu_stats *src)
{
	stat_add(dst->pf_taken, stat_read(src->pf_taken));
	stat_add(dst->pf_fixed, stat_read(src->pf_fixed));
	stat_add(dst->pf_spurious, stat_read(src->pf_spurious));
	stat_add(dst->pf_retry, stat_read(src->pf_retry));
	stat_add(dst->pf_mmio, stat_read(src->pf_mmio));
	stat_add(dst->pf_ro_exit, stat_read(src->pf_ro_exit));
	stat_add(dst->tlb_hits, stat_read(src->tlb_hits));
	stat_add(dst->tlb_misses, stat_read(src->tlb_misses));
	stat_add(dst->pf_fast, stat_read(src->pf_fast));
	stat_add(dst->pf_mmio_spte_created,
		 stat_read(src->pf_mmio_spte_created));
	stat_add(dst->mmio_fast, stat_read(src->mmio_fast));
	stat_add(dst->pf_private, stat_read(src->pf_private));
	stat_add(dst->pf_attr_exit, stat_read(src->pf_attr_exit));
	stat_add(dst->pf_retry_early, stat_read(src->pf_retry_early));
	stat_add(dst->pml_logged, stat_read(src->pml_logged));
	stat_add(dst->pml_full_exits, stat_read(src->pml_full_exits));
	stat_add(dst->ring_pushes, stat_read(src->ring_pushes));
	stat_add(dst->ring_full_exits, stat_read(src->ring_full_exits));
	stat_add(dst->frame_refs, stat_read(src->frame_refs));
}

void vcpu_stats_sum(struct tdp_vm *vm, struct vcpu_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_rwlock_rdlock(&vm->vcpus_lock);
	vcpu_stats_add(out, &vm->retired);
	for (unsigned i = 0; i < vm->cfg.max_vcpus; i++) {
		struct tdp_vcpu *v = atomic_load(&vm->vcpus[i]);

		if (v)
			vcpu_stats_add(out, &v->st);
	}
	pthread_rwlock_unlock(&vm->vcpus_lock);
}

void vcpu_close_window(struct tdp_vcpu *v)
{
	if (v->in_window) {
		v->in_window = false;
		vcpu_exit_guest(v);
	}
}

void tdp_vcpu_destroy(struct tdp_vcpu *v)
{
	struct tdp_vm *vm;

	if (!v)
		return;
	vcpu_close_window(v);
	vm = v->vm;
	/* Once this returns no flusher looks at v (vm.h). */
	pthread_rwlock_wrlock(&vm->vcpus_lock);
	atomic_store(&vm->vcpus[v->id], NULL);
	vcpu_stats_add(&vm->retired, &v->st);
	pthread_rwlock_unlock(&vm->vcpus_lock);
	vcpu_drop_roots(v, false);
	pt_cache_drain(&v->cache);
	TDP_ASSERT(!v->pml_n); /* drained at every exit */
	vcpu_dirty_free(v);
	free(v);
}

int tdp_vcpu_set_as(struct tdp_vcpu *v, unsigned as_id)
{
	if (!v || as_id >= v->vm->cfg.nr_as)
		return -EINVAL;
	vcpu_close_window(v);
	if (v->as_id != as_id) {
		v->as_id = as_id;
		tlb_flush_all(&v->tlb);
	}
	return 0;
}

/* ---------------------------------------------------------------- */
/* The run loop                                                      */
/* ---------------------------------------------------------------- */

static int vcpu_access_slot(struct tdp_vcpu *v, uint64_t gpa, void *buf,
			    uint64_t len, enum tdp_access acc);

/* The calling thread counts on its vCPU's slot (percpu.h) for the
 * access, and on its previous one again afterwards (a test hook may run
 * another vCPU inside a fault). */
static int vcpu_access(struct tdp_vcpu *v, uint64_t gpa, void *buf,
		       uint64_t len, enum tdp_access acc)
{
	unsigned old;
	int r;

	if (!v)
		return -EINVAL;
	vcpu_close_window(v);
	old = tdp_swap_slot(tdp_vcpu_slot(v->id));
	r = vcpu_access_slot(v, gpa, buf, len, acc);
	tdp_set_slot(old);
	return r;
}

static int vcpu_access_slot(struct tdp_vcpu *v, uint64_t gpa, void *buf,
			    uint64_t len, enum tdp_access acc)
{
	uint8_t *base;
	uint8_t *p = buf;

	if (!v || (!buf && len))
		return -EINVAL;
	if (gpa + len < gpa || gpa + len > vm_max_gpa(v->vm))
		return -EINVAL;
	base = host_frame_base(v->vm->host);
	while (len) {
		uint64_t off = gpa & (TDP_PAGE_SIZE - 1);
		uint64_t n = TDP_PAGE_SIZE - off < len ? TDP_PAGE_SIZE - off
							: len;

		for (;;) {
			uint64_t pfn;
			int r;

			/* KVM_EXIT_DIRTY_RING_FULL: before the page */
			if (v->ring && vcpu_ring_soft_full(v)) {
				stat_own_inc(v->st.ring_full_exits);
				return -ENOSPC;
			}
			r = vcpu_enter_guest(v);
			if (r)
				return r;
			if (v->vm->hooks.guest_entered)
				v->vm->hooks.guest_entered(v, gpa,
							   v->vm->hooks.arg);
			pfn = hw_translate(v, gpa >> 12, acc);
			if (pfn != ~0ull) {
				uint8_t *frame = base + (pfn << 12) + off;

				if (v->vm->hooks.in_guest)
					v->vm->hooks.in_guest(v, gpa,
							      v->vm->hooks.arg);
				if (acc == ACC_WRITE)
					wordcopy_to_frame(frame, p, n);
				else
					wordcopy_from_frame(p, frame, n);
				vcpu_exit_guest(v);
				break;
			}
			vcpu_exit_guest(v);
			if (v->exit_pml_full) {
				/* the exit drained the log: walk again */
				v->exit_pml_full = false;
				continue;
			}
			r = tdp_page_fault(v, gpa, acc, v->exit_kind, false);
			if (r)
				return r;
		}
		gpa += n;
		p += n;
		len -= n;
	}
	return 0;
}

int tdp_vcpu_read(struct tdp_vcpu *v, uint64_t gpa, void *buf, uint64_t len)
{
	return vcpu_access(v, gpa, buf, len, ACC_READ);
}

int tdp_vcpu_write(struct tdp_vcpu *v, uint64_t gpa, const void *buf,
		   uint64_t len)
{
	return vcpu_access(v, gpa, (void *)buf, len, ACC_WRITE);
}

int tdp_vcpu_fetch(struct tdp_vcpu *v, uint64_t gpa, void *buf, uint64_t len)
{
	return vcpu_access(v, gpa, buf, len, ACC_FETCH);
}

/* ---------------------------------------------------------------- */
/* Direct access (emulators)                                         */
/* ---------------------------------------------------------------- */

/* Translate @gfn for every access of @access (TDP_PROT_*) inside the open
 * window; ~0 and the first access that failed in *@failed otherwise. */
static uint64_t window_translate(struct tdp_vcpu *v, uint64_t gfn,
				 unsigned access, enum tdp_access *failed)
{
	static const struct {
		unsigned prot;
		enum tdp_access acc;
	} kinds[] = {{TDP_PROT_READ, ACC_READ},
		     {TDP_PROT_WRITE, ACC_WRITE},
		     {TDP_PROT_EXEC, ACC_FETCH}};
	uint64_t pfn = ~0ull;

	for (unsigned i = 0; i < 3; i++) {
		if (!(access & kinds[i].prot))
			continue;
		/* the window holds off every flush: one leaf for all */
		pfn = hw_translate(v, gfn, kinds[i].acc);
		if (pfn == ~0ull) {
			*failed = kinds[i].acc;
			return pfn;
		}
	}
	return pfn;
}

static int vcpu_map_slot(struct tdp_vcpu *v, uint64_t gpa, unsigned access,
			 void **ptr)
{
	bool had_window = v->in_window, left = false;

	for (;;) {
		enum tdp_access failed = ACC_READ;
		uint64_t pfn;
		int r;

		if (!v->in_window) {
			if (v->ring && vcpu_ring_soft_full(v)) {
				stat_own_inc(v->st.ring_full_exits);
				return -ENOSPC;
			}
			r = vcpu_enter_guest(v);
			if (r)
				return r;
			v->in_window = true;
		}
		pfn = window_translate(v, gpa >> 12, access, &failed);
		if (pfn != ~0ull) {
			*ptr = host_frame_base(v->vm->host) + (pfn << 12) +
			       (gpa & (TDP_PAGE_SIZE - 1));
			return had_window && left;
		}
		/* the fault runs outside guest mode: the window ends */
		vcpu_close_window(v);
		left = true;
		if (v->exit_pml_full) {
			v->exit_pml_full = false; /* drained: again */
			continue;
		}
		r = tdp_page_fault(v, gpa, failed, v->exit_kind, false);
		if (r)
			return r; /* the window is closed */
	}
}

int tdp_vcpu_map(struct tdp_vcpu *v, uint64_t gpa, unsigned access,
		 void **ptr)
{
	unsigned old;
	int r;

	if (!v || !ptr || !access ||
	    (access & ~(TDP_PROT_READ | TDP_PROT_WRITE | TDP_PROT_EXEC)) ||
	    gpa >= vm_max_gpa(v->vm))
		return -EINVAL;
	old = tdp_swap_slot(tdp_vcpu_slot(v->id));
	r = vcpu_map_slot(v, gpa, access, ptr);
	tdp_set_slot(old);
	return r;
}

int tdp_vcpu_check_requests(struct tdp_vcpu *v)
{
	if (!v)
		return -EINVAL;
	vcpu_close_window(v);
	return tdp_mmu_dead(&v->vm->mmu) ? -EIO : 0;
}
