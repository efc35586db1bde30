// SPDX-License-Identifier: MIT
/*
 * test_fork.c - no mapping of the backing is ever inherited by a child
 * (issue 10, class 2).  A fork() copies every mapping of the process
 * that is not MADV_DONTFORK; a child holding a mapping of the backing,
 * even a PROT_NONE one, can mprotect() it and read every page of that
 * range, private ones included, now and later.  libgmem makes every
 * mapping of a backing under a fork guard and marks it DONTFORK before
 * releasing it (src/map.c).
 *
 *   forks_race_mappings  threads fork in a loop while another thread
 *                        makes views, converts (vma views map the
 *                        backing again on every conversion to shared),
 *                        pins, and reaches pages through get_pfn; every
 *                        child scans its /proc/self/maps for a mapping
 *                        of a backing file
 *   every_mapping_dontfork after the same operations, every VMA of a
 *                        backing in the parent carries the "dc" flag
 *                        (VM_DONTCOPY) in /proc/self/smaps
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "gmem.h"
#include "harness.h"
#include "gmem_test.h"

#define NPAGES	64

/* Names of backing mappings in /proc/PID/maps: the hole memfd is not. */
static bool is_backing(const char *line)
{
	return (strstr(line, "memfd:gmem") && !strstr(line, "gmem-hole")) ||
	       strstr(line, "kvm-gmem");
}

/* In the child: 1 if a backing mapping was inherited, else 0. */
static int child_scan(void)
{
	char buf[8192];
	int fd = open("/proc/self/maps", O_RDONLY), n, found = 0;
	size_t len = 0;

	if (fd < 0)
		return 2;
	while ((n = (int)read(fd, buf + len, sizeof(buf) - 1 - len)) > 0) {
		char *nl;

		len += (size_t)n;
		buf[len] = 0;
		while ((nl = strchr(buf, '\n'))) {
			*nl = 0;
			found |= is_backing(buf);
			len -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, len + 1);
		}
		if (len == sizeof(buf) - 1)
			len = 0;	/* a line too long: not ours */
	}
	close(fd);
	return found;
}

static void on_invalidate(void *o, uint64_t off, uint64_t size,
			  unsigned int reason)
{
	(void)o, (void)off, (void)size, (void)reason;
}

static const struct gmem_binding_ops ops = { .invalidate = on_invalidate };

struct churn {
	_Atomic int stop;
	_Atomic long rounds;
	int error;
};

/* Everything that maps the backing, over and over. */
static void *churn_fn(void *arg)
{
	struct churn *c = arg;
	size_t ps = (size_t)getpagesize();
	struct gmem_create_args args = {
		.size = NPAGES * ps,
		.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
	};

	while (!atomic_load(&c->stop)) {
		struct gmem_binding *b;
		struct gmem_pfn pfn;
		struct gmem *g;
		void *v, *p;

		if (gmem_test_create(&args, &g)) {
			c->error = 1;
			break;
		}
		c->error |= gmem_mmap(g, 0, args.size, PROT_READ | PROT_WRITE,
				      &v) != 0;
		for (unsigned int i = 0; !c->error && i < 8; i++) {
			c->error |= convert_pages(g, i * 4, 2, 1) != 0;
			c->error |= convert_pages(g, i * 4, 2, 0) != 0;
		}
		c->error |= gmem_pin(g, 8 * ps, ps, &p) != 0;
		c->error |= gmem_unpin(g, 8 * ps, ps) != 0;
		c->error |= gmem_bind(g, 0, args.size, &ops, NULL, &b) != 0;
		c->error |= gmem_get_pfn(b, 3, GMEM_ACCESS_SHARED, &pfn) != 0;
		c->error |= gmem_put_pfn(b, 3, GMEM_ACCESS_SHARED) != 0;
		c->error |= gmem_unbind(b) != 0;
		c->error |= gmem_munmap(g, v, args.size) != 0;
		gmem_close(g);
		atomic_fetch_add(&c->rounds, 1);
		if (c->error)
			break;
	}
	return NULL;
}

TEST_T(forks_race_mappings, 60)
{
	struct churn c = { 0 };
	pthread_t t;
	long children = 0, leaks = 0;
	struct timespec t0, t1;

	GMEM_TEST_REQUIRE_BACKEND();
	ASSERT_EQ(pthread_create(&t, NULL, churn_fn, &c), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		int st;
		pid_t pid = fork();

		if (pid == 0)
			_exit(child_scan());
		if (pid < 0)
			break;
		waitpid(pid, &st, 0);
		children++;
		leaks += WIFEXITED(st) && WEXITSTATUS(st) == 1;
		clock_gettime(CLOCK_MONOTONIC, &t1);
	} while (t1.tv_sec - t0.tv_sec < 3 && !c.error);
	atomic_store(&c.stop, 1);
	pthread_join(t, NULL);
	TH_LOG("%ld children forked over %ld rounds of mappings, %ld "
	       "inherited a mapping of the backing", children,
	       atomic_load(&c.rounds), leaks);
	ASSERT_EQ(c.error, 0);
	ASSERT_GT(children, 100);
	ASSERT_EQ(leaks, 0);
}

struct smaps_check {
	bool backing;
	int vmas, without_dc;
};

TEST(every_mapping_dontfork)
{
	size_t ps = (size_t)getpagesize();
	struct gmem_create_args args = {
		.size = NPAGES * ps,
		.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
	};
	struct smaps_check s = { 0 };
	struct gmem_binding *b;
	struct gmem_pfn pfn;
	struct gmem *g;
	void *v, *u, *p;
	char line[512];
	FILE *f;

	GMEM_TEST_REQUIRE_BACKEND();
	ASSERT_EQ(gmem_test_create(&args, &g), 0);
	ASSERT_EQ(gmem_mmap(g, 0, args.size, PROT_READ | PROT_WRITE, &v), 0);
	ASSERT_EQ(convert_pages(g, 0, NPAGES, 1), 0);
	ASSERT_EQ(gmem_mmap(g, 0, args.size, PROT_READ, &u), 0);
	for (unsigned int i = 0; i < NPAGES; i += 3)
		ASSERT_EQ(convert_pages(g, i, 1, 0), 0);
	ASSERT_EQ(gmem_pin(g, 3 * ps, ps, &p), 0);
	ASSERT_EQ(gmem_bind(g, 0, args.size, &ops, NULL, &b), 0);
	ASSERT_EQ(gmem_get_pfn(b, 1, GMEM_ACCESS_PRIVATE, &pfn), 0);
	f = fopen("/proc/self/smaps", "re");
	ASSERT_NONNULL(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, ' ')) {
			s.backing = is_backing(line);
			s.vmas += s.backing;
		} else if (s.backing && !strncmp(line, "VmFlags:", 8)) {
			s.without_dc += !strstr(line, " dc");
		}
	}
	fclose(f);
	TH_LOG("%d VMAs of the backing, %d without DONTFORK", s.vmas,
	       s.without_dc);
	EXPECT_GT(s.vmas, 3);
	EXPECT_EQ(s.without_dc, 0);
	gmem_put_pfn(b, 1, GMEM_ACCESS_PRIVATE);
	gmem_unbind(b);
	gmem_unpin(g, 3 * ps, ps);
	gmem_munmap(g, u, args.size);
	gmem_munmap(g, v, args.size);
	gmem_close(g);
}
