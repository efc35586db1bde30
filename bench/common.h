/* SPDX-License-Identifier: MIT */
/*
 * common.h - what every benchmark shares: the clock, the fixed-seed
 * random sequence, the median of rounds and the result lines.
 *
 * Every result is a comparison against a baseline measured in the same
 * run, printed as one line:
 *
 *   name=<id> ops=<n> ns_per_op=<x> baseline=<id> baseline_ns_per_op=<y>
 *     ratio=<x/y> [target=<goal> met=yes|no]
 *   name=<id> bytes=<n> baseline=<id> baseline_bytes=<m> ratio=<n/m>
 *     [target=<goal> met=yes|no]
 *
 * (each on one line).  Lines starting with '#' are information for
 * people.  A missed target is reported, never fatal: benchmarks exit 1
 * only on an error.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#define BENCH_ROUNDS	5	/* odd: the median is one measured round */
#define BENCH_MAX_ROUNDS	63	/* bench_report_paired() */

/* A goal for a result; BENCH_NONE prints no target= field. */
enum bench_goal {
	BENCH_NONE,
	BENCH_RATIO_LE,		/* ratio <= limit */
	BENCH_RATIO_LT,		/* ratio < limit */
	BENCH_NS_LT,		/* our ns_per_op < limit */
	BENCH_BYTES_LT,		/* our bytes < limit */
	BENCH_BYTES_GE,		/* our bytes >= limit (coverage) */
	BENCH_RATIO_GE,		/* ratio >= limit (a speedup) */
};

struct bench_target {
	enum bench_goal goal;
	double limit;
};

#define NO_TARGET	((struct bench_target){ BENCH_NONE, 0 })

/* Parse the command line: -q (quick) or nothing; anything else exits 1. */
bool bench_quick(int argc, char **argv);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now(void);

/* Print "<prog>: <message>" to stderr and exit 1. */
void bench_die(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));

/* ret < 0 is -errno from libgmem or a wrapper: die naming what failed. */
void bench_check(long ret, const char *what);

/* Like bench_check() for a libc call returning -1 and setting errno. */
void bench_check_errno(long ret, const char *what);

/* The median of n values (n >= 1); v is reordered. */
double bench_median(double *v, unsigned int n);

void bench_report_time(const char *name, uint64_t ops, double ns_per_op,
		       const char *baseline, double baseline_ns_per_op,
		       struct bench_target t);
/*
 * The same line from paired rounds: round i ran ours[i] and base[i] back
 * to back.  ns_per_op and baseline_ns_per_op are the medians of each,
 * ratio the median of the per-round ratios, which cancels the drift of a
 * shared machine (the speed of a cloud VM changes by a third within
 * seconds) that a ratio of two medians keeps.  Reorders neither array.
 */
void bench_report_paired(const char *name, uint64_t ops, const double *ours,
			 const char *baseline, const double *base,
			 unsigned int rounds, struct bench_target t);
/* Touch one byte per 4 KiB page of [addr, addr + size), written or read
 * (must read zero): ns per page. */
double bench_touch(char *addr, uint64_t size, bool write);
/* The baseline of first touch: the same through a plain mapping of a new
 * memfd of size bytes. */
double bench_memfd_touch(uint64_t size, bool write);
void bench_report_bytes(const char *name, uint64_t bytes,
			const char *baseline, uint64_t baseline_bytes,
			struct bench_target t);

/*
 * xorshift64: a fixed seed gives ours and the baseline the very same
 * sequence of pages and directions.
 */
static inline uint64_t bench_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

#endif /* BENCH_COMMON_H */
