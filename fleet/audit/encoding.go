package audit

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// An entry's canonical encoding, the data of its leaf in the tree
// (RFC 6962 §2.1: leaf hash = SHA-256(0x00 || data)). Integers are
// big-endian; str8/str16 are a one- or two-byte length and that many bytes
// of clean UTF-8.
//
//	version    u8      1
//	index      u64
//	time       i64     Unix nanoseconds, UTC
//	actor      u8 kind (1 admin, 2 device, 3 system, 4 unknown), str16 id
//	action     str8
//	target     str16
//	outcome    u8      (1 success, 2 failure, 3 denied, 4 pending)
//	source     u8 len  (0, 4 or 16) and the address bytes
//	approvals  u8 count, count × str8
//	details    u8 count, count × (str8 key, str16 value), keys ascending
//	device     u8 0 | 1, then: str8 device, str8 kind, u8 severity,
//	           u64 seq, i64 time (0: unknown), [32] hash
//
// The decoder refuses anything another encoder could have produced for
// the same entry (trailing bytes, keys out of order, a mapped IPv4
// address, unknown codes), so every entry has exactly one leaf.
const encodingVersion = 1

var (
	actorCodes   = map[ActorKind]byte{ActorAdmin: 1, ActorDevice: 2, ActorSystem: 3, ActorUnknown: 4}
	outcomeCodes = map[Outcome]byte{OutcomeSuccess: 1, OutcomeFailure: 2, OutcomeDenied: 3, OutcomePending: 4}
)

// Encode returns e's canonical encoding after validating it. Append
// normalizes first; Encode does not, so a caller's entry with an
// unclean string is refused rather than changed.
func (e *Entry) Encode() ([]byte, error) {
	if err := e.validate(); err != nil {
		return nil, fmt.Errorf("encode entry: %w", err)
	}
	b := make([]byte, 0, 256)
	b = append(b, encodingVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Index))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixNano()))
	b = append(b, actorCodes[e.Actor.Kind])
	b = appendStr16(b, e.Actor.ID)
	b = appendStr8(b, string(e.Action))
	b = appendStr16(b, e.Target)
	b = append(b, outcomeCodes[e.Outcome])
	if e.Source.IsValid() {
		a := e.Source.AsSlice()
		b = append(b, byte(len(a)))
		b = append(b, a...)
	} else {
		b = append(b, 0)
	}
	b = append(b, byte(len(e.Approvals)))
	for _, a := range e.Approvals {
		b = appendStr8(b, a)
	}
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, byte(len(keys)))
	for _, k := range keys {
		b = appendStr8(b, k)
		b = appendStr16(b, e.Details[k])
	}
	if d := e.Device; d != nil {
		b = append(b, 1)
		b = appendStr8(b, d.Device)
		b = appendStr8(b, d.Kind)
		b = append(b, d.Severity)
		b = binary.BigEndian.AppendUint64(b, d.Seq)
		var ns int64 // zero stands for an unknown time
		if !d.Time.IsZero() {
			ns = d.Time.UnixNano()
		}
		b = binary.BigEndian.AppendUint64(b, uint64(ns))
		b = append(b, d.Hash[:]...)
	} else {
		b = append(b, 0)
	}
	if len(b) > MaxEntrySize {
		return nil, fmt.Errorf("encode entry: %d bytes, at most %d: %w", len(b), MaxEntrySize, ErrInvalid)
	}
	return b, nil
}

// The string bounds fit the length prefixes: str8 holds up to 255 bytes.
func appendStr8(b []byte, s string) []byte { return append(append(b, byte(len(s))), s...) }
func appendStr16(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...)
}

// DecodeEntry parses a canonical encoding. It accepts exactly what Encode
// produces: DecodeEntry(b) succeeds only if Encode of its result is b.
func DecodeEntry(b []byte) (Entry, error) {
	if len(b) > MaxEntrySize {
		return Entry{}, fmt.Errorf("decode entry: %d bytes, at most %d: %w", len(b), MaxEntrySize, ErrInvalid)
	}
	r := reader{b: b}
	var e Entry
	if v := r.u8(); v != encodingVersion && r.err == nil {
		return Entry{}, fmt.Errorf("decode entry: version %d, want %d: %w", v, encodingVersion, ErrInvalid)
	}
	idx := r.u64()
	if idx > 1<<62 {
		r.fail("index %d", idx)
	}
	e.Index = int64(idx)
	e.Time = r.time()
	ak := r.u8()
	for k, c := range actorCodes {
		if c == ak {
			e.Actor.Kind = k
		}
	}
	e.Actor.ID = r.str16()
	e.Action = Action(r.str8())
	e.Target = r.str16()
	oc := r.u8()
	for k, c := range outcomeCodes {
		if c == oc {
			e.Outcome = k
		}
	}
	switch n := r.u8(); n {
	case 0:
	case 4, 16:
		a, _ := netip.AddrFromSlice(r.take(int(n))) // 4 or 16 bytes always make an address
		e.Source = a
	default:
		r.fail("source address of %d bytes", n)
	}
	if n := int(r.u8()); n > 0 {
		if n > MaxApprovals {
			r.fail("%d approvals", n)
		}
		for i := 0; i < n && r.err == nil; i++ {
			e.Approvals = append(e.Approvals, r.str8())
		}
	}
	if n := int(r.u8()); n > 0 {
		if n > MaxDetails {
			r.fail("%d details", n)
		}
		e.Details = make(map[string]string, n)
		prev := ""
		for i := 0; i < n && r.err == nil; i++ {
			k := r.str8()
			if i > 0 && k <= prev {
				r.fail("detail key %q after %q", k, prev)
			}
			prev = k
			e.Details[k] = r.str16()
		}
	}
	switch p := r.u8(); p {
	case 0:
	case 1:
		d := &DeviceEvent{}
		d.Device = r.str8()
		d.Kind = r.str8()
		d.Severity = r.u8()
		d.Seq = r.u64()
		if ns := int64(r.u64()); ns != 0 {
			d.Time = time.Unix(0, ns).UTC()
		}
		copy(d.Hash[:], r.take(32))
		e.Device = d
	default:
		r.fail("device flag %d", p)
	}
	if r.err == nil && len(r.b) != r.off {
		r.fail("%d trailing bytes", len(r.b)-r.off)
	}
	if r.err != nil {
		return Entry{}, fmt.Errorf("decode entry: %w", r.err)
	}
	if err := e.validate(); err != nil {
		return Entry{}, fmt.Errorf("decode entry: %w", err)
	}
	return e, nil
}

type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format+" at byte %d: %w", append(args, r.off, ErrInvalid)...)
	}
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return make([]byte, n)
	}
	if n > len(r.b)-r.off {
		r.fail("truncated: want %d bytes, have %d", n, len(r.b)-r.off)
		return make([]byte, n)
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *reader) u8() uint8   { return r.take(1)[0] }
func (r *reader) u16() uint16 { return binary.BigEndian.Uint16(r.take(2)) }
func (r *reader) u64() uint64 { return binary.BigEndian.Uint64(r.take(8)) }

func (r *reader) time() time.Time {
	ns := int64(r.u64())
	return time.Unix(0, ns).UTC()
}

func (r *reader) str8() string  { return string(r.take(int(r.u8()))) }
func (r *reader) str16() string { return string(r.take(int(r.u16()))) }
