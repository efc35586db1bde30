/* SPDX-License-Identifier: MIT */
/*
 * kvm.h - the KVM uAPI libgmem needs, defined here because the system
 * headers may predate it (Debian 12 ships 6.1 headers; guest_memfd is
 * 6.8, its mmap flags 6.18).  Values are the kernel's
 * include/uapi/linux/kvm.h; the in-place conversion ioctl is the v8
 * series' (linux-next 2026), probed by calling it, never assumed.
 */
#ifndef GMEM_KVM_H
#define GMEM_KVM_H

#include <linux/kvm.h>
#include <stdint.h>

#define GMEM_KVM_CAP_EXIT_HYPERCALL		201
#define GMEM_KVM_CAP_USER_MEMORY2		231
#define GMEM_KVM_CAP_MEMORY_ATTRIBUTES		233
#define GMEM_KVM_CAP_GUEST_MEMFD		234
#define GMEM_KVM_CAP_VM_TYPES			235
#define GMEM_KVM_CAP_GUEST_MEMFD_FLAGS		244

#define GMEM_GUEST_MEMFD_FLAG_MMAP		(1ULL << 0)
#define GMEM_GUEST_MEMFD_FLAG_INIT_SHARED	(1ULL << 1)

struct gmem_kvm_create_guest_memfd {
	uint64_t size;
	uint64_t flags;
	uint64_t reserved[6];
};

#define GMEM_KVM_CREATE_GUEST_MEMFD \
	_IOWR(KVMIO, 0xd4, struct gmem_kvm_create_guest_memfd)

struct gmem_kvm_userspace_memory_region2 {
	uint32_t slot;
	uint32_t flags;
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t guest_memfd_offset;
	uint32_t guest_memfd;
	uint32_t pad1;
	uint64_t pad2[14];
};

#define GMEM_KVM_SET_USER_MEMORY_REGION2 \
	_IOW(KVMIO, 0x49, struct gmem_kvm_userspace_memory_region2)
#define GMEM_KVM_MEM_GUEST_MEMFD		(1U << 2)

#define GMEM_KVM_MEMORY_ATTRIBUTE_PRIVATE	(1ULL << 3)

/* In-place conversion on the guest_memfd itself (v8; file offsets). */
struct gmem_kvm_memory_attributes2 {
	uint64_t offset;
	uint64_t size;
	uint64_t attributes;
	uint64_t flags;
	uint64_t error_offset;
	uint64_t reserved[11];
};

#define GMEM_KVM_SET_MEMORY_ATTRIBUTES2 \
	_IOWR(KVMIO, 0xd2, struct gmem_kvm_memory_attributes2)

/* x86 */
#define GMEM_KVM_EXIT_HYPERCALL			3
#define GMEM_KVM_EXIT_MEMORY_FAULT		39
#define GMEM_KVM_HC_MAP_GPA_RANGE		12
#define GMEM_KVM_MAP_GPA_RANGE_ENCRYPTED	(1ULL << 4)
#define GMEM_KVM_MAP_GPA_RANGE_PAGE_SZ_2M	(1ULL << 0)
#define GMEM_KVM_MAP_GPA_RANGE_PAGE_SZ_1G	(1ULL << 1)

#endif /* GMEM_KVM_H */
