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
 * References: a shared access takes a pin (g->pins, so a conversion to
 * private waits or fails -EAGAIN, as the kernel's refcount check makes
 * it) and is remembered in the binding's shared_refs; a private access
 * is only remembered (private_refs): private consumers do not hold
 * conversions back, they are invalidated (notify.c).  gmem_unbind()
 * drops whatever the owner did not put.  A private access is the first
 * private use of a page: one that was parked (rehome.c) is re-homed
 * before its address is handed out.
 *
 * Locking: g->lock (internal.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "internal.h"
#include "sys.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE		25
#endif

/* Drop b's references: its pins leave g->pins too. */
static int drop_refs(struct gmem *g, struct gmem_binding *b)
{
	int ret = 0;

	while (b->shared_refs.nr && !ret) {
		struct gmem_extent e = b->shared_refs.ext[0];

		ret = gmem_extents_sub(&g->pins, e.start, e.end);
		if (!ret)
			ret = gmem_extents_sub(&b->shared_refs, e.start, e.end);
		g->pfn_refs -= ret ? 0 : e.end - e.start;
	}
	for (size_t i = 0; i < b->private_refs.nr; i++) {
		struct gmem_extent *e = &b->private_refs.ext[i];

		g->pfn_refs -= (e->end - e->start) * e->count;
	}
	gmem_extents_destroy(&b->private_refs);
	pthread_cond_broadcast(&g->pin_cond);
	return ret;
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
	b->g = g;
	b->first = first;
	b->npages = end - first;
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
	ret = drop_refs(g, b);
	if (ret) {		/* out of memory splitting pin extents */
		gmem_unlock_put(g);
		return ret;
	}
	for (pp = &g->bindings; *pp != b; pp = &(*pp)->next)
		;
	*pp = b->next;
	g->nr_bindings--;
	gmem_extents_destroy(&b->shared_refs);
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

GMEM_EXPORT int gmem_get_pfn(struct gmem_binding *b, uint64_t index,
			     unsigned int access, struct gmem_pfn *pfn)
{
	uint64_t page, first, bad;
	unsigned int order;
	struct gmem *g;
	int ret = check_pfn_args(b, index, access);

	if (ret || !pfn)
		return ret ? ret : -EINVAL;
	g = b->g;
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	page = b->first + index;
	if (gmem_poisoned(g, page)) {
		ret = -EHWPOISON;
		goto out;
	}
	if (gmem_state_get(&g->state, page) != access) {
		pfn->fault_offset = off_of(g, page);
		pfn->fault_size = off_of(g, 1);
		pfn->fault_flags = access == GMEM_ACCESS_PRIVATE ?
				   GMEM_MEMORY_FAULT_PRIVATE : 0;
		ret = -EFAULT;
		goto out;
	}
	order = gmem_huge_order(g, page, access);
	if (access == GMEM_ACCESS_PRIVATE) {
		uint64_t rehomed = g->rehomed;

		/* Its first private use: out of old references' reach. */
		ret = gmem_rehome_private_use(g, page, page + 1, &bad);
		if (ret)
			goto out;
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
		goto out;
	first = page & ~((1ULL << order) - 1);
	/* The page (its huge page) exists and is mapped once the owner
	 * has its address. */
	ret = sys_madvise(g->b.window + off_of(g, first),
			  off_of(g, 1ULL << order), MADV_POPULATE_WRITE);
	if (ret)
		goto out;
	if (access == GMEM_ACCESS_SHARED) {
		ret = gmem_extents_add(&g->pins, page, page + 1);
		if (!ret) {
			ret = gmem_extents_add(&b->shared_refs, page, page + 1);
			if (ret)
				gmem_extents_sub(&g->pins, page, page + 1);
		}
		if (!ret)	/* the owner may hand it to the kernel */
			gmem_expose(g, page, page + 1);
	} else {
		ret = gmem_extents_add(&b->private_refs, page, page + 1);
	}
	if (ret)
		goto out;
	g->pfn_refs++;
	pfn->addr = g->b.window + off_of(g, page);
	pfn->offset = off_of(g, page);
	pfn->order = order;
out:
	gmem_unlock_put(g);
	return ret;
}

GMEM_EXPORT int gmem_put_pfn(struct gmem_binding *b, uint64_t index,
			     unsigned int access)
{
	struct gmem *g;
	uint64_t page;
	int ret = check_pfn_args(b, index, access);

	if (ret)
		return ret;
	g = b->g;
	ret = gmem_lock(g);
	if (ret)
		return ret;
	page = b->first + index;
	if (access == GMEM_ACCESS_SHARED) {
		ret = gmem_extents_sub(&b->shared_refs, page, page + 1);
		if (!ret) {
			ret = gmem_extents_sub(&g->pins, page, page + 1);
			if (ret)	/* keep the two counts in step */
				gmem_extents_add(&b->shared_refs, page,
						 page + 1);
		}
		if (!ret)
			pthread_cond_broadcast(&g->pin_cond);
	} else {
		ret = gmem_extents_sub(&b->private_refs, page, page + 1);
	}
	if (!ret)
		g->pfn_refs--;
	gmem_unlock_put(g);
	return ret;
}

GMEM_EXPORT int gmem_kvm_memslot(struct gmem *g, int *gmem_fd,
				 void **guest_addr)
{
	int ret;

	if (!gmem_fd || !guest_addr)
		return -EINVAL;
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
