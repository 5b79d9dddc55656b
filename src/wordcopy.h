/* SPDX-License-Identifier: MIT */
/*
 * wordcopy.h - copies between caller buffers and simulated guest/host
 * memory.  Guest memory is shared between vCPU threads and the host, like
 * real RAM: concurrent accesses to the same bytes are legal and unordered.
 * To keep that defined in C11 (and quiet under ThreadSanitizer), every load
 * and store on the frame side is a relaxed atomic of 8 bytes where aligned,
 * else of 1 byte.  On x86-64 these compile to plain moves.
 *
 * No locking or lifetime rules: the caller guarantees the frame stays
 * allocated during the copy (host mmap lock, or guest mode + TLB protocol).
 *
 * Under the controlled scheduler (sched/sched.h) a copy is one scheduling
 * point per WORDCOPY_SCHED_BYTES rather than one per word: a switch can
 * still fall inside a page copy, at 8 places in a 4 KiB page, without a
 * page access costing 512 decisions.  A fill (only of frames nobody may
 * reach: being freed or not yet mapped) is one point.
 */
#ifndef TDP_WORDCOPY_H
#define TDP_WORDCOPY_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sched/sched.h"

#define WORDCOPY_SCHED_BYTES 512

/* frame -> plain buffer */
static inline void wordcopy_from_frame_1(void *dst, const uint8_t *frame,
					 size_t n)
{
	uint8_t *d = dst;

	while (n && ((uintptr_t)frame & 7)) {
		*d++ = __atomic_load_n(frame++, __ATOMIC_RELAXED);
		n--;
	}
	for (; n >= 8; n -= 8, frame += 8, d += 8) {
		uint64_t w = __atomic_load_n((const uint64_t *)frame,
					     __ATOMIC_RELAXED);
		memcpy(d, &w, 8);
	}
	while (n--)
		*d++ = __atomic_load_n(frame++, __ATOMIC_RELAXED);
}

/* plain buffer -> frame */
static inline void wordcopy_to_frame_1(uint8_t *frame, const void *src,
				       size_t n)
{
	const uint8_t *s = src;

	while (n && ((uintptr_t)frame & 7)) {
		__atomic_store_n(frame++, *s++, __ATOMIC_RELAXED);
		n--;
	}
	for (; n >= 8; n -= 8, frame += 8, s += 8) {
		uint64_t w;

		memcpy(&w, s, 8);
		__atomic_store_n((uint64_t *)frame, w, __ATOMIC_RELAXED);
	}
	while (n--)
		__atomic_store_n(frame++, *s++, __ATOMIC_RELAXED);
}

/* The length of the next piece copied between scheduling points. */
static inline size_t wordcopy_piece(size_t n)
{
	return TDP_SCHED_AVAILABLE && n > WORDCOPY_SCHED_BYTES
		       ? WORDCOPY_SCHED_BYTES
		       : n;
}

static inline void wordcopy_from_frame(void *dst, const uint8_t *frame,
				       size_t n)
{
	while (n) {
		size_t c = wordcopy_piece(n);

		TDP_SCHED_POINT(SK_LOAD, frame);
		TDP_SCHED_PRIVATE_BEGIN();
		wordcopy_from_frame_1(dst, frame, c);
		TDP_SCHED_PRIVATE_END();
		dst = (uint8_t *)dst + c;
		frame += c;
		n -= c;
	}
}

static inline void wordcopy_to_frame(uint8_t *frame, const void *src, size_t n)
{
	while (n) {
		size_t c = wordcopy_piece(n);

		TDP_SCHED_POINT(SK_STORE, frame);
		TDP_SCHED_PRIVATE_BEGIN();
		wordcopy_to_frame_1(frame, src, c);
		TDP_SCHED_PRIVATE_END();
		src = (const uint8_t *)src + c;
		frame += c;
		n -= c;
	}
}

/* frame -> frame (both sides shared) */
static inline void wordcopy_frame_to_frame(uint8_t *dst, const uint8_t *src,
					   size_t n)
{
	uint64_t buf[64];

	while (n) {
		size_t c = n < sizeof(buf) ? n : sizeof(buf);

		wordcopy_from_frame(buf, src, c);
		wordcopy_to_frame(dst, buf, c);
		src += c;
		dst += c;
		n -= c;
	}
}

/* fill a frame range with a repeated 64-bit word (n multiple of 8,
 * frame 8-aligned) */
static inline void wordfill_frame(uint8_t *frame, uint64_t word, size_t n)
{
	TDP_SCHED_POINT(SK_STORE, frame);
	TDP_SCHED_PRIVATE_BEGIN();
	for (; n >= 8; n -= 8, frame += 8)
		__atomic_store_n((uint64_t *)frame, word, __ATOMIC_RELAXED);
	TDP_SCHED_PRIVATE_END();
}

#endif
