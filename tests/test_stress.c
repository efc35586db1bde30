// SPDX-License-Identifier: MIT
/*
 * test_stress.c - many threads on one file, every kind of call at once,
 * against a model, with invariants checked throughout (issue 7).
 *
 * Threads (one file of NPAGES pages, three views: view 0 of it all, made
 * while all was shared (vma mode), view 1 of it all, made while all was
 * private (userfaultfd mode), view 2 of its middle half, read-only):
 *   conv x2    conversions both ways (sometimes GMEM_SET_ATTR_WAIT) and
 *              gmem_populate(), expecting the exact result: no-op,
 *              -EAGAIN on a pin, a listener's veto with its error_offset;
 *              half-way, conv0 makes 80 private islands, so view 0
 *              switches to userfaultfd mode while it is being read
 *   writer     checks a page through a view under the page's lock
 *              (contents, or SIGBUS with si_addr if private/poisoned) and
 *              writes new contents if it is shared
 *   punch      punch-hole (also past the end), allocate, memory failure
 *   reader x2  lock-free probes through the views, judged by a seqlock
 *   pinner     gmem_pin()/gmem_unpin(), checking contents at the pin,
 *              and that reading past the pinned pages (a device's
 *              overrun) finds no private page (the pin view shows only
 *              pinned pages, so a shared one may fault there too)
 *   churn      views made, checked and removed
 *   binder     bind/get_pfn/put_pfn/unbind, checking contents through
 *              the guest view (private pages too) and the invalidations
 *   listener   listener register/unregister (some refuse some pages) and
 *              a check that each listener holds exactly the shared pages
 *   watchdog   fails the test if a thread makes no progress for
 *              STRESS_WATCHDOG seconds (default 15): a deadlock
 *   main       every 2 s stops the world and checks gmem_stat() against
 *              a recount, every page's attributes and contents
 *
 * The model: per page its state, poison, contents (a tag: the page's
 * bytes are a function of page number and tag; 0 = zeros), gmem_pin()
 * pins and shared pfn references, each guarded by a per-page mutex that
 * every thread changing the page holds across the call and the model
 * update.  Pins also take pin_lock, so a conversion knows exactly which
 * pages are pinned.  Lock order: page locks (ascending), then pin_lock,
 * then libgmem's own lock; lsn_lock, park_lock and log_lock are leaves.
 * GMEM_SET_ATTR_WAIT conversions hold their page locks while waiting, so
 * pins are taken with trylock only and dropped with pin_lock alone, and
 * the pinner and binder drop theirs before they park for a check while
 * such a conversion is in flight.
 *
 * "Private at that moment": every page has two sequence counters, sseq
 * (state or poison) and dseq (contents), odd while a call that may
 * change them runs.  A lock-free reader notes both, reads the model,
 * probes, and reads them again: if sseq did not move, the model's state
 * held for the whole probe, so a private or poisoned page must raise
 * SIGBUS and a shared one must not; if dseq did not move either, the
 * byte read must be the model's.
 *
 * Invariants (each violation is counted, the first few are printed, and
 * the test fails at the end): a private or poisoned page never readable
 * or writable through a view or a pin; a shared page never raises
 * SIGBUS, not even while it is being punched; data
 * written while shared intact after any number of conversions (through
 * views, pins and the guest view, and at the end after making every page
 * shared) unless punched; every return value as the model predicts; no
 * callback after gmem_unbind()/gmem_listener_unregister() returned, none
 * outside the registered range; each listener populated with exactly the
 * shared pages; gmem_stat() agrees with a recount; no deadlock; after
 * the last release, fds and libgmem mappings as before.
 *
 * STRESS_SECONDS (default 20), STRESS_SEED (printed at the start: the
 * same seed gives the same setup and each thread the same random
 * numbers, though scheduling interleaves the threads differently each
 * run), STRESS_WATCHDOG, GMEM_TEST_BACKEND=kvm (the kernel guest_memfd
 * backend; make check runs the memfd one).
 */
#include <linux/falloc.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/mman.h>

#include "gmem.h"
#include "harness.h"
#include "reliability.h"

#define NPAGES		256
#define NVIEWS		3
#define MAX_RANGE	8
#define MAX_PINS	16
#define MAX_BINDINGS	2
#define MAX_LISTENERS	2
#define GRAVEYARD	8192	/* owners kept after unbind, checked */
#define CHECK_EVERY	2.0	/* s between stop-the-world checks */
#define LOG_PER_KIND	5

#define RW		(PROT_READ | PROT_WRITE)
#define PUNCH		(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)

/* ---- violations and counters ---------------------------------------- */

enum violation {
	V_PRIVATE_READ,		/* a private/poisoned page accessed */
	V_SHARED_SIGBUS,	/* a shared page raised SIGBUS */
	V_CORRUPT,		/* a read returned bytes not the model's */
	V_DATA_LOST,		/* a checked page lost its contents */
	V_SI_ADDR,		/* SIGBUS at another address */
	V_RETURN,		/* a call returned what the model does not */
	V_LATE_CALLBACK,	/* a callback after unbind/unregister */
	V_CALLBACK_RANGE,	/* a callback outside its range, bad reason */
	V_LISTENER_STATE,	/* populate/discard out of step */
	V_STATS,		/* gmem_stat() disagrees with a recount */
	V_ATTRIBUTES,		/* gmem_get_attributes() disagrees */
	V_HYGIENE,		/* fds or mappings left behind */
	NR_VIOLATIONS,
};

static const char *const violation_names[NR_VIOLATIONS] = {
	"private page readable", "SIGBUS on a shared page", "corrupt read",
	"data lost", "wrong si_addr", "unexpected return value",
	"callback after unbind/unregister", "callback range or reason",
	"listener out of step", "stats disagree with recount",
	"attributes disagree with model", "resources left behind",
};

enum counter {
	C_TO_PRIVATE, C_TO_SHARED, C_WAIT, C_NOOP, C_EAGAIN, C_VETO,
	C_POPULATE, C_PUNCH, C_ALLOCATE, C_POISON, C_WRITE, C_LOCKED_SIGBUS,
	C_READS, C_READ_PRIVATE, C_READ_SHARED, C_READ_DATA, C_PIN,
	C_PIN_REFUSED, C_UNPIN, C_VIEWS, C_BIND, C_EEXIST, C_UNBIND,
	C_GET_PFN, C_PFN_FAULT, C_PFN_RETRY, C_PUT_PFN, C_LSN_REGISTER, C_LSN_REFUSED,
	C_LSN_UNREGISTER, C_LSN_VERIFY, C_INVALIDATIONS, C_LSN_CALLS,
	C_CHECKPOINTS, C_BUSY, NR_COUNTERS,
};

static const char *const counter_names[NR_COUNTERS] = {
	"to private", "to shared", "  of which waiting", "no-ops",
	"-EAGAIN (pinned)", "vetoed by a listener", "populate", "punch-hole",
	"allocate", "memory failure", "page writes", "locked SIGBUS checks",
	"lock-free probes", "  private, SIGBUS checked",
	"  shared, no SIGBUS checked", "  shared, byte checked", "pin",
	"pin refused", "unpin", "views made and removed", "bind",
	"bind -EEXIST", "unbind", "get_pfn", "get_pfn refused",
	"get_pfn -EAGAIN (invalidation under way)", "put_pfn",
	"listener register", "listener veto on replay",
	"listener unregister", "listener checks", "invalidate callbacks",
	"listener callbacks", "stop-the-world checks", "ops skipped (busy)",
};

/* ---- the model ------------------------------------------------------ */

struct page {
	pthread_mutex_t lock;
	atomic_uint sseq;	/* odd while state or poison may change */
	atomic_uint dseq;	/* odd while contents may change */
	atomic_uint priv;
	atomic_uint poison;
	atomic_uint tag;	/* contents; 0 = zeros */
	atomic_uint pins;	/* gmem_pin() pins */
	atomic_uint prefs;	/* shared get_pfn references */
	atomic_uint punching;	/* a punch-hole of it is in flight */
};

struct view {
	char *addr;
	uint64_t first, npages;
	int prot;
};

struct owner {
	atomic_int unbound;	/* set once gmem_unbind() returned */
	uint64_t off, size;	/* the binding, bytes */
};

struct binding {
	struct gmem_binding *b;
	struct owner *o;
	uint64_t first, npages;
	unsigned char sref[NPAGES], pref[NPAGES];	/* by file page */
};

struct lsn {
	atomic_int unregistered;
	uint64_t first, npages;
	unsigned int salt, refuse_mod;	/* refuse_mod 0: never refuses */
	unsigned char populated[NPAGES];	/* by file page */
};

struct lsn_slot {
	struct lsn *l;
	struct gmem_listener *gl;
	unsigned long seq;		/* registration order */
};

struct worker;
typedef void (*op_fn)(struct worker *w);

struct worker {
	const char *name;
	op_fn op;
	op_fn release;		/* drop pins/references (may be NULL) */
	op_fn finish;		/* at the end: release everything */
	uint64_t seed;
	pthread_t thread;
	atomic_ulong ops;
	atomic_int parked;
	_Atomic(const char *) doing;
	/* thread-private state */
	unsigned char *buf;	/* NPAGES pages */
	struct { uint64_t first, n; void *addr; } pins[MAX_PINS];
	int npins;
	struct binding bind[MAX_BINDINGS];
	struct lsn_slot *lslot[MAX_LISTENERS];
};

enum { W_CONV0, W_CONV1, W_WRITER, W_PUNCH, W_READER0, W_READER1,
       W_PINNER, W_CHURN, W_BINDER, W_LISTENER, NR_WORKERS };

static struct {
	struct gmem *g;
	uint64_t ps, size;
	struct page pages[NPAGES];
	struct view views[NVIEWS];
	pthread_mutex_t pin_lock;
	pthread_mutex_t lsn_lock;		/* the slots array */
	struct lsn_slot lsn_slots[MAX_LISTENERS];
	unsigned long lsn_seq;
	atomic_int stop, pause, closing;
	atomic_int waiters;		/* WAIT conversions in flight */
	pthread_mutex_t park_lock;
	pthread_cond_t park_cond;
	int nparked;
	struct worker w[NR_WORKERS];
	/* expected stats */
	atomic_ullong conversions, pages_converted, pin_calls;
	atomic_ullong pfn_refs;		/* shared ones: only they are counted */
	/* Changes that invalidate owners: begun, and ended since. */
	atomic_ullong changes_begun, changes_ended;
	atomic_ullong invalidations, listener_calls, nviews;
	atomic_int bindings, listeners;
	/* results */
	atomic_ulong count[NR_COUNTERS];
	atomic_ulong violations[NR_VIOLATIONS];
	atomic_ulong total_violations;
	pthread_mutex_t log_lock;
	/* owners and listeners are never freed before the end */
	struct owner *graveyard[GRAVEYARD];
	struct lsn *lsn_graveyard[GRAVEYARD];
	atomic_uint ngrave, nlsn_grave;
	double watchdog;
	uint64_t max_islands;		/* seen at a check */
	double fragment_at;		/* when conv0 calls fragment() */
	bool fragmented;
} S;

static void count(enum counter c)
{
	atomic_fetch_add_explicit(&S.count[c], 1, memory_order_relaxed);
}

static void __attribute__((format(printf, 2, 3)))
violation(enum violation v, const char *fmt, ...)
{
	unsigned long n = atomic_fetch_add(&S.violations[v], 1);
	char msg[512];
	va_list ap;

	atomic_fetch_add(&S.total_violations, 1);
	if (n >= LOG_PER_KIND)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&S.log_lock);
	TH_LOG("VIOLATION (%s): %s", violation_names[v], msg);
	pthread_mutex_unlock(&S.log_lock);
}

#define EXPECT_RET(ret, want, ...)					\
	do {								\
		long __r = (long)(ret), __w = (long)(want);		\
		if (__r != __w) {					\
			char __m[256];					\
			snprintf(__m, sizeof(__m), __VA_ARGS__);	\
			violation(V_RETURN, "%s: returned %ld, want %ld", \
				  __m, __r, __w);			\
		}							\
	} while (0)

/* Byte i of page p when its tag is t. */
static inline uint8_t pattern(uint64_t p, unsigned int t, uint64_t i)
{
	uint32_t x;

	if (!t)
		return 0;
	x = t * 0x9e3779b1u + (uint32_t)i * 0x85ebca77u +
	    (uint32_t)p * 0xc2b2ae3du;
	x ^= x >> 15;
	return (uint8_t)(x * 0x2c1b3c6du >> 24);
}

static void fill(unsigned char *buf, uint64_t p, unsigned int t)
{
	for (uint64_t i = 0; i < S.ps; i++)
		buf[i] = pattern(p, t, i);
}

/* First byte that differs from the model, or -1. */
static long mismatch(const unsigned char *mem, uint64_t p, unsigned int t)
{
	for (uint64_t i = 0; i < S.ps; i++)
		if (mem[i] != pattern(p, t, i))
			return (long)i;
	return -1;
}

static unsigned int new_tag(struct worker *w)
{
	unsigned int t;

	do {
		t = (unsigned int)gt_rand(&w->seed);
	} while (!t);
	return t;
}

static struct page *pg(uint64_t p)
{
	return &S.pages[p];
}

static void lock_range(uint64_t first, uint64_t n)
{
	for (uint64_t p = first; p < first + n; p++)
		pthread_mutex_lock(&pg(p)->lock);
}

static void unlock_range(uint64_t first, uint64_t n)
{
	for (uint64_t p = first + n; p-- > first;)
		pthread_mutex_unlock(&pg(p)->lock);
}

static bool trylock_range(uint64_t first, uint64_t n)
{
	for (uint64_t p = first; p < first + n; p++) {
		if (pthread_mutex_trylock(&pg(p)->lock)) {
			unlock_range(first, p - first);
			return false;
		}
	}
	return true;
}

/* Open (odd) or close (even) the seqlock window of [first, first + n). */
static void sseq_bump(uint64_t first, uint64_t n)
{
	for (uint64_t p = first; p < first + n; p++)
		atomic_fetch_add(&pg(p)->sseq, 1);
}

static void dseq_bump(uint64_t first, uint64_t n)
{
	for (uint64_t p = first; p < first + n; p++)
		atomic_fetch_add(&pg(p)->dseq, 1);
}

static void pick_range(struct worker *w, uint64_t max, uint64_t *first,
		       uint64_t *n)
{
	*n = 1 + gt_below(&w->seed, max);
	*first = gt_below(&w->seed, NPAGES - *n + 1);
}

static bool unreadable(uint64_t p)
{
	return atomic_load(&pg(p)->priv) || atomic_load(&pg(p)->poison);
}

/*
 * With page p locked: check it through addr (a view or pin address),
 * SIGBUS (at addr) if private or poisoned, else the model's contents.
 */
static void check_locked(uint64_t p, char *addr, const char *via)
{
	uint8_t v;
	void *si = NULL;
	long bad;

	if (unreadable(p)) {
		int sig = harness_probe(addr, 0, &si);

		count(C_LOCKED_SIGBUS);
		if (sig != SIGBUS)
			violation(V_PRIVATE_READ, "page %llu (%s%s) read "
				  "through %s: %s",
				  (unsigned long long)p,
				  atomic_load(&pg(p)->priv) ? "private" : "",
				  atomic_load(&pg(p)->poison) ?
				  " poisoned" : "", via,
				  sig ? "SIGSEGV" : "no signal");
		else if (si != addr)
			violation(V_SI_ADDR, "page %llu through %s: si_addr "
				  "%p, want %p", (unsigned long long)p, via,
				  si, (void *)addr);
		return;
	}
	if (harness_probe_read_u8(addr, &v)) {
		violation(V_SHARED_SIGBUS, "page %llu (shared) through %s",
			  (unsigned long long)p, via);
		return;
	}
	bad = mismatch((unsigned char *)addr, p, atomic_load(&pg(p)->tag));
	if (bad >= 0)
		violation(V_DATA_LOST, "page %llu through %s: byte %ld is "
			  "%#x, want %#x (tag %#x)", (unsigned long long)p,
			  via, bad, ((unsigned char *)addr)[bad],
			  pattern(p, atomic_load(&pg(p)->tag), (uint64_t)bad),
			  atomic_load(&pg(p)->tag));
}

/* ---- callbacks -------------------------------------------------------- */

static void on_invalidate(void *opaque, uint64_t off, uint64_t size,
			  unsigned int reason)
{
	struct owner *o = opaque;

	atomic_fetch_add(&S.invalidations, 1);
	count(C_INVALIDATIONS);
	if (atomic_load(&o->unbound))
		violation(V_LATE_CALLBACK, "invalidate [%#llx, +%#llx) "
			  "reason %u after gmem_unbind()",
			  (unsigned long long)off, (unsigned long long)size,
			  reason);
	if (!size || off < o->off || off + size > o->off + o->size ||
	    (off | size) & (S.ps - 1))
		violation(V_CALLBACK_RANGE, "invalidate [%#llx, +%#llx) "
			  "outside the binding [%#llx, +%#llx)",
			  (unsigned long long)off, (unsigned long long)size,
			  (unsigned long long)o->off,
			  (unsigned long long)o->size);
	if (reason != GMEM_INVALIDATE_PUNCH &&
	    reason != GMEM_INVALIDATE_CONVERT &&
	    reason != GMEM_INVALIDATE_POISON &&
	    !(reason == GMEM_INVALIDATE_RELEASE && atomic_load(&S.closing)))
		violation(V_CALLBACK_RANGE, "invalidate reason %u", reason);
}

static const struct gmem_binding_ops bops = { .invalidate = on_invalidate };

static bool lsn_refuses(const struct lsn *l, uint64_t p)
{
	return l->refuse_mod &&
	       ((unsigned int)p * 2654435761u + l->salt) % l->refuse_mod == 0;
}

static bool lsn_call_ok(struct lsn *l, uint64_t off, uint64_t size,
			const char *what)
{
	atomic_fetch_add(&S.listener_calls, 1);
	count(C_LSN_CALLS);
	if (atomic_load(&l->unregistered))
		violation(V_LATE_CALLBACK, "%s [%#llx, +%#llx) after "
			  "gmem_listener_unregister()", what,
			  (unsigned long long)off, (unsigned long long)size);
	if (!size || off < l->first * S.ps ||
	    off + size > (l->first + l->npages) * S.ps ||
	    (off | size) & (S.ps - 1)) {
		violation(V_CALLBACK_RANGE, "%s [%#llx, +%#llx) outside the "
			  "listener [%#llx, +%#llx)", what,
			  (unsigned long long)off, (unsigned long long)size,
			  (unsigned long long)(l->first * S.ps),
			  (unsigned long long)(l->npages * S.ps));
		return false;
	}
	return true;
}

static int on_populate(void *opaque, uint64_t off, uint64_t size)
{
	struct lsn *l = opaque;
	uint64_t first = off / S.ps, end = (off + size) / S.ps;

	if (!lsn_call_ok(l, off, size, "populate"))
		return 0;
	for (uint64_t p = first; p < end; p++)
		if (lsn_refuses(l, p))
			return -ENOSPC;
	for (uint64_t p = first; p < end; p++) {
		if (l->populated[p])
			violation(V_LISTENER_STATE, "page %llu populated "
				  "twice", (unsigned long long)p);
		l->populated[p] = 1;
	}
	return 0;
}

static void on_discard(void *opaque, uint64_t off, uint64_t size)
{
	struct lsn *l = opaque;
	uint64_t first = off / S.ps, end = (off + size) / S.ps;

	if (!lsn_call_ok(l, off, size, "discard"))
		return;
	for (uint64_t p = first; p < end; p++) {
		if (!l->populated[p])
			violation(V_LISTENER_STATE, "page %llu discarded "
				  "but not populated", (unsigned long long)p);
		l->populated[p] = 0;
	}
}

static const struct gmem_listener_ops lops = {
	.populate = on_populate, .discard = on_discard,
};

/*
 * A conversion of [first, first + n) to shared, with the page locks
 * held: does an active listener veto it, and at which error_offset?
 * Private runs in order; per run, the listeners in the library's order
 * (the most recently registered first).
 */
static bool veto(uint64_t first, uint64_t n, uint64_t *eo)
{
	struct lsn_slot slots[MAX_LISTENERS];
	int ns = 0;
	bool found = false;

	pthread_mutex_lock(&S.lsn_lock);
	for (int i = 0; i < MAX_LISTENERS; i++)
		if (S.lsn_slots[i].l)
			slots[ns++] = S.lsn_slots[i];
	pthread_mutex_unlock(&S.lsn_lock);
	for (int i = 0; i < ns; i++)		/* newest first */
		for (int j = i + 1; j < ns; j++)
			if (slots[j].seq > slots[i].seq) {
				struct lsn_slot t = slots[i];

				slots[i] = slots[j];
				slots[j] = t;
			}
	for (uint64_t p = first; p < first + n && !found;) {
		uint64_t run = p;

		if (!atomic_load(&pg(p)->priv)) {
			p++;
			continue;
		}
		while (run < first + n && atomic_load(&pg(run)->priv))
			run++;
		for (int i = 0; i < ns && !found; i++) {
			struct lsn *l = slots[i].l;
			uint64_t s = p > l->first ? p : l->first;
			uint64_t e = run < l->first + l->npages ? run :
				     l->first + l->npages;

			for (uint64_t q = s; q < e; q++) {
				if (lsn_refuses(l, q)) {
					*eo = s * S.ps;
					found = true;
					break;
				}
			}
		}
		p = run;
	}
	return found;
}

/* ---- conversions and populate --------------------------------------- */

static void op_to_private(struct worker *w, uint64_t first, uint64_t n,
			  bool wait)
{
	uint64_t eo = 0, pinned = UINT64_MAX, changed = 0;
	bool noop = true;
	int ret, want;

	if (wait) {
		/* See park(): a waiter never starts once a pause is asked. */
		atomic_fetch_add(&S.waiters, 1);
		if (atomic_load(&S.pause)) {
			atomic_fetch_sub(&S.waiters, 1);
			return;
		}
	}
	lock_range(first, n);
	if (!wait)
		pthread_mutex_lock(&S.pin_lock);
	sseq_bump(first, n);
	for (uint64_t p = first; p < first + n; p++) {
		if (atomic_load(&pg(p)->priv))
			continue;
		noop = false;
		if (pinned == UINT64_MAX && (atomic_load(&pg(p)->pins) ||
					     atomic_load(&pg(p)->prefs)))
			pinned = p;
	}
	want = noop || wait || pinned == UINT64_MAX ? 0 : -EAGAIN;
	atomic_store(&w->doing, wait ? "to private, waiting" : "to private");
	atomic_fetch_add(&S.changes_begun, 1);
	ret = gt_convert(S.g, first * S.ps, n * S.ps, 1,
			 wait ? GMEM_SET_ATTR_WAIT : 0, &eo);
	atomic_fetch_add(&S.changes_ended, 1);
	EXPECT_RET(ret, want, "to private [%llu, +%llu)%s",
		   (unsigned long long)first, (unsigned long long)n,
		   wait ? " waiting" : "");
	if (ret == -EAGAIN && want == -EAGAIN && eo != pinned * S.ps)
		violation(V_RETURN, "-EAGAIN error_offset %#llx, want %#llx",
			  (unsigned long long)eo,
			  (unsigned long long)(pinned * S.ps));
	if (!ret) {
		for (uint64_t p = first; p < first + n; p++) {
			changed += !atomic_load(&pg(p)->priv);
			atomic_store(&pg(p)->priv, 1);
		}
		if (changed) {
			atomic_fetch_add(&S.conversions, 1);
			atomic_fetch_add(&S.pages_converted, changed);
		}
	}
	sseq_bump(first, n);
	if (!wait)
		pthread_mutex_unlock(&S.pin_lock);
	unlock_range(first, n);
	if (wait)
		atomic_fetch_sub(&S.waiters, 1);
	count(ret == -EAGAIN ? C_EAGAIN : noop ? C_NOOP : C_TO_PRIVATE);
	if (wait)
		count(C_WAIT);
}

static void op_to_shared(struct worker *w, uint64_t first, uint64_t n)
{
	uint64_t eo = 0, want_eo = 0, changed = 0;
	bool noop = true, vetoed;
	int ret;

	lock_range(first, n);
	sseq_bump(first, n);
	for (uint64_t p = first; p < first + n; p++)
		noop &= !atomic_load(&pg(p)->priv);
	vetoed = !noop && veto(first, n, &want_eo);
	atomic_store(&w->doing, "to shared");
	atomic_fetch_add(&S.changes_begun, 1);
	ret = gt_convert(S.g, first * S.ps, n * S.ps, 0, 0, &eo);
	atomic_fetch_add(&S.changes_ended, 1);
	EXPECT_RET(ret, vetoed ? -ENOSPC : 0, "to shared [%llu, +%llu)",
		   (unsigned long long)first, (unsigned long long)n);
	if (ret == -ENOSPC && vetoed && eo != want_eo)
		violation(V_RETURN, "veto error_offset %#llx, want %#llx",
			  (unsigned long long)eo,
			  (unsigned long long)want_eo);
	if (!ret) {
		for (uint64_t p = first; p < first + n; p++) {
			changed += atomic_load(&pg(p)->priv);
			atomic_store(&pg(p)->priv, 0);
		}
		if (changed) {
			atomic_fetch_add(&S.conversions, 1);
			atomic_fetch_add(&S.pages_converted, changed);
		}
	}
	sseq_bump(first, n);
	unlock_range(first, n);
	count(ret == -ENOSPC ? C_VETO : noop ? C_NOOP : C_TO_SHARED);
}

static void op_populate(struct worker *w, uint64_t first, uint64_t n)
{
	unsigned int tags[MAX_RANGE];
	uint64_t k = 0;
	ssize_t want, ret;

	lock_range(first, n);
	if (!atomic_load(&pg(first)->priv))
		want = -EPERM;
	else if (atomic_load(&pg(first)->poison))
		want = -EHWPOISON;
	else {
		while (k < n && atomic_load(&pg(first + k)->priv) &&
		       !atomic_load(&pg(first + k)->poison))
			k++;
		want = (ssize_t)(k * S.ps);
	}
	for (uint64_t i = 0; i < n; i++) {
		tags[i] = new_tag(w);
		fill(w->buf + i * S.ps, first + i, tags[i]);
	}
	dseq_bump(first, n);
	atomic_store(&w->doing, "populate");
	ret = gmem_populate(S.g, first * S.ps, w->buf, n * S.ps);
	EXPECT_RET(ret, want, "populate [%llu, +%llu)",
		   (unsigned long long)first, (unsigned long long)n);
	for (uint64_t i = 0; ret > 0 && i < (uint64_t)ret / S.ps; i++)
		atomic_store(&pg(first + i)->tag, tags[i]);
	dseq_bump(first, n);
	unlock_range(first, n);
	count(C_POPULATE);
}

/*
 * Once, half-way: 160 pages shared, then every other one private.  80
 * islands push view 0 (made in vma mode) past GMEM_VIEW_MAX_ISLANDS: it
 * switches to userfaultfd mode while the readers read it.
 */
static void fragment(struct worker *w)
{
	for (uint64_t p = 16; p < 16 + 160; p += MAX_RANGE)
		op_to_shared(w, p, MAX_RANGE);
	for (uint64_t p = 16; p < 16 + 160; p += 2)
		op_to_private(w, p, 1, false);
}

static void conv_op(struct worker *w)
{
	uint64_t first, n, r = gt_below(&w->seed, 20);

	if (w == &S.w[W_CONV0] && !S.fragmented && gt_now() > S.fragment_at) {
		S.fragmented = true;
		fragment(w);
		return;
	}
	pick_range(w, MAX_RANGE, &first, &n);
	if (r < 8)
		op_to_private(w, first, n, false);
	else if (r < 16)
		op_to_shared(w, first, n);
	else if (r < 18)
		op_to_private(w, first, n, true);
	else
		op_populate(w, first, n);
}

/* ---- writer ----------------------------------------------------------- */

/*
 * The one place the test writes guest memory that lock-free readers may
 * be reading at the same time (they judge what they read by dseq): its
 * own function, so that tests/tsan.supp can name it.
 */
static void __attribute__((noinline))
write_page_seqlocked(char *addr, const unsigned char *buf)
{
	memcpy(addr, buf, S.ps);
}

static struct view *rw_view(struct worker *w, uint64_t p)
{
	for (;;) {
		struct view *v = &S.views[gt_below(&w->seed, NVIEWS)];

		if ((v->prot & PROT_WRITE) && p >= v->first &&
		    p < v->first + v->npages)
			return v;
	}
}

static void writer_op(struct worker *w)
{
	uint64_t p = gt_below(&w->seed, NPAGES);
	struct view *v = rw_view(w, p);
	char *addr = v->addr + (p - v->first) * S.ps;
	unsigned int t;

	atomic_store(&w->doing, "check and write a page");
	lock_range(p, 1);
	check_locked(p, addr, "a view");
	if (unreadable(p)) {
		void *si = NULL;

		/* A write must fault too, and change nothing. */
		if (harness_probe(addr, 1, &si) != SIGBUS)
			violation(V_PRIVATE_READ, "page %llu (private) "
				  "written through a view",
				  (unsigned long long)p);
	} else if (!harness_probe_read_u8(addr, &(uint8_t){ 0 })) {
		t = new_tag(w);
		fill(w->buf, p, t);
		dseq_bump(p, 1);
		write_page_seqlocked(addr, w->buf);
		atomic_store(&pg(p)->tag, t);
		dseq_bump(p, 1);
		count(C_WRITE);
	}
	unlock_range(p, 1);
}

/* ---- punch-hole, allocation, memory failure ------------------------- */

static void punch_op(struct worker *w)
{
	uint64_t first = gt_below(&w->seed, NPAGES + 2), n, end;
	uint64_t r = gt_below(&w->seed, 32);
	int ret;

	n = 1 + gt_below(&w->seed, MAX_RANGE);
	end = first + n < NPAGES ? first + n : NPAGES;
	if (r == 0) {		/* memory failure */
		uint64_t p = gt_below(&w->seed, NPAGES);

		lock_range(p, 1);
		sseq_bump(p, 1);
		atomic_store(&w->doing, "memory failure");
		atomic_fetch_add(&S.changes_begun, 1);
		ret = gmem_memory_failure(S.g, p * S.ps);
		atomic_fetch_add(&S.changes_ended, 1);
		EXPECT_RET(ret, 0, "memory failure of page %llu",
			   (unsigned long long)p);
		atomic_store(&pg(p)->poison, 1);
		sseq_bump(p, 1);
		unlock_range(p, 1);
		count(C_POISON);
		return;
	}
	if (r < 4) {		/* allocation: nothing visible changes */
		if (first >= NPAGES)
			first = NPAGES - 1;
		if (first + n > NPAGES)
			n = NPAGES - first;
		atomic_store(&w->doing, "allocate");
		ret = gmem_fallocate(S.g, FALLOC_FL_KEEP_SIZE, first * S.ps,
				     n * S.ps);
		EXPECT_RET(ret, 0, "allocate [%llu, +%llu)",
			   (unsigned long long)first, (unsigned long long)n);
		count(C_ALLOCATE);
		return;
	}
	/* Punch, possibly past the end (clipped by the library). */
	if (first < end) {
		lock_range(first, end - first);
		for (uint64_t p = first; p < end; p++)
			atomic_store(&pg(p)->punching, 1);
		dseq_bump(first, end - first);
		for (uint64_t p = first; p < end; p++)
			if (atomic_load(&pg(p)->poison))
				sseq_bump(p, 1);	/* becomes reachable */
	}
	atomic_store(&w->doing, "punch");
	atomic_fetch_add(&S.changes_begun, 1);
	ret = gmem_fallocate(S.g, PUNCH, first * S.ps, n * S.ps);
	atomic_fetch_add(&S.changes_ended, 1);
	EXPECT_RET(ret, 0, "punch [%llu, +%llu)", (unsigned long long)first,
		   (unsigned long long)n);
	if (first < end) {
		for (uint64_t p = first; p < end; p++) {
			atomic_store(&pg(p)->punching, 0);
			atomic_store(&pg(p)->tag, 0);
			if (atomic_load(&pg(p)->poison)) {
				atomic_store(&pg(p)->poison, 0);
				sseq_bump(p, 1);
			}
		}
		dseq_bump(first, end - first);
		unlock_range(first, end - first);
	}
	count(C_PUNCH);
}

/* ---- lock-free readers ---------------------------------------------- */

/*
 * Read byte i of page p at addr without any lock, and judge the read by
 * the page's sequence counters (see the top of the file).
 */
static void probe_lockfree_how(uint64_t p, uint64_t i, char *addr,
			       const char *via, bool shared_may_fault);

static void probe_lockfree(uint64_t p, uint64_t i, char *addr,
			   const char *via)
{
	probe_lockfree_how(p, i, addr, via, false);
}

/*
 * shared_may_fault: addr lies in the pin view, which shows pinned pages
 * only; an unpinned shared page may fault there, a private one must.
 */
static void probe_lockfree_how(uint64_t p, uint64_t i, char *addr,
			       const char *via, bool shared_may_fault)
{
	struct page *x = pg(p);
	unsigned int s1, s2, d1, d2, priv, poison, tag, punching;
	uint8_t val = 0;
	int sig;

	s1 = atomic_load_explicit(&x->sseq, memory_order_acquire);
	d1 = atomic_load_explicit(&x->dseq, memory_order_acquire);
	priv = atomic_load_explicit(&x->priv, memory_order_relaxed);
	poison = atomic_load_explicit(&x->poison, memory_order_relaxed);
	tag = atomic_load_explicit(&x->tag, memory_order_relaxed);
	punching = atomic_load(&x->punching);
	/*
	 * Reads only: a write decided while the page is private could land
	 * after it became shared.  Writes to private pages are probed by
	 * the writer, with the page locked.
	 */
	sig = harness_probe_read_u8(addr, &val);
	atomic_thread_fence(memory_order_acquire);
	s2 = atomic_load_explicit(&x->sseq, memory_order_relaxed);
	d2 = atomic_load_explicit(&x->dseq, memory_order_relaxed);
	punching |= atomic_load(&x->punching);
	count(C_READS);
	if (s1 != s2 || (s1 & 1))
		return;		/* the state moved: no verdict */
	if (priv || poison) {
		count(C_READ_PRIVATE);
		if (sig != SIGBUS)
			violation(V_PRIVATE_READ, "page %llu (%s) read through "
				  "%s without SIGBUS (%s)",
				  (unsigned long long)p,
				  priv ? "private" : "poisoned", via,
				  sig ? "SIGSEGV" : "no signal");
		return;
	}
	if (shared_may_fault)
		return;
	count(C_READ_SHARED);
	if (sig) {
		violation(V_SHARED_SIGBUS, "page %llu (shared) byte %llu "
			  "through %s: signal %d%s", (unsigned long long)p,
			  (unsigned long long)i, via, sig, punching ?
			  ", a punch-hole of the page was in flight" : "");
		return;
	}
	if (d1 != d2 || (d1 & 1))
		return;
	count(C_READ_DATA);
	if (val != pattern(p, tag, i))
		violation(V_CORRUPT, "page %llu byte %llu read %#x through %s, "
			  "want %#x", (unsigned long long)p,
			  (unsigned long long)i, val, via, pattern(p, tag, i));
}

static void reader_op(struct worker *w)
{
	static const char *const names[NVIEWS] = {
		"view 0 (made in vma mode)", "view 1 (made in uffd mode)",
		"view 2 (part, read-only)",
	};
	int k = (int)gt_below(&w->seed, NVIEWS);
	struct view *v = &S.views[k];
	uint64_t p = v->first + gt_below(&w->seed, v->npages);
	uint64_t i = gt_below(&w->seed, S.ps);

	atomic_store(&w->doing, "probe");
	probe_lockfree(p, i, v->addr + (p - v->first) * S.ps + i, names[k]);
}

/* ---- pins ------------------------------------------------------------- */

static void unpin_one(struct worker *w, int k)
{
	uint64_t first = w->pins[k].first, n = w->pins[k].n;
	int ret;

	pthread_mutex_lock(&S.pin_lock);
	atomic_store(&w->doing, "unpin");
	ret = gmem_unpin(S.g, first * S.ps, n * S.ps);
	EXPECT_RET(ret, 0, "unpin [%llu, +%llu)", (unsigned long long)first,
		   (unsigned long long)n);
	for (uint64_t p = first; p < first + n; p++)
		atomic_fetch_sub(&pg(p)->pins, 1);
	atomic_fetch_sub(&S.pin_calls, 1);
	pthread_mutex_unlock(&S.pin_lock);
	w->pins[k] = w->pins[--w->npins];
	count(C_UNPIN);
}

static void pinner_release(struct worker *w)
{
	while (w->npins)
		unpin_one(w, w->npins - 1);
}

static void pinner_op(struct worker *w)
{
	uint64_t first, n;
	bool any_priv = false, any_poison = false;
	void *addr = NULL;
	int ret, want;

	if (w->npins && (w->npins == MAX_PINS || atomic_load(&S.waiters) ||
			 gt_below(&w->seed, 2))) {
		unpin_one(w, (int)gt_below(&w->seed, (uint64_t)w->npins));
		return;
	}
	pick_range(w, 4, &first, &n);
	if (!trylock_range(first, n)) {
		count(C_BUSY);
		return;
	}
	pthread_mutex_lock(&S.pin_lock);
	for (uint64_t p = first; p < first + n; p++) {
		any_priv |= atomic_load(&pg(p)->priv) != 0;
		any_poison |= atomic_load(&pg(p)->poison) != 0;
	}
	want = any_priv ? -EFAULT : any_poison ? -EHWPOISON : 0;
	atomic_store(&w->doing, "pin");
	ret = gmem_pin(S.g, first * S.ps, n * S.ps, &addr);
	EXPECT_RET(ret, want, "pin [%llu, +%llu)", (unsigned long long)first,
		   (unsigned long long)n);
	if (!ret) {
		for (uint64_t p = first; p < first + n; p++)
			atomic_fetch_add(&pg(p)->pins, 1);
		atomic_fetch_add(&S.pin_calls, 1);
		w->pins[w->npins].first = first;
		w->pins[w->npins].n = n;
		w->pins[w->npins].addr = addr;
		w->npins++;
	}
	pthread_mutex_unlock(&S.pin_lock);
	if (!ret) {	/* the device's view of the pages */
		for (uint64_t p = first; p < first + n; p++)
			check_locked(p, (char *)addr + (p - first) * S.ps,
				     "a pin");
		/* A device overrunning its buffer finds no private page:
		 * the pin view shows pinned pages only (src/pin.c). */
		if (first + n < NPAGES)
			probe_lockfree_how(first + n, 0,
					   (char *)addr + n * S.ps,
					   "a pin's overrun", true);
	}
	unlock_range(first, n);
	count(ret ? C_PIN_REFUSED : C_PIN);
}

/* ---- views that come and go ----------------------------------------- */

static void churn_op(struct worker *w)
{
	uint64_t first = gt_below(&w->seed, NPAGES);
	uint64_t n = 1 + gt_below(&w->seed, NPAGES - first + 2);
	int prot = gt_below(&w->seed, 2) ? RW : PROT_READ;
	char *v = NULL;
	int ret;

	atomic_store(&w->doing, "mmap");
	ret = gmem_mmap(S.g, first * S.ps, n * S.ps, prot, (void **)&v);
	EXPECT_RET(ret, 0, "mmap [%llu, +%llu)", (unsigned long long)first,
		   (unsigned long long)n);
	if (ret)
		return;
	atomic_fetch_add(&S.nviews, 1);
	for (int k = 0; k < 4; k++) {
		uint64_t i = gt_below(&w->seed, n), p = first + i;

		atomic_store(&w->doing, "check a new view");
		if (p >= NPAGES) {	/* past the end */
			if (harness_probe(v + i * S.ps, 0, NULL) != SIGBUS)
				violation(V_PRIVATE_READ, "page past the end "
					  "readable");
			continue;
		}
		lock_range(p, 1);
		check_locked(p, v + i * S.ps, "a new view");
		unlock_range(p, 1);
	}
	atomic_store(&w->doing, "munmap");
	EXPECT_RET(gmem_munmap(S.g, v, n * S.ps), 0, "munmap");
	atomic_fetch_sub(&S.nviews, 1);
	count(C_VIEWS);
}

/* ---- bindings ------------------------------------------------------- */

static void bury_owner(struct owner *o)
{
	unsigned int i = atomic_fetch_add(&S.ngrave, 1);

	if (i < GRAVEYARD)
		S.graveyard[i] = o;
	else
		atomic_fetch_sub(&S.ngrave, 1);	/* leak it: rare */
}

static void unbind_one(struct worker *w, int k)
{
	struct binding *b = &w->bind[k];
	uint64_t refs = 0;
	int ret;

	pthread_mutex_lock(&S.pin_lock);
	atomic_store(&w->doing, "unbind");
	ret = gmem_unbind(b->b);
	EXPECT_RET(ret, 0, "unbind");
	atomic_store(&b->o->unbound, 1);
	for (uint64_t p = b->first; p < b->first + b->npages; p++) {
		atomic_fetch_sub(&pg(p)->prefs, b->sref[p]);
		refs += b->sref[p];	/* private ones are not counted */
		b->sref[p] = b->pref[p] = 0;
	}
	atomic_fetch_sub(&S.pfn_refs, refs);
	pthread_mutex_unlock(&S.pin_lock);
	atomic_fetch_sub(&S.bindings, 1);
	bury_owner(b->o);
	b->b = NULL;
	count(C_UNBIND);
}

static void binder_release(struct worker *w)
{
	for (int k = 0; k < MAX_BINDINGS; k++)
		if (w->bind[k].b)
			unbind_one(w, k);
}

static void put_one(struct worker *w, struct binding *b, uint64_t p,
		    bool shared)
{
	int ret;

	if (shared)
		pthread_mutex_lock(&S.pin_lock);
	atomic_store(&w->doing, "put_pfn");
	ret = gmem_put_pfn(b->b, p - b->first, shared ? GMEM_ACCESS_SHARED :
			   GMEM_ACCESS_PRIVATE);
	EXPECT_RET(ret, 0, "put_pfn page %llu", (unsigned long long)p);
	if (shared) {
		b->sref[p]--;
		atomic_fetch_sub(&pg(p)->prefs, 1);
		pthread_mutex_unlock(&S.pin_lock);
		atomic_fetch_sub(&S.pfn_refs, 1);
	} else {
		b->pref[p]--;
	}
	count(C_PUT_PFN);
}

static void get_one(struct worker *w, struct binding *b)
{
	uint64_t p = b->first + gt_below(&w->seed, b->npages);
	unsigned int access = (unsigned int)gt_below(&w->seed, 2);
	bool shared = access == GMEM_ACCESS_SHARED;
	struct gmem_pfn pfn;
	uint64_t ended;
	int ret, want;

	if (b->sref[p] + b->pref[p] >= 4)
		return;
	if (!trylock_range(p, 1)) {
		count(C_BUSY);
		return;
	}
	if (shared)
		pthread_mutex_lock(&S.pin_lock);
	if (atomic_load(&pg(p)->poison))
		want = -EHWPOISON;
	else if (atomic_load(&pg(p)->priv) != access)
		want = -EFAULT;
	else
		want = 0;
	memset(&pfn, 0, sizeof(pfn));
	atomic_store(&w->doing, "get_pfn");
	ended = atomic_load(&S.changes_ended);
	ret = gmem_get_pfn(b->b, p - b->first, access, &pfn);
	if (ret == -EAGAIN && atomic_load(&S.changes_begun) > ended) {
		/* Another thread's change invalidates the binding: the
		 * caller retries (gmem_bind(3), INVALIDATION). */
		count(C_PFN_RETRY);
		if (shared)
			pthread_mutex_unlock(&S.pin_lock);
		unlock_range(p, 1);
		return;
	}
	EXPECT_RET(ret, want, "get_pfn page %llu %s", (unsigned long long)p,
		   shared ? "shared" : "private");
	if (!ret) {
		if (shared) {
			b->sref[p]++;
			atomic_fetch_add(&pg(p)->prefs, 1);
			atomic_fetch_add(&S.pfn_refs, 1);
		} else {
			b->pref[p]++;
		}
	}
	if (shared)
		pthread_mutex_unlock(&S.pin_lock);
	if (!ret) {
		long bad = mismatch(pfn.addr, p, atomic_load(&pg(p)->tag));

		if (pfn.offset != p * S.ps || pfn.order != 0)
			violation(V_RETURN, "get_pfn page %llu: offset %#llx "
				  "order %u", (unsigned long long)p,
				  (unsigned long long)pfn.offset, pfn.order);
		if (bad >= 0)
			violation(V_DATA_LOST, "page %llu (%s) through the "
				  "guest view: byte %ld",
				  (unsigned long long)p,
				  shared ? "shared" : "private", bad);
		count(C_GET_PFN);
	} else if (ret == -EFAULT) {
		if (pfn.fault_offset != p * S.ps || pfn.fault_size != S.ps ||
		    pfn.fault_flags != (shared ? 0 :
					GMEM_MEMORY_FAULT_PRIVATE))
			violation(V_RETURN, "get_pfn page %llu: fault %#llx "
				  "+%#llx flags %#llx", (unsigned long long)p,
				  (unsigned long long)pfn.fault_offset,
				  (unsigned long long)pfn.fault_size,
				  (unsigned long long)pfn.fault_flags);
		count(C_PFN_FAULT);
	} else {
		count(C_PFN_FAULT);
	}
	unlock_range(p, 1);
}

static void binder_op(struct worker *w)
{
	uint64_t r = gt_below(&w->seed, 16);
	int k = (int)gt_below(&w->seed, MAX_BINDINGS);
	struct binding *b = &w->bind[k];

	if (!b->b) {
		struct binding *o = &w->bind[!k];
		uint64_t first, n;
		int ret, want;

		pick_range(w, 32, &first, &n);
		want = o->b && first < o->first + o->npages &&
		       o->first < first + n ? -EEXIST : 0;
		b->o = calloc(1, sizeof(*b->o));
		if (!b->o)
			return;
		b->o->off = first * S.ps;
		b->o->size = n * S.ps;
		atomic_store(&w->doing, "bind");
		ret = gmem_bind(S.g, first * S.ps, n * S.ps, &bops, b->o,
				&b->b);
		EXPECT_RET(ret, want, "bind [%llu, +%llu)",
			   (unsigned long long)first, (unsigned long long)n);
		if (ret) {
			b->b = NULL;
			/* Never handed to the library for good: a callback
			 * to it would be a bug the flag catches. */
			atomic_store(&b->o->unbound, 1);
			bury_owner(b->o);
			count(C_EEXIST);
			return;
		}
		b->first = first;
		b->npages = n;
		atomic_fetch_add(&S.bindings, 1);
		count(C_BIND);
		return;
	}
	if (r == 0 || (atomic_load(&S.waiters) && r < 4)) {
		unbind_one(w, k);
		return;
	}
	if (r < 8 || atomic_load(&S.waiters)) {	/* put a reference */
		for (uint64_t i = 0; i < b->npages; i++) {
			uint64_t p = b->first + (i + r) % b->npages;

			if (b->sref[p]) {
				put_one(w, b, p, true);
				return;
			}
			if (b->pref[p]) {
				put_one(w, b, p, false);
				return;
			}
		}
		/* None held: a put must fail and change nothing. */
		EXPECT_RET(gmem_put_pfn(b->b, 0, GMEM_ACCESS_SHARED), -EINVAL,
			   "put_pfn without a reference");
		return;
	}
	get_one(w, b);
}

/* ---- listeners ------------------------------------------------------ */

static void bury_lsn(struct lsn *l)
{
	unsigned int i = atomic_fetch_add(&S.nlsn_grave, 1);

	if (i < GRAVEYARD)
		S.lsn_graveyard[i] = l;
	else
		atomic_fetch_sub(&S.nlsn_grave, 1);
}

/* With the listener's pages locked: it holds exactly the shared ones. */
static void lsn_verify(struct lsn *l)
{
	for (uint64_t p = l->first; p < l->first + l->npages; p++)
		if (l->populated[p] != !atomic_load(&pg(p)->priv))
			violation(V_LISTENER_STATE, "listener [%llu, +%llu): "
				  "page %llu is %s but %spopulated",
				  (unsigned long long)l->first,
				  (unsigned long long)l->npages,
				  (unsigned long long)p,
				  atomic_load(&pg(p)->priv) ? "private" :
				  "shared", l->populated[p] ? "" : "not ");
	count(C_LSN_VERIFY);
}

static void lsn_unregister_one(struct worker *w, int k)
{
	struct lsn_slot *s = w->lslot[k];
	struct lsn *l = s->l;
	int ret;

	lock_range(l->first, l->npages);
	lsn_verify(l);
	atomic_store(&w->doing, "listener unregister");
	ret = gmem_listener_unregister(s->gl);
	EXPECT_RET(ret, 0, "listener unregister");
	atomic_store(&l->unregistered, 1);
	pthread_mutex_lock(&S.lsn_lock);
	s->l = NULL;
	pthread_mutex_unlock(&S.lsn_lock);
	unlock_range(l->first, l->npages);
	atomic_fetch_sub(&S.listeners, 1);
	w->lslot[k] = NULL;
	bury_lsn(l);
	count(C_LSN_UNREGISTER);
}

static void listener_release(struct worker *w)
{
	for (int k = 0; k < MAX_LISTENERS; k++)
		if (w->lslot[k])
			lsn_unregister_one(w, k);
}

static void listener_op(struct worker *w)
{
	int k = (int)gt_below(&w->seed, MAX_LISTENERS);
	struct lsn_slot *s = &S.lsn_slots[k];
	struct gmem_listener *gl = NULL;
	uint64_t first, n;
	struct lsn *l;
	bool refuse = false;
	int ret;

	if (w->lslot[k]) {
		l = w->lslot[k]->l;
		if (gt_below(&w->seed, 4) == 0) {
			lsn_unregister_one(w, k);
		} else {
			atomic_store(&w->doing, "listener check");
			lock_range(l->first, l->npages);
			lsn_verify(l);
			unlock_range(l->first, l->npages);
		}
		return;
	}
	pick_range(w, 48, &first, &n);
	l = calloc(1, sizeof(*l));
	if (!l)
		return;
	l->first = first;
	l->npages = n;
	l->salt = (unsigned int)gt_rand(&w->seed);
	l->refuse_mod = gt_below(&w->seed, 2) ? 0 : 13;
	lock_range(first, n);
	for (uint64_t p = first; p < first + n; p++)
		refuse |= !atomic_load(&pg(p)->priv) && lsn_refuses(l, p);
	atomic_store(&w->doing, "listener register");
	ret = gmem_listener_register(S.g, first * S.ps, n * S.ps, &lops, l,
				     &gl);
	EXPECT_RET(ret, refuse ? -ENOSPC : 0, "listener register "
		   "[%llu, +%llu)", (unsigned long long)first,
		   (unsigned long long)n);
	if (!ret) {
		lsn_verify(l);	/* the replay: every shared page */
		pthread_mutex_lock(&S.lsn_lock);
		s->l = l;
		s->gl = gl;
		s->seq = ++S.lsn_seq;
		pthread_mutex_unlock(&S.lsn_lock);
		w->lslot[k] = s;
		atomic_fetch_add(&S.listeners, 1);
		count(C_LSN_REGISTER);
	} else {
		/* A refused replay is undone: nothing stays populated. */
		for (uint64_t p = first; p < first + n; p++)
			if (l->populated[p])
				violation(V_LISTENER_STATE, "page %llu still "
					  "populated after a refused "
					  "registration",
					  (unsigned long long)p);
		atomic_store(&l->unregistered, 1);
		bury_lsn(l);
		count(C_LSN_REFUSED);
	}
	unlock_range(first, n);
}

/* ---- parking and the workers' loop ---------------------------------- */

static void park(struct worker *w)
{
	/* A WAIT conversion blocked on our pins must finish first. */
	if (w->release && atomic_load(&S.waiters))
		w->release(w);
	pthread_mutex_lock(&S.park_lock);
	atomic_store(&w->parked, 1);
	S.nparked++;
	pthread_cond_broadcast(&S.park_cond);
	while (atomic_load(&S.pause))
		pthread_cond_wait(&S.park_cond, &S.park_lock);
	S.nparked--;
	atomic_store(&w->parked, 0);
	pthread_mutex_unlock(&S.park_lock);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load(&S.stop)) {
		if (atomic_load(&S.pause))
			park(w);
		w->op(w);
		atomic_fetch_add(&w->ops, 1);
	}
	if (w->finish)
		w->finish(w);
	atomic_store(&w->doing, "done");
	return NULL;
}

/* ---- stop the world and check everything ---------------------------- */

static void log_workers(void)
{
	for (int k = 0; k < NR_WORKERS; k++) {
		struct worker *w = &S.w[k];

		TH_LOG("  %-9s %10lu ops, %s, %s", w->name,
		       atomic_load(&w->ops),
		       atomic_load(&w->parked) ? "parked" : "running",
		       atomic_load(&w->doing));
	}
}

/* Ask every worker to park; false if they do not within the watchdog. */
static bool pause_world(void)
{
	double deadline = gt_now() + S.watchdog;
	bool ok;

	atomic_store(&S.pause, 1);
	pthread_mutex_lock(&S.park_lock);
	while (S.nparked < NR_WORKERS && gt_now() < deadline) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000 * 1000;
		if (ts.tv_nsec >= 1000 * 1000 * 1000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000 * 1000 * 1000;
		}
		pthread_cond_timedwait(&S.park_cond, &S.park_lock, &ts);
	}
	ok = S.nparked == NR_WORKERS;
	pthread_mutex_unlock(&S.park_lock);
	return ok;
}

static void resume_world(void)
{
	pthread_mutex_lock(&S.park_lock);
	atomic_store(&S.pause, 0);
	pthread_cond_broadcast(&S.park_cond);
	pthread_mutex_unlock(&S.park_lock);
}

#define STAT_EQ(field, want)						\
	do {								\
		uint64_t __g = st.field, __w = (uint64_t)(want);	\
		if (__g != __w)						\
			violation(V_STATS, "%s: stats." #field	\
				  " %llu, recount %llu", when,		\
				  (unsigned long long)__g,		\
				  (unsigned long long)__w);		\
	} while (0)

/* Everything quiet: the library, the model and a recount must agree. */
static void check_world(const char *when)
{
	uint64_t priv = 0, ranges = 0, pinned = 0, poisoned = 0, off, run;
	uint64_t islands = 0;
	struct gmem_stats st;
	uint64_t attr;

	for (uint64_t p = 0; p < NPAGES; p++) {
		unsigned int v = atomic_load(&pg(p)->priv);

		islands += v && (!p || !atomic_load(&pg(p - 1)->priv));
		priv += v;
		poisoned += atomic_load(&pg(p)->poison);
		pinned += atomic_load(&pg(p)->pins) ||
			  atomic_load(&pg(p)->prefs);
		ranges += !p || v != atomic_load(&pg(p - 1)->priv);
	}
	for (off = 0; off < S.size; off += run) {
		uint64_t p = off / S.ps, want = 1;

		if (gmem_get_attributes(S.g, off, &attr, &run) || !run ||
		    run % S.ps || off + run > S.size) {
			violation(V_ATTRIBUTES, "%s: get_attributes(%#llx)",
				  when, (unsigned long long)off);
			break;
		}
		while (p + want < NPAGES && atomic_load(&pg(p + want)->priv) ==
		       atomic_load(&pg(p)->priv))
			want++;
		if (!!attr != atomic_load(&pg(p)->priv) ||
		    run != want * S.ps)
			violation(V_ATTRIBUTES, "%s: page %llu: attributes "
				  "%#llx run %llu pages, model %s run %llu",
				  when, (unsigned long long)p,
				  (unsigned long long)attr,
				  (unsigned long long)(run / S.ps),
				  atomic_load(&pg(p)->priv) ? "private" :
				  "shared", (unsigned long long)want);
	}
	if (gmem_stat(S.g, &st, sizeof(st))) {
		violation(V_STATS, "%s: gmem_stat failed", when);
		return;
	}
	STAT_EQ(size, S.size);
	STAT_EQ(priv, priv * S.ps);
	STAT_EQ(shared, S.size - priv * S.ps);
	STAT_EQ(nr_ranges, ranges);
	STAT_EQ(conversions, atomic_load(&S.conversions));
	STAT_EQ(pages_converted, atomic_load(&S.pages_converted));
	STAT_EQ(pins, atomic_load(&S.pin_calls));
	STAT_EQ(pinned, pinned * S.ps);
	STAT_EQ(views, atomic_load(&S.nviews));
	STAT_EQ(bindings, (uint64_t)atomic_load(&S.bindings));
	STAT_EQ(pfn_refs, atomic_load(&S.pfn_refs));
	STAT_EQ(invalidations, atomic_load(&S.invalidations));
	STAT_EQ(listeners, (uint64_t)atomic_load(&S.listeners));
	STAT_EQ(listener_calls, atomic_load(&S.listener_calls));
	STAT_EQ(poisoned, poisoned * S.ps);
	if (st.allocated > S.size || st.views_uffd > st.views)
		violation(V_STATS, "%s: allocated %llu, views_uffd %llu",
			  when, (unsigned long long)st.allocated,
			  (unsigned long long)st.views_uffd);
	/* Every page through every view: SIGBUS or the model's bytes. */
	for (int k = 0; k < NVIEWS; k++) {
		struct view *v = &S.views[k];

		for (uint64_t i = 0; i < v->npages; i++)
			check_locked(v->first + i, v->addr + i * S.ps,
				     k == 0 ? "view 0 (made shared)" :
				     k == 1 ? "view 1 (made private)" :
				     "view 2 (part, read-only)");
	}
	for (int k = 0; k < MAX_LISTENERS; k++)
		if (S.lsn_slots[k].l)
			lsn_verify(S.lsn_slots[k].l);
	count(C_CHECKPOINTS);
	if (islands > S.max_islands)
		S.max_islands = islands;
}

/* ---- the watchdog --------------------------------------------------- */

static atomic_int watchdog_stop;
static _Atomic double check_started;	/* 0 when no check runs */

static void *watchdog_main(void *arg)
{
	unsigned long last[NR_WORKERS] = { 0 };
	double since[NR_WORKERS];

	(void)arg;
	for (int k = 0; k < NR_WORKERS; k++)
		since[k] = gt_now();
	while (!atomic_load(&watchdog_stop)) {
		double now = gt_now(), cs = atomic_load(&check_started);

		usleep(200 * 1000);
		for (int k = 0; k < NR_WORKERS; k++) {
			struct worker *w = &S.w[k];
			unsigned long ops = atomic_load(&w->ops);

			if (ops != last[k] || atomic_load(&w->parked) ||
			    !strcmp(atomic_load(&w->doing), "done")) {
				last[k] = ops;
				since[k] = now;
				continue;
			}
			if (now - since[k] < S.watchdog)
				continue;
			TH_LOG("watchdog: %s made no progress for %.0f s "
			       "(deadlock?); workers:", w->name,
			       now - since[k]);
			log_workers();
			ASSERT_TRUE(0);	/* ends the test at once */
		}
		if (cs > 0 && now - cs > 2 * S.watchdog) {
			TH_LOG("watchdog: a stop-the-world check runs for "
			       "%.0f s", now - cs);
			log_workers();
			ASSERT_TRUE(0);
		}
	}
	return NULL;
}

/* ---- setup and the test --------------------------------------------- */

static void setup(uint64_t seed)
{
	struct gmem_create_args args = {
		.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
	};
	struct gmem_stats st;
	unsigned char *buf;
	uint64_t r = 0;

	S.ps = gt_page_size();
	S.size = NPAGES * S.ps;
	args.size = S.size;
	if (gt_kvm_backend()) {		/* GMEM_TEST_BACKEND=kvm */
		args.backend = GMEM_BACKEND_KVM;
		args.vm_fd = -1;
	}
	for (int p = 0; p < NPAGES; p++)
		pthread_mutex_init(&pg(p)->lock, NULL);
	pthread_mutex_init(&S.pin_lock, NULL);
	pthread_mutex_init(&S.lsn_lock, NULL);
	pthread_mutex_init(&S.park_lock, NULL);
	pthread_mutex_init(&S.log_lock, NULL);
	pthread_cond_init(&S.park_cond, NULL);
	ASSERT_EQ(gmem_create(&args, &S.g), 0);
	/* View 0 while all is shared (vma mode), view 1 while all is
	 * private (userfaultfd mode where available), view 2 a part. */
	ASSERT_EQ(gmem_mmap(S.g, 0, S.size, RW, (void **)&S.views[0].addr), 0);
	ASSERT_EQ(gt_convert(S.g, 0, S.size, 1, 0, NULL), 0);
	ASSERT_EQ(gmem_mmap(S.g, 0, S.size, RW, (void **)&S.views[1].addr), 0);
	ASSERT_EQ(gmem_mmap(S.g, NPAGES / 4 * S.ps, NPAGES / 2 * S.ps,
			    PROT_READ, (void **)&S.views[2].addr), 0);
	S.views[0] = (struct view){ S.views[0].addr, 0, NPAGES, RW };
	S.views[1] = (struct view){ S.views[1].addr, 0, NPAGES, RW };
	S.views[2] = (struct view){ S.views[2].addr, NPAGES / 4, NPAGES / 2,
				    PROT_READ };
	atomic_store(&S.nviews, NVIEWS);
	buf = malloc(S.ps);
	ASSERT_NONNULL(buf);
	/*
	 * Half the pages shared, in chunks of 8, so view 0 starts with few
	 * islands (vma mode) and switches to userfaultfd mode, if it does,
	 * under load.
	 */
	for (uint64_t p = 0; p < NPAGES; p++) {
		atomic_store(&pg(p)->priv, 1);
		if (p % 8 == 0)
			r = gt_below(&seed, 2);
		if (r)
			continue;
		ASSERT_EQ(gt_convert(S.g, p * S.ps, S.ps, 0, 0, NULL), 0);
		atomic_store(&pg(p)->priv, 0);
		atomic_store(&pg(p)->tag, (unsigned int)gt_rand(&seed) | 1);
		fill(buf, p, atomic_load(&pg(p)->tag));
		memcpy(S.views[0].addr + p * S.ps, buf, S.ps);
	}
	free(buf);
	ASSERT_EQ(gmem_stat(S.g, &st, sizeof(st)), 0);
	atomic_store(&S.conversions, st.conversions);
	atomic_store(&S.pages_converted, st.pages_converted);
	TH_LOG("%d pages, %llu views in userfaultfd mode of %llu",
	       NPAGES, (unsigned long long)st.views_uffd,
	       (unsigned long long)st.views);
}

static const struct {
	const char *name;
	op_fn op, release, finish;
} roles[NR_WORKERS] = {
	[W_CONV0] = { "conv0", conv_op, NULL, NULL },
	[W_CONV1] = { "conv1", conv_op, NULL, NULL },
	[W_WRITER] = { "writer", writer_op, NULL, NULL },
	[W_PUNCH] = { "punch", punch_op, NULL, NULL },
	[W_READER0] = { "reader0", reader_op, NULL, NULL },
	[W_READER1] = { "reader1", reader_op, NULL, NULL },
	[W_PINNER] = { "pinner", pinner_op, pinner_release, pinner_release },
	[W_CHURN] = { "churn", churn_op, NULL, NULL },
	[W_BINDER] = { "binder", binder_op, binder_release, binder_release },
	[W_LISTENER] = { "listener", listener_op, NULL, listener_release },
};

static uint64_t stress_seconds(void)
{
	return gt_env_u64("STRESS_SECONDS", 20);
}

static double stress_watchdog(void)
{
	return (double)gt_env_u64("STRESS_WATCHDOG", 15);
}

/* The harness's timeout must outlast the run, however long. */
static void __attribute__((constructor)) stress_timeout(void)
{
	harness_timeout = (int)(stress_seconds() + 4 * stress_watchdog() +
				60);
}

TEST(stress)
{
	uint64_t seconds = stress_seconds(), seed, s;
	double start, end, next_check;
	struct gmem_binding *fb = NULL;
	struct gmem_listener *fl = NULL;
	struct owner *fo;
	struct lsn *flsn;
	pthread_t wd;
	int fds0;

	seed = gt_env_u64("STRESS_SEED", 0);
	if (!seed)
		seed = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
	S.watchdog = stress_watchdog();
	TH_LOG("seed %#llx: repeat with STRESS_SEED=%#llx STRESS_SECONDS=%llu",
	       (unsigned long long)seed, (unsigned long long)seed,
	       (unsigned long long)seconds);
	if (GT_SANITIZER)
		TH_LOG("built with %s", GT_SANITIZER);
	fds0 = gt_count_fds();
	ASSERT_EQ(gt_count_gmem_maps(), 0);

	s = seed;
	setup(gt_rand(&s));
	for (int k = 0; k < NR_WORKERS; k++) {
		struct worker *w = &S.w[k];

		w->name = roles[k].name;
		w->op = roles[k].op;
		w->release = roles[k].release;
		w->finish = roles[k].finish;
		w->seed = gt_rand(&s);
		w->buf = malloc(MAX_RANGE * S.ps);
		ASSERT_NONNULL(w->buf);
		atomic_store(&w->doing, "starting");
	}
	S.fragment_at = gt_now() + (double)seconds / 2;
	ASSERT_EQ(pthread_create(&wd, NULL, watchdog_main, NULL), 0);
	for (int k = 0; k < NR_WORKERS; k++)
		ASSERT_EQ(pthread_create(&S.w[k].thread, NULL, worker_main,
					 &S.w[k]), 0);

	start = gt_now();
	end = start + (double)seconds;
	next_check = start + CHECK_EVERY;
	while (gt_now() < end && !atomic_load(&S.stop)) {
		usleep(50 * 1000);
		if (gt_now() < next_check)
			continue;
		atomic_store(&check_started, gt_now());
		if (!pause_world()) {
			TH_LOG("workers did not stop within %.0f s "
			       "(deadlock?):", S.watchdog);
			log_workers();
			ASSERT_TRUE(0);
		}
		check_world("checkpoint");
		resume_world();
		atomic_store(&check_started, 0.0);
		next_check = gt_now() + CHECK_EVERY;
	}
	atomic_store(&S.stop, 1);
	resume_world();
	for (int k = 0; k < NR_WORKERS; k++)
		pthread_join(S.w[k].thread, NULL);
	TH_LOG("ran %.1f s", gt_now() - start);

	/* Quiet: every pin, reference, binding and listener released. */
	check_world("end");
	{
		struct gmem_stats st;

		ASSERT_EQ(gmem_stat(S.g, &st, sizeof(st)), 0);
		TH_LOG("%llu views in userfaultfd mode of %llu at the end; "
		       "up to %llu private islands seen",
		       (unsigned long long)st.views_uffd,
		       (unsigned long long)st.views,
		       (unsigned long long)S.max_islands);
	}
	ASSERT_EQ(atomic_load(&S.pin_calls), 0);
	ASSERT_EQ(atomic_load(&S.pfn_refs), 0);

	/* Everything shared: every page still holds its last contents. */
	ASSERT_EQ(gt_convert(S.g, 0, S.size, 0, 0, NULL), 0);
	for (uint64_t p = 0; p < NPAGES; p++) {
		if (atomic_load(&pg(p)->priv)) {
			atomic_fetch_add(&S.pages_converted, 1);
			atomic_store(&pg(p)->priv, 0);
		}
	}
	atomic_fetch_add(&S.conversions, 1);
	check_world("all shared");

	/* Close while bound and listened to: one RELEASE, then the rest. */
	fo = calloc(1, sizeof(*fo));
	flsn = calloc(1, sizeof(*flsn));
	ASSERT_NONNULL(fo);
	ASSERT_NONNULL(flsn);
	fo->size = S.size;
	flsn->npages = NPAGES;
	ASSERT_EQ(gmem_bind(S.g, 0, S.size, &bops, fo, &fb), 0);
	ASSERT_EQ(gmem_listener_register(S.g, 0, S.size, &lops, flsn, &fl),
		  0);
	s = atomic_load(&S.invalidations);
	atomic_store(&S.closing, 1);
	gmem_close(S.g);
	ASSERT_EQ(atomic_load(&S.invalidations), s + 1);
	ASSERT_EQ(gmem_unbind(fb), 0);
	atomic_store(&fo->unbound, 1);
	ASSERT_EQ(gmem_listener_unregister(fl), 0);
	atomic_store(&flsn->unregistered, 1);
	for (int k = 0; k < NVIEWS; k++)	/* the last one frees it */
		ASSERT_EQ(gmem_munmap(S.g, S.views[k].addr,
				      S.views[k].npages * S.ps), 0);
	atomic_store(&watchdog_stop, 1);
	pthread_join(wd, NULL);
	if (gt_count_fds() != fds0 || gt_count_gmem_maps() != 0)
		violation(V_HYGIENE, "%d fds (%d before), %d libgmem "
			  "mappings after the last release", gt_count_fds(),
			  fds0, gt_count_gmem_maps());

	for (int k = 0; k < NR_WORKERS; k++)
		TH_LOG("%-9s %10lu ops", S.w[k].name,
		       atomic_load(&S.w[k].ops));
	for (int c = 0; c < NR_COUNTERS; c++)
		TH_LOG("%-30s %10lu", counter_names[c],
		       atomic_load(&S.count[c]));
	for (int v = 0; v < NR_VIOLATIONS; v++)
		if (atomic_load(&S.violations[v]))
			TH_LOG("violations: %-32s %lu", violation_names[v],
			       atomic_load(&S.violations[v]));
	for (unsigned int i = 0; i < atomic_load(&S.ngrave); i++)
		free(S.graveyard[i]);
	for (unsigned int i = 0; i < atomic_load(&S.nlsn_grave); i++)
		free(S.lsn_graveyard[i]);
	free(fo);
	free(flsn);
	for (int k = 0; k < NR_WORKERS; k++)
		free(S.w[k].buf);
	{
		unsigned long checked_private = atomic_load(
					&S.count[C_READ_PRIVATE]);
		unsigned long checked_data = atomic_load(&S.count[C_READ_DATA]);
		unsigned long violations = atomic_load(&S.total_violations);

		ASSERT_GT(checked_private, 0);
		ASSERT_GT(checked_data, 0);
		ASSERT_EQ(violations, 0);
	}
}
