#!/bin/sh
# Proves the fuzz gate (scripts/fuzz.sh) still fails on real findings and only
# on them. Each case is a throwaway module in a temp dir:
#   finding   a target that fails on one byte pattern: the run must fail and
#             name the failing input it wrote under testdata/fuzz/
#   seed      a t.Error on a seed input (no fuzzing needed): must fail
#   crasher   a checked-in failing input under testdata/fuzz/: must fail
#   budget    a target with no //fuzz:budget line: must fail
#   clean     a target with nothing to find: must pass
#   race      duration mode, a go that reports Go 1.26's bare coordinator
#             deadline (go.dev/issue/75804) with no input: must pass, and the
#             same output in count mode must fail
set -eu
here=$(cd "$(dirname "$0")" && pwd)
GO=${GO:-go}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0

module() { # dir body
	mkdir -p "$1"
	printf 'module example.com/selftest\n\ngo 1.26\n' >"$1/go.mod"
	printf 'package selftest\n' >"$1/doc.go"
	printf '%s\n' "$2" >"$1/fuzz_test.go"
}

expect() { # name want(pass|fail) grep-pattern dir [env...]
	name=$1 want=$2 pat=$3 dir=$4
	shift 4
	rc=0
	(cd "$dir" && env "$@" GO="$GO" sh "$here/fuzz.sh") >"$work/$name.log" 2>&1 || rc=$?
	got=pass
	[ "$rc" -ne 0 ] && got=fail
	if [ "$got" != "$want" ] || ! grep -q -- "$pat" "$work/$name.log"; then
		echo "fuzz-selftest: $name: got $got, want $want with \"$pat\"; output:"
		cat "$work/$name.log"
		fails=$((fails + 1))
	else
		echo "fuzz-selftest: $name: $got as it must ($(grep -m1 -- "$pat" "$work/$name.log"))"
	fi
}

module "$work/finding" 'package selftest

import "testing"

//fuzz:budget 5000000
func FuzzPlanted(f *testing.F) {
	f.Add([]byte("seed"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= 3 && b[0] == 0x68 && b[1] == 0x70 && b[2] == 0x21 {
			t.Fatalf("planted finding %q", b[:3])
		}
	})
}'
expect finding fail "FINDING in example.com/selftest FuzzPlanted" "$work/finding"

module "$work/seed" 'package selftest

import "testing"

//fuzz:budget 1000
func FuzzSeed(f *testing.F) {
	f.Add("bad")
	f.Fuzz(func(t *testing.T, s string) {
		if s == "bad" {
			t.Error("seed input refused")
		}
	})
}'
expect seed fail "FAILED example.com/selftest FuzzSeed" "$work/seed"

module "$work/crasher" 'package selftest

import "testing"

//fuzz:budget 1000
func FuzzCrasher(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		if string(b) == "boom" {
			panic("checked-in crasher")
		}
	})
}'
mkdir -p "$work/crasher/testdata/fuzz/FuzzCrasher"
printf 'go test fuzz v1\n[]byte("boom")\n' >"$work/crasher/testdata/fuzz/FuzzCrasher/boom"
expect crasher fail "FAILED example.com/selftest FuzzCrasher" "$work/crasher"

module "$work/budget" 'package selftest

import "testing"

func FuzzNoBudget(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {})
}'
expect budget fail "has no //fuzz:budget line" "$work/budget"

module "$work/clean" 'package selftest

import "testing"

//fuzz:budget 20000
func FuzzClean(f *testing.F) {
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, b []byte) { _ = len(b) })
}'
expect clean pass "fuzz: 1 targets" "$work/clean"

# A go that answers every fuzz run the way Go 1.26's coordinator does when it
# races its own -fuzztime deadline, and passes everything else to the real go.
cat >"$work/racego" <<EOF
#!/bin/sh
case " \$* " in
*" -fuzz "*)
	echo 'fuzz: elapsed: 11s, execs: 386611 (23746/sec), new interesting: 33 (total: 160)'
	echo '--- FAIL: FuzzClean (10.53s)'
	echo '    context deadline exceeded'
	echo 'FAIL'
	echo 'exit status 1'
	echo 'FAIL	example.com/selftest	10.545s'
	exit 1 ;;
esac
exec $GO "\$@"
EOF
chmod +x "$work/racego"
GO_REAL=$GO
GO="$work/racego"
expect race-duration pass "deadline race (go.dev/issue/75804)" "$work/clean" FUZZTIME=10s
expect race-count fail "FAILED example.com/selftest FuzzClean" "$work/clean"
GO=$GO_REAL

if [ "$fails" -ne 0 ]; then
	echo "fuzz-selftest: $fails case(s) wrong: the fuzz gate cannot be trusted" >&2
	exit 1
fi
echo "fuzz-selftest: the gate fails on findings and only on them"
