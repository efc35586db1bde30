/* SPDX-License-Identifier: MIT */
/*
 * pins.h - pin counts of one file, per page range.
 *
 * A sorted array of disjoint extents [start, end) with a count each;
 * neighbours with equal counts are merged.  Pins are few (DMA buffers,
 * rings), so the array stays short and a binary search finds the first
 * pin in a range.  Changes are all-or-nothing: memory is reserved before
 * any extent is touched.  Not thread-safe: the owner's file lock
 * serialises all calls.
 */
#ifndef GMEM_PINS_H
#define GMEM_PINS_H

#include <stddef.h>
#include <stdint.h>

struct gmem_pin_extent {
	uint64_t start;
	uint64_t end;
	uint64_t count;
};

struct gmem_pins {
	struct gmem_pin_extent *ext;
	size_t nr;
	size_t cap;
	uint64_t nr_pinned;		/* pages with count > 0 */
	uint64_t nr_calls;		/* pin calls not yet undone */
};

void gmem_pins_init(struct gmem_pins *p);
void gmem_pins_destroy(struct gmem_pins *p);
/* First pinned page in [start, end), or end if there is none. */
uint64_t gmem_pins_first(const struct gmem_pins *p, uint64_t start,
			 uint64_t end);
/* Add one pin to every page of [start, end): 0, -ENOMEM or -EOVERFLOW. */
int gmem_pins_add(struct gmem_pins *p, uint64_t start, uint64_t end);
/* Drop one pin from every page; -EINVAL if one of them has none. */
int gmem_pins_sub(struct gmem_pins *p, uint64_t start, uint64_t end);

#endif /* GMEM_PINS_H */
