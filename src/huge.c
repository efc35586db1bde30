// SPDX-License-Identifier: MIT
/*
 * huge.c - huge-page backed files, and the one way libgmem maps a file.
 *
 * Two kinds, chosen by the page size in GMEM_FLAG_HUGEPAGE:
 *
 *  2 MiB (21 << GMEM_HUGE_SHIFT): shmem THP.  The memfd's page cache
 *    holds 2 MiB folios when it is faulted through a MADV_HUGEPAGE
 *    mapping (shmem_enabled "advise", "within_size" or "always"; create
 *    fails -EOPNOTSUPP with "never" or "deny", rather than silently
 *    giving 4 KiB pages).  Every mapping is 2 MiB-aligned to its file
 *    offset, so a uniform region maps as one PMD.  A private 4 KiB page
 *    becomes a hole in the views (view.c): the kernel splits that one
 *    region's PMD into PTEs, its neighbours keep their contents and stay
 *    mapped, every other region stays huge.  When the region is uniform
 *    again the conversion asks MADV_COLLAPSE to map it huge once more.
 *    Splits and merges are counted per region that goes mixed / uniform.
 *    Huge pages are allocated at first fault; when the kernel cannot
 *    find one it maps 4 KiB pages (stats.huge_mapped tells).
 *
 *  1 GiB (30 << GMEM_HUGE_SHIFT): hugetlb.  A hugetlb page cannot be
 *    mapped in part, so the state stays per 4 KiB page but host views
 *    show a 1 GiB region only while all of it is shared and unpoisoned;
 *    otherwise the whole region is a hole (SIGBUS, shared pages too),
 *    with contents kept.  Views must be 1 GiB aligned.  For the same
 *    reason gmem_pin() needs the pinned pages' whole regions shared, and
 *    such a pin holds its whole region against conversion to private
 *    (else the pin's address would turn into a hole).  The pages are
 *    reserved at create (fallocate), which fails -ENOMEM when the pool
 *    (/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages) is
 *    short, instead of failing at some later fault.
 *
 * Locking: called with g->lock held, or from gmem_create() before g is
 * visible.  The split/merge counters live in struct gmem.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE	25
#endif
#ifndef MFD_HUGE_1GB
#define MFD_HUGE_1GB	(30U << 26)
#endif

#define THP_SYSFS	"/sys/kernel/mm/transparent_hugepage/shmem_enabled"

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

/* Will shmem hand out huge folios to MADV_HUGEPAGE mappings? */
static int thp_available(void)
{
	char buf[128] = "";
	FILE *f = fopen(THP_SYSFS, "re");
	char *mode;

	if (!f)
		return -EOPNOTSUPP;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	mode = strchr(buf, '[');
	if (!mode || !strncmp(mode, "[never]", 7) || !strncmp(mode, "[deny]", 6))
		return -EOPNOTSUPP;
	return 0;
}

int gmem_huge_backing(struct gmem *g)
{
	int ret;

	if (g->huge_shift == 21) {
		ret = thp_available();
		if (ret)
			return ret;
		return gmem_memfd_backing(g, "gmem-thp", 0);
	}
	g->hugetlb = true;
	ret = gmem_memfd_backing(g, "gmem-1g", MFD_HUGETLB | MFD_HUGE_1GB);
	return ret == -EINVAL ? -EOPNOTSUPP : ret;	/* no 1 GiB hugetlb */
}

/*
 * Map [off, off + len) of the file.  The mapping is aligned to the huge
 * page size (THP and hugetlb need it to map huge), MADV_HUGEPAGE for
 * THP, and MADV_DONTFORK before it becomes accessible, so no child of a
 * concurrent fork() can inherit a mapping that may later show a private
 * page.  Every mapping libgmem makes of a file comes from here.
 */
int gmem_map_file(struct gmem *g, size_t len, int prot, uint64_t off,
		  void **out)
{
	size_t align = g->huge_shift ? 1UL << g->huge_shift : 0;
	char *area, *p;
	int ret;

	ret = sys_mmap(NULL, len + align, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0,
		       (void **)&area);
	if (ret)
		return ret;
	p = area;
	if (align) {
		/* p congruent to off modulo the huge page size */
		p = (char *)(((uintptr_t)area + align - 1) & ~(align - 1)) +
		    (off & (align - 1));
		if (p >= area + align)
			p -= align;
	}
	ret = sys_mmap(p, len, PROT_NONE, MAP_SHARED | MAP_FIXED, g->fd, off,
		       (void **)&p);
	if (ret)
		goto err_area;
	if (p > area)
		sys_munmap(area, (size_t)(p - area));
	if (area + len + align > p + len)
		sys_munmap(p + len, (size_t)(area + len + align - (p + len)));
	ret = sys_madvise(p, len, MADV_DONTFORK);
	if (!ret && g->huge_shift == 21)
		ret = sys_madvise(p, len, MADV_HUGEPAGE);
	if (!ret)
		ret = sys_mprotect(p, len, prot);
	if (ret) {
		sys_munmap(p, len);
		return ret;
	}
	*out = p;
	return 0;

err_area:
	sys_munmap(area, len + align);
	return ret;
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
	return g->poison.nr && gmem_pins_first(&g->poison, first, first +
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
 * uniformly shared huge again in every vma-mode view.
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
	if (val || g->hugetlb)
		return;
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

/*
 * hugetlb views: a region is mapped when it will be entirely shared and
 * unpoisoned after [start, end) becomes val (undo: as it is now), a hole
 * otherwise.  Only regions whose visibility changes are touched.
 */
int gmem_huge_view_sync(struct gmem *g, struct gmem_view *v, uint64_t start,
			uint64_t end, unsigned int val, bool undo)
{
	uint64_t rp = region_pages(g), r, vend = v->first + v->npages;
	int ret;

	for (r = start & ~(rp - 1); r < end && r < vend; r += rp) {
		bool now, next;
		uint64_t p, run;
		unsigned int cur;
		void *addr;

		if (r < v->first)
			continue;
		now = region_uniform(g, r, 0) && !region_poisoned(g, r);
		next = !val && !region_poisoned(g, r);
		for (p = r; next && p < r + rp; p = run) {
			run = gmem_state_run(&g->state, p, r + rp, &cur);
			if (cur && (p < start || run > end))
				next = false;	/* private and outside */
		}
		if (undo) {
			bool t = now;

			now = next;
			next = t;
		}
		if (now == next)
			continue;
		addr = v->addr + off_of(g, r - v->first);
		if (next)
			ret = sys_mmap(addr, off_of(g, rp), v->prot,
				       MAP_SHARED | MAP_FIXED, g->fd,
				       off_of(g, r), &addr);
		else
			ret = gmem_view_hole(g, v, r, r + rp);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * hugetlb views: map or hole every region of [start, end) from scratch,
 * by whether it is all shared and unpoisoned now (after poison was
 * cleared, say, when there is no "before" to compare with).
 */
void gmem_huge_view_reset(struct gmem *g, struct gmem_view *v, uint64_t start,
			  uint64_t end)
{
	uint64_t rp = region_pages(g), vend = v->first + v->npages;

	for (uint64_t r = start & ~(rp - 1); r < end && r < vend; r += rp) {
		void *addr = v->addr + off_of(g, r - v->first);

		if (r < v->first)
			continue;
		if (region_uniform(g, r, 0) && !region_poisoned(g, r))
			sys_mmap(addr, off_of(g, rp), v->prot,
				 MAP_SHARED | MAP_FIXED, g->fd, off_of(g, r),
				 &addr);
		else
			gmem_view_hole(g, v, r, r + rp);
	}
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

/* Bytes of the views mapped with huge pages, from /proc/self/smaps. */
int gmem_huge_mapped(struct gmem *g, uint64_t *bytes)
{
	char line[256];
	uintptr_t lo, hi;
	bool ours = false;
	unsigned long kb;
	FILE *f;

	*bytes = 0;
	if (!g->huge_shift || !g->views)
		return 0;
	f = fopen("/proc/self/smaps", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		/* VMA lines start with a lowercase hex address. */
		if (isxdigit((unsigned char)line[0]) &&
		    !isupper((unsigned char)line[0]) &&
		    sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
			ours = false;
			for (struct gmem_view *v = g->views; v; v = v->next)
				if (lo >= (uintptr_t)v->addr &&
				    hi <= (uintptr_t)v->addr + v->len &&
				    !v->internal)
					ours = true;
		} else if (ours &&
			   (sscanf(line, "ShmemPmdMapped: %lu kB", &kb) == 1 ||
			    sscanf(line, "Shared_Hugetlb: %lu kB", &kb) == 1 ||
			    sscanf(line, "Private_Hugetlb: %lu kB", &kb) == 1)) {
			*bytes += (uint64_t)kb << 10;
		}
	}
	fclose(f);
	return 0;
}
