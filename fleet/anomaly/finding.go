package anomaly

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Severity is an RFC 5424 §6.2.1 severity: 0 (emergency) to 7 (debug).
type Severity uint8

// RFC 5424 §6.2.1 Table 2.
const (
	SeverityEmergency Severity = iota
	SeverityAlert
	SeverityCritical
	SeverityError
	SeverityWarning
	SeverityNotice
	SeverityInfo
	SeverityDebug
)

var severityNames = [...]string{"emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"}

func (s Severity) String() string {
	if s.Valid() {
		return severityNames[s]
	}
	return "severity(" + strconv.Itoa(int(s)) + ")"
}

// Valid reports whether s is one of the eight RFC 5424 severities.
func (s Severity) Valid() bool { return s <= SeverityDebug }

// MarshalText renders the name.
func (s Severity) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("%w: severity %d", ErrInvalid, s)
	}
	return []byte(s.String()), nil
}

// UnmarshalText reads a name.
func (s *Severity) UnmarshalText(b []byte) error {
	for i, n := range severityNames {
		if n == string(b) {
			*s = Severity(i)
			return nil
		}
	}
	return fmt.Errorf("%w: severity %q: want one of %s", ErrInvalid, clip(string(b)), strings.Join(severityNames[:], ", "))
}

// Evidence is one fact behind a finding ("calls_this_hour": "42").
type Evidence struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Bounds on a finding.
const (
	maxFindingDevices = 32
	maxEvidence       = 12
)

// Finding is what a rule concluded from an observation.
type Finding struct {
	// ID numbers findings in the order the detector made them; it
	// continues across MarshalState/UnmarshalState.
	ID       uint64   `json:"id"`
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	// Time is the time of the observation that completed the evidence.
	Time time.Time `json:"time"`
	// Devices are the devices concerned (the device for a device rule;
	// the first devices seen for a fleet rule), at most 32; MoreDevices
	// counts the others.
	Devices     []string `json:"devices,omitempty"`
	MoreDevices int      `json:"more_devices,omitempty"`
	// Source is the source network (fleet.probe, fleet.auth_spray) or the
	// registration network (reg.*, fleet.new_network); zero otherwise.
	Source netip.Prefix `json:"source,omitzero"`
	// Summary is one line for a person.
	Summary  string     `json:"summary"`
	Evidence []Evidence `json:"evidence,omitempty"`
	// Recommended are the responses the rule is meant to lead to;
	// Responses those the admin enabled, to be carried out.
	Recommended []ResponseKind `json:"recommended,omitempty"`
	Responses   []Response     `json:"responses,omitempty"`
}

// Message is the finding on one line (a syslog MSG): rule, severity,
// devices, summary.
func (f Finding) Message() string {
	var b strings.Builder
	fmt.Fprintf(&b, "anomaly %s (%s)", f.Rule, f.Severity)
	if len(f.Devices) > 0 {
		b.WriteString(" device ")
		b.WriteString(strings.Join(f.Devices, ","))
		if f.MoreDevices > 0 {
			fmt.Fprintf(&b, " and %d more", f.MoreDevices)
		}
	}
	if f.Source.IsValid() {
		fmt.Fprintf(&b, " source %s", f.Source)
	}
	b.WriteString(": ")
	b.WriteString(f.Summary)
	return b.String()
}

// Response is one action the server carries out for a finding.
type Response struct {
	Kind ResponseKind `json:"kind"`
	// Rule and Finding name what caused it.
	Rule    string `json:"rule"`
	Finding uint64 `json:"finding"`
	// Device is the device a block or quarantine applies to ("" for an
	// alert).
	Device string `json:"device,omitempty"`
	// Until is when a block or quarantine ends (zero for an alert).
	Until time.Time `json:"until,omitzero"`
	// Override is the dialling policy to push for a block (nil
	// otherwise).
	Override *DialOverride `json:"override,omitempty"`
}

// DialOverride is the dialling policy a block pushes to the phone through
// its configuration: the keys of the phone's [account.dialing] table, for
// every account of the device, until the response's Until, after which
// the server pushes the admin's own policy back. An allow list of the
// emergency numbers is what blocks: the phone dials nothing else (its
// max_per_hour = 0 would mean "no cap", not "no calls").
type DialOverride struct {
	Allow         []string `json:"allow"`
	International bool     `json:"international"`
}

// Alerter is what the server hands findings to whose rule has Alert set:
// a syslog exporter (Finding.Message as MSG, the JSON as structured data)
// or a webhook (the finding's JSON as body). The server calls it; the
// detector never does I/O.
type Alerter interface {
	Alert(ctx context.Context, f Finding) error
}
