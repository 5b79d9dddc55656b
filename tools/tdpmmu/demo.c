/* SPDX-License-Identifier: MIT */
/*
 * demo.c - `tdpmmu demo`: a small VM doing real work while its host memory
 * moves underneath it.
 *
 * 2 vCPU threads, 1 GiB of guest memory in two memslots (512 MiB backed by
 * 2 MiB folios, 512 MiB by 4 KiB folios).  Phase 1 populates every page.
 * Phase 2 runs the vCPUs in a read-verify-write loop over their own pages
 * while the host migrates, swaps out and splits memory under them.  Phase 3
 * verifies every byte, through a vCPU and through the host.  Exit status 1
 * on any mismatch.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "tdpmmu.h"

#define NVCPU 2
#define PAGE  ((uint64_t)4096)

struct demo {
	struct tdp_host *host;
	struct tdp_vm *vm;
	struct tdp_vcpu *vcpu[NVCPU];
	uint64_t hva[2], slot_size, npages;
	uint32_t *gen; /* per page; written only by the owning vCPU */
	atomic_bool stop;
	atomic_ullong mismatches;
	uint64_t seconds, seed;
};

struct vthread {
	struct demo *d;
	unsigned id;
	uint64_t ops, writes;
	int err;
};

static unsigned owner(uint64_t page)
{
	return (unsigned)((page >> 9) % NVCPU);
}

static void fill(uint64_t *buf, uint64_t page, uint64_t gen)
{
	for (unsigned i = 0; i < PAGE / 8; i++)
		buf[i] = cli_pattern(page, gen, i);
}

static int check(struct demo *d, const uint64_t *buf, uint64_t page,
		 const char *who)
{
	for (unsigned i = 0; i < PAGE / 8; i++) {
		uint64_t want = cli_pattern(page, d->gen[page], i);

		if (buf[i] != want) {
			if (atomic_fetch_add(&d->mismatches, 1) < 5)
				fprintf(stderr,
					"MISMATCH (%s) gpa %#" PRIx64
					" word %u: expected %#" PRIx64
					" found %#" PRIx64 "\n",
					who, page * PAGE, i, want, buf[i]);
			return -1;
		}
	}
	return 0;
}

static void *vcpu_populate(void *arg)
{
	struct vthread *t = arg;
	struct demo *d = t->d;
	uint64_t buf[PAGE / 8];

	for (uint64_t p = 0; p < d->npages && !t->err; p++) {
		if (owner(p) != t->id)
			continue;
		d->gen[p] = 1;
		fill(buf, p, 1);
		t->err = tdp_vcpu_write(d->vcpu[t->id], p * PAGE, buf, PAGE);
	}
	return NULL;
}

static void *vcpu_chaos(void *arg)
{
	struct vthread *t = arg;
	struct demo *d = t->d;
	uint64_t seed = d->seed * 7919 + t->id + 1;
	uint64_t buf[PAGE / 8];

	while (!atomic_load(&d->stop) && !t->err) {
		uint64_t p = cli_rand(&seed) % d->npages;

		if (owner(p) != t->id)
			p ^= 1ull << 9; /* the neighbouring 2 MiB chunk */
		if (p >= d->npages || owner(p) != t->id)
			continue;
		t->err = tdp_vcpu_read(d->vcpu[t->id], p * PAGE, buf, PAGE);
		if (t->err)
			break;
		check(d, buf, p, "vcpu");
		t->ops++;
		if (cli_rand(&seed) & 1) {
			d->gen[p]++;
			fill(buf, p, d->gen[p]);
			t->err = tdp_vcpu_write(d->vcpu[t->id], p * PAGE, buf,
						PAGE);
			t->writes++;
		}
	}
	return NULL;
}

static void start_threads(struct demo *d, void *(*fn)(void *),
			  struct vthread *t, pthread_t *th)
{
	for (unsigned i = 0; i < NVCPU; i++) {
		t[i] = (struct vthread){.d = d, .id = i};
		pthread_create(&th[i], NULL, fn, &t[i]);
	}
}

static int join_threads(struct vthread *t, pthread_t *th)
{
	int err = 0;

	for (unsigned i = 0; i < NVCPU; i++) {
		pthread_join(th[i], NULL);
		if (t[i].err && !err)
			err = t[i].err;
	}
	return err;
}

struct hostops {
	uint64_t migrate, swap, split, failed;
};

static void host_chaos(struct demo *d, struct hostops *o)
{
	uint64_t seed = d->seed;
	uint64_t end = cli_now_ns() + d->seconds * 1000000000ull;

	while (cli_now_ns() < end) {
		unsigned which = (unsigned)(cli_rand(&seed) % 2);
		uint64_t off = cli_rand(&seed) % d->slot_size;
		uint64_t hva = d->hva[which];
		int r;

		/* Swap-out and split break huge folios; confine them to the
		 * lower half of each slot so the upper half of the 2 MiB slot
		 * keeps huge mappings (migrate moves whole folios). */
		switch (cli_rand(&seed) % 3) {
		case 0: /* migrate a 2 MiB region */
			off &= ~((2ull << 20) - 1);
			r = tdp_host_migrate(d->host, hva + off, 2ull << 20);
			o->migrate++;
			break;
		case 1: /* swap out 64 KiB */
			off = (off % (d->slot_size / 2)) & ~((64ull << 10) - 1);
			r = tdp_host_swap_out(d->host, hva + off, 64ull << 10);
			o->swap++;
			break;
		default: /* split a 2 MiB folio (slot 0 only has them) */
			off = (off % (d->slot_size / 2)) & ~((2ull << 20) - 1);
			r = tdp_host_split(d->host, d->hva[0] + off,
					   2ull << 20);
			o->split++;
			break;
		}
		if (r)
			o->failed++;
		usleep(200);
	}
}

static int verify_all(struct demo *d, uint64_t *bytes)
{
	uint64_t buf[PAGE / 8];
	int bad = 0;

	for (uint64_t p = 0; p < d->npages; p++) {
		unsigned s = p * PAGE < d->slot_size ? 0 : 1;
		uint64_t hva = d->hva[s] + p * PAGE - s * d->slot_size;

		if (tdp_vcpu_read(d->vcpu[0], p * PAGE, buf, PAGE) ||
		    check(d, buf, p, "final vcpu read"))
			bad = 1;
		if (tdp_host_read(d->host, hva, buf, PAGE) ||
		    check(d, buf, p, "final host read"))
			bad = 1;
		*bytes += PAGE;
	}
	return bad;
}

static void usage(void)
{
	printf("usage: tdpmmu demo [--seconds N] [--mem SIZE] [--seed N]\n"
	       "  --seconds N  length of the chaos phase (default 8)\n"
	       "  --mem SIZE   guest memory, a multiple of 4M (default 1G)\n"
	       "  --seed N     random seed (default 1)\n");
}

static int setup(struct demo *d, uint64_t mem)
{
	struct tdp_host_config hc = {.mem_bytes = 2 * mem + (1ull << 30)};
	struct tdp_vm_config vc = {.nr_as = 1, .max_vcpus = NVCPU};
	int r;

	d->slot_size = mem / 2;
	d->npages = mem / PAGE;
	d->gen = calloc(d->npages, sizeof(*d->gen));
	if (!d->gen)
		return -ENOMEM;
	r = tdp_host_create(&hc, &d->host);
	if (!r)
		r = tdp_host_mmap(d->host, d->slot_size,
				  TDP_PROT_READ | TDP_PROT_WRITE, TDP_HUGE_2M,
				  0, &d->hva[0]);
	if (!r)
		r = tdp_host_mmap(d->host, d->slot_size,
				  TDP_PROT_READ | TDP_PROT_WRITE, TDP_PAGE_SIZE,
				  0, &d->hva[1]);
	if (!r)
		r = tdp_vm_create(d->host, &vc, &d->vm);
	for (unsigned s = 0; !r && s < 2; s++) {
		struct tdp_memslot ms = {.slot = s,
					 .gpa = s * d->slot_size,
					 .size = d->slot_size,
					 .hva = d->hva[s]};
		r = tdp_vm_set_memslot(d->vm, &ms);
	}
	for (unsigned i = 0; !r && i < NVCPU; i++)
		r = tdp_vcpu_create(d->vm, i, &d->vcpu[i]);
	return r;
}

static void teardown(struct demo *d)
{
	for (unsigned i = 0; i < NVCPU; i++)
		tdp_vcpu_destroy(d->vcpu[i]);
	tdp_vm_destroy(d->vm);
	tdp_host_destroy(d->host);
	free(d->gen);
}

int cmd_demo(int argc, char **argv)
{
	static const struct option opts[] = {
		{"seconds", required_argument, NULL, 't'},
		{"mem", required_argument, NULL, 'm'},
		{"seed", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{0}};
	struct demo d = {.seconds = 8, .seed = 1};
	uint64_t mem = 1ull << 30, bytes = 0, t0;
	struct vthread vt[NVCPU];
	pthread_t th[NVCPU];
	struct tdp_host_stats hs;
	struct hostops ho = {0};
	struct tdp_stats st;
	char report[2048];
	int c, r, bad, audit;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			d.seconds = strtoull(optarg, NULL, 0);
			break;
		case 's':
			d.seed = strtoull(optarg, NULL, 0);
			break;
		case 'm':
			if (cli_parse_size_in(optarg, 4ull << 20, UINT64_MAX,
					      &mem)) {
				fprintf(stderr, "demo: bad --mem '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'h':
			usage();
			return 0;
		default:
			usage();
			return 2;
		}
	}
	if (d.seconds > 3600) {
		fprintf(stderr, "demo: --seconds at most 3600\n");
		return 2;
	}
	r = setup(&d, mem);
	if (r) {
		fprintf(stderr, "demo: setup failed: %s\n", strerror(-r));
		return 1;
	}
	printf("tdpmmu demo: %u vCPUs, %" PRIu64 " MiB guest memory in 2 "
	       "memslots (2 MiB and 4 KiB folios)\n",
	       NVCPU, mem >> 20);

	t0 = cli_now_ns();
	start_threads(&d, vcpu_populate, vt, th);
	r = join_threads(vt, th);
	if (r) {
		fprintf(stderr, "demo: populate failed: %s\n", strerror(-r));
		teardown(&d);
		return 1;
	}
	tdp_vm_get_stats(d.vm, &st);
	printf("populate: %.3f s, %" PRIu64 " faults, %" PRIu64
	       " pages 4k, %" PRIu64 " pages 2m\n",
	       (cli_now_ns() - t0) / 1e9, st.pf_fixed, st.pages_4k,
	       st.pages_2m);

	printf("chaos: %" PRIu64 " s of host migrate / swap-out / split "
	       "while the vCPUs verify and rewrite their pages\n",
	       d.seconds);
	start_threads(&d, vcpu_chaos, vt, th);
	host_chaos(&d, &ho);
	atomic_store(&d.stop, true);
	r = join_threads(vt, th);
	if (r)
		fprintf(stderr, "demo: vCPU access failed: %s\n", strerror(-r));
	tdp_vm_get_stats(d.vm, &st);
	tdp_host_get_stats(d.host, &hs);
	printf("  vCPU page checks: %" PRIu64 " + %" PRIu64
	       ", page rewrites: %" PRIu64 " + %" PRIu64 "\n",
	       vt[0].ops, vt[1].ops, vt[0].writes, vt[1].writes);
	printf("  host ops: %" PRIu64 " migrate, %" PRIu64 " swap-out, %" PRIu64
	       " split (%" PRIu64 " refused); pages migrated %" PRIu64
	       ", swapped out %" PRIu64 ", swapped in %" PRIu64
	       ", folios split %" PRIu64 "\n",
	       ho.migrate, ho.swap, ho.split, ho.failed, hs.migrations,
	       hs.swap_outs, hs.swap_ins, hs.splits);

	printf("verify: every page through vCPU 0 and through the host\n");
	bad = verify_all(&d, &bytes) || r;
	tdp_vm_get_stats(d.vm, &st);
	audit = tdp_vm_audit(d.vm, report, sizeof(report));

	printf("\nMMU statistics\n");
	printf("  faults: taken %" PRIu64 ", fixed %" PRIu64
	       ", spurious %" PRIu64 ", retried %" PRIu64 "\n",
	       st.pf_taken, st.pf_fixed, st.pf_spurious, st.pf_retry);
	printf("  mappings now: %" PRIu64 " x 4k, %" PRIu64 " x 2m, %" PRIu64
	       " x 1g; table pages %" PRIu64 ", roots %" PRIu64 "\n",
	       st.pages_4k, st.pages_2m, st.pages_1g, st.pt_pages, st.roots);
	printf("  TLB: %" PRIu64 " hits, %" PRIu64 " misses\n", st.tlb_hits,
	       st.tlb_misses);
	printf("  remote TLB flushes: %" PRIu64 " (%" PRIu64
	       " vCPU requests), mean %.1f us\n",
	       st.remote_tlb_flush, st.remote_tlb_flush_requests,
	       st.remote_tlb_flush ? st.remote_tlb_flush_ns / 1e3 /
					     (double)st.remote_tlb_flush
				   : 0.0);
	printf("  host invalidations: %" PRIu64 ", leaves zapped %" PRIu64 "\n",
	       st.invalidations, st.zapped_leaves);
	printf("  audit: %s\n", audit == 0 ? "clean" : report);
	teardown(&d);
	if (bad || audit || atomic_load(&d.mismatches)) {
		printf("\nFAILED: %llu mismatching pages\n",
		       (unsigned long long)atomic_load(&d.mismatches));
		return 1;
	}
	printf("\nall %" PRIu64 " bytes verified (%" PRIu64
	       " MiB, through the guest and the host)\n",
	       bytes, bytes >> 20);
	return 0;
}
