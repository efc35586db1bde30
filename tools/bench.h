/* SPDX-License-Identifier: MIT */
/*
 * bench.h - what the files of "gmemctl bench" share: the variants under
 * comparison (bench-side.c), the results the plots are drawn from and
 * the plotting entry point (bench-plot.c), the workloads (bench-flip.c,
 * bench-big.c, bench-peer.c) and their statistics (bench-stats.c).
 * builtin-bench.c owns the command: options, the run, the JSON document
 * around them.
 */
#ifndef GMEMCTL_BENCH_H
#define GMEMCTL_BENCH_H

#include <stdbool.h>
#include <stdint.h>

#include "floor.h"
#include "gmem.h"
#include "qemu_bitmap.h"

#define ROUNDS		5		/* interleaved rounds per workload */
#define CHUNK		(2ULL << 20)	/* accept and swiotlb granularity */
#define QUANTILES	200		/* points per latency curve */
#define MAX_SIZES	8		/* guest sizes of the boot workload */

enum variant { V_GMEM, V_QEMU, V_QEMU_ND, V_FLOOR, V_NOVIEW, NR_V };

extern const char *const vname[NR_V];

/* One variant's instance of a guest-memory region. */
struct side {
	enum variant v;
	uint64_t size;
	struct gmem *g;			/* libgmem */
	char *view;
	struct qemu_dual q;		/* qemu, qemu-nodiscard */
	struct floor_uffd f;		/* floor */
};

/*
 * The variants behind one interface (bench-side.c); 0 or -errno.  A
 * region starts all private; side_host() is where a device touches
 * shared pages (NULL for libgmem-noview, which has no view).
 */
int side_create(struct side *s, enum variant v, uint64_t size);
void side_destroy(struct side *s);
int side_convert(struct side *s, uint64_t off, uint64_t len, bool to_private);
char *side_host(struct side *s);
/* The guest accepts [off, +len): its private pages get memory. */
int side_accept(struct side *s, uint64_t off, uint64_t len);
/* Bytes behind the region, in every backing file. */
uint64_t side_allocated(struct side *s);
/* Bytes tracking the state (tree, bitmap or none); ranges if known. */
uint64_t side_tracking(struct side *s, uint64_t *nr_ranges);

/* Sorted latencies of one variant, reduced to QUANTILES points. */
struct curve {
	double q[QUANTILES];		/* ns at quantile (i + 0.5) / N */
	bool set;
};

struct boot_point {
	uint64_t size;
	double total[NR_V];		/* ns */
	uint64_t mem[NR_V];		/* allocated + tracking bytes */
	uint64_t tracking[NR_V];
};

/* What the plots need, gathered while the workloads run. */
struct results {
	struct curve flip[NR_V];
	struct curve random[NR_V];
	struct boot_point boot[MAX_SIZES];
	unsigned int nboot;
};

/*
 * Write DIR/bench-latency.png (latency) and DIR/bench-boot-time.png and
 * DIR/bench-boot-memory.png (boot) with gnuplot: an exit code.
 */
int bench_plots(const char *dir, bool latency, bool boot,
		const struct results *r);
/*
 * Before anything runs: gnuplot is there (else EXIT_SKIP) and dir exists
 * or can be made, is a directory and is writable (else EXIT_USAGE), so
 * that a long run does not end in an unwritable --plots DIR.  0 if fine.
 */
int bench_plots_check(const char *dir);

/* What to run (builtin-bench.c's options). */
struct cfg {
	bool quick;
	uint64_t seed;
	bool want[5];			/* flip, boot, random, fragment,
					   peer */
	bool have_floor;		/* userfaultfd works here */
};

/* Statistics (bench-stats.c). */
int failed(enum variant v, const char *what, int err);	/* EXIT_FAIL */
uint32_t clamp_ns(uint64_t ns);
/* Sort lat[n]; p50, p99 (NaN if n is 0) and, if c, the plot's curve. */
void percentiles(uint32_t *lat, uint64_t n, double *p50, double *p99,
		 struct curve *c);
double ratio(double x, double base);		/* NaN without a base */
bool skip_variant(const struct cfg *c, enum variant v, bool touches);

/*
 * The workloads: each runs every variant, prints its table, adds its
 * object to j and its curves to res; an exit code.
 */
struct json;
int bench_flip(const struct cfg *c, struct json *j, struct results *res);
int bench_boot(const struct cfg *c, struct json *j, struct results *res);
int bench_random(const struct cfg *c, struct json *j, struct results *res);
int bench_fragment(const struct cfg *c, struct json *j);
int bench_peer(const struct cfg *c, struct json *j);
/*
 * The device process of the peer workload (bench-peer.c): gmemctl
 * exec'ed again with GMEMCTL_BENCH_DEVICE=spec; an exit code.
 */
#define BENCH_DEVICE_ENV	"GMEMCTL_BENCH_DEVICE"
int bench_device(const char *spec);

#endif /* GMEMCTL_BENCH_H */
