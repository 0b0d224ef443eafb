package test

import "testing"

// RequireTool returns the path of a host program the updater tests check
// against (rauc, mksquashfs, fw_printenv, fw_setenv, mkenvimage), or skips
// the test, failing it instead under CI=true.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	return requireBinary(t, name)
}
