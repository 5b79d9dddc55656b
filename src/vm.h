/* SPDX-License-Identifier: MIT */
/*
 * vm.h - the VM and vCPU objects, tying the MMU to memslots, the host
 * notifier and the simulated hardware.  Top layer: includes everything
 * below it.
 *
 * Locks, in the order they may be taken:
 *   slots_lock (memslot updates) -> host mmap lock -> mmu_lock ->
 *   vcpus_lock (read: remote flushes) -> roots list_lock / pt allocator
 *   vcpus_lock is a reader-preferring rwlock: flushers take it for read
 *   (so they never wait for each other, nor for a grace period); vCPU
 *   create/destroy take it for write and never take mmu_lock under it.
 * The fault path takes the host mmap lock (host_gup) only while NOT holding
 * mmu_lock.  A remote TLB flush may be requested with mmu_lock held: it
 * waits only for vCPUs in guest mode, which never block.
 *
 * Lifetimes: memslot sets are protected by the VM's srcu domain (not the
 * table-freeing RCU: srcu.h says why); a vCPU is freed after it was
 * removed from vcpus[] under vcpus_lock (write), so no flusher still
 * looks at it.
 */
#ifndef TDP_VM_H
#define TDP_VM_H

#include <pthread.h>
#include <stdatomic.h>

#include "frontend.h"
#include "host/host.h"
#include "legacy.h"
#include "memslot.h"
#include "mmu.h"
#include "notifier.h"
#include "srcu.h"
#include "tdpmmu.h"

/* ---- simulated hardware state (hw.c) ---- */
#define TLB_SETS 64
#define PSC_SETS 16

struct tlb_entry {
	uint64_t tag;	/* gfn >> level_shift(level), +1 so 0 = empty */
	uint64_t pfn;	/* first frame of the mapping */
	uint64_t fill;	/* tdp_tlb.fills when it was filled */
	uint8_t perms;	/* SPTE_PERM_R/W/X (spte_perms) */
	bool dirty;	/* D known set: writes need no walk */
};

struct psc_entry {
	uint64_t tag;	  /* gfn >> 9, +1 so 0 = empty */
	uint64_t *table;  /* the level-1 table for it */
};

struct tdp_tlb {
	struct tlb_entry e[4][TLB_SETS]; /* by level 1..3 */
	struct psc_entry psc[PSC_SETS];
	/* entries filled and whole flushes so far: written by the vCPU's
	 * thread only, read by oracles (vcpu_tlb_check) */
	atomic_ullong fills, flushes;
};

/* ---- vCPU ---- */
#define PML_ENTRIES 512
enum { REQ_TLB_FLUSH = 1u << 0, REQ_RELOAD_ROOTS = 1u << 1 };

/* Written only by the vCPU's thread (stat_own_add); read by anyone. */
struct vcpu_stats {
	atomic_ullong pf_taken, pf_fixed, pf_spurious, pf_retry, pf_mmio,
		pf_ro_exit, tlb_hits, tlb_misses, pf_fast, pf_mmio_spte_created,
		mmio_fast, pf_private, pf_attr_exit, pf_retry_early,
		pml_logged, pml_full_exits, ring_pushes, ring_full_exits;
	/* host frame references the vCPU's fault holds (0 or 1) */
	atomic_ullong frame_refs;
};

/* What a walk that could not translate found: the exit's reason and
 * qualification as VMX reports them.  EPT misconfiguration: an MMIO entry
 * (its reserved bits are how KVM makes one exit fast); EPT violation: not
 * present, or present without the permission (PFERR_PRESENT). */
enum tdp_exit {
	EXIT_VIOLATION,		/* not present */
	EXIT_VIOLATION_PRESENT, /* present leaf, permission missing */
	EXIT_MISCONFIG,		/* an MMIO entry */
};

struct tdp_vcpu {
	struct tdp_vm *vm;
	unsigned id;
	unsigned as_id;
	/* (epoch << 1) | in_guest; written by the vCPU thread only */
	atomic_ullong mode;
	uint64_t epoch;
	atomic_uint requests;
	struct tdp_pt_page *root[2]; /* loaded roots, each with a reference */
	/* confidential VMs: the mirror root (private gpas), with a
	 * reference; loaded with the direct root, kept until destroy */
	struct tdp_pt_page *mirror_root;
	struct pt_cache cache;
	struct tdp_tlb tlb;
	/* what the last walk that failed found (set by hw_walk) */
	enum tdp_exit exit_kind;
	/* TDP_VM_PML: the last exit was for a full log, not a violation */
	bool exit_pml_full;
	/* TDP_VM_PML: the page-modification log of PML_ENTRIES (hw.c
	 * appends, the vCPU's thread drains it at every exit from guest
	 * mode: dirty_ring.c); an entry is the leaf's first gfn << 2 |
	 * (level - 1).  Allocated apart, so the vCPU stays compact. */
	unsigned pml_n;
	uint64_t *pml;
	/* the dirty ring (dirty_ring.c): dirty_index is written by the
	 * vCPU thread only and read by the reset, to stop there;
	 * reset_index is written by tdp_vm_reset_dirty_rings (slots_lock)
	 * and read by the vCPU thread to find free entries */
	struct tdp_dirty_gfn *ring;
	_Atomic uint32_t dirty_index;
	_Atomic uint32_t reset_index;
	/* a direct-access window is open (tdp_vcpu_map): the vCPU stays in
	 * guest mode until tdp_vcpu_check_requests or its next access */
	bool in_window;
	/* tdp_vcpu_request_stop (any thread): the next pre-fault step ends
	 * the call and clears it (prefault.c) */
	atomic_bool stop_request;
	struct vcpu_stats st;
	struct rcu_head rcu;
} __attribute__((aligned(TDP_CACHE_LINE))); /* no line shared with another vCPU */

/* ---- test hooks: deterministic races in tests ---- */
struct vm_test_hooks {
	/* fault path: after host_gup returned the frame, before mmu_lock */
	void (*fault_after_gup)(struct tdp_vcpu *v, uint64_t gfn, void *arg);
	/* guest mode: entered, before the translation */
	void (*guest_entered)(struct tdp_vcpu *v, uint64_t gpa, void *arg);
	/* guest mode: translation done, before the data is copied */
	void (*in_guest)(struct tdp_vcpu *v, uint64_t gpa, void *arg);
	void *arg;
};

/* ---- VM ---- */
struct tdp_vm {
	struct tdp_host *host;
	struct tdp_host_notifier hn;
	struct tdp_vm_config cfg;
	struct tdp_mmu mmu;
	const struct mmu_engine *engine; /* the front end's (frontend.h) */
	struct vm_stats stats;
	struct mn_state mn;
	pthread_mutex_t slots_lock;
	struct tdp_srcu srcu;	      /* protects memslots[] (srcu.h) */
	struct memslots *memslots[2]; /* published with release stores */
	/* the last VM_QUARANTINE retired sets, freed late (memslot.h:
	 * retired); slots_lock */
#define VM_QUARANTINE 4
	struct memslots *quarantine[VM_QUARANTINE];
	unsigned quarantine_next;
	/* the legacy engine's last reverse-map slot (vm_rmap_of): under
	 * mmu_lock held for write */
	struct rmap_cache {
		uint64_t gen; /* slots_gen when found (even) */
		unsigned as_id;
		uint64_t base_gfn, npages;
		struct slot_rmaps *rm;
	} rmap_cache;
	/* memslot generation, +2 per update, odd while one is in progress
	 * (MMIO entries never match then); slots_lock to change */
	atomic_ullong slots_gen;
	uint64_t mmio_gen_mask;	      /* (1 << cfg.mmio_gen_bits) - 1 */
	pthread_rwlock_t vcpus_lock;
	/* NX huge page recovery worker (nx.c), if cfg.nx_recovery_period_ms:
	 * nx_lock and nx_cond wake it early to stop */
	pthread_t nx_worker;
	bool nx_worker_running, nx_stop;
	pthread_mutex_t nx_lock;
	pthread_cond_t nx_cond;
	struct tdp_vcpu *_Atomic *vcpus; /* [cfg.max_vcpus], vcpus_lock */
	struct vcpu_stats retired;	  /* counters of destroyed vCPUs */
	struct vm_test_hooks hooks;
	/* confidential VMs: the shared bit as a gfn mask (0 otherwise) */
	uint64_t shared_gfn;
};

static inline bool vm_confidential(const struct tdp_vm *vm)
{
	return vm->shared_gfn != 0;
}

/* Is guest frame @gfn (shared bit included, as the guest gave it) a
 * private access of a confidential VM? */
static inline bool vm_gfn_private(const struct tdp_vm *vm, uint64_t gfn)
{
	return vm_confidential(vm) && !(gfn & vm->shared_gfn);
}

/* The root a vCPU maps a private (mirror root) or shared access with. */
static inline struct tdp_pt_page *vcpu_root(struct tdp_vcpu *v, bool private)
{
	return private ? v->mirror_root : v->root[v->as_id];
}

/* The root a vCPU's hardware walks for guest frame *@gfn (a TLB key:
 * shared bit included); *@gfn becomes the frame looked up there (without
 * the bit).  hw.c walks with it, the audit checks TLBs with it. */
static inline struct tdp_pt_page *vcpu_root_for(struct tdp_vcpu *v,
						uint64_t *gfn)
{
	bool private = vm_gfn_private(v->vm, *gfn);

	*gfn &= ~v->vm->shared_gfn;
	return vcpu_root(v, private);
}

static inline bool vm_exclusive_faults(const struct tdp_vm *vm)
{
	return (vm->cfg.flags & TDP_VM_EXCLUSIVE_FAULTS) ||
	       vm->engine->exclusive;
}

/* mmu_lock for a walk that changes entries by compare-exchange, or for a
 * vCPU's root load and drop: for read, or for write with the legacy
 * engine, which changes nothing (entries, reverse maps, the shadow-page
 * hash) without it */
static inline void vm_walk_lock(struct tdp_vm *vm)
{
	if (vm->engine->exclusive)
		tdp_write_lock(&vm->mmu.lock);
	else
		tdp_read_lock(&vm->mmu.lock);
}

static inline void vm_walk_unlock(struct tdp_vm *vm)
{
	if (vm->engine->exclusive)
		tdp_write_unlock(&vm->mmu.lock);
	else
		tdp_read_unlock(&vm->mmu.lock);
}

static inline struct memslots *vm_memslots(struct tdp_vm *vm, unsigned as_id)
{
	TDP_ASSERT(tdp_srcu_read_held());
	return tdp_rcu_dereference(vm->memslots[as_id]);
}

static inline uint64_t vm_max_gpa(const struct tdp_vm *vm)
{
	return 1ull << (12 + 9 * vm->cfg.root_level);
}

/* vcpu.c */
void vm_flush_remote_tlbs(void *vm);
void vm_kick_all(struct tdp_vm *vm, unsigned req);
/* The two halves of vm_kick_all: post @req to every vCPU; wait until
 * every vCPU that is in a guest-mode window now has left it.  After a
 * post and then a wait, every vCPU has processed the request or will
 * before its next guest access (the wait may start later than the post:
 * a window it does not wait for began after the post, or has ended). */
void vm_request_all(struct tdp_vm *vm, unsigned req);
void vm_wait_guest_exits(struct tdp_vm *vm);
int vcpu_enter_guest(struct tdp_vcpu *v);
void vcpu_exit_guest(struct tdp_vcpu *v);
/* nx.c: start and stop the NX huge page recovery worker (vm.c, at create
 * and destroy); start returns 0 or -errno. */
int vm_nx_worker_start(struct tdp_vm *vm);
void vm_nx_worker_stop(struct tdp_vm *vm);
/* End the vCPU's direct-access window, if one is open (vCPU thread). */
void vcpu_close_window(struct tdp_vcpu *v);
void vcpu_stats_sum(struct tdp_vm *vm, struct vcpu_stats *out);

/* hw.c */
void tlb_flush_all(struct tdp_tlb *t);

/* Test oracle (the torture's TLB promises; blind spot 6): the entries of
 * @v's TLB filled before fill number @fills_before that cover a gfn of
 * [@gfn, @gfn + @npages) and break @forbid: TLB_ANY (an entry at all),
 * TLB_WRITABLE (one allowing writes) or TLB_DIRTY_WRITE (one letting
 * writes skip the Dirty bit).  Called by @v's own thread, outside guest
 * mode.  Returns how many; the first is described in @why. */
enum { TLB_ANY = 1, TLB_WRITABLE = 2, TLB_DIRTY_WRITE = 4 };
unsigned vcpu_tlb_check(struct tdp_vcpu *v, uint64_t fills_before,
			uint64_t gfn, uint64_t npages, unsigned forbid,
			char *why, size_t len);

/* fault.c: handle an exit at @gpa.  @exit: what the walk found
 * (enum tdp_exit, vm.h); only a violation at a present leaf may be fixed
 * by the lockless fast path, and only a misconfiguration is looked up as
 * an MMIO entry.  @prefetch: a pre-fault (prefault.c), whose leaf is not
 * Accessed.  0: retry the access; -EFAULT, -EACCES, -ENOMEM: exit to the
 * caller. */
enum tdp_access { ACC_READ, ACC_WRITE, ACC_FETCH };
/* hw.c: translate @gfn for @acc as the hardware does (TLB, then a walk
 * that sets Accessed/Dirty and fills the TLB); ~0 on an exit, with
 * v->exit_kind saying what the walk found.  In guest mode only (between
 * vcpu_enter_guest and vcpu_exit_guest). */
uint64_t hw_translate(struct tdp_vcpu *v, uint64_t gfn, enum tdp_access acc);
int tdp_page_fault(struct tdp_vcpu *v, uint64_t gpa, enum tdp_access acc,
		   enum tdp_exit exit, bool prefetch);

/* Largest level at which @gfn can be mapped: within the host folio, the
 * VM's limit, inside the slot, and with gfn and hva congruent (fault.c). */
int vm_max_mapping_level(const struct tdp_vm *vm, const struct memslot *slot,
			 uint64_t gfn, unsigned host_order);

/* vm.c: the generation an MMIO entry made now would carry, or ~0 while a
 * memslot update is in progress. */
static inline uint64_t vm_mmio_gen(struct tdp_vm *vm)
{
	uint64_t g = atomic_load(&vm->slots_gen);

	return g & 1 ? ~0ull : (g >> 1) & vm->mmio_gen_mask;
}

void vm_zap_all_fast(struct tdp_vm *vm);
/* Zap [a, b), which lies in memslot @s, in the roots of @types (the
 * legacy engine: through @s's reverse maps, in every root) and flush.
 * mmu_lock held for write. */
void vm_zap_slot_locked(struct tdp_vm *vm, const struct memslot *s,
			uint64_t a, uint64_t b, unsigned types);
/* Call @fn for every memslot, in every address space, that the hva range
 * [start, end) covers part of (of its private memory if @private_side),
 * with the gfns [a, b) it covers.  Memslot srcu (or slots_lock) held. */
void for_each_slot_in_hva(struct tdp_vm *vm, uint64_t start, uint64_t end,
			  bool private_side,
			  void (*fn)(struct tdp_vm *vm, unsigned as,
				     const struct memslot *s, uint64_t a,
				     uint64_t b, void *arg),
			  void *arg);

/* confidential.c */
/* Does a private access to @gfn of @s (NULL: no slot) fit its memory
 * attribute?  The caller sampled the invalidation sequence first. */
bool memslot_gfn_private(const struct memslot *s, uint64_t gfn);
/* The largest level <= @level at which a shared leaf for @gfn of @s maps
 * shared pages only (@level already fits inside the slot). */
int memslot_shared_level(const struct memslot *s, uint64_t gfn, int level);
int vm_confidential_init(struct tdp_vm *vm);
void vm_confidential_destroy(struct tdp_vm *vm);

/* dirty_ring.c: where a vCPU's dirty pages go */
/* KVM's mark_page_dirty_in_slot: pages [gfn, gfn + n) of @s (nothing if
 * it is not dirty-logged) into @v's dirty ring, or with no ring (or no
 * @v) into the slot's bitmap.  Memslot srcu held; @v's thread. */
void mark_page_dirty_in_slot(struct tdp_vcpu *v, const struct memslot *s,
			     uint64_t gfn, uint64_t n);
/* mark_page_dirty_in_slot for [gfn, gfn + npages) of address space set
 * @set, slot by slot (gfns in no slot are skipped).  Memslot srcu held. */
void mark_gfns_dirty(struct tdp_vcpu *v, struct memslots *set, uint64_t gfn,
		     uint64_t npages);
/* Drain @v's page-modification log (vmx_flush_pml_buffer); the vCPU's
 * thread, in guest mode or just out of it. */
void vcpu_flush_pml(struct tdp_vcpu *v);
/* Is @v's ring at or past its soft limit? (vCPU thread) */
bool vcpu_ring_soft_full(struct tdp_vcpu *v);
/* For the audit (quiescent VM): a bitmap of @s's pages that have an
 * entry not yet reset in some vCPU's ring; NULL: no memory. */
uint64_t *vm_ring_pages(struct tdp_vm *vm, const struct memslot *s);
/* The vCPU's PML log and dirty ring, as its VM has them (0 or -ENOMEM);
 * freeing hands unreset ring entries to the bitmaps. */
int vcpu_dirty_alloc(struct tdp_vcpu *v);
void vcpu_dirty_free(struct tdp_vcpu *v);

/* dirty_log.c */
uint64_t *vm_log_bitmap_alloc(struct tdp_vm *vm, uint64_t npages);
void vm_mark_gfn_dirty(void *vm, unsigned as_id, uint64_t gfn,
		       uint64_t npages);
void vm_log_enable(struct tdp_vm *vm, const struct memslot *s);
void vm_log_disable(struct tdp_vm *vm, const struct memslot *s);

/* notifier callbacks (vm.c) */
extern const struct tdp_host_notifier_ops vm_notifier_ops;

#endif
