/* SPDX-License-Identifier: MIT */
/*
 * migrate_wire.c - writing and checking the migration stream
 * (migrate_wire.h has the format).  Integers are little-endian on the
 * wire; the checksum covers the bytes as sent.
 */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrate_wire.h"

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME  0x100000001b3ull

static const char wire_magic[8] = {'T', 'D', 'P', 'M', 'I', 'G', '\r', '\n'};

static void sum(struct wire *w, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		w->sum = (w->sum ^ p[i]) * FNV_PRIME;
	w->bytes += n;
}

static int fail(struct wire *w, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->err, sizeof(w->err), fmt, ap);
	va_end(ap);
	return err;
}

void wire_init_fd(struct wire *w, int fd)
{
	memset(w, 0, offsetof(struct wire, out));
	w->fd = fd;
	w->sum = FNV_OFFSET;
	w->nout = 0;
	w->err[0] = 0;
}

void wire_init_buf(struct wire *w, const void *buf, size_t len)
{
	wire_init_fd(w, -1);
	w->buf = buf;
	w->len = len;
}

/* ---- writing ---- */

int wire_flush(struct wire *w)
{
	size_t off = 0;

	while (off < w->nout) {
		ssize_t n = write(w->fd, w->out + off, w->nout - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return fail(w, -EIO, "write: %s",
				    n < 0 ? strerror(errno) : "closed");
		off += (size_t)n;
	}
	w->nout = 0;
	return 0;
}

static int put(struct wire *w, const void *p, size_t n)
{
	const uint8_t *b = p;

	sum(w, b, n);
	while (n) {
		size_t k = sizeof(w->out) - w->nout;

		if (!k) {
			int r = wire_flush(w);

			if (r)
				return r;
			continue;
		}
		if (k > n)
			k = n;
		memcpy(w->out + w->nout, b, k);
		w->nout += k;
		b += k;
		n -= k;
	}
	return 0;
}

static int put_u32(struct wire *w, uint32_t v)
{
	v = htole32(v);
	return put(w, &v, 4);
}

static int put_u64(struct wire *w, uint64_t v)
{
	v = htole64(v);
	return put(w, &v, 8);
}

static int put_header(struct wire *w, enum wire_type t, uint32_t len)
{
	int r = put_u32(w, t);

	return r ? r : put_u32(w, len);
}

int wire_put_hello(struct wire *w, const struct wire_hello *h)
{
	int r = put_header(w, WIRE_HELLO, 40);

	r = r ? r : put(w, wire_magic, sizeof(wire_magic));
	r = r ? r : put_u32(w, WIRE_VERSION);
	r = r ? r : put_u32(w, WIRE_PAGE);
	r = r ? r : put_u64(w, h->npages);
	r = r ? r : put_u64(w, h->seed);
	r = r ? r : put_u32(w, h->vcpus);
	return r ? r : put_u32(w, h->rate);
}

int wire_put_page(struct wire *w, uint64_t index, const void *page)
{
	int r = put_header(w, WIRE_PAGE_MSG, 8 + WIRE_PAGE);

	r = r ? r : put_u64(w, index);
	return r ? r : put(w, page, WIRE_PAGE);
}

int wire_put_round(struct wire *w, uint64_t round, uint64_t pages)
{
	int r = put_header(w, WIRE_ROUND, 16);

	r = r ? r : put_u64(w, round);
	return r ? r : put_u64(w, pages);
}

int wire_put_model(struct wire *w, const uint32_t *gen, uint64_t npages)
{
	int r = put_header(w, WIRE_MODEL, (uint32_t)(4 * npages));

	for (uint64_t i = 0; !r && i < npages; i++)
		r = put_u32(w, __atomic_load_n(&gen[i], __ATOMIC_ACQUIRE));
	return r;
}

int wire_put_end(struct wire *w, uint64_t pages_sent)
{
	uint64_t s = w->sum;
	int r = put_header(w, WIRE_END, 16);

	r = r ? r : put_u64(w, pages_sent);
	r = r ? r : put_u64(w, s);
	return r ? r : wire_flush(w);
}

/* ---- reading ---- */

/* Exactly @n bytes, or -EPROTO at the end of the stream (@what is cut). */
static int get(struct wire *w, void *p, size_t n, const char *what)
{
	uint8_t *b = p;
	size_t want = n;

	if (w->fd < 0) {
		if (w->len - w->pos < n)
			return fail(w, -EPROTO,
				    "stream cut short in %s (byte %llu)", what,
				    (unsigned long long)w->bytes);
		memcpy(b, w->buf + w->pos, n);
		w->pos += n;
	} else {
		while (n) {
			ssize_t k = read(w->fd, b, n);

			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0)
				return fail(w, -EIO, "read: %s",
					    strerror(errno));
			if (!k)
				return fail(w, -EPROTO,
					    "stream cut short in %s (byte "
					    "%llu)",
					    what,
					    (unsigned long long)(w->bytes +
								 want - n));
			b += k;
			n -= (size_t)k;
		}
	}
	sum(w, p, want);
	return 0;
}

static uint32_t le32_at(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t le64_at(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

/* true at the end of the stream (nothing more to read) */
static bool at_end(struct wire *w)
{
	uint8_t c;

	if (w->fd < 0)
		return w->pos == w->len;
	for (;;) {
		ssize_t k = read(w->fd, &c, 1);

		if (k < 0 && errno == EINTR)
			continue;
		return k == 0;
	}
}

static const uint32_t wire_len[] = {
	[WIRE_HELLO] = 40, [WIRE_PAGE_MSG] = 8 + WIRE_PAGE,
	[WIRE_ROUND] = 16, [WIRE_END] = 16,
};

int wire_recv(struct wire *w, const struct wire_sink *s)
{
	struct wire_hello h = {0};
	uint8_t hdr[8], small[8 + WIRE_PAGE];
	uint64_t pages = 0, rounds = 0, in_round = 0;
	bool hello = false, model = false;
	int r;

	for (;;) {
		uint64_t before = w->sum;
		uint32_t type, len;

		r = get(w, hdr, 8, "a message header");
		if (r)
			return r;
		type = le32_at(hdr);
		len = le32_at(hdr + 4);
		if (type < WIRE_HELLO || type > WIRE_END)
			return fail(w, -EPROTO,
				    "unknown message type %u at byte %llu",
				    type, (unsigned long long)(w->bytes - 8));
		if (!hello && type != WIRE_HELLO)
			return fail(w, -EPROTO,
				    "message type %u before HELLO", type);
		if (hello && type == WIRE_HELLO)
			return fail(w, -EPROTO, "a second HELLO");
		if (model && type != WIRE_END)
			return fail(w, -EPROTO,
				    "message type %u after MODEL", type);
		if (type == WIRE_MODEL ? len != 4 * h.npages
				       : len != wire_len[type])
			return fail(w, -EPROTO,
				    "message type %u with length %u", type,
				    len);
		if (type == WIRE_MODEL) {
			uint32_t *gen = malloc(4 * h.npages);

			if (!gen)
				return fail(w, -ENOMEM, "no memory for MODEL");
			r = get(w, gen, len, "MODEL");
			for (uint64_t i = 0; !r && i < h.npages; i++) {
				gen[i] = le32toh(gen[i]);
				if (!gen[i])
					r = fail(w, -EPROTO,
						 "MODEL: page %llu has "
						 "generation 0",
						 (unsigned long long)i);
			}
			if (!r && s->model)
				r = s->model(s->arg, gen, h.npages);
			free(gen);
			if (r)
				return r;
			model = true;
			continue;
		}
		r = get(w, small, len, "a message");
		if (r)
			return r;
		switch (type) {
		case WIRE_HELLO:
			if (memcmp(small, wire_magic, 8))
				return fail(w, -EPROTO,
					    "not a tdpmmu migration stream "
					    "(bad magic)");
			if (le32_at(small + 8) != WIRE_VERSION)
				return fail(w, -EPROTO,
					    "stream version %u, this tool "
					    "reads version %u",
					    le32_at(small + 8), WIRE_VERSION);
			if (le32_at(small + 12) != WIRE_PAGE)
				return fail(w, -EPROTO, "page size %u",
					    le32_at(small + 12));
			h.npages = le64_at(small + 16);
			h.seed = le64_at(small + 24);
			h.vcpus = le32_at(small + 32);
			h.rate = le32_at(small + 36);
			if (!h.npages || h.npages % 512 ||
			    h.npages > WIRE_MAX_PAGES)
				return fail(w, -EPROTO,
					    "HELLO: %llu pages (a multiple "
					    "of 512, at most %llu)",
					    (unsigned long long)h.npages,
					    WIRE_MAX_PAGES);
			if (!h.vcpus || h.vcpus > 64 || h.rate > 1000)
				return fail(w, -EPROTO,
					    "HELLO: %u vCPUs, rate %u", h.vcpus,
					    h.rate);
			hello = true;
			r = s->hello ? s->hello(s->arg, &h) : 0;
			break;
		case WIRE_PAGE_MSG: {
			uint64_t i = le64_at(small);

			if (i >= h.npages)
				return fail(w, -EPROTO,
					    "PAGE %llu beyond the %llu pages",
					    (unsigned long long)i,
					    (unsigned long long)h.npages);
			pages++;
			in_round++;
			r = s->page ? s->page(s->arg, i, small + 8) : 0;
			break;
		}
		case WIRE_ROUND:
			if (le64_at(small) != ++rounds)
				return fail(w, -EPROTO,
					    "ROUND %llu, expected %llu",
					    (unsigned long long)le64_at(small),
					    (unsigned long long)rounds);
			if (le64_at(small + 8) != in_round)
				return fail(w, -EPROTO,
					    "ROUND %llu counts %llu pages, "
					    "the round had %llu",
					    (unsigned long long)rounds,
					    (unsigned long long)le64_at(small +
									 8),
					    (unsigned long long)in_round);
			in_round = 0;
			r = s->round ? s->round(s->arg, rounds,
						le64_at(small + 8))
				     : 0;
			break;
		case WIRE_END:
			if (!model)
				return fail(w, -EPROTO, "END without MODEL");
			if (le64_at(small) != pages)
				return fail(w, -EPROTO,
					    "END counts %llu pages, the "
					    "stream had %llu",
					    (unsigned long long)le64_at(small),
					    (unsigned long long)pages);
			if (le64_at(small + 8) != before)
				return fail(w, -EPROTO,
					    "checksum mismatch: the stream "
					    "was damaged");
			if (!at_end(w))
				return fail(w, -EPROTO,
					    "bytes after END");
			return 0;
		}
		if (r)
			return r;
	}
}
