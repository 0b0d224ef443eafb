package eventlog

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
)

// KeyID is the SHA-256 of pub's DER SubjectPublicKeyInfo: what a signed
// record names its signer by, so a verifier can pick the key (an identity
// key replaced on a phone leaves older checkpoints under the old one).
func KeyID(pub crypto.PublicKey) ([KeyIDLen]byte, error) {
	switch pub.(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return [KeyIDLen]byte{}, fmt.Errorf("%w: %T (want ECDSA or Ed25519)", errKeyType, pub)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return [KeyIDLen]byte{}, fmt.Errorf("key ID: %w", err)
	}
	return sha256.Sum256(der), nil
}

// Sign signs msg with s: ECDSA over its SHA-256 digest (the device
// identity key, a P-256 key in the TPM, signs SHA-256 digests only),
// Ed25519 over the message itself.
func Sign(s crypto.Signer, msg []byte) ([]byte, error) {
	switch s.Public().(type) {
	case ed25519.PublicKey:
		return s.Sign(rand.Reader, msg, crypto.Hash(0))
	case *ecdsa.PublicKey:
		d := sha256.Sum256(msg)
		return s.Sign(rand.Reader, d[:], crypto.SHA256)
	}
	return nil, fmt.Errorf("%w: %T", errKeyType, s.Public())
}

// VerifySignature reports whether sig is pub's signature of msg as Sign
// makes it.
func VerifySignature(pub crypto.PublicKey, msg, sig []byte) bool {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return ed25519.Verify(k, msg, sig)
	case *ecdsa.PublicKey:
		d := sha256.Sum256(msg)
		return ecdsa.VerifyASN1(k, d[:], sig)
	}
	return false
}
