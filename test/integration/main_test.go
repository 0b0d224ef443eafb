// Package integration runs hardphone against real peers (Kamailio, baresip,
// SIPp) inside a private network namespace the test binary makes for itself.
package integration

import (
	"testing"

	"github.com/hardphone/hardphone/test"
)

func TestMain(m *testing.M) { test.RunInNetns(m) }
