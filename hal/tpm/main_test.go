package tpm

import (
	"testing"

	"github.com/hardphone/hardphone/test"
)

// TestMain runs the tests in a private network namespace, where the swtpm
// TCP listener of TestOpenTCP cannot collide with anything on the host.
func TestMain(m *testing.M) { test.RunInNetns(m) }
