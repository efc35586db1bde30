// SPDX-License-Identifier: MIT
/*
 * bench-big.c - the two "gmemctl bench" workloads of one-page
 * conversions on a sparse 1 TiB guest: random (random page and
 * direction) and fragment (1,000,000 shared islands, then all back to
 * private in one call).  Every variant runs at once, a fifth at a time.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "gmemctl.h"
#include "output.h"

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

int bench_random(const struct cfg *c, struct json *j,
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

int bench_fragment(const struct cfg *c, struct json *j)
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
