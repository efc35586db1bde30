/* SPDX-License-Identifier: MIT */
/*
 * gmemctl.h - what the gmemctl subcommands share: exit codes, the
 * builtin entry points, argument parsing helpers and the demo scenario
 * (which "gmemctl info demo" runs quietly to show its file).
 *
 * One builtin-<cmd>.c per subcommand, kvmtool style; gmemctl.c holds
 * main(), the dispatch table and the top-level usage.  Every character
 * gmemctl prints goes through output.c.
 */
#ifndef GMEMCTL_H
#define GMEMCTL_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"		/* bench/: bench_now(), bench_rand() */
#include "gmem.h"

/* Exit codes of every subcommand. */
#define EXIT_OK		0
#define EXIT_FAIL	1
#define EXIT_USAGE	2
#define EXIT_SKIP	77

#define KiB		(1ULL << 10)
#define MiB		(1ULL << 20)
#define GiB		(1ULL << 30)
#define TiB		(1ULL << 40)

int cmd_demo(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_vm(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_migrate(int argc, char **argv);

/*
 * "4096", "0x1000", "64K", "1G", "1GiB", "2T": bytes (binary suffixes);
 * numbers are decimal ("010" is ten) or hex with 0x.  0, or -EINVAL (not
 * a size) / -ERANGE (does not fit 64 bits).
 */
int parse_size(const char *s, uint64_t *out);
/* A plain decimal or 0x hex number: 0 or -EINVAL / -ERANGE. */
int parse_u64(const char *s, uint64_t *out);
/* Why parse_size() or parse_u64() refused: text for a usage error. */
const char *parse_error(int err);

/*
 * The host's page size (sysconf), the unit of conversions, pins and
 * views of a file without huge pages.
 */
uint64_t page_size(void);

/* Resident set of this process in bytes (smaps_rollup "Rss:"), 0 if unknown. */
uint64_t self_rss(void);

/*
 * Convert [off, off + len) of g: 0 or -errno.  On failure *error_offset
 * is the library's error_offset, or NO_OFFSET where it set none (the
 * arguments were refused before anything was tried).
 */
#define NO_OFFSET	UINT64_MAX
int convert_range(struct gmem *g, uint64_t off, uint64_t len, bool to_private,
		  uint64_t *error_offset);

/* The demo scenario (builtin-demo.c). */
struct demo_opts {
	uint64_t size;		/* guest RAM, >= 64 MiB, 4 MiB multiple */
	uint64_t seed;		/* firmware bytes, DMA slots and sizes */
	uint64_t flips;		/* DMA transactions of step 4 */
	uint32_t backend;	/* GMEM_BACKEND_MEMFD or _KVM */
	bool huge;		/* ask for GMEM_FLAG_HUGEPAGE (2 MiB) */
	bool quiet;		/* print nothing (gmemctl info demo) */
};

#define DEMO_MIN_SIZE	(64 * MiB)
#define DEMO_ALIGN	(4 * MiB)

/*
 * Run the scenario.  With keep, the file is handed back in *keep, still
 * open (its bindings, views and pins gone) instead of being closed.
 * Returns an exit code: EXIT_OK, EXIT_FAIL or EXIT_SKIP (no huge pages,
 * no KVM guest_memfd).
 */
int demo_run(const struct demo_opts *o, struct gmem **keep);

#endif /* GMEMCTL_H */
