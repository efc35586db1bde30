/* SPDX-License-Identifier: MIT */
/*
 * view.h - what view.c and view_mode.c share: visibility runs and the
 * mode policy.  All with g->lock held.
 */
#ifndef GMEM_VIEW_H
#define GMEM_VIEW_H

#include "internal.h"

/*
 * Is page p shown in v (*shown), with ch applied if ch is not NULL, and
 * the end (<= limit) of the run of pages with the same answer.
 */
uint64_t gmem_vis_run(struct gmem *g, const struct gmem_view *v,
		      const struct gmem_change *ch, uint64_t p,
		      uint64_t limit, bool *shown);
/* Maximal runs of equal visibility in [lo, hi) (VMAs in VMA mode). */
uint64_t gmem_view_runs(struct gmem *g, const struct gmem_view *v,
			const struct gmem_change *ch, uint64_t lo,
			uint64_t hi);
/* VMAs v holds in its current mode. */
uint64_t gmem_view_vmas(struct gmem *g, const struct gmem_view *v);

/* view_mode.c */
/* Can v use the UFFD guard?  0, or why not (-errno). */
int gmem_uffd_usable(struct gmem *g, const struct gmem_view *v);
/* The mode a new view starts in. */
enum gmem_view_mode gmem_view_initial_mode(struct gmem *g,
					   const struct gmem_view *v);
/*
 * Before ch changes [lo, hi) of v: switch v's mode where the change
 * makes the other one cheaper (a large allocation a UFFD view would make
 * eagerly).  Fails only when the switch it needs fails.
 */
int gmem_view_policy(struct gmem *g, struct gmem_view *v,
		     const struct gmem_change *ch, uint64_t lo, uint64_t hi);

#endif /* GMEM_VIEW_H */
