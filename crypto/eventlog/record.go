package eventlog

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"
	"time"
)

// A journal record. All integers are big endian.
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
// and the fields; see SignedMessage. Every string field is canonical:
// decoding refuses anything the encoder would not have written, so
// Decode(b) re-encodes to exactly b.
const (
	// Version is the record format version.
	Version = 1
	// HeaderLen is the length of the common header.
	HeaderLen = 32 + 1 + 1 + 8 + 8
	// TypeOffset and TimeOffset locate the type byte and the time in the
	// header, for readers that look at a stored record without decoding it.
	TypeOffset = 33
	TimeOffset = 42
	// ChainIDLen is the length of a journal's chain ID.
	ChainIDLen = 16
	// KeyIDLen is the length of a key ID (SHA-256).
	KeyIDLen = sha256.Size
	// MaxSigLen bounds a signature.
	MaxSigLen = 512
	// MaxRecord bounds an encoded record: the largest event (every string
	// at its bound) or signed record.
	MaxRecord = HeaderLen + 2 + MaxKind + 1 + MaxAccount + 1 + 16 + 2 + 1 + MaxDetail*(1+MaxDetailKey+2+MaxValue)
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

// IsSigned reports whether records of type t carry a signature.
func (t RecordType) IsSigned() bool {
	return t == RecordGenesis || t == RecordCheckpoint || t == RecordTruncation
}

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

// Sum is the chain hash of an encoded record.
func Sum(raw []byte) Hash { return sha256.Sum256(raw) }

// Event is the body of an event record, as stored. Severity is an RFC 5424
// §6.2.1 severity (0..7).
type Event struct {
	Severity uint8
	Kind     string
	Account  string
	// Peer is the zero AddrPort for none; never IPv4-mapped or zoned.
	Peer netip.AddrPort
	// Detail is nil for none.
	Detail map[string]string
}

// Signed holds the fields of a signed record.
type Signed struct {
	// Chain identifies the journal (random, made at genesis).
	Chain [ChainIDLen]byte
	// Key is the SHA-256 of the signer's DER SubjectPublicKeyInfo.
	Key [KeyIDLen]byte
	// Reason is set on checkpoints.
	Reason Reason
	// FirstSeq is, on a truncation record, the first record kept; FirstPrev
	// is that record's prev hash (the hash of the last record dropped).
	FirstSeq  uint64
	FirstPrev Hash
	// Dropped is how many records this truncation removed; Undelivered how
	// many of them the exporter had not delivered.
	Dropped, Undelivered uint64
	// Sig is the signature over SignedMessage.
	Sig []byte
	// msgEnd is the offset of "sig len" in the record: the signed prefix.
	msgEnd int
}

// Record is one decoded record.
type Record struct {
	Seq  uint64
	Type RecordType
	// Time is when the record was written (for an event: when it happened).
	Time time.Time
	// Prev is the hash of the record before; Hash is this record's.
	Prev, Hash Hash
	// Event is set for RecordEvent, Signed for the signed types.
	Event  *Event
	Signed *Signed
	// Raw is the encoded record (not a copy of what Decode was given).
	Raw []byte
}

// MaxTimeMicro bounds a record's time to years 1970..9999, what an RFC 5424
// FULL-DATE (4-digit year) can carry.
var MaxTimeMicro = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

func appendHeader(b []byte, prev Hash, t RecordType, seq uint64, tm time.Time) []byte {
	b = append(b, prev[:]...)
	b = append(b, Version, byte(t))
	b = binary.BigEndian.AppendUint64(b, seq)
	return binary.BigEndian.AppendUint64(b, uint64(tm.UnixMicro()))
}

// EncodeEvent returns the record of an event. The event must already be
// clean (every string IsClean within its bound, keys that pass
// CheckDetailKey, at most MaxDetail of them, a peer without zone or IPv4
// mapping): what the encoder writes is what Decode accepts.
func EncodeEvent(prev Hash, seq uint64, tm time.Time, ev *Event) []byte {
	b := make([]byte, 0, 128)
	b = appendHeader(b, prev, RecordEvent, seq, tm)
	b = append(b, ev.Severity, byte(len(ev.Kind)))
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
	for _, k := range SortedKeys(ev.Detail) {
		v := ev.Detail[k]
		b = append(b, byte(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
		b = append(b, v...)
	}
	return b
}

// SortedKeys returns d's keys in byte order: the canonical order of the
// encoding and of the syslog parameters.
func SortedKeys(d map[string]string) []string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// EncodeSigned returns a signed record without its signature, and records
// in s where the signature goes; Seal appends the signature to it, after
// the signer signed SignedMessage.
func EncodeSigned(prev Hash, t RecordType, seq uint64, tm time.Time, s *Signed) []byte {
	b := make([]byte, 0, HeaderLen+ChainIDLen+KeyIDLen+64+2+80)
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

// Seal appends the signature to a record from EncodeSigned.
func Seal(b, sig []byte) ([]byte, error) {
	if len(sig) == 0 || len(sig) > MaxSigLen {
		return nil, fmt.Errorf("%w: signature of %d bytes, want 1..%d", ErrInvalid, len(sig), MaxSigLen)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(sig)))
	return append(b, sig...), nil
}

// signedDomain separates journal signatures from every other use of the
// identity key (TLS handshakes, CSRs, check-in reports).
const signedDomain = "hardphone events v1\x00"

// SignedMessage is what the signature of the signed record raw covers; s is
// its Signed, from Decode or EncodeSigned.
func SignedMessage(raw []byte, s *Signed) []byte {
	end := min(s.msgEnd, len(raw))
	m := make([]byte, 0, len(signedDomain)+end)
	m = append(m, signedDomain...)
	return append(m, raw[:end]...)
}

// CheckSignature reports whether a decoded signed record's signature is
// pub's. It does not compare the key ID.
func (r *Record) CheckSignature(pub crypto.PublicKey) bool {
	if r.Signed == nil {
		return false
	}
	return VerifySignature(pub, SignedMessage(r.Raw, r.Signed), r.Signed.Sig)
}

// Encode encodes a decoded record again (the canonical round trip).
func (r *Record) Encode() ([]byte, error) {
	switch {
	case r.Type == RecordEvent && r.Event != nil:
		return EncodeEvent(r.Prev, r.Seq, r.Time, r.Event), nil
	case r.Type.IsSigned() && r.Signed != nil:
		s := *r.Signed
		return Seal(EncodeSigned(r.Prev, r.Type, r.Seq, r.Time, &s), s.Sig)
	}
	return nil, fmt.Errorf("%w: %s record without its body", ErrInvalid, r.Type)
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
		r.err = fmt.Errorf("record truncated: need %d bytes at offset %d, have %d", n, r.off, len(r.b)-r.off)
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

// Decode parses a record. It refuses anything not canonical: a string the
// cleaner would change, detail keys out of order, a peer in a form the
// encoder never writes, trailing bytes. The Record keeps raw (no copy).
// Errors wrap ErrInvalid.
func Decode(raw []byte) (*Record, error) {
	rec, err := decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return rec, nil
}

func decode(raw []byte) (*Record, error) {
	r := &reader{b: raw}
	rec := &Record{Raw: raw, Hash: Sum(raw)}
	copy(rec.Prev[:], r.take(32))
	if v := r.u8(); r.err == nil && v != Version {
		return nil, fmt.Errorf("record version %d, want %d", v, Version)
	}
	rec.Type = RecordType(r.u8())
	rec.Seq = r.u64()
	us := int64(r.u64())
	if r.err != nil {
		return nil, r.err
	}
	if rec.Seq == 0 {
		return nil, fmt.Errorf("record seq 0")
	}
	if us < 0 || us >= MaxTimeMicro {
		return nil, fmt.Errorf("record time %d µs outside 1970..9999", us)
	}
	rec.Time = time.UnixMicro(us).UTC()
	switch rec.Type {
	case RecordEvent:
		rec.Event = decodeEvent(r)
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
	ev := &Event{Severity: r.u8()}
	if ev.Severity > 7 {
		r.fail("severity %d out of range", ev.Severity)
	}
	ev.Kind = string(r.take(int(r.u8())))
	if r.err == nil && !WellFormedKind(ev.Kind) {
		r.fail("kind %q malformed", Clean(ev.Kind, MaxKind))
	}
	ev.Account = string(r.take(int(r.u8())))
	if r.err == nil && !IsClean(ev.Account, MaxAccount) {
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
		if err := CheckDetailKey(k); err != nil {
			r.fail("detail key: %v", err)
		}
		if i > 0 && k <= prev {
			r.fail("detail key %q not after %q", k, prev)
		}
		if !IsClean(v, MaxValue) {
			r.fail("detail %q value not canonical", k)
		}
		if ev.Detail == nil {
			ev.Detail = make(map[string]string, n)
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
	copy(s.Chain[:], r.take(ChainIDLen))
	copy(s.Key[:], r.take(KeyIDLen))
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
	if r.err == nil && (n == 0 || n > MaxSigLen) {
		r.fail("signature of %d bytes, want 1..%d", n, MaxSigLen)
	}
	s.Sig = bytes.Clone(r.take(n))
	if r.err != nil {
		return nil
	}
	return s
}
