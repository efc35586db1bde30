// SPDX-License-Identifier: MIT
/*
 * test_memory.c - memory stays proportional to what is used (issue 10,
 * class 7).  A userfaultfd-guarded view maps every shown page, so it must
 * not be asked to show pages nobody touched: the pin view shows pinned
 * pages only, a punch never allocates, and a conversion that would make
 * a userfaultfd view allocate a large untouched range switches it to the
 * vma guard first.  The snapshots of parked pages are bounded.
 */
#include <linux/falloc.h>
#include <sys/mman.h>

#include "gmem.h"
#include "harness.h"
#include "gmem_test.h"

#define GiB	(1ULL << 30)
#define MiB	(1ULL << 20)

static struct gmem *make(uint64_t size, uint64_t flags)
{
	struct gmem_create_args args = { .size = size, .flags = flags };
	struct gmem *g = NULL;

	if (gmem_test_create(&args, &g))
		return NULL;
	return g;
}

/* A punch of a never-touched file, with uffd views (a pin's too). */
TEST(punch_allocates_nothing)
{
	const int punch = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE;
	size_t ps = (size_t)getpagesize();
	struct gmem *g;
	void *v, *pin;

	GMEM_TEST_REQUIRE_BACKEND();
	g = make(GiB, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);
	ASSERT_NONNULL(g);
	ASSERT_EQ(gmem_mmap(g, 0, GiB, PROT_READ | PROT_WRITE, &v), 0);
	ASSERT_EQ(gmem_pin(g, 0, ps, &pin), 0);
	ASSERT_EQ(gmem_fallocate(g, punch, 0, GiB), 0);
	TH_LOG("allocated after the punch: %llu KiB",
	       (unsigned long long)stats(g).allocated >> 10);
	ASSERT_LE(stats(g).allocated, MiB);
	ASSERT_EQ(gmem_unpin(g, 0, ps), 0);
	ASSERT_EQ(gmem_munmap(g, v, GiB), 0);
	gmem_close(g);
}

/*
 * The same with a userfaultfd view that covers only a little of it: a
 * punch of the untouched shared rest must not zero (allocate) it.
 */
TEST(punch_beside_a_small_uffd_view)
{
	const int punch = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE;
	size_t ps = (size_t)getpagesize();
	struct gmem *g;
	void *v;

	GMEM_TEST_REQUIRE_BACKEND();
	g = make(GiB, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);
	ASSERT_NONNULL(g);
	ASSERT_EQ(convert(g, 0, 8 * MiB, 1), 0);
	ASSERT_EQ(gmem_mmap(g, 0, 8 * MiB + ps, PROT_READ, &v), 0);
	ASSERT_EQ(stats(g).views_uffd, gmem_test_uffd());
	ASSERT_EQ(gmem_fallocate(g, punch, 0, GiB), 0);
	TH_LOG("allocated after the punch: %llu KiB",
	       (unsigned long long)stats(g).allocated >> 10);
	ASSERT_LE(stats(g).allocated, MiB);
	ASSERT_EQ(gmem_munmap(g, v, 8 * MiB + ps), 0);
	gmem_close(g);
}

/* Pinning one page of a file with 512 MiB shared, mostly private. */
TEST(pin_in_a_mostly_private_file)
{
	size_t ps = (size_t)getpagesize();
	struct gmem *g;
	void *pin;

	GMEM_TEST_REQUIRE_BACKEND();
	g = make(4 * GiB, GMEM_FLAG_MMAP);
	ASSERT_NONNULL(g);
	ASSERT_EQ(convert(g, 0, 512 * MiB, 0), 0);
	ASSERT_EQ(gmem_pin(g, 100 * MiB, ps, &pin), 0);
	TH_LOG("allocated with one page pinned: %llu KiB",
	       (unsigned long long)stats(g).allocated >> 10);
	ASSERT_LE(stats(g).allocated, MiB);
	ASSERT_EQ(gmem_unpin(g, 100 * MiB, ps), 0);
	gmem_close(g);
}

/* Pinning one page allocates one page (and what the view touched). */
TEST(pin_allocates_the_pinned_pages)
{
	size_t ps = (size_t)getpagesize();
	struct gmem *g;
	void *v, *pin;

	GMEM_TEST_REQUIRE_BACKEND();
	g = make(GiB, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);
	ASSERT_NONNULL(g);
	ASSERT_EQ(gmem_mmap(g, 0, GiB, PROT_READ | PROT_WRITE, &v), 0);
	ASSERT_EQ(gmem_pin(g, 512 * MiB, ps, &pin), 0);
	*(volatile char *)pin = 1;
	TH_LOG("allocated with one page pinned: %llu KiB",
	       (unsigned long long)stats(g).allocated >> 10);
	ASSERT_LE(stats(g).allocated, MiB);
	ASSERT_EQ(gmem_unpin(g, 512 * MiB, ps), 0);
	ASSERT_EQ(gmem_munmap(g, v, GiB), 0);
	gmem_close(g);
}

/*
 * A mostly private file's view is userfaultfd-guarded; a conversion of
 * 512 MiB nobody touched to shared must not allocate it.
 */
TEST(large_to_shared_allocates_nothing)
{
	struct gmem_stats st;
	struct gmem *g;
	char *v;

	GMEM_TEST_REQUIRE_BACKEND();
	g = make(GiB, GMEM_FLAG_MMAP);
	ASSERT_NONNULL(g);
	ASSERT_EQ(gmem_mmap(g, 0, GiB, PROT_READ | PROT_WRITE, (void **)&v),
		  0);
	ASSERT_EQ(convert(g, 256 * MiB, 512 * MiB, 0), 0);
	st = stats(g);
	TH_LOG("allocated after 512 MiB went shared: %llu KiB (view in %s "
	       "mode)", (unsigned long long)st.allocated >> 10,
	       st.views_uffd ? "userfaultfd" : "vma");
	ASSERT_LE(st.allocated, MiB);
	/* Shared and readable (zeros), private still SIGBUS. */
	ASSERT_EQ(v[300 * MiB], 0);
	ASSERT_SIGBUS(v + 100 * MiB, 0);
	ASSERT_SIGBUS(v + 800 * MiB, 0);
	ASSERT_EQ(gmem_munmap(g, v, GiB), 0);
	gmem_close(g);
}

/* Snapshots of parked pages are bounded, whatever the guest does. */
TEST(snapshots_are_bounded)
{
	size_t ps = (size_t)getpagesize();
	const uint64_t np = 4096;
	struct gmem_stats st;
	struct gmem *g;
	char *v;

	GMEM_TEST_REQUIRE_BACKEND();
	if (gmem_test_backend() == GMEM_BACKEND_KVM)
		SKIP(return, "kvm: pages are re-homed at once, not parked");
	g = make(np * ps, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);
	ASSERT_NONNULL(g);
	ASSERT_EQ(gmem_mmap(g, 0, np * ps, PROT_READ | PROT_WRITE,
			    (void **)&v), 0);
	/* Every page written, then turned private one by one. */
	for (uint64_t p = 0; p < np; p++)
		v[p * ps] = (char)(p | 1);
	for (uint64_t p = 0; p < np; p++)
		ASSERT_EQ(convert_pages(g, p, 1, 1), 0);
	st = stats(g);
	TH_LOG("%llu pages private: %llu parked in %llu KiB, %llu re-homed",
	       (unsigned long long)np, (unsigned long long)st.parked,
	       (unsigned long long)st.parked_bytes >> 10,
	       (unsigned long long)st.rehomed);
	ASSERT_LE(st.parked, 512);
	ASSERT_LE(st.parked_bytes, 3 * MiB);
	ASSERT_EQ(st.parked + st.rehomed, np);
	/* Contents survive either way. */
	ASSERT_EQ(convert_pages(g, 0, np, 0), 0);
	for (uint64_t p = 0; p < np; p++)
		ASSERT_EQ(v[p * ps], (char)(p | 1));
	ASSERT_EQ(gmem_munmap(g, v, np * ps), 0);
	gmem_close(g);
}
