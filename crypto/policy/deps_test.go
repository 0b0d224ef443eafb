package policy

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

func TestDeps(t *testing.T) {
	deptest.Check(t, "github.com/hardphone/hardphone/agent", "github.com/hardphone/hardphone/cmd", "github.com/hardphone/hardphone/board", "github.com/hardphone/hardphone/update", "github.com/hardphone/hardphone/hal", "github.com/emiago")
}
