// SPDX-License-Identifier: MIT
/*
 * quickstart.c - the life of one page of confidential guest memory.
 *
 * A VMM creates guest RAM private (as a confidential guest's memory
 * starts), loads firmware into it, and later the guest shares a buffer
 * with the host for I/O and takes it back.  The contents never move: the
 * same page is private, then shared, then private again.  A stray host
 * access to private memory raises SIGBUS, which we catch and report.
 *
 * Build: make demo  (or: cc quickstart.c $(pkg-config --cflags --libs gmem))
 */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <gmem.h>

#define GUEST_RAM	(64ULL << 20)
#define PAGE		4096ULL
#define BOUNCE_BUF	(16 * PAGE)	/* where the guest puts its I/O page */

static sigjmp_buf fault_jmp;
static void *fault_addr;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	fault_addr = si->si_addr;
	siglongjmp(fault_jmp, sig);
}

static int die(const char *what, int err)
{
	fprintf(stderr, "quickstart: %s: %s\n", what, strerror(-err));
	return 1;
}

static int convert(struct gmem *g, uint64_t off, uint64_t len, int private)
{
	struct gmem_attributes a = {
		.offset = off,
		.size = len,
		.attributes = private ? GMEM_ATTR_PRIVATE : 0,
	};

	return gmem_set_attributes(g, &a);
}

int main(void)
{
	struct gmem_create_args args = {
		.size = GUEST_RAM,
		.flags = GMEM_FLAG_MMAP,	/* private by default */
	};
	struct sigaction sa = { .sa_sigaction = on_sigbus,
				.sa_flags = SA_SIGINFO };
	char firmware[2 * PAGE], msg[64];
	struct gmem_stats st;
	struct gmem *g;
	char *ram;
	ssize_t n;
	int ret;

	ret = gmem_create(&args, &g);
	if (ret)
		return die("gmem_create", ret);
	printf("1. created %llu MiB of guest RAM, all private\n",
	       GUEST_RAM >> 20);

	memset(firmware, 0x90, sizeof(firmware));
	n = gmem_populate(g, 0, firmware, sizeof(firmware));
	if (n < 0)
		return die("gmem_populate", (int)n);
	printf("2. loaded %zd bytes of firmware into private memory\n", n);

	ret = gmem_mmap(g, 0, GUEST_RAM, PROT_READ | PROT_WRITE, (void **)&ram);
	if (ret)
		return die("gmem_mmap", ret);
	printf("3. mapped a host view at %p\n", (void *)ram);

	/* The guest writes a message while the page is private... */
	snprintf(msg, sizeof(msg), "hello from the guest");
	n = gmem_populate(g, BOUNCE_BUF, msg, sizeof(msg));
	if (n < 0)
		return die("gmem_populate", (int)n);
	/* ...and shares the page with the host for I/O. */
	ret = convert(g, BOUNCE_BUF, PAGE, 0);
	if (ret)
		return die("convert to shared", ret);
	printf("4. guest shared page 0x%llx; host reads: \"%s\"\n",
	       BOUNCE_BUF, ram + BOUNCE_BUF);

	strcpy(ram + BOUNCE_BUF, "reply from the host");
	ret = convert(g, BOUNCE_BUF, PAGE, 1);
	if (ret)
		return die("convert to private", ret);
	printf("5. guest took page 0x%llx back; same page, no copy\n",
	       BOUNCE_BUF);

	ret = convert(g, BOUNCE_BUF, PAGE, 0);
	if (ret)
		return die("convert to shared", ret);
	printf("6. shared again, contents kept: \"%s\"\n", ram + BOUNCE_BUF);
	ret = convert(g, BOUNCE_BUF, PAGE, 1);
	if (ret)
		return die("convert to private", ret);

	sigaction(SIGBUS, &sa, NULL);
	if (sigsetjmp(fault_jmp, 1) == 0) {
		volatile char c = ram[BOUNCE_BUF + 8];	/* a stray access */

		printf("7. ERROR: read private memory (%d)\n", c);
		return 1;
	}
	printf("7. stray host read of private memory: SIGBUS at %p "
	       "(offset 0x%llx)\n", fault_addr,
	       (unsigned long long)((char *)fault_addr - ram));

	ret = gmem_stat(g, &st, sizeof(st));
	if (ret)
		return die("gmem_stat", ret);
	printf("8. stats: %llu KiB shared, %llu MiB private, %llu state "
	       "range(s), %llu conversions, %llu KiB allocated\n",
	       (unsigned long long)st.shared >> 10,
	       (unsigned long long)st.priv >> 20,
	       (unsigned long long)st.nr_ranges,
	       (unsigned long long)st.conversions,
	       (unsigned long long)st.allocated >> 10);

	gmem_munmap(g, ram, GUEST_RAM);
	gmem_close(g);
	return 0;
}
