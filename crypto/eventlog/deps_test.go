package eventlog

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the record format is shared by the phone and the fleet; it
// needs the standard library only.
func TestDeps(t *testing.T) {
	deptest.Only(t)
}
