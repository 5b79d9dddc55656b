/* SPDX-License-Identifier: MIT */
/*
 * torture_model.c - `tdpmmu torture`: the model of what every page holds,
 * and what the oracles keep per page besides (the attributes' change
 * counts, a log of recent operations); the run's clock.
 *
 * Content: in every 64 KiB chunk, page 0 is common (every vCPU writes it)
 * and pages 1..15 are owned by one vCPU.  An owned page holds a full-page
 * pattern of its generation (0 = zeroes; t->gen).  In a common page, word
 * w belongs to vCPU w and holds (page, w, seq) (common_enc); a reader
 * requires committed-before <= seq <= issued-after for every word
 * (t->shared, common_snap), so stale frames, poison and lost writes all
 * show.  In confidential mode the model is kept per (page, backing), with
 * patterns that differ between the backings: reading the wrong memory
 * shows.
 *
 * Threads and locking: an owned page's generation is changed only by its
 * owner vCPU, holding the page's slot and region locks (and, confidential,
 * plock) for read, and reset to 0 only by an operation holding the
 * region's lock (munmap + mmap) or plock (hole punch) for write; a common
 * page's word w only by vCPU w (atomics), and reset under the same write
 * locks.  pchange is bumped with plock held for write.  The page log is
 * written by every thread with relaxed atomics, racily by design: it only
 * tells failure reports what happened to a page lately.  The clock is
 * virtual under --sched.
 */
#include <stdatomic.h>
#include <stdio.h>

#include "cli.h"
#include "torture.h"

/* ------------------------------------------------------------------ */
/* Clock                                                               */
/* ------------------------------------------------------------------ */

/* Seconds since the start: virtual under --sched (frozen at its end). */
double elapsed(struct torture *t)
{
	return ((t->t_end ? t->t_end : cli_now_ns()) - t->t0) / 1e9;
}

uint32_t now_ms(struct torture *t)
{
	return (uint32_t)((cli_now_ns() - t->t0) / 1000000) + 1;
}

/* ------------------------------------------------------------------ */
/* Pages                                                               */
/* ------------------------------------------------------------------ */

/* A common page's word: bit 63 set, never the host poison word; bit 39
 * tells the private memory from the hva. */
uint64_t common_enc(uint64_t p, enum backing b, unsigned w, uint32_t seq)
{
	return (1ull << 63) | ((p & 0x7fffffull) << 40) | ((uint64_t)b << 39) |
	       ((uint64_t)w << 32) | seq;
}

/* An owned page's word; the private memory has its own patterns. */
uint64_t owned_word(uint64_t p, enum backing b, uint32_t gen, unsigned i)
{
	return gen ? cli_pattern(b == B_PRIV ? p | 1ull << 40 : p, gen, i) : 0;
}

/* ---- confidential mode: attributes ---- */

/* A conversion or hole punch of pages [first, first + n) begins or ends
 * (pchange is odd in between; vcpu_probe). */
void pchange_bump(struct torture *t, uint64_t first, uint64_t n)
{
	for (uint64_t p = first; p < first + n; p++)
		atomic_fetch_add(&t->pchange[p], 1);
}

/* ---- per-page recent-operation log, for failure reports ---- */

void page_log(struct torture *t, uint64_t p, enum op op, unsigned tid,
	      uint32_t aux)
{
	unsigned pos = atomic_fetch_add_explicit(&t->log_pos[p], 1,
						 memory_order_relaxed);
	uint64_t ms = (uint64_t)(elapsed(t) * 1000.0);
	uint64_t e = (ms << 32) | ((uint64_t)op << 24) |
		     ((uint64_t)(tid & 0xff) << 16) | (aux & 0xffff);

	atomic_store_explicit(&t->log[p * LOG_DEPTH + pos % LOG_DEPTH], e,
			      memory_order_relaxed);
}

void log_range(struct torture *t, uint64_t first, uint64_t n, enum op op,
	       unsigned tid)
{
	for (uint64_t p = first; p < first + n && p < t->npages; p++)
		page_log(t, p, op, tid, 0);
}

size_t describe_log(struct torture *t, uint64_t p, char *buf, size_t len)
{
	size_t used = 0;

	used += (size_t)snprintf(buf, len, "recent operations on the page:");
	for (unsigned i = 0; i < LOG_DEPTH && used < len; i++) {
		uint64_t e = atomic_load(&t->log[p * LOG_DEPTH + i]);

		if (!e)
			continue;
		used += (size_t)snprintf(
			buf + used, len - used,
			" [%.3fs %s by thread %u aux %u]", (e >> 32) / 1000.0,
			op_names[(e >> 24) & 0xff],
			(unsigned)((e >> 16) & 0xff), (unsigned)(e & 0xffff));
	}
	return used;
}
