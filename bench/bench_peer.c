// SPDX-License-Identifier: MIT
/*
 * bench_peer.c - what peers (gmem_export, issue 12) cost a conversion:
 * one 4 KiB page of a 16 MiB file converted to private, then back to
 * shared, each timed alone, with the file exported to 0, 1, 2 and 4
 * peer processes (this program exec'ed again with --peer, each mapping
 * the whole exported range in one view), and to 4 peers with 4 views
 * each.  The owner has one view of its own in every case and touches
 * the page after each cycle, as a VMM's device model would.
 *
 * Results (ratios: medians of per-round ratios, bench_report_paired()):
 *   peer_to_private_N  to private with N peers against local_to_private,
 *                      the same file with no peer (target for N = 1:
 *                      ratio <= 3, issue 12); N = 2, 4 and 4x4 (views)
 *                      also against peer_to_private_1: how it scales
 *   peer_to_shared_N   the same for to shared, for information
 *   peer_to_private_1  also against local_plus_round_trip: the local
 *                      conversion plus one 64-byte round trip over a
 *                      unix socket to another process (--echo), the
 *                      least a conversion that waits for a peer's
 *                      answer can cost, both measured in the round
 *   local_plus_round_trip  that least cost itself against
 *                      local_to_private: how much of a peer's cost no
 *                      socket protocol can avoid on this machine
 *
 * Every configuration has a file (and peers) of its own, all set up
 * before the first round; each of the 9 rounds (of 1,000 cycles, 100
 * with -q) runs every configuration once, in turn, so a slow moment of
 * the machine hits all of them.  Peers are idle processes: what is
 * measured is the protocol (a CHANGE to every peer, its views hidden or
 * shown, the ACKs) on top of the local conversion.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "gmem.h"

#define FILE_SIZE	(16ULL << 20)
#define PAGE		4096ULL
#define OFF		(FILE_SIZE / 2)		/* the page flipped */
#define PEER_ROUNDS	9
#define MAX_PEERS	4

/* ---- the peer process --------------------------------------------------- */

/*
 * bench_peer --peer SOCK CTL OUT VIEWS: attach on SOCK, map VIEWS views
 * of the exported range, read the page once in each, say so on OUT,
 * then wait for CTL to close; unmap, close, exit 0.
 */
static int peer_main(char **argv)
{
	int sock = atoi(argv[2]), ctl = atoi(argv[3]), out = atoi(argv[4]);
	int views = atoi(argv[5]);
	struct gmem_attach_args aa = { .timeout_ms = 10000 };
	char *v[MAX_PEERS];
	struct gmem *g;
	char c;

	if (views < 1 || views > MAX_PEERS)
		bench_die("peer: %d views", views);
	bench_check(gmem_attach(sock, &aa, &g), "peer: gmem_attach");
	for (int i = 0; i < views; i++) {
		bench_check(gmem_mmap(g, 0, FILE_SIZE, PROT_READ | PROT_WRITE,
				      (void **)&v[i]), "peer: gmem_mmap");
		c = *(volatile char *)(v[i] + OFF);
	}
	c = 'r';
	if (write(out, &c, 1) != 1)
		bench_die("peer: write: %s", strerror(errno));
	while (read(ctl, &c, 1) > 0)
		;
	for (int i = 0; i < views; i++)
		bench_check(gmem_munmap(g, v[i], FILE_SIZE),
			    "peer: gmem_munmap");
	gmem_close(g);
	return 0;
}

/* bench_peer --echo SOCK: send back every 64 bytes until EOF. */
static int echo_main(char **argv)
{
	int sock = atoi(argv[2]);
	char m[64];

	while (recv(sock, m, sizeof(m), MSG_WAITALL) == sizeof(m))
		if (send(sock, m, sizeof(m), MSG_NOSIGNAL) != sizeof(m))
			return 1;
	return 0;
}

/* ---- the owner ---------------------------------------------------------- */

struct peer {
	pid_t pid;
	int ctl;			/* closed: the peer stops */
	struct gmem_peer *p;
};

/* One configuration: a file, its owner's view, its peers. */
struct conf {
	const char *name;		/* "1", "4x4", ... */
	int npeers, views;
	struct gmem *g;
	char *view;
	struct peer peer[MAX_PEERS];
	double to_private[PEER_ROUNDS], to_shared[PEER_ROUNDS];
};

static void set_attr(struct gmem *g, bool to_private)
{
	struct gmem_attributes a = { .offset = OFF, .size = PAGE,
				     .attributes = to_private ?
						   GMEM_ATTR_PRIVATE : 0 };

	bench_check(gmem_set_attributes(g, &a), "gmem_set_attributes");
}

/* fork + exec this program as a peer of c->g with c->views views. */
static void spawn(struct conf *c, struct peer *p)
{
	struct gmem_export_args ea = { .offset = 0, .size = FILE_SIZE,
				       .timeout_ms = 10000 };
	char a[4][16];
	int sv[2], ctl[2], out[2], ret;
	char b;

	bench_check_errno(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				     sv), "socketpair");
	bench_check_errno(pipe2(ctl, O_CLOEXEC), "pipe2");
	bench_check_errno(pipe2(out, O_CLOEXEC), "pipe2");
	/* Made before fork: the child only execs (other threads exist). */
	snprintf(a[0], 16, "%d", sv[1]);
	snprintf(a[1], 16, "%d", ctl[0]);
	snprintf(a[2], 16, "%d", out[1]);
	snprintf(a[3], 16, "%d", c->views);
	p->pid = fork();
	bench_check_errno(p->pid, "fork");
	if (!p->pid) {
		fcntl(sv[1], F_SETFD, 0);
		fcntl(ctl[0], F_SETFD, 0);
		fcntl(out[1], F_SETFD, 0);
		execl("/proc/self/exe", "bench_peer", "--peer", a[0], a[1],
		      a[2], a[3], (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	close(ctl[0]);
	close(out[1]);
	ret = gmem_export(c->g, sv[0], &ea, &p->p);
	bench_check(ret, "gmem_export");
	if (read(out[0], &b, 1) != 1)
		bench_die("peer %d did not get ready", (int)p->pid);
	close(out[0]);
	p->ctl = ctl[1];
}

/* The echo process: its pid, our end of its socket in *sock. */
static pid_t echo_spawn(int *sock)
{
	char a[16];
	int sv[2];
	pid_t pid;

	bench_check_errno(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				     sv), "socketpair");
	snprintf(a, 16, "%d", sv[1]);
	pid = fork();
	bench_check_errno(pid, "fork");
	if (!pid) {
		fcntl(sv[1], F_SETFD, 0);
		execl("/proc/self/exe", "bench_peer", "--echo", a,
		      (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	*sock = sv[0];
	return pid;
}

/* n round trips of 64 bytes: ns each. */
static double echo_run(int sock, uint64_t n)
{
	char m[64] = { 0 };
	uint64_t t = bench_now();

	for (uint64_t i = 0; i < n; i++)
		if (send(sock, m, sizeof(m), MSG_NOSIGNAL) != sizeof(m) ||
		    recv(sock, m, sizeof(m), MSG_WAITALL) != sizeof(m))
			bench_die("echo: %s", strerror(errno));
	return (double)(bench_now() - t) / (double)n;
}

static void conf_setup(struct conf *c)
{
	struct gmem_create_args args = { .size = FILE_SIZE,
					 .flags = GMEM_FLAG_MMAP };
	void *addr;

	bench_check(gmem_create(&args, &c->g), "gmem_create");
	bench_check(gmem_mmap(c->g, 0, FILE_SIZE, PROT_READ | PROT_WRITE,
			      &addr), "gmem_mmap");
	c->view = addr;
	set_attr(c->g, false);
	(*(volatile char *)(c->view + OFF))++;
	for (int i = 0; i < c->npeers; i++)
		spawn(c, &c->peer[i]);
}

static void conf_teardown(struct conf *c)
{
	struct gmem_stats st;

	for (int i = 0; i < c->npeers; i++) {
		struct peer *p = &c->peer[i];
		int status;

		close(p->ctl);
		if (waitpid(p->pid, &status, 0) != p->pid ||
		    !WIFEXITED(status) || WEXITSTATUS(status))
			bench_die("peer %d (%s) did not exit cleanly: 0x%x",
				  (int)p->pid, c->name, status);
		gmem_unexport(p->p);
	}
	bench_check(gmem_stat(c->g, &st, sizeof(st)), "gmem_stat");
	if (c->npeers && st.peers_cut)
		bench_die("%s: %llu peers were cut off", c->name,
			  (unsigned long long)st.peers_cut);
	bench_check(gmem_munmap(c->g, c->view, FILE_SIZE), "gmem_munmap");
	gmem_close(c->g);
}

/* n cycles: ns per conversion to private and to shared. */
static void conf_run(struct conf *c, uint64_t n, unsigned int round)
{
	volatile unsigned char *b = (unsigned char *)c->view + OFF;
	unsigned char first = *b;
	uint64_t tp = 0, ts = 0;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t t0 = bench_now(), t1, t2;

		set_attr(c->g, true);
		t1 = bench_now();
		set_attr(c->g, false);
		t2 = bench_now();
		(*b)++;
		tp += t1 - t0;
		ts += t2 - t1;
	}
	if (*b != (unsigned char)(first + n))
		bench_die("%s: the page lost its contents", c->name);
	c->to_private[round] = (double)tp / (double)n;
	c->to_shared[round] = (double)ts / (double)n;
}

int main(int argc, char **argv)
{
	static struct conf conf[] = {
		{ .name = "0", .npeers = 0, .views = 1 },
		{ .name = "1", .npeers = 1, .views = 1 },
		{ .name = "2", .npeers = 2, .views = 1 },
		{ .name = "4", .npeers = 4, .views = 1 },
		{ .name = "4x4", .npeers = 4, .views = 4 },
	};
	const unsigned int nconf = sizeof(conf) / sizeof(conf[0]);
	struct conf *local = &conf[0], *one = &conf[1];
	double floor[PEER_ROUNDS];
	int echo, status;
	pid_t echo_pid;
	uint64_t n;
	char name[64], base[64];

	if (argc == 6 && !strcmp(argv[1], "--peer"))
		return peer_main(argv);
	if (argc == 3 && !strcmp(argv[1], "--echo"))
		return echo_main(argv);
	n = bench_quick(argc, argv) ? 100 : 1000;

	for (unsigned int i = 0; i < nconf; i++)
		conf_setup(&conf[i]);
	echo_pid = echo_spawn(&echo);
	printf("# peer: %u rounds of %llu cycles; peers are processes, "
	       "NxV = N peers of V views\n", PEER_ROUNDS,
	       (unsigned long long)n);
	for (unsigned int r = 0; r < PEER_ROUNDS; r++) {
		for (unsigned int i = 0; i < nconf; i++)
			conf_run(&conf[i], n, r);
		floor[r] = echo_run(echo, n);
	}
	close(echo);
	if (waitpid(echo_pid, &status, 0) != echo_pid || status)
		bench_die("the echo process did not exit cleanly: 0x%x",
			  status);
	for (unsigned int r = 0; r < PEER_ROUNDS; r++)
		floor[r] += local->to_private[r];

	for (unsigned int i = 1; i < nconf; i++) {
		struct conf *c = &conf[i];
		struct bench_target t = i == 1 ?
			(struct bench_target){ BENCH_RATIO_LE, 3.0 } :
			NO_TARGET;

		snprintf(name, sizeof(name), "peer_to_private_%s", c->name);
		bench_report_paired(name, n, c->to_private, "local_to_private",
				    local->to_private, PEER_ROUNDS, t);
		if (i == 1)
			bench_report_paired(name, n, c->to_private,
					    "local_plus_round_trip", floor,
					    PEER_ROUNDS, NO_TARGET);
		if (i > 1) {
			snprintf(base, sizeof(base), "peer_to_private_1");
			bench_report_paired(name, n, c->to_private, base,
					    one->to_private, PEER_ROUNDS,
					    NO_TARGET);
		}
	}
	bench_report_paired("local_plus_round_trip", n, floor,
			    "local_to_private", local->to_private, PEER_ROUNDS,
			    NO_TARGET);
	for (unsigned int i = 1; i < nconf; i++) {
		struct conf *c = &conf[i];

		snprintf(name, sizeof(name), "peer_to_shared_%s", c->name);
		bench_report_paired(name, n, c->to_shared, "local_to_shared",
				    local->to_shared, PEER_ROUNDS, NO_TARGET);
	}
	for (unsigned int i = 0; i < nconf; i++)
		conf_teardown(&conf[i]);
	return 0;
}
