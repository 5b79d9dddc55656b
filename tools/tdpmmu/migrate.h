/* SPDX-License-Identifier: MIT */
/*
 * migrate.h - the machine of `tdpmmu migrate`, shared by the source
 * (migrate.c) and the destination of a migration between processes
 * (migrate_dest.c): one memslot of 2 MiB folios at GPA_BASE, vCPU writer
 * threads and the writers' model (one generation per page; a page of
 * generation g holds cli_pattern(gfn, g, i) in word i).
 */
#ifndef TDP_TOOL_MIGRATE_H
#define TDP_TOOL_MIGRATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "migrate_wire.h"
#include "tdpmmu.h"

#define PAGE	  ((uint64_t)4096)
#define MAX_VCPUS 64
#define GPA_BASE  ((uint64_t)1 << 30)
#define CHUNK	  (2ull << 20) /* bulk copy / manual clear granule */

struct mig {
	/* options */
	uint64_t mem, seed, threshold, max_iters;
	uint64_t bandwidth; /* bytes per second, 0 = unlimited */
	unsigned vcpus, rate;
	bool dbit, manual, json;
	bool pml;  /* --pml: TDP_VM_PML (with --dbit) */
	bool ring; /* --ring: dirty rings (with --dbit: fed by PML) */
	unsigned engine; /* TDP_ENGINE_* */
	unsigned backend; /* TDP_HOST_* */
	/* machine */
	struct tdp_host *host;
	struct tdp_vm *vm;
	struct tdp_vcpu *vcpu[MAX_VCPUS];
	uint64_t hva, npages, nwords;
	/* the writers' model: generation of each page (owner-written) */
	uint32_t *gen;
	bool remote;  /* the destination is another process (or a file) */
	uint8_t *dst; /* the in-process destination; NULL when remote */
	struct wire *out; /* --to / --record: the stream */
	uint8_t *scratch; /* ... and its read buffer (CHUNK bytes) */
	uint64_t copied, copy_t0; /* bytes copied since copy_t0 (pacing) */
	uint64_t *bitmap;
	uint32_t ring_fetch[MAX_VCPUS]; /* --ring: the VMM's fetch index */
	uint64_t ring_entries;		/* --ring: entries collected */
	atomic_bool stop;
	/* results */
	uint64_t *sent; /* per round */
	uint64_t rounds, bulk_pages, final_pages, total_pages;
	double bulk_s, downtime_ms, total_s;
	bool converged;
};

struct writer {
	struct mig *m;
	unsigned id;
	uint64_t writes;
	uint64_t ring_full; /* --ring: writes refused at the soft limit */
	int err;
};

int mig_setup(struct mig *m);
void mig_teardown(struct mig *m);
void *mig_writer_thread(void *arg);
int mig_run_threads(struct mig *m, void *(*fn)(void *), struct writer *w,
		    pthread_t *th);
int mig_join_threads(struct mig *m, struct writer *w, pthread_t *th,
		     uint64_t *writes);
/* 0 when every page matches the model (and m->dst, if any, the source);
 * else 1, after printing the first mismatch */
int mig_verify(struct mig *m);

/* migrate_dest.c: --listen, --replay, --fuzz */
int migrate_listen(const char *addr, const char *port_file,
		   unsigned backend);
/* the source's side of a connection: a connected socket, or -errno */
int mig_connect(const char *addr);
/* "HOST:PORT" into its parts (@host has room for 256 bytes); -EINVAL */
int mig_parse_addr(const char *addr, char *host, char *port);
int migrate_replay(const char *file);
int migrate_fuzz(const char *file, uint64_t iterations, uint64_t seed);

#endif
