package provision

import "errors"

// ErrNotEnrolled is returned by Renew and CheckIn before the phone holds a
// certificate from the fleet's device CA.
var ErrNotEnrolled = errors.New("not enrolled in the fleet")

// ErrRetired is returned by CheckIn and Run when the fleet retired the
// phone; its credentials were wiped.
var ErrRetired = errors.New("retired by the fleet")
