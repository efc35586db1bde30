// SPDX-License-Identifier: MIT
/*
 * notify.c - telling the file's consumers what changes: owners (the
 * hypervisor side, bindings) are invalidated, listeners (shared-memory
 * consumers: VFIO, vhost) are told of runs that become shared (populate,
 * which may refuse) and of runs that stop being shared (discard).
 *
 * Order within a conversion (convert.c): to private, owners first,
 * before anything else changes, so that no vCPU uses a page while it
 * moves, then the views guard the pages before listeners discard them;
 * to shared, listeners populate first (a refusal leaves nothing to undo
 * but the populates already made, and no owner is invalidated for a
 * conversion that did not happen), then owners, then the views show the
 * pages.
 *
 * Callbacks run with g->lock held and cb_thread set (internal.h).
 */
#include <errno.h>

#include "internal.h"

/*
 * [start, end) of b's table loses READY: with huge pages, whole huge
 * pages, since the order a grant reported may change with any page of
 * one (a grant reports a huge order only for a huge page wholly inside
 * its binding: binding.c, so such a page always meets the range).
 */
static void unready(struct gmem *g, struct gmem_binding *b, uint64_t start,
		    uint64_t end)
{
	uint64_t hp = g->huge_shift ? 1ULL << (g->huge_shift - g->page_shift)
				    : 1;
	uint64_t s = start & ~(hp - 1), e = (end + hp - 1) & ~(hp - 1);

	s = s > b->first ? s - b->first : 0;
	e = e < b->first + b->npages ? e - b->first : b->npages;
	gmem_refs_unready(&b->refs, s, e);
}

/*
 * Begin an invalidation of the bindings [start, end) meets (it ends when
 * the file lock is released: lock.c; g->inval_any counts the bindings
 * under one, for the slow path of every binding), take READY away from
 * their pages
 * so that no lock-free gmem_get_pfn() grants one any more, then tell
 * the owners.
 */
void gmem_invalidate(struct gmem *g, uint64_t start, uint64_t end,
		     unsigned int reason)
{
	for (struct gmem_binding *b = g->bindings; b; b = b->next) {
		uint64_t s, e;

		if (!gmem_binding_clip(b, start, end, &s, &e))
			continue;
		if (!b->inval_pending++) {
			atomic_fetch_add(&b->inval_active, 1);
			atomic_fetch_add(&g->inval_any, 1);
		}
		g->inval_open = true;
		unready(g, b, s, e);
		gmem_cb_enter(g);
		b->ops->invalidate(b->owner, off_of(g, s), off_of(g, e - s),
				   reason);
		gmem_cb_exit(g);
		g->invalidations++;
	}
}

/* Owners let go of the pages of [start, end) that are not val yet. */
void gmem_invalidate_changing(struct gmem *g, uint64_t start, uint64_t end,
			      unsigned int val)
{
	uint64_t p, run;
	unsigned int cur;

	if (!g->bindings)
		return;
	for (p = start; p < end; p = run) {
		run = gmem_state_run(&g->state, p, end, &cur);
		if (cur != val)
			gmem_invalidate(g, p, run, GMEM_INVALIDATE_CONVERT);
	}
}

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

/* Registration: replay the shared runs of l's range; undo on refusal. */
int gmem_listener_replay(struct gmem *g, struct gmem_listener *l)
{
	uint64_t p, run, end = l->first + l->npages;
	unsigned int cur;
	int ret = 0;

	for (p = l->first; p < end; p = run) {
		run = gmem_state_run(&g->state, p, end, &cur);
		if (cur)
			continue;
		ret = notify(g, l, p, run, true);
		if (ret)
			break;
	}
	if (!ret)
		return 0;
	for (uint64_t q = l->first; q < p; q = run) {
		run = gmem_state_run(&g->state, q, p, &cur);
		if (!cur)
			notify(g, l, q, run, false);
	}
	return ret;
}
