/* SPDX-License-Identifier: MIT */
/*
 * snapshot.h - the snapshot stream (format version 1), shared by the
 * writer (snapshot.c) and the reader (restore.c), and the stream I/O
 * they use (stream.c).  The format is documented for users in
 * gmem_snapshot_save(3), FORMAT; this header is its one definition in
 * code.  Every integer is little-endian on the wire.
 *
 *   header   64 bytes: magic "GMEMSNAP", version, header size, the
 *            file's size, flags, backend, page shift, huge shift, the
 *            total of DATA payload bytes, and XXH64 of the 56 bytes
 *            before the checksum (seed 0).
 *   records  32-byte head (type, flags 0, offset, length, checksum) and
 *            length bytes of payload.  The checksum is XXH64 of the
 *            payload seeded with XXH64 of the head's first 24 bytes,
 *            itself seeded with the record's index (0 for the first
 *            record after the header): a record that is changed, lost,
 *            repeated or moved fails its check.
 *            STATE   payload: (start, end) byte pairs, the private runs,
 *                    ascending, each page aligned and inside the file
 *            POISON  the same, for the poisoned pages
 *            DATA    offset: where the payload goes in the file (page
 *                    aligned); the payload is length bytes of contents
 *                    (a page multiple, at most SNAP_DATA_MAX)
 *            END     payload: struct snap_end; the last record
 *            CHAIN   payload: chain id, generation (u64 each); the first
 *                    record of a tracked save (dirty.c), full or not
 *            HOLE    pairs, as STATE: pages to punch (incremental only)
 *   kind     the header's u32 at 44: 0 a full stream (restore), 1 an
 *            incremental one (apply: CHAIN, STATE, POISON, HOLE, DATA,
 *            END, in that order, STATE and POISON complete as in a
 *            full stream, DATA only for the pages that changed)
 *
 * Locking: none here; callers hold what they say they hold.
 */
#ifndef GMEM_SNAPSHOT_H
#define GMEM_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define SNAP_MAGIC		"GMEMSNAP"
#define SNAP_VERSION		1U
#define SNAP_HEADER_SIZE	64U
#define SNAP_RECORD_SIZE	32U

#define SNAP_STATE		1U
#define SNAP_POISON		2U
#define SNAP_DATA		3U
#define SNAP_END		4U
#define SNAP_CHAIN		5U
#define SNAP_HOLE		6U

#define SNAP_KIND_FULL		0U
#define SNAP_KIND_INCREMENTAL	1U

#define SNAP_DATA_MAX		(2U << 20)	/* bytes of one DATA record */
#define SNAP_PAIRS_MAX		4096U		/* pairs of one STATE/POISON */

/* Field offsets in the header (all little-endian). */
#define SNAP_H_MAGIC		0	/* 8 bytes */
#define SNAP_H_VERSION		8	/* u32 */
#define SNAP_H_HSIZE		12	/* u32: SNAP_HEADER_SIZE */
#define SNAP_H_SIZE		16	/* u64: file size in bytes */
#define SNAP_H_FLAGS		24	/* u64: GMEM_FLAG_* */
#define SNAP_H_BACKEND		32	/* u32: GMEM_BACKEND_* */
#define SNAP_H_PAGE_SHIFT	36	/* u32 */
#define SNAP_H_HUGE_SHIFT	40	/* u32: 0, 21, 30 */
#define SNAP_H_KIND		44	/* u32: SNAP_KIND_* */
#define SNAP_H_DATA_BYTES	48	/* u64: sum of DATA lengths */
#define SNAP_H_CHECKSUM		56	/* u64: XXH64 of bytes 0..55 */

struct snap_end {			/* END's payload, little-endian */
	uint64_t records;		/* records before END */
	uint64_t data_bytes;		/* the header's data_bytes again */
	uint64_t private_bytes;		/* bytes in the private state */
	uint64_t poisoned_bytes;
};

static inline void snap_put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline void snap_put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t snap_get32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static inline uint64_t snap_get64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* 64-bit words of a bitmap of npages bits. */
static inline size_t snap_words(uint64_t npages)
{
	return (size_t)((npages + 63) / 64);
}

/* stream.c: the caller's fd (file, pipe, socket); 0 or -errno. */
/* All of iov written; SIGPIPE never raised (-EPIPE instead). */
int snap_writev_all(int fd, struct iovec *iov, int n);
/* Exactly len bytes read; -ENODATA if the stream ends before. */
int snap_read_full(int fd, void *buf, size_t len);

#endif /* GMEM_SNAPSHOT_H */
