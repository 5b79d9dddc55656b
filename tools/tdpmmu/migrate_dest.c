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
	unsigned backend;  /* TDP_HOST_* of the VM it builds */
	uint64_t pages, rounds;
	char err[160];	   /* a refusal of ours (else the stream's) */
	int fd;		   /* the connection (REQUESTs, ANSWER); -1 none */
	/* post-copy: the vCPUs run while the pages they lack arrive */
	bool post;
	bool broken;	   /* the stream failed: fills give up (-EIO) */
	pthread_mutex_t lock; /* the fields below, and writes to fd */
	pthread_cond_t arrived;
	uint8_t **have;	   /* per page: received, not yet filled in */
	uint8_t *filled;   /* per page: the host took it (fill) */
	uint8_t *asked;	   /* per page: REQUEST sent */
	uint64_t *lat_ns;  /* latency of each remote fault */
	uint64_t nlat, post_pages;
	uint64_t t_post;   /* when the vCPUs started */
	struct writer w[MAX_VCPUS];
	pthread_t th[MAX_VCPUS];
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
			    .backend = d->backend,
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
	int r;

	d->pages++;
	if (d->post) { /* kept for the fill of the missing page */
		uint8_t *copy = malloc(PAGE);

		if (!copy)
			return d_refuse(d, "no memory for page %" PRIu64,
					index);
		memcpy(copy, page, PAGE);
		pthread_mutex_lock(&d->lock);
		d->have[index] = copy;
		d->post_pages++;
		pthread_cond_broadcast(&d->arrived);
		pthread_mutex_unlock(&d->lock);
		return 0;
	}
	r = tdp_host_write(d->m.host, d->m.hva + index * PAGE, page, PAGE);
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

/* The host's fill function for a missing page (its mmap lock held): the
 * page from the stream, asked for first if it has not come yet. */
static int d_fill(void *arg, uint64_t hva, void *page)
{
	struct dest *d = arg;
	uint64_t i = (hva - d->m.hva) / PAGE, t0 = 0;
	int r = 0;

	pthread_mutex_lock(&d->lock);
	if (!d->have[i]) {
		t0 = cli_now_ns();
		if (!d->asked[i]) {
			d->asked[i] = 1;
			r = wire_put_request(d->fd, i);
		}
		while (!r && !d->have[i] && !d->broken)
			pthread_cond_wait(&d->arrived, &d->lock);
		if (!d->have[i])
			r = -EIO;
		else
			d->lat_ns[d->nlat++] = cli_now_ns() - t0;
	}
	if (!r) {
		memcpy(page, d->have[i], PAGE);
		free(d->have[i]);
		d->have[i] = NULL;
		d->filled[i] = 1;
	}
	pthread_mutex_unlock(&d->lock);
	return r;
}

/* POSTCOPY: the pages named are missing; the vCPUs start at once. */
static int d_postcopy(void *arg, const uint64_t *pending, uint64_t npages)
{
	struct dest *d = arg;
	int r = 0;

	d->have = calloc(npages, sizeof(*d->have));
	d->filled = calloc(npages, 1);
	d->asked = calloc(npages, 1);
	d->lat_ns = calloc(npages, sizeof(*d->lat_ns));
	if (!d->have || !d->filled || !d->asked || !d->lat_ns)
		return d_refuse(d, "no memory for post-copy");
	for (uint64_t p = 0; !r && p < npages;) {
		uint64_t q;

		if (!(pending[p / 64] >> (p % 64) & 1)) {
			d->filled[p++] = 1; /* present already */
			continue;
		}
		for (q = p; q < npages && (pending[q / 64] >> (q % 64) & 1);)
			q++;
		r = tdp_host_set_missing(d->m.host, d->m.hva + p * PAGE,
					 (q - p) * PAGE, d_fill, d);
		p = q;
	}
	if (r)
		return d_refuse(d, "tdp_host_set_missing: %s", strerror(-r));
	d->post = true;
	d->t_post = cli_now_ns();
	r = mig_run_threads(&d->m, mig_writer_thread, d->w, d->th);
	return r ? d_refuse(d, "cannot start the vCPUs") : 0;
}

/* Post-copy after END: the vCPUs stop (having run RUN_ON_MS at least),
 * and the pages nobody touched are filled in: every page is present. */
static int d_postcopy_finish(struct dest *d, uint64_t *writes)
{
	uint64_t due = d->t_post + RUN_ON_MS * 1000000ull, now, buf[PAGE / 8];
	int r;

	while ((now = cli_now_ns()) < due) {
		struct timespec ts = {0, (long)(due - now)};

		nanosleep(&ts, NULL);
	}
	atomic_store(&d->m.stop, true);
	r = mig_join_threads(&d->m, d->w, d->th, writes);
	for (uint64_t p = 0; !r && p < d->m.npages; p++)
		if (!d->filled[p])
			r = tdp_host_read(d->m.host, d->m.hva + p * PAGE, buf,
					  PAGE);
	return r;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void d_free_post(struct dest *d)
{
	if (d->have)
		for (uint64_t p = 0; p < d->m.npages; p++)
			free(d->have[p]);
	free(d->have);
	free(d->filled);
	free(d->asked);
	free(d->lat_ns);
}

/* Receive one stream into @d: 0 accepted (the stream is sound and every
 * page matches the model), else refused with the reason printed.  A
 * post-copy stream's vCPUs have run (and stopped) when it returns;
 * @writes counts their writes. */
static int receive(struct dest *d, struct wire *w, bool quiet,
		   uint64_t *writes)
{
	const struct wire_sink sink = {.arg = d,
				       .hello = d_hello,
				       .page = d_page,
				       .round = d_round,
				       .model = d_model,
				       .postcopy = d->fd >= 0 ? d_postcopy
							      : NULL};
	int r;

	d->err[0] = 0;
	d->pages = d->rounds = 0;
	r = wire_recv(w, &sink);
	if (d->post) {
		int f = 0;

		if (r) { /* the faults waiting for pages give up */
			pthread_mutex_lock(&d->lock);
			d->broken = true;
			pthread_cond_broadcast(&d->arrived);
			pthread_mutex_unlock(&d->lock);
		}
		f = d_postcopy_finish(d, writes);
		if (r) {
			fprintf(stderr, "migrate: stream refused: %s\n",
				d->err[0] ? d->err : w->err);
			return 1;
		}
		if (f) {
			fprintf(stderr, "migrate: post-copy: %s\n",
				strerror(-f));
			return 1;
		}
	}
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
static int destination(struct wire *w, int fd, unsigned backend)
{
	struct dest d = {.max_mem = DEST_MAX_MEM, .fd = fd, .backend = backend};
	uint64_t t0 = cli_now_ns(), writes = 0;
	char report[512];
	double recv_s;
	int bad, audit;

	pthread_mutex_init(&d.lock, NULL);
	pthread_cond_init(&d.arrived, NULL);
	bad = receive(&d, w, false, &writes);
	recv_s = (cli_now_ns() - t0) / 1e9;
	if (fd >= 0) {
		pthread_mutex_lock(&d.lock);
		if (wire_put_answer(fd, !bad))
			bad = 1;
		pthread_mutex_unlock(&d.lock);
	}
	if (bad)
		goto out;
	printf("destination: received %" PRIu64 " MiB VM in %.3f s: %" PRIu64
	       " pages in %" PRIu64 " rounds + %s, %" PRIu64
	       " bytes; every page matches the writers' model\n",
	       d.m.mem >> 20, recv_s, d.pages, d.rounds,
	       d.post ? "post-copy" : "stop-and-copy", w->bytes);
	if (d.post) {
		uint64_t n = d.nlat;

		qsort(d.lat_ns, n, sizeof(*d.lat_ns), cmp_u64);
		printf("post-copy: the vCPUs ran from POSTCOPY on; %" PRIu64
		       " pages arrived while they ran, %" PRIu64
		       " remote faults waited for one: latency p50 %.1f us, "
		       "p99 %.1f us\n",
		       d.post_pages, n, n ? d.lat_ns[n / 2] / 1e3 : 0.0,
		       n ? d.lat_ns[(n * 99) / 100] / 1e3 : 0.0);
	} else {
		bad = run_on(&d, &writes) != 0;
	}
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
	bad = bad || audit;
out:
	d_free_post(&d);
	if (d.ready)
		mig_teardown(&d.m);
	pthread_cond_destroy(&d.arrived);
	pthread_mutex_destroy(&d.lock);
	return bad ? 1 : 0;
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

int migrate_listen(const char *addr, const char *port_file, unsigned backend)
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
	rc = destination(w, cfd, backend);
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
	rc = destination(w, -1, TDP_HOST_POOL);
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
	struct dest d = {.max_mem = 1ull << 30, .fd = -1};
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
	if (receive(&d, w, false, NULL)) {
		fprintf(stderr, "migrate: --fuzz needs a sound stream\n");
		goto out;
	}
	for (uint64_t i = 0; i < iterations; i++) {
		enum mutation kind = (enum mutation)(i % NR_MUTATIONS);
		size_t n = mutate(buf, len, hdr, nhdr, kind, &rng, copy);

		wire_init_buf(w, copy, n);
		if (!receive(&d, w, true, NULL)) {
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
