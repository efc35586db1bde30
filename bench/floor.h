/* SPDX-License-Identifier: MIT */
/*
 * floor.h - the bare-syscall floor: the kernel mechanism behind
 * libgmem's userfaultfd-guarded views, done by hand with no library, so
 * no state, no checks and no lock: the least a conversion built on it
 * can cost.
 *
 * A memfd mapped MAP_SHARED and registered with userfaultfd (missing +
 * minor, UFFD_FEATURE_SIGBUS): a page without a page table entry raises
 * SIGBUS.  To private is MADV_DONTNEED (the page cache keeps the page);
 * to shared is UFFDIO_CONTINUE, which maps the page back.
 */
#ifndef BENCH_FLOOR_H
#define BENCH_FLOOR_H

#include <stdbool.h>
#include <stdint.h>

struct floor_uffd {
	int fd;				/* the memfd */
	int uffd;
	char *map;			/* MAP_SHARED of all of fd */
	uint64_t size;
};

/* A sparse memfd of size bytes, mapped and registered: 0 or -errno. */
int floor_uffd_create(struct floor_uffd *f, uint64_t size);
void floor_uffd_destroy(struct floor_uffd *f);

/*
 * Make [off, off + len) private (MADV_DONTNEED) or shared
 * (UFFDIO_CONTINUE; pages the page cache does not hold yet are
 * allocated first, as libgmem does).  0 or -errno.
 */
int floor_uffd_convert(struct floor_uffd *f, uint64_t off, uint64_t len,
		       bool to_private);

#endif /* BENCH_FLOOR_H */
