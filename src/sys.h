/* SPDX-License-Identifier: MIT */
/*
 * sys.h - the system call layer: the only place in libgmem that talks to
 * the kernel or reads errno.  Every wrapper returns 0 (or a value >= 0)
 * or -errno; none prints, retries forever or aborts.  Nothing here knows
 * about struct gmem.
 *
 * It is also the seam for fault injection (tests only; not exported from
 * the shared library): sys_fault_arm() makes the Nth wrapper call from
 * now (of the chosen classes) fail with a chosen errno, once or from then
 * on, without entering the kernel.  A test walks N over every call an
 * operation makes and checks, after each failure, that the operation
 * unwound without leaking a private page, an fd or a mapping.  The
 * counter is process-wide and meant for single-threaded test programs.
 */
#ifndef GMEM_SYS_H
#define GMEM_SYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Classes of wrappers, for sys_fault_arm(). */
#define SYS_C_MAP	(1U << 0)	/* mmap, mremap, mprotect, madvise */
#define SYS_C_FILE	(1U << 1)	/* memfd, ftruncate, fallocate, seals,
					   pread/pwrite, lseek, fstat, open,
					   read of small files */
#define SYS_C_UFFD	(1U << 2)	/* userfaultfd and its ioctls */
#define SYS_C_KVM	(1U << 3)	/* KVM ioctls */
#define SYS_C_COPY	(1U << 4)	/* checked copies, mincore */
#define SYS_C_REL	(1U << 5)	/* munmap, close: releases */
#define SYS_C_SOCK	(1U << 6)	/* sockets, pidfds (sys_sock.c) */
#define SYS_C_ALL	0x7fU
#define SYS_C_FALLIBLE	(SYS_C_ALL & ~SYS_C_REL)

#define SYS_FAULT_ONCE		0	/* only the Nth call fails */
#define SYS_FAULT_FROM		1	/* the Nth and every later call */

/* Fail the nth (1-based) call from now of the given classes with -err. */
void sys_fault_arm(unsigned long nth, int err, unsigned int mode,
		   unsigned int classes);
/* Stop injecting; returns the calls of the armed classes made since. */
unsigned long sys_fault_disarm(void);
/* Calls of the armed classes made since sys_fault_arm(). */
unsigned long sys_fault_calls(void);
/* Calls that failed by injection since sys_fault_arm(). */
unsigned long sys_fault_injected(void);

/* 0, or the -errno a wrapper of class must fail with (injection). */
int sys_inject(unsigned int class);

/* Files */
int sys_memfd(const char *name, unsigned int flags);
int sys_open(const char *path, int flags);
int sys_ftruncate(int fd, uint64_t size);
int sys_fallocate(int fd, int mode, uint64_t off, uint64_t len);
int sys_seal(int fd, int seals);
int sys_cloexec(int fd);
/* What /proc/self/fd/fd links to ("anon_inode:kvm-vm"): -EBADF if fd is
 * not open, -ENOENT without /proc. */
int sys_fd_name(int fd, char *buf, size_t len);
/* fstat()'s st_mode (S_IFMT 0: an anonymous inode). */
int sys_fd_mode(int fd, unsigned int *mode);
int sys_pread_all(int fd, void *buf, size_t len, uint64_t off);
int sys_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* n buffers of len bytes each, read from / written to off onwards. */
int sys_preadv_all(int fd, void *const *bufs, size_t n, size_t len,
		   uint64_t off);
int sys_pwritev_all(int fd, void *const *bufs, size_t n, size_t len,
		    uint64_t off);
/* Next allocated (data) or unallocated (hole) offset at or after off;
 * *out = end of file when there is none. */
int sys_seek_data(int fd, uint64_t off, uint64_t *out);
int sys_seek_hole(int fd, uint64_t off, uint64_t *out);
int sys_allocated(int fd, uint64_t *bytes);
/* Read up to len - 1 bytes of a small file (sysfs, procfs), NUL ended. */
int sys_read_file(const char *path, char *buf, size_t len);
/* A monotonic clock in milliseconds, a tick or so coarse (no syscall). */
uint64_t sys_coarse_ms(void);
/* Call fn on each line of a (possibly large) text file, NUL ended. */
int sys_read_lines(const char *path, void (*fn)(void *arg, char *line),
		   void *arg);
int sys_close(int fd);

/* Memory */
int sys_mmap(void *addr, size_t len, int prot, int flags, int fd,
	     uint64_t off, void **out);
int sys_munmap(void *addr, size_t len);
int sys_mprotect(void *addr, size_t len, int prot);
int sys_madvise(void *addr, size_t len, int advice);
int sys_mremap_fixed(void *old, size_t len, void *new_addr);
/* mincore(): vec[i] & 1 when page i of [addr, +len) is in memory. */
int sys_mincore(void *addr, size_t len, unsigned char *vec);
/* Copies that return -EFAULT instead of faulting in the caller. */
int sys_copy_from(void *dst, const void *src, size_t len);
int sys_copy_to(void *dst, const void *src, size_t len);
/* n buffers of len bytes each, copied from / to dst onwards. */
int sys_copyv_from(void *const *bufs, size_t n, size_t len, const void *src);
int sys_copyv_to(void *dst, void *const *bufs, size_t n, size_t len);

/* userfaultfd */
int sys_uffd_open(void);
int sys_uffd_register(int uffd, void *addr, size_t len);
int sys_uffd_unregister(int uffd, void *addr, size_t len);
int sys_uffd_continue(int uffd, void *addr, size_t len);
/* Do this process's userfaultfds have asynchronous write-protection? */
bool sys_uffd_wp_async(void);
/* Lift write-protection from [addr, +len) (dirty tracking ends). */
int sys_uffd_unprotect(int uffd, void *addr, size_t len);

/* PAGEMAP_SCAN: page-table facts of a range (dirty.c). */
struct sys_page_region {
	uint64_t start, end, categories;
};

#define SYS_PM_WP_MATCHING	(1ULL << 0)	/* write-protect what matches */
#define SYS_PM_CHECK_WPASYNC	(1ULL << 1)
#define SYS_PAGE_IS_WRITTEN	(1ULL << 1)
#define SYS_PAGE_IS_FILE	(1ULL << 2)
#define SYS_PAGE_IS_PRESENT	(1ULL << 3)
#define SYS_PAGE_IS_SWAPPED	(1ULL << 4)	/* a non-present entry */

/*
 * The runs of [addr, +len) whose pages have every category in need and
 * one in anyof (if not 0), at most n of them in vec, each with its
 * categories of ret_mask: their number, or -errno (-EOPNOTSUPP: no
 * PAGEMAP_SCAN).  *walk_end: where the walk stopped (the end, or where
 * vec filled up).  With SYS_PM_WP_MATCHING the runs found are
 * write-protected again in the same walk.
 */
long sys_pagemap_scan(void *addr, size_t len, uint64_t flags,
		      uint64_t need, uint64_t anyof, uint64_t ret_mask,
		      struct sys_page_region *vec, size_t n, void **walk_end);
/* Register [addr, +len) with uffd for write-protection only. */
int sys_uffd_register_wp(int uffd, void *addr, size_t len);

/* KVM and other ioctls: the ioctl's value (>= 0) or -errno. */
long sys_ioctl(int fd, unsigned long req, void *arg);
long sys_ioctl_val(int fd, unsigned long req, unsigned long arg);

/*
 * Sockets and processes (sys_sock.c), for the peer protocol.  Messages
 * are whole: a send or receive moves exactly len bytes or fails.
 */
struct ucred;
/*
 * Take fd for the peer protocol: it must be a connected AF_UNIX
 * SOCK_STREAM socket (else -ENOTSOCK, -EPROTOTYPE for another kind,
 * -ENOTCONN), and is made close-on-exec, so that no program this process
 * exec's keeps the other end waiting on a socket it never answers.
 */
int sys_sock_take(int fd);
/* Send len bytes; nfds fds ride on the first byte; with creds, the
 * sender's pid, uid and gid (SCM_CREDENTIALS).  Never raises SIGPIPE:
 * -EPIPE.  timeout_ms < 0: no limit; -ETIMEDOUT when it passes. */
int sys_sock_send(int fd, const void *buf, size_t len, const int *fds,
		  int nfds, bool creds, int timeout_ms);
/*
 * Receive exactly len bytes, waiting at most timeout_ms in all (< 0: no
 * limit; -ETIMEDOUT).
 * Up to maxfds fds that came with them go to fds (*nfds how many; any
 * more are closed), the sender's credentials to *cred if asked for and
 * sent.  -ECONNRESET: the other end is gone (end of file).
 */
int sys_sock_recv(int fd, void *buf, size_t len, int *fds, int maxfds,
		  int *nfds, struct ucred *cred, int timeout_ms);
/* Read what is there, up to len bytes, never waiting: the count, -EAGAIN
 * (nothing), -ECONNRESET (end of file).  Control messages are dropped
 * (the kernel closes fds that come with them). */
int sys_sock_read_some(int fd, void *buf, size_t len);
int sys_sock_passcred(int fd);
int sys_sock_shutdown(int fd);
/* Wait until fd is readable (1) or timeout_ms passes (0); < 0: forever. */
int sys_poll_in(int fd, int timeout_ms);
int sys_pidfd_open(pid_t pid);
int sys_pidfd_kill(int pidfd, int sig);
/* A monotonic clock in milliseconds. */
uint64_t sys_now_ms(void);

#endif /* GMEM_SYS_H */
