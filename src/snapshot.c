// SPDX-License-Identifier: MIT
/*
 * snapshot.c - gmem_snapshot_save(): a file written to a stream in the
 * format of snapshot.h (documented in gmem_snapshot_save(3)).
 *
 * What is read, and how.  Only allocated pages are saved: the backing's
 * data runs (gmem_backing_next_data(): SEEK_DATA/SEEK_HOLE on a memfd,
 * the reserved regions of hugetlb, mincore() of guest_memfd), so a hole
 * costs nothing and a sparse 1 TiB file with 1 GiB in use saves about
 * 1 GiB.  Contents, private ones included, are read through the window,
 * the backing's one unguarded mapping that the guest side uses: never
 * through a host view, which keeps private pages out of reach.  Every
 * chunk is copied out first (gmem_backing_read(): pread() on a memfd, a
 * checked copy from the window elsewhere, as a kernel that converts in
 * place may refuse a private page to any mapping), then hashed and
 * written from the copy: stores take no lock, and a record hashed in
 * place could be changed before it is written.
 *
 * Pages whose true contents are not in the file: a parked page (a
 * private page that was shared while the kernel may have referenced it,
 * rehome.c) holds its contents in the park, which wins over the file's
 * page; a DETACHED one is no longer in the file at all and is saved from
 * the park as a page of its own.  A poisoned page holds nothing: it is
 * saved as zeros (so its allocation is kept) and listed in POISON.
 *
 * Incremental saves (GMEM_SAVE_DIRTY, with dirty tracking on, dirty.c):
 * the same stream with kind incremental and, for the pages dirty since
 * the chain's last save, HOLE pairs where they are holes now and DATA
 * where they are allocated.  A tracked save (full or not) reads contents
 * with pread() (gmem_backing_read()), not through the window: a page the
 * save faulted into the window would count as written at the next scan.
 * The dirty pages a save took are given back if it fails, so the next
 * save still has them.
 *
 * Locking: g->lock for the whole save, so state, poison, park and
 * contents are one consistent picture and nothing is punched or
 * converted under the walk.  The progress callback runs with it held,
 * as a callback (gmem_cb_enter()): calls for g from it get -EDEADLK.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "internal.h"
#include "snapshot.h"

#define SAVE_CHUNK	(256U << 10)	/* a DATA record: fits the L2 cache,
					   so write() copies hashed bytes
					   from the cache */
#define PROGRESS_STEP	(16ULL << 20)

struct saver {
	struct gmem *g;
	int fd;
	uint64_t seq;			/* records written */
	uint64_t bytes;			/* to the stream */
	uint64_t data_done, data_total;	/* DATA payload bytes */
	uint64_t next_progress;
	struct gmem_snapshot_save_args *args;
	unsigned char *buf;		/* SNAP_DATA_MAX bytes */
	bool tracked;			/* dirty tracking on: read by pread */
	bool incremental;		/* GMEM_SAVE_DIRTY */
	uint64_t *dirty;		/* incremental: the pages to save */
	uint64_t chain_id, gen;		/* tracked: the CHAIN record */
	struct item *plan;		/* what the stream holds */
	size_t nr, cap;
};

static int put_record(struct saver *s, uint32_t type, uint64_t off,
		      const void *payload, uint64_t len)
{
	unsigned char head[SNAP_RECORD_SIZE];
	struct iovec iov[2] = {
		{ head, sizeof(head) },
		{ (void *)payload, (size_t)len },
	};
	int ret;

	snap_put32(head, type);
	snap_put32(head + 4, 0);
	snap_put64(head + 8, off);
	snap_put64(head + 16, len);
	snap_put64(head + 24, gmem_hash64(payload, (size_t)len,
					  gmem_hash64(head, 24, s->seq)));
	ret = snap_writev_all(s->fd, iov, len ? 2 : 1);
	if (ret)
		return ret;
	s->seq++;
	s->bytes += sizeof(head) + len;
	return 0;
}

static void progress(struct saver *s, bool last)
{
	struct gmem_snapshot_save_args *a = s->args;

	if (!a || !a->progress || (!last && s->data_done < s->next_progress))
		return;
	s->next_progress = s->data_done + PROGRESS_STEP;
	gmem_cb_enter(s->g);
	a->progress(a->opaque, s->data_done, s->data_total);
	gmem_cb_exit(s->g);
}

/* Pairs (start, end) in bytes, SNAP_PAIRS_MAX per record. */
struct pairs {
	struct saver *s;
	uint32_t type;
	unsigned int n;
};

static int pairs_flush(struct pairs *p)
{
	int ret = 0;

	if (p->n)
		ret = put_record(p->s, p->type, 0, p->s->buf,
				 (uint64_t)p->n * 16);
	p->n = 0;
	return ret;
}

static int pairs_add(struct pairs *p, uint64_t start, uint64_t end)
{
	struct gmem *g = p->s->g;

	snap_put64(p->s->buf + p->n * 16, off_of(g, start));
	snap_put64(p->s->buf + p->n * 16 + 8, off_of(g, end));
	return ++p->n == SNAP_PAIRS_MAX ? pairs_flush(p) : 0;
}

static int save_state(struct saver *s)
{
	struct gmem *g = s->g;
	struct pairs p = { s, SNAP_STATE, 0 };
	uint64_t page = 0, run;
	unsigned int val;
	int ret = 0;

	for (; !ret && page < g->npages; page = run) {
		run = gmem_state_run(&g->state, page, g->npages, &val);
		if (val)
			ret = pairs_add(&p, page, run);
	}
	return ret ? ret : pairs_flush(&p);
}

static int save_poison(struct saver *s)
{
	struct gmem *g = s->g;
	struct pairs p = { s, SNAP_POISON, 0 };
	int ret = 0;

	for (size_t i = 0; !ret && i < g->poison.nr; i++)
		ret = pairs_add(&p, g->poison.ext[i].start,
				g->poison.ext[i].end);
	return ret ? ret : pairs_flush(&p);
}

/* A DETACHED parked page that the file does not hold again. */
static bool detached_hole(struct gmem *g, const struct gmem_park_slot *sl)
{
	uint64_t rs, re;

	if (!(sl->flags & GMEM_PARK_DETACHED))
		return false;
	return !gmem_backing_next_data(&g->b, sl->page, sl->page + 1, &rs,
				       &re) && rs != sl->page;
}

/* buf holds pages [p, q) as the file has them: put in the truth. */
static void patch(struct gmem *g, unsigned char *buf, uint64_t p, uint64_t q)
{
	size_t ps = (size_t)off_of(g, 1);

	for (uint64_t i = p; i < q; i++) {
		struct gmem_park_slot *sl = g->park.nr ?
					    gmem_park_find(&g->park, i) : NULL;
		unsigned char *dst = buf + off_of(g, i - p);

		if (gmem_poisoned(g, i) || (sl && !sl->buf))
			memset(dst, 0, ps);
		else if (sl)
			memcpy(dst, sl->buf, ps);
	}
}

static int save_chunk(struct saver *s, uint64_t p, uint64_t q)
{
	struct gmem *g = s->g;
	uint64_t len = off_of(g, q - p);
	int ret;

	/*
	 * Copied out first, always: the checksum must cover the bytes
	 * written, and a store (which takes no lock) between hashing the
	 * page in place and writing it would make a record no restore
	 * accepts.
	 */
	ret = gmem_backing_read(&g->b, p, s->buf, q - p);
	if (ret)
		return ret;
	patch(g, s->buf, p, q);
	ret = put_record(s, SNAP_DATA, off_of(g, p), s->buf, len);
	if (!ret) {
		s->data_done += len;
		progress(s, false);
	}
	return ret;
}

/* The end of the chunk that starts at page p of a run ending at re. */
static uint64_t chunk_end(struct saver *s, uint64_t p, uint64_t re)
{
	struct gmem *g = s->g;
	uint64_t n = page_of(g, SAVE_CHUNK), end;

	/* THP: one record per 2 MiB region, so that restore can tell the
	 * wholly allocated regions and give them huge pages again. */
	if (g->b.kind == GMEM_BACKING_THP)
		n = gmem_backing_region_pages(&g->b);
	end = (p / n + 1) * n;
	return end < re ? end : re;
}

/*
 * The plan: what the stream holds, decided once, before the header.
 * Stores take no lock, so a page can be allocated (a first touch)
 * while the save runs; a save writes exactly what it counted, and a
 * page allocated after the plan was written after it: a tracked one is
 * in the next round (dirty.c sees the allocation).
 */
struct item {
	uint64_t start, end;
	bool hole;			/* HOLE pairs, else DATA */
};

static int plan_add(struct saver *s, uint64_t start, uint64_t end,
		    bool hole)
{
	struct item *it;

	if (!hole)
		s->data_total += off_of(s->g, end - start);
	if (s->nr && s->plan[s->nr - 1].hole == hole &&
	    s->plan[s->nr - 1].end == start) {
		s->plan[s->nr - 1].end = end;	/* one run */
		return 0;
	}
	if (s->nr == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;

		it = realloc(s->plan, cap * sizeof(*it));
		if (!it)
			return -ENOMEM;
		s->plan = it;
		s->cap = cap;
	}
	s->plan[s->nr++] = (struct item){ start, end, hole };
	return 0;
}

static bool bit(const uint64_t *b, uint64_t p)
{
	return b[p >> 6] & (1ULL << (p & 63));
}

/* The end of the run of pages from p (< end) whose bits equal p's. */
static uint64_t bit_run(const uint64_t *b, uint64_t p, uint64_t end)
{
	bool v = bit(b, p);

	for (p++; p < end; p++) {
		if (!(p & 63) && p + 64 <= end &&
		    b[p >> 6] == (v ? ~0ULL : 0)) {
			p += 63;
			continue;
		}
		if (bit(b, p) != v)
			break;
	}
	return p < end ? p : end;
}

/* A page whose contents are in the park alone: saved as data. */
static bool detached(struct gmem *g, uint64_t p)
{
	struct gmem_park_slot *sl;

	if (!g->park.nr_detached || !(sl = gmem_park_find(&g->park, p)))
		return false;
	return detached_hole(g, sl);
}

/* Holes [q, rs) of a dirty run: HOLE, but a detached page is DATA. */
static int plan_holes(struct saver *s, uint64_t q, uint64_t rs)
{
	int ret = 0;

	for (uint64_t h = q; !ret && h < rs; h++)
		ret = plan_add(s, h, h + 1, !detached(s->g, h));
	return ret;
}

/* [lo, hi): its data runs as DATA. */
static int plan_range(struct saver *s, uint64_t lo, uint64_t hi)
{
	struct gmem *g = s->g;
	uint64_t q = lo, rs, re;
	int ret = 0;

	while (!ret && q < hi) {
		ret = gmem_backing_next_data(&g->b, q, hi, &rs, &re);
		if (ret || rs >= hi)
			break;
		ret = plan_add(s, rs, re, false);
		q = re;
	}
	return ret;
}

/*
 * Incremental: the dirty pages, split by the allocation the scan just
 * read (a bitmap: no lseek() per run, each of which walks the whole data
 * run it lands in).  Only a store can allocate without the lock: a page
 * it allocated since is a HOLE now and DATA in the next round, which
 * the scan's allocation diff makes dirty.
 */
static int plan_dirty(struct saver *s)
{
	struct gmem *g = s->g;
	const uint64_t *alloc = gmem_dirty_alloc(g);
	int ret = 0;

	for (uint64_t p = 0, e; !ret && p < g->npages; p = e) {
		e = bit_run(s->dirty, p, g->npages);
		if (!bit(s->dirty, p))
			continue;
		for (uint64_t q = p, f; !ret && q < e; q = f) {
			f = bit_run(alloc, q, e);
			ret = bit(alloc, q) ? plan_add(s, q, f, false) :
					      plan_holes(s, q, f);
		}
	}
	return ret;
}

static int make_plan(struct saver *s)
{
	struct gmem *g = s->g;
	size_t i = 0;
	int ret = 0;

	if (s->dirty)		/* the dirty pages only */
		return plan_dirty(s);
	ret = plan_range(s, 0, g->npages);
	for (struct gmem_park_slot *sl; !ret && g->park.nr_detached &&
	     (sl = gmem_park_next(&g->park, 0, g->npages, &i)); i++)
		if (detached_hole(g, sl))
			ret = plan_add(s, sl->page, sl->page + 1, false);
	return ret;
}

static int save_holes(struct saver *s)
{
	struct pairs pr = { s, SNAP_HOLE, 0 };
	int ret = 0;

	for (size_t i = 0; !ret && i < s->nr; i++)
		if (s->plan[i].hole)
			ret = pairs_add(&pr, s->plan[i].start, s->plan[i].end);
	return ret ? ret : pairs_flush(&pr);
}

static int save_data(struct saver *s)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < s->nr; i++) {
		uint64_t re = s->plan[i].end;

		if (s->plan[i].hole)
			continue;
		for (uint64_t p = s->plan[i].start; !ret && p < re;
		     p = chunk_end(s, p, re))
			ret = save_chunk(s, p, chunk_end(s, p, re));
	}
	return ret;
}

static int put_chain(struct saver *s)
{
	unsigned char c[16];

	snap_put64(c, s->chain_id);
	snap_put64(c + 8, s->gen);
	return put_record(s, SNAP_CHAIN, 0, c, sizeof(c));
}

static int put_header(struct saver *s)
{
	struct gmem *g = s->g;
	unsigned char h[SNAP_HEADER_SIZE] = { 0 };
	struct iovec iov = { h, sizeof(h) };
	int ret;

	memcpy(h + SNAP_H_MAGIC, SNAP_MAGIC, 8);
	snap_put32(h + SNAP_H_VERSION, SNAP_VERSION);
	snap_put32(h + SNAP_H_HSIZE, SNAP_HEADER_SIZE);
	snap_put64(h + SNAP_H_SIZE, g->size);
	snap_put64(h + SNAP_H_FLAGS, g->flags);
	snap_put32(h + SNAP_H_BACKEND, g->backend);
	snap_put32(h + SNAP_H_PAGE_SHIFT, g->page_shift);
	snap_put32(h + SNAP_H_HUGE_SHIFT, g->huge_shift);
	snap_put32(h + SNAP_H_KIND, s->dirty ? SNAP_KIND_INCREMENTAL :
						SNAP_KIND_FULL);
	snap_put64(h + SNAP_H_DATA_BYTES, s->data_total);
	snap_put64(h + SNAP_H_CHECKSUM, gmem_hash64(h, SNAP_H_CHECKSUM, 0));
	ret = snap_writev_all(s->fd, &iov, 1);
	if (!ret)
		s->bytes += sizeof(h);
	return ret;
}

static int put_end(struct saver *s)
{
	struct gmem *g = s->g;
	unsigned char e[sizeof(struct snap_end)];
	uint64_t poisoned = 0;

	for (size_t i = 0; i < g->poison.nr; i++)
		poisoned += g->poison.ext[i].end - g->poison.ext[i].start;
	snap_put64(e, s->seq);
	snap_put64(e + 8, s->data_total);
	snap_put64(e + 16, off_of(g, g->state.nr_private));
	snap_put64(e + 24, off_of(g, poisoned));
	return put_record(s, SNAP_END, 0, e, sizeof(e));
}

/* Tracked saves: take the dirty pages (incremental) and name the chain. */
static int begin_tracked(struct saver *s, bool incremental)
{
	struct gmem *g = s->g;
	uint64_t *bits, id, gen;
	size_t words = snap_words(g->npages);
	int ret;

	if (!g->dirty)
		return incremental ? -ENOENT : 0;
	if (incremental && !gmem_dirty_chain(g, &id, &gen))
		return -ENOENT;
	s->tracked = true;
	s->incremental = incremental;
	ret = gmem_dirty_scan(g);
	if (ret)
		return ret;
	bits = gmem_dirty_bits(g, GMEM_DIRTY_SAVE);
	if (incremental) {
		s->dirty = malloc(words ? words * 8 : 8);
		if (!s->dirty)
			return -ENOMEM;
		memcpy(s->dirty, bits, words * 8);
		s->chain_id = id;
		s->gen = gen + 1;
	} else {
		gmem_dirty_chain_set(g, true, true, 0);
		gmem_dirty_chain(g, &s->chain_id, &s->gen);
	}
	memset(bits, 0, words * 8);
	return 0;
}

/* After the stream: the chain moves on, or the taken pages go back. */
static void end_tracked(struct saver *s, int ret)
{
	struct gmem *g = s->g;
	uint64_t *bits = gmem_dirty_bits(g, GMEM_DIRTY_SAVE);

	if (!s->tracked || !bits)
		return;
	if (!ret) {
		gmem_dirty_chain_set(g, true, false, s->gen);
	} else if (!s->incremental) {
		gmem_dirty_chain_set(g, false, false, 0);
	} else if (s->dirty) {
		for (size_t i = 0; i < snap_words(g->npages); i++)
			bits[i] |= s->dirty[i];
	}	/* else it failed before it took any page */
}

static int save_locked(struct saver *s)
{
	int ret = gmem_backing_window(&s->g->b);

	if (!ret)
		ret = begin_tracked(s, s->args && (s->args->flags &
						   GMEM_SAVE_DIRTY));
	if (!ret)
		ret = make_plan(s);
	if (!ret)
		ret = put_header(s);
	if (!ret && s->tracked)
		ret = put_chain(s);
	if (!ret)
		ret = save_state(s);
	if (!ret)
		ret = save_poison(s);
	if (!ret && s->dirty)
		ret = save_holes(s);
	if (!ret)
		ret = save_data(s);
	if (!ret && s->data_done != s->data_total)
		ret = -EIO;	/* cannot happen: the plan's own sum */
	if (!ret)
		ret = put_end(s);
	if (!ret)
		progress(s, true);
	end_tracked(s, ret);
	return ret;
}

GMEM_EXPORT int gmem_snapshot_save(struct gmem *g, int fd,
				   struct gmem_snapshot_save_args *args)
{
	struct saver s = { .g = g, .fd = fd, .args = args };
	int ret;

	if (!g || fd < 0)
		return -EINVAL;
	if (args) {
		if (args->flags & ~GMEM_SAVE_DIRTY)
			return -EINVAL;
		for (size_t i = 0; i < sizeof(args->reserved) / 8; i++)
			if (args->reserved[i])
				return -EINVAL;
		args->bytes = 0;
	}
	if (g->link)
		return -EPERM;
	s.buf = malloc(SNAP_DATA_MAX);
	if (!s.buf)
		return -ENOMEM;
	ret = gmem_lock_live(g);
	if (!ret) {
		ret = save_locked(&s);
		gmem_unlock_put(g);
	}
	free(s.plan);
	free(s.dirty);
	free(s.buf);
	if (args)
		args->bytes = s.bytes;
	return ret;
}
