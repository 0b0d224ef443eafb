package sip

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"unicode/utf8"
)

type (
	slogValue  = slog.Value
	slogLogger = slog.Logger
)

// redacted logs who a secret belongs to, never the secret.
func redacted(owner string) slog.Value {
	return slog.GroupValue(slog.String("user", owner), slog.String("password", "REDACTED"))
}

// SetLibraryLogger routes sipgo's own package-level logging (transport and
// transaction layers) to log, through libraryFilter: sipgo logs the raw
// bytes of a message it cannot parse, and those are attacker text that may
// carry SDES keys. sipgo keeps one logger per process, so only the
// command's main calls this, once, before any account starts.
func SetLibraryLogger(log *slog.Logger) {
	sipgoSetDefaultLogger(slog.New(&libraryFilter{next: log.Handler()}).With("component", "sipgo"))
}

// maxLibraryAttr bounds one attribute of sipgo's log records.
const maxLibraryAttr = 160

// keyMaterial matches what must never reach a log: SDES inline keys
// (RFC 4568 §9.1), DTLS fingerprints are public but keys are not, and
// digest responses (RFC 7616 §3.4).
var keyMaterial = regexp.MustCompile(`(?i)(inline:)[A-Za-z0-9+/=|:^~._-]+|((?:response|cnonce|nonce)=")[^"]*`)

// libraryFilter is a slog.Handler that makes sipgo's records safe: raw
// messages (attributes data, req, res, msg) are reduced to their first line,
// every string is bounded, control characters are escaped, and key material
// is replaced by REDACTED.
type libraryFilter struct {
	next slog.Handler
}

func (h *libraryFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *libraryFilter) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, scrub(r.Message, false), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(scrubAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *libraryFilter) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = scrubAttr(a)
	}
	return &libraryFilter{next: h.next.WithAttrs(clean)}
}

func (h *libraryFilter) WithGroup(name string) slog.Handler {
	return &libraryFilter{next: h.next.WithGroup(name)}
}

// rawMessageAttrs are the attributes sipgo fills with whole SIP messages.
var rawMessageAttrs = map[string]bool{"data": true, "req": true, "res": true, "msg": true, "message": true}

func scrubAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		as := v.Group()
		clean := make([]any, len(as))
		for i, g := range as {
			clean[i] = scrubAttr(g)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindString, slog.KindAny:
		s := v.String()
		if v.Kind() == slog.KindAny {
			s = fmt.Sprint(v.Any())
		}
		return slog.String(a.Key, scrub(s, rawMessageAttrs[a.Key]))
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// scrub redacts key material, keeps only the first line of a raw message,
// escapes control characters and bounds the length.
func scrub(s string, rawMessage bool) string {
	n := len(s)
	s = keyMaterial.ReplaceAllString(s, "${1}${2}REDACTED")
	if rawMessage {
		first, _, _ := strings.Cut(s, "\n")
		s = strings.TrimRight(first, "\r") + fmt.Sprintf(" [%d bytes]", n)
	}
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= maxLibraryAttr {
			b.WriteString("…")
			break
		}
		switch {
		case r == utf8.RuneError:
			b.WriteString(`\ufffd`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
