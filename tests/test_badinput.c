// SPDX-License-Identifier: MIT
/*
 * test_badinput.c - one table of bad inputs across every public function
 * (issue 7): each row is one call with one thing wrong (unaligned,
 * overflowing, past the end, zero, unknown flags or modes, non-zero
 * reserved fields, NULL, a closed handle where that is detectable) or a
 * documented refusal (-EAGAIN on a pin, -EFAULT, -EPERM, -EEXIST,
 * -EHWPOISON, a listener's veto), and the exact return value it must
 * give.  After every row nothing may have changed: gmem_stat() is
 * compared field by field (a listener's veto may add its own call to
 * listener_calls, nothing else), the attributes of every page, the
 * contents of every reachable page, the callbacks the owners received,
 * the process's fds and libgmem's mappings.  At the end every page is
 * made shared and its contents checked, private ones included, and
 * everything is released: fds and mappings as before the test.
 *
 * The files:
 *   f       16 pages: 0-7 shared, 8-15 private, each filled with its own
 *           byte; a view of it all; page 2 pinned; pages 7 and 15
 *           poisoned; a
 *           binding over 4-11 holding a shared reference on page 5 and a
 *           private one on page 9; a listener over 8-11 that can be told
 *           to refuse.
 *   other   4 pages with a view (a view that is not f's).
 *   nommap  4 pages without GMEM_FLAG_MMAP.
 *   closed  4 pages, closed while a view, a binding and a listener hold
 *           it: every call but the releases must be -EBADF.
 */
#include <linux/falloc.h>
#include <stdbool.h>
#include <sys/mman.h>

#include "gmem.h"
#include "harness.h"
#include "reliability.h"

#define NPAGES		16
#define PIN_PAGE	2
#define POISON_PAGE	7
#define POISON_PRIVATE	15
#define FIRST_PRIVATE	8
#define BIND_FIRST	4
#define BIND_PAGES	8
#define SHARED_REF	1	/* binding index: page 5 */
#define PRIVATE_REF	5	/* binding index: page 9 */
#define LSN_FIRST	8
#define LSN_PAGES	4
#define SMALL		4	/* pages of the other files */
#define MAX_ROWS	1024
#define NO_EO		UINT64_MAX

#define RW		(PROT_READ | PROT_WRITE)
#define PUNCH		(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)

enum fn {
	FN_CREATE, FN_CLOSE, FN_FALLOCATE, FN_MMAP, FN_MUNMAP, FN_SET_ATTR,
	FN_GET_ATTR, FN_PIN, FN_UNPIN, FN_POPULATE, FN_STAT, FN_BIND,
	FN_UNBIND, FN_GET_PFN, FN_PUT_PFN, FN_LSN_REGISTER,
	FN_LSN_UNREGISTER, FN_MEMORY_FAILURE, FN_KVM_MEMSLOT, NR_FN,
};

static const char *const fn_names[NR_FN] = {
	"gmem_create", "gmem_close", "gmem_fallocate", "gmem_mmap",
	"gmem_munmap", "gmem_set_attributes", "gmem_get_attributes",
	"gmem_pin", "gmem_unpin", "gmem_populate", "gmem_stat", "gmem_bind",
	"gmem_unbind", "gmem_get_pfn", "gmem_put_pfn",
	"gmem_listener_register", "gmem_listener_unregister",
	"gmem_memory_failure", "gmem_kvm_memslot",
};

/* The handle a row passes. */
enum obj { OBJ_F, OBJ_NULL, OBJ_CLOSED, OBJ_NOMMAP };

/* Which pointer argument a row passes as NULL (or broken). */
enum nul {
	NUL_NONE,
	NUL_OUT,	/* out/addr/attributes/st/pfn */
	NUL_IN,		/* create args, populate src, attributes, ops */
	NUL_CB1,	/* ops with invalidate / populate NULL */
	NUL_CB2,	/* listener ops with discard NULL */
	BAD_ADDR_INSIDE,	/* munmap: view + one page */
	BAD_ADDR_OTHER,		/* munmap: another file's view */
	BAD_ADDR_PIN,		/* munmap: the pin's address */
};

struct row {
	char what[96];
	enum fn fn;
	enum obj obj;
	enum nul nul;
	int want;		/* the exact return value */
	uint64_t off, len;	/* offset/size/index; create: vm_fd, size */
	uint64_t a, b;		/* mode, prot, attributes, flags... */
	int res;		/* 1 + index of a reserved field to set */
	uint64_t resv;
	uint64_t eo;		/* set_attributes error_offset, or NO_EO */
	uint64_t calls;		/* listener calls the row itself makes */
};

struct owner {
	atomic_long calls;
};

struct lsn {
	atomic_long calls;
	atomic_int refuse;
};

struct ctx {
	uint64_t ps, size;
	struct gmem *f, *other, *nommap, *closed;
	char *view, *other_view, *closed_view;
	void *pin;
	struct gmem_binding *b, *closed_b;
	struct gmem_listener *l, *closed_l;
	struct owner owner, closed_owner;
	struct lsn lsn, closed_lsn;
	struct gmem_stats st;
	uint64_t attrs[NPAGES];
	long owner_calls, closed_owner_calls, closed_lsn_calls;
	int fds, maps;
	unsigned char *expect;	/* NPAGES pages of expected contents */
	unsigned char *buf;	/* a source for populate */
	struct row rows[MAX_ROWS];
	int nrows;
};

static void on_invalidate(void *opaque, uint64_t off, uint64_t size,
			  unsigned int reason)
{
	struct owner *o = opaque;

	(void)off;
	(void)size;
	(void)reason;
	atomic_fetch_add(&o->calls, 1);
}

static int on_populate(void *opaque, uint64_t off, uint64_t size)
{
	struct lsn *l = opaque;

	(void)off;
	(void)size;
	atomic_fetch_add(&l->calls, 1);
	return atomic_load(&l->refuse) ? -ENOSPC : 0;
}

static void on_discard(void *opaque, uint64_t off, uint64_t size)
{
	struct lsn *l = opaque;

	(void)off;
	(void)size;
	atomic_fetch_add(&l->calls, 1);
}

static const struct gmem_binding_ops bops = { .invalidate = on_invalidate };
static const struct gmem_binding_ops bops_nocb = { .invalidate = NULL };
static const struct gmem_listener_ops lops = {
	.populate = on_populate, .discard = on_discard,
};
static const struct gmem_listener_ops lops_nopop = { .discard = on_discard };
static const struct gmem_listener_ops lops_nodis = { .populate = on_populate };

static unsigned char fill_byte(unsigned int page)
{
	return (unsigned char)(0x40 + page);
}

/* ---- the table ------------------------------------------------------ */

static struct row *add(struct ctx *c, enum fn fn, enum obj obj, int want,
		       const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static struct row *add(struct ctx *c, enum fn fn, enum obj obj, int want,
		       const char *fmt, ...)
{
	struct row *r;
	va_list ap;

	if (c->nrows == MAX_ROWS) {
		TH_LOG("MAX_ROWS too small");
		abort();
	}
	r = &c->rows[c->nrows++];
	memset(r, 0, sizeof(*r));
	r->fn = fn;
	r->obj = obj;
	r->want = want;
	r->eo = NO_EO;
	va_start(ap, fmt);
	vsnprintf(r->what, sizeof(r->what), fmt, ap);
	va_end(ap);
	return r;
}

/* Range rows shared by every function taking [offset, offset + len). */
static void add_ranges(struct ctx *c, enum fn fn, uint64_t a, uint64_t b,
		       const char *name)
{
	uint64_t ps = c->ps, end = c->size;
	const struct {
		const char *what;
		uint64_t off, len;
	} bad[] = {
		{ "zero length", 0, 0 },
		{ "unaligned offset", 1, ps },
		{ "offset a page - 1", ps - 1, ps },
		{ "unaligned length", 0, ps + 1 },
		{ "length a page - 1", 0, ps - 1 },
		{ "past the end", end - ps, 2 * ps },
		{ "offset at the end", end, ps },
		{ "offset past the end", 2 * end, ps },
		{ "offset + length overflows", -ps, 2 * ps },
		{ "huge length", ps, UINT64_MAX & ~(ps - 1) },
		{ "all ones", UINT64_MAX, UINT64_MAX },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct row *r = add(c, fn, OBJ_F, -EINVAL, "%s: %s", name,
				    bad[i].what);
		r->off = bad[i].off;
		r->len = bad[i].len;
		r->a = a;
		r->b = b;
	}
}

static void build_table(struct ctx *c)
{
	uint64_t ps = c->ps, end = c->size;
	struct row *r;

	/* gmem_create */
	r = add(c, FN_CREATE, OBJ_F, -EINVAL, "create: NULL args");
	r->nul = NUL_IN;
	r = add(c, FN_CREATE, OBJ_F, -EINVAL, "create: NULL out");
	r->nul = NUL_OUT;
	r->len = ps;
	{
		const struct {
			const char *what;
			uint64_t size;
		} sizes[] = {
			{ "size 0", 0 }, { "size 1", 1 },
			{ "size a page - 1", ps - 1 },
			{ "size a page + 1", ps + 1 },
			{ "size 2^63", 1ULL << 63 },
			{ "size all ones", UINT64_MAX },
			{ "size aligned all ones", UINT64_MAX & ~(ps - 1) },
		};

		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			r = add(c, FN_CREATE, OBJ_F, -EINVAL, "create: %s",
				sizes[i].what);
			r->len = sizes[i].size;
		}
	}
	for (unsigned int bit = 3; bit < 64; bit++) {
		r = add(c, FN_CREATE, OBJ_F, -EINVAL, "create: flag bit %u%s",
			bit, bit >= GMEM_HUGE_SHIFT ? " without HUGEPAGE" : "");
		r->len = ps;
		r->a = 1ULL << bit;
	}
	r = add(c, FN_CREATE, OBJ_F, -EINVAL,
		"create: HUGEPAGE, size not a huge page multiple");
	r->len = ps;
	r->a = GMEM_FLAG_HUGEPAGE;
	r = add(c, FN_CREATE, OBJ_F, -EINVAL,
		"create: HUGEPAGE with 4 MiB pages");
	r->len = 4ULL << 20;
	r->a = GMEM_FLAG_HUGEPAGE | 22ULL << GMEM_HUGE_SHIFT;
	r = add(c, FN_CREATE, OBJ_F, -EINVAL, "create: 2 MiB size field alone");
	r->len = 2ULL << 20;
	r->a = 21ULL << GMEM_HUGE_SHIFT;
	{
		const struct {
			const char *what;
			uint32_t backend;
			int32_t vm_fd;
		} be[] = {
			{ "backend 2", 2, 0 },
			{ "backend all ones", UINT32_MAX, 0 },
			{ "memfd backend with a vm_fd", GMEM_BACKEND_MEMFD, 5 },
			{ "memfd backend with vm_fd -1", GMEM_BACKEND_MEMFD,
			  -1 },
			{ "kvm backend with vm_fd -2", GMEM_BACKEND_KVM, -2 },
		};

		for (size_t i = 0; i < sizeof(be) / sizeof(be[0]); i++) {
			r = add(c, FN_CREATE, OBJ_F, -EINVAL, "create: %s",
				be[i].what);
			r->len = ps;
			r->b = be[i].backend;
			r->off = (uint64_t)(int64_t)be[i].vm_fd;
		}
	}
	for (int i = 0; i < 6; i++) {
		r = add(c, FN_CREATE, OBJ_F, -EINVAL, "create: reserved[%d]",
			i);
		r->len = ps;
		r->res = 1 + i;
		r->resv = i == 5 ? 1ULL << 63 : 1;
	}

	/* gmem_close: NULL, and a second close of a file still held */
	add(c, FN_CLOSE, OBJ_NULL, 0, "close: NULL");
	add(c, FN_CLOSE, OBJ_CLOSED, 0, "close: twice, while still held");

	/* gmem_fallocate */
	r = add(c, FN_FALLOCATE, OBJ_NULL, -EINVAL, "fallocate: NULL file");
	r->a = FALLOC_FL_KEEP_SIZE;
	r->len = ps;
	r = add(c, FN_FALLOCATE, OBJ_F, -EOPNOTSUPP, "fallocate: mode 0");
	r->len = ps;
	r = add(c, FN_FALLOCATE, OBJ_F, -EOPNOTSUPP,
		"fallocate: PUNCH_HOLE without KEEP_SIZE");
	r->a = FALLOC_FL_PUNCH_HOLE;
	r->len = ps;
	for (unsigned int bit = 2; bit < 32; bit++) {
		r = add(c, FN_FALLOCATE, OBJ_F, -EOPNOTSUPP,
			"fallocate: KEEP_SIZE | mode bit %u", bit);
		r->a = (uint64_t)(uint32_t)(FALLOC_FL_KEEP_SIZE | 1U << bit);
		r->len = ps;
		r = add(c, FN_FALLOCATE, OBJ_F, -EOPNOTSUPP,
			"fallocate: PUNCH | mode bit %u", bit);
		r->a = (uint64_t)(uint32_t)(PUNCH | 1U << bit);
		r->len = ps;
	}
	add_ranges(c, FN_FALLOCATE, FALLOC_FL_KEEP_SIZE, 0, "allocate");
	/* Punch rows: past the end is clipped, so only the malformed ones. */
	{
		const struct {
			const char *what;
			uint64_t off, len;
		} bad[] = {
			{ "zero length", 0, 0 }, { "unaligned offset", 1, ps },
			{ "unaligned length", 0, ps + 1 },
			{ "offset + length overflows", -ps, 2 * ps },
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			r = add(c, FN_FALLOCATE, OBJ_F, -EINVAL, "punch: %s",
				bad[i].what);
			r->a = PUNCH;
			r->off = bad[i].off;
			r->len = bad[i].len;
		}
	}
	r = add(c, FN_FALLOCATE, OBJ_F, 0,
		"punch: wholly past the end (no-op)");
	r->a = PUNCH;
	r->off = end;
	r->len = ps;
	r = add(c, FN_FALLOCATE, OBJ_CLOSED, -EBADF, "allocate: closed file");
	r->a = FALLOC_FL_KEEP_SIZE;
	r->len = ps;
	r = add(c, FN_FALLOCATE, OBJ_CLOSED, -EBADF, "punch: closed file");
	r->a = PUNCH;
	r->len = ps;

	/* gmem_mmap */
	r = add(c, FN_MMAP, OBJ_NULL, -EINVAL, "mmap: NULL file");
	r->len = ps;
	r->a = RW;
	r = add(c, FN_MMAP, OBJ_F, -EINVAL, "mmap: NULL addr");
	r->len = ps;
	r->a = RW;
	r->nul = NUL_OUT;
	r = add(c, FN_MMAP, OBJ_NOMMAP, -ENODEV, "mmap: no GMEM_FLAG_MMAP");
	r->len = ps;
	r->a = RW;
	r = add(c, FN_MMAP, OBJ_F, -EINVAL, "mmap: zero length");
	r->a = RW;
	r = add(c, FN_MMAP, OBJ_F, -EINVAL, "mmap: unaligned offset");
	r->off = 1;
	r->len = ps;
	r->a = RW;
	r = add(c, FN_MMAP, OBJ_F, -EINVAL, "mmap: offset + length overflows");
	r->off = UINT64_MAX & ~(ps - 1);
	r->len = 2 * ps;
	r->a = RW;
	r = add(c, FN_MMAP, OBJ_F, -EINVAL, "mmap: length SIZE_MAX");
	r->len = SIZE_MAX;
	r->a = RW;
	r = add(c, FN_MMAP, OBJ_F, -EINVAL, "mmap: offset 2^63");
	r->off = 1ULL << 63;
	r->len = ps;
	r->a = RW;
	for (unsigned int bit = 2; bit < 32; bit++) {
		r = add(c, FN_MMAP, OBJ_F, -EINVAL, "mmap: prot bit %u", bit);
		r->len = ps;
		r->a = (uint64_t)(uint32_t)(PROT_READ | 1U << bit);
	}
	r = add(c, FN_MMAP, OBJ_CLOSED, -EBADF, "mmap: closed file");
	r->len = ps;
	r->a = RW;

	/* gmem_munmap */
	r = add(c, FN_MUNMAP, OBJ_NULL, -EINVAL, "munmap: NULL file");
	r->len = end;
	r = add(c, FN_MUNMAP, OBJ_F, -EINVAL, "munmap: NULL addr");
	r->len = end;
	r->nul = NUL_IN;
	r = add(c, FN_MUNMAP, OBJ_F, -EINVAL, "munmap: zero length");
	r = add(c, FN_MUNMAP, OBJ_F, -EINVAL, "munmap: short length");
	r->len = end - ps;
	r = add(c, FN_MUNMAP, OBJ_F, -EINVAL, "munmap: long length");
	r->len = end + ps;
	r = add(c, FN_MUNMAP, OBJ_F, -EINVAL, "munmap: inside the view");
	r->len = end - ps;
	r->nul = BAD_ADDR_INSIDE;
	r = add(c, FN_MUNMAP, OBJ_F, -EINVAL, "munmap: another file's view");
	r->len = SMALL * ps;
	r->nul = BAD_ADDR_OTHER;
	r = add(c, FN_MUNMAP, OBJ_F, -EINVAL, "munmap: the pin's address");
	r->len = ps;
	r->nul = BAD_ADDR_PIN;
	r = add(c, FN_MUNMAP, OBJ_CLOSED, -EINVAL,
		"munmap: closed file, wrong length");
	r->len = ps;

	/* gmem_set_attributes */
	r = add(c, FN_SET_ATTR, OBJ_NULL, -EINVAL, "set_attributes: NULL file");
	r->len = ps;
	r = add(c, FN_SET_ATTR, OBJ_F, -EINVAL,
		"set_attributes: NULL attributes");
	r->nul = NUL_IN;
	add_ranges(c, FN_SET_ATTR, GMEM_ATTR_PRIVATE, 0, "to private");
	add_ranges(c, FN_SET_ATTR, 0, 0, "to shared");
	for (unsigned int bit = 0; bit < 64; bit++) {
		if (1ULL << bit == GMEM_ATTR_PRIVATE)
			continue;
		r = add(c, FN_SET_ATTR, OBJ_F, -EINVAL,
			"set_attributes: attribute bit %u", bit);
		r->len = ps;
		r->a = 1ULL << bit;
	}
	for (unsigned int bit = 1; bit < 64; bit++) {
		r = add(c, FN_SET_ATTR, OBJ_F, -EINVAL,
			"set_attributes: flag bit %u", bit);
		r->len = ps;
		r->a = GMEM_ATTR_PRIVATE;
		r->b = 1ULL << bit;
	}
	for (int i = 0; i < 3; i++) {
		r = add(c, FN_SET_ATTR, OBJ_F, -EINVAL,
			"set_attributes: reserved[%d]", i);
		r->len = ps;
		r->a = GMEM_ATTR_PRIVATE;
		r->res = 1 + i;
		r->resv = 1;
	}
	r = add(c, FN_SET_ATTR, OBJ_F, -EAGAIN,
		"set_attributes: to private over a pin");
	r->len = FIRST_PRIVATE * ps;
	r->a = GMEM_ATTR_PRIVATE;
	r->eo = PIN_PAGE * ps;
	r = add(c, FN_SET_ATTR, OBJ_F, -EAGAIN,
		"set_attributes: to private over a pin, waiting flag unset");
	r->off = PIN_PAGE * ps;
	r->len = ps;
	r->a = GMEM_ATTR_PRIVATE;
	r->eo = PIN_PAGE * ps;
	r = add(c, FN_SET_ATTR, OBJ_F, -EAGAIN,
		"set_attributes: to private over a shared pfn reference");
	r->off = BIND_FIRST * ps;
	r->len = 2 * ps;
	r->a = GMEM_ATTR_PRIVATE;
	r->eo = (BIND_FIRST + SHARED_REF) * ps;
	r = add(c, FN_SET_ATTR, OBJ_F, -ENOSPC,
		"set_attributes: to shared refused by a listener");
	r->off = (LSN_FIRST + 2) * ps;
	r->len = ps;
	r->eo = (LSN_FIRST + 2) * ps;
	r->calls = 1;		/* the refusal; no owner is invalidated */
	r = add(c, FN_SET_ATTR, OBJ_F, 0,
		"set_attributes: to private, already private (no-op)");
	r->off = FIRST_PRIVATE * ps;
	r->len = (NPAGES - FIRST_PRIVATE) * ps;
	r->a = GMEM_ATTR_PRIVATE;
	r = add(c, FN_SET_ATTR, OBJ_F, 0,
		"set_attributes: to shared, already shared (no-op)");
	r->len = FIRST_PRIVATE * ps;
	r = add(c, FN_SET_ATTR, OBJ_CLOSED, -EBADF,
		"set_attributes: closed file");
	r->len = ps;
	r->a = GMEM_ATTR_PRIVATE;

	/* gmem_get_attributes */
	r = add(c, FN_GET_ATTR, OBJ_NULL, -EINVAL, "get_attributes: NULL file");
	r = add(c, FN_GET_ATTR, OBJ_F, -EINVAL,
		"get_attributes: NULL attributes");
	r->nul = NUL_OUT;
	{
		const struct {
			const char *what;
			uint64_t off;
		} bad[] = {
			{ "unaligned offset", 1 },
			{ "offset a page - 1", ps - 1 },
			{ "offset at the end", end },
			{ "offset past the end", end + ps },
			{ "offset all ones", UINT64_MAX },
			{ "offset aligned all ones", UINT64_MAX & ~(ps - 1) },
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			r = add(c, FN_GET_ATTR, OBJ_F, -EINVAL,
				"get_attributes: %s", bad[i].what);
			r->off = bad[i].off;
		}
	}
	r = add(c, FN_GET_ATTR, OBJ_CLOSED, -EBADF,
		"get_attributes: closed file");

	/* gmem_pin, gmem_unpin */
	r = add(c, FN_PIN, OBJ_NULL, -EINVAL, "pin: NULL file");
	r->len = ps;
	r = add(c, FN_PIN, OBJ_F, -EINVAL, "pin: NULL addr");
	r->len = ps;
	r->nul = NUL_OUT;
	add_ranges(c, FN_PIN, 0, 0, "pin");
	r = add(c, FN_PIN, OBJ_F, -EFAULT, "pin: a private page");
	r->off = FIRST_PRIVATE * ps;
	r->len = ps;
	r = add(c, FN_PIN, OBJ_F, -EFAULT, "pin: shared then private pages");
	r->off = (FIRST_PRIVATE - 1) * ps;
	r->len = 2 * ps;
	r = add(c, FN_PIN, OBJ_F, -EHWPOISON, "pin: a poisoned page");
	r->off = POISON_PAGE * ps;
	r->len = ps;
	r = add(c, FN_PIN, OBJ_CLOSED, -EBADF, "pin: closed file");
	r->len = ps;
	r = add(c, FN_UNPIN, OBJ_NULL, -EINVAL, "unpin: NULL file");
	r->off = PIN_PAGE * ps;
	r->len = ps;
	add_ranges(c, FN_UNPIN, 0, 0, "unpin");
	r = add(c, FN_UNPIN, OBJ_F, -EINVAL, "unpin: a page never pinned");
	r->len = ps;
	r = add(c, FN_UNPIN, OBJ_F, -EINVAL,
		"unpin: a pinned and an unpinned page");
	r->off = PIN_PAGE * ps;
	r->len = 2 * ps;
	r = add(c, FN_UNPIN, OBJ_F, -EINVAL,
		"unpin: an unpinned and a pinned page");
	r->off = (PIN_PAGE - 1) * ps;
	r->len = 2 * ps;
	r = add(c, FN_UNPIN, OBJ_F, -EINVAL,
		"unpin: a page held only by a shared pfn reference");
	r->off = (BIND_FIRST + SHARED_REF) * ps;
	r->len = ps;
	r = add(c, FN_UNPIN, OBJ_CLOSED, -EINVAL,
		"unpin: closed file, a page never pinned");
	r->len = ps;

	/* gmem_populate */
	r = add(c, FN_POPULATE, OBJ_NULL, -EINVAL, "populate: NULL file");
	r->off = FIRST_PRIVATE * ps;
	r->len = 8;
	r = add(c, FN_POPULATE, OBJ_F, -EINVAL, "populate: NULL source");
	r->off = FIRST_PRIVATE * ps;
	r->len = 8;
	r->nul = NUL_IN;
	{
		const struct {
			const char *what;
			uint64_t off, len;
		} bad[] = {
			{ "zero length", FIRST_PRIVATE * ps, 0 },
			{ "unaligned offset", FIRST_PRIVATE * ps + 1, 8 },
			{ "past the end", end - ps, ps + 1 },
			{ "offset at the end", end, 8 },
			{ "offset + length overflows", FIRST_PRIVATE * ps,
			  SIZE_MAX },
			{ "offset past the end", 2 * end, 8 },
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			r = add(c, FN_POPULATE, OBJ_F, -EINVAL, "populate: %s",
				bad[i].what);
			r->off = bad[i].off;
			r->len = bad[i].len;
		}
	}
	r = add(c, FN_POPULATE, OBJ_F, -EPERM, "populate: a shared first page");
	r->len = 2 * ps;
	r = add(c, FN_POPULATE, OBJ_F, -EHWPOISON,
		"populate: a poisoned first page");
	r->off = POISON_PRIVATE * ps;
	r->len = 8;
	r = add(c, FN_POPULATE, OBJ_CLOSED, -EBADF, "populate: closed file");
	r->len = 8;

	/* gmem_stat */
	r = add(c, FN_STAT, OBJ_NULL, -EINVAL, "stat: NULL file");
	r->len = sizeof(struct gmem_stats);
	r = add(c, FN_STAT, OBJ_F, -EINVAL, "stat: NULL buffer");
	r->len = sizeof(struct gmem_stats);
	r->nul = NUL_OUT;
	r = add(c, FN_STAT, OBJ_F, -EINVAL, "stat: size one too big");
	r->len = sizeof(struct gmem_stats) + 1;
	r = add(c, FN_STAT, OBJ_F, -EINVAL, "stat: size SIZE_MAX");
	r->len = SIZE_MAX;
	r = add(c, FN_STAT, OBJ_CLOSED, -EBADF, "stat: closed file");
	r->len = sizeof(struct gmem_stats);

	/* gmem_bind, gmem_unbind */
	r = add(c, FN_BIND, OBJ_NULL, -EINVAL, "bind: NULL file");
	r->len = ps;
	r = add(c, FN_BIND, OBJ_F, -EINVAL, "bind: NULL ops");
	r->len = ps;
	r->nul = NUL_IN;
	r = add(c, FN_BIND, OBJ_F, -EINVAL, "bind: NULL invalidate");
	r->len = ps;
	r->nul = NUL_CB1;
	r = add(c, FN_BIND, OBJ_F, -EINVAL, "bind: NULL out");
	r->len = ps;
	r->nul = NUL_OUT;
	add_ranges(c, FN_BIND, 0, 0, "bind");
	r = add(c, FN_BIND, OBJ_F, -EEXIST, "bind: overlaps the start");
	r->len = (BIND_FIRST + 1) * ps;
	r = add(c, FN_BIND, OBJ_F, -EEXIST, "bind: overlaps the end");
	r->off = (BIND_FIRST + BIND_PAGES - 1) * ps;
	r->len = 2 * ps;
	r = add(c, FN_BIND, OBJ_F, -EEXIST, "bind: inside a binding");
	r->off = (BIND_FIRST + 1) * ps;
	r->len = ps;
	r = add(c, FN_BIND, OBJ_F, -EEXIST, "bind: around a binding");
	r->len = end;
	r = add(c, FN_BIND, OBJ_CLOSED, -EBADF, "bind: closed file");
	r->len = ps;
	add(c, FN_UNBIND, OBJ_NULL, -EINVAL, "unbind: NULL binding");

	/* gmem_get_pfn, gmem_put_pfn */
	r = add(c, FN_GET_PFN, OBJ_NULL, -EINVAL, "get_pfn: NULL binding");
	r = add(c, FN_GET_PFN, OBJ_F, -EINVAL, "get_pfn: NULL pfn");
	r->nul = NUL_OUT;
	r = add(c, FN_GET_PFN, OBJ_F, -EINVAL, "get_pfn: index at the end");
	r->off = BIND_PAGES;
	r = add(c, FN_GET_PFN, OBJ_F, -EINVAL, "get_pfn: index all ones");
	r->off = UINT64_MAX;
	r = add(c, FN_GET_PFN, OBJ_F, -EINVAL, "get_pfn: access 2");
	r->a = 2;
	r = add(c, FN_GET_PFN, OBJ_F, -EINVAL, "get_pfn: access all ones");
	r->a = UINT32_MAX;
	r = add(c, FN_GET_PFN, OBJ_F, -EFAULT,
		"get_pfn: private access to a shared page");
	r->a = GMEM_ACCESS_PRIVATE;
	r = add(c, FN_GET_PFN, OBJ_F, -EFAULT,
		"get_pfn: shared access to a private page");
	r->off = BIND_PAGES - 1;
	r->a = GMEM_ACCESS_SHARED;
	r = add(c, FN_GET_PFN, OBJ_F, -EHWPOISON, "get_pfn: a poisoned page");
	r->off = POISON_PAGE - BIND_FIRST;
	r = add(c, FN_GET_PFN, OBJ_CLOSED, -EBADF, "get_pfn: closed file");
	r = add(c, FN_PUT_PFN, OBJ_NULL, -EINVAL, "put_pfn: NULL binding");
	r->off = SHARED_REF;
	r = add(c, FN_PUT_PFN, OBJ_F, -EINVAL, "put_pfn: index at the end");
	r->off = BIND_PAGES;
	r = add(c, FN_PUT_PFN, OBJ_F, -EINVAL, "put_pfn: access 2");
	r->off = SHARED_REF;
	r->a = 2;
	r = add(c, FN_PUT_PFN, OBJ_F, -EINVAL, "put_pfn: no reference");
	/* A private put is never refused: private references are not
	 * counted (gmem_bind(3)). */
	r = add(c, FN_PUT_PFN, OBJ_F, -EINVAL,
		"put_pfn: shared, the reference is private");
	r->off = PRIVATE_REF;
	r->a = GMEM_ACCESS_SHARED;
	r = add(c, FN_PUT_PFN, OBJ_CLOSED, -EINVAL,
		"put_pfn: closed file, no reference");

	/* gmem_listener_register, gmem_listener_unregister */
	r = add(c, FN_LSN_REGISTER, OBJ_NULL, -EINVAL,
		"listener_register: NULL file");
	r->len = ps;
	r = add(c, FN_LSN_REGISTER, OBJ_F, -EINVAL,
		"listener_register: NULL ops");
	r->len = ps;
	r->nul = NUL_IN;
	r = add(c, FN_LSN_REGISTER, OBJ_F, -EINVAL,
		"listener_register: NULL populate");
	r->len = ps;
	r->nul = NUL_CB1;
	r = add(c, FN_LSN_REGISTER, OBJ_F, -EINVAL,
		"listener_register: NULL discard");
	r->len = ps;
	r->nul = NUL_CB2;
	r = add(c, FN_LSN_REGISTER, OBJ_F, -EINVAL,
		"listener_register: NULL out");
	r->len = ps;
	r->nul = NUL_OUT;
	add_ranges(c, FN_LSN_REGISTER, 0, 0, "listener_register");
	r = add(c, FN_LSN_REGISTER, OBJ_F, -ENOSPC,
		"listener_register: replay refused");
	r->len = 4 * ps;
	r->calls = 1;
	r = add(c, FN_LSN_REGISTER, OBJ_CLOSED, -EBADF,
		"listener_register: closed file");
	r->len = ps;
	add(c, FN_LSN_UNREGISTER, OBJ_NULL, -EINVAL,
	    "listener_unregister: NULL listener");

	/* gmem_memory_failure */
	r = add(c, FN_MEMORY_FAILURE, OBJ_NULL, -EINVAL,
		"memory_failure: NULL file");
	{
		const struct {
			const char *what;
			uint64_t off;
		} bad[] = {
			{ "unaligned offset", 1 },
			{ "offset a page - 1", ps - 1 },
			{ "offset at the end", end },
			{ "offset past the end", 2 * end },
			{ "offset aligned all ones", UINT64_MAX & ~(ps - 1) },
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			r = add(c, FN_MEMORY_FAILURE, OBJ_F, -EINVAL,
				"memory_failure: %s", bad[i].what);
			r->off = bad[i].off;
		}
	}
	r = add(c, FN_MEMORY_FAILURE, OBJ_F, 0,
		"memory_failure: a poisoned page again (no-op)");
	r->off = POISON_PAGE * ps;
	r = add(c, FN_MEMORY_FAILURE, OBJ_CLOSED, -EBADF,
		"memory_failure: closed file");

	/* gmem_kvm_memslot: the files here are on the memfd backend */
	add(c, FN_KVM_MEMSLOT, OBJ_NULL, -EINVAL, "kvm_memslot: NULL file");
	r = add(c, FN_KVM_MEMSLOT, OBJ_F, -EINVAL, "kvm_memslot: NULL fd");
	r->nul = NUL_OUT;
	r = add(c, FN_KVM_MEMSLOT, OBJ_F, -EINVAL,
		"kvm_memslot: NULL address");
	r->nul = NUL_IN;
	add(c, FN_KVM_MEMSLOT, OBJ_F, -EOPNOTSUPP,
	    "kvm_memslot: not the kvm backend");
	add(c, FN_KVM_MEMSLOT, OBJ_CLOSED, -EBADF, "kvm_memslot: closed file");
}

/* ---- calling a row -------------------------------------------------- */

static struct gmem *file_of(struct ctx *c, enum obj obj)
{
	switch (obj) {
	case OBJ_F:
		return c->f;
	case OBJ_CLOSED:
		return c->closed;
	case OBJ_NOMMAP:
		return c->nommap;
	default:
		return NULL;
	}
}

static struct gmem_binding *binding_of(struct ctx *c, enum obj obj)
{
	return obj == OBJ_F ? c->b : obj == OBJ_CLOSED ? c->closed_b : NULL;
}

/* Whatever a row that wrongly succeeded created, released again. */
static void undo_success(struct ctx *c, const struct row *r, void *made)
{
	switch (r->fn) {
	case FN_CREATE:
		gmem_close(made);
		break;
	case FN_MMAP:
		gmem_munmap(file_of(c, r->obj), made, (size_t)r->len);
		break;
	case FN_PIN:
		gmem_unpin(file_of(c, r->obj), r->off, r->len);
		break;
	case FN_UNPIN:	/* the pin it dropped, back (the count matters) */
		gmem_pin(file_of(c, r->obj), r->off, r->len, &made);
		break;
	case FN_BIND:
		gmem_unbind(made);
		break;
	case FN_LSN_REGISTER:
		gmem_listener_unregister(made);
		break;
	default:
		break;
	}
}

static int call(struct ctx *c, const struct row *r, void **made)
{
	static struct gmem *const sentinel = (struct gmem *)(uintptr_t)0x5a5a;
	struct gmem *g = file_of(c, r->obj);
	struct gmem_binding *b = binding_of(c, r->obj);
	struct gmem_stats st;
	struct gmem_pfn pfn;
	uint64_t attr, run;
	void *out = sentinel;
	int ret;

	*made = NULL;
	switch (r->fn) {
	case FN_CREATE: {
		struct gmem_create_args a = {
			.size = r->len, .flags = r->a,
			.backend = (uint32_t)r->b, .vm_fd = (int32_t)r->off,
		};

		if (r->res)
			a.reserved[r->res - 1] = r->resv;
		ret = gmem_create(r->nul == NUL_IN ? NULL : &a,
				  r->nul == NUL_OUT ? NULL :
				  (struct gmem **)&out);
		if (!ret)
			*made = out;
		else if (out != sentinel)
			ret = -12345;	/* *out written on failure */
		return ret;
	}
	case FN_CLOSE:
		gmem_close(g);
		return 0;
	case FN_FALLOCATE:
		return gmem_fallocate(g, (int)(uint32_t)r->a, r->off, r->len);
	case FN_MMAP:
		ret = gmem_mmap(g, r->off, (size_t)r->len, (int)(uint32_t)r->a,
				r->nul == NUL_OUT ? NULL : &out);
		if (!ret)
			*made = out;
		return ret;
	case FN_MUNMAP: {
		void *addr = c->view;

		if (r->obj == OBJ_CLOSED)
			addr = c->closed_view;
		if (r->nul == NUL_IN)
			addr = NULL;
		else if (r->nul == BAD_ADDR_INSIDE)
			addr = c->view + c->ps;
		else if (r->nul == BAD_ADDR_OTHER)
			addr = c->other_view;
		else if (r->nul == BAD_ADDR_PIN)
			addr = c->pin;
		return gmem_munmap(g, addr, (size_t)r->len);
	}
	case FN_SET_ATTR: {
		struct gmem_attributes a = {
			.offset = r->off, .size = r->len,
			.attributes = r->a, .flags = r->b,
			.error_offset = 0x77,
		};

		if (r->res)
			a.reserved[r->res - 1] = r->resv;
		if (r->calls)
			atomic_store(&c->lsn.refuse, 1);
		ret = gmem_set_attributes(g, r->nul == NUL_IN ? NULL : &a);
		atomic_store(&c->lsn.refuse, 0);
		if (r->eo != NO_EO && a.error_offset != r->eo) {
			TH_LOG("%s: error_offset %#llx, want %#llx", r->what,
			       (unsigned long long)a.error_offset,
			       (unsigned long long)r->eo);
			ret = -12346;
		}
		return ret;
	}
	case FN_GET_ATTR:
		return gmem_get_attributes(g, r->off,
					   r->nul == NUL_OUT ? NULL : &attr,
					   &run);
	case FN_PIN:
		ret = gmem_pin(g, r->off, r->len, r->nul == NUL_OUT ? NULL :
			       &out);
		if (!ret)
			*made = out;
		return ret;
	case FN_UNPIN:
		return gmem_unpin(g, r->off, r->len);
	case FN_POPULATE: {
		ssize_t n = gmem_populate(g, r->off, r->nul == NUL_IN ? NULL :
					  c->buf, (size_t)r->len);

		return n > 0 ? 1 : (int)n;
	}
	case FN_STAT:
		return gmem_stat(g, r->nul == NUL_OUT ? NULL : &st,
				 (size_t)r->len);
	case FN_BIND: {
		const struct gmem_binding_ops *ops = &bops;

		if (r->nul == NUL_IN)
			ops = NULL;
		else if (r->nul == NUL_CB1)
			ops = &bops_nocb;
		ret = gmem_bind(g, r->off, r->len, ops, &c->owner,
				r->nul == NUL_OUT ? NULL :
				(struct gmem_binding **)&out);
		if (!ret)
			*made = out;
		return ret;
	}
	case FN_UNBIND:
		return gmem_unbind(NULL);
	case FN_GET_PFN:
		ret = gmem_get_pfn(b, r->off, (unsigned int)r->a,
				   r->nul == NUL_OUT ? NULL : &pfn);
		if (!ret)	/* give the wrongly taken reference back */
			gmem_put_pfn(b, r->off, (unsigned int)r->a);
		return ret;
	case FN_PUT_PFN:
		return gmem_put_pfn(b, r->off, (unsigned int)r->a);
	case FN_LSN_REGISTER: {
		const struct gmem_listener_ops *ops = &lops;

		if (r->nul == NUL_IN)
			ops = NULL;
		else if (r->nul == NUL_CB1)
			ops = &lops_nopop;
		else if (r->nul == NUL_CB2)
			ops = &lops_nodis;
		if (r->calls)
			atomic_store(&c->lsn.refuse, 1);
		ret = gmem_listener_register(g, r->off, r->len, ops, &c->lsn,
				r->nul == NUL_OUT ? NULL :
				(struct gmem_listener **)&out);
		atomic_store(&c->lsn.refuse, 0);
		if (!ret)
			*made = out;
		return ret;
	}
	case FN_LSN_UNREGISTER:
		return gmem_listener_unregister(NULL);
	case FN_MEMORY_FAILURE:
		return gmem_memory_failure(g, r->off);
	case FN_KVM_MEMSLOT: {
		int fd = -1;

		ret = gmem_kvm_memslot(g, r->nul == NUL_OUT ? NULL : &fd,
				       r->nul == NUL_IN ? NULL : &out);
		if (!ret)
			*made = out;
		else if (fd != -1 || out != sentinel)
			ret = -12347;	/* an output written on failure */
		return ret;
	}
	default:
		return -ENOSYS;
	}
}

/* ---- the state that must not change --------------------------------- */

static void snapshot(struct ctx *c)
{
	ASSERT_EQ(gmem_stat(c->f, &c->st, sizeof(c->st)), 0);
	for (unsigned int i = 0; i < NPAGES; i++)
		ASSERT_EQ(gmem_get_attributes(c->f, i * c->ps, &c->attrs[i],
					      NULL), 0);
	c->owner_calls = atomic_load(&c->owner.calls);
	c->closed_owner_calls = atomic_load(&c->closed_owner.calls);
	c->closed_lsn_calls = atomic_load(&c->closed_lsn.calls);
	c->fds = gt_count_fds();
	c->maps = gt_count_gmem_maps();
}

/* 0 if nothing changed since snapshot() (but listener calls made). */
static int unchanged(struct ctx *c, const struct row *r)
{
	struct gmem_stats st;
	uint64_t attr;
	int bad = 0;

#define DIFF(cond, fmt, ...)						\
	do {								\
		if (cond) {						\
			TH_LOG("%s: " fmt, r->what, __VA_ARGS__);	\
			bad = 1;					\
		}							\
	} while (0)

	DIFF(gmem_stat(c->f, &st, sizeof(st)), "%s", "stat failed");
	st.listener_calls -= r->calls;
	if (memcmp(&st, &c->st, sizeof(st))) {
		const uint64_t *x = (const uint64_t *)&c->st;
		const uint64_t *y = (const uint64_t *)&st;

		for (size_t i = 0; i < sizeof(st) / 8; i++)
			DIFF(x[i] != y[i], "stats field %zu: %llu -> %llu", i,
			     (unsigned long long)x[i],
			     (unsigned long long)y[i]);
	}
	for (unsigned int i = 0; i < NPAGES; i++)
		DIFF(gmem_get_attributes(c->f, i * c->ps, &attr, NULL) ||
		     attr != c->attrs[i], "page %u attributes", i);
	/* Every shared page that is not poisoned reads as it should. */
	for (unsigned int i = 0; i < FIRST_PRIVATE; i++) {
		uint8_t v;

		if (i == POISON_PAGE)
			continue;
		DIFF(harness_probe_read_u8(c->view + i * c->ps, &v) ||
		     memcmp(c->view + i * c->ps, c->expect + i * c->ps,
			    c->ps), "page %u contents", i);
	}
	for (unsigned int i = FIRST_PRIVATE; i < NPAGES; i++)
		DIFF(harness_probe(c->view + i * c->ps, 0, NULL) != SIGBUS,
		     "private page %u readable", i);
	DIFF(harness_probe(c->view + POISON_PAGE * c->ps, 0, NULL) != SIGBUS,
	     "%s", "poisoned page readable");
	DIFF(memcmp(c->pin, c->expect + PIN_PAGE * c->ps, c->ps),
	     "%s", "pinned page contents");
	DIFF(c->closed_view[0] != 'c' || c->closed_view[SMALL * c->ps - 1] !=
	     'c', "%s", "closed file's view contents");
	DIFF(atomic_load(&c->owner.calls) != c->owner_calls,
	     "%s", "binding invalidated");
	DIFF(atomic_load(&c->closed_owner.calls) != c->closed_owner_calls,
	     "%s", "closed file's binding invalidated");
	DIFF(atomic_load(&c->closed_lsn.calls) != c->closed_lsn_calls,
	     "%s", "closed file's listener called");
	DIFF(gt_count_fds() != c->fds, "%s", "fd count changed");
	DIFF(gt_count_gmem_maps() != c->maps, "%s",
	     "libgmem mappings changed");
#undef DIFF
	return bad;
}

/* ---- setup ---------------------------------------------------------- */

static struct gmem *create(uint64_t pages, uint64_t flags)
{
	struct gmem_create_args a = { .size = pages * gt_page_size(),
				      .flags = flags };
	struct gmem *g = NULL;

	ASSERT_EQ(gmem_create(&a, &g), 0);
	return g;
}

static void setup(struct ctx *c)
{
	struct gmem_pfn pfn;
	uint64_t ps = c->ps;

	c->size = NPAGES * ps;
	c->expect = calloc(NPAGES, ps);
	c->buf = calloc(2, ps);
	ASSERT_NONNULL(c->expect);
	ASSERT_NONNULL(c->buf);
	memset(c->buf, 0xee, 2 * ps);

	c->f = create(NPAGES, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);
	ASSERT_EQ(gmem_mmap(c->f, 0, c->size, RW, (void **)&c->view), 0);
	for (unsigned int i = 0; i < NPAGES; i++) {
		memset(c->expect + i * ps, fill_byte(i), ps);
		memcpy(c->view + i * ps, c->expect + i * ps, ps);
	}
	ASSERT_EQ(gt_convert(c->f, FIRST_PRIVATE * ps,
			     (NPAGES - FIRST_PRIVATE) * ps, 1, 0, NULL), 0);
	ASSERT_EQ(gmem_pin(c->f, PIN_PAGE * ps, ps, &c->pin), 0);
	ASSERT_EQ(gmem_bind(c->f, BIND_FIRST * ps, BIND_PAGES * ps, &bops,
			    &c->owner, &c->b), 0);
	ASSERT_EQ(gmem_get_pfn(c->b, SHARED_REF, GMEM_ACCESS_SHARED, &pfn), 0);
	ASSERT_EQ(gmem_get_pfn(c->b, PRIVATE_REF, GMEM_ACCESS_PRIVATE, &pfn),
		  0);
	ASSERT_EQ(*(unsigned char *)pfn.addr,
		  fill_byte(BIND_FIRST + PRIVATE_REF));
	ASSERT_EQ(gmem_memory_failure(c->f, POISON_PAGE * ps), 0);
	ASSERT_EQ(gmem_memory_failure(c->f, POISON_PRIVATE * ps), 0);
	ASSERT_EQ(gmem_listener_register(c->f, LSN_FIRST * ps, LSN_PAGES * ps,
					 &lops, &c->lsn, &c->l), 0);

	c->other = create(SMALL, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);
	ASSERT_EQ(gmem_mmap(c->other, 0, SMALL * ps, RW,
			    (void **)&c->other_view), 0);
	c->nommap = create(SMALL, GMEM_FLAG_INIT_SHARED);

	c->closed = create(SMALL, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);
	ASSERT_EQ(gmem_mmap(c->closed, 0, SMALL * ps, RW,
			    (void **)&c->closed_view), 0);
	memset(c->closed_view, 'c', SMALL * ps);
	ASSERT_EQ(gmem_bind(c->closed, 0, SMALL * ps, &bops, &c->closed_owner,
			    &c->closed_b), 0);
	ASSERT_EQ(gmem_listener_register(c->closed, 0, SMALL * ps, &lops,
					 &c->closed_lsn, &c->closed_l), 0);
	gmem_close(c->closed);
	/* Closing while bound invalidates the owner once (RELEASE). */
	ASSERT_EQ(atomic_load(&c->closed_owner.calls), 1);
}

/* Everything private becomes shared and reads back; all released. */
static void finish(struct ctx *c)
{
	uint64_t ps = c->ps;
	uint8_t v;

	ASSERT_EQ(gmem_put_pfn(c->b, SHARED_REF, GMEM_ACCESS_SHARED), 0);
	ASSERT_EQ(gmem_put_pfn(c->b, PRIVATE_REF, GMEM_ACCESS_PRIVATE), 0);
	ASSERT_EQ(gmem_unbind(c->b), 0);
	ASSERT_EQ(gmem_listener_unregister(c->l), 0);
	ASSERT_EQ(gmem_unpin(c->f, PIN_PAGE * ps, ps), 0);
	ASSERT_EQ(gt_convert(c->f, 0, c->size, 0, 0, NULL), 0);
	for (unsigned int i = 0; i < NPAGES; i++) {
		if (i == POISON_PAGE || i == POISON_PRIVATE)
			continue;
		ASSERT_EQ(harness_probe_read_u8(c->view + i * ps, &v), 0);
		if (memcmp(c->view + i * ps, c->expect + i * ps, ps))
			TH_LOG("page %u lost its contents", i);
		ASSERT_EQ(memcmp(c->view + i * ps, c->expect + i * ps, ps), 0);
	}
	ASSERT_SIGBUS(c->view + POISON_PAGE * ps, 0);
	ASSERT_SIGBUS(c->view + POISON_PRIVATE * ps, 1);
	ASSERT_EQ(gmem_fallocate(c->f, PUNCH, POISON_PAGE * ps, ps), 0);
	ASSERT_EQ(gmem_fallocate(c->f, PUNCH, POISON_PRIVATE * ps, ps), 0);
	ASSERT_EQ(harness_probe_read_u8(c->view + POISON_PAGE * ps, &v), 0);
	ASSERT_EQ(v, 0);
	ASSERT_EQ(harness_probe_read_u8(c->view + POISON_PRIVATE * ps, &v), 0);
	ASSERT_EQ(v, 0);

	ASSERT_EQ(gmem_munmap(c->f, c->view, c->size), 0);
	gmem_close(c->f);
	ASSERT_EQ(gmem_munmap(c->other, c->other_view, SMALL * ps), 0);
	gmem_close(c->other);
	gmem_close(c->nommap);
	/* The releases that still work after close free the closed file. */
	ASSERT_EQ(gmem_listener_unregister(c->closed_l), 0);
	ASSERT_EQ(gmem_unbind(c->closed_b), 0);
	ASSERT_EQ(gmem_munmap(c->closed, c->closed_view, SMALL * ps), 0);
	free(c->expect);
	free(c->buf);
}

TEST_T(bad_input_table, 120)
{
	struct ctx *c = calloc(1, sizeof(*c));
	int fds0, maps0, failed = 0;
	unsigned int per_fn[NR_FN] = { 0 };

	ASSERT_NONNULL(c);
	c->ps = gt_page_size();
	/* Warm up what the checks themselves use (stdio, the probe). */
	TH_LOG("warm-up: %d fds, %d libgmem mappings", gt_count_fds(),
	       gt_count_gmem_maps());
	fds0 = gt_count_fds();
	maps0 = gt_count_gmem_maps();
	ASSERT_EQ(maps0, 0);

	setup(c);
	build_table(c);
	snapshot(c);
	for (int i = 0; i < c->nrows; i++) {
		const struct row *r = &c->rows[i];
		void *made;
		int ret = call(c, r, &made);

		per_fn[r->fn]++;
		if (ret != r->want) {
			TH_LOG("%s: returned %d, want %d", r->what, ret,
			       r->want);
			failed++;
			if (!ret)
				undo_success(c, r, made);
		}
		if (unchanged(c, r)) {
			failed++;
			snapshot(c);	/* report each change once */
		} else {
			c->st.listener_calls += r->calls; /* the veto's call */
		}
	}
	for (int f = 0; f < NR_FN; f++) {
		TH_LOG("%-26s %3u cases", fn_names[f], per_fn[f]);
		EXPECT_GT(per_fn[f], 0);
	}
	TH_LOG("%d bad-input cases, %d failed", c->nrows, failed);
	ASSERT_EQ(failed, 0);

	finish(c);
	free(c);
	/* Every fd and mapping libgmem made is gone. */
	ASSERT_EQ(gt_count_fds(), fds0);
	ASSERT_EQ(gt_count_gmem_maps(), 0);
}
