package qemu

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/board"
	"github.com/hardphone/hardphone/hal/ubootenv"
)

// qemuBoard is the board the image was built for.
func qemuBoard(t *testing.T) *board.Board {
	t.Helper()
	b, err := board.Lookup("qemu-arm64")
	if err != nil {
		t.Fatalf("board: %v", err)
	}
	return b
}

// envConfig locates the bootchooser block inside a disk image file.
func envConfig(t *testing.T, disk string) ubootenv.Config {
	t.Helper()
	b := qemuBoard(t)
	start, err := b.Disk.Start(b.Env.Partition)
	if err != nil {
		t.Fatalf("board: %v", err)
	}
	return ubootenv.Config{Size: b.Env.Size, Copies: []ubootenv.Copy{
		{Path: disk, Offset: start + b.Env.Offset}, {Path: disk, Offset: start + b.Env.RedundantOffset}}}
}

// bootEnv reads the bootchooser variables from a powered-off disk with
// hal/ubootenv and checks that fw_printenv (libubootenv) reads the same:
// the U-Boot script, the agent and libubootenv agree on the format.
func bootEnv(t *testing.T, disk string) map[string]string {
	t.Helper()
	cfg := envConfig(t, disk)
	st, err := ubootenv.Open(cfg)
	if err != nil {
		t.Fatalf("open boot env: %v", err)
	}
	vars, err := st.Load()
	if err != nil {
		t.Fatalf("read boot env: %v", err)
	}
	conf := filepath.Join(t.TempDir(), "fw_env.config")
	if err := os.WriteFile(conf, []byte(cfg.FWEnvConfig()), 0o644); err != nil {
		t.Fatalf("fw_env.config: %v", err)
	}
	out, err := exec.Command("fw_printenv", "-c", conf).CombinedOutput()
	if err != nil {
		t.Fatalf("fw_printenv: %v\n%s", err, out)
	}
	var want []string
	for k, v := range vars {
		want = append(want, k+"="+v)
	}
	got := strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(out)), " ", "_"))
	if fmt.Sprint(sorted(got)) != fmt.Sprint(sorted(underscore(want))) {
		t.Errorf("fw_printenv = %v, hal/ubootenv = %v", got, want)
	}
	return vars
}

func underscore(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strings.ReplaceAll(v, " ", "_")
	}
	return out
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// wantEnv checks the bootchooser variables of a powered-off disk.
func wantEnv(t *testing.T, disk string, want map[string]string) {
	t.Helper()
	got := bootEnv(t, disk)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("boot env %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
}

// slotHash hashes slot B's partition in a disk image.
func slotHash(t *testing.T, disk, slot string) string {
	t.Helper()
	b := qemuBoard(t)
	s, ok := b.Slot(slot)
	if !ok {
		t.Fatalf("no slot %s", slot)
	}
	start, err := b.Disk.Start(s.Partition)
	if err != nil {
		t.Fatalf("board: %v", err)
	}
	p, _ := b.Disk.Partition(s.Partition)
	return hashRange(t, disk, start, int64(p.SizeMiB)*board.MiB)
}
