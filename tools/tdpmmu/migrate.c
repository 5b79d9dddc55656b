/* SPDX-License-Identifier: MIT */
/*
 * migrate.c - `tdpmmu migrate`: live migration of a running VM, driven by
 * the dirty log, into a destination buffer of this process or, with --to
 * (--record), to another process over a socket (a file), pre-copy or
 * post-copy (docs/migration.md; the destination is migrate_dest.c).
 *
 * One memslot of 2 MiB folios, populated by the vCPUs.  Logging is turned
 * on (a flags-only memslot update: huge leaves are split eagerly), the
 * vCPU threads start writing random pages at the requested rate, and the
 * migration thread copies all memory through tdp_host_read, then harvests
 * the dirty log and copies the reported pages, round after round, until a
 * round reports fewer pages than the threshold or --max-iters rounds ran.
 * Then the vCPUs stop (stop-and-copy): a final harvest and copy, the
 * downtime measured from the stop request to the end of that copy.  The
 * destination is checked byte for byte against the source (tdp_host_read)
 * and against the writers' model of the last value of every page.
 *
 * With --manual (TDP_VM_MANUAL_PROTECT) every page starts out reported:
 * the bulk copy clears and copies 2 MiB at a time, and each round is
 * get, clear, then copy.  With --dbit the log is kept in Dirty bits
 * (--pml: logged by the simulated hardware).  With --ring each round
 * collects the vCPUs' dirty rings (and the bitmap, which holds what no
 * vCPU wrote), resets the rings, then copies (KVM's order: a write after
 * the reset makes a new entry); a writer whose ring is soft-full waits
 * for the next round.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "migrate.h"
#include "tdpmmu.h"

static void fill(uint64_t *buf, uint64_t gfn, uint64_t gen)
{
	for (unsigned i = 0; i < PAGE / 8; i++)
		buf[i] = cli_pattern(gfn, gen, i);
}

/* Pages are owned by vCPU in 2 MiB blocks, round robin. */
static bool owns(const struct mig *m, unsigned id, uint64_t page)
{
	return (page >> 9) % m->vcpus == id;
}

static void *populate_thread(void *arg)
{
	struct writer *w = arg;
	struct mig *m = w->m;
	uint64_t buf[PAGE / 8];

	for (uint64_t p = 0; p < m->npages && !w->err; p++) {
		if (!owns(m, w->id, p))
			continue;
		m->gen[p] = 1;
		fill(buf, GPA_BASE / PAGE + p, 1);
		w->err = tdp_vcpu_write(m->vcpu[w->id], GPA_BASE + p * PAGE,
					buf, PAGE);
	}
	return NULL;
}

/*
 * A vCPU writes random whole pages of its own blocks, generation + 1, at
 * rate% of guest memory per second shared by all vCPUs; paced against the
 * clock in 1 ms steps.
 */
void *mig_writer_thread(void *arg)
{
	struct writer *w = arg;
	struct mig *m = w->m;
	uint64_t seed = m->seed * 0x9e3779b97f4a7c15ull + w->id + 1;
	uint64_t buf[PAGE / 8];
	uint64_t nblocks = (m->npages >> 9), mine = 0;
	double per_ns = (double)m->npages * m->rate / 100.0 / m->vcpus / 1e9;
	uint64_t t0 = cli_now_ns();

	for (uint64_t b = 0; b < nblocks; b++)
		mine += b % m->vcpus == w->id;
	if (!mine || !m->rate)
		return NULL;
	while (!atomic_load_explicit(&m->stop, memory_order_relaxed)) {
		double due = (double)(cli_now_ns() - t0) * per_ns;

		if ((double)w->writes >= due) {
			usleep(1000);
			continue;
		}
		uint64_t r = cli_rand(&seed);
		uint64_t blk = (r % mine) * m->vcpus + w->id;
		uint64_t p = (blk << 9) + (r >> 40) % 512;
		uint32_t g = m->gen[p] + 1;

		fill(buf, GPA_BASE / PAGE + p, g);
		w->err = tdp_vcpu_write(m->vcpu[w->id], GPA_BASE + p * PAGE,
					buf, PAGE);
		if (w->err == -ENOSPC && m->ring) {
			/* the ring is soft-full: the next round resets it */
			w->err = 0;
			w->ring_full++;
			usleep(100);
			continue;
		}
		if (w->err)
			break;
		/* the model changes once the write is done */
		__atomic_store_n(&m->gen[p], g, __ATOMIC_RELEASE);
		w->writes++;
	}
	return NULL;
}

/* Send pages into the stream, through the scratch buffer. */
static int send_pages(struct mig *m, uint64_t first, uint64_t n)
{
	while (n) {
		uint64_t k = n < CHUNK / PAGE ? n : CHUNK / PAGE;
		int r = tdp_host_read(m->host, m->hva + first * PAGE,
				      m->scratch, k * PAGE);

		for (uint64_t i = 0; !r && i < k; i++)
			r = wire_put_page(m->out, first + i,
					  m->scratch + i * PAGE);
		if (r)
			return r;
		first += k;
		n -= k;
	}
	return 0;
}

/* Copy pages to the destination, paced to --bandwidth. */
static int copy_pages(struct mig *m, uint64_t first, uint64_t n)
{
	int r = m->out ? send_pages(m, first, n)
		       : tdp_host_read(m->host, m->hva + first * PAGE,
				       m->dst + first * PAGE, n * PAGE);

	m->copied += n * PAGE;
	if (!r && m->bandwidth) {
		uint64_t due = m->copy_t0 + (uint64_t)((double)m->copied * 1e9 /
						       (double)m->bandwidth);
		uint64_t now = cli_now_ns();

		if (due > now) {
			struct timespec ts = {
				.tv_sec = (time_t)((due - now) / 1000000000ull),
				.tv_nsec = (long)((due - now) % 1000000000ull)};

			nanosleep(&ts, NULL);
		}
	}
	return r;
}

/* Copy the pages set in m->bitmap, in runs; returns the count or < 0. */
static int64_t copy_dirty(struct mig *m)
{
	uint64_t count = 0;

	for (uint64_t p = 0; p < m->npages;) {
		uint64_t w = m->bitmap[p / 64] >> (p % 64);

		if (!w) {
			p = (p / 64 + 1) * 64;
			continue;
		}
		p += (uint64_t)__builtin_ctzll(w);
		uint64_t q = p;

		while (q < m->npages && (m->bitmap[q / 64] >> (q % 64) & 1))
			q++;
		int r = copy_pages(m, p, q - p);

		if (r)
			return r;
		count += q - p;
		p = q;
	}
	return (int64_t)count;
}

/* --ring: the DIRTY entries of every vCPU's ring into m->bitmap, each
 * marked RESET (the VMM's side of the flags protocol), then the reset. */
static int ring_take(void *arg, uint32_t slot, uint64_t offset)
{
	struct mig *m = arg;

	if (slot != 0 || offset >= m->npages)
		return -EIO; /* not a page of memslot 0 */
	m->bitmap[offset / 64] |= 1ull << (offset % 64);
	m->ring_entries++;
	return 0;
}

static int harvest_rings(struct mig *m)
{
	for (unsigned i = 0; i < m->vcpus; i++) {
		int r = ring_collect(m->vcpu[i], &m->ring_fetch[i],
					 ring_take, m);

		if (r)
			return r;
	}
	return tdp_vm_reset_dirty_rings(m->vm, NULL);
}

/* Harvest: get (and with --manual clear what was reported; with --ring
 * collect and reset the rings too). */
static int harvest(struct mig *m)
{
	int r = tdp_vm_get_dirty_log(m->vm, 0, 0, m->bitmap);

	if (!r && m->manual)
		r = tdp_vm_clear_dirty_log(m->vm, 0, 0, 0, m->npages,
					   m->bitmap);
	if (!r && m->ring)
		r = harvest_rings(m);
	return r;
}

static int bulk_copy(struct mig *m)
{
	uint64_t per = CHUNK / PAGE;
	uint64_t *ones = NULL;
	int r = 0;

	if (m->manual) {
		ones = malloc(per / 8);
		if (!ones)
			return -ENOMEM;
		memset(ones, 0xff, per / 8);
	}
	for (uint64_t p = 0; p < m->npages && !r; p += per) {
		uint64_t n = m->npages - p < per ? m->npages - p : per;

		/* manual: every page starts reported; forget (and protect)
		 * a chunk, then copy it */
		if (m->manual)
			r = tdp_vm_clear_dirty_log(m->vm, 0, 0, p, n, ones);
		if (!r)
			r = copy_pages(m, p, n);
	}
	free(ones);
	m->bulk_pages = m->npages;
	return r;
}

static const char *mode_name(const struct mig *m)
{
	if (m->manual)
		return m->dbit ? (m->pml ? "manual-protect, dirty bits, PML"
					 : "manual-protect, dirty bits")
			       : "manual-protect, write-protect";
	if (m->ring)
		return m->dbit ? "dirty ring, dirty bits, PML"
			       : "dirty ring, write-protect";
	return m->dbit ? (m->pml ? "dirty bits, PML" : "dirty bits")
		       : "write-protect";
}

/* Verify the destination against the source and the model. */
int mig_verify(struct mig *m)
{
	uint64_t src[PAGE / 8];

	for (uint64_t p = 0; p < m->npages; p++) {
		const uint64_t *d = m->dst ? (const uint64_t *)(m->dst + p * PAGE)
					   : src;
		int r = tdp_host_read(m->host, m->hva + p * PAGE, src, PAGE);

		if (r) {
			fprintf(stderr, "migrate: read of guest memory failed: "
					"%s\n",
				strerror(-r));
			return 1;
		}
		for (unsigned i = 0; i < PAGE / 8; i++) {
			uint64_t want =
				cli_pattern(GPA_BASE / PAGE + p, m->gen[p], i);
			const char *what = NULL;
			uint64_t exp = 0;

			if (d[i] != src[i]) {
				what = "source";
				exp = src[i];
			} else if (d[i] != want) {
				what = "writers' model";
				exp = want;
			}
			if (what) {
				printf("MISMATCH at gpa %#" PRIx64
				       " (word %u) against the %s: expected "
				       "%#" PRIx64 ", found %#" PRIx64 "\n",
				       GPA_BASE + p * PAGE + i * 8, i, what,
				       exp, d[i]);
				return 1;
			}
		}
	}
	return 0;
}

/* The destination's last word, ANSWER @v, or @r the error that came
 * instead: 0 when it accepted ('K'), else -errno with m->out->err set. */
static int answer_result(struct mig *m, int r, uint64_t v)
{
	if (r == -ENODATA)
		snprintf(m->out->err, sizeof(m->out->err),
			 "the destination closed without an answer");
	if (!r && v != 'K') {
		snprintf(m->out->err, sizeof(m->out->err),
			 "the destination refused the stream");
		r = -EPROTO;
	}
	return r;
}

/* Over a connection, wait for the destination's ANSWER.  REQUESTs that
 * crossed the END are stale: skipped. */
static int read_answer(struct mig *m)
{
	enum wire_type t;
	uint64_t v = 0;
	int r;

	do
		r = wire_get_back(m->out->fd, &t, &v, m->out->err,
				  sizeof(m->out->err));
	while (!r && t == WIRE_REQUEST);
	return answer_result(m, r, v);
}

/* The end of a pre-copy stream: the model, END, and over a connection
 * the destination's answer. */
static int send_end(struct mig *m, bool answer)
{
	int r = wire_put_model(m->out, m->gen, m->npages);

	if (!r)
		r = wire_put_end(m->out, m->total_pages);
	if (r || !answer)
		return r;
	shutdown(m->out->fd, SHUT_WR);
	return read_answer(m);
}

/*
 * Post-copy: the pages of m->bitmap (dirty since they were last sent)
 * are what the destination lacks.  It runs already; this thread pushes
 * them in order while another serves its REQUESTs (remote faults) first.
 * Each page goes once; the stream's writer is shared under a mutex.
 */
struct postcopy {
	struct mig *m;
	pthread_mutex_t lock;
	uint64_t requests, stale, pushed;
	uint8_t page[PAGE];
	int err;
};

/* Send page @i if it is still pending.  Lock held. */
static int pc_send(struct postcopy *pc, uint64_t i)
{
	struct mig *m = pc->m;
	uint64_t bit = 1ull << (i % 64);
	int r;

	if (!(m->bitmap[i / 64] & bit))
		return 1;
	m->bitmap[i / 64] &= ~bit;
	r = tdp_host_read(m->host, m->hva + i * PAGE, pc->page, PAGE);
	if (!r)
		r = wire_put_page(m->out, i, pc->page);
	if (!r)
		r = wire_flush(m->out);
	m->total_pages++;
	m->final_pages++;
	return r;
}

static void *pc_requests(void *arg)
{
	struct postcopy *pc = arg;
	struct mig *m = pc->m;

	for (;;) {
		enum wire_type t;
		uint64_t v = 0;
		int r = wire_get_back(m->out->fd, &t, &v, m->out->err,
				      sizeof(m->out->err));

		if (r || t != WIRE_REQUEST) {
			pc->err = answer_result(m, r, v);
			return NULL;
		}
		pthread_mutex_lock(&pc->lock);
		if (v < m->npages) {
			r = pc_send(pc, v);
			pc->requests += r == 0;
			pc->stale += r == 1;
			if (r < 0 && !pc->err)
				pc->err = r;
		}
		pthread_mutex_unlock(&pc->lock);
	}
}

/* @tstop: when the vCPUs were told to stop (the downtime's start) */
static int send_postcopy(struct mig *m, uint64_t tstop, uint64_t *requests)
{
	struct postcopy pc = {.m = m};
	pthread_t th;
	int r = wire_put_model(m->out, m->gen, m->npages);

	if (!r)
		r = wire_put_postcopy(m->out, m->bitmap, m->npages);
	if (r)
		return r;
	/* the destination runs from here: the downtime ends */
	m->downtime_ms = (cli_now_ns() - tstop) / 1e6;
	pthread_mutex_init(&pc.lock, NULL);
	if (pthread_create(&th, NULL, pc_requests, &pc))
		return -EAGAIN;
	for (uint64_t i = 0; !r && i < m->npages; i++) {
		pthread_mutex_lock(&pc.lock);
		r = pc_send(&pc, i);
		pc.pushed += r == 0;
		r = r < 0 ? r : 0;
		pthread_mutex_unlock(&pc.lock);
	}
	pthread_mutex_lock(&pc.lock);
	if (!r)
		r = wire_put_end(m->out, m->total_pages);
	pthread_mutex_unlock(&pc.lock);
	shutdown(m->out->fd, SHUT_WR);
	pthread_join(th, NULL);
	pthread_mutex_destroy(&pc.lock);
	*requests = pc.requests;
	return r ? r : pc.err;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tdpmmu migrate [options]\n"
		"Pre-copy live migration of a running VM, driven by the "
		"dirty log: into a buffer\n"
		"of this process, or to another process (--to / --listen; "
		"docs/migration.md).\n"
		"  --mem SIZE        guest memory, a multiple of 2M "
		"(default 1G)\n"
		"  --vcpus N         vCPU writer threads, 1..%d (default 2)\n"
		"  --rate PCT        %% of guest memory the vCPUs write per "
		"second, 0..1000 (default 25)\n"
		"  --dbit            dirty logging by Dirty bits "
		"(TDP_VM_DIRTY_DBIT)\n"
		"  --pml             with --dbit: Dirty bits logged by the "
		"hardware (TDP_VM_PML)\n"
		"  --ring            dirty rings of 4096 entries per vCPU "
		"(cfg.dirty_ring_size;\n"
		"                    with --dbit: fed by PML); not with "
		"--manual\n"
		"  --manual          manual protect: get, clear, then copy "
		"(TDP_VM_MANUAL_PROTECT)\n"
		"  --engine NAME     tdp (default) or legacy "
		"(TDP_ENGINE_LEGACY)\n"
		"  --host BACKEND    pool (default) or process "
		"(TDP_HOST_PROCESS; also with --listen)\n"
		"  --max-iters N     at most N copy rounds before "
		"stop-and-copy "
		"(default 30)\n"
		"  --threshold PAGES stop-and-copy once a round reports fewer "
		"pages (default: 1%% of the pages, at least 256)\n"
		"  --bandwidth SIZE  copy at most SIZE bytes per second, e.g. "
		"64M (default 0: unlimited)\n"
		"  --seed N          random seed (default 1)\n"
		"  --json            print one JSON object\n"
		"  --to HOST:PORT    send the VM to a destination "
		"(tdpmmu migrate --listen)\n"
		"  --record FILE     write the stream to FILE instead\n"
		"  --listen HOST:PORT  be the destination: receive one VM, "
		"verify it, run it on\n"
		"                    (port 0: any free port; --port-file "
		"FILE writes the port)\n"
		"  --replay FILE     be the destination of a recorded stream\n"
		"  --postcopy N      with --to: after N rounds start the "
		"destination at once;\n"
		"                    it fetches the pages it lacks on first "
		"touch\n"
		"  --fuzz FILE       check that --iterations mutations of a "
		"recorded stream\n"
		"                    are all refused (default 200)\n"
		"Exit status: 0 verified, 1 failure or mismatch, 2 usage "
		"error.\n",
		MAX_VCPUS);
}

int mig_setup(struct mig *m)
{
	struct tdp_host_config hc = {.mem_bytes = m->mem + (1ull << 30),
				     .backend = m->backend};
	struct tdp_vm_config vc = {
		.max_vcpus = m->vcpus,
		.engine = m->engine,
		.flags = (m->dbit ? TDP_VM_DIRTY_DBIT : 0) |
			 (m->pml ? TDP_VM_PML : 0) |
			 (m->manual ? TDP_VM_MANUAL_PROTECT : 0),
		.dirty_ring_size = m->ring ? 4096 : 0};
	int r;

	m->npages = m->mem / PAGE;
	m->nwords = (m->npages + 63) / 64;
	m->gen = calloc(m->npages, sizeof(*m->gen));
	m->bitmap = calloc(m->nwords, sizeof(*m->bitmap));
	m->sent = calloc(m->max_iters + 1, sizeof(*m->sent));
	if (m->remote)
		m->scratch = malloc(CHUNK);
	else
		m->dst = malloc(m->mem);
	if (!m->gen || !m->bitmap || !m->sent || !(m->dst || m->scratch))
		return -ENOMEM;
	r = tdp_host_create(&hc, &m->host);
	if (!r)
		r = tdp_host_mmap(m->host, m->mem,
				  TDP_PROT_READ | TDP_PROT_WRITE, TDP_HUGE_2M,
				  0, &m->hva);
	if (!r)
		r = tdp_vm_create(m->host, &vc, &m->vm);
	if (!r) {
		struct tdp_memslot s = {.slot = 0,
					.gpa = GPA_BASE,
					.size = m->mem,
					.hva = m->hva};
		r = tdp_vm_set_memslot(m->vm, &s);
	}
	for (unsigned i = 0; !r && i < m->vcpus; i++)
		r = tdp_vcpu_create(m->vm, i, &m->vcpu[i]);
	return r;
}

void mig_teardown(struct mig *m)
{
	for (unsigned i = 0; i < m->vcpus; i++)
		tdp_vcpu_destroy(m->vcpu[i]);
	tdp_vm_destroy(m->vm);
	tdp_host_destroy(m->host);
	free(m->gen);
	free(m->bitmap);
	free(m->sent);
	free(m->dst);
	free(m->scratch);
}

static int set_logging(struct mig *m, bool on)
{
	struct tdp_memslot s = {.slot = 0,
				.gpa = GPA_BASE,
				.size = m->mem,
				.hva = m->hva,
				.flags = on ? TDP_MEM_LOG_DIRTY : 0};

	return tdp_vm_set_memslot(m->vm, &s);
}

int mig_run_threads(struct mig *m, void *(*fn)(void *), struct writer *w,
		       pthread_t *th)
{
	for (unsigned i = 0; i < m->vcpus; i++) {
		w[i] = (struct writer){.m = m, .id = i};
		if (pthread_create(&th[i], NULL, fn, &w[i])) {
			atomic_store(&m->stop, true);
			while (i--)
				pthread_join(th[i], NULL);
			return -EAGAIN;
		}
	}
	return 0;
}

int mig_join_threads(struct mig *m, struct writer *w, pthread_t *th,
			uint64_t *writes)
{
	int err = 0;

	for (unsigned i = 0; i < m->vcpus; i++) {
		pthread_join(th[i], NULL);
		if (w[i].err && !err)
			err = w[i].err;
		if (writes)
			*writes += w[i].writes;
	}
	return err;
}

static void print_json(const struct mig *m, const struct tdp_stats *st,
		       uint64_t writes, bool verified, int audit)
{
	printf("{\"mem_bytes\": %" PRIu64 ", \"vcpus\": %u, \"rate_pct\": %u, "
	       "\"engine\": \"%s\", "
	       "\"mode\": \"%s\", \"threshold\": %" PRIu64
	       ", \"max_iters\": %" PRIu64 ", \"bulk_pages\": %" PRIu64
	       ", \"bulk_s\": %.3f, \"iterations\": %" PRIu64
	       ", \"pages_per_iter\": [",
	       m->mem, m->vcpus, m->rate,
	       m->engine == TDP_ENGINE_LEGACY ? "legacy" : "tdp", mode_name(m),
	       m->threshold, m->max_iters, m->bulk_pages, m->bulk_s, m->rounds);
	for (uint64_t i = 0; i < m->rounds; i++)
		printf("%s%" PRIu64, i ? ", " : "", m->sent[i]);
	printf("], \"converged\": %s, \"final_pages\": %" PRIu64
	       ", \"total_pages_sent\": %" PRIu64 ", \"downtime_ms\": %.3f"
	       ", \"total_s\": %.3f, \"guest_writes\": %" PRIu64
	       ", \"eager_splits\": %" PRIu64 ", \"pf_fast\": %" PRIu64
	       ", \"dirty_harvests\": %" PRIu64 ", \"huge_recovered\": %" PRIu64
	       ", \"audit_problems\": %d, \"verified\": %s}\n",
	       m->converged ? "true" : "false", m->final_pages, m->total_pages,
	       m->downtime_ms, m->total_s, writes, st->eager_splits,
	       st->pf_fast, st->dirty_harvests, st->huge_recovered, audit,
	       verified ? "true" : "false");
}

int cmd_migrate(int argc, char **argv)
{
	static const struct option opts[] = {
		{"mem", required_argument, NULL, 'm'},
		{"vcpus", required_argument, NULL, 'v'},
		{"rate", required_argument, NULL, 'r'},
		{"dbit", no_argument, NULL, 'd'},
		{"manual", no_argument, NULL, 'M'},
		{"pml", no_argument, NULL, 'p'},
		{"ring", no_argument, NULL, 'g'},
		{"engine", required_argument, NULL, 'e'},
		{"max-iters", required_argument, NULL, 'i'},
		{"threshold", required_argument, NULL, 't'},
		{"seed", required_argument, NULL, 's'},
		{"bandwidth", required_argument, NULL, 'b'},
		{"json", no_argument, NULL, 'j'},
		{"to", required_argument, NULL, 'T'},
		{"record", required_argument, NULL, 'R'},
		{"listen", required_argument, NULL, 'L'},
		{"port-file", required_argument, NULL, 'P'},
		{"replay", required_argument, NULL, 'Y'},
		{"fuzz", required_argument, NULL, 'F'},
		{"iterations", required_argument, NULL, 'I'},
		{"postcopy", required_argument, NULL, 'C'},
		{"host", required_argument, NULL, 'H'},
		{"help", no_argument, NULL, 'h'},
		{0}};
	const char *to = NULL, *record = NULL, *listen_addr = NULL,
		   *port_file = NULL, *replay = NULL, *fuzz = NULL;
	uint64_t iterations = 200, postcopy = 0, requests = 0;
	bool use_postcopy = false;
	struct wire *out = NULL;
	struct mig m = {.mem = 1ull << 30,
			.vcpus = 2,
			.rate = 25,
			.max_iters = 30,
			.seed = 1};
	struct writer w[MAX_VCPUS];
	pthread_t th[MAX_VCPUS];
	struct tdp_stats st;
	uint64_t v, t0, tstop, writes = 0, threshold = 0;
	bool have_threshold = false;
	char report[1024];
	int c, r, audit, bad;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (cli_parse_size_in(optarg, 2ull << 20, 256ull << 30,
					      &m.mem)) {
				fprintf(stderr,
					"migrate: bad --mem '%s' (a "
					"multiple of 2M, at most "
					"256G)\n",
					optarg);
				return 2;
			}
			break;
		case 'v':
			if (cli_parse_u64(optarg, 0, MAX_VCPUS, &v) || !v) {
				fprintf(stderr,
					"migrate: bad --vcpus '%s' "
					"(1..%d)\n",
					optarg, MAX_VCPUS);
				return 2;
			}
			m.vcpus = (unsigned)v;
			break;
		case 'r':
			if (cli_parse_u64(optarg, 0, 1000, &v)) {
				fprintf(stderr,
					"migrate: bad --rate '%s' "
					"(0..1000)\n",
					optarg);
				return 2;
			}
			m.rate = (unsigned)v;
			break;
		case 'd':
			m.dbit = true;
			break;
		case 'M':
			m.manual = true;
			break;
		case 'p':
			m.pml = true;
			break;
		case 'g':
			m.ring = true;
			break;
		case 'e':
			if (cli_parse_engine(optarg, &m.engine)) {
				fprintf(stderr,
					"migrate: bad --engine '%s' "
					"(tdp or legacy)\n",
					optarg);
				return 2;
			}
			break;
		case 'i':
			if (cli_parse_u64(optarg, 0, 100000, &m.max_iters) ||
			    !m.max_iters) {
				fprintf(stderr,
					"migrate: bad --max-iters '%s' "
					"(1..100000)\n",
					optarg);
				return 2;
			}
			break;
		case 't':
			if (cli_parse_u64(optarg, 0, UINT64_MAX, &threshold)) {
				fprintf(stderr,
					"migrate: bad --threshold "
					"'%s'\n",
					optarg);
				return 2;
			}
			have_threshold = true;
			break;
		case 's':
			if (cli_parse_u64(optarg, 0, UINT64_MAX, &m.seed)) {
				fprintf(stderr, "migrate: bad --seed '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'b':
			if (cli_parse_size(optarg, &m.bandwidth)) {
				fprintf(stderr,
					"migrate: bad --bandwidth "
					"'%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'j':
			m.json = true;
			break;
		case 'T':
			to = optarg;
			break;
		case 'R':
			record = optarg;
			break;
		case 'L':
			listen_addr = optarg;
			break;
		case 'P':
			port_file = optarg;
			break;
		case 'Y':
			replay = optarg;
			break;
		case 'F':
			fuzz = optarg;
			break;
		case 'I':
			if (cli_parse_u64(optarg, 0, 1000000, &iterations) ||
			    !iterations) {
				fprintf(stderr,
					"migrate: bad --iterations '%s' "
					"(1..1000000)\n",
					optarg);
				return 2;
			}
			break;
		case 'H':
			if (cli_parse_host(optarg, &m.backend)) {
				fprintf(stderr,
					"migrate: bad --host '%s' (pool or "
					"process)\n",
					optarg);
				return 2;
			}
			break;
		case 'C':
			if (cli_parse_u64(optarg, 0, 100000, &postcopy)) {
				fprintf(stderr,
					"migrate: bad --postcopy '%s' "
					"(0..100000)\n",
					optarg);
				return 2;
			}
			use_postcopy = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "migrate: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!!to + !!record + !!listen_addr + !!replay + !!fuzz > 1) {
		fprintf(stderr, "migrate: --to, --record, --listen, --replay "
				"and --fuzz exclude each other\n");
		return 2;
	}
	if (m.pml && !m.dbit) {
		fprintf(stderr, "migrate: --pml needs --dbit\n");
		return 2;
	}
	if (m.ring && m.manual) {
		fprintf(stderr, "migrate: --ring and --manual exclude each "
				"other (the ring has no manual protect)\n");
		return 2;
	}
	if (m.ring && m.dbit)
		m.pml = true; /* a ring takes Dirty bits from PML only */
	if (use_postcopy && !to) {
		fprintf(stderr, "migrate: --postcopy needs --to\n");
		return 2;
	}
	if (listen_addr)
		return migrate_listen(listen_addr, port_file, m.backend);
	if (replay)
		return migrate_replay(replay);
	if (fuzz)
		return migrate_fuzz(fuzz, iterations, m.seed);
	if (to || record) {
		int fd = to ? mig_connect(to)
			    : open(record, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
				   0644);

		if (fd < 0) {
			fprintf(stderr, "migrate: %s: %s\n", to ? to : record,
				strerror(to ? -fd : errno));
			return 1;
		}
		out = malloc(sizeof(*out));
		if (!out) {
			close(fd);
			return 1;
		}
		wire_init_fd(out, fd);
		m.out = out;
		m.remote = true;
	}
	m.threshold = have_threshold		 ? threshold
		      : m.mem / PAGE / 100 > 256 ? m.mem / PAGE / 100
						 : 256;

	r = mig_setup(&m);
	if (r) {
		fprintf(stderr, "migrate: setup failed: %s\n", strerror(-r));
		mig_teardown(&m);
		return 1;
	}
	if (!m.json) {
		char bw[32] = "unlimited";

		if (m.bandwidth)
			snprintf(bw, sizeof(bw), "%.1f MiB/s",
				 m.bandwidth / 1048576.0);
		printf("tdpmmu migrate: %" PRIu64 " MiB, %u vCPUs writing "
		       "%u%% of memory per second, %s dirty logging, "
		       "threshold %" PRIu64 " pages, at most %" PRIu64
		       " rounds, copy bandwidth %s\n",
		       m.mem >> 20, m.vcpus, m.rate, mode_name(&m), m.threshold,
		       m.max_iters, bw);
	}

	/* populate through the guest: 2 MiB leaves */
	r = mig_run_threads(&m, populate_thread, w, th);
	if (!r)
		r = mig_join_threads(&m, w, th, NULL);
	if (r) {
		fprintf(stderr, "migrate: populate failed: %s\n", strerror(-r));
		mig_teardown(&m);
		return 1;
	}

	if (m.out) {
		struct wire_hello h = {.npages = m.npages,
				       .seed = m.seed,
				       .vcpus = m.vcpus,
				       .rate = m.rate};

		r = wire_put_hello(m.out, &h);
		if (r) {
			fprintf(stderr, "migrate: %s\n", m.out->err);
			mig_teardown(&m);
			return 1;
		}
	}
	/* migration starts: logging on, vCPUs running */
	t0 = cli_now_ns();
	m.copy_t0 = t0;
	r = set_logging(&m, true);
	if (r) {
		fprintf(stderr, "migrate: enabling dirty logging failed: %s\n",
			strerror(-r));
		mig_teardown(&m);
		return 1;
	}
	r = mig_run_threads(&m, mig_writer_thread, w, th);
	if (r) {
		fprintf(stderr, "migrate: cannot start vCPU threads\n");
		mig_teardown(&m);
		return 1;
	}
	r = bulk_copy(&m);
	if (!r && m.out)
		r = wire_put_round(m.out, 1, m.bulk_pages);
	m.bulk_s = (cli_now_ns() - t0) / 1e9;
	m.total_pages = m.bulk_pages;
	if (!r && !m.json)
		printf("bulk copy: %" PRIu64 " pages in %.3f s\n", m.bulk_pages,
		       m.bulk_s);
	while (!r && m.rounds < m.max_iters &&
	       !(use_postcopy && m.rounds == postcopy)) {
		uint64_t t1 = cli_now_ns();
		int64_t n;

		r = harvest(&m);
		if (r)
			break;
		n = copy_dirty(&m);
		if (n < 0) {
			r = (int)n;
			break;
		}
		m.sent[m.rounds++] = (uint64_t)n;
		m.total_pages += (uint64_t)n;
		/* on the wire the bulk copy is round 1 */
		if (m.out) {
			r = wire_put_round(m.out, m.rounds + 1, (uint64_t)n);
			if (r)
				break;
		}
		if (!m.json)
			printf("round %2" PRIu64 ": %7" PRId64
			       " dirty pages copied in %.3f s\n",
			       m.rounds, n, (cli_now_ns() - t1) / 1e9);
		if ((uint64_t)n < m.threshold) {
			m.converged = true;
			break;
		}
	}

	/* stop-and-copy */
	tstop = cli_now_ns();
	atomic_store(&m.stop, true);
	c = mig_join_threads(&m, w, th, &writes);
	if (!r)
		r = c;
	if (!r)
		r = harvest(&m);
	if (!r && use_postcopy) {
		/* the destination starts now and faults in the rest */
		r = send_postcopy(&m, tstop, &requests);
	} else {
		if (!r) {
			int64_t n = copy_dirty(&m);

			if (n < 0)
				r = (int)n;
			else
				m.final_pages = (uint64_t)n;
		}
		m.total_pages += m.final_pages;
		if (!r && m.out)
			r = send_end(&m, to != NULL);
		m.downtime_ms = (cli_now_ns() - tstop) / 1e6;
	}
	m.total_s = (cli_now_ns() - t0) / 1e9;
	if (r) {
		fprintf(stderr, "migrate: failed: %s\n",
			m.out && m.out->err[0] ? m.out->err : strerror(-r));
		if (m.out)
			close(m.out->fd);
		free(out);
		mig_teardown(&m);
		return 1;
	}
	if (!m.json) {
		if (!use_postcopy)
			printf("%s after %" PRIu64 " round(s)\n",
			       m.converged ? "converged" : "did not converge",
			       m.rounds);
		if (use_postcopy)
			printf("post-copy after %" PRIu64 " round(s): "
			       "downtime %.3f ms, then %" PRIu64
			       " pages sent while the destination ran (%" PRIu64
			       " on its request)\n",
			       postcopy, m.downtime_ms, m.final_pages,
			       requests);
		else
			printf("stop-and-copy: %" PRIu64
			       " pages, downtime %.3f ms\n",
			       m.final_pages, m.downtime_ms);
		printf("total: %" PRIu64 " pages sent (%.2f x guest memory), "
		       "%" PRIu64 " guest page writes, %.3f s\n",
		       m.total_pages, (double)m.total_pages / m.npages, writes,
		       m.total_s);
	}

	if (m.out) {
		if (!m.json)
			printf("stream: %" PRIu64 " bytes%s\n", m.out->bytes,
			       to ? ", accepted by the destination" : "");
		close(m.out->fd);
		free(out);
		m.out = NULL;
	}
	bad = mig_verify(&m);
	/* migration over: logging off (huge pages come back) */
	r = set_logging(&m, false);
	if (r) {
		fprintf(stderr, "migrate: disabling dirty logging failed: %s\n",
			strerror(-r));
		bad = 1;
	}
	tdp_vm_get_stats(m.vm, &st);
	audit = tdp_vm_audit(m.vm, report, sizeof(report));
	if (audit)
		fprintf(stderr, "migrate: audit: %s\n",
			audit < 0 ? strerror(-audit) : report);
	if (m.json) {
		print_json(&m, &st, writes, !bad, audit);
	} else {
		printf("MMU: %" PRIu64 " huge leaves split eagerly, %" PRIu64
		       " fast write faults, %" PRIu64 " harvests, %" PRIu64
		       " huge leaves recovered with %" PRIu64 " flushes, "
		       "audit %s\n",
		       st.eager_splits, st.pf_fast, st.dirty_harvests,
		       st.huge_recovered, st.recover_flushes,
		       audit ? "FAILED" : "clean");
		if (m.ring)
			printf("rings: %" PRIu64 " entries pushed, %" PRIu64
			       " collected and reset, %" PRIu64
			       " overflows; PML logged %" PRIu64 "\n",
			       st.ring_pushes, m.ring_entries,
			       st.ring_overflows, st.pml_logged);
		if (!bad && m.remote)
			printf("verified: all %" PRIu64 " pages of the "
			       "source match the writers' model\n",
			       m.npages);
		else if (!bad)
			printf("verified: all %" PRIu64 " pages of the "
			       "destination match the source and the "
			       "writers' model\n",
			       m.npages);
		else
			printf("FAILED: the destination does not match\n");
	}
	mig_teardown(&m);
	return bad || audit ? 1 : 0;
}
