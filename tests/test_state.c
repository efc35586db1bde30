// SPDX-License-Identifier: MIT
/*
 * test_state.c - unit tests of the shared/private state tree (state.h).
 *
 * Every test keeps a reference: one byte per page holding the value the
 * tree should have.  Covered:
 *  - random sets (single pages, ranges of up to 64 pages, ranges across
 *    2 MiB (512-page) boundaries and the tree's own leaf and node edges,
 *    big ranges, the whole file) with fixed seeds, for a table of file
 *    sizes x initial value: the changed page count of every set, and
 *    periodically every page's value, nr_private, nr_ranges,
 *    gmem_state_run() for random pages and limits and the shape of the
 *    tree (a leaf or node exists exactly where its span is mixed);
 *  - a file made uniform again, piece by piece or in one set, collapses
 *    to no node and no leaf, with gmem_state_bytes() < 4096;
 *  - a 1 TiB file (2^28 pages) is tiny and converts in one set;
 *  - sets at 2 MiB, leaf and node edges: neighbours' values and run
 *    lengths;
 *  - gmem_state_init() argument checks.
 *
 * The leaf and node spans are not part of state.h's interface (only that
 * the tree is a radix tree of bitmap leaves whose uniform subtrees
 * collapse), so geometry() measures them through nr_leaves and nr_nodes.
 */
#include <stdbool.h>

#include "harness.h"
#include "gmem_test.h"
#include "state.h"

#define SMALL_BYTES	4096
#define HUGE_PAGES	512ULL		/* 2 MiB of 4 KiB pages */

/* Pages under one leaf, and under one node of the level above leaves. */
static uint64_t leaf_pages, node_pages;


static void set1(struct gmem_state *s, uint64_t page, unsigned int val)
{
	ASSERT_EQ(gmem_state_reserve(s, page, page + 1, val), 0);
	ASSERT_EQ(gmem_state_set(s, page, page + 1, val), 1);
}

/*
 * Measure the tree: with page 0 private in a huge shared file, the first
 * power of two page that needs a second leaf starts the next leaf, the
 * first that needs another node starts the next level-1 node.
 */
static void geometry(void)
{
	uint64_t n = 1ULL << 40, nodes;
	struct gmem_state s;

	if (leaf_pages)
		return;
	ASSERT_EQ(gmem_state_init(&s, n, 0), 0);
	set1(&s, 0, 1);
	ASSERT_EQ(s.nr_leaves, 1);
	nodes = s.nr_nodes;
	ASSERT_GT(nodes, 1);
	for (uint64_t p = 1; p < n && !node_pages; p <<= 1) {
		set1(&s, p, 1);
		if (s.nr_leaves == 2 && !leaf_pages)
			leaf_pages = p;
		if (s.nr_nodes > nodes)
			node_pages = p;
		set1(&s, p, 0);
		ASSERT_EQ(s.nr_leaves, 1);
		ASSERT_EQ(s.nr_nodes, nodes);
	}
	gmem_state_destroy(&s);
	ASSERT_GE(leaf_pages, 64);
	ASSERT_GT(node_pages, leaf_pages);
}

/* Reserve, set [start, end) to val, check the count against ref; update. */
static void do_set(struct gmem_state *s, uint8_t *ref, uint64_t start,
		   uint64_t end, unsigned int val)
{
	uint64_t want = 0, got;

	for (uint64_t p = start; p < end; p++) {
		want += ref[p] != val;
		ref[p] = (uint8_t)val;
	}
	ASSERT_EQ(gmem_state_reserve(s, start, end, val), 0);
	got = gmem_state_set(s, start, end, val);
	if (got != want)
		TH_LOG("set [%ju, %ju) to %u of %ju pages", (uintmax_t)start,
		       (uintmax_t)end, val, (uintmax_t)s->npages);
	ASSERT_EQ(got, want);
}

/*
 * Mixed aligned regions of span pages: a leaf or node exists exactly
 * there.  bnd[k] = boundaries j in [1, k), a boundary being
 * ref[j] != ref[j - 1]; pages past npages repeat the last page.
 */
static uint64_t mixed_regions(const uint32_t *bnd, uint64_t n, uint64_t span)
{
	uint64_t count = 0;

	for (uint64_t a = 0; a < n; a += span) {
		uint64_t e = a + span < n ? a + span : n;

		count += bnd[e] != bnd[a + 1];
	}
	return count;
}

/* Compare everything the tree exposes with the reference. */
static void check_full(struct gmem_state *s, const uint8_t *ref, uint64_t *rng,
		       unsigned int nr_runs)
{
	uint64_t n = s->npages, priv = 0, nodes = 0, span, top, fanout;
	uint64_t *runend = malloc(n * sizeof(*runend));
	uint32_t *bnd = malloc((n + 1) * sizeof(*bnd));
	unsigned int val;

	ASSERT_NONNULL(runend);
	ASSERT_NONNULL(bnd);
	bnd[0] = bnd[1] = 0;
	for (uint64_t p = 0; p < n; p++) {
		unsigned int got = gmem_state_get(s, p);

		if (got != ref[p])
			TH_LOG("page %ju of %ju", (uintmax_t)p, (uintmax_t)n);
		ASSERT_EQ(got, ref[p]);
		priv += ref[p];
		if (p >= 1)
			bnd[p + 1] = bnd[p] + (ref[p] != ref[p - 1]);
	}
	runend[n - 1] = n;
	for (uint64_t p = n - 1; p-- > 0;)
		runend[p] = ref[p] == ref[p + 1] ? runend[p + 1] : p + 1;
	ASSERT_EQ(s->nr_private, priv);
	ASSERT_EQ(s->nr_ranges, 1 + bnd[n]);

	/*
	 * Canonical shape: nothing uniform is left expanded.  A mixed file
	 * with neither leaf nor node keeps its state outside the tree (the
	 * values were checked above); a uniform one never has either.
	 */
	if (s->nr_leaves || s->nr_nodes || !bnd[n]) {
		ASSERT_EQ(s->nr_leaves, mixed_regions(bnd, n, leaf_pages));
		fanout = node_pages / leaf_pages;
		for (top = leaf_pages; top < n; top *= fanout)
			;
		for (span = node_pages; span <= top; span *= fanout)
			nodes += mixed_regions(bnd, n, span);
		ASSERT_EQ(s->nr_nodes, nodes);
	}

	for (unsigned int i = 0; i < nr_runs; i++) {
		uint64_t p = rng_below(rng, n), limit, want, got;

		/* Half the limits at the end of the file, half random. */
		limit = i & 1 ? p + 1 + rng_below(rng, n - p) : n;
		want = runend[p] < limit ? runend[p] : limit;
		val = 2;
		got = gmem_state_run(s, p, limit, &val);
		if (got != want)
			TH_LOG("run from %ju limit %ju", (uintmax_t)p,
			       (uintmax_t)limit);
		ASSERT_EQ(got, want);
		ASSERT_EQ(val, ref[p]);
	}
	free(runend);
	free(bnd);
}

/* Set every run that is not val to val, one run at a time, in order. */
static void flatten_by_runs(struct gmem_state *s, uint8_t *ref,
			    unsigned int val)
{
	uint64_t p = 0, q, n = s->npages;

	while (p < n) {
		for (q = p; q < n && ref[q] == ref[p]; q++)
			;
		if (ref[p] != val)
			do_set(s, ref, p, q, val);
		p = q;
	}
}

static void check_collapsed(const struct gmem_state *s, unsigned int val)
{
	ASSERT_EQ(s->nr_nodes, 0);
	ASSERT_EQ(s->nr_leaves, 0);
	ASSERT_EQ(s->nr_ranges, 1);
	ASSERT_EQ(s->nr_private, val ? s->npages : 0);
	ASSERT_LT(gmem_state_bytes(s), SMALL_BYTES);
}

/* ---- random sets against the reference, table of sizes -------------- */

FIXTURE(tree) {
	struct gmem_state s;
	bool live;
	uint8_t *ref;
	uint64_t rng;
};

FIXTURE_VARIANT(tree) {
	uint64_t npages;
	unsigned int init;
};

FIXTURE_VARIANT_ADD(tree, p1_shared) { .npages = 1, .init = 0 };
FIXTURE_VARIANT_ADD(tree, p1_private) { .npages = 1, .init = 1 };
FIXTURE_VARIANT_ADD(tree, p3_shared) { .npages = 3, .init = 0 };
FIXTURE_VARIANT_ADD(tree, p3_private) { .npages = 3, .init = 1 };
FIXTURE_VARIANT_ADD(tree, p511_shared) { .npages = 511, .init = 0 };
FIXTURE_VARIANT_ADD(tree, p511_private) { .npages = 511, .init = 1 };
FIXTURE_VARIANT_ADD(tree, p512_shared) { .npages = 512, .init = 0 };
FIXTURE_VARIANT_ADD(tree, p512_private) { .npages = 512, .init = 1 };
FIXTURE_VARIANT_ADD(tree, p513_shared) { .npages = 513, .init = 0 };
FIXTURE_VARIANT_ADD(tree, p513_private) { .npages = 513, .init = 1 };
FIXTURE_VARIANT_ADD(tree, p4096_shared) { .npages = 4096, .init = 0 };
FIXTURE_VARIANT_ADD(tree, p4096_private) { .npages = 4096, .init = 1 };
FIXTURE_VARIANT_ADD(tree, p32769_shared) { .npages = 32769, .init = 0 };
FIXTURE_VARIANT_ADD(tree, p32769_private) { .npages = 32769, .init = 1 };
FIXTURE_VARIANT_ADD(tree, p262145_shared) { .npages = 262145, .init = 0 };
FIXTURE_VARIANT_ADD(tree, p262145_private) { .npages = 262145, .init = 1 };
/* Big enough (4 GiB) for the flat-bitmap form once fragmented. */
FIXTURE_VARIANT_ADD(tree, p1048583_shared) { .npages = 1048583, .init = 0 };
FIXTURE_VARIANT_ADD(tree, p1048583_private) { .npages = 1048583, .init = 1 };

FIXTURE_SETUP(tree)
{
	geometry();
	ASSERT_EQ(gmem_state_init(&self->s, variant->npages, variant->init),
		  0);
	self->live = true;
	self->ref = malloc(variant->npages);
	ASSERT_NONNULL(self->ref);
	memset(self->ref, (int)variant->init, variant->npages);
	self->rng = 0x9e3779b97f4a7c15ULL ^ (variant->npages << 1) ^
		    variant->init;
}

FIXTURE_TEARDOWN(tree)
{
	if (self->live)
		gmem_state_destroy(&self->s);
	free(self->ref);
}

#define NR_SETS		4000

enum set_kind { K_SINGLE, K_SMALL, K_CROSS, K_BIG, K_WHOLE };

/* Out of 100: how often each kind of range is drawn. */
static const struct { enum set_kind kind; unsigned int weight; } kinds[] = {
	{ K_SINGLE, 35 }, { K_SMALL, 30 }, { K_CROSS, 20 }, { K_BIG, 12 },
	{ K_WHOLE, 3 },
};

static enum set_kind pick_kind(uint64_t *rng)
{
	uint64_t r = rng_below(rng, 100);

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (r < kinds[i].weight)
			return kinds[i].kind;
		r -= kinds[i].weight;
	}
	return K_WHOLE;
}

/* A random range [*start, *end) of the given kind inside [0, n). */
static void pick_range(uint64_t *rng, uint64_t n, enum set_kind kind,
		       uint64_t *start, uint64_t *end)
{
	uint64_t a, b, edge, unit, units[3];

	switch (kind) {
	case K_SINGLE:
		a = rng_below(rng, n);
		b = a + 1;
		break;
	case K_SMALL:
		a = rng_below(rng, n);
		b = a + 1 + rng_below(rng, 64);
		break;
	case K_CROSS:
		/* Across a 2 MiB, a leaf or a node edge. */
		units[0] = HUGE_PAGES;
		units[1] = leaf_pages;
		units[2] = node_pages;
		unit = units[rng_below(rng, 3)];
		if (n <= unit) {
			a = rng_below(rng, n);
			b = a + 1 + rng_below(rng, 64);
			break;
		}
		edge = unit * (1 + rng_below(rng, (n - 1) / unit));
		a = edge - 1 - rng_below(rng, 64);
		b = edge + 1 + rng_below(rng, 64);
		break;
	case K_BIG:
		a = rng_below(rng, n);
		b = a + 1 + rng_below(rng, n - a);
		break;
	default:
		a = 0;
		b = n;
		break;
	}
	*start = a;
	*end = b < n ? b : n;
}

TEST_F(tree, random_sets)
{
	uint64_t n = variant->npages, start, end;
	unsigned int every = n <= 4096 ? 1 : 64;

	check_full(&self->s, self->ref, &self->rng, 64);
	for (unsigned int i = 1; i <= NR_SETS; i++) {
		pick_range(&self->rng, n, pick_kind(&self->rng), &start,
			   &end);
		do_set(&self->s, self->ref, start, end,
		       (unsigned int)rng_below(&self->rng, 2));
		if (i % every == 0)
			check_full(&self->s, self->ref, &self->rng, 64);
	}
	check_full(&self->s, self->ref, &self->rng, 1000);
}

/* Mess the tree up, then flatten it run by run: everything collapses. */
TEST_F(tree, collapse_by_runs)
{
	uint64_t n = variant->npages, start, end;

	for (unsigned int i = 0; i < NR_SETS / 4; i++) {
		pick_range(&self->rng, n, pick_kind(&self->rng) % K_BIG,
			   &start, &end);
		do_set(&self->s, self->ref, start, end,
		       (unsigned int)rng_below(&self->rng, 2));
	}
	check_full(&self->s, self->ref, &self->rng, 64);
	flatten_by_runs(&self->s, self->ref, variant->init);
	check_collapsed(&self->s, variant->init);
	check_full(&self->s, self->ref, &self->rng, 64);

	/* Whole-file flips count every page and stay collapsed. */
	do_set(&self->s, self->ref, 0, n, !variant->init);
	check_collapsed(&self->s, !variant->init);
	do_set(&self->s, self->ref, 0, n, !variant->init);
	check_collapsed(&self->s, !variant->init);
	do_set(&self->s, self->ref, 0, n, variant->init);
	check_collapsed(&self->s, variant->init);
}

/* Mess the tree up, then one whole-file set: everything collapses. */
TEST_F(tree, collapse_whole)
{
	uint64_t n = variant->npages, start, end;

	for (unsigned int i = 0; i < NR_SETS / 4; i++) {
		pick_range(&self->rng, n, pick_kind(&self->rng) % K_BIG,
			   &start, &end);
		do_set(&self->s, self->ref, start, end,
		       (unsigned int)rng_below(&self->rng, 2));
	}
	do_set(&self->s, self->ref, 0, n, !variant->init);
	check_collapsed(&self->s, !variant->init);
	check_full(&self->s, self->ref, &self->rng, 64);
}

/* ---- 1 TiB ------------------------------------------------------------ */

#define TIB_PAGES	(1ULL << 28)

/* A uniform 1 TiB file costs nothing; one set converts all of it. */
TEST(tib_uniform)
{
	struct gmem_state s;
	unsigned int val;
	uint64_t mid = TIB_PAGES / 2 + 12345;

	geometry();
	ASSERT_EQ(gmem_state_init(&s, TIB_PAGES, 1), 0);
	ASSERT_LT(gmem_state_bytes(&s), SMALL_BYTES);
	ASSERT_EQ(s.nr_private, TIB_PAGES);
	ASSERT_EQ(s.nr_ranges, 1);
	ASSERT_EQ(gmem_state_run(&s, 0, TIB_PAGES, &val), TIB_PAGES);
	ASSERT_EQ(val, 1);

	ASSERT_EQ(gmem_state_reserve(&s, 0, TIB_PAGES, 0), 0);
	ASSERT_EQ(gmem_state_set(&s, 0, TIB_PAGES, 0), TIB_PAGES);
	check_collapsed(&s, 0);
	ASSERT_EQ(gmem_state_get(&s, TIB_PAGES - 1), 0);
	ASSERT_EQ(gmem_state_run(&s, 7, TIB_PAGES, &val), TIB_PAGES);
	ASSERT_EQ(val, 0);

	/* One private page costs one path of nodes, then collapses again. */
	ASSERT_EQ(gmem_state_reserve(&s, mid, mid + 1, 1), 0);
	ASSERT_EQ(gmem_state_set(&s, mid, mid + 1, 1), 1);
	ASSERT_EQ(s.nr_ranges, 3);
	ASSERT_EQ(s.nr_private, 1);
	ASSERT_EQ(s.nr_leaves, 1);
	ASSERT_LT(gmem_state_bytes(&s), 2 * SMALL_BYTES);
	ASSERT_EQ(gmem_state_run(&s, 0, TIB_PAGES, &val), mid);
	ASSERT_EQ(val, 0);
	ASSERT_EQ(gmem_state_run(&s, mid, TIB_PAGES, &val), mid + 1);
	ASSERT_EQ(val, 1);
	ASSERT_EQ(gmem_state_run(&s, mid + 1, TIB_PAGES, &val), TIB_PAGES);
	ASSERT_EQ(val, 0);
	ASSERT_EQ(gmem_state_reserve(&s, mid, mid + 1, 0), 0);
	ASSERT_EQ(gmem_state_set(&s, mid, mid + 1, 0), 1);
	check_collapsed(&s, 0);

	/* And back to all private in one set. */
	ASSERT_EQ(gmem_state_reserve(&s, 0, TIB_PAGES, 1), 0);
	ASSERT_EQ(gmem_state_set(&s, 0, TIB_PAGES, 1), TIB_PAGES);
	check_collapsed(&s, 1);
	gmem_state_destroy(&s);
}

/* ---- edges of leaves and nodes ---------------------------------------- */

#define EDGE_PAGES	262145ULL	/* 2^18 + 1: one page past an edge */

/* 2 MiB edges, and 2^18, an edge of any power of two span up to 1 GiB. */
static const struct { uint64_t start, end; } edge_ranges[] = {
	{ 0, 1 }, { 511, 512 }, { 512, 513 }, { 511, 513 }, { 510, 514 },
	{ 1023, 1024 }, { 32767, 32768 }, { 32768, 32769 }, { 32767, 32769 },
	{ 262143, 262144 }, { 262144, 262145 }, { 262143, 262145 },
	{ 261632, 262144 }, { 512, 262144 }, { 1, 262145 },
};

/* ASSERT_EQ that names the edge case when it fails; a, b evaluated once. */
#define EDGE_EQ(a, b)							\
	do {								\
		intmax_t __e_a = (intmax_t)(a), __e_b = (intmax_t)(b);	\
		if (__e_a != __e_b)					\
			TH_LOG("%s == %s: init %u, range [%ju, %ju)",	\
			       #a, #b, init, (uintmax_t)start,		\
			       (uintmax_t)end);				\
		ASSERT_EQ(__e_a, __e_b);				\
	} while (0)

/* Set one range around an edge on a uniform file, check its neighbours. */
static void check_edge(unsigned int init, uint64_t start, uint64_t end)
{
	struct gmem_state s;
	uint64_t n = EDGE_PAGES;
	unsigned int val;

	ASSERT_EQ(gmem_state_init(&s, n, init), 0);
	EDGE_EQ(gmem_state_reserve(&s, start, end, !init), 0);
	EDGE_EQ(gmem_state_set(&s, start, end, !init), end - start);
	EDGE_EQ(s.nr_ranges, 1 + (start > 0) + (end < n));
	EDGE_EQ(s.nr_private, init ? n - (end - start) : end - start);
	if (start > 0) {
		EDGE_EQ(gmem_state_get(&s, start - 1), init);
		EDGE_EQ(gmem_state_run(&s, start - 1, n, &val), start);
		EDGE_EQ(val, init);
		EDGE_EQ(gmem_state_run(&s, 0, n, &val), start);
		EDGE_EQ(val, init);
	}
	EDGE_EQ(gmem_state_get(&s, start), !init);
	EDGE_EQ(gmem_state_get(&s, end - 1), !init);
	EDGE_EQ(gmem_state_run(&s, start, n, &val), end);
	EDGE_EQ(val, !init);
	EDGE_EQ(gmem_state_run(&s, end - 1, n, &val), end);
	EDGE_EQ(val, !init);
	/* A limit inside the run caps it. */
	if (end - start > 1) {
		EDGE_EQ(gmem_state_run(&s, start, end - 1, &val), end - 1);
		EDGE_EQ(val, !init);
	}
	if (end < n) {
		EDGE_EQ(gmem_state_get(&s, end), init);
		EDGE_EQ(gmem_state_run(&s, end, n, &val), n);
		EDGE_EQ(val, init);
	}
	EDGE_EQ(gmem_state_reserve(&s, start, end, init), 0);
	EDGE_EQ(gmem_state_set(&s, start, end, init), end - start);
	check_collapsed(&s, init);
	gmem_state_destroy(&s);
}

TEST(boundary)
{
	uint64_t edges[2];

	geometry();
	edges[0] = leaf_pages;
	edges[1] = node_pages;
	for (unsigned int init = 0; init < 2; init++) {
		for (size_t i = 0; i < sizeof(edge_ranges) /
				       sizeof(edge_ranges[0]); i++)
			check_edge(init, edge_ranges[i].start,
				   edge_ranges[i].end);
		/* The tree's own edges, wherever they are. */
		for (size_t i = 0; i < 2; i++) {
			if (edges[i] >= EDGE_PAGES)
				continue;
			check_edge(init, edges[i] - 1, edges[i]);
			check_edge(init, edges[i], edges[i] + 1);
			check_edge(init, edges[i] - 1, edges[i] + 1);
			check_edge(init, edges[i] - 64, edges[i] + 64 <
				   EDGE_PAGES ? edges[i] + 64 : EDGE_PAGES);
		}
	}
}

/* All edge pages at once, then against the reference. */
TEST(boundary_together)
{
	static const uint64_t pages[] = {
		0, 511, 512, 1023, 1024, 4095, 4096, 32767, 32768, 262143,
		262144,
	};
	uint64_t rng = 42;
	struct gmem_state s;
	uint8_t *ref = calloc(EDGE_PAGES, 1);

	geometry();
	ASSERT_NONNULL(ref);
	ASSERT_EQ(gmem_state_init(&s, EDGE_PAGES, 0), 0);
	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		do_set(&s, ref, pages[i], pages[i] + 1, 1);
		check_full(&s, ref, &rng, 256);
	}
	/* Clearing them in another order collapses back to nothing. */
	for (size_t i = sizeof(pages) / sizeof(pages[0]); i-- > 0;) {
		do_set(&s, ref, pages[i], pages[i] + 1, 0);
		check_full(&s, ref, &rng, 256);
	}
	check_collapsed(&s, 0);
	gmem_state_destroy(&s);
	free(ref);
}

TEST(init_args)
{
	struct gmem_state s;

	ASSERT_EQ(gmem_state_init(&s, 0, 0), -EINVAL);
	ASSERT_EQ(gmem_state_init(&s, 1, 2), -EINVAL);
	ASSERT_EQ(gmem_state_init(&s, 5, 1), 0);
	ASSERT_EQ(s.nr_private, 5);
	ASSERT_EQ(s.nr_ranges, 1);
	ASSERT_EQ(s.nr_nodes, 0);
	ASSERT_EQ(s.nr_leaves, 0);
	gmem_state_destroy(&s);
}

/*
 * The flat-bitmap form: scattering single pages over many 16 MiB leaves
 * of a 4 GiB file makes the tree large enough to switch; values, runs
 * and counts stay exact across the switch; flattening switches back to
 * an empty tree.
 */
TEST(dense_round_trip)
{
	const uint64_t n = 1ULL << 20;
	struct gmem_state s;
	uint8_t *ref = calloc(n, 1);
	uint64_t rng = 7;

	ASSERT_NONNULL(ref);
	ASSERT_EQ(gmem_state_init(&s, n, 0), 0);
	for (uint64_t i = 0; i < 200; i++)
		do_set(&s, ref, i * (n / 200) + 17, i * (n / 200) + 18, 1);
	ASSERT_NONNULL(s.dense);
	ASSERT_EQ(s.nr_nodes, 0);
	ASSERT_EQ(s.nr_leaves, 0);
	ASSERT_EQ(gmem_state_bytes(&s), n / 8);
	for (int i = 0; i < 3000; i++) {
		uint64_t p = rng_below(&rng, n), len = 1 + rng_below(&rng, 100);

		if (p + len > n)
			len = n - p;
		do_set(&s, ref, p, p + len, (unsigned int)(i & 1));
	}
	check_full(&s, ref, &rng, 200);
	flatten_by_runs(&s, ref, 1);
	ASSERT_NULL(s.dense);
	check_collapsed(&s, 1);
	gmem_state_destroy(&s);
	free(ref);
}

