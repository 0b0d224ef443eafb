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
