/* SPDX-License-Identifier: MIT */
/* helpers.h - small utilities shared by the cmocka tests. */
#ifndef TDP_TEST_HELPERS_H
#define TDP_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tdpmmu.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* Deterministic content for a page: word i of the page at @addr in
 * generation @gen.  Never equals the host poison word. */
uint64_t th_pattern(uint64_t addr, uint64_t gen, unsigned i);
/* Fill / check one 4 KiB page buffer with th_pattern. */
void th_fill_page(void *buf, uint64_t addr, uint64_t gen);
int th_check_page(const void *buf, uint64_t addr, uint64_t gen);
/* Monotonic nanoseconds. */
uint64_t th_now_ns(void);
/* A one-shot event between two threads of a test. */
struct event {
	int set; /* accessed atomically */
};
void ev_set(struct event *e);
void ev_wait(struct event *e);

/* xorshift64* PRNG */
uint64_t th_rand(uint64_t *state);

#endif
