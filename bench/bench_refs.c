// SPDX-License-Identifier: MIT
/*
 * bench_refs.c - what keeping kernel references taken while a page was
 * shared away from private data costs (src/rehome.c, issue 10).
 *
 *   dma_private_use   the whole OVMF bounce-buffer pattern on one 4 KiB
 *                     page of a 1 GiB file: to shared, the device writes
 *                     it through the host view, to private, the guest
 *                     reads and writes it privately (gmem_get_pfn), so
 *                     every round re-homes the page.  Against the
 *                     syscall floor of the same steps without re-homing
 *                     (bench/floor.c, the guest side a plain mapping),
 *                     and against QEMU's dual backing (bench/qemu_bitmap.c,
 *                     which punches the side given up: a page freed and
 *                     one allocated every round, as re-homing does).
 *   to_private_<n>    converting n shared, written pages to private in
 *                     a file with a host view (so they are parked, or for
 *                     n > 64 re-homed at once) against the same in a file
 *                     that never had a host path (nothing to do), per
 *                     page: how the cost grows with the conversion.
 *
 * The median of 5 rounds; -q: fewer iterations.  Informational: the
 * targets of issue 10 are the flip's (bench_flip) and first touch's
 * (bench_fault); these show what re-homing adds where it happens.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"
#include "floor.h"
#include "gmem.h"
#include "qemu_bitmap.h"

#define FILE_SIZE	(1ULL << 30)
#define PAGE		4096ULL
#define OFF		(FILE_SIZE / 2)

static void on_invalidate(void *o, uint64_t off, uint64_t size,
			  unsigned int reason)
{
	(void)o, (void)off, (void)size, (void)reason;
}

static const struct gmem_binding_ops ops = { .invalidate = on_invalidate };

static void set_attr(struct gmem *g, uint64_t off, uint64_t len, bool priv)
{
	struct gmem_attributes a = {
		.offset = off, .size = len,
		.attributes = priv ? GMEM_ATTR_PRIVATE : 0,
	};

	bench_check(gmem_set_attributes(g, &a), "gmem_set_attributes");
}

struct ours {
	struct gmem *g;
	struct gmem_binding *b;
	char *view;
};

static void ours_setup(struct ours *o)
{
	struct gmem_create_args args = { .size = FILE_SIZE,
					 .flags = GMEM_FLAG_MMAP };
	void *v;

	bench_check(gmem_create(&args, &o->g), "gmem_create");
	bench_check(gmem_mmap(o->g, 0, FILE_SIZE, PROT_READ | PROT_WRITE, &v),
		    "gmem_mmap");
	o->view = v;
	bench_check(gmem_bind(o->g, 0, FILE_SIZE, &ops, NULL, &o->b),
		    "gmem_bind");
}

static void ours_teardown(struct ours *o)
{
	gmem_unbind(o->b);
	gmem_munmap(o->g, o->view, FILE_SIZE);
	gmem_close(o->g);
}

static double ours_dma(struct ours *o, uint64_t n)
{
	uint64_t t = bench_now();
	struct gmem_pfn pfn;

	for (uint64_t i = 0; i < n; i++) {
		set_attr(o->g, OFF, PAGE, false);
		(*(volatile unsigned char *)(o->view + OFF))++;	/* device */
		set_attr(o->g, OFF, PAGE, true);
		bench_check(gmem_get_pfn(o->b, OFF / PAGE, GMEM_ACCESS_PRIVATE,
					 &pfn), "gmem_get_pfn");
		(*(volatile unsigned char *)pfn.addr)++;		/* guest */
		bench_check(gmem_put_pfn(o->b, OFF / PAGE,
					 GMEM_ACCESS_PRIVATE), "gmem_put_pfn");
	}
	t = bench_now() - t;
	if (*(volatile unsigned char *)pfn.addr != (unsigned char)(2 * n))
		bench_die("ours: the page lost a write");
	*(volatile unsigned char *)pfn.addr = 0;
	return (double)t / (double)n;
}

static double floor_dma(struct floor_uffd *f, char *guest, uint64_t n)
{
	uint64_t t = bench_now();

	for (uint64_t i = 0; i < n; i++) {
		bench_check(floor_uffd_convert(f, OFF, PAGE, false),
			    "UFFDIO_CONTINUE");
		(*(volatile unsigned char *)(f->map + OFF))++;
		bench_check(floor_uffd_convert(f, OFF, PAGE, true), "madvise");
		(*(volatile unsigned char *)(guest + OFF))++;
	}
	t = bench_now() - t;
	return (double)t / (double)n;
}

static double qemu_dma(struct qemu_dual *d, char *guest, uint64_t n)
{
	uint64_t t = bench_now();

	for (uint64_t i = 0; i < n; i++) {
		bench_check(qemu_dual_convert(d, OFF, PAGE, false),
			    "qemu_dual_convert");
		(*(volatile unsigned char *)(d->host + OFF))++;
		bench_check(qemu_dual_convert(d, OFF, PAGE, true),
			    "qemu_dual_convert");
		(*(volatile unsigned char *)(guest + OFF))++;
	}
	t = bench_now() - t;
	return (double)t / (double)n;
}

/* n pages shared and written, then private: ns per page of the latter. */
static double to_private(struct gmem *g, char *w, uint64_t n, uint64_t reps)
{
	uint64_t total = 0;

	for (uint64_t r = 0; r < reps; r++) {
		uint64_t t;

		set_attr(g, 0, n * PAGE, false);
		for (uint64_t p = 0; p < n; p++)
			w[p * PAGE] = (char)(p + r + 1);
		t = bench_now();
		set_attr(g, 0, n * PAGE, true);
		total += bench_now() - t;
	}
	return (double)total / (double)(reps * n);
}

int main(int argc, char **argv)
{
	bool quick = bench_quick(argc, argv);
	uint64_t n = quick ? 5000 : 50000;
	static const uint64_t sizes[] = { 1, 16, 64, 256, 4096 };
	double o[BENCH_ROUNDS], f[BENCH_ROUNDS], q[BENCH_ROUNDS];
	struct floor_uffd fu;
	struct qemu_dual qd;
	struct ours ou;
	char *fguest, *qguest;

	ours_setup(&ou);
	bench_check(floor_uffd_create(&fu, FILE_SIZE), "floor_uffd_create");
	fguest = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		      fu.fd, 0);
	bench_check(qemu_dual_create(&qd, FILE_SIZE), "qemu_dual_create");
	qguest = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		      qd.private_fd, 0);
	if (fguest == MAP_FAILED || qguest == MAP_FAILED)
		bench_die("mmap: %s", strerror(errno));
	for (unsigned int i = 0; i < BENCH_ROUNDS; i++) {
		o[i] = ours_dma(&ou, n);
		f[i] = floor_dma(&fu, fguest, n);
		q[i] = qemu_dma(&qd, qguest, n);
	}
	bench_report_time("dma_private_use", n, bench_median(o, BENCH_ROUNDS),
			  "floor_uffd", bench_median(f, BENCH_ROUNDS),
			  NO_TARGET);
	bench_report_time("dma_private_use", n, bench_median(o, BENCH_ROUNDS),
			  "qemu_dual", bench_median(q, BENCH_ROUNDS),
			  NO_TARGET);

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uint64_t np = sizes[k], reps = (quick ? 200 : 2000) / np + 2;
		struct gmem_create_args args = { .size = np * PAGE,
						 .flags = GMEM_FLAG_MMAP };
		struct gmem *ge, *gu;
		char *ve, *wu, name[32];
		struct gmem_pfn pfn;
		struct gmem_binding *bu;
		void *v;

		/* Exposed: a view.  Unexposed: written through the guest. */
		bench_check(gmem_create(&args, &ge), "gmem_create");
		bench_check(gmem_mmap(ge, 0, np * PAGE, PROT_READ | PROT_WRITE,
				      &v), "gmem_mmap");
		ve = v;
		bench_check(gmem_create(&args, &gu), "gmem_create");
		bench_check(gmem_bind(gu, 0, np * PAGE, &ops, NULL, &bu),
			    "gmem_bind");
		bench_check(gmem_get_pfn(bu, 0, GMEM_ACCESS_PRIVATE, &pfn),
			    "gmem_get_pfn");
		bench_check(gmem_put_pfn(bu, 0, GMEM_ACCESS_PRIVATE),
			    "gmem_put_pfn");
		wu = (char *)pfn.addr;	/* the window: no host path */
		for (unsigned int i = 0; i < BENCH_ROUNDS; i++) {
			o[i] = to_private(ge, ve, np, reps);
			f[i] = to_private(gu, wu, np, reps);
		}
		snprintf(name, sizeof(name), "to_private_%llu",
			 (unsigned long long)np);
		bench_report_time(name, reps * np, bench_median(o, BENCH_ROUNDS),
				  "no_host_path", bench_median(f, BENCH_ROUNDS),
				  NO_TARGET);
		gmem_unbind(bu);
		gmem_close(gu);
		gmem_munmap(ge, ve, np * PAGE);
		gmem_close(ge);
	}
	munmap(qguest, FILE_SIZE);
	munmap(fguest, FILE_SIZE);
	qemu_dual_destroy(&qd);
	floor_uffd_destroy(&fu);
	ours_teardown(&ou);
	return 0;
}
