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

int gmem_park_reserve(struct gmem_park *p, size_t n)
{
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
	return 0;
}

void gmem_park_set_flags(struct gmem_park *p, struct gmem_park_slot *s,
			 unsigned int flags)
{
	flags = (flags & ~GMEM_PARK_ZERO) | (s->flags & GMEM_PARK_ZERO);
	p->nr_extra -= !!(s->flags & GMEM_PARK_EXTRA);
	p->nr_detached -= !!(s->flags & GMEM_PARK_DETACHED);
	s->flags = flags;
	p->nr_extra += !!(flags & GMEM_PARK_EXTRA);
	p->nr_detached += !!(flags & GMEM_PARK_DETACHED);
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
	struct gmem_park_slot *best = NULL;

	for (size_t i = 0; i < p->cap && p->nr; i++) {
		struct gmem_park_slot *s = &p->slot[i];

		if (s->page == EMPTY || (s->flags & GMEM_PARK_EXTRA))
			continue;
		if (!best || s->seq < best->seq)
			best = s;
	}
	return best;
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
