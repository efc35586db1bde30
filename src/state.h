/* SPDX-License-Identifier: MIT */
/*
 * state.h - per-page shared/private state of one guest memory file.
 *
 * A radix tree over page indices whose leaves are 4096-bit bitmaps (one
 * 16 MiB region of 4 KiB pages each) and whose uniform subtrees collapse
 * into one tagged entry, at any level.  A uniform file is a single entry
 * (no node at all); each boundary between a shared and a private run
 * costs at most one path of nodes.  The nodes above the leaves are small
 * enough to stay in cache, so a random conversion misses cache about
 * once, on the leaf, as a flat bitmap does; see bench/bench_state.c.
 * Lookups cache the last leaf slot, hence the non-const readers.
 *
 * Value 1 means private, 0 shared.  Pages past npages always carry the
 * value of the last page, so collapsing never has to special-case the
 * tail of the last leaf.
 *
 * Not thread-safe: the owner (struct gmem) serialises all calls with its
 * file lock.  gmem_state_set() cannot fail once gmem_state_reserve() has
 * succeeded for the same range, which is what lets a conversion change
 * the host views first and commit the state last.
 */
#ifndef GMEM_STATE_H
#define GMEM_STATE_H

#include <stdint.h>

struct gmem_state {
	uintptr_t root;			/* entry covering every page */
	unsigned int height;		/* interior levels above the leaves */
	uint64_t npages;
	uint64_t nr_private;		/* pages with value 1 */
	uint64_t nr_ranges;		/* maximal uniform runs in [0, npages) */
	uint64_t nr_nodes;		/* live interior nodes */
	uint64_t nr_leaves;		/* live leaf bitmaps */
	uint64_t *dense;		/* flat bitmap instead of the tree */
	uintptr_t *cache_slot;		/* slot of the last leaf looked up */
	void *cache_parent;		/* the node holding it */
	uint64_t cache_base;		/* first page it covers */
	void *spare_nodes;		/* reserved by gmem_state_reserve() */
	void *spare_leaves;
	unsigned int nr_spare_nodes;
	unsigned int nr_spare_leaves;
};

int gmem_state_init(struct gmem_state *s, uint64_t npages, unsigned int val);
void gmem_state_destroy(struct gmem_state *s);

/* Value of one page (page < npages). */
unsigned int gmem_state_get(struct gmem_state *s, uint64_t page);

/*
 * Value at page and the end of the uniform run that starts there, capped
 * at limit (page < limit <= npages).
 */
uint64_t gmem_state_run(struct gmem_state *s, uint64_t page, uint64_t limit,
			unsigned int *val);

/* Make sure gmem_state_set(start, end, val) will not need memory. */
int gmem_state_reserve(struct gmem_state *s, uint64_t start, uint64_t end,
		       unsigned int val);

/*
 * Set [start, end) to val; returns how many pages changed value.  Needs a
 * successful gmem_state_reserve() for the same arguments first.
 */
uint64_t gmem_state_set(struct gmem_state *s, uint64_t start, uint64_t end,
			unsigned int val);

/* Bytes of memory the tree uses (nodes, leaves and reserved spares). */
uint64_t gmem_state_bytes(const struct gmem_state *s);

#endif /* GMEM_STATE_H */
