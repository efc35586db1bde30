// SPDX-License-Identifier: MIT
/*
 * test_peer.c - guest memory shared with peer processes (issue 12):
 * gmem_export() on the owner, gmem_attach() in the peer.
 *
 * In one process (the peer is a thread; exported with NO_KILL, since a
 * cut-off would kill the test itself):
 *   bad arguments, not a socket, a socket of another kind, a peer that
 *   never attaches, an owner that speaks something else; the mirror of
 *   the state (shared readable, private SIGBUS, in every view); what a
 *   peer may not do (-EPERM); the peer's listeners; poison; gmem_get_fd;
 *   unexport and close of the owner (the peer keeps its last state).
 *
 * With peers that are other processes (this program exec'ed again, the
 * role in GMEM_PEER_ROLE):
 *   secrets_never_reach_peers  peers read and write every page in loops
 *                              while the owner converts pages to private,
 *                              writes a secret through the guest side,
 *                              checks it, wipes it and converts back: no
 *                              peer read ever returns a secret, no peer
 *                              write lands in a private page, and the
 *                              peers saw private pages fault
 *   killed_peers_never_block   peers are SIGKILLed at random points of
 *                              the same loop; new peers attach while
 *                              conversions run: every conversion succeeds
 *   stuck_peer_is_cut_off      a stopped peer is cut off after the
 *                              timeout and killed; with NO_KILL the
 *                              conversion fails -ETIMEDOUT, unchanged
 *   peer_pins_hold_conversions -EAGAIN with error_offset, WAIT until the
 *                              peer unpins, and a dead peer's pins go
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "gmem.h"
#include "harness.h"
#include "gmem_test.h"
#include "peer_proc.h"

#define NPAGES		64

/* ---- a peer in this process (a thread: gmem_test.h) ---------------------- */

FIXTURE(inproc) {
	struct gmem *g;
	struct gmem_peer *peer;
	struct gmem_test_inproc ip;
};

FIXTURE_SETUP(inproc)
{
	GMEM_TEST_REQUIRE_BACKEND();
	ASSERT_EQ(peer_test_file(NPAGES, &self->g), 0);
	ASSERT_EQ(convert(self->g, 8 * ps, 8 * ps, 1), 0);
	ASSERT_EQ(gmem_test_export_inproc(self->g, 0, NPAGES * ps, 0, &self->ip,
				&self->peer), 0);
}

FIXTURE_TEARDOWN(inproc)
{
	if (self->ip.pg)
		gmem_close(self->ip.pg);
	if (self->peer)
		gmem_unexport(self->peer);
	if (self->g)
		gmem_close(self->g);
}

TEST_F(inproc, mirror_follows_the_owner)
{
	struct gmem *pg = self->ip.pg;
	uint64_t attr, run;
	char *pv, *ov;

	ASSERT_EQ(gmem_get_attributes(pg, 8 * ps, &attr, &run), 0);
	EXPECT_EQ(attr, GMEM_ATTR_PRIVATE);
	EXPECT_EQ(run, 8 * ps);
	ASSERT_EQ(gmem_mmap(pg, 0, NPAGES * ps, PROT_READ | PROT_WRITE,
			    (void **)&pv), 0);
	ASSERT_EQ(gmem_mmap(self->g, 0, NPAGES * ps, PROT_READ | PROT_WRITE,
			    (void **)&ov), 0);
	/* Shared: one page, both sides. */
	pv[0] = 'p';
	EXPECT_EQ(ov[0], 'p');
	EXPECT_SIGBUS(pv + 8 * ps, 0);
	EXPECT_SIGBUS(pv + 15 * ps, 1);
	/* Each change is done in the peer when set_attributes returns. */
	ASSERT_EQ(convert(self->g, 0, ps, 1), 0);
	EXPECT_SIGBUS(pv, 0);
	ASSERT_EQ(convert(self->g, 8 * ps, 2 * ps, 0), 0);
	EXPECT_NO_SIGNAL(pv + 9 * ps, 1);
	ASSERT_EQ(convert(self->g, 0, ps, 0), 0);
	EXPECT_EQ(pv[0], 'p');			/* in place */
	/* A view made later shows the state as it is now. */
	{
		char *v2;

		ASSERT_EQ(gmem_mmap(pg, 8 * ps, 8 * ps, PROT_READ,
				    (void **)&v2), 0);
		EXPECT_NO_SIGNAL(v2 + ps, 0);
		EXPECT_SIGBUS(v2 + 2 * ps, 0);
		ASSERT_EQ(gmem_munmap(pg, v2, 8 * ps), 0);
	}
	{
		struct gmem_stats st = stats(self->g);

		EXPECT_EQ(st.peers, 1);
		EXPECT_GE(st.peer_changes, 3);
	}
	ASSERT_EQ(gmem_munmap(pg, pv, NPAGES * ps), 0);
	ASSERT_EQ(gmem_munmap(self->g, ov, NPAGES * ps), 0);
}

TEST_F(inproc, a_peer_changes_nothing)
{
	struct gmem *pg = self->ip.pg;
	struct gmem_attributes a = { .offset = 0, .size = ps,
				     .attributes = GMEM_ATTR_PRIVATE };
	struct gmem_binding_ops ops = { 0 };
	struct gmem_binding *b;
	struct gmem_peer *p2;
	struct gmem_export_args ea = { .offset = 0, .size = ps };
	int fd;
	void *ga;

	EXPECT_EQ(gmem_set_attributes(pg, &a), -EPERM);
	EXPECT_EQ(gmem_fallocate(pg, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
				 0, ps), -EPERM);
	EXPECT_EQ(gmem_fallocate(pg, FALLOC_FL_KEEP_SIZE, 0, ps), -EPERM);
	EXPECT_EQ(gmem_populate(pg, 8 * ps, "x", 1), -EPERM);
	ops.invalidate = (void (*)(void *, uint64_t, uint64_t,
				   unsigned int))1;
	EXPECT_EQ(gmem_bind(pg, 0, ps, &ops, NULL, &b), -EPERM);
	EXPECT_EQ(gmem_memory_failure(pg, 0), -EPERM);
	EXPECT_EQ(gmem_kvm_memslot(pg, &fd, &ga), -EPERM);
	EXPECT_EQ(gmem_export(pg, 0, &ea, &p2), -EPERM);
	/* A snapshot reads private pages: the owner's to take. */
	EXPECT_EQ(gmem_snapshot_save(pg, 1, NULL), -EPERM);
	/* And the owner's state is what it was. */
	EXPECT_EQ(attr_at(self->g, 0), 0);
}

static int nr_populate, nr_discard;

static int l_populate(void *o, uint64_t off, uint64_t size)
{
	(void)o;
	(void)off;
	nr_populate += (int)(size / ps);
	return 0;
}

static void l_discard(void *o, uint64_t off, uint64_t size)
{
	(void)o;
	(void)off;
	nr_discard += (int)(size / ps);
}

TEST_F(inproc, peer_listeners_are_told)
{
	static const struct gmem_listener_ops lops = { l_populate, l_discard };
	struct gmem_listener *l;

	nr_populate = nr_discard = 0;
	ASSERT_EQ(gmem_listener_register(self->ip.pg, 0, NPAGES * ps, &lops,
					 NULL, &l), 0);
	EXPECT_EQ(nr_populate, NPAGES - 8);	/* the replay */
	ASSERT_EQ(convert(self->g, 0, 2 * ps, 1), 0);
	EXPECT_EQ(nr_discard, 2);
	ASSERT_EQ(convert(self->g, 0, 4 * ps, 0), 0);
	EXPECT_EQ(nr_populate, NPAGES - 8 + 2);
	ASSERT_EQ(gmem_listener_unregister(l), 0);
}

static int refuse(void *o, uint64_t off, uint64_t size)
{
	(void)o;
	(void)off;
	(void)size;
	return -ENOSPC;
}

TEST_F(inproc, a_peer_listener_refusal_undoes_the_conversion)
{
	static const struct gmem_listener_ops lops = { refuse, l_discard };
	struct gmem_listener *l;
	char *ov, *pv;

	ASSERT_EQ(gmem_mmap(self->g, 0, NPAGES * ps, PROT_READ | PROT_WRITE,
			    (void **)&ov), 0);
	ASSERT_EQ(gmem_mmap(self->ip.pg, 0, NPAGES * ps,
			    PROT_READ | PROT_WRITE, (void **)&pv), 0);
	ASSERT_EQ(convert(self->g, 0, NPAGES * ps, 1), 0);
	ASSERT_EQ(gmem_listener_register(self->ip.pg, 0, NPAGES * ps, &lops,
					 NULL, &l), 0);
	EXPECT_EQ(convert(self->g, 0, ps, 0), -ENOSPC);
	EXPECT_EQ(attr_at(self->g, 0), GMEM_ATTR_PRIVATE);
	EXPECT_SIGBUS(ov, 0);
	EXPECT_SIGBUS(pv, 0);
	ASSERT_EQ(gmem_listener_unregister(l), 0);
	ASSERT_EQ(convert(self->g, 0, ps, 0), 0);
	EXPECT_NO_SIGNAL(pv, 0);
	ASSERT_EQ(gmem_munmap(self->g, ov, NPAGES * ps), 0);
	ASSERT_EQ(gmem_munmap(self->ip.pg, pv, NPAGES * ps), 0);
}

TEST_F(inproc, poison_reaches_the_peer)
{
	char *pv;

	ASSERT_EQ(gmem_mmap(self->ip.pg, 0, 8 * ps, PROT_READ | PROT_WRITE,
			    (void **)&pv), 0);
	pv[3 * ps] = 1;
	ASSERT_EQ(gmem_memory_failure(self->g, 3 * ps), 0);
	EXPECT_SIGBUS(pv + 3 * ps, 0);
	EXPECT_NO_SIGNAL(pv + 2 * ps, 0);
	ASSERT_EQ(gmem_fallocate(self->g, FALLOC_FL_KEEP_SIZE |
				 FALLOC_FL_PUNCH_HOLE, 3 * ps, ps), 0);
	EXPECT_NO_SIGNAL(pv + 3 * ps, 0);
	EXPECT_EQ(pv[3 * ps], 0);
	ASSERT_EQ(gmem_munmap(self->ip.pg, pv, 8 * ps), 0);
}

TEST_F(inproc, peer_pins_go_through_the_owner)
{
	struct gmem *pg = self->ip.pg;
	struct gmem_attributes a = { .offset = ps, .size = ps,
				     .attributes = GMEM_ATTR_PRIVATE };
	char *addr;

	EXPECT_EQ(gmem_pin(pg, 8 * ps, ps, (void **)&addr), -EFAULT);
	ASSERT_EQ(gmem_pin(pg, 0, 2 * ps, (void **)&addr), 0);
	addr[ps] = 'x';
	EXPECT_EQ(stats(self->g).peer_pinned, 2 * ps);
	EXPECT_EQ(gmem_set_attributes(self->g, &a), -EAGAIN);
	EXPECT_EQ(a.error_offset, ps);
	EXPECT_EQ(gmem_unpin(pg, 0, 2 * ps), 0);
	EXPECT_EQ(gmem_unpin(pg, 0, 2 * ps), -EINVAL);
	EXPECT_EQ(stats(self->g).peer_pinned, 0);
	EXPECT_EQ(gmem_set_attributes(self->g, &a), 0);
}

TEST_F(inproc, get_fd_is_the_backing)
{
	uint64_t fo, len;
	int fd, pfd;
	char *ov, *m;

	ASSERT_EQ(gmem_get_fd(self->g, ps, &fd, &fo, &len), 0);
	EXPECT_EQ(fo, ps);
	EXPECT_EQ(len, (NPAGES - 1) * ps);
	ASSERT_EQ(gmem_get_fd(self->ip.pg, 0, &pfd, &fo, &len), 0);
	EXPECT_EQ(gmem_get_fd(self->g, NPAGES * ps, &fd, &fo, &len), -EINVAL);
	ASSERT_EQ(gmem_mmap(self->g, 0, ps, PROT_READ | PROT_WRITE,
			    (void **)&ov), 0);
	ov[0] = 'f';
	m = mmap(NULL, ps, PROT_READ, MAP_SHARED, pfd, 0);
	ASSERT_NE(m, MAP_FAILED);
	EXPECT_EQ(m[0], 'f');
	munmap(m, ps);
	ASSERT_EQ(gmem_munmap(self->g, ov, ps), 0);
}

TEST_F(inproc, unexport_hides_everything_from_the_peer)
{
	struct gmem *pg = self->ip.pg;
	char *pv, *addr;

	ASSERT_EQ(gmem_mmap(pg, 0, NPAGES * ps, PROT_READ, (void **)&pv), 0);
	EXPECT_NO_SIGNAL(pv + 16 * ps, 0);
	EXPECT_EQ(gmem_peer_status(self->peer), 0);
	ASSERT_EQ(gmem_unexport(self->peer), 0);
	self->peer = NULL;
	/* It hears of no change any more: it shows nothing any more. */
	EXPECT_SIGBUS(pv + 16 * ps, 0);
	EXPECT_SIGBUS(pv, 0);
	ASSERT_EQ(convert(self->g, 16 * ps, ps, 1), 0);
	EXPECT_EQ(stats(self->g).peers, 0);
	for (int i = 0; i < 100 && gmem_pin(pg, 0, ps, (void **)&addr) !=
	     -ENOTCONN; i++)
		usleep(10000);
	EXPECT_EQ(gmem_pin(pg, 0, ps, (void **)&addr), -ENOTCONN);
	EXPECT_SIGBUS(pv + 8 * ps, 0);
	ASSERT_EQ(gmem_munmap(pg, pv, NPAGES * ps), 0);
}

TEST_F(inproc, a_range_exported_is_all_a_peer_sees)
{
	struct gmem_peer *p2;
	struct gmem_test_inproc ip2;
	char *v;

	ASSERT_EQ(gmem_test_export_inproc(self->g, 4 * ps, 8 * ps, 0, &ip2, &p2), 0);
	EXPECT_EQ(stats(ip2.pg).peer_offset, 4 * ps);
	EXPECT_EQ(stats(ip2.pg).peer_size, 8 * ps);
	EXPECT_EQ(stats(self->g).peer_size, 0);
	EXPECT_EQ(gmem_mmap(ip2.pg, 0, ps, PROT_READ, (void **)&v), -EINVAL);
	EXPECT_EQ(gmem_mmap(ip2.pg, 4 * ps, 9 * ps, PROT_READ, (void **)&v),
		  -EINVAL);
	ASSERT_EQ(gmem_mmap(ip2.pg, 4 * ps, 8 * ps, PROT_READ, (void **)&v),
		  0);
	EXPECT_NO_SIGNAL(v + 3 * ps, 0);
	EXPECT_SIGBUS(v + 4 * ps, 0);
	ASSERT_EQ(gmem_munmap(ip2.pg, v, 8 * ps), 0);
	gmem_close(ip2.pg);
	ASSERT_EQ(gmem_unexport(p2), 0);
}

TEST_F(inproc, owner_close_orphans_the_peer)
{
	struct gmem *pg = self->ip.pg;
	char *pv;

	ASSERT_EQ(gmem_mmap(pg, 0, NPAGES * ps, PROT_READ, (void **)&pv), 0);
	gmem_close(self->g);
	self->g = NULL;
	EXPECT_EQ(gmem_peer_status(self->peer), -ESHUTDOWN);
	EXPECT_NO_SIGNAL(pv, 0);
	EXPECT_SIGBUS(pv + 8 * ps, 0);
	ASSERT_EQ(gmem_unexport(self->peer), 0);	/* frees the file */
	self->peer = NULL;
	ASSERT_EQ(gmem_munmap(pg, pv, NPAGES * ps), 0);
}

/* The child of a fork() has none of the owner's threads: its own export
 * must still work (the hub starts again in the child). */
TEST_F(inproc, a_forked_child_exports_its_own)
{
	pid_t pid;
	int st = 0;

	if (gmem_test_foreign_runtime())
		SKIP(return, "under a sanitizer or valgrind: TSan dies starting "
		     "threads in the child of a multi-threaded fork()");
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		struct gmem_create_args a = { .size = 16 * ps,
					      .flags = GMEM_FLAG_MMAP |
						       GMEM_FLAG_INIT_SHARED };
		struct gmem_test_inproc ip;
		struct gmem_peer *p;
		struct gmem *g;
		char *v;

		if (gmem_test_create(&a, &g) ||
		    gmem_test_export_inproc(g, 0, 16 * ps, 0, &ip, &p) ||
		    gmem_mmap(ip.pg, 0, 16 * ps, PROT_READ, (void **)&v) ||
		    convert(g, 0, ps, 1) ||
		    harness_probe(v, 0, NULL) != SIGBUS ||
		    harness_probe(v + ps, 0, NULL) != 0)
			_exit(1);
		_exit(0);
	}
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* And the parent's peer is still served. */
	ASSERT_EQ(convert(self->g, 0, ps, 1), 0);
	EXPECT_EQ(attr_at(self->ip.pg, 0), GMEM_ATTR_PRIVATE);
}

TEST(bad_arguments)
{
	struct gmem_create_args a = { .size = 16 * gmem_test_page_size(),
				      .flags = GMEM_FLAG_MMAP |
					       GMEM_FLAG_INIT_SHARED };
	struct gmem_export_args ea = { .offset = 0,
				       .size = 16 * gmem_test_page_size() };
	struct gmem_attach_args aa = { 0 };
	struct gmem_peer *p;
	struct gmem *g, *pg;
	int sv[2], pfd[2];

	GMEM_TEST_REQUIRE_BACKEND();
	ps = gmem_test_page_size();
	ASSERT_EQ(gmem_test_create(&a, &g), 0);
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	EXPECT_EQ(gmem_export(NULL, sv[0], &ea, &p), -EINVAL);
	EXPECT_EQ(gmem_export(g, sv[0], NULL, &p), -EINVAL);
	EXPECT_EQ(gmem_export(g, -1, &ea, &p), -EINVAL);
	ea.flags = 2;
	EXPECT_EQ(gmem_export(g, sv[0], &ea, &p), -EINVAL);
	ea.flags = 0;
	ea.reserved[3] = 1;
	EXPECT_EQ(gmem_export(g, sv[0], &ea, &p), -EINVAL);
	ea.reserved[3] = 0;
	ea.size = 17 * ps;
	EXPECT_EQ(gmem_export(g, sv[0], &ea, &p), -EINVAL);
	ea.size = ps + 1;
	EXPECT_EQ(gmem_export(g, sv[0], &ea, &p), -EINVAL);
	ea.size = 0;
	EXPECT_EQ(gmem_export(g, sv[0], &ea, &p), -EINVAL);
	ea.size = 16 * ps;
	ASSERT_EQ(pipe(pfd), 0);
	EXPECT_EQ(gmem_export(g, pfd[0], &ea, &p), -ENOTSOCK);
	EXPECT_EQ(gmem_attach(pfd[0], &aa, &pg), -ENOTSOCK);
	{
		int dg[2];

		ASSERT_EQ(socketpair(AF_UNIX, SOCK_DGRAM, 0, dg), 0);
		EXPECT_EQ(gmem_export(g, dg[0], &ea, &p), -EPROTOTYPE);
		close(dg[0]);
		close(dg[1]);
	}
	/* Nobody attaches: -ETIMEDOUT, and the socket is still ours. */
	ea.timeout_ms = 50;
	EXPECT_EQ(gmem_export(g, sv[0], &ea, &p), -ETIMEDOUT);
	EXPECT_EQ(fcntl(sv[0], F_GETFD) >= 0, 1);
	/* The owner says nothing: -ETIMEDOUT; says nonsense: -EPROTO. */
	aa.timeout_ms = 50;
	{
		int s2[2];

		ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s2), 0);
		EXPECT_EQ(gmem_attach(s2[1], &aa, &pg), -ETIMEDOUT);
		ASSERT_EQ(write(s2[0], "0123456789abcdef0123456789abcdef"
				"0123456789abcdef0123456789abcdef", 64), 64);
		EXPECT_EQ(gmem_attach(s2[1], &aa, &pg), -EPROTO);
		close(s2[0]);
		EXPECT_EQ(gmem_attach(s2[1], &aa, &pg), -ECONNRESET);
		close(s2[1]);
	}
	aa.flags = 1;
	EXPECT_EQ(gmem_attach(sv[1], &aa, &pg), -EINVAL);
	aa.flags = 0;
	aa.reserved[0] = 1;
	EXPECT_EQ(gmem_attach(sv[1], &aa, &pg), -EINVAL);
	EXPECT_EQ(gmem_attach(sv[1], NULL, &pg), -EINVAL);
	EXPECT_EQ(gmem_peer_status(NULL), -EINVAL);
	EXPECT_EQ(gmem_unexport(NULL), -EINVAL);
	EXPECT_EQ(stats(g).peers, 0);
	close(pfd[0]);
	close(pfd[1]);
	close(sv[0]);
	close(sv[1]);
	gmem_close(g);
}

TEST(no_mmap_no_export)
{
	struct gmem_create_args a = { .size = 16 * gmem_test_page_size() };
	struct gmem_export_args ea = { .size = 16 * gmem_test_page_size() };
	struct gmem_peer *p;
	struct gmem *g;
	int sv[2];

	GMEM_TEST_REQUIRE_BACKEND();
	ASSERT_EQ(gmem_test_create(&a, &g), 0);
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	EXPECT_EQ(gmem_export(g, sv[0], &ea, &p), -ENODEV);
	close(sv[0]);
	close(sv[1]);
	gmem_close(g);
}

/* ---- peers in other processes (peer_proc.h) ----------------------------- */

FIXTURE(procs) {
	struct gmem *g;
	struct gmem_binding *b;
	struct child c[6];
	int n;
};

FIXTURE_SETUP(procs)
{
	GMEM_TEST_REQUIRE_BACKEND();
	ASSERT_EQ(peer_test_file(NPAGES, &self->g), 0);
	ASSERT_EQ(gmem_bind(self->g, 0, NPAGES * ps, &nops, NULL, &self->b),
		  0);
}

FIXTURE_TEARDOWN(procs)
{
	for (int i = 0; i < self->n; i++) {
		if (self->c[i].pid > 0) {
			kill(self->c[i].pid, SIGKILL);
			waitpid(self->c[i].pid, NULL, 0);
		}
		if (self->c[i].peer)
			gmem_unexport(self->c[i].peer);
	}
	gmem_unbind(self->b);
	gmem_close(self->g);
}

TEST_F_T(procs, secrets_never_reach_peers, 60)
{
	uint64_t seed = 12, reads = 0, faults = 0, writes = 0;

	self->n = 4;
	for (int i = 0; i < self->n; i++)
		ASSERT_EQ(spawn(self->g, i & 1 ? "writer" : "reader", 0,
				NPAGES * ps, 0, 0, &self->c[i]), 0);
	for (int i = 0; i < 3000; i++) {
		uint64_t p = rnd(&seed) % NPAGES;

		ASSERT_EQ(secret_round(self->g, self->b, p), 0);
	}
	for (int i = 0; i < self->n; i++) {
		struct peer_result r;

		ASSERT_EQ(reap(&self->c[i], &r), 0);
		self->c[i].pid = 0;
		EXPECT_EQ(r.secrets, 0);
		reads += r.reads;
		faults += r.faults;
		writes += r.writes;
	}
	TH_LOG("peers: %llu reads, %llu faults on private pages, %llu writes",
	       (unsigned long long)reads, (unsigned long long)faults,
	       (unsigned long long)writes);
	EXPECT_GT(reads, 0);
	EXPECT_GT(writes, 0);
	EXPECT_GT(faults, 0);	/* they did meet private pages */
	EXPECT_EQ(stats(self->g).peers, 0);
}

struct exporter {
	struct gmem *g;
	struct child c[4];
	int ret;
};

static void *export_thread(void *arg)
{
	struct exporter *e = arg;

	for (int i = 0; i < 4 && !e->ret; i++)
		e->ret = spawn(e->g, "reader", 0, NPAGES * ps, 0, 0, &e->c[i]);
	return NULL;
}

TEST_F_T(procs, killed_peers_never_block, 90)
{
	struct exporter e = { .g = self->g };
	uint64_t seed = 7;
	pthread_t t;

	self->n = 4;
	for (int i = 0; i < self->n; i++)
		ASSERT_EQ(spawn(self->g, "writer", 0, NPAGES * ps, 0, 0,
				&self->c[i]), 0);
	for (int i = 0; i < 2000; i++) {
		uint64_t p = rnd(&seed) % NPAGES;

		if (i % 250 == 100) {	/* a kill, at whatever point */
			int k = (int)(rnd(&seed) % (uint64_t)self->n);

			if (self->c[k].pid > 0)
				kill(self->c[k].pid, SIGKILL);
		}
		ASSERT_EQ(secret_round(self->g, self->b, p), 0);
	}
	/* New peers attach while conversions run: they get the state. */
	pthread_create(&t, NULL, export_thread, &e);
	for (int i = 0; i < 1000; i++)
		ASSERT_EQ(secret_round(self->g, self->b, rnd(&seed) % NPAGES),
			  0);
	pthread_join(t, NULL);
	ASSERT_EQ(e.ret, 0);
	for (int i = 0; i < 500; i++)
		ASSERT_EQ(secret_round(self->g, self->b, rnd(&seed) % NPAGES),
			  0);
	for (int i = 0; i < 4; i++) {
		struct peer_result r;

		ASSERT_EQ(reap(&e.c[i], &r), 0);
		EXPECT_EQ(r.secrets, 0);
		EXPECT_GT(r.reads, 0);
	}
	EXPECT_GE(stats(self->g).peers_lost, 1);
}

TEST_F_T(procs, stuck_peer_is_cut_off, 30)
{
	struct gmem_attributes a = { .offset = 0, .size = ps,
				     .attributes = GMEM_ATTR_PRIVATE };
	/* Long enough for a peer under a sanitizer to attach. */
	unsigned int tmo = gmem_test_foreign_runtime() ? 5000 : 200;
	struct gmem_stats st;
	int status = 0;

	self->n = 2;
	ASSERT_EQ(spawn(self->g, "stall", 0, NPAGES * ps, 0, tmo,
			&self->c[0]), 0);
	/* The peer stops itself once ready: wait for it to be stopped. */
	ASSERT_EQ(waitpid(self->c[0].pid, &status, WUNTRACED), self->c[0].pid);
	ASSERT_TRUE(WIFSTOPPED(status));
	ASSERT_EQ(gmem_set_attributes(self->g, &a), 0);
	EXPECT_EQ(gmem_peer_status(self->c[0].peer), -ETIMEDOUT);
	ASSERT_EQ(waitpid(self->c[0].pid, &status, 0), self->c[0].pid);
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	self->c[0].pid = 0;
	st = stats(self->g);
	EXPECT_EQ(st.peers_cut, 1);
	EXPECT_EQ(st.peers, 0);

	/* NO_KILL: the conversion fails and changes nothing. */
	ASSERT_EQ(spawn(self->g, "stall", 0, NPAGES * ps, GMEM_EXPORT_NO_KILL,
			tmo, &self->c[1]), 0);
	ASSERT_EQ(waitpid(self->c[1].pid, &status, WUNTRACED), self->c[1].pid);
	a.offset = ps;
	EXPECT_EQ(gmem_set_attributes(self->g, &a), -ETIMEDOUT);
	EXPECT_EQ(a.error_offset, ps);
	EXPECT_EQ(attr_at(self->g, ps), 0);
	EXPECT_EQ(gmem_peer_status(self->c[1].peer), -ETIMEDOUT);
	/* Cut off: the next one does not wait for it. */
	EXPECT_EQ(gmem_set_attributes(self->g, &a), 0);
	kill(self->c[1].pid, SIGKILL);
	waitpid(self->c[1].pid, NULL, 0);
	self->c[1].pid = 0;
}

/* One peer's slow, broken sending delays no other peer's answers. */
TEST_F_T(procs, a_slow_sender_delays_nobody, 30)
{
	uint64_t seed = 3;

	self->n = 2;
	/* A sees only pages 32..63; the conversions are of 0..31.  (A
	 * reader that waited for a message's rest held every answer back
	 * for a second per byte.) */
	ASSERT_EQ(spawn(self->g, "trickle", 32 * ps, 32 * ps, 0, 0,
			&self->c[0]), 0);
	ASSERT_EQ(spawn(self->g, "reader", 0, NPAGES * ps, 0, 0, &self->c[1]),
		  0);
	for (int i = 0; i < 200; i++) {
		ASSERT_EQ(secret_round(self->g, self->b, rnd(&seed) % 32), 0);
		usleep(5000);	/* a second of conversions */
	}
	EXPECT_EQ(gmem_peer_status(self->c[1].peer), 0);
	EXPECT_EQ(stats(self->g).peers_cut, 0);
}

/* A dead peer's pins go with its process, even while a child of it
 * holds its socket open. */
TEST_F_T(procs, a_dead_peers_pins_go_with_its_process, 30)
{
	struct gmem_attributes a = { .offset = 0, .size = ps,
				     .attributes = GMEM_ATTR_PRIVATE,
				     .flags = GMEM_SET_ATTR_WAIT };
	pid_t kid = 0;

	self->n = 1;
	ASSERT_EQ(spawn(self->g, "pinfork", 0, NPAGES * ps, 0, 0, &self->c[0]),
		  0);
	ASSERT_EQ(read(self->c[0].out, &kid, sizeof(kid)), sizeof(kid));
	kill(self->c[0].pid, SIGKILL);
	EXPECT_EQ(gmem_set_attributes(self->g, &a), 0);
	/* It did not wait for the child, which still holds the socket. */
	EXPECT_EQ(kill(kid, 0), 0);
	EXPECT_EQ(gmem_peer_status(self->c[0].peer), -ECONNRESET);
	EXPECT_EQ(stats(self->g).peers_cut, 0);
	kill(kid, SIGKILL);
	waitpid(self->c[0].pid, NULL, 0);
	self->c[0].pid = 0;
}

/* A peer that dies is not one that is stuck: with NO_KILL too, the
 * conversions go on, and it is not counted as cut off. */
TEST_F_T(procs, a_peer_that_dies_is_not_cut_off, 60)
{
	uint64_t seed = 5;

	self->n = 4;
	for (int k = 0; k < 4; k++) {
		ASSERT_EQ(spawn(self->g, "writer", 0, NPAGES * ps,
				GMEM_EXPORT_NO_KILL, 0, &self->c[k]), 0);
		for (int i = 0; i < 50; i++)
			ASSERT_EQ(secret_round(self->g, self->b,
					       rnd(&seed) % NPAGES), 0);
		kill(self->c[k].pid, SIGKILL);
		for (int i = 0; i < 200; i++)
			ASSERT_EQ(secret_round(self->g, self->b,
					       rnd(&seed) % NPAGES), 0);
		EXPECT_EQ(gmem_peer_status(self->c[k].peer), -ECONNRESET);
	}
	EXPECT_EQ(stats(self->g).peers_cut, 0);
	EXPECT_EQ(stats(self->g).peers_lost, 4);
}

/* A peer that detaches (BYE) while conversions run is not killed. */
TEST_F_T(procs, a_clean_detach_is_not_a_death, 60)
{
	uint64_t seed = 9;

	self->n = 6;
	for (int k = 0; k < 6; k++) {
		int st = 0;

		ASSERT_EQ(spawn(self->g, "detach", 0, NPAGES * ps, 0, 0,
				&self->c[k]), 0);
		for (int i = 0; i < 20; i++)
			ASSERT_EQ(secret_round(self->g, self->b,
					       rnd(&seed) % NPAGES), 0);
		close(self->c[k].ctl);
		ASSERT_EQ(waitpid(self->c[k].pid, &st, 0), self->c[k].pid);
		self->c[k].pid = 0;
		EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		EXPECT_EQ(gmem_peer_status(self->c[k].peer), -ECONNRESET);
		close(self->c[k].out);
	}
	EXPECT_EQ(stats(self->g).peers_cut, 0);
}

/* A peer stopped while its pin holds a waiting conversion back is
 * asked, cut off and killed: the wait is bounded. */
TEST_F_T(procs, a_stopped_pinner_is_cut_off, 30)
{
	struct gmem_attributes a = { .offset = 0, .size = ps,
				     .attributes = GMEM_ATTR_PRIVATE,
				     .flags = GMEM_SET_ATTR_WAIT };
	int st = 0;

	self->n = 1;
	ASSERT_EQ(spawn(self->g, "pin", 0, NPAGES * ps, 0,
			gmem_test_foreign_runtime() ? 5000 : 200, &self->c[0]),
		  0);
	kill(self->c[0].pid, SIGSTOP);
	EXPECT_EQ(gmem_set_attributes(self->g, &a), 0);
	EXPECT_EQ(gmem_peer_status(self->c[0].peer), -ETIMEDOUT);
	ASSERT_EQ(waitpid(self->c[0].pid, &st, 0), self->c[0].pid);
	EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	self->c[0].pid = 0;
}

struct waiter {
	struct gmem *g;
	int ret;
};

static void *wait_convert(void *arg)
{
	struct waiter *w = arg;
	struct gmem_attributes a = { .offset = 0, .size = 2 * ps,
				     .attributes = GMEM_ATTR_PRIVATE,
				     .flags = GMEM_SET_ATTR_WAIT };

	w->ret = gmem_set_attributes(w->g, &a);
	return NULL;
}

TEST_F_T(procs, peer_pins_hold_conversions, 30)
{
	struct gmem_attributes a = { .offset = 0, .size = 2 * ps,
				     .attributes = GMEM_ATTR_PRIVATE };
	struct waiter w = { self->g, 1 };
	pthread_t t;
	char c = 'u';

	self->n = 2;
	ASSERT_EQ(spawn(self->g, "pin", 0, NPAGES * ps, 0, 0, &self->c[0]), 0);
	EXPECT_EQ(stats(self->g).peer_pinned, ps);
	EXPECT_EQ(gmem_set_attributes(self->g, &a), -EAGAIN);
	EXPECT_EQ(a.error_offset, 0);
	pthread_create(&t, NULL, wait_convert, &w);
	usleep(50000);
	EXPECT_EQ(attr_at(self->g, 0), 0);	/* still waiting */
	ASSERT_EQ(write(self->c[0].ctl, &c, 1), 1);
	pthread_join(t, NULL);
	EXPECT_EQ(w.ret, 0);
	EXPECT_EQ(attr_at(self->g, 0), GMEM_ATTR_PRIVATE);
	ASSERT_EQ(convert(self->g, 0, 2 * ps, 0), 0);

	/* A peer that dies with a pin: the pin goes with it. */
	ASSERT_EQ(spawn(self->g, "pin", 0, NPAGES * ps, 0, 0, &self->c[1]), 0);
	a.flags = GMEM_SET_ATTR_WAIT;
	kill(self->c[1].pid, SIGKILL);
	EXPECT_EQ(gmem_set_attributes(self->g, &a), 0);
	waitpid(self->c[1].pid, NULL, 0);
	self->c[1].pid = 0;
	EXPECT_EQ(stats(self->g).peer_pinned, 0);
}


