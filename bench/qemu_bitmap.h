/* SPDX-License-Identifier: MIT */
/*
 * qemu_bitmap.h - the baselines: how QEMU tracks and converts guest
 * memory today, rewritten from its documented behaviour (no QEMU code).
 *
 * struct qbm is QEMU's RamBlockAttributes: one bit per 4 KiB page, set =
 * shared ("populated"), clear = private ("discarded"), all clear at
 * creation, and a list of listeners (VFIO) told about every change.  Its
 * memory is the bitmap: 32 KiB per GiB, 32 MiB per TiB, whatever the
 * state looks like.
 *
 * struct qemu_dual is QEMU's two backings per RAM block: a memfd for the
 * shared side, mapped MAP_SHARED as the host view, and a second file for
 * the private side (guest_memfd; here another memfd).  A conversion
 * updates the bitmap and frees the side given up, so contents are lost:
 * a page that comes back shared reads as zeros and its next touch
 * allocates and clears a new page.
 */
#ifndef BENCH_QEMU_BITMAP_H
#define BENCH_QEMU_BITMAP_H

#include <stdbool.h>
#include <stdint.h>

#define QBM_PAGE_SHIFT	12
#define QBM_PAGE_SIZE	(1ULL << QBM_PAGE_SHIFT)

/* A RamDiscardListener: told about [offset, offset + size) changes. */
struct qbm_listener {
	struct qbm_listener *next;
	/* Became shared; non-zero stops the conversion (like VFIO map). */
	int (*populate)(struct qbm_listener *l, uint64_t offset,
			uint64_t size);
	/* Became private; cannot fail (like VFIO unmap). */
	void (*discard)(struct qbm_listener *l, uint64_t offset,
			uint64_t size);
};

struct qbm {
	unsigned long *bitmap;		/* bit set = shared */
	uint64_t npages;		/* bits in use */
	struct qbm_listener *listeners;	/* may be empty */
	/*
	 * QEMU classifies a range by scanning for the next set and the next
	 * clear bit up to the end of the whole bitmap, not of the range,
	 * which costs a long scan when the rest of the file is uniform.
	 * false (the default) stops the scans at the end of the range: a
	 * baseline at least as fast as QEMU's.  true is QEMU exactly.
	 */
	bool scan_to_end;
};

/* All pages private.  -EINVAL (size 0 or unaligned) or -ENOMEM. */
int qbm_create(struct qbm *q, uint64_t size);
void qbm_destroy(struct qbm *q);

/* Add l; it is told about every shared run at once (replay), as QEMU. */
int qbm_register_listener(struct qbm *q, struct qbm_listener *l);

/*
 * Make [offset, offset + size) private or shared: 0, -EINVAL (unaligned,
 * empty, overflowing or outside), or a listener's populate error.
 */
int qbm_state_change(struct qbm *q, uint64_t offset, uint64_t size,
		     bool to_private);

static inline bool qbm_is_shared(const struct qbm *q, uint64_t page)
{
	const unsigned int bpl = 8 * sizeof(unsigned long);

	return (q->bitmap[page / bpl] >> (page % bpl)) & 1;
}

/* Memory used for tracking: the bitmap. */
uint64_t qbm_bytes(const struct qbm *q);

/* Shared pages (population count), for cross-checks. */
uint64_t qbm_count_shared(const struct qbm *q);

struct qemu_dual {
	struct qbm attr;
	int shared_fd;			/* memfd: the host's memory */
	int private_fd;			/* stands in for guest_memfd */
	char *host;			/* shared_fd, MAP_SHARED */
	uint64_t size;
};

/* Both backings of size bytes, all private; 0 or -errno. */
int qemu_dual_create(struct qemu_dual *d, uint64_t size);
void qemu_dual_destroy(struct qemu_dual *d);

/* kvm_convert_memory() without KVM: bitmap, then discard the old side. */
int qemu_dual_convert(struct qemu_dual *d, uint64_t offset, uint64_t size,
		      bool to_private);

#endif /* BENCH_QEMU_BITMAP_H */
