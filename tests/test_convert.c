// SPDX-License-Identifier: MIT
/*
 * test_convert.c - in-place conversion: the behaviour of the kernel's
 * guest_memfd_conversions_test (in-place conversion series) ported to
 * gmem_set_attributes(), plus the contract's rules: contents preserved,
 * error_offset, pins, no-op, every view updated at once, bad input.
 *
 * The host side of the kernel test is a view; its guest side is
 * gmem_populate() (writes into private memory) and reads through a view
 * after converting to shared.  Every case runs with both view guards:
 * a file created private (view in userfaultfd mode) and one created
 * shared (view in vma mode); on the kvm backend both views are vma mode.
 */
#include <linux/falloc.h>
#include <sys/mman.h>

#include "gmem.h"
#include "harness.h"
#include "gmem_test.h"

#define NPAGES	16

FIXTURE(conv) {
	struct gmem *g;
	char *view;
	size_t ps;
};

FIXTURE_VARIANT(conv) {
	uint64_t flags;
	int uffd;		/* expected mode of the view, if the
				   backend has the userfaultfd guard */
};

FIXTURE_VARIANT_ADD(conv, init_private) {
	.flags = GMEM_FLAG_MMAP,
	.uffd = 1,
};

FIXTURE_VARIANT_ADD(conv, init_shared) {
	.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
	.uffd = 0,
};

FIXTURE_SETUP(conv)
{
	struct gmem_create_args args = {
		.flags = variant->flags,
	};

	GMEM_TEST_REQUIRE_BACKEND();
	self->ps = (size_t)getpagesize();
	args.size = NPAGES * self->ps;
	ASSERT_EQ(gmem_test_create(&args, &self->g), 0);
	ASSERT_EQ(gmem_mmap(self->g, 0, args.size, PROT_READ | PROT_WRITE,
			    (void **)&self->view), 0);
	ASSERT_EQ(stats(self->g).views_uffd,
		  variant->uffd && gmem_test_uffd());
}

FIXTURE_TEARDOWN(conv)
{
	if (self->view)
		gmem_munmap(self->g, self->view, NPAGES * self->ps);
	gmem_close(self->g);
}

/* Host writes while shared; the guest side keeps it across private. */
static void write_shared(char *view, size_t ps, unsigned int page, char c)
{
	memset(view + page * ps, c, ps);
}

static int page_is(char *view, size_t ps, unsigned int page, char c)
{
	for (size_t i = 0; i < ps; i++)
		if (view[page * ps + i] != c)
			return 0;
	return 1;
}

/* init_private/init_shared: values carried across both directions. */
TEST_F(conv, round_trip_keeps_contents)
{
	size_t ps = self->ps;

	ASSERT_EQ(convert(self->g, 0, ps, 0, NULL), 0);
	write_shared(self->view, ps, 0, 'A');
	ASSERT_EQ(convert(self->g, 0, ps, 1, NULL), 0);
	ASSERT_SIGBUS(self->view, 0);
	ASSERT_SIGBUS(self->view + ps - 1, 1);
	ASSERT_EQ(convert(self->g, 0, ps, 0, NULL), 0);
	ASSERT_TRUE(page_is(self->view, ps, 0, 'A'));
	write_shared(self->view, ps, 0, 'B');
	for (int i = 0; i < 50; i++) {
		ASSERT_EQ(convert(self->g, 0, ps, 1, NULL), 0);
		ASSERT_EQ(convert(self->g, 0, ps, 0, NULL), 0);
	}
	ASSERT_TRUE(page_is(self->view, ps, 0, 'B'));
}

/* The guest's private writes (populate) show once the page is shared. */
TEST_F(conv, private_data_visible_after_sharing)
{
	size_t ps = self->ps;
	char buf[64];

	ASSERT_EQ(convert(self->g, 0, NPAGES * ps, 1, NULL), 0);
	memset(buf, 'G', sizeof(buf));
	ASSERT_EQ(gmem_populate(self->g, 3 * ps, buf, sizeof(buf)),
		  (ssize_t)sizeof(buf));
	ASSERT_SIGBUS(self->view + 3 * ps, 0);
	ASSERT_EQ(convert(self->g, 3 * ps, ps, 0, NULL), 0);
	ASSERT_EQ(self->view[3 * ps], 'G');
	ASSERT_EQ(self->view[3 * ps + 63], 'G');
	ASSERT_EQ(self->view[3 * ps + 64], 0);
}

/* indexing: only the converted page changes; catches "always page 0". */
TEST_F(conv, indexing)
{
	size_t ps = self->ps;

	ASSERT_EQ(convert(self->g, 0, 4 * ps, 0, NULL), 0);
	for (unsigned int i = 0; i < 4; i++)
		write_shared(self->view, ps, i, (char)('a' + i));
	for (unsigned int t = 0; t < 4; t++) {
		ASSERT_EQ(convert(self->g, t * ps, ps, 1, NULL), 0);
		for (unsigned int i = 0; i < 4; i++) {
			if (i == t) {
				ASSERT_SIGBUS(self->view + i * ps, 0);
				ASSERT_EQ(attr_at(self->g, i * ps),
					  GMEM_ATTR_PRIVATE);
			} else {
				ASSERT_TRUE(page_is(self->view, ps, i,
						    (char)('a' + i)));
				ASSERT_EQ(attr_at(self->g, i * ps), 0);
			}
		}
		ASSERT_EQ(convert(self->g, t * ps, ps, 0, NULL), 0);
		ASSERT_TRUE(page_is(self->view, ps, t, (char)('a' + t)));
	}
}

/* before_allocation: state is recorded and honoured with no memory. */
TEST_F(conv, before_allocation)
{
	size_t ps = self->ps;

	ASSERT_EQ(convert(self->g, 5 * ps, ps, 1, NULL), 0);
	ASSERT_EQ(convert(self->g, 6 * ps, ps, 0, NULL), 0);
	ASSERT_SIGBUS(self->view + 5 * ps, 1);
	ASSERT_EQ(self->view[6 * ps], 0);
	ASSERT_EQ(attr_at(self->g, 5 * ps), GMEM_ATTR_PRIVATE);
	ASSERT_EQ(attr_at(self->g, 6 * ps), 0);
}

/* unallocated_folios: a range mixing touched and untouched pages. */
TEST_F(conv, unallocated_pages)
{
	size_t ps = self->ps;

	ASSERT_EQ(convert(self->g, 0, 8 * ps, 0, NULL), 0);
	self->view[2 * ps] = 'A';
	self->view[4 * ps] = 'A';
	ASSERT_EQ(convert(self->g, 0, 8 * ps, 1, NULL), 0);
	for (unsigned int i = 0; i < 8; i++)
		ASSERT_SIGBUS(self->view + i * ps, 0);
	for (unsigned int i = 0; i < 8; i++) {
		ASSERT_EQ(convert(self->g, i * ps, ps, 0, NULL), 0);
		ASSERT_EQ(self->view[i * ps], (i == 2 || i == 4) ? 'A' : 0);
	}
}

/* Neighbours of a converted range keep state and contents. */
TEST_F(conv, surrounding_pages_untouched)
{
	size_t ps = self->ps;

	ASSERT_EQ(convert(self->g, 0, NPAGES * ps, 0, NULL), 0);
	memset(self->view, 'S', NPAGES * ps);
	ASSERT_EQ(convert(self->g, 5 * ps, 3 * ps, 1, NULL), 0);
	ASSERT_TRUE(page_is(self->view, ps, 4, 'S'));
	ASSERT_TRUE(page_is(self->view, ps, 8, 'S'));
	ASSERT_SIGBUS(self->view + 5 * ps, 0);
	ASSERT_SIGBUS(self->view + 8 * ps - 1, 0);
	ASSERT_EQ(stats(self->g).nr_ranges, 3);
}

/* truncate: punch-hole keeps the state; the page reads back as zeros. */
TEST_F(conv, punch_keeps_state)
{
	size_t ps = self->ps;
	int mode = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE;

	ASSERT_EQ(convert(self->g, 0, 2 * ps, 0, NULL), 0);
	ASSERT_EQ(convert(self->g, ps, ps, 1, NULL), 0);
	self->view[0] = 'x';
	ASSERT_EQ(gmem_fallocate(self->g, mode, 0, 2 * ps), 0);
	ASSERT_EQ(attr_at(self->g, 0), 0);
	ASSERT_EQ(attr_at(self->g, ps), GMEM_ATTR_PRIVATE);
	ASSERT_EQ(self->view[0], 0);
	ASSERT_SIGBUS(self->view + ps, 0);
}

/* elevated_refcount: a pin blocks to-private, reporting the page. */
TEST_F(conv, pinned_page_blocks_conversion)
{
	size_t ps = self->ps;
	uint64_t eo = 0;
	void *pin;

	ASSERT_EQ(convert(self->g, 0, 4 * ps, 0, NULL), 0);
	memset(self->view, 'P', 4 * ps);
	ASSERT_EQ(gmem_pin(self->g, 2 * ps, ps, &pin), 0);
	ASSERT_EQ(*(char *)pin, 'P');

	/* Bulk and single-page conversions fail; nothing changes. */
	ASSERT_EQ(convert(self->g, 0, 4 * ps, 1, &eo), -EAGAIN);
	ASSERT_EQ(eo, 2 * ps);
	ASSERT_EQ(convert(self->g, 2 * ps, ps, 1, &eo), -EAGAIN);
	ASSERT_EQ(eo, 2 * ps);
	for (unsigned int i = 0; i < 4; i++) {
		ASSERT_EQ(attr_at(self->g, i * ps), 0);
		ASSERT_EQ(self->view[i * ps], 'P');
	}
	/* Other pages convert. */
	ASSERT_EQ(convert(self->g, 0, 2 * ps, 1, NULL), 0);
	ASSERT_EQ(convert(self->g, 3 * ps, ps, 1, NULL), 0);
	/* After unpin, all convert. */
	ASSERT_EQ(gmem_unpin(self->g, 2 * ps, ps), 0);
	ASSERT_EQ(convert(self->g, 0, 4 * ps, 1, NULL), 0);
	ASSERT_SIGBUS(self->view + 2 * ps, 0);
	/* To shared is never blocked by pins (there are none to private). */
	ASSERT_EQ(convert(self->g, 0, 4 * ps, 0, NULL), 0);
	ASSERT_EQ(self->view[2 * ps], 'P');
}

struct unpinner {
	struct gmem *g;
	uint64_t off, len;
	int ret;
};

static void *unpin_later(void *arg)
{
	struct unpinner *u = arg;

	usleep(100 * 1000);
	u->ret = gmem_unpin(u->g, u->off, u->len);
	return NULL;
}

/* GMEM_SET_ATTR_WAIT blocks until the pin drops instead of -EAGAIN. */
TEST_F(conv, wait_flag_waits_for_unpin)
{
	size_t ps = self->ps;
	struct unpinner u = { .g = self->g, .off = ps, .len = ps, .ret = -1 };
	struct gmem_attributes a = {
		.offset = 0,
		.size = 2 * ps,
		.attributes = GMEM_ATTR_PRIVATE,
		.flags = GMEM_SET_ATTR_WAIT,
	};
	pthread_t t;
	void *pin;

	ASSERT_EQ(convert(self->g, 0, 2 * ps, 0, NULL), 0);
	ASSERT_EQ(gmem_pin(self->g, ps, ps, &pin), 0);
	ASSERT_EQ(pthread_create(&t, NULL, unpin_later, &u), 0);
	ASSERT_EQ(gmem_set_attributes(self->g, &a), 0);
	pthread_join(t, NULL);
	ASSERT_EQ(u.ret, 0);
	ASSERT_EQ(attr_at(self->g, ps), GMEM_ATTR_PRIVATE);
}

/* A range already in the target state is a no-op: not even counted. */
TEST_F(conv, no_op)
{
	size_t ps = self->ps;
	uint64_t before;

	ASSERT_EQ(convert(self->g, 0, NPAGES * ps, 0, NULL), 0);
	ASSERT_EQ(convert(self->g, 0, 2 * ps, 1, NULL), 0);
	before = stats(self->g).conversions;
	ASSERT_EQ(convert(self->g, 0, 2 * ps, 1, NULL), 0);
	ASSERT_EQ(convert(self->g, ps, ps, 1, NULL), 0);
	ASSERT_EQ(stats(self->g).conversions, before);
	ASSERT_EQ(convert(self->g, 0, 4 * ps, 1, NULL), 0);
	ASSERT_EQ(stats(self->g).conversions, before + 1);
}

/* Every view of the file changes at once, wherever it is mapped. */
TEST_F(conv, all_views_agree)
{
	size_t ps = self->ps;
	char *v2, *v3;

	ASSERT_EQ(gmem_mmap(self->g, 0, NPAGES * ps, PROT_READ | PROT_WRITE,
			    (void **)&v2), 0);
	ASSERT_EQ(gmem_mmap(self->g, 4 * ps, 4 * ps, PROT_READ, (void **)&v3),
		  0);
	ASSERT_EQ(convert(self->g, 0, NPAGES * ps, 0, NULL), 0);
	self->view[5 * ps] = 'v';
	ASSERT_EQ(v2[5 * ps], 'v');
	ASSERT_EQ(v3[ps], 'v');
	ASSERT_EQ(convert(self->g, 5 * ps, ps, 1, NULL), 0);
	ASSERT_SIGBUS(self->view + 5 * ps, 0);
	ASSERT_SIGBUS(v2 + 5 * ps, 1);
	ASSERT_SIGBUS(v3 + ps, 0);
	ASSERT_NO_SIGNAL(v3, 0);
	ASSERT_EQ(convert(self->g, 5 * ps, ps, 0, NULL), 0);
	ASSERT_EQ(v3[ps], 'v');
	ASSERT_EQ(gmem_munmap(self->g, v2, NPAGES * ps), 0);
	ASSERT_EQ(gmem_munmap(self->g, v3, 4 * ps), 0);
}

/* A system call handed a private address fails with EFAULT, no data. */
TEST_F(conv, kernel_access_to_private_fails)
{
	size_t ps = self->ps;
	int fds[2];

	ASSERT_EQ(convert(self->g, 0, 2 * ps, 0, NULL), 0);
	memset(self->view, 'k', 2 * ps);
	ASSERT_EQ(convert(self->g, ps, ps, 1, NULL), 0);
	ASSERT_EQ(pipe(fds), 0);
	ASSERT_EQ(write(fds[1], self->view, 16), 16);
	errno = 0;
	ASSERT_EQ(write(fds[1], self->view + ps, 16), -1);
	ASSERT_EQ(errno, EFAULT);
	errno = 0;
	ASSERT_EQ(read(fds[0], self->view + ps, 16), -1);
	ASSERT_EQ(errno, EFAULT);
	close(fds[0]);
	close(fds[1]);
}

/* get_attributes reports uniform runs. */
TEST_F(conv, run_lengths)
{
	size_t ps = self->ps;
	uint64_t attr, run;

	ASSERT_EQ(convert(self->g, 0, NPAGES * ps, 0, NULL), 0);
	ASSERT_EQ(convert(self->g, 4 * ps, 4 * ps, 1, NULL), 0);
	ASSERT_EQ(gmem_get_attributes(self->g, 0, &attr, &run), 0);
	ASSERT_EQ(attr, 0);
	ASSERT_EQ(run, 4 * ps);
	ASSERT_EQ(gmem_get_attributes(self->g, 5 * ps, &attr, &run), 0);
	ASSERT_EQ(attr, GMEM_ATTR_PRIVATE);
	ASSERT_EQ(run, 3 * ps);
	ASSERT_EQ(gmem_get_attributes(self->g, 8 * ps, &attr, &run), 0);
	ASSERT_EQ(run, (NPAGES - 8) * ps);
	ASSERT_EQ(gmem_get_attributes(self->g, 8 * ps, &attr, NULL), 0);
	ASSERT_EQ(gmem_get_attributes(self->g, NPAGES * ps, &attr, &run),
		  -EINVAL);
	ASSERT_EQ(gmem_get_attributes(self->g, 1, &attr, &run), -EINVAL);
	ASSERT_EQ(gmem_get_attributes(self->g, 0, NULL, &run), -EINVAL);
	ASSERT_EQ(gmem_get_attributes(NULL, 0, &attr, &run), -EINVAL);
}

/* Stats follow the conversions. */
TEST_F(conv, stats)
{
	size_t ps = self->ps;
	struct gmem_stats st;

	ASSERT_EQ(convert(self->g, 0, NPAGES * ps, 1, NULL), 0);
	ASSERT_EQ(convert(self->g, 2 * ps, 3 * ps, 0, NULL), 0);
	st = stats(self->g);
	ASSERT_EQ(st.size, NPAGES * ps);
	ASSERT_EQ(st.shared, 3 * ps);
	ASSERT_EQ(st.priv, (NPAGES - 3) * ps);
	ASSERT_EQ(st.nr_ranges, 3);
	ASSERT_EQ(st.views, 1);
	ASSERT_GE(st.pages_converted, 3);
}

struct bad_case {
	const char *what;
	uint64_t off, size, attributes, flags, reserved;
};

/* Bad input: exact errno, state and stats unchanged. */
TEST_F(conv, bad_input)
{
	size_t ps = self->ps;
	uint64_t end = NPAGES * ps;
	const struct bad_case cases[] = {
		{ "size 0", 0, 0, GMEM_ATTR_PRIVATE, 0, 0 },
		{ "unaligned offset", 1, ps, GMEM_ATTR_PRIVATE, 0, 0 },
		{ "unaligned size", 0, ps + 1, GMEM_ATTR_PRIVATE, 0, 0 },
		{ "size < page", 0, ps - 1, GMEM_ATTR_PRIVATE, 0, 0 },
		{ "past the end", end - ps, 2 * ps, GMEM_ATTR_PRIVATE, 0, 0 },
		{ "offset at end", end, ps, GMEM_ATTR_PRIVATE, 0, 0 },
		{ "overflow", -(uint64_t)ps, 2 * ps, GMEM_ATTR_PRIVATE, 0, 0 },
		{ "huge size", ps, UINT64_MAX & ~(uint64_t)(ps - 1),
		  GMEM_ATTR_PRIVATE, 0, 0 },
		{ "unknown attribute", 0, ps, 1, 0, 0 },
		{ "unknown attribute 63", 0, ps, 1ULL << 63, 0, 0 },
		{ "unknown flag", 0, ps, GMEM_ATTR_PRIVATE, 1ULL << 1, 0 },
		{ "reserved", 0, ps, GMEM_ATTR_PRIVATE, 0, 1 },
	};
	struct gmem_stats before, after;

	ASSERT_EQ(convert(self->g, 0, end, 0, NULL), 0);
	self->view[0] = 'z';
	before = stats(self->g);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gmem_attributes a = {
			.offset = cases[i].off,
			.size = cases[i].size,
			.attributes = cases[i].attributes,
			.flags = cases[i].flags,
		};

		a.reserved[i % 3] = cases[i].reserved;
		int ret = gmem_set_attributes(self->g, &a);

		if (ret != -EINVAL)
			TH_LOG("case \"%s\" returned %d", cases[i].what, ret);
		EXPECT_EQ(ret, -EINVAL);
	}
	ASSERT_EQ(gmem_set_attributes(self->g, NULL), -EINVAL);
	ASSERT_EQ(gmem_set_attributes(NULL, &(struct gmem_attributes){
					.size = ps }), -EINVAL);
	after = stats(self->g);
	ASSERT_EQ(memcmp(&before, &after, sizeof(before)), 0);
	ASSERT_EQ(self->view[0], 'z');
	ASSERT_EQ(attr_at(self->g, 0), 0);
}


