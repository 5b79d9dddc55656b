/* SPDX-License-Identifier: MIT */
/*
 * spte.h - the entry format of TDP tables: Intel EPT layout.
 *
 *  bit  0      R        read allowed            (hardware)
 *  bit  1      W        write allowed           (hardware)
 *  bit  2      X        execute allowed         (hardware)
 *  bits 3-5    memory type (WB = 6)             (hardware, leaves)
 *  bit  6      ignore PAT                       (hardware, leaves)
 *  bit  7      L        large page (leaf above 4 KiB)
 *  bit  8      A        accessed                (hardware sets it)
 *  bit  9      D        dirty                   (hardware sets it, leaves)
 *  bit  11     MMU-present                      (software)
 *  bits 12-51  pfn: host frame of a leaf, or the address of a child table
 *  bit  57     host-writable: the host mapping allows writes   (software)
 *  bit  58     MMU-writable: the MMU did not write-protect it  (software)
 *  bit  63     suppress #VE: set in every non-present value
 *
 * Present means MMU-present (bit 11).  Hardware only looks at R/W/X, so
 * non-present values (zapped, frozen) have none of them.
 *
 * Volatile bits: A and D are set by the simulated hardware walker with a
 * compare-exchange at any time on a hardware-present entry, without
 * mmu_lock.  (Later: W by the lockless fast fault, A cleared by lockless
 * aging.)  So a present leaf must be changed with an atomic exchange or
 * compare-exchange even under the write lock, or those bits are lost (I4).
 *
 * Pure functions only; no locking rules.
 */
#ifndef TDP_SPTE_H
#define TDP_SPTE_H

#include <stdbool.h>
#include <stdint.h>

#define SPTE_R (1ull << 0)
#define SPTE_W (1ull << 1)
#define SPTE_X (1ull << 2)
#define SPTE_RWX (SPTE_R | SPTE_W | SPTE_X)
#define SPTE_MT_WB (6ull << 3)
#define SPTE_IPAT (1ull << 6)
#define SPTE_LARGE (1ull << 7)
#define SPTE_A (1ull << 8)
#define SPTE_D (1ull << 9)
#define SPTE_MMU_PRESENT (1ull << 11)
#define SPTE_PFN_MASK (((1ull << 52) - 1) & ~((1ull << 12) - 1))
#define SPTE_HOST_WRITABLE (1ull << 57)
#define SPTE_MMU_WRITABLE (1ull << 58)
/* Flipped by every write-protect pass of the dirty log over a leaf that is
 * MMU-writable, so a lockless fast fault that read the leaf before the
 * pass loses its compare-exchange and logs the page again (dirty_log.c). */
#define SPTE_LOG_SEQ (1ull << 59)
#define SPTE_SUPPRESS_VE (1ull << 63)

/* The value of a zapped entry. */
#define SPTE_NONPRESENT SPTE_SUPPRESS_VE
/* Claimed by one thread for a multi-step update; nobody else may write it.
 * Not present, no R/W/X, no pfn. */
#define SPTE_FROZEN (SPTE_SUPPRESS_VE | 0x5a0ull)
/* An MMIO entry (KVM's MMIO SPTE): not present, so an access through it
 * faults, and the fault handler finds the memslot generation it was made
 * in (bits 12..41) and, if that is current, exits as MMIO at once. */
#define SPTE_MMIO_MARK (1ull << 62)
#define SPTE_MMIO_GEN_SHIFT 12
#define SPTE_MMIO_GEN_MASK ((1ull << 30) - 1)

#define TDP_LEVEL_4K 1
#define TDP_LEVEL_2M 2
#define TDP_LEVEL_1G 3
#define TDP_MAX_LEVEL 5
#define SPTE_ENT_PER_PAGE 512

static inline unsigned level_shift(int level) /* in gfns */
{
	return 9u * (unsigned)(level - 1);
}

static inline uint64_t level_pages(int level)
{
	return 1ull << level_shift(level);
}

static inline uint64_t gfn_round_for_level(uint64_t gfn, int level)
{
	return gfn & ~(level_pages(level) - 1);
}

static inline unsigned spte_index(uint64_t gfn, int level)
{
	return (unsigned)(gfn >> level_shift(level)) & 511u;
}

static inline bool spte_present(uint64_t spte)
{
	return spte & SPTE_MMU_PRESENT;
}

static inline bool spte_frozen(uint64_t spte)
{
	return spte == SPTE_FROZEN;
}

static inline uint64_t make_mmio_spte(uint64_t gen)
{
	return SPTE_SUPPRESS_VE | SPTE_MMIO_MARK |
	       ((gen & SPTE_MMIO_GEN_MASK) << SPTE_MMIO_GEN_SHIFT);
}

static inline bool spte_is_mmio(uint64_t spte)
{
	return (spte & (SPTE_MMIO_MARK | SPTE_MMU_PRESENT)) == SPTE_MMIO_MARK;
}

static inline uint64_t spte_mmio_gen(uint64_t spte)
{
	return (spte >> SPTE_MMIO_GEN_SHIFT) & SPTE_MMIO_GEN_MASK;
}

static inline bool spte_is_leaf(uint64_t spte, int level)
{
	return level == TDP_LEVEL_4K || (spte & SPTE_LARGE);
}

static inline bool spte_is_present_leaf(uint64_t spte, int level)
{
	return spte_present(spte) && spte_is_leaf(spte, level);
}

static inline bool spte_is_table(uint64_t spte, int level)
{
	return spte_present(spte) && !spte_is_leaf(spte, level);
}

static inline uint64_t spte_pfn(uint64_t spte)
{
	return (spte & SPTE_PFN_MASK) >> 12;
}

static inline uint64_t *spte_to_table(uint64_t spte)
{
	return (uint64_t *)(uintptr_t)(spte & SPTE_PFN_MASK);
}

static inline bool spte_writable(uint64_t spte)
{
	return spte & SPTE_W;
}

/*
 * The format as the rest of the MMU sees it: every other file asks these
 * (and the constructors below) and names no bit, so a second entry format
 * (AMD NPT) is this file.
 */
static inline bool spte_readable(uint64_t spte)
{
	return spte & SPTE_R;
}

static inline bool spte_executable(uint64_t spte)
{
	return spte & SPTE_X;
}

static inline bool spte_accessed(uint64_t spte)
{
	return spte & SPTE_A;
}

static inline bool spte_dirty(uint64_t spte)
{
	return spte & SPTE_D;
}

/* the MMU did not write-protect it (the dirty log may have taken W) */
static inline bool spte_mmu_writable(uint64_t spte)
{
	return spte & SPTE_MMU_WRITABLE;
}

/* the host mapping allows writes */
static inline bool spte_host_writable(uint64_t spte)
{
	return spte & SPTE_HOST_WRITABLE;
}

/* The hardware treats the entry as present (any of R, W, X). */
static inline bool spte_hw_present(uint64_t spte)
{
	return spte & SPTE_RWX;
}

/* Access permissions as the TLB keeps them: SPTE_PERM_* bits. */
#define SPTE_PERM_R 1u
#define SPTE_PERM_W 2u
#define SPTE_PERM_X 4u
_Static_assert(SPTE_PERM_R == SPTE_R && SPTE_PERM_W == SPTE_W &&
		       SPTE_PERM_X == SPTE_X,
	       "EPT keeps R/W/X where the TLB does: spte_perms is a mask");
static inline unsigned spte_perms(uint64_t spte)
{
	return (unsigned)(spte & SPTE_RWX);
}

/* The bits the hardware walker sets: Accessed on every entry it uses,
 * Dirty too on a leaf it writes through. */
static inline uint64_t spte_hw_set_mask(bool leaf_write)
{
	return SPTE_A | (leaf_write ? SPTE_D : 0);
}

/* Without Accessed (aging). */
static inline uint64_t spte_mkold(uint64_t spte)
{
	return spte & ~SPTE_A;
}

/* Without Dirty (a Dirty-bit harvest). */
static inline uint64_t spte_mkclean(uint64_t spte)
{
	return spte & ~SPTE_D;
}

/* Write-protected for the dirty log: W taken away, MMU-writable kept, and
 * the log sequence bit flipped (SPTE_LOG_SEQ). */
static inline uint64_t spte_log_wrprot(uint64_t spte)
{
	return (spte & ~SPTE_W) ^ SPTE_LOG_SEQ;
}

/* Made writable again by a fast fault (only if MMU- and host-writable). */
static inline uint64_t spte_mkwrite(uint64_t spte)
{
	return spte | SPTE_W;
}

/* Read-only, clean: a read fault's leaf must not allow writes. */
static inline uint64_t spte_mkreadonly(uint64_t spte)
{
	return spte & ~(SPTE_W | SPTE_D);
}

/* @new with the Accessed and Dirty state of @old added. */
static inline uint64_t spte_keep_ad(uint64_t new, uint64_t old)
{
	return new | (old & (SPTE_A | SPTE_D));
}

/* A leaf for @pfn at @level.  @w: slot and host allow writes (W and
 * MMU-writable; the dirty log may take W away again, keeping MMU-writable);
 * @host_w: host mapping is writable; @x: executable; @dirty: set D (write
 * fault). */
static inline uint64_t make_leaf_spte(uint64_t pfn, int level, bool w,
				      bool host_w, bool x, bool dirty)
{
	uint64_t s = SPTE_MMU_PRESENT | SPTE_R | SPTE_MT_WB | SPTE_IPAT |
		     SPTE_A | (pfn << 12);

	if (level > TDP_LEVEL_4K)
		s |= SPTE_LARGE;
	if (host_w)
		s |= SPTE_HOST_WRITABLE;
	if (w && host_w)
		s |= SPTE_W | SPTE_MMU_WRITABLE;
	if (x)
		s |= SPTE_X;
	if (dirty && (s & SPTE_W))
		s |= SPTE_D;
	return s;
}

/* A non-leaf entry pointing at a table (4 KiB aligned address). */
static inline uint64_t make_table_spte(const uint64_t *table)
{
	return SPTE_MMU_PRESENT | SPTE_RWX | ((uintptr_t)table & SPTE_PFN_MASK);
}

/* The @i-th child of a huge leaf being split into a table one level down:
 * same permissions, A and D (so no dirty state is lost). */
static inline uint64_t make_small_spte(uint64_t huge, int huge_level,
				       unsigned i)
{
	int child_level = huge_level - 1;
	uint64_t pfn = spte_pfn(huge) + (uint64_t)i * level_pages(child_level);
	uint64_t s = (huge & ~SPTE_PFN_MASK) | (pfn << 12);

	if (child_level == TDP_LEVEL_4K)
		s &= ~SPTE_LARGE;
	return s;
}

/* Writable-bit invariant: W implies MMU-writable and host-writable. */
static inline bool spte_writable_ok(uint64_t spte)
{
	if (!(spte & SPTE_W))
		return true;
	return (spte & SPTE_MMU_WRITABLE) && (spte & SPTE_HOST_WRITABLE);
}

/* Does replacing present leaf @old by @new remove a permission or change
 * the frame (so a TLB flush is owed)? */
static inline bool leaf_change_needs_flush(uint64_t old, uint64_t new)
{
	if (!spte_present(old))
		return false;
	if (!spte_present(new) || spte_pfn(old) != spte_pfn(new))
		return true;
	return (old & SPTE_RWX) & ~(new & SPTE_RWX);
}

#endif
