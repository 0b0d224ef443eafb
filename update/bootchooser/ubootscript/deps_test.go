package ubootscript

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the script takes its names from the convention, nothing else.
func TestDeps(t *testing.T) {
	deptest.Only(t, "update/bootchooser")
}
