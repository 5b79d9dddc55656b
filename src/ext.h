/* SPDX-License-Identifier: MIT */
/*
 * ext.h - the external page table: a stand-in for the trusted firmware
 * (Intel's TDX module) that owns a confidential VM's real private page
 * table (the Secure-EPT).
 *
 * What it models.  The MMU never writes the private page table itself: it
 * keeps a mirror table of its own (the mirror root) and forwards every
 * change of a mirror entry to this component, which applies it to its own
 * radix tree with the EPT shape and refuses anything the firmware would
 * refuse.  The tree has levels 1 (4 KiB entries) .. root_level (4 or 5),
 * 512 entries per table; an entry at level L covers 512^(L-1) 4 KiB pages
 * (gfns) and the index of a gfn at level L is (gfn >> 9*(L-1)) & 511.  The
 * root table (the entries at root_level) exists from ext_create to
 * ext_destroy.  An entry is none, a table (a child table at level L-1;
 * only at L >= 2) or a leaf (a pfn; only at level 1: private memory is
 * mapped with 4 KiB pages only).  An entry is named by (gfn, level): gfn
 * aligned to the entry's size (gfn % 512^(L-1) == 0), gfn < 512^root_level
 * and 1 <= level <= root_level.  Nothing here knows about the MMU: this is
 * a lower layer, it includes no other project header but assert.h.
 *
 * The ordering rules it enforces (a rejected call returns a negative errno
 * and changes nothing but the rejects count):
 *  - A table before its contents: linking a table or setting a leaf needs
 *    the table holding the entry to be linked already (-ENOENT), so a path
 *    is built top-down, root_level-1 table first.
 *  - No overwrite: linking or setting over a present entry is -EEXIST; an
 *    entry goes back to none only through ext_remove_leaf/ext_free_table.
 *  - Leaves removed before their table is freed: ext_free_table of a table
 *    that still holds present entries (leaves or tables) is -EBUSY, so a
 *    path is torn down bottom-up.
 *  - Removals only under the MMU lock held for write: ext_remove_leaf and
 *    ext_free_table take @write_locked, the caller's word that it holds
 *    mmu_lock for write; without it they are -EPERM (as in KVM, which
 *    removes Secure-EPT entries only with mmu_lock held for write: the
 *    block, TLB-track and remove steps must not interleave with parallel
 *    faults).  This is checked right after the argument checks, before the
 *    entry is looked at.
 *  - A leaf is removed by naming its pfn: a wrong pfn is -EINVAL (the
 *    firmware's check that the host removes the page it thinks it does).
 *
 * Locking.  Every function except ext_destroy may be called concurrently
 * from any number of threads (the MMU links tables and sets leaves under
 * its read lock, from parallel faults on different entries).  One internal
 * mutex serialises them, as the firmware serialises its SEAMCALLs on the
 * Secure-EPT; a call never blocks on anything but that mutex, and never
 * calls back.  ext_lookup and ext_get_counts take the mutex too, so what
 * they return is a consistent snapshot (stale once returned).
 *
 * Lifetime.  ext_create makes an empty tree (the root only); ext_destroy
 * frees the whole tree, empty or not (a VM torn down with private memory
 * still mapped), and must not race with any other call on the same tree.
 * The component never owns or touches the memory a pfn names.
 */
#ifndef TDP_EXT_H
#define TDP_EXT_H

#include <stdbool.h>
#include <stdint.h>

struct ext_table;

/* Entries per table and the bits of the gfn each level indexes. */
#define EXT_ENTRIES	   512
#define EXT_LEVEL_BITS	   9
#define EXT_MIN_ROOT_LEVEL 4
#define EXT_MAX_ROOT_LEVEL 5

/* gfns one entry at @level covers: 512^(level-1). */
static inline uint64_t ext_level_pages(int level)
{
	return 1ull << (EXT_LEVEL_BITS * (level - 1));
}

/* A tree with @root_level levels (4 or 5) and an empty root table.
 * Errors: -EINVAL @root_level not 4 or 5, or NULL @out; -ENOMEM. */
int ext_create(int root_level, struct ext_table **out);

/* Free the tree and every table in it, present entries or not.  Not
 * concurrently with any other call on @x.  NULL is a no-op. */
void ext_destroy(struct ext_table *x);

/* Link a new empty table (at level @level-1) under entry (gfn, level),
 * 2 <= level <= root_level.
 * Errors: -EINVAL bad level, alignment or range; -ENOENT the table holding
 *         the entry is not linked (a table before its parent); -EEXIST the
 *         entry already holds a table or a leaf; -ENOMEM. */
int ext_link_table(struct ext_table *x, uint64_t gfn, int level);

/* Map the 4 KiB page @pfn at entry (gfn, level); @level must be 1.
 * Errors: -EINVAL bad level (not 1), alignment or range; -ENOENT the level-1
 *         table holding the entry is not linked; -EEXIST entry present. */
int ext_set_leaf(struct ext_table *x, uint64_t gfn, int level, uint64_t pfn);

/* Remove the leaf at entry (gfn, level), which must map @pfn.
 * Errors, in the order checked: -EINVAL bad level (not 1), alignment or
 *         range; -EPERM !@write_locked; -ENOENT no leaf there (also when
 *         the path to it is missing); -EINVAL the leaf maps another pfn. */
int ext_remove_leaf(struct ext_table *x, uint64_t gfn, int level, uint64_t pfn,
		    bool write_locked);

/* Unlink and free the table under entry (gfn, level), 2 <= level <=
 * root_level.
 * Errors, in the order checked: -EINVAL bad level, alignment or range;
 *         -EPERM !@write_locked; -ENOENT no table there (also when the
 *         path to it is missing); -EBUSY the table still holds present
 *         entries (leaves or tables). */
int ext_free_table(struct ext_table *x, uint64_t gfn, int level,
		   bool write_locked);

enum ext_kind { EXT_NONE = 0, EXT_TABLE, EXT_LEAF };

/* What entry (gfn, level) holds now: EXT_NONE also when the path to it is
 * missing or the arguments name no entry.  For a leaf, *@pfn is set (@pfn
 * may be NULL).  Not an operation: it changes no count. */
enum ext_kind ext_lookup(struct ext_table *x, uint64_t gfn, int level,
			 uint64_t *pfn);

struct ext_counts {
	uint64_t tables;  /* tables linked now, excluding the root */
	uint64_t leaves;  /* leaves present now */
	uint64_t ops;	  /* successful link/set/remove/free calls */
	uint64_t rejects; /* failed calls (any errno, -ENOMEM included) */
};

/* A consistent snapshot of the counts. */
void ext_get_counts(struct ext_table *x, struct ext_counts *out);

#endif
