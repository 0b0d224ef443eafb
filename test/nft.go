package test

import (
	"os/exec"
	"strings"
	"testing"
)

// Nft runs the nft program with args and returns its standard output; the
// test fails on a non-zero exit. nft inspects and seeds rules in tests only:
// production code talks netlink. It needs the private namespace of
// RunInNetns, so nothing on the host is listed or changed, and skips (fails
// under CI=true) without nft.
func Nft(t testing.TB, args ...string) string {
	t.Helper()
	requireNetns(t)
	bin := requireBinary(t, "nft")
	cmd := exec.Command(bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nft %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// NftInput runs nft -f - with script on standard input.
func NftInput(t testing.TB, script string) {
	t.Helper()
	requireNetns(t)
	bin := requireBinary(t, "nft")
	cmd := exec.Command(bin, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f - <<%q: %v: %s", script, err, out)
	}
}

// RequireNetns skips the test (fails it under CI=true) unless it runs inside
// the private network namespace of RunInNetns.
func RequireNetns(t testing.TB) {
	t.Helper()
	requireNetns(t)
}
