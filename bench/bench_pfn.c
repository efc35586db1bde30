// SPDX-License-Identifier: MIT
/*
 * bench_pfn.c - the hypervisor side at VMM scale: what a vCPU loop pays
 * for gmem_get_pfn()/gmem_put_pfn() (issue 11).
 *
 *   pfn_refs_<size>   shared get + put of one of 64 present pages, with
 *                     1M other shared references outstanding (16 each on
 *                     65,536 pages spread evenly over the file), against
 *                     the same with 1 outstanding, on 1 GiB, 16 GiB and
 *                     1 TiB files (target: ratio <= 1.2); shared, because
 *                     only shared references are counted
 *   pfn_present       get_pfn of a random present page of a 1 GiB file
 *                     (the puts come after, untimed) against the floor:
 *                     a lookup in a flat array of page addresses with the
 *                     same random indexes (target: ratio <= 3); also
 *                     against the same lookup taking a reference (an
 *                     atomic increment of a per-page count), which is
 *                     what handing out a page safely costs at least
 *   table_three_levels  the lookup itself, in three levels of nodes
 *                     against the flat table libgmem uses (no target:
 *                     the measurement behind src/refs.h)
 *   pfn_threads       get + put throughput of 2 threads against 1, each
 *                     on its own pages, while a third thread converts
 *                     other pages of the binding (one conversion each
 *                     100 us); reported as a speedup (target: >= 1.6)
 *   pfn_first_touch   get_pfn (private) of every page of a new 256 MiB
 *                     file, in order, against writing one byte per page
 *                     through a plain mapping of a memfd (target:
 *                     ratio <= 1.5)
 *
 * Paired rounds, in alternating order; the ratio is the median of the
 * rounds' ratios.  -q: fewer rounds, smaller files.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"
#include "gmem.h"

#define PAGE		4096ULL
#define GiB		(1ULL << 30)
#define HOT		64		/* pages the timed loop cycles over */
#define HELD_PAGES	65536ULL
#define HELD_EACH	16		/* 1M references */

static volatile uintptr_t sink;

static void no_invalidate(void *owner, uint64_t off, uint64_t size,
			  unsigned int reason)
{
	(void)owner, (void)off, (void)size, (void)reason;
}

static const struct gmem_binding_ops bops = { .invalidate = no_invalidate };

static struct gmem *make(uint64_t size, uint64_t flags,
			 struct gmem_binding **b)
{
	struct gmem_create_args args = { .size = size, .flags = flags };
	struct gmem *g;

	bench_check(gmem_create(&args, &g), "gmem_create");
	bench_check(gmem_bind(g, 0, size, &bops, NULL, b), "gmem_bind");
	return g;
}

static void get(struct gmem_binding *b, uint64_t i, unsigned int access)
{
	struct gmem_pfn pfn;

	bench_check(gmem_get_pfn(b, i, access, &pfn), "gmem_get_pfn");
	sink += (uintptr_t)pfn.addr;
}

/* ns per get + put over the HOT pages at [hot, hot + HOT). */
static double cycle(struct gmem_binding *b, uint64_t hot, uint64_t ops,
		    unsigned int access)
{
	uint64_t t = bench_now();

	for (uint64_t n = 0; n < ops; n++) {
		uint64_t i = hot + (n & (HOT - 1));

		get(b, i, access);
		bench_check(gmem_put_pfn(b, i, access), "gmem_put_pfn");
	}
	return (double)(bench_now() - t) / (double)ops;
}

/* 1M references against 1, on a file of size bytes. */
static void refs_scale(const char *name, uint64_t size, unsigned int rounds,
		       uint64_t ops)
{
	uint64_t npages = size / PAGE, stride = (npages - HOT) / HELD_PAGES;
	double many[BENCH_MAX_ROUNDS], one[BENCH_MAX_ROUNDS];
	struct gmem_binding *b1, *bm;
	struct gmem *g1, *gm;
	struct gmem_stats st;

	g1 = make(size, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED, &b1);
	gm = make(size, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED, &bm);
	for (uint64_t i = 0; i < HOT; i++) {	/* allocate the hot pages */
		get(b1, i, GMEM_ACCESS_SHARED);
		get(bm, i, GMEM_ACCESS_SHARED);
		gmem_put_pfn(b1, i, GMEM_ACCESS_SHARED);
		gmem_put_pfn(bm, i, GMEM_ACCESS_SHARED);
	}
	get(b1, npages - 1, GMEM_ACCESS_SHARED);	/* the 1 outstanding */
	for (uint64_t k = 0; k < HELD_PAGES; k++)
		for (int r = 0; r < HELD_EACH; r++)
			get(bm, HOT + k * stride, GMEM_ACCESS_SHARED);
	bench_check(gmem_stat(gm, &st, sizeof(st)), "gmem_stat");
	if (st.pfn_refs != HELD_PAGES * HELD_EACH)
		bench_die("%s: %llu references outstanding", name,
			  (unsigned long long)st.pfn_refs);
	for (unsigned int r = 0; r < rounds; r++) {
		if (r & 1) {
			one[r] = cycle(b1, 0, ops, GMEM_ACCESS_SHARED);
			many[r] = cycle(bm, 0, ops, GMEM_ACCESS_SHARED);
		} else {
			many[r] = cycle(bm, 0, ops, GMEM_ACCESS_SHARED);
			one[r] = cycle(b1, 0, ops, GMEM_ACCESS_SHARED);
		}
	}
	bench_report_paired(name, ops, many, "1_outstanding", one, rounds,
			    (struct bench_target){ BENCH_RATIO_LE, 1.2 });
	printf("# %s: %llu references outstanding on %llu pages of %llu\n",
	       name, (unsigned long long)st.pfn_refs,
	       (unsigned long long)HELD_PAGES, (unsigned long long)npages);
	bench_check(gmem_unbind(b1), "gmem_unbind");
	bench_check(gmem_unbind(bm), "gmem_unbind");
	gmem_close(g1);
	gmem_close(gm);
}

/* get_pfn of random present pages against a flat array (and its counts). */
static void present(unsigned int rounds, uint64_t size, uint64_t ops)
{
	uint64_t npages = size / PAGE, seed = 42;
	int bad = 0;
	double ours[BENCH_MAX_ROUNDS], flat[BENCH_MAX_ROUNDS],
	       bare[BENCH_MAX_ROUNDS];
	_Atomic uint32_t *count = calloc(npages, sizeof(*count));
	void **addr = calloc(npages, sizeof(*addr));
	uint32_t *idx = malloc(ops * sizeof(*idx));
	struct gmem_binding *b;
	struct gmem_pfn pfn;
	struct gmem *g;

	if (!count || !addr || !idx)
		bench_die("out of memory");
	g = make(size, GMEM_FLAG_MMAP, &b);
	for (uint64_t i = 0; i < npages; i++) {
		bench_check(gmem_get_pfn(b, i, GMEM_ACCESS_PRIVATE, &pfn),
			    "gmem_get_pfn");
		addr[i] = pfn.addr;
		gmem_put_pfn(b, i, GMEM_ACCESS_PRIVATE);
	}
	for (uint64_t n = 0; n < ops; n++)
		idx[n] = (uint32_t)(bench_rand(&seed) % npages);
	for (unsigned int r = 0; r < rounds; r++) {
		for (int k = 0; k < 3; k++) {
			uint64_t t = bench_now();

			/* Only the lookups are timed; the puts (decrements)
			 * come after. */
			switch ((k + r) % 3) {
			case 0:
				/* The check after the loop, as the floor's
				 * loop has no call besides the lookup. */
				for (uint64_t n = 0; n < ops; n++) {
					bad |= gmem_get_pfn(b, idx[n],
							GMEM_ACCESS_PRIVATE,
							&pfn);
					sink += (uintptr_t)pfn.addr;
				}
				ours[r] = (double)(bench_now() - t) / ops;
				bench_check(bad, "gmem_get_pfn");
				for (uint64_t n = 0; n < ops; n++)
					gmem_put_pfn(b, idx[n],
						     GMEM_ACCESS_PRIVATE);
				break;
			case 1:
				for (uint64_t n = 0; n < ops; n++) {
					atomic_fetch_add(&count[idx[n]], 1);
					sink += (uintptr_t)addr[idx[n]];
				}
				flat[r] = (double)(bench_now() - t) / ops;
				for (uint64_t n = 0; n < ops; n++)
					atomic_fetch_sub(&count[idx[n]], 1);
				break;
			default:
				for (uint64_t n = 0; n < ops; n++)
					sink += (uintptr_t)addr[idx[n]];
				bare[r] = (double)(bench_now() - t) / ops;
			}
		}
	}
	bench_report_paired("pfn_present", ops, ours, "flat_array_lookup",
			    bare, rounds,
			    (struct bench_target){ BENCH_RATIO_LE, 3.0 });
	bench_report_paired("pfn_present", ops, ours, "flat_array_counted",
			    flat, rounds, NO_TARGET);
	bench_check(gmem_unbind(b), "gmem_unbind");
	gmem_close(g);
	free(count);
	free(addr);
	free(idx);
}

/* ---- threads ---------------------------------------------------------- */

struct run {
	struct gmem *g;
	struct gmem_binding *b;
	atomic_bool go, stop;
	atomic_uint_fast64_t ops[2];
	uint64_t npages;
};

struct vcpu {
	struct run *r;
	int id;
};

static void *vcpu(void *arg)
{
	struct vcpu *v = arg;
	struct run *r = v->r;
	uint64_t hot = (uint64_t)v->id * (r->npages / 4), n = 0;

	while (!atomic_load(&r->go))
		;
	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		for (int k = 0; k < 256; k++, n++) {
			uint64_t i = hot + (n & (HOT - 1));
			struct gmem_pfn pfn;
			int ret = gmem_get_pfn(r->b, i, GMEM_ACCESS_PRIVATE,
					       &pfn);

			if (ret == -EAGAIN)	/* an invalidation: retry */
				continue;
			bench_check(ret, "gmem_get_pfn");
			gmem_put_pfn(r->b, i, GMEM_ACCESS_PRIVATE);
		}
	}
	atomic_store(&r->ops[v->id], n);
	return NULL;
}

static void *converter(void *arg)
{
	struct run *r = arg;
	uint64_t base = r->npages / 2, n = 0;

	while (!atomic_load(&r->go))
		;
	while (!atomic_load(&r->stop)) {
		struct gmem_attributes a = {
			.offset = (base + (n % 512)) * PAGE, .size = PAGE,
			.attributes = (n / 512) & 1 ? GMEM_ATTR_PRIVATE : 0,
		};

		bench_check(gmem_set_attributes(r->g, &a), "convert");
		n++;
		usleep(100);
	}
	return NULL;
}

/* get + put per second of nthreads vCPU threads, a converter running. */
static double throughput(int nthreads, uint64_t ms)
{
	struct run r = { .npages = 16384 };
	struct vcpu v[2];
	pthread_t t[2], c;
	uint64_t total = 0, t0;

	r.g = make(r.npages * PAGE, GMEM_FLAG_MMAP, &r.b);
	for (int i = 0; i < nthreads; i++)
		for (uint64_t k = 0; k < HOT; k++) {
			get(r.b, (uint64_t)i * (r.npages / 4) + k,
			    GMEM_ACCESS_PRIVATE);
			gmem_put_pfn(r.b, (uint64_t)i * (r.npages / 4) + k,
				     GMEM_ACCESS_PRIVATE);
		}
	for (int i = 0; i < nthreads; i++) {
		v[i] = (struct vcpu){ &r, i };
		if (pthread_create(&t[i], NULL, vcpu, &v[i]))
			bench_die("pthread_create");
	}
	if (pthread_create(&c, NULL, converter, &r))
		bench_die("pthread_create");
	t0 = bench_now();
	atomic_store(&r.go, true);
	usleep((useconds_t)(ms * 1000));
	atomic_store(&r.stop, true);
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	t0 = bench_now() - t0;
	pthread_join(c, NULL);
	for (int i = 0; i < nthreads; i++)
		total += atomic_load(&r.ops[i]);
	bench_check(gmem_unbind(r.b), "gmem_unbind");
	gmem_close(r.g);
	return (double)total * 1e9 / (double)t0;
}

static void threads(unsigned int rounds, uint64_t ms)
{
	double two[BENCH_MAX_ROUNDS], one[BENCH_MAX_ROUNDS], s[BENCH_MAX_ROUNDS];

	for (unsigned int r = 0; r < rounds; r++) {
		if (r & 1) {
			two[r] = throughput(2, ms);
			one[r] = throughput(1, ms);
		} else {
			one[r] = throughput(1, ms);
			two[r] = throughput(2, ms);
		}
		/* As times per op, so the paired ratio is 1 / speedup. */
		two[r] = 1e9 / two[r];
		one[r] = 1e9 / one[r];
		s[r] = one[r] / two[r];
	}
	bench_report_paired("pfn_threads_2", 0, two, "1_thread", one, rounds,
			    NO_TARGET);
	printf("name=pfn_threads_speedup ops=%u ratio=%.4g target=ratio>=1.6 "
	       "met=%s\n", rounds, bench_median(s, rounds),
	       bench_median(s, rounds) >= 1.6 ? "yes" : "no");
}

/* ---- first touch ------------------------------------------------------- */

static double touch_gmem(uint64_t size)
{
	struct gmem_binding *b;
	struct gmem *g = make(size, GMEM_FLAG_MMAP, &b);
	uint64_t t = bench_now();

	for (uint64_t i = 0; i < size / PAGE; i++) {
		get(b, i, GMEM_ACCESS_PRIVATE);
		gmem_put_pfn(b, i, GMEM_ACCESS_PRIVATE);
	}
	t = bench_now() - t;
	bench_check(gmem_unbind(b), "gmem_unbind");
	gmem_close(g);
	return (double)t / (double)(size / PAGE);
}

/*
 * Why the per-page words are one flat array (src/refs.h): the same
 * lookup (one word, READY test, three fields filled, not inlined) in a
 * flat NORESERVE mapping against three levels of nodes (a top array,
 * 512-pointer middles, 64-word leaves from malloc, interleaved with
 * other allocations as a long-running process's heap is).
 */
struct tnode_leaf { _Atomic uint64_t w[64]; };
struct tnode_mid { struct tnode_leaf *l[512]; };

static __attribute__((noinline)) int look3(struct tnode_mid **top,
					   uint64_t i, struct gmem_pfn *p)
{
	struct tnode_mid *m = top[i >> 15];
	struct tnode_leaf *l = m ? m->l[(i >> 6) & 511] : NULL;
	uint64_t w = l ? atomic_load_explicit(&l->w[i & 63],
					      memory_order_acquire) : 0;

	if (!(w & 1))
		return -1;
	p->addr = (void *)(uintptr_t)(i << 12);
	p->offset = i << 12;
	p->order = (unsigned int)(w >> 50) & 31;
	return 0;
}

static __attribute__((noinline)) int look_flat(_Atomic uint64_t *f,
					       uint64_t i, struct gmem_pfn *p)
{
	uint64_t w = atomic_load_explicit(&f[i], memory_order_acquire);

	if (!(w & 1))
		return -1;
	p->addr = (void *)(uintptr_t)(i << 12);
	p->offset = i << 12;
	p->order = (unsigned int)(w >> 50) & 31;
	return 0;
}

static void table_shape(unsigned int rounds, uint64_t npages, uint64_t ops)
{
	double flat[BENCH_MAX_ROUNDS], three[BENCH_MAX_ROUNDS];
	uint64_t nmid = (npages + 32767) / 32768, seed = 7;
	struct tnode_mid **top = calloc(nmid, sizeof(*top));
	_Atomic uint64_t *f = mmap(NULL, npages * 8, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS |
				   MAP_NORESERVE, -1, 0);
	uint32_t *idx = malloc(ops * sizeof(*idx));
	void **spread = calloc(npages / 64, sizeof(*spread));
	struct gmem_pfn pfn;
	int bad = 0;

	if (!top || f == MAP_FAILED || !idx || !spread)
		bench_die("out of memory");
	for (uint64_t i = 0; i < npages; i++) {
		struct tnode_mid **m = &top[i >> 15];

		if (!*m && !(*m = calloc(1, sizeof(**m))))
			bench_die("out of memory");
		struct tnode_leaf **l = &(*m)->l[(i >> 6) & 511];

		if (!*l) {
			*l = calloc(1, sizeof(**l));
			spread[i >> 6] = malloc(200);	/* the rest of a heap */
			if (!*l || !spread[i >> 6])
				bench_die("out of memory");
		}
		(*l)->w[i & 63] = 1;
		f[i] = 1;
	}
	for (uint64_t n = 0; n < ops; n++)
		idx[n] = (uint32_t)(bench_rand(&seed) % npages);
	for (unsigned int r = 0; r < rounds; r++) {
		for (int k = 0; k < 2; k++) {
			uint64_t t = bench_now();

			if ((k + r) & 1) {
				for (uint64_t n = 0; n < ops; n++) {
					bad |= look3(top, idx[n], &pfn);
					sink += (uintptr_t)pfn.addr;
				}
				three[r] = (double)(bench_now() - t) / ops;
			} else {
				for (uint64_t n = 0; n < ops; n++) {
					bad |= look_flat(f, idx[n], &pfn);
					sink += (uintptr_t)pfn.addr;
				}
				flat[r] = (double)(bench_now() - t) / ops;
			}
		}
	}
	bench_check(bad, "lookup");
	bench_report_paired("table_three_levels", ops, three, "flat_table",
			    flat, rounds, NO_TARGET);
	for (uint64_t i = 0; i < nmid; i++) {
		for (int j = 0; top[i] && j < 512; j++)
			free(top[i]->l[j]);
		free(top[i]);
	}
	for (uint64_t i = 0; i < npages / 64; i++)
		free(spread[i]);
	free(spread);
	free(top);
	free(idx);
	munmap((void *)f, npages * 8);
}

static void first_touch(unsigned int rounds, uint64_t size)
{
	double ours[BENCH_MAX_ROUNDS], base[BENCH_MAX_ROUNDS];

	for (unsigned int r = 0; r < rounds; r++) {
		if (r & 1) {
			base[r] = bench_memfd_touch(size, true);
			ours[r] = touch_gmem(size);
		} else {
			ours[r] = touch_gmem(size);
			base[r] = bench_memfd_touch(size, true);
		}
	}
	bench_report_paired("pfn_first_touch", size / PAGE, ours,
			    "memfd_mmap_touch", base, rounds,
			    (struct bench_target){ BENCH_RATIO_LE, 1.5 });
}

int main(int argc, char **argv)
{
	bool quick = bench_quick(argc, argv);
	unsigned int rounds = quick ? 3 : 9;

	refs_scale("pfn_refs_1g", GiB, rounds, quick ? 200000 : 1000000);
	if (!quick) {
		refs_scale("pfn_refs_16g", 16 * GiB, rounds, 1000000);
		refs_scale("pfn_refs_1t", 1024 * GiB, rounds, 1000000);
	}
	present(rounds, quick ? 256ULL << 20 : GiB, quick ? 500000 : 2000000);
	table_shape(rounds, quick ? 65536 : 262144, quick ? 500000 : 2000000);
	threads(quick ? 3 : 7, quick ? 100 : 300);
	first_touch(rounds, quick ? 64ULL << 20 : 256ULL << 20);
	return 0;
}
