// SPDX-License-Identifier: MIT
/*
 * bench_flip.c - the cost of flipping one 4 KiB page of a 1 GiB file to
 * private, back to shared, and touching it through the host view: what a
 * guest's bounce buffer (SNP page state change, TDX MapGPA) costs the
 * VMM, per flip.  Each iteration is one full cycle:
 *
 *   ours        gmem_set_attributes(P, private), (P, shared), then one
 *               read-modify-write of a byte at view + P; contents
 *               survive every flip (checked).
 *   floor       the same kernel mechanism by hand, no library: the
 *               least any implementation of it can cost.
 *   qemu_dual   QEMU's way (bench/qemu_bitmap.c): bitmap plus a punch of
 *               the side given up, so the touch allocates and clears a
 *               new page and the contents are lost (checked).
 *
 * Results:
 *   flip_4k_uffd  ours in a uffd-mode view (the file starts private)
 *                 against floor_uffd: memfd + MAP_SHARED + userfaultfd
 *                 (SIGBUS, minor shmem; missing + minor), MADV_DONTNEED
 *                 then UFFDIO_CONTINUE (target: ratio <= 1.5); and
 *                 against qemu_dual (target: ratio < 1.0).
 *   flip_4k_vma   for information: ours in a vma-mode view (the file
 *                 starts shared) against floor_vma: MAP_FIXED of an
 *                 empty sealed memfd over the page, then a PROT_NONE map
 *                 of the page, MADV_DONTFORK, mprotect, mremap over it.
 *   flip_8k_uffd  for information: the OVMF pattern, two pages at a
 *                 time, against floor_uffd and qemu_dual on two pages.
 *
 * 15 rounds of 40,000 iterations (4,000 with -q), each round running
 * every variant once, in turn; the ratios are medians of the per-round
 * ratios (bench_report_paired(): this kind of machine changes speed by a
 * third within seconds, and a variant compared with its neighbour in
 * time sees the same machine).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"
#include "floor.h"
#include "gmem.h"
#include "qemu_bitmap.h"

#define FILE_SIZE	(1ULL << 30)
#define PAGE		4096ULL
#define OFF_4K		(FILE_SIZE / 2)		/* page P */
#define OFF_8K		(OFF_4K + (2ULL << 20))	/* next 2 MiB */
#define FLIP_ROUNDS	15

/* One read-modify-write per page, as a device model would touch it. */
static inline void touch(char *addr, uint64_t len)
{
	for (uint64_t o = 0; o < len; o += PAGE)
		(*(volatile unsigned char *)(addr + o))++;
}

/* After n cycles from first[], each page must read first + n (or want). */
static void check_bytes(const char *who, const char *addr, uint64_t len,
			const unsigned char *first, uint64_t n, int want)
{
	for (uint64_t o = 0, i = 0; o < len; o += PAGE, i++) {
		unsigned char got = *(const volatile unsigned char *)(addr + o);
		unsigned char exp = want >= 0 ? (unsigned char)want :
				    (unsigned char)(first[i] + n);

		if (got != exp)
			bench_die("%s: page +%llu reads %u, expected %u", who,
				  (unsigned long long)o, got, exp);
	}
}

static void first_bytes(const char *addr, uint64_t len, unsigned char *out)
{
	for (uint64_t o = 0, i = 0; o < len; o += PAGE, i++)
		out[i] = *(const volatile unsigned char *)(addr + o);
}

/* ours: a gmem and one view of the whole file. */
struct ours {
	struct gmem *g;
	char *view;
};

static void set_attr(struct gmem *g, uint64_t off, uint64_t len,
		     bool to_private)
{
	struct gmem_attributes a = {
		.offset = off,
		.size = len,
		.attributes = to_private ? GMEM_ATTR_PRIVATE : 0,
	};

	bench_check(gmem_set_attributes(g, &a), "gmem_set_attributes");
}

static void ours_setup(struct ours *o, uint64_t flags, uint64_t want_uffd)
{
	struct gmem_create_args args = { .size = FILE_SIZE, .flags = flags };
	struct gmem_stats st;
	void *addr;

	bench_check(gmem_create(&args, &o->g), "gmem_create");
	bench_check(gmem_mmap(o->g, 0, FILE_SIZE, PROT_READ | PROT_WRITE,
			      &addr), "gmem_mmap");
	o->view = addr;
	bench_check(gmem_stat(o->g, &st, sizeof(st)), "gmem_stat");
	printf("# flip_%s: views=%llu views_uffd=%llu\n",
	       want_uffd ? "uffd" : "vma", (unsigned long long)st.views,
	       (unsigned long long)st.views_uffd);
	if (st.views != 1 || st.views_uffd != want_uffd)
		bench_die("the view is not in %s mode (views_uffd=%llu)",
			  want_uffd ? "uffd" : "vma",
			  (unsigned long long)st.views_uffd);
	/* Both flip ranges start shared, with their pages allocated. */
	set_attr(o->g, OFF_4K, PAGE, false);
	set_attr(o->g, OFF_8K, 2 * PAGE, false);
	touch(o->view + OFF_4K, PAGE);
	touch(o->view + OFF_8K, 2 * PAGE);
}

static void ours_teardown(struct ours *o)
{
	bench_check(gmem_munmap(o->g, o->view, FILE_SIZE), "gmem_munmap");
	gmem_close(o->g);
}

static double ours_run(struct ours *o, uint64_t off, uint64_t len,
		       uint64_t n)
{
	unsigned char first[2];
	uint64_t t;

	first_bytes(o->view + off, len, first);
	t = bench_now();
	for (uint64_t i = 0; i < n; i++) {
		set_attr(o->g, off, len, true);
		set_attr(o->g, off, len, false);
		touch(o->view + off, len);
	}
	t = bench_now() - t;
	check_bytes("ours", o->view + off, len, first, n, -1);
	return (double)t / (double)n;
}

/* floor_uffd: the uffd mechanism by hand (bench/floor.c). */
static void floor_uffd_setup(struct floor_uffd *f)
{
	bench_check(floor_uffd_create(f, FILE_SIZE), "floor_uffd_create");
	/* The flip pages exist in the page cache from the start. */
	bench_check_errno(fallocate(f->fd, FALLOC_FL_KEEP_SIZE, OFF_4K, PAGE),
			  "fallocate");
	bench_check_errno(fallocate(f->fd, FALLOC_FL_KEEP_SIZE, OFF_8K,
				    2 * PAGE), "fallocate");
}

static double floor_uffd_run(struct floor_uffd *f, uint64_t off,
			     uint64_t len, uint64_t n)
{
	char *addr = f->map + off;
	unsigned char first[2];
	uint64_t t;

	/* Mapped before the first read, as a shared page is. */
	bench_check(floor_uffd_convert(f, off, len, true), "madvise");
	bench_check(floor_uffd_convert(f, off, len, false), "UFFDIO_CONTINUE");
	first_bytes(addr, len, first);
	t = bench_now();
	for (uint64_t i = 0; i < n; i++) {
		bench_check(floor_uffd_convert(f, off, len, true), "madvise");
		bench_check(floor_uffd_convert(f, off, len, false),
			    "UFFDIO_CONTINUE");
		touch(addr, len);
	}
	t = bench_now() - t;
	check_bytes("floor_uffd", addr, len, first, n, -1);
	return (double)t / (double)n;
}

/* floor_vma: the hole-and-back mechanism by hand. */
struct floor_vma {
	int fd;
	int hole;
	char *map;
};

static void floor_vma_setup(struct floor_vma *f)
{
	f->fd = memfd_create("floor-vma", MFD_CLOEXEC);
	bench_check_errno(f->fd, "memfd_create");
	bench_check_errno(ftruncate(f->fd, FILE_SIZE), "ftruncate");
	f->hole = memfd_create("floor-hole", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	bench_check_errno(f->hole, "memfd_create");
	bench_check_errno(fcntl(f->hole, F_ADD_SEALS, F_SEAL_GROW |
				F_SEAL_SHRINK | F_SEAL_SEAL), "F_ADD_SEALS");
	f->map = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		      f->fd, 0);
	if (f->map == MAP_FAILED)
		bench_die("mmap: %s", strerror(errno));
	bench_check_errno(madvise(f->map, FILE_SIZE, MADV_DONTFORK),
			  "madvise");
	touch(f->map + OFF_4K, PAGE);
}

static void floor_vma_teardown(struct floor_vma *f)
{
	munmap(f->map, FILE_SIZE);
	close(f->hole);
	close(f->fd);
}

static double floor_vma_run(struct floor_vma *f, uint64_t off, uint64_t len,
			    uint64_t n)
{
	char *addr = f->map + off;
	unsigned char first[2];
	uint64_t t;
	void *p;

	first_bytes(addr, len, first);
	t = bench_now();
	for (uint64_t i = 0; i < n; i++) {
		/* To private: every access past the hole's end is SIGBUS. */
		p = mmap(addr, len, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED, f->hole, (off_t)off);
		if (p == MAP_FAILED)
			bench_die("mmap hole: %s", strerror(errno));
		/* To shared: prepared out of sight, then moved in. */
		p = mmap(NULL, len, PROT_NONE, MAP_SHARED, f->fd, (off_t)off);
		if (p == MAP_FAILED)
			bench_die("mmap: %s", strerror(errno));
		bench_check_errno(madvise(p, len, MADV_DONTFORK), "madvise");
		bench_check_errno(mprotect(p, len, PROT_READ | PROT_WRITE),
				  "mprotect");
		if (mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
			   addr) == MAP_FAILED)
			bench_die("mremap: %s", strerror(errno));
		touch(addr, len);
	}
	t = bench_now() - t;
	check_bytes("floor_vma", addr, len, first, n, -1);
	return (double)t / (double)n;
}

/* qemu_dual: both backings; the flip ranges start shared. */
static void qemu_setup(struct qemu_dual *d)
{
	bench_check(qemu_dual_create(d, FILE_SIZE), "qemu_dual_create");
	bench_check(qemu_dual_convert(d, OFF_4K, PAGE, false),
		    "qemu_dual_convert");
	bench_check(qemu_dual_convert(d, OFF_8K, 2 * PAGE, false),
		    "qemu_dual_convert");
}

static double qemu_run(struct qemu_dual *d, uint64_t off, uint64_t len,
		       uint64_t n)
{
	uint64_t t = bench_now();

	for (uint64_t i = 0; i < n; i++) {
		bench_check(qemu_dual_convert(d, off, len, true),
			    "qemu_dual_convert");
		bench_check(qemu_dual_convert(d, off, len, false),
			    "qemu_dual_convert");
		touch(d->host + off, len);
	}
	t = bench_now() - t;
	/* Every flip lost the page: it was zero before the last touch. */
	check_bytes("qemu_dual", d->host + off, len, NULL, n, 1);
	return (double)t / (double)n;
}

int main(int argc, char **argv)
{
	uint64_t n = bench_quick(argc, argv) ? 4000 : 40000;
	double u4[FLIP_ROUNDS], fu4[FLIP_ROUNDS], q4[FLIP_ROUNDS];
	double v4[FLIP_ROUNDS], fv4[FLIP_ROUNDS];
	double u8[FLIP_ROUNDS], fu8[FLIP_ROUNDS], q8[FLIP_ROUNDS];
	struct ours ou, ov;
	struct floor_uffd fu;
	struct floor_vma fv;
	struct qemu_dual qd;

	ours_setup(&ou, GMEM_FLAG_MMAP, 1);
	ours_setup(&ov, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED, 0);
	floor_uffd_setup(&fu);
	floor_vma_setup(&fv);
	qemu_setup(&qd);

	for (unsigned int i = 0; i < FLIP_ROUNDS; i++) {
		u4[i] = ours_run(&ou, OFF_4K, PAGE, n);
		fu4[i] = floor_uffd_run(&fu, OFF_4K, PAGE, n);
		q4[i] = qemu_run(&qd, OFF_4K, PAGE, n);
		v4[i] = ours_run(&ov, OFF_4K, PAGE, n);
		fv4[i] = floor_vma_run(&fv, OFF_4K, PAGE, n);
		u8[i] = ours_run(&ou, OFF_8K, 2 * PAGE, n);
		fu8[i] = floor_uffd_run(&fu, OFF_8K, 2 * PAGE, n);
		q8[i] = qemu_run(&qd, OFF_8K, 2 * PAGE, n);
	}

	bench_report_paired("flip_4k_uffd", n, u4, "floor_uffd", fu4,
			    FLIP_ROUNDS,
			    (struct bench_target){ BENCH_RATIO_LE, 1.5 });
	bench_report_paired("flip_4k_uffd", n, u4, "qemu_dual", q4, FLIP_ROUNDS,
			    (struct bench_target){ BENCH_RATIO_LT, 1.0 });
	bench_report_paired("flip_4k_vma", n, v4, "floor_vma", fv4, FLIP_ROUNDS,
			    NO_TARGET);
	bench_report_paired("flip_8k_uffd", n, u8, "floor_uffd_8k", fu8,
			    FLIP_ROUNDS, NO_TARGET);
	bench_report_paired("flip_8k_uffd", n, u8, "qemu_dual_8k", q8,
			    FLIP_ROUNDS, NO_TARGET);

	qemu_dual_destroy(&qd);
	floor_vma_teardown(&fv);
	floor_uffd_destroy(&fu);
	ours_teardown(&ov);
	ours_teardown(&ou);
	return 0;
}
