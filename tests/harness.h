/* SPDX-License-Identifier: MIT */
/*
 * harness.h - libgmem's test harness: kselftest-shaped, header-only, TAP 13.
 *
 * Owns test registration (TEST*, FIXTURE*), running every test in a forked
 * child under a timeout, assertions, SKIP, the SIGBUS/SIGSEGV probe, TAP
 * output and main().  Include it from exactly one .c file per program.
 *
 *	#include "harness.h"
 *
 *	TEST(add) { ASSERT_EQ(2 + 2, 4); }
 *	FIXTURE(buf) { char *p; };
 *	FIXTURE_VARIANT(buf) { size_t len; };
 *	FIXTURE_VARIANT_ADD(buf, small) { .len = 16 };
 *	FIXTURE_VARIANT_ADD(buf, large) { .len = 1 << 20 };
 *	FIXTURE_SETUP(buf) { self->p = calloc(1, variant->len); }
 *	FIXTURE_TEARDOWN(buf) { free(self->p); }
 *	TEST_F(buf, zero) { ASSERT_NONNULL(self->p); EXPECT_EQ(self->p[0], 0); }
 *
 * That runs "add", "buf.small.zero" and "buf.large.zero" (declaration
 * order), each in its own child.  Usage: prog [-l] [-t substring]...
 *
 * Rules:
 * - Every FIXTURE needs both FIXTURE_SETUP and FIXTURE_TEARDOWN.
 *   FIXTURE_VARIANT is optional; a fixture without FIXTURE_VARIANT_ADD runs
 *   once, named "fixture.test", with variant pointing at zeroed memory
 *   (HARNESS_ZERO_VARIANT_SIZE bytes; keep such variant structs smaller).
 * - Teardown runs iff setup returned: also after an ASSERT_* failed or a
 *   SKIP in the test, not after an ASSERT_* failed in setup.
 * - ASSERT_* ends the test (siglongjmp to the runner; from another thread
 *   it ends the child at once); EXPECT_* records the failure, goes on.
 *   Values compare as intmax_t, so ordering of values >= 2^63 is signed.
 * - SKIP(statement, fmt, ...) records the reason, then runs statement
 *   (normally "return").  A failure recorded in the test wins over a skip.
 * - Child exit status 0 = pass, 77 = skip, else fail.  TEST_SIGNAL passes
 *   only if the child dies of that signal (reset to SIG_DFL first, so a
 *   sanitizer's handler cannot turn the death into an exit).
 * - Timeout: TEST_T/TEST_F_T seconds, else env GMEM_TEST_TIMEOUT, else
 *   harness_timeout (30 s); then the child gets SIGKILL: "timeout".
 * - harness_probe(): see the signal probe section.  Build with -pthread.
 */
#ifndef GMEM_TESTS_HARNESS_H
#define GMEM_TESTS_HARNESS_H

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define KSFT_SKIP			77
#define HARNESS_DEFAULT_TIMEOUT		30
#define HARNESS_ZERO_VARIANT_SIZE	4096
#define HARNESS_REASON_SIZE		4096
#define HARNESS_MAX_FILTERS		64

#define __harness_unused		__attribute__((unused))

struct __harness_variant {
	const char *name;
	int line;
	const void *data;
	struct __harness_variant *next;
};

struct __harness_fixture {
	const char *name;
	void (*setup)(void *self, const void *variant);
	void (*teardown)(void *self, const void *variant);
	struct __harness_variant *variants;
};

struct __harness_test {
	const char *name;
	int line;
	int termsig;			/* 0, or the signal that means pass */
	int timeout;			/* seconds; 0 = default */
	struct __harness_fixture *fixture;	/* NULL for TEST() */
	size_t self_size;
	void (*fn)(void *self, const void *variant);
	struct __harness_test *next;
};

/* Default timeout in seconds; GMEM_TEST_TIMEOUT overrides it. */
static int harness_timeout __harness_unused = HARNESS_DEFAULT_TIMEOUT;

static struct __harness_test *__harness_tests __harness_unused;
static const union {
	max_align_t align;
	unsigned char bytes[HARNESS_ZERO_VARIANT_SIZE];
} __harness_zero_variant __harness_unused;

/* Child-side state. */
static sigjmp_buf __harness_env __harness_unused;
static volatile int __harness_setup_done __harness_unused;
static _Atomic int __harness_failed __harness_unused;
static _Atomic int __harness_skipped __harness_unused;
static _Thread_local int __harness_is_runner __harness_unused;
static char __harness_unused __harness_no_reason[HARNESS_REASON_SIZE];
/* Set by SKIP() in the child; a MAP_SHARED page once main() has run. */
static char __harness_unused *__harness_skip_reason = __harness_no_reason;

/* Both lists are kept sorted by __LINE__: declaration order. */
static void __harness_unused __harness_add_test(struct __harness_test *t)
{
	struct __harness_test **pp = &__harness_tests;

	while (*pp && (*pp)->line < t->line)
		pp = &(*pp)->next;
	t->next = *pp;
	*pp = t;
}

static void __harness_unused
__harness_add_variant(struct __harness_fixture *f, struct __harness_variant *v)
{
	struct __harness_variant **pp = &f->variants;

	while (*pp && (*pp)->line < v->line)
		pp = &(*pp)->next;
	v->next = *pp;
	*pp = v;
}

/* ---- registration macros ------------------------------------------- */

/* __harness_{T,F}_name{,O,R,U}: function, object, registrar, thunk. */
#define __HARNESS_REGISTER(id)						\
	static void __attribute__((constructor)) __harness_##id##R(void) \
	{								\
		__harness_add_test(&__harness_##id##O);			\
	}

#define __HARNESS_TEST(tn, sig, secs)					\
	static void __harness_T_##tn(void *, const void *);		\
	static struct __harness_test __harness_T_##tn##O = {		\
		.name = #tn, .line = __LINE__, .termsig = (sig),	\
		.timeout = (secs), .fn = __harness_T_##tn,		\
	};								\
	__HARNESS_REGISTER(T_##tn)					\
	static void __harness_T_##tn(void *__harness_self __harness_unused, \
		const void *__harness_no_variant __harness_unused)

#define TEST(name)			__HARNESS_TEST(name, 0, 0)
#define TEST_SIGNAL(name, signo)	__HARNESS_TEST(name, signo, 0)
#define TEST_T(name, seconds)		__HARNESS_TEST(name, 0, seconds)

#define FIXTURE_DATA(f)		struct __harness_data_##f
#define FIXTURE_VARIANT(f)	struct __harness_vdata_##f

#define FIXTURE(f)							\
	FIXTURE_VARIANT(f);						\
	FIXTURE_DATA(f);						\
	static void __harness_setup_##f(FIXTURE_DATA(f) *,		\
					const FIXTURE_VARIANT(f) *);	\
	static void __harness_teardown_##f(FIXTURE_DATA(f) *,		\
					   const FIXTURE_VARIANT(f) *);	\
	static void __harness_setup_thunk_##f(void *s, const void *v)	\
	{								\
		__harness_setup_##f(s, v);				\
	}								\
	static void __harness_teardown_thunk_##f(void *s, const void *v) \
	{								\
		__harness_teardown_##f(s, v);				\
	}								\
	static struct __harness_fixture __harness_fixture_##f = {	\
		.name = #f,						\
		.setup = __harness_setup_thunk_##f,			\
		.teardown = __harness_teardown_thunk_##f,		\
	};								\
	FIXTURE_DATA(f)

#define FIXTURE_SETUP(f)						\
	static void __harness_setup_##f(				\
		FIXTURE_DATA(f) *self __harness_unused,			\
		const FIXTURE_VARIANT(f) *variant __harness_unused)

#define FIXTURE_TEARDOWN(f)						\
	static void __harness_teardown_##f(				\
		FIXTURE_DATA(f) *self __harness_unused,			\
		const FIXTURE_VARIANT(f) *variant __harness_unused)

#define FIXTURE_VARIANT_ADD(f, v)					\
	static const FIXTURE_VARIANT(f) __harness_V_##f##_##v;		\
	static struct __harness_variant __harness_V_##f##_##v##O = {	\
		.name = #v, .line = __LINE__,				\
		.data = &__harness_V_##f##_##v,				\
	};								\
	static void __attribute__((constructor))			\
	__harness_V_##f##_##v##R(void)					\
	{								\
		__harness_add_variant(&__harness_fixture_##f,		\
				      &__harness_V_##f##_##v##O);	\
	}								\
	static const FIXTURE_VARIANT(f) __harness_V_##f##_##v =

#define __HARNESS_TEST_F(f, tn, sig, secs)				\
	static void __harness_F_##f##_##tn(FIXTURE_DATA(f) *,	\
					     const FIXTURE_VARIANT(f) *); \
	static void __harness_F_##f##_##tn##U(void *s, const void *v)	\
	{								\
		__harness_F_##f##_##tn(s, v);				\
	}								\
	static struct __harness_test __harness_F_##f##_##tn##O = {	\
		.name = #tn, .line = __LINE__, .termsig = (sig),	\
		.timeout = (secs), .fixture = &__harness_fixture_##f,	\
		.self_size = sizeof(FIXTURE_DATA(f)),			\
		.fn = __harness_F_##f##_##tn##U,			\
	};								\
	__HARNESS_REGISTER(F_##f##_##tn)				\
	static void __harness_F_##f##_##tn(				\
		FIXTURE_DATA(f) *self __harness_unused,			\
		const FIXTURE_VARIANT(f) *variant __harness_unused)

#define TEST_F(f, name)			__HARNESS_TEST_F(f, name, 0, 0)
#define TEST_F_SIGNAL(f, name, signo)	__HARNESS_TEST_F(f, name, signo, 0)
#define TEST_F_T(f, name, seconds)	__HARNESS_TEST_F(f, name, 0, seconds)

/* ---- failure reporting ---------------------------------------------- */

static void __harness_unused __attribute__((noreturn)) __harness_abort(void)
{
	fflush(stdout);
	if (__harness_is_runner)
		siglongjmp(__harness_env, 1);
	_exit(1);
}

static void __harness_unused __attribute__((format(printf, 1, 2)))
__harness_log(const char *fmt, ...)
{
	char buf[16384], *line, *save;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* Every line is a TAP comment, so multi-line text cannot fake one. */
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		printf("# %s\n", line);
	fflush(stdout);
}

#define __harness_fail(...)						\
	do {								\
		atomic_store(&__harness_failed, 1);			\
		__harness_log(__VA_ARGS__);				\
	} while (0)

/* Print a "# ..." diagnostic line. */
#define TH_LOG(...)		__harness_log(__VA_ARGS__)

static void __harness_unused __attribute__((format(printf, 1, 2)))
__harness_skip(const char *fmt, ...)
{
	char *p, *buf = __harness_skip_reason;	/* read by the parent */
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, HARNESS_REASON_SIZE, fmt, ap);
	va_end(ap);
	for (p = buf; *p; p++)
		if (*p == '\n')
			*p = ' ';
	atomic_store(&__harness_skipped, 1);
	printf("# SKIP %s\n", buf);
	fflush(stdout);
}

/* Mark the test skipped with a reason, then run statement (e.g. return). */
#define SKIP(statement, ...)						\
	do {								\
		__harness_skip(__VA_ARGS__);				\
		statement;						\
	} while (0)

#define __HARNESS_STOP(is_assert)					\
	do {								\
		if (is_assert)						\
			__harness_abort();				\
	} while (0)

#define __HARNESS_CMP(a, op, b, is_assert)				\
	do {								\
		intmax_t __h_a = (intmax_t)(a);				\
		intmax_t __h_b = (intmax_t)(b);				\
		if (!(__h_a op __h_b)) {				\
			__harness_fail("%s:%d: expected %s %s %s "	\
				"(%jd vs %jd, %#jx vs %#jx)",		\
				__FILE__, __LINE__, #a, #op, #b,	\
				__h_a, __h_b, (uintmax_t)__h_a,		\
				(uintmax_t)__h_b);			\
			__HARNESS_STOP(is_assert);			\
		}							\
	} while (0)

#define __HARNESS_BOOL(x, want, is_assert)				\
	do {								\
		if (!(x) != !(want)) {					\
			__harness_fail("%s:%d: expected %s to be %s",	\
				       __FILE__, __LINE__, #x,		\
				       (want) ? "true" : "false");	\
			__HARNESS_STOP(is_assert);			\
		}							\
	} while (0)

#define __HARNESS_NULL(x, want_null, is_assert)				\
	do {								\
		const volatile void *__h_p = (x);			\
		if ((__h_p == NULL) != (want_null)) {			\
			__harness_fail("%s:%d: expected %s %s NULL (%p)", \
				       __FILE__, __LINE__, #x,		\
				       (want_null) ? "==" : "!=",	\
				       (void *)(uintptr_t)__h_p);	\
			__HARNESS_STOP(is_assert);			\
		}							\
	} while (0)

#define ASSERT_EQ(a, b)		__HARNESS_CMP(a, ==, b, 1)
#define ASSERT_NE(a, b)		__HARNESS_CMP(a, !=, b, 1)
#define ASSERT_LT(a, b)		__HARNESS_CMP(a, <, b, 1)
#define ASSERT_LE(a, b)		__HARNESS_CMP(a, <=, b, 1)
#define ASSERT_GT(a, b)		__HARNESS_CMP(a, >, b, 1)
#define ASSERT_GE(a, b)		__HARNESS_CMP(a, >=, b, 1)
#define ASSERT_TRUE(x)		__HARNESS_BOOL(x, 1, 1)
#define ASSERT_FALSE(x)		__HARNESS_BOOL(x, 0, 1)
#define ASSERT_NULL(x)		__HARNESS_NULL(x, 1, 1)
#define ASSERT_NONNULL(x)	__HARNESS_NULL(x, 0, 1)
#define EXPECT_EQ(a, b)		__HARNESS_CMP(a, ==, b, 0)
#define EXPECT_NE(a, b)		__HARNESS_CMP(a, !=, b, 0)
#define EXPECT_LT(a, b)		__HARNESS_CMP(a, <, b, 0)
#define EXPECT_LE(a, b)		__HARNESS_CMP(a, <=, b, 0)
#define EXPECT_GT(a, b)		__HARNESS_CMP(a, >, b, 0)
#define EXPECT_GE(a, b)		__HARNESS_CMP(a, >=, b, 0)
#define EXPECT_TRUE(x)		__HARNESS_BOOL(x, 1, 0)
#define EXPECT_FALSE(x)		__HARNESS_BOOL(x, 0, 0)
#define EXPECT_NULL(x)		__HARNESS_NULL(x, 1, 0)
#define EXPECT_NONNULL(x)	__HARNESS_NULL(x, 0, 0)

/* ---- signal probe ---------------------------------------------------- */
/*
 * int harness_probe(const volatile void *addr, int write, void **fault_addr)
 *
 * Read one byte at addr (write == 0) or store 0x5a there (write != 0).
 * Returns 0 if the access completed, else the signal it raised (SIGBUS or
 * SIGSEGV) with *fault_addr (if fault_addr is not NULL) set to the
 * siginfo's si_addr, or NULL when there was no signal.  Thread-safe: the
 * jump buffer and the "armed" flag are thread-local.  The SIGBUS and
 * SIGSEGV handlers are installed process-wide on first use; a fault that
 * hits them outside a probe puts the previous handlers back and is
 * delivered again, so unexpected faults still kill the test (and
 * TEST_SIGNAL still sees the signal).  harness_probe_read_u8() and
 * harness_probe_write_u8() do the same with a caller-chosen byte.
 */
static _Thread_local sigjmp_buf __harness_probe_env;
static _Thread_local volatile sig_atomic_t __harness_probe_armed;
static _Thread_local void *volatile __harness_probe_si_addr;
static struct sigaction __harness_probe_old[2];	/* SIGBUS, SIGSEGV */
static _Atomic int __harness_probe_installed;
static pthread_mutex_t __harness_probe_lock = PTHREAD_MUTEX_INITIALIZER;

static void __harness_unused
__harness_probe_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (!__harness_probe_armed) {
		sigaction(SIGBUS, &__harness_probe_old[0], NULL);
		sigaction(SIGSEGV, &__harness_probe_old[1], NULL);
		atomic_store(&__harness_probe_installed, 0);
		/* A real fault comes back on return; kill()/raise() not. */
		if (si->si_code <= 0)
			raise(sig);
		return;
	}
	__harness_probe_armed = 0;
	__harness_probe_si_addr = si->si_addr;
	siglongjmp(__harness_probe_env, sig);
}

static void __harness_unused __harness_probe_install(void)
{
	struct sigaction sa;

	if (atomic_load(&__harness_probe_installed))
		return;
	pthread_mutex_lock(&__harness_probe_lock);
	if (!atomic_load(&__harness_probe_installed)) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = __harness_probe_handler;
		sa.sa_flags = SA_SIGINFO;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGBUS, &sa, &__harness_probe_old[0]);
		sigaction(SIGSEGV, &sa, &__harness_probe_old[1]);
		atomic_store(&__harness_probe_installed, 1);
	}
	pthread_mutex_unlock(&__harness_probe_lock);
}

static int __harness_unused
__harness_probe_op(const volatile void *addr, int write, uint8_t *val,
		   void **fault_addr)
{
	volatile uint8_t *p = (volatile uint8_t *)(uintptr_t)addr;
	int sig;

	__harness_probe_install();
	sig = sigsetjmp(__harness_probe_env, 1);
	if (!sig) {
		__harness_probe_armed = 1;
		if (write)
			*p = *val;
		else
			*val = *p;
		__harness_probe_armed = 0;
	}
	if (fault_addr)
		*fault_addr = sig ? __harness_probe_si_addr : NULL;
	return sig;
}

static int __harness_unused
harness_probe(const volatile void *addr, int write, void **fault_addr)
{
	uint8_t val = 0x5a;

	return __harness_probe_op(addr, write, &val, fault_addr);
}

static int __harness_unused
harness_probe_read_u8(const volatile void *addr, uint8_t *val)
{
	return __harness_probe_op(addr, 0, val, NULL);
}

static int __harness_unused
harness_probe_write_u8(volatile void *addr, uint8_t val)
{
	return __harness_probe_op(addr, 1, &val, NULL);
}

#define __harness_signame(s)						\
	((s) == SIGBUS ? "SIGBUS" : (s) == SIGSEGV ? "SIGSEGV" :	\
	 (s) ? "another signal" : "no signal")

/* A signal must also carry si_addr == addr. */
#define __HARNESS_PROBE(addr, write, want, is_assert)			\
	do {								\
		void *__h_a = (void *)(uintptr_t)(addr), *__h_si = NULL; \
		int __h_w = (write);					\
		int __h_sig = harness_probe(__h_a, __h_w, &__h_si);	\
		if (__h_sig != (want) || (__h_sig && __h_si != __h_a)) { \
			__harness_fail("%s:%d: expected %s on %s of %s " \
				"(%p), got %s (si_addr %p)", __FILE__,	\
				__LINE__, __harness_signame(want),	\
				__h_w ? "write" : "read", #addr, __h_a,	\
				__harness_signame(__h_sig), __h_si);	\
			__HARNESS_STOP(is_assert);			\
		}							\
	} while (0)

#define ASSERT_SIGBUS(addr, write)	__HARNESS_PROBE(addr, write, SIGBUS, 1)
#define ASSERT_SIGSEGV(addr, write)	__HARNESS_PROBE(addr, write, SIGSEGV, 1)
#define ASSERT_NO_SIGNAL(addr, write)	__HARNESS_PROBE(addr, write, 0, 1)
#define EXPECT_SIGBUS(addr, write)	__HARNESS_PROBE(addr, write, SIGBUS, 0)
#define EXPECT_SIGSEGV(addr, write)	__HARNESS_PROBE(addr, write, SIGSEGV, 0)
#define EXPECT_NO_SIGNAL(addr, write)	__HARNESS_PROBE(addr, write, 0, 0)

/* ---- runner ---------------------------------------------------------- */

static void __harness_unused __attribute__((noreturn))
__harness_child(const struct __harness_test *t, const void *variant)
{
	const struct __harness_fixture *f = t->fixture;
	struct rlimit nocore = { 0, 0 };
	void *volatile self = NULL;

	__harness_is_runner = 1;
	if (t->termsig) {	/* no core file, no sanitizer handler */
		setrlimit(RLIMIT_CORE, &nocore);
		signal(t->termsig, SIG_DFL);
	}
	if (f) {
		self = calloc(1, t->self_size ? t->self_size : 1);
		if (!self) {
			__harness_log("out of memory");
			_exit(1);
		}
	}
	if (!sigsetjmp(__harness_env, 1)) {
		if (f)
			f->setup(self, variant);
		__harness_setup_done = 1;
		if (!atomic_load(&__harness_skipped) &&
		    !atomic_load(&__harness_failed))
			t->fn(self, variant);
	}
	if (f && __harness_setup_done) {
		__harness_setup_done = 0;	/* teardown runs only once */
		if (!sigsetjmp(__harness_env, 1))
			f->teardown(self, variant);
	}
	fflush(stdout);
	if (atomic_load(&__harness_failed))
		_exit(1);
	_exit(atomic_load(&__harness_skipped) ? KSFT_SKIP : 0);
}

static double __harness_unused __harness_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Fork, run, wait with timeout.  Returns 0 pass, 1 fail, 2 skip. */
static int __harness_unused
__harness_run(const struct __harness_test *t, const void *variant,
	      const sigset_t *child_mask)
{
	int secs = t->timeout > 0 ? t->timeout : harness_timeout;
	double deadline = __harness_now() + secs;
	int status = 0, timed_out = 0;
	pid_t pid, parent = getpid();
	sigset_t chld;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	__harness_skip_reason[0] = '\0';
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		__harness_log("fork: %s", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		/* Die with the runner (e.g. under run-tests.sh's timeout). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		sigprocmask(SIG_SETMASK, child_mask, NULL);
		__harness_child(t, variant);
	}
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		double left = deadline - __harness_now();
		struct timespec ts;

		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			__harness_log("waitpid: %s", strerror(errno));
			return 1;
		}
		if (left <= 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			timed_out = 1;
			break;
		}
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		sigtimedwait(&chld, NULL, &ts);
	}
	if (timed_out) {
		__harness_log("timeout: killed after %d s", secs);
		return 1;
	}
	if (WIFSIGNALED(status)) {
		if (WTERMSIG(status) == t->termsig)
			return 0;
		__harness_log("died with signal %d (%s)", WTERMSIG(status),
			      strsignal(WTERMSIG(status)));
		return 1;
	}
	if (WEXITSTATUS(status) == KSFT_SKIP)
		return 2;
	if (WEXITSTATUS(status) != 0) {
		__harness_log("exited with status %d", WEXITSTATUS(status));
		return 1;
	}
	if (t->termsig) {
		__harness_log("expected signal %d (%s), exited normally",
			      t->termsig, strsignal(t->termsig));
		return 1;
	}
	return 0;
}

static void __harness_unused
__harness_name(char *buf, size_t len, const struct __harness_test *t,
	       const struct __harness_variant *v)
{
	if (!t->fixture)
		snprintf(buf, len, "%s", t->name);
	else if (!v)
		snprintf(buf, len, "%s.%s", t->fixture->name, t->name);
	else
		snprintf(buf, len, "%s.%s.%s", t->fixture->name, v->name,
			 t->name);
}

/* Run one instance and print its TAP line; returns 0 pass, 1 fail, 2 skip */
static int __harness_unused
__harness_report(int num, const char *name, const struct __harness_test *t,
		 const struct __harness_variant *v, const sigset_t *mask)
{
	const void *data = v ? v->data : (const void *)&__harness_zero_variant;
	int res = __harness_run(t, data, mask);

	if (res == 2)
		printf("ok %d %s # SKIP %s\n", num, name,
		       __harness_skip_reason[0] ? __harness_skip_reason :
		       "(no reason given)");
	else
		printf("%sok %d %s\n", res ? "not " : "", num, name);
	fflush(stdout);
	return res;
}

int main(int argc, char **argv)
{
	const char *filters[HARNESS_MAX_FILTERS];
	int nfilters = 0, list = 0, total = 0, n = 0, pass, opt, i, match;
	int counts[3] = { 0, 0, 0 };	/* passed, failed, skipped */
	const char *env = getenv("GMEM_TEST_TIMEOUT");
	const struct __harness_test *t;
	const struct __harness_variant *v;
	sigset_t chld, old_mask;
	char name[512], *end;

	while ((opt = getopt(argc, argv, "t:lh")) != -1) {
		if (opt == 't' && nfilters < HARNESS_MAX_FILTERS) {
			filters[nfilters++] = optarg;
		} else if (opt == 'l') {
			list = 1;
		} else {
			fprintf(stderr, "usage: %s [-l] [-t substring]...\n",
				argv[0]);
			return opt == 'h' ? 0 : 2;
		}
	}
	if (env && *env) {
		harness_timeout = (int)strtol(env, &end, 10);
		if (*end || harness_timeout <= 0) {
			fprintf(stderr, "bad GMEM_TEST_TIMEOUT '%s'\n", env);
			return 2;
		}
	}
	__harness_skip_reason = mmap(NULL, HARNESS_REASON_SIZE,
				     PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (__harness_skip_reason == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	/* SIGCHLD stays blocked in the parent: sigtimedwait() waits for it. */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &old_mask);

	/* Pass 0 counts, pass 1 lists or runs. */
	for (pass = list ? 1 : 0; pass < 2; pass++) {
		if (pass == 1 && !list)
			printf("TAP version 13\n1..%d\n", total);
		for (t = __harness_tests; t; t = t->next) {
			v = t->fixture ? t->fixture->variants : NULL;
			do {
				__harness_name(name, sizeof(name), t, v);
				match = !nfilters;
				for (i = 0; i < nfilters; i++)
					match |= !!strstr(name, filters[i]);
				if (match && pass == 0)
					total++;
				else if (match && list)
					printf("%s\n", name);
				else if (match)
					counts[__harness_report(++n, name, t,
							v, &old_mask)]++;
				v = v ? v->next : NULL;
			} while (v);
		}
	}
	if (list)
		return 0;
	printf("%d passed, %d failed, %d skipped\n",
	       counts[0], counts[1], counts[2]);
	fflush(stdout);
	return counts[1] ? 1 : 0;
}

#endif /* GMEM_TESTS_HARNESS_H */
