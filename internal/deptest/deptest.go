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
// harness are always banned. It also fails when go list does not report
// the package itself, so an output that lists nothing cannot pass.
func Check(t *testing.T, banned ...string) {
	t.Helper()
	banned = append(banned, "testing", "net/http/httptest", "github.com/hardphone/hardphone/test",
		"github.com/hardphone/hardphone/internal/deptest")
	out, err := exec.Command("go", "list", "-deps", "-json=ImportPath,DepOnly", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	self := false
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath string
			DepOnly    bool
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("go list output: %v", err)
		}
		self = self || !p.DepOnly
		for _, b := range banned {
			if p.ImportPath == b || strings.HasPrefix(p.ImportPath, b+"/") {
				t.Errorf("depends on %s (banned prefix %s)", p.ImportPath, b)
			}
		}
	}
	if !self {
		t.Fatalf("go list -deps did not report the package itself: nothing was checked")
	}
}

// Module is hardphone's module path.
const Module = "github.com/hardphone/hardphone"

// Only fails t when the non-test build of the package in the current
// directory depends, directly or transitively, on a package of this module
// that is not itself and not under one of the allowed paths (relative to
// the module: "agent/sip", "hal"). It is the precise form of Check for
// packages whose whole set of our imports is known; testing and our test
// harness stay banned, and, as in Check, go list must report the package
// itself.
func Only(t *testing.T, allowed ...string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-json=ImportPath", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	self, err := exec.Command("go", "list", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	me := strings.TrimSpace(string(self))
	seen := false
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct{ ImportPath string }
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("go list output: %v", err)
		}
		seen = seen || p.ImportPath == me
		if p.ImportPath == "testing" || strings.HasPrefix(p.ImportPath, "testing/") || p.ImportPath == "net/http/httptest" {
			t.Errorf("depends on %s", p.ImportPath)
		}
		rel, ours := strings.CutPrefix(p.ImportPath, Module+"/")
		if !ours || p.ImportPath == me {
			continue
		}
		ok := false
		for _, a := range allowed {
			if rel == a || strings.HasPrefix(rel, a+"/") {
				ok = true
			}
		}
		if !ok || rel == "test" || strings.HasPrefix(rel, "test/") || strings.HasPrefix(rel, "internal/deptest") {
			t.Errorf("depends on %s, which is not among the allowed %v", p.ImportPath, allowed)
		}
	}
	if me == "" || !seen {
		t.Fatalf("go list -deps did not report %q itself: nothing was checked", me)
	}
}

// Imports fails t when the package in the current directory imports
// directly a package of this module that is not under one of the allowed
// paths (relative to the module). It states who a package talks to, where
// Only states everything it reaches.
func Imports(t *testing.T, allowed ...string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, imp := range strings.Fields(string(out)) {
		rel, ours := strings.CutPrefix(imp, Module+"/")
		if !ours {
			continue
		}
		ok := false
		for _, a := range allowed {
			if rel == a || strings.HasPrefix(rel, a+"/") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("imports %s, which is not among the allowed %v", imp, allowed)
		}
	}
}
