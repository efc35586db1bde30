// SPDX-License-Identifier: MIT
/*
 * test_dirty.c - dirty tracking (gmem_dirty_start/collect/stop) and the
 * incremental snapshot chain (GMEM_SAVE_DIRTY, gmem_snapshot_apply()).
 *
 * What is written must be reported: stores through a view in VMA mode
 * and one in UFFD mode, first touches of holes, populate, the guest view
 * (gmem_get_pfn() addresses), a pin, punches, conversions; and only a
 * little more than that where the mechanism is exact (so a tracker that
 * reports everything fails too).  Tracking never takes access away: a
 * shared page stays writable, a private page still SIGBUSes, during and
 * after.
 *
 * The chain: a file is saved (generation 0), restored, then changed in
 * every way and brought over by incremental saves and applies; the copy
 * must equal the source each time (test_snapshot.c's compare()).  Under
 * load: writer threads storing through views while conversions and
 * punches run, rounds saved and applied meanwhile; after the writers
 * stop, one last round must make the copy equal: a write that tracking
 * lost shows as a differing page.  Bad chains: another chain, a skipped
 * generation, a full stream given to apply or an incremental one to
 * restore, a truncated round (the copy is then refused for good), a
 * failed save (its pages go back: the next round still has them).
 */
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include <gmem.h>

#include "harness.h"
#include "gmem_test.h"
#include "hash.h"
#include "internal.h"
#include "snapshot.h"
#include "sys.h"

#define MiB		(1ULL << 20)

static uint64_t ps;

static void __attribute__((constructor)) init_page_size(void)
{
	ps = (uint64_t)getpagesize();
}

#include "snapshot_test.h"

static struct gmem *file(uint64_t size)
{
	struct gmem_create_args a = { .size = size, .flags = GMEM_FLAG_MMAP };
	struct gmem *g;

	ASSERT_EQ(gmem_create(&a, &g), 0);
	ASSERT_EQ(convert(g, 0, size, 0), 0);	/* all shared */
	return g;
}

static void no_invalidate(void *owner, uint64_t off, uint64_t size,
			  unsigned int reason)
{
	(void)owner, (void)off, (void)size, (void)reason;
}

static const struct gmem_binding_ops ops = { .invalidate = no_invalidate };

/* The pages collect reports for the whole file, as a list. */
static uint64_t collect(struct gmem *g, uint64_t *pages, uint64_t max)
{
	uint64_t n = g->npages, words = (n + 63) / 64, count = 0, k = 0;
	uint64_t *bm = calloc(words, 8);

	ASSERT_NONNULL(bm);
	ASSERT_EQ(gmem_dirty_collect(g, 0, g->size, bm, &count), 0);
	for (uint64_t i = 0; i < n; i++)
		if (bm[i / 64] & (1ULL << (i % 64))) {
			if (k < max)
				pages[k] = i;
			k++;
		}
	ASSERT_EQ(k, count);
	free(bm);
	return k;
}

static bool has(const uint64_t *pages, uint64_t n, uint64_t p)
{
	for (uint64_t i = 0; i < n; i++)
		if (pages[i] == p)
			return true;
	return false;
}

TEST(bad_arguments)
{
	struct gmem *g = file(64 * ps);
	uint64_t bm[1], n;

	ASSERT_EQ(gmem_dirty_start(NULL, 0), -EINVAL);
	ASSERT_EQ(gmem_dirty_start(g, 1), -EINVAL);
	ASSERT_EQ(gmem_dirty_stop(g), -EINVAL);
	ASSERT_EQ(gmem_dirty_collect(g, 0, g->size, bm, &n), -EINVAL);
	ASSERT_EQ(gmem_dirty_start(g, 0), 0);
	ASSERT_EQ(gmem_dirty_start(g, 0), -EBUSY);
	ASSERT_EQ(gmem_dirty_collect(g, 1, ps, bm, &n), -EINVAL);
	ASSERT_EQ(gmem_dirty_collect(g, 0, g->size + ps, bm, &n), -EINVAL);
	ASSERT_EQ(gmem_dirty_collect(g, 0, ps, NULL, &n), -EINVAL);
	ASSERT_EQ(gmem_dirty_collect(g, 0, g->size, bm, &n), 0);
	ASSERT_EQ(n, 0);
	ASSERT_EQ(gmem_dirty_stop(g), 0);
	ASSERT_EQ(gmem_dirty_stop(g), -EINVAL);
	gmem_close(g);
}

/*
 * Stores through a view of each mode: exactly the pages written (no
 * read happens on them), again after the next collect, and not after.
 * mostly_private makes the view a UFFD one (view_mode.c: at most a
 * quarter shown).
 */
static void view_writes(bool mostly_private)
{
	uint64_t n = 256, got[300], k;
	struct gmem *g = file(n * ps);
	struct gmem_stats st;
	char *v;

	ASSERT_EQ(convert(g, 0, g->size, mostly_private), 0);
	if (mostly_private)
		ASSERT_EQ(convert(g, 0, 32 * ps, 0), 0);
	ASSERT_EQ(gmem_mmap(g, 0, g->size, PROT_READ | PROT_WRITE,
			    (void **)&v), 0);
	for (uint64_t p = 0; p < 32; p++)	/* allocate what is shown */
		v[p * ps] = 1;
	st = stats(g);
	if (mostly_private && !st.views_uffd)
		SKIP(return, "no userfaultfd here: no UFFD-mode view");
	ASSERT_EQ(st.views_uffd, mostly_private ? 1 : 0);
	ASSERT_EQ(gmem_dirty_start(g, 0), 0);
	ASSERT_EQ(collect(g, got, 300), 0);
	v[3 * ps] = 7;
	v[17 * ps + 100] = 8;
	v[31 * ps + ps - 1] = 9;
	k = collect(g, got, 300);
	ASSERT_EQ(k, 3);
	ASSERT_TRUE(has(got, k, 3) && has(got, k, 17) && has(got, k, 31));
	ASSERT_EQ(collect(g, got, 300), 0);
	v[17 * ps] = 10;
	k = collect(g, got, 300);
	ASSERT_EQ(k, 1);
	ASSERT_EQ(got[0], 17);
	if (mostly_private)
		ASSERT_SIGBUS(v + 40 * ps, 0);	/* still private */
	ASSERT_EQ(gmem_dirty_stop(g), 0);
	ASSERT_NO_SIGNAL(v + 17 * ps, 1);
	ASSERT_EQ(v[17 * ps], 0x5a);		/* the probe's store */
	if (mostly_private)
		ASSERT_SIGBUS(v + 40 * ps, 1);
	ASSERT_EQ(gmem_munmap(g, v, g->size), 0);
	gmem_close(g);
}

TEST(vma_view_writes_are_seen)
{
	view_writes(false);
}

TEST(uffd_view_writes_are_seen)
{
	view_writes(true);
}

/* Every other way a page changes. */
TEST(every_path_is_seen)
{
	uint64_t n = 128, got[200], k;
	struct gmem *g = file(n * ps);
	struct gmem_binding *b;
	struct gmem_pfn pfn;
	unsigned char buf[64] = { 1 };
	void *pin;
	char *v;

	ASSERT_EQ(convert(g, 64 * ps, 64 * ps, 1), 0);	/* [64, 128) private */
	ASSERT_EQ(gmem_mmap(g, 0, g->size, PROT_READ | PROT_WRITE,
			    (void **)&v), 0);
	ASSERT_EQ(gmem_bind(g, 0, g->size, &ops,
			    NULL, &b), 0);
	ASSERT_EQ(gmem_dirty_start(g, 0), 0);

	v[5 * ps] = 1;				/* first touch of a hole */
	ASSERT_EQ(gmem_populate(g, 70 * ps, buf, sizeof(buf)),
		  (ssize_t)sizeof(buf));	/* populate */
	ASSERT_EQ(gmem_get_pfn(b, 80, GMEM_ACCESS_PRIVATE, &pfn), 0);
	((char *)pfn.addr)[9] = 3;		/* the guest side */
	k = collect(g, got, 200);
	ASSERT_TRUE(has(got, k, 5) && has(got, k, 70) && has(got, k, 80));
	ASSERT_LE(k, 3 + 16);			/* little more */

	ASSERT_EQ(gmem_pin(g, 9 * ps, ps, &pin), 0);	/* a pin */
	((char *)pin)[1] = 4;
	ASSERT_EQ(gmem_unpin(g, 9 * ps, ps), 0);
	k = collect(g, got, 200);
	ASSERT_TRUE(has(got, k, 9));
	ASSERT_LE(k, 1 + 16);

	ASSERT_EQ(gmem_fallocate(g, FALLOC_FL_KEEP_SIZE |
				 FALLOC_FL_PUNCH_HOLE, 5 * ps, ps), 0);
	ASSERT_EQ(convert(g, 20 * ps, ps, 1), 0);	/* a conversion */
	k = collect(g, got, 200);
	ASSERT_TRUE(has(got, k, 5) && has(got, k, 20));
	ASSERT_LE(k, 2 + 16);
	k = collect(g, got, 200);
	if (k)
		TH_LOG("again: %ju pages, first %ju, parked %zu", (uintmax_t)k,
		       (uintmax_t)got[0], g->park.nr);
	ASSERT_EQ(k, 0);

	ASSERT_EQ(gmem_dirty_stop(g), 0);
	ASSERT_EQ(gmem_unbind(b), 0);
	ASSERT_EQ(gmem_munmap(g, v, g->size), 0);
	gmem_close(g);
}

/* A view unmapped after a store: its store is not lost with it. */
TEST(unmapped_view_keeps_its_writes)
{
	uint64_t got[8];
	struct gmem *g = file(64 * ps);
	char *v;

	ASSERT_EQ(gmem_mmap(g, 0, g->size, PROT_READ | PROT_WRITE,
			    (void **)&v), 0);
	v[ps] = 1;
	ASSERT_EQ(gmem_dirty_start(g, 0), 0);
	v[ps] = 2;
	ASSERT_EQ(gmem_munmap(g, v, g->size), 0);
	ASSERT_EQ(collect(g, got, 8), 1);
	ASSERT_EQ(got[0], 1);
	gmem_close(g);
}

/* ---- the chain ------------------------------------------------------------ */

static int save_flags(struct gmem *g, int fd, uint64_t flags)
{
	struct gmem_snapshot_save_args sa = { .flags = flags };

	ASSERT_EQ(ftruncate(fd, 0), 0);
	ASSERT_EQ(lseek(fd, 0, SEEK_SET), 0);
	return gmem_snapshot_save(g, fd, &sa);
}

static int apply(struct gmem *g, int fd)
{
	struct gmem_snapshot_restore_args ra = {
		.restore_flags = GMEM_RESTORE_AS_SAVED,
	};

	ASSERT_EQ(lseek(fd, 0, SEEK_SET), 0);
	return gmem_snapshot_apply(g, fd, &ra);
}

/* Generation 0 of g, restored: the copy. */
static struct gmem *base(struct gmem *g, int fd)
{
	struct gmem *r = NULL;

	ASSERT_EQ(save_flags(g, fd, 0), 0);
	ASSERT_EQ(restore(fd, GMEM_BACKEND_MEMFD, &r), 0);
	compare(g, r);
	return r;
}

/* One round: save what changed, apply it, compare. */
static void round_trip(struct gmem *g, struct gmem *r, int fd)
{
	ASSERT_EQ(save_flags(g, fd, GMEM_SAVE_DIRTY), 0);
	ASSERT_EQ(apply(r, fd), 0);
	compare(g, r);
}

TEST(chain_follows_every_change)
{
	uint64_t size = 1024 * ps;
	struct gmem *g = build(size, 0, GMEM_BACKEND_MEMFD, ps), *r;
	unsigned char buf[256];
	int fd = stream_fd();
	uint64_t full, incr;

	(void)save;
	char *v;

	ASSERT_EQ(gmem_dirty_start(g, 0), 0);
	r = base(g, fd);
	full = fd_size(fd);
	round_trip(g, r, fd);			/* nothing changed */
	ASSERT_LT(fd_size(fd), full / 4);

	ASSERT_EQ(gmem_mmap(g, 0, size, PROT_READ | PROT_WRITE,
			    (void **)&v), 0);
	v[10 * ps + 3] = 42;			/* through a view */
	v[100 * ps] = 43;			/* a first touch */
	fill(buf, sizeof(buf), 9);
	ASSERT_EQ(gmem_populate(g, size / 2 + 9 * ps, buf, sizeof(buf)),
		  (ssize_t)sizeof(buf));
	round_trip(g, r, fd);
	incr = fd_size(fd);
	ASSERT_LE(incr, 6 * ps + 4096);		/* those pages, not all */

	ASSERT_EQ(gmem_fallocate(g, FALLOC_FL_KEEP_SIZE |
				 FALLOC_FL_PUNCH_HOLE, 100 * ps, 2 * ps), 0);
	ASSERT_EQ(convert(g, 200 * ps, 8 * ps, 1), 0);
	ASSERT_EQ(convert(g, size / 2 + 20 * ps, 4 * ps, 0), 0);
	ASSERT_EQ(gmem_memory_failure(g, 300 * ps), 0);
	round_trip(g, r, fd);

	ASSERT_EQ(gmem_fallocate(g, FALLOC_FL_KEEP_SIZE |
				 FALLOC_FL_PUNCH_HOLE, 300 * ps, ps), 0);
	v[300 * ps] = 5;			/* poison punched, rewritten */
	round_trip(g, r, fd);

	ASSERT_EQ(gmem_munmap(g, v, size), 0);
	gmem_close(r);
	gmem_close(g);
	close(fd);
}

TEST(bad_chains_are_refused)
{
	uint64_t size = 256 * ps;
	struct gmem *g = build(size, 0, GMEM_BACKEND_MEMFD, ps), *r, *other;
	struct gmem *r2 = NULL;
	int fd = stream_fd(), fd2 = stream_fd();
	struct gmem_snapshot_restore_args ra = { .size = size,
						 .flags = GMEM_FLAG_MMAP,
						 .backend = GMEM_BACKEND_MEMFD };
	uint64_t len;

	/* No chain yet. */
	ASSERT_EQ(save_flags(g, fd, GMEM_SAVE_DIRTY), -ENOENT);
	ASSERT_EQ(gmem_dirty_start(g, 0), 0);
	ASSERT_EQ(save_flags(g, fd, GMEM_SAVE_DIRTY), -ENOENT);
	r = base(g, fd);

	/* A full stream to apply, an incremental one to restore. */
	ASSERT_EQ(apply(r, fd), -ESTALE);
	ASSERT_EQ(convert(g, 0, ps, 1), 0);
	ASSERT_EQ(save_flags(g, fd, GMEM_SAVE_DIRTY), 0);	/* gen 1 */
	ASSERT_EQ(restore(fd, GMEM_BACKEND_MEMFD, &r2), -ESTALE);
	ASSERT_NULL(r2);
	/* Generation 2 before 1: refused, and nothing changed. */
	ASSERT_EQ(convert(g, ps, ps, 1), 0);
	ASSERT_EQ(save_flags(g, fd2, GMEM_SAVE_DIRTY), 0);	/* gen 2 */
	ASSERT_EQ(apply(r, fd2), -ESTALE);
	ASSERT_EQ(attr_at(r, 0), 0);
	ASSERT_EQ(apply(r, fd), 0);
	ASSERT_EQ(apply(r, fd), -ESTALE);	/* the same one again */
	ASSERT_EQ(apply(r, fd2), 0);
	compare(g, r);

	/* Another file's chain, another size. */
	other = build(size, 0, GMEM_BACKEND_MEMFD, ps);
	ASSERT_EQ(gmem_dirty_start(other, 0), 0);
	ASSERT_EQ(save_flags(other, fd2, 0), 0);
	ASSERT_EQ(save_flags(other, fd2, GMEM_SAVE_DIRTY), 0);
	ASSERT_EQ(apply(r, fd2), -ESTALE);
	ASSERT_EQ(convert(g, 2 * ps, ps, 1), 0);
	ASSERT_EQ(save_flags(g, fd, GMEM_SAVE_DIRTY), 0);	/* gen 3 */
	ra.size = size + ps;
	ASSERT_EQ(lseek(fd, 0, SEEK_SET), 0);
	ASSERT_EQ(gmem_snapshot_apply(r, fd, &ra), -ERANGE);
	ra.size = size;
	ra.backend = GMEM_BACKEND_KVM;
	ASSERT_EQ(lseek(fd, 0, SEEK_SET), 0);
	ASSERT_EQ(gmem_snapshot_apply(r, fd, &ra), -EMEDIUMTYPE);
	ra.backend = GMEM_BACKEND_MEMFD;
	ASSERT_EQ(lseek(fd, 0, SEEK_SET), 0);
	ASSERT_EQ(gmem_snapshot_apply(r, fd, &ra), 0);
	compare(g, r);

	/* A save that fails gives its pages back to the next one. */
	{
		int pipefd[2];
		char *v;

		ASSERT_EQ(gmem_mmap(g, 0, size, PROT_READ | PROT_WRITE,
				    (void **)&v), 0);
		v[7 * ps] = 99;
		ASSERT_EQ(pipe(pipefd), 0);
		close(pipefd[0]);
		ASSERT_EQ(gmem_snapshot_save(g, pipefd[1], &(struct
			  gmem_snapshot_save_args){ .flags = GMEM_SAVE_DIRTY }),
			  -EPIPE);
		close(pipefd[1]);
		round_trip(g, r, fd);
		ASSERT_EQ(gmem_munmap(g, v, size), 0);
	}

	/* A round cut short: the copy is refused from then on. */
	ASSERT_EQ(convert(g, 3 * ps, ps, 1), 0);
	ASSERT_EQ(gmem_fallocate(g, FALLOC_FL_KEEP_SIZE, 0, 8 * ps), 0);
	{
		char *v;

		ASSERT_EQ(gmem_mmap(g, 0, size, PROT_READ | PROT_WRITE,
				    (void **)&v), 0);
		v[5 * ps] = 1;
		ASSERT_EQ(gmem_munmap(g, v, size), 0);
	}
	ASSERT_EQ(save_flags(g, fd, GMEM_SAVE_DIRTY), 0);
	len = fd_size(fd);
	ASSERT_EQ(ftruncate(fd2, 0), 0);
	{
		char *buf = malloc(len);

		ASSERT_NONNULL(buf);
		ASSERT_EQ(pread(fd, buf, len, 0), (ssize_t)len);
		ASSERT_EQ(pwrite(fd2, buf, len - 40, 0), (ssize_t)(len - 40));
		free(buf);
	}
	ASSERT_EQ(apply(r, fd2), -ENODATA);
	ASSERT_EQ(apply(r, fd), -ESTALE);

	gmem_close(other);
	gmem_close(r);
	gmem_close(g);
	close(fd);
	close(fd2);
}

/*
 * A destination that had a host view: a private page that changes at the
 * source must get its new contents where the destination keeps them (a
 * small private run of an exposed file is parked, rehome.c), not only in
 * the file.  Checked by saving the destination again: the save reads
 * what the destination's guest would.
 */
TEST(exposed_destination_gets_private_contents)
{
	uint64_t size = 256 * ps;
	struct gmem *g = build(size, 0, GMEM_BACKEND_MEMFD, ps), *r, *r2 = NULL;
	unsigned char buf[64];
	int fd = stream_fd();
	char *rv;

	ASSERT_EQ(gmem_dirty_start(g, 0), 0);
	r = base(g, fd);
	ASSERT_EQ(gmem_mmap(r, 0, size, PROT_READ, (void **)&rv), 0);
	ASSERT_EQ(gmem_munmap(r, rv, size), 0);	/* r was exposed */
	for (int round = 0; round < 3; round++) {
		/* A small private run that changes: parked at the apply. */
		ASSERT_EQ(convert(g, 20 * ps, 2 * ps, 1), 0);
		fill(buf, sizeof(buf), 100 + (uint64_t)round);
		ASSERT_EQ(gmem_populate(g, 20 * ps, buf, sizeof(buf)),
			  (ssize_t)sizeof(buf));
		ASSERT_EQ(save_flags(g, fd, GMEM_SAVE_DIRTY), 0);
		ASSERT_EQ(apply(r, fd), 0);
		compare(g, r);
		ASSERT_EQ(save_flags(r, fd, 0), 0);
		ASSERT_EQ(restore(fd, GMEM_BACKEND_MEMFD, &r2), 0);
		compare(g, r2);
		gmem_close(r2);
		r2 = NULL;
		ASSERT_EQ(convert(g, 20 * ps, 2 * ps, 0), 0);
		round_trip(g, r, fd);
	}
	gmem_close(r);
	gmem_close(g);
	close(fd);
}

/* A store that allocates a page while a save runs fails no save. */
struct toucher {
	char *v;
	uint64_t first, n;
	_Atomic bool stop;
};

static void *touch(void *arg)
{
	struct toucher *t = arg;

	for (uint64_t i = 0; !atomic_load(&t->stop); i++)
		t->v[(t->first + i % t->n) * ps] = (char)i;
	return NULL;
}

TEST(saves_run_while_pages_are_first_touched)
{
	uint64_t size = 8192 * ps;
	struct gmem *g = file(size), *r;
	struct toucher t = { .first = 4096, .n = 4096 };
	int fd = stream_fd();
	pthread_t th;
	char *v;

	ASSERT_EQ(gmem_mmap(g, 0, size, PROT_READ | PROT_WRITE,
			    (void **)&v), 0);
	memset(v, 7, 4096 * ps);
	t.v = v;
	ASSERT_EQ(gmem_dirty_start(g, 0), 0);
	r = base(g, fd);
	ASSERT_EQ(pthread_create(&th, NULL, touch, &t), 0);
	for (int i = 0; i < 30; i++) {
		/* Holes again for the next first touches. */
		ASSERT_EQ(gmem_fallocate(g, FALLOC_FL_KEEP_SIZE |
					 FALLOC_FL_PUNCH_HOLE, 4096 * ps,
					 4096 * ps), 0);
		ASSERT_EQ(save_flags(g, fd, GMEM_SAVE_DIRTY), 0);
		ASSERT_EQ(apply(r, fd), 0);
	}
	for (int i = 0; i < 5; i++) {
		ASSERT_EQ(gmem_fallocate(g, FALLOC_FL_KEEP_SIZE |
					 FALLOC_FL_PUNCH_HOLE, 4096 * ps,
					 4096 * ps), 0);
		ASSERT_EQ(save_flags(g, fd, 0), 0);	/* a new chain */
	}
	atomic_store(&t.stop, true);
	pthread_join(th, NULL);
	gmem_close(r);
	ASSERT_EQ(restore(fd, GMEM_BACKEND_MEMFD, &r), 0);
	round_trip(g, r, fd);
	ASSERT_EQ(gmem_munmap(g, v, size), 0);
	gmem_close(r);
	gmem_close(g);
	close(fd);
}

/* ---- failures ------------------------------------------------------------- */

/*
 * Every system call under start, collect and an incremental save fails
 * in turn: start leaves tracking off (and every page as reachable as
 * before), a failed collect or save loses no page: after the failures
 * one clean round makes the copy equal.
 */
TEST(every_injected_failure_loses_nothing)
{
	uint64_t size = 256 * ps, n, bm[4];
	struct gmem *g = build(size, 0, GMEM_BACKEND_MEMFD, ps), *r;
	unsigned long fails = 0;
	int fd = stream_fd(), ret;
	char *v;

	ASSERT_EQ(gmem_mmap(g, 0, size, PROT_READ | PROT_WRITE,
			    (void **)&v), 0);
	for (n = 1; n < 1000; n++) {
		sys_fault_arm(n, EIO, SYS_FAULT_ONCE, SYS_C_FALLIBLE);
		ret = gmem_dirty_start(g, 0);
		if (!sys_fault_injected()) {
			sys_fault_disarm();
			ASSERT_EQ(ret, 0);
			break;
		}
		sys_fault_disarm();
		if (ret) {
			ASSERT_EQ(gmem_dirty_stop(g), -EINVAL);
		} else {
			ASSERT_EQ(gmem_dirty_stop(g), 0);
		}
		ASSERT_NO_SIGNAL(v + 10 * ps, 1);	/* shared */
		ASSERT_SIGBUS(v + size / 2 + 10 * ps, 0);	/* private */
	}
	ASSERT_GT(n, 1);
	r = base(g, fd);
	for (n = 1; n < 3000; n++) {
		unsigned long injected;
		uint64_t p = (n * 7) % (size / ps / 2);

		uint64_t attr = 1;

		ASSERT_EQ(gmem_get_attributes(g, p * ps, &attr, NULL), 0);
		/* A store the next round needs (build() poisons a page). */
		if (!attr && !gmem_poisoned(g, p))
			v[p * ps + n % ps] = (char)n;
		if (n % 11 == 0)
			convert(g, p * ps, ps, 1);
		if (n % 13 == 0)
			gmem_fallocate(g, FALLOC_FL_KEEP_SIZE |
				       FALLOC_FL_PUNCH_HOLE, (p + 1) * ps, ps);
		if (n % 17 == 0)
			convert(g, 0, size / 2, 0);
		sys_fault_arm(n / 2 + 1, EIO, SYS_FAULT_ONCE, SYS_C_FALLIBLE);
		if (n % 2)
			ret = gmem_dirty_collect(g, 0, 256 * ps, bm, NULL);
		else
			ret = save_flags(g, fd, GMEM_SAVE_DIRTY);
		injected = sys_fault_injected();
		sys_fault_disarm();
		if (!injected && n > 200)
			break;
		fails += ret != 0;
		if (!ret && !(n % 2))
			ASSERT_EQ(apply(r, fd), 0);
	}
	TH_LOG("%lu calls failed in turn, %lu collects and saves failed",
	       n - 1, fails);
	ASSERT_GT(fails, 0);
	round_trip(g, r, fd);
	ASSERT_EQ(gmem_dirty_stop(g), 0);
	ASSERT_EQ(gmem_munmap(g, v, size), 0);
	gmem_close(r);
	gmem_close(g);
	close(fd);
}

/* ---- what no mapping of ours shows ---------------------------------------- */

/* A peer's shared pages and pinned pages are reported at every collect. */
TEST(peers_and_pins_count_as_written)
{
	uint64_t got[300], k;
	struct gmem *g = file(256 * ps);
	struct gmem_test_inproc ip = { 0 };
	struct gmem_peer *peer = NULL;
	void *pin;

	ASSERT_EQ(convert(g, 64 * ps, 64 * ps, 1), 0);
	ASSERT_EQ(gmem_fallocate(g, FALLOC_FL_KEEP_SIZE, 0, g->size), 0);
	ASSERT_EQ(gmem_dirty_start(g, 0), 0);
	ASSERT_EQ(collect(g, got, 300), 0);
	ASSERT_EQ(gmem_test_export_inproc(g, 0, 128 * ps, 0, &ip, &peer), 0);
	for (int i = 0; i < 2; i++) {
		k = collect(g, got, 300);
		ASSERT_EQ(k, 64);		/* [0, 64): shared, exported */
		ASSERT_TRUE(has(got, k, 0) && has(got, k, 63));
	}
	gmem_close(ip.pg);
	gmem_unexport(peer);	/* the peer is gone: its status */
	ASSERT_EQ(collect(g, got, 300), 64);	/* written until it went */
	ASSERT_EQ(collect(g, got, 300), 0);
	ASSERT_EQ(gmem_pin(g, 200 * ps, 2 * ps, &pin), 0);
	for (int i = 0; i < 2; i++) {
		k = collect(g, got, 300);
		ASSERT_EQ(k, 2);
		ASSERT_TRUE(has(got, k, 200) && has(got, k, 201));
	}
	ASSERT_EQ(gmem_unpin(g, 200 * ps, 2 * ps), 0);
	ASSERT_EQ(collect(g, got, 300), 2);	/* written until the unpin */
	ASSERT_EQ(collect(g, got, 300), 0);
	ASSERT_EQ(gmem_dirty_stop(g), 0);
	gmem_close(g);
}

/*
 * A guest_memfd file: KVM's stores are seen by nothing in user space, so
 * every allocated page is reported at every collect, and the chain
 * still makes an equal copy.
 */
TEST(kvm_reports_every_allocated_page)
{
	uint64_t size = 4 * MiB, *bm = calloc(size / ps / 64, 8), n, alloc;
	struct gmem *g, *r;
	char why[128];
	int fd;

	ASSERT_NONNULL(bm);
	if (kvm_unavailable(why, sizeof(why)))
		SKIP(return, "%s", why);
	g = build(size, 0, GMEM_BACKEND_KVM, ps);
	alloc = stats(g).allocated / ps;
	ASSERT_GT(alloc, 0);
	ASSERT_EQ(gmem_dirty_start(g, 0), 0);
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(gmem_dirty_collect(g, 0, size, bm, &n), 0);
		ASSERT_EQ(n, alloc);
	}
	fd = stream_fd();
	ASSERT_EQ(save_flags(g, fd, 0), 0);
	ASSERT_EQ(lseek(fd, 0, SEEK_SET), 0);
	{
		struct gmem_snapshot_restore_args ra = {
			.backend = GMEM_BACKEND_KVM, .vm_fd = -1,
			.restore_flags = GMEM_RESTORE_AS_SAVED,
		};

		ASSERT_EQ(gmem_snapshot_restore(fd, &ra, &r), 0);
		ASSERT_EQ(convert(g, 0, ps, 1), 0);
		ASSERT_EQ(save_flags(g, fd, GMEM_SAVE_DIRTY), 0);
		ASSERT_EQ(lseek(fd, 0, SEEK_SET), 0);
		ra.backend = GMEM_BACKEND_KVM;
		ASSERT_EQ(gmem_snapshot_apply(r, fd, &ra), 0);
	}
	compare(g, r);
	gmem_close(r);
	gmem_close(g);
	close(fd);
	free(bm);
}

/* ---- under load ----------------------------------------------------------- */

struct load {
	struct gmem *g;
	char *view;
	uint64_t npages;
	_Atomic bool stop;
	_Atomic uint64_t stores;
	unsigned int seed;
};

/* Stores into shared pages of the view; private ones are skipped. */
static void *writer(void *arg)
{
	struct load *l = arg;
	uint64_t s = l->seed | 1;

	while (!atomic_load(&l->stop)) {
		uint64_t p = rnd(&s) % l->npages;
		uint64_t attr;

		/* The state can change under the store: probe it. */
		if (gmem_get_attributes(l->g, p * ps, &attr, NULL) || attr)
			continue;
		if (harness_probe(l->view + p * ps + (rnd(&s) % ps), 1, NULL))
			continue;	/* went private meanwhile */
		atomic_fetch_add_explicit(&l->stores, 1, memory_order_relaxed);
	}
	return NULL;
}

TEST(no_store_is_lost_under_load)
{
	uint64_t size = 2048 * ps;
	struct gmem *g = build(size, 0, GMEM_BACKEND_MEMFD, ps), *r;
	struct load l = { .g = g, .npages = size / ps };
	pthread_t t[2];
	uint64_t s = 77;
	int fd = stream_fd();

	ASSERT_EQ(gmem_mmap(g, 0, size, PROT_READ | PROT_WRITE,
			    (void **)&l.view), 0);
	ASSERT_EQ(gmem_dirty_start(g, 0), 0);
	r = base(g, fd);
	for (int i = 0; i < 2; i++) {
		l.seed = 1000u + (unsigned int)i;
		ASSERT_EQ(pthread_create(&t[i], NULL, writer, &l), 0);
	}
	/* At least 40 rounds and 2000 stores, however slow the machine. */
	for (int round = 0; round < 40 || (atomic_load(&l.stores) < 2000 &&
					    round < 100000); round++) {
		uint64_t p = rnd(&s) % (l.npages - 8);

		/* Conversions both ways and punches among the stores. */
		convert(g, p * ps, 4 * ps, (int)(round & 1));
		if (round % 5 == 4)
			gmem_fallocate(g, FALLOC_FL_KEEP_SIZE |
				       FALLOC_FL_PUNCH_HOLE, p * ps, 2 * ps);
		ASSERT_EQ(save_flags(g, fd, GMEM_SAVE_DIRTY), 0);
		ASSERT_EQ(apply(r, fd), 0);
	}
	atomic_store(&l.stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	ASSERT_GE(atomic_load(&l.stores), 2000);
	round_trip(g, r, fd);		/* the stop-and-copy round */
	ASSERT_EQ(gmem_munmap(g, l.view, size), 0);
	gmem_close(r);
	gmem_close(g);
	close(fd);
}


