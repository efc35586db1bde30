/* SPDX-License-Identifier: MIT */
/*
 * peer.h - the peer protocol's wire format, shared by the owner side
 * (export.c) and the peer side (attach.c).  Knows messages and sockets,
 * not struct gmem.
 *
 * Every message is one struct peer_msg (64 bytes, host byte order: both
 * ends run on one machine) on an AF_UNIX stream socket:
 *
 *   owner                                 peer
 *   HELLO  v = version, size, first,  ->       (+ SCM_RIGHTS: the fd)
 *          npages, layout
 *                                     <-  ATTACH v0 = version
 *                                         (+ SCM_CREDENTIALS: its pid)
 *   CHANGE seq 0 ... (the state now)  ->
 *   READY                             ->
 *   CHANGE seq n, v = start, end,     ->
 *          val, poison
 *                                     <-  ACK seq n, err
 *                                     <-  PIN / UNPIN seq m, v = start, end
 *   REPLY  seq m, err                 ->
 *                                     <-  BYE (the peer has no view left)
 *   CLOSE  (the file or the export    ->
 *          is gone)
 *   REGION v0 = r (+ SCM_RIGHTS: the  ->
 *          1 GiB file of region r)
 *
 * Pages are counted in the file's page size (4 KiB, or 4 KiB pages of
 * a THP file).  A CHANGE gives [start, end) a state (val: 0 shared,
 * 1 private, -1 unchanged) and poison (1, 0, -1 unchanged); seq 0 asks
 * for no ACK.  ACK's err is 0 or a -errno: a peer that refuses a change
 * to shared (a listener said no) has undone its part.
 *
 * A 1 GiB hugetlb file is one file per region, and re-homing gives a
 * region a new file while it is hidden everywhere: the owner sends each
 * region's file (REGION) before the state, and again before every change
 * that may show it; HELLO's fd is then the first region's, not used.
 */
#ifndef GMEM_PEER_H
#define GMEM_PEER_H

#include <stdint.h>

#define PEER_MAGIC	0x676d7072U	/* "gmpr" */
#define PEER_VERSION	1

enum peer_type {
	PM_HELLO = 1,
	PM_ATTACH,
	PM_CHANGE,
	PM_READY,
	PM_ACK,
	PM_PIN,
	PM_UNPIN,
	PM_REPLY,
	PM_BYE,
	PM_CLOSE,
	PM_REGION,
};

/* HELLO v[4]: the layout */
#define PEER_LAYOUT(kind, page_shift, huge_shift) \
	((uint64_t)(kind) | (uint64_t)(page_shift) << 8 | \
	 (uint64_t)(huge_shift) << 16)
#define PEER_KIND(l)		((unsigned int)((l) & 0xff))
#define PEER_PAGE_SHIFT(l)	((unsigned int)(((l) >> 8) & 0xff))
#define PEER_HUGE_SHIFT(l)	((unsigned int)(((l) >> 16) & 0xff))

struct peer_msg {
	uint32_t magic;
	uint32_t type;
	uint64_t seq;
	int64_t err;
	uint64_t v[5];
};

_Static_assert(sizeof(struct peer_msg) == 64, "wire size");

#endif /* GMEM_PEER_H */
