// SPDX-License-Identifier: MIT
/*
 * floor.c - the bare-syscall floor (see floor.h), shared by
 * bench/bench_flip.c and gmemctl bench.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "floor.h"

int floor_uffd_create(struct floor_uffd *f, uint64_t size)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_SIGBUS | UFFD_FEATURE_MINOR_SHMEM,
	};
	struct uffdio_register reg = {
		.mode = UFFDIO_REGISTER_MODE_MISSING |
			UFFDIO_REGISTER_MODE_MINOR,
	};
	int ret;

	f->size = size;
	f->fd = memfd_create("floor-uffd", MFD_CLOEXEC);
	if (f->fd < 0)
		return -errno;
	if (ftruncate(f->fd, (off_t)size)) {
		ret = -errno;
		goto err_fd;
	}
	f->map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd,
		      0);
	if (f->map == MAP_FAILED) {
		ret = -errno;
		goto err_fd;
	}
	f->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	/* Without privilege: user-mode faults only (1), as libgmem does. */
	if (f->uffd < 0 && (errno == EPERM || errno == EACCES))
		f->uffd = (int)syscall(SYS_userfaultfd,
				       O_CLOEXEC | O_NONBLOCK | 1);
	if (f->uffd < 0) {
		ret = -errno;
		goto err_map;
	}
	reg.range.start = (uintptr_t)f->map;
	reg.range.len = size;
	if (ioctl(f->uffd, UFFDIO_API, &api) ||
	    ioctl(f->uffd, UFFDIO_REGISTER, &reg)) {
		ret = -errno;
		goto err_uffd;
	}
	return 0;

err_uffd:
	close(f->uffd);
err_map:
	munmap(f->map, size);
err_fd:
	close(f->fd);
	return ret;
}

void floor_uffd_destroy(struct floor_uffd *f)
{
	munmap(f->map, f->size);
	close(f->uffd);
	close(f->fd);
}

static int uffd_continue(int uffd, char *addr, uint64_t len)
{
	struct uffdio_continue c = {
		.range = { .start = (uintptr_t)addr, .len = len },
	};

	return ioctl(uffd, UFFDIO_CONTINUE, &c) ? -errno : 0;
}

int floor_uffd_convert(struct floor_uffd *f, uint64_t off, uint64_t len,
		       bool to_private)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	char *addr = f->map + off;
	int ret;

	if (to_private)
		return madvise(addr, len, MADV_DONTNEED) ? -errno : 0;
	ret = uffd_continue(f->uffd, addr, len);
	if (ret != -EFAULT && ret != -EEXIST)
		return ret;
	/* A page was never allocated (or was punched): allocate, retry. */
	if (fallocate(f->fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len))
		return -errno;
	for (uint64_t o = 0; o < len; o += page) {
		ret = uffd_continue(f->uffd, addr + o, page);
		if (ret && ret != -EEXIST)
			return ret;
	}
	return 0;
}
