// SPDX-License-Identifier: MIT
/*
 * test_park.c - unit tests of the snapshot store (park.h).
 *
 * Covered, against a reference model (an array indexed by page):
 *  - random add/replace/drop/set_flags/find with fixed seeds: after every
 *    step the counts (nr, nr_extra, nr_detached) and each page's slot
 *    (buffer, flags) match the model;
 *  - gmem_park_oldest() returns the ordinary slots in the order they
 *    last became ordinary (parked, or turned ordinary by set_flags or
 *    requeue), skipping dropped, replaced and DETACHED/BUSY ones, also
 *    after the age FIFO wrapped and was compacted many times;
 *  - the ordinary limit: -ENOSPC past it, DETACHED/BUSY slots go past it,
 *    and more ordinary slots than the limit (turned ordinary again) are
 *    all still found by gmem_park_oldest();
 *  - gmem_park_next() visits each slot of a range once, also while the
 *    caller drops what it returned;
 *  - the FIFO stays bounded under park/drop churn (the DMA flip pattern).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "gmem_test.h"
#include "park.h"

#define NPAGES	4096
#define LIMIT	64
#define PS	64		/* small "pages": the store copies nothing */

struct model {
	bool in[NPAGES];
	void *buf[NPAGES];
	unsigned int flags[NPAGES];
	uint64_t order[NPAGES];		/* when it last became ordinary */
	uint64_t clock;
};

static void check(struct gmem_park *p, const struct model *m)
{
	size_t nr = 0, extra = 0, det = 0;

	for (uint64_t pg = 0; pg < NPAGES; pg++) {
		struct gmem_park_slot *s = gmem_park_find(p, pg);

		ASSERT_EQ(!!s, m->in[pg]);
		if (!s)
			continue;
		ASSERT_EQ(s->page, pg);
		ASSERT_EQ(s->buf == m->buf[pg], true);
		ASSERT_EQ(s->flags, m->flags[pg]);
		nr++;
		extra += !!(s->flags & GMEM_PARK_EXTRA);
		det += !!(s->flags & GMEM_PARK_DETACHED);
	}
	ASSERT_EQ(p->nr, nr);
	ASSERT_EQ(p->nr_extra, extra);
	ASSERT_EQ(p->nr_detached, det);
}

static size_t ordinary(const struct model *m)
{
	size_t n = 0;

	for (uint64_t pg = 0; pg < NPAGES; pg++)
		n += m->in[pg] && !(m->flags[pg] & GMEM_PARK_EXTRA);
	return n;
}

/* The model's oldest ordinary page, or NPAGES. */
static uint64_t model_oldest(const struct model *m)
{
	uint64_t best = NPAGES;

	for (uint64_t pg = 0; pg < NPAGES; pg++)
		if (m->in[pg] && !(m->flags[pg] & GMEM_PARK_EXTRA) &&
		    (best == NPAGES || m->order[pg] < m->order[best]))
			best = pg;
	return best;
}

static void model_drop(struct gmem_park *p, struct model *m, uint64_t pg)
{
	gmem_park_drop(p, gmem_park_find(p, pg));
	m->in[pg] = false;
	m->buf[pg] = NULL;
}

static int model_add(struct gmem_park *p, struct model *m, uint64_t pg,
		     unsigned int flags)
{
	void *buf = NULL;
	int ret;

	if (!(flags & GMEM_PARK_ZERO)) {
		buf = gmem_park_buf(p);
		ASSERT_NE(buf, NULL);
	}
	ret = gmem_park_reserve(p, 1);
	ASSERT_EQ(ret, 0);
	ret = gmem_park_add(p, pg, buf, flags);
	if (ret) {
		gmem_park_buf_free(p, buf);
		return ret;
	}
	m->in[pg] = true;
	m->buf[pg] = buf;
	m->flags[pg] = flags;
	if (!(flags & GMEM_PARK_EXTRA))
		m->order[pg] = ++m->clock;
	return 0;
}

static const unsigned int kinds[] = {
	0, GMEM_PARK_ZERO, GMEM_PARK_DETACHED, GMEM_PARK_BUSY,
	GMEM_PARK_BUSY | GMEM_PARK_ZERO,
};

TEST(random_against_model)
{
	static struct model m;
	struct gmem_park p;

	for (uint64_t seed = 1; seed <= 4; seed++) {
		uint64_t s = seed;

		memset(&m, 0, sizeof(m));
		gmem_park_init(&p, LIMIT, PS);
		for (int step = 0; step < 20000; step++) {
			uint64_t pg = rnd(&s) % (seed & 1 ? NPAGES : 300);
			unsigned int op = rnd(&s) % 10, f;
			struct gmem_park_slot *sl;
			int ret;

			if (op < 4) {			/* park */
				f = kinds[rnd(&s) % 5];
				bool was = m.in[pg];
				bool full = ordinary(&m) >= LIMIT;

				ret = model_add(&p, &m, pg, f);
				if (!was && full && !(f & GMEM_PARK_EXTRA))
					ASSERT_EQ(ret, -ENOSPC);
				else
					ASSERT_EQ(ret, 0);
			} else if (op < 6) {		/* unpark */
				if (m.in[pg])
					model_drop(&p, &m, pg);
			} else if (op < 8) {		/* turn */
				if (!m.in[pg])
					continue;
				f = kinds[rnd(&s) % 5] & ~GMEM_PARK_ZERO;
				sl = gmem_park_find(&p, pg);
				bool was_extra = m.flags[pg] & GMEM_PARK_EXTRA;

				gmem_park_set_flags(&p, sl, f);
				m.flags[pg] = f | (m.flags[pg] & GMEM_PARK_ZERO);
				if (was_extra && !(f & GMEM_PARK_EXTRA))
					m.order[pg] = ++m.clock;
			} else {			/* evict */
				uint64_t want = model_oldest(&m);

				sl = gmem_park_oldest(&p);
				if (want == NPAGES) {
					ASSERT_EQ(sl, NULL);
					continue;
				}
				ASSERT_NE(sl, NULL);
				ASSERT_EQ(sl->page, want);
				if (op == 8) {	/* re-homed */
					model_drop(&p, &m, want);
				} else {	/* failed: back in line */
					gmem_park_requeue(&p, sl);
					m.order[want] = ++m.clock;
				}
			}
			if (step % 997 == 0)
				check(&p, &m);
		}
		check(&p, &m);
		/* Drain: every ordinary slot, oldest first, then none. */
		for (uint64_t want; (want = model_oldest(&m)) != NPAGES;) {
			struct gmem_park_slot *sl = gmem_park_oldest(&p);

			ASSERT_NE(sl, NULL);
			ASSERT_EQ(sl->page, want);
			model_drop(&p, &m, want);
		}
		ASSERT_EQ(gmem_park_oldest(&p), NULL);
		gmem_park_destroy(&p);
	}
}

TEST(past_the_limit_all_found)
{
	static struct model m;
	struct gmem_park p;
	size_t found = 0;

	memset(&m, 0, sizeof(m));
	gmem_park_init(&p, LIMIT, PS);
	/* 4x the limit as DETACHED (allowed), then all ordinary again. */
	for (uint64_t pg = 0; pg < 4 * LIMIT; pg++)
		ASSERT_EQ(model_add(&p, &m, pg * 7, GMEM_PARK_DETACHED), 0);
	ASSERT_EQ(p.nr_extra, 4 * LIMIT);
	ASSERT_EQ(model_add(&p, &m, 5, 0), 0);
	for (uint64_t pg = 0; pg < 4 * LIMIT; pg++)
		gmem_park_set_flags(&p, gmem_park_find(&p, pg * 7), 0);
	ASSERT_EQ(p.nr_extra, 0);
	/* Past the limit now: a new ordinary slot is refused... */
	ASSERT_EQ(model_add(&p, &m, 3, 0), -ENOSPC);
	/* ...and every one is still evictable, 5 first. */
	for (struct gmem_park_slot *s; (s = gmem_park_oldest(&p)); found++) {
		if (!found)
			ASSERT_EQ(s->page, 5);
		gmem_park_drop(&p, s);
	}
	ASSERT_EQ(found, 4 * LIMIT + 1);
	ASSERT_EQ(p.nr, 0);
	gmem_park_destroy(&p);
}

TEST(next_visits_each_once)
{
	static struct model m;
	struct gmem_park p;
	struct gmem_park_slot *s;
	size_t i = 0, seen = 0;

	memset(&m, 0, sizeof(m));
	gmem_park_init(&p, 1024, PS);
	for (uint64_t pg = 0; pg < 1000; pg++)
		ASSERT_EQ(model_add(&p, &m, pg * 3, pg % 3 ? 0 :
				    GMEM_PARK_ZERO), 0);
	/* Drop every slot of [300, 2400) as it is returned. */
	while ((s = gmem_park_next(&p, 300, 2400, &i))) {
		ASSERT_GE(s->page, 300);
		ASSERT_LT(s->page, 2400);
		ASSERT_EQ(m.in[s->page], true);
		m.in[s->page] = false;
		m.buf[s->page] = NULL;
		gmem_park_drop(&p, s);
		seen++;
	}
	ASSERT_EQ(seen, 700);		/* pages 300, 303, ..., 2397 */
	check(&p, &m);
	gmem_park_destroy(&p);
}

TEST(fifo_bounded_under_churn)
{
	struct gmem_park p;
	size_t cap;

	gmem_park_init(&p, LIMIT, PS);
	ASSERT_EQ(gmem_park_reserve(&p, 2), 0);
	cap = p.age_cap;
	/* The DMA flip: park two pages, unpark them, a million times. */
	for (int i = 0; i < 1000000; i++) {
		for (uint64_t pg = 10; pg < 12; pg++) {
			ASSERT_EQ(gmem_park_add(&p, pg, NULL,
						GMEM_PARK_ZERO), 0);
		}
		for (uint64_t pg = 10; pg < 12; pg++)
			gmem_park_drop(&p, gmem_park_find(&p, pg));
	}
	ASSERT_EQ(p.age_cap, cap);
	ASSERT_LE(p.age_len, p.age_cap);
	ASSERT_EQ(gmem_park_oldest(&p), NULL);
	gmem_park_destroy(&p);
}
