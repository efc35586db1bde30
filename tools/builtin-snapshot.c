// SPDX-License-Identifier: MIT
/*
 * builtin-snapshot.c - "gmemctl snapshot" and "gmemctl restore": a guest
 * memory file saved to a stream file, and one made from such a stream
 * (gmem_snapshot_save(3), gmem_snapshot_restore(3)).
 *
 * A libgmem file lives inside one process, so snapshot builds its file
 * here: SIZE bytes of guest RAM with ALLOC bytes in use, in 4 MiB runs
 * spread over the file, seeded contents loaded by populate, every other
 * run converted shared.  It prints what it saved (size, allocation,
 * shared and private bytes, state runs); restore prints the same fields
 * for the file it made, so the two can be compared.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gmemctl.h"
#include "output.h"

#define RUN	(4 * MiB)

static const char usage_snapshot[] =
"usage: gmemctl snapshot [--size SIZE] [--alloc SIZE] [--seed N] FILE\n"
"\n"
"Build a libgmem file (memfd backend) of --size bytes (default 1G) with\n"
"--alloc bytes (default 256M) allocated in 4 MiB runs spread over it,\n"
"filled with seeded bytes (--seed, default 1) through gmem_populate(),\n"
"every other run converted shared; save it to FILE with\n"
"gmem_snapshot_save() and print what was saved.  Holes are not saved:\n"
"the stream is about --alloc bytes whatever --size is.\n"
"\n"
"options:\n"
"  --size SIZE      the file's size (a multiple of 4M)\n"
"  --alloc SIZE     bytes in use (a multiple of 4M, at most --size)\n"
"  --seed N         the contents' seed\n"
"  -h, --help       this text\n"
"\n"
"exit status: 0 ok, 1 failure, 2 usage error.\n";

static const char usage_restore[] =
"usage: gmemctl restore FILE\n"
"\n"
"Make a libgmem file (memfd backend) from the snapshot stream in FILE\n"
"with gmem_snapshot_restore() and print its state and allocation.  A\n"
"stream that is truncated, corrupted, of another version or backend is\n"
"refused with the library's error, and no file is made.\n"
"\n"
"options:\n"
"  -h, --help       this text\n"
"\n"
"exit status: 0 ok, 1 failure (a bad stream included), 2 usage error.\n";

static void on_progress(void *opaque, uint64_t done, uint64_t total)
{
	(void)opaque;
	(void)total;
	out_progress(done);
}

static void print_file(struct gmem *g, uint64_t stream_bytes, double secs)
{
	struct gmem_stats st;
	struct out_table *t;

	if (gmem_stat(g, &st, sizeof(st)))
		return;
	t = out_table_new(NULL, 2, "field", "value");
	out_table_row(t, "size", fmt_bytes(st.size));
	out_table_row(t, "allocated", fmt_bytes(st.allocated));
	out_table_row(t, "shared", fmt_bytes(st.shared));
	out_table_row(t, "private", fmt_bytes(st.priv));
	out_table_row(t, "state runs", fmt_count(st.nr_ranges));
	out_table_row(t, "poisoned", fmt_bytes(st.poisoned));
	out_table_row(t, "stream", fmt_bytes(stream_bytes));
	out_table_print(t);
	if (secs > 0)
		out_line("%s in %.3f s: %s/s", fmt_bytes(stream_bytes), secs,
			 fmt_bytes((uint64_t)((double)stream_bytes / secs)));
}

static int build(uint64_t size, uint64_t alloc, uint64_t seed,
		 struct gmem **out)
{
	struct gmem_create_args args = { .size = size,
					 .flags = GMEM_FLAG_MMAP };
	uint64_t runs = alloc / RUN, stride, s = seed | 1;
	uint64_t *buf = malloc(RUN);
	struct gmem *g;
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = gmem_create(&args, &g);
	if (ret) {
		free(buf);
		return ret;
	}
	stride = runs ? size / RUN / runs * RUN : 0;
	out_progress_begin("building", runs);
	for (uint64_t i = 0; i < runs && !ret; i++) {
		for (size_t w = 0; w < RUN / 8; w++)
			buf[w] = bench_rand(&s);
		if (gmem_populate(g, i * stride, buf, RUN) != (ssize_t)RUN)
			ret = -EIO;
		else if (i % 2)
			ret = convert_range(g, i * stride, RUN, false, NULL);
		out_progress(i + 1);
	}
	out_progress_end();
	free(buf);
	if (ret) {
		gmem_close(g);
		return ret;
	}
	*out = g;
	return 0;
}

int cmd_snapshot(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "alloc", required_argument, NULL, 'a' },
		{ "seed", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t size = GiB, alloc = 256 * MiB, seed = 1, t;
	struct gmem_snapshot_save_args sa = { .progress = on_progress };
	struct gmem *g;
	int c, fd, ret;

	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
		case 'a':
			if (parse_size(optarg, c == 's' ? &size : &alloc))
				return out_usage_error(usage_snapshot,
						       "snapshot: bad %s",
						       argv[optind - 1]);
			break;
		case 'S':
			if (parse_u64(optarg, &seed))
				return out_usage_error(usage_snapshot,
						       "snapshot: bad --seed");
			break;
		case 'h':
			return out_help(usage_snapshot);
		case ':':
			return out_usage_error(usage_snapshot, "snapshot: %s "
					       "needs a value", argv[optind - 1]);
		default:
			return out_usage_error(usage_snapshot, "snapshot: "
					       "unknown option '%s'",
					       argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return out_usage_error(usage_snapshot,
				       "snapshot: expected one FILE");
	if (!size || size % RUN || alloc % RUN || alloc > size)
		return out_usage_error(usage_snapshot, "snapshot: --size and "
				       "--alloc are multiples of 4M, --alloc "
				       "at most --size");
	ret = build(size, alloc, seed, &g);
	if (ret) {
		out_error("building the file: %s", strerror(-ret));
		return EXIT_FAIL;
	}
	fd = open(argv[optind], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		  0644);
	if (fd < 0) {
		out_error("%s: %s", argv[optind], strerror(errno));
		gmem_close(g);
		return EXIT_FAIL;
	}
	out_progress_begin("saving", alloc);
	t = bench_now();
	ret = gmem_snapshot_save(g, fd, &sa);
	t = bench_now() - t;
	out_progress_end();
	if (!ret && close(fd))
		ret = -errno;
	else if (ret)
		close(fd);
	if (ret) {
		out_error("gmem_snapshot_save: %s", strerror(-ret));
		gmem_close(g);
		return EXIT_FAIL;
	}
	out_line("Saved to %s:", argv[optind]);
	print_file(g, sa.bytes, (double)t / 1e9);
	gmem_close(g);
	return EXIT_OK;
}

static const char *restore_error(int err)
{
	switch (err) {
	case -ENOEXEC:
		return "not a libgmem snapshot (bad magic)";
	case -EPROTONOSUPPORT:
		return "a snapshot format version this libgmem cannot read";
	case -EBADMSG:
		return "corrupted: a checksum or a record does not match";
	case -ENODATA:
		return "truncated: the stream ends before its END record";
	case -EMEDIUMTYPE:
		return "a snapshot of another backend or page size";
	default:
		return strerror(-err);
	}
}

int cmd_restore(int argc, char **argv)
{
	struct gmem_snapshot_restore_args ra = {
		.restore_flags = GMEM_RESTORE_AS_SAVED,
		.progress = on_progress,
	};
	struct gmem *g;
	uint64_t t;
	int fd, ret;

	if (argc == 2 && (!strcmp(argv[1], "--help") ||
			  !strcmp(argv[1], "-h")))
		return out_help(usage_restore);
	if (argc != 2 || argv[1][0] == '-')
		return out_usage_error(usage_restore,
				       "restore: expected one FILE");
	fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		out_error("%s: %s", argv[1], strerror(errno));
		return EXIT_FAIL;
	}
	out_progress_begin("restoring", (uint64_t)lseek(fd, 0, SEEK_END));
	lseek(fd, 0, SEEK_SET);
	t = bench_now();
	ret = gmem_snapshot_restore(fd, &ra, &g);
	t = bench_now() - t;
	out_progress_end();
	close(fd);
	if (ret) {
		out_error("%s: gmem_snapshot_restore: %s (%d); no file made",
			  argv[1], restore_error(ret), ret);
		return EXIT_FAIL;
	}
	out_line("Restored from %s:", argv[1]);
	print_file(g, ra.bytes, (double)t / 1e9);
	gmem_close(g);
	return EXIT_OK;
}
