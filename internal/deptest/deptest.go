package deptest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// Check fails t when the non-test build of the package in the current
// directory depends, directly or transitively, on any import path that has
// one of the banned prefixes. testing, net/http/httptest and our test/
// harness are always banned.
func Check(t *testing.T, banned ...string) {
	t.Helper()
	banned = append(banned, "testing", "net/http/httptest", "github.com/hardphone/hardphone/test",
		"github.com/hardphone/hardphone/internal/deptest")
	out, err := exec.Command("go", "list", "-deps", "-json=ImportPath,Standard", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct{ ImportPath string }
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("go list output: %v", err)
		}
		for _, b := range banned {
			if p.ImportPath == b || strings.HasPrefix(p.ImportPath, b+"/") {
				t.Errorf("depends on %s (banned prefix %s)", p.ImportPath, b)
			}
		}
	}
}
