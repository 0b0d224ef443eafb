package uptane

import (
	"errors"
	"fmt"
)

// ErrNotFound is what a Fetcher returns (wrapped) for a file the server
// does not have; it ends the root chain walk.
var ErrNotFound = errors.New("uptane: file not found")

// ErrTooLarge is returned (wrapped) for a download longer than the
// metadata says or than the hard cap for its kind of file.
var ErrTooLarge = errors.New("uptane: download larger than allowed")

// ErrStale is returned when a repository's newest verifiable metadata has
// expired: the server stopped refreshing it, or someone replays old
// files. The previous trusted set stays; Status reports it stale.
var ErrStale = errors.New("uptane: metadata expired")

// ErrRefused is returned when metadata fails a TUF check: a signature
// threshold not met, a version rolled back, a length or hash that does
// not match, a file that does not parse. Nothing is stored.
var ErrRefused = errors.New("uptane: metadata refused")

// ErrWrongDevice is returned for director metadata that names another
// device (or none).
var ErrWrongDevice = errors.New("uptane: director metadata is for another device")

// ErrMixAndMatch is returned by Resolve when the director names firmware
// the image repository does not list as the director describes it.
var ErrMixAndMatch = errors.New("uptane: director and image repository disagree")

// ErrIncompatible is returned by Resolve for firmware made for another
// board (compatible).
var ErrIncompatible = errors.New("uptane: firmware not compatible with this board")

// ErrNoMetadata is returned by Resolve before a refresh brought trusted
// metadata.
var ErrNoMetadata = errors.New("uptane: no trusted metadata yet")

// ErrState is returned by New when the state file's trusted set does not
// verify (a damaged or planted state file).
var ErrState = errors.New("uptane: stored metadata does not verify")

// ErrTargetMismatch is returned by a target reader or FetchConfig for
// content whose length or SHA-256 differs from the metadata.
var ErrTargetMismatch = errors.New("uptane: target content does not match its metadata")

// ExpiredError names the repository and role that expired; it wraps
// ErrStale.
type ExpiredError struct {
	Repository string
	Role       string
}

func (e *ExpiredError) Error() string {
	return fmt.Sprintf("uptane: %s repository: %s metadata expired", e.Repository, e.Role)
}

func (e *ExpiredError) Unwrap() error { return ErrStale }

var (
	errBadName   = errors.New("bad target name")
	errCustom    = errors.New("bad custom fields")
	errSignedTim = errors.New("bad signed time")
)
