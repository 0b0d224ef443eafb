package ca

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the CA code links nothing of ours, so hpctl can use it without
// the server's store.
func TestDeps(t *testing.T) {
	deptest.Only(t)
}
