// SPDX-License-Identifier: MIT
/*
 * listener.c - consumers of shared memory (VFIO, vhost): told of every
 * run that becomes shared (populate, which may refuse) and of every run
 * that stops being shared (discard), one call per run and listener,
 * clipped to the listener's range.  Registration replays the current
 * shared runs.
 *
 * Order within a conversion (convert.c): to private, the views are
 * guarded first and the listeners discard next, so a device loses its
 * mapping before the page can be private; to shared, the listeners
 * populate once the views map the pages, and a refusal rolls everything
 * back.  Callbacks run with g->lock held (internal.h).
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

/* Tell l about [start, end) clipped to it; 0 if they do not meet. */
static int notify(struct gmem *g, struct gmem_listener *l, uint64_t start,
		  uint64_t end, bool populate)
{
	uint64_t s = start > l->first ? start : l->first;
	uint64_t e = end < l->first + l->npages ? end : l->first + l->npages;
	int ret = 0;

	if (s >= e)
		return 0;
	gmem_cb_enter(g);
	if (populate)
		ret = l->ops->populate(l->opaque, off_of(g, s), off_of(g, e - s));
	else
		l->ops->discard(l->opaque, off_of(g, s), off_of(g, e - s));
	gmem_cb_exit(g);
	g->listener_calls++;
	return ret > 0 ? -EINVAL : ret;
}

/*
 * Discard, for every listener (up to but not including stop), the runs
 * of [start, end) whose state is now cur_val.
 */
static void discard_runs(struct gmem *g, uint64_t start, uint64_t end,
			 unsigned int cur_val, struct gmem_listener *stop)
{
	uint64_t p, run;
	unsigned int cur;

	for (p = start; p < end; p = run) {
		run = gmem_state_run(&g->state, p, end, &cur);
		if (cur != cur_val)
			continue;
		for (struct gmem_listener *l = g->listeners; l != stop;
		     l = l->next)
			notify(g, l, p, run, false);
	}
}

void gmem_listeners_discard(struct gmem *g, uint64_t start, uint64_t end,
			    unsigned int cur_val)
{
	if (g->listeners)
		discard_runs(g, start, end, cur_val, NULL);
}

/*
 * The private runs of [start, end) are becoming shared: populate every
 * listener.  On a refusal, discard what was populated and report the
 * first page of the refused run.
 */
int gmem_listeners_populate(struct gmem *g, uint64_t start, uint64_t end,
			    uint64_t *error_page)
{
	uint64_t p, run;
	unsigned int cur;
	int ret;

	if (!g->listeners)
		return 0;
	for (p = start; p < end; p = run) {
		run = gmem_state_run(&g->state, p, end, &cur);
		if (!cur)
			continue;
		for (struct gmem_listener *l = g->listeners; l; l = l->next) {
			ret = notify(g, l, p, run, true);
			if (!ret)
				continue;
			*error_page = p > l->first ? p : l->first;
			discard_runs(g, start, p, 1, NULL);
			discard_runs(g, p, run, 1, l);
			return ret;
		}
	}
	return 0;
}

GMEM_EXPORT int gmem_listener_register(struct gmem *g, uint64_t offset,
				       uint64_t size,
				       const struct gmem_listener_ops *ops,
				       void *opaque, struct gmem_listener **out)
{
	struct gmem_listener *l;
	uint64_t p, run, end;
	unsigned int cur;
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
	end = l->first + l->npages;
	/* Replay the shared runs; a refusal undoes the replay. */
	for (p = l->first; p < end; p = run) {
		run = gmem_state_run(&g->state, p, end, &cur);
		if (cur)
			continue;
		ret = notify(g, l, p, run, true);
		if (ret)
			break;
	}
	if (ret) {
		uint64_t q;

		for (q = l->first; q < p; q = run) {
			run = gmem_state_run(&g->state, q, p, &cur);
			if (!cur)
				notify(g, l, q, run, false);
		}
		free(l);
	} else {
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

/* Last release of the file: listeners still registered go with it. */
void gmem_listeners_destroy(struct gmem *g)
{
	while (g->listeners) {
		struct gmem_listener *l = g->listeners;

		g->listeners = l->next;
		free(l);
	}
}
