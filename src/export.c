// SPDX-License-Identifier: MIT
/*
 * export.c - the owner side of the peer protocol: gmem_export(),
 * gmem_unexport(), gmem_peer_status(), and what conversions, memory
 * failure and punches tell the peers (gmem_peers_change()).  The wire
 * format is peer.h's, the peer side attach.c's.
 *
 * Each export is a struct gmem_peer on g->peers, the owner's handle
 * until gmem_unexport(); it keeps g alive like a listener.  A peer is
 * attached (status 0) until it dies, detaches, stops answering or the
 * file is closed; from then on it is a tombstone that holds nothing:
 * its pins are dropped, and no change waits for it.
 *
 * Two threads per process, started by the first export, serve every
 * peer of every file:
 *   the reader  waits on all peer sockets (epoll) and reads every
 *               message; it never takes a file's lock, so a conversion
 *               that holds one while it waits for ACKs always gets them.
 *               ACKs and ends of connection are recorded for the waiter;
 *               requests (PIN, UNPIN, BYE) and ends go to the worker;
 *   the worker  takes the file's lock for the requests, one at a time.
 *
 * Cutting off: a peer that does not answer a change within its timeout
 * is shut down and, unless exported with GMEM_EXPORT_NO_KILL, killed
 * through the pidfd taken at attach; the change then waits (at most the
 * timeout again) for the process to be gone.  Its mappings go with the
 * process (exit_mm() comes before the pidfd reports the exit), so the
 * change goes on.  If it cannot be shown gone, the change fails
 * -ETIMEDOUT and is undone; the peer stays cut off, and later changes
 * do not wait for it (gmem(7), PEERS: what that costs).
 *
 * Locking: g->lock orders every message sent to a peer of g and every
 * field the change path uses; hub.lock (a leaf, never held across a
 * wait for anything but its own condition) guards what the reader and
 * the worker share with the waiters: acked, ack_err, eof, busy, the
 * queue and the hub's list.  Lock order: g->lock, then hub.lock.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "peer.h"
#include "sys.h"

struct gmem_peer {
	struct gmem_peer *next;		/* g->peers */
	struct gmem *g;
	uint64_t id;			/* the hub's name for it */
	int sock;
	int pidfd;			/* the peer process, or -1 */
	uint64_t first, npages;		/* the exported pages */
	uint64_t flags;
	int timeout_ms;
	int status;			/* gmem_peer_status() */
	struct gmem_extents pins;	/* its pins, also in g->pins */
	bool told;			/* in the change under way */
	/* hub.lock (and g->lock to write seq) */
	uint64_t seq;			/* the last CHANGE that wants an ACK */
	bool bye;			/* it said it has nothing mapped */
	bool exited;			/* its pidfd says the process is gone */
	unsigned char rx[sizeof(struct peer_msg)];	/* a message begun */
	size_t rx_len;
	struct gmem_peer *hub_next;
	uint64_t acked;
	int64_t ack_err;
	bool eof;			/* its end is closed, or it broke */
	unsigned int busy;		/* the worker's requests for it */
};

struct req {
	struct req *next;
	uint64_t id;
	struct peer_msg m;		/* type 0: the connection ended */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* acked, eof, busy changed */
	pthread_cond_t work;		/* the queue has a request */
	pthread_once_t once;
	pid_t pid;			/* the process the threads run in */
	int epfd;
	uint64_t next_id;
	struct gmem_peer *list;
	struct req *head, *tail;
} hub = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.once = PTHREAD_ONCE_INIT,
	.epfd = -1,
};

/*
 * fork(): the child has none of the threads, and shares the parent's
 * epoll instance.  It keeps no peer (the parent's are the parent's) and
 * starts a hub of its own at its first export.
 */
static void fork_prepare(void)
{
	pthread_mutex_lock(&hub.lock);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&hub.lock);
}

static void fork_child(void)
{
	hub.list = NULL;
	hub.head = hub.tail = NULL;
	pthread_mutex_unlock(&hub.lock);
}

/* How long a process whose socket closed may take to be gone (ms). */
#define PEER_EXIT_MS	200

/* The hub watches each peer's socket (id) and pidfd (id | HUB_PIDFD). */
#define HUB_PIDFD	(1ULL << 63)

static struct gmem_peer *hub_find(uint64_t id)
{
	for (struct gmem_peer *p = hub.list; p; p = p->hub_next)
		if (p->id == id)
			return p;
	return NULL;
}

/* hub.lock held: queue a request for the worker. */
static void hub_queue(struct gmem_peer *p, const struct peer_msg *m)
{
	struct req *r = calloc(1, sizeof(*r));

	if (!r)			/* the end of the peer is what gets lost */
		return;
	r->id = p->id;
	if (m)
		r->m = *m;
	p->busy++;
	if (hub.tail)
		hub.tail->next = r;
	else
		hub.head = r;
	hub.tail = r;
	pthread_cond_signal(&hub.work);
}

/* hub.lock held: p's connection is over (or broke): tell everyone once. */
static void hub_eof(struct gmem_peer *p)
{
	if (p->eof)
		return;
	p->eof = true;
	epoll_ctl(hub.epfd, EPOLL_CTL_DEL, p->sock, NULL);
	if (p->pidfd >= 0)
		epoll_ctl(hub.epfd, EPOLL_CTL_DEL, p->pidfd, NULL);
	pthread_cond_broadcast(&hub.cond);
	hub_queue(p, NULL);
}

/*
 * hub.lock held: read what p sent, never waiting: a message that
 * arrives in parts is kept in p->rx until it is whole, so one peer
 * that sends slowly delays no other (and no waiter on hub.lock).
 */
static void hub_read(struct gmem_peer *p)
{
	struct peer_msg m;
	int n;

	for (;;) {
		n = sys_sock_read_some(p->sock, p->rx + p->rx_len,
				       sizeof(p->rx) - p->rx_len);
		if (n == -EAGAIN)
			return;
		if (n < 0) {
			hub_eof(p);
			return;
		}
		p->rx_len += (size_t)n;
		if (p->rx_len < sizeof(p->rx))
			continue;
		p->rx_len = 0;
		memcpy(&m, p->rx, sizeof(m));
		if (m.magic != PEER_MAGIC) {
			hub_eof(p);
			return;
		}
		switch (m.type) {
		case PM_ACK:
			/* Only an answer to a change it was sent counts. */
			if (!m.seq || m.seq > p->seq || m.seq <= p->acked) {
				hub_eof(p);
				return;
			}
			p->acked = m.seq;
			if (m.err > 0 || m.err < -4095)
				m.err = -EPROTO;
			if (!p->ack_err)
				p->ack_err = m.err;
			pthread_cond_broadcast(&hub.cond);
			break;
		case PM_PIN:
		case PM_UNPIN:
			hub_queue(p, &m);
			break;
		case PM_BYE:
			p->bye = true;
			break;
		default:
			hub_eof(p);
			return;
		}
	}
}

static void *reader(void *arg)
{
	struct epoll_event ev[16];

	(void)arg;
	for (;;) {
		int n = epoll_wait(hub.epfd, ev, 16, -1);

		for (int i = 0; i < n; i++) {
			struct gmem_peer *p;

			pthread_mutex_lock(&hub.lock);
			p = hub_find(ev[i].data.u64 & ~HUB_PIDFD);
			if (p && !p->eof && (ev[i].data.u64 & HUB_PIDFD)) {
				/* Gone, even if a child of it holds the
				 * socket: its pins must not outlive it. */
				p->exited = true;
				hub_eof(p);
			} else if (p && !p->eof) {
				hub_read(p);
			}
			pthread_mutex_unlock(&hub.lock);
		}
	}
	return NULL;
}

static void reply(struct gmem_peer *p, const struct peer_msg *q, int err)
{
	struct peer_msg m = { PEER_MAGIC, PM_REPLY, q->seq, err, { 0 } };

	if (!p->status && sys_sock_send(p->sock, &m, sizeof(m), NULL, 0,
					false, p->timeout_ms))
		sys_sock_shutdown(p->sock);	/* it ends as a dead peer */
}

/* g->lock held: the peer holds nothing any more; status says why. */
static void peer_lost(struct gmem_peer *p, int status)
{
	struct gmem *g = p->g;

	if (p->status)
		return;
	p->status = status;
	sys_sock_shutdown(p->sock);
	for (size_t i = 0; i < p->pins.nr; i++) {
		struct gmem_extent *x = &p->pins.ext[i];

		for (uint64_t c = 0; c < x->count; c++)
			gmem_extents_sub(&g->pins, x->start, x->end);
	}
	gmem_extents_destroy(&p->pins);
	gmem_extents_init(&p->pins);
	gmem_refs_wake(g);
	g->peers_lost++;
	g->peers_cut += status == -ETIMEDOUT;
}

/* Is the peer's process gone?  Without a pidfd it cannot be told. */
static bool process_gone(struct gmem_peer *p, int timeout_ms)
{
	return p->pidfd >= 0 && sys_poll_in(p->pidfd, timeout_ms) == 1;
}

/*
 * g->lock held: p stopped answering (or closed its end while it may
 * still have views).  Cut it off; 0 if it is shown gone, with all its
 * mappings, else -ETIMEDOUT.
 */
static int cut_off(struct gmem_peer *p)
{
	int ret = -ETIMEDOUT;

	peer_lost(p, -ETIMEDOUT);
	if (process_gone(p, 0))
		return 0;
	if (p->pidfd >= 0 && !(p->flags & GMEM_EXPORT_NO_KILL) &&
	    !sys_pidfd_kill(p->pidfd, SIGKILL) &&
	    process_gone(p, p->timeout_ms))
		ret = 0;
	return ret;
}

/*
 * g->lock held: p's connection ended (its socket, or its process).  A
 * peer that said BYE detached; a process that is gone took its mappings
 * with it (the kernel closes a dying process's files a moment before
 * its pidfd says so: wait that moment, PEER_EXIT_MS at most).  Anything
 * else closed its end while it may still map pages: cut it off.
 */
static int peer_ended(struct gmem_peer *p)
{
	bool bye;

	if (p->status)
		return 0;
	pthread_mutex_lock(&hub.lock);
	bye = p->bye;
	pthread_mutex_unlock(&hub.lock);
	if (bye || process_gone(p, p->timeout_ms < PEER_EXIT_MS ?
				 p->timeout_ms : PEER_EXIT_MS)) {
		peer_lost(p, -ECONNRESET);
		return 0;
	}
	return cut_off(p);
}

/*
 * g->lock held: a send to p failed with err.  A peer whose end is
 * closing (it detached, or it is dying) is left to the reader, which
 * sees the end a moment later: wait for that, at most the timeout.
 * Anything else is a peer that cannot be told: cut it off.
 */
static int peer_unreachable(struct gmem_peer *p, int err)
{
	uint64_t deadline = sys_now_ms() + (uint64_t)p->timeout_ms;
	bool eof;

	if (err != -EPIPE && err != -ECONNRESET)
		return cut_off(p);
	pthread_mutex_lock(&hub.lock);
	while (!p->eof) {
		struct timespec ts = {
			.tv_sec = (time_t)(deadline / 1000),
			.tv_nsec = (long)(deadline % 1000) * 1000000,
		};

		if (pthread_cond_timedwait(&hub.cond, &hub.lock, &ts))
			break;
	}
	eof = p->eof;
	pthread_mutex_unlock(&hub.lock);
	return eof ? peer_ended(p) : cut_off(p);
}

static void handle_pin(struct gmem_peer *p, const struct peer_msg *m)
{
	struct gmem *g = p->g;
	uint64_t s = m->v[0], e = m->v[1];
	unsigned int cur;
	int ret;

	if (s >= e || s < p->first || e > p->first + p->npages) {
		reply(p, m, -EINVAL);
		return;
	}
	/*
	 * hugetlb: the peer's pin view shows the whole region, as ours
	 * does, so the pin holds the whole region (exports are whole
	 * regions, so it stays inside p's range).
	 */
	gmem_huge_round(g, &s, &e);
	if (m->type == PM_UNPIN) {
		ret = gmem_extents_sub(&p->pins, s, e);
		if (!ret) {
			gmem_extents_sub(&g->pins, s, e);
			gmem_refs_wake(g);
		}
		reply(p, m, ret);
		return;
	}
	if (g->closed) {
		ret = -ESHUTDOWN;
	} else if (gmem_state_run(&g->state, s, e, &cur) != e || cur) {
		ret = -EFAULT;
	} else if (g->poison.nr && gmem_extents_first(&g->poison, s, e) < e) {
		ret = -EHWPOISON;
	} else {
		ret = gmem_extents_add(&p->pins, s, e);
		if (!ret) {
			ret = gmem_extents_add(&g->pins, s, e);
			if (ret)
				gmem_extents_sub(&p->pins, s, e);
		}
	}
	reply(p, m, ret);
}

static void *worker(void *arg)
{
	(void)arg;
	for (;;) {
		struct gmem_peer *p;
		struct req *r;

		pthread_mutex_lock(&hub.lock);
		while (!hub.head)
			pthread_cond_wait(&hub.work, &hub.lock);
		r = hub.head;
		hub.head = r->next;
		if (!hub.head)
			hub.tail = NULL;
		p = hub_find(r->id);
		pthread_mutex_unlock(&hub.lock);
		if (p) {
			/* p lives until busy drops: gmem_unexport() waits. */
			pthread_mutex_lock(&p->g->lock);
			if (!r->m.type)
				peer_ended(p);
			else if (!p->status)
				handle_pin(p, &r->m);
			gmem_unlock_put(p->g);
			pthread_mutex_lock(&hub.lock);
			p->busy--;
			pthread_cond_broadcast(&hub.cond);
			pthread_mutex_unlock(&hub.lock);
		}
		free(r);
	}
	return NULL;
}

static void hub_init(void)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&hub.cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&hub.work, NULL);
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* The threads, in this process: 0 once they run. */
static int hub_start(void)
{
	pthread_attr_t ta;
	pthread_t t;
	sigset_t all, old;
	int ret = 0, epfd;

	pthread_once(&hub.once, hub_init);
	pthread_mutex_lock(&hub.lock);
	if (hub.pid == getpid())
		goto out;
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0) {
		ret = -errno;
		goto out;
	}
	if (hub.epfd >= 0)
		close(hub.epfd);	/* the parent's, before a fork */
	hub.epfd = epfd;
	/* The threads take no signal meant for the program. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&ta);
	pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&ta, 256 << 10);
	ret = -pthread_create(&t, &ta, reader, NULL);
	if (!ret) {
		ret = -pthread_create(&t, &ta, worker, NULL);
		/* A reader alone would queue for nobody: none, or both. */
		if (ret)
			pthread_cancel(t);
	}
	pthread_attr_destroy(&ta);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!ret)
		hub.pid = getpid();
out:
	pthread_mutex_unlock(&hub.lock);
	return ret;
}

static int send_msg(struct gmem_peer *p, uint32_t type, uint64_t seq,
		    const uint64_t *v, int n)
{
	struct peer_msg m = { PEER_MAGIC, type, seq, 0, { 0 } };

	if (n)
		memcpy(m.v, v, sizeof(uint64_t) * (size_t)n);
	return sys_sock_send(p->sock, &m, sizeof(m), NULL, 0, false,
			     p->timeout_ms);
}

/*
 * hugetlb: send p the file of every region of [s, e), as it is now (a
 * re-home may have swapped it since p last had it).
 */
static int send_regions(struct gmem_peer *p, uint64_t s, uint64_t e)
{
	struct gmem *g = p->g;
	unsigned int shift = 30 - g->page_shift;
	int ret;

	if (!g->hugetlb)
		return 0;
	for (uint64_t r = s >> shift; r < (e + (1ULL << shift) - 1) >> shift;
	     r++) {
		struct peer_msg m = { PEER_MAGIC, PM_REGION, 0, 0, { r } };

		ret = sys_sock_send(p->sock, &m, sizeof(m), &g->b.region_fd[r],
				    1, false, p->timeout_ms);
		if (ret)
			return ret;
	}
	return 0;
}

/* Send p the file's state of [s, e) as CHANGEs that want no ACK. */
static int send_state(struct gmem_peer *p, uint64_t s, uint64_t e)
{
	struct gmem *g = p->g;
	uint64_t q, run, prun;
	unsigned int cur;
	bool poisoned;
	int ret = send_regions(p, s, e);

	for (q = s; !ret && q < e; q = run) {
		run = gmem_state_run(&g->state, q, e, &cur);
		prun = gmem_extents_run(&g->poison, q, run, &poisoned);
		if (prun < run)
			run = prun;
		ret = send_msg(p, PM_CHANGE, 0, (uint64_t[]){ q, run, cur,
			       poisoned }, 4);
	}
	return ret;
}

/* Clip [s, e) to what p was given. */
static bool clip(const struct gmem_peer *p, uint64_t *s, uint64_t *e)
{
	if (*s < p->first)
		*s = p->first;
	if (*e > p->first + p->npages)
		*e = p->first + p->npages;
	return *s < *e;
}

/*
 * Wait until every peer told (p->told) has answered its last CHANGE, or
 * gone, or run out of time; then deal with the ones that did not answer.
 * 0, or the first refusal or -ETIMEDOUT.
 */
static int wait_acks(struct gmem *g)
{
	uint64_t start = sys_now_ms();
	int err = 0;

	pthread_mutex_lock(&hub.lock);
	for (;;) {
		uint64_t now = sys_now_ms(), wake = UINT64_MAX;
		bool waiting = false;

		for (struct gmem_peer *p = g->peers; p; p = p->next) {
			uint64_t deadline = start + (uint64_t)p->timeout_ms;

			if (!p->told || p->eof || p->acked >= p->seq)
				continue;
			if (now >= deadline)
				continue;
			waiting = true;
			if (deadline < wake)
				wake = deadline;
		}
		if (!waiting)
			break;
		struct timespec ts = {
			.tv_sec = (time_t)(wake / 1000),
			.tv_nsec = (long)(wake % 1000) * 1000000,
		};
		pthread_cond_timedwait(&hub.cond, &hub.lock, &ts);
	}
	pthread_mutex_unlock(&hub.lock);
	for (struct gmem_peer *p = g->peers; p; p = p->next) {
		int ret = 0;
		int64_t ack_err;
		bool eof, acked;

		if (!p->told)
			continue;
		p->told = false;
		pthread_mutex_lock(&hub.lock);
		eof = p->eof;
		acked = p->acked >= p->seq;
		ack_err = p->ack_err;
		p->ack_err = 0;
		pthread_mutex_unlock(&hub.lock);
		if (p->status)
			continue;
		if (acked && !eof)
			ret = (int)ack_err;
		else if (eof)
			ret = peer_ended(p);
		else
			ret = cut_off(p);
		if (acked)
			g->peer_changes++;
		if (ret && !err)
			err = ret;
	}
	return err;
}

/*
 * Send p a CHANGE of [s, e) (val, poison) that wants an ACK, or with
 * state the file's state of [s, e) then an empty CHANGE that does.
 * 0, or -ETIMEDOUT if p could not be told and not be shown gone.
 */
static int tell_one(struct gmem_peer *p, uint64_t s, uint64_t e, int val,
		    int poison, bool state)
{
	uint64_t seq;
	int ret;

	if (state)
		ret = send_state(p, s, e);
	else	/* what may be shown comes from the region's file now */
		ret = val == 0 || poison == 0 ? send_regions(p, s, e) : 0;
	pthread_mutex_lock(&hub.lock);
	seq = ++p->seq;
	pthread_mutex_unlock(&hub.lock);
	if (!ret)
		ret = send_msg(p, PM_CHANGE, seq, (uint64_t[]){ s, state ? s : e,
			       (uint64_t)(int64_t)val,
			       (uint64_t)(int64_t)poison }, 4);
	if (ret)	/* could not be told: the same as no answer */
		return peer_unreachable(p, ret);
	p->told = true;
	return 0;
}

/* tell_one() every attached peer that [start, end) meets. */
static int tell(struct gmem *g, uint64_t start, uint64_t end, int val,
		int poison, bool state)
{
	int err = 0;

	for (struct gmem_peer *p = g->peers; p; p = p->next) {
		uint64_t s = start, e = end;
		int ret;

		if (p->status || !clip(p, &s, &e))
			continue;
		ret = tell_one(p, s, e, val, poison, state);
		if (ret && !err)
			err = ret;
	}
	return err;
}

/*
 * Best effort: a peer that fails it is cut off; one that cannot be
 * shown gone keeps what it had (gmem(7), PEERS: the cost of NO_KILL).
 */
void gmem_peers_resync(struct gmem *g, uint64_t start, uint64_t end)
{
	if (!g->peers)
		return;
	tell(g, start, end, -1, -1, true);
	wait_acks(g);		/* best effort: who fails is cut off */
}

int gmem_peers_change(struct gmem *g, const struct gmem_change *ch)
{
	int ret, err;

	if (!g->peers)
		return 0;
	ret = tell(g, ch->start, ch->end, ch->val, ch->poison, false);
	err = wait_acks(g);
	if (!ret)
		ret = err;
	if (ret)
		gmem_peers_resync(g, ch->start, ch->end);
	return ret;
}

void gmem_peers_closed(struct gmem *g)
{
	for (struct gmem_peer *p = g->peers; p; p = p->next) {
		if (p->status)
			continue;
		send_msg(p, PM_CLOSE, 0, NULL, 0);
		peer_lost(p, -ESHUTDOWN);
	}
}

int gmem_peers_ping(struct gmem *g, uint64_t page)
{
	int ms = 0;

	for (struct gmem_peer *p = g->peers; p; p = p->next) {
		if (p->status || gmem_extents_first(&p->pins, page, page + 1) !=
		    page)
			continue;
		if (!tell_one(p, page, page, -1, -1, false) &&
		    (!ms || p->timeout_ms < ms))
			ms = p->timeout_ms;
	}
	if (ms)
		wait_acks(g);	/* one that does not answer is cut off */
	return ms;
}

uint64_t gmem_peers_attached(struct gmem *g)
{
	uint64_t n = 0;

	for (struct gmem_peer *p = g->peers; p; p = p->next)
		n += !p->status;
	return n;
}

/* Dirty tracking: the peer's shared pages may have been written. */
static void peer_dirty(struct gmem *g, const struct gmem_peer *p)
{
	uint64_t s = p->first, end = p->first + p->npages;

	if (!g->dirty)
		return;
	while (s < end) {
		unsigned int val;
		uint64_t e = gmem_state_run(&g->state, s, end, &val);

		if (!val)
			gmem_dirty_note(g, s, e);
		s = e;
	}
}

void gmem_peers_dirty(struct gmem *g)
{
	for (struct gmem_peer *p = g->peers; p; p = p->next)
		peer_dirty(g, p);
}

uint64_t gmem_peers_pinned(struct gmem *g)
{
	uint64_t n = 0;

	for (struct gmem_peer *p = g->peers; p; p = p->next)
		n += p->pins.nr_pinned;
	return off_of(g, n);
}

static int check_export(struct gmem *g, const struct gmem_export_args *a)
{
	if (a->flags & ~GMEM_EXPORT_NO_KILL || a->pad)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(a->reserved) / 8; i++)
		if (a->reserved[i])
			return -EINVAL;
	if (!gmem_range_ok(g, a->offset, a->size) || a->timeout_ms > INT32_MAX)
		return -EINVAL;
	if (gmem_is_peer(g))
		return -EPERM;
	if (!(g->flags & GMEM_FLAG_MMAP))
		return -ENODEV;
	/* hugetlb views show whole regions: export whole regions. */
	if (g->hugetlb && ((a->offset | a->size) & ((1ULL << 30) - 1)))
		return -EINVAL;
	return 0;
}

/* The handshake, without g's lock: HELLO out, ATTACH (and who) back. */
static int handshake(struct gmem *g, struct gmem_peer *p)
{
	struct peer_msg m = { PEER_MAGIC, PM_HELLO, 0, 0, {
		PEER_VERSION, g->size, p->first, p->npages,
		PEER_LAYOUT(g->b.kind, g->page_shift, g->huge_shift) } };
	struct ucred cred = { 0, 0, 0 };
	int ret;

	int fd = g->hugetlb ? g->b.region_fd[p->first >> (30 - g->page_shift)]
			    : g->b.fd;

	ret = sys_sock_passcred(p->sock);
	if (!ret)
		ret = sys_sock_send(p->sock, &m, sizeof(m), &fd, 1, false,
				    p->timeout_ms);
	if (!ret)
		ret = sys_sock_recv(p->sock, &m, sizeof(m), NULL, 0, NULL,
				    &cred, p->timeout_ms);
	if (ret)
		return ret;
	if (m.magic != PEER_MAGIC || m.type != PM_ATTACH ||
	    m.v[0] != PEER_VERSION || cred.pid <= 0)
		return -EPROTO;
	ret = p->pidfd = sys_pidfd_open(cred.pid);
	if (ret < 0) {
		p->pidfd = -1;
		return ret == -ESRCH ? -ECONNRESET : ret;
	}
	/* Can it be cut off for good if it stops answering? */
	if (!(p->flags & GMEM_EXPORT_NO_KILL)) {
		ret = sys_pidfd_kill(p->pidfd, 0);
		if (ret)
			return ret == -ESRCH ? -ECONNRESET : ret;
	}
	return 0;
}

GMEM_EXPORT int gmem_export(struct gmem *g, int sock,
			    const struct gmem_export_args *a,
			    struct gmem_peer **out)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct gmem_peer *p;
	int ret;

	if (!g || !a || !out || sock < 0)
		return -EINVAL;
	ret = check_export(g, a);
	if (!ret)
		ret = sys_sock_take(sock);
	if (ret)
		return ret;
	ret = hub_start();
	if (ret)
		return ret;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->sock = sock;
	p->pidfd = -1;
	p->first = page_of(g, a->offset);
	p->npages = page_of(g, a->size);
	p->flags = a->flags;
	p->timeout_ms = a->timeout_ms ? (int)a->timeout_ms
				      : GMEM_PEER_TIMEOUT_MS;
	p->g = g;
	gmem_extents_init(&p->pins);
	ret = handshake(g, p);
	if (ret)
		goto err;
	ret = gmem_lock_live(g);
	if (ret)
		goto err;
	/* The state now, then READY: every later change follows in order. */
	ret = send_state(p, p->first, p->first + p->npages);
	if (!ret)
		ret = send_msg(p, PM_READY, 0, NULL, 0);
	if (!ret) {
		pthread_mutex_lock(&hub.lock);
		p->id = ++hub.next_id;
		ev.data.u64 = p->id;
		ret = epoll_ctl(hub.epfd, EPOLL_CTL_ADD, sock, &ev) ? -errno
								    : 0;
		ev.data.u64 = p->id | HUB_PIDFD;
		if (!ret && p->pidfd >= 0 &&
		    epoll_ctl(hub.epfd, EPOLL_CTL_ADD, p->pidfd, &ev)) {
			ret = -errno;
			epoll_ctl(hub.epfd, EPOLL_CTL_DEL, sock, NULL);
		}
		if (!ret) {
			p->hub_next = hub.list;
			hub.list = p;
		}
		pthread_mutex_unlock(&hub.lock);
	}
	if (ret) {
		gmem_unlock_put(g);
		goto err;
	}
	/* A host path: what it maps may be handed to the kernel. */
	gmem_expose(g, p->first, p->first + p->npages);
	p->next = g->peers;
	g->peers = p;
	gmem_unlock_put(g);
	*out = p;
	return 0;

err:
	if (p->pidfd >= 0)
		sys_close(p->pidfd);
	free(p);
	return ret;
}

GMEM_EXPORT int gmem_peer_status(const struct gmem_peer *p)
{
	int status;

	if (!p)
		return -EINVAL;
	pthread_mutex_lock(&p->g->lock);
	status = p->status;
	pthread_mutex_unlock(&p->g->lock);
	return status;
}

/* Allowed after gmem_close(): an export keeps the file alive until here. */
GMEM_EXPORT int gmem_unexport(struct gmem_peer *p)
{
	struct gmem_peer **pp;
	struct gmem *g;
	struct req **rr;
	int ret;

	if (!p)
		return -EINVAL;
	g = p->g;
	ret = gmem_lock(g);
	if (ret)
		return ret;
	/*
	 * Its views must not show what may become private once it no
	 * longer hears of changes: it hides everything, and says so (or
	 * is cut off), before it is let go.
	 */
	if (!p->status && !tell_one(p, p->first, p->first + p->npages, 1, -1,
				    false))
		ret = wait_acks(g);
	if (!p->status) {
		send_msg(p, PM_CLOSE, 0, NULL, 0);
		peer_lost(p, -ESHUTDOWN);
	}
	pthread_mutex_unlock(&g->lock);
	/* Out of the hub: no reader or worker touches p after this. */
	pthread_mutex_lock(&hub.lock);
	if (!p->eof) {
		epoll_ctl(hub.epfd, EPOLL_CTL_DEL, p->sock, NULL);
		if (p->pidfd >= 0)
			epoll_ctl(hub.epfd, EPOLL_CTL_DEL, p->pidfd, NULL);
	}
	p->eof = true;
	for (struct gmem_peer **h = &hub.list; *h; h = &(*h)->hub_next) {
		if (*h == p) {
			*h = p->hub_next;
			break;
		}
	}
	for (rr = &hub.head; *rr;) {
		struct req *r = *rr;

		if (r->id != p->id) {
			rr = &r->next;
			continue;
		}
		*rr = r->next;
		p->busy--;
		free(r);
	}
	hub.tail = NULL;
	for (struct req *r = hub.head; r; r = r->next)
		hub.tail = r;
	while (p->busy)
		pthread_cond_wait(&hub.cond, &hub.lock);
	pthread_mutex_unlock(&hub.lock);
	pthread_mutex_lock(&g->lock);
	for (pp = &g->peers; *pp != p; pp = &(*pp)->next)
		;
	peer_dirty(g, p);	/* what it wrote since the last scan */
	*pp = p->next;
	gmem_unlock_put(g);
	sys_close(p->sock);
	if (p->pidfd >= 0)
		sys_close(p->pidfd);
	gmem_extents_destroy(&p->pins);
	free(p);
	return ret;
}
