/* SPDX-License-Identifier: MIT */
/*
 * internal.h - struct gmem and the interfaces between libgmem's upper
 * layers.  Dependencies point down, never up:
 *
 *   API        file.c (create, close, stat), alloc.c (fallocate, punch,
 *              populate), convert.c, pin.c, binding.c, listener.c,
 *              failure.c
 *   file state lock.c (lock, lifetime), view.c + view_mode.c (host
 *              views: guard modes, the VMA budget), notify.c (owners and
 *              listeners), rehome.c (pages the kernel may still hold),
 *              huge.c (huge-page bookkeeping)
 *   memory     backing.c + kvm.c (the file), map.c (every mapping of
 *              it, the fork guard)
 *   base       sys.c (every system call, fault injection), state.c,
 *              extent.c, park.c (data structures)
 *
 * Only this header and the API files know struct gmem's whole layout;
 * the base and memory layers never see it.
 */
#ifndef GMEM_INTERNAL_H
#define GMEM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backing.h"
#include "extent.h"
#include "gmem.h"
#include "park.h"
#include "refs.h"
#include "state.h"

#define GMEM_EXPORT __attribute__((visibility("default")))

enum gmem_view_mode {
	GMEM_VIEW_VMA,		/* hidden runs are holes (own VMAs) */
	GMEM_VIEW_UFFD,		/* one registered VMA: hidden = no PTE */
	GMEM_VIEW_REVOKED,	/* one hole over everything (escalation) */
};

struct gmem_view {
	struct gmem_view *next;
	char *addr;
	size_t len;			/* page multiple */
	uint64_t first;			/* first page of the file it maps */
	uint64_t npages;		/* pages of len (past the end: holes) */
	int prot;
	enum gmem_view_mode mode;
	bool pin;			/* the pin view: shows g->pin_shown */
	bool internal;			/* not the caller's (the pin view) */
	bool reg;			/* VMA mode hides by registering */
	bool unmapped;			/* revoked and unmapped (view.c) */
	bool need_recount;		/* its VMA count is not known */
	bool carve_left;		/* a carve's flag may be left on it */
	uint64_t vmas;			/* VMAs it holds, in the budget */
	uint64_t settle_at;		/* view_mode.c: when to look again */
	/* during gmem_views_apply() */
	enum { TX_NONE, TX_PREPARED, TX_COMMITTED } tx;
	uint64_t tx_stop;		/* where a failed commit stopped */
	bool tx_recount;		/* an undo failed: count the VMAs */
	int tx_err;			/* the commit's error */
	int64_t tx_delta;		/* VMAs the change adds */
};

/*
 * What a change does to [start, end): the state it gets (val, or -1 for
 * unchanged), whether it becomes poisoned (1) or not (0) or stays (-1),
 * and for the pin view whether it joins (1) or leaves (0) what it shows.
 */
struct gmem_change {
	uint64_t start, end;
	int val;
	int poison;
	int pin;
	int was;	/* every page's state in [start, end) before the
			   change, when one value (else -1): saves the walks
			   a lookup per run */
};

struct gmem {
	/*
	 * The file lock.  It orders every change of this file against every
	 * other: conversion, allocation, punch-hole, populate, pin, unpin,
	 * get_pfn/put_pfn, view creation and removal and mode switches,
	 * re-homing, close and stats.  The state check and the view change
	 * of a conversion both happen under it, so no thread can find a page
	 * shared in the tree while it is still hidden anywhere, or the
	 * reverse.  Faults on host views take no lock of ours: a view's
	 * mappings are the truth the kernel acts on, and they only change
	 * under the lock.  Inside it libgmem takes only the fork guard
	 * (map.c, for the length of one mapping) and malloc's locks.
	 *
	 * Callbacks (binding invalidate, listener populate/discard) run with
	 * it held, on the thread making the change, with cb_thread set to
	 * that thread: a callback that calls libgmem for the same file gets
	 * -EDEADLK instead of deadlocking.  Holding the lock is what makes
	 * "no callback after gmem_unbind() returns" true.  A callback must
	 * not wait for another thread that calls into the same file: that
	 * thread blocks on the lock; except gmem_get_pfn()/gmem_put_pfn() on
	 * a binding under invalidation, which never sleep on the lock then
	 * (binding.c: lock-free fast paths, -EAGAIN from the slow one).
	 * Lock order: g->lock, then wake_lock (a leaf: nothing is taken
	 * under it), and the fork guard inside map.c.  Callbacks of two files must not call
	 * into each other (each runs under its own file's lock).
	 *
	 * GMEM_SET_ATTR_WAIT drops the lock while it waits on wake_cond and,
	 * woken, checks state and pins again from scratch (-EBADF if the
	 * file was closed meanwhile).
	 *
	 * Read without the lock: size, flags, page_shift, npages, backend,
	 * huge_shift and the backing's kind and fds, fixed before
	 * gmem_create() returns.  libgmem is not async-signal-safe, and the
	 * child of a fork() cannot use a file the parent had (it has none of
	 * its mappings).
	 */
	pthread_mutex_t lock;
	/*
	 * Waiting for references to go (GMEM_SET_ATTR_WAIT): unpin_seq
	 * grows whenever a pin or shared reference may have gone (even
	 * from gmem_put_pfn()'s lock-free path); a waiter reads it before
	 * it looks at the pins, then sleeps on wake_cond (under wake_lock,
	 * never held with anything else) until it changes.  Wakers take
	 * wake_lock only if unpin_waiters says someone sleeps.
	 */
	pthread_mutex_t wake_lock;
	pthread_cond_t wake_cond;
	_Atomic uint64_t unpin_seq;
	_Atomic unsigned int unpin_waiters;

	struct gmem_backing b;
	unsigned int backend;		/* GMEM_BACKEND_* */
	unsigned int huge_shift;	/* 21, 30, or 0: 4 KiB pages */
	bool hugetlb;			/* 1 GiB hugetlb rather than THP */
	uint64_t size;
	uint64_t flags;
	unsigned int page_shift;
	uint64_t npages;
	int uffd;			/* userfaultfd, or -1 */
	int uffd_err;			/* why it could not be opened */

	struct gmem_state state;
	struct gmem_extents pins;	/* gmem_pin()'s: conversions wait */
	struct gmem_extents user_pins;	/* the same, for unpin */
	struct gmem_extents poison;	/* poisoned pages, count 1 each */
	struct gmem_extents pin_shown;	/* what the pin view shows */
	struct gmem_view *views;	/* every view, the pin view too */
	struct gmem_view *pin_view;	/* created by the first pin */
	struct gmem_binding *bindings;
	struct gmem_listener *listeners;

	/*
	 * Pages the kernel may reference from when they were shared
	 * (rehome.c).  host_exposed: some host path (a view, a pin, a
	 * listener, a shared get_pfn) ever existed, so any shared page may
	 * have been handed to the kernel.  hugetlb keeps it per region.
	 */
	bool host_exposed;
	uint8_t *region_exposed;	/* hugetlb: one byte per region */
	struct gmem_park park;
	struct gmem_extents pending;	/* to re-home from the file before
					   their first private use */
	uint64_t rehomed;		/* pages given a fresh page */
	uint64_t rehome_busy;		/* re-homes refused: folio in use */

	_Atomic unsigned long cb_thread; /* thread inside a callback, or 0 */
	unsigned int nr_user_views;
	unsigned int nr_waiters;	/* threads in a GMEM_SET_ATTR_WAIT */
	bool closed;			/* gmem_close() was called */
	bool close_deferred;		/* ... from a callback: close at the
					   end of this lock hold (lock.c) */

	uint64_t vmas;			/* VMAs of this file in the budget */
	uint64_t views_revoked;
	uint64_t mode_switches;
	uint64_t conversions;
	uint64_t pages_converted;
	uint64_t nr_bindings;
	uint64_t nr_listeners;
	uint64_t invalidations;
	uint64_t listener_calls;
	uint64_t splits;		/* huge regions that went mixed */
	uint64_t merges;		/* huge regions that went uniform */
	uint64_t mixed_before;		/* during a conversion (huge.c) */
	uint64_t rehomed_before;
	bool edge_mixed[2];
	bool inval_open;		/* some binding has inval_pending */
	_Atomic unsigned int inval_any;	/* bindings under invalidation */

	/* Owner side of the peer protocol (export.c). */
	struct gmem_peer *peers;	/* every gmem_export() not unexported */
	uint64_t peer_changes;
	uint64_t peers_lost;
	uint64_t peers_cut;
	/* Peer side (attach.c): non-NULL for a peer file. */
	struct gmem_link *link;

	/* Dirty tracking (dirty.c): NULL while off. */
	struct gmem_dirty *dirty;
	/* A file restored from a tracked snapshot (restore.c): the chain
	 * and generation it holds; broken after an apply failed part way. */
	bool snap_chained, snap_broken;
	uint64_t snap_chain_id, snap_gen;
};

static inline uint64_t page_of(const struct gmem *g, uint64_t off)
{
	return off >> g->page_shift;
}

static inline uint64_t off_of(const struct gmem *g, uint64_t page)
{
	return page << g->page_shift;
}

static inline bool gmem_poisoned(const struct gmem *g, uint64_t page)
{
	return g->poison.nr && gmem_extents_first(&g->poison, page,
						  page + 1) == page;
}

struct gmem_binding {
	struct gmem_binding *next;
	struct gmem *g;
	uint64_t first;			/* first page of the file it covers */
	uint64_t npages;
	const struct gmem_binding_ops *ops;
	void *owner;
	/*
	 * References and the lock-free gmem_get_pfn() path (refs.h), and
	 * the invalidation protocol: inval_active counts invalidations
	 * begun and not ended, inval_seq those ended (both atomic, read by
	 * gmem_invalidate_retry() without any lock).  An invalidation
	 * begins in gmem_invalidate() and ends when the file lock is
	 * released (gmem_unlock_put()), after the change it announced.
	 */
	struct gmem_refs refs;
	_Atomic(char *) base;		/* the window at first: set once,
					 * before any READY (the fast path
					 * reads it after the word's acquire) */
	unsigned int shift;		/* the file's page_shift */
	_Atomic uint64_t inval_seq;
	_Atomic unsigned int inval_active;
	unsigned int inval_pending;	/* begun in this lock hold */
	uint64_t ra_next;		/* populate-ahead: the expected page */
	unsigned int ra_size;		/* and how far ahead it went */
};

struct gmem_listener {
	struct gmem_listener *next;
	struct gmem *g;
	uint64_t first;
	uint64_t npages;
	const struct gmem_listener_ops *ops;
	void *opaque;
};

/* [start, end) clipped to b's pages into [*s, *e): false if they miss. */
static inline bool gmem_binding_clip(const struct gmem_binding *b,
				     uint64_t start, uint64_t end,
				     uint64_t *s, uint64_t *e)
{
	*s = start > b->first ? start : b->first;
	*e = end < b->first + b->npages ? end : b->first + b->npages;
	return *s < *e;
}

/* lock.c */
bool gmem_range_ok(const struct gmem *g, uint64_t offset, uint64_t len);
/* A pin or shared reference may have gone: wake the waiters. */
void gmem_refs_wake(struct gmem *g);
int gmem_lock(struct gmem *g);
int gmem_lock_live(struct gmem *g);
void gmem_unlock_put(struct gmem *g);
/* Free g and all it holds (the last holder, unlocked). */
void gmem_destroy(struct gmem *g);
/* Close g (lock held): -EBADF from now on, owners told RELEASE. */
void gmem_mark_closed(struct gmem *g);

static inline void gmem_cb_enter(struct gmem *g)
{
	atomic_store(&g->cb_thread, (unsigned long)pthread_self());
}

static inline void gmem_cb_exit(struct gmem *g)
{
	atomic_store(&g->cb_thread, 0);
}

/* Is this thread inside one of g's callbacks (so holding g->lock)? */
static inline bool gmem_in_callback(struct gmem *g)
{
	return atomic_load(&g->cb_thread) == (unsigned long)pthread_self();
}

/* view.c: all with g->lock held. */
int gmem_view_create(struct gmem *g, uint64_t offset, size_t len, int prot,
		     bool pin, struct gmem_view **out);
void gmem_view_destroy(struct gmem *g, struct gmem_view *v);
/*
 * Apply ch to every view: prepare all (may fail: nothing changed), then
 * mid(arg) if given (may fail: nothing changed), then commit all (a
 * failure undoes what was committed: nothing changed, or views that
 * could not be put back are revoked), then post(arg) if given (a failure
 * undoes every commit, as above).  Returns 0 or the first error.
 */
int gmem_views_apply(struct gmem *g, const struct gmem_change *ch,
		     int (*mid)(struct gmem *g, void *arg),
		     int (*post)(struct gmem *g, void *arg), void *arg);
/* Apply ch to one view alone (the pin view: pin, unpin), then post. */
int gmem_view_apply(struct gmem *g, struct gmem_view *v,
		    const struct gmem_change *ch,
		    int (*post)(struct gmem *g, void *arg), void *arg);
/* After ch took effect in the file's state: modes, merges. */
void gmem_views_settle(struct gmem *g, const struct gmem_change *ch);
/* Count v's VMAs from /proc/self/maps (after failures). */
void gmem_view_recount(struct gmem *g, struct gmem_view *v);
/* Escalation: make all of v unreachable (one hole), counted. */
void gmem_view_revoke(struct gmem *g, struct gmem_view *v);
/* Does a UFFD-mode view show a page of [start, end)? */
bool gmem_views_uffd_cover(struct gmem *g, uint64_t start, uint64_t end);
/* VMAs libgmem holds in this process, and its budget. */
uint64_t gmem_vmas_total(void);
uint64_t gmem_vma_budget(void);
void gmem_vmas_account(struct gmem *g, int64_t delta);

/* view_mode.c: the guard mechanisms behind view.c. */
int gmem_uffd_get(struct gmem *g);
int gmem_view_to_uffd(struct gmem *g, struct gmem_view *v);
int gmem_view_to_vma(struct gmem *g, struct gmem_view *v);

/* notify.c: with g->lock held. */
void gmem_invalidate(struct gmem *g, uint64_t start, uint64_t end,
		     unsigned int reason);
void gmem_invalidate_changing(struct gmem *g, uint64_t start, uint64_t end,
			      unsigned int val);
int gmem_listeners_populate(struct gmem *g, uint64_t start, uint64_t end,
			    uint64_t *error_page);
void gmem_listeners_discard(struct gmem *g, uint64_t start, uint64_t end,
			    unsigned int cur_val);
int gmem_listener_replay(struct gmem *g, struct gmem_listener *l);

/*
 * export.c: the owner side of the peer protocol, with g->lock held.
 * Tell every attached peer whose range meets ch's of the change and wait
 * (each at most its timeout) until each has done it.  A peer that does
 * not answer is cut off.  0, or the first error: a peer's refusal, or
 * -ETIMEDOUT when one that did not answer could not be shown gone; the
 * peers are then put back to the file's state (the change is undone).
 */
int gmem_peers_change(struct gmem *g, const struct gmem_change *ch);
/*
 * In a GMEM_SET_ATTR_WAIT held back by a pin of page: ask each peer
 * whose pins hold it whether it is alive; one that does not answer is
 * cut off (its pins go).  How long to wait before asking again (ms), or
 * 0 if no peer pins page.
 */
int gmem_peers_ping(struct gmem *g, uint64_t page);
/* Put the peers' [start, end) back to the file's state (after a failure). */
void gmem_peers_resync(struct gmem *g, uint64_t start, uint64_t end);
/* The file is closed: tell the peers, cut them loose. */
void gmem_peers_closed(struct gmem *g);
/* Bytes the peers hold pinned; peers attached. */
uint64_t gmem_peers_pinned(struct gmem *g);
uint64_t gmem_peers_attached(struct gmem *g);

/* attach.c: the peer side. */
static inline bool gmem_is_peer(const struct gmem *g)
{
	return g->link != NULL;
}
/* Pin through the owner, then locally (no lock held by the caller). */
int gmem_link_pin(struct gmem *g, uint64_t offset, uint64_t len,
		  void **addr);
int gmem_link_unpin(struct gmem *g, uint64_t offset, uint64_t len);
/* g->lock held: does the link keep g alive; is it time to detach. */
bool gmem_link_holds(struct gmem *g, bool idle);
void gmem_link_destroy(struct gmem *g);
/* Is [offset, +len) inside the range the owner exported? */
bool gmem_link_range_ok(const struct gmem *g, uint64_t offset, uint64_t len);
/* The range exported to this peer file, in bytes. */
void gmem_link_range(const struct gmem *g, uint64_t *offset, uint64_t *size);
/* May a view of [offset, +len) be made: 0, -EINVAL (outside), -EIO. */
int gmem_link_view_ok(const struct gmem *g, uint64_t offset, uint64_t len);

/* pin.c, g->lock held: the local part of gmem_pin() / gmem_unpin(). */
int gmem_pin_locked(struct gmem *g, uint64_t offset, uint64_t len,
		    void **addr);
int gmem_unpin_locked(struct gmem *g, uint64_t offset, uint64_t len);

/* rehome.c: with g->lock held. */
void gmem_rehome_init(struct gmem *g);
void gmem_rehome_destroy(struct gmem *g);
void gmem_expose(struct gmem *g, uint64_t start, uint64_t end);
int gmem_rehome_prepare(struct gmem *g, uint64_t start, uint64_t end);
int gmem_rehome_to_private(struct gmem *g, uint64_t start, uint64_t end,
			   bool all_shared);
int gmem_rehome_to_shared(struct gmem *g, uint64_t start, uint64_t end);
void gmem_rehome_to_shared_done(struct gmem *g, uint64_t start,
				uint64_t end);
bool gmem_rehome_allocated(struct gmem *g, uint64_t start, uint64_t end);
int gmem_rehome_private_use(struct gmem *g, uint64_t start, uint64_t end,
			    uint64_t *bad);
void gmem_rehome_forget(struct gmem *g, uint64_t start, uint64_t end);
void gmem_rehome_lost(struct gmem *g, uint64_t start, uint64_t end);
void gmem_rehome_undo(struct gmem *g, uint64_t start, uint64_t end);
int gmem_rehome_retry(struct gmem *g);

/* huge.c */
int gmem_huge_validate(uint64_t flags, uint64_t size, unsigned int *shift);
void gmem_huge_before(struct gmem *g, uint64_t start, uint64_t end);
void gmem_huge_after(struct gmem *g, uint64_t start, uint64_t end,
		     unsigned int val);
unsigned int gmem_huge_order(struct gmem *g, uint64_t page, unsigned int val);
/* A view's address range, copied out from under the lock. */
struct gmem_span {
	uintptr_t lo, hi;
};
/* The user views of a huge-page file (none otherwise); g->lock held. */
int gmem_huge_spans(struct gmem *g, struct gmem_span **out, size_t *n);
/* Bytes of those mapped with huge pages (/proc/self/smaps); no lock. */
int gmem_huge_mapped(const struct gmem_span *spans, size_t n,
		     uint64_t *bytes);
void gmem_huge_round(const struct gmem *g, uint64_t *start, uint64_t *end);

/*
 * dirty.c: dirty tracking, all with g->lock held.  A scan folds what
 * every mapping saw into each consumer's bits (one per page); note marks
 * pages the library changed without a mapping of its own.
 */
enum gmem_dirty_consumer { GMEM_DIRTY_SAVE, GMEM_DIRTY_USER, GMEM_DIRTY_NR };
int gmem_dirty_scan(struct gmem *g);
void gmem_dirty_note(struct gmem *g, uint64_t start, uint64_t end);
/* Fold one view (before it is unmapped, revoked or switches mode). */
int gmem_dirty_view(struct gmem *g, struct gmem_view *v);
/* The same, counting all it shows if the scan fails. */
void gmem_dirty_view_final(struct gmem *g, struct gmem_view *v);
uint64_t *gmem_dirty_bits(struct gmem *g, enum gmem_dirty_consumer c);
/* The pages allocated at the last scan (a bit each). */
const uint64_t *gmem_dirty_alloc(struct gmem *g);
void gmem_dirty_destroy(struct gmem *g);
bool gmem_dirty_chain(struct gmem *g, uint64_t *id, uint64_t *gen);
void gmem_dirty_chain_set(struct gmem *g, bool chained, bool fresh,
			  uint64_t gen);
/* export.c: the shared pages of every exported range, as dirty. */
void gmem_peers_dirty(struct gmem *g);

#endif /* GMEM_INTERNAL_H */
