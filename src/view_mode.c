// SPDX-License-Identifier: MIT
/*
 * view_mode.c - which guard a view uses and switching between them in
 * place (view.c has the guards themselves and the transaction).
 *
 * Choice (numbers: bench/bench_flip.c, bench/RESULTS.md):
 *  - UFFD needs userfaultfd on shmem with minor faults: the memfd
 *    backend with 4 KiB pages.  guest_memfd cannot be registered (Linux
 *    6.18), hugetlb views show whole 1 GiB regions (few VMAs anyway),
 *    and on shmem THP a UFFD view would map 4 KiB PTEs and khugepaged
 *    could zap them under it.  Without privilege the userfaultfd is
 *    opened with UFFD_USER_MODE_ONLY (sys.c): same guard.
 *  - A new view starts in UFFD mode when what it would allocate eagerly
 *    (its shared pages) is at most a quarter of it, or when it is so
 *    fragmented that VMA mode would cost more than 2 *
 *    GMEM_VIEW_MAX_ISLANDS + 1 VMAs and at most 1 GiB of it is shared;
 *    the pin view always (it shows pinned pages only).
 *  - A VMA view switches to UFFD once it holds more than
 *    2 * GMEM_VIEW_MAX_ISLANDS + 1 VMAs and at most 1 GiB of it is
 *    shared (a flip then costs a third), or whenever the process-wide
 *    VMA budget would be passed (view.c), whatever it allocates.
 *  - A UFFD view switches to VMA before a change would make it allocate
 *    more than 64 MiB of pages nobody touched, if the budget allows.
 *
 * Switches happen in place, with no window, no temporary mapping and no
 * mmap() at all, so they work even with every VMA of the process in use.
 * That is why a VMA-mode view of the memfd backend hides a run by
 * registering it (view.c: the same SIGBUS as a hole), not with a hole:
 *  VMA -> UFFD  allocate and prefault every shown page, then register
 *               the whole view: the shown runs join the hidden ones and
 *               the VMAs merge into one.  No page changes visibility.
 *  UFFD -> VMA  unregister the shown runs (new VMAs: the only step that
 *               can fail, undone by registering them again); their pages
 *               stay mapped.
 * Views with holes (guest_memfd, huge pages, no userfaultfd) never
 * switch.
 *
 * Locking: g->lock held throughout (internal.h).
 */
#include <errno.h>
#include <sys/mman.h>

#include "internal.h"
#include "map.h"
#include "sys.h"
#include "view.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#endif

#define GMEM_VIEW_MAX_ISLANDS		64
#define GMEM_VIEW_UFFD_MAX_SHARED	(1ULL << 30)	/* bytes */
#define GMEM_VIEW_EAGER_MAX		(64ULL << 20)	/* bytes */

int gmem_uffd_get(struct gmem *g)
{
	if (g->uffd < 0 && !g->uffd_err) {
		int fd = sys_uffd_open();

		if (fd < 0)
			g->uffd_err = fd;
		else
			g->uffd = fd;
	}
	return g->uffd >= 0 ? g->uffd : g->uffd_err;
}

int gmem_uffd_usable(struct gmem *g, const struct gmem_view *v)
{
	int ret;

	(void)v;
	if (g->b.kind != GMEM_BACKING_MEMFD)
		return -EOPNOTSUPP;
	ret = gmem_uffd_get(g);
	return ret < 0 ? ret : 0;
}

static inline char *addr_of(const struct gmem *g, const struct gmem_view *v,
			    uint64_t page)
{
	return v->addr + off_of(g, page - v->first);
}

/* Pages of v in the file. */
static uint64_t in_file(const struct gmem *g, const struct gmem_view *v)
{
	uint64_t in = v->first < g->npages ? g->npages - v->first : 0;

	return in < v->npages ? in : v->npages;
}

/* Shown pages of v (stops counting past cap). */
static uint64_t shown_pages(struct gmem *g, const struct gmem_view *v,
			    uint64_t cap)
{
	uint64_t n = 0, p = v->first, end = v->first + in_file(g, v);

	while (p < end && n <= cap) {
		bool shown;
		uint64_t e = gmem_vis_run(g, v, NULL, p, end, &shown);

		if (shown)
			n += e - p;
		p = e;
	}
	return n;
}

enum gmem_view_mode gmem_view_initial_mode(struct gmem *g,
					   const struct gmem_view *v)
{
	uint64_t shown;

	if (gmem_uffd_usable(g, v))
		return GMEM_VIEW_VMA;
	if (v->pin)
		return GMEM_VIEW_UFFD;
	shown = shown_pages(g, v, page_of(g, GMEM_VIEW_UFFD_MAX_SHARED));
	if (shown <= v->npages / 4)
		return GMEM_VIEW_UFFD;
	if (shown <= page_of(g, GMEM_VIEW_UFFD_MAX_SHARED) &&
	    gmem_view_vmas(g, v) > 2 * GMEM_VIEW_MAX_ISLANDS + 1)
		return GMEM_VIEW_UFFD;
	return GMEM_VIEW_VMA;
}

/* Call fn on every run of v's file pages that is shown (or hidden). */
static int each_run(struct gmem *g, struct gmem_view *v, bool want,
		    int (*fn)(struct gmem *, struct gmem_view *, uint64_t,
			      uint64_t), uint64_t *stop)
{
	uint64_t p = v->first, end = v->first + in_file(g, v);
	int ret;

	while (p < end) {
		bool shown;
		uint64_t e = gmem_vis_run(g, v, NULL, p, end, &shown);

		if (shown == want) {
			ret = fn(g, v, p, e);
			if (ret) {
				if (stop)
					*stop = p;
				return ret;
			}
		}
		p = e;
	}
	if (stop)
		*stop = end;
	return 0;
}

static int prefault(struct gmem *g, struct gmem_view *v, uint64_t a,
		    uint64_t b)
{
	int ret = gmem_backing_alloc(&g->b, a, b);

	return ret ? ret : map_advise(addr_of(g, v, a),
				      (size_t)off_of(g, b - a),
				      MADV_POPULATE_READ);
}

static int unregister_run(struct gmem *g, struct gmem_view *v, uint64_t a,
			  uint64_t b)
{
	int ret = sys_uffd_unregister(g->uffd, addr_of(g, v, a),
				      (size_t)off_of(g, b - a));

	return ret == -EAGAIN ? -ENOMEM : ret;
}

static int register_run(struct gmem *g, struct gmem_view *v, uint64_t a,
			uint64_t b)
{
	return sys_uffd_register(g->uffd, addr_of(g, v, a),
				 (size_t)off_of(g, b - a));
}

/* Count the VMAs again (merges): exactly, from the kernel's list. */
static void account_switch(struct gmem *g, struct gmem_view *v)
{
	v->need_recount = true;
	gmem_view_recount(g, v);
	g->mode_switches++;
}

int gmem_view_to_uffd(struct gmem *g, struct gmem_view *v)
{
	size_t len = (size_t)off_of(g, in_file(g, v));
	int ret;

	if (v->mode != GMEM_VIEW_VMA)
		return v->mode == GMEM_VIEW_UFFD ? 0 : -EINVAL;
	if (!v->reg)
		return -EOPNOTSUPP;	/* holes: guest_memfd, huge pages */
	/* Dirty tracking: what VMA mode saw, before the prefault. */
	gmem_dirty_view_final(g, v);
	ret = each_run(g, v, true, prefault, NULL);
	if (ret)
		return ret;
	/*
	 * Every shown page has its page-table entry now: registering the
	 * rest of the view (its hidden runs are registered already) keeps
	 * them all reachable, and the VMAs merge into one.  A registration
	 * that stops part way leaves shown runs registered with every page
	 * present, which VMA mode handles as it is.
	 */
	if (len)
		ret = sys_uffd_register(g->uffd, v->addr, len);
	if (ret) {
		gmem_view_recount(g, v);
		return ret;
	}
	v->mode = GMEM_VIEW_UFFD;
	account_switch(g, v);
	gmem_dirty_view_final(g, v);	/* arms write-protection */
	return 0;
}

int gmem_view_to_vma(struct gmem *g, struct gmem_view *v)
{
	uint64_t stop;
	int ret;

	if (v->mode != GMEM_VIEW_UFFD)
		return v->mode == GMEM_VIEW_VMA ? 0 : -EINVAL;
	/* What write-protection saw, before the registration goes. */
	gmem_dirty_view_final(g, v);
	/* Shown runs leave the registration, keeping their pages mapped. */
	ret = each_run(g, v, true, unregister_run, &stop);
	if (ret) {
		uint64_t p = v->first;

		while (p < stop) {	/* back as it was: one VMA */
			bool shown;
			uint64_t e = gmem_vis_run(g, v, NULL, p, stop, &shown);

			if (shown)
				register_run(g, v, p, e);
			p = e;
		}
		gmem_view_recount(g, v);
		return ret;
	}
	v->mode = GMEM_VIEW_VMA;
	account_switch(g, v);
	return 0;
}

/* Pages of [lo, hi) not backed by memory yet. */
static uint64_t unallocated(struct gmem *g, uint64_t lo, uint64_t hi)
{
	uint64_t n = hi - lo, p = lo, rs, re;

	while (p < hi) {
		if (gmem_backing_next_data(&g->b, p, hi, &rs, &re))
			return 0;	/* cannot tell: assume none */
		n -= re - rs;
		if (rs >= hi)
			break;
		p = re;
	}
	return n;
}

int gmem_view_policy(struct gmem *g, struct gmem_view *v,
		     const struct gmem_change *ch, uint64_t lo, uint64_t hi)
{
	uint64_t budget = gmem_vma_budget(), runs;

	/* Only changes large enough to matter are looked at. */
	if (v->mode != GMEM_VIEW_UFFD || v->pin ||
	    hi - lo < page_of(g, GMEM_VIEW_EAGER_MAX) || ch->val != 0 ||
	    unallocated(g, lo, hi) <= page_of(g, GMEM_VIEW_EAGER_MAX))
		return 0;
	runs = gmem_view_runs(g, v, ch, v->first, v->first + v->npages);
	if (gmem_vmas_total() - v->vmas + runs > budget)
		return 0;	/* stays UFFD: allocates instead */
	gmem_view_to_vma(g, v);	/* on failure: stays UFFD, still safe */
	return 0;
}

void gmem_views_settle(struct gmem *g, const struct gmem_change *ch)
{
	(void)ch;
	for (struct gmem_view *v = g->views; v; v = v->next) {
		if (v->mode != GMEM_VIEW_VMA ||
		    v->vmas <= 2 * GMEM_VIEW_MAX_ISLANDS + 1 ||
		    v->vmas < v->settle_at || gmem_uffd_usable(g, v))
			continue;
		/* Counting is O(runs): look again at twice the VMAs. */
		v->settle_at = 2 * v->vmas;
		if (shown_pages(g, v, page_of(g, GMEM_VIEW_UFFD_MAX_SHARED)) <=
		    page_of(g, GMEM_VIEW_UFFD_MAX_SHARED))
			gmem_view_to_uffd(g, v);	/* best effort */
	}
}

bool gmem_views_uffd_cover(struct gmem *g, uint64_t start, uint64_t end)
{
	for (struct gmem_view *v = g->views; v; v = v->next)
		if (v->mode == GMEM_VIEW_UFFD && start < v->first + v->npages &&
		    v->first < end)
			return true;
	return false;
}
