package adminauth

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors callers branch on. Login failures are deliberately
// coarse: ErrBadCredentials covers an unknown name, a wrong password and
// a disabled account alike.
var (
	// ErrBadCredentials: the name and password (or second factor) do
	// not authenticate.
	ErrBadCredentials = errors.New("authentication failed")
	// ErrLockedOut: too many failures for this account or source; see
	// LockoutError for when to retry.
	ErrLockedOut = errors.New("too many failed attempts")
	// ErrSessionInvalid: the token names no live session (unknown,
	// expired, logged out, or a pending login used as a session).
	ErrSessionInvalid = errors.New("session not valid")
	// ErrSecondFactorRequired: the session is used from another network
	// or user agent than it was bound to: the second factor must be
	// proved again (Reverify).
	ErrSecondFactorRequired = errors.New("second factor required")
	// ErrStepUpRequired: the permission is privileged and the second
	// factor was not proved recently enough (StepUp).
	ErrStepUpRequired = errors.New("recent second factor required")
	// ErrForbidden: the role does not hold the permission, or not now
	// (outside its time window).
	ErrForbidden = errors.New("permission denied")
	// ErrReplay: a TOTP code (its time step) was already used.
	ErrReplay = errors.New("one-time code already used")
	// ErrNotFound, ErrExists: store lookups and creations.
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrInvalid: an argument is malformed or out of bounds.
	ErrInvalid = errors.New("invalid")
	// ErrBusy: too many password hashes are waiting already.
	ErrBusy = errors.New("authentication busy")
	// ErrSchemaTooNew: the database was written by a newer release.
	ErrSchemaTooNew = errors.New("adminauth schema newer than this binary")
)

// LockoutError says how long the caller must wait. It wraps ErrLockedOut
// and says nothing about whether the account exists.
type LockoutError struct {
	RetryAfter time.Duration
}

func (e *LockoutError) Error() string {
	return fmt.Sprintf("%v: retry after %v", ErrLockedOut, e.RetryAfter.Round(time.Second))
}

func (e *LockoutError) Unwrap() error { return ErrLockedOut }
