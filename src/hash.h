/* SPDX-License-Identifier: MIT */
/*
 * hash.h - the checksum of the snapshot stream (snapshot.c, restore.c):
 * XXH64, as the xxHash specification defines it (v0.8, "XXH64"), so a
 * stream can be checked by any XXH64 implementation, xxhsum included.
 *
 * Why XXH64 and not CRC32C: it runs at memory speed in portable C (four
 * independent 64-bit lanes, no table, no CPU feature to probe), which the
 * save path needs to stay near the plain copy it is measured against
 * (bench/bench_snapshot.c); a 64-bit value makes an accidental match of a
 * corrupted record negligible.  It detects corruption, not tampering: it
 * is not a MAC.  Written here (about 80 lines) rather than linked from
 * Debian's libxxhash, to keep libgmem free of dependencies.
 *
 * Locking: none; pure functions.
 */
#ifndef GMEM_HASH_H
#define GMEM_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t gmem_hash64(const void *buf, size_t len, uint64_t seed);

#endif /* GMEM_HASH_H */
