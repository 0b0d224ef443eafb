// Package qemu holds the end-to-end tests of the emulated desk phone (board
// qemu-arm64): the image hpctl builds, booted by Debian's U-Boot in
// qemu-system-aarch64 with a swtpm as its TPM, registering to a Kamailio
// the test starts on its own loopback, updated, rolled back and powered off
// mid-write. Every scenario is judged by the HARDPHONE-MARKER lines PID 1
// prints on the serial console (and the U-Boot script's HPBOOT lines).
//
// A short slice (first boot, good update) runs in `go test ./...`; the
// rest needs HARDPHONE_QEMU_FULL=1, which `make qemu-test` sets. Scenarios
// run one at a time: each is a whole emulated phone.
package qemu

import (
	"fmt"
	"os"
	"testing"

	"github.com/hardphone/hardphone/hal/netif"
	"github.com/hardphone/hardphone/test"
)

// workDir holds what every scenario shares: the binaries, the PKIs, the
// provisioned TPM and the base image. TestMain removes it.
var workDir string

// TestMain re-executes the tests in a private network namespace (QEMU's
// guest forward reaches Kamailio on that namespace's loopback, and nothing
// else), then runs them with a shared work directory.
func TestMain(m *testing.M) {
	if !test.InNetns() {
		test.RunInNetns(m) // does not return
	}
	if err := netif.Up("lo"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "hardphone-qemu-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	workDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// full reports whether the whole set runs (make qemu-test), not only the
// short slice of make test.
func full() bool { return os.Getenv("HARDPHONE_QEMU_FULL") == "1" }

func requireFull(t *testing.T) {
	t.Helper()
	if !full() {
		t.Skip("part of the full QEMU set: make qemu-test (HARDPHONE_QEMU_FULL=1)")
	}
}
