/* SPDX-License-Identifier: MIT */
/*
 * refs.h - a binding's per-page word: the references gmem_get_pfn()
 * handed out, and what its lock-free fast path may rely on.
 *
 * One 64-bit word per page, in a three-level table (a top array of
 * ceil(npages / 2^15) pointers, middle nodes of 512 pointers (4 KiB),
 * leaves of 64 words (512 bytes)) that grows only where pages were
 * reached: 8 bytes per page for memory reached in runs, at most 512
 * bytes per page reached alone, nothing for the rest of a sparse file
 * (1 TiB: a 64 KiB top array), and a lookup is three loads whatever the
 * number of references held.  Leaves live until the binding goes.
 *
 * The word:
 *   bits  0-23  shared references (each holds conversions to private back)
 *   bits 24-47  private references (invalidated, never waited for)
 *   bit  48     READY_SHARED: a shared access may be granted without the
 *               file lock (the page is shared, exposed, allocated)
 *   bit  49     READY_PRIVATE: likewise for a private access (the page is
 *               private, out of old references' reach, allocated)
 *   bits 50-54  the order to report with a READY grant
 *
 * Concurrency: the fast path grants a reference with one compare-and-
 * swap that also requires the READY bit, and drops one with a CAS; no
 * lock.  Everything else runs under the file lock: leaves are allocated
 * and READY set there, and an invalidation clears READY (an atomic AND)
 * before it looks at the counts or changes the page, so after the AND no
 * fast-path grant can happen for that page, and a grant before it is
 * visible in the counts (the same word: its atomic operations are
 * totally ordered).
 */
#ifndef GMEM_REFS_H
#define GMEM_REFS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REF_ONE_SHARED		1ULL
#define REF_ONE_PRIVATE		(1ULL << 24)
#define REF_COUNT_MAX		((1ULL << 24) - 1)
#define REF_READY_SHARED	(1ULL << 48)
#define REF_READY_PRIVATE	(1ULL << 49)
#define REF_ORDER_SHIFT		50
#define REF_ORDER_MASK		(31ULL << REF_ORDER_SHIFT)

#define REF_LEAF_SHIFT		6
#define REF_LEAF		(1U << REF_LEAF_SHIFT)	/* words per leaf */
#define REF_MID_FAN_SHIFT	9
#define REF_MID_FAN		(1U << REF_MID_FAN_SHIFT)
#define REF_MID_SHIFT		(REF_LEAF_SHIFT + REF_MID_FAN_SHIFT)

struct gmem_refs_leaf {
	_Atomic uint64_t w[REF_LEAF];
};

struct gmem_refs_mid {
	_Atomic(struct gmem_refs_leaf *) leaf[REF_MID_FAN];
};

struct gmem_refs {
	_Atomic(struct gmem_refs_mid *) *top;
	uint64_t ntop;
	uint64_t npages;
};

static inline uint64_t ref_count(uint64_t w, unsigned int private_access)
{
	return private_access ? (w >> 24) & REF_COUNT_MAX : w & REF_COUNT_MAX;
}

static inline uint64_t ref_ready(unsigned int private_access)
{
	return private_access ? REF_READY_PRIVATE : REF_READY_SHARED;
}

static inline uint64_t ref_one(unsigned int private_access)
{
	return private_access ? REF_ONE_PRIVATE : REF_ONE_SHARED;
}

/* The word of page idx, or NULL if none was made; no lock needed. */
static inline _Atomic uint64_t *gmem_refs_slot(const struct gmem_refs *r,
					       uint64_t idx)
{
	struct gmem_refs_mid *m;
	struct gmem_refs_leaf *l;

	if (idx >= r->npages)
		return NULL;
	m = atomic_load_explicit(&r->top[idx >> REF_MID_SHIFT],
				 memory_order_acquire);
	if (!m)
		return NULL;
	l = atomic_load_explicit(&m->leaf[(idx >> REF_LEAF_SHIFT) &
					  (REF_MID_FAN - 1)],
				 memory_order_acquire);
	return l ? &l->w[idx & (REF_LEAF - 1)] : NULL;
}

int gmem_refs_init(struct gmem_refs *r, uint64_t npages);
void gmem_refs_destroy(struct gmem_refs *r);
/* The word of page idx, made if need be (file lock held); NULL: ENOMEM. */
_Atomic uint64_t *gmem_refs_slot_make(struct gmem_refs *r, uint64_t idx);
/* Clear READY on [start, end). */
void gmem_refs_unready(struct gmem_refs *r, uint64_t start, uint64_t end);
/* The first page of [start, end) with a shared reference, or end. */
uint64_t gmem_refs_first_shared(const struct gmem_refs *r, uint64_t start,
				uint64_t end);
/* References held, of both kinds. */
uint64_t gmem_refs_total(const struct gmem_refs *r);
/* Bytes the table takes. */
uint64_t gmem_refs_bytes(const struct gmem_refs *r);

#endif /* GMEM_REFS_H */
