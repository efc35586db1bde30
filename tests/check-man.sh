#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# check-man.sh - every man page renders from the source tree, as the
# README says to read them (man -l man/PAGE), with every groff warning on
# (-ww) and none printed.  An alias page is a symlink to the page it
# shares: a ".so man3/..." line would only resolve under an installed
# man tree, so one is a failure here (make install writes them).
#
# With GMEMCTL set (make check-man), gmemctl(1) names every command of
# "gmemctl --help" and every option each command's --help prints.
#
# Usage: tests/check-man.sh page...   (make check-man)
set -uo pipefail

[[ $# -gt 0 ]] || { echo "usage: $0 page..." >&2; exit 2; }
if ! command -v man > /dev/null; then
	echo "# check-man: FAIL: no man(1) (Debian: man-db)"
	exit 1
fi
fails=0
for page in "$@"; do
	if [[ ! -L $page ]] && grep -q '^\.so ' "$page"; then
		echo "# check-man: FAIL: $page: a .so request; make it a symlink"
		fails=$((fails + 1))
		continue
	fi
	out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings=w -l "$page" 2>&1 \
	      > /dev/null)
	rc=$?
	if [[ $rc -ne 0 || -n $out ]]; then
		echo "# check-man: FAIL: $page (exit $rc):"
		printf '%s\n' "$out" | sed 's/^/#   /'
		fails=$((fails + 1))
	fi
done
page=man/gmemctl.1
if [[ -n ${GMEMCTL:-} ]]; then
	text=$(MANWIDTH=200 man -l "$page" 2> /dev/null)
	cmds=$("$GMEMCTL" --help | sed -n '/^commands:/,/^$/s/^  \([a-z]\{1,\}\) .*/\1/p')
	[[ -n $cmds ]] || { echo "# check-man: FAIL: no commands in $GMEMCTL --help"; fails=$((fails + 1)); }
	for cmd in $cmds; do
		grep -Eq "^ *([a-z]+, )*$cmd(,|\$)" <<< "$text" ||
			{ echo "# check-man: FAIL: $page: no section for gmemctl $cmd"; fails=$((fails + 1)); }
		for opt in $("$GMEMCTL" "$cmd" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
			[[ $opt == --help ]] && continue
			grep -q -- "$opt\b" <<< "$text" ||
				{ echo "# check-man: FAIL: $page: gmemctl $cmd $opt is missing"; fails=$((fails + 1)); }
		done
	done
fi
if [[ $fails -gt 0 ]]; then
	echo "# check-man: $fails failed"
	exit 1
fi
echo "# check-man: $# pages render without a warning${GMEMCTL:+; gmemctl(1) has every command and option}"
