// SPDX-License-Identifier: MIT
/*
 * test_listener.c - consumers of shared memory: one call per run (not
 * per page), replay on registration, a refusing populate rolling the
 * conversion back (state, views, the other listeners), discard before a
 * page turns private, silence after unregistering.
 */
#include <sys/mman.h>

#include "gmem.h"
#include "harness.h"
#include "gmem_test.h"

#define NPAGES	32
#define MAXLOG	64

static size_t ps;

struct call {
	char kind;		/* 'p' populate, 'd' discard */
	uint64_t off, size;
};

struct consumer {
	struct call log[MAXLOG];
	int n;
	int refuse_at;		/* refuse the populate call number N (1-based) */
	int populates;
	struct gmem *g;		/* if set, the callback calls back in */
	int nested_ret;
};

static int on_populate(void *opaque, uint64_t off, uint64_t size)
{
	struct consumer *c = opaque;

	if (c->g) {
		struct gmem_attributes a = { .offset = 0, .size = ps };

		c->nested_ret = gmem_set_attributes(c->g, &a);
	}
	if (++c->populates == c->refuse_at)
		return -ENOSPC;
	if (c->n < MAXLOG)
		c->log[c->n++] = (struct call){ 'p', off, size };
	return 0;
}

static void on_discard(void *opaque, uint64_t off, uint64_t size)
{
	struct consumer *c = opaque;

	if (c->n < MAXLOG)
		c->log[c->n++] = (struct call){ 'd', off, size };
}

static const struct gmem_listener_ops lops = {
	.populate = on_populate,
	.discard = on_discard,
};

#define EXPECT_CALL(c, i, k, o, s)					\
	do {								\
		ASSERT_GT((c)->n, (i));					\
		EXPECT_EQ((c)->log[i].kind, (k));			\
		EXPECT_EQ((c)->log[i].off, (uint64_t)(o));		\
		EXPECT_EQ((c)->log[i].size, (uint64_t)(s));		\
	} while (0)

FIXTURE(lst) {
	struct gmem *g;
	char *view;
};

FIXTURE_SETUP(lst)
{
	struct gmem_create_args args = { .flags = GMEM_FLAG_MMAP };

	GMEM_TEST_REQUIRE_BACKEND();
	ps = (size_t)getpagesize();
	args.size = NPAGES * ps;
	ASSERT_EQ(gmem_test_create(&args, &self->g), 0);
	ASSERT_EQ(gmem_mmap(self->g, 0, args.size, PROT_READ | PROT_WRITE,
			    (void **)&self->view), 0);
	/* Shared runs: pages 2-3 and 10-14. */
	ASSERT_EQ(convert(self->g, 2 * ps, 2 * ps, 0, NULL), 0);
	ASSERT_EQ(convert(self->g, 10 * ps, 5 * ps, 0, NULL), 0);
}

FIXTURE_TEARDOWN(lst)
{
	gmem_munmap(self->g, self->view, NPAGES * ps);
	gmem_close(self->g);
}

TEST_F(lst, replay_on_register)
{
	struct consumer c = { 0 }, d = { 0 };
	struct gmem_listener *l, *m;
	struct gmem_stats st;

	ASSERT_EQ(gmem_listener_register(self->g, 0, NPAGES * ps, &lops, &c,
					 &l), 0);
	ASSERT_EQ(c.n, 2);
	EXPECT_CALL(&c, 0, 'p', 2 * ps, 2 * ps);
	EXPECT_CALL(&c, 1, 'p', 10 * ps, 5 * ps);
	/* A listener on part of the file sees its part of the runs. */
	ASSERT_EQ(gmem_listener_register(self->g, 12 * ps, 8 * ps, &lops, &d,
					 &m), 0);
	ASSERT_EQ(d.n, 1);
	EXPECT_CALL(&d, 0, 'p', 12 * ps, 3 * ps);
	ASSERT_EQ(gmem_stat(self->g, &st, sizeof(st)), 0);
	ASSERT_EQ(st.listeners, 2);
	ASSERT_EQ(st.listener_calls, 3);
	ASSERT_EQ(gmem_listener_unregister(m), 0);
	ASSERT_EQ(gmem_listener_unregister(l), 0);
	ASSERT_EQ(gmem_listener_unregister(NULL), -EINVAL);
}

/* A mixed conversion is told run by run, never page by page. */
TEST_F(lst, whole_runs)
{
	struct consumer c = { 0 };
	struct gmem_listener *l;

	ASSERT_EQ(gmem_listener_register(self->g, 0, NPAGES * ps, &lops, &c,
					 &l), 0);
	c.n = 0;
	/* 0..19: private runs 0-1, 4-9, 15-19 become shared. */
	ASSERT_EQ(convert(self->g, 0, 20 * ps, 0, NULL), 0);
	ASSERT_EQ(c.n, 3);
	EXPECT_CALL(&c, 0, 'p', 0, 2 * ps);
	EXPECT_CALL(&c, 1, 'p', 4 * ps, 6 * ps);
	EXPECT_CALL(&c, 2, 'p', 15 * ps, 5 * ps);
	c.n = 0;
	ASSERT_EQ(convert(self->g, 0, NPAGES * ps, 1, NULL), 0);
	ASSERT_EQ(c.n, 1);
	EXPECT_CALL(&c, 0, 'd', 0, 20 * ps);
	c.n = 0;
	ASSERT_EQ(convert(self->g, 0, NPAGES * ps, 1, NULL), 0);	/* no-op */
	ASSERT_EQ(c.n, 0);
	ASSERT_EQ(gmem_listener_unregister(l), 0);
	ASSERT_EQ(convert(self->g, 0, ps, 0, NULL), 0);
	ASSERT_EQ(c.n, 0);			/* silent once unregistered */
}

/* A refusal rolls back: state, views and the listeners told so far. */
TEST_F(lst, refusal_rolls_back)
{
	struct consumer a = { 0 }, b = { 0 };
	struct gmem_listener *la, *lb;
	uint64_t eo = 0, attr, run;

	ASSERT_EQ(gmem_listener_register(self->g, 0, NPAGES * ps, &lops, &a,
					 &la), 0);
	ASSERT_EQ(gmem_listener_register(self->g, 0, NPAGES * ps, &lops, &b,
					 &lb), 0);
	a.n = b.n = 0;
	a.populates = b.populates = 0;
	/* Runs 4-9 and 15-19 become shared; the second populate of a
	 * listener refuses.  Both listeners are asked about run 4-9 first. */
	a.refuse_at = 2;
	ASSERT_EQ(convert(self->g, 4 * ps, 16 * ps, 0, &eo), -ENOSPC);
	ASSERT_EQ(eo, 15 * ps);
	/* Everything told populate was told discard. */
	for (struct consumer *c = &a; c; c = c == &a ? &b : NULL) {
		int p = 0, d = 0;

		for (int i = 0; i < c->n; i++)
			c->log[i].kind == 'p' ? p++ : d++;
		ASSERT_EQ(p, d);
	}
	ASSERT_EQ(gmem_get_attributes(self->g, 4 * ps, &attr, &run), 0);
	ASSERT_EQ(attr, GMEM_ATTR_PRIVATE);
	ASSERT_EQ(run, 6 * ps);
	ASSERT_SIGBUS(self->view + 4 * ps, 0);
	ASSERT_SIGBUS(self->view + 15 * ps, 0);
	ASSERT_NO_SIGNAL(self->view + 10 * ps, 0);
	/* Without the refusal it goes through. */
	a.refuse_at = 0;
	ASSERT_EQ(convert(self->g, 4 * ps, 16 * ps, 0, NULL), 0);
	ASSERT_NO_SIGNAL(self->view + 15 * ps, 0);
	ASSERT_EQ(gmem_listener_unregister(la), 0);
	ASSERT_EQ(gmem_listener_unregister(lb), 0);
}

/* An owner that records its invalidations, and whether the page at the
 * start of each was readable in the view at that moment. */
struct owner_log {
	char *view;
	int n;
	uint64_t off, size;
	int readable;
};

static void on_invalidate(void *owner, uint64_t off, uint64_t size,
			  unsigned int reason)
{
	struct owner_log *o = owner;

	(void)reason;
	if (!o->n++) {
		o->off = off;
		o->size = size;
		o->readable = !harness_probe(o->view + off, 0, NULL);
	}
}

static const struct gmem_binding_ops bops = { .invalidate = on_invalidate };

/*
 * A refused to-shared conversion did not happen: its owners are not
 * invalidated.  One that goes through invalidates them before any view
 * shows the pages.  (Found by the fuzzer: owners were invalidated
 * before the listeners were asked.)
 */
TEST_F(lst, refusal_invalidates_no_owner)
{
	struct owner_log o = { .view = self->view };
	struct consumer c = { 0 };
	struct gmem_binding *b;
	struct gmem_listener *l;
	struct gmem_stats st;
	uint64_t before;

	ASSERT_EQ(gmem_listener_register(self->g, 0, NPAGES * ps, &lops, &c,
					 &l), 0);
	c.populates = 0;
	c.refuse_at = 1;
	ASSERT_EQ(gmem_bind(self->g, 0, NPAGES * ps, &bops, &o, &b), 0);
	ASSERT_EQ(gmem_stat(self->g, &st, sizeof(st)), 0);
	before = st.invalidations;
	ASSERT_EQ(convert(self->g, 4 * ps, 6 * ps, 0, NULL), -ENOSPC);
	EXPECT_EQ(o.n, 0);
	ASSERT_EQ(gmem_stat(self->g, &st, sizeof(st)), 0);
	EXPECT_EQ(st.invalidations, before);
	ASSERT_SIGBUS(self->view + 4 * ps, 0);
	/* Accepted: one invalidation of the run, while it was still hidden. */
	c.refuse_at = 0;
	ASSERT_EQ(convert(self->g, 4 * ps, 6 * ps, 0, NULL), 0);
	EXPECT_EQ(o.n, 1);
	EXPECT_EQ(o.off, 4 * ps);
	EXPECT_EQ(o.size, 6 * ps);
	EXPECT_EQ(o.readable, 0);
	ASSERT_NO_SIGNAL(self->view + 4 * ps, 0);
	ASSERT_EQ(gmem_unbind(b), 0);
	ASSERT_EQ(gmem_listener_unregister(l), 0);
}

/* A refused replay fails the registration and takes the replay back. */
TEST_F(lst, refused_replay)
{
	struct consumer c = { .refuse_at = 2 };
	struct gmem_listener *l = NULL;
	struct gmem_stats st;

	ASSERT_EQ(gmem_listener_register(self->g, 0, NPAGES * ps, &lops, &c,
					 &l), -ENOSPC);
	ASSERT_NULL(l);
	ASSERT_EQ(c.n, 2);
	EXPECT_CALL(&c, 0, 'p', 2 * ps, 2 * ps);
	EXPECT_CALL(&c, 1, 'd', 2 * ps, 2 * ps);
	ASSERT_EQ(gmem_stat(self->g, &st, sizeof(st)), 0);
	ASSERT_EQ(st.listeners, 0);
}

TEST_F(lst, arguments_and_callbacks)
{
	const struct gmem_listener_ops half = { .populate = on_populate };
	struct consumer c = { 0 };
	struct gmem_listener *l;

	ASSERT_EQ(gmem_listener_register(self->g, 0, 0, &lops, &c, &l),
		  -EINVAL);
	ASSERT_EQ(gmem_listener_register(self->g, 1, ps, &lops, &c, &l),
		  -EINVAL);
	ASSERT_EQ(gmem_listener_register(self->g, 0, (NPAGES + 1) * ps, &lops,
					 &c, &l), -EINVAL);
	ASSERT_EQ(gmem_listener_register(self->g, 0, ps, &half, &c, &l),
		  -EINVAL);
	ASSERT_EQ(gmem_listener_register(self->g, 0, ps, NULL, &c, &l),
		  -EINVAL);
	ASSERT_EQ(gmem_listener_register(self->g, 0, ps, &lops, &c, NULL),
		  -EINVAL);
	ASSERT_EQ(gmem_listener_register(NULL, 0, ps, &lops, &c, &l),
		  -EINVAL);
	/* A callback that calls back into the file gets -EDEADLK. */
	c.g = self->g;
	c.nested_ret = 1;
	ASSERT_EQ(gmem_listener_register(self->g, 0, NPAGES * ps, &lops, &c,
					 &l), 0);
	ASSERT_EQ(c.nested_ret, -EDEADLK);
	c.g = NULL;
	ASSERT_EQ(gmem_listener_unregister(l), 0);
}

/* A listener keeps the file alive past close, like a view. */
TEST(listener_outlives_close)
{
	struct gmem_create_args args = { .flags = GMEM_FLAG_INIT_SHARED };
	struct consumer c = { 0 };
	struct gmem_listener *l;
	struct gmem *g;

	GMEM_TEST_REQUIRE_BACKEND();
	ps = (size_t)getpagesize();
	args.size = 4 * ps;
	ASSERT_EQ(gmem_test_create(&args, &g), 0);
	ASSERT_EQ(gmem_listener_register(g, 0, args.size, &lops, &c, &l), 0);
	gmem_close(g);
	ASSERT_EQ(gmem_listener_unregister(l), 0);
	ASSERT_EQ(c.n, 1);
}
