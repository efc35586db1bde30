#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# check-lib.sh - what a program linking libgmem sees, as a package ships it.
#
# Usage: tests/check-lib.sh BUILD_DIR VERSION   (make check-lib; CC, CFLAGS
#        and LDFLAGS from the environment, as the build uses them)
#
# 1. libgmem.a defines, as global symbols, exactly the names of
#    src/libgmem.map's global: lists, the public API: the library's
#    internal functions (sys_close, gmem_lock, ...) are local to it.
# 2. libgmem.so exports exactly the same names.
# 3. A program that defines its own sys_close() and gmem_lock() and calls
#    the library links against libgmem.a and runs.
# 4. The version is the one of include/gmem.h everywhere: the .so's file
#    name and soname, gmem.pc, gmem_version_major/minor().
# Names the compiler makes (__asan_*, __gcov_*: starting with "__") are
# not the library's and are left out of 1 and 2.
set -euo pipefail

[[ $# -eq 2 ]] || { echo "usage: $0 BUILD_DIR VERSION" >&2; exit 2; }
o=$1 version=$2
major=${version%%.*} rest=${version#*.} minor=${rest%%.*}
cc=${CC:-cc}
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
	echo "# check-lib: FAIL: $*"
	fails=$((fails + 1))
}

# The map's global names, one a line, sorted.
sed -n '/global:/,/local:\|}/{s/^[[:space:]]*\([a-z_][a-z0-9_]*\);.*/\1/p}' \
	src/libgmem.map | sort -u > "$tmp/map"
[[ -s $tmp/map ]] || fail "no global names in src/libgmem.map"

nm -g --defined-only "$o/libgmem.a" | awk 'NF == 3 { print $3 }' |
	grep -v '^__' | sort -u > "$tmp/static" || true
if ! diff -u "$tmp/map" "$tmp/static" > "$tmp/diff"; then
	fail "$o/libgmem.a: global symbols differ from src/libgmem.map" \
	     "(+: visible, not in the map)"
	sed 's/^/#   /' "$tmp/diff"
fi

nm -D --defined-only "$o/libgmem.so" | awk 'NF == 3 && $2 != "A" { print $3 }' |
	sed 's/@.*//' | grep -v '^__' | sort -u > "$tmp/shared" || true
if ! diff -u "$tmp/map" "$tmp/shared" > "$tmp/diff"; then
	fail "$o/libgmem.so: exported symbols differ from src/libgmem.map"
	sed 's/^/#   /' "$tmp/diff"
fi

# Names the library uses inside, defined again by the application.
cat > "$tmp/app.c" <<'APP'
#include <stdio.h>
#include "gmem.h"

int sys_close(int fd);
int sys_close(int fd) { return fd; }
void gmem_lock(void);
void gmem_lock(void) { }

int main(void)
{
	struct gmem_create_args args = { .size = 1 << 20 };
	struct gmem *g;
	int ret = gmem_create(&args, &g);

	if (ret) {
		printf("gmem_create: %d\n", ret);
		return 1;
	}
	gmem_lock();
	gmem_close(g);
	return sys_close(0);
}
APP
# shellcheck disable=SC2086 # CFLAGS and LDFLAGS are lists of words
if ! $cc $CFLAGS "$tmp/app.c" -o "$tmp/app" "$o/libgmem.a" $LDFLAGS \
	> "$tmp/out" 2>&1; then
	fail "a program defining sys_close() and gmem_lock() does not" \
	     "link against $o/libgmem.a"
	sed 's/^/#   /' "$tmp/out"
elif ! "$tmp/app" > "$tmp/out" 2>&1; then
	fail "the program defining sys_close() and gmem_lock() fails"
	sed 's/^/#   /' "$tmp/out"
fi

soname=$(readelf -d "$o/libgmem.so.$version" 2>/dev/null |
	 sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $soname == "libgmem.so.$major" ]] ||
	fail "$o/libgmem.so.$version: soname '$soname', not libgmem.so.$major"
pc=$(sed -n 's/^Version: //p' "$o/gmem.pc")
[[ $pc == "$version" ]] || fail "$o/gmem.pc: Version '$pc', not $version"
cat > "$tmp/ver.c" <<'VER'
#include <stdio.h>
#include "gmem.h"

int main(void)
{
	printf("%d.%d\n", gmem_version_major(), gmem_version_minor());
	return 0;
}
VER
# shellcheck disable=SC2086
if $cc $CFLAGS "$tmp/ver.c" -o "$tmp/ver" "$o/libgmem.so.$version" \
	-Wl,-rpath,"$(cd "$o" && pwd)" $LDFLAGS > "$tmp/out" 2>&1; then
	got=$("$tmp/ver")
	[[ $got == "$major.$minor" ]] ||
		fail "libgmem.so says version $got, the build $major.$minor"
else
	fail "a program calling gmem_version_major() does not link" \
	     "against libgmem.so"
	sed 's/^/#   /' "$tmp/out"
fi

if [[ $fails -gt 0 ]]; then
	echo "# check-lib: $fails failed"
	exit 1
fi
echo "# check-lib: libgmem.a and libgmem.so $version export only the" \
     "$(wc -l < "$tmp/map") names of src/libgmem.map"
