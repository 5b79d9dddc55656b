/* SPDX-License-Identifier: MIT */
/* cli.h - subcommands of the tdpmmu command-line tool. */
#ifndef TDP_CLI_H
#define TDP_CLI_H

#include <stdint.h>

int cmd_demo(int argc, char **argv);
int cmd_torture(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* shared helpers (util.c) */
uint64_t cli_now_ns(void);
uint64_t cli_rand(uint64_t *state);
/* Parse "123", "4k", "2M", "1G" (binary units).  -1 on error. */
int cli_parse_size(const char *s, uint64_t *out);
/* Parse an engine name, "tdp" or "legacy", into TDP_ENGINE_*.  -1 on
 * error. */
int cli_parse_engine(const char *s, unsigned *out);
/* Content of word @i of guest page @gfn in generation @gen; never the
 * host poison word. */
uint64_t cli_pattern(uint64_t gfn, uint64_t gen, unsigned i);

#endif
