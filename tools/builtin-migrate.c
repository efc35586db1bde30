// SPDX-License-Identifier: MIT
/*
 * builtin-migrate.c - "gmemctl migrate": pre-copy live migration of a
 * guest's memory to another process, with dirty tracking
 * (gmem_dirty_start(3)) and incremental snapshots (GMEM_SAVE_DIRTY,
 * gmem_snapshot_apply(3)), while writers dirty it.
 *
 * The source (this process) forks the destination first, before it has
 * a file, a thread or a view to pass on; the two talk over a socketpair
 * (migrate.h).  Then the source:
 *   1. builds a memfd-backed file of --size bytes, every page populated
 *      with seeded bytes, --private percent of it (in 4 MiB runs spread
 *      evenly) left private and the rest converted shared, maps one host
 *      view of it and binds it whole (gmem_bind(), the guest's side, as
 *      a KVM memslot), every private page reached once;
 *   2. starts two writers, paced to --rate bytes/s between them in
 *      proportion to the two kinds, storing whole pages: one into random
 *      shared pages through the host view (a device, the VMM), the other
 *      into random private pages at the addresses gmem_get_pfn() gives
 *      (the guest, as KVM reaches its memory: lock-free, so it does not
 *      wait for a save);
 *   3. starts dirty tracking, sends a full save (round 0), then
 *      incremental saves while the writers run, until a round's
 *      contents are below --converge or --max-rounds incremental rounds
 *      were sent;
 *   4. stops the writers (the guest pauses: downtime starts), sends the
 *      last incremental save, and the destination applies it and
 *      replies (downtime ends);
 *   5. both sides compute a digest of their file (migrate.h: state runs,
 *      allocation, every MiB of contents read from the backing) and the
 *      source compares them;
 *   6. the baseline, in the same run: a full save of the same file,
 *      writers stopped, restored by the destination over the same
 *      socket, measured like the downtime: the pause of a VMM that
 *      stops the guest and copies everything.
 *
 * Times are the source's clock: a round runs from its message to the
 * destination's reply, so it includes the apply's tail.
 *
 * This file is the command: its options, the destination's fork and the
 * report; migrate-source.c does the source's steps, migrate-dest.c the
 * destination's and the digest (migrate.h has the protocol).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "migrate.h"
#include "output.h"

static const char usage[] =
"usage: gmemctl migrate [--size SIZE] [--rate RATE] [--converge SIZE]\n"
"                       [--max-rounds N] [--private PERCENT] [--seed N]\n"
"                       [--json | --bench]\n"
"\n"
"Pre-copy live migration of a guest's memory to another process over a\n"
"socket: a memfd-backed file of --size bytes, every page populated,\n"
"--private percent of it private and the rest shared, is copied to a\n"
"second process (forked) while two writers dirty --rate bytes per\n"
"second of it (shared pages through a host view, private pages through\n"
"the guest view of gmem_get_pfn(), as the guest would).  Round 0 sends\n"
"a full snapshot, each further round an incremental one (the pages\n"
"written since the last), until a round sends less than --converge\n"
"bytes of contents or --max-rounds rounds were sent; then the writers\n"
"stop (the downtime starts), the last incremental snapshot is sent and\n"
"applied, and the downtime ends when the destination confirms.  Both\n"
"processes then hash their file (state, allocation, every page's\n"
"contents, private ones included) and the results are compared.  Last,\n"
"as the baseline, the same file is sent whole with the writers stopped:\n"
"what a VMM without dirty tracking would pause the guest for.\n"
"\n"
"Prints the rounds (contents and stream bytes, time, what the writers\n"
"wrote meanwhile) and a summary: rounds, the stop-and-copy size, the\n"
"downtime against the full copy, and whether the destination equals\n"
"the source.\n"
"\n"
"options:\n"
"  --size SIZE        guest memory, a multiple of 4M (default 1G)\n"
"  --rate RATE        bytes per second the writers dirty (default 64M;\n"
"                     0: nothing is written)\n"
"  --converge SIZE    stop and copy once a round sends less than this\n"
"                     (default: what --rate writes in 125 ms, at least\n"
"                     1M)\n"
"  --max-rounds N     incremental rounds at most while the writers run\n"
"                     (default 30, at most 1000; 0: the full copy, then\n"
"                     stop and copy)\n"
"  --private PERCENT  of the memory private, 0 to 100 (default 50)\n"
"  --seed N           seed of the contents and of the pages written, 1\n"
"                     or more (default 1)\n"
"  --json             print the results as one JSON document\n"
"  --bench            also print the benchmark lines (name=... ratio=...)\n"
"                     of make bench\n"
"  -h, --help         this text\n"
"\n"
"Sizes take K, M, G, T suffixes (powers of 1024); numbers are decimal or\n"
"hex with 0x.\n"
"\n"
"exit status: 0 ok, 1 failure, 2 usage error, 77 skipped (no dirty\n"
"tracking on this kernel); a destination that differs from the source\n"
"is a failure.\n";

/* ---- the report ---------------------------------------------------------- */

static double per_s(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes * 1e9 / (double)ns : 0;
}

static void print_rounds(struct mig_source *s)
{
	struct out_table *t = NULL;

	if (out_mode() == OUT_TEXT)
		t = out_table_new("Rounds", 7, "round", "kind", "contents",
				  "stream", "time", "rate",
				  "written meanwhile");
	out_arr_begin("rounds");
	for (unsigned int i = 0; i < s->nrounds; i++) {
		const struct mig_round *r = &s->rounds[i];
		char n[16], rate[48];

		snprintf(n, sizeof(n), "%u", i);
		snprintf(rate, sizeof(rate), "%s/s",
			 fmt_bytes((uint64_t)per_s(r->stream, r->ns)));
		if (t)
			out_table_row(t, n, r->kind, fmt_bytes(r->data),
				      fmt_bytes(r->stream),
				      fmt_ns((double)r->ns), rate,
				      fmt_bytes(r->written));
		out_obj_begin(NULL);
		out_field_u64("round", i);
		out_field_str("kind", r->kind);
		out_field_u64("contents_bytes", r->data);
		out_field_u64("stream_bytes", r->stream);
		out_field_u64("ns", r->ns);
		out_field_u64("apply_ns", r->apply_ns);
		out_field_u64("written_bytes", r->written);
		out_obj_end();
	}
	out_arr_end();
	out_table_print(t);
}

static void print_summary(struct mig_source *s)
{
	const struct mig_opts *o = s->o;
	const struct mig_round *last = &s->rounds[s->nrounds - 1];
	uint64_t data = 0, stream = 0;
	struct out_table *t = NULL;
	double ratio = s->full_ns ? (double)s->downtime_ns /
				    (double)s->full_ns : 0;
	double wrate = per_s(s->written, s->writer_ns);
	char conv[160], rtxt[32], wtxt[48];

	for (unsigned int i = 0; i < s->nrounds; i++) {
		data += s->rounds[i].data;
		stream += s->rounds[i].stream;
	}
	if (s->converged)
		snprintf(conv, sizeof(conv), "round %u sent %s < --converge "
			 "%s", s->nrounds - 2,
			 fmt_bytes(s->rounds[s->nrounds - 2].data),
			 fmt_bytes(o->converge));
	else
		snprintf(conv, sizeof(conv), "--max-rounds %llu reached, "
			 "the last sent %s (--converge %s)",
			 (unsigned long long)o->max_rounds,
			 fmt_bytes(s->rounds[s->nrounds - 2].data),
			 fmt_bytes(o->converge));
	/* fmt_ratio() has two decimals: a short downtime needs more. */
	snprintf(rtxt, sizeof(rtxt), ratio < 0.1 ? "%.2gx" : "%.2fx", ratio);
	snprintf(wtxt, sizeof(wtxt), "%s/s", fmt_bytes((uint64_t)wrate));
	if (out_mode() == OUT_TEXT)
		t = out_table_new("Summary", 3, "", "measured", "");
	out_obj_begin("summary");
	out_metric(t, "rounds", s->nrounds, "rounds", fmt_count(s->nrounds),
		   "full copy, %u incremental while the writers ran, "
		   "stop-and-copy", s->nrounds - 2);
	if (t)
		out_table_row(t, "converged", s->converged ? "yes" : "no",
			      conv);
	out_field_bool("converged", s->converged);
	out_metric(t, "stop_copy_bytes", (double)last->data,
		   "stop-and-copy size", fmt_bytes(last->data),
		   "contents; the stream %s", fmt_bytes(last->stream));
	out_metric(t, "downtime_ns", (double)s->downtime_ns, "downtime",
		   fmt_ns((double)s->downtime_ns), "writers stopped to the "
		   "destination's confirmation");
	out_metric(t, "full_stop_copy_ns", (double)s->full_ns,
		   "full stop-and-copy", fmt_ns((double)s->full_ns),
		   "the baseline: the same file, %s of contents, sent whole "
		   "with the writers stopped", fmt_bytes(s->full_data));
	out_metric(t, "downtime_ratio", ratio, "downtime / full stop",
		   rtxt, "%s", ratio > 0 && ratio < 1 ?
		   "the guest pauses this fraction of a full copy's time" :
		   "");
	out_metric(t, "migration_ns", (double)s->total_ns, "migration time",
		   fmt_ns((double)s->total_ns), "%s pre-copy, then the "
		   "downtime", fmt_ns((double)s->live_ns));
	out_metric(t, "contents_bytes", (double)data, "contents sent",
		   fmt_bytes(data), "%.2fx the %s guest; streams %s",
		   (double)data / (double)o->size, fmt_bytes(o->size),
		   fmt_bytes(stream));
	out_metric(t, "writer_rate", wrate, "writers' rate", wtxt,
		   "of --rate %s/s: %s written shared, %s private",
		   fmt_bytes(o->rate),
		   fmt_bytes(atomic_load(&s->w[MIG_SHARED].pages) * MIG_PAGE),
		   fmt_bytes(atomic_load(&s->w[MIG_PRIVATE].pages) *
			     MIG_PAGE));
	if (t)
		out_table_row(t, "destination equals source",
			      s->equal ? "yes" : "NO", s->equal ?
			      "state, allocation and every page's contents" :
			      s->differs);
	out_field_bool("equal", s->equal);
	if (!s->equal)
		out_field_str("differs", s->differs);
	out_obj_end();
	out_table_print(t);
}

/* make bench's lines (bench/common.h): ours against the full copy. */
static void print_bench(struct mig_source *s)
{
	const struct mig_round *last = &s->rounds[s->nrounds - 1];

	printf("# migrate size=%llu rate=%llu private=%llu%% rounds=%u "
	       "incremental=%u converged=%s stop_copy_bytes=%llu equal=%s\n",
	       (unsigned long long)s->o->size, (unsigned long long)s->o->rate,
	       (unsigned long long)s->o->private_pct, s->nrounds,
	       s->nrounds - 2, s->converged ? "yes" : "no",
	       (unsigned long long)last->data, s->equal ? "yes" : "no");
	bench_report_time("migrate_downtime", 1, (double)s->downtime_ns,
			  "full_stop_copy", (double)s->full_ns, NO_TARGET);
	bench_report_bytes("migrate_stop_copy", last->data, "full_stop_copy",
			   s->full_data, NO_TARGET);
}

/* ---- the command --------------------------------------------------------- */

/*
 * Fork the destination: before the source has a file, a view or a
 * thread, so the child inherits none of them.  It dies with the source.
 */
static int fork_destination(struct mig_source *s)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	fflush(stdout);
	fflush(stderr);
	s->dest = fork();
	if (s->dest < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (!s->dest) {
		close(sv[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		out_set_mode(OUT_QUIET);	/* stdout is the source's */
		_exit(mig_destination(sv[1]));
	}
	close(sv[1]);
	s->sock = sv[0];
	return 0;
}

static int run(const struct mig_opts *o)
{
	struct mig_source s = { .o = o, .sock = -1 };
	int ret, rc = EXIT_FAIL, st;

	s.rounds = calloc(o->max_rounds + 2, sizeof(*s.rounds));
	if (!s.rounds) {
		out_error("migrate: out of memory");
		return EXIT_FAIL;
	}
	/* The saves write to the socket with writev(): a destination that
	 * died is an EPIPE to report, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	ret = fork_destination(&s);
	if (ret) {
		out_error("migrate: starting the destination: %s",
			  strerror(-ret));
		free(s.rounds);
		return EXIT_FAIL;
	}
	out_doc_begin();
	out_field_str("command", "migrate");
	out_field_u64("size", o->size);
	out_field_u64("rate", o->rate);
	out_field_u64("converge", o->converge);
	out_field_u64("max_rounds", o->max_rounds);
	out_field_u64("private_percent", o->private_pct);
	out_field_u64("seed", o->seed);
	out_line("migrate: a %s guest, %llu%% private, copied to another "
		 "process over a socket while writers dirty %s per second "
		 "of it.", fmt_bytes(o->size),
		 (unsigned long long)o->private_pct, fmt_bytes(o->rate));
	ret = mig_build(&s);
	if (ret) {
		out_error("migrate: building the source's file: %s",
			  strerror(-ret));
		goto out;
	}
	out_detail("source: %s populated (%s shared, %s private) in %s; "
		   "destination: process %d", fmt_bytes(o->size),
		   fmt_bytes(s.nruns[MIG_SHARED] * MIG_RUN),
		   fmt_bytes(s.nruns[MIG_PRIVATE] * MIG_RUN),
		   fmt_ns((double)s.build_ns), (int)s.dest);
	out_field_u64("build_ns", s.build_ns);
	rc = mig_migrate(&s);
	if (rc != EXIT_OK)
		goto out;
	print_rounds(&s);
	print_summary(&s);
	if (!s.equal) {
		out_error("migrate: the destination differs from the source: "
			  "%s", s.differs);
		rc = EXIT_FAIL;
	} else {
		out_line("\nmigrate: the destination equals the source.");
	}
	if (o->bench && out_mode() == OUT_TEXT)
		print_bench(&s);
out:
	out_field_bool("ok", rc == EXIT_OK);
	out_doc_end();
	close(s.sock);
	if (s.dest > 0 && waitpid(s.dest, &st, 0) == s.dest && rc == EXIT_OK &&
	    !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
		out_error("migrate: the destination ended badly (status 0x%x)",
			  st);
		rc = EXIT_FAIL;
	}
	mig_source_free(&s);
	return rc;
}

static int bad_size(const char *opt, const char *arg, int err)
{
	return out_usage_error(usage, "migrate: bad %s '%s': %s", opt, arg,
			       err == -ERANGE ? parse_error(err) :
			       "a size is bytes, decimal or hex with 0x, "
			       "with an optional K, M, G or T");
}

int cmd_migrate(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "rate", required_argument, NULL, 'r' },
		{ "converge", required_argument, NULL, 'c' },
		{ "max-rounds", required_argument, NULL, 'm' },
		{ "private", required_argument, NULL, 'p' },
		{ "seed", required_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'j' },
		{ "bench", no_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mig_opts o = { .size = GiB, .rate = 64 * MiB, .max_rounds = 30,
			      .private_pct = 50, .seed = 1 };
	bool converge_set = false;
	int c, err;

	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
		case 'r':
		case 'c':
			err = parse_size(optarg, c == 's' ? &o.size :
					 c == 'r' ? &o.rate : &o.converge);
			if (err)
				return bad_size(c == 's' ? "--size" :
						c == 'r' ? "--rate" :
						"--converge", optarg, err);
			converge_set |= c == 'c';
			break;
		case 'm':
			err = parse_u64(optarg, &o.max_rounds);
			if (err || o.max_rounds > MIG_MAX_ROUNDS)
				return out_usage_error(usage, "migrate: bad "
						       "--max-rounds '%s': %s",
						       optarg, err ?
						       parse_error(err) :
						       "at most 1000");
			break;
		case 'p':
			err = parse_u64(optarg, &o.private_pct);
			if (err || o.private_pct > 100)
				return out_usage_error(usage, "migrate: bad "
						       "--private '%s': a "
						       "percentage, 0 to 100",
						       optarg);
			break;
		case 'S':
			err = parse_u64(optarg, &o.seed);
			if (err || !o.seed)
				return out_usage_error(usage, "migrate: bad "
						       "seed '%s': %s", optarg,
						       err ? parse_error(err) :
						       "1 or more (0 would "
						       "make the sequence all "
						       "zeros)");
			break;
		case 'j':
			o.json = true;
			break;
		case 'b':
			o.bench = true;
			break;
		case 'h':
			return out_help(usage);
		case ':':
			return out_usage_error(usage, "migrate: %s needs a "
					       "value", argv[optind - 1]);
		default:
			return out_usage_error(usage, "migrate: unknown option "
					       "'%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return out_usage_error(usage, "migrate: unexpected argument "
				       "'%s'", argv[optind]);
	if (!o.size || o.size % MIG_RUN)
		return out_usage_error(usage, "migrate: --size must be a "
				       "multiple of 4M (the layout's runs), "
				       "at least 4M");
	if (o.json && o.bench)
		return out_usage_error(usage, "migrate: --json or --bench, "
				       "not both (the JSON document has the "
				       "benchmark's numbers)");
	if (!converge_set)
		o.converge = o.rate / 8 > MiB ? o.rate / 8 : MiB;
	out_init(o.json ? OUT_JSON : OUT_TEXT);
	return run(&o);
}
