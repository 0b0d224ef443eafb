package eventlog

import (
	"bytes"
	"testing"
)

// FuzzDecode feeds the decoder what a phone (or an attacker with its
// state file) could send the fleet. It must never panic, and what decodes
// must encode back to the same bytes: the chain hash of a decoded record
// is the hash of what was received.
//
//fuzz:budget 300000
func FuzzDecode(f *testing.F) {
	j := newJournal(f, p256(f))
	for i := 0; i < 3; i++ {
		j.event(i)
	}
	j.checkpoint()
	j.signed(RecordTruncation, &Signed{FirstSeq: 2, Dropped: 1, Undelivered: 1})
	for _, r := range j.raws {
		f.Add(r)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		rec, err := Decode(raw)
		if err != nil {
			return
		}
		again, err := rec.Encode()
		if err != nil {
			t.Fatalf("Encode(decoded) = %v", err)
		}
		if !bytes.Equal(again, raw) {
			t.Fatalf("Encode = %x, decoded %x: not canonical", again, raw)
		}
		if len(raw) > MaxRecord {
			t.Fatalf("decoded a record of %d bytes, MaxRecord is %d", len(raw), MaxRecord)
		}
	})
}

// FuzzCheckSegment feeds the segment proof what a phone could export: a
// real signed run of records, cut apart and glued back from the fuzzer's
// bytes. It must never panic, and whatever it accepts must hold what it
// promises: consecutive seqs, each prev the hash of the record before,
// every signed record verified under the key, the last one signed.
//
//fuzz:budget 300000
func FuzzCheckSegment(f *testing.F) {
	key := p256(f)
	j := newJournal(f, key)
	for i := 0; i < 5; i++ {
		j.event(i)
	}
	j.checkpoint()
	var all []byte
	for _, r := range j.raws {
		all = append(all, byte(len(r)>>8), byte(len(r)))
		all = append(all, r...)
	}
	f.Add(all)
	f.Add(all[:len(all)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		var raws [][]byte
		for len(b) >= 2 && len(raws) < 64 {
			n := int(b[0])<<8 | int(b[1])
			b = b[2:]
			if n > len(b) {
				break
			}
			raws = append(raws, b[:n])
			b = b[n:]
		}
		seg, err := CheckSegment(raws, key.Public())
		if err != nil {
			return
		}
		for i, r := range seg.Records {
			if i > 0 && (r.Seq != seg.Records[i-1].Seq+1 || r.Prev != seg.Records[i-1].Hash) {
				t.Fatalf("accepted a break at record %d", r.Seq)
			}
			if r.Signed != nil && !r.CheckSignature(key.Public()) {
				t.Fatalf("accepted a bad signature on record %d", r.Seq)
			}
		}
		if seg.Last().Signed == nil {
			t.Fatalf("accepted a segment ending unsigned")
		}
	})
}
