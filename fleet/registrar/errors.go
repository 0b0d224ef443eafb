package registrar

import "errors"

// ErrNotRegistered is returned by CheckSync when the registrar has no
// registration for the account: the phone will see the change at its next
// poll.
var ErrNotRegistered = errors.New("registrar: account not registered")

// ErrName is returned for a user or domain outside the safe character set.
var ErrName = errors.New("registrar: bad user or domain")
