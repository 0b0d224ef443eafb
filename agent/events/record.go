package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// A journal record is the value stored in bbolt under its sequence number
// (u64 big endian). All integers are big endian.
//
//	 0                  32    33     34               42               50
//	+------------------+-----+------+----------------+----------------+------------------+
//	| prev hash        | ver | type | seq (u64)      | time (i64,     | body (by type)   |
//	| (32, SHA-256)    | = 1 |      |                | unix µs, UTC)  |                  |
//	+------------------+-----+------+----------------+----------------+------------------+
//
//	hash(record n) = SHA-256(the whole value) = SHA-256(prev || encoding)
//	prev(record n) = hash(record n-1); prev(record 1) = 32 zero bytes
//
// Event body (type 1):
//
//	+-----+-----+------+-----+---------+-----+--------------+------+---+----------------------------------------+
//	| sev | len | kind | len | account | fam | addr (4|16)  | port | n | n × ( len key  len(u16) value )        |
//	| (1) | (1) |      | (1) |         | (1) | if fam != 0  | (2)  |(1)|  keys strictly ascending               |
//	+-----+-----+------+-----+---------+-----+--------------+------+---+----------------------------------------+
//	fam is 0 (no peer), 4 or 6; port is present only with an address.
//
// Signed bodies (type 2 genesis, 3 checkpoint, 4 truncation):
//
//	+--------------+----------------+---------------------+-----------+-----------+
//	| chain ID(16) | key ID (32)    | fields (by type)    | sig len   | signature |
//	|              | SHA-256 of the |                     | (u16)     |           |
//	|              | signer's SPKI  |                     |           |           |
//	+--------------+----------------+---------------------+-----------+-----------+
//	genesis:     no fields
//	checkpoint:  reason (1)
//	truncation:  first seq (8) | first prev (32) | dropped (8) | undelivered (8)
//
// The signature covers everything before "sig len": the prev hash (so a
// checkpoint at seq n signs the chain head n-1), the header (seq, time)
// and the fields; see signedMessage. Every string field is canonical:
// decoding refuses anything the encoder would not have written, so
// decode(b) re-encodes to exactly b.
const (
	recordVersion = 1
	headerLen     = 32 + 1 + 1 + 8 + 8
	chainIDLen    = 16
	keyIDLen      = sha256.Size
	maxSigLen     = 512
)

// RecordType tells what a record holds.
type RecordType uint8

// Record types.
const (
	RecordEvent      RecordType = 1
	RecordGenesis    RecordType = 2
	RecordCheckpoint RecordType = 3
	RecordTruncation RecordType = 4
)

var recordTypeNames = map[RecordType]string{
	RecordEvent: "event", RecordGenesis: "genesis", RecordCheckpoint: "checkpoint", RecordTruncation: "truncation",
}

func (t RecordType) String() string {
	if n, ok := recordTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// MarshalText renders the name, for JSON.
func (t RecordType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// Reason says why a checkpoint was written.
type Reason uint8

// Checkpoint reasons.
const (
	ReasonCount  Reason = 1 // every N records
	ReasonTime   Reason = 2 // the oldest unsigned record is older than T
	ReasonExport Reason = 3 // before the exporter reports the journal delivered
	ReasonClose  Reason = 4 // the journal was closed
	ReasonAsked  Reason = 5 // Checkpoint was called
)

var reasonNames = map[Reason]string{ReasonCount: "count", ReasonTime: "time", ReasonExport: "export", ReasonClose: "close", ReasonAsked: "asked"}

func (r Reason) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// MarshalText renders the name, for JSON.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Hash is a SHA-256 chain hash.
type Hash [sha256.Size]byte

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

// Signed holds the fields of a signed record.
type Signed struct {
	// Chain identifies the journal (random, made at genesis).
	Chain [chainIDLen]byte
	// Key is the SHA-256 of the signer's DER SubjectPublicKeyInfo.
	Key [keyIDLen]byte
	// Reason is set on checkpoints.
	Reason Reason
	// FirstSeq is, on a truncation record, the first record kept; FirstPrev
	// is that record's prev hash (the hash of the last record dropped).
	FirstSeq  uint64
	FirstPrev Hash
	// Dropped is how many records this truncation removed; Undelivered how
	// many of them the exporter had not delivered.
	Dropped, Undelivered uint64
	// Sig is the signature over signedMessage.
	Sig []byte
	// msgEnd is the offset of "sig len" in the record: the signed prefix.
	msgEnd int
}

// maxTimeMicro bounds a record's time to years 1970..9999, what an RFC 5424
// FULL-DATE (4-digit year) can carry.
var maxTimeMicro = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

func appendHeader(b []byte, prev Hash, t RecordType, seq uint64, tm time.Time) []byte {
	b = append(b, prev[:]...)
	b = append(b, recordVersion, byte(t))
	b = binary.BigEndian.AppendUint64(b, seq)
	return binary.BigEndian.AppendUint64(b, uint64(tm.UnixMicro()))
}

// encodeEvent returns the record of a sanitized event.
func encodeEvent(prev Hash, ev *Event) []byte {
	b := make([]byte, 0, 128)
	b = appendHeader(b, prev, RecordEvent, ev.Seq, ev.Time)
	b = append(b, byte(ev.Severity), byte(len(ev.Kind)))
	b = append(b, ev.Kind...)
	b = append(b, byte(len(ev.Account)))
	b = append(b, ev.Account...)
	switch a := ev.Peer.Addr(); {
	case !ev.Peer.IsValid():
		b = append(b, 0)
	case a.Is4():
		b = append(b, 4)
		b = append(b, a.AsSlice()...)
		b = binary.BigEndian.AppendUint16(b, ev.Peer.Port())
	default:
		b = append(b, 6)
		b = append(b, a.AsSlice()...)
		b = binary.BigEndian.AppendUint16(b, ev.Peer.Port())
	}
	b = append(b, byte(len(ev.Detail)))
	for _, k := range ev.Detail.sortedKeys() {
		v := ev.Detail[k]
		b = append(b, byte(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
		b = append(b, v...)
	}
	return b
}

// encodeSigned returns a signed record without its signature (sig len 0)
// and the offset where sig len goes; sealSigned appends the signature.
func encodeSigned(prev Hash, t RecordType, seq uint64, tm time.Time, s *Signed) []byte {
	b := make([]byte, 0, headerLen+chainIDLen+keyIDLen+64+2+80)
	b = appendHeader(b, prev, t, seq, tm)
	b = append(b, s.Chain[:]...)
	b = append(b, s.Key[:]...)
	switch t {
	case RecordCheckpoint:
		b = append(b, byte(s.Reason))
	case RecordTruncation:
		b = binary.BigEndian.AppendUint64(b, s.FirstSeq)
		b = append(b, s.FirstPrev[:]...)
		b = binary.BigEndian.AppendUint64(b, s.Dropped)
		b = binary.BigEndian.AppendUint64(b, s.Undelivered)
	}
	s.msgEnd = len(b)
	return b
}

// sealSigned appends the signature to a record from encodeSigned.
func sealSigned(b, sig []byte) ([]byte, error) {
	if len(sig) == 0 || len(sig) > maxSigLen {
		return nil, fmt.Errorf("signature of %d bytes, want 1..%d", len(sig), maxSigLen)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(sig)))
	return append(b, sig...), nil
}

// signedDomain separates journal signatures from every other use of the
// identity key (TLS handshakes, CSRs).
const signedDomain = "hardphone events v1\x00"

// signedMessage is what a signed record's signature covers.
func signedMessage(raw []byte, msgEnd int) []byte {
	m := make([]byte, 0, len(signedDomain)+msgEnd)
	m = append(m, signedDomain...)
	return append(m, raw[:msgEnd]...)
}

// reader walks a record's bytes; every read checks the length.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = fmt.Errorf("%w: need %d bytes at offset %d, have %d", errShort, n, r.off, len(r.b)-r.off)
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *reader) u8() uint8 {
	if s := r.take(1); s != nil {
		return s[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if s := r.take(2); s != nil {
		return binary.BigEndian.Uint16(s)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if s := r.take(8); s != nil {
		return binary.BigEndian.Uint64(s)
	}
	return 0
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

// decodeRecord parses a stored record. It refuses anything not canonical:
// a string the cleaner would change, detail keys out of order, a peer in a
// form the encoder never writes, trailing bytes.
func decodeRecord(raw []byte) (*Record, error) {
	r := &reader{b: raw}
	rec := &Record{raw: raw, Hash: sha256.Sum256(raw)}
	copy(rec.Prev[:], r.take(32))
	if v := r.u8(); r.err == nil && v != recordVersion {
		return nil, fmt.Errorf("record version %d, want %d", v, recordVersion)
	}
	rec.Type = RecordType(r.u8())
	rec.Seq = r.u64()
	us := int64(r.u64())
	if r.err != nil {
		return nil, r.err
	}
	if rec.Seq == 0 {
		return nil, errors.New("record seq 0")
	}
	if us < 0 || us >= maxTimeMicro {
		return nil, fmt.Errorf("record time %d µs outside 1970..9999", us)
	}
	rec.Time = time.UnixMicro(us).UTC()
	switch rec.Type {
	case RecordEvent:
		rec.Event = decodeEvent(r)
		if rec.Event != nil {
			rec.Event.Seq, rec.Event.Time = rec.Seq, rec.Time
		}
	case RecordGenesis, RecordCheckpoint, RecordTruncation:
		rec.Signed = decodeSigned(r, rec.Type)
	default:
		return nil, fmt.Errorf("record type %d unknown", uint8(rec.Type))
	}
	if r.err != nil {
		return nil, fmt.Errorf("%s record: %w", rec.Type, r.err)
	}
	if r.off != len(raw) {
		return nil, fmt.Errorf("%s record: %d trailing bytes", rec.Type, len(raw)-r.off)
	}
	return rec, nil
}

func decodeEvent(r *reader) *Event {
	ev := &Event{Severity: Severity(r.u8())}
	if !ev.Severity.Valid() {
		r.fail("severity %d out of range", ev.Severity)
	}
	ev.Kind = Kind(r.take(int(r.u8())))
	if r.err == nil && !ev.Kind.wellFormed() {
		r.fail("kind %q malformed", clean(string(ev.Kind), maxKind))
	}
	ev.Account = string(r.take(int(r.u8())))
	if r.err == nil && !isClean(ev.Account, MaxAccount) {
		r.fail("account not canonical")
	}
	switch fam := r.u8(); fam {
	case 0:
	case 4, 6:
		n := 4
		if fam == 6 {
			n = 16
		}
		a, _ := netip.AddrFromSlice(r.take(n)) // length checked by take
		port := r.u16()
		if r.err == nil && a.Is4In6() {
			r.fail("peer %s is IPv4-mapped; the encoder unmaps", a)
		}
		ev.Peer = netip.AddrPortFrom(a, port)
	default:
		r.fail("peer family %d unknown", fam)
	}
	n := int(r.u8())
	if n > MaxDetail {
		r.fail("%d detail fields, at most %d", n, MaxDetail)
	}
	prev := ""
	for i := 0; i < n && r.err == nil; i++ {
		k := string(r.take(int(r.u8())))
		v := string(r.take(int(r.u16())))
		if r.err != nil {
			break
		}
		if err := checkDetailKey(k); err != nil {
			r.fail("detail key: %v", err)
		}
		if i > 0 && k <= prev {
			r.fail("detail key %q not after %q", k, prev)
		}
		if !isClean(v, MaxValue) {
			r.fail("detail %q value not canonical", k)
		}
		if ev.Detail == nil {
			ev.Detail = make(Detail, n)
		}
		ev.Detail[k], prev = v, k
	}
	if r.err != nil {
		return nil
	}
	return ev
}

func decodeSigned(r *reader, t RecordType) *Signed {
	s := &Signed{}
	copy(s.Chain[:], r.take(chainIDLen))
	copy(s.Key[:], r.take(keyIDLen))
	switch t {
	case RecordCheckpoint:
		s.Reason = Reason(r.u8())
		if _, ok := reasonNames[s.Reason]; r.err == nil && !ok {
			r.fail("checkpoint reason %d unknown", s.Reason)
		}
	case RecordTruncation:
		s.FirstSeq = r.u64()
		copy(s.FirstPrev[:], r.take(32))
		s.Dropped = r.u64()
		s.Undelivered = r.u64()
	}
	s.msgEnd = r.off
	n := int(r.u16())
	if r.err == nil && (n == 0 || n > maxSigLen) {
		r.fail("signature of %d bytes, want 1..%d", n, maxSigLen)
	}
	s.Sig = bytes.Clone(r.take(n))
	if r.err != nil {
		return nil
	}
	return s
}

// reencode encodes a decoded record again, for the canonical round trip.
func (rec *Record) reencode() ([]byte, error) {
	switch rec.Type {
	case RecordEvent:
		return encodeEvent(rec.Prev, rec.Event), nil
	default:
		s := *rec.Signed
		return sealSigned(encodeSigned(rec.Prev, rec.Type, rec.Seq, rec.Time, &s), s.Sig)
	}
}

func sumHash(b []byte) Hash { return sha256.Sum256(b) }
