package registrar

import (
	"testing"

	"github.com/hardphone/hardphone/test"
)

// TestMain runs the tests in a private network namespace: Kamailio and
// PostgreSQL listen on its loopback only.
func TestMain(m *testing.M) { test.RunInNetns(m) }
