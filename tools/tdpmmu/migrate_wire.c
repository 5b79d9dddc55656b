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

int wire_put_postcopy(struct wire *w, const uint64_t *bitmap,
		      uint64_t npages)
{
	int r = put_header(w, WIRE_POSTCOPY, (uint32_t)(npages / 8));

	for (uint64_t i = 0; !r && i < npages / 64; i++)
		r = put_u64(w, bitmap[i]);
	return r ? r : wire_flush(w);
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

/* ---- the messages back ---- */

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t k = write(fd, b, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -EIO;
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

int wire_put_request(int fd, uint64_t index)
{
	uint8_t m[16];
	uint32_t t = htole32(WIRE_REQUEST), l = htole32(8);
	uint64_t i = htole64(index);

	memcpy(m, &t, 4);
	memcpy(m + 4, &l, 4);
	memcpy(m + 8, &i, 8);
	return write_all(fd, m, sizeof(m));
}

int wire_put_answer(int fd, bool accepted)
{
	uint8_t m[9];
	uint32_t t = htole32(WIRE_ANSWER), l = htole32(1);

	memcpy(m, &t, 4);
	memcpy(m + 4, &l, 4);
	m[8] = accepted ? 'K' : 'X';
	return write_all(fd, m, sizeof(m));
}

int wire_get_back(int fd, enum wire_type *type, uint64_t *value, char *err,
		  size_t errlen)
{
	uint8_t m[16];
	size_t have = 0, want = 8;

	while (have < want) {
		ssize_t k = read(fd, m + have, want - have);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			snprintf(err, errlen, "read: %s", strerror(errno));
			return -EIO;
		}
		if (!k) {
			if (!have)
				return -ENODATA;
			snprintf(err, errlen, "the destination's message was "
					      "cut short");
			return -EPROTO;
		}
		have += (size_t)k;
		if (have == 8) {
			uint32_t t, l;

			memcpy(&t, m, 4);
			memcpy(&l, m + 4, 4);
			t = le32toh(t);
			l = le32toh(l);
			if (!((t == WIRE_REQUEST && l == 8) ||
			      (t == WIRE_ANSWER && l == 1))) {
				snprintf(err, errlen,
					 "bad message back: type %u length %u",
					 t, l);
				return -EPROTO;
			}
			*type = (enum wire_type)t;
			want = 8 + l;
		}
	}
	if (*type == WIRE_ANSWER)
		*value = m[8];
	else
		*value = le64_at(m + 8);
	return 0;
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

/* What the reader knows so far. */
struct recv_state {
	struct wire_hello h;
	uint64_t pages, rounds, in_round;
	bool hello, model, post;
	uint64_t *pending; /* post-copy: pages still to come */
	uint64_t left;	   /* ... how many */
};

static int recv_hello(struct wire *w, struct recv_state *st,
		      const uint8_t *p)
{
	struct wire_hello *h = &st->h;

	if (memcmp(p, wire_magic, 8))
		return fail(w, -EPROTO,
			    "not a tdpmmu migration stream (bad magic)");
	if (le32_at(p + 8) != WIRE_VERSION)
		return fail(w, -EPROTO,
			    "stream version %u, this tool reads version %u",
			    le32_at(p + 8), WIRE_VERSION);
	if (le32_at(p + 12) != WIRE_PAGE)
		return fail(w, -EPROTO, "page size %u", le32_at(p + 12));
	h->npages = le64_at(p + 16);
	h->seed = le64_at(p + 24);
	h->vcpus = le32_at(p + 32);
	h->rate = le32_at(p + 36);
	if (!h->npages || h->npages % 512 || h->npages > WIRE_MAX_PAGES)
		return fail(w, -EPROTO,
			    "HELLO: %llu pages (a multiple of 512, at most "
			    "%llu)",
			    (unsigned long long)h->npages, WIRE_MAX_PAGES);
	if (!h->vcpus || h->vcpus > 64 || h->rate > 1000)
		return fail(w, -EPROTO, "HELLO: %u vCPUs, rate %u", h->vcpus,
			    h->rate);
	st->hello = true;
	return 0;
}

static int recv_page(struct wire *w, struct recv_state *st, uint64_t i)
{
	if (i >= st->h.npages)
		return fail(w, -EPROTO, "PAGE %llu beyond the %llu pages",
			    (unsigned long long)i,
			    (unsigned long long)st->h.npages);
	if (st->post) {
		uint64_t bit = 1ull << (i % 64);

		if (!(st->pending[i / 64] & bit))
			return fail(w, -EPROTO,
				    "post-copy PAGE %llu not pending (or "
				    "sent twice)",
				    (unsigned long long)i);
		st->pending[i / 64] &= ~bit;
		st->left--;
	}
	st->pages++;
	st->in_round++;
	return 0;
}

static int recv_round(struct wire *w, struct recv_state *st,
		      const uint8_t *p)
{
	uint64_t n = le64_at(p), pages = le64_at(p + 8);

	if (n != ++st->rounds)
		return fail(w, -EPROTO, "ROUND %llu, expected %llu",
			    (unsigned long long)n,
			    (unsigned long long)st->rounds);
	if (pages != st->in_round)
		return fail(w, -EPROTO,
			    "ROUND %llu counts %llu pages, the round had %llu",
			    (unsigned long long)n, (unsigned long long)pages,
			    (unsigned long long)st->in_round);
	st->in_round = 0;
	return 0;
}

static int recv_end(struct wire *w, struct recv_state *st, const uint8_t *p,
		    uint64_t sum_before)
{
	if (!st->model)
		return fail(w, -EPROTO, "END without MODEL");
	if (st->left)
		return fail(w, -EPROTO, "END with %llu post-copy pages unsent",
			    (unsigned long long)st->left);
	if (le64_at(p) != st->pages)
		return fail(w, -EPROTO,
			    "END counts %llu pages, the stream had %llu",
			    (unsigned long long)le64_at(p),
			    (unsigned long long)st->pages);
	if (le64_at(p + 8) != sum_before)
		return fail(w, -EPROTO,
			    "checksum mismatch: the stream was damaged");
	if (!at_end(w))
		return fail(w, -EPROTO, "bytes after END");
	return 0;
}

/* A message whose payload is read into a new buffer (MODEL, POSTCOPY):
 * its words converted, then handed to the sink. */
static int recv_big(struct wire *w, struct recv_state *st,
		    const struct wire_sink *s, uint32_t type, uint32_t len)
{
	uint8_t *buf = malloc(len);
	int r;

	if (!buf)
		return fail(w, -ENOMEM, "no memory for message type %u", type);
	r = get(w, buf, len, type == WIRE_MODEL ? "MODEL" : "POSTCOPY");
	if (!r && type == WIRE_MODEL) {
		uint32_t *gen = (uint32_t *)buf;

		for (uint64_t i = 0; !r && i < st->h.npages; i++) {
			gen[i] = le32toh(gen[i]);
			if (!gen[i])
				r = fail(w, -EPROTO,
					 "MODEL: page %llu has generation 0",
					 (unsigned long long)i);
		}
		if (!r && s->model)
			r = s->model(s->arg, gen, st->h.npages);
		st->model = true;
	} else if (!r) {
		uint64_t *bm = (uint64_t *)buf;

		for (uint64_t i = 0; i < st->h.npages / 64; i++) {
			bm[i] = le64toh(bm[i]);
			st->left += (uint64_t)__builtin_popcountll(bm[i]);
		}
		st->pending = bm;
		buf = NULL;
		st->post = true;
		if (!s->postcopy)
			r = fail(w, -EPROTO, "a post-copy stream (replay a "
					     "pre-copy one)");
		else
			r = s->postcopy(s->arg, st->pending, st->h.npages);
	}
	free(buf);
	return r;
}

/* The type and length of a message are allowed here.  0 or -EPROTO. */
static int check_order(struct wire *w, const struct recv_state *st,
		       uint32_t type, uint32_t len)
{
	if (type < WIRE_HELLO || type > WIRE_POSTCOPY)
		return fail(w, -EPROTO, "unknown message type %u at byte %llu",
			    type, (unsigned long long)(w->bytes - 8));
	if (!st->hello && type != WIRE_HELLO)
		return fail(w, -EPROTO, "message type %u before HELLO", type);
	if (st->hello && type == WIRE_HELLO)
		return fail(w, -EPROTO, "a second HELLO");
	if (st->model && type == WIRE_MODEL)
		return fail(w, -EPROTO, "a second MODEL");
	if (type == WIRE_POSTCOPY && (!st->model || st->post))
		return fail(w, -EPROTO, "POSTCOPY not right after MODEL");
	if (st->model && !st->post && type != WIRE_END &&
	    type != WIRE_POSTCOPY)
		return fail(w, -EPROTO, "message type %u after MODEL", type);
	if (st->post && type != WIRE_PAGE_MSG && type != WIRE_END)
		return fail(w, -EPROTO, "message type %u in post-copy", type);
	if (type == WIRE_MODEL	  ? len != 4 * st->h.npages
	    : type == WIRE_POSTCOPY ? len != st->h.npages / 8
				    : len != wire_len[type])
		return fail(w, -EPROTO, "message type %u with length %u", type,
			    len);
	return 0;
}

static int recv_loop(struct wire *w, const struct wire_sink *s,
		     struct recv_state *st)
{
	uint8_t hdr[8], small[8 + WIRE_PAGE];

	for (;;) {
		uint64_t before = w->sum;
		uint32_t type, len;
		int r = get(w, hdr, 8, "a message header");

		if (r)
			return r;
		type = le32_at(hdr);
		len = le32_at(hdr + 4);
		r = check_order(w, st, type, len);
		if (r)
			return r;
		if (type == WIRE_MODEL || type == WIRE_POSTCOPY) {
			r = recv_big(w, st, s, type, len);
			if (r)
				return r;
			continue;
		}
		r = get(w, small, len, "a message");
		if (r)
			return r;
		switch (type) {
		case WIRE_HELLO:
			r = recv_hello(w, st, small);
			if (!r && s->hello)
				r = s->hello(s->arg, &st->h);
			break;
		case WIRE_PAGE_MSG:
			r = recv_page(w, st, le64_at(small));
			if (!r && s->page)
				r = s->page(s->arg, le64_at(small), small + 8);
			break;
		case WIRE_ROUND:
			r = recv_round(w, st, small);
			if (!r && s->round)
				r = s->round(s->arg, st->rounds,
					     le64_at(small + 8));
			break;
		default: /* WIRE_END */
			return recv_end(w, st, small, before);
		}
		if (r)
			return r;
	}
}

int wire_recv(struct wire *w, const struct wire_sink *s)
{
	struct recv_state st = {0};
	int r = recv_loop(w, s, &st);

	free(st.pending);
	return r;
}
