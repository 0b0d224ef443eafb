package events

import (
	"time"

	"github.com/hardphone/hardphone/crypto/eventlog"
)

// A journal record is the value stored in bbolt under its sequence number
// (u64 big endian). Its format (header, event and signed bodies, what the
// signatures cover, the canonical encoding) is crypto/eventlog's, which the
// fleet shares to verify what phones export; see the diagram there.
const (
	headerLen  = eventlog.HeaderLen
	chainIDLen = eventlog.ChainIDLen
	keyIDLen   = eventlog.KeyIDLen
	maxSigLen  = eventlog.MaxSigLen
)

// RecordType tells what a record holds.
type RecordType = eventlog.RecordType

// Record types.
const (
	RecordEvent      = eventlog.RecordEvent
	RecordGenesis    = eventlog.RecordGenesis
	RecordCheckpoint = eventlog.RecordCheckpoint
	RecordTruncation = eventlog.RecordTruncation
)

// Reason says why a checkpoint was written.
type Reason = eventlog.Reason

// Checkpoint reasons.
const (
	ReasonCount  = eventlog.ReasonCount  // every N records
	ReasonTime   = eventlog.ReasonTime   // the oldest unsigned record is older than T
	ReasonExport = eventlog.ReasonExport // before the exporter reports the journal delivered
	ReasonClose  = eventlog.ReasonClose  // the journal was closed
	ReasonAsked  = eventlog.ReasonAsked  // Checkpoint was called
)

// Hash is a SHA-256 chain hash.
type Hash = eventlog.Hash

// Signed holds the fields of a signed record (genesis, checkpoint,
// truncation).
type Signed = eventlog.Signed

// Record is one decoded journal record.
type Record struct {
	Seq  uint64
	Type RecordType
	// Time is when the record was written (for an event: when it happened).
	Time time.Time
	// Prev is the hash of the record before; Hash is this record's.
	Prev, Hash Hash
	// Event is set for RecordEvent, nil otherwise.
	Event *Event
	// Signed is set for genesis, checkpoint and truncation records.
	Signed *Signed
	// Err is set by List for a record that does not decode (the other
	// fields then hold only Seq and Hash) or sits under the wrong key.
	Err error
	// chain is the journal ID in hex, set by the exporter on event
	// records for their syslog message.
	chain string
	// raw is the stored value; Size is its length.
	raw []byte
}

// Size is the record's stored length in bytes.
func (r *Record) Size() int { return len(r.raw) }

// Raw is the record as stored (a copy): what the fleet exporter ships and
// crypto/eventlog decodes.
func (r *Record) Raw() []byte { return append([]byte(nil), r.raw...) }

// maxTimeMicro bounds a record's time to years 1970..9999, what an RFC 5424
// FULL-DATE (4-digit year) can carry.
var maxTimeMicro = eventlog.MaxTimeMicro

func logEvent(ev *Event) *eventlog.Event {
	return &eventlog.Event{Severity: uint8(ev.Severity), Kind: string(ev.Kind), Account: ev.Account, Peer: ev.Peer, Detail: ev.Detail}
}

// encodeEvent returns the record of a sanitized event.
func encodeEvent(prev Hash, ev *Event) []byte {
	return eventlog.EncodeEvent(prev, ev.Seq, ev.Time, logEvent(ev))
}

// encodeSigned returns a signed record without its signature; sealSigned
// appends the signature.
func encodeSigned(prev Hash, t RecordType, seq uint64, tm time.Time, s *Signed) []byte {
	return eventlog.EncodeSigned(prev, t, seq, tm, s)
}

// sealSigned appends the signature to a record from encodeSigned.
func sealSigned(b, sig []byte) ([]byte, error) { return eventlog.Seal(b, sig) }

// signedMessage is what a signed record's signature covers.
func signedMessage(raw []byte, s *Signed) []byte { return eventlog.SignedMessage(raw, s) }

// decodeRecord parses a stored record (canonically: see eventlog.Decode).
func decodeRecord(raw []byte) (*Record, error) {
	lr, err := eventlog.Decode(raw)
	if err != nil {
		return nil, err
	}
	rec := &Record{Seq: lr.Seq, Type: lr.Type, Time: lr.Time, Prev: lr.Prev, Hash: lr.Hash, Signed: lr.Signed, raw: raw}
	if e := lr.Event; e != nil {
		rec.Event = &Event{Seq: lr.Seq, Time: lr.Time, Kind: Kind(e.Kind), Severity: Severity(e.Severity), Account: e.Account,
			Peer: e.Peer, Detail: Detail(e.Detail)}
	}
	return rec, nil
}

// reencode encodes a decoded record again, for the canonical round trip.
func (rec *Record) reencode() ([]byte, error) {
	lr := &eventlog.Record{Seq: rec.Seq, Type: rec.Type, Time: rec.Time, Prev: rec.Prev, Signed: rec.Signed}
	if rec.Event != nil {
		lr.Event = logEvent(rec.Event)
	}
	return lr.Encode()
}

func sumHash(b []byte) Hash { return eventlog.Sum(b) }
