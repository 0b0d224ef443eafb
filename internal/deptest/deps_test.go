package deptest

import "testing"

// TestDeps: the checker itself needs nothing of ours (it is test-only code:
// testing is its business).
func TestDeps(t *testing.T) {
	Imports(t)
}
