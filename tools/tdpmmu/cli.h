/* SPDX-License-Identifier: MIT */
/* cli.h - subcommands of the tdpmmu command-line tool. */
#ifndef TDP_CLI_H
#define TDP_CLI_H

#include <stdint.h>

#include "../common/clock.h"
#include "../common/ring.h"
#include "../common/rng.h"

int cmd_demo(int argc, char **argv);
int cmd_torture(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* The clock and random numbers, shared with the tests (tools/common). */
/* Monotonic nanoseconds (virtual in the controlled-scheduler build). */
static inline uint64_t cli_now_ns(void)
{
	return mono_now_ns();
}

/* xorshift64* */
static inline uint64_t cli_rand(uint64_t *state)
{
	return rng_next(state);
}

/* Content of word @i of guest page @gfn in generation @gen; never the
 * host poison word. */
static inline uint64_t cli_pattern(uint64_t gfn, uint64_t gen, unsigned i)
{
	return rng_pattern(gfn, gen, i);
}

/* Option parsing shared by the subcommands (util.c). */
/* Parse "123", "4k", "2M", "1G" (binary units).  -1 on error. */
int cli_parse_size(const char *s, uint64_t *out);
/* A size (as cli_parse_size) that is a non-zero multiple of @align, at
 * most @max.  -1 otherwise. */
int cli_parse_size_in(const char *s, uint64_t align, uint64_t max,
		      uint64_t *out);
/* A number in @base (strtoull's: 0 takes 0x and 0 prefixes), starting
 * with a digit, nothing after it, at most @max.  -1 otherwise (*out may
 * have been written). */
int cli_parse_u64(const char *s, int base, uint64_t max, uint64_t *out);
/* Parse an engine name, "tdp" or "legacy", into TDP_ENGINE_*.  -1 on
 * error. */
int cli_parse_engine(const char *s, unsigned *out);
/* Parse a host backend name, "pool" or "process", into TDP_HOST_*.  -1
 * on error. */
int cli_parse_host(const char *s, unsigned *out);

#endif
