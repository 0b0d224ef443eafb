package policy

import "errors"

// ErrWeakAlgorithm is returned when a peer offers only algorithms below what
// the policy (or an account's configured minimum) allows.
var ErrWeakAlgorithm = errors.New("algorithm below policy minimum")

// ErrUnknownAlgorithm is returned for a name the policy does not know.
var ErrUnknownAlgorithm = errors.New("unknown algorithm")
