package console

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/fleet/adminauth"
)

// TestREADMEPermissionTable: the README's role table is the one the code
// enforces, byte for byte.
func TestREADMEPermissionTable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), "README.md"))
	if err != nil {
		t.Fatalf("read README: %v", err)
	}
	if !strings.Contains(string(b), adminauth.PermissionTable()) {
		t.Errorf("README.md does not hold adminauth.PermissionTable():\n%s", adminauth.PermissionTable())
	}
}
