package pgauth

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the PostgreSQL store knows package adminauth and nothing else of ours.
func TestDeps(t *testing.T) {
	deptest.Only(t, "fleet/adminauth", "internal/weekly")
}
