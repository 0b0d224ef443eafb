package storetest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the suite independent of any implementation and of the
// phone's code. It imports testing by design, so deptest.Check (which bans
// testing) does not fit; this is the same check without that ban.
func TestDeps(t *testing.T) {
	banned := []string{"github.com/hardphone/hardphone/agent", "github.com/hardphone/hardphone/cmd",
		"github.com/hardphone/hardphone/board", "github.com/hardphone/hardphone/hal",
		"github.com/hardphone/hardphone/test", "github.com/hardphone/hardphone/fleet/store/boltstore",
		"github.com/hardphone/hardphone/fleet/store/pgstore", "go.etcd.io/bbolt", "github.com/jackc"}
	out, err := exec.Command("go", "list", "-deps", "-json=ImportPath", ".").Output()
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
