// SPDX-License-Identifier: MIT
/*
 * stream.c - reading and writing the caller's snapshot stream: a file,
 * a pipe or a socket, whichever fd gmem_snapshot_save() or
 * gmem_snapshot_restore() was given.  Like sys.c for the library's own
 * files, this is where errno is read for those calls; it is apart from
 * sys.c because the stream is not libgmem's file and needs what sys.c's
 * wrappers do not: short reads and writes of pipes and sockets, and
 * SIGPIPE.
 *
 * SIGPIPE: a write to a pipe or socket whose reader went away raises
 * SIGPIPE, whose default action kills the process; a library must not.
 * The thread blocks it around the write and, on EPIPE, takes the signal
 * it caused back out of its pending set (unless one was pending before:
 * that one is the caller's), so the caller sees -EPIPE and nothing else.
 *
 * Locking: none (the fd is the caller's; one call uses it at a time).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "snapshot.h"

int snap_writev_all(int fd, struct iovec *iov, int n)
{
	sigset_t pipe_set, old, pending;
	bool was_pending;
	int ret = 0;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	while (n > 0) {
		ssize_t w = writev(fd, iov, n > IOV_MAX ? IOV_MAX : n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			ret = -errno;
			break;
		}
		if (w == 0) {
			ret = -EIO;
			break;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	if (ret == -EPIPE && !was_pending) {
		struct timespec zero = { 0, 0 };

		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 &&
		       errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

int snap_read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t r = read(fd, p, len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ENODATA;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}
