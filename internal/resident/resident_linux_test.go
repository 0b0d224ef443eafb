package resident

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestReleaseCode: in this test binary (a static Go executable like the
// agent) the read-only mappings' resident pages drop, and the process runs
// on: code and tables it touches again come back.
func TestReleaseCode(t *testing.T) {
	// Touch some code and tables first.
	sum := sha256.Sum256([]byte("warm"))
	if _, err := json.Marshal(map[string]any{"a": sum[:]}); err != nil {
		t.Fatal(err)
	}
	r, err := ReleaseCode(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("released: %+v", r)
	if r.Mappings == 0 || r.BeforeKiB == 0 {
		t.Fatalf("nothing released: %+v", r)
	}
	if r.AfterKiB >= r.BeforeKiB {
		t.Errorf("resident code did not drop: %+v", r)
	}
	// It all still works.
	runtime.GC()
	if got := fmt.Sprintf("%x", sha256.Sum256([]byte("warm"))); got != fmt.Sprintf("%x", sum) {
		t.Errorf("sha256 after release: %s", got)
	}
	if _, err := json.Marshal(map[string]any{"b": []int{1, 2}}); err != nil {
		t.Fatal(err)
	}
}

// TestReleaseCodePIE: a position-independent build has read-only pages the
// loader relocated (private copies of the file's pages: interface tables,
// function values). Dropping them would bring back the file's unrelocated
// bytes and crash the process at its next method call, so they are kept:
// the child releases its code, then calls through interfaces and function
// values, formats, hashes and collects, and must say so.
func TestReleaseCodePIE(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	// The child is built for the machine, whatever this test binary was
	// built for: make test-arm runs the tests under qemu-user, which cannot
	// run a foreign child by itself.
	host, err := exec.Command("go", "env", "GOHOSTARCH").Output()
	if err != nil {
		t.Fatalf("go env GOHOSTARCH: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "pie")
	build := exec.Command("go", "build", "-buildmode=pie", "-o", bin, "./testdata/pie")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+strings.TrimSpace(string(host)), "GOARM=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -buildmode=pie: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).CombinedOutput()
	if err != nil {
		t.Fatalf("PIE program after release: %v\n%s", err, out)
	}
	s := string(out)
	t.Log(strings.TrimSpace(s))
	if !strings.Contains(s, `"total":63`) || !strings.Contains(s, `"sum":"2d711642"`) {
		t.Errorf("PIE program output: %s", s)
	}
	if strings.Contains(s, "kept=0 ") {
		t.Errorf("no relocated mapping was kept: the test no longer covers the guard: %s", s)
	}
}
