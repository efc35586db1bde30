// SPDX-License-Identifier: MIT
/*
 * demo-steps.c - the six steps of "gmemctl demo" (demo.h): create and
 * populate, accept through get_pfn, share rings and a bounce buffer with
 * a pin, OVMF-style DMA flips, the refused then retried conversion of
 * the pinned buffer, and the balloon with a stray host read.  The
 * hypervisor side is one binding over the whole file whose invalidate
 * callback counts what it is told, per reason.
 */
#include <errno.h>
#include <linux/falloc.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "demo.h"
#include "output.h"

/* The SIGBUS probe: the one place a signal handler needs globals. */
static sigjmp_buf fault_jmp;
static void *volatile fault_addr;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	fault_addr = si->si_addr;
	siglongjmp(fault_jmp, sig);
}

static void on_invalidate(void *owner, uint64_t offset, uint64_t size,
			  unsigned int reason)
{
	struct demo *d = owner;

	(void)offset;
	if (reason < NR_REASONS) {
		d->inval[reason]++;
		d->inval_bytes[reason] += size;
	}
}

static const struct gmem_binding_ops owner_ops = {
	.invalidate = on_invalidate,
};

const char *demo_backend_name(const struct demo_opts *o)
{
	return o->backend == GMEM_BACKEND_KVM ? "KVM guest_memfd" : "memfd";
}

int demo_fail(const char *what, int err)
{
	out_error("demo: %s: %s", what, strerror(-err));
	return EXIT_FAIL;
}

int demo_stats(struct demo *d, struct gmem_stats *st)
{
	int ret = gmem_stat(d->g, st, sizeof(*st));

	if (ret)
		return demo_fail("gmem_stat", ret);
	return 0;
}

/* 1. Create the guest memory private; populate a firmware image. */
int step_create(struct demo *d, unsigned char **fw)
{
	struct gmem_create_args args = {
		.size = d->size,
		.flags = GMEM_FLAG_MMAP,
	};
	uint64_t seed = d->o->seed, t;
	struct gmem_stats st;
	unsigned char *img;
	void *view;
	ssize_t n;
	int ret;

	if (d->o->huge)
		args.flags |= GMEM_FLAG_HUGEPAGE | (21ULL << GMEM_HUGE_SHIFT);
	args.backend = d->o->backend;
	if (args.backend == GMEM_BACKEND_KVM)
		args.vm_fd = -1;	/* libgmem makes its own VM */
	ret = gmem_create(&args, &d->g);
	if (ret == -EOPNOTSUPP && d->o->huge) {
		out_error("demo: skipped: no 2 MiB huge pages here (%s; they "
			  "need shmem THP, see /sys/kernel/mm/"
			  "transparent_hugepage/shmem_enabled)",
			  strerror(-ret));
		return EXIT_SKIP;
	}
	if (args.backend == GMEM_BACKEND_KVM &&
	    (ret == -EOPNOTSUPP || ret == -ENOENT || ret == -EACCES ||
	     ret == -ENODEV || ret == -ENXIO)) {
		out_error("demo: skipped: no KVM guest_memfd here (%s)",
			  strerror(-ret));
		return EXIT_SKIP;
	}
	if (ret)
		return demo_fail("gmem_create", ret);

	img = malloc(d->fw_len);
	if (!img)
		return demo_fail("firmware image", -ENOMEM);
	for (uint64_t i = 0; i < d->fw_len; i += 8) {
		uint64_t v = bench_rand(&seed);

		memcpy(img + i, &v, 8);
	}
	*fw = img;
	t = bench_now();
	n = gmem_populate(d->g, 0, img, d->fw_len);
	t = bench_now() - t;
	if (n < 0)
		return demo_fail("gmem_populate", (int)n);
	if ((uint64_t)n != d->fw_len) {
		out_error("demo: gmem_populate copied %zd of %llu bytes", n,
			  (unsigned long long)d->fw_len);
		return EXIT_FAIL;
	}
	ret = gmem_mmap(d->g, 0, d->size, PROT_READ | PROT_WRITE, &view);
	if (ret)
		return demo_fail("gmem_mmap", ret);
	d->view = view;
	ret = demo_stats(d, &st);
	if (ret)
		return ret;

	out_step(1, "Created %s of guest RAM, all private (%s backend%s), "
		 "and loaded a %s firmware image into it.", fmt_bytes(d->size),
		 demo_backend_name(d->o), d->o->huge ? ", 2 MiB pages" : "",
		 fmt_bytes(d->fw_len));
	out_detail("gmem_populate: %s in %s (%.1f GiB/s); the VMM's host "
		   "view is %s, so private pages raise SIGBUS there.",
		   fmt_bytes(d->fw_len), fmt_ns((double)t),
		   (double)d->fw_len / GiB / ((double)t / 1e9),
		   st.views_uffd ? "guarded by userfaultfd" :
		   "guarded by holes");
	out_obj_begin(NULL);
	out_field_u64("step", 1);
	out_field_str("name", "create");
	out_field_u64("firmware_bytes", d->fw_len);
	out_field_u64("populate_ns", t);
	out_field_str("view_mode", st.views_uffd ? "userfaultfd" : "vma");
	out_obj_end();
	return 0;
}

/* 2. The guest accepts memory in 2 MiB chunks: private get_pfn. */
int step_accept(struct demo *d, const unsigned char *fw)
{
	uint64_t npages = d->accept_len / page_size(), idx, t, bad_fw = 0;
	struct gmem_pfn pfn;
	int ret;

	ret = gmem_bind(d->g, 0, d->size, &owner_ops, d, &d->b);
	if (ret)
		return demo_fail("gmem_bind", ret);

	out_progress_begin("accepting", npages);
	t = bench_now();
	for (idx = 0; idx < npages; ) {
		uint64_t step;

		memset(&pfn, 0, sizeof(pfn));
		ret = gmem_get_pfn(d->b, idx, GMEM_ACCESS_PRIVATE, &pfn);
		if (ret)
			return demo_fail("gmem_get_pfn (private)", ret);
		if (pfn.offset != idx * page_size()) {
			out_error("demo: gmem_get_pfn(%llu) returned offset "
				  "0x%llx", (unsigned long long)idx,
				  (unsigned long long)pfn.offset);
			return EXIT_FAIL;
		}
		/* The guest sees its firmware where it was populated. */
		if (idx * page_size() < d->fw_len &&
		    memcmp(pfn.addr, fw + idx * page_size(), page_size()))
			bad_fw++;
		step = 1ULL << pfn.order;
		if (pfn.order >= 9)
			d->huge_pages += step;
		ret = gmem_put_pfn(d->b, idx, GMEM_ACCESS_PRIVATE);
		if (ret)
			return demo_fail("gmem_put_pfn", ret);
		idx += step - (idx & (step - 1));
		out_progress(idx);
	}
	t = bench_now() - t;
	out_progress_end();
	d->accepted = npages;
	if (bad_fw) {
		out_error("demo: %llu firmware pages read back wrong through "
			  "the guest view", (unsigned long long)bad_fw);
		return EXIT_FAIL;
	}

	/* A shared access to a private page: KVM's memory-fault exit. */
	memset(&pfn, 0, sizeof(pfn));
	ret = gmem_get_pfn(d->b, 0, GMEM_ACCESS_SHARED, &pfn);
	if (ret != -EFAULT) {
		out_error("demo: shared get_pfn of a private page returned %d,"
			  " expected -EFAULT", ret);
		return EXIT_FAIL;
	}

	out_step(2, "The guest accepts its first %s in 2 MiB chunks; the "
		 "hypervisor side maps every page (gmem_get_pfn, private).",
		 fmt_bytes(d->accept_len));
	out_detail("%s pages in %s chunks, %s per page; the firmware reads "
		   "back intact through the guest view.", fmt_count(npages),
		   fmt_count(d->accept_len / CHUNK),
		   fmt_ns((double)t / (double)npages));
	out_detail("A shared access to private page 0 is a memory fault "
		   "(-EFAULT: convert %s at 0x%llx first), as KVM reports it.",
		   fmt_bytes(pfn.fault_size),
		   (unsigned long long)pfn.fault_offset);
	out_obj_begin(NULL);
	out_field_u64("step", 2);
	out_field_str("name", "accept");
	out_field_u64("pages", npages);
	out_field_u64("chunks", d->accept_len / CHUNK);
	out_field_u64("ns", t);
	out_field_dbl("ns_per_page", (double)t / (double)npages);
	out_field_u64("huge_pages", d->huge_pages);
	out_field_u64("memory_fault_offset", pfn.fault_offset);
	out_obj_end();
	return 0;
}

/* 3. Virtio rings and a bounce buffer go shared; a device pins some. */
int step_share(struct demo *d)
{
	uint64_t inval0 = d->inval[GMEM_INVALIDATE_CONVERT];
	uint64_t bytes0 = d->inval_bytes[GMEM_INVALIDATE_CONVERT];
	uint64_t t_rings, t_swiotlb, off, bad = 0;
	unsigned char *dev;
	void *pin;
	int ret;

	t_rings = bench_now();
	for (unsigned int i = 0; i < NR_RINGS; i++) {
		ret = convert_range(d->g, d->rings_off + i * d->ring_len,
				    d->ring_len, false, NULL);
		if (ret)
			return demo_fail("convert a virtio ring to shared", ret);
	}
	t_rings = bench_now() - t_rings;
	/* The host sets the rings up (the guest does, in real life). */
	memset(d->view + d->rings_off, 0, NR_RINGS * d->ring_len);

	t_swiotlb = bench_now();
	for (off = 0; off < d->swiotlb_len; off += CHUNK) {
		ret = convert_range(d->g, d->swiotlb_off + off,
				    min_u64(CHUNK, d->swiotlb_len - off),
				    false, NULL);
		if (ret)
			return demo_fail("convert the bounce buffer to shared",
				    ret);
	}
	t_swiotlb = bench_now() - t_swiotlb;

	ret = gmem_pin(d->g, d->pin_off, d->pin_len, &pin);
	if (ret)
		return demo_fail("gmem_pin", ret);
	d->pinned = true;
	/* The device DMAs into the pinned buffer ... */
	dev = pin;
	for (off = 0; off < d->pin_len; off += page_size())
		dev[off] = (unsigned char)(off / page_size() + 1);
	/* ... and the VMM sees it in place through its own view. */
	for (off = 0; off < d->pin_len; off += page_size())
		bad += (unsigned char)d->view[d->pin_off + off] !=
		       (unsigned char)(off / page_size() + 1);
	if (bad) {
		out_error("demo: %llu pinned pages differ in the host view",
			  (unsigned long long)bad);
		return EXIT_FAIL;
	}

	out_step(3, "The guest shares %d virtio rings (%s each) and a %s "
		 "bounce buffer (in 2 MiB conversions); a device pins %s of "
		 "it.", NR_RINGS, fmt_bytes(d->ring_len),
		 fmt_bytes(d->swiotlb_len), fmt_bytes(d->pin_len));
	out_detail("Rings: %s, bounce buffer: %s.  The owner was told to "
		   "drop %s in %llu invalidation(s); what the device wrote "
		   "is what the host view reads.", fmt_ns((double)t_rings),
		   fmt_ns((double)t_swiotlb),
		   fmt_bytes(d->inval_bytes[GMEM_INVALIDATE_CONVERT] - bytes0),
		   (unsigned long long)(d->inval[GMEM_INVALIDATE_CONVERT] -
					inval0));
	out_obj_begin(NULL);
	out_field_u64("step", 3);
	out_field_str("name", "share");
	out_field_u64("rings", NR_RINGS);
	out_field_u64("ring_bytes", d->ring_len);
	out_field_u64("rings_ns", t_rings);
	out_field_u64("bounce_bytes", d->swiotlb_len);
	out_field_u64("bounce_ns", t_swiotlb);
	out_field_u64("pinned_bytes", d->pin_len);
	out_field_u64("invalidations",
		      d->inval[GMEM_INVALIDATE_CONVERT] - inval0);
	out_obj_end();
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static uint32_t clamp_ns(uint64_t ns)
{
	return ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

/* 4. OVMF-style DMA: 1-2 pages shared, touched, private, N times. */
int step_dma(struct demo *d)
{
	uint64_t n = d->o->flips, seed = d->o->seed ^ 0x9e3779b97f4a7c15ULL;
	uint64_t sum = 0, t, bad = 0, i, k = 0;
	unsigned char expect[MAX_SLOTS * 2] = { 0 };
	uint32_t *lat;
	int ret;

	if (!seed)
		seed = 1;
	lat = malloc(sizeof(*lat) * 2 * (n ? n : 1));
	if (!lat)
		return demo_fail("latency buffer", -ENOMEM);
	out_progress_begin("DMA transactions", n);
	t = bench_now();
	for (i = 0; i < n; i++) {
		uint64_t r = bench_rand(&seed), slot = r % d->nslots;
		uint64_t np = 1 + ((r >> 32) & 1), t0, t1;
		uint64_t off = d->dma_off + slot * SLOT_PAGES * page_size();

		t0 = bench_now();
		ret = convert_range(d->g, off, np * page_size(), false, NULL);
		t1 = bench_now();
		if (ret)
			goto err;
		lat[k++] = clamp_ns(t1 - t0);
		sum += t1 - t0;
		/* The device reads and writes the buffer in place. */
		for (uint64_t p = 0; p < np; p++) {
			volatile unsigned char *b = (unsigned char *)d->view +
						    off + p * page_size();

			bad += *b != expect[slot * 2 + p];
			*b = ++expect[slot * 2 + p];
		}
		t0 = bench_now();
		ret = convert_range(d->g, off, np * page_size(), true, NULL);
		t1 = bench_now();
		if (ret)
			goto err;
		lat[k++] = clamp_ns(t1 - t0);
		sum += t1 - t0;
		out_progress(i + 1);
	}
	t = bench_now() - t;
	out_progress_end();
	if (bad) {
		free(lat);
		out_error("demo: %llu DMA buffers lost their contents across "
			  "a conversion", (unsigned long long)bad);
		return EXIT_FAIL;
	}
	qsort(lat, k, sizeof(*lat), cmp_u32);
	d->p50 = k ? lat[k / 2] : 0;
	d->p99 = k ? lat[k * 99 / 100] : 0;
	d->conv_per_s = sum ? (double)k * 1e9 / (double)sum : 0;
	d->flip_s = (double)t / 1e9;
	free(lat);

	out_step(4, "OVMF-style DMA: each transaction shares 1-2 pages, the "
		 "device touches them, the guest takes them back (%s "
		 "transactions).", fmt_count(n));
	out_detail("%s conversions in %.2f s: %s per second, p50 %s, p99 %s;"
		   " every buffer kept its contents (in place, no copy).",
		   fmt_count(k), d->flip_s, fmt_count((uint64_t)d->conv_per_s),
		   fmt_ns(d->p50), fmt_ns(d->p99));
	out_obj_begin(NULL);
	out_field_u64("step", 4);
	out_field_str("name", "dma");
	out_field_u64("transactions", n);
	out_field_u64("conversions", k);
	out_field_dbl("seconds", d->flip_s);
	out_field_dbl("conversions_per_second", d->conv_per_s);
	out_field_dbl("p50_ns", d->p50);
	out_field_dbl("p99_ns", d->p99);
	out_obj_end();
	return 0;

err:
	free(lat);
	return demo_fail("DMA buffer conversion", ret);
}

/* 5. The pinned buffer: EAGAIN with the offset, then success. */
int step_pinned(struct demo *d)
{
	uint64_t eoff = ~0ULL, t;
	int ret;

	ret = convert_range(d->g, d->swiotlb_off, d->swiotlb_len, true, &eoff);
	if (ret != -EAGAIN) {
		out_error("demo: converting a pinned buffer to private "
			  "returned %d (%s), expected -EAGAIN", ret,
			  ret ? strerror(-ret) : "success");
		return EXIT_FAIL;
	}
	d->eagain_offset = eoff;
	ret = gmem_unpin(d->g, d->pin_off, d->pin_len);
	if (ret)
		return demo_fail("gmem_unpin", ret);
	d->pinned = false;
	t = bench_now();
	ret = convert_range(d->g, d->swiotlb_off, d->swiotlb_len, true, NULL);
	t = bench_now() - t;
	if (ret)
		return demo_fail("convert the bounce buffer back to private", ret);

	out_step(5, "The guest takes the whole bounce buffer back while the "
		 "device still pins %s of it.", fmt_bytes(d->pin_len));
	out_detail("Refused: EAGAIN at offset 0x%llx (the first pinned page),"
		   " nothing converted; once the device unpins, the same call"
		   " succeeds in %s.", (unsigned long long)eoff,
		   fmt_ns((double)t));
	out_obj_begin(NULL);
	out_field_u64("step", 5);
	out_field_str("name", "pinned");
	out_field_str("first_error", "EAGAIN");
	out_field_u64("error_offset", eoff);
	out_field_bool("error_offset_is_pin", eoff == d->pin_off);
	out_field_u64("retry_ns", t);
	out_obj_end();
	if (eoff != d->pin_off) {
		out_error("demo: error_offset 0x%llx, the pin starts at 0x%llx",
			  (unsigned long long)eoff,
			  (unsigned long long)d->pin_off);
		return EXIT_FAIL;
	}
	return 0;
}

/* 6. Balloon punch-hole; a stray host access to private memory. */
int step_balloon(struct demo *d)
{
	uint64_t inval0 = d->inval[GMEM_INVALIDATE_PUNCH], t, probe, attr;
	struct sigaction sa = { .sa_sigaction = on_sigbus,
				.sa_flags = SA_SIGINFO }, old;
	struct gmem_stats before, after;
	int ret;

	ret = demo_stats(d, &before);
	if (ret)
		return ret;
	t = bench_now();
	ret = gmem_fallocate(d->g, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
			     d->balloon_off, d->balloon_len);
	t = bench_now() - t;
	if (ret)
		return demo_fail("gmem_fallocate (punch hole)", ret);
	ret = demo_stats(d, &after);
	if (ret)
		return ret;

	/* A stray host read of a firmware page, which is private. */
	probe = d->fw_len / 2;
	ret = gmem_get_attributes(d->g, probe, &attr, NULL);
	if (ret)
		return demo_fail("gmem_get_attributes", ret);
	if (!(attr & GMEM_ATTR_PRIVATE)) {
		out_error("demo: firmware page 0x%llx is not private",
			  (unsigned long long)probe);
		return EXIT_FAIL;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old);
	fault_addr = NULL;
	if (sigsetjmp(fault_jmp, 1) == 0) {
		volatile char c = d->view[probe];

		sigaction(SIGBUS, &old, NULL);
		out_error("demo: the host read private memory at 0x%llx (%d)",
			  (unsigned long long)probe, c);
		return EXIT_FAIL;
	}
	sigaction(SIGBUS, &old, NULL);
	d->sigbus_offset = (uint64_t)((char *)fault_addr - d->view);

	out_step(6, "Balloon: the guest gives back %s, the host punches it "
		 "out; then a stray host read of private memory.",
		 fmt_bytes(d->balloon_len));
	out_detail("Allocated %s -> %s in %s; the owner was invalidated "
		   "(%llu call(s)); the pages stay private.",
		   fmt_bytes(before.allocated), fmt_bytes(after.allocated),
		   fmt_ns((double)t), (unsigned long long)
		   (d->inval[GMEM_INVALIDATE_PUNCH] - inval0));
	out_detail("Reading firmware page 0x%llx through the host view: "
		   "SIGBUS caught at offset 0x%llx.", (unsigned long long)probe,
		   (unsigned long long)d->sigbus_offset);
	out_obj_begin(NULL);
	out_field_u64("step", 6);
	out_field_str("name", "balloon");
	out_field_u64("punched_bytes", d->balloon_len);
	out_field_u64("punch_ns", t);
	out_field_u64("allocated_before", before.allocated);
	out_field_u64("allocated_after", after.allocated);
	out_field_u64("invalidations",
		      d->inval[GMEM_INVALIDATE_PUNCH] - inval0);
	out_field_u64("sigbus_offset", d->sigbus_offset);
	out_obj_end();
	if (d->sigbus_offset != probe) {
		out_error("demo: SIGBUS at offset 0x%llx, expected 0x%llx",
			  (unsigned long long)d->sigbus_offset,
			  (unsigned long long)probe);
		return EXIT_FAIL;
	}
	return 0;
}
