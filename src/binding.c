// SPDX-License-Identifier: MIT
/*
 * binding.c - the hypervisor side: bindings of file ranges to owners,
 * gmem_get_pfn()/gmem_put_pfn(), and gmem_kvm_memslot().
 *
 * An owner (a KVM memslot in spirit) reaches pages through the window
 * (backing.h): the one unguarded mapping of the whole file, DONTFORK,
 * never handed to gmem_mmap() callers.  It shows private pages: that is
 * what the guest side is for.
 *
 * Shared references are counted in the binding's per-page words
 * (refs.h): each holds conversions to private back (they wait or fail
 * -EAGAIN, as the kernel's refcount check makes them).  Private ones are
 * not counted, as KVM counts no NPT mapping: a conversion invalidates
 * the owner whatever it holds.  A page once reached is left READY, so
 * the next gmem_get_pfn() of it is one CAS (shared) or one load
 * (private) and no lock, from any number of threads; anything that
 * changes the page (conversion, punch, poison, close) clears READY first
 * (notify.c, convert.c) and begins an invalidation that ends when the
 * file lock is released (lock.c).  gmem_put_pfn() never locks.
 * gmem_unbind() drops the shared references the owner did not put.  A private access is the first
 * private use of a page: one that was parked (rehome.c) is re-homed
 * before its address is handed out, in the slow path.
 *
 * The slow path never sleeps on the file lock while an invalidation of
 * any binding of the file is under way (lock_for_pfn()): -EAGAIN
 * instead, so an invalidate callback may wait for the owner's vCPU
 * threads, whichever binding (memslot) they fault on.
 *
 * Locking: g->lock (internal.h) but for the fast paths, which use only
 * atomics on the page's word and on the invalidation counters.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "internal.h"
#include "sys.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE		25
#endif

/* Drop b's references: the pins among them go, so waiters may go on. */
static void drop_refs(struct gmem *g, struct gmem_binding *b)
{
	bool shared = gmem_refs_first_shared(&b->refs, 0, b->npages) <
		      b->npages;

	gmem_refs_destroy(&b->refs);
	if (shared)
		gmem_refs_wake(g);
}

GMEM_EXPORT int gmem_bind(struct gmem *g, uint64_t offset, uint64_t size,
			  const struct gmem_binding_ops *ops, void *owner,
			  struct gmem_binding **out)
{
	struct gmem_binding *b;
	uint64_t first, end;
	int ret;

	if (!g || !ops || !ops->invalidate || !out ||
	    !gmem_range_ok(g, offset, size))
		return -EINVAL;
	if (gmem_is_peer(g))
		return -EPERM;
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	first = page_of(g, offset);
	end = page_of(g, offset + size);
	for (b = g->bindings; b; b = b->next) {
		if (first < b->first + b->npages && b->first < end) {
			ret = -EEXIST;
			goto out;
		}
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		ret = -ENOMEM;
		goto out;
	}
	ret = gmem_refs_init(&b->refs, end - first);
	if (ret) {
		free(b);
		goto out;
	}
	b->g = g;
	b->first = first;
	b->npages = end - first;
	b->shift = g->page_shift;
	b->ops = ops;
	b->owner = owner;
	b->next = g->bindings;
	g->bindings = b;
	g->nr_bindings++;
	*out = b;
out:
	gmem_unlock_put(g);
	return ret;
}

/* Allowed after gmem_close(): a binding keeps the file alive until here. */
GMEM_EXPORT int gmem_unbind(struct gmem_binding *b)
{
	struct gmem_binding **pp;
	struct gmem *g;
	int ret;

	if (!b)
		return -EINVAL;
	g = b->g;
	ret = gmem_lock(g);
	if (ret)
		return ret;
	drop_refs(g, b);
	if (b->inval_pending) {		/* not in practice: ended at unlock */
		atomic_fetch_sub(&g->inval_any, 1);
		b->inval_pending = 0;
	}
	for (pp = &g->bindings; *pp != b; pp = &(*pp)->next)
		;
	*pp = b->next;
	g->nr_bindings--;
	free(b);
	gmem_unlock_put(g);
	return 0;
}

static int check_pfn_args(struct gmem_binding *b, uint64_t index,
			  unsigned int access)
{
	if (!b || index >= b->npages ||
	    (access != GMEM_ACCESS_SHARED && access != GMEM_ACCESS_PRIVATE))
		return -EINVAL;
	return 0;
}

/* One load while no callback runs: pthread_self() only when one does. */
static bool in_callback(struct gmem *g)
{
	unsigned long t = atomic_load_explicit(&g->cb_thread,
					       memory_order_relaxed);

	return t && t == (unsigned long)pthread_self();
}

/* From the binding alone: the fast path's loads are its and the word. */
static void fill(struct gmem_binding *b, uint64_t index, uint64_t w,
		 struct gmem_pfn *pfn)
{
	uint64_t off = index << b->shift;

	pfn->addr = atomic_load_explicit(&b->base, memory_order_relaxed) + off;
	pfn->offset = (b->first << b->shift) + off;
	pfn->order = (unsigned int)((w & REF_ORDER_MASK) >> REF_ORDER_SHIFT);
}

/*
 * The lock-free grant: for a shared access one CAS that needs
 * READY_SHARED and adds a reference; for a private access one acquire
 * load that finds READY_PRIVATE (nothing is counted).  false: take the
 * slow path.
 */
static inline __attribute__((always_inline)) bool
grant_fast(struct gmem_binding *b, uint64_t index,
		       unsigned int access, struct gmem_pfn *pfn)
{
	_Atomic uint64_t *slot = &b->refs.w[index];	/* index < npages */
	uint64_t w;

	if (access == GMEM_ACCESS_PRIVATE) {
		w = atomic_load_explicit(slot, memory_order_acquire);
		if (!(w & REF_READY_PRIVATE))
			return false;
		fill(b, index, w, pfn);
		return true;
	}
	w = atomic_load_explicit(slot, memory_order_relaxed);
	while ((w & REF_READY_SHARED) && ref_shared(w) < REF_COUNT_MAX) {
		if (atomic_compare_exchange_weak_explicit(slot, &w,
				w + REF_ONE_SHARED, memory_order_acquire,
				memory_order_relaxed)) {
			fill(b, index, w, pfn);
			return true;
		}
	}
	return false;
}

/*
 * The file lock for the slow path, which must never sleep on it while an
 * invalidation of any binding is under way: its owner may be waiting for
 * this very thread (a vCPU) to leave guest mode.  Then -EAGAIN: the caller goes
 * back to its loop and retries, as KVM's fault path does.  Sleeps in
 * slices of 100 us to notice an invalidation that begins meanwhile.
 */
static int lock_for_pfn(struct gmem *g)
{
	struct timespec ts;

	if (in_callback(g))
		return -EDEADLK;
	/* Any binding's: its owner may wait for this vCPU too (one VM, many
	 * memslots), as KVM's in-progress count is the VM's. */
	while (pthread_mutex_trylock(&g->lock)) {
		if (atomic_load(&g->inval_any))
			return -EAGAIN;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100000;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (!pthread_mutex_timedlock(&g->lock, &ts))
			break;
	}
	if (g->closed) {
		pthread_mutex_unlock(&g->lock);
		return -EBADF;
	}
	return 0;
}

#define RA_MAX	16	/* pages populated ahead of a sequential first touch */

/*
 * Make page index of b allocated and mapped in the window.  A touch that
 * follows the last one populates ahead, doubling up to RA_MAX pages (as
 * readahead does), over pages in the same state, and leaves those READY
 * where nothing else is owed first (a shared page is exposed; a private
 * one only while no page of the file waits for a re-home), so a guest
 * touching its memory in order pays one system call and one lock per
 * RA_MAX pages, and one touching it at random no more than the page it
 * touched.
 */
static int populate(struct gmem *g, struct gmem_binding *b, uint64_t index,
		    unsigned int order, unsigned int access)
{
	uint64_t page = b->first + index, first, n, i;
	unsigned int cur;
	int ret;

	if (order) {
		first = page & ~((1ULL << order) - 1);
		return sys_madvise(g->b.window + off_of(g, first),
				   off_of(g, 1ULL << order),
				   MADV_POPULATE_WRITE);
	}
	b->ra_size = index == b->ra_next && b->ra_size ?
		     (b->ra_size * 2 > RA_MAX ? RA_MAX : b->ra_size * 2) : 1;
	n = b->npages - index < b->ra_size ? b->npages - index : b->ra_size;
	n = gmem_state_run(&g->state, page, page + n, &cur) - page;
	if (g->poison.nr)	/* never past a poisoned page */
		n = gmem_extents_first(&g->poison, page, page + n) - page;
	if (!n)
		n = 1;
	/* Through the NOHUGEPAGE window, never fallocate(): backing.c. */
	ret = sys_madvise(g->b.window + off_of(g, page), off_of(g, n),
			  MADV_POPULATE_WRITE);
	if (ret && n > 1)	/* the page itself is what matters */
		ret = sys_madvise(g->b.window + off_of(g, page),
				  off_of(g, n = 1), MADV_POPULATE_WRITE);
	if (ret)
		return ret;
	b->ra_next = index + n;
	if (n == 1 || (access == GMEM_ACCESS_PRIVATE &&
		       (g->park.nr || g->pending.nr)))
		return 0;
	if (access == GMEM_ACCESS_SHARED)
		gmem_expose(g, page + 1, page + n);
	for (i = 1; i < n; i++) {
		_Atomic uint64_t *s = gmem_refs_slot_make(&b->refs, index + i);
		uint64_t w;

		if (!s)
			break;
		w = atomic_load(s);
		while (!atomic_compare_exchange_weak(s, &w,
				(w & ~(REF_READY_SHARED | REF_READY_PRIVATE |
				       REF_ORDER_MASK)) | ref_ready(access)))
			;
	}
	return 0;
}

/*
 * The order to report for page: its uniform huge page's, but only for a
 * huge page wholly inside the binding (as KVM maps huge only where the
 * memslot covers it all), so that any change to it invalidates this
 * binding, which keeps READY's saved order true.
 */
static unsigned int pfn_order(struct gmem *g, struct gmem_binding *b,
			      uint64_t page, unsigned int access)
{
	unsigned int order = gmem_huge_order(g, page, access);
	uint64_t first = page & ~((1ULL << order) - 1);

	if (order && (first < b->first ||
		      first + (1ULL << order) > b->first + b->npages))
		order = 0;
	return order;
}

/* With the file lock: everything the fast path cannot do. */
static int get_locked(struct gmem *g, struct gmem_binding *b, uint64_t index,
		    unsigned int access, struct gmem_pfn *pfn)
{
	uint64_t page = b->first + index, first, bad, w, nw;
	_Atomic uint64_t *slot;
	unsigned int order;
	int ret;

	if (gmem_poisoned(g, page))
		return -EHWPOISON;
	if (gmem_state_get(&g->state, page) != access)
		return -EFAULT;		/* get_slow() fills fault_* */
	order = pfn_order(g, b, page, access);
	if (access == GMEM_ACCESS_PRIVATE) {
		uint64_t rehomed = g->rehomed;

		/* Its first private use: out of old references' reach. */
		ret = gmem_rehome_private_use(g, page, page + 1, &bad);
		if (ret)
			return ret;
		first = page & ~((1ULL << order) - 1);
		if (order && gmem_rehome_private_use(g, first, first +
						     (1ULL << order), &bad))
			order = 0;	/* the huge page is not whole */
		/* Re-homing split the folio: make it huge again. */
		if (order && g->rehomed != rehomed)
			sys_madvise(g->b.window + off_of(g, first),
				    off_of(g, 1ULL << order), MADV_COLLAPSE);
	}
	ret = gmem_backing_window(&g->b);
	if (ret)
		return ret;
	if (!atomic_load_explicit(&b->base, memory_order_relaxed))
		atomic_store_explicit(&b->base, g->b.window +
				      off_of(g, b->first), memory_order_relaxed);
	slot = gmem_refs_slot_make(&b->refs, index);
	if (!slot)
		return -ENOMEM;
	/* The page (its huge page) exists and is mapped once the owner
	 * has its address. */
	ret = populate(g, b, index, order, access);
	if (ret)
		return ret;
	if (access == GMEM_ACCESS_SHARED)	/* it may go to the kernel */
		gmem_expose(g, page, page + 1);
	/* Grant, and leave the page READY for the fast path: nothing can
	 * change it now without an invalidation, which clears READY. */
	w = atomic_load(slot);
	do {
		if (access == GMEM_ACCESS_SHARED &&
		    ref_shared(w) >= REF_COUNT_MAX)
			return -EOVERFLOW;
		nw = (w & ~(REF_READY_SHARED | REF_READY_PRIVATE |
			    REF_ORDER_MASK)) | ref_ready(access) |
		     (uint64_t)order << REF_ORDER_SHIFT;
		if (access == GMEM_ACCESS_SHARED)
			nw += REF_ONE_SHARED;
	} while (!atomic_compare_exchange_weak(slot, &w, nw));
	fill(b, index, nw, pfn);
	return 0;
}

/*
 * Every -EFAULT is a memory fault, as KVM prepares its memory-fault exit
 * for every failure to fault a guest_memfd page: fault_* always name the
 * page, whether its state did not match or the kernel refused to fault
 * it in (MADV_POPULATE_WRITE's EFAULT), so a VMM never reads garbage.
 */
static void fault_fill(struct gmem_binding *b, uint64_t index,
		       unsigned int access, struct gmem_pfn *pfn)
{
	pfn->fault_offset = (b->first + index) << b->g->page_shift;
	pfn->fault_size = 1ULL << b->g->page_shift;
	pfn->fault_flags = access == GMEM_ACCESS_PRIVATE ?
			   GMEM_MEMORY_FAULT_PRIVATE : 0;
}

/*
 * Out of line, so that the fast path is a leaf that saves no registers:
 * a grant while some callback of the file runs (on this thread it must
 * not, as for the lock), then the lock; fault_* on every -EFAULT.
 */
static __attribute__((noinline)) int get_slow(struct gmem_binding *b,
					      uint64_t index,
					      unsigned int access,
					      struct gmem_pfn *pfn)
{
	struct gmem *g = b->g;
	int ret;

	if (in_callback(g))
		return -EDEADLK;
	if (grant_fast(b, index, access, pfn))
		return 0;
	ret = lock_for_pfn(g);
	if (ret)
		return ret;
	ret = get_locked(g, b, index, access, pfn);
	gmem_unlock_put(g);
	if (ret == -EFAULT)
		fault_fill(b, index, access, pfn);
	return ret;
}

GMEM_EXPORT int gmem_get_pfn(struct gmem_binding *b, uint64_t index,
			     unsigned int access, struct gmem_pfn *pfn)
{
	int ret = check_pfn_args(b, index, access);

	if (ret || !pfn)
		return ret ? ret : -EINVAL;
	/* No callback of the file runs (else get_slow() looks closer). */
	if (!atomic_load_explicit(&b->g->cb_thread, memory_order_relaxed) &&
	    grant_fast(b, index, access, pfn))
		return 0;
	return get_slow(b, index, access, pfn);	/* fills fault_* */
}

/*
 * Lock-free: a CAS on the page's word for a shared reference; nothing
 * for a private one, which is not counted.  Allowed after gmem_close().
 */
GMEM_EXPORT int gmem_put_pfn(struct gmem_binding *b, uint64_t index,
			     unsigned int access)
{
	_Atomic uint64_t *slot;
	uint64_t w;
	int ret = check_pfn_args(b, index, access);

	if (ret)
		return ret;
	if (in_callback(b->g))
		return -EDEADLK;
	if (access == GMEM_ACCESS_PRIVATE)
		return 0;
	slot = gmem_refs_slot(&b->refs, index);
	if (!slot)
		return -EINVAL;
	w = atomic_load_explicit(slot, memory_order_relaxed);
	do {
		if (!ref_shared(w))
			return -EINVAL;
	} while (!atomic_compare_exchange_weak_explicit(slot, &w,
			w - REF_ONE_SHARED, memory_order_release,
			memory_order_relaxed));
	if (ref_shared(w) == 1)
		gmem_refs_wake(b->g);	/* a conversion may wait for it */
	return 0;
}

GMEM_EXPORT uint64_t gmem_invalidate_seq(const struct gmem_binding *b)
{
	return b ? atomic_load((_Atomic uint64_t *)&b->inval_seq) : 0;
}

GMEM_EXPORT int gmem_invalidate_retry(const struct gmem_binding *b,
				      uint64_t seq)
{
	if (!b)
		return 1;
	if (atomic_load((_Atomic unsigned int *)&b->inval_active))
		return 1;
	return atomic_load((_Atomic uint64_t *)&b->inval_seq) != seq;
}

GMEM_EXPORT int gmem_kvm_memslot(struct gmem *g, int *gmem_fd,
				 void **guest_addr)
{
	int ret;

	if (!gmem_fd || !guest_addr)
		return -EINVAL;
	if (g && gmem_is_peer(g))
		return -EPERM;
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	if (g->backend != GMEM_BACKEND_KVM)
		ret = -EOPNOTSUPP;
	else
		ret = gmem_backing_window(&g->b);
	if (!ret) {
		*gmem_fd = g->b.fd;
		*guest_addr = g->b.window;
	}
	gmem_unlock_put(g);
	return ret;
}
