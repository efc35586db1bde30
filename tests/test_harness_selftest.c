// SPDX-License-Identifier: MIT
/*
 * test_harness_selftest.c - tests of tests/harness.h itself.
 *
 * Tests named helper_* (and the fixture "fxfail") are meant to fail or
 * time out.  They only do so when GMEM_HARNESS_SELFTEST_FAIL=1; otherwise
 * they SKIP.  The reexec_* tests run this program again with that variable
 * and -t to check what the harness reports for them.
 */
#include <sys/mman.h>

#include "harness.h"

#define FAIL_ENV	"GMEM_HARNESS_SELFTEST_FAIL"

static int helpers_enabled(void)
{
	const char *e = getenv(FAIL_ENV);

	return e && !strcmp(e, "1");
}

#define HELPER_ONLY()							\
	do {								\
		if (!helpers_enabled())					\
			SKIP(return, "helper, run by reexec_* with "	\
			     FAIL_ENV "=1");				\
	} while (0)

/* One page mapped MAP_SHARED over an empty memfd: any access is SIGBUS. */
static void *sigbus_page(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	void *p;
	int fd;

	fd = memfd_create("harness-selftest", MFD_CLOEXEC);
	if (fd < 0)
		return NULL;
	p = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

static void *anon_page(int prot)
{
	void *p = mmap(NULL, sysconf(_SC_PAGESIZE), prot,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/*
 * Run this program again with env "NAME=VALUE" (may be NULL) and
 * "-t filter"; capture its stdout into out.  Returns the wait status.
 */
static int reexec(const char *env1, const char *env2, const char *filter,
		  char *out, size_t outsz)
{
	char exe[4096];
	ssize_t len, got = 0;
	int pfd[2], status;
	pid_t pid;

	len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len < 0 || pipe(pfd))
		return -1;
	exe[len] = '\0';
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		close(pfd[0]);
		close(pfd[1]);
		if (env1)
			putenv((char *)env1);
		if (env2)
			putenv((char *)env2);
		execl(exe, exe, "-t", filter, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	while ((size_t)got < outsz - 1) {
		len = read(pfd[0], out + got, outsz - 1 - got);
		if (len < 0 && errno == EINTR)
			continue;
		if (len <= 0)
			break;
		got += len;
	}
	out[got] = '\0';
	close(pfd[0]);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}

/* The last line of the output, without its newline. */
static const char *last_line(char *out)
{
	size_t n = strlen(out);
	char *p;

	while (n && out[n - 1] == '\n')
		out[--n] = '\0';
	p = strrchr(out, '\n');
	return p ? p + 1 : out;
}

/* ---- plain tests ----------------------------------------------------- */

TEST(pass_simple)
{
	int x = 3;
	char *p = NULL;

	ASSERT_EQ(x, 3);
	ASSERT_NE(x, 4);
	ASSERT_LT(-1, 0);
	ASSERT_LE(x, 3);
	ASSERT_GT(x, 2);
	ASSERT_GE(x, 3);
	ASSERT_TRUE(x == 3);
	ASSERT_FALSE(x == 4);
	ASSERT_NULL(p);
	ASSERT_NONNULL(&x);
	EXPECT_EQ(-EINVAL, -22);
	EXPECT_EQ((uint64_t)-1, UINT64_MAX);
	EXPECT_NULL(p);
}

TEST_SIGNAL(memfd_sigbus, SIGBUS)
{
	volatile char *p = sigbus_page();

	ASSERT_NONNULL(p);
	/* Use the value: valgrind drops dead loads, and the fault with them. */
	TH_LOG("read of an empty memfd mapping gave %d, no SIGBUS", p[0]);
}

TEST(probe_sigbus)
{
	long pg = sysconf(_SC_PAGESIZE);
	char *p = sigbus_page();
	void *si = NULL;

	ASSERT_NONNULL(p);
	ASSERT_EQ(harness_probe(p, 0, &si), SIGBUS);
	ASSERT_TRUE(si == p);
	ASSERT_EQ(harness_probe(p + 123, 1, &si), SIGBUS);
	ASSERT_TRUE(si == p + 123);
	ASSERT_SIGBUS(p, 0);
	ASSERT_SIGBUS(p + pg - 1, 1);
	EXPECT_SIGBUS(p + 1, 0);
}

TEST(probe_normal_page)
{
	volatile uint8_t *p = anon_page(PROT_READ | PROT_WRITE);
	void *si = (void *)1;
	uint8_t v = 0;

	ASSERT_NONNULL(p);
	ASSERT_EQ(harness_probe(p, 0, &si), 0);
	ASSERT_NULL(si);
	ASSERT_EQ(harness_probe(p + 7, 1, &si), 0);
	ASSERT_EQ(p[7], 0x5a);
	ASSERT_EQ(harness_probe_write_u8(p + 8, 0xa5), 0);
	ASSERT_EQ(harness_probe_read_u8(p + 8, &v), 0);
	ASSERT_EQ(v, 0xa5);
	ASSERT_NO_SIGNAL(p, 0);
	ASSERT_NO_SIGNAL(p, 1);
}

/* A write to a read-only page (not PROT_NONE: memcheck reports those). */
TEST(probe_sigsegv)
{
	char *ro = anon_page(PROT_READ);
	void *si = NULL;

	ASSERT_NONNULL(ro);
	ASSERT_EQ(harness_probe(ro + 5, 1, &si), SIGSEGV);
	ASSERT_TRUE(si == ro + 5);
	ASSERT_NO_SIGNAL(ro, 0);
	ASSERT_SIGSEGV(ro + 9, 1);
}

/* After a probe, a fault outside any probe must still kill the child. */
TEST_SIGNAL(probe_then_unexpected_fault, SIGBUS)
{
	volatile char *p = sigbus_page();

	ASSERT_NONNULL(p);
	ASSERT_SIGBUS(p, 0);
	TH_LOG("read gave %d, no SIGBUS", p[0]);
}

TEST_SIGNAL(probe_then_raise, SIGBUS)
{
	char *p = sigbus_page();

	ASSERT_NONNULL(p);
	ASSERT_SIGBUS(p, 1);
	raise(SIGBUS);
}

struct probe_thread {
	pthread_barrier_t *barrier;
	char *bad;
	volatile char *good;
	int errors;
};

static void *probe_thread_fn(void *arg)
{
	struct probe_thread *pt = arg;
	void *si;
	int i;

	pthread_barrier_wait(pt->barrier);
	for (i = 0; i < 2000; i++) {
		si = NULL;
		if (harness_probe(pt->bad + i % 64, i & 1, &si) != SIGBUS ||
		    si != pt->bad + i % 64)
			pt->errors++;
		if (harness_probe(pt->good + i % 64, 1, &si) != 0 || si)
			pt->errors++;
	}
	/* Assertions work from threads too (they fail the child directly). */
	ASSERT_SIGBUS(pt->bad, 0);
	return NULL;
}

TEST(probe_two_threads)
{
	struct probe_thread pt[2];
	pthread_barrier_t barrier;
	pthread_t th[2];
	int i;

	ASSERT_EQ(pthread_barrier_init(&barrier, NULL, 2), 0);
	for (i = 0; i < 2; i++) {
		pt[i].barrier = &barrier;
		pt[i].bad = sigbus_page();
		pt[i].good = anon_page(PROT_READ | PROT_WRITE);
		pt[i].errors = 0;
		ASSERT_NONNULL(pt[i].bad);
		ASSERT_NONNULL(pt[i].good);
	}
	for (i = 0; i < 2; i++)
		ASSERT_EQ(pthread_create(&th[i], NULL, probe_thread_fn,
					 &pt[i]), 0);
	for (i = 0; i < 2; i++)
		ASSERT_EQ(pthread_join(th[i], NULL), 0);
	EXPECT_EQ(pt[0].errors, 0);
	EXPECT_EQ(pt[1].errors, 0);
}

TEST(skip_test)
{
	SKIP(return, "demonstrating skip %d", 42);
	TH_LOG("statement after SKIP ran");
	exit(1);
}

/* ---- fixtures -------------------------------------------------------- */

FIXTURE(fx) {
	int setup_ran;
	int value;
	char *page;
};

FIXTURE_VARIANT(fx) {
	int value;
	const char *label;
};

FIXTURE_VARIANT_ADD(fx, one) {
	.value = 1,
	.label = "one",
};

FIXTURE_VARIANT_ADD(fx, two) {
	.value = 2,
	.label = "two",
};

FIXTURE_SETUP(fx)
{
	ASSERT_EQ(self->setup_ran, 0);
	self->setup_ran = 1;
	self->value = variant->value * 10;
	self->page = anon_page(PROT_READ | PROT_WRITE);
	ASSERT_NONNULL(self->page);
}

FIXTURE_TEARDOWN(fx)
{
	TH_LOG("teardown %s value=%d", variant->label, self->value);
	ASSERT_EQ(munmap(self->page, sysconf(_SC_PAGESIZE)), 0);
}

TEST_F(fx, check)
{
	ASSERT_EQ(self->setup_ran, 1);
	ASSERT_EQ(self->value, variant->value * 10);
	ASSERT_TRUE(variant->value == 1 || variant->value == 2);
	self->page[0] = (char)variant->value;
}

/* A fixture with no variants runs once, variant pointing at zeroes. */
FIXTURE(novar) {
	int setup_ran;
};

FIXTURE_VARIANT(novar) {
	long a, b;
};

FIXTURE_SETUP(novar)
{
	self->setup_ran = 1;
}

FIXTURE_TEARDOWN(novar)
{
}

TEST_F(novar, zero_variant)
{
	ASSERT_EQ(self->setup_ran, 1);
	ASSERT_NONNULL(variant);
	ASSERT_EQ(variant->a, 0);
	ASSERT_EQ(variant->b, 0);
}

/* Helper: an ASSERT failing in a test must still run the teardown. */
FIXTURE(fxfail) {
	int dummy;
};

FIXTURE_SETUP(fxfail)
{
	HELPER_ONLY();
}

FIXTURE_TEARDOWN(fxfail)
{
	TH_LOG("fxfail teardown ran");
}

TEST_F(fxfail, helper_assert_in_fixture)
{
	ASSERT_EQ(self->dummy, 1);
	TH_LOG("MARK after failed ASSERT");
}

/* ---- helpers that fail (only with GMEM_HARNESS_SELFTEST_FAIL=1) ------ */

TEST(helper_assert_fail)
{
	int x = 1;

	HELPER_ONLY();
	ASSERT_EQ(x, 2);
	TH_LOG("MARK after failed ASSERT");
}

TEST(helper_expect_fail)
{
	HELPER_ONLY();
	EXPECT_GT(1, 2);
	TH_LOG("MARK after failed EXPECT");
}

TEST(helper_sleep)
{
	HELPER_ONLY();
	sleep(60);
}

TEST_SIGNAL(helper_signal_missing, SIGBUS)
{
	HELPER_ONLY();
}

TEST(helper_unexpected_sigbus)
{
	volatile char *p;

	HELPER_ONLY();
	p = sigbus_page();
	ASSERT_NONNULL(p);
	TH_LOG("read gave %d, no SIGBUS", p[0]);
}

/* ---- checks of what the harness reports, by re-executing itself ------ */

#define OUT_SIZE 16384

struct reexec_case {
	const char *filter;
	const char *env;	/* extra NAME=VALUE or NULL */
	int exit_code;
	const char *closing;
	const char *must[3];	/* substrings the output must contain */
	const char *mustnt;	/* substring it must not contain */
};

static void check_reexec(const struct reexec_case *c)
{
	static char out[OUT_SIZE];
	const char *last;
	int status, i;

	status = reexec(FAIL_ENV "=1", c->env, c->filter, out, sizeof(out));
	ASSERT_TRUE(WIFEXITED(status));
	if (WEXITSTATUS(status) != c->exit_code)
		TH_LOG("output was:\n%s", out);
	ASSERT_EQ(WEXITSTATUS(status), c->exit_code);
	ASSERT_NONNULL(strstr(out, "TAP version 13\n1..1\n"));
	for (i = 0; i < 3 && c->must[i]; i++) {
		if (!strstr(out, c->must[i]))
			TH_LOG("missing '%s' in:\n%s", c->must[i], out);
		ASSERT_NONNULL(strstr(out, c->must[i]));
	}
	if (c->mustnt)
		ASSERT_NULL(strstr(out, c->mustnt));
	last = last_line(out);
	if (strcmp(last, c->closing))
		TH_LOG("closing line '%s', expected '%s'", last, c->closing);
	ASSERT_EQ(strcmp(last, c->closing), 0);
}

TEST(reexec_assert_fails)
{
	const struct reexec_case c = {
		"helper_assert_fail", NULL, 1, "0 passed, 1 failed, 0 skipped",
		{ "not ok 1 helper_assert_fail\n", "expected x == 2 (1 vs 2" },
		"MARK",
	};

	check_reexec(&c);
}

TEST(reexec_expect_continues)
{
	const struct reexec_case c = {
		"helper_expect_fail", NULL, 1, "0 passed, 1 failed, 0 skipped",
		{ "not ok 1 helper_expect_fail\n", "expected 1 > 2",
		  "MARK after failed EXPECT" },
		NULL,
	};

	check_reexec(&c);
}

TEST(reexec_assert_runs_teardown)
{
	const struct reexec_case c = {
		"fxfail.", NULL, 1, "0 passed, 1 failed, 0 skipped",
		{ "not ok 1 fxfail.helper_assert_in_fixture\n",
		  "# fxfail teardown ran\n" },
		"MARK",
	};

	check_reexec(&c);
}

TEST(reexec_timeout)
{
	const struct reexec_case c = {
		"helper_sleep", "GMEM_TEST_TIMEOUT=1", 1,
		"0 passed, 1 failed, 0 skipped",
		{ "not ok 1 helper_sleep\n", "# timeout" },
		NULL,
	};
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	check_reexec(&c);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ASSERT_LT(b.tv_sec - a.tv_sec, 10);
}

TEST(reexec_signal_missing)
{
	const struct reexec_case c = {
		"helper_signal_missing", NULL, 1,
		"0 passed, 1 failed, 0 skipped",
		{ "not ok 1 helper_signal_missing\n", "expected signal" },
		NULL,
	};

	check_reexec(&c);
}

TEST(reexec_unexpected_signal)
{
	const struct reexec_case c = {
		"helper_unexpected_sigbus", NULL, 1,
		"0 passed, 1 failed, 0 skipped",
		/* No "died with signal": a sanitizer may turn it into exit 1. */
		{ "not ok 1 helper_unexpected_sigbus\n" },
		NULL,
	};

	check_reexec(&c);
}

TEST(reexec_skip)
{
	const struct reexec_case c = {
		"skip_test", NULL, 0, "0 passed, 0 failed, 1 skipped",
		{ "ok 1 skip_test # SKIP demonstrating skip 42\n",
		  "# SKIP demonstrating skip 42\n" },
		"statement after SKIP",
	};

	check_reexec(&c);
}

TEST(reexec_fixture_variants)
{
	static char out[OUT_SIZE];
	const char *want[] = {
		"TAP version 13\n1..2\n",
		"# teardown one value=10\nok 1 fx.one.check\n",
		"# teardown two value=20\nok 2 fx.two.check\n",
	};
	int status, i;

	status = reexec(NULL, NULL, "fx.", out, sizeof(out));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	for (i = 0; i < 3; i++) {
		if (!strstr(out, want[i]))
			TH_LOG("missing '%s' in:\n%s", want[i], out);
		ASSERT_NONNULL(strstr(out, want[i]));
	}
	ASSERT_EQ(strcmp(last_line(out), "2 passed, 0 failed, 0 skipped"), 0);
}
