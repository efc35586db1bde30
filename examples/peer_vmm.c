// SPDX-License-Identifier: MIT
/*
 * peer_vmm.c - guest memory shared with a device process: the VMM side.
 *
 * A VMM whose devices run in other processes (vhost-user back-ends,
 * virtiofsd, device models) hands them its guest memory.  With
 * gmem_export() they get it as a peer file: shared pages work, private
 * pages are a SIGBUS in the device exactly as in the VMM, and a
 * conversion to private returns only once the device cannot reach the
 * pages any more.  This program:
 *
 *  1. creates a confidential guest's memory (all private), converts the
 *     request ring and three buffers to shared;
 *  2. starts the device (peer_device, fork + exec) with a socketpair for
 *     the memory and one for kicks, and exports the memory to it;
 *  3. posts requests in the shared ring, kicks, reads the responses;
 *  4. converts the request buffer to private and posts it again: the
 *     device gets a SIGBUS and fails the request (-EFAULT); converted
 *     back, the buffer still holds its bytes (in place) and works;
 *  5. shuts down: closes the kick channel, the device detaches and
 *     exits, the VMM unexports and closes.
 *
 * The device binary is $GMEM_PEER_DEVICE, else peer_device next to this
 * program.  The guest's part (filling buffers and descriptors) is done
 * here through the VMM's own view, to keep it short.
 *
 * Run: make examples, or build/examples/peer_vmm
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmem.h>

#include "peer_ring.h"

#define PAGE		4096ULL
#define GUEST_RAM	(16 * PAGE)
#define RING_OFF	0		/* page 0: the ring */
#define REQ_OFF		(1 * PAGE)	/* page 1: a request buffer */
#define RESP_OFF	(2 * PAGE)	/* page 2: a response buffer */
#define SUM_OFF		(3 * PAGE)	/* page 3: another response */

static int convert(struct gmem *g, uint64_t off, uint64_t len, int priv)
{
	struct gmem_attributes a = {
		.offset = off, .size = len,
		.attributes = priv ? GMEM_ATTR_PRIVATE : 0,
	};

	return gmem_set_attributes(g, &a);
}

/* Where the device binary is: $GMEM_PEER_DEVICE, or next to us. */
static const char *device_path(const char *argv0, char *buf, size_t len)
{
	const char *env = getenv("GMEM_PEER_DEVICE");
	char dir[PATH_MAX];

	if (env && *env)
		return env;
	snprintf(dir, sizeof(dir), "%s", argv0);
	snprintf(buf, len, "%s/peer_device", dirname(dir));
	return buf;
}

/*
 * fork + exec the device with its two sockets (their numbers on its
 * command line, as a VMM passes --fd= options); its pid, or -errno.
 */
static pid_t start_device(const char *path, int mem_sock, int kick_sock)
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (!pid) {
		char a[16], b[16];

		/* Only these two cross the exec. */
		fcntl(mem_sock, F_SETFD, 0);
		fcntl(kick_sock, F_SETFD, 0);
		snprintf(a, sizeof(a), "%d", mem_sock);
		snprintf(b, sizeof(b), "%d", kick_sock);
		execl(path, "peer_device", a, b, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	return pid;
}

/* The guest posts one request; the device is kicked; wait for "done". */
static int32_t request(struct ring *ring, int kick, uint32_t code,
		       uint64_t req_off, uint32_t req_len, uint64_t resp_off,
		       uint32_t resp_len)
{
	uint32_t i = ring->avail;
	struct ring_desc *d = &ring->d[i % RING_SIZE];
	char c;

	*d = (struct ring_desc){ req_off, req_len, code, resp_off, resp_len,
				 0 };
	__atomic_store_n(&ring->avail, i + 1, __ATOMIC_RELEASE);
	if (write(kick, "k", 1) != 1 || read(kick, &c, 1) != 1)
		return -EPIPE;
	if (__atomic_load_n(&ring->used, __ATOMIC_ACQUIRE) != i + 1)
		return -EPROTO;
	return d->status;
}

int main(int argc, char **argv)
{
	struct gmem_create_args ca = { .size = GUEST_RAM,
				       .flags = GMEM_FLAG_MMAP };
	struct gmem_export_args ea = { .offset = 0, .size = GUEST_RAM,
				       .timeout_ms = 5000 };
	static const char text[] = "hello from the guest";
	char path[PATH_MAX], *mem;
	struct gmem_stats st;
	struct gmem_peer *peer;
	struct ring *ring;
	struct gmem *g;
	int msv[2], ksv[2], status, ret;
	int32_t n;
	uint64_t sum;
	pid_t pid;

	(void)argc;
	if (access(device_path(argv[0], path, sizeof(path)), X_OK)) {
		printf("peer_vmm: skipped: no device binary at %s (build "
		       "examples/peer_device.c, or set GMEM_PEER_DEVICE)\n",
		       path);
		return 77;
	}

	/* 1. A confidential guest's memory starts private; the guest
	 *    shares its ring and I/O buffers (virtio over swiotlb). */
	ret = gmem_create(&ca, &g);
	if (ret) {
		fprintf(stderr, "gmem_create: %s\n", strerror(-ret));
		return 1;
	}
	ret = convert(g, RING_OFF, 4 * PAGE, 0);
	if (!ret)
		ret = gmem_mmap(g, 0, GUEST_RAM, PROT_READ | PROT_WRITE,
				(void **)&mem);
	if (ret) {
		fprintf(stderr, "sharing the ring: %s\n", strerror(-ret));
		return 1;
	}
	ring = (struct ring *)(mem + RING_OFF);
	printf("1. guest memory: %llu KiB, ring and buffers shared "
	       "(pages 0-3), the rest private\n",
	       (unsigned long long)(GUEST_RAM >> 10));

	/* 2. The device: one socket for the memory (gmem_export takes it
	 *    over), one for kicks.  The device attaches within the
	 *    export's timeout or the export fails -ETIMEDOUT. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, msv) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ksv)) {
		perror("socketpair");
		return 1;
	}
	pid = start_device(path, msv[1], ksv[1]);
	if (pid < 0) {
		fprintf(stderr, "fork: %s\n", strerror((int)-pid));
		return 1;
	}
	close(msv[1]);
	close(ksv[1]);
	ret = gmem_export(g, msv[0], &ea, &peer);
	if (ret) {
		fprintf(stderr, "gmem_export: %s\n", strerror(-ret));
		kill(pid, SIGKILL);
		return 1;
	}
	printf("2. device started (pid %d) and attached\n", (int)pid);
	fflush(stdout);

	/* 3. Requests through the shared ring. */
	memcpy(mem + REQ_OFF, text, sizeof(text));
	n = request(ring, ksv[0], REQ_UPPER, REQ_OFF, sizeof(text), RESP_OFF,
		    PAGE);
	if (n != (int32_t)sizeof(text) ||
	    memcmp(mem + RESP_OFF, "HELLO FROM THE GUEST", sizeof(text))) {
		fprintf(stderr, "upper-case request: %d\n", n);
		return 1;
	}
	printf("3. request UPPER: \"%s\" -> \"%s\"\n", text, mem + RESP_OFF);
	n = request(ring, ksv[0], REQ_SUM, REQ_OFF, sizeof(text), SUM_OFF,
		    PAGE);
	memcpy(&sum, mem + SUM_OFF, sizeof(sum));
	if (n != (int32_t)sizeof(sum) || sum != 1937) {
		fprintf(stderr, "sum request: %d, %llu\n", n,
			(unsigned long long)sum);
		return 1;
	}
	printf("   request SUM: %llu\n", (unsigned long long)sum);
	fflush(stdout);

	/* 4. The guest takes the request buffer back to private.  When
	 *    gmem_set_attributes returns, the device's view no longer
	 *    shows the page: its next read is a SIGBUS. */
	ret = convert(g, REQ_OFF, PAGE, 1);
	if (ret) {
		fprintf(stderr, "to private: %s\n", strerror(-ret));
		return 1;
	}
	printf("4. request buffer (offset 0x%llx) converted to private\n",
	       (unsigned long long)REQ_OFF);
	fflush(stdout);
	n = request(ring, ksv[0], REQ_UPPER, REQ_OFF, sizeof(text), RESP_OFF,
		    PAGE);
	if (n != -EFAULT) {
		fprintf(stderr, "a private buffer was served: %d\n", n);
		return 1;
	}
	printf("   the device failed the request: -EFAULT (%s)\n",
	       strerror(-n));
	ret = convert(g, REQ_OFF, PAGE, 0);
	if (ret) {
		fprintf(stderr, "to shared: %s\n", strerror(-ret));
		return 1;
	}
	n = request(ring, ksv[0], REQ_UPPER, REQ_OFF, sizeof(text), RESP_OFF,
		    PAGE);
	if (n != (int32_t)sizeof(text)) {
		fprintf(stderr, "after sharing again: %d\n", n);
		return 1;
	}
	printf("   shared again, contents kept in place: \"%s\"\n",
	       mem + RESP_OFF);
	fflush(stdout);

	/* 5. Shutdown: the device sees its kick channel close, unmaps and
	 *    closes its peer file (the library says goodbye), exits. */
	close(ksv[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		fprintf(stderr, "device did not exit cleanly (status 0x%x)\n",
			status);
		return 1;
	}
	/* -ECONNRESET: it detached (or died); 0 if the owner's library
	 * has not read its goodbye yet.  Either way it maps nothing. */
	ret = gmem_peer_status(peer);
	printf("5. device exited cleanly; peer status: %s\n",
	       ret == -ECONNRESET ? "detached (-ECONNRESET)" :
	       ret ? strerror(-ret) : "goodbye not read yet");
	if (!gmem_stat(g, &st, sizeof(st)))
		printf("   owner stats: %llu peers attached, %llu lost, %llu "
		       "changes confirmed by peers\n",
		       (unsigned long long)st.peers,
		       (unsigned long long)st.peers_lost,
		       (unsigned long long)st.peer_changes);
	gmem_unexport(peer);
	gmem_munmap(g, mem, GUEST_RAM);
	gmem_close(g);
	printf("peer_vmm: ok\n");
	return 0;
}
