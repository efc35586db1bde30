// SPDX-License-Identifier: MIT
/*
 * test_sigbus.c - what a SIGBUS handler sees on a host view (issue 14):
 * si_code, si_addr and si_addr_lsb, recorded by a sigaction() handler of
 * the test's own, for every guard a view can use on the backend under
 * test: a registered hole (memfd, VMA mode), userfaultfd (memfd, UFFD
 * mode), a hole of an empty sealed memfd (KVM backend, huge pages).
 *
 *  - a private page: BUS_ADRERR, si_addr the address, as the kernel's
 *    guest_memfd gives for a private or out-of-range page (its fault
 *    handler returns VM_FAULT_SIGBUS), and reads and writes alike;
 *  - past the end of the file: the same;
 *  - a poisoned page (gmem_memory_failure()): measured, and what the
 *    test expects is what gmem_memory_failure(3) documents.  The kernel
 *    sends BUS_MCEERR_AR only for a fault that returns VM_FAULT_HWPOISON
 *    and only with CONFIG_MEMORY_FAILURE, which libgmem cannot arrange
 *    on every kernel: a poisoned page is BUS_ADRERR, like a private one,
 *    and the test logs the kernel's own answer for a poison marker
 *    (UFFDIO_POISON) so the difference is visible where it exists.
 */
#include <linux/userfaultfd.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <gmem.h>

#include "harness.h"
#include "gmem_test.h"

#define RW	(PROT_READ | PROT_WRITE)
#define NPAGES	16

static uint64_t ps;

static void __attribute__((constructor)) init_page_size(void)
{
	ps = (uint64_t)getpagesize();
}

/* ---- the handler ---------------------------------------------------------- */

static sigjmp_buf jump;
static volatile sig_atomic_t got_code;
static void *volatile got_addr;
static volatile short got_lsb;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	got_code = si->si_code;
	got_addr = si->si_addr;
	got_lsb = si->si_addr_lsb;
	siglongjmp(jump, 1);
}

struct seen {
	int code;		/* si_code, or 0: no SIGBUS */
	void *addr;
	short lsb;
};

/* Touch addr (a read, or a write), recording the SIGBUS if one comes. */
static struct seen touch(volatile char *addr, bool write)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus,
				.sa_flags = SA_SIGINFO }, old;
	struct seen s = { 0 };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old);
	got_code = 0;
	got_addr = NULL;
	got_lsb = 0;
	if (!sigsetjmp(jump, 1)) {
		if (write)
			*addr = 1;
		else
			(void)*addr;
	}
	sigaction(SIGBUS, &old, NULL);
	s.code = got_code;
	s.addr = got_addr;
	s.lsb = got_lsb;
	return s;
}

static void expect_adrerr(volatile char *addr, const char *what)
{
	for (int w = 0; w < 2; w++) {
		struct seen s = touch(addr, w);

		if (s.code != BUS_ADRERR || s.addr != (void *)addr)
			TH_LOG("%s, %s: si_code %d si_addr %p (want %d, %p)",
			       what, w ? "write" : "read", s.code, s.addr,
			       BUS_ADRERR, (void *)addr);
		ASSERT_EQ(s.code, BUS_ADRERR);
		ASSERT_TRUE(s.addr == (void *)addr);
	}
}

/* ---- the kernel's own answer for poison ---------------------------------- */

#ifndef UFFDIO_POISON
struct uffdio_poison {
	struct uffdio_range range;
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON	_IOWR(UFFDIO, 0x08, struct uffdio_poison)
#endif

/*
 * si_code of an access to a UFFDIO_POISON marker (Linux 6.6): what this
 * kernel gives for hardware-poisoned memory; 0 if it cannot be asked.
 */
static int kernel_poison_code(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_poison po = { 0 };
	int uffd, code = 0;
	char *p;

	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK |
				    UFFD_USER_MODE_ONLY);
	if (uffd < 0)
		return 0;
	p = mmap(NULL, ps, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED && !ioctl(uffd, UFFDIO_API, &api)) {
		reg.range.start = po.range.start = (uintptr_t)p;
		reg.range.len = po.range.len = ps;
		if (!ioctl(uffd, UFFDIO_REGISTER, &reg) &&
		    !ioctl(uffd, UFFDIO_POISON, &po))
			code = touch(p, false).code;
	}
	if (p != MAP_FAILED)
		munmap(p, ps);
	close(uffd);
	return code;
}

/* ---- the views ------------------------------------------------------------ */

FIXTURE(view) {
	struct gmem *g;
	char *v;
};

FIXTURE_VARIANT(view) {
	bool init_shared;	/* VMA mode; else UFFD mode where it exists */
};

FIXTURE_VARIANT_ADD(view, vma_mode) {
	.init_shared = true,
};

FIXTURE_VARIANT_ADD(view, uffd_mode) {
	.init_shared = false,
};

FIXTURE_SETUP(view)
{
	struct gmem_create_args args = {
		.size = NPAGES * ps, .flags = GMEM_FLAG_MMAP,
	};
	struct gmem_attributes a = { .offset = 0, .size = 2 * ps };

	GMEM_TEST_REQUIRE_BACKEND();
	if (variant->init_shared)
		args.flags |= GMEM_FLAG_INIT_SHARED;
	ASSERT_EQ(gmem_test_create(&args, &self->g), 0);
	if (!variant->init_shared)	/* 2 of 16 pages shared: UFFD mode */
		ASSERT_EQ(gmem_set_attributes(self->g, &a), 0);
	/* One page past the end too. */
	ASSERT_EQ(gmem_mmap(self->g, 0, (NPAGES + 1) * ps, RW,
			    (void **)&self->v), 0);
}

FIXTURE_TEARDOWN(view)
{
	gmem_munmap(self->g, self->v, (NPAGES + 1) * ps);
	gmem_close(self->g);
}

static const char *mode_name(struct gmem *g)
{
	struct gmem_stats st;

	ASSERT_EQ(gmem_stat(g, &st, sizeof(st)), 0);
	return st.views_uffd ? "userfaultfd" : "vma";
}

TEST_F(view, private_page)
{
	struct gmem_attributes a = {
		.offset = 5 * ps, .size = ps, .attributes = GMEM_ATTR_PRIVATE,
	};

	if (variant->init_shared)
		ASSERT_EQ(gmem_set_attributes(self->g, &a), 0);
	TH_LOG("view guard: %s", mode_name(self->g));
	ASSERT_EQ(touch(self->v, true).code, 0);	/* shared: fine */
	expect_adrerr(self->v + 5 * ps + 8, "private page");
}

TEST_F(view, past_the_end)
{
	expect_adrerr(self->v + NPAGES * ps, "past the end");
}

TEST_F(view, poisoned_page)
{
	int kernel = kernel_poison_code();
	struct seen s;

	ASSERT_EQ(touch(self->v, true).code, 0);
	ASSERT_EQ(gmem_memory_failure(self->g, 0), 0);
	s = touch(self->v + 16, false);
	TH_LOG("view guard %s: poisoned page si_code %d lsb %d; this "
	       "kernel's poison marker: si_code %d (BUS_MCEERR_AR = %d)",
	       mode_name(self->g), s.code, s.lsb, kernel, BUS_MCEERR_AR);
	/* As gmem_memory_failure(3) says: BUS_ADRERR, like private. */
	expect_adrerr(self->v + 16, "poisoned page");
}
