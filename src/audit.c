/* SPDX-License-Identifier: MIT */
/*
 * audit.c - tdp_vm_audit: invariant check of a quiescent VM.
 *
 * It walks every root under mmu_lock (write), collecting present leaves,
 * table and root counts; then, with mmu_lock dropped (lock order: the host
 * mmap lock is never taken under mmu_lock), it compares each leaf against
 * the memslots and the host's current hva -> pfn map.  Deferred frees are
 * drained first (rcu_barrier) so the allocator's count is exact.
 * Confidential VMs (I11): mirror leaves map only private pages of private
 * memslots at 4 KiB, direct leaves only shared ones, and the external
 * table holds exactly the tables and leaves of the mirror root.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert.h"
#include "vm.h"

struct leaf {
	uint64_t gfn, spte;
	uint8_t level, as_id;
	bool invalid_root, mirror;
};

struct audit {
	char *report;
	size_t len, used;
	int problems;
	bool in_invalid_root; /* leaves being collected come from one */
	bool in_mirror;	      /* ... from a mirror root */
	struct ext_table *ext;
	struct sp_hash *hash; /* legacy engine: its shadow-page hash */
	long mirror_tables, mirror_leaves;
	struct leaf *leaves;
	size_t nleaves, cap;
	long tables, roots, leaves_by_level[4];
	/* dirty rings: the pages of ring_slot with entries not yet reset */
	const struct memslot *ring_slot;
	uint64_t *ring_pages;
};

/* Is page @i of @slot in the log: its bitmap, or a vCPU's ring? */
static bool audit_logged(struct tdp_vm *vm, struct audit *a,
			 const struct memslot *slot, uint64_t i)
{
	if (__atomic_load_n(&slot->dirty_bitmap[i / 64], __ATOMIC_ACQUIRE) &
	    (1ull << (i % 64)))
		return true;
	if (!vm->cfg.dirty_ring_size)
		return false;
	if (a->ring_slot != slot) {
		free(a->ring_pages);
		a->ring_pages = vm_ring_pages(vm, slot);
		a->ring_slot = a->ring_pages ? slot : NULL;
	}
	/* no memory for the answer: do not report what is not known */
	return !a->ring_pages ||
	       (a->ring_pages[i / 64] & (1ull << (i % 64)));
}

__attribute__((format(printf, 2, 3))) static void problem(struct audit *a,
							  const char *fmt, ...)
{
	va_list ap;

	a->problems++;
	if (!a->report || a->used + 1 >= a->len)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(a->report + a->used, a->len - a->used, fmt, ap);
	va_end(ap);
	if (n > 0)
		a->used += (size_t)n;
	if (a->used + 1 < a->len) {
		a->report[a->used++] = '\n';
		a->report[a->used] = 0;
	} else {
		a->used = a->len;
	}
}

static void add_leaf(struct audit *a, uint64_t gfn, uint64_t spte, int level,
		     unsigned as_id)
{
	if (a->nleaves == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 1024;
		struct leaf *n = realloc(a->leaves, cap * sizeof(*n));

		if (!n) {
			problem(a, "audit: out of memory");
			return;
		}
		a->leaves = n;
		a->cap = cap;
	}
	a->leaves[a->nleaves++] = (struct leaf){ gfn, spte, (uint8_t)level,
						 (uint8_t)as_id,
						 a->in_invalid_root,
						 a->in_mirror };
}

/* A present mirror entry must be in the external table too (I11). */
static void check_ext_entry(struct audit *a, uint64_t gfn, uint64_t s,
			    int level)
{
	bool leaf = spte_is_leaf(s, level);
	uint64_t pfn = 0;
	enum ext_kind k = ext_lookup(a->ext, gfn, level, &pfn);

	if (leaf)
		a->mirror_leaves++;
	else
		a->mirror_tables++;
	if (k != (leaf ? EXT_LEAF : EXT_TABLE) ||
	    (leaf && pfn != spte_pfn(s)))
		problem(a, "gfn %#llx level %d: the mirror root has a %s, the "
			   "external table %s (I11)",
			(unsigned long long)gfn, level, leaf ? "leaf" : "table",
			k == EXT_NONE ? "nothing" : k == EXT_LEAF ? "a leaf"
								 : "a table");
}

/* Legacy engine: table @sp, met in the trees, is in the shadow-page hash;
 * it is obsolete iff its root is invalid, and if valid, the one a lookup
 * of its key finds (so no other valid page has its key). */
static void check_shadow_page(struct audit *a, struct tdp_pt_page *sp)
{
	if (!a->hash)
		return;
	if (!sp_hash_contains(a->hash, sp))
		problem(a, "table of gfn %#llx level %d is missing from the "
			   "shadow-page hash",
			(unsigned long long)sp->gfn, sp->level);
	else if (sp_hash_obsolete(a->hash, sp) != a->in_invalid_root)
		problem(a, "table of gfn %#llx level %d is %s in the hash "
			   "but in %s root",
			(unsigned long long)sp->gfn, sp->level,
			a->in_invalid_root ? "valid" : "obsolete",
			a->in_invalid_root ? "an invalid" : "a valid");
	else if (!a->in_invalid_root &&
		 sp_hash_find(a->hash, sp->gfn, sp_role_of(sp)) != sp)
		problem(a, "the shadow-page hash finds another page for gfn "
			   "%#llx level %d as %u",
			(unsigned long long)sp->gfn, sp->level, sp->as_id);
}

static void walk_table(struct audit *a, uint64_t *spt, int level, uint64_t gfn,
		       unsigned as_id)
{
	for (unsigned i = 0; i < SPTE_ENT_PER_PAGE; i++) {
		uint64_t s = __atomic_load_n(&spt[i], __ATOMIC_ACQUIRE);
		uint64_t g = gfn + (uint64_t)i * level_pages(level);

		if (!spte_present(s)) {
			if (s != SPTE_NONPRESENT && s != SPTE_FROZEN &&
			    !(spte_is_mmio(s) && level == TDP_LEVEL_4K))
				problem(a, "gfn %#llx level %d: odd non-present"
					   " value %#llx",
					(unsigned long long)g, level,
					(unsigned long long)s);
			if (spte_frozen(s))
				problem(a, "gfn %#llx level %d: frozen entry "
					   "in a live table",
					(unsigned long long)g, level);
			continue;
		}
		if (a->in_mirror && !a->in_invalid_root)
			check_ext_entry(a, g, s, level);
		if (spte_is_leaf(s, level)) {
			if (level > TDP_LEVEL_1G)
				problem(a, "leaf above 1 GiB at gfn %#llx",
					(unsigned long long)g);
			else
				a->leaves_by_level[level]++;
			add_leaf(a, g, s, level, as_id);
			continue;
		}
		struct tdp_pt_page *sp = sptep_to_sp(spte_to_table(s));

		a->tables++;
		if (sp->level != level - 1 || sp->gfn != g ||
		    sp->ptep != &spt[i] || !sp->in_use)
			problem(a, "table at gfn %#llx level %d has a wrong "
				   "header (level %d gfn %#llx)",
				(unsigned long long)g, level - 1, sp->level,
				(unsigned long long)sp->gfn);
		check_shadow_page(a, sp);
		walk_table(a, sp->spt, level - 1, g, as_id);
	}
}

static void check_leaf(struct tdp_vm *vm, struct audit *a, struct leaf *l)
{
	const struct memslot *slot;
	uint64_t hva, pfn;
	unsigned order, prot, idx;
	int r;

	idx = tdp_srcu_read_lock(&vm->srcu);
	slot = memslots_lookup(vm_memslots(vm, l->as_id), l->gfn);
	if (!slot || slot->invalid) {
		problem(a, "as %u gfn %#llx: mapped but no memslot (I13)",
			l->as_id, (unsigned long long)l->gfn);
		goto out;
	}
	if (vm_confidential(vm) && l->mirror &&
	    (l->level != TDP_LEVEL_4K || !memslot_gfn_private(slot, l->gfn))) {
		problem(a, "gfn %#llx: level %d private mapping of a page that "
			   "is not private memory (I11)",
			(unsigned long long)l->gfn, l->level);
		goto out;
	}
	if (vm_confidential(vm) && !l->mirror &&
	    (slot->flags & TDP_MEM_PRIVATE)) {
		for (uint64_t g = l->gfn; g < l->gfn + level_pages(l->level);
		     g++)
			if (memslot_gfn_private(slot, g)) {
				problem(a, "gfn %#llx: a shared mapping "
					   "reaches private page %#llx (I13)",
					(unsigned long long)l->gfn,
					(unsigned long long)g);
				goto out;
			}
	}
	if (l->gfn + level_pages(l->level) > memslot_end(slot) ||
	    l->level > vm_max_mapping_level(vm, slot, l->gfn, 18)) {
		problem(a, "as %u gfn %#llx: level %d leaf not allowed by the "
			   "memslot",
			l->as_id, (unsigned long long)l->gfn, l->level);
		goto out;
	}
	if (spte_writable(l->spte) && (slot->flags & TDP_MEM_READONLY))
		problem(a, "as %u gfn %#llx: writable leaf in a read-only "
			   "slot (I13)",
			l->as_id, (unsigned long long)l->gfn);
	/* I7, write-protect mode: W is granted only after the page is in
	 * the log, and a harvest takes W away with the bit; no vCPU writes
	 * through an invalid root */
	if (spte_writable(l->spte) && (slot->flags & TDP_MEM_LOG_DIRTY) &&
	    !(vm->cfg.flags & TDP_VM_DIRTY_DBIT) && !l->invalid_root) {
		/* every page it maps (a huge leaf made writable by a write
		 * to one page would log that page only) */
		for (uint64_t g = l->gfn; g < l->gfn + level_pages(l->level);
		     g++) {
			uint64_t i = g - slot->base_gfn;

			if (audit_logged(vm, a, slot, i))
				continue;
			problem(a, "as %u gfn %#llx: writable level %d leaf "
				   "in a dirty-logged slot, page %#llx not in "
				   "the log (I7)",
				l->as_id, (unsigned long long)l->gfn, l->level,
				(unsigned long long)g);
			break;
		}
	}
	hva = l->mirror ? memslot_gfn_to_private_hva(slot, l->gfn)
			: memslot_gfn_to_hva(slot, l->gfn);
	r = host_lookup(vm->host, hva, &pfn, &order, &prot);
	if (r) {
		problem(a, "as %u gfn %#llx: mapped to frame %#llx but hva "
			   "%#llx is %s (stale translation, I1)",
			l->as_id, (unsigned long long)l->gfn,
			(unsigned long long)spte_pfn(l->spte),
			(unsigned long long)hva,
			r == -ENOENT ? "not populated" : "not mapped");
		goto out;
	}
	if (pfn != spte_pfn(l->spte))
		problem(a, "as %u gfn %#llx: maps frame %#llx, host has %#llx "
			   "(stale translation, I1)",
			l->as_id, (unsigned long long)l->gfn,
			(unsigned long long)spte_pfn(l->spte),
			(unsigned long long)pfn);
	if (l->level > vm_max_mapping_level(vm, slot, l->gfn, order))
		problem(a, "as %u gfn %#llx: level %d leaf over a host folio "
			   "of order %u",
			l->as_id, (unsigned long long)l->gfn, l->level, order);
	if (spte_writable(l->spte) && !(prot & TDP_PROT_WRITE))
		problem(a, "as %u gfn %#llx: writable leaf, host mapping is "
			   "not writable (I13)",
			l->as_id, (unsigned long long)l->gfn);
out:
	tdp_srcu_read_unlock(&vm->srcu, idx);
}

/* The entry of @root mapping @gfn at or above @stop_level: a leaf, a
 * table entry at @stop_level, or a non-present entry. */
static uint64_t lookup(struct tdp_pt_page *root, uint64_t gfn, int stop_level,
		       int *level)
{
	uint64_t *table = root->spt;

	for (int l = root->level;; l--) {
		uint64_t s = __atomic_load_n(&table[spte_index(gfn, l)],
					     __ATOMIC_ACQUIRE);

		*level = l;
		if (!spte_present(s) || spte_is_leaf(s, l) || l == stop_level)
			return s;
		table = spte_to_table(s);
	}
}

/*
 * What the simulated hardware still caches must agree with the tables
 * (I1, I2, I6, I7): a vCPU with no request pending may use any TLB entry
 * without a walk, so the leaf behind it must be present, map the same
 * frame, allow at least the cached permissions, and, if the entry lets
 * writes skip the Dirty bit, have D set (else the dirty log and reclaim
 * miss those writes); a cached table pointer must still be the table the
 * root links there.  Changes that take any of this away flush first.
 */
static void check_tlbs(struct audit *a, struct tdp_vcpu **vs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct tdp_vcpu *v = vs[i];
		struct tdp_pt_page *root = v->root[v->as_id];
		struct tdp_tlb *t = &v->tlb;
		int lvl;

		if (atomic_load(&v->requests) || !root || root_invalid(root))
			continue; /* it flushes before it runs again */
		if (vm_confidential(v->vm) && !v->mirror_root)
			continue;
		for (int level = TDP_LEVEL_4K; level <= TDP_LEVEL_1G; level++)
			for (unsigned k = 0; k < TLB_SETS; k++) {
				struct tlb_entry *e = &t->e[level][k];
				uint64_t gfn, s;

				if (!e->tag)
					continue;
				gfn = (e->tag - 1) << level_shift(level);
				root = vcpu_root_for(v, &gfn);
				s = lookup(root, gfn, TDP_LEVEL_4K, &lvl);
				if (!spte_is_present_leaf(s, lvl))
					problem(a, "vCPU %u: TLB maps gfn %#llx, "
						   "no leaf does (stale TLB, "
						   "I1)",
						v->id, (unsigned long long)gfn);
				else if (spte_pfn(s) +
						 (gfn & (level_pages(lvl) - 1)) !=
					 e->pfn)
					problem(a, "vCPU %u: TLB maps gfn %#llx "
						   "to frame %#llx, the leaf to "
						   "%#llx (I1)",
						v->id, (unsigned long long)gfn,
						(unsigned long long)e->pfn,
						(unsigned long long)spte_pfn(s));
				else if (e->perms & ~spte_perms(s))
					problem(a, "vCPU %u: TLB allows %#x at "
						   "gfn %#llx, the leaf %#llx "
						   "(flush missed, I6)",
						v->id, e->perms,
						(unsigned long long)gfn,
						(unsigned long long)spte_perms(s));
				else if (e->dirty && (e->perms & SPTE_PERM_W) &&
					 !spte_dirty(s))
					problem(a, "vCPU %u: TLB lets writes to "
						   "gfn %#llx skip the Dirty "
						   "bit, which the leaf lost "
						   "(flush missed, I7)",
						v->id, (unsigned long long)gfn);
			}
		for (unsigned k = 0; k < PSC_SETS; k++) {
			struct psc_entry *pe = &t->psc[k];
			uint64_t gfn, s;

			if (!pe->tag)
				continue;
			gfn = (pe->tag - 1) << 9;
			root = vcpu_root_for(v, &gfn);
			s = lookup(root, gfn, TDP_LEVEL_2M, &lvl);
			if (lvl != TDP_LEVEL_2M || !spte_is_table(s, lvl) ||
			    spte_to_table(s) != pe->table)
				problem(a, "vCPU %u: paging-structure cache "
					   "holds table %p for gfn %#llx, the "
					   "root links another (I2)",
					v->id, (void *)pe->table,
					(unsigned long long)gfn);
		}
	}
}

/* I4, with the Dirty-bit ledger (mmu.h; test builds of the torture):
 * every Dirty bit ever set on a leaf of a frame was reported when it left
 * the leaf, or is still on one. */
static void check_dirty_ledger(struct tdp_mmu *mmu, struct audit *a)
{
	int *onleaf;

	if (!mmu->dirty_ledger)
		return;
	onleaf = calloc(mmu->ledger_frames, sizeof(*onleaf));
	if (!onleaf) {
		problem(a, "audit: out of memory");
		return;
	}
	for (size_t i = 0; i < a->nleaves; i++) {
		const struct leaf *l = &a->leaves[i];

		if (!spte_dirty(l->spte))
			continue;
		for (uint64_t f = spte_pfn(l->spte);
		     f < spte_pfn(l->spte) + level_pages(l->level) &&
		     f < mmu->ledger_frames;
		     f++)
			onleaf[f]++;
	}
	for (uint64_t f = 0; f < mmu->ledger_frames; f++) {
		int set = atomic_load(&mmu->dirty_ledger[f]);

		if (set == onleaf[f])
			continue;
		problem(a, "frame %#llx: %d Dirty bit(s) set and not reported "
			   "to the host or the log, %d on leaves: %s (I4)",
			(unsigned long long)f, set, onleaf[f],
			set > onleaf[f] ? "a Dirty bit was lost"
					: "reported twice");
		break;
	}
	free(onleaf);
}

static void audit_roots(struct tdp_vm *vm, struct audit *a,
			struct tdp_pt_page **vroots, unsigned nvroots)
{
	struct tdp_mmu *mmu = &vm->mmu;
	struct tdp_pt_page *root;

	for_each_root_locked(&mmu->roots, root) {
		int refs = root_invalid(root) ? 0 : 1;

		a->roots++;
		for (unsigned i = 0; i < nvroots; i++)
			if (vroots[i] == root)
				refs++;
		if (atomic_load(&root->refcount) == 0)
			problem(a, "root %p: refcount 0 but still listed "
				   "(leaked: its last put did not free it)",
				(void *)root->spt);
		else if (atomic_load(&root->refcount) != refs)
			problem(a, "root %p: refcount %d, expected %d (I3)",
				(void *)root->spt, atomic_load(&root->refcount),
				refs);
		if (root_invalid(root) && atomic_load(&root->scheduled_to_zap))
			problem(a, "root %p: invalid but never zapped",
				(void *)root->spt);
		a->in_invalid_root = root_invalid(root);
		a->in_mirror = root->mirror;
		check_shadow_page(a, root);
		walk_table(a, root->spt, root->level, 0, root->as_id);
	}
	a->in_mirror = false;
}

/* The external table holds nothing the valid mirror root lacks, and the
 * MMU never had an operation refused (I11). */
static void check_ext_counts(struct audit *a)
{
	struct ext_counts c;

	if (!a->ext)
		return;
	ext_get_counts(a->ext, &c);
	if (c.rejects)
		problem(a, "the external table refused %llu operation(s): the "
			   "VM is dead (I11)",
			(unsigned long long)c.rejects);
	if ((long)c.tables != a->mirror_tables ||
	    (long)c.leaves != a->mirror_leaves)
		problem(a, "external table: %llu tables and %llu leaves, the "
			   "valid mirror roots: %ld and %ld (I11)",
			(unsigned long long)c.tables,
			(unsigned long long)c.leaves, a->mirror_tables,
			a->mirror_leaves);
}

/* Legacy engine: every leaf is in a reverse map and every reverse-map
 * entry is a leaf (each entry is checked present as it is counted). */
static void check_rmaps(struct tdp_vm *vm, struct audit *a)
{
	int64_t n = mmu_rmap_entries(vm);

	if (n < 0)
		return;
	if ((uint64_t)n != a->nleaves)
		problem(a, "reverse maps hold %llu entries, the roots %zu "
			   "leaves (legacy engine)",
			(unsigned long long)n, a->nleaves);
}

static int vm_audit(struct tdp_vm *vm, char *report, size_t len);

int tdp_vm_audit(struct tdp_vm *vm, char *report, size_t len)
{
	return vm ? vm_audit(vm, report, len) : -EINVAL;
}

static int vm_audit(struct tdp_vm *vm, char *report, size_t len)
{
	struct audit a = { .report = report, .len = len, .ext = vm->mmu.ext,
			   .hash = vm->mmu.roots.hash };
	struct tdp_mmu *mmu = &vm->mmu;
	struct tdp_pt_page **vroots;
	struct tdp_vcpu **vs;
	struct vcpu_stats vsum;
	unsigned nvroots = 0, nvs = 0;
	long cached = 0, alloc;

	if (report && len)
		report[0] = 0;
	/* a host operation between invalidate start and end: the host's
	 * mapping and ours legitimately disagree until it ends */
	if (atomic_load(&vm->mn.in_progress))
		return -EBUSY;
	vroots = calloc(3 * (size_t)vm->cfg.max_vcpus, sizeof(*vroots));
	vs = calloc(vm->cfg.max_vcpus, sizeof(*vs));
	if (!vroots || !vs) {
		free(vroots);
		free(vs);
		return -ENOMEM;
	}
	/* Snapshot the (quiescent) vCPUs; never hold vcpus_lock while taking
	 * mmu_lock (vm.h lock order). */
	pthread_rwlock_rdlock(&vm->vcpus_lock);
	for (unsigned i = 0; i < vm->cfg.max_vcpus; i++) {
		struct tdp_vcpu *v = atomic_load(&vm->vcpus[i]);

		if (!v)
			continue;
		if (atomic_load(&v->mode) & 1) {
			pthread_rwlock_unlock(&vm->vcpus_lock);
			free(vroots);
			free(vs);
			return -EBUSY;
		}
		cached += v->cache.n;
		vs[nvs++] = v;
		for (unsigned as = 0; as < 2; as++)
			if (v->root[as])
				vroots[nvroots++] = v->root[as];
		if (v->mirror_root)
			vroots[nvroots++] = v->mirror_root;
	}
	pthread_rwlock_unlock(&vm->vcpus_lock);
	tdp_rcu_barrier();
	tdp_write_lock(&mmu->lock);
	audit_roots(vm, &a, vroots, nvroots);
	check_ext_counts(&a);
	check_rmaps(vm, &a);
	if (a.hash && a.hash->count != a.tables + a.roots)
		problem(&a, "the shadow-page hash holds %ld pages, the trees "
			    "%ld tables and %ld roots",
			a.hash->count, a.tables, a.roots);
	check_tlbs(&a, vs, nvs);
	check_dirty_ledger(mmu, &a);
	alloc = atomic_load(&mmu->alloc.allocated);
	tdp_write_unlock(&mmu->lock);
	free(vroots);
	free(vs);

	for (int l = TDP_LEVEL_4K; l <= TDP_LEVEL_1G; l++)
		if (a.leaves_by_level[l] != stat_slot_sum(&vm->stats, pages[l]))
			problem(&a, "pages at level %d: counter %lld, walk %ld",
				l, (long long)stat_slot_sum(&vm->stats, pages[l]),
				a.leaves_by_level[l]);
	if (a.tables != stat_slot_sum(&vm->stats, pt_pages))
		problem(&a, "table pages: counter %lld, walk %ld",
			(long long)stat_slot_sum(&vm->stats, pt_pages), a.tables);
	if (a.roots != atomic_load(&mmu->roots.nr_roots))
		problem(&a, "roots: counter %ld, list %ld",
			atomic_load(&mmu->roots.nr_roots), a.roots);
	if (alloc != a.tables + a.roots + cached)
		problem(&a, "allocator: %ld pages out, %ld tables + %ld roots + "
			    "%ld cached (leak)",
			alloc, a.tables, a.roots, cached);
	vcpu_stats_sum(vm, &vsum);
	if (stat_read(vsum.frame_refs) != 0)
		problem(&a, "%lld frame references held at quiescence",
			(long long)stat_read(vsum.frame_refs));
	for (size_t i = 0; i < a.nleaves; i++)
		check_leaf(vm, &a, &a.leaves[i]);
	free(a.leaves);
	free(a.ring_pages);
	return a.problems;
}
