// SPDX-License-Identifier: MIT
/*
 * bench_snapshot.c - gmem_snapshot_save() and gmem_snapshot_restore()
 * against the floor: copying the same allocated bytes with no format,
 * no checksum and no state, measured in the same run, round by round
 * (bench_report_paired(): the median of per-round ratios).
 *
 *  save     a 1 GiB memfd file (4 KiB pages, half private, all
 *           allocated) to a memfd stream; floor: the backing's data
 *           runs (SEEK_DATA) copied to the same kind of stream with
 *           pread()+write() through a 256 KiB buffer, and with
 *           copy_file_range(), whichever is faster in that round.
 *           Target: time ratio <= 1.25, i.e. throughput >= 0.8x.
 *  restore  that stream into a new file; floor: the same bytes read
 *           from a flat copy with read() and written into a new memfd
 *           with pwrite().  Target as for save.
 *  sparse   saving a 1 TiB file with the same 1 GiB allocated (in 64
 *           runs spread over the TiB) against saving the 1 GiB file:
 *           target ratio <= 1.2.
 *
 * ops are 4 KiB pages of contents, ns_per_op the time per page.
 * -q: 128 MiB instead of 1 GiB.
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
#include "internal.h"

#define CHUNK	(256U << 10)
#define RUNS	64

static uint64_t ps;
static char *buf;

static int new_memfd(const char *name)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	bench_check_errno(fd, "memfd_create");
	return fd;
}

static void reset(int fd)
{
	bench_check_errno(ftruncate(fd, 0), "ftruncate");
	bench_check_errno(lseek(fd, 0, SEEK_SET), "lseek");
}

/*
 * size bytes, all allocated and written, the second half private.
 * Written by populate while all private, then half converted: no host
 * path ever existed, so no page is parked (rehome.c) and the backing's
 * data runs are all there is, for the floor too.
 */
static struct gmem *dense(uint64_t size)
{
	struct gmem_create_args a = { .size = size, .flags = GMEM_FLAG_MMAP };
	struct gmem_attributes at = { .offset = 0, .size = size / 2 };
	struct gmem *g;

	bench_check(gmem_create(&a, &g), "gmem_create");
	for (uint64_t o = 0; o < size; o += CHUNK) {
		for (uint64_t i = 0; i < CHUNK; i += ps)
			memset(buf + i, (int)((o + i) / ps), (size_t)ps);
		bench_check(gmem_populate(g, o, buf, CHUNK), "gmem_populate");
	}
	bench_check(gmem_set_attributes(g, &at), "gmem_set_attributes");
	return g;
}

/* A 1 TiB file with bytes allocated in RUNS runs spread over it. */
static struct gmem *sparse(uint64_t bytes)
{
	struct gmem_create_args a = { .size = 1ULL << 40 };
	uint64_t run = bytes / RUNS, stride = a.size / RUNS;
	struct gmem *g;

	bench_check(gmem_create(&a, &g), "gmem_create 1 TiB");
	for (uint64_t i = 0; i < RUNS; i++) {
		bench_check(gmem_fallocate(g, FALLOC_FL_KEEP_SIZE, i * stride,
					   run), "gmem_fallocate");
		bench_check(gmem_populate(g, i * stride, buf, CHUNK),
			    "gmem_populate");
	}
	return g;
}

static double time_save(struct gmem *g, int out)
{
	uint64_t t;

	reset(out);
	t = bench_now();
	bench_check(gmem_snapshot_save(g, out, NULL), "gmem_snapshot_save");
	return (double)(bench_now() - t);
}

/* The floor of save: g's data runs, copied with pread() and write(). */
static double floor_save_rw(struct gmem *g, int out)
{
	uint64_t p = 0, rs, re, t;

	reset(out);
	t = bench_now();
	while (p < g->npages) {
		bench_check(gmem_backing_next_data(&g->b, p, g->npages, &rs,
						   &re), "next_data");
		if (rs >= g->npages)
			break;
		for (uint64_t o = rs * ps; o < re * ps; o += CHUNK) {
			size_t n = re * ps - o < CHUNK ? re * ps - o : CHUNK;

			if (pread(g->b.fd, buf, n, (off_t)o) != (ssize_t)n ||
			    write(out, buf, n) != (ssize_t)n)
				bench_die("floor copy: %s", strerror(errno));
		}
		p = re;
	}
	return (double)(bench_now() - t);
}

/* The same with copy_file_range(). */
static double floor_save_cfr(struct gmem *g, int out)
{
	uint64_t p = 0, rs, re, t;

	reset(out);
	t = bench_now();
	while (p < g->npages) {
		bench_check(gmem_backing_next_data(&g->b, p, g->npages, &rs,
						   &re), "next_data");
		if (rs >= g->npages)
			break;
		for (loff_t o = (loff_t)(rs * ps); o < (loff_t)(re * ps);) {
			ssize_t n = copy_file_range(g->b.fd, &o, out, NULL,
						    (size_t)(re * ps) - (size_t)o,
						    0);

			if (n <= 0)
				return -1;
		}
		p = re;
	}
	return (double)(bench_now() - t);
}

static double time_restore(int in)
{
	struct gmem_snapshot_restore_args ra = {
		.restore_flags = GMEM_RESTORE_AS_SAVED,
	};
	struct gmem *g;
	uint64_t t;
	double ns;

	bench_check_errno(lseek(in, 0, SEEK_SET), "lseek");
	t = bench_now();
	bench_check(gmem_snapshot_restore(in, &ra, &g),
		    "gmem_snapshot_restore");
	ns = (double)(bench_now() - t);
	gmem_close(g);
	return ns;
}

/* The floor of restore: a flat copy of the bytes into a new memfd. */
static double floor_restore(int flat, uint64_t size)
{
	int fd = new_memfd("floor-restore");
	uint64_t t;
	double ns;

	bench_check_errno(ftruncate(fd, (off_t)size), "ftruncate");
	bench_check_errno(lseek(flat, 0, SEEK_SET), "lseek");
	t = bench_now();
	for (uint64_t o = 0; o < size; o += CHUNK) {
		if (read(flat, buf, CHUNK) != CHUNK ||
		    pwrite(fd, buf, CHUNK, (off_t)o) != CHUNK)
			bench_die("floor restore: %s", strerror(errno));
	}
	ns = (double)(bench_now() - t);
	close(fd);
	return ns;
}

int main(int argc, char **argv)
{
	bool quick = bench_quick(argc, argv);
	uint64_t size = quick ? 128ULL << 20 : 1ULL << 30;
	double save[BENCH_ROUNDS], fsave[BENCH_ROUNDS];
	double rest[BENCH_ROUNDS], frest[BENCH_ROUNDS];
	double sp[BENCH_ROUNDS], dn[BENCH_ROUNDS];
	int out = new_memfd("stream"), flat = new_memfd("flat");
	int out2 = new_memfd("stream2");
	struct gmem *g, *s;
	unsigned int cfr_wins = 0;

	ps = (uint64_t)sysconf(_SC_PAGESIZE);
	buf = malloc(CHUNK);
	if (!buf)
		bench_die("out of memory");
	memset(buf, 0xa5, CHUNK);
	g = dense(size);
	/* The flat copy restore's floor reads: the allocated bytes. */
	floor_save_rw(g, flat);
	if ((uint64_t)lseek(flat, 0, SEEK_END) != size)
		bench_die("the file is not all allocated: %lld of %llu bytes",
			  (long long)lseek(flat, 0, SEEK_END),
			  (unsigned long long)size);
	for (unsigned int r = 0; r < BENCH_ROUNDS; r++) {
		double rw = floor_save_rw(g, out2), cfr = floor_save_cfr(g, out2);

		cfr_wins += cfr >= 0 && cfr < rw;
		fsave[r] = cfr >= 0 && cfr < rw ? cfr : rw;
		save[r] = time_save(g, out);
		frest[r] = floor_restore(flat, size);
		rest[r] = time_restore(out);
	}
	for (unsigned int r = 0; r < BENCH_ROUNDS; r++) {
		save[r] /= (double)(size / ps);
		fsave[r] /= (double)(size / ps);
		rest[r] /= (double)(size / ps);
		frest[r] /= (double)(size / ps);
	}
	printf("# %s file, 4 KiB pages, half private, all allocated; save's "
	       "floor: copy_file_range won %u of %d rounds, pread+write the "
	       "rest\n", quick ? "128 MiB" : "1 GiB", cfr_wins, BENCH_ROUNDS);
	bench_report_paired("snapshot_save", size / ps, save, "floor_copy", fsave,
			    BENCH_ROUNDS,
			    (struct bench_target){ BENCH_RATIO_LE, 1.25 });
	bench_report_paired("snapshot_restore", size / ps, rest, "floor_read_pwrite",
			    frest, BENCH_ROUNDS,
			    (struct bench_target){ BENCH_RATIO_LE, 1.25 });
	printf("# time ratio <= 1.25 is throughput >= 0.8x of the floor\n");

	s = sparse(size);
	for (unsigned int r = 0; r < BENCH_ROUNDS; r++) {
		sp[r] = time_save(s, out2);
		dn[r] = time_save(g, out);
	}
	for (unsigned int r = 0; r < BENCH_ROUNDS; r++) {
		sp[r] /= (double)(size / ps);
		dn[r] /= (double)(size / ps);
	}
	bench_report_paired("snapshot_save_sparse_1t", size / ps, sp,
			    "snapshot_save_dense", dn, BENCH_ROUNDS,
			    (struct bench_target){ BENCH_RATIO_LE, 1.2 });
	gmem_close(s);
	gmem_close(g);
	close(out);
	close(out2);
	close(flat);
	free(buf);
	return 0;
}
