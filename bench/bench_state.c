// SPDX-License-Identifier: MIT
/*
 * bench_state.c - cost of tracking shared/private state: libgmem's state
 * tree (src/state.h, used directly) against QEMU's RamBlockAttributes
 * bitmap (bench/qemu_bitmap.c, 1 bit per 4 KiB page), on a 1 TiB file
 * (2^28 pages), all private at the start as confidential guest RAM is.
 * Ours converts with gmem_state_reserve() + gmem_state_set(), the
 * baseline with qbm_state_change(); no listeners, no memory behind.
 *
 *   state_whole_range  the whole file to shared and back; ns per
 *                      conversion (target: ours under 10 us)
 *   state_random_4k    1,000,000 one-page conversions, random page and
 *                      direction from one fixed-seed xorshift, so both
 *                      sides see the same sequence (target: ratio <= 1).
 *                      Also against QEMU's exact classification, which
 *                      scans to the end of the bitmap (information)
 *   api_random_4k      the same sequence through gmem_set_attributes()
 *                      on a 1 TiB gmem (memfd, sparse, no views): the
 *                      library's locking and checks on top of the tree
 *   state_lookup       1,000,000 random gmem_state_get() against
 *                      qbm_is_shared(), on the state left by the above
 *   state_mem_uniform  tracking memory of a uniform file (target: under
 *                      4096 bytes) and state_mem_random after the random
 *                      conversions: gmem_state_bytes() against the size
 *                      of the bitmap (neither counts its fixed struct)
 *
 * Each timing is the median of 5 rounds; a round runs ours and every
 * baseline one after the other.  Each random round starts from a new
 * all-private file on every side, so each side pays, inside the timing,
 * for faulting in the memory it uses: the tree as it grows, the bitmap
 * (32 MiB, calloc'd as QEMU's is) wherever a bit changes.  That cost is
 * fixed for the bitmap and small for the tree at few conversions, so
 * with -q (100,000 random operations, fewer whole-range conversions) the
 * random ratios favour the tree and are not comparable with a full run.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gmem.h"
#include "qemu_bitmap.h"
#include "state.h"

#define NPAGES		(1ULL << 28)
#define FILE_SIZE	(NPAGES << QBM_PAGE_SHIFT)
#define SEED_CONVERT	0x9e3779b97f4a7c15ULL
#define SEED_LOOKUP	0x2545f4914f6cdd1dULL

/* Defeats dead-code elimination of the lookups. */
static volatile uint64_t sink;

static void ours_convert(struct gmem_state *s, uint64_t start, uint64_t end,
			 unsigned int val)
{
	bench_check(gmem_state_reserve(s, start, end, val),
		    "gmem_state_reserve");
	gmem_state_set(s, start, end, val);
}

static void qbm_convert(struct qbm *q, uint64_t start, uint64_t end,
			bool to_private)
{
	bench_check(qbm_state_change(q, start << QBM_PAGE_SHIFT,
				     (end - start) << QBM_PAGE_SHIFT,
				     to_private), "qbm_state_change");
}

static void ours_init(struct gmem_state *s)
{
	bench_check(gmem_state_init(s, NPAGES, 1), "gmem_state_init");
}

/* One page and one direction (1 = to private) of the random sequence. */
static inline uint64_t next_op(uint64_t *seed, unsigned int *val)
{
	uint64_t r = bench_rand(seed);

	*val = r & 1;
	return r >> (64 - 28);
}

/* n conversions of the whole file: shared, private, shared, ... */
static double whole_ours(struct gmem_state *s, uint64_t n)
{
	uint64_t t = bench_now();

	for (uint64_t i = 0; i < n; i++)
		ours_convert(s, 0, NPAGES, (unsigned int)(i & 1));
	return (double)(bench_now() - t) / (double)n;
}

static double whole_qbm(struct qbm *q, uint64_t n)
{
	uint64_t t = bench_now();

	for (uint64_t i = 0; i < n; i++)
		qbm_convert(q, 0, NPAGES, i & 1);
	return (double)(bench_now() - t) / (double)n;
}

static double random_ours(struct gmem_state *s, uint64_t n, uint64_t seed)
{
	uint64_t t = bench_now();
	unsigned int val;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t p = next_op(&seed, &val);

		ours_convert(s, p, p + 1, val);
	}
	return (double)(bench_now() - t) / (double)n;
}

static double random_qbm(struct qbm *q, uint64_t n, uint64_t seed)
{
	uint64_t t = bench_now();
	unsigned int val;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t p = next_op(&seed, &val);

		qbm_convert(q, p, p + 1, val);
	}
	return (double)(bench_now() - t) / (double)n;
}

static double random_api(struct gmem *g, uint64_t n, uint64_t seed)
{
	uint64_t t = bench_now();
	unsigned int val;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t p = next_op(&seed, &val);
		struct gmem_attributes a = {
			.offset = p << QBM_PAGE_SHIFT,
			.size = QBM_PAGE_SIZE,
			.attributes = val ? GMEM_ATTR_PRIVATE : 0,
		};

		bench_check(gmem_set_attributes(g, &a), "gmem_set_attributes");
	}
	return (double)(bench_now() - t) / (double)n;
}

static double lookup_ours(struct gmem_state *s, uint64_t n)
{
	uint64_t seed = SEED_LOOKUP, sum = 0, t = bench_now();

	for (uint64_t i = 0; i < n; i++)
		sum += gmem_state_get(s, bench_rand(&seed) >> (64 - 28));
	t = bench_now() - t;
	sink = sum;
	return (double)t / (double)n;
}

static double lookup_qbm(const struct qbm *q, uint64_t n)
{
	uint64_t seed = SEED_LOOKUP, sum = 0, t = bench_now();

	for (uint64_t i = 0; i < n; i++)
		sum += qbm_is_shared(q, bench_rand(&seed) >> (64 - 28));
	t = bench_now() - t;
	sink = sum;
	return (double)t / (double)n;
}

static void qbm_new(struct qbm *q, bool scan_to_end)
{
	bench_check(qbm_create(q, FILE_SIZE), "qbm_create");
	q->scan_to_end = scan_to_end;
}

static struct gmem *api_create(void)
{
	struct gmem_create_args args = { .size = FILE_SIZE, .flags = 0 };
	struct gmem *g;

	bench_check(gmem_create(&args, &g), "gmem_create");
	return g;
}

/* Both sides must hold the same state, or the comparison means nothing. */
static void cross_check(struct gmem_state *s, const struct qbm *q,
			struct gmem *g, uint64_t n)
{
	uint64_t seed = SEED_LOOKUP, shared = qbm_count_shared(q);
	struct gmem_stats st;

	if (s->nr_private != NPAGES - shared)
		bench_die("state tree has %llu private pages, bitmap %llu",
			  (unsigned long long)s->nr_private,
			  (unsigned long long)(NPAGES - shared));
	bench_check(gmem_stat(g, &st, sizeof(st)), "gmem_stat");
	if (st.priv != s->nr_private << QBM_PAGE_SHIFT)
		bench_die("gmem_stat: %llu private bytes, expected %llu",
			  (unsigned long long)st.priv,
			  (unsigned long long)(s->nr_private <<
					       QBM_PAGE_SHIFT));
	for (uint64_t i = 0; i < n; i++) {
		uint64_t p = bench_rand(&seed) >> (64 - 28);

		if (gmem_state_get(s, p) == qbm_is_shared(q, p))
			bench_die("page %llu: tree and bitmap disagree",
				  (unsigned long long)p);
	}
}

int main(int argc, char **argv)
{
	bool quick = bench_quick(argc, argv);
	uint64_t n_whole = quick ? 20 : 200;
	uint64_t n_rand = quick ? 100000 : 1000000;
	double w_ours[BENCH_ROUNDS], w_qbm[BENCH_ROUNDS];
	double r_ours[BENCH_ROUNDS], r_qbm[BENCH_ROUNDS];
	double r_exact[BENCH_ROUNDS], r_api[BENCH_ROUNDS];
	double l_ours[BENCH_ROUNDS], l_qbm[BENCH_ROUNDS];
	struct gmem_state s;
	struct qbm q, qx;
	struct gmem *g;
	uint64_t uniform_bytes;
	unsigned int i;

	ours_init(&s);
	qbm_new(&q, false);

	/* Warm up: fault the bitmap in, so no round pays for that. */
	whole_ours(&s, 2);
	whole_qbm(&q, 2);
	for (i = 0; i < BENCH_ROUNDS; i++) {
		w_ours[i] = whole_ours(&s, n_whole);
		w_qbm[i] = whole_qbm(&q, n_whole);
	}
	uniform_bytes = gmem_state_bytes(&s);
	bench_report_time("state_whole_range", n_whole,
			  bench_median(w_ours, BENCH_ROUNDS), "qemu_bitmap",
			  bench_median(w_qbm, BENCH_ROUNDS),
			  (struct bench_target){ BENCH_NS_LT, 10000 });

	gmem_state_destroy(&s);
	qbm_destroy(&q);
	for (i = 0; i < BENCH_ROUNDS; i++) {
		/*
		 * Every round is a new all-private file: a new tree, gmem
		 * and bitmaps, whose memory is faulted in as it is first
		 * used, on both sides.  The last round's trees are freed
		 * and the heap given back first, so no round allocates
		 * from a heap of 400,000 freed chunks.
		 */
		if (i) {
			gmem_close(g);
			gmem_state_destroy(&s);
			qbm_destroy(&q);
			qbm_destroy(&qx);
		}
		malloc_trim(0);
		ours_init(&s);
		g = api_create();
		qbm_new(&q, false);
		qbm_new(&qx, true);

		r_ours[i] = random_ours(&s, n_rand, SEED_CONVERT);
		r_qbm[i] = random_qbm(&q, n_rand, SEED_CONVERT);
		r_exact[i] = random_qbm(&qx, n_rand, SEED_CONVERT);
		r_api[i] = random_api(g, n_rand, SEED_CONVERT);
	}
	cross_check(&s, &q, g, n_rand);
	if (memcmp(q.bitmap, qx.bitmap, qbm_bytes(&q)))
		bench_die("the two bitmap baselines disagree");
	bench_report_time("state_random_4k", n_rand,
			  bench_median(r_ours, BENCH_ROUNDS), "qemu_bitmap",
			  bench_median(r_qbm, BENCH_ROUNDS),
			  (struct bench_target){ BENCH_RATIO_LE, 1.0 });
	bench_report_time("state_random_4k", n_rand,
			  bench_median(r_ours, BENCH_ROUNDS),
			  "qemu_bitmap_scan_to_end",
			  bench_median(r_exact, BENCH_ROUNDS), NO_TARGET);
	bench_report_time("api_random_4k", n_rand,
			  bench_median(r_api, BENCH_ROUNDS), "qemu_bitmap",
			  bench_median(r_qbm, BENCH_ROUNDS), NO_TARGET);

	/*
	 * Warm: the same structures, already fragmented and faulted in,
	 * take another n_rand random conversions (a VMM that has been
	 * running for a while).  For information; the target is the cold
	 * run above, which includes building each structure.
	 */
	for (i = 0; i < BENCH_ROUNDS; i++) {
		uint64_t seed = SEED_CONVERT + 1 + i;

		r_ours[i] = random_ours(&s, n_rand, seed);
		r_qbm[i] = random_qbm(&q, n_rand, seed);
		r_api[i] = random_api(g, n_rand, seed);
	}
	bench_report_time("state_random_4k_warm", n_rand,
			  bench_median(r_ours, BENCH_ROUNDS), "qemu_bitmap",
			  bench_median(r_qbm, BENCH_ROUNDS), NO_TARGET);
	bench_report_time("api_random_4k_warm", n_rand,
			  bench_median(r_api, BENCH_ROUNDS), "qemu_bitmap",
			  bench_median(r_qbm, BENCH_ROUNDS), NO_TARGET);

	for (i = 0; i < BENCH_ROUNDS; i++) {
		l_ours[i] = lookup_ours(&s, n_rand);
		l_qbm[i] = lookup_qbm(&q, n_rand);
	}
	bench_report_time("state_lookup", n_rand,
			  bench_median(l_ours, BENCH_ROUNDS), "qemu_bitmap",
			  bench_median(l_qbm, BENCH_ROUNDS), NO_TARGET);

	bench_report_bytes("state_mem_uniform", uniform_bytes, "qemu_bitmap",
			   qbm_bytes(&q),
			   (struct bench_target){ BENCH_BYTES_LT, 4096 });
	bench_report_bytes("state_mem_random", gmem_state_bytes(&s),
			   "qemu_bitmap", qbm_bytes(&q), NO_TARGET);
	printf("# state_mem_random: %llu private of %llu pages, %llu runs\n",
	       (unsigned long long)s.nr_private, (unsigned long long)NPAGES,
	       (unsigned long long)s.nr_ranges);

	gmem_close(g);
	gmem_state_destroy(&s);
	qbm_destroy(&qx);
	qbm_destroy(&q);
	return 0;
}
