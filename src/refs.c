// SPDX-License-Identifier: MIT
/*
 * refs.c - the per-page reference table of a binding (refs.h): mapping
 * it, marking the chunks written, walking them.
 *
 * Locking: everything here but gmem_refs_slot() (refs.h) runs under the
 * file lock; the lock-free readers only load and CAS words of the
 * mapping, which lives until gmem_refs_destroy(), when no reader is left.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "refs.h"
#include "sys.h"

#define WORD_BITS	64

int gmem_refs_init(struct gmem_refs *r, uint64_t npages)
{
	uint64_t chunks = (npages + REF_CHUNK - 1) >> REF_CHUNK_SHIFT;
	void *w;
	int ret;

	r->npages = npages;
	r->len = (size_t)(chunks << REF_CHUNK_SHIFT) * sizeof(uint64_t);
	r->made = calloc((chunks + WORD_BITS - 1) / WORD_BITS ?
			 (chunks + WORD_BITS - 1) / WORD_BITS : 1,
			 sizeof(*r->made));
	if (!r->made)
		return -ENOMEM;
	ret = sys_mmap(NULL, r->len ? r->len : 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0, &w);
	if (ret) {
		free(r->made);
		r->made = NULL;
		return ret;
	}
	r->w = w;
	/* 4 KiB pages of table, whatever the THP setting: a huge page
	 * would cost 2 MiB for one page reached in a GiB of the binding
	 * (bench_pfn measured it 5% faster).  A hint: failure changes
	 * nothing but the memory a sparse binding may take. */
	sys_madvise(w, r->len ? r->len : 4096, MADV_NOHUGEPAGE);
	return 0;
}

/*
 * Freed first, unmapped after: at the VMA limit the unmapping of a table
 * merged with both its neighbours can fail, and then only address space
 * is left behind.
 */
void gmem_refs_destroy(struct gmem_refs *r)
{
	size_t len = r->len ? r->len : 4096;

	if (!r->made)
		return;
	sys_madvise((void *)r->w, len, MADV_DONTNEED);
	sys_munmap((void *)r->w, len);
	free(r->made);
	r->made = NULL;
	r->w = NULL;
}

_Atomic uint64_t *gmem_refs_slot_make(struct gmem_refs *r, uint64_t idx)
{
	uint64_t c = idx >> REF_CHUNK_SHIFT;

	if (idx >= r->npages)
		return NULL;
	r->made[c / WORD_BITS] |= 1ULL << (c % WORD_BITS);
	return &r->w[idx];
}

/*
 * Call fn on every made chunk that meets [start, end), with the part of
 * it inside the range (page indexes); stop when fn returns true.
 */
static bool walk(const struct gmem_refs *r, uint64_t start, uint64_t end,
		 bool (*fn)(_Atomic uint64_t *w, uint64_t from, uint64_t to,
			    void *arg),
		 void *arg)
{
	uint64_t c, c_end;

	if (end > r->npages)
		end = r->npages;
	if (start >= end)
		return false;
	c = start >> REF_CHUNK_SHIFT;
	c_end = ((end - 1) >> REF_CHUNK_SHIFT) + 1;
	while (c < c_end) {
		uint64_t bits = r->made[c / WORD_BITS] >> (c % WORD_BITS);
		uint64_t from, to;

		if (!bits) {		/* the rest of this bitmap word */
			c = (c / WORD_BITS + 1) * WORD_BITS;
			continue;
		}
		c += (uint64_t)__builtin_ctzll(bits);
		if (c >= c_end)
			break;
		from = c << REF_CHUNK_SHIFT;
		to = from + REF_CHUNK;
		if (fn(r->w, from < start ? start : from, to > end ? end : to,
		       arg))
			return true;
		c++;
	}
	return false;
}

static bool unready(_Atomic uint64_t *w, uint64_t from, uint64_t to,
		    void *arg)
{
	uint64_t mask = ~(REF_READY_SHARED | REF_READY_PRIVATE |
			  REF_ORDER_MASK);

	(void)arg;
	for (uint64_t i = from; i < to; i++)
		if (atomic_load_explicit(&w[i], memory_order_relaxed) & ~mask)
			atomic_fetch_and(&w[i], mask);
	return false;
}

void gmem_refs_unready(struct gmem_refs *r, uint64_t start, uint64_t end)
{
	walk(r, start, end, unready, NULL);
	/* A shared grant before the clearing is in the count it changed;
	 * what the caller reads next must come after the clearing. */
	atomic_thread_fence(memory_order_seq_cst);
}

static bool first_shared(_Atomic uint64_t *w, uint64_t from, uint64_t to,
			 void *arg)
{
	for (uint64_t i = from; i < to; i++) {
		if (ref_shared(atomic_load(&w[i]))) {
			*(uint64_t *)arg = i;
			return true;
		}
	}
	return false;
}

uint64_t gmem_refs_first_shared(const struct gmem_refs *r, uint64_t start,
				uint64_t end)
{
	uint64_t page = end;

	walk(r, start, end, first_shared, &page);
	return page;
}

static bool total(_Atomic uint64_t *w, uint64_t from, uint64_t to, void *arg)
{
	for (uint64_t i = from; i < to; i++)
		*(uint64_t *)arg += ref_shared(atomic_load_explicit(&w[i],
						memory_order_relaxed));
	return false;
}

uint64_t gmem_refs_total(const struct gmem_refs *r)
{
	uint64_t n = 0;

	walk(r, 0, r->npages, total, &n);
	return n;
}
