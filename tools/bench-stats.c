// SPDX-License-Identifier: MIT
/*
 * bench-stats.c - the arithmetic every "gmemctl bench" workload shares:
 * latency percentiles and the curves the plots draw, ratios against
 * libgmem, which variants run where, and the one failure message.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "gmemctl.h"
#include "output.h"

int failed(enum variant v, const char *what, int err)
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

uint32_t clamp_ns(uint64_t ns)
{
	return ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

/* Sort lat[n]; p50, p99 and the curve for the plots. */
void percentiles(uint32_t *lat, uint64_t n, double *p50, double *p99,
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

double ratio(double x, double base)
{
	return base > 0 ? x / base : NAN;
}

/* Not run: no userfaultfd for the floor; no view where pages are touched. */
bool skip_variant(const struct cfg *c, enum variant v, bool touches)
{
	return (v == V_FLOOR && !c->have_floor) || (v == V_NOVIEW && touches);
}

