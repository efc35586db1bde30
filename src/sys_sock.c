// SPDX-License-Identifier: MIT
/*
 * sys_sock.c - the system calls of the peer protocol: unix stream
 * sockets with fds and credentials, poll, pidfds.  Part of the system
 * call layer (sys.h): -errno returns, fault injection (SYS_C_SOCK),
 * nothing knows struct gmem.  Locking: none; errno is per thread.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sys.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open		434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal	424
#endif

static inline int neg_errno(void)
{
	return errno ? -errno : -EIO;
}

uint64_t sys_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int sys_sock_take(int fd)
{
	int type = 0, domain = 0;
	socklen_t len = sizeof(type);
	struct sockaddr_un sa;
	socklen_t salen = sizeof(sa);
	int ret = sys_inject(SYS_C_SOCK);

	if (ret)
		return ret;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len))
		return errno == ENOTSOCK || errno == EBADF ? -errno
							   : neg_errno();
	len = sizeof(domain);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len))
		return neg_errno();
	if (type != SOCK_STREAM || domain != AF_UNIX)
		return -EPROTOTYPE;
	if (getpeername(fd, (struct sockaddr *)&sa, &salen))
		return -ENOTCONN;
	return sys_cloexec(fd);
}

/* Wait for events on fd until deadline (UINT64_MAX: none): 1, 0 timeout. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int ret, ms;

	for (;;) {
		if (deadline == UINT64_MAX) {
			ms = -1;
		} else {
			uint64_t now = sys_now_ms();

			ms = now >= deadline ? 0 : (int)(deadline - now);
		}
		ret = poll(&pfd, 1, ms);
		if (ret > 0)
			return 1;
		if (!ret)
			return 0;
		if (errno != EINTR)
			return neg_errno();
	}
}

static uint64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? UINT64_MAX : sys_now_ms() + (uint64_t)timeout_ms;
}

int sys_sock_send(int fd, const void *buf, size_t len, const int *fds,
		  int nfds, bool creds, int timeout_ms)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8) +
			 CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} u;
	uint64_t deadline = deadline_of(timeout_ms);
	size_t done = 0;
	int ret = sys_inject(SYS_C_SOCK);

	if (ret)
		return ret;
	if (nfds < 0 || nfds > 8)
		return -EINVAL;
	while (done < len) {
		struct iovec iov = { (char *)buf + done, len - done };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		struct cmsghdr *c;
		ssize_t n;

		if (!done && (nfds || creds)) {
			memset(&u, 0, sizeof(u));
			mh.msg_control = u.buf;
			mh.msg_controllen = (nfds ? CMSG_SPACE(sizeof(int) *
							      (size_t)nfds) : 0) +
					    (creds ? CMSG_SPACE(sizeof(struct ucred))
						   : 0);
			c = CMSG_FIRSTHDR(&mh);
			if (nfds) {
				c->cmsg_level = SOL_SOCKET;
				c->cmsg_type = SCM_RIGHTS;
				c->cmsg_len = CMSG_LEN(sizeof(int) *
						       (size_t)nfds);
				memcpy(CMSG_DATA(c), fds,
				       sizeof(int) * (size_t)nfds);
				c = CMSG_NXTHDR(&mh, c);
			}
			if (creds) {
				struct ucred uc = { getpid(), getuid(),
						    getgid() };

				c->cmsg_level = SOL_SOCKET;
				c->cmsg_type = SCM_CREDENTIALS;
				c->cmsg_len = CMSG_LEN(sizeof(uc));
				memcpy(CMSG_DATA(c), &uc, sizeof(uc));
			}
		}
		n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ret = wait_fd(fd, POLLOUT, deadline);
			if (ret < 0)
				return ret;
			if (!ret)
				return -ETIMEDOUT;
			continue;
		}
		return n < 0 ? neg_errno() : -EIO;
	}
	return 0;
}

/* Keep up to maxfds of the fds in c, close the rest. */
static void take_fds(struct cmsghdr *c, int *fds, int maxfds, int *nfds)
{
	size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
	int fd;

	for (size_t i = 0; i < n; i++) {
		memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
		if (fds && *nfds < maxfds)
			fds[(*nfds)++] = fd;
		else
			close(fd);
	}
}

int sys_sock_recv(int fd, void *buf, size_t len, int *fds, int maxfds,
		  int *nfds, struct ucred *cred, int timeout_ms)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8) +
			 CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} u;
	uint64_t deadline = deadline_of(timeout_ms);
	size_t done = 0;
	int got = 0, ret = sys_inject(SYS_C_SOCK);

	if (ret)
		return ret;
	if (nfds)
		*nfds = 0;
	while (done < len) {
		struct iovec iov = { (char *)buf + done, len - done };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = u.buf,
				     .msg_controllen = sizeof(u.buf) };
		ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n > 0) {
			for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c;
			     c = CMSG_NXTHDR(&mh, c)) {
				if (c->cmsg_level != SOL_SOCKET)
					continue;
				if (c->cmsg_type == SCM_RIGHTS)
					take_fds(c, fds, maxfds, &got);
				else if (c->cmsg_type == SCM_CREDENTIALS &&
					 cred)
					memcpy(cred, CMSG_DATA(c),
					       sizeof(*cred));
			}
			done += (size_t)n;
			continue;
		}
		if (!n) {
			ret = -ECONNRESET;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			ret = neg_errno();
			break;
		}
		ret = wait_fd(fd, POLLIN, deadline);
		if (ret <= 0) {
			ret = ret ? ret : -ETIMEDOUT;
			break;
		}
		ret = 0;
	}
	if (nfds)
		*nfds = got;
	else
		for (int i = 0; i < got; i++)
			close(fds[i]);
	if (ret && fds)
		for (int i = 0; i < got; i++)
			close(fds[i]);
	if (ret && nfds)
		*nfds = 0;
	return ret;
}

int sys_sock_read_some(int fd, void *buf, size_t len)
{
	ssize_t n;
	int ret = sys_inject(SYS_C_SOCK);

	if (ret)
		return ret;
	do {
		n = recv(fd, buf, len, MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n > 0)
		return (int)n;
	if (!n)
		return -ECONNRESET;
	return errno == EWOULDBLOCK ? -EAGAIN : neg_errno();
}

int sys_sock_passcred(int fd)
{
	int one = 1;
	int ret = sys_inject(SYS_C_SOCK);

	if (ret)
		return ret;
	return setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) ?
	       neg_errno() : 0;
}

int sys_sock_shutdown(int fd)
{
	return shutdown(fd, SHUT_RDWR) && errno != ENOTCONN ? neg_errno() : 0;
}

int sys_poll_in(int fd, int timeout_ms)
{
	return wait_fd(fd, POLLIN, deadline_of(timeout_ms));
}

int sys_pidfd_open(pid_t pid)
{
	int ret = sys_inject(SYS_C_SOCK);
	long fd;

	if (ret)
		return ret;
	fd = syscall(SYS_pidfd_open, pid, 0);
	return fd < 0 ? neg_errno() : (int)fd;
}

int sys_pidfd_kill(int pidfd, int sig)
{
	return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) ?
	       neg_errno() : 0;
}
