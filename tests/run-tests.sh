#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# run-tests.sh - run libgmem test programs and sum their results.
#
# Usage: tests/run-tests.sh [-t timeout_seconds] prog...
#
# Runs each program in turn under timeout(1) (default 300 s per program),
# passing its TAP output through.  Every program ends with the line
# "N passed, N failed, N skipped"; those are summed and printed as the last
# line.  A program that times out, dies of a signal, prints no closing line
# or exits non-zero with 0 failures counts as one more failure.  Exits 1 if
# anything failed, else 0.
#
# GMEM_TEST_WRAPPER, if set, is put in front of every program, split on
# blanks, e.g. GMEM_TEST_WRAPPER="valgrind --error-exitcode=99 -q".

set -u

usage() {
	echo "usage: $0 [-t timeout_seconds] prog..." >&2
	exit 2
}

timeout_s=300
while getopts "t:h" opt; do
	case "$opt" in
	t) timeout_s=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[[ $# -gt 0 ]] || usage
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || usage

read -r -a wrapper <<< "${GMEM_TEST_WRAPPER:-}"
closing_re='^([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$'
passed=0
failed=0
skipped=0
log=$(mktemp) || exit 2
trap 'rm -f "$log"' EXIT

for prog in "$@"; do
	echo "# run-tests: $prog"
	if [[ ! -x $prog ]]; then
		echo "# run-tests: $prog: not an executable file"
		failed=$((failed + 1))
		continue
	fi
	start=$SECONDS
	timeout -k 10 "$timeout_s" ${wrapper[@]+"${wrapper[@]}"} "$prog" \
		< /dev/null | tee "$log"
	rc=${PIPESTATUS[0]}
	elapsed=$((SECONDS - start))

	line=$(grep -E "$closing_re" "$log" | tail -n 1)
	if [[ $rc -eq 124 ]] ||
	   [[ $rc -eq 137 && $elapsed -ge $timeout_s ]]; then
		echo "# run-tests: $prog: timed out after ${timeout_s} s"
		failed=$((failed + 1))
		continue
	fi
	if [[ $rc -gt 128 ]]; then
		echo "# run-tests: $prog: killed by signal $((rc - 128))"
		failed=$((failed + 1))
		continue
	fi
	if [[ ! $line =~ $closing_re ]]; then
		echo "# run-tests: $prog: no closing line (exit status $rc)"
		failed=$((failed + 1))
		continue
	fi
	p=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]} s=${BASH_REMATCH[3]}
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
	if [[ $rc -ne 0 && $f -eq 0 ]]; then
		echo "# run-tests: $prog: exit status $rc with 0 failures"
		failed=$((failed + 1))
	fi
done

echo "$passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
