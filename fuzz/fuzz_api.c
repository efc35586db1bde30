// SPDX-License-Identifier: MIT
/*
 * fuzz_api.c - libFuzzer target: random sequences of libgmem calls
 * against a reference model (issue 7).  Any disagreement abort()s, so
 * libFuzzer reports it with the input that caused it.
 *
 * Owns the model and the input format; the build and run are in the
 * Makefile ("make fuzz FUZZ_SECONDS=N"), the seeds in fuzz/corpus/.
 *
 * The model, per page: shared/private, poisoned, its bytes, gmem_pin()
 * pins, and the shared and private get_pfn references of up to two
 * bindings; per file: its views (address, range, protection), up to two
 * bindings and two listeners (each listener's idea of which pages are
 * populated), and every gmem_stat() counter.  Each call's return value,
 * error_offset or fault_* fields, and the exact set of callbacks it makes
 * (invalidate, populate, discard: reason and range) are predicted first
 * and compared after.  After every call the whole of gmem_stat() and
 * every run of gmem_get_attributes() are compared with the model.
 * Accesses through views, pins and the guest view are probed with a
 * SIGBUS/SIGSEGV handler and sigsetjmp(): a signal must come exactly on
 * private, poisoned and past-the-end pages (SIGSEGV where the view's
 * protection forbids the access), at the address touched, and every byte
 * read must be the model's.  At the end of an input every page is made
 * shared and compared, everything is released, and the process must
 * have the fds it had and no libgmem mapping.
 *
 * Input: byte 0 picks the create flags (bit 0 GMEM_FLAG_MMAP, bit 1
 * GMEM_FLAG_INIT_SHARED, bit 2 the kvm backend where /dev/kvm can make
 * one, bit 6 a bad gmem_create() first), byte 1 the
 * size (1-16 pages, or 130-193: room for more than 64 private islands,
 * where a view switches guard mode); then operations,
 * one opcode byte (modulo NR_OPS) and its argument bytes each (see
 * do_op()); missing bytes read as 0.  At most MAX_OPS operations.
 *
 * Single-threaded and deterministic: GMEM_SET_ATTR_WAIT is only used
 * where no pin could make it wait.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>
#include <sys/mman.h>

#include "gmem.h"

#define MAX_OPS		200
#define MAX_VIEWS	6
#define MAX_PINS	16
#define MAX_BINDINGS	2
#define MAX_LISTENERS	2
#define MAX_EVENTS	1024
#define PUNCH		(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);
const char *__asan_default_options(void);
const char *__ubsan_default_options(void);

/* The probe below catches SIGBUS/SIGSEGV itself. */
const char *__asan_default_options(void)
{
	return "allow_user_segv_handler=1:detect_leaks=1";
}

const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

static void __attribute__((noreturn, format(printf, 1, 2)))
fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_api: MODEL MISMATCH: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

#define CHECK(cond, ...)						\
	do {								\
		if (!(cond))						\
			fail(__VA_ARGS__);				\
	} while (0)

#define CHECK_RET(got, want, what)					\
	do {								\
		long __got = (long)(got), __want = (long)(want);	\
		CHECK(__got == __want, "%s: returned %ld, want %ld",	\
		      what, __got, __want);				\
	} while (0)

/* ---- input ------------------------------------------------------------ */

struct input {
	const uint8_t *p;
	size_t n;
};

static unsigned int get8(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static unsigned int get16(struct input *in)
{
	unsigned int lo = get8(in);

	return lo | get8(in) << 8;
}

static uint64_t get64(struct input *in)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)get8(in) << (8 * i);
	return v;
}

/* ---- probes ------------------------------------------------------------ */

static sigjmp_buf probe_env;
static volatile sig_atomic_t probe_armed;
static void *volatile probe_si_addr;

static void probe_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (!probe_armed) {	/* not ours: die of it */
		signal(sig, SIG_DFL);
		return;
	}
	probe_armed = 0;
	probe_si_addr = si->si_addr;
	siglongjmp(probe_env, sig);
}

/* Read or write one byte; 0, or the signal (with its si_addr checked). */
static int probe(volatile uint8_t *addr, bool write, uint8_t *val)
{
	struct sigaction sa, old_bus, old_segv;
	int sig;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = probe_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old_bus);
	sigaction(SIGSEGV, &sa, &old_segv);
	sig = sigsetjmp(probe_env, 1);
	if (!sig) {
		probe_armed = 1;
		if (write)
			*addr = *val;
		else
			*val = *addr;
		probe_armed = 0;
	}
	sigaction(SIGBUS, &old_bus, NULL);
	sigaction(SIGSEGV, &old_segv, NULL);
	if (sig)
		CHECK(probe_si_addr == (void *)(uintptr_t)addr,
		      "signal %d at %p, si_addr %p", sig,
		      (void *)(uintptr_t)addr, probe_si_addr);
	return sig;
}

/* ---- the model ------------------------------------------------------ */

enum ev_kind { EV_INVALIDATE, EV_POPULATE, EV_DISCARD };

struct event {
	enum ev_kind kind;
	const void *who;
	unsigned int reason;	/* invalidate */
	uint64_t off, size;
};

struct owner {
	bool unbound;
	uint64_t first, npages;
};

struct mbinding {
	struct gmem_binding *b;
	struct owner *o;
	uint32_t *sref, *pref;	/* by file page */
};

struct mlsn {
	bool unregistered;
	uint64_t first, npages;
	unsigned int salt, mod;		/* mod 0: never refuses */
	unsigned char *populated;	/* by file page */
};

struct mview {
	uint8_t *addr;
	uint64_t first, npages;	/* the view's, past the end too */
	size_t len;
	int prot;
};

struct mpin {
	uint64_t first, n;
	uint8_t *addr;
};

static struct model {
	struct gmem *g;
	uint64_t ps, npages, size, flags;
	bool closed;
	unsigned char *priv, *poison;
	uint32_t *upins;
	uint8_t *data;
	uint64_t conversions, pages_converted, pin_calls, pfn_refs;
	uint64_t invalidations, listener_calls;
	struct mview views[MAX_VIEWS];
	int nviews;
	struct mpin pins[MAX_PINS];
	int npins;
	struct mbinding bind[MAX_BINDINGS];
	struct mlsn *lsn[MAX_LISTENERS];
	struct gmem_listener *gl[MAX_LISTENERS];
	unsigned long lsn_seq[MAX_LISTENERS], seq;
	/* callbacks: expected and seen during one call */
	struct event want[MAX_EVENTS], seen[MAX_EVENTS];
	int nwant, nseen;
	uint64_t inval_pending;		/* invalidations expected */
	bool recording;
	uint8_t *buf;		/* scratch: two pages */
} M;

static void expect_event(enum ev_kind kind, const void *who,
			 unsigned int reason, uint64_t first, uint64_t end)
{
	CHECK(M.nwant < MAX_EVENTS, "too many expected events");
	M.want[M.nwant++] = (struct event){
		kind, who, reason, first * M.ps, (end - first) * M.ps,
	};
}

static void saw_event(enum ev_kind kind, const void *who, unsigned int reason,
		      uint64_t off, uint64_t size)
{
	CHECK(M.recording, "callback %d outside any call", kind);
	CHECK(M.nseen < MAX_EVENTS, "too many callbacks");
	M.seen[M.nseen++] = (struct event){ kind, who, reason, off, size };
}

static void begin_call(void)
{
	M.nwant = M.nseen = 0;
	M.inval_pending = 0;
	M.recording = true;
}

static void dump_list(const char *name, const struct event *ev, int n)
{
	static const char *const kinds[] = { "invalidate", "populate",
					     "discard" };

	for (int i = 0; i < n; i++)
		fprintf(stderr, "fuzz_api:   %s %s %p reason %u [%#llx, %#llx)\n",
			name, kinds[ev[i].kind], ev[i].who, ev[i].reason,
			(unsigned long long)ev[i].off,
			(unsigned long long)ev[i].size);
}

/* What a mismatch report needs: both lists. */
static void dump_events(void)
{
	dump_list("seen", M.seen, M.nseen);
	dump_list("want", M.want, M.nwant);
}

/* The callbacks seen must be exactly those expected (in any order). */
static void end_call(const char *what)
{
	bool used[MAX_EVENTS] = { false };

	M.recording = false;
	if (M.nseen != M.nwant)
		dump_events();
	CHECK(M.nseen == M.nwant, "%s: %d callbacks, want %d", what, M.nseen,
	      M.nwant);
	for (int i = 0; i < M.nseen; i++) {
		int j;

		for (j = 0; j < M.nwant; j++)
			if (!used[j] && !memcmp(&M.seen[i], &M.want[j],
						sizeof(struct event)))
				break;
		CHECK(j < M.nwant, "%s: unexpected callback kind %d reason "
		      "%u [%#llx, +%#llx)", what, M.seen[i].kind,
		      M.seen[i].reason, (unsigned long long)M.seen[i].off,
		      (unsigned long long)M.seen[i].size);
		used[j] = true;
	}
}

static void on_invalidate(void *opaque, uint64_t off, uint64_t size,
			  unsigned int reason)
{
	struct owner *o = opaque;

	CHECK(!o->unbound, "invalidate after gmem_unbind()");
	saw_event(EV_INVALIDATE, o, reason, off, size);
}

static bool refuses(const struct mlsn *l, uint64_t p)
{
	return l->mod &&
	       ((unsigned int)p * 2654435761u + l->salt) % l->mod == 0;
}

static int on_populate(void *opaque, uint64_t off, uint64_t size)
{
	struct mlsn *l = opaque;

	CHECK(!l->unregistered, "populate after unregister");
	saw_event(EV_POPULATE, l, 0, off, size);
	for (uint64_t p = off / M.ps; p < (off + size) / M.ps; p++)
		if (refuses(l, p))
			return -ENOSPC;
	return 0;
}

static void on_discard(void *opaque, uint64_t off, uint64_t size)
{
	struct mlsn *l = opaque;

	CHECK(!l->unregistered, "discard after unregister");
	saw_event(EV_DISCARD, l, 0, off, size);
}

static const struct gmem_binding_ops bops = { .invalidate = on_invalidate };
static const struct gmem_listener_ops lops = {
	.populate = on_populate, .discard = on_discard,
};

static uint64_t runs_end(const unsigned char *state, uint64_t p, uint64_t end)
{
	uint64_t e = p + 1;

	while (e < end && state[e] == state[p])
		e++;
	return e;
}

static bool pinned(uint64_t p)
{
	if (M.upins[p])
		return true;
	for (int k = 0; k < MAX_BINDINGS; k++)
		if (M.bind[k].b && M.bind[k].sref[p])
			return true;
	return false;
}

static bool clip(uint64_t s, uint64_t e, uint64_t first, uint64_t npages,
		 uint64_t *cs, uint64_t *ce)
{
	*cs = s > first ? s : first;
	*ce = e < first + npages ? e : first + npages;
	return *cs < *ce;
}

/* Bindings, in the library's order (the newest first). */
static void expect_invalidate(uint64_t s, uint64_t e, unsigned int reason)
{
	for (int k = 0; k < MAX_BINDINGS; k++) {
		struct mbinding *b = &M.bind[k];
		uint64_t cs, ce;

		if (b->b && clip(s, e, b->o->first, b->o->npages, &cs, &ce)) {
			expect_event(EV_INVALIDATE, b->o, reason, cs, ce);
			M.inval_pending++;
		}
	}
}

/* Listeners in the library's order: the most recently registered first. */
static int lsn_order(int *idx)
{
	int n = 0;

	for (int k = 0; k < MAX_LISTENERS; k++)
		if (M.lsn[k])
			idx[n++] = k;
	if (n == 2 && M.lsn_seq[idx[0]] < M.lsn_seq[idx[1]]) {
		int t = idx[0];

		idx[0] = idx[1];
		idx[1] = t;
	}
	return n;
}

static void lsn_mark(struct mlsn *l, uint64_t s, uint64_t e, bool pop)
{
	for (uint64_t p = s; p < e; p++) {
		CHECK(l->populated[p] == !pop, "listener page %llu %s twice",
		      (unsigned long long)p, pop ? "populated" : "discarded");
		l->populated[p] = pop;
	}
}

/* discard_runs(): runs of [s, e) in state val, listeners before stop. */
static void expect_discards(uint64_t s, uint64_t e, unsigned char val,
			    int stop_at, int *order, int nl)
{
	for (uint64_t p = s; p < e;) {
		uint64_t r = runs_end(M.priv, p, e);

		if (M.priv[p] == val) {
			for (int i = 0; i < nl && order[i] != stop_at; i++) {
				struct mlsn *l = M.lsn[order[i]];
				uint64_t cs, ce;

				if (!clip(p, r, l->first, l->npages, &cs, &ce))
					continue;
				expect_event(EV_DISCARD, l, 0, cs, ce);
				M.listener_calls++;
				lsn_mark(l, cs, ce, false);
			}
		}
		p = r;
	}
}

/* ---- checks after every call ------------------------------------------ */

static bool trace;	/* env FUZZ_API_TRACE: print each operation */
static bool kvm_ok;	/* the kvm backend works here */

static void check_stats(const char *what)
{
	struct gmem_stats st;
	uint64_t priv = 0, ranges = 0, pinned_pages = 0, poisoned = 0;
	uint64_t off, run, attr, bindings = 0, listeners = 0;

	for (uint64_t p = 0; p < M.npages; p++) {
		priv += M.priv[p];
		poisoned += M.poison[p];
		pinned_pages += pinned(p);
		ranges += !p || M.priv[p] != M.priv[p - 1];
	}
	for (int k = 0; k < MAX_BINDINGS; k++)
		bindings += !!M.bind[k].b;
	for (int k = 0; k < MAX_LISTENERS; k++)
		listeners += !!M.lsn[k];
	CHECK(!gmem_stat(M.g, &st, sizeof(st)), "%s: gmem_stat", what);
#define EQ(field, want)							\
	CHECK(st.field == (uint64_t)(want), "%s: stats." #field " %llu, "  \
	      "model %llu", what, (unsigned long long)st.field,		\
	      (unsigned long long)(want))
	EQ(size, M.size);
	EQ(priv, priv * M.ps);
	EQ(shared, M.size - priv * M.ps);
	EQ(nr_ranges, ranges);
	EQ(conversions, M.conversions);
	EQ(pages_converted, M.pages_converted);
	EQ(pins, M.pin_calls);
	EQ(pinned, pinned_pages * M.ps);
	EQ(views, (uint64_t)M.nviews);
	EQ(bindings, bindings);
	EQ(pfn_refs, M.pfn_refs);
	EQ(invalidations, M.invalidations);
	EQ(listeners, listeners);
	EQ(listener_calls, M.listener_calls);
	EQ(poisoned, poisoned * M.ps);
#undef EQ
	if (trace)
		fprintf(stderr, "fuzz_api:   %llu views (%llu uffd), %llu "
			"ranges, %llu conversions\n",
			(unsigned long long)st.views,
			(unsigned long long)st.views_uffd,
			(unsigned long long)st.nr_ranges,
			(unsigned long long)st.conversions);
	CHECK(st.allocated <= M.size && st.views_uffd <= st.views,
	      "%s: allocated %llu views_uffd %llu", what,
	      (unsigned long long)st.allocated,
	      (unsigned long long)st.views_uffd);
	for (off = 0; off < M.size; off += run) {
		uint64_t p = off / M.ps;

		CHECK(!gmem_get_attributes(M.g, off, &attr, &run),
		      "%s: get_attributes(%#llx)", what,
		      (unsigned long long)off);
		CHECK(!!attr == M.priv[p] &&
		      run == (runs_end(M.priv, p, M.npages) - p) * M.ps,
		      "%s: page %llu attributes %#llx run %llu, model %u "
		      "run %llu", what, (unsigned long long)p,
		      (unsigned long long)attr, (unsigned long long)run,
		      M.priv[p], (unsigned long long)
		      ((runs_end(M.priv, p, M.npages) - p) * M.ps));
	}
	for (int k = 0; k < MAX_LISTENERS; k++) {
		struct mlsn *l = M.lsn[k];

		for (uint64_t p = 0; l && p < l->npages; p++)
			CHECK(l->populated[l->first + p] ==
			      !M.priv[l->first + p], "%s: listener page %llu "
			      "populated %u but %s", what,
			      (unsigned long long)(l->first + p),
			      l->populated[l->first + p],
			      M.priv[l->first + p] ? "private" : "shared");
	}
}

/* A page's bytes through addr (a view, pin or the guest view). */
static void check_page(uint8_t *addr, uint64_t p, const char *via)
{
	uint8_t v;

	CHECK(!probe(addr, false, &v), "page %llu through %s: signal",
	      (unsigned long long)p, via);
	CHECK(!memcmp(addr, M.data + p * M.ps, M.ps),
	      "page %llu through %s: contents differ", (unsigned long long)p,
	      via);
}

/* ---- operations ------------------------------------------------------- */

static void model_to_private(uint64_t s, uint64_t e, uint64_t flags)
{
	struct gmem_attributes a = {
		.offset = s * M.ps, .size = (e - s) * M.ps,
		.attributes = GMEM_ATTR_PRIVATE, .flags = flags,
	};
	uint64_t first_pinned = e, changed = 0;
	int order[MAX_LISTENERS], nl = lsn_order(order), ret, want = 0;
	bool noop = true;

	for (uint64_t p = s; p < e; p++) {
		noop &= M.priv[p] != 0;
		if (!M.priv[p] && first_pinned == e && pinned(p))
			first_pinned = p;
	}
	begin_call();
	if (!noop && first_pinned < e) {
		CHECK(!(flags & GMEM_SET_ATTR_WAIT), "would wait forever");
		want = -EAGAIN;
	} else if (!noop) {
		expect_discards(s, e, 0, -1, order, nl);
		for (uint64_t p = s; p < e;) {
			uint64_t r = runs_end(M.priv, p, e);

			if (!M.priv[p]) {
				expect_invalidate(p, r,
						  GMEM_INVALIDATE_CONVERT);
				changed += r - p;
			}
			p = r;
		}
	}
	ret = gmem_set_attributes(M.g, &a);
	end_call("to private");
	CHECK_RET(ret, want, "to private");
	if (want == -EAGAIN) {
		CHECK(a.error_offset == first_pinned * M.ps,
		      "-EAGAIN error_offset %#llx, want %#llx",
		      (unsigned long long)a.error_offset,
		      (unsigned long long)(first_pinned * M.ps));
		return;
	}
	if (noop)
		return;
	M.invalidations += M.inval_pending;
	memset(M.priv + s, 1, e - s);
	M.conversions++;
	M.pages_converted += changed;
}

static void model_to_shared(uint64_t s, uint64_t e)
{
	struct gmem_attributes a = {
		.offset = s * M.ps, .size = (e - s) * M.ps,
	};
	int order[MAX_LISTENERS], nl = lsn_order(order), ret, want = 0;
	uint64_t want_eo = 0, changed = 0;
	bool noop = true, vetoed = false;

	for (uint64_t p = s; p < e; p++)
		noop &= !M.priv[p];
	begin_call();
	if (!noop) {
		/* Populate every private run, listener by listener. */
		for (uint64_t p = s; p < e && !vetoed;) {
			uint64_t r = runs_end(M.priv, p, e);

			for (int i = 0; M.priv[p] && i < nl && !vetoed; i++) {
				struct mlsn *l = M.lsn[order[i]];
				uint64_t cs, ce;
				bool no = false;

				if (!clip(p, r, l->first, l->npages, &cs, &ce))
					continue;
				expect_event(EV_POPULATE, l, 0, cs, ce);
				M.listener_calls++;
				for (uint64_t q = cs; q < ce; q++)
					no |= refuses(l, q);
				if (!no) {
					lsn_mark(l, cs, ce, true);
					continue;
				}
				vetoed = true;
				want_eo = cs;
				/* Undo: earlier runs, then this run's
				 * listeners before the one that refused. */
				expect_discards(s, p, 1, -1, order, nl);
				expect_discards(p, r, 1, order[i], order, nl);
			}
			p = r;
		}
		if (!vetoed) {
			for (uint64_t p = s; p < e;) {
				uint64_t r = runs_end(M.priv, p, e);

				if (M.priv[p]) {
					expect_invalidate(p, r,
						GMEM_INVALIDATE_CONVERT);
					changed += r - p;
				}
				p = r;
			}
		}
		want = vetoed ? -ENOSPC : 0;
	}
	ret = gmem_set_attributes(M.g, &a);
	end_call("to shared");
	CHECK_RET(ret, want, "to shared");
	if (vetoed) {
		CHECK(a.error_offset == want_eo * M.ps,
		      "veto error_offset %#llx, want %#llx",
		      (unsigned long long)a.error_offset,
		      (unsigned long long)(want_eo * M.ps));
		return;
	}
	if (noop)
		return;
	M.invalidations += M.inval_pending;
	memset(M.priv + s, 0, e - s);
	M.conversions++;
	M.pages_converted += changed;
}

/* CONVERT: u16 first page, u8 pages, u8 flags (1 private, 2 wait,
 * 4 unaligned, 8 unknown flag, 16 reserved). */
static void op_convert(struct input *in)
{
	uint64_t s = get16(in) % (M.npages + 2), n = get8(in) % 18;
	unsigned int f = get8(in);
	bool priv = f & 1;

	if ((f & 28) || !n || s + n > M.npages) {
		struct gmem_attributes a = {
			.offset = s * M.ps + ((f & 4) ? 1 : 0),
			.size = n * M.ps,
			.attributes = priv ? GMEM_ATTR_PRIVATE : 0,
			.flags = (f & 8) ? 1ULL << 5 : 0,
		};

		a.reserved[1] = (f & 16) ? 1 : 0;
		CHECK_RET(gmem_set_attributes(M.g, &a), -EINVAL, "bad convert");
		return;
	}
	if (M.closed) {
		struct gmem_attributes a = {
			.offset = s * M.ps, .size = n * M.ps,
			.attributes = priv ? GMEM_ATTR_PRIVATE : 0,
		};

		CHECK_RET(gmem_set_attributes(M.g, &a), -EBADF,
			  "convert after close");
		return;
	}
	if (priv) {
		uint64_t flags = 0;

		if (f & 2) {	/* wait, unless that would be forever */
			flags = GMEM_SET_ATTR_WAIT;
			for (uint64_t p = s; p < s + n; p++)
				if (!M.priv[p] && pinned(p))
					flags = 0;
		}
		model_to_private(s, s + n, flags);
	} else {
		model_to_shared(s, s + n);
	}
}

/* STRIDED: u16 first page, u8 stride, u8 count, u8 flags (1 private). */
static void op_strided(struct input *in)
{
	uint64_t s = get16(in) % M.npages, stride = 2 + get8(in) % 3;
	unsigned int count = get8(in) % 80, f = get8(in);

	if (M.closed)
		return;
	for (uint64_t k = 0; k < count && s + k * stride < M.npages; k++) {
		uint64_t p = s + k * stride;

		if (f & 1)
			model_to_private(p, p + 1, 0);
		else
			model_to_shared(p, p + 1);
	}
}

/* PUNCH: u16 first page, u8 pages, u8 flags (4 unaligned, 8 no
 * KEEP_SIZE, 16 another mode bit, 32 allocate instead). */
static void op_punch(struct input *in)
{
	uint64_t s = get16(in) % (M.npages + 3), n = get8(in) % 12, e;
	unsigned int f = get8(in);
	uint64_t off = s * M.ps + ((f & 4) ? 1 : 0), len = n * M.ps;
	int mode = (f & 32) ? FALLOC_FL_KEEP_SIZE : PUNCH, ret;
	bool bad_mode = f & 24, bad_range = (f & 4) || !n;

	if (f & 8)
		mode &= ~FALLOC_FL_KEEP_SIZE;
	if (f & 16)
		mode |= FALLOC_FL_ZERO_RANGE;
	if ((f & 32) && s + n > M.npages)
		bad_range = true;
	ret = gmem_fallocate(M.g, mode, off, len);
	if (bad_mode) {
		CHECK(ret == -EOPNOTSUPP || (bad_range && ret == -EINVAL),
		      "fallocate mode %#x: returned %d", mode, ret);
		return;
	}
	if (bad_range) {
		CHECK_RET(ret, -EINVAL, "fallocate bad range");
		return;
	}
	if (M.closed) {
		CHECK_RET(ret, -EBADF, "fallocate after close");
		return;
	}
	/* The callbacks came during the call: expected after, same set. */
	e = s + n < M.npages ? s + n : M.npages;
	if (!(f & 32) && s < M.npages) {
		uint64_t before = M.inval_pending;

		expect_invalidate(s, e, GMEM_INVALIDATE_PUNCH);
		M.invalidations += M.inval_pending - before;
		memset(M.data + s * M.ps, 0, (e - s) * M.ps);
		memset(M.poison + s, 0, e - s);
	}
	CHECK_RET(ret, 0, mode == PUNCH ? "punch" : "allocate");
}

static void record_pin(uint64_t s, uint64_t n, void *addr)
{
	if (M.npins < MAX_PINS)
		M.pins[M.npins++] = (struct mpin){ s, n, addr };
}

/* PIN: u16 first page, u8 pages, u8 flags (4 unaligned, 8 NULL addr). */
static void op_pin(struct input *in)
{
	uint64_t s = get16(in) % (M.npages + 2), n = get8(in) % 6;
	unsigned int f = get8(in);
	bool any_priv = false, any_poison = false;
	void *addr = NULL;
	int ret, want = 0;

	if ((f & 12) || !n || s + n > M.npages) {
		ret = gmem_pin(M.g, s * M.ps + ((f & 4) ? 1 : 0), n * M.ps,
			       (f & 8) ? NULL : &addr);
		CHECK_RET(ret, -EINVAL, "bad pin");
		return;
	}
	if (M.npins == MAX_PINS)
		return;
	for (uint64_t p = s; p < s + n; p++) {
		any_priv |= M.priv[p];
		any_poison |= M.poison[p];
	}
	if (M.closed)
		want = -EBADF;
	else if (any_priv)
		want = -EFAULT;
	else if (any_poison)
		want = -EHWPOISON;
	ret = gmem_pin(M.g, s * M.ps, n * M.ps, &addr);
	CHECK_RET(ret, want, "pin");
	if (ret)
		return;
	for (uint64_t p = s; p < s + n; p++)
		M.upins[p]++;
	M.pin_calls++;
	record_pin(s, n, addr);
	for (uint64_t p = s; p < s + n; p++)
		check_page((uint8_t *)addr + (p - s) * M.ps, p, "a pin");
}

/* UNPIN: u8 pin, u8 flags (1 a random range), u16 page, u8 pages. */
static void op_unpin(struct input *in)
{
	unsigned int k = get8(in), f = get8(in);
	uint64_t s = get16(in) % (M.npages + 2), n = get8(in) % 6;
	int ret, want = 0, rec = -1;

	if (!(f & 1) && M.npins) {
		rec = (int)(k % (unsigned int)M.npins);
		s = M.pins[rec].first;
		n = M.pins[rec].n;
	}
	if (!n || s + n > M.npages) {
		want = -EINVAL;
	} else {
		for (uint64_t p = s; p < s + n; p++)
			if (!M.upins[p])
				want = -EINVAL;
	}
	ret = gmem_unpin(M.g, s * M.ps, n * M.ps);
	CHECK_RET(ret, want, "unpin");
	if (ret)
		return;
	for (uint64_t p = s; p < s + n; p++)
		M.upins[p]--;
	if (M.pin_calls)
		M.pin_calls--;
	if (rec >= 0)
		M.pins[rec] = M.pins[--M.npins];
	/*
	 * A pin's address is valid until its unpin.  With none left the
	 * pin view is gone and every address recorded so far with it; a
	 * record kept by an unpin of another range would dangle.
	 */
	for (uint64_t p = 0; p < M.npages; p++)
		if (M.upins[p])
			return;
	M.npins = 0;
}

/* POPULATE: u16 first page, u16 length, u8 flags (1 unaligned, 2 NULL). */
static void op_populate(struct input *in)
{
	uint64_t s = get16(in) % (M.npages + 2);
	uint64_t len = get16(in) % (3 * M.ps + 1);
	unsigned int f = get8(in);
	uint64_t off = s * M.ps + (f & 1), last, k;
	ssize_t ret, want;

	for (uint64_t i = 0; i < 3 * M.ps; i++)
		M.buf[i] = (uint8_t)(f * 7 + i * 13 + (i >> 9));
	ret = gmem_populate(M.g, off, (f & 2) ? NULL : M.buf, (size_t)len);
	if ((f & 3) || !len || off + len > M.size) {
		CHECK_RET(ret, -EINVAL, "bad populate");
		return;
	}
	if (M.closed) {
		CHECK_RET(ret, -EBADF, "populate after close");
		return;
	}
	last = (off + len - 1) / M.ps;
	if (!M.priv[s])
		want = -EPERM;
	else if (M.poison[s])
		want = -EHWPOISON;
	else {
		for (k = s; k <= last && M.priv[k] && !M.poison[k]; k++)
			;
		want = k > last ? (ssize_t)len : (ssize_t)(k * M.ps - off);
	}
	CHECK_RET(ret, want, "populate");
	if (ret > 0)
		memcpy(M.data + off, M.buf, (size_t)ret);
}

/* MMAP: u16 first page, u8 pages, u8 flags (3: prot R, RW, NONE, EXEC;
 * 4 length a byte short; 8 unaligned offset). */
static void op_mmap(struct input *in)
{
	static const int prots[4] = {
		PROT_READ, PROT_READ | PROT_WRITE, PROT_NONE,
		PROT_READ | PROT_EXEC,
	};
	uint64_t s = get16(in) % (M.npages + 2), n = get8(in) % (M.npages + 3);
	unsigned int f = get8(in);
	int prot = prots[f & 3], ret, want = 0;
	size_t len = n * M.ps - (n && (f & 4) ? 1 : 0);
	bool bad = !n || (f & 3) == 3 || (f & 8);
	void *addr = NULL;

	if (M.nviews == MAX_VIEWS && !bad)
		return;
	ret = gmem_mmap(M.g, s * M.ps + ((f & 8) ? 1 : 0), len, prot, &addr);
	if (!(M.flags & GMEM_FLAG_MMAP))
		CHECK(ret == -ENODEV || (bad && ret == -EINVAL),
		      "mmap without GMEM_FLAG_MMAP: returned %d", ret);
	else if (bad)
		CHECK_RET(ret, -EINVAL, "bad mmap");
	else if (M.closed)
		CHECK_RET(ret, -EBADF, "mmap after close");
	else
		CHECK_RET(ret, want, "mmap");
	if (ret)
		return;
	M.views[M.nviews++] = (struct mview){ addr, s, n, len, prot };
}

static bool file_freed(void)
{
	if (!M.closed || M.nviews)
		return false;
	for (uint64_t p = 0; p < M.npages; p++)
		if (M.upins[p])
			return false;
	for (int k = 0; k < MAX_BINDINGS; k++)
		if (M.bind[k].b)
			return false;
	for (int k = 0; k < MAX_LISTENERS; k++)
		if (M.lsn[k])
			return false;
	return true;
}

/* MUNMAP: u8 view, u8 mode (0 right, 1 long, 2 inside). */
static void op_munmap(struct input *in)
{
	unsigned int k = get8(in), mode = get8(in) % 3;
	struct mview *v;
	int ret;

	if (!M.nviews)
		return;
	v = &M.views[k % (unsigned int)M.nviews];
	if (mode == 1) {
		CHECK_RET(gmem_munmap(M.g, v->addr, v->len + M.ps), -EINVAL,
			  "munmap too long");
		return;
	}
	if (mode == 2 && v->npages > 1) {	/* never another view */
		CHECK_RET(gmem_munmap(M.g, v->addr + M.ps, M.ps), -EINVAL,
			  "munmap inside");
		return;
	}
	ret = gmem_munmap(M.g, v->addr, v->len);
	CHECK_RET(ret, 0, "munmap");
	*v = M.views[--M.nviews];
}

/* Expected signal for an access to file page p through prot. */
static int expected_signal(uint64_t p, int prot, bool write)
{
	if (!(prot & PROT_READ) || (write && !(prot & PROT_WRITE)))
		return SIGSEGV;
	if (p >= M.npages || M.priv[p] || M.poison[p])
		return SIGBUS;
	return 0;
}

/* PROBE: u8 view, u16 page, u16 offset, u8 flags (1 write; value). */
static void op_probe(struct input *in)
{
	unsigned int k = get8(in), i = get16(in), o = get16(in) % M.ps;
	unsigned int f = get8(in);
	struct mview *v;
	uint64_t p;
	uint8_t val = (uint8_t)(f | 1);
	bool write = f & 1;
	int sig, want;

	if (!M.nviews)
		return;
	v = &M.views[k % (unsigned int)M.nviews];
	if (!v->npages)
		return;
	i %= (unsigned int)v->npages;
	p = v->first + i;
	want = expected_signal(p, v->prot, write);
	sig = probe(v->addr + i * M.ps + o, write, &val);
	CHECK(sig == want, "%s page %llu (%s%s) through a view (prot %d): "
	      "signal %d, want %d", write ? "write" : "read",
	      (unsigned long long)p,
	      p >= M.npages ? "past the end" :
	      M.priv[p] ? "private" : "shared",
	      p < M.npages && M.poison[p] ? ", poisoned" : "", v->prot, sig,
	      want);
	if (sig)
		return;
	if (write)
		M.data[p * M.ps + o] = val;
	else
		CHECK(val == M.data[p * M.ps + o], "page %llu byte %u: read "
		      "%#x, model %#x", (unsigned long long)p, o, val,
		      M.data[p * M.ps + o]);
}

/* PROBE_PIN: u8 pin, u8 page, u16 offset, u8 flags (1 write). */
static void op_probe_pin(struct input *in)
{
	unsigned int k = get8(in), i = get8(in), o = get16(in) % M.ps;
	unsigned int f = get8(in);
	struct mpin *pin;
	uint8_t val = (uint8_t)(f | 1);
	bool write = f & 1;
	uint64_t p;
	int sig;

	if (!M.npins)
		return;
	pin = &M.pins[k % (unsigned int)M.npins];
	i %= (unsigned int)pin->n;
	p = pin->first + i;
	if (!M.upins[p])	/* the address is valid while pinned */
		return;
	sig = probe(pin->addr + i * M.ps + o, write, &val);
	CHECK(sig == expected_signal(p, PROT_READ | PROT_WRITE, write),
	      "pinned page %llu: signal %d", (unsigned long long)p, sig);
	if (sig)
		return;
	if (write)
		M.data[p * M.ps + o] = val;
	else
		CHECK(val == M.data[p * M.ps + o], "pinned page %llu byte %u",
		      (unsigned long long)p, o);
}

/* GET_ATTR: u16 page, u8 flags (1 unaligned, 2 NULL attributes). */
static void op_get_attr(struct input *in)
{
	uint64_t p = get16(in) % (M.npages + 2), attr = 7, run = 7;
	unsigned int f = get8(in);
	int ret = gmem_get_attributes(M.g, p * M.ps + (f & 1),
				      (f & 2) ? NULL : &attr, &run);

	if ((f & 3) || p >= M.npages)
		CHECK_RET(ret, -EINVAL, "bad get_attributes");
	else if (M.closed)
		CHECK_RET(ret, -EBADF, "get_attributes after close");
	else
		CHECK(!ret && !!attr == M.priv[p] &&
		      run == (runs_end(M.priv, p, M.npages) - p) * M.ps,
		      "get_attributes page %llu", (unsigned long long)p);
}

/* STAT: u8 size (a prefix of struct gmem_stats, or too big). */
static void op_stat(struct input *in)
{
	size_t size = get8(in) % (sizeof(struct gmem_stats) + 9);
	unsigned char a[sizeof(struct gmem_stats) + 16];
	struct gmem_stats full;
	int ret;

	memset(a, 0xcc, sizeof(a));
	ret = gmem_stat(M.g, (struct gmem_stats *)(void *)a, size);
	if (size > sizeof(struct gmem_stats)) {
		CHECK_RET(ret, -EINVAL, "stat too big");
		return;
	}
	if (M.closed) {
		CHECK_RET(ret, -EBADF, "stat after close");
		return;
	}
	CHECK_RET(ret, 0, "stat");
	CHECK(!gmem_stat(M.g, &full, sizeof(full)), "stat");
	CHECK(!memcmp(a, &full, size), "stat prefix of %zu bytes", size);
	for (size_t i = size; i < sizeof(a); i++)
		CHECK(a[i] == 0xcc, "stat wrote byte %zu of %zu", i, size);
}

/* ---- bindings ------------------------------------------------------- */

static void *graveyard[4 * MAX_OPS];
static int ngrave;

static void bury(void *p)
{
	if (ngrave < (int)(sizeof(graveyard) / sizeof(graveyard[0])))
		graveyard[ngrave++] = p;
	else
		fail("graveyard full");
}

/* BIND: u8 slot, u16 first page, u8 pages. */
static void op_bind(struct input *in)
{
	int k = (int)(get8(in) % MAX_BINDINGS);
	uint64_t s = get16(in) % (M.npages + 2), n = get8(in) % 20;
	struct mbinding *b = &M.bind[k], *o = &M.bind[!k];
	struct gmem_binding *gb = NULL;
	int ret, want = 0;

	if (b->b)
		return;
	if (!n || s + n > M.npages)
		want = -EINVAL;
	else if (M.closed)
		want = -EBADF;
	else if (o->b && s < o->o->first + o->o->npages &&
		 o->o->first < s + n)
		want = -EEXIST;
	b->o = calloc(1, sizeof(*b->o));
	CHECK(b->o, "out of memory");
	bury(b->o);
	b->o->first = s;
	b->o->npages = n;
	ret = gmem_bind(M.g, s * M.ps, n * M.ps, &bops, b->o, &gb);
	CHECK_RET(ret, want, "bind");
	if (ret) {
		b->o->unbound = true;	/* never bound: no callback */
		return;
	}
	b->b = gb;
	b->sref = calloc(M.npages, sizeof(*b->sref));
	b->pref = calloc(M.npages, sizeof(*b->pref));
	CHECK(b->sref && b->pref, "out of memory");
}

static void unbind(int k)
{
	struct mbinding *b = &M.bind[k];

	CHECK_RET(gmem_unbind(b->b), 0, "unbind");
	b->o->unbound = true;
	for (uint64_t p = 0; p < M.npages; p++)
		M.pfn_refs -= b->sref[p];	/* private ones are not counted */
	free(b->sref);
	free(b->pref);
	memset(b, 0, sizeof(*b));
}

/* UNBIND: u8 slot. */
static void op_unbind(struct input *in)
{
	int k = (int)(get8(in) % MAX_BINDINGS);

	if (M.bind[k].b)
		unbind(k);
	else if (!k)
		CHECK_RET(gmem_unbind(NULL), -EINVAL, "unbind NULL");
}

/* GET_PFN: u8 slot, u16 index, u8 flags (3: access, 3 = bad; 4 NULL). */
static void op_get_pfn(struct input *in)
{
	int k = (int)(get8(in) % MAX_BINDINGS);
	uint64_t i = get16(in) % 24, p;
	unsigned int f = get8(in), access = f & 3;
	struct mbinding *b = &M.bind[k];
	struct gmem_pfn pfn;
	int ret, want = 0;

	if (!b->b)
		return;
	memset(&pfn, 0, sizeof(pfn));
	ret = gmem_get_pfn(b->b, i, access, (f & 4) ? NULL : &pfn);
	if (i >= b->o->npages || access > 1 || (f & 4)) {
		CHECK_RET(ret, -EINVAL, "bad get_pfn");
		return;
	}
	p = b->o->first + i;
	if (M.closed)
		want = -EBADF;
	else if (M.poison[p])
		want = -EHWPOISON;
	else if (M.priv[p] != access)
		want = -EFAULT;
	CHECK_RET(ret, want, "get_pfn");
	if (ret == -EFAULT) {
		CHECK(pfn.fault_offset == p * M.ps && pfn.fault_size == M.ps &&
		      pfn.fault_flags == (access ? GMEM_MEMORY_FAULT_PRIVATE :
					  0), "get_pfn fault fields");
		return;
	}
	if (ret)
		return;
	CHECK(pfn.offset == p * M.ps && pfn.order == 0, "get_pfn offset");
	if (access) {
		b->pref[p]++;
	} else {
		b->sref[p]++;
		M.pfn_refs++;	/* only shared references are counted */
	}
	/* The guest view shows the page, private or not. */
	CHECK(!memcmp(pfn.addr, M.data + p * M.ps, M.ps),
	      "page %llu (%s) through the guest view: contents differ",
	      (unsigned long long)p, access ? "private" : "shared");
}

/* PUT_PFN: u8 slot, u16 index, u8 access. */
static void op_put_pfn(struct input *in)
{
	int k = (int)(get8(in) % MAX_BINDINGS);
	uint64_t i = get16(in) % 24;
	unsigned int access = get8(in) % 2;
	struct mbinding *b = &M.bind[k];
	uint32_t *refs;
	int ret;

	if (!b->b)
		return;
	ret = gmem_put_pfn(b->b, i, access);
	if (i >= b->o->npages) {
		CHECK_RET(ret, -EINVAL, "bad put_pfn");
		return;
	}
	refs = access ? b->pref : b->sref;
	/* A private put is never refused: private references are not
	 * counted (gmem_bind(3)). */
	CHECK_RET(ret, access || refs[b->o->first + i] ? 0 : -EINVAL,
		  "put_pfn");
	if (ret || !refs[b->o->first + i])
		return;
	refs[b->o->first + i]--;
	if (!access)
		M.pfn_refs--;
}

/* ---- listeners ------------------------------------------------------ */

/* LSN_REGISTER: u8 slot, u16 first page, u8 pages, u8 refusal. */
static void op_lsn_register(struct input *in)
{
	int k = (int)(get8(in) % MAX_LISTENERS), ret, want = 0;
	uint64_t s = get16(in) % (M.npages + 2), n = get8(in) % 24;
	unsigned int r = get8(in);
	struct gmem_listener *gl = NULL;
	struct mlsn *l;

	if (M.lsn[k])
		return;
	l = calloc(1, sizeof(*l));
	CHECK(l, "out of memory");
	bury(l);
	l->populated = calloc(M.npages, 1);
	CHECK(l->populated, "out of memory");
	bury(l->populated);
	l->first = s;
	l->npages = n;
	l->salt = r * 977;
	l->mod = r % 4 ? 0 : 2 + r % 7;
	if (!n || s + n > M.npages) {
		want = -EINVAL;
	} else if (M.closed) {
		want = -EBADF;
	} else {
		/* Replay the shared runs; a refusal undoes the replay. */
		for (uint64_t p = s; p < s + n && !want;) {
			uint64_t e = runs_end(M.priv, p, s + n);

			if (!M.priv[p]) {
				bool no = false;

				expect_event(EV_POPULATE, l, 0, p, e);
				M.listener_calls++;
				for (uint64_t q = p; q < e; q++)
					no |= refuses(l, q);
				if (no) {
					want = -ENOSPC;
					for (uint64_t q = s; q < p;) {
						uint64_t qe = runs_end(M.priv,
								       q, p);

						if (!M.priv[q]) {
							expect_event(
							  EV_DISCARD, l, 0,
							  q, qe);
							M.listener_calls++;
						}
						q = qe;
					}
				}
			}
			p = e;
		}
	}
	ret = gmem_listener_register(M.g, s * M.ps, n * M.ps, &lops, l, &gl);
	CHECK_RET(ret, want, "listener register");
	if (ret) {
		l->unregistered = true;
		return;
	}
	for (uint64_t p = s; p < s + n; p++)
		l->populated[p] = !M.priv[p];
	M.lsn[k] = l;
	M.gl[k] = gl;
	M.lsn_seq[k] = ++M.seq;
}

static void lsn_unregister(int k)
{
	CHECK_RET(gmem_listener_unregister(M.gl[k]), 0, "listener unregister");
	M.lsn[k]->unregistered = true;
	M.lsn[k] = NULL;
	M.gl[k] = NULL;
}

/* LSN_UNREGISTER: u8 slot. */
static void op_lsn_unregister(struct input *in)
{
	int k = (int)(get8(in) % MAX_LISTENERS);

	if (M.lsn[k])
		lsn_unregister(k);
	else if (!k)
		CHECK_RET(gmem_listener_unregister(NULL), -EINVAL,
			  "unregister NULL");
}

/* MEMORY_FAILURE: u16 page, u8 flags (1 unaligned). */
static void op_memory_failure(struct input *in)
{
	uint64_t p = get16(in) % (M.npages + 2);
	unsigned int f = get8(in);
	int ret, want = 0;

	if ((f & 1) || p >= M.npages) {
		want = -EINVAL;
	} else if (M.closed) {
		want = -EBADF;
	} else if (!M.poison[p]) {
		uint64_t before = M.inval_pending;

		expect_invalidate(p, p + 1, GMEM_INVALIDATE_POISON);
		M.invalidations += M.inval_pending - before;
	}
	ret = gmem_memory_failure(M.g, p * M.ps + (f & 1));
	CHECK_RET(ret, want, "memory failure");
	if (!ret)
		M.poison[p] = 1;
}

/* CLOSE: the bindings let go (RELEASE) once; double close is nothing. */
static void op_close(void)
{
	if (!M.closed) {
		for (int k = 0; k < MAX_BINDINGS; k++) {
			struct mbinding *b = &M.bind[k];

			if (b->b) {
				expect_event(EV_INVALIDATE, b->o,
					     GMEM_INVALIDATE_RELEASE,
					     b->o->first,
					     b->o->first + b->o->npages);
				M.invalidations++;
			}
		}
	}
	gmem_close(M.g);
	M.closed = true;
}

/* BAD: u8 function, u64, u64, u8 flags: malformed arguments only. */
static void op_bad(struct input *in)
{
	unsigned int fn = get8(in) % 6;
	uint64_t x = get64(in), y = get64(in), mask = M.ps - 1;
	unsigned int f = get8(in);
	bool range_ok = y && !(x & mask) && !(y & mask) && x + y > x &&
			x + y <= M.size;
	void *addr = NULL;
	uint64_t attr, run;
	int ret;

	switch (fn) {
	case 0: {
		struct gmem_attributes a = {
			.offset = x, .size = y,
			.attributes = (f & 1) ? GMEM_ATTR_PRIVATE :
				      (f & 2) ? 1ULL << (f >> 2) : 0,
			.flags = (f & 0x80) ? 1ULL << (1 + (f & 31)) : 0,
		};

		if (range_ok && !(a.attributes & ~GMEM_ATTR_PRIVATE) &&
		    !a.flags)
			return;
		ret = gmem_set_attributes(M.g, &a);
		CHECK_RET(ret, -EINVAL, "bad set_attributes");
		break;
	}
	case 1: {
		int mode = (int)(f & 0x7f);
		bool mode_ok = (mode & FALLOC_FL_KEEP_SIZE) &&
			       !(mode & ~(FALLOC_FL_KEEP_SIZE |
					  FALLOC_FL_PUNCH_HOLE));
		bool args_ok = y && !(x & mask) && !(y & mask) && x + y >= x &&
			       ((mode & FALLOC_FL_PUNCH_HOLE) ||
				x + y <= M.size);

		if (mode_ok && args_ok)
			return;
		ret = gmem_fallocate(M.g, mode, x, y);
		CHECK(!mode_ok ? ret == -EOPNOTSUPP ||
		      (!args_ok && ret == -EINVAL) : ret == -EINVAL,
		      "bad fallocate mode %#x [%#llx, +%#llx): %d", mode,
		      (unsigned long long)x, (unsigned long long)y, ret);
		break;
	}
	case 2:
		if (range_ok)
			return;
		ret = gmem_pin(M.g, x, y, &addr);
		CHECK_RET(ret, -EINVAL, "bad pin");
		break;
	case 3:
		if (!(x & mask) && x < M.size)
			return;
		ret = gmem_get_attributes(M.g, x, &attr, &run);
		CHECK_RET(ret, -EINVAL, "bad get_attributes");
		break;
	case 4:
		if (!(x & mask) && x < M.size)
			return;
		ret = gmem_memory_failure(M.g, x);
		CHECK_RET(ret, -EINVAL, "bad memory failure");
		break;
	default:
		if (range_ok)
			return;
		ret = gmem_unpin(M.g, x, y);
		CHECK_RET(ret, -EINVAL, "bad unpin");
		break;
	}
}

/* ---- one input -------------------------------------------------------- */

enum {
	OP_CONVERT, OP_STRIDED, OP_PUNCH, OP_PIN, OP_UNPIN, OP_POPULATE,
	OP_MMAP, OP_MUNMAP, OP_PROBE, OP_PROBE_PIN, OP_GET_ATTR, OP_STAT,
	OP_BIND, OP_UNBIND, OP_GET_PFN, OP_PUT_PFN, OP_LSN_REGISTER,
	OP_LSN_UNREGISTER, OP_MEMORY_FAILURE, OP_CLOSE, OP_BAD, NR_OPS,
	/* probes are the most useful: a few more opcodes map to them */
	NR_OPCODES = NR_OPS + 3,
};

static const char *const op_names[NR_OPS] = {
	"convert", "strided", "punch", "pin", "unpin", "populate", "mmap",
	"munmap", "probe", "probe_pin", "get_attributes", "stat", "bind",
	"unbind", "get_pfn", "put_pfn", "listener_register",
	"listener_unregister", "memory_failure", "close", "bad",
};

static void do_op(unsigned int op, struct input *in)
{
	if (op >= NR_OPS)
		op = OP_PROBE;
	if (trace)
		fprintf(stderr, "fuzz_api: %s\n", op_names[op]);
	begin_call();
	switch (op) {
	case OP_CONVERT: op_convert(in); break;
	case OP_STRIDED: op_strided(in); break;
	case OP_PUNCH: op_punch(in); break;
	case OP_PIN: op_pin(in); break;
	case OP_UNPIN: op_unpin(in); break;
	case OP_POPULATE: op_populate(in); break;
	case OP_MMAP: op_mmap(in); break;
	case OP_MUNMAP: op_munmap(in); break;
	case OP_PROBE: op_probe(in); break;
	case OP_PROBE_PIN: op_probe_pin(in); break;
	case OP_GET_ATTR: op_get_attr(in); break;
	case OP_STAT: op_stat(in); break;
	case OP_BIND: op_bind(in); break;
	case OP_UNBIND: op_unbind(in); break;
	case OP_GET_PFN: op_get_pfn(in); break;
	case OP_PUT_PFN: op_put_pfn(in); break;
	case OP_LSN_REGISTER: op_lsn_register(in); break;
	case OP_LSN_UNREGISTER: op_lsn_unregister(in); break;
	case OP_MEMORY_FAILURE: op_memory_failure(in); break;
	case OP_CLOSE: op_close(); break;
	default: op_bad(in); break;
	}
	end_call(op_names[op]);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static int count_gmem_maps(void)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "re");
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "/memfd:gmem") != NULL;
	fclose(f);
	return n;
}

/* Everything shared, every page compared; then everything released. */
static void finish(void)
{
	if (!M.closed) {
		begin_call();
		for (int k = 0; k < MAX_LISTENERS; k++)
			if (M.lsn[k])
				lsn_unregister(k);
		model_to_shared(0, M.npages);
		end_call("finish: all shared");
		check_stats("finish");
		if (M.flags & GMEM_FLAG_MMAP) {
			uint8_t *v = NULL, b;

			CHECK_RET(gmem_mmap(M.g, 0, M.size, PROT_READ,
					    (void **)&v), 0, "finish: mmap");
			for (uint64_t p = 0; p < M.npages; p++) {
				if (M.poison[p])
					CHECK(probe(v + p * M.ps, false, &b) ==
					      SIGBUS, "poisoned page %llu",
					      (unsigned long long)p);
				else
					check_page(v + p * M.ps, p,
						   "a final view");
			}
			CHECK_RET(gmem_munmap(M.g, v, M.size), 0,
				  "finish: munmap");
		} else {
			for (uint64_t p = 0; p < M.npages; p++) {
				void *a = NULL;

				if (M.poison[p])
					continue;
				CHECK_RET(gmem_pin(M.g, p * M.ps, M.ps, &a),
					  0, "finish: pin");
				check_page(a, p, "a final pin");
				CHECK_RET(gmem_unpin(M.g, p * M.ps, M.ps), 0,
					  "finish: unpin");
			}
		}
	}
	begin_call();
	for (int k = 0; k < MAX_BINDINGS; k++)
		if (M.bind[k].b)
			unbind(k);
	for (int k = 0; k < MAX_LISTENERS; k++)
		if (M.lsn[k])
			lsn_unregister(k);
	for (uint64_t p = 0; p < M.npages; p++)
		while (M.upins[p]) {
			CHECK_RET(gmem_unpin(M.g, p * M.ps, M.ps), 0,
				  "finish: unpin");
			M.upins[p]--;
		}
	while (M.nviews) {
		struct mview *v = &M.views[--M.nviews];

		CHECK_RET(gmem_munmap(M.g, v->addr, v->len), 0,
			  "finish: munmap");
	}
	if (!M.closed)
		gmem_close(M.g);
	end_call("finish: release");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct gmem_create_args a = {
		.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
		.backend = GMEM_BACKEND_KVM, .vm_fd = -1,
	};
	struct gmem *g;

	(void)argc;
	(void)argv;
	M.ps = (uint64_t)sysconf(_SC_PAGESIZE);
	M.buf = malloc(3 * M.ps);
	trace = getenv("FUZZ_API_TRACE") != NULL;
	/* Can this machine make files on the kvm backend? */
	a.size = M.ps;
	if (!gmem_create(&a, &g)) {
		gmem_close(g);
		kvm_ok = true;
	}
	return M.buf ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct gmem_create_args args = { 0 };
	unsigned int b0 = get8(&in), b1 = get8(&in);
	int fds = count_fds(), ret;
	uint8_t *buf = M.buf;
	uint64_t ps = M.ps;

	memset(&M, 0, sizeof(M));
	M.ps = ps;
	M.buf = buf;
	ngrave = 0;
	M.flags = b0 & (GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);
	M.npages = b1 < 192 ? 1 + b1 % 16 : 130 + b1 % 64;
	M.size = M.npages * M.ps;
	if (b0 & 0x40) {	/* a bad create first: nothing happens */
		struct gmem *g = (struct gmem *)&M;
		unsigned int why = get8(&in) % 4;

		args.size = why == 0 ? M.size + 1 : why == 1 ? 0 : M.size;
		args.flags = why == 2 ? 1ULL << (3 + get8(&in) % 55) : 0;
		args.reserved[why == 3 ? get8(&in) % 6 : 0] = why == 3;
		CHECK_RET(gmem_create(&args, &g), -EINVAL, "bad create");
		CHECK(g == (struct gmem *)&M, "bad create wrote *out");
	}
	args = (struct gmem_create_args){ .size = M.size, .flags = M.flags };
	if ((b0 & 4) && kvm_ok) {
		args.backend = GMEM_BACKEND_KVM;
		args.vm_fd = -1;
	}
	ret = gmem_create(&args, &M.g);
	CHECK_RET(ret, 0, "create");
	M.priv = calloc(M.npages, 1);
	M.poison = calloc(M.npages, 1);
	M.upins = calloc(M.npages, sizeof(*M.upins));
	M.data = calloc(M.npages, M.ps);
	CHECK(M.priv && M.poison && M.upins && M.data, "out of memory");
	memset(M.priv, !(M.flags & GMEM_FLAG_INIT_SHARED), M.npages);
	check_stats("create");

	for (int n = 0; n < MAX_OPS && in.n; n++) {
		do_op(get8(&in) % NR_OPCODES, &in);
		if (M.closed && file_freed()) {
			M.g = NULL;
			break;
		}
		if (!M.closed)
			check_stats("after an operation");
	}
	if (M.g)
		finish();
	free(M.priv);
	free(M.poison);
	free(M.upins);
	free(M.data);
	for (int i = ngrave; i-- > 0;)
		free(graveyard[i]);
	CHECK(count_fds() == fds, "fds: %d, %d before", count_fds(), fds);
	CHECK(count_gmem_maps() == 0, "libgmem mappings left: %d",
	      count_gmem_maps());
	return 0;
}
