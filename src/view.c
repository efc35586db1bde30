// SPDX-License-Identifier: MIT
/*
 * view.c - host views: mappings of the file where shared pages behave
 * like any MAP_SHARED memory and private pages raise a real SIGBUS.
 *
 * Two mechanisms, chosen per view (numbers: bench/bench_flip.c):
 *
 *  vma mode   A plain MAP_SHARED mapping of the backing memfd.  A private
 *             run is replaced by a MAP_FIXED mapping of hole_fd, an empty
 *             memfd sealed against growing, so every access is past its
 *             end: the kernel's own SIGBUS (EFAULT from system calls).
 *             Shared pages fault in lazily, so a mostly shared view costs
 *             nothing up front.  Each private island costs two VMAs.
 *
 *  uffd mode  The mapping is registered with userfaultfd in missing and
 *             minor mode with UFFD_FEATURE_SIGBUS: every fault on a page
 *             without a page table entry raises SIGBUS.  Shared pages are
 *             kept mapped (fallocate + UFFDIO_CONTINUE), private pages
 *             are zapped with MADV_DONTNEED (the page cache keeps their
 *             contents).  No VMA per island and the cheapest flip, but
 *             every shared page of the view is allocated and mapped.
 *
 * A view starts in uffd mode when at most a quarter of its pages are
 * shared, in vma mode otherwise; a vma view past GMEM_VIEW_MAX_ISLANDS
 * private islands switches to uffd mode.  The switch builds the new view
 * at a temporary address and mremap()s it over the old one, which is
 * atomic for faults; EVENT_REMAP keeps the registration across the move
 * and the mremap waits until the event is read, so a short-lived thread
 * reads it.
 *
 * Fork: every view is MADV_DONTFORK before it becomes accessible, and
 * shared pages mapped back in vma mode are prepared at a temporary
 * address, marked DONTFORK there and moved in, so a child never inherits
 * a mapping that could later show a private page.  Holes may be
 * inherited: they only ever raise SIGBUS.
 *
 * Locking: every function here runs with g->lock held (see internal.h).
 * A view's page table entries change only here, under that lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "internal.h"

static inline char *page_addr(const struct gmem *g, const struct gmem_view *v,
			      uint64_t page)
{
	return v->addr + off_of(g, page - v->first);
}

/* The file's userfaultfd, opened on first use; -errno if unavailable. */
static int uffd_get(struct gmem *g)
{
	if (g->uffd < 0 && !g->uffd_err) {
		/* guest_memfd mappings cannot be registered (Linux 6.18). */
		int fd = g->backend == GMEM_BACKEND_KVM ? -EOPNOTSUPP :
			 sys_uffd_open();

		if (fd < 0)
			g->uffd_err = fd;
		else
			g->uffd = fd;
	}
	return g->uffd >= 0 ? g->uffd : g->uffd_err;
}

static int hole_get(struct gmem *g)
{
	if (g->hole_fd < 0) {
		int fd = sys_memfd("gmem-hole", MFD_CLOEXEC | MFD_ALLOW_SEALING);

		if (fd < 0)
			return fd;
		int ret = sys_seal(fd, F_SEAL_GROW | F_SEAL_SHRINK |
				   F_SEAL_SEAL);
		if (ret) {
			sys_close(fd);
			return ret;
		}
		g->hole_fd = fd;
	}
	return g->hole_fd;
}

/* Allocate [start, end) and map it into a uffd-mode mapping at base. */
static int uffd_fill(struct gmem *g, char *addr, uint64_t start, uint64_t end)
{
	size_t len = off_of(g, end - start);
	int ret = sys_uffd_continue(g->uffd, addr, len);

	if (ret != -EFAULT && ret != -EEXIST)
		return ret;
	/* Some page was never allocated (or was punched): allocate, retry. */
	ret = sys_fallocate(g->fd, FALLOC_FL_KEEP_SIZE, off_of(g, start),
			    off_of(g, end - start));
	if (ret)
		return ret;
	for (uint64_t p = start; p < end; p++) {
		ret = sys_uffd_continue(g->uffd, addr + off_of(g, p - start),
					off_of(g, 1));
		if (ret && ret != -EEXIST)
			return ret;
	}
	return 0;
}

/* Map [start, end) (inside v, none of it poisoned) as shared memory. */
static int map_shared(struct gmem *g, struct gmem_view *v, uint64_t start,
		      uint64_t end)
{
	char *addr = page_addr(g, v, start);
	size_t len = off_of(g, end - start);
	void *tmp;
	int ret;

	if (v->mode == GMEM_VIEW_UFFD)
		return uffd_fill(g, addr, start, end);
	ret = gmem_map_file(g, len, v->prot, off_of(g, start), &tmp);
	if (ret)
		return ret;
	ret = sys_mremap_fixed(tmp, len, addr);
	if (ret)
		sys_munmap(tmp, len);
	return ret;
}

/*
 * Map the shared pages of [start, end) in v, skipping poisoned pages:
 * those stay holes (failure.c).  Callers pass shared pages only.
 */
static bool clip(const struct gmem_view *v, uint64_t *start, uint64_t *end);

static int map_shared_pieces(struct gmem *g, struct gmem_view *v,
			     uint64_t start, uint64_t end)
{
	uint64_t p, bad;
	int ret;

	if (g->hugetlb)		/* whole regions only: huge.c */
		return gmem_huge_view_sync(g, v, start, end, 0, false);

	for (p = start; p < end; p = bad + 1) {
		bad = g->poison.nr ? gmem_pins_first(&g->poison, p, end) : end;
		if (bad > p) {
			ret = map_shared(g, v, p, bad);
			if (ret)
				return ret;
		}
		if (bad == end)
			break;
	}
	return 0;
}

/* Make [start, end) (inside v) private (val 1) or shared (val 0). */
static int apply(struct gmem *g, struct gmem_view *v, uint64_t start,
		 uint64_t end, unsigned int val)
{
	char *addr = page_addr(g, v, start);
	size_t len = off_of(g, end - start);

	if (!val)
		return map_shared_pieces(g, v, start, end);
	if (v->mode == GMEM_VIEW_UFFD)
		return sys_madvise(addr, len, MADV_DONTNEED);
	return gmem_view_hole(g, v, start, end);
}

/* Map the empty sealed memfd over [start, end) of vma view v: SIGBUS. */
int gmem_view_hole(struct gmem *g, struct gmem_view *v, uint64_t start,
		   uint64_t end)
{
	int fd = hole_get(g);
	void *tmp;

	if (fd < 0)
		return fd;
	return sys_mmap(page_addr(g, v, start), off_of(g, end - start),
			v->prot, MAP_SHARED | MAP_FIXED, fd, off_of(g, start),
			&tmp);
}

/* Clip [*start, *end) to the pages v maps; false if nothing is left. */
static bool clip(const struct gmem_view *v, uint64_t *start, uint64_t *end)
{
	if (*start < v->first)
		*start = v->first;
	if (*end > v->first + v->npages)
		*end = v->first + v->npages;
	return *start < *end;
}

/*
 * Apply to v every run of [start, end) whose state is not val yet (the
 * state tree still holds the old values while a conversion runs).
 * stop bounds the walk; undo walks the same runs back to their state.
 */
static int walk(struct gmem *g, struct gmem_view *v, uint64_t start,
		uint64_t end, unsigned int val, bool undo, uint64_t *stop)
{
	uint64_t p, run;
	unsigned int cur;
	int ret;

	if (!clip(v, &start, &end))
		return 0;
	if (*stop < end)
		end = *stop;
	for (p = start; p < end; p = run) {
		run = gmem_state_run(&g->state, p, end, &cur);
		if (cur == val)
			continue;
		ret = apply(g, v, p, run, undo ? cur : val);
		if (ret) {
			*stop = p;
			return ret;
		}
	}
	return 0;
}

/*
 * Private islands of v that start inside [start, end], clipped to v: a
 * page starts one when it is private and the page before it is shared or
 * outside v.  A conversion of [start, end) can only change starts there.
 */
static uint64_t island_starts(struct gmem *g, const struct gmem_view *v,
			      uint64_t start, uint64_t end)
{
	uint64_t p, run, n = 0, vend = v->first + v->npages;
	unsigned int cur;

	if (start < v->first)
		start = v->first;
	if (end >= vend)
		end = vend - 1;
	if (!v->npages || start > end)
		return 0;
	for (p = start; p <= end; p = run) {
		run = gmem_state_run(&g->state, p, end + 1, &cur);
		if (!cur)
			continue;
		n += p != start || p == v->first ||
		     !gmem_state_get(&g->state, p - 1);
	}
	return n;
}

/*
 * Islands only decide the vma -> uffd switch: a uffd view never switches
 * back and a hugetlb view never switches, so neither pays for counting.
 */
static bool counts_islands(const struct gmem *g, const struct gmem_view *v)
{
	return v->mode == GMEM_VIEW_VMA && !g->hugetlb;
}

int gmem_view_convert(struct gmem *g, struct gmem_view *v, uint64_t start,
		      uint64_t end, unsigned int val)
{
	uint64_t stop = UINT64_MAX;
	int ret;

	if (g->hugetlb) {
		ret = gmem_huge_view_sync(g, v, start, end, val, false);
		if (ret)
			gmem_huge_view_sync(g, v, start, end, val, true);
		return ret;
	}
	ret = walk(g, v, start, end, val, false, &stop);

	if (counts_islands(g, v))
		v->starts_before = island_starts(g, v, start, end);
	if (ret) {
		uint64_t undo_stop = stop;

		walk(g, v, start, end, val, true, &undo_stop);
	}
	return ret;
}

void gmem_view_undo(struct gmem *g, struct gmem_view *v, uint64_t start,
		    uint64_t end, unsigned int val)
{
	uint64_t stop = UINT64_MAX;

	if (g->hugetlb) {
		gmem_huge_view_sync(g, v, start, end, val, true);
		return;
	}
	walk(g, v, start, end, val, true, &stop);
}

/* Pages of value val inside v. */
static uint64_t count_pages(struct gmem *g, const struct gmem_view *v,
			    unsigned int val)
{
	uint64_t p, run, n = 0, end = v->first + v->npages;
	unsigned int cur;

	for (p = v->first; p < end; p = run) {
		run = gmem_state_run(&g->state, p, end, &cur);
		if (cur == val)
			n += run - p;
	}
	return n;
}

/* Bring every page of [start, end) of a uffd mapping at base up to date. */
static int uffd_populate(struct gmem *g, const struct gmem_view *v, char *base,
			 uint64_t start, uint64_t end)
{
	uint64_t p, run;
	unsigned int cur;
	int ret;

	for (p = start; p < end; p = run) {
		run = gmem_state_run(&g->state, p, end, &cur);
		if (cur)
			continue;
		for (uint64_t q = p, bad; q < run; q = bad + 1) {
			bad = g->poison.nr ?
			      gmem_pins_first(&g->poison, q, run) : run;
			if (bad > q) {
				ret = uffd_fill(g, base + off_of(g, q - v->first),
						q, bad);
				if (ret)
					return ret;
			}
			if (bad == run)
				break;
		}
	}
	return 0;
}

struct remap_reader {
	int uffd;
	int ret;
};

static void *remap_reader_fn(void *arg)
{
	struct remap_reader *r = arg;

	r->ret = sys_uffd_read_event(r->uffd);
	return NULL;
}

/*
 * Build a uffd-mode copy of v at a temporary address, then move it over
 * v in one mremap().  On failure v is left as it was.
 */
static int switch_to_uffd(struct gmem *g, struct gmem_view *v)
{
	struct remap_reader r;
	pthread_t thread;
	void *tmp;
	int ret, uffd = uffd_get(g);

	if (uffd < 0)
		return uffd;
	ret = gmem_map_file(g, v->len, v->prot, off_of(g, v->first), &tmp);
	if (ret)
		return ret;
	ret = sys_uffd_register(uffd, tmp, v->len);
	if (!ret)
		ret = uffd_populate(g, v, tmp, v->first, v->first + v->npages);
	if (ret)
		goto err_tmp;
	r = (struct remap_reader){ .uffd = uffd };
	ret = -pthread_create(&thread, NULL, remap_reader_fn, &r);
	if (ret)
		goto err_tmp;
	ret = sys_mremap_fixed(tmp, v->len, v->addr);
	if (ret) {
		/* No event is coming: the reader gives up after its timeout. */
		pthread_join(thread, NULL);
		goto err_tmp;
	}
	pthread_join(thread, NULL);
	v->mode = GMEM_VIEW_UFFD;
	return 0;

err_tmp:
	sys_munmap(tmp, v->len);
	return ret;
}

/*
 * Does v belong in uffd mode?  When few of its pages are shared (cheap
 * to keep mapped), or when it has too many islands for VMAs: see the top
 * comment.  Only asked while the view is, or is about to be, vma mode.
 */
static bool wants_uffd(struct gmem *g, const struct gmem_view *v)
{
	uint64_t shared;

	if (g->hugetlb)		/* regions of 1 GiB: few VMAs at most */
		return false;
	if (v->islands > GMEM_VIEW_HARD_ISLANDS)
		return true;
	if (g->huge_shift)	/* uffd maps 4 KiB PTEs: keep PMDs */
		return false;
	shared = count_pages(g, v, 0);
	if (off_of(g, shared) > GMEM_VIEW_UFFD_MAX_SHARED)
		return false;
	return v->islands > GMEM_VIEW_MAX_ISLANDS || shared * 4 <= v->npages;
}

static void update_mode(struct gmem *g, struct gmem_view *v)
{
	if (v->mode != GMEM_VIEW_VMA || v->islands <= GMEM_VIEW_MAX_ISLANDS)
		return;
	if (wants_uffd(g, v))
		switch_to_uffd(g, v);	/* on failure: stays vma, still safe */
}

void gmem_view_commit(struct gmem *g, struct gmem_view *v, uint64_t start,
		      uint64_t end)
{
	if (!counts_islands(g, v))
		return;
	v->islands += island_starts(g, v, start, end) - v->starts_before;
	update_mode(g, v);
}

int gmem_view_map_shared(struct gmem *g, struct gmem_view *v, uint64_t start,
			 uint64_t end)
{
	if (!clip(v, &start, &end))
		return 0;
	return map_shared_pieces(g, v, start, end);
}

int gmem_view_refill(struct gmem *g, struct gmem_view *v, uint64_t start,
		     uint64_t end)
{
	if (v->mode != GMEM_VIEW_UFFD || !clip(v, &start, &end))
		return 0;
	return uffd_populate(g, v, v->addr, start, end);
}

int gmem_view_create(struct gmem *g, uint64_t offset, size_t len, int prot,
		     bool internal, struct gmem_view **out)
{
	struct gmem_view *v = calloc(1, sizeof(*v));
	uint64_t stop = UINT64_MAX;
	void *addr;
	int ret;

	if (!v)
		return -ENOMEM;
	v->len = (len + off_of(g, 1) - 1) & ~(off_of(g, 1) - 1);
	v->first = page_of(g, offset);
	v->npages = v->first < g->npages ? g->npages - v->first : 0;
	if (v->npages > page_of(g, v->len))
		v->npages = page_of(g, v->len);
	v->prot = prot;
	v->internal = internal;
	v->mode = GMEM_VIEW_VMA;
	v->islands = island_starts(g, v, v->first, v->first + v->npages);
	if (wants_uffd(g, v) && uffd_get(g) >= 0)
		v->mode = GMEM_VIEW_UFFD;

	ret = gmem_map_file(g, v->len, prot, offset, &addr);
	if (ret)
		goto err_free;
	v->addr = addr;
	if (v->mode == GMEM_VIEW_UFFD) {
		ret = sys_uffd_register(g->uffd, addr, v->len);
		if (!ret)
			ret = uffd_populate(g, v, v->addr, v->first,
					    v->first + v->npages);
	} else if (g->hugetlb) {
		/* Holes over every region that is not all shared. */
		uint64_t rp = 1ULL << (g->huge_shift - g->page_shift);

		for (uint64_t r = v->first; !ret && r < v->first + v->npages;
		     r += rp) {
			unsigned int cur;

			if (gmem_state_run(&g->state, r, r + rp, &cur) !=
			    r + rp || cur || (g->poison.nr &&
			    gmem_pins_first(&g->poison, r, r + rp) < r + rp))
				ret = gmem_view_hole(g, v, r, r + rp);
		}
	} else {
		/* Holes over every private run, as a to-private would. */
		ret = walk(g, v, v->first, v->first + v->npages, 0, true,
			   &stop);
		/* And over poisoned pages, whatever their state. */
		for (size_t i = 0; !ret && i < g->poison.nr; i++) {
			uint64_t s = g->poison.ext[i].start;
			uint64_t e = g->poison.ext[i].end;

			if (clip(v, &s, &e))
				ret = apply(g, v, s, e, 1);
		}
	}
	if (ret)
		goto err_unmap;
	v->next = g->views;
	g->views = v;
	*out = v;
	return 0;

err_unmap:
	sys_munmap(addr, v->len);
err_free:
	free(v);
	return ret;
}

void gmem_view_destroy(struct gmem *g, struct gmem_view *v)
{
	struct gmem_view **pp;

	for (pp = &g->views; *pp; pp = &(*pp)->next) {
		if (*pp == v) {
			*pp = v->next;
			break;
		}
	}
	sys_munmap(v->addr, v->len);
	free(v);
}

GMEM_EXPORT int gmem_mmap(struct gmem *g, uint64_t offset, size_t len,
			  int prot, void **addr)
{
	struct gmem_view *v;
	int ret;

	if (!g || !addr)
		return -EINVAL;
	if (!(g->flags & GMEM_FLAG_MMAP))
		return -ENODEV;
	if (!len || (offset & (off_of(g, 1) - 1)) ||
	    offset + len < offset || len > SIZE_MAX - off_of(g, 1) ||
	    (prot & ~(PROT_READ | PROT_WRITE)) || offset > INT64_MAX)
		return -EINVAL;
	/* A hugetlb page cannot be mapped in part: see huge.c. */
	if (g->hugetlb && ((offset | len) & ((1ULL << g->huge_shift) - 1)))
		return -EINVAL;
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	ret = gmem_view_create(g, offset, len, prot, false, &v);
	if (!ret) {
		g->nr_user_views++;
		*addr = v->addr;
	}
	gmem_unlock_put(g);
	return ret;
}

/* Allowed after gmem_close(): a view keeps the file alive until here. */
GMEM_EXPORT int gmem_munmap(struct gmem *g, void *addr, size_t len)
{
	struct gmem_view *v;
	int ret = -EINVAL;

	if (!addr || !len)
		return -EINVAL;
	ret = gmem_lock(g);
	if (ret)
		return ret;
	ret = -EINVAL;
	for (v = g->views; v; v = v->next) {
		if (v->internal || v->addr != addr ||
		    v->len != ((len + off_of(g, 1) - 1) & ~(off_of(g, 1) - 1)))
			continue;
		gmem_view_destroy(g, v);
		g->nr_user_views--;
		ret = 0;
		break;
	}
	gmem_unlock_put(g);
	return ret;
}
