/* SPDX-License-Identifier: MIT */
/*
 * demo.h - what the two files of "gmemctl demo" share: the state of one
 * run (struct demo: the file, its layout, what the owner was told, the
 * results for the summary) and the six steps.  builtin-demo.c owns the
 * command (options, layout, summary, teardown); demo-steps.c the steps.
 *
 * Guest layout, R = the accepted part = min(size / 2, 512 MiB):
 *
 *   [0, R/8)          firmware image (at most 4 MiB), populated private
 *   [R/8, R/4)        OVMF DMA slots: 1-2 pages flipped per transaction
 *   [R/4, ...)        virtio rings, 4 x (size / 1024, at most 64 KiB)
 *   [3R/8, R/2)       swiotlb bounce buffer (at most 64 MiB), shared; a
 *                     device pins a quarter of it (at most 1 MiB)
 *   [R/2, R)          ballooned out at the end (at most 256 MiB)
 *   [R, size)         never touched: no memory behind it
 */
#ifndef GMEMCTL_DEMO_H
#define GMEMCTL_DEMO_H

#include "gmemctl.h"

#define CHUNK		(2 * MiB)	/* acceptance and MapGPA granularity */
#define NR_RINGS	4
#define SLOT_PAGES	8		/* DMA slots are 8 pages apart */
#define MAX_SLOTS	64
#define NR_REASONS	(GMEM_INVALIDATE_POISON + 1)

struct demo {
	const struct demo_opts *o;
	struct gmem *g;
	struct gmem_binding *b;
	char *view;
	bool pinned;

	/* Layout, bytes: see the top of the file. */
	uint64_t size, accept_len, fw_len, dma_off, nslots;
	uint64_t rings_off, ring_len, swiotlb_off, swiotlb_len;
	uint64_t pin_off, pin_len, balloon_off, balloon_len;

	/* What the owner was told, by reason. */
	uint64_t inval[NR_REASONS];
	uint64_t inval_bytes[NR_REASONS];

	/* Results for the summary. */
	uint64_t accepted, huge_pages;
	double conv_per_s, p50, p99, flip_s;
	uint64_t eagain_offset, sigbus_offset;
	uint64_t t_start;
};

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* "memfd" or "KVM guest_memfd". */
const char *demo_backend_name(const struct demo_opts *o);
/* Print "demo: what: strerror" and return EXIT_FAIL. */
int demo_fail(const char *what, int err);
/* gmem_stat() of the demo's file: 0 or an exit code. */
int demo_stats(struct demo *d, struct gmem_stats *st);

/*
 * The steps, in order (demo-steps.c): each does its part, prints its
 * narrative and its JSON object, and returns 0 or an exit code.
 * step_create hands the firmware image (the caller frees it) to
 * step_accept, which checks the guest sees it.
 */
int step_create(struct demo *d, unsigned char **fw);
int step_accept(struct demo *d, const unsigned char *fw);
int step_share(struct demo *d);
int step_dma(struct demo *d);
int step_pinned(struct demo *d);
int step_balloon(struct demo *d);

#endif /* GMEMCTL_DEMO_H */
