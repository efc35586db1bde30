// SPDX-License-Identifier: MIT
/*
 * migrate-dest.c - the destination of "gmemctl migrate" (a child of the
 * source, forked before the source made anything), the socket I/O of
 * both ends and the digest of the final check (migrate.h).
 *
 * The destination prints nothing on stdout, which is the source's (its
 * tables, or its one JSON document): what it did goes back in replies,
 * and only an error of its own (the source gone, a short read) goes to
 * stderr, as "gmemctl: migrate: destination: ...".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "migrate.h"
#include "output.h"

int mig_read(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (!n)
			return -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int mig_write(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

const char *mig_what_name(uint32_t what)
{
	switch (what) {
	case MIG_WHAT_RESTORE:
		return "gmem_snapshot_restore";
	case MIG_WHAT_APPLY:
		return "gmem_snapshot_apply";
	case MIG_WHAT_DIGEST:
		return "reading its file for the check";
	case MIG_WHAT_PROTOCOL:
		return "the protocol";
	default:
		return "?";
	}
}

/* ---- the digest --------------------------------------------------------- */

#define P1	0x9e3779b185ebca87ULL
#define P2	0xc2b2ae3d27d4eb4fULL
#define P3	0x165667b19e3779f9ULL

static inline uint64_t rotl(uint64_t x, unsigned int r)
{
	return x << r | x >> (64 - r);
}

static inline uint64_t lane(uint64_t acc, uint64_t w)
{
	return rotl(acc + w * P2, 31) * P1;
}

/*
 * A 64-bit hash of buf: XXH64's lanes and avalanche, not its exact
 * definition (nothing outside this program reads it).  Both sides run
 * the same code, so equal bytes give equal hashes; any change of a
 * chunk changes its hash but with a chance of 2^-64.
 */
static uint64_t hash64(const void *buf, size_t len, uint64_t seed)
{
	const unsigned char *p = buf;
	uint64_t a = seed + P1 + P2, b = seed + P2, c = seed, d = seed - P1;
	uint64_t w[4], h;
	size_t i;

	for (i = 0; i + 32 <= len; i += 32) {
		memcpy(w, p + i, 32);
		a = lane(a, w[0]);
		b = lane(b, w[1]);
		c = lane(c, w[2]);
		d = lane(d, w[3]);
	}
	h = rotl(a, 1) + rotl(b, 7) + rotl(c, 12) + rotl(d, 18) + len;
	for (; i < len; i++)
		h = rotl(h ^ (p[i] * P3), 11) * P1;
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	h ^= h >> 32;
	return h;
}

/* Fold one 64-bit value into a running hash (ordered). */
static uint64_t fold(uint64_t h, uint64_t v)
{
	return hash64(&v, sizeof(v), h);
}

/* The state runs: (offset, length, attributes) of each, in order. */
static int digest_state(struct gmem *g, uint64_t size, struct mig_digest *d)
{
	uint64_t off = 0, attr, len;
	int ret;

	d->state_hash = P3;
	while (off < size) {
		ret = gmem_get_attributes(g, off, &attr, &len);
		if (ret)
			return ret;
		if (!len)
			return -EIO;
		d->state_hash = fold(fold(fold(d->state_hash, off), len),
				     attr);
		d->state_runs++;
		off += len;
	}
	return 0;
}

/*
 * The allocated runs (SEEK_DATA/SEEK_HOLE on the backing) and the
 * contents of every chunk, holes read as zeros (pread allocates
 * nothing).  The backing may be more than one file (gmem_get_fd()'s
 * len): each piece is walked on its own.
 */
static int digest_data(struct gmem *g, uint64_t size, struct mig_digest *d,
		       uint64_t *chunks, void (*progress)(uint64_t done))
{
	char *buf = malloc(MIG_CHUNK);
	uint64_t off = 0;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	d->alloc_hash = P2;
	while (off < size && !ret) {
		uint64_t fdoff, len, end;
		off_t s, e;
		int fd;

		ret = gmem_get_fd(g, off, &fd, &fdoff, &len);
		if (ret)
			break;
		if (len > size - off)
			len = size - off;
		end = fdoff + len;
		/* The data runs of this piece, as file offsets. */
		for (s = (off_t)fdoff; s < (off_t)end; s = e) {
			s = lseek(fd, s, SEEK_DATA);
			if (s < 0 && errno == ENXIO)
				break;
			e = s < 0 ? -1 : lseek(fd, s, SEEK_HOLE);
			if (s < 0 || e < 0) {
				ret = -errno;
				break;
			}
			if ((uint64_t)s >= end)
				break;
			if ((uint64_t)e > end)
				e = (off_t)end;
			d->alloc_hash = fold(fold(d->alloc_hash,
						  off + (uint64_t)s - fdoff),
					     (uint64_t)(e - s));
			d->data_runs++;
		}
		/* Its contents, chunk by chunk (MIG_CHUNK divides MIG_RUN,
		 * and sizes are multiples of MIG_RUN). */
		for (uint64_t c = 0; c < len && !ret; c += MIG_CHUNK) {
			size_t n = (size_t)(len - c < MIG_CHUNK ? len - c :
					    MIG_CHUNK);
			ssize_t got = pread(fd, buf, n, (off_t)(fdoff + c));

			if (got != (ssize_t)n) {
				ret = got < 0 ? -errno : -EIO;
				break;
			}
			chunks[(off + c) / MIG_CHUNK] =
				hash64(buf, n, off + c);
			if (progress)
				progress(off + c + n);
		}
		off += len;
	}
	free(buf);
	return ret;
}

int mig_digest(struct gmem *g, struct mig_digest *d, uint64_t **chunks,
	       void (*progress)(uint64_t done))
{
	struct gmem_stats st;
	uint64_t *h;
	int ret;

	memset(d, 0, sizeof(*d));
	ret = gmem_stat(g, &st, sizeof(st));
	if (ret)
		return ret;
	d->size = st.size;
	d->allocated = st.allocated;
	d->shared = st.shared;
	d->priv = st.priv;
	d->poisoned = st.poisoned;
	d->parked = st.parked;
	d->nchunks = (st.size + MIG_CHUNK - 1) / MIG_CHUNK;
	h = calloc(d->nchunks ? d->nchunks : 1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	ret = digest_state(g, st.size, d);
	if (!ret)
		ret = digest_data(g, st.size, d, h, progress);
	if (ret) {
		free(h);
		return ret;
	}
	*chunks = h;
	return 0;
}

/* ---- the destination ---------------------------------------------------- */

struct dest {
	int sock;
	struct gmem *g;		/* the file migrated into */
	uint64_t data;		/* contents total of the stream being read */
};

static void on_restore_progress(void *opaque, uint64_t done, uint64_t total)
{
	struct dest *d = opaque;

	(void)done;
	d->data = total;
}

static int reply(struct dest *d, const struct mig_msg *m, int status,
		 uint32_t what, uint64_t bytes, uint64_t ns)
{
	struct mig_reply r = {
		.magic = MIG_MAGIC, .type = m->type, .status = status,
		.what = status ? what : MIG_WHAT_NONE, .bytes = bytes,
		.data = d->data, .ns = ns,
	};

	return mig_write(d->sock, &r, sizeof(r));
}

/*
 * MIG_FULL, MIG_DELTA, MIG_BASELINE: read one stream from the socket.
 * A baseline's file is only measured: it is closed again at once, after
 * the migrated file was (so the destination never holds both).
 */
static int receive(struct dest *d, const struct mig_msg *m)
{
	struct gmem_snapshot_restore_args ra = {
		.backend = GMEM_BACKEND_MEMFD,
		.restore_flags = GMEM_RESTORE_AS_SAVED,
		.progress = on_restore_progress,
		.opaque = d,
	};
	struct gmem *g = NULL;
	uint32_t what;
	uint64_t t;
	int ret;

	d->data = 0;
	if (m->type == MIG_BASELINE && d->g) {
		gmem_close(d->g);
		d->g = NULL;
	}
	t = bench_now();
	if (m->type == MIG_DELTA) {
		what = MIG_WHAT_APPLY;
		ret = d->g ? gmem_snapshot_apply(d->g, d->sock, &ra) :
			     -EINVAL;
	} else {
		what = MIG_WHAT_RESTORE;
		ret = d->g ? -EEXIST : gmem_snapshot_restore(d->sock, &ra, &g);
	}
	t = bench_now() - t;
	if (!ret && m->type == MIG_FULL)
		d->g = g;
	else if (!ret)
		gmem_close(g);
	if (reply(d, m, ret, what, ra.bytes, t))
		return -EPIPE;
	return ret;
}

static int check(struct dest *d, const struct mig_msg *m)
{
	struct mig_digest dg;
	uint64_t *chunks = NULL, t = bench_now();
	int ret = d->g ? mig_digest(d->g, &dg, &chunks, NULL) : -EINVAL;

	d->data = 0;
	if (reply(d, m, ret, MIG_WHAT_DIGEST, 0, bench_now() - t))
		ret = -EPIPE;
	if (!ret)
		ret = mig_write(d->sock, &dg, sizeof(dg));
	if (!ret)
		ret = mig_write(d->sock, chunks, dg.nchunks * sizeof(*chunks));
	free(chunks);
	return ret;
}

int mig_destination(int sock)
{
	struct dest d = { .sock = sock };
	struct mig_msg m;
	int ret;

	for (;;) {
		ret = mig_read(sock, &m, sizeof(m));
		if (ret == -ECONNRESET)
			break;		/* the source gave up: it says why */
		if (ret) {
			out_error("migrate: destination: reading from the "
				  "source: %s", strerror(-ret));
			break;
		}
		if (m.magic != MIG_MAGIC || m.type < MIG_FULL ||
		    m.type > MIG_BYE) {
			/* Out of step: the last stream was not read to its
			 * end, or not only to its end. */
			ret = -EPROTO;
			reply(&d, &m, ret, MIG_WHAT_PROTOCOL, 0, 0);
			break;
		}
		if (m.type == MIG_BYE)
			break;
		if (m.type == MIG_CHECK)
			ret = check(&d, &m);
		else
			ret = receive(&d, &m);
		if (ret)
			break;
	}
	if (d.g)
		gmem_close(d.g);
	close(sock);
	return ret ? EXIT_FAIL : EXIT_OK;
}
