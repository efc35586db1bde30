// SPDX-License-Identifier: MIT
/*
 * backing.c - the memory behind a file (see backing.h): memfd, shmem
 * THP, per-region hugetlb and, through kvm.c, guest_memfd.
 *
 * Every mapping is made by map.c (DONTFORK under the fork guard); this
 * file only says what to map where.  Locking: none of its own (backing.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backing.h"
#include "map.h"
#include "sys.h"

#ifndef MFD_HUGE_1GB
#define MFD_HUGE_1GB		(30U << 26)
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#define MADV_POPULATE_WRITE	23
#endif

#define THP_SYSFS	"/sys/kernel/mm/transparent_hugepage/shmem_enabled"
#define SEALS		(F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)
#define KVM_CHUNK	4096		/* pages per mincore() call */

int gmem_backing_advice(const struct gmem_backing *b)
{
	switch (b->kind) {
	case GMEM_BACKING_MEMFD:
		return MAP_ADV_NOHUGE;
	case GMEM_BACKING_THP:
		return MAP_ADV_HUGE;
	default:
		return MAP_ADV_NONE;
	}
}

/* Will shmem hand out huge folios to MADV_HUGEPAGE mappings? */
static int thp_available(void)
{
	char buf[128];
	const char *mode;
	int ret = sys_read_file(THP_SYSFS, buf, sizeof(buf));

	if (ret < 0)
		return -EOPNOTSUPP;
	mode = strchr(buf, '[');
	if (!mode || !strncmp(mode, "[never]", 7) ||
	    !strncmp(mode, "[deny]", 6))
		return -EOPNOTSUPP;
	return 0;
}

/* A sealed memfd of size bytes; hugetlb pages reserved now. */
static int memfd_backing(const char *name, unsigned int flags, uint64_t size,
			 bool reserve)
{
	int fd = sys_memfd(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | flags);
	int ret;

	if (fd < 0)
		return fd == -EINVAL && flags ? -EOPNOTSUPP : fd;
	ret = sys_ftruncate(fd, size);
	if (!ret && reserve) {
		ret = sys_fallocate(fd, 0, 0, size);
		if (ret == -ENOSPC)
			ret = -ENOMEM;	/* the hugetlb pool is short */
	}
	if (!ret)
		ret = sys_seal(fd, SEALS);
	if (ret) {
		sys_close(fd);
		return ret;
	}
	return fd;
}

static int hugetlb_create(struct gmem_backing *b)
{
	b->nr_regions = b->size >> 30;
	b->region_fd = malloc(b->nr_regions * sizeof(int));
	if (!b->region_fd)
		return -ENOMEM;
	for (uint64_t r = 0; r < b->nr_regions; r++) {
		int fd = memfd_backing("gmem-1g", MFD_HUGETLB | MFD_HUGE_1GB,
				       1ULL << 30, true);

		if (fd < 0) {
			while (r--)
				sys_close(b->region_fd[r]);
			free(b->region_fd);
			b->region_fd = NULL;
			return fd;
		}
		b->region_fd[r] = fd;
	}
	return 0;
}

int gmem_backing_create(struct gmem_backing *b,
			const struct gmem_backing_args *a)
{
	int ret;

	*b = (struct gmem_backing){
		.size = a->size,
		.huge_shift = a->huge_shift,
		.fd = -1, .hole_fd = -1, .vm_fd = -1, .kvm_fd = -1,
	};
	b->page_shift = (unsigned int)__builtin_ctzl(
				(unsigned long)sysconf(_SC_PAGESIZE));
	b->npages = b->size >> b->page_shift;
	ret = map_init();
	if (ret)
		return ret;
	if (a->kvm) {
		b->kind = GMEM_BACKING_KVM;
		ret = gmem_kvm_open(b, a->vm_fd, a->init_private);
	} else if (a->huge_shift == 30) {
		b->kind = GMEM_BACKING_HUGETLB;
		ret = hugetlb_create(b);
	} else if (a->huge_shift == 21) {
		b->kind = GMEM_BACKING_THP;
		ret = thp_available();
		if (!ret)
			ret = b->fd = memfd_backing("gmem-thp", 0, b->size,
						    false);
	} else {
		b->kind = GMEM_BACKING_MEMFD;
		ret = b->fd = memfd_backing("gmem", 0, b->size, false);
	}
	if (ret < 0)
		return ret;
	ret = b->hole_fd = map_hole_fd();
	if (ret < 0) {
		b->hole_fd = -1;
		gmem_backing_destroy(b);
		return ret;
	}
	return 0;
}

int gmem_backing_import(struct gmem_backing *b, enum gmem_backing_kind kind,
			int fd, uint64_t size, unsigned int huge_shift)
{
	int ret;

	*b = (struct gmem_backing){
		.kind = kind, .size = size, .huge_shift = huge_shift,
		.fd = -1, .hole_fd = -1, .vm_fd = -1, .kvm_fd = -1,
		.imported = true,
	};
	b->page_shift = (unsigned int)__builtin_ctzl(
				(unsigned long)sysconf(_SC_PAGESIZE));
	b->npages = b->size >> b->page_shift;
	if ((kind == GMEM_BACKING_THP) != (huge_shift == 21) ||
	    (kind == GMEM_BACKING_HUGETLB) != (huge_shift == 30) ||
	    (huge_shift && size & ((1ULL << huge_shift) - 1)))
		return -EPROTO;
	ret = map_init();
	if (ret)
		return ret;
	if (kind == GMEM_BACKING_HUGETLB) {
		/* The region files come later, one message each. */
		b->nr_regions = size >> 30;
		b->region_fd = malloc(b->nr_regions * sizeof(int));
		if (!b->region_fd)
			return -ENOMEM;
		for (uint64_t r = 0; r < b->nr_regions; r++)
			b->region_fd[r] = -1;
	}
	ret = b->hole_fd = map_hole_fd();
	if (ret < 0) {
		b->hole_fd = -1;
		free(b->region_fd);
		b->region_fd = NULL;
		return ret;
	}
	if (kind == GMEM_BACKING_HUGETLB)
		sys_close(fd);
	else
		b->fd = fd;
	return 0;
}

void gmem_backing_destroy(struct gmem_backing *b)
{
	if (b->window)
		map_unmap(b->window, b->size);
	b->window = NULL;
	for (uint64_t r = 0; b->region_fd && r < b->nr_regions; r++)
		if (b->region_fd[r] >= 0)
			sys_close(b->region_fd[r]);
	free(b->region_fd);
	b->region_fd = NULL;
	if (b->fd >= 0)
		sys_close(b->fd);
	b->fd = -1;
	if (b->kind == GMEM_BACKING_KVM)
		gmem_kvm_close(b);
	if (b->hole_fd >= 0)
		sys_close(b->hole_fd);
	b->hole_fd = -1;
}

int gmem_backing_hole_at(struct gmem_backing *b, void *addr, uint64_t first,
			 uint64_t npages, int prot)
{
	return map_hole_at(addr, (size_t)gmem_backing_off(b, npages), prot,
			   b->hole_fd, gmem_backing_off(b, first));
}

int gmem_backing_map_at(struct gmem_backing *b, void *addr, uint64_t first,
			uint64_t npages, int prot)
{
	int adv = gmem_backing_advice(b);
	uint64_t rp;
	int ret;

	if (b->kind != GMEM_BACKING_HUGETLB)
		return map_fd_at(addr, (size_t)gmem_backing_off(b, npages),
				 prot, b->fd, gmem_backing_off(b, first), adv,
				 b->hole_fd, gmem_backing_off(b, first));
	rp = gmem_backing_region_pages(b);
	if ((first | npages) & (rp - 1))
		return -EINVAL;
	for (uint64_t p = first; p < first + npages; p += rp) {
		char *a = (char *)addr + gmem_backing_off(b, p - first);

		ret = map_fd_at(a, 1UL << 30, prot, b->region_fd[p / rp], 0,
				adv, b->hole_fd, gmem_backing_off(b, p));
		if (ret)
			return ret;
	}
	return 0;
}

int gmem_backing_map_new(struct gmem_backing *b, uint64_t first, size_t len,
			 int prot, void **out)
{
	uint64_t n = len >> b->page_shift;
	uint64_t in = first < b->npages ? b->npages - first : 0;
	char *addr;
	int ret;

	if (in > n)
		in = n;
	ret = map_reserve(len, b->huge_shift, gmem_backing_off(b, first),
			  (void **)&addr);
	if (ret)
		return ret;
	if (in)
		ret = gmem_backing_map_at(b, addr, first, in, prot);
	if (!ret && n > in)	/* past the end of the file: SIGBUS */
		ret = gmem_backing_hole_at(b, addr + gmem_backing_off(b, in),
					   first + in, n - in, prot);
	if (ret) {
		map_unmap(addr, len);
		return ret;
	}
	*out = addr;
	return 0;
}

int gmem_backing_window(struct gmem_backing *b)
{
	void *p;
	int ret;

	if (b->window)
		return 0;
	if (b->imported)	/* a peer never maps private pages */
		return -EPERM;
	ret = gmem_backing_map_new(b, 0, b->size, PROT_READ | PROT_WRITE, &p);
	if (!ret)
		b->window = p;
	return ret;
}

static inline char *win(const struct gmem_backing *b, uint64_t page)
{
	return b->window + gmem_backing_off(b, page);
}

/*
 * A 4 KiB file allocates its pages only through the window, which is
 * MADV_NOHUGEPAGE: fallocate() and write() into a hole follow
 * shmem_enabled alone, and with "always", "within_size" or "force"
 * (set before the call, or while it runs: no check can close that race)
 * they would make a huge folio, whose later split (a punch, a re-home)
 * zaps the entries of every mapping of it, and a userfaultfd-guarded
 * view then raises SIGBUS on shared pages.  MADV_POPULATE_WRITE is
 * about a third as fast as fallocate(); the promise comes first.
 */
static int alloc_small(struct gmem_backing *b, uint64_t start, uint64_t end)
{
	int ret = gmem_backing_window(b);

	return ret ? ret : sys_madvise(win(b, start),
				       gmem_backing_off(b, end - start),
				       MADV_POPULATE_WRITE);
}

int gmem_backing_alloc(struct gmem_backing *b, uint64_t start, uint64_t end)
{
	uint64_t off = gmem_backing_off(b, start);
	uint64_t len = gmem_backing_off(b, end - start);
	int ret;

	switch (b->kind) {
	case GMEM_BACKING_MEMFD:
		return alloc_small(b, start, end);
	case GMEM_BACKING_THP:
		return sys_fallocate(b->fd, FALLOC_FL_KEEP_SIZE, off, len);
	case GMEM_BACKING_HUGETLB:
		for (uint64_t r = off >> 30; r < (off + len + (1ULL << 30) -
						   1) >> 30; r++) {
			ret = sys_fallocate(b->region_fd[r], 0, 0, 1ULL << 30);
			if (ret)
				return ret == -ENOSPC ? -ENOMEM : ret;
		}
		return 0;
	case GMEM_BACKING_KVM:
		/*
		 * guest_memfd zeroes a page at its first fault and counts
		 * nothing before: fault it in, so that it is allocated in
		 * every sense (and mincore() sees it).
		 */
		ret = sys_fallocate(b->fd, FALLOC_FL_KEEP_SIZE, off, len);
		if (!ret)
			ret = gmem_backing_window(b);
		return ret ? ret : sys_madvise(win(b, start), len,
					       MADV_POPULATE_READ);
	}
	return -EINVAL;
}

int gmem_backing_punch(struct gmem_backing *b, uint64_t start, uint64_t end)
{
	const int mode = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE;
	uint64_t off = gmem_backing_off(b, start);
	uint64_t stop = gmem_backing_off(b, end);
	int ret;

	if (b->kind != GMEM_BACKING_HUGETLB)
		return sys_fallocate(b->fd, mode, off, stop - off);
	/* Per region; a partial region is zeroed by the kernel. */
	while (off < stop) {
		uint64_t r = off >> 30, in = off & ((1ULL << 30) - 1);
		uint64_t n = (1ULL << 30) - in;

		if (n > stop - off)
			n = stop - off;
		ret = sys_fallocate(b->region_fd[r], mode, in, n);
		if (ret)
			return ret;
		off += n;
	}
	return 0;
}

/* Pages of [start, end) in memory, counted on the window (guest_memfd). */
static int kvm_next_data(struct gmem_backing *b, uint64_t start, uint64_t end,
			 uint64_t *rs, uint64_t *re)
{
	/* On the stack: no malloc() (an mmap() at the VMA limit). */
	unsigned char vec[KVM_CHUNK];
	uint64_t p = start;
	int ret = gmem_backing_window(b);

	*rs = *re = end;
	if (ret)
		return ret;
	while (p < end) {
		uint64_t n = end - p < KVM_CHUNK ? end - p : KVM_CHUNK;

		ret = sys_mincore(win(b, p), (size_t)gmem_backing_off(b, n),
				  vec);
		if (ret)
			break;
		for (uint64_t i = 0; i < n; i++) {
			bool in = vec[i] & 1;

			if (*rs == end && in) {
				*rs = p + i;
			} else if (*rs != end && !in) {
				*re = p + i;
				goto out;
			}
		}
		p += n;
	}
out:
	return ret;
}

int gmem_backing_next_data(struct gmem_backing *b, uint64_t start,
			   uint64_t end, uint64_t *run_start,
			   uint64_t *run_end)
{
	uint64_t off = gmem_backing_off(b, start), d, h;
	int fd = b->fd, ret;

	if (b->kind == GMEM_BACKING_KVM)
		return kvm_next_data(b, start, end, run_start, run_end);
	*run_start = *run_end = end;
	if (b->kind == GMEM_BACKING_HUGETLB) {
		/* Regions are reserved: allocated unless punched. */
		for (uint64_t p = start; p < end;) {
			uint64_t rp = gmem_backing_region_pages(b);
			uint64_t next = (p / rp + 1) * rp, bytes;

			ret = sys_allocated(b->region_fd[p / rp], &bytes);
			if (ret)
				return ret;
			if (bytes) {
				*run_start = p;
				*run_end = next < end ? next : end;
				return 0;
			}
			p = next;
		}
		return 0;
	}
	ret = sys_seek_data(fd, off, &d);
	if (ret)
		return ret;
	if (d >= gmem_backing_off(b, end))
		return 0;
	ret = sys_seek_hole(fd, d, &h);
	if (ret)
		return ret;
	*run_start = d >> b->page_shift;
	*run_end = (h + gmem_backing_off(b, 1) - 1) >> b->page_shift;
	if (*run_end > end)
		*run_end = end;
	return 0;
}

int gmem_backing_allocated(struct gmem_backing *b, uint64_t *bytes)
{
	uint64_t n = 0, rs, re, p = 0;
	int ret;

	*bytes = 0;
	switch (b->kind) {
	case GMEM_BACKING_MEMFD:
	case GMEM_BACKING_THP:
		return sys_allocated(b->fd, bytes);
	case GMEM_BACKING_HUGETLB:
		for (uint64_t r = 0; r < b->nr_regions; r++) {
			ret = sys_allocated(b->region_fd[r], &rs);
			if (ret)
				return ret;
			*bytes += rs;
		}
		return 0;
	case GMEM_BACKING_KVM:
		while (p < b->npages) {
			ret = kvm_next_data(b, p, b->npages, &rs, &re);
			if (ret)
				return ret;
			n += re - rs;
			p = re;
		}
		*bytes = gmem_backing_off(b, n);
		return 0;
	}
	return -EINVAL;
}

int gmem_backing_read(struct gmem_backing *b, uint64_t page, void *buf,
		      uint64_t npages)
{
	size_t len = (size_t)gmem_backing_off(b, npages);
	int ret;

	if (b->kind == GMEM_BACKING_MEMFD || b->kind == GMEM_BACKING_THP)
		return sys_pread_all(b->fd, buf, len,
				     gmem_backing_off(b, page));
	ret = gmem_backing_window(b);
	return ret ? ret : sys_copy_from(buf, win(b, page), len);
}

int gmem_backing_write_bytes(struct gmem_backing *b, uint64_t off,
			     const void *buf, size_t len)
{
	int ret;

	/*
	 * write() is about twice as fast as faulting the pages in: THP
	 * wants its huge folios; a 4 KiB file has its pages allocated
	 * through the window first (alloc_small()), so write() finds no
	 * hole to fill with a huge folio.
	 */
	if (b->kind == GMEM_BACKING_THP)
		return sys_pwrite_all(b->fd, buf, len, off);
	if (b->kind == GMEM_BACKING_MEMFD && len) {
		uint64_t ps = gmem_backing_off(b, 1);

		ret = alloc_small(b, off / ps, (off + len + ps - 1) / ps);
		return ret ? ret : sys_pwrite_all(b->fd, buf, len, off);
	}
	ret = gmem_backing_window(b);
	return ret ? ret : sys_copy_to(b->window + off, buf, len);
}

int gmem_backing_write(struct gmem_backing *b, uint64_t page, const void *buf,
		       uint64_t npages)
{
	return gmem_backing_write_bytes(b, gmem_backing_off(b, page), buf,
					(size_t)gmem_backing_off(b, npages));
}

int gmem_backing_readv(struct gmem_backing *b, uint64_t page,
		       void *const *bufs, uint64_t n)
{
	size_t ps = (size_t)gmem_backing_off(b, 1);
	int ret;

	if (b->kind == GMEM_BACKING_MEMFD || b->kind == GMEM_BACKING_THP)
		return sys_preadv_all(b->fd, bufs, (size_t)n, ps,
				      gmem_backing_off(b, page));
	ret = gmem_backing_window(b);
	return ret ? ret : sys_copyv_from(bufs, (size_t)n, ps, win(b, page));
}

int gmem_backing_writev(struct gmem_backing *b, uint64_t page,
			void *const *bufs, uint64_t n)
{
	size_t ps = (size_t)gmem_backing_off(b, 1);
	int ret;

	if (b->kind == GMEM_BACKING_MEMFD) {	/* see write_bytes */
		ret = alloc_small(b, page, page + n);
		if (ret)
			return ret;
	}
	if (b->kind == GMEM_BACKING_THP || b->kind == GMEM_BACKING_MEMFD)
		return sys_pwritev_all(b->fd, bufs, (size_t)n, ps,
				       gmem_backing_off(b, page));
	ret = gmem_backing_window(b);
	return ret ? ret : sys_copyv_to(win(b, page), bufs, (size_t)n, ps);
}

int gmem_backing_detached(struct gmem_backing *b, uint64_t start,
			  uint64_t end, uint64_t *bad)
{
	unsigned char vec[512];
	int ret;

	/* THP, and 4 KiB files that a write may have given huge folios. */
	if (b->kind != GMEM_BACKING_THP && b->kind != GMEM_BACKING_MEMFD)
		return 0;
	ret = gmem_backing_window(b);
	for (uint64_t p = start; !ret && p < end;) {
		uint64_t n = end - p < 512 ? end - p : 512;

		ret = sys_mincore(win(b, p), (size_t)gmem_backing_off(b, n),
				  vec);
		for (uint64_t i = 0; !ret && i < n; i++) {
			if (vec[i] & 1) {
				*bad = p + i;
				return -EAGAIN;
			}
		}
		p += n;
	}
	return ret;
}

/*
 * hugetlb: a fresh 1 GiB page for region r.  Its contents are copied
 * into a new file (which needs one free page in the pool: -ENOMEM if
 * there is none, and nothing changed), the window is pointed at the new
 * file and the old one is closed: a kernel reference to the old page
 * keeps it, and nothing else.  Callers guard the region in every view
 * first.
 */
int gmem_backing_region_swap(struct gmem_backing *b, uint64_t r)
{
	uint64_t first = r * gmem_backing_region_pages(b);
	char *tmp, *at;
	int fd, ret;

	ret = gmem_backing_window(b);
	if (ret)
		return ret;
	fd = memfd_backing("gmem-1g", MFD_HUGETLB | MFD_HUGE_1GB, 1ULL << 30,
			   true);
	if (fd < 0)
		return fd;
	ret = map_reserve(1UL << 30, 30, 0, (void **)&tmp);
	if (!ret) {
		ret = map_fd_at(tmp, 1UL << 30, PROT_READ | PROT_WRITE, fd, 0,
				MAP_ADV_NONE, -1, 0);
		if (ret)
			map_unmap(tmp, 1UL << 30);
	}
	if (ret)
		goto err_fd;
	ret = sys_copy_from(tmp, win(b, first), 1UL << 30);
	map_unmap(tmp, 1UL << 30);
	if (ret)
		goto err_fd;
	at = win(b, first);
	ret = map_fd_at(at, 1UL << 30, PROT_READ | PROT_WRITE, fd, 0,
			MAP_ADV_NONE, -1, 0);
	if (ret) {
		/* The window must keep showing the region: the old file. */
		if (map_fd_at(at, 1UL << 30, PROT_READ | PROT_WRITE,
			      b->region_fd[r], 0, MAP_ADV_NONE, -1, 0))
			ret = -EIO;
		goto err_fd;
	}
	sys_close(b->region_fd[r]);
	b->region_fd[r] = fd;
	return 0;

err_fd:
	sys_close(fd);
	return ret;
}
