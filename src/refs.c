// SPDX-License-Identifier: MIT
/*
 * refs.c - the per-page reference table of a binding (refs.h): making
 * its nodes, walking the made ones.
 *
 * Locking: everything here but gmem_refs_slot() (refs.h) runs under the
 * file lock; nodes are published with release stores for the lock-free
 * readers and freed only by gmem_refs_destroy(), when no reader is left.
 */
#include <errno.h>
#include <stdlib.h>

#include "refs.h"

int gmem_refs_init(struct gmem_refs *r, uint64_t npages)
{
	r->npages = npages;
	r->ntop = (npages + (1ULL << REF_MID_SHIFT) - 1) >> REF_MID_SHIFT;
	r->top = calloc(r->ntop ? r->ntop : 1, sizeof(*r->top));
	return r->top ? 0 : -ENOMEM;
}

void gmem_refs_destroy(struct gmem_refs *r)
{
	if (!r->top)
		return;
	for (uint64_t t = 0; t < r->ntop; t++) {
		struct gmem_refs_mid *m = atomic_load(&r->top[t]);

		if (!m)
			continue;
		for (unsigned int i = 0; i < REF_MID_FAN; i++)
			free(atomic_load(&m->leaf[i]));
		free(m);
	}
	free(r->top);
	r->top = NULL;
}

_Atomic uint64_t *gmem_refs_slot_make(struct gmem_refs *r, uint64_t idx)
{
	_Atomic(struct gmem_refs_leaf *) *lp;
	struct gmem_refs_mid *m;
	struct gmem_refs_leaf *l;

	if (idx >= r->npages)
		return NULL;
	m = atomic_load_explicit(&r->top[idx >> REF_MID_SHIFT],
				 memory_order_relaxed);
	if (!m) {
		m = calloc(1, sizeof(*m));
		if (!m)
			return NULL;
		atomic_store_explicit(&r->top[idx >> REF_MID_SHIFT], m,
				      memory_order_release);
	}
	lp = &m->leaf[(idx >> REF_LEAF_SHIFT) & (REF_MID_FAN - 1)];
	l = atomic_load_explicit(lp, memory_order_relaxed);
	if (!l) {
		l = calloc(1, sizeof(*l));
		if (!l)
			return NULL;
		atomic_store_explicit(lp, l, memory_order_release);
	}
	return &l->w[idx & (REF_LEAF - 1)];
}

/*
 * Call fn on every made leaf that meets [start, end), with the part of
 * the leaf inside it (indexes into l->w); stop when fn returns true.
 */
static bool walk(const struct gmem_refs *r, uint64_t start, uint64_t end,
		 bool (*fn)(struct gmem_refs_leaf *l, uint64_t base,
			    unsigned int from, unsigned int to, void *arg),
		 void *arg)
{
	uint64_t p = start;

	if (end > r->npages)
		end = r->npages;
	while (p < end) {
		uint64_t t = p >> REF_MID_SHIFT;
		struct gmem_refs_mid *m = atomic_load(&r->top[t]);
		uint64_t mid_end = (t + 1) << REF_MID_SHIFT;

		if (!m) {
			p = mid_end;
			continue;
		}
		while (p < end && p < mid_end) {
			uint64_t base = p & ~(uint64_t)(REF_LEAF - 1);
			struct gmem_refs_leaf *l = atomic_load(
				&m->leaf[(p >> REF_LEAF_SHIFT) &
					 (REF_MID_FAN - 1)]);
			uint64_t le = base + REF_LEAF < end ? base + REF_LEAF : end;

			if (l && fn(l, base, (unsigned int)(p - base),
				    (unsigned int)(le - base), arg))
				return true;
			p = le;
		}
	}
	return false;
}

static bool unready(struct gmem_refs_leaf *l, uint64_t base,
		    unsigned int from, unsigned int to, void *arg)
{
	uint64_t mask = ~(REF_READY_SHARED | REF_READY_PRIVATE |
			  REF_ORDER_MASK);

	(void)base, (void)arg;
	for (unsigned int i = from; i < to; i++)
		if (atomic_load_explicit(&l->w[i], memory_order_relaxed) &
		    ~mask)
			atomic_fetch_and(&l->w[i], mask);
	return false;
}

void gmem_refs_unready(struct gmem_refs *r, uint64_t start, uint64_t end)
{
	walk(r, start, end, unready, NULL);
	/* Whatever READY a reader saw before is in the counts it changed;
	 * what the caller reads next must come after the clearing. */
	atomic_thread_fence(memory_order_seq_cst);
}

struct first {
	uint64_t page;
};

static bool first_shared(struct gmem_refs_leaf *l, uint64_t base,
			 unsigned int from, unsigned int to, void *arg)
{
	for (unsigned int i = from; i < to; i++) {
		if (ref_count(atomic_load(&l->w[i]), 0)) {
			((struct first *)arg)->page = base + i;
			return true;
		}
	}
	return false;
}

uint64_t gmem_refs_first_shared(const struct gmem_refs *r, uint64_t start,
				uint64_t end)
{
	struct first f = { end };

	walk(r, start, end, first_shared, &f);
	return f.page;
}

static bool total(struct gmem_refs_leaf *l, uint64_t base, unsigned int from,
		  unsigned int to, void *arg)
{
	(void)base;
	for (unsigned int i = from; i < to; i++) {
		uint64_t w = atomic_load_explicit(&l->w[i],
						  memory_order_relaxed);

		*(uint64_t *)arg += ref_count(w, 0) + ref_count(w, 1);
	}
	return false;
}

uint64_t gmem_refs_total(const struct gmem_refs *r)
{
	uint64_t n = 0;

	walk(r, 0, r->npages, total, &n);
	return n;
}

static bool bytes(struct gmem_refs_leaf *l, uint64_t base, unsigned int from,
		  unsigned int to, void *arg)
{
	(void)l, (void)base, (void)from, (void)to;
	*(uint64_t *)arg += sizeof(struct gmem_refs_leaf);
	return false;
}

uint64_t gmem_refs_bytes(const struct gmem_refs *r)
{
	uint64_t n = r->ntop * sizeof(*r->top);

	for (uint64_t t = 0; t < r->ntop; t++)
		n += atomic_load(&r->top[t]) ? sizeof(struct gmem_refs_mid) : 0;
	walk(r, 0, r->npages, bytes, &n);
	return n;
}
