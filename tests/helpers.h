/* SPDX-License-Identifier: MIT */
/* helpers.h - small utilities shared by the cmocka tests. */
#ifndef TDP_TEST_HELPERS_H
#define TDP_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../tools/common/clock.h"
#include "../tools/common/rng.h"
#include "tdpmmu.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* Deterministic content for a page: word i of the page at @addr in
 * generation @gen.  Never equals the host poison word. */
static inline uint64_t th_pattern(uint64_t addr, uint64_t gen, unsigned i)
{
	return rng_pattern(addr >> 12, gen, i);
}
/* Fill / check one 4 KiB page buffer with th_pattern. */
void th_fill_page(void *buf, uint64_t addr, uint64_t gen);
int th_check_page(const void *buf, uint64_t addr, uint64_t gen);
/* Monotonic nanoseconds. */
static inline uint64_t th_now_ns(void)
{
	return mono_now_ns();
}
/* A one-shot event between two threads of a test. */
struct event {
	int set; /* accessed atomically */
};
void ev_set(struct event *e);
void ev_wait(struct event *e);
/* A one-shot stop in a vCPU's test hook (guest_entered or in_guest of
 * struct vm_test_hooks, src/vm.h, with the struct th_pause as its arg):
 * once armed, the first vCPU there sets @reached and waits for
 * @release. */
struct th_pause {
	int armed; /* accessed atomically */
	struct event reached, release;
};
void th_pause_arm(struct th_pause *p);
void th_pause_hook(struct tdp_vcpu *v, uint64_t gpa, void *arg);

/* xorshift64* PRNG */
static inline uint64_t th_rand(uint64_t *state)
{
	return rng_next(state);
}

/* A forked child that runs one scenario, typically one that must abort.
 * Fork before the test process has RCU helper threads (the child would
 * not have them): such tests run first in their suite. */
struct th_child {
	int status;	/* as waitpid reports it */
	char err[4096]; /* the head of the child's stderr */
};
/* Run @fn(@arg) in a child, killed after @secs (a livelock counts as a
 * failure too); its exit code is what @fn returns. */
void th_run_child(int (*fn)(int), int arg, unsigned secs,
		  struct th_child *r);
/* Exit code 0. */
bool th_child_clean(const struct th_child *r);
/* Killed by SIGABRT with @msg in its stderr. */
bool th_child_aborted_with(const struct th_child *r, const char *msg);
/* A sanitizer report (the Debug builds have the injections too, so a use
 * after free may be reported by ASan before any assertion). */
bool th_child_asan_report(const struct th_child *r);
/* Print how the child ended and its first BUG or sanitizer line. */
void th_child_describe(const char *what, const struct th_child *r);

/* ---- the host ---- */

/* A host of @mem_bytes (0: the default, 4 GiB). */
struct tdp_host *th_host_new(uint64_t mem_bytes);
/* Map @len bytes of @folio folios with @prot anywhere; asserts success and
 * the documented alignment of the hva to the folio size. */
uint64_t th_host_map(struct tdp_host *h, uint64_t len, unsigned prot,
		     uint64_t folio);
/* Write generation @gen of the page at @hva (th_fill_page) through
 * tdp_host_write. */
void th_host_put_page(struct tdp_host *h, uint64_t hva, uint64_t gen);

/* ---- host frames (src/host/host.h) ---- */

/* The frame backing @hva now (asserted populated); its folio order in
 * *@order if not NULL. */
uint64_t th_lookup_pfn(struct tdp_host *h, uint64_t hva, unsigned *order);
/* The 512 words of frame @pfn in the host's pool. */
uint64_t *th_frame(struct tdp_host *h, uint64_t pfn);
/* Every word of frame @pfn is @word (read atomically). */
bool th_frame_all(struct tdp_host *h, uint64_t pfn, uint64_t word);
/* The suite runs on the process backend (TDPMMU_TEST_HOST=process). */
bool th_process_host(void);
/* Frame @pfn holds the host's poison: it was freed. */
bool th_frame_poisoned(struct tdp_host *h, uint64_t pfn);

/* ---- VMs ---- */

/* Set memslot @id of address space @as to [@gpa, @gpa + @size) at @hva
 * with @flags (@size 0 deletes it): what tdp_vm_set_memslot returns... */
int th_try_set_slot(struct tdp_vm *vm, unsigned as, unsigned id, uint64_t gpa,
		    uint64_t size, uint64_t hva, unsigned flags);
/* ...which must be success. */
void th_set_slot(struct tdp_vm *vm, unsigned as, unsigned id, uint64_t gpa,
		 uint64_t size, uint64_t hva, unsigned flags);
/* TDP_TEST_INJECT=<name> (builds with TDP_INJECT only): put back that bug
 * of src/inject.h in @vm, to check that the tests catch it (they must
 * then fail). */
void th_maybe_inject(struct tdp_vm *vm);

/* Statistics now, of a VM and of a host. */
struct tdp_stats th_vm_stats(struct tdp_vm *vm);
struct tdp_host_stats th_host_stats(struct tdp_host *h);

/* The audit of @vm finds no problem; else its report is printed and the
 * test fails. */
void th_audit_clean(struct tdp_vm *vm);

/* ---- guest accesses ---- */

/* Read / write the 8 bytes at @gpa through vCPU @v (*@val zeroed first):
 * what tdp_vcpu_read / tdp_vcpu_write return. */
int th_read64(struct tdp_vcpu *v, uint64_t gpa, uint64_t *val);
int th_write64(struct tdp_vcpu *v, uint64_t gpa, uint64_t val);

/* ---- leaves ---- */

struct tdp_pt_page;
/* The frame mapped for @gfn by the table tree of @root (~0 if none), and
 * the level of the leaf in *@level if not NULL (0 if none).  Under
 * mmu_lock or the RCU read lock. */
uint64_t th_root_leaf_pfn(struct tdp_pt_page *root, uint64_t gfn, int *level);
/* The same in the current root of vCPU @v; takes mmu_lock (read). */
uint64_t th_leaf_pfn(struct tdp_vcpu *v, uint64_t gfn, int *level);

/* A zap_before_write hook (struct tdp_mmu_hooks, src/mmu.h): the
 * hardware sets Dirty in the present entry the zap is about to write. */
void th_hw_sets_dirty(void *arg, uint64_t *sptep);

/* ---- bitmaps of pages (bit i: page i), as tdp_vm_get_dirty_log and
 * tdp_host_age fill them ---- */

/* A zeroed bitmap of @nwords 64-bit words (at least one); free() it. */
uint64_t *th_bm_new(uint64_t nwords);
void th_bm_set(uint64_t *b, uint64_t i);
bool th_bm_test(const uint64_t *b, uint64_t i);
/* Bits set in the first @nwords words. */
uint64_t th_bm_count(const uint64_t *b, uint64_t nwords);
/* @got equals @want over the first @npages bits; else the pages missing
 * from @got and extra in it, and the first difference, are printed after
 * @what and the test fails. */
void th_bm_assert_eq(const uint64_t *got, const uint64_t *want, uint64_t npages,
		     const char *what);

/* ---- teardown ---- */

/* The MMU of @vm holds nothing: no root, table page, frame reference or
 * leaf. */
void th_assert_mmu_empty(struct tdp_vm *vm);
/* Destroy the @n vCPUs @v of @vm, invalidate its roots and wait for the
 * deferred frees: its MMU must then hold nothing (th_assert_mmu_empty). */
void th_drain_mmu(struct tdp_vm *vm, struct tdp_vcpu **v, unsigned n);
/* The host holds no frame, frame reference, pin or swapped page (its
 * memory is all unmapped, or was never touched). */
void th_assert_host_empty(struct tdp_host *h);

/* ---- the usual fixture: a host, a VM on it, its vCPUs and a memslot ---- */

#define TH_MAX_VCPUS 4

struct th_env {
	struct tdp_host *h;
	struct tdp_vm *vm;
	struct tdp_vcpu *v[TH_MAX_VCPUS]; /* vCPUs 0 .. nv-1 */
	unsigned nv;
	/* memslot 0, once th_env_slot made it: npages pages, of which a
	 * bitmap (th_bm_*) has nwords words */
	uint64_t gpa, size, hva, npages, nwords;
	/* the host mappings of th_env_map, th_env_slot's first */
	struct {
		uint64_t hva, len;
	} map[4];
	unsigned nmap;
};
/* A host of @mem_bytes (0: the default), a VM on it with @cfg (NULL: the
 * defaults) and @nv vCPUs. */
void th_env_init(struct th_env *e, uint64_t mem_bytes,
		 const struct tdp_vm_config *cfg, unsigned nv);
/* A new read-write mapping of @len bytes of @folio folios (th_host_map),
 * which th_env_fini_empty unmaps. */
uint64_t th_env_map(struct th_env *e, uint64_t len, uint64_t folio);
/* Memslot 0 of address space 0 at [@gpa, @gpa + @size), backed by a new
 * mapping of @folio folios (th_env_map). */
void th_env_slot(struct th_env *e, uint64_t gpa, uint64_t size, uint64_t folio);
/* Destroy the vCPUs, the VM and the host (which unmaps everything). */
void th_env_fini(struct th_env *e);
/* The same, counting: the audit is clean, th_drain_mmu, the VM destroyed,
 * the mappings of th_env_map unmapped, then th_assert_host_empty. */
void th_env_fini_empty(struct th_env *e);

/* A single-threaded case whose cost under ThreadSanitizer buys no race
 * (a 1 GiB folio touched page by page: tens of seconds there): skipped in
 * the TSan build, run in the others.  Say at the case why it qualifies. */
#if defined(__SANITIZE_THREAD__)
#define SKIP_UNDER_TSAN() skip()
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SKIP_UNDER_TSAN() skip()
#endif
#endif
#ifndef SKIP_UNDER_TSAN
#define SKIP_UNDER_TSAN() ((void)0)
#endif

#endif
