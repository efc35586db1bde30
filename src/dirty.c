// SPDX-License-Identifier: MIT
/*
 * dirty.c - dirty tracking (gmem_dirty_start(3)): the pages that may
 * have changed since a mark, for pre-copy migration and incremental
 * snapshots (snapshot.c).
 *
 * The mechanism, chosen by measurement (bench/bench_dirty.c,
 * bench/RESULTS.md): a write reaches a page through a mapping, and
 * libgmem owns every mapping of the file in this process.  A scan folds
 * what each mapping saw since the last scan into the bitmaps:
 *  - a view in UFFD mode (one registered VMA whose shown pages are all
 *    mapped, view_mode.c) is write-protected with asynchronous
 *    userfaultfd write-protection: the kernel itself resolves a write's
 *    fault and marks the page written, and PAGEMAP_SCAN reads the
 *    written pages and protects them again in one walk under the page
 *    table lock, so no write falls between the read and the re-arm;
 *  - the window of a 4 KiB memfd likewise (arm_window(): it keeps its
 *    entries, so every page it maps keeps a second mapping);
 *  - every other mapping (VMA-mode views, the window of a huge-page
 *    file) is read with
 *    PAGEMAP_SCAN for its present pages, which are counted written and
 *    then zapped: a store needs a page-table entry, so the next one
 *    faults the page back in and it is present at the next scan.  Only
 *    the runs found present are zapped, so a page faulted in between the
 *    walk and the zap keeps its entry and is seen next time.  A first
 *    touch costs nothing more than without tracking (a fault it takes
 *    anyway), and a huge page is zapped and faulted back whole, so
 *    tracking never splits a huge mapping; reads count as writes.
 *  - allocation: the data runs of the backing, against those of the last
 *    scan: a page allocated or punched since is dirty (a page can be
 *    allocated without any mapping, by write(2) on the fd or populate);
 *  - what no mapping of this process shows, counted dirty at every scan:
 *    pinned pages (a device may DMA into them), the shared pages of a
 *    range exported to a peer process (its mappings are its own), and
 *    every allocated page of a guest_memfd file (KVM writes
 *    guest memory through the guest_memfd itself, which no user-space
 *    mechanism sees: KVM has no dirty log for guest_memfd slots) and of
 *    a hugetlb file (its contents are copied through the window).
 * So the set is never too small for those paths; it can be too large
 * (reads, pins).  Not seen (gmem_dirty_start(3), "What is not seen"):
 * the kernel's own writes through references it took to view memory
 * (io_uring fixed buffers, RDMA, O_DIRECT in flight), write(2) on the
 * fd onto an allocated page, a store whose entry the application drops
 * (MADV_DONTNEED, MADV_PAGEOUT) before the scan, and reclaim to swap.
 *
 * Two consumers mark independently: the snapshot chain (save bits) and
 * gmem_dirty_collect() (user bits); a scan sets both.
 *
 * Locking: g->lock for everything (internal.h); stores through mappings
 * take none, which the walk order above allows for.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "map.h"
#include "sys.h"
#include "view.h"

#define SCAN_VEC	256U		/* runs per PAGEMAP_SCAN call */

struct gmem_dirty {
	uint64_t *bits[GMEM_DIRTY_NR];	/* changed since the consumer's mark */
	uint64_t *alloc;		/* allocated at the last scan */
	uint64_t *tmp;			/* scratch for the next alloc */
	size_t words;
	bool exact;			/* false: every allocated page, always */
	bool window_wp;			/* the window is write-protected */
	/* the snapshot chain (snapshot.c) */
	bool chained;
	uint64_t chain_id, gen;
};

static inline void set_range(uint64_t *bits, uint64_t s, uint64_t e)
{
	for (; s < e && (s & 63); s++)
		bits[s >> 6] |= 1ULL << (s & 63);
	for (; s + 64 <= e; s += 64)
		bits[s >> 6] = ~0ULL;
	for (; s < e; s++)
		bits[s >> 6] |= 1ULL << (s & 63);
}

void gmem_dirty_note(struct gmem *g, uint64_t start, uint64_t end)
{
	struct gmem_dirty *d = g->dirty;

	if (!d)
		return;
	if (end > g->npages)
		end = g->npages;
	for (int i = 0; i < GMEM_DIRTY_NR; i++)
		set_range(d->bits[i], start, end);
}

/* Runs of [addr, +len) mapping pages from first: fold (and zap/re-arm). */
static int scan_map(struct gmem *g, char *addr, uint64_t first,
		    uint64_t npages, bool wp)
{
	struct sys_page_region vec[SCAN_VEC];
	char *p = addr, *end = addr + off_of(g, npages);
	uint64_t flags = wp ? SYS_PM_WP_MATCHING | SYS_PM_CHECK_WPASYNC : 0;
	/*
	 * wp: written and present (a hole is never armed, so a first touch
	 * takes no write-protect fault).  zap: present, or a non-present
	 * entry of a file page (a migration entry: the page is being moved
	 * and will be present again), not a marker.
	 */
	uint64_t need = wp ? SYS_PAGE_IS_WRITTEN | SYS_PAGE_IS_PRESENT : 0;
	uint64_t anyof = wp ? 0 : SYS_PAGE_IS_PRESENT | SYS_PAGE_IS_SWAPPED;
	uint64_t ret_mask = wp ? need : anyof | SYS_PAGE_IS_FILE;

	while (p < end) {
		void *walk_end;
		long n = sys_pagemap_scan(p, (size_t)(end - p), flags, need,
					  anyof, ret_mask, vec, SCAN_VEC,
					  &walk_end);

		if (n < 0)
			return (int)n;
		for (long i = 0; i < n; i++) {
			char *s = (char *)(uintptr_t)vec[i].start;
			char *e = (char *)(uintptr_t)vec[i].end;
			uint64_t ps = first + page_of(g, (uint64_t)(s - addr));
			uint64_t pe = first + page_of(g, (uint64_t)(e - addr) +
						      off_of(g, 1) - 1);
			int ret;

			if (!wp && !(vec[i].categories & (SYS_PAGE_IS_PRESENT |
							  SYS_PAGE_IS_FILE)))
				continue;	/* a marker: nothing there */
			gmem_dirty_note(g, ps, pe);
			if (!wp) {
				ret = map_zap(s, (size_t)(e - s));
				if (ret)
					return ret;
			}
		}
		if ((char *)walk_end <= p)
			break;
		p = walk_end;
	}
	return 0;
}

/* Every shown page of v, as if written. */
static void note_shown(struct gmem *g, struct gmem_view *v)
{
	uint64_t p = v->first, end = v->first + v->npages;

	if (end > g->npages)
		end = g->npages;
	while (p < end) {
		bool shown;
		uint64_t e = gmem_vis_run(g, v, NULL, p, end, &shown);

		if (shown)
			gmem_dirty_note(g, p, e);
		p = e;
	}
}

void gmem_dirty_view_final(struct gmem *g, struct gmem_view *v)
{
	/* A scan that fails cannot tell: count everything it shows. */
	if (gmem_dirty_view(g, v))
		note_shown(g, v);
}

int gmem_dirty_view(struct gmem *g, struct gmem_view *v)
{
	uint64_t n = v->first < g->npages ? g->npages - v->first : 0;

	if (!g->dirty || !g->dirty->exact || v->unmapped)
		return 0;
	if (n > v->npages)
		n = v->npages;
	switch (v->mode) {
	case GMEM_VIEW_UFFD:
		if (!sys_uffd_wp_async()) {
			note_shown(g, v);
			return 0;
		}
		return scan_map(g, v->addr, v->first, n, true);
	case GMEM_VIEW_VMA:
		return scan_map(g, v->addr, v->first, n, false);
	default:
		return 0;	/* revoked: nothing mapped */
	}
}

/* Allocation since the last scan: every page that changed is dirty. */
static int scan_alloc(struct gmem *g)
{
	struct gmem_dirty *d = g->dirty;
	uint64_t p = 0, rs, re, *t;
	int ret;

	memset(d->tmp, 0, d->words * 8);
	while (p < g->npages) {
		ret = gmem_backing_next_data(&g->b, p, g->npages, &rs, &re);
		if (ret)
			return ret;
		if (rs >= g->npages)
			break;
		set_range(d->tmp, rs, re);
		p = re;
	}
	for (size_t i = 0; i < d->words; i++) {
		uint64_t diff = d->alloc[i] ^ d->tmp[i];

		if (!d->exact)
			diff |= d->tmp[i];
		for (int c = 0; c < GMEM_DIRTY_NR; c++)
			d->bits[c][i] |= diff;
	}
	t = d->alloc;
	d->alloc = d->tmp;
	d->tmp = t;
	return 0;
}

/*
 * What no mapping of ours shows: pins and peers' ranges.  (A parked
 * page's contents change only when its state does, which is noted: the
 * park is libgmem's own copy, and moving it back keeps the contents.)
 */
static void scan_unseen(struct gmem *g)
{
	for (size_t k = 0; k < g->pins.nr; k++)
		gmem_dirty_note(g, g->pins.ext[k].start, g->pins.ext[k].end);
	gmem_peers_dirty(g);
}

int gmem_dirty_scan(struct gmem *g)
{
	struct gmem_dirty *d = g->dirty;
	int ret = 0;

	if (!d)
		return 0;
	for (struct gmem_view *v = g->views; v && !ret; v = v->next)
		ret = gmem_dirty_view(g, v);
	if (!ret && d->exact && g->b.window)
		ret = scan_map(g, g->b.window, 0, g->npages, d->window_wp);
	if (!ret)
		ret = scan_alloc(g);
	if (!ret)
		scan_unseen(g);
	return ret;
}

uint64_t *gmem_dirty_bits(struct gmem *g, enum gmem_dirty_consumer c)
{
	return g->dirty ? g->dirty->bits[c] : NULL;
}

const uint64_t *gmem_dirty_alloc(struct gmem *g)
{
	return g->dirty ? g->dirty->alloc : NULL;
}

static void dirty_free(struct gmem_dirty *d)
{
	if (!d)
		return;
	for (int i = 0; i < GMEM_DIRTY_NR; i++)
		free(d->bits[i]);
	free(d->alloc);
	free(d->tmp);
	free(d);
}

void gmem_dirty_destroy(struct gmem *g)
{
	dirty_free(g->dirty);
	g->dirty = NULL;
}

/*
 * The window of a 4 KiB memfd is write-protected rather than zapped:
 * its entries stay, so a page it maps keeps a second mapping (the
 * kernel's reclaim and MADV_PAGEOUT leave a page alone that more than
 * one mapping holds, as they did before tracking), and a guest-side
 * store costs one fault either way.  Without userfaultfd it is zapped.
 */
static void arm_window(struct gmem *g, struct gmem_dirty *d)
{
	if (g->b.kind != GMEM_BACKING_MEMFD || !g->b.window ||
	    gmem_uffd_get(g) < 0 || !sys_uffd_wp_async())
		return;
	d->window_wp = !sys_uffd_register_wp(g->uffd, g->b.window,
					     (size_t)off_of(g, g->npages));
}

/* Disarm the write-protection of UFFD views (dirty tracking ends). */
static void disarm(struct gmem *g, struct gmem_dirty *d)
{
	if (d->window_wp) {
		size_t len = (size_t)off_of(g, g->npages);

		/* Unregistering lifts the protection too. */
		if (sys_uffd_unregister(g->uffd, g->b.window, len))
			sys_uffd_unprotect(g->uffd, g->b.window, len);
		d->window_wp = false;
	}
	for (struct gmem_view *v = g->views; v; v = v->next) {
		uint64_t n = v->first < g->npages ? g->npages - v->first : 0;

		if (v->mode != GMEM_VIEW_UFFD || v->unmapped || !n)
			continue;
		if (n > v->npages)
			n = v->npages;
		/* Failure leaves pages protected: writes still work (the
		 * kernel resolves them), only slower. */
		sys_uffd_unprotect(g->uffd, v->addr, (size_t)off_of(g, n));
	}
}

/* ---- the chain of snapshots (snapshot.c, restore.c) ------------------- */
bool gmem_dirty_chain(struct gmem *g, uint64_t *id, uint64_t *gen)
{
	struct gmem_dirty *d = g->dirty;

	if (!d || !d->chained)
		return false;
	*id = d->chain_id;
	*gen = d->gen;
	return true;
}

void gmem_dirty_chain_set(struct gmem *g, bool chained, bool fresh,
			  uint64_t gen)
{
	struct gmem_dirty *d = g->dirty;

	if (!d)
		return;
	if (chained && fresh) {
		if (getrandom(&d->chain_id, sizeof(d->chain_id), 0) !=
		    sizeof(d->chain_id))
			d->chain_id = (uint64_t)time(NULL) ^
				      ((uint64_t)getpid() << 32) ^
				      (uint64_t)(uintptr_t)d;
	}
	d->chained = chained;
	d->gen = gen;
}

/* ---- API -------------------------------------------------------------- */
GMEM_EXPORT int gmem_dirty_start(struct gmem *g, uint64_t flags)
{
	struct gmem_dirty *d;
	int ret;

	if (!g || flags)
		return -EINVAL;
	if (g->link)
		return -EPERM;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->words = (size_t)((g->npages + 63) / 64);
	d->exact = g->b.kind == GMEM_BACKING_MEMFD ||
		   g->b.kind == GMEM_BACKING_THP;
	ret = -ENOMEM;
	for (int i = 0; i < GMEM_DIRTY_NR; i++)
		if (!(d->bits[i] = calloc(d->words ? d->words : 1, 8)))
			goto err;
	d->alloc = calloc(d->words ? d->words : 1, 8);
	d->tmp = calloc(d->words ? d->words : 1, 8);
	if (!d->alloc || !d->tmp)
		goto err;
	ret = gmem_lock_live(g);
	if (ret)
		goto err;
	if (g->dirty) {
		ret = -EBUSY;
		goto err_unlock;
	}
	g->dirty = d;
	arm_window(g, d);
	/* The mark: arm every mapping, learn the allocation. */
	ret = gmem_dirty_scan(g);
	if (ret) {
		disarm(g, d);
		g->dirty = NULL;
		goto err_unlock;
	}
	for (int i = 0; i < GMEM_DIRTY_NR; i++)
		memset(d->bits[i], 0, d->words * 8);
	gmem_unlock_put(g);
	return 0;

err_unlock:
	gmem_unlock_put(g);
err:
	dirty_free(d);
	return ret;
}

GMEM_EXPORT int gmem_dirty_stop(struct gmem *g)
{
	int ret;

	if (!g)
		return -EINVAL;
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	if (!g->dirty) {
		ret = -EINVAL;
	} else {
		disarm(g, g->dirty);
		gmem_dirty_destroy(g);
	}
	gmem_unlock_put(g);
	return ret;
}

GMEM_EXPORT int gmem_dirty_collect(struct gmem *g, uint64_t offset,
				   uint64_t len, uint64_t *bitmap,
				   uint64_t *count)
{
	uint64_t mask, first, n, c = 0, *bits;
	int ret;

	if (!g || !bitmap)
		return -EINVAL;
	mask = off_of(g, 1) - 1;
	if ((offset | len) & mask || offset > g->size ||
	    len > g->size - offset)
		return -EINVAL;
	first = page_of(g, offset);
	n = page_of(g, len);
	memset(bitmap, 0, (size_t)((n + 63) / 64) * 8);
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	if (!g->dirty) {
		ret = -EINVAL;
		goto out;
	}
	ret = gmem_dirty_scan(g);
	if (ret)
		goto out;
	bits = g->dirty->bits[GMEM_DIRTY_USER];
	for (uint64_t i = 0; i < n;) {
		uint64_t p = first + i, w;

		if (!(p & 63) && !(i & 63) && i + 64 <= n) {
			w = bits[p >> 6];	/* a whole word */
			bits[p >> 6] = 0;
			bitmap[i >> 6] = w;
			c += (uint64_t)__builtin_popcountll(w);
			i += 64;
			continue;
		}
		if (bits[p >> 6] & (1ULL << (p & 63))) {
			bits[p >> 6] &= ~(1ULL << (p & 63));
			bitmap[i >> 6] |= 1ULL << (i & 63);
			c++;
		}
		i++;
	}
out:
	gmem_unlock_put(g);
	if (count)
		*count = c;
	return ret;
}
