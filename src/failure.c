// SPDX-License-Identifier: MIT
/*
 * failure.c - memory failure: a page marked poisoned, as the kernel's
 * memory_failure() marks a page with an uncorrectable error.
 *
 * A poisoned page keeps its shared/private state but is reachable by
 * nothing: every view hides it (SIGBUS on any access), gmem_get_pfn()
 * fails -EHWPOISON and owners are invalidated with
 * GMEM_INVALIDATE_POISON.  Only that page is lost; its neighbours keep
 * their contents and mappings.  Punching the page frees it and clears
 * the poison (alloc.c): the next use gets a fresh zero page.  Listeners
 * are about shared-ness and are not told.
 *
 * The poisoned pages are an extent set (count 1 each), under g->lock.
 */
#include <errno.h>

#include "internal.h"

struct poison_tx {
	uint64_t page;
};

/* Post hook: the views hide the page; now it is poisoned. */
static int add_poison(struct gmem *g, void *arg)
{
	struct poison_tx *t = arg;

	return gmem_extents_add(&g->poison, t->page, t->page + 1);
}

GMEM_EXPORT int gmem_memory_failure(struct gmem *g, uint64_t offset)
{
	struct gmem_change ch;
	struct poison_tx t;
	uint64_t page;
	int ret;

	if (!g || (offset & (off_of(g, 1) - 1)) || offset >= g->size)
		return -EINVAL;
	if (gmem_is_peer(g))
		return -EPERM;
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	page = page_of(g, offset);
	if (gmem_poisoned(g, page))
		goto out;
	gmem_invalidate(g, page, page + 1, GMEM_INVALIDATE_POISON);
	ch = (struct gmem_change){ page, page + 1, -1, 1, -1, -1 };
	t.page = page;
	ret = gmem_peers_change(g, &ch);	/* hidden there first */
	if (!ret)
		ret = gmem_views_apply(g, &ch, NULL, add_poison, &t);
	if (!ret)	/* its contents are lost, not its re-home */
		gmem_rehome_lost(g, page, page + 1);
	else
		gmem_peers_resync(g, page, page + 1);
out:
	gmem_unlock_put(g);
	return ret;
}
