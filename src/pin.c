// SPDX-License-Identifier: MIT
/*
 * pin.c - long-term pins of shared pages (DMA-style): gmem_pin() and
 * gmem_unpin().
 *
 * A pin holds shared pages in place for a device: a conversion to
 * private fails with -EAGAIN (or waits) while one is held.  The address
 * it returns lies in the pin view, an internal view of the whole file
 * that shows the pinned pages and nothing else (g->pin_shown), so even
 * an overrun by the device cannot read a private page, and the view
 * costs only the pinned pages (a UFFD pin view maps them, a VMA one
 * holds two VMAs per pinned run).  A page whose last pin went but that
 * the pin view could not hide stays in pin_shown; conversions treat the
 * pin view like any view, so such a page is hidden if it goes private.
 * The pin view goes away with the last gmem_pin() pin.
 *
 * Locking: g->lock (internal.h).
 */
#include <errno.h>
#include <sys/mman.h>

#include "internal.h"
#include "sys.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif

/* True if every page of [start, end) already has value val. */
static bool uniform(struct gmem *g, uint64_t start, uint64_t end,
		    unsigned int val)
{
	unsigned int cur;

	return gmem_state_run(&g->state, start, end, &cur) == end && cur == val;
}

/* Make [start, end) a member of pin_shown (a set: count 1 each). */
static int set_add(struct gmem_extents *x, uint64_t start, uint64_t end)
{
	uint64_t p = start, e;
	bool in;
	int ret;

	while (p < end) {
		e = gmem_extents_run(x, p, end, &in);
		if (!in) {
			ret = gmem_extents_add(x, p, e);
			if (ret)
				return ret;
		}
		p = e;
	}
	return 0;
}

static int set_del(struct gmem_extents *x, uint64_t start, uint64_t end)
{
	uint64_t p = start, e;
	bool in;
	int ret;

	while (p < end) {
		e = gmem_extents_run(x, p, end, &in);
		if (in) {
			ret = gmem_extents_sub(x, p, e);
			if (ret)
				return ret;
		}
		p = e;
	}
	return 0;
}

struct span {
	uint64_t start, end;
};

static int set_add_post(struct gmem *g, void *arg)
{
	struct span *sp = arg;

	return set_add(&g->pin_shown, sp->start, sp->end);
}

static int set_del_post(struct gmem *g, void *arg)
{
	struct span *sp = arg;

	return set_del(&g->pin_shown, sp->start, sp->end);
}

/* The pin view shows [start, end) (hugetlb: whole regions). */
static int show_pinned(struct gmem *g, uint64_t start, uint64_t end)
{
	struct gmem_change ch = { start, end, -1, -1, 1, -1 };
	struct span sp = { start, end };

	return gmem_view_apply(g, g->pin_view, &ch, set_add_post, &sp);
}

/* Hide the pages of [start, end) no gmem_pin() pin holds any more. */
static void hide_unpinned(struct gmem *g, uint64_t start, uint64_t end)
{
	uint64_t p, e;
	bool pinned;

	gmem_huge_round(g, &start, &end);
	for (p = start; p < end; p = e) {
		e = gmem_extents_run(&g->user_pins, p, end, &pinned);
		if (g->hugetlb && !pinned) {
			/* A region leaves only when all of it is unpinned. */
			uint64_t rs = p, re = e;

			gmem_huge_round(g, &rs, &re);
			if (gmem_extents_first(&g->user_pins, rs, re) < re)
				continue;
		}
		if (!pinned) {
			struct gmem_change ch = { p, e, -1, -1, 0, -1 };
			struct span sp = { p, e };

			/* On failure it stays shown: see the top comment. */
			gmem_view_apply(g, g->pin_view, &ch, set_del_post, &sp);
		}
	}
}

int gmem_pin_locked(struct gmem *g, uint64_t offset, uint64_t len,
		    void **addr)
{
	uint64_t start, end, rs, re;
	char *p;
	int ret;

	start = page_of(g, offset);
	end = page_of(g, offset + len);
	rs = start;
	re = end;
	gmem_huge_round(g, &rs, &re);	/* hugetlb: whole regions shared */
	if (!uniform(g, start, end, 0) || !uniform(g, rs, re, 0)) {
		ret = -EFAULT;
		goto out;
	}
	if (g->poison.nr && gmem_extents_first(&g->poison, rs, re) < re) {
		ret = -EHWPOISON;
		goto out;
	}
	if (!g->pin_view) {
		ret = gmem_view_create(g, 0, g->size, PROT_READ | PROT_WRITE,
				       true, &g->pin_view);
		if (ret)
			goto out;
	}
	ret = gmem_extents_add(&g->user_pins, start, end);
	if (ret)
		goto err_view;
	ret = gmem_extents_add(&g->pins, start, end);
	if (ret)
		goto err_user;
	ret = show_pinned(g, rs, re);
	/* Make the pages resident, as a DMA pin would. */
	p = g->pin_view->addr + offset;
	if (!ret)
		ret = sys_madvise(p, len, MADV_POPULATE_WRITE);
	if (ret)
		goto err_pins;
	gmem_expose(g, rs, re);
	*addr = p;
	goto out;

err_pins:
	gmem_extents_sub(&g->pins, start, end);
err_user:
	gmem_extents_sub(&g->user_pins, start, end);
	hide_unpinned(g, start, end);
err_view:
	if (!g->user_pins.nr) {
		gmem_view_destroy(g, g->pin_view);
		g->pin_view = NULL;
		gmem_extents_destroy(&g->pin_shown);
	}
out:
	return ret;
}

GMEM_EXPORT int gmem_pin(struct gmem *g, uint64_t offset, uint64_t len,
			 void **addr)
{
	int ret;

	if (!g || !addr || !gmem_range_ok(g, offset, len))
		return -EINVAL;
	if (gmem_is_peer(g))		/* through the owner first */
		return gmem_link_pin(g, offset, len, addr);
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	ret = gmem_pin_locked(g, offset, len, addr);
	gmem_unlock_put(g);
	return ret;
}

int gmem_unpin_locked(struct gmem *g, uint64_t offset, uint64_t len)
{
	uint64_t start, end;
	int ret;

	start = page_of(g, offset);
	end = page_of(g, offset + len);
	/* Only gmem_pin()'s own pins: get_pfn references are not ours. */
	ret = gmem_extents_sub(&g->user_pins, start, end);
	if (!ret) {
		ret = gmem_extents_sub(&g->pins, start, end);
		if (ret)	/* keep the two counts in step */
			gmem_extents_add(&g->user_pins, start, end);
	}
	if (ret)
		goto out;
	gmem_dirty_note(g, start, end);	/* a device may have written */
	gmem_refs_wake(g);
	if (!g->pin_view)
		goto out;
	if (!g->user_pins.nr) {
		/* The pin view costs a view: only while pinned. */
		gmem_view_destroy(g, g->pin_view);
		g->pin_view = NULL;
		gmem_extents_destroy(&g->pin_shown);
	} else {
		hide_unpinned(g, start, end);
	}
out:
	return ret;
}

/* Allowed after gmem_close(): a pin keeps the file alive until here. */
GMEM_EXPORT int gmem_unpin(struct gmem *g, uint64_t offset, uint64_t len)
{
	int ret;

	if (!g || !gmem_range_ok(g, offset, len))
		return -EINVAL;
	if (gmem_is_peer(g))
		return gmem_link_unpin(g, offset, len);
	ret = gmem_lock(g);
	if (ret)
		return ret;
	ret = gmem_unpin_locked(g, offset, len);
	gmem_unlock_put(g);
	return ret;
}
