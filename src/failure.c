// SPDX-License-Identifier: MIT
/*
 * failure.c - memory failure: a page marked poisoned, as the kernel's
 * memory_failure() marks a page with an uncorrectable error.
 *
 * A poisoned page keeps its shared/private state but is reachable by
 * nothing: every view treats it as a hole (SIGBUS on any access, see
 * view.c), gmem_get_pfn() fails -EHWPOISON and owners are invalidated
 * with GMEM_INVALIDATE_POISON.  Only that page is lost; its neighbours
 * keep their contents and mappings.  Punching the page frees it and
 * clears the poison: the next use gets a fresh zero page.  Listeners are
 * about shared-ness and are not told.
 *
 * The poisoned pages are a gmem_pins set (count 1 each), under g->lock.
 */
#include <errno.h>

#include "internal.h"

GMEM_EXPORT int gmem_memory_failure(struct gmem *g, uint64_t offset)
{
	struct gmem_view *v, *failed;
	uint64_t page;
	int ret;

	if (!g || (offset & (off_of(g, 1) - 1)) || offset >= g->size)
		return -EINVAL;
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	page = page_of(g, offset);
	if (gmem_poisoned(g, page))
		goto out;
	/* Out of every view first, as if it became private. */
	for (v = g->views; v; v = v->next) {
		ret = gmem_view_convert(g, v, page, page + 1, 1);
		if (ret)
			goto err_views;
	}
	ret = gmem_pins_add(&g->poison, page, page + 1);
	if (ret)
		goto err_views;
	for (v = g->views; v; v = v->next)
		gmem_view_commit(g, v, page, page + 1);
	gmem_invalidate(g, page, page + 1, GMEM_INVALIDATE_POISON);
out:
	gmem_unlock_put(g);
	return ret;

err_views:
	failed = v;
	for (v = g->views; v != failed; v = v->next)
		gmem_view_undo(g, v, page, page + 1, 1);
	goto out;
}

/*
 * [start, end) was punched: its poisoned pages are gone with it.  Views
 * map the shared ones again (a uffd view's refill after the punch does
 * it for that mode).
 */
void gmem_poison_clear(struct gmem *g, uint64_t start, uint64_t end)
{
	uint64_t p;

	while (g->poison.nr &&
	       (p = gmem_pins_first(&g->poison, start, end)) < end) {
		if (gmem_pins_sub(&g->poison, p, p + 1))
			return;		/* no memory: it stays poisoned */
		if (gmem_state_get(&g->state, p))
			continue;
		for (struct gmem_view *v = g->views; v; v = v->next)
			if (g->hugetlb)
				gmem_huge_view_reset(g, v, p, p + 1);
			else if (v->mode == GMEM_VIEW_VMA)
				gmem_view_map_shared(g, v, p, p + 1);
		start = p + 1;
	}
}
