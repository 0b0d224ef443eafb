package config

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

func TestDeps(t *testing.T) {
	deptest.Check(t, "github.com/hardphone/hardphone/agent/sip", "github.com/hardphone/hardphone/agent/media", "github.com/hardphone/hardphone/cmd", "github.com/emiago")
}
