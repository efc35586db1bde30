// SPDX-License-Identifier: MIT
/*
 * binding.c - the hypervisor side: bindings of file ranges to owners,
 * gmem_get_pfn()/gmem_put_pfn(), and invalidation.
 *
 * An owner (a KVM memslot in spirit) reaches pages through the guest
 * view: one unguarded MAP_SHARED mapping of the whole file, made by the
 * first gmem_get_pfn(), MADV_DONTFORK, never handed to gmem_mmap()
 * callers.  It shows private pages: that is what the guest side is for.
 *
 * References: a shared access takes a pin (g->pins, so a conversion to
 * private waits or fails -EAGAIN, as the kernel's refcount check makes
 * it) and is remembered in the binding's shared_refs; a private access
 * is only remembered (private_refs): private consumers do not hold
 * conversions back, they are invalidated.  gmem_unbind() drops whatever
 * the owner did not put.
 *
 * Invalidation runs ops->invalidate with g->lock held (internal.h says
 * why), for punch-hole, conversion (both directions: a consumer of the
 * old state must let go), memory failure, and once for the whole binding
 * when the file is closed while bound.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "internal.h"

void gmem_invalidate(struct gmem *g, uint64_t start, uint64_t end,
		     unsigned int reason)
{
	for (struct gmem_binding *b = g->bindings; b; b = b->next) {
		uint64_t s = start > b->first ? start : b->first;
		uint64_t e = end < b->first + b->npages ? end :
			     b->first + b->npages;

		if (s >= e)
			continue;
		gmem_cb_enter(g);
		b->ops->invalidate(b->owner, off_of(g, s), off_of(g, e - s),
				   reason);
		gmem_cb_exit(g);
		g->invalidations++;
	}
}

/* gmem_close() while bound: every owner lets go of everything, once. */
void gmem_bindings_release(struct gmem *g)
{
	gmem_invalidate(g, 0, g->npages, GMEM_INVALIDATE_RELEASE);
}

/* Drop b's references: its pins leave g->pins too. */
static int drop_refs(struct gmem *g, struct gmem_binding *b)
{
	int ret = 0;

	while (b->shared_refs.nr && !ret) {
		struct gmem_pin_extent e = b->shared_refs.ext[0];

		ret = gmem_pins_sub(&g->pins, e.start, e.end);
		if (!ret)
			ret = gmem_pins_sub(&b->shared_refs, e.start, e.end);
		g->pfn_refs -= ret ? 0 : e.end - e.start;
	}
	for (size_t i = 0; i < b->private_refs.nr; i++) {
		struct gmem_pin_extent *e = &b->private_refs.ext[i];

		g->pfn_refs -= (e->end - e->start) * e->count;
	}
	gmem_pins_destroy(&b->private_refs);
	pthread_cond_broadcast(&g->pin_cond);
	return ret;
}

/* Last release of the file: whatever is still bound goes with it. */
void gmem_bindings_destroy(struct gmem *g)
{
	while (g->bindings) {
		struct gmem_binding *b = g->bindings;

		g->bindings = b->next;
		gmem_pins_destroy(&b->shared_refs);
		gmem_pins_destroy(&b->private_refs);
		free(b);
	}
	if (g->guest_view)
		sys_munmap(g->guest_view, g->size);
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
	gmem_pins_init(&b->shared_refs);
	gmem_pins_init(&b->private_refs);
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
	gmem_pins_destroy(&b->shared_refs);
	free(b);
	gmem_unlock_put(g);
	return 0;
}

/* The guest view of the whole file, made on first use. */
int gmem_guest_view(struct gmem *g)
{
	void *p;
	int ret;

	if (g->guest_view)
		return 0;
	ret = gmem_map_file(g, g->size, PROT_READ | PROT_WRITE, 0, &p);
	if (!ret)
		g->guest_view = p;
	return ret;
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
	unsigned int order;
	struct gmem *g;
	uint64_t page;
	char *addr;
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
	ret = gmem_guest_view(g);
	if (ret)
		goto out;
	order = gmem_huge_order(g, page, access);
	addr = g->guest_view + off_of(g, page);
	/* The page (its huge page) exists and is mapped once the owner
	 * has its address. */
	ret = sys_madvise(g->guest_view + off_of(g, page & ~((1ULL << order) -
							     1)),
			  off_of(g, 1ULL << order), MADV_POPULATE_WRITE);
	if (ret)
		goto out;
	if (access == GMEM_ACCESS_SHARED) {
		ret = gmem_pins_add(&g->pins, page, page + 1);
		if (!ret) {
			ret = gmem_pins_add(&b->shared_refs, page, page + 1);
			if (ret)
				gmem_pins_sub(&g->pins, page, page + 1);
		}
	} else {
		ret = gmem_pins_add(&b->private_refs, page, page + 1);
	}
	if (ret)
		goto out;
	g->pfn_refs++;
	pfn->addr = addr;
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
		ret = gmem_pins_sub(&b->shared_refs, page, page + 1);
		if (!ret) {
			ret = gmem_pins_sub(&g->pins, page, page + 1);
			if (ret)	/* keep the two counts in step */
				gmem_pins_add(&b->shared_refs, page, page + 1);
		}
		if (!ret)
			pthread_cond_broadcast(&g->pin_cond);
	} else {
		ret = gmem_pins_sub(&b->private_refs, page, page + 1);
	}
	if (!ret)
		g->pfn_refs--;
	gmem_unlock_put(g);
	return ret;
}
