// SPDX-License-Identifier: MIT
/*
 * state.c - the shared/private state tree (see state.h for the model).
 *
 * Entries are tagged words.  Bit 0 set: a uniform entry whose value is
 * entry >> 1, covering the entry's whole span.  Bit 0 clear: a pointer,
 * to a leaf (4096-bit bitmap with its popcount) at level 0 or to an
 * interior node of 64 entries at level >= 1.  An entry at level L spans
 * 2^(12 + 6L) pages and is naturally aligned, so the entry holding a page
 * is found by shifting.
 *
 * Why these sizes (bench/bench_state.c): a leaf covers 16 MiB, so the
 * level that points at leaves is 512 KiB for a 1 TiB file and stays in
 * cache; a random conversion then misses cache once, on the leaf, like a
 * flat bitmap does.  The popcount makes "did this leaf become uniform"
 * a compare.  The slot of the last leaf looked up is cached, so the
 * lookups one conversion makes (run, reserve, set) descend once.
 *
 * Dense mode: once the tree takes an eighth of the memory of a flat
 * bitmap (heavy fragmentation), the file switches to a flat bitmap, which
 * a random conversion reaches with one load and no pointer chasing; when
 * runs become few again, it builds the tree back.  Memory thus never
 * exceeds a bitmap's, and stays proportional to the runs until the runs
 * are so many that a bitmap is within 8x of the tree anyway.  Switches happen inside gmem_state_set() and may fail for
 * want of memory, in which case the current form simply stays.
 *
 * Invariants, kept by gmem_state_set():
 *  - a node never holds 64 uniform entries of one value, and a leaf is
 *    never all zeros or all ones: those collapse into their parent entry;
 *  - pages at or past npages have the value of page npages - 1;
 *  - nr_private and nr_ranges describe [0, npages) exactly;
 *  - the cached slot lives in a node that is still in the tree (every
 *    node free drops the cache).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

#define LEAF_SHIFT	12
#define LEAF_PAGES	(1ULL << LEAF_SHIFT)
#define LEAF_WORDS	(LEAF_PAGES / 64)
#define NODE_SHIFT	6
#define NODE_SLOTS	(1U << NODE_SHIFT)
#define MAX_SPARE	4		/* nodes or leaves kept for reuse */
#define FAST_MAX	64		/* pages a fast conversion may span */

struct leaf {
	uint64_t w[LEAF_WORDS];
	uint64_t ones;			/* bits set, all LEAF_PAGES of them */
};

/*
 * A node, with a summary of its slots so that "is it uniform?" and
 * "which children are subtrees?" cost a word compare, not 64 loads:
 * bit i of mixed is set when slot i points at a subtree, bit i of ones
 * when slot i is uniform(1).  slot_set() keeps both.
 */
struct node {
	uintptr_t slot[NODE_SLOTS];
	uint64_t mixed;
	uint64_t ones;
};

/* Where a lookup ended: the deepest entry covering a page. */
struct lookup {
	uintptr_t *slot;		/* the entry's slot (root: &s->root) */
	struct node *parent;		/* node holding slot, NULL for root */
	unsigned int level;
};

static inline uintptr_t uniform(unsigned int val)
{
	return ((uintptr_t)val << 1) | 1;
}

static inline bool is_uniform(uintptr_t e)
{
	return e & 1;
}

static inline unsigned int uniform_val(uintptr_t e)
{
	return (unsigned int)(e >> 1);
}

static inline unsigned int span_shift(unsigned int level)
{
	return LEAF_SHIFT + NODE_SHIFT * level;
}

static inline uint64_t span(unsigned int level)
{
	return 1ULL << span_shift(level);
}

static inline struct node *to_node(uintptr_t e)
{
	return (struct node *)e;
}

static inline struct leaf *to_leaf(uintptr_t e)
{
	return (struct leaf *)e;
}

static inline unsigned int leaf_bit(const struct leaf *l, unsigned int i)
{
	return (l->w[i / 64] >> (i % 64)) & 1;
}

/* Pages of [lo, hi) that lie inside the file. */
static inline uint64_t clip(const struct gmem_state *s, uint64_t lo,
			    uint64_t hi)
{
	if (hi > s->npages)
		hi = s->npages;
	return hi > lo ? hi - lo : 0;
}

/* Mask of the bits of leaf word base..base+63 that lie inside the file. */
static inline uint64_t file_mask(const struct gmem_state *s, uint64_t base)
{
	if (base >= s->npages)
		return 0;
	if (s->npages - base >= 64)
		return ~0ULL;
	return (1ULL << (s->npages - base)) - 1;
}

/* Spare lists: singly linked through the first word of the block. */
static void *spare_pop(void **list, unsigned int *nr)
{
	void *p = *list;

	*list = *(void **)p;
	(*nr)--;
	return p;
}

static void spare_push(void **list, unsigned int *nr, void *p)
{
	if (*nr >= MAX_SPARE) {
		free(p);
		return;
	}
	*(void **)p = *list;
	*list = p;
	(*nr)++;
}

static int spare_fill(void **list, unsigned int *nr, unsigned int want,
		      size_t size)
{
	while (*nr < want) {
		/* Nodes are a cache-line multiple; leaves are not (520 B). */
		void *p = size % 64 ? malloc(size) : aligned_alloc(64, size);

		if (!p)
			return -ENOMEM;
		*(void **)p = *list;
		*list = p;
		(*nr)++;
	}
	return 0;
}

static struct node *node_take(struct gmem_state *s, uintptr_t fill)
{
	struct node *n = spare_pop(&s->spare_nodes, &s->nr_spare_nodes);

	for (unsigned int i = 0; i < NODE_SLOTS; i++)
		n->slot[i] = fill;
	n->mixed = 0;
	n->ones = fill == uniform(1) ? ~0ULL : 0;
	s->nr_nodes++;
	return n;
}

/* Write slot (of node n, or the root if n is NULL), keeping the summary. */
static inline void slot_set(struct node *n, uintptr_t *slot, uintptr_t v)
{
	*slot = v;
	if (n) {
		uint64_t bit = 1ULL << (slot - n->slot);

		n->mixed = is_uniform(v) ? n->mixed & ~bit : n->mixed | bit;
		n->ones = v == uniform(1) ? n->ones | bit : n->ones & ~bit;
	}
}

static struct leaf *leaf_take(struct gmem_state *s, unsigned int val)
{
	struct leaf *l = spare_pop(&s->spare_leaves, &s->nr_spare_leaves);

	memset(l->w, val ? 0xff : 0, sizeof(l->w));
	l->ones = val ? LEAF_PAGES : 0;
	s->nr_leaves++;
	return l;
}

static void leaf_drop(struct gmem_state *s, struct leaf *l)
{
	spare_push(&s->spare_leaves, &s->nr_spare_leaves, l);
	s->nr_leaves--;
}

static void subtree_free(struct gmem_state *s, uintptr_t e, unsigned int level)
{
	if (is_uniform(e))
		return;
	if (level == 0) {
		leaf_drop(s, to_leaf(e));
		return;
	}
	for (uint64_t m = to_node(e)->mixed; m; m &= m - 1)
		subtree_free(s, to_node(e)->slot[__builtin_ctzll(m)],
			     level - 1);
	spare_push(&s->spare_nodes, &s->nr_spare_nodes, to_node(e));
	s->nr_nodes--;
	s->cache_slot = NULL;
}

/* Pages inside the file with value 1 under entry e at [base, +span). */
static uint64_t subtree_count(const struct gmem_state *s, uintptr_t e,
			      unsigned int level, uint64_t base)
{
	uint64_t n = 0;

	if (base >= s->npages)
		return 0;
	if (is_uniform(e))
		return uniform_val(e) ? clip(s, base, base + span(level)) : 0;
	if (level == 0) {
		if (base + LEAF_PAGES <= s->npages)
			return to_leaf(e)->ones;
		for (unsigned int i = 0; i < LEAF_WORDS; i++)
			n += (uint64_t)__builtin_popcountll(to_leaf(e)->w[i] &
						file_mask(s, base + 64 * i));
		return n;
	}
	for (unsigned int i = 0; i < NODE_SLOTS; i++)
		n += subtree_count(s, to_node(e)->slot[i], level - 1,
				   base + i * span(level - 1));
	return n;
}

/*
 * Find the deepest entry covering page.  The slot of a level-0 entry is
 * cached; any node free drops the cache, so a cached slot is live.
 */
static void lookup(struct gmem_state *s, uint64_t page, struct lookup *lk)
{
	uint64_t base = page & ~(LEAF_PAGES - 1);
	struct node *n = NULL;
	uintptr_t *slot = &s->root;
	unsigned int level = s->height;

	if (s->cache_slot && s->cache_base == base) {
		lk->slot = s->cache_slot;
		lk->parent = s->cache_parent;
		lk->level = 0;
		return;
	}
	while (level > 0 && !is_uniform(*slot)) {
		n = to_node(*slot);
		level--;
		slot = &n->slot[(page >> span_shift(level)) & (NODE_SLOTS - 1)];
	}
	lk->slot = slot;
	lk->parent = n;
	lk->level = level;
	if (level == 0) {
		s->cache_slot = slot;
		s->cache_parent = n;
		s->cache_base = base;
	}
}

static void spares_free(struct gmem_state *s);

int gmem_state_init(struct gmem_state *s, uint64_t npages, unsigned int val)
{
	if (!npages || val > 1)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	s->npages = npages;
	while (span(s->height) < npages)
		s->height++;
	s->root = uniform(val);
	s->nr_private = val ? npages : 0;
	s->nr_ranges = 1;
	return 0;
}

void gmem_state_destroy(struct gmem_state *s)
{
	free(s->dense);
	s->dense = NULL;
	subtree_free(s, s->root, s->height);
	spares_free(s);
	s->root = uniform(0);
}

static inline unsigned int bit_of(const uint64_t *bits, uint64_t p)
{
	return (bits[p / 64] >> (p % 64)) & 1;
}

unsigned int gmem_state_get(struct gmem_state *s, uint64_t page)
{
	struct lookup lk;
	uintptr_t e;

	if (s->dense)
		return bit_of(s->dense, page);
	lookup(s, page, &lk);
	e = *lk.slot;
	if (is_uniform(e))
		return uniform_val(e);
	return leaf_bit(to_leaf(e), (unsigned int)(page & (LEAF_PAGES - 1)));
}

/*
 * First bit >= from in leaf l that differs from val, or LEAF_PAGES; the
 * search may stop at `to` (returning a bit >= to): callers that only
 * need the run up to a limit do not pay for the whole leaf.
 */
static unsigned int leaf_find_other(const struct leaf *l, unsigned int from,
				    unsigned int val, unsigned int to)
{
	unsigned int last = to >= LEAF_PAGES ? LEAF_WORDS : (to + 63) / 64;

	for (unsigned int i = from / 64; i < last; i++) {
		uint64_t x = val ? ~l->w[i] : l->w[i];

		if (i == from / 64)
			x &= ~0ULL << (from % 64);
		if (x)
			return i * 64 + (unsigned int)__builtin_ctzll(x);
	}
	return last == LEAF_WORDS ? LEAF_PAGES : last * 64;
}

/* First page in [page, limit) whose bit differs from val, or limit. */
static uint64_t bits_find_other(const uint64_t *bits, uint64_t page,
				uint64_t limit, unsigned int val)
{
	for (uint64_t i = page / 64; i * 64 < limit; i++) {
		uint64_t x = val ? ~bits[i] : bits[i];

		if (i == page / 64)
			x &= ~0ULL << (page % 64);
		if (x) {
			uint64_t p = i * 64 + (uint64_t)__builtin_ctzll(x);

			return p < limit ? p : limit;
		}
	}
	return limit;
}

uint64_t gmem_state_run(struct gmem_state *s, uint64_t page, uint64_t limit,
			unsigned int *val)
{
	uint64_t pos = page;
	unsigned int v;
	bool first = true;

	if (s->dense) {
		v = bit_of(s->dense, page);
		*val = v;
		return bits_find_other(s->dense, page, limit, v);
	}
	for (;;) {
		struct lookup lk;
		uint64_t base;
		uintptr_t e;

		lookup(s, pos, &lk);
		e = *lk.slot;
		base = pos & ~(span(lk.level) - 1);
		if (first) {	/* the value, from the same descent */
			v = is_uniform(e) ? uniform_val(e) :
			    leaf_bit(to_leaf(e),
				     (unsigned int)(pos & (LEAF_PAGES - 1)));
			*val = v;
			first = false;
		}
		if (is_uniform(e)) {
			if (uniform_val(e) != v)
				break;
			pos = base + span(lk.level);
		} else {
			uint64_t to = limit - base;
			unsigned int bit = leaf_find_other(to_leaf(e),
					(unsigned int)(pos - base), v,
					to < LEAF_PAGES ? (unsigned int)to :
					LEAF_PAGES);

			pos = base + bit;
			if (bit < LEAF_PAGES)
				break;
		}
		if (pos >= limit)
			break;
	}
	return pos < limit ? pos : limit;
}

/*
 * Count the nodes and leaves a set of [start, end) to val must allocate
 * on the path of page p: below a uniform entry of the other value, one
 * per level until the span holding p is covered by the range.
 */
static void edge_need(struct gmem_state *s, uint64_t p, uint64_t start,
		      uint64_t end, unsigned int val, unsigned int *nodes,
		      unsigned int *leaves)
{
	struct lookup lk;
	uintptr_t e;

	lookup(s, p, &lk);
	e = *lk.slot;
	if (!is_uniform(e) || uniform_val(e) == val)
		return;
	for (int level = (int)lk.level; level >= 0; level--) {
		uint64_t base = p & ~(span((unsigned int)level) - 1);

		if (start <= base && base + span((unsigned int)level) <= end)
			return;
		if (level)
			(*nodes)++;
		else
			(*leaves)++;
	}
}

/* Past the last page, keep the tail equal to page npages - 1. */
static uint64_t extend_end(const struct gmem_state *s, uint64_t end)
{
	return end >= s->npages ? span(s->height) : end;
}

int gmem_state_reserve(struct gmem_state *s, uint64_t start, uint64_t end,
		       unsigned int val)
{
	unsigned int nodes = 0, leaves = 0;
	int ret;

	if (s->dense)
		return 0;
	end = extend_end(s, end);
	edge_need(s, start, start, end, val, &nodes, &leaves);
	if ((start ^ (end - 1)) >= LEAF_PAGES)
		edge_need(s, end - 1, start, end, val, &nodes, &leaves);
	ret = spare_fill(&s->spare_nodes, &s->nr_spare_nodes, nodes,
			 sizeof(struct node));
	if (!ret)
		ret = spare_fill(&s->spare_leaves, &s->nr_spare_leaves, leaves,
				 sizeof(struct leaf));
	return ret;
}

/* Set bits [lo, hi) of leaf l (based at base) to val; count changes. */
static uint64_t leaf_set(const struct gmem_state *s, struct leaf *l,
			 uint64_t base, unsigned int lo, unsigned int hi,
			 unsigned int val)
{
	uint64_t changed = 0;

	for (unsigned int i = lo / 64; i * 64 < hi; i++) {
		uint64_t m = ~0ULL;

		if (i == lo / 64)
			m &= ~0ULL << (lo % 64);
		if ((i + 1) * 64 > hi)
			m &= ~0ULL >> (64 - hi % 64);
		uint64_t flip = val ? m & ~l->w[i] : m & l->w[i];
		uint64_t n = (uint64_t)__builtin_popcountll(flip);

		changed += (uint64_t)__builtin_popcountll(flip &
						file_mask(s, base + 64 * i));
		l->ones = val ? l->ones + n : l->ones - n;
		l->w[i] ^= flip;
	}
	return changed;
}

/* The uniform entry a leaf or node collapses into, or 0 if it can't. */
static uintptr_t collapse(uintptr_t e, unsigned int level)
{
	if (level == 0) {
		uint64_t ones = to_leaf(e)->ones;

		if (ones != 0 && ones != LEAF_PAGES)
			return 0;
		return uniform(ones ? 1 : 0);
	}
	const struct node *n = to_node(e);

	if (n->mixed || (n->ones && n->ones != ~0ULL))
		return 0;
	return uniform(n->ones ? 1 : 0);
}

/* ep is a slot of node pn, or the root (pn NULL). */
static uint64_t set_entry(struct gmem_state *s, struct node *pn,
			  uintptr_t *ep, unsigned int level, uint64_t base,
			  uint64_t start, uint64_t end, unsigned int val)
{
	uint64_t lo = start > base ? start : base;
	uint64_t hi = end < base + span(level) ? end : base + span(level);
	uintptr_t e = *ep;
	uint64_t changed = 0;

	if (is_uniform(e) && uniform_val(e) == val)
		return 0;
	if (lo == base && hi == base + span(level)) {
		uint64_t ones = subtree_count(s, e, level, base);

		changed = val ? clip(s, base, base + span(level)) - ones : ones;
		subtree_free(s, e, level);
		slot_set(pn, ep, uniform(val));
		return changed;
	}
	if (is_uniform(e)) {
		if (level == 0)
			e = (uintptr_t)leaf_take(s, uniform_val(e));
		else
			e = (uintptr_t)node_take(s, e);
		slot_set(pn, ep, e);
	}
	if (level == 0) {
		changed = leaf_set(s, to_leaf(e), base,
				   (unsigned int)(lo - base),
				   (unsigned int)(hi - base), val);
	} else {
		uint64_t child = span(level - 1);
		unsigned int first = (unsigned int)((lo - base) / child);
		unsigned int last = (unsigned int)((hi - 1 - base) / child);

		for (unsigned int i = first; i <= last; i++)
			changed += set_entry(s, to_node(e), &to_node(e)->slot[i],
					     level - 1, base + i * child, start,
					     end, val);
	}
	uintptr_t u = collapse(e, level);

	if (u) {
		subtree_free(s, e, level);
		slot_set(pn, ep, u);
	}
	return changed;
}

/* Boundaries i in [lo, hi], 1 <= i < npages, with v(i) != v(i - 1). */
static uint64_t count_boundaries(struct gmem_state *s, uint64_t lo,
				 uint64_t hi)
{
	uint64_t n = 0, p;
	unsigned int v;

	if (lo < 1)
		lo = 1;
	if (hi > s->npages - 1)
		hi = s->npages - 1;
	if (lo > hi)
		return 0;
	p = lo - 1;
	for (;;) {
		uint64_t end = gmem_state_run(s, p, hi + 1, &v);

		if (end > hi)
			break;
		n++;
		p = end;
	}
	return n;
}

/*
 * The common conversion: at most FAST_MAX pages inside one leaf slot,
 * changed in place.  A uniform slot becomes a leaf (gmem_state_reserve
 * provided one), a leaf that turns uniform collapses into its slot.  Only
 * a collapse that would reach the parent node takes the general path.
 * Returns false, having changed nothing, when the range needs that path.
 */
static bool set_fast(struct gmem_state *s, uint64_t start, uint64_t end,
		     unsigned int val, uint64_t *changed)
{
	uint64_t base = start & ~(LEAF_PAGES - 1), flip[2] = { 0, 0 };
	unsigned int lo, hi, w0, i, left, right, before = 0, after;
	uint64_t ones, n = 0;
	struct lookup lk;
	struct leaf *l;
	uintptr_t u;

	if (end >= s->npages || end - start > FAST_MAX ||
	    end > base + LEAF_PAGES)
		return false;
	lookup(s, start, &lk);
	if (lk.level)
		return false;
	if (is_uniform(*lk.slot)) {
		if (uniform_val(*lk.slot) == val) {
			*changed = 0;
			return true;
		}
		slot_set(lk.parent, lk.slot,
			 (uintptr_t)leaf_take(s, uniform_val(*lk.slot)));
	}
	l = to_leaf(*lk.slot);
	lo = (unsigned int)(start - base);
	hi = (unsigned int)(end - base);
	/* Boundaries at lo..hi before and after; neighbours may lie outside. */
	left = !start ? val : lo ? leaf_bit(l, lo - 1) :
	       gmem_state_get(s, start - 1);
	right = hi < LEAF_PAGES ? leaf_bit(l, hi) : gmem_state_get(s, end);
	before = start && left != leaf_bit(l, lo);
	for (i = lo + 1; i < hi; i++)
		before += leaf_bit(l, i) != leaf_bit(l, i - 1);
	before += right != leaf_bit(l, hi - 1);
	after = (left != val) + (right != val);

	/* At most FAST_MAX pages: two words. */
	w0 = lo / 64;
	for (i = lo; i < hi; i++)
		if (leaf_bit(l, i) != val)
			flip[i / 64 - w0] |= 1ULL << (i % 64);
	n = (uint64_t)__builtin_popcountll(flip[0]) +
	    (uint64_t)__builtin_popcountll(flip[1]);
	ones = val ? l->ones + n : l->ones - n;
	u = ones == 0 ? uniform(0) : ones == LEAF_PAGES ? uniform(1) : 0;
	if (u && lk.parent) {
		/* Would the parent collapse too?  Leave that to set_entry. */
		uint64_t me = 1ULL << (lk.slot - lk.parent->slot);
		uint64_t others = lk.parent->ones & ~me;

		if (!(lk.parent->mixed & ~me) &&
		    others == (u == uniform(1) ? ~me : 0)) {
			if (!l->ones || l->ones == LEAF_PAGES) {
				/* we made this leaf above: undo it */
				slot_set(lk.parent, lk.slot,
					 uniform(l->ones ? 1 : 0));
				leaf_drop(s, l);
			}
			return false;
		}
	}
	if (u) {
		slot_set(lk.parent, lk.slot, u);
		leaf_drop(s, l);
	} else {
		l->w[w0] ^= flip[0];
		if (flip[1])
			l->w[w0 + 1] ^= flip[1];
		l->ones = ones;
	}
	*changed = n;
	s->nr_ranges = s->nr_ranges + after - before;
	return true;
}

/* Set bits [start, end) to val; count the bits that changed. */
static uint64_t bits_set(uint64_t *bits, uint64_t start, uint64_t end,
			 unsigned int val)
{
	uint64_t changed = 0;

	for (uint64_t i = start / 64; i * 64 < end; i++) {
		uint64_t m = ~0ULL;

		if (i == start / 64)
			m &= ~0ULL << (start % 64);
		if ((i + 1) * 64 > end)
			m &= ~0ULL >> (64 - end % 64);
		uint64_t flip = val ? m & ~bits[i] : m & bits[i];

		changed += (uint64_t)__builtin_popcountll(flip);
		bits[i] ^= flip;
	}
	return changed;
}

static uint64_t dense_bytes(const struct gmem_state *s)
{
	return (s->npages + 63) / 64 * 8;
}

static uint64_t tree_bytes(const struct gmem_state *s)
{
	return s->nr_nodes * sizeof(struct node) +
	       s->nr_leaves * sizeof(struct leaf);
}

/* Tree to flat bitmap; on failure to allocate, the tree stays. */
static void to_dense(struct gmem_state *s)
{
	uint64_t *bits = calloc(dense_bytes(s) / 8, 8), p, end;
	unsigned int v;

	if (!bits)
		return;
	for (p = 0; p < s->npages; p = end) {
		end = gmem_state_run(s, p, s->npages, &v);
		if (v)
			bits_set(bits, p, end, 1);
	}
	subtree_free(s, s->root, s->height);
	s->root = uniform(0);
	s->cache_slot = NULL;
	s->dense = bits;
}

/* Flat bitmap to tree, run by run; on failure the bitmap stays. */
static void to_tree(struct gmem_state *s)
{
	uint64_t *bits = s->dense, p, end;
	unsigned int v;

	s->dense = NULL;
	s->root = uniform(bit_of(bits, 0));
	for (p = 0; p < s->npages; p = end) {
		v = bit_of(bits, p);
		end = bits_find_other(bits, p, s->npages, v);
		if (gmem_state_reserve(s, p, end, v)) {
			subtree_free(s, s->root, s->height);
			s->root = uniform(0);
			s->cache_slot = NULL;
			s->dense = bits;
			return;
		}
		set_entry(s, NULL, &s->root, s->height, 0, p,
			  extend_end(s, end), v);
	}
	free(bits);
}

/*
 * Switch form when one is clearly cheaper; see the top comment.  Dense
 * once the tree reaches an eighth of a bitmap; back to the tree when the
 * boundaries between runs would need at most a 32nd (a tree costs at
 * most a leaf per boundary, and nothing for a uniform file): the gap
 * keeps a file near the line from flapping between the two.  Files under
 * DENSE_MIN_BYTES of bitmap (2 GiB) stay trees: all of it fits in cache.
 */
#define DENSE_AT		8
#define TREE_AT			32
#define DENSE_MIN_BYTES		65536U

static void spares_trim(struct gmem_state *s, unsigned int nodes,
			unsigned int leaves)
{
	while (s->nr_spare_nodes > nodes)
		free(spare_pop(&s->spare_nodes, &s->nr_spare_nodes));
	while (s->nr_spare_leaves > leaves)
		free(spare_pop(&s->spare_leaves, &s->nr_spare_leaves));
}

static void spares_free(struct gmem_state *s)
{
	spares_trim(s, 0, 0);
}

static void pick_form(struct gmem_state *s)
{
	if (!s->dense && dense_bytes(s) >= DENSE_MIN_BYTES &&
	    tree_bytes(s) * DENSE_AT >= dense_bytes(s))
		to_dense(s);
	else if (s->dense && (s->nr_ranges - 1) * sizeof(struct leaf) *
		 TREE_AT < dense_bytes(s))
		to_tree(s);
	/*
	 * A uniform file keeps one path's worth of spares (a few KiB at
	 * most), so that flipping one page back and forth, the DMA bounce
	 * pattern, does not malloc() and free() a path every time.
	 */
	if (!s->dense && is_uniform(s->root))
		spares_trim(s, s->height + 1, 1);
}

/* set_fast() for the flat bitmap: boundaries from neighbouring bits. */
static bool dense_set_fast(struct gmem_state *s, uint64_t start, uint64_t end,
			   unsigned int val, uint64_t *changed)
{
	const uint64_t *b = s->dense;
	unsigned int left, right, before, after;

	if (end > s->npages || end - start > FAST_MAX)
		return false;
	left = start ? bit_of(b, start - 1) : val;
	right = end < s->npages ? bit_of(b, end) : val;
	before = (start && left != bit_of(b, start)) +
		 (end < s->npages && right != bit_of(b, end - 1));
	for (uint64_t i = start + 1; i < end; i++)
		before += bit_of(b, i) != bit_of(b, i - 1);
	after = (left != val) + (right != val);
	*changed = bits_set(s->dense, start, end, val);
	s->nr_ranges = s->nr_ranges + after - before;
	return true;
}

uint64_t gmem_state_set(struct gmem_state *s, uint64_t start, uint64_t end,
			unsigned int val)
{
	uint64_t fend = end < s->npages ? end : s->npages;
	uint64_t before, after = 0, changed;

	if (s->dense ? dense_set_fast(s, start, fend, val, &changed) :
		       set_fast(s, start, end, val, &changed))
		goto out;
	before = count_boundaries(s, start, fend);
	if (s->dense)
		changed = bits_set(s->dense, start, fend, val);
	else
		changed = set_entry(s, NULL, &s->root, s->height, 0, start,
				    extend_end(s, end), val);
	if (start >= 1 && gmem_state_get(s, start - 1) != val)
		after++;
	if (fend < s->npages && gmem_state_get(s, fend) != val)
		after++;
	s->nr_ranges = s->nr_ranges + after - before;
out:
	if (val)
		s->nr_private += changed;
	else
		s->nr_private -= changed;
	pick_form(s);
	return changed;
}

uint64_t gmem_state_bytes(const struct gmem_state *s)
{
	if (s->dense)
		return dense_bytes(s);
	return (s->nr_nodes + s->nr_spare_nodes) * sizeof(struct node) +
	       (s->nr_leaves + s->nr_spare_leaves) * sizeof(struct leaf);
}
