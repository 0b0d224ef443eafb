// Package integration runs hardphone against real peers (Kamailio, baresip,
// SIPp) inside a private network namespace the test binary makes for itself.
package integration

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"testing"

	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/test"
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// make check: the inner loop runs unit tests only.
		fmt.Println("integration: skipped with -short (real Kamailio, baresip and SIPp in a namespace: make test)")
		os.Exit(0)
	}
	// sipgo's package-level logger: errors only, so its shutdown warnings do
	// not interleave with benchmark result lines.
	sip.SetLibraryLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	test.RunInNetns(m)
}
