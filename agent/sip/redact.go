package sip

import "log/slog"

type (
	slogValue  = slog.Value
	slogLogger = slog.Logger
)

// redacted logs who a secret belongs to, never the secret.
func redacted(owner string) slog.Value {
	return slog.GroupValue(slog.String("user", owner), slog.String("password", "REDACTED"))
}

// SetLibraryLogger routes sipgo's own package-level logging (transport and
// transaction layers) to log. sipgo keeps one logger per process, so only
// the command's main calls this, once, before any account starts.
func SetLibraryLogger(log *slog.Logger) {
	sipgoSetDefaultLogger(log.With("component", "sipgo"))
}
