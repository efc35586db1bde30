// SPDX-License-Identifier: MIT
/*
 * bench-side.c - the variants "gmemctl bench" compares, behind one
 * interface (bench.h): libgmem with and without a host view, QEMU's
 * bitmap and double backing with and without shared discard
 * (bench/qemu_bitmap.c), and the bare system calls (bench/floor.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "bench.h"
#include "gmemctl.h"

const char *const vname[NR_V] = {
	"libgmem", "qemu", "qemu-nodiscard", "floor", "libgmem-noview",
};

int side_create(struct side *s, enum variant v, uint64_t size)
{
	struct gmem_create_args args = { .size = size,
					 .flags = GMEM_FLAG_MMAP };
	void *view;
	int ret;

	memset(s, 0, sizeof(*s));
	s->v = v;
	s->size = size;
	switch (v) {
	case V_NOVIEW:
		return gmem_create(&args, &s->g);
	case V_GMEM:
		ret = gmem_create(&args, &s->g);
		if (ret)
			return ret;
		ret = gmem_mmap(s->g, 0, size, PROT_READ | PROT_WRITE, &view);
		if (ret) {
			gmem_close(s->g);
			return ret;
		}
		s->view = view;
		return 0;
	case V_QEMU:
	case V_QEMU_ND:
		return qemu_dual_create(&s->q, size);
	default:
		return floor_uffd_create(&s->f, size);
	}
}

void side_destroy(struct side *s)
{
	switch (s->v) {
	case V_GMEM:
	case V_NOVIEW:
		if (s->view)
			gmem_munmap(s->g, s->view, s->size);
		gmem_close(s->g);
		break;
	case V_QEMU:
	case V_QEMU_ND:
		qemu_dual_destroy(&s->q);
		break;
	default:
		floor_uffd_destroy(&s->f);
		break;
	}
}

static int punch(int fd, uint64_t off, uint64_t len)
{
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)len))
		return -errno;
	return 0;
}

int side_convert(struct side *s, uint64_t off, uint64_t len, bool to_private)
{
	int ret;

	switch (s->v) {
	case V_GMEM:
	case V_NOVIEW:
		return convert_range(s->g, off, len, to_private, NULL);
	case V_QEMU:
		return qemu_dual_convert(&s->q, off, len, to_private);
	case V_QEMU_ND:
		/* kvm_convert_memory() with shared discard disabled. */
		ret = qbm_state_change(&s->q.attr, off, len, to_private);
		if (ret || to_private)
			return ret;
		return punch(s->q.private_fd, off, len);
	default:
		return floor_uffd_convert(&s->f, off, len, to_private);
	}
}

/* The host's address of offset 0: where a device touches shared pages. */
char *side_host(struct side *s)
{
	switch (s->v) {
	case V_GMEM:
	case V_NOVIEW:
		return s->view;
	case V_QEMU:
	case V_QEMU_ND:
		return s->q.host;
	default:
		return s->f.map;
	}
}

/* The guest accepts [off, +len): its private pages get memory. */
int side_accept(struct side *s, uint64_t off, uint64_t len)
{
	int fd;

	switch (s->v) {
	case V_GMEM:
	case V_NOVIEW:
		return gmem_fallocate(s->g, FALLOC_FL_KEEP_SIZE, off, len);
	case V_QEMU:
	case V_QEMU_ND:
		fd = s->q.private_fd;
		break;
	default:
		fd = s->f.fd;
		break;
	}
	return fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) ?
	       -errno : 0;
}

static uint64_t fd_allocated(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? 0 : (uint64_t)st.st_blocks * 512;
}

/* Memory behind the region: every backing file. */
uint64_t side_allocated(struct side *s)
{
	struct gmem_stats st;

	switch (s->v) {
	case V_GMEM:
	case V_NOVIEW:
		return gmem_stat(s->g, &st, sizeof(st)) ? 0 : st.allocated;
	case V_QEMU:
	case V_QEMU_ND:
		return fd_allocated(s->q.shared_fd) +
		       fd_allocated(s->q.private_fd);
	default:
		return fd_allocated(s->f.fd);
	}
}

/* Memory that tracks the state: the tree, the bitmap, or nothing. */
uint64_t side_tracking(struct side *s, uint64_t *nr_ranges)
{
	struct gmem_stats st;

	*nr_ranges = 0;
	switch (s->v) {
	case V_GMEM:
	case V_NOVIEW:
		if (gmem_stat(s->g, &st, sizeof(st)))
			return 0;
		*nr_ranges = st.nr_ranges;
		return st.state_bytes;
	case V_QEMU:
	case V_QEMU_ND:
		return qbm_bytes(&s->q.attr);
	default:
		return 0;
	}
}

