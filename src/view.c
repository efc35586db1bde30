// SPDX-License-Identifier: MIT
/*
 * view.c - host views: mappings of the file where shown pages behave
 * like any MAP_SHARED memory and hidden pages raise a real SIGBUS.  A
 * page is shown when it is shared and not poisoned (the pin view: and
 * pinned, g->pin_shown; hugetlb: when its whole 1 GiB region is).
 *
 * Guard modes, per view (view_mode.c builds and switches them):
 *  VMA      hidden runs are holes: MAP_FIXED mappings of an empty sealed
 *           memfd, every access past its end (SIGBUS; EFAULT from system
 *           calls).  Shown pages fault in lazily.  One VMA per run.
 *  UFFD     one mapping registered with userfaultfd (missing + minor,
 *           SIGBUS feature): shown pages are mapped (UFFDIO_CONTINUE),
 *           hidden ones have no page-table entry, so touching them is
 *           SIGBUS.  One VMA whatever the fragmentation, the cheapest
 *           flip, but every shown page is allocated.
 *  REVOKED  one hole over everything: the escalation when a change could
 *           not be undone (below).
 *
 * A change (struct gmem_change) is applied to every view as a
 * transaction, so that no private page is ever shown and no shown page
 * stays hidden when a system call fails:
 *   prepare   everything that may fail for want of resources and changes
 *             nothing visible: the VMA budget, a mode switch, carving the
 *             runs out of their VMAs (map.h), allocating pages a uffd
 *             view will show.  Undone by unprepare, which cannot fail.
 *   commit    the visible step: exact replacements (VMA) or page-table
 *             changes (UFFD), none needing a VMA; in practice it fails
 *             only on kernel memory exhaustion.  Undone by undo, the
 *             same steps the other way; if an undo fails the view is
 *             revoked (hidden entirely, counted in views_revoked), never
 *             left showing a private page.
 * The state tree holds the old values during all of it; the caller
 * commits the state after a successful apply.
 *
 * VMA budget: libgmem's views hold at most gmem_vma_budget() VMAs in the
 * whole process (half of vm.max_map_count: the rest belongs to the VMM).
 * A change that would pass it switches a VMA view to UFFD mode in place
 * (no VMA needed), or fails with -ENOMEM before changing anything where
 * userfaultfd cannot guard the memory (guest_memfd, huge pages).
 *
 * Locking: everything here runs with g->lock held (internal.h); the VMA
 * count is an atomic shared by every file of the process.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "internal.h"
#include "map.h"
#include "sys.h"
#include "view.h"

static _Atomic uint64_t vmas_total;
static uint64_t vma_budget;

uint64_t gmem_vmas_total(void)
{
	return atomic_load(&vmas_total);
}

uint64_t gmem_vma_budget(void)
{
	char buf[32];
	long max;

	if (!vma_budget) {
		max = sys_read_file("/proc/sys/vm/max_map_count", buf,
				    sizeof(buf)) > 0 ? strtol(buf, NULL, 10) : 0;
		vma_budget = max > 64 ? (uint64_t)max / 2 : 32765;
	}
	return vma_budget;
}

void gmem_vmas_account(struct gmem *g, int64_t delta)
{
	if (!delta)	/* most changes: no atomic on the shared count */
		return;
	g->vmas += (uint64_t)delta;
	atomic_fetch_add(&vmas_total, (uint64_t)delta);
}

/* ---- visibility ------------------------------------------------------- */

static inline bool touches(const struct gmem_change *ch)
{
	return ch && (ch->val >= 0 || ch->poison >= 0 || ch->pin >= 0);
}

static inline bool inside(const struct gmem_change *ch, uint64_t p)
{
	return p >= ch->start && p < ch->end;
}

/*
 * Shared-and-unpoisoned at page p (< npages), with ch applied if given,
 * and the end (<= limit) of the run that has the same answer.
 */
static uint64_t base_run(struct gmem *g, const struct gmem_change *ch,
			 uint64_t p, uint64_t limit, bool *shown)
{
	unsigned int val;
	bool pois = false;
	uint64_t e, pe = limit;

	if (touches(ch)) {
		if (p < ch->start && limit > ch->start)
			limit = ch->start;
		else if (inside(ch, p) && limit > ch->end)
			limit = ch->end;
	}
	if (ch && ch->val >= 0 && inside(ch, p)) {
		val = (unsigned int)ch->val;
		e = limit;
	} else {
		e = gmem_state_run(&g->state, p, limit, &val);
	}
	if (ch && ch->poison >= 0 && inside(ch, p))
		pois = ch->poison;
	else if (g->poison.nr)
		pe = gmem_extents_run(&g->poison, p, limit, &pois);
	*shown = !val && !pois;
	return e < pe ? e : pe;
}

/* The pin view's own set at p, with ch applied. */
static uint64_t pin_run(struct gmem *g, const struct gmem_change *ch,
			uint64_t p, uint64_t limit, bool *in)
{
	if (touches(ch)) {
		if (p < ch->start && limit > ch->start)
			limit = ch->start;
		else if (inside(ch, p) && limit > ch->end)
			limit = ch->end;
	}
	if (ch && ch->pin >= 0 && inside(ch, p)) {
		*in = ch->pin;
		return limit;
	}
	return gmem_extents_run(&g->pin_shown, p, limit, in);
}

/* Is every page of hugetlb region r shown (with ch if given)? */
static bool region_shown(struct gmem *g, const struct gmem_view *v,
			 const struct gmem_change *ch, uint64_t r)
{
	uint64_t end = r + gmem_backing_region_pages(&g->b);
	bool shown = true, in = true;

	if (end > g->npages)
		return false;
	for (uint64_t p = r; p < end && shown;)
		p = base_run(g, ch, p, end, &shown);
	for (uint64_t p = r; v->pin && p < end && in;)
		p = pin_run(g, ch, p, end, &in);
	return shown && in;
}

uint64_t gmem_vis_run(struct gmem *g, const struct gmem_view *v,
		      const struct gmem_change *ch, uint64_t p,
		      uint64_t limit, bool *shown)
{
	uint64_t e, pe;
	bool in;

	if (p >= g->npages) {		/* past the end of the file */
		*shown = false;
		return limit;
	}
	if (g->hugetlb) {
		uint64_t rp = gmem_backing_region_pages(&g->b);
		uint64_t r = p & ~(rp - 1);

		*shown = region_shown(g, v, ch, r);
		e = r + rp;
		return e < limit ? e : limit;
	}
	if (limit > g->npages)
		limit = g->npages;
	e = base_run(g, ch, p, limit, shown);
	if (v->pin) {
		pe = pin_run(g, ch, p, e, &in);
		*shown = *shown && in;
		e = pe;
	}
	return e;
}

/* Maximal runs of equal visibility in [lo, hi) of v (with ch if given). */
uint64_t gmem_view_runs(struct gmem *g, const struct gmem_view *v,
			const struct gmem_change *ch, uint64_t lo, uint64_t hi)
{
	uint64_t n = 0, p = lo;
	bool shown, last = false;

	while (p < hi) {
		uint64_t e = gmem_vis_run(g, v, ch, p, hi, &shown);

		/* hugetlb: shown regions are separate files, never merged */
		if (p == lo || shown != last || (g->hugetlb && shown))
			n++;
		last = shown;
		p = e;
	}
	return n;
}

/* VMAs a VMA-mode view over [first, first + npages) holds. */
uint64_t gmem_view_vmas(struct gmem *g, const struct gmem_view *v)
{
	if (v->mode != GMEM_VIEW_VMA)
		return 1 + (v->first + v->npages > g->npages &&
			    v->mode == GMEM_VIEW_UFFD);
	return gmem_view_runs(g, v, NULL, v->first, v->first + v->npages);
}

/* ---- the change walk -------------------------------------------------- */

/* The pages of v that ch may change, widened to regions (hugetlb). */
static bool change_span(struct gmem *g, const struct gmem_view *v,
			const struct gmem_change *ch, uint64_t *lo,
			uint64_t *hi)
{
	uint64_t s = ch->start, e = ch->end;
	uint64_t vend = v->first + v->npages;

	if (g->hugetlb) {
		uint64_t rp = gmem_backing_region_pages(&g->b);

		s &= ~(rp - 1);
		e = (e + rp - 1) & ~(rp - 1);
	}
	if (s < v->first)
		s = v->first;
	if (e > vend)
		e = vend;
	*lo = s;
	*hi = e;
	return s < e;
}

/*
 * Call fn for every run of [lo, hi) whose visibility ch changes, with
 * what it becomes; stop at the first error, *stop = where (else hi).
 */
static int walk(struct gmem *g, struct gmem_view *v,
		const struct gmem_change *ch, uint64_t lo, uint64_t hi,
		int (*fn)(struct gmem *, struct gmem_view *, uint64_t,
			  uint64_t, bool), uint64_t *stop)
{
	/* What the state was, where ch knows it: no lookup needed. */
	const struct gmem_change was = { ch->start, ch->end, ch->was, -1, -1,
					 -1 };
	const struct gmem_change *before = ch->was >= 0 ? &was : NULL;
	uint64_t p = lo;
	int ret;

	/*
	 * The common conversion: one state before, one after, no poison,
	 * no pins, no regions: [lo, hi) is one run that changes, or none.
	 */
	if (before && ch->val >= 0 && ch->poison < 0 && ch->pin < 0 &&
	    !v->pin && !g->hugetlb && !g->poison.nr && lo >= ch->start &&
	    hi <= ch->end && hi <= g->npages) {
		ret = ch->was != ch->val ? fn(g, v, lo, hi, !ch->val) : 0;
		if (stop)
			*stop = ret ? lo : hi;
		return ret;
	}
	while (p < hi) {
		bool cur, next;
		uint64_t e = gmem_vis_run(g, v, before, p, hi, &cur);
		uint64_t e2 = gmem_vis_run(g, v, ch, p, e, &next);

		if (cur != next) {
			ret = fn(g, v, p, e2, next);
			if (ret) {
				if (stop)
					*stop = p;
				return ret;
			}
		}
		p = e2;
	}
	if (stop)
		*stop = hi;
	return 0;
}

static inline char *addr_of(const struct gmem *g, const struct gmem_view *v,
			    uint64_t page)
{
	return v->addr + off_of(g, page - v->first);
}

/* Is [a, b) of v exactly its VMAs now (both edges change visibility)? */
static bool exact(struct gmem *g, struct gmem_view *v, uint64_t a,
		  uint64_t b)
{
	bool in, out;

	gmem_vis_run(g, v, NULL, a, a + 1, &in);
	if (a > v->first) {
		gmem_vis_run(g, v, NULL, a - 1, a, &out);
		if (out == in && !(g->hugetlb && in))
			return false;
	}
	if (b < v->first + v->npages) {
		gmem_vis_run(g, v, NULL, b, b + 1, &out);
		if (out == in && !(g->hugetlb && in))
			return false;
	}
	return true;
}

static int vma_prepare(struct gmem *g, struct gmem_view *v, uint64_t a,
		       uint64_t b, bool show)
{
	(void)show;
	if (exact(g, v, a, b))
		return 0;
	return map_carve(addr_of(g, v, a), (size_t)off_of(g, b - a));
}

static int vma_unprepare(struct gmem *g, struct gmem_view *v, uint64_t a,
			 uint64_t b, bool show)
{
	(void)show;
	/* Go on after a failure: the caller recounts the VMAs. */
	if (!exact(g, v, a, b) &&
	    map_uncarve(addr_of(g, v, a), (size_t)off_of(g, b - a))) {
		v->tx_recount = true;
		v->carve_left = true;
	}
	return 0;
}

/*
 * Hide or show [a, b) of a VMA-mode view.  Registered views (v->reg)
 * hide a run by registering it with userfaultfd and zapping its
 * page-table entries, and show it by unregistering it: flag changes on
 * the carved VMAs, no mmap(), so a later switch to UFFD mode is one
 * registration of the whole view and never has a window.  Other views
 * (guest_memfd, huge pages, no userfaultfd) put a hole over the run or
 * map the backing back.
 */
static int vma_set(struct gmem *g, struct gmem_view *v, uint64_t a,
		   uint64_t b, bool show)
{
	char *addr = addr_of(g, v, a);
	size_t len = (size_t)off_of(g, b - a);
	int ret;

	if (!v->reg) {
		if (show)
			return gmem_backing_map_at(&g->b, addr, a, b - a,
						   v->prot);
		return gmem_backing_hole_at(&g->b, addr, a, b - a, v->prot);
	}
	if (show) {
		ret = sys_uffd_unregister(g->uffd, addr, len);
	} else {
		ret = sys_uffd_register(g->uffd, addr, len);
		if (!ret) {
			ret = map_zap(addr, len);
			/* Still shown: take the registration back, or the
			 * run is half hidden and the view must be revoked. */
			if (ret && sys_uffd_unregister(g->uffd, addr, len))
				ret = -ENOTRECOVERABLE;
		}
	}
	/* The carve's flag goes, so the run merges with its neighbours. */
	if (!ret && !exact(g, v, a, b) && map_uncarve(addr, len))
		v->carve_left = true;
	return ret;
}

static int vma_undo(struct gmem *g, struct gmem_view *v, uint64_t a,
		    uint64_t b, bool show)
{
	return vma_set(g, v, a, b, !show);
}

static int uffd_prepare(struct gmem *g, struct gmem_view *v, uint64_t a,
			uint64_t b, bool show)
{
	(void)v;
	if (!show || gmem_rehome_allocated(g, a, b))
		return 0;
	return gmem_backing_alloc(&g->b, a, b);
}

static int uffd_set(struct gmem *g, struct gmem_view *v, uint64_t a,
		    uint64_t b, bool show)
{
	char *addr = addr_of(g, v, a);
	size_t len = (size_t)off_of(g, b - a);

	if (show)
		return sys_uffd_continue(g->uffd, addr, len);
	return map_zap(addr, len);
}

static int uffd_undo(struct gmem *g, struct gmem_view *v, uint64_t a,
		     uint64_t b, bool show)
{
	return uffd_set(g, v, a, b, !show);
}

/* ---- one view --------------------------------------------------------- */

/*
 * The VMAs ch adds to (or takes from) a VMA-mode view: runs counted over
 * the changed span and one page either side, before and after.
 */
static int64_t vma_delta(struct gmem *g, struct gmem_view *v,
			 const struct gmem_change *ch, uint64_t lo,
			 uint64_t hi)
{
	uint64_t s = lo > v->first ? lo - 1 : lo;
	uint64_t e = hi < v->first + v->npages ? hi + 1 : hi;

	return (int64_t)gmem_view_runs(g, v, ch, s, e) -
	       (int64_t)gmem_view_runs(g, v, NULL, s, e);
}

/* Does ch only ever hide pages (to private, poison, unpin)? */
static bool hides_only(const struct gmem_change *ch)
{
	return ch->val != 0 && ch->poison != 0 && ch->pin != 1;
}

static int prepare(struct gmem *g, struct gmem_view *v,
		   const struct gmem_change *ch)
{
	uint64_t lo, hi, stop;
	int ret;

	v->tx_delta = 0;
	v->tx = TX_NONE;
	v->tx_stop = 0;
	v->tx_err = 0;
	if (v->mode == GMEM_VIEW_REVOKED || !change_span(g, v, ch, &lo, &hi))
		return 0;
	ret = gmem_view_policy(g, v, ch, lo, hi);
	if (ret)
		return ret;
	if (v->mode == GMEM_VIEW_VMA) {
		v->tx_delta = vma_delta(g, v, ch, lo, hi);
		if (v->tx_delta > 0 &&
		    gmem_vmas_total() + (uint64_t)v->tx_delta >
		    gmem_vma_budget()) {
			ret = gmem_view_to_uffd(g, v);
			if (ret)
				return -ENOMEM;
			v->tx_delta = 0;
		}
	}
	if (v->mode == GMEM_VIEW_VMA) {
		ret = walk(g, v, ch, lo, hi, vma_prepare, &stop);
		if (ret) {
			v->tx_recount = false;
			walk(g, v, ch, lo, stop, vma_unprepare, NULL);
			/* The failed carve may have split a VMA in part. */
			gmem_view_recount(g, v);
		}
		/*
		 * The process is out of VMAs (the rest of the VMM used
		 * them): a view userfaultfd can guard switches in place,
		 * which needs none, and the change goes on there.
		 */
		if (ret == -ENOMEM && !gmem_view_to_uffd(g, v)) {
			v->tx_delta = 0;
			ret = 0;
		}
	}
	/* A UFFD view prepares only pages it will show (allocation). */
	if (v->mode == GMEM_VIEW_UFFD && !ret && !hides_only(ch))
		ret = walk(g, v, ch, lo, hi, uffd_prepare, NULL);
	if (!ret)
		v->tx = TX_PREPARED;
	return ret;
}

static void unprepare(struct gmem *g, struct gmem_view *v,
		      const struct gmem_change *ch)
{
	uint64_t lo, hi;

	if (v->tx != TX_PREPARED)
		return;
	v->tx = TX_NONE;
	v->tx_recount = false;
	if (v->mode == GMEM_VIEW_VMA && change_span(g, v, ch, &lo, &hi))
		walk(g, v, ch, lo, hi, vma_unprepare, NULL);
	if (v->tx_recount)
		gmem_view_recount(g, v);	/* a carve stayed */
}

static int commit(struct gmem *g, struct gmem_view *v,
		  const struct gmem_change *ch)
{
	uint64_t lo, hi;

	int ret;

	if (v->tx != TX_PREPARED || !change_span(g, v, ch, &lo, &hi))
		return 0;
	v->tx_recount = false;
	ret = walk(g, v, ch, lo, hi, v->mode == GMEM_VIEW_VMA ? vma_set :
		   uffd_set, &v->tx_stop);
	/* Even a failed commit may have changed [lo, tx_stop). */
	v->tx = TX_COMMITTED;
	v->tx_err = ret;
	return ret;
}

/*
 * Put back what commit() changed, up to v->tx_stop, and what prepare()
 * did; a view that cannot be put back is revoked (so it shows nothing).
 */
static int undo(struct gmem *g, struct gmem_view *v,
		const struct gmem_change *ch)
{
	uint64_t lo, hi;
	int ret;

	if (v->tx == TX_PREPARED) {
		unprepare(g, v, ch);
		return 0;
	}
	if (v->tx != TX_COMMITTED || !change_span(g, v, ch, &lo, &hi))
		return 0;
	if (v->tx_stop < hi)
		hi = v->tx_stop;
	/* The run that failed left a gap in the view: no way back. */
	ret = v->tx_err == -ENOTRECOVERABLE ? v->tx_err :
	      walk(g, v, ch, lo, hi, v->mode == GMEM_VIEW_VMA ? vma_undo :
		   uffd_undo, NULL);
	if (ret) {
		gmem_view_revoke(g, v);
	} else {
		v->tx = TX_PREPARED;
		unprepare(g, v, ch);
	}
	v->tx = TX_NONE;
	return ret;
}

/*
 * After a failure part way (an undo that could not merge VMAs back, a
 * carve left behind): count v's VMAs from the kernel's list, so that the
 * budget stays exact.  Rare, so reading /proc/self/maps is fine.
 */
void gmem_view_recount(struct gmem *g, struct gmem_view *v)
{
	uint64_t n;

	v->need_recount = false;
	if (v->unmapped)
		return;
	if (map_count(v->addr, v->len, &n)) {
		v->need_recount = true;	/* try again later (gmem_stat()) */
		return;
	}
	gmem_vmas_account(g, (int64_t)n - (int64_t)v->vmas);
	v->vmas = n;
}

/* A view whose change took effect: its VMAs into the count. */
static void done(struct gmem *g, struct gmem_view *v)
{
	if (v->tx == TX_NONE)
		return;
	v->tx = TX_NONE;
	v->vmas += (uint64_t)v->tx_delta;
	gmem_vmas_account(g, v->tx_delta);
	/* A carve's flag stayed on some run: clear it all, merge, count. */
	if (v->carve_left && !map_uncarve(v->addr, v->len))
		v->carve_left = false;
	if (v->tx_recount || v->carve_left)
		gmem_view_recount(g, v);
}

void gmem_view_revoke(struct gmem *g, struct gmem_view *v)
{
	int64_t before = (int64_t)v->vmas;
	bool holed;

	if (v->mode == GMEM_VIEW_REVOKED)
		return;
	gmem_dirty_view_final(g, v);
	holed = !gmem_backing_hole_at(&g->b, v->addr, v->first, v->npages,
				      v->prot);
	if (!holed &&
	    /* No hole (no VMA to make one): no access and no page-table
	     * entry left, the address range still ours, so a stale pointer
	     * faults rather than reaching whatever is mapped there next. */
	    (map_protect(v->addr, v->len, PROT_NONE) ||
	     map_zap(v->addr, v->len))) {
		/* Not even that: take the whole view away. */
		map_unmap(v->addr, v->len);
		v->unmapped = true;
	}
	v->mode = GMEM_VIEW_REVOKED;
	v->vmas = v->unmapped ? 0 : 1;
	gmem_vmas_account(g, (int64_t)v->vmas - before);
	if (!holed && !v->unmapped)	/* PROT_NONE over its old VMAs */
		gmem_view_recount(g, v);
	g->views_revoked++;
}

int gmem_view_apply(struct gmem *g, struct gmem_view *v,
		    const struct gmem_change *ch,
		    int (*post)(struct gmem *g, void *arg), void *arg)
{
	int ret;

	gmem_dirty_note(g, ch->start, ch->end);	/* its pages may be zapped */
	ret = prepare(g, v, ch);
	if (ret)
		return ret;
	ret = commit(g, v, ch);
	if (!ret && post)
		ret = post(g, arg);
	if (ret) {
		undo(g, v, ch);
		/* The view was revoked: to the caller, memory ran out. */
		return ret == -ENOTRECOVERABLE ? -ENOMEM : ret;
	}
	done(g, v);
	return 0;
}

int gmem_views_apply(struct gmem *g, const struct gmem_change *ch,
		     int (*mid)(struct gmem *g, void *arg),
		     int (*post)(struct gmem *g, void *arg), void *arg)
{
	struct gmem_view *v;
	int ret = 0;

	/* Pages that change are dirty: a hide zaps what a scan would see. */
	gmem_dirty_note(g, ch->start, ch->end);
	for (v = g->views; v && !ret; v = v->next)
		ret = prepare(g, v, ch);
	if (!ret && mid)
		ret = mid(g, arg);
	for (v = g->views; v && !ret; v = v->next)
		ret = commit(g, v, ch);
	if (!ret && post)
		ret = post(g, arg);
	for (v = g->views; v; v = v->next) {
		if (ret)
			undo(g, v, ch);	/* committed, in part, or prepared */
		else
			done(g, v);
	}
	/* A view was revoked: to the caller, memory ran out. */
	return ret == -ENOTRECOVERABLE ? -ENOMEM : ret;
}

/* ---- creation --------------------------------------------------------- */

/* A new VMA-mode view: its hidden runs become holes or registrations. */
static int hide_runs(struct gmem *g, struct gmem_view *v)
{
	uint64_t p = v->first, end = v->first + v->npages;
	int ret;

	while (p < end) {
		bool shown;
		uint64_t e = gmem_vis_run(g, v, NULL, p, end, &shown);

		if (!shown && p < g->npages) {
			char *a = addr_of(g, v, p);

			if (e > g->npages)
				e = g->npages;	/* the tail is a hole */
			ret = v->reg ? sys_uffd_register(g->uffd, a,
					(size_t)off_of(g, e - p)) :
			      gmem_backing_hole_at(&g->b, a, p, e - p,
						   PROT_NONE);
			if (ret)
				return ret;
		}
		p = e;
	}
	return 0;
}

static int show_runs_uffd(struct gmem *g, struct gmem_view *v)
{
	uint64_t p = v->first, end = v->first + v->npages;
	int ret;

	if (end > g->npages)
		end = g->npages;
	while (p < end) {
		bool shown;
		uint64_t e = gmem_vis_run(g, v, NULL, p, end, &shown);

		if (shown) {
			ret = gmem_backing_alloc(&g->b, p, e);
			if (!ret)
				ret = sys_uffd_continue(g->uffd,
							addr_of(g, v, p),
							(size_t)off_of(g,
								       e - p));
			if (ret)
				return ret;
		}
		p = e;
	}
	return 0;
}

int gmem_view_create(struct gmem *g, uint64_t offset, size_t len, int prot,
		     bool pin, struct gmem_view **out)
{
	struct gmem_view *v = calloc(1, sizeof(*v));
	uint64_t in;
	void *addr;
	int ret;

	if (!v)
		return -ENOMEM;
	v->len = (len + off_of(g, 1) - 1) & ~(off_of(g, 1) - 1);
	v->first = page_of(g, offset);
	v->npages = page_of(g, v->len);
	v->prot = prot;
	v->pin = v->internal = pin;
	v->mode = gmem_view_initial_mode(g, v);
	/* Where userfaultfd can guard it, VMA mode registers hidden runs. */
	v->reg = !gmem_uffd_usable(g, v);
	if (v->mode == GMEM_VIEW_VMA) {
		v->vmas = gmem_view_vmas(g, v);
		if (gmem_vmas_total() + v->vmas > gmem_vma_budget()) {
			ret = -ENOMEM;
			if (!v->reg)
				goto err_free;
			v->mode = GMEM_VIEW_UFFD;
		}
	}
	in = v->first < g->npages ? g->npages - v->first : 0;
	if (in > v->npages)
		in = v->npages;
	/* Everything PROT_NONE until the guard is in place. */
	ret = gmem_backing_map_new(&g->b, v->first, v->len, PROT_NONE, &addr);
	if (ret)
		goto err_free;
	v->addr = addr;
	if (v->mode == GMEM_VIEW_UFFD) {
		ret = in ? sys_uffd_register(g->uffd, addr,
					     (size_t)off_of(g, in)) : 0;
		if (!ret)
			ret = map_protect(addr, v->len, prot);
		if (!ret)
			ret = show_runs_uffd(g, v);
	} else {
		ret = hide_runs(g, v);
		if (!ret)
			ret = map_protect(addr, v->len, prot);
	}
	if (ret)
		goto err_unmap;
	v->vmas = gmem_view_vmas(g, v);
	gmem_vmas_account(g, (int64_t)v->vmas);
	v->next = g->views;
	g->views = v;
	if (!pin)
		gmem_expose(g, v->first, v->first + in);
	*out = v;
	return 0;

err_unmap:
	map_unmap(addr, v->len);
err_free:
	free(v);
	return ret;
}

void gmem_view_destroy(struct gmem *g, struct gmem_view *v)
{
	struct gmem_view **pp;

	for (pp = &g->views; *pp; pp = &(*pp)->next) {
		if (*pp == v) {
			*pp = v->next;
			break;
		}
	}
	gmem_dirty_view_final(g, v);
	if (!v->unmapped)
		map_unmap(v->addr, v->len);
	gmem_vmas_account(g, -(int64_t)v->vmas);
	free(v);
}
