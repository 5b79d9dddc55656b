/* SPDX-License-Identifier: MIT */
/*
 * percpu.h - reader slots: the "CPU" a thread counts itself on in the
 * per-slot structures (brlock.h reader counts, the memslot SRCU, the VM
 * and host statistics), so that vCPUs faulting disjoint memory write no
 * shared cache line.  KVM's readers use per-CPU counters (percpu-rwsem,
 * SRCU, vcpu->stat); a vCPU thread here is the analogue of a CPU.
 *
 * A thread's slot is thread-local state set by the vCPU run loop to its
 * vCPU's slot (1 + id mod (TDP_NR_SLOTS - 1)) on every guest access; any
 * other thread (host operations, notifiers, API callers) counts on slot 0.
 *
 * Rules: a slot may be shared (slot 0, two threads running one vCPU in
 * turn, vCPU ids that wrap), so everything kept per slot is updated with
 * atomic read-modify-writes and stays correct when shared; only its speed
 * needs one thread per slot.  A caller that takes something per slot
 * records the slot it used and gives it back to the same slot (the slot
 * of the thread may change in between).
 */
#ifndef TDP_PERCPU_H
#define TDP_PERCPU_H

#define TDP_NR_SLOTS	64
#define TDP_CACHE_LINE	64

/* initial-exec: one %fs-relative load, no __tls_get_addr call, in the
 * shared library too (it is linked, never dlopen()ed, by its users) */
extern __thread unsigned tdp_slot_tls __attribute__((tls_model("initial-exec")));

static inline unsigned tdp_this_slot(void)
{
	return tdp_slot_tls;
}

static inline void tdp_set_slot(unsigned slot)
{
	tdp_slot_tls = slot % TDP_NR_SLOTS;
}

/* Count on @slot from now on; returns the slot counted on before (for
 * tdp_set_slot to restore). */
static inline unsigned tdp_swap_slot(unsigned slot)
{
	unsigned old = tdp_slot_tls;

	tdp_set_slot(slot);
	return old;
}

/* The slot of vCPU @id: never 0, which is everybody else's. */
static inline unsigned tdp_vcpu_slot(unsigned id)
{
	return 1 + id % (TDP_NR_SLOTS - 1);
}

#endif
