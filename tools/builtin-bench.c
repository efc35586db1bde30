// SPDX-License-Identifier: MIT
/*
 * builtin-bench.c - "gmemctl bench": libgmem's in-place conversion side
 * by side with the peers' approach, in one run, on four workloads; a
 * table with ratios, a JSON file and gnuplot PNGs.
 *
 * Variants (every one starts all private, as confidential guest RAM):
 *   libgmem         gmem_set_attributes() on a file with one host view
 *   qemu            QEMU's way (bench/qemu_bitmap.c): 1 bit per 4 KiB
 *                   page, a memfd for shared and a second file for
 *                   private, the side given up punched on every
 *                   conversion
 *   qemu-nodiscard  the same with shared discard disabled: to private
 *                   leaves the shared page allocated (and mapped); to
 *                   shared still punches the private side
 *   floor           the bare system calls libgmem's view uses, by hand
 *                   (bench/floor.c): MADV_DONTNEED / UFFDIO_CONTINUE
 *   libgmem-noview  random and fragment only, for information: libgmem
 *                   without a host view, so the state and the checks
 *                   alone (a view maps every shared page, see view.c)
 *
 * Variants are in bench-side.c, plots in bench-plot.c (bench.h).
 *
 * Workloads:
 *   flip      OVMF's DMA pattern on a 1 GiB guest: each transaction
 *             converts 1-2 pages shared, the device touches them, they
 *             go back private; rounds interleave the variants
 *   boot      a boot on guest sizes from 1 GiB to 1 TiB (sparse): create,
 *             accept the first 512 MiB (--quick: 256 MiB) in 2 MiB
 *             chunks, share the swiotlb
 *             (6% of RAM, 64 MiB..1 GiB as Linux sizes it for SEV, at
 *             most half of what was accepted) in 2 MiB conversions and
 *             let the device write 64 MiB of it, then 5,000 DMA
 *             transactions of 1-8 pages (grub's count, edk2 BZ 4171)
 *   random    1,000,000 one-page conversions, random page and direction
 *             (one seed for all), on 1 TiB, nothing touched
 *   fragment  1,000,000 one-page shared islands spread over 1 TiB, then
 *             the whole file back to private in one call
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"
#include "gmemctl.h"
#include "output.h"

#define ROUNDS		5		/* flip: interleaved rounds */
#define CHUNK		(2 * MiB)
static const char usage[] =
"usage: gmemctl bench [--quick] [--json FILE] [--plots DIR] [--seed N]\n"
"                     [--only LIST]\n"
"\n"
"Runs libgmem's in-place conversion side by side with, in the same run:\n"
"  qemu            QEMU's approach (bench/qemu_bitmap.c): a bitmap of\n"
"                  4 KiB pages, a memfd for shared and a second file for\n"
"                  private memory, punch-hole of the side given up on\n"
"                  every conversion\n"
"  qemu-nodiscard  the same with shared discard disabled\n"
"  floor           the bare system calls of libgmem's userfaultfd view\n"
"  libgmem-noview  (random, fragment) libgmem without a host view\n"
"on four workloads:\n"
"  flip      OVMF DMA: 1-2 pages shared, touched, private, 100,000 times\n"
"  boot      a boot on 1 GiB to 1 TiB guests: accept, swiotlb, DMA\n"
"  random    1,000,000 random 4 KiB conversions on 1 TiB\n"
"  fragment  1,000,000 shared islands on 1 TiB, then all back private\n"
"and prints a table per workload; \"vs libgmem\" is the variant's time\n"
"over libgmem's (above 1: libgmem is faster).\n"
"\n"
"options:\n"
"  --quick       about 10x less work (under 20 s)\n"
"  --json FILE   write every result as JSON to FILE (- for stdout, then\n"
"                no tables)\n"
"  --plots DIR   write PNG plots to DIR (needs gnuplot): latency\n"
"                distributions, boot time and memory against guest size;\n"
"                DIR (made if missing) and gnuplot are checked before\n"
"                anything runs\n"
"  --seed N      seed of the random sequences, 1 or more (default 1; 0\n"
"                is refused, as by gmemctl demo)\n"
"  --only LIST   run only these workloads, a comma-separated list of\n"
"                flip, boot, random, fragment (empty or unknown: usage\n"
"                error)\n"
"  -h, --help    this text\n"
"\n"
"Numbers are decimal or hex with 0x.\n"
"\n"
"exit status: 0 ok, 1 failure, 2 usage error, 77 skipped (--plots\n"
"without gnuplot).\n";

struct cfg {
	bool quick;
	uint64_t seed;
	bool want[4];			/* flip, boot, random, fragment */
	bool have_floor;		/* userfaultfd works here */
};

static int failed(enum variant v, const char *what, int err)
{
	out_error("bench: %s: %s: %s", vname[v], what, strerror(-err));
	return EXIT_FAIL;
}

/* ---- statistics ------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static uint32_t clamp_ns(uint64_t ns)
{
	return ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

/* Sort lat[n]; p50, p99 and the curve for the plots. */
static void percentiles(uint32_t *lat, uint64_t n, double *p50, double *p99,
			struct curve *c)
{
	if (!n) {
		*p50 = *p99 = NAN;
		return;
	}
	qsort(lat, n, sizeof(*lat), cmp_u32);
	*p50 = lat[n / 2];
	*p99 = lat[n * 99 / 100];
	if (c) {
		for (unsigned int i = 0; i < QUANTILES; i++)
			c->q[i] = lat[(uint64_t)((i + 0.5) / QUANTILES *
						 (double)n)];
		c->set = true;
	}
}

static double ratio(double x, double base)
{
	return base > 0 ? x / base : NAN;
}

/* Not run: no userfaultfd for the floor; no view where pages are touched. */
static bool skip_variant(const struct cfg *c, enum variant v, bool touches)
{
	return (v == V_FLOOR && !c->have_floor) || (v == V_NOVIEW && touches);
}

/* ---- flip: the OVMF DMA pattern --------------------------------------- */

#define FLIP_SIZE	GiB
#define FLIP_DMA_OFF	(64 * MiB)
#define FLIP_SLOTS	64
#define FLIP_SLOT_PAGES	8

struct flip_state {
	struct side s;
	bool created;
	uint32_t *lat;
	uint64_t nlat;
	double round_ns[ROUNDS];	/* per transaction, each round */
	uint64_t bad;			/* touches that found other contents */
	unsigned char expect[FLIP_SLOTS * 2];
};

static int flip_round(struct flip_state *f, uint64_t n, uint64_t seed,
		      unsigned int round)
{
	char *host = side_host(&f->s);
	uint64_t t = bench_now();
	int ret;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t r = bench_rand(&seed), slot = r % FLIP_SLOTS;
		uint64_t np = 1 + ((r >> 32) & 1), t0, t1;
		uint64_t off = FLIP_DMA_OFF +
			       slot * FLIP_SLOT_PAGES * page_size();

		t0 = bench_now();
		ret = side_convert(&f->s, off, np * page_size(), false);
		t1 = bench_now();
		if (ret)
			return ret;
		f->lat[f->nlat++] = clamp_ns(t1 - t0);
		for (uint64_t p = 0; p < np; p++) {
			volatile unsigned char *b = (unsigned char *)host +
						    off + p * page_size();

			f->bad += *b != f->expect[slot * 2 + p];
			*b = ++f->expect[slot * 2 + p];
		}
		t0 = bench_now();
		ret = side_convert(&f->s, off, np * page_size(), true);
		t1 = bench_now();
		if (ret)
			return ret;
		f->lat[f->nlat++] = clamp_ns(t1 - t0);
	}
	f->round_ns[round] = (double)(bench_now() - t) / (double)n;
	return 0;
}

static int bench_flip(const struct cfg *c, struct json *j,
		      struct results *res)
{
	uint64_t n = c->quick ? 10000 : 100000, per = n / ROUNDS;
	struct flip_state st[NR_V];
	struct out_table *t;
	double p50, p99, base = 0, ns[NR_V] = { 0 };
	int ret = 0, v;

	memset(st, 0, sizeof(st));
	for (v = 0; v < NR_V; v++) {
		if (skip_variant(c, v, true))
			continue;
		ret = side_create(&st[v].s, v, FLIP_SIZE);
		st[v].created = !ret;
		if (!ret)
			ret = side_accept(&st[v].s, FLIP_DMA_OFF, FLIP_SLOTS *
					  FLIP_SLOT_PAGES * page_size());
		if (ret) {
			ret = failed(v, "flip setup", ret);
			goto out;
		}
		st[v].lat = malloc(sizeof(uint32_t) * 2 * n);
		if (!st[v].lat) {
			ret = failed(v, "flip", -ENOMEM);
			goto out;
		}
	}
	out_progress_begin("flip", ROUNDS * NR_V);
	for (unsigned int r = 0; r < ROUNDS; r++) {
		for (v = 0; v < NR_V; v++) {
			if (skip_variant(c, v, true))
				continue;
			ret = flip_round(&st[v], per, c->seed + r, r);
			if (ret) {
				ret = failed(v, "flip conversion", ret);
				goto out;
			}
			out_progress(r * NR_V + v + 1);
		}
	}
	out_progress_end();

	t = out_table_new(NULL, 7, "variant", "per transaction",
			  "conversions/s", "p50", "p99", "contents",
			  "vs libgmem");
	json_obj_begin(j, NULL);
	json_str(j, "workload", "flip");
	json_u64(j, "guest_size", FLIP_SIZE);
	json_u64(j, "transactions", per * ROUNDS);
	json_arr_begin(j, "results");
	for (v = 0; v < NR_V; v++) {
		struct flip_state *f = &st[v];
		double conv_s, tx;

		if (skip_variant(c, v, true))
			continue;
		tx = bench_median(f->round_ns, ROUNDS);
		conv_s = 2e9 / tx;
		percentiles(f->lat, f->nlat, &p50, &p99, &res->flip[v]);
		if (v == V_GMEM)
			base = tx;
		ns[v] = tx;
		out_table_row(t, vname[v], fmt_ns(tx),
			      fmt_count((uint64_t)conv_s), fmt_ns(p50),
			      fmt_ns(p99), f->bad ? "lost" : "kept",
			      fmt_ratio(ratio(tx, base)));
		json_obj_begin(j, NULL);
		json_str(j, "variant", vname[v]);
		json_dbl(j, "ns_per_transaction", tx);
		json_dbl(j, "conversions_per_second", conv_s);
		json_dbl(j, "p50_ns", p50);
		json_dbl(j, "p99_ns", p99);
		json_u64(j, "allocated", side_allocated(&f->s));
		json_bool(j, "contents_preserved", f->bad == 0);
		json_dbl(j, "vs_libgmem", ratio(tx, base));
		json_obj_end(j);
	}
	json_arr_end(j);
	json_obj_end(j);
	out_line("\nflip: OVMF DMA pattern, %s transactions of 1-2 pages on a "
		 "%s guest (shared, device touch, private)",
		 fmt_count(per * ROUNDS), fmt_bytes(FLIP_SIZE));
	out_table_print(t);
	out_line("  contents: whether a buffer still holds what the device "
		 "wrote last time (qemu punches it; qemu-nodiscard keeps a "
		 "second, still mapped copy)");
	if (ns[V_QEMU] > 0 && ns[V_QEMU_ND] > 0)
		out_line("  The 2022 SEV-SNP measurement (1 GB guest, whole "
			 "boot): 32 s without private memory, 1 m 43 s with "
			 "punch-hole on every conversion, 1 m 08 s with shared "
			 "discard disabled.  These baselines are only the "
			 "userspace part (no KVM ioctl, no exits): here the "
			 "discard costs %s per transaction.",
			 fmt_ns(ns[V_QEMU] - ns[V_QEMU_ND]));
	if (st[V_GMEM].bad || (c->have_floor && st[V_FLOOR].bad)) {
		out_error("bench: flip: in-place contents were lost");
		ret = EXIT_FAIL;
	}
out:
	out_progress_end();
	for (v = 0; v < NR_V; v++) {
		if (st[v].created)
			side_destroy(&st[v].s);
		free(st[v].lat);
	}
	return ret;
}

/* ---- boot: against guest size ----------------------------------------- */

#define BOOT_DMA	5000		/* grub boot: ~5,000 conversions */
#define BOOT_REPS	5		/* the median of 5 is reported */

struct boot_run {
	uint64_t create, accept, swiotlb, dma;	/* ns */
	uint64_t allocated, tracking;
};

static uint64_t boot_swiotlb(uint64_t size, uint64_t accepted)
{
	uint64_t sw = size / 100 * 6;

	sw = sw < 64 * MiB ? 64 * MiB : sw > GiB ? GiB : sw;
	if (sw > accepted / 2)
		sw = accepted / 2;
	return sw / CHUNK * CHUNK;
}

static int boot_one(enum variant v, uint64_t size, uint64_t accepted,
		    uint64_t seed, struct boot_run *b)
{
	uint64_t sw = boot_swiotlb(size, accepted), sw_off = accepted - sw;
	uint64_t dma_off = 16 * MiB, t, off, nr;
	struct side s;
	char *host;
	int ret;

	t = bench_now();
	ret = side_create(&s, v, size);
	b->create = bench_now() - t;
	if (ret)
		return failed(v, "boot: create", ret);
	host = side_host(&s);

	t = bench_now();
	for (off = 0; off < accepted && !ret; off += CHUNK)
		ret = side_accept(&s, off, CHUNK);
	b->accept = bench_now() - t;
	if (ret)
		goto err;

	t = bench_now();
	for (off = 0; off < sw && !ret; off += CHUNK)
		ret = side_convert(&s, sw_off + off, CHUNK, false);
	if (!ret)	/* the device's first I/O goes through the swiotlb */
		memset(host + sw_off, 0xb5, sw < 64 * MiB ? sw : 64 * MiB);
	b->swiotlb = bench_now() - t;
	if (ret)
		goto err;

	t = bench_now();
	for (nr = 0; nr < BOOT_DMA && !ret; nr++) {
		uint64_t r = bench_rand(&seed), np = 1 + (r >> 40) % 8;
		uint64_t o = dma_off + (r % 512) * 8 * page_size();

		ret = side_convert(&s, o, np * page_size(), false);
		if (!ret) {
			memset(host + o, 0xd3, np * page_size());
			ret = side_convert(&s, o, np * page_size(), true);
		}
	}
	b->dma = bench_now() - t;
	if (ret)
		goto err;
	b->allocated = side_allocated(&s);
	b->tracking = side_tracking(&s, &nr);
	side_destroy(&s);
	return 0;

err:
	side_destroy(&s);
	return failed(v, "boot: conversion", ret);
}

static uint64_t boot_total(const struct boot_run *b)
{
	return b->create + b->accept + b->swiotlb + b->dma;
}

/* The repetition whose total is the median. */
static struct boot_run boot_median(struct boot_run reps[][MAX_SIZES][NR_V],
				   unsigned int i, int v)
{
	unsigned int best = 0;

	for (unsigned int r = 0; r < BOOT_REPS; r++) {
		unsigned int below = 0, above = 0;

		for (unsigned int o = 0; o < BOOT_REPS; o++) {
			below += boot_total(&reps[o][i][v]) <
				 boot_total(&reps[r][i][v]);
			above += boot_total(&reps[o][i][v]) >
				 boot_total(&reps[r][i][v]);
		}
		if (below <= BOOT_REPS / 2 && above <= BOOT_REPS / 2)
			best = r;
	}
	return reps[best][i][v];
}

static int bench_boot(const struct cfg *c, struct json *j,
		      struct results *res)
{
	static const uint64_t full[] = { GiB, 4 * GiB, 16 * GiB, 64 * GiB,
					 256 * GiB, TiB };
	static const uint64_t quick[] = { GiB, 32 * GiB, TiB };
	const uint64_t *sizes = c->quick ? quick : full;
	unsigned int nsizes = c->quick ? 3 : 6, i;
	uint64_t accept_max = c->quick ? 256 * MiB : 512 * MiB;
	struct boot_run reps[BOOT_REPS][MAX_SIZES][NR_V];
	struct boot_run runs[MAX_SIZES][NR_V];
	struct out_table *t;
	unsigned int r, done = 0;
	int ret = 0, v;

	/* Repetitions outermost, so a slow moment hits every variant. */
	out_progress_begin("boot", BOOT_REPS * nsizes * NR_V);
	for (r = 0; r < BOOT_REPS; r++) {
		for (i = 0; i < nsizes; i++) {
			uint64_t acc = sizes[i] < accept_max ? sizes[i] :
				       accept_max;

			for (v = 0; v < NR_V; v++) {
				if (skip_variant(c, v, true))
					continue;
				ret = boot_one(v, sizes[i], acc, c->seed,
					       &reps[r][i][v]);
				if (ret)
					return ret;
				out_progress(++done);
			}
		}
	}
	out_progress_end();
	for (i = 0; i < nsizes; i++)
		for (v = 0; v < NR_V; v++)
			runs[i][v] = boot_median(reps, i, v);

	t = out_table_new(NULL, 9, "variant", "guest", "total", "accept",
			  "swiotlb", "5,000 DMA", "allocated", "tracking",
			  "vs libgmem");
	json_obj_begin(j, NULL);
	json_str(j, "workload", "boot");
	json_u64(j, "dma_transactions", BOOT_DMA);
	json_arr_begin(j, "points");
	res->nboot = nsizes;
	for (i = 0; i < nsizes; i++) {
		struct boot_point *p = &res->boot[i];
		uint64_t acc = sizes[i] < accept_max ? sizes[i] : accept_max;
		double base = 0;

		p->size = sizes[i];
		json_obj_begin(j, NULL);
		json_u64(j, "guest_size", sizes[i]);
		json_u64(j, "accepted", acc);
		json_u64(j, "swiotlb", boot_swiotlb(sizes[i], acc));
		json_arr_begin(j, "results");
		for (v = 0; v < NR_V; v++) {
			struct boot_run *b = &runs[i][v];
			double total;

			if (skip_variant(c, v, true)) {
				p->total[v] = NAN;
				continue;
			}
			total = (double)boot_total(b);
			if (v == V_GMEM)
				base = total;
			p->total[v] = total;
			p->mem[v] = b->allocated + b->tracking;
			p->tracking[v] = b->tracking;
			if (i == 0 || i == nsizes - 1)
				out_table_row(t, vname[v],
					      fmt_bytes(sizes[i]),
					      fmt_ns(total),
					      fmt_ns((double)b->accept),
					      fmt_ns((double)b->swiotlb),
					      fmt_ns((double)b->dma),
					      fmt_bytes(b->allocated),
					      fmt_bytes(b->tracking),
					      fmt_ratio(ratio(total, base)));
			json_obj_begin(j, NULL);
			json_str(j, "variant", vname[v]);
			json_dbl(j, "total_ns", total);
			json_u64(j, "create_ns", b->create);
			json_u64(j, "accept_ns", b->accept);
			json_u64(j, "swiotlb_ns", b->swiotlb);
			json_u64(j, "dma_ns", b->dma);
			json_u64(j, "allocated", b->allocated);
			json_u64(j, "tracking_bytes", b->tracking);
			json_dbl(j, "vs_libgmem", ratio(total, base));
			json_obj_end(j);
		}
		json_arr_end(j);
		json_obj_end(j);
	}
	json_arr_end(j);
	json_obj_end(j);
	out_line("\nboot: accept %s in 2 MiB chunks, share the swiotlb in "
		 "2 MiB conversions, %s DMA transactions of 1-8 pages; "
		 "median of %d (smallest and largest guest here, all sizes "
		 "in the JSON and plots)", fmt_bytes(accept_max),
		 fmt_count(BOOT_DMA), BOOT_REPS);
	out_table_print(t);
	return 0;
}

/* ---- random and fragment: one-page conversions on 1 TiB --------------- */

#define BIG_SIZE	TiB
#define BIG_PAGES	(BIG_SIZE / page_size())

/*
 * Both workloads run every variant at once, a fifth of the operations
 * at a time in turn, so that a slow moment of the machine (this is
 * often a virtual machine) falls on all of them alike.
 */
struct big {
	struct side s;
	bool created;
	uint32_t *lat;
	double round_ns[ROUNDS];	/* per operation, each round */
	uint64_t seed;			/* random: each variant's sequence */
};

static void big_free(struct big *b)
{
	for (int v = 0; v < NR_V; v++) {
		if (b[v].created)
			side_destroy(&b[v].s);
		free(b[v].lat);
	}
}

static int big_setup(const struct cfg *c, struct big *b, uint64_t n,
		     const char *what)
{
	memset(b, 0, sizeof(*b) * NR_V);
	for (int v = 0; v < NR_V; v++) {
		int ret;

		if (skip_variant(c, v, false))
			continue;
		ret = side_create(&b[v].s, v, BIG_SIZE);
		if (ret)
			return failed(v, what, ret);
		b[v].created = true;
		b[v].seed = c->seed * 0x2545f4914f6cdd1dULL;
		b[v].lat = malloc(sizeof(uint32_t) * n);
		if (!b[v].lat)
			return failed(v, what, -ENOMEM);
	}
	return 0;
}

/* Operations [from, to) of the workload on one variant. */
static int random_ops(struct big *b, uint64_t from, uint64_t to,
		      uint64_t *ns)
{
	uint64_t t = bench_now();
	int ret = 0;

	for (uint64_t i = from; i < to && !ret; i++) {
		uint64_t r = bench_rand(&b->seed), t0 = bench_now();

		ret = side_convert(&b->s, (r >> 36) * page_size(), page_size(),
				   r & 1);
		b->lat[i] = clamp_ns(bench_now() - t0);
	}
	*ns = bench_now() - t;
	return ret;
}

static int fragment_ops(struct big *b, uint64_t from, uint64_t to,
			uint64_t stride, uint64_t *ns)
{
	uint64_t t = bench_now();
	int ret = 0;

	for (uint64_t i = from; i < to && !ret; i++) {
		uint64_t t0 = bench_now();

		ret = side_convert(&b->s, i * stride * page_size(), page_size(),
				   false);
		b->lat[i] = clamp_ns(bench_now() - t0);
	}
	*ns = bench_now() - t;
	return ret;
}

/* Every variant, ROUNDS turns each; fragment when stride != 0. */
static int big_run(const struct cfg *c, struct big *b, uint64_t n,
		   uint64_t stride, const char *what)
{
	out_progress_begin(what, ROUNDS * NR_V);
	for (unsigned int r = 0; r < ROUNDS; r++) {
		uint64_t from = n * r / ROUNDS, to = n * (r + 1) / ROUNDS;

		for (int v = 0; v < NR_V; v++) {
			uint64_t ns = 0;
			int ret;

			if (skip_variant(c, v, false))
				continue;
			ret = stride ? fragment_ops(&b[v], from, to, stride,
						    &ns) :
				       random_ops(&b[v], from, to, &ns);
			if (ret)
				return failed(v, what, ret);
			b[v].round_ns[r] = (double)ns / (double)(to - from);
			out_progress(r * NR_V + v + 1);
		}
	}
	out_progress_end();
	return 0;
}

static int bench_random(const struct cfg *c, struct json *j,
			struct results *res)
{
	uint64_t n = c->quick ? 100000 : 1000000;
	struct big b[NR_V];
	struct out_table *t;
	double base = 0;
	int ret, v;

	ret = big_setup(c, b, n, "random");
	if (!ret)
		ret = big_run(c, b, n, 0, "random");
	if (ret) {
		big_free(b);
		return ret;
	}
	t = out_table_new(NULL, 7, "variant", "per conversion", "p50", "p99",
			  "allocated", "tracking", "vs libgmem");
	json_obj_begin(j, NULL);
	json_str(j, "workload", "random");
	json_u64(j, "guest_size", BIG_SIZE);
	json_u64(j, "conversions", n);
	json_arr_begin(j, "results");
	for (v = 0; v < NR_V; v++) {
		uint64_t tracking, ranges, alloc;
		double p50, p99, per;

		if (skip_variant(c, v, false))
			continue;
		per = bench_median(b[v].round_ns, ROUNDS);
		if (v == V_GMEM)
			base = per;
		percentiles(b[v].lat, n, &p50, &p99, &res->random[v]);
		tracking = side_tracking(&b[v].s, &ranges);
		alloc = side_allocated(&b[v].s);
		out_table_row(t, vname[v], fmt_ns(per), fmt_ns(p50),
			      fmt_ns(p99), fmt_bytes(alloc),
			      fmt_bytes(tracking), fmt_ratio(ratio(per, base)));
		json_obj_begin(j, NULL);
		json_str(j, "variant", vname[v]);
		json_dbl(j, "ns_per_conversion", per);
		json_dbl(j, "p50_ns", p50);
		json_dbl(j, "p99_ns", p99);
		json_u64(j, "allocated", alloc);
		json_u64(j, "tracking_bytes", tracking);
		if (v == V_GMEM || v == V_NOVIEW)
			json_u64(j, "nr_ranges", ranges);
		json_dbl(j, "vs_libgmem", ratio(per, base));
		json_obj_end(j);
	}
	json_arr_end(j);
	json_obj_end(j);
	big_free(b);
	out_line("\nrandom: %s one-page conversions on %s, random page and "
		 "direction, nothing touched", fmt_count(n),
		 fmt_bytes(BIG_SIZE));
	out_table_print(t);
	return 0;
}

static int bench_fragment(const struct cfg *c, struct json *j)
{
	uint64_t n = c->quick ? 100000 : 1000000, stride = BIG_PAGES / n;
	uint64_t back[NR_V] = { 0 };
	struct big b[NR_V];
	struct out_table *t;
	double base = 0;
	int ret, v;

	ret = big_setup(c, b, n, "fragment");
	if (!ret)
		ret = big_run(c, b, n, stride, "fragment");
	if (ret) {
		big_free(b);
		return ret;
	}
	t = out_table_new(NULL, 8, "variant", "per island", "p99",
			  "state ranges", "tracking", "all back private",
			  "allocated", "vs libgmem");
	json_obj_begin(j, NULL);
	json_str(j, "workload", "fragment");
	json_u64(j, "guest_size", BIG_SIZE);
	json_u64(j, "islands", n);
	json_arr_begin(j, "results");
	for (v = 0; v < NR_V && !ret; v++) {
		uint64_t tracking, ranges, alloc;
		double p50, p99, per, total;
		char nr[32];

		if (skip_variant(c, v, false))
			continue;
		tracking = side_tracking(&b[v].s, &ranges);
		alloc = side_allocated(&b[v].s);
		back[v] = bench_now();
		ret = side_convert(&b[v].s, 0, BIG_SIZE, true);
		back[v] = bench_now() - back[v];
		if (ret) {
			ret = failed(v, "fragment: back to private", ret);
			break;
		}
		/* Give its memory back before the next one is timed. */
		side_destroy(&b[v].s);
		b[v].created = false;
		per = bench_median(b[v].round_ns, ROUNDS);
		total = per * (double)n + (double)back[v];
		if (v == V_GMEM)
			base = total;
		percentiles(b[v].lat, n, &p50, &p99, NULL);
		snprintf(nr, sizeof(nr), "%s", ranges ? fmt_count(ranges) :
			 "-");
		out_table_row(t, vname[v], fmt_ns(per), fmt_ns(p99), nr,
			      fmt_bytes(tracking), fmt_ns((double)back[v]),
			      fmt_bytes(alloc), fmt_ratio(ratio(total, base)));
		json_obj_begin(j, NULL);
		json_str(j, "variant", vname[v]);
		json_dbl(j, "ns_per_island", per);
		json_dbl(j, "p50_ns", p50);
		json_dbl(j, "p99_ns", p99);
		json_u64(j, "tracking_bytes", tracking);
		if (v == V_GMEM || v == V_NOVIEW)
			json_u64(j, "nr_ranges", ranges);
		json_u64(j, "back_to_private_ns", back[v]);
		json_u64(j, "allocated", alloc);
		json_dbl(j, "vs_libgmem", ratio(total, base));
		json_obj_end(j);
	}
	json_arr_end(j);
	json_obj_end(j);
	big_free(b);
	out_line("\nfragment: %s one-page shared islands spread over %s, "
		 "then the whole file back to private in one call (vs "
		 "libgmem: both together)", fmt_count(n), fmt_bytes(BIG_SIZE));
	out_table_print(t);
	return ret;
}

/* ---- main ------------------------------------------------------------- */

static int parse_only(const char *list, bool *want)
{
	static const char *const names[] = { "flip", "boot", "random",
					     "fragment" };
	char *copy = strdup(list), *save = NULL, *w;
	int ret = -EINVAL;		/* until one name is found */

	if (!copy)
		return -ENOMEM;
	memset(want, 0, 4 * sizeof(*want));
	for (w = strtok_r(copy, ",", &save); w;
	     w = strtok_r(NULL, ",", &save)) {
		unsigned int i;

		for (i = 0; i < 4 && strcmp(w, names[i]); i++)
			;
		if (i == 4) {
			ret = -EINVAL;
			break;
		}
		want[i] = true;
		ret = 0;
	}
	free(copy);
	return ret;
}

/*
 * Allocate and free bytes of memory once, before anything is measured.
 * A virtual machine's memory is often backed by the hypervisor only when
 * first touched, which costs several times a normal allocation; without
 * this the first variant to allocate pays it for the others.
 */
static void warm_up(uint64_t bytes)
{
	int fd = memfd_create("gmemctl-warm-up", MFD_CLOEXEC);

	if (fd < 0)
		return;
	for (uint64_t off = 0; off < bytes; off += 256 * MiB)
		if (fallocate(fd, 0, (off_t)off, 256 * MiB))
			break;
	close(fd);
}

static bool floor_works(void)
{
	struct floor_uffd f;

	if (floor_uffd_create(&f, 2 * MiB))
		return false;
	floor_uffd_destroy(&f);
	return true;
}

int cmd_bench(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "json", required_argument, NULL, 'j' },
		{ "plots", required_argument, NULL, 'p' },
		{ "seed", required_argument, NULL, 's' },
		{ "only", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cfg c = { .seed = 1, .want = { true, true, true, true } };
	const char *json_path = NULL, *plot_dir = NULL;
	struct results *res;
	struct utsname un;
	struct json j;
	FILE *jf = NULL;
	int opt, err, ret = 0;
	uint64_t t;

	opterr = 0;
	optind = 0;
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'q':
			c.quick = true;
			break;
		case 'j':
			json_path = optarg;
			break;
		case 'p':
			plot_dir = optarg;
			break;
		case 's':
			err = parse_u64(optarg, &c.seed);
			if (err || !c.seed)
				return out_usage_error(usage, "bench: bad seed "
						       "'%s': %s", optarg, err ?
						       parse_error(err) :
						       "1 or more (0 would "
						       "make the sequence all "
						       "zeros)");
			break;
		case 'o':
			if (parse_only(optarg, c.want))
				return out_usage_error(usage, "bench: bad "
						       "--only '%s': a comma-"
						       "separated list of "
						       "flip, boot, random, "
						       "fragment", optarg);
			break;
		case 'h':
			return out_help(usage);
		case ':':
			return out_usage_error(usage, "bench: %s needs a "
					       "value", argv[optind - 1]);
		default:
			return out_usage_error(usage, "bench: unknown option "
					       "'%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return out_usage_error(usage, "bench: unexpected argument "
				       "'%s'", argv[optind]);
	if (plot_dir) {
		ret = bench_plots_check(plot_dir);
		if (ret)
			return ret;
	}
	out_init(json_path && !strcmp(json_path, "-") ? OUT_QUIET : OUT_TEXT);
	if (json_path) {
		jf = strcmp(json_path, "-") ? fopen(json_path, "w") : stdout;
		if (!jf) {
			out_error("bench: %s: %s", json_path, strerror(errno));
			return EXIT_FAIL;
		}
	} else {
		jf = fopen("/dev/null", "w");
		if (!jf) {
			out_error("bench: /dev/null: %s", strerror(errno));
			return EXIT_FAIL;
		}
	}
	res = calloc(1, sizeof(*res));
	if (!res) {
		out_error("bench: out of memory");
		fclose(jf);
		return EXIT_FAIL;
	}
	c.have_floor = floor_works();
	uname(&un);
	t = bench_now();
	warm_up(c.quick ? GiB : 6 * GiB);
	out_line("gmemctl bench%s: libgmem against QEMU's approach and the "
		 "syscall floor (Linux %s, %ld CPUs)", c.quick ? " --quick" :
		 "", un.release, sysconf(_SC_NPROCESSORS_ONLN));
	if (!c.have_floor)
		out_line("  (no userfaultfd here: the floor is skipped)");

	json_begin(&j, jf);
	json_str(&j, "command", "bench");
	json_bool(&j, "quick", c.quick);
	json_u64(&j, "seed", c.seed);
	json_str(&j, "kernel", un.release);
	json_u64(&j, "cpus", (uint64_t)sysconf(_SC_NPROCESSORS_ONLN));
	json_arr_begin(&j, "workloads");
	if (c.want[0])
		ret = bench_flip(&c, &j, res);
	if (!ret && c.want[1])
		ret = bench_boot(&c, &j, res);
	if (!ret && c.want[2])
		ret = bench_random(&c, &j, res);
	if (!ret && c.want[3])
		ret = bench_fragment(&c, &j);
	json_arr_end(&j);
	json_dbl(&j, "seconds", (double)(bench_now() - t) / 1e9);
	json_bool(&j, "ok", !ret);
	json_end(&j);
	if (jf != stdout)
		fclose(jf);
	if (!ret && plot_dir)
		ret = bench_plots(plot_dir, c.want[0] || c.want[2], c.want[1],
				  res);
	if (!ret)
		out_line("\n%.1f s%s%s", (double)(bench_now() - t) / 1e9,
			 json_path && strcmp(json_path, "-") ? "; JSON: " : "",
			 json_path && strcmp(json_path, "-") ? json_path : "");
	free(res);
	return ret;
}
