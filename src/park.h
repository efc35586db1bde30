/* SPDX-License-Identifier: MIT */
/*
 * park.h - snapshots of pages that became private while the kernel may
 * still hold references taken when they were shared (see rehome.c for
 * when pages are parked and how they leave).
 *
 * A parked page has a slot: its contents as they were when it became
 * private (or "zero", with no buffer), and whether the file still holds
 * the old page (the usual case: the slot only says what the private page
 * contains) or no longer does (DETACHED: the contents live only here).
 * Slots live in an open-addressing hash table keyed by page index, with
 * 4 KiB buffers recycled through a short free list, so parking and
 * unparking a page costs no system call and, once warm, no malloc.
 *
 * At most `limit` slots hold ordinary snapshots; DETACHED and BUSY
 * slots may go past it (contents that must not be lost, or pages that
 * cannot be re-homed yet), up to the room gmem_park_reserve() made.
 * Ordinary slots also sit in a FIFO of (page, seq) pairs, oldest first,
 * so the oldest is found in O(1): entries of slots dropped, re-parked or
 * turned DETACHED/BUSY since are stale and skipped (a slot's seq tells),
 * and the FIFO is compacted when it fills (amortised O(1) per add).
 * Not thread-safe: the file lock serialises every call.
 */
#ifndef GMEM_PARK_H
#define GMEM_PARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GMEM_PARK_ZERO		(1U << 0)	/* contents are zeros */
#define GMEM_PARK_DETACHED	(1U << 1)	/* the file lost the page */
#define GMEM_PARK_BUSY		(1U << 2)	/* could not be re-homed:
						   its huge folio is in use */
#define GMEM_PARK_EXTRA		(GMEM_PARK_DETACHED | GMEM_PARK_BUSY)

struct gmem_park_slot {
	uint64_t page;			/* UINT64_MAX: empty */
	uint64_t seq;			/* when it was parked: eviction order */
	void *buf;			/* page_size bytes, or NULL (ZERO) */
	unsigned int flags;
};

struct gmem_park {
	struct gmem_park_slot *slot;
	size_t cap;			/* a power of two */
	size_t nr;			/* slots in use */
	size_t nr_extra;		/* of which DETACHED or BUSY */
	size_t nr_detached;
	size_t limit;			/* ordinary slots allowed */
	size_t page_size;
	uint64_t seq;
	void **free_buf;		/* recycled buffers */
	size_t nr_free;
	struct gmem_park_age {		/* FIFO of ordinary slots */
		uint64_t page, seq;
	} *age;
	size_t age_cap;			/* a power of two, > 2 * limit */
	size_t age_head, age_len;
};

void gmem_park_init(struct gmem_park *p, size_t limit, size_t page_size);
void gmem_park_destroy(struct gmem_park *p);

struct gmem_park_slot *gmem_park_find(struct gmem_park *p, uint64_t page);

/* Room for n more slots without allocating: 0 or -ENOMEM. */
int gmem_park_reserve(struct gmem_park *p, size_t n);

/* A page-sized buffer (recycled or new), or NULL. */
void *gmem_park_buf(struct gmem_park *p);
void gmem_park_buf_free(struct gmem_park *p, void *buf);

/*
 * Park page with buf (taken over; NULL with GMEM_PARK_ZERO).  -ENOSPC
 * when an ordinary slot would go past the limit, -ENOMEM when the table
 * has no room (reserve first); buf is not taken then.  A page already
 * parked is replaced.
 */
int gmem_park_add(struct gmem_park *p, uint64_t page, void *buf,
		  unsigned int flags);
/* Change a slot's flags (ZERO stays as it is). */
void gmem_park_set_flags(struct gmem_park *p, struct gmem_park_slot *s,
			 unsigned int flags);
/* The page's contents became zeros: its buffer is recycled, it stays. */
void gmem_park_zero(struct gmem_park *p, struct gmem_park_slot *s);
/* Forget a slot (its buffer is recycled); the slot pointer dies. */
void gmem_park_drop(struct gmem_park *p, struct gmem_park_slot *s);
/*
 * The oldest ordinary (not DETACHED or BUSY) slot, or NULL; the caller
 * re-homes it (drops it or makes it DETACHED/BUSY) before asking again.
 */
struct gmem_park_slot *gmem_park_oldest(struct gmem_park *p);
/* Make an ordinary slot that gmem_park_oldest() gave evictable again. */
void gmem_park_requeue(struct gmem_park *p, struct gmem_park_slot *s);
/*
 * The first slot (in table order) with a page in [start, end), from
 * table index *i on; NULL when there is none.  Dropping the slot it
 * returned and calling again with the same *i is allowed.
 */
struct gmem_park_slot *gmem_park_next(struct gmem_park *p, uint64_t start,
				      uint64_t end, size_t *i);

/* Bytes of memory the store holds (buffers and table). */
uint64_t gmem_park_bytes(const struct gmem_park *p);

#endif /* GMEM_PARK_H */
