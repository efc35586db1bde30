/* SPDX-License-Identifier: MIT */
/*
 * map.h - every mapping libgmem makes of a backing file, and the VMA
 * primitives the views are built from.  Knows fds and addresses, not
 * struct gmem.
 *
 * The fork rule: no mapping of a backing file ever exists at an address
 * a child could inherit.  map_fd_at() opens a window in the fork guard,
 * makes the mapping, marks it MADV_DONTFORK and closes the window;
 * fork() (through pthread_atfork) waits until no window is open and
 * keeps new ones from opening, so it never copies such a mapping.  Holes
 * (mappings of an empty sealed memfd) may be inherited: they only ever
 * raise SIGBUS.  Reservations are anonymous PROT_NONE memory.
 *
 * The VMA transaction, which lets a view change a run of pages without a
 * window and without needing VMAs it may not get:
 *   map_carve()    split the run off into VMAs of its own (MADV_RANDOM,
 *                  harmless on these mappings): the only step that may
 *                  need new VMAs, so the only one that fails for want of
 *                  them; nothing visible changes;
 *   map_fd_at() / map_hole_at() over exactly the carved VMAs: a
 *                  replacement that needs no new VMA;
 *   map_uncarve()  undo a carve (MADV_NORMAL): merging needs no VMA.
 *
 * Locking: the fork guard is process-wide (a fork copies every mapping
 * of the process, whatever file it belongs to); a window is open only
 * inside map_fd_at(), never across a callback or another lock.
 */
#ifndef GMEM_MAP_H
#define GMEM_MAP_H

#include <stddef.h>
#include <stdint.h>

/* map_fd_at() advice on top of MADV_DONTFORK */
#define MAP_ADV_NONE		0
#define MAP_ADV_NOHUGE		1	/* MADV_NOHUGEPAGE: 4 KiB files */
#define MAP_ADV_HUGE		2	/* MADV_HUGEPAGE: shmem THP */

/* Register the fork guard with pthread_atfork (once per process). */
int map_init(void);

/*
 * Reserve len bytes of address space whose start is congruent to off
 * modulo 1 << align_shift (0: page aligned), so that huge pages of the
 * file can be mapped huge.  PROT_NONE, anonymous, no memory.
 */
int map_reserve(size_t len, unsigned int align_shift, uint64_t off,
		void **out);

/*
 * Map [off, off + len) of fd at addr (MAP_SHARED | MAP_FIXED), made
 * DONTFORK (and given advice) before any fork can see it.  If the mmap()
 * fails, what was at addr stays; if a later step fails, nothing of fd is
 * left mapped there: the range is a hole of hole_fd at hole_off if
 * hole_fd >= 0 (a view's range), else unmapped.  -ENOTRECOVERABLE: not
 * even the hole could be made, the range is unmapped (a view's caller
 * must revoke the view).
 */
int map_fd_at(void *addr, size_t len, int prot, int fd, uint64_t off,
	      int advice, int hole_fd, uint64_t hole_off);

/* A hole: hole_fd (empty, sealed) at pgoff off, so that holes merge. */
int map_hole_at(void *addr, size_t len, int prot, int hole_fd, uint64_t off);

int map_carve(void *addr, size_t len);
int map_uncarve(void *addr, size_t len);

/* Drop the page-table entries of [addr, +len) (locked memory too). */
int map_zap(void *addr, size_t len);
int map_protect(void *addr, size_t len, int prot);
int map_advise(void *addr, size_t len, int advice);
int map_unmap(void *addr, size_t len);

/* VMAs of this process inside [addr, addr + len), from its maps. */
int map_count(void *addr, size_t len, uint64_t *n);

/* The empty sealed memfd every hole maps. */
int map_hole_fd(void);

#endif /* GMEM_MAP_H */
