package adminauth

import (
	"encoding/base32"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// RFC 6238 Appendix B: the seeds are the ASCII strings "1234567890"
// repeated to 20 (SHA-1), 32 (SHA-256) and 64 (SHA-512) bytes; codes of
// 8 digits, X = 30, T0 = 0.
var rfc6238 = []struct {
	unix                 int64
	sha1, sha256, sha512 string
}{
	{59, "94287082", "46119246", "90693936"},
	{1111111109, "07081804", "68084774", "25091201"},
	{1111111111, "14050471", "67062674", "99943326"},
	{1234567890, "89005924", "91819424", "93441116"},
	{2000000000, "69279037", "90698825", "38618901"},
	{20000000000, "65353130", "77737706", "47863826"},
}

func seed(n int) string {
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte(strings.Repeat("1234567890", 7)[:n]))
}

func TestRFC6238Vectors(t *testing.T) {
	for _, v := range rfc6238 {
		at := time.Unix(v.unix, 0).UTC()
		for _, alg := range []struct {
			a    otp.Algorithm
			seed string
			want string
		}{{otp.AlgorithmSHA1, seed(20), v.sha1}, {otp.AlgorithmSHA256, seed(32), v.sha256}, {otp.AlgorithmSHA512, seed(64), v.sha512}} {
			got, err := totp.GenerateCodeCustom(alg.seed, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsEight, Algorithm: alg.a})
			if err != nil || got != alg.want {
				t.Errorf("TOTP(%v, %d) = %s, %v; want %s", alg.a, v.unix, got, err, alg.want)
			}
		}
		// Our check (SHA-1, 6 digits): the 6-digit code is the same
		// truncated value mod 10^6 (RFC 4226 §5.3), the last 6 digits.
		code := v.sha1[2:]
		step, err := CheckTOTP(TOTPSecret(seed(20)), code, at, -1)
		if err != nil || step != v.unix/30 {
			t.Errorf("CheckTOTP(%s at %d) = %d, %v; want step %d", code, v.unix, step, err, v.unix/30)
		}
		// One step either side is accepted, two are not.
		for _, d := range []struct {
			off int64
			ok  bool
		}{{-30, true}, {30, true}, {-60, false}, {61, false}} {
			if v.unix+d.off < 0 {
				continue // before the epoch: no step to speak of
			}
			_, err := CheckTOTP(TOTPSecret(seed(20)), code, at.Add(time.Duration(d.off)*time.Second), -1)
			if (err == nil) != d.ok {
				t.Errorf("CheckTOTP(%s at %d%+d s) error %v, want accepted %v", code, v.unix, d.off, err, d.ok)
			}
		}
		// A step at or before the last accepted one is a replay.
		if _, err := CheckTOTP(TOTPSecret(seed(20)), code, at, v.unix/30); !errors.Is(err, ErrReplay) {
			t.Errorf("CheckTOTP(%s, last step %d) error %v, want ErrReplay", code, v.unix/30, err)
		}
	}
}

func TestNewTOTP(t *testing.T) {
	e, err := NewTOTP("hardphone fleet", "alice")
	if err != nil {
		t.Fatal(err)
	}
	k, err := otp.NewKeyFromURL(e.URI)
	if err != nil {
		t.Fatalf("NewKeyFromURL(%s) error %v", e.URI, err)
	}
	if k.Secret() != string(e.Secret) || k.Issuer() != "hardphone fleet" || k.AccountName() != "alice" ||
		k.Period() != 30 || k.Digits() != otp.DigitsSix || k.Algorithm() != otp.AlgorithmSHA1 {
		t.Fatalf("otpauth URI %s: issuer %s account %s period %d digits %v", e.URI, k.Issuer(), k.AccountName(), k.Period(), k.Digits())
	}
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(string(e.Secret))
	if err != nil || len(raw) != 20 {
		t.Fatalf("secret of %d bytes, %v; want 20 (160 bits)", len(raw), err)
	}
	now := time.Now()
	code, _ := totp.GenerateCode(string(e.Secret), now)
	if _, err := CheckTOTP(e.Secret, code, now, -1); err != nil {
		t.Fatalf("CheckTOTP(fresh code) error %v", err)
	}
	if _, err := NewTOTP("", "alice"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NewTOTP(no issuer) error %v, want ErrInvalid", err)
	}
}
