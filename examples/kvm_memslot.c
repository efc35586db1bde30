// SPDX-License-Identifier: MIT
/*
 * kvm_memslot.c - a libgmem file as the guest RAM of a KVM VM: the part
 * of a VMM that sets up a guest_memfd memslot.  Public headers only.
 *
 *  1. make a VM (KVM_CREATE_VM) and a guest memory file on it
 *     (GMEM_BACKEND_KVM: a real guest_memfd);
 *  2. register it as memslot 0 with KVM_SET_USER_MEMORY_REGION2 and
 *     KVM_MEM_GUEST_MEMFD: guest_memfd and userspace_addr both come from
 *     gmem_kvm_memslot();
 *  3. set memory attributes: KVM_SET_MEMORY_ATTRIBUTES where the VM type
 *     supports KVM_MEMORY_ATTRIBUTE_PRIVATE (KVM_CAP_MEMORY_ATTRIBUTES;
 *     the default x86 VM does not), and libgmem's in-place conversion;
 *  4. bind the slot's range (the hypervisor side), reach pages with
 *     gmem_get_pfn() and watch the invalidations a conversion sends.
 *
 * gmem_kvm.h supplies the KVM definitions that system headers older
 * than Linux 6.8 lack.  Without /dev/kvm, or on a kernel whose
 * guest_memfd cannot be mapped (before 6.18), it says so and exits 77.
 *
 * Run: make examples && build/examples/kvm_memslot
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <gmem.h>
#include <gmem_kvm.h>

#define SKIP		77
#define GUEST_RAM	(2ULL << 20)
#define GUEST_PHYS	0x100000ULL	/* where the slot starts in the guest */

static const char *const why[] = {
	[GMEM_INVALIDATE_PUNCH] = "punch-hole",
	[GMEM_INVALIDATE_CONVERT] = "conversion",
	[GMEM_INVALIDATE_RELEASE] = "file closed",
	[GMEM_INVALIDATE_POISON] = "memory failure",
};

/* KVM would zap its SPTEs for the range here (kvm_gmem_invalidate). */
static void slot_invalidate(void *owner, uint64_t off, uint64_t size,
			    unsigned int reason)
{
	(void)owner;
	printf("    invalidate: gpa [0x%llx, +0x%llx) (%s)\n",
	       (unsigned long long)(GUEST_PHYS + off),
	       (unsigned long long)size, why[reason]);
}

static const struct gmem_binding_ops slot_ops = {
	.invalidate = slot_invalidate,
};

static int fail(const char *what, int err)
{
	fprintf(stderr, "kvm_memslot: %s: %s\n", what, strerror(err));
	return 1;
}

static int set_slot(int vm, int gmem_fd, void *addr, uint64_t size)
{
	struct kvm_userspace_memory_region2 r = {
		.slot = 0,
		.flags = KVM_MEM_GUEST_MEMFD,
		.guest_phys_addr = GUEST_PHYS,
		.memory_size = size,		/* 0 deletes the slot */
		.userspace_addr = (uintptr_t)addr,
		.guest_memfd_offset = 0,
		.guest_memfd = (uint32_t)gmem_fd,
	};

	return ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &r) ? -errno : 0;
}

/* The VM-level attribute, where this VM type has one. */
static void vm_attributes(int vm, uint64_t page)
{
	struct kvm_memory_attributes a = {
		.address = GUEST_PHYS + page,
		.size = 4096,
		.attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE,
	};
	int caps = ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES);

	if (caps < 0 || !(caps & KVM_MEMORY_ATTRIBUTE_PRIVATE)) {
		printf("  KVM_SET_MEMORY_ATTRIBUTES: not for this VM type "
		       "(KVM_CAP_MEMORY_ATTRIBUTES = %d); libgmem keeps the "
		       "state\n", caps);
		return;
	}
	if (ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, &a))
		printf("  KVM_SET_MEMORY_ATTRIBUTES: %s\n", strerror(errno));
	else
		printf("  KVM_SET_MEMORY_ATTRIBUTES: gpa 0x%llx private\n",
		       (unsigned long long)a.address);
}

static int convert(struct gmem *g, uint64_t off, uint64_t size, int private)
{
	struct gmem_attributes a = {
		.offset = off,
		.size = size,
		.attributes = private ? GMEM_ATTR_PRIVATE : 0,
	};

	return gmem_set_attributes(g, &a);
}

/* One guest access through the slot, as KVM's fault path makes it. */
static int guest_touch(struct gmem_binding *slot, uint64_t index,
		       unsigned int access, const char *text)
{
	uint64_t seq = gmem_invalidate_seq(slot);
	struct gmem_pfn pfn = { 0 };
	int ret = gmem_get_pfn(slot, index, access, &pfn);

	if (ret == -EFAULT) {
		printf("  get_pfn(page %llu, %s): memory fault, convert "
		       "[0x%llx, +0x%llx)\n", (unsigned long long)index,
		       access ? "private" : "shared",
		       (unsigned long long)pfn.fault_offset,
		       (unsigned long long)pfn.fault_size);
		return ret;
	}
	if (ret)
		return ret;
	if (!gmem_invalidate_retry(slot, seq))	/* else: drop, retry */
		snprintf(pfn.addr, 64, "%s", text);
	printf("  get_pfn(page %llu, %s): order %u, wrote \"%s\"\n",
	       (unsigned long long)index, access ? "private" : "shared",
	       pfn.order, text);
	return gmem_put_pfn(slot, index, access);
}

int main(void)
{
	struct gmem_create_args args = {
		.size = GUEST_RAM,
		.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
		.backend = GMEM_BACKEND_KVM,
	};
	struct gmem_binding *slot;
	struct gmem *g;
	void *guest_addr;
	int kvm, vm, gmem_fd, ret;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		printf("kvm_memslot: skipped: /dev/kvm: %s\n", strerror(errno));
		return SKIP;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return fail("KVM_CREATE_VM", errno);
	args.vm_fd = vm;		/* or GMEM_KVM_NEW_VM */
	ret = gmem_create(&args, &g);
	if (ret == -EOPNOTSUPP) {
		printf("kvm_memslot: skipped: no guest_memfd with "
		       "GUEST_MEMFD_FLAG_MMAP | INIT_SHARED (Linux >= 6.18)\n");
		return SKIP;
	}
	if (ret)
		return fail("gmem_create", -ret);
	printf("guest_memfd of %llu KiB on VM fd %d\n",
	       GUEST_RAM >> 10, vm);

	ret = gmem_kvm_memslot(g, &gmem_fd, &guest_addr);
	if (ret)
		return fail("gmem_kvm_memslot", -ret);
	ret = set_slot(vm, gmem_fd, guest_addr, GUEST_RAM);
	if (ret)
		return fail("KVM_SET_USER_MEMORY_REGION2", -ret);
	printf("memslot 0: gpa 0x%llx, guest_memfd %d, userspace_addr %p\n",
	       GUEST_PHYS, gmem_fd, guest_addr);

	vm_attributes(vm, 0);
	ret = gmem_bind(g, 0, GUEST_RAM, &slot_ops, NULL, &slot);
	if (ret)
		return fail("gmem_bind", -ret);

	printf("the guest runs, all memory shared:\n");
	if ((ret = guest_touch(slot, 0, GMEM_ACCESS_SHARED, "bounce buffer")))
		return fail("get_pfn", -ret);
	ret = guest_touch(slot, 1, GMEM_ACCESS_PRIVATE, "secret");
	if (ret != -EFAULT)
		return fail("get_pfn (expected a memory fault)", -ret);
	printf("the VMM converts page 1 to private, in place:\n");
	if ((ret = convert(g, 4096, 4096, 1)))
		return fail("gmem_set_attributes", -ret);
	if ((ret = guest_touch(slot, 1, GMEM_ACCESS_PRIVATE, "secret")))
		return fail("get_pfn", -ret);

	printf("teardown:\n");
	if ((ret = set_slot(vm, gmem_fd, guest_addr, 0)))
		return fail("delete memslot", -ret);
	printf("  memslot 0 deleted\n");
	if ((ret = gmem_unbind(slot)))
		return fail("gmem_unbind", -ret);
	gmem_close(g);
	close(vm);
	close(kvm);
	printf("done\n");
	return 0;
}
