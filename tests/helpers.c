/* SPDX-License-Identifier: MIT */
#include "helpers.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host/host.h"
#include "rcu.h"
#include "vm.h"

void th_fill_page(void *buf, uint64_t addr, uint64_t gen)
{
	uint64_t *w = buf;

	for (unsigned i = 0; i < 512; i++)
		w[i] = th_pattern(addr, gen, i);
}

int th_check_page(const void *buf, uint64_t addr, uint64_t gen)
{
	const uint64_t *w = buf;

	for (unsigned i = 0; i < 512; i++)
		if (w[i] != th_pattern(addr, gen, i))
			return -1;
	return 0;
}

void ev_set(struct event *e)
{
	__atomic_store_n(&e->set, 1, __ATOMIC_RELEASE);
}

void ev_wait(struct event *e)
{
	while (!__atomic_load_n(&e->set, __ATOMIC_ACQUIRE))
		usleep(100);
}

void th_pause_arm(struct th_pause *p)
{
	__atomic_store_n(&p->armed, 1, __ATOMIC_SEQ_CST);
}

void th_pause_hook(struct tdp_vcpu *v, uint64_t gpa, void *arg)
{
	struct th_pause *p = arg;

	(void)v;
	(void)gpa;
	if (!__atomic_exchange_n(&p->armed, 0, __ATOMIC_SEQ_CST))
		return;
	ev_set(&p->reached);
	ev_wait(&p->release);
}

/*
 * The engine under test: every test's tdp_vm_create goes through here
 * (the tests link with --wrap=tdp_vm_create), so CTest can run the same
 * tests with TDPMMU_TEST_ENGINE=legacy.  A configuration that asks for an
 * engine itself, or is confidential (TDP engine only), is left alone.
 */
int __real_tdp_vm_create(struct tdp_host *h, const struct tdp_vm_config *cfg,
			 struct tdp_vm **out);
int __wrap_tdp_vm_create(struct tdp_host *h, const struct tdp_vm_config *cfg,
			 struct tdp_vm **out);

int __wrap_tdp_vm_create(struct tdp_host *h, const struct tdp_vm_config *cfg,
			 struct tdp_vm **out)
{
	const char *e = getenv("TDPMMU_TEST_ENGINE");
	struct tdp_vm_config c = { 0 };

	if (!e || strcmp(e, "legacy"))
		return __real_tdp_vm_create(h, cfg, out);
	if (cfg)
		c = *cfg;
	if (!c.engine && !(c.flags & TDP_VM_CONFIDENTIAL))
		c.engine = TDP_ENGINE_LEGACY;
	return __real_tdp_vm_create(h, &c, out);
}

/*
 * The host backend under test, likewise (--wrap=tdp_host_create):
 * TDPMMU_TEST_HOST=process runs a suite on the process backend.  A
 * configuration that names a backend is left alone.  Where the process
 * backend cannot exist (no userfaultfd), the test exits 77, which CTest
 * counts as skipped.
 */
int __real_tdp_host_create(const struct tdp_host_config *cfg,
			   struct tdp_host **out);

bool th_process_host(void)
{
	const char *e = getenv("TDPMMU_TEST_HOST");

	return e && !strcmp(e, "process");
}
int __wrap_tdp_host_create(const struct tdp_host_config *cfg,
			   struct tdp_host **out);

int __wrap_tdp_host_create(const struct tdp_host_config *cfg,
			   struct tdp_host **out)
{
	struct tdp_host_config c = { 0 };
	int r;

	if (!th_process_host())
		return __real_tdp_host_create(cfg, out);
	if (cfg)
		c = *cfg;
	if (!c.backend)
		c.backend = TDP_HOST_PROCESS;
	r = __real_tdp_host_create(&c, out);
	if (r == -EOPNOTSUPP) {
		fprintf(stderr, "skipped: no process backend here "
				"(userfaultfd unavailable)\n");
		exit(77);
	}
	return r;
}

void th_run_child(int (*fn)(int), int arg, unsigned secs, struct th_child *r)
{
	FILE *f = tmpfile();
	pid_t pid;
	size_t n;

	assert_non_null(f);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		dup2(fileno(f), 2);
		alarm(secs);
		_exit(fn(arg));
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &r->status, 0), pid);
	rewind(f);
	n = fread(r->err, 1, sizeof(r->err) - 1, f);
	r->err[n] = 0;
	fclose(f);
}

bool th_child_clean(const struct th_child *r)
{
	return WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;
}

bool th_child_aborted_with(const struct th_child *r, const char *msg)
{
	return WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT &&
	       strstr(r->err, msg);
}

bool th_child_asan_report(const struct th_child *r)
{
	return !th_child_clean(r) && strstr(r->err, "AddressSanitizer");
}

void th_child_describe(const char *what, const struct th_child *r)
{
	char line[200] = "";
	const char *bug = strstr(r->err, "tdpmmu BUG");

	if (!bug)
		bug = strstr(r->err, "ERROR: AddressSanitizer");
	if (bug)
		sscanf(bug, "%199[^\n]", line);
	if (WIFSIGNALED(r->status))
		print_message("%s: child killed by signal %d %s\n", what,
			      WTERMSIG(r->status), line);
	else
		print_message("%s: child exit %d %s\n", what,
			      WEXITSTATUS(r->status), line);
}

struct tdp_host *th_host_new(uint64_t mem_bytes)
{
	struct tdp_host_config cfg = {.mem_bytes = mem_bytes};
	struct tdp_host *h = NULL;

	assert_int_equal(tdp_host_create(&cfg, &h), 0);
	assert_non_null(h);
	return h;
}

uint64_t th_host_map(struct tdp_host *h, uint64_t len, unsigned prot,
		     uint64_t folio)
{
	uint64_t hva = 0;

	assert_int_equal(tdp_host_mmap(h, len, prot, folio, 0, &hva), 0);
	assert_int_equal(hva % folio, 0);
	return hva;
}

void th_host_put_page(struct tdp_host *h, uint64_t hva, uint64_t gen)
{
	uint64_t buf[512];

	th_fill_page(buf, hva, gen);
	assert_int_equal(tdp_host_write(h, hva, buf, TDP_PAGE_SIZE), 0);
}

uint64_t th_lookup_pfn(struct tdp_host *h, uint64_t hva, unsigned *order)
{
	uint64_t pfn = ~0ull;
	unsigned o = ~0u, prot;

	assert_int_equal(host_lookup(h, hva, &pfn, &o, &prot), 0);
	if (order)
		*order = o;
	return pfn;
}

uint64_t *th_frame(struct tdp_host *h, uint64_t pfn)
{
	return (uint64_t *)(host_frame_base(h) + pfn * TDP_PAGE_SIZE);
}

bool th_frame_all(struct tdp_host *h, uint64_t pfn, uint64_t word)
{
	const uint64_t *w = th_frame(h, pfn);

	for (unsigned i = 0; i < 512; i++)
		if (__atomic_load_n(&w[i], __ATOMIC_RELAXED) != word)
			return false;
	return true;
}

bool th_frame_poisoned(struct tdp_host *h, uint64_t pfn)
{
	return th_frame_all(h, pfn, HOST_POISON_WORD);
}

int th_try_set_slot(struct tdp_vm *vm, unsigned as, unsigned id, uint64_t gpa,
		    uint64_t size, uint64_t hva, unsigned flags)
{
	struct tdp_memslot s = {.as_id = as,
				.slot = id,
				.gpa = gpa,
				.size = size,
				.hva = hva,
				.flags = flags};

	return tdp_vm_set_memslot(vm, &s);
}

void th_set_slot(struct tdp_vm *vm, unsigned as, unsigned id, uint64_t gpa,
		 uint64_t size, uint64_t hva, unsigned flags)
{
	assert_int_equal(th_try_set_slot(vm, as, id, gpa, size, hva, flags), 0);
}

void th_maybe_inject(struct tdp_vm *vm)
{
#if TDP_INJECT_AVAILABLE
	const char *name = getenv("TDP_TEST_INJECT");

	if (name && *name) {
		int id = tdp_inject_lookup(name);

		assert_true(id > 0);
		vm->mmu.inject = id;
	}
#else
	(void)vm;
#endif
}

struct tdp_stats th_vm_stats(struct tdp_vm *vm)
{
	struct tdp_stats s;

	tdp_vm_get_stats(vm, &s);
	return s;
}

struct tdp_host_stats th_host_stats(struct tdp_host *h)
{
	struct tdp_host_stats s;

	tdp_host_get_stats(h, &s);
	return s;
}

void th_audit_clean(struct tdp_vm *vm)
{
	char rep[2048] = "";
	int n = tdp_vm_audit(vm, rep, sizeof(rep));

	if (n)
		fprintf(stderr, "audit: %d problem(s):\n%s", n, rep);
	assert_int_equal(n, 0);
}

int th_read64(struct tdp_vcpu *v, uint64_t gpa, uint64_t *val)
{
	*val = 0;
	return tdp_vcpu_read(v, gpa, val, 8);
}

int th_write64(struct tdp_vcpu *v, uint64_t gpa, uint64_t val)
{
	return tdp_vcpu_write(v, gpa, &val, 8);
}

uint64_t th_root_leaf_pfn(struct tdp_pt_page *root, uint64_t gfn, int *level)
{
	uint64_t *t = root->spt;

	if (level)
		*level = 0;
	for (int l = root->level; l >= TDP_LEVEL_4K; l--) {
		uint64_t s = __atomic_load_n(&t[spte_index(gfn, l)],
					     __ATOMIC_ACQUIRE);

		if (!spte_present(s))
			return ~0ull;
		if (spte_is_leaf(s, l)) {
			if (level)
				*level = l;
			return spte_pfn(s) + (gfn & (level_pages(l) - 1));
		}
		t = spte_to_table(s);
	}
	return ~0ull;
}

uint64_t th_leaf_pfn(struct tdp_vcpu *v, uint64_t gfn, int *level)
{
	struct tdp_vm *vm = v->vm;
	uint64_t pfn = ~0ull;

	if (level)
		*level = 0;
	tdp_read_lock(&vm->mmu.lock);
	tdp_rcu_read_lock();
	if (v->root[v->as_id])
		pfn = th_root_leaf_pfn(v->root[v->as_id], gfn, level);
	tdp_rcu_read_unlock();
	tdp_read_unlock(&vm->mmu.lock);
	return pfn;
}

void th_hw_sets_dirty(void *arg, uint64_t *sptep)
{
	uint64_t s = __atomic_load_n(sptep, __ATOMIC_ACQUIRE);

	(void)arg;
	if (spte_present(s) && !(s & SPTE_D))
		__atomic_fetch_or(sptep, SPTE_D, __ATOMIC_ACQ_REL);
}

uint64_t *th_bm_new(uint64_t nwords)
{
	uint64_t *b = calloc(nwords ? nwords : 1, 8);

	assert_non_null(b);
	return b;
}

void th_bm_set(uint64_t *b, uint64_t i)
{
	b[i / 64] |= 1ull << (i % 64);
}

bool th_bm_test(const uint64_t *b, uint64_t i)
{
	return b[i / 64] >> (i % 64) & 1;
}

uint64_t th_bm_count(const uint64_t *b, uint64_t nwords)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < nwords; i++)
		n += (uint64_t)__builtin_popcountll(b[i]);
	return n;
}

void th_bm_assert_eq(const uint64_t *got, const uint64_t *want, uint64_t npages,
		     const char *what)
{
	uint64_t missing = 0, extra = 0, first = ~0ull;

	for (uint64_t i = 0; i < npages; i++) {
		if (th_bm_test(got, i) == th_bm_test(want, i))
			continue;
		if (first == ~0ull)
			first = i;
		if (th_bm_test(want, i))
			missing++;
		else
			extra++;
	}
	if (missing || extra)
		fprintf(stderr,
			"%s: %" PRIu64 " page(s) missing, %" PRIu64
			" extra; first difference page %" PRIu64
			" (expected %d)\n",
			what, missing, extra, first,
			(int)th_bm_test(want, first));
	assert_int_equal(missing, 0);
	assert_int_equal(extra, 0);
}

void th_assert_mmu_empty(struct tdp_vm *vm)
{
	struct tdp_stats s = th_vm_stats(vm);

	assert_int_equal(s.roots, 0);
	assert_int_equal(s.pt_pages, 0);
	assert_int_equal(s.pt_pages_alloc, 0);
	assert_int_equal(s.frame_refs, 0);
	assert_int_equal(s.pages_4k, 0);
	assert_int_equal(s.pages_2m, 0);
	assert_int_equal(s.pages_1g, 0);
}

void th_drain_mmu(struct tdp_vm *vm, struct tdp_vcpu **v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		tdp_vcpu_destroy(v[i]);
	assert_int_equal(tdp_vm_invalidate_roots(vm), 0);
	tdp_rcu_barrier();
	th_assert_mmu_empty(vm);
}

void th_assert_host_empty(struct tdp_host *h)
{
	struct tdp_host_stats s = th_host_stats(h);

	assert_int_equal(s.frames_used, 0);
	assert_int_equal(s.frame_refs, 0);
	assert_int_equal(s.pinned_refs, 0);
	assert_int_equal(s.swapped_pages, 0);
}

void th_env_init(struct th_env *e, uint64_t mem_bytes,
		 const struct tdp_vm_config *cfg, unsigned nv)
{
	assert_true(nv <= TH_MAX_VCPUS);
	memset(e, 0, sizeof(*e));
	e->h = th_host_new(mem_bytes);
	assert_int_equal(tdp_vm_create(e->h, cfg, &e->vm), 0);
	for (unsigned i = 0; i < nv; i++)
		assert_int_equal(tdp_vcpu_create(e->vm, i, &e->v[i]), 0);
	e->nv = nv;
}

uint64_t th_env_map(struct th_env *e, uint64_t len, uint64_t folio)
{
	uint64_t hva =
		th_host_map(e->h, len, TDP_PROT_READ | TDP_PROT_WRITE, folio);

	assert_true(e->nmap < sizeof(e->map) / sizeof(e->map[0]));
	e->map[e->nmap].hva = hva;
	e->map[e->nmap++].len = len;
	return hva;
}

void th_env_slot(struct th_env *e, uint64_t gpa, uint64_t size, uint64_t folio)
{
	e->hva = th_env_map(e, size, folio);
	th_set_slot(e->vm, 0, 0, gpa, size, e->hva, 0);
	e->gpa = gpa;
	e->size = size;
	e->npages = size / TDP_PAGE_SIZE;
	e->nwords = (e->npages + 63) / 64;
}

void th_env_fini(struct th_env *e)
{
	for (unsigned i = 0; i < e->nv; i++)
		tdp_vcpu_destroy(e->v[i]);
	tdp_vm_destroy(e->vm);
	tdp_host_destroy(e->h);
}

void th_env_fini_empty(struct th_env *e)
{
	th_audit_clean(e->vm);
	th_drain_mmu(e->vm, e->v, e->nv);
	tdp_vm_destroy(e->vm);
	for (unsigned i = 0; i < e->nmap; i++)
		assert_int_equal(
			tdp_host_munmap(e->h, e->map[i].hva, e->map[i].len), 0);
	th_assert_host_empty(e->h);
	tdp_host_destroy(e->h);
}
