/* SPDX-License-Identifier: MIT */
/*
 * peer_ring.h - the request ring of the peer_vmm / peer_device examples:
 * a tiny vhost-user-like virtqueue that lives in one shared guest page.
 *
 * The guest (played by peer_vmm) fills descriptors and bumps "avail";
 * the device (peer_device) serves them in order, writes each one's
 * status and bumps "used".  Buffers are named by their offset in the
 * guest memory file, as a vhost-user back-end names them by guest
 * address; the device checks every one against the region it was
 * given before it touches it.  A kick channel (a socket, like
 * vhost-user's kick and call eventfds) carries one byte each way:
 * "look at the ring" and "done".  Both ends run on one machine, so the
 * layout is host byte order.
 */
#ifndef PEER_RING_H
#define PEER_RING_H

#include <stdint.h>

#define RING_SIZE	16

enum ring_code {
	REQ_UPPER = 1,		/* response = the request, upper-cased */
	REQ_SUM = 2,		/* response = the request's byte sum */
};

struct ring_desc {
	uint64_t req_off;	/* request buffer: offset in the file */
	uint32_t req_len;
	uint32_t code;		/* enum ring_code */
	uint64_t resp_off;	/* response buffer */
	uint32_t resp_len;
	int32_t status;		/* device: bytes written, or -errno;
				   -EFAULT: a buffer was private (SIGBUS) */
};

struct ring {
	uint32_t avail;		/* guest: descriptors posted */
	uint32_t used;		/* device: descriptors done */
	struct ring_desc d[RING_SIZE];
};

#endif /* PEER_RING_H */
