/* SPDX-License-Identifier: MIT */
/*
 * tdpmmu.h - the public API of tdpmmu, a userspace two-dimensional-paging
 * MMU with the design of the Linux KVM x86 TDP MMU, plus the machine it runs
 * on: an embedded host whose memory moves, and vCPUs with a software TLB and
 * page walker.
 *
 * Conventions
 *  - Every function that can fail returns 0 or a positive value on success
 *    and a negative errno value on failure.  Each function lists the errno
 *    values it returns and what each one means for it.  A failed call
 *    changes nothing.
 *  - Constructors return the new object through an out parameter; a NULL
 *    out parameter is -EINVAL.
 *  - NULL objects: a function that returns int fails with -EINVAL, and
 *    changes nothing, when its host, VM or vCPU pointer is NULL; the
 *    destroy functions ignore NULL; tdp_host_get_stats and
 *    tdp_vm_get_stats write nothing when their object or @out is NULL.
 *  - Addresses and sizes are bytes.  Guest-physical addresses (gpa) are in
 *    the simulated machine.  Host virtual addresses (hva) are numbers of
 *    the embedded host's simulated address space, or, with the process
 *    backend (TDP_HOST_PROCESS), pointers in this process.
 *  - There is no global state visible to the caller.  (Internally the
 *    library registers each thread that touches a VM with liburcu, once,
 *    and unregisters it at thread exit.)
 *  - Thread-safety is stated per function.  "Any thread" means the function
 *    may run concurrently with any other function on the same objects
 *    except the matching destroy.
 *
 * Object lifetimes: a host outlives its VMs, a VM outlives its vCPUs.
 * Destroy vCPUs before their VM and VMs before their host.
 */
#ifndef TDPMMU_H
#define TDPMMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the functions the shared library exports: these and nothing else
 * (the library is built with hidden visibility; tests/exports.cmake
 * checks `nm -D` against this header). */
#define TDP_API __attribute__((visibility("default")))

#define TDP_PAGE_SIZE 4096ull
#define TDP_HUGE_2M   (2ull << 20)
#define TDP_HUGE_1G   (1ull << 30)

/* ------------------------------------------------------------------ */
/* Host                                                                */
/* ------------------------------------------------------------------ */

struct tdp_host;

/* Protection bits of a host mapping (tdp_host_mmap, tdp_host_mprotect). */
#define TDP_PROT_NONE  0u
#define TDP_PROT_READ  1u
#define TDP_PROT_WRITE 2u
#define TDP_PROT_EXEC  4u

/* Flags of tdp_host_mmap */
#define TDP_MAP_FIXED 1u
/* Guest-private memory, a stand-in for Linux's guest_memfd: only VMs map
 * it (through the private side of TDP_MEM_PRIVATE memslots).  The host
 * never touches it: tdp_host_read/write, mprotect, migrate, swap_out,
 * split and age fail with -EPERM on any range that includes a page of it.
 * Its invalidation takes its own path: tdp_host_punch_hole and
 * tdp_host_munmap tell VMs through their private invalidation, which zaps
 * mirror roots under the write lock; the hva invalidation that zaps direct
 * roots never reaches a private mapping. */
#define TDP_MAP_GUEST_PRIVATE 2u

/* Host backends (tdp_host_config.backend) */
#define TDP_HOST_POOL	 0u /* the embedded pool (the default) */
#define TDP_HOST_PROCESS 1u /* guest RAM is memory of this process */

struct tdp_host_config {
	/* Bytes of host-physical memory (the frame pool).  Rounded up to
	 * 1 GiB.  The pool is reserved, not committed: untouched frames cost
	 * nothing.  0 selects 4 GiB. */
	uint64_t mem_bytes;
	/*
	 * TDP_HOST_POOL: the embedded host.  Its hvas are numbers of a
	 * simulated address space; the program reaches guest RAM only
	 * through tdp_host_read/write (and vCPUs).
	 *
	 * TDP_HOST_PROCESS ("bring your own memory", Linux only; needs
	 * memfd_create and userfaultfd): the frames are the pages of a memfd
	 * (pfn N at offset N * 4096) and every hva that tdp_host_mmap
	 * returns is a real pointer into this process, mapped shared onto
	 * the frames that back it, with the mapping's read and write
	 * permission.  The program reads and writes guest RAM through it
	 * directly; every host operation keeps its meaning and its notifier
	 * protocol, and also changes the real mapping after VMs have been
	 * told: migrate moves the pages to new frames and remaps the same
	 * pointer onto them (same bytes); swap-out copies the pages out and
	 * frees their frames; a touch through the
	 * pointer of a page that is not present (never touched, swapped out,
	 * or being migrated or swapped out at that moment) is caught by
	 * userfaultfd and served by the host's own thread, which faults the
	 * page in (or waits for the operation to finish) and lets the touch
	 * go on.  munmap leaves the real range PROT_NONE (a touch gets
	 * SIGSEGV) and reserved for this host until it is destroyed, so
	 * that a TDP_MAP_FIXED mmap can map it again; mprotect changes its real
	 * protection (a touch that the new protection forbids gets SIGSEGV,
	 * as with mprotect(2)); guest-private memory is never mapped in the
	 * process (PROT_NONE).
	 *
	 * Rules for the program (the host cannot see what it does to its own
	 * address space behind the library's back):
	 *  - madvise(MADV_DONTNEED) on guest RAM is harmless: the mapping is
	 *    shared, so it only drops the process's page table entries and
	 *    the next touch maps the same frame again; no VM is affected.
	 *  - Do not munmap, mremap, mprotect or mmap over guest RAM, and do
	 *    not punch it (MADV_REMOVE): call tdp_host_munmap /
	 *    tdp_host_mprotect, which tell the VMs first.  A VM keeps
	 *    mapping the frames that the program took away behind its back.
	 *  - The host never sees the program's own writes, so every page of
	 *    a process host is dirty for reclaim (swap-out always copies;
	 *    swap_out_clean stays 0) and a write through the pointer is not
	 *    in any dirty log: call tdp_vm_mark_dirty for it.
	 *  - Freed frames are poisoned, as in the pool, and stay in the
	 *    memfd until they are allocated again (swap-out does not give
	 *    memory back to the system before then).
	 *  - A program touch blocks while a migrate or swap-out of its page
	 *    runs, and while the host's thread faults the page in; a thread
	 *    must not touch guest RAM through its pointers from inside a
	 *    notifier callback or while it holds a direct-access window
	 *    (tdp_vcpu_map), since the host operation it would wait for may
	 *    be waiting for it.
	 */
	unsigned backend;
};

/*
 * tdp_host_create - create a host with its own frame pool, of the backend
 * @cfg->backend (the embedded pool by default).
 * @cfg: configuration, may be NULL for defaults.
 * @out: receives the host.
 * Errors: -EINVAL bad configuration (mem_bytes above 1 TiB, unknown
 *         backend) or NULL @out;  -ENOMEM the pool could not be reserved;
 *         -EOPNOTSUPP TDP_HOST_PROCESS on a system without memfd_create or
 *         without userfaultfd (neither the system call nor
 *         /dev/userfaultfd is open to this process).
 * Thread-safety: any thread.
 */
TDP_API int tdp_host_create(const struct tdp_host_config *cfg,
			    struct tdp_host **out);

/*
 * tdp_host_destroy - unmap everything and free the host.  Every VM created
 * on it must have been destroyed.  NULL is ignored.
 * Thread-safety: no other call on this host may run concurrently.
 */
TDP_API void tdp_host_destroy(struct tdp_host *h);

/*
 * tdp_host_mmap - map @len bytes of anonymous memory backed by folios of
 * @folio_size bytes (4 KiB, 2 MiB or 1 GiB), with protection @prot.  The
 * returned hva is aligned to the folio size.  Frames are allocated on first
 * touch (by a guest access or tdp_host_read/write) and are zero-filled.
 * @flags: 0, or TDP_MAP_FIXED: map exactly at *@hva (which must be aligned
 *         to folio_size), failing if any page there is already mapped;
 *         may be ORed with TDP_MAP_GUEST_PRIVATE (see above).
 * Errors: -EINVAL len is 0, not a multiple of folio_size, folio_size is not
 *         one of the three sizes, unknown prot or flags bits, a NULL @hva,
 *         or a fixed hva that is unaligned or beyond 2^47;
 *         -EEXIST TDP_MAP_FIXED and part of the range is mapped;
 *         -ENOMEM no hva space left (the hva space is 2^47 bytes).
 * Thread-safety: any thread.
 */
TDP_API int tdp_host_mmap(struct tdp_host *h, uint64_t len, unsigned prot,
			  uint64_t folio_size, unsigned flags, uint64_t *hva);

/*
 * tdp_host_munmap - unmap [hva, hva+len).  The range must lie inside
 * mappings and may cover parts of them; huge folios partly covered are split
 * first.  VMs are told through their notifier before any frame is freed
 * (and, if the range has guest-private pages, through their private
 * invalidation too).
 * Errors: -EINVAL unaligned or zero len, or overflow;  -ENOENT some page of
 *         the range is not mapped (nothing is changed).
 * Thread-safety: any thread.
 */
TDP_API int tdp_host_munmap(struct tdp_host *h, uint64_t hva, uint64_t len);

/*
 * tdp_host_punch_hole - free the frames of [hva, hva+len) of guest-private
 * memory (guest_memfd's FALLOC_FL_PUNCH_HOLE).  The mapping stays; the
 * next guest touch gets zero-filled frames.  VMs are told through their
 * private invalidation before any frame is freed; huge folios partly
 * covered are split first.
 * Errors: -EINVAL unaligned or zero len, or overflow;  -ENOENT part of the
 *         range is not mapped;  -EPERM part of the range is not
 *         TDP_MAP_GUEST_PRIVATE memory.  On error nothing changed.
 * Thread-safety: any thread.
 */
TDP_API int tdp_host_punch_hole(struct tdp_host *h, uint64_t hva, uint64_t len);

/*
 * tdp_host_mprotect - change the protection of [hva, hva+len).  Removing a
 * permission invalidates VM mappings of the range first, so guests see the
 * new protection from their next access on.
 * Errors: -EINVAL unaligned, zero len, overflow or unknown prot bits;
 *         -ENOENT part of the range is not mapped;  -EPERM part of the
 *         range is TDP_MAP_GUEST_PRIVATE memory.  On error nothing changed.
 * Thread-safety: any thread.
 */
TDP_API int tdp_host_mprotect(struct tdp_host *h, uint64_t hva, uint64_t len,
			      unsigned prot);

/*
 * tdp_host_migrate - move the populated pages of [hva, hva+len) to new
 * frames, keeping their contents (NUMA balancing / compaction).  Huge folios
 * partly covered are split first; whole ones move as a whole.  Old frames
 * are freed (and poisoned) once no VM can reach them.
 * Errors: -EINVAL as for munmap;  -ENOENT part of the range is not mapped;
 *         -EPERM part of the range is TDP_MAP_GUEST_PRIVATE memory;
 *         -ENOMEM no free frames for the copy.  On error nothing changed.
 * Thread-safety: any thread.
 */
TDP_API int tdp_host_migrate(struct tdp_host *h, uint64_t hva, uint64_t len);

/*
 * tdp_host_swap_out - write the populated pages of [hva, hva+len) to the
 * host's swap store and free their frames.  The next touch allocates new
 * frames and brings the contents back.  Huge folios partly covered are
 * split first.
 * Errors: -EINVAL as for munmap;  -ENOENT part of the range is not mapped;
 *         -EPERM part of the range is TDP_MAP_GUEST_PRIVATE memory;
 *         -ENOMEM the swap store could not grow.  On error nothing changed.
 * Thread-safety: any thread.
 */
TDP_API int tdp_host_swap_out(struct tdp_host *h, uint64_t hva, uint64_t len);

/*
 * tdp_host_split - split every huge folio that intersects [hva, hva+len)
 * into 4 KiB frames.  Frames and contents stay; the host mapping level
 * drops, so VMs lose their huge mappings of the range.
 * Errors: -EINVAL as for munmap;  -ENOENT part of the range is not mapped;
 *         -EPERM part of the range is TDP_MAP_GUEST_PRIVATE memory.  On
 *         error nothing changed.
 * Thread-safety: any thread.
 */
TDP_API int tdp_host_split(struct tdp_host *h, uint64_t hva, uint64_t len);

/*
 * tdp_host_set_missing - post-copy migration's missing-page path: every
 * page of [hva, hva+len) becomes missing.  Its frame, if it had one, is
 * freed (VMs are told first, as for a swap-out; its content is lost), and
 * the next time the page is faulted in (a vCPU's access,
 * tdp_host_read/write, or with the process backend a touch through the
 * pointer) the host calls @fn(@arg, page_hva, page) to fill its 4 KiB
 * frame instead of zero-filling it.  @fn returns 0, or a negative errno
 * that the faulting access fails with (tdp_vcpu_read/write/fetch and
 * tdp_host_read/write return it; the page stays missing).
 * @fn runs with the host's mmap lock held for write: it may wait (for
 * the network), but must not call into this host, and every other fault-in
 * of this host waits for it.  One fill function per host: each call
 * replaces @fn and @arg for every missing page.  Huge folios in the range
 * are split; filled pages are 4 KiB folios.
 * Errors: -EINVAL NULL @fn, unaligned or empty range, overflow;
 *         -ENOENT part of the range is not mapped;  -EPERM part of it is
 *         TDP_MAP_GUEST_PRIVATE memory;  -ENOMEM.  On error nothing
 *         changed.
 * Thread-safety: any thread.
 */
typedef int (*tdp_host_fill_fn)(void *arg, uint64_t hva, void *page);
TDP_API int tdp_host_set_missing(struct tdp_host *h, uint64_t hva,
				 uint64_t len, tdp_host_fill_fn fn, void *arg);

/*
 * tdp_host_read / tdp_host_write - copy between the host's memory at
 * [hva, hva+len) and @buf, faulting pages in (allocate or swap in) as
 * needed.  Ranges may cross pages, folios and mappings.
 * Errors: -EINVAL NULL buf with len > 0, or overflow;  -EFAULT part of the
 *         range is not mapped;  -EACCES the mapping lacks TDP_PROT_READ
 *         (read) or TDP_PROT_WRITE (write);  -EPERM the range is mapped
 *         and accessible but part of it is TDP_MAP_GUEST_PRIVATE memory;
 *         -ENOMEM no frame to fault in.  On error nothing was copied.
 * Dirty logging: tdp_host_write is not recorded in the dirty log of a
 * TDP_MEM_LOG_DIRTY memslot that maps the page (tdp_vm_get_dirty_log does
 * not report it), as in KVM, where writes through the host virtual
 * address bypass the log: the copy goes straight to the frame, past every
 * VM's page tables.  A VMM that writes guest memory this way while it
 * migrates must mark those pages itself (tdp_vm_mark_dirty), or write
 * through a vCPU (tdp_vcpu_write), which is logged.
 * Thread-safety: any thread.  Concurrent guest accesses to the same bytes
 * are not ordered with the copy (as with real shared memory).
 */
TDP_API int tdp_host_read(struct tdp_host *h, uint64_t hva, void *buf,
			  uint64_t len);
TDP_API int tdp_host_write(struct tdp_host *h, uint64_t hva, const void *buf,
			   uint64_t len);

/*
 * tdp_host_age - the host's reclaim scan asks whether the pages of
 * [hva, hva+len) were accessed since they were last aged, and (unless
 * TDP_AGE_TEST_ONLY) clears that state.  A page is young if the host
 * itself touched it (tdp_host_read/write, a VM zapping a mapping whose
 * Accessed bit was set) or a VM's mapping of it has its Accessed bit set;
 * the VMs are asked through the notifier (Linux's clear_young/test_young).
 *
 * Youth is per mapping (per leaf), not per 4 KiB page, as in KVM: a leaf
 * has one Accessed bit, so one access anywhere in a 2 MiB (1 GiB) leaf
 * makes every page of that leaf that lies in the range young, all 512
 * (262144) of them; the zap of such a leaf marks all its frames accessed
 * too.  Only the host's own tdp_host_read/write mark single pages.
 *
 * VMs age without mmu_lock (RCU and atomic bit clears; the
 * TDP_VM_LOCKED_AGING baseline takes the lock) and, like KVM, do not flush
 * TLBs.  The vCPU's page walker sets Accessed only when it walks, on a TLB
 * miss (or a write through a translation cached clean, to set Dirty); a
 * TLB hit sets nothing.  So after an aging, a vCPU whose TLB still holds
 * a translation keeps using it without setting Accessed again, and its
 * accesses go unseen until the translation leaves the TLB: evicted by
 * another translation, or dropped by a remote TLB flush (TDP_AGE_FLUSH's,
 * a zap's, a dirty-log harvest's), which empties every vCPU's whole TLB.
 * This is the accuracy trade-off of clear_young, and huge leaves pay most:
 * few TLB entries cover a large working set, so without TDP_AGE_FLUSH a
 * 2 MiB or 1 GiB leaf in steady use is almost never seen young again once
 * aged, where 4 KiB translations are evicted and re-walked much sooner.
 *
 * TDP_AGE_FLUSH (Linux's clear_flush_young) flushes every vCPU TLB after
 * clearing, and then every access that starts after the call returns is
 * seen by the next aging, or, when a zap of that mapping runs at the same
 * moment and is still handing its Accessed bit to the host, by the one
 * after.  Use it when precision matters (and with huge leaves); it costs,
 * per VM and per call, a remote TLB flush (a request to every vCPU and a
 * wait for those in guest mode) and the TLB misses that follow.  With
 * TDP_AGE_TEST_ONLY it flushes nothing.  Aging never loses a Dirty bit.
 *
 * @young: if not NULL, one bit per 4 KiB page of the range (bit i of word
 * i / 64 for page i), set for young pages, cleared for the others.
 * Returns the number of young pages (>= 0).
 * Errors: -EINVAL unaligned or empty range, overflow, more than INT_MAX
 *         pages, unknown flags;  -ENOENT part of the range is not mapped;
 *         -EPERM part of the range is TDP_MAP_GUEST_PRIVATE memory
 *         (nothing aged, no VM asked);  -ENOMEM @young is NULL and no
 *         scratch bitmap could be allocated (nothing aged).
 * Thread-safety: any thread.
 */
#define TDP_AGE_TEST_ONLY 1u /* report only; clear nothing */
#define TDP_AGE_FLUSH	  2u /* clear, then flush vCPU TLBs */
TDP_API int tdp_host_age(struct tdp_host *h, uint64_t hva, uint64_t len,
			 unsigned flags, uint64_t *young);

struct tdp_host_stats {
	uint64_t frames_total;	 /* 4 KiB frames in the pool */
	uint64_t frames_used;	 /* frames allocated (mapped or pinned) */
	uint64_t frame_refs;	 /* sum of all frame reference counts */
	uint64_t pinned_refs;	 /* references held by VMs (faults in flight) */
	uint64_t swapped_pages;	 /* 4 KiB pages in the swap store */
	uint64_t migrations;	 /* pages moved by tdp_host_migrate */
	uint64_t swap_outs;	 /* pages written to swap */
	uint64_t swap_ins;	 /* pages read back from swap */
	uint64_t splits;	 /* huge folios split */
	uint64_t notifier_calls; /* invalidate-start calls made to VMs
				  * (private ones included) */
	/* Of swap_outs: clean pages (unchanged since their swap-in, as far as
	 * the host and the VMs' Dirty bits tell) whose retained swap copy was
	 * reused: the frame was dropped without being written. */
	uint64_t swap_out_clean;
	/* missing pages (tdp_host_set_missing) filled by the fill function */
	uint64_t missing_filled;
};

/*
 * tdp_host_get_stats - snapshot the host's counters into @out (nothing is
 * written if @h or @out is NULL).
 * frame_refs and pinned_refs are computed from every frame's reference
 * count (the fault path counts nothing else for a pin): the call reads
 * the counts of every frame up to the highest one ever allocated, 4
 * bytes per 4 KiB frame (a millisecond for 4 GiB), so it is not for a
 * hot loop.
 * Thread-safety: any thread; counters are read individually, not as one
 * atomic snapshot (while guests run, frame_refs and pinned_refs may mix
 * moments).
 */
TDP_API void tdp_host_get_stats(struct tdp_host *h, struct tdp_host_stats *out);

/* ------------------------------------------------------------------ */
/* VM                                                                  */
/* ------------------------------------------------------------------ */

struct tdp_vm;

#define TDP_MAX_MEMSLOTS 512u
#define TDP_MAX_VCPUS	 1024u

struct tdp_vm_config {
	unsigned root_level; /* 4 (48-bit gpa) or 5 (57-bit gpa); 0 = 4 */
	unsigned nr_as;	     /* address spaces, 1 or 2 (SMM); 0 = 1 */
	unsigned max_vcpus;  /* 1..TDP_MAX_VCPUS; 0 = 64 */
	uint64_t max_huge; /* largest leaf: 4 KiB, 2 MiB or 1 GiB; 0 = 1 GiB */
	unsigned flags;	   /* TDP_VM_* */
	/* Bits of the memslot generation stamped into MMIO entries, 1..30;
	 * 0 = 18 (as KVM).  Small values make the generation wrap quickly
	 * (tests): on every wrap all roots are fast-zapped (I10). */
	unsigned mmio_gen_bits;
	/* TDP_VM_CONFIDENTIAL only: the gpa bit that marks a shared gpa,
	 * 30..(gpa width - 1); 0 = the top bit of the gpa width (47 or 56),
	 * as TDX's GPAW makes it.  Memslots lie below it. */
	unsigned shared_bit;
	/* TDP_ENGINE_TDP (0, the default) or TDP_ENGINE_LEGACY. */
	unsigned engine;
	/* TDP_VM_NX_HUGE_PAGES only (else they must be 0): a recovery pass
	 * zaps 1/ratio of the possible NX huge pages (0 = 60, KVM's
	 * nx_huge_pages_recovery_ratio); with a period (ms, 0 = no worker) a
	 * worker thread runs a pass every period until tdp_vm_destroy. */
	unsigned nx_recovery_ratio;
	unsigned nx_recovery_period_ms;
	/* The dirty ring (KVM_CAP_DIRTY_LOG_RING_ACQ_REL): entries per
	 * vCPU ring, a power of two from TDP_DIRTY_RING_MIN to
	 * TDP_DIRTY_RING_MAX; 0 = no ring (dirty pages go to the memslot
	 * bitmaps).  See tdp_vcpu_dirty_ring. */
	unsigned dirty_ring_size;
};

/* The MMU engines.  Both serve this whole API with the same results.
 *  - TDP_ENGINE_TDP: KVM's TDP MMU: faults, dirty-log passes and the zap
 *    of invalidated roots run in parallel under mmu_lock held for read,
 *    with atomic entry updates; zaps and aging walk the trees.
 *  - TDP_ENGINE_LEGACY: KVM's older MMU (tdp_mmu=N), for comparisons:
 *    every change of an entry runs under mmu_lock held for write (vCPUs
 *    load and drop roots under it too); tables are kept in a hash table
 *    of shadow pages by (gfn, role), where vCPUs find their roots; each
 *    leaf is kept in a per-memslot reverse map, through which host
 *    invalidations, zaps of gfn ranges, dirty logging and aging reach
 *    leaves; aging walks the reverse maps without mmu_lock (a read-only
 *    lock bit per reverse map, KVM 2025).  Not with TDP_VM_CONFIDENTIAL. */
#define TDP_ENGINE_TDP	  0u
#define TDP_ENGINE_LEGACY 1u

/* Take mmu_lock for write in every fault, as KVM did before its
 * parallel-fault series (the `exclusive` benchmark baseline).  Default:
 * faults run in parallel under the read lock. */
#define TDP_VM_EXCLUSIVE_FAULTS 1u
/* Dirty logging by Dirty bits: leaves of logged slots stay writable and a
 * harvest collects and clears their Dirty bits (as with Intel PML).
 * Default: write-protect mode, where logged leaves lose W (keeping a
 * software MMU-writable bit) and the first write to each page after a
 * harvest faults and is logged. */
#define TDP_VM_DIRTY_DBIT 2u
/* Manual protect (KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE with
 * KVM_DIRTY_LOG_INITIALLY_SET): tdp_vm_get_dirty_log reports without
 * re-protecting; tdp_vm_clear_dirty_log re-protects a chosen range; when
 * logging is enabled every page starts reported as dirty and nothing is
 * protected or split until it is cleared. */
#define TDP_VM_MANUAL_PROTECT 4u
/* Age under mmu_lock held for write (the `locked-aging` baseline).
 * Default: lockless aging under RCU with atomic bit clears. */
#define TDP_VM_LOCKED_AGING 8u
/* Never fix write faults without mmu_lock (benchmark baseline).  Default:
 * a write fault on a leaf write-protected only for dirty logging is fixed
 * under RCU with a compare-exchange (KVM's fast_page_fault). */
#define TDP_VM_NO_FAST_FAULT 16u
/* Do not split huge leaves when dirty logging is enabled.  In write-protect
 * mode they are write-protected and split by the first write faults; in
 * Dirty-bit mode they stay writable and a harvest reports every page of a
 * huge leaf whose Dirty bit is set.  Default: eager split. */
#define TDP_VM_NO_EAGER_SPLIT 32u
/*
 * A confidential VM (KVM's TDX VM type).  The gpa bit cfg.shared_bit
 * splits the guest-physical space: a gpa with the bit set is a shared
 * access to the page at the gpa without the bit, a gpa without it is a
 * private access.  Each vCPU holds two roots: a direct root, which maps
 * shared accesses to the memslot's hva (ordinary host memory), and a
 * mirror root, which maps private accesses to the memslot's private_hva
 * (TDP_MAP_GUEST_PRIVATE memory) with 4 KiB leaves only.  The mirror root
 * mirrors an external page table owned by a stand-in for the trusted
 * firmware (TDX's Secure-EPT): every change of a mirror entry is made in
 * the external table too, through a strict interface that rejects
 * out-of-order use; mirror leaves are removed only under mmu_lock held
 * for write.  Fast zaps (memslot delete and move, MMIO generation wrap,
 * tdp_vm_zap_all_fast, tdp_vm_invalidate_roots) invalidate direct roots
 * only; memslot delete and move zap the slot's private mappings from the
 * mirror root under the write lock instead.  Each page of a private
 * memslot is private or shared (tdp_vm_set_memory_attributes); an access
 * of the other kind exits with -EPERM, so the VMM can convert the page
 * and retry (KVM_EXIT_MEMORY_FAULT).  Requires nr_as 1 (no SMM).  Dirty
 * logging and aging apply to shared memory only.
 */
#define TDP_VM_CONFIDENTIAL 64u
/*
 * NX huge pages (KVM's nx_huge_pages, the iTLB-multihit mitigation): a
 * huge leaf is never executable.  An instruction fetch (tdp_vcpu_fetch)
 * from memory that could be mapped huge maps 4 KiB instead (splitting a
 * huge leaf there if there is one), and the table it needed in place of
 * the huge leaf is recorded as a possible NX huge page (nx_lpage_splits in
 * tdp_stats); a later data fault there maps below that table rather than
 * over it.  Recovery (tdp_vm_recover_nx_huge_pages, or a worker every
 * cfg.nx_recovery_period_ms) zaps a fraction of those tables so the memory
 * can be mapped huge again.  Both engines: recovery runs under mmu_lock
 * held for read in the TDP engine, for write in the legacy engine.
 */
#define TDP_VM_NX_HUGE_PAGES 128u
/* With TDP_VM_NX_HUGE_PAGES: NX recovery takes mmu_lock for write in the
 * TDP engine too (the benchmark baseline, KVM before 2025). */
#define TDP_VM_NX_RECOVER_LOCKED 256u
/*
 * Page-modification logging in the simulated hardware (Intel PML), with
 * TDP_VM_DIRTY_DBIT only.  When a vCPU's walker sets the Dirty bit of a
 * leaf in the direct root it appends the leaf (its gpa and size: a
 * simulated extension, Intel's logs 4 KiB gpas) to a 512-entry log of
 * that vCPU; when the log is full the write exits first (stat
 * pml_full_exits) and the log is drained.  The MMU drains the log at every
 * exit from guest mode into the memslot bitmaps or, with a dirty ring,
 * into the vCPU's ring (KVM's vmx_flush_pml_buffer); a write fault that
 * installs a leaf already Dirty logs the page itself.  A harvest then
 * waits for every vCPU to leave guest mode and clears the Dirty bits of
 * the reported pages only, instead of walking every leaf of the slot to
 * find them.  Both engines.
 */
#define TDP_VM_PML 512u

#define TDP_DIRTY_RING_MIN 1024u
#define TDP_DIRTY_RING_MAX 65536u

/*
 * tdp_vm_create - create a VM on host @h and subscribe it to the host's
 * notifiers.
 * Errors: -EINVAL a configuration field out of range or unknown flags
 *         (among them: TDP_VM_PML without TDP_VM_DIRTY_DBIT; a
 *         dirty_ring_size that is not 0 or a power of two in
 *         [TDP_DIRTY_RING_MIN, TDP_DIRTY_RING_MAX]; a dirty ring with
 *         TDP_VM_MANUAL_PROTECT, or with TDP_VM_DIRTY_DBIT but without
 *         TDP_VM_PML, whose Dirty bits no vCPU could be charged with);
 *         -ENOMEM.
 * Thread-safety: any thread.
 */
TDP_API int tdp_vm_create(struct tdp_host *h, const struct tdp_vm_config *cfg,
			  struct tdp_vm **out);

/*
 * tdp_vm_destroy - tear the VM down: unsubscribe from the host, invalidate
 * and zap every root, wait for every deferred free.  All its vCPUs must have
 * been destroyed.  NULL is ignored.
 * Thread-safety: no other call on this VM may run concurrently.
 */
TDP_API void tdp_vm_destroy(struct tdp_vm *vm);

/* Memslot flags */
#define TDP_MEM_READONLY 1u
/* Dirty logging on (see tdp_vm_get_dirty_log).  Setting it on an existing
 * slot (a flags-only update) write-protects or clears the Dirty bits of
 * the slot's leaves and, unless TDP_VM_NO_EAGER_SPLIT, splits its huge
 * leaves to 4 KiB; clearing it rebuilds huge leaves in place where host
 * folio and slot alignment allow (huge-page recovery).  While it is set,
 * faults in the slot map 4 KiB leaves only. */
#define TDP_MEM_LOG_DIRTY 2u
/* TDP_VM_CONFIDENTIAL only: the slot also has private memory, at
 * private_hva (TDP_MAP_GUEST_PRIVATE; KVM's guest_memfd binding).  Every
 * page of it starts private.  Not with TDP_MEM_READONLY or
 * TDP_MEM_LOG_DIRTY. */
#define TDP_MEM_PRIVATE 4u

struct tdp_memslot {
	unsigned as_id;	      /* address space, < nr_as */
	unsigned slot;	      /* slot id, < TDP_MAX_MEMSLOTS */
	uint64_t gpa;	      /* 4 KiB aligned */
	uint64_t size;	      /* 4 KiB multiple; 0 deletes the slot */
	uint64_t hva;	      /* 4 KiB aligned; the whole range must be mapped,
				 and not guest-private */
	unsigned flags;	      /* TDP_MEM_* */
	uint64_t private_hva; /* TDP_MEM_PRIVATE only: 4 KiB aligned, the
				 whole range mapped TDP_MAP_GUEST_PRIVATE */
};

/*
 * tdp_vm_set_memslot - create, delete, move or re-flag a memslot.
 *  - new id:                      create;
 *  - size 0:                      delete (existing mappings are zapped);
 *  - same id, hva and size:       move (new gpa) and/or change flags
 *                                 (TDP_MEM_READONLY and TDP_MEM_LOG_DIRTY
 *                                 may be set or cleared);
 * Mappings that the change makes wrong are zapped, and every vCPU TLB
 * flushed of them, before the call returns.
 * Errors: -EINVAL NULL @slot, as_id >= nr_as, slot id out of range,
 *         gpa/size/hva not 4 KiB aligned, gpa+size or hva+size overflow
 *         or exceed the gpa width of the root level (or, in a
 *         confidential VM, reach the shared bit), unknown flags,
 *         TDP_MEM_PRIVATE outside a confidential VM or with
 *         TDP_MEM_READONLY or TDP_MEM_LOG_DIRTY,
 *         or an existing slot whose size, hva, private_hva or
 *         TDP_MEM_PRIVATE would change;
 *         -EEXIST the range overlaps another slot of the same address
 *         space;  -ENOENT deleting a slot that does not exist;
 *         -EFAULT part of [hva, hva+size) is not mapped in the host, or
 *         part of it is guest-private, or (TDP_MEM_PRIVATE) part of
 *         [private_hva, private_hva+size) is not guest-private memory.
 * Thread-safety: any thread; memslot updates of one VM are serialised.
 * The update waits while a host invalidation of any range is in progress
 * (as KVM's memslot updates wait for mmu-notifier invalidations to end;
 * memslot_waits in tdp_vm_stats counts it), so it must not be called
 * from a host notifier callback or anything a host operation runs
 * between its notifications: it would wait for itself.
 */
TDP_API int tdp_vm_set_memslot(struct tdp_vm *vm,
			       const struct tdp_memslot *slot);

/*
 * tdp_vm_set_memory_attributes - convert the pages of [gpa, gpa+size) to
 * private (@attrs = TDP_MEMATTR_PRIVATE) or shared (@attrs = 0): KVM's
 * KVM_SET_MEMORY_ATTRIBUTES.  Mappings of the old kind are zapped (private
 * ones from the mirror root, under the write lock) and every vCPU TLB is
 * flushed before the call returns; faults racing with it retry (the
 * invalidation sequence, I5).  Converting does not free or clear memory:
 * the private frames stay in the guest-private mapping (punch a hole to
 * free them) and the shared ones in the host mapping.
 * Errors: -EINVAL not a confidential VM, gpa or size not 4 KiB aligned,
 *         zero size, overflow, unknown @attrs bits, or part of the range
 *         outside TDP_MEM_PRIVATE memslots (nothing changed).
 * Thread-safety: any thread; serialised with memslot updates.
 */
#define TDP_MEMATTR_PRIVATE 1u
TDP_API int tdp_vm_set_memory_attributes(struct tdp_vm *vm, uint64_t gpa,
					 uint64_t size, unsigned attrs);

/*
 * tdp_vm_zap_gfn_range - zap every mapping of [gpa, gpa+size) in every root
 * of address space @as_id and flush every vCPU TLB.  Guests refault.
 * Errors: -EINVAL bad as_id, unaligned, zero size or overflow.
 * Thread-safety: any thread.
 */
TDP_API int tdp_vm_zap_gfn_range(struct tdp_vm *vm, unsigned as_id,
				 uint64_t gpa, uint64_t size);

/*
 * tdp_vm_invalidate_roots - mark every root obsolete; vCPUs load new roots
 * before their next guest access; the old roots are zapped and freed once
 * the last vCPU lets go.  (The slow reset of KVM's kvm_mmu_reset_context.)
 * Errors: -EINVAL NULL vm.
 * Thread-safety: any thread.
 */
TDP_API int tdp_vm_invalidate_roots(struct tdp_vm *vm);

/*
 * tdp_vm_zap_all_fast - KVM's kvm_mmu_zap_all_fast: under mmu_lock held
 * for write, mark every root invalid and ask every vCPU to load a new root
 * before its next guest access (so vCPUs go on at once), then zap the
 * invalidated roots under the read lock in the caller's thread, yielding,
 * and only then drop the MMU's references.  When it returns no mapping
 * made before the call is reachable from a valid root.  Memslot delete
 * and move use it, and so does a wrap of the MMIO generation.
 * Errors: -EINVAL NULL vm.
 * Thread-safety: any thread.
 */
TDP_API int tdp_vm_zap_all_fast(struct tdp_vm *vm);

/*
 * tdp_vm_get_dirty_log - report the pages of memslot @slot of @as_id that
 * were written since the last report (or since logging was enabled), one
 * bit per 4 KiB page of the slot in @bitmap ((pages + 63) / 64 words, all
 * written).  Without TDP_VM_MANUAL_PROTECT the reported pages are
 * re-protected (write-protect mode) or have their Dirty bits cleared
 * (TDP_VM_DIRTY_DBIT), and every vCPU TLB is flushed before the call
 * returns, so every write that starts after it returns is reported by the
 * next call (I7); a write that overlaps the call is reported by this call
 * or the next.  With TDP_VM_MANUAL_PROTECT the report is a snapshot that
 * re-protects nothing: use tdp_vm_clear_dirty_log, then copy.  With a
 * dirty ring the bitmap holds only what no vCPU wrote (see
 * tdp_vcpu_dirty_ring).  With TDP_VM_PML the call first waits until
 * every vCPU has left guest mode once (so their logs are drained).
 * Errors: -EINVAL as_id >= nr_as, slot id out of range, NULL bitmap, or
 *         the slot does not have TDP_MEM_LOG_DIRTY;  -ENOENT no such slot.
 * Thread-safety: any thread; calls for one VM are serialised with each
 * other and with memslot updates.
 */
TDP_API int tdp_vm_get_dirty_log(struct tdp_vm *vm, unsigned as_id,
				 unsigned slot, uint64_t *bitmap);

/*
 * tdp_vm_clear_dirty_log - with TDP_VM_MANUAL_PROTECT: for every page
 * i (0 <= i < @npages) whose bit is set in @bitmap, forget the report for
 * page @first + i of the slot and re-protect it (write-protect or clear
 * its Dirty bit; huge leaves in the range are split first), then flush
 * every vCPU TLB.  Writes that start after the call returns are reported
 * by the next tdp_vm_get_dirty_log.
 * Errors: -EINVAL no TDP_VM_MANUAL_PROTECT, bad as_id or slot id, NULL
 *         bitmap, @first not a multiple of 64, @npages zero, the range not
 *         inside the slot, or @npages not a multiple of 64 unless the range
 *         ends at the slot's end, or the slot is not dirty-logged;
 *         -ENOENT no such slot.
 * Thread-safety: as tdp_vm_get_dirty_log.
 */
TDP_API int tdp_vm_clear_dirty_log(struct tdp_vm *vm, unsigned as_id,
				   unsigned slot, uint64_t first,
				   uint64_t npages, const uint64_t *bitmap);

/*
 * tdp_vm_mark_dirty - the VMM wrote guest memory itself (through
 * tdp_host_write, or through its own pointer with the process backend, as
 * a device model does): record the pages of [gpa, gpa+len) in the dirty
 * log of the TDP_MEM_LOG_DIRTY memslots that hold them (KVM's
 * kvm_vcpu_mark_page_dirty), so the next tdp_vm_get_dirty_log reports
 * them and migration sends them again.  @gpa and @len need not be page
 * aligned: every page the range touches is marked.  Pages of slots
 * without logging are left alone.  Call it after the write: a harvest
 * that runs between the write and the mark reports the page at the next
 * harvest.
 * Errors: -EINVAL bad as_id, zero len, overflow or beyond the gpa width;
 *         -EFAULT part of the range is in no memslot (nothing marked).
 * Thread-safety: any thread.
 */
TDP_API int tdp_vm_mark_dirty(struct tdp_vm *vm, unsigned as_id, uint64_t gpa,
			      uint64_t len);

/*
 * The dirty ring (KVM's KVM_CAP_DIRTY_LOG_RING_ACQ_REL, with
 * KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP always on), when cfg.dirty_ring_size
 * is set.  Each vCPU has a ring of cfg.dirty_ring_size entries that the
 * library fills and the VMM reads in place (KVM's mmap of the ring).  A
 * page of a TDP_MEM_LOG_DIRTY memslot written through a vCPU goes to that
 * vCPU's ring instead of the slot's bitmap: at the write fault that makes
 * it writable (write-protect mode), or with TDP_VM_PML when the vCPU's
 * page-modification log is drained (at its next exit from guest mode).
 * The slot's bitmap still collects what no vCPU wrote, and
 * tdp_vm_get_dirty_log harvests it as usual: pages marked by
 * tdp_vm_mark_dirty, and entries that found a ring completely full (stat
 * dirty_ring_overflows; the soft limit below keeps this from happening).
 * A VMM harvests both, the bitmap at least before its final copy.
 *
 * An entry's protocol (all through the flags word, with acquire loads and
 * release stores, as KVM's ACQ_REL variant):
 *   1. the vCPU's thread writes slot and offset, then stores
 *      flags = TDP_DIRTY_GFN_DIRTY (release);
 *   2. the VMM, walking the ring from its own fetch index (starting at 0,
 *      taken modulo the size), loads flags (acquire): not DIRTY means no
 *      more entries for now; otherwise it reads slot and offset, records
 *      the page, and stores flags = TDP_DIRTY_GFN_RESET (release);
 *   3. tdp_vm_reset_dirty_rings re-protects the pages of the entries the
 *      VMM marked RESET, in ring order up to the first that is not, and
 *      makes those entries free (flags 0).
 * The VMM copies a page only after the reset that re-protected it: a write
 * after the reset makes a new entry, so nothing is lost (KVM's rule).
 * slot = as_id << 16 | memslot id; offset = page index in the memslot.
 * The same page may appear more than once.
 *
 * Soft limit: when a vCPU's ring holds size - TDP_DIRTY_RING_RSVD(vm)
 * entries or more that are not yet reset, its guest accesses
 * (tdp_vcpu_read/write/fetch/map) fail with -ENOSPC before touching
 * memory (KVM_EXIT_DIRTY_RING_FULL) until the VMM harvests and resets;
 * the reserve holds what can still arrive before the check (one fault,
 * and with TDP_VM_PML one drained log of 512 entries).
 */
#define TDP_DIRTY_GFN_DIRTY 1u
#define TDP_DIRTY_GFN_RESET 2u
/* entries held back for what arrives between two soft-limit checks */
#define TDP_DIRTY_RING_RSVD_ENTRIES 64u
#define TDP_DIRTY_RING_PML_ENTRIES  512u

struct tdp_vcpu;

struct tdp_dirty_gfn {
	uint32_t flags;	 /* TDP_DIRTY_GFN_*: atomic, see above */
	uint32_t slot;	 /* as_id << 16 | memslot id */
	uint64_t offset; /* page index in the memslot */
};

/*
 * tdp_vcpu_dirty_ring - the vCPU's ring: *@ring points to *@size entries,
 * valid until tdp_vcpu_destroy.  The VMM may read it from any thread and
 * writes only TDP_DIRTY_GFN_RESET into the flags of entries it found DIRTY.
 * Errors: -EINVAL NULL argument;  -ENXIO the VM has no dirty ring.
 * Thread-safety: any thread.
 */
TDP_API int tdp_vcpu_dirty_ring(struct tdp_vcpu *v,
				struct tdp_dirty_gfn **ring, uint32_t *size);

/*
 * tdp_vm_reset_dirty_rings - KVM_RESET_DIRTY_RINGS: for every vCPU, take
 * the entries from the ring's reset index on, in order, while they are
 * marked TDP_DIRTY_GFN_RESET; re-protect their pages (write-protect them,
 * or with TDP_VM_PML clear their Dirty bits) under mmu_lock held for
 * write, flush every vCPU TLB, and free the entries.  Entries naming a
 * memslot that is gone, not dirty-logged, or an offset outside it are
 * freed without effect (a VMM cannot make the reset touch other memory).
 * *@reset (if not NULL): the number of entries freed.
 * Errors: -EINVAL NULL @vm;  -ENXIO no dirty ring;  -ENOMEM.
 * Thread-safety: any thread; serialised with harvests and memslot
 * updates; vCPUs keep running (their soft-full exits end when it
 * returns).
 */
TDP_API int tdp_vm_reset_dirty_rings(struct tdp_vm *vm, uint64_t *reset);

struct tdp_translation {
	uint64_t pfn;  /* host frame backing the gpa's 4 KiB page */
	uint64_t size; /* size of the leaf: 4 KiB, 2 MiB or 1 GiB */
	unsigned prot; /* TDP_PROT_* the leaf allows */
	bool accessed; /* Accessed bit of the leaf */
	bool dirty;    /* Dirty bit of the leaf */
};

/*
 * tdp_vm_translate - report how @gpa is mapped right now in the valid root
 * of address space @as_id (in a confidential VM: the direct root for a
 * gpa with the shared bit, the mirror root for one without), without
 * faulting anything in and without
 * mmu_lock (an RCU walk, like KVM's lockless walks).  The answer may be
 * stale as soon as it is returned.
 * Errors: -EINVAL bad as_id, gpa beyond the gpa width, or NULL @out;
 *         -ENOENT no valid root of that address space (no vCPU has run in
 *         it) or the gpa is not mapped.
 * Thread-safety: any thread, lock-free.
 */
TDP_API int tdp_vm_translate(struct tdp_vm *vm, unsigned as_id, uint64_t gpa,
			     struct tdp_translation *out);

struct tdp_stats {
	/* faults (KVM vcpu stats, summed over vCPUs) */
	uint64_t pf_taken;	 /* faults that reached the fault handler */
	uint64_t pf_fixed;	 /* faults that installed a leaf */
	uint64_t pf_spurious;	 /* faults already fixed by someone else */
	uint64_t pf_retry;	 /* faults retried (invalidation race, lost
				    compare-exchange, invalid slot or root) */
	uint64_t pf_retry_early; /* of them, faults that gave up before asking
				    the host, an invalidation covering the gfn
				    being under way */
	uint64_t pf_mmio;	 /* accesses with no memslot (-EFAULT exits) */
	uint64_t pf_ro_exit;	 /* writes to read-only slots (-EACCES exits) */
	uint64_t pf_mmio_spte_created; /* MMIO entries installed */
	uint64_t mmio_fast; /* MMIO exits served by a current MMIO entry,
			       without a memslot lookup */
	/* mappings (KVM vm stats; instantaneous) */
	uint64_t pages_4k, pages_2m, pages_1g;
	/* tables and roots (instantaneous) */
	uint64_t pt_pages;	 /* non-root table pages linked */
	uint64_t pt_pages_alloc; /* table pages allocated, incl. roots and
				    pages waiting for a deferred free */
	uint64_t roots;		 /* roots allocated (valid and invalid) */
	uint64_t frame_refs;	 /* host frame references held by the VM */
	/* TLB */
	uint64_t remote_tlb_flush;	    /* remote flushes performed */
	uint64_t remote_tlb_flush_requests; /* flush requests sent to vCPUs */
	uint64_t remote_tlb_flush_ns;	    /* total time spent in them */
	uint64_t tlb_hits, tlb_misses;	    /* summed over vCPUs */
	/* notifiers and zaps */
	uint64_t invalidations; /* notifier invalidate-start calls */
	uint64_t zapped_leaves; /* leaves zapped for any reason */
	uint64_t root_reloads;	/* vCPU root loads */
	uint64_t memslot_updates;
	uint64_t memslot_waits;	 /* memslot sets that waited for host
				    invalidations to end before publishing */
	uint64_t fast_zaps;	 /* tdp_vm_zap_all_fast, incl. internal use */
	uint64_t mmio_gen_wraps; /* MMIO generation wrap-arounds */
	/* accessed and dirty tracking */
	uint64_t pf_fast;	  /* write faults fixed without mmu_lock */
	uint64_t dirty_harvests;  /* tdp_vm_get/clear_dirty_log calls */
	uint64_t dirty_pages;	  /* pages reported dirty, summed */
	uint64_t eager_splits;	  /* huge leaves split when logging began */
	uint64_t huge_recovered;  /* huge leaves rebuilt when logging ended */
	uint64_t recover_flushes; /* TLB flushes done by that recovery */
	uint64_t age_calls;	  /* aging notifier calls */
	uint64_t age_young;	  /* pages found young by them */
	/* confidential VMs */
	uint64_t conversions;  /* tdp_vm_set_memory_attributes calls */
	uint64_t pf_private;   /* private faults fixed (mirror root) */
	uint64_t pf_attr_exit; /* -EPERM exits: access of the wrong kind */
	uint64_t ext_ops;      /* external table operations done */
	uint64_t ext_errors;   /* operations the external table rejected:
				  non-zero means the VM is dead (-EIO) */
	uint64_t mirror_roots; /* mirror roots allocated (instantaneous) */
	/* NX huge pages */
	uint64_t nx_lpage_splits; /* possible NX huge pages (instantaneous) */
	uint64_t nx_recovered;	  /* of them, zapped by recovery */
	/* page-modification log and dirty ring */
	uint64_t pml_logged;	 /* Dirty bits logged by the walkers */
	uint64_t pml_full_exits; /* writes that found the log full */
	uint64_t ring_pushes;	 /* entries put in dirty rings */
	uint64_t ring_full_exits; /* accesses refused: ring soft-full */
	uint64_t ring_overflows; /* pages that found a ring full: bitmap */
	uint64_t ring_resets;	 /* entries freed by resets */
};

/*
 * tdp_vm_get_stats - snapshot the VM's counters into @out (nothing is
 * written if @vm or @out is NULL).
 * Thread-safety: any thread; counters are read individually.
 */
TDP_API void tdp_vm_get_stats(struct tdp_vm *vm, struct tdp_stats *out);

/*
 * tdp_vm_audit - check the invariants of DESIGN.md that can be checked on
 * a quiescent VM: every present leaf maps a gfn inside a memslot of its
 * address space to the frame the host currently maps there (I1), with no
 * more permission than slot and host allow (I13) and at a level the host
 * folio and slot alignment allow; the table page, leaf and root counters
 * equal what a walk finds; every valid root holds the MMU's reference (I3).
 * If @report is not NULL, a description of the first problems found is
 * written there (NUL-terminated, truncated to @len).
 * Returns the number of problems found (0 = clean), -EBUSY if a vCPU is in
 * guest mode or a host invalidation is in progress (between a host
 * operation's notifier start and end), -ENOMEM, or -EINVAL for a NULL
 * @vm.
 * Thread-safety: call with no guest access, memslot update or host
 * operation in flight on this VM's host.
 */
TDP_API int tdp_vm_audit(struct tdp_vm *vm, char *report, size_t len);

/* ------------------------------------------------------------------ */
/* vCPU                                                                */
/* ------------------------------------------------------------------ */

struct tdp_vcpu;

/*
 * tdp_vcpu_create - create vCPU @id of @vm.
 * Errors: -EINVAL id >= max_vcpus;  -EEXIST id already in use;  -ENOMEM.
 * Thread-safety: any thread.
 */
TDP_API int tdp_vcpu_create(struct tdp_vm *vm, unsigned id,
			    struct tdp_vcpu **out);

/*
 * tdp_vcpu_destroy - drop the vCPU's roots and free it.  NULL is ignored.
 * The pages of its dirty ring's entries that were not reset yet go to
 * their memslots' bitmaps (tdp_vm_get_dirty_log reports them).
 * Thread-safety: no other call on this vCPU may run concurrently.
 */
TDP_API void tdp_vcpu_destroy(struct tdp_vcpu *v);

/*
 * tdp_vcpu_read / tdp_vcpu_write / tdp_vcpu_fetch - guest accesses of @len
 * bytes at @gpa, through the vCPU's TLB and page walker as hardware would
 * do them, faulting (and retrying) as needed.  Accesses may cross pages,
 * folios and memslots; they are split into per-page pieces, each of which
 * is atomic with respect to TLB flushes (a flush never tears a piece).
 * Errors: -EFAULT part of the range has no memslot (an MMIO exit) or its
 *         host memory is not mapped or not accessible;
 *         -EACCES a write to a read-only memslot;
 *         -EINVAL NULL buf with len > 0, or gpa+len overflows the gpa
 *         width;  -ENOMEM no frame or table page could be allocated;
 *         -EPERM (confidential VMs) a private access to a page that is
 *         shared or not in a TDP_MEM_PRIVATE memslot, or a shared access
 *         to a private page: convert it (tdp_vm_set_memory_attributes)
 *         and retry;  -EIO (confidential VMs) the VM is dead: its external
 *         page table rejected an operation (a bug; KVM_BUG_ON).
 *         -ENOSPC the vCPU's dirty ring is soft-full (tdp_vcpu_dirty_ring):
 *         nothing of the page where it stopped was transferred; harvest,
 *         reset and repeat the access.
 *         On -EFAULT/-EACCES the bytes before the faulting page have been
 *         transferred (as a real CPU would have done them).
 * Thread-safety: one thread at a time per vCPU (the vCPU's thread);
 * different vCPUs run concurrently with each other and with everything
 * else.
 */
TDP_API int tdp_vcpu_read(struct tdp_vcpu *v, uint64_t gpa, void *buf,
			  uint64_t len);
TDP_API int tdp_vcpu_write(struct tdp_vcpu *v, uint64_t gpa, const void *buf,
			   uint64_t len);
TDP_API int tdp_vcpu_fetch(struct tdp_vcpu *v, uint64_t gpa, void *buf,
			   uint64_t len);

/*
 * tdp_vcpu_map - direct access to guest RAM for an emulator: a pointer to
 * the byte at @gpa, good for reads (TDP_PROT_READ), writes
 * (TDP_PROT_WRITE) and instruction fetches (TDP_PROT_EXEC) as @access
 * asks, up to the end of @gpa's 4 KiB page.  The vCPU translates @gpa for
 * each requested access as its hardware would (faulting it in if needed):
 * the Accessed bit is set, and for TDP_PROT_WRITE the Dirty bit or, in
 * write-protect mode, the dirty log, exactly as a tdp_vcpu_write would.
 * The pointer is into the host's frames (with either backend).
 *
 * The direct-access window: the first tdp_vcpu_map opens a window in
 * which the vCPU stays in guest mode, so the translations it handed out
 * cannot be zapped or flushed under it: every remote TLB flush of the VM
 * (zaps, host invalidations, dirty-log harvests, aging with
 * TDP_AGE_FLUSH) waits until the window ends.  The window ends, and every
 * pointer returned in it becomes invalid, at the vCPU's next
 * tdp_vcpu_check_requests, tdp_vcpu_read/write/fetch, tdp_vcpu_set_as or
 * tdp_vcpu_destroy, or when a tdp_vcpu_map has to fault (see the return
 * value).  An emulator calls tdp_vcpu_check_requests at every
 * instruction or block boundary:
 *
 *     for (;;) {
 *         void *insn, *data;
 *         if (tdp_vcpu_map(v, rip, TDP_PROT_EXEC, &insn) < 0) exit...;
 *         ... decode; for a store to gpa g:
 *         r = tdp_vcpu_map(v, g, TDP_PROT_WRITE, &data);
 *         if (r == 1) restart the instruction (insn is stale);
 *         ... execute;
 *         tdp_vcpu_check_requests(v);   flushes are acknowledged here
 *     }
 *
 * While its window is open the vCPU's thread must not block on anything
 * that may wait for a TLB flush: no host operation, memslot update, zap
 * or harvest of this VM's host, and no touch of process-backend guest RAM
 * through its hva pointers (which may wait for a host operation).
 * Returns 0: mapped within the window that was open (earlier pointers of
 * the window stay valid), or in a new window; 1: mapped, but the call had
 * to leave the open window to fault, so the pointers returned before it
 * are invalid (the new one is valid).
 * Errors: as tdp_vcpu_read/write/fetch for one page (-EFAULT no memslot
 *         or host memory, -EACCES write to a read-only slot, -EPERM,
 *         -EIO, -ENOMEM, -ENOSPC), and -EINVAL NULL @ptr, @access 0 or with bits
 *         other than TDP_PROT_READ/WRITE/EXEC, or @gpa beyond the gpa
 *         width.  On error the window is closed.
 * Thread-safety: the vCPU's thread.
 */
TDP_API int tdp_vcpu_map(struct tdp_vcpu *v, uint64_t gpa, unsigned access,
			 void **ptr);

/*
 * tdp_vcpu_check_requests - end the vCPU's direct-access window (if one is
 * open): pending TLB flushes and root reloads are acknowledged, and every
 * pointer tdp_vcpu_map returned becomes invalid.  The next tdp_vcpu_map
 * handles the requests before it translates again.
 * Errors: -EINVAL NULL @v;  -EIO (confidential VMs) the VM is dead.
 * Thread-safety: the vCPU's thread.
 */
TDP_API int tdp_vcpu_check_requests(struct tdp_vcpu *v);

/*
 * tdp_vcpu_set_as - switch the vCPU to address space @as_id (0 normal, 1
 * SMM); its next access uses that space's root.
 * Errors: -EINVAL as_id >= nr_as.
 * Thread-safety: the vCPU's thread.
 */
TDP_API int tdp_vcpu_set_as(struct tdp_vcpu *v, unsigned as_id);

/*
 * tdp_vm_recover_nx_huge_pages - one NX huge page recovery pass: zap
 * ceil(n / @ratio) of the n possible NX huge pages (tables linked by
 * fetches in place of huge leaves; TDP_VM_NX_HUGE_PAGES), flushing every
 * vCPU TLB of them, so faults there may map huge, non-executable leaves
 * again.  *@zapped (may be NULL): how many were zapped.
 * Errors: -EINVAL NULL @vm or @ratio 0;  -EOPNOTSUPP the VM was created
 *         without TDP_VM_NX_HUGE_PAGES.
 * Thread-safety: any thread; concurrent with vCPUs (they fault again where
 * it zapped) and with everything else.
 */
TDP_API int tdp_vm_recover_nx_huge_pages(struct tdp_vm *vm, unsigned ratio,
					 uint64_t *zapped);

/*
 * tdp_vcpu_pre_fault_memory - map [gpa, gpa+size) of the vCPU's current
 * address space ahead of the first access (KVM_PRE_FAULT_MEMORY): page by
 * page, as read faults of @v would, so the mappings are what an access
 * would have made (huge where the host and the memslot allow, without
 * write permission in a write-protect-logged slot, read-only in a
 * read-only slot), but not Accessed.  A leaf may extend beyond the range
 * on either side.  In a confidential VM @gpa is given without the shared
 * bit and each page is mapped as its memory attribute says: private pages
 * in the private (mirror) tables, shared ones through the shared alias.
 * Works with both engines.
 * @flags: must be 0.
 * *@mapped: always set; the bytes from @gpa on that were mapped before
 * the call returned.  Mapped pages may be zapped again at any time (by
 * the host, a memslot update, a zap): the call promises only that each
 * was mapped once.
 * Returns 0 if anything was mapped: all of the range, or the start of it
 * when the call stopped early (a page without memslot, an invalidation in
 * progress, a stop request, an error after progress); call again for
 * [gpa + *mapped, gpa + size) to go on, as with KVM's ioctl.  Otherwise
 * (nothing mapped):
 *   -EINVAL NULL @v or @mapped, @flags not 0, @gpa or @size not 4 KiB
 *           aligned, @size 0, @gpa + @size overflows or exceeds the gpa
 *           width (in a confidential VM: reaches the shared bit);
 *   -ENOENT no memslot at @gpa;
 *   -EAGAIN a host invalidation of the page at @gpa is in progress (or
 *           ended during the attempt): call again;
 *   -EINTR  a stop was requested (tdp_vcpu_request_stop);
 *   -EFAULT the host has no memory at the page's hva (as an access);
 *   -ENOMEM, -EIO as tdp_vcpu_read.
 * Thread-safety: the vCPU's thread, like every vCPU call; vCPUs sharing
 * tables may pre-fault concurrently (with each other and everything else).
 */
TDP_API int tdp_vcpu_pre_fault_memory(struct tdp_vcpu *v, uint64_t gpa,
				      uint64_t size, unsigned flags,
				      uint64_t *mapped);

/*
 * tdp_vcpu_request_stop - ask @v's running or next
 * tdp_vcpu_pre_fault_memory to stop at its next page (the role of a
 * signal for KVM's ioctl).  The request stays pending until a pre-fault
 * consumes it; other calls ignore it.
 * Errors: -EINVAL @v is NULL.
 * Thread-safety: any thread, while @v exists.
 */
TDP_API int tdp_vcpu_request_stop(struct tdp_vcpu *v);

#ifdef __cplusplus
}
#endif
#endif /* TDPMMU_H */
