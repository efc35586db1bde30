// SPDX-License-Identifier: MIT
/*
 * peer_device.c - a device back-end in a process of its own, as a
 * vhost-user back-end is: it gets the VMM's guest memory with
 * gmem_attach() and serves a request ring (peer_ring.h) that lives in a
 * shared guest page.
 *
 * peer_vmm starts it (fork + exec) with two sockets: the one the VMM
 * exports its guest memory on (vhost-user's SET_MEM_TABLE, fd and all)
 * and the kick channel.  Run alone, with no arguments, it says what it
 * is and exits 0.
 *
 * What a device author takes from here:
 *  - map guest memory through the peer file (gmem_mmap on what
 *    gmem_attach gave), not through the raw fd: then a private page is
 *    a SIGBUS here too, exactly as in the VMM, and the VMM's conversion
 *    to private returns only after this process can no longer reach it;
 *  - check every guest-supplied offset against the region before use;
 *  - the guest may make any buffer private at any time: catch the
 *    SIGBUS around buffer accesses and fail that request (-EFAULT)
 *    instead of dying.
 *
 * Run: make examples (peer_vmm starts it).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gmem.h>

#include "peer_ring.h"

static sigjmp_buf on_fault;
static volatile sig_atomic_t armed;
static void *volatile fault_addr;

static void sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (!armed) {			/* not in a buffer access: a bug */
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	fault_addr = si->si_addr;
	siglongjmp(on_fault, 1);
}

/* Is [off, off + len) inside the guest memory we were given? */
static int in_region(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

/*
 * Serve one descriptor: its status.  Every access to a guest buffer is
 * inside the sigsetjmp window: a page the guest made private faults.
 */
static int32_t serve(char *mem, uint64_t size, const struct ring_desc *d)
{
	const char *req = mem + d->req_off;
	char *resp = mem + d->resp_off;
	uint64_t sum = 0;
	int32_t status;

	if (!in_region(d->req_off, d->req_len, size) ||
	    !in_region(d->resp_off, d->resp_len, size))
		return -EINVAL;
	if (sigsetjmp(on_fault, 1)) {
		armed = 0;
		printf("  device: SIGBUS at guest offset 0x%llx: the page is "
		       "private, request failed\n",
		       (unsigned long long)((char *)fault_addr - mem));
		fflush(stdout);
		return -EFAULT;
	}
	armed = 1;
	switch (d->code) {
	case REQ_UPPER:
		status = (int32_t)(d->req_len < d->resp_len ? d->req_len :
				   d->resp_len);
		for (int32_t i = 0; i < status; i++) {
			char c = req[i];

			resp[i] = c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
		}
		break;
	case REQ_SUM:
		for (uint32_t i = 0; i < d->req_len; i++)
			sum += (unsigned char)req[i];
		status = d->resp_len >= sizeof(sum) ? (int32_t)sizeof(sum) :
			 -ENOSPC;
		if (status > 0)
			memcpy(resp, &sum, sizeof(sum));
		break;
	default:
		status = -EOPNOTSUPP;
		break;
	}
	armed = 0;
	return status;
}

int main(int argc, char **argv)
{
	struct gmem_attach_args aa = { .timeout_ms = 5000 };
	struct sigaction sa = { .sa_sigaction = sigbus,
				.sa_flags = SA_SIGINFO };
	struct gmem_stats st;
	struct gmem *g;
	struct ring *ring;
	uint64_t served = 0;
	char *mem, kick;
	int sock, kfd, ret;

	if (argc != 3) {
		printf("peer_device: a vhost-user-like device back-end; "
		       "peer_vmm starts it as\n"
		       "  peer_device MEMORY_SOCKET_FD KICK_FD\n"
		       "(run build/examples/peer_vmm)\n");
		return 0;
	}
	sock = atoi(argv[1]);
	kfd = atoi(argv[2]);

	/* The VMM's guest memory: a peer file that follows its state. */
	ret = gmem_attach(sock, &aa, &g);
	if (ret) {
		fprintf(stderr, "device: gmem_attach: %s\n", strerror(-ret));
		return 1;
	}
	ret = gmem_stat(g, &st, sizeof(st));
	if (!ret)
		ret = gmem_mmap(g, 0, st.size, PROT_READ | PROT_WRITE,
				(void **)&mem);
	if (ret) {
		fprintf(stderr, "device: mapping guest memory: %s\n",
			strerror(-ret));
		return 1;
	}
	printf("  device: attached, %llu KiB of guest memory mapped\n",
	       (unsigned long long)(st.size >> 10));
	fflush(stdout);
	sigaction(SIGBUS, &sa, NULL);

	/* The ring is at offset 0 (the VMM told us so, as a virtio device
	 * learns its queue's address). */
	ring = (struct ring *)mem;
	while (read(kfd, &kick, 1) == 1) {
		uint32_t avail = __atomic_load_n(&ring->avail,
						 __ATOMIC_ACQUIRE);

		while (ring->used != avail) {
			struct ring_desc *d = &ring->d[ring->used % RING_SIZE];

			d->status = serve(mem, st.size, d);
			served++;
			__atomic_store_n(&ring->used, ring->used + 1,
					 __ATOMIC_RELEASE);
		}
		if (write(kfd, "c", 1) != 1)	/* "call": done */
			break;
	}

	/* The kick channel closed: the VMM is shutting us down.  Drop the
	 * view and the file: the library tells the owner we are gone. */
	printf("  device: kick channel closed after %llu requests, "
	       "detaching\n", (unsigned long long)served);
	fflush(stdout);
	gmem_munmap(g, mem, st.size);
	gmem_close(g);
	return 0;
}
