package system

import (
	"log/slog"

	"github.com/hardphone/hardphone/agent/sip"
)

// SetLibraryLogger routes the SIP library's own package-level logging
// through log (filtered so raw messages never reach it).
func SetLibraryLogger(log *slog.Logger) { sip.SetLibraryLogger(log) }
