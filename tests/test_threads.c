// SPDX-License-Identifier: MIT
/*
 * test_threads.c - libgmem under concurrent callers.
 *
 *  - private_never_readable: a converter flips pages while readers probe
 *    them through views.  An epoch counter, odd while the page is private
 *    (bumped after the to-private call returns and before the to-shared
 *    call starts), tells a reader when the page was private for the whole
 *    of its probe: then the probe must fault.  Any successful read must
 *    return the data written while shared.
 *  - disjoint_workers: threads convert, write, pin and punch their own
 *    page ranges of one file at random, each against its own model of
 *    state and contents; afterwards the file's stats match a recount.
 *  - views_come_and_go: views are created and removed while another
 *    thread converts; every new view agrees with the state.
 * Both view guards are covered (variants; vma mode only on the kvm
 * backend).
 */
#include <linux/falloc.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "gmem.h"
#include "harness.h"
#include "gmem_test.h"

#define RUN_MS	1500

static size_t ps;

FIXTURE(mt) {
	struct gmem *g;
	char *view;
	uint64_t npages;
};

FIXTURE_VARIANT(mt) {
	uint64_t flags;
};

FIXTURE_VARIANT_ADD(mt, uffd) {
	.flags = GMEM_FLAG_MMAP,
};

FIXTURE_VARIANT_ADD(mt, vma) {
	.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
};

FIXTURE_SETUP(mt)
{
	struct gmem_create_args args = { .flags = variant->flags };

	GMEM_TEST_REQUIRE_BACKEND();
	ps = (size_t)getpagesize();
	self->npages = 256;
	args.size = self->npages * ps;
	ASSERT_EQ(gmem_test_create(&args, &self->g), 0);
	ASSERT_EQ(gmem_mmap(self->g, 0, args.size, PROT_READ | PROT_WRITE,
			    (void **)&self->view), 0);
}

FIXTURE_TEARDOWN(mt)
{
	gmem_munmap(self->g, self->view, self->npages * ps);
	gmem_close(self->g);
}

#define WATCHED	4

struct flip {
	struct gmem *g;
	char *view;
	atomic_uint epoch[WATCHED];	/* odd: private */
	atomic_int stop;
	atomic_long checked;		/* probes during a private epoch */
	atomic_long leaks;		/* such probes that read data */
	atomic_long corrupt;		/* successful reads of wrong data */
	atomic_long errors;
};

static void *flipper(void *arg)
{
	struct flip *f = arg;
	uint64_t seed = 88172645463325252ULL;

	while (!atomic_load(&f->stop)) {
		unsigned int i = (unsigned int)(rnd(&seed) % WATCHED);

		if (convert(f->g, i * ps, ps, 1))
			atomic_fetch_add(&f->errors, 1);
		atomic_fetch_add(&f->epoch[i], 1);		/* odd */
		usleep(50);
		atomic_fetch_add(&f->epoch[i], 1);		/* even */
		if (convert(f->g, i * ps, ps, 0))
			atomic_fetch_add(&f->errors, 1);
	}
	return NULL;
}

static void *prober(void *arg)
{
	struct flip *f = arg;
	uint64_t seed = (uint64_t)(uintptr_t)&seed | 1;

	while (!atomic_load(&f->stop)) {
		unsigned int i = (unsigned int)(rnd(&seed) % WATCHED);
		unsigned int e1 = atomic_load(&f->epoch[i]);
		uint8_t val = 0;
		int sig = harness_probe_read_u8(f->view + i * ps + 7, &val);
		unsigned int e2 = atomic_load(&f->epoch[i]);

		if (!sig && val != (uint8_t)('a' + i))
			atomic_fetch_add(&f->corrupt, 1);
		if (e1 == e2 && (e1 & 1)) {
			atomic_fetch_add(&f->checked, 1);
			if (!sig)
				atomic_fetch_add(&f->leaks, 1);
		}
	}
	return NULL;
}

TEST_F_T(mt, private_never_readable, 60)
{
	struct flip f = { .g = self->g, .view = self->view };
	pthread_t conv, probe[3];
	uint64_t end;

	ASSERT_EQ(convert(self->g, 0, WATCHED * ps, 0), 0);
	for (unsigned int i = 0; i < WATCHED; i++)
		memset(self->view + i * ps, 'a' + (int)i, ps);
	ASSERT_EQ(pthread_create(&conv, NULL, flipper, &f), 0);
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(pthread_create(&probe[i], NULL, prober, &f), 0);
	end = now_ms() + RUN_MS;
	while (now_ms() < end)
		usleep(10000);
	atomic_store(&f.stop, 1);
	pthread_join(conv, NULL);
	for (int i = 0; i < 3; i++)
		pthread_join(probe[i], NULL);
	TH_LOG("%ld probes while private, %ld leaks, %ld corrupt reads",
	       atomic_load(&f.checked), atomic_load(&f.leaks),
	       atomic_load(&f.corrupt));
	ASSERT_EQ(atomic_load(&f.errors), 0);
	ASSERT_GT(atomic_load(&f.checked), 0);
	ASSERT_EQ(atomic_load(&f.leaks), 0);
	ASSERT_EQ(atomic_load(&f.corrupt), 0);
}

#define WORKERS		3
#define SLICE		64	/* pages per worker */

struct worker {
	struct gmem *g;
	char *view;
	uint64_t first;		/* first page of this worker's slice */
	uint64_t seed;
	atomic_int *stop;
	unsigned char priv[SLICE];
	unsigned char data[SLICE];	/* byte at offset 0 of each page */
	unsigned char pins[SLICE];
	long ops, failures;
};

static void fail(struct worker *w, const char *what, uint64_t page)
{
	if (w->failures++ < 5)
		fprintf(stdout, "# worker %llu: %s at page %llu\n",
			(unsigned long long)w->first / SLICE, what,
			(unsigned long long)page);
}

static void work_one(struct worker *w)
{
	uint64_t r = rnd(&w->seed);
	unsigned int i = (unsigned int)(r % SLICE), n = 1 + (r >> 8) % 4;
	uint64_t page = w->first + i;
	char *addr = w->view + page * ps;
	uint8_t val;
	void *pa;

	if (i + n > SLICE)
		n = SLICE - i;
	switch ((r >> 16) % 6) {
	case 0: {	/* to private (unless pinned) */
		int pinned = 0, ret;

		for (unsigned int k = 0; k < n; k++)
			pinned |= w->pins[i + k] && !w->priv[i + k];
		ret = convert(w->g, page * ps, n * ps, 1);
		if (ret != (pinned ? -EAGAIN : 0))
			fail(w, "to private", page);
		if (!ret)
			memset(&w->priv[i], 1, n);
		break;
	}
	case 1:		/* to shared */
		if (convert(w->g, page * ps, n * ps, 0))
			fail(w, "to shared", page);
		memset(&w->priv[i], 0, n);
		break;
	case 2:		/* write or check through the view */
		if (w->priv[i]) {
			if (harness_probe_read_u8(addr, &val) != SIGBUS)
				fail(w, "private page readable", page);
		} else if (harness_probe_read_u8(addr, &val) ||
			   val != w->data[i]) {
			fail(w, "shared data lost", page);
		} else {
			w->data[i] = (unsigned char)r;
			*addr = (char)r;
		}
		break;
	case 3:		/* punch: contents become zero, state stays */
		if (gmem_fallocate(w->g, FALLOC_FL_KEEP_SIZE |
				   FALLOC_FL_PUNCH_HOLE, page * ps, ps))
			fail(w, "punch", page);
		w->data[i] = 0;
		break;
	case 4:		/* pin one shared page */
		if (w->priv[i]) {
			if (gmem_pin(w->g, page * ps, ps, &pa) != -EFAULT)
				fail(w, "pin of private page", page);
		} else if (w->pins[i] < 3) {
			if (gmem_pin(w->g, page * ps, ps, &pa))
				fail(w, "pin", page);
			else
				w->pins[i]++;
		}
		break;
	default:	/* unpin */
		if (gmem_unpin(w->g, page * ps, ps) !=
		    (w->pins[i] ? 0 : -EINVAL))
			fail(w, "unpin", page);
		if (w->pins[i])
			w->pins[i]--;
		break;
	}
	w->ops++;
}

static void *worker_fn(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load(w->stop))
		work_one(w);
	return NULL;
}

TEST_F_T(mt, disjoint_workers, 60)
{
	struct worker w[WORKERS];
	pthread_t t[WORKERS];
	atomic_int stop = 0;
	struct gmem_stats st;
	uint64_t priv = 0, ranges = 0, attr, run, off;
	int init_private = !(variant->flags & GMEM_FLAG_INIT_SHARED);

	for (int k = 0; k < WORKERS; k++) {
		w[k] = (struct worker){
			.g = self->g, .view = self->view,
			.first = (uint64_t)k * SLICE,
			.seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(k + 1),
			.stop = &stop,
		};
		memset(w[k].priv, init_private, SLICE);
		ASSERT_EQ(pthread_create(&t[k], NULL, worker_fn, &w[k]), 0);
	}
	usleep(RUN_MS * 1000);
	atomic_store(&stop, 1);
	for (int k = 0; k < WORKERS; k++) {
		pthread_join(t[k], NULL);
		TH_LOG("worker %d: %ld operations, %ld failures", k, w[k].ops,
		       w[k].failures);
		ASSERT_EQ(w[k].failures, 0);
		ASSERT_GT(w[k].ops, 100);
	}
	/* The file agrees with the workers' models and with itself. */
	for (off = 0; off < self->npages * ps; off += run) {
		ASSERT_EQ(gmem_get_attributes(self->g, off, &attr, &run), 0);
		ranges++;
		if (attr)
			priv += run;
	}
	for (int k = 0; k < WORKERS; k++) {
		for (unsigned int i = 0; i < SLICE; i++) {
			ASSERT_EQ(gmem_get_attributes(self->g,
					(w[k].first + i) * ps, &attr, &run), 0);
			ASSERT_EQ(!!attr, w[k].priv[i]);
			while (w[k].pins[i]--)
				ASSERT_EQ(gmem_unpin(self->g,
					(w[k].first + i) * ps, ps), 0);
		}
	}
	ASSERT_EQ(gmem_stat(self->g, &st, sizeof(st)), 0);
	ASSERT_EQ(st.priv, priv);
	ASSERT_EQ(st.shared + st.priv, st.size);
	ASSERT_EQ(st.nr_ranges, ranges);
	ASSERT_EQ(st.pins, 0);
	ASSERT_EQ(st.pinned, 0);
}

struct converter {
	struct gmem *g;
	atomic_int stop;
	long n;
};

static void *convert_loop(void *arg)
{
	struct converter *c = arg;
	uint64_t seed = 1234567;

	while (!atomic_load(&c->stop)) {
		uint64_t r = rnd(&seed);

		convert(c->g, (r % 128) * ps, (1 + (r >> 9) % 8) * ps,
			(int)((r >> 20) & 1));
		c->n++;
	}
	return NULL;
}

TEST_F_T(mt, views_come_and_go, 60)
{
	struct converter c = { .g = self->g };
	uint64_t end = now_ms() + RUN_MS, attr, run;
	long views = 0;
	pthread_t t;

	ASSERT_EQ(pthread_create(&t, NULL, convert_loop, &c), 0);
	while (now_ms() < end) {
		char *v;

		ASSERT_EQ(gmem_mmap(self->g, 0, 136 * ps, PROT_READ,
				    (void **)&v), 0);
		/*
		 * Pages past 136 never change; inside, a page's state can
		 * change under us, so only check pages the converter never
		 * touches (>= 135 in the file) and that nothing crashes.
		 */
		ASSERT_EQ(gmem_get_attributes(self->g, 135 * ps, &attr, &run),
			  0);
		if (attr)
			ASSERT_SIGBUS(v + 135 * ps, 0);
		else
			ASSERT_NO_SIGNAL(v + 135 * ps, 0);
		ASSERT_EQ(gmem_munmap(self->g, v, 136 * ps), 0);
		views++;
	}
	atomic_store(&c.stop, 1);
	pthread_join(t, NULL);
	TH_LOG("%ld views made and removed during %ld conversions", views,
	       c.n);
	ASSERT_GT(views, 10);
}
