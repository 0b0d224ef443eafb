package g722

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

const module = "github.com/hardphone/hardphone/"

// TestDeps keeps g722 a leaf codec: it may be imported by agent/media but
// reaches nothing of ours, no binary, board wiring, hal, test harness or any
// agent package, and links no testing helpers.
func TestDeps(t *testing.T) {
	deptest.Check(t, module+"cmd", module+"board", module+"hal", module+"test",
		module+"agent/sip", module+"agent/config", module+"agent/lockdown", module+"agent/store",
		module+"crypto", module+"update")
	// deptest bans by prefix, and this package lives under agent/ and
	// agent/media, so those two are checked by exact path, and any other
	// package of the module (present or future) is refused too.
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const self = module + "agent/media/g722"
	deps := strings.Fields(string(out))
	for _, dep := range deps {
		if dep != self && strings.HasPrefix(dep, module) {
			t.Errorf("g722 imports %s: it imports the standard library only", dep)
		}
	}
	if len(deps) == 0 || deps[len(deps)-1] != self {
		t.Errorf("go list -deps = %q, want it to end with %s", deps, self)
	}
}
