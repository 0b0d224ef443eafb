package media

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps bans upward and sideways imports: media sits below agent/sip and
// must not reach call control, the agent, the binaries, board wiring, test
// harnesses, lockdown (the agent relays pinholes) or the SIP stack, and no
// production code links testing helpers.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const mod = "github.com/hardphone/hardphone/"
	banned := []string{mod + "agent/sip", mod + "agent/lockdown", mod + "cmd", mod + "board", mod + "test",
		"github.com/emiago/diago", "github.com/emiago/sipgo"}
	deps := strings.Fields(string(out))
	for _, dep := range deps {
		for _, b := range banned {
			if dep == b || strings.HasPrefix(dep, b+"/") {
				t.Errorf("agent/media imports %s", dep)
			}
		}
		switch {
		case dep == mod+"agent":
			t.Errorf("agent/media imports the agent package")
		case dep == "testing", dep == "net/http/httptest", strings.HasPrefix(dep, "testing/"):
			t.Errorf("agent/media links %s into production code", dep)
		}
	}
	// The layering the package is meant to have, so the test fails if
	// go list stops reporting dependencies at all.
	for _, want := range []string{mod + "crypto/policy", mod + "hal/audio", "github.com/pion/srtp/v3"} {
		found := false
		for _, dep := range deps {
			found = found || dep == want
		}
		if !found {
			t.Errorf("go list -deps does not report %s", want)
		}
	}
}
