// SPDX-License-Identifier: MIT
/*
 * kvm.c - the guest_memfd part of the backing: memory that is a real
 * guest_memfd of a KVM VM (KVM_CREATE_GUEST_MEMFD, Linux >= 6.18 for
 * GUEST_MEMFD_FLAG_MMAP), so it is unswappable and unmigratable like a
 * confidential guest's, and can back a memslot with KVM_MEM_GUEST_MEMFD.
 *
 * What the kernel provides and what libgmem adds:
 *  - Kernels with in-place conversion (KVM_SET_MEMORY_ATTRIBUTES2 on the
 *    guest_memfd, linux-next 2026) keep the shared/private state
 *    themselves, refuse a conversion to private while a page is
 *    referenced (-EAGAIN) and raise SIGBUS on private pages in every
 *    mapping: libgmem forwards every conversion to them (first, so a
 *    refusal changes nothing) and keeps its own copy for views, pins,
 *    bindings and listeners.  Support is detected by calling the ioctl
 *    once as a no-op at create, never by capability number (not final).
 *  - Kernels without it (6.18, this project's CI) know shared memory
 *    only: the file is created GUEST_MEMFD_FLAG_INIT_SHARED so it can be
 *    mapped at all, and libgmem is the only keeper of the state.  Host
 *    views still raise SIGBUS on private pages (libgmem's holes), and a
 *    page that was shared is re-homed when it becomes private (rehome.c),
 *    since KVM itself would let the guest write it in place.
 * guest_memfd has no read/write, no block accounting, no lseek and no
 * userfaultfd: contents move through the window, "allocated" is counted
 * with mincore(), and host views always use the vma guard (view.c).
 *
 * Locking: none of its own (backing.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "backing.h"
#include "kvm.h"
#include "sys.h"

/*
 * Is fd a KVM VM (from KVM_CREATE_VM)?  0, or -EBADF for anything else:
 * a closed fd, /dev/kvm itself, a guest_memfd, a tty on fd 0.  The name
 * the kernel gives the file decides; without /proc, only an anonymous
 * inode is probed, with KVM ioctls no other anonymous file answers:
 * KVM_CHECK_EXTENSION works on a VM and /dev/kvm, KVM_GET_API_VERSION
 * on /dev/kvm only.  Nothing is ever sent to a file of another kind.
 */
static int vm_check(int fd)
{
	unsigned int mode = 0;
	char name[64];
	int ret;

	ret = sys_fd_name(fd, name, sizeof(name));
	if (!ret)
		return strcmp(name, "anon_inode:kvm-vm") ? -EBADF : 0;
	if (ret == -EBADF)
		return ret;
	ret = sys_fd_mode(fd, &mode);
	if (ret || (mode & S_IFMT))
		return -EBADF;
	if (sys_ioctl_val(fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) <= 0 ||
	    sys_ioctl_val(fd, KVM_GET_API_VERSION, 0) >= 0)
		return -EBADF;
	return 0;
}

/* The VM to create the guest_memfd on: the caller's, or one of ours. */
static int vm_get(struct gmem_backing *b, int vm_fd)
{
	long ret;

	if (vm_fd >= 0) {		/* the caller's: must really be a VM */
		ret = vm_check(vm_fd);
		if (!ret)
			b->vm_fd = vm_fd;
		return (int)ret;
	}
	b->kvm_fd = sys_open("/dev/kvm", O_RDWR);
	if (b->kvm_fd < 0)
		return b->kvm_fd;
	ret = sys_ioctl_val(b->kvm_fd, KVM_CREATE_VM, 0);
	if (ret < 0)
		return (int)ret;
	b->vm_fd = (int)ret;
	b->own_vm = true;
	return sys_cloexec(b->vm_fd);
}

static int check_caps(struct gmem_backing *b)
{
	const uint64_t need = GMEM_GUEST_MEMFD_FLAG_MMAP |
			      GMEM_GUEST_MEMFD_FLAG_INIT_SHARED;
	long ret;

	ret = sys_ioctl_val(b->vm_fd, KVM_CHECK_EXTENSION,
			    GMEM_KVM_CAP_GUEST_MEMFD);
	if (ret <= 0)
		return ret < 0 && ret != -EINVAL ? (int)ret : -EOPNOTSUPP;
	ret = sys_ioctl_val(b->vm_fd, KVM_CHECK_EXTENSION,
			    GMEM_KVM_CAP_GUEST_MEMFD_FLAGS);
	if (ret < 0 || ((uint64_t)ret & need) != need)
		return -EOPNOTSUPP;
	return 0;
}

static int set_attributes2(struct gmem_backing *b, uint64_t off,
			   uint64_t size, unsigned int val,
			   uint64_t *error_offset)
{
	struct gmem_kvm_memory_attributes2 a = {
		.offset = off,
		.size = size,
		.attributes = val ? GMEM_KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};
	long ret = sys_ioctl(b->fd, GMEM_KVM_SET_MEMORY_ATTRIBUTES2, &a);

	if (ret && error_offset)
		*error_offset = a.error_offset;
	return ret < 0 ? (int)ret : 0;
}

int gmem_kvm_open(struct gmem_backing *b, int vm_fd, bool init_private)
{
	struct gmem_kvm_create_guest_memfd c = {
		.size = b->size,
		.flags = GMEM_GUEST_MEMFD_FLAG_MMAP |
			 GMEM_GUEST_MEMFD_FLAG_INIT_SHARED,
	};
	long ret;

	ret = vm_get(b, vm_fd);
	if (!ret)
		ret = check_caps(b);
	if (!ret)
		ret = sys_ioctl(b->vm_fd, GMEM_KVM_CREATE_GUEST_MEMFD, &c);
	if (ret < 0)
		goto err;
	b->fd = (int)ret;
	ret = sys_cloexec(b->fd);
	if (ret)
		goto err_fd;
	/* In-place conversion in the kernel?  A no-op call tells. */
	b->kvm_inplace = !set_attributes2(b, 0, 1ULL << b->page_shift, 0,
					  NULL);
	if (b->kvm_inplace && init_private) {
		ret = set_attributes2(b, 0, b->size, 1, NULL);
		if (ret)
			goto err_fd;
	}
	return 0;

err_fd:
	sys_close(b->fd);
	b->fd = -1;
err:
	gmem_kvm_close(b);
	return (int)ret;
}

void gmem_kvm_close(struct gmem_backing *b)
{
	if (b->own_vm && b->vm_fd >= 0)
		sys_close(b->vm_fd);
	if (b->kvm_fd >= 0)
		sys_close(b->kvm_fd);
	b->vm_fd = b->kvm_fd = -1;
	b->own_vm = false;
}

int gmem_kvm_convert(struct gmem_backing *b, uint64_t start, uint64_t end,
		     unsigned int val, uint64_t *error_page)
{
	uint64_t eo = 0;
	int ret;

	if (b->kind != GMEM_BACKING_KVM || !b->kvm_inplace)
		return 0;
	ret = set_attributes2(b, start << b->page_shift,
			      (end - start) << b->page_shift, val, &eo);
	if (ret)
		*error_page = eo >> b->page_shift;
	return ret;
}
