// SPDX-License-Identifier: MIT
/*
 * test_peer_faults.c - the peer protocol when system calls fail, on
 * either side (sys.h fault injection), with the peer another process.
 *
 *   owner_calls_fail_once   every socket and pidfd call of the owner
 *                           (export, changes, the hub threads' reads,
 *                           replies) fails in turn, once: each export
 *                           and conversion succeeds or fails cleanly
 *                           (state unchanged), a peer that could not be
 *                           reached is cut off and killed, and no peer
 *                           that lives ever read a secret
 *   peer_map_fails_once     every mapping call of the peer's change
 *                           path fails in turn: a hide that fails
 *                           revokes the view (no secret read), a show
 *                           that fails fails the owner's conversion,
 *                           which then succeeds when retried
 *   peer_map_fails_always   from a point on, every mapping call of the
 *                           peer fails: still no secret, and the owner
 *                           is told every show failed
 *   a_forged_ack_is_no_ack  an ACK for a change never sent (then the peer
 *                           stops): the next change to private does not
 *                           take it for an answer; the peer is cut off
 *   export_and_attach_unwind every call of both fails in turn
 */
#include <pthread.h>

#include "gmem.h"
#include "harness.h"
#include "gmem_test.h"
#include "peer.h"
#include "sys.h"

static void peer_fault(const char *arg);
#define PEER_FAULT_HOOK peer_fault
#include "peer_proc.h"

#define NPAGES	16
#define ROUNDS	12

/* In the peer: "once:N" or "from:N" mapping calls from now. */
static void peer_fault(const char *arg)
{
	unsigned long n = strtoul(arg + 5, NULL, 0);

	sys_fault_arm(n, ENOMEM, strncmp(arg, "from", 4) ? SYS_FAULT_ONCE
							  : SYS_FAULT_FROM,
		      SYS_C_MAP);
}

FIXTURE(pf) {
	struct gmem *g;
	struct gmem_binding *b;
	struct child c;
};

FIXTURE_SETUP(pf)
{
	GMEM_TEST_REQUIRE_BACKEND();
	ASSERT_EQ(peer_test_file(NPAGES, &self->g), 0);
	ASSERT_EQ(gmem_bind(self->g, 0, NPAGES * ps, &nops, NULL, &self->b),
		  0);
}

FIXTURE_TEARDOWN(pf)
{
	sys_fault_disarm();
	if (self->c.pid > 0) {
		kill(self->c.pid, SIGKILL);
		waitpid(self->c.pid, NULL, 0);
	}
	if (self->c.peer)
		gmem_unexport(self->c.peer);
	gmem_unbind(self->b);
	gmem_close(self->g);
}

/*
 * A round that tolerates failures: a conversion may fail, but then it
 * changed nothing.  0, or 1 if a peer write landed in a private page.
 */
static int tolerant_round(struct gmem *g, struct gmem_binding *b, uint64_t p,
			  int *failed)
{
	struct gmem_pfn pfn;
	volatile uint64_t *w;
	int ret = convert(g, p * ps, ps, 1);

	if (ret) {
		(*failed)++;
		return attr_at(g, p * ps) == 0 ? 0 : 2;
	}
	if (gmem_get_pfn(b, p, GMEM_ACCESS_PRIVATE, &pfn))
		return 3;
	w = pfn.addr;
	w[0] = w[1] = w[2] = SECRET | p;
	for (int i = 0; i < 200; i++)
		__asm__ volatile("" ::: "memory");
	if (w[0] != (SECRET | p) || w[2] != (SECRET | p))
		return 1;
	w[0] = w[1] = w[2] = 0;
	gmem_put_pfn(b, p, GMEM_ACCESS_PRIVATE);
	for (int tries = 0; tries < 3; tries++) {
		ret = convert(g, p * ps, ps, 0);
		if (!ret)
			return 0;
		(*failed)++;
		if (attr_at(g, p * ps) != GMEM_ATTR_PRIVATE)
			return 4;	/* failed, yet changed */
	}
	return 5;
}

/* How the peer ended: 0 (clean, no secret), 1 (killed by the owner). */
static int peer_end(struct child *c, struct peer_result *r)
{
	int st = 0, got;

	close(c->ctl);
	got = (int)read(c->out, r, sizeof(*r));
	close(c->out);
	waitpid(c->pid, &st, 0);
	c->pid = 0;
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
		return 1;
	if (got != (int)sizeof(*r) || !WIFEXITED(st) || WEXITSTATUS(st)) {
		TH_LOG("peer: %s %d, %d bytes of result",
		       WIFEXITED(st) ? "exit" : "signal",
		       WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), got);
		return -1;
	}
	return 0;
}

TEST_F_T(pf, owner_calls_fail_once, 240)
{
	unsigned long n, injected = 0, killed = 0, failed_exports = 0;
	int failed = 0;

	for (n = 1;; n++) {
		struct peer_result r = { 0 };
		uint64_t seed = n;
		int ret, end;

		sys_fault_arm(n, EIO, SYS_FAULT_ONCE, SYS_C_SOCK);
		ret = spawn(self->g, "writer", 0, NPAGES * ps, 0, 0,
			    &self->c);
		if (ret) {
			/* A failed export: the peer never got going. */
			sys_fault_disarm();
			failed_exports++;
			kill(self->c.pid, SIGKILL);
			waitpid(self->c.pid, NULL, 0);
			self->c.pid = 0;
			close(self->c.ctl);
			close(self->c.out);
			self->c.peer = NULL;
			ASSERT_EQ(stats(self->g).peers, 0);
			continue;
		}
		for (int i = 0; i < ROUNDS; i++)
			ASSERT_EQ(tolerant_round(self->g, self->b,
						 rnd(&seed) % NPAGES, &failed),
				  0);
		sys_fault_disarm();
		if (!sys_fault_injected()) {
			end = peer_end(&self->c, &r);
			ASSERT_EQ(end, 0);
			ASSERT_EQ(r.secrets, 0);
			gmem_unexport(self->c.peer);
			self->c.peer = NULL;
			break;
		}
		injected++;
		end = peer_end(&self->c, &r);
		ASSERT_GE(end, 0);
		if (end) {		/* cut off: the owner says so */
			killed++;
			EXPECT_EQ(gmem_peer_status(self->c.peer), -ETIMEDOUT);
		} else {
			ASSERT_EQ(r.secrets, 0);
		}
		gmem_unexport(self->c.peer);
		self->c.peer = NULL;
		ASSERT_EQ(stats(self->g).peer_pinned, 0);
	}
	TH_LOG("%lu owner calls failed in turn: %lu exports failed, %lu peers "
	       "cut off, %d conversions failed cleanly", injected +
	       failed_exports, failed_exports, killed, failed);
	EXPECT_GT(failed_exports, 0);
	EXPECT_GT(injected, 0);
}

static void peer_map_walk(FIXTURE_DATA(pf) *self, const char *mode)
{
	unsigned long revoked_or_failed = 0;
	int failed = 0;

	for (unsigned long n = 1; n <= 24; n++) {
		struct peer_result r = { 0 };
		uint64_t seed = n;
		char arg[32];

		snprintf(arg, sizeof(arg), "%s:%lu", mode, n);
		setenv("GMEM_PEER_FAULT", arg, 1);
		ASSERT_EQ(spawn(self->g, "writer", 0, NPAGES * ps, 0, 0,
				&self->c), 0);
		unsetenv("GMEM_PEER_FAULT");
		for (int i = 0; i < ROUNDS; i++) {
			int before = failed;

			ASSERT_EQ(tolerant_round(self->g, self->b,
						 rnd(&seed) % NPAGES, &failed),
				  0);
			revoked_or_failed += failed != before;
		}
		ASSERT_EQ(peer_end(&self->c, &r), 0);
		ASSERT_EQ(r.secrets, 0);
		gmem_unexport(self->c.peer);
		self->c.peer = NULL;
		/* Whatever failed, the owner's file is whole: all shared. */
		ASSERT_EQ(stats(self->g).priv, 0);
	}
	TH_LOG("%d owner conversions failed because a peer's show did; "
	       "%lu rounds saw one", failed, revoked_or_failed);
}

TEST_F_T(pf, peer_map_fails_once, 240)
{
	peer_map_walk(self, "once");
}

TEST_F_T(pf, peer_map_fails_always, 240)
{
	peer_map_walk(self, "from");
}

/*
 * Export and attach in one process (a thread attaches), every socket,
 * pidfd and mapping call of both failing in turn: either both succeed,
 * or both fail and leave no fd and no mapping behind.
 */
TEST_T(export_and_attach_unwind, 120)
{
	unsigned long walked = 0;
	int fds, maps;

	GMEM_TEST_REQUIRE_BACKEND();
	/* The owner's two threads (and their stacks) stay: start them. */
	{
		struct gmem_test_inproc ip;
		struct gmem_peer *p;
		struct gmem *g;

		ASSERT_EQ(peer_test_file(NPAGES, &g), 0);
		ASSERT_EQ(gmem_test_export_inproc(g, 0, NPAGES * ps, 0, &ip,
						  &p), 0);
		gmem_close(ip.pg);
		gmem_unexport(p);
		gmem_close(g);
		usleep(100000);
	}
	/* libgmem's mappings only: a thread's first malloc may map an
	 * arena of glibc's, which stays after the thread. */
	fds = count_fds();
	maps = gmem_test_count_maps(true);
	for (unsigned long n = 1;; n++) {
		struct gmem_test_inproc ip = { 0 };
		struct gmem_peer *p = NULL;
		struct gmem *g;
		int ret;

		ASSERT_EQ(peer_test_file(NPAGES, &g), 0);
		ASSERT_EQ(convert(g, 0, 4 * ps, 1), 0);
		sys_fault_arm(n, ENOMEM, SYS_FAULT_ONCE,
			      SYS_C_SOCK | SYS_C_MAP | SYS_C_FILE);
		ret = gmem_test_export_inproc(g, 0, NPAGES * ps, 0, &ip, &p);
		sys_fault_disarm();
		if (!sys_fault_injected()) {
			ASSERT_EQ(ret, 0);
		}
		if (!ret) {
			char *v;

			/* Whatever failed was absorbed: the mirror is right. */
			ASSERT_EQ(gmem_mmap(ip.pg, 0, NPAGES * ps, PROT_READ,
					    (void **)&v), 0);
			ASSERT_SIGBUS(v, 0);
			ASSERT_NO_SIGNAL(v + 4 * ps, 0);
			ASSERT_EQ(gmem_munmap(ip.pg, v, NPAGES * ps), 0);
		}
		if (ip.pg)
			gmem_close(ip.pg);
		if (p)
			gmem_unexport(p);
		gmem_close(g);
		if (!sys_fault_injected())
			break;
		walked++;
		/* The peer's thread lets go of its file a moment later. */
		for (int i = 0; i < 100 && (count_fds() != fds ||
			     gmem_test_count_maps(true) != maps); i++)
			usleep(10000);
		if (count_fds() != fds || gmem_test_count_maps(true) != maps)
			TH_LOG("call %lu: ret %d, peer %d", n, ret, ip.ret);
		ASSERT_EQ(count_fds(), fds);
		ASSERT_EQ(gmem_test_count_maps(true), maps);
	}
	TH_LOG("%lu calls of an export and its attach made to fail", walked);
	ASSERT_GT(walked, 5);
}

TEST_F_T(pf, a_forged_ack_is_no_ack, 30)
{
	int st = 0;

	ASSERT_EQ(spawn(self->g, "forge", 0, NPAGES * ps, 0,
			gmem_test_foreign_runtime() ? 5000 : 200, &self->c), 0);
	ASSERT_EQ(waitpid(self->c.pid, &st, WUNTRACED), self->c.pid);
	ASSERT_TRUE(WIFSTOPPED(st));
	/* Had the forged ACK counted, this would return with the page
	 * still shown in the stopped peer's view. */
	ASSERT_EQ(convert(self->g, 0, ps, 1), 0);
	EXPECT_EQ(gmem_peer_status(self->c.peer), -ETIMEDOUT);
	ASSERT_EQ(waitpid(self->c.pid, &st, 0), self->c.pid);
	EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	self->c.pid = 0;
	close(self->c.ctl);
	close(self->c.out);
}
