package attest

import "errors"

// ErrUntrustedEK is returned when an EK certificate does not chain to a
// trusted manufacturer root (unknown CA, bad signature, expired).
var ErrUntrustedEK = errors.New("attest: EK certificate not issued by a trusted manufacturer")

// ErrNotEK is returned when a certificate from a trusted manufacturer is not
// an EK certificate: no tcg-kp-EKCertificate usage, no TPM description, a
// CA certificate, a key usage no EK has, or a critical extension this
// package does not understand.
var ErrNotEK = errors.New("attest: not an EK certificate")

// ErrUnsupportedEK is returned for an EK whose type has no TCG default
// template here: anything but RSA-2048, ECC NIST P-256 and ECC NIST P-384.
var ErrUnsupportedEK = errors.New("attest: unsupported EK type")

// ErrIdentityKey is returned when an identity key's public area is not a
// TPM-generated, non-exportable ECC P-256 signing key, or not the key the
// phone presents for TLS.
var ErrIdentityKey = errors.New("attest: identity key refused")

// ErrSealingKey is returned when a sealing key's public area is not a
// TPM-generated, non-exportable ECC P-256 key-agreement key.
var ErrSealingKey = errors.New("attest: sealing key refused")

var (
	errMalformed = errors.New("malformed TPMT_PUBLIC")
	errName      = errors.New("identity name")
	errSecret    = errors.New("credential secret")
)
