package watchdog

import (
	"testing"
	"time"
)

// Opening a real watchdog arms it and could reset the test machine, so the
// device path is exercised only inside QEMU (test/qemu); here only the
// argument checks run.
func TestOpenRefusesShortTimeout(t *testing.T) {
	if _, err := Open("/nonexistent/watchdog", 500*time.Millisecond); err == nil {
		t.Fatalf("Open(timeout 500ms) = nil error, want a refusal")
	}
}

func TestOpenMissingDevice(t *testing.T) {
	if _, err := Open("/nonexistent/watchdog", 5*time.Second); err == nil {
		t.Fatalf("Open(missing device) = nil error, want one")
	}
}
