/* SPDX-License-Identifier: MIT */
/*
 * refs.h - a binding's per-page word: the references gmem_get_pfn()
 * handed out, and what its lock-free fast path may rely on.
 *
 * One 64-bit word per page, in a flat array reserved for the whole
 * binding (MAP_NORESERVE: address space only, 8 bytes per page) whose
 * memory the kernel provides as pages are reached: 4 KiB of table
 * (MADV_NOHUGEPAGE, whatever the THP setting) per 512 pages reached,
 * so never more than 8 bytes per page of the binding (0.2%), and
 * nothing for the rest of a sparse file.  A lookup is one load, like
 * a flat array of page addresses (bench_pfn's table_three_levels:
 * three levels of nodes cost 1.6-1.7x that, the pointer chase and the
 * nodes' spread in the heap).  A bitmap, one bit per
 * 4 KiB of table, records what was written, so that walks skip the rest.
 *
 * The word:
 *   bits  0-23  shared references (each holds conversions to private back)
 *   bits 24-47  unused: private references are not counted, as KVM counts
 *               no NPT mapping; they decide nothing (a conversion of the
 *               page invalidates the owner whatever it holds), and a grant
 *               that is one load, with no atomic write, lets a vCPU's
 *               lookups overlap their cache misses (bench_pfn.c)
 *   bit  48     READY_SHARED: a shared access may be granted without the
 *               file lock (the page is shared, exposed, allocated)
 *   bit  49     READY_PRIVATE: likewise for a private access (the page is
 *               private, out of old references' reach, allocated)
 *   bits 50-54  the order to report with a READY grant
 *
 * Concurrency: the fast path grants a shared reference with one compare-
 * and-swap that also requires READY_SHARED, and drops one with a CAS; a
 * private grant is one acquire load that finds READY_PRIVATE; no lock.
 * A word never written reads as zero (the kernel's zero page): not READY.
 * Everything else runs under the file lock: words are first written and
 * READY set there, and an invalidation clears READY (an atomic AND)
 * before it looks at the counts or changes the page, so after the AND no
 * fast-path grant can happen for that page, and a shared grant before it
 * is visible in the count (the same word: its atomic operations are
 * totally ordered).  A private grant that read READY before the AND is
 * caught by the owner's sequence check (gmem_invalidate_retry()): the
 * invalidation begins after the AND.
 */
#ifndef GMEM_REFS_H
#define GMEM_REFS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REF_ONE_SHARED		1ULL
#define REF_COUNT_MAX		((1ULL << 24) - 1)
#define REF_READY_SHARED	(1ULL << 48)
#define REF_READY_PRIVATE	(1ULL << 49)
#define REF_ORDER_SHIFT		50
#define REF_ORDER_MASK		(31ULL << REF_ORDER_SHIFT)

#define REF_CHUNK_SHIFT		9	/* pages per 4 KiB of table: 512 */
#define REF_CHUNK		(1ULL << REF_CHUNK_SHIFT)

struct gmem_refs {
	_Atomic uint64_t *w;		/* npages words, mapped NORESERVE */
	uint64_t *made;			/* a bit per chunk written */
	uint64_t npages;
	size_t len;			/* bytes mapped at w */
};

static inline uint64_t ref_shared(uint64_t w)
{
	return w & REF_COUNT_MAX;
}

static inline uint64_t ref_ready(unsigned int private_access)
{
	return private_access ? REF_READY_PRIVATE : REF_READY_SHARED;
}

/* The word of page idx (zero if never made); no lock needed. */
static inline _Atomic uint64_t *gmem_refs_slot(const struct gmem_refs *r,
					       uint64_t idx)
{
	return idx < r->npages ? &r->w[idx] : NULL;
}

int gmem_refs_init(struct gmem_refs *r, uint64_t npages);
void gmem_refs_destroy(struct gmem_refs *r);
/* The word of page idx, to be written (file lock held); NULL: bad idx. */
_Atomic uint64_t *gmem_refs_slot_make(struct gmem_refs *r, uint64_t idx);
/* Clear READY on [start, end). */
void gmem_refs_unready(struct gmem_refs *r, uint64_t start, uint64_t end);
/* The first page of [start, end) with a shared reference, or end. */
uint64_t gmem_refs_first_shared(const struct gmem_refs *r, uint64_t start,
				uint64_t end);
/* Shared references held. */
uint64_t gmem_refs_total(const struct gmem_refs *r);

#endif /* GMEM_REFS_H */
