// SPDX-License-Identifier: MIT
/*
 * version.c - the version of the library a program runs with, which may
 * be newer than the gmem.h it was compiled against (GMEM_VERSION_*).
 */
#include "internal.h"

GMEM_EXPORT int gmem_version_major(void)
{
	return GMEM_VERSION_MAJOR;
}

GMEM_EXPORT int gmem_version_minor(void)
{
	return GMEM_VERSION_MINOR;
}

/* True if this library is major.minor or newer (as GMEM_CHECK_VERSION). */
GMEM_EXPORT bool gmem_check_version(int major, int minor)
{
	return GMEM_VERSION_MAJOR > major ||
	       (GMEM_VERSION_MAJOR == major && GMEM_VERSION_MINOR >= minor);
}
