// SPDX-License-Identifier: MIT
/*
 * test_vcpu.c - the hypervisor side as a vCPU loop uses it (issue 11):
 * gmem_get_pfn() of a present page needs no file lock, an invalidate
 * callback may wait for the vCPU threads without a deadlock, and the
 * retry-on-sequence protocol (gmem_invalidate_seq/_retry) never lets an
 * owner keep a mapping of the old state once a change has returned,
 * with conversions, punches and poison racing vCPU threads.
 */
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "gmem.h"
#include "harness.h"
#include "gmem_test.h"

#define NPAGES		64
#define NVCPU		2

static size_t ps;

/* ---- a present page is granted while another thread holds the lock --- */

struct hold {
	struct gmem *g;
	struct gmem_binding *b;
	atomic_int in_callback, granted, timed_out;
	int ret;
};

/* A listener that keeps the file lock (it runs under it) until a vCPU
 * thread was granted a page, or 5 s passed. */
static int hold_populate(void *opaque, uint64_t off, uint64_t size)
{
	struct hold *h = opaque;
	uint64_t t0 = now_ms();

	(void)off, (void)size;
	atomic_store(&h->in_callback, 1);
	while (!atomic_load(&h->granted) && now_ms() - t0 < 5000)
		sched_yield();
	if (!atomic_load(&h->granted))
		atomic_store(&h->timed_out, 1);	/* the grant waited for us */
	return 0;
}

static void hold_discard(void *opaque, uint64_t off, uint64_t size)
{
	(void)opaque, (void)off, (void)size;
}

static const struct gmem_listener_ops hold_ops = {
	.populate = hold_populate, .discard = hold_discard,
};

static void no_invalidate(void *owner, uint64_t off, uint64_t size,
			  unsigned int reason)
{
	(void)owner, (void)off, (void)size, (void)reason;
}

static const struct gmem_binding_ops quiet_ops = {
	.invalidate = no_invalidate,
};

static void *grant_while_held(void *arg)
{
	struct hold *h = arg;
	struct gmem_pfn pfn;

	while (!atomic_load(&h->in_callback))
		sched_yield();
	h->ret = gmem_get_pfn(h->b, 1, GMEM_ACCESS_PRIVATE, &pfn);
	if (!h->ret)
		gmem_put_pfn(h->b, 1, GMEM_ACCESS_PRIVATE);
	atomic_store(&h->granted, 1);
	return NULL;
}

TEST(present_page_needs_no_lock)
{
	struct gmem_create_args args = { .flags = GMEM_FLAG_MMAP };
	struct hold h = { 0 };
	struct gmem_listener *l;
	struct gmem_pfn pfn;
	pthread_t t;

	GMEM_TEST_REQUIRE_BACKEND();
	ps = (size_t)getpagesize();
	args.size = NPAGES * ps;
	ASSERT_EQ(gmem_test_create(&args, &h.g), 0);
	ASSERT_EQ(gmem_bind(h.g, 0, args.size, &quiet_ops, NULL, &h.b), 0);
	/* Page 1 reached once: present, its next grant is lock-free. */
	ASSERT_EQ(gmem_get_pfn(h.b, 1, GMEM_ACCESS_PRIVATE, &pfn), 0);
	ASSERT_EQ(gmem_put_pfn(h.b, 1, GMEM_ACCESS_PRIVATE), 0);
	ASSERT_EQ(gmem_listener_register(h.g, 0, args.size, &hold_ops, &h,
					 &l), 0);
	ASSERT_EQ(pthread_create(&t, NULL, grant_while_held, &h), 0);
	/* Page 10 to shared: the listener holds the lock meanwhile. */
	ASSERT_EQ(convert(h.g, 10 * ps, ps, 0), 0);
	pthread_join(t, NULL);
	EXPECT_EQ(h.ret, 0);
	EXPECT_EQ(atomic_load(&h.granted), 1);
	EXPECT_EQ(atomic_load(&h.timed_out), 0);
	ASSERT_EQ(gmem_listener_unregister(l), 0);
	ASSERT_EQ(gmem_unbind(h.b), 0);
	gmem_close(h.g);
}

/* ---- an invalidate callback waits for a vCPU in the slow path --------- */

struct waiter {
	struct gmem *g;
	struct gmem_binding *b;		/* the one the vCPU faults on */
	atomic_int asked, answered;
	int ret;
	uint64_t waited_ms;
};

static void *vcpu_slow(void *arg)
{
	struct waiter *w = arg;
	struct gmem_pfn pfn;

	while (!atomic_load(&w->asked))
		sched_yield();
	/* Page 20 was never reached: the slow path, which must not sleep
	 * on the lock the conversion holds. */
	w->ret = gmem_get_pfn(w->b, 20, GMEM_ACCESS_PRIVATE, &pfn);
	if (!w->ret)
		gmem_put_pfn(w->b, 20, GMEM_ACCESS_PRIVATE);
	atomic_store(&w->answered, 1);
	return NULL;
}

/* The natural invalidate: kick the vCPU, wait until it is out. */
static void waiting_invalidate(void *owner, uint64_t off, uint64_t size,
			       unsigned int reason)
{
	struct waiter *w = owner;
	uint64_t t0 = now_ms();

	(void)off, (void)size, (void)reason;
	if (atomic_load(&w->asked))
		return;
	atomic_store(&w->asked, 1);
	while (!atomic_load(&w->answered) && now_ms() - t0 < 5000)
		sched_yield();
	w->waited_ms = now_ms() - t0;
}

static const struct gmem_binding_ops waiting_ops = {
	.invalidate = waiting_invalidate,
};

/*
 * The vCPU faults on the binding being invalidated, or on another one of
 * the same file (one VM, two memslots: found by review, the second case
 * deadlocked).
 */
TEST(invalidate_may_wait_for_vcpus)
{
	struct gmem_create_args args = { .flags = GMEM_FLAG_MMAP };

	GMEM_TEST_REQUIRE_BACKEND();
	ps = (size_t)getpagesize();
	args.size = NPAGES * ps;
	for (int other = 0; other < 2; other++) {
		struct gmem_binding *b1, *b2 = NULL;
		struct waiter w = { 0 };
		struct gmem_pfn pfn;
		pthread_t t;

		TH_LOG("vCPU on the %s binding", other ? "other" : "same");
		ASSERT_EQ(gmem_test_create(&args, &w.g), 0);
		/* b1: pages [0, 32) with the conversion; b2: [32, 64). */
		ASSERT_EQ(gmem_bind(w.g, 0, other ? 32 * ps : args.size,
				    &waiting_ops, &w, &b1), 0);
		if (other)
			ASSERT_EQ(gmem_bind(w.g, 32 * ps, 32 * ps,
					    &quiet_ops, NULL, &b2), 0);
		w.b = other ? b2 : b1;
		ASSERT_EQ(pthread_create(&t, NULL, vcpu_slow, &w), 0);
		ASSERT_EQ(convert(w.g, 5 * ps, ps, 0), 0);
		pthread_join(t, NULL);
		EXPECT_EQ(atomic_load(&w.answered), 1);
		EXPECT_LT(w.waited_ms, 4000);	/* not the 5 s way out */
		EXPECT_EQ(w.ret, -EAGAIN);	/* retry: a change under way */
		/* Nothing under way now: the same call goes through. */
		ASSERT_EQ(gmem_get_pfn(w.b, 20, GMEM_ACCESS_PRIVATE, &pfn), 0);
		ASSERT_EQ(gmem_put_pfn(w.b, 20, GMEM_ACCESS_PRIVATE), 0);
		ASSERT_EQ(gmem_unbind(b1), 0);
		if (b2)
			ASSERT_EQ(gmem_unbind(b2), 0);
		gmem_close(w.g);
	}
}

/* ---- the retry protocol under fire ------------------------------------ */

/*
 * An owner as a VMM writes it: a lock around its "page table"
 * (installed[]: -1 none, else the access it was mapped for), taken by
 * the invalidate callback, which zaps the range and then waits until
 * every vCPU thread has acknowledged the kick (left "guest mode").
 */
static struct {
	struct gmem *g;
	struct gmem_binding *b;
	pthread_mutex_t lock;
	int installed[NPAGES];
	atomic_uint kick;
	atomic_uint acked[NVCPU];
	atomic_int stop;
	atomic_int stuck;		/* a callback waited 5 s: deadlock */
	atomic_int violations;
	atomic_ulong grants, retries, invalidations;
} O;

static void vmm_invalidate(void *owner, uint64_t off, uint64_t size,
			   unsigned int reason)
{
	unsigned int k;
	uint64_t t0;

	(void)owner, (void)reason;
	pthread_mutex_lock(&O.lock);
	for (uint64_t p = off / ps; p < (off + size) / ps; p++)
		O.installed[p] = -1;
	pthread_mutex_unlock(&O.lock);
	atomic_fetch_add(&O.invalidations, 1);
	k = atomic_fetch_add(&O.kick, 1) + 1;
	t0 = now_ms();
	for (int v = 0; v < NVCPU; v++)
		while (atomic_load(&O.acked[v]) < k && !atomic_load(&O.stop)) {
			if (now_ms() - t0 > 5000) {
				atomic_store(&O.stuck, 1);
				return;
			}
			sched_yield();
		}
}

static const struct gmem_binding_ops vmm_ops = {
	.invalidate = vmm_invalidate,
};

static void *vmm_vcpu(void *arg)
{
	int v = (int)(intptr_t)arg;
	uint64_t seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(v + 1);

	while (!atomic_load(&O.stop)) {
		uint64_t p = rng_below(&seed, NPAGES), seq;
		unsigned int access = (unsigned int)rng_below(&seed, 2);
		struct gmem_pfn pfn;
		int ret;

		atomic_store(&O.acked[v], atomic_load(&O.kick)); /* out */
		seq = gmem_invalidate_seq(O.b);
		ret = gmem_get_pfn(O.b, p, access, &pfn);
		if (ret == -EAGAIN) {
			atomic_fetch_add(&O.retries, 1);
			continue;
		}
		if (ret)		/* -EFAULT, -EHWPOISON: not ours */
			continue;
		pthread_mutex_lock(&O.lock);
		if (!gmem_invalidate_retry(O.b, seq)) {
			O.installed[p] = (int)access;
			atomic_fetch_add(&O.grants, 1);
		} else {
			atomic_fetch_add(&O.retries, 1);
		}
		pthread_mutex_unlock(&O.lock);
		/* Mapped (or not): the reference is not needed any more. */
		if (gmem_put_pfn(O.b, p, access))
			atomic_fetch_add(&O.violations, 1);
	}
	return NULL;
}

/* After a change of [s, e) to val returned: no mapping of another state. */
static void check_installed(uint64_t s, uint64_t e, int val)
{
	pthread_mutex_lock(&O.lock);
	for (uint64_t p = s; p < e; p++) {
		if (O.installed[p] != -1 && O.installed[p] != val) {
			TH_LOG("page %llu still mapped %s after the change",
			       (unsigned long long)p,
			       O.installed[p] ? "private" : "shared");
			atomic_fetch_add(&O.violations, 1);
		}
	}
	pthread_mutex_unlock(&O.lock);
}

TEST(retry_protocol_under_conversions)
{
	struct gmem_create_args args = { .flags = GMEM_FLAG_MMAP };
	uint64_t seed = 7, t0, changes = 0;
	pthread_t t[NVCPU];

	GMEM_TEST_REQUIRE_BACKEND();
	ps = (size_t)getpagesize();
	args.size = NPAGES * ps;
	memset(&O, 0, sizeof(O));
	pthread_mutex_init(&O.lock, NULL);
	for (int p = 0; p < NPAGES; p++)
		O.installed[p] = -1;
	ASSERT_EQ(gmem_test_create(&args, &O.g), 0);
	ASSERT_EQ(gmem_bind(O.g, 0, args.size, &vmm_ops, NULL, &O.b), 0);
	for (int v = 0; v < NVCPU; v++)
		ASSERT_EQ(pthread_create(&t[v], NULL, vmm_vcpu,
					 (void *)(intptr_t)v), 0);
	t0 = now_ms();
	while (now_ms() - t0 < 2000 && !atomic_load(&O.stuck)) {
		uint64_t s = rng_below(&seed, NPAGES);
		uint64_t n = 1 + rng_below(&seed, NPAGES - s < 8 ?
					   NPAGES - s : 8);
		unsigned int what = (unsigned int)rng_below(&seed, 16);

		if (what == 0) {		/* poison, then punch it away */
			ASSERT_EQ(gmem_memory_failure(O.g, s * ps), 0);
			check_installed(s, s + 1, 2);	/* none at all */
			/* The punch clears the poison: a vCPU may map the
			 * page again as soon as it returns. */
			ASSERT_EQ(gmem_fallocate(O.g, FALLOC_FL_KEEP_SIZE |
						 FALLOC_FL_PUNCH_HOLE,
						 s * ps, ps), 0);
		} else if (what == 1) {		/* punch: the state stays */
			ASSERT_EQ(gmem_fallocate(O.g, FALLOC_FL_KEEP_SIZE |
						 FALLOC_FL_PUNCH_HOLE,
						 s * ps, n * ps), 0);
		} else {
			int val = (int)(what & 1);

			struct gmem_attributes a = {
				.offset = s * ps, .size = n * ps,
				.attributes = val ? GMEM_ATTR_PRIVATE : 0,
				/* vCPUs hold shared references briefly */
				.flags = GMEM_SET_ATTR_WAIT,
			};

			ASSERT_EQ(gmem_set_attributes(O.g, &a), 0);
			/* Pages already val were not invalidated: a mapping
			 * of val may stay, of the other state none may. */
			check_installed(s, s + n, val);
		}
		changes++;
	}
	/*
	 * Changes back to back on a loaded machine can keep an
	 * invalidation open at every try: once they stop, the vCPUs must
	 * get their pages (progress is the protocol's promise too).
	 */
	t0 = now_ms();
	while (!atomic_load(&O.grants) && now_ms() - t0 < 10000)
		usleep(1000);
	atomic_store(&O.stop, 1);
	for (int v = 0; v < NVCPU; v++)
		pthread_join(t[v], NULL);
	TH_LOG("%llu changes, %lu grants installed, %lu retries, "
	       "%lu invalidations", (unsigned long long)changes,
	       atomic_load(&O.grants), atomic_load(&O.retries),
	       atomic_load(&O.invalidations));
	EXPECT_EQ(atomic_load(&O.stuck), 0);
	EXPECT_EQ(atomic_load(&O.violations), 0);
	EXPECT_GT(atomic_load(&O.grants), 0);
	ASSERT_EQ(gmem_unbind(O.b), 0);
	gmem_close(O.g);
	pthread_mutex_destroy(&O.lock);
}

