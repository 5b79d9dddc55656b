/* SPDX-License-Identifier: MIT */
/*
 * emulator.c - an emulator-style program on the process backend: its
 * guest RAM is memory of its own process (TDP_HOST_PROCESS), its vCPU
 * threads reach it through direct access (tdp_vcpu_map) with an
 * instruction-boundary tdp_vcpu_check_requests, and the program keeps its
 * own pointer into the same RAM, as a device model would.  Meanwhile the
 * host migrates, swaps out, splits and reprotects the memory, and the
 * program drops its own page tables with madvise(MADV_DONTNEED).  Every
 * byte is verified at the end (and the program's own pages after every
 * host operation).  Exits 0 when all is well, 1 on a mismatch or error,
 * 77 where the process backend cannot exist (no userfaultfd).
 *
 * Layout of guest RAM (gpa 0, 16 MiB of 2 MiB folios):
 *   vCPU i owns the pages i, i + NVCPU, i + 2 NVCPU, ... of the first half
 *   and writes them whole through its direct pointers; the program owns
 *   the second half and writes it through its own pointer.  The vCPUs
 *   also read the program's half (each word must carry its page's tag).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <tdpmmu.h>

#define RAM    (16ull << 20)
#define PAGES  (RAM / TDP_PAGE_SIZE)
#define HALF   (PAGES / 2)
#define NVCPU  2
#define ROUNDS 300 /* host operations */
#define WORDS  (TDP_PAGE_SIZE / 8)

static uint64_t word(uint64_t page, uint64_t gen, unsigned i)
{
	return (page << 40) ^ (gen << 12) ^ i;
}

static struct tdp_host *host;
static struct tdp_vm *vm;
static uint64_t *ram; /* the program's own pointer: the hva */
static uint64_t gens[PAGES]; /* last generation written, per page */
static atomic_int stop, failed;

static void fail(const char *what, uint64_t page, uint64_t got, uint64_t want)
{
	fprintf(stderr,
		"emulator: %s: page %" PRIu64 " has %#" PRIx64
		", expected %#" PRIx64 "\n",
		what, page, got, want);
	atomic_store(&failed, 1);
}

struct vcpu_thread {
	struct tdp_vcpu *cpu;
	unsigned id;
	uint64_t steps, restarts;
	int err;
};

/* One "instruction": write a whole owned page through a direct pointer;
 * then read a word of a program page. */
static void *vcpu_fn(void *arg)
{
	struct vcpu_thread *t = arg;
	uint64_t x = t->id + 1;

	while (!atomic_load(&stop) && !atomic_load(&failed)) {
		uint64_t page, gen, *p;
		void *ptr;
		int r;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		page = ((x >> 33) % (HALF / NVCPU)) * NVCPU + t->id;
		gen = gens[page] + 1;
		r = tdp_vcpu_map(t->cpu, page * TDP_PAGE_SIZE,
				 TDP_PROT_READ | TDP_PROT_WRITE, &ptr);
		if (r < 0) {
			t->err = r;
			break;
		}
		p = ptr;
		for (unsigned i = 0; i < WORDS; i++)
			p[i] = word(page, gen, i);
		gens[page] = gen;
		/* a read of the program's half, in the same instruction */
		page = HALF + (x >> 17) % HALF;
		r = tdp_vcpu_map(t->cpu, page * TDP_PAGE_SIZE + 8 * (x % WORDS),
				 TDP_PROT_READ, &ptr);
		if (r < 0) {
			t->err = r;
			break;
		}
		if (r == 1) /* the first pointer went stale: restart */
			t->restarts++;
		if (*(uint64_t *)ptr >> 40 != page)
			fail("vCPU read of a program page", page,
			     *(uint64_t *)ptr, word(page, 0, 0));
		/* instruction boundary: TLB flushes are acknowledged here */
		tdp_vcpu_check_requests(t->cpu);
		t->steps++;
	}
	tdp_vcpu_check_requests(t->cpu);
	return NULL;
}

/* The program's half: written and checked through its own pointer. */
static void program_write(uint64_t gen)
{
	for (uint64_t page = HALF; page < PAGES; page++) {
		for (unsigned i = 0; i < WORDS; i++)
			ram[page * WORDS + i] = word(page, gen, i);
		gens[page] = gen;
	}
}

static void check_pages(const char *what, uint64_t first, uint64_t last)
{
	for (uint64_t page = first; page < last; page++)
		for (unsigned i = 0; i < WORDS; i++)
			if (ram[page * WORDS + i] != word(page, gens[page], i)) {
				fail(what, page, ram[page * WORDS + i],
				     word(page, gens[page], i));
				return;
			}
}

static int host_op(unsigned round)
{
	uint64_t x = round * 0x9e3779b97f4a7c15ull;
	uint64_t len = (1 + (x >> 20) % 64) * TDP_PAGE_SIZE;
	uint64_t off = ((x >> 40) % (PAGES - len / TDP_PAGE_SIZE + 1)) *
		       TDP_PAGE_SIZE;
	uint64_t hva = (uintptr_t)ram + off;

	switch (round % 5) {
	case 0:
		return tdp_host_migrate(host, hva, len);
	case 1:
		return tdp_host_swap_out(host, hva, len);
	case 2:
		return tdp_host_split(host, hva, len);
	case 3: /* take execute away and give it back: VMs are told */
		if (tdp_host_mprotect(host, hva, len,
				      TDP_PROT_READ | TDP_PROT_WRITE))
			return -1;
		return tdp_host_mprotect(host, hva, len,
					 TDP_PROT_READ | TDP_PROT_WRITE |
						 TDP_PROT_EXEC);
	default: /* the program's own: drops its page tables, no data */
		return madvise(ram, RAM, MADV_DONTNEED);
	}
}

int main(void)
{
	struct tdp_host_config hc = {.mem_bytes = 1ull << 30,
				     .backend = TDP_HOST_PROCESS};
	struct vcpu_thread t[NVCPU];
	pthread_t th[NVCPU];
	uint64_t hva = 0, steps = 0, restarts = 0;
	struct tdp_host_stats hs;
	int r = tdp_host_create(&hc, &host);

	if (r == -EOPNOTSUPP) {
		printf("emulator: skipped, no userfaultfd here\n");
		return 77;
	}
	if (r || tdp_host_mmap(host, RAM,
			       TDP_PROT_READ | TDP_PROT_WRITE | TDP_PROT_EXEC,
			       TDP_HUGE_2M, 0, &hva) ||
	    tdp_vm_create(host, NULL, &vm))
		return 1;
	ram = (uint64_t *)(uintptr_t)hva; /* guest RAM, in this process */
	struct tdp_memslot slot = {.slot = 0, .gpa = 0, .size = RAM,
				   .hva = hva};
	if (tdp_vm_set_memslot(vm, &slot))
		return 1;
	program_write(1);
	for (unsigned i = 0; i < NVCPU; i++) {
		t[i] = (struct vcpu_thread){.id = i};
		if (tdp_vcpu_create(vm, i, &t[i].cpu) ||
		    pthread_create(&th[i], NULL, vcpu_fn, &t[i]))
			return 1;
	}
	for (unsigned round = 0; round < ROUNDS && !atomic_load(&failed);
	     round++) {
		if (host_op(round)) {
			fprintf(stderr, "emulator: host operation %u: %s\n",
				round, strerror(errno));
			atomic_store(&failed, 1);
		}
		check_pages("program page after a host operation", HALF,
			    PAGES);
		program_write(round + 2);
	}
	atomic_store(&stop, 1);
	for (unsigned i = 0; i < NVCPU; i++) {
		pthread_join(th[i], NULL);
		if (t[i].err) {
			fprintf(stderr, "emulator: vCPU %u: error %d\n", i,
				t[i].err);
			atomic_store(&failed, 1);
		}
		steps += t[i].steps;
		restarts += t[i].restarts;
		tdp_vcpu_destroy(t[i].cpu);
	}
	/* every byte of guest RAM, through the program's pointer */
	check_pages("final check", 0, PAGES);
	tdp_host_get_stats(host, &hs);
	printf("emulator: %u host operations, %" PRIu64
	       " vCPU instructions (%" PRIu64 " restarted), %" PRIu64
	       " pages migrated, %" PRIu64 " swapped in, %" PRIu64
	       " folios split: %s\n",
	       ROUNDS, steps, restarts, hs.migrations, hs.swap_ins, hs.splits,
	       atomic_load(&failed) ? "FAILED" : "every byte verified");
	tdp_vm_destroy(vm);
	tdp_host_destroy(host);
	return atomic_load(&failed) ? 1 : 0;
}
