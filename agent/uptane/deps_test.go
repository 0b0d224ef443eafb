package uptane

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps keeps the phone's TUF client free of the fleet server and of
// the rest of the phone: it imports nothing of hardphone's, and go-tuf's
// high-level updater (which persists metadata file by file) stays out.
func TestDeps(t *testing.T) {
	deptest.Only(t)
	deptest.Check(t, "github.com/hardphone/hardphone/fleet", "github.com/theupdateframework/go-tuf/v2/metadata/updater",
		"github.com/theupdateframework/go-tuf/v2/metadata/fetcher", "github.com/theupdateframework/go-tuf/v2/metadata/config")
}
