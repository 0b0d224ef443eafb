package credstore

import (
	"fmt"
	"log/slog"
)

// redacted is what a secret shows wherever it could be printed or logged.
const redacted = "REDACTED"

// Secret is a credential value. It prints, logs and marshals as REDACTED
// whatever the verb or encoder, so a value that slips into a log line or a
// status dump stays secret; use []byte(s) where the bytes are really needed
// (building a digest response), and Zero when done.
type Secret []byte

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// String implements fmt.Stringer.
func (Secret) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return "credstore.Secret(" + redacted + ")" }

// Format implements fmt.Formatter, so %x, %q and %v print REDACTED too.
func (Secret) Format(f fmt.State, _ rune) { fmt.Fprint(f, redacted) }

// MarshalText implements encoding.TextMarshaler (and so JSON and TOML).
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Zero overwrites the value in place.
func (s Secret) Zero() { clear(s) }
