package anomaly

import (
	"fmt"
	"net/netip"
	"time"
)

// Observation is one thing a fleet server learnt about a device: a Call, a
// Registration, a SecurityEvent or a CredentialChange. The set is closed.
type Observation interface {
	// DeviceID is the device the observation is about.
	DeviceID() string
	// At is when it happened (the phone's or the PBX's time stamp, checked
	// against the detector's clock).
	At() time.Time
	validate() error
}

// Direction says who placed a call.
type Direction uint8

// Directions. The zero value is invalid so that a record that forgot to
// say is refused rather than read as outbound.
const (
	Outbound Direction = iota + 1
	Inbound
)

func (d Direction) String() string {
	switch d {
	case Outbound:
		return "out"
	case Inbound:
		return "in"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// MarshalText renders "out" or "in".
func (d Direction) MarshalText() ([]byte, error) {
	if d != Outbound && d != Inbound {
		return nil, fmt.Errorf("%w: direction %d", ErrInvalid, d)
	}
	return []byte(d.String()), nil
}

// UnmarshalText reads "out" or "in".
func (d *Direction) UnmarshalText(b []byte) error {
	switch string(b) {
	case "out":
		*d = Outbound
	case "in":
		*d = Inbound
	default:
		return fmt.Errorf("%w: direction %q: want out or in", ErrInvalid, b)
	}
	return nil
}

// Call is one call record: from the phone's call history or the PBX's
// call detail records mapped to the device's account. It is reported when
// the call has ended (its duration known).
type Call struct {
	Device string `json:"device"`
	// Time is when the call started.
	Time      time.Time `json:"time"`
	Direction Direction `json:"direction"`
	// Number is the other party: the callee of an outbound call, the
	// caller of an inbound one. E.164 with its '+' ("+4930123456") for a
	// number outside the PBX, digits for an internal extension, "" when
	// unknown. The country comes from it (CountryCode).
	Number string `json:"number,omitempty"`
	// Duration is how long the call was connected (0 when not answered).
	Duration Duration `json:"duration"`
	Answered bool     `json:"answered"`
}

// Registration is one SIP registration of the device's account as the
// registrar saw it (or the phone reported it).
type Registration struct {
	Device string    `json:"device"`
	Time   time.Time `json:"time"`
	// Source is the address the REGISTER came from (after NAT: the
	// network's public address). Its network (Config.NetworkBits4/6) is
	// what the rules compare.
	Source netip.Addr `json:"source"`
}

// Security event kinds: the phone's (agent/events, mirrored here because
// fleet code never imports the phone's) and the registrar's.
const (
	KindSIPAuthFailure   = "sip.auth_failure"
	KindControlRefused   = "control.refused"
	KindForeignSource    = "sip.foreign_source"
	KindForeignDialog    = "sip.foreign_dialog"
	KindREFERRefused     = "sip.refer_refused"
	KindScanner          = "sip.scanner"
	KindINVITEFlood      = "sip.invite_flood"
	KindCallCap          = "sip.call_cap"
	KindChallengeRefused = "sip.challenge_refused"
	KindMediaRefused     = "sip.media_refused"
	KindDialRefused      = "sip.dial_refused"
)

// probeKinds are the events a prober causes: requests from outside the
// registrar/proxy set, scanner user agents, floods, digest harvesting.
// They feed fleet.probe.
var probeKinds = map[string]bool{
	KindForeignSource: true, KindForeignDialog: true, KindREFERRefused: true, KindScanner: true,
	KindINVITEFlood: true, KindChallengeRefused: true, KindMediaRefused: true,
}

// authKinds are failed authentications for the device's account: the
// phone's own (the registrar rejected it: peer is the registrar) and the
// registrar's (someone failed to register as the account: peer is that
// someone). They feed auth.failures, fleet.auth_spray and
// fleet.auth_burst.
var authKinds = map[string]bool{KindSIPAuthFailure: true}

// SecurityEvent is one event from the phone's journal (or the registrar's
// log) about the device.
type SecurityEvent struct {
	Device string    `json:"device"`
	Time   time.Time `json:"time"`
	// Kind is the event kind (KindScanner, ...); lowercase letters,
	// digits, '.' and '_', at most 32 bytes. Kinds no rule uses are
	// accepted and ignored.
	Kind string `json:"kind"`
	// Peer is the remote address the event is about; the zero Addr when
	// it has none (a local control socket peer).
	Peer netip.Addr `json:"peer,omitzero"`
	// Count is how many occurrences the event stands for (the phone's
	// rate limiter folds a flood into one event with a count); 0 is read
	// as 1.
	Count int `json:"count,omitempty"`
}

// CredentialChange is a change of the device's SIP password, certificate
// or other credential, made through the fleet or reported by the PBX.
type CredentialChange struct {
	Device string    `json:"device"`
	Time   time.Time `json:"time"`
	// What names the credential ("sip_password", "certificate"); at most
	// 32 bytes of the kind alphabet.
	What string `json:"what"`
	// Actor is who made it (an admin's name, "device", "pbx"); at most 64
	// bytes, evidence only.
	Actor string `json:"actor,omitempty"`
}

// Bounds on observation fields.
const (
	maxDeviceID  = 64
	maxNumber    = 32
	maxKind      = 32
	maxActor     = 64
	maxCount     = 1 << 20
	maxCallLen   = 24 * time.Hour
	firstValidTS = 946684800 // 2000-01-01: no phone or PBX dates a record before
	// lastValidTS is 100 days before the state's bound (the end of year
	// 9999), so a time plus a hold, block or quarantine stays within it.
	lastValidTS = maxTS - 100*24*3600
)

func (c Call) DeviceID() string             { return c.Device }
func (c Call) At() time.Time                { return c.Time }
func (r Registration) DeviceID() string     { return r.Device }
func (r Registration) At() time.Time        { return r.Time }
func (e SecurityEvent) DeviceID() string    { return e.Device }
func (e SecurityEvent) At() time.Time       { return e.Time }
func (c CredentialChange) DeviceID() string { return c.Device }
func (c CredentialChange) At() time.Time    { return c.Time }

func (c Call) validate() error {
	if err := checkCommon(c.Device, c.Time); err != nil {
		return err
	}
	if c.Direction != Outbound && c.Direction != Inbound {
		return fmt.Errorf("%w: call direction %d", ErrInvalid, c.Direction)
	}
	if !validNumber(c.Number) {
		return fmt.Errorf("%w: call number %q: want +digits, digits, * or # (at most %d)", ErrInvalid, clip(c.Number), maxNumber)
	}
	if c.Duration < 0 || time.Duration(c.Duration) > maxCallLen {
		return fmt.Errorf("%w: call duration %v out of 0..%v", ErrInvalid, time.Duration(c.Duration), maxCallLen)
	}
	if !c.Answered && c.Duration != 0 {
		return fmt.Errorf("%w: unanswered call with duration %v", ErrInvalid, time.Duration(c.Duration))
	}
	return nil
}

func (r Registration) validate() error {
	if err := checkCommon(r.Device, r.Time); err != nil {
		return err
	}
	if !r.Source.IsValid() || r.Source.Zone() != "" {
		return fmt.Errorf("%w: registration source %v", ErrInvalid, r.Source)
	}
	return nil
}

func (e SecurityEvent) validate() error {
	if err := checkCommon(e.Device, e.Time); err != nil {
		return err
	}
	if !validKind(e.Kind) {
		return fmt.Errorf("%w: event kind %q: want [a-z0-9._]{1,%d}", ErrInvalid, clip(e.Kind), maxKind)
	}
	if e.Peer.Zone() != "" {
		return fmt.Errorf("%w: event peer %v has a zone", ErrInvalid, e.Peer)
	}
	if e.Count < 0 || e.Count > maxCount {
		return fmt.Errorf("%w: event count %d out of 0..%d", ErrInvalid, e.Count, maxCount)
	}
	return nil
}

func (c CredentialChange) validate() error {
	if err := checkCommon(c.Device, c.Time); err != nil {
		return err
	}
	if !validKind(c.What) {
		return fmt.Errorf("%w: credential %q: want [a-z0-9._]{1,%d}", ErrInvalid, clip(c.What), maxKind)
	}
	if len(c.Actor) > maxActor || !printable(c.Actor) {
		return fmt.Errorf("%w: credential actor: at most %d printable ASCII bytes", ErrInvalid, maxActor)
	}
	return nil
}

func checkCommon(device string, t time.Time) error {
	if !validDeviceID(device) {
		return fmt.Errorf("%w: device ID %q: want [A-Za-z0-9._:-]{1,%d}", ErrInvalid, clip(device), maxDeviceID)
	}
	if u := t.Unix(); u < firstValidTS || u > lastValidTS {
		return fmt.Errorf("%w: time %v out of range", ErrInvalid, t)
	}
	return nil
}

func validDeviceID(s string) bool {
	if len(s) == 0 || len(s) > maxDeviceID {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

func validKind(s string) bool {
	if len(s) == 0 || len(s) > maxKind {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

func validNumber(s string) bool {
	if len(s) > maxNumber {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c == '*' || c == '#' || c == '+' && i == 0 && len(s) > 1) {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// clip cuts attacker text for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
