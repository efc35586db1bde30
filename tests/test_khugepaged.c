// SPDX-License-Identifier: MIT
/*
 * test_khugepaged.c - shared pages stay accessible under every THP
 * setting and kernel daemon (issue 10, class 6).  With shmem_enabled
 * "always", "within_size" or "force", shmem allocates 2 MiB folios and
 * khugepaged collapses small ones, zapping the page-table entries of
 * every mapping of the range; a userfaultfd-guarded view then raises
 * SIGBUS on shared pages (1024 seen on the previous main).  libgmem
 * maps 4 KiB files MADV_NOHUGEPAGE everywhere and allocates them only
 * through such mappings, so neither happens; and re-homing a page still
 * takes it away from old kernel references (a huge folio would not let
 * a 4 KiB page go).
 *
 * For each setting the test sets shmem_enabled and a fast khugepaged
 * (scan_sleep_millisecs 100, pages_to_scan 65536), asks for compaction
 * (/proc/sys/vm/compact_memory), waits 3 s, then probes every page, and
 * puts the settings back.  It needs root to write /sys; set
 * GMEM_TEST_NO_SYSFS=1 to skip it (package builds).  Swap: none on the
 * machines this runs on, so reclaim cannot take shmem pages; see
 * gmem(7).
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "gmem.h"
#include "harness.h"
#include "gmem_test.h"

#define THP	"/sys/kernel/mm/transparent_hugepage/"
#define KHP	THP "khugepaged/"
#define NP	8192		/* 32 MiB: 16 huge regions */

static int knob_read(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static int knob_write(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	close(fd);
	return n < 0 ? -errno : 0;
}

/* "always within_size advise [never] deny force" -> "never" */
static void bracketed(const char *line, char *out, size_t len)
{
	const char *a = strchr(line, '['), *b = a ? strchr(a, ']') : NULL;

	snprintf(out, len, "%.*s", a && b ? (int)(b - a - 1) : 0,
		 a ? a + 1 : "");
}

/*
 * The settings as the program found them, put back when it ends even if
 * a test's child died before its teardown (the runner, this process,
 * outlives every child).
 */
static char saved_mode[32], saved_sleep[32], saved_pages[32];
static pid_t saver;

static void __attribute__((constructor)) save_settings(void)
{
	char line[128];

	if (getenv("GMEM_TEST_NO_SYSFS"))
		return;
	tc_sysfs_lock();	/* before reading what to put back */
	if (knob_read(THP "shmem_enabled", line, sizeof(line)))
		return;
	bracketed(line, saved_mode, sizeof(saved_mode));
	knob_read(KHP "scan_sleep_millisecs", saved_sleep,
		  sizeof(saved_sleep));
	knob_read(KHP "pages_to_scan", saved_pages, sizeof(saved_pages));
	saver = getpid();
}

static void __attribute__((destructor)) restore_settings(void)
{
	if (getpid() != saver || !saved_mode[0])
		return;
	knob_write(THP "shmem_enabled", saved_mode);
	if (saved_sleep[0])
		knob_write(KHP "scan_sleep_millisecs", saved_sleep);
	if (saved_pages[0])
		knob_write(KHP "pages_to_scan", saved_pages);
}

FIXTURE(khp) {
	char mode[32], sleep_ms[32], pages[32];
	bool set;
	struct gmem *g;
	char *v[2];
	struct gmem_binding *b;
};

FIXTURE_VARIANT(khp) {
	const char *mode;
};

FIXTURE_VARIANT_ADD(khp, always) { .mode = "always" };
FIXTURE_VARIANT_ADD(khp, within_size) { .mode = "within_size" };
FIXTURE_VARIANT_ADD(khp, force) { .mode = "force" };
FIXTURE_VARIANT_ADD(khp, advise) { .mode = "advise" };
FIXTURE_VARIANT_ADD(khp, never) { .mode = "never" };

static void on_invalidate(void *o, uint64_t off, uint64_t size,
			  unsigned int reason)
{
	(void)o, (void)off, (void)size, (void)reason;
}

static const struct gmem_binding_ops ops = { .invalidate = on_invalidate };

FIXTURE_SETUP(khp)
{
	struct gmem_create_args args = { .flags = GMEM_FLAG_MMAP };
	size_t ps = (size_t)getpagesize();
	char line[128];

	GMEM_TEST_REQUIRE_BACKEND();
	if (getenv("GMEM_TEST_NO_SYSFS"))
		SKIP(return, "GMEM_TEST_NO_SYSFS is set: not changing %s",
		     THP "shmem_enabled");
	if (knob_read(THP "shmem_enabled", line, sizeof(line)))
		SKIP(return, "%s: not readable (no THP)", THP "shmem_enabled");
	bracketed(line, self->mode, sizeof(self->mode));
	if (knob_read(KHP "scan_sleep_millisecs", self->sleep_ms,
		      sizeof(self->sleep_ms)) ||
	    knob_read(KHP "pages_to_scan", self->pages, sizeof(self->pages)))
		SKIP(return, "%s: not readable", KHP);
	if (knob_write(THP "shmem_enabled", variant->mode))
		SKIP(return, "cannot write %s (not root?)",
		     THP "shmem_enabled");
	self->set = true;
	knob_write(KHP "scan_sleep_millisecs", "100");
	knob_write(KHP "pages_to_scan", "65536");

	args.size = NP * ps;
	ASSERT_EQ(gmem_test_create(&args, &self->g), 0);
	/* View 0 of a private file: userfaultfd mode (memfd backend). */
	ASSERT_EQ(gmem_mmap(self->g, 0, args.size, PROT_READ | PROT_WRITE,
			    (void **)&self->v[0]), 0);
	ASSERT_EQ(convert(self->g, 0, args.size, 0), 0);
	/* View 1 of a shared file: vma mode. */
	ASSERT_EQ(gmem_mmap(self->g, 0, args.size, PROT_READ,
			    (void **)&self->v[1]), 0);
	for (uint64_t p = 0; p < NP; p++)
		self->v[0][p * ps] = (char)(p | 1);
	ASSERT_EQ(gmem_bind(self->g, 0, args.size, &ops, NULL, &self->b), 0);
}

FIXTURE_TEARDOWN(khp)
{
	size_t ps = (size_t)getpagesize();

	if (self->b)
		gmem_unbind(self->b);
	for (int i = 0; i < 2; i++)
		if (self->v[i])
			gmem_munmap(self->g, self->v[i], NP * ps);
	gmem_close(self->g);
	if (self->set) {
		knob_write(THP "shmem_enabled", self->mode);
		knob_write(KHP "scan_sleep_millisecs", self->sleep_ms);
		knob_write(KHP "pages_to_scan", self->pages);
	}
}

TEST_F_T(khp, shared_pages_survive_the_daemons, 60)
{
	size_t ps = (size_t)getpagesize();
	struct gmem_stats st = stats(self->g);
	long faults = 0, wrong = 0;
	char *pin;

	TH_LOG("%s: %llu of 2 views in userfaultfd mode", variant->mode,
	       (unsigned long long)st.views_uffd);
	ASSERT_EQ(gmem_pin(self->g, 77 * ps, ps, (void **)&pin), 0);
	knob_write("/proc/sys/vm/compact_memory", "1");
	sleep(3);
	for (int i = 0; i < 2; i++) {
		for (uint64_t p = 0; p < NP; p++) {
			uint8_t b;

			if (harness_probe_read_u8(self->v[i] + p * ps, &b))
				faults++;
			else if (b != (uint8_t)(p | 1))
				wrong++;
		}
	}
	if (*(volatile char *)pin != (char)(77 | 1))
		wrong++;
	TH_LOG("%s: %ld shared pages faulted, %ld read wrong", variant->mode,
	       faults, wrong);
	ASSERT_EQ(faults, 0);
	ASSERT_EQ(wrong, 0);
	ASSERT_EQ(gmem_unpin(self->g, 77 * ps, ps), 0);
}

/* Under this setting too, re-homing takes a page from old references. */
TEST_F(khp, rehoming_still_detaches)
{
	size_t ps = (size_t)getpagesize();
	const uint64_t p = 700;
	struct iovec iov = { self->v[0] + p * ps, ps };
	struct gmem_pfn pfn;
	char *buf = malloc(ps);
	int fds[2];

	ASSERT_NONNULL(buf);
	ASSERT_EQ(pipe(fds), 0);
	fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
	sleep(1);	/* let khugepaged have a go at the file first */
	ASSERT_EQ(vmsplice(fds[1], &iov, 1, 0), (ssize_t)ps);
	ASSERT_EQ(convert(self->g, p * ps, ps, 1), 0);
	ASSERT_EQ(gmem_get_pfn(self->b, p, GMEM_ACCESS_PRIVATE, &pfn), 0);
	memset(pfn.addr, 'X', ps);
	ASSERT_EQ(gmem_put_pfn(self->b, p, GMEM_ACCESS_PRIVATE), 0);
	ASSERT_EQ(read(fds[0], buf, ps), (ssize_t)ps);
	for (size_t i = 0; i < ps; i++)
		ASSERT_NE(buf[i], 'X');
	close(fds[0]);
	close(fds[1]);
	free(buf);
}

/*
 * Every way the library allocates a page of a 4 KiB file (gmem_fallocate,
 * gmem_populate's write, get_pfn's populate-ahead, a re-home's copy)
 * makes 4 KiB folios under this setting: a huge folio would be split by
 * a later punch, which zaps the entries of every mapping of it, and a
 * userfaultfd-guarded view then raises SIGBUS on its shared pages.  Each
 * path fills one 2 MiB region; then a page in the middle of each region
 * is punched and every other page is probed through a guarded view.
 */
TEST_F_T(khp, every_allocation_stays_small, 60)
{
	const size_t ps = (size_t)getpagesize(), region = (2U << 20) / ps;
	struct gmem_create_args args = { .flags = GMEM_FLAG_MMAP,
					 .size = 4 * (2U << 20) };
	char *img = malloc(2U << 20), *v;
	struct gmem_binding *b;
	struct gmem_pfn pfn;
	struct gmem *g;
	long faults = 0;

	ASSERT_NONNULL(img);
	memset(img, 'i', 2U << 20);
	ASSERT_EQ(gmem_test_create(&args, &g), 0);
	ASSERT_EQ(gmem_bind(g, 0, args.size, &ops, NULL, &b), 0);
	/* The setting changes while the file is in use: the library saw
	 * "never" a moment ago (an allocation), then an admin sets it. */
	ASSERT_EQ(knob_write(THP "shmem_enabled", "never"), 0);
	ASSERT_EQ(gmem_fallocate(g, FALLOC_FL_KEEP_SIZE,
				 args.size - ps, ps), 0);
	ASSERT_EQ(knob_write(THP "shmem_enabled", variant->mode), 0);
	/* Region 0: fallocate; 1: populate; 2: get_pfn; 3: a view's
	 * writes, exposed, then re-homed by private uses. */
	ASSERT_EQ(gmem_fallocate(g, FALLOC_FL_KEEP_SIZE, 0, 2U << 20), 0);
	ASSERT_EQ(gmem_populate(g, 2U << 20, img, 2U << 20),
		  (ssize_t)(2U << 20));
	for (uint64_t p = 2 * region; p < 3 * region; p++)
		ASSERT_EQ(gmem_get_pfn(b, p, GMEM_ACCESS_PRIVATE, &pfn), 0);
	ASSERT_EQ(gmem_mmap(g, 0, args.size, PROT_READ | PROT_WRITE,
			    (void **)&v), 0);
	ASSERT_EQ(convert(g, 3 * (2U << 20), 2U << 20, 0), 0);
	memset(v + 3 * (2U << 20), 's', 2U << 20);
	ASSERT_EQ(convert(g, 3 * (2U << 20), 2U << 20, 1), 0);
	for (uint64_t p = 3 * region; p < 4 * region; p++)
		ASSERT_EQ(gmem_get_pfn(b, p, GMEM_ACCESS_PRIVATE, &pfn), 0);
	/* All shared, touched through the guarded view, then a punch in
	 * the middle of each region. */
	ASSERT_EQ(convert(g, 0, args.size, 0), 0);
	for (uint64_t p = 0; p < 4 * region; p++)
		v[p * ps] = 'w';
	for (int r = 0; r < 4; r++)
		ASSERT_EQ(gmem_fallocate(g, FALLOC_FL_KEEP_SIZE |
					 FALLOC_FL_PUNCH_HOLE,
					 (r * region + region / 2) * ps, ps), 0);
	for (uint64_t p = 0; p < 4 * region; p++) {
		uint8_t c;

		if (p % region != region / 2 &&
		    harness_probe_read_u8(v + p * ps, &c))
			faults++;
	}
	TH_LOG("%s: %llu views in userfaultfd mode, %ld shared pages faulted",
	       variant->mode,
	       (unsigned long long)stats(g).views_uffd, faults);
	ASSERT_EQ(faults, 0);
	ASSERT_EQ(gmem_munmap(g, v, args.size), 0);
	ASSERT_EQ(gmem_unbind(b), 0);
	gmem_close(g);
	free(img);
}
