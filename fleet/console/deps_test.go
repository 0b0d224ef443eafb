package console

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the console is fleet code over the admin plane's packages and
// the store's contract; never the phone's code, the fleet server's HTTP
// API or a database driver (it gets its stores from the caller).
func TestDeps(t *testing.T) {
	// crypto/policy and internal/tcpack come with fleet/audit (its syslog
	// exporter), internal/weekly with fleet/adminauth (role windows);
	// crypto/eventlog decodes the journals phones exported.
	deptest.Only(t, "fleet/adminauth", "internal/weekly", "fleet/audit", "fleet/store", "fleet/console/approval", "fleet/console/consoleapi", "fleet/api",
		"crypto/policy", "internal/tcpack", "crypto/eventlog")
	deptest.Check(t, "go.etcd.io/bbolt", "github.com/jackc", "github.com/chromedp")
}
