/* SPDX-License-Identifier: MIT */
/*
 * test_common.h - the one copy of what both helper headers of the tests
 * need: gmem_test.h (the feature tests) and reliability.h (test_badinput,
 * test_stress) each wrap these in their own names, so the logic lives
 * here once.  Header-only, needs no harness.
 *
 * Owns: the backend named by GMEM_TEST_BACKEND, the page size, the clock,
 * one gmem_set_attributes() call, whether a foreign runtime (ASan, TSan,
 * valgrind) shares the process, which fds and mappings are libgmem's,
 * counting them, opening a userfaultfd the way libgmem does, and the lock
 * of the tests that change /sys.
 *
 * Why count only libgmem's fds and mappings under a foreign runtime: the
 * sanitizer runtimes and valgrind map memory and open files of their own
 * at any time (allocator regions, shadow, TSan's symbolizer), so a
 * process-wide count only means something in a plain build.  Everything
 * libgmem opens or maps is one of its memfds ("memfd:gmem",
 * "memfd:gmem-hole"), a guest_memfd ("kvm-gmem"), a userfaultfd or a KVM
 * fd, so matching those names is exact under any runtime.
 */
#ifndef GMEM_TESTS_TEST_COMMON_H
#define GMEM_TESTS_TEST_COMMON_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "gmem.h"

/* GMEM_BACKEND_* named by GMEM_TEST_BACKEND; exits on an unknown name. */
static inline uint32_t gmem_test_backend(void)
{
	const char *env = getenv("GMEM_TEST_BACKEND");

	if (!env || !*env || !strcmp(env, "memfd"))
		return GMEM_BACKEND_MEMFD;
	if (!strcmp(env, "kvm"))
		return GMEM_BACKEND_KVM;
	fprintf(stderr, "GMEM_TEST_BACKEND=%s: unknown backend (memfd, kvm)\n",
		env);
	exit(2);
}

static inline uint64_t gmem_test_page_size(void)
{
	return (uint64_t)sysconf(_SC_PAGESIZE);
}

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t gmem_test_now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000 + (uint64_t)t.tv_nsec;
}

/*
 * gmem_set_attributes() of [off, off + len) to private (private != 0)
 * or shared, with flags; *error_offset (if given) is the library's.
 */
static inline int gmem_test_set_attr(struct gmem *g, uint64_t off,
				     uint64_t len, int private,
				     uint64_t flags, uint64_t *error_offset)
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

/* Does ASan, TSan or valgrind share the process (see above)? */
static inline bool gmem_test_foreign_runtime(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	return true;
#else
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
	return true;
#endif
#endif
	const char *preload = getenv("LD_PRELOAD");

	return preload && strstr(preload, "vgpreload");	/* valgrind */
#endif
}

/* Could a /proc/self/fd link or a maps line be libgmem's? */
static inline bool gmem_test_is_ours(const char *name)
{
	return strstr(name, "memfd:gmem") || strstr(name, "kvm") ||
	       strstr(name, "userfaultfd");
}

/*
 * Lines of /proc/self/maps (only libgmem's with ours_only), read without
 * stdio buffers; -1 on error.
 */
static inline int gmem_test_count_maps(bool ours_only)
{
	static char buf[65536], line[512];
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC), n = 0;
	size_t ll = 0;
	ssize_t len;

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
			ll = 0;
			n += !ours_only || gmem_test_is_ours(line);
		}
	}
	close(fd);
	return len < 0 ? -1 : n;
}

/*
 * Entries of /proc/self/fd, the directory's own fd included (only
 * libgmem's with ours_only); -1 on error.
 */
static inline int gmem_test_count_fds(bool ours_only)
{
	DIR *dir = opendir("/proc/self/fd");
	char path[300], name[256];
	struct dirent *d;
	int n = 0;

	if (!dir)
		return -1;
	while ((d = readdir(dir))) {
		ssize_t len;

		if (d->d_name[0] == '.')
			continue;
		if (!ours_only) {
			n++;
			continue;
		}
		snprintf(path, sizeof(path), "/proc/self/fd/%s", d->d_name);
		len = readlink(path, name, sizeof(name) - 1);
		if (len > 0) {
			name[len] = '\0';
			n += gmem_test_is_ours(name);
		}
	}
	closedir(dir);
	return n;
}

/*
 * A userfaultfd as libgmem opens one: without privilege it asks for
 * UFFD_USER_MODE_ONLY (1).  The fd, or -1.
 */
static inline int gmem_test_uffd_open(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1);
	return fd;
}

/*
 * Tests that change /sys (THP, hugetlb pools) take this lock for the
 * life of their process, so that two suites run at once on one machine
 * (two checkouts, a package build) neither save the other's setting as
 * the one to put back nor change it under the other's feet.  Without
 * the lock file (no /run/lock, no rights) they go on unlocked.
 */
static inline void tc_sysfs_lock(void)
{
	static int fd = -1;

	if (fd >= 0 || getenv("GMEM_TEST_NO_SYSFS"))
		return;
	/* Readable by all: flock() needs only an open fd, so a suite of
	 * another user waits for root's too (a read-only open is enough). */
	fd = open("/run/lock/libgmem-test-sysfs.lock",
		  O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		fd = open("/run/lock/libgmem-test-sysfs.lock",
			  O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fd = open("/tmp/libgmem-test-sysfs.lock",
			  O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0)
		flock(fd, LOCK_EX);
}

/* Bytes of [addr, addr + len) mapped with a PMD or by hugetlb. */
static inline uint64_t gmem_test_smaps_huge(const void *addr, size_t len)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	uintptr_t lo, hi, a = (uintptr_t)addr;
	char line[256];
	unsigned long kb;
	uint64_t n = 0;
	int in = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (line[0] >= '0' && line[0] <= 'f' && line[0] != ':' &&
		    !(line[0] >= 'A' && line[0] <= 'Z') &&
		    sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = lo >= a && hi <= a + len;
		/* A hugetlb page mapped once counts as "Private" there. */
		else if (in && (sscanf(line, "ShmemPmdMapped: %lu", &kb) == 1 ||
				sscanf(line, "Shared_Hugetlb: %lu", &kb) == 1 ||
				sscanf(line, "Private_Hugetlb: %lu", &kb) == 1))
			n += (uint64_t)kb << 10;
	}
	fclose(f);
	return n;
}

/* Read one line of a small file (a /sys knob), without its newline. */
static inline int gmem_test_read_knob(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	int ok;

	if (!f)
		return -errno;
	ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	buf[ok ? strcspn(buf, "\n") : 0] = 0;
	return ok ? 0 : -EIO;
}

/*
 * Write a /sys knob: 0 or -errno; -EPERM without trying when
 * GMEM_TEST_NO_SYSFS is set (package builds: the machine's settings are
 * left alone).  Callers hold tc_sysfs_lock() and put the value back.
 */
static inline int gmem_test_write_knob(const char *path, const char *val)
{
	int ret = 0;
	FILE *f;

	if (getenv("GMEM_TEST_NO_SYSFS"))
		return -EPERM;
	f = fopen(path, "we");
	if (!f)
		return -errno;
	if (fputs(val, f) < 0)
		ret = -EIO;
	if (fclose(f))
		ret = -errno;
	return ret;
}

/* "always within_size advise [never] deny force" -> "never" */
static inline void gmem_test_knob_mode(const char *line, char *mode,
				       size_t len)
{
	const char *a = strchr(line, '['), *b = a ? strchr(a, ']') : NULL;

	snprintf(mode, len, "%.*s", a && b ? (int)(b - a - 1) : 0,
		 a ? a + 1 : "");
}

/* ---- a peer in this process ---------------------------------------------- */

struct gmem_test_inproc {
	int sock;
	int ret;
	struct gmem *pg;		/* the peer file */
};

static void *gmem_test_attach_thread(void *arg)
{
	struct gmem_test_inproc *ip = arg;
	struct gmem_attach_args aa = { 0 };

	ip->ret = gmem_attach(ip->sock, &aa, &ip->pg);
	return NULL;
}

/*
 * Export [off, off + len) of g to a peer attached by a thread of this
 * process: ip->pg is the peer file.  GMEM_EXPORT_NO_KILL, since cutting
 * such a peer off would kill the test.
 */
static inline int gmem_test_export_inproc(struct gmem *g, uint64_t off,
					  uint64_t len,
					  unsigned int timeout_ms,
					  struct gmem_test_inproc *ip,
					  struct gmem_peer **peer)
{
	struct gmem_export_args ea = { .offset = off, .size = len,
				       .flags = GMEM_EXPORT_NO_KILL,
				       .timeout_ms = timeout_ms };
	pthread_t t;
	int sv[2], ret;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	ip->sock = sv[1];
	ip->pg = NULL;
	pthread_create(&t, NULL, gmem_test_attach_thread, ip);
	ret = gmem_export(g, sv[0], &ea, peer);
	pthread_join(t, NULL);
	if (ret)
		close(sv[0]);
	if (ip->ret)
		close(sv[1]);
	return ret ? ret : ip->ret;
}

#endif /* GMEM_TESTS_TEST_COMMON_H */
