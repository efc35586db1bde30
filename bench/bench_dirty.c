// SPDX-License-Identifier: MIT
/*
 * bench_dirty.c - which mechanism should track the pages written since a
 * mark (issue 13, dirty tracking for pre-copy migration)?  Measured here,
 * on the path the issue puts a limit on: the first write to a page of a
 * shared memfd mapping (a host view's first-touch fault), with tracking
 * on against off (target <= 1.2x), and what collecting the dirty set
 * costs.  Each candidate is checked to see every written page, so a
 * mechanism that is cheap because it misses writes loses.
 *
 *  off         plain MAP_SHARED memfd mapping: the baseline
 *  uffd-async  userfaultfd write-protect in async mode
 *              (UFFD_FEATURE_WP_ASYNC + WP_UNPOPULATED, Linux 6.7): the
 *              kernel resolves the fault itself and marks the page
 *              written; PAGEMAP_SCAN reads the written pages and
 *              write-protects them again in one call.  No thread, no
 *              signal; works with UFFD_USER_MODE_ONLY (unprivileged).
 *  uffd-sync   userfaultfd write-protect with a handler thread that
 *              records the page and lifts the protection
 *  mprotect    the mapping read-only, a SIGSEGV handler records the page
 *              and mprotect()s it writable (libgmem itself installs no
 *              signal handler: this is the price of the idea)
 *  soft-dirty  /proc/self/clear_refs + pagemap bit 55: measured where the
 *              kernel has CONFIG_MEM_SOFT_DIRTY, else reported missing
 *  zap         what libgmem does (src/dirty.c) for every mapping but a
 *              UFFD-mode view: a collect reads the present pages with
 *              PAGEMAP_SCAN, counts them written and zaps them, so the
 *              next store faults as a first touch would; no fault path
 *              changes.  Measured as libgmem itself: gmem_dirty_start()
 *              on a view of a libgmem file against the same view of an
 *              untracked file.
 *
 * After the first touch, the cost that matters during a migration is
 * the next store to a page a collect has re-armed: a write-protect fault
 * (uffd-async) or a minor fault (zap).  Both are reported against a
 * store to a page whose entry is writable (no fault at all), and against
 * each other.
 *
 * -q: 16 MiB instead of 64 MiB per round.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gmem.h>

#include "common.h"

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED	(1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC		(1 << 15)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY		1
#endif

/* PAGEMAP_SCAN (linux/fs.h, Linux 6.7), for older headers. */
#ifndef PAGEMAP_SCAN
struct page_region {
	uint64_t start, end, categories;
};

struct pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask;
	uint64_t return_mask;
};

#define PAGEMAP_SCAN		_IOWR('f', 16, struct pm_scan_arg)
#define PM_SCAN_WP_MATCHING	(1 << 0)
#define PM_SCAN_CHECK_WPASYNC	(1 << 1)
#define PAGE_IS_WRITTEN		(1 << 1)
#endif

#define PS	4096ULL

static uint64_t size;

struct region {
	int fd;
	char *map;
};

static void region_new(struct region *r, int prot)
{
	r->fd = memfd_create("dirty", MFD_CLOEXEC);
	bench_check_errno(r->fd, "memfd_create");
	bench_check_errno(ftruncate(r->fd, (off_t)size), "ftruncate");
	r->map = mmap(NULL, size, prot, MAP_SHARED, r->fd, 0);
	if (r->map == MAP_FAILED)
		bench_die("mmap: %s", strerror(errno));
}

static void region_free(struct region *r)
{
	munmap(r->map, size);
	close(r->fd);
}

static int uffd_open(uint64_t features, const char **why)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK |
				  UFFD_USER_MODE_ONLY);
	if (fd < 0) {
		*why = strerror(errno);
		return -1;
	}
	if (ioctl(fd, UFFDIO_API, &api) || (api.features & features) !=
	    features) {
		*why = "the kernel lacks the userfaultfd features";
		close(fd);
		return -1;
	}
	return fd;
}

static int uffd_wp(int uffd, char *map)
{
	struct uffdio_register reg = {
		.range = { (uint64_t)(uintptr_t)map, size },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	struct uffdio_writeprotect wp = {
		.range = { (uint64_t)(uintptr_t)map, size },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};

	if (ioctl(uffd, UFFDIO_REGISTER, &reg) ||
	    ioctl(uffd, UFFDIO_WRITEPROTECT, &wp))
		return -errno;
	return 0;
}

/* PAGEMAP_SCAN: pages written in map (and write-protect them again). */
static long scan_written(int pm, char *map, bool rearm)
{
	static struct page_region vec[512];
	struct pm_scan_arg a = {
		.size = sizeof(a),
		.flags = rearm ? PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC : 0,
		.start = (uint64_t)(uintptr_t)map,
		.end = (uint64_t)(uintptr_t)map + size,
		.vec = (uint64_t)(uintptr_t)vec,
		.vec_len = 512,
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};
	long pages = 0;

	while (a.start < a.end) {
		long n = ioctl(pm, PAGEMAP_SCAN, &a);

		if (n < 0)
			return -errno;
		for (long i = 0; i < n; i++)
			pages += (long)((vec[i].end - vec[i].start) / PS);
		a.start = a.walk_end;
	}
	return pages;
}

/* ---- uffd-sync: the handler thread ------------------------------------- */

struct handler {
	int uffd;
	volatile bool stop;
	uint64_t pages;
};

static void *handle(void *arg)
{
	struct handler *h = arg;
	struct uffd_msg m;

	while (!h->stop) {
		struct pollfd p = { h->uffd, POLLIN, 0 };

		if (poll(&p, 1, 10) <= 0)
			continue;
		while (read(h->uffd, &m, sizeof(m)) == sizeof(m)) {
			struct uffdio_writeprotect wp = {
				.range = { m.arg.pagefault.address & ~(PS - 1),
					   PS },
				.mode = 0,
			};

			if (m.event != UFFD_EVENT_PAGEFAULT)
				continue;
			ioctl(h->uffd, UFFDIO_WRITEPROTECT, &wp);
			h->pages++;
		}
	}
	return NULL;
}

/* ---- mprotect: the SIGSEGV handler ------------------------------------- */

static char *mp_base;
static volatile uint64_t mp_pages;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr & ~(PS - 1);

	(void)sig, (void)uc;
	if (a < (uintptr_t)mp_base || a >= (uintptr_t)mp_base + size)
		abort();
	mprotect((void *)a, PS, PROT_READ | PROT_WRITE);
	mp_pages++;
}

/* ---- rounds ------------------------------------------------------------- */

static double round_off(void)
{
	struct region r;
	double ns;

	region_new(&r, PROT_READ | PROT_WRITE);
	ns = bench_touch(r.map, size, true);
	region_free(&r);
	return ns;
}

static double collect_ns, rewrite_ns;

static double round_async(int pm)
{
	const char *why = NULL;
	struct region r;
	int uffd = uffd_open(UFFD_FEATURE_WP_ASYNC |
			     UFFD_FEATURE_WP_UNPOPULATED |
			     UFFD_FEATURE_WP_HUGETLBFS_SHMEM, &why);
	uint64_t t;
	long seen;
	double ns;

	if (uffd < 0)
		return -1;
	region_new(&r, PROT_READ | PROT_WRITE);
	bench_check(uffd_wp(uffd, r.map), "UFFDIO_REGISTER/WRITEPROTECT");
	ns = bench_touch(r.map, size, true);
	t = bench_now();
	seen = scan_written(pm, r.map, true);
	collect_ns = (double)(bench_now() - t) / (double)(size / PS);
	if (seen != (long)(size / PS))
		bench_die("uffd-async saw %ld of %llu written pages", seen,
			  (unsigned long long)(size / PS));
	/* Re-armed: every store write-protect faults again. */
	rewrite_ns = bench_touch(r.map, size, true);
	if (scan_written(pm, r.map, true) != (long)(size / PS))
		bench_die("uffd-async: after re-arming, not every page "
			  "written again");
	r.map[7 * PS] = 2;
	if (scan_written(pm, r.map, true) != 1)
		bench_die("uffd-async: after re-arming, not exactly the one "
			  "page written");
	region_free(&r);
	close(uffd);
	return ns;
}

static double round_sync(void)
{
	const char *why = NULL;
	struct handler h = { 0 };
	struct region r;
	pthread_t t;
	double ns;

	h.uffd = uffd_open(UFFD_FEATURE_WP_UNPOPULATED |
			   UFFD_FEATURE_WP_HUGETLBFS_SHMEM, &why);
	if (h.uffd < 0)
		return -1;
	region_new(&r, PROT_READ | PROT_WRITE);
	bench_check(uffd_wp(h.uffd, r.map), "UFFDIO_REGISTER/WRITEPROTECT");
	if (pthread_create(&t, NULL, handle, &h))
		bench_die("pthread_create");
	ns = bench_touch(r.map, size, true);
	h.stop = true;
	pthread_join(t, NULL);
	if (h.pages != size / PS)
		bench_die("uffd-sync saw %llu of %llu written pages",
			  (unsigned long long)h.pages,
			  (unsigned long long)(size / PS));
	region_free(&r);
	close(h.uffd);
	return ns;
}

static double round_mprotect(void)
{
	struct sigaction sa = { 0 }, old;
	struct region r;
	double ns;

	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, &old);
	region_new(&r, PROT_READ);
	mp_base = r.map;
	mp_pages = 0;
	ns = bench_touch(r.map, size, true);
	sigaction(SIGSEGV, &old, NULL);
	if (mp_pages != size / PS)
		bench_die("mprotect saw %llu of %llu written pages",
			  (unsigned long long)mp_pages,
			  (unsigned long long)(size / PS));
	region_free(&r);
	return ns;
}

/* ---- libgmem: zap and re-fault (src/dirty.c) ------------------------- */

static double lib_collect_ns, lib_rewrite_ns, lib_present_ns;

static struct gmem *lib_file(char **view)
{
	struct gmem_create_args a = {
		.size = size, .flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
	};
	struct gmem *g;

	bench_check(gmem_create(&a, &g), "gmem_create");
	bench_check(gmem_mmap(g, 0, size, PROT_READ | PROT_WRITE,
			      (void **)view), "gmem_mmap");
	return g;
}

/* First touch of a view of an untracked libgmem file: the baseline. */
static double round_lib_off(void)
{
	char *v;
	struct gmem *g = lib_file(&v);
	double ns = bench_touch(v, size, true);

	/* A store to a page with a writable entry: no fault. */
	lib_present_ns = bench_touch(v, size, true);
	gmem_munmap(g, v, size);
	gmem_close(g);
	return ns;
}

static uint64_t lib_collect_len(struct gmem *g, uint64_t len, uint64_t *bm)
{
	uint64_t n = 0;

	bench_check(gmem_dirty_collect(g, 0, len, bm, &n),
		    "gmem_dirty_collect");
	return n;
}

static uint64_t lib_collect(struct gmem *g, uint64_t *bm)
{
	return lib_collect_len(g, size, bm);
}

static double round_lib_on(void)
{
	uint64_t *bm = calloc(size / PS / 64 + 1, 8), t;
	char *v;
	struct gmem *g = lib_file(&v);
	double ns;

	if (!bm)
		bench_die("calloc");
	bench_check(gmem_dirty_start(g, 0), "gmem_dirty_start");
	ns = bench_touch(v, size, true);
	t = bench_now();
	if (lib_collect(g, bm) != size / PS)
		bench_die("libgmem: a collect missed first-touch writes");
	lib_collect_ns = (double)(bench_now() - t) / (double)(size / PS);
	lib_rewrite_ns = bench_touch(v, size, true);
	if (lib_collect(g, bm) != size / PS)
		bench_die("libgmem: a collect missed re-armed writes");
	v[7 * PS] = 2;
	if (lib_collect(g, bm) != 1 || !(bm[0] & (1ULL << 7)))
		bench_die("libgmem: not exactly the one page written");
	bench_check(gmem_dirty_stop(g), "gmem_dirty_stop");
	gmem_munmap(g, v, size);
	gmem_close(g);
	free(bm);
	return ns;
}

/*
 * How a collect grows with the guest: a file of gsize bytes, all of it
 * allocated and written once through a view (then collected), then 64
 * pages written: the time of the collect that finds them.  What a
 * migration's later rounds pay, when little changes.
 */
static double collect_scale(uint64_t gsize)
{
	struct gmem_create_args a = {
		.size = gsize,
		.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
	};
	uint64_t *bm = calloc(gsize / PS / 64 + 1, 8), n = 0, t, best = ~0ULL;
	struct gmem *g;
	char *v;

	if (!bm)
		bench_die("calloc");
	bench_check(gmem_create(&a, &g), "gmem_create");
	bench_check(gmem_mmap(g, 0, gsize, PROT_READ | PROT_WRITE,
			      (void **)&v), "gmem_mmap");
	bench_touch(v, gsize, true);
	bench_check(gmem_dirty_start(g, 0), "gmem_dirty_start");
	bench_touch(v, gsize, true);
	lib_collect_len(g, gsize, bm);
	for (unsigned int r = 0; r < BENCH_ROUNDS; r++) {
		for (uint64_t i = 0; i < 64; i++)
			v[(i * 7919 % (gsize / PS)) * PS] = (char)r;
		t = bench_now();
		n = lib_collect_len(g, gsize, bm);
		t = bench_now() - t;
		if (n != 64)
			bench_die("libgmem: %llu pages reported for 64 written",
				  (unsigned long long)n);
		best = t < best ? t : best;
	}
	gmem_dirty_stop(g);
	gmem_munmap(g, v, gsize);
	gmem_close(g);
	free(bm);
	return (double)best;
}

/* Does clear_refs "4" + pagemap bit 55 work here at all? */
static const char *soft_dirty_missing(void)
{
	uint64_t e = 0;
	struct region r;
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	int pm;

	if (fd < 0 || write(fd, "4", 1) != 1) {
		if (fd >= 0)
			close(fd);
		return "no /proc/self/clear_refs";
	}
	close(fd);
	region_new(&r, PROT_READ | PROT_WRITE);
	r.map[0] = 1;
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm >= 0 && pread(pm, &e, 8, (off_t)((uintptr_t)r.map / PS * 8)) ==
	    8 && (e >> 55 & 1)) {
		close(pm);
		region_free(&r);
		return NULL;
	}
	if (pm >= 0)
		close(pm);
	region_free(&r);
	return "a written page has no soft-dirty bit (a kernel without "
	       "CONFIG_MEM_SOFT_DIRTY)";
}

int main(int argc, char **argv)
{
	bool quick = bench_quick(argc, argv);
	double off[BENCH_ROUNDS], as[BENCH_ROUNDS], sy[BENCH_ROUNDS];
	double mp[BENCH_ROUNDS], coll[BENCH_ROUNDS], rew[BENCH_ROUNDS];
	double loff[BENCH_ROUNDS], lon[BENCH_ROUNDS], lcoll[BENCH_ROUNDS];
	double lrew[BENCH_ROUNDS], lpres[BENCH_ROUNDS];
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	bool have_async = true, have_sync = true;
	const char *sd;

	size = quick ? 16ULL << 20 : 64ULL << 20;
	sd = soft_dirty_missing();
	bench_check_errno(pm, "open /proc/self/pagemap");
	for (unsigned int r = 0; r < BENCH_ROUNDS; r++) {
		off[r] = round_off();
		as[r] = round_async(pm);
		coll[r] = collect_ns;
		rew[r] = rewrite_ns;
		have_async &= as[r] >= 0;
		loff[r] = round_lib_off();
		lpres[r] = lib_present_ns;
		lon[r] = round_lib_on();
		lcoll[r] = lib_collect_ns;
		lrew[r] = lib_rewrite_ns;
		sy[r] = round_sync();
		have_sync &= sy[r] >= 0;
		mp[r] = round_mprotect();
	}
	printf("# shared first-touch write faults, %llu MiB memfd mapping, "
	       "per 4 KiB page; every mechanism checked to see every "
	       "written page\n", (unsigned long long)(size >> 20));
	bench_report_paired("dirty_fault_libgmem", size / PS, lon,
			    "fault_libgmem_untracked", loff, BENCH_ROUNDS,
			    (struct bench_target){ BENCH_RATIO_LE, 1.2 });
	printf("# libgmem collect (PAGEMAP_SCAN of present pages + zap): "
	       "%.1f ns per page of the range\n",
	       bench_median(lcoll, BENCH_ROUNDS));
	bench_report_paired("dirty_rewrite_libgmem", size / PS, lrew,
			    "store_untracked", lpres, BENCH_ROUNDS, NO_TARGET);
	if (have_async) {
		bench_report_paired("dirty_rewrite_libgmem_vs_uffd_async",
				    size / PS, lrew, "rewrite_uffd_async", rew,
				    BENCH_ROUNDS, NO_TARGET);
		bench_report_paired("dirty_fault_uffd_async", size / PS, as,
				    "fault_untracked", off, BENCH_ROUNDS,
				    (struct bench_target){ BENCH_RATIO_LE,
							   1.2 });
		printf("# uffd-async collect (PAGEMAP_SCAN of written pages "
		       "+ write-protect again): %.1f ns per page of the "
		       "range\n", bench_median(coll, BENCH_ROUNDS));
	} else {
		printf("# uffd-async: missing (UFFD_FEATURE_WP_ASYNC, Linux "
		       "6.7)\n");
	}
	if (have_sync)
		bench_report_paired("dirty_fault_uffd_sync", size / PS, sy,
				    "fault_untracked", off, BENCH_ROUNDS,
				    NO_TARGET);
	else
		printf("# uffd-sync: missing (UFFD_FEATURE_WP_UNPOPULATED)\n");
	bench_report_paired("dirty_fault_mprotect", size / PS, mp,
			    "fault_untracked", off, BENCH_ROUNDS, NO_TARGET);
	printf("# libgmem collect of 64 written pages, by guest size "
	       "(all allocated, every page written once before):\n");
	for (uint64_t gs = 64ULL << 20; gs <= (quick ? 256ULL << 20 :
						 4ULL << 30); gs *= 4) {
		double ns = collect_scale(gs);

		printf("name=dirty_collect_64_of_%lluM ops=1 ns_per_op=%.0f "
		       "ns_per_gib=%.0f\n", (unsigned long long)(gs >> 20), ns,
		       ns * (double)(1ULL << 30) / (double)gs);
	}
	if (sd)
		printf("# soft-dirty: not measured: %s\n", sd);
	else
		printf("# soft-dirty: available here but not measured (the "
		       "fault path is unchanged; clear_refs walks the whole "
		       "process)\n");
	close(pm);
	return 0;
}
