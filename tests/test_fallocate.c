// SPDX-License-Identifier: MIT
/*
 * test_fallocate.c - gmem_fallocate() and gmem_populate().
 *
 * Carries over the kernel guest_memfd_test's "fallocate" and
 * "invalid_punch_hole" tables on a 4-page MMAP|INIT_SHARED file, and its
 * "mmap_supported" data case, then adds:
 *  - modes other than KEEP_SIZE [| PUNCH_HOLE]: -EOPNOTSUPP; length 0,
 *    wrapping ranges and a NULL file: -EINVAL;
 *  - allocation as seen in gmem_stat()'s allocated, with and without a view;
 *  - through a view, in both guard modes (a private file converted shared
 *    after mapping: userfaultfd; an INIT_SHARED file: vma holes): punched
 *    shared pages read back as zeros (never SIGBUS), punch keeps the
 *    shared/private state and private pages keep raising SIGBUS;
 *  - gmem_populate(): copies into private pages only, stops at the first
 *    shared page (-EPERM if that is the first), leaves the tail of a
 *    partial last page alone, argument errors; with the view made before
 *    or after the copy.
 */
#include <linux/falloc.h>
#include <stdbool.h>

#include <gmem.h>

#include "harness.h"
#include "gmem_test.h"

#define KEEP		FALLOC_FL_KEEP_SIZE
#define PUNCH		(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)
#define NPAGES		4

static uint64_t ps;

static void __attribute__((constructor)) init_page_size(void)
{
	ps = (uint64_t)getpagesize();
}

/* Call GMEM_TEST_REQUIRE_BACKEND() first. */
static struct gmem *create4(uint64_t flags)
{
	struct gmem_create_args args = { .size = NPAGES * ps, .flags = flags };
	struct gmem *g = NULL;

	ASSERT_EQ(gmem_test_create(&args, &g), 0);
	return g;
}

/* Byte offset written as pages * ps + bytes, so tables need no ps. */
struct off {
	uint64_t pages;
	int64_t bytes;
};

static uint64_t off_val(struct off o)
{
	return o.pages * ps + (uint64_t)o.bytes;
}

/* Every byte of the page at p is val (p must be accessible). */
static void check_page(const volatile char *p, uint8_t val)
{
	uint8_t first;

	ASSERT_EQ(harness_probe_read_u8(p, &first), 0);
	for (uint64_t i = 0; i < ps; i++) {
		if ((uint8_t)p[i] != val)
			TH_LOG("byte %ju of page %p is %#x, not %#x",
			       (uintmax_t)i, (void *)(uintptr_t)p,
			       (uint8_t)p[i], val);
		ASSERT_EQ((uint8_t)p[i], val);
	}
}

/* ---- the kernel's tables ------------------------------------------------ */

static const struct {
	const char *name;
	int mode;
	struct off off, len;
	int want;
} fallocate_cases[] = {
	{ "a: allocate all", KEEP, { 0, 0 }, { 4, 0 }, 0 },
	{ "b: punch unaligned", PUNCH, { 1, -1 }, { 1, 0 }, -EINVAL },
	{ "c: allocate at end", KEEP, { 4, 0 }, { 1, 0 }, -EINVAL },
	{ "d: allocate past end", KEEP, { 5, 0 }, { 1, 0 }, -EINVAL },
	{ "e: punch at end", PUNCH, { 4, 0 }, { 1, 0 }, 0 },
	{ "f: punch past end", PUNCH, { 5, 0 }, { 1, 0 }, 0 },
	{ "g: punch short", PUNCH, { 1, 0 }, { 1, -1 }, -EINVAL },
	{ "h: punch page 1", PUNCH, { 1, 0 }, { 1, 0 }, 0 },
	{ "i: allocate page 1", KEEP, { 1, 0 }, { 1, 0 }, 0 },
	/* libgmem's contract beyond the kernel's table */
	{ "allocate across end", KEEP, { 3, 0 }, { 2, 0 }, -EINVAL },
	{ "punch across end", PUNCH, { 3, 0 }, { 2, 0 }, 0 },
	{ "punch far past end", PUNCH, { 1000, 0 }, { 1000, 0 }, 0 },
	{ "allocate last page", KEEP, { 3, 0 }, { 1, 0 }, 0 },
	{ "allocate unaligned", KEEP, { 0, 1 }, { 1, 0 }, -EINVAL },
	{ "allocate short", KEEP, { 0, 0 }, { 1, 1 }, -EINVAL },
};

TEST(fallocate)
{
	struct gmem *g;

	GMEM_TEST_REQUIRE_BACKEND();
	g = create4(GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);

	for (size_t i = 0; i < sizeof(fallocate_cases) /
			       sizeof(fallocate_cases[0]); i++) {
		int ret = gmem_fallocate(g, fallocate_cases[i].mode,
					 off_val(fallocate_cases[i].off),
					 off_val(fallocate_cases[i].len));

		if (ret != fallocate_cases[i].want)
			TH_LOG("case %s", fallocate_cases[i].name);
		ASSERT_EQ(ret, fallocate_cases[i].want);
	}
	gmem_close(g);
}

static const struct off punch_offs[][2] = {
	{ { 0, 0 }, { 0, 1 } }, { { 0, 0 }, { 1, -1 } }, { { 0, 0 }, { 1, 1 } },
	{ { 0, 1 }, { 0, 1 } }, { { 0, 1 }, { 1, -1 } }, { { 0, 1 }, { 1, 0 } },
	{ { 0, 1 }, { 1, 1 } }, { { 1, 0 }, { 0, 1 } }, { { 1, 0 }, { 1, -1 } },
	{ { 1, 0 }, { 1, 1 } },
};

TEST(invalid_punch_hole)
{
	struct gmem *g;

	GMEM_TEST_REQUIRE_BACKEND();
	g = create4(GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);

	for (size_t i = 0; i < sizeof(punch_offs) / sizeof(punch_offs[0]);
	     i++) {
		uint64_t off = off_val(punch_offs[i][0]);
		uint64_t len = off_val(punch_offs[i][1]);
		int ret = gmem_fallocate(g, PUNCH, off, len);

		if (ret != -EINVAL)
			TH_LOG("punch (%ju, %ju)", (uintmax_t)off,
			       (uintmax_t)len);
		ASSERT_EQ(ret, -EINVAL);
	}
	gmem_close(g);
}

/* Valid ranges, modes the file does not support. */
static const int bad_modes[] = {
	0, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE,
	KEEP | FALLOC_FL_ZERO_RANGE, KEEP | FALLOC_FL_COLLAPSE_RANGE,
	KEEP | FALLOC_FL_INSERT_RANGE, KEEP | FALLOC_FL_UNSHARE_RANGE,
	KEEP | FALLOC_FL_NO_HIDE_STALE, PUNCH | FALLOC_FL_ZERO_RANGE,
	KEEP | 0x80, KEEP | 0x100, KEEP | (1 << 30), -1,
};

TEST(unsupported_modes)
{
	struct gmem *g;

	GMEM_TEST_REQUIRE_BACKEND();
	g = create4(GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);

	for (size_t i = 0; i < sizeof(bad_modes) / sizeof(bad_modes[0]); i++) {
		int ret = gmem_fallocate(g, bad_modes[i], 0, ps);

		if (ret != -EOPNOTSUPP)
			TH_LOG("mode %#x", bad_modes[i]);
		ASSERT_EQ(ret, -EOPNOTSUPP);
		ASSERT_EQ(gmem_fallocate(g, bad_modes[i], ps, 3 * ps),
			  -EOPNOTSUPP);
	}
	ASSERT_EQ(stats(g).allocated, 0);	/* nothing happened */
	gmem_close(g);
}

/* Length 0, offset + len wrapping around, no file: -EINVAL. */
TEST(invalid_ranges)
{
	static const int modes[] = { KEEP, PUNCH };
	const uint64_t top = UINT64_MAX & ~(ps - 1);
	const struct {
		uint64_t off, len;
	} bad[] = {
		{ 0, 0 }, { ps, 0 }, { 4 * ps, 0 }, { top, 2 * ps },
		{ ps, top }, { top, top }, { 2 * ps, UINT64_MAX - ps + 1 },
	};
	struct gmem *g;

	GMEM_TEST_REQUIRE_BACKEND();
	g = create4(GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);

	for (size_t m = 0; m < 2; m++) {
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			int ret = gmem_fallocate(g, modes[m], bad[i].off,
						 bad[i].len);

			if (ret != -EINVAL)
				TH_LOG("mode %#x case %zu", modes[m], i);
			ASSERT_EQ(ret, -EINVAL);
		}
		ASSERT_EQ(gmem_fallocate(NULL, modes[m], 0, ps), -EINVAL);
	}
	ASSERT_EQ(stats(g).allocated, 0);
	gmem_close(g);
}

/* ---- allocation, no view ------------------------------------------------ */

static const uint64_t alloc_flags[] = {
	0, GMEM_FLAG_INIT_SHARED, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
};

static const struct {
	int mode;
	uint64_t page, pages;
	uint64_t allocated;		/* pages, after the call */
} alloc_steps[] = {
	{ KEEP, 1, 1, 1 }, { KEEP, 1, 1, 1 }, { KEEP, 3, 1, 2 },
	{ KEEP, 0, 4, 4 }, { PUNCH, 1, 1, 3 }, { PUNCH, 0, 2, 2 },
	{ PUNCH, 3, 5, 1 }, { PUNCH, 0, 4, 0 }, { KEEP, 0, 4, 4 },
	{ PUNCH, 0, 4, 0 },
};

TEST(allocated)
{
	GMEM_TEST_REQUIRE_BACKEND();
	for (size_t f = 0; f < sizeof(alloc_flags) / sizeof(alloc_flags[0]);
	     f++) {
		struct gmem *g = create4(alloc_flags[f]);

		ASSERT_EQ(stats(g).allocated, 0);
		for (size_t i = 0; i < sizeof(alloc_steps) /
				       sizeof(alloc_steps[0]); i++) {
			uint64_t got;

			ASSERT_EQ(gmem_fallocate(g, alloc_steps[i].mode,
						 alloc_steps[i].page * ps,
						 alloc_steps[i].pages * ps), 0);
			got = stats(g).allocated;
			if (got != alloc_steps[i].allocated * ps)
				TH_LOG("flags %#jx step %zu",
				       (uintmax_t)alloc_flags[f], i);
			ASSERT_EQ(got, alloc_steps[i].allocated * ps);
		}
		gmem_close(g);
	}
}

/* ---- through a view, both guard modes ------------------------------------ */

FIXTURE(view) {
	struct gmem *g;
	char *v;
	uint64_t views_uffd;	/* the guard mode the view is in */
};

FIXTURE_VARIANT(view) {
	uint64_t flags;
	bool convert;		/* created private, converted after mmap */
	uint64_t views_uffd;	/* the guard mode the view must be in if
				   the backend has the userfaultfd guard */
	uint64_t idle_pages;	/* allocated with nothing touched, uffd */
};

/*
 * A view of a private file starts in uffd mode and stays there; uffd mode
 * keeps every shared page of the view allocated and mapped (view.c).  On
 * the kvm backend, a second vma-mode case.
 */
FIXTURE_VARIANT_ADD(view, private_uffd) {
	.flags = GMEM_FLAG_MMAP, .convert = true, .views_uffd = 1,
	.idle_pages = NPAGES,
};

FIXTURE_VARIANT_ADD(view, init_shared_vma) {
	.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED, .convert = false,
	.views_uffd = 0, .idle_pages = 0,
};

FIXTURE_SETUP(view)
{
	struct gmem_stats st;
	void *addr = NULL;

	GMEM_TEST_REQUIRE_BACKEND();
	self->g = create4(variant->flags);
	ASSERT_EQ(gmem_mmap(self->g, 0, NPAGES * ps, PROT_READ | PROT_WRITE,
			    &addr), 0);
	self->v = addr;
	if (variant->convert)
		ASSERT_EQ(convert_pages(self->g, 0, NPAGES, false), 0);
	st = stats(self->g);
	ASSERT_EQ(st.views, 1);
	ASSERT_EQ(st.shared, NPAGES * ps);
	if (variant->views_uffd && !st.views_uffd && !gmem_test_uffd() &&
	    gmem_test_backend() == GMEM_BACKEND_MEMFD)
		SKIP(return, "userfaultfd(2) unavailable: no uffd-mode view");
	self->views_uffd = variant->views_uffd && gmem_test_uffd();
	ASSERT_EQ(st.views_uffd, self->views_uffd);
}

FIXTURE_TEARDOWN(view)
{
	if (self->v)
		EXPECT_EQ(gmem_munmap(self->g, self->v, NPAGES * ps), 0);
	gmem_close(self->g);
}

/* The kernel's mmap_supported case. */
TEST_F(view, mmap_supported)
{
	char *v = self->v;

	memset(v, 0xaa, NPAGES * ps);
	for (unsigned int i = 0; i < NPAGES; i++)
		check_page(v + i * ps, 0xaa);
	ASSERT_EQ(gmem_fallocate(self->g, PUNCH, 0, ps), 0);
	check_page(v, 0x00);
	for (unsigned int i = 1; i < NPAGES; i++)
		check_page(v + i * ps, 0xaa);
	memset(v, 0xaa, ps);
	for (unsigned int i = 0; i < NPAGES; i++)
		check_page(v + i * ps, 0xaa);
}

/* Punch past the end only clears what lies inside the file. */
TEST_F(view, punch_across_end)
{
	char *v = self->v;

	memset(v, 0xaa, NPAGES * ps);
	ASSERT_EQ(gmem_fallocate(self->g, PUNCH, 3 * ps, 2 * ps), 0);
	for (unsigned int i = 0; i < 3; i++)
		check_page(v + i * ps, 0xaa);
	check_page(v + 3 * ps, 0x00);
	/* The punched page takes writes again. */
	ASSERT_NO_SIGNAL(v + 3 * ps, 1);
	ASSERT_EQ((uint8_t)v[3 * ps], 0x5a);
}

static const struct {
	uint64_t page, attr, run;	/* run in pages */
} after_page2_private[] = {
	{ 0, 0, 2 }, { 1, 0, 1 }, { 2, GMEM_ATTR_PRIVATE, 1 }, { 3, 0, 1 },
};

static void check_page2_private(struct gmem *g)
{
	for (size_t i = 0; i < sizeof(after_page2_private) /
			       sizeof(after_page2_private[0]); i++) {
		uint64_t attr = 0xdead, run = 0;

		ASSERT_EQ(gmem_get_attributes(g, after_page2_private[i].page *
					      ps, &attr, &run), 0);
		ASSERT_EQ(attr, after_page2_private[i].attr);
		ASSERT_EQ(run, after_page2_private[i].run * ps);
	}
}

/* Punch keeps the state; private pages stay guarded, shared read zeros. */
TEST_F(view, punch_keeps_state)
{
	struct gmem_stats st;
	char *v = self->v;

	memset(v, 0xaa, NPAGES * ps);
	ASSERT_EQ(convert_pages(self->g, 2, 1, true), 0);
	check_page2_private(self->g);
	ASSERT_SIGBUS(v + 2 * ps, 0);

	ASSERT_EQ(gmem_fallocate(self->g, PUNCH, 0, NPAGES * ps), 0);
	check_page2_private(self->g);
	st = stats(self->g);
	ASSERT_EQ(st.priv, ps);
	ASSERT_EQ(st.nr_ranges, 3);
	ASSERT_EQ(st.views_uffd, self->views_uffd);
	ASSERT_SIGBUS(v + 2 * ps, 0);
	ASSERT_SIGBUS(v + 2 * ps, 1);
	ASSERT_SIGBUS(v + 3 * ps - 1, 0);
	/* Shared punched pages: zeros, not SIGBUS, in either mode. */
	check_page(v, 0x00);
	check_page(v + ps, 0x00);
	check_page(v + 3 * ps, 0x00);

	/* The private page was punched too: shared again, it reads zeros. */
	ASSERT_EQ(convert_pages(self->g, 2, 1, false), 0);
	check_page(v + 2 * ps, 0x00);
}

/* Allocation shows in the stats, on both backends; see idle_pages for
 * uffd mode. */
TEST_F(view, allocation)
{
	uint64_t idle = self->views_uffd ? variant->idle_pages * ps : 0;

	ASSERT_EQ(stats(self->g).allocated, idle);
	ASSERT_EQ(gmem_fallocate(self->g, KEEP, 0, NPAGES * ps), 0);
	ASSERT_EQ(stats(self->g).allocated, NPAGES * ps);
	ASSERT_EQ(gmem_fallocate(self->g, PUNCH, 0, NPAGES * ps), 0);
	ASSERT_EQ(stats(self->g).allocated, idle);
	for (unsigned int i = 0; i < NPAGES; i++)
		check_page(self->v + i * ps, 0x00);
}

/* ---- populate ----------------------------------------------------------- */

FIXTURE(populate) {
	struct gmem *g;
	char *v;
	uint8_t *src;
};

FIXTURE_VARIANT(populate) {
	bool view_first;	/* map before populating (a uffd-mode view) */
};

FIXTURE_VARIANT_ADD(populate, view_before) { .view_first = true };
FIXTURE_VARIANT_ADD(populate, view_after) { .view_first = false };

/* The view of the whole file, made now if the variant has none yet. */
static char *pop_view(FIXTURE_DATA(populate) *self)
{
	void *addr = NULL;

	if (!self->v) {
		ASSERT_EQ(gmem_mmap(self->g, 0, NPAGES * ps,
				    PROT_READ | PROT_WRITE, &addr), 0);
		self->v = addr;
	}
	return self->v;
}

FIXTURE_SETUP(populate)
{
	GMEM_TEST_REQUIRE_BACKEND();
	self->g = create4(GMEM_FLAG_MMAP);
	self->src = malloc(NPAGES * ps + 1);
	ASSERT_NONNULL(self->src);
	for (uint64_t i = 0; i < NPAGES * ps + 1; i++)
		self->src[i] = (uint8_t)(i * 7 + 1 + i / ps);
	if (variant->view_first)
		pop_view(self);
}

FIXTURE_TEARDOWN(populate)
{
	if (self->v)
		EXPECT_EQ(gmem_munmap(self->g, self->v, NPAGES * ps), 0);
	gmem_close(self->g);
	free(self->src);
}

TEST_F(populate, into_private)
{
	char *v;

	ASSERT_EQ(gmem_populate(self->g, 0, self->src, 2 * ps),
		  (ssize_t)(2 * ps));
	ASSERT_EQ(stats(self->g).allocated, 2 * ps);
	ASSERT_EQ(convert_pages(self->g, 0, 2, false), 0);
	v = pop_view(self);
	ASSERT_NO_SIGNAL(v, 0);
	ASSERT_NO_SIGNAL(v + 2 * ps - 1, 0);
	ASSERT_EQ(memcmp(v, self->src, 2 * ps), 0);
	ASSERT_SIGBUS(v + 2 * ps, 0);
	ASSERT_SIGBUS(v + 3 * ps, 0);
	ASSERT_EQ(stats(self->g).allocated, 2 * ps);
	/* Pages 2 and 3 were never written. */
	ASSERT_EQ(convert_pages(self->g, 2, 2, false), 0);
	check_page(v + 2 * ps, 0x00);
	check_page(v + 3 * ps, 0x00);
}

TEST_F(populate, first_page_shared)
{
	char *v;

	ASSERT_EQ(convert_pages(self->g, 0, 1, false), 0);
	ASSERT_EQ(gmem_populate(self->g, 0, self->src, 2 * ps), -EPERM);
	ASSERT_EQ(gmem_populate(self->g, 0, self->src, 1), -EPERM);
	ASSERT_EQ(gmem_populate(self->g, ps, self->src, ps),
		  (ssize_t)ps);
	v = pop_view(self);
	check_page(v, 0x00);		/* not written */
	ASSERT_EQ(convert_pages(self->g, 1, 1, false), 0);
	ASSERT_EQ(memcmp(v + ps, self->src, ps), 0);
}

static const struct {
	uint64_t page;			/* offset in pages */
	uint64_t len_pages;
	uint64_t len_bytes;
	ssize_t want_pages;		/* bytes copied, in pages */
} stop_cases[] = {
	{ 0, 4, 0, 2 }, { 0, 2, 100, 2 }, { 0, 3, 0, 2 }, { 1, 3, 0, 1 },
	{ 1, 1, 1, 1 }, { 3, 1, 0, 1 }, { 0, 0, 5, -1 },
};

/* Page 2 shared: every copy stops in front of it. */
TEST_F(populate, stops_at_shared)
{
	char *v;

	ASSERT_EQ(convert_pages(self->g, 2, 1, false), 0);
	for (size_t i = 0; i < sizeof(stop_cases) / sizeof(stop_cases[0]);
	     i++) {
		uint64_t len = stop_cases[i].len_pages * ps +
			       stop_cases[i].len_bytes;
		ssize_t want = stop_cases[i].want_pages < 0 ? (ssize_t)len :
			       stop_cases[i].want_pages * (ssize_t)ps;
		ssize_t got = gmem_populate(self->g, stop_cases[i].page * ps,
					    self->src, len);

		if (got != want)
			TH_LOG("case %zu", i);
		ASSERT_EQ(got, want);
	}
	v = pop_view(self);
	check_page(v + 2 * ps, 0x00);	/* the shared page: untouched */
	ASSERT_EQ(convert_pages(self->g, 0, NPAGES, false), 0);
	/* Page 0 holds src[0, ps) since case 0; cases 3-5 copied it too. */
	ASSERT_EQ(memcmp(v, self->src, ps), 0);
	ASSERT_EQ(memcmp(v + ps, self->src, ps), 0);
	ASSERT_EQ(memcmp(v + 3 * ps, self->src, ps), 0);
	check_page(v + 2 * ps, 0x00);
}

/* A partial last page keeps its tail. */
TEST_F(populate, partial_tail)
{
	uint8_t *fill = malloc(ps), *part = malloc(100);
	char *v;

	ASSERT_NONNULL(fill);
	ASSERT_NONNULL(part);
	memset(fill, 0x11, ps);
	memset(part, 0x22, 100);
	ASSERT_EQ(gmem_populate(self->g, ps, fill, ps), (ssize_t)ps);
	ASSERT_EQ(gmem_populate(self->g, ps, part, 100), 100);
	ASSERT_EQ(convert_pages(self->g, 1, 1, false), 0);
	v = pop_view(self) + ps;
	for (uint64_t i = 0; i < ps; i++) {
		if ((uint8_t)v[i] != (i < 100 ? 0x22 : 0x11))
			TH_LOG("byte %ju", (uintmax_t)i);
		ASSERT_EQ((uint8_t)v[i], i < 100 ? 0x22 : 0x11);
	}
	free(fill);
	free(part);
}

TEST_F(populate, invalid)
{
	static const struct off bad[][2] = {	/* offset, len */
		{ { 0, 1 }, { 1, 0 } }, { { 1, -1 }, { 1, 0 } },
		{ { 1, 1 }, { 0, 1 } }, { { 0, 0 }, { 0, 0 } },
		{ { 2, 0 }, { 0, 0 } }, { { 3, 0 }, { 2, 0 } },
		{ { 4, 0 }, { 0, 1 } }, { { 0, 0 }, { 4, 1 } },
		{ { 5, 0 }, { 1, 0 } },
	};
	uint64_t top = UINT64_MAX & ~(ps - 1);
	void *none;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ssize_t got = gmem_populate(self->g, off_val(bad[i][0]),
					    self->src, off_val(bad[i][1]));

		if (got != -EINVAL)
			TH_LOG("case %zu", i);
		ASSERT_EQ(got, -EINVAL);
	}
	ASSERT_EQ(gmem_populate(self->g, top, self->src, 2 * ps), -EINVAL);
	ASSERT_EQ(gmem_populate(self->g, 0, NULL, ps), -EINVAL);
	ASSERT_EQ(gmem_populate(NULL, 0, self->src, ps), -EINVAL);
	ASSERT_EQ(stats(self->g).allocated, 0);	/* nothing written */

	/* An unreadable source: -EFAULT (the page may be allocated). */
	none = mmap(NULL, ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE((uintptr_t)none, (uintptr_t)MAP_FAILED);
	ASSERT_EQ(gmem_populate(self->g, 0, none, ps), -EFAULT);
	munmap(none, ps);
}
