package audit

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Bounds of an entry's fields, in bytes of UTF-8. Append cuts strings that
// are longer (at a rune boundary) and refuses lists that are longer.
const (
	MaxActorLen       = 128
	MaxActionLen      = 64
	MaxTargetLen      = 512
	MaxApprovals      = 16
	MaxApprovalLen    = 128
	MaxDetails        = 16
	MaxDetailKeyLen   = 32
	MaxDetailValueLen = 512
	MaxDeviceIDLen    = 128
	MaxEventKindLen   = 64
	// MaxEntrySize bounds one encoded entry; the field bounds keep every
	// valid entry below it.
	MaxEntrySize = 16 << 10
)

// minTime is the earliest entry time accepted (2000-01-01T00:00:00Z): a
// clock at the epoch is a broken clock, not an event.
var minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// ActorKind says who acted.
type ActorKind string

// Actor kinds.
const (
	ActorAdmin  ActorKind = "admin"
	ActorDevice ActorKind = "device"
	ActorSystem ActorKind = "system"
	// ActorUnknown is a claimed identity not established: the user name
	// typed at a failed login. It is recorded as typed (cleaned).
	ActorUnknown ActorKind = "unknown"
)

var actorKinds = []ActorKind{ActorAdmin, ActorDevice, ActorSystem, ActorUnknown}

// Actor is who acted: an admin's name, a device ID, a server component.
type Actor struct {
	Kind ActorKind `json:"kind"`
	ID   string    `json:"id"`
}

// Action is what was done, a dotted lowercase name. The constants below
// are the ones the fleet records; a log may hold others (a newer server),
// which Verify accepts when they are well formed.
type Action string

// Actions the fleet server records.
const (
	ActionLogin           Action = "admin.login"
	ActionLogout          Action = "admin.logout"
	ActionLockout         Action = "admin.lockout"
	ActionSecondFactor    Action = "admin.second_factor"
	ActionStepUp          Action = "admin.step_up"
	ActionEnrolFactor     Action = "admin.enrol_factor"
	ActionAdminCreate     Action = "admin.create"
	ActionAdminRole       Action = "admin.role"
	ActionAdminDisable    Action = "admin.disable"
	ActionAccessDenied    Action = "access.denied"
	ActionApprovalRequest Action = "approval.request"
	ActionApprovalGrant   Action = "approval.grant"
	ActionApprovalRefuse  Action = "approval.refuse"
	ActionRolloutCreate   Action = "rollout.create"
	ActionRolloutHalt     Action = "rollout.halt"
	ActionRolloutResume   Action = "rollout.resume"
	ActionRolloutAbort    Action = "rollout.abort"
	ActionPolicyChange    Action = "policy.change"
	ActionKeyChange       Action = "key.change"
	ActionDeviceEnrol     Action = "device.enrol"
	ActionDeviceRevoke    Action = "device.revoke"
	ActionDeviceEvent     Action = "device.security_event"
	ActionDeviceRetire    Action = "device.retire"
	ActionDeviceAdmit     Action = "device.admit"
	ActionDeviceRotate    Action = "device.rotate"
	ActionSettingChange   Action = "setting.change"
	ActionConfigChange    Action = "config.change"
	ActionFirmwareChange  Action = "firmware.change"
	ActionAnomalyFinding  Action = "anomaly.finding"
	ActionAnomalyResponse Action = "anomaly.response"
	ActionAnomalyLift     Action = "anomaly.lift"
	ActionAuditExport     Action = "audit.export"
)

// Outcome is how the action ended.
type Outcome string

// Outcomes.
const (
	OutcomeSuccess Outcome = "success"
	OutcomeFailure Outcome = "failure"
	OutcomeDenied  Outcome = "denied"
	OutcomePending Outcome = "pending"
)

var outcomes = []Outcome{OutcomeSuccess, OutcomeFailure, OutcomeDenied, OutcomePending}

// Hash is a SHA-256 value, as hex in JSON.
type Hash [32]byte

// MarshalText implements encoding.TextMarshaler.
func (h Hash) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h[:])), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("hash of %d hex digits, want 64: %w", len(b), ErrInvalid)
	}
	_, err := hex.Decode(h[:], b)
	if err != nil {
		return fmt.Errorf("hash: %w", ErrInvalid)
	}
	return nil
}

// IsZero reports whether h is all zero (no hash).
func (h Hash) IsZero() bool { return h == Hash{} }

// DeviceEvent is a phone's security event relayed into the fleet's log: it
// names the record in the phone's own journal (sequence number and chain
// hash), so the two logs can be cross-checked.
type DeviceEvent struct {
	Device string `json:"device"`
	// Kind is the phone's event kind (agent/events.Kind), e.g.
	// "control.refused".
	Kind string `json:"kind"`
	// Severity is the RFC 5424 severity, 0 (emergency) to 7 (debug).
	Severity uint8  `json:"severity"`
	Seq      uint64 `json:"seq"`
	// Time is the phone's time of the event; zero when unknown or
	// impossible (before 2000).
	Time time.Time `json:"time,omitzero"`
	// Hash is the journal record's chain hash; zero when unknown.
	Hash Hash `json:"hash,omitzero"`
}

// Entry is one audit record.
type Entry struct {
	// Index is the entry's position in the log, set by Append (what the
	// caller passes is ignored) and part of the signed data.
	Index int64 `json:"index"`
	// Time is when the action happened, UTC, in nanoseconds; Append sets
	// it from the log's clock when zero.
	Time    time.Time `json:"time"`
	Actor   Actor     `json:"actor"`
	Action  Action    `json:"action"`
	Target  string    `json:"target,omitempty"`
	Outcome Outcome   `json:"outcome"`
	// Source is the client's address, when the action came over the
	// network; the zero Addr when not.
	Source netip.Addr `json:"source,omitzero"`
	// Approvals references the approvals the action rests on (their
	// IDs, or the indexes of their approval.grant entries).
	Approvals []string `json:"approvals,omitempty"`
	// Details holds further fields by key (lowercase [a-z0-9_]).
	Details map[string]string `json:"details,omitempty"`
	// Device is set on device.security_event entries.
	Device *DeviceEvent `json:"device,omitempty"`
}

// normalize returns the entry as Append stores it: strings cleaned and
// cut to their bounds, the address unmapped and without zone, times in
// UTC without a monotonic reading, lists copied. Structural problems
// (unknown kinds, too many approvals) are left to validate.
func (e Entry) normalize() Entry {
	n := e
	n.Time = e.Time.UTC().Round(0)
	n.Actor.ID = clean(e.Actor.ID, MaxActorLen)
	n.Target = clean(e.Target, MaxTargetLen)
	n.Source = e.Source.Unmap().WithZone("")
	n.Approvals = nil
	for _, a := range e.Approvals {
		n.Approvals = append(n.Approvals, clean(a, MaxApprovalLen))
	}
	n.Details = nil
	if len(e.Details) > 0 {
		n.Details = make(map[string]string, len(e.Details))
		for k, v := range e.Details {
			n.Details[k] = clean(v, MaxDetailValueLen)
		}
	}
	if e.Device != nil {
		d := *e.Device
		d.Device = clean(d.Device, MaxDeviceIDLen)
		d.Kind = clean(d.Kind, MaxEventKindLen)
		d.Time = d.Time.UTC().Round(0)
		if checkTime("", d.Time) != nil {
			// A phone's clock is its own: an impossible time is recorded
			// as unknown rather than refusing the event.
			d.Time = time.Time{}
		}
		n.Device = &d
	}
	return n
}

// validate checks what normalize does not repair. It is also the
// decoder's check, so a decoded entry always re-encodes to its input.
func (e *Entry) validate() error {
	if e.Index < 0 {
		return fmt.Errorf("index %d: %w", e.Index, ErrInvalid)
	}
	if err := checkTime("time", e.Time); err != nil {
		return err
	}
	if !slices.Contains(actorKinds, e.Actor.Kind) {
		return fmt.Errorf("actor kind %q: %w", e.Actor.Kind, ErrInvalid)
	}
	if err := checkString("actor", e.Actor.ID, MaxActorLen); err != nil {
		return err
	}
	if e.Actor.ID == "" && e.Actor.Kind != ActorSystem {
		return fmt.Errorf("actor of kind %s without an ID: %w", e.Actor.Kind, ErrInvalid)
	}
	if !validAction(string(e.Action)) {
		return fmt.Errorf("action %q: want a lowercase dotted name of at most %d bytes: %w", e.Action, MaxActionLen, ErrInvalid)
	}
	if err := checkString("target", e.Target, MaxTargetLen); err != nil {
		return err
	}
	if !slices.Contains(outcomes, e.Outcome) {
		return fmt.Errorf("outcome %q: %w", e.Outcome, ErrInvalid)
	}
	if e.Source.IsValid() && (e.Source.Is4In6() || e.Source.Zone() != "") {
		return fmt.Errorf("source %v: want an unmapped address without zone: %w", e.Source, ErrInvalid)
	}
	if len(e.Approvals) > MaxApprovals {
		return fmt.Errorf("%d approvals, at most %d: %w", len(e.Approvals), MaxApprovals, ErrInvalid)
	}
	for _, a := range e.Approvals {
		if a == "" {
			return fmt.Errorf("empty approval reference: %w", ErrInvalid)
		}
		if err := checkString("approval", a, MaxApprovalLen); err != nil {
			return err
		}
	}
	if len(e.Details) > MaxDetails {
		return fmt.Errorf("%d details, at most %d: %w", len(e.Details), MaxDetails, ErrInvalid)
	}
	for k, v := range e.Details {
		if !validDetailKey(k) {
			return fmt.Errorf("detail key %q: want [a-z0-9_] of at most %d bytes: %w", k, MaxDetailKeyLen, ErrInvalid)
		}
		if err := checkString("detail "+k, v, MaxDetailValueLen); err != nil {
			return err
		}
	}
	if d := e.Device; d != nil {
		if d.Device == "" || d.Kind == "" {
			return fmt.Errorf("device event without device or kind: %w", ErrInvalid)
		}
		if err := checkString("device", d.Device, MaxDeviceIDLen); err != nil {
			return err
		}
		if err := checkString("event kind", d.Kind, MaxEventKindLen); err != nil {
			return err
		}
		if d.Severity > 7 {
			return fmt.Errorf("device event severity %d, want 0..7: %w", d.Severity, ErrInvalid)
		}
		if !d.Time.IsZero() {
			if err := checkTime("device event time", d.Time); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkTime(what string, t time.Time) error {
	if t.Before(minTime) || t.Location() != time.UTC || t.UnixNano() < 0 {
		return fmt.Errorf("%s %v: want UTC after %v: %w", what, t, minTime, ErrInvalid)
	}
	// UnixNano overflows after 2262: a time there does not round-trip.
	if !time.Unix(0, t.UnixNano()).UTC().Equal(t) {
		return fmt.Errorf("%s %v out of range: %w", what, t, ErrInvalid)
	}
	return nil
}

// checkString accepts what clean leaves unchanged.
func checkString(what, s string, max int) error {
	if !isClean(s, max) {
		return fmt.Errorf("%s %q: invalid UTF-8, a control or bidi character, or over %d bytes: %w", what, s, max, ErrInvalid)
	}
	return nil
}

func validAction(s string) bool {
	if len(s) == 0 || len(s) > MaxActionLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validDetailKey(s string) bool {
	if len(s) == 0 || len(s) > MaxDetailKeyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// badRune reports runes an audit string must not hold: controls
// (including C1 and DEL), the bidi overrides and isolates that make text
// read in another order than stored, and the replacement of invalid input.
func badRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == utf8.RuneError
}

// clean replaces invalid UTF-8 and bad runes with '?' and cuts s to max
// bytes at a rune boundary.
func clean(s string, max int) string {
	if isClean(s, max) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if badRune(r) {
			r = '?'
		}
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isClean(s string, max int) bool {
	if len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if badRune(r) {
			return false
		}
	}
	return true
}

// String is a one-line summary for logs and the CLI.
func (e Entry) String() string {
	s := fmt.Sprintf("#%d %s %s:%s %s", e.Index, e.Time.Format(time.RFC3339), e.Actor.Kind, e.Actor.ID, e.Action)
	if e.Target != "" {
		s += " " + e.Target
	}
	return s + " " + string(e.Outcome)
}
