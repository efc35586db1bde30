/* SPDX-License-Identifier: MIT */
/*
 * reliability.h - small helpers shared by the reliability tests of
 * issue 7 (test_badinput.c, test_stress.c); header-only, include after
 * harness.h.  (gmem_test.h is the feature tests' helper header.)
 *
 * Owns: which sanitizer a test program is built with (GT_SANITIZER), a
 * seedable PRNG and reading numbers from the environment; the gt_ names
 * of the helpers it shares with gmem_test.h (conversion, counts of fds
 * and of libgmem's mappings, userfaultfd, backend, clock), whose one copy
 * is test_common.h (which also says why the counts are libgmem's only).
 */
#ifndef GMEM_TESTS_RELIABILITY_H
#define GMEM_TESTS_RELIABILITY_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "gmem.h"
#include "test_common.h"

#define __gt_unused	__attribute__((unused))

/* "ASan", "TSan" or NULL: the sanitizer this program is built with. */
#if defined(__SANITIZE_ADDRESS__)
#define GT_SANITIZER	"ASan"
#elif defined(__SANITIZE_THREAD__)
#define GT_SANITIZER	"TSan"
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GT_SANITIZER	"ASan"
#elif __has_feature(thread_sanitizer)
#define GT_SANITIZER	"TSan"
#endif
#endif
#ifndef GT_SANITIZER
#define GT_SANITIZER	((const char *)0)
#endif

static uint64_t __gt_unused gt_page_size(void)
{
	return gmem_test_page_size();
}

static int __gt_unused gt_convert(struct gmem *g, uint64_t off, uint64_t len,
				  int private, uint64_t flags,
				  uint64_t *error_offset)
{
	return gmem_test_set_attr(g, off, len, private, flags, error_offset);
}

/*
 * Entries of /proc/self/fd, without the directory's own fd; -1 on error.
 * Under a foreign runtime, only the fds libgmem could have opened.
 */
static int __gt_unused gt_count_fds(void)
{
	bool ours = gmem_test_foreign_runtime();
	int n = gmem_test_count_fds(ours);

	return n < 0 ? -1 : ours ? n : n - 1;
}

/* Lines of /proc/self/maps that map one of libgmem's files. */
static int __gt_unused gt_count_gmem_maps(void)
{
	return gmem_test_count_maps(true);
}

/* Can this process open a userfaultfd (so uffd-mode views exist)? */
static int __gt_unused gt_uffd_available(void)
{
	int fd = gmem_test_uffd_open();

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

/* GMEM_TEST_BACKEND=kvm asks for the kernel guest_memfd backend. */
static int __gt_unused gt_kvm_backend(void)
{
	return gmem_test_backend() == GMEM_BACKEND_KVM;
}

/* CLOCK_MONOTONIC in seconds. */
static double __gt_unused gt_now(void)
{
	return (double)gmem_test_now_ns() / 1e9;
}

/* Environment variable as an unsigned number (0x... allowed), or dflt. */
static uint64_t __gt_unused gt_env_u64(const char *name, uint64_t dflt)
{
	const char *s = getenv(name);
	char *end;
	unsigned long long v;

	if (!s || !*s)
		return dflt;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end)
		return dflt;
	return (uint64_t)v;
}

/* splitmix64: seeds, and a fine generator on its own. */
static uint64_t __gt_unused gt_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0. */
static uint64_t __gt_unused gt_below(uint64_t *state, uint64_t n)
{
	return gt_rand(state) % n;
}

#endif /* GMEM_TESTS_RELIABILITY_H */
