/* SPDX-License-Identifier: MIT */
/*
 * hw.c - the simulated hardware: per-vCPU TLB, paging-structure cache, the
 * page walker with its Accessed/Dirty setting, and the exits it reports.
 * It calls nothing above it: the run loop that enters guest mode, calls
 * hw_translate and handles the exit is vcpu.c's.
 *
 * What hardware may do concurrently with software (and so what software
 * must tolerate):
 *  - walk any root a vCPU has loaded, at any time while that vCPU is in
 *    guest mode, without mmu_lock and without RCU: entries are read with
 *    acquire loads;
 *  - set A on entries it uses and D on a leaf it writes through, with a
 *    compare-exchange against the value it read (like a locked RMW; a
 *    changed entry makes it re-walk), so it never writes into an entry
 *    software has changed;
 *  - keep translations (TLB) and level-1 table pointers (paging-structure
 *    cache) across guest-mode windows until a flush request arrives; a
 *    cached table pointer can reach a table software has already unlinked,
 *    which is why tables are freed only after a remote flush (I2);
 *  - on a violation, drop the cached entries for that address (as x86 does
 *    on a fault), exit guest mode and let the fault handler run.
 *  - with TDP_VM_PML, log every Dirty bit it sets in the direct root in the
 *    vCPU's page-modification log, and exit instead (exit_pml_full) when
 *    the log is full; the log is the vCPU thread's, drained at its exits
 *    (dirty_ring.c).
 * The TLB belongs to its vCPU's thread; other threads only send requests
 * and read its fill and flush counts (atomics with a single writer, for the
 * torture's TLB promises: vcpu_tlb_check, which the vCPU's thread runs).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "assert.h"
#include "vm.h"

void tlb_flush_all(struct tdp_tlb *t)
{
	memset(t->e, 0, sizeof(t->e));
	memset(t->psc, 0, sizeof(t->psc));
	/* single writer: no read-modify-write needed */
	atomic_store_explicit(&t->flushes,
			      atomic_load_explicit(&t->flushes,
						   memory_order_relaxed) + 1,
			      memory_order_release);
}

unsigned vcpu_tlb_check(struct tdp_vcpu *v, uint64_t fills_before,
			uint64_t gfn, uint64_t npages, unsigned forbid,
			char *why, size_t len)
{
	struct tdp_tlb *t = &v->tlb;
	unsigned bad = 0;

	for (int level = TDP_LEVEL_4K; level <= TDP_LEVEL_1G; level++)
		for (unsigned k = 0; k < TLB_SETS; k++) {
			const struct tlb_entry *e = &t->e[level][k];
			uint64_t g, n = level_pages(level);
			unsigned broke;

			if (!e->tag || e->fill >= fills_before)
				continue;
			g = ((e->tag - 1) << level_shift(level)) &
			    ~v->vm->shared_gfn;
			if (g + n <= gfn || g >= gfn + npages)
				continue;
			broke = forbid & (TLB_ANY |
					  (e->perms & SPTE_PERM_W ? TLB_WRITABLE
							     : 0) |
					  (e->perms & SPTE_PERM_W && e->dirty
						   ? TLB_DIRTY_WRITE
						   : 0));
			if (!broke)
				continue;
			if (!bad++ && why)
				snprintf(why, len,
					 "vCPU %u's TLB still maps gfn %#llx "
					 "(level %d, frame %#llx, perms %#x%s)",
					 v->id, (unsigned long long)g, level,
					 (unsigned long long)e->pfn, e->perms,
					 e->dirty ? ", dirty" : "");
		}
	return bad;
}

static struct tlb_entry *tlb_slot(struct tdp_tlb *t, uint64_t gfn, int level)
{
	return &t->e[level][(gfn >> level_shift(level)) % TLB_SETS];
}

static void tlb_drop_gfn(struct tdp_tlb *t, uint64_t gfn)
{
	for (int level = TDP_LEVEL_4K; level <= TDP_LEVEL_1G; level++) {
		struct tlb_entry *e = tlb_slot(t, gfn, level);

		if (e->tag == (gfn >> level_shift(level)) + 1)
			e->tag = 0;
	}
	t->psc[(gfn >> 9) % PSC_SETS].tag = 0;
}

static bool perms_allow(uint8_t perms, enum tdp_access acc)
{
	switch (acc) {
	case ACC_WRITE:
		return perms & SPTE_PERM_W;
	case ACC_FETCH:
		return perms & SPTE_PERM_X;
	default:
		return perms & SPTE_PERM_R;
	}
}

/* TLB lookup: the frame of @gfn, or ~0 on a miss. */
static uint64_t tlb_lookup(struct tdp_tlb *t, uint64_t gfn,
			   enum tdp_access acc)
{
	for (int level = TDP_LEVEL_4K; level <= TDP_LEVEL_1G; level++) {
		struct tlb_entry *e = tlb_slot(t, gfn, level);

		if (e->tag != (gfn >> level_shift(level)) + 1)
			continue;
		if (!perms_allow(e->perms, acc))
			return ~0ull;
		if (acc == ACC_WRITE && !e->dirty)
			return ~0ull; /* walk to set D */
		return e->pfn + (gfn & (level_pages(level) - 1));
	}
	return ~0ull;
}

/* Set @bits in the entry, as hardware's locked update would.  false: the
 * entry changed under us, re-walk. */
static bool hw_set_bits(uint64_t *sptep, uint64_t spte, uint64_t bits)
{
	if ((spte & bits) == bits)
		return true;
	return __atomic_compare_exchange_n(sptep, &spte, spte | bits, false,
					   __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

/* Walk the root for @gfn.  Returns the frame or ~0 on a violation.  In a
 * confidential VM a gfn with the shared bit is looked up without it in
 * the direct root, and one without it in the mirror root; the TLB and the
 * paging-structure cache keep the whole gfn, so the two never mix. */
static uint64_t hw_walk(struct tdp_vcpu *v, uint64_t key, enum tdp_access acc)
{
	struct tdp_tlb *t = &v->tlb;
	struct psc_entry *pe = &t->psc[(key >> 9) % PSC_SETS];
	uint64_t gfn = key;
	struct tdp_pt_page *root = vcpu_root_for(v, &gfn);

	/* I3: once the invalidating thread saw every vCPU acknowledge the
	 * reload request, no vCPU may walk the root any more. */
	TDP_ASSERT_MSG(!(root_invalid(root) &&
			 root_acked(&v->vm->mmu.roots, root)),
		       "vCPU %u walks invalid root %p after the reload request "
		       "was acknowledged",
		       v->id, (void *)root->spt);
restart:;
	uint64_t *table = root->spt;
	int level = root->level;

	if (pe->tag == (key >> 9) + 1) {
		table = pe->table;
		level = TDP_LEVEL_4K;
	}
	for (;;) {
		uint64_t *sptep = &table[spte_index(gfn, level)];
		uint64_t spte = __atomic_load_n(sptep, __ATOMIC_ACQUIRE);

		/* Tables are freed only after a flush that drops every
		 * cached pointer to them (I2): a walk never sees one. */
		TDP_ASSERT_MSG(spte != PT_POISON,
			       "vCPU %u walked freed table %p (gfn %#llx)",
			       v->id, (void *)table, (unsigned long long)gfn);
		if (!spte_hw_present(spte)) {
			v->exit_kind = spte_is_mmio(spte) ? EXIT_MISCONFIG
							   : EXIT_VIOLATION;
			goto violation;
		}
		if (!spte_is_leaf(spte, level)) {
			if (!hw_set_bits(sptep, spte, spte_hw_set_mask(false)))
				goto restart;
			table = spte_to_table(spte);
			level--;
			if (level == TDP_LEVEL_4K) {
				pe->tag = (key >> 9) + 1;
				pe->table = table;
			}
			continue;
		}
		if (!perms_allow((uint8_t)spte_perms(spte), acc)) {
			v->exit_kind = EXIT_VIOLATION_PRESENT;
			goto violation;
		}
		bool logs = acc == ACC_WRITE && !spte_dirty(spte) &&
			    (v->vm->cfg.flags & TDP_VM_PML) &&
			    !vm_gfn_private(v->vm, key);

		/* PML: a full log exits before the Dirty bit is set */
		if (logs && v->pml_n == PML_ENTRIES) {
			v->exit_pml_full = true;
			stat_own_inc(v->st.pml_full_exits);
			goto violation;
		}
		if (!hw_set_bits(sptep, spte,
				 spte_hw_set_mask(acc == ACC_WRITE)))
			goto restart;
		if (logs) {
			uint64_t first = gfn & ~(level_pages(level) - 1);

			v->pml[v->pml_n++] = first << 2 | (uint64_t)(level - 1);
			stat_own_inc(v->st.pml_logged);
		}
		if (acc == ACC_WRITE && !spte_dirty(spte))
			dirty_ledger_add(&v->vm->mmu, spte_pfn(spte),
					 level_pages(level), 1);
		if (level <= TDP_LEVEL_1G) {
			struct tlb_entry *e = tlb_slot(t, key, level);

			e->tag = (key >> level_shift(level)) + 1;
			e->pfn = spte_pfn(spte);
			e->perms = (uint8_t)spte_perms(spte);
			e->dirty = acc == ACC_WRITE || spte_dirty(spte);
			e->fill = atomic_load_explicit(&t->fills,
						       memory_order_relaxed);
			atomic_store_explicit(&t->fills, e->fill + 1,
					      memory_order_release);
		}
		return spte_pfn(spte) + (gfn & (level_pages(level) - 1));
	}
violation:
	tlb_drop_gfn(t, key);
	return ~0ull;
}

uint64_t hw_translate(struct tdp_vcpu *v, uint64_t gfn, enum tdp_access acc)
{
	uint64_t pfn = tlb_lookup(&v->tlb, gfn, acc);

	if (pfn != ~0ull) {
		stat_own_inc(v->st.tlb_hits);
		return pfn;
	}
	stat_own_inc(v->st.tlb_misses);
	return hw_walk(v, gfn, acc);
}
