// SPDX-License-Identifier: MIT
/*
 * rehome.c - pages the kernel may still reference from when they were
 * shared.
 *
 * A shared page in a host view can be handed to the kernel by any system
 * call given its address: vmsplice() into a pipe, O_DIRECT, io_uring
 * fixed buffers, RDMA registration (get_user_pages(), without
 * gmem_pin()).  Such a reference outlives the mapping, so once the page
 * is private it could read what the guest writes there, or write into
 * it.  The kernel's in-place conversion refuses the conversion while the
 * page's refcount is raised (-EAGAIN); userspace cannot see refcounts
 * (Linux 6.18: no interface, privileged or not, gives them), so libgmem
 * instead makes sure the private contents live in a page no such
 * reference can reach: it re-homes the page (backing.h: punch it out of
 * the file, which leaves old references with the old page, and write
 * the contents into a fresh one).
 *
 * Re-homing costs a free, an allocation and two copies (about 10 us per
 * 4 KiB page on the development machine, against 1.8 us for a whole
 * flip), so it is done only where needed, and as late as is safe:
 *
 *  - Only after some host path existed (g->host_exposed: a view, a pin,
 *    a listener, a shared get_pfn); before that no reference can exist.
 *  - memfd backend, 4 KiB and THP: a page that becomes private is
 *    parked: its contents are copied into a snapshot (park.h), and it is
 *    re-homed only when the guest side first uses it privately
 *    (gmem_get_pfn() private, gmem_populate()), with the snapshot's
 *    contents.  Until then nothing private is written into it (the guest
 *    side reaches private pages only through those calls), so an old
 *    reference can read nothing that was written while it was private;
 *    and what an old reference writes meanwhile never reaches the
 *    private page (the snapshot wins).  A page that goes back to shared
 *    first just drops its snapshot: the DMA flip pattern costs one 4 KiB
 *    copy.  Large conversions (more than PARK_BATCH pages) and snapshots
 *    past the store's limit are re-homed at once instead.
 *  - KVM backend (6.18): the guest writes private pages through KVM
 *    without asking libgmem, so pages are re-homed at the conversion.
 *    Kernels that convert in place check references themselves.
 *  - hugetlb: a 1 GiB page cannot be punched in part; a region that was
 *    exposed (shown, pinned or handed out while shared) is given a fresh
 *    1 GiB page (a new file) when a page of it becomes private.
 *  - THP: a 4 KiB page of a referenced 2 MiB folio cannot be detached
 *    (the kernel cannot split the folio); it stays parked (BUSY) and
 *    private use of it fails with -EAGAIN until the reference is gone,
 *    as the kernel's conversion would.
 *
 * The copy that takes a snapshot or re-homes a page runs after the views
 * guard it: a write through an old reference in the microseconds of that
 * copy may be carried into the private page; none after it is.
 *
 * Locking: g->lock held (internal.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define PARK_LIMIT	512	/* snapshots per file: 2 MiB of 4 KiB pages */
#define PARK_BATCH	64	/* larger conversions re-home at once */

void gmem_rehome_init(struct gmem *g)
{
	gmem_park_init(&g->park, PARK_LIMIT, (size_t)off_of(g, 1));
}

void gmem_rehome_destroy(struct gmem *g)
{
	gmem_park_destroy(&g->park);
	gmem_extents_destroy(&g->pending);
	free(g->region_exposed);
	g->region_exposed = NULL;
}

void gmem_expose(struct gmem *g, uint64_t start, uint64_t end)
{
	uint64_t rp;

	g->host_exposed = true;
	if (!g->hugetlb || !g->region_exposed || start >= end)
		return;
	rp = gmem_backing_region_pages(&g->b);
	for (uint64_t r = start / rp; r <= (end - 1) / rp; r++)
		g->region_exposed[r] = 1;
}

/* NULL stands for a page of zeros (a ZERO snapshot). */
static bool all_zero(const void *buf, size_t len)
{
	const uint64_t *w = buf;

	if (!buf)
		return true;
	for (size_t i = 0; i < len / 8; i++)
		if (w[i])
			return false;
	return true;
}

/* Mark [start, end) pending (a set: one count per page). */
static void set_pending(struct gmem *g, uint64_t start, uint64_t end)
{
	uint64_t p = start, e;
	bool in;

	while (p < end) {
		e = gmem_extents_run(&g->pending, p, end, &in);
		if (!in && gmem_extents_add(&g->pending, p, e))
			return;
		p = e;
	}
}

static void clear_pending(struct gmem *g, uint64_t start, uint64_t end)
{
	uint64_t p = start, e;
	bool in;

	while (g->pending.nr && p < end) {
		e = gmem_extents_run(&g->pending, p, end, &in);
		if (in && gmem_extents_sub(&g->pending, p, e))
			return;
		p = e;
	}
}

/* Re-home one parked page with its snapshot's contents. */
static int rehome_slot(struct gmem *g, struct gmem_park_slot *s)
{
	uint64_t p = s->page, bad;
	int ret;

	if (!(s->flags & GMEM_PARK_DETACHED)) {
		ret = gmem_backing_punch(&g->b, p, p + 1);
		if (ret)
			return ret;
		if (gmem_backing_detached(&g->b, p, p + 1, &bad) == -EAGAIN) {
			/* Zeroed in place: put the contents back, stay. */
			ret = s->buf ? gmem_backing_write(&g->b, p, s->buf, 1)
				     : 0;
			gmem_park_set_flags(&g->park, s, ret ?
					    GMEM_PARK_DETACHED :
					    GMEM_PARK_BUSY);
			g->rehome_busy++;
			return -EAGAIN;
		}
	}
	ret = s->buf ? gmem_backing_write(&g->b, p, s->buf, 1) : 0;
	if (ret) {
		gmem_park_set_flags(&g->park, s, GMEM_PARK_DETACHED);
		return ret;
	}
	gmem_park_drop(&g->park, s);
	g->rehomed++;
	return 0;
}

#define CHUNK	64

/*
 * Pages [q, q + n) (n <= 64) were just punched; bufs hold their contents
 * (NULL: zeros).  Put them in fresh pages, or keep them parked where
 * that is not possible (the table has room: the caller made it).  Takes
 * the buffers over.
 *
 * THP (or a 4 KiB file given huge folios): a page of a folio the kernel
 * holds stays in the file, zeroed by the punch.  Which did is asked
 * before anything is written back (after, every page is in the file
 * again): one mincore() for the run, more only where pages stayed.
 * Those get their contents back in place and stay parked, BUSY.
 */
static void keep_pages(struct gmem *g, uint64_t q, void **bufs, uint64_t n)
{
	static char kept_mark;	/* a buffer now owned by a DETACHED slot */
	void *kept = &kept_mark;
	size_t ps = (size_t)off_of(g, 1);
	uint64_t i, j, bad, stayed = 0;
	int ret;

	for (i = 0; i < n; i = j + 1) {
		ret = gmem_backing_detached(&g->b, q + i, q + n, &bad);
		if (!ret)
			break;
		/* A failed mincore(): this page may have stayed. */
		j = ret == -EAGAIN ? bad - q : i;
		stayed |= 1ULL << j;
	}
	for (i = 0; i < n; i = j) {
		bool zero = all_zero(bufs[i], ps);

		/* A run of non-zero pages, written back in one call. */
		for (j = i + 1; !zero && j < n && !all_zero(bufs[j], ps); j++)
			;
		if (zero) {	/* a hole reads as zeros: nothing to write */
			gmem_park_buf_free(&g->park, bufs[i]);
			bufs[i] = NULL;
			continue;
		}
		if (!gmem_backing_writev(&g->b, q + i, bufs + i, j - i))
			continue;
		for (uint64_t k = i; k < j; k++) {
			if (gmem_backing_write(&g->b, q + k, bufs[k], 1)) {
				gmem_park_add(&g->park, q + k, bufs[k],
					      GMEM_PARK_DETACHED);
				bufs[k] = kept;
			}
		}
	}
	for (i = 0; i < n; i++) {
		if (bufs[i] == kept)
			continue;
		if (stayed & (1ULL << i)) {
			gmem_park_add(&g->park, q + i, bufs[i],
				      GMEM_PARK_BUSY |
				      (bufs[i] ? 0 : GMEM_PARK_ZERO));
			g->rehome_busy++;
			continue;
		}
		gmem_park_buf_free(&g->park, bufs[i]);
		g->rehomed++;
	}
}

/*
 * Re-home the EVICT oldest ordinary snapshots at once, in runs of
 * adjacent pages: one punch, one write and one mincore() per run.
 */
#define EVICT	32

static int cmp_page(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int evict(struct gmem *g)
{
	struct gmem_park *pk = &g->park;
	uint64_t page[EVICT];
	void *buf[EVICT];
	struct gmem_park_slot *s;
	size_t n = 0, i, j;
	int ret = 0;

	while (n < EVICT && (s = gmem_park_oldest(pk)))
		page[n++] = s->page;
	if (!n)
		return -ENOSPC;
	qsort(page, n, sizeof(page[0]), cmp_page);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && page[j] == page[j - 1] + 1; j++)
			;
		ret = gmem_backing_punch(&g->b, page[i], page[j - 1] + 1);
		if (ret) {
			/* Nothing moved: parked as they were, evictable. */
			for (size_t k = i; k < n; k++)
				gmem_park_requeue(pk, gmem_park_find(pk,
								     page[k]));
			return ret;
		}
		/* The contents move to keep_pages(), the slots go. */
		for (size_t k = i; k < j; k++) {
			s = gmem_park_find(pk, page[k]);
			buf[k - i] = s->buf;
			s->buf = NULL;
			gmem_park_drop(pk, s);
		}
		keep_pages(g, page[i], buf, j - i);
	}
	return 0;
}

/* Room for one more ordinary snapshot: re-home the oldest if needed. */
static int make_room(struct gmem *g)
{
	struct gmem_park *pk = &g->park;

	int ret;

	/* keep_pages() keeps a page it cannot move parked: room anyway. */
	while (pk->nr - pk->nr_extra >= pk->limit)
		if ((ret = evict(g)))
			return ret;
	return gmem_park_reserve(pk, 1);
}

/*
 * Is shared page p shown by a UFFD-mode view, so allocated (and in the
 * window)?  Its state is known: only the view's range and poison count.
 */
static bool uffd_shown(struct gmem *g, uint64_t p)
{
	for (struct gmem_view *v = g->views; v; v = v->next)
		if (v->mode == GMEM_VIEW_UFFD && !v->pin && p >= v->first &&
		    p < v->first + v->npages && p < g->npages)
			return !gmem_poisoned(g, p);
	return false;
}

/* Take a snapshot of page p (shared until now, guarded) and park it. */
static int park_page(struct gmem *g, uint64_t p)
{
	size_t ps = (size_t)off_of(g, 1);
	void *buf;
	int ret = make_room(g);

	if (ret)
		return ret;
	buf = gmem_park_buf(&g->park);
	if (!buf)
		return -ENOMEM;
	if (uffd_shown(g, p) && !gmem_backing_window(&g->b))
		memcpy(buf, g->b.window + off_of(g, p), ps);	/* resident */
	else if ((ret = gmem_backing_read(&g->b, p, buf, 1)))
		goto err;
	if (all_zero(buf, ps)) {
		gmem_park_buf_free(&g->park, buf);
		buf = NULL;
	}
	ret = gmem_park_add(&g->park, p, buf, buf ? 0 : GMEM_PARK_ZERO);
	if (!ret)
		return 0;
err:
	gmem_park_buf_free(&g->park, buf);
	return ret;
}

/*
 * Re-home every allocated page of [start, end) that is shared now (or,
 * with any_state, every one), in chunks: read, punch, write back.  A page
 * whose write-back fails is kept as a DETACHED snapshot, one that cannot
 * be detached (THP) as a BUSY one: no contents are ever lost.
 *
 * Fails only before its first punch (memory for a chunk's copies, or a
 * system call failing): nothing moved, the caller can still undo.  Once
 * a page was punched the conversion must go on (a DETACHED page must not
 * become shared), so a later failure puts the rest in g->pending: those
 * pages are re-homed, from the file, before their first private use.
 */
static int rehome_range(struct gmem *g, uint64_t start, uint64_t end,
			bool any_state)
{
	void *buf[CHUNK];
	uint64_t p = start, rs, re, run, n, seen = 0;
	bool punched = false;
	unsigned int cur;
	int ret = 0;

	while (p < end && !ret) {
		run = gmem_state_run(&g->state, p, end, &cur);
		if (cur && !any_state) {	/* private: not changing */
			p = run;
			continue;
		}
		if (p < seen) {
			rs = p;
			re = seen < run ? seen : run;
		} else if ((ret = gmem_backing_next_data(&g->b, p, run, &rs,
							 &re))) {
			break;
		}
		if (rs >= run) {
			p = run;
			continue;
		}
		/* Data up to re: its chunks need no new lseek() (which walks
		 * the whole data extent: quadratic in the conversion). */
		seen = re;
		n = re - rs < CHUNK ? re - rs : CHUNK;
		ret = gmem_park_reserve(&g->park, (size_t)n);
		if (ret)
			break;
		for (uint64_t i = 0; i < n; i++) {
			buf[i] = gmem_park_buf(&g->park);
			if (!buf[i]) {
				ret = -ENOMEM;
				n = i;
			}
		}
		if (!ret)
			ret = gmem_backing_readv(&g->b, rs, buf, n);
		if (!ret)
			ret = gmem_backing_punch(&g->b, rs, rs + n);
		if (ret) {
			for (uint64_t i = 0; i < n; i++)
				gmem_park_buf_free(&g->park, buf[i]);
			p = rs;
			break;
		}
		punched = true;
		keep_pages(g, rs, buf, n);
		p = rs + n;
	}
	if (!ret || !punched)
		return ret;
	/* Best effort: if even this fails, the rest stays as it is. */
	set_pending(g, p, end);
	return 0;
}

static int rehome_now(struct gmem *g, uint64_t start, uint64_t end)
{
	return rehome_range(g, start, end, false);
}

/* Re-home the pending pages of [start, end), whatever their state. */
static int rehome_pending(struct gmem *g, uint64_t start, uint64_t end)
{
	uint64_t p = start, e;
	bool in;
	int ret;

	while (g->pending.nr && p < end) {
		e = gmem_extents_run(&g->pending, p, end, &in);
		if (in) {
			ret = rehome_range(g, p, e, true);
			if (ret)
				return ret;
			clear_pending(g, p, e);
		}
		p = e;
	}
	return 0;
}

/* Before the views guard [start, end): room for what will be parked. */
int gmem_rehome_prepare(struct gmem *g, uint64_t start, uint64_t end)
{
	if (!g->host_exposed || g->b.kind == GMEM_BACKING_HUGETLB ||
	    (g->b.kind == GMEM_BACKING_KVM && g->b.kvm_inplace))
		return 0;
	return gmem_park_reserve(&g->park, end - start < CHUNK ?
				 (size_t)(end - start) : CHUNK);
}

/* Pages of [start, end) that are shared now (so about to change). */
static uint64_t changing(struct gmem *g, uint64_t start, uint64_t end,
			 uint64_t cap)
{
	uint64_t n = 0, p = start, run;
	unsigned int cur;

	while (p < end && n <= cap) {
		run = gmem_state_run(&g->state, p, end, &cur);
		if (!cur)
			n += run - p;
		p = run;
	}
	return n;
}

int gmem_rehome_to_private(struct gmem *g, uint64_t start, uint64_t end,
			   bool all_shared)
{
	uint64_t p, run, rp;
	unsigned int cur;
	int ret;

	if (!g->host_exposed)
		return 0;
	switch (g->b.kind) {
	case GMEM_BACKING_KVM:
		return g->b.kvm_inplace ? 0 : rehome_now(g, start, end);
	case GMEM_BACKING_HUGETLB:
		rp = gmem_backing_region_pages(&g->b);
		for (uint64_t r = start / rp; r <= (end - 1) / rp; r++) {
			if (!g->region_exposed[r])
				continue;
			ret = gmem_backing_region_swap(&g->b, r);
			if (ret)
				return ret;
			g->region_exposed[r] = 0;
			g->rehomed += rp;
		}
		return 0;
	default:
		break;
	}
	if ((all_shared ? end - start : changing(g, start, end, PARK_BATCH))
	    > PARK_BATCH)
		return rehome_now(g, start, end);
	for (p = start; p < end; p = run) {
		if (all_shared) {
			run = end;
			cur = 0;
		} else {
			run = gmem_state_run(&g->state, p, end, &cur);
		}
		for (uint64_t q = p; !cur && q < run; q++) {
			/* No room for a snapshot: re-home this one now. */
			if (park_page(g, q) && rehome_now(g, q, q + 1))
				return -ENOMEM;
		}
	}
	return 0;
}

int gmem_rehome_to_shared(struct gmem *g, uint64_t start, uint64_t end)
{
	struct gmem_park_slot *s;
	size_t i = 0;
	int ret;

	if (!g->park.nr_detached)
		return 0;
	while ((s = gmem_park_next(&g->park, start, end, &i))) {
		if (s->flags & GMEM_PARK_DETACHED) {
			ret = s->buf ? gmem_backing_write(&g->b, s->page,
							  s->buf, 1) : 0;
			if (ret)
				return ret;
			gmem_park_set_flags(&g->park, s, 0);
		}
		i++;
	}
	return 0;
}

/* Drop the slots of [start, end). */
void gmem_rehome_forget(struct gmem *g, uint64_t start, uint64_t end)
{
	struct gmem_park_slot *s;
	size_t i = 0;

	clear_pending(g, start, end);
	if (!g->park.nr)
		return;
	if (end - start <= 8) {
		for (uint64_t p = start; p < end; p++)
			if ((s = gmem_park_find(&g->park, p)))
				gmem_park_drop(&g->park, s);
		return;
	}
	while ((s = gmem_park_next(&g->park, start, end, &i)))
		gmem_park_drop(&g->park, s);
}

/*
 * The contents of [start, end) are gone (punched, poisoned), but not
 * necessarily the pages: the kernel zeroes a page of a 2 MiB folio it
 * cannot split (a reference holds it) in place, so an old reference
 * still reaches what the file will hold there.  A page that owes a
 * re-home keeps owing it, with zeros for contents: its slot stays, its
 * buffer goes (no allocation, so this cannot fail), and its first
 * private use re-homes it or fails -EAGAIN as before.  A pending page
 * stays pending.  Only a DETACHED slot, whose old page already left the
 * file, is done with.
 */
void gmem_rehome_lost(struct gmem *g, uint64_t start, uint64_t end)
{
	struct gmem_park_slot *s;
	size_t i = 0;

	while (g->park.nr && (s = gmem_park_next(&g->park, start, end, &i))) {
		if (s->flags & GMEM_PARK_DETACHED) {
			gmem_park_drop(&g->park, s);
			continue;
		}
		gmem_park_zero(&g->park, s);
		i++;
	}
}

void gmem_rehome_undo(struct gmem *g, uint64_t start, uint64_t end)
{
	/* A failed to-private punched nothing: every slot is a snapshot. */
	gmem_rehome_forget(g, start, end);
}

void gmem_rehome_to_shared_done(struct gmem *g, uint64_t start, uint64_t end)
{
	/* The file holds every page again (to_shared() wrote the rest). */
	gmem_rehome_forget(g, start, end);
}

bool gmem_rehome_allocated(struct gmem *g, uint64_t start, uint64_t end)
{
	if (!g->park.nr || end - start > 8)
		return false;
	for (uint64_t p = start; p < end; p++) {
		struct gmem_park_slot *s = gmem_park_find(&g->park, p);

		/* A zero snapshot may stand for a hole. */
		if (!s || (s->flags & (GMEM_PARK_DETACHED | GMEM_PARK_ZERO)))
			return false;
	}
	return true;
}

int gmem_rehome_private_use(struct gmem *g, uint64_t start, uint64_t end,
			    uint64_t *bad)
{
	struct gmem_park_slot *s;
	size_t i = 0;
	int ret;

	ret = rehome_pending(g, start, end);
	if (ret) {
		*bad = start;
		return ret;
	}
	if (!g->park.nr)
		return 0;
	if (end - start <= 8) {
		for (uint64_t p = start; p < end; p++) {
			s = gmem_park_find(&g->park, p);
			ret = s ? rehome_slot(g, s) : 0;
			if (ret) {
				*bad = p;
				return ret;
			}
		}
		return 0;
	}
	while ((s = gmem_park_next(&g->park, start, end, &i))) {
		uint64_t p = s->page;

		ret = rehome_slot(g, s);
		if (ret) {
			*bad = p;
			return ret;
		}
	}
	return 0;
}

int gmem_rehome_retry(struct gmem *g)
{
	struct gmem_park_slot *s;
	size_t i = 0;
	int ret = 0;

	/* KVM's guest needs no call to use a page: re-home at once. */
	if (g->b.kind == GMEM_BACKING_KVM && g->pending.nr)
		rehome_pending(g, 0, g->npages);
	if (!g->park.nr_detached)
		return 0;
	while ((s = gmem_park_next(&g->park, 0, g->npages, &i))) {
		unsigned int cur = gmem_state_get(&g->state, s->page);

		/* A private detached page waits for its private use. */
		if ((s->flags & GMEM_PARK_DETACHED) && !cur) {
			ret = s->buf ? gmem_backing_write(&g->b, s->page,
							  s->buf, 1) : 0;
			if (ret)
				return ret;
			gmem_park_drop(&g->park, s);
			continue;
		}
		i++;
	}
	return ret;
}
