package anomaly

import "errors"

// Sentinel errors callers branch on.
var (
	// ErrInvalid: an observation, a configuration or a state blob is
	// malformed or out of its bounds; nothing changed.
	ErrInvalid = errors.New("invalid")
	// ErrStale: the observation is older than Config.MaxLateness before the
	// newest one seen; it was not counted.
	ErrStale = errors.New("observation too old")
	// ErrFuture: the observation is dated more than Config.MaxSkew after
	// the detector's clock; it was not counted.
	ErrFuture = errors.New("observation dated in the future")
	// ErrStateVersion: the state blob was written by an unknown (newer)
	// format version.
	ErrStateVersion = errors.New("anomaly state version unsupported")
)
