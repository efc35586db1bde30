// SPDX-License-Identifier: MIT
/*
 * sys.c - the system call layer (see sys.h).  Every call libgmem makes
 * to the kernel goes through here and comes back as 0 (or a value) or
 * -errno, so no other file reads errno.
 *
 * Fault injection: one process-wide counter, armed by tests only.  The
 * fast path is one relaxed atomic load of "armed" per wrapper.  Locking:
 * none of its own; errno is per thread and the counter is atomic.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "sys.h"

#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC	(1 << 15)	/* Linux 6.7 */
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY	1
#endif

static _Atomic int fault_armed;
static _Atomic unsigned long fault_calls, fault_nth, fault_hits;
static _Atomic unsigned int fault_classes;
static int fault_err, fault_mode;

void sys_fault_arm(unsigned long nth, int err, unsigned int mode,
		   unsigned int classes)
{
	atomic_store(&fault_armed, 0);
	fault_err = err > 0 ? err : ENOMEM;
	fault_mode = (int)mode;
	atomic_store(&fault_classes, classes ? classes : SYS_C_FALLIBLE);
	atomic_store(&fault_calls, 0);
	atomic_store(&fault_hits, 0);
	atomic_store(&fault_nth, nth);
	atomic_store(&fault_armed, 1);
}

unsigned long sys_fault_disarm(void)
{
	atomic_store(&fault_armed, 0);
	return atomic_load(&fault_calls);
}

unsigned long sys_fault_calls(void)
{
	return atomic_load(&fault_calls);
}

unsigned long sys_fault_injected(void)
{
	return atomic_load(&fault_hits);
}

/* 0, or the -errno the current call must fail with. */
static inline int fault(unsigned int class)
{
	unsigned long n;

	if (__builtin_expect(!atomic_load_explicit(&fault_armed,
						   memory_order_relaxed), 1))
		return 0;
	if (!(atomic_load(&fault_classes) & class))
		return 0;
	n = atomic_fetch_add(&fault_calls, 1) + 1;
	if (n == atomic_load(&fault_nth) ||
	    (fault_mode == SYS_FAULT_FROM && n > atomic_load(&fault_nth))) {
		atomic_fetch_add(&fault_hits, 1);
		return -fault_err;
	}
	return 0;
}

int sys_inject(unsigned int class)
{
	return fault(class);
}

#define INJECT(class)				\
	do {					\
		int __f = fault(class);		\
		if (__f)			\
			return __f;		\
	} while (0)

static inline int neg_errno(void)
{
	return errno ? -errno : -EIO;
}

int sys_memfd(const char *name, unsigned int flags)
{
	int fd;

	INJECT(SYS_C_FILE);
	fd = memfd_create(name, flags);
	return fd < 0 ? neg_errno() : fd;
}

int sys_open(const char *path, int flags)
{
	int fd;

	INJECT(SYS_C_FILE);
	fd = open(path, flags | O_CLOEXEC);
	return fd < 0 ? neg_errno() : fd;
}

int sys_ftruncate(int fd, uint64_t size)
{
	INJECT(SYS_C_FILE);
	return ftruncate(fd, (off_t)size) ? neg_errno() : 0;
}

int sys_fallocate(int fd, int mode, uint64_t off, uint64_t len)
{
	int ret;

	INJECT(SYS_C_FILE);
	do {
		ret = fallocate(fd, mode, (off_t)off, (off_t)len);
	} while (ret && errno == EINTR);
	return ret ? neg_errno() : 0;
}

int sys_seal(int fd, int seals)
{
	INJECT(SYS_C_FILE);
	return fcntl(fd, F_ADD_SEALS, seals) ? neg_errno() : 0;
}

int sys_cloexec(int fd)
{
	INJECT(SYS_C_FILE);
	return fcntl(fd, F_SETFD, FD_CLOEXEC) ? neg_errno() : 0;
}

int sys_fd_name(int fd, char *buf, size_t len)
{
	char path[32];
	ssize_t n;

	INJECT(SYS_C_FILE);
	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, buf, len - 1);
	if (n < 0)
		return neg_errno();
	buf[n] = '\0';
	return 0;
}

int sys_fd_mode(int fd, unsigned int *mode)
{
	struct stat st;

	INJECT(SYS_C_FILE);
	if (fstat(fd, &st))
		return neg_errno();
	*mode = st.st_mode;
	return 0;
}

int sys_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	INJECT(SYS_C_FILE);
	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

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

int sys_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;

	INJECT(SYS_C_FILE);
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

#define MAX_IOV	64

/* The part of n buffers of len bytes left after skipping done bytes. */
static int iov_from(struct iovec *iov, void *const *bufs, size_t n,
		    size_t len, size_t done)
{
	int k = 0;

	for (size_t i = done / len; i < n && k < MAX_IOV; i++, k++) {
		size_t skip = i == done / len ? done % len : 0;

		iov[k].iov_base = (char *)bufs[i] + skip;
		iov[k].iov_len = len - skip;
	}
	return k;
}

static int prwv(int fd, void *const *bufs, size_t n, size_t len,
		uint64_t off, bool write)
{
	struct iovec iov[MAX_IOV];
	size_t done = 0, total = n * len;

	INJECT(SYS_C_FILE);
	while (done < total) {
		int k = iov_from(iov, bufs, n, len, done);
		ssize_t r = write ? pwritev(fd, iov, k, (off_t)(off + done)) :
				    preadv(fd, iov, k, (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? neg_errno() : -EIO;
		done += (size_t)r;
	}
	return 0;
}

int sys_preadv_all(int fd, void *const *bufs, size_t n, size_t len,
		   uint64_t off)
{
	return prwv(fd, bufs, n, len, off, false);
}

int sys_pwritev_all(int fd, void *const *bufs, size_t n, size_t len,
		    uint64_t off)
{
	return prwv(fd, bufs, n, len, off, true);
}

static int seek(int fd, uint64_t off, int whence, uint64_t *out)
{
	off_t r;

	INJECT(SYS_C_FILE);
	r = lseek(fd, (off_t)off, whence);
	if (r < 0) {
		if (errno != ENXIO)
			return neg_errno();
		/* ENXIO: no data past off (SEEK_DATA); report the end. */
		r = lseek(fd, 0, SEEK_END);
		if (r < 0)
			return neg_errno();
	}
	*out = (uint64_t)r;
	return 0;
}

int sys_seek_data(int fd, uint64_t off, uint64_t *out)
{
	return seek(fd, off, SEEK_DATA, out);
}

int sys_seek_hole(int fd, uint64_t off, uint64_t *out)
{
	return seek(fd, off, SEEK_HOLE, out);
}

int sys_allocated(int fd, uint64_t *bytes)
{
	struct stat st;

	INJECT(SYS_C_FILE);
	if (fstat(fd, &st))
		return neg_errno();
	*bytes = (uint64_t)st.st_blocks * 512;
	return 0;
}

uint64_t sys_coarse_ms(void)
{
	struct timespec ts;

	/* The vDSO: no system call, and it cannot fail with this clock. */
	if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int sys_read_file(const char *path, char *buf, size_t len)
{
	size_t done = 0;
	int fd, ret = 0;

	INJECT(SYS_C_FILE);
	if (!len)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	while (done < len - 1) {
		ssize_t n = read(fd, buf + done, len - 1 - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			ret = neg_errno();
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	buf[done] = '\0';
	close(fd);
	return ret ? ret : (int)done;
}

int sys_read_lines(const char *path, void (*fn)(void *arg, char *line),
		   void *arg)
{
	char buf[8192], line[512];
	size_t ll = 0;
	ssize_t n;
	int fd;

	INJECT(SYS_C_FILE);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			n = neg_errno();
			close(fd);
			return (int)n;
		}
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (ll < sizeof(line) - 1)
					line[ll++] = buf[i];
				continue;
			}
			line[ll] = '\0';
			ll = 0;
			fn(arg, line);
		}
	}
	close(fd);
	return 0;
}

int sys_close(int fd)
{
	/* Linux releases the fd even when close() reports an error. */
	INJECT(SYS_C_REL);
	return close(fd) ? neg_errno() : 0;
}

int sys_mmap(void *addr, size_t len, int prot, int flags, int fd,
	     uint64_t off, void **out)
{
	void *p;

	INJECT(SYS_C_MAP);
	p = mmap(addr, len, prot, flags, fd, (off_t)off);
	if (p == MAP_FAILED)
		return neg_errno();
	*out = p;
	return 0;
}

int sys_munmap(void *addr, size_t len)
{
	INJECT(SYS_C_REL);
	return munmap(addr, len) ? neg_errno() : 0;
}

int sys_mprotect(void *addr, size_t len, int prot)
{
	INJECT(SYS_C_MAP);
	return mprotect(addr, len, prot) ? neg_errno() : 0;
}

int sys_madvise(void *addr, size_t len, int advice)
{
	int ret;

	INJECT(SYS_C_MAP);
	do {
		ret = madvise(addr, len, advice);
	} while (ret && errno == EINTR);
	return ret ? neg_errno() : 0;
}

int sys_mremap_fixed(void *old, size_t len, void *new_addr)
{
	void *p;

	INJECT(SYS_C_MAP);
	p = mremap(old, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, new_addr);
	return p == MAP_FAILED ? neg_errno() : 0;
}

int sys_mincore(void *addr, size_t len, unsigned char *vec)
{
	INJECT(SYS_C_COPY);
	return mincore(addr, len, vec) ? neg_errno() : 0;
}

/*
 * Copies through the kernel (our own process, so no ptrace permission is
 * involved): a page that cannot be read or written gives -EFAULT, and
 * memory that cannot be allocated -ENOMEM, where memcpy() would raise a
 * signal in the caller.
 */
static int copy(void *dst, const void *src, size_t len, bool to)
{
	INJECT(SYS_C_COPY);
	while (len) {
		struct iovec d = { .iov_base = dst, .iov_len = len };
		struct iovec s = { .iov_base = (void *)src, .iov_len = len };
		ssize_t n = to ? process_vm_writev(getpid(), &s, 1, &d, 1, 0) :
				 process_vm_readv(getpid(), &d, 1, &s, 1, 0);

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

static int copyv(char *mem, void *const *bufs, size_t n, size_t len,
		 bool to)
{
	struct iovec iov[MAX_IOV], r;
	size_t done = 0, total = n * len;

	INJECT(SYS_C_COPY);
	while (done < total) {
		int k = iov_from(iov, bufs, n, len, done);
		size_t want = 0;
		ssize_t got;

		for (int i = 0; i < k; i++)
			want += iov[i].iov_len;
		r = (struct iovec){ .iov_base = mem + done, .iov_len = want };
		got = to ? process_vm_writev(getpid(), iov, (unsigned long)k,
					     &r, 1, 0) :
			   process_vm_readv(getpid(), iov, (unsigned long)k,
					    &r, 1, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? neg_errno() : -EFAULT;
		done += (size_t)got;
	}
	return 0;
}

int sys_copyv_from(void *const *bufs, size_t n, size_t len, const void *src)
{
	return copyv((char *)src, bufs, n, len, false);
}

int sys_copyv_to(void *dst, void *const *bufs, size_t n, size_t len)
{
	return copyv(dst, bufs, n, len, true);
}

int sys_copy_from(void *dst, const void *src, size_t len)
{
	return copy(dst, src, len, false);
}

int sys_copy_to(void *dst, const void *src, size_t len)
{
	return copy(dst, src, len, true);
}

/*
 * A userfaultfd that turns every fault on a registered view into SIGBUS
 * (missing and minor, so page cache alone never maps a page).  Without
 * privilege (vm.unprivileged_userfaultfd = 0, the default) a plain one
 * fails with EPERM; UFFD_USER_MODE_ONLY then gives one that handles user
 * faults only, which is all libgmem needs: kernel faults on a registered
 * page without a page-table entry fail with EFAULT either way.
 */
static _Atomic int uffd_wp_async = -1;	/* -1: not known yet */

bool sys_uffd_wp_async(void)
{
	return atomic_load(&uffd_wp_async) == 1;
}

/*
 * Also asks for asynchronous write-protection (UFFD_FEATURE_WP_ASYNC,
 * Linux 6.7), which dirty tracking uses (dirty.c): the kernel resolves a
 * write-protect fault itself, so with SIGBUS a write is never refused.
 * A kernel without it gives a uffd without it: views are guarded the
 * same, and dirty tracking counts their shown pages as always written.
 */
static int uffd_open(bool wp)
{
	const uint64_t need = UFFD_FEATURE_SIGBUS | UFFD_FEATURE_MINOR_SHMEM;
	struct uffdio_api api = { .api = UFFD_API, .features = need };
	int fd, ret;

	if (wp)
		api.features |= UFFD_FEATURE_WP_ASYNC;
	INJECT(SYS_C_UFFD);
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && (errno == EPERM || errno == EACCES))
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK |
				  UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return errno == ENOSYS ? -EOPNOTSUPP : neg_errno();
	if (ioctl(fd, UFFDIO_API, &api)) {
		ret = errno == EINVAL ? -EOPNOTSUPP : neg_errno();
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

int sys_uffd_open(void)
{
	int fd;

	if (atomic_load(&uffd_wp_async) != 0) {
		fd = uffd_open(true);
		if (fd != -EOPNOTSUPP) {
			if (fd >= 0)
				atomic_store(&uffd_wp_async, 1);
			return fd;
		}
	}
	/* The API is asked once per fd: without WP_ASYNC, on a new one. */
	fd = uffd_open(false);
	if (fd >= 0)
		atomic_store(&uffd_wp_async, 0);
	return fd;
}

int sys_uffd_register(int uffd, void *addr, size_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING |
			UFFDIO_REGISTER_MODE_MINOR,
	};

	/* Write-protection is armed only by dirty tracking (dirty.c). */
	if (sys_uffd_wp_async())
		reg.mode |= UFFDIO_REGISTER_MODE_WP;

	INJECT(SYS_C_UFFD);
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		return neg_errno();
	if (!(reg.ioctls & (1ULL << _UFFDIO_CONTINUE)))
		return -EOPNOTSUPP;
	return 0;
}

int sys_uffd_register_wp(int uffd, void *addr, size_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	INJECT(SYS_C_UFFD);
	return ioctl(uffd, UFFDIO_REGISTER, &reg) ? neg_errno() : 0;
}

int sys_uffd_unprotect(int uffd, void *addr, size_t len)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)addr, .len = len },
	};

	INJECT(SYS_C_UFFD);
	return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) ? neg_errno() : 0;
}

int sys_uffd_unregister(int uffd, void *addr, size_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)addr, .len = len };

	INJECT(SYS_C_UFFD);
	return ioctl(uffd, UFFDIO_UNREGISTER, &r) ? neg_errno() : 0;
}

/*
 * Map the page-cache pages of [addr, +len): -EFAULT if one is absent,
 * pages already mapped are skipped.
 */
int sys_uffd_continue(int uffd, void *addr, size_t len)
{
	struct uffdio_continue c = {
		.range = { .start = (uintptr_t)addr, .len = len },
	};

	INJECT(SYS_C_UFFD);
	for (;;) {
		if (!ioctl(uffd, UFFDIO_CONTINUE, &c))
			return 0;
		if (errno == EEXIST) {
			/* Some page is mapped already: go page by page. */
			if (c.range.len <= (uint64_t)getpagesize())
				return 0;
			break;
		}
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
	for (uint64_t ps = (uint64_t)getpagesize(), end = c.range.start +
	     c.range.len, p = c.range.start; p < end; p += ps) {
		struct uffdio_continue one = { .range = { p, ps } };

		while (ioctl(uffd, UFFDIO_CONTINUE, &one) && errno != EEXIST) {
			if (errno != EAGAIN && errno != EINTR)
				return neg_errno();
			one.mapped = 0;
		}
	}
	return 0;
}

/* PAGEMAP_SCAN (linux/fs.h, Linux 6.7), for older headers. */
struct sys_pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask;
	uint64_t return_mask;
};

#define SYS_PAGEMAP_SCAN	_IOWR('f', 16, struct sys_pm_scan_arg)

static int pagemap_fd = -1;
static pthread_mutex_t pagemap_lock = PTHREAD_MUTEX_INITIALIZER;

/* /proc/self/pagemap, opened once (a fork's child opens its own). */
static int pagemap(void)
{
	static pid_t owner;
	int fd;

	pthread_mutex_lock(&pagemap_lock);
	if (pagemap_fd >= 0 && owner != getpid()) {
		close(pagemap_fd);
		pagemap_fd = -1;
	}
	if (pagemap_fd < 0) {
		pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		owner = getpid();
	}
	fd = pagemap_fd < 0 ? -errno : pagemap_fd;
	pthread_mutex_unlock(&pagemap_lock);
	return fd;
}

long sys_pagemap_scan(void *addr, size_t len, uint64_t flags,
		      uint64_t need, uint64_t anyof, uint64_t ret_mask,
		      struct sys_page_region *vec, size_t n, void **walk_end)
{
	struct sys_pm_scan_arg a = {
		.size = sizeof(a),
		.flags = flags,
		.start = (uintptr_t)addr,
		.end = (uintptr_t)addr + len,
		.vec = (uintptr_t)vec,
		.vec_len = n,
		.category_mask = need,
		.category_anyof_mask = anyof,
		.return_mask = ret_mask,
	};
	int fd = pagemap();
	long ret;

	INJECT(SYS_C_COPY);
	if (fd < 0)
		return fd;
	do {
		ret = ioctl(fd, SYS_PAGEMAP_SCAN, &a);
	} while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return errno == ENOTTY ? -EOPNOTSUPP : neg_errno();
	*walk_end = (void *)(uintptr_t)a.walk_end;
	return ret;
}

long sys_ioctl(int fd, unsigned long req, void *arg)
{
	long ret;

	INJECT(SYS_C_KVM);
	do {
		ret = ioctl(fd, req, arg);
	} while (ret < 0 && errno == EINTR);
	return ret < 0 ? neg_errno() : ret;
}

long sys_ioctl_val(int fd, unsigned long req, unsigned long arg)
{
	long ret;

	INJECT(SYS_C_KVM);
	do {
		ret = ioctl(fd, req, arg);
	} while (ret < 0 && errno == EINTR);
	return ret < 0 ? neg_errno() : ret;
}
