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
 */
#ifndef TDP_WORDCOPY_H
#define TDP_WORDCOPY_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* frame -> plain buffer */
static inline void wordcopy_from_frame(void *dst, const uint8_t *frame,
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
static inline void wordcopy_to_frame(uint8_t *frame, const void *src, size_t n)
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
	for (; n >= 8; n -= 8, frame += 8)
		__atomic_store_n((uint64_t *)frame, word, __ATOMIC_RELAXED);
}

#endif
