// SPDX-License-Identifier: MIT
/*
 * listener.c - consumers of shared memory (VFIO, vhost):
 * gmem_listener_register() and gmem_listener_unregister().  The calls
 * they get, and when, are notify.c's.  A listener may map what it is
 * told of for a device, so registering one counts as a host path
 * (rehome.c): shared pages may be referenced by the kernel from then on.
 *
 * Locking: g->lock (internal.h).
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

GMEM_EXPORT int gmem_listener_register(struct gmem *g, uint64_t offset,
				       uint64_t size,
				       const struct gmem_listener_ops *ops,
				       void *opaque, struct gmem_listener **out)
{
	struct gmem_listener *l;
	int ret;

	if (!g || !ops || !ops->populate || !ops->discard || !out ||
	    !gmem_range_ok(g, offset, size))
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	ret = gmem_lock_live(g);
	if (ret) {
		free(l);
		return ret;
	}
	l->g = g;
	l->first = page_of(g, offset);
	l->npages = page_of(g, size);
	l->ops = ops;
	l->opaque = opaque;
	/* Replay the shared runs; a refusal undoes the replay. */
	ret = gmem_listener_replay(g, l);
	if (ret) {
		free(l);
	} else {
		gmem_expose(g, l->first, l->first + l->npages);
		l->next = g->listeners;
		g->listeners = l;
		g->nr_listeners++;
		*out = l;
	}
	gmem_unlock_put(g);
	return ret;
}

/* Allowed after gmem_close(): a listener keeps the file alive until here. */
GMEM_EXPORT int gmem_listener_unregister(struct gmem_listener *l)
{
	struct gmem_listener **pp;
	struct gmem *g;
	int ret;

	if (!l)
		return -EINVAL;
	g = l->g;
	ret = gmem_lock(g);
	if (ret)
		return ret;
	for (pp = &g->listeners; *pp != l; pp = &(*pp)->next)
		;
	*pp = l->next;
	g->nr_listeners--;
	free(l);
	gmem_unlock_put(g);
	return 0;
}
