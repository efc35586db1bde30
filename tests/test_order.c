// SPDX-License-Identifier: MIT
/*
 * test_order.c - a conversion to shared that a listener refuses never
 * shows the private page (issue 10, class 3).  Listeners are asked
 * before any view shows a page, so while a slow listener deliberates,
 * and after it refuses, a host reader finds SIGBUS; once it accepts, the
 * page reads after gmem_set_attributes() returns.
 *
 * A reader thread probes the page through the view without pause for as
 * long as the conversion runs (the listener takes 200 ms to answer).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "gmem.h"
#include "harness.h"
#include "gmem_test.h"

#define NPAGES	16
#define PAGE	5

struct slow {
	int answer;			/* what populate returns */
	_Atomic int in_populate;
};

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int slow_populate(void *opaque, uint64_t off, uint64_t size)
{
	struct slow *s = opaque;

	(void)off, (void)size;
	atomic_store(&s->in_populate, 1);
	sleep_ms(200);
	atomic_store(&s->in_populate, 0);
	return s->answer;
}

static void no_discard(void *opaque, uint64_t off, uint64_t size)
{
	(void)opaque, (void)off, (void)size;
}

static const struct gmem_listener_ops lops = {
	.populate = slow_populate,
	.discard = no_discard,
};

struct reader {
	char *addr;
	_Atomic int *in_populate;
	_Atomic int stop;
	long reads_ok, faults;
	long reads_in_populate;		/* readable while it was asked */
};

static void *reader_fn(void *arg)
{
	struct reader *r = arg;

	while (!atomic_load(&r->stop)) {
		int asked = atomic_load(r->in_populate);
		uint8_t v;

		if (!harness_probe_read_u8(r->addr, &v)) {
			r->reads_ok++;
			/* the listener was deliberating all along */
			r->reads_in_populate += asked &&
						atomic_load(r->in_populate);
		} else {
			r->faults++;
		}
	}
	return NULL;
}

FIXTURE(order) {
	struct gmem *g;
	char *view;
	size_t ps;
};

FIXTURE_VARIANT(order) {
	uint64_t flags;
};

FIXTURE_VARIANT_ADD(order, uffd_view) { .flags = GMEM_FLAG_MMAP };
FIXTURE_VARIANT_ADD(order, vma_view) {
	.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
};

FIXTURE_SETUP(order)
{
	struct gmem_create_args args = { .flags = variant->flags };

	GMEM_TEST_REQUIRE_BACKEND();
	self->ps = (size_t)getpagesize();
	args.size = NPAGES * self->ps;
	ASSERT_EQ(gmem_test_create(&args, &self->g), 0);
	ASSERT_EQ(gmem_mmap(self->g, 0, args.size, PROT_READ | PROT_WRITE,
			    (void **)&self->view), 0);
	/* Page PAGE private, its contents the guest's. */
	ASSERT_EQ(convert_pages(self->g, 0, NPAGES, 0), 0);
	memset(self->view + PAGE * self->ps, 'p', self->ps);
	ASSERT_EQ(convert_pages(self->g, PAGE, 1, 1), 0);
}

FIXTURE_TEARDOWN(order)
{
	if (self->view)
		gmem_munmap(self->g, self->view, NPAGES * self->ps);
	gmem_close(self->g);
}

/* Convert PAGE to shared with a listener answering `answer`. */
static int run(struct gmem *g, char *addr, size_t ps, int answer,
	       struct reader *r)
{
	struct slow s = { .answer = 0 };	/* the replay: accepted */
	struct gmem_listener *l;
	pthread_t t;
	int ret;

	*r = (struct reader){ .addr = addr, .in_populate = &s.in_populate };
	if (gmem_listener_register(g, 0, NPAGES * ps, &lops, &s, &l))
		return -1000;
	s.answer = answer;
	if (pthread_create(&t, NULL, reader_fn, r)) {
		gmem_listener_unregister(l);
		return -1001;
	}
	sleep_ms(20);
	ret = convert_pages(g, PAGE, 1, 0);
	atomic_store(&r->stop, 1);
	pthread_join(t, NULL);
	gmem_listener_unregister(l);
	return ret;
}

TEST_F(order, refused_to_shared_is_never_readable)
{
	struct reader r;

	ASSERT_EQ(run(self->g, self->view + PAGE * self->ps, self->ps,
		      -EPERM, &r), -EPERM);
	TH_LOG("reader: %ld reads, %ld SIGBUS during the refused conversion",
	       r.reads_ok, r.faults);
	ASSERT_GT(r.faults, 100);
	ASSERT_EQ(r.reads_ok, 0);
	ASSERT_SIGBUS(self->view + PAGE * self->ps, 0);
	ASSERT_EQ(attr_at(self->g, PAGE * self->ps), GMEM_ATTR_PRIVATE);
}

TEST_F(order, accepted_to_shared_is_readable_after)
{
	struct reader r;

	ASSERT_EQ(run(self->g, self->view + PAGE * self->ps, self->ps, 0, &r),
		  0);
	TH_LOG("reader: %ld reads, %ld SIGBUS", r.reads_ok, r.faults);
	ASSERT_GT(r.faults, 100);	/* all through the listener's 200 ms */
	ASSERT_EQ(r.reads_in_populate, 0);
	ASSERT_EQ(self->view[PAGE * self->ps], 'p');
	ASSERT_EQ(attr_at(self->g, PAGE * self->ps), 0);
}
