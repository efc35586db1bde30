// SPDX-License-Identifier: MIT
/*
 * test_lifetime.c - what gmem_close() does while views and pins still
 * hold the file, and that nothing leaks once everything is released.
 *
 *  - after gmem_close() every call but gmem_munmap()/gmem_unpin() is
 *    -EBADF (each call is shown to succeed before the close);
 *  - the memory outlives the handle: data written before the close reads
 *    back through the view, private pages still raise SIGBUS, in both view
 *    guard modes; the last gmem_munmap() or gmem_unpin() frees the file;
 *  - a second gmem_close() while the file is held does nothing;
 *  - the same with pins instead of views;
 *  - no fd and no mapping leaks, whatever the order of release, with
 *    three views (uffd and vma mode) and a pin;
 *  - gmem_munmap() with a wrong address or length, another file's view,
 *    the pin's address, or twice: -EINVAL, the view left intact;
 *  - gmem_close() from an invalidate or a discard callback closes the
 *    file once the call that ran the callback is done with it: that call
 *    completes, owners are told RELEASE, and nothing leaks.
 */
#include <linux/falloc.h>
#include <stdbool.h>

#include <gmem.h>

#include "harness.h"
#include "gmem_test.h"

#define RW	(PROT_READ | PROT_WRITE)
#define PUNCH	(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)

static uint64_t ps;

static void __attribute__((constructor)) init_page_size(void)
{
	ps = (uint64_t)getpagesize();
}

/* Call GMEM_TEST_REQUIRE_BACKEND() first. */
static struct gmem *create(uint64_t pages, uint64_t flags)
{
	struct gmem_create_args args = { .size = pages * ps, .flags = flags };
	struct gmem *g = NULL;

	ASSERT_EQ(gmem_test_create(&args, &g), 0);
	return g;
}

static char *map(struct gmem *g, uint64_t page, uint64_t pages)
{
	void *addr = NULL;

	ASSERT_EQ(gmem_mmap(g, page * ps, pages * ps, RW, &addr), 0);
	return addr;
}

/* Every byte of the page at p is 0. */
static void check_zero(const char *p)
{
	uint8_t first;

	ASSERT_EQ(harness_probe_read_u8(p, &first), 0);
	for (uint64_t i = 0; i < ps; i++)
		ASSERT_EQ(p[i], 0);
}

/* Fill page p with a pattern of its own; check it back. */
static void fill(char *p, uint8_t seed)
{
	for (uint64_t i = 0; i < ps; i++)
		p[i] = (char)(seed + i % 251);
}

static void check_fill(const char *p, uint8_t seed)
{
	uint8_t first;

	ASSERT_EQ(harness_probe_read_u8(p, &first), 0);
	for (uint64_t i = 0; i < ps; i++) {
		if ((uint8_t)p[i] != (uint8_t)(seed + i % 251))
			TH_LOG("byte %ju at %p", (uintmax_t)i, (void *)p);
		ASSERT_EQ((uint8_t)p[i], (uint8_t)(seed + i % 251));
	}
}

/* ---- (a) -EBADF after close --------------------------------------------- */

enum op {
	OP_ALLOCATE, OP_PUNCH, OP_MMAP, OP_TO_PRIVATE, OP_TO_SHARED,
	OP_GET_ATTR, OP_PIN, OP_POPULATE, OP_STAT, NR_OPS,
};

static const char *const op_names[NR_OPS] = {
	"fallocate", "punch", "mmap", "to_private", "to_shared",
	"get_attributes", "pin", "populate", "stat",
};

/*
 * One call with valid arguments on the 4-page file of closed_calls: page
 * 0 shared, pages 1-3 private.  Undoes what it did when it succeeds, so
 * the file looks the same for the next call.
 */
static int do_op(struct gmem *g, enum op op)
{
	static char buf[8];
	struct gmem_stats st;
	uint64_t attr, run;
	void *addr;
	ssize_t n;
	int ret;

	switch (op) {
	case OP_ALLOCATE:
		return gmem_fallocate(g, FALLOC_FL_KEEP_SIZE, 0, ps);
	case OP_PUNCH:
		return gmem_fallocate(g, PUNCH, 3 * ps, ps);
	case OP_MMAP:
		ret = gmem_mmap(g, 0, ps, RW, &addr);
		if (!ret)
			ASSERT_EQ(gmem_munmap(g, addr, ps), 0);
		return ret;
	case OP_TO_PRIVATE:
		ret = convert_pages(g, 0, 1, true);
		if (!ret)
			ASSERT_EQ(convert_pages(g, 0, 1, false), 0);
		return ret;
	case OP_TO_SHARED:
		ret = convert_pages(g, 1, 1, false);
		if (!ret)
			ASSERT_EQ(convert_pages(g, 1, 1, true), 0);
		return ret;
	case OP_GET_ATTR:
		return gmem_get_attributes(g, ps, &attr, &run);
	case OP_PIN:
		ret = gmem_pin(g, 0, ps, &addr);
		if (!ret)
			ASSERT_EQ(gmem_unpin(g, 0, ps), 0);
		return ret;
	case OP_POPULATE:
		n = gmem_populate(g, 2 * ps, buf, sizeof(buf));
		return n == (ssize_t)sizeof(buf) ? 0 : (int)n;
	case OP_STAT:
		return gmem_stat(g, &st, sizeof(st));
	default:
		return -ENOSYS;
	}
}

TEST(closed_calls)
{
	struct gmem *g;
	uint8_t byte;
	char *v;

	GMEM_TEST_REQUIRE_BACKEND();
	g = create(4, GMEM_FLAG_MMAP);
	v = map(g, 0, 4);
	ASSERT_EQ(convert_pages(g, 0, 1, false), 0);
	for (int op = 0; op < NR_OPS; op++) {
		int ret = do_op(g, (enum op)op);

		if (ret)
			TH_LOG("%s before close", op_names[op]);
		ASSERT_EQ(ret, 0);
	}
	v[0] = 0x3c;
	gmem_close(g);
	for (int op = 0; op < NR_OPS; op++) {
		int ret = do_op(g, (enum op)op);

		if (ret != -EBADF)
			TH_LOG("%s after close", op_names[op]);
		ASSERT_EQ(ret, -EBADF);
	}
	/* Nothing changed: page 0 shared with its data, page 1 private. */
	ASSERT_EQ(harness_probe_read_u8(v, &byte), 0);
	ASSERT_EQ(byte, 0x3c);
	ASSERT_SIGBUS(v + ps, 0);
	/* The releases still work: a page without a pin is -EINVAL. */
	ASSERT_EQ(gmem_unpin(g, 0, ps), -EINVAL);
	ASSERT_EQ(gmem_munmap(g, v, 4 * ps), 0);	/* frees g */
}

/* ---- (b), (c) views keep the memory ------------------------------------ */

/* A 4-page file with a whole-file view: pages 0-1 shared, 2-3 private. */
FIXTURE(hold) {
	struct gmem *g;
	char *v;
};

FIXTURE_VARIANT(hold) {
	uint64_t flags;
	uint64_t first, pages;		/* converted after the mmap */
	bool to_private;
	uint64_t views_uffd;		/* the view's guard mode, if the
					   backend has the uffd guard */
};

FIXTURE_VARIANT_ADD(hold, private_uffd) {
	.flags = GMEM_FLAG_MMAP, .first = 0, .pages = 2,
	.to_private = false, .views_uffd = 1,
};

FIXTURE_VARIANT_ADD(hold, shared_vma) {
	.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED, .first = 2,
	.pages = 2, .to_private = true, .views_uffd = 0,
};

FIXTURE_SETUP(hold)
{
	GMEM_TEST_REQUIRE_BACKEND();
	self->g = create(4, variant->flags);
	self->v = map(self->g, 0, 4);
	ASSERT_EQ(convert_pages(self->g, variant->first, variant->pages,
				variant->to_private), 0);
	if (variant->views_uffd && !gmem_test_uffd() &&
	    gmem_test_backend() == GMEM_BACKEND_MEMFD)
		SKIP(return, "userfaultfd(2) unavailable: no uffd-mode view");
	ASSERT_EQ(stats(self->g).views_uffd,
		  variant->views_uffd && gmem_test_uffd());
	fill(self->v, 1);
	fill(self->v + ps, 2);
}

/* Each test releases the file itself; a failed one leaves it to exit. */
FIXTURE_TEARDOWN(hold)
{
}

static void check_held(char *v)
{
	check_fill(v, 1);
	check_fill(v + ps, 2);
	ASSERT_SIGBUS(v + 2 * ps, 0);
	ASSERT_SIGBUS(v + 3 * ps, 1);
	/* Shared pages still take writes. */
	fill(v, 9);
	check_fill(v, 9);
	fill(v, 1);
}

TEST_F(hold, view_outlives_close)
{
	gmem_close(self->g);
	check_held(self->v);
	ASSERT_EQ(gmem_munmap(self->g, self->v, 4 * ps), 0);
}

TEST_F(hold, double_close)
{
	gmem_close(self->g);
	gmem_close(self->g);
	check_held(self->v);
	gmem_close(self->g);
	ASSERT_EQ(gmem_munmap(self->g, self->v, 4 * ps), 0);
}

/* Two views: the first munmap after close keeps the file for the second. */
TEST_F(hold, two_views)
{
	char *w = map(self->g, 0, 4);

	check_held(w);
	gmem_close(self->g);
	ASSERT_EQ(gmem_munmap(self->g, self->v, 4 * ps), 0);
	check_held(w);
	ASSERT_EQ(gmem_munmap(self->g, w, 4 * ps), 0);
}

/* ---- (d) pins keep the memory ------------------------------------------ */

static const struct {
	uint64_t flags;
	bool convert;		/* make pages 0-1 shared first */
} pin_cases[] = {
	{ GMEM_FLAG_INIT_SHARED, false },
	{ GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED, false },
	{ GMEM_FLAG_MMAP, true },
	{ 0, true },
};

TEST(pin_outlives_close)
{
	GMEM_TEST_REQUIRE_BACKEND();
	for (size_t i = 0; i < sizeof(pin_cases) / sizeof(pin_cases[0]); i++) {
		struct gmem *g = create(4, pin_cases[i].flags);
		void *addr = NULL;
		char *p;

		if (pin_cases[i].convert)
			ASSERT_EQ(convert_pages(g, 0, 2, false), 0);
		ASSERT_EQ(gmem_pin(g, 0, 2 * ps, &addr), 0);
		ASSERT_EQ(gmem_pin(g, ps, ps, &addr), 0);	/* twice */
		p = (char *)addr - ps;
		fill(p, 3);
		fill(p + ps, 4);
		gmem_close(g);
		gmem_close(g);
		check_fill(p, 3);
		check_fill(p + ps, 4);
		if (pin_cases[i].convert)	/* page 2 private: guarded */
			ASSERT_SIGBUS(p + 2 * ps, 0);
		ASSERT_EQ(gmem_unpin(g, 0, 2 * ps), 0);
		check_fill(p + ps, 4);		/* still pinned once */
		ASSERT_EQ(gmem_unpin(g, 0, ps), -EINVAL);
		ASSERT_EQ(gmem_unpin(g, ps, ps), 0);	/* frees g */
	}
}

/* ---- (e) resource hygiene ----------------------------------------------- */

enum release { CLOSE_FIRST, CLOSE_LAST, CLOSE_BETWEEN };

static const char *const release_names[] = {
	"close first", "close last", "close between",
};

/*
 * Three views (two uffd, one vma; all vma on the kvm backend), a pin,
 * conversions; release all.
 */
static void cycle(enum release order, uint64_t want_uffd)
{
	struct gmem *g = create(8, GMEM_FLAG_MMAP);
	char *v1 = map(g, 0, 8);		/* all private: uffd */
	char *v2, *v3;
	struct gmem_attributes a = {
		.offset = ps, .size = ps, .attributes = GMEM_ATTR_PRIVATE,
	};
	struct gmem_stats st;
	void *pin = NULL;

	ASSERT_EQ(convert_pages(g, 0, 6, false), 0);
	v2 = map(g, 0, 8);			/* mostly shared: vma */
	v3 = map(g, 6, 2);			/* private: uffd */
	ASSERT_EQ(gmem_pin(g, 0, 2 * ps, &pin), 0);
	ASSERT_EQ(convert_pages(g, 4, 1, true), 0);
	ASSERT_EQ(convert_pages(g, 7, 1, false), 0);
	ASSERT_EQ(gmem_set_attributes(g, &a), -EAGAIN);	/* pinned */
	ASSERT_EQ(a.error_offset, ps);
	fill(v1, 5);
	fill(pin, 6);
	check_fill(v2, 6);
	check_zero(v3 + ps);		/* page 7: never written */
	ASSERT_SIGBUS(v2 + 4 * ps, 0);
	ASSERT_SIGBUS(v1 + 6 * ps, 0);
	ASSERT_SIGBUS(v3, 0);
	st = stats(g);
	ASSERT_EQ(st.views, 3);
	ASSERT_EQ(st.views_uffd, want_uffd);
	ASSERT_EQ(st.pins, 1);

	if (order == CLOSE_FIRST)
		gmem_close(g);
	ASSERT_EQ(gmem_munmap(g, v1, 8 * ps), 0);
	ASSERT_EQ(gmem_munmap(g, v2, 8 * ps), 0);
	if (order == CLOSE_BETWEEN)
		gmem_close(g);
	ASSERT_EQ(gmem_unpin(g, 0, 2 * ps), 0);
	ASSERT_EQ(gmem_munmap(g, v3, 2 * ps), 0);	/* last: frees */
	if (order == CLOSE_LAST)
		gmem_close(g);
}

TEST(no_leaks)
{
	uint64_t want_uffd = gmem_test_uffd() ? 2 : 0;
	int fds, maps;

	GMEM_TEST_REQUIRE_BACKEND();
	/*
	 * Warm up stdio, malloc, probe; twice, for the kvm backend's stats:
	 * its first 1 MiB buffer (mincore) raises malloc's mmap threshold,
	 * its second grows the heap for good.
	 */
	cycle(CLOSE_LAST, want_uffd);
	cycle(CLOSE_LAST, want_uffd);
	fds = count_fds();
	maps = count_maps();
	ASSERT_GT(fds, 0);
	ASSERT_GT(maps, 0);
	for (int order = CLOSE_FIRST; order <= CLOSE_BETWEEN; order++) {
		for (int i = 0; i < 3; i++)
			cycle((enum release)order, want_uffd);
		if (count_fds() != fds || count_maps() != maps)
			TH_LOG("after %s", release_names[order]);
		ASSERT_EQ(count_fds(), fds);
		ASSERT_EQ(count_maps(), maps);
	}
}

/* ---- (f) gmem_munmap() errors ------------------------------------------- */

static void munmap_invalid_cases(void)
{
	struct gmem *g1 = create(4, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);
	struct gmem *g2 = create(4, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);
	char *v = map(g1, 0, 4), *w = map(g2, 0, 4);
	void *pin = NULL;
	const struct {
		struct gmem *g;
		void *addr;
		size_t len;
	} bad[] = {
		{ g1, v + ps, 3 * ps },		/* not the start */
		{ g1, v + ps, 4 * ps },
		{ g1, v - ps, 4 * ps },
		{ g1, v, 2 * ps },		/* wrong length */
		{ g1, v, 3 * ps },
		{ g1, v, 5 * ps },
		{ g1, v, 8 * ps },
		{ g1, w, 4 * ps },		/* another file's view */
		{ g2, v, 4 * ps },
		{ g1, NULL, 4 * ps },
		{ g1, v, 0 },
		{ NULL, v, 4 * ps },
	};

	fill(v, 7);
	fill(w, 8);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = gmem_munmap(bad[i].g, bad[i].addr, bad[i].len);

		if (ret != -EINVAL)
			TH_LOG("case %zu", i);
		ASSERT_EQ(ret, -EINVAL);
	}
	/* The pin's address is not a view of the caller's. */
	ASSERT_EQ(gmem_pin(g1, 0, 4 * ps, &pin), 0);
	ASSERT_EQ(gmem_munmap(g1, pin, 4 * ps), -EINVAL);
	check_fill(pin, 7);
	ASSERT_EQ(gmem_unpin(g1, 0, 4 * ps), 0);

	/* Both views intact. */
	ASSERT_EQ(stats(g1).views, 1);
	ASSERT_EQ(stats(g2).views, 1);
	check_fill(v, 7);
	check_fill(w, 8);
	check_zero(v + 3 * ps);

	/* Twice: the second is -EINVAL, and the view is gone. */
	ASSERT_EQ(gmem_munmap(g1, v, 4 * ps), 0);
	ASSERT_EQ(gmem_munmap(g1, v, 4 * ps), -EINVAL);
	ASSERT_EQ(stats(g1).views, 0);
	ASSERT_SIGSEGV(v, 0);
	check_fill(w, 8);

	/* After close, a wrong munmap keeps the file alive for the right one */
	gmem_close(g2);
	ASSERT_EQ(gmem_munmap(g2, w + ps, 3 * ps), -EINVAL);
	ASSERT_EQ(gmem_munmap(g2, w, 2 * ps), -EINVAL);
	check_fill(w, 8);
	ASSERT_EQ(gmem_munmap(g2, w, 4 * ps), 0);
	gmem_close(g1);
}

TEST(munmap_invalid)
{
	GMEM_TEST_REQUIRE_BACKEND();
	munmap_invalid_cases();
}

/* ---- (g) gmem_close() from a callback (issue 14) ------------------------ */

struct closer {
	struct gmem *g;
	unsigned int reasons[4];	/* invalidate reasons, in order */
	unsigned int nr;
	unsigned int discards;
};

static void close_on_invalidate(void *owner, uint64_t offset, uint64_t size,
				unsigned int reason)
{
	struct closer *c = owner;

	(void)offset;
	(void)size;
	if (c->nr < 4)
		c->reasons[c->nr] = reason;
	c->nr++;
	gmem_close(c->g);	/* deferred; a second time (RELEASE): no-op */
}

static void close_on_discard(void *opaque, uint64_t offset, uint64_t size)
{
	struct closer *c = opaque;

	(void)offset;
	(void)size;
	c->discards++;
	gmem_close(c->g);
}

static int populate_ok(void *opaque, uint64_t offset, uint64_t size)
{
	(void)opaque;
	(void)offset;
	(void)size;
	return 0;
}

static const struct gmem_binding_ops closer_ops = {
	.invalidate = close_on_invalidate,
};
static const struct gmem_listener_ops closer_listener_ops = {
	.populate = populate_ok,
	.discard = close_on_discard,
};

static void to_private(struct gmem *g, uint64_t page)
{
	struct gmem_attributes a = {
		.offset = page * ps, .size = ps,
		.attributes = GMEM_ATTR_PRIVATE,
	};

	ASSERT_EQ(gmem_set_attributes(g, &a), 0);
}

/*
 * An invalidate callback that closes its file: the conversion that ran
 * it completes, the file is closed when it returns (-EBADF, the owner
 * told RELEASE), and unbinding frees everything.
 */
TEST(close_in_invalidate)
{
	struct gmem_stats st;
	struct gmem_binding *b;
	struct closer c = { 0 };
	int fds, maps;

	GMEM_TEST_REQUIRE_BACKEND();
	c.g = create(4, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);
	gmem_close(c.g);		/* warm up */
	fds = count_fds();
	maps = count_maps();
	c.g = create(4, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);
	ASSERT_EQ(gmem_bind(c.g, 0, 4 * ps, &closer_ops, &c, &b), 0);
	to_private(c.g, 1);
	ASSERT_EQ(c.nr, 2);
	ASSERT_EQ(c.reasons[0], GMEM_INVALIDATE_CONVERT);
	ASSERT_EQ(c.reasons[1], GMEM_INVALIDATE_RELEASE);
	ASSERT_EQ(gmem_stat(c.g, &st, sizeof(st)), -EBADF);
	ASSERT_EQ(gmem_unbind(b), 0);	/* the last holder: frees */
	ASSERT_EQ(count_fds(), fds);
	ASSERT_EQ(count_maps(), maps);
}

/* The same from a listener's discard, with a view holding the file too. */
TEST(close_in_listener)
{
	struct gmem_listener *l;
	struct gmem_stats st;
	struct closer c = { 0 };
	int fds, maps;
	char *v;

	GMEM_TEST_REQUIRE_BACKEND();
	c.g = create(4, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);
	gmem_close(c.g);		/* warm up */
	fds = count_fds();
	maps = count_maps();
	c.g = create(4, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);
	v = map(c.g, 0, 4);
	fill(v, 5);
	ASSERT_EQ(gmem_listener_register(c.g, 0, 4 * ps, &closer_listener_ops,
					 &c, &l), 0);
	to_private(c.g, 2);
	ASSERT_EQ(c.discards, 1);
	ASSERT_EQ(gmem_stat(c.g, &st, sizeof(st)), -EBADF);
	/* The conversion was done: page 2 private, the others intact. */
	ASSERT_SIGBUS(v + 2 * ps, 0);
	ASSERT_EQ((uint8_t)v[0], 5);
	ASSERT_EQ(gmem_listener_unregister(l), 0);
	ASSERT_EQ(gmem_munmap(c.g, v, 4 * ps), 0);	/* frees */
	ASSERT_EQ(count_fds(), fds);
	ASSERT_EQ(count_maps(), maps);
}
