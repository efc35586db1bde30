// SPDX-License-Identifier: MIT
/*
 * state.c - the shared/private state tree (see state.h for the model).
 *
 * Entries are tagged words.  Bit 0 set: a uniform entry whose value is
 * entry >> 1, covering the entry's whole span.  Bit 0 clear: a pointer,
 * to a leaf (512-bit bitmap) at level 0 or to an interior node of 64
 * entries at level >= 1.  An entry at level L spans 2^(9 + 6L) pages and
 * is naturally aligned, so the entry holding a page is found by shifting.
 *
 * Invariants, kept by gmem_state_set():
 *  - a node never holds 64 uniform entries of one value, and a leaf is
 *    never all zeros or all ones: those collapse into their parent entry;
 *  - pages at or past npages have the value of page npages - 1;
 *  - nr_private and nr_ranges describe [0, npages) exactly.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

#define LEAF_SHIFT	9
#define LEAF_PAGES	(1ULL << LEAF_SHIFT)
#define LEAF_WORDS	(LEAF_PAGES / 64)
#define NODE_SHIFT	6
#define NODE_SLOTS	(1U << NODE_SHIFT)
#define MAX_SPARE	4		/* nodes or leaves kept for reuse */

struct leaf {
	uint64_t w[LEAF_WORDS];
};

struct node {
	uintptr_t slot[NODE_SLOTS];
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

static struct node *node_take(struct gmem_state *s, uintptr_t fill)
{
	struct node *n = spare_pop(&s->spare_nodes, &s->nr_spare_nodes);

	for (unsigned int i = 0; i < NODE_SLOTS; i++)
		n->slot[i] = fill;
	s->nr_nodes++;
	return n;
}

static struct leaf *leaf_take(struct gmem_state *s, unsigned int val)
{
	struct leaf *l = spare_pop(&s->spare_leaves, &s->nr_spare_leaves);

	memset(l->w, val ? 0xff : 0, sizeof(l->w));
	s->nr_leaves++;
	return l;
}

static void subtree_free(struct gmem_state *s, uintptr_t e, unsigned int level)
{
	if (is_uniform(e))
		return;
	if (level == 0) {
		spare_push(&s->spare_leaves, &s->nr_spare_leaves, to_leaf(e));
		s->nr_leaves--;
		return;
	}
	for (unsigned int i = 0; i < NODE_SLOTS; i++)
		subtree_free(s, to_node(e)->slot[i], level - 1);
	spare_push(&s->spare_nodes, &s->nr_spare_nodes, to_node(e));
	s->nr_nodes--;
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
		for (unsigned int i = 0; i < LEAF_WORDS; i++)
			n += __builtin_popcountll(to_leaf(e)->w[i] &
						  file_mask(s, base + 64 * i));
		return n;
	}
	for (unsigned int i = 0; i < NODE_SLOTS; i++)
		n += subtree_count(s, to_node(e)->slot[i], level - 1,
				   base + i * span(level - 1));
	return n;
}

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
	subtree_free(s, s->root, s->height);
	while (s->nr_spare_nodes)
		free(spare_pop(&s->spare_nodes, &s->nr_spare_nodes));
	while (s->nr_spare_leaves)
		free(spare_pop(&s->spare_leaves, &s->nr_spare_leaves));
	s->root = uniform(0);
}

unsigned int gmem_state_get(const struct gmem_state *s, uint64_t page)
{
	uintptr_t e = s->root;
	unsigned int level = s->height;

	while (!is_uniform(e)) {
		if (level == 0)
			return (to_leaf(e)->w[(page >> 6) & (LEAF_WORDS - 1)] >>
				(page & 63)) & 1;
		level--;
		e = to_node(e)->slot[(page >> span_shift(level)) &
				     (NODE_SLOTS - 1)];
	}
	return uniform_val(e);
}

/* First bit >= from in leaf l that differs from val, or LEAF_PAGES. */
static unsigned int leaf_find_other(const struct leaf *l, unsigned int from,
				    unsigned int val)
{
	for (unsigned int i = from / 64; i < LEAF_WORDS; i++) {
		uint64_t x = val ? ~l->w[i] : l->w[i];

		if (i == from / 64)
			x &= ~0ULL << (from % 64);
		if (x)
			return i * 64 + (unsigned int)__builtin_ctzll(x);
	}
	return LEAF_PAGES;
}

uint64_t gmem_state_run(const struct gmem_state *s, uint64_t page,
			uint64_t limit, unsigned int *val)
{
	unsigned int v = gmem_state_get(s, page);
	uint64_t pos = page;

	*val = v;
	while (pos < limit) {
		uintptr_t e = s->root;
		unsigned int level = s->height;

		while (!is_uniform(e) && level > 0) {
			level--;
			e = to_node(e)->slot[(pos >> span_shift(level)) &
					     (NODE_SLOTS - 1)];
		}
		uint64_t base = pos & ~(span(level) - 1);

		if (is_uniform(e)) {
			if (uniform_val(e) != v)
				break;
			pos = base + span(level);
			continue;
		}
		unsigned int bit = leaf_find_other(to_leaf(e),
						   (unsigned int)(pos - base), v);

		pos = base + bit;
		if (bit < LEAF_PAGES)
			break;
	}
	return pos < limit ? pos : limit;
}

/*
 * Walk the path of page p and count the nodes a set of [start, end) to
 * val would have to allocate on it: one per level below the first
 * uniform entry that is neither covered by the range nor already val.
 */
static void edge_need(const struct gmem_state *s, uint64_t p, uint64_t start,
		      uint64_t end, unsigned int val, unsigned int *nodes,
		      unsigned int *leaves)
{
	uintptr_t e = s->root;
	unsigned int level = s->height;

	for (;;) {
		uint64_t base = p & ~(span(level) - 1);

		if (start <= base && base + span(level) <= end)
			return;
		if (is_uniform(e)) {
			if (uniform_val(e) != val) {
				*nodes += level;
				*leaves += 1;
			}
			return;
		}
		if (level == 0)
			return;
		level--;
		e = to_node(e)->slot[(p >> span_shift(level)) &
				     (NODE_SLOTS - 1)];
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

	end = extend_end(s, end);
	edge_need(s, start, start, end, val, &nodes, &leaves);
	if ((start ^ (end - 1)) >= LEAF_PAGES || nodes || leaves)
		edge_need(s, end - 1, start, end, val, &nodes, &leaves);
	while (s->nr_spare_nodes < nodes) {
		void *p = aligned_alloc(64, sizeof(struct node));

		if (!p)
			return -ENOMEM;
		*(void **)p = s->spare_nodes;
		s->spare_nodes = p;
		s->nr_spare_nodes++;
	}
	while (s->nr_spare_leaves < leaves) {
		void *p = aligned_alloc(64, sizeof(struct leaf));

		if (!p)
			return -ENOMEM;
		*(void **)p = s->spare_leaves;
		s->spare_leaves = p;
		s->nr_spare_leaves++;
	}
	return 0;
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

		changed += __builtin_popcountll(flip &
						file_mask(s, base + 64 * i));
		l->w[i] ^= flip;
	}
	return changed;
}

/* The uniform entry a leaf or node collapses into, or 0 if it can't. */
static uintptr_t collapse(uintptr_t e, unsigned int level)
{
	if (level == 0) {
		const struct leaf *l = to_leaf(e);
		uint64_t all = l->w[0];

		if (all != 0 && all != ~0ULL)
			return 0;
		for (unsigned int i = 1; i < LEAF_WORDS; i++)
			if (l->w[i] != all)
				return 0;
		return uniform(all ? 1 : 0);
	}
	uintptr_t first = to_node(e)->slot[0];

	if (!is_uniform(first))
		return 0;
	for (unsigned int i = 1; i < NODE_SLOTS; i++)
		if (to_node(e)->slot[i] != first)
			return 0;
	return first;
}

static uint64_t set_entry(struct gmem_state *s, uintptr_t *ep,
			  unsigned int level, uint64_t base, uint64_t start,
			  uint64_t end, unsigned int val)
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
		*ep = uniform(val);
		return changed;
	}
	if (is_uniform(e)) {
		if (level == 0)
			e = (uintptr_t)leaf_take(s, uniform_val(e));
		else
			e = (uintptr_t)node_take(s, e);
		*ep = e;
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
			changed += set_entry(s, &to_node(e)->slot[i], level - 1,
					     base + i * child, start, end, val);
	}
	uintptr_t u = collapse(e, level);

	if (u) {
		subtree_free(s, e, level);
		*ep = u;
	}
	return changed;
}

/* Boundaries i in [lo, hi], 1 <= i < npages, with v(i) != v(i - 1). */
static uint64_t count_boundaries(const struct gmem_state *s, uint64_t lo,
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

/* The level-0 slot (leaf or uniform entry) holding page; height >= 1. */
static uintptr_t *leaf_slot(const struct gmem_state *s, uint64_t page,
			    struct node **parent)
{
	uintptr_t e = s->root;
	unsigned int level = s->height;

	while (!is_uniform(e)) {
		struct node *n = to_node(e);
		uintptr_t *slot;

		level--;
		slot = &n->slot[(page >> span_shift(level)) & (NODE_SLOTS - 1)];
		if (level == 0) {
			*parent = n;
			return slot;
		}
		e = *slot;
	}
	return NULL;
}

static inline unsigned int word_bit(const uint64_t *w, unsigned int i)
{
	return (w[i / 64] >> (i % 64)) & 1;
}

#define FAST_MAX	64

/*
 * The common conversion: at most FAST_MAX pages inside one 2 MiB leaf
 * slot.  One descent: a uniform slot becomes a leaf (gmem_state_reserve
 * provided one), a leaf that turns uniform collapses into its slot.  Only
 * a collapse that would reach the parent node takes the general path.
 * Returns false, having changed nothing, when the range needs that path.
 */
static bool set_fast(struct gmem_state *s, uint64_t start, uint64_t end,
		     unsigned int val, uint64_t *changed)
{
	uint64_t base = start & ~(LEAF_PAGES - 1);
	uint64_t w[LEAF_WORDS];
	struct node *parent;
	uintptr_t *slot, u;
	unsigned int i, lo, hi, before = 0, after = 0;

	if (!s->height || end >= s->npages || end - start > FAST_MAX ||
	    end > base + LEAF_PAGES)
		return false;
	slot = leaf_slot(s, start, &parent);
	if (!slot)
		return false;
	if (is_uniform(*slot)) {
		if (uniform_val(*slot) == val) {
			*changed = 0;
			return true;
		}
		memset(w, uniform_val(*slot) ? 0xff : 0, sizeof(w));
	} else {
		memcpy(w, to_leaf(*slot)->w, sizeof(w));
	}
	lo = (unsigned int)(start - base);
	hi = (unsigned int)(end - base);
	/* Boundaries at lo..hi before and after; neighbours may lie outside. */
	unsigned int left = start ? (lo ? word_bit(w, lo - 1) :
				     gmem_state_get(s, start - 1)) : val;
	unsigned int right = hi < LEAF_PAGES ? word_bit(w, hi) :
			     gmem_state_get(s, end);

	before += start && left != word_bit(w, lo);
	for (i = lo + 1; i < hi; i++)
		before += word_bit(w, i) != word_bit(w, i - 1);
	before += right != word_bit(w, hi - 1);
	after = (start && left != val) + (right != val);
	*changed = 0;
	for (i = lo; i < hi; i++) {
		if (word_bit(w, i) != val) {
			w[i / 64] ^= 1ULL << (i % 64);
			(*changed)++;
		}
	}
	u = (w[0] == 0 || w[0] == ~0ULL) ? uniform(w[0] ? 1 : 0) : 0;
	for (i = 1; u && i < LEAF_WORDS; i++)
		if (w[i] != w[0])
			u = 0;
	if (u) {
		/* Would the parent collapse too?  Leave that to set_entry. */
		for (i = 0; i < NODE_SLOTS; i++)
			if (&parent->slot[i] != slot && parent->slot[i] != u)
				break;
		if (i == NODE_SLOTS)
			return false;
		if (!is_uniform(*slot)) {
			spare_push(&s->spare_leaves, &s->nr_spare_leaves,
				   to_leaf(*slot));
			s->nr_leaves--;
		}
		*slot = u;
	} else {
		if (is_uniform(*slot))
			*slot = (uintptr_t)leaf_take(s, 0);
		memcpy(to_leaf(*slot)->w, w, sizeof(w));
	}
	s->nr_ranges = s->nr_ranges + after - before;
	return true;
}

uint64_t gmem_state_set(struct gmem_state *s, uint64_t start, uint64_t end,
			unsigned int val)
{
	uint64_t fend = end < s->npages ? end : s->npages;
	uint64_t before, after = 0, changed;

	if (set_fast(s, start, end, val, &changed))
		goto out;
	before = count_boundaries(s, start, fend);
	changed = set_entry(s, &s->root, s->height, 0, start,
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
	return changed;
}

uint64_t gmem_state_bytes(const struct gmem_state *s)
{
	return (s->nr_nodes + s->nr_spare_nodes) * sizeof(struct node) +
	       (s->nr_leaves + s->nr_spare_leaves) * sizeof(struct leaf);
}
