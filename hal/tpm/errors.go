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

var (
	errClosed        = errors.New("tpm: closed")
	errBadSpec       = errors.New("tpm: bad spec")
	errShortResponse = errors.New("tpm: short response")
	errNotCounter    = errors.New("tpm: NV index is not a counter")
	errBadPCR        = errors.New("tpm: PCR index out of range")
	errNotSigningKey = errors.New("tpm: blob is not an ECC P-256 signing key")
	errDigest        = errors.New("tpm: signer takes SHA-256 digests only")
)

// responseSizeError reports a response header whose size field cannot be
// right.
type responseSizeError struct{ got, max uint32 }

func (e responseSizeError) Error() string {
	return fmt.Sprintf("tpm: response size %d out of range [10, %d]", e.got, e.max)
}
