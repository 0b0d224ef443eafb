package netif

import (
	"testing"

	"github.com/hardphone/hardphone/test"
)

// TestMain moves the tests into a throwaway network namespace: they change
// addresses and routes for real.
func TestMain(m *testing.M) { test.RunInNetns(m) }
