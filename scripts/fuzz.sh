#!/bin/sh
# Runs every fuzz target in the module for FUZZTIME each (default 10s): the
# short slice `make test` runs; `make fuzz` passes a longer time.
set -eu
FUZZTIME=${FUZZTIME:-10s}
GO=${GO:-go}
pkgs=$($GO list ./...)
found=0
for pkg in $pkgs; do
	dir=$($GO list -f '{{.Dir}}' "$pkg")
	grep -ls '^func Fuzz' "$dir"/*_test.go >/dev/null 2>&1 || continue
	for name in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do
		found=$((found + 1))
		echo "fuzz $pkg $name $FUZZTIME"
		$GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg"
	done
done
echo "fuzz: $found targets, $FUZZTIME each"
