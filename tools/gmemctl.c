// SPDX-License-Identifier: MIT
/*
 * gmemctl.c - the gmemctl command: main(), the subcommand table, the
 * top-level usage, and the small helpers every builtin shares (sizes,
 * resident memory, one conversion call).  The clock and the seeded
 * sequence are bench/common.c's, so the demo and the benchmarks count
 * time and draw pages the same way as bench/.
 *
 * Subcommands live in builtin-<cmd>.c; each parses its own options and
 * returns an exit code: 0 ok, 1 failure, 2 usage, 77 skipped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "gmemctl.h"
#include "output.h"

struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static const struct cmd cmds[] = {
	{ "demo", cmd_demo,
	  "a confidential VM's memory lifecycle, with a summary (make demo)" },
	{ "bench", cmd_bench,
	  "libgmem against QEMU's approach and the syscall floor" },
	{ "info", cmd_info,
	  "build a file from a spec; show its state ranges and stats" },
	{ "stat", cmd_stat, "the same, stats only" },
	{ "vm", cmd_vm,
	  "a tiny VMM on /dev/kvm whose guest converts its own memory" },
	{ "snapshot", cmd_snapshot, "build a file and save it to a stream" },
	{ "restore", cmd_restore, "make a file from a snapshot stream" },
	{ "migrate", cmd_migrate,
	  "pre-copy live migration to another process, with a writer" },
};

#define NR_CMDS	(sizeof(cmds) / sizeof(cmds[0]))

static const char usage[] =
"usage: gmemctl <command> [options]\n"
"       gmemctl <command> --help\n"
"       gmemctl --version\n"
"\n"
"gmemctl drives libgmem, guest_memfd for userspace: one guest-memory\n"
"file whose pages are shared or private, converted in place.\n"
"\n"
"commands:\n"
"%s"
"\n"
"exit status: 0 ok, 1 failure, 2 usage error, 77 skipped.\n";

static int print_usage(bool to_stderr)
{
	char list[1024], full[2048];
	size_t o = 0;

	for (size_t i = 0; i < NR_CMDS; i++)
		o += (size_t)snprintf(list + o, sizeof(list) - o,
				      "  %-7s %s\n", cmds[i].name,
				      cmds[i].help);
	snprintf(full, sizeof(full), usage, list);
	if (to_stderr)
		return out_usage_error(full, "no command given");
	return out_help(full);
}

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : NULL;

	out_init(OUT_TEXT);
	if (!name)
		return print_usage(true);
	if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
		/* The library it runs with, and the headers it was built
		 * against: they differ when libgmem.so was replaced. */
		printf("gmemctl %d.%d.%d (libgmem %d.%d)\n", GMEM_VERSION_MAJOR,
		       GMEM_VERSION_MINOR, GMEM_VERSION_PATCH,
		       gmem_version_major(), gmem_version_minor());
		return 0;
	}
	if (!strcmp(name, "--help") || !strcmp(name, "-h") ||
	    !strcmp(name, "help")) {
		if (argc > 2 && strcmp(name, "help") == 0) {
			/* gmemctl help CMD == gmemctl CMD --help */
			char *args[] = { argv[2], "--help", NULL };

			for (size_t i = 0; i < NR_CMDS; i++)
				if (!strcmp(argv[2], cmds[i].name))
					return cmds[i].fn(2, args);
			name = argv[2];
			goto unknown;
		}
		return print_usage(false);
	}
	for (size_t i = 0; i < NR_CMDS; i++)
		if (!strcmp(name, cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
unknown:
	out_error("'%s' is not a gmemctl command; see gmemctl --help", name);
	return EXIT_USAGE;
}

/*
 * The number at the start of s: decimal, or hex after "0x"/"0X".  A
 * leading zero is just a zero (strtoull's base 0 would read "010" as
 * octal 8, which nobody typing a size means).  *end is the first byte
 * after the digits; 0, -EINVAL (no digits, a sign, a space) or -ERANGE.
 */
static int parse_digits(const char *s, uint64_t *out, const char **end)
{
	unsigned int base = 10;
	uint64_t v = 0;
	const char *p = s;

	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	for (s = p; *p; p++) {
		unsigned int d;

		if (*p >= '0' && *p <= '9')
			d = (unsigned int)(*p - '0');
		else if (base == 16 && (*p | 0x20) >= 'a' && (*p | 0x20) <= 'f')
			d = (unsigned int)((*p | 0x20) - 'a' + 10);
		else
			break;
		if (v > (UINT64_MAX - d) / base)
			return -ERANGE;
		v = v * base + d;
	}
	if (p == s)
		return -EINVAL;
	*out = v;
	*end = p;
	return 0;
}

int parse_u64(const char *s, uint64_t *out)
{
	const char *end;
	uint64_t v;
	int ret;

	if (!s)
		return -EINVAL;
	ret = parse_digits(s, &v, &end);
	if (ret)
		return ret;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

int parse_size(const char *s, uint64_t *out)
{
	static const char suffixes[] = "KMGTP";
	unsigned int shift = 0;
	const char *end, *p;
	uint64_t v;
	int ret;

	if (!s)
		return -EINVAL;
	ret = parse_digits(s, &v, &end);
	if (ret)
		return ret;
	if (*end) {
		p = strchr(suffixes, *end & ~0x20);	/* upper case */
		if (!p || !*p)
			return -EINVAL;
		shift = 10 * (unsigned int)(p - suffixes + 1);
		end++;
		if (*end && strcasecmp(end, "iB") && strcasecmp(end, "B"))
			return -EINVAL;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

const char *parse_error(int err)
{
	return err == -ERANGE ? "the number overflows 64 bits" :
	       "not a number: decimal, or hex with 0x";
}

uint64_t page_size(void)
{
	static uint64_t size;

	if (!size) {
		long ps = sysconf(_SC_PAGESIZE);

		size = ps > 0 ? (uint64_t)ps : 4096;
	}
	return size;
}

uint64_t self_rss(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	unsigned long long kb = 0;
	char line[256];

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Rss: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return (uint64_t)kb << 10;
}

int convert_range(struct gmem *g, uint64_t off, uint64_t len, bool to_private,
		  uint64_t *error_offset)
{
	struct gmem_attributes a = {
		.offset = off,
		.size = len,
		.attributes = to_private ? GMEM_ATTR_PRIVATE : 0,
		.error_offset = NO_OFFSET,	/* kept unless the library sets it */
	};
	int ret = gmem_set_attributes(g, &a);

	if (ret && error_offset)
		*error_offset = a.error_offset;
	return ret;
}
