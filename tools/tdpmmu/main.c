/* SPDX-License-Identifier: MIT */
/* main.c - the tdpmmu command-line tool: subcommand dispatch. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "sched/sched.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: tdpmmu <command> [options]\n"
		   "commands:\n"
		   "  demo     run the demo VM: 2 vCPUs, 1 GiB, host memory "
		   "moving under load\n"
		   "  bench    benchmarks: populate, access, memslot, "
		   "mmu-stress, translate; --help\n"
		   "  torture  random operations from many threads with "
		   "oracles; --help\n"
		   "  migrate  pre-copy live migration of a running VM driven "
		   "by the dirty log\n"
		   "  help     this text\n"
		   "Run 'tdpmmu <command> --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	/* The controlled build's RCU and locks work only under the
	 * scheduler, which only the torture starts. */
	if (TDP_SCHED_AVAILABLE && strcmp(argv[1], "torture") &&
	    strcmp(argv[1], "help") && strcmp(argv[1], "--help")) {
		fprintf(stderr, "tdpmmu: this is a controlled-scheduler build "
				"(TDP_SCHED): only 'tdpmmu torture --sched' "
				"runs here\n");
		return 2;
	}
	if (!strcmp(argv[1], "demo"))
		return cmd_demo(argc - 1, argv + 1);
	if (!strcmp(argv[1], "bench"))
		return cmd_bench(argc - 1, argv + 1);
	if (!strcmp(argv[1], "torture"))
		return cmd_torture(argc - 1, argv + 1);
	if (!strcmp(argv[1], "migrate"))
		return cmd_migrate(argc - 1, argv + 1);
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "tdpmmu: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
