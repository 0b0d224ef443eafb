package main

import (
	"testing"

	"github.com/hardphone/hardphone/test"
)

// TestMain runs the tests in a private network namespace: hpfleet,
// PostgreSQL, nginx and rsyslog listen on its loopback only.
func TestMain(m *testing.M) { test.RunInNetns(m) }
