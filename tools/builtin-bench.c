// SPDX-License-Identifier: MIT
/*
 * builtin-bench.c - "gmemctl bench": libgmem's in-place conversion side
 * by side with the peers' approach, in one run, on five workloads; a
 * table with ratios, a JSON file and gnuplot PNGs.
 *
 * Variants (every one starts all private, as confidential guest RAM):
 *   libgmem         gmem_set_attributes() on a file with one host view
 *   qemu            QEMU's way (bench/qemu_bitmap.c): 1 bit per 4 KiB
 *                   page, a memfd for shared and a second file for
 *                   private, the side given up punched on every
 *                   conversion
 *   qemu-nodiscard  the same with shared discard disabled: to private
 *                   leaves the shared page allocated (and mapped); to
 *                   shared still punches the private side
 *   floor           the bare system calls libgmem's view uses, by hand
 *                   (bench/floor.c): MADV_DONTNEED / UFFDIO_CONTINUE
 *   libgmem-noview  random and fragment only, for information: libgmem
 *                   without a host view, so the state and the checks
 *                   alone (a view maps every shared page, see view.c)
 *   libgmem-peer,   peer only: the device in a process of its own,
 *   qemu-vhost      attached to the file (gmem_export) or, QEMU's way
 *                   with a vhost-user device, mapping the shared memfd
 *                   itself, with a punch on every conversion
 *
 * This file is the command: its options, the run and the JSON document
 * around the workloads.  Variants are in bench-side.c, the workloads in
 * bench-flip.c (flip, boot), bench-big.c (random, fragment) and
 * bench-peer.c (peer, and the device process it starts), their
 * statistics in bench-stats.c, plots in bench-plot.c (bench.h).
 *
 * Workloads:
 *   flip      OVMF's DMA pattern on a 1 GiB guest: each transaction
 *             converts 1-2 pages shared, the device touches them, they
 *             go back private; rounds interleave the variants
 *   boot      a boot on guest sizes from 1 GiB to 1 TiB (sparse): create,
 *             accept the first 512 MiB (--quick: 256 MiB) in 2 MiB
 *             chunks, share the swiotlb
 *             (6% of RAM, 64 MiB..1 GiB as Linux sizes it for SEV, at
 *             most half of what was accepted) in 2 MiB conversions and
 *             let the device write 64 MiB of it, then 5,000 DMA
 *             transactions of 1-8 pages (grub's count, edk2 BZ 4171)
 *   random    1,000,000 one-page conversions, random page and direction
 *             (one seed for all), on 1 TiB, nothing touched
 *   fragment  1,000,000 one-page shared islands spread over 1 TiB, then
 *             the whole file back to private in one call
 *   peer      flip's pattern with the device in another process (this
 *             program exec'ed again, GMEMCTL_BENCH_DEVICE set): one
 *             request to it per transaction over a socket
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"
#include "gmemctl.h"
#include "output.h"

static const char usage[] =
"usage: gmemctl bench [--quick] [--json FILE] [--plots DIR] [--seed N]\n"
"                     [--only LIST]\n"
"\n"
"Runs libgmem's in-place conversion side by side with, in the same run:\n"
"  qemu            QEMU's approach (bench/qemu_bitmap.c): a bitmap of\n"
"                  4 KiB pages, a memfd for shared and a second file for\n"
"                  private memory, punch-hole of the side given up on\n"
"                  every conversion\n"
"  qemu-nodiscard  the same with shared discard disabled\n"
"  floor           the bare system calls of libgmem's userfaultfd view\n"
"  libgmem-noview  (random, fragment) libgmem without a host view\n"
"  qemu-vhost      (peer) QEMU's way with a vhost-user device: the device\n"
"                  process maps the shared memfd, every conversion punches\n"
"on five workloads:\n"
"  flip      OVMF DMA: 1-2 pages shared, touched, private, 100,000 times\n"
"  boot      a boot on 1 GiB to 1 TiB guests: accept, swiotlb, DMA\n"
"  random    1,000,000 random 4 KiB conversions on 1 TiB\n"
"  fragment  1,000,000 shared islands on 1 TiB, then all back private\n"
"  peer      flip with the device in another process: libgmem-peer\n"
"            (gmem_export/gmem_attach) against qemu-vhost\n"
"and prints a table per workload; \"vs libgmem\" is the variant's time\n"
"over libgmem's (above 1: libgmem is faster).\n"
"\n"
"options:\n"
"  --quick       about 10x less work (under 20 s)\n"
"  --json FILE   write every result as JSON to FILE (- for stdout, then\n"
"                no tables)\n"
"  --plots DIR   write PNG plots to DIR (needs gnuplot): latency\n"
"                distributions, boot time and memory against guest size;\n"
"                DIR (made if missing) and gnuplot are checked before\n"
"                anything runs\n"
"  --seed N      seed of the random sequences, 1 or more (default 1; 0\n"
"                is refused, as by gmemctl demo)\n"
"  --only LIST   run only these workloads, a comma-separated list of\n"
"                flip, boot, random, fragment, peer (empty or unknown:\n"
"                usage error)\n"
"  -h, --help    this text\n"
"\n"
"Numbers are decimal or hex with 0x.\n"
"\n"
"exit status: 0 ok, 1 failure, 2 usage error, 77 skipped (--plots\n"
"without gnuplot).\n";


/* ---- main ------------------------------------------------------------- */

static int parse_only(const char *list, bool *want)
{
	static const char *const names[] = { "flip", "boot", "random",
					     "fragment", "peer" };
	char *copy = strdup(list), *save = NULL, *w;
	int ret = -EINVAL;		/* until one name is found */

	if (!copy)
		return -ENOMEM;
	memset(want, 0, 5 * sizeof(*want));
	for (w = strtok_r(copy, ",", &save); w;
	     w = strtok_r(NULL, ",", &save)) {
		unsigned int i;

		for (i = 0; i < 5 && strcmp(w, names[i]); i++)
			;
		if (i == 5) {
			ret = -EINVAL;
			break;
		}
		want[i] = true;
		ret = 0;
	}
	free(copy);
	return ret;
}

/*
 * Allocate and free bytes of memory once, before anything is measured.
 * A virtual machine's memory is often backed by the hypervisor only when
 * first touched, which costs several times a normal allocation; without
 * this the first variant to allocate pays it for the others.
 */
static void warm_up(uint64_t bytes)
{
	int fd = memfd_create("gmemctl-warm-up", MFD_CLOEXEC);

	if (fd < 0)
		return;
	for (uint64_t off = 0; off < bytes; off += 256 * MiB)
		if (fallocate(fd, 0, (off_t)off, 256 * MiB))
			break;
	close(fd);
}

static bool floor_works(void)
{
	struct floor_uffd f;

	if (floor_uffd_create(&f, 2 * MiB))
		return false;
	floor_uffd_destroy(&f);
	return true;
}

int cmd_bench(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "json", required_argument, NULL, 'j' },
		{ "plots", required_argument, NULL, 'p' },
		{ "seed", required_argument, NULL, 's' },
		{ "only", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cfg c = { .seed = 1,
			 .want = { true, true, true, true, true } };
	const char *json_path = NULL, *plot_dir = NULL;
	struct results *res;
	struct utsname un;
	struct json j;
	FILE *jf = NULL;
	int opt, err, ret = 0;
	uint64_t t;

	/* The peer workload's device: gmemctl exec'ed by bench_peer(). */
	if (getenv(BENCH_DEVICE_ENV))
		return bench_device(getenv(BENCH_DEVICE_ENV));
	opterr = 0;
	optind = 0;
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'q':
			c.quick = true;
			break;
		case 'j':
			json_path = optarg;
			break;
		case 'p':
			plot_dir = optarg;
			break;
		case 's':
			err = parse_u64(optarg, &c.seed);
			if (err || !c.seed)
				return out_usage_error(usage, "bench: bad seed "
						       "'%s': %s", optarg, err ?
						       parse_error(err) :
						       "1 or more (0 would "
						       "make the sequence all "
						       "zeros)");
			break;
		case 'o':
			if (parse_only(optarg, c.want))
				return out_usage_error(usage, "bench: bad "
						       "--only '%s': a comma-"
						       "separated list of "
						       "flip, boot, random, "
						       "fragment, peer",
						       optarg);
			break;
		case 'h':
			return out_help(usage);
		case ':':
			return out_usage_error(usage, "bench: %s needs a "
					       "value", argv[optind - 1]);
		default:
			return out_usage_error(usage, "bench: unknown option "
					       "'%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return out_usage_error(usage, "bench: unexpected argument "
				       "'%s'", argv[optind]);
	if (plot_dir) {
		ret = bench_plots_check(plot_dir);
		if (ret)
			return ret;
	}
	out_init(json_path && !strcmp(json_path, "-") ? OUT_QUIET : OUT_TEXT);
	if (json_path) {
		jf = strcmp(json_path, "-") ? fopen(json_path, "w") : stdout;
		if (!jf) {
			out_error("bench: %s: %s", json_path, strerror(errno));
			return EXIT_FAIL;
		}
	} else {
		jf = fopen("/dev/null", "w");
		if (!jf) {
			out_error("bench: /dev/null: %s", strerror(errno));
			return EXIT_FAIL;
		}
	}
	res = calloc(1, sizeof(*res));
	if (!res) {
		out_error("bench: out of memory");
		fclose(jf);
		return EXIT_FAIL;
	}
	c.have_floor = floor_works();
	uname(&un);
	t = bench_now();
	warm_up(c.quick ? GiB : 6 * GiB);
	out_line("gmemctl bench%s: libgmem against QEMU's approach and the "
		 "syscall floor (Linux %s, %ld CPUs)", c.quick ? " --quick" :
		 "", un.release, sysconf(_SC_NPROCESSORS_ONLN));
	if (!c.have_floor)
		out_line("  (no userfaultfd here: the floor is skipped)");

	json_begin(&j, jf);
	json_str(&j, "command", "bench");
	json_bool(&j, "quick", c.quick);
	json_u64(&j, "seed", c.seed);
	json_str(&j, "kernel", un.release);
	json_u64(&j, "cpus", (uint64_t)sysconf(_SC_NPROCESSORS_ONLN));
	json_arr_begin(&j, "workloads");
	if (c.want[0])
		ret = bench_flip(&c, &j, res);
	if (!ret && c.want[1])
		ret = bench_boot(&c, &j, res);
	if (!ret && c.want[2])
		ret = bench_random(&c, &j, res);
	if (!ret && c.want[3])
		ret = bench_fragment(&c, &j);
	if (!ret && c.want[4])
		ret = bench_peer(&c, &j);
	json_arr_end(&j);
	json_dbl(&j, "seconds", (double)(bench_now() - t) / 1e9);
	json_bool(&j, "ok", !ret);
	json_end(&j);
	if (jf != stdout)
		fclose(jf);
	if (!ret && plot_dir)
		ret = bench_plots(plot_dir, c.want[0] || c.want[2], c.want[1],
				  res);
	if (!ret)
		out_line("\n%.1f s%s%s", (double)(bench_now() - t) / 1e9,
			 json_path && strcmp(json_path, "-") ? "; JSON: " : "",
			 json_path && strcmp(json_path, "-") ? json_path : "");
	free(res);
	return ret;
}
