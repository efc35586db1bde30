// SPDX-License-Identifier: MIT
/*
 * common.c - timing, medians and result lines shared by the benchmarks
 * (see common.h for the output format).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

bool bench_quick(int argc, char **argv)
{
	if (argc == 1)
		return false;
	if (argc == 2 && !strcmp(argv[1], "-q"))
		return true;
	bench_die("usage: %s [-q]", argv[0]);
}

uint64_t bench_now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts))
		bench_die("clock_gettime: %s", strerror(errno));
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void bench_die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "%s: ", program_invocation_short_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

void bench_check(long ret, const char *what)
{
	if (ret < 0)
		bench_die("%s: %s", what, strerror((int)-ret));
}

void bench_check_errno(long ret, const char *what)
{
	if (ret == -1)
		bench_die("%s: %s", what, strerror(errno));
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_median(double *v, unsigned int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A limit as text that always shows it is a number: 1 -> "1.0". */
static void fmt_limit(char *buf, size_t len, double limit)
{
	snprintf(buf, len, "%g", limit);
	if (!strpbrk(buf, ".en"))
		strncat(buf, ".0", len - strlen(buf) - 1);
}

/* Print " target=... met=..." (or nothing) for value x and ratio r. */
static void print_target(struct bench_target t, double x, double r)
{
	static const char *const what[] = {
		[BENCH_RATIO_LE] = "ratio<=",
		[BENCH_RATIO_LT] = "ratio<",
		[BENCH_NS_LT] = "ns_per_op<",
		[BENCH_BYTES_LT] = "bytes<",
		[BENCH_BYTES_GE] = "bytes>=",
		[BENCH_RATIO_GE] = "ratio>=",
	};
	char limit[32];
	bool met;

	switch (t.goal) {
	case BENCH_NONE:
		return;
	case BENCH_RATIO_LE:
		met = r <= t.limit;
		break;
	case BENCH_RATIO_LT:
		met = r < t.limit;
		break;
	case BENCH_RATIO_GE:
		met = r >= t.limit;
		break;
	case BENCH_BYTES_GE:
		met = x >= t.limit;
		break;
	default:
		met = x < t.limit;
		break;
	}
	fmt_limit(limit, sizeof(limit), t.limit);
	printf(" target=%s%s met=%s", what[t.goal], limit, met ? "yes" : "no");
}

static double ratio(double x, double y)
{
	if (y > 0)
		return x / y;
	return x > 0 ? INFINITY : 1.0;
}

void bench_report_time(const char *name, uint64_t ops, double ns_per_op,
		       const char *baseline, double baseline_ns_per_op,
		       struct bench_target t)
{
	double r = ratio(ns_per_op, baseline_ns_per_op);

	printf("name=%s ops=%llu ns_per_op=%.2f baseline=%s "
	       "baseline_ns_per_op=%.2f ratio=%.4g", name,
	       (unsigned long long)ops, ns_per_op, baseline,
	       baseline_ns_per_op, r);
	print_target(t, ns_per_op, r);
	putchar('\n');
	fflush(stdout);
}

void bench_report_paired(const char *name, uint64_t ops, const double *ours,
			 const char *baseline, const double *base,
			 unsigned int rounds, struct bench_target t)
{
	double a[BENCH_MAX_ROUNDS], b[BENCH_MAX_ROUNDS], r[BENCH_MAX_ROUNDS], m;

	if (rounds > BENCH_MAX_ROUNDS)
		bench_die("%s: %u rounds, at most %u", name, rounds,
			  BENCH_MAX_ROUNDS);
	for (unsigned int i = 0; i < rounds; i++) {
		a[i] = ours[i];
		b[i] = base[i];
		r[i] = ratio(ours[i], base[i]);
	}
	m = bench_median(r, rounds);
	printf("name=%s ops=%llu ns_per_op=%.2f baseline=%s "
	       "baseline_ns_per_op=%.2f ratio=%.4g paired_rounds=%u", name,
	       (unsigned long long)ops, bench_median(a, rounds), baseline,
	       bench_median(b, rounds), m, rounds);
	print_target(t, bench_median(a, rounds), m);
	putchar('\n');
	fflush(stdout);
}

void bench_report_bytes(const char *name, uint64_t bytes,
			const char *baseline, uint64_t baseline_bytes,
			struct bench_target t)
{
	double r = ratio((double)bytes, (double)baseline_bytes);

	printf("name=%s bytes=%llu baseline=%s baseline_bytes=%llu ratio=%.4g",
	       name, (unsigned long long)bytes, baseline,
	       (unsigned long long)baseline_bytes, r);
	print_target(t, (double)bytes, r);
	putchar('\n');
	fflush(stdout);
}

/* Defeats dead-code elimination of the reads. */
static volatile unsigned char sink;

/* One byte per page: written (a 1) or read (must be zero); ns per page. */
double bench_touch(char *addr, uint64_t size, bool write)
{
	unsigned char sum = 0;
	uint64_t t = bench_now();

	if (write) {
		for (uint64_t o = 0; o < size; o += 4096ULL)
			*(volatile unsigned char *)(addr + o) = 1;
	} else {
		for (uint64_t o = 0; o < size; o += 4096ULL)
			sum |= *(volatile unsigned char *)(addr + o);
	}
	t = bench_now() - t;
	if (sum)
		bench_die("a new page did not read as zero");
	sink = sum;
	return (double)t / (double)(size / 4096ULL);
}

double bench_memfd_touch(uint64_t size, bool write)
{
	int fd = memfd_create("bench-touch", MFD_CLOEXEC);
	char *addr;
	double ns;

	bench_check_errno(fd, "memfd_create");
	bench_check_errno(ftruncate(fd, (off_t)size), "ftruncate");
	addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (addr == MAP_FAILED)
		bench_die("mmap: %s", strerror(errno));
	ns = bench_touch(addr, size, write);
	bench_check_errno(munmap(addr, size), "munmap");
	close(fd);
	return ns;
}
