package audit_test

import (
	"testing"

	"github.com/hardphone/hardphone/test"
)

// TestMain runs the tests in a private network namespace, where the
// rsyslog collector's port cannot collide with anything on the host.
func TestMain(m *testing.M) { test.RunInNetns(m) }
