// SPDX-License-Identifier: MIT
/*
 * extent.c - counts per page range (see extent.h).
 *
 * Every change builds the new extent array next to the old one and swaps
 * them, so a failed allocation leaves the old counts untouched.  The cost
 * is O(number of extents) per pin, which is what a handful of DMA buffers
 * needs; the lookup on the conversion path is a binary search.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "extent.h"

#define PIN_MAX		UINT32_MAX

void gmem_extents_init(struct gmem_extents *p)
{
	*p = (struct gmem_extents){ 0 };
}

void gmem_extents_destroy(struct gmem_extents *p)
{
	free(p->ext);
	gmem_extents_init(p);
}

/* Index of the first extent whose end is past page, or nr. */
static size_t first_after(const struct gmem_extents *p, uint64_t page)
{
	size_t lo = 0, hi = p->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->ext[mid].end <= page)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint64_t gmem_extents_first(const struct gmem_extents *p, uint64_t start,
			 uint64_t end)
{
	size_t i = first_after(p, start);

	if (i == p->nr || p->ext[i].start >= end)
		return end;
	return p->ext[i].start > start ? p->ext[i].start : start;
}

uint64_t gmem_extents_run(const struct gmem_extents *p, uint64_t page,
			  uint64_t limit, bool *covered)
{
	size_t i = first_after(p, page);
	uint64_t end;

	if (i == p->nr || p->ext[i].start > page) {
		*covered = false;
		end = i == p->nr ? limit : p->ext[i].start;
	} else {
		*covered = true;
		while (i + 1 < p->nr && p->ext[i + 1].start == p->ext[i].end)
			i++;
		end = p->ext[i].end;
	}
	return end < limit ? end : limit;
}

/* Append [start, end) with count to out, merging an equal neighbour. */
static void emit(struct gmem_extent *out, size_t *n, uint64_t start,
		 uint64_t end, uint64_t count)
{
	if (start >= end || !count)
		return;
	if (*n && out[*n - 1].end == start && out[*n - 1].count == count) {
		out[*n - 1].end = end;
		return;
	}
	out[(*n)++] = (struct gmem_extent){ start, end, count };
}

/* Check that [start, end) can take delta without a gap or an overflow. */
static int check(const struct gmem_extents *p, uint64_t start, uint64_t end,
		 int delta)
{
	uint64_t pos = start;

	for (size_t i = first_after(p, start); i < p->nr; i++) {
		const struct gmem_extent *e = &p->ext[i];

		if (e->start >= end)
			break;
		if (delta < 0 && e->start > pos)
			return -EINVAL;
		if (delta > 0 && e->count >= PIN_MAX)
			return -EOVERFLOW;
		pos = e->end;
	}
	if (delta < 0 && pos < end)
		return -EINVAL;
	return 0;
}

static int apply(struct gmem_extents *p, uint64_t start, uint64_t end, int delta)
{
	size_t cap = p->nr * 2 + 3, n = 0;
	struct gmem_extent *out;
	uint64_t pos = start, pinned = 0;
	bool gap_done = false;
	int ret = check(p, start, end, delta);

	if (ret)
		return ret;
	out = malloc(cap * sizeof(*out));
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < p->nr; i++) {
		const struct gmem_extent *e = &p->ext[i];

		if (e->end <= start) {
			emit(out, &n, e->start, e->end, e->count);
			continue;
		}
		if (e->start >= end) {
			if (!gap_done && delta > 0)
				emit(out, &n, pos, end, 1);
			gap_done = true;
			emit(out, &n, e->start, e->end, e->count);
			continue;
		}
		uint64_t os = e->start > start ? e->start : start;
		uint64_t oe = e->end < end ? e->end : end;

		emit(out, &n, e->start, os, e->count);
		if (delta > 0)
			emit(out, &n, pos, os, 1);
		emit(out, &n, os, oe, e->count + (uint64_t)(int64_t)delta);
		emit(out, &n, oe, e->end, e->count);
		pos = oe;
	}
	if (!gap_done && delta > 0)
		emit(out, &n, pos, end, 1);
	for (size_t i = 0; i < n; i++)
		pinned += out[i].end - out[i].start;
	free(p->ext);
	p->ext = out;
	p->nr = n;
	p->cap = cap;
	p->nr_pinned = pinned;
	return 0;
}

int gmem_extents_add(struct gmem_extents *p, uint64_t start, uint64_t end)
{
	int ret = apply(p, start, end, 1);

	if (!ret)
		p->nr_calls++;
	return ret;
}

int gmem_extents_sub(struct gmem_extents *p, uint64_t start, uint64_t end)
{
	int ret = apply(p, start, end, -1);

	if (!ret && p->nr_calls)
		p->nr_calls--;
	return ret;
}
