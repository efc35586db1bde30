// SPDX-License-Identifier: MIT
/*
 * test_views.c - host views: the kernel guest_memfd_test mmap cases
 * (mmap_not_supported, mmap_supported, fault_overflow, fault_private)
 * ported to gmem_mmap(), bad arguments, read-only views, fork, and the
 * switch of a fragmented view from vma mode to userfaultfd mode, which
 * must be invisible to a thread reading shared memory meanwhile.
 */
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "gmem.h"
#include "harness.h"
#include "gmem_test.h"

static size_t ps;

static void __attribute__((constructor)) init_page_size(void)
{
	ps = (size_t)getpagesize();
}

/* Call GMEM_TEST_REQUIRE_BACKEND() first. */
static struct gmem *make(uint64_t npages, uint64_t flags)
{
	struct gmem_create_args args = {
		.size = npages * ps,
		.flags = flags,
	};
	struct gmem *g = NULL;

	if (gmem_test_create(&args, &g))
		return NULL;
	return g;
}

/* mmap_not_supported: no GMEM_FLAG_MMAP, no view. */
TEST(mmap_not_supported)
{
	struct gmem *g;
	void *p;

	GMEM_TEST_REQUIRE_BACKEND();
	g = make(4, 0);
	ASSERT_NONNULL(g);
	ASSERT_EQ(gmem_mmap(g, 0, ps, PROT_READ | PROT_WRITE, &p), -ENODEV);
	ASSERT_EQ(gmem_mmap(g, 0, 4 * ps, PROT_READ | PROT_WRITE, &p),
		  -ENODEV);
	gmem_close(g);
}

TEST(mmap_bad_arguments)
{
	struct gmem *g;
	const struct {
		uint64_t off;
		size_t len;
		int prot;
	} cases[] = {
		{ 0, 0, PROT_READ },			/* empty */
		{ 1, ps, PROT_READ },			/* unaligned */
		{ ps - 1, ps, PROT_READ },
		{ 0, ps, PROT_READ | PROT_EXEC },	/* exec */
		{ 0, ps, 0x100 },			/* unknown bit */
		{ -(uint64_t)ps, 2 * ps, PROT_READ },	/* wraps */
		{ 0, SIZE_MAX, PROT_READ },		/* cannot round */
	};
	void *p = (void *)0x1;

	GMEM_TEST_REQUIRE_BACKEND();
	g = make(4, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);
	ASSERT_NONNULL(g);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ret = gmem_mmap(g, cases[i].off, cases[i].len,
				    cases[i].prot, &p);

		if (ret != -EINVAL)
			TH_LOG("case %zu returned %d", i, ret);
		EXPECT_EQ(ret, -EINVAL);
	}
	ASSERT_EQ(p, (void *)0x1);
	ASSERT_EQ(gmem_mmap(g, 0, ps, PROT_READ, NULL), -EINVAL);
	ASSERT_EQ(gmem_mmap(NULL, 0, ps, PROT_READ, &p), -EINVAL);
	ASSERT_EQ(stats(g).views, 0);
	gmem_close(g);
}

/* mmap_supported: a shared file behaves like memory; punch zeroes. */
TEST(mmap_supported)
{
	struct gmem *g;
	char *v;

	GMEM_TEST_REQUIRE_BACKEND();
	g = make(4, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);
	ASSERT_NONNULL(g);
	ASSERT_EQ(gmem_mmap(g, 0, 4 * ps, PROT_READ | PROT_WRITE, (void **)&v),
		  0);
	memset(v, 0xaa, 4 * ps);
	for (size_t i = 0; i < 4 * ps; i++)
		ASSERT_EQ((unsigned char)v[i], 0xaa);
	ASSERT_EQ(gmem_munmap(g, v, 4 * ps), 0);
	gmem_close(g);
}

/* fault_overflow: pages past the end of the file raise SIGBUS. */
TEST(fault_overflow)
{
	struct gmem *g;
	char *v;

	GMEM_TEST_REQUIRE_BACKEND();
	g = make(4, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);
	ASSERT_NONNULL(g);
	ASSERT_EQ(gmem_mmap(g, 0, 16 * ps, PROT_READ | PROT_WRITE,
			    (void **)&v), 0);
	memset(v, 0xaa, 4 * ps);
	ASSERT_SIGBUS(v + 4 * ps, 1);
	ASSERT_SIGBUS(v + 4 * ps, 0);
	ASSERT_SIGBUS(v + 16 * ps - 1, 0);
	for (size_t i = 0; i < 4 * ps; i++)
		ASSERT_EQ((unsigned char)v[i], 0xaa);
	/* A view that starts past the end maps nothing readable. */
	char *w;

	ASSERT_EQ(gmem_mmap(g, 8 * ps, ps, PROT_READ, (void **)&w), 0);
	ASSERT_SIGBUS(w, 0);
	ASSERT_EQ(gmem_munmap(g, w, ps), 0);
	ASSERT_EQ(gmem_munmap(g, v, 16 * ps), 0);
	gmem_close(g);
}

/* fault_private: a private file gives no byte to the host. */
TEST(fault_private)
{
	struct gmem *g;
	char *v;

	GMEM_TEST_REQUIRE_BACKEND();
	g = make(4, GMEM_FLAG_MMAP);
	ASSERT_NONNULL(g);
	ASSERT_EQ(gmem_mmap(g, 0, 4 * ps, PROT_READ | PROT_WRITE, (void **)&v),
		  0);
	for (size_t i = 0; i < 4; i++) {
		ASSERT_SIGBUS(v + i * ps, 1);
		ASSERT_SIGBUS(v + i * ps + ps / 2, 0);
	}
	ASSERT_EQ(gmem_munmap(g, v, 4 * ps), 0);
	gmem_close(g);
}

/* A view at an offset maps those pages; read-only views stay so. */
TEST(offset_and_read_only)
{
	struct gmem *g;
	char *all, *ro;

	GMEM_TEST_REQUIRE_BACKEND();
	g = make(8, GMEM_FLAG_MMAP);
	ASSERT_NONNULL(g);
	ASSERT_EQ(convert(g, 2 * ps, 4 * ps, 0), 0);
	ASSERT_EQ(gmem_mmap(g, 0, 8 * ps, PROT_READ | PROT_WRITE,
			    (void **)&all), 0);
	ASSERT_EQ(gmem_mmap(g, 2 * ps, 4 * ps, PROT_READ, (void **)&ro), 0);
	all[3 * ps] = 'o';
	ASSERT_EQ(ro[ps], 'o');
	ASSERT_SIGSEGV(ro + ps, 1);
	ASSERT_EQ(convert(g, 3 * ps, ps, 1), 0);
	ASSERT_SIGBUS(ro + ps, 0);
	ASSERT_EQ(convert(g, 3 * ps, ps, 0), 0);
	ASSERT_EQ(ro[ps], 'o');
	ASSERT_SIGSEGV(ro + ps, 1);
	ASSERT_EQ(gmem_munmap(g, ro, 4 * ps), 0);
	ASSERT_EQ(gmem_munmap(g, all, 8 * ps), 0);
	gmem_close(g);
}

TEST(munmap_must_match_a_view)
{
	struct gmem *g, *h;
	char *v, *w;

	GMEM_TEST_REQUIRE_BACKEND();
	g = make(4, GMEM_FLAG_MMAP);
	h = make(4, GMEM_FLAG_MMAP);
	ASSERT_NONNULL(g);
	ASSERT_NONNULL(h);
	ASSERT_EQ(gmem_mmap(g, 0, 4 * ps, PROT_READ, (void **)&v), 0);
	ASSERT_EQ(gmem_mmap(h, 0, 4 * ps, PROT_READ, (void **)&w), 0);
	ASSERT_EQ(gmem_munmap(g, v, 2 * ps), -EINVAL);
	ASSERT_EQ(gmem_munmap(g, v + ps, 3 * ps), -EINVAL);
	ASSERT_EQ(gmem_munmap(g, w, 4 * ps), -EINVAL);
	ASSERT_EQ(gmem_munmap(g, v, 4 * ps - 1), 0);	/* rounds up */
	ASSERT_EQ(gmem_munmap(g, v, 4 * ps), -EINVAL);	/* already gone */
	ASSERT_EQ(gmem_munmap(h, w, 4 * ps), 0);
	gmem_close(g);
	gmem_close(h);
}

FIXTURE(fork) {
	struct gmem *g;
	char *v;
};

FIXTURE_VARIANT(fork) {
	uint64_t flags;
};

FIXTURE_VARIANT_ADD(fork, vma) {
	.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
};

FIXTURE_VARIANT_ADD(fork, uffd) {
	.flags = GMEM_FLAG_MMAP,
};

FIXTURE_SETUP(fork)
{
	GMEM_TEST_REQUIRE_BACKEND();
	self->g = make(8, variant->flags);
	ASSERT_NONNULL(self->g);
	ASSERT_EQ(gmem_mmap(self->g, 0, 8 * ps, PROT_READ | PROT_WRITE,
			    (void **)&self->v), 0);
}

FIXTURE_TEARDOWN(fork)
{
	gmem_munmap(self->g, self->v, 8 * ps);
	gmem_close(self->g);
}

/*
 * forked_accesses: a child must never read a page that is, or later
 * becomes, private.  Views are not inherited at all: the child's reads
 * and writes fault (shared pages too), and none ever returns data.
 */
TEST_F(fork, child_cannot_read)
{
	int pipefd[2], status;
	pid_t pid;
	char go;

	ASSERT_EQ(convert(self->g, 0, 4 * ps, 0), 0);
	memset(self->v, 'F', 4 * ps);
	ASSERT_EQ(convert(self->g, 4 * ps, 4 * ps, 1), 0);
	ASSERT_EQ(pipe(pipefd), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		uint8_t val;
		int bad = 0;

		if (read(pipefd[0], &go, 1) != 1)
			_exit(2);
		for (int i = 0; i < 8; i++) {
			bad |= !harness_probe_read_u8(self->v + i * ps, &val);
			bad |= !harness_probe_write_u8(self->v + i * ps, 1);
		}
		_exit(bad ? 1 : 0);
	}
	/* The parent makes page 0 private after the fork. */
	ASSERT_EQ(convert(self->g, 0, ps, 1), 0);
	ASSERT_EQ(write(pipefd[1], "g", 1), 1);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	/* The parent's view is untouched by the child's attempts. */
	ASSERT_EQ(self->v[ps], 'F');
	close(pipefd[0]);
	close(pipefd[1]);
}

struct reader {
	volatile char *p;
	atomic_int stop;
	atomic_long reads;
	atomic_int faults;
};

static void *read_loop(void *arg)
{
	struct reader *r = arg;
	uint8_t val;

	while (!atomic_load(&r->stop)) {
		if (harness_probe_read_u8(r->p, &val) || val != 'R')
			atomic_fetch_add(&r->faults, 1);
		atomic_fetch_add(&r->reads, 1);
	}
	return NULL;
}

/* The same on a private page: every read must raise SIGBUS, no other. */
static void *private_loop(void *arg)
{
	struct reader *r = arg;
	uint8_t val;

	while (!atomic_load(&r->stop)) {
		if (harness_probe_read_u8(r->p, &val) != SIGBUS)
			atomic_fetch_add(&r->faults, 1);
		atomic_fetch_add(&r->reads, 1);
	}
	return NULL;
}

/*
 * A mostly shared view starts in vma mode; past GMEM_VIEW_MAX_ISLANDS
 * private islands it moves to userfaultfd mode.  A thread reading a
 * shared page through the switch never faults, one reading a private
 * page always gets SIGBUS (never SIGSEGV, never its contents), VMAs
 * stay few, contents and SIGBUS hold on both sides of the switch.
 */
TEST(fragmented_view_switches_mode)
{
	const uint64_t n = 4096;
	struct reader r = { 0 }, rp = { 0 };
	struct gmem *g;
	pthread_t t, tp;
	int maps0;
	char *v;

	GMEM_TEST_REQUIRE_BACKEND();
	if (gmem_test_backend() == GMEM_BACKEND_KVM)
		SKIP(return, "the kvm backend's views use VMA holes only: "
		     "they never switch to userfaultfd mode; see src/kvm.c");
	g = make(n, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);
	ASSERT_NONNULL(g);
	ASSERT_EQ(gmem_mmap(g, 0, n * ps, PROT_READ | PROT_WRITE, (void **)&v),
		  0);
	ASSERT_EQ(stats(g).views_uffd, 0);
	for (uint64_t i = 0; i < n; i++)
		v[i * ps] = 'R';
	r.p = v + (n - 1) * ps;
	rp.p = v + 2 * ps;
	ASSERT_EQ(convert(g, 2 * ps, ps, 1), 0);
	ASSERT_EQ(pthread_create(&t, NULL, read_loop, &r), 0);
	ASSERT_EQ(pthread_create(&tp, NULL, private_loop, &rp), 0);
	maps0 = count_maps() - 2;	/* the island at page 2 */
	for (uint64_t i = 0; i < n - 2; i += 2) {
		if (i != 2)
			ASSERT_EQ(convert(g, i * ps, ps, 1), 0);
		/* 11 islands in vma mode: 2 VMAs each, 1 at the view's start */
		if (i == 20)
			ASSERT_EQ(count_maps(), maps0 + 21);
	}
	atomic_store(&r.stop, 1);
	atomic_store(&rp.stop, 1);
	pthread_join(t, NULL);
	pthread_join(tp, NULL);
	TH_LOG("%ld reads of a shared page, %ld of a private one during %llu "
	       "conversions", atomic_load(&r.reads), atomic_load(&rp.reads),
	       (unsigned long long)n / 2);
	ASSERT_EQ(atomic_load(&r.faults), 0);
	ASSERT_EQ(atomic_load(&rp.faults), 0);
	ASSERT_EQ(stats(g).views_uffd, 1);
	ASSERT_LE(count_maps(), maps0 + 2);
	for (uint64_t i = 0; i < n; i++) {
		if (i % 2 == 0 && i < n - 2)
			ASSERT_SIGBUS(v + i * ps, 0);
		else
			ASSERT_EQ(v[i * ps], 'R');
	}
	/* Back to shared: contents kept in uffd mode too. */
	ASSERT_EQ(convert(g, 0, n * ps, 0), 0);
	for (uint64_t i = 0; i < n; i++)
		ASSERT_EQ(v[i * ps], 'R');
	ASSERT_EQ(gmem_munmap(g, v, n * ps), 0);
	gmem_close(g);
}
