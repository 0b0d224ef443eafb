package rollout_test

import (
	"testing"

	"github.com/hardphone/hardphone/test"
)

// TestMain runs the tests in a private network namespace: the fleet
// server, PostgreSQL and nginx listen on its loopback only.
func TestMain(m *testing.M) { test.RunInNetns(m) }
