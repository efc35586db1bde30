// SPDX-License-Identifier: MIT
/*
 * bench_fault.c - first-touch fault throughput of a shared host view
 * against a plain memfd mapping: is a libgmem view as cheap to fault in
 * as the memory a VMM maps today?
 *
 *   ours      gmem_create(256 MiB, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED)
 *             and gmem_mmap() of the whole file (a vma-mode view)
 *   baseline  memfd_create + ftruncate + mmap(MAP_SHARED), same size
 *
 * Each measurement maps a new file and touches one byte per 4 KiB page,
 * first to last: every touch is a fault that allocates and clears a page
 * and maps it.  Only the touch loop is timed; creating, unmapping and
 * closing are not.  Results in ns per page (pages per second on the '#'
 * lines):
 *
 *   fault_write  one byte written per page (target: ours at least 0.9x
 *                the baseline's throughput, i.e. ratio <= 1.11)
 *   fault_read   one byte read per page (shmem allocates on read faults
 *                too); same target
 *
 * Paired rounds: each round runs ours and the baseline back to back (in
 * alternating order, so a drift of the machine's speed hits both), and
 * the ratio reported is the median of the rounds' ratios, which a busy
 * or throttling machine moves much less than either time.  -q: 64 MiB
 * instead of 256 MiB and fewer rounds.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"
#include "gmem.h"

#define PAGE	4096ULL
#define ROUNDS	11
#define ROUNDS_QUICK 5

static double ours(uint64_t size, bool write, bool report_mode)
{
	struct gmem_create_args args = {
		.size = size,
		.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
	};
	struct gmem_stats st;
	struct gmem *g;
	void *addr;
	double ns;

	bench_check(gmem_create(&args, &g), "gmem_create");
	bench_check(gmem_mmap(g, 0, size, PROT_READ | PROT_WRITE, &addr),
		    "gmem_mmap");
	if (report_mode) {
		bench_check(gmem_stat(g, &st, sizeof(st)), "gmem_stat");
		printf("# fault: views=%llu views_uffd=%llu\n",
		       (unsigned long long)st.views,
		       (unsigned long long)st.views_uffd);
	}
	ns = bench_touch(addr, size, write);
	bench_check(gmem_munmap(g, addr, size), "gmem_munmap");
	gmem_close(g);
	return ns;
}

static void report(const char *name, uint64_t pages, double *o, double *b,
		   unsigned int rounds)
{
	double ns = bench_median(o, rounds);
	double base_ns = bench_median(b, rounds);

	bench_report_paired(name, pages, o, "memfd_mmap", b, rounds,
			    (struct bench_target){ BENCH_RATIO_LE, 1.11 });
	printf("# %s: ours %.0f pages/s, memfd_mmap %.0f pages/s\n", name,
	       1e9 / ns, 1e9 / base_ns);
}

/* One round of one kind: ours and the baseline, first one then the other. */
static void round_of(uint64_t size, bool write, unsigned int i, double *o,
		     double *b)
{
	if (i & 1) {
		*b = bench_memfd_touch(size, write);
		*o = ours(size, write, false);
	} else {
		*o = ours(size, write, i == 0 && write);
		*b = bench_memfd_touch(size, write);
	}
}

int main(int argc, char **argv)
{
	bool quick = bench_quick(argc, argv);
	uint64_t size = quick ? 64ULL << 20 : 256ULL << 20;
	unsigned int rounds = quick ? ROUNDS_QUICK : ROUNDS;
	double ow[ROUNDS], bw[ROUNDS], orr[ROUNDS], br[ROUNDS];

	for (unsigned int i = 0; i < rounds; i++) {
		round_of(size, true, i, &ow[i], &bw[i]);
		round_of(size, false, i, &orr[i], &br[i]);
	}
	report("fault_write", size / PAGE, ow, bw, rounds);
	report("fault_read", size / PAGE, orr, br, rounds);
	return 0;
}
