package events

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Bounds of an event's fields. Values are attacker-influenced (a
// User-Agent, a Request-URI) and are cut to these sizes, never refused.
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
)

// Detail holds an event's extra fields, key to value. Keys are chosen by
// the emitting code: lowercase ASCII, a letter first, then letters, digits
// and '_' (they become RFC 5424 PARAM-NAMEs). Values may come from the
// network and are cleaned and cut to MaxValue bytes.
type Detail map[string]string

// Event is one security event.
type Event struct {
	// Seq is the journal's sequence number, set by Append; 0 until then.
	Seq uint64
	// Time is when it happened; the journal's clock fills a zero Time.
	// Stored in UTC with microsecond precision (RFC 5424 §6.2.3 TIME-SECFRAC
	// has at most six digits).
	Time time.Time
	// Kind says what happened; it must be one of the Kind constants.
	Kind Kind
	// Severity is set by Append from the kind (and, for cert.near_expiry,
	// its days_left detail: severityOf); a value given by the emitter is
	// replaced. A stored record keeps the severity it was
	// written with.
	Severity Severity
	// Account is the SIP account (config name) concerned, if any.
	Account string
	// Peer is the remote address concerned; the zero AddrPort for none.
	Peer netip.AddrPort
	// Detail holds extra fields; nil for none.
	Detail Detail
}

// secretWords are refused in detail keys: an event never holds a secret,
// and a key that sounds like one is a bug in the caller. It is a guard
// against carelessness, not a proof.
var secretWords = []string{"pass", "secret", "token", "credential", "authorization", "private", "cookie"}

// sanitize returns a copy of ev fit for the journal: the kind checked,
// strings cleaned and cut, the peer's zone dropped, the detail copied.
// Time is left to the journal.
func sanitize(ev Event) (Event, error) {
	if !ev.Kind.Known() {
		return Event{}, fmt.Errorf("%w: kind %q unknown", ErrInvalidEvent, clean(string(ev.Kind), maxKind))
	}
	out := Event{
		Seq:     0,
		Time:    ev.Time,
		Kind:    ev.Kind,
		Account: clean(ev.Account, MaxAccount),
		Peer:    cleanPeer(ev.Peer),
	}
	if len(ev.Detail) > MaxDetail {
		return Event{}, fmt.Errorf("%w: %d detail fields, at most %d", ErrInvalidEvent, len(ev.Detail), MaxDetail)
	}
	if len(ev.Detail) > 0 {
		out.Detail = make(Detail, len(ev.Detail))
		for k, v := range ev.Detail {
			if err := checkDetailKey(k); err != nil {
				return Event{}, err
			}
			out.Detail[k] = clean(v, MaxValue)
		}
	}
	out.Severity = severityOf(out.Kind, out.Detail)
	return out, nil
}

func checkDetailKey(k string) error {
	if len(k) == 0 || len(k) > MaxDetailKey {
		return fmt.Errorf("%w: detail key of %d bytes, want 1..%d", ErrInvalidEvent, len(k), MaxDetailKey)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '_')) {
			return fmt.Errorf("%w: detail key %q: want [a-z][a-z0-9_]*", ErrInvalidEvent, clean(k, MaxDetailKey))
		}
	}
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return fmt.Errorf("%w: detail key %q names a secret; events never hold secrets", ErrInvalidEvent, k)
		}
	}
	return nil
}

// cleanPeer drops an IPv6 zone (an interface name chosen locally, not part
// of the peer) and unmaps IPv4-mapped IPv6 addresses, so one peer has one
// form.
func cleanPeer(p netip.AddrPort) netip.AddrPort {
	if !p.IsValid() {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(p.Addr().WithZone("").Unmap(), p.Port())
}

// ellipsis marks a value cut at its bound.
const ellipsis = "…"

// clean makes s safe to store, print on a terminal and put in a syslog
// message: invalid UTF-8, control characters (C0, DEL, C1), bidi controls
// (which reorder what a terminal shows) and line or paragraph separators
// each become U+FFFD, and the result is cut on a character boundary to at
// most max bytes, ending in "…" when cut. It reads at most about max bytes
// of s, whatever its length.
func clean(s string, max int) string {
	if isClean(s, max) {
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

// isClean reports whether clean(s, max) == s.
func isClean(s string, max int) bool {
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

// sortedKeys returns d's keys in byte order: the canonical order of the
// encoding and of the syslog parameters.
func (d Detail) sortedKeys() []string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortKinds(k []Kind) { sort.Slice(k, func(i, j int) bool { return k[i] < k[j] }) }

// Text is a one-line human summary: the kind's description and the peer.
// It holds only cleaned values, so it is safe on a terminal.
func (ev Event) Text() string {
	t := string(ev.Kind)
	if i, ok := kinds[ev.Kind]; ok {
		t = i.text
	}
	if ev.Account != "" {
		t += " (account " + ev.Account + ")"
	}
	if ev.Peer.IsValid() {
		t += " from " + ev.Peer.String()
	}
	return t
}
