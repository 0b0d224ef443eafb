package audit

import (
	"bytes"
	"testing"
)

// FuzzDecodeEntry feeds the entry decoder, which reads records from
// storage and exports an attacker may have written. Oracle: whatever
// decodes encodes back to exactly its input (one leaf per entry).
//
//fuzz:budget 250000
func FuzzDecodeEntry(f *testing.F) {
	for _, e := range []Entry{fullEntry(), {Time: t0, Actor: Actor{Kind: ActorSystem}, Action: "x", Outcome: OutcomeFailure}} {
		b, err := e.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			return
		}
		again, err := e.Encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("Encode(DecodeEntry(%x)) = %x, %v", b, again, err)
		}
	})
}

// FuzzParseCheckpoint feeds checkpoint notes (from exports and the
// collector's files). Oracle: a parsed checkpoint re-renders to its text.
//
//fuzz:budget 200000
func FuzzParseCheckpoint(f *testing.F) {
	skey, vkey, err := GenerateKey("fuzz.example/log")
	if err != nil {
		f.Fatal(err)
	}
	k, _ := ParseKey(skey)
	trust, _ := NewTrust(vkey)
	for _, n := range []int64{1, 7, 1 << 40} {
		cp, err := k.signCheckpoint(n, [32]byte{byte(n)})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(cp.Note)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := ParseCheckpoint(b, trust)
		if err != nil {
			return
		}
		if text := checkpointText(cp.Origin, cp.Size, cp.Root); !bytes.HasPrefix(b, []byte(text+"\n")) {
			t.Fatalf("ParseCheckpoint(%q) = %v, which renders %q", b, cp, text)
		}
	})
}
