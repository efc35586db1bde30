/* SPDX-License-Identifier: MIT */
/*
 * gmem.h - libgmem: guest_memfd for userspace.
 *
 * One struct gmem is one guest-memory file: a fixed-size region of guest
 * RAM whose pages are each either shared (the host may map and touch
 * them) or private (only the guest side may use them).  Conversion
 * between the two happens in place: the same page keeps its contents,
 * nothing is copied and there is no second backing.  Private pages are
 * kept out of every host view libgmem creates: touching one raises a
 * real SIGBUS at the faulting address.
 *
 * Every function returns 0 (or a count) on success and a negative errno
 * on failure.  The library never prints, exits, aborts or sets errno for
 * its caller.  Unknown flag bits and non-zero reserved fields are -EINVAL.
 * Constants that mean the same as the kernel's have the kernel's values.
 *
 * This is the only public header.  See gmem(7) for the model and one man
 * page per function for the details.
 */
#ifndef GMEM_H
#define GMEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct gmem;				/* opaque: one guest memory file */

/* gmem_create_args.flags */
#define GMEM_FLAG_MMAP		(1ULL << 0)	/* host views allowed */
#define GMEM_FLAG_INIT_SHARED	(1ULL << 1)	/* starts shared; default private */
#define GMEM_FLAG_HUGEPAGE	(1ULL << 2)	/* huge-page backed */
#define GMEM_HUGE_SHIFT		58		/* log2(page size) << 58: 21, 30 */
#define GMEM_HUGE_MASK		0x3fULL

/* gmem_attributes.attributes */
#define GMEM_ATTR_PRIVATE	(1ULL << 3)	/* == KVM_MEMORY_ATTRIBUTE_PRIVATE */

/* gmem_attributes.flags */
#define GMEM_SET_ATTR_WAIT	(1ULL << 0)	/* to private: wait for pins to drop
						   instead of failing -EAGAIN */

/* gmem_create_args.backend */
#define GMEM_BACKEND_MEMFD	0		/* memfd_create(2); the default */

struct gmem_create_args {		/* zero-filled = memfd backend */
	uint64_t size;			/* > 0, page (or huge page) aligned */
	uint64_t flags;			/* GMEM_FLAG_* */
	uint32_t backend;		/* GMEM_BACKEND_* */
	uint32_t reserved32;		/* must be 0 */
	uint64_t reserved[6];		/* must be 0 */
};

/*
 * Create a guest memory file.  On success *out owns it and 0 is returned.
 * -EINVAL: size 0 or unaligned, unknown flags or backend, reserved not 0.
 * -EOPNOTSUPP: GMEM_FLAG_HUGEPAGE (not yet provided by this version).
 */
int gmem_create(const struct gmem_create_args *args, struct gmem **out);

/*
 * Drop the caller's handle.  The memory lives on while host views or pins
 * hold it; gmem_munmap() and gmem_unpin() still work on those, every other
 * call returns -EBADF.  The last release frees everything.
 */
void gmem_close(struct gmem *g);

/*
 * mode: FALLOC_FL_KEEP_SIZE, optionally | FALLOC_FL_PUNCH_HOLE.
 * No KEEP_SIZE or other bits: -EOPNOTSUPP.  Unaligned: -EINVAL.
 * Allocate past the end: -EINVAL.  Punch past the end: 0.
 * Punched pages read back as zeros; punch keeps shared/private state.
 */
int gmem_fallocate(struct gmem *g, int mode, uint64_t offset, uint64_t len);

/*
 * A host view of [offset, offset + len): MAP_SHARED semantics only, prot
 * a combination of PROT_READ and PROT_WRITE.  No GMEM_FLAG_MMAP: -ENODEV.
 * Shared pages fault in normally; private pages and pages past the end
 * raise SIGBUS (si_addr = the address) on any access, from user code, and
 * fail with EFAULT from system calls.  Views are not inherited by fork().
 */
int gmem_mmap(struct gmem *g, uint64_t offset, size_t len, int prot,
	      void **addr);
/* Remove a whole view made by gmem_mmap(): addr and len as returned. */
int gmem_munmap(struct gmem *g, void *addr, size_t len);

struct gmem_attributes {		/* like kvm_memory_attributes2 */
	uint64_t offset;
	uint64_t size;
	uint64_t attributes;		/* 0 = shared, GMEM_ATTR_PRIVATE */
	uint64_t flags;			/* GMEM_SET_ATTR_* */
	uint64_t error_offset;		/* out: first page that failed */
	uint64_t reserved[3];		/* must be 0 */
};

/*
 * Convert [offset, offset + size) in place; contents are preserved.
 * Size 0, overflow, unaligned or past the end: -EINVAL.  To private with a
 * page still pinned: -EAGAIN and error_offset = that page, nothing
 * converted (with GMEM_SET_ATTR_WAIT: blocks until the pins drop).
 * A range already in the target state is a no-op.
 */
int gmem_set_attributes(struct gmem *g, struct gmem_attributes *a);

/* State at offset and the length of the uniform run that starts there. */
int gmem_get_attributes(struct gmem *g, uint64_t offset, uint64_t *attributes,
			uint64_t *run_len);

/*
 * Long-term pin of shared pages (DMA-style).  *addr receives a host
 * address of offset that stays valid until the matching gmem_unpin().
 * Any private page in the range: -EFAULT, nothing pinned.
 */
int gmem_pin(struct gmem *g, uint64_t offset, uint64_t len, void **addr);
/* Drop one pin of each page; a page that is not pinned: -EINVAL. */
int gmem_unpin(struct gmem *g, uint64_t offset, uint64_t len);

/*
 * Copy len bytes from src into private pages starting at offset (page
 * aligned), as a VMM loads firmware before the guest runs.  Returns the
 * number of bytes copied; it stops at the first page that is not private
 * (-EPERM if that is the first page).  The tail of the last page is left
 * as it was.
 */
ssize_t gmem_populate(struct gmem *g, uint64_t offset, const void *src,
		      size_t len);

struct gmem_stats {
	uint64_t size;			/* bytes */
	uint64_t allocated;		/* bytes backed by memory */
	uint64_t shared;		/* bytes in the shared state */
	uint64_t priv;			/* bytes in the private state */
	uint64_t nr_ranges;		/* uniform state runs */
	uint64_t state_bytes;		/* memory used to track the state */
	uint64_t conversions;		/* set_attributes calls that changed state */
	uint64_t pages_converted;	/* pages that changed state */
	uint64_t pins;			/* gmem_pin() calls not yet undone */
	uint64_t pinned;		/* bytes with at least one pin */
	uint64_t views;			/* host views (gmem_mmap) */
	uint64_t views_uffd;		/* of which guarded by userfaultfd */
};

/*
 * Fill the first size bytes of *st (size <= sizeof(*st)); new fields are
 * only ever appended, so older callers keep working.
 */
int gmem_stat(struct gmem *g, struct gmem_stats *st, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* GMEM_H */
