// SPDX-License-Identifier: MIT
/*
 * park.c - the snapshot store (see park.h): linear probing on page
 * index, deletion by backward shift (no tombstones), so a table with
 * few slots costs a probe or two per lookup.
 */
#include <errno.h>
#include <stdlib.h>

#include "park.h"

#define EMPTY		UINT64_MAX
#define MAX_FREE	64

void gmem_park_init(struct gmem_park *p, size_t limit, size_t page_size)
{
	*p = (struct gmem_park){ .limit = limit, .page_size = page_size };
}

void gmem_park_destroy(struct gmem_park *p)
{
	for (size_t i = 0; i < p->cap; i++)
		if (p->slot[i].page != EMPTY)
			free(p->slot[i].buf);
	for (size_t i = 0; i < p->nr_free; i++)
		free(p->free_buf[i]);
	free(p->slot);
	free(p->free_buf);
	free(p->age);
	gmem_park_init(p, p->limit, p->page_size);
}

static inline size_t home(const struct gmem_park *p, uint64_t page)
{
	uint64_t h = page * 0x9e3779b97f4a7c15ULL;

	return (size_t)(h >> 32) & (p->cap - 1);
}

struct gmem_park_slot *gmem_park_find(struct gmem_park *p, uint64_t page)
{
	if (!p->nr)
		return NULL;
	for (size_t i = home(p, page);; i = (i + 1) & (p->cap - 1)) {
		if (p->slot[i].page == page)
			return &p->slot[i];
		if (p->slot[i].page == EMPTY)
			return NULL;
	}
}

/* Rebuild the table with cap slots (a power of two > nr). */
static int resize(struct gmem_park *p, size_t cap)
{
	struct gmem_park_slot *old = p->slot, *s = malloc(cap * sizeof(*s));
	size_t old_cap = p->cap;

	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < cap; i++)
		s[i].page = EMPTY;
	p->slot = s;
	p->cap = cap;
	for (size_t i = 0; i < old_cap; i++) {
		size_t j;

		if (old[i].page == EMPTY)
			continue;
		for (j = home(p, old[i].page); s[j].page != EMPTY;
		     j = (j + 1) & (cap - 1))
			;
		s[j] = old[i];
	}
	free(old);
	return 0;
}

/* An ordinary slot was parked (or became ordinary): queue it. */
/* Keep the FIFO's live entries, in order; how many there are. */
static size_t age_compact(struct gmem_park *p)
{
	size_t mask = p->age_cap - 1, kept = 0;

	for (size_t k = 0; k < p->age_len; k++) {
		struct gmem_park_age a = p->age[(p->age_head + k) & mask];
		struct gmem_park_slot *t = gmem_park_find(p, a.page);

		if (t && t->seq == a.seq && !(t->flags & GMEM_PARK_EXTRA))
			p->age[(p->age_head + kept++) & mask] = a;
	}
	return p->age_len = kept;
}

/* Twice the room, or false. */
static bool age_grow(struct gmem_park *p)
{
	struct gmem_park_age *a = malloc(2 * p->age_cap * sizeof(*a));

	if (!a)
		return false;
	for (size_t k = 0; k < p->age_len; k++)
		a[k] = p->age[(p->age_head + k) & (p->age_cap - 1)];
	free(p->age);
	p->age = a;
	p->age_head = 0;
	p->age_cap *= 2;
	return true;
}

/* An ordinary slot was parked (or became ordinary): queue it. */
static void age_push(struct gmem_park *p, const struct gmem_park_slot *s)
{
	/*
	 * Full: drop the stale entries.  Still more than half live means
	 * more ordinary slots than the limit (slots that turn ordinary
	 * again may go past it): grow, or failing that forget the oldest
	 * entry (its slot stays parked until it is used or shared; it is
	 * only no longer evicted).
	 */
	if (p->age_len == p->age_cap && age_compact(p) * 2 > p->age_cap &&
	    !age_grow(p) && p->age_len == p->age_cap) {
		p->age_head = (p->age_head + 1) & (p->age_cap - 1);
		p->age_len--;
	}
	p->age[(p->age_head + p->age_len++) & (p->age_cap - 1)] =
		(struct gmem_park_age){ .page = s->page, .seq = s->seq };
}

int gmem_park_reserve(struct gmem_park *p, size_t n)
{
	if (!p->age) {
		size_t cap = 16;

		while (cap <= 2 * p->limit)
			cap *= 2;
		p->age = malloc(cap * sizeof(*p->age));
		if (!p->age)
			return -ENOMEM;
		p->age_cap = cap;
	}
	size_t cap = p->cap ? p->cap : 16;

	/* Keep the load at most one half. */
	while ((p->nr + n) * 2 > cap)
		cap *= 2;
	if (cap == p->cap)
		return 0;
	return resize(p, cap);
}

void *gmem_park_buf(struct gmem_park *p)
{
	if (p->nr_free)
		return p->free_buf[--p->nr_free];
	return malloc(p->page_size);
}

void gmem_park_buf_free(struct gmem_park *p, void *buf)
{
	if (!buf)
		return;
	if (!p->free_buf) {
		p->free_buf = malloc(MAX_FREE * sizeof(void *));
		if (!p->free_buf) {
			free(buf);
			return;
		}
	}
	if (p->nr_free < MAX_FREE)
		p->free_buf[p->nr_free++] = buf;
	else
		free(buf);
}

int gmem_park_add(struct gmem_park *p, uint64_t page, void *buf,
		  unsigned int flags)
{
	struct gmem_park_slot *s = gmem_park_find(p, page);
	bool extra = flags & GMEM_PARK_EXTRA;

	if (s) {
		p->nr_extra -= !!(s->flags & GMEM_PARK_EXTRA);
		p->nr_detached -= !!(s->flags & GMEM_PARK_DETACHED);
		gmem_park_buf_free(p, s->buf);
	} else {
		if (!extra && p->nr - p->nr_extra >= p->limit)
			return -ENOSPC;
		if ((p->nr + 1) * 2 > p->cap)
			return -ENOMEM;		/* gmem_park_reserve() first */
		for (size_t i = home(p, page);; i = (i + 1) & (p->cap - 1)) {
			if (p->slot[i].page == EMPTY) {
				s = &p->slot[i];
				break;
			}
		}
		p->nr++;
	}
	s->page = page;
	s->buf = buf;
	s->flags = flags;
	s->seq = ++p->seq;
	p->nr_extra += extra;
	p->nr_detached += !!(flags & GMEM_PARK_DETACHED);
	if (!extra)
		age_push(p, s);
	return 0;
}

void gmem_park_set_flags(struct gmem_park *p, struct gmem_park_slot *s,
			 unsigned int flags)
{
	bool was_extra = s->flags & GMEM_PARK_EXTRA;

	flags = (flags & ~GMEM_PARK_ZERO) | (s->flags & GMEM_PARK_ZERO);
	p->nr_extra -= was_extra;
	p->nr_detached -= !!(s->flags & GMEM_PARK_DETACHED);
	s->flags = flags;
	p->nr_extra += !!(flags & GMEM_PARK_EXTRA);
	p->nr_detached += !!(flags & GMEM_PARK_DETACHED);
	if (was_extra && !(flags & GMEM_PARK_EXTRA)) {
		s->seq = ++p->seq;	/* ordinary again: queue it anew */
		age_push(p, s);
	}
}

void gmem_park_zero(struct gmem_park *p, struct gmem_park_slot *s)
{
	gmem_park_buf_free(p, s->buf);
	s->buf = NULL;
	s->flags |= GMEM_PARK_ZERO;
}

void gmem_park_drop(struct gmem_park *p, struct gmem_park_slot *s)
{
	size_t i = (size_t)(s - p->slot), j = i;

	p->nr_extra -= !!(s->flags & GMEM_PARK_EXTRA);
	p->nr_detached -= !!(s->flags & GMEM_PARK_DETACHED);
	gmem_park_buf_free(p, s->buf);
	p->nr--;
	/* Backward shift: pull later members of the cluster forward. */
	for (;;) {
		size_t h;

		p->slot[i].page = EMPTY;
		for (;;) {
			j = (j + 1) & (p->cap - 1);
			if (p->slot[j].page == EMPTY)
				return;
			h = home(p, p->slot[j].page);
			/* Stays if its home lies cyclically in (i, j]. */
			if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
				continue;
			break;
		}
		p->slot[i] = p->slot[j];
		i = j;
	}
}

struct gmem_park_slot *gmem_park_oldest(struct gmem_park *p)
{
	while (p->age_len) {
		struct gmem_park_age a = p->age[p->age_head];
		struct gmem_park_slot *s = gmem_park_find(p, a.page);

		p->age_head = (p->age_head + 1) & (p->age_cap - 1);
		p->age_len--;
		if (s && s->seq == a.seq && !(s->flags & GMEM_PARK_EXTRA))
			return s;
	}
	return NULL;
}

void gmem_park_requeue(struct gmem_park *p, struct gmem_park_slot *s)
{
	if (!s || (s->flags & GMEM_PARK_EXTRA))
		return;
	s->seq = ++p->seq;
	age_push(p, s);
}

struct gmem_park_slot *gmem_park_next(struct gmem_park *p, uint64_t start,
				      uint64_t end, size_t *i)
{
	for (; p->nr && *i < p->cap; (*i)++) {
		struct gmem_park_slot *s = &p->slot[*i];

		if (s->page != EMPTY && s->page >= start && s->page < end)
			return s;
	}
	return NULL;
}

uint64_t gmem_park_bytes(const struct gmem_park *p)
{
	uint64_t bufs = 0;

	for (size_t i = 0; i < p->cap; i++)
		bufs += p->slot[i].page != EMPTY && p->slot[i].buf;
	return (bufs + p->nr_free) * p->page_size +
	       p->cap * sizeof(*p->slot);
}
