package tpm

import (
	"errors"
	"fmt"
)

// ErrUnsupported is returned when a spec names something this build cannot
// open (a character device outside Linux).
var ErrUnsupported = errors.New("tpm: unsupported on this platform")

// ErrPolicy is returned when the TPM refuses to use an object because its
// policy is not satisfied: a bound PCR or NV counter no longer holds the
// value the object was sealed to.
var ErrPolicy = errors.New("tpm: policy not satisfied")

// ErrBadBlob is returned when the TPM refuses to load an object blob: it was
// altered, or it was created under the storage key of another TPM (or of
// this TPM before its owner hierarchy was cleared).
var ErrBadBlob = errors.New("tpm: object blob refused (altered, or from another TPM)")

// ErrNoCounter is returned by OpenCounter when no NV index is defined at
// the given handle.
var ErrNoCounter = errors.New("tpm: NV counter not defined")

// ErrNoEKCert is returned when the TPM holds no EK certificate of the type
// asked for: its manufacturer stored none at that NV index.
var ErrNoEKCert = errors.New("tpm: no EK certificate")

// ErrEKMismatch is returned when the EK the TPM derives from the TCG
// default template is not the key its EK certificate certifies (the
// manufacturer used another template, or the certificate is not this
// TPM's).
var ErrEKMismatch = errors.New("tpm: EK does not match its certificate")

// ErrActivation is returned when the TPM refuses to activate a credential:
// it was made for another key's Name or another TPM's EK, or altered.
var ErrActivation = errors.New("tpm: credential activation refused")

var (
	errEKType        = errors.New("tpm: unknown EK type")
	errEKCert        = errors.New("tpm: malformed EK certificate in NV")
	errClosed        = errors.New("tpm: closed")
	errBadSpec       = errors.New("tpm: bad spec")
	errShortResponse = errors.New("tpm: short response")
	errNotCounter    = errors.New("tpm: NV index is not a counter")
	errBadPCR        = errors.New("tpm: PCR index out of range")
	errNotSigningKey = errors.New("tpm: blob is not an ECC P-256 signing key")
	errDigest        = errors.New("tpm: signer takes SHA-256 digests only")
	errNotECDHKey    = errors.New("tpm: blob is not an ECC P-256 key-agreement key")
)

// responseSizeError reports a response header whose size field cannot be
// right.
type responseSizeError struct{ got, max uint32 }

func (e responseSizeError) Error() string {
	return fmt.Sprintf("tpm: response size %d out of range [10, %d]", e.got, e.max)
}
