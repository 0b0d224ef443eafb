package api

import (
	"errors"
	"fmt"
	"time"
)

// Paths of security monitoring.
const (
	// PathEvents: POST, mutual TLS with a device certificate, a batch of
	// the phone's journal records (EventBatch → EventAck); GET answers
	// the fleet's cursor of the phone's journal (EventAck), so a phone
	// that lost its own resumes where the fleet is.
	PathEvents = "/v1/events"
	// PathAdminFindings: GET the anomaly detector's findings, newest
	// first (?device=&rule=&before=&limit=, FindingsPage).
	PathAdminFindings = "/v1/admin/findings"
	// PathAdminDeviceEvents: GET a device's exported journal as the fleet
	// holds it (?after=&limit=, DeviceEvents).
	PathAdminDeviceEvents = "/v1/admin/devices/{id}/events"
	// PathAdminLift: POST ends a device's outbound block or quarantine
	// early (LiftRequest → FindingsPage's Active).
	PathAdminLift = "/v1/admin/devices/{id}/lift"
)

// Bounds of an event batch. A phone sends at most MaxEventBatchRecords
// records (its journal checkpoints every 64 by default, so a batch ends
// in a signed record well within it).
const (
	MaxEventBatchBody    = 1 << 20
	MaxEventBatchRecords = 512
	MaxEventBatchCalls   = 256
	// MaxEventRecord bounds one record (crypto/eventlog's largest is
	// about 2.5 KiB).
	MaxEventRecord = 4096
	// MaxCallNumber bounds a call's number.
	MaxCallNumber = 32
)

// EventBatch is what a phone exports to the fleet.
type EventBatch struct {
	// Records are journal records exactly as the phone's journal stores
	// them (crypto/eventlog): consecutive seqs, each chained to the one
	// before, the last one signed by the identity key. Empty when the
	// batch carries only calls.
	Records [][]byte `json:"records,omitempty"`
	// Calls are the calls the phone's history gained since the last
	// batch the fleet acknowledged (CallSeq), oldest first. Optional: a
	// phone sends them only when told to (they say whom it called).
	Calls []CallRecord `json:"calls,omitempty"`
}

// CallRecord is one ended call of the phone's history.
type CallRecord struct {
	// Seq is the call's number in the phone's history: increasing.
	Seq   uint64    `json:"seq"`
	Start time.Time `json:"start"`
	// Direction is "out" or "in".
	Direction string `json:"direction"`
	// Number is the other party: E.164 with its '+', or digits of an
	// extension; "" when unknown (a SIP URI that is no number).
	Number string `json:"number,omitempty"`
	// DurationSeconds is how long the call was connected.
	DurationSeconds uint32 `json:"duration_s"`
	Answered        bool   `json:"answered"`
}

// Validate checks the batch's bounds and forms; the records' contents are
// the server's to prove.
func (b *EventBatch) Validate() error {
	if len(b.Records) == 0 && len(b.Calls) == 0 {
		return errors.New("an empty batch")
	}
	if len(b.Records) > MaxEventBatchRecords {
		return fmt.Errorf("%d records, at most %d", len(b.Records), MaxEventBatchRecords)
	}
	for i, r := range b.Records {
		if len(r) == 0 || len(r) > MaxEventRecord {
			return fmt.Errorf("record %d of %d bytes, want 1..%d", i, len(r), MaxEventRecord)
		}
	}
	if len(b.Calls) > MaxEventBatchCalls {
		return fmt.Errorf("%d calls, at most %d", len(b.Calls), MaxEventBatchCalls)
	}
	for i, c := range b.Calls {
		if err := c.Validate(); err != nil {
			return fmt.Errorf("call %d: %w", i, err)
		}
		if i > 0 && c.Seq <= b.Calls[i-1].Seq {
			return fmt.Errorf("call %d has seq %d after %d", i, c.Seq, b.Calls[i-1].Seq)
		}
	}
	return nil
}

// Validate checks one call.
func (c CallRecord) Validate() error {
	if c.Seq == 0 || c.Seq > 1<<62 {
		return fmt.Errorf("call seq %d", c.Seq)
	}
	if c.Direction != "out" && c.Direction != "in" {
		return fmt.Errorf("call direction %.8q, want out or in", c.Direction)
	}
	if len(c.Number) > MaxCallNumber {
		return fmt.Errorf("call number of %d bytes, at most %d", len(c.Number), MaxCallNumber)
	}
	for i := 0; i < len(c.Number); i++ {
		if ch := c.Number[i]; !(ch >= '0' && ch <= '9' || ch == '*' || ch == '#' || ch == '+' && i == 0 && len(c.Number) > 1) {
			return fmt.Errorf("call number: byte %d (0x%02x) not allowed", i, ch)
		}
	}
	if !c.Answered && c.DurationSeconds != 0 {
		return fmt.Errorf("an unanswered call lasting %d s", c.DurationSeconds)
	}
	if c.DurationSeconds > 24*3600 {
		return fmt.Errorf("a call of %d s, at most a day", c.DurationSeconds)
	}
	if c.Start.Year() < 2000 || c.Start.Year() > 9999 {
		return fmt.Errorf("call start %v", c.Start)
	}
	return nil
}

// EventAck is the fleet's cursor of a phone's journal: the newest record
// it holds (Chain, Seq, Hash: the next batch must chain to it), and the
// newest call.
type EventAck struct {
	// Chain is the journal ID in hex ("" before the first batch).
	Chain string `json:"chain,omitempty"`
	Seq   uint64 `json:"seq"`
	// Hash is the chain hash of record Seq, hex.
	Hash    string `json:"hash,omitempty"`
	CallSeq uint64 `json:"call_seq"`
	// Stored is how many records of this batch were new; Gaps how many
	// gaps the batch revealed (records the fleet will never get).
	Stored int `json:"stored"`
	Gaps   int `json:"gaps,omitempty"`
}

// Evidence is one fact behind a finding.
type Evidence struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// DialOverride is the dialling policy an outbound block pushes
// ([account.dialing] of every account).
type DialOverride struct {
	Allow         []string `json:"allow"`
	International bool     `json:"international"`
}

// FindingResponse is one response of a finding and what became of it.
type FindingResponse struct {
	// Kind is "alert", "block_outbound" or "quarantine".
	Kind   string    `json:"kind"`
	Device string    `json:"device,omitempty"`
	Until  time.Time `json:"until,omitzero"`
	// Override is the dialling policy a block pushes.
	Override *DialOverride `json:"override,omitempty"`
	// Outcome is "done", "failed" or "pending" (a block waiting for the
	// director); Detail says why or where.
	Outcome string `json:"outcome"`
	Detail  string `json:"detail,omitempty"`
}

// Finding is one finding of hpfleet's anomaly detector (fleet/anomaly)
// with what its responses did.
type Finding struct {
	ID       uint64    `json:"id"`
	Rule     string    `json:"rule"`
	Severity string    `json:"severity"`
	Time     time.Time `json:"time"`
	// Devices are the devices concerned (at most 32; MoreDevices counts
	// the others).
	Devices     []string `json:"devices,omitempty"`
	MoreDevices int      `json:"more_devices,omitempty"`
	// Source is the source network of a fleet rule, "" otherwise.
	Source      string            `json:"source,omitempty"`
	Summary     string            `json:"summary"`
	Evidence    []Evidence        `json:"evidence,omitempty"`
	Recommended []string          `json:"recommended,omitempty"`
	Responses   []FindingResponse `json:"responses,omitempty"`
}

// ActiveResponse is a block or quarantine in force.
type ActiveResponse struct {
	DeviceID string    `json:"device_id"`
	Kind     string    `json:"kind"`
	Rule     string    `json:"rule"`
	Finding  uint64    `json:"finding"`
	Until    time.Time `json:"until"`
}

// FindingsPage is a page of findings (Next is the next page's before),
// and the responses in force.
type FindingsPage struct {
	Findings []Finding        `json:"findings"`
	Next     string           `json:"next,omitempty"`
	Active   []ActiveResponse `json:"active,omitempty"`
}

// LiftRequest names the response to end: "block_outbound" or
// "quarantine".
type LiftRequest struct {
	Kind string `json:"kind"`
}

// EventGap is a hole in a device's exported journal.
type EventGap struct {
	// Kind is "truncated" (the phone's journal dropped the records and
	// signed a truncation record saying so), "missing" (nothing the phone
	// signed accounts for them: deleted or altered on the phone) or
	// "replaced" (the phone started a new journal).
	Kind     string `json:"kind"`
	Chain    string `json:"chain"`
	OldChain string `json:"old_chain,omitempty"`
	From     uint64 `json:"from"`
	To       uint64 `json:"to"`
	// Undelivered is how many of the dropped records the phone's
	// truncation record says no exporter had delivered.
	Undelivered uint64    `json:"undelivered,omitempty"`
	At          time.Time `json:"at"`
}

// EventRecord is one stored journal record, decoded.
type EventRecord struct {
	Pos   uint64    `json:"pos"`
	Chain string    `json:"chain"`
	Seq   uint64    `json:"seq"`
	Type  string    `json:"type"`
	Time  time.Time `json:"time"`
	Hash  string    `json:"hash"`
	// Event fields, for event records.
	Kind     string            `json:"kind,omitempty"`
	Severity string            `json:"severity,omitempty"`
	Account  string            `json:"account,omitempty"`
	Peer     string            `json:"peer,omitempty"`
	Detail   map[string]string `json:"detail,omitempty"`
	// Reason is a checkpoint's; FirstSeq and Dropped a truncation's.
	Reason   string `json:"reason,omitempty"`
	FirstSeq uint64 `json:"first_seq,omitempty"`
	Dropped  uint64 `json:"dropped,omitempty"`
}

// DeviceEvents is a device's exported journal as the fleet holds it: the
// cursor, what went missing, and a page of records (Next is the next
// page's after).
type DeviceEvents struct {
	DeviceID   string `json:"device_id"`
	Chain      string `json:"chain,omitempty"`
	Head       uint64 `json:"head"`
	HeadHash   string `json:"head_hash,omitempty"`
	LastSigned uint64 `json:"last_signed"`
	CallSeq    uint64 `json:"call_seq"`
	// Received counts the records ever accepted, Stored those kept now,
	// Truncated those the fleet dropped to keep its bound; Replaced the
	// journals the phone started anew.
	Received  uint64        `json:"received"`
	Stored    int           `json:"stored"`
	Truncated uint64        `json:"truncated"`
	Replaced  uint64        `json:"replaced"`
	UpdatedAt time.Time     `json:"updated_at,omitzero"`
	Gaps      []EventGap    `json:"gaps,omitempty"`
	Records   []EventRecord `json:"records"`
	Next      string        `json:"next,omitempty"`
}
