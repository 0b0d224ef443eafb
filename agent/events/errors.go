package events

import "errors"

// ErrTampered is returned by Verify when the journal fails a check: a
// record edited, missing, moved, or a signature that does not verify. The
// Report names every record found wrong.
var ErrTampered = errors.New("event journal tampered")

// ErrInvalidEvent is returned for an event the model refuses: an unknown
// kind, a detail key that is malformed or names a secret, too many detail
// fields.
var ErrInvalidEvent = errors.New("invalid event")

// ErrClosed is returned by a journal or recorder used after Close.
var ErrClosed = errors.New("event journal closed")

// ErrUnsupported is returned where the platform lacks what export needs
// (the unacknowledged-bytes count of a TCP socket).
var ErrUnsupported = errors.New("not supported on this platform")
