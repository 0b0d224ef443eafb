package approval

import "errors"

// Sentinel errors callers branch on.
var (
	// ErrNotFound: no change of that ID.
	ErrNotFound = errors.New("change not found")
	// ErrExists: a change of that ID exists already.
	ErrExists = errors.New("change exists")
	// ErrInvalid: a malformed change or argument.
	ErrInvalid = errors.New("invalid change")
	// ErrLimit: too many pending changes (per admin or in all).
	ErrLimit = errors.New("too many pending changes")
	// ErrDecided: the change is no longer pending.
	ErrDecided = errors.New("change already decided")
	// ErrExpired: the change was not approved in time.
	ErrExpired = errors.New("change expired")
	// ErrSamePerson: the approver proposed the change, or is the admin
	// it is about. A change needs two different people.
	ErrSamePerson = errors.New("a change needs a second, different admin")
	// ErrSchemaTooNew: the database was written by a newer release.
	ErrSchemaTooNew = errors.New("approval schema newer than this binary")
)
