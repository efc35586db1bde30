// SPDX-License-Identifier: MIT
/*
 * builtin-demo.c - "gmemctl demo" (what make demo runs): the memory
 * lifecycle of a confidential VM on one libgmem file, step by step, with
 * measured numbers and a closing summary.
 *
 * This file is the command: options, the guest layout (demo.h draws
 * it), the run of the steps (demo-steps.c), the summary and teardown.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"
#include "output.h"

static const char usage[] =
"usage: gmemctl demo [--size SIZE] [--seed N] [--flips N] [--quick]\n"
"                    [--backend memfd|kvm] [--huge] [--json]\n"
"\n"
"The memory lifecycle of a confidential VM on one libgmem file, explained\n"
"step by step with measured numbers:\n"
"  1. create the guest memory private, populate a firmware image;\n"
"  2. the guest accepts memory in 2 MiB chunks (gmem_get_pfn);\n"
"  3. virtio rings and a bounce buffer become shared, a device pins one;\n"
"  4. OVMF-style DMA: 1-2 pages flipped shared/private per transaction;\n"
"  5. converting the pinned buffer fails (EAGAIN, offset), then succeeds;\n"
"  6. balloon punch-hole; a stray host access to private memory: SIGBUS.\n"
"Then a summary: conversions per second, p50/p99 latency, resident memory\n"
"against guest size, state ranges, huge-page coverage.\n"
"\n"
"options:\n"
"  --size SIZE   guest RAM, >= 64M, a multiple of 4M (default 1G);\n"
"                suffixes K, M, G, T (powers of 1024)\n"
"Numbers are decimal or hex with 0x (010 is ten, not octal).\n"
"  --seed N      seed of the firmware bytes and the DMA pattern, 1 or\n"
"                more (default 1; 0 is refused, as by gmemctl bench)\n"
"  --flips N     DMA transactions in step 4, 1 or more (default 100000)\n"
"  --quick       10000 DMA transactions unless --flips is given\n"
"  --backend B   memfd (default) or kvm: a KVM guest_memfd (exit 77\n"
"                without /dev/kvm or guest_memfd mmap, Linux 6.18)\n"
"  --huge        2 MiB huge pages (exit 77 where shmem THP is off)\n"
"  --json        print the same results as one JSON document\n"
"  -h, --help    this text\n"
"\n"
"exit status: 0 ok, 1 failure, 2 usage error, 77 skipped.\n";


static void layout(struct demo *d)
{
	uint64_t r = min_u64(d->size / 2, 512 * MiB);

	d->accept_len = r;
	d->fw_len = min_u64(r / 8, 4 * MiB);
	d->dma_off = r / 8;
	d->nslots = min_u64(MAX_SLOTS, r / 8 / (SLOT_PAGES * page_size()));
	d->rings_off = r / 4;
	d->ring_len = min_u64(d->size / 1024, 64 * KiB);
	d->swiotlb_off = r / 8 * 3;
	d->swiotlb_len = min_u64(r / 8, 64 * MiB);
	d->pin_len = min_u64(d->swiotlb_len / 4, 1 * MiB);
	d->pin_off = d->swiotlb_off + d->swiotlb_len / 2;
	d->balloon_off = r / 2;
	d->balloon_len = min_u64(r / 2, 256 * MiB);
}

static int summary(struct demo *d)
{
	struct out_table *t = NULL;
	uint64_t rss = self_rss(), invals = 0;
	struct gmem_stats st;
	double huge, secs;
	char pct[16];
	int ret = demo_stats(d, &st);

	if (ret)
		return ret;
	for (unsigned int i = 0; i < NR_REASONS; i++)
		invals += d->inval[i];
	huge = d->accepted ? 100.0 * (double)d->huge_pages /
			     (double)d->accepted : 0;
	if (out_mode() == OUT_TEXT)
		t = out_table_new("Summary", 3, "", "measured", "");
	secs = (double)(bench_now() - d->t_start) / 1e9;
	out_obj_begin("summary");
	out_metric(t, "guest_size", (double)d->size, "guest RAM",
		   fmt_bytes(d->size), "%s backend, seed %llu",
		   demo_backend_name(d->o), (unsigned long long)d->o->seed);
	out_metric(t, "conversions_per_second", d->conv_per_s,
		   "conversions per second",
		   fmt_count((uint64_t)d->conv_per_s),
		   "step 4, 1-2 pages per conversion");
	out_metric(t, "p50_ns", d->p50, "conversion latency p50",
		   fmt_ns(d->p50), "%s", "");
	out_metric(t, "p99_ns", d->p99, "conversion latency p99",
		   fmt_ns(d->p99), "%s", "");
	out_metric(t, "conversions", (double)st.conversions,
		   "conversions in all", fmt_count(st.conversions),
		   "%s pages changed state", fmt_count(st.pages_converted));
	out_metric(t, "allocated", (double)st.allocated,
		   "memory allocated", fmt_bytes(st.allocated),
		   "%.1f%% of the %s guest: %s",
		   100.0 * (double)st.allocated / (double)d->size,
		   fmt_bytes(d->size), st.allocated <= d->size ?
		   "no double allocation" : "DOUBLE ALLOCATION");
	out_metric(t, "rss", (double)rss, "process resident",
		   fmt_bytes(rss), "%s", "Rss in /proc/self/smaps_rollup");
	out_metric(t, "nr_ranges", (double)st.nr_ranges, "state ranges",
		   fmt_count(st.nr_ranges), "tracked in %s (a %s bitmap: "
		   "%s)", fmt_bytes(st.state_bytes), fmt_bytes(page_size()),
		   fmt_bytes(d->size / page_size() / 8));
	snprintf(pct, sizeof(pct), "%.1f%%", huge);
	if (d->o->huge)
		out_metric(t, "huge_page_coverage", huge, "huge-page coverage",
			   pct, "of accepted memory reached as 2 MiB pages; "
			   "%s of views mapped huge, %s split(s)",
			   fmt_bytes(st.huge_mapped), fmt_count(st.splits));
	else
		out_metric(t, "huge_page_coverage", huge, "huge-page coverage",
			   pct, "%s pages (--huge: 2 MiB pages)",
			   fmt_bytes(page_size()));
	out_metric(t, "invalidations", (double)invals, "owner invalidations",
		   fmt_count(invals), "%s convert, %s punch",
		   fmt_count(d->inval[GMEM_INVALIDATE_CONVERT]),
		   fmt_count(d->inval[GMEM_INVALIDATE_PUNCH]));
	out_metric(t, "eagain_offset", (double)d->eagain_offset,
		   "pinned conversion", "EAGAIN", "at offset 0x%llx, then "
		   "succeeded after unpin",
		   (unsigned long long)d->eagain_offset);
	out_metric(t, "sigbus_offset", (double)d->sigbus_offset,
		   "stray host access", "SIGBUS", "at offset 0x%llx",
		   (unsigned long long)d->sigbus_offset);
	out_metric(t, "seconds", secs, "elapsed", fmt_ns(secs * 1e9), "%s",
		   "");
	out_field_bool("no_double_allocation", st.allocated <= d->size);
	out_obj_end();
	out_table_print(t);
	if (st.allocated > d->size) {
		out_error("demo: %llu bytes allocated for a %llu-byte guest",
			  (unsigned long long)st.allocated,
			  (unsigned long long)d->size);
		return EXIT_FAIL;
	}
	return 0;
}

static void teardown(struct demo *d, struct gmem **keep)
{
	if (d->pinned)
		gmem_unpin(d->g, d->pin_off, d->pin_len);
	if (d->b)
		gmem_unbind(d->b);
	if (d->view)
		gmem_munmap(d->g, d->view, d->size);
	if (keep && d->g)
		*keep = d->g;
	else
		gmem_close(d->g);
}

int demo_run(const struct demo_opts *o, struct gmem **keep)
{
	struct demo d = { .o = o, .size = o->size, .t_start = bench_now() };
	enum out_mode saved = out_mode();
	unsigned char *fw = NULL;
	int ret;

	if (o->quiet)
		out_set_mode(OUT_QUIET);
	layout(&d);
	out_doc_begin();
	out_field_str("command", "demo");
	out_field_u64("guest_size", o->size);
	out_field_u64("seed", o->seed);
	out_field_str("backend", demo_backend_name(o));
	out_field_bool("huge", o->huge);
	out_line("libgmem demo: the memory of a %s confidential guest, one "
		 "file, shared and private pages converted in place.",
		 fmt_bytes(o->size));
	out_arr_begin("steps");
	ret = step_create(&d, &fw);
	if (!ret)
		ret = step_accept(&d, fw);
	if (!ret)
		ret = step_share(&d);
	if (!ret)
		ret = step_dma(&d);
	if (!ret)
		ret = step_pinned(&d);
	if (!ret)
		ret = step_balloon(&d);
	out_arr_end();
	if (!ret)
		ret = summary(&d);
	out_field_bool("ok", !ret);
	out_doc_end();
	free(fw);
	teardown(&d, ret ? NULL : keep);
	out_set_mode(saved);
	return ret;
}

int cmd_demo(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'S' },
		{ "flips", required_argument, NULL, 'f' },
		{ "quick", no_argument, NULL, 'q' },
		{ "huge", no_argument, NULL, 'H' },
		{ "backend", required_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct demo_opts o = { .size = GiB, .seed = 1, .flips = 100000 };
	bool json = false, quick = false, flips_set = false;
	int c, err;

	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			err = parse_size(optarg, &o.size);
			if (err)
				return out_usage_error(usage, "demo: bad size "
						       "'%s': %s", optarg,
						       parse_error(err));
			break;
		case 'S':
			err = parse_u64(optarg, &o.seed);
			if (err || !o.seed)
				return out_usage_error(usage, "demo: bad seed "
						       "'%s': %s", optarg, err ?
						       parse_error(err) :
						       "1 or more (0 would "
						       "make the sequence all "
						       "zeros)");
			break;
		case 'f':
			err = parse_u64(optarg, &o.flips);
			if (err || !o.flips)
				return out_usage_error(usage, "demo: bad "
						       "--flips '%s': %s",
						       optarg, err ?
						       parse_error(err) :
						       "1 or more (step 4 "
						       "measures them)");
			flips_set = true;
			break;
		case 'q':
			quick = true;
			break;
		case 'H':
			o.huge = true;
			break;
		case 'b':
			if (!strcmp(optarg, "kvm"))
				o.backend = GMEM_BACKEND_KVM;
			else if (strcmp(optarg, "memfd"))
				return out_usage_error(usage, "demo: unknown "
						       "backend '%s'", optarg);
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			return out_help(usage);
		case ':':
			return out_usage_error(usage, "demo: %s needs a value",
					       argv[optind - 1]);
		default:
			return out_usage_error(usage, "demo: unknown option "
					       "'%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return out_usage_error(usage, "demo: unexpected argument '%s'",
				       argv[optind]);
	if (o.size < DEMO_MIN_SIZE || o.size % DEMO_ALIGN)
		return out_usage_error(usage, "demo: the size must be at least"
				       " 64M and a multiple of 4M");
	if (quick && !flips_set)
		o.flips = 10000;
	out_init(json ? OUT_JSON : OUT_TEXT);
	return demo_run(&o, NULL);
}
