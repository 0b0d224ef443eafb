package audio

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps bans imports that would break the layering: hal imports nothing of
// hardphone's, and no production package links testing helpers.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const self = "github.com/hardphone/hardphone/hal/audio"
	for _, dep := range strings.Fields(string(out)) {
		switch {
		case dep == self:
		case strings.HasPrefix(dep, "github.com/hardphone/hardphone/"):
			t.Errorf("hal/audio imports %s: hal imports nothing of ours", dep)
		case dep == "testing", dep == "net/http/httptest", strings.HasPrefix(dep, "testing/"):
			t.Errorf("hal/audio links %s into production code", dep)
		}
	}
}
