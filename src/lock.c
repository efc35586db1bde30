// SPDX-License-Identifier: MIT
/*
 * lock.c - taking a file's lock, and its lifetime.
 *
 * A struct gmem is freed when the caller has closed it and no host view,
 * pin, binding, listener or waiting thread holds it any more; whichever
 * of gmem_close(), gmem_munmap(), gmem_unpin(), gmem_unbind(),
 * gmem_listener_unregister() or a waiter leaves last frees it, from
 * gmem_unlock_put().  After gmem_close() only those releases are
 * accepted; everything else returns -EBADF while the object still
 * exists.  A gmem_close() from inside one of the file's callbacks is
 * deferred: the thread holds the lock then, and the close is done by
 * the gmem_unlock_put() that ends the call that ran the callback.  The
 * locking rules are next to the lock, in internal.h.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"
#include "sys.h"

/* [offset, offset + len) is non-empty, page aligned and inside the file. */
bool gmem_range_ok(const struct gmem *g, uint64_t offset, uint64_t len)
{
	uint64_t mask = off_of(g, 1) - 1;

	return len && !(offset & mask) && !(len & mask) &&
	       offset + len > offset && offset + len <= g->size;
}

/* Lock g: 0, or -EINVAL (NULL) / -EDEADLK (from one of g's callbacks). */
int gmem_lock(struct gmem *g)
{
	if (!g)
		return -EINVAL;
	if (atomic_load(&g->cb_thread) == (unsigned long)pthread_self())
		return -EDEADLK;
	pthread_mutex_lock(&g->lock);
	return 0;
}

/* Lock g if it is open: 0, or as gmem_lock(), or -EBADF (closed). */
int gmem_lock_live(struct gmem *g)
{
	int ret = gmem_lock(g);

	if (ret)
		return ret;
	if (g->closed) {
		pthread_mutex_unlock(&g->lock);
		return -EBADF;
	}
	return 0;
}

void gmem_destroy(struct gmem *g)
{
	gmem_link_destroy(g);
	while (g->views)
		gmem_view_destroy(g, g->views);
	while (g->bindings) {
		struct gmem_binding *b = g->bindings;

		g->bindings = b->next;
		gmem_refs_destroy(&b->refs);
		free(b);
	}
	while (g->listeners) {
		struct gmem_listener *l = g->listeners;

		g->listeners = l->next;
		free(l);
	}
	gmem_dirty_destroy(g);
	if (g->uffd >= 0)
		sys_close(g->uffd);
	gmem_backing_destroy(&g->b);
	gmem_rehome_destroy(g);
	gmem_state_destroy(&g->state);
	gmem_extents_destroy(&g->pins);
	gmem_extents_destroy(&g->user_pins);
	gmem_extents_destroy(&g->poison);
	gmem_extents_destroy(&g->pin_shown);
	pthread_cond_destroy(&g->wake_cond);
	pthread_mutex_destroy(&g->wake_lock);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

void gmem_refs_wake(struct gmem *g)
{
	atomic_fetch_add(&g->unpin_seq, 1);
	if (!atomic_load(&g->unpin_waiters))
		return;
	pthread_mutex_lock(&g->wake_lock);
	pthread_cond_broadcast(&g->wake_cond);
	pthread_mutex_unlock(&g->wake_lock);
}

/* The changes announced to owners are done: end their invalidations. */
static void end_invalidations(struct gmem *g)
{
	for (struct gmem_binding *b = g->bindings; b; b = b->next) {
		if (!b->inval_pending)
			continue;
		atomic_fetch_add(&b->inval_seq, 1);
		atomic_fetch_sub(&b->inval_active, 1);
		atomic_fetch_sub(&g->inval_any, 1);
		b->inval_pending = 0;
	}
	g->inval_open = false;
}

void gmem_mark_closed(struct gmem *g)
{
	if (g->closed)
		return;
	g->closed = true;
	gmem_refs_wake(g);
	gmem_peers_closed(g);
	if (g->bindings)
		gmem_invalidate(g, 0, g->npages, GMEM_INVALIDATE_RELEASE);
}

/*
 * Unlock g, freeing it if this was the last holder of a closed file.
 * A gmem_close() that a callback made during this lock hold takes
 * effect first, while the lock is still held (file.c).
 */
void gmem_unlock_put(struct gmem *g)
{
	bool last;

	if (g->close_deferred) {
		g->close_deferred = false;
		gmem_mark_closed(g);
	}
	last = g->closed && !g->nr_user_views && !g->pins.nr &&
	       !g->nr_waiters && !g->bindings && !g->listeners && !g->peers;
	/* A peer file's link holds it until its thread is done. */
	if (last && g->link && gmem_link_holds(g, true))
		last = false;
	if (g->inval_open)
		end_invalidations(g);
	pthread_mutex_unlock(&g->lock);
	if (last)
		gmem_destroy(g);
}
