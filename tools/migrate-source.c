// SPDX-License-Identifier: MIT
/*
 * migrate-source.c - the source of "gmemctl migrate" (builtin-migrate.c
 * says what the command does): its file, the writers, the rounds over
 * the socket, the check against the destination and the baseline.
 *
 * Threads: the writers only store into the file (through the host view,
 * or the guest view's addresses from gmem_get_pfn(), lock-free) and
 * count; everything else, output included, is the main thread's.  A save's progress callback runs on the main thread
 * with the file's lock held: it only draws the bar.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "migrate.h"
#include "output.h"

#define SEED_MIX	0x9e3779b97f4a7c15ULL	/* one seed per writer */

/* ---- the file ------------------------------------------------------------ */

/* Run i is shared when it moves floor(i * shared% / 100) on: spread. */
static bool run_shared(const struct mig_opts *o, uint64_t i)
{
	uint64_t s = 100 - o->private_pct;

	return (i + 1) * s / 100 != i * s / 100;
}

static void fill_page(uint64_t *p, uint64_t off, uint64_t *s)
{
	p[0] = off;
	for (size_t w = 1; w < MIG_PAGE / 8; w++)
		p[w] = bench_rand(s);
}

/* Nothing converts or punches while bound: nothing to drop. */
static void on_invalidate(void *owner, uint64_t offset, uint64_t size,
			  unsigned int reason)
{
	(void)owner;
	(void)offset;
	(void)size;
	(void)reason;
}

static const struct gmem_binding_ops bind_ops = {
	.invalidate = on_invalidate,
};

/*
 * The guest has run before the migration starts: each private page was
 * reached once through the binding (in order, so the library maps them
 * ahead).  The writer's gmem_get_pfn() then takes its lock-free path,
 * as a running guest's accesses to memory it already touched do.
 */
static int guest_touch(struct mig_source *s)
{
	uint64_t ps = page_size();
	struct gmem_pfn pfn;
	int ret = 0;

	for (uint64_t i = 0; i < s->nruns[MIG_PRIVATE] && !ret; i++)
		for (uint64_t off = s->runs[MIG_PRIVATE][i];
		     off < s->runs[MIG_PRIVATE][i] + MIG_RUN && !ret;
		     off += ps) {
			do
				ret = gmem_get_pfn(s->b, off / ps,
						   GMEM_ACCESS_PRIVATE, &pfn);
			while (ret == -EAGAIN);
		}
	return ret;
}

/*
 * Populate every page (the file starts private), convert the shared
 * runs, map a host view and bind the whole file (the guest's side).  Pages differ from each other (each starts with its
 * offset), so a page applied at the wrong place is seen by the check;
 * the rest of a run's bytes are one seeded run's, drawn once (drawing
 * 4 GiB of them would take longer than the migration).
 */
int mig_build(struct mig_source *s)
{
	const struct mig_opts *o = s->o;
	struct gmem_create_args args = { .size = o->size,
					 .flags = GMEM_FLAG_MMAP };
	uint64_t nruns = o->size / MIG_RUN, seed = o->seed, t = bench_now();
	uint64_t *buf;
	int ret;

	for (int k = 0; k < MIG_KINDS; k++) {
		s->runs[k] = calloc(nruns, sizeof(uint64_t));
		if (!s->runs[k])
			return -ENOMEM;
	}
	buf = malloc(MIG_RUN);
	if (!buf)
		return -ENOMEM;
	ret = gmem_create(&args, &s->g);
	if (ret) {
		free(buf);
		return ret;
	}
	for (uint64_t p = 0; p < MIG_RUN; p += MIG_PAGE)
		fill_page(buf + p / 8, p, &seed);
	out_progress_begin("populating", nruns);
	for (uint64_t i = 0; i < nruns && !ret; i++) {
		uint64_t off = i * MIG_RUN;
		int k = run_shared(o, i) ? MIG_SHARED : MIG_PRIVATE;

		for (uint64_t p = 0; p < MIG_RUN; p += MIG_PAGE)
			buf[p / 8] = off + p;
		if (gmem_populate(s->g, off, buf, MIG_RUN) != (ssize_t)MIG_RUN)
			ret = -EIO;
		else if (k == MIG_SHARED)
			ret = convert_range(s->g, off, MIG_RUN, false, NULL);
		s->runs[k][s->nruns[k]++] = off;
		out_progress(i + 1);
	}
	out_progress_end();
	free(buf);
	if (!ret)
		ret = gmem_mmap(s->g, 0, o->size, PROT_READ | PROT_WRITE,
				(void **)&s->view);
	if (!ret)
		ret = gmem_bind(s->g, 0, o->size, &bind_ops, s, &s->b);
	if (!ret)
		ret = guest_touch(s);
	s->build_ns = bench_now() - t;
	return ret;
}

/* ---- the writers --------------------------------------------------------- */

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { 0, (long)ms * 1000000L };

	nanosleep(&ts, NULL);
}

static void *writer_main(void *arg)
{
	struct mig_writer *w = arg;
	const double per_ns = (double)w->rate / MIG_PAGE / 1e9;
	double credit = 0, burst = per_ns * MIG_BURST_MS * 1e6;
	uint64_t page[MIG_PAGE / 8], s = w->seed, last = bench_now();

	if (burst < 1)
		burst = 1;
	while (!atomic_load(w->stop)) {
		uint64_t now = bench_now();

		credit += per_ns * (double)(now - last);
		last = now;
		if (credit > burst)
			credit = burst;
		for (; credit >= 1 && !atomic_load(w->stop); credit--) {
			uint64_t r = bench_rand(&s);
			uint64_t off = w->runs[r % w->nruns] + (r >> 32) %
				       (MIG_RUN / MIG_PAGE) * MIG_PAGE;

			fill_page(page, off, &s);
			if (w->kind == MIG_SHARED) {
				memcpy(w->view + off, page, sizeof(page));
			} else {
				/* The guest's store: as KVM reaches a
				 * private page, by its pfn. */
				struct gmem_pfn pfn;
				int ret;

				do
					ret = gmem_get_pfn(w->b, off / w->ps,
							   GMEM_ACCESS_PRIVATE,
							   &pfn);
				while (ret == -EAGAIN);
				if (ret) {
					w->err = ret;
					return NULL;
				}
				memcpy((char *)pfn.addr + off % w->ps, page,
				       sizeof(page));
			}
			atomic_fetch_add(&w->pages, 1);
		}
		sleep_ms(1);
	}
	return NULL;
}

/* The rate goes to each kind in proportion to its share of the pages. */
static int writers_start(struct mig_source *s)
{
	uint64_t total = s->nruns[MIG_SHARED] + s->nruns[MIG_PRIVATE];

	for (int k = 0; k < MIG_KINDS; k++) {
		struct mig_writer *w = &s->w[k];
		int ret;

		*w = (struct mig_writer){
			.view = s->view, .b = s->b, .ps = page_size(),
			.kind = k,
			.runs = s->runs[k], .nruns = s->nruns[k],
			.rate = total ? s->o->rate / total * s->nruns[k] +
				s->o->rate % total * s->nruns[k] / total : 0,
			.seed = (s->o->seed + (uint64_t)k) * SEED_MIX | 1,
			.stop = &s->stop,
		};
		if (!w->nruns || !w->rate)
			continue;
		ret = -pthread_create(&w->tid, NULL, writer_main, w);
		if (ret)
			return ret;
		w->started = true;
	}
	return 0;
}

static uint64_t writers_written(struct mig_source *s)
{
	return (atomic_load(&s->w[MIG_SHARED].pages) +
		atomic_load(&s->w[MIG_PRIVATE].pages)) * MIG_PAGE;
}

static void writers_stop(struct mig_source *s)
{
	atomic_store(&s->stop, true);
	for (int k = 0; k < MIG_KINDS; k++)
		if (s->w[k].started) {
			pthread_join(s->w[k].tid, NULL);
			s->w[k].started = false;
		}
}

/* ---- the rounds ---------------------------------------------------------- */

struct save_ctx {
	char label[48];
	bool bar;
	uint64_t total;			/* contents bytes of the stream */
};

/* Called by the save with the file's lock held: output only. */
static void on_save_progress(void *opaque, uint64_t done, uint64_t total)
{
	struct save_ctx *c = opaque;

	if (!c->bar) {
		out_progress_begin(c->label, total);
		c->bar = true;
	}
	c->total = total;
	out_progress(done);
}

/* The library's errors, in the words of this command. */
static const char *errtext(int err)
{
	switch (err) {
	case -ENOENT:
		return "no tracked full save to continue from (ENOENT)";
	case -ESTALE:
		return "the destination's file is not at the stream's previous "
		       "generation, or an earlier apply failed (ESTALE)";
	case -ENODATA:
		return "the stream ended before its END record (ENODATA)";
	case -EBADMSG:
		return "the stream is corrupted (EBADMSG)";
	case -EPROTO:
		return "out of step: a stream was not read to its end (EPROTO)";
	default:
		return strerror(-err);
	}
}

/* The destination hung up: reap it and say how it ended. */
static void dest_gone(struct mig_source *s, const char *during)
{
	int st;

	if (s->dest > 0 && waitpid(s->dest, &st, 0) == s->dest) {
		s->dest = 0;
		if (WIFSIGNALED(st))
			out_error("migrate: %s: the destination was killed by "
				  "signal %d (%s)", during, WTERMSIG(st),
				  strsignal(WTERMSIG(st)));
		else
			out_error("migrate: %s: the destination exited with "
				  "status %d", during, WEXITSTATUS(st));
		return;
	}
	out_error("migrate: %s: the destination hung up", during);
}

/* 0 with a reply to type in *r, else -errno (said nothing). */
static int read_reply(struct mig_source *s, uint32_t type,
		      struct mig_reply *r)
{
	int ret = mig_read(s->sock, r, sizeof(*r));

	if (!ret && (r->magic != MIG_MAGIC || r->type != type))
		ret = -EPROTO;
	return ret;
}

/*
 * Send a message of type and a save with flags into *r, then read the
 * reply.  0, or -1 once the failure was said: ours first, else the
 * destination's (which, when our save met EPIPE, is why it hung up).
 */
static int send_stream(struct mig_source *s, uint32_t type, uint64_t flags,
		       const char *name, struct mig_round *r)
{
	struct mig_msg m = { .magic = MIG_MAGIC, .type = type,
			     .round = s->nrounds };
	struct save_ctx c = { .bar = false };
	struct gmem_snapshot_save_args sa = {
		.flags = flags, .progress = on_save_progress, .opaque = &c,
	};
	uint64_t t = bench_now(), w = writers_written(s);
	struct mig_reply rep;
	int ret, rret;

	snprintf(c.label, sizeof(c.label), "%s", name);
	ret = mig_write(s->sock, &m, sizeof(m));
	if (!ret)
		ret = gmem_snapshot_save(s->g, s->sock, &sa);
	if (c.bar)
		out_progress_end();
	if (ret && ret != -EPIPE && ret != -ECONNRESET) {
		/* Our failure: the destination sees the stream end (no
		 * END record) and says so, which is no news. */
		shutdown(s->sock, SHUT_WR);
		out_error("migrate: %s: gmem_snapshot_save: %s", name,
			  errtext(ret));
		return -1;
	}
	rret = read_reply(s, type, &rep);
	r->ns = bench_now() - t;
	r->written = writers_written(s) - w;
	r->data = c.total;
	r->stream = sa.bytes;
	if (rret == -EPROTO) {
		out_error("migrate: %s: the destination's reply is out of "
			  "step", name);
		return -1;
	}
	if (rret) {
		dest_gone(s, name);
		return -1;
	}
	if (rep.status) {
		out_error("migrate: %s: the destination's %s failed: %s", name,
			  mig_what_name(rep.what), errtext(rep.status));
		return -1;
	}
	if (ret) {
		out_error("migrate: %s: gmem_snapshot_save: %s", name,
			  errtext(ret));
		return -1;
	}
	r->apply_ns = rep.ns;
	return 0;
}

static int send_round(struct mig_source *s, uint32_t type, uint64_t flags,
		      const char *kind)
{
	struct mig_round *r = &s->rounds[s->nrounds];
	char name[48];

	snprintf(name, sizeof(name), "round %u (%s)", s->nrounds, kind);
	r->kind = kind;
	if (send_stream(s, type, flags, name, r))
		return -1;
	s->nrounds++;
	return 0;
}

/* ---- the check ----------------------------------------------------------- */

static void on_digest_progress(uint64_t done)
{
	out_progress(done);
}

/* Append "what" to the list of differences. */
static void differs(struct mig_source *s, const char *what)
{
	size_t n = strlen(s->differs);

	snprintf(s->differs + n, sizeof(s->differs) - n, "%s%s",
		 n ? ", " : "", what);
}

static void compare(struct mig_source *s, const struct mig_digest *a,
		    const uint64_t *ac, const struct mig_digest *b,
		    const uint64_t *bc)
{
	uint64_t bad = 0, first = 0;
	char buf[128];

	if (a->size != b->size)
		differs(s, "size");
	if (a->allocated != b->allocated || a->data_runs != b->data_runs ||
	    a->alloc_hash != b->alloc_hash)
		differs(s, "allocation");
	if (a->shared != b->shared || a->priv != b->priv ||
	    a->state_runs != b->state_runs || a->state_hash != b->state_hash)
		differs(s, "shared/private state");
	if (a->poisoned != b->poisoned)
		differs(s, "poisoned pages");
	for (uint64_t i = 0; i < a->nchunks && i < b->nchunks; i++)
		if (ac[i] != bc[i] && !bad++)
			first = i;
	if (bad) {
		snprintf(buf, sizeof(buf), "contents (%s in %s chunks, the "
			 "first at 0x%llx)", fmt_bytes(bad * MIG_CHUNK),
			 fmt_count(bad),
			 (unsigned long long)(first * MIG_CHUNK));
		differs(s, buf);
	}
	s->equal = !s->differs[0];
}

/*
 * Both sides hash their file at the same time; the source compares.
 * 0 (equal or not: s->equal), or -1 once a failure was said.
 */
static int check(struct mig_source *s)
{
	struct mig_msg m = { .magic = MIG_MAGIC, .type = MIG_CHECK };
	struct mig_digest mine, theirs;
	uint64_t *mc = NULL, *tc = NULL;
	struct mig_reply rep;
	int ret;

	ret = mig_write(s->sock, &m, sizeof(m));
	if (ret) {
		dest_gone(s, "check");
		return -1;
	}
	out_progress_begin("checking", s->o->size);
	ret = mig_digest(s->g, &mine, &mc, on_digest_progress);
	out_progress_end();
	if (ret) {
		out_error("migrate: check: reading the source's file: %s",
			  strerror(-ret));
		return -1;
	}
	ret = read_reply(s, MIG_CHECK, &rep);
	if (!ret && rep.status) {
		out_error("migrate: check: the destination failed %s: %s",
			  mig_what_name(rep.what), strerror(-rep.status));
		free(mc);
		return -1;
	}
	if (!ret)
		ret = mig_read(s->sock, &theirs, sizeof(theirs));
	if (!ret && theirs.nchunks > mine.nchunks)
		ret = -EPROTO;		/* sizes differ: compare() says so */
	if (!ret) {
		tc = calloc(theirs.nchunks ? theirs.nchunks : 1, sizeof(*tc));
		ret = tc ? mig_read(s->sock, tc, theirs.nchunks * sizeof(*tc)) :
			   -ENOMEM;
	}
	if (ret) {
		if (ret == -EPROTO)
			out_error("migrate: check: the destination's file is "
				  "larger than the source's");
		else
			dest_gone(s, "check");
		free(mc);
		free(tc);
		return -1;
	}
	compare(s, &mine, mc, &theirs, tc);
	if (mine.parked || theirs.parked)
		out_warn("migrate: check: %s parked pages (gmem_stat(3)): "
			 "libgmem keeps their contents aside, the backing "
			 "read here may not hold them",
			 fmt_count(mine.parked + theirs.parked));
	free(mc);
	free(tc);
	return 0;
}

/* ---- the migration ------------------------------------------------------- */

/*
 * For the tests: GMEMCTL_MIGRATE_TAMPER=OFFSET changes the source's page
 * at OFFSET after the last round, so that the check has a difference to
 * find (a check that cannot fail proves nothing).
 */
static void tamper(struct mig_source *s)
{
	const char *env = getenv("GMEMCTL_MIGRATE_TAMPER");
	uint64_t off, attr, len, page[MIG_PAGE / 8] = { 0 };

	if (!env || parse_size(env, &off) || off >= s->o->size)
		return;
	off &= ~(uint64_t)(MIG_PAGE - 1);
	if (gmem_get_attributes(s->g, off, &attr, &len))
		return;
	page[0] = ~off;
	if (attr & GMEM_ATTR_PRIVATE)
		gmem_populate(s->g, off, page, sizeof(page));
	else
		memcpy(s->view + off, page, sizeof(page));
}

/* Steps 3 to 6 of builtin-migrate.c's top comment. */
int mig_migrate(struct mig_source *s)
{
	const struct mig_opts *o = s->o;
	struct mig_msg bye = { .magic = MIG_MAGIC, .type = MIG_BYE };
	struct mig_round base = { .kind = "baseline" };
	uint64_t t0, tw, td;
	int ret;

	ret = gmem_dirty_start(s->g, 0);
	if (ret == -EOPNOTSUPP || ret == -ENOSYS) {
		out_error("migrate: skipped: dirty tracking is not available "
			  "on this kernel (gmem_dirty_start: %s)",
			  strerror(-ret));
		return EXIT_SKIP;
	}
	if (ret) {
		out_error("migrate: gmem_dirty_start: %s", strerror(-ret));
		return EXIT_FAIL;
	}
	tw = bench_now();
	ret = writers_start(s);
	if (ret) {
		writers_stop(s);
		out_error("migrate: starting the writers: %s", strerror(-ret));
		return EXIT_FAIL;
	}
	/* Pre-copy, the guest running. */
	t0 = bench_now();
	if (send_round(s, MIG_FULL, 0, "full"))
		goto err_writers;
	while (s->nrounds <= o->max_rounds &&
	       !(s->nrounds > 1 &&
		 s->rounds[s->nrounds - 1].data < o->converge))
		if (send_round(s, MIG_DELTA, GMEM_SAVE_DIRTY, "incremental"))
			goto err_writers;
	s->converged = s->nrounds > 1 &&
		       s->rounds[s->nrounds - 1].data < o->converge;
	s->live_ns = bench_now() - t0;

	/* Stop and copy: the guest paused until the destination has it. */
	td = bench_now();
	writers_stop(s);
	s->writer_ns = bench_now() - tw;
	s->written = writers_written(s);
	if (send_round(s, MIG_DELTA, GMEM_SAVE_DIRTY, "stop-and-copy"))
		return EXIT_FAIL;
	s->downtime_ns = bench_now() - td;
	s->total_ns = bench_now() - t0;
	for (int k = 0; k < MIG_KINDS; k++)
		if (s->w[k].err) {
			out_error("migrate: the %s writer stopped: %s",
				  k == MIG_SHARED ? "shared" : "guest's",
				  strerror(-s->w[k].err));
			return EXIT_FAIL;
		}
	ret = gmem_dirty_stop(s->g);
	if (ret) {
		out_error("migrate: gmem_dirty_stop: %s", strerror(-ret));
		return EXIT_FAIL;
	}
	tamper(s);
	if (check(s))
		return EXIT_FAIL;

	/* The baseline: everything, with the guest stopped. */
	if (send_stream(s, MIG_BASELINE, 0, "baseline (full copy)", &base))
		return EXIT_FAIL;
	s->full_ns = base.ns;
	s->full_data = base.data;
	mig_write(s->sock, &bye, sizeof(bye));
	return EXIT_OK;

err_writers:
	writers_stop(s);
	return EXIT_FAIL;
}

void mig_source_free(struct mig_source *s)
{
	if (s->b)
		gmem_unbind(s->b);
	if (s->view)
		gmem_munmap(s->g, s->view, s->o->size);
	if (s->g)
		gmem_close(s->g);
	for (int k = 0; k < MIG_KINDS; k++)
		free(s->runs[k]);
	free(s->rounds);
}
