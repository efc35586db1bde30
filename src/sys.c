// SPDX-License-Identifier: MIT
/*
 * sys.c - the system call layer.  Every call libgmem makes to the kernel
 * goes through here and comes back as 0 (or a value) or -errno, so no
 * other file reads errno.  No locking of its own; errno is per thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

static inline int neg_errno(void)
{
	return errno ? -errno : -EIO;
}

int sys_memfd(const char *name, unsigned int flags)
{
	int fd = memfd_create(name, flags);

	return fd < 0 ? neg_errno() : fd;
}

int sys_ftruncate(int fd, uint64_t size)
{
	return ftruncate(fd, (off_t)size) ? neg_errno() : 0;
}

int sys_fallocate(int fd, int mode, uint64_t off, uint64_t len)
{
	int ret;

	do {
		ret = fallocate(fd, mode, (off_t)off, (off_t)len);
	} while (ret && errno == EINTR);
	return ret ? neg_errno() : 0;
}

int sys_mmap(void *addr, size_t len, int prot, int flags, int fd,
	     uint64_t off, void **out)
{
	void *p = mmap(addr, len, prot, flags, fd, (off_t)off);

	if (p == MAP_FAILED)
		return neg_errno();
	*out = p;
	return 0;
}

int sys_munmap(void *addr, size_t len)
{
	return munmap(addr, len) ? neg_errno() : 0;
}

int sys_mprotect(void *addr, size_t len, int prot)
{
	return mprotect(addr, len, prot) ? neg_errno() : 0;
}

int sys_seal(int fd, int seals)
{
	return fcntl(fd, F_ADD_SEALS, seals) ? neg_errno() : 0;
}

int sys_madvise(void *addr, size_t len, int advice)
{
	return madvise(addr, len, advice) ? neg_errno() : 0;
}

int sys_mremap_fixed(void *old, size_t len, void *new_addr)
{
	void *p = mremap(old, len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
			 new_addr);

	return p == MAP_FAILED ? neg_errno() : 0;
}

int sys_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? neg_errno() : -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/*
 * memcpy(dst, src, len) that returns -EFAULT instead of crashing when src
 * is not readable: the kernel reads it for us (our own process, so no
 * ptrace permission is involved).
 */
int sys_copy_checked(void *dst, const void *src, size_t len)
{
	while (len) {
		struct iovec local = { .iov_base = dst, .iov_len = len };
		struct iovec remote = { .iov_base = (void *)src,
					.iov_len = len };
		ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1,
					     0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? neg_errno() : -EFAULT;
		dst = (char *)dst + n;
		src = (const char *)src + n;
		len -= (size_t)n;
	}
	return 0;
}

int sys_allocated(int fd, uint64_t *bytes)
{
	struct stat st;

	if (fstat(fd, &st))
		return neg_errno();
	*bytes = (uint64_t)st.st_blocks * 512;
	return 0;
}

int sys_close(int fd)
{
	/* Linux releases the fd even when close() reports an error. */
	return close(fd) ? neg_errno() : 0;
}

/*
 * A userfaultfd that turns every fault on a registered view into SIGBUS
 * (missing and minor, so page cache alone never maps a page) and keeps
 * its registration across mremap() (EVENT_REMAP), which is how a view
 * switches mode atomically.  Kernel-mode faults are covered too, so a
 * system call handed a private address fails with EFAULT.
 */
int sys_uffd_open(void)
{
	const uint64_t need = UFFD_FEATURE_SIGBUS | UFFD_FEATURE_MINOR_SHMEM |
			      UFFD_FEATURE_EVENT_REMAP;
	struct uffdio_api api = { .api = UFFD_API, .features = need };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return neg_errno();
	if (ioctl(fd, UFFDIO_API, &api)) {
		int ret = errno == EINVAL ? -EOPNOTSUPP : neg_errno();

		close(fd);
		return ret;
	}
	if ((api.features & need) != need ||
	    !(api.ioctls & (1ULL << _UFFDIO_REGISTER))) {
		close(fd);
		return -EOPNOTSUPP;
	}
	return fd;
}

int sys_uffd_register(int uffd, void *addr, size_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING |
			UFFDIO_REGISTER_MODE_MINOR,
	};

	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		return neg_errno();
	if (!(reg.ioctls & (1ULL << _UFFDIO_CONTINUE)))
		return -EOPNOTSUPP;
	return 0;
}

/* Map the page-cache pages of [addr, +len); -EFAULT if one is absent. */
int sys_uffd_continue(int uffd, void *addr, size_t len)
{
	struct uffdio_continue c = {
		.range = { .start = (uintptr_t)addr, .len = len },
	};

	for (;;) {
		if (!ioctl(uffd, UFFDIO_CONTINUE, &c))
			return 0;
		if (errno != EAGAIN && errno != EINTR)
			return neg_errno();
		/* Partial progress: c.mapped says how far it got. */
		if (c.mapped > 0) {
			c.range.start += (uint64_t)c.mapped;
			c.range.len -= (uint64_t)c.mapped;
		}
		c.mapped = 0;
		if (!c.range.len)
			return 0;
	}
}

/* Consume one event (the REMAP of a mode switch); waits up to 10 s. */
int sys_uffd_read_event(int uffd)
{
	struct pollfd pfd = { .fd = uffd, .events = POLLIN };
	struct uffd_msg msg;

	for (;;) {
		int n = poll(&pfd, 1, 10000);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? neg_errno() : -ETIMEDOUT;
		if (read(uffd, &msg, sizeof(msg)) == (ssize_t)sizeof(msg))
			return msg.event;
		if (errno != EAGAIN && errno != EINTR)
			return neg_errno();
	}
}
