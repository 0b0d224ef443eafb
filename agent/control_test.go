package agent

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hardphone/hardphone/agent/control"
)

// TestCheckBundlePath: update.install opens only a regular file named by
// an absolute path; a FIFO (which would hang the updater), a device, a
// directory, a symlink to a FIFO and a relative path are bad requests.
func TestCheckBundlePath(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "update.raucb")
	if err := os.WriteFile(good, []byte("bundle"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.raucb")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	if err := checkBundlePath(good); err != nil {
		t.Errorf("checkBundlePath(regular file) = %v, want nil", err)
	}
	for _, p := range []string{fifo, link, "/dev/zero", dir, "update.raucb", filepath.Join(dir, "missing")} {
		if err := checkBundlePath(p); !errors.Is(err, control.ErrBadRequest) {
			t.Errorf("checkBundlePath(%s) = %v, want ErrBadRequest", p, err)
		}
	}
}
