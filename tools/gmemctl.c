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
};

#define NR_CMDS	(sizeof(cmds) / sizeof(cmds[0]))

static const char usage[] =
"usage: gmemctl <command> [options]\n"
"       gmemctl <command> --help\n"
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

int parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno == ERANGE)
		return -ERANGE;
	if (end == s || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

int parse_size(const char *s, uint64_t *out)
{
	static const char suffixes[] = "KMGTP";
	unsigned long long v;
	unsigned int shift = 0;
	const char *p;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno == ERANGE)
		return -ERANGE;
	if (end == s)
		return -EINVAL;
	if (*end) {
		int c = end[0] & ~0x20;		/* upper case */

		p = c ? strchr(suffixes, c) : NULL;
		if (!p)
			return -EINVAL;
		shift = 10 * (unsigned int)(p - suffixes + 1);
		end++;
		if (*end && strcasecmp(end, "iB") && strcasecmp(end, "B"))
			return -EINVAL;
	}
	if (shift && v > (~0ULL >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
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
	};
	int ret = gmem_set_attributes(g, &a);

	if (ret && error_offset)
		*error_offset = a.error_offset;
	return ret;
}
