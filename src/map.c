// SPDX-License-Identifier: MIT
/*
 * map.c - the one module that maps backing files (see map.h for the
 * fork rule and the VMA transaction).
 *
 * The fork guard and the spare VMA are the process-wide state libgmem
 * has besides the VMA count (view.c): fork() copies every mapping of the
 * process, and the VMA limit is the process's, so neither can belong to
 * one file.  The guard lets any number of mappings be made at once and
 * holds them back while a fork() waits, so a stream of mappings cannot
 * starve a fork.  A raw clone() without CLONE_VM, or
 * _Fork(), does not run atfork handlers and is not covered; vfork() and
 * posix_spawn() share or replace the address space and need no cover.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "map.h"
#include "sys.h"

#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED	24
#endif

/*
 * The fork guard: mappings in their window (between mmap() and
 * MADV_DONTFORK) are counted in `open`; fork()'s prepare handler sets
 * `forking`, which holds new windows back, and waits until none is open.
 * A mutex and a condition variable rather than a reader-writer lock: the
 * child inherits the mutex unlocked (prepare releases it), so its handler
 * touches no lock (an rwlock's write owner is a thread id, which the
 * child does not have).
 */
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t guard_cond = PTHREAD_COND_INITIALIZER;
static unsigned long guard_open;
static bool guard_forking;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static int fork_init_err;
static int zap_advice = MADV_DONTNEED_LOCKED;	/* benign race: idempotent */

/*
 * The spare: one VMA libgmem holds so that an exact replacement (which
 * needs no new VMA, but an mmap() all the same) still succeeds once the
 * rest of the process has used every VMA: Linux refuses any mmap() when
 * the count is past vm.max_map_count, even one that replaces a mapping
 * exactly.  Freed for the length of one mmap() and taken back after.  A
 * shared anonymous mapping (an inode of its own) never merges with a
 * neighbour, so freeing it frees a whole VMA.
 */
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static void *spare;

static void spare_put(void)
{
	void *p;

	if (!spare && !sys_mmap(NULL, (size_t)getpagesize(), PROT_NONE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0, &p))
		spare = p;
}

/* mmap() that may use the spare VMA when the process has none left. */
static int mmap_spare(void *addr, size_t len, int prot, int flags, int fd,
		      uint64_t off)
{
	void *p;
	int ret = sys_mmap(addr, len, prot, flags, fd, off, &p);

	if (ret != -ENOMEM)
		return ret;
	pthread_mutex_lock(&spare_lock);
	if (spare) {
		sys_munmap(spare, (size_t)getpagesize());
		spare = NULL;
		ret = sys_mmap(addr, len, prot, flags, fd, off, &p);
		spare_put();
	}
	pthread_mutex_unlock(&spare_lock);
	return ret;
}

static void fork_prepare(void)
{
	pthread_mutex_lock(&guard_lock);
	guard_forking = true;
	while (guard_open)
		pthread_cond_wait(&guard_cond, &guard_lock);
	pthread_mutex_unlock(&guard_lock);
}

static void fork_parent(void)
{
	pthread_mutex_lock(&guard_lock);
	guard_forking = false;
	pthread_cond_broadcast(&guard_cond);
	pthread_mutex_unlock(&guard_lock);
}

/* One thread, no window open: nothing to wait for or wake. */
static void fork_child(void)
{
	guard_forking = false;
}

static void guard_enter(void)
{
	pthread_mutex_lock(&guard_lock);
	while (guard_forking)
		pthread_cond_wait(&guard_cond, &guard_lock);
	guard_open++;
	pthread_mutex_unlock(&guard_lock);
}

static void guard_exit(void)
{
	pthread_mutex_lock(&guard_lock);
	if (!--guard_open && guard_forking)
		pthread_cond_broadcast(&guard_cond);
	pthread_mutex_unlock(&guard_lock);
}

static void fork_setup(void)
{
	fork_init_err = -pthread_atfork(fork_prepare, fork_parent, fork_child);
	spare_put();
}

int map_init(void)
{
	pthread_once(&fork_once, fork_setup);
	return fork_init_err;
}

int map_reserve(size_t len, unsigned int align_shift, uint64_t off,
		void **out)
{
	size_t align = align_shift ? 1UL << align_shift : 0;
	char *area, *p;
	int ret;

	ret = sys_mmap(NULL, len + align, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0,
		       (void **)&area);
	if (ret)
		return ret;
	p = area;
	if (align) {
		/* p congruent to off modulo the huge page size */
		p = (char *)(((uintptr_t)area + align - 1) & ~(align - 1)) +
		    (off & (align - 1));
		if (p >= area + align)
			p -= align;
		/* Trimming whole VMAs: munmap() needs no split here. */
		if (p > area)
			sys_munmap(area, (size_t)(p - area));
		if (area + len + align > p + len)
			sys_munmap(p + len,
				   (size_t)(area + len + align - (p + len)));
	}
	*out = p;
	return 0;
}

/*
 * madvise() that changes a VMA's flags, and so may split it: the kernel
 * reports a split it had no room for as EAGAIN ("temporarily
 * unavailable"), which to libgmem's callers is -ENOMEM (out of VMAs);
 * -EAGAIN means a pinned page to them.
 */
static int flags_advise(void *addr, size_t len, int advice)
{
	int ret = sys_madvise(addr, len, advice);

	return ret == -EAGAIN ? -ENOMEM : ret;
}

static int advice_of(int advice)
{
	return advice == MAP_ADV_HUGE ? MADV_HUGEPAGE : MADV_NOHUGEPAGE;
}

int map_fd_at(void *addr, size_t len, int prot, int fd, uint64_t off,
	      int advice, int hole_fd, uint64_t hole_off)
{
	int ret;

	ret = map_init();
	if (ret)
		return ret;
	guard_enter();
	ret = mmap_spare(addr, len, prot, MAP_SHARED | MAP_FIXED, fd, off);
	if (ret) {
		guard_exit();
		return ret;	/* MAP_FIXED failed: the old mapping stays */
	}
	ret = flags_advise(addr, len, MADV_DONTFORK);
	if (!ret && advice != MAP_ADV_NONE)
		ret = flags_advise(addr, len, advice_of(advice));
	/* A hole with the mapping's protection: SIGBUS, as a hole must. */
	if (ret && (hole_fd < 0 ||
		    map_hole_at(addr, len, prot, hole_fd, hole_off))) {
		sys_munmap(addr, len);
		if (hole_fd >= 0)
			ret = -ENOTRECOVERABLE;
	}
	guard_exit();
	return ret;
}

int map_hole_at(void *addr, size_t len, int prot, int hole_fd, uint64_t off)
{
	return mmap_spare(addr, len, prot, MAP_SHARED | MAP_FIXED, hole_fd,
			  off);
}

int map_carve(void *addr, size_t len)
{
	return flags_advise(addr, len, MADV_RANDOM);
}

int map_uncarve(void *addr, size_t len)
{
	return flags_advise(addr, len, MADV_NORMAL);
}

int map_zap(void *addr, size_t len)
{
	int ret = sys_madvise(addr, len, zap_advice);

	/* Kernels before 5.18 have no DONTNEED_LOCKED. */
	if (ret == -EINVAL && zap_advice == MADV_DONTNEED_LOCKED) {
		ret = sys_madvise(addr, len, MADV_DONTNEED);
		if (!ret)
			zap_advice = MADV_DONTNEED;
	}
	return ret;
}

int map_protect(void *addr, size_t len, int prot)
{
	return sys_mprotect(addr, len, prot);
}

int map_advise(void *addr, size_t len, int advice)
{
	return flags_advise(addr, len, advice);
}

int map_unmap(void *addr, size_t len)
{
	return sys_munmap(addr, len);
}

struct count_ctx {
	uintptr_t lo, hi;
	uint64_t n;
};

static void count_line(void *arg, char *line)
{
	struct count_ctx *c = arg;
	unsigned long lo, hi;
	char *end;

	lo = strtoul(line, &end, 16);
	if (*end != '-')
		return;
	hi = strtoul(end + 1, NULL, 16);
	c->n += lo >= c->lo && hi <= c->hi;
}

int map_count(void *addr, size_t len, uint64_t *n)
{
	struct count_ctx c = { (uintptr_t)addr, (uintptr_t)addr + len, 0 };
	int ret = sys_read_lines("/proc/self/maps", count_line, &c);

	if (!ret)
		*n = c.n;
	return ret;
}

int map_hole_fd(void)
{
	int fd = sys_memfd("gmem-hole", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int ret;

	if (fd < 0)
		return fd;
	ret = sys_seal(fd, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
	if (ret) {
		sys_close(fd);
		return ret;
	}
	return fd;
}
