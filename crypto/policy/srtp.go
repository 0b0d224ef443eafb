package policy

import (
	"fmt"
	"runtime"

	"github.com/pion/dtls/v3"
	"github.com/pion/srtp/v3"
)

// SRTPSuite is one SRTP crypto suite with its names in SDES (RFC 4568,
// RFC 7714) and DTLS-SRTP (RFC 5764, RFC 7714).
type SRTPSuite struct {
	// SDESName is the crypto-suite token of an a=crypto line.
	SDESName string
	// Profile is pion's SRTP profile.
	Profile srtp.ProtectionProfile
	// DTLS is the use_srtp profile.
	DTLS dtls.SRTPProtectionProfile
	// KeyLen and SaltLen are the master key and salt lengths in bytes.
	KeyLen, SaltLen int
}

var (
	suiteGCM128 = SRTPSuite{"AEAD_AES_128_GCM", srtp.ProtectionProfileAeadAes128Gcm, dtls.SRTP_AEAD_AES_128_GCM, 16, 12}
	suiteCM80   = SRTPSuite{"AES_CM_128_HMAC_SHA1_80", srtp.ProtectionProfileAes128CmHmacSha1_80, dtls.SRTP_AES128_CM_HMAC_SHA1_80, 16, 14}
	suiteCM32   = SRTPSuite{"AES_CM_128_HMAC_SHA1_32", srtp.ProtectionProfileAes128CmHmacSha1_32, dtls.SRTP_AES128_CM_HMAC_SHA1_32, 16, 14}
	suiteGCM256 = SRTPSuite{"AEAD_AES_256_GCM", srtp.ProtectionProfileAeadAes256Gcm, dtls.SRTP_AEAD_AES_256_GCM, 32, 12}
)

// SRTPSuites returns the suites we offer, most preferred first. AES-GCM leads
// where Go has AES hardware support; on 32-bit ARM Go has no AES assembly and
// AES-CM with HMAC is measured faster than software GCM, so it leads there.
// HMAC_SHA1_32 is accepted in answers and offers from peers but never offered
// by us: its 32-bit tag is the weakest authentication we allow.
func SRTPSuites() []SRTPSuite {
	if runtime.GOARCH == "arm" {
		return []SRTPSuite{suiteCM80, suiteGCM128}
	}
	return []SRTPSuite{suiteGCM128, suiteCM80}
}

// acceptedSuites is what we take from a peer, in our preference order.
func acceptedSuites() []SRTPSuite {
	return append(SRTPSuites(), suiteGCM256, suiteCM32)
}

// SRTPSuiteBySDESName returns the accepted suite with that SDES token.
// Suites outside the policy (NULL cipher, F8, the 256-bit CM suites which
// pion's SDES keying does not cover here) are ErrWeakAlgorithm or
// ErrUnknownAlgorithm.
func SRTPSuiteBySDESName(name string) (SRTPSuite, error) {
	for _, s := range acceptedSuites() {
		if s.SDESName == name {
			return s, nil
		}
	}
	switch name {
	case "NULL_HMAC_SHA1_80", "NULL_HMAC_SHA1_32", "F8_128_HMAC_SHA1_80":
		return SRTPSuite{}, fmt.Errorf("srtp suite %s: %w", name, ErrWeakAlgorithm)
	}
	return SRTPSuite{}, fmt.Errorf("srtp suite %q: %w", name, ErrUnknownAlgorithm)
}

// SRTPSuiteByDTLS returns the accepted suite negotiated by DTLS use_srtp.
func SRTPSuiteByDTLS(p dtls.SRTPProtectionProfile) (SRTPSuite, error) {
	for _, s := range acceptedSuites() {
		if s.DTLS == p {
			return s, nil
		}
	}
	return SRTPSuite{}, fmt.Errorf("dtls-srtp profile %#x: %w", uint16(p), ErrWeakAlgorithm)
}

// DTLSSRTPProfiles returns the use_srtp profiles we offer and accept in a
// DTLS handshake, most preferred first.
func DTLSSRTPProfiles() []dtls.SRTPProtectionProfile {
	var out []dtls.SRTPProtectionProfile
	for _, s := range acceptedSuites() {
		out = append(out, s.DTLS)
	}
	return out
}

// SRTPReplayWindow is the SRTP and SRTCP replay window in packets
// (RFC 3711 §3.3.2 requires at least 64). Replay protection is always on.
const SRTPReplayWindow = 128

// FingerprintHashes are the a=fingerprint hash functions accepted for
// DTLS-SRTP (RFC 8122 §5), strongest first. SHA-1 and MD5 are refused.
func FingerprintHashes() []string { return []string{"sha-512", "sha-384", "sha-256"} }

// FingerprintHash is the hash we use for our own a=fingerprint.
const FingerprintHash = "sha-256"
