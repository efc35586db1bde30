// SPDX-License-Identifier: MIT
/*
 * test_binding.c - the hypervisor side: bindings, gmem_get_pfn() and
 * gmem_put_pfn(), invalidation with its reasons, lifetime across close,
 * callbacks that call back in, memory failure, and a multi-threaded run
 * where no callback may reach an unbound owner and no private page may
 * be read through a host view.
 */
#include <linux/falloc.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "gmem.h"
#include "harness.h"
#include "gmem_test.h"
#include "sys.h"

#define NPAGES	32

static size_t ps;

struct owner {
	atomic_int calls;
	atomic_int unbound;		/* set once gmem_unbind() returned */
	atomic_int late;		/* callbacks after that: must stay 0 */
	unsigned int last_reason;
	uint64_t last_off, last_size;
	struct gmem *g;			/* for the callback-calls-back test */
	int nested_ret;
};

static void on_invalidate(void *opaque, uint64_t off, uint64_t size,
			  unsigned int reason)
{
	struct owner *o = opaque;

	if (atomic_load(&o->unbound))
		atomic_fetch_add(&o->late, 1);
	o->last_reason = reason;
	o->last_off = off;
	o->last_size = size;
	if (o->g) {
		struct gmem_stats st;

		o->nested_ret = gmem_stat(o->g, &st, sizeof(st));
	}
	atomic_fetch_add(&o->calls, 1);
}

static const struct gmem_binding_ops ops = { .invalidate = on_invalidate };

FIXTURE(bind) {
	struct gmem *g;
	struct gmem_binding *b;
	struct owner o;
	char *view;
};

FIXTURE_VARIANT(bind) {
	uint64_t flags;
};

FIXTURE_VARIANT_ADD(bind, init_private) {
	.flags = GMEM_FLAG_MMAP,
};

FIXTURE_VARIANT_ADD(bind, init_shared) {
	.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
};

FIXTURE_SETUP(bind)
{
	struct gmem_create_args args = { .flags = variant->flags };

	GMEM_TEST_REQUIRE_BACKEND();
	ps = (size_t)getpagesize();
	args.size = NPAGES * ps;
	ASSERT_EQ(gmem_test_create(&args, &self->g), 0);
	/* The binding covers pages 8..23. */
	ASSERT_EQ(gmem_bind(self->g, 8 * ps, 16 * ps, &ops, &self->o,
			    &self->b), 0);
	ASSERT_EQ(gmem_mmap(self->g, 0, NPAGES * ps, PROT_READ | PROT_WRITE,
			    (void **)&self->view), 0);
}

FIXTURE_TEARDOWN(bind)
{
	if (self->b)
		gmem_unbind(self->b);
	if (self->view)
		gmem_munmap(self->g, self->view, NPAGES * ps);
	gmem_close(self->g);
}

TEST_F(bind, bind_arguments)
{
	struct gmem_binding *b2;
	const struct gmem_binding_ops no_cb = { 0 };
	const struct {
		uint64_t off, size;
		int err;
	} cases[] = {
		{ 0, 0, -EINVAL }, { 1, ps, -EINVAL }, { 0, ps + 1, -EINVAL },
		{ (NPAGES - 1) * ps, 2 * ps, -EINVAL },
		{ -(uint64_t)ps, 2 * ps, -EINVAL },
		{ 0, 9 * ps, -EEXIST }, { 23 * ps, ps, -EEXIST },
		{ 10 * ps, ps, -EEXIST }, { 0, NPAGES * ps, -EEXIST },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ret = gmem_bind(self->g, cases[i].off, cases[i].size, &ops,
				    &self->o, &b2);

		if (ret != cases[i].err)
			TH_LOG("case %zu returned %d", i, ret);
		EXPECT_EQ(ret, cases[i].err);
	}
	ASSERT_EQ(gmem_bind(self->g, 0, ps, NULL, NULL, &b2), -EINVAL);
	ASSERT_EQ(gmem_bind(self->g, 0, ps, &no_cb, NULL, &b2), -EINVAL);
	ASSERT_EQ(gmem_bind(self->g, 0, ps, &ops, NULL, NULL), -EINVAL);
	ASSERT_EQ(gmem_bind(NULL, 0, ps, &ops, NULL, &b2), -EINVAL);
	ASSERT_EQ(stats(self->g).bindings, 1);
	/* Neighbours on both sides are fine. */
	ASSERT_EQ(gmem_bind(self->g, 0, 8 * ps, &ops, &self->o, &b2), 0);
	ASSERT_EQ(stats(self->g).bindings, 2);
	ASSERT_EQ(gmem_unbind(b2), 0);
	ASSERT_EQ(gmem_bind(self->g, 24 * ps, 8 * ps, &ops, &self->o, &b2), 0);
	ASSERT_EQ(gmem_unbind(b2), 0);
	ASSERT_EQ(gmem_unbind(NULL), -EINVAL);
}

/* A private access gets the guest view, where private data is. */
TEST_F(bind, get_pfn_private)
{
	struct gmem_pfn pfn = { 0 };
	char img[100];

	ASSERT_EQ(convert(self->g, 8 * ps, 16 * ps, 1, NULL), 0);
	memset(img, 'I', sizeof(img));
	ASSERT_EQ(gmem_populate(self->g, 9 * ps, img, sizeof(img)), 100);
	ASSERT_EQ(gmem_get_pfn(self->b, 1, GMEM_ACCESS_PRIVATE, &pfn), 0);
	ASSERT_EQ(pfn.order, 0);
	ASSERT_EQ(pfn.offset, 9 * ps);
	ASSERT_EQ(((char *)pfn.addr)[99], 'I');
	ASSERT_EQ(((char *)pfn.addr)[100], 0);
	/* The host view of the same page stays guarded. */
	ASSERT_SIGBUS(self->view + 9 * ps, 0);
	ASSERT_NE(pfn.addr, (void *)(self->view + 9 * ps));
	/* Private references are not counted: they hold nothing back. */
	ASSERT_EQ(stats(self->g).pfn_refs, 0);
	ASSERT_EQ(gmem_put_pfn(self->b, 1, GMEM_ACCESS_PRIVATE), 0);
	ASSERT_EQ(gmem_put_pfn(self->b, 1, GMEM_ACCESS_PRIVATE), 0);
	ASSERT_EQ(gmem_put_pfn(self->b, 1, GMEM_ACCESS_SHARED), -EINVAL);
	ASSERT_EQ(stats(self->g).pfn_refs, 0);
}

/* A mismatch fails like KVM_EXIT_MEMORY_FAULT: convert, then retry. */
TEST_F(bind, memory_fault_then_retry)
{
	struct gmem_pfn pfn = { 0 };

	ASSERT_EQ(convert(self->g, 8 * ps, 16 * ps, 0, NULL), 0);
	ASSERT_EQ(gmem_get_pfn(self->b, 3, GMEM_ACCESS_PRIVATE, &pfn),
		  -EFAULT);
	ASSERT_EQ(pfn.fault_offset, 11 * ps);
	ASSERT_EQ(pfn.fault_size, ps);
	ASSERT_EQ(pfn.fault_flags, GMEM_MEMORY_FAULT_PRIVATE);
	ASSERT_EQ(convert(self->g, pfn.fault_offset, pfn.fault_size, 1, NULL),
		  0);
	ASSERT_EQ(gmem_get_pfn(self->b, 3, GMEM_ACCESS_PRIVATE, &pfn), 0);
	ASSERT_EQ(gmem_put_pfn(self->b, 3, GMEM_ACCESS_PRIVATE), 0);

	ASSERT_EQ(gmem_get_pfn(self->b, 3, GMEM_ACCESS_SHARED, &pfn), -EFAULT);
	ASSERT_EQ(pfn.fault_offset, 11 * ps);
	ASSERT_EQ(pfn.fault_flags, 0);
	ASSERT_EQ(stats(self->g).pfn_refs, 0);
}

/*
 * A page in the right state that the kernel will not fault in (here
 * MADV_POPULATE_WRITE failing EFAULT, injected) is still a memory fault
 * whose fault_* name the page: never left as they were (issue 14).
 */
TEST_F(bind, memory_fault_always_filled)
{
	struct gmem_pfn pfn;
	int ret;

	for (unsigned int access = 0; access < 2; access++) {
		ASSERT_EQ(convert(self->g, 8 * ps, 16 * ps, access, NULL), 0);
		memset(&pfn, 0xa5, sizeof(pfn));
		sys_fault_arm(1, EFAULT, SYS_FAULT_FROM, SYS_C_MAP);
		ret = gmem_get_pfn(self->b, 5, access, &pfn);
		sys_fault_disarm();
		ASSERT_EQ(ret, -EFAULT);
		ASSERT_EQ(pfn.fault_offset, 13 * ps);
		ASSERT_EQ(pfn.fault_size, ps);
		ASSERT_EQ(pfn.fault_flags, access == GMEM_ACCESS_PRIVATE ?
			  GMEM_MEMORY_FAULT_PRIVATE : 0);
		/* Nothing was taken; without the failure it works. */
		ASSERT_EQ(stats(self->g).pfn_refs, 0);
		ASSERT_EQ(gmem_get_pfn(self->b, 5, access, &pfn), 0);
		ASSERT_EQ(gmem_put_pfn(self->b, 5, access), 0);
	}
}

TEST_F(bind, get_pfn_arguments)
{
	struct gmem_pfn pfn;

	ASSERT_EQ(gmem_get_pfn(self->b, 16, GMEM_ACCESS_PRIVATE, &pfn),
		  -EINVAL);
	ASSERT_EQ(gmem_get_pfn(self->b, UINT64_MAX, GMEM_ACCESS_SHARED, &pfn),
		  -EINVAL);
	ASSERT_EQ(gmem_get_pfn(self->b, 0, 2, &pfn), -EINVAL);
	ASSERT_EQ(gmem_get_pfn(self->b, 0, GMEM_ACCESS_PRIVATE, NULL),
		  -EINVAL);
	ASSERT_EQ(gmem_get_pfn(NULL, 0, GMEM_ACCESS_PRIVATE, &pfn), -EINVAL);
	ASSERT_EQ(gmem_put_pfn(self->b, 16, GMEM_ACCESS_PRIVATE), -EINVAL);
	ASSERT_EQ(gmem_put_pfn(NULL, 0, GMEM_ACCESS_PRIVATE), -EINVAL);
}

/* A shared access is a pin: to private waits or fails -EAGAIN. */
TEST_F(bind, shared_reference_blocks_to_private)
{
	struct gmem_pfn pfn;
	uint64_t eo = 0;

	ASSERT_EQ(convert(self->g, 8 * ps, 16 * ps, 0, NULL), 0);
	self->view[12 * ps] = 's';
	ASSERT_EQ(gmem_get_pfn(self->b, 4, GMEM_ACCESS_SHARED, &pfn), 0);
	ASSERT_EQ(*(char *)pfn.addr, 's');
	ASSERT_EQ(convert(self->g, 8 * ps, 16 * ps, 1, &eo), -EAGAIN);
	ASSERT_EQ(eo, 12 * ps);
	ASSERT_EQ(gmem_put_pfn(self->b, 4, GMEM_ACCESS_SHARED), 0);
	ASSERT_EQ(convert(self->g, 8 * ps, 16 * ps, 1, NULL), 0);
	/* Unbind drops references the owner did not put. */
	ASSERT_EQ(convert(self->g, 8 * ps, 16 * ps, 0, NULL), 0);
	ASSERT_EQ(gmem_get_pfn(self->b, 4, GMEM_ACCESS_SHARED, &pfn), 0);
	ASSERT_EQ(gmem_get_pfn(self->b, 4, GMEM_ACCESS_SHARED, &pfn), 0);
	ASSERT_EQ(stats(self->g).pfn_refs, 2);
	ASSERT_EQ(stats(self->g).pinned, ps);
	ASSERT_EQ(gmem_unbind(self->b), 0);
	self->b = NULL;
	ASSERT_EQ(stats(self->g).pinned, 0);
	ASSERT_EQ(stats(self->g).pfn_refs, 0);
	ASSERT_EQ(convert(self->g, 8 * ps, 16 * ps, 1, NULL), 0);
}

/* Reasons and ranges, clipped to the binding. */
TEST_F(bind, invalidation_reasons)
{
	int mode = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE;
	int calls;

	ASSERT_EQ(convert(self->g, 0, NPAGES * ps, 1, NULL), 0);
	calls = atomic_load(&self->o.calls);
	ASSERT_EQ(gmem_fallocate(self->g, mode, 4 * ps, 8 * ps), 0);
	ASSERT_EQ(atomic_load(&self->o.calls), calls + 1);
	ASSERT_EQ(self->o.last_reason, GMEM_INVALIDATE_PUNCH);
	ASSERT_EQ(self->o.last_off, 8 * ps);
	ASSERT_EQ(self->o.last_size, 4 * ps);
	/* Outside the binding: no call. */
	ASSERT_EQ(gmem_fallocate(self->g, mode, 0, 4 * ps), 0);
	ASSERT_EQ(convert(self->g, 0, 4 * ps, 0, NULL), 0);
	ASSERT_EQ(atomic_load(&self->o.calls), calls + 1);
	/* Conversion: only the pages that change. */
	ASSERT_EQ(convert(self->g, 20 * ps, 2 * ps, 0, NULL), 0);
	ASSERT_EQ(self->o.last_reason, GMEM_INVALIDATE_CONVERT);
	ASSERT_EQ(self->o.last_off, 20 * ps);
	ASSERT_EQ(self->o.last_size, 2 * ps);
	ASSERT_EQ(convert(self->g, 18 * ps, 6 * ps, 1, NULL), 0);
	ASSERT_EQ(self->o.last_off, 20 * ps);
	ASSERT_EQ(self->o.last_size, 2 * ps);
	calls = atomic_load(&self->o.calls);
	ASSERT_EQ(convert(self->g, 18 * ps, 6 * ps, 1, NULL), 0);	/* no-op */
	ASSERT_EQ(atomic_load(&self->o.calls), calls);
	ASSERT_GE(stats(self->g).invalidations, 3);
}

/* A callback calling libgmem for the same file gets -EDEADLK. */
TEST_F(bind, callback_cannot_call_back)
{
	self->o.g = self->g;
	self->o.nested_ret = 1;
	ASSERT_EQ(convert(self->g, 8 * ps, ps, 0, NULL) |
		  convert(self->g, 8 * ps, ps, 1, NULL), 0);
	ASSERT_EQ(self->o.nested_ret, -EDEADLK);
	self->o.g = NULL;
	/* Other threads are not affected. */
	ASSERT_EQ(stats(self->g).bindings, 1);
}

/* Close while bound: owners invalidated once, memory kept until unbind. */
TEST_F(bind, close_while_bound)
{
	struct gmem_pfn pfn;
	int calls;

	ASSERT_EQ(convert(self->g, 8 * ps, 16 * ps, 1, NULL), 0);
	ASSERT_EQ(gmem_get_pfn(self->b, 0, GMEM_ACCESS_PRIVATE, &pfn), 0);
	((char *)pfn.addr)[0] = 'k';
	ASSERT_EQ(gmem_munmap(self->g, self->view, NPAGES * ps), 0);
	self->view = NULL;
	calls = atomic_load(&self->o.calls);
	gmem_close(self->g);
	ASSERT_EQ(atomic_load(&self->o.calls), calls + 1);
	ASSERT_EQ(self->o.last_reason, GMEM_INVALIDATE_RELEASE);
	ASSERT_EQ(self->o.last_off, 8 * ps);
	ASSERT_EQ(self->o.last_size, 16 * ps);
	gmem_close(self->g);			/* double close: harmless */
	ASSERT_EQ(atomic_load(&self->o.calls), calls + 1);
	ASSERT_EQ(gmem_get_pfn(self->b, 0, GMEM_ACCESS_PRIVATE, &pfn),
		  -EBADF);
	ASSERT_EQ(((char *)pfn.addr)[0], 'k');	/* memory still alive */
	ASSERT_EQ(gmem_put_pfn(self->b, 0, GMEM_ACCESS_PRIVATE), 0);
	ASSERT_EQ(gmem_unbind(self->b), 0);	/* frees the file */
	self->b = NULL;
	self->g = NULL;
}

/* Memory failure: only the bad page is lost, punch-hole clears it. */
TEST_F(bind, memory_failure)
{
	int mode = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE;
	struct gmem_pfn pfn;

	ASSERT_EQ(convert(self->g, 0, NPAGES * ps, 0, NULL), 0);
	memset(self->view, 'm', NPAGES * ps);
	ASSERT_EQ(gmem_memory_failure(self->g, 10 * ps), 0);
	ASSERT_EQ(self->o.last_reason, GMEM_INVALIDATE_POISON);
	ASSERT_EQ(self->o.last_off, 10 * ps);
	ASSERT_EQ(self->o.last_size, ps);
	ASSERT_SIGBUS(self->view + 10 * ps, 0);
	ASSERT_SIGBUS(self->view + 11 * ps - 1, 1);
	ASSERT_EQ(self->view[9 * ps], 'm');
	ASSERT_EQ(self->view[11 * ps], 'm');
	ASSERT_EQ(gmem_get_pfn(self->b, 2, GMEM_ACCESS_SHARED, &pfn),
		  -EHWPOISON);
	ASSERT_EQ(stats(self->g).poisoned, ps);
	ASSERT_EQ(gmem_memory_failure(self->g, 10 * ps), 0);	/* again */
	ASSERT_EQ(gmem_memory_failure(self->g, 1), -EINVAL);
	ASSERT_EQ(gmem_memory_failure(self->g, NPAGES * ps), -EINVAL);
	/* Conversions round trip: the page stays a hole. */
	ASSERT_EQ(convert(self->g, 8 * ps, 4 * ps, 1, NULL), 0);
	ASSERT_EQ(convert(self->g, 8 * ps, 4 * ps, 0, NULL), 0);
	ASSERT_SIGBUS(self->view + 10 * ps, 0);
	ASSERT_EQ(self->view[11 * ps], 'm');
	/* A view made now keeps it a hole too. */
	char *v2;

	ASSERT_EQ(gmem_mmap(self->g, 0, NPAGES * ps, PROT_READ, (void **)&v2),
		  0);
	ASSERT_SIGBUS(v2 + 10 * ps, 0);
	ASSERT_EQ(v2[9 * ps], 'm');
	/* Punch: a fresh zero page, reachable again. */
	ASSERT_EQ(gmem_fallocate(self->g, mode, 10 * ps, ps), 0);
	ASSERT_EQ(stats(self->g).poisoned, 0);
	ASSERT_EQ(self->view[10 * ps], 0);
	ASSERT_EQ(v2[10 * ps], 0);
	ASSERT_EQ(gmem_get_pfn(self->b, 2, GMEM_ACCESS_SHARED, &pfn), 0);
	ASSERT_EQ(gmem_put_pfn(self->b, 2, GMEM_ACCESS_SHARED), 0);
	ASSERT_EQ(gmem_munmap(self->g, v2, NPAGES * ps), 0);
}

struct race {
	struct gmem *g;
	char *view;
	atomic_int stop;
	atomic_uint epoch;		/* odd: page 0 is private */
	atomic_long late, leaks, binds, gets, errors;
};

static void *converter(void *arg)
{
	struct race *r = arg;
	int mode = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE;
	uint64_t i = 0;

	while (!atomic_load(&r->stop)) {
		if (convert(r->g, 0, ps, 1, NULL))
			atomic_fetch_add(&r->errors, 1);
		atomic_fetch_add(&r->epoch, 1);
		convert(r->g, (1 + i % 31) * ps, ps, (int)(i & 1), NULL);
		gmem_fallocate(r->g, mode, (1 + (i * 7) % 31) * ps, ps);
		atomic_fetch_add(&r->epoch, 1);
		if (convert(r->g, 0, ps, 0, NULL))
			atomic_fetch_add(&r->errors, 1);
		i++;
	}
	return NULL;
}

static void *binder(void *arg)
{
	struct race *r = arg;
	uint64_t i = 0;

	while (!atomic_load(&r->stop)) {
		struct owner o = { 0 };
		struct gmem_binding *b;
		struct gmem_pfn pfn;
		uint64_t first = 1 + i++ % 16;

		if (gmem_bind(r->g, first * ps, 8 * ps, &ops, &o, &b))
			continue;	/* the other binder holds it */
		atomic_fetch_add(&r->binds, 1);
		for (uint64_t k = 0; k < 8; k++) {
			unsigned int acc = (unsigned int)(k & 1);

			if (!gmem_get_pfn(b, k, acc, &pfn)) {
				atomic_fetch_add(&r->gets, 1);
				gmem_put_pfn(b, k, acc);
			}
		}
		if (gmem_unbind(b))
			atomic_fetch_add(&r->errors, 1);
		atomic_store(&o.unbound, 1);
		/* Any callback now would write to a dead stack frame's owner:
		 * it is counted through late before this frame is reused. */
		atomic_fetch_add(&r->late, atomic_load(&o.late));
	}
	return NULL;
}

static void *reader(void *arg)
{
	struct race *r = arg;

	while (!atomic_load(&r->stop)) {
		unsigned int e1 = atomic_load(&r->epoch);
		uint8_t val;
		int sig = harness_probe_read_u8(r->view, &val);
		unsigned int e2 = atomic_load(&r->epoch);

		if (e1 == e2 && (e1 & 1) && !sig)
			atomic_fetch_add(&r->leaks, 1);
	}
	return NULL;
}

TEST_T(threads_bind_convert_punch, 60)
{
	struct gmem_create_args args = {
		.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
	};
	struct race r = { 0 };
	pthread_t t[4];

	GMEM_TEST_REQUIRE_BACKEND();
	ps = (size_t)getpagesize();
	args.size = 32 * ps;
	ASSERT_EQ(gmem_test_create(&args, &r.g), 0);
	ASSERT_EQ(gmem_mmap(r.g, 0, args.size, PROT_READ | PROT_WRITE,
			    (void **)&r.view), 0);
	ASSERT_EQ(pthread_create(&t[0], NULL, converter, &r), 0);
	ASSERT_EQ(pthread_create(&t[1], NULL, binder, &r), 0);
	ASSERT_EQ(pthread_create(&t[2], NULL, binder, &r), 0);
	ASSERT_EQ(pthread_create(&t[3], NULL, reader, &r), 0);
	usleep(1500 * 1000);
	atomic_store(&r.stop, 1);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	TH_LOG("%ld binds, %ld get_pfn, %llu invalidations, %ld late "
	       "callbacks, %ld leaks", atomic_load(&r.binds),
	       atomic_load(&r.gets),
	       (unsigned long long)stats(r.g).invalidations,
	       atomic_load(&r.late), atomic_load(&r.leaks));
	ASSERT_EQ(atomic_load(&r.errors), 0);
	ASSERT_GT(atomic_load(&r.binds), 10);
	ASSERT_EQ(atomic_load(&r.late), 0);
	ASSERT_EQ(atomic_load(&r.leaks), 0);
	ASSERT_EQ(stats(r.g).bindings, 0);
	ASSERT_EQ(stats(r.g).pfn_refs, 0);
	ASSERT_EQ(stats(r.g).pinned, 0);
	ASSERT_EQ(gmem_munmap(r.g, r.view, args.size), 0);
	gmem_close(r.g);
}

/*
 * Shared references on both sides of the table's 512-page chunks, and at
 * both ends of a large sparse binding: each holds a conversion back
 * where it is, and a conversion over them finds them in order.
 */
TEST(references_across_table_chunks)
{
	const uint64_t pages[] = { 0, 511, 512, 1023, 1536 };
	struct gmem_create_args args = {
		.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
	};
	struct owner o = { 0 };
	struct gmem_binding *b;
	struct gmem_pfn pfn;
	struct gmem *g;
	uint64_t eo, npages;

	GMEM_TEST_REQUIRE_BACKEND();
	ps = (size_t)getpagesize();
	args.size = 4ULL << 30;
	npages = args.size / ps;
	ASSERT_EQ(gmem_test_create(&args, &g), 0);
	ASSERT_EQ(gmem_bind(g, 0, args.size, &ops, &o, &b), 0);
	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++)
		ASSERT_EQ(gmem_get_pfn(b, pages[i], GMEM_ACCESS_SHARED, &pfn),
			  0);
	ASSERT_EQ(gmem_get_pfn(b, npages - 1, GMEM_ACCESS_SHARED, &pfn), 0);
	ASSERT_EQ(pfn.offset, args.size - ps);
	ASSERT_EQ(stats(g).pfn_refs, 6);
	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		eo = 0;
		ASSERT_EQ(convert(g, 0, 2048 * ps, 1, &eo), -EAGAIN);
		ASSERT_EQ(eo, pages[i] * ps);
		ASSERT_EQ(gmem_put_pfn(b, pages[i], GMEM_ACCESS_SHARED), 0);
	}
	ASSERT_EQ(convert(g, 0, 2048 * ps, 1, NULL), 0);
	/* The last page, 4 GiB on: a whole-file conversion finds it. */
	ASSERT_EQ(convert(g, 0, args.size, 1, &eo), -EAGAIN);
	ASSERT_EQ(eo, args.size - ps);
	ASSERT_EQ(gmem_put_pfn(b, npages - 1, GMEM_ACCESS_SHARED), 0);
	ASSERT_EQ(stats(g).pfn_refs, 0);
	ASSERT_EQ(convert(g, 0, args.size, 1, NULL), 0);
	/* Ready pages of both chunks lose readiness with the change. */
	ASSERT_EQ(gmem_get_pfn(b, 511, GMEM_ACCESS_PRIVATE, &pfn), 0);
	ASSERT_EQ(gmem_get_pfn(b, 512, GMEM_ACCESS_PRIVATE, &pfn), 0);
	ASSERT_EQ(convert(g, 511 * ps, 2 * ps, 0, NULL), 0);
	ASSERT_EQ(gmem_get_pfn(b, 511, GMEM_ACCESS_PRIVATE, &pfn), -EFAULT);
	ASSERT_EQ(gmem_get_pfn(b, 512, GMEM_ACCESS_PRIVATE, &pfn), -EFAULT);
	ASSERT_EQ(gmem_get_pfn(b, 513, GMEM_ACCESS_PRIVATE, &pfn), 0);
	ASSERT_EQ(gmem_unbind(b), 0);
	gmem_close(g);
}

static long rss_anon_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "RssAnon:", 8))
			kib = strtol(line + 8, NULL, 10);
	if (f)
		fclose(f);
	return kib;
}

/*
 * The table of a sparse binding takes 4 KiB per 512 pages reached,
 * whatever the THP setting: 64 pages reached 16 MiB apart on a 1 TiB
 * file cost 256 KiB, not a huge page each.
 */
TEST(sparse_binding_table_stays_small)
{
	struct gmem_create_args args = {
		.size = 1ULL << 40,
		.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
	};
	struct owner o = { 0 };
	struct gmem_binding *b;
	struct gmem_pfn pfn;
	struct gmem *g;
	long before, after;

	GMEM_TEST_REQUIRE_BACKEND();
	ps = (size_t)getpagesize();
	if (gmem_test_foreign_runtime())
		SKIP(return, "a sanitizer or valgrind shares the process: its "
		     "shadow memory is in RssAnon, and TSan has no room for "
		     "a 1 TiB mapping");
	ASSERT_EQ(gmem_test_create(&args, &g), 0);
	ASSERT_EQ(gmem_bind(g, 0, args.size, &ops, &o, &b), 0);
	before = rss_anon_kib();
	ASSERT_GT(before, 0);
	for (uint64_t i = 0; i < 64; i++) {
		uint64_t page = i * (16ULL << 20) / ps;

		ASSERT_EQ(gmem_get_pfn(b, page, GMEM_ACCESS_SHARED, &pfn), 0);
		ASSERT_EQ(gmem_put_pfn(b, page, GMEM_ACCESS_SHARED), 0);
	}
	after = rss_anon_kib();
	TH_LOG("anonymous memory grew by %ld KiB for 64 pages reached",
	       after - before);
	/* 64 chunks of 4 KiB, and slack for the rest of the process. */
	ASSERT_LT(after - before, 64 * 4 + 1024);
	ASSERT_EQ(gmem_unbind(b), 0);
	gmem_close(g);
}
