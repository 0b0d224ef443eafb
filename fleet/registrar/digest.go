package registrar

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"log/slog"
)

// Digest algorithms (RFC 7616 §6.1 names).
const (
	AlgMD5    = "MD5"
	AlgSHA256 = "SHA-256"
)

// Hashes are a subscriber's stored digest credentials, lowercase hex.
type Hashes struct {
	HA1, HA1b string
}

// LogValue keeps the hashes out of logs: each lets its holder answer
// digest challenges for the realm.
func (Hashes) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// String keeps the hashes out of %v.
func (Hashes) String() string { return "REDACTED" }

func newHash(alg string) (func() hash.Hash, error) {
	switch alg {
	case AlgMD5:
		return md5.New, nil
	case AlgSHA256:
		return sha256.New, nil
	}
	return nil, fmt.Errorf("digest algorithm %q, want %s or %s", alg, AlgSHA256, AlgMD5)
}

// ComputeHashes returns ha1 and ha1b of a password for user at domain,
// the realm being the domain (RFC 7616 §3.4.2: A1 = username ":" realm ":"
// passwd).
func ComputeHashes(alg, user, domain string, password []byte) (Hashes, error) {
	if err := checkAccount(user, domain); err != nil {
		return Hashes{}, err
	}
	h, err := newHash(alg)
	if err != nil {
		return Hashes{}, err
	}
	sum := func(u string) string {
		x := h()
		x.Write([]byte(u + ":" + domain + ":"))
		x.Write(password)
		return hex.EncodeToString(x.Sum(nil))
	}
	return Hashes{HA1: sum(user), HA1b: sum(user + "@" + domain)}, nil
}

// checkAccount accepts a SIP user of [A-Za-z0-9._-+] and a domain of
// [A-Za-z0-9.-], each 1..64 bytes (the subscriber table's columns).
func checkAccount(user, domain string) error {
	ok := func(s, extra string) bool {
		if s == "" || len(s) > 64 {
			return false
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || containsByte(extra, c)) {
				return false
			}
		}
		return true
	}
	if !ok(user, "_+") || !ok(domain, "") {
		return fmt.Errorf("%w: %.80q at %.80q", ErrName, user, domain)
	}
	return nil
}

func containsByte(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}

// CheckAccount reports whether user and domain may be written.
func CheckAccount(user, domain string) error { return checkAccount(user, domain) }
