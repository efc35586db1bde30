// SPDX-License-Identifier: MIT
/*
 * bench_huge.c - what 2 MiB pages buy, and what keeping them costs.
 *
 *  huge_read_view / huge_read_pfn: random 8-byte reads over a 1 GiB
 *    guest range, through a host view and through gmem_get_pfn()
 *    addresses, 2 MiB-backed (ours) against 4 KiB-backed (baseline),
 *    same run.  Target: 2 MiB at least 1.3x the throughput (ns ratio
 *    <= 0.77).  4 KiB pages cost a TLB miss per read on a 1 GiB range.
 *  huge_flip: one 4 KiB page flipped private/shared/touched inside a
 *    huge region (split, then merged back with MADV_COLLAPSE) against
 *    the same flip in a 4 KiB file.  Reported, no target.
 *  huge_coverage: the boot-like pattern (1 GiB private, 64 scattered
 *    4 KiB pages shared, back to private, then all shared and touched):
 *    bytes of the view mapped huge, ours against the QEMU way (a THP
 *    shared backing whose given-up pages are punched).  Target: 100%.
 *
 * Needs shmem THP ("advise"): set up when root and put back afterwards,
 * else it says why and measures nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"
#include "gmem.h"

#define MiB		(1ULL << 20)
#define GiB		(1ULL << 30)
#define PAGE		4096ULL
#define THP_KNOB	"/sys/kernel/mm/transparent_hugepage/shmem_enabled"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE	25
#endif

static volatile uint64_t sink;

static int knob(const char *path, char *get, size_t len, const char *set)
{
	FILE *f = fopen(path, set ? "we" : "re");
	int ok;

	if (!f)
		return -1;
	ok = set ? fputs(set, f) >= 0 : fgets(get, (int)len, f) != NULL;
	return fclose(f) || !ok ? -1 : 0;
}

/* Bytes of [addr, addr + len) that /proc/self/smaps shows PMD-mapped. */
static uint64_t smaps_pmd(const void *addr, size_t len)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	uintptr_t lo, hi, a = (uintptr_t)addr;
	char line[256];
	unsigned long kb;
	uint64_t n = 0;
	int in = 0;

	if (!f)
		bench_die("/proc/self/smaps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (!(line[0] >= 'A' && line[0] <= 'Z') &&
		    sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = lo >= a && hi <= a + len;
		else if (in && sscanf(line, "ShmemPmdMapped: %lu", &kb) == 1)
			n += (uint64_t)kb << 10;
	}
	fclose(f);
	return n;
}

static uint64_t huge_flags(bool huge)
{
	return huge ? GMEM_FLAG_HUGEPAGE | 21ULL << GMEM_HUGE_SHIFT : 0;
}

static struct gmem *make(uint64_t size, uint64_t flags)
{
	struct gmem_create_args args = { .size = size, .flags = flags };
	struct gmem *g;

	bench_check(gmem_create(&args, &g), "gmem_create");
	return g;
}

static int convert(struct gmem *g, uint64_t off, uint64_t len, int private)
{
	struct gmem_attributes a = {
		.offset = off,
		.size = len,
		.attributes = private ? GMEM_ATTR_PRIVATE : 0,
	};

	return gmem_set_attributes(g, &a);
}

static double random_reads(const char *base, uint64_t size, uint64_t n)
{
	uint64_t seed = 0x2545F4914F6CDD1DULL, sum = 0, t = bench_now();

	for (uint64_t i = 0; i < n; i++)
		sum += *(const volatile uint64_t *)(base +
			(bench_rand(&seed) % size & ~7ULL));
	sink = sum;
	return (double)(bench_now() - t) / (double)n;
}

static void nop_invalidate(void *o, uint64_t off, uint64_t size,
			   unsigned int why)
{
	(void)o, (void)off, (void)size, (void)why;
}

static const struct gmem_binding_ops nop_ops = {
	.invalidate = nop_invalidate,
};

/*
 * The guest view's base, after get_pfn() of every huge page (order 9)
 * or every page: the addresses an owner would map.
 */
static char *pfn_base(struct gmem *g, struct gmem_binding *b, uint64_t size)
{
	struct gmem_pfn pfn;
	char *base = NULL;

	for (uint64_t idx = 0; idx < size / PAGE;) {
		bench_check(gmem_get_pfn(b, idx, GMEM_ACCESS_SHARED, &pfn),
			    "gmem_get_pfn");
		base = (char *)pfn.addr - pfn.offset;
		bench_check(gmem_put_pfn(b, idx, GMEM_ACCESS_SHARED),
			    "gmem_put_pfn");
		idx += 1ULL << pfn.order;
	}
	(void)g;
	return base;
}

static void reads(bool quick)
{
	uint64_t n = quick ? 2000000 : 20000000, size = GiB;
	double v[2][BENCH_ROUNDS], p[2][BENCH_ROUNDS];
	struct gmem *g[2];
	struct gmem_binding *b[2];
	char *view[2], *base[2];

	for (int h = 0; h < 2; h++) {
		g[h] = make(size, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED |
			    huge_flags(h));
		bench_check(gmem_mmap(g[h], 0, size, PROT_READ | PROT_WRITE,
				      (void **)&view[h]), "gmem_mmap");
		for (uint64_t off = 0; off < size; off += PAGE)
			view[h][off] = 1;
		bench_check(gmem_bind(g[h], 0, size, &nop_ops, NULL, &b[h]),
			    "gmem_bind");
		base[h] = pfn_base(g[h], b[h], size);
	}
	printf("# huge_read: view PMD-mapped %llu MiB (2 MiB file), %llu MiB "
	       "(4 KiB file)\n",
	       (unsigned long long)(smaps_pmd(view[1], size) / MiB),
	       (unsigned long long)(smaps_pmd(view[0], size) / MiB));
	for (int r = 0; r < BENCH_ROUNDS; r++) {
		for (int h = 0; h < 2; h++) {
			v[h][r] = random_reads(view[h], size, n);
			p[h][r] = random_reads(base[h], size, n);
		}
	}
	bench_report_time("huge_read_view", n, bench_median(v[1], BENCH_ROUNDS),
			  "4k_view", bench_median(v[0], BENCH_ROUNDS),
			  (struct bench_target){ BENCH_RATIO_LE, 1 / 1.3 });
	bench_report_time("huge_read_pfn", n, bench_median(p[1], BENCH_ROUNDS),
			  "4k_pfn", bench_median(p[0], BENCH_ROUNDS),
			  (struct bench_target){ BENCH_RATIO_LE, 1 / 1.3 });
	for (int h = 0; h < 2; h++) {
		gmem_unbind(b[h]);
		gmem_munmap(g[h], view[h], size);
		gmem_close(g[h]);
	}
}

static double flip(bool huge, uint64_t n, uint64_t *splits)
{
	const uint64_t size = 64 * MiB, page = 10 * MiB + 77 * PAGE;
	struct gmem *g = make(size, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED |
			      huge_flags(huge));
	struct gmem_stats st;
	uint64_t t;
	char *v;

	bench_check(gmem_mmap(g, 0, size, PROT_READ | PROT_WRITE, (void **)&v),
		    "gmem_mmap");
	memset(v, 1, size);
	t = bench_now();
	for (uint64_t i = 0; i < n; i++) {
		bench_check(convert(g, page, PAGE, 1), "to private");
		bench_check(convert(g, page, PAGE, 0), "to shared");
		v[page]++;
	}
	t = bench_now() - t;
	gmem_stat(g, &st, sizeof(st));
	*splits = st.splits;
	if (huge && smaps_pmd(v, size) != size)
		printf("# huge_flip: only %llu of %llu MiB huge at the end\n",
		       (unsigned long long)(smaps_pmd(v, size) / MiB),
		       (unsigned long long)(size / MiB));
	gmem_munmap(g, v, size);
	gmem_close(g);
	return (double)t / (double)n;
}

/* The pattern, ours: in place, the view merged back where uniform. */
static uint64_t coverage_ours(uint64_t size)
{
	struct gmem *g = make(size, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED |
			      huge_flags(true));
	uint64_t seed = 99, pages[64], huge;
	char *v;

	bench_check(gmem_mmap(g, 0, size, PROT_READ | PROT_WRITE, (void **)&v),
		    "gmem_mmap");
	memset(v, 1, size);
	bench_check(convert(g, 0, size, 1), "all private");
	for (int i = 0; i < 64; i++) {
		pages[i] = bench_rand(&seed) % (size / PAGE) * PAGE;
		bench_check(convert(g, pages[i], PAGE, 0), "page shared");
		v[pages[i]] = 2;
	}
	for (int i = 0; i < 64; i++)
		bench_check(convert(g, pages[i], PAGE, 1), "page private");
	bench_check(convert(g, 0, size, 0), "all shared");
	for (uint64_t off = 0; off < size; off += PAGE)
		sink += (uint8_t)v[off];
	huge = smaps_pmd(v, size);
	gmem_munmap(g, v, size);
	gmem_close(g);
	return huge;
}

/* The pattern, QEMU's way: discard by punching the shared backing. */
static uint64_t coverage_qemu(uint64_t size)
{
	int fd = memfd_create("qemu-shared", MFD_CLOEXEC);
	int mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	uint64_t seed = 99, pages[64], huge;
	char *area, *v;

	bench_check_errno(fd, "memfd_create");
	bench_check_errno(ftruncate(fd, (off_t)size), "ftruncate");
	area = mmap(NULL, size + 2 * MiB, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		bench_die("mmap: %s", strerror(errno));
	v = (char *)(((uintptr_t)area + 2 * MiB - 1) & ~(2 * MiB - 1));
	if (mmap(v, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
		 0) == MAP_FAILED)
		bench_die("mmap: %s", strerror(errno));
	bench_check_errno(madvise(v, size, MADV_HUGEPAGE), "MADV_HUGEPAGE");
	memset(v, 1, size);
	bench_check_errno(fallocate(fd, mode, 0, (off_t)size), "punch all");
	for (int i = 0; i < 64; i++) {
		pages[i] = bench_rand(&seed) % (size / PAGE) * PAGE;
		v[pages[i]] = 2;
	}
	for (int i = 0; i < 64; i++)
		bench_check_errno(fallocate(fd, mode, (off_t)pages[i],
					    (off_t)PAGE), "punch page");
	for (uint64_t off = 0; off < size; off += PAGE)
		sink += (uint8_t)v[off];
	huge = smaps_pmd(v, size);
	munmap(area, size + 2 * MiB);
	close(fd);
	return huge;
}

int main(int argc, char **argv)
{
	bool quick = bench_quick(argc, argv);
	char saved[128] = "", *mode, *end;
	uint64_t n = quick ? 200 : 2000, splits[2], size = quick ? 256 * MiB :
							   GiB;
	double ours, base;

	if (knob(THP_KNOB, saved, sizeof(saved), NULL) ||
	    knob(THP_KNOB, NULL, 0, "advise")) {
		printf("# bench_huge: skipped: cannot set %s to advise "
		       "(not root?)\n", THP_KNOB);
		return 0;
	}
	reads(quick);

	base = flip(false, n, &splits[0]);
	ours = flip(true, n, &splits[1]);
	bench_report_time("huge_flip", n, ours, "4k_flip", base, NO_TARGET);
	printf("# huge_flip: %llu splits and merges each in %llu flips\n",
	       (unsigned long long)splits[1], (unsigned long long)n);

	bench_report_bytes("huge_coverage", coverage_ours(size), "qemu_punch",
			   coverage_qemu(size),
			   (struct bench_target){ BENCH_BYTES_GE,
						  (double)size });

	mode = strchr(saved, '[');
	end = mode ? strchr(mode, ']') : NULL;
	if (mode && end) {
		*end = 0;
		knob(THP_KNOB, NULL, 0, mode + 1);
	}
	return 0;
}
