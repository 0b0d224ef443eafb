package qemu

import (
	"flag"
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
	flag.Parse()
	if testing.Short() {
		// make check: the inner loop runs unit tests only.
		fmt.Println("qemu: skipped with -short (emulated phone scenarios: make test, make qemu-test)")
		os.Exit(0)
	}
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
