package eventlog

import "errors"

// ErrInvalid is returned for bytes that are not a valid record, or a field
// the format refuses (a detail key that names a secret, a string too long).
var ErrInvalid = errors.New("invalid event record")

// ErrChain is returned by CheckSegment when records do not form one
// unbroken chain: a seq skipped or repeated, a prev hash that is not the
// hash of the record before, signed records of two journals.
var ErrChain = errors.New("event records do not chain")

// ErrSignature is returned by CheckSegment when a signed record names
// another key than the one given, or its signature does not verify.
var ErrSignature = errors.New("event record signature")

var errKeyType = errors.New("unsupported key type")
