// SPDX-License-Identifier: MIT
/*
 * restore.c - gmem_snapshot_restore(): a new file made from a stream in
 * the format of snapshot.h (documented in gmem_snapshot_save(3)).
 *
 * All or nothing.  The file is created from the header, then every
 * record is checked (its checksum, then its contents against the file)
 * and applied as it comes: the STATE runs by conversion, DATA into the
 * file, POISON once all contents are in (a poisoned page holds nothing).
 * Only a stream that reaches its END record, whose counts agree with
 * what was restored, gives a file back; on any error the file is closed,
 * which frees it, and no mapping of it is left: restore makes no host
 * view, only the backing's window, which goes with the file.
 *
 * Contents are read from the stream straight into the window (one
 * copy), and the checksum is verified on the window afterwards; a bad
 * record fails the whole restore, so wrong bytes never reach a caller.
 * THP: a wholly allocated 2 MiB region (the writer makes it one record)
 * is filled through the window, whose first touch of the region gives
 * it a huge page as the source's had; a partly allocated region is
 * written with pwrite() (gmem_backing_write()), which gives it 4 KiB
 * pages and allocates no more than the source had.
 *
 * Apply (gmem_snapshot_apply()): an incremental stream onto a file of
 * its chain, the same records checked the same way against g, in the
 * order snapshot.h gives: CHAIN first (its chain, the next generation:
 * else -ESTALE, before anything changes), then state, holes punched,
 * contents, poison.  From the first change to END the file is marked
 * broken, so that an apply that fails part way leaves a file that every
 * further apply refuses (-ESTALE): it is neither generation.
 *
 * Locking: the new file is nobody else's until it is returned; its lock
 * is still taken around the backing calls (they expect it), and dropped
 * for conversions and memory failure, which are made through the API.
 */
#include <errno.h>
#include <linux/falloc.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash.h"
#include "internal.h"
#include "snapshot.h"

#define PROGRESS_STEP	(16ULL << 20)

struct restorer {
	struct gmem *g;
	int fd;
	struct gmem_snapshot_restore_args *args;
	uint64_t seq;			/* records read */
	uint64_t bytes;			/* from the stream */
	uint64_t data_total;		/* the header's */
	uint64_t data_done;
	uint64_t next_progress;
	uint64_t state_end;		/* STATE pairs ascend: the last end */
	uint64_t poison_end;
	uint64_t hole_end;
	uint64_t state_cursor;		/* STATE applied up to here */
	bool state_done;
	bool apply;			/* gmem_snapshot_apply() */
	unsigned int kind;		/* the header's SNAP_KIND_* */
	uint64_t (*poison)[2];		/* applied after the contents */
	size_t nr_poison, cap_poison;
	unsigned char *buf;		/* SNAP_DATA_MAX bytes */
};

static int check_args(const struct gmem_snapshot_restore_args *a)
{
	for (size_t i = 0; i < sizeof(a->reserved) / 8; i++)
		if (a->reserved[i])
			return -EINVAL;
	if (a->restore_flags & ~GMEM_RESTORE_AS_SAVED)
		return -EINVAL;
	if ((a->restore_flags & GMEM_RESTORE_AS_SAVED) &&
	    (a->size || a->flags))
		return -EINVAL;
	return 0;
}

static int read_header(struct restorer *r, struct gmem_create_args *ca)
{
	const struct gmem_snapshot_restore_args *a = r->args;
	unsigned char h[SNAP_HEADER_SIZE];
	unsigned int shift, page_shift;
	int ret = snap_read_full(r->fd, h, sizeof(h));

	if (ret)
		return ret;
	r->bytes += sizeof(h);
	if (memcmp(h + SNAP_H_MAGIC, SNAP_MAGIC, 8))
		return -ENOEXEC;
	if (snap_get32(h + SNAP_H_VERSION) != SNAP_VERSION)
		return -EPROTONOSUPPORT;
	if (snap_get32(h + SNAP_H_HSIZE) != SNAP_HEADER_SIZE ||
	    snap_get64(h + SNAP_H_CHECKSUM) !=
	    gmem_hash64(h, SNAP_H_CHECKSUM, 0) ||
	    snap_get32(h + SNAP_H_KIND) > SNAP_KIND_INCREMENTAL)
		return -EBADMSG;
	r->kind = snap_get32(h + SNAP_H_KIND);
	*ca = (struct gmem_create_args){
		.size = snap_get64(h + SNAP_H_SIZE),
		.flags = snap_get64(h + SNAP_H_FLAGS),
		.backend = snap_get32(h + SNAP_H_BACKEND),
		.vm_fd = a->vm_fd,
	};
	r->data_total = snap_get64(h + SNAP_H_DATA_BYTES);
	/* A file gmem_create() could not have made: not a writer's. */
	if (gmem_huge_validate(ca->flags, ca->size, &shift) ||
	    shift != snap_get32(h + SNAP_H_HUGE_SHIFT) ||
	    r->data_total > ca->size)
		return -EBADMSG;
	page_shift = (unsigned int)__builtin_ctzl(
				(unsigned long)sysconf(_SC_PAGESIZE));
	if (ca->backend != a->backend ||
	    snap_get32(h + SNAP_H_PAGE_SHIFT) != page_shift)
		return -EMEDIUMTYPE;
	if (!(a->restore_flags & GMEM_RESTORE_AS_SAVED) &&
	    (ca->size != a->size || ca->flags != a->flags))
		return -ERANGE;
	if (a->backend == GMEM_BACKEND_MEMFD)
		ca->vm_fd = 0;
	/* A full stream makes a file; an incremental one needs its base. */
	if (r->kind != (r->apply ? SNAP_KIND_INCREMENTAL : SNAP_KIND_FULL))
		return -ESTALE;
	return 0;
}

static void progress(struct restorer *r, bool last)
{
	struct gmem_snapshot_restore_args *a = r->args;

	if (!a->progress || (!last && r->data_done < r->next_progress))
		return;
	r->next_progress = r->data_done + PROGRESS_STEP;
	a->progress(a->opaque, r->data_done, r->data_total);
}

/* The record's checksum over payload, as snapshot.c made it. */
static bool record_ok(struct restorer *r, const unsigned char *head,
		      const void *payload, uint64_t len)
{
	uint64_t seed = gmem_hash64(head, 24, r->seq);

	return gmem_hash64(payload, (size_t)len, seed) ==
	       snap_get64(head + 24);
}

/* Pairs of a STATE or POISON record: ascending, aligned, inside. */
static int check_pairs(struct restorer *r, const unsigned char *p,
		       uint64_t len, uint64_t *last)
{
	struct gmem *g = r->g;
	uint64_t mask = off_of(g, 1) - 1;

	if (!len || len % 16 || len > SNAP_PAIRS_MAX * 16)
		return -EBADMSG;
	for (uint64_t i = 0; i < len; i += 16) {
		uint64_t s = snap_get64(p + i), e = snap_get64(p + i + 8);

		if ((s | e) & mask || s >= e || e > g->size || s < *last)
			return -EBADMSG;
		*last = e;
	}
	return 0;
}

static int set_state(struct restorer *r, uint64_t start, uint64_t end,
		     uint64_t attr)
{
	struct gmem_attributes a = {
		.offset = start, .size = end - start, .attributes = attr,
	};

	return start < end ? gmem_set_attributes(r->g, &a) : 0;
}

/*
 * The private runs, ascending; what lies between them is shared.  Pages
 * already in their state are left alone, so an apply converts only what
 * changed (a conversion may re-home a page of an exposed file).
 */
static int apply_state(struct restorer *r, const unsigned char *p,
		       uint64_t len)
{
	int ret = check_pairs(r, p, len, &r->state_end);

	for (uint64_t i = 0; !ret && i < len; i += 16) {
		uint64_t s = snap_get64(p + i), e = snap_get64(p + i + 8);

		ret = set_state(r, r->state_cursor, s, 0);
		if (!ret)
			ret = set_state(r, s, e, GMEM_ATTR_PRIVATE);
		r->state_cursor = e;
	}
	return ret;
}

/* After the last STATE record: the rest of the file is shared. */
static int end_state(struct restorer *r)
{
	int ret = 0;

	if (!r->state_done)
		ret = set_state(r, r->state_cursor, r->g->size, 0);
	r->state_done = true;
	return ret;
}

static int keep_poison(struct restorer *r, const unsigned char *p,
		       uint64_t len)
{
	int ret = check_pairs(r, p, len, &r->poison_end);

	for (uint64_t i = 0; !ret && i < len; i += 16) {
		if (r->nr_poison == r->cap_poison) {
			size_t cap = r->cap_poison ? 2 * r->cap_poison : 64;
			void *n = realloc(r->poison, cap * sizeof(*r->poison));

			if (!n)
				return -ENOMEM;
			r->poison = n;
			r->cap_poison = cap;
		}
		r->poison[r->nr_poison][0] = snap_get64(p + i);
		r->poison[r->nr_poison++][1] = snap_get64(p + i + 8);
	}
	return ret;
}

/* HOLE: punched at the source since the previous generation. */
static int apply_holes(struct restorer *r, const unsigned char *p,
		       uint64_t len)
{
	int ret = check_pairs(r, p, len, &r->hole_end);

	for (uint64_t i = 0; !ret && i < len; i += 16)
		ret = gmem_fallocate(r->g, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				     snap_get64(p + i),
				     snap_get64(p + i + 8) - snap_get64(p + i));
	return ret;
}

/* Apply: poisoned pages about to get contents lose their poison. */
static int unpoison(struct restorer *r, uint64_t off, uint64_t len)
{
	struct gmem *g = r->g;
	uint64_t p = page_of(g, off), end = page_of(g, off + len), bad;
	int ret;

	while (r->apply && p < end) {
		ret = gmem_lock_live(g);
		if (ret)
			return ret;
		bad = g->poison.nr ? gmem_extents_first(&g->poison, p, end) :
				     end;
		gmem_unlock_put(g);
		if (bad >= end)
			break;
		ret = gmem_fallocate(g, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_of(g, bad),
				     off_of(g, 1));
		if (ret)
			return ret;
		p = bad + 1;
	}
	return 0;
}

/*
 * Apply, to a file that had a host path (a view, a pin, a listener): a
 * private page's contents may belong in the park, not in its page of
 * the file, which the kernel may still reference from when it was
 * shared (rehome.c); so private runs are written the way the guest's
 * private data is loaded, by gmem_populate(), and shared runs into the
 * file.  The payload is checked before anything is written.
 */
static int apply_data_exposed(struct restorer *r, const unsigned char *head,
			      uint64_t off, uint64_t len)
{
	struct gmem *g = r->g;
	uint64_t p = page_of(g, off), end = page_of(g, off + len), e;
	unsigned int val;
	int ret = snap_read_full(r->fd, r->buf, (size_t)len);

	if (!ret && !record_ok(r, head, r->buf, len))
		ret = -EBADMSG;
	for (; !ret && p < end; p = e) {
		const unsigned char *src = r->buf + off_of(g, p) - off;

		ret = gmem_lock_live(g);
		if (ret)
			break;
		e = gmem_state_run(&g->state, p, end, &val);
		if (!val)
			ret = gmem_backing_write(&g->b, p, src, e - p);
		gmem_unlock_put(g);
		if (!ret && val) {
			ssize_t n = gmem_populate(g, off_of(g, p), src,
						  (size_t)off_of(g, e - p));

			if (n < 0)
				ret = (int)n;
			else if ((uint64_t)n != off_of(g, e - p))
				ret = -EIO;	/* the state changed under us */
		}
	}
	if (!ret) {
		r->bytes += len;
		r->data_done += len;
		progress(r, false);
	}
	return ret;
}

/* Read a DATA payload of len bytes for [off, off + len) into the file. */
static int apply_data(struct restorer *r, const unsigned char *head,
		      uint64_t off, uint64_t len)
{
	struct gmem *g = r->g;
	struct gmem_backing *b = &g->b;
	uint64_t first = page_of(g, off), n = page_of(g, len);
	uint64_t rp = gmem_backing_region_pages(b);
	bool direct = true;
	void *dst;
	int ret;

	if ((off | len) & (off_of(g, 1) - 1) || !len || len > SNAP_DATA_MAX ||
	    off >= g->size || len > g->size - off ||
	    len > r->data_total - r->data_done)
		return -EBADMSG;
	ret = unpoison(r, off, len);
	if (ret)
		return ret;
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	if (r->apply && (g->host_exposed || g->park.nr || g->pending.nr)) {
		gmem_unlock_put(g);
		return apply_data_exposed(r, head, off, len);
	}
	if (b->kind == GMEM_BACKING_THP)
		direct = !(first % rp) && n == rp;
	else	/* in one call: about half the time of faults by read() */
		ret = gmem_backing_alloc(b, first, first + n);
	dst = direct ? (void *)(b->window + off) : r->buf;
	if (!ret)
		ret = snap_read_full(r->fd, dst, (size_t)len);
	if (!ret && !record_ok(r, head, dst, len))
		ret = -EBADMSG;
	if (!ret && !direct)
		ret = gmem_backing_write(b, first, r->buf, n);
	gmem_unlock_put(g);
	if (!ret) {
		r->bytes += len;
		r->data_done += len;
		progress(r, false);
	}
	return ret;
}

/* CHAIN: a full stream's names the file's chain; apply's must follow. */
static int apply_chain(struct restorer *r, const unsigned char *c)
{
	struct gmem *g = r->g;
	uint64_t id = snap_get64(c), gen = snap_get64(c + 8);
	if (r->seq)
		return -EBADMSG;	/* only the first record */
	if (!r->apply) {
		if (gen)
			return -EBADMSG;
		g->snap_chained = true;
		g->snap_chain_id = id;
		g->snap_gen = 0;
		return 0;
	}
	if (!g->snap_chained || g->snap_broken || id != g->snap_chain_id ||
	    gen != g->snap_gen + 1)
		return -ESTALE;
	/* From here on the file is neither generation until END. */
	g->snap_broken = true;
	return 0;
}

static int apply_poison(struct restorer *r)
{
	struct gmem *g = r->g;
	int ret = 0;

	for (size_t i = 0; !ret && i < r->nr_poison; i++)
		for (uint64_t o = r->poison[i][0]; !ret && o < r->poison[i][1];
		     o += off_of(g, 1))
			ret = gmem_memory_failure(g, o);
	return ret;
}

/* END: the counts of the stream and of the file made from it agree. */
static int finish(struct restorer *r, const unsigned char *e)
{
	struct gmem *g = r->g;
	struct gmem_stats st;
	int ret;

	if (snap_get64(e) != r->seq || snap_get64(e + 8) != r->data_total ||
	    r->data_done != r->data_total)
		return -EBADMSG;
	ret = apply_poison(r);
	if (!ret)
		ret = gmem_stat(g, &st, offsetof(struct gmem_stats,
						 poisoned) + 8);
	if (!ret && (st.priv != snap_get64(e + 16) ||
		     st.poisoned != snap_get64(e + 24)))
		ret = -EBADMSG;
	return ret;
}

static int read_records(struct restorer *r)
{
	unsigned char head[SNAP_RECORD_SIZE];
	int ret;

	for (;; r->seq++) {
		uint32_t type;
		uint64_t off, len;

		ret = snap_read_full(r->fd, head, sizeof(head));
		if (ret)
			return ret;
		r->bytes += sizeof(head);
		type = snap_get32(head);
		off = snap_get64(head + 8);
		len = snap_get64(head + 16);
		if (snap_get32(head + 4))
			return -EBADMSG;
		/* An incremental stream starts with CHAIN: nothing changes
		 * before it has been checked. */
		if (r->apply && !r->seq && type != SNAP_CHAIN)
			return -ESTALE;
		/* The state is whole before holes, contents and poison. */
		if (type != SNAP_STATE && type != SNAP_CHAIN && r->seq &&
		    (ret = end_state(r)))
			return ret;
		if (type == SNAP_DATA) {
			ret = apply_data(r, head, off, len);
			if (ret)
				return ret;
			continue;
		}
		if (off || (type == SNAP_END ? len != sizeof(struct snap_end) :
			    type == SNAP_CHAIN ? len != 16 :
			    len > SNAP_PAIRS_MAX * 16))
			return -EBADMSG;
		if (type != SNAP_STATE && type != SNAP_POISON &&
		    type != SNAP_END && type != SNAP_CHAIN &&
		    (type != SNAP_HOLE || r->kind != SNAP_KIND_INCREMENTAL))
			return -EBADMSG;
		ret = snap_read_full(r->fd, r->buf, (size_t)len);
		if (ret)
			return ret;
		r->bytes += len;
		if (!record_ok(r, head, r->buf, len))
			return -EBADMSG;
		if (type == SNAP_END)
			return finish(r, r->buf);
		if (type == SNAP_CHAIN)
			ret = apply_chain(r, r->buf);
		else if (type == SNAP_HOLE)
			ret = apply_holes(r, r->buf, len);
		else
			ret = type == SNAP_STATE ? apply_state(r, r->buf, len) :
						   keep_poison(r, r->buf, len);
		if (ret)
			return ret;
	}
}

GMEM_EXPORT int gmem_snapshot_restore(int fd,
				      struct gmem_snapshot_restore_args *args,
				      struct gmem **out)
{
	struct restorer r = { .fd = fd, .args = args };
	struct gmem_create_args ca;
	struct gmem_attributes all;
	int ret;

	if (fd < 0 || !args || !out)
		return -EINVAL;
	ret = check_args(args);
	if (ret)
		return ret;
	args->bytes = 0;
	r.buf = malloc(SNAP_DATA_MAX);
	if (!r.buf)
		return -ENOMEM;
	ret = read_header(&r, &ca);
	if (ret)
		goto err_buf;
	ret = gmem_create(&ca, &r.g);
	if (ret)
		goto err_buf;
	/* STATE lists the private runs: everything else is shared. */
	all = (struct gmem_attributes){ .offset = 0, .size = ca.size };
	ret = gmem_set_attributes(r.g, &all);
	if (!ret)
		ret = read_records(&r);
	if (ret)
		goto err_file;
	progress(&r, true);
	free(r.poison);
	free(r.buf);
	args->bytes = r.bytes;
	*out = r.g;
	return 0;

err_file:
	gmem_close(r.g);
err_buf:
	free(r.poison);
	free(r.buf);
	args->bytes = r.bytes;
	return ret;
}

GMEM_EXPORT int gmem_snapshot_apply(struct gmem *g, int fd,
				    struct gmem_snapshot_restore_args *args)
{
	struct restorer r = { .g = g, .fd = fd, .args = args, .apply = true };
	struct gmem_snapshot_restore_args a;
	struct gmem_create_args ca;
	int ret;

	if (!g || fd < 0 || !args)
		return -EINVAL;
	ret = check_args(args);
	if (ret)
		return ret;
	if (g->link)
		return -EPERM;
	args->bytes = 0;
	/* The header is checked against g, as restore checks it against
	 * args: a stream for another file changes nothing. */
	a = *args;
	a.backend = g->backend;
	if (!(a.restore_flags & GMEM_RESTORE_AS_SAVED) &&
	    (a.size != g->size || a.flags != g->flags))
		return -ERANGE;
	a.restore_flags |= GMEM_RESTORE_AS_SAVED;
	a.size = a.flags = 0;
	r.args = &a;
	r.buf = malloc(SNAP_DATA_MAX);
	if (!r.buf)
		return -ENOMEM;
	ret = read_header(&r, &ca);
	if (!ret && (ca.size != g->size || ca.flags != g->flags))
		ret = -ERANGE;
	if (!ret && args->backend != g->backend)
		ret = -EMEDIUMTYPE;
	if (!ret)
		ret = read_records(&r);
	if (!ret) {
		progress(&r, true);
		g->snap_gen++;
		g->snap_broken = false;
	}
	free(r.poison);
	free(r.buf);
	args->bytes = r.bytes;
	return ret;
}
