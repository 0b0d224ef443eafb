// Package integration runs hardphone against real peers (Kamailio, baresip,
// SIPp) inside a private network namespace the test binary makes for itself.
package integration

import (
	"log/slog"
	"os"
	"testing"

	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/test"
)

func TestMain(m *testing.M) {
	// sipgo's package-level logger: errors only, so its shutdown warnings do
	// not interleave with benchmark result lines.
	sip.SetLibraryLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	test.RunInNetns(m)
}
