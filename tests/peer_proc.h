/* SPDX-License-Identifier: MIT */
/*
 * peer_proc.h - peers that are other processes, for test_peer.c and
 * test_peer_faults.c: the program exec's itself with GMEM_PEER_ROLE set,
 * and a constructor runs the peer before main().  Include after
 * gmem_test.h, in one file per program.
 *
 * Roles: reader (reads every page of its view in a loop, counting
 * faults and any secret it reads), writer (the same, and writes its
 * mark in every page it can), stall (stops itself once ready), pin
 * (pins the first page, unpins when told), pinfork (pins, then forks a
 * child that sleeps and holds the socket; its pid goes to out), detach
 * (unmaps and closes its file, then lives on), trickle (a copy of its
 * socket gets one byte of garbage every 50 ms, as a broken sender's),
 * forge (with src/peer.h: an ACK for a change never sent, then stops).  The owner side: spawn()
 * (fork, exec, export), reap() (stop it, its counts), secret_round().
 * PEER_FAULT_HOOK, if a program defines it (a function of one string)
 * before the include, runs in the peer after its view is made, with
 * GMEM_PEER_FAULT's value, when that is set (fault injection).
 */
#ifndef GMEM_TESTS_PEER_PROC_H
#define GMEM_TESTS_PEER_PROC_H

#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define SECRET		0x5ec2e75ec2e70000ULL	/* | page */
#define PEER_MARK	0x7065657200000000ULL	/* | page */

static uint64_t ps;

/* A file of n pages, all shared, with views (ps set). */
static int peer_test_file(uint64_t n, struct gmem **g)
{
	struct gmem_create_args a = { .flags = GMEM_FLAG_MMAP |
					       GMEM_FLAG_INIT_SHARED };

	ps = gmem_test_page_size();
	a.size = n * ps;
	return gmem_test_create(&a, g);
}

struct peer_result {
	uint64_t reads, faults, secrets, writes;
};

static sigjmp_buf peer_jmp;
static volatile sig_atomic_t peer_armed;

/* In the peer: a SIGBUS or SIGSEGV outside an access under test fails it. */
static void on_bus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	if (!peer_armed)
		_exit(99);
	siglongjmp(peer_jmp, 1);
}

/*
 * Read a page's first two words (and write the third): -1 if it
 * faulted (the page may go private between any two accesses), 1 if a
 * read returned a secret, else 0.
 */
static __attribute__((noinline)) int peer_touch(volatile uint64_t *w, bool write,
					   uint64_t mark)
{
	uint64_t w0, w1;

	if (sigsetjmp(peer_jmp, 1)) {
		peer_armed = 0;
		return -1;
	}
	peer_armed = 1;
	w0 = w[0];
	w1 = w[1];
	if (write)
		w[2] = mark;
	peer_armed = 0;
	return (w0 & ~0xffffULL) == SECRET || (w1 & ~0xffffULL) == SECRET;
}

/* The peer process: attach, then play the role until ctl closes. */
static int peer_main(const char *role)
{
	int sock = atoi(getenv("GMEM_PEER_SOCK"));
	int out = atoi(getenv("GMEM_PEER_OUT"));
	int ctl = atoi(getenv("GMEM_PEER_CTL"));
	uint64_t off = strtoull(getenv("GMEM_PEER_OFF"), NULL, 0);
	uint64_t len = strtoull(getenv("GMEM_PEER_LEN"), NULL, 0);
	struct gmem_attach_args aa = { .timeout_ms = 5000 };
	struct peer_result r = { 0 };
	struct pollfd pfd = { .fd = ctl, .events = POLLIN };
	uint64_t pg = gmem_test_page_size(), n = len / pg;
	int dupfd = dup(sock);		/* trickle, forge: a second writer */
	struct gmem *g;
	char *v, c;

	if (gmem_attach(sock, &aa, &g))
		return 10;
	if (gmem_mmap(g, off, len, PROT_READ | PROT_WRITE, (void **)&v))
		return 11;
	if (!strcmp(role, "pin")) {
		void *a;

		if (gmem_pin(g, off, pg, &a))
			return 12;
		c = 'P';
		if (write(out, &c, 1) != 1)
			return 13;
		if (read(ctl, &c, 1) != 1)	/* unpin when told */
			return 14;
		if (gmem_unpin(g, off, pg))
			return 15;
		c = 'U';
		if (write(out, &c, 1) != 1)
			return 13;
	}
	if (!strcmp(role, "pinfork")) {
		void *a;
		pid_t kid;

		if (gmem_pin(g, off, pg, &a))
			return 12;
		kid = fork();
		if (!kid) {		/* holds the socket, touches nothing */
			sleep(30);
			_exit(0);
		}
		c = 'P';
		if (write(out, &c, 1) != 1 ||
		    write(out, &kid, sizeof(kid)) != sizeof(kid))
			return 13;
		pause();		/* until it is killed */
	}
	if (!strcmp(role, "detach")) {
		if (gmem_munmap(g, v, len))
			return 16;
		gmem_close(g);		/* says BYE: nothing mapped */
		c = 'D';
		if (write(out, &c, 1) != 1)
			return 13;
		while (poll(&pfd, 1, -1) == 0)
			;
		return 0;
	}
	c = 'R';
	if (write(out, &c, 1) != 1)
		return 13;
	if (!strcmp(role, "stall"))
		raise(SIGSTOP);
	if (!strcmp(role, "trickle")) {
		while (poll(&pfd, 1, 50) == 0)
			if (write(dupfd, "x", 1) != 1)
				break;
	}
#ifdef GMEM_PEER_H
	if (!strcmp(role, "forge")) {
		struct peer_msg m = { PEER_MAGIC, PM_ACK, 1ULL << 62, 0, { 0 } };

		if (write(dupfd, &m, sizeof(m)) != sizeof(m))
			return 13;
		raise(SIGSTOP);
	}
#endif
#ifdef PEER_FAULT_HOOK
	if (getenv("GMEM_PEER_FAULT"))
		PEER_FAULT_HOOK(getenv("GMEM_PEER_FAULT"));
#endif
	struct sigaction sa = { .sa_sigaction = on_bus, .sa_flags = SA_SIGINFO };

	sigaction(SIGBUS, &sa, NULL);
	/* A view revoked when even its holes could not be made is unmapped
	 * (gmem(7), WHEN SYSTEM CALLS FAIL): SIGSEGV, a fault too. */
	sigaction(SIGSEGV, &sa, NULL);
	while (poll(&pfd, 1, 0) == 0) {
		for (uint64_t i = 0; i < n; i++) {
			int t = peer_touch((volatile uint64_t *)(v + i * pg),
				      !strcmp(role, "writer"),
				      PEER_MARK | (off / pg + i));

			r.faults += t < 0;
			r.reads += t >= 0;
			r.secrets += t == 1;
			r.writes += t >= 0 && !strcmp(role, "writer");
		}
	}
	if (write(out, &r, sizeof(r)) != sizeof(r))
		return 13;
	if (gmem_munmap(g, v, len))
		return 16;
	gmem_close(g);
	return 0;
}

static void __attribute__((constructor)) peer_entry(void)
{
	const char *role = getenv("GMEM_PEER_ROLE");

	if (role && *role)
		_exit(peer_main(role));
}

struct child {
	pid_t pid;
	int out, ctl;
	struct gmem_peer *peer;
};

/* fork + exec this program as a peer of [off, +len) of g. */
static int spawn(struct gmem *g, const char *role, uint64_t off,
		 uint64_t len, uint64_t flags, unsigned int timeout_ms,
		 struct child *c)
{
	struct gmem_export_args ea = { .offset = off, .size = len,
				       .flags = flags,
				       .timeout_ms = timeout_ms };
	int sv[2], out[2], ctl[2], ret;
	char b, exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	/* The real path, so a sanitizer's symbolizer can read it. */
	if (n <= 0)
		return -errno;
	exe[n] = 0;
	/* A sanitizer makes the peer ten times slower: not stuck. */
	if (!timeout_ms && gmem_test_foreign_runtime())
		ea.timeout_ms = 20000;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) ||
	    pipe2(out, O_CLOEXEC) || pipe2(ctl, O_CLOEXEC))
		return -errno;
	c->pid = fork();
	if (c->pid < 0)
		return -errno;
	if (!c->pid) {
		char buf[5][32];

		snprintf(buf[0], 32, "%d", dup(sv[1]));
		snprintf(buf[1], 32, "%d", dup(out[1]));
		snprintf(buf[2], 32, "%d", dup(ctl[0]));
		snprintf(buf[3], 32, "%llu", (unsigned long long)off);
		snprintf(buf[4], 32, "%llu", (unsigned long long)len);
		setenv("GMEM_PEER_SOCK", buf[0], 1);
		setenv("GMEM_PEER_OUT", buf[1], 1);
		setenv("GMEM_PEER_CTL", buf[2], 1);
		setenv("GMEM_PEER_OFF", buf[3], 1);
		setenv("GMEM_PEER_LEN", buf[4], 1);
		setenv("GMEM_PEER_ROLE", role, 1);
		execl(exe, exe, (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	close(out[1]);
	close(ctl[0]);
	c->out = out[0];
	c->ctl = ctl[1];
	ret = gmem_export(g, sv[0], &ea, &c->peer);
	if (ret) {
		close(sv[0]);
		return ret;
	}
	/* Ready (or pinned) once it has its view. */
	if (read(c->out, &b, 1) != 1)
		return -EIO;
	return 0;
}

/* Stop a peer: its result, and 0 if it exited cleanly. */
static int __harness_unused reap(struct child *c, struct peer_result *r)
{
	int st = 0, ret = 0;

	close(c->ctl);
	if (r && read(c->out, r, sizeof(*r)) != sizeof(*r))
		ret = -EIO;
	close(c->out);
	waitpid(c->pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		TH_LOG("peer %d: %s %d", (int)c->pid,
		       WIFEXITED(st) ? "exit" : "signal",
		       WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		ret = ret ? ret : -ECHILD;
	}
	if (c->peer)
		gmem_unexport(c->peer);
	c->peer = NULL;
	return ret;
}

static void noop_invalidate(void *o, uint64_t off, uint64_t size,
			    unsigned int reason)
{
	(void)o;
	(void)off;
	(void)size;
	(void)reason;
}

static const struct gmem_binding_ops nops = { noop_invalidate };

/*
 * One round on page p: private, a secret through the guest side,
 * checked, wiped, shared again.  0, or what went wrong (> 0: a peer
 * write landed in the private page).
 */
static int __harness_unused secret_round(struct gmem *g, struct gmem_binding *b, uint64_t p)
{
	struct gmem_pfn pfn;
	volatile uint64_t *w;
	int ret = convert(g, p * ps, ps, 1);

	if (ret)
		return ret;
	ret = gmem_get_pfn(b, p, GMEM_ACCESS_PRIVATE, &pfn);
	if (ret)
		return ret;
	w = pfn.addr;
	w[0] = w[1] = w[2] = SECRET | p;
	for (int i = 0; i < 200; i++)
		__asm__ volatile("" ::: "memory");
	if (w[0] != (SECRET | p) || w[1] != (SECRET | p) ||
	    w[2] != (SECRET | p))
		return 1;
	w[0] = w[1] = w[2] = 0;
	gmem_put_pfn(b, p, GMEM_ACCESS_PRIVATE);
	return convert(g, p * ps, ps, 0);
}

#endif /* GMEM_TESTS_PEER_PROC_H */
