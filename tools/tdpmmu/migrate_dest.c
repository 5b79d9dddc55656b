/* SPDX-License-Identifier: MIT */
/*
 * migrate_dest.c - the destination of a migration between processes
 * (`tdpmmu migrate --listen`, `--replay`), the source's connection, and
 * the stream fuzz test (`--fuzz`).
 *
 * The destination builds its VM when HELLO arrives (the same machine as
 * the source's: migrate.h), writes each PAGE into guest memory through
 * tdp_host_write as it comes, and takes the writers' model from MODEL.
 * It accepts the VM only when the stream ended well (migrate_wire.c
 * checks every rule and the checksum) and every page matches the model;
 * then its vCPUs run the same workload on for a while and every page is
 * verified again.  Over a connection it answers 'K' (accepted) or 'X'.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "migrate.h"

/* The largest VM a destination takes (a HELLO asking more is refused). */
#define DEST_MAX_MEM (64ull << 30)
/* How long the destination's vCPUs run on after the migration. */
#define RUN_ON_MS 200

struct dest {
	struct mig m;
	bool ready;	   /* m is set up */
	uint64_t max_mem;  /* refuse larger VMs */
	uint64_t pages, rounds;
	char err[160];	   /* a refusal of ours (else the stream's) */
};

static int d_refuse(struct dest *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int d_refuse(struct dest *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->err, sizeof(d->err), fmt, ap);
	va_end(ap);
	return -EPROTO;
}

static int d_hello(void *arg, const struct wire_hello *h)
{
	struct dest *d = arg;
	int r;

	if (h->npages * PAGE > d->max_mem)
		return d_refuse(d,
				"HELLO: a VM of %" PRIu64
				" bytes, this destination takes %" PRIu64,
				h->npages * PAGE, d->max_mem);
	if (d->ready && d->m.npages == h->npages) /* --fuzz: keep it */
		return 0;
	if (d->ready)
		mig_teardown(&d->m);
	d->m = (struct mig){.mem = h->npages * PAGE,
			    .seed = h->seed,
			    .vcpus = h->vcpus,
			    .rate = h->rate,
			    .max_iters = 1,
			    .remote = true};
	d->ready = true;
	r = mig_setup(&d->m);
	if (r)
		return d_refuse(d, "cannot build the VM: %s", strerror(-r));
	return 0;
}

static int d_page(void *arg, uint64_t index, const uint8_t *page)
{
	struct dest *d = arg;
	int r = tdp_host_write(d->m.host, d->m.hva + index * PAGE, page, PAGE);

	d->pages++;
	if (r)
		return d_refuse(d, "writing page %" PRIu64 ": %s", index,
				strerror(-r));
	return 0;
}

static int d_round(void *arg, uint64_t round, uint64_t pages)
{
	struct dest *d = arg;

	(void)pages;
	d->rounds = round;
	return 0;
}

static int d_model(void *arg, const uint32_t *gen, uint64_t npages)
{
	struct dest *d = arg;

	memcpy(d->m.gen, gen, npages * sizeof(*gen));
	return 0;
}

/* Receive one stream into @d: 0 accepted (the stream is sound and every
 * page matches the model), else refused with the reason printed. */
static int receive(struct dest *d, struct wire *w, bool quiet)
{
	const struct wire_sink sink = {.arg = d,
				       .hello = d_hello,
				       .page = d_page,
				       .round = d_round,
				       .model = d_model};
	int r;

	d->err[0] = 0;
	d->pages = d->rounds = 0;
	r = wire_recv(w, &sink);
	if (r) {
		if (!quiet)
			fprintf(stderr, "migrate: stream refused: %s\n",
				d->err[0] ? d->err : w->err);
		return 1;
	}
	if (mig_verify(&d->m)) {
		fprintf(stderr, "migrate: stream refused: the memory does "
				"not match the writers' model\n");
		return 1;
	}
	return 0;
}

/* The VM runs on: the vCPUs write for RUN_ON_MS, then every page is
 * verified against the model again. */
static int run_on(struct dest *d, uint64_t *writes)
{
	struct writer w[MAX_VCPUS];
	pthread_t th[MAX_VCPUS];
	struct timespec ts = {0, RUN_ON_MS * 1000000l};
	int r = mig_run_threads(&d->m, mig_writer_thread, w, th);

	if (r)
		return r;
	nanosleep(&ts, NULL);
	atomic_store(&d->m.stop, true);
	r = mig_join_threads(&d->m, w, th, writes);
	return r ? r : mig_verify(&d->m) ? -EIO : 0;
}

/* Receive, run on, report.  Returns the exit status. */
static int destination(struct wire *w, int answer_fd)
{
	struct dest d = {.max_mem = DEST_MAX_MEM};
	uint64_t t0 = cli_now_ns(), writes = 0;
	char report[512];
	double recv_s;
	int bad = receive(&d, w, false), audit;

	recv_s = (cli_now_ns() - t0) / 1e9;
	if (answer_fd >= 0) {
		char c = bad ? 'X' : 'K';

		if (write(answer_fd, &c, 1) != 1)
			bad = 1;
	}
	if (bad) {
		if (d.ready)
			mig_teardown(&d.m);
		return 1;
	}
	printf("destination: received %" PRIu64 " MiB VM in %.3f s: %" PRIu64
	       " pages in %" PRIu64 " rounds + stop-and-copy, %" PRIu64
	       " bytes; every page matches the writers' model\n",
	       d.m.mem >> 20, recv_s, d.pages, d.rounds, w->bytes);
	bad = run_on(&d, &writes) != 0;
	audit = tdp_vm_audit(d.m.vm, report, sizeof(report));
	if (audit)
		fprintf(stderr, "migrate: audit: %s\n",
			audit < 0 ? strerror(-audit) : report);
	if (!bad && !audit)
		printf("verified: the destination's vCPUs ran on (%" PRIu64
		       " guest page writes) and all %" PRIu64
		       " pages match the writers' model\n",
		       writes, d.m.npages);
	else
		printf("FAILED: the destination does not match\n");
	mig_teardown(&d.m);
	return bad || audit ? 1 : 0;
}

int mig_parse_addr(const char *addr, char *host, char *port)
{
	const char *c = strrchr(addr, ':');

	if (!c || c == addr || (size_t)(c - addr) >= 256 || !c[1] ||
	    strlen(c + 1) > 5)
		return -EINVAL;
	memcpy(host, addr, (size_t)(c - addr));
	host[c - addr] = 0;
	strcpy(port, c + 1);
	return 0;
}

static int resolve(const char *addr, bool passive, struct addrinfo **res)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = passive ? AI_PASSIVE : 0};
	char host[256], port[8];

	if (mig_parse_addr(addr, host, port) ||
	    getaddrinfo(host, port, &hints, res))
		return -EINVAL;
	return 0;
}

int mig_connect(const char *addr)
{
	struct addrinfo *res, *a;
	int fd = -ECONNREFUSED;

	if (resolve(addr, false, &res))
		return -EINVAL;
	for (a = res; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC,
			    a->ai_protocol);
		if (fd < 0)
			continue;
		if (!connect(fd, a->ai_addr, a->ai_addrlen))
			break;
		close(fd);
		fd = -errno;
	}
	freeaddrinfo(res);
	return fd;
}

/* The port the socket is bound to, written to @file (whole, by rename). */
static int write_port(int fd, const char *file, unsigned *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char tmp[4096];
	FILE *f;

	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return -errno;
	*port = ss.ss_family == AF_INET6
			? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
			: ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (!file)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "%u\n", *port);
	if (fclose(f) || rename(tmp, file))
		return -errno;
	return 0;
}

int migrate_listen(const char *addr, const char *port_file)
{
	struct addrinfo *res;
	struct wire *w;
	unsigned port = 0;
	int one = 1, lfd, cfd, rc;

	if (resolve(addr, true, &res)) {
		fprintf(stderr, "migrate: bad --listen '%s' (HOST:PORT)\n",
			addr);
		return 2;
	}
	lfd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC,
		     res->ai_protocol);
	if (lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, res->ai_addr, res->ai_addrlen) || listen(lfd, 1) ||
	    write_port(lfd, port_file, &port)) {
		fprintf(stderr, "migrate: cannot listen on %s: %s\n", addr,
			strerror(errno));
		freeaddrinfo(res);
		if (lfd >= 0)
			close(lfd);
		return 1;
	}
	freeaddrinfo(res);
	printf("destination: listening on port %u\n", port);
	fflush(stdout);
	cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	close(lfd);
	w = malloc(sizeof(*w));
	if (cfd < 0 || !w) {
		fprintf(stderr, "migrate: accept: %s\n", strerror(errno));
		free(w);
		return 1;
	}
	wire_init_fd(w, cfd);
	rc = destination(w, cfd);
	close(cfd);
	free(w);
	return rc;
}

static int read_file(const char *file, uint8_t **buf, size_t *len)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	struct stat st;
	size_t off = 0;

	if (fd < 0 || fstat(fd, &st)) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	*len = (size_t)st.st_size;
	*buf = malloc(*len + 1);
	while (*buf && off < *len) {
		ssize_t n = read(fd, *buf + off, *len - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	if (!*buf || off != *len) {
		free(*buf);
		return -EIO;
	}
	return 0;
}

int migrate_replay(const char *file)
{
	struct wire *w = malloc(sizeof(*w));
	uint8_t *buf = NULL;
	size_t len;
	int r = w ? read_file(file, &buf, &len) : -ENOMEM, rc;

	if (r) {
		fprintf(stderr, "migrate: %s: %s\n", file, strerror(-r));
		free(w);
		return 1;
	}
	wire_init_buf(w, buf, len);
	rc = destination(w, -1);
	free(buf);
	free(w);
	return rc;
}

/* ---- the fuzz test ---- */

enum mutation { FLIP, TRUNCATE, HEADER, DELETE, INSERT, NR_MUTATIONS };
static const char *const mutation_name[] = {
	"bit flips", "truncation", "header field", "deletion", "insertion"};

/* Offsets of the message headers of a sound stream. */
static size_t *header_offsets(const uint8_t *buf, size_t len, size_t *n)
{
	size_t *o = NULL, cap = 0, off = 0;

	*n = 0;
	while (off + 8 <= len) {
		uint32_t l;

		if (*n == cap) {
			size_t *p = realloc(o, (cap = cap ? 2 * cap : 1024) *
						       sizeof(*o));
			if (!p) {
				free(o);
				return NULL;
			}
			o = p;
		}
		o[(*n)++] = off;
		memcpy(&l, buf + off + 4, 4);
		off += 8 + l;
	}
	return o;
}

/* A changed copy of @buf (always different from it) in @out; its length. */
static size_t mutate(const uint8_t *buf, size_t len, const size_t *hdr,
		     size_t nhdr, enum mutation kind, uint64_t *rng,
		     uint8_t *out)
{
	size_t at = (size_t)(cli_rand(rng) % len), n;

	memcpy(out, buf, len);
	switch (kind) {
	case FLIP:
		n = 1 + cli_rand(rng) % 4;
		for (size_t i = 0; i < n; i++)
			out[(at + i) % len] ^=
				(uint8_t)(1u << (cli_rand(rng) % 8));
		return len;
	case TRUNCATE:
		return at;
	case HEADER: {
		static const uint32_t edge[] = {0, 1, 6, 7, 16, 39, 41, 4103,
						4105, 0x7fffffff, 0xffffffff};
		size_t h = hdr[cli_rand(rng) % nhdr] +
			   4 * (cli_rand(rng) % 2);
		uint32_t old, v;

		memcpy(&old, out + h, 4);
		do
			v = cli_rand(rng) % 2
				    ? edge[cli_rand(rng) %
					   (sizeof(edge) / sizeof(edge[0]))]
				    : (uint32_t)cli_rand(rng);
		while (v == old);
		memcpy(out + h, &v, 4);
		return len;
	}
	case DELETE:
		n = 1 + cli_rand(rng) % (len - at);
		memmove(out + at, out + at + n, len - at - n);
		return len - n;
	default: /* INSERT: a copy of n bytes from elsewhere, at @at */
		n = 1 + cli_rand(rng) % 4096;
		memmove(out + at + n, buf + at, len - at);
		for (size_t i = 0; i < n; i++)
			out[at + i] = buf[(at * 7 + i) % len] ^ (uint8_t)(i + 1);
		return len + n;
	}
}

int migrate_fuzz(const char *file, uint64_t iterations, uint64_t seed)
{
	struct dest d = {.max_mem = 1ull << 30};
	uint64_t refused[NR_MUTATIONS] = {0}, by_checksum = 0;
	uint64_t rng = seed * 0x9e3779b97f4a7c15ull + 1;
	struct wire *w = malloc(sizeof(*w));
	uint8_t *buf = NULL, *copy = NULL;
	size_t len, nhdr, *hdr = NULL;
	int r = w ? read_file(file, &buf, &len) : -ENOMEM, rc = 1;

	if (r) {
		fprintf(stderr, "migrate: %s: %s\n", file, strerror(-r));
		goto out;
	}
	hdr = header_offsets(buf, len, &nhdr);
	copy = malloc(len + 4096);
	if (!hdr || !nhdr || !copy) {
		fprintf(stderr, "migrate: %s: not a stream\n", file);
		goto out;
	}
	/* the recorded stream itself is accepted */
	wire_init_buf(w, buf, len);
	if (receive(&d, w, false)) {
		fprintf(stderr, "migrate: --fuzz needs a sound stream\n");
		goto out;
	}
	for (uint64_t i = 0; i < iterations; i++) {
		enum mutation kind = (enum mutation)(i % NR_MUTATIONS);
		size_t n = mutate(buf, len, hdr, nhdr, kind, &rng, copy);

		wire_init_buf(w, copy, n);
		if (!receive(&d, w, true)) {
			fprintf(stderr,
				"migrate: FAILED: mutation %" PRIu64
				" (%s) was accepted\n",
				i, mutation_name[kind]);
			goto out;
		}
		refused[kind]++;
		by_checksum += !d.err[0] && strstr(w->err, "checksum");
	}
	printf("fuzz: all %" PRIu64 " corrupt streams refused (", iterations);
	for (int k = 0; k < NR_MUTATIONS; k++)
		printf("%s%s %" PRIu64, k ? ", " : "", mutation_name[k],
		       refused[k]);
	printf("); %" PRIu64 " caught only by the checksum, the others by "
	       "the format's rules\n",
	       by_checksum);
	rc = 0;
out:
	if (d.ready)
		mig_teardown(&d.m);
	free(hdr);
	free(copy);
	free(buf);
	free(w);
	return rc;
}
