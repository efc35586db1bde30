// SPDX-License-Identifier: MIT
/*
 * test_gmemctl.c - the gmemctl command as a user meets it: --help on
 * every subcommand, usage errors (exit 2), the demo's text and JSON,
 * info and stat on a spec, a quick benchmark and a small migration.
 *
 * The binary is $GMEMCTL, else ../gmemctl next to this test's directory
 * (build/tests/test_gmemctl -> build/gmemctl); without it every test is
 * skipped.  Each run captures stdout and stderr in memfds.
 */
#include <cpuid.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <limits.h>
#include <sys/wait.h>

#include "gmem.h"
#include "harness.h"
#include "test_common.h"

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
		{ "vm", "--help" }, { "migrate", "--help" },
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

/* --version names the version the tool was built with and the library's. */
TEST(version)
{
	char want[64];
	struct run r;

	snprintf(want, sizeof(want), "gmemctl %d.%d.%d (libgmem %d.%d)\n",
		 GMEM_VERSION_MAJOR, GMEM_VERSION_MINOR, GMEM_VERSION_PATCH,
		 gmem_version_major(), gmem_version_minor());
	RUN(&r, "--version");
	EXPECT_EQ(r.status, 0);
	EXPECT_HAS(r.out, want);
	EXPECT_EQ(strlen(r.out), strlen(want));
	EXPECT_EQ(r.err[0], '\0');
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
		{ "bench", "--only", "" }, { "bench", "--only", "," },
		{ "bench", "--only", "flip,nope" }, { "demo", "--flips", "0" },
		{ "bench", "--only", "peer,nope" },
		{ "bench", "--only", "peers" },
		{ "demo", "--seed", "0" }, { "vm", "--bogus" }, { "vm", "--ask" },
		{ "vm", "--ask", "sideways" }, { "vm", "extra" },
		{ "migrate", "--bogus" }, { "migrate", "extra" },
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

/*
 * The peer workload: the device runs in a process of its own (gmemctl
 * started again); libgmem-peer keeps the contents the device wrote,
 * qemu-vhost punches them on every conversion.
 */
TEST_T(bench_quick_peer, 120)
{
	struct run r;

	RUN(&r, "bench", "--quick", "--only", "peer", "--json", "-");
	ASSERT_EQ(r.status, 0);
	EXPECT_TRUE(json_ok(r.out));
	EXPECT_HAS(r.out, "\"workload\": \"peer\"");
	EXPECT_HAS(r.out, "\"variant\": \"libgmem-peer\"");
	EXPECT_HAS(r.out, "\"variant\": \"libgmem-fd\"");
	EXPECT_HAS(r.out, "\"variant\": \"qemu-vhost\"");
	EXPECT_NULL(strstr(r.out, "\"workload\": \"flip\""));
	EXPECT_HAS(r.out, "\"ok\": true");
	/* A sanitizer's runtime in the device process may write its own
	 * lines (its symbolizer): only a plain build's stderr is ours. */
	if (!gmem_test_foreign_runtime())
		EXPECT_EQ(r.err[0], '\0');
	RUN(&r, "bench", "--help");
	EXPECT_HAS(r.out, "flip, boot, random, fragment, peer");
}

/* Numbers are decimal (a leading zero is no octal prefix) or 0x hex. */
TEST(numbers_decimal_or_hex)
{
	static const struct {
		const char *spec;
		const char *want;
	} cases[] = {
		{ "size=010M", "\"size\": 10485760," },
		{ "size=08M", "\"size\": 8388608," },
		{ "size=0x10M", "\"size\": 16777216," },
		{ "size=0100M", "\"size\": 104857600," },
		{ "size=1G,islands=010", "\"nr_ranges\": 20," },
	};
	struct run r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		RUN(&r, "stat", "--json", cases[i].spec);
		EXPECT_EQ(r.status, 0);
		EXPECT_HAS(r.out, cases[i].want);
	}
}

/* Garbage in a number is a usage error that says what a number is. */
TEST(numbers_garbage_rejected)
{
	static const char *const cases[][3] = {
		{ "stat", "size=0x" }, { "stat", "size=1G,shared=0+4Kx" },
		{ "stat", "size= 1G" }, { "stat", "size=-1G" },
		{ "stat", "size=1G,islands=1e3" }, { "demo", "--seed", "0o7" },
		{ "demo", "--flips", "12abc" }, { "demo", "--size", "0x" },
	};
	struct run r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		RUN(&r, cases[i][0], cases[i][1], cases[i][2]);
		EXPECT_EQ(r.status, 2);
		EXPECT_HAS(r.err, "decimal, or hex with 0x");
	}
}

/*
 * Spec items the library would refuse are bad specs (exit 2) with a
 * reason; a valid spec whose operation fails exits 1; error_offset is
 * shown only when the library set one.
 */
TEST(spec_errors_exit_codes)
{
	static const struct {
		const char *spec;
		int status;
		const char *want;
	} cases[] = {
		{ "size=8388608T", 2, "the size overflows" },
		{ "size=16777216T", 2, "the size overflows 64 bits" },
		{ "size=1G,shared=1+4K", 2, "not a multiple of the page size" },
		{ "size=1G,shared=0x3ffff000+8K", 2, "past the end" },
		{ "size=1G,private=0+0", 2, "an empty range" },
		{ "size=1G,punch=1G+4K", 2, "past the end" },
		{ "size=1G,poison=2G", 2, "past the end" },
		{ "size=1G,pin=0+4K", 1, "private" },
		{ "size=1G,shared=0+8K,pin=4K+4K,private=0+8K", 1,
		  "at offset 0x1000 (error_offset)" },
	};
	struct run r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		RUN(&r, "info", cases[i].spec);
		EXPECT_EQ(r.status, cases[i].status);
		EXPECT_HAS(r.err, cases[i].want);
		EXPECT_HAS(r.err, "'");		/* names the item */
		if (cases[i].status == 2) {
			EXPECT_NULL(strstr(r.err, "error_offset"));
			EXPECT_HAS(r.err, "bad spec item");
		}
	}
}

/* The same seed rule everywhere: 0 is refused, by bench and demo alike. */
TEST(seed_zero_same_rule)
{
	static const char *const cmds[] = { "bench", "demo" };
	struct run r;

	for (size_t i = 0; i < 2; i++) {
		RUN(&r, cmds[i], "--seed", "0");
		EXPECT_EQ(r.status, 2);
		EXPECT_HAS(r.err, "1 or more");
		RUN(&r, cmds[i], "--help");
		EXPECT_HAS(r.out, "is refused, as by gmemctl");
	}
}

/* --flips 0 would report zeros as measurements: a usage error. */
TEST(demo_flips_zero_refused)
{
	struct run r;

	RUN(&r, "demo", "--size", "64M", "--flips", "0");
	EXPECT_EQ(r.status, 2);
	EXPECT_HAS(r.err, "--flips");
	EXPECT_EQ(r.out[0], '\0');
}

/* --plots DIR and --only are checked before anything runs (0.1 s). */
TEST_T(bench_checks_before_running, 10)
{
	static const char *const bad[] = { "/proc/gmemctl-no/such", "/dev/null" };
	struct run r;

	for (size_t i = 0; i < 2; i++) {
		RUN(&r, "bench", "--quick", "--plots", bad[i]);
		EXPECT_TRUE(r.status == 2 || r.status == 77);
		EXPECT_HAS(r.err, r.status == 2 ? bad[i] : "skipped");
		EXPECT_EQ(r.out[0], '\0');
	}
	RUN(&r, "bench", "--only", "");
	EXPECT_EQ(r.status, 2);
	EXPECT_HAS(r.err, "flip, boot, random, fragment");
}

/* TSan keeps no room in its address space for a 1 TiB mapping. */
static bool under_tsan(void)
{
#if defined(__SANITIZE_THREAD__)
	return true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
	return true;
#endif
#endif
	return false;
}

/* Sizes are never rounded up to a round number they are not. */
TEST(sizes_never_round_up)
{
	static const struct {
		const char *spec;
		const char *want;
		const char *not;
	} cases[] = {
		{ "size=1G,shared=0+4K", "| 1023.9 MiB | private", "1024.0" },
		{ "size=1T,shared=0+4K", "| 1023.9 GiB | private", "1024.0" },
		{ "size=0x40001000,shared", "| 1.000003 GiB | shared",
		  "1.00 GiB" },
		{ "size=2M,shared=0+4K", "1.99 MiB | private", "2.00 MiB" },
		{ "size=1G,shared=0+64K", " 64 KiB | shared", "64.0" },
		{ "size=1G,shared=0+0x6000", " 24 KiB | shared", "24.0" },
	};
	struct run r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (under_tsan() && strstr(cases[i].spec, "size=1T")) {
			TH_LOG("%s: not under TSan (no room for 1 TiB)",
			       cases[i].spec);
			continue;
		}
		RUN(&r, "info", cases[i].spec);
		EXPECT_EQ(r.status, 0);
		EXPECT_HAS(r.out, cases[i].want);
		EXPECT_NULL(strstr(r.out, cases[i].not));
	}
}

/* The hypercall instruction of this host, as gmemctl vm must choose it. */
static const char *host_hypercall(void)
{
	unsigned int a, b, c, d;
	char v[13] = "";

	if (__get_cpuid(0, &a, &b, &c, &d)) {
		memcpy(v, &b, 4);
		memcpy(v + 4, &d, 4);
		memcpy(v + 8, &c, 4);
	}
	return !strcmp(v, "AuthenticAMD") || !strcmp(v, "HygonGenuine") ?
	       "vmmcall" : "vmcall";
}

/*
 * vm --ask hypercall runs the guest's hypercall on /dev/kvm with the
 * host's instruction (vmmcall on AMD): all checks pass, or, where this
 * KVM does not deliver the exit, a skip (77) that names the instruction.
 */
TEST_T(vm_hypercall_host_instruction, 120)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	struct run r;

	if (fd < 0)
		SKIP(return, "/dev/kvm: %s", strerror(errno));
	close(fd);
	RUN(&r, "vm", "--ask", "hypercall");
	if (r.status == 77) {
		EXPECT_HAS(r.err, "gmemctl: vm: skipped: ");
		EXPECT_HAS(r.err, host_hypercall());
		SKIP(return, "%s", r.err);
	}
	EXPECT_EQ(r.status, 0);
	EXPECT_HAS(r.out, "asks by KVM_HC_MAP_GPA_RANGE (");
	EXPECT_HAS(r.out, host_hypercall());
	EXPECT_HAS(r.out, "64 of 64 bytes hold the guest's 0xab");
	EXPECT_HAS(r.out, "vm: all checks passed");
}

/* vm skips and fails like the other subcommands: on stderr, "skipped". */
TEST(vm_skip_wording)
{
	struct run r;

	RUN(&r, "vm", "--ask", "doorbell");
	EXPECT_TRUE(r.status == 0 || r.status == 77);
	if (r.status == 77) {
		EXPECT_HAS(r.err, "gmemctl: vm: skipped: ");
		EXPECT_NULL(strstr(r.out, "skipped"));
	} else {
		EXPECT_HAS(r.out, "vm: all checks passed");
		EXPECT_EQ(r.err[0], '\0');
	}
}

/*
 * migrate's mistakes are usage errors (exit 2) that say what is wanted,
 * checked before anything is forked or built.
 */
TEST(migrate_usage_errors)
{
	static const struct {
		const char *args[4];
		const char *want;
	} cases[] = {
		{ { "migrate", "--size", "3M" }, "a multiple of 4M" },
		{ { "migrate", "--size", "0" }, "a multiple of 4M" },
		{ { "migrate", "--size", "lots" }, "bad --size 'lots'" },
		{ { "migrate", "--rate", "-1M" }, "bad --rate '-1M'" },
		{ { "migrate", "--converge", "1Q" }, "bad --converge '1Q'" },
		{ { "migrate", "--private", "101" }, "0 to 100" },
		{ { "migrate", "--private", "half" }, "0 to 100" },
		{ { "migrate", "--max-rounds", "1001" }, "at most 1000" },
		{ { "migrate", "--max-rounds", "x" }, "decimal, or hex" },
		{ { "migrate", "--seed", "0" }, "1 or more" },
		{ { "migrate", "--json", "--bench" }, "not both" },
		{ { "migrate", "--rate" }, "--rate needs a value" },
		{ { "migrate", "--size", "64M", "now" }, "unexpected argument" },
	};
	struct run r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		RUN(&r, cases[i].args[0], cases[i].args[1], cases[i].args[2],
		    cases[i].args[3]);
		EXPECT_EQ(r.status, 2);
		EXPECT_EQ(r.out[0], '\0');
		EXPECT_HAS(r.err, "gmemctl: migrate: ");
		EXPECT_HAS(r.err, cases[i].want);
		EXPECT_HAS(r.err, "usage: gmemctl migrate");
	}
}

/*
 * A small migration, whole: the full copy, incremental rounds while the
 * writers run (16 MiB/s on 64 MiB, half private), the stop-and-copy and
 * the check that the destination equals the source; then the same as
 * JSON.  About a second each; 77 where the kernel has no dirty tracking.
 */
TEST_T(migrate_small, 60)
{
	static const char *const want[] = {
		"Rounds", "full", "incremental", "stop-and-copy", "Summary",
		"converged", "stop-and-copy size", "downtime",
		"full stop-and-copy", "downtime / full stop",
		"destination equals source | yes",
		"migrate: the destination equals the source.",
	};
	struct run r;

	RUN(&r, "migrate", "--size", "64M", "--rate", "16M", "--max-rounds",
	    "5");
	if (r.status == 77) {
		EXPECT_HAS(r.err, "gmemctl: migrate: skipped: ");
		SKIP(return, "%s", r.err);
	}
	ASSERT_EQ(r.status, 0);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		EXPECT_HAS(r.out, want[i]);
	EXPECT_NULL(strchr(r.out, '\r'));	/* not a terminal: no bars */
	if (!gmem_test_foreign_runtime())
		EXPECT_EQ(r.err[0], '\0');

	RUN(&r, "migrate", "--size", "16M", "--rate", "8M", "--private",
	    "100", "--json");
	ASSERT_EQ(r.status, 0);
	EXPECT_TRUE(json_ok(r.out));
	EXPECT_HAS(r.out, "\"command\": \"migrate\"");
	EXPECT_HAS(r.out, "\"rounds\": [");
	EXPECT_HAS(r.out, "\"kind\": \"stop-and-copy\"");
	EXPECT_HAS(r.out, "\"downtime_ns\": ");
	EXPECT_HAS(r.out, "\"full_stop_copy_ns\": ");
	EXPECT_HAS(r.out, "\"equal\": true");
	EXPECT_HAS(r.out, "\"ok\": true");
}

/*
 * The check finds a difference: a page of the source changed after the
 * last round (GMEMCTL_MIGRATE_TAMPER) makes the destination differ, exit
 * 1, naming the chunk.  8 MiB half private: [0, 4M) private, [4M, 8M)
 * shared; one page of each.
 */
TEST_T(migrate_check_finds_difference, 60)
{
	static const struct {
		const char *tamper;
		const char *chunk;
	} cases[] = {
		{ "0x405000", "the first at 0x400000)" },
		{ "0x6000", "the first at 0x0)" },
	};
	struct run r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		setenv("GMEMCTL_MIGRATE_TAMPER", cases[i].tamper, 1);
		RUN(&r, "migrate", "--size", "8M", "--rate", "1M");
		unsetenv("GMEMCTL_MIGRATE_TAMPER");
		if (r.status == 77)
			SKIP(return, "%s", r.err);
		EXPECT_EQ(r.status, 1);
		EXPECT_HAS(r.out, "destination equals source | NO");
		EXPECT_HAS(r.err, "the destination differs from the source: "
			   "contents (1 MiB in 1 chunks, ");
		EXPECT_HAS(r.err, cases[i].chunk);
	}
}
