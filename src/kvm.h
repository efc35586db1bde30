/* SPDX-License-Identifier: MIT */
/*
 * kvm.h - the KVM uAPI libgmem needs.  The released uAPI (guest_memfd,
 * memslots, attributes: Linux 6.8 to 6.18) is the public gmem_kvm.h,
 * shared with VMMs and gmemctl, defined there where the system headers
 * predate it (Debian 12 ships 6.1 headers).  Only what no kernel has
 * released stays here: the in-place conversion ioctl of the v8 series
 * (linux-next 2026), probed by calling it, never assumed.
 */
#ifndef GMEM_SRC_KVM_H
#define GMEM_SRC_KVM_H

#include <stdint.h>

#include "gmem_kvm.h"

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

#endif /* GMEM_SRC_KVM_H */
