// SPDX-License-Identifier: MIT
/*
 * mmap.c - host views for the caller: gmem_mmap() and gmem_munmap().
 * What a view is and how it guards private pages is view.c's.
 *
 * Locking: g->lock (internal.h).
 */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#include "internal.h"

GMEM_EXPORT int gmem_mmap(struct gmem *g, uint64_t offset, size_t len,
			  int prot, void **addr)
{
	struct gmem_view *v;
	int ret;

	if (!g || !addr)
		return -EINVAL;
	if (!(g->flags & GMEM_FLAG_MMAP))
		return -ENODEV;
	if (!len || (offset & (off_of(g, 1) - 1)) ||
	    offset + len < offset || len > SIZE_MAX - off_of(g, 1) ||
	    (prot & ~(PROT_READ | PROT_WRITE)) || offset > INT64_MAX)
		return -EINVAL;
	/* A hugetlb page cannot be mapped in part: see huge.c. */
	if (g->hugetlb && ((offset | len) & ((1ULL << g->huge_shift) - 1)))
		return -EINVAL;
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	ret = gmem_is_peer(g) ? gmem_link_view_ok(g, offset, len) : 0;
	if (ret) {
		gmem_unlock_put(g);
		return ret;
	}
	ret = gmem_view_create(g, offset, len, prot, false, &v);
	if (!ret) {
		g->nr_user_views++;
		*addr = v->addr;
	}
	gmem_unlock_put(g);
	return ret;
}

/* Allowed after gmem_close(): a view keeps the file alive until here. */
GMEM_EXPORT int gmem_munmap(struct gmem *g, void *addr, size_t len)
{
	struct gmem_view *v;
	int ret;

	if (!addr || !len)
		return -EINVAL;
	ret = gmem_lock(g);
	if (ret)
		return ret;
	ret = -EINVAL;
	for (v = g->views; v; v = v->next) {
		if (v->internal || v->addr != addr ||
		    v->len != ((len + off_of(g, 1) - 1) & ~(off_of(g, 1) - 1)))
			continue;
		gmem_view_destroy(g, v);
		g->nr_user_views--;
		ret = 0;
		break;
	}
	gmem_unlock_put(g);
	return ret;
}
