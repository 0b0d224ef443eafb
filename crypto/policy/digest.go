package policy

import (
	"fmt"
	"strings"
)

// Digest is a SIP HTTP-digest algorithm (RFC 3261 §22, RFC 8760).
type Digest int

// Digest algorithms, weakest first; the order is the strength order.
const (
	DigestMD5 Digest = iota + 1
	DigestSHA256
	DigestSHA512256
)

var digestNames = map[Digest]string{
	DigestMD5:       "MD5",
	DigestSHA256:    "SHA-256",
	DigestSHA512256: "SHA-512-256",
}

func (d Digest) String() string {
	if n, ok := digestNames[d]; ok {
		return n
	}
	return fmt.Sprintf("Digest(%d)", int(d))
}

// DefaultDigestMin is the account minimum when the config says nothing:
// MD5 must be asked for explicitly.
const DefaultDigestMin = DigestSHA256

// ParseDigest maps an algorithm token to a Digest. RFC 8760 §2.1: an absent
// algorithm parameter means MD5, so "" is MD5. "-sess" variants are refused:
// no registrar we meet needs them.
func ParseDigest(s string) (Digest, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "", "MD5":
		return DigestMD5, nil
	case "SHA-256":
		return DigestSHA256, nil
	case "SHA-512-256":
		return DigestSHA512256, nil
	}
	return 0, fmt.Errorf("digest algorithm %q: %w", s, ErrUnknownAlgorithm)
}

// ChooseDigest picks the strongest offered algorithm at or above min
// (RFC 8760 §2.4: the UAC uses the topmost header it supports; we go further
// and take the strongest, since a proxy may list MD5 first for old phones).
// It returns the index into offered. An offer that holds only weaker
// algorithms is ErrWeakAlgorithm, never a silent downgrade.
func ChooseDigest(offered []Digest, min Digest) (int, error) {
	best := -1
	for i, d := range offered {
		if d < min {
			continue
		}
		if best < 0 || d > offered[best] {
			best = i
		}
	}
	if best < 0 {
		names := make([]string, len(offered))
		for i, d := range offered {
			names[i] = d.String()
		}
		return -1, fmt.Errorf("registrar offers digest %s, account minimum is %s: %w",
			strings.Join(names, ","), min, ErrWeakAlgorithm)
	}
	return best, nil
}
