// SPDX-License-Identifier: MIT
/*
 * vmm_loop.c - how a VMM drives libgmem, in miniature.
 *
 * Three consumers of one guest memory file:
 *  - a vCPU: a binding (think: KVM memslot) whose owner reaches guest
 *    pages with gmem_get_pfn().  When the guest touches a page in the
 *    wrong state, the call fails like KVM_EXIT_MEMORY_FAULT: the VMM
 *    converts the reported range and resumes, as QEMU's kvm_cpu_exec()
 *    does on a memory-fault exit.  It maps a page only if no
 *    invalidation came in between (the retry-on-sequence pattern of
 *    KVM's mmu_invalidate_seq: copy this part);
 *  - a device doing DMA into a shared bounce buffer: it pins the buffer,
 *    so the guest cannot take it back to private until the DMA is done;
 *  - an IOMMU (a listener, think: VFIO) that maps every run of memory
 *    that becomes shared and unmaps it before it becomes private.
 *
 * Run: make build/examples/vmm_loop && build/examples/vmm_loop
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include <gmem.h>

#define PAGE		4096ULL
#define GUEST_RAM	(256 * PAGE)
#define BOUNCE		(64 * PAGE)

/* --- the IOMMU: a listener ------------------------------------------ */

static int iommu_map(void *opaque, uint64_t off, uint64_t size)
{
	(void)opaque;
	printf("    iommu: map   [0x%06llx, +0x%llx) for DMA\n",
	       (unsigned long long)off, (unsigned long long)size);
	return 0;
}

static void iommu_unmap(void *opaque, uint64_t off, uint64_t size)
{
	(void)opaque;
	printf("    iommu: unmap [0x%06llx, +0x%llx)\n",
	       (unsigned long long)off, (unsigned long long)size);
}

static const struct gmem_listener_ops iommu_ops = {
	.populate = iommu_map,
	.discard = iommu_unmap,
};

/* --- the vCPU's memslot: a binding ---------------------------------- */

/* The memslot's "page table" lock: KVM's mmu_lock. */
static pthread_mutex_t mmu_lock = PTHREAD_MUTEX_INITIALIZER;

static void memslot_invalidate(void *owner, uint64_t off, uint64_t size,
			       unsigned int reason)
{
	static const char *const why[] = {
		[GMEM_INVALIDATE_PUNCH] = "punch-hole",
		[GMEM_INVALIDATE_CONVERT] = "conversion",
		[GMEM_INVALIDATE_RELEASE] = "file closed",
		[GMEM_INVALIDATE_POISON] = "memory failure",
	};

	(void)owner;
	/* Zap the range from the guest's page tables, under the lock the
	 * vCPU takes to install; a real VMM would also kick its vCPUs and
	 * may wait for them here: gmem_get_pfn() never waits for this. */
	pthread_mutex_lock(&mmu_lock);
	printf("    memslot: drop mappings of [0x%06llx, +0x%llx) (%s)\n",
	       (unsigned long long)off, (unsigned long long)size, why[reason]);
	pthread_mutex_unlock(&mmu_lock);
}

static const struct gmem_binding_ops memslot_ops = {
	.invalidate = memslot_invalidate,
};

/* One guest access: private (encrypted) or shared (for I/O). */
struct access {
	uint64_t gpa;
	unsigned int kind;
	const char *what;
};

static int convert(struct gmem *g, uint64_t off, uint64_t size,
		   int private, uint64_t *error_offset)
{
	struct gmem_attributes a = {
		.offset = off,
		.size = size,
		.attributes = private ? GMEM_ATTR_PRIVATE : 0,
	};
	int ret = gmem_set_attributes(g, &a);

	if (error_offset)
		*error_offset = a.error_offset;
	return ret;
}

/*
 * The vCPU loop: try the access; on a memory fault convert what the
 * fault names and retry, as a VMM does on KVM_EXIT_MEMORY_FAULT; on
 * -EAGAIN (a change under way) go back to the loop and retry; map the
 * page only if no invalidation began or ended since the sequence was
 * read, else drop it and start again.
 */
static int vcpu_access(struct gmem *g, struct gmem_binding *slot,
		       const struct access *acc)
{
	uint64_t index = acc->gpa / PAGE;
	struct gmem_pfn pfn = { 0 };	/* filled by every -EFAULT, but
					   the compiler cannot know that */
	int ret = -EAGAIN;

	for (int tries = 0; tries < 1000; tries++) {
		uint64_t seq = gmem_invalidate_seq(slot);

		ret = gmem_get_pfn(slot, index, acc->kind, &pfn);
		if (ret == -EAGAIN) {	/* handle requests, re-enter */
			sched_yield();
			continue;
		}
		if (ret == -EFAULT) {
			printf("  vcpu: memory fault at 0x%06llx (%s access), "
			       "VMM converts it\n",
			       (unsigned long long)pfn.fault_offset,
			       pfn.fault_flags & GMEM_MEMORY_FAULT_PRIVATE ?
			       "private" : "shared");
			ret = convert(g, pfn.fault_offset, pfn.fault_size,
				      !!(pfn.fault_flags &
					 GMEM_MEMORY_FAULT_PRIVATE), NULL);
			if (ret)
				return ret;
			continue;
		}
		if (ret)
			return ret;
		pthread_mutex_lock(&mmu_lock);
		if (gmem_invalidate_retry(slot, seq)) {	/* stale: again */
			pthread_mutex_unlock(&mmu_lock);
			gmem_put_pfn(slot, index, acc->kind);
			continue;
		}
		/* "Install" the mapping and let the guest run on it. */
		snprintf(pfn.addr, 32, "%s", acc->what);
		pthread_mutex_unlock(&mmu_lock);
		printf("  vcpu: %s at 0x%06llx: ok\n", acc->what,
		       (unsigned long long)acc->gpa);
		/* KVM keeps no reference once mapped: put it back. */
		return gmem_put_pfn(slot, index, acc->kind);
	}
	return ret;
}

int main(void)
{
	struct gmem_create_args args = { .size = GUEST_RAM };
	const struct access program[] = {
		{ 0x0000, GMEM_ACCESS_PRIVATE, "firmware writes its stack" },
		{ BOUNCE, GMEM_ACCESS_SHARED, "driver fills a bounce buffer" },
		{ BOUNCE + PAGE, GMEM_ACCESS_SHARED, "driver fills page 2" },
		{ 0x3000, GMEM_ACCESS_PRIVATE, "kernel writes private data" },
	};
	struct gmem_binding *slot;
	struct gmem_listener *iommu;
	struct gmem_stats st;
	uint64_t eo = 0;
	struct gmem *g;
	void *dma;
	int ret;

	if ((ret = gmem_create(&args, &g)) ||
	    (ret = gmem_bind(g, 0, GUEST_RAM, &memslot_ops, NULL, &slot)) ||
	    (ret = gmem_listener_register(g, 0, GUEST_RAM, &iommu_ops, NULL,
					  &iommu))) {
		fprintf(stderr, "vmm_loop: setup: %s\n", strerror(-ret));
		return 1;
	}
	printf("guest RAM: %llu KiB, all private; a memslot and an IOMMU "
	       "attached\n\n", GUEST_RAM >> 10);

	printf("1. the guest runs\n");
	for (size_t i = 0; i < sizeof(program) / sizeof(program[0]); i++) {
		ret = vcpu_access(g, slot, &program[i]);
		if (ret) {
			fprintf(stderr, "vmm_loop: vcpu: %s\n", strerror(-ret));
			return 1;
		}
	}

	printf("\n2. a device pins the bounce buffer for DMA\n");
	ret = gmem_pin(g, BOUNCE, 2 * PAGE, &dma);
	if (ret) {
		fprintf(stderr, "vmm_loop: pin: %s\n", strerror(-ret));
		return 1;
	}
	printf("  device: DMA reads \"%s\"\n", (char *)dma);

	printf("\n3. the guest takes the buffer back while DMA is running\n");
	ret = convert(g, BOUNCE, 2 * PAGE, 1, &eo);
	printf("  VMM: to private -> %s at 0x%06llx: the guest retries later\n",
	       strerror(-ret), (unsigned long long)eo);
	ret = gmem_unpin(g, BOUNCE, 2 * PAGE);
	if (ret) {
		fprintf(stderr, "vmm_loop: unpin: %s\n", strerror(-ret));
		return 1;
	}
	printf("  device: DMA done, unpinned\n");
	ret = convert(g, BOUNCE, 2 * PAGE, 1, NULL);
	printf("  VMM: to private -> %s\n", ret ? strerror(-ret) : "ok");

	ret = gmem_stat(g, &st, sizeof(st));
	if (ret) {
		fprintf(stderr, "vmm_loop: stat: %s\n", strerror(-ret));
		return 1;
	}
	printf("\n%llu conversions, %llu owner invalidations, %llu IOMMU "
	       "calls, %llu state ranges\n",
	       (unsigned long long)st.conversions,
	       (unsigned long long)st.invalidations,
	       (unsigned long long)st.listener_calls,
	       (unsigned long long)st.nr_ranges);
	gmem_listener_unregister(iommu);
	gmem_unbind(slot);
	gmem_close(g);
	return 0;
}
