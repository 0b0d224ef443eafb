//go:build !linux

package test

import (
	"fmt"
	"os"
	"testing"
)

// RunInNetns runs m without a private network namespace, which only Linux
// has; tests needing one skip, or the run fails under CI=true.
func RunInNetns(m *testing.M) {
	fmt.Fprintln(os.Stderr, "test.RunInNetns: network namespaces need Linux; tests needing one will skip")
	if inCI() {
		os.Exit(1)
	}
	os.Exit(m.Run())
}
