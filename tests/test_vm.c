// SPDX-License-Identifier: MIT
/*
 * test_vm.c - "gmemctl vm" on real KVM: the guest converts its own
 * memory, the host reads what it shared and catches the SIGBUS of a
 * stray read; "--bench --quick" reports its round trips.  Skips, with
 * gmemctl's reason, where /dev/kvm or guest_memfd is missing.
 */
#include <sys/wait.h>

#include "harness.h"

static const char *gmemctl(void)
{
	const char *p = getenv("GMEMCTL");

	return p ? p : "build/gmemctl";
}

/* Run gmemctl with args; its stdout+stderr into out; the exit status. */
static int run(const char *args, char *out, size_t len)
{
	char cmd[512];
	size_t n = 0;
	FILE *f;
	int status;

	snprintf(cmd, sizeof(cmd), "%s %s 2>&1", gmemctl(), args);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while (n + 1 < len && (n += fread(out + n, 1, len - 1 - n, f)) &&
	       !feof(f))
		;
	out[n] = 0;
	status = pclose(f);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_T(guest_converts_its_memory, 120)
{
	static char out[16384];
	int rc = run("vm", out, sizeof(out));

	if (rc == 77)
		SKIP(return, "%s", out);
	if (rc)
		TH_LOG("%s", out);
	ASSERT_EQ(rc, 0);
	ASSERT_NONNULL(strstr(out, "64 of 64 bytes hold the guest's 0xab"));
	ASSERT_NONNULL(strstr(out, "SIGBUS at"));
	ASSERT_NONNULL(strstr(out, "vm: all checks passed"));
}

TEST_T(bench_quick, 300)
{
	static char out[16384];
	int rc = run("vm --bench --quick", out, sizeof(out));

	if (rc == 77)
		SKIP(return, "%s", out);
	if (rc)
		TH_LOG("%s", out);
	ASSERT_EQ(rc, 0);
	ASSERT_NONNULL(strstr(out, "name=vm_convert_round_trip "));
	ASSERT_NONNULL(strstr(out, "baseline=vm_bare_exit "));
	ASSERT_NONNULL(strstr(out, "name=kvm_backend_fault "));
}

TEST(usage_errors)
{
	static char out[4096];

	ASSERT_EQ(run("vm --bogus", out, sizeof(out)), 2);
	ASSERT_EQ(run("vm --ask sideways", out, sizeof(out)), 2);
	ASSERT_EQ(run("vm --help", out, sizeof(out)), 0);
	ASSERT_NONNULL(strstr(out, "usage: gmemctl vm"));
}
