// SPDX-License-Identifier: MIT
/*
 * alloc.c - allocation, punch-hole and populate: gmem_fallocate() and
 * gmem_populate().
 *
 * Punch and UFFD views: such a view keeps every shown page mapped, and a
 * punched page would raise SIGBUS there until it is mapped again, a
 * window in which a shared page faults.  So the shared pages a UFFD view
 * covers are zeroed in place instead (only those that are allocated: a
 * punch never allocates), and everything else is punched for real.
 * Punched pages need no re-homing: the punch itself takes them out of
 * the file, away from any kernel reference.
 *
 * Locking: g->lock (internal.h).
 */
#include <errno.h>
#include <linux/falloc.h>

#include "internal.h"
#include "sys.h"

#define ZERO_CHUNK	(64 * 1024)

static const char zeros[ZERO_CHUNK];

/* Zero the allocated pages of [start, end) in place, through the window. */
static int zero_allocated(struct gmem *g, uint64_t start, uint64_t end)
{
	uint64_t p = start, rs, re;
	int ret = gmem_backing_window(&g->b);

	while (!ret && p < end) {
		ret = gmem_backing_next_data(&g->b, p, end, &rs, &re);
		if (ret || rs >= end)
			break;
		for (uint64_t o = off_of(g, rs); !ret && o < off_of(g, re);) {
			uint64_t n = off_of(g, re) - o;

			if (n > ZERO_CHUNK)
				n = ZERO_CHUNK;
			ret = sys_copy_to(g->b.window + o, zeros, (size_t)n);
			o += n;
		}
		p = re;
	}
	return ret;
}

struct unpoison {
	uint64_t start, end;
};

/* Post hook: the views show the unpoisoned pages; forget the poison. */
static int drop_poison(struct gmem *g, void *arg)
{
	struct unpoison *u = arg;
	uint64_t p;

	while ((p = gmem_extents_first(&g->poison, u->start, u->end)) <
	       u->end) {
		int ret = gmem_extents_sub(&g->poison, p, p + 1);

		if (ret)
			return ret;
	}
	return 0;
}

static int punch(struct gmem *g, uint64_t start, uint64_t end)
{
	uint64_t p, run;
	unsigned int cur;
	int ret = 0;

	gmem_invalidate(g, start, end, GMEM_INVALIDATE_PUNCH);
	gmem_dirty_note(g, start, end);	/* zeroed in place, or a hole */
	for (p = start; p < end && !ret; p = run) {
		run = gmem_state_run(&g->state, p, end, &cur);
		if (!cur && gmem_views_uffd_cover(g, p, run)) {
			uint64_t q, bad;

			/* Poisoned pages are holes: punch those for real. */
			for (q = p; !ret && q < run; q = bad + 1) {
				bad = g->poison.nr ?
				      gmem_extents_first(&g->poison, q, run) :
				      run;
				ret = zero_allocated(g, q, bad);
				if (!ret && bad < run)
					ret = gmem_backing_punch(&g->b, bad,
								 bad + 1);
				if (bad == run)
					break;
			}
		} else {
			ret = gmem_backing_punch(&g->b, p, run);
		}
	}
	if (ret)
		return ret;
	gmem_rehome_lost(g, start, end);
	/* Punched poison is gone: the views may show those pages again. */
	if (g->poison.nr && gmem_extents_first(&g->poison, start, end) < end) {
		struct gmem_change ch = { start, end, -1, 0, -1, -1 };
		struct unpoison u = { start, end };

		ret = gmem_views_apply(g, &ch, NULL, drop_poison, &u);
		/* A show: a peer that fails it is cut off, nothing to undo. */
		if (!ret)
			gmem_peers_change(g, &ch);
	}
	return ret;
}

GMEM_EXPORT int gmem_fallocate(struct gmem *g, int mode, uint64_t offset,
			       uint64_t len)
{
	uint64_t mask;
	int ret;

	if (!g)
		return -EINVAL;
	if (!(mode & FALLOC_FL_KEEP_SIZE) ||
	    (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)))
		return -EOPNOTSUPP;
	mask = off_of(g, 1) - 1;
	if (!len || (offset & mask) || (len & mask) || offset + len < offset)
		return -EINVAL;
	if (!(mode & FALLOC_FL_PUNCH_HOLE) && offset + len > g->size)
		return -EINVAL;
	if (gmem_is_peer(g))
		return -EPERM;
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	if (!(mode & FALLOC_FL_PUNCH_HOLE)) {
		ret = gmem_backing_alloc(&g->b, page_of(g, offset),
					 page_of(g, offset + len));
	} else if (offset < g->size) {
		if (offset + len > g->size)
			len = g->size - offset;
		ret = punch(g, page_of(g, offset), page_of(g, offset + len));
	}
	gmem_unlock_put(g);
	return ret;
}

GMEM_EXPORT ssize_t gmem_populate(struct gmem *g, uint64_t offset,
				  const void *src, size_t len)
{
	uint64_t first, last, end, bad;
	unsigned int val;
	size_t done;
	int ret;

	if (!g || !src || !len)
		return -EINVAL;
	if ((offset & (off_of(g, 1) - 1)) || offset + len < offset ||
	    offset + len > g->size)
		return -EINVAL;
	if (gmem_is_peer(g))
		return -EPERM;
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	first = page_of(g, offset);
	last = page_of(g, offset + len - 1);
	end = gmem_state_run(&g->state, first, last + 1, &val);
	if (g->poison.nr)	/* a poisoned page holds nothing */
		end = gmem_extents_first(&g->poison, first, end);
	if (!val || end == first) {
		ret = val ? -EHWPOISON : -EPERM;
		goto out;
	}
	done = end > last ? len : off_of(g, end) - offset;
	/* Private use: pages old kernel references may hold move first. */
	ret = gmem_rehome_private_use(g, first, end, &bad);
	if (!ret) {
		/* write(2) on the fd: no mapping of ours sees it. */
		gmem_dirty_note(g, first, page_of(g, offset + done - 1) + 1);
		ret = gmem_backing_write_bytes(&g->b, offset, src, done);
	}
out:
	gmem_unlock_put(g);
	return ret ? ret : (ssize_t)done;
}
