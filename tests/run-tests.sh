#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# run-tests.sh - run libgmem test programs and sum their results.
#
# Usage: tests/run-tests.sh [-t timeout_seconds] [NAME=value]... prog...
#                            [-- [NAME=value]... prog...]...
#
# Runs each program in turn under timeout(1) (default 300 s per program),
# passing its TAP output through.  Every program ends with the line
# "N passed, N failed, N skipped"; those are summed and printed as the last
# line.  A program that times out, dies of a signal, prints no closing line
# or exits non-zero with 0 failures counts as one more failure.  Exits 1 if
# anything failed, else 0.
#
# Each "--" starts another group of programs, run with the NAME=value
# words that open the group added to their environment, e.g.
# "-- GMEM_TEST_BACKEND=kvm prog...": make check runs the suite once per
# backend that way.  With several groups, each group's sums are printed
# too, as "# run-tests: NAME=value: N passed, N failed, N skipped"
# ("default" for a group without settings), before the overall last line.
#
# Before that last line, a summary: every failed test as
# "[NAME=value ]prog: test" (or what happened to the program), then the
# skipped tests counted by the reason they gave, most frequent first.
#
# GMEM_TEST_WRAPPER, if set, is put in front of every program, split on
# blanks, e.g. GMEM_TEST_WRAPPER="valgrind --error-exitcode=99 -q".

set -u

usage() {
	echo "usage: $0 [-t timeout_seconds] [NAME=value]... prog..." \
	     "[-- [NAME=value]... prog...]..." >&2
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
failures=$(mktemp) || exit 2	# one line per failed test or program
skips=$(mktemp) || exit 2	# one line per skipped test: its reason
trap 'rm -f "$log" "$failures" "$skips"' EXIT

groups=0
for arg in "$@"; do
	[[ $arg == -- ]] && groups=$((groups + 1))
done
settings=()		# the current group's NAME=value words
group_start=1		# still reading them
g_passed=0 g_failed=0 g_skipped=0

# Print the sums of the group that ends, if there are several groups.
end_group() {
	local name=${settings[*]:-default}

	if [[ $groups -gt 0 ]]; then
		echo "# run-tests: $name: $((passed - g_passed)) passed," \
		     "$((failed - g_failed)) failed, $((skipped - g_skipped))" \
		     "skipped"
	fi
	g_passed=$passed g_failed=$failed g_skipped=$skipped
}

for prog in "$@"; do
	if [[ $prog == -- ]]; then
		end_group
		settings=()
		group_start=1
		continue
	fi
	if [[ $group_start -eq 1 && $prog =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; then
		settings+=("$prog")
		continue
	fi
	group_start=0
	label="${settings[*]:+${settings[*]} }$prog"
	echo "# run-tests: $label"
	if [[ ! -x $prog ]]; then
		echo "# run-tests: $prog: not an executable file"
		echo "$label: not an executable file" >> "$failures"
		failed=$((failed + 1))
		continue
	fi
	start=$SECONDS
	timeout -k 10 "$timeout_s" env ${settings[@]+"${settings[@]}"} \
		${wrapper[@]+"${wrapper[@]}"} "$prog" < /dev/null | tee "$log"
	rc=${PIPESTATUS[0]}
	elapsed=$((SECONDS - start))

	line=$(grep -E "$closing_re" "$log" | tail -n 1)
	awk -v l="$label" 'sub(/^not ok [0-9]+ /, "") { print l ": " $0 }' \
		"$log" >> "$failures"
	sed -n 's/^ok [0-9]* .* # SKIP \(.*\)/\1/p' "$log" >> "$skips"
	if [[ $rc -eq 124 ]] ||
	   [[ $rc -eq 137 && $elapsed -ge $timeout_s ]]; then
		echo "# run-tests: $prog: timed out after ${timeout_s} s"
		echo "$label: timed out after ${timeout_s} s" >> "$failures"
		failed=$((failed + 1))
		continue
	fi
	if [[ $rc -gt 128 ]]; then
		echo "# run-tests: $prog: killed by signal $((rc - 128))"
		echo "$label: killed by signal $((rc - 128))" >> "$failures"
		failed=$((failed + 1))
		continue
	fi
	if [[ ! $line =~ $closing_re ]]; then
		echo "# run-tests: $prog: no closing line (exit status $rc)"
		echo "$label: no closing line (exit status $rc)" >> "$failures"
		failed=$((failed + 1))
		continue
	fi
	p=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]} s=${BASH_REMATCH[3]}
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
	if [[ $rc -ne 0 && $f -eq 0 ]]; then
		echo "# run-tests: $prog: exit status $rc with 0 failures"
		echo "$label: exit status $rc with 0 failures" >> "$failures"
		failed=$((failed + 1))
	fi
done
end_group

if [[ -s $failures ]]; then
	echo "# run-tests: failed ($(wc -l < "$failures")):"
	sed 's/^/#   /' "$failures"
fi
if [[ -s $skips ]]; then
	echo "# run-tests: skipped ($(wc -l < "$skips")), by reason:"
	sort "$skips" | uniq -c | sort -s -k1,1nr | sed 's/^ */#   /'
fi
echo "$passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
