/* SPDX-License-Identifier: MIT */
/*
 * internal.h - struct gmem and the interfaces between libgmem's files.
 *
 * Who owns what:
 *   file.c     the object: create, close, lifetime, fallocate, populate,
 *              stats (and the lock below)
 *   convert.c  set/get attributes: the conversion protocol
 *   view.c     host views: the two guard mechanisms and the switch
 *   pins.c     pin counts per page range
 *   state.c    the shared/private state tree
 *   sys.c      every system call, mapped to -errno once
 */
#ifndef GMEM_INTERNAL_H
#define GMEM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "gmem.h"
#include "pins.h"
#include "state.h"

#define GMEM_EXPORT __attribute__((visibility("default")))

/*
 * A vma-mode view switches to userfaultfd once it holds more private
 * islands than this: each island costs it two VMAs, and the process has
 * vm.max_map_count (65530 by default) in all.  See bench/bench_flip.c.
 */
#define GMEM_VIEW_MAX_ISLANDS	64
/*
 * But uffd mode maps (so allocates) every shared page of the view.  A
 * view with more shared memory than this stays in vma mode until it has
 * GMEM_VIEW_HARD_ISLANDS islands (32768 VMAs): then it must switch, or
 * the next conversions would fail with -ENOMEM for want of VMAs.
 */
#define GMEM_VIEW_UFFD_MAX_SHARED	(1ULL << 30)
#define GMEM_VIEW_HARD_ISLANDS		16384

enum gmem_view_mode {
	GMEM_VIEW_VMA,		/* private runs are MAP_FIXED holes */
	GMEM_VIEW_UFFD,		/* userfaultfd: absent pages SIGBUS */
};

struct gmem_view {
	struct gmem_view *next;
	char *addr;
	size_t len;			/* page multiple */
	uint64_t first;			/* first page of the file it maps */
	uint64_t npages;		/* pages of the file it covers */
	int prot;
	enum gmem_view_mode mode;
	bool internal;			/* the pin view, not the caller's */
	uint64_t islands;		/* private runs inside the view */
	uint64_t starts_before;		/* islands, during a conversion */
};

struct gmem {
	/*
	 * The file lock.  It orders every change of this file against every
	 * other: conversion, allocation, punch-hole, populate, pin, unpin,
	 * view creation and removal, the mode switch of a view, close and
	 * stats.  The state check and the view change of a conversion both
	 * happen under it, so no thread can find a page shared in the tree
	 * while it is still mapped private anywhere, or the reverse.
	 * Faults on host views take no lock of ours: a view's mappings are
	 * the truth the kernel acts on, and they only change under the lock.
	 * libgmem itself takes no other lock inside it (malloc aside), but
	 * a callback that calls libgmem for another file takes that file's
	 * lock inside this one: callers must not let callbacks of two files
	 * call into each other.  pin_cond waits on it (GMEM_SET_ATTR_WAIT).
	 *
	 * Callbacks (binding invalidate, listener populate/discard) run with
	 * it held, on the thread making the change, with cb_thread set to
	 * that thread: a callback that calls libgmem for the same file gets
	 * -EDEADLK instead of deadlocking.  Holding the lock is what makes
	 * "no callback after gmem_unbind() returns" true: unbind takes the
	 * lock, so it waits for a running callback and no later one can
	 * find the binding.  A callback must not wait for another thread
	 * that calls into the same file either: that thread blocks on the
	 * lock the callback's caller holds.
	 *
	 * GMEM_SET_ATTR_WAIT drops the lock while it waits on pin_cond and,
	 * woken, checks state and pins again from scratch (-EBADF if the
	 * file was closed meanwhile).  A vma view switching to uffd mode
	 * starts and joins a thread with the lock held (view.c), which may
	 * take up to the 10 s the event read waits.
	 *
	 * Read without the lock: size, flags, page_shift, npages, fd,
	 * backend, huge_shift and hugetlb, fixed before gmem_create()
	 * returns.  libgmem is not async-signal-safe, and the child of a
	 * multithreaded parent's fork() cannot use a file the parent had.
	 */
	pthread_mutex_t lock;
	pthread_cond_t pin_cond;

	int fd;				/* the backing memfd or guest_memfd */
	unsigned int backend;		/* GMEM_BACKEND_* */
	int vm_fd;			/* KVM backend: the VM, or -1 */
	int kvm_fd;			/* /dev/kvm if we made the VM, or -1 */
	bool own_vm;			/* vm_fd is ours to close */
	bool kvm_inplace;		/* the kernel converts in place too */
	unsigned int huge_shift;	/* 21, 30, or 0: 4 KiB pages */
	bool hugetlb;			/* 1 GiB hugetlb rather than THP */
	int hole_fd;			/* empty sealed memfd: SIGBUS holes */
	int uffd;			/* userfaultfd, or -1 */
	int uffd_err;			/* why it could not be opened */
	uint64_t size;
	uint64_t flags;
	unsigned int page_shift;
	uint64_t npages;

	struct gmem_state state;
	struct gmem_pins pins;		/* every pin: conversions wait on it */
	struct gmem_pins user_pins;	/* those of gmem_pin(), for unpin */
	struct gmem_view *views;	/* every view, the pin view too */
	struct gmem_view *pin_view;	/* created by the first pin */
	char *guest_view;		/* unguarded, for gmem_get_pfn() */
	struct gmem_binding *bindings;
	struct gmem_listener *listeners;
	struct gmem_pins poison;	/* poisoned pages, count 1 each */
	_Atomic unsigned long cb_thread; /* thread inside a callback, or 0 */
	unsigned int nr_user_views;
	unsigned int nr_waiters;	/* threads in a GMEM_SET_ATTR_WAIT */
	bool closed;			/* gmem_close() was called */

	uint64_t conversions;
	uint64_t pages_converted;
	uint64_t nr_bindings;
	uint64_t nr_listeners;
	uint64_t pfn_refs;
	uint64_t invalidations;
	uint64_t listener_calls;
	uint64_t splits;		/* huge regions that went mixed */
	uint64_t merges;		/* huge regions that went uniform */
	uint64_t mixed_before;		/* during a conversion (huge.c) */
	bool edge_mixed[2];
};

static inline uint64_t page_of(const struct gmem *g, uint64_t off)
{
	return off >> g->page_shift;
}

static inline uint64_t off_of(const struct gmem *g, uint64_t page)
{
	return page << g->page_shift;
}

struct gmem_binding {
	struct gmem_binding *next;
	struct gmem *g;
	uint64_t first;			/* first page of the file it covers */
	uint64_t npages;
	const struct gmem_binding_ops *ops;
	void *owner;
	struct gmem_pins shared_refs;	/* also counted in g->pins */
	struct gmem_pins private_refs;
};

struct gmem_listener {
	struct gmem_listener *next;
	struct gmem *g;
	uint64_t first;
	uint64_t npages;
	const struct gmem_listener_ops *ops;
	void *opaque;
};

/* file.c */
int gmem_memfd_backing(struct gmem *g, const char *name, unsigned int flags);
bool gmem_range_ok(const struct gmem *g, uint64_t offset, uint64_t len);
int gmem_lock(struct gmem *g);
int gmem_lock_live(struct gmem *g);
void gmem_unlock_put(struct gmem *g);

/* Mark the calling thread as inside a callback of g (see the lock). */
static inline void gmem_cb_enter(struct gmem *g)
{
	atomic_store(&g->cb_thread, (unsigned long)pthread_self());
}

static inline void gmem_cb_exit(struct gmem *g)
{
	atomic_store(&g->cb_thread, 0);
}

/* huge.c */
int gmem_huge_validate(uint64_t flags, uint64_t size, unsigned int *shift);
int gmem_huge_backing(struct gmem *g);
int gmem_map_file(struct gmem *g, size_t len, int prot, uint64_t off,
		  void **out);
void gmem_huge_before(struct gmem *g, uint64_t start, uint64_t end);
void gmem_huge_after(struct gmem *g, uint64_t start, uint64_t end,
		     unsigned int val);
unsigned int gmem_huge_order(struct gmem *g, uint64_t page, unsigned int val);
int gmem_huge_view_sync(struct gmem *g, struct gmem_view *v, uint64_t start,
			uint64_t end, unsigned int val, bool undo);
int gmem_huge_mapped(struct gmem *g, uint64_t *bytes);
void gmem_huge_view_reset(struct gmem *g, struct gmem_view *v, uint64_t start,
			  uint64_t end);
void gmem_huge_round(const struct gmem *g, uint64_t *start, uint64_t *end);

/* kvm.c */
int gmem_kvm_create(struct gmem *g, int vm_fd, unsigned int init_val);
void gmem_kvm_close(struct gmem *g);
int gmem_kvm_convert(struct gmem *g, uint64_t start, uint64_t end,
		     unsigned int val, uint64_t *error_page);
int gmem_kvm_allocated(struct gmem *g, uint64_t *bytes);

/* binding.c: with g->lock held. */
int gmem_guest_view(struct gmem *g);
void gmem_invalidate(struct gmem *g, uint64_t start, uint64_t end,
		     unsigned int reason);
void gmem_bindings_release(struct gmem *g);
void gmem_bindings_destroy(struct gmem *g);

/* listener.c: with g->lock held. */
int gmem_listeners_populate(struct gmem *g, uint64_t start, uint64_t end,
			    uint64_t *error_page);
void gmem_listeners_discard(struct gmem *g, uint64_t start, uint64_t end,
			    unsigned int cur_val);
void gmem_listeners_destroy(struct gmem *g);

/* failure.c: with g->lock held. */
static inline bool gmem_poisoned(const struct gmem *g, uint64_t page)
{
	return g->poison.nr && gmem_pins_first(&g->poison, page, page + 1) ==
			       page;
}
void gmem_poison_clear(struct gmem *g, uint64_t start, uint64_t end);

/* view.c: all with g->lock held. */
int gmem_view_create(struct gmem *g, uint64_t offset, size_t len, int prot,
		     bool internal, struct gmem_view **out);
void gmem_view_destroy(struct gmem *g, struct gmem_view *v);
int gmem_view_convert(struct gmem *g, struct gmem_view *v, uint64_t start,
		      uint64_t end, unsigned int val);
void gmem_view_undo(struct gmem *g, struct gmem_view *v, uint64_t start,
		    uint64_t end, unsigned int val);
void gmem_view_commit(struct gmem *g, struct gmem_view *v, uint64_t start,
		      uint64_t end);
int gmem_view_refill(struct gmem *g, struct gmem_view *v, uint64_t start,
		     uint64_t end);
int gmem_view_map_shared(struct gmem *g, struct gmem_view *v, uint64_t start,
			 uint64_t end);
int gmem_view_hole(struct gmem *g, struct gmem_view *v, uint64_t start,
		   uint64_t end);

/* sys.c: thin system call wrappers returning 0 or -errno. */
int sys_memfd(const char *name, unsigned int flags);
int sys_ftruncate(int fd, uint64_t size);
int sys_fallocate(int fd, int mode, uint64_t off, uint64_t len);
int sys_mmap(void *addr, size_t len, int prot, int flags, int fd,
	     uint64_t off, void **out);
int sys_munmap(void *addr, size_t len);
int sys_mprotect(void *addr, size_t len, int prot);
int sys_seal(int fd, int seals);
int sys_madvise(void *addr, size_t len, int advice);
int sys_mremap_fixed(void *old, size_t len, void *new_addr);
int sys_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
int sys_copy_checked(void *dst, const void *src, size_t len);
int sys_allocated(int fd, uint64_t *bytes);
int sys_close(int fd);
int sys_uffd_open(void);
int sys_uffd_register(int uffd, void *addr, size_t len);
int sys_uffd_continue(int uffd, void *addr, size_t len);
int sys_uffd_read_event(int uffd);

#endif /* GMEM_INTERNAL_H */
