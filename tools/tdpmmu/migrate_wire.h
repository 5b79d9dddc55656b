/* SPDX-License-Identifier: MIT */
/*
 * migrate_wire.h - the stream format of `tdpmmu migrate --to/--listen`
 * (docs/migration.md describes it for other implementations).
 *
 * A stream is a sequence of messages, each an 8-byte header (u32 type,
 * u32 payload length, little-endian) and its payload:
 *
 *   HELLO  1  40 bytes: magic "TDPMIG\r\n", u32 version (1), u32 page
 *             size (4096), u64 pages of guest memory (a multiple of 512,
 *             at most 2^26), u64 seed, u32 vCPUs (1..64), u32 write rate;
 *   PAGE   2  4104 bytes: u64 page index (< pages), then the page;
 *   ROUND  3  16 bytes: u64 round number (1, 2, ...; the bulk copy is
 *             round 1), u64 pages the round sent: the PAGE messages since
 *             the previous ROUND;
 *   MODEL  4  4 * pages bytes: the writers' model, u32 generation per
 *             page (each >= 1);
 *   END    5  16 bytes: u64 pages sent in all, u64 FNV-1a 64 of every
 *             byte of the stream before this message;
 *   POSTCOPY 6  pages / 8 bytes: a bitmap (u64 words, bit i of word i/64
 *             for page i) of the pages the destination does not have yet.
 *
 * Order: HELLO first; then PAGE and ROUND messages (the pages of the
 * stop-and-copy follow the last ROUND); one MODEL; END last,
 * followed by the end of the stream.  Post-copy: right after MODEL, one
 * POSTCOPY; then exactly one PAGE for each page it names (in any order),
 * and no other message before END.
 *
 * The destination's messages back (same header; not checksummed):
 *   REQUEST 7  8 bytes: u64 page index, post-copy only: send this page
 *             next (a remote fault);
 *   ANSWER  8  1 byte: 'K' the VM is accepted, anything else refused;
 *             the last message, sent after END.  A destination applies PAGEs as they
 * come but accepts the memory only after END: a stream that breaks any
 * rule above, is cut short, or whose checksum or page count does not
 * match is refused with a message that says why.
 *
 * No locking: one thread reads or writes a stream.
 */
#ifndef TDP_TOOL_MIGRATE_WIRE_H
#define TDP_TOOL_MIGRATE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_VERSION   1u
#define WIRE_PAGE      4096u
#define WIRE_MAX_PAGES (1ull << 26) /* 256 GiB */

enum wire_type {
	WIRE_HELLO = 1,
	WIRE_PAGE_MSG = 2,
	WIRE_ROUND = 3,
	WIRE_MODEL = 4,
	WIRE_END = 5,
	WIRE_POSTCOPY = 6,
	WIRE_REQUEST = 7,
	WIRE_ANSWER = 8,
};

struct wire_hello {
	uint64_t npages, seed;
	uint32_t vcpus, rate;
};

/* One end of a stream: a file descriptor, or (reading only) a buffer. */
struct wire {
	int fd;		       /* -1: read from buf */
	const uint8_t *buf;    /* ... of len bytes */
	size_t len, pos;
	uint64_t sum;	       /* FNV-1a 64 of the bytes so far */
	uint64_t bytes;	       /* bytes so far */
	uint8_t out[1 << 16];  /* write buffer */
	size_t nout;
	char err[160];	       /* why the last call failed */
};

void wire_init_fd(struct wire *w, int fd);
void wire_init_buf(struct wire *w, const void *buf, size_t len);

/* Writing.  Each returns 0 or -errno (w->err says why). */
int wire_put_hello(struct wire *w, const struct wire_hello *h);
int wire_put_page(struct wire *w, uint64_t index, const void *page);
int wire_put_round(struct wire *w, uint64_t round, uint64_t pages);
int wire_put_model(struct wire *w, const uint32_t *gen, uint64_t npages);
int wire_put_end(struct wire *w, uint64_t pages_sent);
int wire_put_postcopy(struct wire *w, const uint64_t *bitmap,
		      uint64_t npages);
int wire_flush(struct wire *w);

/*
 * Reading: the destination's side, with every rule of the format
 * checked.  wire_recv calls the callbacks in stream order and returns 0
 * after a valid END and the end of the stream, or -EPROTO / -EIO with
 * w->err set; a callback's non-zero return stops it with that value.
 */
struct wire_sink {
	void *arg;
	int (*hello)(void *arg, const struct wire_hello *h);
	int (*page)(void *arg, uint64_t index, const uint8_t *page);
	int (*round)(void *arg, uint64_t round, uint64_t pages);
	/* @gen is valid during the call only */
	int (*model)(void *arg, const uint32_t *gen, uint64_t npages);
	/* @pending likewise */
	int (*postcopy)(void *arg, const uint64_t *pending, uint64_t npages);
};
int wire_recv(struct wire *w, const struct wire_sink *s);

/*
 * The messages back, on the same socket: each written and flushed at
 * once (0 or -EIO); wire_get_back reads one (0, or -EPROTO / -EIO with
 * a message in @err, or -ENODATA at the end of the stream).
 */
int wire_put_request(int fd, uint64_t index);
int wire_put_answer(int fd, bool accepted);
int wire_get_back(int fd, enum wire_type *type, uint64_t *value,
		  char *err, size_t errlen);

#endif
