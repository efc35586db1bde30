// SPDX-License-Identifier: MIT
/*
 * convert.c - in-place conversion between shared and private, and the
 * pins that hold it back.
 *
 * A conversion of [start, end) to val, all under g->lock:
 *   1. nothing to do if the range is already val (no-op, not counted);
 *   2. to private: a pinned page fails the whole call with -EAGAIN and
 *      error_offset, or with GMEM_SET_ATTR_WAIT waits on pin_cond;
 *   3. reserve the state tree's memory, so step 5 cannot fail;
 *   4. change every view, page runs that actually change only; a failure
 *      undoes the views already changed and returns, state untouched;
 *   5. tell listeners: to private, discard (cannot fail); to shared,
 *      populate, where a refusal undoes the views and fails the call;
 *   6. invalidate the owners of the pages that change (the consumers of
 *      their old state), then commit the state; let vma views that grew
 *      too fragmented switch.
 * The contents never move: the pages stay in the backing file, only
 * where they are visible changes.
 *
 * Pins: a pin holds shared pages in place for a device.  The address it
 * returns lies in the pin view, an internal guarded view of the whole
 * file, so even an overrun by the device cannot read a private page.
 */
#include <errno.h>
#include <sys/mman.h>

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

/* True if every page of [start, end) already has value val. */
static bool uniform(struct gmem *g, uint64_t start, uint64_t end,
		    unsigned int val)
{
	unsigned int cur;

	return gmem_state_run(&g->state, start, end, &cur) == end && cur == val;
}

/* Owners let go of the pages of [start, end) that are not val yet. */
static void invalidate_changing(struct gmem *g, uint64_t start, uint64_t end,
				unsigned int val)
{
	uint64_t p, run;
	unsigned int cur;

	for (p = start; p < end; p = run) {
		run = gmem_state_run(&g->state, p, end, &cur);
		if (cur != val)
			gmem_invalidate(g, p, run, GMEM_INVALIDATE_CONVERT);
	}
}

/*
 * The first page whose pin holds [start, end) back from private, or
 * UINT64_MAX.  On 1 GiB hugetlb files a gmem_pin() pin holds its whole
 * region: its address lies in a view that can only show whole regions.
 */
static uint64_t first_pinned(struct gmem *g, uint64_t start, uint64_t end)
{
	uint64_t p = gmem_pins_first(&g->pins, start, end);
	uint64_t rs = start, re = end, q;

	if (p < end)
		return p;
	gmem_huge_round(g, &rs, &re);
	if (rs == start && re == end)
		return UINT64_MAX;
	q = gmem_pins_first(&g->user_pins, rs, re);
	return q < re ? q : UINT64_MAX;
}

/* Put the kernel's state of [start, end) back to the runs still in ours. */
static void kvm_revert(struct gmem *g, uint64_t start, uint64_t end,
		       unsigned int val)
{
	uint64_t p, run, bad;
	unsigned int cur;

	for (p = start; g->kvm_inplace && p < end; p = run) {
		run = gmem_state_run(&g->state, p, end, &cur);
		if (cur != val)
			gmem_kvm_convert(g, p, run, cur, &bad);
	}
}

static int convert_locked(struct gmem *g, struct gmem_attributes *a)
{
	uint64_t start = page_of(g, a->offset);
	uint64_t end = page_of(g, a->offset + a->size);
	unsigned int val = a->attributes & GMEM_ATTR_PRIVATE ? 1 : 0;
	struct gmem_view *v, *failed;
	uint64_t pinned, bad = start;
	int ret;

	for (;;) {
		if (uniform(g, start, end, val))
			return 0;
		pinned = val ? first_pinned(g, start, end) : UINT64_MAX;
		if (pinned == UINT64_MAX)
			break;
		if (!(a->flags & GMEM_SET_ATTR_WAIT)) {
			a->error_offset = off_of(g, pinned);
			return -EAGAIN;
		}
		g->nr_waiters++;
		pthread_cond_wait(&g->pin_cond, &g->lock);
		g->nr_waiters--;
		if (g->closed)
			return -EBADF;
	}
	ret = gmem_state_reserve(&g->state, start, end, val);
	if (ret)
		goto err;
	/* A kernel that keeps the state too goes first: it may refuse. */
	ret = gmem_kvm_convert(g, start, end, val, &bad);
	if (ret) {
		a->error_offset = off_of(g, bad);
		return ret;
	}
	gmem_huge_before(g, start, end);
	for (v = g->views; v; v = v->next) {
		ret = gmem_view_convert(g, v, start, end, val);
		if (ret)
			goto err_views;
	}
	if (val) {
		gmem_listeners_discard(g, start, end, 0);
	} else {
		ret = gmem_listeners_populate(g, start, end, &bad);
		if (ret) {
			for (v = g->views; v; v = v->next)
				gmem_view_undo(g, v, start, end, val);
			kvm_revert(g, start, end, val);
			a->error_offset = off_of(g, bad);
			return ret;
		}
	}
	if (g->bindings)
		invalidate_changing(g, start, end, val);
	g->pages_converted += gmem_state_set(&g->state, start, end, val);
	g->conversions++;
	for (v = g->views; v; v = v->next)
		gmem_view_commit(g, v, start, end);
	gmem_huge_after(g, start, end, val);
	return 0;

err_views:
	failed = v;
	for (v = g->views; v != failed; v = v->next)
		gmem_view_undo(g, v, start, end, val);
	kvm_revert(g, start, end, val);
err:
	a->error_offset = a->offset;
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

GMEM_EXPORT int gmem_pin(struct gmem *g, uint64_t offset, uint64_t len,
			 void **addr)
{
	uint64_t start, end, rs, re;
	char *p;
	int ret;

	if (!g || !addr || !gmem_range_ok(g, offset, len))
		return -EINVAL;
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	start = page_of(g, offset);
	end = page_of(g, offset + len);
	rs = start;
	re = end;
	gmem_huge_round(g, &rs, &re);	/* hugetlb: whole regions shared */
	if (!uniform(g, start, end, 0) || !uniform(g, rs, re, 0)) {
		ret = -EFAULT;
		goto out;
	}
	if (!g->pin_view) {
		ret = gmem_view_create(g, 0, g->size, PROT_READ | PROT_WRITE,
				       true, &g->pin_view);
		if (ret)
			goto out;
	}
	if (g->poison.nr && gmem_pins_first(&g->poison, start, end) < end) {
		ret = -EHWPOISON;
		goto out;
	}
	ret = gmem_pins_add(&g->user_pins, start, end);
	if (ret)
		goto out;
	ret = gmem_pins_add(&g->pins, start, end);
	if (ret)
		goto err_user;
	/* Make the pages resident, as a DMA pin would. */
	p = g->pin_view->addr + offset;
	ret = sys_madvise(p, len, MADV_POPULATE_WRITE);
	if (ret) {
		gmem_pins_sub(&g->pins, start, end);
		goto err_user;
	}
	*addr = p;
	goto out;
err_user:
	gmem_pins_sub(&g->user_pins, start, end);
out:
	gmem_unlock_put(g);
	return ret;
}

/* Allowed after gmem_close(): a pin keeps the file alive until here. */
GMEM_EXPORT int gmem_unpin(struct gmem *g, uint64_t offset, uint64_t len)
{
	int ret;

	if (!g || !gmem_range_ok(g, offset, len))
		return -EINVAL;
	ret = gmem_lock(g);
	if (ret)
		return ret;
	/* Only gmem_pin()'s own pins: get_pfn references are not ours. */
	ret = gmem_pins_sub(&g->user_pins, page_of(g, offset),
			    page_of(g, offset + len));
	if (!ret) {
		ret = gmem_pins_sub(&g->pins, page_of(g, offset),
				    page_of(g, offset + len));
		if (ret)	/* keep the two counts in step */
			gmem_pins_add(&g->user_pins, page_of(g, offset),
				      page_of(g, offset + len));
	}
	if (!ret)
		pthread_cond_broadcast(&g->pin_cond);
	/* The pin view costs every conversion a view: only while pinned. */
	if (!ret && !g->user_pins.nr && g->pin_view) {
		gmem_view_destroy(g, g->pin_view);
		g->pin_view = NULL;
	}
	gmem_unlock_put(g);
	return ret;
}
