// SPDX-License-Identifier: MIT
/*
 * test_version.c - the version macros of gmem.h and the library's
 * version functions agree, and gmem_check_version() and
 * GMEM_CHECK_VERSION() say "this version or newer" the same way.  The
 * build's own numbers (soname, gmem.pc) are checked by tests/check-lib.sh.
 */
#include "gmem.h"
#include "harness.h"

TEST(macros_and_functions_agree)
{
	ASSERT_EQ(gmem_version_major(), GMEM_VERSION_MAJOR);
	ASSERT_EQ(gmem_version_minor(), GMEM_VERSION_MINOR);
	ASSERT_EQ(GMEM_VERSION, GMEM_VERSION_MAJOR * 10000 +
		  GMEM_VERSION_MINOR * 100 + GMEM_VERSION_PATCH);
	ASSERT_LT(GMEM_VERSION_MINOR, 100);
	ASSERT_LT(GMEM_VERSION_PATCH, 100);
#if GMEM_VERSION < GMEM_VERSION_NUM(0, 4, 0)
	ASSERT_TRUE(0);		/* the version functions came with 0.4 */
#endif
}

/* { major, minor, this version or newer } relative to the library's. */
static const struct {
	int dmajor, dminor;
	bool ok;
} cases[] = {
	{ 0, 0, true },		/* this very version */
	{ 0, -1, true },	/* an older minor */
	{ -1, 0, true },	/* an older major, any minor */
	{ -1, 99, true },
	{ 0, 1, false },	/* a newer minor */
	{ 1, 0, false },	/* a newer major */
	{ 1, -99, false },
};

TEST(check_version)
{
	int major = gmem_version_major(), minor = gmem_version_minor();
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ma = major + cases[i].dmajor, mi = minor + cases[i].dminor;

		if (gmem_check_version(ma, mi) != cases[i].ok ||
		    GMEM_CHECK_VERSION(ma, mi) != cases[i].ok)
			TH_LOG("%d.%d against %d.%d", ma, mi, major, minor);
		ASSERT_EQ(gmem_check_version(ma, mi), cases[i].ok);
		ASSERT_EQ(GMEM_CHECK_VERSION(ma, mi), cases[i].ok);
	}
}
