package test

import (
	"os"
	"os/exec"
	"testing"
)

// inCI reports whether the run is on CI, where a missing prerequisite fails
// the test instead of skipping it.
func inCI() bool { return os.Getenv("CI") == "true" }

// missing skips the test, or fails it under CI=true, because a prerequisite
// is not there.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if inCI() {
		t.Fatalf("prerequisite missing (CI=true): "+format, args...)
	}
	t.Skipf("prerequisite missing: "+format, args...)
}

// requireBinary returns the path of the named program or skips (fails under
// CI) when it is not installed.
func requireBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "program %q not found: %v", name, err)
	}
	return p
}

// requireNetns skips (fails under CI) unless the test process runs inside
// the private network namespace made by RunInNetns, so that no peer binds a
// port on the host.
func requireNetns(t testing.TB) {
	t.Helper()
	if !InNetns() {
		missing(t, "not inside a private network namespace; call test.RunInNetns from TestMain (needs root)")
	}
}
