package media

import (
	"errors"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/crypto/policy"
)

// The a=crypto values of RFC 4568's example offer and answer (the "SRTP
// Discussion" session), as written there.
const (
	rfc4568Offer  = "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4 FEC_ORDER=FEC_SRTP"
	rfc4568Answer = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4"
)

func TestCryptoRFC4568Examples(t *testing.T) {
	for _, v := range []string{rfc4568Offer, rfc4568Answer} {
		c, err := parseCrypto(v)
		if err != nil {
			t.Fatalf("parseCrypto(%q) = %v", v, err)
		}
		if c.Tag != 1 || c.Suite != "AES_CM_128_HMAC_SHA1_80" || len(c.Keys) != 1 {
			t.Fatalf("parseCrypto(%q) = tag %d suite %s %d keys", v, c.Tag, c.Suite, len(c.Keys))
		}
		k := c.Keys[0]
		// 40 base64 characters are 30 bytes: a 16-byte key and 14-byte salt.
		if len(k.KeySalt) != 30 || k.Lifetime != "2^20" || k.MKI != 1 || k.MKILen != 4 {
			t.Fatalf("key-param of %q = %d bytes lifetime %q mki %d:%d, want 30 bytes 2^20 1:4", v, len(k.KeySalt), k.Lifetime, k.MKI, k.MKILen)
		}
		if got := c.format(); got != v {
			t.Fatalf("format(parseCrypto(%q)) = %q", v, got)
		}
		key, err := acceptCrypto(c)
		if err != nil {
			t.Fatalf("acceptCrypto(%q) = %v, want accepted", v, err)
		}
		if len(key.Key) != 16 || len(key.Salt) != 14 || string(key.MKI) != "\x00\x00\x00\x01" {
			t.Fatalf("acceptCrypto(%q): key %d salt %d mki % x", v, len(key.Key), len(key.Salt), key.MKI)
		}
	}
	// The first bytes of the offer's key||salt, decoded by hand from
	// "WVNf...": 'Y' 'S' '_' '_'.
	c, _ := parseCrypto(rfc4568Offer)
	if got := string(c.Keys[0].KeySalt[:4]); got != "YS__" {
		t.Fatalf("decoded key starts %q, want \"YS__\"", got)
	}
}

// TestCryptoKeyLengths: RFC 4568 (30 bytes for the AES_CM_128 suites)
// and RFC 7714 §14.2 (28 for AEAD_AES_128_GCM, 44 for AEAD_AES_256_GCM),
// checked against the policy's suites.
func TestCryptoKeyLengths(t *testing.T) {
	want := map[string]int{
		"AES_CM_128_HMAC_SHA1_80": 30, "AES_CM_128_HMAC_SHA1_32": 30,
		"AEAD_AES_128_GCM": 28, "AEAD_AES_256_GCM": 44,
	}
	for _, s := range policy.AcceptedSRTPSuites() {
		n, ok := want[s.SDESName]
		if !ok {
			t.Fatalf("policy accepts %s, which this test does not know", s.SDESName)
		}
		for _, l := range []int{n - 1, n, n + 1} {
			c, err := parseCrypto("7 " + s.SDESName + " inline:" + b64(l))
			if err != nil {
				t.Fatalf("parseCrypto(%d-byte key): %v", l, err)
			}
			_, err = acceptCrypto(c)
			if (err == nil) != (l == n) {
				t.Fatalf("acceptCrypto(%s with %d bytes) = %v, want accepted only at %d", s.SDESName, l, err, n)
			}
		}
		// Our own keys round-trip through the line we put in offers.
		k, err := newSDESKey(s)
		if err != nil {
			t.Fatal(err)
		}
		c, err := parseCrypto(k.cryptoLine(2))
		if err != nil {
			t.Fatal(err)
		}
		got, err := acceptCrypto(c)
		if err != nil || !got.equal(k) {
			t.Fatalf("own %s key does not round-trip: %v", s.SDESName, err)
		}
	}
	// GCM keys are 28 bytes: padded base64 ends in "=". Unpadded is taken too.
	k, _ := newSDESKey(suiteByName(t, "AEAD_AES_128_GCM"))
	line := k.cryptoLine(1)
	if !strings.HasSuffix(line, "=") {
		t.Fatalf("GCM key line %q is not padded base64", line)
	}
	c, err := parseCrypto(strings.TrimRight(line, "="))
	if err != nil {
		t.Fatalf("unpadded GCM key: %v", err)
	}
	if got, err := acceptCrypto(c); err != nil || !got.equal(k) {
		t.Fatalf("unpadded GCM key = %v", err)
	}
}

func TestCryptoRefused(t *testing.T) {
	k30 := "inline:" + b64(30)
	tests := []struct {
		v       string
		syntax  bool // refused by the grammar, not only the policy
		weakAlg bool
	}{
		{"1 NULL_HMAC_SHA1_80 " + k30, false, true},
		{"1 F8_128_HMAC_SHA1_80 " + k30, false, true},
		{"1 AES_192_CM_HMAC_SHA1_80 inline:" + b64(38), false, false},
		{"x AES_CM_128_HMAC_SHA1_80 " + k30, true, false},
		{"1234567890 AES_CM_128_HMAC_SHA1_80 " + k30, true, false},
		{"1 AES_CM_128_HMAC_SHA1_80 uri:http://example.com/key", true, false},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64(30) + "|2^20|1:4|extra", true, false},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64(30) + "|1:4|2^20", true, false},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64(30) + "|256:1", true, false},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64(30) + "|1:129", true, false},
		{"1 AES-CM " + k30, true, false},
		{"1 AES_CM_128_HMAC_SHA1_80", true, false},
	}
	for _, tt := range tests {
		c, err := parseCrypto(tt.v)
		if tt.syntax {
			if err == nil {
				t.Errorf("parseCrypto(%q) = nil error, want syntax error", tt.v)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseCrypto(%q) = %v, want it to parse", tt.v, err)
			continue
		}
		_, err = acceptCrypto(c)
		if err == nil {
			t.Errorf("acceptCrypto(%q) = nil, want refusal", tt.v)
			continue
		}
		if tt.weakAlg && !errors.Is(err, policy.ErrWeakAlgorithm) {
			t.Errorf("acceptCrypto(%q) = %v, want policy.ErrWeakAlgorithm", tt.v, err)
		}
	}
}
