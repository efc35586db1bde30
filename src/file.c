// SPDX-License-Identifier: MIT
/*
 * file.c - the guest memory file: creation, lifetime, allocation and
 * punch-hole, populate, stats.
 *
 * Lifetime: a struct gmem is freed when the caller has closed it and no
 * host view, pin, binding, listener or waiting thread holds it any more;
 * whichever of gmem_close(), gmem_munmap(), gmem_unpin(), gmem_unbind(),
 * gmem_listener_unregister() or a waiter leaves last frees it, from
 * gmem_unlock_put().  After gmem_close() only those releases are
 * accepted; everything else returns -EBADF while the object still exists.
 *
 * Locking: g->lock, documented in internal.h, guards everything here but
 * the fields fixed at creation (size, flags, page_shift, npages, fd).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define GMEM_HUGE_BITS	(GMEM_HUGE_MASK << GMEM_HUGE_SHIFT)
#define GMEM_ALL_FLAGS	(GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED | \
			 GMEM_FLAG_HUGEPAGE | GMEM_HUGE_BITS)

/* [offset, offset + len) is non-empty, page aligned and inside the file. */
bool gmem_range_ok(const struct gmem *g, uint64_t offset, uint64_t len)
{
	uint64_t mask = off_of(g, 1) - 1;

	return len && !(offset & mask) && !(len & mask) &&
	       offset + len > offset && offset + len <= g->size;
}

/* Lock g: 0, or -EINVAL (NULL) / -EDEADLK (from one of g's callbacks). */
int gmem_lock(struct gmem *g)
{
	if (!g)
		return -EINVAL;
	if (atomic_load(&g->cb_thread) == (unsigned long)pthread_self())
		return -EDEADLK;
	pthread_mutex_lock(&g->lock);
	return 0;
}

/* Lock g if it is open: 0, or as gmem_lock(), or -EBADF (closed). */
int gmem_lock_live(struct gmem *g)
{
	int ret = gmem_lock(g);

	if (ret)
		return ret;
	if (g->closed) {
		pthread_mutex_unlock(&g->lock);
		return -EBADF;
	}
	return 0;
}

static void gmem_destroy(struct gmem *g)
{
	while (g->views)
		gmem_view_destroy(g, g->views);
	gmem_bindings_destroy(g);
	gmem_listeners_destroy(g);
	gmem_pins_destroy(&g->poison);
	if (g->uffd >= 0)
		sys_close(g->uffd);
	if (g->hole_fd >= 0)
		sys_close(g->hole_fd);
	sys_close(g->fd);
	gmem_kvm_close(g);
	gmem_state_destroy(&g->state);
	gmem_pins_destroy(&g->pins);
	gmem_pins_destroy(&g->user_pins);
	pthread_cond_destroy(&g->pin_cond);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

/* Unlock g, freeing it if this was the last holder of a closed file. */
void gmem_unlock_put(struct gmem *g)
{
	bool last = g->closed && !g->nr_user_views && !g->pins.nr &&
		    !g->nr_waiters && !g->bindings && !g->listeners;

	pthread_mutex_unlock(&g->lock);
	if (last)
		gmem_destroy(g);
}

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

/*
 * A sealed memfd of the file's size: fixed, like guest_memfd's.  hugetlb
 * pages are reserved now, so a short pool fails here (-ENOMEM), not at
 * some later fault.
 */
int gmem_memfd_backing(struct gmem *g, const char *name, unsigned int flags)
{
	int ret;

	g->fd = sys_memfd(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | flags);
	if (g->fd < 0)
		return g->fd;
	ret = sys_ftruncate(g->fd, g->size);
	if (!ret && g->hugetlb) {
		ret = sys_fallocate(g->fd, 0, 0, g->size);
		if (ret == -ENOSPC)
			ret = -ENOMEM;
	}
	if (!ret)
		ret = sys_seal(g->fd, F_SEAL_GROW | F_SEAL_SHRINK |
			       F_SEAL_SEAL);
	if (ret)
		sys_close(g->fd);
	return ret;
}

GMEM_EXPORT int gmem_create(const struct gmem_create_args *args,
			    struct gmem **out)
{
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
	g->page_shift = (unsigned int)__builtin_ctzl(
				(unsigned long)sysconf(_SC_PAGESIZE));
	g->npages = page_of(g, g->size);
	g->hole_fd = -1;
	g->uffd = -1;
	gmem_pins_init(&g->pins);
	gmem_pins_init(&g->user_pins);

	g->backend = args->backend;
	g->vm_fd = g->kvm_fd = -1;
	init_val = args->flags & GMEM_FLAG_INIT_SHARED ? 0 : 1;
	ret = gmem_state_init(&g->state, g->npages, init_val);
	if (ret)
		goto err_free;
	gmem_huge_validate(args->flags, args->size, &g->huge_shift);
	if (g->backend == GMEM_BACKEND_KVM) {
		ret = gmem_kvm_create(g, args->vm_fd, init_val);
		if (ret)
			goto err_state;
	} else if (g->huge_shift) {
		ret = gmem_huge_backing(g);
		if (ret)
			goto err_state;
	} else {
		ret = gmem_memfd_backing(g, "gmem", 0);
		if (ret)
			goto err_state;
	}
	ret = -pthread_mutex_init(&g->lock, NULL);
	if (ret)
		goto err_fd;
	ret = -pthread_cond_init(&g->pin_cond, NULL);
	if (ret)
		goto err_lock;
	*out = g;
	return 0;

err_lock:
	pthread_mutex_destroy(&g->lock);
err_fd:
	sys_close(g->fd);
	gmem_kvm_close(g);
err_state:
	gmem_state_destroy(&g->state);
err_free:
	free(g);
	return ret;
}

GMEM_EXPORT void gmem_close(struct gmem *g)
{
	/* NULL, or called from one of g's callbacks: nothing to do. */
	if (gmem_lock(g))
		return;
	if (g->closed) {		/* double close while still held */
		pthread_mutex_unlock(&g->lock);
		return;
	}
	g->closed = true;
	pthread_cond_broadcast(&g->pin_cond);
	if (g->bindings)
		gmem_bindings_release(g);
	gmem_unlock_put(g);
}

static bool any_uffd_view(const struct gmem *g)
{
	for (const struct gmem_view *v = g->views; v; v = v->next)
		if (v->mode == GMEM_VIEW_UFFD)
			return true;
	return false;
}

/*
 * Punch-hole of [start, end).  A userfaultfd view keeps every shared page
 * mapped, and a punched page would raise SIGBUS there until it is mapped
 * again: a window in which a shared page faults.  Since such a view
 * allocates its shared pages anyway, punching them frees nothing; they
 * are zeroed in place instead (through the guest view), and only private
 * and poisoned pages are punched.
 */
static int punch(struct gmem *g, uint64_t start, uint64_t end)
{
	const int mode = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE;
	uint64_t p, run, q, bad;
	unsigned int cur;
	int ret = 0;

	if (!any_uffd_view(g))
		return sys_fallocate(g->fd, mode, off_of(g, start),
				     off_of(g, end - start));
	for (p = start; p < end && !ret; p = run) {
		run = gmem_state_run(&g->state, p, end, &cur);
		if (cur) {
			ret = sys_fallocate(g->fd, mode, off_of(g, p),
					    off_of(g, run - p));
			continue;
		}
		ret = gmem_guest_view(g);
		for (q = p; q < run && !ret; q = bad + 1) {
			bad = g->poison.nr ?
			      gmem_pins_first(&g->poison, q, run) : run;
			memset(g->guest_view + off_of(g, q), 0,
			       off_of(g, bad - q));
			if (bad < run)
				ret = sys_fallocate(g->fd, mode, off_of(g, bad),
						    off_of(g, 1));
			if (bad == run)
				break;
		}
	}
	return ret;
}

GMEM_EXPORT int gmem_fallocate(struct gmem *g, int mode, uint64_t offset,
			       uint64_t len)
{
	uint64_t mask;
	int ret;

	if (!g)
		return -EINVAL;
	if (!(mode & FALLOC_FL_KEEP_SIZE) ||
	    (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)))
		return -EOPNOTSUPP;
	mask = off_of(g, 1) - 1;
	if (!len || (offset & mask) || (len & mask) || offset + len < offset)
		return -EINVAL;
	if (!(mode & FALLOC_FL_PUNCH_HOLE) && offset + len > g->size)
		return -EINVAL;
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	if (!(mode & FALLOC_FL_PUNCH_HOLE)) {
		ret = sys_fallocate(g->fd, FALLOC_FL_KEEP_SIZE, offset, len);
		/*
		 * guest_memfd zeroes a page at its first fault and counts
		 * nothing before: fault it in, so that it is allocated in
		 * every sense (and mincore(), our "allocated", sees it).
		 */
		if (!ret && g->backend == GMEM_BACKEND_KVM)
			ret = gmem_guest_view(g);
		if (!ret && g->backend == GMEM_BACKEND_KVM)
			ret = sys_madvise(g->guest_view + offset, len,
					  MADV_POPULATE_READ);
	} else if (offset < g->size) {
		if (offset + len > g->size)
			len = g->size - offset;
		gmem_invalidate(g, page_of(g, offset), page_of(g, offset + len),
				GMEM_INVALIDATE_PUNCH);
		ret = punch(g, page_of(g, offset), page_of(g, offset + len));
		if (!ret)
			gmem_poison_clear(g, page_of(g, offset),
					  page_of(g, offset + len));
		/*
		 * The punch zapped the range from every mapping; uffd views
		 * must map their shared pages again (now zero) or they would
		 * raise SIGBUS on shared memory.
		 */
		for (struct gmem_view *v = g->views; v && !ret; v = v->next)
			ret = gmem_view_refill(g, v, page_of(g, offset),
					       page_of(g, offset + len));
	}
	gmem_unlock_put(g);
	return ret;
}

GMEM_EXPORT ssize_t gmem_populate(struct gmem *g, uint64_t offset,
				  const void *src, size_t len)
{
	uint64_t first, last, end;
	unsigned int val;
	size_t done;
	int ret;

	if (!g || !src || !len)
		return -EINVAL;
	if ((offset & (off_of(g, 1) - 1)) || offset + len < offset ||
	    offset + len > g->size)
		return -EINVAL;
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	first = page_of(g, offset);
	last = page_of(g, offset + len - 1);
	end = gmem_state_run(&g->state, first, last + 1, &val);
	if (g->poison.nr)	/* a poisoned page holds nothing */
		end = gmem_pins_first(&g->poison, first, end);
	if (!val || end == first) {
		ret = val ? -EHWPOISON : -EPERM;
		goto out;
	}
	done = end > last ? len : off_of(g, end) - offset;
	if (g->backend == GMEM_BACKEND_MEMFD && !g->hugetlb) {
		ret = sys_pwrite_all(g->fd, src, done, offset);
	} else {	/* guest_memfd, hugetlbfs: no write(), the guest view */
		ret = gmem_guest_view(g);
		if (!ret)
			ret = sys_copy_checked(g->guest_view + offset, src,
					       done);
	}
out:
	gmem_unlock_put(g);
	return ret ? ret : (ssize_t)done;
}

GMEM_EXPORT int gmem_stat(struct gmem *g, struct gmem_stats *st, size_t size)
{
	struct gmem_stats s = { 0 };
	int ret;

	if (!st || size > sizeof(s))
		return -EINVAL;
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	s.size = g->size;
	if (g->backend == GMEM_BACKEND_MEMFD)
		ret = sys_allocated(g->fd, &s.allocated);
	else
		ret = gmem_kvm_allocated(g, &s.allocated);
	s.priv = off_of(g, g->state.nr_private);
	s.shared = g->size - s.priv;
	s.nr_ranges = g->state.nr_ranges;
	s.state_bytes = gmem_state_bytes(&g->state);
	s.conversions = g->conversions;
	s.pages_converted = g->pages_converted;
	s.pins = g->user_pins.nr_calls;
	s.pinned = off_of(g, g->pins.nr_pinned);
	if (!ret)
		ret = gmem_huge_mapped(g, &s.huge_mapped);
	s.splits = g->splits;
	s.merges = g->merges;
	s.bindings = g->nr_bindings;
	s.pfn_refs = g->pfn_refs;
	s.invalidations = g->invalidations;
	s.listeners = g->nr_listeners;
	s.listener_calls = g->listener_calls;
	for (size_t i = 0; i < g->poison.nr; i++)
		s.poisoned += off_of(g, g->poison.ext[i].end -
				     g->poison.ext[i].start);
	for (struct gmem_view *v = g->views; v; v = v->next) {
		if (v->internal)
			continue;
		s.views++;
		s.views_uffd += v->mode == GMEM_VIEW_UFFD;
	}
	gmem_unlock_put(g);
	if (!ret)
		memcpy(st, &s, size);
	return ret;
}
