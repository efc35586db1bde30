/* SPDX-License-Identifier: MIT */
/*
 * backing.h - the memory behind one guest memory file: what holds the
 * pages, how they are allocated, punched, read, written and moved to a
 * fresh page (re-homed), and the window: the one unguarded mapping of
 * the whole file that the guest side (gmem_get_pfn(), KVM's memslot,
 * populate) uses.  Knows pages and fds, not views, state or struct gmem.
 *
 * Kinds:
 *   MEMFD    a sealed memfd of 4 KiB pages.  Every mapping is
 *            MADV_NOHUGEPAGE and pages are allocated by faults on such
 *            mappings, or by write() only while shmem_enabled cannot
 *            make huge folios of it (never fallocate(), which follows
 *            shmem_enabled): so no huge folio backs it, khugepaged never
 *            collapses it, and punching one page detaches it.
 *   THP      a sealed memfd whose mappings are MADV_HUGEPAGE and 2 MiB
 *            aligned: 2 MiB folios where the kernel can give them.
 *   HUGETLB  one sealed hugetlb memfd per 1 GiB region, reserved at
 *            create, so that one region can be re-homed by swapping its
 *            file (a hugetlb page cannot be split or punched in part).
 *   KVM      a guest_memfd (kvm.c): no read/write, no userfaultfd, no
 *            lseek; contents move through the window.
 *
 * Re-homing: a page that was shared may be referenced by the kernel
 * (vmsplice, O_DIRECT, io_uring, RDMA: any get_user_pages() reference
 * taken through a host mapping).  Punching the page takes it out of the
 * file while those references keep the old page; writing the contents
 * back puts them in a fresh page that no such reference can reach.  On
 * THP a punch of one 4 KiB page detaches it only if the kernel can split
 * its 2 MiB folio, which it cannot while the folio is referenced:
 * gmem_backing_detached() tells (the policy is in rehome.c).
 *
 * Locking: none of its own; the owner's file lock serialises every call
 * but backing_create(), made before the file is visible.
 */
#ifndef GMEM_BACKING_H
#define GMEM_BACKING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gmem_backing_kind {
	GMEM_BACKING_MEMFD,
	GMEM_BACKING_THP,
	GMEM_BACKING_HUGETLB,
	GMEM_BACKING_KVM,
};

struct gmem_backing {
	enum gmem_backing_kind kind;
	uint64_t size;
	unsigned int page_shift;
	unsigned int huge_shift;	/* 21 (THP), 30 (hugetlb) or 0 */
	uint64_t npages;
	int fd;				/* memfd / guest_memfd; -1: hugetlb */
	int *region_fd;			/* hugetlb: one per 1 GiB region */
	uint64_t nr_regions;
	int hole_fd;			/* empty sealed memfd: SIGBUS holes */
	char *window;			/* unguarded, whole file, or NULL */
	/* KVM */
	int vm_fd;			/* the VM, or -1 */
	int kvm_fd;			/* /dev/kvm if we made the VM, or -1 */
	bool own_vm;
	bool kvm_inplace;		/* the kernel converts in place too */
	bool imported;			/* a peer's: another process's file,
					   never a window (attach.c) */
};

struct gmem_backing_args {
	uint64_t size;
	unsigned int huge_shift;	/* 0, 21, 30 */
	bool kvm;
	int vm_fd;			/* kvm: the VM, or -1 to make one */
	bool init_private;		/* kvm in-place kernels: start private */
};

int gmem_backing_create(struct gmem_backing *b,
			const struct gmem_backing_args *a);
void gmem_backing_destroy(struct gmem_backing *b);
/*
 * A peer's backing: fd is another process's file of kind, received over
 * a socket, taken over (hugetlb: closed; the region files come one by
 * one into region_fd).  It never has a window: gmem_backing_window()
 * and what needs it fail -EPERM.
 */
int gmem_backing_import(struct gmem_backing *b, enum gmem_backing_kind kind,
			int fd, uint64_t size, unsigned int huge_shift);

static inline uint64_t gmem_backing_off(const struct gmem_backing *b,
					uint64_t page)
{
	return page << b->page_shift;
}

/* Pages per huge region (1 for 4 KiB files). */
static inline uint64_t gmem_backing_region_pages(const struct gmem_backing *b)
{
	return b->huge_shift ? 1ULL << (b->huge_shift - b->page_shift) : 1;
}

/* madvise() advice every mapping of this backing gets (MAP_ADV_*). */
int gmem_backing_advice(const struct gmem_backing *b);

/*
 * Map pages [first, first + npages) of the file at addr, exactly over
 * whatever is there (a reservation, a hole, carved VMAs), DONTFORK; on
 * failure the range is a hole.  For hugetlb, whole regions only.
 */
int gmem_backing_map_at(struct gmem_backing *b, void *addr, uint64_t first,
			uint64_t npages, int prot);
/* A new mapping of len bytes from page first (a tail past the end of
 * the file is a hole), aligned for huge pages. */
int gmem_backing_map_new(struct gmem_backing *b, uint64_t first, size_t len,
			 int prot, void **out);
/* A hole over [addr, +npages) that stands for pages from first. */
int gmem_backing_hole_at(struct gmem_backing *b, void *addr, uint64_t first,
			 uint64_t npages, int prot);

/* The window: made by gmem_create(); returns 0 once it exists. */
int gmem_backing_window(struct gmem_backing *b);

/* Allocate pages [start, end) (zero-filled where they were holes). */
int gmem_backing_alloc(struct gmem_backing *b, uint64_t start, uint64_t end);
/* Punch pages [start, end): they read back as zeros. */
int gmem_backing_punch(struct gmem_backing *b, uint64_t start, uint64_t end);
/* Bytes of the file backed by memory. */
int gmem_backing_allocated(struct gmem_backing *b, uint64_t *bytes);
/*
 * The first allocated page at or after start (< end), and the end of the
 * allocated run it starts; *run_start = end if none.
 */
int gmem_backing_next_data(struct gmem_backing *b, uint64_t start,
			   uint64_t end, uint64_t *run_start,
			   uint64_t *run_end);

/* Copy contents of pages out of / into the file (no huge folio made). */
int gmem_backing_read(struct gmem_backing *b, uint64_t page, void *buf,
		      uint64_t npages);
int gmem_backing_write(struct gmem_backing *b, uint64_t page, const void *buf,
		       uint64_t npages);
/* The same for n pages, one buffer each. */
int gmem_backing_readv(struct gmem_backing *b, uint64_t page,
		       void *const *bufs, uint64_t n);
int gmem_backing_writev(struct gmem_backing *b, uint64_t page,
			void *const *bufs, uint64_t n);
/* Write len bytes at byte offset off (populate: any length). */
int gmem_backing_write_bytes(struct gmem_backing *b, uint64_t off,
			     const void *buf, size_t len);

/*
 * After a punch of [start, end): -EAGAIN and *bad = the first page that
 * is still in the file (its huge folio could not be split because the
 * kernel holds a reference to it; the punch zeroed it in place), else 0.
 * Checked for memfds (THP, and 4 KiB files written while shmem_enabled
 * made huge folios); hugetlb and guest_memfd always detach.
 */
int gmem_backing_detached(struct gmem_backing *b, uint64_t start,
			  uint64_t end, uint64_t *bad);

/* hugetlb: give region r a fresh page with the same contents. */
int gmem_backing_region_swap(struct gmem_backing *b, uint64_t r);

/* kvm.c: the guest_memfd part. */
int gmem_kvm_open(struct gmem_backing *b, int vm_fd, bool init_private);
void gmem_kvm_close(struct gmem_backing *b);
int gmem_kvm_convert(struct gmem_backing *b, uint64_t start, uint64_t end,
		     unsigned int val, uint64_t *error_page);

#endif /* GMEM_BACKING_H */
