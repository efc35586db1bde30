// SPDX-License-Identifier: MIT
/*
 * qemu_bitmap.c - the QEMU baselines (see qemu_bitmap.h): a bitmap of
 * 4 KiB pages with QEMU's conversion rules, and the double backing.
 *
 * The conversion follows QEMU's RamBlockAttributes state change:
 *   1. validate: page aligned, not empty, no overflow, inside the file;
 *   2. classify the range by word scans for the next shared and the next
 *      private page: all private, all shared, or mixed;
 *   3. already in the target state: nothing to do;
 *   4. uniform: one word-at-a-time set or clear and one notification for
 *      the whole range;
 *   5. mixed: page by page, one notification per page that changes.
 * Written from that description; no QEMU code.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "qemu_bitmap.h"

#define BPL	(8 * sizeof(unsigned long))

static inline uint64_t words(uint64_t bits)
{
	return (bits + BPL - 1) / BPL;
}

/*
 * First bit >= from in [from, size) that is set (flip 0) or clear
 * (flip ~0UL), or size if there is none.  Whole words at a time.
 */
static uint64_t find_next(const unsigned long *map, uint64_t size,
			  uint64_t from, unsigned long flip)
{
	uint64_t i, bit;
	unsigned long w;

	if (from >= size)
		return size;
	i = from / BPL;
	w = (map[i] ^ flip) & (~0UL << (from % BPL));
	while (!w) {
		if (++i >= words(size))
			return size;
		w = map[i] ^ flip;
	}
	bit = i * BPL + (uint64_t)__builtin_ctzl(w);
	return bit < size ? bit : size;
}

static uint64_t find_next_bit(const unsigned long *map, uint64_t size,
			      uint64_t from)
{
	return find_next(map, size, from, 0);
}

static uint64_t find_next_zero_bit(const unsigned long *map, uint64_t size,
				   uint64_t from)
{
	return find_next(map, size, from, ~0UL);
}

/* Set (val) or clear bits [start, start + n), n > 0, a word at a time. */
static void bitmap_fill(unsigned long *map, uint64_t start, uint64_t n,
			bool val)
{
	uint64_t end = start + n, i = start / BPL, last = (end - 1) / BPL;
	unsigned long head = ~0UL << (start % BPL);
	unsigned long tail = ~0UL >> ((BPL - end % BPL) % BPL);

	if (i == last)
		head &= tail;
	if (val)
		map[i] |= head;
	else
		map[i] &= ~head;
	if (i == last)
		return;
	for (i++; i < last; i++)
		map[i] = val ? ~0UL : 0;
	if (val)
		map[last] |= tail;
	else
		map[last] &= ~tail;
}

static inline bool test_bit(const unsigned long *map, uint64_t bit)
{
	return (map[bit / BPL] >> (bit % BPL)) & 1;
}

static inline void change_bit(unsigned long *map, uint64_t bit)
{
	map[bit / BPL] ^= 1UL << (bit % BPL);
}

int qbm_create(struct qbm *q, uint64_t size)
{
	if (!size || size % QBM_PAGE_SIZE)
		return -EINVAL;
	q->npages = size >> QBM_PAGE_SHIFT;
	q->bitmap = calloc(words(q->npages), sizeof(unsigned long));
	q->listeners = NULL;
	q->scan_to_end = false;
	return q->bitmap ? 0 : -ENOMEM;
}

void qbm_destroy(struct qbm *q)
{
	free(q->bitmap);
	q->bitmap = NULL;
}

/*
 * Tell every listener that [offset, +size) became shared.  If one fails,
 * the ones already told are told to discard it again.
 */
static int notify_populate(struct qbm *q, uint64_t offset, uint64_t size)
{
	struct qbm_listener *l, *failed;
	int ret = 0;

	for (l = q->listeners; l; l = l->next) {
		ret = l->populate(l, offset, size);
		if (ret)
			break;
	}
	if (!ret)
		return 0;
	failed = l;
	for (l = q->listeners; l != failed; l = l->next)
		l->discard(l, offset, size);
	return ret;
}

static void notify_discard(struct qbm *q, uint64_t offset, uint64_t size)
{
	for (struct qbm_listener *l = q->listeners; l; l = l->next)
		l->discard(l, offset, size);
}

int qbm_register_listener(struct qbm *q, struct qbm_listener *l)
{
	uint64_t p = find_next_bit(q->bitmap, q->npages, 0), end;
	int ret;

	while (p < q->npages) {
		end = find_next_zero_bit(q->bitmap, q->npages, p);
		ret = l->populate(l, p << QBM_PAGE_SHIFT,
				  (end - p) << QBM_PAGE_SHIFT);
		if (ret)
			return ret;
		p = find_next_bit(q->bitmap, q->npages, end);
	}
	l->next = q->listeners;
	q->listeners = l;
	return 0;
}

int qbm_state_change(struct qbm *q, uint64_t offset, uint64_t size,
		     bool to_private)
{
	uint64_t first, end, limit, p;
	bool all_private, all_shared;
	int ret;

	if (!size || offset % QBM_PAGE_SIZE || size % QBM_PAGE_SIZE ||
	    offset + size < offset || offset + size > q->npages <<
	    QBM_PAGE_SHIFT)
		return -EINVAL;
	first = offset >> QBM_PAGE_SHIFT;
	end = first + (size >> QBM_PAGE_SHIFT);
	limit = q->scan_to_end ? q->npages : end;
	all_private = find_next_bit(q->bitmap, limit, first) >= end;
	all_shared = find_next_zero_bit(q->bitmap, limit, first) >= end;

	if (to_private ? all_private : all_shared)
		return 0;
	if (all_private || all_shared) {
		bitmap_fill(q->bitmap, first, end - first, !to_private);
		if (to_private) {
			notify_discard(q, offset, size);
			return 0;
		}
		return notify_populate(q, offset, size);
	}
	/* A mixture: every page on its own, one notification each. */
	for (p = first; p < end; p++) {
		if (test_bit(q->bitmap, p) != to_private)
			continue;
		change_bit(q->bitmap, p);
		if (to_private) {
			notify_discard(q, p << QBM_PAGE_SHIFT, QBM_PAGE_SIZE);
			continue;
		}
		ret = notify_populate(q, p << QBM_PAGE_SHIFT, QBM_PAGE_SIZE);
		if (ret)
			return ret;
	}
	return 0;
}

uint64_t qbm_bytes(const struct qbm *q)
{
	return words(q->npages) * sizeof(unsigned long);
}

uint64_t qbm_count_shared(const struct qbm *q)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < words(q->npages); i++)
		n += (uint64_t)__builtin_popcountl(q->bitmap[i]);
	return n;
}

static int memfd_of(const char *name, uint64_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size)) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

int qemu_dual_create(struct qemu_dual *d, uint64_t size)
{
	int ret = qbm_create(&d->attr, size);

	if (ret)
		return ret;
	d->size = size;
	d->shared_fd = memfd_of("qemu-ram", size);
	if (d->shared_fd < 0) {
		ret = d->shared_fd;
		goto err_attr;
	}
	d->private_fd = memfd_of("qemu-guest-memfd", size);
	if (d->private_fd < 0) {
		ret = d->private_fd;
		goto err_shared;
	}
	d->host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       d->shared_fd, 0);
	if (d->host == MAP_FAILED) {
		ret = -errno;
		goto err_private;
	}
	return 0;

err_private:
	close(d->private_fd);
err_shared:
	close(d->shared_fd);
err_attr:
	qbm_destroy(&d->attr);
	return ret;
}

void qemu_dual_destroy(struct qemu_dual *d)
{
	munmap(d->host, d->size);
	close(d->private_fd);
	close(d->shared_fd);
	qbm_destroy(&d->attr);
}

int qemu_dual_convert(struct qemu_dual *d, uint64_t offset, uint64_t size,
		      bool to_private)
{
	int fd, ret = qbm_state_change(&d->attr, offset, size, to_private);

	if (ret)
		return ret;
	/*
	 * Free the side given up.  Punching the shared memfd also zaps the
	 * range from the host mapping, so a later touch faults in a new,
	 * zeroed page.
	 */
	fd = to_private ? d->shared_fd : d->private_fd;
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)offset, (off_t)size))
		return -errno;
	return 0;
}
