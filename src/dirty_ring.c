/* SPDX-License-Identifier: MIT */
/*
 * dirty_ring.c - where a vCPU's dirty pages go: KVM's
 * mark_page_dirty_in_slot (the vCPU's dirty ring, or the memslot's
 * bitmap), the drain of the simulated hardware's page-modification log
 * (vmx_flush_pml_buffer), and the dirty ring with its soft limit and its
 * reset (virt/kvm/dirty_ring.c).  The harvest of the bitmaps is
 * dirty_log.c's.
 *
 * Locking and lifetime:
 *  - a ring is written by its vCPU's thread only (the producer: entries
 *    and dirty_index) and freed with the vCPU; the VMM reads entries and
 *    stores RESET into their flags from any thread; the reset runs under
 *    slots_lock (so the memslots it looks entries up in stay), and is the
 *    only writer of reset_index.  The flags word carries every hand-over:
 *    the producer stores DIRTY with release after slot and offset, the
 *    VMM loads it with acquire and stores RESET with release, the reset
 *    loads it with acquire, reads slot and offset, stores 0 and then
 *    reset_index with release; the producer reads reset_index with
 *    acquire before it reuses an entry.
 *  - I7 with a ring: a write fault pushes its page inside the read-locked
 *    section in which it installs the writable leaf (fault.c), before the
 *    leaf exists; the reset re-protects under mmu_lock held for write, so
 *    it runs after that section: the leaf it must take W from is there.
 *    The lockless fast fault pushes before its compare-exchange, and the
 *    reset's write-protect pass changes every MMU-writable leaf it visits
 *    (SPTE_LOG_SEQ), so a fast fault that read the leaf earlier fails and
 *    pushes again.  The reset flushes every vCPU TLB before it returns
 *    and before the VMM may copy.
 *  - the page-modification log is the vCPU thread's (hw.c appends in
 *    guest mode); vcpu_exit_guest drains it before the mode word says the
 *    window ended, so a harvest that waited for the window to end
 *    (dirty_log.c) finds the pages in the bitmap or the ring.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "assert.h"
#include "bitmap.h"
#include "vm.h"

static uint32_t ring_size(const struct tdp_vcpu *v)
{
	return v->vm->cfg.dirty_ring_size;
}

/* Entry @k of @v's ring: the indexes run freely, the size is a power of
 * two. */
static struct tdp_dirty_gfn *ring_entry(const struct tdp_vcpu *v, uint32_t k)
{
	return &v->ring[k & (ring_size(v) - 1)];
}

/* An entry's slot field for memslot @s: address space << 16 | id. */
static uint32_t entry_slot_of(const struct memslot *s)
{
	return (uint32_t)s->as_id << 16 | s->id;
}

/* The memslot an entry's slot and offset name, if it exists and the
 * offset is inside it; the VMM may have scribbled on the entry, so
 * nothing in it is trusted.  Memslot srcu or slots_lock held. */
static const struct memslot *entry_memslot(struct tdp_vm *vm, uint32_t slot,
					   uint64_t off)
{
	unsigned as = slot >> 16, id = slot & 0xffff;
	const struct memslot *s;

	if (as >= vm->cfg.nr_as || id >= TDP_MAX_MEMSLOTS)
		return NULL;
	s = memslots_find_id(tdp_rcu_dereference(vm->memslots[as]), id);
	return s && off < s->npages ? s : NULL;
}

/* KVM's kvm_dirty_ring_get_rsvd_entries */
static uint32_t ring_rsvd(const struct tdp_vm *vm)
{
	return TDP_DIRTY_RING_RSVD_ENTRIES +
	       (vm->cfg.flags & TDP_VM_PML ? TDP_DIRTY_RING_PML_ENTRIES : 0);
}

int vcpu_dirty_alloc(struct tdp_vcpu *v)
{
	uint32_t n = ring_size(v);

	if (v->vm->cfg.flags & TDP_VM_PML) {
		v->pml = calloc(PML_ENTRIES, sizeof(*v->pml));
		if (!v->pml)
			return -ENOMEM;
	}
	if (n) {
		v->ring = calloc(n, sizeof(*v->ring));
		if (!v->ring) {
			free(v->pml);
			return -ENOMEM;
		}
	}
	return 0;
}

/* The entries not yet reset go to their memslots' bitmaps: their pages
 * may be writable and must stay in the log. */
void vcpu_dirty_free(struct tdp_vcpu *v)
{
	struct tdp_vm *vm = v->vm;
	unsigned idx;

	free(v->pml);
	v->pml = NULL;
	if (!v->ring)
		return;
	idx = tdp_srcu_read_lock(&vm->srcu);
	for (uint32_t k = atomic_load(&v->reset_index);
	     k != atomic_load(&v->dirty_index); k++) {
		const struct tdp_dirty_gfn *e = ring_entry(v, k);
		const struct memslot *s = entry_memslot(vm, e->slot, e->offset);

		if (s)
			mark_page_dirty_in_slot(NULL, s,
						s->base_gfn + e->offset, 1);
	}
	tdp_srcu_read_unlock(&vm->srcu, idx);
	free(v->ring);
	v->ring = NULL;
}

/* producer's side: its own index needs no ordering */
static uint32_t ring_used(struct tdp_vcpu *v)
{
	return atomic_load_explicit(&v->dirty_index, memory_order_relaxed) -
	       atomic_load_explicit(&v->reset_index, memory_order_acquire);
}

bool vcpu_ring_soft_full(struct tdp_vcpu *v)
{
	return ring_used(v) >= ring_size(v) - ring_rsvd(v->vm);
}

/* false: the ring is completely full (the reserve was not enough) */
static bool ring_push(struct tdp_vcpu *v, const struct memslot *s,
		      uint64_t offset)
{
	uint32_t di = atomic_load_explicit(&v->dirty_index,
					   memory_order_relaxed);
	struct tdp_dirty_gfn *e;

	if (ring_used(v) == ring_size(v))
		return false;
	/* a free entry (the reset stored 0 before it moved reset_index;
	 * the VMM may have scribbled on it since: it is ours now) */
	e = ring_entry(v, di);
	e->slot = entry_slot_of(s);
	e->offset = offset;
	__atomic_store_n(&e->flags, TDP_DIRTY_GFN_DIRTY, __ATOMIC_RELEASE);
	atomic_store_explicit(&v->dirty_index, di + 1, memory_order_release);
	stat_own_inc(v->st.ring_pushes);
	return true;
}

void mark_page_dirty_in_slot(struct tdp_vcpu *v, const struct memslot *s,
			     uint64_t gfn, uint64_t n)
{
	if (!(s->flags & TDP_MEM_LOG_DIRTY) || !s->dirty_bitmap)
		return;
	if (!v || !v->ring) {
		memslot_mark_dirty(s, gfn, n);
		return;
	}
	for (uint64_t g = gfn; g < gfn + n; g++)
		if (!ring_push(v, s, g - s->base_gfn)) {
			/* lossless: the bitmap harvest reports it */
			memslot_mark_dirty(s, g, 1);
			stat_inc(v->vm->stats.ring_overflows);
		}
}

void mark_gfns_dirty(struct tdp_vcpu *v, struct memslots *set, uint64_t gfn,
		     uint64_t npages)
{
	for (uint64_t g = gfn; g < gfn + npages;) {
		const struct memslot *s = memslots_lookup(set, g);
		uint64_t n;

		if (!s) {
			g++;
			continue;
		}
		n = memslot_end(s) - g < gfn + npages - g ? memslot_end(s) - g
							  : gfn + npages - g;
		mark_page_dirty_in_slot(v, s, g, n);
		g += n;
	}
}

void vcpu_flush_pml(struct tdp_vcpu *v)
{
	struct tdp_vm *vm = v->vm;
	unsigned idx = tdp_srcu_read_lock(&vm->srcu);
	struct memslots *set = vm_memslots(vm, v->as_id);

	/* a slot gone meanwhile logs nothing */
	for (unsigned i = 0; i < v->pml_n; i++)
		mark_gfns_dirty(v, set, v->pml[i] >> 2,
				level_pages((int)(v->pml[i] & 3) + 1));
	v->pml_n = 0;
	tdp_srcu_read_unlock(&vm->srcu, idx);
}

int tdp_vcpu_dirty_ring(struct tdp_vcpu *v, struct tdp_dirty_gfn **ring,
			uint32_t *size)
{
	if (!v || !ring || !size)
		return -EINVAL;
	if (!v->ring)
		return -ENXIO;
	*ring = v->ring;
	*size = ring_size(v);
	return 0;
}

uint64_t *vm_ring_pages(struct tdp_vm *vm, const struct memslot *s)
{
	uint64_t *bm = calloc((s->npages + 63) / 64, sizeof(*bm));

	if (!bm)
		return NULL;
	pthread_rwlock_rdlock(&vm->vcpus_lock);
	for (unsigned i = 0; i < vm->cfg.max_vcpus; i++) {
		struct tdp_vcpu *v = atomic_load(&vm->vcpus[i]);

		if (!v)
			continue;
		for (uint32_t k = atomic_load(&v->reset_index);
		     k != atomic_load(&v->dirty_index); k++) {
			const struct tdp_dirty_gfn *e = ring_entry(v, k);

			if (e->slot == entry_slot_of(s) &&
			    e->offset < s->npages)
				bitmap_set(bm, e->offset, 1);
		}
	}
	pthread_rwlock_unlock(&vm->vcpus_lock);
	return bm;
}

/* ---- reset ---- */

/* Pages to re-protect, per memslot: one bitmap each, built up from the
 * entries of every ring, then applied in one pass per slot. */
struct reset_masks {
	uint64_t *bm[2][TDP_MAX_MEMSLOTS];
};

/* Take the entries of @v's ring marked RESET; their pages into @m. */
static uint64_t ring_collect(struct tdp_vm *vm, struct tdp_vcpu *v,
			     struct reset_masks *m, int *err)
{
	uint32_t di = atomic_load_explicit(&v->dirty_index,
					   memory_order_acquire);
	uint32_t ri = atomic_load_explicit(&v->reset_index,
					   memory_order_relaxed);
	uint64_t n = 0;

	/* never past the producer: a RESET the VMM wrote into a free entry
	 * must not free entries that were never pushed */
	for (; ri != di; ri++, n++) {
		struct tdp_dirty_gfn *e = ring_entry(v, ri);
		uint32_t flags = __atomic_load_n(&e->flags, __ATOMIC_ACQUIRE);
		uint32_t slot;
		uint64_t off;
		const struct memslot *s;

		/* only what the VMM has harvested (the injected bug: every
		 * entry in use, harvested or not) */
		if (!(flags & (INJECTED(vm->mmu.inject, INJ_RING_RESET_UNHARVESTED)
				       ? TDP_DIRTY_GFN_RESET | TDP_DIRTY_GFN_DIRTY
				       : TDP_DIRTY_GFN_RESET)))
			break;
		/* read once: the VMM may scribble on them */
		slot = __atomic_load_n(&e->slot, __ATOMIC_RELAXED);
		off = __atomic_load_n(&e->offset, __ATOMIC_RELAXED);
		s = entry_memslot(vm, slot, off);
		if (s && (s->flags & TDP_MEM_LOG_DIRTY) && s->dirty_bitmap) {
			uint64_t **bm = &m->bm[s->as_id][s->id];

			if (!*bm)
				*bm = calloc((s->npages + 63) / 64,
					     sizeof(**bm));
			if (!*bm) {
				*err = -ENOMEM;
				break; /* this entry stays, for the next reset */
			}
			bitmap_set(*bm, off, 1);
		}
		__atomic_store_n(&e->flags, 0, __ATOMIC_RELAXED);
	}
	atomic_store_explicit(&v->reset_index, ri, memory_order_release);
	return n;
}

int tdp_vm_reset_dirty_rings(struct tdp_vm *vm, uint64_t *reset)
{
	struct reset_masks *m;
	uint64_t n = 0;
	int r = 0;

	if (!vm)
		return -EINVAL;
	if (!vm->cfg.dirty_ring_size)
		return -ENXIO;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pthread_mutex_lock(&vm->slots_lock);
	pthread_rwlock_rdlock(&vm->vcpus_lock);
	for (unsigned i = 0; i < vm->cfg.max_vcpus; i++) {
		struct tdp_vcpu *v = atomic_load(&vm->vcpus[i]);

		if (v)
			n += ring_collect(vm, v, m, &r);
	}
	pthread_rwlock_unlock(&vm->vcpus_lock);
	/* the pages after their entries were freed: a write in between
	 * goes through the leaf the pass is about to protect, and the VMM
	 * copies only after this call returns */
	tdp_write_lock(&vm->mmu.lock);
	for (unsigned as = 0; as < vm->cfg.nr_as; as++)
		for (unsigned id = 0; id < TDP_MAX_MEMSLOTS; id++) {
			const struct memslot *s;
			struct gfn_range gr;

			if (!m->bm[as][id])
				continue;
			s = memslots_find_id(vm->memslots[as], id);
			gr = (struct gfn_range){ .slot = s,
						 .start = s->base_gfn,
						 .end = memslot_end(s) };
			mmu_clear_bits(vm, &gr,
				       vm->cfg.flags & TDP_VM_DIRTY_DBIT
					       ? CLEAR_D
					       : CLEAR_W,
				       m->bm[as][id], NULL);
			free(m->bm[as][id]);
		}
	tdp_write_unlock(&vm->mmu.lock);
	pthread_mutex_unlock(&vm->slots_lock);
	free(m);
	stat_add(vm->stats.ring_resets, n);
	if (reset)
		*reset = n;
	return r;
}
