#!/bin/sh
# make check-targets: every README target a user runs on its own, each from a
# fresh clone of this repository with an empty .cache/, the way a new user
# meets them. Not part of make test (it runs make test itself, and more).
#
#   scripts/check_targets.sh [TARGET...]   default: demo test qemu-test qemu bench image
#
# make qemu is interactive (serial console until poweroff or Ctrl-C): it
# passes when the emulated phone prints its registered marker, then gets
# Ctrl-C. Logs and a summary land in $CHECK_OUT (default out/check-targets).
set -u
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
out=${CHECK_OUT:-$repo/out/check-targets}
mkdir -p "$out"
targets=${*:-demo test qemu-test qemu bench image}
qemu_wait=${QEMU_WAIT:-300}
summary="$out/summary.txt"
: >"$summary"
failed=0

for target in $targets; do
	clone=$(mktemp -d /tmp/hardphone-check-XXXXXX)
	git clone -q "$repo" "$clone" || exit 2
	log="$out/$target.log"
	start=$(date +%s)
	rc=0
	case "$target" in
	qemu)
		# Its own session (a background child of this script is no group
		# leader, so setsid does not fork: the session ID is $pid).
		setsid sh -c 'cd "$1" && CI=true exec make qemu' sh "$clone" </dev/null >"$log" 2>&1 &
		pid=$!
		seen=no
		i=0
		while [ "$i" -lt "$qemu_wait" ] && kill -0 "$pid" 2>/dev/null; do
			if grep -q 'HARDPHONE-MARKER registered' "$log"; then
				seen=yes
				break
			fi
			sleep 1
			i=$((i + 1))
		done
		# make qemu ends on Ctrl-C: send it to the whole session.
		pkill -INT -s "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		[ "$seen" = yes ] || rc=1
		;;
	*)
		(cd "$clone" && CI=true make "$target" </dev/null >"$log" 2>&1) || rc=$?
		;;
	esac
	secs=$(($(date +%s) - start))
	if [ "$rc" -eq 0 ]; then
		line="make $target: pass in ${secs}s"
	else
		line="make $target: FAIL (exit $rc) after ${secs}s; log: $log"
		failed=$((failed + 1))
	fi
	echo "$line" | tee -a "$summary"
	rm -rf "$clone"
done
echo "check-targets: $(grep -c ': pass' "$summary") passed, $failed failed (summary: $summary)"
[ "$failed" -eq 0 ]
