// SPDX-License-Identifier: MIT
/*
 * builtin-info.c - "gmemctl info SPEC" and "gmemctl stat SPEC": build a
 * guest-memory file from a spec string and show its state ranges (info)
 * and its statistics (both).
 *
 * libgmem files live inside one process (a memfd and the library's own
 * bookkeeping), so there is no file of another process to open: the
 * spec says how to make one here, or names the demo scenario to run.
 */
#include <errno.h>
#include <getopt.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "gmemctl.h"
#include "output.h"

static const char usage_info[] =
"usage: gmemctl info [--json] [--max-ranges N] SPEC\n"
"       gmemctl stat [--json] SPEC\n"
"\n"
"Build a libgmem file from SPEC, apply its operations in order, then\n"
"print its state ranges (info only: offset, size, shared or private)\n"
"and all of its statistics.\n"
"\n"
"SPEC is a comma-separated list of items:\n"
"  size=SIZE        file size (default 1G)\n"
"  private, shared  the state it is created in (default private)\n"
"  demo             run the demo scenario quietly (its size is size=,\n"
"                   default 1G) and show the file it leaves behind\n"
"  map              a host view of the whole file (the VMM's mapping)\n"
"  shared=RANGE     convert RANGE to shared (private=RANGE: to private)\n"
"  alloc=RANGE      allocate memory behind RANGE (fallocate)\n"
"  punch=RANGE      punch a hole: free RANGE's memory, keep its state\n"
"  pin=RANGE        pin RANGE (shared pages only), like a device\n"
"  write=RANGE      write RANGE through the host view (needs map)\n"
"  poison=OFFSET    memory failure of the page at OFFSET\n"
"  islands=N        N one-page shared islands, every other page from 0\n"
"RANGE is OFFSET+LENGTH.  SIZE, OFFSET and LENGTH are bytes, decimal or\n"
"0x hex (a leading 0 is not octal: 010 is ten), with an optional K, M, G\n"
"or T suffix (powers of 1024); sizes, offsets and lengths are multiples\n"
"of the page size (sysconf(_SC_PAGESIZE): 4K on x86), ranges lie inside\n"
"the file and are not empty.\n"
"\n"
"examples:\n"
"  gmemctl info size=1G,shared=0x100000+64K,shared=2M+2M\n"
"  gmemctl info size=1T,islands=1000 --max-ranges 8\n"
"  gmemctl stat size=64M,map,shared=0+1M,write=0+1M,pin=0+64K\n"
"  gmemctl info demo,size=256M\n"
"\n"
"options:\n"
"  --json           print the same as one JSON document\n"
"  --max-ranges N   list at most N state ranges (default 64; 0: all)\n"
"  -h, --help       this text\n"
"\n"
"exit status: 0 ok, 1 failure, 2 usage error, 77 skipped.  A bad spec,\n"
"one the library refuses as invalid included, is a usage error (2); an\n"
"operation that fails on a valid spec (pinning private pages, converting\n"
"pinned ones) is a failure (1), with the library's error_offset where it\n"
"gives one.\n";

/* The file being built and what must be undone before closing it. */
struct spec_ctx {
	struct gmem *g;
	char *view;
	uint64_t size;
	const char *item;		/* for error messages */
	uint64_t (*pins)[2];		/* offset, length of each pin */
	size_t nr_pins;
};

static int bad_item(const char *item, const char *why)
{
	return out_usage_error(usage_info, "bad spec item '%s': %s", item,
			       why);
}

/*
 * "OFFSET+LENGTH" into off and len, checked against the file: an exit
 * code (bad_item() for a spec that cannot work on it).
 */
static int parse_range(const struct spec_ctx *c, char *s, uint64_t *off,
		       uint64_t *len)
{
	char *plus = strchr(s, '+');
	uint64_t ps = page_size();
	int err;

	if (!plus)
		return bad_item(c->item, "not OFFSET+LENGTH");
	*plus = '\0';
	err = parse_size(s, off);
	if (!err)
		err = parse_size(plus + 1, len);
	*plus = '+';
	if (err)
		return bad_item(c->item, parse_error(err));
	if (!*len)
		return bad_item(c->item, "an empty range");
	if (*off % ps || *len % ps)
		return bad_item(c->item, "not a multiple of the page size");
	if (*off >= c->size || *len > c->size - *off)
		return bad_item(c->item, "past the end of the file");
	return 0;
}

/*
 * A library call of a spec item failed: -EINVAL means the spec asked for
 * something the library refuses (exit 2), anything else is a failure of
 * a valid request (exit 1).
 */
static int op_failed(const struct spec_ctx *c, const char *call, int err)
{
	if (err == -EINVAL)
		return out_usage_error(usage_info, "bad spec item '%s': %s "
				       "refuses it (%s)", c->item, call,
				       strerror(-err));
	out_error("spec item '%s': %s: %s", c->item, call, strerror(-err));
	return EXIT_FAIL;
}

/* One operation item, applied to the file: an exit code. */
static int apply_item(struct spec_ctx *c, char *item)
{
	char *eq = strchr(item, '=');
	const char *key = item, *val = eq ? eq + 1 : NULL;
	uint64_t off = 0, len = 0, n;
	char whole[256];
	void *addr;
	int ret;

	snprintf(whole, sizeof(whole), "%s", item);
	c->item = whole;	/* item itself is cut at its '=' below */
	if (eq)
		*eq = '\0';
	if (!strcmp(key, "size") || !strcmp(key, "demo") ||
	    (!val && (!strcmp(key, "private") || !strcmp(key, "shared"))))
		ret = 0;	/* creation items: done already */
	else if (!strcmp(key, "map") && !val) {
		if (c->view)
			ret = 0;
		else if ((ret = gmem_mmap(c->g, 0, c->size,
					  PROT_READ | PROT_WRITE, &addr)))
			ret = op_failed(c, "gmem_mmap", ret);
		else
			c->view = addr;
	} else if (!strcmp(key, "islands") && val) {
		ret = parse_u64(val, &n);
		if (ret || n > c->size / page_size() / 2) {
			ret = bad_item(whole, ret ? parse_error(ret) :
				       "more islands than fit the file (one "
				       "every other page)");
			goto out;
		}
		ret = 0;
		out_progress_begin("making islands", n);
		for (uint64_t i = 0; i < n && !ret; i++) {
			ret = convert_range(c->g, 2 * i * page_size(), page_size(),
					    false, NULL);
			out_progress(i + 1);
		}
		out_progress_end();
		if (ret)
			ret = op_failed(c, "gmem_set_attributes", ret);
	} else if (!strcmp(key, "poison") && val) {
		ret = parse_size(val, &off);
		if (ret || off >= c->size) {
			ret = bad_item(whole, ret ? parse_error(ret) :
				       "past the end of the file");
			goto out;
		}
		ret = gmem_memory_failure(c->g, off);
		if (ret)
			ret = op_failed(c, "gmem_memory_failure", ret);
	} else if (val && (!strcmp(key, "shared") || !strcmp(key, "private") ||
			   !strcmp(key, "alloc") || !strcmp(key, "punch") ||
			   !strcmp(key, "pin") || !strcmp(key, "write"))) {
		ret = parse_range(c, eq + 1, &off, &len);
		if (ret)
			goto out;
		if (!strcmp(key, "shared") || !strcmp(key, "private")) {
			uint64_t eoff = NO_OFFSET;

			ret = convert_range(c->g, off, len, key[0] == 'p',
					    &eoff);
			if (ret && (ret == -EINVAL || eoff == NO_OFFSET))
				ret = op_failed(c, "gmem_set_attributes", ret);
			else if (ret) {
				out_error("spec item '%s': gmem_set_attributes:"
					  " %s at offset 0x%llx (error_offset)",
					  whole, strerror(-ret),
					  (unsigned long long)eoff);
				ret = EXIT_FAIL;
			}
		} else if (!strcmp(key, "alloc") || !strcmp(key, "punch")) {
			ret = gmem_fallocate(c->g, FALLOC_FL_KEEP_SIZE |
					     (key[0] == 'p' ?
					      FALLOC_FL_PUNCH_HOLE : 0),
					     off, len);
			if (ret)
				ret = op_failed(c, "gmem_fallocate", ret);
		} else if (!strcmp(key, "pin")) {
			void *more = realloc(c->pins, sizeof(*c->pins) *
					     (c->nr_pins + 1));

			if (!more) {
				ret = op_failed(c, "pin", -ENOMEM);
				goto out;
			}
			c->pins = more;
			ret = gmem_pin(c->g, off, len, &addr);
			if (ret == -EFAULT) {
				out_error("spec item '%s': gmem_pin: %s (a page "
					  "of the range is private; pins take "
					  "shared pages)", whole,
					  strerror(-ret));
				ret = EXIT_FAIL;
			} else if (ret) {
				ret = op_failed(c, "gmem_pin", ret);
			} else {
				c->pins[c->nr_pins][0] = off;
				c->pins[c->nr_pins++][1] = len;
			}
		} else if (!c->view) {
			ret = bad_item(whole, "write needs map first");
		} else {
			/* A private page here raises SIGBUS: say so first. */
			uint64_t attr, run, o;

			ret = 0;
			for (o = off; o < off + len && !ret; o += run) {
				ret = gmem_get_attributes(c->g, o, &attr,
							  &run);
				if (!ret && (attr & GMEM_ATTR_PRIVATE)) {
					out_error("spec item '%s': offset "
						  "0x%llx is private: the "
						  "write would raise SIGBUS",
						  whole, (unsigned long long)o);
					ret = EXIT_FAIL;
				}
			}
			if (ret < 0)
				ret = op_failed(c, "gmem_get_attributes", ret);
			if (!ret)
				memset(c->view + off, 0x5a, len);
		}
	} else {
		ret = bad_item(whole, "unknown item (see gmemctl info --help)");
	}
out:
	if (eq)
		*eq = '=';
	return ret;
}

/* size=SIZE: the number, and what gmem_create() would refuse in it. */
static int check_size(const char *item, uint64_t *size)
{
	int err = parse_size(item + 5, size);

	if (err == -ERANGE)
		return bad_item(item, "the size overflows 64 bits");
	if (err)
		return bad_item(item, parse_error(err));
	if (*size > INT64_MAX)
		return bad_item(item, "the size overflows: a file is at most "
				"8 EiB - 1 page (a file offset is signed "
				"64-bit)");
	if (!*size || *size % page_size())
		return bad_item(item, "not a positive multiple of the page "
				"size");
	return 0;
}

struct spec_create {
	uint64_t size;
	bool shared;
	bool demo;
};

/* First pass, on a copy: the items that say how the file is made. */
static int parse_create(const char *spec, struct spec_create *sc)
{
	char *save = NULL, *item, *copy;
	int ret = 0;

	sc->size = GiB;
	sc->shared = false;
	sc->demo = false;
	if (!*spec)
		return bad_item(spec, "empty spec");
	copy = strdup(spec);
	if (!copy) {
		out_error("out of memory");
		return EXIT_FAIL;
	}
	for (item = strtok_r(copy, ",", &save); item && !ret;
	     item = strtok_r(NULL, ",", &save)) {
		if (!strncmp(item, "size=", 5)) {
			ret = check_size(item, &sc->size);
		} else if (!strcmp(item, "shared")) {
			sc->shared = true;
		} else if (!strcmp(item, "private")) {
			sc->shared = false;
		} else if (!strcmp(item, "demo")) {
			sc->demo = true;
		}
	}
	free(copy);
	return ret;
}

static void print_ranges(struct gmem *g, uint64_t size, uint64_t max,
			 uint64_t nr_ranges)
{
	struct out_table *t = NULL;
	uint64_t off = 0, shown = 0, attr, run;

	if (out_mode() == OUT_TEXT)
		t = out_table_new(NULL, 4, "offset", "end", "size", "state");
	out_arr_begin("ranges");
	while (off < size && (!max || shown < max)) {
		char a[24], b[24];

		if (gmem_get_attributes(g, off, &attr, &run) || !run)
			break;
		snprintf(a, sizeof(a), "0x%llx", (unsigned long long)off);
		snprintf(b, sizeof(b), "0x%llx",
			 (unsigned long long)(off + run));
		if (t)
			out_table_row(t, a, b, fmt_bytes(run),
				      attr & GMEM_ATTR_PRIVATE ? "private" :
				      "shared");
		out_obj_begin(NULL);
		out_field_u64("offset", off);
		out_field_u64("size", run);
		out_field_str("state", attr & GMEM_ATTR_PRIVATE ? "private" :
			      "shared");
		out_obj_end();
		off += run;
		shown++;
	}
	out_arr_end();
	out_line("\nState ranges: %s", fmt_count(nr_ranges));
	out_table_print(t);
	if (shown < nr_ranges)
		out_line("  ... and %s more (--max-ranges 0 lists all)",
			 fmt_count(nr_ranges - shown));
}

static void print_stats(const struct gmem_stats *st)
{
	struct out_table *t = NULL;

	if (out_mode() == OUT_TEXT)
		t = out_table_new("Stats", 3, "field", "value", "meaning");
#define ROW(field, text, meaning)					\
	do {								\
		if (t)							\
			out_table_row(t, #field, text, meaning);	\
		out_field_u64(#field, st->field);			\
	} while (0)
	out_obj_begin("stats");
	ROW(size, fmt_bytes(st->size), "file size");
	ROW(allocated, fmt_bytes(st->allocated), "backed by memory");
	ROW(shared, fmt_bytes(st->shared), "in the shared state");
	ROW(priv, fmt_bytes(st->priv), "in the private state");
	ROW(nr_ranges, fmt_count(st->nr_ranges), "uniform state runs");
	ROW(state_bytes, fmt_bytes(st->state_bytes), "memory tracking them");
	ROW(conversions, fmt_count(st->conversions),
	    "set_attributes calls that changed state");
	ROW(pages_converted, fmt_count(st->pages_converted),
	    "pages that changed state");
	ROW(pins, fmt_count(st->pins), "pins not yet undone");
	ROW(pinned, fmt_bytes(st->pinned), "with at least one pin");
	ROW(views, fmt_count(st->views), "host views");
	ROW(views_uffd, fmt_count(st->views_uffd), "of which userfaultfd");
	ROW(bindings, fmt_count(st->bindings), "hypervisor-side bindings");
	ROW(pfn_refs, fmt_count(st->pfn_refs), "get_pfn not yet put");
	ROW(invalidations, fmt_count(st->invalidations),
	    "invalidate calls made to owners");
	ROW(listeners, fmt_count(st->listeners), "registered listeners");
	ROW(listener_calls, fmt_count(st->listener_calls),
	    "populate and discard calls made");
	ROW(poisoned, fmt_bytes(st->poisoned), "poisoned by memory failure");
	ROW(huge_mapped, fmt_bytes(st->huge_mapped),
	    "of views, mapped with huge pages");
	ROW(splits, fmt_count(st->splits), "huge regions made mixed");
	ROW(merges, fmt_count(st->merges), "huge regions made uniform again");
	ROW(vmas, fmt_count(st->vmas), "VMAs of its views and guest view");
	ROW(vmas_total, fmt_count(st->vmas_total),
	    "VMAs libgmem holds in the process");
	ROW(vma_budget, fmt_count(st->vma_budget),
	    "its limit: half of vm.max_map_count");
	ROW(views_revoked, fmt_count(st->views_revoked),
	    "views made unreachable after a failure");
	ROW(mode_switches, fmt_count(st->mode_switches),
	    "views that changed guard mode");
	ROW(parked, fmt_count(st->parked),
	    "private pages waiting in a snapshot");
	ROW(parked_bytes, fmt_bytes(st->parked_bytes), "memory of those");
	ROW(rehomed, fmt_count(st->rehomed),
	    "pages moved out of old kernel references' reach");
	ROW(rehome_busy, fmt_count(st->rehome_busy),
	    "re-homes refused: 2 MiB page in use");
#undef ROW
	out_obj_end();
	out_table_print(t);
}

static int run(char *spec, bool ranges, uint64_t max)
{
	struct spec_ctx c = { 0 };
	struct spec_create sc;
	struct gmem_stats st;
	char *save = NULL, *item;
	int ret = parse_create(spec, &sc);

	if (ret)
		return ret;
	if (sc.demo) {
		struct demo_opts o = { .size = sc.size, .seed = 1,
				       .flips = 10000, .quiet = true };

		if (o.size < DEMO_MIN_SIZE || o.size % DEMO_ALIGN)
			return bad_item("demo", "the demo needs size >= 64M, "
					"a multiple of 4M");
		ret = demo_run(&o, &c.g);
		if (ret)
			return ret;
	} else {
		struct gmem_create_args args = {
			.size = sc.size,
			.flags = GMEM_FLAG_MMAP |
				 (sc.shared ? GMEM_FLAG_INIT_SHARED : 0),
		};

		ret = gmem_create(&args, &c.g);
		if (ret == -EINVAL)
			return bad_item(spec, "gmem_create refuses it");
		if (ret) {
			out_error("gmem_create: %s", strerror(-ret));
			return EXIT_FAIL;
		}
	}
	c.size = sc.size;
	for (item = strtok_r(spec, ",", &save); item && !ret;
	     item = strtok_r(NULL, ",", &save))
		ret = apply_item(&c, item);
	if (!ret)
		ret = gmem_stat(c.g, &st, sizeof(st));
	if (ret < 0) {
		out_error("gmem_stat: %s", strerror(-ret));
		ret = EXIT_FAIL;
	}
	if (!ret) {
		out_doc_begin();
		out_field_str("command", ranges ? "info" : "stat");
		if (ranges)
			print_ranges(c.g, c.size, max, st.nr_ranges);
		print_stats(&st);
		out_doc_end();
	}
	/* Pins and views would keep the memory alive past the close. */
	for (size_t i = 0; i < c.nr_pins; i++)
		gmem_unpin(c.g, c.pins[i][0], c.pins[i][1]);
	free(c.pins);
	if (c.view)
		gmem_munmap(c.g, c.view, c.size);
	gmem_close(c.g);
	return ret;
}

static int info_main(int argc, char **argv, bool ranges)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "max-ranges", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = ranges ? "info" : "stat";
	uint64_t max = 64;
	bool json = false;
	char *spec;
	int c, ret;

	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'm':
			if (!ranges || parse_u64(optarg, &max))
				return out_usage_error(usage_info, "%s: bad "
						       "--max-ranges", cmd);
			break;
		case 'h':
			return out_help(usage_info);
		case ':':
			return out_usage_error(usage_info, "%s: %s needs a "
					       "value", cmd, argv[optind - 1]);
		default:
			return out_usage_error(usage_info, "%s: unknown option"
					       " '%s'", cmd, argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return out_usage_error(usage_info, "%s: expected one SPEC",
				       cmd);
	spec = strdup(argv[optind]);
	if (!spec) {
		out_error("out of memory");
		return EXIT_FAIL;
	}
	out_init(json ? OUT_JSON : OUT_TEXT);
	ret = run(spec, ranges, max);
	free(spec);
	return ret;
}

int cmd_info(int argc, char **argv)
{
	return info_main(argc, argv, true);
}

int cmd_stat(int argc, char **argv)
{
	return info_main(argc, argv, false);
}
