// SPDX-License-Identifier: MIT
/*
 * file.c - the guest memory file: gmem_create(), gmem_close() and
 * gmem_stat().  Lifetime and the lock are in lock.c, the memory behind
 * the file in backing.c.
 *
 * Locking: g->lock (internal.h) guards everything but the fields fixed
 * at creation.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "sys.h"

#define GMEM_HUGE_BITS	(GMEM_HUGE_MASK << GMEM_HUGE_SHIFT)
#define GMEM_ALL_FLAGS	(GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED | \
			 GMEM_FLAG_HUGEPAGE | GMEM_HUGE_BITS)

static int check_create_args(const struct gmem_create_args *args)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	unsigned int shift;
	int ret;

	if (args->backend == GMEM_BACKEND_MEMFD ? args->vm_fd != 0 :
	    args->backend != GMEM_BACKEND_KVM || args->vm_fd < -1)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(args->reserved) / 8; i++)
		if (args->reserved[i])
			return -EINVAL;
	if (args->flags & ~GMEM_ALL_FLAGS)
		return -EINVAL;
	if (!args->size || args->size & (page - 1) || args->size > INT64_MAX)
		return -EINVAL;
	ret = gmem_huge_validate(args->flags, args->size, &shift);
	if (ret)
		return ret;
	/* guest_memfd has no huge pages in Linux 6.18 */
	if (shift && args->backend == GMEM_BACKEND_KVM)
		return -EOPNOTSUPP;
	return 0;
}

GMEM_EXPORT int gmem_create(const struct gmem_create_args *args,
			    struct gmem **out)
{
	struct gmem_backing_args ba = { 0 };
	unsigned int init_val;
	struct gmem *g;
	int ret;

	if (!args || !out)
		return -EINVAL;
	ret = check_create_args(args);
	if (ret)
		return ret;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->size = args->size;
	g->flags = args->flags;
	g->backend = args->backend;
	g->page_shift = (unsigned int)__builtin_ctzl(
				(unsigned long)sysconf(_SC_PAGESIZE));
	g->npages = page_of(g, g->size);
	g->uffd = -1;
	gmem_huge_validate(args->flags, args->size, &g->huge_shift);
	g->hugetlb = g->huge_shift == 30;
	init_val = args->flags & GMEM_FLAG_INIT_SHARED ? 0 : 1;
	ret = gmem_state_init(&g->state, g->npages, init_val);
	if (ret)
		goto err_free;
	gmem_rehome_init(g);

	ba.size = g->size;
	ba.huge_shift = g->huge_shift;
	ba.kvm = g->backend == GMEM_BACKEND_KVM;
	ba.vm_fd = args->vm_fd;
	ba.init_private = init_val;
	ret = gmem_backing_create(&g->b, &ba);
	if (ret)
		goto err_state;
	/*
	 * The window now, not on first use: allocation, re-homing and the
	 * guest side need it, and later the process may have no VMA left
	 * to make it with (test_budget.c).
	 */
	ret = gmem_backing_window(&g->b);
	if (ret)
		goto err_backing;
	if (g->hugetlb) {
		g->region_exposed = calloc(g->b.nr_regions, 1);
		if (!g->region_exposed) {
			ret = -ENOMEM;
			goto err_backing;
		}
	}
	ret = -pthread_mutex_init(&g->lock, NULL);
	if (ret)
		goto err_backing;
	ret = -pthread_mutex_init(&g->wake_lock, NULL);
	if (ret)
		goto err_lock;
	ret = -pthread_cond_init(&g->wake_cond, NULL);
	if (ret)
		goto err_wake;
	*out = g;
	return 0;

err_wake:
	pthread_mutex_destroy(&g->wake_lock);
err_lock:
	pthread_mutex_destroy(&g->lock);
err_backing:
	gmem_backing_destroy(&g->b);
err_state:
	gmem_rehome_destroy(g);
	gmem_state_destroy(&g->state);
err_free:
	free(g);
	return ret;
}

GMEM_EXPORT void gmem_close(struct gmem *g)
{
	if (!g)
		return;
	/*
	 * From one of g's callbacks: this thread holds g's lock, inside a
	 * call that is changing the file.  The close waits until that call
	 * is done with it (gmem_unlock_put()), so nothing leaks and the
	 * change is not cut short.
	 */
	if (gmem_in_callback(g)) {
		g->close_deferred = true;
		return;
	}
	pthread_mutex_lock(&g->lock);
	if (g->closed) {		/* double close while still held */
		pthread_mutex_unlock(&g->lock);
		return;
	}
	gmem_mark_closed(g);
	gmem_unlock_put(g);
}

GMEM_EXPORT int gmem_get_fd(struct gmem *g, uint64_t offset, int *fd,
			    uint64_t *fd_offset, uint64_t *len)
{
	uint64_t region = 1ULL << 30;
	int ret;

	if (!g || !fd || !fd_offset || !len)
		return -EINVAL;
	if ((offset & (off_of(g, 1) - 1)) || offset >= g->size)
		return -EINVAL;
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	if (gmem_is_peer(g) && !gmem_link_range_ok(g, offset, off_of(g, 1))) {
		ret = -EINVAL;		/* the owner sent no file for it */
	} else if (g->b.kind == GMEM_BACKING_HUGETLB) {
		/* Re-homing may swap a region's file: valid until then. */
		*fd = g->b.region_fd[offset / region];
		*fd_offset = offset % region;
		*len = region - *fd_offset;
	} else {
		*fd = g->b.fd;
		*fd_offset = offset;
		*len = g->size - offset;
	}
	gmem_unlock_put(g);
	return ret;
}

GMEM_EXPORT int gmem_stat(struct gmem *g, struct gmem_stats *st, size_t size)
{
	struct gmem_stats s = { 0 };
	struct gmem_span *spans;
	size_t nspans;
	int ret;

	if (!st || size > sizeof(s))
		return -EINVAL;
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	s.size = g->size;
	s.priv = off_of(g, g->state.nr_private);
	s.shared = g->size - s.priv;
	s.nr_ranges = g->state.nr_ranges;
	s.state_bytes = gmem_state_bytes(&g->state);
	s.conversions = g->conversions;
	s.pages_converted = g->pages_converted;
	s.pins = g->user_pins.nr_calls;
	s.pinned = off_of(g, g->pins.nr_pinned);
	for (struct gmem_binding *b = g->bindings; b; b = b->next) {
		s.pfn_refs += gmem_refs_total(&b->refs);
		/* Shared references count as pins, each page once. */
		for (uint64_t p = 0; p < b->npages; p++) {
			p = gmem_refs_first_shared(&b->refs, p, b->npages);
			if (p < b->npages &&
			    gmem_extents_first(&g->pins, b->first + p,
					       b->first + p + 1) != b->first + p)
				s.pinned += off_of(g, 1);
		}
	}
	s.splits = g->splits;
	s.merges = g->merges;
	s.bindings = g->nr_bindings;
	s.invalidations = g->invalidations;
	s.listeners = g->nr_listeners;
	s.listener_calls = g->listener_calls;
	for (size_t i = 0; i < g->poison.nr; i++)
		s.poisoned += off_of(g, g->poison.ext[i].end -
				     g->poison.ext[i].start);
	for (struct gmem_view *v = g->views; v; v = v->next) {
		if (v->need_recount)
			gmem_view_recount(g, v);
		if (v->internal)
			continue;
		s.views++;
		s.views_uffd += v->mode == GMEM_VIEW_UFFD;
	}
	s.vmas = g->vmas + (g->b.window ? (g->hugetlb ? g->b.nr_regions : 1)
			    : 0);
	s.vmas_total = gmem_vmas_total();
	s.vma_budget = gmem_vma_budget();
	s.views_revoked = g->views_revoked;
	s.mode_switches = g->mode_switches;
	s.parked = g->park.nr;
	s.parked_bytes = gmem_park_bytes(&g->park);
	s.rehomed = g->rehomed;
	s.rehome_busy = g->rehome_busy;
	s.peers = gmem_peers_attached(g);
	s.peer_changes = g->peer_changes;
	s.peers_lost = g->peers_lost;
	s.peers_cut = g->peers_cut;
	s.peer_pinned = gmem_peers_pinned(g);
	if (gmem_is_peer(g))
		gmem_link_range(g, &s.peer_offset, &s.peer_size);
	ret = gmem_huge_spans(g, &spans, &nspans);
	/* What may change under us is read now: hugetlb region files are
	 * swapped by re-homing, the KVM window is made on first use. */
	if (!ret && g->b.kind == GMEM_BACKING_HUGETLB)
		ret = gmem_backing_allocated(&g->b, &s.allocated);
	else if (!ret && g->b.kind == GMEM_BACKING_KVM && !gmem_is_peer(g))
		ret = gmem_backing_window(&g->b);
	/*
	 * The slow part without the lock: the backing's allocation
	 * (fstat, or a walk of guest_memfd's data) and the huge mappings
	 * (/proc/self/smaps, which takes the mm's lock).  The backing lives
	 * as long as the file, which this call holds meanwhile (as a
	 * waiter does); a view that goes meanwhile just is not counted.
	 */
	g->nr_waiters++;
	pthread_mutex_unlock(&g->lock);
	/* guest_memfd's allocation is read through the window: not here. */
	if (!ret && g->b.kind != GMEM_BACKING_HUGETLB &&
	    !(g->b.kind == GMEM_BACKING_KVM && gmem_is_peer(g)))
		ret = gmem_backing_allocated(&g->b, &s.allocated);
	if (!ret)
		ret = gmem_huge_mapped(spans, nspans, &s.huge_mapped);
	free(spans);
	pthread_mutex_lock(&g->lock);
	g->nr_waiters--;
	gmem_unlock_put(g);
	if (!ret)
		memcpy(st, &s, size);
	return ret;
}
