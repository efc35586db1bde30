// SPDX-License-Identifier: MIT
/*
 * convert.c - in-place conversion between shared and private:
 * gmem_set_attributes() and gmem_get_attributes().
 *
 * A conversion of [start, end) to val, all under g->lock, ordered so
 * that the unsafe direction never needs an undo:
 *   1. nothing to do if the range is already val (no-op, not counted);
 *   2. to private: a pinned page fails the whole call with -EAGAIN and
 *      error_offset, or with GMEM_SET_ATTR_WAIT waits until one goes
 *      (wake_cond); a shared gmem_get_pfn() reference is a pin here,
 *      and its lock-free path is shut (READY cleared) before the
 *      references are counted, so none slips in after the count;
 *   3. reserve the state tree's memory, so the state commit cannot fail;
 *      forward to a kernel that converts in place (it may refuse);
 *   to private:
 *   4. owners (bindings) let go of the pages that change, before any of
 *      them moves;
 *   5. the views hide the pages (gmem_views_apply: prepare, commit; a
 *      failure undoes it all), then pages the kernel may still reference
 *      from when they were shared are parked or re-homed (rehome.c);
 *   6. listeners discard the pages (cannot fail);
 *   to shared:
 *   5. contents that live only in a snapshot go back into the file;
 *   6. the views prepare (budget, carving, allocation: nothing visible),
 *      listeners populate (a refusal undoes the populates and the
 *      preparation: no page was ever shown, no owner invalidated), then
 *      owners let go of the pages, then the views show the pages (a
 *      failure undoes the shows and the populates; the owners re-fault);
 *   7. commit the state; views settle (mode, huge pages merged back).
 * The contents never move (but for re-homing, which keeps them): the
 * pages stay in the backing file, only where they are visible changes.
 */
#include <errno.h>
#include <time.h>

#include "internal.h"

static int check_attributes(const struct gmem_attributes *a)
{
	if (a->flags & ~GMEM_SET_ATTR_WAIT)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(a->reserved) / 8; i++)
		if (a->reserved[i])
			return -EINVAL;
	if (a->attributes & ~GMEM_ATTR_PRIVATE)
		return -EINVAL;
	return 0;
}

/*
 * True if every page of [start, end) already has value val; *was is
 * their one value if they have one (else -1).
 */
static bool uniform(struct gmem *g, uint64_t start, uint64_t end,
		    unsigned int val, int *was)
{
	unsigned int cur;
	bool one = gmem_state_run(&g->state, start, end, &cur) == end;

	*was = one ? (int)cur : -1;
	return one && cur == val;
}

/*
 * The first page whose pin holds [start, end) back from private, or
 * UINT64_MAX.  On 1 GiB hugetlb files a gmem_pin() pin holds its whole
 * region: its address lies in a view that can only show whole regions.
 */
static uint64_t first_pinned(struct gmem *g, uint64_t start, uint64_t end)
{
	uint64_t p = gmem_extents_first(&g->pins, start, end);
	uint64_t rs = start, re = end, q;

	for (struct gmem_binding *b = g->bindings; b; b = b->next) {
		uint64_t s, e;

		if (!gmem_binding_clip(b, start, end, &s, &e))
			continue;
		gmem_refs_unready(&b->refs, s - b->first, e - b->first);
		q = gmem_refs_first_shared(&b->refs, s - b->first,
					   e - b->first) + b->first;
		if (q < e && q < p)
			p = q;
	}
	if (p < end)
		return p;
	gmem_huge_round(g, &rs, &re);
	if (rs == start && re == end)
		return UINT64_MAX;
	q = gmem_extents_first(&g->user_pins, rs, re);
	return q < re ? q : UINT64_MAX;
}

/* Put the kernel's state of [start, end) back to the runs still in ours. */
static void kvm_revert(struct gmem *g, uint64_t start, uint64_t end,
		       unsigned int val)
{
	uint64_t p, run, bad;
	unsigned int cur;

	for (p = start; g->b.kvm_inplace && p < end; p = run) {
		run = gmem_state_run(&g->state, p, end, &cur);
		if (cur != val)
			gmem_kvm_convert(&g->b, p, run, cur, &bad);
	}
}

struct tx {
	uint64_t start, end;
	uint64_t bad;			/* a listener's refusal: the page */
	bool populated;			/* listeners were told */
	bool all_shared;		/* every page was shared before */
};

static int rehome_prepare(struct gmem *g, void *arg)
{
	struct tx *t = arg;

	return gmem_rehome_prepare(g, t->start, t->end);
}

static int rehome_post(struct gmem *g, void *arg)
{
	struct tx *t = arg;

	return gmem_rehome_to_private(g, t->start, t->end, t->all_shared);
}

static int populate_mid(struct gmem *g, void *arg)
{
	struct tx *t = arg;
	int ret = gmem_listeners_populate(g, t->start, t->end, &t->bad);

	t->populated = !ret;
	/* Listeners agreed: owners let go before any view shows a page. */
	if (!ret)
		gmem_invalidate_changing(g, t->start, t->end, 0);
	return ret;
}

/* Last, once every local view shows the pages: the peers show them. */
static int peers_post(struct gmem *g, void *arg)
{
	struct tx *t = arg;
	struct gmem_change ch = { t->start, t->end, 0, -1, -1, -1 };

	return gmem_peers_change(g, &ch);
}

/* Sleep on wake_cond at most ms (wake_lock held): true if it timed out. */
static bool timed_wait(struct gmem *g, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return pthread_cond_timedwait(&g->wake_cond, &g->wake_lock, &ts) ==
	       ETIMEDOUT;
}

/* Wait until no pin holds [start, end) back (or fail -EAGAIN). */
static int wait_pins(struct gmem *g, struct gmem_attributes *a,
		     uint64_t start, uint64_t end, unsigned int val, int *was)
{
	uint64_t pinned, seq;
	int ping;

	for (;;) {
		if (uniform(g, start, end, val, was))
			return 1;
		/* Before the count: a reference that goes after it moves it. */
		seq = atomic_load(&g->unpin_seq);
		pinned = val ? first_pinned(g, start, end) : UINT64_MAX;
		if (pinned == UINT64_MAX)
			return 0;
		if (!(a->flags & GMEM_SET_ATTR_WAIT)) {
			a->error_offset = off_of(g, pinned);
			return -EAGAIN;
		}
		/* A peer's pin: the wait is bounded while the peer is stuck
		 * (it is asked, and cut off if it does not answer). */
		ping = g->peers ? gmem_peers_ping(g, pinned) : 0;
		if (atomic_load(&g->unpin_seq) != seq)
			continue;
		g->nr_waiters++;
		atomic_fetch_add(&g->unpin_waiters, 1);
		pthread_mutex_unlock(&g->lock);
		pthread_mutex_lock(&g->wake_lock);
		while (atomic_load(&g->unpin_seq) == seq) {
			if (!ping) {
				pthread_cond_wait(&g->wake_cond,
						  &g->wake_lock);
				continue;
			}
			if (timed_wait(g, ping))
				break;		/* ask the peers again */
		}
		pthread_mutex_unlock(&g->wake_lock);
		atomic_fetch_sub(&g->unpin_waiters, 1);
		pthread_mutex_lock(&g->lock);
		g->nr_waiters--;
		if (g->closed)
			return -EBADF;
	}
}

static int convert_locked(struct gmem *g, struct gmem_attributes *a)
{
	uint64_t start = page_of(g, a->offset);
	uint64_t end = page_of(g, a->offset + a->size);
	unsigned int val = a->attributes & GMEM_ATTR_PRIVATE ? 1 : 0;
	struct gmem_change ch = { start, end, (int)val, -1, -1, -1 };
	struct tx t = { .start = start, .end = end, .bad = start };
	uint64_t bad = start;
	int ret;

	ret = wait_pins(g, a, start, end, val, &ch.was);
	if (ret)
		return ret > 0 ? 0 : ret;
	gmem_rehome_retry(g);	/* best effort: contents kept aside */
	a->error_offset = a->offset;
	ret = gmem_state_reserve(&g->state, start, end, val);
	if (ret)
		return ret;
	/* A kernel that keeps the state too goes first: it may refuse. */
	ret = gmem_kvm_convert(&g->b, start, end, val, &bad);
	if (ret) {
		a->error_offset = off_of(g, bad);
		return ret;
	}
	t.all_shared = ch.was == 0;
	gmem_huge_before(g, start, end);
	if (val) {
		gmem_invalidate_changing(g, start, end, val);
		/* Peers first: hiding needs no undo if the rest fails. */
		ret = gmem_peers_change(g, &ch);
		if (ret)
			goto err;
		ret = gmem_views_apply(g, &ch, rehome_prepare, rehome_post, &t);
		if (ret) {
			gmem_rehome_undo(g, start, end);
			gmem_peers_resync(g, start, end);
			goto err;
		}
		gmem_listeners_discard(g, start, end, 0);
	} else {
		ret = gmem_rehome_to_shared(g, start, end);
		if (!ret)
			ret = gmem_views_apply(g, &ch, populate_mid, peers_post,
					       &t);
		if (ret) {
			if (t.populated)	/* the views failed after */
				gmem_listeners_discard(g, start, end, 1);
			else if (t.bad != start)
				a->error_offset = off_of(g, t.bad);
			goto err;
		}
	}
	g->pages_converted += gmem_state_set(&g->state, start, end, val);
	g->conversions++;
	if (!val) {
		gmem_rehome_to_shared_done(g, start, end);
		if (g->views || g->listeners || g->peers)
			gmem_expose(g, start, end);
	}
	gmem_views_settle(g, &ch);
	gmem_huge_after(g, start, end, val);
	return 0;

err:
	kvm_revert(g, start, end, val);
	return ret;
}

GMEM_EXPORT int gmem_set_attributes(struct gmem *g, struct gmem_attributes *a)
{
	int ret;

	if (!g || !a)
		return -EINVAL;
	ret = check_attributes(a);
	if (ret)
		return ret;
	if (!gmem_range_ok(g, a->offset, a->size))
		return -EINVAL;
	if (gmem_is_peer(g))
		return -EPERM;
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	ret = convert_locked(g, a);
	gmem_unlock_put(g);
	return ret;
}

GMEM_EXPORT int gmem_get_attributes(struct gmem *g, uint64_t offset,
				    uint64_t *attributes, uint64_t *run_len)
{
	uint64_t end;
	unsigned int val;
	int ret;

	if (!g || !attributes)
		return -EINVAL;
	if ((offset & (off_of(g, 1) - 1)) || offset >= g->size)
		return -EINVAL;
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	end = gmem_state_run(&g->state, page_of(g, offset), g->npages, &val);
	gmem_unlock_put(g);
	*attributes = val ? GMEM_ATTR_PRIVATE : 0;
	if (run_len)
		*run_len = off_of(g, end) - offset;
	return 0;
}
