// SPDX-License-Identifier: MIT
/*
 * test_pin.c - long-term pins of shared pages: what may be pinned, how
 * counts add up, what the returned address shows (and does not: the pin
 * view is guarded too), and what pins do to conversion and punch-hole.
 */
#include <linux/falloc.h>
#include <sys/mman.h>

#include "gmem.h"
#include "harness.h"
#include "gmem_test.h"

#define NPAGES	8

FIXTURE(pin) {
	struct gmem *g;
	size_t ps;
};

FIXTURE_SETUP(pin)
{
	struct gmem_create_args args = { .flags = GMEM_FLAG_MMAP };

	GMEM_TEST_REQUIRE_BACKEND();
	self->ps = (size_t)getpagesize();
	args.size = NPAGES * self->ps;
	ASSERT_EQ(gmem_test_create(&args, &self->g), 0);
}

FIXTURE_TEARDOWN(pin)
{
	gmem_close(self->g);
}

TEST_F(pin, only_shared_pages)
{
	size_t ps = self->ps;
	void *p = (void *)0x1;

	ASSERT_EQ(gmem_pin(self->g, 0, ps, &p), -EFAULT);
	ASSERT_EQ(convert(self->g, 0, 4 * ps, 0), 0);
	/* One private page in the range: nothing is pinned. */
	ASSERT_EQ(gmem_pin(self->g, 2 * ps, 4 * ps, &p), -EFAULT);
	ASSERT_EQ(p, (void *)0x1);
	ASSERT_EQ(stats(self->g).pins, 0);
	ASSERT_EQ(stats(self->g).pinned, 0);
	ASSERT_EQ(gmem_pin(self->g, 0, 4 * ps, &p), 0);
	ASSERT_EQ(stats(self->g).pins, 1);
	ASSERT_EQ(stats(self->g).pinned, 4 * ps);
	ASSERT_EQ(gmem_unpin(self->g, 0, 4 * ps), 0);
	ASSERT_EQ(stats(self->g).pinned, 0);
}

TEST_F(pin, bad_arguments)
{
	size_t ps = self->ps;
	const struct {
		uint64_t off, len;
	} cases[] = {
		{ 0, 0 }, { 1, ps }, { 0, ps + 1 }, { NPAGES * ps, ps },
		{ (NPAGES - 1) * ps, 2 * ps }, { -(uint64_t)ps, 2 * ps },
	};
	void *p;

	ASSERT_EQ(convert(self->g, 0, NPAGES * ps, 0), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		EXPECT_EQ(gmem_pin(self->g, cases[i].off, cases[i].len, &p),
			  -EINVAL);
		EXPECT_EQ(gmem_unpin(self->g, cases[i].off, cases[i].len),
			  -EINVAL);
	}
	ASSERT_EQ(gmem_pin(self->g, 0, ps, NULL), -EINVAL);
	ASSERT_EQ(gmem_pin(NULL, 0, ps, &p), -EINVAL);
	ASSERT_EQ(gmem_unpin(NULL, 0, ps), -EINVAL);
	ASSERT_EQ(stats(self->g).pins, 0);
}

/* Counts per page: overlapping pins need as many unpins. */
TEST_F(pin, counts)
{
	size_t ps = self->ps;
	void *p;

	ASSERT_EQ(convert(self->g, 0, NPAGES * ps, 0), 0);
	ASSERT_EQ(gmem_unpin(self->g, 0, ps), -EINVAL);
	ASSERT_EQ(gmem_pin(self->g, 0, 4 * ps, &p), 0);
	ASSERT_EQ(gmem_pin(self->g, 2 * ps, 4 * ps, &p), 0);
	ASSERT_EQ(stats(self->g).pinned, 6 * ps);
	/* Page 6 is not pinned: the whole unpin fails, changes nothing. */
	ASSERT_EQ(gmem_unpin(self->g, 2 * ps, 5 * ps), -EINVAL);
	ASSERT_EQ(stats(self->g).pinned, 6 * ps);
	ASSERT_EQ(gmem_unpin(self->g, 0, 4 * ps), 0);
	ASSERT_EQ(stats(self->g).pinned, 4 * ps);
	ASSERT_EQ(convert(self->g, 0, 2 * ps, 1), 0);
	ASSERT_EQ(convert(self->g, 2 * ps, ps, 1), -EAGAIN);
	ASSERT_EQ(gmem_unpin(self->g, 2 * ps, 4 * ps), 0);
	ASSERT_EQ(gmem_unpin(self->g, 2 * ps, 4 * ps), -EINVAL);
	ASSERT_EQ(stats(self->g).pins, 0);
	ASSERT_EQ(convert(self->g, 0, NPAGES * ps, 1), 0);
}

/*
 * The address shows the shared page and is stable; pinned pages are
 * resident; an overrun raises SIGBUS, into a private neighbour and into
 * a shared one that is not pinned (the pin view shows pinned pages only:
 * it costs no memory for the rest of the file).
 */
TEST_F(pin, address_is_guarded)
{
	size_t ps = self->ps;
	char *view, *p;

	ASSERT_EQ(gmem_mmap(self->g, 0, NPAGES * ps, PROT_READ | PROT_WRITE,
			    (void **)&view), 0);
	ASSERT_EQ(convert(self->g, ps, 2 * ps, 0), 0);
	memset(view + ps, 'd', 2 * ps);
	ASSERT_EQ(gmem_pin(self->g, 2 * ps, ps, (void **)&p), 0);
	ASSERT_EQ(p[0], 'd');
	p[1] = 'D';				/* a device writes */
	ASSERT_EQ(view[2 * ps + 1], 'D');
	ASSERT_SIGBUS(p - ps, 0);		/* shared, not pinned */
	ASSERT_SIGBUS(p + ps, 0);		/* private neighbour */
	ASSERT_SIGBUS(p - 2 * ps, 1);
	ASSERT_GE(stats(self->g).allocated, ps);
	ASSERT_EQ(stats(self->g).views, 1);	/* the pin view is internal */
	ASSERT_EQ(gmem_unpin(self->g, 2 * ps, ps), 0);
	ASSERT_EQ(gmem_munmap(self->g, view, NPAGES * ps), 0);
}

/* Punching a pinned page zeroes it under the pin (as in the kernel). */
TEST_F(pin, punch_under_pin)
{
	size_t ps = self->ps;
	char *p;

	ASSERT_EQ(convert(self->g, 0, ps, 0), 0);
	ASSERT_EQ(gmem_pin(self->g, 0, ps, (void **)&p), 0);
	p[0] = 'x';
	ASSERT_EQ(gmem_fallocate(self->g, FALLOC_FL_KEEP_SIZE |
				 FALLOC_FL_PUNCH_HOLE, 0, ps), 0);
	ASSERT_EQ(p[0], 0);
	p[0] = 'y';
	ASSERT_EQ(p[0], 'y');
	ASSERT_EQ(gmem_unpin(self->g, 0, ps), 0);
}

/* A pin keeps the file alive past gmem_close(). */
TEST(pin_outlives_close)
{
	struct gmem_create_args args = {
		.size = 4 * (uint64_t)getpagesize(),
		.flags = GMEM_FLAG_INIT_SHARED,
	};
	struct gmem *g;
	char *p;

	GMEM_TEST_REQUIRE_BACKEND();
	ASSERT_EQ(gmem_test_create(&args, &g), 0);
	ASSERT_EQ(gmem_pin(g, 0, args.size, (void **)&p), 0);
	memset(p, 'k', args.size);
	gmem_close(g);
	ASSERT_EQ(p[args.size - 1], 'k');
	ASSERT_EQ(gmem_unpin(g, 0, args.size), 0);
}
