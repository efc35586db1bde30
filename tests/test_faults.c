// SPDX-License-Identifier: MIT
/*
 * test_faults.c - every unwind, by making the system calls under it fail
 * (issue 10, class 4).  src/sys.c can fail the Nth system call of an
 * operation (sys_fault_arm()); for each operation of the API this walks
 * N over every call the operation makes and, after each failure, checks
 * the promise on real memory:
 *
 *  - every private or poisoned page raises SIGBUS in every view, and has
 *    no page-table entry there (pagemap);
 *  - every shared page reads back its contents in every view (a view is
 *    allowed to be all SIGBUS only if gmem_stat() counts it revoked);
 *  - a failed call changed nothing: states and contents as before (a
 *    punch may have zeroed part of its range: the kernel's is the same);
 *  - no fd leaked, and libgmem's mappings in /proc/self/maps are exactly
 *    the VMAs gmem_stat() accounts.
 *
 * "once": only the Nth call fails, as a transient ENOMEM would; the
 * unwind itself must succeed, so no view may be revoked.  "from": the
 * Nth and every later mapping call fails, as when the process's VMAs run
 * out midway: undos fail too and views may be revoked, but a private
 * page is never readable.
 *
 * The file: 160 pages with views in both guard modes (one only on the
 * kvm backend), a pin, a binding, a listener, a poisoned page, parked
 * pages, 64 private islands in one view so that one more makes it switch
 * mode.
 */
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>

#include "gmem.h"
#include "harness.h"
#include "gmem_test.h"
#include "sys.h"

#define NP		160
#define NVIEWS		4
#define PIN_AT		1
#define POISON_AT	30
#define FRAG_AT		90	/* pages 90..157: every other one private */

struct fx {
	struct gmem *g;
	size_t ps;
	char *v[NVIEWS];
	uint64_t vfirst[NVIEWS], vpages[NVIEWS];
	int nv;
	char *pin;
	bool pinned;
	struct gmem_binding *b;
	struct gmem_listener *l;
	uint8_t priv[NP], tag[NP], poison[NP];
	uint8_t maybe_zero[NP];	/* a failed punch may have zeroed it */
	bool poison_unknown;	/* a failed punch may have cleared it */
	int fds;
	uint64_t revoked;
};

static void on_invalidate(void *o, uint64_t off, uint64_t size,
			  unsigned int reason)
{
	(void)o, (void)off, (void)size, (void)reason;
}

static const struct gmem_binding_ops ops = { .invalidate = on_invalidate };

static int on_populate(void *o, uint64_t off, uint64_t size)
{
	(void)o, (void)off, (void)size;
	return 0;
}

static void on_discard(void *o, uint64_t off, uint64_t size)
{
	(void)o, (void)off, (void)size;
}

static const struct gmem_listener_ops lops = {
	.populate = on_populate,
	.discard = on_discard,
};

static uint8_t tag_of(uint64_t p, int round)
{
	return (uint8_t)(1 + (p * 7 + (uint64_t)round * 13) % 250);
}

/* Contents of page p through the guest side (private pages too). */
static int guest_byte(struct fx *f, uint64_t p, uint8_t *out)
{
	struct gmem_pfn pfn;
	int ret = gmem_get_pfn(f->b, p, f->priv[p] ? GMEM_ACCESS_PRIVATE :
			       GMEM_ACCESS_SHARED, &pfn);

	if (ret)
		return ret;
	*out = *(volatile uint8_t *)pfn.addr;
	return gmem_put_pfn(f->b, p, f->priv[p] ? GMEM_ACCESS_PRIVATE :
			    GMEM_ACCESS_SHARED);
}

static int libgmem_maps(void)
{
	char line[512];
	FILE *m = fopen("/proc/self/maps", "re");
	int n = 0;

	if (!m)
		return -1;
	while (fgets(line, sizeof(line), m))
		n += strstr(line, "memfd:gmem") || strstr(line, "kvm-gmem");
	fclose(m);
	return n;
}

/*
 * Is addr in a mapping of guest memory?  A view revoked by unmapping it
 * (no system call left to make a hole or take its access) leaves its
 * address range to whatever the process maps next (a sanitizer's
 * allocator, say): reading that is not reading guest memory.
 */
static bool guest_mapping_at(const void *addr)
{
	char line[512];
	FILE *m = fopen("/proc/self/maps", "re");
	bool ours = false;

	if (!m)
		return true;
	while (fgets(line, sizeof(line), m)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 &&
		    (uintptr_t)addr >= lo && (uintptr_t)addr < hi) {
			ours = strstr(line, "memfd:gmem") ||
			       strstr(line, "kvm-gmem");
			break;
		}
	}
	fclose(m);
	return ours;
}

/* Is page addr present in this process's page tables (pagemap)? */
static int present(const void *addr)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);
	off_t off = (off_t)((uintptr_t)addr / (uintptr_t)getpagesize() * 8);

	if (fd < 0)
		return -1;
	if (pread(fd, &e, 8, off) != 8)
		e = 0;
	close(fd);
	return (int)(e >> 63);
}

/*
 * The file as described at the top.  Contents: tag_of(p, 0) everywhere,
 * written through the guest side, so private pages have contents too.
 */
static void setup(struct fx *f)
{
	struct gmem_create_args args = { .flags = GMEM_FLAG_MMAP };
	struct gmem_pfn pfn;
	void *p;

	memset(f, 0, sizeof(*f));
	f->ps = (size_t)getpagesize();
	f->fds = count_fds();
	args.size = NP * f->ps;
	ASSERT_EQ(gmem_test_create(&args, &f->g), 0);
	ASSERT_EQ(gmem_bind(f->g, 0, args.size, &ops, NULL, &f->b), 0);
	memset(f->priv, 1, NP);
	/* View 0 while everything is private: userfaultfd mode (memfd). */
	ASSERT_EQ(gmem_mmap(f->g, 0, args.size, PROT_READ | PROT_WRITE,
			    &p), 0);
	f->v[0] = p;
	f->vpages[0] = NP;
	for (uint64_t q = 0; q < NP; q++) {
		ASSERT_EQ(gmem_get_pfn(f->b, q, GMEM_ACCESS_PRIVATE, &pfn), 0);
		memset(pfn.addr, tag_of(q, 0), f->ps);
		ASSERT_EQ(gmem_put_pfn(f->b, q, GMEM_ACCESS_PRIVATE), 0);
		f->tag[q] = tag_of(q, 0);
	}
	ASSERT_EQ(convert_pages(f->g, 0, NP, 0), 0);
	memset(f->priv, 0, NP);
	/* Islands: 8-11, 20, 40-47; 64 more in FRAG_AT.. */
	ASSERT_EQ(convert_pages(f->g, 8, 4, 1), 0);
	ASSERT_EQ(convert_pages(f->g, 20, 1, 1), 0);
	ASSERT_EQ(convert_pages(f->g, 40, 8, 1), 0);
	memset(f->priv + 8, 1, 4);
	f->priv[20] = 1;
	memset(f->priv + 40, 1, 8);
	/* View 1 over mostly shared pages: vma mode. */
	ASSERT_EQ(gmem_mmap(f->g, 0, args.size, PROT_READ | PROT_WRITE, &p),
		  0);
	f->v[1] = p;
	f->vpages[1] = NP;
	/* View 2: a read-only window over part of the file, past its end. */
	ASSERT_EQ(gmem_mmap(f->g, 120 * f->ps, 48 * f->ps, PROT_READ, &p), 0);
	f->v[2] = p;
	f->vfirst[2] = 120;
	f->vpages[2] = 48;
	f->nv = 3;
	for (uint64_t q = FRAG_AT; q < FRAG_AT + 2 * 32; q += 2) {
		ASSERT_EQ(convert_pages(f->g, q, 1, 1), 0);
		f->priv[q] = 1;
	}
	ASSERT_EQ(gmem_pin(f->g, PIN_AT * f->ps, f->ps, (void **)&f->pin), 0);
	f->pinned = true;
	ASSERT_EQ(gmem_memory_failure(f->g, POISON_AT * f->ps), 0);
	f->poison[POISON_AT] = 1;
	ASSERT_EQ(gmem_listener_register(f->g, 0, args.size, &lops, NULL,
					 &f->l), 0);
	f->revoked = stats(f->g).views_revoked;
}

static void teardown(struct fx *f)
{
	if (f->pinned)
		gmem_unpin(f->g, PIN_AT * f->ps, f->ps);
	for (int i = 0; i < f->nv; i++)
		if (f->v[i])
			gmem_munmap(f->g, f->v[i], f->vpages[i] * f->ps);
	if (f->l)
		gmem_listener_unregister(f->l);
	if (f->b)
		gmem_unbind(f->b);
	gmem_close(f->g);
	EXPECT_EQ(count_fds(), f->fds);
	EXPECT_EQ(libgmem_maps(), 0);
}

/* Check the promise; revoked views (counted) may fault everywhere. */
static void check(struct fx *f, const char *what)
{
	struct gmem_stats st = stats(f->g);
	bool may_revoke = st.views_revoked > f->revoked;
	int bad = 0;

	if (getenv("FAULTS_DEBUG"))
		fprintf(stderr, "check %s\n", what);
	if (f->poison_unknown && !st.poisoned)
		f->poison[POISON_AT] = 0;

	for (uint64_t p = 0; p < NP && bad < 8; p++) {
		uint64_t attr = attr_at(f->g, p * f->ps);
		uint8_t b;

		if (attr != (f->priv[p] ? GMEM_ATTR_PRIVATE : 0)) {
			TH_LOG("%s: page %llu has the wrong state",
			       what, (unsigned long long)p);
			bad++;
		}
		if (!f->poison[p] && guest_byte(f, p, &b) == 0 &&
		    b != f->tag[p] && !(f->maybe_zero[p] && b == 0)) {
			TH_LOG("%s: page %llu holds %u, not %u", what,
			       (unsigned long long)p, b, f->tag[p]);
			bad++;
		}
	}
	for (int i = 0; i < f->nv; i++) {
		for (uint64_t k = 0; k < f->vpages[i] && bad < 8; k++) {
			uint64_t p = f->vfirst[i] + k;
			char *a = f->v[i] + k * f->ps;
			uint8_t b = 0;
			int sig = harness_probe_read_u8(a, &b);
			bool hidden = p >= NP || f->priv[p] || f->poison[p];

			if (may_revoke && !guest_mapping_at(a))
				continue;	/* unmapped: not guest memory */

			/* Revoked and unmapped (no hole could be made): the
			 * view faults with SIGSEGV, still unreachable. */
			if (hidden && (!sig || (sig != SIGBUS && !may_revoke) ||
				       present(a) == 1)) {
				TH_LOG("%s: view %d: %s page %llu reachable "
				       "(signal %d, present %d, %s)", what, i,
				       p >= NP ? "past-end" : "private",
				       (unsigned long long)p, sig, present(a),
				       may_revoke ? "revoked" : "not revoked");
				bad++;
			} else if (!hidden && sig && !may_revoke) {
				TH_LOG("%s: view %d: shared page %llu: signal "
				       "%d", what, i, (unsigned long long)p,
				       sig);
				bad++;
			} else if (!hidden && !sig && b != f->tag[p] &&
				   !(f->maybe_zero[p] && b == 0)) {
				TH_LOG("%s: view %d: page %llu reads %u, not "
				       "%u", what, i, (unsigned long long)p, b,
				       f->tag[p]);
				bad++;
			}
		}
	}
	if (f->pinned) {
		uint8_t b = 0;
		int sig = harness_probe_read_u8(f->pin, &b);

		/* The pin view may be the view that was revoked. */
		if ((sig && !may_revoke) || (!sig && b != f->tag[PIN_AT] &&
					     !f->maybe_zero[PIN_AT])) {
			TH_LOG("%s: the pinned page: signal %d, holds %u",
			       what, sig, b);
			bad++;
		}
	}
	if (libgmem_maps() != (int)st.vmas) {
		TH_LOG("%s: %d libgmem mappings, %llu accounted", what,
		       libgmem_maps(), (unsigned long long)st.vmas);
		bad++;
	}
	ASSERT_EQ(bad, 0);
}

/*
 * One operation: run it, then on success bring the model along.  Each
 * returns the call's result.
 */
typedef int (*op_fn)(struct fx *f);

static int op_to_private(struct fx *f)
{
	int ret = convert_pages(f->g, 4, 20, 1);	/* islands merge */

	if (!ret)
		memset(f->priv + 4, 1, 20);
	return ret;
}

static int op_to_shared(struct fx *f)
{
	int ret = convert_pages(f->g, 6, 40, 0);	/* shows three runs */

	if (!ret)
		memset(f->priv + 6, 0, 40);
	return ret;
}

static int op_flip_page(struct fx *f)	/* the DMA pattern, one page */
{
	int ret = convert_pages(f->g, 60, 1, 1);

	if (!ret) {
		f->priv[60] = 1;
		ret = convert_pages(f->g, 60, 1, 0);
		if (!ret)
			f->priv[60] = 0;
	}
	return ret;
}

static int op_big_to_private(struct fx *f)	/* re-homed at once */
{
	int ret = convert_pages(f->g, PIN_AT + 1, FRAG_AT - PIN_AT - 1, 1);

	if (!ret)
		memset(f->priv + PIN_AT + 1, 1, FRAG_AT - PIN_AT - 1);
	return ret;
}

static int op_fragment(struct fx *f)	/* one island more: mode switch */
{
	int ret = convert_pages(f->g, FRAG_AT + 64, 1, 1);

	if (!ret)
		f->priv[FRAG_AT + 64] = 1;
	return ret;
}

static int op_defragment(struct fx *f)
{
	int ret = convert_pages(f->g, FRAG_AT, 64, 0);

	if (!ret)
		memset(f->priv + FRAG_AT, 0, 64);
	return ret;
}

static int op_private_use(struct fx *f)	/* re-homes parked page 20 */
{
	struct gmem_pfn pfn;
	int ret = gmem_get_pfn(f->b, 20, GMEM_ACCESS_PRIVATE, &pfn);

	if (!ret) {
		memset(pfn.addr, 0x77, f->ps);
		f->tag[20] = 0x77;
		ret = gmem_put_pfn(f->b, 20, GMEM_ACCESS_PRIVATE);
	}
	return ret;
}

static int op_populate(struct fx *f)
{
	char buf[8192];
	ssize_t n;

	memset(buf, 0x55, sizeof(buf));
	n = gmem_populate(f->g, 40 * f->ps, buf, 2 * f->ps);
	if (n == (ssize_t)(2 * f->ps))
		f->tag[40] = f->tag[41] = 0x55;
	return n < 0 ? (int)n : 0;
}

static int op_mmap(struct fx *f)
{
	void *p;
	int ret = gmem_mmap(f->g, 4 * f->ps, 50 * f->ps, PROT_READ, &p);

	if (!ret) {
		f->v[f->nv] = p;
		f->vfirst[f->nv] = 4;
		f->vpages[f->nv] = 50;
		f->nv++;
	}
	return ret;
}

static int op_munmap(struct fx *f)
{
	int ret = gmem_munmap(f->g, f->v[1], NP * f->ps);

	if (!ret)
		f->v[1] = f->v[--f->nv];
	if (!ret) {
		f->vfirst[1] = f->vfirst[f->nv];
		f->vpages[1] = f->vpages[f->nv];
	}
	return ret;
}

static int op_pin(struct fx *f)
{
	void *p;
	int ret = gmem_pin(f->g, 50 * f->ps, 3 * f->ps, &p);

	if (!ret)
		ret = gmem_unpin(f->g, 50 * f->ps, 3 * f->ps);
	return ret;
}

static int op_unpin(struct fx *f)
{
	int ret = gmem_unpin(f->g, PIN_AT * f->ps, f->ps);

	if (!ret)
		f->pinned = false;
	return ret;
}

static int op_punch(struct fx *f)
{
	const int mode = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE;
	int ret = gmem_fallocate(f->g, mode, 16 * f->ps, 20 * f->ps);

	for (uint64_t p = 16; p < 36; p++) {
		if (!ret) {
			f->tag[p] = 0;
			f->poison[p] = 0;
		} else {
			f->maybe_zero[p] = 1;
		}
	}
	/* A failed punch may have cleared the poison or not: check()
	 * asks, once the system calls work again. */
	f->poison_unknown = ret != 0;
	return ret;
}

static int op_poison(struct fx *f)
{
	int ret = gmem_memory_failure(f->g, 3 * f->ps);

	if (!ret)
		f->poison[3] = 1;
	return ret;
}

static int op_listener(struct fx *f)
{
	struct gmem_listener *l;
	int ret = gmem_listener_register(f->g, 0, NP * f->ps, &lops, NULL,
					 &l);

	if (!ret)
		ret = gmem_listener_unregister(l);
	return ret;
}

static int op_shared_ref(struct fx *f)
{
	struct gmem_pfn pfn;
	int ret = gmem_get_pfn(f->b, 2, GMEM_ACCESS_SHARED, &pfn);

	if (!ret)
		ret = gmem_put_pfn(f->b, 2, GMEM_ACCESS_SHARED);
	return ret;
}

static const struct {
	const char *name;
	op_fn fn;
} ops_table[] = {
	{ "to_private", op_to_private },
	{ "to_shared", op_to_shared },
	{ "flip_page", op_flip_page },
	{ "big_to_private", op_big_to_private },
	{ "fragment", op_fragment },
	{ "defragment", op_defragment },
	{ "private_use", op_private_use },
	{ "populate", op_populate },
	{ "mmap", op_mmap },
	{ "munmap", op_munmap },
	{ "pin", op_pin },
	{ "unpin", op_unpin },
	{ "punch", op_punch },
	{ "poison", op_poison },
	{ "listener", op_listener },
	{ "shared_ref", op_shared_ref },
};

/*
 * Walk every call of every operation: N = 1, 2, ... until the operation
 * makes fewer than N calls of the classes.  Returns the calls walked.
 */
static unsigned long walk(unsigned int mode, unsigned int classes)
{
	unsigned long total = 0;

	for (size_t o = 0; o < sizeof(ops_table) / sizeof(ops_table[0]); o++) {
		unsigned long n;

		for (n = 1;; n++) {
			struct fx f;
			char what[96];
			int ret;

			setup(&f);
			sys_fault_arm(n, ENOMEM, mode, classes);
			ret = ops_table[o].fn(&f);
			sys_fault_disarm();
			snprintf(what, sizeof(what), "%s, call %lu failing "
				 "(%d)", ops_table[o].name, n, ret);
			if (!sys_fault_injected()) {
				if (ret)
					TH_LOG("%s: %d with no failure", what,
					       ret);
				ASSERT_EQ(ret, 0);	/* none failed */
				check(&f, what);
				teardown(&f);
				break;
			}
			check(&f, what);
			if (mode == SYS_FAULT_ONCE)
				ASSERT_EQ(stats(f.g).views_revoked,
					  f.revoked);
			teardown(&f);
		}
		total += n - 1;
	}
	return total;
}

TEST_T(every_call_fails_once, 300)
{
	GMEM_TEST_REQUIRE_BACKEND();
	TH_LOG("%lu system calls made to fail, one at a time",
	       walk(SYS_FAULT_ONCE, SYS_C_FALLIBLE));
}

TEST_T(mapping_calls_fail_from_then_on, 300)
{
	GMEM_TEST_REQUIRE_BACKEND();
	TH_LOG("%lu points after which every mapping call failed",
	       walk(SYS_FAULT_FROM, SYS_C_MAP));
}

TEST_T(every_call_fails_from_then_on, 300)
{
	GMEM_TEST_REQUIRE_BACKEND();
	TH_LOG("%lu points after which every call failed",
	       walk(SYS_FAULT_FROM, SYS_C_FALLIBLE));
}

/* gmem_create() itself: no fd or mapping left behind. */
TEST(create_unwinds)
{
	struct gmem_create_args args = { .size = 1 << 20,
					 .flags = GMEM_FLAG_MMAP };
	int fds, walked = 0;

	GMEM_TEST_REQUIRE_BACKEND();
	fds = count_fds();
	for (unsigned long n = 1;; n++) {
		struct gmem *g = NULL;
		int ret;

		sys_fault_arm(n, ENOMEM, SYS_FAULT_ONCE, SYS_C_FALLIBLE);
		ret = gmem_test_create(&args, &g);
		sys_fault_disarm();
		if (!sys_fault_injected()) {
			ASSERT_EQ(ret, 0);
			gmem_close(g);
			break;
		}
		walked++;
		/* A failed probe (in-place conversion, say) is absorbed. */
		if (!ret)
			gmem_close(g);
		else
			ASSERT_NULL(g);
		ASSERT_EQ(count_fds(), fds);
		ASSERT_EQ(libgmem_maps(), 0);
	}
	TH_LOG("%d calls of gmem_create() made to fail", walked);
	ASSERT_EQ(count_fds(), fds);
}
