package sip

import (
	"errors"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/crypto/policy"
)

// RFC 7616 §3.9.1: the worked example for MD5 and SHA-256 with qop=auth.
func TestDigestRFC7616Vectors(t *testing.T) {
	const (
		realm  = "http-auth@example.org"
		nonce  = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
		cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
		opaque = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
	)
	tests := []struct {
		name string
		alg  string
		want string
	}{
		{"MD5", "MD5", "8ca523f5e9506fed4657c9700eebdbec"},
		{"SHA-256", "SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chal := `Digest realm="` + realm + `", qop="auth, auth-int", algorithm=` + tt.alg +
				`, nonce="` + nonce + `", opaque="` + opaque + `"`
			c, err := parseChallenge(chal)
			if err != nil {
				t.Fatalf("parseChallenge: %v", err)
			}
			got, err := authorization(c, credentials{"Mufasa", "Circle of Life"}, "GET", "/dir/index.html", 1, cnonce)
			if err != nil {
				t.Fatalf("authorization: %v", err)
			}
			if !strings.Contains(got, `response="`+tt.want+`"`) {
				t.Errorf("authorization(%s) = %s, want response %s", tt.alg, got, tt.want)
			}
			if !strings.Contains(got, "nc=00000001") || !strings.Contains(got, "qop=auth") {
				t.Errorf("authorization(%s) = %s, want nc=00000001 and qop=auth", tt.alg, got)
			}
		})
	}
}

// RFC 8760 §2.4: with several challenges the UAC picks one it supports; we
// take the strongest at or above the account floor and refuse a downgrade.
func TestChooseChallenge(t *testing.T) {
	md5 := `Digest realm="r", nonce="n1", qop="auth"`
	sha := `Digest realm="r", nonce="n2", qop="auth", algorithm=SHA-256`
	tests := []struct {
		name    string
		values  []string
		min     policy.Digest
		want    string
		wantErr error
	}{
		{"md5 first, sha256 chosen", []string{md5, sha}, policy.DigestSHA256, "n2", nil},
		{"sha256 first", []string{sha, md5}, policy.DigestMD5, "n2", nil},
		{"only md5 refused by default floor", []string{md5}, policy.DigestSHA256, "", policy.ErrWeakAlgorithm},
		{"only md5 allowed when asked", []string{md5}, policy.DigestMD5, "n1", nil},
		{"garbage and md5", []string{"Basic realm=x", md5}, policy.DigestMD5, "n1", nil},
		{"rfc 2069 form refused", []string{`Digest realm="r", nonce="n3", algorithm=SHA-256`}, policy.DigestMD5, "", ErrChallengeRefused},
		{"auth-int only refused", []string{`Digest realm="r", nonce="n4", qop="auth-int", algorithm=SHA-256`}, policy.DigestMD5, "", ErrChallengeRefused},
		{"rfc 2069 beside qop=auth", []string{`Digest realm="r", nonce="n5", algorithm=SHA-256`, md5}, policy.DigestMD5, "n1", nil},
		{"foreign realm refused", []string{`Digest realm="evil", nonce="n6", qop="auth", algorithm=SHA-256`}, policy.DigestMD5, "", ErrChallengeRefused},
		{"pinned realm among others", []string{`Digest realm="evil", nonce="n7", qop="auth", algorithm=SHA-256`, sha}, policy.DigestMD5, "n2", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := chooseChallenge(tt.values, tt.min, "r")
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("chooseChallenge = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("chooseChallenge: %v", err)
			}
			if c.Nonce != tt.want {
				t.Errorf("chooseChallenge nonce = %s, want %s", c.Nonce, tt.want)
			}
		})
	}
}

func TestParseAuthParamsMalformed(t *testing.T) {
	for _, in := range []string{`realm="x`, `realm`, `a=1, a=2`} {
		if _, err := parseAuthParams(in); err == nil {
			t.Errorf("parseAuthParams(%q) = nil error, want error", in)
		}
	}
}

//fuzz:budget 200000
func FuzzParseChallenge(f *testing.F) {
	f.Add(`Digest realm="127.0.0.1", nonce="Y2Fsa2Fi", qop="auth"`)
	f.Add(`Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth,auth-int", opaque="o\"q"`)
	f.Add(`Digest realm="r", nonce="n", algorithm=SHA-256`)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseChallenge(s)
		if err != nil {
			return
		}
		// Oracle: whatever parsed must produce an authorization that parses back
		// to the same realm and nonce.
		v, err := authorization(c, credentials{"u", "p"}, "REGISTER", "sip:x", 1, "c")
		if err != nil {
			return
		}
		p, err := parseAuthParams(strings.TrimPrefix(v, "Digest "))
		if err != nil {
			t.Fatalf("own authorization %q does not parse: %v", v, err)
		}
		if p["realm"] != c.Realm || p["nonce"] != c.Nonce {
			t.Fatalf("round trip realm/nonce = %q/%q, want %q/%q", p["realm"], p["nonce"], c.Realm, c.Nonce)
		}
	})
}
