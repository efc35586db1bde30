// SPDX-License-Identifier: MIT
/*
 * kvm.c - the kernel guest_memfd backend: guest memory that is a real
 * guest_memfd of a KVM VM (KVM_CREATE_GUEST_MEMFD, Linux >= 6.18 for
 * GUEST_MEMFD_FLAG_MMAP), so it is unswappable and unmigratable like a
 * confidential guest's, and can back a memslot with KVM_MEM_GUEST_MEMFD.
 *
 * What the kernel provides and what libgmem adds:
 *  - Kernels with in-place conversion (KVM_SET_MEMORY_ATTRIBUTES2 on the
 *    guest_memfd, linux-next 2026) keep the shared/private state
 *    themselves: libgmem forwards every conversion to them (first, so a
 *    refusal changes nothing) and keeps its own copy for views, pins,
 *    bindings and listeners.  Support is detected by calling the ioctl
 *    once as a no-op at create, never by capability number (not final).
 *  - Kernels without it (6.18, this project's CI) know shared memory
 *    only: the file is created GUEST_MEMFD_FLAG_INIT_SHARED so it can be
 *    mapped at all, and libgmem is the only keeper of the state.  Host
 *    views still raise SIGBUS on private pages (libgmem's holes); the
 *    guest itself, through KVM, can reach every page.
 * guest_memfd has no read/write, no block accounting and no userfaultfd:
 * populate copies through the guest view, "allocated" is counted with
 * mincore() on it, and host views always use the vma guard (view.c).
 *
 * Locking: called from file.c/convert.c with g->lock held, or during
 * gmem_create() before g is visible.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "kvm.h"

static int neg(int ret)
{
	return ret < 0 ? -errno : ret;
}

/* The VM to create the guest_memfd on: the caller's, or one of ours. */
static int vm_get(struct gmem *g, int vm_fd)
{
	int ret;

	if (vm_fd >= 0) {
		g->vm_fd = vm_fd;
		return 0;
	}
	g->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (g->kvm_fd < 0)
		return -errno;
	ret = neg(ioctl(g->kvm_fd, KVM_CREATE_VM, 0));
	if (ret < 0)
		return ret;
	g->vm_fd = ret;
	g->own_vm = true;
	return fcntl(g->vm_fd, F_SETFD, FD_CLOEXEC) ? -errno : 0;
}

static int check_caps(struct gmem *g)
{
	const uint64_t need = GMEM_GUEST_MEMFD_FLAG_MMAP |
			      GMEM_GUEST_MEMFD_FLAG_INIT_SHARED;
	int ret;

	ret = ioctl(g->vm_fd, KVM_CHECK_EXTENSION, GMEM_KVM_CAP_GUEST_MEMFD);
	if (ret <= 0)
		return ret < 0 && errno != EINVAL ? -errno : -EOPNOTSUPP;
	ret = ioctl(g->vm_fd, KVM_CHECK_EXTENSION,
		    GMEM_KVM_CAP_GUEST_MEMFD_FLAGS);
	if (ret < 0 || ((uint64_t)ret & need) != need)
		return -EOPNOTSUPP;
	return 0;
}

static int set_attributes2(struct gmem *g, uint64_t off, uint64_t size,
			   unsigned int val, uint64_t *error_offset)
{
	struct gmem_kvm_memory_attributes2 a = {
		.offset = off,
		.size = size,
		.attributes = val ? GMEM_KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};
	int ret = neg(ioctl(g->fd, GMEM_KVM_SET_MEMORY_ATTRIBUTES2, &a));

	if (ret && error_offset)
		*error_offset = a.error_offset;
	return ret;
}

int gmem_kvm_create(struct gmem *g, int vm_fd, unsigned int init_val)
{
	struct gmem_kvm_create_guest_memfd c = {
		.size = g->size,
		.flags = GMEM_GUEST_MEMFD_FLAG_MMAP |
			 GMEM_GUEST_MEMFD_FLAG_INIT_SHARED,
	};
	int ret;

	g->kvm_fd = g->vm_fd = -1;
	ret = vm_get(g, vm_fd);
	if (!ret)
		ret = check_caps(g);
	if (!ret)
		ret = neg(ioctl(g->vm_fd, GMEM_KVM_CREATE_GUEST_MEMFD, &c));
	if (ret < 0) {
		gmem_kvm_close(g);
		return ret;
	}
	g->fd = ret;
	if (fcntl(g->fd, F_SETFD, FD_CLOEXEC)) {
		ret = -errno;
		goto err;
	}
	/* In-place conversion in the kernel?  A no-op call tells. */
	g->kvm_inplace = !set_attributes2(g, 0, off_of(g, 1), 0, NULL);
	if (g->kvm_inplace && init_val) {
		ret = set_attributes2(g, 0, g->size, 1, NULL);
		if (ret)
			goto err;
	}
	return 0;
err:
	sys_close(g->fd);
	gmem_kvm_close(g);
	return ret;
}

void gmem_kvm_close(struct gmem *g)
{
	if (g->own_vm && g->vm_fd >= 0)
		sys_close(g->vm_fd);
	if (g->kvm_fd >= 0)
		sys_close(g->kvm_fd);
	g->vm_fd = g->kvm_fd = -1;
	g->own_vm = false;
}

int gmem_kvm_convert(struct gmem *g, uint64_t start, uint64_t end,
		     unsigned int val, uint64_t *error_page)
{
	uint64_t eo = 0;
	int ret;

	if (!g->kvm_inplace)
		return 0;
	ret = set_attributes2(g, off_of(g, start), off_of(g, end - start), val,
			      &eo);
	if (ret)
		*error_page = page_of(g, eo);
	return ret;
}

/* Pages of the file in memory, counted on the guest view. */
int gmem_kvm_allocated(struct gmem *g, uint64_t *bytes)
{
	const uint64_t chunk = g->npages < (1ULL << 20) ? g->npages :
			       1ULL << 20;	/* pages per mincore() */
	unsigned char *vec = malloc(chunk);
	uint64_t n = 0;
	int ret = gmem_guest_view(g);

	if (!vec)
		return -ENOMEM;
	for (uint64_t p = 0; !ret && p < g->npages; p += chunk) {
		uint64_t len = g->npages - p < chunk ? g->npages - p : chunk;

		if (mincore(g->guest_view + off_of(g, p), off_of(g, len), vec)) {
			ret = -errno;
			break;
		}
		for (uint64_t i = 0; i < len; i++)
			n += vec[i] & 1;
	}
	free(vec);
	*bytes = off_of(g, n);
	return ret;
}

GMEM_EXPORT int gmem_kvm_memslot(struct gmem *g, int *gmem_fd,
				 void **guest_addr)
{
	int ret;

	if (!gmem_fd || !guest_addr)
		return -EINVAL;
	ret = gmem_lock_live(g);
	if (ret)
		return ret;
	if (g->backend != GMEM_BACKEND_KVM)
		ret = -EOPNOTSUPP;
	else
		ret = gmem_guest_view(g);
	if (!ret) {
		*gmem_fd = g->fd;
		*guest_addr = g->guest_view;
	}
	gmem_unlock_put(g);
	return ret;
}
