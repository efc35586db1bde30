// SPDX-License-Identifier: MIT
/*
 * builtin-vm.c - "gmemctl vm": a tiny VMM on real KVM whose guest
 * converts its own memory.
 *
 * Guest RAM is a libgmem file on the kernel guest_memfd backend, bound
 * to a memslot with KVM_SET_USER_MEMORY_REGION2 + KVM_MEM_GUEST_MEMFD.
 * Its userspace address is libgmem's guest view (gmem_kvm_memslot()):
 * KVM's instruction emulator reads guest memory through it, and no host
 * view ever shows it.  The guest program is loaded with gmem_populate()
 * into private memory, writes a pattern into a private page, then asks
 * for that page to be shared the way confidential guests do:
 * KVM_HC_MAP_GPA_RANGE, where this KVM delivers the hypercall exit, or a
 * port-I/O doorbell otherwise (whether it does is found out by running a
 * probe guest, not assumed from KVM_CAP_EXIT_HYPERCALL).  The VMM
 * converts with gmem_set_attributes() and resumes; the host reads the
 * pattern through a view, then a stray read of a private page raises
 * SIGBUS, which is caught and reported.
 *
 * What protects what, in this mode (no hardware memory encryption, and
 * on Linux 6.18 no private state in KVM): libgmem keeps private pages
 * out of every host view; the guest, through KVM, reaches all its RAM.
 *
 * The hypercall instruction is the host's: VMX exits on vmcall, SVM on
 * vmmcall, and the other one only reaches KVM through its instruction
 * emulator, which rewrites it in guest memory (private here) or, on
 * some hosts, not at all.  The guest programs below are written with
 * vmcall; vm_load() puts vmmcall in its place on AMD and Hygon hosts
 * (host_hypercall(), from cpuid).
 *
 * --bench compares a guest-initiated conversion round trip (exit,
 * convert, resume) with a bare exit round trip (the floor), and the
 * kernel backend's fault and fallocate throughput with the memfd one.
 */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/falloc.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gmemctl.h"
#include "gmem_kvm.h"
#include "output.h"

#define GUEST_RAM	(2 * MiB)
#define CODE_GPA	0x1000		/* real mode, cs = ds = ss = 0 */
#define MODE_GPA	0x0ff0		/* byte: how to ask for conversions */
#define ITER_GPA	0x0ff4		/* dword: iterations (bench guest) */
#define DATA_GPA	0x10000		/* the page the guest shares */
#define SECRET_GPA	0x20000		/* a page that stays private */
#define DOORBELL	0x100		/* out: ebx gpa, ecx npages, edx attrs */
#define BARE_PORT	0x101		/* out: nothing to do (the floor) */
#define RUN_SECONDS	20		/* the emulator is slow, not stuck */
#define GUEST_PAGE	4096		/* MAP_GPA_RANGE counts x86 4K pages */

enum ask { ASK_DOORBELL = 0, ASK_HYPERCALL = 1, ASK_NOTHING = 2 };

/*
 * The guest (as, .code16): write 64 x 0xab at 0x10000 while private,
 * then MAP_GPA_RANGE(0x10000, 1 page, shared) by vmcall or doorbell.
 *	mov $0x1000,%ax; mov %ax,%es; xor %di,%di; mov $64,%cx;
 *	mov $0xab,%al; rep stosb
 *	mov $0x10000,%ebx; mov $1,%ecx; xor %edx,%edx
 *	cmpb $1,0x0ff0; jne 1f
 *	mov $12,%eax; vmcall; jmp 2f
 * 1:	mov $0x100,%dx; xor %eax,%eax; out %al,%dx
 * 2:	hlt; jmp 2b
 */
static const unsigned char guest_share[] = {
	0xb8, 0x00, 0x10, 0x8e, 0xc0, 0x31, 0xff, 0xb9, 0x40, 0x00, 0xb0,
	0xab, 0xf3, 0xaa, 0x66, 0xbb, 0x00, 0x00, 0x01, 0x00, 0x66, 0xb9,
	0x01, 0x00, 0x00, 0x00, 0x66, 0x31, 0xd2, 0x80, 0x3e, 0xf0, 0x0f,
	0x01, 0x75, 0x0b, 0x66, 0xb8, 0x0c, 0x00, 0x00, 0x00, 0x0f, 0x01,
	0xc1, 0xeb, 0x07, 0xba, 0x00, 0x01, 0x66, 0x31, 0xc0, 0xee, 0xf4,
	0xeb, 0xfd,
};

/*
 * The bench guest: [0x0ff4] times, share 0x10000 and take it back, each
 * request by vmcall (mode 1), a bare exit (mode 2) or the doorbell.
 *	mov 0x0ff4,%esi
 * 3:	mov $0x10000,%ebx; mov $1,%ecx; xor %edx,%edx; call 4f
 *	mov $0x10,%edx; call 4f; dec %esi; jnz 3b; hlt
 * 4:	cmpb $1,0x0ff0; jne 1f; mov $12,%eax; vmcall; ret
 * 1:	cmpb $2,0x0ff0; je 2f; mov $0x100,%dx; out %al,%dx; ret
 * 2:	mov $0x101,%dx; out %al,%dx; ret
 */
static const unsigned char guest_loop[] = {
	0x66, 0x8b, 0x36, 0xf4, 0x0f, 0x66, 0xbb, 0x00, 0x00, 0x01, 0x00,
	0x66, 0xb9, 0x01, 0x00, 0x00, 0x00, 0x66, 0x31, 0xd2, 0xe8, 0x0e,
	0x00, 0x66, 0xba, 0x10, 0x00, 0x00, 0x00, 0xe8, 0x05, 0x00, 0x66,
	0x4e, 0x75, 0xe1, 0xf4, 0x80, 0x3e, 0xf0, 0x0f, 0x01, 0x75, 0x0a,
	0x66, 0xb8, 0x0c, 0x00, 0x00, 0x00, 0x0f, 0x01, 0xc1, 0xc3, 0x80,
	0x3e, 0xf0, 0x0f, 0x02, 0x74, 0x05, 0xba, 0x00, 0x01, 0xee, 0xc3,
	0xba, 0x01, 0x01, 0xee, 0xc3,
};

/*	mov $12,%eax; xor %ebx,%ebx; mov $1,%ecx; xor %edx,%edx; vmcall; hlt */
static const unsigned char guest_probe[] = {
	0x66, 0xb8, 0x0c, 0x00, 0x00, 0x00, 0x66, 0x31, 0xdb, 0x66, 0xb9,
	0x01, 0x00, 0x00, 0x00, 0x66, 0x31, 0xd2, 0x0f, 0x01, 0xc1, 0xf4,
};

/* The hypercall instruction of this host's virtualization. */
struct hypercall_insn {
	const char *name;
	unsigned char op[3];
};

static const struct hypercall_insn *host_hypercall(void)
{
	static const struct hypercall_insn vmcall = {
		"vmcall", { 0x0f, 0x01, 0xc1 } };
	static const struct hypercall_insn vmmcall = {
		"vmmcall", { 0x0f, 0x01, 0xd9 } };
	unsigned int eax, ebx, ecx, edx;
	char vendor[13];

	if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx))
		return &vmcall;
	memcpy(vendor, &ebx, 4);
	memcpy(vendor + 4, &edx, 4);
	memcpy(vendor + 8, &ecx, 4);
	vendor[12] = '\0';
	if (!strcmp(vendor, "AuthenticAMD") || !strcmp(vendor, "HygonGenuine"))
		return &vmmcall;
	return &vmcall;
}

/* The host's vendor string, for messages. */
static const char *host_vendor(void)
{
	static char vendor[13];
	unsigned int eax, ebx, ecx, edx;

	if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx))
		return "unknown";
	memcpy(vendor, &ebx, 4);
	memcpy(vendor + 4, &edx, 4);
	memcpy(vendor + 8, &ecx, 4);
	return vendor;
}

struct vm {
	int kvm, fd, vcpu;
	struct kvm_run *run;
	size_t run_size;
	struct gmem *g;
	uint64_t conversions, exits;
};

static void on_alarm(int sig)
{
	(void)sig;	/* only there to make KVM_RUN return EINTR */
}

static int kvm_cap(int fd, int cap)
{
	return ioctl(fd, KVM_CHECK_EXTENSION, cap);
}

static void vm_close(struct vm *vm)
{
	if (vm->run)
		munmap(vm->run, vm->run_size);
	if (vm->vcpu >= 0)
		close(vm->vcpu);
	gmem_close(vm->g);
	if (vm->fd >= 0)
		close(vm->fd);
	*vm = (struct vm){ .kvm = vm->kvm, .fd = -1, .vcpu = -1 };
}

/* A VM with GUEST_RAM of libgmem guest_memfd at GPA 0 and one vCPU. */
static int vm_open(struct vm *vm, int kvm)
{
	struct gmem_create_args args = {
		.size = GUEST_RAM,
		.flags = GMEM_FLAG_MMAP,		/* private at first */
		.backend = GMEM_BACKEND_KVM,
	};
	struct kvm_enable_cap hc = {
		.cap = GMEM_KVM_CAP_EXIT_HYPERCALL,
		.args = { 1ULL << GMEM_KVM_HC_MAP_GPA_RANGE },
	};
	struct gmem_kvm_userspace_memory_region2 slot = {
		.flags = GMEM_KVM_MEM_GUEST_MEMFD,
		.memory_size = GUEST_RAM,
	};
	void *guest_addr;
	int ret, gfd;

	*vm = (struct vm){ .kvm = kvm, .fd = -1, .vcpu = -1 };
	vm->fd = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm->fd < 0)
		return -errno;
	if (kvm_cap(vm->fd, GMEM_KVM_CAP_EXIT_HYPERCALL) &
	    (1 << GMEM_KVM_HC_MAP_GPA_RANGE))
		ioctl(vm->fd, KVM_ENABLE_CAP, &hc);
	args.vm_fd = vm->fd;
	ret = gmem_create(&args, &vm->g);
	if (!ret)
		ret = gmem_kvm_memslot(vm->g, &gfd, &guest_addr);
	if (ret)
		goto err;
	slot.userspace_addr = (uintptr_t)guest_addr;
	slot.guest_memfd = (uint32_t)gfd;
	if (ioctl(vm->fd, GMEM_KVM_SET_USER_MEMORY_REGION2, &slot) ||
	    (vm->vcpu = ioctl(vm->fd, KVM_CREATE_VCPU, 0)) < 0) {
		ret = -errno;
		goto err;
	}
	vm->run_size = (size_t)ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	vm->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       vm->vcpu, 0);
	if (vm->run == MAP_FAILED) {
		vm->run = NULL;
		ret = -errno;
		goto err;
	}
	return 0;
err:
	vm_close(vm);
	return ret;
}

/*
 * Load a program at CODE_GPA with the mode byte and iteration count
 * below it, all into private memory, and point the vCPU at it.
 */
static int vm_load(struct vm *vm, const unsigned char *code, size_t len,
		   enum ask mode, uint32_t iterations)
{
	unsigned char img[CODE_GPA + 128] = { 0 };
	struct kvm_regs regs = {
		.rip = CODE_GPA, .rsp = 0x0f00, .rflags = 2,
	};
	struct kvm_sregs sregs;
	ssize_t n;

	img[MODE_GPA] = (unsigned char)mode;
	memcpy(img + ITER_GPA, &iterations, sizeof(iterations));
	memcpy(img + CODE_GPA, code, len);
	/* Each program holds one vmcall (0f 01 c1): the host's instead. */
	for (size_t i = CODE_GPA; i + 3 <= CODE_GPA + len; i++)
		if (!memcmp(img + i, "\x0f\x01\xc1", 3))
			memcpy(img + i, host_hypercall()->op, 3);
	n = gmem_populate(vm->g, 0, img, CODE_GPA + len);
	if (n < 0)
		return (int)n;
	if (ioctl(vm->vcpu, KVM_GET_SREGS, &sregs))
		return -errno;
	sregs.cs.base = sregs.ds.base = sregs.es.base = sregs.ss.base = 0;
	sregs.cs.selector = sregs.ds.selector = sregs.es.selector = 0;
	sregs.ss.selector = 0;
	if (ioctl(vm->vcpu, KVM_SET_SREGS, &sregs) ||
	    ioctl(vm->vcpu, KVM_SET_REGS, &regs))
		return -errno;
	return 0;
}

/* MAP_GPA_RANGE(gpa, npages, attrs): the VMM's side of a request. */
static int vm_convert(struct vm *vm, uint64_t gpa, uint64_t npages,
		      uint64_t attrs, bool verbose)
{
	bool private = attrs & GMEM_KVM_MAP_GPA_RANGE_ENCRYPTED;
	uint64_t eo = 0;
	int ret = convert_range(vm->g, gpa, npages * GUEST_PAGE, private, &eo);

	if (verbose)
		out_detail("VMM: convert [0x%llx, +%s) to %s: %s",
			   (unsigned long long)gpa,
			   fmt_bytes(npages * GUEST_PAGE),
			   private ? "private" : "shared",
			   ret ? strerror(-ret) : "done, guest resumes");
	vm->conversions += !ret;
	return ret;
}

/*
 * Run the vCPU until HLT, serving conversion requests.  Returns 0, or
 * -ETIMEDOUT after RUN_SECONDS, or -EIO for an exit we do not expect.
 */
static int vm_run(struct vm *vm, bool verbose)
{
	struct kvm_run *run = vm->run;
	struct kvm_regs regs;
	int ret;

	alarm(RUN_SECONDS);
	for (;;) {
		if (ioctl(vm->vcpu, KVM_RUN, 0)) {
			ret = errno == EINTR ? -ETIMEDOUT : -errno;
			break;
		}
		vm->exits++;
		if (run->exit_reason == KVM_EXIT_HLT) {
			ret = 0;
			break;
		}
		if (run->exit_reason == GMEM_KVM_EXIT_HYPERCALL &&
		    run->hypercall.nr == GMEM_KVM_HC_MAP_GPA_RANGE) {
			if (verbose)
				out_detail("guest: KVM_HC_MAP_GPA_RANGE exit");
			ret = vm_convert(vm, run->hypercall.args[0],
					 run->hypercall.args[1],
					 run->hypercall.args[2], verbose);
			run->hypercall.ret = ret ? (uint64_t)-ret : 0;
			continue;
		}
		if (run->exit_reason == KVM_EXIT_IO &&
		    run->io.port == BARE_PORT)
			continue;
		if (run->exit_reason == KVM_EXIT_IO &&
		    run->io.port == DOORBELL) {
			if (ioctl(vm->vcpu, KVM_GET_REGS, &regs)) {
				ret = -errno;
				break;
			}
			if (verbose)
				out_detail("guest: doorbell (port 0x%x)",
					   DOORBELL);
			ret = vm_convert(vm, regs.rbx & 0xffffffff,
					 regs.rcx & 0xffffffff,
					 regs.rdx & 0xffffffff, verbose);
			if (ret)
				break;
			continue;
		}
		out_error("vm: unexpected exit %u", run->exit_reason);
		ret = -EIO;
		break;
	}
	alarm(0);
	return ret;
}

/* Does this KVM deliver KVM_HC_MAP_GPA_RANGE exits?  Ask a probe guest. */
static bool hypercall_delivered(int kvm)
{
	struct vm vm;
	bool yes;

	if (vm_open(&vm, kvm))
		return false;
	if (vm_load(&vm, guest_probe, sizeof(guest_probe), ASK_DOORBELL, 0)) {
		vm_close(&vm);
		return false;
	}
	alarm(1);
	yes = !ioctl(vm.vcpu, KVM_RUN, 0) &&
	      vm.run->exit_reason == GMEM_KVM_EXIT_HYPERCALL;
	alarm(0);
	vm_close(&vm);
	return yes;
}

static sigjmp_buf probe_jmp;
static void *probe_addr;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	probe_addr = si->si_addr;
	siglongjmp(probe_jmp, sig);
}

/* Read one byte; true if it raised SIGBUS (at *fault). */
static bool read_faults(const volatile char *p, void **fault)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus,
				.sa_flags = SA_SIGINFO }, old;
	bool faulted = false;

	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(probe_jmp, 1) == 0)
		(void)*p;
	else
		faulted = true;
	sigaction(SIGBUS, &old, NULL);
	*fault = probe_addr;
	return faulted;
}

static int check_guest(int kvm, enum ask ask)
{
	struct gmem_stats st;
	unsigned int good = 0;
	void *fault = NULL;
	struct vm vm;
	char *view;
	int ret;

	ret = vm_open(&vm, kvm);
	if (ret == -EOPNOTSUPP) {
		out_error("vm: skipped: no KVM guest_memfd with MMAP and "
			  "INIT_SHARED here (%s; Linux 6.18)", strerror(-ret));
		return EXIT_SKIP;
	}
	if (ret) {
		out_error("vm: cannot set up the VM: %s", strerror(-ret));
		return EXIT_FAIL;
	}
	out_detail("guest RAM: %s of guest_memfd, all private, memslot 0 at "
		   "GPA 0 (KVM_MEM_GUEST_MEMFD)", fmt_bytes(GUEST_RAM));
	ret = vm_load(&vm, guest_share, sizeof(guest_share), ask, 0);
	if (!ret)
		ret = gmem_mmap(vm.g, 0, GUEST_RAM, PROT_READ, (void **)&view);
	if (ret) {
		out_error("vm: loading the guest: %s", strerror(-ret));
		vm_close(&vm);
		return EXIT_FAIL;
	}
	out_detail("guest program: %zu bytes populated at 0x%x (private)",
		   sizeof(guest_share), CODE_GPA);

	out_step(3, "The guest writes a pattern into private page 0x%x and "
		 "asks to share it", DATA_GPA);
	ret = vm_run(&vm, true);
	if (ret == -ETIMEDOUT) {
		out_error("vm: the guest did not finish within %d s%s",
			  RUN_SECONDS, ask == ASK_HYPERCALL ?
			  ": this KVM did not deliver its hypercall exit" : "");
		vm_close(&vm);
		return EXIT_FAIL;
	} else if (ret) {
		out_error("vm: the guest did not finish: %s", strerror(-ret));
		vm_close(&vm);
		return EXIT_FAIL;
	}
	out_detail("guest: hlt after %llu exits",
		   (unsigned long long)vm.exits);

	out_step(4, "The host reads the shared page through a view");
	for (unsigned int i = 0; i < 64; i++)
		good += (unsigned char)view[DATA_GPA + i] == 0xab;
	out_detail("%u of 64 bytes hold the guest's 0xab%s", good,
		   good == 64 ? ": ok" : "");
	if (good != 64)
		out_error("vm: the shared page lost the guest's pattern");

	out_step(5, "A stray host read of private memory");
	if (read_faults(view + SECRET_GPA + 8, &fault))
		out_detail("SIGBUS at %p: offset 0x%llx of guest RAM, private: "
			   "caught", fault,
			   (unsigned long long)((char *)fault - view));
	else
		out_error("vm: the host read private 0x%x without a SIGBUS",
			  SECRET_GPA + 8);
	gmem_stat(vm.g, &st, sizeof(st));
	out_detail("%llu conversion(s); %s private, %s shared",
		   (unsigned long long)st.conversions, fmt_bytes(st.priv),
		   fmt_bytes(st.shared));
	ret = good == 64 && fault == view + SECRET_GPA + 8 &&
	      st.conversions == 1 ? EXIT_OK : EXIT_FAIL;
	gmem_munmap(vm.g, view, GUEST_RAM);
	vm_close(&vm);
	if (ret == EXIT_OK)
		out_line("\nvm: all checks passed");
	else
		out_error("vm: checks failed");
	return ret;
}

/* ns per exit of iterations x 2 requests of mode ask. */
static double round_trip(int kvm, enum ask ask, uint32_t iterations)
{
	struct vm vm;
	uint64_t t;
	int ret;

	if (vm_open(&vm, kvm))
		return -1;
	ret = vm_load(&vm, guest_loop, sizeof(guest_loop), ask, iterations);
	t = bench_now();
	if (!ret)
		ret = vm_run(&vm, false);
	t = bench_now() - t;
	if (!ret && ask != ASK_NOTHING && vm.conversions != 2ULL * iterations)
		ret = -EIO;
	vm_close(&vm);
	return ret ? -1 : (double)t / (2.0 * iterations);
}

/* First-touch faults and fallocate, ns per page, on one backend. */
static int backend_costs(uint32_t backend, uint64_t size, double *fault,
			 double *falloc)
{
	struct gmem_create_args args = {
		.size = size,
		.flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
		.backend = backend,
		.vm_fd = backend == GMEM_BACKEND_KVM ? -1 : 0,
	};
	struct gmem *g;
	uint64_t t;
	char *v;
	int ret = gmem_create(&args, &g);

	if (ret)
		return ret;
	ret = gmem_mmap(g, 0, size, PROT_READ | PROT_WRITE, (void **)&v);
	if (!ret) {
		t = bench_now();
		for (uint64_t off = 0; off < size; off += page_size())
			v[off] = 1;
		*fault = (double)(bench_now() - t) / (double)(size / page_size());
		gmem_munmap(g, v, size);
		ret = gmem_fallocate(g, FALLOC_FL_KEEP_SIZE |
				     FALLOC_FL_PUNCH_HOLE, 0, size);
	}
	if (!ret) {
		t = bench_now();
		ret = gmem_fallocate(g, FALLOC_FL_KEEP_SIZE, 0, size);
		*falloc = (double)(bench_now() - t) / (double)(size / page_size());
	}
	gmem_close(g);
	return ret;
}

static int bench_vm(int kvm, enum ask ask, bool quick)
{
	uint32_t n = quick ? 500 : 5000;
	double ours[BENCH_ROUNDS], floor[BENCH_ROUNDS], kf, kfa, mf, mfa;
	uint64_t size = quick ? 16 * MiB : 128 * MiB;
	int ret;

	for (int r = 0; r < BENCH_ROUNDS; r++) {
		ours[r] = round_trip(kvm, ask, n);
		floor[r] = round_trip(kvm, ASK_NOTHING, n);
		if (ours[r] < 0 || floor[r] < 0) {
			out_error("vm: a benchmark guest failed");
			return EXIT_FAIL;
		}
	}
	out_line("# vm: conversions requested by %s",
		 ask == ASK_HYPERCALL ? "KVM_HC_MAP_GPA_RANGE" : "doorbell");
	bench_report_time("vm_convert_round_trip", 2ULL * n,
			  bench_median(ours, BENCH_ROUNDS), "vm_bare_exit",
			  bench_median(floor, BENCH_ROUNDS), NO_TARGET);
	ret = backend_costs(GMEM_BACKEND_KVM, size, &kf, &kfa);
	if (!ret)
		ret = backend_costs(GMEM_BACKEND_MEMFD, size, &mf, &mfa);
	if (ret) {
		out_error("vm: backend costs: %s", strerror(-ret));
		return EXIT_FAIL;
	}
	bench_report_time("kvm_backend_fault", size / page_size(), kf,
			  "memfd_backend_fault", mf, NO_TARGET);
	bench_report_time("kvm_backend_fallocate", size / page_size(), kfa,
			  "memfd_backend_fallocate", mfa, NO_TARGET);
	return EXIT_OK;
}

static const char vm_usage[] =
"usage: gmemctl vm [--ask auto|hypercall|doorbell] [--bench [--quick]]\n"
"\n"
"A tiny VMM on /dev/kvm.  Guest RAM is a libgmem file on the kernel\n"
"guest_memfd backend, private at first.  The guest writes a pattern into\n"
"a private page and asks for it to be shared (KVM_HC_MAP_GPA_RANGE, or a\n"
"port-I/O doorbell where the hypercall exit is not delivered); the VMM\n"
"converts it with gmem_set_attributes(), the host reads it through a\n"
"view, and a stray host read of a private page is caught (SIGBUS).\n"
"\n"
"The hypercall is the host's instruction: vmmcall on AMD and Hygon\n"
"CPUs, vmcall on the others (cpuid).\n"
"\n"
"options:\n"
"  --ask MODE  how the guest asks: auto (default: a probe guest tries the\n"
"              hypercall, else the doorbell), hypercall (exit 77 if this\n"
"              KVM does not deliver its exit), doorbell\n"
"  --bench     measure the conversion round trip against a bare exit,\n"
"              and the kernel backend against the memfd one\n"
"  --quick     smaller benchmark counts\n"
"  -h, --help  this text\n"
"\n"
"exit status: 0 ok, 1 failure, 2 usage error, 77 skipped (no /dev/kvm,\n"
"no guest_memfd with MMAP and INIT_SHARED: Linux 6.18, or --ask\n"
"hypercall where the exit is not delivered); 0 means all checks passed.\n";

/* --ask MODE: 0 and *ask, *forced, or a usage error. */
static int parse_ask(const char *m, enum ask *ask, bool *forced)
{
	*forced = strcmp(m, "auto") != 0;
	if (!strcmp(m, "hypercall"))
		*ask = ASK_HYPERCALL;
	else if (!strcmp(m, "doorbell"))
		*ask = ASK_DOORBELL;
	else if (*forced)
		return out_usage_error(vm_usage, "vm: unknown --ask '%s' "
				       "(auto, hypercall, doorbell)", m);
	return 0;
}

static int parse_args(int argc, char **argv, bool *bench, bool *quick,
		      enum ask *ask, bool *forced)
{
	static const struct option longopts[] = {
		{ "ask", required_argument, NULL, 'a' },
		{ "bench", no_argument, NULL, 'b' },
		{ "quick", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, ret;

	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'a':
			ret = parse_ask(optarg, ask, forced);
			if (ret)
				return ret;
			break;
		case 'b':
			*bench = true;
			break;
		case 'q':
			*quick = true;
			break;
		case 'h':
			out_help(vm_usage);
			return -1;
		case ':':
			return out_usage_error(vm_usage, "vm: %s needs a value",
					       argv[optind - 1]);
		default:
			return out_usage_error(vm_usage, "vm: unknown option "
					       "'%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return out_usage_error(vm_usage, "vm: unexpected argument "
				       "'%s'", argv[optind]);
	return 0;
}

int cmd_vm(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	bool bench = false, quick = false, forced = false, delivered;
	enum ask ask = ASK_DOORBELL;
	int kvm, ret;

	ret = parse_args(argc, argv, &bench, &quick, &ask, &forced);
	if (ret)
		return ret < 0 ? EXIT_OK : ret;
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		out_error("vm: skipped: /dev/kvm: %s", strerror(errno));
		return EXIT_SKIP;
	}
	sigaction(SIGALRM, &sa, NULL);	/* no SA_RESTART: KVM_RUN returns */

	if (!bench)
		out_step(1, "KVM capabilities");
	if (!bench)
		out_detail("GUEST_MEMFD %d, GUEST_MEMFD_FLAGS %#x, VM_TYPES %#x, "
			   "MEMORY_ATTRIBUTES %#x, EXIT_HYPERCALL %#x",
			   kvm_cap(kvm, GMEM_KVM_CAP_GUEST_MEMFD),
			   kvm_cap(kvm, GMEM_KVM_CAP_GUEST_MEMFD_FLAGS),
			   kvm_cap(kvm, GMEM_KVM_CAP_VM_TYPES),
			   kvm_cap(kvm, GMEM_KVM_CAP_MEMORY_ATTRIBUTES),
			   kvm_cap(kvm, GMEM_KVM_CAP_EXIT_HYPERCALL));
	delivered = ask != ASK_DOORBELL || !forced ? hypercall_delivered(kvm) :
		    false;
	if (!forced)
		ask = delivered ? ASK_HYPERCALL : ASK_DOORBELL;
	if (ask == ASK_HYPERCALL && !delivered) {
		out_error("vm: skipped: --ask hypercall: a probe guest's %s "
			  "(%s host) brought no KVM_HC_MAP_GPA_RANGE exit: this "
			  "KVM does not deliver it (--ask doorbell works "
			  "everywhere)", host_hypercall()->name, host_vendor());
		close(kvm);
		return EXIT_SKIP;
	}
	if (bench) {
		ret = bench_vm(kvm, ask, quick);
	} else {
		if (kvm_cap(kvm, GMEM_KVM_CAP_MEMORY_ATTRIBUTES) &
		    GMEM_KVM_MEMORY_ATTRIBUTE_PRIVATE)
			out_detail("KVM tracks private memory too (per VM); "
				   "libgmem keeps the file's own state");
		else
			out_detail("MEMORY_ATTRIBUTES has no PRIVATE: libgmem "
				   "keeps the shared/private state alone");
		if (ask == ASK_HYPERCALL)
			out_detail("the guest asks by KVM_HC_MAP_GPA_RANGE "
				   "(%s, the %s host's hypercall; %s)",
				   host_hypercall()->name, host_vendor(),
				   forced ? "forced" :
				   "the probe guest's exit arrived");
		else
			out_detail("the guest asks by port-I/O doorbell (%s)",
				   forced ? "forced" : "a probe guest's "
				   "hypercall exit never arrived");
		out_step(2, "A VM whose RAM is libgmem guest_memfd");
		ret = check_guest(kvm, ask);
	}
	close(kvm);
	return ret;
}
