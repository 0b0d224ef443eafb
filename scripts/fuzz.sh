#!/bin/sh
# Runs every fuzz target of the module in the current directory.
#
#   FUZZTIME unset (make test's slice): each target runs the number of
#   executions its //fuzz:budget line names, e.g. "//fuzz:budget 200000"
#   right above "func FuzzX". A count has no wall-clock deadline, so a loaded
#   machine only makes the slice slower, never red. A target without a budget
#   is an error: every new target must say how much of it make test runs.
#   FUZZTIME=5m (make fuzz): each target runs that long.
#   FUZZ_BUDGET_DIVISOR=N divides every budget (at least 1000 executions):
#   the whole slice, shorter, for repeated runs.
#
# A target fails the run only on a real finding: a failing input written
# under testdata/fuzz/<target>/, a panic, a t.Error/t.Fatal (also in the seed
# corpus), or a build error. Go 1.26's coordinator can end a *duration* run
# with a bare "context deadline exceeded" and no input written (go.dev/issue/75804,
# fixed in Go 1.27): in duration mode that one outcome is reported as the
# toolchain race and not counted as a finding.
set -eu
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

found=0
failed=""
raced=0
for dir in $($GO list -f '{{.Dir}}' ./...); do
	grep -ls '^func Fuzz' "$dir"/*_test.go >/dev/null 2>&1 || continue
	pkg=$($GO list -f '{{.ImportPath}}' "$dir")
	for name in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do
		found=$((found + 1))
		if [ -n "$FUZZTIME" ]; then
			budget=$FUZZTIME
		else
			n=$(grep -h -B1 "^func $name(" "$dir"/*_test.go | sed -n 's|^//fuzz:budget \([0-9][0-9]*\)$|\1|p')
			if [ -z "$n" ]; then
				echo "fuzz: $pkg $name has no //fuzz:budget line above it (executions make test runs)" >&2
				failed="$failed $pkg.$name(no-budget)"
				continue
			fi
			# FUZZ_BUDGET_DIVISOR (default 1) scales every budget down, for
			# repeated runs of the whole slice (issue 16's 20-run check).
			n=$((n / ${FUZZ_BUDGET_DIVISOR:-1}))
			[ "$n" -ge 1000 ] || n=1000
			budget=${n}x
		fi
		corpus="$dir/testdata/fuzz/$name"
		before=$(ls "$corpus" 2>/dev/null | sort | tr '\n' ' ')
		echo "fuzz $pkg $name $budget"
		rc=0
		$GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$budget" "$pkg" >"$log" 2>&1 || rc=$?
		cat "$log"
		[ "$rc" -eq 0 ] && continue
		after=$(ls "$corpus" 2>/dev/null | sort | tr '\n' ' ')
		if [ "$before" != "$after" ]; then
			echo "fuzz: FINDING in $pkg $name: new failing input under $corpus (check it in once fixed)" >&2
			failed="$failed $pkg.$name"
			continue
		fi
		# The go.dev/issue/75804 signature: the only failure is the
		# coordinator's own deadline, no panic, no test output, nothing written.
		if [ -n "$FUZZTIME" ] && grep -q "^--- FAIL: $name " "$log" &&
			[ "$(grep -c -v -E "^(fuzz: |--- FAIL: $name |    context deadline exceeded$|FAIL$|FAIL	$pkg|exit status [0-9]+$|warning: starting with empty corpus$)" "$log")" -eq 0 ]; then
			echo "fuzz: $pkg $name ended on Go's fuzztime deadline race (go.dev/issue/75804), no input written: not a finding" >&2
			raced=$((raced + 1))
			continue
		fi
		echo "fuzz: FAILED $pkg $name (exit $rc; see the output above)" >&2
		failed="$failed $pkg.$name"
	done
done
echo "fuzz: $found targets, ${FUZZTIME:-their execution budgets}; deadline races ignored: $raced"
if [ -n "$failed" ]; then
	echo "fuzz: failed:$failed" >&2
	exit 1
fi
