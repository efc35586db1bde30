// SPDX-License-Identifier: MIT
/*
 * test_budget.c - vm.max_map_count is the whole VMM's (issue 10, class
 * 5).  No sequence of conversions makes libgmem exhaust it, with any
 * number of views and pins; a conversion that reduces fragmentation
 * never fails for want of VMAs, even when the rest of the process used
 * every one; libgmem's VMA use is bounded and shown by gmem_stat().
 *
 *   at_the_limit        a fragmented vma view; the test itself then
 *                       takes every VMA the process has left (as other
 *                       parts of a VMM would).  Merging conversions
 *                       succeed; splitting ones succeed by switching
 *                       the view to userfaultfd in place (memfd) or
 *                       fail -ENOMEM and change nothing (kvm); private
 *                       pages stay SIGBUS, shared ones readable.
 *   many_views          two views over 1.5 GiB of shared memory and a
 *                       pin view, fragmented into 40,000 islands: every
 *                       conversion succeeds (memfd: the views switch
 *                       mode) or, past the budget, fails -ENOMEM before
 *                       changing anything (kvm: no userfaultfd), and
 *                       the process keeps clear of the limit.
 */
#include <sys/mman.h>

#include "gmem.h"
#include "harness.h"
#include "gmem_test.h"

static long max_map_count(void)
{
	char buf[32] = "";
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");

	if (!f)
		return 65530;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return atol(buf) > 0 ? atol(buf) : 65530;
}

struct hog {
	void **maps;
	long n;
};

/* Take every VMA the process has left, but keep_free (none merge). */
static void hog_vmas(struct hog *h, long keep_free)
{
	long max = max_map_count();

	h->maps = calloc((size_t)max, sizeof(void *));
	h->n = 0;
	for (;;) {
		void *p = mmap(NULL, (size_t)getpagesize(),
			       h->n % 2 ? PROT_READ : PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			break;
		h->maps[h->n++] = p;
	}
	while (keep_free-- > 0 && h->n)
		munmap(h->maps[--h->n], (size_t)getpagesize());
}

static void hog_free(struct hog *h)
{
	while (h->n)
		munmap(h->maps[--h->n], (size_t)getpagesize());
	free(h->maps);
}

#define NP	512

/* Private and poisoned pages SIGBUS, shared pages read tag. */
static int check_view(struct gmem *g, char *v, size_t ps, uint64_t np)
{
	int bad = 0;

	for (uint64_t p = 0; p < np; p++) {
		uint8_t b;
		int sig = harness_probe_read_u8(v + p * ps, &b);
		bool priv = attr_at(g, p * ps) == GMEM_ATTR_PRIVATE;

		if (priv ? sig != SIGBUS : (sig || b != (uint8_t)(p | 1)))
			bad++;
	}
	return bad;
}

TEST_T(at_the_limit, 120)
{
	struct gmem_create_args args = {
		.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
	};
	size_t ps = (size_t)getpagesize();
	int merged = 0, split_ok = 0, split_refused = 0;
	struct gmem_stats st;
	struct hog h;
	struct gmem *g;
	char *v;

	GMEM_TEST_REQUIRE_BACKEND();
	if (gmem_test_foreign_runtime())
		SKIP(return, "a sanitizer's or valgrind's runtime maps memory "
		     "of its own at any time: with every VMA taken it fails, "
		     "not libgmem");
	args.size = NP * ps;
	ASSERT_EQ(gmem_test_create(&args, &g), 0);
	ASSERT_EQ(gmem_mmap(g, 0, args.size, PROT_READ | PROT_WRITE,
			    (void **)&v), 0);
	for (uint64_t p = 0; p < NP; p++)
		v[p * ps] = (char)(p | 1);
	/* 40 islands of 2 pages: few enough to stay in vma mode. */
	for (uint64_t p = 8; p < 8 + 40 * 8; p += 8)
		ASSERT_EQ(convert_pages(g, p, 2, 1), 0);
	ASSERT_EQ(stats(g).views_uffd, 0);
	hog_vmas(&h, 2);
	TH_LOG("the test holds %ld VMAs; 2 are left", h.n);
	/* Merging: every island back to shared, one by one. */
	for (uint64_t p = 8; p < 8 + 20 * 8; p += 8) {
		ASSERT_EQ(convert_pages(g, p, 2, 0), 0);
		merged++;
	}
	/* The VMAs that freed go to the rest of the VMM too. */
	hog_free(&h);
	hog_vmas(&h, 0);
	/* Splitting: new islands in the middle of shared runs. */
	for (uint64_t p = 200; p < 200 + 20 * 8; p += 8) {
		int ret = convert_pages(g, p + 3, 1, 1);

		if (!ret) {
			split_ok++;
		} else {
			ASSERT_EQ(ret, -ENOMEM);
			ASSERT_EQ(attr_at(g, (p + 3) * ps), 0);
			split_refused++;
		}
	}
	ASSERT_EQ(check_view(g, v, ps, NP), 0);
	/* Merging with not one VMA left: libgmem's spare does it. */
	for (uint64_t p = 8 + 20 * 8; p < 8 + 40 * 8; p += 8) {
		ASSERT_EQ(convert_pages(g, p, 2, 0), 0);
		merged++;
	}
	ASSERT_EQ(check_view(g, v, ps, NP), 0);
	st = stats(g);
	hog_free(&h);
	TH_LOG("%d merging conversions, %d splitting ones done and %d "
	       "refused at the limit; view in %s mode", merged, split_ok,
	       split_refused, st.views_uffd ? "userfaultfd" : "vma");
	/* With userfaultfd the view switched and nothing was refused. */
	if (gmem_test_uffd())
		ASSERT_EQ(split_refused, 0);
	ASSERT_EQ(check_view(g, v, ps, NP), 0);
	ASSERT_EQ(gmem_munmap(g, v, args.size), 0);
	gmem_close(g);
}

TEST_T(many_views, 300)
{
	struct gmem_create_args args = {
		.size = 3ULL << 29,	/* 1.5 GiB */
		.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
	};
	const uint64_t islands = 40000;
	size_t ps = (size_t)getpagesize();
	uint64_t done = 0, refused = 0;
	struct gmem_stats st;
	struct gmem *g;
	char *v, *u, *pin;
	int ret;

	GMEM_TEST_REQUIRE_BACKEND();
	ASSERT_EQ(gmem_test_create(&args, &g), 0);
	ASSERT_EQ(gmem_mmap(g, 0, args.size, PROT_READ | PROT_WRITE,
			    (void **)&v), 0);
	ASSERT_EQ(gmem_mmap(g, 0, args.size, PROT_READ, (void **)&u), 0);
	ASSERT_EQ(gmem_pin(g, args.size - ps, ps, (void **)&pin), 0);
	for (uint64_t i = 0; i < islands; i++) {
		ret = convert_pages(g, 2 * i + 1, 1, 1);
		if (!ret) {
			done++;
			continue;
		}
		ASSERT_EQ(ret, -ENOMEM);
		ASSERT_EQ(attr_at(g, (2 * i + 1) * ps), 0);
		refused++;
	}
	st = stats(g);
	TH_LOG("%llu islands made, %llu refused; libgmem holds %llu VMAs "
	       "(budget %llu, the process may have %ld); %llu of 2 views "
	       "in userfaultfd mode", (unsigned long long)done,
	       (unsigned long long)refused,
	       (unsigned long long)st.vmas_total,
	       (unsigned long long)st.vma_budget, max_map_count(),
	       (unsigned long long)st.views_uffd);
	ASSERT_LE(st.vmas_total, st.vma_budget);
	ASSERT_LT(count_maps(), max_map_count() - 1000);
	if (gmem_test_uffd())
		ASSERT_EQ(refused, 0);
	else
		ASSERT_GT(done, 5000);
	/* Private pages fault in both views, shared ones do not. */
	for (uint64_t p = 0; p < 2 * islands; p += 997) {
		bool priv = attr_at(g, p * ps) == GMEM_ATTR_PRIVATE;

		ASSERT_EQ(harness_probe(v + p * ps, 0, NULL),
			  priv ? SIGBUS : 0);
		ASSERT_EQ(harness_probe(u + p * ps, 0, NULL),
			  priv ? SIGBUS : 0);
	}
	/* And back: defragmenting never fails. */
	for (uint64_t i = 0; i < islands; i++)
		ASSERT_EQ(convert_pages(g, 2 * i + 1, 1, 0), 0);
	ASSERT_EQ(gmem_unpin(g, args.size - ps, ps), 0);
	ASSERT_EQ(gmem_munmap(g, u, args.size), 0);
	ASSERT_EQ(gmem_munmap(g, v, args.size), 0);
	gmem_close(g);
}
