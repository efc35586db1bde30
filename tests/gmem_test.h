/* SPDX-License-Identifier: MIT */
/*
 * gmem_test.h - what libgmem's test programs share: the backend under
 * test, and the shorthands every program would otherwise copy (convert,
 * convert_pages, stats, attr_at, count_maps, count_fds, rnd, rng_next).
 * Header-only; include it after harness.h (its helpers use ASSERT_* and
 * SKIP).  The logic it shares with reliability.h (the reliability tests'
 * header) is in test_common.h, once.
 *
 * Backend.  GMEM_TEST_BACKEND picks what gmem_test_create() makes:
 * "memfd" (the default, also when unset or empty) or "kvm" (a KVM
 * guest_memfd, GMEM_BACKEND_KVM on a VM libgmem makes itself).  Any other
 * value stops the program before its first test.  The same binaries run
 * against both backends: make check runs the suite once per backend.
 *
 *	GMEM_TEST_REQUIRE_BACKEND();	first thing in a FIXTURE_SETUP or a
 *					TEST that creates files: SKIP with
 *					gmem_test_skip_reason() if the backend
 *					cannot be used here (no /dev/kvm, a
 *					kernel without guest_memfd mmap)
 *	gmem_test_create(&args, &g)	gmem_create() on the chosen backend
 *	gmem_test_uffd()		do views of this backend get the
 *					userfaultfd guard?  Expectations on
 *					gmem_stats.views_uffd follow it
 *
 * What differs on the kvm backend is documented at the top of src/kvm.c:
 * views never use userfaultfd (so views_uffd is 0, and heavy
 * fragmentation needs two VMAs per private island), populate copies
 * through a mapping, and allocated bytes are counted with mincore().
 * The backend is probed once, before main() (a constructor), so the
 * forked tests inherit the answer instead of each making a VM.
 */
#ifndef GMEM_TESTS_GMEM_TEST_H
#define GMEM_TESTS_GMEM_TEST_H

#ifndef GMEM_TESTS_HARNESS_H
#error "include harness.h before gmem_test.h"
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "gmem.h"
#include "test_common.h"

/* ---- the backend under test --------------------------------------------- */

/*
 * gmem_create() on the chosen backend: for kvm, a copy of *args with
 * backend GMEM_BACKEND_KVM and vm_fd -1, unless the caller already chose
 * a backend or a vm_fd (tests of those fields keep them as written).
 */
static inline int gmem_test_create(const struct gmem_create_args *args,
				   struct gmem **out)
{
	struct gmem_create_args a;

	if (!args || args->backend != GMEM_BACKEND_MEMFD || args->vm_fd ||
	    gmem_test_backend() != GMEM_BACKEND_KVM)
		return gmem_create(args, out);
	a = *args;
	a.backend = GMEM_BACKEND_KVM;
	a.vm_fd = -1;
	return gmem_create(&a, out);
}

static bool gmem_test_probed;
static const char *gmem_test_reason;
static char gmem_test_reason_buf[256];

/*
 * NULL if files of the chosen backend can be made here, else why not,
 * e.g. "GMEM_TEST_BACKEND=kvm: /dev/kvm: No such file or directory".
 * The memfd backend is always usable; kvm is probed with a 1-page file.
 */
static inline const char *gmem_test_skip_reason(void)
{
	struct gmem_create_args args = {
		.size = (uint64_t)getpagesize(),
		.flags = GMEM_FLAG_MMAP,
	};
	char *buf = gmem_test_reason_buf;
	size_t len = sizeof(gmem_test_reason_buf);
	struct gmem *g;
	int fd, ret;

	if (gmem_test_probed)
		return gmem_test_reason;
	gmem_test_probed = true;
	if (gmem_test_backend() != GMEM_BACKEND_KVM)
		return NULL;
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(buf, len, "GMEM_TEST_BACKEND=kvm: /dev/kvm: %s",
			 strerror(errno));
		return gmem_test_reason = buf;
	}
	close(fd);
	ret = gmem_test_create(&args, &g);
	if (!ret) {
		gmem_close(g);
		return NULL;
	}
	if (ret == -EOPNOTSUPP)
		snprintf(buf, len, "GMEM_TEST_BACKEND=kvm: guest_memfd with "
			 "MMAP|INIT_SHARED not supported (-EOPNOTSUPP)");
	else
		snprintf(buf, len, "GMEM_TEST_BACKEND=kvm: gmem_create: "
			 "%s (%d)", strerror(-ret), ret);
	return gmem_test_reason = buf;
}

/* SKIP the test (from a TEST or a FIXTURE_SETUP) if the backend is unusable */
#define GMEM_TEST_REQUIRE_BACKEND()					\
	do {								\
		const char *__gt_reason = gmem_test_skip_reason();	\
		if (__gt_reason)					\
			SKIP(return, "%s", __gt_reason);		\
	} while (0)

static int gmem_test_uffd_ok = -1;

/*
 * Can views of the chosen backend use the userfaultfd guard?  The kvm
 * backend's never do (src/kvm.c); memfd views can where userfaultfd has
 * the features libgmem needs (src/sys.c: sys_uffd_open()).
 */
static inline bool gmem_test_uffd(void)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_SIGBUS | UFFD_FEATURE_MINOR_SHMEM,
	};
	const uint64_t need = UFFD_FEATURE_SIGBUS | UFFD_FEATURE_MINOR_SHMEM;
	int fd;

	if (gmem_test_uffd_ok >= 0)
		return gmem_test_uffd_ok;
	gmem_test_uffd_ok = 0;
	if (gmem_test_backend() != GMEM_BACKEND_MEMFD)
		return false;
	fd = gmem_test_uffd_open();
	if (fd < 0)
		return false;
	gmem_test_uffd_ok = !ioctl(fd, UFFDIO_API, &api) &&
			    (api.features & need) == need;
	close(fd);
	return gmem_test_uffd_ok;
}

/* Check GMEM_TEST_BACKEND and probe once, before the tests fork. */
static void __attribute__((constructor)) gmem_test_init(void)
{
	gmem_test_skip_reason();
	gmem_test_uffd();
}

/* ---- shorthands --------------------------------------------------------- */

/* CLOCK_MONOTONIC in milliseconds. */
static inline uint64_t now_ms(void)
{
	return gmem_test_now_ns() / 1000000;
}

static inline int gmem_test_convert(struct gmem *g, uint64_t off,
				    uint64_t len, int private,
				    uint64_t *error_offset)
{
	return gmem_test_set_attr(g, off, len, private, 0, error_offset);
}

static inline int gmem_test_convert4(struct gmem *g, uint64_t off,
				     uint64_t len, int private)
{
	return gmem_test_convert(g, off, len, private, NULL);
}

#define __GMEM_TEST_ARG6(_1, _2, _3, _4, _5, name, ...)	name

/*
 * convert(g, off, len, private[, &error_offset]): gmem_set_attributes()
 * of [off, off + len) bytes to private (private != 0) or shared.
 */
#define convert(...)							\
	__GMEM_TEST_ARG6(__VA_ARGS__, gmem_test_convert,		\
			 gmem_test_convert4, 0)(__VA_ARGS__)

/* convert() counted in pages. */
static inline int convert_pages(struct gmem *g, uint64_t page,
				uint64_t pages, int private)
{
	uint64_t ps = gmem_test_page_size();

	return convert(g, page * ps, pages * ps, private);
}

/* gmem_stat() of g, which must succeed. */
static inline struct gmem_stats stats(struct gmem *g)
{
	struct gmem_stats st = { 0 };

	ASSERT_EQ(gmem_stat(g, &st, sizeof(st)), 0);
	return st;
}

/* State at off: 0, GMEM_ATTR_PRIVATE, or ~0 if gmem_get_attributes fails */
static inline uint64_t attr_at(struct gmem *g, uint64_t off)
{
	uint64_t attr = ~0ULL, run;

	if (gmem_get_attributes(g, off, &attr, &run))
		return ~0ULL;
	return attr;
}

/*
 * Under ASan, TSan or valgrind only libgmem's mappings and fds are
 * counted (test_common.h says why), plus one, so that a count is never
 * 0, as a process-wide one never is.  The tests compare counts or their
 * differences, which are libgmem's in both cases.
 */
static inline int count_maps(void)
{
	bool ours = gmem_test_foreign_runtime();
	int n = gmem_test_count_maps(ours);

	return n < 0 ? -1 : n + ours;
}

/* Entries in /proc/self/fd (the directory's own fd included each time). */
static inline int count_fds(void)
{
	bool ours = gmem_test_foreign_runtime();
	int n = gmem_test_count_fds(ours);

	return n < 0 ? -1 : n + ours;
}

/* xorshift64: *s must start non-zero. */
static inline uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* xorshift64*, for the unit tests: *s must start non-zero. */
static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* Uniform in [0, n), n > 0. */
static inline uint64_t rng_below(uint64_t *s, uint64_t n)
{
	return rng_next(s) % n;
}

#endif /* GMEM_TESTS_GMEM_TEST_H */
