// SPDX-License-Identifier: MIT
/*
 * test_extent.c - unit tests of the extent counts (extent.h).
 *
 * A reference holds one count per page.  Covered:
 *  - random gmem_extents_add()/gmem_extents_sub() ranges with fixed seeds, at
 *    page 0 and at page 2^40: after every call the extents match the
 *    reference page by page, stay sorted, disjoint and merged (touching
 *    extents never have equal counts, no extent has count 0), nr_pinned
 *    is the recount and gmem_extents_first() answers random queries right;
 *  - a sub over a range with an unpinned page is -EINVAL and changes
 *    nothing (the whole structure is compared before and after);
 *  - nr_calls counts the calls not yet undone;
 *  - neighbours with equal counts merge, and removing every pin leaves
 *    no extent.
 */
#include <stdbool.h>

#include "harness.h"
#include "gmem_test.h"
#include "extent.h"

/* Extents well formed and equal, page by page, to ref[0..n) at base. */
static void check_pins(const struct gmem_extents *p, const uint32_t *ref,
		       uint64_t base, uint64_t n)
{
	uint64_t page = base, pinned = 0;

	ASSERT_LE(p->nr, p->cap);
	for (size_t i = 0; i < p->nr; i++) {
		const struct gmem_extent *e = &p->ext[i];

		if (e->start >= e->end || !e->count || e->start < page ||
		    (i && e->start == page && e->count == p->ext[i - 1].count))
			TH_LOG("extent %zu [%ju, %ju) count %ju", i,
			       (uintmax_t)e->start, (uintmax_t)e->end,
			       (uintmax_t)e->count);
		ASSERT_LT(e->start, e->end);
		ASSERT_GT(e->count, 0);
		ASSERT_GE(e->start, page);	/* sorted, disjoint */
		if (i && e->start == p->ext[i - 1].end)	/* merged */
			ASSERT_NE(e->count, p->ext[i - 1].count);
		ASSERT_GE(e->start, base);
		ASSERT_LE(e->end, base + n);
		for (; page < e->start; page++)
			ASSERT_EQ(ref[page - base], 0);
		for (; page < e->end; page++) {
			if (ref[page - base] != e->count)
				TH_LOG("page %ju", (uintmax_t)page);
			ASSERT_EQ(ref[page - base], e->count);
		}
		pinned += e->end - e->start;
	}
	for (; page < base + n; page++)
		ASSERT_EQ(ref[page - base], 0);
	ASSERT_EQ(p->nr_pinned, pinned);
}

/* gmem_extents_first() on random [start, end) inside [base, base + n). */
static void check_first(const struct gmem_extents *p, const uint32_t *ref,
			uint64_t base, uint64_t n, uint64_t *rng,
			unsigned int queries)
{
	for (unsigned int i = 0; i < queries; i++) {
		uint64_t s = rng_below(rng, n), e, want, got;

		/* Mostly short ranges, sometimes to the end. */
		e = i % 4 ? s + rng_below(rng, 65) : n;
		if (e > n)
			e = n;
		for (want = s; want < e && !ref[want]; want++)
			;
		got = gmem_extents_first(p, base + s, base + e);
		if (got != base + want)
			TH_LOG("first in [%ju, %ju)", (uintmax_t)(base + s),
			       (uintmax_t)(base + e));
		ASSERT_EQ(got, base + want);
	}
}

/* Whole-structure snapshot, to prove a failed call changed nothing. */
struct pins_copy {
	struct gmem_extent *ext;
	size_t nr;
	uint64_t nr_pinned, nr_calls;
};

static void pins_save(const struct gmem_extents *p, struct pins_copy *c)
{
	c->ext = malloc((p->nr + 1) * sizeof(p->ext[0]));
	ASSERT_NONNULL(c->ext);
	if (p->nr)
		memcpy(c->ext, p->ext, p->nr * sizeof(p->ext[0]));
	c->nr = p->nr;
	c->nr_pinned = p->nr_pinned;
	c->nr_calls = p->nr_calls;
}

/* Compare with the snapshot and free it. */
static void pins_same(const struct gmem_extents *p, struct pins_copy *c)
{
	ASSERT_EQ(p->nr, c->nr);
	ASSERT_EQ(p->nr_pinned, c->nr_pinned);
	ASSERT_EQ(p->nr_calls, c->nr_calls);
	if (p->nr)
		ASSERT_EQ(memcmp(p->ext, c->ext, p->nr * sizeof(p->ext[0])),
			  0);
	free(c->ext);
	c->ext = NULL;
}

/* ---- random adds and subs --------------------------------------------- */

#define NPAGES		2048
#define NR_OPS		6000

static const struct {
	uint64_t seed;
	uint64_t base;
} random_cases[] = {
	{ 1, 0 }, { 0xdeadbeef, 0 }, { 77, 1ULL << 40 }, { 12345, 1ULL << 40 },
};

/* One random range inside [0, n): short, medium or long. */
static void pick(uint64_t *rng, uint64_t *s, uint64_t *e)
{
	static const uint64_t max_len[] = { 1, 16, 64, 512, NPAGES };
	uint64_t len = 1 + rng_below(rng, max_len[rng_below(rng, 5)]);

	*s = rng_below(rng, NPAGES);
	*e = *s + len > NPAGES ? NPAGES : *s + len;
}

static void random_case(uint64_t seed, uint64_t base)
{
	struct { uint64_t s, e; } held[64];
	unsigned int nheld = 0, nr_ok = 0, nr_bad = 0;
	uint32_t *ref = calloc(NPAGES, sizeof(*ref));
	uint64_t rng = seed, s, e;
	struct pins_copy before;
	struct gmem_extents p;
	int ret, want;

	ASSERT_NONNULL(ref);
	gmem_extents_init(&p);
	for (unsigned int op = 0; op < NR_OPS; op++) {
		unsigned int r = (unsigned int)rng_below(&rng, 10);

		if (r < 4 && nheld < 64) {		/* add */
			pick(&rng, &s, &e);
			ASSERT_EQ(gmem_extents_add(&p, base + s, base + e), 0);
			for (uint64_t i = s; i < e; i++)
				ref[i]++;
			held[nheld].s = s;
			held[nheld++].e = e;
		} else {
			if (r < 8 && nheld) {	/* undo an earlier add */
				unsigned int k = (unsigned int)
						 rng_below(&rng, nheld);

				s = held[k].s;
				e = held[k].e;
				held[k] = held[--nheld];
			} else {		/* anywhere */
				pick(&rng, &s, &e);
			}
			want = 0;
			for (uint64_t i = s; i < e; i++)
				if (!ref[i])
					want = -EINVAL;
			pins_save(&p, &before);
			ret = gmem_extents_sub(&p, base + s, base + e);
			if (ret != want)
				TH_LOG("seed %ju op %u: sub [%ju, %ju)",
				       (uintmax_t)seed, op, (uintmax_t)s,
				       (uintmax_t)e);
			ASSERT_EQ(ret, want);
			if (ret) {
				pins_same(&p, &before);
				nr_bad++;
			} else {
				free(before.ext);
				for (uint64_t i = s; i < e; i++)
					ref[i]--;
				nr_ok++;
			}
		}
		check_pins(&p, ref, base, NPAGES);
		check_first(&p, ref, base, NPAGES, &rng, 16);
	}
	/* Both outcomes must have been exercised for the run to mean much. */
	ASSERT_GT(nr_ok, NR_OPS / 10);
	ASSERT_GT(nr_bad, NR_OPS / 100);
	gmem_extents_destroy(&p);
	free(ref);
}

TEST(random_add_sub)
{
	for (size_t i = 0; i < sizeof(random_cases) / sizeof(random_cases[0]);
	     i++)
		random_case(random_cases[i].seed, random_cases[i].base);
}

/* ---- failing subs change nothing -------------------------------------- */

static const struct { uint64_t s, e; } setup_adds[] = {
	{ 10, 20 }, { 15, 25 }, { 15, 25 }, { 40, 50 }, { 60, 61 },
};

/* Each has at least one page without a pin. */
static const struct { uint64_t s, e; } bad_subs[] = {
	{ 5, 12 },	/* unpinned head */
	{ 24, 26 },	/* unpinned tail */
	{ 20, 45 },	/* gap in the middle */
	{ 30, 35 },	/* nothing pinned */
	{ 9, 10 },	/* just before an extent */
	{ 25, 26 },	/* just after one */
	{ 0, 100 },	/* everything */
	{ 49, 51 },
	{ 59, 62 },
	{ 10, 50 },
};

TEST(sub_unpinned_changes_nothing)
{
	struct pins_copy before;
	struct gmem_extents p;
	uint32_t ref[128] = { 0 };
	int ret;

	gmem_extents_init(&p);
	ASSERT_EQ(gmem_extents_sub(&p, 0, 1), -EINVAL);	/* empty */
	ASSERT_EQ(p.nr, 0);
	ASSERT_EQ(p.nr_calls, 0);
	for (size_t i = 0; i < sizeof(setup_adds) / sizeof(setup_adds[0]);
	     i++) {
		ASSERT_EQ(gmem_extents_add(&p, setup_adds[i].s, setup_adds[i].e),
			  0);
		for (uint64_t j = setup_adds[i].s; j < setup_adds[i].e; j++)
			ref[j]++;
	}
	check_pins(&p, ref, 0, 128);
	ASSERT_EQ(p.nr_calls, 5);
	for (size_t i = 0; i < sizeof(bad_subs) / sizeof(bad_subs[0]); i++) {
		pins_save(&p, &before);
		ret = gmem_extents_sub(&p, bad_subs[i].s, bad_subs[i].e);
		if (ret != -EINVAL)
			TH_LOG("sub [%ju, %ju)", (uintmax_t)bad_subs[i].s,
			       (uintmax_t)bad_subs[i].e);
		ASSERT_EQ(ret, -EINVAL);
		pins_same(&p, &before);
	}
	check_pins(&p, ref, 0, 128);

	/* A fully pinned range across differing counts does come off. */
	ASSERT_EQ(gmem_extents_sub(&p, 10, 25), 0);
	for (uint64_t j = 10; j < 25; j++)
		ref[j]--;
	check_pins(&p, ref, 0, 128);
	ASSERT_EQ(p.nr_calls, 4);
	ASSERT_EQ(gmem_extents_first(&p, 0, 128), 15);
	gmem_extents_destroy(&p);
}

/* ---- merging and call counting ---------------------------------------- */

TEST(merge_and_calls)
{
	struct gmem_extents p;

	gmem_extents_init(&p);
	ASSERT_EQ(gmem_extents_first(&p, 0, 10), 10);
	ASSERT_EQ(gmem_extents_add(&p, 0, 10), 0);
	ASSERT_EQ(gmem_extents_add(&p, 10, 20), 0);	/* touches: merges */
	ASSERT_EQ(p.nr, 1);
	ASSERT_EQ(p.ext[0].start, 0);
	ASSERT_EQ(p.ext[0].end, 20);
	ASSERT_EQ(p.ext[0].count, 1);
	ASSERT_EQ(p.nr_pinned, 20);
	ASSERT_EQ(p.nr_calls, 2);

	ASSERT_EQ(gmem_extents_add(&p, 5, 15), 0);		/* splits in 3 */
	ASSERT_EQ(p.nr, 3);
	ASSERT_EQ(p.ext[1].start, 5);
	ASSERT_EQ(p.ext[1].end, 15);
	ASSERT_EQ(p.ext[1].count, 2);
	ASSERT_EQ(p.nr_pinned, 20);
	ASSERT_EQ(p.nr_calls, 3);

	ASSERT_EQ(gmem_extents_sub(&p, 5, 15), 0);		/* merges back */
	ASSERT_EQ(p.nr, 1);
	ASSERT_EQ(p.ext[0].end, 20);
	ASSERT_EQ(p.nr_calls, 2);
	ASSERT_EQ(gmem_extents_first(&p, 20, 30), 30);
	ASSERT_EQ(gmem_extents_first(&p, 19, 30), 19);
	ASSERT_EQ(gmem_extents_first(&p, 0, 30), 0);

	ASSERT_EQ(gmem_extents_add(&p, 30, 40), 0);	/* gap: 2 extents */
	ASSERT_EQ(p.nr, 2);
	ASSERT_EQ(gmem_extents_first(&p, 20, 35), 30);
	ASSERT_EQ(gmem_extents_first(&p, 20, 30), 30);
	ASSERT_EQ(p.nr_pinned, 30);

	ASSERT_EQ(gmem_extents_sub(&p, 30, 40), 0);
	ASSERT_EQ(gmem_extents_sub(&p, 10, 20), 0);
	ASSERT_EQ(gmem_extents_sub(&p, 0, 10), 0);
	ASSERT_EQ(p.nr, 0);
	ASSERT_EQ(p.nr_pinned, 0);
	ASSERT_EQ(p.nr_calls, 0);
	ASSERT_EQ(gmem_extents_sub(&p, 0, 10), -EINVAL);
	ASSERT_EQ(p.nr_calls, 0);
	gmem_extents_destroy(&p);
}
