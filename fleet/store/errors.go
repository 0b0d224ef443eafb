package store

import "errors"

// ErrNotFound is returned when the record asked for does not exist, or no
// longer does (a consumed challenge).
var ErrNotFound = errors.New("not found")

// ErrExists is returned when a write would duplicate a unique field: a
// device ID, an EK certificate hash or serial of a device that is not
// retired, a certificate serial, an allow-list serial held by another TPM.
var ErrExists = errors.New("already exists")

// ErrExpired is returned by ConsumeChallenge for a challenge past its
// expiry; the challenge is consumed all the same.
var ErrExpired = errors.New("expired")

// ErrInvalid is returned for a record or argument that fails validation.
// Nothing was written.
var ErrInvalid = errors.New("invalid")

// ErrNotAllowed is returned when a challenge or a device is written for a
// TPM whose EK certificate hash is not on the allow-list.
var ErrNotAllowed = errors.New("not on the allow-list")

// ErrState is returned for a write the record's current state forbids: a
// certificate for a device that is not enrolled, a device state change
// that goes backwards, revoking a certificate already revoked.
var ErrState = errors.New("not allowed in the current state")

// ErrLimit is returned when a write would pass a bound, such as
// MaxChallengesPerEK outstanding challenges for one TPM.
var ErrLimit = errors.New("limit reached")

// ErrSchemaTooNew is returned by an implementation's Open for a database
// whose schema version is newer than this binary knows: a newer hpfleet
// migrated it, and an older one must not write to it.
var ErrSchemaTooNew = errors.New("database schema is newer than this binary")
