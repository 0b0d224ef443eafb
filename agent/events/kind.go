package events

import (
	"fmt"
	"strconv"

	"github.com/hardphone/hardphone/crypto/eventlog"
)

// Kind names what happened. It doubles as the syslog MSGID (RFC 5424
// §6.2.7: at most 32 printable US-ASCII characters), so every kind is
// lowercase ASCII letters, digits, '.' and '_'.
type Kind string

// The kinds the agent emits. Each has a default severity (Kind.Severity).
const (
	// KindSIPAuthFailure: the registrar rejected our digest credentials
	// (401/407 after we answered a challenge, or 403).
	KindSIPAuthFailure Kind = "sip.auth_failure"
	// KindControlRefused: a peer on the control socket was refused (wrong
	// uid, bad request before authentication).
	KindControlRefused Kind = "control.refused"
	// KindForeignSource: a SIP request from a source outside the
	// registrar/proxy set was refused.
	KindForeignSource Kind = "sip.foreign_source"
	// KindForeignDialog: an in-dialog request that matches no dialog of ours.
	KindForeignDialog Kind = "sip.foreign_dialog"
	// KindREFERRefused: a REFER (call transfer) refused by policy.
	KindREFERRefused Kind = "sip.refer_refused"
	// KindScanner: a request carried a known scanner User-Agent
	// ("friendly-scanner", "sipvicious", ...).
	KindScanner Kind = "sip.scanner"
	// KindINVITEFlood: INVITEs above the rate the policy allows.
	KindINVITEFlood Kind = "sip.invite_flood"
	// KindCallCap: a call refused because the concurrent-call cap was hit.
	KindCallCap Kind = "sip.call_cap"
	// KindChallengeRefused: a digest challenge the phone would not answer
	// (another realm, weaker than digest_min, not over the registrar's
	// flow): a digest-harvesting attempt or a misconfigured registrar.
	KindChallengeRefused Kind = "sip.challenge_refused"
	// KindMediaRefused: an SDP aimed the phone's media at an address it
	// refuses (loopback, link-local, multicast, outside rtp.peers).
	KindMediaRefused Kind = "sip.media_refused"
	// KindDialRefused: an outbound call refused by the account's dialling
	// policy (the toll-fraud guard).
	KindDialRefused Kind = "sip.dial_refused"
	// KindSRTPAuthFailure: SRTP/SRTCP authentication failures on a call
	// beyond the noise threshold.
	KindSRTPAuthFailure Kind = "srtp.auth_failure"
	// KindSRTPReplay: SRTP/SRTCP replays beyond the noise threshold.
	KindSRTPReplay Kind = "srtp.replay"
	// KindLockdownDrift: the running system no longer matches the lockdown
	// policy (a listener, rule or service that should not be there).
	KindLockdownDrift Kind = "lockdown.drift"
	// KindRollbackAttempt: an update bundle below the anti-rollback floor
	// was offered and refused.
	KindRollbackAttempt Kind = "update.rollback_attempt"
	// KindBootBelowFloor: the running image is below the anti-rollback
	// floor.
	KindBootBelowFloor Kind = "boot.below_floor"
	// KindCertNearExpiry: a certificate we present or pin expires soon
	// (or has expired). Its severity follows the days_left detail
	// (NearExpirySeverity), not the kind alone.
	KindCertNearExpiry Kind = "cert.near_expiry"
	// KindConfigRevert: a new configuration was refused or rolled back and
	// the previous one stays.
	KindConfigRevert Kind = "config.revert"
	// KindDeviceRetired: the fleet retired the phone; its credentials were
	// wiped.
	KindDeviceRetired Kind = "provision.retired"
	// KindStaleMetadata: signed metadata (update, configuration) is past
	// its expiry.
	KindStaleMetadata Kind = "provision.stale_metadata"

	// KindSuppressed is written by the Recorder: events of one kind were
	// suppressed by the rate limit; its detail says how many.
	KindSuppressed Kind = "events.suppressed"
	// KindExportGap is written by the Journal: a truncation dropped events
	// the exporter had not delivered; its detail says how many.
	KindExportGap Kind = "events.export_gap"
	// KindJournalReset is written by the Journal as the first event of a
	// new chain, when the stored journal could not be continued (its
	// records or bookkeeping gone or damaged); the old records are kept
	// aside in events/damaged.
	KindJournalReset Kind = "events.journal_reset"
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
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return "severity(" + strconv.Itoa(int(s)) + ")"
}

// Valid reports whether s is one of the eight RFC 5424 severities.
func (s Severity) Valid() bool { return s <= SeverityDebug }

// MarshalText renders the name, for JSON.
func (s Severity) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("severity %d out of range", s)
	}
	return []byte(s.String()), nil
}

// UnmarshalText parses a name.
func (s *Severity) UnmarshalText(b []byte) error {
	for i, n := range severityNames {
		if n == string(b) {
			*s = Severity(i)
			return nil
		}
	}
	return fmt.Errorf("severity %q unknown", b)
}

// kindInfo is what the model knows about a kind: its default severity and
// the words the syslog MSG starts with.
type kindInfo struct {
	sev  Severity
	text string
}

var kinds = map[Kind]kindInfo{
	KindSIPAuthFailure:   {SeverityWarning, "SIP digest authentication rejected by registrar"},
	KindControlRefused:   {SeverityWarning, "control socket peer refused"},
	KindForeignSource:    {SeverityNotice, "SIP request from a foreign source refused"},
	KindForeignDialog:    {SeverityNotice, "SIP request for a foreign dialog refused"},
	KindREFERRefused:     {SeverityNotice, "REFER refused by policy"},
	KindScanner:          {SeverityWarning, "SIP scanner user agent seen"},
	KindINVITEFlood:      {SeverityWarning, "INVITE flood"},
	KindCallCap:          {SeverityNotice, "call refused at the concurrent-call cap"},
	KindChallengeRefused: {SeverityWarning, "SIP digest challenge refused"},
	KindMediaRefused:     {SeverityWarning, "SDP media destination refused"},
	KindDialRefused:      {SeverityWarning, "outbound call refused by the dialling policy"},
	KindSRTPAuthFailure:  {SeverityWarning, "SRTP authentication failures beyond noise"},
	KindSRTPReplay:       {SeverityWarning, "SRTP replays beyond noise"},
	KindLockdownDrift:    {SeverityCritical, "lockdown drift: running system differs from policy"},
	KindRollbackAttempt:  {SeverityCritical, "update below the anti-rollback floor refused"},
	KindBootBelowFloor:   {SeverityAlert, "booted image below the anti-rollback floor"},
	KindCertNearExpiry:   {SeverityWarning, "certificate near expiry"},
	KindConfigRevert:     {SeverityError, "configuration reverted"},
	KindStaleMetadata:    {SeverityError, "signed metadata stale"},
	KindDeviceRetired:    {SeverityCritical, "retired by the fleet: credentials wiped"},
	KindSuppressed:       {SeverityNotice, "events suppressed by the rate limit"},
	KindExportGap:        {SeverityError, "journal truncated events not yet exported"},
	KindJournalReset:     {SeverityCritical, "event journal could not be continued; a new chain starts"},
}

// Kinds returns every kind the model knows, for documentation and tests.
func Kinds() []Kind {
	out := make([]Kind, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	sortKinds(out)
	return out
}

// Known reports whether k is one of the kinds above.
func (k Kind) Known() bool {
	_, ok := kinds[k]
	return ok
}

// Severity is the kind's default severity (SeverityNotice for an unknown
// kind). An event's own severity can depend on its detail too
// (severityOf).
func (k Kind) Severity() Severity {
	if i, ok := kinds[k]; ok {
		return i.sev
	}
	return SeverityNotice
}

// maxKind bounds a kind: RFC 5424 §6.2.7 allows a MSGID of 32 octets.
const maxKind = eventlog.MaxKind

// wellFormed reports whether k fits the kind alphabet and length. A journal
// written by a newer binary may hold kinds this one does not know; they
// still decode when well formed.
func (k Kind) wellFormed() bool { return eventlog.WellFormedKind(string(k)) }

// DetailDaysLeft is the cert.near_expiry detail key holding the whole days
// a certificate has left: floor((NotAfter - now) / 24h), negative once it
// has expired.
const DetailDaysLeft = "days_left"

// NearExpirySeverity grades a certificate by the whole days it has left:
// expired (below 0) is critical, since every TLS session that presents or
// checks it fails from then on; under 3 days an error; under 14 a warning;
// otherwise a notice.
func NearExpirySeverity(daysLeft int) Severity {
	switch {
	case daysLeft < 0:
		return SeverityCritical
	case daysLeft < 3:
		return SeverityError
	case daysLeft < 14:
		return SeverityWarning
	}
	return SeverityNotice
}

// severityOf is the severity an event of kind k with detail d is written
// with: the kind's, except for cert.near_expiry, which its days_left grades
// (an event without a readable days_left keeps the kind's warning). The
// emitter never sets a severity directly.
func severityOf(k Kind, d Detail) Severity {
	if k == KindCertNearExpiry {
		if n, err := strconv.Atoi(d[DetailDaysLeft]); err == nil {
			return NearExpirySeverity(n)
		}
	}
	return k.Severity()
}
