// SPDX-License-Identifier: MIT
/*
 * attach.c - the peer side of the peer protocol: gmem_attach(), and the
 * peer file it makes.  The wire format is peer.h's, the owner side
 * export.c's.
 *
 * A peer file is a struct gmem like any other, with g->link set: its
 * backing is the owner's fd (no window: gmem_backing_import()), its
 * state a mirror of the owner's, kept by the changes the owner sends,
 * and its views and pin view the same code as the owner's (VMA guard
 * only: the userfaultfd guard allocates through a window).  Pages
 * outside the exported range stay private in the mirror, so no view
 * ever shows them.
 *
 * One thread per peer file (the service thread) reads the socket in
 * order: a CHANGE is applied to the views under g->lock and ACKed, a
 * REPLY completes the request a caller waits for.  Requests (pin,
 * unpin) are sent without g->lock held, so the owner, which may hold
 * its own lock while it waits for an ACK, never waits for a thread that
 * waits for it.  A pin is granted by the owner first (it checks the
 * state under its lock), then made locally: the grant comes after every
 * change that preceded it, so the mirror agrees.
 *
 * Lifetime: the service thread holds the file (gmem_link_holds()) until
 * the connection ends.  When the caller has closed the file and nothing
 * else holds it, the link says BYE and shuts the socket; the thread then
 * drops the file, and frees it.  If the owner goes first, the mirror
 * stays as it was (orphaned) and pins fail -ENOTCONN.
 *
 * Locking: g->lock (internal.h) guards the mirror, views and link
 * flags; link->rpc_lock the one request in flight (a leaf: nothing is
 * taken under it); link->send_lock orders what this side sends.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "peer.h"
#include "sys.h"

struct gmem_link {
	int sock;
	uint64_t first, npages;		/* the exported pages */
	/* g->lock */
	bool serving;			/* the service thread holds g */
	bool orphaned;			/* the owner is gone */
	bool bye;			/* BYE sent, socket shut */
	bool broken;			/* a change could not be recorded:
					   every view revoked, no new one */
	/* rpc_lock */
	pthread_mutex_t rpc_lock;
	pthread_cond_t rpc_cond;
	bool rpc_busy, rpc_done, rpc_dead;
	uint64_t rpc_id;
	int64_t rpc_err;
	pthread_mutex_t send_lock;
};

/* Send a message; a full socket waits for the owner, which always reads
 * (its reader thread takes no lock), unless it is stopped itself. */
static int link_send(struct gmem_link *l, uint32_t type, uint64_t seq,
		     int64_t err, uint64_t a, uint64_t b)
{
	struct peer_msg m = { PEER_MAGIC, type, seq, err, { a, b } };
	int ret;

	pthread_mutex_lock(&l->send_lock);
	ret = sys_sock_send(l->sock, &m, sizeof(m), NULL, 0, false,
			    type == PM_BYE ? GMEM_PEER_TIMEOUT_MS : -1);
	pthread_mutex_unlock(&l->send_lock);
	return ret;
}

bool gmem_link_range_ok(const struct gmem *g, uint64_t offset, uint64_t len)
{
	uint64_t s = page_of(g, offset), e = page_of(g, offset + len);

	return s >= g->link->first && e <= g->link->first + g->link->npages;
}

void gmem_link_range(const struct gmem *g, uint64_t *offset, uint64_t *size)
{
	*offset = off_of(g, g->link->first);
	*size = off_of(g, g->link->npages);
}

int gmem_link_view_ok(const struct gmem *g, uint64_t offset, uint64_t len)
{
	uint64_t end = offset + len;

	/* A view's tail past the file's end is a hole, as for the owner. */
	if (end > g->size)
		end = g->size;
	if (offset >= g->size || !gmem_link_range_ok(g, offset, end - offset))
		return -EINVAL;
	return g->link->broken ? -EIO : 0;
}

/* Every view that shows a page of [s, e) is made unreachable. */
static void revoke_over(struct gmem *g, uint64_t s, uint64_t e)
{
	for (struct gmem_view *v = g->views; v; v = v->next)
		if (v->first < e && v->first + v->npages > s)
			gmem_view_revoke(g, v);
}

static void broken(struct gmem *g)
{
	g->link->broken = true;
	for (struct gmem_view *v = g->views; v; v = v->next)
		gmem_view_revoke(g, v);
}

struct tx {
	uint64_t start, end, bad;
	bool populated;
};

static int populate_mid(struct gmem *g, void *arg)
{
	struct tx *t = arg;
	int ret = gmem_listeners_populate(g, t->start, t->end, &t->bad);

	t->populated = !ret;
	return ret;
}

/* Make [s, e) a member of the poison set (poison 1) or not (0). */
static int set_poison(struct gmem *g, uint64_t s, uint64_t e, int poison)
{
	for (uint64_t p = s; p < e; p++) {
		bool in = gmem_poisoned(g, p);
		int ret = 0;

		if (poison && !in)
			ret = gmem_extents_add(&g->poison, p, p + 1);
		else if (!poison && in)
			ret = gmem_extents_sub(&g->poison, p, p + 1);
		if (ret)
			return ret;
	}
	return 0;
}

/* g->lock held: apply one CHANGE of the owner's to the mirror and views. */
static int apply(struct gmem *g, const struct peer_msg *m)
{
	struct gmem_link *l = g->link;
	uint64_t s = m->v[0], e = m->v[1];
	int val = (int)(int64_t)m->v[2], poison = (int)(int64_t)m->v[3];
	struct gmem_change ch;
	struct tx t = { s, e, s, false };
	unsigned int cur;
	bool hide, show;
	int ret;

	if (s > e || s < l->first || e > l->first + l->npages || val < -1 ||
	    val > 1 || poison < -1 || poison > 1)
		return -EPROTO;
	if (s == e || l->broken)
		return 0;
	ch = (struct gmem_change){ s, e, val, poison, -1, -1 };
	if (gmem_state_run(&g->state, s, e, &cur) == e) {
		ch.was = (int)cur;
		if (val == (int)cur)
			ch.val = val = -1;
	}
	if (poison >= 0 && gmem_extents_run(&g->poison, s, e, &hide) == e &&
	    hide == (poison == 1))
		ch.poison = poison = -1;
	if (val < 0 && poison < 0)
		return 0;
	hide = val == 1 || poison == 1;
	show = val == 0 || poison == 0;
	if (val >= 0 && gmem_state_reserve(&g->state, s, e, (unsigned)val)) {
		if (show)
			return -ENOMEM;
		broken(g);	/* cannot record a hide: show nothing more */
		return 0;
	}
	if (val >= 0)
		gmem_huge_before(g, s, e);
	ret = gmem_views_apply(g, &ch, val == 0 ? populate_mid : NULL, NULL,
			       &t);
	if (ret) {
		if (show) {
			if (t.populated)
				gmem_listeners_discard(g, s, e, 1);
			if (!hide)
				return ret;	/* undone: still hidden */
		}
		revoke_over(g, s, e);	/* a hide that failed */
	}
	if (val == 1)
		gmem_listeners_discard(g, s, e, 0);
	if (poison >= 0 && set_poison(g, s, e, poison)) {
		broken(g);
		return 0;
	}
	if (val >= 0) {
		g->pages_converted += gmem_state_set(&g->state, s, e,
						     (unsigned)val);
		g->conversions++;
	}
	gmem_views_settle(g, &ch);
	if (val >= 0)
		gmem_huge_after(g, s, e, (unsigned)val);
	return 0;
}

/*
 * g->lock held: region r's file is fd now (hugetlb).  It arrives while
 * the region is hidden in every view (the owner sends it before a
 * change that may show it), so no view maps the old one any more.
 */
static int set_region(struct gmem *g, const struct peer_msg *m, int fd)
{
	struct gmem_link *l = g->link;
	unsigned int shift = 30 - g->page_shift;
	uint64_t r = m->v[0];

	if (!g->hugetlb || fd < 0 || r < l->first >> shift ||
	    r >= (l->first + l->npages) >> shift) {
		if (fd >= 0)
			sys_close(fd);
		return -EPROTO;
	}
	if (g->b.region_fd[r] >= 0)
		sys_close(g->b.region_fd[r]);
	g->b.region_fd[r] = fd;
	return 0;
}

static void rpc_complete(struct gmem_link *l, uint64_t id, int64_t err,
			 bool dead)
{
	pthread_mutex_lock(&l->rpc_lock);
	if (dead) {
		l->rpc_dead = true;
	} else if (l->rpc_busy && id == l->rpc_id) {
		l->rpc_err = err;
		l->rpc_done = true;
	}
	pthread_cond_broadcast(&l->rpc_cond);
	pthread_mutex_unlock(&l->rpc_lock);
}

static void *serve(void *arg)
{
	struct gmem *g = arg;
	struct gmem_link *l = g->link;
	struct peer_msg m;
	int fd, nfds;

	while (!sys_sock_recv(l->sock, &m, sizeof(m), &fd, 1, &nfds, NULL,
			      -1) && m.magic == PEER_MAGIC) {
		int64_t err;

		if (m.type == PM_REGION) {
			pthread_mutex_lock(&g->lock);
			err = set_region(g, &m, nfds ? fd : -1);
			pthread_mutex_unlock(&g->lock);
			if (err)
				break;
			continue;
		}
		if (nfds)		/* no other message carries one */
			sys_close(fd);
		if (m.type == PM_REPLY) {
			rpc_complete(l, m.seq, m.err, false);
			continue;
		}
		if (m.type != PM_CHANGE)
			break;		/* CLOSE, or something else */
		pthread_mutex_lock(&g->lock);
		err = apply(g, &m);
		pthread_mutex_unlock(&g->lock);
		if (m.seq && link_send(l, PM_ACK, m.seq, err, 0, 0))
			break;
	}
	rpc_complete(l, 0, 0, true);
	pthread_mutex_lock(&g->lock);
	l->orphaned = true;
	l->serving = false;
	gmem_unlock_put(g);		/* may free g: the last thing done */
	return NULL;
}

bool gmem_link_holds(struct gmem *g, bool idle)
{
	struct gmem_link *l = g->link;

	if (!l || !l->serving)
		return false;
	if (idle && !l->bye) {
		/* Nothing maps anything any more: say so, end the link. */
		l->bye = true;
		link_send(l, PM_BYE, 0, 0, 0, 0);
		sys_sock_shutdown(l->sock);
	}
	return true;
}

void gmem_link_destroy(struct gmem *g)
{
	struct gmem_link *l = g->link;

	if (!l)
		return;
	if (l->sock >= 0)
		sys_close(l->sock);
	pthread_mutex_destroy(&l->rpc_lock);
	pthread_cond_destroy(&l->rpc_cond);
	pthread_mutex_destroy(&l->send_lock);
	free(l);
	g->link = NULL;
}

/* One request to the owner at a time; its answer, or -ENOTCONN. */
static int rpc(struct gmem_link *l, uint32_t type, uint64_t s, uint64_t e)
{
	int ret;

	pthread_mutex_lock(&l->rpc_lock);
	while (l->rpc_busy && !l->rpc_dead)
		pthread_cond_wait(&l->rpc_cond, &l->rpc_lock);
	if (l->rpc_dead) {
		pthread_mutex_unlock(&l->rpc_lock);
		return -ENOTCONN;
	}
	l->rpc_busy = true;
	l->rpc_done = false;
	l->rpc_id++;
	pthread_mutex_unlock(&l->rpc_lock);
	ret = link_send(l, type, l->rpc_id, 0, s, e);
	pthread_mutex_lock(&l->rpc_lock);
	while (!ret && !l->rpc_done && !l->rpc_dead)
		pthread_cond_wait(&l->rpc_cond, &l->rpc_lock);
	if (!ret)
		ret = l->rpc_done ? (int)l->rpc_err : -ENOTCONN;
	else
		ret = -ENOTCONN;
	l->rpc_busy = false;
	pthread_cond_broadcast(&l->rpc_cond);
	pthread_mutex_unlock(&l->rpc_lock);
	return ret;
}

int gmem_link_pin(struct gmem *g, uint64_t offset, uint64_t len, void **addr)
{
	uint64_t s = page_of(g, offset), e = page_of(g, offset + len);
	unsigned int cur;
	int ret = gmem_lock_live(g);

	if (ret)
		return ret;
	if (!gmem_link_range_ok(g, offset, len))
		ret = -EINVAL;
	else if (g->link->orphaned)
		ret = -ENOTCONN;
	else if (gmem_state_run(&g->state, s, e, &cur) != e || cur)
		ret = -EFAULT;		/* no need to ask */
	if (ret) {
		gmem_unlock_put(g);
		return ret;
	}
	g->nr_waiters++;		/* hold g across the requests */
	gmem_unlock_put(g);
	ret = rpc(g->link, PM_PIN, s, e);
	pthread_mutex_lock(&g->lock);
	if (!ret) {
		ret = g->closed ? -EBADF : gmem_pin_locked(g, offset, len, addr);
		if (ret) {
			pthread_mutex_unlock(&g->lock);
			rpc(g->link, PM_UNPIN, s, e);
			pthread_mutex_lock(&g->lock);
		}
	}
	g->nr_waiters--;
	gmem_unlock_put(g);
	return ret;
}

int gmem_link_unpin(struct gmem *g, uint64_t offset, uint64_t len)
{
	uint64_t s = page_of(g, offset), e = page_of(g, offset + len);
	struct gmem_link *l;
	int ret = gmem_lock(g);

	if (ret)
		return ret;
	ret = gmem_unpin_locked(g, offset, len);
	l = g->link;
	/* The owner's count goes after the local pin: never the reverse. */
	if (!ret && !l->orphaned) {
		g->nr_waiters++;	/* hold g across the request */
		pthread_mutex_unlock(&g->lock);
		rpc(l, PM_UNPIN, s, e);
		pthread_mutex_lock(&g->lock);
		g->nr_waiters--;
	}
	gmem_unlock_put(g);
	return ret;
}

static int check_attach(const struct gmem_attach_args *a)
{
	if (a->flags || a->pad || a->timeout_ms > INT32_MAX)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(a->reserved) / 8; i++)
		if (a->reserved[i])
			return -EINVAL;
	return 0;
}

/* The owner's HELLO: a file this process can map as it does. */
static int hello_ok(const struct peer_msg *m, unsigned int page_shift)
{
	uint64_t layout = m->v[4];
	unsigned int kind = PEER_KIND(layout);

	if (m->magic != PEER_MAGIC || m->type != PM_HELLO)
		return -EPROTO;
	if (m->v[0] != PEER_VERSION)
		return -EPROTO;
	if (PEER_PAGE_SHIFT(layout) != page_shift || !m->v[1] ||
	    m->v[1] & ((1ULL << page_shift) - 1) || !m->v[3] ||
	    m->v[2] + m->v[3] < m->v[2] ||
	    m->v[2] + m->v[3] > m->v[1] >> page_shift)
		return -EPROTO;
	if (kind != GMEM_BACKING_MEMFD && kind != GMEM_BACKING_THP &&
	    kind != GMEM_BACKING_HUGETLB && kind != GMEM_BACKING_KVM)
		return -EPROTO;
	return 0;
}

static int init_file(struct gmem *g, const struct peer_msg *m, int fd)
{
	unsigned int kind = PEER_KIND(m->v[4]);
	int ret;

	g->size = m->v[1];
	g->page_shift = PEER_PAGE_SHIFT(m->v[4]);
	g->npages = page_of(g, g->size);
	g->huge_shift = PEER_HUGE_SHIFT(m->v[4]);
	g->flags = GMEM_FLAG_MMAP | (g->huge_shift == 21 ? GMEM_FLAG_HUGE_2MB :
				     g->huge_shift == 30 ? GMEM_FLAG_HUGE_1GB :
				     0);
	g->hugetlb = g->huge_shift == 30;
	g->backend = kind == GMEM_BACKING_KVM ? GMEM_BACKEND_KVM
					      : GMEM_BACKEND_MEMFD;
	g->uffd = -1;
	g->uffd_err = -EOPNOTSUPP;
	ret = gmem_state_init(&g->state, g->npages, 1);
	if (ret)
		return ret;
	gmem_rehome_init(g);
	ret = gmem_backing_import(&g->b, (enum gmem_backing_kind)kind, fd,
				  g->size, g->huge_shift);
	if (!ret && g->hugetlb) {
		g->region_exposed = calloc(g->b.nr_regions, 1);
		if (!g->region_exposed) {
			gmem_backing_destroy(&g->b);
			ret = -ENOMEM;
		}
	}
	if (ret) {
		gmem_rehome_destroy(g);
		gmem_state_destroy(&g->state);
		return ret;
	}
	pthread_mutex_init(&g->lock, NULL);
	pthread_mutex_init(&g->wake_lock, NULL);
	pthread_cond_init(&g->wake_cond, NULL);
	return 0;
}

GMEM_EXPORT int gmem_attach(int sock, const struct gmem_attach_args *a,
			    struct gmem **out)
{
	unsigned int page_shift = (unsigned int)__builtin_ctzl(
					(unsigned long)sysconf(_SC_PAGESIZE));
	struct gmem_link *l;
	struct peer_msg m;
	pthread_attr_t ta;
	pthread_t t;
	sigset_t all, old;
	struct gmem *g;
	int fd = -1, nfds = 0, timeout, ret;

	if (!a || !out || sock < 0)
		return -EINVAL;
	ret = check_attach(a);
	if (!ret)
		ret = sys_sock_take(sock);
	if (ret)
		return ret;
	timeout = a->timeout_ms ? (int)a->timeout_ms : GMEM_PEER_TIMEOUT_MS;
	ret = sys_sock_recv(sock, &m, sizeof(m), &fd, 1, &nfds, NULL, timeout);
	if (ret)
		return ret;
	ret = hello_ok(&m, page_shift);
	if (!ret && nfds != 1)
		ret = -EPROTO;
	if (ret)
		goto err_fd;
	g = calloc(1, sizeof(*g));
	l = calloc(1, sizeof(*l));
	if (!g || !l) {
		free(g);
		free(l);
		ret = -ENOMEM;
		goto err_fd;
	}
	ret = init_file(g, &m, fd);
	if (ret) {
		free(g);
		free(l);
		goto err_fd;
	}
	fd = -1;			/* the backing's now */
	nfds = 0;
	l->sock = sock;
	l->first = m.v[2];
	l->npages = m.v[3];
	pthread_mutex_init(&l->rpc_lock, NULL);
	pthread_cond_init(&l->rpc_cond, NULL);
	pthread_mutex_init(&l->send_lock, NULL);
	g->link = l;
	m = (struct peer_msg){ PEER_MAGIC, PM_ATTACH, 0, 0, { PEER_VERSION } };
	ret = sys_sock_send(sock, &m, sizeof(m), NULL, 0, true, timeout);
	/* The state as it is, up to READY: no view exists to show it yet. */
	while (!ret) {
		ret = sys_sock_recv(sock, &m, sizeof(m), &fd, 1, &nfds, NULL,
				    timeout);
		if (ret)
			break;
		if (m.magic == PEER_MAGIC && m.type == PM_REGION) {
			ret = set_region(g, &m, nfds ? fd : -1);
			continue;
		}
		if (nfds)
			sys_close(fd);
		if (m.magic != PEER_MAGIC ||
		    (m.type != PM_CHANGE && m.type != PM_READY) ||
		    (m.type == PM_CHANGE && m.seq)) {
			ret = -EPROTO;
			break;
		}
		if (m.type == PM_READY)
			break;
		ret = apply(g, &m);
	}
	if (ret)
		goto err_file;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&ta);
	pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&ta, 256 << 10);
	l->serving = true;
	ret = -pthread_create(&t, &ta, serve, g);
	pthread_attr_destroy(&ta);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		goto err_file;
	*out = g;
	return 0;

err_file:
	l->sock = -1;			/* the caller's again */
	gmem_destroy(g);		/* and the link with it */
	return ret;
err_fd:
	if (fd >= 0)
		sys_close(fd);
	return ret;
}
