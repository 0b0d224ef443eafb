package sealed

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func newKey(t testing.TB) *ecdh.PrivateKey {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	return k
}

var ctxA = Context{DeviceID: "dev-0123456789abcdef0123456789abcdef", Version: 7, Name: "sip/alice"}

func TestRoundTrip(t *testing.T) {
	k := newKey(t)
	for _, n := range []int{1, 16, 100, MaxPlaintext} {
		pt := bytes.Repeat([]byte{'p'}, n)
		s, err := Seal(k.PublicKey(), ctxA, pt)
		if err != nil {
			t.Fatalf("Seal(%d bytes) error %v", n, err)
		}
		if len(s) > MaxEncoded {
			t.Fatalf("Seal(%d bytes) = %d characters, more than MaxEncoded %d", n, len(s), MaxEncoded)
		}
		got, err := Open(k, s, ctxA)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Open(Seal(%d bytes)) = %d bytes, %v; want the plaintext", n, len(got), err)
		}
		b, err := Parse(s)
		if err != nil || b.Version != ctxA.Version {
			t.Fatalf("Parse(sealed).Version = %v, %v; want %d", b, err, ctxA.Version)
		}
	}
	// Two seals of the same secret differ (fresh ephemeral key and nonce).
	s1, _ := Seal(k.PublicKey(), ctxA, []byte("x"))
	s2, _ := Seal(k.PublicKey(), ctxA, []byte("x"))
	if s1 == s2 {
		t.Fatalf("two seals of one secret are identical: %s", s1)
	}
}

func TestRefusals(t *testing.T) {
	k, other := newKey(t), newKey(t)
	s, err := Seal(k.PublicKey(), ctxA, []byte("correct horse battery staple"))
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, Prefix))
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 0x01
		return Prefix + base64.RawURLEncoding.EncodeToString(b)
	}
	with := func(f func(*Context)) Context { c := ctxA; f(&c); return c }
	tests := []struct {
		name string
		key  *ecdh.PrivateKey
		s    string
		c    Context
		want error
	}{
		{"another phone's key", other, s, ctxA, ErrOpen},
		{"another device", k, s, with(func(c *Context) { c.DeviceID = "dev-ffffffffffffffffffffffffffffffff" }), ErrOpen},
		{"another version", k, s, with(func(c *Context) { c.Version = 8 }), ErrOpen},
		{"another name", k, s, with(func(c *Context) { c.Name = "sip/bob" }), ErrOpen},
		{"version byte in header", k, flip(8), ctxA, ErrOpen},
		{"nonce", k, flip(headerLen - 1), ctxA, ErrOpen},
		{"ciphertext", k, flip(headerLen + 2), ctxA, ErrOpen},
		{"tag", k, flip(len(raw) - 1), ctxA, ErrOpen},
		{"format byte", k, flip(0), ctxA, ErrFormat},
		{"ephemeral point", k, flip(20), ctxA, ErrFormat},
		{"truncated", k, s[:len(s)-30], ctxA, ErrOpen},
		{"no prefix", k, strings.TrimPrefix(s, Prefix), ctxA, ErrFormat},
		{"not base64url", k, Prefix + "!!!!", ctxA, ErrFormat},
		{"padded base64", k, s + "=", ctxA, ErrFormat},
		{"empty", k, "", ctxA, ErrFormat},
		{"too short", k, Prefix + base64.RawURLEncoding.EncodeToString(raw[:headerLen+tagLen]), ctxA, ErrFormat},
		{"too long", k, Prefix + strings.Repeat("A", MaxEncoded), ctxA, ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := Open(tt.key, tt.s, tt.c)
			if !errors.Is(err, tt.want) || pt != nil {
				t.Fatalf("Open(%s) = %q, %v; want %v", tt.name, pt, err, tt.want)
			}
		})
	}
}

func TestSealInputs(t *testing.T) {
	k := newKey(t)
	tests := []struct {
		name string
		c    Context
		pt   []byte
	}{
		{"empty plaintext", ctxA, nil},
		{"oversize plaintext", ctxA, make([]byte, MaxPlaintext+1)},
		{"no device", Context{Version: 1, Name: "x"}, []byte("x")},
		{"no name", Context{DeviceID: "d", Version: 1}, []byte("x")},
		{"version 0", Context{DeviceID: "d", Name: "x"}, []byte("x")},
		{"long name", Context{DeviceID: "d", Version: 1, Name: strings.Repeat("n", MaxName+1)}, []byte("x")},
	}
	for _, tt := range tests {
		if s, err := Seal(k.PublicKey(), tt.c, tt.pt); err == nil {
			t.Errorf("Seal(%s) = %q, nil error; want a refusal", tt.name, s)
		}
	}
	p384, _ := ecdh.P384().GenerateKey(rand.Reader)
	if _, err := Seal(p384.PublicKey(), ctxA, []byte("x")); err == nil {
		t.Errorf("Seal to a P-384 key succeeded")
	}
}

func TestPublicKeyDER(t *testing.T) {
	k := newKey(t)
	der, err := MarshalPublicKey(k.PublicKey())
	if err != nil {
		t.Fatalf("MarshalPublicKey: %v", err)
	}
	back, err := ParsePublicKey(der)
	if err != nil || !back.Equal(k.PublicKey()) {
		t.Fatalf("ParsePublicKey(MarshalPublicKey(k)) = %v, %v; want k", back, err)
	}
	if _, err := ParsePublicKey(der[:len(der)-1]); err == nil {
		t.Fatalf("ParsePublicKey(truncated) = nil error")
	}
}
