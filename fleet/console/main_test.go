package console

import (
	"testing"

	"github.com/hardphone/hardphone/test"
)

// TestMain runs the tests in a private network namespace: the console,
// the browser and the "other site" listen on its loopback only, and the
// browser reaches nothing else.
func TestMain(m *testing.M) { test.RunInNetns(m) }
