/* SPDX-License-Identifier: MIT */
/*
 * reliability.h - small helpers shared by the reliability tests of
 * issue 7 (test_badinput.c, test_stress.c); header-only, include after
 * harness.h.  (gmem_test.h is the feature tests' helper header.)
 *
 * Owns: which sanitizer a test program is built with (GT_SANITIZER),
 * the resource counts of the hygiene checks (fds, and the mappings that
 * belong to libgmem), userfaultfd availability, a seedable PRNG, the
 * conversion/stat shorthands and reading numbers from the environment.
 *
 * Why libgmem's own mappings and not every line of /proc/self/maps: the
 * sanitizer runtimes (ASan's allocator, TSan's meta shadow) and valgrind
 * map memory of their own at any time, so a process-wide count only
 * means something in a plain build.  Every mapping libgmem makes is of
 * one of its memfds ("memfd:gmem", "memfd:gmem-hole") or, on the kvm
 * backend, of a guest_memfd ("kvm-gmem"), so counting those lines is
 * exact under any runtime.  Fds likewise: a plain build counts every fd
 * of the process; a sanitizer build only those libgmem can open (its
 * memfds, userfaultfd, /dev/kvm and KVM's fds), because the runtime opens
 * files of its own (TSan's symbolizer does, mid-run).
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
	return (uint64_t)sysconf(_SC_PAGESIZE);
}

static int __gt_unused gt_convert(struct gmem *g, uint64_t off, uint64_t len,
				  int private, uint64_t flags,
				  uint64_t *error_offset)
{
	struct gmem_attributes a = {
		.offset = off,
		.size = len,
		.attributes = private ? GMEM_ATTR_PRIVATE : 0,
		.flags = flags,
	};
	int ret = gmem_set_attributes(g, &a);

	if (error_offset)
		*error_offset = a.error_offset;
	return ret;
}

/* Could fd name (a /proc/self/fd link) have been opened by libgmem? */
static int __gt_unused gt_gmem_fd(const char *name)
{
	return strstr(name, "memfd:gmem") || strstr(name, "userfaultfd") ||
	       strstr(name, "kvm");
}

/*
 * Entries of /proc/self/fd, without the directory's own fd; -1 on error.
 * Under a sanitizer, only the fds libgmem could have opened (see above).
 */
static int __gt_unused gt_count_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *d;
	char path[300], name[256];
	int n = 0;

	if (!dir)
		return -1;
	while ((d = readdir(dir))) {
		ssize_t len;

		if (d->d_name[0] == '.')
			continue;
		if (!GT_SANITIZER) {
			n++;
			continue;
		}
		snprintf(path, sizeof(path), "/proc/self/fd/%s", d->d_name);
		len = readlink(path, name, sizeof(name) - 1);
		if (len <= 0)
			continue;
		name[len] = '\0';
		n += gt_gmem_fd(name);
	}
	closedir(dir);
	return GT_SANITIZER ? n : n - 1;
}

/* Lines of /proc/self/maps that map one of libgmem's memfds. */
static int __gt_unused gt_count_gmem_maps(void)
{
	static const char key[] = "/memfd:gmem", kvm[] = "kvm-gmem";
	char buf[16384], line[512];
	size_t ll = 0;
	ssize_t len;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC), n = 0;

	if (fd < 0)
		return -1;
	while ((len = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < len; i++) {
			if (buf[i] != '\n') {
				if (ll < sizeof(line) - 1)
					line[ll++] = buf[i];
				continue;
			}
			line[ll] = '\0';
			n += strstr(line, key) || strstr(line, kvm);
			ll = 0;
		}
	}
	close(fd);
	return len < 0 ? -1 : n;
}

/* Can this process open a userfaultfd (so uffd-mode views exist)? */
static int __gt_unused gt_uffd_available(void)
{
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	/* Without privilege libgmem asks for UFFD_USER_MODE_ONLY (1). */
	if (fd < 0)
		fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1);
	if (fd < 0)
		return 0;
	close((int)fd);
	return 1;
}

/*
 * GMEM_TEST_BACKEND=kvm asks for the kernel guest_memfd backend (as in
 * gmem_test.h); the default is the memfd backend.
 */
static int __gt_unused gt_kvm_backend(void)
{
	const char *b = getenv("GMEM_TEST_BACKEND");

	return b && !strcmp(b, "kvm");
}

static double __gt_unused gt_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
