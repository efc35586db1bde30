// SPDX-License-Identifier: MIT
/*
 * test_fragment.c - heavy fragmentation: every other page private over
 * 200,000 pages (100,000 islands) with a view mapped, under the default
 * vm.max_map_count of 65530.  Two VMAs per island would need 200,000
 * VMAs; the view must keep working with only a handful.  Variants: the
 * view made before the fragmentation (it starts in vma mode and must
 * switch) and after it (it starts in userfaultfd mode).  The kvm backend
 * has no userfaultfd guard: these tests skip there.
 */
#include <sys/mman.h>

#include "gmem.h"
#include "harness.h"
#include "gmem_test.h"

#define NPAGES		200000ULL
#define ISLANDS		(NPAGES / 2)

static long max_map_count(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	long n = -1;

	if (f) {
		if (fscanf(f, "%ld", &n) != 1)
			n = -1;
		fclose(f);
	}
	return n;
}

FIXTURE(frag) {
	struct gmem *g;
	char *v;
	size_t ps;
};

FIXTURE_VARIANT(frag) {
	int view_first;
};

FIXTURE_VARIANT_ADD(frag, view_before) {
	.view_first = 1,
};

FIXTURE_VARIANT_ADD(frag, view_after) {
	.view_first = 0,
};

FIXTURE_SETUP(frag)
{
	struct gmem_create_args args = {
		.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
	};

	GMEM_TEST_REQUIRE_BACKEND();
	if (gmem_test_backend() == GMEM_BACKEND_KVM)
		SKIP(return, "the kvm backend's views use VMA holes only: "
		     "%llu islands need %llu VMAs; see src/kvm.c",
		     ISLANDS, 2 * ISLANDS);
	self->ps = (size_t)getpagesize();
	args.size = NPAGES * self->ps;
	ASSERT_EQ(gmem_test_create(&args, &self->g), 0);
}

FIXTURE_TEARDOWN(frag)
{
	if (self->v)
		gmem_munmap(self->g, self->v, NPAGES * self->ps);
	gmem_close(self->g);
}

TEST_F_T(frag, hundred_thousand_islands, 120)
{
	size_t ps = self->ps;
	struct gmem_stats st;
	long limit = max_map_count();
	int maps0 = count_maps();
	uint64_t seed = 12345;
	char *v;

	TH_LOG("vm.max_map_count = %ld", limit);
	if (variant->view_first) {
		ASSERT_EQ(gmem_mmap(self->g, 0, NPAGES * ps,
				    PROT_READ | PROT_WRITE, (void **)&v), 0);
		self->v = v;
		for (uint64_t i = 0; i < NPAGES; i++)
			v[i * ps] = (char)(i % 251);
	}
	for (uint64_t i = 0; i < NPAGES; i += 2)
		ASSERT_EQ(convert(self->g, i * ps, ps, 1), 0);
	if (!variant->view_first) {
		ASSERT_EQ(gmem_mmap(self->g, 0, NPAGES * ps,
				    PROT_READ | PROT_WRITE, (void **)&v), 0);
		self->v = v;
		for (uint64_t i = 1; i < NPAGES; i += 2)
			v[i * ps] = (char)(i % 251);
	}
	ASSERT_EQ(gmem_stat(self->g, &st, sizeof(st)), 0);
	ASSERT_EQ(st.nr_ranges, NPAGES);
	ASSERT_EQ(st.priv, ISLANDS * ps);
	ASSERT_EQ(st.views_uffd, 1);
	TH_LOG("maps: %d before, %d after; tracking %llu bytes", maps0,
	       count_maps(), (unsigned long long)st.state_bytes);
	ASSERT_LE(count_maps(), maps0 + 4);

	/* Every shared page holds its data; sampled private pages SIGBUS. */
	for (uint64_t i = 1; i < NPAGES; i += 2)
		ASSERT_EQ(v[i * ps], (char)(i % 251));
	for (int k = 0; k < 2000; k++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		uint64_t i = (seed >> 33) % NPAGES & ~1ULL;

		ASSERT_SIGBUS(v + i * ps, k & 1);
	}
	/* Flip every island back: the view keeps working the other way. */
	ASSERT_EQ(convert(self->g, 0, NPAGES * ps, 0), 0);
	ASSERT_EQ(gmem_stat(self->g, &st, sizeof(st)), 0);
	ASSERT_EQ(st.nr_ranges, 1);
	for (uint64_t i = 1; i < NPAGES; i += 2)
		ASSERT_EQ(v[i * ps], (char)(i % 251));
	if (variant->view_first) {
		for (uint64_t i = 0; i < NPAGES; i += 2)
			ASSERT_EQ(v[i * ps], (char)(i % 251));
	}
}
