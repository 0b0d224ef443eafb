package events

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/hardphone/hardphone/crypto/eventlog"
)

// Bounds of an event's fields. Values are attacker-influenced (a
// User-Agent, a Request-URI) and are cut to these sizes, never refused.
const (
	// MaxAccount bounds Event.Account, in bytes.
	MaxAccount = eventlog.MaxAccount
	// MaxValue bounds one detail value, in bytes.
	MaxValue = eventlog.MaxValue
	// MaxDetail bounds the number of detail fields.
	MaxDetail = eventlog.MaxDetail
	// MaxDetailKey bounds a detail key, in bytes: an RFC 5424 SD-NAME is at
	// most 32 characters (§6.3.3).
	MaxDetailKey = eventlog.MaxDetailKey
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
	if err := eventlog.CheckDetailKey(k); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
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

// clean makes s safe to store, print and export, cut to max bytes
// (eventlog.Clean).
func clean(s string, max int) string { return eventlog.Clean(s, max) }

// isClean reports whether clean(s, max) == s.
func isClean(s string, max int) bool { return eventlog.IsClean(s, max) }

// sortedKeys returns d's keys in byte order: the canonical order of the
// encoding and of the syslog parameters.
func (d Detail) sortedKeys() []string { return eventlog.SortedKeys(d) }

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
