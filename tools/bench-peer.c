// SPDX-License-Identifier: MIT
/*
 * bench-peer.c - the "gmemctl bench" peer workload: OVMF's DMA pattern
 * (as flip, bench-flip.c) with the device in a process of its own, as
 * a vhost-user back-end is, and the device process itself (the device
 * role of gmemctl, bench_device()).
 *
 * Variants, each with a device process (gmemctl exec'ed again, its
 * role in GMEMCTL_BENCH_DEVICE):
 *   libgmem-peer  the file exported with gmem_export(); the device
 *                 attaches (gmem_attach) and touches pages through its
 *                 peer view, where private pages are SIGBUS; every
 *                 conversion waits for the device's view to follow
 *   qemu-vhost    QEMU's way with a vhost-user device: the device maps
 *                 the shared memfd itself (no libgmem in it); the VMM
 *                 converts with the bitmap and punches the side given
 *                 up on every conversion (bench/qemu_bitmap.c), which
 *                 also zaps the device's mapping; nothing stops the
 *                 device reading a page that went private (it reads
 *                 a fresh zero page)
 *   libgmem-fd    for information, the cost of the guarantee: the
 *                 device maps libgmem's backing fd itself
 *                 (gmem_get_fd(), unguarded: private pages are
 *                 reachable there), so no conversion waits for it
 *
 * A transaction: 1-2 pages to shared, one request to the device over
 * its kick socket (it reads and increments one byte per page and sends
 * back what it read), the pages back to private.  Rounds interleave
 * the variants, as flip's do.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "gmemctl.h"
#include "output.h"

#define PEER_SIZE	GiB
#define PEER_DMA_OFF	(64 * MiB)
#define PEER_SLOTS	64
#define PEER_SLOT_PAGES	8
#define PEER_TIMEOUT_MS	10000		/* attach and each change */

enum { P_GMEM, P_FD, P_QEMU, NR_P };

static const char *const pname[NR_P] = { "libgmem-peer", "libgmem-fd",
					 "qemu-vhost" };

/* One request to the device: touch [off, off + np pages). */
struct dev_req {
	uint64_t off;
	uint64_t np;			/* 1 or 2 */
};

/* ---- the device process ----------------------------------------------- */

/*
 * GMEMCTL_BENCH_DEVICE=gmem,SOCK,KICK: attach on SOCK;
 * =fd,FD,KICK,SIZE,OFF: map SIZE bytes of FD from OFF (the shared memfd,
 * or libgmem's backing) as QEMU's vhost-user back-ends map a memory
 * region.  Then serve KICK until it closes.  An exit code.
 */
int bench_device(const char *spec)
{
	struct gmem_attach_args aa = { .timeout_ms = PEER_TIMEOUT_MS };
	unsigned long long size = 0, off = 0;
	struct gmem *g = NULL;
	int fd, kick, ret;
	struct dev_req r;
	char *mem;

	if (sscanf(spec, "gmem,%d,%d", &fd, &kick) == 2) {
		ret = gmem_attach(fd, &aa, &g);
		if (!ret)
			ret = gmem_mmap(g, 0, PEER_SIZE, PROT_READ | PROT_WRITE,
					(void **)&mem);
		size = PEER_SIZE;
	} else if (sscanf(spec, "fd,%d,%d,%llu,%llu", &fd, &kick, &size,
			  &off) == 4) {
		mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			   (off_t)off);
		ret = mem == MAP_FAILED ? -errno : 0;
	} else {
		out_error("bench: device: bad GMEMCTL_BENCH_DEVICE '%s'",
			  spec);
		return EXIT_USAGE;
	}
	if (ret) {
		out_error("bench: device: %s", strerror(-ret));
		return EXIT_FAIL;
	}
	while (recv(kick, &r, sizeof(r), MSG_WAITALL) == sizeof(r)) {
		unsigned char seen[2] = { 0, 0 };

		if (r.np < 1 || r.np > 2 || r.off > size ||
		    r.np * page_size() > size - r.off) {
			out_error("bench: device: a request outside the "
				  "region");
			return EXIT_FAIL;
		}
		for (uint64_t p = 0; p < r.np; p++) {
			volatile unsigned char *b = (unsigned char *)mem +
						    r.off + p * page_size();

			seen[p] = *b;
			*b = (unsigned char)(seen[p] + 1);
		}
		if (send(kick, seen, sizeof(seen), MSG_NOSIGNAL) !=
		    sizeof(seen)) {
			out_error("bench: device: send: %s", strerror(errno));
			return EXIT_FAIL;
		}
	}
	if (g) {
		gmem_munmap(g, mem, PEER_SIZE);
		gmem_close(g);
	} else {
		munmap(mem, size);
	}
	return EXIT_OK;
}

/* ---- the VMM side ----------------------------------------------------- */

struct peer_state {
	struct side s;
	bool created;
	pid_t pid;
	int kick;
	struct gmem_peer *peer;
	uint32_t *lat;
	uint64_t nlat;
	double round_ns[ROUNDS];
	uint64_t bad;			/* device found other contents */
	unsigned char expect[PEER_SLOTS * 2];
};

/*
 * fork + exec gmemctl as the device of ps; the kick socket's other end
 * and the memory cross the exec: (libgmem-peer) the socket gmem_export()
 * runs on, (libgmem-fd) libgmem's backing fd, (qemu-vhost) the shared
 * memfd.
 */
static int device_start(struct peer_state *ps, int v)
{
	int sv[2] = { -1, -1 }, kv[2], pass, ret;
	uint64_t fo = 0, len = 0;
	char env[128], *argv[] = { "gmemctl", "bench", NULL }, **envp;
	size_t ne = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, kv))
		return -errno;
	if (v == P_GMEM) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
			ret = -errno;
			close(kv[0]);
			close(kv[1]);
			return ret;
		}
		pass = sv[1];
		snprintf(env, sizeof(env), BENCH_DEVICE_ENV "=gmem,%d,%d",
			 pass, kv[1]);
	} else {
		if (v == P_FD) {
			ret = gmem_get_fd(ps->s.g, 0, &pass, &fo, &len);
			if (!ret && len < PEER_SIZE)
				ret = -EOPNOTSUPP;	/* not one fd */
			if (ret)
				goto err;
		} else {
			pass = ps->s.q.shared_fd;
		}
		snprintf(env, sizeof(env),
			 BENCH_DEVICE_ENV "=fd,%d,%d,%llu,%llu", pass, kv[1],
			 (unsigned long long)PEER_SIZE,
			 (unsigned long long)fo);
	}
	/* Our environment and the role, made before fork: the child only
	 * execs (other threads exist). */
	while (environ[ne])
		ne++;
	envp = calloc(ne + 2, sizeof(*envp));
	if (!envp) {
		ret = -ENOMEM;
		goto err;
	}
	memcpy(envp, environ, ne * sizeof(*envp));
	envp[ne] = env;
	ps->pid = fork();
	if (ps->pid < 0) {
		ret = -errno;
		free(envp);
		goto err;
	}
	if (!ps->pid) {
		fcntl(pass, F_SETFD, 0);
		fcntl(kv[1], F_SETFD, 0);
		execve("/proc/self/exe", argv, envp);
		_exit(127);
	}
	free(envp);
	close(kv[1]);
	ps->kick = kv[0];
	if (v == P_GMEM) {
		struct gmem_export_args ea = { .offset = 0, .size = PEER_SIZE,
					       .timeout_ms = PEER_TIMEOUT_MS };

		close(sv[1]);
		ret = gmem_export(ps->s.g, sv[0], &ea, &ps->peer);
		if (ret) {
			close(sv[0]);
			/* device_stop() reaps it */
			kill(ps->pid, SIGKILL);
			return ret;
		}
	}
	return 0;

err:
	close(kv[0]);
	close(kv[1]);
	if (sv[0] >= 0) {
		close(sv[0]);
		close(sv[1]);
	}
	return ret;
}

/* Close the kick socket: the device exits; 0 if it did so cleanly. */
static int device_stop(struct peer_state *ps)
{
	int status = 0, ret = 0;

	if (ps->pid <= 0)
		return 0;
	close(ps->kick);
	if (waitpid(ps->pid, &status, 0) != ps->pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status))
		ret = -ECHILD;
	ps->pid = 0;
	if (ps->peer)
		gmem_unexport(ps->peer);
	ps->peer = NULL;
	return ret;
}

static int peer_round(struct peer_state *ps, uint64_t n,
		      uint64_t seed, unsigned int round)
{
	uint64_t t = bench_now();
	int ret;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t r = bench_rand(&seed), slot = r % PEER_SLOTS;
		struct dev_req q = {
			.off = PEER_DMA_OFF + slot * PEER_SLOT_PAGES *
			       page_size(),
			.np = 1 + ((r >> 32) & 1),
		};
		uint64_t len = q.np * page_size(), t0 = bench_now();
		unsigned char seen[2];

		ret = side_convert(&ps->s, q.off, len, false);
		if (ret)
			return ret;
		if (send(ps->kick, &q, sizeof(q), MSG_NOSIGNAL) != sizeof(q) ||
		    recv(ps->kick, seen, sizeof(seen), MSG_WAITALL) !=
		    sizeof(seen))
			return -EPIPE;
		ret = side_convert(&ps->s, q.off, len, true);
		if (ret)
			return ret;
		ps->lat[ps->nlat++] = clamp_ns(bench_now() - t0);
		for (uint64_t p = 0; p < q.np; p++) {
			unsigned char *e = &ps->expect[slot * 2 + p];

			ps->bad += seen[p] != *e;
			*e = (unsigned char)(seen[p] + 1);
		}
	}
	ps->round_ns[round] = (double)(bench_now() - t) / (double)n;
	return 0;
}

int bench_peer(const struct cfg *c, struct json *j)
{
	static const enum variant sv[NR_P] = { V_GMEM, V_GMEM, V_QEMU };
	uint64_t n = c->quick ? 10000 : 100000, per = n / ROUNDS;
	struct peer_state st[NR_P];
	struct out_table *t;
	double p50, p99, base = 0;
	int ret = 0, v;

	memset(st, 0, sizeof(st));
	for (v = 0; v < NR_P; v++) {
		ret = side_create(&st[v].s, sv[v], PEER_SIZE);
		st[v].created = !ret;
		if (!ret)
			ret = side_accept(&st[v].s, PEER_DMA_OFF, PEER_SLOTS *
					  PEER_SLOT_PAGES * page_size());
		if (!ret)
			ret = device_start(&st[v], v);
		if (ret) {
			out_error("bench: %s: peer setup: %s", pname[v],
				  strerror(-ret));
			ret = EXIT_FAIL;
			goto out;
		}
		st[v].lat = malloc(sizeof(uint32_t) * n);
		if (!st[v].lat) {
			out_error("bench: %s: peer: out of memory", pname[v]);
			ret = EXIT_FAIL;
			goto out;
		}
	}
	out_progress_begin("peer", ROUNDS * NR_P);
	for (unsigned int r = 0; r < ROUNDS; r++) {
		for (v = 0; v < NR_P; v++) {
			ret = peer_round(&st[v], per, c->seed + r, r);
			if (ret) {
				out_error("bench: %s: peer transaction: %s",
					  pname[v], strerror(-ret));
				ret = EXIT_FAIL;
				goto out;
			}
			out_progress(r * NR_P + v + 1);
		}
	}
	out_progress_end();
	for (v = 0; v < NR_P; v++) {
		if (device_stop(&st[v])) {
			out_error("bench: %s: the device did not exit cleanly",
				  pname[v]);
			ret = EXIT_FAIL;
			goto out;
		}
	}

	t = out_table_new(NULL, 6, "variant", "per transaction", "p50", "p99",
			  "contents", "vs libgmem");
	json_obj_begin(j, NULL);
	json_str(j, "workload", "peer");
	json_u64(j, "guest_size", PEER_SIZE);
	json_u64(j, "transactions", per * ROUNDS);
	json_arr_begin(j, "results");
	for (v = 0; v < NR_P; v++) {
		struct peer_state *ps = &st[v];
		double tx = bench_median(ps->round_ns, ROUNDS);

		percentiles(ps->lat, ps->nlat, &p50, &p99, NULL);
		if (v == P_GMEM)
			base = tx;
		out_table_row(t, pname[v], fmt_ns(tx), fmt_ns(p50),
			      fmt_ns(p99), ps->bad ? "lost" : "kept",
			      fmt_ratio(ratio(tx, base)));
		json_obj_begin(j, NULL);
		json_str(j, "variant", pname[v]);
		json_dbl(j, "ns_per_transaction", tx);
		json_dbl(j, "p50_ns", p50);
		json_dbl(j, "p99_ns", p99);
		json_bool(j, "contents_preserved", ps->bad == 0);
		json_dbl(j, "vs_libgmem", ratio(tx, base));
		json_obj_end(j);
	}
	json_arr_end(j);
	json_obj_end(j);
	out_line("\npeer: OVMF DMA pattern with the device in another process, "
		 "%s transactions of 1-2 pages on a %s guest (shared, one "
		 "device request, private)", fmt_count(per * ROUNDS),
		 fmt_bytes(PEER_SIZE));
	out_table_print(t);
	out_line("  libgmem-peer: the device attached with gmem_attach(), "
		 "private pages SIGBUS in it; libgmem-fd: the device maps "
		 "gmem_get_fd() itself (unguarded, for information: what the "
		 "guarantee costs); qemu-vhost: the device maps the shared "
		 "memfd, every conversion punches (contents lost, a private "
		 "page reads as zeros there)");
	if (st[P_GMEM].bad) {
		out_error("bench: peer: in-place contents were lost");
		ret = EXIT_FAIL;
	}
out:
	out_progress_end();
	for (v = 0; v < NR_P; v++) {
		device_stop(&st[v]);
		if (st[v].created)
			side_destroy(&st[v].s);
		free(st[v].lat);
	}
	return ret;
}
