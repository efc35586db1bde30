// SPDX-License-Identifier: MIT
/*
 * test_snapshot.c - gmem_snapshot_save() and gmem_snapshot_restore().
 *
 * Round trips: a file with shared and private runs, contents loaded by
 * populate, a hole punched and a poisoned page (pages written through a
 * view, and parked pages, in tests of their own) is saved to a memfd
 * and restored; the new file must have the same state runs, the same
 * allocated runs (the backing's data runs, compared page by page), the
 * same contents (read on both sides
 * through the backing, the way the library reads private pages) and the
 * same poison, and no host view.  On memfd 4 KiB, shmem THP (huge
 * mapping compared in /proc/self/smaps), 1 GiB hugetlb and KVM
 * guest_memfd; the last three skip, saying why, where the machine has no
 * such memory; as root the THP and hugetlb ones set /sys up (shmem THP
 * "advise", two 1 GiB pages) and put it back, unless GMEM_TEST_NO_SYSFS
 * is set.  Through a pipe too.
 *
 * Bad input: every byte of a small stream's header and record heads
 * flipped, payload bytes sampled, truncation at every record boundary
 * and inside records, wrong magic, version, size, flags, backend: each
 * fails with its documented errno, returns no file and leaves no
 * mapping or fd of libgmem behind.
 *
 * Every system call of a save and of a restore failed in turn (sys.h's
 * fault injection): a restore that fails returns no file and leaves
 * nothing behind; a save that fails leaves the file as it was.
 *
 * Sparse: a 1 TiB file with 4 MiB allocated saves a stream of about
 * 4 MiB.  gmemctl snapshot and restore (make check's $GMEMCTL): a round
 * trip, and a truncated stream, another file and a usage mistake
 * refused with their exit codes.
 */
#include <linux/falloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <gmem.h>

#include "harness.h"
#include "gmem_test.h"
#include "hash.h"
#include "internal.h"
#include "snapshot.h"
#include "sys.h"

#define MiB		(1ULL << 20)
#define GiB		(1ULL << 30)
#define THP_KNOB	"/sys/kernel/mm/transparent_hugepage/shmem_enabled"
#define POOL_1G		"/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"

static uint64_t ps;

static void __attribute__((constructor)) init_page_size(void)
{
	ps = (uint64_t)getpagesize();
}

/*
 * The THP and hugetlb round trips read /sys but never write it; their
 * results depend on it (shmem_enabled decides what a write allocates),
 * so they hold the lock of the tests that change it (test_common.h),
 * as those do, for the life of the process: no other suite on the
 * machine changes the setting under them.
 */
static void __attribute__((constructor)) lock_sysfs(void)
{
	tc_sysfs_lock();
}

#include "snapshot_test.h"

/* Save g, restore it, compare, and give the copy back. */
static struct gmem *round_trip(struct gmem *g, uint32_t backend)
{
	struct gmem *r = NULL;
	int fd = stream_fd();
	int maps = gmem_test_count_maps(true);

	ASSERT_EQ(save(g, fd), 0);
	/* Saving maps nothing (no host view of a private page). */
	ASSERT_EQ(gmem_test_count_maps(true), maps);
	ASSERT_EQ(restore(fd, backend, &r), 0);
	ASSERT_NONNULL(r);
	close(fd);
	compare(g, r);
	return r;
}

/* ---- round trips per backend ------------------------------------------- */

TEST(memfd_round_trip)
{
	struct gmem *g = build(16 * MiB, 0, GMEM_BACKEND_MEMFD, ps);
	struct gmem *r = round_trip(g, GMEM_BACKEND_MEMFD);

	ASSERT_GT(stats(r).poisoned, 0);
	ASSERT_GT(stats(r).priv, 0);
	/* The copy is a working file: its private pages stay guarded. */
	gmem_close(g);
	gmem_close(r);
}

TEST(memfd_init_shared_round_trip)
{
	struct gmem *g = build(8 * MiB, GMEM_FLAG_INIT_SHARED,
			       GMEM_BACKEND_MEMFD, ps);
	struct gmem *r = round_trip(g, GMEM_BACKEND_MEMFD);

	gmem_close(g);
	gmem_close(r);
}

/* A restored file's private pages raise SIGBUS in a view of it. */
TEST(restored_private_pages_stay_private)
{
	struct gmem *g = build(4 * MiB, 0, GMEM_BACKEND_MEMFD, ps);
	struct gmem *r = round_trip(g, GMEM_BACKEND_MEMFD);
	char *v;

	ASSERT_EQ(gmem_mmap(r, 0, 4 * MiB, PROT_READ, (void **)&v), 0);
	ASSERT_EQ(attr_at(r, 3 * ps), GMEM_ATTR_PRIVATE);
	ASSERT_EQ(harness_probe(v + 3 * ps, 0, NULL), SIGBUS);
	ASSERT_EQ(harness_probe(v + 2 * MiB + 2 * ps, 0, NULL), SIGBUS);
	ASSERT_EQ(harness_probe(v, 0, NULL), 0);
	ASSERT_EQ(gmem_munmap(r, v, 4 * MiB), 0);
	gmem_close(g);
	gmem_close(r);
}

/* Parked pages (shared while exposed, then private) save their truth. */
TEST(parked_pages_round_trip)
{
	struct gmem *g = build(4 * MiB, 0, GMEM_BACKEND_MEMFD, ps);
	struct gmem *r;
	char *v;

	ASSERT_EQ(gmem_mmap(g, 0, 2 * MiB, PROT_READ | PROT_WRITE,
			    (void **)&v), 0);
	memset(v + 20 * ps, 0x77, 4 * ps);
	ASSERT_EQ(convert(g, 20 * ps, 4 * ps, 1), 0);
	ASSERT_GT(stats(g).parked, 0);
	r = round_trip(g, GMEM_BACKEND_MEMFD);
	ASSERT_EQ(gmem_munmap(g, v, 2 * MiB), 0);
	gmem_close(g);
	gmem_close(r);
}

/*
 * A /sys knob a test changed, put back by the teardown even when the
 * test fails.
 */
FIXTURE(knob) {
	const char *path;
	char saved[64];
};

FIXTURE_SETUP(knob)
{
	self->path = NULL;
}

FIXTURE_TEARDOWN(knob)
{
	if (self->path)
		gmem_test_write_knob(self->path, self->saved);
}

/* Set path to val, remembering what it was; 0 or -errno. */
static int knob_set(FIXTURE_DATA(knob) *self, const char *path,
		    const char *old, const char *val)
{
	int ret = gmem_test_write_knob(path, val);

	if (!ret) {
		self->path = path;
		snprintf(self->saved, sizeof(self->saved), "%s", old);
	}
	return ret;
}

TEST_F(knob, thp_round_trip)
{
	uint64_t size = 64 * MiB, hg, hr;
	char line[128], saved[64], *vg, *vr;
	struct gmem *g, *r;
	int ret;

	if (gmem_test_read_knob(THP_KNOB, line, sizeof(line)))
		SKIP(return, "%s: not readable: no shmem THP here", THP_KNOB);
	gmem_test_knob_mode(line, saved, sizeof(saved));
	/* Root sets it up (and puts it back below), as test_huge does. */
	if ((strstr(line, "[never]") || strstr(line, "[deny]")) &&
	    knob_set(self, THP_KNOB, saved, "advise"))
		SKIP(return, "shmem THP unavailable: %s is \"%s\" and cannot "
		     "be changed (not root, or GMEM_TEST_NO_SYSFS set)",
		     THP_KNOB, line);
	{
		struct gmem_create_args probe = {
			.size = 2 * MiB, .flags = GMEM_FLAG_HUGE_2MB,
		};

		ret = gmem_create(&probe, &g);
		if (ret)
			SKIP(return, "gmem_create(2 MiB THP): %s",
			     strerror(-ret));
		gmem_close(g);
	}
	g = build(size, GMEM_FLAG_HUGE_2MB | GMEM_FLAG_INIT_SHARED,
		  GMEM_BACKEND_MEMFD, ps);
	/* Whole shared regions touched through a view map huge. */
	ASSERT_EQ(gmem_mmap(g, 0, (size_t)size, PROT_READ | PROT_WRITE,
			    (void **)&vg), 0);
	for (uint64_t o = 8 * MiB; o < 16 * MiB; o += ps)
		vg[o] = (char)o;
	r = round_trip(g, GMEM_BACKEND_MEMFD);
	ASSERT_EQ(gmem_mmap(r, 0, (size_t)size, PROT_READ, (void **)&vr), 0);
	for (uint64_t o = 8 * MiB; o < 16 * MiB; o += ps)
		ASSERT_EQ(vr[o], vg[o]);
	hg = gmem_test_smaps_huge(vg, (size_t)size);
	hr = gmem_test_smaps_huge(vr, (size_t)size);
	TH_LOG("huge: source %ju MiB, restored %ju MiB",
	       (uintmax_t)(hg / MiB), (uintmax_t)(hr / MiB));
	ASSERT_GT(hg, 0);
	ASSERT_EQ(hr, hg);
	ASSERT_EQ(gmem_munmap(g, vg, (size_t)size), 0);
	ASSERT_EQ(gmem_munmap(r, vr, (size_t)size), 0);
	gmem_close(g);
	gmem_close(r);
}

TEST_F(knob, hugetlb_1g_round_trip)
{
	struct gmem_create_args probe = {
		.size = GiB, .flags = GMEM_FLAG_HUGE_1GB,
	};
	char pool[64] = "";
	struct gmem *g, *r, *g2;
	bool grew = false;
	int ret;

	gmem_test_read_knob(POOL_1G, pool, sizeof(pool));
	/* Root grows an empty pool to the two pages (put back after). */
	if (atoi(pool) < 2 && !knob_set(self, POOL_1G, pool, "2"))
		grew = true;
	ret = gmem_create(&probe, &g);
	if (ret)
		SKIP(return, "1 GiB hugetlb: gmem_create: %s (%s = \"%s\"%s)",
		     strerror(-ret), POOL_1G, pool, grew ? ", set to 2: "
		     "the kernel found no free 1 GiB pages" : "; not root");
	/* The source and the copy: two pages. */
	ret = gmem_create(&probe, &g2);
	gmem_close(g);
	if (ret)
		SKIP(return, "1 GiB hugetlb: a second page: %s (%s = "
		     "\"%s\"%s)", strerror(-ret), POOL_1G, pool,
		     grew ? ", set to 2" : "");
	gmem_close(g2);
	g = build(GiB, GMEM_FLAG_HUGE_1GB, GMEM_BACKEND_MEMFD, GiB / 64);
	r = round_trip(g, GMEM_BACKEND_MEMFD);
	gmem_close(g);
	gmem_close(r);
}

TEST(kvm_round_trip)
{
	struct gmem *g, *r;
	char why[128];

	if (kvm_unavailable(why, sizeof(why)))
		SKIP(return, "%s", why);
	g = build(8 * MiB, 0, GMEM_BACKEND_KVM, ps);
	r = round_trip(g, GMEM_BACKEND_KVM);
	gmem_close(g);
	gmem_close(r);
}

/* ---- streams ------------------------------------------------------------ */

struct pipe_saver {
	struct gmem *g;
	int fd;
	int ret;
};

static void *pipe_save(void *arg)
{
	struct pipe_saver *s = arg;

	s->ret = gmem_snapshot_save(s->g, s->fd, NULL);
	close(s->fd);
	return NULL;
}

TEST(through_a_pipe)
{
	struct gmem *g = build(8 * MiB, 0, GMEM_BACKEND_MEMFD, ps), *r = NULL;
	struct gmem_snapshot_restore_args ra = {
		.size = 8 * MiB, .flags = GMEM_FLAG_MMAP,
	};
	struct pipe_saver s = { g, -1, -1 };
	pthread_t t;
	int p[2];

	ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
	s.fd = p[1];
	ASSERT_EQ(pthread_create(&t, NULL, pipe_save, &s), 0);
	ASSERT_EQ(gmem_snapshot_restore(p[0], &ra, &r), 0);
	ASSERT_EQ(pthread_join(t, NULL), 0);
	ASSERT_EQ(s.ret, 0);
	close(p[0]);
	compare(g, r);
	gmem_close(g);
	gmem_close(r);
}

/* A reader that went away: -EPIPE, and no SIGPIPE kills the process. */
/*
 * Stores through a view during a save (the caller did not quiesce): the
 * contents are some mix, but the stream must restore; a record hashed
 * in place and written after a store would be refused (-EBADMSG).
 */
struct scribbler {
	char *v;
	uint64_t npages;
	_Atomic bool stop;
};

static void *scribble(void *arg)
{
	struct scribbler *w = arg;
	uint64_t s = 88172645463325252ULL;

	while (!atomic_load(&w->stop)) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		memset(w->v + (s % w->npages) * ps, (int)s, ps);
	}
	return NULL;
}

TEST(save_under_stores_restores)
{
	uint64_t size = 16 * MiB;
	struct gmem_create_args a = {
		.size = size, .flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
	};
	struct scribbler w = { .npages = size / ps };
	struct gmem *g, *r;
	pthread_t t;

	ASSERT_EQ(gmem_create(&a, &g), 0);
	ASSERT_EQ(gmem_mmap(g, 0, size, PROT_READ | PROT_WRITE,
			    (void **)&w.v), 0);
	memset(w.v, 1, size);
	ASSERT_EQ(pthread_create(&t, NULL, scribble, &w), 0);
	for (int i = 0; i < 5; i++) {
		int fd = stream_fd();

		ASSERT_EQ(save(g, fd), 0);
		ASSERT_EQ(restore(fd, GMEM_BACKEND_MEMFD, &r), 0);
		gmem_close(r);
		close(fd);
	}
	atomic_store(&w.stop, true);
	pthread_join(t, NULL);
	ASSERT_EQ(gmem_munmap(g, w.v, size), 0);
	gmem_close(g);
}

TEST(closed_pipe_is_epipe)
{
	struct gmem *g = build(4 * MiB, 0, GMEM_BACKEND_MEMFD, ps);
	int p[2];

	ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	ASSERT_EQ(gmem_snapshot_save(g, p[1], NULL), -EPIPE);
	close(p[1]);
	gmem_close(g);
}

TEST(sparse_1t_saves_what_is_allocated)
{
	struct gmem_create_args args = { .size = 1ULL << 40 };
	struct gmem *g, *r;
	int fd = stream_fd();
	uint64_t bytes;
	int ret = gmem_create(&args, &g);

	/* valgrind's address space has no room for a 1 TiB window. */
	if (ret && gmem_test_foreign_runtime())
		SKIP(return, "gmem_create(1 TiB) under a sanitizer or valgrind: "
		     "%s (its runtime limits the address space)",
		     strerror(-ret));
	ASSERT_EQ(ret, 0);
	ASSERT_EQ(gmem_fallocate(g, FALLOC_FL_KEEP_SIZE, 0, 2 * MiB), 0);
	ASSERT_EQ(gmem_fallocate(g, FALLOC_FL_KEEP_SIZE, 700 * GiB, 2 * MiB),
		  0);
	ASSERT_EQ(save(g, fd), 0);
	bytes = fd_size(fd);
	TH_LOG("1 TiB file, 4 MiB allocated: %ju byte stream",
	       (uintmax_t)bytes);
	ASSERT_GE(bytes, 4 * MiB);
	ASSERT_LE(bytes, 4 * MiB + 64 * 1024);
	/* The source's 1 TiB of address space goes first: a sanitizer's
	 * runtime leaves a process room for one such file, not two. */
	gmem_close(g);
	ASSERT_EQ(restore(fd, GMEM_BACKEND_MEMFD, &r), 0);
	ASSERT_EQ(stats(r).allocated, 4 * MiB);
	ASSERT_EQ(stats(r).size, 1ULL << 40);
	close(fd);
	gmem_close(r);
}

/* ---- arguments ---------------------------------------------------------- */

TEST(bad_arguments)
{
	struct gmem_create_args args = { .size = 4 * ps };
	struct gmem_snapshot_save_args sa = { .flags = 2 };
	struct gmem_snapshot_restore_args ra = { .reserved[2] = 1 };
	struct gmem *g, *r = NULL;
	int fd = stream_fd();

	ASSERT_EQ(gmem_create(&args, &g), 0);
	ASSERT_EQ(gmem_snapshot_save(NULL, fd, NULL), -EINVAL);
	ASSERT_EQ(gmem_snapshot_save(g, -1, NULL), -EINVAL);
	ASSERT_EQ(gmem_snapshot_save(g, fd, &sa), -EINVAL);
	/* Incremental needs dirty tracking and a chain (test_dirty.c). */
	sa = (struct gmem_snapshot_save_args){ .flags = GMEM_SAVE_DIRTY };
	ASSERT_EQ(gmem_snapshot_save(g, fd, &sa), -ENOENT);
	sa = (struct gmem_snapshot_save_args){ .reserved[3] = 1 };
	ASSERT_EQ(gmem_snapshot_save(g, fd, &sa), -EINVAL);
	ASSERT_EQ(fd_size(fd), 0);
	ASSERT_EQ(gmem_snapshot_save(g, fd, NULL), 0);
	ASSERT_EQ(gmem_snapshot_restore(fd, &ra, &r), -EINVAL);
	ra = (struct gmem_snapshot_restore_args){ .restore_flags = 2 };
	ASSERT_EQ(gmem_snapshot_restore(fd, &ra, &r), -EINVAL);
	ra = (struct gmem_snapshot_restore_args){
		.size = 4 * ps, .restore_flags = GMEM_RESTORE_AS_SAVED };
	ASSERT_EQ(gmem_snapshot_restore(fd, &ra, &r), -EINVAL);
	ASSERT_EQ(gmem_snapshot_restore(fd, NULL, &r), -EINVAL);
	ASSERT_EQ(gmem_snapshot_restore(fd, &ra, NULL), -EINVAL);
	ASSERT_EQ(gmem_snapshot_restore(-1, &ra, &r), -EINVAL);
	ASSERT_NULL(r);
	gmem_close(g);
	/* A closed file a view keeps alive: -EBADF. */
	args.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED;
	ASSERT_EQ(gmem_create(&args, &g), 0);
	{
		void *v;

		ASSERT_EQ(gmem_mmap(g, 0, 4 * ps, PROT_READ, &v), 0);
		gmem_close(g);
		ASSERT_EQ(gmem_snapshot_save(g, fd, NULL), -EBADF);
		ASSERT_EQ(gmem_munmap(g, v, 4 * ps), 0);
	}
	close(fd);
}

/* ---- bad input ---------------------------------------------------------- */

/* A small stream: 32 pages, every record type. */
static unsigned char *small_stream(size_t *len)
{
	struct gmem *g = build(32 * ps, 0, GMEM_BACKEND_MEMFD, ps);
	int fd = stream_fd();
	unsigned char *s;

	ASSERT_EQ(save(g, fd), 0);
	gmem_close(g);
	*len = (size_t)fd_size(fd);
	s = malloc(*len);
	ASSERT_NONNULL(s);
	ASSERT_EQ(pread(fd, s, *len, 0), (ssize_t)*len);
	close(fd);
	return s;
}

/*
 * Restore from bytes: the result, checking that a failure returns no
 * file and leaves no libgmem mapping or fd behind.
 */
static int restore_bytes(const unsigned char *s, size_t len,
			 struct gmem_snapshot_restore_args *ra)
{
	struct gmem_snapshot_restore_args dflt = {
		.restore_flags = GMEM_RESTORE_AS_SAVED,
	};
	int fd = stream_fd(), maps, fds, ret;
	struct gmem *r = NULL;

	ASSERT_EQ(pwrite(fd, s, len, 0), (ssize_t)len);
	maps = gmem_test_count_maps(true);
	fds = gmem_test_count_fds(true);
	ret = gmem_snapshot_restore(fd, ra ? ra : &dflt, &r);
	if (ret) {
		ASSERT_NULL(r);
		ASSERT_EQ(gmem_test_count_maps(true), maps);
		ASSERT_EQ(gmem_test_count_fds(true), fds);
	} else {
		gmem_close(r);
	}
	close(fd);
	return ret;
}

TEST(intact_small_stream_restores)
{
	size_t len;
	unsigned char *s = small_stream(&len);

	ASSERT_EQ(restore_bytes(s, len, NULL), 0);
	free(s);
}

/* Every bit of meaning is covered: any flipped byte fails the restore. */
TEST(every_flipped_byte_fails)
{
	size_t len, heads = 0, tried = 0;
	unsigned char *s = small_stream(&len);

	for (size_t i = 0; i < len; i++) {
		bool head = i < SNAP_HEADER_SIZE;
		int ret;

		/* Record heads in full, payload bytes sampled. */
		for (size_t o = SNAP_HEADER_SIZE; !head && o < len;) {
			uint64_t plen = snap_get64(s + o + 16);

			if (i >= o && i < o + SNAP_RECORD_SIZE)
				head = true;
			if (i < o + SNAP_RECORD_SIZE + plen)
				break;
			o += SNAP_RECORD_SIZE + plen;
		}
		if (!head && i % 61)
			continue;
		heads += head;
		tried++;
		s[i] ^= 0x10;
		ret = restore_bytes(s, len, NULL);
		s[i] ^= 0x10;
		if (!ret)
			TH_LOG("byte %zu flipped: restored anyway", i);
		ASSERT_LT(ret, 0);
		if (i >= SNAP_H_MAGIC + 8)
			ASSERT_NE(ret, -ENOEXEC);
	}
	TH_LOG("%zu bytes flipped, %zu of them in heads, of %zu", tried,
	       heads, len);
	free(s);
}

TEST(truncated_streams_fail_enodata)
{
	size_t len, o;
	unsigned char *s = small_stream(&len);

	ASSERT_EQ(restore_bytes(s, 0, NULL), -ENODATA);
	ASSERT_EQ(restore_bytes(s, 10, NULL), -ENODATA);
	for (o = SNAP_HEADER_SIZE; o < len;
	     o += SNAP_RECORD_SIZE + snap_get64(s + o + 16)) {
		ASSERT_EQ(restore_bytes(s, o, NULL), -ENODATA);
		ASSERT_EQ(restore_bytes(s, o + 7, NULL), -ENODATA);
		ASSERT_EQ(restore_bytes(s, o + SNAP_RECORD_SIZE + 1, NULL),
			  o + SNAP_RECORD_SIZE + 1 >= len ? 0 : -ENODATA);
	}
	ASSERT_EQ(o, len);
	ASSERT_EQ(restore_bytes(s, len - 1, NULL), -ENODATA);
	free(s);
}

static void reseal_header(unsigned char *s)
{
	snap_put64(s + SNAP_H_CHECKSUM, gmem_hash64(s, SNAP_H_CHECKSUM, 0));
}

TEST(wrong_magic_version_size_flags_backend)
{
	struct gmem_snapshot_restore_args ra = { 0 };
	size_t len;
	unsigned char *s = small_stream(&len);

	s[0] = 'X';
	ASSERT_EQ(restore_bytes(s, len, NULL), -ENOEXEC);
	s[0] = 'G';
	snap_put32(s + SNAP_H_VERSION, 2);
	reseal_header(s);
	ASSERT_EQ(restore_bytes(s, len, NULL), -EPROTONOSUPPORT);
	snap_put32(s + SNAP_H_VERSION, SNAP_VERSION);
	reseal_header(s);
	ASSERT_EQ(restore_bytes(s, len, NULL), 0);
	/* What the caller asked for differs from the stream. */
	ra.size = 64 * ps;
	ra.flags = GMEM_FLAG_MMAP;
	ASSERT_EQ(restore_bytes(s, len, &ra), -ERANGE);
	ra.size = 32 * ps;
	ra.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED;
	ASSERT_EQ(restore_bytes(s, len, &ra), -ERANGE);
	ra.flags = GMEM_FLAG_MMAP;
	ASSERT_EQ(restore_bytes(s, len, &ra), 0);
	ra.backend = GMEM_BACKEND_KVM;
	ra.vm_fd = -1;
	ASSERT_EQ(restore_bytes(s, len, &ra), -EMEDIUMTYPE);
	/* A stream made on another backend. */
	snap_put32(s + SNAP_H_BACKEND, GMEM_BACKEND_KVM);
	reseal_header(s);
	ASSERT_EQ(restore_bytes(s, len, NULL), -EMEDIUMTYPE);
	snap_put32(s + SNAP_H_BACKEND, GMEM_BACKEND_MEMFD);
	/* Another page size. */
	snap_put32(s + SNAP_H_PAGE_SHIFT, 16);
	reseal_header(s);
	ASSERT_EQ(restore_bytes(s, len, NULL), -EMEDIUMTYPE);
	free(s);
}

/* A record dropped or repeated: its neighbours' checksums tell. */
TEST(dropped_or_repeated_record_fails)
{
	size_t len, o1, o2, r1;
	unsigned char *s = small_stream(&len), *t;

	o1 = SNAP_HEADER_SIZE;
	r1 = SNAP_RECORD_SIZE + snap_get64(s + o1 + 16);
	o2 = o1 + r1;
	t = malloc(len + r1);
	ASSERT_NONNULL(t);
	/* Without the first record. */
	memcpy(t, s, o1);
	memcpy(t + o1, s + o2, len - o2);
	ASSERT_EQ(restore_bytes(t, len - r1, NULL), -EBADMSG);
	/* With it twice. */
	memcpy(t, s, o2);
	memcpy(t + o2, s + o1, len - o1);
	ASSERT_EQ(restore_bytes(t, len + r1, NULL), -EBADMSG);
	free(t);
	free(s);
}

/* ---- injected failures -------------------------------------------------- */

TEST(restore_unwinds_every_injected_failure)
{
	size_t len;
	unsigned char *s = small_stream(&len);
	unsigned long n, failed = 0;

	for (n = 1; n < 5000; n++) {
		unsigned long injected;
		int ret;

		sys_fault_arm(n, ENOMEM, SYS_FAULT_ONCE, SYS_C_FALLIBLE);
		ret = restore_bytes(s, len, NULL);
		injected = sys_fault_injected();
		sys_fault_disarm();
		if (!injected)
			break;		/* past the restore's last call */
		failed += ret != 0;
	}
	TH_LOG("%lu calls failed in turn, %lu restores failed", n - 1,
	       failed);
	ASSERT_GT(n, 10);
	ASSERT_GT(failed, 0);
	ASSERT_EQ(restore_bytes(s, len, NULL), 0);
	free(s);
}

TEST(save_survives_every_injected_failure)
{
	struct gmem *g = build(32 * ps, 0, GMEM_BACKEND_MEMFD, ps), *r;
	unsigned long n, failed = 0;
	int maps = gmem_test_count_maps(true);

	for (n = 1; n < 5000; n++) {
		unsigned long injected;
		int fd = stream_fd(), ret;

		sys_fault_arm(n, EIO, SYS_FAULT_ONCE, SYS_C_FALLIBLE);
		ret = gmem_snapshot_save(g, fd, NULL);
		injected = sys_fault_injected();
		sys_fault_disarm();
		close(fd);
		if (!injected)
			break;
		failed += ret != 0;
		/* libgmem's own mappings only: malloc's heap may grow. */
		ASSERT_EQ(gmem_test_count_maps(true), maps);
	}
	TH_LOG("%lu calls failed in turn, %lu saves failed", n - 1, failed);
	ASSERT_GT(n, 2);
	/* The file is as it was: a save now restores equal. */
	r = round_trip(g, GMEM_BACKEND_MEMFD);
	gmem_close(g);
	gmem_close(r);
}

/* ---- gmemctl snapshot / restore ------------------------------------------ */

/* Run a shell command line; its exit status, stdout+stderr in out. */
static int __attribute__((format(printf, 3, 4)))
sh(char *out, size_t len, const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	FILE *p;
	size_t n;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	p = popen(cmd, "r");
	ASSERT_NONNULL(p);
	n = fread(out, 1, len - 1, p);
	out[n] = 0;
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(gmemctl_snapshot_and_restore)
{
	const char *gm = getenv("GMEMCTL");
	char dir[] = "/tmp/gmem-snap-XXXXXX", out[8192];

	if (!gm || access(gm, X_OK))
		SKIP(return, "no gmemctl to run (GMEMCTL is set by make check)");
	ASSERT_NONNULL(mkdtemp(dir));
	/* A sparse 1 TiB file; TSan has no room for it (test_common.h). */
	ASSERT_EQ(sh(out, sizeof(out), "%s snapshot --size %s --alloc 8M "
		     "%s/s 2>&1", gm, gmem_test_foreign_runtime() ? "64M" : "1T",
		     dir), 0);
	ASSERT_NONNULL(strstr(out, "8 MiB"));
	ASSERT_EQ(sh(out, sizeof(out), "%s restore %s/s 2>&1", gm, dir), 0);
	ASSERT_NONNULL(strstr(out, "Restored"));
	ASSERT_NONNULL(strstr(out, "8 MiB"));
	/* Truncated, not a snapshot, a usage mistake. */
	ASSERT_EQ(sh(out, sizeof(out), "head -c 100000 %s/s > %s/t && "
		     "%s restore %s/t 2>&1", dir, dir, gm, dir), 1);
	ASSERT_NONNULL(strstr(out, "truncated"));
	ASSERT_EQ(sh(out, sizeof(out), "head -c 4096 /dev/zero > %s/z && "
		     "%s restore %s/z 2>&1", dir, gm, dir), 1);
	ASSERT_NONNULL(strstr(out, "not a libgmem snapshot"));
	ASSERT_EQ(sh(out, sizeof(out), "%s restore 2>&1", gm), 2);
	ASSERT_EQ(sh(out, sizeof(out), "%s snapshot --alloc 3M %s/u 2>&1", gm,
		     dir), 2);
	ASSERT_EQ(sh(out, sizeof(out), "rm -r %s", dir), 0);
}
