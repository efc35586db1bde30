// SPDX-License-Identifier: MIT
/*
 * huge.c - huge-page bookkeeping: which page sizes are allowed, regions
 * that go mixed (split) or uniform (merged), the order gmem_get_pfn()
 * reports, and how much of the views is mapped huge.
 *
 *  2 MiB (21 << GMEM_HUGE_SHIFT): shmem THP.  Every mapping is 2 MiB
 *    aligned to its file offset, so a uniform region maps as one PMD.  A
 *    private 4 KiB page is a hole in the views: the kernel splits that
 *    one region's PMD into PTEs, its neighbours keep their contents and
 *    stay mapped, every other region stays huge.  When the region is
 *    uniform again the conversion asks MADV_COLLAPSE to map it huge once
 *    more.  Splits and merges are counted per region that goes mixed /
 *    uniform.  Huge pages are allocated at first fault; when the kernel
 *    cannot find one it maps 4 KiB pages (stats.huge_mapped tells).
 *
 *  1 GiB (30 << GMEM_HUGE_SHIFT): hugetlb, one file per region
 *    (backing.h).  A hugetlb page cannot be mapped in part, so the state
 *    stays per 4 KiB page but host views show a 1 GiB region only while
 *    all of it is shared and unpoisoned (view.c); gmem_pin() needs the
 *    pinned pages' whole regions shared, and such a pin holds its whole
 *    region against conversion to private.
 *
 * Locking: g->lock held, or gmem_create() before g is visible.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "internal.h"
#include "sys.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE	25
#endif

int gmem_huge_validate(uint64_t flags, uint64_t size, unsigned int *shift)
{
	unsigned int s = (unsigned int)((flags >> GMEM_HUGE_SHIFT) &
					GMEM_HUGE_MASK);

	*shift = 0;
	if (!(flags & GMEM_FLAG_HUGEPAGE))
		return s ? -EINVAL : 0;
	if (!s)
		s = 21;			/* the default huge page: 2 MiB */
	if (s != 21 && s != 30)
		return -EINVAL;
	if (size & ((1ULL << s) - 1))
		return -EINVAL;
	*shift = s;
	return 0;
}

static inline uint64_t region_pages(const struct gmem *g)
{
	return 1ULL << (g->huge_shift - g->page_shift);
}

/* Is every page of the huge region holding page in state val? */
static bool region_uniform(struct gmem *g, uint64_t page, unsigned int val)
{
	uint64_t first = page & ~(region_pages(g) - 1);
	unsigned int cur;

	return gmem_state_run(&g->state, first, first + region_pages(g),
			      &cur) == first + region_pages(g) && cur == val;
}

static bool region_poisoned(struct gmem *g, uint64_t first)
{
	return g->poison.nr && gmem_extents_first(&g->poison, first, first +
						  region_pages(g)) <
			       first + region_pages(g);
}

static bool region_mixed(struct gmem *g, uint64_t r)
{
	return !region_uniform(g, r, 0) && !region_uniform(g, r, 1);
}

/*
 * Before a conversion of [start, end): remember which regions are mixed.
 * The regions it covers whole all end uniform, so their count is enough;
 * the (at most two) regions it covers in part are remembered each.
 */
void gmem_huge_before(struct gmem *g, uint64_t start, uint64_t end)
{
	uint64_t rp, lo, hi;

	if (!g->huge_shift)
		return;
	g->rehomed_before = g->rehomed;
	rp = region_pages(g);
	lo = (start + rp - 1) & ~(rp - 1);	/* first whole region */
	hi = end & ~(rp - 1);			/* end of the last one */
	g->mixed_before = 0;
	for (uint64_t r = lo; r < hi; r += rp)
		g->mixed_before += region_mixed(g, r);
	g->edge_mixed[0] = region_mixed(g, start & ~(rp - 1));
	g->edge_mixed[1] = region_mixed(g, (end - 1) & ~(rp - 1));
}

/* Count a split or a merge if region r changed between mixed and not. */
static void account_edge(struct gmem *g, uint64_t r, bool was_mixed)
{
	bool mixed = region_mixed(g, r);

	g->splits += mixed && !was_mixed;
	g->merges += !mixed && was_mixed;
}

/*
 * After a conversion of [start, end) to val: count the regions that went
 * mixed (splits) or uniform (merges), and map the regions that are now
 * uniformly shared huge again in every VMA-mode view.
 */
void gmem_huge_after(struct gmem *g, uint64_t start, uint64_t end,
		     unsigned int val)
{
	uint64_t r, rp, first, last;

	if (!g->huge_shift)
		return;
	rp = region_pages(g);
	first = start & ~(rp - 1);
	last = (end - 1) & ~(rp - 1);
	g->merges += g->mixed_before;
	if (first != start || (first == last && end - first < rp))
		account_edge(g, first, g->edge_mixed[0]);
	if (last != first && end - last < rp)
		account_edge(g, last, g->edge_mixed[1]);
	if (g->hugetlb)
		return;
	if (val) {
		/*
		 * Re-homing a page of a 2 MiB folio split it: give the
		 * guest side its huge page back once the region is all
		 * private (best effort, a copy of 2 MiB in the kernel).
		 */
		if (g->rehomed == g->rehomed_before)
			return;
		for (r = first; r < end; r += rp)
			if (region_uniform(g, r, 1) && !region_poisoned(g, r))
				sys_madvise(g->b.window + off_of(g, r),
					    off_of(g, rp), MADV_COLLAPSE);
		return;
	}
	for (r = first; r < end; r += rp) {
		if (!region_uniform(g, r, 0) || region_poisoned(g, r))
			continue;
		for (struct gmem_view *v = g->views; v; v = v->next) {
			if (v->mode != GMEM_VIEW_VMA || r < v->first ||
			    r + rp > v->first + v->npages)
				continue;
			/* Best effort: without a free huge page it stays PTEs. */
			sys_madvise(v->addr + off_of(g, r - v->first),
				    off_of(g, rp), MADV_COLLAPSE);
		}
	}
}

/* The order gmem_get_pfn() reports for page under access val. */
unsigned int gmem_huge_order(struct gmem *g, uint64_t page, unsigned int val)
{
	uint64_t first;

	if (!g->huge_shift || !region_uniform(g, page, val))
		return 0;
	first = page & ~(region_pages(g) - 1);
	if (region_poisoned(g, first))
		return 0;
	return g->huge_shift - g->page_shift;
}

/* hugetlb: widen [*start, *end) to whole regions; others: unchanged. */
void gmem_huge_round(const struct gmem *g, uint64_t *start, uint64_t *end)
{
	uint64_t rp;

	if (!g->hugetlb)
		return;
	rp = region_pages(g);
	*start &= ~(rp - 1);
	*end = (*end + rp - 1) & ~(rp - 1);
}

struct smaps_scan {
	const struct gmem_span *spans;
	size_t n;
	bool ours;
	uint64_t bytes;
};

static void smaps_line(void *arg, char *line)
{
	struct smaps_scan *s = arg;
	uintptr_t lo, hi;
	unsigned long kb;

	/* VMA lines start with a lowercase hex address. */
	if (isxdigit((unsigned char)line[0]) &&
	    !isupper((unsigned char)line[0]) &&
	    sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
		s->ours = false;
		for (size_t i = 0; i < s->n; i++)
			if (lo >= s->spans[i].lo && hi <= s->spans[i].hi)
				s->ours = true;
	} else if (s->ours &&
		   (sscanf(line, "ShmemPmdMapped: %lu kB", &kb) == 1 ||
		    sscanf(line, "FilePmdMapped: %lu kB", &kb) == 1 ||
		    sscanf(line, "Shared_Hugetlb: %lu kB", &kb) == 1 ||
		    sscanf(line, "Private_Hugetlb: %lu kB", &kb) == 1)) {
		s->bytes += (uint64_t)kb << 10;
	}
}

int gmem_huge_spans(struct gmem *g, struct gmem_span **out, size_t *n)
{
	size_t k = 0;

	*out = NULL;
	*n = 0;
	if (!g->huge_shift)
		return 0;
	for (struct gmem_view *v = g->views; v; v = v->next)
		k += !v->internal;
	if (!k)
		return 0;
	*out = calloc(k, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (struct gmem_view *v = g->views; v; v = v->next)
		if (!v->internal)
			(*out)[(*n)++] = (struct gmem_span){
				(uintptr_t)v->addr, (uintptr_t)v->addr + v->len
			};
	return 0;
}

int gmem_huge_mapped(const struct gmem_span *spans, size_t n,
		     uint64_t *bytes)
{
	struct smaps_scan s = { .spans = spans, .n = n };
	int ret;

	*bytes = 0;
	if (!n)
		return 0;
	ret = sys_read_lines("/proc/self/smaps", smaps_line, &s);
	*bytes = s.bytes;
	return ret;
}
