// SPDX-License-Identifier: MIT
/*
 * test_gmemctl.c - the gmemctl command as a user meets it: --help on
 * every subcommand, usage errors (exit 2), the demo's text and JSON,
 * info and stat on a spec, and a quick benchmark.
 *
 * The binary is $GMEMCTL, else ../gmemctl next to this test's directory
 * (build/tests/test_gmemctl -> build/gmemctl); without it every test is
 * skipped.  Each run captures stdout and stderr in memfds.
 */
#include <libgen.h>
#include <stdbool.h>
#include <limits.h>
#include <sys/wait.h>

#include "harness.h"

struct run {
	int status;		/* exit code, or 128 + signal */
	char *out;
	char *err;
};

static const char *gmemctl(void)
{
	static char path[PATH_MAX];
	const char *env = getenv("GMEMCTL");
	char self[PATH_MAX];
	ssize_t n;

	if (env && *env)
		return env;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return NULL;
	self[n] = '\0';
	snprintf(path, sizeof(path), "%s/../gmemctl", dirname(self));
	return path;
}

static char *slurp(int fd)
{
	off_t len = lseek(fd, 0, SEEK_END);
	char *buf = malloc((size_t)(len > 0 ? len : 0) + 1);

	if (!buf)
		return NULL;
	if (len > 0 && pread(fd, buf, (size_t)len, 0) != len)
		len = 0;
	buf[len > 0 ? len : 0] = '\0';
	close(fd);
	return buf;
}

/* Run gmemctl with argv (NULL-terminated, without argv[0]). */
static int run(struct run *r, const char *const *args)
{
	const char *path = gmemctl();
	char *argv[32];
	int out, err, i;
	pid_t pid;

	if (!path || access(path, X_OK))
		return -1;
	argv[0] = (char *)path;
	for (i = 0; args[i] && i < 30; i++)
		argv[i + 1] = (char *)args[i];
	argv[i + 1] = NULL;
	out = memfd_create("stdout", 0);
	err = memfd_create("stderr", 0);
	if (out < 0 || err < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		dup2(out, STDOUT_FILENO);
		dup2(err, STDERR_FILENO);
		execv(path, argv);
		_exit(127);
	}
	if (waitpid(pid, &r->status, 0) != pid)
		return -1;
	r->status = WIFEXITED(r->status) ? WEXITSTATUS(r->status) :
		    128 + WTERMSIG(r->status);
	r->out = slurp(out);
	r->err = slurp(err);
	return r->out && r->err ? 0 : -1;
}

#define RUN(r, ...)							\
	do {								\
		const char *const __args[] = { __VA_ARGS__, NULL };	\
		if (run(r, __args))					\
			SKIP(return, "no gmemctl at %s (set GMEMCTL)",	\
			     gmemctl());				\
	} while (0)

/*
 * Well-formed enough: one object, brackets balanced outside strings,
 * no comma before a closing bracket, nothing after the end.
 */
static bool json_ok(const char *s)
{
	char stack[64];
	int depth = 0;
	bool in_str = false;
	char last = 0;

	while (*s == ' ' || *s == '\n')
		s++;
	if (*s != '{')
		return false;
	for (; *s; s++) {
		char c = *s;

		if (in_str) {
			if (c == '\\' && s[1])
				s++;
			else if (c == '"')
				in_str = false;
			continue;
		}
		if (c == ' ' || c == '\n')
			continue;
		if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			if (depth == (int)sizeof(stack))
				return false;
			stack[depth++] = c == '{' ? '}' : ']';
		} else if (c == '}' || c == ']') {
			if (!depth || stack[--depth] != c || last == ',')
				return false;
			if (!depth) {
				s++;
				break;
			}
		}
		last = c;
	}
	while (*s == ' ' || *s == '\n')
		s++;
	return !depth && !in_str && !*s;
}

#define EXPECT_HAS(hay, needle)						\
	do {								\
		if (!strstr(hay, needle))				\
			__harness_fail("%s:%d: output lacks \"%s\"",	\
				       __FILE__, __LINE__, needle);	\
	} while (0)

TEST(help_everywhere)
{
	static const char *const cases[][3] = {
		{ "--help" }, { "help" }, { "-h" },
		{ "demo", "--help" }, { "bench", "--help" },
		{ "info", "--help" }, { "stat", "-h" }, { "help", "demo" },
	};
	struct run r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		RUN(&r, cases[i][0], cases[i][1], cases[i][2]);
		EXPECT_EQ(r.status, 0);
		EXPECT_HAS(r.out, "usage: gmemctl");
		EXPECT_HAS(r.out, "exit status: 0 ok, 1 failure, 2 usage");
		EXPECT_EQ(r.err[0], '\0');
	}
}

TEST(usage_errors_exit_2)
{
	static const char *const cases[][4] = {
		{ NULL }, { "frob" }, { "help", "frob" }, { "demo", "--bogus" },
		{ "demo", "--size", "3M" }, { "demo", "--size" },
		{ "demo", "extra" }, { "demo", "--seed", "x" },
		{ "demo", "--backend", "xen" }, { "bench", "--only", "nope" },
		{ "bench", "--seed", "0" }, { "info" },
		{ "info", "size=1G,bogus" }, { "info", "size=1G,shared=12" },
		{ "info", "size=banana" }, { "stat", "a", "b" },
		{ "info", "--max-ranges", "x", "size=1G" },
	};
	struct run r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		RUN(&r, cases[i][0], cases[i][1], cases[i][2], cases[i][3]);
		EXPECT_EQ(r.status, 2);
		EXPECT_EQ(r.out[0], '\0');
		EXPECT_HAS(r.err, "gmemctl: ");
	}
}

TEST(demo_text)
{
	static const char *const want[] = {
		"\n1. ", "\n2. ", "\n3. ", "\n4. ", "\n5. ", "\n6. ",
		"Summary", "conversions per second", "conversion latency p99",
		"no double allocation", "state ranges", "huge-page coverage",
		"EAGAIN", "SIGBUS",
	};
	struct run r;

	RUN(&r, "demo", "--size", "64M", "--quick");
	ASSERT_EQ(r.status, 0);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		EXPECT_HAS(r.out, want[i]);
	/* Not a terminal: no progress bar escapes. */
	EXPECT_NULL(strchr(r.out, '\r'));
	EXPECT_EQ(r.err[0], '\0');
}

TEST(demo_json)
{
	struct run r;

	RUN(&r, "demo", "--size", "64M", "--quick", "--json");
	ASSERT_EQ(r.status, 0);
	EXPECT_TRUE(json_ok(r.out));
	EXPECT_HAS(r.out, "\"steps\": [");
	EXPECT_HAS(r.out, "\"summary\": {");
	EXPECT_HAS(r.out, "\"conversions_per_second\": ");
	EXPECT_HAS(r.out, "\"no_double_allocation\": true");
	EXPECT_HAS(r.out, "\"error_offset_is_pin\": true");
	EXPECT_HAS(r.out, "\"ok\": true");
}

TEST(demo_huge_or_skip)
{
	struct run r;

	RUN(&r, "demo", "--size", "64M", "--quick", "--huge");
	EXPECT_TRUE(r.status == 0 || r.status == 77);
	if (r.status == 77)
		EXPECT_HAS(r.err, "skipped");
}

TEST(info_spec)
{
	struct run r;

	RUN(&r, "info", "size=1G,shared=0x100000+64K,shared=2M+2M");
	ASSERT_EQ(r.status, 0);
	EXPECT_HAS(r.out, "State ranges: 5");
	EXPECT_HAS(r.out, "0x100000 |   0x110000 |   64 KiB | shared");
	EXPECT_HAS(r.out, "0x400000 | 0x40000000 | 1020 MiB | private");
	EXPECT_HAS(r.out, "nr_ranges");
}

TEST(stat_json)
{
	struct run r;

	RUN(&r, "stat", "--json", "size=64M,map,shared=0+1M,write=0+1M,"
	    "pin=0+64K");
	ASSERT_EQ(r.status, 0);
	EXPECT_TRUE(json_ok(r.out));
	EXPECT_HAS(r.out, "\"nr_ranges\": 2");
	EXPECT_HAS(r.out, "\"allocated\": 1048576");
	EXPECT_HAS(r.out, "\"pins\": 1");
	EXPECT_HAS(r.out, "\"views\": 1");
	EXPECT_NULL(strstr(r.out, "\"ranges\""));
}

TEST(info_failure_exit_1)
{
	struct run r;

	/* Writing a private page would raise SIGBUS: refused, exit 1. */
	RUN(&r, "info", "size=64M,map,write=0+4K");
	EXPECT_EQ(r.status, 1);
	EXPECT_HAS(r.err, "private");
}

TEST_T(bench_quick_flip, 120)
{
	struct run r;

	RUN(&r, "bench", "--quick", "--only", "flip", "--json", "-");
	ASSERT_EQ(r.status, 0);
	EXPECT_TRUE(json_ok(r.out));
	EXPECT_HAS(r.out, "\"workload\": \"flip\"");
	EXPECT_HAS(r.out, "\"variant\": \"libgmem\"");
	EXPECT_HAS(r.out, "\"variant\": \"qemu\"");
	EXPECT_HAS(r.out, "\"variant\": \"qemu-nodiscard\"");
	EXPECT_HAS(r.out, "\"ok\": true");
}
