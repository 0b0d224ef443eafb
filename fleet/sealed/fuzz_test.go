package sealed

import (
	"bytes"
	"crypto/ecdh"
	"testing"
)

// FuzzOpen: no input panics Parse or Open, and nothing but the value
// sealed opens: an input that opens is byte-identical to it.
//
//fuzz:budget 120000
func FuzzOpen(f *testing.F) {
	k, err := ecdh.P256().NewPrivateKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatalf("key: %v", err)
	}
	eph, err := ecdh.P256().NewPrivateKey(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		f.Fatalf("key: %v", err)
	}
	// Fixed ephemeral key and nonce: every fuzz worker seals the same.
	good, err := seal(k.PublicKey(), eph, make([]byte, nonceLen), ctxA, []byte("secret"))
	if err != nil {
		f.Fatalf("Seal: %v", err)
	}
	f.Add(good)
	f.Add(Prefix)
	f.Add(good[:len(good)/2])
	f.Add("hps1.AQ")
	f.Fuzz(func(t *testing.T, s string) {
		b, perr := Parse(s)
		pt, err := Open(k, s, ctxA)
		if err == nil {
			if s != good || !bytes.Equal(pt, []byte("secret")) {
				t.Fatalf("Open(%q) = %q, want a refusal", s, pt)
			}
			return
		}
		if perr == nil && b.Ephemeral == nil {
			t.Fatalf("Parse(%q) gave a box without an ephemeral key", s)
		}
	})
}
