/* SPDX-License-Identifier: MIT */
/*
 * gmem_kvm.h - the KVM uAPI a VMM needs to use a libgmem file of the KVM
 * backend (GMEM_BACKEND_KVM) as a memslot, for system headers that
 * predate it.  Include it instead of (or after) <linux/kvm.h>.
 *
 * guest_memfd and its memslots came in Linux 6.8, its mmap flags in
 * 6.18; a distribution's headers may be older (Debian 12: 6.1).  Each
 * definition below is made only when <linux/kvm.h> lacks it (#ifndef
 * guards), with the kernel's names and values (include/uapi/linux/
 * kvm.h), so code written against new headers compiles unchanged
 * against old ones, and new headers win where they exist:
 *
 *   KVM_CREATE_GUEST_MEMFD, struct kvm_create_guest_memfd,
 *   GUEST_MEMFD_FLAG_MMAP, GUEST_MEMFD_FLAG_INIT_SHARED
 *   KVM_SET_USER_MEMORY_REGION2, struct kvm_userspace_memory_region2,
 *   KVM_MEM_GUEST_MEMFD
 *   KVM_SET_MEMORY_ATTRIBUTES, struct kvm_memory_attributes,
 *   KVM_MEMORY_ATTRIBUTE_PRIVATE
 *   KVM_EXIT_MEMORY_FAULT, KVM_MEMORY_EXIT_FLAG_PRIVATE
 *   KVM_CAP_USER_MEMORY2, KVM_CAP_MEMORY_FAULT_INFO,
 *   KVM_CAP_MEMORY_ATTRIBUTES, KVM_CAP_GUEST_MEMFD, KVM_CAP_VM_TYPES,
 *   KVM_CAP_GUEST_MEMFD_FLAGS
 *
 * struct kvm_run's memory_fault member (6.8) cannot be added to an older
 * struct kvm_run; read it with gmem_kvm_run_memory_fault().
 *
 * The GMEM_KVM_* names are libgmem's spelling of the same values (and
 * of x86's KVM_HC_MAP_GPA_RANGE constants from <asm/kvm_para.h>, which
 * are not defined here under the kernel's names, so that including that
 * header too never redefines them differently).  Nothing here calls into
 * libgmem, or needs it linked.
 */
#ifndef GMEM_KVM_H
#define GMEM_KVM_H

#include <linux/kvm.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- capabilities (KVM_CHECK_EXTENSION) ---- */
#ifndef KVM_CAP_EXIT_HYPERCALL
#define KVM_CAP_EXIT_HYPERCALL		201
#endif
#ifndef KVM_CAP_USER_MEMORY2
#define KVM_CAP_USER_MEMORY2		231
#endif
#ifndef KVM_CAP_MEMORY_FAULT_INFO
#define KVM_CAP_MEMORY_FAULT_INFO	232
#endif
#ifndef KVM_CAP_MEMORY_ATTRIBUTES
#define KVM_CAP_MEMORY_ATTRIBUTES	233
#endif
#ifndef KVM_CAP_GUEST_MEMFD
#define KVM_CAP_GUEST_MEMFD		234
#endif
#ifndef KVM_CAP_VM_TYPES
#define KVM_CAP_VM_TYPES		235
#endif
#ifndef KVM_CAP_GUEST_MEMFD_FLAGS
#define KVM_CAP_GUEST_MEMFD_FLAGS	244
#endif

/* ---- KVM_CREATE_GUEST_MEMFD (vm ioctl; returns a new fd) ---- */
#ifndef KVM_CREATE_GUEST_MEMFD
struct kvm_create_guest_memfd {
	__u64 size;
	__u64 flags;
	__u64 reserved[6];
};
#define KVM_CREATE_GUEST_MEMFD \
	_IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd)
#endif
#ifndef GUEST_MEMFD_FLAG_MMAP
#define GUEST_MEMFD_FLAG_MMAP		(1ULL << 0)
#endif
#ifndef GUEST_MEMFD_FLAG_INIT_SHARED
#define GUEST_MEMFD_FLAG_INIT_SHARED	(1ULL << 1)
#endif

/* ---- KVM_SET_USER_MEMORY_REGION2 (vm ioctl) ---- */
#ifndef KVM_SET_USER_MEMORY_REGION2
struct kvm_userspace_memory_region2 {
	__u32 slot;
	__u32 flags;
	__u64 guest_phys_addr;
	__u64 memory_size;		/* bytes */
	__u64 userspace_addr;		/* start of the userspace memory */
	__u64 guest_memfd_offset;	/* bytes into the guest_memfd */
	__u32 guest_memfd;
	__u32 pad1;
	__u64 pad2[14];
};
#define KVM_SET_USER_MEMORY_REGION2 \
	_IOW(KVMIO, 0x49, struct kvm_userspace_memory_region2)
#endif
#ifndef KVM_MEM_GUEST_MEMFD
#define KVM_MEM_GUEST_MEMFD		(1UL << 2)
#endif

/* ---- KVM_SET_MEMORY_ATTRIBUTES (vm ioctl; KVM_CAP_MEMORY_ATTRIBUTES) ---- */
#ifndef KVM_SET_MEMORY_ATTRIBUTES
struct kvm_memory_attributes {
	__u64 address;			/* guest physical, bytes */
	__u64 size;
	__u64 attributes;
	__u64 flags;
};
#define KVM_SET_MEMORY_ATTRIBUTES \
	_IOW(KVMIO, 0xd2, struct kvm_memory_attributes)
#endif
#ifndef KVM_MEMORY_ATTRIBUTE_PRIVATE
#define KVM_MEMORY_ATTRIBUTE_PRIVATE	(1ULL << 3)
#endif

/* ---- KVM_EXIT_MEMORY_FAULT (KVM_RUN returns -1, errno EFAULT) ---- */
#ifndef KVM_EXIT_MEMORY_FAULT
#define KVM_EXIT_MEMORY_FAULT		39
#endif
#ifndef KVM_MEMORY_EXIT_FLAG_PRIVATE
#define KVM_MEMORY_EXIT_FLAG_PRIVATE	(1ULL << 3)
#endif

/* kvm_run.memory_fault, at the start of kvm_run's exit union. */
struct gmem_kvm_memory_fault {
	__u64 flags;			/* KVM_MEMORY_EXIT_FLAG_PRIVATE */
	__u64 gpa;			/* bytes */
	__u64 size;			/* bytes */
};

static inline struct gmem_kvm_memory_fault
gmem_kvm_run_memory_fault(const struct kvm_run *run)
{
	struct gmem_kvm_memory_fault f;

	memcpy(&f, run->padding, sizeof(f));	/* the exit union */
	return f;
}

/* ---- libgmem's spelling (the same values) ---- */
#define GMEM_KVM_CAP_EXIT_HYPERCALL		KVM_CAP_EXIT_HYPERCALL
#define GMEM_KVM_CAP_USER_MEMORY2		KVM_CAP_USER_MEMORY2
#define GMEM_KVM_CAP_MEMORY_ATTRIBUTES		KVM_CAP_MEMORY_ATTRIBUTES
#define GMEM_KVM_CAP_GUEST_MEMFD		KVM_CAP_GUEST_MEMFD
#define GMEM_KVM_CAP_VM_TYPES			KVM_CAP_VM_TYPES
#define GMEM_KVM_CAP_GUEST_MEMFD_FLAGS		KVM_CAP_GUEST_MEMFD_FLAGS
#define GMEM_GUEST_MEMFD_FLAG_MMAP		GUEST_MEMFD_FLAG_MMAP
#define GMEM_GUEST_MEMFD_FLAG_INIT_SHARED	GUEST_MEMFD_FLAG_INIT_SHARED
#define gmem_kvm_create_guest_memfd		kvm_create_guest_memfd
#define GMEM_KVM_CREATE_GUEST_MEMFD		KVM_CREATE_GUEST_MEMFD
#define gmem_kvm_userspace_memory_region2	kvm_userspace_memory_region2
#define GMEM_KVM_SET_USER_MEMORY_REGION2	KVM_SET_USER_MEMORY_REGION2
#define GMEM_KVM_MEM_GUEST_MEMFD		KVM_MEM_GUEST_MEMFD
#define GMEM_KVM_MEMORY_ATTRIBUTE_PRIVATE	KVM_MEMORY_ATTRIBUTE_PRIVATE
#define GMEM_KVM_EXIT_MEMORY_FAULT		KVM_EXIT_MEMORY_FAULT

/* x86 <asm/kvm_para.h>, <linux/kvm_para.h> (KVM_CAP_EXIT_HYPERCALL) */
#define GMEM_KVM_EXIT_HYPERCALL			3	/* KVM_EXIT_HYPERCALL */
#define GMEM_KVM_HC_MAP_GPA_RANGE		12
#define GMEM_KVM_MAP_GPA_RANGE_PAGE_SZ_2M	(1ULL << 0)
#define GMEM_KVM_MAP_GPA_RANGE_PAGE_SZ_1G	(1ULL << 1)
#define GMEM_KVM_MAP_GPA_RANGE_ENCRYPTED	(1ULL << 4)

#ifdef __cplusplus
}
#endif

#endif /* GMEM_KVM_H */
