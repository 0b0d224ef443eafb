package eventlog

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds of an event's fields. Values are attacker-influenced (a
// User-Agent, a Request-URI): the phone cuts them to these sizes, the
// decoder refuses anything longer.
const (
	// MaxAccount bounds Event.Account, in bytes.
	MaxAccount = 64
	// MaxValue bounds one detail value, in bytes.
	MaxValue = 256
	// MaxDetail bounds the number of detail fields.
	MaxDetail = 8
	// MaxDetailKey bounds a detail key, in bytes: an RFC 5424 SD-NAME is at
	// most 32 characters (§6.3.3).
	MaxDetailKey = 32
	// MaxKind bounds a kind: RFC 5424 §6.2.7 allows a MSGID of 32 octets.
	MaxKind = 32
)

// secretWords are refused in detail keys: an event never holds a secret,
// and a key that sounds like one is a bug in the caller. It is a guard
// against carelessness, not a proof.
var secretWords = []string{"pass", "secret", "token", "credential", "authorization", "private", "cookie"}

// CheckDetailKey says why a detail key is refused (nil when it is not): lowercase ASCII, a letter first, then
// letters, digits and '_' (it becomes an RFC 5424 PARAM-NAME), at most
// MaxDetailKey bytes, and no word that names a secret.
func CheckDetailKey(k string) error {
	if len(k) == 0 || len(k) > MaxDetailKey {
		return fmt.Errorf("detail key of %d bytes, want 1..%d", len(k), MaxDetailKey)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '_')) {
			return fmt.Errorf("detail key %q: want [a-z][a-z0-9_]*", Clean(k, MaxDetailKey))
		}
	}
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return fmt.Errorf("detail key %q names a secret; events never hold secrets", k)
		}
	}
	return nil
}

// WellFormedKind reports whether k fits the kind alphabet (lowercase ASCII
// letters, digits, '.' and '_') and MaxKind. A journal written by a newer
// binary may hold kinds this one does not know; they still decode.
func WellFormedKind(k string) bool {
	if len(k) == 0 || len(k) > MaxKind {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// ellipsis marks a value cut at its bound.
const ellipsis = "…"

// Clean makes s safe to store, print on a terminal and put in a syslog
// message: invalid UTF-8, control characters (C0, DEL, C1), bidi controls
// (which reorder what a terminal shows) and line or paragraph separators
// each become U+FFFD, and the result is cut on a character boundary to at
// most max bytes, ending in "…" when cut. It reads at most about max bytes
// of s, whatever its length.
func Clean(s string, max int) string {
	if IsClean(s, max) {
		return s
	}
	out := make([]byte, 0, min(len(s), max))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if badRune(r) {
			r = utf8.RuneError
		}
		if len(out)+utf8.RuneLen(r) > max {
			// Cut: drop whole characters until the ellipsis fits.
			for len(out) > 0 && len(out)+len(ellipsis) > max {
				_, n := utf8.DecodeLastRune(out)
				out = out[:len(out)-n]
			}
			if len(out)+len(ellipsis) <= max {
				out = append(out, ellipsis...)
			}
			return string(out)
		}
		out = utf8.AppendRune(out, r)
		i += size
	}
	return string(out)
}

// IsClean reports whether Clean(s, max) == s.
func IsClean(s string, max int) bool {
	if len(s) > max {
		return false
	}
	for _, r := range s {
		// A literal U+FFFD is clean; an invalid byte decodes to it too but
		// then utf8.ValidString below is false.
		if badRune(r) {
			return false
		}
	}
	return utf8.ValidString(s)
}

func badRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) ||
		unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r)
}
