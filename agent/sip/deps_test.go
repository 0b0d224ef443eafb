package sip

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

func TestDeps(t *testing.T) {
	deptest.Check(t, "github.com/hardphone/hardphone/cmd", "github.com/hardphone/hardphone/board", "github.com/emiago/diago")
}
