/* SPDX-License-Identifier: MIT */
/*
 * extent.h - counts per page range: pins, references, poison.
 *
 * A sorted array of disjoint extents [start, end) with a count each;
 * neighbours with equal counts are merged.  Pins are few (DMA buffers,
 * rings), so the array stays short and a binary search finds the first
 * pin in a range.  Changes are all-or-nothing: memory is reserved before
 * any extent is touched.  Not thread-safe: the owner's file lock
 * serialises all calls.
 */
#ifndef GMEM_EXTENT_H
#define GMEM_EXTENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gmem_extent {
	uint64_t start;
	uint64_t end;
	uint64_t count;
};

struct gmem_extents {
	struct gmem_extent *ext;
	size_t nr;
	size_t cap;
	uint64_t nr_pinned;		/* pages with count > 0 */
	uint64_t nr_calls;		/* pin calls not yet undone */
};

void gmem_extents_init(struct gmem_extents *p);
void gmem_extents_destroy(struct gmem_extents *p);
/* First pinned page in [start, end), or end if there is none. */
uint64_t gmem_extents_first(const struct gmem_extents *p, uint64_t start,
			 uint64_t end);
/*
 * Whether page has a count (*covered) and the end, at most limit, of the
 * run of pages from page that all have one, or all have none.
 */
uint64_t gmem_extents_run(const struct gmem_extents *p, uint64_t page,
			  uint64_t limit, bool *covered);
/* Add one pin to every page of [start, end): 0, -ENOMEM or -EOVERFLOW. */
int gmem_extents_add(struct gmem_extents *p, uint64_t start, uint64_t end);
/* Drop one pin from every page; -EINVAL if one of them has none. */
int gmem_extents_sub(struct gmem_extents *p, uint64_t start, uint64_t end);

#endif /* GMEM_EXTENT_H */
