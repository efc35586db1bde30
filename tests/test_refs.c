// SPDX-License-Identifier: MIT
/*
 * test_refs.c - kernel references taken while a page was shared (issue
 * 10, class 1).  A shared page of a host view is handed to the kernel
 * (vmsplice() into a pipe: a read reference; an io_uring fixed buffer: a
 * long-term pin the kernel reads and writes later), the page becomes
 * private, the guest side writes a secret into it (gmem_get_pfn(),
 * gmem_populate(), or on the kvm backend the memslot's mapping, as KVM
 * would), and the old reference must neither see the secret nor write
 * into the private page.  The kernel's in-place conversion refuses such
 * a conversion (-EAGAIN); libgmem re-homes the page (src/rehome.c).
 *
 * Every case runs on a view in userfaultfd mode (file created private)
 * and one in vma mode (created shared); on the kvm backend both are vma
 * mode and the guest also writes through the memslot.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "gmem.h"
#include "harness.h"
#include "gmem_test.h"
#include "ring.h"

#define NPAGES	256

static void on_invalidate(void *o, uint64_t off, uint64_t size,
			  unsigned int reason)
{
	(void)o, (void)off, (void)size, (void)reason;
}

static const struct gmem_binding_ops ops = { .invalidate = on_invalidate };

FIXTURE(refs) {
	struct gmem *g;
	struct gmem_binding *b;
	char *view;
	size_t ps;
	int pipe[2];
};

FIXTURE_VARIANT(refs) {
	uint64_t flags;
};

FIXTURE_VARIANT_ADD(refs, uffd_view) {
	.flags = GMEM_FLAG_MMAP,
};

FIXTURE_VARIANT_ADD(refs, vma_view) {
	.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
};

FIXTURE_SETUP(refs)
{
	struct gmem_create_args args = { .flags = variant->flags };

	GMEM_TEST_REQUIRE_BACKEND();
	self->ps = (size_t)getpagesize();
	args.size = NPAGES * self->ps;
	ASSERT_EQ(gmem_test_create(&args, &self->g), 0);
	ASSERT_EQ(gmem_mmap(self->g, 0, args.size, PROT_READ | PROT_WRITE,
			    (void **)&self->view), 0);
	ASSERT_EQ(gmem_bind(self->g, 0, args.size, &ops, NULL, &self->b), 0);
	ASSERT_EQ(pipe(self->pipe), 0);
	/* Room for a whole page in the pipe. */
	fcntl(self->pipe[1], F_SETPIPE_SZ, 1 << 20);
}

FIXTURE_TEARDOWN(refs)
{
	close(self->pipe[0]);
	close(self->pipe[1]);
	if (self->b)
		gmem_unbind(self->b);
	if (self->view)
		gmem_munmap(self->g, self->view, NPAGES * self->ps);
	gmem_close(self->g);
}

/* The guest side writes c over page p, which is private. */
static void guest_write(struct gmem_binding *b, uint64_t p, size_t ps, char c)
{
	struct gmem_pfn pfn;

	ASSERT_EQ(gmem_get_pfn(b, p, GMEM_ACCESS_PRIVATE, &pfn), 0);
	memset(pfn.addr, c, ps);
	ASSERT_EQ(gmem_put_pfn(b, p, GMEM_ACCESS_PRIVATE), 0);
}

/* Every byte of page p, as the guest side reads it, is c. */
static void guest_expect(struct gmem_binding *b, uint64_t p, size_t ps,
			 char c)
{
	struct gmem_pfn pfn;
	size_t bad = 0;

	ASSERT_EQ(gmem_get_pfn(b, p, GMEM_ACCESS_PRIVATE, &pfn), 0);
	for (size_t i = 0; i < ps; i++)
		bad += ((char *)pfn.addr)[i] != c;
	ASSERT_EQ(gmem_put_pfn(b, p, GMEM_ACCESS_PRIVATE), 0);
	ASSERT_EQ(bad, 0);
}

/* Bytes of buf[0, len) equal to c. */
static size_t count_of(const char *buf, size_t len, char c)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += buf[i] == c;
	return n;
}

static void hand_to_pipe(int fd, char *addr, size_t len)
{
	struct iovec iov = { .iov_base = addr, .iov_len = len };

	ASSERT_EQ(vmsplice(fd, &iov, 1, 0), (ssize_t)len);
}

static void read_all(int fd, char *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, buf + done, len - done);

		ASSERT_GT(n, 0);
		done += (size_t)n;
	}
}

/* vmsplice(): the pipe holds the page; what the guest writes later. */
TEST_F(refs, vmsplice_sees_no_private_write)
{
	size_t ps = self->ps;
	const uint64_t p = 5;
	char *buf = malloc(ps);

	ASSERT_NONNULL(buf);
	ASSERT_EQ(convert_pages(self->g, p, 1, 0), 0);
	memset(self->view + p * ps, 'S', ps);
	hand_to_pipe(self->pipe[1], self->view + p * ps, ps);
	ASSERT_EQ(convert_pages(self->g, p, 1, 1), 0);
	guest_write(self->b, p, ps, 'X');
	read_all(self->pipe[0], buf, ps);
	EXPECT_EQ(count_of(buf, ps, 'X'), 0);
	EXPECT_EQ(count_of(buf, ps, 'S'), ps);
	guest_expect(self->b, p, ps, 'X');
	EXPECT_GE(stats(self->g).rehomed, 1);
	free(buf);
}

/* gmem_populate() is a private use too. */
TEST_F(refs, vmsplice_sees_no_populate)
{
	size_t ps = self->ps;
	const uint64_t p = 9;
	char *buf = malloc(ps), *img = malloc(ps);

	ASSERT_NONNULL(buf);
	ASSERT_NONNULL(img);
	memset(img, 'F', ps);
	ASSERT_EQ(convert_pages(self->g, p, 1, 0), 0);
	memset(self->view + p * ps, 'S', ps);
	hand_to_pipe(self->pipe[1], self->view + p * ps, ps);
	ASSERT_EQ(convert_pages(self->g, p, 1, 1), 0);
	ASSERT_EQ(gmem_populate(self->g, p * ps, img, ps), (ssize_t)ps);
	read_all(self->pipe[0], buf, ps);
	EXPECT_EQ(count_of(buf, ps, 'F'), 0);
	guest_expect(self->b, p, ps, 'F');
	free(buf);
	free(img);
}

/*
 * An io_uring fixed buffer: a long-term pin the kernel uses whenever it
 * is asked to.  After the page went private and the guest wrote to it,
 * a WRITE_FIXED (kernel reads the old page) must not carry the secret
 * and a READ_FIXED (kernel writes the old page) must not change it.
 */
TEST_F(refs, io_uring_buffer_neither_reads_nor_writes_private)
{
	size_t ps = self->ps;
	const uint64_t p = 17;
	char *buf = malloc(ps);
	struct ring r;
	int in[2], out[2], ret;

	ASSERT_NONNULL(buf);
	ret = ring_init(&r);
	if (ret)
		SKIP(return, "io_uring_setup: %s (kernel.io_uring_disabled?)",
		     strerror(-ret));
	ASSERT_EQ(pipe(in), 0);
	ASSERT_EQ(pipe(out), 0);
	fcntl(out[1], F_SETPIPE_SZ, 1 << 20);
	fcntl(in[1], F_SETPIPE_SZ, 1 << 20);
	ASSERT_EQ(convert_pages(self->g, p, 1, 0), 0);
	memset(self->view + p * ps, 'S', ps);
	ret = ring_register(&r, self->view + p * ps, ps);
	if (ret == -ENOMEM || ret == -EPERM)
		SKIP(goto out, "io_uring buffer registration: %s "
		     "(RLIMIT_MEMLOCK?)", strerror(-ret));
	ASSERT_EQ(ret, 0);
	ASSERT_EQ(convert_pages(self->g, p, 1, 1), 0);
	guest_write(self->b, p, ps, 'X');
	/* The kernel writes through the old reference... */
	memset(buf, 'E', ps);
	ASSERT_EQ(write(in[1], buf, ps), (ssize_t)ps);
	ASSERT_EQ(ring_rw(&r, in[0], ps, 0), (int)ps);
	guest_expect(self->b, p, ps, 'X');
	/* ...and reads through it. */
	ASSERT_EQ(ring_rw(&r, out[1], ps, 1), (int)ps);
	read_all(out[0], buf, ps);
	EXPECT_EQ(count_of(buf, ps, 'X'), 0);
out:
	ring_exit(&r);
	close(in[0]);
	close(in[1]);
	close(out[0]);
	close(out[1]);
	free(buf);
}

/* More pages than are parked one by one: re-homed at the conversion. */
TEST_F(refs, large_conversion)
{
	size_t ps = self->ps;
	const uint64_t first = 16, n = 200, p = first + 150;
	char *buf = malloc(ps);

	ASSERT_NONNULL(buf);
	ASSERT_EQ(convert_pages(self->g, first, n, 0), 0);
	for (uint64_t q = first; q < first + n; q++)
		memset(self->view + q * ps, (char)('a' + q % 26), ps);
	hand_to_pipe(self->pipe[1], self->view + p * ps, ps);
	ASSERT_EQ(convert_pages(self->g, first, n, 1), 0);
	guest_write(self->b, p, ps, 'X');
	read_all(self->pipe[0], buf, ps);
	EXPECT_EQ(count_of(buf, ps, 'X'), 0);
	/* Every page kept its contents. */
	for (uint64_t q = first; q < first + n; q++)
		if (q != p)
			guest_expect(self->b, q, ps, (char)('a' + q % 26));
	free(buf);
}

/* Can a 4 KiB file get huge folios (then pages may stay BUSY)? */
static bool shmem_may_be_huge(void)
{
	char buf[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled",
			"r");

	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = '\0';
		fclose(f);
	}
	return strstr(buf, "[always]") || strstr(buf, "[within_size]") ||
	       strstr(buf, "[force]");
}

/*
 * A conversion past the parking batch re-homes every page at once, once:
 * none is left parked (the check that a page left the file must come
 * before its contents are written back into it), and private use then
 * has nothing left to do.
 */
TEST_F(refs, large_conversion_rehomes_once)
{
	size_t ps = self->ps;
	const uint64_t first = 16, n = 200;
	struct gmem_stats st;

	ASSERT_EQ(convert_pages(self->g, first, n, 0), 0);
	for (uint64_t q = first; q < first + n; q++)
		memset(self->view + q * ps, (char)('a' + q % 26), ps);
	ASSERT_EQ(convert_pages(self->g, first, n, 1), 0);
	st = stats(self->g);
	if (shmem_may_be_huge())
		SKIP(return, "shmem_enabled makes huge folios: pages may "
		     "stay in their folio (BUSY); test_huge covers that");
	EXPECT_EQ(st.rehome_busy, 0);
	EXPECT_EQ(st.parked, 0);
	EXPECT_GE(st.rehomed, n);
	for (uint64_t q = first; q < first + n; q++)
		guest_expect(self->b, q, ps, (char)('a' + q % 26));
	EXPECT_EQ(stats(self->g).rehomed, st.rehomed);
}

/*
 * More single-page conversions than the store keeps snapshots (512):
 * the oldest are re-homed in batches.  References taken before see none
 * of what the guest writes after, and every page keeps its contents.
 */
TEST(parking_overflow_rehomes_oldest)
{
	struct gmem_create_args args = { .flags = GMEM_FLAG_MMAP };
	const uint64_t npages = 1024, conv = 700, handed = 16;
	size_t ps = (size_t)getpagesize();
	struct gmem_binding *b;
	struct gmem *g;
	char *view, *buf;
	int fds[2];

	GMEM_TEST_REQUIRE_BACKEND();
	args.size = npages * ps;
	buf = malloc(handed * ps);
	ASSERT_NONNULL(buf);
	ASSERT_EQ(gmem_test_create(&args, &g), 0);
	ASSERT_EQ(gmem_mmap(g, 0, args.size, PROT_READ | PROT_WRITE,
			    (void **)&view), 0);
	ASSERT_EQ(gmem_bind(g, 0, args.size, &ops, NULL, &b), 0);
	ASSERT_EQ(pipe(fds), 0);
	fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
	ASSERT_EQ(convert_pages(g, 0, conv, 0), 0);
	for (uint64_t q = 0; q < conv; q++)
		memset(view + q * ps, (char)('a' + q % 26), ps);
	hand_to_pipe(fds[1], view, handed * ps);
	/* Backwards and one by one: the handed pages are parked last. */
	for (uint64_t q = conv; q-- > 0;)
		ASSERT_EQ(convert_pages(g, q, 1, 1), 0);
	if (gmem_test_backend() == GMEM_BACKEND_MEMFD) {
		EXPECT_LE(stats(g).parked, 512);
		EXPECT_GE(stats(g).rehomed, conv - 512);
	}
	for (uint64_t q = 0; q < handed; q++)
		guest_write(b, q, ps, 'X');
	read_all(fds[0], buf, handed * ps);
	EXPECT_EQ(count_of(buf, handed * ps, 'X'), 0);
	for (uint64_t q = handed; q < conv; q++)
		guest_expect(b, q, ps, (char)('a' + q % 26));
	/* Shared again: the host sees what the guest left. */
	ASSERT_EQ(convert_pages(g, 0, conv, 0), 0);
	EXPECT_EQ(view[3 * ps + 5], 'X');
	EXPECT_EQ(view[(conv - 1) * ps], (char)('a' + (conv - 1) % 26));
	close(fds[0]);
	close(fds[1]);
	gmem_unbind(b);
	gmem_munmap(g, view, args.size);
	gmem_close(g);
	free(buf);
}

/*
 * The DMA flip pattern: shared, touched, private, shared again.  The
 * contents survive every step, a private page waits parked and the
 * store empties when it goes shared again.
 */
TEST_F(refs, flip_keeps_contents)
{
	size_t ps = self->ps;
	const uint64_t p = 33;

	for (int i = 0; i < 20; i++) {
		ASSERT_EQ(convert_pages(self->g, p, 1, 0), 0);
		if (i)
			ASSERT_EQ(self->view[p * ps + 7], (char)('A' + i - 1));
		memset(self->view + p * ps, 'A' + i, ps);
		ASSERT_EQ(convert_pages(self->g, p, 1, 1), 0);
	}
	if (gmem_test_backend() == GMEM_BACKEND_MEMFD)
		EXPECT_EQ(stats(self->g).parked, 1);
	guest_expect(self->b, p, ps, 'A' + 19);
	EXPECT_EQ(stats(self->g).parked, 0);
	ASSERT_EQ(convert_pages(self->g, p, 1, 0), 0);
	ASSERT_EQ(self->view[p * ps + ps - 1], 'A' + 19);
}

/* The kvm backend: KVM writes private memory without asking libgmem. */
TEST_F(refs, kvm_guest_writes_through_the_memslot)
{
	size_t ps = self->ps;
	const uint64_t p = 41;
	char *buf = malloc(ps), *guest;
	int fd;

	ASSERT_NONNULL(buf);
	if (gmem_test_backend() != GMEM_BACKEND_KVM)
		SKIP(goto out, "memfd backend: its guest side is "
		     "gmem_get_pfn(), tested above");
	ASSERT_EQ(gmem_kvm_memslot(self->g, &fd, (void **)&guest), 0);
	ASSERT_EQ(convert_pages(self->g, p, 1, 0), 0);
	memset(self->view + p * ps, 'S', ps);
	hand_to_pipe(self->pipe[1], self->view + p * ps, ps);
	ASSERT_EQ(convert_pages(self->g, p, 1, 1), 0);
	memset(guest + p * ps, 'X', ps);	/* as the vCPU would */
	read_all(self->pipe[0], buf, ps);
	EXPECT_EQ(count_of(buf, ps, 'X'), 0);
out:
	free(buf);
}

/* No host path ever: nothing to park, nothing to re-home. */
/*
 * A private use hands out an allocated page even when re-homing left a
 * hole where the page was (an all-zero page is re-homed by punching it
 * alone).  (Found by review: a "present" bit kept from before the
 * conversion skipped the allocation.)
 */
TEST_F(refs, private_use_after_rehome_allocates)
{
	const uint64_t p = 10, q = 20;
	struct gmem_pfn pfn;
	unsigned char vec;

	ASSERT_EQ(convert(self->g, 0, NPAGES * self->ps, 0), 0);
	/* p reached as shared (exposed, zero), q never. */
	ASSERT_EQ(gmem_get_pfn(self->b, p, GMEM_ACCESS_SHARED, &pfn), 0);
	ASSERT_EQ(gmem_put_pfn(self->b, p, GMEM_ACCESS_SHARED), 0);
	ASSERT_EQ(convert(self->g, p * self->ps, self->ps, 1), 0);
	ASSERT_EQ(convert(self->g, q * self->ps, self->ps, 1), 0);
	for (uint64_t i = 0; i < 2; i++) {
		uint64_t page = i ? q : p;

		ASSERT_EQ(gmem_get_pfn(self->b, page, GMEM_ACCESS_PRIVATE,
				       &pfn), 0);
		ASSERT_EQ(mincore(pfn.addr, self->ps, &vec), 0);
		EXPECT_EQ(vec & 1, 1);
		ASSERT_EQ(gmem_put_pfn(self->b, page, GMEM_ACCESS_PRIVATE), 0);
	}
}

TEST(no_host_path_no_work)
{
	struct gmem_create_args args = { .flags = GMEM_FLAG_MMAP };
	size_t ps = (size_t)getpagesize();
	struct gmem *g;
	char img[64] = "firmware";

	GMEM_TEST_REQUIRE_BACKEND();
	args.size = 64 * ps;
	ASSERT_EQ(gmem_test_create(&args, &g), 0);
	ASSERT_EQ(gmem_populate(g, 0, img, sizeof(img)), (ssize_t)sizeof(img));
	for (int i = 0; i < 10; i++) {
		ASSERT_EQ(convert(g, 0, 8 * ps, 0), 0);
		ASSERT_EQ(convert(g, 0, 8 * ps, 1), 0);
	}
	EXPECT_EQ(stats(g).parked, 0);
	EXPECT_EQ(stats(g).rehomed, 0);
	gmem_close(g);
}

/* A page never touched parks as zeros (no memory); it must come back. */
TEST_F(refs, flip_of_untouched_pages)
{
	size_t ps = self->ps;

	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(convert_pages(self->g, 100, 4, 0), 0);
		ASSERT_EQ(self->view[100 * ps], 0);
		ASSERT_EQ(self->view[103 * ps + ps - 1], 0);
		ASSERT_EQ(convert_pages(self->g, 100, 4, 1), 0);
	}
	guest_expect(self->b, 101, ps, 0);
}
