/* SPDX-License-Identifier: MIT */
/*
 * ring.h - the least of io_uring a test needs to hold a kernel reference
 * to a page and use it later: one ring, one registered (fixed) buffer,
 * IORING_OP_READ_FIXED / WRITE_FIXED, one request at a time.  Raw system
 * calls and <linux/io_uring.h>, so the tests need no liburing.
 *
 * A registered buffer is what the kernel's in-place conversion refuses
 * to convert under (a long-term pin taken with FOLL_LONGTERM): the test
 * registers a shared page, converts it, and reads and writes through the
 * old reference afterwards.
 *
 *	struct ring r;
 *	ring_init(&r)			0, or -errno (io_uring disabled)
 *	ring_register(&r, addr, len)	pins [addr, +len) as buffer 0
 *	ring_rw(&r, fd, len, write)	READ_FIXED (fd -> buffer) or
 *					WRITE_FIXED (buffer -> fd); bytes
 *	ring_exit(&r)
 */
#ifndef GMEM_TESTS_RING_H
#define GMEM_TESTS_RING_H

#include <errno.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup	425
#define __NR_io_uring_enter	426
#define __NR_io_uring_register	427
#endif

struct ring {
	int fd;
	void *sq, *cq;
	size_t sq_len, cq_len;
	struct io_uring_sqe *sqes;
	size_t sqes_len;
	unsigned int *sq_tail, *sq_mask, *sq_array;
	unsigned int *cq_head, *cq_tail, *cq_mask;
	struct io_uring_cqe *cqes;
	void *buf;
};

static inline int ring_init(struct ring *r)
{
	struct io_uring_params p;

	memset(r, 0, sizeof(*r));
	memset(&p, 0, sizeof(p));
	r->fd = (int)syscall(__NR_io_uring_setup, 4, &p);
	if (r->fd < 0)
		return -errno;
	r->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned int);
	r->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	r->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
	r->sq = mmap(NULL, r->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		     r->fd, IORING_OFF_SQ_RING);
	r->cq = mmap(NULL, r->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		     r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, r->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		       r->fd, IORING_OFF_SQES);
	if (r->sq == MAP_FAILED || r->cq == MAP_FAILED ||
	    r->sqes == MAP_FAILED) {
		close(r->fd);
		return -ENOMEM;
	}
	r->sq_tail = (unsigned int *)((char *)r->sq + p.sq_off.tail);
	r->sq_mask = (unsigned int *)((char *)r->sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned int *)((char *)r->sq + p.sq_off.array);
	r->cq_head = (unsigned int *)((char *)r->cq + p.cq_off.head);
	r->cq_tail = (unsigned int *)((char *)r->cq + p.cq_off.tail);
	r->cq_mask = (unsigned int *)((char *)r->cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)((char *)r->cq + p.cq_off.cqes);
	return 0;
}

static inline int ring_register(struct ring *r, void *addr, size_t len)
{
	struct iovec iov = { .iov_base = addr, .iov_len = len };

	r->buf = addr;
	if (syscall(__NR_io_uring_register, r->fd, IORING_REGISTER_BUFFERS,
		    &iov, 1) < 0)
		return -errno;
	return 0;
}

/* One fixed read (fd -> buffer) or write (buffer -> fd): res or -errno. */
static inline int ring_rw(struct ring *r, int fd, size_t len, int write)
{
	unsigned int tail = *r->sq_tail, idx = tail & *r->sq_mask, head;
	struct io_uring_sqe *sqe = &r->sqes[idx];
	int res;

	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = write ? IORING_OP_WRITE_FIXED : IORING_OP_READ_FIXED;
	sqe->fd = fd;
	sqe->addr = (uintptr_t)r->buf;
	sqe->len = (unsigned int)len;
	sqe->off = (uint64_t)-1;	/* pipes: the current position */
	sqe->buf_index = 0;
	r->sq_array[idx] = idx;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS,
		    NULL, 0) < 0)
		return -errno;
	head = *r->cq_head;
	if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
		return -EIO;
	res = r->cqes[head & *r->cq_mask].res;
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return res;
}

static inline void ring_exit(struct ring *r)
{
	if (r->fd <= 0)
		return;
	munmap(r->sqes, r->sqes_len);
	munmap(r->cq, r->cq_len);
	munmap(r->sq, r->sq_len);
	close(r->fd);
	r->fd = -1;
}

#endif /* GMEM_TESTS_RING_H */
