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
 * Units.  Offsets, sizes and lengths are bytes everywhere (page
 * aligned where a page is meant), with one exception: gmem_get_pfn() and
 * gmem_put_pfn() take a page index counted from the binding's start, as
 * KVM's fault path works in gfns; the byte offset of that page in the
 * file is gmem_pfn.offset (= binding offset + index * page size).  File
 * offsets and lengths are uint64_t (the file's size is a uint64_t and may
 * exceed a 32-bit size_t); a length is size_t only where it is the
 * length of memory in this process: a view (gmem_mmap, gmem_munmap), a
 * source buffer (gmem_populate) and a struct (gmem_stat).
 *
 * THREADS.  Every function is thread-safe, on the same file from any
 * number of threads.  One lock per file orders every change to it
 * (conversion, allocation, punch, populate, pin, views, bindings,
 * listeners, memory failure, close, stats); each call holds it for its
 * whole duration, except GMEM_SET_ATTR_WAIT, which drops it while it
 * waits.  Loads and stores through host views take no lock: a race with
 * a conversion to private either completes first or gets SIGBUS.
 * gmem_get_pfn() and gmem_put_pfn() are lock-free on their fast path and
 * return -EAGAIN rather than wait while an invalidation is under way;
 * gmem_invalidate_seq() and gmem_invalidate_retry() are atomic loads.
 * Callbacks (invalidate, populate, discard) run on the thread making the
 * change with the file's lock held: a call for the same file from one
 * fails -EDEADLK (gmem_close() is deferred, see below), a call for
 * another file is allowed, and a callback must not wait for a thread
 * that calls into the same file (it would wait for the lock), except for
 * threads in gmem_get_pfn()/gmem_put_pfn() on a binding it invalidates.
 * Callbacks of two files must not call into each other.  See gmem(7),
 * THREADS and CALLBACKS.
 *
 * Async-signal safety.  Only gmem_invalidate_seq() and
 * gmem_invalidate_retry() may be called from a signal handler (atomic
 * loads of lock-free 64-bit atomics; no lock, no allocation).  Nothing
 * else is async-signal-safe, gmem_get_pfn() and gmem_put_pfn() included
 * (their slow paths lock, allocate and make system calls), and the
 * SIGBUS handler of a view must not call libgmem for the file: the
 * faulting thread may hold its lock.
 *
 * SIGBUS.  An access through a host view to a private page, a poisoned
 * page or a page past the end of the file raises SIGBUS with si_code
 * BUS_ADRERR and si_addr the faulting address, reads and writes alike,
 * in every view guard mode and on both backends: what the kernel's
 * guest_memfd gives for a private page.  The kernel itself raises it
 * (the views are built so that it does: gmem(7), HOW HOST VIEWS WORK);
 * libgmem installs no signal handler.  A poisoned page is not told
 * apart by si_code (BUS_MCEERR_AR needs a fault that returns
 * VM_FAULT_HWPOISON, which the kernel reports only with
 * CONFIG_MEMORY_FAILURE); outside the handler, gmem_get_pfn() of the
 * page fails -EHWPOISON and gmem_stats.poisoned counts poisoned bytes.
 * System calls that touch such a page fail with EFAULT.
 *
 * This is the only public header for the library; gmem_kvm.h adds the
 * KVM uAPI that KVM-backend users need.  See gmem(7) for the model and
 * one man page per function for the details.
 */
#ifndef GMEM_H
#define GMEM_H

/*
 * Version.  The one place it is written: the Makefile reads these three
 * lines for the library's file name, its soname (libgmem.so.MAJOR) and
 * gmem.pc.  GMEM_VERSION compares as a number, e.g.
 * "#if GMEM_VERSION >= GMEM_VERSION_NUM(0, 4, 0)"; GMEM_CHECK_VERSION
 * asks the headers, gmem_check_version() the library the program runs
 * with: true if it is major.minor or newer.  gmem_version(3).
 */
#define GMEM_VERSION_MAJOR 0
#define GMEM_VERSION_MINOR 6
#define GMEM_VERSION_PATCH 0
#define GMEM_VERSION_NUM(major, minor, patch) \
	((major) * 10000 + (minor) * 100 + (patch))	/* minor, patch < 100 */
#define GMEM_VERSION \
	GMEM_VERSION_NUM(GMEM_VERSION_MAJOR, GMEM_VERSION_MINOR, \
			 GMEM_VERSION_PATCH)
#define GMEM_CHECK_VERSION(major, minor) \
	(GMEM_VERSION_MAJOR > (major) || \
	 (GMEM_VERSION_MAJOR == (major) && GMEM_VERSION_MINOR >= (minor)))

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif
int gmem_version_major(void);
int gmem_version_minor(void);
bool gmem_check_version(int major, int minor);
#ifdef __cplusplus
}
#endif
/* End of the version block. */

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
#define GMEM_FLAG_HUGEPAGE	(1ULL << 2)	/* huge-page backed: 2 MiB shmem
						   THP or 1 GiB hugetlb */
#define GMEM_HUGE_SHIFT		58		/* log2(page size) << 58: 21, 30 */
#define GMEM_HUGE_MASK		0x3fULL

/*
 * Huge page sizes by name, in the style of MFD_HUGE_2MB / MAP_HUGE_2MB:
 * GMEM_HUGE_2MB and GMEM_HUGE_1GB are the size bits alone (log2 of the
 * size << GMEM_HUGE_SHIFT), to go with GMEM_FLAG_HUGEPAGE;
 * GMEM_FLAG_HUGE_2MB and GMEM_FLAG_HUGE_1GB are GMEM_FLAG_HUGEPAGE and
 * the size bits together, a complete request on their own.  They are
 * the same bits as the shift encoding: GMEM_FLAG_HUGE_1GB ==
 * GMEM_FLAG_HUGEPAGE | 30ULL << GMEM_HUGE_SHIFT, so either spelling may
 * be used.  GMEM_FLAG_HUGEPAGE without size bits means 2 MiB.
 */
#define GMEM_HUGE_2MB		(21ULL << GMEM_HUGE_SHIFT)
#define GMEM_HUGE_1GB		(30ULL << GMEM_HUGE_SHIFT)
#define GMEM_FLAG_HUGE_2MB	(GMEM_FLAG_HUGEPAGE | GMEM_HUGE_2MB)
#define GMEM_FLAG_HUGE_1GB	(GMEM_FLAG_HUGEPAGE | GMEM_HUGE_1GB)

/* gmem_attributes.attributes */
#define GMEM_ATTR_PRIVATE	(1ULL << 3)	/* == KVM_MEMORY_ATTRIBUTE_PRIVATE */

/* gmem_attributes.flags */
#define GMEM_SET_ATTR_WAIT	(1ULL << 0)	/* to private: wait for pins to drop
						   instead of failing -EAGAIN */

/* gmem_create_args.backend */
#define GMEM_BACKEND_MEMFD	0		/* memfd_create(2); the default */
#define GMEM_BACKEND_KVM	1		/* a KVM guest_memfd */

/*
 * gmem_create_args.vm_fd with GMEM_BACKEND_KVM: libgmem opens /dev/kvm
 * and makes (and owns) a VM for the file.  A VM must be asked for this
 * way: any vm_fd >= 0, fd 0 included, must be a KVM VM fd (from
 * KVM_CREATE_VM) or gmem_create() fails -EBADF, so a zero-filled
 * struct with only the backend set never takes stdin for a VM.
 */
#define GMEM_KVM_NEW_VM		(-1)

struct gmem_create_args {		/* zero-filled = memfd backend */
	uint64_t size;			/* > 0, page (or huge page) aligned */
	uint64_t flags;			/* GMEM_FLAG_* */
	uint32_t backend;		/* GMEM_BACKEND_* */
	int32_t vm_fd;			/* GMEM_BACKEND_KVM: the KVM VM fd to
					   make the guest_memfd on, or
					   GMEM_KVM_NEW_VM; memfd: 0 */
	uint64_t reserved[6];		/* must be 0 */
};

/*
 * Create a guest memory file.  On success *out owns it and 0 is returned.
 * -EINVAL: size 0 or unaligned, unknown flags or backend, reserved not 0,
 * vm_fd not 0 (memfd) or below -1 (KVM), huge page size bits without
 * GMEM_FLAG_HUGEPAGE, a huge page size other than 2 MiB or 1 GiB, a size
 * that is not a multiple of the huge page size.
 * -EBADF: GMEM_BACKEND_KVM with a vm_fd >= 0 that is not an open KVM VM
 * fd (closed, /dev/kvm itself, a tty, any other file).
 * -EOPNOTSUPP: GMEM_FLAG_HUGEPAGE with 2 MiB pages while shmem THP is off
 * (shmem_enabled "never"/"deny"), with 1 GiB pages where the kernel has
 * no 1 GiB hugetlb, or with GMEM_BACKEND_KVM; for GMEM_BACKEND_KVM, a
 * kernel without guest_memfd with MMAP and INIT_SHARED (Linux 6.18).
 * -ENOMEM: 1 GiB pages the hugetlb pool cannot provide.
 * -ENOENT/-EACCES: GMEM_KVM_NEW_VM and /dev/kvm cannot be opened.
 */
int gmem_create(const struct gmem_create_args *args, struct gmem **out);

/*
 * Drop the caller's handle.  The memory lives on while host views, pins,
 * bindings or listeners hold it; gmem_munmap(), gmem_unpin(),
 * gmem_put_pfn(), gmem_unbind() and gmem_listener_unregister() still work
 * on those, every other call returns -EBADF.  Owners are invalidated
 * (GMEM_INVALIDATE_RELEASE).  The last release frees everything.
 * From inside one of g's callbacks the close is deferred: it takes effect
 * when the call that ran the callback is done with g, before it returns.
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
 * Any private page in the range: -EFAULT, nothing pinned; a poisoned one:
 * -EHWPOISON.
 */
int gmem_pin(struct gmem *g, uint64_t offset, uint64_t len, void **addr);
/* Drop one pin of each page; a page that is not pinned: -EINVAL. */
int gmem_unpin(struct gmem *g, uint64_t offset, uint64_t len);

/*
 * Copy len bytes from src into private pages starting at offset (page
 * aligned), as a VMM loads firmware before the guest runs.  Returns the
 * number of bytes copied; it stops at the first page that is not private
 * (-EPERM if that is the first page; -EHWPOISON for a poisoned one).  The
 * tail of the last page is left as it was.
 */
ssize_t gmem_populate(struct gmem *g, uint64_t offset, const void *src,
		      size_t len);

/*
 * Bindings: the hypervisor side.  A binding ties a range of the file to
 * an owner (think: a KVM memslot), which reaches pages with gmem_get_pfn()
 * and is told through ops->invalidate when pages it may have mapped go
 * away.  Bindings of one file never overlap (-EEXIST).
 */
struct gmem_binding;

/* Why an owner is invalidated. */
#define GMEM_INVALIDATE_PUNCH	1	/* punch-hole freed the pages */
#define GMEM_INVALIDATE_CONVERT	2	/* pages changed state (either way) */
#define GMEM_INVALIDATE_RELEASE	3	/* the file was closed while bound */
#define GMEM_INVALIDATE_POISON	4	/* memory failure */

struct gmem_binding_ops {
	/*
	 * [offset, offset + size) of the file (clipped to the binding) must
	 * no longer be used by the owner: drop every mapping of it before
	 * returning.  Runs with the file's lock held, so it must not call
	 * libgmem for the same file (those calls fail with -EDEADLK; a
	 * gmem_close() is deferred to the end of the call that ran the
	 * callback).  Never runs after gmem_unbind() has returned.
	 */
	void (*invalidate)(void *owner, uint64_t offset, uint64_t size,
			   unsigned int reason);
};

int gmem_bind(struct gmem *g, uint64_t offset, uint64_t size,
	      const struct gmem_binding_ops *ops, void *owner,
	      struct gmem_binding **out);
/* Drops the binding's outstanding references; frees b. */
int gmem_unbind(struct gmem_binding *b);

/* gmem_get_pfn() access kinds */
#define GMEM_ACCESS_SHARED	0
#define GMEM_ACCESS_PRIVATE	1

/* gmem_pfn.fault_flags, == KVM_MEMORY_EXIT_FLAG_PRIVATE */
#define GMEM_MEMORY_FAULT_PRIVATE	(1ULL << 3)

struct gmem_pfn {
	void *addr;			/* out: the page in the guest view */
	uint64_t offset;		/* out: its file offset */
	unsigned int order;		/* out: log2(pages) of the uniform huge
					   page holding it, if wholly inside
					   the binding: 0, 9 or 18 */
	uint32_t pad;
	/* out, on every -EFAULT (a memory fault, as KVM_EXIT_MEMORY_FAULT;
	   left as they were on any other result): */
	uint64_t fault_offset;		/* the range to convert (the page) */
	uint64_t fault_size;
	uint64_t fault_flags;		/* ... GMEM_MEMORY_FAULT_PRIVATE if the
					   access was private */
};

/*
 * Reach page index (a page number counted from the binding's start, not
 * a byte offset: see Units above) for an access of
 * kind access, allocating it if needed, and take a reference: a shared
 * access counts as a pin (to-private waits or fails -EAGAIN), a private
 * one does not hold conversions back (the owner is invalidated instead).
 * -EFAULT: the page is not in the state the access needs; fault_* say
 * what to convert before retrying.  -EHWPOISON: the page is poisoned.
 * -EAGAIN: retry (after leaving guest mode): an invalidation of the
 * binding is under way, or the page's huge folio is held by the kernel.
 * The address lies in the guest view, which no host view exposes.
 */
int gmem_get_pfn(struct gmem_binding *b, uint64_t index, unsigned int access,
		 struct gmem_pfn *pfn);
/* Drop a shared reference gmem_get_pfn() took (-EINVAL if there is none);
 * a private access is not counted: 0 after the argument checks. */
int gmem_put_pfn(struct gmem_binding *b, uint64_t index, unsigned int access);

/*
 * The invalidation protocol, in the shape of KVM's mmu_invalidate_seq:
 * read the sequence before gmem_get_pfn(), then, under the lock your
 * invalidate callback takes, install the page only if
 * gmem_invalidate_retry() is 0; else put the page and start again.  An
 * invalidation begins before its callback and ends once the change it
 * announced is done.  gmem_get_pfn() does not take the file's lock while
 * nothing changes (any number of threads at once), and returns -EAGAIN
 * instead of waiting for a change under way, so an invalidate callback
 * may wait for the threads that call it (kick vCPUs, wait until they
 * left guest mode).  See gmem_bind(3), INVALIDATION.
 */
uint64_t gmem_invalidate_seq(const struct gmem_binding *b);
int gmem_invalidate_retry(const struct gmem_binding *b, uint64_t seq);

/*
 * Listeners: consumers of shared memory (VFIO, vhost).  populate is told
 * of every run that becomes shared and may refuse (a negative errno): the
 * conversion is then rolled back and fails with that error.  discard is
 * told of every run that stops being shared.  Registration replays the
 * shared runs of the range through populate; unregistering replays
 * nothing.  Both run with the file's lock held (see gmem_binding_ops).
 */
struct gmem_listener;

struct gmem_listener_ops {
	int (*populate)(void *opaque, uint64_t offset, uint64_t size);
	void (*discard)(void *opaque, uint64_t offset, uint64_t size);
};

int gmem_listener_register(struct gmem *g, uint64_t offset, uint64_t size,
			   const struct gmem_listener_ops *ops, void *opaque,
			   struct gmem_listener **out);
int gmem_listener_unregister(struct gmem_listener *l);

/*
 * Memory failure: mark the page at offset poisoned, as the kernel's
 * memory_failure() would.  Host access then raises SIGBUS, gmem_get_pfn()
 * fails -EHWPOISON, owners are invalidated (GMEM_INVALIDATE_POISON);
 * other pages keep their contents.  Punching the page clears the poison.
 */
int gmem_memory_failure(struct gmem *g, uint64_t offset);

/*
 * GMEM_BACKEND_KVM: what a KVM memslot needs (KVM_SET_USER_MEMORY_REGION2
 * with KVM_MEM_GUEST_MEMFD): the guest_memfd, and a userspace address
 * for the slot: the guest view, a mapping of the whole file that shows
 * private pages too and that no host view exposes (KVM's instruction
 * emulator reads guest memory through it).  Both stay valid while the
 * file lives.  -EOPNOTSUPP for other backends.
 */
int gmem_kvm_memslot(struct gmem *g, int *gmem_fd, void **guest_addr);

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
	uint64_t pinned;		/* bytes with at least one pin, from
					   gmem_pin() or a shared get_pfn */
	uint64_t views;			/* host views (gmem_mmap) */
	uint64_t views_uffd;		/* of which guarded by userfaultfd */
	uint64_t bindings;		/* gmem_bind() not yet unbound */
	uint64_t pfn_refs;		/* shared gmem_get_pfn() not yet put */
	uint64_t invalidations;		/* invalidate calls made to owners */
	uint64_t listeners;		/* registered listeners */
	uint64_t listener_calls;	/* populate and discard calls made */
	uint64_t poisoned;		/* bytes poisoned by memory failure */
	uint64_t huge_mapped;		/* bytes of views mapped huge */
	uint64_t splits;		/* huge regions made mixed */
	uint64_t merges;		/* huge regions made uniform again */
	/* Mappings (VMAs) against vm.max_map_count, see gmem(7): */
	uint64_t vmas;			/* held by this file's views and
					   its guest view */
	uint64_t vmas_total;		/* held by libgmem in the process */
	uint64_t vma_budget;		/* libgmem's limit for the process */
	uint64_t views_revoked;		/* views made unreachable because a
					   failed change could not be undone */
	uint64_t mode_switches;		/* views that changed guard mode */
	/* Kernel references from when a page was shared, see gmem(7): */
	uint64_t parked;		/* private pages whose contents wait
					   in a snapshot for their first
					   private use */
	uint64_t parked_bytes;		/* memory those snapshots take */
	uint64_t rehomed;		/* pages given a fresh page */
	uint64_t rehome_busy;		/* re-homes refused: a 2 MiB page
					   still referenced by the kernel */
	/* Peers (gmem_export), owner side: */
	uint64_t peers;			/* attached now */
	uint64_t peer_changes;		/* changes peers confirmed */
	uint64_t peers_lost;		/* died, detached or cut off */
	uint64_t peers_cut;		/* of which cut off (no answer) */
	uint64_t peer_pinned;		/* bytes peers hold pinned */
	/* A peer file (gmem_attach): the range the owner exported to it
	   (size 0 for the owner's own files); the rest is never shown. */
	uint64_t peer_offset;
	uint64_t peer_size;
};

/*
 * Peers: the VMM's other processes that map guest memory (vhost-user
 * back-ends, virtiofsd, device models).  The owner, the process that
 * created the file, exports a range of it over a connected AF_UNIX
 * stream socket; the peer, a process linking libgmem, attaches on the
 * other end and gets a struct gmem of its own, a peer file, whose host
 * views and pins obey the owner's state exactly as local ones do:
 * shared pages accessible, private (and poisoned) ones SIGBUS.  A
 * conversion to private returns only after every peer has hidden the
 * pages in all its views; a conversion to shared only after every peer
 * shows them (and its listeners were told); a peer's pins hold
 * conversions to private back like local pins.  gmem(7), PEERS, has the
 * protocol, the trust model and what a dead or stuck peer costs.
 */
struct gmem_peer;			/* owner side: one attached peer */

/* gmem_export_args.flags */
#define GMEM_EXPORT_NO_KILL	(1ULL << 0)	/* never SIGKILL this peer when
						   it stops answering: its
						   mappings then outlive the
						   cut-off (gmem(7), PEERS) */

#define GMEM_PEER_TIMEOUT_MS	1000		/* timeout_ms 0 means this */

struct gmem_export_args {
	uint64_t offset;		/* the range the peer may map: page */
	uint64_t size;			/* aligned, inside the file, size > 0 */
	uint64_t flags;			/* GMEM_EXPORT_* */
	uint32_t timeout_ms;		/* how long the owner waits for this
					   peer (attach, each change) */
	uint32_t pad;			/* must be 0 */
	uint64_t reserved[4];		/* must be 0 */
};

/*
 * Export [offset, offset + size) of g to the peer on the other end of
 * sock (AF_UNIX, SOCK_STREAM, connected), which must call gmem_attach()
 * within timeout_ms.  On success the library owns sock and *out is the
 * peer until gmem_unexport(); on failure the caller keeps sock.
 * -EINVAL: bad arguments; -ENOTSOCK/-EPROTOTYPE: not a connected unix
 * stream socket; -ETIMEDOUT: the peer did not attach in time;
 * -EPROTO: it spoke something else; -EPERM: the peer could not be
 * killed if it stops answering (another user) and GMEM_EXPORT_NO_KILL
 * was not given; -ENODEV: no GMEM_FLAG_MMAP.  A 1 GiB hugetlb file is
 * exported in whole regions (else -EINVAL).
 */
int gmem_export(struct gmem *g, int sock, const struct gmem_export_args *a,
		struct gmem_peer **out);
/*
 * Owner side: 0 while the peer is attached, else why it is not:
 * -ECONNRESET (it died or detached), -ETIMEDOUT (cut off: it stopped
 * answering), -ESHUTDOWN (gmem_unexport() or the file was closed).
 */
int gmem_peer_status(const struct gmem_peer *p);
/*
 * Let the peer go: if it is still attached, it first hides every page
 * of its range in all its views (and says so, or is cut off), since it
 * will hear of no change again; then its pins are dropped and p freed.
 * 0, or -ETIMEDOUT if a GMEM_EXPORT_NO_KILL peer did not confirm (p is
 * freed all the same).
 */
int gmem_unexport(struct gmem_peer *p);

struct gmem_attach_args {
	uint64_t flags;			/* must be 0 */
	uint32_t timeout_ms;		/* how long to wait for the owner's
					   first message; 0: the default */
	uint32_t pad;			/* must be 0 */
	uint64_t reserved[6];		/* must be 0 */
};

/*
 * Peer side: attach to the file exported on the other end of sock.  On
 * success the library owns sock and *out is a peer file: gmem_mmap(),
 * gmem_munmap(), gmem_pin(), gmem_unpin(), gmem_get_attributes(),
 * gmem_listener_register()/_unregister(), gmem_stat(), gmem_get_fd() and
 * gmem_close() work on it, with file offsets (inside the exported
 * range); whatever would change the file (conversion, fallocate,
 * populate, bindings, memory failure, gmem_kvm_memslot()) fails -EPERM.
 * A thread of the library's serves the owner's changes.  Once the owner
 * has let it go (gmem_unexport()), every page is hidden; once the
 * owner's file is closed or the owner died, the state stays as it last
 * was (no page can become private any more); either way gmem_pin()
 * fails -ENOTCONN.  -ETIMEDOUT, -EPROTO as gmem_export().
 */
int gmem_attach(int sock, const struct gmem_attach_args *a,
		struct gmem **out);

/*
 * The backing file that holds offset, for what needs a plain fd
 * (vhost-user's memory regions, a peer protocol of the VMM's own):
 * *fd (the library's: do not close it; valid while g lives), offset's
 * offset in it, and how many bytes from offset it holds.  UNGUARDED:
 * whatever maps, reads or writes that fd reaches private pages too;
 * gmem(7), PEERS.  Owner and peer files alike.
 */
int gmem_get_fd(struct gmem *g, uint64_t offset, int *fd,
		uint64_t *fd_offset, uint64_t *len);

/*
 * Fill the first size bytes of *st (size <= sizeof(*st)); new fields are
 * only ever appended, so older callers keep working.
 */
int gmem_stat(struct gmem *g, struct gmem_stats *st, size_t size);

/*
 * Snapshot and restore (gmem_snapshot_save(3), gmem_snapshot_restore(3)).
 * A file is saved to a stream (any fd: a file, a pipe, a socket) as its
 * size, flags, shared/private runs, poisoned pages and the contents of
 * its allocated pages only, in a versioned format with a checksum on
 * every record (gmem_snapshot_save(3), FORMAT); restoring it makes a new
 * file with the same state, contents and allocation.  Private contents
 * are read and written through libgmem's own guest-side mapping, never a
 * host view.
 */
struct gmem_snapshot_save_args {
	uint64_t flags;			/* GMEM_SAVE_* */
	/* May be NULL.  Called now and then with the contents bytes
	 * written so far and their total, with g's lock held: a call for
	 * g from it fails -EDEADLK. */
	void (*progress)(void *opaque, uint64_t done, uint64_t total);
	void *opaque;
	uint64_t bytes;			/* out: bytes written to the stream */
	uint64_t reserved[4];		/* must be 0 */
};

/*
 * Write g to fd.  The file's lock is held for the whole save, so the
 * snapshot is one consistent state; stores through host views and by the
 * guest take no lock: quiesce them for consistent contents.  0 or -errno:
 * -EINVAL (bad arguments, reserved or flags not 0), -EBADF (g closed), an
 * error of write(2) on fd (-EPIPE without SIGPIPE, -ENOSPC, ...).  On an
 * error part of the stream may have been written; it has no END record,
 * so no restore accepts it.
 */
int gmem_snapshot_save(struct gmem *g, int fd,
		       struct gmem_snapshot_save_args *args);

/*
 * Dirty tracking (gmem_dirty_start(3)): which pages may have changed
 * since a mark, for pre-copy live migration.  While it is on, every
 * page written through a host view, a pin, the guest view (gmem_get_pfn()
 * addresses, populate) or allocated or punched since the mark is
 * reported; never fewer, sometimes more (pages read through a mapping,
 * pinned pages, the shared pages of an exported range; on guest_memfd
 * and hugetlb files, every allocated page).  A first-touch fault costs
 * what it costs without tracking.
 */
/* 0; -EBUSY already on, -EPERM a peer file, -ENOMEM, -EBADF closed. */
int gmem_dirty_start(struct gmem *g, uint64_t flags);	/* flags: 0 */
/* Tracking off (write-protection lifted); -EINVAL if it was not on. */
int gmem_dirty_stop(struct gmem *g);
/*
 * Bit i of bitmap (which it clears first: (len / page size + 63) / 64
 * words) is set for page offset / page size + i of [offset, +len) if
 * it may have changed since the previous collect of that page (or the
 * start); *count (may be NULL) = bits set.  Page-aligned arguments
 * (-EINVAL), tracking on (-EINVAL).  Collects and snapshot saves mark
 * independently: neither takes pages from the other.
 */
int gmem_dirty_collect(struct gmem *g, uint64_t offset, uint64_t len,
		       uint64_t *bitmap, uint64_t *count);

/* gmem_snapshot_save_args.flags */
#define GMEM_SAVE_DIRTY		(1ULL << 0)	/* incremental: what changed
						   since the chain's last save */

/* gmem_snapshot_restore_args.restore_flags */
#define GMEM_RESTORE_AS_SAVED	(1ULL << 0)	/* size and flags from the
						   stream (args' must be 0) */

struct gmem_snapshot_restore_args {
	uint64_t size;			/* must be the stream's (-ERANGE) */
	uint64_t flags;			/* GMEM_FLAG_*: must be the stream's */
	uint32_t backend;		/* must be the stream's (-EMEDIUMTYPE) */
	int32_t vm_fd;			/* as gmem_create_args.vm_fd */
	uint64_t restore_flags;		/* GMEM_RESTORE_* */
	/* May be NULL: contents bytes read so far and their total. */
	void (*progress)(void *opaque, uint64_t done, uint64_t total);
	void *opaque;
	uint64_t bytes;			/* out: bytes read from the stream */
	uint64_t reserved[4];		/* must be 0 */
};

/*
 * Read a snapshot from fd into a new file: on success *out owns it and 0
 * is returned.  On any error nothing is returned (*out is left alone),
 * the file being built is closed and nothing of it stays mapped:
 * -ENOEXEC not a snapshot (magic), -EPROTONOSUPPORT another format
 * version, -EBADMSG a checksum that does not match or a malformed
 * record, -ENODATA the stream ends before its END record, -ERANGE size
 * or flags other than args', -EMEDIUMTYPE a stream of another backend or
 * page size, -EINVAL bad args, and gmem_create()'s and read(2)'s errors.
 * Reads the stream up to and including END, nothing after it.
 */
int gmem_snapshot_restore(int fd, struct gmem_snapshot_restore_args *args,
			  struct gmem **out);

/*
 * Incremental snapshots, the chain (gmem_snapshot_apply(3)).  With dirty
 * tracking on, a full save (flags 0) starts a chain: generation 0; each
 * save with GMEM_SAVE_DIRTY writes the next generation: the state runs,
 * poison, the pages punched and the contents of the pages that may have
 * changed since the chain's previous save (-ENOENT: no chain: tracking
 * off, or no full save since it was started; a save that fails leaves
 * the chain where it was).  gmem_snapshot_restore() of generation 0
 * gives a file of the chain; gmem_snapshot_apply() brings it to the next
 * generation, with args as restore's (size, flags and backend must be
 * g's).  Errors as restore's, and -ESTALE: a stream of another chain,
 * not the next generation, a full stream, or g refused since an apply
 * of it failed part way (its contents are then neither generation's).
 */
int gmem_snapshot_apply(struct gmem *g, int fd,
			struct gmem_snapshot_restore_args *args);

#ifdef __cplusplus
}
#endif

#endif /* GMEM_H */
