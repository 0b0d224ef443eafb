package fleetconfig

import "errors"

// ErrOld is returned by Apply for a document whose version is not above
// the current one's.
var ErrOld = errors.New("fleetconfig: document version not above the current one")

// ErrReverted is returned by Apply for the version the phone reverted:
// the director must publish a newer document.
var ErrReverted = errors.New("fleetconfig: this document version was reverted")

// ErrNoTrial is returned by Revert and MarkGood when no document is on
// trial.
var ErrNoTrial = errors.New("fleetconfig: no document on trial")

// ErrState is returned when the stored record does not parse (a damaged
// or planted state file); nothing is changed.
var ErrState = errors.New("fleetconfig: stored record does not parse")
