/* SPDX-License-Identifier: MIT */
/*
 * migrate.h - what the files of "gmemctl migrate" share: the protocol
 * between the source and the destination process, the digest both
 * compute of their file for the final check, and the source's state.
 * builtin-migrate.c owns the command (options, fork, report),
 * migrate-source.c the source (the file, the writers, the rounds, the
 * check), migrate-dest.c the destination, the socket I/O and the digest.
 *
 * The protocol, over one AF_UNIX stream socket (socketpair + fork, so
 * both ends are this binary on this machine: structs go as they are):
 *
 *   source -> destination   struct mig_msg; after MIG_FULL, MIG_DELTA
 *                           and MIG_BASELINE, one snapshot stream.  A
 *                           stream is self-delimiting (restore and apply
 *                           read up to its END record and nothing
 *                           after), so messages follow each other with
 *                           no length in front.
 *   destination -> source   struct mig_reply for every message but
 *                           MIG_BYE; after MIG_CHECK's, a struct
 *                           mig_digest and its chunk hashes.
 *
 * The destination answers each message before it reads the next one and
 * exits after a failure, once it has said why: the source then gets
 * EPIPE from its save or the reply, never a hang.
 *
 * Of the source, one struct mig_source: the command (builtin-migrate.c)
 * fills in the options and the destination, migrate-source.c does the
 * rest and leaves the results there for the report.
 */
#ifndef GMEMCTL_MIGRATE_H
#define GMEMCTL_MIGRATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "gmemctl.h"

#define MIG_MAGIC	0x47494d47U	/* "GMIG" */
#define MIG_RUN		(4 * MiB)	/* the layout's unit: shared, private */
#define MIG_CHUNK	(1 * MiB)	/* the unit of the contents check */
#define MIG_PAGE	4096		/* what a writer writes at a time */
#define MIG_MAX_ROUNDS	1000		/* --max-rounds at most */

enum mig_type {
	MIG_FULL = 1,		/* a full stream: restore a new file */
	MIG_DELTA,		/* an incremental stream: apply it */
	MIG_CHECK,		/* compute the digest and send it */
	MIG_BASELINE,		/* drop the file, restore a full stream */
	MIG_BYE,		/* done: exit 0, no reply */
};

struct mig_msg {
	uint32_t magic;
	uint32_t type;		/* enum mig_type */
	uint64_t round;
};

struct mig_reply {
	uint32_t magic;
	uint32_t type;		/* the message answered */
	int32_t status;		/* 0 or the library's -errno */
	uint32_t what;		/* enum mig_what: the call that failed */
	uint64_t bytes;		/* stream bytes read (restore/apply) */
	uint64_t data;		/* contents bytes among them */
	uint64_t ns;		/* the call's time */
};

/* Which destination call a failed reply names. */
enum mig_what {
	MIG_WHAT_NONE,
	MIG_WHAT_RESTORE,	/* gmem_snapshot_restore */
	MIG_WHAT_APPLY,		/* gmem_snapshot_apply */
	MIG_WHAT_DIGEST,	/* reading the file for the check */
	MIG_WHAT_PROTOCOL,	/* a message it did not expect */
};

/*
 * What both sides compare: gmem_stat()'s byte counts, the state runs
 * (gmem_get_attributes()), the allocated runs of the backing (SEEK_DATA)
 * and a hash of every MIG_CHUNK of contents, private pages included,
 * read from the backing file (gmem_get_fd(3)) with pread(2): not through
 * the snapshot code whose work is being checked, and not through a host
 * view, which private pages are kept out of.
 */
struct mig_digest {
	uint64_t size, allocated, shared, priv, poisoned, parked;
	uint64_t state_runs, state_hash;
	uint64_t data_runs, alloc_hash;
	uint64_t nchunks;	/* hashes that follow, one per MIG_CHUNK */
};

/*
 * The digest of g into *d and a new array *chunks (the caller frees it)
 * of d->nchunks hashes; progress (may be NULL) gets bytes read.  0 or
 * -errno.
 */
int mig_digest(struct gmem *g, struct mig_digest *d, uint64_t **chunks,
	       void (*progress)(uint64_t done));

/* All of len bytes, or -errno (-ECONNRESET: the other end closed). */
int mig_read(int fd, void *buf, size_t len);
int mig_write(int fd, const void *buf, size_t len);

/* ---- the source ---------------------------------------------------------- */

struct mig_opts {
	uint64_t size;			/* bytes, a multiple of MIG_RUN */
	uint64_t rate;			/* bytes per second, both writers */
	uint64_t converge;		/* stop and copy below this */
	uint64_t max_rounds;		/* incremental, while writing */
	uint64_t private_pct;		/* 0 to 100 */
	uint64_t seed;			/* contents and pages written */
	bool json, bench;
};

enum { MIG_SHARED, MIG_PRIVATE, MIG_KINDS };

/*
 * One writer thread, paced: it may fall behind (a busy machine) but
 * makes up at most MIG_BURST_MS of it, so a stall does not turn into a
 * burst the guest would never have made.  It never prints.
 */
#define MIG_BURST_MS	50

struct mig_writer {
	pthread_t tid;
	bool started;
	char *view;			/* MIG_SHARED: the host view */
	struct gmem_binding *b;		/* MIG_PRIVATE: the guest's side */
	uint64_t ps;			/* the file's page size */
	int kind;
	const uint64_t *runs;		/* offsets of this kind's runs */
	uint64_t nruns;
	uint64_t rate;			/* bytes per second */
	uint64_t seed;
	atomic_bool *stop;
	_Atomic uint64_t pages;		/* written so far */
	int err;			/* why it stopped early, -errno */
};

struct mig_round {
	const char *kind;		/* full, incremental, stop-and-copy */
	uint64_t data;			/* contents bytes in the stream */
	uint64_t stream;		/* bytes of the stream */
	uint64_t ns;			/* message to reply */
	uint64_t apply_ns;		/* the destination's restore or apply */
	uint64_t written;		/* bytes the writers wrote meanwhile */
};

struct mig_source {
	const struct mig_opts *o;
	int sock;			/* to the destination */
	pid_t dest;			/* its pid; 0 once reaped */
	struct gmem *g;
	char *view;			/* a host view of the whole file */
	struct gmem_binding *b;		/* the whole file, for the guest */
	uint64_t *runs[MIG_KINDS];	/* each kind's run offsets */
	uint64_t nruns[MIG_KINDS];
	struct mig_writer w[MIG_KINDS];
	atomic_bool stop;
	struct mig_round *rounds;	/* max_rounds + 2 */
	unsigned int nrounds;
	/* Results, for the report. */
	bool converged, equal;
	uint64_t build_ns;		/* making the file */
	uint64_t live_ns;		/* pre-copy rounds */
	uint64_t downtime_ns;		/* writers stopped to the last reply */
	uint64_t total_ns;		/* round 0 to the last reply */
	uint64_t full_ns, full_data;	/* the baseline */
	uint64_t writer_ns, written;	/* the writers' time and bytes */
	char differs[256];		/* what the check found different */
};

/* Make the file, its view and the layout: 0 or -errno (said nothing). */
int mig_build(struct mig_source *s);
/*
 * Migrate, check, measure the baseline: EXIT_OK (equal or not:
 * s->equal), EXIT_FAIL or EXIT_SKIP once said why.
 */
int mig_migrate(struct mig_source *s);
/* What mig_build() made, and the rounds. */
void mig_source_free(struct mig_source *s);

/* ---- the destination ----------------------------------------------------- */

/* The destination process: serve sock until MIG_BYE; an exit code. */
int mig_destination(int sock);

/* The name of the call enum mig_what names. */
const char *mig_what_name(uint32_t what);

#endif /* GMEMCTL_MIGRATE_H */
