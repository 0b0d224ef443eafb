package credstore

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned for a credential name the store does not hold.
var ErrNotFound = errors.New("credstore: no such credential")

// ErrExists is returned by CreateIdentity when an identity key exists and
// replacing it was not asked for.
var ErrExists = errors.New("credstore: identity key exists")

// ErrNoIdentity is returned when no identity key has been created, or no
// certificate imported for it.
var ErrNoIdentity = errors.New("credstore: no device identity")

// ErrCorrupt is returned when a stored record fails authentication or
// parsing: a flipped byte, a value moved to another name, a record from
// another store. Only the named entry is affected.
var ErrCorrupt = errors.New("credstore: record corrupt")

// ErrWrongProtector is returned when the store's KEK was not sealed by this
// protector: a different TPM (or this TPM after its owner hierarchy was
// cleared), a different KEK file, or a TPM store opened with the software
// protector and the other way round.
var ErrWrongProtector = errors.New("credstore: store sealed by another protector")

// ErrPolicy is returned when the TPM refuses to unseal the KEK because a PCR
// the store is bound to no longer holds the value it was sealed to.
var ErrPolicy = errors.New("credstore: TPM policy refuses the KEK")

// ErrWiped is returned when the KEK was destroyed by a wipe (its generation
// counter has moved on), but records of the old store remain; Wipe again to
// finish.
var ErrWiped = errors.New("credstore: KEK destroyed by a wipe")

// ErrSealed is returned by OpenSealed for a sealed value it refuses: not
// for this phone's sealing key, device, name or document version (it then
// also wraps fleet/sealed.ErrOpen), malformed, or older than the value in
// use. Nothing was written.
var ErrSealed = errors.New("credstore: sealed value refused")

var (
	errClosed    = errors.New("credstore: closed")
	errBadName   = errors.New("credstore: bad credential name")
	errBadValue  = errors.New("credstore: bad credential value")
	errShort     = errors.New("record truncated")
	errKEKCheck  = errors.New("unsealed KEK does not match the record's check value")
	errKeyBlob   = errors.New("identity key record")
	errCertMatch = errors.New("certificate does not match the identity key")
)

// corrupt wraps ErrCorrupt with what was damaged.
func corrupt(what string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, what, err)
}
