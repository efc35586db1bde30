// SPDX-License-Identifier: MIT
/*
 * test_create.c - gmem_create(), gmem_close() and the stats of a new file.
 *
 * Carries over the creation cases of the kernel's guest_memfd_test
 * (guest_memfd_flags, create_guest_memfd_multiple,
 * create_guest_memfd_invalid_sizes) and adds libgmem's own:
 *  - every single flag bit: MMAP and INIT_SHARED succeed, HUGEPAGE is
 *    -EOPNOTSUPP, the huge size bits alone and every other bit -EINVAL;
 *  - sizes 0, 1 .. pagesize - 1, k pages + 1 and above INT64_MAX: -EINVAL;
 *  - reserved fields, unknown backends and NULL arguments: -EINVAL, with
 *    *out left alone;
 *  - several files coexist, each with its own size;
 *  - a new file is private unless INIT_SHARED, in one run;
 *  - the stats of a new file, and gmem_stat() of a partial struct;
 *  - gmem_close(NULL), and 1000 create/close cycles leak no fd and no
 *    mapping.
 */
#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/mman.h>

#include <gmem.h>

#include "harness.h"
#include "gmem_test.h"

static uint64_t ps;

static void __attribute__((constructor)) init_page_size(void)
{
	ps = (uint64_t)getpagesize();
}

/* On the backend under test: GMEM_TEST_REQUIRE_BACKEND() if it succeeds. */
static int create(uint64_t size, uint64_t flags, struct gmem **g)
{
	struct gmem_create_args args = { .size = size, .flags = flags };

	return gmem_test_create(&args, g);
}

/* ASSERT_EQ that also names table case i when it fails. */
#define CASE_EQ(a, b)							\
	do {								\
		intmax_t __c_a = (intmax_t)(a), __c_b = (intmax_t)(b);	\
		if (__c_a != __c_b)					\
			TH_LOG("case %zu: %s == %s", i, #a, #b);	\
		ASSERT_EQ(__c_a, __c_b);				\
	} while (0)

/* ---- (a) flags ---------------------------------------------------------- */

static int expected_for_bit(unsigned int bit)
{
	uint64_t f = 1ULL << bit;

	if (f == GMEM_FLAG_MMAP || f == GMEM_FLAG_INIT_SHARED)
		return 0;
	/* HUGEPAGE needs a size that is a multiple of 2 MiB: not one page;
	 * bits 58..63 need HUGEPAGE. */
	return -EINVAL;
}

TEST(every_flag_bit)
{
	GMEM_TEST_REQUIRE_BACKEND();
	for (unsigned int bit = 0; bit < 64; bit++) {
		struct gmem *g = NULL;
		int want = expected_for_bit(bit);
		int ret = create(ps, 1ULL << bit, &g);

		if (ret != want)
			TH_LOG("flag bit %u", bit);
		ASSERT_EQ(ret, want);
		if (!ret) {
			ASSERT_NONNULL(g);
			gmem_close(g);
		}
	}
}

/*
 * The huge size field: -EINVAL without HUGEPAGE, with a size that is not
 * a multiple of the huge page, or with a page size other than 2 MiB and
 * 1 GiB.  (What the machine can provide is test_huge.c's business.)
 */
TEST(huge_flags)
{
	static const struct {
		uint64_t size, flags;
		int want;
	} cases[] = {
		{ 2ULL << 20, 21ULL << GMEM_HUGE_SHIFT, -EINVAL },
		{ 1ULL << 30, 30ULL << GMEM_HUGE_SHIFT, -EINVAL },
		{ 1ULL << 20, GMEM_FLAG_HUGEPAGE | 21ULL << GMEM_HUGE_SHIFT,
		  -EINVAL },
		{ 3ULL << 20, GMEM_FLAG_HUGEPAGE, -EINVAL },
		{ 2ULL << 20, GMEM_FLAG_HUGEPAGE | 30ULL << GMEM_HUGE_SHIFT,
		  -EINVAL },
		{ 4ULL << 20, GMEM_FLAG_HUGEPAGE | 22ULL << GMEM_HUGE_SHIFT,
		  -EINVAL },
		{ 1ULL << 16, GMEM_FLAG_HUGEPAGE | 16ULL << GMEM_HUGE_SHIFT,
		  -EINVAL },
		{ 2ULL << 20, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED |
		  1ULL << 3, -EINVAL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gmem *g = NULL;
		int ret = create(cases[i].size, cases[i].flags, &g);

		if (ret != cases[i].want)
			TH_LOG("case %zu: flags %#jx", i,
			       (uintmax_t)cases[i].flags);
		ASSERT_EQ(ret, cases[i].want);
		ASSERT_NULL(g);
	}
}

/* ---- (b) sizes ---------------------------------------------------------- */

static const uint64_t flag_sets[] = {
	0, GMEM_FLAG_MMAP, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
};

TEST(invalid_sizes)
{
	static const uint64_t pages[] = { 1, 2, 3, 4, 511, 512, 1 << 20 };

	for (size_t f = 0; f < sizeof(flag_sets) / sizeof(flag_sets[0]); f++) {
		struct gmem *g = NULL;

		for (uint64_t size = 1; size < ps; size++) {
			int ret = create(size, flag_sets[f], &g);

			if (ret != -EINVAL)
				TH_LOG("size %ju flags %#jx", (uintmax_t)size,
				       (uintmax_t)flag_sets[f]);
			ASSERT_EQ(ret, -EINVAL);
		}
		ASSERT_EQ(create(0, flag_sets[f], &g), -EINVAL);
		for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
			ASSERT_EQ(create(pages[i] * ps + 1, flag_sets[f], &g),
				  -EINVAL);
			ASSERT_EQ(create(pages[i] * ps - 1, flag_sets[f], &g),
				  -EINVAL);
		}
		/* Aligned but larger than any off_t. */
		ASSERT_EQ(create((uint64_t)INT64_MAX + 1, flag_sets[f], &g),
			  -EINVAL);
		ASSERT_EQ(create(UINT64_MAX & ~(ps - 1), flag_sets[f], &g),
			  -EINVAL);
		ASSERT_EQ(create(UINT64_MAX, flag_sets[f], &g), -EINVAL);
		ASSERT_NULL(g);
	}
}

/* ---- (c) several files -------------------------------------------------- */

static uint64_t stat_size(struct gmem *g)
{
	struct gmem_stats st;

	ASSERT_EQ(gmem_stat(g, &st, sizeof(st)), 0);
	return st.size;
}

TEST(multiple)
{
	struct gmem *g1 = NULL, *g2 = NULL, *g3 = NULL;
	struct gmem_attributes a = { .size = ps };
	uint64_t attr, run;

	GMEM_TEST_REQUIRE_BACKEND();
	ASSERT_EQ(create(ps, 0, &g1), 0);
	ASSERT_EQ(create(2 * ps, 0, &g2), 0);
	ASSERT_NE((uintptr_t)g1, (uintptr_t)g2);
	ASSERT_EQ(stat_size(g1), ps);
	ASSERT_EQ(stat_size(g2), 2 * ps);
	ASSERT_EQ(stat_size(g1), ps);	/* unchanged by the second file */

	/* The files are independent: a conversion in one only. */
	ASSERT_EQ(gmem_set_attributes(g2, &a), 0);
	ASSERT_EQ(gmem_get_attributes(g1, 0, &attr, &run), 0);
	ASSERT_EQ(attr, GMEM_ATTR_PRIVATE);
	ASSERT_EQ(gmem_get_attributes(g2, 0, &attr, &run), 0);
	ASSERT_EQ(attr, 0);
	ASSERT_EQ(run, ps);

	/* Closing one leaves the other alone. */
	gmem_close(g1);
	ASSERT_EQ(create(3 * ps, GMEM_FLAG_MMAP, &g3), 0);
	ASSERT_EQ(stat_size(g2), 2 * ps);
	ASSERT_EQ(stat_size(g3), 3 * ps);
	gmem_close(g2);
	gmem_close(g3);
}

/* ---- (d) invalid arguments ---------------------------------------------- */

enum bad_arg { B_VM_FD, B_RESERVED, B_BACKEND, B_KVM_VM_FD };

static const struct {
	enum bad_arg what;
	unsigned int index;
	uint64_t value;
} bad_args[] = {
	/* vm_fd is for the KVM backend only; there, -1 or a real fd. */
	{ B_VM_FD, 0, 1 }, { B_VM_FD, 0, 0x80000000 }, { B_VM_FD, 0, -1 },
	{ B_KVM_VM_FD, 0, -2 }, { B_KVM_VM_FD, 0, 0x80000000 },
	{ B_RESERVED, 0, 1 }, { B_RESERVED, 1, 1 }, { B_RESERVED, 2, 1 },
	{ B_RESERVED, 3, 1 }, { B_RESERVED, 4, 1 }, { B_RESERVED, 5, 1 },
	{ B_RESERVED, 5, 1ULL << 63 }, { B_RESERVED, 0, UINT64_MAX },
	{ B_BACKEND, 0, 2 }, { B_BACKEND, 0, 3 }, { B_BACKEND, 0, UINT32_MAX },
};

TEST(invalid_args)
{
	struct gmem *sentinel = (struct gmem *)&sentinel, *g;

	for (size_t i = 0; i < sizeof(bad_args) / sizeof(bad_args[0]); i++) {
		struct gmem_create_args args = {
			.size = ps, .flags = GMEM_FLAG_MMAP,
		};
		int ret;

		switch (bad_args[i].what) {
		case B_VM_FD:
			args.vm_fd = (int32_t)bad_args[i].value;
			break;
		case B_KVM_VM_FD:
			args.backend = GMEM_BACKEND_KVM;
			args.vm_fd = (int32_t)bad_args[i].value;
			break;
		case B_RESERVED:
			args.reserved[bad_args[i].index] = bad_args[i].value;
			break;
		case B_BACKEND:
			args.backend = (uint32_t)bad_args[i].value;
			break;
		}
		g = sentinel;
		ret = gmem_create(&args, &g);
		if (ret != -EINVAL || g != sentinel)
			TH_LOG("case %zu", i);
		ASSERT_EQ(ret, -EINVAL);
		ASSERT_EQ((uintptr_t)g, (uintptr_t)sentinel);
	}
}

TEST(null_args)
{
	struct gmem_create_args args = { .size = ps };
	struct gmem *sentinel = (struct gmem *)&sentinel, *g = sentinel;

	ASSERT_EQ(gmem_test_create(NULL, &g), -EINVAL);
	ASSERT_EQ((uintptr_t)g, (uintptr_t)sentinel);
	ASSERT_EQ(gmem_test_create(&args, NULL), -EINVAL);
	ASSERT_EQ(gmem_test_create(NULL, NULL), -EINVAL);
	/* Failures of any kind leave *out alone. */
	args.size = ps + 1;
	ASSERT_EQ(gmem_test_create(&args, &g), -EINVAL);
	ASSERT_EQ((uintptr_t)g, (uintptr_t)sentinel);
	args.size = ps;
	args.flags = GMEM_FLAG_HUGEPAGE;	/* one page: not 2 MiB */
	ASSERT_EQ(gmem_test_create(&args, &g), -EINVAL);
	ASSERT_EQ((uintptr_t)g, (uintptr_t)sentinel);
	args.flags = 1ULL << 40;
	ASSERT_EQ(gmem_test_create(&args, &g), -EINVAL);
	ASSERT_EQ((uintptr_t)g, (uintptr_t)sentinel);
}

/* ---- (e) initial state, (f) stats --------------------------------------- */

static const struct {
	uint64_t pages, flags;
} new_files[] = {
	{ 1, 0 }, { 2, GMEM_FLAG_MMAP }, { 4, 0 }, { 512, GMEM_FLAG_MMAP },
	{ 1, GMEM_FLAG_INIT_SHARED },
	{ 3, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED },
	{ 1025, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED },
};

TEST(initial_state)
{
	GMEM_TEST_REQUIRE_BACKEND();
	for (size_t i = 0; i < sizeof(new_files) / sizeof(new_files[0]); i++) {
		uint64_t size = new_files[i].pages * ps;
		bool shared = new_files[i].flags & GMEM_FLAG_INIT_SHARED;
		uint64_t attr = 0xdead, run = 0xbeef, last = size - ps;
		struct gmem *g;

		CASE_EQ(create(size, new_files[i].flags, &g), 0);
		CASE_EQ(gmem_get_attributes(g, 0, &attr, &run), 0);
		CASE_EQ(attr, shared ? 0 : GMEM_ATTR_PRIVATE);
		CASE_EQ(run, size);
		CASE_EQ(gmem_get_attributes(g, last, &attr, &run), 0);
		CASE_EQ(attr, shared ? 0 : GMEM_ATTR_PRIVATE);
		CASE_EQ(run, ps);
		/* run_len is optional. */
		CASE_EQ(gmem_get_attributes(g, 0, &attr, NULL), 0);
		CASE_EQ(attr, shared ? 0 : GMEM_ATTR_PRIVATE);
		gmem_close(g);
	}
}

TEST(new_file_stats)
{
	GMEM_TEST_REQUIRE_BACKEND();
	for (size_t i = 0; i < sizeof(new_files) / sizeof(new_files[0]); i++) {
		uint64_t size = new_files[i].pages * ps;
		bool shared = new_files[i].flags & GMEM_FLAG_INIT_SHARED;
		struct gmem_stats st;
		struct gmem *g;

		memset(&st, 0xaa, sizeof(st));
		CASE_EQ(create(size, new_files[i].flags, &g), 0);
		CASE_EQ(gmem_stat(g, &st, sizeof(st)), 0);
		CASE_EQ(st.size, size);
		CASE_EQ(st.allocated, 0);
		CASE_EQ(st.shared, shared ? size : 0);
		CASE_EQ(st.priv, shared ? 0 : size);
		CASE_EQ(st.nr_ranges, 1);
		CASE_EQ(st.state_bytes < 4096, 1);
		CASE_EQ(st.conversions, 0);
		CASE_EQ(st.pages_converted, 0);
		CASE_EQ(st.pins, 0);
		CASE_EQ(st.pinned, 0);
		CASE_EQ(st.views, 0);
		CASE_EQ(st.views_uffd, 0);
		gmem_close(g);
	}
}

TEST(stat_sizes)
{
	unsigned char buf[sizeof(struct gmem_stats) + 64];
	struct gmem_stats *st = (struct gmem_stats *)buf, full;
	struct gmem *g;
	uint64_t v;

	GMEM_TEST_REQUIRE_BACKEND();
	ASSERT_EQ(create(4 * ps, GMEM_FLAG_INIT_SHARED, &g), 0);

	/* 16 bytes: size and allocated, nothing after. */
	memset(buf, 0xaa, sizeof(buf));
	ASSERT_EQ(gmem_stat(g, st, 16), 0);
	memcpy(&v, buf, 8);
	ASSERT_EQ(v, 4 * ps);
	memcpy(&v, buf + 8, 8);
	ASSERT_EQ(v, 0);
	for (size_t i = 16; i < sizeof(buf); i++) {
		if (buf[i] != 0xaa)
			TH_LOG("byte %zu", i);
		ASSERT_EQ(buf[i], 0xaa);
	}

	/* Up to a field in the middle, as an older caller would. */
	memset(buf, 0xaa, sizeof(buf));
	ASSERT_EQ(gmem_stat(g, st, offsetof(struct gmem_stats, nr_ranges) +
			    sizeof(uint64_t)), 0);
	ASSERT_EQ(st->shared, 4 * ps);
	ASSERT_EQ(st->nr_ranges, 1);
	ASSERT_EQ(buf[offsetof(struct gmem_stats, state_bytes)], 0xaa);

	/* 0 bytes: success, nothing written. */
	memset(buf, 0xaa, sizeof(buf));
	ASSERT_EQ(gmem_stat(g, st, 0), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		ASSERT_EQ(buf[i], 0xaa);

	/* Larger than this library's struct, or nowhere to write: -EINVAL. */
	ASSERT_EQ(gmem_stat(g, st, sizeof(struct gmem_stats) + 1), -EINVAL);
	ASSERT_EQ(gmem_stat(g, st, sizeof(buf)), -EINVAL);
	ASSERT_EQ(gmem_stat(g, st, SIZE_MAX), -EINVAL);
	for (size_t i = 0; i < sizeof(buf); i++)
		ASSERT_EQ(buf[i], 0xaa);
	ASSERT_EQ(gmem_stat(g, NULL, sizeof(full)), -EINVAL);
	ASSERT_EQ(gmem_stat(g, NULL, 0), -EINVAL);
	ASSERT_EQ(gmem_stat(NULL, &full, sizeof(full)), -EINVAL);
	gmem_close(g);
}

/* ---- (g), (h) close ------------------------------------------------------ */

TEST(close_null)
{
	struct gmem *g;

	GMEM_TEST_REQUIRE_BACKEND();
	gmem_close(NULL);
	/* Still working afterwards. */
	ASSERT_EQ(create(ps, 0, &g), 0);
	ASSERT_EQ(stat_size(g), ps);
	gmem_close(g);
}

#define CYCLES	1000

static const uint64_t cycle_flags[] = {
	0, GMEM_FLAG_MMAP, GMEM_FLAG_INIT_SHARED,
	GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
};

TEST(create_close_no_leak)
{
	struct gmem *g;
	uint64_t attr;
	int fds, maps;

	GMEM_TEST_REQUIRE_BACKEND();
	/* Warm up: the first calls may set up stdio and malloc for good. */
	ASSERT_EQ(create(ps, 0, &g), 0);
	gmem_close(g);
	fds = count_fds();
	maps = count_maps();
	ASSERT_GT(fds, 0);
	ASSERT_GT(maps, 0);
	for (unsigned int i = 0; i < CYCLES; i++) {
		uint64_t f = cycle_flags[i % 4];

		ASSERT_EQ(create((1 + i % 7) * ps, f, &g), 0);
		ASSERT_EQ(gmem_get_attributes(g, 0, &attr, NULL), 0);
		ASSERT_EQ(attr, f & GMEM_FLAG_INIT_SHARED ? 0 :
			  GMEM_ATTR_PRIVATE);
		gmem_close(g);
	}
	ASSERT_EQ(count_fds(), fds);
	ASSERT_EQ(count_maps(), maps);
}

/* ---- (d) the VM of the kvm backend (issue 14) --------------------------- */

/*
 * A vm_fd that is not a KVM VM is -EBADF, checked before anything else
 * is made: a zero-filled struct with only the backend set must not take
 * fd 0 (here /dev/null) for a VM.  No /dev/kvm is needed for these.
 */
TEST(kvm_vm_fd_not_a_vm)
{
	struct gmem *sentinel = (struct gmem *)&sentinel, *g;
	int null_fd, memfd, closed, fds;
	int32_t bad[4];

	null_fd = open("/dev/null", O_RDWR);
	ASSERT_GE(null_fd, 0);
	ASSERT_EQ(dup2(null_fd, 0), 0);		/* stdin: not a VM */
	memfd = memfd_create("not-a-vm", MFD_CLOEXEC);
	ASSERT_GE(memfd, 0);
	closed = dup(null_fd);
	ASSERT_GE(closed, 0);
	close(closed);
	bad[0] = 0;
	bad[1] = null_fd;
	bad[2] = memfd;
	bad[3] = closed;
	fds = count_fds();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct gmem_create_args args = {
			.size = ps, .flags = GMEM_FLAG_MMAP,
			.backend = GMEM_BACKEND_KVM, .vm_fd = bad[i],
		};

		g = sentinel;
		CASE_EQ(gmem_create(&args, &g), -EBADF);
		ASSERT_TRUE(g == sentinel);
		ASSERT_EQ(count_fds(), fds);
	}
	close(memfd);
}

/* /dev/kvm itself is not a VM either; a real VM is taken, even on fd 0. */
TEST(kvm_vm_fd_real_vm)
{
	struct gmem_create_args args = {
		.size = ps, .flags = GMEM_FLAG_MMAP,
		.backend = GMEM_BACKEND_KVM,
	};
	struct gmem *g = NULL;
	int kvm, vm, ret;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		SKIP(return, "/dev/kvm: %s", strerror(errno));
	args.vm_fd = kvm;
	ASSERT_EQ(gmem_create(&args, &g), -EBADF);
	ASSERT_NULL(g);
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	ASSERT_GE(vm, 0);
	ASSERT_EQ(dup2(vm, 0), 0);
	close(vm);
	args.vm_fd = 0;			/* a VM really on fd 0: accepted */
	ret = gmem_create(&args, &g);
	if (ret == -EOPNOTSUPP)
		SKIP(return, "no guest_memfd with mmap (Linux >= 6.18)");
	ASSERT_EQ(ret, 0);
	gmem_close(g);
	args.vm_fd = GMEM_KVM_NEW_VM;	/* and one libgmem makes */
	ASSERT_EQ(gmem_create(&args, &g), 0);
	gmem_close(g);
	close(kvm);
}

/* ---- (e) named huge page flags (issue 14) ------------------------------- */

_Static_assert(GMEM_FLAG_HUGE_2MB ==
	       (GMEM_FLAG_HUGEPAGE | 21ULL << GMEM_HUGE_SHIFT), "2 MiB");
_Static_assert(GMEM_FLAG_HUGE_1GB ==
	       (GMEM_FLAG_HUGEPAGE | 30ULL << GMEM_HUGE_SHIFT), "1 GiB");
_Static_assert(GMEM_HUGE_2MB == 21ULL << GMEM_HUGE_SHIFT, "2 MiB bits");
_Static_assert(GMEM_HUGE_1GB == 30ULL << GMEM_HUGE_SHIFT, "1 GiB bits");

/*
 * The names and the shift encoding ask for the same thing: the same
 * answer from gmem_create() (0, or -EOPNOTSUPP where THP is off), the
 * same file; size bits alone, or two sizes at once, stay -EINVAL.
 */
TEST(huge_named_flags)
{
	static const struct {
		uint64_t named, shift;
	} same[] = {
		{ GMEM_FLAG_HUGE_2MB, GMEM_FLAG_HUGEPAGE |
		  21ULL << GMEM_HUGE_SHIFT },
		{ GMEM_FLAG_HUGEPAGE | GMEM_HUGE_2MB, GMEM_FLAG_HUGEPAGE },
		{ GMEM_FLAG_HUGE_2MB | GMEM_FLAG_HUGEPAGE, GMEM_FLAG_HUGE_2MB },
	};
	static const uint64_t bad[] = {
		GMEM_HUGE_2MB, GMEM_HUGE_1GB, GMEM_FLAG_HUGE_2MB | GMEM_HUGE_1GB,
	};
	const uint64_t size = 2ULL << 20;
	struct gmem *g = NULL;

	if (gmem_test_backend() != GMEM_BACKEND_MEMFD)
		SKIP(return, "huge pages are memfd-backend only");
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		struct gmem_stats a, b;
		int r1, r2;

		r1 = create(size, GMEM_FLAG_MMAP | same[i].named, &g);
		if (!r1) {
			ASSERT_EQ(gmem_stat(g, &a, sizeof(a)), 0);
			gmem_close(g);
		}
		r2 = create(size, GMEM_FLAG_MMAP | same[i].shift, &g);
		if (!r2) {
			ASSERT_EQ(gmem_stat(g, &b, sizeof(b)), 0);
			gmem_close(g);
			CASE_EQ(a.size, b.size);
		}
		CASE_EQ(r1, r2);
		ASSERT_TRUE(r1 == 0 || r1 == -EOPNOTSUPP);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		g = NULL;
		CASE_EQ(create(1ULL << 30, GMEM_FLAG_MMAP | bad[i], &g),
			-EINVAL);
		ASSERT_NULL(g);
	}
}
