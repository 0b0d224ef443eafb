package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Bounds on the security-monitoring records.
const (
	// MaxEventsPerDevice bounds the journal records kept per device;
	// AppendEvents drops the oldest beyond it (EventStream.Truncated counts
	// them).
	MaxEventsPerDevice = 10000
	// MaxEventAppend bounds the records of one AppendEvents.
	MaxEventAppend = 1024
	// MaxEventRecord bounds one stored journal record (crypto/eventlog's
	// largest is about 2.5 KiB).
	MaxEventRecord = 4096
	// MaxEventGaps bounds the gaps an EventStream lists (the newest).
	MaxEventGaps = 64
	// MaxObservation bounds one anomaly observation's encoding.
	MaxObservation = 4096
	// MaxObservationAppend bounds the observations of one append.
	MaxObservationAppend = 4096
	// MaxObservations bounds the observation log; appends beyond it drop
	// the oldest, consumed or not (AnomalyState counts nothing for them:
	// the detector's cursor shows the jump).
	MaxObservations = 1000000
	// MaxAnomalyFinding bounds one finding's encoding.
	MaxAnomalyFinding = 16 << 10
	// MaxAnomalyFindings bounds the findings kept; PutAnomalyFinding drops
	// the oldest beyond it.
	MaxAnomalyFindings = 100000
	// MaxAnomalyState bounds the detector's persisted state (20,000
	// devices at about 8 KiB each in JSON fit with room).
	MaxAnomalyState = 512 << 20
	// MaxAnomalyResponseData bounds a response's bookkeeping.
	MaxAnomalyResponseData = 64 << 10
	// MaxLeaseRole bounds a lease's role name.
	MaxLeaseRole = MaxNameLen
)

// EventGapKind says what a gap in a device's exported journal is.
type EventGapKind string

// Gap kinds.
const (
	// GapTruncated: the phone's journal dropped the records before they
	// were exported, and a signed truncation record of the phone says so.
	GapTruncated EventGapKind = "truncated"
	// GapMissing: records never arrived and nothing the phone signed
	// accounts for them (yet): deleted or altered on the phone.
	GapMissing EventGapKind = "missing"
	// GapReplaced: the phone started a new journal (a new chain ID); the
	// old one ended at From-1 as far as the fleet knows.
	GapReplaced EventGapKind = "replaced"
)

// EventGap is a hole in a device's exported journal.
type EventGap struct {
	Kind EventGapKind `json:"kind"`
	// Chain is the journal the gap is in (for GapReplaced: the new one;
	// OldChain the one replaced).
	Chain    [16]byte `json:"chain"`
	OldChain [16]byte `json:"old_chain,omitzero"`
	// From and To are the missing seqs (for GapReplaced: the old chain's
	// head+1 and the new chain's first seq received - 1, To may be 0).
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
	// NextPrev is the prev hash of the first record received after the
	// gap: a signed truncation record vouching for it explains the gap.
	NextPrev [32]byte `json:"next_prev"`
	// Undelivered is what the explaining truncation record said the phone
	// dropped undelivered (GapTruncated only).
	Undelivered uint64 `json:"undelivered,omitempty"`
	// At is when the fleet found the gap.
	At time.Time `json:"at"`
}

// EventStream is the fleet's account of one device's exported journal.
// The server sets the fields above Rev; the store keeps the ones below.
type EventStream struct {
	Device DeviceID `json:"-"`
	// Chain is the journal ID of the newest record received; Head its seq
	// and HeadHash its chain hash (where the next batch must join).
	Chain    [16]byte `json:"chain"`
	Head     uint64   `json:"head"`
	HeadHash [32]byte `json:"head_hash"`
	// LastSigned is the seq of the newest signed record received (every
	// record up to it is covered by a signature of the identity key).
	LastSigned uint64 `json:"last_signed"`
	// CallSeq is the phone's call-history seq of the last call reported.
	CallSeq uint64 `json:"call_seq,omitempty"`
	// Received counts the records ever accepted; Replaced the journals
	// replaced (new chain IDs after the first).
	Received uint64 `json:"received"`
	Replaced uint64 `json:"replaced,omitempty"`
	// Gaps are the newest MaxEventGaps gaps, oldest first.
	Gaps []EventGap `json:"gaps,omitempty"`
	// UpdatedAt is when the last batch was stored.
	UpdatedAt time.Time `json:"updated_at"`

	// Rev counts the writes (1 for the first): AppendEvents compares it.
	Rev uint64 `json:"rev"`
	// NextPos is the position the next stored record gets; FirstPos the
	// oldest stored record's (NextPos when none is stored).
	NextPos  uint64 `json:"next_pos"`
	FirstPos uint64 `json:"first_pos"`
	// Records and Bytes are what is stored now; Truncated counts the
	// records the store dropped to keep MaxEventsPerDevice.
	Records   int    `json:"records"`
	Bytes     int64  `json:"bytes"`
	Truncated uint64 `json:"truncated,omitempty"`
}

// EventRecord is one stored journal record of a device.
type EventRecord struct {
	// Pos orders a device's records as stored (across journals); set by
	// the store.
	Pos   uint64
	Chain [16]byte
	Seq   uint64
	// Type is the crypto/eventlog record type; Kind and Severity are set
	// for events ("" and 0 otherwise).
	Type     uint8
	Time     time.Time
	Kind     string
	Severity uint8
	// Raw is the record as the phone's journal holds it (1..MaxEventRecord
	// bytes): the evidence, verifiable again with crypto/eventlog.
	Raw []byte
}

// AnomalyObservation is one entry of the observation log the anomaly
// detector consumes: fleet/anomaly's JSON encoding of an observation, in
// the order the fleet received them.
type AnomalyObservation struct {
	// Seq is set by the store: increasing, never reused.
	Seq    uint64
	Device DeviceID
	// At is when the fleet received it.
	At time.Time
	// Data is 1..MaxObservation bytes.
	Data []byte
}

// EventAppend is what one accepted batch adds.
type EventAppend struct {
	// Stream is the device's new state (its store-kept fields are
	// ignored).
	Stream EventStream
	// Records are appended in order, at most MaxEventAppend.
	Records []EventRecord
	// Observations go to the observation log in the same transaction.
	Observations []AnomalyObservation
}

// AnomalyFinding is one finding of the anomaly detector.
type AnomalyFinding struct {
	// ID is the detector's finding ID; PutAnomalyFinding replaces a
	// finding of the same ID (a replayed observation makes it again).
	ID       uint64
	Time     time.Time
	Rule     string
	Severity uint8
	// Devices are the devices it names (at most 32).
	Devices []DeviceID
	// Data is the finding's JSON with the outcome of its responses
	// (1..MaxAnomalyFinding bytes).
	Data []byte
}

// FindingQuery selects findings, newest first.
type FindingQuery struct {
	// Device and Rule, when set, keep the findings that name the device,
	// or are of the rule.
	Device DeviceID
	Rule   string
	// Before is the ID to list below (0: from the newest).
	Before uint64
	// Limit is 1..MaxPageSize.
	Limit int
}

// AnomalyState is the detector's persisted state and how far into the
// observation log it had consumed.
type AnomalyState struct {
	// Rev counts the writes (1 for the first): PutAnomalyState compares
	// it, so a replica that lost its leadership cannot overwrite the new
	// leader's state.
	Rev uint64
	// Cursor is the Seq of the last observation the state includes.
	Cursor uint64
	// Data is fleet/anomaly's MarshalState (1..MaxAnomalyState bytes).
	Data    []byte
	SavedAt time.Time
}

// AnomalyResponseKind is a response that lasts: a block or a quarantine.
type AnomalyResponseKind string

// Response kinds the store keeps (fleet/anomaly's names).
const (
	ResponseBlock      AnomalyResponseKind = "block_outbound"
	ResponseQuarantine AnomalyResponseKind = "quarantine"
)

// AnomalyResponse is a block or quarantine in force (or being undone) for
// a device: what every replica's renewal handler checks, and what the
// detector's leader reconciles pushed overrides with.
type AnomalyResponse struct {
	Device  DeviceID
	Kind    AnomalyResponseKind
	Finding uint64
	Rule    string
	// Until is when it ends.
	Until time.Time
	// Data is the server's bookkeeping (what a block changed, to undo it),
	// at most MaxAnomalyResponseData bytes; nil for none.
	Data      []byte
	UpdatedAt time.Time
}

// Lease is a fleet-wide role held by one process (one replica runs the
// anomaly detector).
type Lease interface {
	// Lost is closed when the lease is lost (the database connection
	// that held it broke); the holder must stop acting on it.
	Lost() <-chan struct{}
	// Release gives the role up.
	Release()
}

// EventStore is the security-monitoring part of Store: devices' exported
// journals, the anomaly detector's observation log, findings, state and
// lasting responses, and the lease that makes one replica the detector.
type EventStore interface {
	// EventStream returns a device's exported-journal state, or
	// ErrNotFound before its first batch (or for no device).
	EventStream(ctx context.Context, id DeviceID) (EventStream, error)
	// AppendEvents stores a batch if the stream's stored Rev is prev (0:
	// none stored yet; another is ErrState, so of replicas racing on one
	// device one wins), in one transaction: the records get positions,
	// the oldest records beyond MaxEventsPerDevice are deleted (and
	// counted in Truncated), the observations are logged, and the stream
	// is written with Rev prev+1 and returned. The device must exist
	// (ErrNotFound).
	AppendEvents(ctx context.Context, id DeviceID, a EventAppend, prev uint64) (EventStream, error)
	// ListEvents returns up to limit (1..MaxPageSize) stored records of a
	// device with Pos after after, in order.
	ListEvents(ctx context.Context, id DeviceID, after uint64, limit int) ([]EventRecord, error)

	// AppendObservations logs observations (at most
	// MaxObservationAppend) and returns the Seq of the last.
	AppendObservations(ctx context.Context, obs []AnomalyObservation) (uint64, error)
	// ListObservations returns up to limit (1..MaxPageSize) observations
	// with Seq after after, in order.
	ListObservations(ctx context.Context, after uint64, limit int) ([]AnomalyObservation, error)
	// DeleteObservations deletes the observations up to through and says
	// how many.
	DeleteObservations(ctx context.Context, through uint64) (int, error)

	// PutAnomalyFinding stores a finding, replacing one of the same ID,
	// and drops the oldest beyond MaxAnomalyFindings.
	PutAnomalyFinding(ctx context.Context, f AnomalyFinding) error
	// ListAnomalyFindings returns a page of findings, newest first; Next
	// is the Before of the following page.
	ListAnomalyFindings(ctx context.Context, q FindingQuery) (Page[AnomalyFinding], error)

	// AnomalyState returns the detector's state, or ErrNotFound.
	AnomalyState(ctx context.Context) (AnomalyState, error)
	// PutAnomalyState writes the state if the stored Rev is prev (0:
	// none) and returns it with Rev prev+1; another is ErrState.
	PutAnomalyState(ctx context.Context, s AnomalyState, prev uint64) (AnomalyState, error)

	// PutAnomalyResponse stores (or replaces) the device's response of
	// its kind.
	PutAnomalyResponse(ctx context.Context, r AnomalyResponse) error
	// GetAnomalyResponse returns the device's response of a kind, or
	// ErrNotFound.
	GetAnomalyResponse(ctx context.Context, id DeviceID, kind AnomalyResponseKind) (AnomalyResponse, error)
	// ListAnomalyResponses returns up to limit (1..MaxPageSize)
	// responses, soonest Until first.
	ListAnomalyResponses(ctx context.Context, limit int) ([]AnomalyResponse, error)
	// DeleteAnomalyResponse removes one; ErrNotFound when none.
	DeleteAnomalyResponse(ctx context.Context, id DeviceID, kind AnomalyResponseKind) error

	// Lead takes a fleet-wide role for this process, or returns ErrState
	// when another process holds it. With bbolt (one process owns the
	// file) it is granted to the first caller of the process; with
	// PostgreSQL it is a session advisory lock on a connection of its own,
	// released when the lease is released or the connection breaks.
	Lead(ctx context.Context, role string) (Lease, error)
}

// ValidateEventAppend checks an AppendEvents call and returns the append as
// it is to be stored: times normalised, slices copied.
func ValidateEventAppend(id DeviceID, a EventAppend) (EventAppend, error) {
	if err := id.Validate(); err != nil {
		return EventAppend{}, err
	}
	s := a.Stream
	if len(s.Gaps) > MaxEventGaps {
		return EventAppend{}, fmt.Errorf("%w: %d gaps, want at most %d", ErrInvalid, len(s.Gaps), MaxEventGaps)
	}
	if err := checkTime("updated_at", s.UpdatedAt); err != nil {
		return EventAppend{}, err
	}
	s.Device, s.UpdatedAt = id, NormTime(s.UpdatedAt)
	gaps := make([]EventGap, len(s.Gaps))
	for i, g := range s.Gaps {
		switch g.Kind {
		case GapTruncated, GapMissing, GapReplaced:
		default:
			return EventAppend{}, fmt.Errorf("%w: gap kind %.16q", ErrInvalid, string(g.Kind))
		}
		if err := checkTime("gap time", g.At); err != nil {
			return EventAppend{}, err
		}
		g.At = NormTime(g.At)
		gaps[i] = g
	}
	s.Gaps = cloneOrNil(gaps)
	if len(a.Records) > MaxEventAppend {
		return EventAppend{}, fmt.Errorf("%w: %d records, want at most %d", ErrInvalid, len(a.Records), MaxEventAppend)
	}
	recs := make([]EventRecord, len(a.Records))
	for i, r := range a.Records {
		if err := r.validate(); err != nil {
			return EventAppend{}, fmt.Errorf("record %d: %w", i, err)
		}
		r.Time, r.Raw, r.Pos = NormTime(r.Time), append([]byte(nil), r.Raw...), 0
		recs[i] = r
	}
	obs, err := validateObservations(a.Observations)
	if err != nil {
		return EventAppend{}, err
	}
	for _, o := range obs {
		if o.Device != id {
			return EventAppend{}, fmt.Errorf("%w: observation of device %s in a batch of %s", ErrInvalid, o.Device, id)
		}
	}
	a.Stream, a.Records, a.Observations = s, cloneOrNil(recs), obs
	return a, nil
}

func (r EventRecord) validate() error {
	if len(r.Raw) == 0 || len(r.Raw) > MaxEventRecord {
		return fmt.Errorf("%w: record of %d bytes, want 1..%d", ErrInvalid, len(r.Raw), MaxEventRecord)
	}
	if r.Seq == 0 || r.Seq > 1<<62 {
		return fmt.Errorf("%w: record seq %d", ErrInvalid, r.Seq)
	}
	if r.Type < 1 || r.Type > 4 || r.Severity > 7 {
		return fmt.Errorf("%w: record type %d severity %d", ErrInvalid, r.Type, r.Severity)
	}
	if r.Kind != "" {
		if err := checkKind("event kind", r.Kind); err != nil {
			return err
		}
	}
	// The server clamps a phone's time into the range (the record's own
	// bytes keep what the phone said).
	return checkTime("record time", r.Time)
}

// checkKind accepts an event kind or rule name: 1..32 bytes of
// [a-z0-9._], a letter first.
func checkKind(field, s string) error {
	if s == "" || len(s) > 32 {
		return fmt.Errorf("%w: %s of %d bytes, want 1..32", ErrInvalid, field, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '_')) {
			return fmt.Errorf("%w: %s %q: byte %d (0x%02x) not allowed", ErrInvalid, field, s, i, c)
		}
	}
	return nil
}

// ValidateObservations checks an AppendObservations call and returns
// copies to store.
func ValidateObservations(obs []AnomalyObservation) ([]AnomalyObservation, error) {
	return validateObservations(obs)
}

func validateObservations(obs []AnomalyObservation) ([]AnomalyObservation, error) {
	if len(obs) > MaxObservationAppend {
		return nil, fmt.Errorf("%w: %d observations, want at most %d", ErrInvalid, len(obs), MaxObservationAppend)
	}
	out := make([]AnomalyObservation, len(obs))
	for i, o := range obs {
		if err := o.Device.Validate(); err != nil {
			return nil, fmt.Errorf("observation %d: %w", i, err)
		}
		if len(o.Data) == 0 || len(o.Data) > MaxObservation {
			return nil, fmt.Errorf("%w: observation %d of %d bytes, want 1..%d", ErrInvalid, i, len(o.Data), MaxObservation)
		}
		if err := checkTime("observation time", o.At); err != nil {
			return nil, err
		}
		o.Seq, o.At, o.Data = 0, NormTime(o.At), append([]byte(nil), o.Data...)
		out[i] = o
	}
	return cloneOrNil(out), nil
}

// Validate checks a finding for PutAnomalyFinding.
func (f AnomalyFinding) Validate() error {
	if f.ID == 0 || f.ID > 1<<62 {
		return fmt.Errorf("%w: finding ID %d", ErrInvalid, f.ID)
	}
	if err := checkKind("rule", f.Rule); err != nil {
		return err
	}
	if f.Severity > 7 {
		return fmt.Errorf("%w: finding severity %d", ErrInvalid, f.Severity)
	}
	if len(f.Devices) > 32 {
		return fmt.Errorf("%w: finding names %d devices, want at most 32", ErrInvalid, len(f.Devices))
	}
	for _, d := range f.Devices {
		if err := d.Validate(); err != nil {
			return err
		}
	}
	if len(f.Data) == 0 || len(f.Data) > MaxAnomalyFinding {
		return fmt.Errorf("%w: finding of %d bytes, want 1..%d", ErrInvalid, len(f.Data), MaxAnomalyFinding)
	}
	return checkTime("finding time", f.Time)
}

// Validate checks a query.
func (q FindingQuery) Validate() error {
	if q.Device != "" {
		if err := q.Device.Validate(); err != nil {
			return err
		}
	}
	if q.Rule != "" {
		if err := checkKind("rule", q.Rule); err != nil {
			return err
		}
	}
	return ValidLimit(q.Limit, MaxPageSize)
}

// Validate checks a state for PutAnomalyState.
func (s AnomalyState) Validate() error {
	if len(s.Data) == 0 || len(s.Data) > MaxAnomalyState {
		return fmt.Errorf("%w: anomaly state of %d bytes, want 1..%d", ErrInvalid, len(s.Data), MaxAnomalyState)
	}
	if s.Cursor > 1<<62 {
		return fmt.Errorf("%w: anomaly cursor %d", ErrInvalid, s.Cursor)
	}
	return checkTime("saved_at", s.SavedAt)
}

// Validate checks a kind.
func (k AnomalyResponseKind) Validate() error {
	switch k {
	case ResponseBlock, ResponseQuarantine:
		return nil
	}
	return fmt.Errorf("%w: response kind %.16q, want %s or %s", ErrInvalid, string(k), ResponseBlock, ResponseQuarantine)
}

// Validate checks a response for PutAnomalyResponse.
func (r AnomalyResponse) Validate() error {
	if err := r.Device.Validate(); err != nil {
		return err
	}
	if err := r.Kind.Validate(); err != nil {
		return err
	}
	if err := checkKind("rule", r.Rule); err != nil {
		return err
	}
	if len(r.Data) > MaxAnomalyResponseData {
		return fmt.Errorf("%w: response data of %d bytes, want at most %d", ErrInvalid, len(r.Data), MaxAnomalyResponseData)
	}
	if err := checkTime("until", r.Until); err != nil {
		return err
	}
	return checkTime("updated_at", r.UpdatedAt)
}

// CheckLeaseRole validates a role name for Lead.
func CheckLeaseRole(role string) error { return checkName("lease role", role) }

// MarshalEventStream is the stored form of a stream, the same in every
// implementation.
func MarshalEventStream(s EventStream) ([]byte, error) { return json.Marshal(s) }

// UnmarshalEventStream reads a stored stream.
func UnmarshalEventStream(id DeviceID, b []byte) (EventStream, error) {
	var s EventStream
	if err := json.Unmarshal(b, &s); err != nil {
		return EventStream{}, fmt.Errorf("decode event stream of %s: %w", id, err)
	}
	s.Device, s.UpdatedAt = id, s.UpdatedAt.UTC()
	for i := range s.Gaps {
		s.Gaps[i].At = s.Gaps[i].At.UTC()
	}
	if len(s.Gaps) == 0 {
		s.Gaps = nil
	}
	return s, nil
}

// ClampTime brings t into the range a stored time may take: a phone whose
// clock is wrong still has its records kept (their bytes say what it
// claimed).
func ClampTime(t time.Time) time.Time {
	switch {
	case t.Before(minTime):
		return minTime
	case !t.Before(maxTime):
		return maxTime.Add(-time.Second)
	}
	return t
}
