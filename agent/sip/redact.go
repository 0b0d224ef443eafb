package sip

import "log/slog"

type slogValue = slog.Value

// redacted logs who a secret belongs to, never the secret.
func redacted(owner string) slog.Value {
	return slog.GroupValue(slog.String("user", owner), slog.String("password", "REDACTED"))
}
